/* Black-box tests of the Kubernetes-compatible API with the real kubectl
 * (/usr/bin/kubectl, which runs the kubectl matching the server's /version)
 * against a real bindery running the example pool of real worlds, plus
 * wire-format cases (request in, exact status and Status body out).
 *
 * One server serves every test of the group, in order: later tests use
 * what earlier ones created. Every kubectl run is bounded by timeout(1).
 * BB_KUBECTL_IDLE_S (default 60) sets how long the watch test stays idle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <json-c/json.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static bb_server srv;
static char kubeconfig[256];

static const char *const JSON_HDR[] = {"Content-Type: application/json", NULL};
static const char *const MERGE_HDR[] = {"Content-Type: application/merge-patch+json", NULL};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Runs `kubectl ARGS` (a shell fragment) with the server's kubeconfig;
 * returns the exit code and the combined output (owned). */
static int kubectl(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int kubectl(char **out, const char *fmt, ...)
{
    char args[2048];
    char cmd[2600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    /* The discovery cache in the test's folder: kubectl keeps it per
     * host:port under ~/.kube otherwise, where a later run on the same
     * port would read this server's resources. */
    snprintf(cmd, sizeof(cmd),
             "cd %s && KUBECONFIG=%s timeout 60 kubectl --cache-dir=%s/kube-cache %s 2>&1", srv.dir,
             kubeconfig, srv.dir, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 20;
    char *buf = calloc(1, cap);
    assert_non_null(buf);
    size_t n = fread(buf, 1, cap - 1, p);
    buf[n] = '\0';
    int st = pclose(p);
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* kubectl that must succeed and print `want`. */
static void expect_kubectl(const char *want, const char *args)
{
    char *out = NULL;
    int rc = kubectl(&out, "%s", args);
    bool ok = rc == 0 && (want == NULL || strstr(out, want) != NULL);
    char copy[4096];
    snprintf(copy, sizeof(copy), "%s", out);
    free(out); /* before fail_msg, which does not return */
    if (!ok)
        fail_msg("kubectl %s: rc %d, wanted \"%s\" in:\n%s", args, rc, want ? want : "", copy);
}

/* kubectl that must fail, saying want. */
static void expect_kubectl_refused(const char *want, const char *args)
{
    char *out = NULL;
    int rc = kubectl(&out, "%s", args);
    bool ok = rc != 0 && strstr(out, want) != NULL;
    char copy[4096];
    snprintf(copy, sizeof(copy), "%s", out);
    free(out);
    if (!ok)
        fail_msg("kubectl %s: rc %d, wanted a failure saying \"%s\" in:\n%s", args, rc, want, copy);
}

static json_object *request_json(const char *method, const char *path, const char *body,
                                 const char *const *hdrs, long *status)
{
    bb_response r = bb_request(&srv, method, path, body, hdrs);
    *status = r.status;
    json_object *o = json_tokener_parse(r.body ? r.body : "");
    bb_response_free(&r);
    return o;
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

/* A Status with kind, status Failure, reason and code as given. */
static void assert_status(json_object *o, long http, long want_http, const char *reason)
{
    assert_int_equal(http, want_http);
    assert_non_null(o);
    assert_string_equal(jstr(o, "kind"), "Status");
    assert_string_equal(jstr(o, "apiVersion"), "v1");
    assert_string_equal(jstr(o, "status"), "Failure");
    assert_string_equal(jstr(o, "reason"), reason);
    json_object *code = NULL;
    assert_true(json_object_object_get_ex(o, "code", &code));
    assert_int_equal(json_object_get_int(code), want_http);
}

static const char *world_bin(void)
{
    const char *b = getenv("ARENA_WORLD_BIN");
    return b != NULL ? b : "arena-world";
}

static int group_setup(void **state)
{
    (void)state;
    /* Clear of the kernel's ephemeral ports (32768 up) and of the other
     * tests' ranges (10000-32699). */
    unsigned base = 5000 + (unsigned)(getpid() % 40) * 100;
    char cfg[1024];
    snprintf(cfg, sizeof(cfg),
             "manifests: [manifests]\n"
             "store: {watchHistory: 100}\n"
             "runtime:\n  workDir: .\n  logDir: worlds\n  portMin: %u\n  portMax: %u\n"
             "pools:\n"
             "  - name: arena\n    manifest: arena\n    minWarm: 2\n    maxWarm: 2\n"
             "    maxWorlds: 4\n    labels: {game: arena}\n",
             base, base + 99);
    bb_init(&srv, cfg);
    char manifest[1024];
    snprintf(manifest, sizeof(manifest),
             "apiVersion: bindery.dev/v1alpha1\nkind: ModuleManifest\n"
             "metadata: {name: arena, namespace: default}\n"
             "spec:\n"
             "  ports: [{name: game, containerPort: 7777, protocol: TCP}]\n"
             "  readinessProbe: {tcpSocket: {port: game}, periodSeconds: 1}\n"
             "  terminationGracePeriodSeconds: 2\n"
             "  local:\n"
             "    command: %s\n"
             "    args: [\"--port\", \"{port:game}\", \"--name\", \"{name}\"]\n",
             world_bin());
    bb_write(&srv, "manifests/arena.yaml", manifest);
    if (!bb_start(&srv, NULL))
        return -1;
    snprintf(kubeconfig, sizeof(kubeconfig), "%s/kubeconfig", srv.dir);
    return access(kubeconfig, R_OK) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    bb_cleanup(&srv);
    bb_cleanup_all();
    return 0;
}

/* Waits until `kubectl get wi` shows n Ready worlds. */
static bool wait_ready_worlds(int n, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 250) {
        long st = 0;
        json_object *l = request_json("GET",
                                      "/apis/bindery.dev/v1alpha1/namespaces/default/"
                                      "worldinstances?fieldSelector=status.phase%"
                                      "3DReady",
                                      NULL, NULL, &st);
        json_object *items = NULL;
        int count = json_object_object_get_ex(l, "items", &items)
                        ? (int)json_object_array_length(items)
                        : -1;
        json_object_put(l);
        if (count >= n)
            return true;
        sleep_ms(250);
    }
    return false;
}

static void test_kubeconfig_and_api_resources(void **state)
{
    (void)state;
    char *out = NULL;
    const char *args[] = {"kubeconfig", "--config", srv.config, "--data", srv.data, NULL};
    assert_int_equal(bb_run(&srv, args, NULL, &out), 0);
    assert_non_null(strstr(out, "current-context: bindery"));
    char server[64];
    snprintf(server, sizeof(server), "server: http://127.0.0.1:%u", srv.port);
    assert_non_null(strstr(out, server));
    free(out);
    assert_int_equal(kubectl(&out, "api-resources"), 0);
    const char *want[] = {"worldinstances",
                          " wi ",
                          "modulemanifests",
                          " mm ",
                          "booklets",
                          " bk ",
                          "capabilitybindings",
                          " cb ",
                          "bindery.dev/v1alpha1",
                          "leases",
                          "customresourcedefinitions"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        if (strstr(out, want[i]) == NULL)
            fail_msg("api-resources lacks %s:\n%s", want[i], out);
    }
    free(out);
    expect_kubectl("v1.32", "version");
    /* What the caller may do, and who it is: here without authentication
     * (loopback), so everything, as nobody. */
    expect_kubectl("yes", "auth can-i get wi");
    expect_kubectl("yes", "auth can-i delete namespaces/default");
    expect_kubectl("*.*", "auth can-i --list");
    expect_kubectl("system:anonymous", "auth whoami");
}

static void test_apply_crds_and_manifests(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "apply -f %s/crds/", BINDERY_SOURCE_DIR);
    expect_kubectl("customresourcedefinition.apiextensions.k8s.io/worldinstances.bindery.dev", cmd);
    expect_kubectl("worldinstances.bindery.dev unchanged", cmd);
    bb_write(&srv, "demo.yaml",
             "apiVersion: bindery.dev/v1alpha1\nkind: ModuleManifest\n"
             "metadata: {name: demo, labels: {tier: web}}\n"
             "spec:\n  ports: [{name: game, containerPort: 7777, protocol: TCP}]\n"
             "  local: {command: /bin/true}\n");
    expect_kubectl("modulemanifest.bindery.dev/demo created", "apply -f demo.yaml");
    expect_kubectl("modulemanifest.bindery.dev/demo unchanged", "apply -f demo.yaml");
    bb_write(&srv, "demo.yaml",
             "apiVersion: bindery.dev/v1alpha1\nkind: ModuleManifest\n"
             "metadata: {name: demo, labels: {tier: api}}\n"
             "spec:\n  ports: [{name: game, containerPort: 7778, protocol: TCP}]\n"
             "  local: {command: /bin/true}\n");
    expect_kubectl("modulemanifest.bindery.dev/demo configured", "apply -f demo.yaml");
    expect_kubectl("7778", "get mm demo -o jsonpath={.spec.ports[0].containerPort}");
    /* The Ports column's path has a wildcard (.spec.ports[*].name). */
    expect_kubectl("game", "get mm demo");
    /* Strict validation (kubectl's default) refuses unknown fields. */
    bb_write(&srv, "bad.yaml",
             "apiVersion: bindery.dev/v1alpha1\nkind: ModuleManifest\n"
             "metadata: {name: bad}\n"
             "spec:\n  bogus: 1\n  ports: [{name: game, containerPort: 7777}]\n"
             "  local: {command: /bin/true}\n");
    char *out = NULL;
    assert_int_not_equal(kubectl(&out, "apply -f bad.yaml"), 0);
    assert_non_null(strstr(out, "unknown field \"spec.bogus\""));
    free(out);
    /* With an invalid value too: strict decoding refuses the unknown field
     * alone (400, as the API server's decoder does before validating),
     * and --validate=warn warns of it and refuses the value alone. */
    bb_write(&srv, "bad.yaml",
             "apiVersion: bindery.dev/v1alpha1\nkind: ModuleManifest\n"
             "metadata: {name: bad}\n"
             "spec:\n  bogus: 1\n  ports: [{name: game, containerPort: 70000}]\n"
             "  local: {command: /bin/true}\n");
    assert_int_not_equal(kubectl(&out, "apply -f bad.yaml"), 0);
    if (strstr(out, "strict decoding error: unknown field \"spec.bogus\"") == NULL ||
        strstr(out, "containerPort") != NULL)
        fail_msg("strict, unknown field and invalid value:\n%s", out);
    free(out);
    assert_int_not_equal(kubectl(&out, "apply --validate=warn -f bad.yaml"), 0);
    if (strstr(out, "Warning: unknown field \"spec.bogus\"") == NULL ||
        strstr(out, "spec.ports[0].containerPort: Invalid value: 70000") == NULL ||
        strstr(out, "unknown field \"spec.bogus\", ") != NULL)
        fail_msg("warn, unknown field and invalid value:\n%s", out);
    free(out);
    /* kubectl explain finds the CRDs' schemas in the OpenAPI v3 document. */
    assert_int_equal(kubectl(&out, "explain wi.spec"), 0);
    if (strstr(out, "KIND:       WorldInstance") == NULL ||
        strstr(out, "pool\t<string> -required-") == NULL)
        fail_msg("explain wi.spec:\n%s", out);
    free(out);
    expect_kubectl("Standard object's metadata", "explain mm.metadata");
    /* The example manifests (applied at start-up) re-apply. */
    snprintf(cmd, sizeof(cmd), "apply -f %s/examples/manifests/arena.yaml", BINDERY_SOURCE_DIR);
    expect_kubectl("modulemanifest.bindery.dev/arena", cmd);
}

static void test_get_wi_columns_with_claim(void **state)
{
    (void)state;
    assert_true(wait_ready_worlds(2, 30000));
    long st = 0;
    json_object *c =
        request_json("POST", "/v1/allocations", "{\"pool\":\"arena\",\"claimant\":\"match-4711\"}",
                     JSON_HDR, &st);
    assert_int_equal(st, 201);
    json_object_put(c);
    char *out = NULL;
    assert_int_equal(kubectl(&out, "get wi"), 0);
    if (strstr(out, "NAME") == NULL || strstr(out, "POOL") == NULL ||
        strstr(out, "PHASE") == NULL || strstr(out, "ADDRESS") == NULL ||
        strstr(out, "CLAIMANT") == NULL || strstr(out, "AGE") == NULL ||
        strstr(out, "Allocated") == NULL || strstr(out, "match-4711") == NULL ||
        strstr(out, "127.0.0.1") == NULL || strstr(out, "arena-") == NULL)
        fail_msg("get wi:\n%s", out);
    free(out);
    expect_kubectl("NODE", "get wi -o wide");
    expect_kubectl("match-4711", "get wi -o yaml");
    expect_kubectl("kind: WorldInstance", "get wi -o yaml");
    expect_kubectl("NAMESPACE", "get wi -A");
    expect_kubectl("game=arena", "get wi --show-labels");
    /* Selectors. */
    char *one = NULL;
    assert_int_equal(kubectl(&one, "get wi -o name -l game=arena"), 0);
    char *first = strtok(one, "\n");
    assert_non_null(first);
    char args[300];
    snprintf(args, sizeof(args), "get wi --field-selector metadata.name=%s -o name",
             first + strlen("worldinstance.bindery.dev/"));
    char *sel = NULL;
    assert_int_equal(kubectl(&sel, "%s", args), 0);
    assert_non_null(strstr(sel, first));
    assert_null(strchr(sel, '\n') != NULL && strchr(sel, '\n')[1] != '\0' ? sel : NULL);
    free(sel);
    free(one);
    expect_kubectl("No resources found", "get wi -l game=nothing");
    expect_kubectl("No resources found", "get wi -l 'game in (x,y),!legacy'");
    char *bad = NULL;
    assert_int_not_equal(kubectl(&bad, "get wi --field-selector spec.x=1"), 0);
    assert_non_null(strstr(bad, "field label not supported: spec.x"));
    free(bad);
}

static void test_describe_shows_events(void **state)
{
    (void)state;
    char *name = NULL;
    assert_int_equal(kubectl(&name, "get wi -o name -l game=arena"), 0);
    char *first = strtok(name, "\n");
    assert_non_null(first);
    /* Events are recorded in the background: allow them a moment. */
    bool ok = false;
    char last[8192] = "";
    for (int i = 0; i < 40 && !ok; i++) {
        char *out = NULL;
        int rc = kubectl(&out, "describe %s", first);
        /* In the order they happened (Started, then Ready), which the
         * events' names keep within one second. */
        const char *events = rc == 0 ? strstr(out, "Events:") : NULL;
        const char *started = events ? strstr(events, "Started") : NULL;
        const char *ready = events ? strstr(events, "  Ready ") : NULL;
        ok = started != NULL && ready != NULL && started < ready && strstr(out, "bindery") != NULL;
        snprintf(last, sizeof(last), "%s", out);
        free(out);
        if (!ok)
            sleep_ms(250);
    }
    if (!ok)
        fail_msg("describe:\n%s", last);
    /* The events' OBJECT column names the kind, as against a cluster
     * (first is "worldinstance.bindery.dev/NAME"). */
    const char *slash = strchr(first, '/');
    assert_non_null(slash);
    snprintf(last, sizeof(last), "worldinstance%s", slash);
    expect_kubectl(last, "get events");
    free(name);
}

static void test_label_annotate_patch(void **state)
{
    (void)state;
    expect_kubectl("labeled", "label mm demo color=blue");
    expect_kubectl("blue", "get mm demo -o jsonpath={.metadata.labels.color}");
    expect_kubectl("annotated", "annotate mm demo note=hello");
    expect_kubectl("hello", "get mm demo -o jsonpath={.metadata.annotations.note}");
    expect_kubectl("patched",
                   "patch mm demo --type=merge -p '{\"spec\":{\"startDeadlineSeconds\":33}}'");
    expect_kubectl("33", "get mm demo -o jsonpath={.spec.startDeadlineSeconds}");
    expect_kubectl(
        "3",
        "get mm demo -o jsonpath={.metadata.generation}"); /* created, re-applied, patched; labels
                                                              and annotations do not count */
    expect_kubectl("patched",
                   "patch mm demo --type=json -p "
                   "'[{\"op\":\"replace\",\"path\":\"/spec/startDeadlineSeconds\",\"value\":44}]'");
    expect_kubectl("44", "get mm demo -o jsonpath={.spec.startDeadlineSeconds}");
    char *out = NULL;
    assert_int_not_equal(
        kubectl(&out, "patch mm demo --type=json -p "
                      "'[{\"op\":\"test\",\"path\":\"/spec/startDeadlineSeconds\",\"value\":1}]'"),
        0);
    free(out);
    /* Status subresource: only .status moves, generation stays. */
    char *gen = NULL;
    assert_int_equal(kubectl(&gen, "get mm demo -o jsonpath={.metadata.generation}"), 0);
    expect_kubectl("patched", "patch mm demo --subresource=status --type=merge -p "
                              "'{\"status\":{\"observedGeneration\":7}}'");
    char want[64];
    snprintf(want, sizeof(want), "7/%s", gen);
    expect_kubectl(want,
                   "get mm demo -o jsonpath={.status.observedGeneration}/{.metadata.generation}");
    /* A world's status is bindery's alone. */
    char *w = NULL;
    assert_int_equal(kubectl(&w, "get wi -o name -l game=arena"), 0);
    char *first = strtok(w, "\n");
    char args[400];
    snprintf(args, sizeof(args),
             "patch %s --subresource=status --type=merge -p '{\"status\":{\"restarts\":7}}'",
             first);
    expect_kubectl_refused("status.restarts: Forbidden: set by bindery only", args);
    /* Its printer columns, as for the object itself. */
    snprintf(args, sizeof(args), "get %s --subresource=status", first);
    expect_kubectl("PHASE", args);
    /* Plain (strategic merge) patch on a custom resource: kubectl's message. */
    assert_int_not_equal(
        kubectl(&out, "patch mm demo -p '{\"spec\":{\"startDeadlineSeconds\":5}}'"), 0);
    if (strstr(out, "application/strategic-merge-patch+json is not supported") == NULL)
        fail_msg("plain patch:\n%s", out);
    free(out);
    free(gen);
    free(w);
    /* Strategic merge patch on a built-in kind merges containers by name. */
    bb_write(&srv, "pod.yaml",
             "apiVersion: v1\nkind: Pod\nmetadata: {name: p1}\nspec:\n  containers:\n"
             "  - {name: a, image: busybox}\n  - {name: b, image: busybox}\n");
    expect_kubectl("pod/p1 created", "apply -f pod.yaml");
    expect_kubectl("patched", "patch pod p1 -p '{\"spec\":{\"containers\":[{\"name\":\"b\","
                              "\"image\":\"alpine\"}]}}'");
    expect_kubectl("busybox alpine", "get pod p1 -o jsonpath='{.spec.containers[*].image}'");
    bb_write(&srv, "lease.yaml",
             "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: leader}\n"
             "spec: {holderIdentity: pod-a, leaseDurationSeconds: 15}\n");
    expect_kubectl("created", "apply -f lease.yaml");
    bb_write(&srv, "lease.yaml",
             "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: leader}\n"
             "spec: {holderIdentity: pod-b, leaseDurationSeconds: 15}\n");
    expect_kubectl("configured", "apply -f lease.yaml");
    expect_kubectl("pod-b", "get lease leader");
    /* Finalizers merge as a set; kubectl apply removes one with a
     * $deleteFromPrimitiveList directive; $patch: replace replaces a
     * keyed list. */
    expect_kubectl("patched", "patch pod p1 -p '{\"metadata\":{\"finalizers\":[\"x.io/a\"]}}'");
    expect_kubectl("patched", "patch pod p1 -p '{\"metadata\":{\"finalizers\":[\"x.io/b\"]}}'");
    expect_kubectl("[x.io/a x.io/b]", "get pod p1 -o jsonpath='[{.metadata.finalizers[*]}]'");
    expect_kubectl("patched",
                   "patch pod p1 -p "
                   "'{\"metadata\":{\"$deleteFromPrimitiveList/finalizers\":[\"x.io/a\"]}}'");
    expect_kubectl("[x.io/b]", "get pod p1 -o jsonpath='[{.metadata.finalizers[*]}]'");
    expect_kubectl("patched", "patch pod p1 -p '{\"spec\":{\"containers\":[{\"$patch\":"
                              "\"replace\"},{\"name\":\"c\",\"image\":\"nginx\"}]}}'");
    expect_kubectl("[c]", "get pod p1 -o jsonpath='[{.spec.containers[*].name}]'");
    expect_kubectl("patched",
                   "patch pod p1 -p "
                   "'{\"metadata\":{\"$deleteFromPrimitiveList/finalizers\":[\"x.io/b\"]}}'");
    expect_kubectl("deleted", "delete pod p1");
}

static void test_generate_name_and_finalizer_delete(void **state)
{
    (void)state;
    bb_write(&srv, "gen.yaml",
             "apiVersion: bindery.dev/v1alpha1\nkind: ModuleManifest\n"
             "metadata: {generateName: gen-, finalizers: [example.com/hold]}\n"
             "spec:\n  ports: [{name: game, containerPort: 7777}]\n"
             "  local: {command: /bin/true}\n");
    char *name = NULL;
    assert_int_equal(kubectl(&name, "create -f gen.yaml -o name"), 0);
    char *nl = strchr(name, '\n');
    if (nl != NULL)
        *nl = '\0';
    assert_non_null(strstr(name, "modulemanifest.bindery.dev/gen-"));
    assert_int_equal(strlen(name), strlen("modulemanifest.bindery.dev/gen-") + 5);
    /* kubectl delete waits while the finalizer holds the object. */
    char cmd[700];
    char done[300];
    snprintf(done, sizeof(done), "%s/delete.out", srv.dir);
    snprintf(cmd, sizeof(cmd),
             "(cd %s && KUBECONFIG=%s timeout 60 kubectl delete %s > %s 2>&1; echo rc=$? >> %s) &",
             srv.dir, kubeconfig, name, done, done);
    assert_int_equal(system(cmd), 0);
    bool marked = false;
    for (int i = 0; i < 100 && !marked; i++) {
        char *ts = NULL;
        kubectl(&ts, "get %s -o jsonpath={.metadata.deletionTimestamp}", name);
        marked = strlen(ts) >= 20;
        free(ts);
        if (!marked)
            sleep_ms(100);
    }
    assert_true(marked);
    sleep_ms(1000);
    FILE *f = fopen(done, "r");
    if (f != NULL) {
        char buf[4096] = "";
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = '\0';
        fclose(f);
        assert_null(strstr(buf, "rc=")); /* kubectl still waits */
    }
    snprintf(cmd, sizeof(cmd),
             "patch %s --type=json -p '[{\"op\":\"remove\",\"path\":\"/metadata/finalizers\"}]'",
             name);
    expect_kubectl("patched", cmd);
    bool finished = false;
    for (int i = 0; i < 200 && !finished; i++) {
        f = fopen(done, "r");
        char buf[4096] = "";
        if (f != NULL) {
            size_t n = fread(buf, 1, sizeof(buf) - 1, f);
            buf[n] = '\0';
            fclose(f);
        }
        finished = strstr(buf, "rc=0") != NULL;
        if (!finished)
            sleep_ms(100);
    }
    assert_true(finished);
    char *out = NULL;
    assert_int_not_equal(kubectl(&out, "get %s", name), 0);
    assert_non_null(strstr(out, "NotFound"));
    free(out);
    free(name);
}

/* kubectl that must succeed and print exactly want (less the trailing
 * newline). */
static void expect_kubectl_output(const char *want, const char *args)
{
    char *out = NULL;
    int rc = kubectl(&out, "%s", args);
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '\n')
        out[--n] = '\0';
    bool ok = rc == 0 && strcmp(out, want) == 0;
    char copy[4096];
    snprintf(copy, sizeof(copy), "%s", out);
    free(out);
    if (!ok)
        fail_msg("kubectl %s: rc %d, wanted \"%s\", got:\n%s", args, rc, want, copy);
}

/* The whitespace-separated cells of the row of `kubectl get` output (out)
 * whose first cell is name, into cells (at most max). Returns how many. */
static size_t table_row(const char *out, const char *name, char cells[][64], size_t max)
{
    size_t len = strlen(name);
    for (const char *line = out; line != NULL && *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        if (n > len && strncmp(line, name, len) == 0 && line[len] == ' ') {
            char row[512];
            char *save = NULL;
            size_t count = 0;
            snprintf(row, sizeof(row), "%.*s", (int)n, line);
            for (char *tok = strtok_r(row, " ", &save); tok != NULL && count < max;
                 tok = strtok_r(NULL, " ", &save))
                snprintf(cells[count++], 64, "%s", tok);
            return count;
        }
        line = end ? end + 1 : NULL;
    }
    return 0;
}

/* `kubectl get KIND` shows name with these cells after NAME (AGE not
 * checked). */
static void expect_row(const char *kind, const char *name, const char *const *want)
{
    char *out = NULL;
    char cells[8][64];
    assert_int_equal(kubectl(&out, "get %s", kind), 0);
    size_t n = table_row(out, name, cells, 8);
    bool ok = n > 0;
    for (size_t i = 0; ok && want[i] != NULL; i++)
        ok = i + 1 < n && strcmp(cells[i + 1], want[i]) == 0;
    char copy[4096];
    snprintf(copy, sizeof(copy), "%s", out);
    free(out);
    if (!ok)
        fail_msg("get %s: row %s not as wanted (%s ...):\n%s", kind, name, want[0], copy);
}

/* A CRD of the operator's own whose printer columns pick a list element
 * with a JSONPath filter, the common way to show a condition. */
static void test_custom_columns_with_filters(void **state)
{
    (void)state;
    bb_write(&srv, "gadgets.yaml",
             "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
             "metadata: {name: gadgets.example.com}\n"
             "spec:\n  group: example.com\n  scope: Namespaced\n"
             "  names: {plural: gadgets, singular: gadget, kind: Gadget}\n"
             "  versions:\n  - name: v1\n    served: true\n    storage: true\n"
             "    additionalPrinterColumns:\n"
             "    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type==\"Ready\")]"
             ".status'}\n"
             "    - {name: Other, type: string, jsonPath: \".status.conditions[?(@.type!='Ready')]"
             ".type\"}\n"
             "    - {name: Big, type: string, jsonPath: '.status.parts[?(@.size == 3)].name'}\n"
             "    schema:\n      openAPIV3Schema:\n        type: object\n"
             "        x-kubernetes-preserve-unknown-fields: true\n");
    expect_kubectl("customresourcedefinition.apiextensions.k8s.io/gadgets.example.com created",
                   "apply -f gadgets.yaml");
    bb_write(&srv, "g1.yaml",
             "apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g1}\n"
             "status:\n  conditions:\n  - {type: Synced, status: 'False'}\n"
             "  - {type: Ready, status: 'True'}\n"
             "  parts: [{name: small, size: 1}, {name: large, size: 3}]\n");
    expect_kubectl("gadget.example.com/g1 created", "apply -f g1.yaml");
    const char *const row[] = {"True", "Synced", "large", NULL};
    expect_row("gadgets", "g1", row);
}

/* Secrets and ConfigMaps as kubectl users handle them: `kubectl create
 * secret generic` and `create configmap` (which post protobuf, as `create
 * namespace` does for the namespace they may go in), apply of
 * YAML with stringData (a strategic merge patch the second time), the
 * TYPE and DATA columns, what the API server refuses, immutability and
 * delete. */
static void test_secrets_and_configmaps(void **state)
{
    (void)state;
    char *out = NULL;
    assert_int_equal(kubectl(&out, "api-resources"), 0);
    if (strstr(out, "secrets ") == NULL || strstr(out, "configmaps ") == NULL ||
        strstr(out, " cm ") == NULL)
        fail_msg("api-resources lacks secrets or configmaps:\n%s", out);
    free(out);

    expect_kubectl("secret/db created",
                   "create secret generic db --from-literal=url=x --from-literal=pw=s3cr3t");
    expect_kubectl_output("eA==", "get secret db -o jsonpath='{.data.url}'");
    expect_kubectl_output("czNjcjN0", "get secret db -o jsonpath='{.data.pw}'");
    expect_kubectl("type: Opaque", "get secret db -o yaml");

    /* stringData becomes data and is neither stored nor returned. */
    bb_write(&srv, "secret.yaml",
             "apiVersion: v1\nkind: Secret\nmetadata: {name: app}\n"
             "stringData: {user: admin, pass: hunter2}\n");
    expect_kubectl("secret/app created", "apply -f secret.yaml");
    expect_kubectl_output("YWRtaW4=/aHVudGVyMg==/Opaque",
                          "get secret app -o jsonpath='{.data.user}/{.data.pass}/{.type}'");
    assert_int_equal(kubectl(&out, "get secret app -o json"), 0);
    json_object *app = json_tokener_parse(out);
    free(out);
    assert_non_null(app);
    assert_false(json_object_object_get_ex(app, "stringData", NULL));
    json_object_put(app);
    /* Applied again, changed: a strategic merge patch. */
    bb_write(&srv, "secret.yaml",
             "apiVersion: v1\nkind: Secret\nmetadata: {name: app}\n"
             "stringData: {user: admin, pass: hunter3, extra: more}\n");
    expect_kubectl("secret/app configured", "apply -f secret.yaml");
    expect_kubectl_output("YWRtaW4=/aHVudGVyMw==/bW9yZQ==",
                          "get secret app -o jsonpath='{.data.user}/{.data.pass}/{.data.extra}'");
    const char *const app_row[] = {"Opaque", "3", NULL};
    const char *const db_row[] = {"Opaque", "2", NULL};
    expect_kubectl("TYPE", "get secrets");
    expect_row("secrets", "app", app_row);
    expect_row("secrets", "db", db_row);
    expect_kubectl_output("secret/app\nsecret/db",
                          "get secrets --field-selector type=Opaque -o name");

    /* A ConfigMap from literals and a file that is not UTF-8 (binaryData). */
    char path[300];
    snprintf(path, sizeof(path), "%s/blob.bin", srv.dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite("\x00\xffhi", 1, 4, f), 4);
    fclose(f);
    expect_kubectl("configmap/cfg created",
                   "create configmap cfg --from-literal=a=b --from-file=bin=blob.bin");
    expect_kubectl_output("b/AP9oaQ==", "get cm cfg -o jsonpath='{.data.a}/{.binaryData.bin}'");
    const char *const cfg_row[] = {"2", NULL};
    expect_kubectl("DATA", "get cm");
    expect_row("cm", "cfg", cfg_row);
    bb_write(&srv, "cm.yaml",
             "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n"
             "data: {mode: fast, level: \"3\"}\n");
    expect_kubectl("configmap/settings created", "apply -f cm.yaml");
    bb_write(&srv, "cm.yaml",
             "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n"
             "data: {mode: slow}\n");
    expect_kubectl("configmap/settings configured", "apply -f cm.yaml");
    expect_kubectl_output("slow/", "get cm settings -o jsonpath='{.data.mode}/{.data.level}'");
    const char *const settings_row[] = {"1", NULL};
    expect_row("configmaps", "settings", settings_row);
    /* A map's strategic-merge directives: "$patch": "replace" leaves the
     * map as the patch has it, "$retainKeys" drops the keys it does not
     * list, "$patch": "delete" removes the map; another "$patch" is
     * refused. */
    expect_kubectl("patched", "patch cm settings -p '{\"data\":{\"a\":\"1\",\"b\":\"2\"}}'");
    expect_kubectl("patched",
                   "patch cm settings -p '{\"data\":{\"$patch\":\"replace\",\"c\":\"3\"}}'");
    expect_kubectl_output("{\"c\":\"3\"}", "get cm settings -o jsonpath='{.data}'");
    expect_kubectl("patched", "patch cm settings -p '{\"data\":{\"d\":\"4\",\"e\":\"5\"}}'");
    expect_kubectl("patched", "patch cm settings -p "
                              "'{\"data\":{\"$retainKeys\":[\"d\",\"e\"],\"e\":\"6\"}}'");
    expect_kubectl_output("{\"d\":\"4\",\"e\":\"6\"}", "get cm settings -o jsonpath='{.data}'");
    expect_kubectl("patched", "patch cm settings -p '{\"data\":{\"$patch\":\"delete\"}}'");
    expect_kubectl_output("", "get cm settings -o jsonpath='{.data}'");
    expect_kubectl_refused("\"$patch\" must be",
                           "patch cm settings -p '{\"data\":{\"$patch\":\"frob\"}}'");

    /* Refused by the server, and nothing stored. */
    bb_write(&srv, "bad.yaml",
             "apiVersion: v1\nkind: Secret\nmetadata: {name: badkey}\n"
             "stringData: {\"a b\": x}\n");
    expect_kubectl_refused("stringData[a b]: Invalid value", "apply -f bad.yaml");
    expect_kubectl_refused("NotFound", "get secret badkey");
    bb_write(&srv, "bad.yaml",
             "apiVersion: v1\nkind: Secret\nmetadata: {name: badb64}\n"
             "data: {k: \"not*base64\"}\n");
    expect_kubectl_refused("data[k]: Invalid value: must be standard base64", "apply -f bad.yaml");
    expect_kubectl_refused("NotFound", "get secret badb64");
    bb_write(&srv, "bad.yaml",
             "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dup}\n"
             "data: {k: v}\nbinaryData: {k: eA==}\n");
    expect_kubectl_refused("duplicate of key present in binaryData", "create -f bad.yaml");
    expect_kubectl_refused("NotFound", "get cm dup");

    /* Immutable: data may not change any more, labels may. */
    bb_write(&srv, "frozen.yaml",
             "apiVersion: v1\nkind: Secret\nmetadata: {name: frozen}\nimmutable: true\n"
             "stringData: {k: v1}\n");
    expect_kubectl("secret/frozen created", "apply -f frozen.yaml");
    bb_write(&srv, "frozen.yaml",
             "apiVersion: v1\nkind: Secret\nmetadata: {name: frozen}\nimmutable: true\n"
             "stringData: {k: v2}\n");
    expect_kubectl_refused("data: Forbidden: field is immutable when `immutable` is set",
                           "apply -f frozen.yaml");
    expect_kubectl_refused("field is immutable",
                           "patch secret frozen --type=merge -p '{\"immutable\":false}'");
    expect_kubectl_output("djE=", "get secret frozen -o jsonpath='{.data.k}'");
    expect_kubectl("labeled", "label secret frozen tier=gold");

    expect_kubectl("secret \"db\" deleted", "delete secret db");
    expect_kubectl_refused("NotFound", "get secret db");
    expect_kubectl("configmap \"cfg\" deleted", "delete cm cfg");
    expect_kubectl_refused("NotFound", "get cm cfg");

    expect_kubectl("namespace/vault created", "create namespace vault");
    expect_kubectl("secret/key created", "create secret generic key -n vault --from-literal=k=v");
    expect_kubectl_output("dg==", "get secret key -n vault -o jsonpath='{.data.k}'");
    expect_kubectl_output("namespace/vault", "get ns vault -o name");
    /* Not to its status: the decoder leaves a status out, and it would
     * be written as none. */
    static const char *const proto_hdr[] = {"Content-Type: application/vnd.kubernetes.protobuf",
                                            NULL};
    long st = 0;
    json_object *o = request_json("PUT", "/api/v1/namespaces/vault/status", "{}", proto_hdr, &st);
    assert_status(o, st, 415, "UnsupportedMediaType");
    json_object_put(o);
}

/* Reads what the background watch wrote so far. */

/* kubectl delete ns: refused while the namespace holds objects of the
 * operator's (the answer names them), and then it goes with the records
 * bindery keeps there (Events, Allocation records), which would otherwise
 * hold it for ever, since bindery keeps writing them. */
static void test_delete_namespace(void **state)
{
    (void)state;
    expect_kubectl("namespace/scratch created", "create namespace scratch");
    expect_kubectl("configmap/settings created",
                   "create configmap settings -n scratch --from-literal=a=b");
    bb_write(&srv, "records.yaml",
             "apiVersion: v1\nkind: Event\nmetadata: {name: w1.one, namespace: scratch}\n"
             "involvedObject: {kind: WorldInstance, name: w1, namespace: scratch}\n"
             "reason: Started\nmessage: started\ntype: Normal\n"
             "---\n"
             "apiVersion: bindery.dev/v1alpha1\nkind: Allocation\n"
             "metadata: {name: alc-scratch-1, namespace: scratch}\n"
             "spec: {pool: arena, world: w1, claimedAt: \"2026-12-01T10:00:00Z\", "
             "releasedAt: \"2026-12-01T10:05:00Z\", response: {}}\n");
    expect_kubectl("allocation.bindery.dev/alc-scratch-1 created", "create -f records.yaml");
    expect_kubectl_refused("still holds 1 configmaps; delete them first",
                           "delete namespace scratch");
    expect_kubectl("configmap \"settings\" deleted", "delete configmap settings -n scratch");
    expect_kubectl("namespace \"scratch\" deleted", "delete namespace scratch --timeout=20s");
    expect_kubectl_refused("NotFound", "get namespace scratch");
    /* Its records went with it. */
    long status = 0;
    json_object *o = request_json(
        "GET", "/apis/bindery.dev/v1alpha1/namespaces/scratch/allocations/alc-scratch-1", NULL,
        NULL, &status);
    json_object_put(o);
    assert_int_equal(status, 404);
    o = request_json("GET", "/api/v1/namespaces/scratch/events/w1.one", NULL, NULL, &status);
    json_object_put(o);
    assert_int_equal(status, 404);
}

static bool file_contains(const char *path, const char *text, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 200) {
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            char *buf = calloc(1, 1 << 16);
            size_t n = fread(buf, 1, (1 << 16) - 1, f);
            buf[n] = '\0';
            fclose(f);
            bool hit = strstr(buf, text) != NULL;
            free(buf);
            if (hit)
                return true;
        }
        sleep_ms(200);
    }
    return false;
}

