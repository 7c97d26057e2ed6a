/* The claim ledger (see ledger.h): group commit of claims into the claim
 * journal by one committer thread (or inline on an idle ledger), and an
 * applier thread that copies what the journal holds into one SQLite file
 * (one write connection, a separate one for reads). */
#include "bindery/ledger.h"

#include "bindery/dbcheck.h"
#include "bindery/hmap.h"
#include "bindery/journal.h"
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
#define JOURNAL_FILE "claims.journal"
/* 3: claims are journaled first (meta holds journal_salt, applied_seq). A
 * version 2 file (no journal) is taken up as it is. */
#define LEDGER_SCHEMA_VERSION "3"
#define LEDGER_SCHEMA_NO_JOURNAL "2"
/* The applier gathers groups this long before one transaction applies them
 * (or less, when asked to flush): one fsync per round, not per claim. */
#define APPLY_LINGER_MS 50
/* A round that failed is tried again after this long, then twice as long,
 * up to the maximum. */
#define APPLY_RETRY_MIN_MS 100u
#define APPLY_RETRY_MAX_MS 5000u
/* A commit waits this long for journal space the applier has yet to free
 * before it fails its claims. */
#define JOURNAL_WAIT_MS 2000u
#define NULL_FIELD 0xffffffffu
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
 * itself is keyed by an increasing rowid, so a batch appends.
 *
 * A row is in the maps from its add's commit until its remove's: committed
 * once its add is in the journal, then pending (a copy of the claim, for
 * reads) until the applier has put it in SQLite and set rowid. A removed
 * row leaves the maps at once and belongs to the remove's apply item, which
 * deletes it from SQLite by rowid and frees it. */
typedef struct live_row {
    bdy_hnode by_id; /* first: node.key = id */
    bdy_hnode by_uid;
    int64_t rowid;              /* 0 until applied (under map_lock) */
    int64_t staged_rowid;       /* the applier's, during its round */
    bdy_ledger_record *pending; /* until applied (under map_lock) */
    bool committed;             /* its add is durable (under map_lock) */
    bool removing;              /* a remove of it is in the current batch */
    char *id;                   /* into the same allocation */
    char *uid;
} live_row;

static live_row *row_of_uid(bdy_hnode *n)
{
    return n ? (live_row *)(void *)((char *)n - offsetof(live_row, by_uid)) : NULL;
}

/* A journal group the applier has yet to copy into SQLite: its payload
 * (the encoded ops) and, for each op in order, its row. */
typedef struct apply_row {
    live_row *row;
    bool remove; /* the op removes it (and the item owns it), or adds it */
} apply_row;

typedef struct apply_item {
    struct apply_item *next;
    uint64_t seq;
    size_t len;
    size_t nrows;
    apply_row *rows;
    unsigned char *payload; /* both into the same allocation */
} apply_item;

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
    bdy_journal *journal;
    /* The committer's encoding of a group's ops. */
    unsigned char *enc;
    size_t enc_len, enc_cap;

    /* Applier: groups durable in the journal, oldest first, and how far
     * SQLite has them (a_applied, the journal's sequence number). */
    pthread_mutex_t a_lock;
    pthread_cond_t a_wake; /* items, a flush wanted, or stopping */
    pthread_cond_t a_done; /* a round ended */
    apply_item *a_head, *a_tail;
    uint64_t a_queued;  /* last sequence number queued */
    uint64_t a_applied; /* last sequence number applied */
    unsigned a_flush;   /* callers waiting for everything to be applied */
    unsigned a_failed;  /* rounds failed since the last that worked */
    bool a_stopping;
    pthread_t applier;
    bool applier_started;
    sqlite3_stmt *st_applied;
    sqlite3 *wdb; /* write connection: the applier's (and open's) only */
    sqlite3_stmt *st_begin;
    sqlite3_stmt *st_commit;
    sqlite3_stmt *st_rollback;
    sqlite3_stmt *st_insert;
    sqlite3_stmt *st_delete;

    /* The committer thread writes the journal; callers queue ops for it. */
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
    bdy_log_limit write_log;  /* a full disk fails every claim: one line a period */
    bdy_write_health writes;  /* journal commits, for bdy_ledger_health */
    bdy_write_health applies; /* the applier's rounds, likewise */
    bool existed;             /* the file was there at open: worth a whole-file check */
    bdy_db_check *check;      /* under q_lock; NULL until that check starts */
};

static const char *const COLUMNS =
    "id, ns, world, world_uid, pool, claimant, source, claimed_at, idem_key, request_hash, "
    "labels, annotations, answer";
#define NCOLUMNS 13

static void *committer_main(void *arg);
static void *applier_main(void *arg);
static bdy_ledger_record *record_build(const char *const vals[NCOLUMNS],
                                       const size_t len[NCOLUMNS]);

/* Warns of a failed write, at most once every 10 s: a full disk fails
 * every claim. */
