/* The benchmark runtime against the contract of include/bindery/runtime.h:
 * thousands of worlds without processes, Ready after the configured delay,
 * exits reported after stop(), ports unique while the range allows and
 * reused once released. Every wait is bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bindery/runtime.h"
#include "bindery/util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WORLDS 10000
#define PORT_MIN 30000
#define READY_DELAY_MS 200
#define WAIT_MS 10000 /* the longest any test waits for one event */
#define POLL_MS 5

typedef struct fixture {
    pthread_mutex_t lock;
    unsigned exits[2][WORLDS]; /* per batch ('a', 'b') and world number */
    unsigned exit_ports[2][WORLDS];
    size_t nexits;
    int bad_status; /* the last status other than 0 */
    bdy_world_handle handles[WORLDS];
} fixture;

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static uint64_t now_ms(void)
{
    return bdy_monotonic_ns() / 1000000u;
}

/* Worlds are named "a00042" or "b00042": batch and number. */
static void record_exit_cb(void *data, const char *ns, const char *name, const bdy_world_handle *h,
                           int status)
{
    fixture *f = data;
    (void)ns;
    unsigned batch = name[0] == 'b';
    unsigned i = (unsigned)strtoul(name + 1, NULL, 10);
    pthread_mutex_lock(&f->lock);
    if (i < WORLDS) {
        f->exits[batch][i]++;
        f->exit_ports[batch][i] = h->nports > 0 ? h->ports[0].port : 0;
    }
    if (status != 0 || h->pid != 0)
        f->bad_status = status != 0 ? status : -1;
    f->nexits++;
    pthread_mutex_unlock(&f->lock);
}

static bool wait_exits(fixture *f, size_t n)
{
    for (uint64_t end = now_ms() + WAIT_MS; now_ms() < end; sleep_ms(POLL_MS)) {
        pthread_mutex_lock(&f->lock);
        size_t got = f->nexits;
        pthread_mutex_unlock(&f->lock);
        if (got >= n)
            return true;
    }
    return false;
}

static bdy_runtime *new_runtime(fixture *f, unsigned ready_delay_ms, unsigned port_min,
                                unsigned port_max)
{
    bdy_bench_runtime_opts o = {.ready_delay_ms = ready_delay_ms,
                                .port_min = port_min,
                                .port_max = port_max,
                                .on_exit = record_exit_cb,
                                .data = f};
    bdy_runtime *rt = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy_runtime_bench_new(&o, &rt, &eb);
    if (rc != 0)
        fail_msg("bdy_runtime_bench_new: %s (%s)", bdy_strerror(rc), eb.message);
    assert_string_equal(rt->vt->name, "bench");
    return rt;
}

static bdy_world_spec game_spec(const char *name)
{
    bdy_world_spec s = {.ns = "bench", .name = name, .command = "unused"};
    snprintf(s.ports[0].name, sizeof(s.ports[0].name), "game");
    snprintf(s.ports[0].protocol, sizeof(s.ports[0].protocol), "UDP");
    s.nports = 1;
    return s;
}

static void start_ok(bdy_runtime *rt, const char *name, bdy_world_handle *h)
{
    bdy_world_spec s = game_spec(name);
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = rt->vt->start(rt->ctx, &s, h, &eb);
    if (rc != 0)
        fail_msg("start %s: %s (%s)", name, bdy_strerror(rc), eb.message);
}

static bdy_world_state observe(bdy_runtime *rt, const bdy_world_handle *h)
{
    bdy_world_state st = BDY_WORLD_EXITED;
    assert_int_equal(rt->vt->observe(rt->ctx, "default", "w", h, NULL, 0, &st), 0);
    return st;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    pthread_mutex_init(&f->lock, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    pthread_mutex_destroy(&f->lock);
    free(f);
    return 0;
}

/* Starts WORLDS worlds of batch prefix and checks that each holds a port of
 * its own from [PORT_MIN, PORT_MIN + WORLDS). */
static void start_batch(bdy_runtime *rt, fixture *f, char prefix)
{
    uint8_t *seen = calloc(WORLDS, 1);
    assert_non_null(seen);
    for (unsigned i = 0; i < WORLDS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "%c%05u", prefix, i);
        bdy_world_handle *h = &f->handles[i];
        start_ok(rt, name, h);
        assert_int_equal(h->pid, 0);
        assert_true(h->start_time != 0);
        assert_true(i == 0 || h->start_time > f->handles[i - 1].start_time);
        assert_string_equal(h->address, "127.0.0.1");
        assert_int_equal(h->nports, 1);
        assert_string_equal(h->ports[0].protocol, "UDP");
        unsigned port = h->ports[0].port;
        assert_true(port >= PORT_MIN && port < PORT_MIN + WORLDS);
        assert_int_equal(seen[port - PORT_MIN], 0);
        seen[port - PORT_MIN] = 1;
    }
    free(seen);
}

