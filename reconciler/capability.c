/* Capabilities bound for a world (see capability.h). */
#include "bindery/capability.h"

#include "bindery/jsonutil.h"
#include "bindery/selector.h"
#include "bindery/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENV_NAME_MAX 512
#define BINDERY_PREFIX "BINDERY_"

/* One key and value of a binding's source. */
typedef struct source_entry {
    const char *key;
    json_object *value; /* a string, possibly with bytes a C string cannot hold */
} source_entry;

typedef struct bind_ctx {
    bdy_worldspec *ws;
    const char *ns;
    json_object *labels;
    bdy_worldspec_get_fn get;
    void *data;
    char *why;
    size_t why_cap;
    size_t bytes; /* of the variables bound so far */
} bind_ctx;

static size_t array_len(json_object *list)
{
    return json_object_is_type(list, json_type_array) ? json_object_array_length(list) : 0;
}

static const char *binding_name(json_object *b)
{
    const char *name = bdy_jstr(bdy_jget(b, "metadata"), "name");
    return name ? name : "";
}

#define STANDING_INVALID (-2)

/* 1 for a binding whose selector has terms and matches, 0 for one with no
 * selector or an empty one, -1 for one whose selector does not match,
 * STANDING_INVALID for one whose selector does not compile (reason in
 * why): the CRD's schema checks its shape, not its label keys and values,
 * nor that In and NotIn have values. */
static int standing(json_object *b, json_object *labels, char *why, size_t why_cap)
{
    json_object *sel = bdy_jget(bdy_jget(b, "spec"), "worldSelector");
    if (sel == NULL)
        return 0;
    bdy_label_selector *s = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    if (bdy_label_selector_from_json(sel, &s, &eb) != 0) {
        snprintf(why, why_cap, "%s", eb.message);
        return STANDING_INVALID;
    }
    int rank = !bdy_label_selector_matches(s, labels) ? -1 : bdy_label_selector_is_empty(s) ? 0 : 1;
    bdy_label_selector_free(s);
    return rank;
}

/* The binding that serves capability cap for the world: 0 and *out, or
 * BDY_ENOTFOUND / BDY_EINVAL with the reason. */
static int choose_binding(bind_ctx *c, json_object *bindings, const char *cap, json_object **out)
{
    json_object *best = NULL;
    json_object *tie = NULL;
    int best_rank = -1;
    for (size_t i = 0; i < array_len(bindings); i++) {
        json_object *b = json_object_array_get_idx(bindings, i);
        const char *serves = bdy_jstr(bdy_jget(b, "spec"), "capability");
        if (serves == NULL || strcmp(serves, cap) != 0)
            continue;
        char invalid[256];
        int rank = standing(b, c->labels, invalid, sizeof(invalid));
        if (rank == STANDING_INVALID) {
            /* Which worlds it was meant for cannot be told: serving them
             * from another binding (a namespace's default) could hand a
             * world the wrong secret. */
            snprintf(c->why, c->why_cap,
                     "capability %s: CapabilityBinding %s has a worldSelector that is not valid "
                     "(%s); fix or delete it",
                     cap, binding_name(b), invalid);
            return BDY_EINVAL;
        }
        if (rank > best_rank) {
            best = b;
            best_rank = rank;
            tie = NULL;
        } else if (rank == best_rank && rank >= 0) {
            tie = b;
        }
    }
    if (best == NULL || best_rank < 0) {
        snprintf(c->why, c->why_cap,
                 "capability %s: no CapabilityBinding in namespace %s serves it for this world",
                 cap, c->ns);
        return BDY_ENOTFOUND;
    }
    if (tie != NULL) {
        snprintf(c->why, c->why_cap,
                 "capability %s: CapabilityBindings %s and %s both serve it for this world, "
                 "%s; give one a worldSelector that the other lacks, or delete one",
                 cap, binding_name(best), binding_name(tie),
                 best_rank > 0 ? "both with a matching selector" : "neither with a selector");
        return BDY_EINVAL;
    }
    *out = best;
    return 0;
}

