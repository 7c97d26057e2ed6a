/* The benchmark runtime: worlds without processes, for benchmarks and tests
 * that need far more worlds than a machine can run (see runtime.h).
 *
 * A world is a small record in two hash tables: one by namespace/name, one
 * by its token. The token is the handle's start_time, here the monotonic
 * time of the start in nanoseconds, made unique within the runtime; it is
 * all that observe() and stop() are given, and it also tells when the world
 * turns Ready. There is no thread per world: a stopped world waits in one
 * FIFO queue (every world waits the same EXIT_DELAY_NS) until the runtime's
 * one thread reports it through the exit callback, with no lock held.
 *
 * Ports come from the range without binding anything, since nothing listens
 * on them. They are unique while the range has free ones, and a released
 * port goes to the back of the free queue. Past that, ports are shared
 * round-robin: harmless here, and it lets a benchmark run more worlds than
 * there are port numbers.
 *
 * Threads: every slot may be called from any thread, the exit callback
 * included; one mutex guards all state.
 */
#include "bindery/runtime.h"
#include "bindery/util.h"
#include "runtime_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOOPBACK "127.0.0.1"
#define EXIT_DELAY_NS 1000000u /* from stop() to the exit callback */
#define INITIAL_BUCKETS 1024u  /* a power of two; the tables double as they fill */

/* One world. ports, ns and name live in the same allocation. */
typedef struct bench_world {
    struct bench_world *next_token; /* chain in by_token */
    struct bench_world *next_name;  /* chain in by_name */
    struct bench_world *next_exit;  /* exit queue */
    uint64_t token;
    uint64_t exit_at_ns; /* 0 until stop() */
    size_t nports;
    bdy_port *ports;
    char *ns;
    char *name;
} bench_world;

typedef struct bench_runtime {
    pthread_mutex_t lock;   /* guards everything down to stopping */
    pthread_cond_t changed; /* the exit queue grew, or stopping */
    bench_world **by_token;
    bench_world **by_name;
    size_t nbuckets;
    size_t count;
    bench_world *exit_head;
    bench_world *exit_tail;
    uint64_t last_token;
    uint32_t *port_users; /* worlds holding each port of the range */
    uint8_t *port_queued; /* whether each port sits in free_ring */
    unsigned *free_ring;  /* ports with no user, oldest release first */
    size_t ring_head;
    size_t ring_len;
    unsigned share_next; /* offset of the next shared port once none is free */
    bool stopping;

    unsigned port_min;
    unsigned span; /* ports in the range */
    uint64_t ready_delay_ns;
    bdy_world_exit_cb on_exit;
    void *data;
    pthread_t thread;
    bool thread_started;
} bench_runtime;

/* ---- hashing (caller holds rt->lock) -------------------------------------- */

static size_t token_bucket(const bench_runtime *rt, uint64_t token)
{
    /* splitmix64 finalizer: consecutive tokens spread over all buckets */
    token ^= token >> 30;
    token *= 0xbf58476d1ce4e5b9ull;
    token ^= token >> 27;
    token *= 0x94d049bb133111ebull;
    token ^= token >> 31;
    return (size_t)token & (rt->nbuckets - 1);
}

static size_t name_bucket(const bench_runtime *rt, const char *ns, const char *name)
{
    /* FNV-1a over "ns/name" */
    uint64_t hash = 0xcbf29ce484222325ull;
    for (const char *p = ns; *p != '\0'; p++)
        hash = (hash ^ (unsigned char)*p) * 0x100000001b3ull;
    hash = (hash ^ '/') * 0x100000001b3ull;
    for (const char *p = name; *p != '\0'; p++)
        hash = (hash ^ (unsigned char)*p) * 0x100000001b3ull;
    return (size_t)hash & (rt->nbuckets - 1);
}

static bench_world *find_token(const bench_runtime *rt, uint64_t token)
{
    bench_world *w = rt->by_token[token_bucket(rt, token)];
    while (w != NULL && w->token != token)
        w = w->next_token;
    return w;
}

