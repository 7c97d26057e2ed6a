/* The claim ledger (include/bindery/ledger.h): durable rows, one live claim
 * per world, reads, persistence across reopen, and concurrent group commit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bindery/ledger.h"
#include "fault_io.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define THREADS 8
#define PER_THREAD 200

static void rm_rf(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static bdy_ledger *open_ledger(const char *dir)
{
    bdy_ledger *l = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy_ledger_open(dir, true, &l, &eb);
    if (rc != 0)
        fail_msg("open %s: %s (%s)", dir, bdy_strerror(rc), eb.message);
    return l;
}

static bdy_ledger_claim claim(const char *id, const char *world, const char *uid)
{
    bdy_ledger_claim c = {.id = id,
                          .ns = "default",
                          .world = world,
                          .world_uid = uid,
                          .pool = "arena",
                          .claimant = "me",
                          .source = "warm",
                          .claimed_at = "2026-11-27T10:00:00Z",
                          .answer_json = "{\"allocationId\":\"x\"}"};
    return c;
}

static int collect_cb(void *data, const bdy_ledger_claim *c)
{
    char *out = data;
    strcat(out, c->id);
    strcat(out, ",");
    return 0;
}

static void test_add_get_remove_persist(void **state)
{
    (void)state;
    char dir[] = "/tmp/bdy-ledger-XXXXXX";
    assert_non_null(mkdtemp(dir));
    bdy_ledger *l = open_ledger(dir);
    assert_int_equal(bdy_ledger_count(l), 0);

    bdy_ledger_claim a = claim("alc-a", "w1", "uid-1");
    a.idem_key = "k1";
    a.request_hash = "abc";
    a.labels_json = "{\"team\":\"red\"}";
    assert_int_equal(bdy_ledger_add(l, &a), 0);
    bdy_ledger_claim b = claim("alc-b", "w2", "uid-2");
    assert_int_equal(bdy_ledger_add(l, &b), 0);
    assert_int_equal(bdy_ledger_count(l), 2);

    /* One live claim per world, one row per id. */
    bdy_ledger_claim again = claim("alc-c", "w1", "uid-1");
    assert_int_equal(bdy_ledger_add(l, &again), BDY_ECONFLICT);
    bdy_ledger_claim dup = claim("alc-a", "w3", "uid-3");
    assert_int_equal(bdy_ledger_add(l, &dup), BDY_EEXISTS);
    bdy_ledger_claim bad = claim("alc-d", "w4", NULL);
    assert_int_equal(bdy_ledger_add(l, &bad), BDY_EINVAL);
    assert_int_equal(bdy_ledger_count(l), 2);

    bdy_ledger_record *r = NULL;
    assert_int_equal(bdy_ledger_get(l, "alc-a", &r), 0);
    assert_string_equal(r->c.world, "w1");
    assert_string_equal(r->c.idem_key, "k1");
    assert_string_equal(r->c.request_hash, "abc");
    assert_string_equal(r->c.labels_json, "{\"team\":\"red\"}");
    assert_null(r->c.annotations_json);
    assert_string_equal(r->c.answer_json, "{\"allocationId\":\"x\"}");
    bdy_ledger_record_free(r);
    r = NULL;
    assert_int_equal(bdy_ledger_get(l, "alc-zz", &r), BDY_ENOTFOUND);
    assert_null(r);
    /* Live ids, from memory. */
    assert_true(bdy_ledger_has(l, "alc-a"));
    assert_false(bdy_ledger_has(l, "alc-zz"));
    /* A copy of a row as written, NULL fields kept NULL. */
    bdy_ledger_record *copy = bdy_ledger_record_copy(&a);
    assert_non_null(copy);
    assert_ptr_not_equal(copy->c.world, a.world);
    assert_string_equal(copy->c.id, "alc-a");
    assert_string_equal(copy->c.world_uid, "uid-1");
    assert_string_equal(copy->c.labels_json, "{\"team\":\"red\"}");
    assert_null(copy->c.annotations_json);
    assert_string_equal(copy->c.answer_json, a.answer_json);
    bdy_ledger_record_free(copy);
    bdy_ledger_close(l);

    /* Reopened: the rows are there, in claim order. */
    l = open_ledger(dir);
    assert_int_equal(bdy_ledger_count(l), 2);
    char ids[64] = "";
    assert_int_equal(bdy_ledger_each(l, collect_cb, ids, NULL), 0);
    assert_string_equal(ids, "alc-a,alc-b,");
    assert_int_equal(bdy_ledger_remove(l, "alc-a"), 0);
    assert_false(bdy_ledger_has(l, "alc-a"));
    assert_int_equal(bdy_ledger_remove(l, "alc-a"), BDY_ENOTFOUND);
    /* The world is free again once its claim is gone. */
    assert_int_equal(bdy_ledger_add(l, &again), 0);
    assert_int_equal(bdy_ledger_count(l), 2);
    bdy_ledger_close(l);
    l = open_ledger(dir);
    ids[0] = '\0';
    assert_int_equal(bdy_ledger_each(l, collect_cb, ids, NULL), 0);
    assert_string_equal(ids, "alc-b,alc-c,");
    bdy_ledger_close(l);
    rm_rf(dir);
}

