/* Demand history and forecasts per pool, kept in SQLite.
 *
 * Claims, misses (no warm world), cold starts, releases and world lead
 * times (creation → Ready) are counted in memory per pool and per minute;
 * recording is a mutex and a few increments, never I/O, so the claim path
 * can call it. A tick (bdy_demand_tick, every few seconds from the
 * module's own thread, or called directly with a simulated clock) writes
 * completed minutes to SQLite, feeds completed 5-minute buckets to each
 * pool's Holt–Winters forecaster (forecast.h), refits its parameters on the
 * pool's own history once a day, persists the forecaster's state, and
 * applies retention: per-minute rows for minuteRetentionHours, then one row
 * per 5 minutes for retentionDays.
 *
 * The history lives in its own file, dataDir/demand.db, not in the object
 * store's bindery.db: the store has one writer thread whose group commits
 * carry every claim, and a time series written once a minute has no reason
 * to queue behind them (or to make them queue). The two never need a common
 * transaction, and demand.db can be deleted without losing any object: the
 * forecast then starts learning again.
 *
 * A minute the daemon was up writes a row even when nothing happened, so
 * the time a daemon was down reads as missing, not as zero demand. A
 * restarted daemon loads each pool's forecaster state and continues from
 * the bucket where it stopped (the downtime in between counts as missing).
 *
 * Thread-safety: every function may be called from any thread; one mutex
 * guards the in-memory records and is never held during SQLite work or a
 * refit. The SQLite connection is used only by the ticking thread.
 */
#ifndef BINDERY_DEMAND_H
#define BINDERY_DEMAND_H

#include "bindery/config.h"
#include "bindery/error.h"
#include "bindery/metrics.h"
#include "bindery/sizing.h"

#include <stdbool.h>
#include <stdint.h>

/* Minutes of counts kept in memory per pool (also the hit-ratio window). */
#define BDY_DEMAND_MEMORY_MINUTES 60
/* Minutes behind the recent rate the sizer sees. */
#define BDY_DEMAND_RECENT_MINUTES 2
/* Minutes of misses behind the sizer's miss floor. */
#define BDY_DEMAND_MISS_MINUTES 5
/* Interval of the background tick, milliseconds. */
#define BDY_DEMAND_TICK_MS 5000

typedef enum bdy_demand_kind {
    BDY_DEMAND_CLAIM,   /* a claim arrived (served warm or not) */
    BDY_DEMAND_MISS,    /* ... and found no warm world */
    BDY_DEMAND_COLD,    /* a world was started for a waiting claim */
    BDY_DEMAND_RELEASE, /* an allocation was released */
} bdy_demand_kind;

typedef struct bdy_demand_opts {
    const char *path;            /* the SQLite file (created if missing) */
    unsigned minute_retention_h; /* per-minute rows kept, hours (>= 1) */
    unsigned retention_days;     /* 5-minute rows kept, days (>= 1) */
    double default_lead_s;       /* lead time until one is measured */
    bool weekly;                 /* forecasters get a weekly season */
    bdy_metrics *metrics;        /* borrowed, may be NULL */
} bdy_demand_opts;

/* What bdy_pool_target_warm needs about one pool at one moment. */
typedef struct bdy_pool_demand {
    double forecast_rate; /* claims per minute, mean over [now, now + lead) */
    double forecast_sd;   /* standard deviation of that rate */
    double lead_time_s;
    double recent_rate; /* claims per minute over the last BDY_DEMAND_RECENT_MINUTES */
    double recent_minutes;
    unsigned recent_misses; /* misses over the last BDY_DEMAND_MISS_MINUTES */
    unsigned allocated;     /* filled in by the caller */
    double prev_level;      /* last bdy_demand_note_target level, < 0: none */
    double prev_at;
    /* Which overrides this input carries (bumped by a reload that changes
     * them), handed back to bdy_demand_note_target with the level. */
    uint64_t overrides_gen;
    bdy_override overrides[BDY_SIZING_MAX_OVERRIDES];
    size_t noverrides;
    /* For the API and metrics. */
    double warm_hit_ratio; /* last hour; 1 without claims */
    bool seasonal;         /* Holt–Winters in use (else the moving average) */
} bdy_pool_demand;

typedef struct bdy_demand bdy_demand;

/* Opens (creating if needed) the history file. BDY_EIO / BDY_ECORRUPT with
 * the file named in eb. Free with bdy_demand_close. */
int bdy_demand_open(const bdy_demand_opts *opts, bdy_demand **out, bdy_errbuf *eb);
/* Starts the background tick thread (wall clock). */
int bdy_demand_start(bdy_demand *d, bdy_errbuf *eb);
/* A clean stop at now (seconds): keeps what the current minute has
 * counted so far (not as a row of the history: a minute with less than a
 * minute of time would read as too much demand), and says the stop was
 * clean. A run that starts within that minute adds those counts to its
 * own, and the minute is written whole; one that starts later leaves it
 * missing. A run after a stop that did not say so (kill -9) leaves its
 * first minute missing: the counts the stop lost would make it read as
 * one of too few claims. bdy_demand_close does it with the clock unless
 * it was done; the tick thread must be stopped (or never started). */
int bdy_demand_stop(bdy_demand *d, double now);
/* Stops the thread, writes what is complete and then bdy_demand_stop,
 * closes. NULL allowed. */
void bdy_demand_close(bdy_demand *d);

/* Registers the configured pools and their overrides (start-up and
 * reload). Pools no longer configured keep their history. BDY_EINVAL with
 * the pool named in eb for an override that does not parse. */
int bdy_demand_set_pools(bdy_demand *d, const bdy_config_pools *pools, bdy_errbuf *eb);

/* Counts one event at time now (Unix seconds). Never blocks on I/O. */
void bdy_demand_record(bdy_demand *d, const char *ns, const char *pool, bdy_demand_kind kind,
                       double now);
/* Records a world's lead time (creation → Ready). */
void bdy_demand_lead_time(bdy_demand *d, const char *ns, const char *pool, double seconds,
                          double now);

/* Writes, feeds, fits, persists and prunes up to now (see above). The
 * background thread calls it; tests call it with their own clock. */
int bdy_demand_tick(bdy_demand *d, double now);

/* The sizer's view of a pool at now. BDY_ENOTFOUND for an unknown pool
 * (then *out holds a neutral input: no forecast, default lead time). */
int bdy_demand_input(bdy_demand *d, const char *ns, const char *pool, double now,
                     bdy_pool_demand *out);
/* Remembers the target just applied (its unrounded level, for gradual
 * scale-down) and exports it as a metric. overrides_gen: that of the input
 * the level came from. A level computed under overrides that a reload has
 * changed since is not kept: the reload's fresh start would be lost, and
 * the old overrides' floor would decay for ten minutes. */
void bdy_demand_note_target(bdy_demand *d, const char *ns, const char *pool, unsigned target,
                            double level, double now, uint64_t overrides_gen);

#endif
