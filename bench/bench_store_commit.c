/* Group-commit throughput of the embedded store.
 *
 * For 1, 16 and 64 concurrent writers, each creating small objects for a
 * fixed time, it measures durable writes per second through the store (one
 * writer thread, many writes per fsync) and, on the same disk in the same
 * run, through plain SQLite with one autocommit INSERT per write (one fsync
 * per write; WAL, synchronous=FULL; each writer its own connection).
 *
 *   bench_store_commit [--seconds S] [--dir DIR] [--json FILE] [--group-only]
 *
 * Prints a table; --json also writes the figures for bench/run. */
#include "bindery/error.h"
#include "bindery/store.h"
#include "bindery/util.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_WRITERS 64
#define MAX_SAMPLES 2000000

typedef struct run {
    bdy_store *store;    /* group-commit mode */
    const char *db_path; /* autocommit mode */
    double seconds;
    int id;
    atomic_bool *go;
    uint64_t writes;
    uint64_t failures;
    double *lat_ms; /* per-write latencies, capped */
    size_t nlat;
    size_t cap;
} run;

static void record(run *r, uint64_t t0)
{
    if (r->nlat < r->cap)
        r->lat_ms[r->nlat++] = (double)(bdy_monotonic_ns() - t0) / 1e6;
}

static void *store_writer(void *p)
{
    run *r = p;
    while (!atomic_load(r->go))
        ;
    uint64_t end = bdy_monotonic_ns() + (uint64_t)(r->seconds * 1e9);
    char body[256];
    for (uint64_t i = 0; bdy_monotonic_ns() < end; i++) {
        snprintf(body, sizeof(body),
                 "{\"metadata\":{\"name\":\"w%d-%llu\"},\"spec\":{\"holderIdentity\":\"x\"}}",
                 r->id, (unsigned long long)i);
        json_object *obj = json_tokener_parse(body);
        uint64_t t0 = bdy_monotonic_ns();
        if (bdy_store_create(r->store, &BDY_GVR_LEASES, "default", obj, NULL, NULL, NULL) == 0) {
            r->writes++;
            record(r, t0);
        } else {
            r->failures++;
        }
        json_object_put(obj);
    }
    return NULL;
}

static void *autocommit_writer(void *p)
{
    run *r = p;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_open(r->db_path, &db) != SQLITE_OK)
        return NULL;
    sqlite3_busy_timeout(db, 10000);
    sqlite3_exec(db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
    sqlite3_prepare_v2(db, "INSERT INTO objects(name, body) VALUES(?1, ?2)", -1, &st, NULL);
    while (!atomic_load(r->go))
        ;
    uint64_t end = bdy_monotonic_ns() + (uint64_t)(r->seconds * 1e9);
    char name[64];
    char body[256];
    for (uint64_t i = 0; bdy_monotonic_ns() < end; i++) {
        snprintf(name, sizeof(name), "w%d-%llu", r->id, (unsigned long long)i);
        snprintf(body, sizeof(body),
                 "{\"metadata\":{\"name\":\"%s\"},\"spec\":{\"holderIdentity\":\"x\"}}", name);
        uint64_t t0 = bdy_monotonic_ns();
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, body, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_DONE) {
            r->writes++;
            record(r, t0);
        } else {
            r->failures++;
        }
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct result {
    double writes_per_s;
    double p50_ms;
    double p99_ms;
    uint64_t failures;
} result;

static result run_mode(bool group, int writers, double seconds, const char *base)
{
    result res = {0};
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/%s-%d", base, group ? "group" : "auto", writers);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return res;
    bdy_store *store = NULL;
    char db_path[600];
    if (group) {
        bdy_sqlite_opts o = {.data_dir = dir, .watch_history = 1000, .max_batch = 512};
        bdy_errbuf eb;
        bdy_errbuf_clear(&eb);
        if (bdy_store_sqlite_open(&o, &store, &eb) != 0) {
            fprintf(stderr, "open: %s\n", eb.message);
            return res;
        }
    } else {
        snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dir);
        if (system(cmd) != 0)
            return res;
        snprintf(db_path, sizeof(db_path), "%s/plain.db", dir);
        sqlite3 *db = NULL;
        sqlite3_open(db_path, &db);
        sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL; CREATE TABLE objects(name TEXT PRIMARY KEY, "
                     "body TEXT NOT NULL)",
                     NULL, NULL, NULL);
        sqlite3_close(db);
    }
    atomic_bool go = false;
    run runs[MAX_WRITERS];
    pthread_t th[MAX_WRITERS];
    size_t cap = MAX_SAMPLES / (size_t)writers;
    for (int i = 0; i < writers; i++) {
        runs[i] = (run){.store = store,
                        .db_path = db_path,
                        .seconds = seconds,
                        .id = i,
                        .go = &go,
                        .lat_ms = malloc(cap * sizeof(double)),
                        .cap = cap};
        pthread_create(&th[i], NULL, group ? store_writer : autocommit_writer, &runs[i]);
    }
    uint64_t t0 = bdy_monotonic_ns();
    atomic_store(&go, true);
    uint64_t total = 0;
    size_t nlat = 0;
    for (int i = 0; i < writers; i++) {
        pthread_join(th[i], NULL);
        total += runs[i].writes;
        res.failures += runs[i].failures;
        nlat += runs[i].nlat;
    }
    double elapsed = (double)(bdy_monotonic_ns() - t0) / 1e9;
    double *all = malloc((nlat ? nlat : 1) * sizeof(double));
    size_t k = 0;
    for (int i = 0; i < writers; i++) {
        memcpy(all + k, runs[i].lat_ms, runs[i].nlat * sizeof(double));
        k += runs[i].nlat;
        free(runs[i].lat_ms);
    }
    qsort(all, nlat, sizeof(double), cmp_double);
    res.writes_per_s = (double)total / elapsed;
    res.p50_ms = nlat ? all[nlat / 2] : 0;
    res.p99_ms = nlat ? all[(size_t)((double)nlat * 0.99)] : 0;
    free(all);
    bdy_store_close(store);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return res;
}

