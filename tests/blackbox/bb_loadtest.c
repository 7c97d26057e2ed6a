/* Black-box tests of bindery-load-test: bad flags, an unreachable server,
 * a real bindery (bench runtime) whose /metrics must count exactly the
 * claims the tool reports, a token the server refuses, and servers that
 * answer 503 to everything or never answer — the tool must report and exit,
 * never hang (every run has a deadline that fails the test). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"
#include "loadtest.h"
#include "loadtool.h"

#include <arpa/inet.h>
#include <json-c/json.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char workdir[64];

static int group_setup(void **state)
{
    (void)state;
    snprintf(workdir, sizeof(workdir), "/tmp/bdy-lt-XXXXXX");
    return mkdtemp(workdir) != NULL ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", workdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A loopback port nothing listens on (bound, then closed). */
static unsigned closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_argument_errors(void **state)
{
    (void)state;
    static const struct {
        const char *args[8];
        const char *why;
    } cases[] = {
        {{NULL}, "choose --worlds N"},
        {{"--mode", "allocate", NULL}, "--pool: is required"},
        {{"--worlds", "-3", NULL}, "--worlds: must be an integer"},
        {{"--mode", "allocate", "--pool", "arena", "--rate", "fast", NULL}, "--rate:"},
        {{"--mode", "allocate", "--pool", "arena", "--server", "localhost:7780", NULL},
         "--server: must be an http"},
        {{"--mode", "allocate", "--pool", "arena", "--bogus", NULL}, "--bogus: unknown flag"},
        {{"--mode", "allocate", "--pool", "arena", "--csv", "/nonexistent/dir/x.csv", NULL},
         "--csv /nonexistent/dir/x.csv: cannot create"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        lt_result r = lt_run(workdir, cases[i].args, 20);
        if (r.code != LT_EXIT_USAGE || strstr(r.err, cases[i].why) == NULL)
            fail_msg("case %zu: exit %d, stderr \"%s\"", i, r.code, r.err);
        assert_string_equal(r.out, ""); /* no report for a run that never started */
        lt_result_free(&r);
    }
    lt_result r = lt_run(workdir, (const char *const[]){"--help", NULL}, 20);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "--worlds N --namespace NS"));
    lt_result_free(&r);
}

static void test_unreachable_server(void **state)
{
    (void)state;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", closed_port());
    lt_result r = lt_run(workdir,
                         (const char *const[]){"--mode", "allocate", "--pool", "arena", "--server",
                                               url, "--count", "5", NULL},
                         30);
    assert_int_equal(r.code, LT_EXIT_SETUP);
    assert_non_null(strstr(r.err, "cannot reach"));
    lt_result_free(&r);
    r = lt_run(
        workdir,
        (const char *const[]){"--worlds", "3", "--namespace", "default", "--server", url, NULL},
        30);
    assert_int_equal(r.code, LT_EXIT_SETUP);
    assert_non_null(strstr(r.err, "cannot reach"));
    lt_result_free(&r);
}

/* A bindery with the bench runtime and one pool of warm worlds. */
static void start_bench_server(bb_server *s, const char *extra_config, unsigned warm)
{
    char cfg[1024];
    snprintf(cfg, sizeof(cfg),
             "manifests: [manifests]\n"
             "runtime: {kind: bench, benchReadyDelayMs: 0}\n"
             "%s"
             "pools:\n"
             "  - name: arena\n    manifest: arena\n    minWarm: %u\n    maxWarm: %u\n"
             "    maxWorlds: 5000\n    creationRate: 2000\n",
             extra_config, warm, warm);
    bb_init(s, cfg);
    bb_write(s, "manifests/arena.yaml",
             "apiVersion: bindery.dev/v1alpha1\nkind: ModuleManifest\n"
             "metadata: {name: arena, namespace: default}\n"
             "spec:\n  ports: [{name: game, containerPort: 7777, protocol: UDP}]\n"
             "  local: {command: /bin/true}\n");
    assert_true(bb_start(s, NULL));
}

