/* The work queue's client-go semantics: deduplication, one worker per key,
 * requeue after processing, delays with earliest-wins, per-key backoff,
 * depth, shutdown. Timing checks assert order and lower bounds; the only
 * upper bounds are loose ones that tell a capped or forgotten backoff from
 * one that is many seconds long. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bindery/informer.h"
#include "bindery/util.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KEY_BUF 512

static bdy_workqueue *new_queue(unsigned base, unsigned max)
{
    bdy_workqueue_opts o = {.base_delay_ms = base, .max_delay_ms = max};
    bdy_workqueue *q = NULL;
    assert_int_equal(bdy_workqueue_new(&o, &q), 0);
    assert_non_null(q);
    return q;
}

static double elapsed_ms(uint64_t since_ns)
{
    return (double)(bdy_monotonic_ns() - since_ns) / 1e6;
}

/* Takes the next key, failing the test rather than hanging: a helper
 * thread shuts the queue down if nothing arrives within 5 s. */
typedef struct watchdog {
    bdy_workqueue *q;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    pthread_t th;
} watchdog;

static void *watchdog_main(void *p)
{
    watchdog *w = p;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 5;
    pthread_mutex_lock(&w->lock);
    while (!w->done) {
        if (pthread_cond_timedwait(&w->cond, &w->lock, &ts) != 0)
            break;
    }
    bool fire = !w->done;
    pthread_mutex_unlock(&w->lock);
    if (fire)
        bdy_workqueue_shutdown(w->q);
    return NULL;
}

static int get_bounded(bdy_workqueue *q, char *buf, size_t cap)
{
    watchdog w = {.q = q, .done = false};
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.cond, NULL);
    assert_int_equal(pthread_create(&w.th, NULL, watchdog_main, &w), 0);
    int rc = bdy_workqueue_get(q, buf, cap);
    pthread_mutex_lock(&w.lock);
    w.done = true;
    pthread_cond_signal(&w.cond);
    pthread_mutex_unlock(&w.lock);
    pthread_join(w.th, NULL);
    pthread_mutex_destroy(&w.lock);
    pthread_cond_destroy(&w.cond);
    return rc;
}

static void join_bounded(pthread_t th)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 5;
    if (pthread_timedjoin_np(th, NULL, &ts) != 0)
        fail_msg("a getter was not woken within 5 s");
}

static void expect_key(bdy_workqueue *q, const char *want)
{
    char buf[KEY_BUF];
    int rc = get_bounded(q, buf, sizeof(buf));
    if (rc != 0)
        fail_msg("waiting for %s: %s", want, bdy_strerror(rc));
    assert_string_equal(buf, want);
}

static void test_dedup_and_fifo_order(void **state)
{
    (void)state;
    bdy_workqueue *q = new_queue(0, 0);
    assert_int_equal(bdy_workqueue_depth(q), 0);
    bdy_workqueue_add(q, "ns/a");
    bdy_workqueue_add(q, "ns/b");
    bdy_workqueue_add(q, "ns/a");
    bdy_workqueue_add(q, "c");
    bdy_workqueue_add(q, "ns/b");
    assert_int_equal(bdy_workqueue_depth(q), 3);
    expect_key(q, "ns/a");
    expect_key(q, "ns/b");
    assert_int_equal(bdy_workqueue_depth(q), 1);
    expect_key(q, "c");
    assert_int_equal(bdy_workqueue_depth(q), 0);
    bdy_workqueue_done(q, "ns/a");
    bdy_workqueue_done(q, "ns/b");
    bdy_workqueue_done(q, "c");
    /* Done does not requeue a key nobody added again. */
    assert_int_equal(bdy_workqueue_depth(q), 0);
    /* Once done, the key can be queued again. */
    bdy_workqueue_add(q, "ns/a");
    assert_int_equal(bdy_workqueue_depth(q), 1);
    expect_key(q, "ns/a");
    bdy_workqueue_done(q, "ns/a");
    bdy_workqueue_free(q);
}

