/* Secret and ConfigMap: what the Kubernetes API server does to them on
 * every write (defaulting, stringData, validation, immutability), for the
 * embedded store. See corekinds.h for the rules; the messages are the API
 * server's, so that kubectl users read what they know. */
#include "corekinds.h"

#include "bindery/jsonutil.h"
#include "bindery/util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A value whose text alone is longer than this cannot fit the data cap
 * (base64 is 4/3 of the bytes it encodes, and line breaks add a little):
 * refused as too long without being decoded. */
#define VALUE_MAX_TEXT (2 * BDY__CORE_DATA_MAX_BYTES)

#define IMMUTABLE_MSG "Forbidden: field is immutable when `immutable` is set"

typedef enum core_kind {
    KIND_OTHER,
    KIND_SECRET,
    KIND_CONFIGMAP,
} core_kind;

static core_kind kind_of(const bdy_resource_info *info)
{
    if (info->group[0] != '\0')
        return KIND_OTHER;
    if (strcmp(info->resource, "secrets") == 0)
        return KIND_SECRET;
    if (strcmp(info->resource, "configmaps") == 0)
        return KIND_CONFIGMAP;
    return KIND_OTHER;
}

/* The top-level fields of each kind; any other is unknown. */
static const char *const secret_fields[] = {"apiVersion", "kind", "metadata",  "data",
                                            "stringData", "type", "immutable", NULL};
static const char *const configmap_fields[] = {"apiVersion", "kind",      "metadata", "data",
                                               "binaryData", "immutable", NULL};

/* The check of one object: where its causes go, and BDY_EINVALID_OBJECT
 * once one was added. */
typedef struct check {
    bdy_errbuf *eb;
    int rc;
} check;

static void invalid(check *c, const char *reason, const char *field, const char *message)
{
    bdy_errbuf_add_cause(c->eb, reason, field, "%s", message);
    if (c->rc == 0)
        c->rc = BDY_EINVALID_OBJECT;
}

static bool listed(const char *const *list, const char *s)
{
    for (size_t i = 0; list[i] != NULL; i++) {
        if (strcmp(list[i], s) == 0)
            return true;
    }
    return false;
}

/* Prunes or reports the top-level fields the kind does not have, as the
 * API server's decoder does under fieldValidation Ignore or Strict. */
static void unknown_fields(check *c, json_object *obj, const char *const *known,
                           bdy_unknown_fields mode)
{
    /* Deleting the current key inside json_object_object_foreach is safe:
     * the macro reads the next entry before the body runs. */
    json_object_object_foreach(obj, key, val)
    {
        (void)val;
        if (listed(known, key))
            continue;
        if (mode == BDY_UNKNOWN_PRUNE) {
            json_object_object_del(obj, key);
            continue;
        }
        bdy_errbuf_add_cause(c->eb, "FieldValueForbidden", key, "unknown field \"%.200s\"", key);
        if (c->rc == 0)
            c->rc = BDY_EINVALID_OBJECT;
    }
}

static bool key_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '_' || ch == '.';
}

/* The rules of a key of data, stringData or binaryData (Kubernetes'
 * IsConfigMapKey): the keys become file names when mounted, so "." and
 * ".." and names starting with ".." are refused too. */
static void check_key(check *c, const char *map, const char *key)
{
    char field[BDY__CORE_KEY_MAX_LEN + 32];
    char msg[320];
    size_t n = strlen(key);
    bool chars_ok = n > 0;
    for (size_t i = 0; i < n && chars_ok; i++)
        chars_ok = key_char(key[i]);
    snprintf(field, sizeof(field), "%s[%s]", map, key);
    if (n > BDY__CORE_KEY_MAX_LEN) {
        snprintf(msg, sizeof(msg),
                 "Invalid value: \"%.64s...\": must be no more than %d characters", key,
                 BDY__CORE_KEY_MAX_LEN);
        invalid(c, "FieldValueInvalid", field, msg);
    }
    if (!chars_ok) {
        snprintf(msg, sizeof(msg),
                 "Invalid value: \"%.64s\": a valid config key must consist of alphanumeric "
                 "characters, '-', '_' or '.' (regex used for validation is '[-._a-zA-Z0-9]+')",
                 key);
        invalid(c, "FieldValueInvalid", field, msg);
    }
    const char *dots = strcmp(key, ".") == 0        ? "must not be '.'"
                       : strcmp(key, "..") == 0     ? "must not be '..'"
                       : strncmp(key, "..", 2) == 0 ? "must not start with '..'"
                                                    : NULL;
    if (dots != NULL) {
        snprintf(msg, sizeof(msg), "Invalid value: \"%.64s\": %s", key, dots);
        invalid(c, "FieldValueInvalid", field, msg);
    }
}

