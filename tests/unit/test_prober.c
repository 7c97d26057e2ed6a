/* The prober: TCP and HTTP verdicts against servers in this test, and that
 * a probe of a target that never answers holds no other probe back. */

#include <arpa/inet.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../reconciler/prober.h"
#include "one_shot_server.h"

#define MAX_RESULTS 128
#define WAIT_MS 10000 /* longest a test waits for a verdict */

/* Verdicts by arg (an index into the array). */
typedef struct results {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int verdict[MAX_RESULTS]; /* -1: none yet */
    unsigned count;
    bool on_prober_thread[MAX_RESULTS];
    unsigned misfits; /* callbacks with an arg out of range, or a second one */
} results;

static pthread_t test_thread;

/* Records a verdict; asserts nothing itself (cmocka cannot fail from the
 * prober's thread): teardown checks misfits. */
static void record_cb(void *data, void *arg, bdy__probe_verdict verdict)
{
    results *r = data;
    size_t i = (size_t)(uintptr_t)arg;
    pthread_mutex_lock(&r->lock);
    if (i >= MAX_RESULTS || r->verdict[i] != -1) {
        r->misfits++;
    } else {
        r->verdict[i] = (int)verdict;
        r->on_prober_thread[i] = !pthread_equal(pthread_self(), test_thread);
    }
    r->count++;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

static int setup(void **state)
{
    results *r = calloc(1, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    for (size_t i = 0; i < MAX_RESULTS; i++)
        r->verdict[i] = -1;
    test_thread = pthread_self();
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    results *r = *state;
    assert_int_equal(r->misfits, 0);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r);
    return 0;
}

/* The verdict for index i, waiting for it up to WAIT_MS; -1 if none came. */
static int verdict_of(results *r, size_t i)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&r->lock);
    while (r->verdict[i] < 0 && pthread_cond_timedwait(&r->cond, &r->lock, &until) == 0) {
    }
    int v = r->verdict[i];
    pthread_mutex_unlock(&r->lock);
    return v;
}

static unsigned count_of(results *r)
{
    pthread_mutex_lock(&r->lock);
    unsigned n = r->count;
    pthread_mutex_unlock(&r->lock);
    return n;
}

/* A listening socket on 127.0.0.1 and a free port; its address in sa. */
static int listener(struct sockaddr_in *sa, int backlog)
{
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)sa, sizeof(*sa)), 0);
    assert_int_equal(listen(fd, backlog), 0);
    socklen_t len = sizeof(*sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)sa, &len), 0);
    return fd;
}

static bdy__probe_target target(const char *id, struct sockaddr_in sa, const char *path,
                                unsigned timeout_ms, size_t index)
{
    bdy__probe_target t = {.id = id,
                           .addr = sa,
                           .http_path = path,
                           .timeout_ms = timeout_ms,
                           .arg = (void *)(uintptr_t)index};
    return t;
}

