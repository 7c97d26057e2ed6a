/* Secrets and ConfigMaps (reconciler/corekinds.c): stringData, base64,
 * keys, the 1 MiB cap, type and immutability, first on the function
 * itself, then through the embedded store, whose every write path (create,
 * update, merge and JSON patch, dry run) must apply the same rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bindery/jsonutil.h"
#include "bindery/store.h"

#include "../../reconciler/corekinds.h"
#include "builtin_info.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static json_object *parse(const char *text)
{
    json_object *o = json_tokener_parse(text);
    if (o == NULL)
        fail_msg("bad test JSON: %s", text);
    return o;
}

/* Runs the rules of resource ("secrets" or "configmaps") on text (over
 * old_text on an update, else NULL). Returns the code; *out is the
 * prepared object (caller frees) and eb the causes. */
static int prepare_mode(const char *resource, const char *text, const char *old_text,
                        bdy_unknown_fields mode, json_object **out, bdy_errbuf *eb)
{
    bdy_resource_info info = builtin_info(resource);
    json_object *obj = parse(text);
    json_object *old = old_text != NULL ? parse(old_text) : NULL;
    bdy_errbuf_clear(eb);
    int rc = bdy__corekind_prepare(&info, obj, old, mode, eb);
    json_object_put(old);
    *out = obj;
    return rc;
}

static int prepare(const char *resource, const char *text, const char *old_text, json_object **out,
                   bdy_errbuf *eb)
{
    return prepare_mode(resource, text, old_text, BDY_UNKNOWN_PRUNE, out, eb);
}

/* The rules refuse text (with a cause on field saying want). */
static void expect_invalid(const char *resource, const char *text, const char *old_text,
                           const char *field, const char *want)
{
    json_object *out = NULL;
    bdy_errbuf eb;
    int rc = prepare(resource, text, old_text, &out, &eb);
    json_object_put(out);
    if (rc != BDY_EINVALID_OBJECT)
        fail_msg("%s: rc %d, wanted BDY_EINVALID_OBJECT", text, rc);
    for (size_t i = 0; i < eb.ncauses; i++) {
        /* A cause's field is cut at its buffer (a 254-character key). */
        if (strncmp(eb.causes[i].field, field, sizeof(eb.causes[i].field) - 1) == 0 &&
            strstr(eb.causes[i].message, want) != NULL)
            return;
    }
    fail_msg("%s: no cause on %s with \"%s\" (first: %s: %s)", text, field, want,
             eb.ncauses ? eb.causes[0].field : "", eb.ncauses ? eb.causes[0].message : "");
}

/* The rules accept text and it comes out as want (JSON text). */
static void expect_prepared(const char *resource, const char *text, const char *old_text,
                            const char *want)
{
    json_object *out = NULL;
    bdy_errbuf eb;
    int rc = prepare(resource, text, old_text, &out, &eb);
    if (rc != 0) {
        json_object_put(out);
        fail_msg("%s: rc %d: %s: %s", text, rc, eb.ncauses ? eb.causes[0].field : "",
                 eb.ncauses ? eb.causes[0].message : "");
    }
    json_object *expected = parse(want);
    bool same = json_object_equal(out, expected);
    char got[2048];
    snprintf(got, sizeof(got), "%s", json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN));
    json_object_put(expected);
    json_object_put(out);
    if (!same)
        fail_msg("%s:\n got  %s\n want %s", text, got, want);
}