static void ledger_warn_msg(bdy_ledger *l, const char *what, const char *why)
{
    uint64_t held = 0;
    if (bdy_log_admit(&l->write_log, 10000, &held))
        bdy_warn("ledger", "%s: %s: %s (%llu such lines held back before this one)", l->path, what,
                 why, (unsigned long long)held);
}

/* The same for the write connection (applier only: it reads the
 * connection's error). */
static void ledger_warn(bdy_ledger *l, const char *what)
{
    ledger_warn_msg(l, what, sqlite3_errmsg(l->wdb));
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

/* meta's value for key: 0 with it in out, BDY_ENOTFOUND, or an error. */
static int meta_get(bdy_ledger *l, const char *key, char *out, size_t cap, bdy_errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(l->wdb, "SELECT value FROM meta WHERE key=?", &st, l->path, eb);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    const char *v = step == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    if (step == SQLITE_ROW && v != NULL)
        snprintf(out, cap, "%s", v);
    else if (step == SQLITE_DONE)
        rc = BDY_ENOTFOUND;
    else
        rc = sql_fail(l->wdb, eb, l->path);
    sqlite3_finalize(st);
    return rc;
}

/* What the file says of its journal. */
typedef struct ledger_meta {
    bool journaled;   /* version 3 with a journal salt */
    uint64_t salt;    /* that salt */
    uint64_t applied; /* the last journal group applied */
} ledger_meta;

/* Creates the tables on a new file; refuses a file of another version. */
static int init_schema(bdy_ledger *l, ledger_meta *m, bdy_errbuf *eb)
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
    char v[64] = "";
    int rc = meta_get(l, "schema", v, sizeof(v), eb);
    if (rc != 0 && rc != BDY_ENOTFOUND)
        return rc;
    if (strcmp(v, LEDGER_SCHEMA_VERSION) != 0 && strcmp(v, LEDGER_SCHEMA_NO_JOURNAL) != 0)
        return bdy_fail(eb, BDY_ECORRUPT, "claim ledger %s has schema version %s, expected %s",
                        l->path, v[0] ? v : "(none)", LEDGER_SCHEMA_VERSION);
    *m = (ledger_meta){0};
    if (strcmp(v, LEDGER_SCHEMA_NO_JOURNAL) == 0)
        return 0;
    char salt[32] = "", applied[32] = "0";
    if ((rc = meta_get(l, "journal_salt", salt, sizeof(salt), eb)) != 0 && rc != BDY_ENOTFOUND)
        return rc;
    m->journaled = rc == 0;
    if ((rc = meta_get(l, "applied_seq", applied, sizeof(applied), eb)) != 0 && rc != BDY_ENOTFOUND)
        return rc;
    char *e1 = NULL, *e2 = NULL;
    m->salt = strtoull(salt, &e1, 10);
    m->applied = strtoull(applied, &e2, 10);
    if ((m->journaled && *e1 != '\0') || *e2 != '\0')
        return bdy_fail(eb, BDY_ECORRUPT, "claim ledger %s: damaged journal position", l->path);
    return 0;
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

static void row_free(live_row *r)
{
    if (r != NULL)
        bdy_ledger_record_free(r->pending);
    free(r);
}

/* Under map_lock. */
static void row_link(bdy_ledger *l, live_row *r)
{
    bdy_hmap_insert(&l->by_id, &r->by_id);
    bdy_hmap_insert(&l->by_uid, &r->by_uid);
}

/* Under map_lock; r is the caller's now. */
static void row_detach(bdy_ledger *l, live_row *r)
{
    bdy_hmap_remove(&l->by_id, &r->by_id);
    bdy_hmap_remove(&l->by_uid, &r->by_uid);
}

/* Under map_lock; frees r. */
static void row_unlink(bdy_ledger *l, live_row *r)
{
    row_detach(l, r);
    row_free(r);
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
        r->committed = true;
        row_link(l, r);
    }
    if (step != SQLITE_DONE)
        rc = sql_fail(l->rdb, eb, l->path);
out:
    sqlite3_finalize(st);
    return rc;
}

/* ---- the journal's records ---------------------------------------------------------- */

/* A group's payload is its ops in order: a kind byte ('A' add, 'R'
 * remove), then the op's fields (an add's NCOLUMNS in the column order, a
 * remove's id): each a 4-byte little-endian length (NULL_FIELD for none),
 * that many bytes and a NUL. */
#define KIND_ADD 'A'
#define KIND_REMOVE 'R'

static const char *const *claim_values(const bdy_ledger_claim *c, const char *vals[NCOLUMNS])
{
    const char *const v[NCOLUMNS] = {c->id,           c->ns,          c->world,
                                     c->world_uid,    c->pool,        c->claimant,
                                     c->source,       c->claimed_at,  c->idem_key,
                                     c->request_hash, c->labels_json, c->annotations_json,
                                     c->answer_json};
    memcpy(vals, v, sizeof(v));
    return vals;
}

