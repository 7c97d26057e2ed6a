#include "bindery/error.h"
#include "bindery/metrics.h"
#include "bindery/util.h"

#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static char *render(bdy_metrics *m)
{
    bdy_buf b;
    bdy_buf_init(&b, 1 << 20);
    assert_int_equal(bdy_metrics_render(m, &b), 0);
    return bdy_buf_steal(&b);
}

static void test_exposition_exact(void **state)
{
    (void)state;
    bdy_metrics *m = bdy_metrics_new();
    assert_non_null(m);
    const char *claim_labels[] = {"pool", "result", NULL};
    bdy_metric_family *claims = bdy_metrics_counter(
        m, "bindery_claims_total", "Claims by pool.\nSecond line with \\ backslash", claim_labels);
    bdy_metric_family *depth = bdy_metrics_gauge(m, "bindery_queue_depth", "Depth.", NULL);
    const char *route_labels[] = {"route", NULL};
    const double bounds[] = {0.25, 1, 2.5};
    bdy_metric_family *lat =
        bdy_metrics_histogram(m, "bindery_latency_seconds", "Latency.", route_labels, bounds, 3);
    /* Labelled but never used: must not appear at all. */
    const char *unused_labels[] = {"x", NULL};
    assert_non_null(bdy_metrics_counter(m, "bindery_unused_total", "Unused.", unused_labels));
    const double one[] = {1};
    bdy_metric_family *plain = bdy_metrics_histogram(m, "bindery_plain", "Plain.", NULL, one, 1);
    assert_non_null(claims);
    assert_non_null(depth);
    assert_non_null(lat);
    assert_non_null(plain);

    const char *ok[] = {"eu", "ok", NULL};
    const char *odd[] = {"a\"b\\c\nd", "x", NULL};
    bdy_metric *c_ok = bdy_metric_child(claims, ok);
    bdy_metric *c_odd = bdy_metric_child(claims, odd);
    assert_non_null(c_ok);
    assert_non_null(c_odd);
    bdy_metric_inc(c_ok);
    bdy_metric_inc(c_ok);
    bdy_metric_inc(bdy_metric_child(claims, ok)); /* same child again */
    bdy_metric_add(c_odd, 2.5);
    bdy_metric_set(bdy_metric_child(depth, NULL), -1.5);

    const char *v1[] = {"/v1", NULL};
    bdy_metric *h = bdy_metric_child(lat, v1);
    bdy_metric_observe(h, 0.25); /* le is inclusive */
    bdy_metric_observe(h, 0.5);
    bdy_metric_observe(h, 4);
    bdy_metric_observe(h, NAN); /* dropped */
    bdy_metric_observe(bdy_metric_child(plain, NULL), 123);

    const char *want =
        "# HELP bindery_claims_total Claims by pool.\\nSecond line with \\\\ backslash\n"
        "# TYPE bindery_claims_total counter\n"
        "bindery_claims_total{pool=\"eu\",result=\"ok\"} 3\n"
        "bindery_claims_total{pool=\"a\\\"b\\\\c\\nd\",result=\"x\"} 2.5\n"
        "# HELP bindery_queue_depth Depth.\n"
        "# TYPE bindery_queue_depth gauge\n"
        "bindery_queue_depth -1.5\n"
        "# HELP bindery_latency_seconds Latency.\n"
        "# TYPE bindery_latency_seconds histogram\n"
        "bindery_latency_seconds_bucket{route=\"/v1\",le=\"0.25\"} 1\n"
        "bindery_latency_seconds_bucket{route=\"/v1\",le=\"1\"} 2\n"
        "bindery_latency_seconds_bucket{route=\"/v1\",le=\"2.5\"} 2\n"
        "bindery_latency_seconds_bucket{route=\"/v1\",le=\"+Inf\"} 3\n"
        "bindery_latency_seconds_sum{route=\"/v1\"} 4.75\n"
        "bindery_latency_seconds_count{route=\"/v1\"} 3\n"
        "# HELP bindery_plain Plain.\n"
        "# TYPE bindery_plain histogram\n"
        "bindery_plain_bucket{le=\"1\"} 0\n"
        "bindery_plain_bucket{le=\"+Inf\"} 1\n"
        "bindery_plain_sum 123\n"
        "bindery_plain_count 1\n";
    char *got = render(m);
    assert_string_equal(got, want);
    free(got);

    assert_true(bdy_metric_value(c_ok) == 3.0);
    assert_true(bdy_metric_value(h) == 3.0); /* histogram: observation count */
    bdy_metrics_free(m);
}

