/* The process runtime against the contract of include/bindery/runtime.h,
 * with real processes: the example world (arena-world, found through
 * ARENA_WORLD_BIN or next to this test binary) and /bin/sh. Every test
 * works in its own temporary folder, bounds every wait, and stops every
 * process it starts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bindery/runtime.h"
#include "bindery/util.h"
/* The stray finder's parser is internal to the runtimes. */
#include "../../reconciler/runtime_internal.h"
#include "one_shot_server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAIT_MS 5000 /* the longest any test waits for one event */
#define POLL_MS 20
#define MAX_EXITS 16

typedef struct exit_rec {
    char ns[64];
    char name[64];
    int64_t pid;
    unsigned port;
    int status;
} exit_rec;

#define MAX_ENDINGS 8

typedef struct fixture {
    char dir[64];
    char logs[96];
    char arena[PATH_MAX];
    unsigned port_base; /* this run's range: [port_base, port_base + 99] */
    pthread_mutex_t lock;
    exit_rec exits[MAX_EXITS];
    size_t nexits;
    pthread_cond_t verdict_cond; /* with lock: verdicts, last_* */
    unsigned verdicts;
    int last_rc;
    bdy_world_state last_state;
    int64_t last_pid;
    /* Worlds told over early (on_ending), by name. */
    char endings[MAX_ENDINGS][64];
    size_t nendings;
    pid_t group;        /* a process group a test made itself, killed at teardown */
    pid_t leftovers[8]; /* processes a test made itself, killed at teardown */
    size_t nleftovers;
} fixture;

/* ---- helpers ------------------------------------------------------------- */

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static uint64_t now_ms(void)
{
    return bdy_monotonic_ns() / 1000000u;
}

static void record_exit_cb(void *data, const char *ns, const char *name, const bdy_world_handle *h,
                           int status)
{
    fixture *f = data;
    pthread_mutex_lock(&f->lock);
    if (f->nexits < MAX_EXITS) {
        exit_rec *r = &f->exits[f->nexits++];
        snprintf(r->ns, sizeof(r->ns), "%s", ns);
        snprintf(r->name, sizeof(r->name), "%s", name);
        r->pid = h->pid;
        r->port = h->nports > 0 ? h->ports[0].port : 0;
        r->status = status;
    }
    pthread_mutex_unlock(&f->lock);
}

/* Waits up to WAIT_MS for the exit of the world called name. */
static bool wait_exit(fixture *f, const char *name, exit_rec *out)
{
    memset(out, 0, sizeof(*out));
    for (uint64_t end = now_ms() + WAIT_MS; now_ms() < end; sleep_ms(POLL_MS)) {
        pthread_mutex_lock(&f->lock);
        for (size_t i = 0; i < f->nexits; i++) {
            if (strcmp(f->exits[i].name, name) == 0) {
                *out = f->exits[i];
                pthread_mutex_unlock(&f->lock);
                return true;
            }
        }
        pthread_mutex_unlock(&f->lock);
    }
    return false;
}

static size_t exit_count(fixture *f)
{
    pthread_mutex_lock(&f->lock);
    size_t n = f->nexits;
    pthread_mutex_unlock(&f->lock);
    return n;
}

static void record_probe_cb(void *data, const char *ns, const char *name, const bdy_world_handle *h,
                            int rc, bdy_world_state state)
{
    fixture *f = data;
    (void)ns;
    (void)name;
    pthread_mutex_lock(&f->lock);
    f->verdicts++;
    f->last_rc = rc;
    f->last_state = state;
    f->last_pid = h->pid;
    pthread_cond_broadcast(&f->verdict_cond);
    pthread_mutex_unlock(&f->lock);
}

static void record_ending_cb(void *data, const char *ns, const char *name,
                             const bdy_world_handle *h)
{
    fixture *f = data;
    (void)ns;
    (void)h;
    pthread_mutex_lock(&f->lock);
    if (f->nendings < MAX_ENDINGS)
        snprintf(f->endings[f->nendings++], sizeof(f->endings[0]), "%s", name);
    pthread_mutex_unlock(&f->lock);
}

/* How many times world name was told over early. */
static size_t ending_count(fixture *f, const char *name)
{
    size_t n = 0;
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->nendings; i++)
        n += strcmp(f->endings[i], name) == 0;
    pthread_mutex_unlock(&f->lock);
    return n;
}

/* Waits up to WAIT_MS for world name to be told over early. */
static bool wait_ending(fixture *f, const char *name)
{
    for (uint64_t end = now_ms() + WAIT_MS; now_ms() < end; sleep_ms(POLL_MS))
        if (ending_count(f, name) > 0)
            return true;
    return false;
}

/* The fixture whose runtime the test runs (for look()). */
static fixture *current;

/* observe() through to its answer: when it starts a probe, the verdict
 * that the probe callback brings (at most WAIT_MS later). Observes the
 * world as default/probe-test. */
static int look(bdy_runtime *rt, const bdy_world_handle *h, const bdy_probe *p, bdy_world_state *st)
{
    fixture *f = current;
    pthread_mutex_lock(&f->lock);
    unsigned before = f->verdicts;
    pthread_mutex_unlock(&f->lock);
    int rc = rt->vt->observe(rt->ctx, "default", "probe-test", h, p, p ? 1 : 0, st);
    if (rc != 0 || *st != BDY_WORLD_PROBING)
        return rc;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&f->lock);
    while (f->verdicts == before &&
           pthread_cond_timedwait(&f->verdict_cond, &f->lock, &until) == 0) {
    }
    bool came = f->verdicts != before;
    rc = f->last_rc;
    *st = f->last_state;
    if (came)
        assert_int_equal(f->last_pid, h->pid);
    pthread_mutex_unlock(&f->lock);
    if (!came)
        fail_msg("no probe verdict within %d ms", WAIT_MS);
    return rc;
}

/* A runtime of instance (NULL: none) handing out ports port_min..port_max. */
static bdy_runtime *new_runtime_of(fixture *f, unsigned port_min, unsigned port_max,
                                   const char *instance)
{
    bdy_process_runtime_opts o = {.port_min = port_min,
                                  .port_max = port_max,
                                  .work_dir = f->dir,
                                  .log_dir = f->logs,
                                  .instance = instance,
                                  .on_exit = record_exit_cb,
                                  .on_probe = record_probe_cb,
                                  .on_ending = record_ending_cb,
                                  .data = f};
    current = f;
    bdy_runtime *rt = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy_runtime_process_new(&o, &rt, &eb);
    if (rc != 0)
        fail_msg("bdy_runtime_process_new: %s (%s)", bdy_strerror(rc), eb.message);
    assert_string_equal(rt->vt->name, "process");
    return rt;
}

static bdy_runtime *new_runtime(fixture *f, unsigned port_min, unsigned port_max)
{
    return new_runtime_of(f, port_min, port_max, NULL);
}

/* A spec for arena-world serving a UDP game port, probed over TCP. */
static bdy_world_spec arena_spec(fixture *f, const char *name)
{
    bdy_world_spec s = {.ns = "default", .name = name, .uid = "uid-1", .command = f->arena};
    s.args[s.nargs++] = "--port";
    s.args[s.nargs++] = "{port:game}";
    s.args[s.nargs++] = "--name";
    s.args[s.nargs++] = "{name}";
    snprintf(s.ports[0].name, sizeof(s.ports[0].name), "game");
    snprintf(s.ports[0].protocol, sizeof(s.ports[0].protocol), "UDP");
    s.nports = 1;
    s.readiness[0].kind = BDY_PROBE_TCP;
    snprintf(s.readiness[0].port, sizeof(s.readiness[0].port), "game");
    s.readiness[0].timeout_ms = 500;
    s.grace_ms = 5000;
    return s;
}

static bdy_world_spec shell_spec(const char *name, const char *script)
{
    bdy_world_spec s = {.ns = "default", .name = name, .command = "/bin/sh"};
    s.args[s.nargs++] = "-c";
    s.args[s.nargs++] = script;
    s.grace_ms = 5000;
    return s;
}

static void start_ok(bdy_runtime *rt, const bdy_world_spec *s, bdy_world_handle *h)
{
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = rt->vt->start(rt->ctx, s, h, &eb);
    if (rc != 0)
        fail_msg("start %s: %s (%s)", s->name, bdy_strerror(rc), eb.message);
}

static int start_err(bdy_runtime *rt, const bdy_world_spec *s, bdy_errbuf *eb)
{
    bdy_world_handle h;
    bdy_errbuf_clear(eb);
    return rt->vt->start(rt->ctx, s, &h, eb);
}

/* Observes until READY, at most WAIT_MS. */
static bool wait_ready(bdy_runtime *rt, const bdy_world_handle *h, const bdy_probe *p)
{
    for (uint64_t end = now_ms() + WAIT_MS; now_ms() < end; sleep_ms(POLL_MS)) {
        bdy_world_state st = BDY_WORLD_EXITED;
        assert_int_equal(look(rt, h, p, &st), 0);
        if (st == BDY_WORLD_READY)
            return true;
        assert_int_equal(st, BDY_WORLD_RUNNING);
    }
    return false;
}

/* State and process group from /proc/PID/stat; state 0 when there is no
 * such process. */
static char proc_state(int64_t pid, int64_t *pgrp, uint64_t *start_time)
{
    char path[64];
    char buf[1024];
    snprintf(path, sizeof(path), "/proc/%lld/stat", (long long)pid);
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return 0;
    char state = 0;
    long long group = 0;
    unsigned long long start = 0;
    /* state ppid pgrp, then 16 fields to skip, then starttime (field 22) */
    if (sscanf(p + 1,
               " %c %*d %lld %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
               "%*d %*d %llu",
               &state, &group, &start) != 3)
        return 0;
    if (pgrp != NULL)
        *pgrp = group;
    if (start_time != NULL)
        *start_time = start;
    return state;
}

static bool alive(int64_t pid, int64_t *pgrp)
{
    char state = proc_state(pid, pgrp, NULL);
    return state != 0 && state != 'Z';
}

/* Whether any process other than a zombie is still in group pgid. */
static bool group_has_live(int64_t pgid)
{
    bool live = false;
    DIR *d = opendir("/proc");
    assert_non_null(d);
    for (struct dirent *e = readdir(d); e != NULL && !live; e = readdir(d)) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        int64_t group = 0;
        char state = proc_state(strtoll(e->d_name, NULL, 10), &group, NULL);
        live = state != 0 && state != 'Z' && group == pgid;
    }
    closedir(d);
    return live;
}

/* True when both TCP (with SO_REUSEADDR, as a restarted world binds) and
 * UDP can bind port on 127.0.0.1: nothing holds it. */
static bool port_bindable(unsigned port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    setsockopt(t, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    bool ok = bind(t, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
              bind(u, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(t);
    close(u);
    return ok;
}

/* A port of this run's range that nothing holds. */
static unsigned free_port(fixture *f)
{
    for (unsigned p = f->port_base + 50; p < f->port_base + 100; p++)
        if (port_bindable(p))
            return p;
    fail_msg("no free port near %u", f->port_base);
    return 0;
}

static int connect_to(unsigned port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 2};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void assert_tcp_pong(unsigned port, const char *expect)
{
    char buf[64];
    int fd = connect_to(port);
    assert_true(fd >= 0);
    assert_int_equal(send(fd, "ping\n", 5, MSG_NOSIGNAL), 5);
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
    close(fd);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, expect);
}

static void assert_udp_pong(unsigned port, const char *expect)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 2};
    char buf[64];
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(sendto(fd, "ping", 4, 0, (struct sockaddr *)&sa, sizeof(sa)), 4);
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
    close(fd);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, expect);
}

/* posix_spawn reports a failed exec or chdir as an error. Valgrind cannot
 * emulate the vfork that this relies on; there the world runs and exits
 * with 127 instead. Either way the failure must surface. */