static size_t op_size(const ledger_op *op)
{
    if (op->kind == OP_REMOVE)
        return 1 + 4 + strlen(op->id) + 1;
    const char *vals[NCOLUMNS];
    claim_values(op->claim, vals);
    size_t n = 1;
    for (int i = 0; i < NCOLUMNS; i++)
        n += 4 + (vals[i] != NULL ? strlen(vals[i]) + 1 : 0);
    return n;
}

static void put_field(unsigned char **p, const char *v)
{
    uint32_t len = v != NULL ? (uint32_t)strlen(v) : NULL_FIELD;
    for (int i = 0; i < 4; i++)
        (*p)[i] = (unsigned char)(len >> (8 * i));
    *p += 4;
    if (v != NULL) {
        memcpy(*p, v, (size_t)len + 1);
        *p += (size_t)len + 1;
    }
}

/* Appends op's record to l->enc (committer only). */
static int encode_op(bdy_ledger *l, const ledger_op *op, size_t need)
{
    if (l->enc_len + need > l->enc_cap) {
        size_t cap = l->enc_cap ? l->enc_cap : 4096;
        while (cap < l->enc_len + need)
            cap *= 2;
        unsigned char *nb = realloc(l->enc, cap);
        if (nb == NULL)
            return BDY_ENOMEM;
        l->enc = nb;
        l->enc_cap = cap;
    }
    unsigned char *p = l->enc + l->enc_len;
    *p++ = op->kind == OP_ADD ? KIND_ADD : KIND_REMOVE;
    if (op->kind == OP_REMOVE) {
        put_field(&p, op->id);
    } else {
        const char *vals[NCOLUMNS];
        claim_values(op->claim, vals);
        for (int i = 0; i < NCOLUMNS; i++)
            put_field(&p, vals[i]);
    }
    l->enc_len = (size_t)(p - l->enc);
    return 0;
}

/* One op read back: an add's NCOLUMNS values, or a remove's id in vals[0]. */
typedef struct decoded_op {
    op_kind kind;
    const char *vals[NCOLUMNS];
    size_t len[NCOLUMNS];
} decoded_op;

static int get_field(const unsigned char **p, const unsigned char *end, const char **v, size_t *len)
{
    if (end - *p < 4)
        return BDY_ECORRUPT;
    uint32_t n = (uint32_t)(*p)[0] | (uint32_t)(*p)[1] << 8 | (uint32_t)(*p)[2] << 16 |
                 (uint32_t)(*p)[3] << 24;
    *p += 4;
    *v = NULL;
    *len = 0;
    if (n == NULL_FIELD)
        return 0;
    if ((size_t)(end - *p) < (size_t)n + 1 || (*p)[n] != '\0' || memchr(*p, '\0', n) != NULL)
        return BDY_ECORRUPT;
    *v = (const char *)*p;
    *len = n;
    *p += (size_t)n + 1;
    return 0;
}

/* Reads the op at *p (before end) and moves *p past it. BDY_ECORRUPT for
 * anything encode_op does not write, required fields missing included. */
static int decode_op(const unsigned char **p, const unsigned char *end, decoded_op *d)
{
    *d = (decoded_op){0};
    if (*p >= end || (**p != KIND_ADD && **p != KIND_REMOVE))
        return BDY_ECORRUPT;
    d->kind = **p == KIND_ADD ? OP_ADD : OP_REMOVE;
    (*p)++;
    int n = d->kind == OP_ADD ? NCOLUMNS : 1;
    for (int i = 0; i < n; i++)
        if (get_field(p, end, &d->vals[i], &d->len[i]) != 0)
            return BDY_ECORRUPT;
    if (d->kind == OP_REMOVE)
        return d->vals[0] != NULL ? 0 : BDY_ECORRUPT;
    /* id, ns, world, world_uid, pool, claimant, source, claimed_at; answer */
    for (int i = 0; i < NCOLUMNS; i++)
        if (d->vals[i] == NULL && (i < 8 || i == NCOLUMNS - 1))
            return BDY_ECORRUPT;
    return 0;
}

/* ---- SQLite: the applier's writes --------------------------------------------------- */

static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc;
}

static int sql_insert(bdy_ledger *l, const decoded_op *d, int64_t *rowid)
{
    for (int i = 0; i < NCOLUMNS; i++) {
        if (d->vals[i] != NULL)
            sqlite3_bind_text(l->st_insert, i + 1, d->vals[i], (int)d->len[i], SQLITE_STATIC);
        else
            sqlite3_bind_null(l->st_insert, i + 1);
    }
    int step = sqlite3_step(l->st_insert);
    sqlite3_reset(l->st_insert);
    sqlite3_clear_bindings(l->st_insert);
    if (step != SQLITE_DONE)
        return BDY_EIO;
    *rowid = sqlite3_last_insert_rowid(l->wdb);
    return 0;
}