static void test_unlabelled_renders_zero_and_values(void **state)
{
    (void)state;
    bdy_metrics *m = bdy_metrics_new();
    bdy_metric_family *g = bdy_metrics_gauge(m, "g", "", NULL);
    bdy_metric_family *c = bdy_metrics_counter(m, "c_total", "C.", NULL);
    assert_non_null(g);
    assert_non_null(c);
    char *got = render(m);
    assert_string_equal(got, "# HELP g \n# TYPE g gauge\ng 0\n"
                             "# HELP c_total C.\n# TYPE c_total counter\nc_total 0\n");
    free(got);

    bdy_metric *gc = bdy_metric_child(g, NULL);
    bdy_metric_set(gc, 1e6);
    bdy_metric_add(gc, -0.5);
    bdy_metric *cc = bdy_metric_child(c, NULL);
    bdy_metric_add(cc, 123);
    bdy_metric_add(cc, -5);    /* counters never go down */
    bdy_metric_add(cc, NAN);   /* nor become NaN */
    bdy_metric_set(cc, 1);     /* set is for gauges only */
    bdy_metric_observe(cc, 1); /* observe is for histograms only */
    assert_true(bdy_metric_value(gc) == 999999.5);
    assert_true(bdy_metric_value(cc) == 123);
    bdy_metric_set(gc, INFINITY);
    got = render(m);
    assert_string_equal(got, "# HELP g \n# TYPE g gauge\ng +Inf\n"
                             "# HELP c_total C.\n# TYPE c_total counter\nc_total 123\n");
    free(got);
    bdy_metrics_free(m);
}

static bool only_eu(void *data, const char *ns)
{
    (void)data;
    return strcmp(ns, "eu") == 0;
}

/* A reader of some namespaces gets their series only: other namespaces'
 * series go, and a family left with none goes whole; series without a
 * namespace label stay. */
static void test_render_filtered_by_namespace(void **state)
{
    (void)state;
    bdy_metrics *m = bdy_metrics_new();
    bdy_metric_family *w =
        bdy_metrics_gauge(m, "worlds", "W.", (const char *const[]){"namespace", "pool", NULL});
    bdy_metric_family *d =
        bdy_metrics_gauge(m, "only_default", "D.", (const char *const[]){"namespace", NULL});
    bdy_metric_family *u = bdy_metrics_counter(m, "up_total", "U.", NULL);
    bdy_metric_set(bdy_metric_child(w, (const char *const[]){"default", "a", NULL}), 1);
    bdy_metric_set(bdy_metric_child(w, (const char *const[]){"eu", "b", NULL}), 2);
    bdy_metric_set(bdy_metric_child(d, (const char *const[]){"default", NULL}), 3);
    bdy_metric_inc(bdy_metric_child(u, NULL));
    bdy_buf out;
    bdy_buf_init(&out, 1 << 20);
    assert_int_equal(bdy_metrics_render_filtered(m, &out, only_eu, NULL), 0);
    assert_non_null(out.data);
    assert_string_equal(out.data, "# HELP worlds W.\n# TYPE worlds gauge\n"
                                  "worlds{namespace=\"eu\",pool=\"b\"} 2\n"
                                  "# HELP up_total U.\n# TYPE up_total counter\nup_total 1\n");
    bdy_buf_free(&out);
    assert_int_equal(bdy_metrics_render_filtered(m, &out, NULL, NULL), BDY_EINVAL);
    bdy_buf_free(&out);
    bdy_metrics_free(m);
}

/* A removed pool's series leave the exposition, in every family with both
 * labels, and come back when looked up again, value kept. */