/* Checks that text (len bytes) is what Go's encoding/json accepts for a
 * []byte, which is what the API server decodes data and binaryData with:
 * the standard alphabet, padded with '=' to a multiple of four characters,
 * line breaks (\r, \n) ignored. Returns in *out (malloc'd) the canonical
 * text the API server would send back: the bytes re-encoded, without line
 * breaks. BDY_EINVAL when not valid, BDY_ENOMEM. */
static int canonical_base64(const char *text, size_t len, char **out)
{
    size_t significant = 0;
    size_t pad = 0;
    char *raw = NULL;
    size_t n = 0;
    *out = NULL;
    for (size_t i = 0; i < len; i++) {
        char ch = text[i];
        if (ch == '\r' || ch == '\n')
            continue;
        /* bdy_base64_decode skips every space; Go skips only line breaks. */
        if (ch == ' ' || ch == '\t' || ch == '\v' || ch == '\f')
            return BDY_EINVAL;
        if (ch == '=')
            pad++;
        else if (pad > 0)
            return BDY_EINVAL;
        significant++;
    }
    if (significant % 4 != 0 || pad > 2)
        return BDY_EINVAL;
    int rc = bdy_base64_decode(text, len, &raw, &n);
    if (rc != 0)
        return rc;
    rc = bdy_base64_encode(raw, n, out);
    free(raw);
    return rc;
}

/* The number of bytes canonical base64 text (as encode_base64 writes it)
 * decodes to. */
static size_t decoded_len(const char *b64)
{
    size_t len = strlen(b64);
    size_t pad = 0;
    while (pad < 2 && pad < len && b64[len - 1 - pad] == '=')
        pad++;
    return len / 4 * 3 - pad;
}

/* The map at obj[name], or NULL when absent or null; a cause when it is
 * there but not an object (*bad set). */
static json_object *get_map(check *c, json_object *obj, const char *name, const char *what,
                            bool *bad)
{
    json_object *m = bdy_jget(obj, name);
    *bad = false;
    if (m == NULL) /* absent, or null (json-c holds a JSON null as NULL) */
        return NULL;
    if (!json_object_is_type(m, json_type_object)) {
        char msg[128];
        snprintf(msg, sizeof(msg), "Invalid value: must be a map of %s", what);
        invalid(c, "FieldValueTypeInvalid", name, msg);
        *bad = true;
        return NULL;
    }
    return m;
}

/* Copies the base64 values of map (named name) into out, each checked and
 * made canonical. Returns 0 or BDY_ENOMEM; invalid values are causes. */
static int copy_base64_map(check *c, json_object *map, const char *name, json_object *out,
                           bool *too_long)
{
    char field[BDY__CORE_KEY_MAX_LEN + 32];
    json_object_object_foreach(map, key, val)
    {
        check_key(c, name, key);
        snprintf(field, sizeof(field), "%s[%s]", name, key);
        if (!json_object_is_type(val, json_type_string)) {
            invalid(c, "FieldValueTypeInvalid", field,
                    "Invalid value: must be a base64-encoded string");
            continue;
        }
        size_t len = (size_t)json_object_get_string_len(val);
        if (len > VALUE_MAX_TEXT) {
            *too_long = true;
            continue;
        }
        char *canon = NULL;
        int rc = canonical_base64(json_object_get_string(val), len, &canon);
        if (rc == BDY_ENOMEM)
            return rc;
        if (rc != 0) {
            invalid(c, "FieldValueInvalid", field,
                    "Invalid value: must be standard base64 (A-Z, a-z, 0-9, '+', '/', padded "
                    "with '=' to a multiple of 4 characters)");
            continue;
        }
        json_object *s = json_object_new_string_len(canon, (int)strlen(canon));
        free(canon);
        if (s == NULL || json_object_object_add(out, key, s) != 0) {
            json_object_put(s);
            return BDY_ENOMEM;
        }
    }
    return 0;
}

/* Puts map at obj[name], or drops the member when the map is empty (the
 * API server omits empty maps). Takes map. */