static void test_watch_prints_changes_and_survives_idle(void **state)
{
    (void)state;
    const char *idle_env = getenv("BB_KUBECTL_IDLE_S");
    int idle_s = idle_env != NULL ? atoi(idle_env) : 60;
    char path[300];
    snprintf(path, sizeof(path), "%s/watch.out", srv.dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *f = freopen(path, "w", stdout);
        (void)f;
        dup2(1, 2);
        setenv("KUBECONFIG", kubeconfig, 1);
        char cache[sizeof(srv.dir) + 32];
        snprintf(cache, sizeof(cache), "--cache-dir=%s/kube-cache", srv.dir);
        execlp("kubectl", "kubectl", cache, "get", "mm", "-w", (char *)NULL);
        _exit(127);
    }
    assert_true(file_contains(path, "demo", 20000));
    expect_kubectl("labeled", "label mm demo --overwrite color=green");
    expect_kubectl("annotated", "annotate mm demo --overwrite stage=one");
    /* A change the watch has not printed before: a new object. */
    bb_write(&srv, "w1.yaml",
             "apiVersion: bindery.dev/v1alpha1\nkind: ModuleManifest\n"
             "metadata: {name: watched-one}\n"
             "spec:\n  ports: [{name: game, containerPort: 7777}]\n"
             "  local: {command: /bin/true}\n");
    expect_kubectl("created", "apply -f w1.yaml");
    assert_true(file_contains(path, "watched-one", 20000));
    sleep_ms(idle_s * 1000);
    assert_int_equal(waitpid(pid, NULL, WNOHANG), 0); /* still watching */
    bb_write(&srv, "w2.yaml",
             "apiVersion: bindery.dev/v1alpha1\nkind: ModuleManifest\n"
             "metadata: {name: watched-two}\n"
             "spec:\n  ports: [{name: game, containerPort: 7777}]\n"
             "  local: {command: /bin/true}\n");
    expect_kubectl("created", "apply -f w2.yaml");
    bool seen = file_contains(path, "watched-two", 20000);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    assert_true(seen);
}

