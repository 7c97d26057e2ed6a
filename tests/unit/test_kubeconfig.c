/* Unit tests for reconciler/kubeconfig.c: contexts, clusters and users;
 * inline base64 data and files relative to the kubeconfig's folder;
 * tokenFile; insecure-skip-tls-verify; $KUBECONFIG merging (first wins);
 * in-cluster configuration; and clear errors for what is missing or
 * unsupported. */
#include "bindery/kubeconfig.h"
#include "bindery/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static char dir[64];

static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/bdy-kc-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* "-----BEGIN CERTIFICATE-----\nabc\n" in base64. */
#define CA_B64 "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCmFiYwo="
#define CA_TEXT "-----BEGIN CERTIFICATE-----\nabc\n"

static const char two_contexts[] = "apiVersion: v1\n"
                                   "kind: Config\n"
                                   "current-context: local\n"
                                   "clusters:\n"
                                   "- name: bindery\n"
                                   "  cluster:\n"
                                   "    server: http://127.0.0.1:7780/\n"
                                   "- name: prod\n"
                                   "  cluster:\n"
                                   "    server: https://10.0.0.1:6443\n"
                                   "    certificate-authority-data: " CA_B64 "\n"
                                   "    tls-server-name: kubernetes\n"
                                   "users:\n"
                                   "- name: me\n"
                                   "  user:\n"
                                   "    token: abc123\n"
                                   "- name: admin\n"
                                   "  user:\n"
                                   "    client-certificate-data: " CA_B64 "\n"
                                   "    client-key-data: " CA_B64 "\n"
                                   "contexts:\n"
                                   "- name: local\n"
                                   "  context: {cluster: bindery, user: me, namespace: games}\n"
                                   "- name: prod\n"
                                   "  context: {cluster: prod, user: admin}\n";

static void test_current_and_named_context(void **state)
{
    (void)state;
    bdy_kubeconfig kc;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_kubeconfig_parse(two_contexts, strlen(two_contexts), "/x", NULL, &kc, &eb),
                     0);
    assert_string_equal(kc.context, "local");
    assert_string_equal(kc.server, "http://127.0.0.1:7780"); /* trailing slash cut */
    assert_string_equal(kc.namespace_, "games");
    assert_string_equal(kc.token, "abc123");
    assert_null(kc.ca_pem);
    assert_false(kc.insecure);
    bdy_kubeconfig_free(&kc);

    assert_int_equal(
        bdy_kubeconfig_parse(two_contexts, strlen(two_contexts), "/x", "prod", &kc, &eb), 0);
    assert_string_equal(kc.server, "https://10.0.0.1:6443");
    assert_null(kc.namespace_);
    assert_null(kc.token);
    assert_int_equal(kc.ca_pem_len, strlen(CA_TEXT));
    assert_memory_equal(kc.ca_pem, CA_TEXT, kc.ca_pem_len);
    assert_int_equal(kc.cert_pem_len, strlen(CA_TEXT));
    assert_int_equal(kc.key_pem_len, strlen(CA_TEXT));
    assert_string_equal(kc.tls_server_name, "kubernetes");
    bdy_kubeconfig_free(&kc);
    bdy_kubeconfig_free(NULL);
}

static void expect_error(const char *text, const char *context, int code, const char *needle)
{
    bdy_kubeconfig kc;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy_kubeconfig_parse(text, strlen(text), NULL, context, &kc, &eb);
    if (rc != code || strstr(eb.message, needle) == NULL)
        fail_msg("want %d with \"%s\", got %d \"%s\"", code, needle, rc, eb.message);
    assert_null(kc.server); /* nothing half-filled on error */
}

static void test_errors(void **state)
{
    (void)state;
    expect_error(two_contexts, "nope", BDY_EINVAL, "context \"nope\" not found");
    expect_error("clusters: []\n", NULL, BDY_EINVAL, "no current-context");
    expect_error("current-context: a\ncontexts:\n- name: a\n  context: {cluster: c}\n", NULL,
                 BDY_EINVAL, "cluster \"c\" (context \"a\") not found");
    expect_error("current-context: a\ncontexts:\n- name: a\n  context: {user: u}\n", NULL,
                 BDY_EINVAL, "no cluster");
    expect_error("current-context: a\ncontexts:\n- name: a\n  context: {cluster: c}\n"
                 "clusters:\n- name: c\n  cluster: {server: 'ftp://x'}\n",
                 NULL, BDY_EINVAL, "not an http(s) URL");
    expect_error("current-context: a\ncontexts:\n- name: a\n  context: {cluster: c}\n"
                 "clusters:\n- name: c\n  cluster: {}\n",
                 NULL, BDY_EINVAL, "no server");
    expect_error("current-context: a\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\n"
                 "clusters:\n- name: c\n  cluster: {server: 'https://h'}\n",
                 NULL, BDY_EINVAL, "user \"u\" (context \"a\") not found");
    expect_error("current-context: a\ncontexts:\n- name: a\n  context: {cluster: c}\n"
                 "clusters:\n- name: c\n  cluster: {server: 'https://h', "
                 "certificate-authority-data: 'not*base64'}\n",
                 NULL, BDY_EINVAL, "not valid base64");
    expect_error("current-context: a\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\n"
                 "clusters:\n- name: c\n  cluster: {server: 'https://h'}\n"
                 "users:\n- name: u\n  user:\n    exec: {command: aws}\n",
                 NULL, BDY_EUNSUPPORTED, "credential plugins");
    expect_error("- just\n- a list\n", NULL, BDY_EPARSE, "not a YAML mapping");
    expect_error("a: [unclosed\n", NULL, BDY_EPARSE, "line");
}