static int put_map(json_object *obj, const char *name, json_object *map)
{
    if (json_object_object_length(map) == 0) {
        json_object_put(map);
        json_object_object_del(obj, name);
        return 0;
    }
    if (json_object_object_add(obj, name, map) != 0) {
        json_object_put(map);
        return BDY_ENOMEM;
    }
    return 0;
}

/* immutable: absent, null (dropped) or a boolean. */
static void check_immutable_flag(check *c, json_object *obj)
{
    json_object *im = NULL;
    if (!json_object_object_get_ex(obj, "immutable", &im))
        return;
    if (im == NULL) /* json-c holds a JSON null as NULL */
        json_object_object_del(obj, "immutable");
    else if (!json_object_is_type(im, json_type_boolean))
        invalid(c, "FieldValueTypeInvalid", "immutable", "Invalid value: must be a boolean");
}

/* Once old is immutable, it stays so and fields may not change. */
static void check_immutable(check *c, json_object *obj, json_object *old, const char *const *fields)
{
    json_object *was = bdy_jget(old, "immutable");
    if (!json_object_is_type(was, json_type_boolean) || !json_object_get_boolean(was))
        return;
    json_object *now = bdy_jget(obj, "immutable");
    if (!json_object_is_type(now, json_type_boolean) || !json_object_get_boolean(now))
        invalid(c, "FieldValueForbidden", "immutable", IMMUTABLE_MSG);
    for (size_t i = 0; fields[i] != NULL; i++) {
        if (!json_object_equal(bdy_jget(obj, fields[i]), bdy_jget(old, fields[i])))
            invalid(c, "FieldValueForbidden", fields[i], IMMUTABLE_MSG);
    }
}

static void too_long(check *c, const char *field, const char *what)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "Too long: %s must have at most %zu bytes", what,
             BDY__CORE_DATA_MAX_BYTES);
    invalid(c, "FieldValueTooLong", field, msg);
}

/* Encodes the values of stringData (sd) into data over what it holds:
 * stringData wins where both hold a key. Returns 0 or BDY_ENOMEM. */
static int merge_string_data(check *c, json_object *sd, json_object *data, bool *too_long)
{
    char field[BDY__CORE_KEY_MAX_LEN + 32];
    json_object_object_foreach(sd, key, val)
    {
        check_key(c, "stringData", key);
        snprintf(field, sizeof(field), "stringData[%s]", key);
        if (!json_object_is_type(val, json_type_string)) {
            invalid(c, "FieldValueTypeInvalid", field, "Invalid value: must be a string");
            continue;
        }
        size_t len = (size_t)json_object_get_string_len(val);
        if (len > BDY__CORE_DATA_MAX_BYTES) {
            *too_long = true;
            continue;
        }
        char *b64 = NULL;
        if (bdy_base64_encode(json_object_get_string(val), len, &b64) != 0)
            return BDY_ENOMEM;
        json_object *s = json_object_new_string(b64);
        free(b64);
        if (s == NULL || json_object_object_add(data, key, s) != 0) {
            json_object_put(s);
            return BDY_ENOMEM;
        }
    }
    return 0;
}

/* The bytes the base64 values of map decode to, together. */
static size_t decoded_total(json_object *map)
{
    size_t total = 0;
    json_object_object_foreach(map, key, val)
    {
        (void)key;
        total += decoded_len(json_object_get_string(val));
    }
    return total;
}

