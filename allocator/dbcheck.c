/* Background whole-file checks of SQLite databases (see dbcheck.h). */
#include "bindery/dbcheck.h"

#include "bindery/log.h"
#include "bindery/util.h"

#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A reader waits this long for a writer that holds the WAL's locks (a
 * RESTART checkpoint, the start of a WAL): never long. */
#define CHECK_BUSY_MS 5000

struct bdy_db_check {
    char *path;
    char thread_name[16];
    char component[32];
    pthread_t thread;
    pthread_mutex_t lock; /* everything below */
    sqlite3 *db;          /* the check's connection while it runs: stop interrupts it */
    bool stopping;
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

/* Runs the check on db; 0, BDY_ECORRUPT or another error with the detail
 * in msg. SQLITE_INTERRUPT (stop) comes back as BDY_ESHUTDOWN. */
static int run_check(sqlite3 *db, char *msg, size_t cap)
{
    sqlite3_stmt *st = NULL;
    int rc = 0;
    /* One problem is enough to call the file damaged. */
    if (sqlite3_prepare_v2(db, "PRAGMA quick_check(1)", -1, &st, NULL) != SQLITE_OK) {
        rc = sqlite3_errcode(db) == SQLITE_INTERRUPT ? BDY_ESHUTDOWN : BDY_ECORRUPT;
        snprintf(msg, cap, "%s", sqlite3_errmsg(db));
        goto out;
    }
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        const char *res = (const char *)sqlite3_column_text(st, 0);
        if (res == NULL || strcmp(res, "ok") != 0) {
            rc = BDY_ECORRUPT;
            one_line(msg, cap, res ? res : "no answer from the check");
        }
        goto out;
    }
    int code = sqlite3_errcode(db);
    rc = code == SQLITE_INTERRUPT                          ? BDY_ESHUTDOWN
         : code == SQLITE_CORRUPT || code == SQLITE_NOTADB ? BDY_ECORRUPT
         : code == SQLITE_NOMEM                            ? BDY_ENOMEM
                                                           : BDY_EIO;
    snprintf(msg, cap, "%s", sqlite3_errmsg(db));
out:
    sqlite3_finalize(st);
    return rc;
}

static void *check_main(void *arg)
{
    bdy_db_check *c = arg;
    bdy_thread_start(c->thread_name, true);
    /* Idle priority where the kernel allows it: the check runs while
     * start-up lists the worlds, and must not take a core from that. */
    struct sched_param idle = {.sched_priority = 0};
    if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle) != 0)
        bdy_debug(c->component, "%s: the check runs at background priority, not idle", c->path);
    uint64_t started = bdy_monotonic_ns();
    char msg[sizeof(c->message)] = "";
    sqlite3 *db = NULL;
    int rc = 0;
    if (sqlite3_open_v2(c->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        rc = BDY_EIO;
        snprintf(msg, sizeof(msg), "cannot open it: %s", db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        db = NULL;
    } else {
        sqlite3_busy_timeout(db, CHECK_BUSY_MS);
        pthread_mutex_lock(&c->lock);
        bool stopping = c->stopping;
        if (!stopping)
            c->db = db; /* from here on stop() may interrupt it */
        pthread_mutex_unlock(&c->lock);
        rc = stopping ? BDY_ESHUTDOWN : run_check(db, msg, sizeof(msg));
    }
    pthread_mutex_lock(&c->lock);
    c->db = NULL;
    pthread_mutex_unlock(&c->lock);
    sqlite3_close(db);
    if (rc == BDY_ESHUTDOWN)
        return NULL; /* stopped: nobody asks for the result any more */
    double secs = (double)(bdy_monotonic_ns() - started) / 1e9;
    if (rc == 0)
        bdy_info(c->component, "%s: whole-file check found no damage (%.2f s)", c->path, secs);
    else if (rc == BDY_ECORRUPT)
        bdy_error(c->component, "data file %s is corrupt: %s; restore it from a backup", c->path,
                  msg);
    else
        bdy_warn(c->component, "%s: whole-file check did not finish: %s", c->path, msg);
    pthread_mutex_lock(&c->lock);
    c->rc = rc;
    snprintf(c->message, sizeof(c->message), "%s", msg);
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
    if (pthread_create(&c->thread, NULL, check_main, c) != 0) {
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
    /* The thread clears db under this lock before closing it. */
    if (c->db != NULL)
        sqlite3_interrupt(c->db);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    pthread_mutex_destroy(&c->lock);
    free(c->path);
    free(c);
}
