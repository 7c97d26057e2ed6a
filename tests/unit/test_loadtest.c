/* Unit tests for the load tool's library (bench/loadtest): the latency
 * histogram and its percentiles, error tallies, the Prometheus text reader
 * (samples, escapes, histogram quantiles, bad input), the command line
 * (every kind of bad flag), selector flags → JSON, and the report's JSON and
 * exit codes. */
#include "loadtest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void test_hist_percentiles(void **state)
{
    (void)state;
    lt_hist *h = malloc(sizeof(*h));
    assert_non_null(h);
    lt_hist_init(h);
    assert_int_equal(lt_hist_quantile(h, 0.5), 0);
    /* 1..100000 microseconds, shuffled order does not matter. */
    for (uint64_t i = 100000; i >= 1; i--)
        lt_hist_add(h, i * 1000);
    assert_int_equal(h->n, 100000);
    assert_int_equal(h->min_ns, 1000);
    assert_int_equal(h->max_ns, 100000000);
    static const double qs[] = {0.5, 0.9, 0.99, 0.999};
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        double want = qs[i] * 100000 * 1000;
        double got = (double)lt_hist_quantile(h, qs[i]);
        if (got < want * 0.99 || got > want * 1.01)
            fail_msg("q%.3f: want ~%.0f got %.0f", qs[i], want, got);
    }
    assert_int_equal(lt_hist_quantile(h, 0), 1000);
    assert_int_equal(lt_hist_quantile(h, 1), 100000000);
    /* Small values are exact; the answer never leaves [min, max]. */
    lt_hist_init(h);
    lt_hist_add(h, 5);
    lt_hist_add(h, 7);
    assert_int_equal(lt_hist_quantile(h, 0.5), 5);
    assert_int_equal(lt_hist_quantile(h, 0.99), 7);
    lt_hist_init(h);
    lt_hist_add(h, 123456789);
    assert_int_equal(lt_hist_quantile(h, 0.5), 123456789);
    lt_hist_add(h, UINT64_MAX); /* the top bucket holds anything */
    assert_int_equal(lt_hist_quantile(h, 1), UINT64_MAX);
    free(h);
}

static void test_tally(void **state)
{
    (void)state;
    lt_tally t = {0};
    lt_tally_add(&t, "503 PoolExhausted", 2);
    lt_tally_add(&t, "transport: timed out", 1);
    lt_tally_add(&t, "503 PoolExhausted", 3);
    assert_int_equal(t.n, 2);
    assert_int_equal(t.items[0].count, 5);
    for (int i = 0; i < LT_TALLY_MAX + 10; i++) {
        char k[32];
        snprintf(k, sizeof(k), "k%d", i);
        lt_tally_add(&t, k, 1);
    }
    assert_int_equal(t.n, LT_TALLY_MAX);
    assert_int_equal(lt_tally_total(&t), 6 + LT_TALLY_MAX + 10);
    assert_true(t.other > 0);
}

static const char metrics_text[] =
    "# HELP bindery_allocations_total Claims.\n"
    "# TYPE bindery_allocations_total counter\n"
    "bindery_allocations_total{pool=\"arena\",source=\"warm\",result=\"success\"} 40\n"
    "bindery_allocations_total{pool=\"arena\",source=\"cold\",result=\"success\"} 2\n"
    "bindery_allocations_total{pool=\"arena\",source=\"warm\",result=\"exhausted\"} 7\n"
    "bindery_allocations_total{pool=\"other\",source=\"warm\",result=\"success\"} 1000\n"
    "bindery_workqueue_depth 3 1700000000000\r\n"
    "\n"
    "weird{a=\"x\\\"y\\\\z\\n\", b = \"2\" ,} +Inf\n"
    "h_bucket{pool=\"arena\",le=\"0.1\"} 10\n"
    "h_bucket{pool=\"arena\",le=\"1\"} 30\n"
    "h_bucket{pool=\"arena\",le=\"+Inf\"} 40\n"
    "h_count{pool=\"arena\"} 40\n";

