/* The demand module: counting, per-minute rows in SQLite, forecasts fed per
 * bucket, the sizer's input, overrides from config, and a restart that
 * continues the forecast where it stopped. Time is simulated throughout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bindery/demand.h"
#include "bindery/pool.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T0 1736121600.0 /* Monday 2025-01-06 00:00 UTC */

typedef struct fixture {
    char dir[64];
    char path[128];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/bdy-demand-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/demand.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char p[160];
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", f->path, suffix[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static bdy_config_override ovs[] = {{"17:45", "19:00", 200}};

/* The pool "arena" of default with one daily override. */
static bdy_config_pool arena_pool(void)
{
    bdy_config_pool pool;
    memset(&pool, 0, sizeof(pool));
    pool.name = "arena";
    pool.ns = "default";
    pool.overrides.items = ovs;
    pool.overrides.count = 1;
    return pool;
}

static bdy_demand *open_demand(fixture *f)
{
    bdy_demand_opts o = {.path = f->path,
                         .minute_retention_h = 2,
                         .retention_days = 35,
                         .default_lead_s = 60,
                         .weekly = false,
                         .metrics = NULL};
    bdy_demand *d = NULL;
    bdy_errbuf eb;
    assert_int_equal(bdy_demand_open(&o, &d, &eb), 0);
    bdy_config_pool pool = arena_pool();
    bdy_config_pools pools = {&pool, 1};
    assert_int_equal(bdy_demand_set_pools(d, &pools, &eb), 0);
    return d;
}

/* Claims at `per_minute` (a daily cycle when cycle is set) from minute a to b. */
static void drive(bdy_demand *d, double a, double b, bool cycle)
{
    for (double m = a; m < b; m++) {
        double t = T0 + m * 60;
        double hour = fmod(m / 60.0, 24.0);
        unsigned n = cycle ? (unsigned)(10 + 8 * sin(2 * M_PI * hour / 24.0)) : 5;
        for (unsigned i = 0; i < n; i++)
            bdy_demand_record(d, "default", "arena", BDY_DEMAND_CLAIM, t + i);
        if ((unsigned)m % 60 == 0) {
            bdy_demand_record(d, "default", "arena", BDY_DEMAND_MISS, t + 1);
            bdy_demand_lead_time(d, "default", "arena", 90, t);
        }
        if ((unsigned)m % 5 == 4)
            assert_int_equal(bdy_demand_tick(d, t + 60), 0);
    }
}

static long long count_rows(fixture *f, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long long n = -1;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void test_counts_and_input(void **state)
{
    fixture *f = *state;
    bdy_demand *d = open_demand(f);
    bdy_pool_demand in;
    assert_int_equal(bdy_demand_input(d, "default", "other", T0, &in), BDY_ENOTFOUND);
    drive(d, 0, 30, false);
    assert_int_equal(bdy_demand_input(d, "default", "arena", T0 + 30 * 60, &in), 0);
    assert_true(fabs(in.recent_rate - 5) < 0.5);
    assert_true(in.forecast_rate >= 4.5 && in.forecast_rate <= 5.5);
    assert_true(fabs(in.lead_time_s - 90) < 1e-9);
    assert_int_equal(in.noverrides, 1);
    assert_true(in.overrides[0].daily && in.overrides[0].min_warm == 200);
    assert_true(in.warm_hit_ratio < 1 && in.warm_hit_ratio > 0.9);
    /* Ten quiet minutes later the recent rate is gone, but the forecast
     * still knows the ~5 claims a minute it was fed. */
    bdy_pool_demand later;
    assert_int_equal(bdy_demand_input(d, "default", "arena", T0 + 40 * 60, &later), 0);
    assert_true(later.recent_rate < 0.5);
    assert_true(later.forecast_rate >= 4.5 && later.forecast_rate <= 5.5);
    /* Every minute written, one row each, zeros included. */
    assert_int_equal(count_rows(f, "SELECT COUNT(*) FROM demand_samples"), 30);
    assert_int_equal(count_rows(f, "SELECT SUM(claims) FROM demand_samples"), 150);
    /* The sizer's answer through the single entry point. */
    bdy_config_pool spec;
    memset(&spec, 0, sizeof(spec));
    spec.min_warm = 1;
    spec.max_warm = 500;
    spec.max_worlds = 1000;
    spec.service_level = 0.99;
    spec.creation_rate = 20;
    unsigned t = bdy_pool_target_warm(&spec, &in, T0 + 30 * 60, NULL);
    print_message("target %u (forecast %g/min, sd %g)\n", t, in.forecast_rate, in.forecast_sd);
    assert_true(t >= 10 && t <= 20); /* about 7.5 claims per 90 s lead time */
    /* At 17:44 the override (ready by 17:45) lifts it to 200. */
    assert_int_equal(bdy_demand_input(d, "default", "arena", T0 + 17 * 3600 + 44 * 60, &in), 0);
    assert_int_equal(bdy_pool_target_warm(&spec, &in, T0 + 17 * 3600 + 44 * 60, NULL), 200);
    bdy_demand_close(d);
}

/* A reload that leaves a pool's overrides alone keeps its gradual
 * scale-down; one that changes them starts afresh. A pool the config no
 * longer names records nothing: its time away is missing history. */
static void test_reload_and_removed_pools(void **state)
{
    fixture *f = *state;
    bdy_demand *d = open_demand(f);
    drive(d, 0, 10, false);
    bdy_pool_demand in;
    assert_int_equal(bdy_demand_input(d, "default", "arena", T0 + 10 * 60, &in), 0);
    bdy_demand_note_target(d, "default", "arena", 50, 50.0, T0 + 10 * 60, in.overrides_gen);
    bdy_config_pool pool = arena_pool();
    bdy_config_pools pools = {&pool, 1};
    bdy_errbuf eb;
    assert_int_equal(bdy_demand_set_pools(d, &pools, &eb), 0); /* the same again */
    assert_int_equal(bdy_demand_input(d, "default", "arena", T0 + 10 * 60, &in), 0);
    assert_true(in.prev_level == 50.0);
    /* Bounds changed: the scale-down goes on (a raised maxWarm does not
     * drop the target at once), and a lowered bound clamps it at once. */
    pool.max_warm = 500;
    assert_int_equal(bdy_demand_set_pools(d, &pools, &eb), 0);
    assert_int_equal(bdy_demand_input(d, "default", "arena", T0 + 10 * 60, &in), 0);
    assert_true(in.prev_level == 50.0);
    pool.max_warm = 20;
    pool.max_worlds = 1000;
    pool.service_level = 0.99;
    assert_int_equal(bdy_demand_set_pools(d, &pools, &eb), 0);
    assert_int_equal(bdy_demand_input(d, "default", "arena", T0 + 10 * 60 + 1, &in), 0);
    assert_true(in.prev_level == 50.0);
    assert_int_equal(bdy_pool_target_warm(&pool, &in, T0 + 10 * 60 + 1, NULL), 20);
    /* Overrides changed: what an override held up goes at once. */
    bdy_config_override fewer[] = {{"20:00", "21:00", 100}};
    pool.overrides.items = fewer;
    bdy_pool_demand before;
    assert_int_equal(bdy_demand_input(d, "default", "arena", T0 + 10 * 60, &before), 0);
    assert_int_equal(bdy_demand_set_pools(d, &pools, &eb), 0);
    assert_int_equal(bdy_demand_input(d, "default", "arena", T0 + 10 * 60, &in), 0);
    assert_true(in.prev_level < 0);
    /* A pool pass that read its input before that reload and notes its
     * level after it: the level came from the old overrides, and is not
     * kept (the fresh start stays); the target is. */
    bdy_demand_note_target(d, "default", "arena", 100, 100.0, T0 + 10 * 60, before.overrides_gen);
    assert_int_equal(bdy_demand_input(d, "default", "arena", T0 + 10 * 60, &in), 0);
    assert_true(in.prev_level < 0);
    bdy_demand_note_target(d, "default", "arena", 40, 40.0, T0 + 10 * 60, in.overrides_gen);
    assert_int_equal(bdy_demand_input(d, "default", "arena", T0 + 10 * 60, &in), 0);
    assert_true(in.prev_level == 40.0);

    long long rows = count_rows(f, "SELECT COUNT(*) FROM demand_samples");
    bdy_config_pools none = {NULL, 0};
    /* A claim in the minute the reload removes the pool in, which it lived
     * through: that minute is written as lived, none after it. */
    bdy_demand_record(d, "default", "arena", BDY_DEMAND_CLAIM, T0 + 10 * 60 + 31);
    assert_int_equal(bdy_demand_set_pools(d, &none, &eb), 0);
    for (int m = 10; m < 70; m++)
        assert_int_equal(bdy_demand_tick(d, T0 + (m + 1) * 60), 0);
    rows++;
    assert_int_equal(count_rows(f, "SELECT COUNT(*) FROM demand_samples"), rows);
    char sql[200];
    snprintf(sql, sizeof(sql),
             "SELECT COUNT(*) FROM demand_samples WHERE start = %.0f AND minutes = 1 AND "
             "claims = 1",
             T0 + 10 * 60);
    assert_int_equal(count_rows(f, sql), 1);
    /* Its worlds' releases are still counted, in minutes that are no time
     * lived: its forecast, should it come back, reads them as missing, not
     * as minutes without claims. */
    bdy_demand_record(d, "default", "arena", BDY_DEMAND_RELEASE, T0 + 70 * 60 + 5);
    assert_int_equal(bdy_demand_tick(d, T0 + 72 * 60), 0);
    assert_int_equal(count_rows(f, "SELECT COUNT(*) FROM demand_samples"), rows + 1);
    assert_int_equal(count_rows(f, "SELECT COUNT(*) FROM demand_samples WHERE releases = 1 "
                                   "AND minutes = 0"),
                     1);
    bdy_demand_close(d);
}

/* Quiet minutes the daemon lived through are zero demand; minutes it did
 * not see (the machine suspended for hours, the clock stepped forward) are
 * missing, not a run of zeros that would drag the forecast down. */
static void test_suspended_time_is_missing(void **state)
{
    fixture *f = *state;
    bdy_demand *d = open_demand(f);
    drive(d, 0, 10, false); /* minutes 0..9, five claims each */
    for (double t = T0 + 600; t < T0 + 900; t += 5)
        assert_int_equal(bdy_demand_tick(d, t), 0); /* minutes 10..14, quiet */
    assert_int_equal(count_rows(f, "SELECT COUNT(*) FROM demand_samples"), 14);
    assert_int_equal(count_rows(f, "SELECT COUNT(*) FROM demand_samples WHERE claims = 0"), 4);
    /* Three hours later, the next tick, and one a minute on: the minute
     * between them is written, none of the three hours. */
    assert_int_equal(bdy_demand_tick(d, T0 + 900 + 3 * 3600), 0);
    assert_int_equal(bdy_demand_tick(d, T0 + 965 + 3 * 3600), 0);
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM demand_samples WHERE start > %.0f", T0 + 900);
    assert_int_equal(count_rows(f, sql), 1);
    /* The minute the suspend began in (14) was lived, and is written too
     * (folded into 5-minute rows by now): 0..14, and the minute after the
     * three hours. */
    assert_int_equal(count_rows(f, "SELECT SUM(minutes) FROM demand_samples"), 16);
    assert_int_equal(count_rows(f, "SELECT SUM(claims) FROM demand_samples"), 50);
    bdy_demand_close(d);
}

/* Minutes whose write failed (another writer held the file past the busy
 * timeout) are written by the next tick, not lost. */
static void test_failed_write_is_written_later(void **state)
{
    fixture *f = *state;
    bdy_demand *d = open_demand(f);
    assert_int_equal(bdy_demand_tick(d, T0 + 10), 0); /* the first tick starts the count */
    for (int i = 0; i < 7; i++)
        bdy_demand_record(d, "default", "arena", BDY_DEMAND_CLAIM, T0 + 20 + i);
    sqlite3 *other = NULL;
    assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(bdy_demand_tick(d, T0 + 60), BDY_EIO);
    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    assert_int_equal(bdy_demand_tick(d, T0 + 120), 0);
    assert_int_equal(count_rows(f, "SELECT SUM(claims) FROM demand_samples"), 7);
    assert_int_equal(count_rows(f, "SELECT COUNT(*) FROM demand_samples"), 2);
    bdy_demand_close(d);
}

/* The clock goes back a day: the forecaster, fed up to the old time, is
 * fitted again and fed from the new time on, instead of taking nothing
 * for a day. */
/* Claims at per_minute from minute a to b after base, with a tick every
 * five minutes. */
static void drive_at(bdy_demand *d, double base, int a, int b, int per_minute)
{
    for (int m = a; m < b; m++) {
        double t = base + m * 60;
        for (int i = 0; i < per_minute; i++)
            bdy_demand_record(d, "default", "arena", BDY_DEMAND_CLAIM, t + i);
        if (m % 5 == 4)
            assert_int_equal(bdy_demand_tick(d, t + 60), 0);
    }
}

static void test_clock_back_keeps_forecasting(void **state)
{
    fixture *f = *state;
    bdy_demand *d = open_demand(f);
    drive_at(d, T0, 0, 30, 20);
    bdy_pool_demand in;
    assert_int_equal(bdy_demand_input(d, "default", "arena", T0 + 30 * 60, &in), 0);
    assert_true(in.forecast_rate >= 18 && in.forecast_rate <= 22);
    /* A day back, and the demand falls to 5 a minute. */
    double back = T0 - 86400;
    drive_at(d, back, 0, 30, 5);
    assert_int_equal(bdy_demand_input(d, "default", "arena", back + 30 * 60, &in), 0);
    printf("# forecast after the clock went back: %.1f a minute\n", in.forecast_rate);
    assert_true(in.forecast_rate >= 4 && in.forecast_rate <= 8);
    bdy_demand_close(d);
}

static void test_restart_continues_forecast(void **state)
{
    fixture *f = *state;
    bdy_demand *d = open_demand(f);
    /* Five days of a daily cycle: the forecaster fits and goes seasonal. */
    drive(d, 0, 5 * 1440, true);
    bdy_pool_demand before;
    double when = T0 + 5 * 86400.0;
    assert_int_equal(bdy_demand_input(d, "default", "arena", when, &before), 0);
    assert_true(before.seasonal);
    bdy_demand_close(d);
    /* Old minutes were folded into 5-minute rows by retention. */
    assert_true(count_rows(f, "SELECT COUNT(*) FROM demand_samples WHERE seconds = 300") > 0);

    /* A new daemon: the state is loaded on the first tick and continues. */
    d = open_demand(f);
    assert_int_equal(bdy_demand_tick(d, when), 0);
    bdy_pool_demand after;
    assert_int_equal(bdy_demand_input(d, "default", "arena", when, &after), 0);
    assert_true(after.seasonal);
    assert_true(fabs(after.forecast_rate - before.forecast_rate) < 1e-6);
    assert_true(fabs(after.lead_time_s - 90) < 1e-9);
    bdy_demand_close(d);
    /* Down for an hour, then up again: the hour is missing, not zero, so
     * the forecast still follows the daily cycle. */
    d = open_demand(f);
    assert_int_equal(bdy_demand_tick(d, when + 3600), 0);
    assert_int_equal(bdy_demand_input(d, "default", "arena", when + 3600, &after), 0);
    double want = 10 + 8 * sin(2 * M_PI * 1.0 / 24.0);
    assert_true(fabs(after.forecast_rate - want) < 0.25 * want);
    bdy_demand_close(d);
}

/* Ten minutes of claims, a pool pass noting level at their end, the next
 * tick; then d is closed. */
static void note_level_and_close(bdy_demand *d, double level)
{
    drive(d, 0, 10, false);
    bdy_pool_demand in;
    assert_int_equal(bdy_demand_input(d, "default", "arena", T0 + 600, &in), 0);
    bdy_demand_note_target(d, "default", "arena", (unsigned)level, level, T0 + 600,
                           in.overrides_gen);
    assert_int_equal(bdy_demand_tick(d, T0 + 660), 0);
    bdy_demand_close(d);
}

/* A restart goes on scaling down from the level it had: the target does
 * not drop to the forecast's at once, to delete the surplus after the
 * cooldown and make it again on the next misses. */
static void test_restart_keeps_scale_down(void **state)
{
    fixture *f = *state;
    note_level_and_close(open_demand(f), 80.0);
    bdy_pool_demand in;

    bdy_demand *d = open_demand(f);
    assert_int_equal(bdy_demand_tick(d, T0 + 720), 0);
    assert_int_equal(bdy_demand_input(d, "default", "arena", T0 + 720, &in), 0);
    assert_true(in.prev_level == 80.0);
    assert_true(in.prev_at == T0 + 600);
    /* A pass of the new run that notes a higher level keeps its own. */
    bdy_demand_note_target(d, "default", "arena", 120, 120.0, T0 + 780, in.overrides_gen);
    assert_int_equal(bdy_demand_tick(d, T0 + 840), 0);
    bdy_demand_close(d);
    d = open_demand(f);
    assert_int_equal(bdy_demand_input(d, "default", "arena", T0 + 850, &in), 0);
    bdy_demand_note_target(d, "default", "arena", 150, 150.0, T0 + 850, in.overrides_gen);
    assert_int_equal(bdy_demand_tick(d, T0 + 900), 0);
    assert_int_equal(bdy_demand_input(d, "default", "arena", T0 + 900, &in), 0);
    assert_true(in.prev_level == 150.0);
    bdy_demand_close(d);
    /* Restarted with other overrides: the level they held up is not
     * restored, as a reload that changes them ends the scale-down. */
    d = open_demand(f);
    bdy_config_pool pool = arena_pool();
    bdy_config_override other[] = {{"20:00", "21:00", 100}};
    pool.overrides.items = other;
    bdy_config_pools pools = {&pool, 1};
    bdy_errbuf eb;
    assert_int_equal(bdy_demand_set_pools(d, &pools, &eb), 0);
    assert_int_equal(bdy_demand_tick(d, T0 + 960), 0);
    assert_int_equal(bdy_demand_input(d, "default", "arena", T0 + 960, &in), 0);
    assert_true(in.prev_level < 0);
    bdy_demand_close(d);
}

/* A history file from before the level was kept opens, and keeps it from
 * then on. */
static void test_file_without_levels(void **state)
{
    fixture *f = *state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE demand_state(pool TEXT PRIMARY KEY, state TEXT NOT "
                                  "NULL, lead_s REAL NOT NULL, last_fit REAL NOT NULL) WITHOUT "
                                  "ROWID;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    note_level_and_close(open_demand(f), 70.0);
    assert_int_equal(count_rows(f, "SELECT COUNT(*) FROM demand_state WHERE prev_level = 70"), 1);
}

static void test_bad_file_and_overrides(void **state)
{
    fixture *f = *state;
    FILE *fp = fopen(f->path, "w");
    fputs("this is not a database, but it is long enough to look like one......................"
          "................................................................................",
          fp);
    fclose(fp);
    bdy_demand_opts o = {.path = f->path, .default_lead_s = 30};
    bdy_demand *d = NULL;
    bdy_errbuf eb;
    assert_int_not_equal(bdy_demand_open(&o, &d, &eb), 0);
    assert_null(d);
    assert_non_null(strstr(eb.message, f->path));
    unlink(f->path);
    assert_int_equal(bdy_demand_open(&o, &d, &eb), 0);
    bdy_config_override bad[] = {{"17:45", "2025-01-06T19:00:00Z", 5}};
    bdy_config_pool pool;
    memset(&pool, 0, sizeof(pool));
    pool.name = "arena";
    pool.ns = "default";
    pool.overrides.items = bad;
    pool.overrides.count = 1;
    bdy_config_pools pools = {&pool, 1};
    assert_int_equal(bdy_demand_set_pools(d, &pools, &eb), BDY_EINVAL);
    assert_non_null(strstr(eb.message, "default/arena"));
    bdy_demand_close(d);
    bdy_demand_close(NULL);
}

/* A row of minute m (after T0) of the pool: its minutes and claims, or
 * -1 when there is none. */
static void minute_row(fixture *f, int m, long long *minutes, long long *claims)
{
    char sql[200];
    snprintf(sql, sizeof(sql),
             "SELECT COUNT(*) FROM demand_samples WHERE pool = 'default/arena' AND start = %.0f",
             T0 + m * 60);
    *minutes = *claims = -1;
    if (count_rows(f, sql) == 0)
        return;
    snprintf(sql, sizeof(sql),
             "SELECT minutes FROM demand_samples WHERE pool = 'default/arena' AND start = %.0f",
             T0 + m * 60);
    *minutes = count_rows(f, sql);
    snprintf(sql, sizeof(sql),
             "SELECT claims FROM demand_samples WHERE pool = 'default/arena' AND start = %.0f",
             T0 + m * 60);
    *claims = count_rows(f, sql);
}

/* Minute m (after T0) of the pool has a row of minutes and claims, or
 * none (-1, -1). */
static void expect_minute(fixture *f, int m, long long minutes, long long claims)
{
    long long have_minutes = 0;
    long long have_claims = 0;
    minute_row(f, m, &have_minutes, &have_claims);
    if (have_minutes != minutes || have_claims != claims)
        fail_msg("minute %d: %lld minutes, %lld claims; wanted %lld, %lld", m, have_minutes,
                 have_claims, minutes, claims);
}

/* What a run killed leaves in the file: its mark of running. */
static void leave_running_mark(fixture *f)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "INSERT OR REPLACE INTO demand_meta VALUES('running', '1')",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
}

/* A clean stop keeps the claims of the minute it is in, and the run that
 * starts within that minute adds them to its own: the minute was stored
 * as lived with none of the first run's claims. A run that starts later
 * leaves it missing. After a stop that did not say so (kill -9), the next
 * run's first minute is missing, not short; so is it when that run is
 * stopped cleanly within it and the next one starts within it too. */
static void test_stop_keeps_its_minute(void **state)
{
    fixture *f = *state;
    bdy_demand *d = open_demand(f);
    assert_int_equal(bdy_demand_tick(d, T0 + 5), 0);
    for (int i = 0; i < 5; i++)
        bdy_demand_record(d, "default", "arena", BDY_DEMAND_CLAIM, T0 + 10 + i);
    assert_int_equal(bdy_demand_stop(d, T0 + 30), 0);
    bdy_demand_close(d);
    expect_minute(f, 0, -1, -1); /* no row: less than a minute lived */

    /* Started again within the minute: its claims add up, and the minute
     * was lived. */
    d = open_demand(f);
    for (int i = 0; i < 3; i++)
        bdy_demand_record(d, "default", "arena", BDY_DEMAND_CLAIM, T0 + 40 + i);
    assert_int_equal(bdy_demand_tick(d, T0 + 45), 0);
    bdy_demand_record(d, "default", "arena", BDY_DEMAND_CLAIM, T0 + 70);
    assert_int_equal(bdy_demand_tick(d, T0 + 125), 0);
    expect_minute(f, 0, 1, 8);
    expect_minute(f, 1, 1, 1);
    /* Stopped in minute 2, started again in minute 3: minute 2 is missing,
     * and what it carried goes nowhere. */
    bdy_demand_record(d, "default", "arena", BDY_DEMAND_CLAIM, T0 + 130);
    assert_int_equal(bdy_demand_stop(d, T0 + 140), 0);
    bdy_demand_close(d);
    d = open_demand(f);
    bdy_demand_record(d, "default", "arena", BDY_DEMAND_CLAIM, T0 + 190);
    assert_int_equal(bdy_demand_tick(d, T0 + 245), 0);
    expect_minute(f, 2, -1, -1);
    expect_minute(f, 3, 1, 1);

    /* A run that is gone without a stop: what kill -9 leaves is its mark
     * of running, and nothing of the minute it was in. */
    bdy_demand_close(d);
    leave_running_mark(f);
    d = open_demand(f);
    bdy_demand_record(d, "default", "arena", BDY_DEMAND_CLAIM, T0 + 280);
    assert_int_equal(bdy_demand_tick(d, T0 + 305), 0);
    bdy_demand_record(d, "default", "arena", BDY_DEMAND_CLAIM, T0 + 310);
    assert_int_equal(bdy_demand_tick(d, T0 + 365), 0);
    expect_minute(f, 4, -1, -1); /* its start: part of it was the lost run's */
    expect_minute(f, 5, 1, 1);
    bdy_demand_close(d);

    /* Gone again, and the next run stopped cleanly within its first
     * minute: the one after, started within that minute too, still
     * leaves it missing. */
    leave_running_mark(f);
    d = open_demand(f);
    bdy_demand_record(d, "default", "arena", BDY_DEMAND_CLAIM, T0 + 430);
    assert_int_equal(bdy_demand_stop(d, T0 + 440), 0);
    bdy_demand_close(d);
    d = open_demand(f);
    bdy_demand_record(d, "default", "arena", BDY_DEMAND_CLAIM, T0 + 450);
    assert_int_equal(bdy_demand_tick(d, T0 + 485), 0);
    bdy_demand_record(d, "default", "arena", BDY_DEMAND_CLAIM, T0 + 490);
    assert_int_equal(bdy_demand_tick(d, T0 + 545), 0);
    expect_minute(f, 7, -1, -1);
    expect_minute(f, 8, 1, 1);
    bdy_demand_close(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_counts_and_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_and_removed_pools, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_write_is_written_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_suspended_time_is_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clock_back_keeps_forecasting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_continues_forecast, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_keeps_scale_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_without_levels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_file_and_overrides, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_keeps_its_minute, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