typedef struct worker_arg {
    bdy_ledger *l;
    int thread;
    int ok;
    int conflicts;
} worker_arg;

/* Every thread claims its own worlds and, for every fourth one, races the
 * next thread for a shared world: exactly one of each race may win. */
static void *worker(void *p)
{
    worker_arg *a = p;
    for (int i = 0; i < PER_THREAD; i++) {
        char id[32];
        char world[32];
        snprintf(id, sizeof(id), "alc-%d-%d", a->thread, i);
        if (i % 4 == 0)
            snprintf(world, sizeof(world), "shared-%d", i);
        else
            snprintf(world, sizeof(world), "w-%d-%d", a->thread, i);
        bdy_ledger_claim c = claim(id, world, world);
        int rc = bdy_ledger_add(a->l, &c);
        if (rc == 0)
            a->ok++;
        else if (rc == BDY_ECONFLICT)
            a->conflicts++;
    }
    return NULL;
}

typedef struct reader_arg {
    bdy_ledger *l;
    atomic_bool stop;
    int found;
    int wrong;
} reader_arg;

/* Reads claims while they are committed and applied: whatever a read
 * returns is whole and the claim asked for. */
static void *reader(void *p)
{
    reader_arg *a = p;
    for (unsigned n = 0; !atomic_load(&a->stop) && n < 2000000; n++) {
        char id[32];
        snprintf(id, sizeof(id), "alc-%u-%u", n % THREADS, (n / THREADS) % PER_THREAD);
        bdy_ledger_record *r = NULL;
        if (bdy_ledger_get(a->l, id, &r) == 0) {
            a->found++;
            if (strcmp(r->c.id, id) != 0 || strcmp(r->c.world, r->c.world_uid) != 0)
                a->wrong++;
            bdy_ledger_record_free(r);
        }
        (void)bdy_ledger_has(a->l, id);
    }
    return NULL;
}

static void test_concurrent_group_commit(void **state)
{
    (void)state;
    char dir[] = "/tmp/bdy-ledger-XXXXXX";
    assert_non_null(mkdtemp(dir));
    bdy_ledger *l = open_ledger(dir);
    pthread_t t[THREADS];
    worker_arg args[THREADS];
    reader_arg ra = {.l = l};
    pthread_t rt;
    assert_int_equal(pthread_create(&rt, NULL, reader, &ra), 0);
    for (int i = 0; i < THREADS; i++) {
        args[i] = (worker_arg){.l = l, .thread = i};
        assert_int_equal(pthread_create(&t[i], NULL, worker, &args[i]), 0);
    }
    int ok = 0;
    int conflicts = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        ok += args[i].ok;
        conflicts += args[i].conflicts;
    }
    atomic_store(&ra.stop, true);
    pthread_join(rt, NULL);
    assert_true(ra.found > 0);
    assert_int_equal(ra.wrong, 0);
    int shared = PER_THREAD / 4;
    int expect_ok = THREADS * (PER_THREAD - shared) + shared;
    assert_int_equal(ok, expect_ok);
    assert_int_equal(conflicts, (THREADS - 1) * shared);
    assert_int_equal(bdy_ledger_count(l), (size_t)expect_ok);
    bdy_ledger_close(l);
    l = open_ledger(dir);
    assert_int_equal(bdy_ledger_count(l), (size_t)expect_ok);
    bdy_ledger_close(l);
    rm_rf(dir);
}

