/* Demand history in SQLite and per-pool forecasters; see demand.h. */
#include "bindery/demand.h"

#include "bindery/forecast.h"
#include "bindery/jsonutil.h"
#include "bindery/log.h"
#include "bindery/pool.h"
#include "bindery/sizing.h"
#include "bindery/util.h"

#include <json-c/json.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STEP_S BDY_FORECAST_STEP_DEFAULT_S
#define MA_WINDOW 3
/* Refit each forecaster this often (seconds of the clock passed to tick). */
#define REFIT_EVERY_S 86400.0
/* Least history worth fitting on, seconds. */
#define FIT_MIN_S (3 * 86400.0)
/* Most history read for a fit, seconds (the fit caps it again). */
#define FIT_MAX_S (35 * 86400.0)
/* Retention runs this often. */
#define PRUNE_EVERY_S 3600.0
/* A bucket counts as observed when at least this share of its minutes were. */
#define BUCKET_MIN_SHARE 0.5
/* Weight of a new lead time in the running estimate. */
#define LEAD_WEIGHT 0.2
#define KEY_MAX (2 * BDY_NAME_MAX)
/* Largest persisted state read back (a weekly season of minutes fits). */
#define STATE_MAX_BYTES (4 * 1024 * 1024)

typedef struct minute_slot {
    uint64_t minute; /* Unix minute this slot holds */
    uint32_t n[4];   /* by bdy_demand_kind */
    double lead_sum;
    uint32_t lead_n;
    bool lived; /* a tick saw the pool configured in this minute */
} minute_slot;

typedef struct pool_rec {
    struct pool_rec *next;
    char key[KEY_MAX]; /* "ns/name" */
    minute_slot slots[BDY_DEMAND_MEMORY_MINUTES];
    uint64_t flushed; /* minutes before this are written */
    bool configured;
    bool loaded;             /* state read from SQLite (or found absent) */
    uint64_t unclean_minute; /* not written: a stop cut it short (0: none) */
    bdy_forecast *fc;
    double lead_s; /* running estimate, 0 = none measured */
    double last_fit;
    double prev_level;
    double prev_at;
    unsigned target;
    bdy_override ov[BDY_SIZING_MAX_OVERRIDES];
    size_t nov;
    uint64_t overrides_gen; /* bumped when a reload changes ov (bdy_demand_note_target) */
    /* The sizing bounds of the config last applied (bounds_known: one
     * was): a reload that leaves them alone keeps the gradual scale-down. */
    bool bounds_known;
    unsigned min_warm, max_warm, max_worlds;
} pool_rec;

/* A pool's counts of the minute a clean stop was in (see bdy_demand_stop). */
typedef struct carried {
    char key[KEY_MAX];
    minute_slot s;
    bool unclean; /* that minute was already the first of a run after an unclean stop */
    bool used;
} carried;

struct bdy_demand {
    bdy_demand_opts o;
    char *path;
    sqlite3 *db;
    pthread_mutex_t lock; /* pools and everything in them */
    pool_rec *pools;
    pthread_mutex_t tick_lock; /* one tick at a time: the connection is not shared */
    double last_prune;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cond;
    bool stopping;
    /* The last run did not stop cleanly (the file still said it ran): the
     * minute it was cut short in lost its counts, so this run's first
     * minute (start_minute) is not written (missing, not a minute of too
     * few claims). */
    bool unclean_start;
    uint64_t start_minute; /* the first minute this run counted or ticked in; 0: none yet */
    /* What the last run, stopped cleanly, had counted of the minute it
     * stopped in: added to that minute if this run starts within it. */
    carried *carry;
    size_t ncarry;
    bool stopped; /* bdy_demand_stop has written the stop */
    bool opened;  /* bdy_demand_open succeeded (a close on its failure writes nothing) */
    bdy_metric_family *m_target, *m_forecast, *m_lead, *m_hit;
};

/* demand_meta keys: the mark of a run, present from its open to its clean
 * stop; and a pool's counts of the minute a clean stop was in. */
#define RUNNING_MARK "running"
#define CARRY_PREFIX "carry:"

static const char *const schema =
    "CREATE TABLE IF NOT EXISTS demand_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS demand_samples("
    " pool TEXT NOT NULL, start INTEGER NOT NULL, seconds INTEGER NOT NULL,"
    " minutes INTEGER NOT NULL, claims INTEGER NOT NULL, misses INTEGER NOT NULL,"
    " cold INTEGER NOT NULL, releases INTEGER NOT NULL, lead_sum REAL NOT NULL,"
    " lead_n INTEGER NOT NULL, PRIMARY KEY(pool, start)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS demand_state("
    " pool TEXT PRIMARY KEY, state TEXT NOT NULL, lead_s REAL NOT NULL,"
    " last_fit REAL NOT NULL, prev_level REAL NOT NULL DEFAULT -1,"
    " prev_at REAL NOT NULL DEFAULT 0, overrides TEXT NOT NULL DEFAULT '') WITHOUT ROWID;"
    "INSERT OR IGNORE INTO demand_meta VALUES('format', 'bindery-demand-1');";

/* Under d->lock. */
static pool_rec *pool_find(bdy_demand *d, const char *ns, const char *pool, bool create)
{
    char key[KEY_MAX];
    snprintf(key, sizeof(key), "%s/%s", ns, pool);
    pool_rec *p = d->pools;
    while (p != NULL && strcmp(p->key, key) != 0)
        p = p->next;
    if (p == NULL && create && (p = calloc(1, sizeof(*p))) != NULL) {
        snprintf(p->key, sizeof(p->key), "%s", key);
        p->prev_level = -1;
        p->next = d->pools;
        d->pools = p;
    }
    return p;
}

static minute_slot *slot_for(pool_rec *p, uint64_t minute)
{
    minute_slot *s = &p->slots[minute % BDY_DEMAND_MEMORY_MINUTES];
    if (s->minute != minute) {
        memset(s, 0, sizeof(*s));
        s->minute = minute;
    }
    return s;
}

/* Whether a slot holds anything but the mark that its minute was lived. */
static bool slot_counted(const minute_slot *s)
{
    return s->n[0] || s->n[1] || s->n[2] || s->n[3] || s->lead_n;
}

/* How the last run stopped, and what it carried over: the running mark
 * still there means it did not stop cleanly. Both are taken, and this
 * run's mark set, in one transaction. */
