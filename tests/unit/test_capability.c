/* Capabilities bound for a world: which binding serves it, what its source
 * gives, the variables it makes, and every refusal with its reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bindery/capability.h"
#include "fake_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_object *parse(const char *text)
{
    json_object *o = json_tokener_parse(text);
    if (o == NULL)
        fprintf(stderr, "bad test JSON: %s\n", text);
    assert_non_null(o);
    return o;
}

/* A world spec whose manifests require caps (a JSON array), as
 * bdy_worldspec_build leaves it. */
static void spec_requiring(bdy_worldspec *ws, const char *caps)
{
    memset(ws, 0, sizeof(*ws));
    ws->held = json_object_new_array();
    ws->capabilities = parse(caps);
    json_object_array_add(ws->held, ws->capabilities);
}

static json_object *world_labelled(const char *labels)
{
    char text[512];
    snprintf(text, sizeof(text),
             "{\"metadata\":{\"namespace\":\"games\",\"name\":\"w1\",\"labels\":%s},"
             "\"spec\":{\"pool\":\"arena\",\"manifest\":\"arena\"}}",
             labels);
    return parse(text);
}

/* The value the spec binds to name, or NULL. */
static const char *bound(const bdy_worldspec *ws, const char *name)
{
    for (size_t i = 0; i < ws->spec.nbound; i++)
        if (strcmp(ws->spec.bound_names[i], name) == 0)
            return ws->spec.bound_values[i];
    return NULL;
}

/* Binds caps for a world with labels against bindings (a JSON array);
 * returns the result, the reason in why. */
static int bind(bdy_worldspec *ws, const char *caps, const char *labels, const char *bindings,
                fake_store *fs, char *why, size_t why_cap)
{
    spec_requiring(ws, caps);
    json_object *world = world_labelled(labels);
    json_object *list = parse(bindings);
    why[0] = '\0';
    int rc = bdy_capabilities_bind(ws, world, list, fake_get, fs, why, why_cap);
    /* What the spec binds must outlive the list and the world. */
    json_object_put(list);
    json_object_put(world);
    return rc;
}

#define SECRET_DB                                                                                  \
    "{\"metadata\":{\"name\":\"db\"},\"type\":\"Opaque\",\"data\":{"                               \
    "\"url\":\"cG9zdGdyZXM6Ly9kYi9nYW1lcw==\",\"password\":\"aHVudGVyMg==\"}}"