static int sql_delete(bdy_ledger *l, int64_t rowid)
{
    sqlite3_bind_int64(l->st_delete, 1, rowid);
    int step = sqlite3_step(l->st_delete);
    sqlite3_reset(l->st_delete);
    return step == SQLITE_DONE ? 0 : BDY_EIO;
}

static int sql_set_applied(bdy_ledger *l, uint64_t seq)
{
    sqlite3_bind_int64(l->st_applied, 1, (int64_t)seq);
    return step_done(l->st_applied) == SQLITE_DONE ? 0 : BDY_EIO;
}

/* Replays one journal group into the open transaction at open time, when
 * the maps hold what SQLite holds: the same checks the committer made. */
typedef struct replay_ctx {
    bdy_ledger *l;
    char why[256];
} replay_ctx;

static int replay_group(void *data, uint64_t seq, const void *payload, size_t len)
{
    replay_ctx *x = data;
    bdy_ledger *l = x->l;
    const unsigned char *p = payload, *end = p + len;
    while (p < end) {
        decoded_op d;
        if (decode_op(&p, end, &d) != 0) {
            snprintf(x->why, sizeof(x->why), "group %llu holds a damaged record",
                     (unsigned long long)seq);
            return BDY_ECORRUPT;
        }
        if (d.kind == OP_REMOVE) {
            live_row *r = find_id(l, d.vals[0]);
            if (r == NULL) {
                snprintf(x->why, sizeof(x->why), "group %llu removes claim %.64s, which it lacks",
                         (unsigned long long)seq, d.vals[0]);
                return BDY_ECORRUPT;
            }
            if (sql_delete(l, r->rowid) != 0)
                return BDY_EIO;
            row_unlink(l, r);
            continue;
        }
        if (find_id(l, d.vals[0]) != NULL || find_uid(l, d.vals[3]) != NULL) {
            snprintf(x->why, sizeof(x->why), "group %llu repeats claim %.64s or its world",
                     (unsigned long long)seq, d.vals[0]);
            return BDY_ECORRUPT;
        }
        int64_t rowid;
        if (sql_insert(l, &d, &rowid) != 0)
            return BDY_EIO;
        live_row *r = row_new(d.vals[0], d.vals[3], rowid);
        if (r == NULL) {
            snprintf(x->why, sizeof(x->why), "out of memory");
            return BDY_ENOMEM;
        }
        r->committed = true;
        row_link(l, r);
    }
    return 0;
}

/* Opens the journal beside the file and applies what it holds that the
 * file lacks. A file without a journal yet (new, or version 2) gets a new
 * one; a file that had one needs it: claims acknowledged just before a
 * crash may be only there. */
static int open_journal(bdy_ledger *l, const char *dir, const ledger_meta *m, bdy_errbuf *eb)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir && dir[0] ? dir : ".", JOURNAL_FILE);
    bool created = false;
    int rc = bdy_journal_open(path, !m->journaled, BDY_JOURNAL_DEFAULT_BLOCKS, &l->journal,
                              &created, eb);
    if (rc == BDY_ENOTFOUND)
        return bdy_fail(eb, rc,
                        "claim journal %s is missing beside %s, which was written through it: "
                        "the claims acknowledged last before a stop may be only in the journal. "
                        "Restore both files from one backup, or, to go on without those claims, "
                        "create an empty %s",
                        path, l->path, path);
    if (rc != 0)
        return rc;
    uint64_t applied = m->applied;
    if (m->journaled && !created && bdy_journal_salt(l->journal) != m->salt)
        return bdy_fail(eb, BDY_ECORRUPT,
                        "claim journal %s belongs to another claim ledger than %s: restore both "
                        "files from one backup",
                        path, l->path);
    if (m->journaled && created)
        bdy_warn("ledger",
                 "%s was empty: a new claim journal begins; claims acknowledged last before the "
                 "old one was lost may be missing",
                 path);
    replay_ctx x = {.l = l};
    uint64_t last = applied, highest = applied;
    if (step_done(l->st_begin) != SQLITE_DONE)
        return sql_fail(l->wdb, eb, l->path);
    if (!created) {
        bdy_errbuf jeb;
        bdy_errbuf_clear(&jeb);
        rc = bdy_journal_replay(l->journal, applied, replay_group, &x, &last, &highest, &jeb);
        if (rc != 0) {
            if (x.why[0] != '\0')
                bdy_fail(eb, rc, "claim journal %s: %s", path, x.why);
            else if (jeb.message[0] != '\0')
                bdy_fail(eb, rc, "%s", jeb.message);
            else
                sql_fail(l->wdb, eb, l->path);
            step_done(l->st_rollback);
            return rc;
        }
    }
    char salt[32];
    snprintf(salt, sizeof(salt), "%llu", (unsigned long long)bdy_journal_salt(l->journal));
    sqlite3_stmt *st = NULL;
    rc =
        prepare(l->wdb, "INSERT OR REPLACE INTO meta VALUES ('journal_salt', ?)", &st, l->path, eb);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, salt, -1, SQLITE_STATIC);
        if (step_done(st) != SQLITE_DONE ||
            sqlite3_exec(l->wdb,
                         "INSERT OR REPLACE INTO meta VALUES ('schema', '" LEDGER_SCHEMA_VERSION
                         "')",
                         NULL, NULL, NULL) != SQLITE_OK ||
            sql_set_applied(l, last) != 0 || step_done(l->st_commit) != SQLITE_DONE)
            rc = sql_fail(l->wdb, eb, l->path);
    }
    sqlite3_finalize(st);
    if (rc != 0) {
        if (!sqlite3_get_autocommit(l->wdb))
            step_done(l->st_rollback);
        return rc;
    }
    if (last > applied)
        bdy_info("ledger", "%s: %llu journal groups applied at start", l->path,
                 (unsigned long long)(last - applied));
    if (highest > last)
        /* Groups after one that is damaged: their claims were acknowledged.
         * Those before it are applied now; the rest is the operator's call. */
        return bdy_fail(eb, BDY_ECORRUPT,
                        "claim journal %s: group %llu is damaged or missing and groups up to "
                        "%llu follow it, with claims that were acknowledged. Restore claims.db "
                        "and claims.journal from one backup; or, to go on without those "
                        "claims, create an empty %s (the claims before the damage are in %s "
                        "now)",
                        path, (unsigned long long)last + 1, (unsigned long long)highest, path,
                        l->path);
    bdy_journal_start(l->journal, last);
    l->a_applied = l->a_queued = last;
    return 0;
}