static int read_stop(bdy_demand *d, bdy_errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    int rc = 0;
    if (sqlite3_exec(d->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(d->db,
                           "SELECT key, value FROM demand_meta WHERE key = '" RUNNING_MARK
                           "' OR key LIKE '" CARRY_PREFIX "%'",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = BDY_EIO;
        goto out;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(st, 0);
        const char *value = (const char *)sqlite3_column_text(st, 1);
        if (strcmp(key, RUNNING_MARK) == 0) {
            d->unclean_start = true;
            continue;
        }
        carried c = {0};
        unsigned long long minute = 0;
        int unclean = 0;
        snprintf(c.key, sizeof(c.key), "%s", key + strlen(CARRY_PREFIX));
        if (sscanf(value, "%llu %u %u %u %u %lf %u %d", &minute, &c.s.n[0], &c.s.n[1], &c.s.n[2],
                   &c.s.n[3], &c.s.lead_sum, &c.s.lead_n, &unclean) != 8)
            continue; /* not ours to read: dropped below */
        c.s.minute = minute;
        c.unclean = unclean != 0;
        carried *grown = realloc(d->carry, (d->ncarry + 1) * sizeof(*grown));
        if (grown == NULL) {
            rc = BDY_ENOMEM;
            goto out;
        }
        d->carry = grown;
        d->carry[d->ncarry++] = c;
    }
    if (sqlite3_exec(d->db,
                     "DELETE FROM demand_meta WHERE key LIKE '" CARRY_PREFIX "%';"
                     "INSERT OR REPLACE INTO demand_meta VALUES('" RUNNING_MARK "', '1');"
                     "COMMIT;",
                     NULL, NULL, NULL) != SQLITE_OK)
        rc = BDY_EIO;
out:
    sqlite3_finalize(st);
    /* The message first: the ROLLBACK succeeds and clears it ("not an
     * error" was all a full disk said at start). */
    if (rc == BDY_EIO)
        bdy_fail(eb, rc, "%s: %s", d->path, sqlite3_errmsg(d->db));
    else if (rc != 0)
        bdy_fail(eb, rc, "out of memory");
    if (rc != 0 && !sqlite3_get_autocommit(d->db))
        sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* Pool p counts from minute on (its first in this run): a minute a stop
 * cut short, or the one a clean stop carried over, is taken into account.
 * Under d->lock. */
static void pool_first_minute(bdy_demand *d, pool_rec *p, uint64_t minute)
{
    p->flushed = minute;
    if (d->start_minute == 0)
        d->start_minute = minute;
    if (d->unclean_start && minute == d->start_minute)
        p->unclean_minute = minute;
    for (size_t i = 0; i < d->ncarry; i++) {
        carried *c = &d->carry[i];
        if (c->used || c->s.minute != minute || strcmp(c->key, p->key) != 0)
            continue;
        c->used = true;
        minute_slot *s = slot_for(p, minute);
        for (int k = 0; k < 4; k++)
            s->n[k] += c->s.n[k];
        s->lead_sum += c->s.lead_sum;
        s->lead_n += c->s.lead_n;
        if (c->unclean)
            p->unclean_minute = minute;
    }
}

int bdy_demand_open(const bdy_demand_opts *opts, bdy_demand **out, bdy_errbuf *eb)
{
    int rc = 0;
    char *err = NULL;
    bdy_demand *d = calloc(1, sizeof(*d));
    *out = NULL;
    if (d == NULL)
        return bdy_fail(eb, BDY_ENOMEM, "out of memory");
    d->o = *opts;
    if (d->o.minute_retention_h == 0)
        d->o.minute_retention_h = 48;
    if (d->o.retention_days == 0)
        d->o.retention_days = 35;
    pthread_mutex_init(&d->lock, NULL);
    pthread_mutex_init(&d->tick_lock, NULL);
    pthread_mutex_init(&d->stop_lock, NULL);
    bdy_cond_init_monotonic(&d->stop_cond);
    d->path = strdup(opts->path);
    if (d->path == NULL) {
        rc = bdy_fail(eb, BDY_ENOMEM, "out of memory");
        goto out;
    }
    if (sqlite3_open_v2(d->path, &d->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        rc = bdy_fail(eb, BDY_EIO, "%s: cannot open: %s", d->path,
                      d->db ? sqlite3_errmsg(d->db) : "out of memory");
        goto out;
    }
    sqlite3_busy_timeout(d->db, 5000);
    if (sqlite3_exec(d->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL,
                     &err) != SQLITE_OK ||
        sqlite3_exec(d->db, schema, NULL, NULL, &err) != SQLITE_OK) {
        int code = sqlite3_errcode(d->db);
        rc = bdy_fail(eb, code == SQLITE_NOTADB || code == SQLITE_CORRUPT ? BDY_ECORRUPT : BDY_EIO,
                      "%s: %s", d->path, err ? err : sqlite3_errmsg(d->db));
        goto out;
    }
    /* A file from before the gradual scale-down's level was kept gets its
     * columns, in one transaction: a start cut short between two of them
     * would leave a table that no later start adds the rest to. */
    static const char *const added[][2] = {
        {"prev_level", "ALTER TABLE demand_state ADD COLUMN prev_level REAL NOT NULL DEFAULT -1"},
        {"prev_at", "ALTER TABLE demand_state ADD COLUMN prev_at REAL NOT NULL DEFAULT 0"},
        {"overrides", "ALTER TABLE demand_state ADD COLUMN overrides TEXT NOT NULL DEFAULT ''"}};
    bool began = sqlite3_exec(d->db, "BEGIN IMMEDIATE", NULL, NULL, &err) == SQLITE_OK;
    for (size_t i = 0; began && i < sizeof(added) / sizeof(added[0]); i++) {
        char probe_sql[96];
        snprintf(probe_sql, sizeof(probe_sql), "SELECT %s FROM demand_state LIMIT 0", added[i][0]);
        sqlite3_stmt *probe = NULL;
        bool has = sqlite3_prepare_v2(d->db, probe_sql, -1, &probe, NULL) == SQLITE_OK;
        sqlite3_finalize(probe);
        if (!has && sqlite3_exec(d->db, added[i][1], NULL, NULL, &err) != SQLITE_OK)
            began = false;
    }
    if (!began || sqlite3_exec(d->db, "COMMIT", NULL, NULL, &err) != SQLITE_OK) {
        rc = bdy_fail(eb, BDY_EIO, "%s: %s", d->path, err ? err : sqlite3_errmsg(d->db));
        sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
        goto out;
    }
    if ((rc = read_stop(d, eb)) != 0)
        goto out;
    if (opts->metrics != NULL) {
        const char *p[] = {"namespace", "pool", NULL};
        d->m_target = bdy_metrics_gauge(opts->metrics, "bindery_pool_target_warm",
                                        "Warm-world target of the pool (forecast sizing).", p);
        d->m_forecast =
            bdy_metrics_gauge(opts->metrics, "bindery_pool_forecast_per_minute",
                              "Forecast claims per minute over the coming lead time.", p);
        d->m_lead = bdy_metrics_gauge(opts->metrics, "bindery_pool_lead_time_seconds",
                                      "World lead time (creation to Ready) the sizing uses.", p);
        d->m_hit = bdy_metrics_gauge(opts->metrics, "bindery_pool_warm_hit_ratio",
                                     "Share of the last hour's claims that found a warm world.", p);
    }
    d->opened = true;
    *out = d;
    d = NULL;
out:
    sqlite3_free(err);
    bdy_demand_close(d);
    return rc;
}

static void *tick_main(void *arg)
{
    bdy_demand *d = arg;
    bdy_log_limit tick_log = {0}; /* a damaged file fails every tick */
    bdy_thread_start("bdy-demand", true);
    pthread_mutex_lock(&d->stop_lock);
    while (!d->stopping) {
        pthread_mutex_unlock(&d->stop_lock);
        int rc = bdy_demand_tick(d, (double)time(NULL));
        uint64_t held = 0;
        if (rc != 0 && bdy_log_admit(&tick_log, 60000, &held))
            bdy_warn("demand",
                     "%s: the demand history cannot be updated: %s (%llu such lines held "
                     "back before this one)",
                     d->path, bdy_strerror(rc), (unsigned long long)held);
        pthread_mutex_lock(&d->stop_lock);
        /* Monotonic: a wall clock stepped back must not hold the tick
         * back for as long (claims are recorded only from the minute the
         * last tick flushed). */
        struct timespec ts;
        bdy_deadline_after_ms(CLOCK_MONOTONIC, BDY_DEMAND_TICK_MS, &ts);
        if (!d->stopping)
            pthread_cond_timedwait(&d->stop_cond, &d->stop_lock, &ts);
    }
    pthread_mutex_unlock(&d->stop_lock);
    return NULL;
}

int bdy_demand_start(bdy_demand *d, bdy_errbuf *eb)
{
    if (pthread_create(&d->thread, NULL, tick_main, d) != 0)
        return bdy_fail(eb, BDY_ENOMEM, "cannot start the demand thread");
    d->thread_started = true;
    return 0;
}

void bdy_demand_close(bdy_demand *d)
{
    if (d == NULL)
        return;
    if (d->thread_started) {
        pthread_mutex_lock(&d->stop_lock);
        d->stopping = true;
        pthread_cond_signal(&d->stop_cond);
        pthread_mutex_unlock(&d->stop_lock);
        pthread_join(d->thread, NULL);
    }
    /* One clock for both: a minute that ends in between would be neither
     * complete for the tick nor current for the stop. */
    double now = (double)time(NULL);
    if (d->thread_started)
        bdy_demand_tick(d, now);
    if (d->opened && !d->stopped && bdy_demand_stop(d, now) != 0)
        bdy_warn("demand", "%s: the claims of the last minute could not be written", d->path);
    while (d->pools != NULL) {
        pool_rec *p = d->pools;
        d->pools = p->next;
        bdy_forecast_free(p->fc);
        free(p);
    }
    if (d->db != NULL)
        sqlite3_close(d->db);
    free(d->carry);
    free(d->path);
    pthread_mutex_destroy(&d->lock);
    pthread_mutex_destroy(&d->tick_lock);
    pthread_mutex_destroy(&d->stop_lock);
    pthread_cond_destroy(&d->stop_cond);
    free(d);
}

static bool same_overrides(const bdy_override *a, const bdy_override *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i].from != b[i].from || a[i].to != b[i].to || a[i].min_warm != b[i].min_warm ||
            a[i].daily != b[i].daily)
            return false;
    return true;
}

int bdy_demand_set_pools(bdy_demand *d, const bdy_config_pools *pools, bdy_errbuf *eb)
{
    int rc = 0;
    pthread_mutex_lock(&d->lock);
    for (pool_rec *p = d->pools; p != NULL; p = p->next)
        p->configured = false;
    for (size_t i = 0; i < pools->count; i++) {
        const bdy_config_pool *c = &pools->items[i];
        bdy_override ov[BDY_SIZING_MAX_OVERRIDES];
        size_t nov = c->overrides.count < BDY_SIZING_MAX_OVERRIDES ? c->overrides.count
                                                                   : BDY_SIZING_MAX_OVERRIDES;
        for (size_t k = 0; k < nov; k++) {
            const bdy_config_override *co = &c->overrides.items[k];
            bool daily_from = false;
            bool daily_to = false;
            if (bdy_override_time_parse(co->from, &daily_from, &ov[k].from) != 0 ||
                bdy_override_time_parse(co->to, &daily_to, &ov[k].to) != 0 ||
                daily_from != daily_to) {
                rc = bdy_fail(eb, BDY_EINVAL, "pool %s/%s: override %zu: bad from/to", c->ns,
                              c->name, k);
                goto out;
            }
            ov[k].daily = daily_from;
            ov[k].min_warm = co->min_warm;
        }
        pool_rec *p = pool_find(d, c->ns, c->name, true);
        if (p == NULL) {
            rc = bdy_fail(eb, BDY_ENOMEM, "out of memory");
            goto out;
        }
        p->configured = true;
        /* Changed overrides are the operator's word: the level an override
         * held up does not decay from it once the override is gone. Bounds
         * need no such reset, since the sizer clamps the level to them at
         * once (a lowered maxWarm) or leaves it be: a raised maxWarm must
         * not drop the target to the forecast's at once, and have the
         * worlds above it deleted after the cooldown. */
        bool same_ov = p->bounds_known && p->nov == nov && same_overrides(p->ov, ov, nov);
        if (!same_ov) {
            p->prev_level = -1;
            p->overrides_gen++;
        }
        p->bounds_known = true;
        p->min_warm = c->min_warm;
        p->max_warm = c->max_warm;
        p->max_worlds = c->max_worlds;
        memcpy(p->ov, ov, nov * sizeof(ov[0]));
        p->nov = nov;
    }
out:
    pthread_mutex_unlock(&d->lock);
    return rc;
}

void bdy_demand_record(bdy_demand *d, const char *ns, const char *pool, bdy_demand_kind kind,
                       double now)
{
    if (d == NULL || kind < BDY_DEMAND_CLAIM || kind > BDY_DEMAND_RELEASE)
        return;
    pthread_mutex_lock(&d->lock);
    pool_rec *p = pool_find(d, ns, pool, false);
    uint64_t minute = (uint64_t)(now / 60);
    if (p != NULL && p->flushed == 0)
        pool_first_minute(d, p, minute); /* the first minute this daemon saw */
    if (p != NULL && minute >= p->flushed)
        slot_for(p, minute)->n[kind]++;
    pthread_mutex_unlock(&d->lock);
}

void bdy_demand_lead_time(bdy_demand *d, const char *ns, const char *pool, double seconds,
                          double now)
{
    if (d == NULL || !(seconds >= 0) || !isfinite(seconds))
        return;
    pthread_mutex_lock(&d->lock);
    pool_rec *p = pool_find(d, ns, pool, false);
    uint64_t minute = (uint64_t)(now / 60);
    if (p != NULL) {
        p->lead_s = p->lead_s > 0 ? (1 - LEAD_WEIGHT) * p->lead_s + LEAD_WEIGHT * seconds : seconds;
        if (minute >= p->flushed) {
            minute_slot *s = slot_for(p, minute);
            s->lead_sum += seconds;
            s->lead_n++;
        }
    }
    pthread_mutex_unlock(&d->lock);
}

/* ---- the tick ---------------------------------------------------------------------------- */

typedef struct row {
    char key[KEY_MAX];
    minute_slot s; /* s.lived: the minute counts as time, see write_rows */
} row;

static int exec_sql(bdy_demand *d, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(d->db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        bdy_warn("demand", "%s: %s", d->path, err ? err : sqlite3_errmsg(d->db));
    sqlite3_free(err);
    return rc == SQLITE_OK ? 0 : BDY_EIO;
}

static int write_rows(bdy_demand *d, const row *rows, size_t n)
{
    int rc = 0;
    sqlite3_stmt *st = NULL;
    if (n == 0)
        return 0;
    if ((rc = exec_sql(d, "BEGIN")) != 0)
        return rc;
    if (sqlite3_prepare_v2(d->db,
                           "INSERT OR REPLACE INTO demand_samples VALUES(?,?,60,?,?,?,?,?,?,?)", -1,
                           &st, NULL) != SQLITE_OK) {
        rc = BDY_EIO;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, rows[i].key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)rows[i].s.minute * 60);
        /* A minute the pool was configured in counts as time, its claims
         * as demand; a removed pool's minute (releases, lead times) counts
         * no time, or its forecast would read it as one without demand. */
        sqlite3_bind_int(st, 3, rows[i].s.lived ? 1 : 0);
        for (int k = 0; k < 4; k++)
            sqlite3_bind_int64(st, 4 + k, rows[i].s.n[k]);
        sqlite3_bind_double(st, 8, rows[i].s.lead_sum);
        sqlite3_bind_int64(st, 9, rows[i].s.lead_n);
        if (sqlite3_step(st) != SQLITE_DONE) {
            rc = BDY_EIO;
            goto out;
        }
    }
out:
    sqlite3_finalize(st);
    if (rc == 0)
        rc = exec_sql(d, "COMMIT");
    /* A failed COMMIT (SQLITE_BUSY, say) leaves the transaction open, and
     * every later BEGIN would fail with it. */
    if (rc != 0 && !sqlite3_get_autocommit(d->db))
        exec_sql(d, "ROLLBACK");
    return rc;
}

/* Rates (claims per minute) of buckets [first, first + n) of one pool;
 * NaN where too little of a bucket was observed. */
static int read_buckets(bdy_demand *d, const char *key, uint64_t first, size_t n, double *out)
{
    sqlite3_stmt *st = NULL;
    for (size_t i = 0; i < n; i++)
        out[i] = NAN;
    double *claims = calloc(n, sizeof(double));
    double *minutes = calloc(n, sizeof(double));
    int rc = 0;
    if (claims == NULL || minutes == NULL) {
        rc = BDY_ENOMEM;
        goto out;
    }
    if (sqlite3_prepare_v2(d->db,
                           "SELECT start, minutes, claims FROM demand_samples"
                           " WHERE pool = ? AND start >= ? AND start < ?",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = BDY_EIO;
        goto out;
    }
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)first * STEP_S);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)(first + n) * STEP_S);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        uint64_t b = (uint64_t)sqlite3_column_int64(st, 0) / STEP_S;
        if (b < first || b >= first + n)
            continue;
        minutes[b - first] += (double)sqlite3_column_int64(st, 1);
        claims[b - first] += (double)sqlite3_column_int64(st, 2);
    }
    if (step != SQLITE_DONE) {
        rc = BDY_EIO;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (minutes[i] >= BUCKET_MIN_SHARE * STEP_S / 60.0)
            out[i] = claims[i] / minutes[i];
    }