static void test_readd_during_processing(void **state)
{
    (void)state;
    bdy_workqueue *q = new_queue(0, 0);
    bdy_workqueue_add(q, "k");
    expect_key(q, "k");
    /* Queued while held: not ready (no second worker may take it) ... */
    bdy_workqueue_add(q, "k");
    bdy_workqueue_add(q, "k");
    assert_int_equal(bdy_workqueue_depth(q), 0);
    bdy_workqueue_add(q, "other");
    expect_key(q, "other");
    bdy_workqueue_done(q, "other");
    /* ... and ready exactly once after done. */
    bdy_workqueue_done(q, "k");
    assert_int_equal(bdy_workqueue_depth(q), 1);
    expect_key(q, "k");
    assert_int_equal(bdy_workqueue_depth(q), 0);
    bdy_workqueue_done(q, "k");
    assert_int_equal(bdy_workqueue_depth(q), 0);
    /* A second done, or done for a key never taken, changes nothing. */
    bdy_workqueue_done(q, "k");
    bdy_workqueue_done(q, "never");
    assert_int_equal(bdy_workqueue_depth(q), 0);
    bdy_workqueue_free(q);
}

/* Several workers, a producer re-adding keys all the time: no key is ever
 * held by two workers, and each key's last add is processed after it was
 * made (nothing lost to the "queued while processing" path). */
#define NKEYS 6
#define NWORKERS 4

typedef struct stress {
    bdy_workqueue *q;
    pthread_mutex_t lock;
    int holders[NKEYS];
    int added[NKEYS];     /* version of the newest add */
    int processed[NKEYS]; /* version seen by the newest processing */
    int violations;
    int processed_total;
} stress;

static int key_index(const char *key)
{
    int i = -1;
    if (sscanf(key, "stress/%d", &i) != 1 || i < 0 || i >= NKEYS)
        return -1;
    return i;
}

static void *stress_worker(void *p)
{
    stress *s = p;
    char buf[KEY_BUF];
    while (bdy_workqueue_get(s->q, buf, sizeof(buf)) == 0) {
        int i = key_index(buf);
        pthread_mutex_lock(&s->lock);
        if (i < 0 || ++s->holders[i] != 1)
            s->violations++;
        int version = i >= 0 ? s->added[i] : 0;
        pthread_mutex_unlock(&s->lock);
        usleep(200);
        pthread_mutex_lock(&s->lock);
        if (i >= 0) {
            s->holders[i]--;
            s->processed[i] = version;
        }
        s->processed_total++;
        pthread_mutex_unlock(&s->lock);
        bdy_workqueue_done(s->q, buf);
    }
    return NULL;
}

static void test_no_concurrent_processing(void **state)
{
    (void)state;
    stress s = {.q = new_queue(0, 0)};
    pthread_mutex_init(&s.lock, NULL);
    pthread_t th[NWORKERS];
    for (int i = 0; i < NWORKERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, stress_worker, &s), 0);
    for (int round = 1; round <= 300; round++) {
        int i = round % NKEYS;
        char key[32];
        snprintf(key, sizeof(key), "stress/%d", i);
        pthread_mutex_lock(&s.lock);
        s.added[i] = round; /* before the add, so a worker taking it sees it */
        pthread_mutex_unlock(&s.lock);
        bdy_workqueue_add(s.q, key);
        if (round % 7 == 0)
            usleep(100);
    }
    /* Wait (bounded) until every key's newest add has been processed. */
    bool caught_up = false;
    for (int tries = 0; tries < 500 && !caught_up; tries++) {
        pthread_mutex_lock(&s.lock);
        caught_up = true;
        for (int i = 0; i < NKEYS; i++)
            caught_up = caught_up && s.processed[i] == s.added[i];
        pthread_mutex_unlock(&s.lock);
        if (!caught_up)
            usleep(10000);
    }
    bdy_workqueue_shutdown(s.q);
    for (int i = 0; i < NWORKERS; i++)
        join_bounded(th[i]);
    assert_true(caught_up);
    assert_int_equal(s.violations, 0);
    /* Deduplication did happen, and not everything was dropped. */
    assert_true(s.processed_total >= NKEYS);
    assert_true(s.processed_total <= 300);
    pthread_mutex_destroy(&s.lock);
    bdy_workqueue_free(s.q);
}

