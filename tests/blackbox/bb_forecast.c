/* Black-box tests of forecast sizing: a live pool's target rises ahead of a
 * scheduled override (early enough for its worlds to be Ready when the
 * window opens) and follows a replayed burst of claims; /v1/pools and
 * /metrics show the sizing. Worlds run on the bench runtime. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <json-c/json.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static const char *const JSON_HDR[] = {"Content-Type: application/json", NULL};

static double now_s(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static const char *manifest = "apiVersion: bindery.dev/v1alpha1\nkind: ModuleManifest\n"
                              "metadata: {name: arena, namespace: default}\n"
                              "spec:\n"
                              "  ports: [{name: game, containerPort: 7777, protocol: TCP}]\n"
                              "  local: {command: /bin/true}\n";

/* status.<field> of pool name as a number (-1 when unreadable). */
static double pool_status(bb_server *s, const char *name, const char *field)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/pools/default/%s", name);
    bb_response r = bb_request(s, "GET", path, NULL, NULL);
    double v = -1;
    json_object *j = r.status == 200 ? json_tokener_parse(r.body) : NULL;
    json_object *st = NULL;
    json_object *f = NULL;
    if (j != NULL && json_object_object_get_ex(j, "status", &st) &&
        json_object_object_get_ex(st, field, &f))
        v = json_object_get_double(f);
    json_object_put(j);
    bb_response_free(&r);
    return v;
}

/* bb_init with cfg and the manifest "arena", then bb_start. */
static void start_with(bb_server *s, const char *cfg)
{
    bb_init(s, cfg);
    bb_write(s, "manifests/arena.yaml", manifest);
    assert_true(bb_start(s, NULL));
}

/* Posts n claims with body and hdrs; how many were answered status. */
static unsigned claims_answered(bb_server *s, int n, const char *body, const char *const *hdrs,
                                long status)
{
    unsigned got = 0;
    for (int i = 0; i < n; i++) {
        bb_response r = bb_request(s, "POST", "/v1/allocations", body, hdrs);
        got += r.status == status;
        bb_response_free(&r);
    }
    return got;
}