out:
    sqlite3_finalize(st);
    free(claims);
    free(minutes);
    return rc;
}

/* What a level noted at `at` has decayed to by now; -1 for none. */
static double decayed_level(double level, double at, double now)
{
    return level < 0 ? -1 : bdy_sizing_decayed(level, at, now);
}

/* The overrides a level was computed under, as text: a level is restored
 * only under the same ones (a changed override ends the scale-down at
 * once, after a restart as after a reload). */
#define OVERRIDES_TEXT_MAX ((size_t)BDY_SIZING_MAX_OVERRIDES * 64)
static void overrides_text(const bdy_override *ov, size_t n, char out[OVERRIDES_TEXT_MAX])
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && len < OVERRIDES_TEXT_MAX; i++) {
        int w = snprintf(out + len, OVERRIDES_TEXT_MAX - len, "%.17g-%.17g-%u-%d;", ov[i].from,
                         ov[i].to, ov[i].min_warm, ov[i].daily ? 1 : 0);
        len += w > 0 ? (size_t)w : 0;
    }
}

/* A pool's level of gradual scale-down, kept with its forecast so that a
 * restart goes on scaling down from where it was instead of dropping the
 * target to the forecast's at once (and deleting the surplus after the
 * cooldown, to make it again on the next misses). */