static void stop_batch(bdy_runtime *rt, fixture *f, unsigned batch, size_t exits_before)
{
    for (unsigned i = 0; i < WORLDS; i++)
        assert_int_equal(rt->vt->stop(rt->ctx, &f->handles[i], 30000), 0);
    /* A second stop of the same world reports nothing more. */
    assert_int_equal(rt->vt->stop(rt->ctx, &f->handles[0], 30000), 0);
    assert_true(wait_exits(f, exits_before + WORLDS));
    sleep_ms(20);
    pthread_mutex_lock(&f->lock);
    assert_int_equal(f->nexits, exits_before + WORLDS);
    assert_int_equal(f->bad_status, 0);
    for (unsigned i = 0; i < WORLDS; i++) {
        assert_int_equal(f->exits[batch][i], 1);
        assert_int_equal(f->exit_ports[batch][i], f->handles[i].ports[0].port);
    }
    pthread_mutex_unlock(&f->lock);
    for (unsigned i = 0; i < WORLDS; i++)
        assert_int_equal(observe(rt, &f->handles[i]), BDY_WORLD_EXITED);
}

static void test_many_worlds(void **state)
{
    fixture *f = *state;
    /* Exactly one port per world: the second batch can only run on ports
     * the first one released. */
    bdy_runtime *rt = new_runtime(f, READY_DELAY_MS, PORT_MIN, PORT_MIN + WORLDS - 1);
    start_batch(rt, f, 'a');
    uint64_t last_started = now_ms();
    assert_int_equal(observe(rt, &f->handles[WORLDS - 1]), BDY_WORLD_RUNNING);
    bdy_errbuf eb;
    bdy_world_spec dup = game_spec("a00007");
    bdy_world_handle h;
    assert_int_equal(rt->vt->start(rt->ctx, &dup, &h, &eb), BDY_EEXISTS);

    bool all_ready = false;
    for (uint64_t end = now_ms() + WAIT_MS; !all_ready && now_ms() < end; sleep_ms(POLL_MS)) {
        all_ready = true;
        for (unsigned i = 0; i < WORLDS && all_ready; i++)
            all_ready = observe(rt, &f->handles[i]) == BDY_WORLD_READY;
    }
    assert_true(all_ready);
    assert_true(now_ms() - last_started >= READY_DELAY_MS - 1);

    stop_batch(rt, f, 0, 0);
    start_batch(rt, f, 'b');
    stop_batch(rt, f, 1, WORLDS);
    bdy_runtime_free(rt);
}

static void test_port_sharing_and_reuse(void **state)
{
    fixture *f = *state;
    bdy_runtime *rt = new_runtime(f, 0, 40000, 40001);
    bdy_world_handle a;
    bdy_world_handle b;
    bdy_world_handle c;
    bdy_world_handle d;
    start_ok(rt, "a00000", &a);
    start_ok(rt, "a00001", &b);
    assert_int_equal(a.ports[0].port, 40000);
    assert_int_equal(b.ports[0].port, 40001);
    /* The range is used up: the next world shares a port rather than fail. */
    start_ok(rt, "a00002", &c);
    assert_int_equal(c.ports[0].port, 40000);
    assert_int_equal(observe(rt, &c), BDY_WORLD_READY);

    assert_int_equal(rt->vt->stop(rt->ctx, &b, 0), 0);
    assert_true(wait_exits(f, 1));
    assert_int_equal(f->exits[0][1], 1);
    /* 40001 has no user left (c shares 40000), so the next world gets it
     * to itself. */
    start_ok(rt, "a00003", &d);
    assert_int_equal(d.ports[0].port, 40001);
    /* Worlds still running, and one exit still queued, at destroy: all freed. */
    assert_int_equal(rt->vt->stop(rt->ctx, &d, 0), 0);
    bdy_runtime_free(rt);
}