/* ---- wire format ------------------------------------------------------------------ */

#define MM "/apis/bindery.dev/v1alpha1/namespaces/default/modulemanifests"

static void test_wire_errors(void **state)
{
    (void)state;
    long st = 0;
    json_object *o = request_json("GET", MM "/nope", NULL, NULL, &st);
    assert_status(o, st, 404, "NotFound");
    assert_string_equal(jstr(o, "message"), "modulemanifests.bindery.dev \"nope\" not found");
    json_object_put(o);

    const char *body = "{\"metadata\":{\"name\":\"demo\"},\"spec\":{\"ports\":[{\"name\":\"g\","
                       "\"containerPort\":1}],\"local\":{\"command\":\"x\"}}}";
    o = request_json("POST", MM, body, JSON_HDR, &st);
    assert_status(o, st, 409, "AlreadyExists");
    assert_string_equal(jstr(o, "message"), "modulemanifests.bindery.dev \"demo\" already exists");
    json_object_put(o);

    /* A field twice: refused under strict validation (kubectl's), as the
     * API server's strict decoding does; the last one taken under Warn
     * (the default, with a Warning) and Ignore. A leading zero is no JSON
     * under any. */
    const char *twice = "{\"metadata\":{\"labels\":{\"dup\":\"a\",\"dup\":\"b\"}}}";
    o = request_json("PATCH", MM "/demo?fieldValidation=Strict", twice, MERGE_HDR, &st);
    assert_status(o, st, 400, "BadRequest");
    assert_string_equal(jstr(o, "message"), "strict decoding error: duplicate field \"dup\"");
    json_object_put(o);
    o = request_json("PATCH", MM "/demo", twice, MERGE_HDR, &st);
    assert_int_equal(st, 200);
    json_object_put(o);
    o = request_json("PATCH", MM "/demo?fieldValidation=Ignore", twice, MERGE_HDR, &st);
    assert_int_equal(st, 200);
    assert_string_equal(
        jstr(json_object_object_get(json_object_object_get(o, "metadata"), "labels"), "dup"), "b");
    json_object_put(o);
    o = request_json("PATCH", MM "/demo?fieldValidation=Ignore",
                     "{\"spec\":{\"startDeadlineSeconds\":030}}", MERGE_HDR, &st);
    assert_status(o, st, 400, "BadRequest");
    assert_non_null(strstr(jstr(o, "message"), "the number 030 at offset"));
    json_object_put(o);

    o = request_json("PATCH", MM "/demo", "{\"metadata\":{\"resourceVersion\":\"1\"}}", MERGE_HDR,
                     &st);
    assert_status(o, st, 409, "Conflict");
    assert_string_equal(jstr(o, "message"),
                        "Operation cannot be fulfilled on modulemanifests.bindery.dev \"demo\": "
                        "the object has been modified; please apply your changes to the latest "
                        "version and try again");
    json_object_put(o);

    o = request_json("POST", MM,
                     "{\"metadata\":{\"name\":\"x\"},\"spec\":{\"ports\":[{\"name\":\"g\","
                     "\"containerPort\":0}],\"local\":{\"command\":\"x\"}}}",
                     JSON_HDR, &st);
    assert_status(o, st, 422, "Invalid");
    assert_non_null(strstr(jstr(o, "message"), "ModuleManifest.bindery.dev \"x\" is invalid: "));
    json_object *details = json_object_object_get(o, "details");
    assert_string_equal(jstr(details, "kind"), "ModuleManifest");
    json_object *causes = json_object_object_get(details, "causes");
    assert_true(json_object_array_length(causes) >= 1);
    assert_string_equal(jstr(json_object_array_get_idx(causes, 0), "field"),
                        "spec.ports[0].containerPort");
    json_object_put(o);

    o = request_json("POST", MM, "{\"metadata\":{},\"spec\":{}}", JSON_HDR, &st);
    assert_status(o, st, 422, "Invalid");
    assert_non_null(strstr(jstr(o, "message"), "metadata.name: Required value"));
    json_object_put(o);

    o = request_json("PUT", MM "/demo",
                     "{\"apiVersion\":\"bindery.dev/v1alpha1\",\"kind\":\"ModuleManifest\","
                     "\"metadata\":{\"name\":\"demo\"},\"spec\":{\"ports\":[{\"name\":\"g\","
                     "\"containerPort\":1}],\"local\":{\"command\":\"x\"}}}",
                     JSON_HDR, &st);
    assert_status(o, st, 422, "Invalid");
    assert_non_null(strstr(jstr(o, "message"),
                           "metadata.resourceVersion: Invalid value: 0x0: must be specified for "
                           "an update"));
    json_object_put(o);

    const char *smp[] = {"Content-Type: application/strategic-merge-patch+json", NULL};
    o = request_json("PATCH", MM "/demo", "{}", smp, &st);
    assert_status(o, st, 415, "UnsupportedMediaType");
    json_object_put(o);
    /* On a built-in kind, lists with a merge key merge by it, as kubectl
     * apply expects: the constraint not named stays, the one named keeps
     * what the patch does not change. */
    o = request_json("POST", "/api/v1/namespaces/default/pods",
                     "{\"metadata\":{\"name\":\"spread\"},\"spec\":{\"containers\":[{\"name\":"
                     "\"c\",\"image\":\"x\"}],\"topologySpreadConstraints\":[{\"topologyKey\":"
                     "\"a\",\"maxSkew\":1,\"whenUnsatisfiable\":\"DoNotSchedule\"},{"
                     "\"topologyKey\":\"b\",\"maxSkew\":1,\"whenUnsatisfiable\":"
                     "\"DoNotSchedule\"}]}}",
                     JSON_HDR, &st);
    assert_int_equal(st, 201);
    json_object_put(o);
    o = request_json("PATCH", "/api/v1/namespaces/default/pods/spread",
                     "{\"spec\":{\"topologySpreadConstraints\":[{\"topologyKey\":\"b\","
                     "\"maxSkew\":2}]}}",
                     smp, &st);
    assert_int_equal(st, 200);
    json_object *tsc =
        json_object_object_get(json_object_object_get(o, "spec"), "topologySpreadConstraints");
    assert_int_equal(json_object_array_length(tsc), 2);
    for (size_t i = 0; i < 2; i++) {
        json_object *c = json_object_array_get_idx(tsc, i);
        bool is_b = strcmp(jstr(c, "topologyKey"), "b") == 0;
        assert_int_equal(json_object_get_int(json_object_object_get(c, "maxSkew")), is_b ? 2 : 1);
        assert_string_equal(jstr(c, "whenUnsatisfiable"), "DoNotSchedule");
    }
    json_object_put(o);
    const char *ssa[] = {"Content-Type: application/apply-patch+yaml", NULL};
    o = request_json("PATCH", MM "/demo", "a: b", ssa, &st);
    assert_status(o, st, 415, "UnsupportedMediaType");
    json_object_put(o);

    /* What json-c reads but no Go client could read back once stored: a
     * 400, and the object is unchanged. */
    const char *unreadable[] = {"{\"metadata\":{\"labels\":{\"x\":\"a\\u0000b\"}}}",
                                "{\"metadata\":{\"annotations\":{\"x\\u0000y\":\"a\"}}}",
                                "{\"spec\":{\"x\":NaN}}",
                                "{\"metadata\":{\"x\":Infinity}}",
                                "{\"spec\":{\"x\":[1,-Infinity]}}",
                                "{\"spec\":{\"x\":1e999}}"};
    for (size_t i = 0; i < sizeof(unreadable) / sizeof(unreadable[0]); i++) {
        o = request_json("PATCH", "/api/v1/namespaces/default", unreadable[i], MERGE_HDR, &st);
        assert_status(o, st, 400, "BadRequest");
        json_object_put(o);
        o = request_json("PATCH", MM "/demo", unreadable[i], MERGE_HDR, &st);
        assert_status(o, st, 400, "BadRequest");
        json_object_put(o);
    }
    o = request_json("GET", "/api/v1/namespaces/default", NULL, NULL, &st);
    assert_int_equal(st, 200);
    assert_null(json_object_object_get(json_object_object_get(o, "metadata"), "x"));
    /* Only the label every Namespace has (its name): none of the
     * refused patches' got in. */
    json_object *ns_labels =
        json_object_object_get(json_object_object_get(o, "metadata"), "labels");
    assert_int_equal(json_object_object_length(ns_labels), 1);
    assert_non_null(json_object_object_get(ns_labels, "kubernetes.io/metadata.name"));
    json_object_put(o);

    o = request_json("GET", MM "?limit=x", NULL, NULL, &st);
    assert_status(o, st, 400, "BadRequest");
    json_object_put(o);
    o = request_json("GET", MM "?labelSelector=a%20in%20(b", NULL, NULL, &st);
    assert_status(o, st, 400, "BadRequest");
    json_object_put(o);
    o = request_json("POST", "/apis/bindery.dev/v1alpha1/namespaces/nowhere/modulemanifests", body,
                     JSON_HDR, &st);
    assert_status(o, st, 404, "NotFound");
    assert_string_equal(jstr(o, "message"), "namespaces \"nowhere\" not found");
    json_object_put(o);
    o = request_json("GET", "/apis/nothing.dev/v1/foos", NULL, NULL, &st);
    assert_status(o, st, 404, "NotFound");
    json_object_put(o);
    o = request_json("GET", MM "?watch=1&sendInitialEvents=true", NULL, NULL, &st);
    assert_status(o, st, 422, "Invalid");
    json_object_put(o);

    /* dryRun=All persists nothing. */
    o = request_json("POST", MM "?dryRun=All",
                     "{\"metadata\":{\"name\":\"dry\"},\"spec\":{\"ports\":[{\"name\":\"g\","
                     "\"containerPort\":1}],\"local\":{\"command\":\"x\"}}}",
                     JSON_HDR, &st);
    assert_int_equal(st, 201);
    json_object_put(o);
    o = request_json("GET", MM "/dry", NULL, NULL, &st);
    assert_status(o, st, 404, "NotFound");
    json_object_put(o);

    /* Strategic merge patches of shapes it cannot take: a 400, and the
     * server lives on (a non-object metadata used to abort it). */
    o = request_json("POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases",
                     "{\"metadata\":{\"name\":\"smp\"},\"spec\":{\"holderIdentity\":\"a\"}}",
                     JSON_HDR, &st);
    assert_int_equal(st, 201);
    json_object_put(o);
    const char *bad_smp[] = {"{\"metadata\":\"x\"}", "{\"metadata\":[]}", "[]", "1", "true"};
    for (size_t i = 0; i < sizeof(bad_smp) / sizeof(bad_smp[0]); i++) {
        o = request_json("PATCH", "/apis/coordination.k8s.io/v1/namespaces/default/leases/smp",
                         bad_smp[i], smp, &st);
        assert_status(o, st, 400, "BadRequest");
        json_object_put(o);
    }
    o = request_json("GET", "/apis/coordination.k8s.io/v1/namespaces/default/leases/smp", NULL,
                     NULL, &st);
    assert_int_equal(st, 200);
    json_object_put(o);

    /* Delete preconditions. */
    o = request_json("DELETE", MM "/demo", "{\"preconditions\":{\"uid\":\"not-it\"}}", JSON_HDR,
                     &st);
    assert_status(o, st, 409, "Conflict");
    json_object_put(o);
    o = request_json("DELETE", MM "/demo", "{\"propagationPolicy\":\"Sideways\"}", JSON_HDR, &st);
    assert_status(o, st, 400, "BadRequest");
    json_object_put(o);
    /* A Lease removed answers a Status, as the API server's do (only pods,
     * namespaces and CRDs answer with the object). */
    o = request_json("DELETE", "/apis/coordination.k8s.io/v1/namespaces/default/leases/smp", NULL,
                     NULL, &st);
    assert_int_equal(st, 200);
    assert_string_equal(jstr(o, "kind"), "Status");
    assert_string_equal(jstr(o, "status"), "Success");
    assert_string_equal(jstr(json_object_object_get(o, "details"), "name"), "smp");
    json_object_put(o);
}