static void wait_warm(bb_server *s, unsigned want, const char *const *headers)
{
    for (int i = 0; i < 400; i++) { /* 20 s */
        bb_response r = bb_request(s, "GET", "/v1/pools/default/arena", NULL, headers);
        json_object *p = json_tokener_parse(r.body ? r.body : "");
        int64_t warm = json_object_get_int64(
            json_object_object_get(json_object_object_get(p, "status"), "warm"));
        json_object_put(p);
        bb_response_free(&r);
        if (warm >= (int64_t)want)
            return;
        usleep(50000);
    }
    fail_msg("pool never reached %u warm worlds", want);
}

static int64_t jint(json_object *o, const char *k)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, k, &v))
        fail_msg("report has no %s", k);
    return json_object_get_int64(v);
}

static size_t count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* Runs one allocate load and checks the report against the server's
 * bindery_allocations_total before and after. */
static void check_counts(bb_server *s, const char *const *load, int64_t want_count)
{
    lt_metrics before;
    lt_metrics after;
    char err[256];
    bb_response m = bb_request(s, "GET", "/metrics", NULL, NULL);
    assert_int_equal(m.status, 200);
    assert_int_equal(lt_metrics_parse(m.body, strlen(m.body), &before, err, sizeof(err)), 0);
    bb_response_free(&m);

    char url[64];
    char csv[160];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", s->port);
    snprintf(csv, sizeof(csv), "%s/claims.csv", workdir);
    const char *args[40];
    int n = 0;
    const char *common[] = {"--mode", "allocate",   "--pool", "arena", "--server",
                            url,      "--json",     "--csv",  csv,     "--max-error-ratio",
                            "1",      "--progress", "off",    NULL};
    for (int i = 0; common[i] != NULL; i++)
        args[n++] = common[i];
    for (int i = 0; load[i] != NULL; i++)
        args[n++] = load[i];
    args[n] = NULL;
    lt_result r = lt_run(workdir, args, 120);
    if (r.code != 0)
        fail_msg("exit %d: %s", r.code, r.err);
    json_object *rep = json_tokener_parse(r.out);
    if (rep == NULL)
        fail_msg("report is not JSON: %s", r.out);

    m = bb_request(s, "GET", "/metrics", NULL, NULL);
    assert_int_equal(lt_metrics_parse(m.body, strlen(m.body), &after, err, sizeof(err)), 0);
    bb_response_free(&m);
    const char *pool[] = {"pool=arena", NULL};
    const char *ok[] = {"pool=arena", "result=success", NULL};
    double server_total = lt_metrics_sum(&after, "bindery_allocations_total", pool, NULL) -
                          lt_metrics_sum(&before, "bindery_allocations_total", pool, NULL);
    double server_ok = lt_metrics_sum(&after, "bindery_allocations_total", ok, NULL) -
                       lt_metrics_sum(&before, "bindery_allocations_total", ok, NULL);

    int64_t count = jint(rep, "count");
    int64_t okn = jint(rep, "ok");
    int64_t errors = jint(rep, "errors");
    if (want_count > 0)
        assert_int_equal(count, want_count);
    assert_true(count > 0);
    assert_true(okn > 0);
    assert_int_equal(okn + errors, count);
    assert_true(server_ok == (double)okn);
    assert_true(server_total == (double)count);
    assert_int_equal(jint(rep, "warm") + jint(rep, "cold"), okn);
    assert_int_equal(jint(rep, "released"), okn); /* --hold 0 */
    assert_int_equal(jint(rep, "still_held"), 0);
    json_object *sa = json_object_object_get(rep, "server_allocations");
    assert_non_null(sa);
    assert_true(json_object_get_double(json_object_object_get(sa, "success")) == (double)okn);
    json_object *lat = json_object_object_get(rep, "latency");
    assert_int_equal(jint(lat, "count"), okn);
    /* Header + one row per claim + one per release. */
    assert_int_equal(count_lines(csv), (size_t)(1 + count + okn));
    json_object_put(rep);
    lt_metrics_free(&before);
    lt_metrics_free(&after);
    lt_result_free(&r);
}

