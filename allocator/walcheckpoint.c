/* Background WAL checkpoints (see walcheckpoint.h). */
#include "bindery/walcheckpoint.h"

#include "bindery/log.h"
#include "bindery/util.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A routine RESTART holds writers back while it waits for the write lock
 * and for readers to leave the WAL, so it waits only this long; a busy
 * moment is simply tried again next period. */
#define ROUTINE_RESTART_WAIT_NS (2ull * 1000000)
/* Past restart_over bytes the WAL must stop growing: wait this long, but
 * after such a wait failed, not again for OVERSIZE_RETRY_NS (writers wait
 * for it all along; between tries they get through and the routine RESTART
 * goes on trying). */
#define OVERSIZE_RESTART_WAIT_NS (5000ull * 1000000)
#define OVERSIZE_RETRY_NS (30000ull * 1000000)
/* Busy retries 50 µs apart before the handlers fall back to 1 ms. */
#define FINE_RETRIES 40

struct bdy_wal_checkpointer {
    char *path;
    char thread_name[16];
    unsigned period_ms;
    sqlite3 *db;
    long long restart_over; /* bytes of WAL frames beyond which a RESTART waits long */
    long long frame_bytes;  /* one WAL frame: a page and its 24-byte header */
    sqlite3_stmt *st_checkpoint;
    sqlite3_stmt *st_restart;
    /* The checkpoint thread's busy handler: how long the current RESTART
     * may wait, and since when it has been waiting. */
    uint64_t busy_wait_ns;
    uint64_t busy_since_ns;
    uint64_t next_oversize_ns; /* no long RESTART before this (monotonic) */
    bdy_log_limit fail_log;    /* checkpoints run every few ms: one line a period */
    /* Set while a RESTART runs: the owner's writers wait at
     * bdy_wal_checkpointer_before_write() instead of racing it for the
     * write lock (fcntl locks are not fair, and back-to-back commits would
     * starve it). */
    atomic_bool restarting;
    pthread_mutex_t gate_lock;
    pthread_cond_t gate_open;
    pthread_t thread;
    pthread_mutex_t lock; /* stop */
    pthread_cond_t wake;
    bool stop;
};

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};
    nanosleep(&ts, NULL);
}

static int checkpoint_busy(void *arg, int count)
{
    bdy_wal_checkpointer *c = arg;
    uint64_t now = bdy_monotonic_ns();
    if (count == 0)
        c->busy_since_ns = now;
    if (now - c->busy_since_ns >= c->busy_wait_ns)
        return 0;
    sleep_us(count < FINE_RETRIES ? 50 : 1000);
    return 1;
}

/* Runs a checkpoint statement; on success *log is the WAL's frames and
 * *busy whether a lock or a reader stopped it before it finished. */
static bool run_checkpoint(bdy_wal_checkpointer *c, sqlite3_stmt *st, long long *log, bool *busy)
{
    *log = 0;
    *busy = false;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        *busy = sqlite3_column_int64(st, 0) != 0;
        *log = sqlite3_column_int64(st, 1);
    }
    while (step == SQLITE_ROW)
        step = sqlite3_step(st);
    sqlite3_reset(st);
    if (step != SQLITE_DONE && sqlite3_errcode(c->db) != SQLITE_BUSY) {
        uint64_t held = 0;
        if (bdy_log_admit(&c->fail_log, 10000, &held))
            bdy_warn("sqlite",
                     "%s: checkpoint failed: %s (%llu such lines held back before this one)",
                     c->path, sqlite3_errmsg(c->db), (unsigned long long)held);
        return false;
    }
    return step == SQLITE_DONE;
}

/* One period's work. A PASSIVE checkpoint copies the WAL into the database
 * without holding anybody back. Under steady writes it never catches up
 * with the last commit, so the WAL would never restart from its beginning:
 * the file grows, and every commit appends to new blocks (a size change
 * for each fdatasync) instead of overwriting old ones. So when frames are
 * left, a RESTART follows: it copies the few frames committed meanwhile
 * and makes the next writer start over, holding writers back for that copy
 * and two fsyncs (a millisecond or two), or gives up after ROUTINE_RESTART_WAIT_NS and tries again
 * next period. Past the size limit (readers that never let go) it waits
 * much longer, so the file stops growing. */
