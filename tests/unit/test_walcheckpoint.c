/* Background WAL checkpoints (include/bindery/walcheckpoint.h): rows
 * committed with auto-checkpoints off reach the database file, and the WAL
 * is rewritten from its start instead of growing, under steady writes
 * too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bindery/walcheckpoint.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", sql, err ? err : "?");
}

static void insert_rows(sqlite3 *db, int n)
{
    for (int i = 0; i < n; i++)
        exec_ok(db, "INSERT INTO t VALUES (randomblob(2000))");
}

/* A new database in a new temporary folder, in WAL mode with
 * auto-checkpoints off and the writers' busy handler, as the store and the
 * ledger run theirs, with one table t(b BLOB). */
typedef struct test_db {
    char dir[32];
    char path[256];
    char wal[300];
    sqlite3 *db;
} test_db;

static void test_db_open(test_db *t, const char *synchronous)
{
    snprintf(t->dir, sizeof(t->dir), "/tmp/bdy-walckpt-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof(t->path), "%s/test.db", t->dir);
    snprintf(t->wal, sizeof(t->wal), "%s-wal", t->path);
    t->db = NULL;
    assert_int_equal(sqlite3_open(t->path, &t->db), SQLITE_OK);
    /* A RESTART checkpoint holds writers back for a moment; they wait. */
    bdy_wal_writer_busy_handler(t->db, 5000);
    exec_ok(t->db, "PRAGMA journal_mode=WAL");
    char sql[64];
    snprintf(sql, sizeof(sql), "PRAGMA synchronous=%s", synchronous);
    exec_ok(t->db, sql);
    exec_ok(t->db, "CREATE TABLE t(b BLOB)");
    sqlite3_wal_autocheckpoint(t->db, 0);
}

static void test_db_remove(test_db *t)
{
    sqlite3_close(t->db);
    t->db = NULL;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
    assert_int_equal(system(cmd), 0);
}

/* restart_over: 0 for PASSIVE checkpoints only, 1 for RESTART every time. */
static void check_wal_reaches_database(size_t restart_over)
{
    test_db t;
    test_db_open(&t, "FULL");

    bdy_wal_checkpointer *c = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_wal_checkpointer_start(t.path, 10, restart_over, "test-ckpt", &c, &eb), 0);
    insert_rows(t.db, 200);
    /* The rows reach the database file (about 400 KB) within a few periods. */
    long db_size = 0;
    for (int i = 0; i < 300 && (db_size = file_size(t.path)) < 300 * 1024; i++)
        sleep_ms(10);
    if (db_size < 300 * 1024)
        fail_msg("database file is %ld bytes after 3 s: nothing was checkpointed", db_size);

    /* Once all of it is checkpointed, the next commits rewrite the WAL from
     * its start: more rows of the same size do not grow it much. */
    sleep_ms(100);
    long wal_before = file_size(t.wal);
    for (int round = 0; round < 5; round++) {
        insert_rows(t.db, 40);
        sleep_ms(50);
    }
    long wal_after = file_size(t.wal);
    if (wal_after > wal_before + 200 * 1024)
        fail_msg("WAL grew from %ld to %ld bytes", wal_before, wal_after);

    bdy_wal_checkpointer_stop(c);
    bdy_wal_checkpointer_stop(NULL);

    /* A file that does not exist cannot be opened for checkpoints. */
    char missing[300];
    snprintf(missing, sizeof(missing), "%s/missing/x.db", t.dir);
    c = NULL;
    assert_int_not_equal(bdy_wal_checkpointer_start(missing, 10, 0, "test-ckpt", &c, &eb), 0);
    assert_null(c);

    test_db_remove(&t);
}

/* The WAL header's salt-1 (bytes 16-19, big-endian): SQLite changes it
 * each time the WAL restarts from its beginning. 0 before there is one. */
static uint32_t wal_salt(const char *wal)
{
    unsigned char h[20] = {0};
    FILE *f = fopen(wal, "rb");
    if (f == NULL)
        return 0;
    size_t n = fread(h, 1, sizeof(h), f);
    fclose(f);
    if (n < sizeof(h))
        return 0;
    return (uint32_t)h[16] << 24 | (uint32_t)h[17] << 16 | (uint32_t)h[18] << 8 | h[19];
}

/* Commits back to back, never pausing, as a claim burst does: a PASSIVE
 * checkpoint then never catches up with the last commit, and without the
 * RESTART that follows it the WAL would never restart and would hold every
 * row written (about 66 MB here). */
