/* The claim ledger (see ledger.h): one SQLite file, group commit by one
 * committer thread (or inline on an idle ledger) on one write connection, a
 * separate connection for reads. */
#include "bindery/ledger.h"

#include "bindery/dbcheck.h"
#include "bindery/hmap.h"
#include "bindery/log.h"
#include "bindery/util.h"
#include "bindery/walcheckpoint.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define LEDGER_FILE "claims.db"
#define LEDGER_SCHEMA_VERSION "2"
#define LEDGER_MIN_BUCKETS 1024
#define LEDGER_BUSY_MS 5000
/* Checkpoints run in their own thread, off the commit path, this often. */
#define LEDGER_CHECKPOINT_MS 500
/* A WAL kept busy by readers past this size gets a RESTART that waits for
 * them (walcheckpoint.h). */
#define LEDGER_WAL_RESTART_BYTES (64u << 20)

typedef enum op_kind { OP_ADD, OP_REMOVE } op_kind;

/* A live row as the committer knows it. Uniqueness of ids and worlds is
 * checked here, in memory, not by SQLite indexes: ids and uids are random,
 * so an index on either would dirty a different page for every claim and a
 * batch of n claims would write some 2n pages instead of a few. The table
 * itself is keyed by an increasing rowid, so a batch appends. */
typedef struct live_row {
    bdy_hnode by_id; /* first: node.key = id */
    bdy_hnode by_uid;
    int64_t rowid; /* 0 until inserted */
    bool removing; /* a remove of it is in the current batch */
    char *id;      /* into the same allocation */
    char *uid;
} live_row;

static live_row *row_of_uid(bdy_hnode *n)
{
    return n ? (live_row *)(void *)((char *)n - offsetof(live_row, by_uid)) : NULL;
}

/* A queued write: on its caller's stack (sync) or the heap (async). */
typedef struct ledger_op {
    struct ledger_op *next;
    op_kind kind;
    const bdy_ledger_claim *claim; /* OP_ADD */
    const char *id;                /* OP_REMOVE */
    int rc;
    live_row *row;         /* the row it added or removes, while the batch runs */
    bdy_ledger_done_cb cb; /* async: called on the committer, then the op is freed */
    void *cb_data;
    sem_t *wake; /* sync: posted once rc is final */
} ledger_op;

struct bdy_ledger {
    char *path;
    sqlite3 *wdb; /* write connection: used only by the current leader */
    sqlite3_stmt *st_begin;
    sqlite3_stmt *st_commit;
    sqlite3_stmt *st_rollback;
    sqlite3_stmt *st_insert;
    sqlite3_stmt *st_delete;

    /* The committer thread owns wdb; callers queue ops for it. */
    pthread_mutex_t q_lock; /* head, tail, count, stopping */
    pthread_cond_t q_nonempty;
    ledger_op *head;
    ledger_op *tail;
    bool stopping;
    bool busy; /* a batch is being committed (by the committer or inline) */
    /* Inline commits whose callback has not returned yet; `reported` is
     * broadcast when it drops to 0 (bdy_ledger_stop_writes waits for it). */
    unsigned inline_reporting;
    pthread_cond_t reported;
    /* When the last commit ended and how long it took (monotonic ns): a
     * claim is committed on its caller's thread only once the ledger has
     * been idle for at least that long (see bdy_ledger_add_async). */
    uint64_t idle_since_ns;
    uint64_t last_commit_ns;

    /* Live rows by id and by world uid. The committer changes them (under
     * map_lock); readers look rowids up under map_lock. */
    pthread_mutex_t map_lock;
    bdy_hmap by_id;
    bdy_hmap by_uid;
    pthread_t committer;
    bool committer_started;

    pthread_mutex_t r_lock; /* rdb and its statements */
    sqlite3 *rdb;
    sqlite3_stmt *st_get;

    /* Checkpointer: copies the WAL into the database in the background so
     * no claim's commit pays for it (autocheckpoint is off). */
    bdy_wal_checkpointer *ckpt;
    bdy_log_limit write_log; /* a full disk fails every claim: one line a period */
    bdy_write_health writes; /* bdy_ledger_health */
    bool existed;            /* the file was there at open: worth a whole-file check */
    bdy_db_check *check;     /* under q_lock; NULL until that check starts */
};

