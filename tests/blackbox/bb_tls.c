/* Black-box tests of the HTTP API over TLS: HTTPS only, bearer tokens and
 * client certificates (which the token file's commonName entries grant
 * verbs and namespaces), certificate rotation on SIGHUP, kubectl through
 * the kubeconfig `bindery kubeconfig` prints, and what check-config
 * refuses. Certificates are made for each run (testcerts.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"
#include "testcerts.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TOKEN "matchmaker-secret"

static const char manifest[] =
    "apiVersion: bindery.dev/v1alpha1\nkind: ModuleManifest\n"
    "metadata: {name: arena, namespace: default}\n"
    "spec:\n  ports: [{name: game, containerPort: 7777, protocol: UDP}]\n"
    "  local: {command: /bin/true}\n";

static const char tls_config[] =
    "manifests: [manifests]\n"
    "runtime: {kind: bench, benchReadyDelayMs: 0}\n"
    "auth: {tokenFile: tokens.yaml}\n"
    "tls: {certFile: server.crt, keyFile: server.key, clientCAFile: clients.crt}\n"
    "pools:\n  - name: arena\n    manifest: arena\n    minWarm: 3\n    maxWarm: 3\n";

/* Rewrites the config as tls_config has it, with manifests from folder and
 * tls_line for its tls section ("" for none). */
static void write_config(bb_server *s, const char *folder, const char *tls_line)
{
    char text[1024];
    snprintf(text, sizeof(text),
             "manifests: [%s]\n"
             "runtime: {kind: bench, benchReadyDelayMs: 0}\n"
             "auth: {tokenFile: tokens.yaml}\n"
             "%s"
             "pools:\n  - name: arena\n    manifest: arena\n    minWarm: 3\n    maxWarm: 3\n",
             folder, tls_line);
    bb_write(s, "bindery.yaml", text);
}

/* Makes the PKI in the server's folder: CA "ca" (server and clients),
 * another CA "other", the server's certificate, and clients: lobby (in the
 * token file), stranger (not), old (lobby, expired), rogue (lobby, of the
 * other CA). */
static void make_pki(bb_server *s)
{
    assert_int_equal(testcert_make_ca(s->dir, "ca", "Bindery test CA"), 0);
    assert_int_equal(testcert_make_ca(s->dir, "other", "Other CA"), 0);
    assert_int_equal(
        testcert_make_leaf(s->dir, "server", "localhost", NULL, "ca", TESTCERT_SERVER, -60, 86400),
        0);
    assert_int_equal(
        testcert_make_leaf(s->dir, "lobby", "lobby", "games", "ca", TESTCERT_CLIENT, -60, 86400),
        0);
    assert_int_equal(
        testcert_make_leaf(s->dir, "stranger", "stranger", NULL, "ca", TESTCERT_CLIENT, -60, 86400),
        0);
    assert_int_equal(
        testcert_make_leaf(s->dir, "old", "lobby", NULL, "ca", TESTCERT_CLIENT, -7200, -3600), 0);
    assert_int_equal(
        testcert_make_leaf(s->dir, "rogue", "lobby", NULL, "other", TESTCERT_CLIENT, -60, 86400),
        0);
    assert_int_equal(testcert_append(s->dir, "clients.crt", "ca.crt"), 0);
}

/* The token file: a bearer token with every verb, and the client
 * certificate of common name "lobby", which may allocate and read in
 * default only. */
static void write_tokens(bb_server *s)
{
    char hash[128];
    char *out = NULL;
    int rc = bb_run(s, (const char *const[]){"hash-token", NULL}, TOKEN, &out);
    assert_int_equal(rc, 0);
    assert_int_equal(sscanf(out, "%64s", hash), 1);
    free(out);
    char text[1024];
    snprintf(text, sizeof(text),
             "tokens:\n"
             "  - name: matchmaker\n    sha256: %s\n    namespaces: [\"*\"]\n"
             "    verbs: [admin]\n"
             "  - name: lobby\n    commonName: lobby\n    namespaces: [default]\n"
             "    verbs: [allocate, read]\n",
             hash);
    bb_write(s, "tokens.yaml", text);
}

/* Client identity for the next requests: a certificate NAME of the PKI,
 * or none (NULL). */
