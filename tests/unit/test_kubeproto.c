/* Kubernetes protobuf bodies of Secrets, ConfigMaps and Namespaces
 * (allocator/kubeapi_proto.c): what kubectl 1.32 posts for `kubectl create
 * secret generic`, `kubectl create configmap` and `kubectl create
 * namespace` (captured bytes), every
 * field these kinds carry, and malformed bodies, which must fail cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../allocator/kubeapi_internal.h"
#include "builtin_info.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* `kubectl create secret generic db --from-literal=pw=s3cr3t --from-literal=url=x --type=Opaque` */
static const char kubectl_secret[] =
    "k8s\0\x0a\x0c\x0a\x02v1\x12\x06Secret\x12\x34\x0a\x12\x0a\x02"
    "db\x12\x00\x1a\x00\x22\x00\x2a\x00\x32\x00\x38\x00\x42\x00\x12\x0c\x0a\x02pw\x12\x06"
    "s3cr3t\x12\x08\x0a\x03url\x12\x01x\x1a\x06Opaque\x1a\x00\x22\x00";
/* `kubectl create configmap cfg --from-literal=a=b --from-file=bin=F`, F
 * holding the bytes 00 ff 68 69. */
static const char kubectl_configmap[] =
    "k8s\0\x0a\x0f\x0a\x02v1\x12\x09"
    "ConfigMap\x12\x2a\x0a\x13\x0a\x03"
    "cfg\x12\x00\x1a\x00\x22\x00\x2a\x00\x32\x00\x38\x00\x42\x00\x12\x06\x0a\x01"
    "a\x12\x01"
    "b\x1a\x0b\x0a\x03"
    "bin\x12\x04\x00\xff"
    "hi\x1a\x00\x22\x00";

/* `kubectl create namespace games` */
static const char kubectl_namespace[] =
    "k8s\0\x0a\x0f\x0a\x02v1\x12\x09Namespace\x12\x1d\x0a\x15\x0a\x05games"
    "\x12\x00\x1a\x00\x22\x00\x2a\x00\x32\x00\x38\x00\x42\x00\x12\x00"
    "\x1a\x02\x0a\x00\x1a\x00\x22\x00";

static const bdy_resource_info *namespaces(void)
{
    static bdy_resource_info info;
    info = builtin_info("namespaces");
    return &info;
}

static const bdy_resource_info *secrets(void)
{
    static bdy_resource_info info;
    info = builtin_info("secrets");
    return &info;
}

static const bdy_resource_info *configmaps(void)
{
    static bdy_resource_info info;
    info = builtin_info("configmaps");
    return &info;
}

static void expect_decoded(const bdy_resource_info *info, const void *body, size_t len,
                           const char *want)
{
    json_object *out = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy__kube_proto_decode(info, body, len, &out, &eb);
    if (rc != 0)
        fail_msg("decode: rc %d: %s", rc, eb.message);
    json_object *expected = json_tokener_parse(want);
    assert_non_null(expected);
    bool same = json_object_equal(out, expected);
    char got[2048];
    snprintf(got, sizeof(got), "%s", json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN));
    json_object_put(expected);
    json_object_put(out);
    if (!same)
        fail_msg("decoded:\n got  %s\n want %s", got, want);
}

static void expect_malformed(const bdy_resource_info *info, const void *body, size_t len,
                             const char *want)
{
    json_object *out = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy__kube_proto_decode(info, body, len, &out, &eb), BDY_EINVAL);
    assert_null(out);
    if (strstr(eb.message, want) == NULL)
        fail_msg("wanted \"%s\" in: %s", want, eb.message);
}

/* ---- a protobuf writer for the cases ------------------------------------------------ */

typedef struct pbuf {
    uint8_t b[4096];
    size_t n;
} pbuf;

static void put_raw(pbuf *o, const void *p, size_t n)
{
    assert_true(o->n + n <= sizeof(o->b));
    memcpy(o->b + o->n, p, n);
    o->n += n;
}

static void put_varint(pbuf *o, uint64_t v)
{
    do {
        uint8_t byte = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v != 0)
            byte |= 0x80;
        put_raw(o, &byte, 1);
    } while (v != 0);
}

static void put_len(pbuf *o, unsigned num, const void *p, size_t n)
{
    put_varint(o, (uint64_t)num << 3 | 2);
    put_varint(o, n);
    put_raw(o, p, n);
}

