/* Black-box tests of embedded mode end to end: real bindery, real world
 * processes (examples/world/arena-world), claims over HTTP. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include "bindery/pool.h"
#include "bindery/store.h"
#include "bindery/util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *const JSON_HDR[] = {"Content-Type: application/json", NULL};

static const char *world_bin(void)
{
    const char *b = getenv("ARENA_WORLD_BIN");
    if (b == NULL || b[0] == '\0') {
        fprintf(stderr, "ARENA_WORLD_BIN is not set\n");
        exit(2);
    }
    return b;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The config text of one pool "arena" of real worlds (cooldown_s is its
 * scaleDownCooldownSeconds), for setup and for reloads. */
/* The config's manifests and runtime sections, to which pools are added.
 * Ports below the default range (20000-29999, other tests' worlds) and
 * below the kernel's ephemeral ports (32768 up): a world told to listen
 * only after a delay has no bound port to keep it from a client socket or
 * another test's world meanwhile. Returns the length written. */
static int runtime_config(char *out, size_t cap)
{
    unsigned base = 10000 + (unsigned)(getpid() % 50) * 200;
    return snprintf(out, cap,
                    "manifests: [manifests]\n"
                    "runtime:\n  workDir: .\n  logDir: worlds\n  portMin: %u\n  portMax: %u\n",
                    base, base + 199);
}

static void pool_config(char *out, size_t cap, unsigned min_warm, unsigned max_warm,
                        unsigned max_worlds, unsigned cooldown_s)
{
    int n = runtime_config(out, cap);
    snprintf(out + n, cap - (size_t)n,
             "pools:\n"
             "  - name: arena\n    manifest: arena\n    minWarm: %u\n    maxWarm: %u\n"
             "    maxWorlds: %u\n    scaleDownCooldownSeconds: %u\n    creationRate: 50\n"
             "    labels: {game: arena}\n",
             min_warm, max_warm, max_worlds, cooldown_s);
}

/* Rewrites the config with new pool numbers, sends SIGHUP and waits for
 * the reload. */
static void reload_pool(bb_server *s, unsigned min_warm, unsigned max_warm, unsigned max_worlds,
                        unsigned cooldown_s)
{
    char cfg[1024];
    pool_config(cfg, sizeof(cfg), min_warm, max_warm, max_worlds, cooldown_s);
    bb_write(s, "bindery.yaml", cfg);
    bb_signal(s, SIGHUP);
    assert_true(bb_log_contains(s, "reloaded", 5000));
}

/* A config with one pool "arena" of real worlds; args are appended to the
 * world's command line. */
#define ARENA_PROBE "{tcpSocket: {port: game}, periodSeconds: 1}"

/* Writes the pool's manifest "arena": the example world, args appended to
 * its command line, probe as its readinessProbe, deadline_s to be Ready. */
static void write_arena_manifest_grace(bb_server *s, const char *probe, unsigned deadline_s,
                                       unsigned grace_s, const char *args)
{
    char manifest[2048];
    snprintf(manifest, sizeof(manifest),
             "apiVersion: bindery.dev/v1alpha1\nkind: ModuleManifest\n"
             "metadata: {name: arena, namespace: default}\n"
             "spec:\n"
             "  ports: [{name: game, containerPort: 7777, protocol: TCP}]\n"
             "  readinessProbe: %s\n"
             "  terminationGracePeriodSeconds: %u\n"
             "  startDeadlineSeconds: %u\n"
             "  local:\n"
             "    command: %s\n"
             "    args: [\"--port\", \"{port:game}\", \"--name\", \"{name}\"%s]\n",
             probe, grace_s, deadline_s, world_bin(), args ? args : "");
    bb_write(s, "manifests/arena.yaml", manifest);
}

static void write_arena_manifest(bb_server *s, const char *probe, unsigned deadline_s,
                                 const char *args)
{
    write_arena_manifest_grace(s, probe, deadline_s, 2, args);
}

static void setup_server_warm(bb_server *s, unsigned min_warm, unsigned max_warm,
                              unsigned max_worlds, const char *args, unsigned cooldown_s)
{
    char cfg[1024];
    pool_config(cfg, sizeof(cfg), min_warm, max_warm, max_worlds, cooldown_s);
    bb_init(s, cfg);
    write_arena_manifest(s, ARENA_PROBE, 20, args);
}

/* A pool whose warm target may grow to max_worlds. */
static void setup_server(bb_server *s, unsigned min_warm, unsigned max_worlds, const char *args,
                         unsigned cooldown_s)
{
    setup_server_warm(s, min_warm, max_worlds, max_worlds, args, cooldown_s);
}

static json_object *get_json(bb_server *s, const char *path, long *status)
{
    bb_response r = bb_request(s, "GET", path, NULL, NULL);
    *status = r.status;
    json_object *o = json_tokener_parse(r.body ? r.body : "");
    bb_response_free(&r);
    return o;
}

/* Waits until GET /v1/worlds shows world `name` Allocated to allocation
 * `id` (the claim reached the world's status) and, when label is not NULL,
 * carrying that label key (the world controller copied the claim's labels). */
static bool wait_world_allocated(bb_server *s, const char *name, const char *id, const char *label,
                                 int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 100) {
        long status = 0;
        json_object *list = get_json(s, "/v1/worlds?limit=1000", &status);
        json_object *items = json_object_object_get(list, "items");
        bool ok = false;
        for (size_t i = 0; items != NULL && i < json_object_array_length(items) && !ok; i++) {
            json_object *w = json_object_array_get_idx(items, i);
            const char *wn = json_object_get_string(json_object_object_get(w, "name"));
            const char *wid = json_object_get_string(json_object_object_get(w, "allocationId"));
            const char *phase = json_object_get_string(json_object_object_get(w, "phase"));
            json_object *labels = json_object_object_get(w, "labels");
            ok = wn && strcmp(wn, name) == 0 && wid && strcmp(wid, id) == 0 && phase &&
                 strcmp(phase, "Allocated") == 0 &&
                 (label == NULL || json_object_object_get_ex(labels, label, NULL));
        }
        json_object_put(list);
        if (ok)
            return true;
        sleep_ms(100);
    }
    char why[256];
    snprintf(why, sizeof(why), "world %.100s not Allocated to %.60s within %d ms", name, id,
             timeout_ms);
    bb_print_log_tail(s, why);
    return false;
}

static int pool_field(bb_server *s, const char *field)
{
    long status = 0;
    json_object *p = get_json(s, "/v1/pools/default/arena", &status);
    int v = -1;
    json_object *st = NULL;
    json_object *f = NULL;
    if (status == 200 && json_object_object_get_ex(p, "status", &st) &&
        json_object_object_get_ex(st, field, &f))
        v = json_object_get_int(f);
    json_object_put(p);
    return v;
}

/* The pool's count field once it reads want, or its last reading after
 * timeout_ms: counts follow a claim's answer through the informer. */
static int settled_pool_field(bb_server *s, const char *field, int want, int timeout_ms)
{
    int v = pool_field(s, field);
    for (int waited = 0; v != want && waited < timeout_ms; waited += 100) {
        sleep_ms(100);
        v = pool_field(s, field);
    }
    return v;
}

/* Waits (up to timeout_ms) until the pool reports at least n warm worlds. */
static bool wait_warm(bb_server *s, int n, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 100) {
        if (pool_field(s, "warm") >= n)
            return true;
        sleep_ms(100);
    }
    char why[96];
    snprintf(why, sizeof(why), "not %d warm worlds within %d ms", n, timeout_ms);
    bb_print_log_tail(s, why);
    return false;
}

/* A real-world pool (setup_server's numbers), started, its warm worlds
 * Ready. */
static void start_warm(bb_server *s, unsigned warm, unsigned max_worlds, unsigned cooldown_s)
{
    setup_server(s, warm, max_worlds, NULL, cooldown_s);
    assert_true(bb_start(s, NULL));
    assert_true(wait_warm(s, (int)warm, 30000));
}

typedef struct claim {
    long status;
    char id[64];
    char name[128];
    char source[16];
    int port;
    char body[4096];
} claim;

static claim post_claim(bb_server *s, const char *body, const char *idem_key)
{
    claim c;
    memset(&c, 0, sizeof(c));
    char key_hdr[200];
    const char *hdrs[3] = {"Content-Type: application/json", NULL, NULL};
    if (idem_key != NULL) {
        snprintf(key_hdr, sizeof(key_hdr), "Idempotency-Key: %s", idem_key);
        hdrs[1] = key_hdr;
    }
    bb_response r = bb_request(s, "POST", "/v1/allocations", body, hdrs);
    c.status = r.status;
    snprintf(c.body, sizeof(c.body), "%s", r.body ? r.body : "");
    json_object *o = json_tokener_parse(c.body);
    json_object *v = NULL;
    if (json_object_object_get_ex(o, "allocationId", &v))
        snprintf(c.id, sizeof(c.id), "%s", json_object_get_string(v));
    if (json_object_object_get_ex(o, "source", &v))
        snprintf(c.source, sizeof(c.source), "%s", json_object_get_string(v));
    json_object *w = NULL;
    if (json_object_object_get_ex(o, "world", &w)) {
        if (json_object_object_get_ex(w, "name", &v))
            snprintf(c.name, sizeof(c.name), "%s", json_object_get_string(v));
        json_object *ports = NULL;
        if (json_object_object_get_ex(w, "ports", &ports) && json_object_array_length(ports) > 0 &&
            json_object_object_get_ex(json_object_array_get_idx(ports, 0), "port", &v))
            c.port = json_object_get_int(v);
    }
    json_object_put(o);
    bb_response_free(&r);
    return c;
}

/* Connects to 127.0.0.1:port, sends "ping\n", returns the answer line. */
static bool ping_world(int port, char *answer, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
              write(fd, "ping\n", 5) == 5;
    ssize_t n = ok ? read(fd, answer, cap - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return false;
    answer[n] = '\0';
    return true;
}

static void test_claim_ping_release_refill(void **state)
{
    (void)state;
    bb_server s;
    start_warm(&s, 2, 10, 0);

    /* Selectors no warm world matches: the 503 says so, not that the
     * pool has none. */
    claim none = post_claim(
        &s, "{\"pool\":\"arena\",\"selectors\":[{\"matchLabels\":{\"tier\":\"none\"}}]}", NULL);
    assert_int_equal(none.status, 503);
    assert_non_null(strstr(none.body, "no warm world matches the selectors in pool default/arena"));

    claim c = post_claim(&s,
                         "{\"pool\":\"arena\",\"claimant\":\"mm-1\","
                         "\"metadata\":{\"labels\":{\"match-id\":\"m-1\"}}}",
                         NULL);
    assert_int_equal(c.status, 201);
    assert_string_equal(c.source, "warm");
    assert_true(strncmp(c.id, "alc-", 4) == 0);
    assert_non_null(strstr(c.body, "\"match-id\":\"m-1\""));
    char answer[128];
    assert_true(ping_world(c.port, answer, sizeof(answer)));
    assert_non_null(strstr(answer, "pong"));
    assert_non_null(strstr(answer, c.name));

    /* GET shows it allocated; the pool refills to its target. */
    char path[128];
    snprintf(path, sizeof(path), "/v1/allocations/%s", c.id);
    long status = 0;
    json_object *g = get_json(&s, path, &status);
    assert_int_equal(status, 200);
    assert_string_equal(json_object_get_string(json_object_object_get(g, "state")), "Allocated");
    json_object_put(g);
    /* The claim reaches the world's status (and the claim's labels its
     * metadata) shortly after the answer. */
    assert_true(wait_world_allocated(&s, c.name, c.id, "match-id", 10000));
    assert_true(wait_warm(&s, 2, 30000));
    assert_int_equal(settled_pool_field(&s, "allocated", 1, 5000), 1);

    /* Release: 204, twice; the process goes away; GET says Released. */
    bb_response r = bb_request(&s, "DELETE", path, NULL, NULL);
    assert_int_equal(r.status, 204);
    bb_response_free(&r);
    r = bb_request(&s, "DELETE", path, NULL, NULL);
    assert_int_equal(r.status, 204);
    bb_response_free(&r);
    bool gone = false;
    for (int i = 0; i < 100 && !gone; i++) {
        gone = !ping_world(c.port, answer, sizeof(answer));
        if (!gone)
            sleep_ms(100);
    }
    assert_true(gone);
    g = get_json(&s, path, &status);
    assert_int_equal(status, 200);
    assert_string_equal(json_object_get_string(json_object_object_get(g, "state")), "Released");
    json_object_put(g);
    /* The world's history says who let it go (events are written in the
     * background). */
    char released[160];
    snprintf(released, sizeof(released), "allocation %s released by its client", c.id);
    char allocated[160];
    snprintf(allocated, sizeof(allocated), "allocation %s (warm) for mm-1", c.id);
    bool said = false;
    for (int i = 0; i < 100 && !said; i++) {
        r = bb_request(&s, "GET", "/api/v1/namespaces/default/events", NULL, NULL);
        said = r.status == 200 && strstr(r.body, released) != NULL &&
               strstr(r.body, allocated) != NULL;
        bb_response_free(&r);
        if (!said)
            sleep_ms(100);
    }
    assert_true(said);
    r = bb_request(&s, "DELETE", "/v1/allocations/alc-000000000000", NULL, NULL);
    assert_int_equal(r.status, 404);
    bb_response_free(&r);
    /* Metrics saw the claim. */
    r = bb_request(&s, "GET", "/metrics", NULL, NULL);
    assert_non_null(strstr(
        r.body, "bindery_allocations_total{namespace=\"default\",pool=\"arena\",source=\"warm\","
                "result=\"success\"} 1"));
    assert_non_null(strstr(
        r.body, "bindery_world_startup_seconds_count{namespace=\"default\",pool=\"arena\"}"));
    bb_response_free(&r);
    bb_cleanup(&s);
}

/* Worlds of the pool not being deleted, by the pool's own counts. */
static int pool_worlds(bb_server *s)
{
    int warm = pool_field(s, "warm");
    int starting = pool_field(s, "starting");
    int allocated = pool_field(s, "allocated");
    return warm < 0 || starting < 0 || allocated < 0 ? -1 : warm + starting + allocated;
}

/* A full pool whose claims were refused and then one released: misses
 * raise the target and the release queues the pool again, so the pool
 * controller runs several times before its first new world is reported.
 * It must still create one world, not one per run. */
static void test_max_worlds_holds_through_release(void **state)
{
    (void)state;
    bb_server s;
    start_warm(&s, 2, 4, 0);
    claim held[4];
    int n = 0;
    for (int i = 0; i < 300 && n < 4; i++) {
        held[n] = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
        if (held[n].status == 201)
            n++;
        else
            sleep_ms(100);
    }
    assert_int_equal(n, 4);
    for (int i = 0; i < 5; i++)
        assert_int_equal(post_claim(&s, "{\"pool\":\"arena\"}", NULL).status, 503);
    char path[128];
    snprintf(path, sizeof(path), "/v1/allocations/%s", held[0].id);
    bb_response r = bb_request(&s, "DELETE", path, NULL, NULL);
    assert_int_equal(r.status, 204);
    bb_response_free(&r);
    /* Watch the pool refill, then claim everything it has. */
    int most = 0;
    for (int waited = 0; waited < 4000; waited += 50) {
        int now = pool_worlds(&s);
        most = now > most ? now : most;
        sleep_ms(50);
    }
    assert_true(wait_warm(&s, 1, 30000));
    for (int waited = 0; waited < 20000 && pool_field(&s, "starting") != 0; waited += 100)
        sleep_ms(100);
    int more = 0;
    for (int i = 0; i < 10; i++)
        more += post_claim(&s, "{\"pool\":\"arena\"}", NULL).status == 201;
    printf("most worlds seen %d, claims after the release %d\n", most, more);
    assert_true(most <= 4);
    assert_int_equal(more, 1);
    bb_cleanup(&s);
}

static void test_idempotent_replay(void **state)
{
    (void)state;
    bb_server s;
    start_warm(&s, 2, 10, 0);
    const char *body = "{\"pool\":\"arena\",\"claimant\":\"mm-2\"}";
    claim a = post_claim(&s, body, "match 7781 try");
    assert_int_equal(a.status, 201);
    claim b = post_claim(&s, body, "match 7781 try");
    assert_int_equal(b.status, 200);
    assert_string_equal(a.id, b.id);
    assert_string_equal(a.name, b.name);
    claim d = post_claim(&s, "{\"pool\":\"arena\",\"claimant\":\"other\"}", "match 7781 try");
    assert_int_equal(d.status, 409);
    assert_non_null(strstr(d.body, "IdempotencyKeyReused"));
    assert_int_equal(settled_pool_field(&s, "allocated", 1, 5000), 1);
    /* Across a restart, too. */
    bb_signal(&s, SIGTERM);
    assert_true(bb_wait_exit(&s, 15000));
    assert_true(bb_start(&s, NULL));
    claim e = post_claim(&s, body, "match 7781 try");
    assert_int_equal(e.status, 200);
    assert_string_equal(a.id, e.id);
    /* And once a reload has removed its pool: the allocation is still the
     * claimant's, while a new claim finds no pool. */
    char cfg[1024];
    int n = runtime_config(cfg, sizeof(cfg));
    snprintf(cfg + n, sizeof(cfg) - (size_t)n, "pools: []\n");
    bb_write(&s, "bindery.yaml", cfg);
    bb_signal(&s, SIGHUP);
    assert_true(bb_log_contains(&s, "reloaded", 5000));
    claim f = post_claim(&s, body, "match 7781 try");
    assert_int_equal(f.status, 200);
    assert_string_equal(a.id, f.id);
    claim g = post_claim(&s, body, "match 7782 try");
    assert_int_equal(g.status, 404);
    bb_cleanup(&s);
}

typedef struct keyed_claim {
    bb_server *s;
    const char *body;
    char key[32]; /* its Idempotency-Key */
    claim result;
    atomic_bool done;
} keyed_claim;

static void *keyed_claim_main(void *arg)
{
    keyed_claim *k = arg;
    k->result = post_claim(k->s, k->body, k->key[0] ? k->key : NULL);
    atomic_store(&k->done, true);
    return NULL;
}

/* Retries of a keyed cold claim that is still starting wait for its answer
 * on suspended connections: more of them than the server has HTTP threads
 * leave it answering other requests, and each gets the first claim's
 * allocation. A retry with another body is refused at once. */
static void test_retries_of_pending_claim_hold_no_thread(void **state)
{
    (void)state;
    enum { RETRIES = 8 };
    bb_server s;
    setup_server(&s, 0, 5, ", \"--ready-delay-ms\", \"3000\"", 600);
    assert_true(bb_start(&s, NULL));
    const char *body = "{\"pool\":\"arena\",\"waitSeconds\":60}";
    keyed_claim first = {.s = &s, .body = body, .key = "cold retry 1"};
    keyed_claim retry[RETRIES];
    pthread_t th[RETRIES + 1];
    pthread_create(&th[0], NULL, keyed_claim_main, &first);
    assert_true(bb_log_contains(&s, "waiting up to 60 s for cold world", 10000));
    for (int i = 0; i < RETRIES; i++) {
        retry[i] = (keyed_claim){.s = &s, .body = body, .key = "cold retry 1"};
        pthread_create(&th[i + 1], NULL, keyed_claim_main, &retry[i]);
    }
    sleep_ms(300);
    /* With a thread held per retry (4 by default), these would wait for the
     * cold world, answered in the same moment as the first claim. */
    bb_response r = bb_request(&s, "GET", "/healthz", NULL, NULL);
    assert_int_equal(r.status, 200);
    bb_response_free(&r);
    claim other = post_claim(&s, "{\"pool\":\"arena\",\"waitSeconds\":59}", "cold retry 1");
    assert_int_equal(other.status, 409);
    assert_non_null(strstr(other.body, "IdempotencyKeyReused"));
    assert_false(atomic_load(&first.done));
    pthread_join(th[0], NULL);
    assert_int_equal(first.result.status, 201);
    for (int i = 0; i < RETRIES; i++) {
        pthread_join(th[i + 1], NULL);
        assert_int_equal(retry[i].result.status, 200);
        assert_string_equal(retry[i].result.id, first.result.id);
    }
    assert_int_equal(settled_pool_field(&s, "allocated", 1, 5000), 1);
    bb_cleanup(&s);
}

static void test_cold_claim_and_exhaustion(void **state)
{
    (void)state;
    bb_server s;
    setup_server(&s, 0, 1, NULL, 0);
    assert_true(bb_start(&s, NULL));
    /* No warm world and no wait: 503 with Retry-After. */
    bb_response r = bb_request(&s, "POST", "/v1/allocations", "{\"pool\":\"arena\"}", JSON_HDR);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "PoolExhausted"));
    assert_non_null(strstr(r.headers, "Retry-After"));
    bb_response_free(&r);
    /* With a wait: a cold world is started for this claim, and gets the
     * claim's metadata. */
    claim c = post_claim(&s,
                         "{\"pool\":\"arena\",\"waitSeconds\":30,\"metadata\":{\"labels\":"
                         "{\"match-id\":\"m-cold\"},\"annotations\":{\"note\":\"late\"}}}",
                         NULL);
    assert_int_equal(c.status, 201);
    assert_string_equal(c.source, "cold");
    assert_non_null(strstr(c.body, "\"match-id\":\"m-cold\""));
    assert_non_null(strstr(c.body, "\"note\":\"late\""));
    assert_null(strstr(c.body, "cold-claim")); /* bindery's own annotation */
    char answer[128];
    assert_true(ping_world(c.port, answer, sizeof(answer)));
    /* maxWorlds is 1 and it is allocated: even waiting claims get 503. */
    r = bb_request(&s, "POST", "/v1/allocations", "{\"pool\":\"arena\",\"waitSeconds\":5}",
                   JSON_HDR);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "maxWorlds"));
    bb_response_free(&r);
    bb_cleanup(&s);
}

/* A world that takes 400 ms to listen, probed every 10 s: its cold claim
 * is answered long before the second probe would have come, since a
 * Starting world is probed at half its age so far. (Probed once per
 * period, the first probe finds it not listening and the claim waits 10
 * s.) */
static void test_cold_world_is_seen_ready_before_its_period(void **state)
{
    (void)state;
    bb_server s;
    char cfg[1024];
    pool_config(cfg, sizeof(cfg), 0, 0, 2, 0);
    bb_init(&s, cfg);
    write_arena_manifest(&s, "{tcpSocket: {port: game}, periodSeconds: 10}", 30,
                         ", \"--ready-delay-ms\", \"400\"");
    assert_true(bb_start(&s, NULL));
    uint64_t t0 = bdy_monotonic_ns();
    claim c = post_claim(&s, "{\"pool\":\"arena\",\"waitSeconds\":30}", NULL);
    double took_s = (double)(bdy_monotonic_ns() - t0) / 1e9;
    assert_int_equal(c.status, 201);
    assert_string_equal(c.source, "cold");
    char answer[128];
    assert_true(ping_world(c.port, answer, sizeof(answer)));
    if (took_s >= 7.0)
        fail_msg("the cold claim took %.2f s: its world was seen Ready only at its second "
                 "probe, 10 s on",
                 took_s);
    bb_cleanup(&s);
}