static void present(bb_server *s, const char *name)
{
    if (name == NULL) {
        s->tls_cert[0] = s->tls_key[0] = '\0';
        return;
    }
    snprintf(s->tls_cert, sizeof(s->tls_cert), "%s/%s.crt", s->dir, name);
    snprintf(s->tls_key, sizeof(s->tls_key), "%s/%s.key", s->dir, name);
}

/* Waits (up to 30 s) until the pool has its 3 warm worlds. */
static void wait_warm(bb_server *s)
{
    for (int i = 0; i < 300; i++) {
        bb_response r = bb_request(s, "GET", "/v1/pools/default/arena", NULL,
                                   (const char *const[]){"Authorization: Bearer " TOKEN, NULL});
        bool warm = r.body != NULL && strstr(r.body, "\"warm\":3") != NULL;
        bb_response_free(&r);
        if (warm)
            return;
        usleep(100 * 1000);
    }
    fail_msg("the pool did not fill");
}

static void start_tls_server(bb_server *s)
{
    bb_init(s, tls_config);
    bb_write(s, "manifests/arena.yaml", manifest);
    make_pki(s);
    write_tokens(s);
    snprintf(s->tls_ca, sizeof(s->tls_ca), "%s/ca.crt", s->dir);
    assert_true(bb_start(s, NULL));
    assert_true(bb_log_contains(s, "with TLS", 0));
    assert_true(bb_log_contains(s, "client certificates of 1 CA asked for", 0));
    wait_warm(s);
}

/* The status and body of one request with the current identity. */
static long ask(bb_server *s, const char *method, const char *path, const char *body,
                const char *token, const char *want_in_body)
{
    char auth[128];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token != NULL ? token : "");
    const char *with_token[] = {"Content-Type: application/json", auth, NULL};
    const char *without[] = {"Content-Type: application/json", NULL};
    bb_response r = bb_request(s, method, path, body, token != NULL ? with_token : without);
    long status = r.status;
    bool lacks = want_in_body != NULL && (r.body == NULL || strstr(r.body, want_in_body) == NULL);
    char got[512];
    snprintf(got, sizeof(got), "%s", r.body != NULL ? r.body : "");
    bb_response_free(&r);
    if (lacks)
        fail_msg("%s %s: %ld %s lacks \"%s\"", method, path, status, got, want_in_body);
    return status;
}

static size_t discard_cb(char *p, size_t size, size_t n, void *data)
{
    (void)p;
    (void)data;
    return size * n;
}

/* GET /v1/pools on a handle kept across calls (so on one kept-alive
 * connection), presenting name's certificate. *connects: the connections
 * this call made (0: it reused the handle's). */
static long ask_on(CURL *c, bb_server *s, const char *name, long *connects)
{
    char url[128];
    char cert[300];
    char key[300];
    snprintf(url, sizeof(url), "https://127.0.0.1:%u/v1/pools", s->port);
    snprintf(cert, sizeof(cert), "%s/%s.crt", s->dir, name);
    snprintf(key, sizeof(key), "%s/%s.key", s->dir, name);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_CAINFO, s->tls_ca);
    curl_easy_setopt(c, CURLOPT_SSLCERT, cert);
    curl_easy_setopt(c, CURLOPT_SSLKEY, key);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_cb);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    long status = 0;
    *connects = -1;
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, connects);
    }
    return status;
}