static const char *const COLUMNS =
    "id, ns, world, world_uid, pool, claimant, source, claimed_at, idem_key, request_hash, "
    "labels, annotations, answer";
#define NCOLUMNS 13

static void *committer_main(void *arg);

/* Warns of a failed write on the write connection, at most once every
 * 10 s (committer only: it reads the connection's error). */
static void ledger_warn(bdy_ledger *l, const char *what)
{
    uint64_t held = 0;
    if (bdy_log_admit(&l->write_log, 10000, &held))
        bdy_warn("ledger", "%s: %s: %s (%llu such lines held back before this one)", l->path, what,
                 sqlite3_errmsg(l->wdb), (unsigned long long)held);
}

static int sql_fail(sqlite3 *db, bdy_errbuf *eb, const char *path)
{
    int code = db ? sqlite3_errcode(db) : SQLITE_NOMEM;
    int rc = code == SQLITE_NOMEM                              ? BDY_ENOMEM
             : code == SQLITE_READONLY                         ? BDY_EREADONLY
             : code == SQLITE_CORRUPT || code == SQLITE_NOTADB ? BDY_ECORRUPT
                                                               : BDY_EIO;
    return bdy_fail(eb, rc, "claim ledger %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
}

static int open_conn(const char *path, sqlite3 **db, bdy_errbuf *eb)
{
    if (sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        int rc = sql_fail(*db, eb, path);
        sqlite3_close(*db);
        *db = NULL;
        return rc;
    }
    sqlite3_busy_timeout(*db, LEDGER_BUSY_MS);
    return 0;
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, const char *path,
                   bdy_errbuf *eb)
{
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK)
        return sql_fail(db, eb, path);
    return 0;
}

/* Creates the table on a new file; refuses a file of another version. */
static int init_schema(bdy_ledger *l, bdy_errbuf *eb)
{
    static const char *const ddl =
        "PRAGMA journal_mode=WAL;"
        "PRAGMA synchronous=FULL;"
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT OR IGNORE INTO meta VALUES ('schema', '" LEDGER_SCHEMA_VERSION "');"
        "CREATE TABLE IF NOT EXISTS claims ("
        " seq INTEGER PRIMARY KEY," /* rowid: claim order, no sequence table to write */
        " id TEXT NOT NULL, ns TEXT NOT NULL, world TEXT NOT NULL,"
        " world_uid TEXT NOT NULL, pool TEXT NOT NULL, claimant TEXT NOT NULL,"
        " source TEXT NOT NULL, claimed_at TEXT NOT NULL, idem_key TEXT, request_hash TEXT,"
        " labels TEXT, annotations TEXT, answer TEXT NOT NULL);";
    if (sqlite3_exec(l->wdb, ddl, NULL, NULL, NULL) != SQLITE_OK)
        return sql_fail(l->wdb, eb, l->path);
    sqlite3_stmt *st = NULL;
    int rc = prepare(l->wdb, "SELECT value FROM meta WHERE key='schema'", &st, l->path, eb);
    if (rc != 0)
        return rc;
    const char *v = sqlite3_step(st) == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : "";
    if (v == NULL || strcmp(v, LEDGER_SCHEMA_VERSION) != 0)
        rc = bdy_fail(eb, BDY_ECORRUPT, "claim ledger %s has schema version %s, expected %s",
                      l->path, v ? v : "(none)", LEDGER_SCHEMA_VERSION);
    sqlite3_finalize(st);
    return rc;
}

/* A new row record (not yet in the maps). */
static live_row *row_new(const char *id, const char *uid, int64_t rowid)
{
    size_t il = strlen(id) + 1;
    size_t ul = strlen(uid) + 1;
    live_row *r = calloc(1, sizeof(*r) + il + ul);
    if (r == NULL)
        return NULL;
    r->id = (char *)(r + 1);
    r->uid = r->id + il;
    memcpy(r->id, id, il);
    memcpy(r->uid, uid, ul);
    r->rowid = rowid;
    r->by_id.key = r->id;
    r->by_id.hash = bdy_hash_str(r->id);
    r->by_uid.key = r->uid;
    r->by_uid.hash = bdy_hash_str(r->uid);
    return r;
}

/* Under map_lock. */
static void row_link(bdy_ledger *l, live_row *r)
{
    bdy_hmap_insert(&l->by_id, &r->by_id);
    bdy_hmap_insert(&l->by_uid, &r->by_uid);
}