static void test_hide_series(void **state)
{
    (void)state;
    bdy_metrics *m = bdy_metrics_new();
    bdy_metric_family *w = bdy_metrics_gauge(
        m, "worlds", "W.", (const char *const[]){"namespace", "pool", "phase", NULL});
    bdy_metric_family *o = bdy_metrics_gauge(m, "other", "O.", (const char *const[]){"pool", NULL});
    bdy_metric_set(bdy_metric_child(w, (const char *const[]){"default", "a", "Ready", NULL}), 1);
    bdy_metric_set(bdy_metric_child(w, (const char *const[]){"default", "a", "Failed", NULL}), 2);
    bdy_metric_set(bdy_metric_child(w, (const char *const[]){"default", "b", "Ready", NULL}), 3);
    bdy_metric_set(bdy_metric_child(o, (const char *const[]){"a", NULL}), 4);
    bdy_metrics_hide_series(m, "namespace", "default", "pool", "a");
    char *got = render(m);
    assert_string_equal(got, "# HELP worlds W.\n# TYPE worlds gauge\n"
                             "worlds{namespace=\"default\",pool=\"b\",phase=\"Ready\"} 3\n"
                             "# HELP other O.\n# TYPE other gauge\nother{pool=\"a\"} 4\n");
    free(got);
    /* Updates of a hidden series (a late count for the removed pool), and
     * series made for it since, stay hidden... */
    bdy_metric *back = bdy_metric_child(w, (const char *const[]){"default", "a", "Ready", NULL});
    assert_true(bdy_metric_value(back) == 1);
    bdy_metric_set(back, 5);
    bdy_metric_set(bdy_metric_child(w, (const char *const[]){"default", "a", "Starting", NULL}), 6);
    got = render(m);
    assert_null(strstr(got, "pool=\"a\",phase"));
    free(got);
    /* ...until the pool is configured again: then all show, the values
     * kept. */
    bdy_metrics_show_series(m, "namespace", "default", "pool", "a");
    got = render(m);
    assert_non_null(strstr(got, "worlds{namespace=\"default\",pool=\"a\",phase=\"Ready\"} 5\n"));
    assert_non_null(strstr(got, "worlds{namespace=\"default\",pool=\"a\",phase=\"Failed\"} 2\n"));
    assert_non_null(strstr(got, "worlds{namespace=\"default\",pool=\"a\",phase=\"Starting\"} 6\n"));
    free(got);
    bdy_metrics_free(m);
}

/* Values are formatted like the Go client's strconv.FormatFloat(v, 'g', -1). */
static void test_value_format(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0, "0"},
        {80000, "80000"},
        {100000, "100000"},
        {1e6, "1e+06"},
        {1234567, "1.234567e+06"},
        {0.1, "0.1"},
        {0.0001, "0.0001"},
        {0.00001, "1e-05"},
        {-2.5, "-2.5"},
        {1.0 / 3, "0.3333333333333333"},
        {NAN, "NaN"},
        {-INFINITY, "-Inf"},
        {123456.75, "123456.75"},
    };
    bdy_metrics *m = bdy_metrics_new();
    bdy_metric *g = bdy_metric_child(bdy_metrics_gauge(m, "g", "", NULL), NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bdy_metric_set(g, cases[i].v);
        char want[128];
        snprintf(want, sizeof(want), "# HELP g \n# TYPE g gauge\ng %s\n", cases[i].text);
        char *got = render(m);
        assert_string_equal(got, want);
        free(got);
    }
    bdy_metrics_free(m);
}