static void put_str(pbuf *o, unsigned num, const char *s)
{
    put_len(o, num, s, strlen(s));
}

static void put_msg(pbuf *o, unsigned num, const pbuf *m)
{
    put_len(o, num, m->b, m->n);
}

static void put_uint(pbuf *o, unsigned num, uint64_t v)
{
    put_varint(o, (uint64_t)num << 3);
    put_varint(o, v);
}

static void put_entry(pbuf *o, unsigned num, const char *key, const void *value, size_t n)
{
    pbuf e = {.n = 0};
    put_str(&e, 1, key);
    put_len(&e, 2, value, n);
    put_msg(o, num, &e);
}

/* The envelope around raw, as the Kubernetes protobuf serializer writes it. */
static void envelope(pbuf *o, const char *kind, const pbuf *raw)
{
    pbuf tm = {.n = 0};
    o->n = 0;
    put_raw(o, "k8s\0", 4);
    put_str(&tm, 1, "v1");
    put_str(&tm, 2, kind);
    put_msg(o, 1, &tm);
    put_msg(o, 2, raw);
    put_str(o, 3, "");
    put_str(o, 4, "");
}

/* ---- cases ------------------------------------------------------------------------ */

static void test_what_kubectl_sends(void **state)
{
    (void)state;
    expect_decoded(secrets(), kubectl_secret, sizeof(kubectl_secret) - 1,
                   "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"db\"},"
                   "\"data\":{\"pw\":\"czNjcjN0\",\"url\":\"eA==\"},\"type\":\"Opaque\"}");
    expect_decoded(configmaps(), kubectl_configmap, sizeof(kubectl_configmap) - 1,
                   "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"cfg\"},"
                   "\"data\":{\"a\":\"b\"},\"binaryData\":{\"bin\":\"AP9oaQ==\"}}");
    expect_decoded(namespaces(), kubectl_namespace, sizeof(kubectl_namespace) - 1,
                   "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":"
                   "\"games\"}}");
    assert_true(bdy__kube_proto_accepts(namespaces()));
    /* The resource decides the message; the kind the body names is
     * checked in the store, as a JSON body's is. */
    pbuf empty = {.n = 0};
    pbuf body;
    envelope(&body, "Secret", &empty);
    json_object *out = NULL;
    assert_int_equal(bdy__kube_proto_decode(configmaps(), (const char *)body.b, body.n, &out, NULL),
                     0);
    assert_string_equal(json_object_get_string(json_object_object_get(out, "kind")), "Secret");
    json_object_put(out);
    bdy_resource_info pods = builtin_info("pods");
    assert_false(bdy__kube_proto_accepts(&pods));
    assert_true(bdy__kube_proto_accepts(secrets()));
    assert_int_equal(
        bdy__kube_proto_decode(&pods, kubectl_secret, sizeof(kubectl_secret) - 1, &out, NULL),
        BDY_EUNSUPPORTED);
}

/* kubectl auth can-i and can-i --list post their reviews as protobuf
 * too: the spec is what the answer is about, its empty strings left out. */
static void test_reviews(void **state)
{
    (void)state;
    static const bdy_resource_info access = {.group = "authorization.k8s.io",
                                             .version = "v1",
                                             .resource = "selfsubjectaccessreviews",
                                             .kind = "SelfSubjectAccessReview"};
    static const bdy_resource_info rules = {.group = "authorization.k8s.io",
                                            .version = "v1",
                                            .resource = "selfsubjectrulesreviews",
                                            .kind = "SelfSubjectRulesReview"};
    pbuf attrs = {.n = 0};
    put_str(&attrs, 1, "default");
    put_str(&attrs, 2, "get");
    put_str(&attrs, 3, "");
    put_str(&attrs, 5, "wi");
    put_str(&attrs, 7, "");
    pbuf path = {.n = 0};
    put_str(&path, 1, "/metrics");
    put_str(&path, 2, "get");
    pbuf spec = {.n = 0};
    put_msg(&spec, 1, &attrs);
    put_msg(&spec, 2, &path);
    pbuf raw = {.n = 0};
    put_msg(&raw, 2, &spec);
    pbuf body;
    envelope(&body, "SelfSubjectAccessReview", &raw);
    expect_decoded(&access, body.b, body.n,
                   "{\"apiVersion\":\"v1\",\"kind\":\"SelfSubjectAccessReview\",\"spec\":{"
                   "\"resourceAttributes\":{\"namespace\":\"default\",\"verb\":\"get\","
                   "\"resource\":\"wi\"},\"nonResourceAttributes\":{\"path\":\"/metrics\","
                   "\"verb\":\"get\"}}}");
    pbuf ns = {.n = 0};
    put_str(&ns, 1, "games");
    raw.n = 0;
    put_msg(&raw, 2, &ns);
    envelope(&body, "SelfSubjectRulesReview", &raw);
    expect_decoded(&rules, body.b, body.n,
                   "{\"apiVersion\":\"v1\",\"kind\":\"SelfSubjectRulesReview\",\"spec\":{"
                   "\"namespace\":\"games\"}}");
    /* Decoded, not stored: no create of them is taken as protobuf. */
    assert_false(bdy__kube_proto_accepts(&access));
    /* A spec cut short is refused. */
    raw.n = 0;
    put_msg(&raw, 2, &spec);
    raw.n -= 3;
    envelope(&body, "SelfSubjectAccessReview", &raw);
    json_object *out = NULL;
    assert_int_equal(bdy__kube_proto_decode(&access, (const char *)body.b, body.n, &out, NULL),
                     BDY_EINVAL);
    assert_null(out);
}