static void utc_hms(double t, char out[16])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    snprintf(out, 16, "%02d:%02d:%02d", tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void test_target_rises_ahead_of_override(void **state)
{
    (void)state;
    bb_server s;
    /* Ready after 1 s; 60 worlds at 2 per second take 30 s more: the pool
     * must start filling about 31 s before the window opens. */
    double open = now_s() + 45;
    char from[16];
    char to[16];
    utc_hms(open, from);
    utc_hms(open + 3600, to);
    char cfg[1024];
    snprintf(cfg, sizeof(cfg),
             "manifests: [manifests]\n"
             "runtime: {kind: bench, benchReadyDelayMs: 1000}\n"
             "demand: {leadTimeSeconds: 1}\n"
             "pools:\n"
             "  - name: arena\n    manifest: arena\n    minWarm: 1\n    maxWarm: 100\n"
             "    creationRate: 2\n"
             "    overrides: [{from: \"%s\", to: \"%s\", minWarm: 60}]\n",
             from, to);
    start_with(&s, cfg);
    assert_true(pool_status(&s, "arena", "targetWarm") < 60);
    double rose = 0;
    double warm_at_open = -1;
    for (int i = 0; i < 240 && now_s() < open + 20; i++) {
        double t = now_s();
        double target = pool_status(&s, "arena", "targetWarm");
        if (rose == 0 && target >= 60)
            rose = t;
        if (warm_at_open < 0 && t >= open + 1)
            warm_at_open = pool_status(&s, "arena", "warm");
        sleep_ms(250);
    }
    assert_true(rose > 0);
    assert_true(rose < open);        /* ahead of the window, not at it */
    assert_true(warm_at_open >= 50); /* and the worlds were (nearly all) there */
    bb_cleanup(&s);
}

static void test_target_follows_a_burst(void **state)
{
    (void)state;
    bb_server s;
    start_with(&s, "manifests: [manifests]\n"
                   "runtime: {kind: bench, benchReadyDelayMs: 10000}\n"
                   "demand: {leadTimeSeconds: 10}\n"
                   "pools:\n"
                   "  - name: burst\n    manifest: arena\n    minWarm: 1\n    maxWarm: 300\n"
                   "    creationRate: 100\n");
    double before = pool_status(&s, "burst", "targetWarm");
    assert_true(before >= 1 && before <= 2);
    /* A replayed burst: 120 claims at once, far beyond the one warm world. */
    unsigned created =
        claims_answered(&s, 120, "{\"pool\":\"burst\",\"claimant\":\"bb\"}", JSON_HDR, 201);
    assert_true(created < 120);
    double target = pool_status(&s, "burst", "targetWarm");
    assert_true(target >= 8); /* about 40 claims/min over a 10 s lead time */
    assert_true(pool_status(&s, "burst", "forecastPerMinute") >= 20);
    double hit = pool_status(&s, "burst", "warmHitRatio");
    assert_true(hit >= 0 && hit < 0.5);
    /* The pool follows: worlds are created up to the target. */
    double warm = 0;
    for (int i = 0; i < 120 && warm < 8; i++) {
        sleep_ms(250);
        warm = pool_status(&s, "burst", "warm") + pool_status(&s, "burst", "starting");
    }
    assert_true(warm >= 8);
    bb_response m = bb_request(&s, "GET", "/metrics", NULL, NULL);
    assert_int_equal(m.status, 200);
    assert_non_null(
        strstr(m.body, "bindery_pool_target_warm{namespace=\"default\",pool=\"burst\"}"));
    assert_non_null(
        strstr(m.body, "bindery_pool_forecast_per_minute{namespace=\"default\",pool=\"burst\"}"));
    bb_response_free(&m);
    bb_cleanup(&s);
}

/* Retries of one claim with its Idempotency-Key (503 PoolExhausted) are
 * one claim of demand: the forecast is not sized for the retries. Claims
 * without a key cannot be told apart, and each counts. */
static void test_keyed_retries_count_once(void **state)
{
    (void)state;
    bb_server s;
    start_with(&s, "manifests: [manifests]\n"
                   "runtime: {kind: bench, benchReadyDelayMs: 30000}\n"
                   "pools:\n"
                   "  - name: keyed\n    manifest: arena\n    minWarm: 0\n    maxWarm: 1\n"
                   "    maxWorlds: 1\n    creationRate: 100\n");
    const char *const keyed[] = {"Content-Type: application/json", "Idempotency-Key: match-1",
                                 NULL};
    const char *body = "{\"pool\":\"keyed\"}";
    /* Its worlds take 30 s to be Ready: every claim is refused. */
    assert_int_equal(claims_answered(&s, 12, body, keyed, 503), 12);
    double one = pool_status(&s, "keyed", "forecastPerMinute");
    claims_answered(&s, 12, body, JSON_HDR, 503);
    double thirteen = pool_status(&s, "keyed", "forecastPerMinute");
    printf("# forecast after one keyed claim retried: %.2f/min, after 12 more unkeyed: %.2f/min\n",
           one, thirteen);
    assert_true(one > 0);
    assert_true(thirteen > 6 * one); /* 13 claims to 1, give or take the clock */
    bb_cleanup(&s);
}

/* warmHitRatio is over the last hour, a restart or not: the minutes an
 * earlier run wrote to demand.db count (written here as a run writes them:
 * 20 claims, 10 of them missed, in two minutes before the start). It was
 * 1 after every restart. */
static void test_warm_hit_ratio_survives_a_restart(void **state)
{
    (void)state;
    bb_server s;
    start_with(&s, "manifests: [manifests]\n"
                   "runtime: {kind: bench}\n"
                   "pools:\n"
                   "  - name: hits\n    manifest: arena\n    minWarm: 1\n    maxWarm: 1\n");
    assert_true(pool_status(&s, "hits", "warmHitRatio") == 1);
    bb_signal(&s, SIGTERM);
    assert_true(bb_wait_exit(&s, 15000));
    char path[300];
    snprintf(path, sizeof(path), "%s/demand.db", s.data);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    long long minute = (long long)(now_s() / 60);
    for (long long m = minute - 3; m < minute - 1; m++) {
        char sql[200];
        snprintf(sql, sizeof(sql),
                 "INSERT OR REPLACE INTO demand_samples VALUES('default/hits', %lld, 60, 1, 10, 5,"
                 " 0, 0, 0, 0)",
                 m * 60);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    }
    sqlite3_close(db);
    assert_true(bb_start(&s, NULL));
    double ratio = -1;
    for (int i = 0; i < 100 && (ratio = pool_status(&s, "hits", "warmHitRatio")) == 1; i++)
        sleep_ms(100);
    assert_true(ratio > 0.49 && ratio < 0.51);
    /* The gauge follows at the pool controller's next pass. */
    bool gauge = false;
    for (int i = 0; i < 100 && !gauge; i++) {
        bb_response m = bb_request(&s, "GET", "/metrics", NULL, NULL);
        gauge =
            m.body != NULL &&
            strstr(m.body,
                   "bindery_pool_warm_hit_ratio{namespace=\"default\",pool=\"hits\"} 0.5") != NULL;
        bb_response_free(&m);
        if (!gauge)
            sleep_ms(100);
    }
    assert_true(gauge);
    bb_cleanup(&s);
}

static void test_bad_override_is_refused(void **state)
{
    (void)state;
    bb_server s;
    bb_init(&s, "pools:\n  - name: a\n    manifest: arena\n"
                "    overrides: [{from: \"25:00\", to: \"19:00\", minWarm: 5}]\n");
    char *out = NULL;
    const char *args[] = {"check-config", s.config, NULL};
    assert_int_equal(bb_run(&s, args, NULL, &out), 1);
    assert_non_null(strstr(out, "pools[0].overrides[0].from"));
    free(out);
    bb_cleanup(&s);
}

int main(void)
{
    /* BB_TEST_FILTER=test_name (wildcards allowed) runs only those tests. */
    if (getenv("BB_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("BB_TEST_FILTER"));
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_target_rises_ahead_of_override, bb_teardown),
        cmocka_unit_test_teardown(test_target_follows_a_burst, bb_teardown),
        cmocka_unit_test_teardown(test_keyed_retries_count_once, bb_teardown),
        cmocka_unit_test_teardown(test_warm_hit_ratio_survives_a_restart, bb_teardown),
        cmocka_unit_test_teardown(test_bad_override_is_refused, bb_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