typedef struct saved_level {
    double level; /* < 0: none */
    double at;
    char overrides[OVERRIDES_TEXT_MAX]; /* overrides_text of its pool's then */
} saved_level;

/* state NULL: the level alone, on the row a forecast state made. */
static int save_state(bdy_demand *d, const char *key, const char *state, double lead_s,
                      double last_fit, const saved_level *lv)
{
    sqlite3_stmt *st = NULL;
    int rc = 0;
    const char *sql = state != NULL
                          ? "INSERT OR REPLACE INTO demand_state VALUES(?1,?2,?3,?4,?5,?6,?7)"
                          : "UPDATE demand_state SET prev_level = ?5, prev_at = ?6, "
                            "overrides = ?7 WHERE pool = ?1";
    if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) != SQLITE_OK)
        return BDY_EIO;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (state != NULL) {
        sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
        sqlite3_bind_double(st, 3, lead_s);
        sqlite3_bind_double(st, 4, last_fit);
    }
    sqlite3_bind_double(st, 5, lv->level);
    sqlite3_bind_double(st, 6, lv->at);
    sqlite3_bind_text(st, 7, lv->overrides, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = BDY_EIO;
    sqlite3_finalize(st);
    return rc;
}

/* The minutes [from, to) of a pool that an earlier run wrote, as slots
 * (lived, the way they were written), into out (room for
 * BDY_DEMAND_MEMORY_MINUTES); how many. A read that fails gives none: the
 * last hour's counts (warmHitRatio, recent demand) then start afresh. */