static void test_every_field(void **state)
{
    (void)state;
    pbuf meta = {.n = 0};
    pbuf owner = {.n = 0};
    pbuf ts = {.n = 0};
    pbuf secret = {.n = 0};
    pbuf body;
    put_str(&meta, 1, "s1");
    put_str(&meta, 2, "gen-");
    put_str(&meta, 3, "team");
    put_str(&meta, 4, "/self/link");
    put_str(&meta, 5, "uid-1");
    put_str(&meta, 6, "42");
    put_uint(&meta, 7, 3);
    put_uint(&ts, 1, 1700000000);
    put_msg(&meta, 8, &ts);
    put_entry(&meta, 11, "app", "web", 3);
    put_entry(&meta, 11, "app", "api", 3); /* a later entry of a key wins */
    put_entry(&meta, 12, "note", "h\xc3\xa9", 3);
    put_str(&owner, 1, "Booklet");
    put_str(&owner, 3, "b1");
    put_str(&owner, 4, "uid-b");
    put_str(&owner, 5, "bindery.dev/v1alpha1");
    put_uint(&owner, 6, 1);
    put_uint(&owner, 7, 0);
    put_msg(&meta, 13, &owner);
    put_str(&meta, 14, "example.com/a");
    put_str(&meta, 14, "example.com/b");
    put_str(&meta, 99, "a field from a later version");
    put_msg(&secret, 1, &meta);
    put_entry(&secret, 2, "bin", "\x00\x01\x02", 3);
    put_entry(&secret, 4, "plain", "text", 4);
    put_str(&secret, 3, "kubernetes.io/tls");
    put_uint(&secret, 5, 1);
    /* Unknown fields of every wire type are skipped. */
    put_uint(&secret, 90, 7);
    put_raw(&secret,
            "\xd9\x05"
            "12345678",
            10); /* field 91, fixed64 */
    put_raw(&secret,
            "\xe5\x05"
            "1234",
            6); /* field 92, fixed32 */
    envelope(&body, "Secret", &secret);
    expect_decoded(secrets(), body.b, body.n,
                   "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"s1\","
                   "\"generateName\":\"gen-\",\"namespace\":\"team\",\"uid\":\"uid-1\","
                   "\"resourceVersion\":\"42\",\"labels\":{\"app\":\"api\"},"
                   "\"annotations\":{\"note\":\"h\xc3\xa9\"},\"ownerReferences\":[{"
                   "\"kind\":\"Booklet\",\"name\":\"b1\",\"uid\":\"uid-b\","
                   "\"apiVersion\":\"bindery.dev/v1alpha1\",\"controller\":true,"
                   "\"blockOwnerDeletion\":false}],\"finalizers\":[\"example.com/a\","
                   "\"example.com/b\"]},\"data\":{\"bin\":\"AAEC\"},"
                   "\"stringData\":{\"plain\":\"text\"},\"type\":\"kubernetes.io/tls\","
                   "\"immutable\":true}");
    /* A ConfigMap's immutable is field 4; an entry without a value is "". */
    pbuf cm = {.n = 0};
    pbuf e = {.n = 0};
    put_str(&e, 1, "empty");
    put_msg(&cm, 2, &e);
    put_uint(&cm, 4, 1);
    envelope(&body, "ConfigMap", &cm);
    expect_decoded(configmaps(), body.b, body.n,
                   "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"data\":{\"empty\":\"\"},"
                   "\"immutable\":true}");
    /* A Namespace's spec.finalizers; its status is the server's to set. */
    pbuf ns = {.n = 0};
    pbuf spec = {.n = 0};
    pbuf status = {.n = 0};
    put_str(&spec, 1, "kubernetes");
    put_str(&spec, 1, "example.com/keep");
    put_msg(&ns, 2, &spec);
    put_str(&status, 1, "Terminating");
    put_msg(&ns, 3, &status);
    envelope(&body, "Namespace", &ns);
    expect_decoded(namespaces(), body.b, body.n,
                   "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"spec\":{\"finalizers\":["
                   "\"kubernetes\",\"example.com/keep\"]}}");
}