/* Under map_lock; frees r. */
static void row_unlink(bdy_ledger *l, live_row *r)
{
    bdy_hmap_remove(&l->by_id, &r->by_id);
    bdy_hmap_remove(&l->by_uid, &r->by_uid);
    free(r);
}

static live_row *find_id(bdy_ledger *l, const char *id)
{
    return (live_row *)bdy_hmap_find(&l->by_id, id, bdy_hash_str(id));
}

static live_row *find_uid(bdy_ledger *l, const char *uid)
{
    return row_of_uid(bdy_hmap_find(&l->by_uid, uid, bdy_hash_str(uid)));
}

/* Reads every row's id, uid and rowid into the maps (open). A file with
 * two live rows for one id or one world is refused: it was not written by
 * this code. */
static int load_rows(bdy_ledger *l, bdy_errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(l->rdb, "SELECT seq, id, world_uid FROM claims", &st, l->path, eb);
    if (rc != 0)
        return rc;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 1);
        const char *uid = (const char *)sqlite3_column_text(st, 2);
        if ((id == NULL && sqlite3_column_type(st, 1) != SQLITE_NULL) ||
            (uid == NULL && sqlite3_column_type(st, 2) != SQLITE_NULL)) {
            rc = bdy_fail(eb, BDY_ENOMEM, "out of memory reading claim ledger %s", l->path);
            goto out;
        }
        if (id == NULL || uid == NULL || find_id(l, id) != NULL || find_uid(l, uid) != NULL) {
            rc = bdy_fail(eb, BDY_ECORRUPT,
                          "claim ledger %s is inconsistent: row %lld repeats "
                          "a claim or a world",
                          l->path, (long long)sqlite3_column_int64(st, 0));
            goto out;
        }
        live_row *r = row_new(id, uid, sqlite3_column_int64(st, 0));
        if (r == NULL) {
            rc = bdy_fail(eb, BDY_ENOMEM, "out of memory");
            goto out;
        }
        row_link(l, r);
    }
    if (step != SQLITE_DONE)
        rc = sql_fail(l->rdb, eb, l->path);
out:
    sqlite3_finalize(st);
    return rc;
}

int bdy_ledger_open(const char *dir, bool create, bdy_ledger **out, bdy_errbuf *eb)
{
    int rc = 0;
    bdy_ledger *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return bdy_fail(eb, BDY_ENOMEM, "out of memory");
    pthread_mutex_init(&l->q_lock, NULL);
    bdy_write_health_init(&l->writes);
    pthread_mutex_init(&l->r_lock, NULL);
    pthread_mutex_init(&l->map_lock, NULL);
    pthread_cond_init(&l->q_nonempty, NULL);
    pthread_cond_init(&l->reported, NULL);
    if (bdy_hmap_init(&l->by_id, LEDGER_MIN_BUCKETS) != 0 ||
        bdy_hmap_init(&l->by_uid, LEDGER_MIN_BUCKETS) != 0) {
        rc = bdy_fail(eb, BDY_ENOMEM, "out of memory");
        goto out;
    }
    if (asprintf(&l->path, "%s/%s", dir && dir[0] ? dir : ".", LEDGER_FILE) < 0) {
        l->path = NULL;
        rc = bdy_fail(eb, BDY_ENOMEM, "out of memory");
        goto out;
    }
    struct stat st;
    l->existed = stat(l->path, &st) == 0;
    if (!l->existed && (errno != ENOENT || !create)) {
        rc = bdy_fail(eb, errno == ENOENT ? BDY_ENOTFOUND : BDY_EIO, "claim ledger %s: %s", l->path,
                      errno == ENOENT ? "missing" : strerror(errno));
        goto out;
    }
    if ((rc = open_conn(l->path, &l->wdb, eb)) != 0 || (rc = init_schema(l, eb)) != 0)
        goto out;
    char sql[512];
    snprintf(sql, sizeof(sql), "INSERT INTO claims (%s) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
             COLUMNS);
    if ((rc = prepare(l->wdb, "BEGIN IMMEDIATE", &l->st_begin, l->path, eb)) != 0 ||
        (rc = prepare(l->wdb, "COMMIT", &l->st_commit, l->path, eb)) != 0 ||
        (rc = prepare(l->wdb, "ROLLBACK", &l->st_rollback, l->path, eb)) != 0 ||
        (rc = prepare(l->wdb, sql, &l->st_insert, l->path, eb)) != 0 ||
        (rc = prepare(l->wdb, "DELETE FROM claims WHERE seq=?", &l->st_delete, l->path, eb)) != 0)
        goto out;
    /* A read-only file opens fine and fails at the first write: find out now. */
    if (sqlite3_exec(l->wdb, "BEGIN IMMEDIATE; COMMIT;", NULL, NULL, NULL) != SQLITE_OK) {
        rc = sql_fail(l->wdb, eb, l->path);
        goto out;
    }
    if ((rc = open_conn(l->path, &l->rdb, eb)) != 0)
        goto out;
    /* By id too: SQLite gives a removed last row's seq to the next insert,
     * so the seq looked up may name another claim by the time it is read. */
    snprintf(sql, sizeof(sql), "SELECT %s FROM claims WHERE seq=? AND id=?", COLUMNS);
    if ((rc = prepare(l->rdb, sql, &l->st_get, l->path, eb)) != 0)
        goto out;
    if ((rc = load_rows(l, eb)) != 0)
        goto out;
    sqlite3_wal_autocheckpoint(l->wdb, 0);
    bdy_wal_writer_busy_handler(l->wdb, LEDGER_BUSY_MS);
    if (bdy_wal_writer_size_limit(l->wdb, LEDGER_WAL_RESTART_BYTES) != 0) {
        rc = sql_fail(l->wdb, eb, l->path);
        goto out;
    }
    if ((rc = bdy_wal_checkpointer_start(l->path, LEDGER_CHECKPOINT_MS, LEDGER_WAL_RESTART_BYTES,
                                         "bdy-ledger-ckpt", &l->ckpt, eb)) != 0)
        goto out;
    if (pthread_create(&l->committer, NULL, committer_main, l) != 0) {
        rc = bdy_fail(eb, BDY_ENOMEM, "cannot start the claim ledger's committer");
        goto out;
    }
    l->committer_started = true;
    *out = l;
    l = NULL;
out:
    bdy_ledger_close(l);
    return rc;
}

