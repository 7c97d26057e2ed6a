/* Background whole-file checks of SQLite databases (see dbcheck.h). */
#include "bindery/dbcheck.h"

#include "bindery/log.h"
#include "bindery/util.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A reader waits this long for a writer that holds the WAL's locks (a
 * RESTART checkpoint, the start of a WAL): never long. */
#define CHECK_BUSY_MS 5000
/* A check that could not finish (busy, unreadable, out of memory) is
 * tried again after this long, this many times in all. */
#define CHECK_RETRY_MS 60000u
#define CHECK_ATTEMPTS 5
/* stop() repeats its interrupt this often until the check has ended:
 * SQLite drops an interrupt that arrives while no statement runs, so one
 * sent just before the check's statement starts would be lost. */
#define STOP_REPEAT_MS 10u

struct bdy_db_check {
    char *path;
    char thread_name[16];
    char component[32];
    pthread_t thread;
    pthread_mutex_t lock; /* everything below */
    pthread_cond_t cond; /* CLOCK_MONOTONIC: stop wakes a retry wait; the thread's end wakes stop */
    sqlite3 *db;         /* the check's connection while it runs: stop interrupts it */
    bool stopping;
    bool ended;
    int rc; /* BDY_EBUSY until the check ends */
    char message[400];
};

/* SQLite reports "*** in database main ***\nPage 32: ...": the problem,
 * on one line, for a log line and an error message. */
static void one_line(char *out, size_t cap, const char *report)
{
    static const char header[] = "*** in database main ***\n";
    if (strncmp(report, header, sizeof(header) - 1) == 0)
        report += sizeof(header) - 1;
    snprintf(out, cap, "%s", report);
    for (char *p = out; *p != '\0'; p++)
        if (*p == '\n')
            *p = ' ';
}

/* db's last error as a Bindery code, with SQLite's message in msg. */
static int sql_code(sqlite3 *db, char *msg, size_t cap)
{
    int code = sqlite3_errcode(db);
    snprintf(msg, cap, "%s", sqlite3_errmsg(db));
    return code == SQLITE_INTERRUPT                          ? BDY_ESHUTDOWN
           : code == SQLITE_CORRUPT || code == SQLITE_NOTADB ? BDY_ECORRUPT
           : code == SQLITE_NOMEM                            ? BDY_ENOMEM
                                                             : BDY_EIO;
}

/* Runs the check on db; 0, BDY_ECORRUPT or another error with the detail
 * in msg. SQLITE_INTERRUPT (stop) comes back as BDY_ESHUTDOWN. */
static int run_check(sqlite3 *db, char *msg, size_t cap)
{
    sqlite3_stmt *st = NULL;
    int rc = 0;
    /* One problem is enough to call the file damaged. */
    if (sqlite3_prepare_v2(db, "PRAGMA quick_check(1)", -1, &st, NULL) != SQLITE_OK) {
        rc = sql_code(db, msg, cap);
        goto out;
    }
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = sql_code(db, msg, cap);
        goto out;
    }
    const char *res = (const char *)sqlite3_column_text(st, 0);
    if (res == NULL || strcmp(res, "ok") != 0) {
        rc = BDY_ECORRUPT;
        one_line(msg, cap, res ? res : "no answer from the check");
    }
out:
    sqlite3_finalize(st);
    return rc;
}

/* One attempt on a connection of its own, which stop() may interrupt.
 * *again: whether a failure is worth another attempt (not a file that
 * cannot even be opened). */