static size_t read_minutes(bdy_demand *d, const char *key, uint64_t from, uint64_t to,
                           minute_slot *out)
{
    sqlite3_stmt *st = NULL;
    size_t n = 0;
    if (to <= from || sqlite3_prepare_v2(d->db,
                                         "SELECT start, claims, misses, cold, releases, lead_sum,"
                                         " lead_n FROM demand_samples WHERE pool = ? AND"
                                         " seconds = 60 AND start >= ? AND start < ?",
                                         -1, &st, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)from * 60);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)to * 60);
    while (n < BDY_DEMAND_MEMORY_MINUTES && sqlite3_step(st) == SQLITE_ROW) {
        minute_slot *m = &out[n++];
        memset(m, 0, sizeof(*m));
        m->minute = (uint64_t)sqlite3_column_int64(st, 0) / 60;
        for (int k = 0; k < 4; k++)
            m->n[k] = (uint32_t)sqlite3_column_int64(st, 1 + k);
        m->lead_sum = sqlite3_column_double(st, 5);
        m->lead_n = (uint32_t)sqlite3_column_int64(st, 6);
        m->lived = true;
    }
    sqlite3_finalize(st);
    return n;
}

/* Reads a pool's persisted forecaster; *fc stays NULL when there is none
 * or it does not load (logged: the forecast then starts afresh). */