static void test_bad_registrations(void **state)
{
    (void)state;
    bdy_metrics *m = bdy_metrics_new();
    const double b[] = {1, 2};
    const double bad_order[] = {2, 1};
    const double bad_nan[] = {1, NAN};
    const char *le[] = {"le", NULL};
    const char *reserved[] = {"__x", NULL};
    const char *dash[] = {"a-b", NULL};
    const char *dup[] = {"a", "a", NULL};
    const char *five[] = {"a", "b", "c", "d", "e", NULL};
    const char *four[] = {"a", "b", "c", "d", NULL};

    assert_null(bdy_metrics_counter(m, "1abc", "", NULL));
    assert_null(bdy_metrics_counter(m, "a-b", "", NULL));
    assert_null(bdy_metrics_counter(m, "", "", NULL));
    assert_null(bdy_metrics_counter(m, NULL, "", NULL));
    assert_null(bdy_metrics_counter(m, "x", "", reserved));
    assert_null(bdy_metrics_counter(m, "x", "", dash));
    assert_null(bdy_metrics_counter(m, "x", "", dup));
    assert_null(bdy_metrics_counter(m, "x", "", five));
    assert_null(bdy_metrics_histogram(m, "h", "", le, b, 2));
    assert_null(bdy_metrics_histogram(m, "h", "", NULL, bad_order, 2));
    assert_null(bdy_metrics_histogram(m, "h", "", NULL, bad_nan, 2));
    assert_null(bdy_metrics_histogram(m, "h", "", NULL, NULL, 2));
    assert_null(bdy_metrics_counter(NULL, "x", "", NULL));

    /* "le" is fine outside histograms; colons are fine in metric names. */
    assert_non_null(bdy_metrics_gauge(m, "ns:x", "", le));
    bdy_metric_family *x = bdy_metrics_counter(m, "x", "", four);
    assert_non_null(x);
    /* The same definition again is the same family; anything else is refused. */
    assert_ptr_equal(bdy_metrics_counter(m, "x", "other help", four), x);
    const char *three[] = {"a", "b", "c", NULL};
    const char *renamed[] = {"a", "b", "c", "e", NULL};
    assert_null(bdy_metrics_counter(m, "x", "", NULL));
    assert_null(bdy_metrics_counter(m, "x", "", three));
    assert_null(bdy_metrics_counter(m, "x", "", renamed));
    assert_null(bdy_metrics_gauge(m, "x", "", four));
    const double b3[] = {1, 3};
    bdy_metric_family *h = bdy_metrics_histogram(m, "hh", "", NULL, b, 2);
    assert_non_null(h);
    assert_ptr_equal(bdy_metrics_histogram(m, "hh", "", NULL, b, 2), h);
    assert_null(bdy_metrics_histogram(m, "hh", "", NULL, b3, 2));
    assert_null(bdy_metrics_histogram(m, "hh", "", NULL, b, 1));

    /* The registry renders only the good families (labelled ones without
     * children are left out). */
    char *got = render(m);
    assert_string_equal(got, "# HELP hh \n# TYPE hh histogram\nhh_bucket{le=\"1\"} 0\n"
                             "hh_bucket{le=\"2\"} 0\nhh_bucket{le=\"+Inf\"} 0\nhh_sum 0\n"
                             "hh_count 0\n");
    free(got);
    bdy_metrics_free(m);
}