/* Holds o (a new reference) in the world spec's held list. */
static json_object *hold(bind_ctx *c, json_object *o)
{
    if (o == NULL || json_object_array_add(c->ws->held, o) != 0) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

/* Entry key, v of a source's map into out[*n], decoding a base64 value
 * when b64. */
static int take_entry(bind_ctx *c, const char *key, json_object *v, bool b64, const char *what,
                      source_entry *out, size_t max, size_t *n)
{
    if (!json_object_is_type(v, json_type_string)) {
        snprintf(c->why, c->why_cap, "%s: %s is not a string", what, key);
        return BDY_EINVAL;
    }
    if (*n == max) {
        snprintf(c->why, c->why_cap, "%s has more than %zu keys; name one in the binding's key",
                 what, max);
        return BDY_EINVAL;
    }
    json_object *value = NULL;
    if (b64) {
        char *raw = NULL;
        size_t raw_len = 0;
        int rc = bdy_base64_decode(json_object_get_string(v), (size_t)json_object_get_string_len(v),
                                   &raw, &raw_len);
        if (rc != 0) {
            snprintf(c->why, c->why_cap, "%s: %s is not valid base64", what, key);
            return rc == BDY_ENOMEM ? rc : BDY_EINVAL;
        }
        value = hold(c, json_object_new_string_len(raw, (int)raw_len));
        free(raw);
    } else {
        value = hold(c, json_object_get(v)); /* the list it came in goes */
    }
    if (value == NULL)
        return BDY_ENOMEM;
    out[*n].key = key;
    out[*n].value = value;
    (*n)++;
    return 0;
}

/* The entries of map (an object of strings) into out[] (*n of them),
 * decoding base64 values when b64: only key only when it is not NULL. */
static int read_map(bind_ctx *c, json_object *map, bool b64, const char *only, const char *what,
                    source_entry *out, size_t max, size_t *n)
{
    if (map == NULL)
        return 0;
    if (!json_object_is_type(map, json_type_object)) {
        snprintf(c->why, c->why_cap, "%s is not a map of strings", what);
        return BDY_EINVAL;
    }
    if (only != NULL) {
        json_object *v = NULL;
        return json_object_object_get_ex(map, only, &v)
                   ? take_entry(c, only, v, b64, what, out, max, n)
                   : 0;
    }
    json_object_object_foreach(map, key, v)
    {
        int rc = take_entry(c, key, v, b64, what, out, max, n);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* The entries of binding b's source into out[] (at most max); the objects
 * read are held in the world spec. */
static int read_source(bind_ctx *c, json_object *b, const char *cap, const char *only,
                       source_entry *out, size_t max, size_t *n)
{
    json_object *src = bdy_jget(bdy_jget(b, "spec"), "source");
    json_object *values = bdy_jget(src, "values");
    json_object *secret = bdy_jget(src, "secretRef");
    json_object *config = bdy_jget(src, "configMapRef");
    char what[600];
    *n = 0;
    if (values != NULL) {
        snprintf(what, sizeof(what), "capability %s: CapabilityBinding %s: spec.source.values", cap,
                 binding_name(b));
        return read_map(c, values, false, NULL, what, out, max, n);
    }
    if (secret == NULL && config == NULL) {
        bool service = bdy_jget(src, "serviceRef") != NULL;
        snprintf(c->why, c->why_cap,
                 service ? "capability %s: CapabilityBinding %s takes a Service's address "
                           "(spec.source.serviceRef), which needs Kubernetes; embedded mode "
                           "serves no Services"
                         : "capability %s: CapabilityBinding %s has no source",
                 cap, binding_name(b));
        return BDY_EINVAL;
    }
    const char *kind = secret ? "Secret" : "ConfigMap";
    const char *name = bdy_jstr(secret ? secret : config, "name");
    json_object *obj = NULL;
    int rc = name ? c->get(c->data, secret ? &BDY_GVR_SECRETS : &BDY_GVR_CONFIGMAPS, name, &obj)
                  : BDY_ENOTFOUND;
    if (rc != 0) {
        snprintf(c->why, c->why_cap, "capability %s: CapabilityBinding %s: %s %s/%s: %s", cap,
                 binding_name(b), kind, c->ns, name ? name : "", bdy_strerror(rc));
        return rc;
    }
    if (hold(c, obj) == NULL)
        return BDY_ENOMEM;
    snprintf(what, sizeof(what), "capability %s: %s %s/%s", cap, kind, c->ns, name);
    if (secret != NULL)
        return read_map(c, bdy_jget(obj, "data"), true, only, what, out, max, n);
    rc = read_map(c, bdy_jget(obj, "data"), false, only, what, out, max, n);
    if (rc == 0)
        rc = read_map(c, bdy_jget(obj, "binaryData"), true, only, what, out, max, n);
    return rc;
}

/* s in upper case, anything but letters and digits as '_', appended to
 * out (cap bytes). False when it does not fit. */
static bool append_env_part(char *out, size_t cap, const char *s)
{
    size_t len = strlen(out);
    for (; *s != '\0'; s++) {
        if (len + 1 >= cap)
            return false;
        unsigned char ch = (unsigned char)*s;
        /* ASCII alone: a key may be any UTF-8, and isalnum() follows the
         * locale. */
        out[len++] = ch < 0x80 && isalnum(ch) ? (char)toupper(ch) : '_';
    }
    out[len] = '\0';
    return true;
}

/* The CRD's pattern for spec.inject.env, which the store's schema check
 * applies to what clients write: checked again, as an empty or '='-holding
 * name would make no variable at all. */
static bool is_env_name(const char *s)
{
    if (s[0] == '\0' || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (!(ch < 0x80 && (isalnum(ch) || ch == '_')))
            return false;
    }
    return true;
}

static bool is_set(const bdy_world_spec *spec, const char *name)
{
    for (size_t i = 0; i < spec->nbound; i++)
        if (strcmp(spec->bound_names[i], name) == 0)
            return true;
    return false;
}

/* Sets variable name (base, and '_' and key when key is not NULL) to
 * value for the world. */
static int add_variable(bind_ctx *c, json_object *b, const char *cap, const char *base,
                        const char *key, json_object *value)
{
    bdy_world_spec *spec = &c->ws->spec;
    char name[ENV_NAME_MAX];
    snprintf(name, sizeof(name), "%s", base);
    if (key != NULL &&
        (!append_env_part(name, sizeof(name), "_") || !append_env_part(name, sizeof(name), key))) {
        snprintf(c->why, c->why_cap, "capability %s: the variable for key %s is too long", cap,
                 key);
        return BDY_EINVAL;
    }
    const char *text = json_object_get_string(value);
    size_t len = (size_t)json_object_get_string_len(value);
    const char *problem = NULL;
    if (memchr(text, '\0', len) != NULL)
        problem = "holds a NUL byte, which no environment variable can";
    else if (len > BDY_CAPABILITY_MAX_VALUE_BYTES)
        problem = "is longer than an environment variable may be here (64 KiB)";
    else if (strncmp(name, BINDERY_PREFIX, sizeof(BINDERY_PREFIX) - 1) == 0)
        problem = "is one of Bindery's own names (BINDERY_*), which a binding may not set";
    else if (c->bytes + strlen(name) + len + 2 > BDY_CAPABILITY_MAX_TOTAL_BYTES)
        problem = "makes the world's bound variables longer than 256 KiB in all";
    else if (is_set(spec, name))
        problem = "sets a variable another capability or key of this world sets too";
    else if (spec->nbound == BDY_RUNTIME_MAX_ENV)
        problem = "makes more variables than embedded mode sets for a world's capabilities";
    if (problem != NULL) {
        char of_key[300] = "";
        if (key != NULL)
            snprintf(of_key, sizeof(of_key), " (key %s)", key);
        snprintf(c->why, c->why_cap, "capability %s: CapabilityBinding %s: %s%s %s", cap,
                 binding_name(b), name, of_key, problem);
        return BDY_EINVAL;
    }
    json_object *held_name = hold(c, json_object_new_string(name));
    if (held_name == NULL)
        return BDY_ENOMEM;
    spec->bound_names[spec->nbound] = json_object_get_string(held_name);
    spec->bound_values[spec->nbound] = text;
    spec->nbound++;
    c->bytes += strlen(name) + len + 2; /* as "NAME=value\0" */
    return 0;
}

/* Binds capability cap from binding b. */
static int bind_from(bind_ctx *c, json_object *b, const char *cap)
{
    int rc = 0;
    json_object *spec = bdy_jget(b, "spec");
    json_object *inject = bdy_jget(spec, "inject");
    if (bdy_jget(inject, "file") != NULL) {
        snprintf(c->why, c->why_cap,
                 "capability %s: CapabilityBinding %s injects a file (spec.inject.file); embedded "
                 "worlds are local processes with no file system of their own to mount it in: "
                 "use spec.inject.env",
                 cap, binding_name(b));
        return BDY_EINVAL;
    }
    char base[ENV_NAME_MAX];
    const char *env = bdy_jstr(inject, "env");
    if (env != NULL && (strlen(env) >= ENV_NAME_MAX || !is_env_name(env))) {
        snprintf(c->why, c->why_cap,
                 "capability %s: CapabilityBinding %s: spec.inject.env is not a variable name "
                 "(letters, digits and '_', not first a digit) of at most %d characters",
                 cap, binding_name(b), ENV_NAME_MAX - 1);
        return BDY_EINVAL;
    }
    if (env != NULL) {
        snprintf(base, sizeof(base), "%s", env);
    } else {
        snprintf(base, sizeof(base), "CAPABILITY_");
        (void)append_env_part(base, sizeof(base), cap); /* the CRD caps a name at 253 */
    }
    json_object *src = bdy_jget(spec, "source");
    json_object *ref =
        bdy_jget(src, "secretRef") ? bdy_jget(src, "secretRef") : bdy_jget(src, "configMapRef");
    const char *key = bdy_jstr(ref, "key");
    if (key != NULL && key[0] == '\0')
        key = NULL;
    source_entry entries[BDY_RUNTIME_MAX_ENV];
    size_t n = 0;
    rc = read_source(c, b, cap, key, entries, BDY_RUNTIME_MAX_ENV, &n);
    if (rc != 0)
        return rc;
    if (key != NULL && n > 0)
        return add_variable(c, b, cap, base, NULL, entries[0].value);
    if (key != NULL) {
        snprintf(c->why, c->why_cap,
                 "capability %s: CapabilityBinding %s: its %s %s/%s has no key %s", cap,
                 binding_name(b), bdy_jget(src, "secretRef") ? "Secret" : "ConfigMap", c->ns,
                 bdy_jstr(ref, "name"), key);
        return BDY_ENOTFOUND;
    }
    if (n == 0) {
        snprintf(c->why, c->why_cap,
                 "capability %s: CapabilityBinding %s: its source holds no value", cap,
                 binding_name(b));
        return BDY_ENOTFOUND;
    }
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = add_variable(c, b, cap, base, entries[i].key, entries[i].value);
    return rc;
}

static int bind_one(bind_ctx *c, json_object *bindings, const char *cap)
{
    json_object *b = NULL;
    int rc = choose_binding(c, bindings, cap, &b);
    return rc != 0 ? rc : bind_from(c, b, cap);
}

int bdy_capabilities_bind(bdy_worldspec *ws, json_object *world, json_object *bindings,
                          bdy_worldspec_get_fn get, void *data, char *why, size_t why_cap)
{
    json_object *meta = bdy_jget(world, "metadata");
    bind_ctx c = {
        .ws = ws,
        .ns = bdy_jstr(meta, "namespace") ? bdy_jstr(meta, "namespace") : "",
        .labels = bdy_jget(meta, "labels"),
        .get = get,
        .data = data,
        .why = why,
        .why_cap = why_cap,
    };
    int rc = 0;
    for (size_t i = 0; i < array_len(ws->capabilities) && rc == 0; i++)
        rc = bind_one(&c, bindings,
                      json_object_get_string(json_object_array_get_idx(ws->capabilities, i)));
    if (rc == BDY_ENOMEM)
        snprintf(why, why_cap, "out of memory");
    return rc;
}

int bdy_capability_binding_check(json_object *binding, bdy_worldspec_get_fn get, void *data,
                                 char *why, size_t why_cap)
{
    json_object *meta = bdy_jget(binding, "metadata");
    json_object *spec = bdy_jget(binding, "spec");
    const char *cap = bdy_jstr(spec, "capability") ? bdy_jstr(spec, "capability") : "";
    json_object *sel = bdy_jget(spec, "worldSelector");
    if (sel != NULL) {
        bdy_label_selector *s = NULL;
        bdy_errbuf eb;
        bdy_errbuf_clear(&eb);
        if (bdy_label_selector_from_json(sel, &s, &eb) != 0) {
            snprintf(why, why_cap, "capability %s: CapabilityBinding %s: worldSelector: %s", cap,
                     binding_name(binding), eb.message);
            return BDY_EINVAL;
        }
        bdy_label_selector_free(s);
    }
    bdy_worldspec ws;
    memset(&ws, 0, sizeof(ws));
    ws.held = json_object_new_array();
    if (ws.held == NULL) {
        snprintf(why, why_cap, "out of memory");
        return BDY_ENOMEM;
    }
    bind_ctx c = {
        .ws = &ws,
        .ns = bdy_jstr(meta, "namespace") ? bdy_jstr(meta, "namespace") : "",
        .get = get,
        .data = data,
        .why = why,
        .why_cap = why_cap,
    };
    int rc = bind_from(&c, binding, cap);
    if (rc == BDY_ENOMEM)
        snprintf(why, why_cap, "out of memory");
    bdy_worldspec_free(&ws);
    return rc;
}

typedef struct bound_pair {
    const char *name;
    const char *value;
} bound_pair;

static int pair_cmp(const void *a, const void *b)
{
    return strcmp(((const bound_pair *)a)->name, ((const bound_pair *)b)->name);
}

int bdy_capabilities_stamp(json_object *capabilities, const char *ns, json_object *labels,
                           json_object *bindings, bdy_worldspec_get_fn get, void *data,
                           char out[65])
{
    out[0] = '\0';
    if (array_len(capabilities) == 0)
        return 0;
    bdy_worldspec ws;
    memset(&ws, 0, sizeof(ws));
    ws.held = json_object_new_array();
    ws.capabilities = capabilities; /* read only; not held */
    json_object *world = json_object_new_object();
    json_object *meta = json_object_new_object();
    int rc = ws.held && world && meta ? 0 : BDY_ENOMEM;
    if (rc == 0) {
        json_object_object_add(world, "metadata", meta);
        meta = NULL;
        json_object *m = bdy_jget(world, "metadata");
        json_object_object_add(m, "namespace", json_object_new_string(ns));
        if (labels != NULL)
            json_object_object_add(m, "labels", json_object_get(labels));
        char why[512];
        rc = bdy_capabilities_bind(&ws, world, bindings, get, data, why, sizeof(why));
    }
    if (rc == 0) {
        /* "NAME=value\0" each, by name: a Secret written again with its
         * keys in another order is no change. Values hold no NUL. */
        bound_pair pairs[BDY_RUNTIME_MAX_ENV];
        for (size_t i = 0; i < ws.spec.nbound; i++) {
            pairs[i].name = ws.spec.bound_names[i];
            pairs[i].value = ws.spec.bound_values[i];
        }
        qsort(pairs, ws.spec.nbound, sizeof(pairs[0]), pair_cmp);
        bdy_buf text;
        bdy_buf_init(&text, BDY_CAPABILITY_MAX_TOTAL_BYTES + 1);
        for (size_t i = 0; i < ws.spec.nbound && rc == 0; i++) {
            rc = bdy_buf_printf(&text, "%s=", pairs[i].name);
            rc = rc ? rc : bdy_buf_append(&text, pairs[i].value, strlen(pairs[i].value) + 1);
        }
        if (rc == 0)
            bdy_sha256_hex(text.data ? text.data : "", text.len, out);
        bdy_buf_free(&text);
        rc = rc == BDY_ETOOBIG ? BDY_ENOMEM : rc; /* bind keeps within the cap */
    } else if (rc == BDY_ENOTFOUND || rc == BDY_EINVAL) {
        snprintf(out, 65, "unbound");
        rc = 0;
    }
    json_object_put(meta);
    json_object_put(world);
    bdy_worldspec_free(&ws);
    return rc;
}

/* Whether sel (a worldSelector, or NULL) selects every world. */
static bool selects_all(json_object *sel)
{
    if (sel == NULL)
        return true;
    bdy_label_selector *s = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    if (bdy_label_selector_from_json(sel, &s, &eb) != 0)
        return false; /* not valid: bdy_capability_binding_check says so */
    bool all = bdy_label_selector_is_empty(s);
    bdy_label_selector_free(s);
    return all;
}

int bdy_capability_binding_twin(json_object *binding, json_object *bindings, char *why,
                                size_t why_cap)
{
    json_object *meta = bdy_jget(binding, "metadata");
    const char *ns = bdy_jstr(meta, "namespace") ? bdy_jstr(meta, "namespace") : "";
    const char *cap = bdy_jstr(bdy_jget(binding, "spec"), "capability");
    json_object *sel = bdy_jget(bdy_jget(binding, "spec"), "worldSelector");
    if (cap == NULL)
        return 0;
    bool all = selects_all(sel);
    for (size_t i = 0; i < array_len(bindings); i++) {
        json_object *b = json_object_array_get_idx(bindings, i);
        json_object *bmeta = bdy_jget(b, "metadata");
        const char *bns = bdy_jstr(bmeta, "namespace") ? bdy_jstr(bmeta, "namespace") : "";
        const char *bcap = bdy_jstr(bdy_jget(b, "spec"), "capability");
        if (b == binding || strcmp(bns, ns) != 0 || bcap == NULL || strcmp(bcap, cap) != 0 ||
            strcmp(binding_name(b), binding_name(binding)) == 0)
            continue;
        json_object *bsel = bdy_jget(bdy_jget(b, "spec"), "worldSelector");
        bool same = all ? selects_all(bsel) : bsel != NULL && json_object_equal(sel, bsel);
        if (!same)
            continue;
        snprintf(why, why_cap,
                 "capability %s: CapabilityBindings %s and %s both serve it to the same worlds "
                 "(%s), so the worlds that need it wait; give one a worldSelector the other "
                 "lacks, or delete one",
                 cap, binding_name(binding), binding_name(b),
                 all ? "neither has a worldSelector" : "the same worldSelector");
        return BDY_EEXISTS;
    }
    return 0;
}