static void test_string_data_merged_into_data(void **state)
{
    (void)state;
    /* stringData wins on a clash, is encoded, and goes; type defaults. */
    expect_prepared(
        "secrets",
        "{\"data\":{\"a\":\"eA==\",\"c\":\"\"},\"stringData\":{\"a\":\"yy\",\"b\":\"z\"}}", NULL,
        "{\"data\":{\"a\":\"eXk=\",\"c\":\"\",\"b\":\"eg==\"},\"type\":\"Opaque\"}");
    expect_prepared("secrets", "{\"stringData\":{\"k\":\"hunter2\"},\"type\":\"\"}", NULL,
                    "{\"data\":{\"k\":\"aHVudGVyMg==\"},\"type\":\"Opaque\"}");
    /* Empty or null maps are left out, as the API server leaves them out. */
    expect_prepared("secrets", "{\"data\":{},\"stringData\":null,\"type\":\"x/y\"}", NULL,
                    "{\"type\":\"x/y\"}");
    expect_prepared("secrets", "{\"data\":null,\"immutable\":null}", NULL, "{\"type\":\"Opaque\"}");
    /* Other kinds are left alone. */
    bdy_resource_info pods = builtin_info("pods");
    json_object *pod = parse("{\"stringData\":{\"a b\":1}}");
    assert_int_equal(bdy__corekind_prepare(&pods, pod, NULL, BDY_UNKNOWN_REJECT, NULL), 0);
    assert_non_null(bdy_jget(pod, "stringData"));
    json_object_put(pod);
}

static void test_base64_is_standard_and_canonical(void **state)
{
    (void)state;
    /* Line breaks are allowed (Go's decoder skips them) and removed, as
     * the API server sends back what it decoded. */
    expect_prepared("secrets", "{\"data\":{\"k\":\"aGVs\\r\\nbG8=\\n\"}}", NULL,
                    "{\"data\":{\"k\":\"aGVsbG8=\"},\"type\":\"Opaque\"}");
    const char *bad[] = {"aGVsbG8",  "aGVsbG8==", "aGV sbG8=", "a===",      "aGVs\\tbG8=",
                         "aGVs*G8=", "aG=sbG8=",  "=",         "aGVsbG8=a", "-_-_"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "{\"data\":{\"k\":\"%s\"}}", bad[i]);
        expect_invalid("secrets", text, NULL, "data[k]", "must be standard base64");
        snprintf(text, sizeof(text), "{\"binaryData\":{\"k\":\"%s\"}}", bad[i]);
        expect_invalid("configmaps", text, NULL, "binaryData[k]", "must be standard base64");
    }
    expect_invalid("secrets", "{\"data\":{\"k\":5}}", NULL, "data[k]", "base64-encoded string");
    expect_invalid("secrets", "{\"data\":[\"eA==\"]}", NULL, "data", "must be a map");
    expect_invalid("secrets", "{\"stringData\":{\"k\":true}}", NULL, "stringData[k]",
                   "must be a string");
    expect_invalid("secrets", "{\"stringData\":\"k\"}", NULL, "stringData", "must be a map");
}