static void test_status_lines_and_paths(void **state)
{
    (void)state;
    const char *ok[] = {"HTTP/1.1 200 OK\r\n", "HTTP/1.0 302 Found", "HTTP/1.1 399\n",
                        "HTTP/1.1 204 "};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        assert_true(bdy__prober_status_ok(ok[i], strlen(ok[i])));
    const char *bad[] = {"HTTP/1.1 503 Unavailable\r\n",
                         "HTTP/1.1 2000 Odd\r\n",
                         "HTTP/1.1 199 Early\r\n",
                         "HTTP/2 200 OK\r\n",
                         "http/1.1 200 OK\r\n",
                         "HTTP/1.1 20",
                         "HTTP/1.1  200 OK\r\n",
                         "HTTP/1.1 2x0 OK\r\n",
                         "garbage\r\n",
                         ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(bdy__prober_status_ok(bad[i], strlen(bad[i])));
    /* The length counts, not a NUL: a status cut short is no status. */
    assert_false(bdy__prober_status_ok("HTTP/1.1 200 OK", 11));

    assert_true(bdy__prober_path_ok("/"));
    assert_true(bdy__prober_path_ok("/healthz?x=1"));
    assert_false(bdy__prober_path_ok(""));
    assert_false(bdy__prober_path_ok("healthz"));
    assert_false(bdy__prober_path_ok("/a b"));
    assert_false(bdy__prober_path_ok("/a\r\nX: y"));
    assert_false(bdy__prober_path_ok("/\x7f"));
    char long_path[BDY__PROBER_PATH_MAX + 1];
    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[0] = '/';
    long_path[sizeof(long_path) - 1] = '\0';
    assert_false(bdy__prober_path_ok(long_path));
    long_path[BDY__PROBER_PATH_MAX - 1] = '\0';
    assert_true(bdy__prober_path_ok(long_path));
}

static void test_tcp(void **state)
{
    results *r = *state;
    bdy__prober *p = NULL;
    assert_int_equal(bdy__prober_new(16, "test-prober", record_cb, r, &p, NULL), 0);
    struct sockaddr_in sa;
    int fd = listener(&sa, 4);
    bdy__probe_target t = target("default/a", sa, NULL, 2000, 0);
    assert_int_equal(bdy__prober_start(p, &t), 0);
    assert_int_equal(verdict_of(r, 0), BDY__PROBE_PASSED);
    assert_true(r->on_prober_thread[0]);
    close(fd); /* the port is closed now: refused */
    t = target("default/a", sa, NULL, 2000, 1);
    assert_int_equal(bdy__prober_start(p, &t), 0);
    assert_int_equal(verdict_of(r, 1), BDY__PROBE_FAILED);
    bdy__prober_free(p);
}

/* One HTTP probe against a server answering reply; the request it got in
 * request (when not NULL). */
static int http_split(results *r, bdy__prober *p, size_t index, const char *path, const char *reply,
                      size_t split, char *request, size_t cap)
{
    one_shot s = {.reply = reply, .split = split};
    one_shot_start(&s);
    bdy__probe_target t = target("default/http", s.addr, path, 5000, index);
    assert_int_equal(bdy__prober_start(p, &t), 0);
    int v = verdict_of(r, index);
    one_shot_stop(&s);
    if (request != NULL)
        snprintf(request, cap, "%s", s.request);
    return v;
}

static int http_once(results *r, bdy__prober *p, size_t index, const char *path, const char *reply,
                     char *request, size_t cap)
{
    return http_split(r, p, index, path, reply, 0, request, cap);
}

static void test_http_answers(void **state)
{
    results *r = *state;
    bdy__prober *p = NULL;
    assert_int_equal(bdy__prober_new(16, "test-prober", record_cb, r, &p, NULL), 0);
    char req[512];
    assert_int_equal(http_once(r, p, 0, "/healthz", "HTTP/1.1 200 OK\r\n\r\n", req, sizeof(req)),
                     BDY__PROBE_PASSED);
    assert_non_null(strstr(req, "GET /healthz HTTP/1.0\r\n"));
    assert_non_null(strstr(req, "Host: 127.0.0.1:"));
    assert_non_null(strstr(req, "User-Agent: bindery-probe\r\n"));
    assert_int_equal(http_once(r, p, 1, "/", "HTTP/1.0 302 Found\r\n\r\n", NULL, 0),
                     BDY__PROBE_PASSED);
    assert_int_equal(http_once(r, p, 2, "/", "HTTP/1.1 503 Unavailable\r\n\r\n", NULL, 0),
                     BDY__PROBE_FAILED);
    assert_int_equal(http_once(r, p, 3, "/", "HTTP/1.1 2000 Odd\r\n\r\n", NULL, 0),
                     BDY__PROBE_FAILED);
    assert_int_equal(http_once(r, p, 4, "/", "garbage\r\n", NULL, 0), BDY__PROBE_FAILED);
    assert_int_equal(http_once(r, p, 5, "/", "", NULL, 0), BDY__PROBE_FAILED);
    /* A status line in two writes: the pieces are put together. */
    assert_int_equal(http_split(r, p, 6, "/", "HTTP/1.1 200 OK\r\n\r\n", 7, NULL, 0),
                     BDY__PROBE_PASSED);
    /* Cut short by the close: the status is what came. */
    assert_int_equal(http_once(r, p, 7, "/", "HTTP/1.1 200", NULL, 0), BDY__PROBE_PASSED);
    assert_int_equal(http_once(r, p, 8, "/", "HTTP/1.1 20", NULL, 0), BDY__PROBE_FAILED);
    bdy__prober_free(p);
}

/* Targets that accept (the kernel completes the handshake for a listening
 * socket) and never answer: each probe waits out its timeout, and a probe
 * of a good target started after them all ends first. */
static void test_silent_targets_hold_no_other_probe(void **state)
{
    results *r = *state;
    enum { SILENT = 60 };
    bdy__prober *p = NULL;
    assert_int_equal(bdy__prober_new(SILENT + 2, "test-prober", record_cb, r, &p, NULL), 0);
    struct sockaddr_in silent;
    int silent_fd = listener(&silent, SILENT * 2);
    char id[32];
    for (size_t i = 0; i < SILENT; i++) {
        snprintf(id, sizeof(id), "default/silent-%zu", i);
        bdy__probe_target t = target(id, silent, "/", 60000, i);
        assert_int_equal(bdy__prober_start(p, &t), 0);
    }
    /* A short one times out on its own, well before the others. */
    bdy__probe_target quick = target("default/quick", silent, "/", 200, SILENT);
    assert_int_equal(bdy__prober_start(p, &quick), 0);
    struct sockaddr_in good;
    int good_fd = listener(&good, 4);
    bdy__probe_target t = target("default/good", good, NULL, 60000, SILENT + 1);
    assert_int_equal(bdy__prober_start(p, &t), 0);
    assert_int_equal(verdict_of(r, SILENT + 1), BDY__PROBE_PASSED);
    assert_int_equal(verdict_of(r, SILENT), BDY__PROBE_FAILED);
    assert_int_equal(count_of(r), 2); /* the silent ones still wait */
    /* Stopping ends them on this thread, each once. */
    bdy__prober_free(p);
    assert_int_equal(count_of(r), SILENT + 2);
    for (size_t i = 0; i < SILENT; i++) {
        assert_int_equal(r->verdict[i], BDY__PROBE_CANCELLED);
        assert_false(r->on_prober_thread[i]);
    }
    close(silent_fd);
    close(good_fd);
}

/* A probe of several checks runs them one after another under one id and
 * in one slot: it passes when all do and fails at the first that does not,
 * each check within its own timeout; the slot stays taken throughout. */
static void test_checks_in_turn(void **state)
{
    results *r = *state;
    bdy__prober *p = NULL;
    assert_int_equal(bdy__prober_new(1, "test-prober", record_cb, r, &p, NULL), 0);
    struct sockaddr_in good;
    int good_fd = listener(&good, 8);
    struct sockaddr_in silent;
    int silent_fd = listener(&silent, 8);
    struct sockaddr_in closed;
    close(listener(&closed, 1));

    /* TCP, then an HTTP check that answers 200, then TCP again. */
    one_shot s = {.reply = "HTTP/1.1 200 OK\r\n\r\n"};
    one_shot_start(&s);
    bdy__probe_check all_good[] = {{.addr = s.addr, .http_path = "/up", .timeout_ms = 5000},
                                   {.addr = good, .timeout_ms = 5000}};
    bdy__probe_target t = target("default/w", good, NULL, 5000, 0);
    t.more = all_good;
    t.nmore = 2;
    assert_int_equal(bdy__prober_start(p, &t), 0);
    assert_int_equal(verdict_of(r, 0), BDY__PROBE_PASSED);
    one_shot_stop(&s);
    assert_non_null(strstr(s.request, "GET /up HTTP/1.0"));

    /* A refused second check fails it, and the third never runs. */
    bdy__probe_check refused[] = {{.addr = closed, .timeout_ms = 5000},
                                  {.addr = good, .timeout_ms = 5000}};
    t = target("default/w", good, NULL, 5000, 1);
    t.more = refused;
    t.nmore = 2;
    assert_int_equal(bdy__prober_start(p, &t), 0);
    assert_int_equal(verdict_of(r, 1), BDY__PROBE_FAILED);

    /* A silent HTTP second check times out on its own timeout, counted
     * from its own start, not the first check's: probe 2's first check
     * has a short timeout (0.7 s), its second a long one (2.5 s); probe 3,
     * one check, 1.5 s. Probe 3 ends first. Meanwhile the id and the slot
     * stay taken. */
    bdy__prober_free(p);
    assert_int_equal(bdy__prober_new(2, "test-prober", record_cb, r, &p, NULL), 0);
    bdy__probe_check hung[] = {{.addr = silent, .http_path = "/", .timeout_ms = 2500}};
    t = target("default/w", good, NULL, 700, 2);
    t.more = hung;
    t.nmore = 1;
    assert_int_equal(bdy__prober_start(p, &t), 0);
    bdy__probe_target single = target("default/single", silent, "/", 1500, 3);
    assert_int_equal(bdy__prober_start(p, &single), 0);
    bdy__probe_target other = target("default/other", good, NULL, 5000, 4);
    assert_int_equal(bdy__prober_start(p, &other), BDY_EBUSY);
    other = target("default/w", good, NULL, 5000, 4);
    assert_int_equal(bdy__prober_start(p, &other), BDY_EEXISTS);
    assert_int_equal(verdict_of(r, 3), BDY__PROBE_FAILED);
    pthread_mutex_lock(&r->lock);
    int pending = r->verdict[2];
    pthread_mutex_unlock(&r->lock);
    assert_int_equal(pending, -1); /* its second check still has time */
    assert_int_equal(verdict_of(r, 2), BDY__PROBE_FAILED);
    assert_int_equal(count_of(r), 4);

    /* More checks than a probe takes, or a list that is missing. */
    bdy__probe_check many[BDY__PROBER_CHECKS_MAX];
    for (size_t i = 0; i < BDY__PROBER_CHECKS_MAX; i++)
        many[i] = (bdy__probe_check){.addr = good, .timeout_ms = 100};
    t = target("default/w", good, NULL, 5000, 5);
    t.more = many;
    t.nmore = BDY__PROBER_CHECKS_MAX;
    assert_int_equal(bdy__prober_start(p, &t), BDY_EINVAL);
    t.more = NULL;
    t.nmore = 1;
    assert_int_equal(bdy__prober_start(p, &t), BDY_EINVAL);
    bdy__prober_free(p);
    close(good_fd);
    close(silent_fd);
}

static void test_ids_and_limits(void **state)
{
    results *r = *state;
    bdy__prober *p = NULL;
    assert_int_equal(bdy__prober_new(2, "test-prober", record_cb, r, &p, NULL), 0);
    struct sockaddr_in silent;
    int silent_fd = listener(&silent, 8);
    bdy__probe_target a = target("default/a", silent, "/", 60000, 0);
    assert_int_equal(bdy__prober_start(p, &a), 0);
    /* One probe per id at a time. */
    bdy__probe_target again = target("default/a", silent, NULL, 60000, 1);
    assert_int_equal(bdy__prober_start(p, &again), BDY_EEXISTS);
    /* b waits for an answer that never comes, for 3 s. */
    bdy__probe_target b = target("default/b", silent, "/", 3000, 2);
    assert_int_equal(bdy__prober_start(p, &b), 0);
    /* At most two at once. */
    bdy__probe_target c = target("default/c", silent, NULL, 5000, 3);
    assert_int_equal(bdy__prober_start(p, &c), BDY_EBUSY);
    /* b's timeout makes room; c connects (the kernel accepts for the
     * listener), and a TCP probe needs no more. */
    assert_int_equal(verdict_of(r, 2), BDY__PROBE_FAILED);
    assert_int_equal(bdy__prober_start(p, &c), 0);
    assert_int_equal(verdict_of(r, 3), BDY__PROBE_PASSED);

    bdy__probe_target bad = target("default/d", silent, "no-slash", 200, 4);
    assert_int_equal(bdy__prober_start(p, &bad), BDY_EINVAL);
    char long_id[BDY__PROBER_ID_MAX + 1];
    memset(long_id, 'x', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    bad = target(long_id, silent, NULL, 200, 4);
    assert_int_equal(bdy__prober_start(p, &bad), BDY_EINVAL);
    bad = target("", silent, NULL, 200, 4);
    assert_int_equal(bdy__prober_start(p, &bad), BDY_EINVAL);
    assert_int_equal(bdy__prober_start(p, NULL), BDY_EINVAL);

    bdy__prober_free(p);
    assert_int_equal(r->verdict[0], BDY__PROBE_CANCELLED);
    assert_int_equal(r->verdict[1], -1);
    assert_int_equal(r->verdict[4], -1);
    assert_int_equal(count_of(r), 3);
    close(silent_fd);
    bdy__prober_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_lines_and_paths),
        cmocka_unit_test_setup_teardown(test_tcp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_targets_hold_no_other_probe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checks_in_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ids_and_limits, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