static void test_files_relative_and_token_file(void **state)
{
    (void)state;
    write_file("ca.pem", CA_TEXT);
    write_file("token", "  sekrit-token \n\n");
    char text[1024];
    snprintf(text, sizeof(text),
             "current-context: c\n"
             "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
             "clusters: [{name: k, cluster: {server: 'https://h:6443', "
             "certificate-authority: ca.pem, insecure-skip-tls-verify: true}}]\n"
             "users: [{name: u, user: {tokenFile: token}}]\n");
    write_file("config", text);
    char path[256];
    snprintf(path, sizeof(path), "%s/config", dir);
    bdy_kubeconfig kc;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_kubeconfig_load(path, NULL, &kc, &eb), 0);
    char want[256];
    snprintf(want, sizeof(want), "%s/ca.pem", dir);
    assert_string_equal(kc.ca_file, want);
    assert_string_equal(kc.ca_pem, CA_TEXT);
    assert_true(kc.insecure);
    assert_string_equal(kc.token, "  sekrit-token"); /* trailing space and newlines cut */
    /* A rotated token is picked up. */
    write_file("token", "next-token\n");
    assert_int_equal(bdy_kubeconfig_reload_token(&kc, &eb), 0);
    assert_string_equal(kc.token, "next-token");
    bdy_kubeconfig_free(&kc);

    /* A missing referenced file is an error naming it. */
    write_file("config2", "current-context: c\n"
                          "contexts: [{name: c, context: {cluster: k}}]\n"
                          "clusters: [{name: k, cluster: {server: 'https://h', "
                          "certificate-authority: missing.pem}}]\n");
    snprintf(path, sizeof(path), "%s/config2", dir);
    assert_int_equal(bdy_kubeconfig_load(path, NULL, &kc, &eb), BDY_ENOTFOUND);
    assert_non_null(strstr(eb.message, "missing.pem"));
}

static void test_merge_first_wins(void **state)
{
    (void)state;
    write_file("a", "current-context: one\n"
                    "clusters: [{name: k, cluster: {server: 'http://first:1'}}]\n");
    write_file("b", "current-context: two\n"
                    "contexts: [{name: one, context: {cluster: k, namespace: fromb}},"
                    " {name: two, context: {cluster: k}}]\n"
                    "clusters: [{name: k, cluster: {server: 'http://second:2'}}]\n");
    char paths[512];
    /* A missing file in the list is skipped, as kubectl does. */
    snprintf(paths, sizeof(paths), "%s/a:%s/none:%s/b", dir, dir, dir);
    bdy_kubeconfig kc;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_kubeconfig_load(paths, NULL, &kc, &eb), 0);
    assert_string_equal(kc.context, "one");
    assert_string_equal(kc.server, "http://first:1");
    assert_string_equal(kc.namespace_, "fromb");
    bdy_kubeconfig_free(&kc);
    snprintf(paths, sizeof(paths), "%s/none1:%s/none2", dir, dir);
    assert_int_equal(bdy_kubeconfig_load(paths, NULL, &kc, &eb), BDY_ENOTFOUND);
}

static void test_in_cluster(void **state)
{
    (void)state;
    unsetenv("KUBERNETES_SERVICE_HOST");
    bdy_kubeconfig kc;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_kubeconfig_in_cluster(dir, &kc, &eb), BDY_ENOTFOUND);
    write_file("ca.crt", CA_TEXT);
    write_file("token", "sa-token\n");
    write_file("namespace", "games\n");
    setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    unsetenv("POD_NAMESPACE");
    assert_int_equal(bdy_kubeconfig_in_cluster(dir, &kc, &eb), 0);
    assert_string_equal(kc.server, "https://[fd00::1]:443");
    assert_string_equal(kc.token, "sa-token");
    assert_string_equal(kc.namespace_, "games");
    assert_string_equal(kc.ca_pem, CA_TEXT);
    bdy_kubeconfig_free(&kc);
    unsetenv("KUBERNETES_SERVICE_HOST");
}

static void test_base64(void **state)
{
    (void)state;
    char *out = NULL;
    size_t n = 0;
    assert_int_equal(bdy_base64_decode("aGVs\nbG8=", 9, &out, &n), 0);
    assert_int_equal(n, 5);
    assert_string_equal(out, "hello");
    free(out);
    assert_int_equal(bdy_base64_decode("aGVsbG8", 7, &out, &n), 0); /* padding optional */
    assert_string_equal(out, "hello");
    free(out);
    assert_int_equal(bdy_base64_decode("", 0, &out, &n), 0);
    assert_int_equal(n, 0);
    free(out);
    assert_int_equal(bdy_base64_decode("aGV$", 4, &out, &n), BDY_EINVAL);
    assert_int_equal(bdy_base64_decode("aG=Vs", 5, &out, &n), BDY_EINVAL);
    assert_int_equal(bdy_base64_decode("a", 1, &out, &n), BDY_EINVAL); /* cut short */
    assert_null(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_current_and_named_context),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_files_relative_and_token_file),
        cmocka_unit_test(test_merge_first_wins),
        cmocka_unit_test(test_in_cluster),
        cmocka_unit_test(test_base64),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