static void test_keys(void **state)
{
    (void)state;
    char long_key[300];
    memset(long_key, 'k', 254);
    long_key[254] = '\0';
    const struct {
        const char *key;
        const char *want;
    } bad[] = {
        {"a b", "a valid config key"},
        {"", "a valid config key"},
        {"a/b", "a valid config key"},
        {".", "must not be '.'"},
        {"..", "must not be '..'"},
        {"..x", "must not start with '..'"},
        {long_key, "must be no more than 253 characters"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[512];
        char field[300];
        snprintf(text, sizeof(text), "{\"stringData\":{\"%s\":\"v\"}}", bad[i].key);
        snprintf(field, sizeof(field), "stringData[%s]", bad[i].key);
        expect_invalid("secrets", text, NULL, field, bad[i].want);
        snprintf(text, sizeof(text), "{\"data\":{\"%s\":\"eA==\"}}", bad[i].key);
        snprintf(field, sizeof(field), "data[%s]", bad[i].key);
        expect_invalid("secrets", text, NULL, field, bad[i].want);
        snprintf(text, sizeof(text), "{\"data\":{\"%s\":\"v\"}}", bad[i].key);
        expect_invalid("configmaps", text, NULL, field, bad[i].want);
    }
    /* 253 characters, and every character the rule allows. */
    long_key[253] = '\0';
    char text[512];
    char want[512];
    snprintf(text, sizeof(text), "{\"data\":{\"%s\":\"v\",\"-._aZ09\":\"w\",\".a\":\"x\"}}",
             long_key);
    snprintf(want, sizeof(want), "{\"data\":{\"%s\":\"v\",\"-._aZ09\":\"w\",\".a\":\"x\"}}",
             long_key);
    expect_prepared("configmaps", text, NULL, want);
}

/* A JSON object text with one member key holding a string of n bytes
 * (base64 of n bytes when b64), in map. Caller frees. */
static char *big_object(const char *map, size_t n, bool b64, const char *extra)
{
    size_t len = b64 ? 4 * ((n + 2) / 3) : n;
    char *text = malloc(len + 256);
    assert_non_null(text);
    int pre = snprintf(text, 128, "{%s\"%s\":{\"k\":\"", extra, map);
    char *p = text + pre;
    if (b64) {
        for (size_t i = 0; i < n / 3; i++, p += 4)
            memcpy(p, "AAAA", 4);
        if (n % 3 == 1)
            memcpy(p, "AA==", 4), p += 4;
        else if (n % 3 == 2)
            memcpy(p, "AAA=", 4), p += 4;
    } else {
        memset(p, 'x', n);
        p += n;
    }
    snprintf(p, 8, "\"}}");
    return text;
}

static void test_one_mebibyte(void **state)
{
    (void)state;
    const size_t cap = BDY__CORE_DATA_MAX_BYTES;
    json_object *out = NULL;
    bdy_errbuf eb;
    const struct {
        const char *resource;
        const char *map;
        bool b64;
    } cases[] = {{"secrets", "stringData", false},
                 {"secrets", "data", true},
                 {"configmaps", "data", false},
                 {"configmaps", "binaryData", true}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *at = big_object(cases[i].map, cap, cases[i].b64, "");
        char *over = big_object(cases[i].map, cap + 1, cases[i].b64, "");
        assert_int_equal(prepare(cases[i].resource, at, NULL, &out, &eb), 0);
        json_object_put(out);
        assert_int_equal(prepare(cases[i].resource, over, NULL, &out, &eb), BDY_EINVALID_OBJECT);
        json_object_put(out);
        assert_string_equal(eb.causes[0].field, "data");
        assert_non_null(strstr(eb.causes[0].message, "Too long"));
        free(at);
        free(over);
    }
    /* The cap holds for all values together: data and stringData, data
     * and binaryData. */
    char *both = big_object("stringData", cap - 1, false, "\"data\":{\"j\":\"eHg=\"},");
    assert_int_equal(prepare("secrets", both, NULL, &out, &eb), BDY_EINVALID_OBJECT);
    json_object_put(out);
    free(both);
    both = big_object("data", cap - 1, false, "\"binaryData\":{\"j\":\"eHg=\"},");
    assert_int_equal(prepare("configmaps", both, NULL, &out, &eb), BDY_EINVALID_OBJECT);
    json_object_put(out);
    free(both);
    /* A key stringData replaces counts once. */
    both = big_object("stringData", cap, false, "\"data\":{\"k\":\"eHg=\"},");
    assert_int_equal(prepare("secrets", both, NULL, &out, &eb), 0);
    json_object_put(out);
    free(both);
}

static void test_secret_type_and_immutable(void **state)
{
    (void)state;
    const char *old = "{\"data\":{\"k\":\"eA==\"},\"type\":\"Opaque\"}";
    const char *frozen = "{\"data\":{\"k\":\"eA==\"},\"type\":\"Opaque\",\"immutable\":true}";
    /* type never changes; leaving it out means Opaque again. */
    expect_invalid("secrets", "{\"data\":{\"k\":\"eA==\"},\"type\":\"kubernetes.io/tls\"}", old,
                   "type", "field is immutable");
    expect_invalid("secrets", "{\"data\":{\"k\":\"eA==\"}}",
                   "{\"data\":{\"k\":\"eA==\"},\"type\":\"x/y\"}", "type", "field is immutable");
    expect_prepared("secrets", "{\"stringData\":{\"k\":\"y\"}}", old,
                    "{\"data\":{\"k\":\"eQ==\"},\"type\":\"Opaque\"}");
    expect_invalid("secrets", "{\"type\":7}", NULL, "type", "must be a string");
    expect_invalid("secrets", "{\"immutable\":\"yes\"}", NULL, "immutable", "must be a boolean");
    /* Immutable: data and stringData are frozen, and so is the flag. */
    expect_invalid("secrets", "{\"data\":{\"k\":\"eQ==\"},\"immutable\":true}", frozen, "data",
                   "field is immutable when `immutable` is set");
    expect_invalid("secrets",
                   "{\"data\":{\"k\":\"eA==\"},\"stringData\":{\"j\":\"1\"},"
                   "\"immutable\":true}",
                   frozen, "data", "field is immutable when `immutable` is set");
    expect_invalid("secrets", "{\"data\":{\"k\":\"eA==\"},\"immutable\":false}", frozen,
                   "immutable", "field is immutable when `immutable` is set");
    expect_invalid("secrets", "{\"data\":{\"k\":\"eA==\"}}", frozen, "immutable",
                   "field is immutable when `immutable` is set");
    /* What does not change passes, metadata included; stringData holding
     * the same value is no change. */
    expect_prepared("secrets",
                    "{\"metadata\":{\"labels\":{\"a\":\"b\"}},\"stringData\":{\"k\":\"x\"},"
                    "\"immutable\":true}",
                    frozen,
                    "{\"metadata\":{\"labels\":{\"a\":\"b\"}},\"data\":{\"k\":\"eA==\"},"
                    "\"type\":\"Opaque\",\"immutable\":true}");
    /* Not yet immutable: anything goes, immutable too. */
    expect_prepared("secrets", "{\"data\":{\"k\":\"eQ==\"},\"immutable\":true}", old,
                    "{\"data\":{\"k\":\"eQ==\"},\"type\":\"Opaque\",\"immutable\":true}");
}

static void test_configmap(void **state)
{
    (void)state;
    expect_prepared(
        "configmaps",
        "{\"data\":{\"a\":\"b\",\"empty\":\"\"},\"binaryData\":{\"bin\":\"AP9o\\naQ==\"}}", NULL,
        "{\"data\":{\"a\":\"b\",\"empty\":\"\"},\"binaryData\":{\"bin\":\"AP9oaQ==\"}}");
    expect_prepared("configmaps", "{\"data\":{},\"binaryData\":null,\"immutable\":false}", NULL,
                    "{\"immutable\":false}");
    expect_invalid("configmaps", "{\"data\":{\"k\":\"v\"},\"binaryData\":{\"k\":\"eA==\"}}", NULL,
                   "data[k]", "duplicate of key present in binaryData");
    expect_invalid("configmaps", "{\"data\":{\"k\":1}}", NULL, "data[k]", "must be a string");
    expect_invalid("configmaps", "{\"binaryData\":\"eA==\"}", NULL, "binaryData", "must be a map");
    const char *frozen = "{\"data\":{\"k\":\"v\"},\"binaryData\":{\"b\":\"eA==\"},"
                         "\"immutable\":true}";
    expect_invalid("configmaps",
                   "{\"data\":{\"k\":\"w\"},\"binaryData\":{\"b\":\"eA==\"},\"immutable\":true}",
                   frozen, "data", "field is immutable when `immutable` is set");
    expect_invalid("configmaps", "{\"data\":{\"k\":\"v\"},\"immutable\":true}", frozen,
                   "binaryData", "field is immutable when `immutable` is set");
    expect_invalid("configmaps", "{\"data\":{\"k\":\"v\"},\"binaryData\":{\"b\":\"eA==\"}}", frozen,
                   "immutable", "field is immutable when `immutable` is set");
    /* Line breaks in binaryData are no change. */
    expect_prepared(
        "configmaps",
        "{\"data\":{\"k\":\"v\"},\"binaryData\":{\"b\":\"eA=\\n=\"},\"immutable\":true}", frozen,
        frozen);
}

static void test_unknown_fields(void **state)
{
    (void)state;
    expect_prepared("secrets", "{\"spec\":{\"a\":1},\"status\":{},\"stringData\":{\"k\":\"x\"}}",
                    NULL, "{\"data\":{\"k\":\"eA==\"},\"type\":\"Opaque\"}");
    expect_prepared("configmaps", "{\"stringData\":{\"k\":\"x\"},\"type\":\"Opaque\"}", NULL, "{}");
    json_object *out = NULL;
    bdy_errbuf eb;
    assert_int_equal(prepare_mode("configmaps",
                                  "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\","
                                  "\"metadata\":{},\"type\":\"x\",\"data\":{}}",
                                  NULL, BDY_UNKNOWN_REJECT, &out, &eb),
                     BDY_EINVALID_OBJECT);
    json_object_put(out);
    assert_int_equal(eb.ncauses, 1);
    assert_string_equal(eb.causes[0].field, "type");
    assert_string_equal(eb.causes[0].message, "unknown field \"type\"");
}

/* ---- through the store ------------------------------------------------------------ */

typedef struct fixture {
    char dir[64];
    bdy_store *store;
} fixture;

static int store_setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/bdy-corekinds-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    bdy_sqlite_opts o = {.data_dir = f->dir, .watch_history = 64, .max_batch = 64, .quiet = true};
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    if (bdy_store_sqlite_open(&o, &f->store, &eb) != 0)
        fail_msg("open: %s", eb.message);
    *state = f;
    return 0;
}