static void assert_spawn_fails(fixture *f, bdy_runtime *rt, const bdy_world_spec *s)
{
    bdy_errbuf eb;
    bdy_world_handle h;
    int rc = rt->vt->start(rt->ctx, s, &h, &eb);
    if (rc == 0) {
        exit_rec r;
        assert_true(wait_exit(f, s->name, &r));
        assert_int_equal(r.status, 127);
    } else {
        assert_int_equal(rc, BDY_ENOTFOUND);
        assert_non_null(strstr(eb.message, "cannot start world"));
    }
}

static bool file_contains(const char *path, const char *needle)
{
    char *text = NULL;
    size_t len = 0;
    if (bdy_read_file(path, 1 << 20, &text, &len) != 0)
        return false;
    bool found = strstr(text, needle) != NULL;
    free(text);
    return found;
}

static bool wait_file(const char *path)
{
    for (uint64_t end = now_ms() + WAIT_MS; now_ms() < end; sleep_ms(POLL_MS))
        if (access(path, F_OK) == 0)
            return true;
    return false;
}

/* ---- fixture ------------------------------------------------------------- */

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/bdy-rtproc-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->logs, sizeof(f->logs), "%s/logs/worlds", f->dir);
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->verdict_cond, NULL);
    const char *bin = getenv("ARENA_WORLD_BIN");
    if (bin != NULL) {
        snprintf(f->arena, sizeof(f->arena), "%s", bin);
    } else {
        char self[PATH_MAX - 16]; /* room for "/arena-world" */
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        assert_true(n > 0);
        self[n] = '\0';
        *strrchr(self, '/') = '\0';
        snprintf(f->arena, sizeof(f->arena), "%s/arena-world", self);
    }
    if (access(f->arena, X_OK) != 0)
        fail_msg("arena-world not found at %s (set ARENA_WORLD_BIN)", f->arena);
    /* Spread concurrent runs over the ports; the runtime checks every port
     * it hands out anyway. */
    /* Between the default range (20000-29999) and the kernel's ephemeral
     * ports (32768 up), where no client socket takes a port a world was
     * given but has not bound yet. */
    f->port_base = 30000 + (unsigned)(getpid() % 27) * 100;
    *state = f;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->group > 0) {
        kill(-f->group, SIGKILL);
        waitpid(f->group, NULL, WNOHANG);
    }
    /* Only those still our children: a pid the runtime reaped may be
     * another process's by now. */
    for (size_t i = 0; i < f->nleftovers; i++) {
        if (waitpid(f->leftovers[i], NULL, WNOHANG) == 0) {
            kill(f->leftovers[i], SIGKILL);
            waitpid(f->leftovers[i], NULL, 0);
        }
    }
    assert_int_equal(nftw(f->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS), 0);
    pthread_cond_destroy(&f->verdict_cond);
    pthread_mutex_destroy(&f->lock);
    free(f);
    return 0;
}

/* ---- tests --------------------------------------------------------------- */

static void test_start_probe_ping_stop(void **state)
{
    fixture *f = *state;
    bdy_runtime *rt = new_runtime(f, f->port_base, f->port_base + 99);
    bdy_world_spec s = arena_spec(f, "w1");
    s.args[s.nargs++] = "--ready-delay-ms";
    s.args[s.nargs++] = "500";
    bdy_world_handle h;
    start_ok(rt, &s, &h);
    assert_true(h.pid > 0);
    assert_true(h.start_time > 0);
    assert_string_equal(h.address, "127.0.0.1");
    assert_int_equal(h.nports, 1);
    assert_string_equal(h.ports[0].name, "game");
    assert_string_equal(h.ports[0].protocol, "UDP");
    unsigned port = h.ports[0].port;
    assert_true(port >= f->port_base && port <= f->port_base + 99);

    /* The world holds its listen back: a real probe sees it RUNNING first. */
    bdy_world_state st = BDY_WORLD_EXITED;
    assert_int_equal(look(rt, &h, &s.readiness[0], &st), 0);
    assert_int_equal(st, BDY_WORLD_RUNNING);
    assert_true(wait_ready(rt, &h, &s.readiness[0]));
    assert_tcp_pong(port, "pong w1\n");
    assert_udp_pong(port, "pong w1");

    /* Stopped (SIGSTOP), it is not ready, though its port still accepts. */
    assert_int_equal(kill((pid_t)h.pid, SIGSTOP), 0);
    for (uint64_t end = now_ms() + WAIT_MS; now_ms() < end; sleep_ms(POLL_MS))
        if (proc_state(h.pid, NULL, NULL) == 'T')
            break;
    assert_int_equal(proc_state(h.pid, NULL, NULL), 'T');
    assert_int_equal(look(rt, &h, &s.readiness[0], &st), 0);
    assert_int_equal(st, BDY_WORLD_RUNNING);
    assert_int_equal(kill((pid_t)h.pid, SIGCONT), 0);
    assert_true(wait_ready(rt, &h, &s.readiness[0]));

    /* A world of the same name cannot run twice. */
    bdy_errbuf eb;
    assert_int_equal(start_err(rt, &s, &eb), BDY_EEXISTS);

    /* It is not in Bindery's process group: a signal to that group misses it. */
    int64_t pgrp = 0;
    assert_true(alive(h.pid, &pgrp));
    assert_int_equal(pgrp, h.pid);
    assert_int_not_equal(pgrp, getpgrp());

    uint64_t t0 = now_ms();
    assert_int_equal(rt->vt->stop(rt->ctx, &h, 5000), 0);
    exit_rec r;
    assert_true(wait_exit(f, "w1", &r));
    assert_true(now_ms() - t0 < 2000); /* SIGTERM, not the grace period, ended it */
    assert_int_equal(r.status, 0);
    assert_string_equal(r.ns, "default");
    assert_int_equal(r.pid, h.pid);
    assert_int_equal(r.port, port);

    char zs = proc_state(h.pid, NULL, NULL);
    assert_true(zs != 'Z'); /* reaped: gone (0) or another process, never a zombie */
    assert_int_equal(waitpid((pid_t)h.pid, NULL, WNOHANG), -1);
    assert_int_equal(look(rt, &h, &s.readiness[0], &st), 0);
    assert_int_equal(st, BDY_WORLD_EXITED);
    assert_true(port_bindable(port));
    assert_int_equal(rt->vt->stop(rt->ctx, &h, 100), 0); /* gone is fine */

    char log[256];
    snprintf(log, sizeof(log), "%s/default_w1.log", f->logs);
    assert_true(file_contains(log, "listening on 127.0.0.1"));
    assert_true(file_contains(log, "stopping"));
    assert_int_equal(exit_count(f), 1);
    bdy_runtime_free(rt);
}

static void test_crash_and_port_exhaustion(void **state)
{
    fixture *f = *state;
    unsigned port = free_port(f);
    bdy_runtime *rt = new_runtime(f, port, port);
    bdy_world_spec a = arena_spec(f, "crasher");
    a.args[a.nargs++] = "--crash-after-ms";
    a.args[a.nargs++] = "300";
    bdy_world_handle ha;
    start_ok(rt, &a, &ha);
    assert_int_equal(ha.ports[0].port, port);

    bdy_world_spec b = arena_spec(f, "second");
    bdy_errbuf eb;
    assert_int_equal(start_err(rt, &b, &eb), BDY_EBUSY);
    assert_non_null(strstr(eb.message, "no free host port"));
    /* Two ports on a range of one can never be had: refused, not a
     * shortage to wait out. */
    bdy_world_spec two = arena_spec(f, "two-ports");
    two.ports[1] = two.ports[0];
    snprintf(two.ports[1].name, sizeof(two.ports[1].name), "voice");
    two.nports = 2;
    assert_int_equal(start_err(rt, &two, &eb), BDY_EINVAL);
    assert_non_null(strstr(eb.message, "more than the 1 of runtime.portMin"));

    exit_rec r;
    assert_true(wait_exit(f, "crasher", &r));
    assert_int_equal(r.status, 3);

    /* The crashed world's port is free again and handed out once more. */
    bdy_world_handle hb;
    start_ok(rt, &b, &hb);
    assert_int_equal(hb.ports[0].port, port);
    assert_true(wait_ready(rt, &hb, &b.readiness[0]));
    assert_int_equal(rt->vt->stop(rt->ctx, &hb, 5000), 0);
    assert_true(wait_exit(f, "second", &r));
    assert_int_equal(r.status, 0);
    bdy_runtime_free(rt);
}

/* A port held on another address than 127.0.0.1 (here 127.0.0.2) is not
 * handed out: a world binding every address would fail on it. */
static void test_port_held_elsewhere_is_skipped(void **state)
{
    fixture *f = *state;
    unsigned port = free_port(f);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1);
    int holder = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(holder >= 0);
    assert_int_equal(bind(holder, (struct sockaddr *)&sa, sizeof(sa)), 0);
    bdy_runtime *rt = new_runtime(f, port, port);
    bdy_world_spec a = arena_spec(f, "elsewhere");
    bdy_errbuf eb;
    assert_int_equal(start_err(rt, &a, &eb), BDY_EBUSY);
    assert_non_null(strstr(eb.message, "no free host port"));
    close(holder);
    /* Held on [::1] only (where the host has IPv6): skipped too. */
    struct sockaddr_in6 sa6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
    sa6.sin6_addr = in6addr_loopback;
    holder = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (holder >= 0 && bind(holder, (struct sockaddr *)&sa6, sizeof(sa6)) == 0) {
        assert_int_equal(start_err(rt, &a, &eb), BDY_EBUSY);
        assert_non_null(strstr(eb.message, "no free host port"));
    } else {
        printf("# no IPv6 here: the [::1] half is skipped\n");
    }
    if (holder >= 0)
        close(holder);
    bdy_runtime_free(rt);
}

static void test_sigkill_after_grace(void **state)
{
    fixture *f = *state;
    bdy_runtime *rt = new_runtime(f, f->port_base, f->port_base + 99);
    /* The shell ignores SIGTERM, and so does the sleep it starts; the
     * marker file says the trap is in place. */
    bdy_world_spec s = shell_spec("stubborn", "trap '' TERM; : > trapped; sleep 30; true");
    bdy_world_handle h;
    start_ok(rt, &s, &h);
    char marker[128];
    snprintf(marker, sizeof(marker), "%s/trapped", f->dir);
    assert_true(wait_file(marker));

    uint64_t t0 = now_ms();
    assert_int_equal(rt->vt->stop(rt->ctx, &h, 300), 0);
    exit_rec r;
    assert_true(wait_exit(f, "stubborn", &r));
    uint64_t took = now_ms() - t0;
    assert_int_equal(r.status, 128 + SIGKILL);
    assert_true(took >= 250 && took < 4000);
    /* The sleep went with the shell: nothing of the world's group is left. */
    bool gone = false;
    for (uint64_t end = now_ms() + WAIT_MS; !gone && now_ms() < end; sleep_ms(POLL_MS))
        gone = !group_has_live(h.pid);
    assert_true(gone);
    bdy_runtime_free(rt);
}

/* Starts arena-world outside any runtime, in its own session, as a world
 * left behind by an earlier Bindery. */