static void test_https_tokens_and_client_certificates(void **state)
{
    (void)state;
    bb_server s;
    start_tls_server(&s);
    const char *claim = "{\"pool\":\"arena\",\"namespace\":\"default\"}";

    /* The certificate's expiry, for alerts: a day from now (testcerts). */
    bb_response m = bb_request(&s, "GET", "/metrics", NULL,
                               (const char *const[]){"Authorization: Bearer " TOKEN, NULL});
    const char *gauge = m.body != NULL
                            ? strstr(m.body, "\nbindery_tls_certificate_expiry_timestamp_seconds ")
                            : NULL;
    assert_non_null(gauge);
    double expiry = strtod(strchr(gauge + 1, ' ') + 1, NULL);
    double now = (double)time(NULL);
    if (expiry < now + 86000 || expiry > now + 86500)
        fail_msg("expiry gauge %.0f, now %.0f", expiry, now);
    bb_response_free(&m);

    /* HTTPS only: plain HTTP on the port gets no HTTP answer. */
    char ca[sizeof(s.tls_ca)];
    memcpy(ca, s.tls_ca, sizeof(ca));
    s.tls_ca[0] = '\0';
    assert_int_equal(ask(&s, "GET", "/healthz", NULL, NULL, NULL), 0);
    memcpy(s.tls_ca, ca, sizeof(ca));
    assert_int_equal(ask(&s, "GET", "/healthz", NULL, NULL, "ok"), 200);
    /* Such a failed handshake is counted, and said in words that help. */
    assert_true(
        bb_log_contains(&s, "a TLS handshake failed: a client that speaks plain HTTP", 5000));
    assert_int_equal(
        ask(&s, "GET", "/metrics", NULL, TOKEN, "\nbindery_http_tls_handshake_failures_total 1\n"),
        200);

    /* No certificate: the bearer token decides. */
    assert_int_equal(ask(&s, "GET", "/v1/pools", NULL, NULL, "missing bearer token"), 401);
    assert_int_equal(ask(&s, "GET", "/v1/pools", NULL, TOKEN, "arena"), 200);

    /* The lobby's certificate: what its entry grants, no token needed. */
    present(&s, "lobby");
    assert_int_equal(ask(&s, "POST", "/v1/allocations", claim, NULL, "\"allocationId\":\"alc-"),
                     201);
    assert_int_equal(ask(&s, "GET", "/v1/pools/default/arena", NULL, NULL, "arena"), 200);
    assert_int_equal(ask(&s, "DELETE", "/v1/allocations/alc-000000000000", NULL, NULL,
                         "client certificate \\\"lobby\\\" may not release"),
                     403);
    assert_int_equal(ask(&s, "GET", "/metrics", NULL, NULL, "bindery_build_info"), 200);
    assert_int_equal(ask(&s, "POST", "/v1/allocations",
                         "{\"pool\":\"arena\",\"namespace\":\"other\"}", NULL, NULL),
                     403);
    /* A trusted certificate its entry names comes first: with an admin's
     * token beside it, the request is still the lobby's. */
    assert_int_equal(ask(&s, "DELETE", "/v1/allocations/alc-000000000000", NULL, TOKEN,
                         "client certificate \\\"lobby\\\" may not release"),
                     403);

    /* Certificates that prove nothing: refused, saying why, and a token
     * still works beside them. */
    present(&s, "stranger");
    assert_int_equal(ask(&s, "GET", "/v1/pools", NULL, NULL, "\\\"stranger\\\" is in no entry"),
                     401);
    assert_int_equal(ask(&s, "GET", "/v1/pools", NULL, TOKEN, "arena"), 200);
    present(&s, "old");
    assert_int_equal(ask(&s, "GET", "/v1/pools", NULL, NULL, "expired"), 401);
    present(&s, "rogue");
    assert_int_equal(ask(&s, "GET", "/v1/pools", NULL, NULL, "client certificate was refused"),
                     401);
    present(&s, "server"); /* a server's certificate is not a client's */
    assert_int_equal(ask(&s, "GET", "/v1/pools", NULL, NULL, "client certificate was refused"),
                     401);
    present(&s, NULL);

    /* A revocation list that names the lobby's certificate, added by a
     * reload: new connections presenting it are refused, and so is the
     * next request on a connection opened before the reload. */
    CURL *kept = curl_easy_init();
    assert_non_null(kept);
    long connects = 0;
    assert_int_equal(ask_on(kept, &s, "lobby", &connects), 200);
    assert_int_equal(
        testcert_make_crl(s.dir, "revoked", "ca", (const char *const[]){"lobby", NULL}, 86400), 0);
    write_config(&s, "manifests",
                 "tls: {certFile: server.crt, keyFile: server.key, clientCAFile: clients.crt,\n"
                 "      clientCRLFile: revoked.crl}\n");
    bb_signal(&s, SIGHUP);
    assert_true(bb_log_contains(&s, "(1 revocation list)", 10000));
    present(&s, "lobby");
    assert_int_equal(ask(&s, "GET", "/v1/pools", NULL, NULL, "revoked"), 401);
    present(&s, NULL);
    assert_int_equal(ask_on(kept, &s, "lobby", &connects), 401);
    assert_int_equal(connects, 0); /* the connection from before the reload */
    curl_easy_cleanup(kept);

    /* The load tool over TLS, trusting the CA, with the token. */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "BINDERY_TOKEN=%s timeout 60 %s --mode allocate --server https://127.0.0.1:%u "
             "--cacert %s --pool arena --rate 2 --duration 1 --json --progress off "
             "--max-error-ratio 1 2>&1",
             TOKEN, getenv("LOADTEST_BIN"), s.port, s.tls_ca);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char buf[4096] = "";
    size_t n = fread(buf, 1, sizeof(buf) - 1, p);
    buf[n] = '\0';
    pclose(p);
    if (strstr(buf, "\"errors\":0") == NULL)
        fail_msg("load tool over TLS: %s", buf);
    bb_cleanup(&s);
}

