/* The Holt–Winters forecaster: it recovers level, trend and season of a
 * synthetic series, treats gaps as missing, fits its own parameters, and
 * its state survives a JSON round trip; bad inputs are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bindery/forecast.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define STEP 300
#define DAY (86400 / STEP)
#define FIRST ((uint64_t)1736121600 / STEP) /* a UTC midnight */

/* level 50 + trend per bucket + a daily sine of amplitude 20. */
static double series(uint64_t b, double trend)
{
    double slot = (double)((b - FIRST) % DAY);
    return 50 + trend * (double)(b - FIRST) + 20 * sin(2 * M_PI * slot / DAY);
}

static bdy_forecast *make(bool weekly)
{
    bdy_forecast_opts o = {.step_s = STEP, .weekly = weekly, .ma_window = 3};
    bdy_forecast *f = NULL;
    assert_int_equal(bdy_forecast_new(&o, &f), 0);
    return f;
}

static void test_recovers_level_and_season(void **state)
{
    (void)state;
    bdy_forecast *f = make(false);
    size_t n = 6 * DAY;
    double *obs = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++)
        obs[i] = series(FIRST + i, 0);
    assert_int_equal(bdy_forecast_fit(f, obs, n, FIRST, 1), 0);
    assert_true(bdy_forecast_seasonal(f));
    /* The next day, slot by slot, within 2 % of the truth. */
    for (size_t h = 0; h < DAY; h += 7) {
        double want = series(FIRST + n + h, 0);
        double got = bdy_forecast_at(f, FIRST + n + h);
        assert_true(fabs(got - want) < 0.02 * want + 0.5);
    }
    assert_true(fabs(bdy_forecast_level(f) - 50) < 2.5);
    /* The season's peak sits a quarter day in. */
    double peak = bdy_forecast_season_at(f, FIRST + n + DAY / 4);
    assert_true(fabs(peak - 20) < 2.5);
    free(obs);
    bdy_forecast_free(f);
}

static void test_recovers_trend(void **state)
{
    (void)state;
    bdy_forecast *f = make(false);
    size_t n = 8 * DAY;
    double *obs = malloc(n * sizeof(double));
    uint64_t rng = 7;
    for (size_t i = 0; i < n; i++) {
        /* A small deterministic jitter keeps the fit from a degenerate optimum. */
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        double noise = ((double)(rng >> 33) / 2147483648.0 - 0.5);
        obs[i] = series(FIRST + i, 0.02) + noise;
    }
    assert_int_equal(bdy_forecast_fit(f, obs, n, FIRST, 1), 0);
    /* A rising trend is found (part of it is absorbed by the level and the
     * season, which the first day initialises), and an hour ahead the
     * forecast still sits within 5 % of the rising line. */
    assert_true(bdy_forecast_trend(f) > 0.002);
    for (size_t h = 0; h < 12; h++) {
        double want = series(FIRST + n + h, 0.02);
        assert_true(fabs(bdy_forecast_at(f, FIRST + n + h) - want) < 0.05 * want);
    }
    assert_true(fabs(bdy_forecast_level(f) - (50 + 0.02 * (double)n)) < 0.05 * (50 + 0.02 * n));
    free(obs);
    bdy_forecast_free(f);
}

static void test_moving_average_while_short(void **state)
{
    (void)state;
    bdy_forecast *f = make(false);
    assert_true(bdy_forecast_at(f, FIRST) == 0); /* empty history */
    assert_int_equal(bdy_forecast_observe(f, FIRST, 10), 0);
    /* The first value had no forecast to miss: no error yet, no margin
     * (it was scored against 0, a margin of its whole value). */
    assert_true(bdy_forecast_rate_sd(f, 0) == 0);
    assert_int_equal(bdy_forecast_observe(f, FIRST + 1, 20), 0);
    /* The second missed the first's 10 by 10. */
    assert_true(fabs(bdy_forecast_rate_sd(f, 0) - 10) < 1e-9);
    assert_int_equal(bdy_forecast_observe(f, FIRST + 2, 30), 0);
    assert_int_equal(bdy_forecast_observe(f, FIRST + 3, 40), 0);
    assert_false(bdy_forecast_seasonal(f));
    assert_true(fabs(bdy_forecast_at(f, FIRST + 4) - 30) < 1e-9); /* mean of 20, 30, 40 */
    bdy_forecast_free(f);
}

static void test_gaps_are_missing_not_zero(void **state)
{
    (void)state;
    bdy_forecast *f = make(false);
    size_t n = 4 * DAY;
    double *obs = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++)
        obs[i] = series(FIRST + i, 0);
    /* Three hours missing on day 3 (NaN), as a collection gap. */
    for (size_t i = 3 * DAY; i < 3 * DAY + 36; i++)
        obs[i] = NAN;
    assert_int_equal(bdy_forecast_fit(f, obs, n, FIRST, 1), 0);
    double want = series(FIRST + n, 0);
    assert_true(fabs(bdy_forecast_at(f, FIRST + n) - want) < 0.03 * want);
    /* Skipped buckets are missing too: after a jump the season still lines up. */
    assert_int_equal(bdy_forecast_observe(f, FIRST + n + 10, series(FIRST + n + 10, 0)), 0);
    want = series(FIRST + n + 11, 0);
    assert_true(fabs(bdy_forecast_at(f, FIRST + n + 11) - want) < 0.03 * want);
    free(obs);
    bdy_forecast_free(f);
}

/* A value after a gap that is exactly what the forecaster predicted for
 * its bucket is no error: the error statistics (and so the margin) do not
 * grow. They did when the trend over the gap was counted twice. */