static pid_t spawn_arena_env(fixture *f, unsigned port, const char *name, char *const envp[])
{
    char port_text[16];
    snprintf(port_text, sizeof(port_text), "%u", port);
    char *argv[] = {f->arena, "--port", port_text, "--name", (char *)name, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
    pid_t pid = 0;
    char *const none[] = {NULL};
    assert_int_equal(posix_spawn(&pid, f->arena, &fa, &attr, argv, envp ? envp : none), 0);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    for (uint64_t end = now_ms() + WAIT_MS; now_ms() < end; sleep_ms(POLL_MS)) {
        int fd = connect_to(port);
        if (fd >= 0) {
            close(fd);
            return pid;
        }
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fail_msg("arena-world did not listen on %u", port);
    return 0;
}

static pid_t spawn_arena(fixture *f, unsigned port, const char *name)
{
    return spawn_arena_env(f, port, name, NULL);
}

/* A world uid of this run: a process left behind by an earlier run that
 * failed must not be taken for this run's world. */
static void run_uid(char out[64], const char *base)
{
    snprintf(out, 64, "uid-%s-%d", base, (int)getpid());
}

/* arena-world as an earlier run left it for world name: a uid of this run
 * (into uid), a free port (into *port), instance (NULL: none). */
static pid_t spawn_leftover(fixture *f, const char *name, const char *instance, char uid[64],
                            unsigned *port)
{
    run_uid(uid, name);
    *port = free_port(f);
    char v_uid[128];
    char v_name[128];
    char v_port[64];
    char v_inst[128];
    snprintf(v_uid, sizeof(v_uid), "BINDERY_WORLD_UID=%s", uid);
    snprintf(v_name, sizeof(v_name), "BINDERY_WORLD_NAME=%s", name);
    snprintf(v_port, sizeof(v_port), "BINDERY_PORT_GAME=%u", *port);
    snprintf(v_inst, sizeof(v_inst), "BINDERY_INSTANCE=%s", instance ? instance : "");
    char *const envp[] = {
        "PATH=/usr/bin:/bin",     v_uid, v_name, "BINDERY_WORLD_NAMESPACE=default", v_port,
        instance ? v_inst : NULL, NULL};
    pid_t pid = spawn_arena_env(f, *port, name, envp);
    if (f->nleftovers < sizeof(f->leftovers) / sizeof(f->leftovers[0]))
        f->leftovers[f->nleftovers++] = pid;
    return pid;
}

/* Whether our child pid runs: not gone, not a zombie (kill(pid, 0) says
 * yes to both). */
static bool still_runs(pid_t pid)
{
    return waitpid(pid, NULL, WNOHANG) == 0;
}

/* arena-world started as the process runtime starts a world, with its
 * identity in the environment, as if Bindery stopped before recording it:
 * a uid of this run (in uid) and a free port of the fixture's (in *port). */
static pid_t spawn_unrecorded(fixture *f, const char *name, char uid[64], unsigned *port)
{
    return spawn_leftover(f, name, NULL, uid, port);
}

/* The pid of a process other than not_pid that the runtime would find as a
 * stray of world uid (it leads its group and carries the identity), or 0. */
static pid_t stray_of(const char *uid, pid_t not_pid)
{
    bdy__stray *list = NULL;
    size_t n = 0;
    assert_int_equal(bdy__strays_find(&list, &n), 0);
    pid_t found = 0;
    for (const bdy__stray *s = list; s != NULL && found == 0; s = s->next)
        if (strcmp(s->uid, uid) == 0 && s->pid != not_pid)
            found = (pid_t)s->pid;
    bdy__strays_free(list);
    return found;
}

/* Stops a watched world and checks it is reported gone with its ports
 * free. */
static exit_rec stop_ok(fixture *f, bdy_runtime *rt, const bdy_world_handle *h, const char *name)
{
    assert_int_equal(rt->vt->stop(rt->ctx, h, 5000), 0);
    exit_rec r;
    assert_true(wait_exit(f, name, &r));
    assert_int_equal(r.pid, h->pid);
    for (size_t i = 0; i < h->nports; i++)
        assert_true(port_bindable(h->ports[i].port));
    return r;
}

/* A stray of world name (uid) told port game, that never binds it: a
 * sleep in a session of its own, found as a stray before this returns. */
static pid_t spawn_sleeping_stray(const char *uid, const char *name, unsigned port)
{
    char v_port[64];
    snprintf(v_port, sizeof(v_port), "BINDERY_PORT_GAME=%u", port);
    char v_uid[96];
    snprintf(v_uid, sizeof(v_uid), "BINDERY_WORLD_UID=%s", uid);
    char v_name[96];
    snprintf(v_name, sizeof(v_name), "BINDERY_WORLD_NAME=%s", name);
    char *const envp[] = {v_uid, v_name, "BINDERY_WORLD_NAMESPACE=default", v_port, NULL};
    char *argv[] = {"/bin/sleep", "30", NULL};
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
    pid_t pid = 0;
    assert_int_equal(posix_spawn(&pid, argv[0], NULL, &attr, argv, envp), 0);
    posix_spawnattr_destroy(&attr);
    /* Under valgrind posix_spawn returns before the exec: wait for it. */
    pid_t seen = 0;
    for (uint64_t end = now_ms() + WAIT_MS; seen != pid && now_ms() < end; sleep_ms(POLL_MS))
        seen = stray_of(uid, 0);
    assert_int_equal(seen, pid);
    return pid;
}

static int reclaim(bdy_runtime *rt, const bdy_world_spec *s, bdy_world_handle *h)
{
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    memset(h, 0, sizeof(*h));
    return rt->vt->reclaim(rt->ctx, s, h, &eb);
}

static void test_reclaim_unrecorded_world(void **state)
{
    fixture *f = *state;
    char uid[64];
    unsigned port = 0;
    pid_t pid = spawn_unrecorded(f, "lost", uid, &port);
    bdy_runtime *rt = new_runtime(f, f->port_base, f->port_base + 99);
    bdy_world_spec s = arena_spec(f, "lost");
    bdy_world_handle h;
    /* The uid, the name and the namespace must all be the world's. */
    s.uid = "uid-other";
    assert_int_equal(reclaim(rt, &s, &h), BDY_ENOTFOUND);
    s.uid = uid;
    s.name = "found";
    assert_int_equal(reclaim(rt, &s, &h), BDY_ENOTFOUND);
    s.name = "lost";
    s.ns = "games";
    assert_int_equal(reclaim(rt, &s, &h), BDY_ENOTFOUND);
    s.ns = "default";
    s.uid = NULL;
    assert_int_equal(reclaim(rt, &s, &h), BDY_EINVAL);
    s.uid = uid;

    assert_int_equal(reclaim(rt, &s, &h), 0);
    assert_int_equal(h.pid, pid);
    uint64_t start_time = 0;
    proc_state(pid, NULL, &start_time);
    assert_int_equal(h.start_time, start_time);
    assert_string_equal(h.address, "127.0.0.1");
    assert_int_equal(h.nports, 1);
    assert_string_equal(h.ports[0].name, "game");
    assert_string_equal(h.ports[0].protocol, "UDP");
    assert_int_equal(h.ports[0].port, port);
    /* Taken once: it is watched now, not a stray. */
    bdy_world_handle again;
    assert_int_equal(reclaim(rt, &s, &again), BDY_ENOTFOUND);
    assert_true(wait_ready(rt, &h, &s.readiness[0]));
    assert_tcp_pong(port, "pong lost\n");
    stop_ok(f, rt, &h, "lost");
    bdy_runtime_free(rt);
}

static void test_reclaim_by_identity_only(void **state)
{
    fixture *f = *state;
    char uid[64];
    run_uid(uid, "doomed");
    unsigned port = free_port(f);
    /* A process that has not bound its port yet (it never will). */
    pid_t pid = spawn_sleeping_stray(uid, "doomed", port);
    bdy_runtime *rt = new_runtime(f, port, port);
    /* What the world controller knows of a world it deletes: no command,
     * no ports. */
    bdy_world_spec s = {.ns = "default", .name = "doomed", .uid = uid};
    bdy_world_handle h;
    assert_int_equal(reclaim(rt, &s, &h), 0);
    assert_int_equal(h.pid, pid);
    /* The port it was told is its own until it has stopped. */
    assert_int_equal(h.nports, 1);
    assert_int_equal(h.ports[0].port, port);
    bdy_world_spec other = arena_spec(f, "newcomer");
    bdy_errbuf eb;
    assert_int_equal(start_err(rt, &other, &eb), BDY_EBUSY);
    stop_ok(f, rt, &h, "doomed");
    bdy_world_handle nh;
    start_ok(rt, &other, &nh);
    assert_int_equal(nh.ports[0].port, port);
    stop_ok(f, rt, &nh, "newcomer");
    bdy_runtime_free(rt);
}

/* A world that starts a helper in a session of its own: both lead a process
 * group and carry the world's identity, and the world is the one taken
 * back. */
static void test_reclaim_picks_the_world_not_its_helper(void **state)
{
    fixture *f = *state;
    char uid[64];
    run_uid(uid, "helped");
    bdy_runtime *first = new_runtime(f, f->port_base, f->port_base + 99);
    bdy_world_spec s = shell_spec("helped", "setsid sleep 30 & exec sleep 31");
    s.uid = uid;
    bdy_world_handle started;
    start_ok(first, &s, &started);
    /* Once the helper has run setsid, it looks like a stray of the world. */
    pid_t helper = 0;
    for (uint64_t end = now_ms() + WAIT_MS; helper == 0 && now_ms() < end; sleep_ms(POLL_MS))
        helper = stray_of(uid, (pid_t)started.pid);
    assert_true(helper > 0);
    bdy_runtime_free(first);

    bdy_runtime *second = new_runtime(f, f->port_base, f->port_base + 99);
    bdy_world_handle h;
    assert_int_equal(reclaim(second, &s, &h), 0);
    assert_int_equal(h.pid, started.pid);
    stop_ok(f, second, &h, "helped");
    bdy_runtime_free(second);
    kill(helper, SIGKILL); /* in a session of its own, it outlives the world */
}

/* A stray that has not bound its port yet still owns it: a world started
 * meanwhile gets no such port, and gets it once the stray is gone. */
static void test_stray_port_is_not_handed_out(void **state)
{
    fixture *f = *state;
    char uid[64];
    run_uid(uid, "slow");
    unsigned port = free_port(f);
    pid_t pid = spawn_sleeping_stray(uid, "slow", port);

    bdy_runtime *rt = new_runtime(f, port, port);
    bdy_world_spec other = arena_spec(f, "newcomer");
    bdy_errbuf eb;
    assert_int_equal(start_err(rt, &other, &eb), BDY_EBUSY);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    bdy_world_handle h;
    start_ok(rt, &other, &h);
    assert_int_equal(h.ports[0].port, port);
    stop_ok(f, rt, &h, "newcomer");
    bdy_runtime_free(rt);
}

static const char *known_uid; /* the one uid known_cb knows */
static unsigned known_calls;

static bool known_cb(void *data, const char *ns, const char *name, const char *uid)
{
    (void)data;
    (void)ns;
    (void)name;
    known_calls++;
    return known_uid != NULL && strcmp(uid, known_uid) == 0;
}

static bool process_gone(pid_t pid)
{
    for (uint64_t end = now_ms() + WAIT_MS; now_ms() < end; sleep_ms(POLL_MS))
        if (kill(pid, 0) != 0 && errno == ESRCH)
            return true;
    return false;
}

/* Of the processes an earlier run left, stop_strays stops those of this
 * runtime's instance whose world is not known, frees their ports and
 * reports no exit; those of a known world, of another instance or of none
 * run on. Worlds the runtime starts carry its instance. */
static void test_leftovers_of_gone_worlds_are_stopped(void **state)
{
    fixture *f = *state;
    /* Instances of this run: what an earlier failed run left is not ours. */
    char inst_a[32];
    char inst_b[32];
    snprintf(inst_a, sizeof(inst_a), "inst-a-%d", (int)getpid());
    snprintf(inst_b, sizeof(inst_b), "inst-b-%d", (int)getpid());
    char uid_gone[64];
    char uid_known[64];
    char uid_other[64];
    char uid_none[64];
    unsigned port_gone = 0;
    unsigned port = 0;
    pid_t gone = spawn_leftover(f, "gone", inst_a, uid_gone, &port_gone);
    pid_t known = spawn_leftover(f, "known", inst_a, uid_known, &port);
    pid_t other = spawn_leftover(f, "other", inst_b, uid_other, &port);
    pid_t none = spawn_leftover(f, "none", NULL, uid_none, &port);

    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    bdy_runtime *bad = NULL;
    bdy_process_runtime_opts o = {.port_min = f->port_base,
                                  .port_max = f->port_base + 99,
                                  .log_dir = f->logs,
                                  .instance = "no spaces",
                                  .on_exit = record_exit_cb,
                                  .on_probe = record_probe_cb,
                                  .data = f};
    assert_int_equal(bdy_runtime_process_new(&o, &bad, &eb), BDY_EINVAL);

    /* Its only port is the one the leftover of the gone world was told. */
    bdy_runtime *rt = new_runtime_of(f, port_gone, port_gone, inst_a);
    bdy_world_spec s = arena_spec(f, "fresh");
    assert_int_equal(start_err(rt, &s, &eb), BDY_EBUSY);
    known_uid = uid_known;
    known_calls = 0;
    size_t exits = exit_count(f);
    assert_int_equal(rt->vt->stop_strays(rt->ctx, known_cb, NULL, 5000), 1);
    assert_int_equal(known_calls, 2); /* only this instance's are asked about */
    assert_true(process_gone(gone));
    sleep_ms(200);
    assert_int_equal(exit_count(f), exits); /* no world of theirs: no exit notice */
    assert_true(still_runs(known));
    assert_true(still_runs(other));
    assert_true(still_runs(none));
    /* Its port is free in the runtime's own table too, once the exit has
     * been dealt with (the reap comes just before the ports' release). */
    bdy_world_handle h;
    int started = BDY_EBUSY;
    for (uint64_t end = now_ms() + WAIT_MS; started == BDY_EBUSY && now_ms() < end;
         sleep_ms(POLL_MS)) {
        bdy_errbuf_clear(&eb);
        started = rt->vt->start(rt->ctx, &s, &h, &eb);
    }
    assert_int_equal(started, 0);
    assert_int_equal(h.ports[0].port, port_gone);
    /* Asked again, it stops what is no longer known, and then nothing. */
    known_uid = NULL;
    assert_int_equal(rt->vt->stop_strays(rt->ctx, known_cb, NULL, 5000), 1);
    assert_true(process_gone(known));
    assert_int_equal(rt->vt->stop_strays(rt->ctx, known_cb, NULL, 5000), 0);

    bdy__stray id;
    /* Right after the exec, /proc may not show the new environment yet. */
    int found = BDY_ENOTFOUND;
    for (uint64_t end = now_ms() + WAIT_MS; found != 0 && now_ms() < end; sleep_ms(POLL_MS))
        found = bdy__proc_identity(h.pid, &id);
    assert_int_equal(found, 0);
    assert_string_equal(id.instance, inst_a);
    stop_ok(f, rt, &h, "fresh");
    bdy_runtime_free(rt);

    /* A runtime without an instance stops nothing. */
    rt = new_runtime(f, f->port_base, f->port_base + 99);
    assert_int_equal(rt->vt->stop_strays(rt->ctx, known_cb, NULL, 5000), 0);
    bdy_runtime_free(rt);
    assert_true(still_runs(other));
    assert_true(still_runs(none));
}

/* Leaves the process no descriptor to open (its limit at the lowest free
 * one); returns the limit to put back. */
static struct rlimit descriptors_run_out(void)
{
    struct rlimit saved;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    int lowest = dup(0); /* the next descriptor the process would get */
    assert_true(lowest >= 0);
    close(lowest);
    struct rlimit tight = {.rlim_cur = (rlim_t)lowest, .rlim_max = saved.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &tight), 0);
    return saved;
}

/* reclaim() with no descriptor to spare: a pidfd or a look at /proc fails. */
static int reclaim_without_descriptors(bdy_runtime *rt, const bdy_world_spec *s,
                                       bdy_world_handle *h)
{
    struct rlimit saved = descriptors_run_out();
    int rc = reclaim(rt, s, h);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
    return rc;
}

/* A look at /proc with no descriptor to spare is BDY_ENOMEM, a shortage
 * of bindery's: start() met it after a spawn, when descriptors ran out
 * between the two, and failed the world (StartError), which counted
 * towards its pool's crash backoff. */
static void test_proc_stat_short_of_descriptors(void **state)
{
    (void)state;
    bdy__proc_stat st;
    assert_int_equal(bdy__proc_stat_read(getpid(), &st), 0);
    struct rlimit saved = descriptors_run_out();
    int rc = bdy__proc_stat_read(getpid(), &st);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
    assert_int_equal(rc, BDY_ENOMEM);
}

/* start() with no descriptor to spare is BDY_ENOMEM, bindery's shortage
 * and not the world's (its controller tries again rather than fail it),
 * and leaves nothing behind: the port goes to the next start. */
static void test_start_short_of_descriptors(void **state)
{
    fixture *f = *state;
    unsigned port = free_port(f);
    bdy_runtime *rt = new_runtime(f, port, port);
    bdy_world_spec a = arena_spec(f, "short");
    struct rlimit saved = descriptors_run_out();
    bdy_errbuf eb;
    int rc = start_err(rt, &a, &eb);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
    if (rc != BDY_ENOMEM)
        fail_msg("start with no descriptor: %s (%s)", bdy_strerror(rc), eb.message);
    bdy_world_handle h;
    start_ok(rt, &a, &h);
    assert_int_equal(h.ports[0].port, port);
    stop_ok(f, rt, &h, "short");
    bdy_runtime_free(rt);
}

/* Taking a stray back can fail for a reason that passes (no descriptor
 * left): the stray must still be there for the next try. */
static void test_failed_reclaim_is_retried(void **state)
{
    fixture *f = *state;
    char uid[64];
    unsigned port = 0;
    pid_t pid = spawn_unrecorded(f, "patient", uid, &port);
    bdy_runtime *rt = new_runtime(f, f->port_base, f->port_base + 99);
    bdy_world_spec s = arena_spec(f, "patient");
    s.uid = uid;
    bdy_world_handle h;
    assert_true(bdy_runtime_retry_later(reclaim_without_descriptors(rt, &s, &h)));
    assert_true(alive(pid, NULL));
    assert_int_equal(reclaim(rt, &s, &h), 0);
    assert_int_equal(h.pid, pid);
    stop_ok(f, rt, &h, "patient");
    bdy_runtime_free(rt);
}

/* A process started before a restart with other ports than the manifest
 * names now is killed rather than taken back: with a port renamed (drop
 * false), or with its one port dropped from the manifest (drop true: the
 * port it holds would be named by no handle, and handed to another world).
 * Until it can be killed, it is the world's still. */
static void reclaim_with_other_ports_kills(fixture *f, bool drop)
{
    char uid[64];
    unsigned port = 0;
    pid_t pid = spawn_unrecorded(f, "changed", uid, &port);
    bdy_runtime *rt = new_runtime(f, f->port_base, f->port_base + 99);
    bdy_world_spec s = arena_spec(f, "changed");
    s.uid = uid;
    if (drop)
        s.nports = 0;
    else
        snprintf(s.ports[0].name, sizeof(s.ports[0].name), "query");
    bdy_world_handle h;
    /* Not killed for want of a descriptor: it runs on, and so the world
     * must not start beside it; a later try kills it. */
    assert_true(bdy_runtime_retry_later(reclaim_without_descriptors(rt, &s, &h)));
    assert_true(alive(pid, NULL));
    assert_int_equal(reclaim(rt, &s, &h), BDY_ENOTFOUND);
    bool gone = false;
    for (uint64_t end = now_ms() + WAIT_MS; !gone && now_ms() < end; sleep_ms(POLL_MS)) {
        waitpid(pid, NULL, WNOHANG); /* this test is its parent */
        gone = !alive(pid, NULL);
    }
    assert_true(gone);
    assert_int_equal(exit_count(f), 0); /* never watched, so never reported */
    bdy_runtime_free(rt);
}

static void test_reclaim_with_other_ports_kills(void **state)
{
    reclaim_with_other_ports_kills(*state, false);
}

static void test_reclaim_with_a_dropped_port_kills(void **state)
{
    reclaim_with_other_ports_kills(*state, true);
}

/* The whole window: a runtime starts a world and goes before anything
 * recorded the handle; the next runtime finds the same process by its uid. */
static void test_started_world_is_reclaimed_after_restart(void **state)
{
    fixture *f = *state;
    char uid[64];
    run_uid(uid, "unrecorded");
    bdy_runtime *first = new_runtime(f, f->port_base, f->port_base + 99);
    bdy_world_spec s = arena_spec(f, "unrecorded");
    s.uid = uid;
    bdy_world_handle started;
    start_ok(first, &s, &started);
    /* Under valgrind posix_spawn returns before the exec that sets the
     * world's environment; ready means it has happened. */
    assert_true(wait_ready(first, &started, &s.readiness[0]));
    bdy_runtime_free(first);

    bdy_runtime *second = new_runtime(f, f->port_base, f->port_base + 99);
    bdy_world_handle h;
    assert_int_equal(reclaim(second, &s, &h), 0);
    assert_int_equal(h.pid, started.pid);
    assert_int_equal(h.start_time, started.start_time);
    assert_int_equal(h.ports[0].port, started.ports[0].port);
    assert_true(wait_ready(second, &h, &s.readiness[0]));
    bdy_runtime_free(second);

    /* Recorded this time: adopt takes it, and it is no stray any more. */
    bdy_runtime *third = new_runtime(f, f->port_base, f->port_base + 99);
    bdy_errbuf eb;
    assert_int_equal(third->vt->adopt(third->ctx, "default", "unrecorded", &h, &eb), 0);
    bdy_world_handle again;
    assert_int_equal(reclaim(third, &s, &again), BDY_ENOTFOUND);
    stop_ok(f, third, &h, "unrecorded");
    bdy_runtime_free(third);
}

static void test_environ_parse(void **state)
{
    (void)state;
    bdy__stray st;
    static const char env[] = "PATH=/bin\0BINDERY_WORLD_NAMESPACE=games\0"
                              "BINDERY_WORLD_NAME=w1\0BINDERY_WORLD_UID=u-1\0"
                              "BINDERY_PORT_GAME=7777\0BINDERY_PORT_HTTP_ADMIN=8080\0"
                              "BINDERY_PORT_BAD=80x\0BINDERY_PORT_ZERO=0\0"
                              "BINDERY_PORT_BIG=65536\0BINDERY_PORT_=1\0BINDERY_WORLD_NAMEX=no";
    assert_true(bdy__stray_parse_environ(env, sizeof(env) - 1, &st));
    assert_string_equal(st.uid, "u-1");
    assert_string_equal(st.ns, "games");
    assert_string_equal(st.name, "w1");
    assert_int_equal(st.nports, 2);
    assert_string_equal(st.ports[0].env, "BINDERY_PORT_GAME");
    assert_int_equal(st.ports[0].port, 7777);
    assert_string_equal(st.ports[1].env, "BINDERY_PORT_HTTP_ADMIN");
    assert_int_equal(st.ports[1].port, 8080);
    /* Without a uid (any world started before uids were set, or no world at
     * all), there is no identity. */
    static const char no_uid[] = "BINDERY_WORLD_NAMESPACE=games\0BINDERY_WORLD_NAME=w1";
    assert_false(bdy__stray_parse_environ(no_uid, sizeof(no_uid) - 1, &st));
    static const char empty_uid[] = "BINDERY_WORLD_UID=\0BINDERY_WORLD_NAMESPACE=a\0"
                                    "BINDERY_WORLD_NAME=b";
    assert_false(bdy__stray_parse_environ(empty_uid, sizeof(empty_uid) - 1, &st));
    assert_false(bdy__stray_parse_environ("", 0, &st));
    /* The relay mark says how many children the world runs; a value that
     * is no count in range marks a relaying world whose children are not
     * watched. */
    assert_false(st.relays_term);
    const struct {
        const char *value;
        bool relays;
        unsigned children;
    } relays[] = {{"3", true, 3},  {"1", true, 1},  {"0", true, 0},           {"64", true, 64},
                  {"65", true, 0}, {"3x", true, 0}, {"99999999999", true, 0}, {"", false, 0}};
    for (size_t i = 0; i < sizeof(relays) / sizeof(relays[0]); i++) {
        char mark[128];
        int len = snprintf(mark, sizeof(mark),
                           "BINDERY_WORLD_UID=u%cBINDERY_WORLD_NAMESPACE=a%c"
                           "BINDERY_WORLD_NAME=b%cBINDERY_RELAYS_TERM=%s",
                           0, 0, 0, relays[i].value);
        assert_true(bdy__stray_parse_environ(mark, (size_t)len, &st));
        assert_int_equal(st.relays_term, relays[i].relays);
        assert_int_equal(st.children, relays[i].children);
    }
    /* An over-long uid does not fit and does not count. */
    char longer[400];
    int n = snprintf(longer, sizeof(longer),
                     "BINDERY_WORLD_NAMESPACE=a%cBINDERY_WORLD_NAME=b%c"
                     "BINDERY_WORLD_UID=",
                     0, 0);
    memset(longer + n, 'u', BDY__WORLD_UID_MAX + 1);
    assert_false(bdy__stray_parse_environ(longer, (size_t)n + BDY__WORLD_UID_MAX + 1, &st));
    /* Port names as a world's environment spells them. */
    char var[BDY__PORT_ENV_MAX];
    bdy__port_env_name("http-admin", var);
    assert_string_equal(var, "BINDERY_PORT_HTTP_ADMIN");
    bdy__port_env_name("q1.x", var);
    assert_string_equal(var, "BINDERY_PORT_Q1_X");
}

/* This boot's id, read the way a test can check it: not through the
 * runtime's own reader. */
static void read_boot_id(char *out, size_t size)
{
    FILE *fp = fopen("/proc/sys/kernel/random/boot_id", "r");
    assert_non_null(fp);
    assert_non_null(fgets(out, (int)size, fp));
    fclose(fp);
    out[strcspn(out, "\n")] = '\0';
    assert_int_equal(strlen(out), 36);
}

static void test_adopt(void **state)
{
    fixture *f = *state;
    unsigned port = free_port(f);
    pid_t pid = spawn_arena(f, port, "adoptee");
    bdy_world_handle h = {.pid = pid, .address = "127.0.0.1", .nports = 1};
    assert_int_not_equal(proc_state(pid, NULL, &h.start_time), 0);
    snprintf(h.ports[0].name, sizeof(h.ports[0].name), "game");
    snprintf(h.ports[0].protocol, sizeof(h.ports[0].protocol), "UDP");
    h.ports[0].port = port;

    bdy_runtime *rt = new_runtime(f, port, port);
    bdy_errbuf eb;
    bdy_world_handle wrong = h;
    wrong.start_time++;
    assert_int_equal(rt->vt->adopt(rt->ctx, "default", "adoptee", &wrong, &eb), BDY_ENOTFOUND);
    wrong = h;
    wrong.pid = 0;
    assert_int_equal(rt->vt->adopt(rt->ctx, "default", "adoptee", &wrong, &eb), BDY_EINVAL);
    /* A status naming init (its start time is anyone's to read) would make
     * a stop kill(-1); nor is the caller or its process group a world. */
    wrong = h;
    wrong.pid = 1;
    wrong.boot_id[0] = '\0';
    if (proc_state(1, NULL, &wrong.start_time) != 0)
        assert_int_equal(rt->vt->adopt(rt->ctx, "default", "adoptee", &wrong, &eb), BDY_EINVAL);
    wrong.pid = getpid();
    proc_state(wrong.pid, NULL, &wrong.start_time);
    assert_int_equal(rt->vt->adopt(rt->ctx, "default", "adoptee", &wrong, &eb), BDY_EINVAL);
    pid_t member = fork(); /* in the caller's process group */
    if (member == 0) {
        pause();
        _exit(0);
    }
    wrong.pid = member;
    for (int i = 0; i < 100 && proc_state(member, NULL, &wrong.start_time) == 0; i++)
        sleep_ms(10);
    assert_int_equal(rt->vt->adopt(rt->ctx, "default", "adoptee", &wrong, &eb), BDY_EINVAL);
    assert_non_null(strstr(eb.message, "process group"));
    kill(member, SIGKILL);
    waitpid(member, NULL, 0);
    /* A process whose environment names another world is not this one. */
    unsigned other_port = free_port(f); /* port is taken by the adoptee */
    char *other_env[] = {"BINDERY_WORLD_UID=uid-other", "BINDERY_WORLD_NAMESPACE=default",
                         "BINDERY_WORLD_NAME=someone-else", NULL};
    pid_t other = spawn_arena_env(f, other_port, "someone-else", other_env);
    wrong.pid = other;
    proc_state(other, NULL, &wrong.start_time);
    assert_int_equal(rt->vt->adopt(rt->ctx, "default", "adoptee", &wrong, &eb), BDY_EINVAL);
    assert_non_null(strstr(eb.message, "another world"));
    kill(other, SIGKILL);
    waitpid(other, NULL, 0);
    assert_int_equal(rt->vt->adopt(rt->ctx, "default", "a/b", &h, &eb), BDY_EINVAL);
    /* Not adopted yet: stop refuses rather than signal an unwatched process. */
    assert_int_equal(rt->vt->stop(rt->ctx, &h, 100), BDY_EINVAL);
    assert_true(alive(pid, NULL));
    /* Recorded in another boot: whatever runs under that pid and start
     * time now is not the world. Neither taken nor signalled. */
    wrong = h;
    snprintf(wrong.boot_id, sizeof(wrong.boot_id), "00000000-0000-4000-8000-000000000000");
    assert_int_equal(rt->vt->adopt(rt->ctx, "default", "adoptee", &wrong, &eb), BDY_ENOTFOUND);
    assert_non_null(strstr(eb.message, "rebooted"));
    assert_int_equal(rt->vt->stop(rt->ctx, &wrong, 100), 0);
    assert_true(alive(pid, NULL));
    /* Recorded in this boot: taken. */
    char boot[sizeof(h.boot_id)];
    read_boot_id(boot, sizeof(boot));
    snprintf(h.boot_id, sizeof(h.boot_id), "%s", boot);

    assert_int_equal(rt->vt->adopt(rt->ctx, "default", "adoptee", &h, &eb), 0);
    assert_int_equal(rt->vt->adopt(rt->ctx, "default", "adoptee", &h, &eb), 0); /* no-op */
    /* A different process under the same world name is refused. */
    pid_t loner = fork();
    if (loner == 0) {
        setpgid(0, 0);
        pause();
        _exit(0);
    }
    setpgid(loner, loner);
    bdy_world_handle self = {.pid = loner};
    for (int i = 0; i < 100 && proc_state(loner, NULL, &self.start_time) == 0; i++)
        sleep_ms(10);
    assert_int_equal(rt->vt->adopt(rt->ctx, "default", "adoptee", &self, &eb), BDY_EEXISTS);
    kill(loner, SIGKILL);
    waitpid(loner, NULL, 0);

    bdy_probe probe = {.kind = BDY_PROBE_TCP, .port = "game", .timeout_ms = 500};
    bdy_world_state st = BDY_WORLD_EXITED;
    assert_int_equal(look(rt, &h, &probe, &st), 0);
    assert_int_equal(st, BDY_WORLD_READY);

    assert_int_equal(rt->vt->stop(rt->ctx, &h, 5000), 0);
    exit_rec r;
    assert_true(wait_exit(f, "adoptee", &r));
    /* This test is the parent, so the runtime could reap it and knows how
     * it ended. */
    assert_int_equal(r.status, 0);
    assert_int_equal(r.pid, pid);
    assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
    assert_true(port_bindable(port));
    bdy_runtime_free(rt);
}

/* A world some other process is parent of (as after a restart of Bindery,
 * when worlds were reparented): a shell leading its own session that
 * started a helper in its group. Returns the shell's pid; the helper's
 * in *helper. */
static pid_t spawn_foreign_group(fixture *f, const char *name, const char *uid, pid_t *helper)
{
    char pids[PATH_MAX];
    snprintf(pids, sizeof(pids), "%s/%s.pids", f->dir, name);
    char script[PATH_MAX + 64];
    snprintf(script, sizeof(script), "sleep 60 & echo $$ $! > %s.tmp && mv %s.tmp %s; wait", pids,
             pids, pids);
    char v_uid[128];
    char v_name[128];
    snprintf(v_uid, sizeof(v_uid), "BINDERY_WORLD_UID=%s", uid);
    snprintf(v_name, sizeof(v_name), "BINDERY_WORLD_NAME=%s", name);
    char *const envp[] = {"PATH=/usr/bin:/bin", v_uid, v_name, "BINDERY_WORLD_NAMESPACE=default",
                          NULL};
    char *const argv[] = {"/bin/sh", "-c", script, NULL};
    pid_t middle = fork();
    assert_true(middle >= 0);
    if (middle == 0) {
        /* The middle process exits at once, so the shell is reparented. */
        if (fork() == 0) {
            setsid();
            execve("/bin/sh", argv, envp);
            _exit(127);
        }
        _exit(0);
    }
    assert_int_equal(waitpid(middle, NULL, 0), middle);
    assert_true(wait_file(pids));
    FILE *fp = fopen(pids, "r");
    assert_non_null(fp);
    long leader = 0;
    long other = 0;
    assert_int_equal(fscanf(fp, "%ld %ld", &leader, &other), 2);
    fclose(fp);
    *helper = (pid_t)other;
    return (pid_t)leader;
}

/* An adopted world that is not our child and dies: what it started in its
 * group goes with it, as it does for a world we started. */
/* The thread left running: a minute at most, whatever happens to the test. */
static void *park_a_minute(void *arg)
{
    (void)arg;
    sleep(60);
    _exit(0);
}

/* A world whose main thread has called pthread_exit while its other
 * threads run reads 'Z' in /proc, yet runs: it is adopted, and stopped. */
static void test_adopt_world_whose_main_thread_exited(void **state)
{
    fixture *f = *state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0); /* stop() signals the group: not this test's */
        pthread_t t;
        if (pthread_create(&t, NULL, park_a_minute, NULL) != 0)
            _exit(2);
        pthread_exit(NULL);
    }
    setpgid(pid, pid); /* as the child does: whichever runs first */
    f->group = pid;
    bdy_world_handle h = {.pid = pid, .address = "127.0.0.1"};
    char st = 0;
    for (int i = 0; i < 200 && (st = proc_state(pid, NULL, &h.start_time)) != 'Z'; i++)
        sleep_ms(10);
    assert_int_equal(st, 'Z'); /* the leader is a zombie; its thread runs */
    bdy_runtime *rt = new_runtime(f, f->port_base, f->port_base + 1);
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(rt->vt->adopt(rt->ctx, "default", "half-gone", &h, &eb), 0);
    assert_int_equal(rt->vt->stop(rt->ctx, &h, 1000), 0);
    exit_rec r;
    assert_true(wait_exit(f, "half-gone", &r));
    assert_int_equal(r.pid, pid);
    bdy_runtime_free(rt);
    waitpid(pid, NULL, WNOHANG); /* reaped by the runtime already, or now */
}