static bench_world *find_name(const bench_runtime *rt, const char *ns, const char *name)
{
    bench_world *w = rt->by_name[name_bucket(rt, ns, name)];
    while (w != NULL && (strcmp(w->ns, ns) != 0 || strcmp(w->name, name) != 0))
        w = w->next_name;
    return w;
}

static void insert_world(bench_runtime *rt, bench_world *w)
{
    size_t t = token_bucket(rt, w->token);
    size_t n = name_bucket(rt, w->ns, w->name);
    w->next_token = rt->by_token[t];
    rt->by_token[t] = w;
    w->next_name = rt->by_name[n];
    rt->by_name[n] = w;
}

/* Doubles both tables once they hold as many worlds as buckets, so chains
 * stay short at 100,000 worlds. */
static int grow_if_full(bench_runtime *rt)
{
    if (rt->count < rt->nbuckets)
        return 0;
    size_t old_n = rt->nbuckets;
    bench_world **old_tokens = rt->by_token;
    bench_world **tokens = calloc(old_n * 2, sizeof(bench_world *));
    bench_world **names = calloc(old_n * 2, sizeof(bench_world *));
    if (tokens == NULL || names == NULL) {
        free(tokens);
        free(names);
        return BDY_ENOMEM;
    }
    free(rt->by_name);
    rt->by_token = tokens;
    rt->by_name = names;
    rt->nbuckets = old_n * 2;
    for (size_t i = 0; i < old_n; i++) {
        bench_world *w = old_tokens[i];
        while (w != NULL) {
            bench_world *next = w->next_token;
            insert_world(rt, w);
            w = next;
        }
    }
    free(old_tokens);
    return 0;
}

static void remove_world(bench_runtime *rt, bench_world *w)
{
    bench_world **p = &rt->by_token[token_bucket(rt, w->token)];
    while (*p != w)
        p = &(*p)->next_token;
    *p = w->next_token;
    p = &rt->by_name[name_bucket(rt, w->ns, w->name)];
    while (*p != w)
        p = &(*p)->next_name;
    *p = w->next_name;
    rt->count--;
}

/* ---- ports (caller holds rt->lock) ---------------------------------------- */

static void ring_push(bench_runtime *rt, unsigned offset)
{
    if (rt->port_queued[offset])
        return;
    rt->free_ring[(rt->ring_head + rt->ring_len) % rt->span] = offset;
    rt->ring_len++;
    rt->port_queued[offset] = 1;
}

/* The free port released longest ago or, when none is free, the next one
 * round-robin. A queued port that an adopted world took meanwhile is
 * skipped. */
static unsigned take_port(bench_runtime *rt)
{
    while (rt->ring_len > 0) {
        unsigned offset = rt->free_ring[rt->ring_head];
        rt->ring_head = (rt->ring_head + 1) % rt->span;
        rt->ring_len--;
        rt->port_queued[offset] = 0;
        if (rt->port_users[offset] == 0) {
            rt->port_users[offset]++;
            return rt->port_min + offset;
        }
    }
    unsigned offset = rt->share_next;
    rt->share_next = (rt->share_next + 1) % rt->span;
    rt->port_users[offset]++;
    return rt->port_min + offset;
}

static bool in_range(const bench_runtime *rt, unsigned port)
{
    return port >= rt->port_min && port - rt->port_min < rt->span;
}

static void hold_ports(bench_runtime *rt, const bench_world *w)
{
    for (size_t i = 0; i < w->nports; i++)
        if (in_range(rt, w->ports[i].port))
            rt->port_users[w->ports[i].port - rt->port_min]++;
}

static void release_ports(bench_runtime *rt, const bench_world *w)
{
    for (size_t i = 0; i < w->nports; i++) {
        if (!in_range(rt, w->ports[i].port))
            continue;
        unsigned offset = w->ports[i].port - rt->port_min;
        if (rt->port_users[offset] > 0 && --rt->port_users[offset] == 0)
            ring_push(rt, offset);
    }
}

/* ---- worlds ----------------------------------------------------------------- */