/* Several keyed cold claims, each with retries waiting on it, whose worlds
 * become Ready together: every claim and every retry is answered, each
 * retry with its own key's allocation. (Answering a retry once dropped a
 * cold claim that had fallen due in the same pass: its client waited for
 * ever and its key stayed pending.) */
static void test_cold_claims_and_their_retries_all_answered(void **state)
{
    (void)state;
    enum { CLAIMS = 5, PER = 3 }; /* the first of each key, then two retries */
    bb_server s;
    /* The only worlds are the claims' own: no warm ones (maxWarm 0; the
     * misses would raise the target), and maxWorlds leaves no room to
     * spare. (A world the informer reported before its creator's create
     * returned was once counted twice, as a world and as its creator's
     * slot, and a claim made at that moment found the pool full.) */
    setup_server_warm(&s, 0, 0, CLAIMS, ", \"--ready-delay-ms\", \"2000\"", 600);
    assert_true(bb_start(&s, NULL));
    const char *body = "{\"pool\":\"arena\",\"waitSeconds\":60}";
    keyed_claim k[CLAIMS * PER];
    pthread_t th[CLAIMS * PER];
    for (int i = 0; i < CLAIMS * PER; i++) {
        k[i] = (keyed_claim){.s = &s, .body = body};
        snprintf(k[i].key, sizeof(k[i].key), "cold key %d", i % CLAIMS);
        if (i == CLAIMS) /* the retries after the first claims are waiting */
            assert_true(bb_log_contains(&s, "waiting up to 60 s for cold world", 10000));
        pthread_create(&th[i], NULL, keyed_claim_main, &k[i]);
        if (i == CLAIMS - 1)
            sleep_ms(500);
    }
    for (int i = 0; i < CLAIMS * PER; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < CLAIMS * PER; i++) {
        if (k[i].result.status != 201 && k[i].result.status != 200) {
            bb_print_log_tail(&s, "a claim was not answered with its world");
            fail_msg("claim %d (%s): %ld %s", i, k[i].key, k[i].result.status, k[i].result.body);
        }
        assert_string_equal(k[i].result.id, k[i % CLAIMS].result.id);
    }
    assert_int_equal(settled_pool_field(&s, "allocated", CLAIMS, 5000), CLAIMS);
    bb_cleanup(&s);
}

/* A retry that waited on a claim with its key gets that claim's answer
 * when it fails (here 504 ColdStartTimeout), not a code outside API.md's
 * table. */
static void test_retry_of_failed_cold_claim_gets_its_answer(void **state)
{
    (void)state;
    bb_server s;
    setup_server_warm(&s, 0, 0, 1, ", \"--ready-delay-ms\", \"60000\"", 600);
    assert_true(bb_start(&s, NULL));
    const char *body = "{\"pool\":\"arena\",\"waitSeconds\":2}";
    keyed_claim k[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        k[i] = (keyed_claim){.s = &s, .body = body};
        snprintf(k[i].key, sizeof(k[i].key), "doomed key");
        if (i == 1)
            assert_true(bb_log_contains(&s, "waiting up to 2 s for cold world", 10000));
        pthread_create(&th[i], NULL, keyed_claim_main, &k[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        if (k[i].result.status != 504 || strstr(k[i].result.body, "ColdStartTimeout") == NULL)
            fail_msg("claim %d: %ld %s", i, k[i].result.status, k[i].result.body);
    }
    bb_cleanup(&s);
}

/* Clients cannot take the descriptors bindery needs for its worlds: with
 * a limit of 200, more idle connections than that left warm worlds failing
 * their readiness probes (no socket for the probe). bindery now lowers its
 * connection limit to leave room, says so, and the worlds stay Ready. */
static void test_connections_leave_descriptors_for_worlds(void **state)
{
    (void)state;
    enum { CONNS = 260 };
    struct rlimit own;
    getrlimit(RLIMIT_NOFILE, &own);
    if (own.rlim_cur < own.rlim_max) { /* the test itself holds CONNS */
        own.rlim_cur = own.rlim_max;
        setrlimit(RLIMIT_NOFILE, &own);
    }
    bb_server s;
    setup_server(&s, 3, 5, NULL, 600);
    /* Too few to start with: said so, not a failure in libmicrohttpd's
     * thread set-up that did not say why. */
    s.nofile = 100;
    assert_false(bb_start(&s, NULL));
    assert_true(bb_wait_exit(&s, 10000));
    assert_true(bb_log_contains(&s, "the descriptor limit is 100: bindery needs at least 128", 0));
    s.nofile = 200;
    assert_true(bb_start(&s, NULL));
    assert_true(wait_warm(&s, 3, 30000));
    /* 256 kept for bindery's files and 2 per world, which 200 cannot hold:
     * the numbers say so rather than promise a reserve. */
    assert_true(bb_log_contains(&s,
                                "http.maxConnections 1024 lowered to 16, and even so bindery's "
                                "files and up to 5 worlds may need more than the 184 left (up "
                                "to 266)",
                                0));
    int fds[CONNS];
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < CONNS; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (fds[i] >= 0)
            connect(fds[i], (struct sockaddr *)&a, sizeof(a));
    }
    /* Three probe periods and more: long enough for failing probes to fail
     * a world. */
    sleep_ms(5000);
    for (int i = 0; i < CONNS; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    assert_false(bb_log_contains(&s, "readiness probe failed", 0));
    assert_false(bb_log_contains(&s, "Too many open files", 0));
    assert_true(wait_warm(&s, 3, 30000));
    claim c = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(c.status, 201);
    bb_cleanup(&s);
}

/* The connection limit is fitted to the descriptor limit at start only; a
 * reload whose pools allow more worlds than it left descriptors for says
 * so, with the limit a restart would use (it said nothing before). */
static void test_reload_warns_when_worlds_outgrow_descriptors(void **state)
{
    (void)state;
    bb_server s;
    setup_server(&s, 1, 5, NULL, 600);
    s.nofile = 600; /* 600 - (256 + 2 * 5) = 334 connections */
    assert_true(bb_start(&s, NULL));
    assert_true(bb_log_contains(&s, "http.maxConnections 1024 lowered to 334", 10000));
    assert_true(wait_warm(&s, 1, 30000));
    reload_pool(&s, 1, 5, 150, 600);
    /* 600 - (256 + 2 * 150) = 44 */
    assert_true(bb_log_contains(&s, "the reloaded pools allow up to 150 worlds", 0));
    assert_true(bb_log_contains(&s, "restart to lower it to 44", 0));
    claim c = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(c.status, 201);
    bb_cleanup(&s);
}

/* Writes the config of one pool "arena" of bench worlds (no processes:
 * large pools, quick) for bb_init or a reload. */
static void bench_pool_config(char *out, size_t cap, int min_warm, int max_warm, int max_worlds,
                              unsigned cooldown_s)
{
    snprintf(out, cap,
             "manifests: [manifests]\nruntime: {kind: bench, benchReadyDelayMs: 0}\n"
             "pools:\n  - name: arena\n    manifest: arena\n    minWarm: %d\n    maxWarm: %d\n"
             "    maxWorlds: %d\n    creationRate: 10000\n    scaleDownCooldownSeconds: %u\n",
             min_warm, max_warm, max_worlds, cooldown_s);
}

/* Starts a server with a pool of bench worlds and waits for warm of them. */
static void start_bench_pool(bb_server *s, int warm, int max_worlds, unsigned cooldown_s)
{
    char cfg[512];
    bench_pool_config(cfg, sizeof(cfg), warm, warm, max_worlds, cooldown_s);
    bb_init(s, cfg);
    bb_write(s, "manifests/arena.yaml",
             "apiVersion: bindery.dev/v1alpha1\nkind: ModuleManifest\n"
             "metadata: {name: arena, namespace: default}\n"
             "spec:\n  ports: [{name: game, containerPort: 7777, protocol: UDP}]\n"
             "  local: {command: /bin/true}\n");
    assert_true(bb_start(s, NULL));
    assert_true(wait_warm(s, warm, 60000));
}

/* A pool whose creates the store keeps refusing (here the WorldInstance
 * CRD, edited, refuses its pool's name) backs off like one whose worlds
 * crash, instead of retrying at its creation rate for good. */
static void test_refused_creates_back_off(void **state)
{
    (void)state;
    bb_server s;
    bb_init(&s, "manifests: [manifests]\nruntime: {kind: bench, benchReadyDelayMs: 0}\n"
                "pools:\n  - name: arena\n    manifest: arena\n    minWarm: 2\n    maxWarm: 2\n"
                "    maxWorlds: 4\n    creationRate: 20\n");
    bb_write(&s, "manifests/arena.yaml",
             "apiVersion: bindery.dev/v1alpha1\nkind: ModuleManifest\n"
             "metadata: {name: arena, namespace: default}\n"
             "spec:\n  ports: [{name: game, containerPort: 7777, protocol: UDP}]\n"
             "  local: {command: /bin/true}\n");
    assert_true(bb_start(&s, NULL));
    assert_true(wait_warm(&s, 2, 30000));
    const char *crd_path =
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/worldinstances.bindery.dev";
    long status = 0;
    json_object *crd = get_json(&s, crd_path, &status);
    assert_int_equal(status, 200);
    json_object *pool = crd;
    const char *const steps[] = {"spec",   "versions",        NULL,
                                 "schema", "openAPIV3Schema", "properties",
                                 "spec",   "properties",      "pool"};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]) && pool != NULL; i++)
        pool =
            steps[i] ? json_object_object_get(pool, steps[i]) : json_object_array_get_idx(pool, 0);
    assert_non_null(pool);
    json_object_object_add(pool, "maxLength", json_object_new_int(1));
    const char *const hdrs[] = {"Content-Type: application/json", NULL};
    bb_response r = bb_request(&s, "PUT", crd_path, json_object_to_json_string(crd), hdrs);
    assert_int_equal(r.status, 200);
    bb_response_free(&r);
    json_object_put(crd);

    /* A claim: the pool wants a world in its place, and every create is
     * refused. */
    claim c = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(c.status, 201);
    assert_true(bb_log_contains(&s, "cannot create world", 20000));
    sleep_ms(8000);
    /* Each refusal logs one line: at 20 creates a second, without backoff,
     * 8 s give over a hundred. */
    int refusals = bb_log_count(&s, "cannot create world");
    printf("# refused creates in about 8 s: %d\n", refusals);
    assert_true(refusals >= 3);
    assert_true(refusals <= 20);
    /* An operator sees it: a warning, the failures counted and the wait. */
    assert_true(bb_log_contains(&s, "failures in a row; creating worlds again in", 0));
    r = bb_request(&s, "GET", "/metrics", NULL, NULL);
    assert_int_equal(r.status, 200);
    const char *failures =
        strstr(r.body, "bindery_pool_world_failures_total{namespace=\"default\",pool=\"arena\"} ");
    assert_non_null(failures);
    assert_true(atoi(strchr(failures, '}') + 2) >= 3);
    assert_non_null(strstr(
        r.body, "bindery_pool_creation_backoff_seconds{namespace=\"default\",pool=\"arena\"}"));
    bb_response_free(&r);
    bb_cleanup(&s);
}

/* Rewrites a bench pool's warm numbers and sends SIGHUP (no wait). */
static void reload_bench_pool(bb_server *s, int warm, int max_worlds, unsigned cooldown_s)
{
    char cfg[512];
    bench_pool_config(cfg, sizeof(cfg), warm, warm, max_worlds, cooldown_s);
    bb_write(s, "bindery.yaml", cfg);
    bb_signal(s, SIGHUP);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Claims made while the pool scales down: no world given to a claim is
 * deleted under it. The scale-down's delete carried the world's
 * resourceVersion as its only guard, and a ledger claim does not change
 * it: a claim answered 201 lost its world a moment later (released,
 * WorldExited). Bench worlds, so that the pool is large and quick. */
static void test_scale_down_spares_claimed_worlds(void **state)
{
    (void)state;
    enum { WARM = 200, MAX_CLAIMS = 400 };
    bb_server s;
    start_bench_pool(&s, WARM, 1000, 0);
    reload_bench_pool(&s, 0, 1000, 0);
    /* Claims until the pool has no warm world left (or a bound). */
    static claim got[MAX_CLAIMS];
    int n = 0;
    uint64_t t0 = now_ms();
    while (n < MAX_CLAIMS && now_ms() - t0 < 10000) {
        claim c = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
        if (c.status != 201) {
            if (bb_log_contains(&s, "scaled down", 0))
                break;
            continue;
        }
        got[n++] = c;
    }
    assert_true(bb_log_contains(&s, "scaled down", 10000));
    assert_true(n > 0);
    /* Every claim answered still holds its world once the claims have
     * reached the worlds' status (where a deleted world ends its claim). */
    for (int i = 0; i < n; i++) {
        (void)wait_world_allocated(&s, got[i].name, got[i].id, NULL, 5000);
        char path[128];
        snprintf(path, sizeof(path), "/v1/allocations/%s", got[i].id);
        bb_response r = bb_request(&s, "GET", path, NULL, NULL);
        if (r.status != 200 || strstr(r.body, "\"state\":\"Allocated\"") == NULL) {
            bb_print_log_tail(&s, "a claimed world was scaled down");
            fail_msg("claim %d of %d (%s on %s): %ld %s", i, n, got[i].id, got[i].name, r.status,
                     r.body);
        }
        bb_response_free(&r);
    }
    bb_cleanup(&s);
}

/* Sums N over the log's "scaled down N idle worlds" lines. */
static int scaled_down_total(bb_server *s)
{
    FILE *f = fopen(s->log, "r");
    if (f == NULL)
        return -1;
    int total = 0;
    char line[4096];
    while (fgets(line, sizeof(line), f) != NULL) {
        const char *p = strstr(line, "scaled down ");
        int n = 0;
        if (p != NULL && sscanf(p, "scaled down %d idle worlds", &n) == 1)
            total += n;
    }
    fclose(f);
    return total;
}

/* Scale-down deletes the surplus and no more: a second pass made before
 * the informer had reported the first pass's deletes found the same
 * surplus and deleted other worlds for it. */
static void test_scale_down_deletes_only_the_surplus(void **state)
{
    (void)state;
    bb_server s;
    start_bench_pool(&s, 300, 1000, 0);
    reload_bench_pool(&s, 100, 1000, 0);
    assert_true(bb_log_contains(&s, "scaled down", 10000));
    assert_int_equal(settled_pool_field(&s, "warm", 100, 20000), 100);
    sleep_ms(2000); /* passes that would delete more have run by now */
    int deleted = scaled_down_total(&s);
    if (deleted != 200) {
        bb_print_log_tail(&s, "scale-down deleted other than the surplus");
        fail_msg("scaled down %d worlds for a surplus of 200", deleted);
    }
    bb_cleanup(&s);
}

/* One client of a burst: claims until told to stop or refused, counting
 * the answers by kind. */
typedef struct burst_client {
    bb_server *s;
    atomic_bool *stop;
    int created;    /* 201 */
    int refused;    /* 503 ShuttingDown */
    int unanswered; /* no HTTP answer: the server had closed */
    int other;
    char last_other[256];
} burst_client;

static void *burst_client_main(void *arg)
{
    burst_client *b = arg;
    for (int i = 0; i < 100000 && !atomic_load(b->stop); i++) {
        claim c = post_claim(b->s, "{\"pool\":\"arena\"}", NULL);
        if (c.status == 201) {
            b->created++;
        } else if (c.status == 503 && strstr(c.body, "ShuttingDown") != NULL) {
            b->refused++;
        } else if (c.status == 0) {
            b->unanswered++;
            break; /* the listener is gone */
        } else {
            b->other++;
            snprintf(b->last_other, sizeof(b->last_other), "%ld %s", c.status, c.body);
        }
    }
    return NULL;
}

/* Starts n clients claiming from s until stop. */
static void burst_start(bb_server *s, atomic_bool *stop, burst_client *b, pthread_t *th, int n)
{
    for (int i = 0; i < n; i++) {
        b[i] = (burst_client){.s = s, .stop = stop};
        pthread_create(&th[i], NULL, burst_client_main, &b[i]);
    }
}

/* SIGTERM during a burst of claims: every claim whose commit had begun is
 * answered with its real outcome before the server stops. The stop used
 * to answer claims waiting for their ledger commit 503 ShuttingDown, and
 * the commit landed anyway: after the restart the pool had more claimed
 * worlds than clients were told of. Bench worlds, for a quick large pool. */
static void test_drain_answers_claims_being_committed(void **state)
{
    (void)state;
    enum { CLIENTS = 12, WARM = 3000 };
    bb_server s;
    start_bench_pool(&s, WARM, 2 * WARM, 600);
    atomic_bool stop;
    atomic_init(&stop, false);
    burst_client b[CLIENTS];
    pthread_t th[CLIENTS];
    burst_start(&s, &stop, b, th, CLIENTS);
    sleep_ms(400);
    bb_signal(&s, SIGTERM);
    assert_true(bb_wait_exit(&s, 30000));
    atomic_store(&stop, true);
    int created = 0, refused = 0, unanswered = 0, other = 0;
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(th[i], NULL);
        created += b[i].created;
        refused += b[i].refused;
        unanswered += b[i].unanswered;
        other += b[i].other;
        if (b[i].other > 0)
            fprintf(stderr, "client %d: unexpected answer %s\n", i, b[i].last_other);
    }
    fprintf(stderr, "drain: %d claimed, %d refused, %d unanswered, %d other\n", created, refused,
            unanswered, other);
    assert_int_equal(s.exit_status, 0);
    assert_true(created > 0);
    assert_int_equal(other, 0);
    assert_true(bb_start(&s, NULL));
    int allocated = settled_pool_field(&s, "allocated", created, 10000);
    if (allocated != created) {
        bb_print_log_tail(&s, "claimed worlds after the restart differ from the claims answered");
        fail_msg("%d worlds claimed after the restart, %d claims answered 201", allocated, created);
    }
    bb_cleanup(&s);
}

/* `bindery backup` while claims stream in, then a start from the copy:
 * every claim answered before the backup began is there with its world,
 * none made after it finished is, the claimed worlds are as many as the
 * copy's claims say, and the pool serves claims again. */
static void test_backup_while_claiming(void **state)
{
    (void)state;
    enum { BEFORE = 20, AFTER = 5, CLIENTS = 4, WARM = 2000 };
    bb_server s;
    start_bench_pool(&s, WARM, 2 * WARM, 600);
    claim before[BEFORE];
    for (int i = 0; i < BEFORE; i++) {
        before[i] = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
        assert_int_equal(before[i].status, 201);
    }
    atomic_bool stop;
    atomic_init(&stop, false);
    burst_client b[CLIENTS];
    pthread_t th[CLIENTS];
    burst_start(&s, &stop, b, th, CLIENTS);
    sleep_ms(200);
    char copy[160];
    snprintf(copy, sizeof(copy), "%s/copy", s.dir);
    char *out = NULL;
    int rc = bb_run(
        &s,
        (const char *const[]){"backup", "--config", s.config, "--data", s.data, "--to", copy, NULL},
        NULL, &out);
    if (rc != 0 || strstr(out, "backed up ") == NULL)
        fail_msg("backup: %d %s", rc, out);
    free(out);
    atomic_store(&stop, true);
    int created = 0;
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(th[i], NULL);
        created += b[i].created;
        assert_int_equal(b[i].other, 0);
    }
    claim after[AFTER];
    for (int i = 0; i < AFTER; i++) {
        after[i] = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
        assert_int_equal(after[i].status, 201);
    }
    bb_signal(&s, SIGTERM);
    assert_true(bb_wait_exit(&s, 30000));
    /* The copy becomes the data folder. */
    char live[160];
    snprintf(live, sizeof(live), "%s/data-live", s.dir);
    assert_int_equal(rename(s.data, live), 0);
    assert_int_equal(rename(copy, s.data), 0);
    assert_true(bb_start(&s, NULL));
    for (int i = 0; i < BEFORE; i++) {
        char path[128];
        snprintf(path, sizeof(path), "/v1/allocations/%s", before[i].id);
        bb_response r = bb_request(&s, "GET", path, NULL, NULL);
        assert_int_equal(r.status, 200);
        assert_non_null(strstr(r.body, before[i].name));
        bb_response_free(&r);
    }
    for (int i = 0; i < AFTER; i++) {
        char path[128];
        snprintf(path, sizeof(path), "/v1/allocations/%s", after[i].id);
        bb_response r = bb_request(&s, "GET", path, NULL, NULL);
        assert_int_equal(r.status, 404);
        bb_response_free(&r);
    }
    /* The copy's claims reach their worlds' status as after any restart. */
    int allocated = pool_field(&s, "allocated");
    for (int i = 0; i < 50 && allocated < BEFORE; i++) {
        sleep_ms(100);
        allocated = pool_field(&s, "allocated");
    }
    fprintf(stderr, "backup: %d claims during it, %d claimed worlds in the copy\n", created,
            allocated);
    assert_true(allocated >= BEFORE && allocated <= BEFORE + created);
    claim again = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(again.status, 201);
    bb_cleanup(&s);
}

/* Counts the Allocation records in namespace default (all pages). */
static int count_records(bb_server *s)
{
    long status = 0;
    json_object *l =
        get_json(s, "/apis/bindery.dev/v1alpha1/namespaces/default/allocations", &status);
    json_object *items = NULL;
    int n = status == 200 && json_object_object_get_ex(l, "items", &items)
                ? (int)json_object_array_length(items)
                : -1;
    json_object_put(l);
    return n;
}

/* Release records older than a day go, however many there are (the sweep
 * read every record at once, at most 10,000 of them, and deleted at most
 * 1,000 a minute); newer ones stay. The sweep runs at start-up. */