static void test_adopted_world_takes_its_group_along(void **state)
{
    fixture *f = *state;
    char uid[64];
    run_uid(uid, "grouped");
    pid_t helper = 0;
    pid_t leader = spawn_foreign_group(f, "grouped", uid, &helper);
    bdy_world_handle h = {.pid = leader, .address = "127.0.0.1"};
    assert_int_not_equal(proc_state(leader, NULL, &h.start_time), 0);
    bdy_runtime *rt = new_runtime(f, f->port_base, f->port_base + 99);
    bdy_errbuf eb;
    assert_int_equal(rt->vt->adopt(rt->ctx, "default", "grouped", &h, &eb), 0);
    assert_int_equal(kill(leader, SIGKILL), 0);
    exit_rec r;
    assert_true(wait_exit(f, "grouped", &r));
    assert_int_equal(r.pid, leader);
    bool gone = false;
    for (uint64_t end = now_ms() + WAIT_MS; !gone && now_ms() < end; sleep_ms(POLL_MS))
        gone = !alive(helper, NULL);
    if (!gone)
        kill(helper, SIGKILL);
    assert_true(gone);
    bdy_runtime_free(rt);
}

static void test_world_outlives_runtime(void **state)
{
    fixture *f = *state;
    bdy_runtime *first = new_runtime(f, f->port_base, f->port_base + 99);
    bdy_world_spec s = arena_spec(f, "survivor");
    bdy_world_handle h;
    start_ok(first, &s, &h);
    assert_true(wait_ready(first, &h, &s.readiness[0]));
    bdy_runtime_free(first);
    char boot[sizeof(h.boot_id)];
    read_boot_id(boot, sizeof(boot));
    assert_string_equal(h.boot_id, boot); /* recorded, so a reboot is told apart */

    /* Bindery went away; the world did not. */
    assert_true(alive(h.pid, NULL));
    assert_tcp_pong(h.ports[0].port, "pong survivor\n");
    assert_int_equal(exit_count(f), 0);

    bdy_runtime *second = new_runtime(f, f->port_base, f->port_base + 99);
    bdy_errbuf eb;
    assert_int_equal(second->vt->adopt(second->ctx, "default", "survivor", &h, &eb), 0);
    bdy_world_state st = BDY_WORLD_EXITED;
    assert_int_equal(look(second, &h, &s.readiness[0], &st), 0);
    assert_int_equal(st, BDY_WORLD_READY);
    assert_int_equal(stop_ok(f, second, &h, "survivor").status, 0);
    bdy_runtime_free(second);
}