int bdy_ledger_open(const char *dir, bool create, bdy_ledger **out, bdy_errbuf *eb)
{
    int rc = 0;
    bdy_ledger *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return bdy_fail(eb, BDY_ENOMEM, "out of memory");
    pthread_mutex_init(&l->q_lock, NULL);
    bdy_write_health_init(&l->writes);
    bdy_write_health_init(&l->applies);
    pthread_mutex_init(&l->r_lock, NULL);
    pthread_mutex_init(&l->map_lock, NULL);
    pthread_mutex_init(&l->a_lock, NULL);
    pthread_cond_init(&l->q_nonempty, NULL);
    pthread_cond_init(&l->reported, NULL);
    bdy_cond_init_monotonic(&l->a_wake);
    pthread_cond_init(&l->a_done, NULL);
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
    ledger_meta meta = {0};
    if ((rc = open_conn(l->path, &l->wdb, eb)) != 0 || (rc = init_schema(l, &meta, eb)) != 0)
        goto out;
    char sql[512];
    snprintf(sql, sizeof(sql), "INSERT INTO claims (%s) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
             COLUMNS);
    if ((rc = prepare(l->wdb, "BEGIN IMMEDIATE", &l->st_begin, l->path, eb)) != 0 ||
        (rc = prepare(l->wdb, "COMMIT", &l->st_commit, l->path, eb)) != 0 ||
        (rc = prepare(l->wdb, "ROLLBACK", &l->st_rollback, l->path, eb)) != 0 ||
        (rc = prepare(l->wdb, sql, &l->st_insert, l->path, eb)) != 0 ||
        (rc = prepare(l->wdb, "DELETE FROM claims WHERE seq=?", &l->st_delete, l->path, eb)) != 0 ||
        (rc = prepare(l->wdb, "INSERT OR REPLACE INTO meta VALUES ('applied_seq', ?)",
                      &l->st_applied, l->path, eb)) != 0)
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
    if ((rc = load_rows(l, eb)) != 0 || (rc = open_journal(l, dir, &meta, eb)) != 0)
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
    if (pthread_create(&l->applier, NULL, applier_main, l) != 0) {
        rc = bdy_fail(eb, BDY_ENOMEM, "cannot start the claim ledger's applier");
        goto out;
    }
    l->applier_started = true;
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
    if (l->applier_started) {
        /* It applies what is queued first (once, if that fails: the journal
         * keeps it for the next start). */
        pthread_mutex_lock(&l->a_lock);
        l->a_stopping = true;
        pthread_cond_signal(&l->a_wake);
        pthread_mutex_unlock(&l->a_lock);
        pthread_join(l->applier, NULL);
        l->applier_started = false;
    }
    for (apply_item *it = l->a_head; it != NULL;) {
        apply_item *next = it->next;
        for (size_t i = 0; i < it->nrows; i++)
            if (it->rows[i].remove)
                row_free(it->rows[i].row);
        free(it);
        it = next;
    }
    bdy_db_check_stop(l->check);
    bdy_wal_checkpointer_stop(l->ckpt);
    sqlite3_finalize(l->st_begin);
    sqlite3_finalize(l->st_commit);
    sqlite3_finalize(l->st_rollback);
    sqlite3_finalize(l->st_insert);
    sqlite3_finalize(l->st_delete);
    sqlite3_finalize(l->st_applied);
    sqlite3_finalize(l->st_get);
    sqlite3_close(l->wdb);
    sqlite3_close(l->rdb);
    bdy_journal_close(l->journal);
    free(l->enc);
    pthread_mutex_destroy(&l->q_lock);
    bdy_write_health_destroy(&l->writes);
    bdy_write_health_destroy(&l->applies);
    pthread_mutex_destroy(&l->r_lock);
    if (l->by_id.buckets != NULL) {
        BDY_HMAP_FOREACH(&l->by_id, n)
        {
            row_free((live_row *)n);
        }
    }
    bdy_hmap_destroy(&l->by_id);
    bdy_hmap_destroy(&l->by_uid);
    pthread_mutex_destroy(&l->map_lock);
    pthread_mutex_destroy(&l->a_lock);
    pthread_cond_destroy(&l->q_nonempty);
    pthread_cond_destroy(&l->reported);
    pthread_cond_destroy(&l->a_wake);
    pthread_cond_destroy(&l->a_done);
    free(l->path);
    free(l);
}