static int attempt(bdy_db_check *c, char *msg, size_t cap, bool *again)
{
    sqlite3 *db = NULL;
    *again = false;
    if (sqlite3_open_v2(c->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        snprintf(msg, cap, "cannot open it: %s", db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return BDY_EIO;
    }
    *again = true;
    sqlite3_busy_timeout(db, CHECK_BUSY_MS);
    pthread_mutex_lock(&c->lock);
    bool stopping = c->stopping;
    if (!stopping)
        c->db = db; /* from here on stop() interrupts it */
    pthread_mutex_unlock(&c->lock);
    int rc = stopping ? BDY_ESHUTDOWN : run_check(db, msg, cap);
    pthread_mutex_lock(&c->lock);
    c->db = NULL; /* before the close: stop() must not interrupt a closed connection */
    pthread_mutex_unlock(&c->lock);
    sqlite3_close(db);
    return rc;
}

/* Waits before another attempt; false when stop() came first. */
static bool wait_retry(bdy_db_check *c)
{
    struct timespec until;
    bdy_deadline_after_ms(CLOCK_MONOTONIC, CHECK_RETRY_MS, &until);
    pthread_mutex_lock(&c->lock);
    while (!c->stopping && pthread_cond_timedwait(&c->cond, &c->lock, &until) == 0)
        ;
    bool go_on = !c->stopping;
    pthread_mutex_unlock(&c->lock);
    return go_on;
}

static void *check_main(void *arg)
{
    bdy_db_check *c = arg;
    bdy_thread_start(c->thread_name, true);
    char msg[sizeof(c->message)] = "";
    int rc = 0;
    for (int n = 1;; n++) {
        uint64_t started = bdy_monotonic_ns();
        bool again = false;
        rc = attempt(c, msg, sizeof(msg), &again);
        double secs = (double)(bdy_monotonic_ns() - started) / 1e9;
        if (rc == BDY_ESHUTDOWN)
            break;
        if (rc == 0) {
            bdy_info(c->component, "%s: whole-file check found no damage (%.2f s)", c->path, secs);
            break;
        }
        if (rc == BDY_ECORRUPT) {
            bdy_error(c->component, "data file %s is corrupt: %s; restore it from a backup",
                      c->path, msg);
            break;
        }
        if (!again || n == CHECK_ATTEMPTS) {
            bdy_warn(c->component, "%s: whole-file check did not finish: %s; not tried again",
                     c->path, msg);
            break;
        }
        bdy_warn(c->component, "%s: whole-file check did not finish: %s; trying again in %u s",
                 c->path, msg, CHECK_RETRY_MS / 1000);
        if (!wait_retry(c)) {
            rc = BDY_ESHUTDOWN;
            break;
        }
    }
    pthread_mutex_lock(&c->lock);
    if (rc != BDY_ESHUTDOWN) {
        c->rc = rc;
        snprintf(c->message, sizeof(c->message), "%s", msg);
    }
    c->ended = true;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

int bdy_db_check_start(const char *path, const char *thread_name, const char *component,
                       bdy_db_check **out, bdy_errbuf *eb)
{
    *out = NULL;
    bdy_db_check *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->path = strdup(path)) == NULL) {
        free(c);
        return bdy_fail(eb, BDY_ENOMEM, "out of memory");
    }
    snprintf(c->thread_name, sizeof(c->thread_name), "%s", thread_name);
    snprintf(c->component, sizeof(c->component), "%s", component);
    c->rc = BDY_EBUSY;
    pthread_mutex_init(&c->lock, NULL);
    bdy_cond_init_monotonic(&c->cond);
    if (pthread_create(&c->thread, NULL, check_main, c) != 0) {
        pthread_cond_destroy(&c->cond);
        pthread_mutex_destroy(&c->lock);
        free(c->path);
        free(c);
        return bdy_fail(eb, BDY_EIO, "%s: cannot start the whole-file check", path);
    }
    *out = c;
    return 0;
}

int bdy_db_check_result(bdy_db_check *c, bdy_errbuf *eb)
{
    pthread_mutex_lock(&c->lock);
    int rc = c->rc;
    if (rc == BDY_ECORRUPT)
        bdy_fail(eb, rc, "data file %s is corrupt: %s", c->path, c->message);
    else if (rc == BDY_EBUSY)
        bdy_fail(eb, rc, "%s: the whole-file check is running", c->path);
    else if (rc != 0)
        bdy_fail(eb, rc, "%s: the whole-file check did not finish: %s", c->path, c->message);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

void bdy_db_check_stop(bdy_db_check *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->lock);
    c->stopping = true;
    pthread_cond_broadcast(&c->cond);
    while (!c->ended) {
        /* The thread clears db under this lock before closing it. */
        if (c->db != NULL)
            sqlite3_interrupt(c->db);
        struct timespec until;
        bdy_deadline_after_ms(CLOCK_MONOTONIC, STOP_REPEAT_MS, &until);
        pthread_cond_timedwait(&c->cond, &c->lock, &until);
    }
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
    free(c->path);
    free(c);
}