/* What the world's processes wrote to file name (in the work folder), at
 * most cap - 1 bytes; "" when nothing. */
static void read_work_file(fixture *f, const char *name, char *out, size_t cap)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    out[0] = '\0';
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return;
    size_t n = fread(out, 1, cap - 1, fp);
    out[n] = '\0';
    fclose(fp);
}

/* A world that writes "leader" on SIGTERM and exits, with a helper in its
 * group that writes "helper" on SIGTERM: who got the signal shows in the
 * file "signals-<name>". */
static bdy_world_spec relay_spec(const char *name, bool relays_term)
{
    /* The leader waits a little before it exits, so that a helper that
     * got SIGTERM too has said so before what is left of the group is
     * killed. */
    bdy_world_spec s = shell_spec(name, "trap 'echo leader >> signals-{name}; sleep 0.3; exit 0' "
                                        "TERM; "
                                        "sh -c 'trap \"echo helper >> signals-{name}; exit 0\" "
                                        "TERM; : > trapped-{name}; while :; do sleep 0.05; done' & "
                                        "while :; do sleep 0.05; done");
    s.uid = name; /* unique enough here */
    s.relays_term = relays_term;
    return s;
}

/* A world that relays SIGTERM itself (the booklet world host) gets it
 * alone, started or adopted after a restart; what it left in its group
 * then goes by SIGKILL. Any other world's group gets it whole, even one
 * whose manifest set the relay mark in its environment. */