static void test_sources_and_names(void **state)
{
    (void)state;
    fake_store fs = {.n = 0};
    put(&fs, "secrets", "db", SECRET_DB);
    put(&fs, "configmaps", "tuning",
        "{\"metadata\":{\"name\":\"tuning\"},\"data\":{\"tick-rate\":\"64\"},"
        "\"binaryData\":{\"seed\":\"AQID\"}}");
    bdy_worldspec ws;
    char why[512];

    /* Literal values without a key: one variable per key under the
     * default name; no placeholder is replaced in them. */
    assert_int_equal(
        bind(&ws, "[\"voice\"]", "{}",
             "[{\"metadata\":{\"name\":\"v\"},\"spec\":{\"capability\":\"voice\","
             "\"source\":{\"values\":{\"host\":\"10.0.0.9\",\"token\":\"a{port:game}b\"}}}}]",
             &fs, why, sizeof(why)),
        0);
    assert_int_equal(ws.spec.nbound, 2);
    assert_string_equal(bound(&ws, "CAPABILITY_VOICE_HOST"), "10.0.0.9");
    assert_string_equal(bound(&ws, "CAPABILITY_VOICE_TOKEN"), "a{port:game}b");
    bdy_worldspec_free(&ws);

    /* A Secret's key, decoded, under the binding's own name; a second
     * capability of the same world from a ConfigMap, every key (binaryData
     * decoded too). */
    assert_int_equal(bind(&ws, "[\"db\",\"tuning.v2\"]", "{}",
                          "[{\"metadata\":{\"name\":\"db\"},\"spec\":{\"capability\":\"db\","
                          "\"source\":{\"secretRef\":{\"name\":\"db\",\"key\":\"password\"}},"
                          "\"inject\":{\"env\":\"DB_PASSWORD\"}}},"
                          "{\"metadata\":{\"name\":\"t\"},\"spec\":{\"capability\":\"tuning.v2\","
                          "\"source\":{\"configMapRef\":{\"name\":\"tuning\"}}}}]",
                          &fs, why, sizeof(why)),
                     0);
    assert_int_equal(ws.spec.nbound, 3);
    assert_string_equal(bound(&ws, "DB_PASSWORD"), "hunter2");
    assert_string_equal(bound(&ws, "CAPABILITY_TUNING_V2_TICK_RATE"), "64");
    assert_memory_equal(bound(&ws, "CAPABILITY_TUNING_V2_SEED"), "\x01\x02\x03", 4);
    bdy_worldspec_free(&ws);

    /* One key of a ConfigMap of more keys than a world takes variables:
     * bound; the whole of it is not. */
    char *many = malloc(100 * 32 + 128);
    assert_non_null(many);
    int at = snprintf(many, 128, "{\"metadata\":{\"name\":\"many\"},\"data\":{");
    for (int k = 0; k < 100; k++)
        at += snprintf(many + at, 32, "%s\"key-%d\":\"v%d\"", k ? "," : "", k, k);
    snprintf(many + at, 8, "}}");
    put(&fs, "configmaps", "many", many);
    assert_int_equal(bind(&ws, "[\"db\"]", "{}",
                          "[{\"metadata\":{\"name\":\"m\"},\"spec\":{\"capability\":\"db\","
                          "\"source\":{\"configMapRef\":{\"name\":\"many\",\"key\":\"key-77\"}}}}]",
                          &fs, why, sizeof(why)),
                     0);
    assert_int_equal(ws.spec.nbound, 1);
    assert_string_equal(bound(&ws, "CAPABILITY_DB"), "v77");
    bdy_worldspec_free(&ws);
    assert_int_equal(bind(&ws, "[\"db\"]", "{}",
                          "[{\"metadata\":{\"name\":\"m\"},\"spec\":{\"capability\":\"db\","
                          "\"source\":{\"configMapRef\":{\"name\":\"many\"}}}}]",
                          &fs, why, sizeof(why)),
                     BDY_EINVAL);
    assert_non_null(strstr(why, "has more than 64 keys; name one in the binding's key"));
    bdy_worldspec_free(&ws);
    free(many);

    /* Nothing required: nothing read, nothing bound. */
    assert_int_equal(bind(&ws, "[]", "{}", "[]", &fs, why, sizeof(why)), 0);
    assert_int_equal(ws.spec.nbound, 0);
    bdy_worldspec_free(&ws);
}

#define DEFAULT_DB                                                                                 \
    "{\"metadata\":{\"name\":\"db-default\"},\"spec\":{\"capability\":\"db\","                     \
    "\"source\":{\"values\":{\"url\":\"default\"}}}}"
#define GOLD_DB                                                                                    \
    "{\"metadata\":{\"name\":\"db-gold\"},\"spec\":{\"capability\":\"db\","                        \
    "\"worldSelector\":{\"matchLabels\":{\"tier\":\"gold\"}},"                                     \
    "\"source\":{\"values\":{\"url\":\"gold\"}}}}"
#define EU_DB                                                                                      \
    "{\"metadata\":{\"name\":\"db-eu\"},\"spec\":{\"capability\":\"db\","                          \
    "\"worldSelector\":{\"matchExpressions\":[{\"key\":\"region\",\"operator\":\"In\","            \
    "\"values\":[\"eu\"]}]},\"source\":{\"values\":{\"url\":\"eu\"}}}}"