static void test_metrics_parse(void **state)
{
    (void)state;
    lt_metrics m;
    char err[256];
    assert_int_equal(lt_metrics_parse(metrics_text, strlen(metrics_text), &m, err, sizeof(err)), 0);
    assert_int_equal(m.n, 10);
    const char *arena[] = {"pool=arena", NULL};
    const char *ok[] = {"pool=arena", "result=success", NULL};
    bool found = false;
    assert_true(lt_metrics_sum(&m, "bindery_allocations_total", arena, &found) == 49);
    assert_true(found);
    assert_true(lt_metrics_sum(&m, "bindery_allocations_total", ok, NULL) == 42);
    assert_true(lt_metrics_sum(&m, "bindery_allocations_total", NULL, NULL) == 1049);
    assert_true(lt_metrics_sum(&m, "bindery_workqueue_depth", NULL, NULL) == 3);
    assert_true(lt_metrics_sum(&m, "missing", NULL, &found) == 0);
    assert_false(found);
    const char *escaped[] = {"a=x\"y\\z\n", "b=2", NULL};
    assert_true(lt_metrics_sum(&m, "weird", escaped, &found) > 1e300);
    assert_true(found);

    /* Quantiles of what a histogram gained: 10 in (0, 0.1], 20 in (0.1, 1],
     * 10 above 1, compared with an empty "before". */
    lt_metrics none = {0};
    double p50 = lt_metrics_hist_quantile(&none, &m, "h", arena, 0.5);
    assert_true(p50 > 0.1 && p50 < 1); /* rank 20 of 40: halfway into (0.1, 1] */
    assert_true(lt_metrics_hist_quantile(&none, &m, "h", arena, 0.99) == 1);
    assert_true(lt_metrics_hist_quantile(&m, &m, "h", arena, 0.5) == -1); /* gained none */
    lt_metrics_free(&m);
    lt_metrics_free(NULL);
}

static void test_metrics_bad(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *why;
    } bad[] = {
        {"1metric 1\n", "line 1: bad metric name"},
        {"ok 1\nm{a=\"1\" 2\n", "line 2: expected , or }"},
        {"m{a=1} 2\n", "bad value for label a"},
        {"m{=\"1\"} 2\n", "bad label name"},
        {"m{a=\"\\q\"} 2\n", "bad value for label a"},
        {"m 1 2 3\n", "text after the timestamp"},
        {"m abc\n", "bad sample value"},
        {"m\n", "expected a space"},
        {"m{a=\"1\"}\n", "expected a space"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        lt_metrics m;
        char err[256] = "";
        assert_int_equal(lt_metrics_parse(bad[i].text, strlen(bad[i].text), &m, err, sizeof(err)),
                         -1);
        assert_null(m.items);
        if (strstr(err, bad[i].why) == NULL)
            fail_msg("%s: want \"%s\", got \"%s\"", bad[i].text, bad[i].why, err);
    }
    /* Too many labels. */
    char text[2048] = "m{";
    for (int i = 0; i <= LT_METRIC_MAX_LABELS; i++)
        snprintf(text + strlen(text), sizeof(text) - strlen(text), "l%d=\"v\",", i);
    strcat(text, "} 1\n");
    lt_metrics m;
    char err[256];
    assert_int_equal(lt_metrics_parse(text, strlen(text), &m, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "more than"));
}

/* Parses a command line given as one string of space-separated words. */
static int parse(const char *line, lt_opts *o, char *err, size_t errlen)
{
    static char buf[1024];
    static char *argv[64];
    snprintf(buf, sizeof(buf), "%s", line);
    int argc = 0;
    argv[argc++] = "bindery-load-test";
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t && argc < 63;
         t = strtok_r(NULL, " ", &save))
        argv[argc++] = t;
    argv[argc] = NULL;
    FILE *devnull = fopen("/dev/null", "w");
    int rc = lt_opts_parse(argc, argv, o, devnull, err, errlen);
    fclose(devnull);
    return rc;
}