static void test_malformed(void **state)
{
    (void)state;
    const char *k = kubectl_secret;
    size_t n = sizeof(kubectl_secret) - 1;
    /* Every body cut short fails (or, cut between fields of the envelope,
     * is a smaller valid one), and none is read past its end (ASan). */
    for (size_t len = 0; len < n; len++) {
        char *copy = malloc(len + 1);
        assert_non_null(copy);
        memcpy(copy, k, len);
        json_object *out = NULL;
        int rc = bdy__kube_proto_decode(secrets(), copy, len, &out, NULL);
        assert_true(rc == 0 || rc == BDY_EINVAL);
        assert_true((rc == 0) == (out != NULL));
        json_object_put(out);
        free(copy);
    }
    expect_malformed(secrets(), "{\"kind\":\"Secret\"}", 17, "Kubernetes protobuf prefix");
    expect_malformed(secrets(), "k8s\0", 4, "holds no object");

    pbuf raw = {.n = 0};
    pbuf meta = {.n = 0};
    pbuf body;
    /* A name that is not UTF-8, a label holding a NUL. */
    put_str(&meta, 1, "\xff\xfe");
    put_msg(&raw, 1, &meta);
    envelope(&body, "Secret", &raw);
    expect_malformed(secrets(), body.b, body.n, "not UTF-8 or holds a NUL");
    raw.n = meta.n = 0;
    put_entry(&meta, 11, "a", "b\0c", 3);
    put_msg(&raw, 1, &meta);
    envelope(&body, "Secret", &raw);
    expect_malformed(secrets(), body.b, body.n, "not UTF-8 or holds a NUL");
    /* Wire types that do not fit the field. */
    raw.n = 0;
    put_uint(&raw, 2, 5);
    envelope(&body, "Secret", &raw);
    expect_malformed(secrets(), body.b, body.n, "map entry is not a message");
    raw.n = 0;
    put_str(&raw, 5, "yes");
    envelope(&body, "Secret", &raw);
    expect_malformed(secrets(), body.b, body.n, "bool field is not a varint");
    raw.n = 0;
    put_uint(&raw, 2, 1);
    envelope(&body, "Namespace", &raw);
    expect_malformed(namespaces(), body.b, body.n, "spec is not a message");
    raw.n = meta.n = 0;
    put_uint(&meta, 1, 1);
    put_msg(&raw, 2, &meta);
    envelope(&body, "Namespace", &raw);
    expect_malformed(namespaces(), body.b, body.n, "string field is not length-delimited");
    /* A content encoding (gzip'd raw) is not what these clients send. */
    raw.n = 0;
    envelope(&body, "Secret", &raw);
    body.n -= 2;
    put_str(&body, 4, "application/x-gzip");
    expect_malformed(secrets(), body.b, body.n, "content encoding or type");
    /* Groups, a varint past ten bytes, a length past the end, field 0. */
    static const struct {
        const char *bytes;
        size_t n;
    } junk[] = {
        {"k8s\0\x13\x14", 6},
        {"k8s\0\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 16},
        {"k8s\0\x12\x7f\x0a", 7},
        {"k8s\0\x00\x00", 6},
        {"k8s\0\x12\x03\x0a\x05\x0a", 9},
    };
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        json_object *out = NULL;
        assert_int_equal(bdy__kube_proto_decode(secrets(), junk[i].bytes, junk[i].n, &out, NULL),
                         BDY_EINVAL);
        assert_null(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_what_kubectl_sends),
        cmocka_unit_test(test_every_field),
        cmocka_unit_test(test_reviews),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