void bdy_ledger_stop_writes(bdy_ledger *l)
{
    if (l == NULL)
        return;
    pthread_mutex_lock(&l->q_lock);
    l->stopping = true;
    pthread_cond_signal(&l->q_nonempty);
    pthread_mutex_unlock(&l->q_lock);
    if (l->committer_started) {
        /* The committer drains what is queued before it exits. */
        pthread_join(l->committer, NULL);
        l->committer_started = false;
    }
    pthread_mutex_lock(&l->q_lock);
    while (l->inline_reporting > 0)
        pthread_cond_wait(&l->reported, &l->q_lock);
    pthread_mutex_unlock(&l->q_lock);
}

void bdy_ledger_close(bdy_ledger *l)
{
    if (l == NULL)
        return;
    bdy_ledger_stop_writes(l);
    bdy_db_check_stop(l->check);
    bdy_wal_checkpointer_stop(l->ckpt);
    sqlite3_finalize(l->st_begin);
    sqlite3_finalize(l->st_commit);
    sqlite3_finalize(l->st_rollback);
    sqlite3_finalize(l->st_insert);
    sqlite3_finalize(l->st_delete);
    sqlite3_finalize(l->st_get);
    sqlite3_close(l->wdb);
    sqlite3_close(l->rdb);
    pthread_mutex_destroy(&l->q_lock);
    bdy_write_health_destroy(&l->writes);
    pthread_mutex_destroy(&l->r_lock);
    if (l->by_id.buckets != NULL) {
        BDY_HMAP_FOREACH(&l->by_id, n)
        {
            free(n);
        }
    }
    bdy_hmap_destroy(&l->by_id);
    bdy_hmap_destroy(&l->by_uid);
    pthread_mutex_destroy(&l->map_lock);
    pthread_cond_destroy(&l->q_nonempty);
    pthread_cond_destroy(&l->reported);
    free(l->path);
    free(l);
}

/* ---- writes ------------------------------------------------------------------ */

static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc;
}