static void test_add_after_order_and_earliest_wins(void **state)
{
    (void)state;
    bdy_workqueue *q = new_queue(0, 0);
    uint64_t t0 = bdy_monotonic_ns();
    bdy_workqueue_add_after(q, "c", 300);
    bdy_workqueue_add_after(q, "a", 100);
    bdy_workqueue_add_after(q, "b", 200);
    /* Delayed keys are not ready (checked only if we were not descheduled). */
    size_t depth = bdy_workqueue_depth(q);
    if (elapsed_ms(t0) < 90)
        assert_int_equal(depth, 0);
    expect_key(q, "a");
    assert_true(elapsed_ms(t0) >= 100);
    expect_key(q, "b");
    assert_true(elapsed_ms(t0) >= 200);
    expect_key(q, "c");
    assert_true(elapsed_ms(t0) >= 300);
    bdy_workqueue_done(q, "a");
    bdy_workqueue_done(q, "b");
    bdy_workqueue_done(q, "c");

    /* A later time for a waiting key does not postpone it; an earlier one
     * brings it forward. */
    t0 = bdy_monotonic_ns();
    bdy_workqueue_add_after(q, "early", 50);
    bdy_workqueue_add_after(q, "early", 10000);
    bdy_workqueue_add_after(q, "late", 10000);
    bdy_workqueue_add_after(q, "late", 80);
    expect_key(q, "early");
    assert_true(elapsed_ms(t0) >= 50);
    expect_key(q, "late");
    assert_true(elapsed_ms(t0) >= 80);
    assert_true(elapsed_ms(t0) < 5000);
    bdy_workqueue_done(q, "early");
    bdy_workqueue_done(q, "late");

    /* Zero delay is a plain add. A key both delayed and added now is ready
     * now; when its delayed add comes due while a worker holds it, it runs
     * once more after done. */
    bdy_workqueue_add_after(q, "now", 0);
    assert_int_equal(bdy_workqueue_depth(q), 1);
    bdy_workqueue_add_after(q, "both", 60);
    bdy_workqueue_add(q, "both");
    expect_key(q, "now");
    expect_key(q, "both");
    bdy_workqueue_done(q, "now");
    usleep(100 * 1000);
    bdy_workqueue_done(q, "both");
    assert_int_equal(bdy_workqueue_depth(q), 1);
    expect_key(q, "both");
    bdy_workqueue_done(q, "both");
    assert_int_equal(bdy_workqueue_depth(q), 0);
    bdy_workqueue_free(q);
}

static void test_rate_limited_backoff_and_forget(void **state)
{
    (void)state;
    bdy_workqueue *q = new_queue(30, 100000);
    /* Delays grow 30, 60, 120 ms. */
    const unsigned expect[] = {30, 60, 120};
    for (int i = 0; i < 3; i++) {
        uint64_t t0 = bdy_monotonic_ns();
        bdy_workqueue_add_rate_limited(q, "ns/flaky");
        expect_key(q, "ns/flaky");
        double took = elapsed_ms(t0);
        if (took < expect[i])
            fail_msg("retry %d after %.1f ms, want at least %u", i, took, expect[i]);
        bdy_workqueue_done(q, "ns/flaky");
    }
    /* Failures without a get in between still count (the earliest pending
     * time wins, so the key comes at the 240 ms of the first of them). */
    for (int i = 0; i < 7; i++)
        bdy_workqueue_add_rate_limited(q, "ns/flaky");
    expect_key(q, "ns/flaky");
    bdy_workqueue_done(q, "ns/flaky");
    /* Now at 10 failures the next delay would be 30 * 2^10 ms ≈ 31 s. Other
     * keys have their own counts. */
    uint64_t t0 = bdy_monotonic_ns();
    bdy_workqueue_add_rate_limited(q, "ns/fresh");
    expect_key(q, "ns/fresh");
    assert_true(elapsed_ms(t0) >= 30);
    assert_true(elapsed_ms(t0) < 5000);
    bdy_workqueue_done(q, "ns/fresh");
    /* Forget brings it back to 30 ms. */
    bdy_workqueue_forget(q, "ns/flaky");
    t0 = bdy_monotonic_ns();
    bdy_workqueue_add_rate_limited(q, "ns/flaky");
    expect_key(q, "ns/flaky");
    assert_true(elapsed_ms(t0) >= 30);
    assert_true(elapsed_ms(t0) < 5000);
    bdy_workqueue_done(q, "ns/flaky");
    bdy_workqueue_free(q);

    /* The cap: base 20 ms, max 60 ms; ten failures would be 20 s uncapped. */
    q = new_queue(20, 60);
    for (int i = 0; i < 10; i++)
        bdy_workqueue_add_rate_limited(q, "capped");
    expect_key(q, "capped");
    bdy_workqueue_done(q, "capped");
    t0 = bdy_monotonic_ns();
    bdy_workqueue_add_rate_limited(q, "capped");
    expect_key(q, "capped");
    assert_true(elapsed_ms(t0) >= 60);
    assert_true(elapsed_ms(t0) < 5000);
    bdy_workqueue_done(q, "capped");
    bdy_workqueue_free(q);
}