static void test_old_release_records_are_swept(void **state)
{
    (void)state;
    enum { OLD = 1100 }; /* more than a page, and than the old 1,000 a sweep */
    bb_server s;
    setup_server(&s, 0, 5, NULL, 600);
    assert_true(bb_start(&s, NULL));
    char now[40];
    bdy_timestamp_now(now);
    char two_hours_ago[40];
    time_t then = time(NULL) - 2 * 3600;
    struct tm tm;
    strftime(two_hours_ago, sizeof(two_hours_ago), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&then, &tm));
    for (int i = 0; i < OLD + 4; i++) {
        char body[768];
        const char *at = i < OLD ? "2020-01-01T00:00:00Z" : i < OLD + 2 ? now : two_hours_ago;
        snprintf(body, sizeof(body),
                 "{\"apiVersion\":\"bindery.dev/v1alpha1\",\"kind\":\"Allocation\","
                 "\"metadata\":{\"name\":\"alc-%s-%04d\"},\"spec\":{\"pool\":\"arena\","
                 "\"world\":\"arena-x\",\"claimedAt\":\"%s\",\"releasedAt\":\"%s\","
                 "\"response\":{}}}",
                 i < OLD       ? "old"
                 : i < OLD + 2 ? "new"
                               : "mid",
                 i, at, at);
        bb_response r =
            bb_request(&s, "POST", "/apis/bindery.dev/v1alpha1/namespaces/default/allocations",
                       body, JSON_HDR);
        assert_int_equal(r.status, 201);
        bb_response_free(&r);
    }
    assert_int_equal(count_records(&s), OLD + 4);
    bb_signal(&s, SIGTERM);
    assert_true(bb_wait_exit(&s, 15000));
    assert_true(bb_start(&s, NULL));
    int left = -1;
    for (int waited = 0; waited < 45000 && (left = count_records(&s)) != 4; waited += 500)
        sleep_ms(500);
    assert_int_equal(left, 4); /* the new ones and the two hours old ones */
    bb_response r = bb_request(
        &s, "GET", "/apis/bindery.dev/v1alpha1/namespaces/default/allocations/alc-new-1100", NULL,
        NULL);
    assert_int_equal(r.status, 200);
    bb_response_free(&r);
    /* Kept an hour only: the two hours old ones go too. */
    char cfg[1024];
    pool_config(cfg, sizeof(cfg), 0, 5, 5, 600);
    strncat(cfg, "claims: {recordRetentionHours: 1}\n", sizeof(cfg) - strlen(cfg) - 1);
    bb_write(&s, "bindery.yaml", cfg);
    bb_signal(&s, SIGTERM);
    assert_true(bb_wait_exit(&s, 15000));
    assert_true(bb_start(&s, NULL));
    for (int waited = 0; waited < 45000 && (left = count_records(&s)) != 2; waited += 500)
        sleep_ms(500);
    assert_int_equal(left, 2);
    bb_cleanup(&s);
}

/* What a release leaves when it is cut short between writing its record
 * and deleting the world (the delete failed, or kill -9): the record of
 * allocation `id` exists while the world is still Allocated to it. */
static void write_release_record_at(bb_server *s, const char *id, const char *world,
                                    const char *now)
{
    char body[768];
    snprintf(body, sizeof(body),
             "{\"apiVersion\":\"bindery.dev/v1alpha1\",\"kind\":\"Allocation\","
             "\"metadata\":{\"name\":\"%s\"},\"spec\":{\"pool\":\"arena\","
             "\"world\":\"%s\",\"claimedAt\":\"%s\",\"releasedAt\":\"%s\","
             "\"reason\":\"Released\",\"response\":{}}}",
             id, world, now, now);
    bb_response r = bb_request(
        s, "POST", "/apis/bindery.dev/v1alpha1/namespaces/default/allocations", body, JSON_HDR);
    assert_int_equal(r.status, 201);
    bb_response_free(&r);
}

static void write_release_record(bb_server *s, const char *id, const char *world)
{
    char now[40];
    bdy_timestamp_now(now);
    write_release_record_at(s, id, world, now);
}

static bool wait_world_gone(bb_server *s, const char *name, int timeout_ms)
{
    char path[256];
    snprintf(path, sizeof(path), "/apis/bindery.dev/v1alpha1/namespaces/default/worldinstances/%s",
             name);
    for (int waited = 0; waited <= timeout_ms; waited += 200) {
        bb_response r = bb_request(s, "GET", path, NULL, NULL);
        long status = r.status;
        bb_response_free(&r);
        if (status == 404)
            return true;
        sleep_ms(200);
    }
    bb_print_log_tail(s, "the released world is still there");
    return false;
}

/* A release cut short left its world running. The client's retried DELETE
 * finishes it; so does a restart, for a claim nobody retries. */
static void test_release_cut_short_is_finished(void **state)
{
    (void)state;
    bb_server s;
    start_warm(&s, 2, 6, 600);
    claim a = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(a.status, 201);
    claim b = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(b.status, 201);
    assert_true(wait_world_allocated(&s, a.name, a.id, NULL, 15000));
    assert_true(wait_world_allocated(&s, b.name, b.id, NULL, 15000));

    write_release_record(&s, a.id, a.name);
    char path[128];
    snprintf(path, sizeof(path), "/v1/allocations/%s", a.id);
    bool seen = false; /* the records informer has it: the id reads Released */
    for (int waited = 0; waited < 10000 && !seen; waited += 100) {
        bb_response r = bb_request(&s, "GET", path, NULL, NULL);
        seen = r.status == 200 && r.body != NULL && strstr(r.body, "\"Released\"") != NULL;
        bb_response_free(&r);
        if (!seen)
            sleep_ms(100);
    }
    assert_true(seen);
    bb_response r = bb_request(&s, "DELETE", path, NULL, NULL);
    assert_int_equal(r.status, 204);
    bb_response_free(&r);
    assert_true(wait_world_gone(&s, a.name, 15000));

    /* Cut short, then kill -9: nobody retries; the restart finishes it. */
    write_release_record(&s, b.id, b.name);
    bb_signal(&s, SIGKILL);
    assert_true(bb_wait_exit(&s, 5000));
    assert_true(bb_start(&s, NULL));
    assert_true(wait_world_gone(&s, b.name, 20000));
    snprintf(path, sizeof(path), "/v1/allocations/%s", b.id);
    r = bb_request(&s, "GET", path, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body ? r.body : "", "\"Released\""));
    bb_response_free(&r);
    bb_cleanup(&s);
}

/* A world found Ready after bindery was down longer than the world's start
 * deadline is no sample of the pool's lead time: the downtime would size
 * the pool for a long while. */
static void test_downtime_is_no_lead_time(void **state)
{
    (void)state;
    bb_server s;
    const char *slow = ", \"--ready-delay-ms\", \"1500\"";
    setup_server(&s, 1, 1, slow, 0);
    write_arena_manifest(&s, ARENA_PROBE, 3, slow);
    assert_true(bb_start(&s, NULL));
    assert_true(bb_log_contains(&s, "started: pid", 20000));
    sleep_ms(300); /* its Starting status written, most likely; if not, it is reclaimed */
    bb_signal(&s, SIGKILL);
    assert_true(bb_wait_exit(&s, 5000));
    sleep_ms(5000); /* the world listens after 1.5 s; its deadline passes at 3 s */
    assert_true(bb_start(&s, NULL));
    assert_true(wait_warm(&s, 1, 20000));
    long status = 0;
    json_object *pool = get_json(&s, "/v1/pools/default/arena", &status);
    assert_int_equal(status, 200);
    double lead = json_object_get_double(
        json_object_object_get(json_object_object_get(pool, "status"), "leadTimeSeconds"));
    json_object_put(pool);
    printf("# lead time after the restart: %.1f s\n", lead);
    assert_true(lead == 30); /* the default (demand.leadTimeSeconds): nothing measured */
    bb_cleanup(&s);
}

/* The store of a bindery that is not running, opened by the test (the
 * caller closes it). */
static bdy_store *open_stopped_store(const bb_server *s)
{
    bdy_sqlite_opts o = {.data_dir = s->data};
    bdy_store *store = NULL;
    assert_int_equal(bdy_store_sqlite_open(&o, &store, NULL), 0);
    return store;
}

/* Merge-patches world name of the default namespace (its status when
 * status) in store, as no client may: what a crash or an older bindery
 * could have left. */
static void patch_stored_world(bdy_store *store, const char *name, const char *patch_json,
                               bool status)
{
    json_object *patch = json_tokener_parse(patch_json);
    assert_non_null(patch);
    assert_int_equal(bdy_store_patch(store, &BDY_GVR_WORLDS, "default", name, BDY_PATCH_MERGE,
                                     patch, status, NULL, NULL, NULL),
                     0);
    json_object_put(patch);
}

/* The phase and allocationId /v1/worlds gives world name (phase "" when
 * the list, of the given query, does not hold it). */
static void world_as_listed(bb_server *s, const char *query, const char *name, char *phase,
                            char *id, size_t cap)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/worlds?pool=arena&limit=1000%s", query);
    long status = 0;
    json_object *list = get_json(s, path, &status);
    assert_int_equal(status, 200);
    json_object *items = json_object_object_get(list, "items");
    phase[0] = id[0] = '\0';
    for (size_t i = 0; i < json_object_array_length(items); i++) {
        json_object *w = json_object_array_get_idx(items, i);
        if (strcmp(json_object_get_string(json_object_object_get(w, "name")), name) != 0)
            continue;
        snprintf(phase, cap, "%s", json_object_get_string(json_object_object_get(w, "phase")));
        json_object *a = json_object_object_get(w, "allocationId");
        snprintf(id, cap, "%s", a ? json_object_get_string(a) : "");
    }
    json_object_put(list);
}

/* A claim is durable in the ledger before it is in its world's status;
 * while the store cannot write (here: its write lock held from outside, as
 * a full disk would stop it), the world list answers from the ledger: a
 * claimed world never reads as free. */
static void test_world_list_shows_claims_not_yet_in_status(void **state)
{
    (void)state;
    bb_server s;
    start_warm(&s, 2, 4, 600);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/bindery.db", s.data);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    claim a = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(a.status, 201);
    char phase[64];
    char id[64];
    world_as_listed(&s, "", a.name, phase, id, sizeof(phase));
    assert_string_equal(phase, "Allocated");
    assert_string_equal(id, a.id);
    world_as_listed(&s, "&phase=Allocated", a.name, phase, id, sizeof(phase));
    assert_string_equal(phase, "Allocated");
    world_as_listed(&s, "&phase=Ready", a.name, phase, id, sizeof(phase));
    assert_string_equal(phase, "");
    /* The status was not written meanwhile: what the list said came from
     * the ledger. */
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT count(*) FROM objects WHERE name = ?1 AND "
                                        "body LIKE '%\"allocation\"%'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, a.name, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 0);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_true(wait_world_allocated(&s, a.name, a.id, NULL, 30000));
}

/* A ledger claim whose world's status names another allocation ends, and
 * leaves that world alone: it is the other allocation's. */
static void test_world_of_another_allocation_is_kept(void **state)
{
    (void)state;
    bb_server s;
    start_warm(&s, 1, 3, 600);
    claim a = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(a.status, 201);
    assert_true(wait_world_allocated(&s, a.name, a.id, NULL, 15000));
    /* No client may write a world's status (422); written in the store
     * itself while bindery is down. */
    bb_signal(&s, SIGKILL);
    assert_true(bb_wait_exit(&s, 5000));
    bdy_store *store = open_stopped_store(&s);
    patch_stored_world(store, a.name, "{\"status\":{\"allocation\":{\"id\":\"alc-0123456789ab\"}}}",
                       true);
    bdy_store_close(store);
    assert_true(bb_start(&s, NULL));
    char path[256];
    char line[256];
    snprintf(line, sizeof(line), "claim %s of default/%s released: its world", a.id, a.name);
    assert_true(bb_log_contains(&s, line, 20000));
    sleep_ms(2000);
    snprintf(path, sizeof(path), "/apis/bindery.dev/v1alpha1/namespaces/default/worldinstances/%s",
             a.name);
    bb_response r = bb_request(&s, "GET", path, NULL, NULL);
    if (r.status != 200 || strstr(r.body ? r.body : "", "deletionTimestamp") != NULL)
        bb_print_log_tail(&s, "the world of another allocation was not kept");
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body ? r.body : "", "deletionTimestamp"));
    bb_response_free(&r);
    bb_cleanup(&s);
}

static void test_cold_claim_timeout(void **state)
{
    (void)state;
    bb_server s;
    /* Worlds take 3 s to listen: a 1 s wait times out, the world joins the pool. */
    setup_server(&s, 0, 5, ", \"--ready-delay-ms\", \"3000\"", 600);
    assert_true(bb_start(&s, NULL));
    bb_response r = bb_request(&s, "POST", "/v1/allocations",
                               "{\"pool\":\"arena\",\"waitSeconds\":1}", JSON_HDR);
    assert_int_equal(r.status, 504);
    assert_non_null(strstr(r.body, "ColdStartTimeout"));
    bb_response_free(&r);
    assert_true(wait_warm(&s, 1, 30000));
    claim c = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(c.status, 201);
    assert_string_equal(c.source, "warm");
    bb_cleanup(&s);
}

typedef struct cut_claim {
    bb_server *s;
    claim result;
} cut_claim;

static void *cut_claim_main(void *arg)
{
    cut_claim *cc = arg;
    cc->result = post_claim(cc->s, "{\"pool\":\"arena\",\"waitSeconds\":60}", NULL);
    return NULL;
}

/* The world reserved for a cold claim (its name in name, cap 128) and the
 * pid in its status: false until there is one with a pid. */
static bool cold_world_pid(bb_server *s, char *name, pid_t *pid)
{
    long status = 0;
    json_object *list =
        get_json(s, "/apis/bindery.dev/v1alpha1/namespaces/default/worldinstances", &status);
    json_object *items = json_object_object_get(list, "items");
    *pid = 0;
    for (size_t i = 0; items != NULL && i < json_object_array_length(items) && *pid <= 0; i++) {
        json_object *w = json_object_array_get_idx(items, i);
        json_object *meta = json_object_object_get(w, "metadata");
        if (!json_object_object_get_ex(json_object_object_get(meta, "annotations"),
                                       "bindery.dev/cold-claim", NULL))
            continue;
        snprintf(name, 128, "%s", json_object_get_string(json_object_object_get(meta, "name")));
        *pid = (pid_t)json_object_get_int64(
            json_object_object_get(json_object_object_get(w, "status"), "pid"));
    }
    json_object_put(list);
    return *pid > 0;
}

/* Sends cold claim k (waitSeconds 60) on thread *th and waits until its
 * world runs: that world's name in first (cap 128), its pid returned. */
static pid_t start_cold_claim(bb_server *s, keyed_claim *k, pthread_t *th, char *first)
{
    assert_int_equal(pthread_create(th, NULL, keyed_claim_main, k), 0);
    assert_true(bb_log_contains(s, "waiting up to 60 s for cold world", 10000));
    pid_t pid = 0;
    first[0] = '\0';
    for (int i = 0; i < 100 && !cold_world_pid(s, first, &pid); i++)
        sleep_ms(50);
    assert_true(pid > 0);
    return pid;
}

/* A cold claim whose world dies while starting gets another world in its
 * place while its wait lasts, not a 503 for a fault of one process. */
static void test_cold_claim_outlives_its_world_failing(void **state)
{
    (void)state;
    bb_server s;
    /* Worlds take 1.5 s to listen: time to kill the first while it starts. */
    setup_server(&s, 0, 5, ", \"--ready-delay-ms\", \"1500\"", 600);
    assert_true(bb_start(&s, NULL));
    keyed_claim k = {.s = &s, .body = "{\"pool\":\"arena\",\"waitSeconds\":60}"};
    pthread_t th;
    char first[128];
    assert_int_equal(kill(start_cold_claim(&s, &k, &th, first), SIGKILL), 0);
    pthread_join(th, NULL);
    if (k.result.status != 201)
        fail_msg("the claim was answered %ld: %s", k.result.status, k.result.body);
    assert_string_equal(k.result.source, "cold");
    assert_string_not_equal(k.result.name, first);
    assert_true(bb_log_contains(&s, "failed; waiting up to", 0));
    bb_cleanup(&s);
}

/* A cold claim with selectors whose world fails after a reload changed the
 * pool's labels gets no other world: one made now would not have the
 * labels its selectors matched. */
static void test_cold_claim_restart_keeps_its_selectors(void **state)
{
    (void)state;
    bb_server s;
    setup_server(&s, 0, 20, ", \"--ready-delay-ms\", \"1500\"", 600);
    assert_true(bb_start(&s, NULL));
    keyed_claim k = {.s = &s,
                     .body = "{\"pool\":\"arena\",\"waitSeconds\":60,\"selectors\":[{"
                             "\"matchLabels\":{\"game\":\"arena\"}}]}",
                     .key = "selective"};
    pthread_t th;
    char first[128];
    pid_t pid = start_cold_claim(&s, &k, &th, first);
    char cfg[1024];
    pool_config(cfg, sizeof(cfg), 0, 20, 20, 600);
    char *labels = strstr(cfg, "{game: arena}");
    assert_non_null(labels);
    memcpy(labels, "{game: other}", strlen("{game: other}"));
    bb_write(&s, "bindery.yaml", cfg);
    bb_signal(&s, SIGHUP);
    assert_true(bb_log_contains(&s, "reloaded", 5000));
    assert_int_equal(kill(pid, SIGKILL), 0);
    pthread_join(th, NULL);
    if (k.result.status != 503 || strstr(k.result.body, "PoolExhausted") == NULL)
        fail_msg("the claim was answered %ld: %s", k.result.status, k.result.body);
    /* The answer says why its world failed, in the words of its status. */
    if (strstr(k.result.body, "the world started for this claim failed: ") == NULL)
        fail_msg("no reason in the answer: %s", k.result.body);
    assert_false(bb_log_contains(&s, "failed; waiting up to", 0));
    bb_cleanup(&s);
}

/* Sends a cold claim (waitSeconds 30) on a connection of its own, with
 * extra_header (NULL: none), and closes it once the claim waits. */
static void cold_claim_and_leave(bb_server *s, const char *extra_header, int nth)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    const char *body = "{\"pool\":\"arena\",\"waitSeconds\":30}";
    char req[512];
    int n =
        snprintf(req, sizeof(req),
                 "POST /v1/allocations HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s"
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                 extra_header ? extra_header : "", extra_header ? "\r\n" : "", strlen(body), body);
    assert_int_equal(write(fd, req, (size_t)n), n);
    for (int i = 0; i < 100 && bb_log_count(s, "waiting up to 30 s for cold world") < nth; i++)
        sleep_ms(100);
    assert_int_equal(bb_log_count(s, "waiting up to 30 s for cold world"), nth);
    close(fd);
    for (int i = 0; i < 300 && bb_log_count(s, "the client left before world") < nth; i++)
        sleep_ms(100);
    assert_int_equal(bb_log_count(s, "the client left before world"), nth);
}

/* A client that gives up on a cold claim before its world is Ready (its
 * own timeout, shorter than waitSeconds) leaves no world claimed by no one:
 * the world joins the pool. */
static void test_cold_claim_client_gone(void **state)
{
    (void)state;
    bb_server s;
    setup_server(&s, 0, 5, ", \"--ready-delay-ms\", \"1500\"", 600);
    assert_true(bb_start(&s, NULL));
    cold_claim_and_leave(&s, NULL, 1);
    assert_true(wait_warm(&s, 1, 30000));
    assert_int_equal(pool_field(&s, "allocated"), 0);
    claim c = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(c.status, 201);
    assert_string_equal(c.source, "warm");
    bb_cleanup(&s);
}

/* The same with an Idempotency-Key, when no retry waits on the claim: the
 * world joins the pool, and a later retry with the key claims anew. */
static void test_keyed_cold_claim_client_gone(void **state)
{
    (void)state;
    bb_server s;
    setup_server(&s, 0, 5, ", \"--ready-delay-ms\", \"1500\"", 600);
    assert_true(bb_start(&s, NULL));
    cold_claim_and_leave(&s, "Idempotency-Key: left-early", 1);
    assert_true(wait_warm(&s, 1, 30000));
    assert_int_equal(pool_field(&s, "allocated"), 0);
    claim retry = post_claim(&s, "{\"pool\":\"arena\",\"waitSeconds\":30}", "left-early");
    assert_int_equal(retry.status, 201);
    assert_string_equal(retry.source, "warm");
    bb_cleanup(&s);
}

/* The wall time ("ts") of the first log line holding text, or -1. */
static double log_line_time(const bb_server *s, const char *text)
{
    FILE *f = fopen(s->log, "r");
    double t = -1;
    char line[4096];
    while (f != NULL && t < 0 && fgets(line, sizeof(line), f) != NULL) {
        json_object *o = strstr(line, text) != NULL ? json_tokener_parse(line) : NULL;
        if (o != NULL &&
            bdy_timestamp_parse(json_object_get_string(json_object_object_get(o, "ts")), &t) != 0)
            t = -1;
        json_object_put(o);
    }
    if (f != NULL)
        fclose(f);
    return t;
}

static void test_orphaned_cold_world_joins_pool(void **state)
{
    (void)state;
    bb_server s;
    /* bindery dies while a cold claim waits: after the restart nobody waits
     * for that world, so it must not stay reserved forever. */
    setup_server(&s, 0, 5, ", \"--ready-delay-ms\", \"1500\"", 600);
    assert_true(bb_start(&s, NULL));
    cut_claim cc = {.s = &s};
    pthread_t th;
    pthread_create(&th, NULL, cut_claim_main, &cc);
    assert_true(bb_log_contains(&s, "waiting up to 60 s for cold world", 10000));
    bb_signal(&s, SIGKILL);
    pthread_join(th, NULL);
    assert_true(cc.result.status != 201);
    assert_true(bb_wait_exit(&s, 5000));
    assert_true(bb_start(&s, NULL));
    assert_true(wait_warm(&s, 1, 40000));
    /* The miss before the kill may have sized the pool above minWarm, so a
     * warm world can come before the orphan is released: wait for it. */
    assert_true(bb_log_contains(&s, "its cold claim no longer waits", 30000));
    /* Released once this run had looked, not after the grace a claim of
     * this run gets between creating its world and waiting for it (10 s
     * from the world's creation): no claim of this run waits for it. */
    double released = log_line_time(&s, "its cold claim no longer waits");
    double created = log_line_time(&s, "waiting up to 60 s for cold world");
    assert_true(released > 0 && created > 0);
    assert_true(released - created < 9.0);
    claim c = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(c.status, 201);
    assert_string_equal(c.source, "warm");
    bb_cleanup(&s);
}