static void bind_opt(sqlite3_stmt *st, int i, const char *v)
{
    if (v != NULL)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

/* Runs one op inside the open transaction, checking uniqueness in the
 * maps (later ops of the same batch see earlier ones). Committer only. */
static int apply_op(bdy_ledger *l, ledger_op *op)
{
    op->row = NULL;
    if (op->kind == OP_REMOVE) {
        live_row *r = find_id(l, op->id);
        if (r == NULL || r->removing)
            return BDY_ENOTFOUND;
        sqlite3_bind_int64(l->st_delete, 1, r->rowid);
        int step = sqlite3_step(l->st_delete);
        sqlite3_reset(l->st_delete);
        if (step != SQLITE_DONE)
            goto io;
        pthread_mutex_lock(&l->map_lock); /* bdy_ledger_has reads it */
        r->removing = true;
        pthread_mutex_unlock(&l->map_lock);
        op->row = r;
        return 0;
    }
    const bdy_ledger_claim *c = op->claim;
    if (find_id(l, c->id) != NULL)
        return BDY_EEXISTS;
    live_row *held = find_uid(l, c->world_uid);
    if (held != NULL && !held->removing)
        return BDY_ECONFLICT;
    if (held != NULL)
        return BDY_EBUSY; /* released in this very batch: retry after it */
    live_row *r = row_new(c->id, c->world_uid, 0);
    if (r == NULL)
        return BDY_ENOMEM;
    const char *v[NCOLUMNS] = {c->id,         c->ns,           c->world,       c->world_uid,
                               c->pool,       c->claimant,     c->source,      c->claimed_at,
                               c->idem_key,   c->request_hash, c->labels_json, c->annotations_json,
                               c->answer_json};
    for (int i = 0; i < NCOLUMNS; i++)
        bind_opt(l->st_insert, i + 1, v[i]);
    int step = sqlite3_step(l->st_insert);
    sqlite3_reset(l->st_insert);
    sqlite3_clear_bindings(l->st_insert);
    if (step != SQLITE_DONE) {
        free(r);
        goto io;
    }
    r->rowid = sqlite3_last_insert_rowid(l->wdb);
    pthread_mutex_lock(&l->map_lock);
    row_link(l, r);
    pthread_mutex_unlock(&l->map_lock);
    op->row = r;
    return 0;
io:
    ledger_warn(l, "write failed");
    return BDY_EIO;
}

/* Commits batch (a list of ops) in one transaction and sets every op's rc;
 * on failure the maps are put back as they were. Committer only: the write
 * connection belongs to that thread. */
static void commit_batch(bdy_ledger *l, ledger_op *batch)
{
    bdy_wal_checkpointer_before_write(l->ckpt);
    bool ok = step_done(l->st_begin) == SQLITE_DONE;
    if (!ok)
        ledger_warn(l, "cannot begin");
    bool wrote = false; /* a batch of refusals commits nothing */
    for (ledger_op *op = batch; op != NULL && ok; op = op->next) {
        op->rc = apply_op(l, op);
        wrote |= op->rc == 0;
        /* A statement that failed on the disk (SQLITE_FULL, IOERR) may have
         * rolled the transaction back: the ops after it would then commit
         * one by one while the batch is reported failed, leaving rows for
         * claims whose clients were refused. The batch fails whole. */
        if (op->rc == BDY_EIO)
            ok = false;
    }
    if (ok && step_done(l->st_commit) != SQLITE_DONE) {
        ledger_warn(l, "commit failed");
        ok = false;
    }
    if (!ok)
        bdy_write_health_failed(&l->writes, sqlite3_errmsg(l->wdb));
    else if (wrote)
        bdy_write_health_ok(&l->writes);
    if (!ok && !sqlite3_get_autocommit(l->wdb))
        step_done(l->st_rollback);
    pthread_mutex_lock(&l->map_lock);
    for (ledger_op *op = batch; op != NULL; op = op->next) {
        live_row *r = op->row;
        op->row = NULL;
        if (!ok)
            op->rc = BDY_EIO;
        if (r == NULL)
            continue;
        /* An add that did not commit, or a remove that did: the row goes. */
        if ((op->kind == OP_ADD) != ok)
            row_unlink(l, r);
        else
            r->removing = false;
    }
    pthread_mutex_unlock(&l->map_lock);
}

/* A commit that began at started_ns has ended. Under q_lock. */
static void commit_ended_locked(bdy_ledger *l, uint64_t started_ns)
{
    uint64_t now = bdy_monotonic_ns();
    l->busy = false;
    l->last_commit_ns = now - started_ns;
    l->idle_since_ns = now;
}

/* The committer: takes everything queued (up to BDY_LEDGER_MAX_BATCH),
 * commits it in one transaction, reports every op, and sleeps when the
 * queue is empty. One thread, one wake-up per batch: callers are woken (sync)
 * or called back (async) only once their op is final. */
static void *committer_main(void *arg)
{
    bdy_ledger *l = arg;
    pthread_setname_np(pthread_self(), "bdy-ledger");
    pthread_mutex_lock(&l->q_lock);
    for (;;) {
        while ((l->head == NULL && !l->stopping) || (l->head != NULL && l->busy))
            pthread_cond_wait(&l->q_nonempty, &l->q_lock);
        if (l->head == NULL)
            break; /* stopping, and nothing left */
        l->busy = true;
        ledger_op *batch = l->head;
        ledger_op *last = batch;
        for (size_t n = 1; n < BDY_LEDGER_MAX_BATCH && last->next != NULL; n++)
            last = last->next;
        l->head = last->next;
        if (l->head == NULL)
            l->tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&l->q_lock);

        uint64_t started = bdy_monotonic_ns();
        commit_batch(l, batch);
        pthread_mutex_lock(&l->q_lock);
        commit_ended_locked(l, started);
        pthread_mutex_unlock(&l->q_lock);

        /* An op may not be touched after it is reported: a sync caller
         * returns and its stack frame is gone. */
        for (ledger_op *op = batch; op != NULL;) {
            ledger_op *next = op->next;
            if (op->cb != NULL) {
                op->cb(op->cb_data, op->rc);
                free(op);
            } else {
                sem_post(op->wake);
            }
            op = next;
        }
        pthread_mutex_lock(&l->q_lock);
    }
    pthread_mutex_unlock(&l->q_lock);
    return NULL;
}

