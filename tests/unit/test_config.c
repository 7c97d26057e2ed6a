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
    assert_int_equal(cfg->store.watch_history, 10000);
    assert_int_equal(cfg->store.max_batch, 512);
    assert_int_equal(cfg->store.busy_timeout_ms, 5000);
    assert_int_equal(cfg->crds.count, 0);
    assert_null(cfg->crds.items);
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
    bdy_config_free(cfg);

    /* Comments only, "---" only, and sections written without values. */
    const char *same[] = {"# nothing here\n", "---\n", "http:\nauth: ~\nstore: null\ncrds:\n"};
    for (size_t i = 0; i < 3; i++) {
        cfg = load_ok(same[i]);
        assert_defaults_except_paths(cfg);
        assert_string_equal(cfg->data_dir, BASE "/data");
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
                              "store:\n"
                              "  watchHistory: 10000000\n"
                              "  maxBatch: 1\n"
                              "  busyTimeoutMs: 0\n"
                              "crds:\n"
                              "  - crds\n"
                              "  - /opt/bindery/crds/world.yaml\n"
                              "manifests: [manifests, \"more manifests\"]\n");
    assert_string_equal(cfg->listen, "[::1]:9000");
    assert_string_equal(cfg->data_dir, "/var/lib/bindery");
    assert_int_equal(cfg->log_level, BDY_LOG_DEBUG);
    assert_int_equal(cfg->http.threads, 64);
    assert_int_equal(cfg->http.max_body_bytes, 16777216);
    assert_int_equal(cfg->http.connection_timeout_s, 1);
    assert_int_equal(cfg->http.max_connections, 100000);
    assert_int_equal(cfg->http.header_limit_bytes, 4096);
    assert_string_equal(cfg->auth.token_file, BASE "/secrets/tokens.yaml");
    assert_int_equal(cfg->store.watch_history, 10000000);
    assert_int_equal(cfg->store.max_batch, 1);
    assert_int_equal(cfg->store.busy_timeout_ms, 0);
    assert_int_equal(cfg->crds.count, 2);
    assert_string_equal(cfg->crds.items[0], BASE "/crds");
    assert_string_equal(cfg->crds.items[1], "/opt/bindery/crds/world.yaml");
    assert_int_equal(cfg->manifests.count, 2);
    assert_string_equal(cfg->manifests.items[0], BASE "/manifests");
    assert_string_equal(cfg->manifests.items[1], BASE "/more manifests");
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
    const char *good[] = {"0.0.0.0:0",     "[::]:65535",          "localhost:7780",
                          "[fe80::1]:80",  "[::ffff:10.0.0.1]:1", "my-host.example.com:443",
                          "10.1.2.3:00080"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "listen: \"%s\"\n", good[i]);
        bdy_config *cfg = load_ok(text);
        assert_string_equal(cfg->listen, good[i]);
        bdy_config_free(cfg);
    }
    const char *bad[] = {"nowhere",      "::1:7780",   "[::1]7780", "[zz]:1",
                         "[]:1",         "host:65536", "host:",     ":80",
                         "999.1.1.1:80", "a b:1",      "[::1]:-1",  "host:8x",
                         "host:123456",  "[::1:80",    "h:o:80",    "1.2.3:80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[128];
        char want[512];
        snprintf(text, sizeof(text), "# c\nlisten: \"%s\"\n", bad[i]);
        snprintf(want, sizeof(want),
                 "bindery.yaml:2: listen: must be host:port with a port between 0 and 65535, "
                 "e.g. \"127.0.0.1:7780\" or \"[::1]:7780\" (got \"%s\")",
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
        {"listen:\n", "bindery.yaml:1: listen: must be host:port with a port between 0 and "
                      "65535, e.g. \"127.0.0.1:7780\" or \"[::1]:7780\" (got nothing)"},
        {"auth:\n  tokenFile: {a: 1}\n",
         "bindery.yaml:2: auth.tokenFile: must be a path or null (got a map)"},
        {"auth:\n  tokenFile: ''\n", "bindery.yaml:2: auth.tokenFile: must not be empty"},
        {"http: 5\n", "bindery.yaml:1: http: must be a map (got \"5\")"},
        {"store: [1, 2]\n", "bindery.yaml:1: store: must be a map (got a list)"},
        {"auth: off\n", "bindery.yaml:1: auth: must be a map (got \"off\")"},
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
        {"pools: []\n", "bindery.yaml:1: unknown key \"pools\""},
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

/* The shipped example must load and sit at the defaults. */
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
    snprintf(want, sizeof(want), "%s/data", cfg->base_dir);
    assert_string_equal(cfg->data_dir, want);
    assert_int_equal(cfg->manifests.count, 1);
    snprintf(want, sizeof(want), "%s/manifests", cfg->base_dir);
    assert_string_equal(cfg->manifests.items[0], want);
    size_t blen = strlen(cfg->base_dir);
    assert_true(blen >= 8 && strcmp(cfg->base_dir + blen - 8, "examples") == 0);
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
                        "--listen: must be host:port with a port between 0 and 65535, e.g. "
                        "\"127.0.0.1:7780\" or \"[::1]:7780\" (got \"bad\")");
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
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_field),
        cmocka_unit_test(test_listen_forms),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_list_cap),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_malformed_yaml),
        cmocka_unit_test(test_not_a_map),
        cmocka_unit_test(test_relative_path_resolution),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_example_config),
        cmocka_unit_test(test_overrides),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