static void test_child_values(void **state)
{
    (void)state;
    bdy_metrics *m = bdy_metrics_new();
    const char *names[] = {"a", "b", NULL};
    bdy_metric_family *f = bdy_metrics_counter(m, "f_total", "", names);
    const char *with_null[] = {"x", NULL};
    assert_null(bdy_metric_child(f, with_null)); /* second value missing */
    assert_null(bdy_metric_child(f, NULL));
    assert_null(bdy_metric_child(NULL, NULL));

    char longv[1100];
    memset(longv, 'v', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    const char *too_long[] = {longv, "y"};
    assert_null(bdy_metric_child(f, too_long));

    /* ("ab","c") and ("a","bc") are different children. */
    const char *ab_c[] = {"ab", "c"};
    const char *a_bc[] = {"a", "bc"};
    bdy_metric *x = bdy_metric_child(f, ab_c);
    bdy_metric *y = bdy_metric_child(f, a_bc);
    assert_non_null(x);
    assert_non_null(y);
    assert_ptr_not_equal(x, y);
    assert_ptr_equal(bdy_metric_child(f, ab_c), x);

    /* NULL children are accepted by every update. */
    bdy_metric_inc(NULL);
    bdy_metric_add(NULL, 1);
    bdy_metric_set(NULL, 1);
    bdy_metric_observe(NULL, 1);
    assert_true(bdy_metric_value(NULL) == 0);
    bdy_metrics_free(m);
    bdy_metrics_free(NULL);
}

static void test_cardinality_guard(void **state)
{
    (void)state;
    bdy_metrics *m = bdy_metrics_new();
    const char *names[] = {"id", NULL};
    bdy_metric_family *f = bdy_metrics_gauge(m, "ids", "", names);
    char v[32];
    const char *vals[] = {v, NULL};
    for (int i = 0; i < BDY_METRICS_MAX_CHILDREN; i++) {
        snprintf(v, sizeof(v), "id-%d", i);
        assert_non_null(bdy_metric_child(f, vals));
    }
    snprintf(v, sizeof(v), "id-new");
    assert_null(bdy_metric_child(f, vals));
    assert_null(bdy_metric_child(f, vals));
    /* Existing children are still found. */
    snprintf(v, sizeof(v), "id-7");
    bdy_metric *c = bdy_metric_child(f, vals);
    assert_non_null(c);
    bdy_metric_set(c, 7);
    assert_true(bdy_metric_value(c) == 7);
    bdy_metrics_free(m);

    /* Hidden series (a removed pool's) give their room back: pools
     * renamed one after another never run out of it. */
    m = bdy_metrics_new();
    const char *two[] = {"namespace", "pool", NULL};
    f = bdy_metrics_gauge(m, "pools", "", two);
    const char *pv[] = {"default", v, NULL};
    for (int i = 0; i < 2 * BDY_METRICS_MAX_CHILDREN; i++) {
        snprintf(v, sizeof(v), "pool-%d", i);
        assert_non_null(bdy_metric_child(f, pv));
        bdy_metrics_hide_series(m, "namespace", "default", "pool", v);
    }
    /* A hidden one is found, and shown again, without needing room. */
    snprintf(v, sizeof(v), "pool-3");
    assert_non_null(bdy_metric_child(f, pv));
    bdy_metrics_show_series(m, "namespace", "default", "pool", v);
    char *shown = render(m);
    assert_non_null(strstr(shown, "pools{namespace=\"default\",pool=\"pool-3\"} 0\n"));
    free(shown);
    bdy_metrics_free(m);
}

static void test_render_cap(void **state)
{
    (void)state;
    bdy_metrics *m = bdy_metrics_new();
    assert_non_null(bdy_metrics_counter(m, "a_long_metric_name_total", "Help text.", NULL));
    bdy_buf b;
    bdy_buf_init(&b, 20);
    assert_int_equal(bdy_metrics_render(m, &b), BDY_ETOOBIG);
    bdy_buf_free(&b);
    assert_int_equal(bdy_metrics_render(NULL, &b), BDY_EINVAL);
    bdy_metrics_free(m);
}

#define N_THREADS 4
#define N_ITER 20000

struct worker {
    bdy_metric_family *counter;
    bdy_metric_family *hist;
    bdy_metric *gauge;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    const char *vals[] = {"shared", NULL};
    for (int i = 0; i < N_ITER; i++) {
        /* Look the child up every time to exercise concurrent creation. */
        bdy_metric_inc(bdy_metric_child(w->counter, vals));
        bdy_metric_observe(bdy_metric_child(w->hist, NULL), (i % 2) ? 0.5 : 2.0);
        bdy_metric_add(w->gauge, 0.25);
    }
    return NULL;
}

static void test_concurrency(void **state)
{
    (void)state;
    bdy_metrics *m = bdy_metrics_new();
    const char *names[] = {"k", NULL};
    const double b[] = {1};
    struct worker w = {
        .counter = bdy_metrics_counter(m, "hits_total", "", names),
        .hist = bdy_metrics_histogram(m, "lat", "", NULL, b, 1),
        .gauge = bdy_metric_child(bdy_metrics_gauge(m, "level", "", NULL), NULL),
    };
    pthread_t t[N_THREADS];
    for (int i = 0; i < N_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w), 0);
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(t[i], NULL);

    const char *vals[] = {"shared", NULL};
    assert_true(bdy_metric_value(bdy_metric_child(w.counter, vals)) == N_THREADS * N_ITER);
    assert_true(bdy_metric_value(bdy_metric_child(w.hist, NULL)) == N_THREADS * N_ITER);
    assert_true(bdy_metric_value(w.gauge) == N_THREADS * N_ITER * 0.25);
    char *got = render(m);
    char want[1024];
    snprintf(want, sizeof(want),
             "# HELP hits_total \n# TYPE hits_total counter\nhits_total{k=\"shared\"} %d\n"
             "# HELP lat \n# TYPE lat histogram\nlat_bucket{le=\"1\"} %d\n"
             "lat_bucket{le=\"+Inf\"} %d\nlat_sum %d\nlat_count %d\n"
             "# HELP level \n# TYPE level gauge\nlevel %d\n",
             N_THREADS * N_ITER, N_THREADS * N_ITER / 2, N_THREADS * N_ITER,
             N_THREADS * N_ITER / 2 * 5 / 2, N_THREADS * N_ITER, N_THREADS * N_ITER / 4);
    assert_string_equal(got, want);
    free(got);
    bdy_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exposition_exact),
        cmocka_unit_test(test_unlabelled_renders_zero_and_values),
        cmocka_unit_test(test_value_format),
        cmocka_unit_test(test_bad_registrations),
        cmocka_unit_test(test_child_values),
        cmocka_unit_test(test_cardinality_guard),
        cmocka_unit_test(test_render_cap),
        cmocka_unit_test(test_render_filtered_by_namespace),
        cmocka_unit_test(test_hide_series),
        cmocka_unit_test(test_concurrency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