static void test_gap_then_predicted_value_is_no_error(void **state)
{
    (void)state;
    bdy_forecast *f = make(false);
    size_t n = 8 * DAY;
    double *obs = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++)
        obs[i] = series(FIRST + i, 0.05);
    assert_int_equal(bdy_forecast_fit(f, obs, n, FIRST, 1), 0);
    assert_true(bdy_forecast_seasonal(f));
    assert_true(fabs(bdy_forecast_trend(f)) > 1e-3);
    double before = bdy_forecast_rate_sd(f, 0); /* 0: no Poisson part taken out */
    uint64_t later = FIRST + n + 20;
    double predicted = bdy_forecast_at(f, later);
    assert_int_equal(bdy_forecast_observe(f, later, predicted), 0);
    double after = bdy_forecast_rate_sd(f, 0);
    assert_true(after <= before * (1 + 1e-9));
    free(obs);
    bdy_forecast_free(f);
}

/* A falling trend carried across a week without data (bindery down) does
 * not drive the forecast to zero: the trend is damped and the level never
 * goes below zero. Undamped, the week's trend alone was -44 here. */
static void test_long_gap_keeps_the_level(void **state)
{
    (void)state;
    bdy_forecast *f = make(false);
    size_t n = 8 * DAY;
    double *obs = malloc(n * sizeof(double));
    uint64_t rng = 11;
    for (size_t i = 0; i < n; i++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        double noise = ((double)(rng >> 33) / 2147483648.0 - 0.5);
        double slot = (double)(i % DAY);
        obs[i] = 80 - 50.0 * (double)i / (double)n + 10 * sin(2 * M_PI * slot / DAY) + noise;
    }
    assert_int_equal(bdy_forecast_fit(f, obs, n, FIRST, 1), 0);
    assert_true(bdy_forecast_seasonal(f));
    uint64_t back = FIRST + n + 7 * DAY;
    double before = bdy_forecast_at(f, back);
    if (!(before > 10))
        fail_msg("forecast after a week's gap: %g (trend %g)", before, bdy_forecast_trend(f));
    assert_int_equal(bdy_forecast_observe(f, back, 30), 0);
    double next = bdy_forecast_at(f, back + 1);
    if (!(next > 20 && next < 45))
        fail_msg("forecast right after the gap: %g", next);
    free(obs);
    bdy_forecast_free(f);
}

static void test_zero_demand_and_bad_input(void **state)
{
    (void)state;
    bdy_forecast *f = make(false);
    for (uint64_t b = FIRST; b < FIRST + 2 * DAY; b++)
        assert_int_equal(bdy_forecast_observe(f, b, 0), 0);
    assert_true(bdy_forecast_at(f, FIRST + 2 * DAY) == 0);
    assert_int_equal(bdy_forecast_observe(f, FIRST, 1), BDY_EINVAL);            /* older */
    assert_int_equal(bdy_forecast_observe(f, FIRST + 3 * DAY, -1), BDY_EINVAL); /* negative */
    assert_int_equal(bdy_forecast_observe(f, FIRST + 3 * DAY, INFINITY), BDY_EINVAL);
    double bad[] = {1, -2};
    assert_int_equal(bdy_forecast_fit(f, bad, 2, FIRST, 1), BDY_EINVAL);
    assert_int_equal(bdy_forecast_fit(f, NULL, 0, FIRST, 1), 0); /* empty history */
    bdy_forecast_opts o = {.step_s = 7, .weekly = false, .ma_window = 3};
    bdy_forecast *g = NULL;
    assert_int_equal(bdy_forecast_new(&o, &g), BDY_EINVAL);
    assert_null(g);
    bdy_forecast_free(f);
}

static void test_state_round_trip(void **state)
{
    (void)state;
    bdy_forecast *f = make(true);
    for (uint64_t b = FIRST; b < FIRST + 2 * DAY + 5; b++)
        assert_int_equal(bdy_forecast_observe(f, b, series(b, 0)), 0);
    json_object *j = bdy_forecast_to_json(f);
    const char *text = json_object_to_json_string(j);
    json_object *back = json_tokener_parse(text);
    bdy_forecast *g = NULL;
    bdy_errbuf eb;
    assert_int_equal(bdy_forecast_from_json(back, &g, &eb), 0);
    assert_int_equal(bdy_forecast_next_bucket(g), bdy_forecast_next_bucket(f));
    for (uint64_t b = FIRST + 2 * DAY + 5; b < FIRST + 3 * DAY; b += 13)
        assert_true(fabs(bdy_forecast_at(g, b) - bdy_forecast_at(f, b)) < 1e-6);
    /* Both continue identically. */
    bdy_forecast_observe(f, FIRST + 2 * DAY + 5, 70);
    bdy_forecast_observe(g, FIRST + 2 * DAY + 5, 70);
    assert_true(fabs(bdy_forecast_at(g, FIRST + 2 * DAY + 6) -
                     bdy_forecast_at(f, FIRST + 2 * DAY + 6)) < 1e-6);
    /* A damaged state is refused with the field named. */
    json_object_object_add(back, "season", json_object_new_array());
    bdy_forecast *h = NULL;
    assert_int_equal(bdy_forecast_from_json(back, &h, &eb), BDY_EPARSE);
    assert_non_null(strstr(eb.message, "season"));
    assert_null(h);
    json_object_put(j);
    json_object_put(back);
    bdy_forecast_free(f);
    bdy_forecast_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recovers_level_and_season),
        cmocka_unit_test(test_recovers_trend),
        cmocka_unit_test(test_moving_average_while_short),
        cmocka_unit_test(test_gaps_are_missing_not_zero),
        cmocka_unit_test(test_gap_then_predicted_value_is_no_error),
        cmocka_unit_test(test_long_gap_keeps_the_level),
        cmocka_unit_test(test_zero_demand_and_bad_input),
        cmocka_unit_test(test_state_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