typedef struct async_result {
    pthread_mutex_t lock;
    int ok;
    int conflicts;
    int calls;
    pthread_t caller; /* the thread that adds */
    int on_caller;    /* callbacks that ran on it: committed inline */
} async_result;

static void async_done(void *data, int rc)
{
    async_result *r = data;
    pthread_mutex_lock(&r->lock);
    r->calls++;
    if (pthread_equal(pthread_self(), r->caller))
        r->on_caller++;
    if (rc == 0)
        r->ok++;
    else if (rc == BDY_ECONFLICT)
        r->conflicts++;
    pthread_mutex_unlock(&r->lock);
}

/* Asynchronous adds are all reported, once each, by the time close()
 * returns; a world claimed twice in one batch is refused the second time. */
static void test_async_adds(void **state)
{
    (void)state;
    char dir[] = "/tmp/bdy-ledger-XXXXXX";
    assert_non_null(mkdtemp(dir));
    bdy_ledger *l = open_ledger(dir);
    enum { N = 300 };
    static char ids[N][32];
    static char worlds[N][32];
    static bdy_ledger_claim claims[N];
    async_result res = {.lock = PTHREAD_MUTEX_INITIALIZER};
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "alc-async-%d", i);
        /* Worlds 0 and 1 are the same world: one must lose. */
        snprintf(worlds[i], sizeof(worlds[i]), "w-%d", i == 1 ? 0 : i);
        claims[i] = claim(ids[i], worlds[i], worlds[i]);
        assert_int_equal(bdy_ledger_add_async(l, &claims[i], async_done, &res), 0);
    }
    bdy_ledger_claim bad = claim("alc-x", "w-x", NULL);
    assert_int_equal(bdy_ledger_add_async(l, &bad, async_done, &res), BDY_EINVAL);
    assert_int_equal(bdy_ledger_add_async(l, &claims[0], NULL, NULL), BDY_EINVAL);
    bdy_ledger_close(l);
    assert_int_equal(res.calls, N);
    assert_int_equal(res.ok, N - 1);
    assert_int_equal(res.conflicts, 1);
    l = open_ledger(dir);
    assert_int_equal(bdy_ledger_count(l), (size_t)(N - 1));
    bdy_ledger_close(l);
    rm_rf(dir);
}

/* A claim is committed on its caller's thread only when the ledger has
 * been idle at least as long as its last commit took: adds back to back
 * queue for the committer (one fsync for the lot), an add after a pause is
 * committed inline. With "idle" as "no commit running this instant", every
 * add of a burst from one thread was committed inline, one fsync each. */
static void test_inline_only_when_idle(void **state)
{
    (void)state;
    char dir[] = "/tmp/bdy-ledger-XXXXXX";
    assert_non_null(mkdtemp(dir));
    bdy_ledger *l = open_ledger(dir);
    enum { N = 10 };
    static char ids[N + 1][32];
    static bdy_ledger_claim claims[N + 1];
    async_result res = {.lock = PTHREAD_MUTEX_INITIALIZER, .caller = pthread_self()};
    for (int i = 0; i <= N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "alc-idle-%d", i);
        claims[i] = claim(ids[i], ids[i], ids[i]);
    }
    /* The first add finds a ledger that never committed: inline. */
    assert_int_equal(bdy_ledger_add_async(l, &claims[0], async_done, &res), 0);
    assert_int_equal(res.on_caller, 1);
    /* Right after it, back to back: queued. */
    for (int i = 1; i < N; i++)
        assert_int_equal(bdy_ledger_add_async(l, &claims[i], async_done, &res), 0);
    for (int t = 0; t < 5000; t++) {
        pthread_mutex_lock(&res.lock);
        bool all = res.calls == N;
        pthread_mutex_unlock(&res.lock);
        if (all)
            break;
        usleep(1000);
    }
    pthread_mutex_lock(&res.lock);
    assert_int_equal(res.calls, N);
    if (res.on_caller > 3)
        fail_msg("%d of %d back-to-back adds were committed on the caller's thread",
                 res.on_caller - 1, N - 1);
    pthread_mutex_unlock(&res.lock);
    /* After a pause far longer than any commit here: inline again. */
    usleep(300 * 1000);
    int before = res.on_caller;
    assert_int_equal(bdy_ledger_add_async(l, &claims[N], async_done, &res), 0);
    assert_int_equal(res.on_caller, before + 1);
    bdy_ledger_close(l);
    assert_int_equal(res.ok, N + 1);
    rm_rf(dir);
}