/* ---- the committer: claims into the journal ------------------------------------------ */

/* Checks op against the maps (later ops of the same batch see earlier
 * ones), puts an add's row in them (not yet committed) or marks a remove's,
 * and appends its record to the group. Committer only. */
static int stage_op(bdy_ledger *l, ledger_op *op, size_t need)
{
    op->row = NULL;
    if (op->kind == OP_REMOVE) {
        pthread_mutex_lock(&l->map_lock); /* bdy_ledger_has reads it */
        live_row *r = find_id(l, op->id);
        int rc = r == NULL || r->removing || !r->committed ? BDY_ENOTFOUND : encode_op(l, op, need);
        if (rc == 0) {
            r->removing = true;
            op->row = r;
        }
        pthread_mutex_unlock(&l->map_lock);
        return rc;
    }
    const bdy_ledger_claim *c = op->claim;
    pthread_mutex_lock(&l->map_lock);
    live_row *held = find_uid(l, c->world_uid);
    int rc = find_id(l, c->id) != NULL         ? BDY_EEXISTS
             : held != NULL && !held->removing ? BDY_ECONFLICT
             : held != NULL                    ? BDY_EBUSY /* released in this very batch: retry */
                                               : 0;
    pthread_mutex_unlock(&l->map_lock);
    if (rc != 0)
        return rc;
    live_row *r = row_new(c->id, c->world_uid, 0);
    if (r == NULL || (r->pending = bdy_ledger_record_copy(c)) == NULL ||
        encode_op(l, op, need) != 0) {
        row_free(r);
        return BDY_ENOMEM;
    }
    pthread_mutex_lock(&l->map_lock);
    row_link(l, r);
    pthread_mutex_unlock(&l->map_lock);
    op->row = r;
    return 0;
}

/* An apply item for the group just encoded, of nrows ops; NULL when out of
 * memory. */
static apply_item *item_new(const bdy_ledger *l, size_t nrows)
{
    apply_item *it = malloc(sizeof(*it) + nrows * sizeof(apply_row) + l->enc_len);
    if (it == NULL)
        return NULL;
    it->next = NULL;
    it->seq = 0;
    it->nrows = 0;
    it->rows = (apply_row *)(it + 1);
    it->payload = (unsigned char *)(it->rows + nrows);
    it->len = l->enc_len;
    memcpy(it->payload, l->enc, l->enc_len);
    return it;
}

/* Writes the group of the ops from first up to end that were staged (rc 0)
 * to the journal, and settles them: committed and handed to the applier,
 * or taken back and failed. */
static void commit_group(bdy_ledger *l, ledger_op *first, ledger_op *end, size_t staged,
                         unsigned wait_ms)
{
    if (staged == 0)
        return;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    apply_item *it = item_new(l, staged);
    uint64_t seq = 0;
    int rc = it == NULL ? BDY_ENOMEM
                        : bdy_journal_append(l->journal, l->enc, l->enc_len, wait_ms, &seq, &eb);
    if (rc == 0) {
        bdy_write_health_ok(&l->writes);
    } else if (rc != BDY_ENOMEM) {
        ledger_warn_msg(l, "commit failed", eb.message);
        bdy_write_health_failed(&l->writes, eb.message);
        rc = BDY_EIO;
    }
    pthread_mutex_lock(&l->map_lock);
    for (ledger_op *op = first; op != end; op = op->next) {
        live_row *r = op->row;
        op->row = NULL;
        if (op->rc != 0 || r == NULL)
            continue;
        if (rc != 0) {
            op->rc = rc;
            if (op->kind == OP_ADD)
                row_unlink(l, r);
            else
                r->removing = false;
            continue;
        }
        it->rows[it->nrows++] = (apply_row){r, op->kind == OP_REMOVE};
        if (op->kind == OP_ADD) {
            r->committed = true;
        } else {
            row_detach(l, r);
            r->removing = false;
        }
    }
    pthread_mutex_unlock(&l->map_lock);
    if (rc != 0) {
        free(it);
        return;
    }
    it->seq = seq;
    pthread_mutex_lock(&l->a_lock);
    if (l->a_tail != NULL)
        l->a_tail->next = it;
    else
        l->a_head = it;
    l->a_tail = it;
    l->a_queued = seq;
    /* Only the first: the applier then lingers on a timed wait, and a
     * wake-up per claim would cost a context switch each. */
    if (l->a_head == it)
        pthread_cond_signal(&l->a_wake);
    pthread_mutex_unlock(&l->a_lock);
}