static void test_opts_good(void **state)
{
    (void)state;
    lt_opts o;
    char err[512];
    assert_int_equal(parse("--worlds 100 --namespace default", &o, err, sizeof(err)), 0);
    assert_int_equal(o.mode, LT_MODE_WORLDS);
    assert_int_equal(o.worlds, 100);
    assert_string_equal(o.namespace_, "default");
    assert_string_equal(o.pool, "bindery-load-test");
    assert_int_equal(o.concurrency, 10);
    assert_true(o.timeout_s == 300);

    assert_int_equal(parse("--mode allocate --pool arena --rate=500 --count 1000 --hold 2 "
                           "--selector map=dust --label match=m1 --json --csv /tmp/x.csv",
                           &o, err, sizeof(err)),
                     0);
    assert_int_equal(o.mode, LT_MODE_ALLOCATE);
    assert_true(o.rate == 500);
    assert_int_equal(o.count, 1000);
    assert_true(o.hold_s == 2);
    assert_int_equal(o.nselectors, 1);
    assert_int_equal(o.nlabels, 1);
    assert_true(o.json);
    assert_true(o.duration_s == 0);

    /* Defaults: 10 s, keep claims; churn releases at once. */
    assert_int_equal(parse("--mode allocate --pool arena", &o, err, sizeof(err)), 0);
    assert_true(o.duration_s == 10);
    assert_true(o.hold_s < 0);
    assert_int_equal(o.concurrency, 16);
    assert_int_equal(parse("--mode churn --pool arena --rate 5", &o, err, sizeof(err)), 0);
    assert_true(o.hold_s == 0);
    /* Cold claims are answered up to --wait-seconds later: the request
     * timeout leaves room for it. */
    assert_int_equal(parse("--mode allocate --pool arena --wait-seconds 30", &o, err, sizeof(err)),
                     0);
    assert_true(o.request_timeout_s >= 35);
    assert_int_equal(parse("--help", &o, err, sizeof(err)), 1);
}

static void test_opts_errors(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        const char *why;
    } bad[] = {
        {"", "choose --worlds N"},
        {"--mode allocate", "--pool: is required"},
        {"--mode fly", "--mode: must be allocate, churn or worlds (got \"fly\")"},
        {"--worlds 0", "--worlds: must be an integer from 1 to 100000 (got \"0\")"},
        {"--worlds 100001", "--worlds: must be an integer"},
        {"--worlds ten", "--worlds: must be an integer"},
        {"--worlds 5 --mode churn", "--mode: conflicts with --worlds"},
        {"--mode allocate --worlds 5", "--worlds: conflicts with --mode"},
        {"--worlds 5 --hold 3", "are for allocate and churn"},
        {"--mode allocate --pool a --keep", "--keep: is for --worlds"},
        {"--mode allocate --pool a --rate -1", "--rate: must be a number"},
        {"--mode allocate --pool a --rate 1e9", "--rate: must be a number"},
        {"--mode allocate --pool a --rate nan", "--rate: must be a number"},
        {"--mode allocate --pool a --concurrency 0", "--concurrency: must be an integer"},
        {"--mode allocate --pool a --duration 0", "--duration: must be seconds"},
        {"--mode allocate --pool a --count -5", "--count: must be an integer"},
        {"--mode allocate --pool a --hold x", "--hold: must be seconds"},
        {"--mode allocate --pool a --wait-seconds 301", "--wait-seconds"},
        {"--mode allocate --pool a --wait-seconds 30 --request-timeout 10",
         "--request-timeout: must leave room for --wait-seconds"},
        {"--mode allocate --pool Arena", "--pool: must be a lower-case DNS name"},
        {"--mode allocate --pool a --server 127.0.0.1:7780", "--server: must be an http"},
        {"--mode allocate --pool a --selector 'a in'", "--selector:"},
        {"--mode allocate --pool a --label novalue", "--label: must be KEY=VALUE"},
        {"--mode allocate --pool a --progress loud", "--progress: must be auto"},
        {"--mode allocate --pool a --max-error-ratio 2", "--max-error-ratio"},
        {"--mode allocate --pool a --frobnicate", "--frobnicate: unknown flag"},
        {"--mode allocate --pool", "--pool: needs a value"},
        {"--json=yes --mode allocate --pool a", "--json: takes no value"},
        {"allocate", "unexpected argument"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        lt_opts o;
        char err[512] = "";
        if (parse(bad[i].line, &o, err, sizeof(err)) != -1 || strstr(err, bad[i].why) == NULL)
            fail_msg("\"%s\": want \"%s\", got \"%s\"", bad[i].line, bad[i].why, err);
    }
}

static void expect_selector(const char *flag, const char *want)
{
    json_object *j = NULL;
    char err[256];
    if (lt_selector_to_json(flag, &j, err, sizeof(err)) != 0)
        fail_msg("%s: %s", flag, err);
    json_object *w = json_tokener_parse(want);
    assert_non_null(w);
    if (!json_object_equal(j, w))
        fail_msg("%s: got %s", flag, json_object_to_json_string(j));
    json_object_put(j);
    json_object_put(w);
}