static void load_state(bdy_demand *d, const char *key, bdy_forecast **fc, double *lead_s,
                       double *last_fit, saved_level *lv)
{
    sqlite3_stmt *st = NULL;
    json_object *j = NULL;
    *fc = NULL;
    lv->level = -1;
    lv->at = 0;
    lv->overrides[0] = '\0';
    if (sqlite3_prepare_v2(d->db,
                           "SELECT state, lead_s, last_fit, prev_level, prev_at, overrides FROM "
                           "demand_state WHERE pool = ?",
                           -1, &st, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(st, 0);
        int len = sqlite3_column_bytes(st, 0);
        *lead_s = sqlite3_column_double(st, 1);
        *last_fit = sqlite3_column_double(st, 2);
        lv->level = sqlite3_column_double(st, 3);
        lv->at = sqlite3_column_double(st, 4);
        const char *ov = (const char *)sqlite3_column_text(st, 5);
        snprintf(lv->overrides, sizeof(lv->overrides), "%s", ov ? ov : "");
        if (!isfinite(lv->level) || !isfinite(lv->at))
            lv->level = -1;
        bdy_errbuf eb;
        bdy_errbuf_clear(&eb);
        if (text != NULL && len <= STATE_MAX_BYTES && (j = bdy_json_parse_stored(text)) != NULL &&
            bdy_forecast_from_json(j, fc, &eb) == 0) {
            bdy_info("demand", "pool %s: forecast continues from bucket %llu", key,
                     (unsigned long long)bdy_forecast_next_bucket(*fc));
        } else {
            bdy_warn("demand", "pool %s: stored forecast state not usable (%s); starting afresh",
                     key, eb.message[0] ? eb.message : "not JSON");
        }
    }
    json_object_put(j);
    sqlite3_finalize(st);
}

/* Refits a pool's forecaster on its history up to bucket `upto` (exclusive)
 * outside the lock; NULL when there is too little history. */
static bdy_forecast *refit(bdy_demand *d, const char *key, uint64_t upto)
{
    uint64_t nmax = (uint64_t)(FIT_MAX_S / STEP_S);
    uint64_t first = upto > nmax ? upto - nmax : 0;
    sqlite3_stmt *st = NULL;
    /* Start at the oldest stored sample. */
    if (sqlite3_prepare_v2(d->db, "SELECT MIN(start) FROM demand_samples WHERE pool = ?", -1, &st,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
            uint64_t oldest = (uint64_t)sqlite3_column_int64(st, 0) / STEP_S;
            if (oldest > first)
                first = oldest;
        }
    }
    sqlite3_finalize(st);
    if (upto <= first || (double)(upto - first) * STEP_S < FIT_MIN_S)
        return NULL;
    size_t n = (size_t)(upto - first);
    double *obs = calloc(n, sizeof(double));
    bdy_forecast *fc = NULL;
    bdy_forecast_opts fo = {.step_s = STEP_S, .weekly = d->o.weekly, .ma_window = MA_WINDOW};
    if (obs == NULL || read_buckets(d, key, first, n, obs) != 0 ||
        bdy_forecast_new(&fo, &fc) != 0 || bdy_forecast_fit(fc, obs, n, first, 1) != 0) {
        bdy_forecast_free(fc);
        fc = NULL;
    }
    free(obs);
    return fc;
}

typedef struct work {
    char key[KEY_MAX];
    uint64_t flushed_from; /* the pool's first minute written by this tick */
    bool load;
    uint64_t feed_from, feed_to; /* buckets to feed */
    bool fit;
    bool removed; /* a pool the config no longer names: rows only, no forecast work */
} work;

/* Whether fc has been fed buckets after feed_to, the last complete one:
 * the wall clock went back (an NTP step, a restored snapshot). Fed on, it
 * would take nothing until the clock caught up again, for as long as the
 * jump, and its state, saved, would stay so across restarts. */
static bool fed_ahead(const bdy_forecast *fc, uint64_t feed_to)
{
    return fc != NULL && bdy_forecast_next_bucket(fc) > feed_to + 1;
}

/* A forecaster fed ahead of the clock (fed_ahead) is dropped and fitted
 * again from the history up to now. Under d->lock. */
static void drop_if_ahead(pool_rec *p, work *w)
{
    if (!fed_ahead(p->fc, w->feed_to))
        return;
    bdy_warn("demand",
             "%s: the forecast was fed up to %.0f s ahead of the clock, which went back; it "
             "is fitted again from the history",
             p->key, (double)(bdy_forecast_next_bucket(p->fc) - w->feed_to) * STEP_S);
    bdy_forecast_free(p->fc);
    p->fc = NULL;
    w->feed_from = w->feed_to;
    w->fit = true;
}

/* Whether a refit is due: REFIT_EVERY_S since the last, or a last one in
 * the future (the clock went back). */
static bool refit_due(double now, double last_fit)
{
    return now - last_fit >= REFIT_EVERY_S || last_fit > now;
}

int bdy_demand_tick(bdy_demand *d, double now)
{
    int rc = 0;
    row *rows = NULL;
    size_t nrows = 0;
    work *jobs = NULL;
    size_t njobs = 0;
    size_t npools = 0;
    uint64_t minute_now = (uint64_t)(now / 60);
    uint64_t bucket_now = (uint64_t)(now / STEP_S);
    pthread_mutex_lock(&d->tick_lock);

    /* 1. Completed minutes, copied out under the lock. */
    pthread_mutex_lock(&d->lock);
    for (pool_rec *p = d->pools; p != NULL; p = p->next)
        npools++;
    rows = calloc(npools * BDY_DEMAND_MEMORY_MINUTES + 1, sizeof(*rows));
    jobs = calloc(npools + 1, sizeof(*jobs));
    if (rows == NULL || jobs == NULL) {
        pthread_mutex_unlock(&d->lock);
        rc = BDY_ENOMEM;
        goto out;
    }
    for (pool_rec *p = d->pools; p != NULL; p = p->next) {
        if (!p->configured) {
            /* A pool the config no longer names: what it counted before
             * the reload is written, but no minutes without demand after
             * (its time away is missing history to its forecast, should
             * it come back), and no forecast work. */
            bool counted = false;
            for (uint64_t m = p->flushed; p->flushed != 0 && m < minute_now; m++) {
                minute_slot *s = &p->slots[m % BDY_DEMAND_MEMORY_MINUTES];
                if (s->minute != m || m + BDY_DEMAND_MEMORY_MINUTES <= minute_now ||
                    !slot_counted(s))
                    continue;
                row *r = &rows[nrows++];
                snprintf(r->key, sizeof(r->key), "%s", p->key);
                r->s = *s; /* lived: the minute the reload removed it in was */
                counted = true;
            }
            if (counted) {
                /* A job without forecast work, so that a failed write
                 * puts these minutes back for the next tick. */
                work *w = &jobs[njobs++];
                memset(w, 0, sizeof(*w));
                snprintf(w->key, sizeof(w->key), "%s", p->key);
                w->flushed_from = p->flushed;
                w->removed = true;
            }
            p->flushed = minute_now;
            continue;
        }
        if (p->flushed == 0)
            pool_first_minute(d, p, minute_now);
        /* The minutes in memory from flushed on, by their slots: after a
         * jump past the memory (the machine suspended, the clock stepped
         * forward) the minute the jump began in is still there, and was
         * lived. Before this minute's slot is taken, which may be that
         * minute's. */
        uint64_t flushed_from = p->flushed;
        for (size_t i = 0; i < BDY_DEMAND_MEMORY_MINUTES; i++) {
            minute_slot *s = &p->slots[i];
            if (s->minute < p->flushed || s->minute >= minute_now)
                continue;
            if (s->minute == p->unclean_minute)
                continue; /* missing: part of it was counted by a run that is gone */
            row *r = &rows[nrows++];
            snprintf(r->key, sizeof(r->key), "%s", p->key);
            r->s = *s;
            r->s.lived = true;
        }
        /* This minute was lived through: written once complete, if only
         * as a minute without demand. A minute no tick and no event saw
         * (the jump above) is left out: missing to the forecast, not zero
         * demand. */
        slot_for(p, minute_now)->lived = true;
        p->flushed = minute_now;
        work *w = &jobs[njobs++];
        snprintf(w->key, sizeof(w->key), "%s", p->key);
        w->flushed_from = flushed_from;
        w->load = !p->loaded;
        w->feed_from = p->fc ? bdy_forecast_next_bucket(p->fc) : bucket_now;
        /* A bucket is complete once its last minute is written. */
        w->feed_to = (minute_now * 60) / STEP_S;
        w->fit = refit_due(now, p->last_fit);
        drop_if_ahead(p, w);
    }
    pthread_mutex_unlock(&d->lock);
    if ((rc = write_rows(d, rows, nrows)) != 0) {
        /* Not written: the minutes are still in memory (the last
         * BDY_DEMAND_MEMORY_MINUTES), and the next tick writes them. */
        pthread_mutex_lock(&d->lock);
        for (size_t i = 0; i < njobs; i++)
            for (pool_rec *p = d->pools; p != NULL; p = p->next)
                if (strcmp(p->key, jobs[i].key) == 0 && p->flushed == minute_now)
                    p->flushed = jobs[i].flushed_from;
        pthread_mutex_unlock(&d->lock);
        goto out;
    }

    /* Every pool's stored state first (a read and a parse each), so that
     * after a restart no pool is sized without its forecast while others'
     * refits (a parameter search each) run. */
    for (size_t i = 0; i < njobs; i++) {
        work *w = &jobs[i];
        if (!w->removed && w->load) {
            bdy_forecast *fc = NULL;
            double lead = 0;
            double last_fit = 0;
            saved_level lv;
            load_state(d, w->key, &fc, &lead, &last_fit, &lv);
            /* The last hour before this run, as an earlier one wrote it:
             * warmHitRatio is "over the last hour", restart or not. */
            minute_slot *before = calloc(BDY_DEMAND_MEMORY_MINUTES, sizeof(*before));
            uint64_t first = minute_now - BDY_DEMAND_MEMORY_MINUTES + 1;
            size_t nbefore =
                before != NULL ? read_minutes(d, w->key, first, w->flushed_from, before) : 0;
            pthread_mutex_lock(&d->lock);
            pool_rec *p = d->pools;
            while (p != NULL && strcmp(p->key, w->key) != 0)
                p = p->next;
            if (p != NULL && !p->loaded) {
                /* Into slots this run has not used for those minutes (it
                 * writes only minutes from flushed_from on, so none is
                 * written twice). */
                for (size_t k = 0; k < nbefore; k++) {
                    minute_slot *s = &p->slots[before[k].minute % BDY_DEMAND_MEMORY_MINUTES];
                    if (s->minute != before[k].minute)
                        *s = before[k];
                }
                p->loaded = true;
                p->fc = fc;
                fc = NULL;
                if (p->lead_s == 0)
                    p->lead_s = lead;
                p->last_fit = last_fit;
                /* The stored level, if it was computed under the
                 * overrides in force now, unless a pass of this run
                 * noted a higher one since (both as decayed to now). */
                char ov_now[OVERRIDES_TEXT_MAX];
                overrides_text(p->ov, p->nov, ov_now);
                if (lv.level >= 0 && strcmp(lv.overrides, ov_now) == 0 &&
                    decayed_level(lv.level, lv.at, now) >
                        decayed_level(p->prev_level, p->prev_at, now)) {
                    p->prev_level = lv.level;
                    p->prev_at = lv.at;
                }
                w->feed_from = p->fc ? bdy_forecast_next_bucket(p->fc) : w->feed_to;
                w->fit = refit_due(now, last_fit);
                drop_if_ahead(p, w);
            }
            pthread_mutex_unlock(&d->lock);
            free(before);
            bdy_forecast_free(fc);
        }
    }
    for (size_t i = 0; i < njobs; i++) {
        work *w = &jobs[i];
        if (w->removed)
            continue;
        bdy_forecast *fitted = w->fit ? refit(d, w->key, w->feed_to) : NULL;
        /* Buckets to feed: after the stored state, before now; a very long
         * downtime is skipped (the forecaster treats it as missing). */
        uint64_t from = w->feed_from;
        if (w->feed_to > from + (uint64_t)(FIT_MAX_S / STEP_S))
            from = w->feed_to - (uint64_t)(FIT_MAX_S / STEP_S);
        size_t n = w->feed_to > from ? (size_t)(w->feed_to - from) : 0;
        double *obs = n ? calloc(n, sizeof(double)) : NULL;
        if (n > 0 && (obs == NULL || read_buckets(d, w->key, from, n, obs) != 0))
            n = 0;
        char *state = NULL;
        double lead = 0;
        double last_fit = 0;
        saved_level lv = {.level = -1};
        bool keep_level = false;
        pthread_mutex_lock(&d->lock);
        pool_rec *p = d->pools;
        while (p != NULL && strcmp(p->key, w->key) != 0)
            p = p->next;
        if (p != NULL) {
            if (w->fit)
                p->last_fit = now; /* also when there was too little history */
            if (fitted != NULL) {
                bdy_forecast_free(p->fc);
                p->fc = fitted;
                fitted = NULL;
            }
            if (p->fc == NULL) {
                bdy_forecast_opts fo = {
                    .step_s = STEP_S, .weekly = d->o.weekly, .ma_window = MA_WINDOW};
                if (bdy_forecast_new(&fo, &p->fc) != 0)
                    p->fc = NULL;
            }
            bool fed = false;
            for (size_t k = 0; p->fc != NULL && k < n; k++) {
                if (from + k >= bdy_forecast_next_bucket(p->fc) || !bdy_forecast_observed(p->fc)) {
                    fed |= bdy_forecast_observe(p->fc, from + k, obs[k]) == 0;
                }
            }
            if (p->fc != NULL && (fed || w->fit || w->load)) {
                json_object *j = bdy_forecast_to_json(p->fc);
                const char *s = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN);
                state = s ? strdup(s) : NULL;
                json_object_put(j);
            }
            lead = p->lead_s;
            last_fit = p->last_fit;
            lv.level = p->prev_level;
            lv.at = p->prev_at;
            overrides_text(p->ov, p->nov, lv.overrides);
            keep_level = p->loaded; /* a pass notes a new level every second or so */
        }
        pthread_mutex_unlock(&d->lock);
        bdy_forecast_free(fitted);
        free(obs);
        if ((state != NULL || keep_level) && save_state(d, w->key, state, lead, last_fit, &lv) != 0)
            rc = BDY_EIO;
        free(state);
    }

    /* Retention: fold old minutes into 5-minute rows, drop the oldest. */
    if (now - d->last_prune >= PRUNE_EVERY_S || d->last_prune > now) {
        d->last_prune = now;
        char sql[1024];
        long long minutes_before = (long long)(now - d->o.minute_retention_h * 3600.0);
        long long buckets_before = (long long)(now - d->o.retention_days * 86400.0);
        snprintf(sql, sizeof(sql),
                 "BEGIN;"
                 "INSERT OR REPLACE INTO demand_samples"
                 " SELECT pool, (start / %d) * %d, %d, SUM(minutes), SUM(claims), SUM(misses),"
                 " SUM(cold), SUM(releases), SUM(lead_sum), SUM(lead_n) FROM demand_samples"
                 " WHERE seconds = 60 AND start < (%lld / %d) * %d GROUP BY pool, start / %d;"
                 "DELETE FROM demand_samples WHERE seconds = 60 AND start < (%lld / %d) * %d"
                 " AND start %% %d != 0;"
                 "DELETE FROM demand_samples WHERE start < %lld;"
                 "COMMIT;",
                 STEP_S, STEP_S, STEP_S, minutes_before, STEP_S, STEP_S, STEP_S, minutes_before,
                 STEP_S, STEP_S, STEP_S, buckets_before);
        if (exec_sql(d, sql) != 0) {
            exec_sql(d, "ROLLBACK");
            rc = BDY_EIO;
        }
    }
out:
    pthread_mutex_unlock(&d->tick_lock);
    free(rows);
    free(jobs);
    return rc;
}