static void test_bad_requests_change_nothing(void **state)
{
    (void)state;
    bb_server s;
    start_warm(&s, 1, 10, 0);
    struct {
        const char *body;
        const char *ctype;
        const char *idem;
        long status;
        const char *code;
    } cases[] = {
        {"{\"pool\":", "application/json", NULL, 400, "InvalidRequest"},
        {"{\"pool\":\"arena\",\"poool\":1}", "application/json", NULL, 400, "InvalidRequest"},
        {"{}", "application/json", NULL, 400, "InvalidRequest"},
        {"{\"pool\":\"arena\",\"waitSeconds\":301}", "application/json", NULL, 400,
         "InvalidRequest"},
        {"{\"pool\":\"arena\",\"selectors\":[{\"matchExpressions\":[{\"key\":\"a\","
         "\"operator\":\"Near\"}]}]}",
         "application/json", NULL, 400, "InvalidRequest"},
        {"{\"pool\":\"arena\",\"metadata\":{\"labels\":{\"bad key\":\"x\"}}}", "application/json",
         NULL, 400, "InvalidRequest"},
        {"[1,2]", "application/json", NULL, 400, "InvalidRequest"},
        {"{\"pool\":\"arena\"} trailing", "application/json", NULL, 400, "InvalidRequest"},
        {"{\"pool\":\"arena\"}", "text/plain", NULL, 415, "UnsupportedMediaType"},
        {"{\"pool\":\"nope\"}", "application/json", NULL, 404, "NotFound"},
        {"{\"pool\":\"arena\"}", "application/json",
         "a-key-of-129-characters-0123456789012345678901234567890123456789012345678901234567890"
         "12345678901234567890123456789012345678901234",
         400, "InvalidRequest"},
        {"{\"pool\":\"arena\",\"metadata\":{\"labels\":{\"bindery.dev/pool\":\"other\"}}}",
         "application/json", NULL, 400, "reserved"},
        {"{\"pool\":\"arena\",\"claimant\":\"\xff\xfe\"}", "application/json", NULL, 400, "UTF-8"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char ct[100];
        char key[200];
        snprintf(ct, sizeof(ct), "Content-Type: %s", cases[i].ctype);
        snprintf(key, sizeof(key), "Idempotency-Key: %s", cases[i].idem ? cases[i].idem : "");
        const char *hdrs[] = {ct, cases[i].idem ? key : NULL, NULL};
        bb_response r = bb_request(&s, "POST", "/v1/allocations", cases[i].body, hdrs);
        if (r.status != cases[i].status || strstr(r.body, cases[i].code) == NULL)
            fail_msg("case %zu (%s): got %ld %s", i, cases[i].body, r.status, r.body);
        bb_response_free(&r);
    }
    /* Oversize body. */
    size_t big = 70 * 1024;
    char *body = malloc(big + 1);
    memset(body, ' ', big);
    body[0] = '{';
    body[big - 1] = '}';
    body[big] = '\0';
    bb_response r = bb_request(&s, "POST", "/v1/allocations", body, JSON_HDR);
    assert_int_equal(r.status, 413);
    assert_non_null(strstr(r.body, "PayloadTooLarge"));
    bb_response_free(&r);
    free(body);
    long status = 0;
    json_object *o = get_json(&s, "/v1/allocations/alc-unknown", &status);
    assert_int_equal(status, 404);
    json_object_put(o);
    o = get_json(&s, "/v1/pools/default/nope", &status);
    assert_int_equal(status, 404);
    json_object_put(o);
    o = get_json(&s, "/v1/worlds?phase=Sleeping", &status);
    assert_int_equal(status, 400);
    json_object_put(o);
    /* Nothing was claimed. */
    assert_int_equal(pool_field(&s, "allocated"), 0);
    o = get_json(&s, "/v1/worlds?pool=arena&phase=Ready&limit=1", &status);
    assert_int_equal(status, 200);
    assert_int_equal(json_object_array_length(json_object_object_get(o, "items")), 1);
    json_object_put(o);
    /* The contract's query with every parameter left empty: none given. */
    o = get_json(&s, "/v1/worlds?namespace=&pool=&phase=&limit=&continue=", &status);
    assert_int_equal(status, 200);
    assert_true(json_object_array_length(json_object_object_get(o, "items")) >= 1);
    json_object_put(o);
    o = get_json(&s, "/v1/worlds?limit=0", &status);
    assert_int_equal(status, 400);
    json_object_put(o);
    /* An unknown query parameter is an unknown field: a misspelt filter
     * listed every pool's worlds. */
    static const char *const misspelt[] = {"/v1/worlds?poool=arena", "/v1/pools?x=1",
                                           "/v1/pools/default/arena?verbose=1",
                                           "/v1/allocations/alc-unknown?a=b"};
    for (size_t i = 0; i < sizeof(misspelt) / sizeof(misspelt[0]); i++) {
        bb_response q = bb_request(&s, "GET", misspelt[i], NULL, NULL);
        if (q.status != 400 || strstr(q.body, "unknown query parameter") == NULL)
            fail_msg("%s: got %ld %s", misspelt[i], q.status, q.body);
        bb_response_free(&q);
    }
    r = bb_request(&s, "POST", "/v1/allocations?pool=arena", "{\"pool\":\"arena\"}", JSON_HDR);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "unknown query parameter \\\"pool\\\""));
    bb_response_free(&r);
    assert_int_equal(pool_field(&s, "allocated"), 0);
    bb_cleanup(&s);
}

/* A pool removed by a reload leaves /metrics: its gauges would otherwise
 * go on showing their last values for ever. */
static void test_removed_pool_leaves_metrics(void **state)
{
    (void)state;
    bb_server s;
    start_bench_pool(&s, 3, 10, 0);
    /* Before any claim, its counters are there at 0: a rule on their rate
     * sees a series from the start. */
    bb_response r = bb_request(&s, "GET", "/metrics", NULL, NULL);
    assert_int_equal(r.status, 200);
    static const char *const zero[] = {
        "bindery_allocations_total{namespace=\"default\",pool=\"arena\",source=\"warm\","
        "result=\"success\"} 0\n",
        "bindery_allocation_misses_total{namespace=\"default\",pool=\"arena\"} 0\n",
        "bindery_pool_world_failures_total{namespace=\"default\",pool=\"arena\"} 0\n"};
    for (size_t i = 0; i < sizeof(zero) / sizeof(zero[0]); i++)
        if (strstr(r.body, zero[i]) == NULL)
            fail_msg("no %s in /metrics", zero[i]);
    bb_response_free(&r);
    claim c = post_claim(&s, "{\"pool\":\"arena\"}", "before the removal");
    assert_int_equal(c.status, 201);
    r = bb_request(&s, "GET", "/metrics", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "bindery_worlds{namespace=\"default\",pool=\"arena\""));
    bb_response_free(&r);
    bb_write(&s, "bindery.yaml",
             "manifests: [manifests]\nruntime: {kind: bench, benchReadyDelayMs: 0}\npools: []\n");
    bb_signal(&s, SIGHUP);
    assert_true(bb_log_contains(&s, "reloaded", 10000));
    /* A replay is still answered, and makes no series for the pool. */
    claim again = post_claim(&s, "{\"pool\":\"arena\"}", "before the removal");
    assert_int_equal(again.status, 200);
    assert_string_equal(again.id, c.id);
    r = bb_request(&s, "GET", "/metrics", NULL, NULL);
    assert_int_equal(r.status, 200);
    if (strstr(r.body, "pool=\"arena\"") != NULL)
        fail_msg("pool arena still in /metrics after its removal:\n%.3000s", r.body);
    bb_response_free(&r);
    bb_cleanup(&s);
}

static void test_reload_keeps_allocated_worlds(void **state)
{
    (void)state;
    bb_server s;
    start_warm(&s, 3, 10, 0);
    claim c = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(c.status, 201);
    /* Shrink the pool to 1 warm world. maxWarm 1 as well: after the claim
     * the sizer may keep more than minWarm (recent claims, gradual
     * scale-down); once, on a loaded machine, it held targetWarm at 2 for
     * the whole 20 s. The clamp to maxWarm comes last, so 1 is exact. */
    reload_pool(&s, 1, 1, 10, 0);
    bool shrunk = false;
    for (int i = 0; i < 200 && !shrunk; i++) {
        shrunk = pool_field(&s, "targetWarm") == 1 && pool_field(&s, "warm") == 1;
        if (!shrunk)
            sleep_ms(100);
    }
    if (!shrunk)
        fail_msg("pool not shrunk to 1 warm world after 20 s: targetWarm %ld warm %ld",
                 (long)pool_field(&s, "targetWarm"), (long)pool_field(&s, "warm"));
    char answer[128];
    assert_true(ping_world(c.port, answer, sizeof(answer)));
    assert_int_equal(settled_pool_field(&s, "allocated", 1, 5000), 1);
    bb_cleanup(&s);
}

/* Whether the pool's worlds are all made from the new template: the
 * claimed worlds kept (NULL-terminated) are Allocated still, and the other
 * worlds, at least want, are Ready, each answering its ping with prefix and its name (the
 * new manifest's) and labelled label_kv ("key":"value" as JSON text, or
 * NULL). */
static bool rolled_out(bb_server *s, const char *const *kept, int want, const char *prefix,
                       const char *label_kv)
{
    long status = 0;
    json_object *list = get_json(s, "/v1/worlds?pool=arena", &status);
    json_object *items = json_object_object_get(list, "items");
    int ready = 0;
    int nkept = 0;
    int kept_allocated = 0;
    bool ok = status == 200;
    for (size_t i = 0; ok && i < json_object_array_length(items); i++) {
        json_object *w = json_object_array_get_idx(items, i);
        const char *name = json_object_get_string(json_object_object_get(w, "name"));
        const char *phase = json_object_get_string(json_object_object_get(w, "phase"));
        bool is_kept = false;
        for (nkept = 0; kept[nkept] != NULL; nkept++)
            is_kept |= strcmp(name, kept[nkept]) == 0;
        if (is_kept) {
            kept_allocated += strcmp(phase, "Allocated") == 0;
            continue;
        }
        json_object *port0 = json_object_array_get_idx(json_object_object_get(w, "ports"), 0);
        int port = json_object_get_int(json_object_object_get(port0, "port"));
        char want_answer[160];
        snprintf(want_answer, sizeof(want_answer), "pong %s%s", prefix, name);
        char answer[160] = "";
        const char *labels = json_object_to_json_string_ext(json_object_object_get(w, "labels"), 0);
        ok = strcmp(phase, "Ready") == 0 && ping_world(port, answer, sizeof(answer)) &&
             strncmp(answer, want_answer, strlen(want_answer)) == 0 &&
             (label_kv == NULL || strstr(labels, label_kv) != NULL);
        ready++;
    }
    json_object_put(list);
    return ok && kept_allocated == nkept && ready >= want;
}

static bool wait_rolled_out(bb_server *s, const char *const *kept, int want, const char *prefix,
                            const char *label_kv, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 200) {
        if (rolled_out(s, kept, want, prefix, label_kv))
            return true;
        sleep_ms(200);
    }
    bb_print_log_tail(s, "the pool's worlds were not replaced by worlds of the new template");
    return false;
}

/* An edited manifest, or a reload that changes the pool's labels, gives the
 * pool new worlds: the idle ones made from the old template are replaced,
 * the claimed one runs on untouched, and new claims get new worlds. */
static void test_outdated_worlds_are_replaced(void **state)
{
    (void)state;
    bb_server s;
    start_warm(&s, 2, 10, 0);
    claim c = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(c.status, 201);
    assert_true(wait_warm(&s, 2, 20000));

    /* The manifest's new version names its worlds "v2-<name>" (the last
     * --name wins); the reload applies it. */
    write_arena_manifest(&s, ARENA_PROBE, 20, ", \"--name\", \"v2-{name}\"");
    bb_signal(&s, SIGHUP);
    assert_true(bb_log_contains(&s, "reloaded", 5000));
    const char *kept[3] = {c.name, NULL, NULL};
    assert_true(wait_rolled_out(&s, kept, 2, "v2-", NULL, 30000));
    assert_true(bb_log_contains(&s, "made from an older template", 0));
    char answer[160];
    char was[160];
    snprintf(was, sizeof(was), "pong %s\n", c.name);
    assert_true(ping_world(c.port, answer, sizeof(answer)));
    assert_string_equal(answer, was); /* the same process, the old version */
    claim d = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(d.status, 201);
    assert_true(ping_world(d.port, answer, sizeof(answer)));
    assert_true(strncmp(answer, "pong v2-", 8) == 0);
    assert_true(wait_warm(&s, 2, 20000));

    /* A reload with another label for the pool's worlds: claims that
     * select it find worlds once they are replaced. */
    char cfg[1024];
    pool_config(cfg, sizeof(cfg), 2, 10, 10, 0);
    char *labels = strstr(cfg, "labels: {game: arena}");
    assert_non_null(labels);
    snprintf(labels, sizeof(cfg) - (size_t)(labels - cfg), "labels: {game: arena, tier: gold}\n");
    bb_write(&s, "bindery.yaml", cfg);
    bb_signal(&s, SIGHUP);
    assert_true(bb_log_contains(&s, "reloaded", 5000));
    kept[1] = d.name;
    assert_true(wait_rolled_out(&s, kept, 2, "v2-", "\"tier\":\"gold\"", 30000));
    const char *gold = "{\"pool\":\"arena\",\"selectors\":[{\"matchLabels\":{\"tier\":\"gold\"}}]}";
    claim e = post_claim(&s, gold, NULL);
    assert_int_equal(e.status, 201);
    assert_true(ping_world(c.port, answer, sizeof(answer)));
    assert_string_equal(answer, was);
    assert_int_equal(settled_pool_field(&s, "allocated", 3, 5000), 3);
    /* Nothing left to replace, and the pool and /metrics say so. */
    assert_int_equal(settled_pool_field(&s, "outdated", 0, 5000), 0);
    bb_response m = bb_request(&s, "GET", "/metrics", NULL, NULL);
    assert_non_null(
        strstr(m.body, "bindery_worlds_outdated{namespace=\"default\",pool=\"arena\"} 0"));
    bb_response_free(&m);
    bb_cleanup(&s);
}

/* A pool "arena" of booklet worlds: booklet "duo" runs module "game" (the
 * manifest "arena", its port named game in the world) once and module
 * "voice" (manifest "voice", an arena world started by a shell, that names
 * itself "voice-<world>-<instance>-<game port>-<own port, twice>" from
 * placeholders and the environment) twice, voice_args appended to each
 * voice's command line. */
static void setup_booklet_server(bb_server *s, unsigned min_warm, const char *voice_args)
{
    char cfg[1024];
    int n = runtime_config(cfg, sizeof(cfg));
    snprintf(cfg + n, sizeof(cfg) - (size_t)n,
             "pools:\n"
             "  - name: arena\n    booklet: duo\n    minWarm: %u\n    maxWarm: %u\n"
             "    maxWorlds: 10\n    scaleDownCooldownSeconds: 0\n    creationRate: 50\n",
             min_warm, min_warm);
    bb_init(s, cfg);
    write_arena_manifest(s, ARENA_PROBE, 20, NULL);
    char manifest[2048];
    snprintf(
        manifest, sizeof(manifest),
        "apiVersion: bindery.dev/v1alpha1\nkind: ModuleManifest\n"
        "metadata: {name: voice, namespace: default}\n"
        "spec:\n"
        "  ports: [{name: voice, containerPort: 7000, protocol: TCP}]\n"
        "  readinessProbe: {tcpSocket: {port: 7000}, periodSeconds: 1}\n"
        "  terminationGracePeriodSeconds: 2\n"
        "  resources: {limits: {memory: 64Mi, cpu: 250m}}\n"
        "  local:\n"
        "    command: /bin/sh\n"
        "    args:\n"
        "      - -c\n"
        "      - exec %s --port {port:voice} --name\n"
        "        voice-{name}-$BINDERY_MODULE_INDEX-{port:game}-$VOICE_PORT-$BINDERY_PORT_VOICE%s\n"
        "    env: [{name: VOICE_PORT, value: \"{port:voice}\"}]\n",
        world_bin(), voice_args ? voice_args : "");
    bb_write(s, "manifests/voice.yaml", manifest);
    bb_write(s, "manifests/duo.yaml",
             "apiVersion: bindery.dev/v1alpha1\nkind: Booklet\n"
             "metadata: {name: duo, namespace: default}\n"
             "spec:\n"
             "  modules:\n"
             "    - {name: game, manifest: arena}\n"
             "    - {name: voice, manifest: voice, count: 2}\n");
}

/* The port named name in a claim's answer, 0 when it has none. */
static int claim_port(const claim *c, const char *name)
{
    json_object *o = json_tokener_parse(c->body);
    json_object *ports = json_object_object_get(json_object_object_get(o, "world"), "ports");
    int port = 0;
    for (size_t i = 0; ports != NULL && i < json_object_array_length(ports); i++) {
        json_object *p = json_object_array_get_idx(ports, i);
        if (strcmp(json_object_get_string(json_object_object_get(p, "name")), name) == 0)
            port = json_object_get_int(json_object_object_get(p, "port"));
    }
    json_object_put(o);
    return port;
}

/* Whether every one of ports stops answering within timeout_ms. */
static bool wait_ports_silent(const int *ports, size_t n, int timeout_ms)
{
    char answer[160];
    for (int waited = 0; waited <= timeout_ms; waited += 100) {
        bool any = false;
        for (size_t i = 0; i < n && !any; i++)
            any = ping_world(ports[i], answer, sizeof(answer));
        if (!any)
            return true;
        sleep_ms(100);
    }
    return false;
}

/* A booklet pool's worlds run every module instance of the booklet: a
 * claim's answer lists all their ports, each answers as its module, and
 * the release stops every module. */
static void test_booklet_world_runs_its_modules(void **state)
{
    (void)state;
    bb_server s;
    setup_booklet_server(&s, 2, NULL);
    assert_true(bb_start(&s, NULL));
    assert_true(wait_warm(&s, 2, 30000));
    claim c = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(c.status, 201);
    /* The game module's port keeps its name; the voice module runs twice,
     * so its instances' ports are named after the module and instance. */
    int ports[3] = {claim_port(&c, "game"), claim_port(&c, "voice-0-voice"),
                    claim_port(&c, "voice-1-voice")};
    assert_true(ports[0] > 0 && ports[1] > 0 && ports[2] > 0);
    assert_int_equal(c.port, ports[0]); /* the first port listed */
    char answer[160];
    char want[192];
    assert_true(ping_world(ports[0], answer, sizeof(answer)));
    snprintf(want, sizeof(want), "pong %s\n", c.name);
    assert_string_equal(answer, want);
    /* Each voice instance knows its index, the game module's port (by its
     * name in the world) and its own (by its manifest's name, in a
     * placeholder, in its own variable and in BINDERY_PORT_VOICE). */
    for (int i = 0; i < 2; i++) {
        assert_true(ping_world(ports[1 + i], answer, sizeof(answer)));
        snprintf(want, sizeof(want), "pong voice-%s-%d-%d-%d-%d\n", c.name, i, ports[0],
                 ports[1 + i], ports[1 + i]);
        assert_string_equal(answer, want);
    }
    char log_name[300];
    snprintf(log_name, sizeof(log_name), "worlds/default_%s.log", c.name);
    assert_true(
        bb_file_contains(&s, log_name, "bindery-world-host: module voice[1] started", 5000));
    /* The voice manifest names limits, which embedded mode does not apply:
     * the log says so. */
    assert_true(bb_log_contains(&s, "which the process runtime does not apply", 0));

    /* The world outlives a kill -9 of bindery, which adopts it back. */
    bb_signal(&s, SIGKILL);
    assert_true(bb_wait_exit(&s, 5000));
    assert_true(bb_start(&s, NULL));
    char adopted[200];
    snprintf(adopted, sizeof(adopted), "re-adopted world default/%s", c.name);
    assert_true(bb_log_contains(&s, adopted, 20000));
    for (int i = 0; i < 3; i++)
        assert_true(ping_world(ports[i], answer, sizeof(answer)));

    char path[128];
    snprintf(path, sizeof(path), "/v1/allocations/%s", c.id);
    bb_response r = bb_request(&s, "DELETE", path, NULL, NULL);
    assert_int_equal(r.status, 204);
    bb_response_free(&r);
    assert_true(wait_ports_silent(ports, 3, 10000));
    assert_true(wait_world_gone(&s, c.name, 10000));
    /* Stopped through its host, which passed SIGTERM on: no module was
     * killed for outliving its grace. */
    assert_true(bb_file_contains(&s, log_name, "SIGTERM: stopping every module", 0));
    assert_false(bb_file_contains(&s, log_name, "outlived its grace period", 0));
    assert_true(wait_warm(&s, 2, 30000));
    /* An edit of a module's manifest rolls the pool out. */
    assert_int_equal(pool_field(&s, "outdated"), 0);
    write_arena_manifest(&s, ARENA_PROBE, 21, NULL);
    bb_signal(&s, SIGHUP);
    assert_true(bb_log_contains(&s, "made from an older template", 20000));
    bb_cleanup(&s);
}

/* A module of a booklet world that exits ends the world: the host stops
 * the other modules, and the pool replaces the world. */
static void test_booklet_module_exit_ends_world(void **state)
{
    (void)state;
    bb_server s;
    /* Long enough for the world to be Ready first on a loaded machine. */
    setup_booklet_server(&s, 1, " --crash-after-ms 8000");
    assert_true(bb_start(&s, NULL));
    assert_true(wait_warm(&s, 1, 30000));
    long status = 0;
    json_object *o = get_json(&s, "/v1/worlds?pool=arena", &status);
    json_object *items = json_object_object_get(o, "items");
    json_object *first = NULL;
    for (size_t i = 0; items != NULL && i < json_object_array_length(items) && !first; i++) {
        json_object *w = json_object_array_get_idx(items, i);
        if (strcmp(json_object_get_string(json_object_object_get(w, "phase")), "Ready") == 0)
            first = w;
    }
    assert_non_null(first);
    char name[128];
    snprintf(name, sizeof(name), "%s",
             json_object_get_string(json_object_object_get(first, "name")));
    int game = 0;
    json_object *ports = json_object_object_get(first, "ports");
    for (size_t i = 0; ports != NULL && i < json_object_array_length(ports); i++) {
        json_object *p = json_object_array_get_idx(ports, i);
        if (strcmp(json_object_get_string(json_object_object_get(p, "name")), "game") == 0)
            game = json_object_get_int(json_object_object_get(p, "port"));
    }
    json_object_put(o);
    assert_true(game > 0);
    /* The voice modules crash; the game module, which would run on, is
     * stopped with them. */
    assert_true(wait_ports_silent(&game, 1, 20000));
    assert_true(wait_world_gone(&s, name, 15000));
    char log_name[300];
    snprintf(log_name, sizeof(log_name), "worlds/default_%s.log", name);
    assert_true(bb_file_contains(&s, log_name, "exited with status", 5000));
    assert_true(bb_file_contains(&s, log_name, "stopping the world", 0));
    /* Failed for the module's exit, or for the host's, which follows at
     * once here: whichever the world controller saw first. */
    assert_true(bb_log_contains(&s, "ModuleExited", 10000) || bb_log_contains(&s, "Crashed", 0));
    bb_cleanup(&s);
}

/* A booklet world whose module's program cannot be run fails as a world
 * whose program cannot be spawned does (StartError), not as a crash of
 * the world's own: its host exits with the shell's 127 for it. */
static void test_booklet_module_that_cannot_run(void **state)
{
    (void)state;
    bb_server s;
    setup_booklet_server(&s, 1, NULL);
    bb_write(&s, "manifests/voice.yaml",
             "apiVersion: bindery.dev/v1alpha1\nkind: ModuleManifest\n"
             "metadata: {name: voice, namespace: default}\n"
             "spec:\n"
             "  ports: [{name: voice, containerPort: 7000, protocol: TCP}]\n"
             "  local: {command: ./no-such-program}\n");
    assert_true(bb_start(&s, NULL));
    assert_true(
        bb_log_contains(&s, "Failed: StartError: a module's program could not be run", 30000));
    assert_false(bb_log_contains(&s, "Failed: Crashed", 0));
    bb_cleanup(&s);
}

