/* Unit tests for include/bindery/config.h. */
#include "bindery/config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BASE "/srv/bindery"

/* ---------------------------------------------------------------------- */
/* Helpers                                                                  */

static bdy_config *load_ok(const char *text)
{
    bdy_config *cfg = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy_config_from_text(text, strlen(text), "bindery.yaml", BASE, &cfg, &eb);
    if (rc != 0)
        fail_msg("bdy_config_from_text failed (%d): %s", rc, eb.message);
    assert_non_null(cfg);
    return cfg;
}

/* Expects text to fail with rc and exactly the message want. */
static void load_fails(const char *text, int rc, const char *want)
{
    bdy_config *cfg = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int got = bdy_config_from_text(text, strlen(text), "bindery.yaml", BASE, &cfg, &eb);
    if (got != rc)
        fail_msg("for %s: rc %d, wanted %d (%s)", text, got, rc, eb.message);
    assert_null(cfg);
    if (strcmp(eb.message, want) != 0)
        fail_msg("for %s:\n got: %s\nwant: %s", text, eb.message, want);
}

/* Expects failure with a message starting with want. */
static void load_fails_prefix(const char *text, int rc, const char *want)
{
    bdy_config *cfg = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_config_from_text(text, strlen(text), "bindery.yaml", BASE, &cfg, &eb), rc);
    assert_null(cfg);
    if (strncmp(eb.message, want, strlen(want)) != 0)
        fail_msg("for %s:\n got: %s\nwant prefix: %s", text, eb.message, want);
}

static void assert_defaults_except_paths(const bdy_config *cfg)
{
    assert_string_equal(cfg->listen, "127.0.0.1:7780");
    assert_int_equal(cfg->log_level, BDY_LOG_INFO);
    assert_int_equal(cfg->http.threads, 4);
    assert_int_equal(cfg->http.max_body_bytes, 65536);
    assert_int_equal(cfg->http.connection_timeout_s, 30);
    assert_int_equal(cfg->http.max_connections, 1024);
    assert_int_equal(cfg->http.header_limit_bytes, 16384);
    assert_null(cfg->auth.token_file);
    assert_null(cfg->tls.cert_file);
    assert_null(cfg->tls.client_ca_file);
    assert_int_equal(cfg->store.watch_history, 10000);
    assert_int_equal(cfg->store.max_batch, 512);
    assert_int_equal(cfg->store.busy_timeout_ms, 5000);
    assert_int_equal(cfg->crds.count, 0);
    assert_null(cfg->crds.items);
    assert_int_equal(cfg->runtime.kind, BDY_RUNTIME_PROCESS);
    assert_int_equal(cfg->runtime.port_min, 20000);
    assert_int_equal(cfg->runtime.port_max, 29999);
    assert_int_equal(cfg->runtime.bench_ready_delay_ms, 0);
    assert_int_equal(cfg->reconciler.workers, 2);
    assert_int_equal(cfg->claims.record_retention_h, 24);
}