static void test_which_binding(void **state)
{
    (void)state;
    fake_store fs = {.n = 0};
    bdy_worldspec ws;
    char why[512];
    const char *both = "[" DEFAULT_DB "," GOLD_DB "]";

    /* A selector that matches wins over none; one that does not match
     * leaves the default. */
    assert_int_equal(bind(&ws, "[\"db\"]", "{\"tier\":\"gold\"}", both, &fs, why, sizeof(why)), 0);
    assert_string_equal(bound(&ws, "CAPABILITY_DB_URL"), "gold");
    bdy_worldspec_free(&ws);
    assert_int_equal(bind(&ws, "[\"db\"]", "{\"tier\":\"free\"}", both, &fs, why, sizeof(why)), 0);
    assert_string_equal(bound(&ws, "CAPABILITY_DB_URL"), "default");
    bdy_worldspec_free(&ws);

    /* Only bindings whose selector does not match: unbound, saying so. */
    assert_int_equal(
        bind(&ws, "[\"db\"]", "{\"tier\":\"free\"}", "[" GOLD_DB "]", &fs, why, sizeof(why)),
        BDY_ENOTFOUND);
    assert_non_null(strstr(why, "capability db: no CapabilityBinding in namespace games"));
    bdy_worldspec_free(&ws);

    /* Two that match with selectors: a conflict, both named. */
    assert_int_equal(bind(&ws, "[\"db\"]", "{\"tier\":\"gold\",\"region\":\"eu\"}",
                          "[" DEFAULT_DB "," GOLD_DB "," EU_DB "]", &fs, why, sizeof(why)),
                     BDY_EINVAL);
    assert_non_null(strstr(why, "db-gold and db-eu both serve it"));
    bdy_worldspec_free(&ws);
    /* Two defaults: the same. */
    assert_int_equal(
        bind(&ws, "[\"db\"]", "{}",
             "[" DEFAULT_DB ",{\"metadata\":{\"name\":\"db-other\"},\"spec\":{\"capability\":"
             "\"db\",\"worldSelector\":{},\"source\":{\"values\":{\"url\":\"other\"}}}}]",
             &fs, why, sizeof(why)),
        BDY_EINVAL);
    assert_non_null(strstr(
        why, "db-default and db-other both serve it for this world, neither with a selector"));
    bdy_worldspec_free(&ws);

    /* An override whose selector does not compile (In without values, a
     * label value no selector may have): which worlds it serves cannot be
     * told, so no world gets the default's value in its place. */
    const char *const broken[] = {
        "{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"In\"}]}",
        "{\"matchLabels\":{\"tier\":\"gold/eu\"}}",
    };
    for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
        char list[1024];
        snprintf(list, sizeof(list),
                 "[" DEFAULT_DB ",{\"metadata\":{\"name\":\"db-broken\"},\"spec\":{"
                 "\"capability\":\"db\",\"worldSelector\":%s,\"source\":{\"values\":{"
                 "\"url\":\"prod\"}}}}]",
                 broken[i]);
        assert_int_equal(bind(&ws, "[\"db\"]", "{\"tier\":\"gold\"}", list, &fs, why, sizeof(why)),
                         BDY_EINVAL);
        assert_non_null(strstr(why, "CapabilityBinding db-broken has a worldSelector that is not"));
        bdy_worldspec_free(&ws);
    }

    /* A binding of another capability does not count. */
    assert_int_equal(bind(&ws, "[\"cache\"]", "{}", both, &fs, why, sizeof(why)), BDY_ENOTFOUND);
    assert_non_null(strstr(why, "capability cache:"));
    bdy_worldspec_free(&ws);
}

/* Binds capability db by binding (its spec's source and inject, as JSON
 * members) and returns the result. */
static int bind_db(bdy_worldspec *ws, const char *spec_members, fake_store *fs, char *why,
                   size_t why_cap)
{
    size_t cap = strlen(spec_members) + 128;
    char *bindings = malloc(cap);
    assert_non_null(bindings);
    snprintf(bindings, cap, "[{\"metadata\":{\"name\":\"b\"},\"spec\":{\"capability\":\"db\",%s}}]",
             spec_members);
    int rc = bind(ws, "[\"db\"]", "{}", bindings, fs, why, why_cap);
    free(bindings);
    return rc;
}