static void test_wire_table_and_list(void **state)
{
    (void)state;
    const char *table[] = {"Accept: application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
                           NULL};
    bb_response r = bb_request(&srv, "GET",
                               "/apis/bindery.dev/v1alpha1/namespaces/default/worldinstances"
                               "?limit=500",
                               NULL, table);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.headers, "application/json;as=Table;v=v1;g=meta.k8s.io"));
    json_object *t = json_tokener_parse(r.body);
    bb_response_free(&r);
    assert_string_equal(jstr(t, "kind"), "Table");
    json_object *cols = json_object_object_get(t, "columnDefinitions");
    assert_string_equal(jstr(json_object_array_get_idx(cols, 0), "name"), "Name");
    assert_string_equal(jstr(json_object_array_get_idx(cols, 1), "name"), "Pool");
    json_object *rows = json_object_object_get(t, "rows");
    assert_true(json_object_array_length(rows) >= 2);
    json_object *row0 = json_object_array_get_idx(rows, 0);
    json_object *obj = json_object_object_get(row0, "object");
    assert_string_equal(jstr(obj, "kind"), "PartialObjectMetadata");
    json_object_put(t);

    /* Paging: constant RV, continue, empty continue on the last page. */
    long st = 0;
    json_object *p1 = request_json("GET", MM "?limit=1", NULL, NULL, &st);
    assert_int_equal(st, 200);
    assert_string_equal(jstr(p1, "kind"), "ModuleManifestList");
    json_object *m1 = json_object_object_get(p1, "metadata");
    const char *cont = jstr(m1, "continue");
    assert_true(cont != NULL && cont[0] != '\0');
    char path[1200];
    snprintf(path, sizeof(path), MM "?limit=1000&continue=%s", cont);
    json_object *p2 = request_json("GET", path, NULL, NULL, &st);
    assert_int_equal(st, 200);
    json_object *m2 = json_object_object_get(p2, "metadata");
    assert_string_equal(jstr(m1, "resourceVersion"), jstr(m2, "resourceVersion"));
    assert_string_equal(jstr(m2, "continue"), "");
    json_object_put(p2);
    json_object_put(p1);

    json_object *empty = request_json("GET", "/api/v1/namespaces/default/pods", NULL, NULL, &st);
    assert_int_equal(st, 200);
    assert_true(json_object_is_type(json_object_object_get(empty, "items"), json_type_array));
    json_object_put(empty);

    /* Discovery: aggregated when asked, with the response type kubectl checks. */
    const char *agg[] = {"Accept: application/json;g=apidiscovery.k8s.io;v=v2;as="
                         "APIGroupDiscoveryList,application/json",
                         NULL};
    r = bb_request(&srv, "GET", "/apis", NULL, agg);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.headers, "as=APIGroupDiscoveryList"));
    assert_non_null(strstr(r.body, "\"singularResource\":\"worldinstance\""));
    bb_response_free(&r);
}