static void test_wal_restarts_under_steady_writes(void **state)
{
    (void)state;
    test_db t;
    /* No fsync: the test is about restarts, and rows come faster. */
    test_db_open(&t, "OFF");
    sqlite3 *db = t.db;

    bdy_wal_checkpointer *c = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_wal_checkpointer_start(t.path, 10, 0, "test-ckpt", &c, &eb), 0);
    /* Each row its own commit (exec_ok fails the test if a commit is
     * refused while a RESTART holds the writers back), until the WAL has
     * restarted a few times; bounded in rows and time. */
    enum { MAX_ROWS = 20000, RESTARTS = 5 };
    uint64_t deadline = now_ms() + 60000;
    uint32_t salt = 0;
    int restarts = -1; /* the first salt seen is the WAL's first header */
    long wal_max = 0;
    int rows = 0;
    for (; rows < MAX_ROWS && restarts < RESTARTS && now_ms() < deadline; rows++) {
        bdy_wal_checkpointer_before_write(c);
        exec_ok(db, "INSERT INTO t VALUES (randomblob(2000))");
        uint32_t s = wal_salt(t.wal);
        if (s != 0 && s != salt) {
            salt = s;
            restarts++;
        }
        long size = file_size(t.wal);
        if (size > wal_max)
            wal_max = size;
    }
    bdy_wal_checkpointer_stop(c);
    if (restarts < RESTARTS)
        fail_msg("the WAL restarted %d times in %d back-to-back commits (WAL up to %ld bytes)",
                 restarts, rows, wal_max);

    test_db_remove(&t);
}

static void test_passive_checkpoints(void **state)
{
    (void)state;
    check_wal_reaches_database(0);
}

static void test_restart_checkpoints(void **state)
{
    (void)state;
    check_wal_reaches_database(1);
}

/* One burst makes the WAL far larger than the limit; once it restarts, the
 * writer's journal_size_limit cuts the file back. (The checkpoints after it
 * judge by the frames in use, not by the file's size, so a reader then
 * holds no writer back for long: printed, as a timing it is not asserted.) */
static void test_wal_shrinks_after_a_burst(void **state)
{
    (void)state;
    enum { LIMIT = 512 * 1024 };
    test_db t;
    test_db_open(&t, "OFF");
    assert_int_equal(bdy_wal_writer_size_limit(t.db, LIMIT), 0);
    bdy_wal_checkpointer *c = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_wal_checkpointer_start(t.path, 10, LIMIT, "test-ckpt", &c, &eb), 0);
    exec_ok(t.db, "BEGIN");
    insert_rows(t.db, 1000); /* about 2 MB of pages in one commit */
    exec_ok(t.db, "COMMIT");
    long burst = file_size(t.wal);
    assert_true(burst > 3 * LIMIT);
    long size = burst;
    for (int i = 0; i < 500 && size > LIMIT; i++) {
        bdy_wal_checkpointer_before_write(c);
        insert_rows(t.db, 1);
        sleep_ms(10);
        size = file_size(t.wal);
    }
    if (size > LIMIT)
        fail_msg("the WAL stayed at %ld bytes after a burst (limit %d)", size, (int)LIMIT);

    /* A reader keeps a snapshot for half a second, as a long list does. */
    sqlite3 *reader = NULL;
    assert_int_equal(sqlite3_open(t.path, &reader), SQLITE_OK);
    exec_ok(reader, "BEGIN");
    exec_ok(reader, "SELECT count(*) FROM t");
    uint64_t worst_ms = 0;
    for (int i = 0; i < 100; i++) {
        if (i == 50)
            exec_ok(reader, "COMMIT");
        uint64_t t0 = now_ms();
        bdy_wal_checkpointer_before_write(c);
        insert_rows(t.db, 1);
        if (now_ms() - t0 > worst_ms)
            worst_ms = now_ms() - t0;
        sleep_ms(10);
    }
    printf("# WAL after the burst: %ld bytes, then %ld; slowest commit beside a reader %llu ms\n",
           burst, size, (unsigned long long)worst_ms);
    bdy_wal_checkpointer_stop(c);
    sqlite3_close(reader);
    test_db_remove(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_passive_checkpoints),
        cmocka_unit_test(test_restart_checkpoints),
        cmocka_unit_test(test_wal_restarts_under_steady_writes),
        cmocka_unit_test(test_wal_shrinks_after_a_burst),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