/* World default/name's status.phase and status.reason ("" for none). */
static void world_status(bb_server *s, const char *name, char *phase, char *reason, size_t cap)
{
    char path[256];
    snprintf(path, sizeof(path), "/apis/bindery.dev/v1alpha1/namespaces/default/worldinstances/%s",
             name);
    long status = 0;
    json_object *o = get_json(s, path, &status);
    json_object *st = json_object_object_get(o, "status");
    const char *p = json_object_get_string(json_object_object_get(st, "phase"));
    const char *r = json_object_get_string(json_object_object_get(st, "reason"));
    snprintf(phase, cap, "%s", p ? p : "");
    snprintf(reason, cap, "%s", r ? r : "");
    json_object_put(o);
}

/* A module of a booklet world that exits ends the world at once, though
 * its host takes long to stop the others (a game module that finishes its
 * match first): the world is Failed, and no claim gets it, while its game
 * module still serves. Until its host had exited it used to stay Ready. */
static void test_booklet_world_is_over_when_a_module_exits(void **state)
{
    (void)state;
    bb_server s;
    setup_booklet_server(&s, 1, " --crash-after-ms 8000");
    /* Its game module drains for 40 s on SIGTERM, within a grace of 60. */
    write_arena_manifest_grace(&s, ARENA_PROBE, 20, 60, ", \"--drain-ms\", \"40000\"");
    assert_true(bb_start(&s, NULL));
    assert_true(wait_warm(&s, 1, 30000));
    long status = 0;
    json_object *o = get_json(&s, "/v1/worlds?pool=arena", &status);
    json_object *w = json_object_array_get_idx(json_object_object_get(o, "items"), 0);
    assert_non_null(w);
    char name[128];
    snprintf(name, sizeof(name), "%s", json_object_get_string(json_object_object_get(w, "name")));
    json_object_put(o);
    char log_name[300];
    snprintf(log_name, sizeof(log_name), "worlds/default_%s.log", name);
    /* The voice modules crash, and the host asks the game module to stop. */
    assert_true(bb_file_contains(&s, log_name, "draining for 40000 ms", 30000));
    /* Failed at once (and then deleted by its pool, which replaces it). */
    char phase[64] = "Ready";
    char reason[64] = "";
    for (int waited = 0; waited <= 10000 && strcmp(phase, "Ready") == 0; waited += 50) {
        world_status(&s, name, phase, reason, sizeof(phase));
        if (strcmp(phase, "Ready") == 0)
            sleep_ms(50);
    }
    assert_string_not_equal(phase, "Ready");
    char failed[200];
    snprintf(failed, sizeof(failed), "default/%s Failed: ModuleExited", name);
    assert_true(bb_log_contains(&s, failed, 5000));
    /* Its host still runs: the game module drains (for 40 s). */
    assert_false(bb_file_contains(&s, log_name, "drained, stopping", 0));
    claim c = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_true(c.status == 201 || c.status == 503);
    if (c.status == 201)
        assert_string_not_equal(c.name, name);
    assert_true(bb_log_contains(&s, "the world is over", 0));
    bb_cleanup(&s);
}

/* Waits until every world of the pool is Pending and the log says why
 * the first waits. */
static bool wait_world_waits(bb_server *s, const char *why, int timeout_ms)
{
    if (!bb_log_contains(s, why, timeout_ms))
        return false;
    long status = 0;
    json_object *o = get_json(s, "/v1/worlds?pool=arena", &status);
    json_object *items = json_object_object_get(o, "items");
    bool pending = items != NULL && json_object_array_length(items) > 0;
    for (size_t i = 0; pending && i < json_object_array_length(items); i++) {
        json_object *phase = json_object_object_get(json_object_array_get_idx(items, i), "phase");
        pending = strcmp(json_object_get_string(phase), "Pending") == 0;
    }
    json_object_put(o);
    return pending;
}

/* Waits until CapabilityBinding default/name's Ready condition has reason. */
static bool wait_binding_reason(bb_server *s, const char *name, const char *reason, int timeout_ms)
{
    char path[256];
    snprintf(path, sizeof(path),
             "/apis/bindery.dev/v1alpha1/namespaces/default/capabilitybindings/%s", name);
    for (int waited = 0; waited <= timeout_ms; waited += 100) {
        long status = 0;
        json_object *o = get_json(s, path, &status);
        json_object *conds =
            json_object_object_get(json_object_object_get(o, "status"), "conditions");
        json_object *c = conds ? json_object_array_get_idx(conds, 0) : NULL;
        const char *was = c ? json_object_get_string(json_object_object_get(c, "reason")) : NULL;
        bool ok = was != NULL && strcmp(was, reason) == 0;
        json_object_put(o);
        if (ok)
            return true;
        sleep_ms(100);
    }
    fprintf(stderr, "CapabilityBinding %s: no reason %s within %d ms\n", name, reason, timeout_ms);
    return false;
}

/* The item of world name (NULL: a Ready one) in the pool's /v1/worlds
 * list, which *list holds (the caller puts it); NULL when not listed. */
static json_object *listed_world(bb_server *s, const char *name, json_object **list)
{
    long status = 0;
    *list = get_json(s, "/v1/worlds?pool=arena", &status);
    json_object *items = json_object_object_get(*list, "items");
    for (size_t i = 0; items != NULL && i < json_object_array_length(items); i++) {
        json_object *w = json_object_array_get_idx(items, i);
        const char *wn = json_object_get_string(json_object_object_get(w, "name"));
        const char *phase = json_object_get_string(json_object_object_get(w, "phase"));
        if (name ? wn != NULL && strcmp(wn, name) == 0
                 : phase != NULL && strcmp(phase, "Ready") == 0)
            return w;
    }
    return NULL;
}

/* The template label of world name of the pool (NULL: of a Ready one), ""
 * when none. */
static void world_template(bb_server *s, const char *name, char *out, size_t cap)
{
    json_object *list = NULL;
    json_object *w = listed_world(s, name, &list);
    json_object *t =
        json_object_object_get(json_object_object_get(w, "labels"), "bindery.dev/template");
    snprintf(out, cap, "%s", t ? json_object_get_string(t) : "");
    json_object_put(list);
}

/* A world whose manifest requires capabilities waits, Pending and saying
 * which one is unbound, until CapabilityBindings (literal values, a
 * Secret's key) bind them all; then it starts with them in its
 * environment. */
static void test_world_waits_for_its_capabilities(void **state)
{
    (void)state;
    bb_server s;
    char cfg[1024];
    pool_config(cfg, sizeof(cfg), 1, 1, 4, 0);
    bb_init(&s, cfg);
    char manifest[2048];
    snprintf(
        manifest, sizeof(manifest),
        "apiVersion: bindery.dev/v1alpha1\nkind: ModuleManifest\n"
        "metadata: {name: arena, namespace: default}\n"
        "spec:\n"
        "  ports: [{name: game, containerPort: 7777, protocol: TCP}]\n"
        "  readinessProbe: " ARENA_PROBE "\n"
        "  terminationGracePeriodSeconds: 2\n"
        "  capabilities: [motd, db]\n"
        "  local:\n"
        "    command: /bin/sh\n"
        "    args:\n"
        "      - -c\n"
        "      - exec %s --port {port:game} --name \"$CAPABILITY_MOTD_GREETING-$DB_PASSWORD\"\n",
        world_bin());
    bb_write(&s, "manifests/arena.yaml", manifest);
    assert_true(bb_start(&s, NULL));
    assert_true(
        wait_world_waits(&s, "capability motd: no CapabilityBinding in namespace default", 20000));
    /* Waiting says so once while nothing changes (it looks again every
     * 2 s at first): one log line, as one status write and one Event. */
    sleep_ms(4500);
    assert_int_equal(bb_log_count(&s, "waits to start: capability motd"), 1);

    /* One of two bound: it waits for the other. */
    bb_write(&s, "manifests/motd.yaml",
             "apiVersion: bindery.dev/v1alpha1\nkind: CapabilityBinding\n"
             "metadata: {name: motd, namespace: default}\n"
             "spec: {capability: motd, source: {values: {greeting: \"hi {port:game}\"}}}\n"
             "---\n"
             "apiVersion: bindery.dev/v1alpha1\nkind: CapabilityBinding\n"
             "metadata: {name: db, namespace: default}\n"
             "spec:\n"
             "  capability: db\n"
             "  source: {secretRef: {name: db, key: password}}\n"
             "  inject: {env: DB_PASSWORD}\n");
    bb_signal(&s, SIGHUP);
    assert_true(
        wait_world_waits(&s, "capability db: CapabilityBinding db: Secret default/db", 20000));
    assert_int_equal(pool_field(&s, "warm"), 0);
    /* The bindings' own status says which one resolves. */
    assert_true(wait_binding_reason(&s, "motd", "Resolved", 10000));
    assert_true(wait_binding_reason(&s, "db", "Unresolved", 10000));

    /* The Secret: the world starts, told both. */
    bb_write(&s, "manifests/secret.yaml",
             "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: default}\n"
             "stringData: {password: hunter2}\n");
    bb_signal(&s, SIGHUP);
    assert_true(wait_warm(&s, 1, 30000));
    assert_true(wait_binding_reason(&s, "db", "Resolved", 10000));
    claim c = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(c.status, 201);
    char answer[160];
    assert_true(ping_world(c.port, answer, sizeof(answer)));
    /* A value is set as given: no placeholder is replaced in it. */
    assert_string_equal(answer, "pong hi {port:game}-hunter2\n");
    /* The world that waited has the template of the worlds made since it
     * was bound, not one the binding it waited for made outdated. */
    assert_true(wait_warm(&s, 1, 30000));
    char waited[32];
    char made_since[32];
    world_template(&s, c.name, waited, sizeof(waited));
    world_template(&s, NULL, made_since, sizeof(made_since));
    assert_true(waited[0] != '\0');
    assert_string_equal(waited, made_since);
    assert_int_equal(bb_log_count(&s, "made from an older template"), 0);

    /* The Secret rotated: the pool's idle world is replaced by one told the
     * new value; the claimed world keeps what it started with. */
    assert_true(wait_warm(&s, 1, 30000));
    bb_write(&s, "manifests/secret.yaml",
             "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: default}\n"
             "stringData: {password: hunter3}\n");
    bb_signal(&s, SIGHUP);
    for (int waited_ms = 0;
         bb_log_count(&s, "made from an older template") == 0 && waited_ms < 30000;
         waited_ms += 100)
        sleep_ms(100);
    assert_int_equal(bb_log_count(&s, "replacing 1 worlds made from an older template"), 1);
    assert_true(wait_warm(&s, 1, 30000));
    claim c2 = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(c2.status, 201);
    assert_true(ping_world(c2.port, answer, sizeof(answer)));
    assert_string_equal(answer, "pong hi {port:game}-hunter3\n");
    assert_true(ping_world(c.port, answer, sizeof(answer)));
    assert_string_equal(answer, "pong hi {port:game}-hunter2\n");
    bb_cleanup(&s);
}

/* A booklet world's capabilities, required by one module, reach its modules
 * through the world host's environment. */
static void test_booklet_world_gets_capabilities(void **state)
{
    (void)state;
    bb_server s;
    char cfg[1024];
    int n = runtime_config(cfg, sizeof(cfg));
    snprintf(cfg + n, sizeof(cfg) - (size_t)n,
             "pools:\n"
             "  - name: arena\n    booklet: duo\n    minWarm: 1\n    maxWarm: 1\n"
             "    maxWorlds: 4\n    creationRate: 50\n");
    bb_init(&s, cfg);
    write_arena_manifest(&s, ARENA_PROBE, 20, NULL);
    char manifest[2048];
    snprintf(
        manifest, sizeof(manifest),
        "apiVersion: bindery.dev/v1alpha1\nkind: ModuleManifest\n"
        "metadata: {name: voice, namespace: default}\n"
        "spec:\n"
        "  ports: [{name: voice, containerPort: 7000, protocol: TCP}]\n"
        "  readinessProbe: {tcpSocket: {port: 7000}, periodSeconds: 1}\n"
        "  capabilities: [voice-key]\n"
        "  local:\n"
        "    command: /bin/sh\n"
        "    args: [-c, \"exec %s --port {port:voice} --name voice-$VOICE_TOKEN\"]\n"
        "---\n"
        "apiVersion: bindery.dev/v1alpha1\nkind: Booklet\n"
        "metadata: {name: duo, namespace: default}\n"
        "spec:\n"
        "  modules:\n"
        "    - {name: game, manifest: arena}\n"
        "    - {name: voice, manifest: voice}\n"
        "---\n"
        "apiVersion: bindery.dev/v1alpha1\nkind: CapabilityBinding\n"
        "metadata: {name: voice-key, namespace: default}\n"
        "spec: {capability: voice-key, source: {values: {token: s3cret}}, inject: {env: VOICE}}\n",
        world_bin());
    bb_write(&s, "manifests/voice.yaml", manifest);
    assert_true(bb_start(&s, NULL));
    assert_true(wait_warm(&s, 1, 30000));
    claim c = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(c.status, 201);
    int voice = claim_port(&c, "voice");
    assert_true(voice > 0);
    char answer[160];
    assert_true(ping_world(voice, answer, sizeof(answer)));
    assert_string_equal(answer, "pong voice-s3cret\n");
    bb_cleanup(&s);
}

/* An edit that renames the port a pool's worlds are probed on does not fail
 * the worlds already running (their probes would knock on a port they do
 * not have, all at once): they stay the pool's stock, claimable, until the
 * new worlds (slow to be Ready here) replace them. */
static void test_port_rename_rolls_out(void **state)
{
    (void)state;
    bb_server s;
    start_warm(&s, 2, 10, 0);
    char manifest[2048];
    snprintf(manifest, sizeof(manifest),
             "apiVersion: bindery.dev/v1alpha1\nkind: ModuleManifest\n"
             "metadata: {name: arena, namespace: default}\n"
             "spec:\n"
             "  ports: [{name: play, containerPort: 7777, protocol: TCP}]\n"
             "  readinessProbe: {tcpSocket: {port: play}, periodSeconds: 1}\n"
             "  terminationGracePeriodSeconds: 2\n"
             "  startDeadlineSeconds: 30\n"
             "  local:\n"
             "    command: %s\n"
             "    args: [\"--port\", \"{port:play}\", \"--name\", \"v2-{name}\",\n"
             "           \"--ready-delay-ms\", \"9000\"]\n",
             world_bin());
    bb_write(&s, "manifests/arena.yaml", manifest);
    bb_signal(&s, SIGHUP);
    assert_true(bb_log_contains(&s, "reloaded", 5000));
    /* Three failed probes a second apart would have failed them by now. */
    sleep_ms(4500);
    assert_false(bb_log_contains(&s, "readiness probe failed", 0));
    assert_int_equal(pool_field(&s, "failed"), 0);
    claim c = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(c.status, 201);
    char answer[160];
    char want[192];
    snprintf(want, sizeof(want), "pong %s\n", c.name); /* the old version */
    assert_true(ping_world(c.port, answer, sizeof(answer)));
    assert_string_equal(answer, want);
    const char *kept[2] = {c.name, NULL};
    assert_true(wait_rolled_out(&s, kept, 2, "v2-", NULL, 30000));
    assert_int_equal(settled_pool_field(&s, "outdated", 0, 10000), 0);
    assert_false(bb_log_contains(&s, "readiness probe failed", 0));
    bb_cleanup(&s);
}

/* Worlds in the store right now, and how many of them are Allocated. */
/* How many worlds the store holds; *in_phase, how many of them are in
 * phase. */
static int count_worlds_in(bb_server *s, const char *phase, int *in_phase)
{
    long status = 0;
    json_object *list =
        get_json(s, "/apis/bindery.dev/v1alpha1/namespaces/default/worldinstances", &status);
    assert_int_equal(status, 200);
    json_object *items = json_object_object_get(list, "items");
    int n = (int)json_object_array_length(items);
    *in_phase = 0;
    for (int i = 0; i < n; i++) {
        json_object *st =
            json_object_object_get(json_object_array_get_idx(items, (size_t)i), "status");
        const char *p = json_object_get_string(json_object_object_get(st, "phase"));
        *in_phase += p != NULL && strcmp(p, phase) == 0;
    }
    json_object_put(list);
    return n;
}

static int count_worlds(bb_server *s, int *allocated)
{
    return count_worlds_in(s, "Allocated", allocated);
}

/* Worlds that have used up the runtime's host ports: a new world that
 * finds none free waits (Pending) and starts once a port is free, rather
 * than failing and growing the pool's crash backoff (which kept the pool
 * empty for up to a minute after ports came back). */
static void test_port_shortage_waits(void **state)
{
    (void)state;
    bb_server s;
    char cfg[1024];
    unsigned base = 10000 + (unsigned)(getpid() % 50) * 200;
    snprintf(cfg, sizeof(cfg),
             "manifests: [manifests]\n"
             "runtime:\n  workDir: .\n  logDir: worlds\n  portMin: %u\n  portMax: %u\n"
             "pools:\n"
             "  - name: arena\n    manifest: arena\n    minWarm: 2\n    maxWarm: 2\n"
             "    maxWorlds: 4\n    scaleDownCooldownSeconds: 0\n    creationRate: 50\n",
             base, base + 1);
    bb_init(&s, cfg);
    write_arena_manifest(&s, ARENA_PROBE, 20, NULL);
    assert_true(bb_start(&s, NULL));
    assert_true(wait_warm(&s, 2, 30000));
    claim a = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    claim b = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(a.status, 201);
    assert_int_equal(b.status, 201);
    /* Their replacements find no port; long enough for a backoff to grow. */
    assert_true(bb_log_contains(&s, "no free host port", 10000));
    /* kubectl shows why they wait: Pending, reason StartDeferred. */
    bool deferred = false;
    for (int i = 0; i < 50 && !deferred; i++) {
        bb_response w = bb_request(
            &s, "GET", "/apis/bindery.dev/v1alpha1/namespaces/default/worldinstances", NULL, NULL);
        deferred = w.body != NULL && strstr(w.body, "\"reason\":\"StartDeferred\"") != NULL &&
                   strstr(w.body, "no free host port") != NULL;
        bb_response_free(&w);
        if (!deferred)
            sleep_ms(100);
    }
    assert_true(deferred);
    sleep_ms(4000);
    char path[128];
    snprintf(path, sizeof(path), "/v1/allocations/%s", a.id);
    bb_response r = bb_request(&s, "DELETE", path, NULL, NULL);
    assert_int_equal(r.status, 204);
    bb_response_free(&r);
    /* The released world stops and frees its port: a waiting world takes
     * it within seconds. */
    assert_true(wait_warm(&s, 1, 8000));
    int failed = -1;
    count_worlds_in(&s, "Failed", &failed);
    assert_int_equal(failed, 0);
    /* Nor did one fail and go meanwhile. */
    r = bb_request(&s, "GET", "/api/v1/namespaces/default/events", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, "StartError"));
    bb_response_free(&r);
    bb_cleanup(&s);
}

/* A pool a reload removes lets its idle worlds go after its cooldown (they
 * could never be claimed again); its claimed world stays the claimant's. */
static void test_removed_pool_lets_idle_worlds_go(void **state)
{
    (void)state;
    bb_server s;
    start_warm(&s, 3, 10, 0);
    claim c = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(c.status, 201);
    assert_true(wait_warm(&s, 3, 20000)); /* refilled: four worlds */
    assert_true(wait_world_allocated(&s, c.name, c.id, NULL, 10000));
    char cfg[1024];
    pool_config(cfg, sizeof(cfg), 3, 3, 10, 0);
    *strstr(cfg, "pools:") = '\0';
    strncat(cfg, "pools: []\n", sizeof(cfg) - strlen(cfg) - 1);
    bb_write(&s, "bindery.yaml", cfg);
    bb_signal(&s, SIGHUP);
    assert_true(bb_log_contains(&s, "reloaded", 5000));
    int allocated = 0;
    int n = count_worlds(&s, &allocated);
    for (int i = 0; i < 300 && n > 1; i++) {
        sleep_ms(100);
        n = count_worlds(&s, &allocated);
    }
    assert_int_equal(n, 1);
    assert_int_equal(allocated, 1);
    char answer[128];
    assert_true(ping_world(c.port, answer, sizeof(answer)));
    bb_response r = bb_request(&s, "GET", "/api/v1/namespaces/default/events", NULL, NULL);
    assert_non_null(strstr(r.body, "\"reason\":\"PoolRemoved\""));
    bb_response_free(&r);
    bb_cleanup(&s);
}

/* Starts a pool of one world that ignores SIGTERM (grace 8 s) and never
 * listens, and waits until it failed its 1 s start deadline. */
static void start_failing_world(bb_server *s)
{
    setup_server(s, 1, 1, NULL, 0);
    bb_write(s, "manifests/arena.yaml",
             "apiVersion: bindery.dev/v1alpha1\nkind: ModuleManifest\n"
             "metadata: {name: arena, namespace: default}\n"
             "spec:\n"
             "  ports: [{name: game, containerPort: 7777, protocol: TCP}]\n"
             "  readinessProbe: {tcpSocket: {port: game}, periodSeconds: 1}\n"
             "  terminationGracePeriodSeconds: 8\n"
             "  startDeadlineSeconds: 1\n"
             "  local:\n"
             "    command: /bin/sh\n"
             "    args: [\"-c\", \"trap '' TERM; while :; do sleep 0.2; done\"]\n");
    assert_true(bb_start(s, NULL));
    assert_true(bb_log_contains(s, "StartDeadlineExceeded", 30000));
}

/* A world that never becomes ready fails at its start deadline even when
 * its probe period is far longer: it was looked at again only after a
 * whole period (here a minute), counted as warm stock all the while. */
static void test_start_deadline_not_held_by_probe_period(void **state)
{
    (void)state;
    bb_server s;
    setup_server(&s, 1, 1, NULL, 0);
    bb_write(&s, "manifests/arena.yaml",
             "apiVersion: bindery.dev/v1alpha1\nkind: ModuleManifest\n"
             "metadata: {name: arena, namespace: default}\n"
             "spec:\n"
             "  ports: [{name: game, containerPort: 7777, protocol: TCP}]\n"
             "  readinessProbe: {tcpSocket: {port: game}, periodSeconds: 60}\n"
             "  terminationGracePeriodSeconds: 1\n"
             "  startDeadlineSeconds: 2\n"
             "  local:\n"
             "    command: /bin/sh\n"
             "    args: [\"-c\", \"while :; do sleep 0.2; done\"]\n");
    assert_true(bb_start(&s, NULL));
    /* Well past the deadline, well short of the period. */
    if (!bb_log_contains(&s, "StartDeadlineExceeded", 20000)) {
        bb_print_log_tail(&s, "no StartDeadlineExceeded");
        fail();
    }
    bb_cleanup(&s);
}

/* The world start_failing_world made, Failed or already Terminating (a
 * replacement may be listed too): a new reference; the test fails without. */