/* The pool defaults apart from name, manifest, booklet and labels. */
static void assert_pool_defaults(const bdy_config_pool *p)
{
    assert_string_equal(p->ns, "default");
    assert_int_equal(p->min_warm, 1);
    assert_int_equal(p->max_warm, 100);
    assert_int_equal(p->max_worlds, 1000);
    assert_true(p->service_level == 0.99);
    assert_int_equal(p->creation_rate, 20);
    assert_int_equal(p->scale_down_cooldown_s, 60);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static int remove_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_tree(const char *path)
{
    assert_int_equal(nftw(path, remove_cb, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* ---------------------------------------------------------------------- */
/* Defaults and values                                                      */

static void test_defaults(void **state)
{
    (void)state;
    bdy_config *cfg = load_ok("");
    assert_defaults_except_paths(cfg);
    assert_string_equal(cfg->data_dir, BASE "/data");
    assert_string_equal(cfg->base_dir, BASE);
    assert_string_equal(cfg->source, "bindery.yaml");
    assert_int_equal(cfg->manifests.count, 0);
    assert_string_equal(cfg->runtime.work_dir, BASE);
    assert_string_equal(cfg->runtime.log_dir, BASE "/worlds");
    assert_int_equal(cfg->pools.count, 0);
    assert_null(cfg->pools.items);
    bdy_config_free(cfg);

    /* Comments only, "---" only, and sections written without values. */
    const char *same[] = {"# nothing here\n", "---\n", "http:\nauth: ~\nstore: null\ncrds:\n",
                          "runtime:\nreconciler: ~\npools:\n", "runtime: {}\npools: []\n"};
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        cfg = load_ok(same[i]);
        assert_defaults_except_paths(cfg);
        assert_string_equal(cfg->data_dir, BASE "/data");
        assert_string_equal(cfg->runtime.log_dir, BASE "/worlds");
        assert_int_equal(cfg->pools.count, 0);
        bdy_config_free(cfg);
    }
    bdy_config_free(NULL);
}

static void test_every_field(void **state)
{
    (void)state;
    bdy_config *cfg = load_ok("listen: \"[::1]:9000\"\n"
                              "dataDir: /var/lib/bindery\n"
                              "logLevel: debug\n"
                              "http:\n"
                              "  threads: 64\n"
                              "  maxBodyBytes: 16777216\n"
                              "  connectionTimeoutSeconds: 1\n"
                              "  maxConnections: 100000\n"
                              "  headerLimitBytes: 4096\n"
                              "auth:\n"
                              "  tokenFile: secrets/tokens.yaml\n"
                              "tls:\n"
                              "  certFile: tls/server.crt\n"
                              "  keyFile: /etc/bindery/server.key\n"
                              "  clientCAFile: tls/clients.crt\n"
                              "store:\n"
                              "  watchHistory: 10000000\n"
                              "  maxBatch: 1\n"
                              "  busyTimeoutMs: 0\n"
                              "crds:\n"
                              "  - crds\n"
                              "  - /opt/bindery/crds/world.yaml\n"
                              "manifests: [manifests, \"more manifests\"]\n"
                              "runtime:\n"
                              "  kind: bench\n"
                              "  portMin: 1024\n"
                              "  portMax: 65535\n"
                              "  workDir: /srv/worlds\n"
                              "  logDir: logs/worlds\n"
                              "  benchReadyDelayMs: 600000\n"
                              "reconciler:\n"
                              "  workers: 64\n");
    assert_string_equal(cfg->listen, "[::1]:9000");
    assert_string_equal(cfg->data_dir, "/var/lib/bindery");
    assert_int_equal(cfg->log_level, BDY_LOG_DEBUG);
    assert_int_equal(cfg->http.threads, 64);
    assert_int_equal(cfg->http.max_body_bytes, 16777216);
    assert_int_equal(cfg->http.connection_timeout_s, 1);
    assert_int_equal(cfg->http.max_connections, 100000);
    assert_int_equal(cfg->http.header_limit_bytes, 4096);
    assert_string_equal(cfg->auth.token_file, BASE "/secrets/tokens.yaml");
    assert_string_equal(cfg->tls.cert_file, BASE "/tls/server.crt");
    assert_string_equal(cfg->tls.key_file, "/etc/bindery/server.key");
    assert_string_equal(cfg->tls.client_ca_file, BASE "/tls/clients.crt");
    assert_int_equal(cfg->store.watch_history, 10000000);
    assert_int_equal(cfg->store.max_batch, 1);
    assert_int_equal(cfg->store.busy_timeout_ms, 0);
    assert_int_equal(cfg->crds.count, 2);
    assert_string_equal(cfg->crds.items[0], BASE "/crds");
    assert_string_equal(cfg->crds.items[1], "/opt/bindery/crds/world.yaml");
    assert_int_equal(cfg->manifests.count, 2);
    assert_string_equal(cfg->manifests.items[0], BASE "/manifests");
    assert_string_equal(cfg->manifests.items[1], BASE "/more manifests");
    assert_int_equal(cfg->runtime.kind, BDY_RUNTIME_BENCH);
    assert_int_equal(cfg->runtime.port_min, 1024);
    assert_int_equal(cfg->runtime.port_max, 65535);
    assert_string_equal(cfg->runtime.work_dir, "/srv/worlds");
    assert_string_equal(cfg->runtime.log_dir, BASE "/logs/worlds");
    assert_int_equal(cfg->runtime.bench_ready_delay_ms, 600000);
    assert_int_equal(cfg->reconciler.workers, 64);
    bdy_config_free(cfg);

    /* Enum words may be quoted; a one-port range is a range. */
    cfg = load_ok("runtime: {kind: 'process', portMin: 30000, portMax: 30000, workDir: ./w/}\n"
                  "reconciler: {workers: 1}\nclaims: {recordRetentionHours: 1}\n");
    assert_int_equal(cfg->claims.record_retention_h, 1);
    assert_int_equal(cfg->runtime.kind, BDY_RUNTIME_PROCESS);
    assert_int_equal(cfg->runtime.port_min, 30000);
    assert_int_equal(cfg->runtime.port_max, 30000);
    assert_string_equal(cfg->runtime.work_dir, BASE "/w");
    assert_int_equal(cfg->reconciler.workers, 1);
    bdy_config_free(cfg);

    const char *levels[][2] = {{"info", "1"}, {"warn", "2"}, {"error", "3"}, {"'debug'", "0"}};
    for (size_t i = 0; i < 4; i++) {
        char text[64];
        snprintf(text, sizeof(text), "logLevel: %s\n", levels[i][0]);
        cfg = load_ok(text);
        assert_int_equal(cfg->log_level, atoi(levels[i][1]));
        bdy_config_free(cfg);
    }

    /* Other integer spellings of the YAML core schema are integers too. */
    cfg = load_ok("http: {threads: 0x10, maxConnections: +20, connectionTimeoutSeconds: 0o17}\n");
    assert_int_equal(cfg->http.threads, 16);
    assert_int_equal(cfg->http.max_connections, 20);
    assert_int_equal(cfg->http.connection_timeout_s, 15);
    bdy_config_free(cfg);

    /* null token file and empty lists are "not set". */
    cfg = load_ok("auth: {tokenFile: null}\ncrds: []\nmanifests: ~\n");
    assert_null(cfg->auth.token_file);
    assert_int_equal(cfg->crds.count, 0);
    assert_int_equal(cfg->manifests.count, 0);
    bdy_config_free(cfg);
}

static void test_listen_forms(void **state)
{
    (void)state;
    const char *good[] = {"0.0.0.0:0", "[::]:65535", "localhost:7780", "[fe80::1]:80",
                          "10.1.2.3:00080"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "listen: \"%s\"\n", good[i]);
        bdy_config *cfg = load_ok(text);
        assert_string_equal(cfg->listen, good[i]);
        bdy_config_free(cfg);
    }
    const char *bad[] = {"nowhere", "::1:7780", "[::1]7780", "[zz]:1", "[]:1", "host:65536",
                         "host:", ":80", "999.1.1.1:80", "a b:1", "[::1]:-1", "host:8x",
                         "host:123456", "[::1:80", "h:o:80", "1.2.3:80",
                         /* names other than localhost: the server binds addresses */
                         "my-host.example.com:443", "localhost.:80",
                         /* v4-mapped: the v6-only socket could not bind it */
                         "[::ffff:10.0.0.1]:1", "[::ffff:127.0.0.1]:7780"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[128];
        char want[512];
        snprintf(text, sizeof(text), "# c\nlisten: \"%s\"\n", bad[i]);
        snprintf(want, sizeof(want),
                 "bindery.yaml:2: listen: must be IPv4:port, localhost:port or [IPv6]:port with "
                 "a port between 0 and 65535, e.g. \"127.0.0.1:7780\" or \"[::1]:7780\" (got "
                 "\"%s\")",
                 bad[i]);
        load_fails(text, BDY_EINVAL, want);
    }
}

/* ---------------------------------------------------------------------- */
/* Bad values                                                               */

static void test_bad_values(void **state)
{
    (void)state;
    const char *cases[][2] = {
        {"http:\n  threads: many\n",
         "bindery.yaml:2: http.threads: must be an integer between 1 and 64 (got \"many\")"},
        {"http:\n  threads: 0\n",
         "bindery.yaml:2: http.threads: must be an integer between 1 and 64 (got \"0\")"},
        {"http:\n  threads: 65\n",
         "bindery.yaml:2: http.threads: must be an integer between 1 and 64 (got \"65\")"},
        {"http:\n  threads: -1\n",
         "bindery.yaml:2: http.threads: must be an integer between 1 and 64 (got \"-1\")"},
        {"http:\n  threads: 4.0\n",
         "bindery.yaml:2: http.threads: must be an integer between 1 and 64 (got \"4.0\")"},
        {"http:\n  threads: \"4\"\n",
         "bindery.yaml:2: http.threads: must be an integer between 1 and 64 (got \"4\", which "
         "is quoted and so a string)"},
        {"http:\n  threads:\n",
         "bindery.yaml:2: http.threads: must be an integer between 1 and 64 (got nothing)"},
        {"http:\n  threads: [1]\n",
         "bindery.yaml:2: http.threads: must be an integer between 1 and 64 (got a list)"},
        {"http: {threads: {a: 1}}\n",
         "bindery.yaml:1: http.threads: must be an integer between 1 and 64 (got a map)"},
        {"http:\n  threads: 99999999999999999999999\n",
         "bindery.yaml:2: http.threads: must be an integer between 1 and 64 (got "
         "\"99999999999999999999999\")"},
        {"http:\n  maxBodyBytes: 1023\n",
         "bindery.yaml:2: http.maxBodyBytes: must be an integer between 1024 and 16777216 (got "
         "\"1023\")"},
        {"http:\n  connectionTimeoutSeconds: 3601\n",
         "bindery.yaml:2: http.connectionTimeoutSeconds: must be an integer between 1 and 3600 "
         "(got \"3601\")"},
        {"http:\n  maxConnections: 0\n",
         "bindery.yaml:2: http.maxConnections: must be an integer between 1 and 100000 (got "
         "\"0\")"},
        {"http:\n  headerLimitBytes: 2048\n",
         "bindery.yaml:2: http.headerLimitBytes: must be an integer between 4096 and 1048576 "
         "(got \"2048\")"},
        {"store:\n  watchHistory: 99\n",
         "bindery.yaml:2: store.watchHistory: must be an integer between 100 and 10000000 (got "
         "\"99\")"},
        {"store:\n  maxBatch: 70000\n",
         "bindery.yaml:2: store.maxBatch: must be an integer between 1 and 65536 (got "
         "\"70000\")"},
        {"store:\n  busyTimeoutMs: true\n",
         "bindery.yaml:2: store.busyTimeoutMs: must be an integer between 0 and 600000 (got "
         "\"true\")"},
        {"logLevel: verbose\n",
         "bindery.yaml:1: logLevel: must be one of debug, info, warn, error (got \"verbose\")"},
        {"logLevel: INFO\n",
         "bindery.yaml:1: logLevel: must be one of debug, info, warn, error (got \"INFO\")"},
        {"dataDir: \"\"\n", "bindery.yaml:1: dataDir: must not be empty"},
        {"dataDir:\n", "bindery.yaml:1: dataDir: must be a path (got nothing)"},
        {"dataDir: ~\n", "bindery.yaml:1: dataDir: must be a path (got \"~\")"},
        {"dataDir: [a]\n", "bindery.yaml:1: dataDir: must be a path (got a list)"},
        {"listen:\n", "bindery.yaml:1: listen: must be IPv4:port, localhost:port or [IPv6]:port "
                      "with a port between 0 and 65535, e.g. \"127.0.0.1:7780\" or "
                      "\"[::1]:7780\" (got nothing)"},
        {"auth:\n  tokenFile: {a: 1}\n",
         "bindery.yaml:2: auth.tokenFile: must be a path or null (got a map)"},
        {"auth:\n  tokenFile: ''\n", "bindery.yaml:2: auth.tokenFile: must not be empty"},
        {"http: 5\n", "bindery.yaml:1: http: must be a map (got \"5\")"},
        {"store: [1, 2]\n", "bindery.yaml:1: store: must be a map (got a list)"},
        {"auth: off\n", "bindery.yaml:1: auth: must be a map (got \"off\")"},
        {"tls:\n  certFile: a.crt\n", "bindery.yaml:2: tls.certFile: needs keyFile too"},
        {"tls:\n  keyFile: a.key\n", "bindery.yaml:2: tls.keyFile: needs certFile too"},
        {"tls:\n  clientCAFile: ca.crt\n", "bindery.yaml:2: tls.clientCAFile: needs certFile too"},
        {"tls: {certFile: a.crt, keyFile: a.key, clientCRLFile: x.crl}\n",
         "bindery.yaml:1: tls.clientCRLFile: needs clientCAFile too"},
        {"tls:\n  certFile: a.crt\n  keyFile: a.key\n  clientCAFile: ca.crt\n",
         "bindery.yaml:4: tls.clientCAFile: needs auth.tokenFile, whose commonName entries say "
         "what "
         "a client certificate may do"},
        {"tls: {certFile: a.crt, keyFile: a.key, caFile: x}\n",
         "bindery.yaml:1: unknown key \"tls.caFile\""},
        {"crds: foo\n", "bindery.yaml:1: crds: must be a list (got \"foo\")"},
        {"manifests: {a: b}\n", "bindery.yaml:1: manifests: must be a list (got a map)"},
        {"crds:\n  - a\n  - [b]\n", "bindery.yaml:3: crds[1]: must be a path (got a list)"},
        {"manifests:\n  - a\n  -\n  - c\n",
         "bindery.yaml:3: manifests[1]: must be a path (got nothing)"},
        {"manifests: [a, '']\n", "bindery.yaml:1: manifests[1]: must not be empty"},
        /* Values are quoted back escaped and cut short. */
        {"logLevel: \"a\\tb\\\"c\"\n",
         "bindery.yaml:1: logLevel: must be one of debug, info, warn, error (got "
         "\"a\\x09b\\\"c\")"},
        {"logLevel: "
         "aaaaaaaaaabbbbbbbbbbccccccccccddddddddddeeeeeeeeeeffffffffffgggggggggghhhhhhhhhh\n",
         "bindery.yaml:1: logLevel: must be one of debug, info, warn, error (got "
         "\"aaaaaaaaaabbbbbbbbbbccccccccccddddddddddeeeeeeeeeeffffffffffgggg...\")"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        load_fails(cases[i][0], BDY_EINVAL, cases[i][1]);
}

static void test_list_cap(void **state)
{
    (void)state;
    size_t cap = (BDY_CONFIG_MAX_LIST + 2) * 16 + 64;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t pos = (size_t)snprintf(text, cap, "crds:\n");
    for (int i = 0; i < BDY_CONFIG_MAX_LIST; i++)
        pos += (size_t)snprintf(text + pos, cap - pos, "  - c%d\n", i);
    bdy_config *cfg = load_ok(text);
    assert_int_equal(cfg->crds.count, BDY_CONFIG_MAX_LIST);
    assert_string_equal(cfg->crds.items[BDY_CONFIG_MAX_LIST - 1], BASE "/c255");
    bdy_config_free(cfg);
    snprintf(text + pos, cap - pos, "  - one-too-many\n");
    load_fails(text, BDY_EINVAL, "bindery.yaml:1: crds: must have at most 256 entries (got 257)");
    free(text);
}

static void test_unknown_keys(void **state)
{
    (void)state;
    const char *cases[][2] = {
        {"logLevel: info\n# typo below\nlistn: 1.2.3.4:5\n",
         "bindery.yaml:3: unknown key \"listn\" (did you mean \"listen\"?)"},
        {"datadir: x\n", "bindery.yaml:1: unknown key \"datadir\" (did you mean \"dataDir\"?)"},
        {"pool: []\n", "bindery.yaml:1: unknown key \"pool\" (did you mean \"pools\"?)"},
        {"runtime:\n  kinds: bench\n",
         "bindery.yaml:2: unknown key \"runtime.kinds\" (did you mean \"runtime.kind\"?)"},
        {"runtime: {portmax: 3}\n",
         "bindery.yaml:1: unknown key \"runtime.portmax\" (did you mean \"runtime.portMax\"?)"},
        {"reconciler:\n  threads: 2\n", "bindery.yaml:2: unknown key \"reconciler.threads\""},
        {"http:\n  threads: 2\n  thraeds: 3\n",
         "bindery.yaml:3: unknown key \"http.thraeds\" (did you mean \"http.threads\"?)"},
        {"auth:\n  token: x\n", "bindery.yaml:2: unknown key \"auth.token\""},
        {"store:\n  maxbatch: 3\n",
         "bindery.yaml:2: unknown key \"store.maxbatch\" (did you mean \"store.maxBatch\"?)"},
        {"store: {watchHistory: 100, colour: blue}\n",
         "bindery.yaml:1: unknown key \"store.colour\""},
        {"\"we\\nird\": 1\n", "bindery.yaml:1: unknown key \"we\\x0aird\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        load_fails(cases[i][0], BDY_EINVAL, cases[i][1]);
}

static void test_malformed_yaml(void **state)
{
    (void)state;
    load_fails_prefix("listen: [1\nhttp: 2\n", BDY_EPARSE, "bindery.yaml:2: ");
    load_fails("http:\n  threads: 2\n  threads: 3\n", BDY_EPARSE,
               "bindery.yaml:3: duplicate key \"threads\" (first at line 2)");
    load_fails("dataDir: &d x\n", BDY_EPARSE,
               "bindery.yaml:1: anchors (&d) are not supported; write the value out in full");
    load_fails_prefix("a: 1\n---\nb: 2\n", BDY_EPARSE,
                      "bindery.yaml:3: expected one YAML document");
    load_fails_prefix("logLevel: info\n  http: 3\n", BDY_EPARSE, "bindery.yaml:2: ");
}

static void test_not_a_map(void **state)
{
    (void)state;
    load_fails("- listen: 1.2.3.4:5\n- dataDir: x\n", BDY_EINVAL,
               "bindery.yaml:1: the configuration must be a map of keys (got a list)");
    load_fails("# comment\nhello\n", BDY_EINVAL,
               "bindery.yaml:2: the configuration must be a map of keys (got \"hello\")");
}

static void test_runtime_bad_values(void **state)
{
    (void)state;
    const char *cases[][2] = {
        {"runtime:\n  kind: docker\n",
         "bindery.yaml:2: runtime.kind: must be one of process, bench (got \"docker\")"},
        {"runtime:\n  kind: Process\n",
         "bindery.yaml:2: runtime.kind: must be one of process, bench (got \"Process\")"},
        {"runtime:\n  kind:\n",
         "bindery.yaml:2: runtime.kind: must be one of process, bench (got nothing)"},
        {"runtime:\n  kind: [bench]\n",
         "bindery.yaml:2: runtime.kind: must be one of process, bench (got a list)"},
        {"runtime:\n  portMin: 1023\n",
         "bindery.yaml:2: runtime.portMin: must be an integer between 1024 and 65535 (got "
         "\"1023\")"},
        {"runtime:\n  portMax: 65536\n",
         "bindery.yaml:2: runtime.portMax: must be an integer between 1024 and 65535 (got "
         "\"65536\")"},
        {"runtime:\n  portMin: \"20000\"\n",
         "bindery.yaml:2: runtime.portMin: must be an integer between 1024 and 65535 (got "
         "\"20000\", which is quoted and so a string)"},
        {"runtime:\n  workDir: ''\n", "bindery.yaml:2: runtime.workDir: must not be empty"},
        {"runtime:\n  logDir: ~\n", "bindery.yaml:2: runtime.logDir: must be a path (got \"~\")"},
        {"runtime:\n  benchReadyDelayMs: 600001\n",
         "bindery.yaml:2: runtime.benchReadyDelayMs: must be an integer between 0 and 600000 "
         "(got \"600001\")"},
        {"claims:\n  recordRetentionHours: 0\n",
         "bindery.yaml:2: claims.recordRetentionHours: must be an integer between 1 and 8760 "
         "(got \"0\")"},
        {"reconciler:\n  workers: 0\n",
         "bindery.yaml:2: reconciler.workers: must be an integer between 1 and 64 (got \"0\")"},
        {"reconciler:\n  workers: 65\n",
         "bindery.yaml:2: reconciler.workers: must be an integer between 1 and 64 (got \"65\")"},
        {"runtime: process\n", "bindery.yaml:1: runtime: must be a map (got \"process\")"},
        {"reconciler: [2]\n", "bindery.yaml:1: reconciler: must be a map (got a list)"},
        /* portMin <= portMax, blaming the key that was written. */
        {"runtime:\n  portMin: 30000\n  portMax: 29999\n",
         "bindery.yaml:3: runtime.portMax: must be at least portMin (30000)"},
        {"runtime:\n  kind: bench\n  portMin: 30000\n",
         "bindery.yaml:3: runtime.portMin: must be at most portMax (29999)"},
        {"runtime: {portMax: 19999}\n",
         "bindery.yaml:1: runtime.portMax: must be at least portMin (20000)"},
        /* Demand history: enough for a fit, and minutes no longer than
         * the history they are folded into. */
        {"demand:\n  retentionDays: 2\n",
         "bindery.yaml:2: demand.retentionDays: must be an integer between 3 and 3660 (got "
         "\"2\")"},
        {"demand:\n  retentionDays: 3\n  minuteRetentionHours: 73\n",
         "bindery.yaml:3: demand.minuteRetentionHours: must be at most 24 times retentionDays (72 "
         "hours): demand history goes after retentionDays whatever its step"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        load_fails(cases[i][0], BDY_EINVAL, cases[i][1]);
}

/* ---------------------------------------------------------------------- */
/* Pools                                                                    */

#define DNS_LABEL_RULE                                                                             \
    "must be a DNS label: at most 63 lower-case letters, digits or '-', starting and ending "      \
    "with a letter or digit"
#define DNS_SUBDOMAIN_RULE                                                                         \
    "must be a DNS subdomain or null: at most 253 lower-case letters, digits, '-' or '.', each "   \
    "dot-separated part starting and ending with a letter or digit"
#define LABEL_KEY_RULE                                                                             \
    "every key must be a label key: an optional DNS subdomain (not bindery.dev or under it) and "  \
    "'/', then at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or " \
    "digit"
#define LABEL_VALUE_RULE                                                                           \
    "must be a label value: \"\" or at most 63 letters, digits, '-', '_' or '.', starting and "    \
    "ending with a letter or digit"

static void test_full_pool(void **state)
{
    (void)state;
    bdy_config *cfg = load_ok("pools:\n"
                              "  - name: arena\n"
                              "    namespace: games-eu\n"
                              "    manifest: arena.v2\n"
                              "    minWarm: 0\n"
                              "    maxWarm: 100000\n"
                              "    maxWorlds: 1000000\n"
                              "    serviceLevel: 0.9999\n"
                              "    creationRate: 10000\n"
                              "    scaleDownCooldownSeconds: 86400\n"
                              "    labels:\n"
                              "      game: arena\n"
                              "      app.kubernetes.io/part-of: bindery\n"
                              "      Tier_1.x-Y: \"\"\n"
                              "      version: 1.10\n"
                              "      enabled: true\n"
                              "  - name: 2v2\n"
                              "    booklet: duel\n"
                              "    serviceLevel: 0.5\n"
                              "    minWarm: 7\n"
                              "    maxWarm: 7\n"
                              "    maxWorlds: 7\n"
                              "    creationRate: 1\n"
                              "    scaleDownCooldownSeconds: 0\n"
                              "  - {name: arena, manifest: arena, labels: {}}\n");
    assert_int_equal(cfg->pools.count, 3);
    const bdy_config_pool *p = &cfg->pools.items[0];
    assert_string_equal(p->name, "arena");
    assert_string_equal(p->ns, "games-eu");
    assert_string_equal(p->manifest, "arena.v2");
    assert_null(p->booklet);
    assert_int_equal(p->min_warm, 0);
    assert_int_equal(p->max_warm, 100000);
    assert_int_equal(p->max_worlds, 1000000);
    assert_true(p->service_level == 0.9999);
    assert_int_equal(p->creation_rate, 10000);
    assert_int_equal(p->scale_down_cooldown_s, 86400);
    assert_int_equal(p->labels.count, 5);
    /* In file order; plain scalars are kept as written, not as numbers. */
    const char *want[][2] = {{"game", "arena"},
                             {"app.kubernetes.io/part-of", "bindery"},
                             {"Tier_1.x-Y", ""},
                             {"version", "1.10"},
                             {"enabled", "true"}};
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(p->labels.items[i].key, want[i][0]);
        assert_string_equal(p->labels.items[i].value, want[i][1]);
    }

    p = &cfg->pools.items[1];
    assert_string_equal(p->name, "2v2");
    assert_string_equal(p->ns, "default");
    assert_null(p->manifest);
    assert_string_equal(p->booklet, "duel");
    assert_true(p->service_level == 0.5);
    assert_int_equal(p->min_warm, 7);
    assert_int_equal(p->max_warm, 7);
    assert_int_equal(p->max_worlds, 7);
    assert_int_equal(p->creation_rate, 1);
    assert_int_equal(p->scale_down_cooldown_s, 0);
    assert_int_equal(p->labels.count, 0);
    assert_null(p->labels.items);

    /* Same name in another namespace is another pool; the rest defaults. */
    p = &cfg->pools.items[2];
    assert_string_equal(p->name, "arena");
    assert_string_equal(p->manifest, "arena");
    assert_null(p->booklet);
    assert_pool_defaults(p);
    assert_int_equal(p->labels.count, 0);
    bdy_config_free(cfg);

    /* Numbers for serviceLevel in other spellings; null clears manifest or
     * labels; a name that looks like a number is still a name. */
    cfg = load_ok("pools:\n"
                  "  - {name: a, manifest: null, booklet: b, serviceLevel: 9e-1, labels: null}\n"
                  "  - {name: 42, manifest: m, serviceLevel: .75}\n");
    assert_int_equal(cfg->pools.count, 2);
    assert_null(cfg->pools.items[0].manifest);
    assert_string_equal(cfg->pools.items[0].booklet, "b");
    assert_true(cfg->pools.items[0].service_level == 0.9);
    assert_int_equal(cfg->pools.items[0].labels.count, 0);
    assert_string_equal(cfg->pools.items[1].name, "42");
    assert_true(cfg->pools.items[1].service_level == 0.75);
    bdy_config_free(cfg);

    /* Longest names. */
    char text[1024];
    char label[64];
    char sub[254];
    memset(label, 'a', 63);
    label[63] = '\0';
    memset(sub, 'b', 253);
    for (size_t i = 60; i < 253; i += 61)
        sub[i] = '.';
    sub[253] = '\0';
    snprintf(text, sizeof(text),
             "pools:\n  - name: %s\n    namespace: %s\n    manifest: %s\n    labels: {%s: %s}\n",
             label, label, sub, label, label);
    cfg = load_ok(text);
    assert_string_equal(cfg->pools.items[0].name, label);
    assert_string_equal(cfg->pools.items[0].manifest, sub);
    assert_string_equal(cfg->pools.items[0].labels.items[0].value, label);
    bdy_config_free(cfg);
}

static void test_pool_bad_values(void **state)
{
    (void)state;
    char long_label[128];
    char long_sub[300];
    char text[1024];
    char want[1024];
    const char *cases[][2] = {
        {"pools:\n  - name: Arena\n    manifest: a\n",
         "bindery.yaml:2: pools[0].name: " DNS_LABEL_RULE " (got \"Arena\")"},
        {"pools:\n  - name: -a\n    manifest: a\n",
         "bindery.yaml:2: pools[0].name: " DNS_LABEL_RULE " (got \"-a\")"},
        {"pools:\n  - name: a-\n    manifest: a\n",
         "bindery.yaml:2: pools[0].name: " DNS_LABEL_RULE " (got \"a-\")"},
        {"pools:\n  - name: a.b\n    manifest: a\n",
         "bindery.yaml:2: pools[0].name: " DNS_LABEL_RULE " (got \"a.b\")"},
        {"pools:\n  - name: a_b\n    manifest: a\n",
         "bindery.yaml:2: pools[0].name: " DNS_LABEL_RULE " (got \"a_b\")"},
        {"pools:\n  - name: ''\n    manifest: a\n",
         "bindery.yaml:2: pools[0].name: " DNS_LABEL_RULE " (got \"\")"},
        {"pools:\n  - name:\n    manifest: a\n",
         "bindery.yaml:2: pools[0].name: " DNS_LABEL_RULE " (got nothing)"},
        {"pools:\n  - name: null\n    manifest: a\n",
         "bindery.yaml:2: pools[0].name: " DNS_LABEL_RULE " (got \"null\")"},
        {"pools:\n  - name: [a]\n    manifest: a\n",
         "bindery.yaml:2: pools[0].name: " DNS_LABEL_RULE " (got a list)"},
        {"pools:\n  - manifest: a\n    minWarm: 2\n",
         "bindery.yaml:2: pools[0]: missing required key \"name\""},
        {"pools:\n  - name: a\n    namespace: Default\n    manifest: a\n",
         "bindery.yaml:3: pools[0].namespace: " DNS_LABEL_RULE " (got \"Default\")"},
        {"pools:\n  - name: a\n    namespace: games.eu\n    manifest: a\n",
         "bindery.yaml:3: pools[0].namespace: " DNS_LABEL_RULE " (got \"games.eu\")"},
        {"pools:\n  - name: a\n    namespace: ~\n    manifest: a\n",
         "bindery.yaml:3: pools[0].namespace: " DNS_LABEL_RULE " (got \"~\")"},
        {"pools:\n  - name: a\n    manifest: Arena\n",
         "bindery.yaml:3: pools[0].manifest: " DNS_SUBDOMAIN_RULE " (got \"Arena\")"},
        {"pools:\n  - name: a\n    manifest: a..b\n",
         "bindery.yaml:3: pools[0].manifest: " DNS_SUBDOMAIN_RULE " (got \"a..b\")"},
        {"pools:\n  - name: a\n    manifest: .a\n",
         "bindery.yaml:3: pools[0].manifest: " DNS_SUBDOMAIN_RULE " (got \".a\")"},
        {"pools:\n  - name: a\n    manifest: a.\n",
         "bindery.yaml:3: pools[0].manifest: " DNS_SUBDOMAIN_RULE " (got \"a.\")"},
        {"pools:\n  - name: a\n    manifest: a.-b\n",
         "bindery.yaml:3: pools[0].manifest: " DNS_SUBDOMAIN_RULE " (got \"a.-b\")"},
        {"pools:\n  - name: a\n    manifest: {a: 1}\n",
         "bindery.yaml:3: pools[0].manifest: " DNS_SUBDOMAIN_RULE " (got a map)"},
        {"pools:\n  - name: a\n    booklet: a_b\n",
         "bindery.yaml:3: pools[0].booklet: " DNS_SUBDOMAIN_RULE " (got \"a_b\")"},
        {"pools:\n  - name: a\n    manifest: a\n    minWarm: -1\n",
         "bindery.yaml:4: pools[0].minWarm: must be an integer between 0 and 100000 (got "
         "\"-1\")"},
        {"pools:\n  - name: a\n    manifest: a\n    minWarm: 100001\n",
         "bindery.yaml:4: pools[0].minWarm: must be an integer between 0 and 100000 (got "
         "\"100001\")"},
        {"pools:\n  - name: a\n    manifest: a\n    maxWarm: many\n",
         "bindery.yaml:4: pools[0].maxWarm: must be an integer between 0 and 100000 (got "
         "\"many\")"},
        {"pools:\n  - name: a\n    manifest: a\n    maxWarm: 100001\n",
         "bindery.yaml:4: pools[0].maxWarm: must be an integer between 0 and 100000 (got "
         "\"100001\")"},
        {"pools:\n  - name: a\n    manifest: a\n    maxWorlds: 0\n",
         "bindery.yaml:4: pools[0].maxWorlds: must be an integer between 1 and 1000000 (got "
         "\"0\")"},
        {"pools:\n  - name: a\n    manifest: a\n    maxWorlds: 1000001\n",
         "bindery.yaml:4: pools[0].maxWorlds: must be an integer between 1 and 1000000 (got "
         "\"1000001\")"},
        {"pools:\n  - name: a\n    manifest: a\n    serviceLevel: 0.4999\n",
         "bindery.yaml:4: pools[0].serviceLevel: must be a number between 0.5 and 0.9999 (got "
         "\"0.4999\")"},
        {"pools:\n  - name: a\n    manifest: a\n    serviceLevel: 1\n",
         "bindery.yaml:4: pools[0].serviceLevel: must be a number between 0.5 and 0.9999 (got "
         "\"1\")"},
        {"pools:\n  - name: a\n    manifest: a\n    serviceLevel: 0.99995\n",
         "bindery.yaml:4: pools[0].serviceLevel: must be a number between 0.5 and 0.9999 (got "
         "\"0.99995\")"},
        {"pools:\n  - name: a\n    manifest: a\n    serviceLevel: .nan\n",
         "bindery.yaml:4: pools[0].serviceLevel: must be a number between 0.5 and 0.9999 (got "
         "\".nan\")"},
        {"pools:\n  - name: a\n    manifest: a\n    serviceLevel: -.inf\n",
         "bindery.yaml:4: pools[0].serviceLevel: must be a number between 0.5 and 0.9999 (got "
         "\"-.inf\")"},
        {"pools:\n  - name: a\n    manifest: a\n    serviceLevel: \"0.9\"\n",
         "bindery.yaml:4: pools[0].serviceLevel: must be a number between 0.5 and 0.9999 (got "
         "\"0.9\", which is quoted and so a string)"},
        {"pools:\n  - name: a\n    manifest: a\n    serviceLevel: high\n",
         "bindery.yaml:4: pools[0].serviceLevel: must be a number between 0.5 and 0.9999 (got "
         "\"high\")"},
        {"pools:\n  - name: a\n    manifest: a\n    serviceLevel:\n",
         "bindery.yaml:4: pools[0].serviceLevel: must be a number between 0.5 and 0.9999 (got "
         "nothing)"},
        {"pools:\n  - name: a\n    manifest: a\n    serviceLevel: [0.9]\n",
         "bindery.yaml:4: pools[0].serviceLevel: must be a number between 0.5 and 0.9999 (got "
         "a list)"},
        {"pools:\n  - name: a\n    manifest: a\n    creationRate: 0\n",
         "bindery.yaml:4: pools[0].creationRate: must be an integer between 1 and 10000 (got "
         "\"0\")"},
        {"pools:\n  - name: a\n    manifest: a\n    creationRate: 10001\n",
         "bindery.yaml:4: pools[0].creationRate: must be an integer between 1 and 10000 (got "
         "\"10001\")"},
        {"pools:\n  - name: a\n    manifest: a\n    scaleDownCooldownSeconds: 86401\n",
         "bindery.yaml:4: pools[0].scaleDownCooldownSeconds: must be an integer between 0 and "
         "86400 (got \"86401\")"},
        {"pools:\n  - name: a\n    manifest: a\n    labels: [game]\n",
         "bindery.yaml:4: pools[0].labels: must be a map of label keys to label values (got a "
         "list)"},
        {"pools:\n  - name: a\n    manifest: a\n    labels: game\n",
         "bindery.yaml:4: pools[0].labels: must be a map of label keys to label values (got "
         "\"game\")"},
        /* The list and its items. */
        {"pools: {name: a}\n", "bindery.yaml:1: pools: must be a list (got a map)"},
        {"pools: arena\n", "bindery.yaml:1: pools: must be a list (got \"arena\")"},
        {"pools:\n  - arena\n", "bindery.yaml:2: pools[0]: must be a map (got \"arena\")"},
        {"pools:\n  - {name: a, manifest: a}\n  -\n",
         "bindery.yaml:3: pools[1]: must be a map (got nothing)"},
        {"pools:\n  - [a]\n", "bindery.yaml:2: pools[0]: must be a map (got a list)"},
        /* An error in a later pool names that pool. */
        {"pools:\n  - {name: a, manifest: a}\n  - {name: b, manifest: b, minWarm: x}\n",
         "bindery.yaml:3: pools[1].minWarm: must be an integer between 0 and 100000 (got "
         "\"x\")"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        load_fails(cases[i][0], BDY_EINVAL, cases[i][1]);

    /* One byte over the longest name, namespace and manifest. */
    memset(long_label, 'a', 64);
    long_label[64] = '\0';
    snprintf(text, sizeof(text), "pools:\n  - name: %s\n    manifest: a\n", long_label);
    snprintf(want, sizeof(want), "bindery.yaml:2: pools[0].name: " DNS_LABEL_RULE " (got \"%s\")",
             long_label);
    load_fails(text, BDY_EINVAL, want);
    snprintf(text, sizeof(text), "pools:\n  - name: a\n    namespace: %s\n    manifest: a\n",
             long_label);
    snprintf(want, sizeof(want),
             "bindery.yaml:3: pools[0].namespace: " DNS_LABEL_RULE " (got \"%s\")", long_label);
    load_fails(text, BDY_EINVAL, want);
    memset(long_sub, 'b', 254);
    for (size_t i = 60; i < 254; i += 61)
        long_sub[i] = '.';
    long_sub[254] = '\0';
    snprintf(text, sizeof(text), "pools:\n  - name: a\n    manifest: %s\n", long_sub);
    snprintf(want, sizeof(want),
             "bindery.yaml:3: pools[0].manifest: " DNS_SUBDOMAIN_RULE " (got \"%.64s...\")",
             long_sub);
    load_fails(text, BDY_EINVAL, want);
}

static void test_pool_cross_field(void **state)
{
    (void)state;
    const char *cases[][2] = {
        {"pools:\n  - name: a\n    minWarm: 2\n",
         "bindery.yaml:2: pools[0]: exactly one of manifest or booklet is required"},
        {"pools:\n  - name: a\n    manifest: a\n    booklet: b\n",
         "bindery.yaml:2: pools[0]: exactly one of manifest or booklet is required"},
        {"pools:\n  - {name: a, manifest: a}\n  - {name: b, manifest: ~, booklet: null}\n",
         "bindery.yaml:3: pools[1]: exactly one of manifest or booklet is required"},
        /* minWarm <= maxWarm <= maxWorlds, naming the key written. */
        {"pools:\n"
         "  - {name: a, manifest: a}\n"
         "  - name: b\n"
         "    manifest: b\n"
         "    minWarm: 5\n"
         "    maxWarm: 4\n",
         "bindery.yaml:6: pools[1].maxWarm: must be at least minWarm (5)"},
        {"pools:\n  - name: a\n    manifest: a\n    minWarm: 101\n",
         "bindery.yaml:4: pools[0].minWarm: must be at most maxWarm (100)"},
        {"pools:\n  - name: a\n    manifest: a\n    maxWarm: 1001\n",
         "bindery.yaml:4: pools[0].maxWarm: must be at most maxWorlds (1000)"},
        {"pools:\n  - name: a\n    manifest: a\n    maxWorlds: 99\n",
         "bindery.yaml:4: pools[0].maxWorlds: must be at least maxWarm (100)"},
        {"pools:\n  - name: a\n    maxWorlds: 5\n    maxWarm: 10\n    manifest: a\n",
         "bindery.yaml:3: pools[0].maxWorlds: must be at least maxWarm (10)"},
        {"pools:\n  - name: a\n    manifest: a\n    maxWarm: 0\n",
         "bindery.yaml:4: pools[0].maxWarm: must be at least minWarm (1)"},
        /* namespace/name is unique; "default" counts whether written or not. */
        {"pools:\n"
         "  - name: arena\n"
         "    manifest: arena\n"
         "  - name: arena\n"
         "    namespace: eu\n"
         "    manifest: arena\n"
         "  - manifest: other\n"
         "    namespace: default\n"
         "    name: arena\n",
         "bindery.yaml:9: pools[2].name: pool default/arena is defined twice (first at line 2)"},
        {"pools:\n  - {name: a, namespace: eu, manifest: m}\n  - {name: b, booklet: m}\n"
         "  - {namespace: eu, name: a, booklet: m}\n",
         "bindery.yaml:4: pools[2].name: pool eu/a is defined twice (first at line 2)"},
        /* Override windows: from and to of one kind, an absolute one
         * forwards. */
        {"pools:\n  - name: a\n    manifest: a\n    overrides:\n      - from: \"17:45\"\n"
         "        to: \"2025-06-01T19:00:00Z\"\n        minWarm: 5\n",
         "bindery.yaml:6: pools[0].overrides[0].to: must be the same kind as from (17:45): a "
         "time of day HH:MM"},
        {"pools:\n  - name: a\n    manifest: a\n    overrides:\n"
         "      - {from: \"2025-06-01T19:00:00Z\", to: \"2025-06-01T18:00:00Z\", minWarm: 5}\n",
         "bindery.yaml:5: pools[0].overrides[0].to: must be after from (2025-06-01T19:00:00Z)"},
        /* A window without its floor would do nothing. */
        {"pools:\n  - name: a\n    manifest: a\n    overrides:\n"
         "      - {from: \"10:00\", to: \"11:00\"}\n",
         "bindery.yaml:5: pools[0].overrides[0]: missing required key \"minWarm\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        load_fails(cases[i][0], BDY_EINVAL, cases[i][1]);

    /* Boundaries that are fine. */
    bdy_config *cfg = load_ok("pools:\n  - {name: a, manifest: a, minWarm: 0, maxWarm: 0}\n"
                              "  - {name: b, manifest: a, minWarm: 9, maxWarm: 9, maxWorlds: 9}\n");
    assert_int_equal(cfg->pools.items[0].max_warm, 0);
    assert_int_equal(cfg->pools.items[1].max_worlds, 9);
    bdy_config_free(cfg);
}

static void test_pool_unknown_keys(void **state)
{
    (void)state;
    const char *cases[][2] = {
        {"pools:\n  - name: a\n    manifest: a\n    maxwarm: 3\n",
         "bindery.yaml:4: unknown key \"pools[0].maxwarm\" (did you mean \"pools[0].maxWarm\"?)"},
        {"pools:\n  - {name: a, manifest: a}\n  - name: b\n    namespce: x\n",
         "bindery.yaml:4: unknown key \"pools[1].namespce\" (did you mean "
         "\"pools[1].namespace\"?)"},
        {"pools:\n  - name: a\n    manifest: a\n    replicas: 3\n",
         "bindery.yaml:4: unknown key \"pools[0].replicas\""},
        {"pools:\n  - name: a\n    manifests: a\n",
         "bindery.yaml:3: unknown key \"pools[0].manifests\" (did you mean "
         "\"pools[0].manifest\"?)"},
        {"pools:\n  - name: a\n    manifest: a\n    label: {a: b}\n",
         "bindery.yaml:4: unknown key \"pools[0].label\" (did you mean \"pools[0].labels\"?)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        load_fails(cases[i][0], BDY_EINVAL, cases[i][1]);
    /* A duplicate key inside a pool is a YAML error. */
    load_fails("pools:\n  - name: a\n    manifest: a\n    name: b\n", BDY_EPARSE,
               "bindery.yaml:4: duplicate key \"name\" (first at line 2)");
}

static void test_pool_labels(void **state)
{
    (void)state;
    char text[2048];
    char want[1024];
    char n63[64];
    char n64[65];
    char prefix[300];
    memset(n63, 'x', 63);
    n63[63] = '\0';
    memset(n64, 'x', 64);
    n64[64] = '\0';
    memset(prefix, 'p', 253);
    for (size_t i = 50; i < 253; i += 51)
        prefix[i] = '.';
    prefix[253] = '\0';

    /* Good keys: a plain name, prefixed names, the longest of each part. */
    const char *good_keys[] = {"a",
                               "A",
                               "9",
                               "a.b_c-d",
                               "example.com/a",
                               "k8s.io/Tier_1.x",
                               "notbindery.dev/a",
                               "bindery.dev.example.com/a"};
    for (size_t i = 0; i < sizeof(good_keys) / sizeof(good_keys[0]); i++) {
        snprintf(text, sizeof(text), "pools:\n  - {name: a, manifest: a, labels: {\"%s\": v}}\n",
                 good_keys[i]);
        bdy_config *cfg = load_ok(text);
        assert_int_equal(cfg->pools.items[0].labels.count, 1);
        assert_string_equal(cfg->pools.items[0].labels.items[0].key, good_keys[i]);
        bdy_config_free(cfg);
    }
    snprintf(text, sizeof(text), "pools:\n  - {name: a, manifest: a, labels: {\"%s/%s\": %s}}\n",
             prefix, n63, n63);
    bdy_config *cfg = load_ok(text);
    assert_int_equal(strlen(cfg->pools.items[0].labels.items[0].key), 253 + 1 + 63);
    assert_string_equal(cfg->pools.items[0].labels.items[0].value, n63);
    bdy_config_free(cfg);

    /* Bad keys. */
    const char *bad_keys[] = {
        "", "-a", "a-", "_a", "a b", "/a", "a/", "a/b/c", "Example.com/a", "ex_ample.com/a", ".a/b",
        "a..b/c", "é", n64,
        /* bindery's own: a pool's label would fake a world's template or pool */
        "bindery.dev/template", "x.bindery.dev/a"};
    for (size_t i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++) {
        snprintf(
            text, sizeof(text),
            "pools:\n  - name: a\n    manifest: a\n    labels:\n      ok: v\n      \"%s\": v\n",
            bad_keys[i]);
        snprintf(want, sizeof(want),
                 "bindery.yaml:6: pools[0].labels: " LABEL_KEY_RULE " (got \"%s\")", bad_keys[i]);
        load_fails(text, BDY_EINVAL, want);
    }
    /* A 254-byte prefix is one too many. */
    snprintf(text, sizeof(text), "pools:\n  - {name: a, manifest: a, labels: {\"%sq/a\": v}}\n",
             prefix);
    load_fails_prefix(text, BDY_EINVAL, "bindery.yaml:2: pools[0].labels: every key must be");

    /* Bad values, named by their key. */
    const char *bad_values[][2] = {
        {"-a", "\"-a\""}, {"a-", "\"a-\""}, {"\"a b\"", "\"a b\""}, {"\"a/b\"", "\"a/b\""},
        {"", "nothing"},  {"~", "\"~\""},   {"[a]", "a list"},      {"{a: b}", "a map"},
    };
    for (size_t i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++) {
        snprintf(text, sizeof(text),
                 "pools:\n  - name: a\n    manifest: a\n    labels:\n      game: %s\n",
                 bad_values[i][0]);
        snprintf(want, sizeof(want),
                 "bindery.yaml:5: pools[0].labels.game: " LABEL_VALUE_RULE " (got %s)",
                 bad_values[i][1]);
        load_fails(text, BDY_EINVAL, want);
    }
    snprintf(text, sizeof(text), "pools:\n  - {name: a, manifest: a, labels: {a.b/c: %s}}\n", n64);
    snprintf(want, sizeof(want),
             "bindery.yaml:2: pools[0].labels.a.b/c: " LABEL_VALUE_RULE " (got \"%s\")", n64);
    load_fails(text, BDY_EINVAL, want);

    /* At most BDY_CONFIG_MAX_LABELS labels. */
    size_t pos = (size_t)snprintf(text, sizeof(text),
                                  "pools:\n  - name: a\n    manifest: a\n"
                                  "    labels:\n");
    for (int i = 0; i < BDY_CONFIG_MAX_LABELS; i++)
        pos += (size_t)snprintf(text + pos, sizeof(text) - pos, "      l%d: v%d\n", i, i);
    cfg = load_ok(text);
    assert_int_equal(cfg->pools.items[0].labels.count, BDY_CONFIG_MAX_LABELS);
    assert_string_equal(cfg->pools.items[0].labels.items[31].key, "l31");
    assert_string_equal(cfg->pools.items[0].labels.items[31].value, "v31");
    bdy_config_free(cfg);
    snprintf(text + pos, sizeof(text) - pos, "      one-too-many: v\n");
    load_fails(text, BDY_EINVAL,
               "bindery.yaml:4: pools[0].labels: must have at most 32 entries "
               "(got 33)");
}

static void test_pools_cap(void **state)
{
    (void)state;
    size_t cap = (BDY_CONFIG_MAX_POOLS + 2) * 48 + 64;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t pos = (size_t)snprintf(text, cap, "pools:\n");
    for (int i = 0; i < BDY_CONFIG_MAX_POOLS; i++)
        pos += (size_t)snprintf(text + pos, cap - pos, "  - {name: p%d, manifest: m}\n", i);
    bdy_config *cfg = load_ok(text);
    assert_int_equal(cfg->pools.count, BDY_CONFIG_MAX_POOLS);
    assert_string_equal(cfg->pools.items[BDY_CONFIG_MAX_POOLS - 1].name, "p255");
    bdy_config_free(cfg);
    snprintf(text + pos, cap - pos, "  - {name: one-too-many, manifest: m}\n");
    load_fails(text, BDY_EINVAL, "bindery.yaml:1: pools: must have at most 256 entries (got 257)");
    free(text);
}

/* ---------------------------------------------------------------------- */
/* Paths                                                                    */

static void test_relative_path_resolution(void **state)
{
    (void)state;
    bdy_config *cfg = load_ok("dataDir: ./state//db/.\n"
                              "auth: {tokenFile: ../secrets/tokens.yaml}\n"
                              "crds: [/abs/crds/, ., x/./y]\n");
    assert_string_equal(cfg->data_dir, BASE "/state/db");
    assert_string_equal(cfg->auth.token_file, BASE "/../secrets/tokens.yaml");
    assert_string_equal(cfg->crds.items[0], "/abs/crds");
    assert_string_equal(cfg->crds.items[1], BASE);
    assert_string_equal(cfg->crds.items[2], BASE "/x/y");
    bdy_config_free(cfg);

    /* No base_dir: the current directory; a relative one: below it. */
    char cwd[PATH_MAX];
    char want[PATH_MAX + 64];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    bdy_errbuf eb;
    assert_int_equal(bdy_config_from_text("", 0, NULL, NULL, &cfg, &eb), 0);
    snprintf(want, sizeof(want), "%s/data", strcmp(cwd, "/") == 0 ? "" : cwd);
    assert_string_equal(cfg->data_dir, want);
    assert_string_equal(cfg->source, "<config>");
    bdy_config_free(cfg);
    assert_int_equal(bdy_config_from_text("", 0, NULL, "conf/", &cfg, &eb), 0);
    snprintf(want, sizeof(want), "%s/conf/data", strcmp(cwd, "/") == 0 ? "" : cwd);
    assert_string_equal(cfg->data_dir, want);
    bdy_config_free(cfg);
}

static void test_load_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/bdy-test-config-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[512];
    char want[1024];
    bdy_config *cfg = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);

    /* Relative paths resolve next to the file. */
    snprintf(path, sizeof(path), "%s/bindery.yaml", dir);
    write_text(path, "dataDir: state\nmanifests: [m]\n");
    assert_int_equal(bdy_config_load(path, &cfg, &eb), 0);
    snprintf(want, sizeof(want), "%s/state", dir);
    assert_string_equal(cfg->data_dir, want);
    snprintf(want, sizeof(want), "%s/m", dir);
    assert_string_equal(cfg->manifests.items[0], want);
    assert_string_equal(cfg->base_dir, dir);
    assert_string_equal(cfg->source, path);
    bdy_config_free(cfg);
    cfg = NULL;

    /* An empty file is all defaults. */
    write_text(path, "");
    assert_int_equal(bdy_config_load(path, &cfg, &eb), 0);
    assert_defaults_except_paths(cfg);
    bdy_config_free(cfg);
    cfg = NULL;

    /* Errors carry the path as given. */
    write_text(path, "logLevel: info\nhttp:\n  threads: many\n");
    assert_int_equal(bdy_config_load(path, &cfg, &eb), BDY_EINVAL);
    assert_null(cfg);
    snprintf(want, sizeof(want),
             "%s:3: http.threads: must be an integer between 1 and 64 (got \"many\")", path);
    assert_string_equal(eb.message, want);

    write_text(path, "http: [\n");
    assert_int_equal(bdy_config_load(path, &cfg, &eb), BDY_EPARSE);
    snprintf(want, sizeof(want), "%s:2: ", path);
    assert_int_equal(strncmp(eb.message, want, strlen(want)), 0);

    snprintf(path, sizeof(path), "%s/missing.yaml", dir);
    assert_int_equal(bdy_config_load(path, &cfg, &eb), BDY_ENOTFOUND);
    snprintf(want, sizeof(want), "%s: no such file", path);
    assert_string_equal(eb.message, want);
    assert_int_equal(bdy_config_load(dir, &cfg, &eb), BDY_EINVAL);
    assert_null(cfg);

    /* Over the size cap. */
    snprintf(path, sizeof(path), "%s/big.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    char line[64];
    memset(line, '.', sizeof(line));
    line[0] = '#';
    line[63] = '\n';
    for (unsigned i = 0; i <= BDY_CONFIG_MAX_BYTES / sizeof(line); i++)
        assert_int_equal(fwrite(line, 1, sizeof(line), f), sizeof(line));
    assert_int_equal(fclose(f), 0);
    assert_int_equal(bdy_config_load(path, &cfg, &eb), BDY_ETOOBIG);
    assert_null(cfg);
    assert_non_null(strstr(eb.message, "big.yaml"));
    remove_tree(dir);

    /* The same cap applies to text given directly. */
    assert_int_equal(bdy_config_from_text("", BDY_CONFIG_MAX_BYTES + 1, "x.yaml", BASE, &cfg, &eb),
                     BDY_ETOOBIG);
    assert_null(cfg);
}

/* The shipped example must load and sit at the defaults, apart from its
 * manifests folder and its one pool. */
static void test_example_config(void **state)
{
    (void)state;
    char path[PATH_MAX];
    char want[PATH_MAX + 32];
    const char *file = __FILE__;
    const char *slash = strrchr(file, '/');
    /* __FILE__ is tests/unit/test_config.c, relative or absolute. */
    snprintf(path, sizeof(path), "%.*s/../../examples/bindery.yaml",
             slash ? (int)(slash - file) : 1, slash ? file : ".");
    bdy_config *cfg = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy_config_load(path, &cfg, &eb);
    if (rc != 0)
        fail_msg("%s", eb.message);
    assert_defaults_except_paths(cfg);
    /* The example keeps its data and world logs at the repository's top,
     * and runs worlds from the build's bin folder. */
    snprintf(want, sizeof(want), "%s/../data", cfg->base_dir);
    assert_string_equal(cfg->data_dir, want);
    snprintf(want, sizeof(want), "%s/../build/bin", cfg->base_dir);
    assert_string_equal(cfg->runtime.work_dir, want);
    assert_int_equal(cfg->manifests.count, 1);
    snprintf(want, sizeof(want), "%s/manifests", cfg->base_dir);
    assert_string_equal(cfg->manifests.items[0], want);
    size_t blen = strlen(cfg->base_dir);
    assert_true(blen >= 8 && strcmp(cfg->base_dir + blen - 8, "examples") == 0);
    snprintf(want, sizeof(want), "%s/../data/worlds", cfg->base_dir);
    assert_string_equal(cfg->runtime.log_dir, want);

    /* The pools the README's run command starts: arena, and arena-duo of
     * a booklet. */
    assert_int_equal(cfg->pools.count, 2);
    const bdy_config_pool *p = &cfg->pools.items[0];
    assert_string_equal(p->name, "arena");
    assert_string_equal(p->ns, "default");
    assert_string_equal(p->manifest, "arena");
    assert_null(p->booklet);
    assert_int_equal(p->min_warm, 3);
    assert_int_equal(p->max_warm, 20);
    assert_int_equal(p->max_worlds, 50);
    assert_true(p->service_level == 0.99);
    assert_int_equal(p->creation_rate, 20);
    assert_int_equal(p->scale_down_cooldown_s, 60);
    assert_int_equal(p->labels.count, 1);
    assert_string_equal(p->labels.items[0].key, "game");
    assert_string_equal(p->labels.items[0].value, "arena");
    p = &cfg->pools.items[1];
    assert_string_equal(p->name, "arena-duo");
    assert_null(p->manifest);
    assert_string_equal(p->booklet, "arena-duo");
    assert_int_equal(p->min_warm, 1);
    bdy_config_free(cfg);
}

/* ---------------------------------------------------------------------- */
/* Overrides                                                                */

static void test_overrides(void **state)
{
    (void)state;
    bdy_config *cfg = load_ok("listen: 127.0.0.1:1\ndataDir: d\n");
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);

    assert_int_equal(bdy_config_override_listen(cfg, "[::]:8080", &eb), 0);
    assert_string_equal(cfg->listen, "[::]:8080");
    assert_int_equal(bdy_config_override_listen(cfg, "bad", &eb), BDY_EINVAL);
    assert_string_equal(eb.message,
                        "--listen: must be IPv4:port, localhost:port or [IPv6]:port with a port "
                        "between 0 and 65535, e.g. \"127.0.0.1:7780\" or \"[::1]:7780\" (got "
                        "\"bad\")");
    assert_string_equal(cfg->listen, "[::]:8080");
    assert_int_equal(bdy_config_override_listen(cfg, "h:70000", &eb), BDY_EINVAL);
    assert_int_equal(bdy_config_override_listen(cfg, NULL, &eb), BDY_EINVAL);
    assert_string_equal(cfg->listen, "[::]:8080");

    /* A relative --data is relative to the current directory, not the
     * config file. */
    char cwd[PATH_MAX];
    char want[PATH_MAX + 64];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(bdy_config_override_data_dir(cfg, "run/data", &eb), 0);
    snprintf(want, sizeof(want), "%s/run/data", strcmp(cwd, "/") == 0 ? "" : cwd);
    assert_string_equal(cfg->data_dir, want);
    assert_int_equal(bdy_config_override_data_dir(cfg, "/var/x/", &eb), 0);
    assert_string_equal(cfg->data_dir, "/var/x");
    /* On the command line "null" is a folder name like any other. */
    assert_int_equal(bdy_config_override_data_dir(cfg, "/tmp/null", &eb), 0);
    assert_string_equal(cfg->data_dir, "/tmp/null");
    assert_int_equal(bdy_config_override_data_dir(cfg, "", &eb), BDY_EINVAL);
    assert_string_equal(eb.message, "--data: must not be empty");
    assert_int_equal(bdy_config_override_data_dir(cfg, NULL, &eb), BDY_EINVAL);
    assert_string_equal(cfg->data_dir, "/tmp/null");
    bdy_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),           cmocka_unit_test(test_every_field),
        cmocka_unit_test(test_listen_forms),       cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_list_cap),           cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_malformed_yaml),     cmocka_unit_test(test_not_a_map),
        cmocka_unit_test(test_runtime_bad_values), cmocka_unit_test(test_full_pool),
        cmocka_unit_test(test_pool_bad_values),    cmocka_unit_test(test_pool_cross_field),
        cmocka_unit_test(test_pool_unknown_keys),  cmocka_unit_test(test_pool_labels),
        cmocka_unit_test(test_pools_cap),          cmocka_unit_test(test_relative_path_resolution),
        cmocka_unit_test(test_load_file),          cmocka_unit_test(test_example_config),
        cmocka_unit_test(test_overrides),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