static int prepare_secret(check *c, json_object *obj, json_object *old)
{
    static const char *const locked[] = {"data", NULL};
    bool bad_data = false;
    bool bad_string_data = false;
    bool over = false;
    json_object *data = json_object_new_object();
    if (data == NULL)
        return BDY_ENOMEM;
    json_object *in = get_map(c, obj, "data", "base64-encoded strings", &bad_data);
    json_object *sd = get_map(c, obj, "stringData", "strings", &bad_string_data);
    int rc = in != NULL ? copy_base64_map(c, in, "data", data, &over) : 0;
    if (rc == 0 && sd != NULL)
        rc = merge_string_data(c, sd, data, &over);
    if (rc != 0) {
        json_object_put(data);
        return rc;
    }
    if (over || decoded_total(data) > BDY__CORE_DATA_MAX_BYTES)
        too_long(c, "data", "the decoded values of data and stringData together");
    /* Only a well-formed data replaces what was sent (the object is not
     * stored when anything is wrong, but the summary names what was). */
    if (!bad_data && !bad_string_data) {
        json_object_object_del(obj, "stringData");
        if ((rc = put_map(obj, "data", data)) != 0)
            return rc;
    } else {
        json_object_put(data);
    }

    json_object *type = bdy_jget(obj, "type");
    if (type == NULL ||
        (json_object_is_type(type, json_type_string) && json_object_get_string_len(type) == 0))
        json_object_object_add(obj, "type", json_object_new_string("Opaque"));
    else if (!json_object_is_type(type, json_type_string))
        invalid(c, "FieldValueTypeInvalid", "type", "Invalid value: must be a string");
    check_immutable_flag(c, obj);
    if (old == NULL || c->rc != 0)
        return 0;
    const char *was = bdy_jstr(old, "type");
    const char *now = bdy_jstr(obj, "type");
    if (strcmp(was != NULL && was[0] ? was : "Opaque", now) != 0) {
        char msg[300];
        snprintf(msg, sizeof(msg), "Invalid value: \"%.200s\": field is immutable", now);
        invalid(c, "FieldValueInvalid", "type", msg);
    }
    check_immutable(c, obj, old, locked);
    return 0;
}

/* The string values of a ConfigMap's data, none of whose keys binary (may
 * be NULL) may hold too. Returns their length together. */
static size_t check_configmap_data(check *c, json_object *data, json_object *binary)
{
    char field[BDY__CORE_KEY_MAX_LEN + 32];
    size_t total = 0;
    json_object_object_foreach(data, key, val)
    {
        check_key(c, "data", key);
        snprintf(field, sizeof(field), "data[%s]", key);
        if (!json_object_is_type(val, json_type_string)) {
            invalid(c, "FieldValueTypeInvalid", field, "Invalid value: must be a string");
            continue;
        }
        if (bdy_jget(binary, key) != NULL) {
            char msg[200];
            snprintf(msg, sizeof(msg),
                     "Invalid value: \"%.64s\": duplicate of key present in binaryData", key);
            invalid(c, "FieldValueInvalid", field, msg);
        }
        total += (size_t)json_object_get_string_len(val);
    }
    return total;
}

static int prepare_configmap(check *c, json_object *obj, json_object *old)
{
    static const char *const locked[] = {"data", "binaryData", NULL};
    bool bad_data = false;
    bool bad_binary = false;
    bool over = false;
    json_object *data = get_map(c, obj, "data", "strings", &bad_data);
    json_object *in = get_map(c, obj, "binaryData", "base64-encoded strings", &bad_binary);
    size_t total = data != NULL ? check_configmap_data(c, data, in) : 0;
    json_object *binary = json_object_new_object();
    if (binary == NULL)
        return BDY_ENOMEM;
    int rc = in != NULL ? copy_base64_map(c, in, "binaryData", binary, &over) : 0;
    if (rc != 0) {
        json_object_put(binary);
        return rc;
    }
    total += decoded_total(binary);
    if (over || total > BDY__CORE_DATA_MAX_BYTES)
        too_long(c, "data", "the values of data and the decoded values of binaryData together");
    if (!bad_binary) {
        if ((rc = put_map(obj, "binaryData", binary)) != 0)
            return rc;
    } else {
        json_object_put(binary);
    }
    json_object *d = NULL;
    if (!bad_data && json_object_object_get_ex(obj, "data", &d) &&
        (d == NULL || json_object_object_length(d) == 0))
        json_object_object_del(obj, "data"); /* null or {} */
    check_immutable_flag(c, obj);
    if (old != NULL && c->rc == 0)
        check_immutable(c, obj, old, locked);
    return 0;
}

int bdy__corekind_prepare(const bdy_resource_info *info, json_object *obj, json_object *old,
                          bdy_unknown_fields mode, bdy_errbuf *eb)
{
    check c = {.eb = eb, .rc = 0};
    int rc = 0;
    switch (kind_of(info)) {
    case KIND_SECRET:
        unknown_fields(&c, obj, secret_fields, mode);
        rc = prepare_secret(&c, obj, old);
        break;
    case KIND_CONFIGMAP:
        unknown_fields(&c, obj, configmap_fields, mode);
        rc = prepare_configmap(&c, obj, old);
        break;
    case KIND_OTHER:
        return 0;
    }
    return rc != 0 ? rc : c.rc;
}