static void test_counts_match_server_metrics(void **state)
{
    (void)state;
    bb_server s;
    start_bench_server(&s, "", 200);
    wait_warm(&s, 200, NULL);
    /* Open loop, a fixed count. */
    check_counts(&s, (const char *const[]){"--rate", "200", "--count", "300", "--hold", "0", NULL},
                 300);
    wait_warm(&s, 200, NULL);
    /* Closed loop, a fixed duration, with selectors and metadata. */
    check_counts(&s,
                 (const char *const[]){"--concurrency", "4", "--duration", "1", "--hold", "0",
                                       "--selector", "bindery.dev/pool=arena", "--label",
                                       "match=m1", NULL},
                 0);
    bb_cleanup(&s);
}

static void test_refused_token(void **state)
{
    (void)state;
    bb_server s;
    char cfg[1024];
    snprintf(cfg, sizeof(cfg),
             "manifests: [manifests]\nauth:\n  tokenFile: tokens.yaml\n"
             "runtime: {kind: bench, benchReadyDelayMs: 0}\n"
             "pools:\n  - name: arena\n    manifest: arena\n    minWarm: 20\n    maxWarm: 20\n");
    bb_init(&s, cfg);
    bb_write(&s, "manifests/arena.yaml",
             "apiVersion: bindery.dev/v1alpha1\nkind: ModuleManifest\n"
             "metadata: {name: arena, namespace: default}\n"
             "spec:\n  ports: [{name: game, containerPort: 7777, protocol: UDP}]\n"
             "  local: {command: /bin/true}\n");
    char *hash = NULL; /* the daemon's own hash-token, so the file holds hashes only */
    assert_int_equal(bb_run(&s, (const char *const[]){"hash-token", NULL}, "lt-token\n", &hash), 0);
    hash[64] = '\0';
    char tokens[512];
    snprintf(tokens, sizeof(tokens),
             "tokens:\n  - name: lt\n    sha256: %s\n    namespaces: [\"*\"]\n"
             "    verbs: [allocate, release, read]\n",
             hash);
    free(hash);
    bb_write(&s, "tokens.yaml", tokens);
    bb_write(&s, "good-token", "lt-token\n");
    bb_write(&s, "bad-token", "wrong\n");
    assert_true(bb_start(&s, NULL));
    wait_warm(&s, 20, (const char *const[]){"Authorization: Bearer lt-token", NULL});
    char url[64];
    char good[160];
    char bad[160];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", s.port);
    snprintf(good, sizeof(good), "%s/good-token", s.dir);
    snprintf(bad, sizeof(bad), "%s/bad-token", s.dir);
    unsetenv("BINDERY_TOKEN");
    /* No token, then a wrong one: refused before any load, exit 3. */
    const char *none[] = {"--mode", "allocate", "--pool", "arena", "--server",
                          url,      "--count",  "5",      NULL};
    lt_result r = lt_run(workdir, none, 30);
    assert_int_equal(r.code, LT_EXIT_SETUP);
    assert_non_null(strstr(r.err, "refused the token (401 Unauthorized)"));
    lt_result_free(&r);
    const char *wrong[] = {"--mode",  "allocate", "--pool",       "arena", "--server", url,
                           "--count", "5",        "--token-file", bad,     NULL};
    r = lt_run(workdir, wrong, 30);
    assert_int_equal(r.code, LT_EXIT_SETUP);
    assert_non_null(strstr(r.err, "401"));
    lt_result_free(&r);
    /* The right token from a file, and from the environment. */
    const char *right[] = {"--mode",  "allocate", "--pool",       "arena", "--server", url,
                           "--count", "5",        "--token-file", good,    "--hold",   "0",
                           "--json",  NULL};
    r = lt_run(workdir, right, 30);
    if (r.code != 0)
        fail_msg("exit %d: %s", r.code, r.err);
    json_object *rep = json_tokener_parse(r.out);
    assert_int_equal(jint(rep, "ok"), 5);
    json_object_put(rep);
    lt_result_free(&r);
    setenv("BINDERY_TOKEN", "lt-token", 1);
    r = lt_run(workdir, none, 30);
    unsetenv("BINDERY_TOKEN");
    if (r.code != 0)
        fail_msg("exit %d: %s", r.code, r.err);
    lt_result_free(&r);
    bb_cleanup(&s);
}