int main(int argc, char **argv)
{
    double seconds = 3;
    const char *dir = NULL;
    const char *json_path = NULL;
    bool group_only = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc)
            json_path = argv[++i];
        else if (strcmp(argv[i], "--group-only") == 0)
            group_only = true;
        else {
            fprintf(stderr, "usage: %s [--seconds S] [--dir DIR] [--json FILE] [--group-only]\n",
                    argv[0]);
            return 2;
        }
    }
    if (seconds <= 0 || seconds > 600) {
        fprintf(stderr, "--seconds must be in (0, 600]\n");
        return 2;
    }
    char tmp[] = "/tmp/bdy-bench-XXXXXX";
    if (dir == NULL && (dir = mkdtemp(tmp)) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    const int writers[] = {1, 16, 64};
    FILE *js = json_path ? fopen(json_path, "w") : NULL;
    if (js != NULL)
        fprintf(js, "[");
    printf("store group commit, %.0f s per cell, WAL + synchronous=FULL, data in %s\n", seconds,
           dir);
    printf("%-8s %14s %10s %10s %14s %10s %10s %8s\n", "writers", "group w/s", "p50 ms", "p99 ms",
           "autocommit w/s", "p50 ms", "p99 ms", "ratio");
    for (size_t i = 0; i < sizeof(writers) / sizeof(writers[0]); i++) {
        result g = run_mode(true, writers[i], seconds, dir);
        result a = group_only ? (result){0} : run_mode(false, writers[i], seconds, dir);
        double ratio = a.writes_per_s > 0 ? g.writes_per_s / a.writes_per_s : 0;
        printf("%-8d %14.0f %10.3f %10.3f %14.0f %10.3f %10.3f %7.1fx\n", writers[i],
               g.writes_per_s, g.p50_ms, g.p99_ms, a.writes_per_s, a.p50_ms, a.p99_ms, ratio);
        if (g.failures || a.failures)
            printf("         failures: group %llu, autocommit %llu\n",
                   (unsigned long long)g.failures, (unsigned long long)a.failures);
        if (js != NULL)
            fprintf(js,
                    "%s{\"writers\":%d,\"group_writes_per_s\":%.1f,\"group_p50_ms\":%.4f,"
                    "\"group_p99_ms\":%.4f,\"autocommit_writes_per_s\":%.1f,"
                    "\"autocommit_p50_ms\":%.4f,\"autocommit_p99_ms\":%.4f,\"ratio\":%.2f}",
                    i ? "," : "", writers[i], g.writes_per_s, g.p50_ms, g.p99_ms, a.writes_per_s,
                    a.p50_ms, a.p99_ms, ratio);
    }
    if (js != NULL) {
        fprintf(js, "]\n");
        fclose(js);
    }
    if (dir == tmp)
        rmdir(tmp);
    return 0;
}