static bench_world *new_world(const char *ns, const char *name, const bdy_port *ports,
                              size_t nports)
{
    size_t ns_len = strlen(ns) + 1;
    size_t name_len = strlen(name) + 1;
    bench_world *w = calloc(1, sizeof(*w) + nports * sizeof(bdy_port) + ns_len + name_len);
    if (w == NULL)
        return NULL;
    w->ports = (bdy_port *)(w + 1);
    w->ns = (char *)(w->ports + nports);
    w->name = w->ns + ns_len;
    w->nports = nports;
    memcpy(w->ports, ports, nports * sizeof(bdy_port));
    memcpy(w->ns, ns, ns_len);
    memcpy(w->name, name, name_len);
    return w;
}

static void handle_of(const bench_world *w, bdy_world_handle *h)
{
    memset(h, 0, sizeof(*h));
    h->start_time = w->token;
    snprintf(h->address, sizeof(h->address), "%s", LOOPBACK);
    h->nports = w->nports;
    memcpy(h->ports, w->ports, w->nports * sizeof(bdy_port));
}

/* Records a new world with fresh ports (see runtime.h); nothing runs. Any
 * thread. */
static int bench_start(void *ctx, const bdy_world_spec *spec, bdy_world_handle *h, bdy_errbuf *eb)
{
    bench_runtime *rt = ctx;
    int rc = 0;
    bench_world *w = NULL;
    if (spec == NULL || h == NULL)
        return bdy_fail(eb, BDY_EINVAL, "start: spec and handle are required");
    rc = bdy__runtime_check_names(spec->ns, spec->name, eb);
    if (rc != 0)
        return rc;
    if (spec->nports > BDY_RUNTIME_MAX_PORTS)
        return bdy_fail(eb, BDY_EINVAL, "world %s/%s has more than %d ports", spec->ns, spec->name,
                        BDY_RUNTIME_MAX_PORTS);
    memset(h, 0, sizeof(*h));
    snprintf(h->address, sizeof(h->address), "%s", LOOPBACK);
    h->nports = spec->nports;
    for (size_t i = 0; i < spec->nports; i++) {
        snprintf(h->ports[i].name, sizeof(h->ports[i].name), "%.*s",
                 (int)sizeof(spec->ports[i].name) - 1, spec->ports[i].name);
        snprintf(h->ports[i].protocol, sizeof(h->ports[i].protocol), "%s",
                 strncmp(spec->ports[i].protocol, "UDP", sizeof(h->ports[i].protocol)) == 0
                     ? "UDP"
                     : "TCP");
    }
    w = new_world(spec->ns, spec->name, h->ports, h->nports);
    if (w == NULL)
        return bdy_fail(eb, BDY_ENOMEM, "out of memory");

    pthread_mutex_lock(&rt->lock);
    if (find_name(rt, spec->ns, spec->name) != NULL) {
        rc = bdy_fail(eb, BDY_EEXISTS, "world %s/%s is already running", spec->ns, spec->name);
        goto out;
    }
    if (grow_if_full(rt) != 0) {
        rc = bdy_fail(eb, BDY_ENOMEM, "out of memory");
        goto out;
    }
    uint64_t now = bdy_monotonic_ns();
    w->token = now > rt->last_token ? now : rt->last_token + 1;
    rt->last_token = w->token;
    for (size_t i = 0; i < w->nports; i++)
        w->ports[i].port = h->ports[i].port = take_port(rt);
    h->start_time = w->token;
    insert_world(rt, w);
    rt->count++;
    w = NULL;
out:
    pthread_mutex_unlock(&rt->lock);
    free(w);
    return rc;
}

/* Takes back a world recorded before a restart: bench worlds never exit on
 * their own, so any handle from start() is taken back, with its ports.
 * Adopting a world already known is a no-op. Any thread. */