static int store_teardown(void **state)
{
    fixture *f = *state;
    char cmd[128];
    bdy_store_close(f->store);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static const char *data_of(json_object *obj, const char *key)
{
    return bdy_jstr(bdy_jget(obj, "data"), key);
}

static void test_store_applies_rules_on_every_write(void **state)
{
    fixture *f = *state;
    bdy_store *s = f->store;
    json_object *out = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    /* create: stringData becomes data, and is not stored. */
    json_object *obj = parse("{\"apiVersion\":\"v1\",\"kind\":\"Secret\","
                             "\"metadata\":{\"name\":\"db\"},\"stringData\":{\"url\":\"x\"}}");
    assert_int_equal(bdy_store_create(s, &BDY_GVR_SECRETS, "default", obj, NULL, NULL, &eb), 0);
    json_object_put(obj);
    assert_int_equal(bdy_store_get(s, &BDY_GVR_SECRETS, "default", "db", &out, &eb), 0);
    assert_string_equal(data_of(out, "url"), "eA==");
    assert_string_equal(bdy_jstr(out, "type"), "Opaque");
    assert_null(bdy_jget(out, "stringData"));
    const char *rv = bdy_jstr(bdy_jget(out, "metadata"), "resourceVersion");
    char rv_before[32];
    snprintf(rv_before, sizeof(rv_before), "%s", rv);
    /* update (PUT) with the same stringData is no change: same version. */
    json_object_object_add(out, "stringData", parse("{\"url\":\"x\"}"));
    json_object *put = NULL;
    assert_int_equal(bdy_store_update(s, &BDY_GVR_SECRETS, "default", out, NULL, &put, &eb), 0);
    assert_string_equal(bdy_jstr(bdy_jget(put, "metadata"), "resourceVersion"), rv_before);
    assert_null(bdy_jget(put, "stringData"));
    json_object_put(put);
    json_object_put(out);
    /* merge patch: stringData merges into data. */
    json_object *p = parse("{\"stringData\":{\"pw\":\"s3\"}}");
    assert_int_equal(bdy_store_patch(s, &BDY_GVR_SECRETS, "default", "db", BDY_PATCH_MERGE, p,
                                     false, NULL, &out, &eb),
                     0);
    json_object_put(p);
    assert_string_equal(data_of(out, "pw"), "czM=");
    assert_string_equal(data_of(out, "url"), "eA==");
    json_object_put(out);
    /* JSON patch with a bad key: refused, nothing changes. */
    p = parse("[{\"op\":\"add\",\"path\":\"/data/a b\",\"value\":\"eA==\"}]");
    assert_int_equal(bdy_store_patch(s, &BDY_GVR_SECRETS, "default", "db", BDY_PATCH_JSON, p, false,
                                     NULL, &out, &eb),
                     BDY_EINVALID_OBJECT);
    json_object_put(p);
    assert_non_null(strstr(eb.message, "Secret \"db\" is invalid: data[a b]"));
    /* Made immutable, then every way of changing data is refused. */
    p = parse("{\"immutable\":true}");
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_store_patch(s, &BDY_GVR_SECRETS, "default", "db", BDY_PATCH_MERGE, p,
                                     false, NULL, NULL, &eb),
                     0);
    json_object_put(p);
    const char *changes[] = {"{\"stringData\":{\"url\":\"y\"}}", "{\"data\":{\"url\":null}}",
                             "{\"type\":\"Other\"}", "{\"immutable\":false}"};
    for (size_t i = 0; i < sizeof(changes) / sizeof(changes[0]); i++) {
        p = parse(changes[i]);
        bdy_errbuf_clear(&eb);
        assert_int_equal(bdy_store_patch(s, &BDY_GVR_SECRETS, "default", "db", BDY_PATCH_MERGE, p,
                                         false, NULL, NULL, &eb),
                         BDY_EINVALID_OBJECT);
        json_object_put(p);
    }
    /* Labels still change. */
    p = parse("{\"metadata\":{\"labels\":{\"a\":\"b\"}}}");
    assert_int_equal(bdy_store_patch(s, &BDY_GVR_SECRETS, "default", "db", BDY_PATCH_MERGE, p,
                                     false, NULL, NULL, &eb),
                     0);
    json_object_put(p);
    /* A dry run is checked as much as a write. */
    obj = parse("{\"metadata\":{\"name\":\"cm\"},\"data\":{\"..\":\"x\"}}");
    bdy_write_opts dry = {.dry_run = true};
    assert_int_equal(bdy_store_create(s, &BDY_GVR_CONFIGMAPS, "default", obj, &dry, NULL, &eb),
                     BDY_EINVALID_OBJECT);
    json_object_put(obj);
    /* Selected by type, as in Kubernetes. */
    bdy_list_opts lo = {.ns = "default", .field_selector = "type=Opaque"};
    bdy_list_result lr = {0};
    assert_int_equal(bdy_store_list(s, &BDY_GVR_SECRETS, &lo, &lr, &eb), 0);
    assert_int_equal(json_object_array_length(lr.items), 1);
    bdy_list_result_free(&lr);
    lo.field_selector = "type!=Opaque";
    assert_int_equal(bdy_store_list(s, &BDY_GVR_SECRETS, &lo, &lr, &eb), 0);
    assert_int_equal(json_object_array_length(lr.items), 0);
    bdy_list_result_free(&lr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_string_data_merged_into_data),
        cmocka_unit_test(test_base64_is_standard_and_canonical),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_one_mebibyte),
        cmocka_unit_test(test_secret_type_and_immutable),
        cmocka_unit_test(test_configmap),
        cmocka_unit_test(test_unknown_fields),
        cmocka_unit_test_setup_teardown(test_store_applies_rules_on_every_write, store_setup,
                                        store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
