/* The OpenAPI v3 (structural schema) validator behind custom resources.
 *
 * One generic engine: bdy__schema_compile() turns a CRD's openAPIV3Schema
 * into a tree of bdy_schema nodes (regexes compiled, enum texts and limits
 * rendered once), and bdy_schema_validate() walks an object along that tree,
 * applying defaults, pruning or reporting unknown fields and collecting
 * Kubernetes-worded causes. The engine follows the order of the API server:
 * a field is defaulted when absent (or null where null is not allowed), its
 * unknown fields are pruned, then it is validated.
 *
 * Deliberate limits, each rejected at compile time rather than ignored:
 * oneOf/allOf/not/multipleOf/uniqueItems/$ref/x-kubernetes-validations, and
 * anyOf except the [integer, string] form that code generators emit next to
 * x-kubernetes-int-or-string. Descriptive keywords (description, title,
 * example, externalDocs, x-kubernetes-list-type, -list-map-keys, -map-type)
 * are accepted and have no effect; in particular list-type set/map uniqueness
 * is not enforced. Formats other than int32, int64 and date-time are ignored,
 * as Kubernetes ignores formats it does not know. additionalProperties: false
 * means the same as leaving it out (unknown keys are pruned or reported).
 */
#include "schema_internal.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "bindery/jsonutil.h"
#include "bindery/util.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest field path tracked while walking; deeper text is cut off (causes
 * hold 256 bytes of it anyway). */
#define SCHEMA_PATH_MAX 512
/* Longest rendering of a value quoted in a message. */
#define VALUE_TEXT_MAX 96
/* Longest "supported values" list kept for enum messages. */
#define ENUM_TEXT_MAX 512

typedef enum stype {
    ST_NONE,
    ST_OBJECT,
    ST_ARRAY,
    ST_STRING,
    ST_INTEGER,
    ST_NUMBER,
    ST_BOOLEAN,
} stype;

static const char *const stype_names[] = {
    [ST_NONE] = NULL,         [ST_OBJECT] = "object",   [ST_ARRAY] = "array",
    [ST_STRING] = "string",   [ST_INTEGER] = "integer", [ST_NUMBER] = "number",
    [ST_BOOLEAN] = "boolean",
};

typedef enum sformat {
    SF_NONE,
    SF_INT32,
    SF_INT64,
    SF_DATE_TIME,
} sformat;

typedef struct prop {
    char *name;
    bdy_schema *schema;
} prop;

struct bdy_schema {
    stype type;
    sformat format;
    bool nullable;
    bool int_or_string;
    bool preserve_unknown;
    bool embedded;
    prop *props; /* sorted by name for bsearch */
    size_t nprops;
    char **required;
    size_t nrequired;
    bdy_schema *items;
    bdy_schema *additional; /* additionalProperties given as a schema */
    bool additional_any;    /* additionalProperties: true */
    json_object *enum_values;
    char *enum_text; /* "\"a\", \"b\"" for Unsupported value messages */
    bool has_default;
    json_object *default_value; /* NULL with has_default: the default is null */
    bool has_min, has_max, min_exclusive, max_exclusive;
    double min, max;
    char *min_text, *max_text; /* the limits as written in the CRD */
    pcre2_code *pattern;       /* NULL: none */
    char *pattern_text;
    int64_t min_length, max_length, min_items, max_items, min_props, max_props; /* -1: unset */
    char *resource; /* root only: "Kind.group" for error summaries */
};

/* Walk state shared by compiling and validating: where we are, where the
 * causes go, and whether unknown fields are pruned or reported. */
typedef struct ctx {
    bdy__issues *is;
    bdy_unknown_fields mode;
    bool nomem;
    size_t len;
    char path[SCHEMA_PATH_MAX];
} ctx;

void bdy__issue(bdy__issues *is, const char *reason, const char *field, const char *fmt, ...)
{
    char msg[sizeof(((bdy_cause *)NULL)->message)];
    va_list ap;

    is->count++;
    if (is->eb == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    bdy_errbuf_add_cause(is->eb, reason, field, "%s", msg);
}

/* Appends printf output at *len, never past cap - 1. */
static void append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*len + 1 >= cap)
        return;
    va_start(ap, fmt);
    n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len = *len + (size_t)n < cap ? *len + (size_t)n : cap - 1;
}

void bdy__errbuf_summarize(bdy_errbuf *eb, const char *resource, const char *name)
{
    size_t len = 0;

    if (eb == NULL)
        return;
    eb->message[0] = '\0';
    append(eb->message, sizeof(eb->message), &len, "%s \"%s\" is invalid: %s", resource,
           name ? name : "", eb->ncauses > 1 ? "[" : "");
    for (size_t i = 0; i < eb->ncauses; i++) {
        const bdy_cause *c = &eb->causes[i];
        append(eb->message, sizeof(eb->message), &len, "%s%s%s%s", i > 0 ? ", " : "", c->field,
               c->field[0] ? ": " : "", c->message);
    }
    if (eb->ncauses > 1)
        append(eb->message, sizeof(eb->message), &len, "]");
}