static json_object *failed_world(bb_server *s)
{
    long status = 0;
    json_object *list =
        get_json(s, "/apis/bindery.dev/v1alpha1/namespaces/default/worldinstances", &status);
    assert_int_equal(status, 200);
    json_object *items = json_object_object_get(list, "items");
    json_object *found = NULL;
    for (size_t i = 0; i < json_object_array_length(items) && found == NULL; i++) {
        json_object *w = json_object_array_get_idx(items, i);
        const char *phase = json_object_get_string(
            json_object_object_get(json_object_object_get(w, "status"), "phase"));
        if (phase != NULL && (strcmp(phase, "Failed") == 0 || strcmp(phase, "Terminating") == 0))
            found = json_object_get(w);
    }
    json_object_put(list);
    assert_non_null(found);
    return found;
}

/* A world that fails its start deadline is stopped with its manifest's
 * grace period, not cut short by the next pass over the Failed world. */
static void test_failed_world_gets_its_grace(void **state)
{
    (void)state;
    bb_server s;
    start_failing_world(&s);
    /* Starting to Failed leaves the Ready condition False: its
     * lastTransitionTime stays when it became False, at the start. */
    json_object *failed = failed_world(&s);
    json_object *st = json_object_object_get(failed, "status");
    const char *starting = json_object_get_string(
        json_object_object_get(json_object_object_get(st, "timings"), "startingAt"));
    json_object *cond = json_object_array_get_idx(json_object_object_get(st, "conditions"), 0);
    assert_non_null(starting);
    assert_string_equal(json_object_get_string(json_object_object_get(cond, "status")), "False");
    assert_string_equal(json_object_get_string(json_object_object_get(cond, "lastTransitionTime")),
                        starting);
    json_object_put(failed);
    /* Half the grace later it still runs; it is killed once the grace is up. */
    sleep_ms(4000);
    assert_false(bb_log_contains(&s, "outlived its grace period", 0));
    assert_true(bb_log_contains(&s, "outlived its grace period", 30000));
    bb_cleanup(&s);
}

/* A manifest with more ports than embedded mode runs is refused with a
 * ManifestInvalid that says so; the world used to start with the first 16 and
 * no BINDERY_PORT_* for the rest. */
static void test_manifest_past_runtime_limits_is_refused(void **state)
{
    (void)state;
    bb_server s;
    setup_server(&s, 1, 1, NULL, 0);
    char ports[1024] = "";
    size_t used = 0;
    for (int i = 0; i < 17; i++)
        used += (size_t)snprintf(ports + used, sizeof(ports) - used,
                                 "%s{name: p%d, containerPort: %d, protocol: TCP}", i ? ", " : "",
                                 i, 7000 + i);
    char manifest[2048];
    snprintf(manifest, sizeof(manifest),
             "apiVersion: bindery.dev/v1alpha1\nkind: ModuleManifest\n"
             "metadata: {name: arena, namespace: default}\n"
             "spec:\n"
             "  ports: [%s]\n"
             "  local:\n"
             "    command: %s\n"
             "    args: [\"--port\", \"{port:p0}\"]\n",
             ports, world_bin());
    bb_write(&s, "manifests/arena.yaml", manifest);
    assert_true(bb_start(&s, NULL));
    assert_true(bb_log_contains(&s, "spec.ports has 17 entries; embedded mode takes 16", 30000));
    assert_true(bb_log_contains(&s, "ManifestInvalid", 0));
    assert_false(bb_log_contains(&s, "started: pid", 0)); /* the runtime never ran it */
    bb_cleanup(&s);
}

/* A readiness probe may name its port by number, a containerPort as in a
 * Pod: the world is probed on the port it was given, not on that number,
 * and not before initialDelaySeconds. A number that is no containerPort is
 * ManifestInvalid. */
static void test_probe_port_number_and_initial_delay(void **state)
{
    (void)state;
    bb_server s;
    setup_server_warm(&s, 1, 1, 2, NULL, 0); /* room for the claimed world's replacement */
    write_arena_manifest(&s, "{tcpSocket: {port: 7777}, periodSeconds: 1, initialDelaySeconds: 3}",
                         20, NULL);
    assert_true(bb_start(&s, NULL));
    assert_true(wait_warm(&s, 1, 30000));
    long status = 0;
    json_object *list =
        get_json(&s, "/apis/bindery.dev/v1alpha1/namespaces/default/worldinstances", &status);
    assert_int_equal(status, 200);
    json_object *items = json_object_object_get(list, "items");
    assert_int_equal(json_object_array_length(items), 1);
    json_object *timings = json_object_object_get(
        json_object_object_get(json_object_array_get_idx(items, 0), "status"), "timings");
    double starting = 0;
    double ready = 0;
    assert_int_equal(
        bdy_timestamp_parse(json_object_get_string(json_object_object_get(timings, "startingAt")),
                            &starting),
        0);
    assert_int_equal(
        bdy_timestamp_parse(json_object_get_string(json_object_object_get(timings, "readyAt")),
                            &ready),
        0);
    /* Every phase has its time, Pending (from the creation) included. */
    double created = 0;
    assert_int_equal(
        bdy_timestamp_parse(json_object_get_string(json_object_object_get(timings, "createdAt")),
                            &created),
        0);
    assert_true(created <= starting + 1); /* creationTimestamp has whole seconds */
    json_object_put(list);
    /* The example world listens at once: only the delay holds it back. */
    assert_true(ready - starting >= 2.9);

    write_arena_manifest(&s, "{tcpSocket: {port: 7778}, periodSeconds: 1, initialDelaySeconds: 3}",
                         20, NULL);
    bb_signal(&s, SIGHUP);
    assert_true(bb_log_contains(&s, "reloaded", 5000));
    claim c = post_claim(&s, "{\"namespace\":\"default\",\"pool\":\"arena\"}", NULL);
    assert_int_equal(c.status, 201);
    assert_true(
        bb_log_contains(&s, "readinessProbe port 7778 is the containerPort of none", 30000));
    assert_true(bb_log_contains(&s, "ManifestInvalid", 0));
    bb_cleanup(&s);
}

/* A spec edit to a running world: not restarted, but observed, so that
 * observedGeneration catches up with the generation. */
/* Patches world name's spec through the Kubernetes API and waits until
 * its status observed generation 2 while it stays in phase. */
/* Whether a merge patch of world name answers 422 naming field with text
 * (field is immutable, when NULL), and leaves the world at generation 1. */
static bool edit_refused(bb_server *s, const char *name, const char *patch, const char *field,
                         const char *text)
{
    char path[300];
    snprintf(path, sizeof(path), "/apis/bindery.dev/v1alpha1/namespaces/default/worldinstances/%s",
             name);
    const char *const merge[] = {"Content-Type: application/merge-patch+json", NULL};
    bb_response r = bb_request(s, "PATCH", path, patch, merge);
    bool refused = r.status == 422 && r.body != NULL && strstr(r.body, field) != NULL &&
                   strstr(r.body, text ? text : "field is immutable") != NULL;
    if (!refused)
        fprintf(stderr, "PATCH %s %s: %ld %s\n", name, patch, r.status, r.body ? r.body : "");
    bb_response_free(&r);
    long status = 0;
    json_object *w = get_json(s, path, &status);
    int64_t gen = json_object_get_int64(
        json_object_object_get(json_object_object_get(w, "metadata"), "generation"));
    json_object_put(w);
    return refused && status == 200 && gen == 1;
}

/* A world's spec is set once, by the pool that made it, warm or claimed:
 * moved to another pool, it was counted and claimed as that pool's while it
 * ran this one's manifest; given another manifest or booklet, it kept
 * running the program it was started with while its observedGeneration
 * said the change had taken. Its bindery.dev/ labels and annotations are
 * bindery's too (a relabelled pool label hid it from -l bindery.dev/pool=);
 * other labels are the client's. */
static void test_world_spec_is_immutable(void **state)
{
    (void)state;
    bb_server s;
    start_warm(&s, 2, 3, 0);
    claim c = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(c.status, 201);
    assert_true(wait_world_allocated(&s, c.name, c.id, NULL, 10000));
    long status = 0;
    json_object *list = get_json(&s, "/v1/worlds?pool=arena&phase=Ready", &status);
    char ready[128];
    snprintf(ready, sizeof(ready), "%s",
             json_object_get_string(json_object_object_get(
                 json_object_array_get_idx(json_object_object_get(list, "items"), 0), "name")));
    json_object_put(list);
    const char *names[] = {ready, c.name};
    for (size_t i = 0; i < 2; i++) {
        assert_true(
            edit_refused(&s, names[i], "{\"spec\":{\"pool\":\"other\"}}", "spec.pool", NULL));
        assert_true(edit_refused(&s, names[i], "{\"spec\":{\"manifest\":\"other\"}}",
                                 "spec.manifest", NULL));
        assert_true(edit_refused(&s, names[i], "{\"spec\":{\"manifest\":null,\"booklet\":\"duo\"}}",
                                 "spec.booklet", NULL));
        assert_true(edit_refused(&s, names[i],
                                 "{\"metadata\":{\"labels\":{\"bindery.dev/pool\":\"other\"}}}",
                                 "metadata.labels[bindery.dev/pool]", "set by bindery only"));
        assert_true(edit_refused(&s, names[i],
                                 "{\"metadata\":{\"labels\":{\"bindery.dev/template\":null}}}",
                                 "metadata.labels[bindery.dev/template]", "set by bindery only"));
        assert_true(edit_refused(&s, names[i],
                                 "{\"metadata\":{\"annotations\":{\"x.bindery.dev/a\":\"b\"}}}",
                                 "metadata.annotations[x.bindery.dev/a]", "set by bindery only"));
        char path[300];
        snprintf(path, sizeof(path),
                 "/apis/bindery.dev/v1alpha1/namespaces/default/worldinstances/%s", names[i]);
        const char *const merge[] = {"Content-Type: application/merge-patch+json", NULL};
        bb_response r =
            bb_request(&s, "PATCH", path, "{\"metadata\":{\"labels\":{\"team\":\"blue\"}}}", merge);
        assert_int_equal(r.status, 200);
        bb_response_free(&r);
    }
    /* Nor may a client's new world carry them: a pool would take it for
     * its own, or it would stay reserved for a claim that never was.
     * Another bindery.dev/ key (bindery-load-test's) is the client's. */
    const char *const json[] = {"Content-Type: application/json", NULL};
    const char *forged[] = {"\"labels\":{\"bindery.dev/pool\":\"arena\"}",
                            "\"annotations\":{\"bindery.dev/cold-claim\":\"alc-x\"}"};
    for (size_t i = 0; i < 2; i++) {
        char body[400];
        snprintf(body, sizeof(body),
                 "{\"apiVersion\":\"bindery.dev/v1alpha1\",\"kind\":\"WorldInstance\","
                 "\"metadata\":{\"name\":\"hand-%zu\",%s},\"spec\":{\"pool\":\"arena\","
                 "\"manifest\":\"arena\"}}",
                 i, forged[i]);
        bb_response r = bb_request(
            &s, "POST", "/apis/bindery.dev/v1alpha1/namespaces/default/worldinstances", body, json);
        assert_int_equal(r.status, 422);
        assert_non_null(strstr(r.body, "set by bindery only"));
        bb_response_free(&r);
    }
    bb_response r = bb_request(
        &s, "POST", "/apis/bindery.dev/v1alpha1/namespaces/default/worldinstances",
        "{\"apiVersion\":\"bindery.dev/v1alpha1\",\"kind\":\"WorldInstance\",\"metadata\":{"
        "\"name\":\"hand-lt\",\"labels\":{\"bindery.dev/load-test\":\"r1\"}},\"spec\":{"
        "\"pool\":\"bindery-load-test\",\"manifest\":\"arena\"}}",
        json);
    assert_int_equal(r.status, 201);
    bb_response_free(&r);
    bb_cleanup(&s);
}

/* An edit that gives the manifest a readiness probe no world can pass (a
 * port name it lacks) takes no working world away: the worlds made before
 * it run on, not probed with a probe that is not theirs (they were failed
 * Unhealthy, all at once), while the new template's worlds fail. */
static void test_broken_probe_edit_keeps_running_worlds(void **state)
{
    (void)state;
    bb_server s;
    start_warm(&s, 2, 4, 600);
    const char *const merge[] = {"Content-Type: application/merge-patch+json", NULL};
    bb_response r = bb_request(
        &s, "PATCH", "/apis/bindery.dev/v1alpha1/namespaces/default/modulemanifests/arena",
        "{\"spec\":{\"readinessProbe\":{\"tcpSocket\":{\"port\":\"nope\"}}}}", merge);
    assert_int_equal(r.status, 200);
    bb_response_free(&r);
    /* The new template's worlds fail (their probe names no port)... */
    assert_true(bb_log_contains(&s, "ManifestInvalid", 20000));
    /* ...and three probe periods and more later the old ones still serve. */
    sleep_ms(5000);
    assert_false(bb_log_contains(&s, "Unhealthy", 0));
    claim c = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(c.status, 201);
    char answer[160];
    assert_true(ping_world(c.port, answer, sizeof(answer)));
    bb_cleanup(&s);
}

/* A cold-claimed world deleted by other hands (kubectl) ends its claim
 * with a release record: GET of the allocation says Released and a replay
 * of its key returns it, also after a restart, and claims no second world. */
static void test_cold_claimed_world_deleted_is_released(void **state)
{
    (void)state;
    bb_server s;
    setup_server_warm(&s, 0, 0, 2, NULL, 600);
    assert_true(bb_start(&s, NULL));
    const char *body = "{\"pool\":\"arena\",\"waitSeconds\":30}";
    claim c = post_claim(&s, body, "deleted-world-key");
    assert_int_equal(c.status, 201);
    assert_string_equal(c.source, "cold");
    assert_true(wait_world_allocated(&s, c.name, c.id, NULL, 10000));
    char path[300];
    snprintf(path, sizeof(path), "/apis/bindery.dev/v1alpha1/namespaces/default/worldinstances/%s",
             c.name);
    bb_response r = bb_request(&s, "DELETE", path, NULL, NULL);
    assert_int_equal(r.status, 200);
    bb_response_free(&r);
    assert_true(wait_world_gone(&s, c.name, 20000));
    /* A world whose status.allocation no claim wrote makes no valid
     * release record: it goes all the same, not stuck Terminating. No
     * client may write one now (below); what an older bindery let a hand
     * write is made in the store while bindery is down. */
    claim d = post_claim(&s, body, NULL);
    assert_int_equal(d.status, 201);
    assert_true(wait_world_allocated(&s, d.name, d.id, NULL, 10000));
    char status_path[300];
    snprintf(status_path, sizeof(status_path),
             "/apis/bindery.dev/v1alpha1/namespaces/default/worldinstances/%s/status", d.name);
    const char *const merge[] = {"Content-Type: application/merge-patch+json", NULL};
    /* A world's status is bindery's to write: a hand-made allocation, the
     * process a world runs as (pid 1 here would make a delete kill it),
     * an address or a phase are refused, each field named. */
    static const char *const refused[][2] = {
        {"{\"status\":{\"allocation\":{\"id\":\"Hand Marked\",\"claimedAt\":null}}}",
         "status.allocation"},
        {"{\"status\":{\"pid\":1}}", "status.pid"},
        {"{\"status\":{\"address\":\"10.9.9.9\",\"phase\":\"Ready\"}}", "status.phase"},
        {"{\"status\":{\"address\":\"10.9.9.9\"}}", "status.address"},
        {"{\"status\":{\"handMade\":true}}", "status.handMade"},
        {"{\"status\":null}", "status"},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        r = bb_request(&s, "PATCH", status_path, refused[i][0], merge);
        assert_int_equal(r.status, 422);
        assert_non_null(strstr(r.body, refused[i][1]));
        bb_response_free(&r);
    }
    /* A write that changes nothing is no change. */
    r = bb_request(&s, "PATCH", status_path, "{\"status\":{}}", merge);
    assert_int_equal(r.status, 200);
    bb_response_free(&r);
    assert_true(wait_world_allocated(&s, d.name, d.id, NULL, 1000));
    bb_signal(&s, SIGTERM);
    assert_true(bb_wait_exit(&s, 10000));
    bdy_store *store = open_stopped_store(&s);
    patch_stored_world(store, d.name, refused[0][0], true);
    bdy_store_close(store);
    assert_true(bb_start(&s, NULL));
    snprintf(path, sizeof(path), "/apis/bindery.dev/v1alpha1/namespaces/default/worldinstances/%s",
             d.name);
    r = bb_request(&s, "DELETE", path, NULL, NULL);
    assert_int_equal(r.status, 200);
    bb_response_free(&r);
    assert_true(wait_world_gone(&s, d.name, 20000));
    for (int round = 0; round < 2; round++) {
        snprintf(path, sizeof(path), "/v1/allocations/%s", c.id);
        long status = 0;
        json_object *a = NULL;
        for (int i = 0; i < 50; i++) { /* the record reaches the index through a watch */
            json_object_put(a);
            a = get_json(&s, path, &status);
            if (status == 200)
                break;
            sleep_ms(100);
        }
        assert_int_equal(status, 200);
        assert_string_equal(json_object_get_string(json_object_object_get(a, "state")), "Released");
        json_object_put(a);
        claim again = post_claim(&s, body, "deleted-world-key");
        assert_int_equal(again.status, 200);
        assert_string_equal(again.id, c.id);
        if (round == 0) {
            bb_signal(&s, SIGTERM);
            assert_true(bb_wait_exit(&s, 15000));
            assert_true(bb_start(&s, NULL));
        }
    }
    bb_cleanup(&s);
}

/* With http.maxBodyBytes raised, a warm claim whose labels and annotations
 * make its answer larger than 64 KiB is granted (it got 503 "could not be
 * made durable", again on every retry). */
static void test_large_claim_metadata_is_granted(void **state)
{
    (void)state;
    bb_server s;
    char cfg[1200];
    pool_config(cfg, sizeof(cfg), 1, 1, 2, 600);
    strncat(cfg, "http: {maxBodyBytes: 1048576}\n", sizeof(cfg) - strlen(cfg) - 1);
    bb_init(&s, cfg);
    write_arena_manifest(&s, ARENA_PROBE, 20, NULL);
    assert_true(bb_start(&s, NULL));
    assert_true(wait_warm(&s, 1, 15000));
    enum { NOTE = 100 * 1024 };
    char *body = malloc(NOTE + 200);
    assert_non_null(body);
    int n = snprintf(body, 200, "{\"pool\":\"arena\",\"metadata\":{\"annotations\":{\"note\":\"");
    memset(body + n, 'x', NOTE);
    snprintf(body + n + NOTE, 200 - 1, "\"}}}");
    bb_response r = bb_request(&s, "POST", "/v1/allocations", body, JSON_HDR);
    if (r.status != 201)
        fail_msg("claim: %ld %.300s", r.status, r.body ? r.body : "");
    assert_true(r.body != NULL && strlen(r.body) > NOTE);
    bb_response_free(&r);
    free(body);
    bb_cleanup(&s);
}

/* Phase of world name from /v1/worlds, "" when not listed. */
static void world_phase(bb_server *s, const char *name, char *out, size_t cap)
{
    json_object *list = NULL;
    json_object *w = listed_world(s, name, &list);
    const char *phase = json_object_get_string(json_object_object_get(w, "phase"));
    snprintf(out, cap, "%s", phase ? phase : "");
    json_object_put(list);
}

/* A warm world that stops answering its readiness probe fails after
 * failureThreshold periods, not after failureThreshold updates of its
 * object: twelve label edits in a moment (each a reconcile and a probe)
 * do not fail it. */
static void test_probe_failures_counted_per_period(void **state)
{
    (void)state;
    bb_server s;
    char cfg[1024];
    pool_config(cfg, sizeof(cfg), 1, 1, 1, 0);
    bb_init(&s, cfg);
    /* Ready within a period of its start; deaf 3 s after it. Failing 10
     * periods of 1 s takes 8 s at the least from then, room enough for a
     * slow start on a loaded machine before the edits below. */
    write_arena_manifest(&s, "{tcpSocket: {port: game}, periodSeconds: 1, failureThreshold: 10}",
                         20, ", \"--deaf-after-ms\", \"3000\"");
    assert_true(bb_start(&s, NULL));
    assert_true(wait_warm(&s, 1, 15000));
    char name[128] = "";
    long status = 0;
    json_object *o = get_json(&s, "/v1/worlds?pool=arena", &status);
    json_object *items = json_object_object_get(o, "items");
    assert_int_equal(json_object_array_length(items), 1);
    snprintf(name, sizeof(name), "%s",
             json_object_get_string(
                 json_object_object_get(json_object_array_get_idx(items, 0), "name")));
    json_object_put(o);
    sleep_ms(3200); /* deaf now */
    char path[300];
    snprintf(path, sizeof(path), "/apis/bindery.dev/v1alpha1/namespaces/default/worldinstances/%s",
             name);
    const char *const hdrs[] = {"Content-Type: application/merge-patch+json", NULL};
    for (int i = 0; i < 12; i++) { /* more than failureThreshold */
        char body[96];
        snprintf(body, sizeof(body), "{\"metadata\":{\"labels\":{\"edit\":\"e%d\"}}}", i);
        bb_response r = bb_request(&s, "PATCH", path, body, hdrs);
        assert_int_equal(r.status, 200);
        bb_response_free(&r);
        sleep_ms(40);
    }
    sleep_ms(400);
    char phase[32];
    world_phase(&s, name, phase, sizeof(phase));
    if (strcmp(phase, "Ready") != 0)
        bb_print_log_tail(&s, "failed for its object's updates");
    assert_string_equal(phase, "Ready");
    /* ...and does fail once the periods have passed. */
    for (int i = 0; i < 250 && strcmp(phase, "Failed") != 0 && phase[0]; i++) {
        sleep_ms(100);
        world_phase(&s, name, phase, sizeof(phase));
    }
    assert_true(bb_log_contains(&s, "Unhealthy", 5000));
    bb_cleanup(&s);
}

/* Warm worlds that hang (they accept connections and never answer) hold
 * no reconcile worker: with sixteen of them probed at once, each probe
 * waiting out its 2 s timeout, a cold world of another pool starts and is
 * claimed, and the hung worlds fail once three probes in a row have timed
 * out. Probes on the two workers held each 1 s per hung world and period,
 * and the cold world's passes queued behind them. */