/* How often the log says text once that is no longer count (at most
 * 10 s later). */
static int count_once_more(bb_server *s, const char *text, int count)
{
    for (int i = 0; i < 100 && bb_log_count(s, text) == count; i++)
        usleep(100 * 1000);
    return bb_log_count(s, text);
}

/* A new certificate (of another CA) goes in force on SIGHUP for new
 * connections; one that does not load leaves the running one. */
static void test_certificate_rotation(void **state)
{
    (void)state;
    bb_server s;
    start_tls_server(&s);
    assert_int_equal(testcert_make_ca(s.dir, "ca2", "Second CA"), 0);
    assert_int_equal(
        testcert_make_leaf(s.dir, "server2", "localhost", NULL, "ca2", TESTCERT_SERVER, -60, 86400),
        0);
    /* Rotate by renaming over the files, as a tool that writes them whole
     * would. */
    char from[256];
    char to[256];
    snprintf(from, sizeof(from), "%s/server2.crt", s.dir);
    snprintf(to, sizeof(to), "%s/server.crt", s.dir);
    assert_int_equal(rename(from, to), 0);
    snprintf(from, sizeof(from), "%s/server2.key", s.dir);
    snprintf(to, sizeof(to), "%s/server.key", s.dir);
    assert_int_equal(rename(from, to), 0);
    bb_signal(&s, SIGHUP);
    assert_true(bb_log_contains(&s, "in force for new connections", 10000));
    /* Trusting only the old CA no longer works; the new one does. */
    assert_int_equal(ask(&s, "GET", "/healthz", NULL, NULL, NULL), 0);
    snprintf(s.tls_ca, sizeof(s.tls_ca), "%s/ca2.crt", s.dir);
    assert_int_equal(ask(&s, "GET", "/v1/pools", NULL, TOKEN, "arena"), 200);

    /* A key that does not match: the reload is refused, the certificate
     * in force stays. */
    snprintf(from, sizeof(from), "%s/lobby.key", s.dir);
    snprintf(to, sizeof(to), "%s/server.key", s.dir);
    assert_int_equal(rename(from, to), 0);
    bb_signal(&s, SIGHUP);
    assert_true(bb_log_contains(&s, "reload refused, keeping the running config: tls", 10000));
    assert_int_equal(ask(&s, "GET", "/v1/pools", NULL, TOKEN, "arena"), 200);

    /* A config naming new files and a manifest the store refuses: the
     * reload is refused, the new certificate goes in force all the same,
     * and its files are the ones a later refused reload reads again. */
    assert_int_equal(testcert_make_ca(s.dir, "ca3", "Third CA"), 0);
    assert_int_equal(
        testcert_make_leaf(s.dir, "server3", "localhost", NULL, "ca3", TESTCERT_SERVER, -60, 86400),
        0);
    bb_write(&s, "bad/arena.yaml",
             "apiVersion: bindery.dev/v1alpha1\nkind: ModuleManifest\n"
             "metadata: {name: arena, namespace: default}\nspec: {ports: 5}\n");
    write_config(&s, "bad",
                 "tls: {certFile: server3.crt, keyFile: server3.key, clientCAFile: clients.crt}\n");
    bb_signal(&s, SIGHUP);
    assert_true(bb_log_contains(&s, "reloaded all the same: certificate", 10000));
    /* The kubeconfig bindery writes names the new file as its authority. */
    assert_true(bb_file_contains(&s, "kubeconfig", "server3.crt", 10000));
    snprintf(s.tls_ca, sizeof(s.tls_ca), "%s/ca3.crt", s.dir);
    assert_int_equal(ask(&s, "GET", "/v1/pools", NULL, TOKEN, "arena"), 200);
    int reloads = bb_log_count(&s, "reloaded all the same: certificate");
    bb_write(&s, "bindery.yaml", "pools: [\n");
    bb_signal(&s, SIGHUP);
    assert_int_equal(count_once_more(&s, "reloaded all the same: certificate", reloads),
                     reloads + 1);
    assert_int_equal(ask(&s, "GET", "/v1/pools", NULL, TOKEN, "arena"), 200);

    /* A config that turns TLS off (that waits for a restart) still has the
     * running files read again: a renewed certificate goes in force. */
    assert_int_equal(testcert_make_ca(s.dir, "ca4", "Fourth CA"), 0);
    assert_int_equal(
        testcert_make_leaf(s.dir, "server4", "localhost", NULL, "ca4", TESTCERT_SERVER, -60, 86400),
        0);
    const char *const renamed[][2] = {{"server4.crt", "server3.crt"},
                                      {"server4.key", "server3.key"}};
    for (size_t i = 0; i < 2; i++) {
        snprintf(from, sizeof(from), "%s/%s", s.dir, renamed[i][0]);
        snprintf(to, sizeof(to), "%s/%s", s.dir, renamed[i][1]);
        assert_int_equal(rename(from, to), 0);
    }
    reloads = bb_log_count(&s, "in force for new connections: certificate");
    write_config(&s, "manifests", "");
    bb_signal(&s, SIGHUP);
    assert_true(bb_log_contains(&s, "tls (on or off)", 10000));
    assert_int_equal(count_once_more(&s, "in force for new connections: certificate", reloads),
                     reloads + 1);
    snprintf(s.tls_ca, sizeof(s.tls_ca), "%s/ca4.crt", s.dir);
    assert_int_equal(ask(&s, "GET", "/v1/pools", NULL, TOKEN, "arena"), 200);
    bb_cleanup(&s);
}