/* Appends one path segment; returns the length to restore with path_pop(). */
static size_t path_push(ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t path_push(ctx *c, const char *fmt, ...)
{
    size_t old = c->len;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(c->path + old, sizeof(c->path) - old, fmt, ap);
    va_end(ap);
    if (n > 0)
        c->len = old + (size_t)n < sizeof(c->path) ? old + (size_t)n : sizeof(c->path) - 1;
    return old;
}

static size_t path_push_key(ctx *c, const char *key)
{
    return path_push(c, c->len > 0 ? ".%s" : "%s", key);
}

static void path_pop(ctx *c, size_t old)
{
    c->len = old;
    c->path[old] = '\0';
}

const char *bdy__json_type_word(json_type t)
{
    switch (t) {
    case json_type_boolean:
        return "boolean";
    case json_type_double:
        return "number";
    case json_type_int:
        return "integer";
    case json_type_object:
        return "object";
    case json_type_array:
        return "array";
    case json_type_string:
        return "string";
    case json_type_null:
    default:
        return "null";
    }
}

static const char *type_name(json_object *v)
{
    return bdy__json_type_word(json_object_get_type(v));
}

/* Compact JSON of v for a message, cut to fit out. The object is the
 * caller's (rendering caches text inside it), never shared schema data. */
static const char *render(json_object *v, char out[VALUE_TEXT_MAX])
{
    const char *text =
        json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    size_t len = strlen(text);

    if (len < VALUE_TEXT_MAX) {
        memcpy(out, text, len + 1);
    } else {
        memcpy(out, text, VALUE_TEXT_MAX - 4);
        memcpy(out + VALUE_TEXT_MAX - 4, "...", 4);
    }
    return out;
}

static bool is_meta_key(const char *key)
{
    return strcmp(key, "apiVersion") == 0 || strcmp(key, "kind") == 0 ||
           strcmp(key, "metadata") == 0;
}

static int prop_key_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const prop *)elem)->name);
}

static int prop_cmp(const void *a, const void *b)
{
    return strcmp(((const prop *)a)->name, ((const prop *)b)->name);
}

static const bdy_schema *find_prop(const bdy_schema *s, const char *name)
{
    const prop *p;

    if (s->nprops == 0)
        return NULL;
    p = bsearch(name, s->props, s->nprops, sizeof(prop), prop_key_cmp);
    return p ? p->schema : NULL;
}

/* ---- validation ---- */

static void validate_node(ctx *c, const bdy_schema *s, json_object *v, bool root);

static bool full(const ctx *c)
{
    return c->nomem || c->is->count >= BDY_ERRBUF_MAX_CAUSES;
}

/* Integers as JSON writes them, including 3.0 (go-openapi accepts an
 * integral float where an integer is declared). */
static bool is_integer(json_object *v)
{
    double d;

    if (json_object_is_type(v, json_type_int))
        return true;
    if (!json_object_is_type(v, json_type_double))
        return false;
    d = json_object_get_double(v);
    return isfinite(d) && floor(d) == d;
}

static bool type_ok(const bdy_schema *s, json_object *v)
{
    json_type t = json_object_get_type(v);

    if (s->int_or_string)
        return t == json_type_string || is_integer(v);
    switch (s->type) {
    case ST_OBJECT:
        return t == json_type_object;
    case ST_ARRAY:
        return t == json_type_array;
    case ST_STRING:
        return t == json_type_string;
    case ST_INTEGER:
        return is_integer(v);
    case ST_NUMBER:
        return t == json_type_int || t == json_type_double;
    case ST_BOOLEAN:
        return t == json_type_boolean;
    case ST_NONE:
    default:
        return true;
    }
}

static bool fits_format(json_object *v, sformat f)
{
    int64_t i;

    if (json_object_is_type(v, json_type_double)) {
        double d = json_object_get_double(v);
        if (floor(d) != d)
            return false;
        return f == SF_INT32 ? d >= INT32_MIN && d <= INT32_MAX
                             : d >= -9223372036854775808.0 && d < 9223372036854775808.0;
    }
    /* json-c keeps integers above INT64_MAX as uint64 and saturates the
     * int64 getter, so INT64_MAX needs a second look. */
    i = json_object_get_int64(v);
    if (i == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX)
        return false;
    return f == SF_INT64 || (i >= INT32_MIN && i <= INT32_MAX);
}

/* Counts code points for minLength/maxLength: every byte that is not a
 * UTF-8 continuation byte starts one. */