int bdy_demand_stop(bdy_demand *d, double now)
{
    uint64_t minute_now = (uint64_t)(now / 60);
    int rc = 0;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&d->tick_lock);
    size_t npools = 0;
    size_t n = 0;
    pthread_mutex_lock(&d->lock);
    for (pool_rec *p = d->pools; p != NULL; p = p->next)
        npools++;
    carried *rows = calloc(npools + 1, sizeof(*rows));
    for (pool_rec *p = d->pools; rows != NULL && p != NULL; p = p->next) {
        const minute_slot *s = &p->slots[minute_now % BDY_DEMAND_MEMORY_MINUTES];
        if (s->minute != minute_now || minute_now < p->flushed || !slot_counted(s))
            continue;
        carried *c = &rows[n++];
        snprintf(c->key, sizeof(c->key), "%s", p->key);
        c->s = *s;
        c->unclean = p->unclean_minute == minute_now;
    }
    pthread_mutex_unlock(&d->lock);
    if (rows == NULL) {
        rc = BDY_ENOMEM;
        goto out;
    }
    /* Not a row of demand_samples: unless the next run starts within this
     * minute and lives the rest of it, the minute is missing, and a row
     * with its claims and less than a minute of time would read as more
     * demand than there was. */
    if ((rc = exec_sql(d, "BEGIN")) != 0)
        goto out;
    if (sqlite3_prepare_v2(d->db, "INSERT OR REPLACE INTO demand_meta VALUES(?, ?)", -1, &st,
                           NULL) != SQLITE_OK)
        rc = BDY_EIO;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char key[KEY_MAX + 16];
        char value[200];
        const minute_slot *s = &rows[i].s;
        snprintf(key, sizeof(key), CARRY_PREFIX "%s", rows[i].key);
        snprintf(value, sizeof(value), "%llu %u %u %u %u %.17g %u %d",
                 (unsigned long long)s->minute, s->n[0], s->n[1], s->n[2], s->n[3], s->lead_sum,
                 s->lead_n, rows[i].unclean ? 1 : 0);
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, value, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = BDY_EIO;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc == 0)
        rc = exec_sql(d, "DELETE FROM demand_meta WHERE key = '" RUNNING_MARK "'; COMMIT;");
    if (rc != 0 && !sqlite3_get_autocommit(d->db))
        exec_sql(d, "ROLLBACK");
