/* The base-stock sizer: known Poisson quantiles, widening by forecast
 * error, the miss floor, clamps, overrides (early enough), gradual
 * scale-down, and override time parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bindery/sizing.h"

#include <math.h>
#include <string.h>

#define NOON 1736164800.0 /* 2025-01-06 12:00:00 UTC */

static void test_poisson_quantiles(void **state)
{
    (void)state;
    /* P[Poisson(2) <= 5] = 0.9834, <= 6 = 0.9955: S = 7 at 0.99. */
    assert_int_equal(bdy_base_stock(2, 0, 0.99), 7);
    /* P[Poisson(10) <= 17] = 0.9857, <= 18 = 0.9928: S = 19. */
    assert_int_equal(bdy_base_stock(10, 0, 0.99), 19);
    /* P[Poisson(1) <= 0] = 0.368 < 0.5 <= P[<= 1] = 0.736: S = 2. */
    assert_int_equal(bdy_base_stock(1, 0, 0.5), 2);
    assert_int_equal(bdy_base_stock(0, 0, 0.99), 0);
    assert_int_equal(bdy_base_stock(-3, 0, 0.99), 0);
    /* Large means use the normal approximation: 10000 + 2.326 * 100. */
    unsigned big = bdy_base_stock(10000, 0, 0.99);
    assert_true(big >= 10232 && big <= 10235);
    /* Forecast error widens the quantile. */
    assert_true(bdy_base_stock(10, 25, 0.99) > 19);
    /* ...and never narrows it below no error at any service level, nor at
     * all from 0.75 up, however large the error against the mean (the
     * negative binomial's quantile alone falls to 1 there). */
    static const double means[] = {0.05, 0.5, 1, 1.1, 5, 20, 40, 491, 2000};
    static const double levels[] = {0.5, 0.6, 0.7, 0.75, 0.9, 0.99, 0.9999};
    for (size_t l = 0; l < sizeof(levels) / sizeof(levels[0]); l++) {
        for (size_t m = 0; m < sizeof(means) / sizeof(means[0]); m++) {
            unsigned none = bdy_base_stock(means[m], 0, levels[l]);
            unsigned prev = none;
            for (double var = 0.1; var < 1e8; var *= 1.3) {
                unsigned s = bdy_base_stock(means[m], var, levels[l]);
                if (s < none || (levels[l] >= 0.75 && s < prev))
                    fail_msg("p %g, mean %g: S %u at extra variance %g, %u before, %u without",
                             levels[l], means[m], s, var, prev, none);
                prev = s;
            }
        }
    }
}

static bdy_sizing_input base_input(void)
{
    bdy_sizing_input in;
    memset(&in, 0, sizeof(in));
    in.min_warm = 1;
    in.max_warm = 500;
    in.max_worlds = 1000;
    in.service_level = 0.99;
    in.creation_rate = 20;
    in.lead_time_s = 120;
    in.prev_target = -1;
    return in;
}

static void test_forecast_sizes_and_clamps(void **state)
{
    (void)state;
    bdy_sizing_input in = base_input();
    in.forecast_rate = 5; /* 10 claims over 2 minutes */
    bdy_sizing s = bdy_size_pool(&in, NOON);
    assert_int_equal(s.base, 19);
    assert_int_equal(s.target, 19);
    in.max_warm = 12;
    assert_int_equal(bdy_size_pool(&in, NOON).target, 12);
    in.max_warm = 500;
    in.allocated = 990; /* maxWorlds leaves room for 10 */
    assert_int_equal(bdy_size_pool(&in, NOON).target, 10);
    in.allocated = 0;
    in.forecast_rate = 0;
    in.min_warm = 3;
    assert_int_equal(bdy_size_pool(&in, NOON).target, 3);
    /* A lead time of 0 is taken as 1 s: demand keeps a world warm. */
    in.min_warm = 0;
    in.lead_time_s = 0;
    in.forecast_rate = 1;
    assert_true(bdy_size_pool(&in, NOON).target >= 1);
    in.forecast_rate = 0;
    assert_int_equal(bdy_size_pool(&in, NOON).target, 0);
}

static void test_miss_floor_and_surprise(void **state)
{
    (void)state;
    bdy_sizing_input in = base_input();
    in.forecast_rate = 1;
    in.recent_rate = 30;
    in.recent_minutes = 2;
    in.recent_misses = 4;
    bdy_sizing s = bdy_size_pool(&in, NOON);
    assert_true(s.floor >= 70);
    assert_true(s.target >= s.floor);
    /* No misses, but far more claims than the forecast explains: followed. */
    in.recent_misses = 0;
    assert_true(bdy_size_pool(&in, NOON).target >= 70);
    /* Within Poisson noise of the forecast: the forecast stands. */
    in.forecast_rate = 28;
    in.recent_rate = 30;
    bdy_sizing quiet = bdy_size_pool(&in, NOON);
    assert_int_equal(quiet.target, bdy_base_stock(56, 0, 0.99));
}