static size_t utf8_length(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

/* What one match may use: Kubernetes matches with RE2, in linear time;
 * PCRE2 backtracks, and a pattern written carelessly could otherwise hold
 * the store's writer for ever on a string made to defeat it. The step
 * limit grows with the value (a pattern like ^(a|b)*$ takes a few steps a
 * byte); the backtracking memory is bounded rather than its depth, so long
 * values a repeated group matches still match. */
#define PATTERN_STEPS_MIN 1000000u
#define PATTERN_STEPS_PER_BYTE 64u
#define PATTERN_HEAP_KIB (64u * 1024u)

typedef enum pattern_result { PATTERN_MATCH, PATTERN_NO_MATCH, PATTERN_TOO_COSTLY } pattern_result;

/* Whether the pattern matches anywhere in the len bytes at str (a NUL
 * among them included, as in Kubernetes). Any thread: the compiled
 * pattern is only read. */
static pattern_result pattern_matches(const pcre2_code *re, const char *str, size_t len)
{
    pcre2_match_context *mc = pcre2_match_context_create(NULL);
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    int r = PCRE2_ERROR_NOMEMORY;
    if (mc != NULL && md != NULL) {
        size_t steps = len < (UINT32_MAX - PATTERN_STEPS_MIN) / PATTERN_STEPS_PER_BYTE
                           ? PATTERN_STEPS_MIN + len * PATTERN_STEPS_PER_BYTE
                           : UINT32_MAX;
        pcre2_set_match_limit(mc, (uint32_t)steps);
        pcre2_set_heap_limit(mc, PATTERN_HEAP_KIB);
        r = pcre2_match(re, (PCRE2_SPTR)str, len, 0, 0, md, mc);
    }
    pcre2_match_data_free(md);
    pcre2_match_context_free(mc);
    if (r >= 0)
        return PATTERN_MATCH;
    return r == PCRE2_ERROR_NOMATCH || (r <= PCRE2_ERROR_UTF8_ERR1 && r >= PCRE2_ERROR_UTF8_ERR21)
               ? PATTERN_NO_MATCH
               : PATTERN_TOO_COSTLY;
}

static void check_string(ctx *c, const bdy_schema *s, json_object *v)
{
    const char *str = json_object_get_string(v);
    size_t len = (size_t)json_object_get_string_len(v);
    size_t n = utf8_length(str, len);
    char val[VALUE_TEXT_MAX];
    double ignored;

    if (s->min_length >= 0 && n < (uint64_t)s->min_length)
        bdy__issue(c->is, "FieldValueInvalid", c->path,
                   "Invalid value: %s: %s in body should be at least %lld chars long",
                   render(v, val), c->path, (long long)s->min_length);
    if (s->max_length >= 0 && n > (uint64_t)s->max_length)
        bdy__issue(c->is, "FieldValueTooLong", c->path, "Too long: may not be longer than %lld",
                   (long long)s->max_length);
    pattern_result pr = s->pattern != NULL ? pattern_matches(s->pattern, str, len) : PATTERN_MATCH;
    if (pr == PATTERN_NO_MATCH)
        bdy__issue(c->is, "FieldValueInvalid", c->path,
                   "Invalid value: %s: %s in body should match '%s'", render(v, val), c->path,
                   s->pattern_text);
    else if (pr == PATTERN_TOO_COSTLY)
        bdy__issue(c->is, "FieldValueInvalid", c->path,
                   "Invalid value: %s: %s could not be matched against '%s' within the "
                   "server's bounds on pattern matching",
                   render(v, val), c->path, s->pattern_text);
    if (s->format == SF_DATE_TIME && bdy_timestamp_parse(str, &ignored) != 0) {
        render(v, val);
        bdy__issue(c->is, "FieldValueTypeInvalid", c->path,
                   "Invalid value: %s: %s in body must be of type date-time: %s", val, c->path,
                   val);
    }
}

static void check_number(ctx *c, const bdy_schema *s, json_object *v)
{
    double d = json_object_get_double(v);
    char val[VALUE_TEXT_MAX];

    if (s->has_min && (d < s->min || (s->min_exclusive && d == s->min)))
        bdy__issue(c->is, "FieldValueInvalid", c->path,
                   "Invalid value: %s: %s in body should be greater than%s %s", render(v, val),
                   c->path, s->min_exclusive ? "" : " or equal to", s->min_text);
    if (s->has_max && (d > s->max || (s->max_exclusive && d == s->max)))
        bdy__issue(c->is, "FieldValueInvalid", c->path,
                   "Invalid value: %s: %s in body should be less than%s %s", render(v, val),
                   c->path, s->max_exclusive ? "" : " or equal to", s->max_text);
    if ((s->format == SF_INT32 || s->format == SF_INT64) && !fits_format(v, s->format))
        bdy__issue(c->is, "FieldValueTypeInvalid", c->path,
                   "Invalid value: %s: %s in body must be of type %s", render(v, val), c->path,
                   s->format == SF_INT32 ? "int32" : "int64");
}

static void check_array(ctx *c, const bdy_schema *s, json_object *v)
{
    size_t n = json_object_array_length(v);

    if (s->min_items >= 0 && n < (uint64_t)s->min_items)
        bdy__issue(c->is, "FieldValueInvalid", c->path,
                   "Invalid value: %zu: %s in body should have at least %lld items", n, c->path,
                   (long long)s->min_items);
    if (s->max_items >= 0 && n > (uint64_t)s->max_items)
        bdy__issue(c->is, "FieldValueTooMany", c->path,
                   "Too many: %zu: must have at most %lld items", n, (long long)s->max_items);
    if (s->items == NULL)
        return;
    for (size_t i = 0; i < n && !full(c); i++) {
        size_t old = path_push(c, "[%zu]", i);
        validate_node(c, s->items, json_object_array_get_idx(v, i), false);
        path_pop(c, old);
    }
}

/* apiVersion and kind of an embedded resource must be non-empty strings. */
static void check_embedded_string(ctx *c, json_object *v, const char *key)
{
    json_object *f = NULL;
    size_t old = path_push_key(c, key);

    if (!json_object_object_get_ex(v, key, &f) ||
        (json_object_is_type(f, json_type_string) && json_object_get_string_len(f) == 0))
        bdy__issue(c->is, "FieldValueRequired", c->path, "Required value: must not be empty");
    else if (!json_object_is_type(f, json_type_string))
        bdy__issue(c->is, "FieldValueTypeInvalid", c->path,
                   "Invalid value: \"%s\": %s in body must be of type string: \"%s\"", type_name(f),
                   c->path, type_name(f));
    path_pop(c, old);
}

static void check_embedded(ctx *c, json_object *v)
{
    json_object *meta = NULL;

    check_embedded_string(c, v, "apiVersion");
    check_embedded_string(c, v, "kind");
    if (json_object_object_get_ex(v, "metadata", &meta) &&
        !json_object_is_type(meta, json_type_object)) {
        size_t old = path_push_key(c, "metadata");
        bdy__issue(c->is, "FieldValueTypeInvalid", c->path,
                   "Invalid value: \"%s\": %s in body must be of type object: \"%s\"",
                   type_name(meta), c->path, type_name(meta));
        path_pop(c, old);
    }
}

/* Fills absent properties (and null ones where null is not allowed) with
 * copies of their defaults. Runs before the walk over the keys, so what is
 * put in is pruned and validated like the rest and nested defaults apply. */
static void apply_defaults(ctx *c, const bdy_schema *s, json_object *v, bool root)
{
    for (size_t i = 0; i < s->nprops; i++) {
        const prop *p = &s->props[i];
        json_object *cur = NULL;
        json_object *copy = NULL;

        /* A null default is none, as Kubernetes takes it: an absent
         * field stays absent. */
        if (!p->schema->has_default || p->schema->default_value == NULL ||
            (root && is_meta_key(p->name)))
            continue;
        if (json_object_object_get_ex(v, p->name, &cur) && (cur != NULL || p->schema->nullable))
            continue;
        if (json_object_deep_copy(p->schema->default_value, &copy, NULL) != 0) {
            c->nomem = true;
            return;
        }
        if (json_object_object_add(v, p->name, copy) != 0) {
            json_object_put(copy);
            c->nomem = true;
            return;
        }
    }
}

static void check_object(ctx *c, const bdy_schema *s, json_object *v, bool root)
{
    size_t n;

    apply_defaults(c, s, v, root);
    /* Deleting the current key inside json_object_object_foreach is safe:
     * the macro reads the next entry before the body runs. */
    json_object_object_foreach(v, key, val)
    {
        const bdy_schema *child;
        size_t old;

        if (full(c))
            return;
        if (root && is_meta_key(key))
            continue;
        child = find_prop(s, key);
        if (child == NULL && s->embedded && is_meta_key(key))
            continue;
        if (child == NULL)
            child = s->additional;
        /* A null where the schema allows none and has no default to put
         * in (apply_defaults has put those in) is dropped, not refused, as
         * the Kubernetes API server drops it: clients that write unset
         * fields as null (Go structs without omitempty) are served. Not in
         * arrays, where Kubernetes keeps (and refuses) it too. */
        if (child != NULL && val == NULL && !child->nullable &&
            (!child->has_default || child->default_value == NULL)) {
            json_object_object_del(v, key);
            continue;
        }
        if (child == NULL && (s->additional_any || s->preserve_unknown))
            continue;
        if (child == NULL && c->mode == BDY_UNKNOWN_PRUNE) {
            json_object_object_del(v, key);
            continue;
        }
        old = path_push_key(c, key);
        if (child != NULL)
            validate_node(c, child, val, false);
        else
            bdy__issue(c->is, "FieldValueForbidden", c->path, "unknown field \"%s\"", c->path);
        path_pop(c, old);
    }

    if (s->embedded)
        check_embedded(c, v);
    for (size_t i = 0; i < s->nrequired && !full(c); i++) {
        if (!json_object_object_get_ex(v, s->required[i], NULL)) {
            size_t old = path_push_key(c, s->required[i]);
            bdy__issue(c->is, "FieldValueRequired", c->path, "Required value");
            path_pop(c, old);
        }
    }

    n = (size_t)json_object_object_length(v);
    if (root) {
        static const char *const meta[] = {"apiVersion", "kind", "metadata"};
        for (size_t i = 0; i < sizeof(meta) / sizeof(meta[0]); i++)
            n -= json_object_object_get_ex(v, meta[i], NULL);
    }
    if (s->min_props >= 0 && n < (uint64_t)s->min_props)
        bdy__issue(c->is, "FieldValueInvalid", c->path,
                   "Invalid value: %zu: %s in body should have at least %lld properties", n,
                   c->path, (long long)s->min_props);
    if (s->max_props >= 0 && n > (uint64_t)s->max_props)
        bdy__issue(c->is, "FieldValueTooMany", c->path,
                   "Too many: %zu: must have at most %lld items", n, (long long)s->max_props);
}

/* Validates v (NULL is JSON null) against s at c->path. root marks the
 * whole custom resource, whose apiVersion, kind and metadata are the
 * caller's. Recursion follows the schema, whose depth is capped at compile
 * time. */
static void validate_node(ctx *c, const bdy_schema *s, json_object *v, bool root)
{
    char val[VALUE_TEXT_MAX];

    if (full(c) || (v == NULL && s->nullable))
        return;
    if (!type_ok(s, v)) {
        bdy__issue(c->is, "FieldValueTypeInvalid", c->path,
                   "Invalid value: \"%s\": %s in body must be of type %s: \"%s\"", type_name(v),
                   c->path, s->int_or_string ? "integer,string" : stype_names[s->type],
                   type_name(v));
        return;
    }
    if (json_object_is_type(v, json_type_double) && !isfinite(json_object_get_double(v))) {
        bdy__issue(c->is, "FieldValueInvalid", c->path,
                   "Invalid value: %s: %s in body must be a finite number", render(v, val),
                   c->path);
        return;
    }
    if (s->enum_values != NULL) {
        size_t n = json_object_array_length(s->enum_values);
        size_t i = 0;
        while (i < n && !bdy_json_same_value(json_object_array_get_idx(s->enum_values, i), v))
            i++;
        if (i == n)
            bdy__issue(c->is, "FieldValueNotSupported", c->path,
                       "Unsupported value: %s: supported values: %s", render(v, val), s->enum_text);
    }
    switch (json_object_get_type(v)) {
    case json_type_string:
        check_string(c, s, v);
        break;
    case json_type_int:
    case json_type_double:
        check_number(c, s, v);
        break;
    case json_type_array:
        check_array(c, s, v);
        break;
    case json_type_object:
        check_object(c, s, v, root);
        break;
    case json_type_null:
    case json_type_boolean:
    default:
        break;
    }
}

int bdy_schema_validate(const bdy_schema *schema, json_object *obj, bdy_unknown_fields mode,
                        bdy_errbuf *eb)
{
    int rc = 0;
    bdy__issues is = {eb, 0};
    ctx c = {.is = &is, .mode = mode};
    json_object *meta = NULL;
    json_object *name = NULL;

    bdy_errbuf_clear(eb);
    if (schema == NULL || !json_object_is_type(obj, json_type_object)) {
        rc = bdy_fail(eb, BDY_EINVAL, "a custom resource must be a JSON object");
        goto out;
    }
    validate_node(&c, schema, obj, true);
    if (c.nomem) {
        rc = bdy_fail(eb, BDY_ENOMEM, "out of memory while validating");
        goto out;
    }
    if (is.count > 0) {
        if (json_object_object_get_ex(obj, "metadata", &meta))
            json_object_object_get_ex(meta, "name", &name);
        bdy__errbuf_summarize(
            eb, schema->resource,
            json_object_is_type(name, json_type_string) ? json_object_get_string(name) : NULL);
        rc = BDY_EINVALID_OBJECT;
    }
out:
    return rc;
}

/* ---- compilation ---- */

/* Every keyword a schema node may carry; anything else is refused so that a
 * constraint we do not implement never passes silently. */
static const char *const known_keywords[] = {
    "type",
    "format",
    "nullable",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "enum",
    "default",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "pattern",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "anyOf",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "description",
    "title",
    "example",
    "externalDocs",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
};

static bool kw(json_object *node, const char *name, json_object **v)
{
    return json_object_object_get_ex(node, name, v);
}

static void kw_issue(ctx *c, const char *name, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void kw_issue(ctx *c, const char *name, const char *reason, const char *fmt, ...)
{
    char msg[sizeof(((bdy_cause *)NULL)->message)];
    size_t old = path_push(c, ".%s", name);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    bdy__issue(c->is, reason, c->path, "%s", msg);
    path_pop(c, old);
}

static void kw_type_issue(ctx *c, const char *name, json_object *v, const char *want)
{
    kw_issue(c, name, "FieldValueTypeInvalid", "Invalid value: \"%s\": must be of type %s",
             type_name(v), want);
}

static void kw_bool(ctx *c, json_object *node, const char *name, bool *out)
{
    json_object *v = NULL;

    if (!kw(node, name, &v))
        return;
    if (json_object_is_type(v, json_type_boolean))
        *out = json_object_get_boolean(v);
    else
        kw_type_issue(c, name, v, "boolean");
}

static void kw_count(ctx *c, json_object *node, const char *name, int64_t *out)
{
    json_object *v = NULL;
    char val[VALUE_TEXT_MAX];

    if (!kw(node, name, &v))
        return;
    if (json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0)
        *out = json_object_get_int64(v);
    else
        kw_issue(c, name, "FieldValueInvalid", "Invalid value: %s: must be a non-negative integer",
                 render(v, val));
}

static int kw_number(ctx *c, json_object *node, const char *name, bool *has, double *out,
                     char **text)
{
    json_object *v = NULL;
    char val[VALUE_TEXT_MAX];

    if (!kw(node, name, &v))
        return 0;
    if ((!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double)) ||
        !isfinite(json_object_get_double(v))) {
        kw_type_issue(c, name, v, "number");
        return 0;
    }
    *out = json_object_get_double(v);
    *text = strdup(render(v, val));
    if (*text == NULL)
        return BDY_ENOMEM;
    *has = true;
    return 0;
}

/* Refuses keywords outside known_keywords. */
static void check_keywords(ctx *c, json_object *node)
{
    json_object_object_foreach(node, key, val)
    {
        size_t i = 0;
        (void)val;
        while (i < sizeof(known_keywords) / sizeof(known_keywords[0]) &&
               strcmp(known_keywords[i], key) != 0)
            i++;
        if (i == sizeof(known_keywords) / sizeof(known_keywords[0]))
            kw_issue(c, key, "FieldValueForbidden",
                     "Forbidden: keyword \"%s\" is not supported by Bindery's schema validator",
                     key);
    }
}

static void compile_type(ctx *c, json_object *node, bdy_schema *s)
{
    json_object *v = NULL;
    char val[VALUE_TEXT_MAX];

    if (kw(node, "type", &v)) {
        const char *t = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
        for (int i = ST_OBJECT; i <= ST_BOOLEAN; i++) {
            if (strcmp(t, stype_names[i]) == 0)
                s->type = (stype)i;
        }
        if (s->type == ST_NONE)
            kw_issue(c, "type", "FieldValueNotSupported",
                     "Unsupported value: %s: supported values: \"array\", \"boolean\", "
                     "\"integer\", \"number\", \"object\", \"string\"",
                     render(v, val));
    }
    if (kw(node, "format", &v)) {
        if (!json_object_is_type(v, json_type_string))
            kw_type_issue(c, "format", v, "string");
        else if (strcmp(json_object_get_string(v), "int32") == 0)
            s->format = SF_INT32;
        else if (strcmp(json_object_get_string(v), "int64") == 0)
            s->format = SF_INT64;
        else if (strcmp(json_object_get_string(v), "date-time") == 0)
            s->format = SF_DATE_TIME;
    }
}

static int compile_pattern(ctx *c, json_object *node, bdy_schema *s)
{
    json_object *v = NULL;
    char val[VALUE_TEXT_MAX];
    char why[128];
    int err;

    if (!kw(node, "pattern", &v))
        return 0;
    if (!json_object_is_type(v, json_type_string)) {
        kw_type_issue(c, "pattern", v, "string");
        return 0;
    }
    /* The syntax Kubernetes' (Go's RE2) patterns are written in: \d, \w,
     * \s, (?:...), lazy quantifiers; $ only at the very end, as in Go. UTF:
     * subjects and patterns are UTF-8 text, matched by character. */
    PCRE2_SIZE at = 0;
    s->pattern = pcre2_compile((PCRE2_SPTR)json_object_get_string(v),
                               (PCRE2_SIZE)json_object_get_string_len(v),
                               PCRE2_UTF | PCRE2_DOLLAR_ENDONLY, &err, &at, NULL);
    if (s->pattern == NULL) {
        if (err == PCRE2_ERROR_NOMEMORY)
            return BDY_ENOMEM;
        pcre2_get_error_message(err, (PCRE2_UCHAR *)why, sizeof(why));
        kw_issue(c, "pattern", "FieldValueInvalid",
                 "Invalid value: %s: must be a valid regular expression: %s at offset %zu",
                 render(v, val), why, (size_t)at);
        return 0;
    }
    s->pattern_text = strdup(json_object_get_string(v));
    return s->pattern_text ? 0 : BDY_ENOMEM;
}

/* Keeps a private copy of the enum and renders it the way Kubernetes lists
 * supported values: each quoted, non-strings quoted as their JSON text. */
static int compile_enum(ctx *c, json_object *node, bdy_schema *s)
{
    json_object *v = NULL;
    json_object *quoted = NULL;
    bdy_buf b;
    int rc = 0;

    bdy_buf_init(&b, ENUM_TEXT_MAX);
    if (!kw(node, "enum", &v))
        goto out;
    if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) == 0) {
        kw_issue(c, "enum", "FieldValueInvalid", "Invalid value: \"%s\": must be a non-empty array",
                 type_name(v));
        goto out;
    }
    if (json_object_deep_copy(v, &s->enum_values, NULL) != 0) {
        rc = BDY_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < json_object_array_length(s->enum_values); i++) {
        json_object *e = json_object_array_get_idx(s->enum_values, i);
        const char *text;

        if (json_object_is_type(e, json_type_string)) {
            text = json_object_to_json_string_ext(e, JSON_C_TO_STRING_NOSLASHESCAPE);
        } else {
            quoted = json_object_new_string(json_object_to_json_string_ext(
                e, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
            if (quoted == NULL) {
                rc = BDY_ENOMEM;
                goto out;
            }
            text = json_object_to_json_string_ext(quoted, JSON_C_TO_STRING_NOSLASHESCAPE);
        }
        rc = bdy_buf_printf(&b, "%s%s", i > 0 ? ", " : "", text);
        json_object_put(quoted);
        quoted = NULL;
        /* A list too long to quote in full is cut short; the check itself
         * uses the whole enum. */
        if (rc == BDY_ETOOBIG) {
            rc = 0;
            break;
        }
        if (rc != 0)
            goto out;
    }
    s->enum_text = bdy_buf_steal(&b);
    if (s->enum_text == NULL)
        rc = BDY_ENOMEM;
out:
    json_object_put(quoted);
    bdy_buf_free(&b);
    return rc;
}

static int compile_node(ctx *c, json_object *node, int depth, bdy_schema **out);

static int compile_properties(ctx *c, json_object *node, int depth, bdy_schema *s)
{
    json_object *v = NULL;
    size_t n;

    if (!kw(node, "properties", &v))
        return 0;
    if (!json_object_is_type(v, json_type_object)) {
        kw_type_issue(c, "properties", v, "object");
        return 0;
    }
    n = (size_t)json_object_object_length(v);
    if (n == 0)
        return 0;
    s->props = calloc(n, sizeof(prop));
    if (s->props == NULL)
        return BDY_ENOMEM;
    json_object_object_foreach(v, key, child)
    {
        prop *p = &s->props[s->nprops];
        size_t old;
        int rc;

        p->name = strdup(key);
        if (p->name == NULL)
            return BDY_ENOMEM;
        s->nprops++;
        old = path_push(c, ".properties[%s]", key);
        rc = compile_node(c, child, depth + 1, &p->schema);
        path_pop(c, old);
        if (rc != 0)
            return rc;
    }
    qsort(s->props, s->nprops, sizeof(prop), prop_cmp);
    return 0;
}

static int compile_required(ctx *c, json_object *node, bdy_schema *s)
{
    json_object *v = NULL;
    size_t n;

    if (!kw(node, "required", &v))
        return 0;
    if (!json_object_is_type(v, json_type_array)) {
        kw_type_issue(c, "required", v, "array");
        return 0;
    }
    n = json_object_array_length(v);
    if (n == 0)
        return 0;
    s->required = calloc(n, sizeof(char *));
    if (s->required == NULL)
        return BDY_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(v, i);
        if (!json_object_is_type(e, json_type_string)) {
            size_t old = path_push(c, ".required[%zu]", i);
            bdy__issue(c->is, "FieldValueTypeInvalid", c->path,
                       "Invalid value: \"%s\": must be of type string", type_name(e));
            path_pop(c, old);
            continue;
        }
        s->required[s->nrequired] = strdup(json_object_get_string(e));
        if (s->required[s->nrequired] == NULL)
            return BDY_ENOMEM;
        s->nrequired++;
    }
    return 0;
}