/* Commits batch (a list of ops) to the journal, in as few groups as fit,
 * and sets every op's rc. Committer only (or an inline commit, which holds
 * `busy`); wait_ms, how long a full journal is waited for. */
static void commit_batch(bdy_ledger *l, ledger_op *batch, unsigned wait_ms)
{
    size_t max = bdy_journal_max_payload(l->journal);
    ledger_op *op = batch;
    while (op != NULL) {
        ledger_op *first = op;
        size_t staged = 0;
        l->enc_len = 0;
        for (; op != NULL; op = op->next) {
            size_t need = op_size(op);
            if (need > max) {
                op->row = NULL;
                op->rc = BDY_ETOOBIG;
                continue;
            }
            if (staged > 0 && l->enc_len + need > max)
                break;
            op->rc = stage_op(l, op, need);
            staged += op->rc == 0;
        }
        commit_group(l, first, op, staged, wait_ms);
    }
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
 * writes it to the journal (one group, one fdatasync, unless it is too big
 * for one), reports every op, and sleeps when the
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
        commit_batch(l, batch, JOURNAL_WAIT_MS);
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
        /* No wait on an HTTP thread: a full journal means the applier is
         * failing, and the claim is refused at once. */
        commit_batch(l, op, 0);
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

/* ---- the applier: the journal's groups into SQLite ------------------------------------ */

/* Applies items (a list, oldest first) in one transaction that also
 * records the last one's number: once it commits, their journal space can
 * be reused. Applier only (it owns the write connection). */
static int apply_round(bdy_ledger *l, apply_item *items, uint64_t *last, char *why, size_t why_cap)
{
    bdy_wal_checkpointer_before_write(l->ckpt);
    if (step_done(l->st_begin) != SQLITE_DONE) {
        snprintf(why, why_cap, "%s", sqlite3_errmsg(l->wdb));
        ledger_warn(l, "cannot begin");
        return BDY_EIO;
    }
    int rc = 0;
    for (apply_item *it = items; it != NULL && rc == 0; it = it->next) {
        const unsigned char *p = it->payload, *end = p + it->len;
        for (size_t i = 0; i < it->nrows && rc == 0; i++) {
            decoded_op d;
            live_row *r = it->rows[i].row;
            if (decode_op(&p, end, &d) != 0) {
                rc = BDY_ECORRUPT; /* our own encoding: cannot happen */
            } else if (d.kind == OP_ADD) {
                rc = sql_insert(l, &d, &r->staged_rowid);
            } else {
                /* Its add was applied in an earlier round or earlier in this one. */
                rc = sql_delete(l, r->rowid != 0 ? r->rowid : r->staged_rowid);
            }
        }
        *last = it->seq;
    }
    if (rc == 0 && (sql_set_applied(l, *last) != 0 || step_done(l->st_commit) != SQLITE_DONE))
        rc = BDY_EIO;
    if (rc != 0) {
        /* The reason before the rollback replaces it. */
        snprintf(why, why_cap, "%s",
                 rc == BDY_ECORRUPT ? "a journal record in memory is damaged"
                                    : sqlite3_errmsg(l->wdb));
        ledger_warn(l, "applying the journal failed");
        if (!sqlite3_get_autocommit(l->wdb))
            step_done(l->st_rollback);
    }
    return rc;
}

/* After a round committed: added rows read from SQLite from now on, removed
 * ones are gone; the items are freed. */
static void apply_settle(bdy_ledger *l, apply_item *items)
{
    pthread_mutex_lock(&l->map_lock);
    for (apply_item *it = items; it != NULL; it = it->next) {
        for (size_t i = 0; i < it->nrows; i++) {
            live_row *r = it->rows[i].row;
            if (it->rows[i].remove) {
                row_free(r);
            } else {
                r->rowid = r->staged_rowid;
                bdy_ledger_record_free(r->pending);
                r->pending = NULL;
            }
        }
    }
    pthread_mutex_unlock(&l->map_lock);
    for (apply_item *it = items; it != NULL;) {
        apply_item *next = it->next;
        free(it);
        it = next;
    }
}

/* The applier: gathers the journal's groups for APPLY_LINGER_MS (less
 * when a reader waits for them, or at close), applies them in one
 * transaction, and frees their journal space. A round that fails is tried
 * again after a backoff; the journal keeps the groups meanwhile (and for
 * the next start, if it comes to that). */
static void *applier_main(void *arg)
{
    bdy_ledger *l = arg;
    /* Off the claim path: a claim's thread comes first. */
    bdy_thread_start("bdy-ledger-app", true);
    unsigned backoff_ms = 0;
    pthread_mutex_lock(&l->a_lock);
    for (;;) {
        while (l->a_head == NULL && !l->a_stopping)
            pthread_cond_wait(&l->a_wake, &l->a_lock);
        if (l->a_head == NULL)
            break;
        struct timespec until;
        bdy_deadline_after_ms(CLOCK_MONOTONIC, backoff_ms ? backoff_ms : APPLY_LINGER_MS, &until);
        while ((l->a_flush == 0 || backoff_ms > 0) && !l->a_stopping &&
               pthread_cond_timedwait(&l->a_wake, &l->a_lock, &until) == 0)
            ;
        apply_item *items = l->a_head;
        apply_item *tail = l->a_tail;
        l->a_head = l->a_tail = NULL;
        pthread_mutex_unlock(&l->a_lock);

        uint64_t last = 0;
        char why[256] = "";
        int rc = apply_round(l, items, &last, why, sizeof(why));
        if (rc == 0) {
            apply_settle(l, items);
            bdy_journal_release(l->journal, last);
            bdy_write_health_ok(&l->applies);
            backoff_ms = 0;
        } else {
            bdy_write_health_failed(&l->applies, why);
            backoff_ms = backoff_ms == 0 ? APPLY_RETRY_MIN_MS : 2 * backoff_ms;
            if (backoff_ms > APPLY_RETRY_MAX_MS)
                backoff_ms = APPLY_RETRY_MAX_MS;
        }
        pthread_mutex_lock(&l->a_lock);
        if (rc == 0) {
            l->a_applied = last;
        } else {
            /* Back to the front, before what came meanwhile. */
            tail->next = l->a_head;
            l->a_head = items;
            if (l->a_tail == NULL)
                l->a_tail = tail;
            l->a_failed++;
        }
        pthread_cond_broadcast(&l->a_done);
        if (rc != 0 && l->a_stopping)
            break;
    }
    pthread_mutex_unlock(&l->a_lock);
    return NULL;
}

/* Waits until SQLite holds every group committed so far. BDY_EIO when a
 * round fails meanwhile. */
static int apply_flush(bdy_ledger *l)
{
    pthread_mutex_lock(&l->a_lock);
    uint64_t want = l->a_queued;
    unsigned failed = l->a_failed;
    l->a_flush++;
    pthread_cond_signal(&l->a_wake);
    while (l->a_applied < want && l->a_failed == failed && l->applier_started)
        pthread_cond_wait(&l->a_done, &l->a_lock);
    int rc = l->a_applied >= want ? 0 : BDY_EIO;
    l->a_flush--;
    pthread_mutex_unlock(&l->a_lock);
    return rc;
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
    const char *vals[NCOLUMNS];
    claim_values(c, vals);
    size_t len[NCOLUMNS];
    for (int i = 0; i < NCOLUMNS; i++)
        len[i] = vals[i] != NULL ? strlen(vals[i]) : 0;
    return record_build(vals, len);
}

bool bdy_ledger_has(bdy_ledger *l, const char *id)
{
    pthread_mutex_lock(&l->map_lock);
    live_row *r = find_id(l, id);
    bool live = r != NULL && r->committed && !r->removing;
    pthread_mutex_unlock(&l->map_lock);
    return live;
}

bool bdy_ledger_claim_of_world(bdy_ledger *l, const char *world_uid, char *id, size_t cap)
{
    pthread_mutex_lock(&l->map_lock);
    live_row *r = find_uid(l, world_uid);
    bool live = r != NULL && r->committed && !r->removing;
    if (live && cap > 0)
        snprintf(id, cap, "%s", r->id);
    pthread_mutex_unlock(&l->map_lock);
    return live;
}

int bdy_ledger_get(bdy_ledger *l, const char *id, bdy_ledger_record **out)
{
    int rc = BDY_ENOTFOUND;
    pthread_mutex_lock(&l->map_lock);
    live_row *row = find_id(l, id);
    if (row != NULL && row->committed && row->pending != NULL) {
        /* In the journal, not yet in SQLite. */
        *out = bdy_ledger_record_copy(&row->pending->c);
        pthread_mutex_unlock(&l->map_lock);
        return *out != NULL ? 0 : BDY_ENOMEM;
    }
    int64_t rowid = row != NULL && row->committed ? row->rowid : 0;
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
    /* Every claim committed so far, SQLite's to read. */
    if (apply_flush(l) != 0)
        return bdy_fail(eb, BDY_EIO, "claim ledger %s: the journal could not be applied", l->path);
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
    if (rc == 0)
        rc = bdy_write_health_check(&l->writes, l->path, eb);
    /* A database that takes no more of the journal fills it: claims would
     * fail within seconds. */
    return rc != 0 ? rc : bdy_write_health_check(&l->applies, l->path, eb);
}