static void test_overrides(void **state)
{
    (void)state;
    bdy_override ov = {
        .daily = true, .from = 17 * 3600 + 45 * 60, .to = 19 * 3600, .min_warm = 200};
    bdy_sizing_input in = base_input();
    in.overrides = &ov;
    in.noverrides = 1;
    double day = NOON - 12 * 3600;
    assert_int_equal(bdy_size_pool(&in, day + 17 * 3600).target, 1);
    /* 120 s lead + 200 / 20 s of creation = 130 s early. */
    assert_int_equal(bdy_size_pool(&in, day + 17 * 3600 + 45 * 60 - 120).target, 200);
    assert_int_equal(bdy_size_pool(&in, day + 17 * 3600 + 45 * 60 - 140).target, 1);
    assert_int_equal(bdy_size_pool(&in, day + 18 * 3600).target, 200);
    assert_int_equal(bdy_size_pool(&in, day + 19 * 3600 + 1).target, 1);
    /* Wrapping past midnight. */
    bdy_override night = {.from = 23 * 3600, .to = 3600, .min_warm = 50, .daily = true};
    in.overrides = &night;
    assert_int_equal(bdy_size_pool(&in, day + 86400 + 1800).target, 50);
    assert_int_equal(bdy_size_pool(&in, day + 23 * 3600 + 1800).target, 50);
    assert_int_equal(bdy_size_pool(&in, day + 2 * 3600).target, 1);
    /* Absolute windows; an override above maxWarm is clamped. */
    bdy_override once = {.from = NOON, .to = NOON + 600, .min_warm = 900, .daily = false};
    in.overrides = &once;
    assert_int_equal(bdy_size_pool(&in, NOON + 60).target, 500);
    assert_int_equal(bdy_size_pool(&in, NOON + 601).target, 1);
}

static void test_gradual_scale_down(void **state)
{
    (void)state;
    bdy_sizing_input in = base_input();
    in.prev_target = 100;
    in.prev_at = NOON;
    bdy_sizing s = bdy_size_pool(&in, NOON + 60);
    assert_true(s.target < 100 && s.target > 80); /* falls, but not at once */
    in.prev_target = s.level;
    in.prev_at = NOON + 60;
    bdy_sizing later = bdy_size_pool(&in, NOON + 3600);
    assert_true(later.target < 5);
    /* A lowered minWarm applies at once: the remembered level is demand's. */
    bdy_sizing_input idle = base_input();
    idle.min_warm = 3;
    bdy_sizing floor3 = bdy_size_pool(&idle, NOON);
    assert_int_equal(floor3.target, 3);
    assert_true(floor3.level < 1);
    idle.min_warm = 1;
    idle.prev_target = floor3.level;
    idle.prev_at = NOON;
    assert_int_equal(bdy_size_pool(&idle, NOON + 1).target, 1);
    /* Going up is immediate. */
    in.prev_target = 2;
    in.forecast_rate = 50;
    assert_true(bdy_size_pool(&in, NOON + 3601).target > 100);
}

static void test_time_parse(void **state)
{
    (void)state;
    bool daily = false;
    double t = 0;
    assert_int_equal(bdy_override_time_parse("17:45", &daily, &t), 0);
    assert_true(daily && t == 17 * 3600 + 45 * 60);
    assert_int_equal(bdy_override_time_parse("00:00:30", &daily, &t), 0);
    assert_true(t == 30);
    assert_int_equal(bdy_override_time_parse("2025-01-06T12:00:00Z", &daily, &t), 0);
    assert_true(!daily && t == NOON);
    /* RFC 3339 allows t and z in lower case. */
    assert_int_equal(bdy_override_time_parse("2025-01-06t12:00:00z", &daily, &t), 0);
    assert_true(!daily && t == NOON);
    const char *bad[] = {"",      "7:45",  "25:00", "17:60",    "noon",       "17:45x", "09:+3",
                         " 9:30", "+9:30", "-0:30", "09:03:+1", "2025-01-06", NULL};
    for (int i = 0; bad[i] != NULL; i++)
        assert_int_equal(bdy_override_time_parse(bad[i], &daily, &t), BDY_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_poisson_quantiles),
        cmocka_unit_test(test_forecast_sizes_and_clamps),
        cmocka_unit_test(test_miss_floor_and_surprise),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_gradual_scale_down),
        cmocka_unit_test(test_time_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