static void test_bad_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/bdy-ledger-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[96];
    snprintf(path, sizeof(path), "%s/claims.db", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("this is not a database, but it is long enough to look like a header.....", f);
    fclose(f);
    bdy_ledger *l = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_not_equal(bdy_ledger_open(dir, true, &l, &eb), 0);
    assert_null(l);
    assert_non_null(strstr(eb.message, "claims.db"));
    rm_rf(dir);

    /* A folder that does not exist. */
    bdy_errbuf_clear(&eb);
    assert_int_not_equal(bdy_ledger_open("/nonexistent/bindery-ledger", true, &l, &eb), 0);
    assert_null(l);
    assert_non_null(strstr(eb.message, "/nonexistent/bindery-ledger/claims.db"));
    bdy_ledger_close(NULL);
    bdy_ledger_record_free(NULL);
}

/* A missing file is made only when asked; an empty one is a new ledger.
 * Damage that opening does not read (pages of a large row's overflow)
 * turns up in the whole-file check, and then in the ledger's health. */
static void test_missing_file_and_damage(void **state)
{
    (void)state;
    char dir[] = "/tmp/bdy-ledger-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[96];
    snprintf(path, sizeof(path), "%s/claims.db", dir);
    bdy_ledger *l = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_ledger_open(dir, false, &l, &eb), BDY_ENOTFOUND);
    assert_null(l);
    assert_non_null(strstr(eb.message, path));
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0);

    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(bdy_ledger_open(dir, false, &l, &eb), 0);
    assert_int_equal(bdy_ledger_count(l), 0);
    enum { LABELS = 40000 };
    char *labels = malloc(LABELS);
    assert_non_null(labels);
    memset(labels, 'x', LABELS);
    memcpy(labels, "{\"k\":\"", 6);
    memcpy(labels + LABELS - 3, "\"}", 3);
    bdy_ledger_claim a = claim("alc-a", "w1", "uid-1");
    a.labels_json = labels;
    assert_int_equal(bdy_ledger_add(l, &a), 0);
    bdy_ledger_close(l);
    free(labels);

    /* The last page is the end of the labels' overflow chain: its first
     * four bytes, the next page's number, now point past the file. */
    assert_int_equal(stat(path, &st), 0);
    long pages = (long)(st.st_size / 4096);
    assert_true(pages > 10);
    f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, (pages - 1) * 4096, SEEK_SET), 0);
    for (int i = 0; i < 4; i++)
        fputc(0x7f, f);
    fclose(f);

    l = NULL;
    assert_int_equal(bdy_ledger_open(dir, false, &l, &eb), 0);
    assert_int_equal(bdy_ledger_count(l), 1);
    assert_int_equal(bdy_ledger_health(l, &eb), 0);
    assert_int_equal(bdy_ledger_check_start(l, &eb), 0);
    int rc = 0;
    for (int i = 0; i < 1000 && rc == 0; i++) {
        rc = bdy_ledger_health(l, &eb);
        if (rc == 0) {
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    assert_int_equal(rc, BDY_ECORRUPT);
    assert_non_null(strstr(eb.message, path));
    assert_non_null(strstr(eb.message, "corrupt"));
    bdy_ledger_close(l);
    rm_rf(dir);
}

/* Opens dir/claims.db and takes its write lock (BEGIN IMMEDIATE): the
 * ledger's applier cannot apply until the caller rolls back. */
static sqlite3 *lock_claims_db(const char *dir)
{
    char path[96];
    snprintf(path, sizeof(path), "%s/claims.db", dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    return db;
}

/* Claims alc-0.. alc-(n-1) on worlds w1.. wn (alc-3 with labels). */
static int add_claims(bdy_ledger *l, int n)
{
    for (int i = 0; i < n; i++) {
        char id[16], world[16];
        snprintf(id, sizeof(id), "alc-%d", i);
        snprintf(world, sizeof(world), "w%d", i + 1);
        bdy_ledger_claim x = claim(id, world, world);
        x.labels_json = i == 3 ? "{\"team\":\"blue\"}" : NULL;
        if (bdy_ledger_add(l, &x) != 0)
            return 3;
    }
    return 0;
}

/* The child's work in test_journal_replayed_after_a_crash. */
static int claims_and_removes(bdy_ledger *l)
{
    if (add_claims(l, 10) != 0 || bdy_ledger_remove(l, "alc-2") != 0 ||
        bdy_ledger_remove(l, "alc-before") != 0)
        return 4;
    return 0;
}

/* The child's work in test_damaged_journal_is_refused. */
static int three_claims(bdy_ledger *l)
{
    return add_claims(l, 3);
}

/* Runs work on the ledger in dir in a child process that dies without
 * closing it, while this process holds claims.db's write lock: whatever
 * the child commits is only in the journal. Returns the rows claims.db
 * held meanwhile. */
static int claim_while_locked_and_die(const char *dir, int (*work)(bdy_ledger *))
{
    int to_child[2], to_parent[2];
    assert_int_equal(pipe(to_child), 0);
    assert_int_equal(pipe(to_parent), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        bdy_ledger *cl = NULL;
        char c = 0;
        if (bdy_ledger_open(dir, false, &cl, NULL) != 0 || write(to_parent[1], "o", 1) != 1 ||
            read(to_child[0], &c, 1) != 1)
            _exit(2);
        _exit(work(cl)); /* no close: nothing more is written */
    }
    char c = 0;
    assert_int_equal(read(to_parent[0], &c, 1), 1);
    sqlite3 *db = lock_claims_db(dir);
    assert_int_equal(write(to_child[1], "g", 1), 1);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM claims", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int rows = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    for (int i = 0; i < 2; i++) {
        close(to_child[i]);
        close(to_parent[i]);
    }
    return rows;
}

/* A claim is durable once it is in the journal: a process that dies before
 * its claims reached claims.db leaves them to the next open, which applies
 * them (adds and removes, in order) before anything reads the ledger. The
 * test holds claims.db's write lock while the child claims, so that none
 * of its claims can have reached claims.db when it dies. */
static void test_journal_replayed_after_a_crash(void **state)
{
    (void)state;
    char dir[] = "/tmp/bdy-ledger-XXXXXX";
    assert_non_null(mkdtemp(dir));
    bdy_ledger *l = open_ledger(dir);
    bdy_ledger_claim before = claim("alc-before", "w0", "uid-0");
    assert_int_equal(bdy_ledger_add(l, &before), 0);
    bdy_ledger_close(l);

    /* claims.db has none of the child's work when it dies. */
    assert_int_equal(claim_while_locked_and_die(dir, claims_and_removes), 1);

    l = open_ledger(dir);
    assert_int_equal(bdy_ledger_count(l), 9);
    assert_false(bdy_ledger_has(l, "alc-before"));
    assert_false(bdy_ledger_has(l, "alc-2"));
    bdy_ledger_record *r = NULL;
    assert_int_equal(bdy_ledger_get(l, "alc-3", &r), 0);
    assert_string_equal(r->c.world, "w4");
    assert_string_equal(r->c.labels_json, "{\"team\":\"blue\"}");
    bdy_ledger_record_free(r);
    char ids[256] = "";
    assert_int_equal(bdy_ledger_each(l, collect_cb, ids, NULL), 0);
    assert_string_equal(ids, "alc-0,alc-1,alc-3,alc-4,alc-5,alc-6,alc-7,alc-8,alc-9,");
    /* The world of a removed claim is free, that of a live one is not. */
    bdy_ledger_claim again = claim("alc-again", "w3", "w3");
    assert_int_equal(bdy_ledger_add(l, &again), 0);
    bdy_ledger_claim taken = claim("alc-taken", "w4", "w4");
    assert_int_equal(bdy_ledger_add(l, &taken), BDY_ECONFLICT);
    bdy_ledger_close(l);
    /* Applied once: a second open finds the same. */
    l = open_ledger(dir);
    assert_int_equal(bdy_ledger_count(l), 10);
    bdy_ledger_close(l);
    rm_rf(dir);
}

/* Reads see a claim from the moment it is committed, before the applier
 * has copied it into claims.db, and after. */
static void test_reads_before_and_after_apply(void **state)
{
    (void)state;
    char dir[] = "/tmp/bdy-ledger-XXXXXX";
    assert_non_null(mkdtemp(dir));
    bdy_ledger *l = open_ledger(dir);
    bdy_ledger_claim a = claim("alc-a", "w1", "uid-1");
    a.annotations_json = "{\"note\":\"n\"}";
    /* While this holds claims.db's write lock, the applier cannot apply. */
    sqlite3 *db = lock_claims_db(dir);
    for (int round = 0; round < 2; round++) {
        if (round == 0) {
            assert_int_equal(bdy_ledger_add(l, &a), 0);
        } else {
            assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
            sqlite3_close(db);
            char ids[16] = ""; /* each waits for the applier */
            assert_int_equal(bdy_ledger_each(l, collect_cb, ids, NULL), 0);
            assert_string_equal(ids, "alc-a,");
        }
        bdy_ledger_record *r = NULL;
        assert_int_equal(bdy_ledger_get(l, "alc-a", &r), 0);
        assert_string_equal(r->c.world, "w1");
        assert_string_equal(r->c.annotations_json, "{\"note\":\"n\"}");
        assert_null(r->c.labels_json);
        bdy_ledger_record_free(r);
        assert_true(bdy_ledger_has(l, "alc-a"));
    }
    /* Removed right after it was added (both possibly still unapplied). */
    bdy_ledger_claim b = claim("alc-b", "w2", "uid-2");
    assert_int_equal(bdy_ledger_add(l, &b), 0);
    assert_int_equal(bdy_ledger_remove(l, "alc-b"), 0);
    bdy_ledger_record *r = NULL;
    assert_int_equal(bdy_ledger_get(l, "alc-b", &r), BDY_ENOTFOUND);
    char ids[64] = "";
    assert_int_equal(bdy_ledger_each(l, collect_cb, ids, NULL), 0);
    assert_string_equal(ids, "alc-a,");
    bdy_ledger_close(l);
    rm_rf(dir);
}

/* The journal belongs to its claims.db: missing, it is asked for (an empty
 * file starts a new one); another ledger's is refused. */
static void test_journal_must_match(void **state)
{
    (void)state;
    char dir[] = "/tmp/bdy-ledger-XXXXXX", other[] = "/tmp/bdy-ledger-XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_non_null(mkdtemp(other));
    bdy_ledger *l = open_ledger(dir);
    bdy_ledger_claim a = claim("alc-a", "w1", "uid-1");
    assert_int_equal(bdy_ledger_add(l, &a), 0);
    bdy_ledger_close(l);
    bdy_ledger_close(open_ledger(other));
    char journal[96], cmd[256];
    snprintf(journal, sizeof(journal), "%s/claims.journal", dir);

    snprintf(cmd, sizeof(cmd), "mv '%s' '%s.away'", journal, journal);
    assert_int_equal(system(cmd), 0);
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    l = NULL;
    assert_int_equal(bdy_ledger_open(dir, false, &l, &eb), BDY_ENOTFOUND);
    assert_null(l);
    assert_non_null(strstr(eb.message, journal));
    assert_non_null(strstr(eb.message, "create an empty"));

    snprintf(cmd, sizeof(cmd), "cp '%s/claims.journal' '%s'", other, journal);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(bdy_ledger_open(dir, false, &l, &eb), BDY_ECORRUPT);
    assert_non_null(strstr(eb.message, "another claim ledger"));

    snprintf(cmd, sizeof(cmd), ": > '%s'", journal);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(bdy_ledger_open(dir, false, &l, &eb), 0);
    assert_int_equal(bdy_ledger_count(l), 1); /* what claims.db held stays */
    bdy_ledger_close(l);
    /* And the new journal is its own from now on. */
    l = open_ledger(dir);
    bdy_ledger_close(l);
    rm_rf(dir);
    rm_rf(other);
}

/* A journal group damaged with whole ones after it is not a crash's torn
 * tail: their claims were acknowledged. The start applies what comes
 * before the damage and refuses, saying how to go on. */
static void test_damaged_journal_is_refused(void **state)
{
    (void)state;
    char dir[] = "/tmp/bdy-ledger-XXXXXX";
    assert_non_null(mkdtemp(dir));
    bdy_ledger_close(open_ledger(dir));
    assert_int_equal(claim_while_locked_and_die(dir, three_claims), 0);
    /* The three groups are in blocks 1-3: one byte of the second's claim. */
    char journal[96];
    snprintf(journal, sizeof(journal), "%s/claims.journal", dir);
    FILE *f = fopen(journal, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, 2 * 4096 + 60, SEEK_SET), 0);
    int old = fgetc(f);
    assert_int_equal(fseek(f, 2 * 4096 + 60, SEEK_SET), 0);
    fputc(old ^ 0x20, f);
    assert_int_equal(fclose(f), 0);

    bdy_ledger *l = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_ledger_open(dir, false, &l, &eb), BDY_ECORRUPT);
    assert_null(l);
    assert_non_null(strstr(eb.message, "group 2 is damaged or missing and groups up to 3"));
    assert_non_null(strstr(eb.message, "create an empty"));
    /* The operator goes on without them: the claim before the damage was
     * applied by the refused start. */
    f = fopen(journal, "w");
    assert_non_null(f);
    assert_int_equal(fclose(f), 0);
    l = open_ledger(dir);
    assert_int_equal(bdy_ledger_count(l), 1);
    assert_true(bdy_ledger_has(l, "alc-0"));
    bdy_ledger_close(l);
    rm_rf(dir);
}