static void test_relayed_term_goes_to_the_leader_alone(void **state)
{
    fixture *f = *state;
    bdy_runtime *first = new_runtime(f, f->port_base, f->port_base + 99);
    bdy_world_handle relayed;
    bdy_world_handle adopted;
    bdy_world_handle grouped;
    bdy_world_spec s = relay_spec("relayed", true);
    start_ok(first, &s, &relayed);
    s = relay_spec("adopted", true);
    start_ok(first, &s, &adopted);
    /* An ordinary world whose manifest sets the relay mark itself: it is
     * not taken for a relaying one, even when adopted. */
    s = relay_spec("grouped", false);
    s.env_names[s.nenv] = "BINDERY_RELAYS_TERM";
    s.env_values[s.nenv++] = "1";
    start_ok(first, &s, &grouped);
    /* Each helper says when its trap is set. */
    const char *const marks[] = {"trapped-relayed", "trapped-adopted", "trapped-grouped"};
    for (size_t i = 0; i < 3; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", f->dir, marks[i]);
        bool set = false;
        for (uint64_t end = now_ms() + WAIT_MS; !set && now_ms() < end; sleep_ms(POLL_MS))
            set = access(path, F_OK) == 0;
        assert_true(set);
    }
    char text[256];
    assert_int_equal(first->vt->stop(first->ctx, &relayed, 5000), 0);
    exit_rec r;
    assert_true(wait_exit(f, "relayed", &r));
    assert_int_equal(r.status, 0);
    bdy_runtime_free(first);

    bdy_runtime *second = new_runtime(f, f->port_base, f->port_base + 99);
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(second->vt->adopt(second->ctx, "default", "grouped", &grouped, &eb), 0);
    assert_int_equal(second->vt->stop(second->ctx, &grouped, 5000), 0);
    assert_true(wait_exit(f, "grouped", &r));
    bool both = false;
    for (uint64_t end = now_ms() + WAIT_MS; !both && now_ms() < end; sleep_ms(POLL_MS)) {
        read_work_file(f, "signals-grouped", text, sizeof(text));
        both = strstr(text, "leader") != NULL && strstr(text, "helper") != NULL;
    }
    assert_true(both);
    assert_int_equal(second->vt->adopt(second->ctx, "default", "adopted", &adopted, &eb), 0);
    assert_int_equal(second->vt->stop(second->ctx, &adopted, 5000), 0);
    assert_true(wait_exit(f, "adopted", &r));
    sleep_ms(300); /* time for a helper that got SIGTERM to say so */
    read_work_file(f, "signals-relayed", text, sizeof(text));
    assert_string_equal(text, "leader\n");
    read_work_file(f, "signals-adopted", text, sizeof(text));
    assert_string_equal(text, "leader\n");
    bdy_runtime_free(second);
}

/* A world that runs two children and relays SIGTERM to them (as the
 * booklet world host does: they end before it does); each child's pid is
 * written to "child-<n>-<name>". */
static bdy_world_spec parent_spec(const char *name)
{
    bdy_world_spec s = shell_spec(name, "trap 'kill $a $b; wait; exit 0' TERM; "
                                        "sleep 60 & a=$!; echo $a > child-1-{name}; "
                                        "sleep 60 & b=$!; echo $b > child-2-{name}; wait");
    s.uid = name;
    s.relays_term = true;
    s.children = 2;
    return s;
}

/* The pid a child of parent_spec() world name wrote, 0 until it has. */
static pid_t child_pid(fixture *f, const char *name, int n)
{
    char file[96];
    char text[32];
    snprintf(file, sizeof(file), "child-%d-%s", n, name);
    pid_t pid = 0;
    for (uint64_t end = now_ms() + WAIT_MS; pid == 0 && now_ms() < end; sleep_ms(POLL_MS)) {
        read_work_file(f, file, text, sizeof(text));
        pid = (pid_t)atoi(text);
    }
    return pid;
}

/* The end of any child of a world that runs several ends the world at
 * once, while its own process still runs (a booklet world's host drains
 * the other modules): for a world started, and one adopted after a
 * restart, which knows its children from its environment. A world being
 * stopped is not told over early: its children end as asked. */
static void test_end_of_a_child_ends_the_world(void **state)
{
    fixture *f = *state;
    bdy_runtime *first = new_runtime(f, f->port_base, f->port_base + 99);
    bdy_world_handle started;
    bdy_world_handle adopted;
    bdy_world_handle stopped;
    bdy_world_spec s = parent_spec("started");
    start_ok(first, &s, &started);
    s = parent_spec("adopted");
    start_ok(first, &s, &adopted);
    s = parent_spec("stopped");
    start_ok(first, &s, &stopped);
    pid_t started_child = child_pid(f, "started", 2);
    pid_t adopted_child = child_pid(f, "adopted", 1);
    assert_true(started_child > 0 && adopted_child > 0 && child_pid(f, "stopped", 2) > 0);
    /* Time for the runtime to find them (it looks every 100 ms): a child
     * that ended before it did tells the end only once the world has run
     * for 10 s with one missing, too late for this test's waits. */
    sleep_ms(1000);
    assert_int_equal(kill(started_child, SIGKILL), 0);
    assert_true(wait_ending(f, "started"));
    assert_int_equal(kill((pid_t)started.pid, 0), 0); /* it runs on */
    assert_int_equal(exit_count(f), 0);
    assert_int_equal(first->vt->stop(first->ctx, &stopped, 5000), 0);
    exit_rec r;
    assert_true(wait_exit(f, "stopped", &r));
    bdy_runtime_free(first);

    bdy_runtime *second = new_runtime(f, f->port_base, f->port_base + 99);
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(second->vt->adopt(second->ctx, "default", "adopted", &adopted, &eb), 0);
    assert_int_equal(second->vt->adopt(second->ctx, "default", "started", &started, &eb), 0);
    sleep_ms(1000);
    assert_int_equal(kill(adopted_child, SIGKILL), 0);
    assert_true(wait_ending(f, "adopted"));
    assert_int_equal(kill((pid_t)adopted.pid, 0), 0);
    assert_int_equal(second->vt->stop(second->ctx, &adopted, 5000), 0);
    assert_int_equal(second->vt->stop(second->ctx, &started, 5000), 0);
    assert_true(wait_exit(f, "adopted", &r));
    assert_true(wait_exit(f, "started", &r));
    /* Told once each, and never for the world stopped, whose children
     * ended before it did, as asked. */
    assert_int_equal(ending_count(f, "started"), 1);
    assert_int_equal(ending_count(f, "adopted"), 1);
    assert_int_equal(ending_count(f, "stopped"), 0);
    bdy_runtime_free(second);
}

/* A world whose leader died while no runtime watched it (bindery down)
 * is not adopted, and the helpers it left in its group are killed: they
 * would run on for good, holding its ports. */
static void test_helpers_of_world_gone_in_downtime_are_killed(void **state)
{
    fixture *f = *state;
    bdy_runtime *first = new_runtime(f, f->port_base, f->port_base + 99);
    char uid[64];
    run_uid(uid, "orphaner");
    bdy_world_spec s = shell_spec("orphaner", "sleep 600 & echo $! > helper.pid; sleep 0.3");
    s.uid = uid;
    bdy_world_handle h;
    start_ok(first, &s, &h);
    bdy_runtime_free(first);
    /* The leader ends unwatched; this test, its parent, reaps it. */
    assert_int_equal(waitpid((pid_t)h.pid, NULL, 0), (pid_t)h.pid);
    char path[128];
    snprintf(path, sizeof(path), "%s/helper.pid", f->dir);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(bdy_read_file(path, 64, &text, &len), 0);
    int64_t helper = strtoll(text, NULL, 10);
    free(text);
    assert_true(alive(helper, NULL));

    bdy_runtime *second = new_runtime(f, f->port_base, f->port_base + 99);
    bdy_errbuf eb;
    assert_int_equal(second->vt->adopt(second->ctx, "default", "orphaner", &h, &eb), BDY_ENOTFOUND);
    for (uint64_t end = now_ms() + WAIT_MS; now_ms() < end && alive(helper, NULL);)
        sleep_ms(POLL_MS);
    bool left = alive(helper, NULL);
    if (left)
        kill((pid_t)helper, SIGKILL);
    assert_false(left);
    bdy_runtime_free(second);
}

/* Zombie children of this process that are not world a (its pid). */
static int unwatched_zombies(int64_t world_pid)
{
    int n = 0;
    DIR *d = opendir("/proc");
    assert_non_null(d);
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        int64_t pid = strtoll(e->d_name, NULL, 10);
        char path[64];
        char buf[512];
        snprintf(path, sizeof(path), "/proc/%lld/stat", (long long)pid);
        FILE *fp = fopen(path, "r");
        if (fp == NULL)
            continue;
        size_t len = fread(buf, 1, sizeof(buf) - 1, fp);
        fclose(fp);
        buf[len] = '\0';
        char *p = strrchr(buf, ')');
        char state = 0;
        long long ppid = 0;
        if (p != NULL && sscanf(p + 1, " %c %lld", &state, &ppid) == 2 && state == 'Z' &&
            ppid == getpid() && pid != world_pid)
            n++;
    }
    closedir(d);
    return n;
}