static void test_selectors(void **state)
{
    (void)state;
    expect_selector("map=dust", "{\"matchLabels\":{\"map\":\"dust\"}}");
    expect_selector("map==dust, tier in (gold, silver),!legacy,region,mode!=ranked,x notin (a)",
                    "{\"matchLabels\":{\"map\":\"dust\"},\"matchExpressions\":["
                    "{\"key\":\"tier\",\"operator\":\"In\",\"values\":[\"gold\",\"silver\"]},"
                    "{\"key\":\"legacy\",\"operator\":\"DoesNotExist\"},"
                    "{\"key\":\"region\",\"operator\":\"Exists\"},"
                    "{\"key\":\"mode\",\"operator\":\"NotIn\",\"values\":[\"ranked\"]},"
                    "{\"key\":\"x\",\"operator\":\"NotIn\",\"values\":[\"a\"]}]}");
    expect_selector("{\"matchLabels\":{\"a\":\"b\"}}", "{\"matchLabels\":{\"a\":\"b\"}}");
    json_object *j = NULL;
    char err[256];
    assert_int_equal(lt_selector_to_json("{\"matchLabels\":1}", &j, err, sizeof(err)), -1);
    assert_int_equal(lt_selector_to_json("{nope", &j, err, sizeof(err)), -1);
    assert_int_equal(lt_selector_to_json("", &j, err, sizeof(err)), -1);
    assert_int_equal(lt_selector_to_json("a in (b", &j, err, sizeof(err)), -1);
    assert_null(j);
}

static void test_report(void **state)
{
    (void)state;
    lt_report *r = malloc(sizeof(*r));
    assert_non_null(r);
    lt_report_init(r, LT_MODE_ALLOCATE);
    snprintf(r->target, sizeof(r->target), "http://127.0.0.1:1");
    r->elapsed_s = 2;
    r->sent = 100;
    r->ok = 99;
    r->failed = 1;
    r->warm = 90;
    r->cold = 9;
    for (int i = 1; i <= 99; i++)
        lt_hist_add(&r->latency, (uint64_t)i * 1000000);
    lt_tally_add(&r->errors, "503 PoolExhausted", 1);
    json_object *j = lt_report_json(r);
    assert_int_equal(json_object_get_int(json_object_object_get(j, "count")), 100);
    assert_true(json_object_get_double(json_object_object_get(j, "rate")) == 50);
    assert_true(json_object_get_double(json_object_object_get(j, "warm_hit_share")) == 90.0 / 99.0);
    json_object *lat = json_object_object_get(j, "latency");
    double p50 = json_object_get_double(json_object_object_get(lat, "p50_ms"));
    assert_true(p50 > 49 && p50 < 51);
    json_object *errs = json_object_object_get(j, "errors_by_code");
    assert_int_equal(json_object_get_int(json_object_object_get(errs, "503 PoolExhausted")), 1);
    /* Every claim is in the tail of all requests, the failure too. */
    json_object_put(j);
    lt_hist_add(&r->latency_all, 10000ull * 1000000);
    j = lt_report_json(r);
    json_object *all = json_object_object_get(j, "latency_all");
    assert_int_equal(json_object_get_int(json_object_object_get(all, "count")), 1);
    json_object_put(j);
    /* One failure in 100: over a 0 ratio, within 0.05. */
    assert_int_equal(lt_report_exit_code(r, 0), LT_EXIT_ERRORS);
    assert_int_equal(lt_report_exit_code(r, 0.05), LT_EXIT_OK);
    r->aborted = true;
    assert_int_equal(lt_report_exit_code(r, 1), LT_EXIT_ABORTED);
    /* Worlds that never became Ready are failures too. */
    lt_report_init(r, LT_MODE_WORLDS);
    r->sent = r->ok = 10;
    r->ready = 9;
    r->timed_out = 1;
    assert_int_equal(lt_report_exit_code(r, 0), LT_EXIT_ERRORS);
    FILE *devnull = fopen("/dev/null", "w");
    lt_report_print(r, devnull);
    fclose(devnull);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_percentiles), cmocka_unit_test(test_tally),
        cmocka_unit_test(test_metrics_parse),    cmocka_unit_test(test_metrics_bad),
        cmocka_unit_test(test_opts_good),        cmocka_unit_test(test_opts_errors),
        cmocka_unit_test(test_selectors),        cmocka_unit_test(test_report),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