out:
    d->stopped = rc == 0;
    pthread_mutex_unlock(&d->tick_lock);
    free(rows);
    return rc;
}

/* ---- the sizer's view ------------------------------------------------------------------- */

int bdy_demand_input(bdy_demand *d, const char *ns, const char *pool, double now,
                     bdy_pool_demand *out)
{
    memset(out, 0, sizeof(*out));
    out->prev_level = -1;
    out->warm_hit_ratio = 1;
    out->lead_time_s = d != NULL ? d->o.default_lead_s : 0;
    if (d == NULL)
        return BDY_ENOTFOUND;
    pthread_mutex_lock(&d->lock);
    pool_rec *p = pool_find(d, ns, pool, false);
    if (p == NULL) {
        pthread_mutex_unlock(&d->lock);
        return BDY_ENOTFOUND;
    }
    if (p->lead_s > 0)
        out->lead_time_s = p->lead_s;
    uint64_t minute = (uint64_t)(now / 60);
    double claims = 0;
    double misses = 0;
    double hour_claims = 0;
    double hour_misses = 0;
    for (size_t i = 0; i < BDY_DEMAND_MEMORY_MINUTES; i++) {
        const minute_slot *s = &p->slots[i];
        if (s->minute > minute || s->minute + BDY_DEMAND_MEMORY_MINUTES <= minute)
            continue;
        uint64_t age = minute - s->minute;
        hour_claims += s->n[BDY_DEMAND_CLAIM];
        hour_misses += s->n[BDY_DEMAND_MISS];
        if (age <= BDY_DEMAND_RECENT_MINUTES)
            claims += s->n[BDY_DEMAND_CLAIM];
        if (age <= BDY_DEMAND_MISS_MINUTES)
            misses += s->n[BDY_DEMAND_MISS];
    }
    out->recent_minutes = BDY_DEMAND_RECENT_MINUTES + fmod(now, 60.0) / 60.0;
    out->recent_rate = claims / out->recent_minutes;
    out->recent_misses = (unsigned)misses;
    out->warm_hit_ratio = hour_claims > 0 ? 1 - hour_misses / hour_claims : 1;
    if (p->fc != NULL && bdy_forecast_observed(p->fc) > 0) {
        double lead = out->lead_time_s;
        out->forecast_rate =
            (bdy_forecast_rate_at(p->fc, now) + bdy_forecast_rate_at(p->fc, now + lead / 2) +
             bdy_forecast_rate_at(p->fc, now + lead)) /
            3;
        out->seasonal = bdy_forecast_seasonal(p->fc);
    }
    /* Without a season yet, never below what is happening now. */
    if (!out->seasonal && out->recent_rate > out->forecast_rate)
        out->forecast_rate = out->recent_rate;
    if (p->fc != NULL)
        out->forecast_sd = bdy_forecast_rate_sd(p->fc, out->forecast_rate);
    out->prev_level = p->prev_level;
    out->overrides_gen = p->overrides_gen;
    out->prev_at = p->prev_at;
    memcpy(out->overrides, p->ov, p->nov * sizeof(p->ov[0]));
    out->noverrides = p->nov;
    pthread_mutex_unlock(&d->lock);
    return 0;
}

void bdy_demand_note_target(bdy_demand *d, const char *ns, const char *pool, unsigned target,
                            double level, double now, uint64_t overrides_gen)
{
    if (d == NULL)
        return;
    bdy_pool_demand in;
    if (bdy_demand_input(d, ns, pool, now, &in) != 0)
        return;
    pthread_mutex_lock(&d->lock);
    pool_rec *p = pool_find(d, ns, pool, false);
    if (p != NULL) {
        if (p->overrides_gen == overrides_gen) {
            p->prev_level = level;
            p->prev_at = now;
        }
        p->target = target;
    }
    pthread_mutex_unlock(&d->lock);
    const char *labels[] = {ns, pool, NULL};
    bdy_metric_set(bdy_metric_child(d->m_target, labels), target);
    bdy_metric_set(bdy_metric_child(d->m_forecast, labels), in.forecast_rate);
    bdy_metric_set(bdy_metric_child(d->m_lead, labels), in.lead_time_s);
    bdy_metric_set(bdy_metric_child(d->m_hit, labels), in.warm_hit_ratio);
}