static int enqueue(bdy_ledger *l, ledger_op *op)
{
    op->next = NULL;
    pthread_mutex_lock(&l->q_lock);
    if (l->stopping) {
        pthread_mutex_unlock(&l->q_lock);
        return BDY_ESHUTDOWN;
    }
    if (l->tail != NULL)
        l->tail->next = op;
    else
        l->head = op;
    l->tail = op;
    pthread_cond_signal(&l->q_nonempty);
    pthread_mutex_unlock(&l->q_lock);
    return 0;
}

/* Queues op and waits until it is committed (or failed). */
static int submit_sync(bdy_ledger *l, ledger_op *op)
{
    sem_t wake;
    if (sem_init(&wake, 0, 0) != 0)
        return BDY_ENOMEM;
    op->wake = &wake;
    int rc = enqueue(l, op);
    if (rc == 0) {
        while (sem_wait(&wake) != 0 && errno == EINTR)
            ;
        rc = op->rc;
    }
    sem_destroy(&wake);
    op->wake = NULL;
    return rc;
}

static bool claim_complete(const bdy_ledger_claim *c)
{
    return c != NULL && c->id != NULL && c->ns != NULL && c->world != NULL &&
           c->world_uid != NULL && c->pool != NULL && c->claimant != NULL && c->source != NULL &&
           c->claimed_at != NULL && c->answer_json != NULL;
}

int bdy_ledger_add(bdy_ledger *l, const bdy_ledger_claim *c)
{
    if (!claim_complete(c))
        return BDY_EINVAL;
    ledger_op op = {.kind = OP_ADD, .claim = c};
    return submit_sync(l, &op);
}

int bdy_ledger_add_async(bdy_ledger *l, const bdy_ledger_claim *c, bdy_ledger_done_cb cb,
                         void *data)
{
    if (!claim_complete(c) || cb == NULL)
        return BDY_EINVAL;
    ledger_op *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return BDY_ENOMEM;
    *op = (ledger_op){.kind = OP_ADD, .claim = c, .cb = cb, .cb_data = data};
    /* Idle ledger: commit this row here and now. Waking the committer and
     * then the caller's thread again would cost more than the commit when
     * claims are few. Idle means no commit running, nothing queued, and no
     * commit for at least as long as the last one took: right after a
     * commit more claims are likely on their way, and committing each on
     * its caller's thread would cost an fsync per claim while that
     * thread's other connections wait (with one HTTP thread a burst ran
     * at one claim per fsync). Under load rows queue and batch. */
    pthread_mutex_lock(&l->q_lock);
    uint64_t now = bdy_monotonic_ns();
    bool inline_commit =
        !l->stopping && !l->busy && l->head == NULL && now - l->idle_since_ns >= l->last_commit_ns;
    if (inline_commit) {
        l->busy = true;
        l->inline_reporting++;
    }
    pthread_mutex_unlock(&l->q_lock);
    if (inline_commit) {
        commit_batch(l, op);
        pthread_mutex_lock(&l->q_lock);
        commit_ended_locked(l, now);
        if (l->head != NULL)
            pthread_cond_signal(&l->q_nonempty);
        pthread_mutex_unlock(&l->q_lock);
        op->cb(op->cb_data, op->rc);
        free(op);
        pthread_mutex_lock(&l->q_lock);
        if (--l->inline_reporting == 0)
            pthread_cond_broadcast(&l->reported);
        pthread_mutex_unlock(&l->q_lock);
        return 0;
    }
    int rc = enqueue(l, op);
    if (rc != 0)
        free(op);
    return rc;
}