static void test_depth_counts_ready_only(void **state)
{
    (void)state;
    bdy_workqueue *q = new_queue(0, 0);
    bdy_workqueue_add_after(q, "later", 60000);
    bdy_workqueue_add_rate_limited(q, "retry"); /* default base 5 ms */
    bdy_workqueue_add(q, "x");
    bdy_workqueue_add(q, "y");
    usleep(50 * 1000);
    /* The due retry counts, the key due in a minute does not. */
    assert_int_equal(bdy_workqueue_depth(q), 3);
    expect_key(q, "x");
    assert_int_equal(bdy_workqueue_depth(q), 2);
    /* Adding the delayed key now makes it ready now. */
    bdy_workqueue_add(q, "later");
    assert_int_equal(bdy_workqueue_depth(q), 3);
    bdy_workqueue_done(q, "x");
    bdy_workqueue_free(q); /* frees queued, delayed and held keys alike */
}

typedef struct blocked_getter {
    bdy_workqueue *q;
    int rc;
    pthread_t th;
} blocked_getter;

static void *getter_main(void *p)
{
    blocked_getter *g = p;
    char buf[KEY_BUF];
    g->rc = bdy_workqueue_get(g->q, buf, sizeof(buf));
    return NULL;
}

static void test_shutdown_wakes_getters(void **state)
{
    (void)state;
    bdy_workqueue *q = new_queue(0, 0);
    blocked_getter g[3];
    for (int i = 0; i < 3; i++) {
        g[i] = (blocked_getter){.q = q, .rc = 1};
        assert_int_equal(pthread_create(&g[i].th, NULL, getter_main, &g[i]), 0);
    }
    /* One waits with a deadline (a delayed key), the others without. */
    bdy_workqueue_add_after(q, "far", 60000);
    usleep(50 * 1000);
    bdy_workqueue_shutdown(q);
    for (int i = 0; i < 3; i++) {
        join_bounded(g[i].th);
        assert_int_equal(g[i].rc, BDY_ESHUTDOWN);
    }
    bdy_workqueue_free(q);

    /* After shutdown get refuses even with keys left, and adds are ignored. */
    q = new_queue(0, 0);
    bdy_workqueue_add(q, "left");
    bdy_workqueue_shutdown(q);
    bdy_workqueue_shutdown(q);
    char buf[KEY_BUF];
    assert_int_equal(bdy_workqueue_get(q, buf, sizeof(buf)), BDY_ESHUTDOWN);
    bdy_workqueue_add(q, "new");
    bdy_workqueue_add_after(q, "new2", 1);
    bdy_workqueue_add_rate_limited(q, "new3");
    assert_int_equal(bdy_workqueue_depth(q), 1);
    bdy_workqueue_free(q);
}