/* As a subreaper (or PID 1), helpers a world leaves behind are re-parented
 * to Bindery; their zombies are reaped, not left to pile up. */
static void test_orphans_reaped_as_subreaper(void **state)
{
    fixture *f = *state;
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    bdy_runtime *rt = new_runtime(f, f->port_base, f->port_base + 99);
    char uid[64];
    run_uid(uid, "reaper");
    bdy_world_spec s = shell_spec("reaper", "(sleep 0.2 &); exec sleep 600");
    s.uid = uid;
    bdy_world_handle h;
    start_ok(rt, &s, &h);
    int seen = 0;
    for (uint64_t end = now_ms() + WAIT_MS; now_ms() < end && seen == 0; sleep_ms(POLL_MS))
        seen = unwatched_zombies(h.pid);
    assert_true(seen > 0); /* the orphan died as our child */
    int left = seen;
    for (uint64_t end = now_ms() + 3 * WAIT_MS; now_ms() < end && left > 0; sleep_ms(POLL_MS))
        left = unwatched_zombies(h.pid);
    assert_int_equal(left, 0);
    stop_ok(f, rt, &h, "reaper");
    bdy_runtime_free(rt);
}

/* A failed subreaper test must not leave the later tests' orphans as this
 * process's zombies. */
static int teardown_subreaper(void **state)
{
    prctl(PR_SET_CHILD_SUBREAPER, 0);
    return teardown(state);
}

/* A command without a slash is looked for in the PATH the world is given,
 * not in Bindery's; a relative entry is relative to the working directory. */
static void test_command_found_in_world_path(void **state)
{
    fixture *f = *state;
    bdy_runtime *rt = new_runtime(f, f->port_base, f->port_base + 99);
    char bin[256];
    char link[300];
    snprintf(bin, sizeof(bin), "%s/game-bin", f->dir);
    snprintf(link, sizeof(link), "%s/bdy-test-game", bin);
    assert_int_equal(mkdir(bin, 0700), 0);
    char arena[PATH_MAX];
    assert_non_null(realpath(f->arena, arena));
    assert_int_equal(symlink(arena, link), 0);
    char path_env[400];
    snprintf(path_env, sizeof(path_env), "/nonexistent:%s:/usr/bin:/bin", bin);
    const char *const paths[] = {path_env, "game-bin"};
    for (int i = 0; i < 2; i++) {
        char name[16];
        snprintf(name, sizeof(name), "in-path-%d", i);
        bdy_world_spec s = arena_spec(f, name);
        s.command = "bdy-test-game";
        s.env_names[0] = "PATH";
        s.env_values[0] = paths[i];
        s.nenv = 1;
        bdy_world_handle h;
        start_ok(rt, &s, &h);
        assert_true(wait_ready(rt, &h, &s.readiness[0]));
        assert_int_equal(rt->vt->stop(rt->ctx, &h, 5000), 0);
        exit_rec r;
        assert_true(wait_exit(f, name, &r));
    }
    /* Nowhere in the world's PATH: not found, though Bindery's may hold it. */
    bdy_world_spec s = arena_spec(f, "not-in-path");
    s.command = "sh";
    s.env_names[0] = "PATH";
    s.env_values[0] = bin;
    s.nenv = 1;
    bdy_errbuf eb;
    assert_int_not_equal(start_err(rt, &s, &eb), 0);
    assert_non_null(strstr(eb.message, "No such file"));
    unlink(link);
    rmdir(bin);
    bdy_runtime_free(rt);
}

static void touch_file(const char *dir, const char *name, double age_s)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x\n", 2), 2);
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec -= (time_t)age_s;
    t[1] = t[0];
    assert_int_equal(futimens(fd, t), 0);
    close(fd);
}