int bdy_ledger_remove(bdy_ledger *l, const char *id)
{
    if (id == NULL)
        return BDY_EINVAL;
    ledger_op op = {.kind = OP_REMOVE, .id = id};
    return submit_sync(l, &op);
}

size_t bdy_ledger_count(bdy_ledger *l)
{
    pthread_mutex_lock(&l->map_lock);
    size_t n = l->by_id.count;
    pthread_mutex_unlock(&l->map_lock);
    return n;
}

/* ---- reads ------------------------------------------------------------------ */

void bdy_ledger_record_free(bdy_ledger_record *r)
{
    if (r == NULL)
        return;
    free(r); /* the strings with it */
}

_Static_assert(sizeof(bdy_ledger_claim) == NCOLUMNS * sizeof(const char *),
               "every field of a claim is one column");

/* Points c's fields at the NCOLUMNS values, in the column order. */
static void claim_point(bdy_ledger_claim *c, const char *const vals[NCOLUMNS])
{
    const char **f[NCOLUMNS] = {&c->id,           &c->ns,          &c->world,
                                &c->world_uid,    &c->pool,        &c->claimant,
                                &c->source,       &c->claimed_at,  &c->idem_key,
                                &c->request_hash, &c->labels_json, &c->annotations_json,
                                &c->answer_json};
    for (int i = 0; i < NCOLUMNS; i++)
        *f[i] = vals[i];
}

/* A record of the NCOLUMNS values (NULL allowed) of lengths len, in the
 * column order: one allocation for it and the strings, fields pointing
 * into it. */
static bdy_ledger_record *record_build(const char *const vals[NCOLUMNS], const size_t len[NCOLUMNS])
{
    size_t total = 0;
    for (int i = 0; i < NCOLUMNS; i++)
        total += vals[i] != NULL ? len[i] + 1 : 0;
    bdy_ledger_record *r = malloc(sizeof(*r) + total);
    if (r == NULL)
        return NULL;
    const char *copies[NCOLUMNS];
    char *p = (char *)(r + 1);
    for (int i = 0; i < NCOLUMNS; i++) {
        copies[i] = NULL;
        if (vals[i] == NULL)
            continue;
        memcpy(p, vals[i], len[i]);
        p[len[i]] = '\0';
        copies[i] = p;
        p += len[i] + 1;
    }
    claim_point(&r->c, copies);
    return r;
}

/* The current row of st as NCOLUMNS values (NULL columns NULL), valid
 * until st moves on. BDY_ENOMEM when SQLite could not give a column's text:
 * a value read as missing would make a claim without its id or world. */
static int row_values(sqlite3_stmt *st, const char *vals[NCOLUMNS], size_t len[NCOLUMNS])
{
    for (int i = 0; i < NCOLUMNS; i++) {
        bool null = sqlite3_column_type(st, i) == SQLITE_NULL;
        vals[i] = null ? NULL : (const char *)sqlite3_column_text(st, i);
        len[i] = null ? 0 : (size_t)sqlite3_column_bytes(st, i);
        if (!null && vals[i] == NULL)
            return BDY_ENOMEM;
    }
    return 0;
}

/* Copies the current row of st into a record (NULL columns stay NULL);
 * NULL when out of memory. */
static bdy_ledger_record *record_from_row(sqlite3_stmt *st)
{
    const char *vals[NCOLUMNS];
    size_t len[NCOLUMNS];
    return row_values(st, vals, len) == 0 ? record_build(vals, len) : NULL;
}

