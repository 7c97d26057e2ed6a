/* Background WAL checkpoints (see walcheckpoint.h). */
#include "bindery/walcheckpoint.h"

#include "bindery/log.h"
#include "bindery/util.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define CHECKPOINT_BUSY_MS 5000

struct bdy_wal_checkpointer {
    char *path;
    char thread_name[16];
    unsigned period_ms;
    sqlite3 *db;
    char *wal_path;
    long long restart_over; /* bytes of WAL beyond which a RESTART checkpoint runs */
    sqlite3_stmt *st_checkpoint;
    sqlite3_stmt *st_restart;
    pthread_t thread;
    pthread_mutex_t lock; /* stop */
    pthread_cond_t wake;
    bool stop;
};

static void *checkpoint_main(void *arg)
{
    bdy_wal_checkpointer *c = arg;
    bdy_thread_start(c->thread_name, true);
    pthread_mutex_lock(&c->lock);
    while (!c->stop) {
        struct timespec ts;
        bdy_deadline_after_ms(CLOCK_REALTIME, c->period_ms, &ts);
        pthread_cond_timedwait(&c->wake, &c->lock, &ts);
        if (c->stop)
            break;
        pthread_mutex_unlock(&c->lock);
        /* Readers that keep the WAL busy can stop PASSIVE checkpoints from
         * ever restarting it; past the size limit a RESTART checkpoint waits
         * for them (and holds writers back for that moment). */
        struct stat st;
        bool restart = c->restart_over > 0 && stat(c->wal_path, &st) == 0 &&
                       (long long)st.st_size > c->restart_over;
        sqlite3_stmt *ckpt = restart ? c->st_restart : c->st_checkpoint;
        int step = sqlite3_step(ckpt);
        while (step == SQLITE_ROW)
            step = sqlite3_step(ckpt);
        if (step != SQLITE_DONE)
            bdy_warn("sqlite", "%s: checkpoint failed: %s", c->path, sqlite3_errmsg(c->db));
        sqlite3_reset(ckpt);
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
    free(c->wal_path);
    free(c->path);
    free(c);
}

int bdy_wal_checkpointer_start(const char *path, unsigned period_ms, size_t restart_over_bytes,
                               const char *thread_name, bdy_wal_checkpointer **out, bdy_errbuf *eb)
{
    int rc = 0;
    *out = NULL;
    bdy_wal_checkpointer *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->path = strdup(path)) == NULL ||
        asprintf(&c->wal_path, "%s-wal", path) < 0) {
        if (c != NULL)
            free(c->path);
        free(c);
        return bdy_fail(eb, BDY_ENOMEM, "out of memory");
    }
    c->restart_over = (long long)restart_over_bytes;
    snprintf(c->thread_name, sizeof(c->thread_name), "%s", thread_name);
    c->period_ms = period_ms > 0 ? period_ms : 1;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->wake, NULL);
    if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        rc = bdy_fail(eb, BDY_EIO, "%s: cannot open for checkpoints: %s", path,
                      c->db ? sqlite3_errmsg(c->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(c->db, CHECKPOINT_BUSY_MS);
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