/* kubectl with the kubeconfig `bindery kubeconfig` prints for the lobby's
 * certificate: https, the server's certificate as its authority. */
static void test_kubectl_with_a_client_certificate(void **state)
{
    (void)state;
    bb_server s;
    start_tls_server(&s);
    char cert[256];
    char key[256];
    char data[256];
    snprintf(cert, sizeof(cert), "%s/lobby.crt", s.dir);
    snprintf(key, sizeof(key), "%s/lobby.key", s.dir);
    snprintf(data, sizeof(data), "%s/data", s.dir);
    char *out = NULL;
    int rc = bb_run(&s,
                    (const char *const[]){"kubeconfig", "--config", s.config, "--data", data,
                                          "--client-cert", cert, "--client-key", key, NULL},
                    NULL, &out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "server: https://127.0.0.1:"));
    assert_non_null(strstr(out, "certificate-authority: "));
    assert_non_null(strstr(out, "client-certificate: "));
    bb_write(&s, "lobby.kubeconfig", out);
    free(out);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "cd %s && KUBECONFIG=%s/lobby.kubeconfig timeout 60 kubectl --cache-dir=%s/kube-cache "
             "get wi 2>&1",
             s.dir, s.dir, s.dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char buf[8192] = "";
    size_t n = fread(buf, 1, sizeof(buf) - 1, p);
    buf[n] = '\0';
    int st = pclose(p);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || strstr(buf, "arena-") == NULL)
        fail_msg("kubectl get wi over TLS: %s", buf);
    /* The load tool claims with the same kubeconfig: its server, authority
     * and client certificate, no token. */
    snprintf(cmd, sizeof(cmd),
             "env -u BINDERY_TOKEN timeout 60 %s --mode allocate --kubeconfig %s/lobby.kubeconfig "
             "--pool arena --rate 2 --duration 1 --json --progress off --max-error-ratio 1 2>&1",
             getenv("LOADTEST_BIN"), s.dir);
    p = popen(cmd, "r");
    assert_non_null(p);
    n = fread(buf, 1, sizeof(buf) - 1, p);
    buf[n] = '\0';
    pclose(p);
    if (strstr(buf, "\"errors\":0,\"errors_by_code\":{}") == NULL)
        fail_msg("load tool with a client certificate: %s", buf);
    bb_cleanup(&s);
}