/* Compiles items and additionalProperties, the two single-schema children. */
static int compile_children(ctx *c, json_object *node, int depth, bdy_schema *s)
{
    json_object *v = NULL;
    size_t old;
    int rc = 0;

    if (kw(node, "items", &v)) {
        old = path_push(c, ".items");
        rc = compile_node(c, v, depth + 1, &s->items);
        path_pop(c, old);
        if (rc != 0)
            return rc;
    }
    if (kw(node, "additionalProperties", &v)) {
        if (json_object_is_type(v, json_type_boolean)) {
            s->additional_any = json_object_get_boolean(v);
            return 0;
        }
        old = path_push(c, ".additionalProperties");
        rc = compile_node(c, v, depth + 1, &s->additional);
        path_pop(c, old);
    }
    return rc;
}

/* The rules that make a schema structural, as the API server states them. */
static void check_structural(ctx *c, json_object *node, const bdy_schema *s)
{
    bool has_type = kw(node, "type", NULL);
    bool has_items = kw(node, "items", NULL);
    bool has_props = kw(node, "properties", NULL);
    bool has_additional = kw(node, "additionalProperties", NULL);

    if (s->int_or_string && has_type)
        kw_issue(c, "type", "FieldValueForbidden",
                 "Forbidden: must be empty if x-kubernetes-int-or-string is true");
    if (!has_type && !s->int_or_string && !s->preserve_unknown)
        kw_issue(c, "type", "FieldValueRequired",
                 "Required value: must not be empty for specified fields");
    if (s->type == ST_ARRAY && !has_items)
        kw_issue(c, "items", "FieldValueRequired", "Required value: must be specified for arrays");
    if (has_items && s->type != ST_ARRAY)
        kw_issue(c, "items", "FieldValueForbidden", "Forbidden: only allowed for type array");
    if (has_props && s->type != ST_OBJECT)
        kw_issue(c, "properties", "FieldValueForbidden", "Forbidden: only allowed for type object");
    if (has_additional && s->type != ST_OBJECT)
        kw_issue(c, "additionalProperties", "FieldValueForbidden",
                 "Forbidden: only allowed for type object");
    if (has_props && (s->additional != NULL || s->additional_any))
        kw_issue(c, "additionalProperties", "FieldValueForbidden",
                 "Forbidden: additionalProperties and properties are mutually exclusive");
    if (s->embedded && s->type != ST_OBJECT)
        kw_issue(c, "x-kubernetes-embedded-resource", "FieldValueForbidden",
                 "Forbidden: only allowed for type object");
    if (kw(node, "anyOf", NULL) && !s->int_or_string)
        kw_issue(c, "anyOf", "FieldValueForbidden",
                 "Forbidden: only supported together with x-kubernetes-int-or-string");
}

