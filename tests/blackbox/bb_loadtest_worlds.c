/* Black-box test of bindery-load-test --worlds against the Kubernetes API of
 * a real bindery (bench runtime, so worlds become Ready without processes):
 * every world created becomes Ready on the watch, every one is deleted, and
 * --keep leaves them labelled for the operator; the same run through a
 * kubeconfig. Until bindery serves /apis/bindery.dev/v1alpha1 the test exits
 * 77, which CTest reports as skipped (never as passed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"
#include "loadtest.h"
#include "loadtool.h"

#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API "/apis/bindery.dev/v1alpha1"

static bb_server srv;
static bool api_missing;

static int group_setup(void **state)
{
    (void)state;
    bb_init(&srv, "manifests: [manifests]\n"
                  "runtime: {kind: bench, benchReadyDelayMs: 100}\n"
                  "pools:\n  - name: arena\n    manifest: arena\n    minWarm: 2\n");
    bb_write(&srv, "manifests/arena.yaml",
             "apiVersion: bindery.dev/v1alpha1\nkind: ModuleManifest\n"
             "metadata: {name: arena, namespace: default}\n"
             "spec:\n  ports: [{name: game, containerPort: 7777, protocol: UDP}]\n"
             "  local: {command: /bin/true}\n");
    if (!bb_start(&srv, NULL))
        return -1;
    bb_response r = bb_request(&srv, "GET", API, NULL, NULL);
    api_missing = r.status == 404;
    bb_response_free(&r);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    bb_cleanup(&srv);
    return 0;
}

static int64_t jint(json_object *o, const char *k)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, k, &v))
        fail_msg("report has no %s", k);
    return json_object_get_int64(v);
}

#define LOAD_TEST_LABEL "bindery.dev%2Fload-test"

/* Number of WorldInstances in default that the label selector (URL-
 * encoded) picks. */
static size_t worlds_with(const char *selector)
{
    char path[256];
    snprintf(path, sizeof(path), API "/namespaces/default/worldinstances?labelSelector=%s",
             selector);
    bb_response r = bb_request(&srv, "GET", path, NULL, NULL);
    assert_int_equal(r.status, 200);
    json_object *l = json_tokener_parse(r.body);
    size_t n = json_object_array_length(json_object_object_get(l, "items"));
    json_object_put(l);
    bb_response_free(&r);
    return n;
}

static json_object *run_worlds(const char *const *extra, int want_exit)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", srv.port);
    const char *args[32] = {"--worlds", "20",         "--namespace", "default",
                            "--json",   "--progress", "off"};
    int n = 7;
    bool has_target = false;
    for (int i = 0; extra[i] != NULL; i++) {
        has_target = has_target || strcmp(extra[i], "--kubeconfig") == 0;
        args[n++] = extra[i];
    }
    if (!has_target) {
        args[n++] = "--server";
        args[n++] = url;
    }
    args[n] = NULL;
    lt_result r = lt_run(srv.dir, args, 180);
    if (r.code != want_exit)
        fail_msg("exit %d (want %d): %s %s", r.code, want_exit, r.err, r.out);
    json_object *rep = json_tokener_parse(r.out);
    if (rep == NULL)
        fail_msg("report is not JSON: %s", r.out);
    lt_result_free(&r);
    return rep;
}

static void test_worlds_ready_and_cleaned_up(void **state)
{
    (void)state;
    json_object *rep = run_worlds((const char *const[]){"--concurrency", "5", NULL}, 0);
    assert_int_equal(jint(rep, "count"), 20);
    assert_int_equal(jint(rep, "ok"), 20);
    assert_int_equal(jint(rep, "ready"), 20);
    assert_int_equal(jint(rep, "timed_out"), 0);
    assert_int_equal(jint(rep, "deleted"), 20);
    assert_int_equal(jint(rep, "left"), 0);
    json_object *st = json_object_object_get(rep, "startup");
    assert_int_equal(jint(st, "count"), 20);
    /* benchReadyDelayMs is 100: no world can be Ready sooner. */
    assert_true(json_object_get_double(json_object_object_get(st, "min_ms")) >= 100);
    json_object_put(rep);
    assert_int_equal(worlds_with(LOAD_TEST_LABEL), 0);
}

static void test_keep_and_kubeconfig(void **state)
{
    (void)state;
    char kc[512];
    snprintf(kc, sizeof(kc),
             "apiVersion: v1\nkind: Config\ncurrent-context: local\n"
             "clusters: [{name: b, cluster: {server: 'http://127.0.0.1:%u'}}]\n"
             "users: [{name: u, user: {}}]\n"
             "contexts: [{name: local, context: {cluster: b, user: u, namespace: default}}]\n",
             srv.port);
    bb_write(&srv, "kubeconfig", kc);
    char path[200];
    snprintf(path, sizeof(path), "%s/kubeconfig", srv.dir);
    json_object *rep =
        run_worlds((const char *const[]){"--kubeconfig", path, "--keep", "--rate", "50", NULL}, 0);
    assert_int_equal(jint(rep, "ready"), 20);
    assert_int_equal(jint(rep, "left"), 20);
    json_object_put(rep);
    assert_int_equal(worlds_with(LOAD_TEST_LABEL), 20);
    /* None says a pool made it (bindery.dev/pool): bindery takes such a
     * world of a pool it is not configured with for an orphan and deletes
     * it after 5 minutes, under a longer run or a --keep. */
    assert_int_equal(worlds_with("bindery.dev%2Fload-test,bindery.dev%2Fpool"), 0);
    /* The operator's cleanup: delete by the label. */
    bb_response r = bb_request(&srv, "GET",
                               API "/namespaces/default/worldinstances?labelSelector="
                                   "bindery.dev%2Fload-test",
                               NULL, NULL);
    json_object *l = json_tokener_parse(r.body);
    bb_response_free(&r);
    json_object *items = json_object_object_get(l, "items");
    for (size_t i = 0; i < json_object_array_length(items); i++) {
        const char *name = json_object_get_string(json_object_object_get(
            json_object_object_get(json_object_array_get_idx(items, i), "metadata"), "name"));
        char p[512];
        snprintf(p, sizeof(p), API "/namespaces/default/worldinstances/%s", name);
        bb_response d = bb_request(&srv, "DELETE", p, NULL, NULL);
        assert_true(d.status == 200 || d.status == 202);
        bb_response_free(&d);
    }
    json_object_put(l);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (group_setup(NULL) != 0) {
        fprintf(stderr, "bindery did not start\n");
        bb_cleanup_all();
        return 1;
    }
    if (api_missing) {
        fprintf(stderr,
                "SKIPPED: this bindery does not serve the Kubernetes API (%s is 404); "
                "bindery-load-test --worlds needs it\n",
                API);
        group_teardown(NULL);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worlds_ready_and_cleaned_up),
        cmocka_unit_test(test_keep_and_kubeconfig),
    };
    int rc = cmocka_run_group_tests(tests, NULL, group_teardown);
    bb_cleanup_all();
    return rc;
}