static void test_hung_worlds_hold_no_worker(void **state)
{
    (void)state;
    enum { HUNG = 16 };
    bb_server s;
    char cfg[1024];
    int n = runtime_config(cfg, sizeof(cfg));
    snprintf(cfg + n, sizeof(cfg) - (size_t)n,
             "reconciler: {workers: 2}\n"
             "pools:\n"
             "  - name: arena\n    manifest: arena\n    minWarm: 0\n    maxWarm: 0\n"
             "    maxWorlds: 2\n    creationRate: 50\n"
             "  - name: hung\n    manifest: hung\n    minWarm: %d\n    maxWarm: %d\n"
             "    maxWorlds: %d\n    creationRate: 50\n",
             HUNG, HUNG, HUNG);
    bb_init(&s, cfg);
    write_arena_manifest(&s, ARENA_PROBE, 20, NULL);
    /* Answers its httpGet probe for 10 s, then hangs; fails after three
     * probes of 2 s. */
    char manifest[2048];
    snprintf(manifest, sizeof(manifest),
             "apiVersion: bindery.dev/v1alpha1\nkind: ModuleManifest\n"
             "metadata: {name: hung, namespace: default}\n"
             "spec:\n"
             "  ports: [{name: game, containerPort: 7777, protocol: TCP}]\n"
             "  readinessProbe: {httpGet: {port: game, path: /healthz}, periodSeconds: 1,\n"
             "                   timeoutSeconds: 2, failureThreshold: 3}\n"
             "  terminationGracePeriodSeconds: 2\n"
             "  local:\n"
             "    command: %s\n"
             "    args: [\"--port\", \"{port:game}\", \"--name\", \"{name}\",\n"
             "           \"--mute-after-ms\", \"10000\"]\n",
             world_bin());
    bb_write(&s, "manifests/hung.yaml", manifest);
    assert_true(bb_start(&s, NULL));
    /* Ready by their httpGet probe first. */
    int warm = -1;
    for (int waited = 0; warm < HUNG && waited < 20000; waited += 100) {
        long status = 0;
        json_object *p = get_json(&s, "/v1/pools/default/hung", &status);
        json_object *st = NULL;
        json_object *f = NULL;
        if (json_object_object_get_ex(p, "status", &st) &&
            json_object_object_get_ex(st, "warm", &f))
            warm = json_object_get_int(f);
        json_object_put(p);
        if (warm < HUNG)
            sleep_ms(100);
    }
    if (warm < HUNG)
        bb_print_log_tail(&s, "hung pool not warm");
    assert_int_equal(warm, HUNG);
    sleep_ms(10500); /* all hung now, their probes waiting */
    claim c = post_claim(&s, "{\"pool\":\"arena\",\"waitSeconds\":8}", NULL);
    if (c.status != 201)
        bb_print_log_tail(&s, "cold claim behind hung worlds");
    assert_int_equal(c.status, 201);
    assert_string_equal(c.source, "cold");
    char answer[128];
    assert_true(ping_world(c.port, answer, sizeof(answer)));
    /* Their timeouts count: each hung world fails in about 6 s. */
    assert_true(bb_log_contains(&s, "readiness probe failed 3 times in a row", 30000));
    bb_cleanup(&s);
}

static void test_warm_crash_is_replaced(void **state)
{
    (void)state;
    bb_server s;
    /* Every world crashes 1.5 s after start: it becomes Ready, then fails,
     * and the pool must start another one in its place. */
    setup_server(&s, 1, 10, ", \"--crash-after-ms\", \"1500\"", 0);
    assert_true(bb_start(&s, NULL));
    char seen[16][128];
    int nseen = 0;
    for (int i = 0; i < 300 && nseen < 2; i++) {
        long status = 0;
        json_object *o = get_json(&s, "/v1/worlds?pool=arena", &status);
        json_object *items = json_object_object_get(o, "items");
        for (size_t k = 0; items != NULL && k < json_object_array_length(items); k++) {
            const char *name = json_object_get_string(
                json_object_object_get(json_object_array_get_idx(items, k), "name"));
            bool known = false;
            for (int j = 0; j < nseen && !known; j++)
                known = strcmp(seen[j], name) == 0;
            if (!known && nseen < 16)
                snprintf(seen[nseen++], sizeof(seen[0]), "%s", name);
        }
        json_object_put(o);
        if (nseen < 2)
            sleep_ms(100);
    }
    assert_true(nseen >= 2);
    assert_true(bb_log_contains(&s, "Crashed", 10000));
    /* Its history says why the pool let it go. */
    bool replacing = false;
    for (int i = 0; i < 100 && !replacing; i++) {
        bb_response r = bb_request(&s, "GET", "/api/v1/namespaces/default/events", NULL, NULL);
        replacing = r.status == 200 && strstr(r.body, "\"reason\":\"Replacing\"") != NULL;
        bb_response_free(&r);
        if (!replacing)
            sleep_ms(100);
    }
    assert_true(replacing);
    bb_cleanup(&s);
}

/* Seconds of pool arena's crash backoff left, from its metric (0: none). */
static double backoff_left(bb_server *s)
{
    bb_response m = bb_request(s, "GET", "/metrics", NULL, NULL);
    const char *at = m.body ? strstr(m.body, "bindery_pool_creation_backoff_seconds{namespace="
                                             "\"default\",pool=\"arena\"} ")
                            : NULL;
    double left = at != NULL ? strtod(strchr(at, '}') + 2, NULL) : 0;
    bb_response_free(&m);
    return left;
}

/* A pool whose worlds crash at start backs off, and a claim that would
 * wait for a cold world is told so at once, with when to ask again,
 * rather than starting worlds that fail like the rest. */
static void test_cold_claim_of_a_failing_pool(void **state)
{
    (void)state;
    bb_server s;
    setup_server(&s, 2, 10, ", \"--crash-after-ms\", \"20\"", 0);
    assert_true(bb_start(&s, NULL));
    /* With at least 3 s of the backoff left, not just its first 1 s: on a
     * loaded machine the claim came after a 1 s one had passed, and its
     * world was claimed in the moment it was Ready before crashing. */
    assert_true(bb_log_contains(&s, "failures in a row; creating worlds again in", 30000));
    double left = 0;
    for (int waited = 0; left < 3 && waited < 60000; waited += 100) {
        left = backoff_left(&s);
        if (left < 3)
            sleep_ms(100);
    }
    assert_true(left >= 3);
    claim c = post_claim(&s, "{\"pool\":\"arena\",\"waitSeconds\":20}", NULL);
    assert_int_equal(c.status, 503);
    if (strstr(c.body, "PoolExhausted") == NULL || strstr(c.body, "keep failing") == NULL ||
        strstr(c.body, "retryAfterSeconds") == NULL)
        fail_msg("claim of a failing pool: %s", c.body);
    /* Without waitSeconds too: told the rest of the wait, not 1 s. */
    claim now = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(now.status, 503);
    if (strstr(now.body, "keep failing") == NULL ||
        strstr(now.body, "\"retryAfterSeconds\":1}") != NULL)
        fail_msg("claim without waitSeconds of a failing pool: %s", now.body);
    /* It made no world of its own. */
    bb_response r = bb_request(
        &s, "GET", "/apis/bindery.dev/v1alpha1/namespaces/default/worldinstances", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, BDY_ANNOTATION_COLD_CLAIM));
    bb_response_free(&r);
    /* The manifest fixed with kubectl is a new template, which ends the
     * backoff: worlds come at once, not when the backoff would have run
     * out (up to a minute: the pool was looked at again only then). With
     * at least 10 s of it left, to tell the two apart. */
    left = 0;
    for (int waited = 0; left < 10 && waited < 90000; waited += 200) {
        left = backoff_left(&s);
        if (left < 10)
            sleep_ms(200);
    }
    assert_true(left >= 10);
    const char *const merge[] = {"Content-Type: application/merge-patch+json", NULL};
    r = bb_request(&s, "PATCH",
                   "/apis/bindery.dev/v1alpha1/namespaces/default/modulemanifests/arena",
                   "{\"spec\":{\"local\":{\"args\":[\"--port\",\"{port:game}\",\"--name\","
                   "\"{name}\"]}}}",
                   merge);
    assert_int_equal(r.status, 200);
    bb_response_free(&r);
    double fixed_at = bdy_monotonic_ns() / 1e9;
    assert_true(wait_warm(&s, 1, 30000));
    double took = bdy_monotonic_ns() / 1e9 - fixed_at;
    if (took >= left - 1)
        fail_msg("a world came %.1f s after the fix, with %.1f s of the backoff left", took, left);
    bb_cleanup(&s);
}

/* A release cut short by kill -9, and bindery down for longer than the
 * record retention: the restart's first record sweep keeps the old record
 * (the release it names is unfinished), and the release is finished. The
 * sweep used to delete it first, and the world stayed held for good. */
static void test_old_cut_short_release_is_finished(void **state)
{
    (void)state;
    bb_server s;
    start_warm(&s, 1, 4, 600);
    claim b = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(b.status, 201);
    assert_true(wait_world_allocated(&s, b.name, b.id, NULL, 15000));
    char old[40];
    time_t then = time(NULL) - 3 * 86400;
    struct tm tm;
    strftime(old, sizeof(old), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&then, &tm));
    write_release_record_at(&s, b.id, b.name, old);
    bb_signal(&s, SIGKILL);
    assert_true(bb_wait_exit(&s, 5000));
    assert_true(bb_start(&s, NULL));
    assert_true(wait_world_gone(&s, b.name, 20000));
    bb_cleanup(&s);
}

/* Worlds whose processes died while bindery was down (a reboot, say): no
 * claim after the restart gets one of them, and the pool replaces them at
 * once, since losing them was no crash of the worlds' own. */
#define LOST_WORLDS 8
static void test_worlds_lost_in_downtime_are_not_claimed(void **state)
{
    (void)state;
    bb_server s;
    start_warm(&s, LOST_WORLDS, 2 * LOST_WORLDS, 0);
    long status = 0;
    json_object *list =
        get_json(&s, "/apis/bindery.dev/v1alpha1/namespaces/default/worldinstances", &status);
    assert_int_equal(status, 200);
    json_object *items = json_object_object_get(list, "items");
    assert_int_equal(json_object_array_length(items), LOST_WORLDS);
    pid_t pids[LOST_WORLDS];
    for (size_t i = 0; i < LOST_WORLDS; i++) {
        json_object *st = json_object_object_get(json_object_array_get_idx(items, i), "status");
        pids[i] = (pid_t)json_object_get_int64(json_object_object_get(st, "pid"));
        assert_true(pids[i] > 0);
    }
    json_object_put(list);
    bb_signal(&s, SIGTERM);
    assert_true(bb_wait_exit(&s, 10000));
    for (size_t i = 0; i < LOST_WORLDS; i++)
        assert_int_equal(kill(pids[i], SIGKILL), 0);
    for (size_t i = 0; i < LOST_WORLDS;
         i++) /* gone from /proc (reaped by init: not our children) */
        for (int k = 0; k < 200 && kill(pids[i], 0) == 0; k++)
            sleep_ms(10);

    assert_true(bb_start(&s, NULL));
    /* Claim as soon as bindery answers: every world it hands out answers. */
    int granted = 0;
    for (int i = 0; i < 400 && granted < 3; i++) {
        claim c = post_claim(&s, "{\"pool\":\"arena\",\"claimant\":\"t\"}", NULL);
        if (c.status == 201) {
            char answer[64] = "";
            assert_true(ping_world(c.port, answer, sizeof(answer)));
            assert_non_null(strstr(answer, "pong"));
            granted++;
        } else {
            assert_true(c.status == 503 || c.status == 429);
            sleep_ms(50);
        }
    }
    assert_int_equal(granted, 3);
    /* All replaced within seconds: not held back as if they had crashed
     * (eight crashes in a row hold a pool's creations back for 32 s). */
    assert_true(wait_warm(&s, LOST_WORLDS, 20000));
    bb_response r = bb_request(&s, "GET", "/api/v1/namespaces/default/events", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"reason\":\"Lost\""));
    bb_response_free(&r);
    bb_cleanup(&s);
}

/* ---- kill -9 during a burst of claims ---------------------------------------- */

typedef struct burst {
    bb_server *s;
    int n;
    claim results[16];
} burst;

static void *burst_main(void *arg)
{
    burst *b = arg;
    for (int i = 0; i < b->n; i++)
        b->results[i] = post_claim(b->s, "{\"pool\":\"arena\"}", NULL);
    return NULL;
}

static void test_kill9_keeps_acknowledged_claims(void **state)
{
    (void)state;
    bb_server s;
    setup_server(&s, 12, 40, NULL, 0);
    assert_true(bb_start(&s, NULL));
    assert_true(wait_warm(&s, 12, 60000));
    burst b[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        b[i] = (burst){.s = &s, .n = 4};
        pthread_create(&th[i], NULL, burst_main, &b[i]);
    }
    sleep_ms(30);
    bb_signal(&s, SIGKILL);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_true(bb_wait_exit(&s, 5000));
    assert_true(bb_start(&s, NULL));
    /* Every acknowledged claim is there, each on its own world. */
    int acked = 0;
    char names[64][128];
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < b[i].n; j++) {
            claim *c = &b[i].results[j];
            if (c->status != 201)
                continue;
            for (int k = 0; k < acked; k++)
                assert_string_not_equal(names[k], c->name);
            snprintf(names[acked++], sizeof(names[0]), "%s", c->name);
            char path[128];
            snprintf(path, sizeof(path), "/v1/allocations/%s", c->id);
            long status = 0;
            json_object *g = get_json(&s, path, &status);
            assert_int_equal(status, 200);
            assert_string_equal(json_object_get_string(json_object_object_get(g, "state")),
                                "Allocated");
            json_object_put(g);
            /* Its process kept running through the crash and is still ours. */
            char answer[128];
            assert_true(ping_world(c->port, answer, sizeof(answer)));
            /* And the restarted bindery wrote the claim into the world. */
            assert_true(wait_world_allocated(&s, c->name, c->id, NULL, 10000));
        }
    }
    /* The store agrees: allocated worlds == acknowledged (+ any claim that was
     * durable but whose answer was cut off by the kill). */
    assert_true(pool_field(&s, "allocated") >= acked);
    assert_true(bb_log_contains(&s, "re-adopted world", 0));
    bb_cleanup(&s);
}

/* ---- a world started but never recorded ---------------------------------- */

/* How many processes carry BINDERY_WORLD_UID=uid in their environment. */
static int processes_of_world(const char *uid)
{
    char want[160];
    int wlen = snprintf(want, sizeof(want), "BINDERY_WORLD_UID=%s", uid);
    int count = 0;
    DIR *d = opendir("/proc");
    assert_non_null(d);
    static char env[1 << 16];
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        char path[300];
        snprintf(path, sizeof(path), "/proc/%s/environ", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, env, sizeof(env));
        close(fd);
        for (ssize_t off = 0; off < n;) {
            size_t len = strnlen(env + off, (size_t)(n - off));
            if (len == (size_t)wlen && memcmp(env + off, want, len) == 0)
                count++;
            off += (ssize_t)len + 1;
        }
    }
    closedir(d);
    return count;
}

/* A world whose process bindery started and never recorded. */
typedef struct unrecorded {
    char name[128];
    char uid[128];
    int64_t pid;
} unrecorded;

/* Bindery can stop after it started a world's process and before the
 * world's status recorded it. This kills bindery once its one world is
 * warm and leaves that state by hand: a running world whose status is back
 * to Pending with no process named; with deleting, the world is also being
 * deleted (its finalizer holds it). */
/* Starts bindery, waits for its one world to be warm, kills bindery with
 * SIGKILL and opens its store (*store, which the caller closes): the
 * world's name, uid and recorded pid into u. */
static void kill9_with_one_world(bb_server *s, bdy_store **store, unrecorded *u)
{
    assert_true(bb_start(s, NULL));
    assert_true(wait_warm(s, 1, 60000));
    bb_signal(s, SIGKILL);
    assert_true(bb_wait_exit(s, 5000));
    *store = open_stopped_store(s);
    bdy_list_opts lo = {.ns = "default"};
    bdy_list_result res;
    assert_int_equal(bdy_store_list(*store, &BDY_GVR_WORLDS, &lo, &res, NULL), 0);
    assert_int_equal(json_object_array_length(res.items), 1);
    json_object *w = json_object_array_get_idx(res.items, 0);
    json_object *meta = json_object_object_get(w, "metadata");
    snprintf(u->name, sizeof(u->name), "%s",
             json_object_get_string(json_object_object_get(meta, "name")));
    snprintf(u->uid, sizeof(u->uid), "%s",
             json_object_get_string(json_object_object_get(meta, "uid")));
    u->pid =
        json_object_get_int64(json_object_object_get(json_object_object_get(w, "status"), "pid"));
    bdy_list_result_free(&res);
}

static unrecorded make_unrecorded(bb_server *s, bool deleting)
{
    unrecorded u;
    bdy_store *store = NULL;
    kill9_with_one_world(s, &store, &u);
    assert_true(u.pid > 0);
    assert_int_equal(kill((pid_t)u.pid, 0), 0);
    assert_int_equal(processes_of_world(u.uid), 1);
    patch_stored_world(
        store, u.name,
        "{\"status\":{\"phase\":\"Pending\",\"reason\":null,\"message\":null,"
        "\"conditions\":null,\"timings\":null,\"address\":null,\"nodeName\":null,"
        "\"pid\":null,\"processStartTicks\":null,\"processBootId\":null,\"processStartTime\":null,"
        "\"ports\":null}}",
        true);
    if (deleting) {
        bool deleted = true;
        assert_int_equal(
            bdy_store_delete(store, &BDY_GVR_WORLDS, "default", u.name, NULL, NULL, &deleted, NULL),
            0);
        assert_false(deleted); /* the finalizer holds it */
    }
    bdy_store_close(store);
    return u;
}

/* Deleting the WorldInstance CRD takes every world with it, finalizers or
 * not (the store's cascade): their processes must stop too, not run on
 * with nobody left to stop them. */
static void test_crd_delete_stops_world_processes(void **state)
{
    (void)state;
    bb_server s;
    start_warm(&s, 2, 4, 600);
    long status = 0;
    json_object *list =
        get_json(&s, "/apis/bindery.dev/v1alpha1/namespaces/default/worldinstances", &status);
    assert_int_equal(status, 200);
    json_object *items = json_object_object_get(list, "items");
    assert_true(json_object_array_length(items) >= 2);
    char uid[2][64];
    for (int i = 0; i < 2; i++) {
        json_object *meta = json_object_object_get(json_object_array_get_idx(items, i), "metadata");
        snprintf(uid[i], sizeof(uid[i]), "%s",
                 json_object_get_string(json_object_object_get(meta, "uid")));
        assert_int_equal(processes_of_world(uid[i]), 1);
    }
    json_object_put(list);
    bb_response r = bb_request(&s, "DELETE",
                               "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                               "worldinstances.bindery.dev",
                               NULL, NULL);
    assert_int_equal(r.status, 200);
    bb_response_free(&r);
    int left = -1;
    for (int waited = 0; waited <= 20000; waited += 200) {
        left = processes_of_world(uid[0]) + processes_of_world(uid[1]);
        if (left == 0)
            break;
        sleep_ms(200);
    }
    if (left != 0)
        bb_print_log_tail(&s, "world processes outlived their CRD");
    assert_int_equal(left, 0);
    bb_cleanup(&s);
}

/* A bindery restarted while a world's grace ran gives it the rest of its
 * grace, not a whole new one after the downtime: here the grace (8 s) is
 * over by the restart, so the world that ignores SIGTERM is killed at once. */
/* A copy of a data folder (a backup restored on the same machine) has the
 * same instance id, and the folder lock cannot see it: started beside the
 * original, its runtime took the original's worlds for its own, stopping
 * those its store did not know. It is refused instead, and the original's
 * worlds run on; with an id of its own it runs, on worlds of its own. */
static void test_copy_of_a_running_folder_is_refused(void **state)
{
    (void)state;
    bb_server a;
    start_warm(&a, 2, 4, 3600);
    bb_server b;
    setup_server(&b, 2, 4, NULL, 3600);
    /* The operator's copy: a backup of the running bindery, restored as
     * the data folder of another. */
    char *out = NULL;
    const char *backup[] = {"backup", "--config", a.config, "--data", a.data, "--to", b.data, NULL};
    int code = bb_run(&a, backup, NULL, &out);
    if (code != 0)
        fail_msg("backup: %d %s", code, out ? out : "");
    free(out);
    assert_false(bb_start(&b, NULL));
    assert_true(bb_wait_exit(&b, 10000));
    assert_int_equal(b.exit_status, 1);
    if (!bb_log_contains(&b, "another bindery on this machine runs with instance id", 1000))
        fail_msg("no refusal logged");
    /* Refused, it wrote no kubeconfig: the file is shared by whatever runs
     * with its config, and the refused copy's pointed the running bindery's
     * kubectl at the copy's port. */
    char kubeconfig[300];
    snprintf(kubeconfig, sizeof(kubeconfig), "%s/kubeconfig", b.dir);
    assert_int_equal(access(kubeconfig, F_OK), -1);
    /* The original's worlds were not touched: still warm, none replaced. */
    assert_int_equal(pool_field(&a, "warm"), 2);
    assert_int_equal(bb_log_count(&a, "exited"), 0);

    /* Tried beside it with an id of its own, as the README says: the
     * copy's records name the original's processes, which it leaves to
     * the original (adopted, they were handed out by both, and stopped by
     * either's release). Its worlds are its own. */
    char path[300];
    snprintf(path, sizeof(path), "%s/instance-id", b.data);
    assert_int_equal(unlink(path), 0);
    assert_true(bb_start(&b, NULL));
    for (int waited = 0; bb_log_count(&b, "started by another bindery") < 2 && waited < 20000;
         waited += 100)
        sleep_ms(100);
    assert_true(bb_log_count(&b, "started by another bindery") >= 2);
    /* The worlds' status says why they are Lost to it: not "gone". */
    bool told = false;
    for (int waited = 0; !told && waited < 20000; waited += 200) {
        bb_response ev = bb_request(&b, "GET", "/api/v1/namespaces/default/events", NULL, NULL);
        told = ev.body != NULL &&
               strstr(ev.body, "could not adopt the world's process when it "
                               "started: world default/") != NULL &&
               strstr(ev.body, "was started by another bindery") != NULL;
        bb_response_free(&ev);
        if (!told)
            sleep_ms(200);
    }
    assert_true(told);
    assert_true(wait_warm(&b, 1, 30000));
    claim c = post_claim(&b, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(c.status, 201);
    long status = 0;
    json_object *list = get_json(&a, "/v1/worlds", &status);
    assert_int_equal(status, 200);
    json_object *items = json_object_object_get(list, "items");
    assert_int_equal(json_object_array_length(items), 2);
    for (size_t i = 0; i < json_object_array_length(items); i++) {
        json_object *w = json_object_array_get_idx(items, i);
        assert_string_not_equal(json_object_get_string(json_object_object_get(w, "name")), c.name);
    }
    json_object_put(list);
    snprintf(path, sizeof(path), "/v1/allocations/%s", c.id);
    bb_response r = bb_request(&b, "DELETE", path, NULL, NULL);
    assert_int_equal(r.status, 204);
    bb_response_free(&r);
    bb_cleanup(&b);
    assert_int_equal(pool_field(&a, "warm"), 2);
    assert_int_equal(bb_log_count(&a, "exited"), 0);
    bb_cleanup(&a);
}

/* claims.db gone from beside a store with worlds (deleted, left out of a
 * restore) is refused: the claims not yet in their worlds' status would be
 * lost, and their worlds handed out again. An empty file, the operator's
 * say-so, starts a new ledger. */
static void test_missing_ledger_is_refused(void **state)
{
    (void)state;
    bb_server s;
    start_warm(&s, 2, 4, 3600);
    claim c = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(c.status, 201);
    bb_signal(&s, SIGTERM);
    assert_true(bb_wait_exit(&s, 15000));
    static const char *const files[] = {"claims.db", "claims.db-wal", "claims.db-shm"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[300];
        snprintf(path, sizeof(path), "%s/%s", s.data, files[i]);
        unlink(path);
    }
    assert_false(bb_start(&s, NULL));
    assert_true(bb_wait_exit(&s, 10000));
    assert_int_equal(s.exit_status, 1);
    if (!bb_log_contains(&s, "claims.db is missing, but the store holds worlds", 1000))
        fail_msg("no refusal logged");
    char path[300];
    snprintf(path, sizeof(path), "%s/claims.db", s.data);
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0); /* not made by the refused start */

    bb_write(&s, "data/claims.db", "");
    assert_true(bb_start(&s, NULL));
    assert_true(bb_log_contains(&s, "starting a new claim ledger", 1000));
    bb_response r = bb_request(&s, "GET", "/readyz", NULL, NULL);
    assert_int_equal(r.status, 200);
    bb_response_free(&r);

    /* Its journal, where claims are durable first, is asked for too. */
    bb_signal(&s, SIGTERM);
    assert_true(bb_wait_exit(&s, 15000));
    snprintf(path, sizeof(path), "%s/claims.journal", s.data);
    assert_int_equal(unlink(path), 0);
    assert_false(bb_start(&s, NULL));
    assert_true(bb_wait_exit(&s, 10000));
    assert_int_equal(s.exit_status, 1);
    if (!bb_log_contains(&s, "claims.journal is missing beside", 1000))
        fail_msg("no refusal of the missing journal logged");
    bb_write(&s, "data/claims.journal", "");
    assert_true(bb_start(&s, NULL));
    assert_true(bb_log_contains(&s, "a new claim journal begins", 1000));
    r = bb_request(&s, "GET", "/readyz", NULL, NULL);
    assert_int_equal(r.status, 200);
    bb_response_free(&r);
    bb_cleanup(&s);
}