/* Keeps the default and checks it the way the API server does: a copy must
 * validate against this node with nothing to prune. */
static int compile_default(ctx *c, json_object *node, bdy_schema *s)
{
    json_object *v = NULL;
    json_object *probe = NULL;
    size_t old;
    int rc = 0;

    if (!kw(node, "default", &v))
        goto out;
    s->has_default = true;
    if (v != NULL && (json_object_deep_copy(v, &s->default_value, NULL) != 0 ||
                      json_object_deep_copy(v, &probe, NULL) != 0)) {
        rc = BDY_ENOMEM;
        goto out;
    }
    old = path_push(c, ".default");
    validate_node(c, s, probe, false);
    path_pop(c, old);
    if (c->nomem)
        rc = BDY_ENOMEM;
out:
    json_object_put(probe);
    return rc;
}

/* Compiles node (at c->path) into *out, which is always set on return and
 * always owned by the caller. Problems with the schema go to c->is; only
 * BDY_ENOMEM is returned as an error. */
static int compile_node(ctx *c, json_object *node, int depth, bdy_schema **out)
{
    bdy_schema *s = calloc(1, sizeof(*s));
    size_t issues_before = c->is->count;
    int rc = 0;

    *out = s;
    if (s == NULL) {
        rc = BDY_ENOMEM;
        goto out;
    }
    s->min_length = s->max_length = s->min_items = s->max_items = -1;
    s->min_props = s->max_props = -1;
    if (depth > BDY__SCHEMA_MAX_DEPTH) {
        bdy__issue(c->is, "FieldValueForbidden", c->path,
                   "Forbidden: must not be nested more than %d levels deep", BDY__SCHEMA_MAX_DEPTH);
        goto out;
    }
    if (!json_object_is_type(node, json_type_object)) {
        bdy__issue(c->is, "FieldValueTypeInvalid", c->path,
                   "Invalid value: \"%s\": must be of type object", type_name(node));
        goto out;
    }
    check_keywords(c, node);
    kw_bool(c, node, "nullable", &s->nullable);
    kw_bool(c, node, "x-kubernetes-int-or-string", &s->int_or_string);
    kw_bool(c, node, "x-kubernetes-preserve-unknown-fields", &s->preserve_unknown);
    kw_bool(c, node, "x-kubernetes-embedded-resource", &s->embedded);
    kw_bool(c, node, "exclusiveMinimum", &s->min_exclusive);
    kw_bool(c, node, "exclusiveMaximum", &s->max_exclusive);
    kw_count(c, node, "minLength", &s->min_length);
    kw_count(c, node, "maxLength", &s->max_length);
    kw_count(c, node, "minItems", &s->min_items);
    kw_count(c, node, "maxItems", &s->max_items);
    kw_count(c, node, "minProperties", &s->min_props);
    kw_count(c, node, "maxProperties", &s->max_props);
    compile_type(c, node, s);
    if ((rc = kw_number(c, node, "minimum", &s->has_min, &s->min, &s->min_text)) != 0 ||
        (rc = kw_number(c, node, "maximum", &s->has_max, &s->max, &s->max_text)) != 0 ||
        (rc = compile_pattern(c, node, s)) != 0 || (rc = compile_enum(c, node, s)) != 0 ||
        (rc = compile_properties(c, node, depth, s)) != 0 ||
        (rc = compile_required(c, node, s)) != 0 || (rc = compile_children(c, node, depth, s)) != 0)
        goto out;
    check_structural(c, node, s);
    /* A default can only be checked against a node that compiled cleanly. */
    if (c->is->count == issues_before)
        rc = compile_default(c, node, s);
out:
    return rc;
}