static int bench_adopt(void *ctx, const char *ns, const char *name, const bdy_world_handle *h,
                       bdy_errbuf *eb)
{
    bench_runtime *rt = ctx;
    int rc = bdy__runtime_check_names(ns, name, eb);
    if (rc != 0)
        return rc;
    if (h == NULL || h->nports > BDY_RUNTIME_MAX_PORTS)
        return bdy_fail(eb, BDY_EINVAL, "adopt %s/%s: invalid handle", ns, name);
    if (h->start_time == 0)
        return bdy_fail(eb, BDY_ENOTFOUND, "world %s/%s: the handle records no start", ns, name);
    bench_world *w = new_world(ns, name, h->ports, h->nports);
    if (w == NULL)
        return bdy_fail(eb, BDY_ENOMEM, "out of memory");
    w->token = h->start_time;

    pthread_mutex_lock(&rt->lock);
    if (find_token(rt, w->token) != NULL)
        goto out;
    if (find_name(rt, ns, name) != NULL) {
        rc = bdy_fail(eb, BDY_EEXISTS, "world %s/%s is already running", ns, name);
        goto out;
    }
    if (grow_if_full(rt) != 0) {
        rc = bdy_fail(eb, BDY_ENOMEM, "out of memory");
        goto out;
    }
    if (w->token > rt->last_token)
        rt->last_token = w->token;
    hold_ports(rt, w);
    insert_world(rt, w);
    rt->count++;
    w = NULL;
out:
    pthread_mutex_unlock(&rt->lock);
    free(w);
    return rc;
}

/* RUNNING until ready_delay_ms after the start, READY after; EXITED once
 * the exit has been reported. The probe is not run. Any thread. */
static int bench_observe(void *ctx, const char *ns, const char *name, const bdy_world_handle *h,
                         const bdy_probe *probes, size_t nprobes, bdy_world_state *state)
{
    bench_runtime *rt = ctx;
    (void)ns;
    (void)name;
    (void)probes;
    (void)nprobes;
    if (h == NULL || state == NULL)
        return BDY_EINVAL;
    pthread_mutex_lock(&rt->lock);
    const bench_world *w = find_token(rt, h->start_time);
    if (w == NULL)
        *state = BDY_WORLD_EXITED;
    else if (bdy_monotonic_ns() - w->token >= rt->ready_delay_ns)
        *state = BDY_WORLD_READY;
    else
        *state = BDY_WORLD_RUNNING;
    pthread_mutex_unlock(&rt->lock);
    return 0;
}

/* Queues the world's exit report; the grace period does not apply, as
 * nothing needs to be asked to stop. Any thread. */
static int bench_stop(void *ctx, const bdy_world_handle *h, unsigned grace_ms)
{
    bench_runtime *rt = ctx;
    (void)grace_ms;
    if (h == NULL)
        return BDY_EINVAL;
    pthread_mutex_lock(&rt->lock);
    bench_world *w = find_token(rt, h->start_time);
    if (w != NULL && w->exit_at_ns == 0) {
        w->exit_at_ns = bdy_monotonic_ns() + EXIT_DELAY_NS;
        if (rt->exit_tail != NULL)
            rt->exit_tail->next_exit = w;
        else
            rt->exit_head = w;
        rt->exit_tail = w;
        pthread_cond_signal(&rt->changed);
    }
    pthread_mutex_unlock(&rt->lock);
    return 0;
}

/* Reports queued exits once they are due. The queue is in deadline order
 * because every world waits the same delay. */
static void *exit_main(void *arg)
{
    bench_runtime *rt = arg;
    pthread_mutex_lock(&rt->lock);
    while (!rt->stopping) {
        bench_world *w = rt->exit_head;
        if (w == NULL) {
            pthread_cond_wait(&rt->changed, &rt->lock);
            continue;
        }
        if (w->exit_at_ns > bdy_monotonic_ns()) {
            struct timespec until = {.tv_sec = (time_t)(w->exit_at_ns / 1000000000u),
                                     .tv_nsec = (long)(w->exit_at_ns % 1000000000u)};
            pthread_cond_timedwait(&rt->changed, &rt->lock, &until);
            continue;
        }
        rt->exit_head = w->next_exit;
        if (rt->exit_head == NULL)
            rt->exit_tail = NULL;
        remove_world(rt, w);
        release_ports(rt, w);
        pthread_mutex_unlock(&rt->lock);

        bdy_world_handle h;
        handle_of(w, &h);
        rt->on_exit(rt->data, w->ns, w->name, &h, 0);
        free(w);
        pthread_mutex_lock(&rt->lock);
    }
    pthread_mutex_unlock(&rt->lock);
    return NULL;
}