/* What a canned server answers to every request, at once. */
typedef struct canned_answer {
    unsigned status;
    const char *body;
    const char *retry_after; /* NULL: no Retry-After */
} canned_answer;

static const canned_answer ANSWER_503 = {
    503, "{\"error\":{\"code\":\"Unavailable\",\"message\":\"down for maintenance\"}}", "1"};
/* A warm claim's answer. */
static const canned_answer ANSWER_201 = {
    201,
    "{\"allocationId\":\"alc-0123456789ab\",\"source\":\"warm\",\"world\":"
    "{\"name\":\"w\",\"namespace\":\"default\",\"address\":\"127.0.0.1\",\"ports\":[]}}",
    NULL};

/* MHD handler answering with the canned_answer in cls. */
static enum MHD_Result answer_canned(void *cls, struct MHD_Connection *conn, const char *url,
                                     const char *method, const char *version, const char *data,
                                     size_t *size, void **req_cls)
{
    const canned_answer *a = cls;
    (void)url;
    (void)method;
    (void)version;
    (void)data;
    if (*req_cls == NULL) {
        *req_cls = conn;
        return MHD_YES;
    }
    if (*size > 0) {
        *size = 0;
        return MHD_YES;
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(a->body), (void *)a->body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (a->retry_after != NULL)
        MHD_add_response_header(r, "Retry-After", a->retry_after);
    enum MHD_Result ret = MHD_queue_response(conn, a->status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Starts a server answering a on a free loopback port; url gets its base. */
static struct MHD_Daemon *start_canned(const canned_answer *a, char *url, size_t cap)
{
    unsigned port = closed_port();
    struct MHD_Daemon *d =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port, NULL,
                         NULL, answer_canned, (void *)a, MHD_OPTION_END);
    assert_non_null(d);
    snprintf(url, cap, "http://127.0.0.1:%u", port);
    return d;
}

/* Paced claims to a server that answers at once are timed as answered, not
 * when the tool next wakes: an answer read inside the call that sent the
 * request was reported only after the wait for the next request (at most
 * 50 ms), so many of them read as 50 ms; at 10/s p90 was 51 ms with that
 * bug. A loopback answer at the 90th percentile is far below 25 ms. */
static void test_fast_answers_timed_as_answered(void **state)
{
    (void)state;
    char url[64];
    struct MHD_Daemon *d = start_canned(&ANSWER_201, url, sizeof(url));
    lt_result r =
        lt_run(workdir,
               (const char *const[]){"--mode", "allocate", "--pool", "arena", "--server", url,
                                     "--rate", "10", "--count", "20", "--json", NULL},
               30);
    if (r.code != 0)
        fail_msg("exit %d: %s %s", r.code, r.out, r.err);
    json_object *rep = json_tokener_parse(r.out);
    assert_non_null(rep);
    assert_int_equal(jint(rep, "ok"), 20);
    json_object *lat = json_object_object_get(rep, "latency");
    double p90_ms = json_object_get_double(json_object_object_get(lat, "p90_ms"));
    if (p90_ms >= 25.0)
        fail_msg("claims answered at once took %.1f ms (p90): %s", p90_ms, r.out);
    json_object_put(rep);
    lt_result_free(&r);
    MHD_stop_daemon(d);
}

/* Warm worlds of the bench runtime outlive a restart like process worlds
 * do: the restarted bindery re-adopts every one of them from its status
 * (a start token, no pid) instead of marking them Failed. */
static void test_restart_readopts_bench_worlds(void **state)
{
    (void)state;
    bb_server s;
    start_bench_server(&s, "", 50);
    wait_warm(&s, 50, NULL);
    bb_signal(&s, SIGTERM);
    assert_true(bb_wait_exit(&s, 10000));
    assert_true(bb_start(&s, NULL));
    wait_warm(&s, 50, NULL);
    /* Give the reconcile workers time to look at every world once. */
    assert_true(bb_log_contains(&s, "re-adopted world", 10000));
    usleep(1000 * 1000);
    bb_response r = bb_request(&s, "GET", "/v1/pools/default/arena", NULL, NULL);
    json_object *p = json_tokener_parse(r.body ? r.body : "");
    json_object *st = json_object_object_get(p, "status");
    if (jint(st, "failed") != 0 || jint(st, "warm") != 50)
        fail_msg("after the restart: %s", r.body);
    json_object_put(p);
    bb_response_free(&r);
    assert_false(bb_log_contains(&s, "did not survive", 0));
    bb_cleanup(&s);
}

static void test_server_answering_503(void **state)
{
    (void)state;
    char url[64];
    struct MHD_Daemon *d = start_canned(&ANSWER_503, url, sizeof(url));
    lt_result r = lt_run(workdir,
                         (const char *const[]){"--mode", "allocate", "--pool", "arena", "--server",
                                               url, "--rate", "40", "--count", "20", "--json",
                                               "--hold", "0", NULL},
                         30);
    assert_int_equal(r.code, LT_EXIT_ERRORS);
    assert_non_null(strstr(r.err, "answered 503"));
    json_object *rep = json_tokener_parse(r.out);
    assert_non_null(rep);
    assert_int_equal(jint(rep, "count"), 20);
    assert_int_equal(jint(rep, "errors"), 20);
    assert_int_equal(jint(rep, "ok"), 0);
    json_object *by = json_object_object_get(rep, "errors_by_code");
    assert_int_equal(jint(by, "503 Unavailable"), 20);
    json_object_put(rep);
    lt_result_free(&r);
    /* Closed loop for a duration ends too, and churn's drain is bounded. */
    r = lt_run(workdir,
               (const char *const[]){"--mode", "churn", "--pool", "arena", "--server", url,
                                     "--concurrency", "2", "--duration", "1", "--timeout", "2",
                                     NULL},
               30);
    assert_int_equal(r.code, LT_EXIT_ERRORS);
    assert_non_null(strstr(r.out, "503 Unavailable"));
    lt_result_free(&r);
    /* --worlds: the API itself answers 503, so there is nothing to measure. */
    r = lt_run(
        workdir,
        (const char *const[]){"--worlds", "5", "--namespace", "default", "--server", url, NULL},
        30);
    assert_int_equal(r.code, LT_EXIT_SETUP);
    assert_non_null(strstr(r.err, "503"));
    lt_result_free(&r);
    MHD_stop_daemon(d);
}

/* A server that accepts connections and never answers: per-request
 * timeouts end the run. */
static void test_server_never_answering(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 64), 0); /* the kernel completes handshakes; nobody reads */
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", ntohs(a.sin_port));
    lt_result r = lt_run(workdir,
                         (const char *const[]){"--mode", "allocate", "--pool", "arena", "--server",
                                               url, "--request-timeout", "0.5", NULL},
                         30);
    /* The pool check itself times out: a server that does not answer is
     * unreachable for our purposes. */
    assert_int_equal(r.code, LT_EXIT_SETUP);
    assert_non_null(strstr(r.err, "cannot reach"));
    lt_result_free(&r);
    close(fd);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_argument_errors),
        cmocka_unit_test(test_unreachable_server),
        cmocka_unit_test_teardown(test_counts_match_server_metrics, bb_teardown),
        cmocka_unit_test_teardown(test_refused_token, bb_teardown),
        cmocka_unit_test_teardown(test_restart_readopts_bench_worlds, bb_teardown),
        cmocka_unit_test(test_server_answering_503),
        cmocka_unit_test(test_fast_answers_timed_as_answered),
        cmocka_unit_test(test_server_never_answering),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
