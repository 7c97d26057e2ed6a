/* A pool's crash backoff: the delays, that a crash loop stays held back
 * at the longest delay, and the two ways the streak starts over. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bindery/crashbackoff.h"

#include <math.h>
#include <stdbool.h>

static bool near(double a, double b)
{
    return fabs(a - b) < 1e-9;
}

static void test_delays_grow_to_the_cap(void **state)
{
    (void)state;
    bdy_crash_backoff b = {0};
    assert_true(near(bdy_crash_backoff_wait(&b, 100), 0));
    bdy_crash_backoff_failed(&b, 100, 0);
    bdy_crash_backoff_failed(&b, 100, 0);
    assert_true(near(bdy_crash_backoff_wait(&b, 100), 0));
    bdy_crash_backoff_failed(&b, 100, 0);
    assert_true(near(bdy_crash_backoff_wait(&b, 100), 1));
    assert_true(near(bdy_crash_backoff_wait(&b, 100.25), 0.75));
    assert_true(near(bdy_crash_backoff_wait(&b, 101), 0));
    double t = 101;
    static const double want[] = {2, 4, 8, 16, 32, 60, 60, 60};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        bdy_crash_backoff_failed(&b, t, 0.5); /* Ready for a moment proves nothing */
        assert_true(near(bdy_crash_backoff_wait(&b, t), want[i]));
        t += want[i] + 1;
    }
}

/* A pool whose every world fails 2 s after it is created, driven as its
 * controller does: create whenever the wait is over. Once at the longest
 * delay it stays there: the first version, counting the failures of the
 * last minute, found that window empty after waiting a minute and let a
 * burst through at full rate, again and again. */
static void test_a_crash_loop_stays_held_back(void **state)
{
    (void)state;
    bdy_crash_backoff b = {0};
    double next_create = 0;
    double last_create = -1;
    unsigned creates = 0;
    unsigned late_short_gaps = 0;
    for (double t = 0; t < 3600; t += 0.25) {
        if (last_create >= 0 && t == last_create + 2) /* it fails */
            bdy_crash_backoff_failed(&b, t, 0);
        if (t >= next_create && bdy_crash_backoff_wait(&b, t) == 0 &&
            (last_create < 0 || t >= last_create + 2)) {
            if (t > 600 && t - last_create < BDY_CRASH_BACKOFF_MAX_S)
                late_short_gaps++;
            last_create = t;
            next_create = t + 0.05; /* the creation rate */
            creates++;
        }
    }
    assert_int_equal(late_short_gaps, 0);
    /* A minute and its 2 s apart after the first few: about 58 in an hour. */
    assert_true(creates >= 50 && creates <= 70);
}

static void test_a_proven_world_starts_over(void **state)
{
    (void)state;
    bdy_crash_backoff b = {0};
    for (int i = 0; i < 10; i++)
        bdy_crash_backoff_failed(&b, 10 + i, 0);
    assert_true(bdy_crash_backoff_wait(&b, 20) > 30);
    /* Ready for a minute and more: the worlds run; replaced at once. */
    bdy_crash_backoff_failed(&b, 20, BDY_CRASH_BACKOFF_PROVEN_S);
    assert_true(near(bdy_crash_backoff_wait(&b, 20), 0));
    /* The count begins again from nothing. */
    bdy_crash_backoff_failed(&b, 21, 0);
    bdy_crash_backoff_failed(&b, 21, 0);
    assert_true(near(bdy_crash_backoff_wait(&b, 21), 0));
    bdy_crash_backoff_failed(&b, 21, 0);
    assert_true(near(bdy_crash_backoff_wait(&b, 21), 1));

    /* A large pool whose worlds crash now and then after running a while
     * never holds back. */
    bdy_crash_backoff big = {0};
    for (double t = 0; t < 600; t += 2) {
        bdy_crash_backoff_failed(&big, t, 120 + t);
        assert_true(near(bdy_crash_backoff_wait(&big, t), 0));
    }
}

static void test_quiet_time_starts_over(void **state)
{
    (void)state;
    bdy_crash_backoff b = {0};
    for (int i = 0; i < 10; i++)
        bdy_crash_backoff_failed(&b, 10, 0);
    assert_true(near(bdy_crash_backoff_wait(&b, 10), 60));
    /* Within the reset period the streak goes on... */
    bdy_crash_backoff_failed(&b, 10 + BDY_CRASH_BACKOFF_RESET_S, 0);
    assert_true(near(bdy_crash_backoff_wait(&b, 10 + BDY_CRASH_BACKOFF_RESET_S), 60));
    /* ...after it, a failure is the first of a new one. */
    double t = 11 + 2 * BDY_CRASH_BACKOFF_RESET_S;
    bdy_crash_backoff_failed(&b, t, 0);
    assert_true(near(bdy_crash_backoff_wait(&b, t), 0));
    assert_int_equal(b.streak, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delays_grow_to_the_cap),
        cmocka_unit_test(test_a_crash_loop_stays_held_back),
        cmocka_unit_test(test_a_proven_world_starts_over),
        cmocka_unit_test(test_quiet_time_starts_over),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