/* Without tokens, on loopback: kubectl with the kubeconfig bindery writes
 * at start, which must keep kubectl from asking for a username. */
static void test_kubectl_over_tls_without_tokens(void **state)
{
    (void)state;
    bb_server s;
    bb_init(&s, "manifests: [manifests]\n"
                "runtime: {kind: bench, benchReadyDelayMs: 0}\n"
                "tls: {certFile: server.crt, keyFile: server.key}\n"
                "pools:\n  - name: arena\n    manifest: arena\n    minWarm: 1\n    maxWarm: 1\n");
    bb_write(&s, "manifests/arena.yaml", manifest);
    make_pki(&s);
    snprintf(s.tls_ca, sizeof(s.tls_ca), "%s/ca.crt", s.dir);
    /* A private key every user can read is worth a warning at every load. */
    char key[600];
    snprintf(key, sizeof(key), "%s/server.key", s.dir);
    assert_int_equal(chmod(key, 0644), 0);
    assert_true(bb_start(&s, NULL));
    assert_true(bb_log_contains(&s, "can be read by every user (mode 644): chmod o-rw it", 0));
    assert_int_equal(chmod(key, 0640), 0); /* a group of readers is a choice */
    bb_signal(&s, SIGHUP);
    assert_true(bb_log_contains(&s, "reloaded", 10000));
    assert_int_equal(bb_log_count(&s, "can be read by every user"), 1);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "cd %s && KUBECONFIG=%s/kubeconfig timeout 60 kubectl --cache-dir=%s/kube-cache "
             "get wi < /dev/null 2>&1",
             s.dir, s.dir, s.dir);
    char buf[8192] = "";
    for (int i = 0; i < 50 && strstr(buf, "arena-") == NULL; i++) {
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        size_t n = fread(buf, 1, sizeof(buf) - 1, p);
        buf[n] = '\0';
        pclose(p);
        if (strstr(buf, "Username") != NULL)
            break;
        usleep(100 * 1000);
    }
    if (strstr(buf, "arena-") == NULL)
        fail_msg("kubectl get wi over TLS, no tokens: %s", buf);
    bb_cleanup(&s);
}

/* What check-config and serve refuse before listening. */
static void test_tls_config_refused(void **state)
{
    (void)state;
    bb_server s;
    bb_init(&s, "tls: {certFile: server.crt, keyFile: server.key, clientCAFile: ca.crt}\n");
    make_pki(&s);
    char *out = NULL;
    int rc = bb_run(&s, (const char *const[]){"check-config", s.config, NULL}, NULL, &out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "tls.clientCAFile: needs auth.tokenFile"));
    free(out);
    bb_write(&s, "bindery.yaml", "tls: {certFile: server.crt}\n");
    rc = bb_run(&s, (const char *const[]){"check-config", s.config, NULL}, NULL, &out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "tls.certFile: needs keyFile too"));
    free(out);
    bb_write(&s, "bindery.yaml", "tls: {certFile: server.crt, keyFile: lobby.key}\n");
    rc = bb_run(&s, (const char *const[]){"check-config", s.config, NULL}, NULL, &out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "with keyFile"));
    free(out);
    assert_false(bb_start(&s, NULL));
    assert_true(bb_log_contains(&s, "with keyFile", 5000));
    bb_cleanup(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_https_tokens_and_client_certificates, bb_teardown),
        cmocka_unit_test_teardown(test_certificate_rotation, bb_teardown),
        cmocka_unit_test_teardown(test_kubectl_with_a_client_certificate, bb_teardown),
        cmocka_unit_test_teardown(test_kubectl_over_tls_without_tokens, bb_teardown),
        cmocka_unit_test_teardown(test_tls_config_refused, bb_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