static void checkpoint_once(bdy_wal_checkpointer *c)
{
    long long log;
    bool busy;
    if (!run_checkpoint(c, c->st_checkpoint, &log, &busy))
        return;
    /* Judged by the frames in use, not the file's size: a restarted WAL
     * keeps its size (down to the writers' journal_size_limit), and a file
     * that one burst made large would make every RESTART after it wait long
     * for readers, holding the writers back all that time. */
    bool oversize = c->restart_over > 0 && bdy_monotonic_ns() >= c->next_oversize_ns &&
                    log > c->restart_over / c->frame_bytes;
    /* Even when all of it was copied, a commit since then keeps the next
     * writer from restarting the WAL: only an empty one needs nothing. */
    if (!oversize && log <= 0)
        return;
    c->busy_wait_ns = oversize ? OVERSIZE_RESTART_WAIT_NS : ROUTINE_RESTART_WAIT_NS;
    pthread_mutex_lock(&c->gate_lock);
    atomic_store(&c->restarting, true);
    pthread_mutex_unlock(&c->gate_lock);
    bool ran = run_checkpoint(c, c->st_restart, &log, &busy);
    pthread_mutex_lock(&c->gate_lock);
    atomic_store(&c->restarting, false);
    pthread_cond_broadcast(&c->gate_open);
    pthread_mutex_unlock(&c->gate_lock);
    if (oversize && ran && busy) {
        bdy_warn("sqlite",
                 "%s: the WAL is over %lld bytes and readers kept it busy for %llu ms; "
                 "trying again in %llu s",
                 c->path, c->restart_over, OVERSIZE_RESTART_WAIT_NS / 1000000,
                 OVERSIZE_RETRY_NS / 1000000000);
        c->next_oversize_ns = bdy_monotonic_ns() + OVERSIZE_RETRY_NS;
    }
}

void bdy_wal_checkpointer_before_write(bdy_wal_checkpointer *c)
{
    if (c == NULL || !atomic_load(&c->restarting))
        return;
    pthread_mutex_lock(&c->gate_lock);
    while (atomic_load(&c->restarting))
        pthread_cond_wait(&c->gate_open, &c->gate_lock);
    pthread_mutex_unlock(&c->gate_lock);
}

/* Counts retries, not time: the sleeps run long (timer slack makes 50 µs
 * nearer 100), so the wait can exceed timeout_ms somewhat, as SQLite's own
 * handler's can. */
static int writer_busy(void *arg, int count)
{
    long long timeout_us = (long long)(uintptr_t)arg * 1000;
    bool fine = count < FINE_RETRIES;
    long long waited_us =
        fine ? count * 50LL : FINE_RETRIES * 50LL + (count - FINE_RETRIES) * 1000LL;
    if (waited_us >= timeout_us)
        return 0;
    sleep_us(fine ? 50 : 1000);
    return 1;
}

int bdy_wal_writer_size_limit(sqlite3 *db, size_t bytes)
{
    char sql[64];
    snprintf(sql, sizeof(sql), "PRAGMA journal_size_limit=%lld", (long long)bytes);
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : BDY_EIO;
}

void bdy_wal_writer_busy_handler(sqlite3 *db, unsigned timeout_ms)
{
    if (timeout_ms == 0)
        sqlite3_busy_handler(db, NULL, NULL); /* as sqlite3_busy_timeout(db, 0) */
    else
        sqlite3_busy_handler(db, writer_busy, (void *)(uintptr_t)timeout_ms);
}