static bool file_exists(const char *dir, const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

/* Logs of worlds gone for longer than the retention are deleted; those of
 * running worlds, recent ones and other files stay; a sweep stops at its
 * limit. */
static void test_old_world_logs_are_swept(void **state)
{
    fixture *f = *state;
    bdy_runtime_free(new_runtime(f, f->port_base, f->port_base)); /* makes the folder */
    touch_file(f->logs, "default_gone-1.log", 7200);
    touch_file(f->logs, "default_gone-2.log", 7200);
    touch_file(f->logs, "default_gone-3.log", 7200);
    touch_file(f->logs, "default_quiet.log", 7200);
    touch_file(f->logs, "default_recent.log", 60);
    touch_file(f->logs, "notes.txt", 7200);
    /* Logs that are no world's: a logDir shared with other logs keeps them. */
    static const char *const others[] = {"bindery.log", "dpkg.log",     "Xorg.0.log",
                                         "_x.log",      "default_.log", "my.ns_w.log",
                                         "a_b_c.log",   "ns_Name.log"};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
        touch_file(f->logs, others[i], 7200);
    char *running[] = {strdup("default_quiet.log"), strdup("default_other.log")};
    double now = bdy_wall_seconds();
    assert_int_equal(bdy__logs_sweep(f->logs, 3600, now, running, 2, 2), 2);
    assert_int_equal(bdy__logs_sweep(f->logs, 3600, now, running, 2, 100), 1);
    assert_int_equal(bdy__logs_sweep(f->logs, 3600, now, running, 2, 100), 0);
    assert_false(file_exists(f->logs, "default_gone-1.log"));
    assert_false(file_exists(f->logs, "default_gone-2.log"));
    assert_false(file_exists(f->logs, "default_gone-3.log"));
    assert_true(file_exists(f->logs, "default_quiet.log"));
    assert_true(file_exists(f->logs, "default_recent.log"));
    assert_true(file_exists(f->logs, "notes.txt"));
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
        assert_true(file_exists(f->logs, others[i]));
    free(running[0]);
    free(running[1]);
}

/* A running world's log past the cap loses its oldest part, down to half
 * the cap, and says so; its writer's next line lands at the new end. Logs
 * of worlds not running are the retention's business. */
static void check_log_cap(const char *dir)
{
    const uint64_t cap = 1 << 20;
    char path[256];
    int fds[2];
    const char *names[] = {"default_chatty.log", "default_gone.log"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        fds[i] = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        assert_true(fds[i] >= 0);
        char line[64];
        for (int n = 0; n < 100000; n++) { /* about 3 MB */
            int len = snprintf(line, sizeof(line), "line %08d of the world\n", n);
            assert_int_equal(write(fds[i], line, (size_t)len), len);
        }
    }
    char *running[] = {strdup(names[0]), strdup("default_other.log")};
    assert_int_equal(bdy__logs_cap(dir, running, 2, cap), 1);
    assert_int_equal(bdy__logs_cap(dir, running, 2, cap), 0); /* within the cap now */
    assert_int_equal(write(fds[0], "after the cut\n", 14), 14);
    char *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/%s", dir, names[0]);
    assert_int_equal(bdy_read_file(path, 8 << 20, &text, &len), 0);
    assert_true(len <= cap);
    assert_true(len >= cap / 4);
    assert_non_null(strstr(text, "line 00099999 of the world\n\n[bindery] dropped the oldest "));
    assert_null(strstr(text, "line 00000000 "));
    assert_string_equal(text + len - 14, "after the cut\n");
    free(text);
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, names[1]);
    assert_int_equal(stat(path, &st), 0);
    assert_true((uint64_t)st.st_size > 3 * cap / 2); /* not running: untouched */
    /* ...until the minute's look at logs still written: one its world left
     * a writer behind for is cut too; an old one is the retention's. */
    snprintf(path, sizeof(path), "%s/default_old.log", dir);
    int old_fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(old_fd >= 0);
    assert_int_equal(ftruncate(old_fd, (off_t)(3 * cap)), 0);
    struct timespec long_ago[2] = {{.tv_sec = time(NULL) - 3600}, {.tv_sec = time(NULL) - 3600}};
    assert_int_equal(futimens(old_fd, long_ago), 0);
    close(old_fd);
    double now = bdy_wall_seconds();
    assert_int_equal(bdy__logs_cap_written(dir, running, 2, cap, now, 120), 1);
    assert_int_equal(bdy__logs_cap_written(dir, running, 2, cap, now, 120), 0);
    snprintf(path, sizeof(path), "%s/%s", dir, names[1]);
    assert_int_equal(stat(path, &st), 0);
    assert_true((uint64_t)st.st_size <= cap);
    snprintf(path, sizeof(path), "%s/default_old.log", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_true((uint64_t)st.st_size == 3 * cap);
    unlink(path);
    close(fds[0]);
    close(fds[1]);
    free(running[0]);
    free(running[1]);
}

static void test_running_world_logs_are_capped(void **state)
{
    fixture *f = *state;
    bdy_runtime_free(new_runtime(f, f->port_base, f->port_base)); /* makes the folder */
    check_log_cap(f->logs);
    /* tmpfs cannot collapse a range: the kept part is copied back. */
    char shm[] = "/dev/shm/bdy-logcap-XXXXXX";
    if (mkdtemp(shm) != NULL) {
        check_log_cap(shm);
        char cmd[64];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", shm);
        assert_int_equal(system(cmd), 0);
    }
}

static void test_placeholders_and_env(void **state)
{
    fixture *f = *state;
    bdy_runtime *rt = new_runtime(f, f->port_base, f->port_base + 99);
    assert_int_equal(setenv("BDY_TEST_SECRET", "leaked", 1), 0);
    bdy_world_spec s = shell_spec(
        "w6", "name=shell; echo \"$BINDERY_PORT_GAME {port:game} $BINDERY_PORT_HTTP_ADMIN "
              "{name}/{namespace} $BINDERY_WORLD_NAME $BINDERY_WORLD_NAMESPACE $MODE "
              "${BINDERY_WORLD_NAME} {other} [$BDY_TEST_SECRET] $BINDERY_WORLD_UID $PWD "
              "${name} ${port:-7} $TOKEN\" > out.txt");
    s.ns = "games";
    s.uid = "uid-w6";
    snprintf(s.ports[0].name, sizeof(s.ports[0].name), "game");
    snprintf(s.ports[0].protocol, sizeof(s.ports[0].protocol), "UDP");
    snprintf(s.ports[1].name, sizeof(s.ports[1].name), "http-admin");
    s.nports = 2;
    s.env_names[0] = "MODE";
    s.env_values[0] = "{port:http-admin}-{name}";
    s.env_names[1] = "BINDERY_WORLD_NAME"; /* Bindery's own variables win */
    s.env_values[1] = "overridden";
    s.nenv = 2;
    /* Bound variables (a capability's) are set as given; the manifest's
     * env and Bindery's own win over them. */
    s.bound_names[0] = "TOKEN";
    s.bound_values[0] = "{port:game}{name}";
    s.bound_names[1] = "MODE";
    s.bound_values[1] = "bound";
    s.bound_names[2] = "BINDERY_WORLD_NAMESPACE";
    s.bound_values[2] = "bound";
    s.nbound = 3;
    bdy_world_handle h;
    start_ok(rt, &s, &h);
    unsetenv("BDY_TEST_SECRET");
    assert_string_equal(h.ports[1].protocol, "TCP");
    assert_int_not_equal(h.ports[0].port, h.ports[1].port);
    exit_rec r;
    assert_true(wait_exit(f, "w6", &r));
    assert_int_equal(r.status, 0);

    char path[128];
    char expect[512];
    snprintf(path, sizeof(path), "%s/out.txt", f->dir);
    unsigned g = h.ports[0].port;
    unsigned a = h.ports[1].port;
    /* ${...} is the shell's, whatever the name in it. */
    snprintf(expect, sizeof(expect),
             "%u %u %u w6/games w6 games %u-w6 w6 {other} [] uid-w6 %s shell 7 {port:game}{name}\n",
             g, g, a, a, f->dir);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(bdy_read_file(path, 4096, &text, &len), 0);
    assert_string_equal(text, expect);
    free(text);

    /* A relative workingDir is under the runtime's working folder. */
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/sub", f->dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    bdy_world_spec w = shell_spec("w7", "pwd > where.txt");
    w.working_dir = "sub";
    start_ok(rt, &w, &h);
    assert_true(wait_exit(f, "w7", &r));
    assert_int_equal(r.status, 0);
    snprintf(path, sizeof(path), "%s/where.txt", sub);
    snprintf(expect, sizeof(expect), "%s\n", sub);
    assert_int_equal(bdy_read_file(path, 4096, &text, &len), 0);
    assert_string_equal(text, expect);
    free(text);
    bdy_runtime_free(rt);
}

static void test_bad_input(void **state)
{
    fixture *f = *state;
    bdy_runtime *rt = NULL;
    bdy_errbuf eb;
    bdy_process_runtime_opts o = {
        .port_min = 0, .port_max = 10, .log_dir = f->logs, .on_exit = record_exit_cb};
    assert_int_equal(bdy_runtime_process_new(&o, &rt, &eb), BDY_EINVAL);
    o.port_min = 20;
    assert_int_equal(bdy_runtime_process_new(&o, &rt, &eb), BDY_EINVAL);
    o.port_min = 1;
    o.port_max = 70000;
    assert_int_equal(bdy_runtime_process_new(&o, &rt, &eb), BDY_EINVAL);
    o.port_max = 10;
    o.log_dir = NULL;
    assert_int_equal(bdy_runtime_process_new(&o, &rt, &eb), BDY_EINVAL);
    o.log_dir = f->logs;
    o.on_exit = NULL;
    assert_int_equal(bdy_runtime_process_new(&o, &rt, &eb), BDY_EINVAL);
    assert_null(rt);

    /* One port: every failed start below must give it back. */
    unsigned port = free_port(f);
    rt = new_runtime(f, port, port);
    bdy_world_spec s = arena_spec(f, "bad");
    s.command = NULL;
    assert_int_equal(start_err(rt, &s, &eb), BDY_EINVAL);
    s.command = "";
    assert_int_equal(start_err(rt, &s, &eb), BDY_EINVAL);
    s = arena_spec(f, "a/b");
    assert_int_equal(start_err(rt, &s, &eb), BDY_EINVAL);
    s = arena_spec(f, "..");
    assert_int_equal(start_err(rt, &s, &eb), BDY_EINVAL);
    s = arena_spec(f, "bad");
    s.args[1] = "{port:nope}";
    assert_int_equal(start_err(rt, &s, &eb), BDY_EINVAL);
    assert_non_null(strstr(eb.message, "port:nope"));
    s = arena_spec(f, "bad");
    s.ports[1] = s.ports[0];
    s.nports = 2;
    assert_int_equal(start_err(rt, &s, &eb), BDY_EINVAL);
    /* Two names, one BINDERY_PORT_GAME_A: the variable could carry only one. */
    s = arena_spec(f, "bad");
    snprintf(s.ports[0].name, sizeof(s.ports[0].name), "game-a");
    s.ports[1] = s.ports[0];
    snprintf(s.ports[1].name, sizeof(s.ports[1].name), "game.a");
    s.nports = 2;
    s.args[1] = "{port:game-a}";
    assert_int_equal(start_err(rt, &s, &eb), BDY_EINVAL);
    assert_non_null(strstr(eb.message, "BINDERY_PORT_GAME_A"));
    s = arena_spec(f, "bad");
    snprintf(s.ports[0].protocol, sizeof(s.ports[0].protocol), "SCT");
    assert_int_equal(start_err(rt, &s, &eb), BDY_EINVAL);
    s = arena_spec(f, "bad");
    s.env_names[0] = "A=B";
    s.env_values[0] = "x";
    s.nenv = 1;
    assert_int_equal(start_err(rt, &s, &eb), BDY_EINVAL);
    s = arena_spec(f, "bad");
    s.nargs = BDY_RUNTIME_MAX_ARGS + 1;
    assert_int_equal(start_err(rt, &s, &eb), BDY_EINVAL);
    s = arena_spec(f, "bad");
    char *huge = malloc(BDY_RUNTIME_MAX_ARG_BYTES + 2);
    assert_non_null(huge);
    memset(huge, 'x', BDY_RUNTIME_MAX_ARG_BYTES + 1);
    huge[BDY_RUNTIME_MAX_ARG_BYTES + 1] = '\0';
    s.args[3] = huge;
    assert_int_equal(start_err(rt, &s, &eb), BDY_ETOOBIG);
    free(huge);
    assert_int_equal(exit_count(f), 0);
    s = arena_spec(f, "nocommand");
    s.command = "/nonexistent/arena-world";
    assert_spawn_fails(f, rt, &s);
    s = arena_spec(f, "nodir");
    s.working_dir = "/nonexistent-dir";
    assert_spawn_fails(f, rt, &s);

    /* The port came back each time: a good start still gets it. */
    s = arena_spec(f, "good");
    bdy_world_handle h;
    start_ok(rt, &s, &h);
    assert_int_equal(h.ports[0].port, port);
    assert_true(wait_ready(rt, &h, &s.readiness[0]));

    bdy_world_state st;
    bdy_probe probe = {.kind = BDY_PROBE_TCP, .port = "nope"};
    assert_int_equal(look(rt, &h, &probe, &st), BDY_EINVAL);
    snprintf(probe.port, sizeof(probe.port), "70000");
    assert_int_equal(look(rt, &h, &probe, &st), BDY_EINVAL);
    probe.kind = (bdy_probe_kind)42;
    snprintf(probe.port, sizeof(probe.port), "game");
    assert_int_equal(look(rt, &h, &probe, &st), BDY_EINVAL);
    assert_int_equal(look(rt, NULL, &probe, &st), BDY_EINVAL);
    assert_int_equal(rt->vt->stop(rt->ctx, NULL, 0), BDY_EINVAL);
    /* No probe: a live process is ready. */
    assert_int_equal(look(rt, &h, NULL, &st), 0);
    assert_int_equal(st, BDY_WORLD_READY);

    assert_int_equal(rt->vt->stop(rt->ctx, &h, 5000), 0);
    exit_rec r;
    assert_true(wait_exit(f, "good", &r));
    assert_int_equal(r.status, 0);
    bdy_runtime_free(rt);
    bdy_runtime_free(NULL);
}

/* ---- HTTP and TCP probes against a server in this test ---------------------- */

/* One HTTP probe against a one-shot server answering reply. */
static bdy_world_state probe_once(bdy_runtime *rt, const char *path, const char *reply,
                                  char *request, size_t request_cap)
{
    one_shot s = {.reply = reply};
    one_shot_start(&s);

    /* The handle is this test process: alive, so only the probe decides. */
    bdy_world_handle h = {.pid = getpid(), .address = "127.0.0.1"};
    proc_state(h.pid, NULL, &h.start_time);
    bdy_probe p = {.kind = BDY_PROBE_HTTP, .timeout_ms = 300};
    snprintf(p.port, sizeof(p.port), "%u", ntohs(s.addr.sin_port));
    snprintf(p.path, sizeof(p.path), "%s", path);
    bdy_world_state st = BDY_WORLD_EXITED;
    uint64_t t0 = now_ms();
    assert_int_equal(look(rt, &h, &p, &st), 0);
    assert_true(now_ms() - t0 < 2000);
    one_shot_stop(&s);
    if (request != NULL)
        snprintf(request, request_cap, "%s", s.request);
    return st;
}

static void test_http_and_tcp_probes(void **state)
{
    fixture *f = *state;
    bdy_runtime *rt = new_runtime(f, f->port_base, f->port_base + 99);
    char req[512];
    assert_int_equal(probe_once(rt, "/healthz", "HTTP/1.1 200 OK\r\n\r\n", req, sizeof(req)),
                     BDY_WORLD_READY);
    assert_non_null(strstr(req, "GET /healthz HTTP/1.0\r\n"));
    assert_non_null(strstr(req, "Host: 127.0.0.1:"));
    assert_int_equal(probe_once(rt, "", "HTTP/1.0 302 Found\r\n\r\n", req, sizeof(req)),
                     BDY_WORLD_READY);
    assert_non_null(strstr(req, "GET / HTTP/1.0\r\n"));
    assert_int_equal(probe_once(rt, "/", "HTTP/1.1 503 Unavailable\r\n\r\n", NULL, 0),
                     BDY_WORLD_RUNNING);
    assert_int_equal(probe_once(rt, "/", "HTTP/1.1 2000 Odd\r\n\r\n", NULL, 0), BDY_WORLD_RUNNING);
    assert_int_equal(probe_once(rt, "/", "garbage\r\n", NULL, 0), BDY_WORLD_RUNNING);
    assert_int_equal(probe_once(rt, "/", "", NULL, 0), BDY_WORLD_RUNNING);
    /* A server that never answers costs the probe's timeout, no more. */
    assert_int_equal(probe_once(rt, "/", NULL, NULL, 0), BDY_WORLD_RUNNING);

    bdy_world_handle self = {.pid = getpid(), .address = "127.0.0.1"};
    proc_state(self.pid, NULL, &self.start_time);
    bdy_probe p = {.kind = BDY_PROBE_HTTP, .port = "1", .path = "/a b"};
    bdy_world_state st;
    assert_int_equal(look(rt, &self, &p, &st), BDY_EINVAL);
    snprintf(p.path, sizeof(p.path), "healthz");
    assert_int_equal(look(rt, &self, &p, &st), BDY_EINVAL);

    /* TCP: a listening socket is enough; a closed port is not. */
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    socklen_t len = sizeof(sa);
    getsockname(lfd, (struct sockaddr *)&sa, &len);
    p.kind = BDY_PROBE_TCP;
    snprintf(p.port, sizeof(p.port), "%u", ntohs(sa.sin_port));
    assert_int_equal(look(rt, &self, &p, &st), 0);
    assert_int_equal(st, BDY_WORLD_READY);
    close(lfd);
    assert_int_equal(look(rt, &self, &p, &st), 0);
    assert_int_equal(st, BDY_WORLD_RUNNING);
    /* A handle whose start time does not match is a process that is gone. */
    self.start_time++;
    assert_int_equal(look(rt, &self, &p, &st), 0);
    assert_int_equal(st, BDY_WORLD_EXITED);
    bdy_runtime_free(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_start_probe_ping_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_and_port_exhaustion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_port_held_elsewhere_is_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigkill_after_grace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relayed_term_goes_to_the_leader_alone, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_world_outlives_runtime, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orphans_reaped_as_subreaper, setup,
                                        teardown_subreaper),
        cmocka_unit_test_setup_teardown(test_helpers_of_world_gone_in_downtime_are_killed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_adopted_world_takes_its_group_along, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_world_whose_main_thread_exited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reclaim_unrecorded_world, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reclaim_by_identity_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reclaim_with_other_ports_kills, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reclaim_with_a_dropped_port_kills, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reclaim_picks_the_world_not_its_helper, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stray_port_is_not_handed_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leftovers_of_gone_worlds_are_stopped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proc_stat_short_of_descriptors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_short_of_descriptors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_reclaim_is_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_started_world_is_reclaimed_after_restart, setup,
                                        teardown),
        cmocka_unit_test(test_environ_parse),
        cmocka_unit_test_setup_teardown(test_end_of_a_child_ends_the_world, setup, teardown),
        cmocka_unit_test_setup_teardown(test_command_found_in_world_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_world_logs_are_swept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_running_world_logs_are_capped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_placeholders_and_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_and_tcp_probes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