/* Stops the thread and frees every world; exits still queued are not
 * reported. Not from the exit callback, and with no other call in
 * flight. */
static void bench_destroy(void *ctx)
{
    bench_runtime *rt = ctx;
    if (rt == NULL)
        return;
    if (rt->thread_started) {
        pthread_mutex_lock(&rt->lock);
        rt->stopping = true;
        pthread_cond_signal(&rt->changed);
        pthread_mutex_unlock(&rt->lock);
        pthread_join(rt->thread, NULL);
    }
    for (size_t i = 0; rt->by_token != NULL && i < rt->nbuckets; i++) {
        bench_world *w = rt->by_token[i];
        while (w != NULL) {
            bench_world *next = w->next_token;
            free(w);
            w = next;
        }
    }
    free(rt->by_token);
    free(rt->by_name);
    free(rt->port_users);
    free(rt->port_queued);
    free(rt->free_ring);
    pthread_cond_destroy(&rt->changed);
    pthread_mutex_destroy(&rt->lock);
    free(rt);
}

static const bdy_runtime_vtable bench_vtable = {
    .name = "bench",
    .start = bench_start,
    .adopt = bench_adopt,
    .reclaim = NULL, /* no process, so none is ever left unrecorded */
    .stop_strays = NULL,
    .observe = bench_observe,
    .stop = bench_stop,
    .destroy = bench_destroy,
};

int bdy_runtime_bench_new(const bdy_bench_runtime_opts *opts, bdy_runtime **out, bdy_errbuf *eb)
{
    int rc = 0;
    bench_runtime *rt = NULL;
    bdy_runtime *r = NULL;
    if (opts == NULL || out == NULL || opts->on_exit == NULL)
        return bdy_fail(eb, BDY_EINVAL, "bench runtime: options with on_exit are required");
    if (opts->port_min < 1 || opts->port_max > 65535 || opts->port_min > opts->port_max)
        return bdy_fail(eb, BDY_EINVAL, "bench runtime: port range %u-%u is not within 1-65535",
                        opts->port_min, opts->port_max);
    rt = calloc(1, sizeof(*rt));
    if (rt == NULL)
        return bdy_fail(eb, BDY_ENOMEM, "out of memory");
    pthread_mutex_init(&rt->lock, NULL);
    /* Deadlines are monotonic; a wall-clock jump must not delay exits. */
    bdy_cond_init_monotonic(&rt->changed);
    rt->port_min = opts->port_min;
    rt->span = opts->port_max - opts->port_min + 1;
    rt->ready_delay_ns = (uint64_t)opts->ready_delay_ms * 1000000u;
    rt->on_exit = opts->on_exit;
    rt->data = opts->data;
    rt->nbuckets = INITIAL_BUCKETS;
    rt->by_token = calloc(rt->nbuckets, sizeof(bench_world *));
    rt->by_name = calloc(rt->nbuckets, sizeof(bench_world *));
    rt->port_users = calloc(rt->span, sizeof(*rt->port_users));
    rt->port_queued = calloc(rt->span, sizeof(*rt->port_queued));
    rt->free_ring = calloc(rt->span, sizeof(*rt->free_ring));
    r = malloc(sizeof(*r));
    if (rt->by_token == NULL || rt->by_name == NULL || rt->port_users == NULL ||
        rt->port_queued == NULL || rt->free_ring == NULL || r == NULL) {
        rc = bdy_fail(eb, BDY_ENOMEM, "out of memory");
        goto out;
    }
    for (unsigned i = 0; i < rt->span; i++)
        ring_push(rt, i);
    int err = pthread_create(&rt->thread, NULL, exit_main, rt);
    if (err != 0) {
        rc = bdy_fail(eb, BDY_EIO, "bench runtime: cannot start its thread: %s", strerror(err));
        goto out;
    }
    rt->thread_started = true;
    r->vt = &bench_vtable;
    r->ctx = rt;
    *out = r;
    rt = NULL;
    r = NULL;
out:
    bench_destroy(rt);
    free(r);
    return rc;
}