bdy_ledger_record *bdy_ledger_record_copy(const bdy_ledger_claim *c)
{
    const char *const vals[NCOLUMNS] = {c->id,           c->ns,          c->world,
                                        c->world_uid,    c->pool,        c->claimant,
                                        c->source,       c->claimed_at,  c->idem_key,
                                        c->request_hash, c->labels_json, c->annotations_json,
                                        c->answer_json};
    size_t len[NCOLUMNS];
    for (int i = 0; i < NCOLUMNS; i++)
        len[i] = vals[i] != NULL ? strlen(vals[i]) : 0;
    return record_build(vals, len);
}

bool bdy_ledger_has(bdy_ledger *l, const char *id)
{
    pthread_mutex_lock(&l->map_lock);
    live_row *r = find_id(l, id);
    bool live = r != NULL && r->rowid != 0 && !r->removing;
    pthread_mutex_unlock(&l->map_lock);
    return live;
}

int bdy_ledger_get(bdy_ledger *l, const char *id, bdy_ledger_record **out)
{
    int rc = BDY_ENOTFOUND;
    pthread_mutex_lock(&l->map_lock);
    live_row *row = find_id(l, id);
    int64_t rowid = row != NULL ? row->rowid : 0;
    pthread_mutex_unlock(&l->map_lock);
    if (rowid == 0)
        return BDY_ENOTFOUND;
    pthread_mutex_lock(&l->r_lock);
    sqlite3_bind_int64(l->st_get, 1, rowid);
    sqlite3_bind_text(l->st_get, 2, id, -1, SQLITE_STATIC);
    int step = sqlite3_step(l->st_get);
    if (step == SQLITE_ROW) {
        *out = record_from_row(l->st_get);
        rc = *out ? 0 : BDY_ENOMEM;
    } else if (step != SQLITE_DONE) {
        bdy_warn("ledger", "%s: read failed: %s", l->path, sqlite3_errmsg(l->rdb));
        rc = BDY_EIO;
    }
    sqlite3_reset(l->st_get);
    sqlite3_clear_bindings(l->st_get);
    pthread_mutex_unlock(&l->r_lock);
    return rc;
}

int bdy_ledger_each(bdy_ledger *l, bdy_ledger_each_cb cb, void *data, bdy_errbuf *eb)
{
    int rc = 0;
    sqlite3_stmt *st = NULL;
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT %s FROM claims ORDER BY seq", COLUMNS);
    pthread_mutex_lock(&l->r_lock);
    if (sqlite3_prepare_v2(l->rdb, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = sql_fail(l->rdb, eb, l->path);
        goto out;
    }
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        /* No copy: the strings are SQLite's, valid during the call only,
         * as the header says (a start-up reads every live claim). */
        const char *vals[NCOLUMNS];
        size_t len[NCOLUMNS];
        if (row_values(st, vals, len) != 0) {
            rc = bdy_fail(eb, BDY_ENOMEM, "out of memory reading claim ledger %s", l->path);
            goto out;
        }
        bdy_ledger_claim claim = {0};
        claim_point(&claim, vals);
        if ((rc = cb(data, &claim)) != 0)
            goto out;
    }
    if (step != SQLITE_DONE)
        rc = sql_fail(l->rdb, eb, l->path);
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&l->r_lock);
    return rc;
}

int bdy_ledger_check_start(bdy_ledger *l, bdy_errbuf *eb)
{
    int rc = 0;
    pthread_mutex_lock(&l->q_lock);
    if (l->existed && l->check == NULL && !l->stopping)
        rc = bdy_db_check_start(l->path, "bdy-ledger-check", "ledger", &l->check, eb);
    pthread_mutex_unlock(&l->q_lock);
    return rc;
}

int bdy_ledger_health(bdy_ledger *l, bdy_errbuf *eb)
{
    /* Only damage counts: a check that could not finish was logged, and
     * says nothing about the data. */
    int rc = 0;
    pthread_mutex_lock(&l->q_lock);
    if (l->check != NULL && bdy_db_check_result(l->check, NULL) == BDY_ECORRUPT)
        rc = bdy_db_check_result(l->check, eb);
    pthread_mutex_unlock(&l->q_lock);
    return rc != 0 ? rc : bdy_write_health_check(&l->writes, l->path, eb);
}