static void test_refusals(void **state)
{
    (void)state;
    fake_store fs = {.n = 0};
    put(&fs, "secrets", "db", SECRET_DB);
    put(&fs, "secrets", "nul", "{\"metadata\":{\"name\":\"nul\"},\"data\":{\"k\":\"YQBi\"}}");
    put(&fs, "secrets", "bad", "{\"metadata\":{\"name\":\"bad\"},\"data\":{\"k\":\"!!!\"}}");
    put(&fs, "secrets", "empty", "{\"metadata\":{\"name\":\"empty\"},\"data\":{}}");
    put(&fs, "configmaps", "clash",
        "{\"metadata\":{\"name\":\"clash\"},\"data\":{\"a-b\":\"1\",\"a.b\":\"2\"}}");
    bdy_worldspec ws;
    char why[512];
    static const struct {
        const char *members;
        int rc;
        const char *says;
    } cases[] = {
        {"\"source\":{\"secretRef\":{\"name\":\"gone\"}}", BDY_ENOTFOUND, "Secret games/gone"},
        {"\"source\":{\"configMapRef\":{\"name\":\"gone\"}}", BDY_ENOTFOUND,
         "ConfigMap games/gone"},
        {"\"source\":{\"secretRef\":{\"name\":\"db\",\"key\":\"user\"}}", BDY_ENOTFOUND,
         "has no key user"},
        {"\"source\":{\"secretRef\":{\"name\":\"empty\"}}", BDY_ENOTFOUND, "holds no value"},
        {"\"source\":{\"serviceRef\":{\"name\":\"db\",\"port\":5432}}", BDY_EINVAL,
         "needs Kubernetes"},
        {"\"source\":{}", BDY_EINVAL, "has no source"},
        {"\"source\":{\"values\":{\"u\":\"x\"}},\"inject\":{\"file\":\"/etc/db\"}", BDY_EINVAL,
         "injects a file"},
        {"\"source\":{\"secretRef\":{\"name\":\"nul\",\"key\":\"k\"}}", BDY_EINVAL, "NUL byte"},
        {"\"source\":{\"secretRef\":{\"name\":\"bad\"}}", BDY_EINVAL, "not valid base64"},
        {"\"source\":{\"configMapRef\":{\"name\":\"clash\"}}", BDY_EINVAL,
         "CAPABILITY_DB_A_B (key a.b) sets a variable"},
        {"\"source\":{\"values\":{\"u\":7}}", BDY_EINVAL, "u is not a string"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = bind_db(&ws, cases[i].members, &fs, why, sizeof(why));
        if (rc != cases[i].rc || strstr(why, cases[i].says) == NULL)
            fprintf(stderr, "case %zu: rc %d, why: %s\n", i, rc, why);
        assert_int_equal(rc, cases[i].rc);
        assert_non_null(strstr(why, cases[i].says));
        assert_non_null(strstr(why, "capability db:"));
        bdy_worldspec_free(&ws);
    }

    /* A value longer than a variable may carry. */
    size_t len = BDY_CAPABILITY_MAX_VALUE_BYTES + 1;
    char *members = malloc(len + 64);
    assert_non_null(members);
    int at = snprintf(members, len + 64, "\"source\":{\"values\":{\"big\":\"");
    memset(members + at, 'x', len);
    snprintf(members + at + len, 64, "\"}}");
    char *bindings = malloc(len + 256);
    assert_non_null(bindings);
    snprintf(bindings, len + 256,
             "[{\"metadata\":{\"name\":\"b\"},\"spec\":{\"capability\":\"db\",%s}}]", members);
    assert_int_equal(bind(&ws, "[\"db\"]", "{}", bindings, &fs, why, sizeof(why)), BDY_EINVAL);
    assert_non_null(strstr(why, "longer than"));
    bdy_worldspec_free(&ws);
    free(bindings);
    free(members);

    /* Bindery's own names. */
    assert_int_equal(bind_db(&ws,
                             "\"source\":{\"values\":{\"u\":\"x\"}},\"inject\":{\"env\":"
                             "\"BINDERY_PORT\"}",
                             &fs, why, sizeof(why)),
                     BDY_EINVAL);
    assert_non_null(strstr(why, "BINDERY_PORT_U (key u) is one of Bindery's own names"));
    bdy_worldspec_free(&ws);

    /* A name longer than the binder takes. */
    char long_env[700];
    int w = snprintf(long_env, sizeof(long_env),
                     "\"source\":{\"values\":{\"u\":\"x\"}},"
                     "\"inject\":{\"env\":\"");
    memset(long_env + w, 'E', 600);
    snprintf(long_env + w + 600, sizeof(long_env) - (size_t)w - 600, "\"}");
    assert_int_equal(bind_db(&ws, long_env, &fs, why, sizeof(why)), BDY_EINVAL);
    assert_non_null(strstr(why, "spec.inject.env is not a variable name"));
    bdy_worldspec_free(&ws);
    /* Nor an empty one, or one with '=' (the CRD's pattern refuses them;
     * the fuzzer found the binder did not). */
    assert_int_equal(bind_db(&ws, "\"source\":{\"values\":{\"u\":\"x\"}},\"inject\":{\"env\":\"\"}",
                             &fs, why, sizeof(why)),
                     BDY_EINVAL);
    assert_non_null(strstr(why, "spec.inject.env is not a variable name"));
    bdy_worldspec_free(&ws);
    assert_int_equal(bind_db(&ws,
                             "\"source\":{\"values\":{\"u\":\"x\"}},\"inject\":{\"env\":\"A=B\"}",
                             &fs, why, sizeof(why)),
                     BDY_EINVAL);
    bdy_worldspec_free(&ws);

    /* Values within the cap each, past it in all: 5 x 60 KiB. */
    size_t each = (size_t)60 * 1024;
    char *big = malloc(5 * (each + 16) + 128);
    assert_non_null(big);
    int at2 = snprintf(big, 128, "\"source\":{\"values\":{");
    for (int k = 0; k < 5; k++) {
        at2 += snprintf(big + at2, 16, "%s\"k%d\":\"", k ? "," : "", k);
        memset(big + at2, 'v', each);
        at2 += (int)each;
        big[at2++] = '"';
    }
    snprintf(big + at2, 16, "}}");
    assert_int_equal(bind_db(&ws, big, &fs, why, sizeof(why)), BDY_EINVAL);
    assert_non_null(strstr(why, "longer than 256 KiB in all"));
    bdy_worldspec_free(&ws);
    free(big);

    /* Two capabilities that make the same variable. */
    assert_int_equal(bind(&ws, "[\"db\",\"db2\"]", "{}",
                          "[{\"metadata\":{\"name\":\"one\"},\"spec\":{\"capability\":\"db\","
                          "\"source\":{\"values\":{\"u\":\"1\"}},\"inject\":{\"env\":\"DB\"}}},"
                          "{\"metadata\":{\"name\":\"two\"},\"spec\":{\"capability\":\"db2\","
                          "\"source\":{\"values\":{\"u\":\"2\"}},\"inject\":{\"env\":\"DB\"}}}]",
                          &fs, why, sizeof(why)),
                     BDY_EINVAL);
    assert_non_null(strstr(why, "capability db2: CapabilityBinding two: DB_U (key u)"));
    bdy_worldspec_free(&ws);
}

/* A binding's own check, whichever worlds it serves. */
static void test_binding_check(void **state)
{
    (void)state;
    fake_store fs = {.n = 0};
    put(&fs, "secrets", "db", SECRET_DB);
    char why[512];
    static const struct {
        const char *binding;
        int rc;
        const char *says;
    } cases[] = {
        {GOLD_DB, 0, ""},
        {"{\"metadata\":{\"name\":\"s\",\"namespace\":\"games\"},\"spec\":{\"capability\":"
         "\"db\",\"source\":{\"secretRef\":{\"name\":\"db\",\"key\":\"url\"}}}}",
         0, ""},
        {"{\"metadata\":{\"name\":\"s\",\"namespace\":\"games\"},\"spec\":{\"capability\":"
         "\"db\",\"source\":{\"secretRef\":{\"name\":\"db\",\"key\":\"user\"}}}}",
         BDY_ENOTFOUND, "Secret games/db has no key user"},
        {"{\"metadata\":{\"name\":\"s\",\"namespace\":\"other\"},\"spec\":{\"capability\":"
         "\"db\",\"source\":{\"secretRef\":{\"name\":\"db\"}}}}",
         0, ""}, /* the fake store has no namespaces */
        {"{\"metadata\":{\"name\":\"sel\"},\"spec\":{\"capability\":\"db\",\"worldSelector\":"
         "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Near\"}]},"
         "\"source\":{\"values\":{\"u\":\"1\"}}}}",
         BDY_EINVAL, "CapabilityBinding sel: worldSelector:"},
        {"{\"metadata\":{\"name\":\"f\"},\"spec\":{\"capability\":\"db\","
         "\"source\":{\"values\":{\"u\":\"1\"}},\"inject\":{\"file\":\"/x\"}}}",
         BDY_EINVAL, "injects a file"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_object *b = parse(cases[i].binding);
        why[0] = '\0';
        int rc = bdy_capability_binding_check(b, fake_get, &fs, why, sizeof(why));
        if (rc != cases[i].rc || strstr(why, cases[i].says) == NULL)
            fprintf(stderr, "case %zu: rc %d, why: %s\n", i, rc, why);
        assert_int_equal(rc, cases[i].rc);
        assert_non_null(strstr(why, cases[i].says));
        json_object_put(b);
    }
}

/* A binding resolved but served twice over (the same selector, or none
 * on either): every world that needs it waits, and its status says so. */
static void test_binding_twin(void **state)
{
    (void)state;
    char why[512];
    json_object *all = parse("[" DEFAULT_DB "," GOLD_DB "," EU_DB
                             ",{\"metadata\":{\"name\":\"db-empty\"},\"spec\":{\"capability\":"
                             "\"db\",\"worldSelector\":{},\"source\":{\"values\":{}}}}"
                             ",{\"metadata\":{\"name\":\"gold-2\"},\"spec\":{\"capability\":"
                             "\"db\",\"worldSelector\":{\"matchLabels\":{\"tier\":\"gold\"}},"
                             "\"source\":{\"values\":{}}}}"
                             ",{\"metadata\":{\"name\":\"cache\"},\"spec\":{\"capability\":"
                             "\"cache\",\"source\":{\"values\":{}}}}]");
    assert_non_null(all);
    json_object *def = json_object_array_get_idx(all, 0);
    json_object *gold = json_object_array_get_idx(all, 1);
    json_object *eu = json_object_array_get_idx(all, 2);
    json_object *cache = json_object_array_get_idx(all, 5);
    /* No selector and an empty one select the same worlds. */
    assert_int_equal(bdy_capability_binding_twin(def, all, why, sizeof(why)), BDY_EEXISTS);
    assert_non_null(strstr(why, "db-default and db-empty both serve it to the same worlds "
                                "(neither has a worldSelector)"));
    assert_int_equal(bdy_capability_binding_twin(gold, all, why, sizeof(why)), BDY_EEXISTS);
    assert_non_null(strstr(why, "db-gold and gold-2"));
    /* Another selector, or another capability: no twin. */
    assert_int_equal(bdy_capability_binding_twin(eu, all, why, sizeof(why)), 0);
    assert_int_equal(bdy_capability_binding_twin(cache, all, why, sizeof(why)), 0);
    /* Another namespace's is not this one's. */
    json_object *other = parse("[{\"metadata\":{\"name\":\"db-x\",\"namespace\":\"elsewhere\"},"
                               "\"spec\":{\"capability\":\"db\",\"source\":{\"values\":{}}}}]");
    assert_int_equal(bdy_capability_binding_twin(def, other, why, sizeof(why)), 0);
    json_object_put(other);
    json_object_put(all);
}

/* What a pool's worlds would be bound to, for its template. */
static void test_stamp(void **state)
{
    (void)state;
    fake_store fs = {.n = 0};
    put(&fs, "secrets", "db", SECRET_DB);
    json_object *caps = parse("[\"db\"]");
    json_object *gold = parse("{\"tier\":\"gold\"}");
    json_object *none = parse("[]");
    json_object *secret_key =
        parse("[{\"metadata\":{\"name\":\"s\"},\"spec\":{\"capability\":\"db\","
              "\"source\":{\"secretRef\":{\"name\":\"db\",\"key\":\"password\"}}}}]");
    json_object *both = parse("[" DEFAULT_DB "," GOLD_DB "]");
    char a[65];
    char b[65];
    /* Nothing required: no stamp. */
    assert_int_equal(bdy_capabilities_stamp(none, "games", gold, both, fake_get, &fs, a), 0);
    assert_string_equal(a, "");
    /* The same binding and value: the same stamp, a digest. */
    assert_int_equal(bdy_capabilities_stamp(caps, "games", gold, secret_key, fake_get, &fs, a), 0);
    assert_int_equal(strlen(a), 64);
    assert_int_equal(bdy_capabilities_stamp(caps, "games", gold, secret_key, fake_get, &fs, b), 0);
    assert_string_equal(a, b);
    /* Another value (the pool's labels choose another binding): another. */
    assert_int_equal(bdy_capabilities_stamp(caps, "games", gold, both, fake_get, &fs, a), 0);
    assert_int_equal(bdy_capabilities_stamp(caps, "games", NULL, both, fake_get, &fs, b), 0);
    assert_int_equal(strlen(b), 64);
    assert_string_not_equal(a, b);
    /* The Secret's value rotated: another. Its keys written in another
     * order, bound without a key: the same. */
    char before[65];
    assert_int_equal(bdy_capabilities_stamp(caps, "games", gold, secret_key, fake_get, &fs, before),
                     0);
    fs.texts[0] = "{\"metadata\":{\"name\":\"db\"},\"data\":{\"password\":\"aHVudGVyMw==\"}}";
    assert_int_equal(bdy_capabilities_stamp(caps, "games", gold, secret_key, fake_get, &fs, b), 0);
    assert_string_not_equal(before, b);
    json_object *all_keys = parse("[{\"metadata\":{\"name\":\"s\"},\"spec\":{\"capability\":"
                                  "\"db\",\"source\":{\"secretRef\":{\"name\":\"db\"}}}}]");
    fs.texts[0] = SECRET_DB;
    assert_int_equal(bdy_capabilities_stamp(caps, "games", gold, all_keys, fake_get, &fs, a), 0);
    fs.texts[0] = "{\"metadata\":{\"name\":\"db\"},\"data\":{"
                  "\"password\":\"aHVudGVyMg==\",\"url\":\"cG9zdGdyZXM6Ly9kYi9nYW1lcw==\"}}";
    assert_int_equal(bdy_capabilities_stamp(caps, "games", gold, all_keys, fake_get, &fs, b), 0);
    assert_string_equal(a, b);
    json_object_put(all_keys);
    fs.texts[0] = SECRET_DB;
    /* Two bindings of equal standing: unbound, as the world would wait. */
    json_object *tie = parse("[" GOLD_DB "," GOLD_DB "]");
    assert_int_equal(bdy_capabilities_stamp(caps, "games", gold, tie, fake_get, &fs, a), 0);
    assert_string_equal(a, "unbound");
    json_object_put(tie);
    /* A store that cannot answer now: its error, and no stamp (the pool
     * keeps the template it has, rather than taking 0 for a moment). */
    json_object *unreadable =
        parse("[{\"metadata\":{\"name\":\"s\"},\"spec\":{\"capability\":\"db\","
              "\"source\":{\"secretRef\":{\"name\":\"unreadable\",\"key\":\"password\"}}}}]");
    assert_int_equal(bdy_capabilities_stamp(caps, "games", gold, unreadable, fake_get, &fs, a),
                     BDY_EIO);
    assert_string_equal(a, "");
    json_object_put(unreadable);
    /* Unbound (the Secret gone): said so. */
    fs.n = 0;
    assert_int_equal(bdy_capabilities_stamp(caps, "games", gold, secret_key, fake_get, &fs, a), 0);
    assert_string_equal(a, "unbound");
    json_object_put(caps);
    json_object_put(gold);
    json_object_put(none);
    json_object_put(secret_key);
    json_object_put(both);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sources_and_names), cmocka_unit_test(test_which_binding),
        cmocka_unit_test(test_refusals),          cmocka_unit_test(test_binding_check),
        cmocka_unit_test(test_binding_twin),      cmocka_unit_test(test_stamp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