/* A watch that falls behind the retained history gets a 410 ERROR event;
 * relisting and watching from the list's resourceVersion recovers. */
static void test_watch_expired_and_relist(void **state)
{
    (void)state;
    long st = 0;
    json_object *l = request_json("GET", MM "?limit=1", NULL, NULL, &st);
    char old_rv[32];
    char cont[600];
    snprintf(old_rv, sizeof(old_rv), "%s",
             jstr(json_object_object_get(l, "metadata"), "resourceVersion"));
    snprintf(cont, sizeof(cont), "%s", jstr(json_object_object_get(l, "metadata"), "continue"));
    json_object_put(l);
    /* More writes than the history (100) holds. */
    for (int i = 0; i < 120; i++) {
        char body[128];
        snprintf(body, sizeof(body), "{\"metadata\":{\"annotations\":{\"n\":\"%d\"}}}", i);
        json_object *o = request_json("PATCH", MM "/demo", body, MERGE_HDR, &st);
        assert_int_equal(st, 200);
        json_object_put(o);
    }
    char path[1200];
    snprintf(path, sizeof(path), MM "?limit=1&continue=%s", cont);
    json_object *o = request_json("GET", path, NULL, NULL, &st);
    assert_status(o, st, 410, "Expired");
    json_object_put(o);

    snprintf(path, sizeof(path), MM "?watch=1&resourceVersion=%s&timeoutSeconds=5", old_rv);
    bb_response r = bb_request(&srv, "GET", path, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.headers, "chunked"));
    json_object *ev = json_tokener_parse(r.body);
    bb_response_free(&r);
    assert_string_equal(jstr(ev, "type"), "ERROR");
    json_object *status = json_object_object_get(ev, "object");
    assert_string_equal(jstr(status, "reason"), "Expired");
    assert_int_equal(json_object_get_int(json_object_object_get(status, "code")), 410);
    /* As the API server says it: the version asked for, then the oldest
     * one still kept. */
    unsigned long long asked = 0;
    unsigned long long oldest = 0;
    assert_int_equal(
        sscanf(jstr(status, "message"), "too old resource version: %llu (%llu)", &asked, &oldest),
        2);
    assert_int_equal(asked, strtoull(old_rv, NULL, 10));
    assert_true(oldest > asked);
    json_object_put(ev);

    /* Relist, change, watch from the list RV: the change arrives. */
    l = request_json("GET", MM, NULL, NULL, &st);
    char rv[32];
    snprintf(rv, sizeof(rv), "%s", jstr(json_object_object_get(l, "metadata"), "resourceVersion"));
    json_object_put(l);
    assert_true(oldest < strtoull(rv, NULL, 10)); /* not the current one */
    o = request_json("PATCH", MM "/demo", "{\"metadata\":{\"labels\":{\"after\":\"relist\"}}}",
                     MERGE_HDR, &st);
    assert_int_equal(st, 200);
    json_object_put(o);
    snprintf(path, sizeof(path),
             MM "?watch=1&resourceVersion=%s&timeoutSeconds=2&allowWatchBookmarks=true", rv);
    r = bb_request(&srv, "GET", path, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"type\":\"MODIFIED\""));
    assert_non_null(strstr(r.body, "\"after\":\"relist\""));
    assert_null(strstr(r.body, "ERROR"));
    bb_response_free(&r);

    /* A watch from past the store's resourceVersion (its data restored
     * from a backup, say) would miss every change until the store caught
     * up: refused, as Kubernetes refuses it, so the client lists again. */
    snprintf(path, sizeof(path), MM "?watch=1&resourceVersion=%llu&timeoutSeconds=2",
             strtoull(rv, NULL, 10) + 1000000);
    o = request_json("GET", path, NULL, NULL, &st);
    assert_status(o, st, 504, "Timeout");
    json_object *causes = json_object_object_get(json_object_object_get(o, "details"), "causes");
    assert_string_equal(jstr(json_object_array_get_idx(causes, 0), "reason"),
                        "ResourceVersionTooLarge");
    json_object_put(o);

    /* A resourceVersion that is no number is refused with sendInitialEvents too. */
    o = request_json("GET",
                     MM "?watch=1&sendInitialEvents=true&allowWatchBookmarks=true&"
                        "resourceVersion=abc",
                     NULL, NULL, &st);
    assert_status(o, st, 400, "BadRequest");
    json_object_put(o);

    /* sendInitialEvents: ADDED for each, then the initial-events-end BOOKMARK. */
    r = bb_request(&srv, "GET",
                   MM "?watch=1&sendInitialEvents=true&allowWatchBookmarks=true&"
                      "resourceVersionMatch=NotOlderThan&timeoutSeconds=1",
                   NULL, NULL);
    assert_int_equal(r.status, 200);
    char *added = strstr(r.body, "\"type\":\"ADDED\"");
    char *mark = strstr(r.body, "k8s.io/initial-events-end");
    assert_non_null(added);
    assert_non_null(mark);
    assert_true(added < mark);
    bb_response_free(&r);

    /* A watch of one named object streams that object's events only. */
    r = bb_request(&srv, "GET", MM "/demo?watch=1&timeoutSeconds=1", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"type\":\"ADDED\""));
    assert_non_null(strstr(r.body, "\"name\":\"demo\""));
    assert_null(strstr(r.body, "watched-one"));
    bb_response_free(&r);

    /* A watch from "now" over more objects than one page of its initial
     * list (500): every object once, then the live events. */
    l = request_json("GET", MM, NULL, NULL, &st);
    size_t before = json_object_array_length(json_object_object_get(l, "items"));
    json_object_put(l);
    enum { MANY = 620 };
    for (int i = 0; i < MANY; i++) {
        char body[256];
        snprintf(body, sizeof(body),
                 "{\"metadata\":{\"name\":\"paged-%03d\"},\"spec\":{\"ports\":[{\"name\":"
                 "\"g\",\"containerPort\":1}],\"local\":{\"command\":\"x\"}}}",
                 i);
        o = request_json("POST", MM, body, JSON_HDR, &st);
        assert_int_equal(st, 201);
        json_object_put(o);
    }
    r = bb_request(&srv, "GET", MM "?watch=1&timeoutSeconds=2", NULL, NULL);
    assert_int_equal(r.status, 200);
    size_t nadded = 0;
    for (const char *p = r.body; (p = strstr(p, "\"type\":\"ADDED\"")) != NULL; p++)
        nadded++;
    assert_int_equal(nadded, before + MANY);
    assert_non_null(strstr(r.body, "\"name\":\"paged-000\""));
    assert_non_null(strstr(r.body, "\"name\":\"paged-619\""));
    assert_null(strstr(r.body, "ERROR"));
    bb_response_free(&r);

    /* kubectl (a reflector for delete --wait) works after all this. */
    expect_kubectl("deleted", "delete mm watched-one");
}