static void *checkpoint_main(void *arg)
{
    bdy_wal_checkpointer *c = arg;
    bdy_thread_start(c->thread_name, false);
    pthread_mutex_lock(&c->lock);
    while (!c->stop) {
        struct timespec ts;
        /* Monotonic: a wall clock stepped back would hold every
         * checkpoint back as long, and the WALs would grow meanwhile. */
        bdy_deadline_after_ms(CLOCK_MONOTONIC, c->period_ms, &ts);
        pthread_cond_timedwait(&c->wake, &c->lock, &ts);
        if (c->stop)
            break;
        pthread_mutex_unlock(&c->lock);
        checkpoint_once(c);
        pthread_mutex_lock(&c->lock);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* Releases everything but the thread (not started, or joined). */
static void checkpointer_free(bdy_wal_checkpointer *c)
{
    sqlite3_finalize(c->st_checkpoint);
    sqlite3_finalize(c->st_restart);
    sqlite3_close(c->db);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->gate_lock);
    pthread_cond_destroy(&c->gate_open);
    free(c->path);
    free(c);
}

int bdy_wal_checkpointer_start(const char *path, unsigned period_ms, size_t restart_over_bytes,
                               const char *thread_name, bdy_wal_checkpointer **out, bdy_errbuf *eb)
{
    int rc = 0;
    *out = NULL;
    bdy_wal_checkpointer *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->path = strdup(path)) == NULL) {
        free(c);
        return bdy_fail(eb, BDY_ENOMEM, "out of memory");
    }
    c->restart_over = (long long)restart_over_bytes;
    snprintf(c->thread_name, sizeof(c->thread_name), "%s", thread_name);
    c->period_ms = period_ms > 0 ? period_ms : 1;
    pthread_mutex_init(&c->lock, NULL);
    bdy_cond_init_monotonic(&c->wake);
    pthread_mutex_init(&c->gate_lock, NULL);
    pthread_cond_init(&c->gate_open, NULL);
    if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        rc = bdy_fail(eb, BDY_EIO, "%s: cannot open for checkpoints: %s", path,
                      c->db ? sqlite3_errmsg(c->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_handler(c->db, checkpoint_busy, c);
    /* A checkpoint must sync the database before the WAL it copied can be
     * restarted and overwritten; FULL is the library's default, but this
     * must not depend on how SQLite was built. */
    if (sqlite3_exec(c->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK) {
        rc =
            bdy_fail(eb, BDY_EIO, "%s: cannot set up checkpoints: %s", path, sqlite3_errmsg(c->db));
        goto fail;
    }
    sqlite3_stmt *page = NULL;
    c->frame_bytes = 4096 + 24;
    if (sqlite3_prepare_v2(c->db, "PRAGMA page_size", -1, &page, NULL) == SQLITE_OK &&
        sqlite3_step(page) == SQLITE_ROW && sqlite3_column_int64(page, 0) > 0)
        c->frame_bytes = sqlite3_column_int64(page, 0) + 24;
    sqlite3_finalize(page);
    /* A statement, not sqlite3_wal_checkpoint_v2(): a connection that has
     * not yet read the file does not know it is in WAL mode, and the call
     * then returns SQLITE_OK having done nothing (the WAL grew for ever). */
    if (sqlite3_prepare_v2(c->db, "PRAGMA wal_checkpoint(PASSIVE)", -1, &c->st_checkpoint, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(c->db, "PRAGMA wal_checkpoint(RESTART)", -1, &c->st_restart, NULL) !=
            SQLITE_OK) {
        rc = bdy_fail(eb, BDY_EIO, "%s: cannot prepare checkpoints: %s", path,
                      sqlite3_errmsg(c->db));
        goto fail;
    }
    if (pthread_create(&c->thread, NULL, checkpoint_main, c) != 0) {
        rc = bdy_fail(eb, BDY_ENOMEM, "%s: cannot start the checkpoint thread", path);
        goto fail;
    }
    *out = c;
    return 0;
fail:
    checkpointer_free(c);
    return rc;
}

void bdy_wal_checkpointer_stop(bdy_wal_checkpointer *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->lock);
    c->stop = true;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    checkpointer_free(c);
}