static void test_adopt(void **state)
{
    fixture *f = *state;
    bdy_runtime *first = new_runtime(f, 0, 40000, 40001);
    bdy_world_handle a;
    start_ok(first, "a00000", &a);
    assert_int_equal(a.ports[0].port, 40000);
    bdy_runtime_free(first);

    /* A restarted Bindery takes the world back, port included. */
    bdy_runtime *rt = new_runtime(f, 0, 40000, 40001);
    bdy_errbuf eb;
    assert_int_equal(observe(rt, &a), BDY_WORLD_EXITED);
    assert_int_equal(rt->vt->adopt(rt->ctx, "bench", "a00000", &a, &eb), 0);
    assert_int_equal(rt->vt->adopt(rt->ctx, "bench", "a00000", &a, &eb), 0);
    assert_int_equal(observe(rt, &a), BDY_WORLD_READY);
    bdy_world_handle none = a;
    none.start_time = 0;
    assert_int_equal(rt->vt->adopt(rt->ctx, "bench", "a00001", &none, &eb), BDY_ENOTFOUND);
    bdy_world_handle other = a;
    other.start_time++;
    assert_int_equal(rt->vt->adopt(rt->ctx, "bench", "a00000", &other, &eb), BDY_EEXISTS);
    assert_int_equal(rt->vt->adopt(rt->ctx, "bench", "", &other, &eb), BDY_EINVAL);

    bdy_world_handle b;
    start_ok(rt, "a00001", &b);
    assert_int_equal(b.ports[0].port, 40001); /* 40000 belongs to the adopted world */
    assert_true(b.start_time > a.start_time);

    assert_int_equal(rt->vt->stop(rt->ctx, &a, 0), 0);
    assert_int_equal(rt->vt->stop(rt->ctx, &b, 0), 0);
    assert_true(wait_exits(f, 2));
    assert_int_equal(f->exits[0][0], 1);
    assert_int_equal(f->exits[0][1], 1);
    assert_int_equal(f->exit_ports[0][0], 40000);
    bdy_runtime_free(rt);
}

static void test_bad_input(void **state)
{
    fixture *f = *state;
    bdy_runtime *rt = NULL;
    bdy_errbuf eb;
    bdy_bench_runtime_opts o = {.port_min = 10, .port_max = 5, .on_exit = record_exit_cb};
    assert_int_equal(bdy_runtime_bench_new(&o, &rt, &eb), BDY_EINVAL);
    o.port_min = 0;
    assert_int_equal(bdy_runtime_bench_new(&o, &rt, &eb), BDY_EINVAL);
    o.port_min = 1;
    o.port_max = 65536;
    assert_int_equal(bdy_runtime_bench_new(&o, &rt, &eb), BDY_EINVAL);
    o.port_max = 5;
    o.on_exit = NULL;
    assert_int_equal(bdy_runtime_bench_new(&o, &rt, &eb), BDY_EINVAL);
    assert_null(rt);

    rt = new_runtime(f, 0, 40000, 40001);
    bdy_world_spec s = game_spec("a/b");
    bdy_world_handle h;
    assert_int_equal(rt->vt->start(rt->ctx, &s, &h, &eb), BDY_EINVAL);
    s = game_spec("");
    assert_int_equal(rt->vt->start(rt->ctx, &s, &h, &eb), BDY_EINVAL);
    s = game_spec("ok");
    s.nports = BDY_RUNTIME_MAX_PORTS + 1;
    assert_int_equal(rt->vt->start(rt->ctx, &s, &h, &eb), BDY_EINVAL);
    assert_int_equal(rt->vt->start(rt->ctx, NULL, &h, &eb), BDY_EINVAL);
    /* Unknown worlds: stopping is fine, observing says they are gone. */
    bdy_world_handle unknown = {.start_time = 12345};
    assert_int_equal(rt->vt->stop(rt->ctx, &unknown, 0), 0);
    assert_int_equal(observe(rt, &unknown), BDY_WORLD_EXITED);
    bdy_world_state st;
    assert_int_equal(rt->vt->observe(rt->ctx, "default", "w", NULL, NULL, 0, &st), BDY_EINVAL);
    assert_int_equal(rt->vt->stop(rt->ctx, NULL, 0), BDY_EINVAL);
    sleep_ms(10);
    assert_int_equal(f->nexits, 0);
    bdy_runtime_free(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_many_worlds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_port_sharing_and_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