#define LEASES "/apis/coordination.k8s.io/v1/namespaces/default/leases"
#define LEASE_COUNT 1200 /* three initial pages of 500 */

typedef struct lease_writer {
    volatile bool stop;
    int writes;
} lease_writer;

/* Changes leases of the later pages, over and over: fewer changes in all
 * than the server's watch history holds (watchHistory: 100), so that the
 * watch cannot expire however slowly its pages are read (it did, under
 * the load of the whole suite, with a writer that never paused). */
#define LEASE_WRITES_MAX 90
static void *write_leases(void *arg)
{
    lease_writer *lw = arg;
    for (int i = 0; i < LEASE_WRITES_MAX && !lw->stop; i++) {
        struct timespec pause = {0, 2 * 1000000L};
        nanosleep(&pause, NULL);
        char path[128];
        char body[96];
        snprintf(path, sizeof(path), LEASES "/l-%04d", 600 + i % (LEASE_COUNT - 600));
        snprintf(body, sizeof(body), "{\"spec\":{\"holderIdentity\":\"h%d\"}}", i);
        bb_response r = bb_request(&srv, "PATCH", path, body, MERGE_HDR);
        lw->writes += r.status == 200;
        bb_response_free(&r);
    }
    return NULL;
}

/* A watch with sendInitialEvents over several pages while objects change:
 * every object is ADDED before the initial-events-end bookmark, and no
 * event names an object the client was never given. Every page shows the
 * objects as of the watch's version, and the watch delivers the changes
 * after it (an object changed while the pages were read used to come as
 * MODIFIED after the bookmark, which made a WatchList client drop it, then
 * see it modified). */