int bdy__schema_compile(json_object *node, const char *path, const char *resource, bdy__issues *is,
                        bdy_schema **out)
{
    /* Defaults are checked in strict mode: a default must not carry fields
     * that pruning would drop. */
    ctx c = {.is = is, .mode = BDY_UNKNOWN_REJECT};
    size_t issues_before = is->count;
    int rc;

    path_push(&c, "%s", path);
    rc = compile_node(&c, node, 0, out);
    if (rc != 0)
        goto out;
    if ((*out)->type != ST_OBJECT && is->count == issues_before)
        kw_issue(&c, "type", "FieldValueNotSupported",
                 "Unsupported value: \"%s\": supported values: \"object\"",
                 (*out)->type == ST_NONE ? "" : stype_names[(*out)->type]);
    (*out)->resource = strdup(resource);
    if ((*out)->resource == NULL)
        rc = BDY_ENOMEM;
out:
    return rc;
}

void bdy__schema_free(bdy_schema *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nprops; i++) {
        free(s->props[i].name);
        bdy__schema_free(s->props[i].schema);
    }
    free(s->props);
    for (size_t i = 0; i < s->nrequired; i++)
        free(s->required[i]);
    free(s->required);
    bdy__schema_free(s->items);
    bdy__schema_free(s->additional);
    json_object_put(s->enum_values);
    free(s->enum_text);
    json_object_put(s->default_value);
    free(s->min_text);
    free(s->max_text);
    pcre2_code_free(s->pattern);
    free(s->pattern_text);
    free(s->resource);
    free(s);
}

const char *bdy__schema_field_type(const bdy_schema *root, const char *dotted)
{
    const bdy_schema *s = root;
    const char *p = dotted;
    char seg[SCHEMA_PATH_MAX];

    while (s != NULL) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n == 0 || n >= sizeof(seg))
            return NULL;
        memcpy(seg, p, n);
        seg[n] = '\0';
        s = find_prop(s, seg);
        if (dot == NULL)
            break;
        p = dot + 1;
    }
    if (s == NULL)
        return NULL;
    return s->int_or_string ? "int-or-string" : stype_names[s->type];
}