static void test_grace_is_not_restarted_by_a_restart(void **state)
{
    (void)state;
    bb_server s;
    start_failing_world(&s);
    json_object *failed = failed_world(&s);
    char uid[64];
    snprintf(uid, sizeof(uid), "%s",
             json_object_get_string(
                 json_object_object_get(json_object_object_get(failed, "metadata"), "uid")));
    json_object_put(failed);
    assert_true(uid[0] != '\0');
    bb_signal(&s, SIGKILL);
    assert_true(bb_wait_exit(&s, 5000));
    assert_true(processes_of_world(uid) >= 1); /* its grace runs on, unwatched */
    sleep_ms(8500);
    assert_true(bb_start(&s, NULL));
    int left = 1;
    for (int waited = 0; waited <= 4000 && left > 0; waited += 200) {
        left = processes_of_world(uid);
        if (left > 0)
            sleep_ms(200);
    }
    if (left > 0)
        bb_print_log_tail(&s, "a whole new grace after the restart");
    assert_int_equal(left, 0);
    bb_cleanup(&s);
}

/* The restarted bindery takes the process back, not start a second. */
static void test_unrecorded_world_is_taken_back(void **state)
{
    (void)state;
    bb_server s;
    setup_server(&s, 1, 10, NULL, 0);
    unrecorded u = make_unrecorded(&s, false);
    assert_true(bb_start(&s, NULL));
    assert_true(bb_log_contains(&s, "took back pid", 20000));
    assert_true(wait_warm(&s, 1, 30000));
    /* The same process, the only one of that world. */
    assert_int_equal(kill((pid_t)u.pid, 0), 0);
    assert_int_equal(processes_of_world(u.uid), 1);
    claim c = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(c.status, 201);
    assert_string_equal(c.name, u.name);
    char answer[128];
    char expect[160];
    snprintf(expect, sizeof(expect), "pong %s\n", u.name);
    assert_true(ping_world(c.port, answer, sizeof(answer)));
    assert_string_equal(answer, expect);
    bb_cleanup(&s);
}

/* Deleted before anything recorded its process: the process is stopped
 * before the finalizer lets the world go, and the pool starts another. */
static void test_unrecorded_world_being_deleted_is_stopped(void **state)
{
    (void)state;
    bb_server s;
    setup_server(&s, 1, 10, NULL, 0);
    unrecorded u = make_unrecorded(&s, true);
    assert_true(bb_start(&s, NULL));
    assert_true(bb_log_contains(&s, "took back pid", 20000));
    bool gone = false;
    for (int waited = 0; waited <= 20000 && !gone; waited += 100) {
        gone = processes_of_world(u.uid) == 0;
        if (!gone)
            sleep_ms(100);
    }
    assert_true(gone);
    assert_true(wait_warm(&s, 1, 30000));
    claim c = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(c.status, 201);
    assert_string_not_equal(c.name, u.name);
    bb_cleanup(&s);
}

/* A process that looks like a world of another bindery on this machine:
 * it leads its group and carries a world identity, with that bindery's
 * instance. A child of this test, which kills and reaps it. */
static pid_t spawn_foreign_world(const char *uid)
{
    char v_uid[160];
    snprintf(v_uid, sizeof(v_uid), "BINDERY_WORLD_UID=%s", uid);
    char *const envp[] = {v_uid, "BINDERY_WORLD_NAMESPACE=default",
                          "BINDERY_WORLD_NAME=foreign-world",
                          "BINDERY_INSTANCE=0123456789abcdef0123456789abcdef", NULL};
    char *argv[] = {"/bin/sleep", "120", NULL};
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
    pid_t pid = 0;
    assert_int_equal(posix_spawn(&pid, argv[0], NULL, &attr, argv, envp), 0);
    posix_spawnattr_destroy(&attr);
    /* Under valgrind posix_spawn may return before the exec. */
    for (int waited = 0; waited <= 5000 && processes_of_world(uid) == 0; waited += 50)
        sleep_ms(50);
    assert_int_equal(processes_of_world(uid), 1);
    return pid;
}

/* A world deleted outright (finalizer and all, as a CRD removal or a
 * forced delete does) while no bindery ran leaves a process that no world
 * will ever stop. It carries this bindery's instance, so the restarted
 * bindery stops it; a process of another bindery's instance, whose world
 * it does not know either, is left alone. */
static void test_gone_world_process_is_stopped(void **state)
{
    (void)state;
    bb_server s;
    setup_server(&s, 1, 10, NULL, 0);
    unrecorded u;
    bdy_store *store = NULL;
    kill9_with_one_world(&s, &store, &u);
    const char *name = u.name;
    const char *uid = u.uid;
    assert_int_equal(processes_of_world(uid), 1);
    patch_stored_world(store, name, "{\"metadata\":{\"finalizers\":null}}", false);
    bool deleted = false;
    assert_int_equal(
        bdy_store_delete(store, &BDY_GVR_WORLDS, "default", name, NULL, NULL, &deleted, NULL), 0);
    assert_true(deleted);
    bdy_store_close(store);

    char foreign_uid[64];
    snprintf(foreign_uid, sizeof(foreign_uid), "uid-foreign-%d", (int)getpid());
    pid_t foreign = spawn_foreign_world(foreign_uid);

    assert_true(bb_start(&s, NULL));
    assert_true(bb_log_contains(&s, "which no longer exists", 20000));
    bool gone = false;
    for (int waited = 0; waited <= 20000 && !gone; waited += 100) {
        gone = processes_of_world(uid) == 0;
        if (!gone)
            sleep_ms(100);
    }
    if (!gone)
        bb_print_log_tail(&s, "the process of a gone world runs on");
    assert_true(gone);
    /* Another sweep has run since (every 5 s): the foreign one still runs. */
    sleep_ms(5500);
    assert_int_equal(processes_of_world(foreign_uid), 1);
    assert_int_equal(bb_log_count(&s, "foreign-world"), 0);
    assert_true(wait_warm(&s, 1, 30000));
    kill(foreign, SIGKILL);
    waitpid(foreign, NULL, 0);
    bb_cleanup(&s);
}

/* A pool at maxWorlds with every world warm has no room for a replacement
 * beside its outdated worlds: it replaces them one at a time. */
static void test_full_pool_rolls_out(void **state)
{
    (void)state;
    bb_server s;
    setup_server_warm(&s, 2, 2, 2, NULL, 0);
    assert_true(bb_start(&s, NULL));
    assert_true(wait_warm(&s, 2, 30000));
    write_arena_manifest(&s, ARENA_PROBE, 20, ", \"--name\", \"v2-{name}\"");
    bb_signal(&s, SIGHUP);
    assert_true(bb_log_contains(&s, "reloaded", 5000));
    const char *none[] = {NULL};
    assert_true(wait_rolled_out(&s, none, 2, "v2-", NULL, 60000));
    assert_int_equal(settled_pool_field(&s, "outdated", 0, 5000), 0);
    bb_cleanup(&s);
}

/* Whether process pid has ended (gone, or a zombie not reaped yet). */
static bool process_ended(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return true;
    char line[512] = "";
    bool zombie = fgets(line, sizeof(line), fp) != NULL && strstr(line, ") Z ") != NULL;
    fclose(fp);
    return zombie;
}

/* A world adopted after a restart (not bindery's child) that started a
 * helper with a clean environment, which ignores SIGTERM: when the world
 * stops, the helper goes with it rather than outliving it, holding what it
 * holds, for good. */
static void test_adopted_world_takes_its_helpers(void **state)
{
    (void)state;
    bb_server s;
    char cfg[1024];
    pool_config(cfg, sizeof(cfg), 1, 1, 2, 0);
    bb_init(&s, cfg);
    char manifest[2048];
    snprintf(manifest, sizeof(manifest),
             "apiVersion: bindery.dev/v1alpha1\nkind: ModuleManifest\n"
             "metadata: {name: arena, namespace: default}\n"
             "spec:\n"
             "  ports: [{name: game, containerPort: 7777, protocol: TCP}]\n"
             "  readinessProbe: " ARENA_PROBE "\n"
             "  terminationGracePeriodSeconds: 30\n"
             "  local:\n"
             "    command: /bin/sh\n"
             "    args:\n"
             "      - -c\n"
             "      - >-\n"
             "        env -i /bin/sh -c 'trap \"\" TERM; echo $$ > helper-{name}.pid; exec sleep "
             "120' &\n"
             "        exec %s --port {port:game} --name {name}\n",
             world_bin());
    bb_write(&s, "manifests/arena.yaml", manifest);
    assert_true(bb_start(&s, NULL));
    assert_true(wait_warm(&s, 1, 30000));
    long status = 0;
    json_object *list = get_json(&s, "/v1/worlds?pool=arena", &status);
    json_object *w = json_object_array_get_idx(json_object_object_get(list, "items"), 0);
    char name[128];
    snprintf(name, sizeof(name), "%s", json_object_get_string(json_object_object_get(w, "name")));
    json_object_put(list);
    char pid_file[256];
    snprintf(pid_file, sizeof(pid_file), "%s/helper-%s.pid", s.dir, name);
    pid_t helper = 0;
    for (int waited = 0; waited <= 5000 && helper <= 0; waited += 100) {
        FILE *fp = fopen(pid_file, "r");
        if (fp != NULL) {
            int v = 0;
            if (fscanf(fp, "%d", &v) == 1)
                helper = (pid_t)v;
            fclose(fp);
        }
        if (helper <= 0)
            sleep_ms(100);
    }
    assert_true(helper > 0);
    assert_false(process_ended(helper));

    /* Restarted, bindery adopts the world; a claim and its release stop it. */
    bb_signal(&s, SIGKILL);
    assert_true(bb_wait_exit(&s, 5000));
    assert_true(bb_start(&s, NULL));
    assert_true(wait_warm(&s, 1, 30000));
    claim c = post_claim(&s, "{\"pool\":\"arena\"}", NULL);
    assert_int_equal(c.status, 201);
    assert_string_equal(c.name, name);
    char path[128];
    snprintf(path, sizeof(path), "/v1/allocations/%s", c.id);
    bb_response r = bb_request(&s, "DELETE", path, NULL, NULL);
    assert_int_equal(r.status, 204);
    bb_response_free(&r);
    bool ended = false;
    for (int waited = 0; waited <= 15000 && !ended; waited += 100) {
        ended = process_ended(helper);
        if (!ended)
            sleep_ms(100);
    }
    if (!ended) {
        bb_print_log_tail(&s, "the adopted world's helper outlived it");
        kill(helper, SIGKILL);
    }
    assert_true(ended);
    assert_true(bb_log_contains(&s, "processes in its group: SIGKILL", 0));
    bb_cleanup(&s);
}

/* A world without a template label (made by a bindery from before worlds
 * carried one) is taken for one of the pool's template in force: an
 * upgrade replaces no world. */
static void test_unlabelled_world_is_kept(void **state)
{
    (void)state;
    bb_server s;
    setup_server(&s, 1, 10, NULL, 0);
    unrecorded u;
    bdy_store *store = NULL;
    kill9_with_one_world(&s, &store, &u);
    patch_stored_world(store, u.name, "{\"metadata\":{\"labels\":{\"bindery.dev/template\":null}}}",
                       false);
    bdy_store_close(store);
    assert_true(bb_start(&s, NULL));
    bool labelled = false;
    for (int waited = 0; waited <= 20000 && !labelled; waited += 200) {
        long status = 0;
        json_object *list = get_json(&s, "/v1/worlds?pool=arena", &status);
        json_object *items = json_object_object_get(list, "items");
        labelled = status == 200 && json_object_array_length(items) == 1;
        json_object *w = labelled ? json_object_array_get_idx(items, 0) : NULL;
        json_object *labels = json_object_object_get(w, "labels");
        labelled = labelled &&
                   strcmp(json_object_get_string(json_object_object_get(w, "name")), u.name) == 0 &&
                   json_object_object_get(labels, "bindery.dev/template") != NULL;
        json_object_put(list);
        if (!labelled)
            sleep_ms(200);
    }
    if (!labelled)
        bb_print_log_tail(&s, "the world was not labelled with its pool's template");
    assert_true(labelled);
    assert_true(wait_warm(&s, 1, 20000));
    sleep_ms(1500); /* a pool pass or more */
    assert_int_equal(bb_log_count(&s, "older template"), 0);
    assert_int_equal(processes_of_world(u.uid), 1);
    bb_cleanup(&s);
}

/* A cold claim's release cut short by kill -9 after its record was written
 * and before its world was deleted: the next start finishes it, so the
 * world the allocation says is Released does not run on, held, for good. */
static void test_cut_short_cold_release_is_finished(void **state)
{
    (void)state;
    bb_server s;
    setup_server(&s, 0, 2, NULL, 0);
    assert_true(bb_start(&s, NULL));
    claim c = post_claim(&s, "{\"pool\":\"arena\",\"waitSeconds\":30}", NULL);
    assert_int_equal(c.status, 201);
    assert_string_equal(c.source, "cold");
    char answer[128];
    assert_true(ping_world(c.port, answer, sizeof(answer)));
    bb_signal(&s, SIGKILL);
    assert_true(bb_wait_exit(&s, 5000));

    /* What the DELETE had done when it was cut short: the record only. */
    bdy_store *store = open_stopped_store(&s);
    json_object *world = NULL;
    assert_int_equal(bdy_store_get(store, &BDY_GVR_WORLDS, "default", c.name, &world, NULL), 0);
    json_object *alloc =
        json_object_object_get(json_object_object_get(world, "status"), "allocation");
    assert_string_equal(json_object_get_string(json_object_object_get(alloc, "id")), c.id);
    json_object *recorded = bdy_allocation_answer(world);
    assert_int_equal(
        bdy_allocation_record(store, "default", c.name, "arena", alloc, recorded, "Released", NULL),
        0);
    json_object_put(recorded);
    json_object_put(world);
    bdy_store_close(store);

    assert_true(bb_start(&s, NULL));
    char path[128];
    snprintf(path, sizeof(path), "/v1/allocations/%s", c.id);
    long status = 0;
    json_object *g = get_json(&s, path, &status);
    assert_int_equal(status, 200);
    assert_string_equal(json_object_get_string(json_object_object_get(g, "state")), "Released");
    json_object_put(g);
    bool gone = false;
    for (int waited = 0; waited <= 20000 && !gone; waited += 100) {
        gone = !ping_world(c.port, answer, sizeof(answer));
        if (!gone)
            sleep_ms(100);
    }
    if (!gone)
        bb_print_log_tail(&s, "the world of a released allocation runs on");
    assert_true(gone);
    assert_true(bb_log_contains(&s, "cut short", 0));
    assert_int_equal(settled_pool_field(&s, "allocated", 0, 10000), 0);
    bb_cleanup(&s);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    /* BB_TEST_FILTER=test_name (wildcards allowed) runs only those tests. */
    if (getenv("BB_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("BB_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_claim_ping_release_refill, bb_teardown),
        cmocka_unit_test_teardown(test_max_worlds_holds_through_release, bb_teardown),
        cmocka_unit_test_teardown(test_idempotent_replay, bb_teardown),
        cmocka_unit_test_teardown(test_cold_claim_and_exhaustion, bb_teardown),
        cmocka_unit_test_teardown(test_cold_world_is_seen_ready_before_its_period, bb_teardown),
        cmocka_unit_test_teardown(test_retries_of_pending_claim_hold_no_thread, bb_teardown),
        cmocka_unit_test_teardown(test_cold_claims_and_their_retries_all_answered, bb_teardown),
        cmocka_unit_test_teardown(test_retry_of_failed_cold_claim_gets_its_answer, bb_teardown),
        cmocka_unit_test_teardown(test_cold_claimed_world_deleted_is_released, bb_teardown),
        cmocka_unit_test_teardown(test_large_claim_metadata_is_granted, bb_teardown),
        cmocka_unit_test_teardown(test_connections_leave_descriptors_for_worlds, bb_teardown),
        cmocka_unit_test_teardown(test_reload_warns_when_worlds_outgrow_descriptors, bb_teardown),
        cmocka_unit_test_teardown(test_old_release_records_are_swept, bb_teardown),
        cmocka_unit_test_teardown(test_release_cut_short_is_finished, bb_teardown),
        cmocka_unit_test_teardown(test_old_cut_short_release_is_finished, bb_teardown),
        cmocka_unit_test_teardown(test_world_of_another_allocation_is_kept, bb_teardown),
        cmocka_unit_test_teardown(test_downtime_is_no_lead_time, bb_teardown),
        cmocka_unit_test_teardown(test_refused_creates_back_off, bb_teardown),
        cmocka_unit_test_teardown(test_cold_claim_timeout, bb_teardown),
        cmocka_unit_test_teardown(test_cold_claim_outlives_its_world_failing, bb_teardown),
        cmocka_unit_test_teardown(test_cold_claim_restart_keeps_its_selectors, bb_teardown),
        cmocka_unit_test_teardown(test_cold_claim_client_gone, bb_teardown),
        cmocka_unit_test_teardown(test_keyed_cold_claim_client_gone, bb_teardown),
        cmocka_unit_test_teardown(test_orphaned_cold_world_joins_pool, bb_teardown),
        cmocka_unit_test_teardown(test_bad_requests_change_nothing, bb_teardown),
        cmocka_unit_test_teardown(test_removed_pool_leaves_metrics, bb_teardown),
        cmocka_unit_test_teardown(test_reload_keeps_allocated_worlds, bb_teardown),
        cmocka_unit_test_teardown(test_outdated_worlds_are_replaced, bb_teardown),
        cmocka_unit_test_teardown(test_removed_pool_lets_idle_worlds_go, bb_teardown),
        cmocka_unit_test_teardown(test_port_shortage_waits, bb_teardown),
        cmocka_unit_test_teardown(test_scale_down_spares_claimed_worlds, bb_teardown),
        cmocka_unit_test_teardown(test_scale_down_deletes_only_the_surplus, bb_teardown),
        cmocka_unit_test_teardown(test_drain_answers_claims_being_committed, bb_teardown),
        cmocka_unit_test_teardown(test_backup_while_claiming, bb_teardown),
        cmocka_unit_test_teardown(test_warm_crash_is_replaced, bb_teardown),
        cmocka_unit_test_teardown(test_cold_claim_of_a_failing_pool, bb_teardown),
        cmocka_unit_test_teardown(test_probe_failures_counted_per_period, bb_teardown),
        cmocka_unit_test_teardown(test_hung_worlds_hold_no_worker, bb_teardown),
        cmocka_unit_test_teardown(test_worlds_lost_in_downtime_are_not_claimed, bb_teardown),
        cmocka_unit_test_teardown(test_world_spec_is_immutable, bb_teardown),
        cmocka_unit_test_teardown(test_broken_probe_edit_keeps_running_worlds, bb_teardown),
        cmocka_unit_test_teardown(test_failed_world_gets_its_grace, bb_teardown),
        cmocka_unit_test_teardown(test_copy_of_a_running_folder_is_refused, bb_teardown),
        cmocka_unit_test_teardown(test_missing_ledger_is_refused, bb_teardown),
        cmocka_unit_test_teardown(test_grace_is_not_restarted_by_a_restart, bb_teardown),
        cmocka_unit_test_teardown(test_start_deadline_not_held_by_probe_period, bb_teardown),
        cmocka_unit_test_teardown(test_manifest_past_runtime_limits_is_refused, bb_teardown),
        cmocka_unit_test_teardown(test_probe_port_number_and_initial_delay, bb_teardown),
        cmocka_unit_test_teardown(test_kill9_keeps_acknowledged_claims, bb_teardown),
        cmocka_unit_test_teardown(test_world_list_shows_claims_not_yet_in_status, bb_teardown),
        cmocka_unit_test_teardown(test_crd_delete_stops_world_processes, bb_teardown),
        cmocka_unit_test_teardown(test_unrecorded_world_is_taken_back, bb_teardown),
        cmocka_unit_test_teardown(test_unrecorded_world_being_deleted_is_stopped, bb_teardown),
        cmocka_unit_test_teardown(test_gone_world_process_is_stopped, bb_teardown),
        cmocka_unit_test_teardown(test_cut_short_cold_release_is_finished, bb_teardown),
        cmocka_unit_test_teardown(test_unlabelled_world_is_kept, bb_teardown),
        cmocka_unit_test_teardown(test_adopted_world_takes_its_helpers, bb_teardown),
        cmocka_unit_test_teardown(test_full_pool_rolls_out, bb_teardown),
        cmocka_unit_test_teardown(test_port_rename_rolls_out, bb_teardown),
        cmocka_unit_test_teardown(test_booklet_world_runs_its_modules, bb_teardown),
        cmocka_unit_test_teardown(test_booklet_module_exit_ends_world, bb_teardown),
        cmocka_unit_test_teardown(test_booklet_module_that_cannot_run, bb_teardown),
        cmocka_unit_test_teardown(test_booklet_world_is_over_when_a_module_exits, bb_teardown),
        cmocka_unit_test_teardown(test_world_waits_for_its_capabilities, bb_teardown),
        cmocka_unit_test_teardown(test_booklet_world_gets_capabilities, bb_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