static void test_initial_events_while_objects_change(void **state)
{
    (void)state;
    for (int i = 0; i < LEASE_COUNT; i++) {
        char body[128];
        long st = 0;
        snprintf(body, sizeof(body),
                 "{\"metadata\":{\"name\":\"l-%04d\"},\"spec\":{\"holderIdentity\":\"a\"}}", i);
        json_object_put(request_json("POST", LEASES, body, JSON_HDR, &st));
        assert_int_equal(st, 201);
    }
    lease_writer lw = {0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, write_leases, &lw), 0);
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
    bb_response r = bb_request(&srv, "GET",
                               LEASES "?watch=1&sendInitialEvents=true&allowWatchBookmarks=true&"
                                      "resourceVersionMatch=NotOlderThan&timeoutSeconds=2",
                               NULL, NULL);
    lw.stop = true;
    pthread_join(t, NULL);
    assert_int_equal(r.status, 200);
    assert_true(lw.writes > 0);
    json_object *given = json_object_new_object(); /* names the client has */
    int before_end = -1;                           /* objects given at the bookmark */
    int strays = 0;                                /* events for objects never given */
    for (char *line = r.body, *next; line != NULL && *line != '\0'; line = next) {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        json_object *ev = json_tokener_parse(line);
        assert_non_null(ev);
        const char *type = jstr(ev, "type");
        json_object *obj = json_object_object_get(ev, "object");
        const char *name = jstr(json_object_object_get(obj, "metadata"), "name");
        if (strcmp(type, "ERROR") == 0 || (name == NULL && strcmp(type, "BOOKMARK") != 0))
            fail_msg("unexpected watch event: %s", line);
        if (strcmp(type, "BOOKMARK") == 0) {
            if (before_end < 0 && strstr(line, "k8s.io/initial-events-end") != NULL)
                before_end = json_object_object_length(given);
        } else if (strcmp(type, "ADDED") == 0) {
            /* Leases of earlier tests are in the namespace too. */
            if (strncmp(name, "l-", 2) == 0)
                json_object_object_add(given, name, NULL);
        } else if (strncmp(name, "l-", 2) == 0 && !json_object_object_get_ex(given, name, NULL)) {
            strays++;
        }
        json_object_put(ev);
    }
    json_object_put(given);
    bb_response_free(&r);
    assert_int_equal(before_end, LEASE_COUNT);
    assert_int_equal(strays, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kubeconfig_and_api_resources),
        cmocka_unit_test(test_apply_crds_and_manifests),
        cmocka_unit_test(test_custom_columns_with_filters),
        cmocka_unit_test(test_get_wi_columns_with_claim),
        cmocka_unit_test(test_describe_shows_events),
        cmocka_unit_test(test_label_annotate_patch),
        cmocka_unit_test(test_generate_name_and_finalizer_delete),
        cmocka_unit_test(test_secrets_and_configmaps),
        cmocka_unit_test(test_delete_namespace),
        cmocka_unit_test(test_watch_prints_changes_and_survives_idle),
        cmocka_unit_test(test_wire_errors),
        cmocka_unit_test(test_wire_table_and_list),
        cmocka_unit_test(test_watch_expired_and_relist),
        cmocka_unit_test(test_initial_events_while_objects_change),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