/* Claims and releases many times the journal's size: its space comes back
 * once the applier has the groups, the file never grows, and a reopen
 * finds exactly what is live. */
static void test_journal_ring_goes_round(void **state)
{
    (void)state;
    char dir[] = "/tmp/bdy-ledger-XXXXXX";
    assert_non_null(mkdtemp(dir));
    bdy_ledger *l = open_ledger(dir);
    enum { N = 3000 }; /* 6,000 groups of one block: three times round 2,047 */
    char id[32], prev[32] = "";
    for (int i = 0; i < N; i++) {
        char world[32];
        snprintf(id, sizeof(id), "alc-ring-%d", i);
        snprintf(world, sizeof(world), "w%d", i % 7);
        bdy_ledger_claim c = claim(id, world, world);
        if (prev[0] != '\0')
            assert_int_equal(bdy_ledger_remove(l, prev), 0);
        assert_int_equal(bdy_ledger_add(l, &c), 0);
        snprintf(prev, sizeof(prev), "%s", id);
    }
    assert_int_equal(bdy_ledger_count(l), 1);
    bdy_ledger_close(l);
    char journal[96];
    snprintf(journal, sizeof(journal), "%s/claims.journal", dir);
    struct stat st;
    assert_int_equal(stat(journal, &st), 0);
    assert_int_equal(st.st_size, 2048 * 4096);
    l = open_ledger(dir);
    assert_int_equal(bdy_ledger_count(l), 1);
    assert_true(bdy_ledger_has(l, prev));
    char ids[64] = "";
    assert_int_equal(bdy_ledger_each(l, collect_cb, ids, NULL), 0);
    char want[64];
    snprintf(want, sizeof(want), "%s,", prev);
    assert_string_equal(ids, want);
    bdy_ledger_close(l);
    rm_rf(dir);
}