static void test_bad_input(void **state)
{
    (void)state;
    assert_int_equal(bdy_workqueue_new(NULL, NULL), BDY_EINVAL);
    bdy_workqueue *q = NULL;
    assert_int_equal(bdy_workqueue_new(NULL, &q), 0); /* defaults */
    char buf[KEY_BUF + 8];

    /* Keys of 512 bytes or more (with the terminator) are refused, never
     * truncated; 511 is fine. */
    char big[600];
    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    bdy_workqueue_add(q, big);
    big[KEY_BUF] = '\0';
    bdy_workqueue_add(q, big);
    bdy_workqueue_add_after(q, big, 0);
    bdy_workqueue_add_rate_limited(q, big);
    usleep(20 * 1000);
    assert_int_equal(bdy_workqueue_depth(q), 0);
    big[KEY_BUF - 1] = '\0';
    bdy_workqueue_add(q, big);
    assert_int_equal(bdy_workqueue_depth(q), 1);

    /* A buffer too small leaves the key queued for a getter with room. */
    char small[8];
    assert_int_equal(bdy_workqueue_get(q, small, sizeof(small)), BDY_ETOOBIG);
    assert_int_equal(bdy_workqueue_depth(q), 1);
    assert_int_equal(bdy_workqueue_get(q, buf, KEY_BUF - 1), BDY_ETOOBIG);
    assert_int_equal(get_bounded(q, buf, KEY_BUF), 0);
    assert_int_equal(strlen(buf), KEY_BUF - 1);
    bdy_workqueue_done(q, buf);

    assert_int_equal(bdy_workqueue_get(q, NULL, 10), BDY_EINVAL);
    assert_int_equal(bdy_workqueue_get(q, buf, 0), BDY_EINVAL);
    assert_int_equal(bdy_workqueue_get(NULL, buf, sizeof(buf)), BDY_EINVAL);
    bdy_workqueue_add(q, NULL);
    bdy_workqueue_add_after(q, NULL, 5);
    bdy_workqueue_add_rate_limited(q, NULL);
    bdy_workqueue_forget(q, NULL);
    bdy_workqueue_forget(q, "unknown");
    bdy_workqueue_done(q, NULL);
    assert_int_equal(bdy_workqueue_depth(q), 0);
    bdy_workqueue_add(NULL, "k");
    bdy_workqueue_shutdown(NULL);
    assert_int_equal(bdy_workqueue_depth(NULL), 0);

    /* An empty key is a key like any other. */
    bdy_workqueue_add(q, "");
    assert_int_equal(get_bounded(q, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");
    bdy_workqueue_done(q, "");
    bdy_workqueue_free(q);
    bdy_workqueue_free(NULL);
}

/* Many distinct keys: the map and FIFO grow and keep FIFO order. */
static void test_many_keys(void **state)
{
    (void)state;
    bdy_workqueue *q = new_queue(0, 0);
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "ns/k%d", i);
        bdy_workqueue_add(q, key);
    }
    for (int i = 0; i < 1000; i += 2) {
        snprintf(key, sizeof(key), "ns/k%d", i);
        bdy_workqueue_add(q, key);
    }
    assert_int_equal(bdy_workqueue_depth(q), 1000);
    char buf[KEY_BUF];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "ns/k%d", i);
        assert_int_equal(bdy_workqueue_get(q, buf, sizeof(buf)), 0);
        assert_string_equal(buf, key);
        bdy_workqueue_done(q, buf);
    }
    assert_int_equal(bdy_workqueue_depth(q), 0);
    /* Delayed keys added in scrambled order come out in due order. The
     * order is only asserted when the adds took less than the 40 ms between
     * due times (a descheduled test thread could reorder them legitimately). */
    const int order[10] = {7, 2, 9, 0, 5, 3, 8, 1, 6, 4};
    uint64_t t0 = bdy_monotonic_ns();
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "d%d", order[i]);
        bdy_workqueue_add_after(q, key, (unsigned)(40 + order[i] * 40));
    }
    bool timely = elapsed_ms(t0) < 30;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(get_bounded(q, buf, sizeof(buf)), 0);
        snprintf(key, sizeof(key), "d%d", i);
        if (timely)
            assert_string_equal(buf, key);
        assert_true(elapsed_ms(t0) >= 40);
        bdy_workqueue_done(q, buf);
    }
    assert_true(elapsed_ms(t0) >= 400);
    bdy_workqueue_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dedup_and_fifo_order),
        cmocka_unit_test(test_readd_during_processing),
        cmocka_unit_test(test_no_concurrent_processing),
        cmocka_unit_test(test_add_after_order_and_earliest_wins),
        cmocka_unit_test(test_rate_limited_backoff_and_forget),
        cmocka_unit_test(test_depth_counts_ready_only),
        cmocka_unit_test(test_shutdown_wakes_getters),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_many_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