/* A claim whose journal write fails is refused and leaves nothing behind:
 * not in the ledger now, not after a reopen, and its world is free. */
static void test_failed_commit_leaves_nothing(void **state)
{
    (void)state;
    fault_io_heal(); /* whatever a failed test before left armed */
    char dir[] = "/tmp/bdy-ledger-XXXXXX";
    assert_non_null(mkdtemp(dir));
    bdy_ledger *l = open_ledger(dir);
    bdy_ledger_claim x = claim("alc-fail", "w1", "w1");
    fault_io_arm(FAULT_IO_SYNC, 0, 1);
    assert_int_equal(bdy_ledger_add(l, &x), BDY_EIO);
    assert_int_equal(fault_io_failed(FAULT_IO_SYNC), 1);
    fault_io_heal();
    assert_false(bdy_ledger_has(l, "alc-fail"));
    assert_int_equal(bdy_ledger_count(l), 0);
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_ledger_health(l, &eb), BDY_EIO);
    assert_non_null(strstr(eb.message, "claims.journal"));

    /* The next commit works, and says so. */
    bdy_ledger_claim y = claim("alc-ok", "w1", "w1");
    assert_int_equal(bdy_ledger_add(l, &y), 0);
    assert_int_equal(bdy_ledger_health(l, NULL), 0);
    bdy_ledger_close(l);
    l = open_ledger(dir);
    assert_int_equal(bdy_ledger_count(l), 1);
    assert_true(bdy_ledger_has(l, "alc-ok"));
    assert_false(bdy_ledger_has(l, "alc-fail"));
    bdy_ledger_close(l);
    rm_rf(dir);
}

/* Claims alc-full-i on world fi; its rc. */
static int add_full(bdy_ledger *l, int i)
{
    char id[32], world[32];
    snprintf(id, sizeof(id), "alc-full-%d", i);
    snprintf(world, sizeof(world), "f%d", i);
    bdy_ledger_claim c = claim(id, world, world);
    return bdy_ledger_add(l, &c);
}

/* While claims.db takes nothing, the journal fills: every claim until then
 * is acknowledged, the next is refused (after the committer's wait), and
 * the ledger reports itself unhealthy. Once claims.db takes writes again
 * the applier catches up by itself, claims are taken again, and every
 * acknowledged one is there after a reopen. */
static void test_full_journal_refuses_then_recovers(void **state)
{
    (void)state;
    fault_io_heal(); /* whatever a failed test before left armed */
    char dir[] = "/tmp/bdy-ledger-XXXXXX";
    assert_non_null(mkdtemp(dir));
    bdy_ledger *l = open_ledger(dir);
    sqlite3 *lock = lock_claims_db(dir);
    int acked = 0, rc = 0;
    /* One block per claim (the test's claims are committed one by one):
     * 2,047 fit in the ring. */
    while (acked < 4096 && (rc = add_full(l, acked)) == 0)
        acked++;
    assert_int_equal(rc, BDY_EIO);
    assert_int_equal(acked, 2047);
    assert_false(bdy_ledger_has(l, "alc-full-2047"));
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_ledger_health(l, &eb), BDY_EIO);
    assert_non_null(strstr(eb.message, "full"));
    /* Reads that need claims.db current say they cannot have it. */
    char *ids = calloc(1, 64 * 1024);
    assert_non_null(ids);
    assert_int_equal(bdy_ledger_each(l, collect_cb, ids, NULL), BDY_EIO);

    assert_int_equal(sqlite3_exec(lock, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(lock);
    /* Each refused try waits 2 s for space; the applier retries within 5 s. */
    for (int tries = 0; tries < 15 && (rc = add_full(l, acked)) != 0; tries++)
        assert_int_equal(rc, BDY_EIO);
    assert_int_equal(rc, 0);
    acked++;
    ids[0] = '\0';
    assert_int_equal(bdy_ledger_each(l, collect_cb, ids, NULL), 0);
    assert_int_equal(bdy_ledger_health(l, NULL), 0);
    assert_int_equal(bdy_ledger_count(l), (size_t)acked);
    bdy_ledger_close(l);

    l = open_ledger(dir);
    assert_int_equal(bdy_ledger_count(l), (size_t)acked);
    assert_true(bdy_ledger_has(l, "alc-full-0"));
    assert_true(bdy_ledger_has(l, "alc-full-2047"));
    bdy_ledger_close(l);
    free(ids);
    rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_get_remove_persist),
        cmocka_unit_test(test_concurrent_group_commit),
        cmocka_unit_test(test_async_adds),
        cmocka_unit_test(test_inline_only_when_idle),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_missing_file_and_damage),
        cmocka_unit_test(test_journal_replayed_after_a_crash),
        cmocka_unit_test(test_reads_before_and_after_apply),
        cmocka_unit_test(test_journal_must_match),
        cmocka_unit_test(test_damaged_journal_is_refused),
        cmocka_unit_test(test_journal_ring_goes_round),
        cmocka_unit_test(test_failed_commit_leaves_nothing),
        cmocka_unit_test(test_full_journal_refuses_then_recovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
