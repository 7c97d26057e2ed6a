#include "objmeta.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

json_object *bdy__metadata(json_object *obj)
{
    json_object *m = NULL;
    if (json_object_object_get_ex(obj, "metadata", &m) && json_object_is_type(m, json_type_object))
        return m;
    m = json_object_new_object();
    json_object_object_add(obj, "metadata", m);
    return m;
}

const char *bdy__meta_str(json_object *obj, const char *key)
{
    json_object *m = NULL;
    if (obj == NULL || !json_object_object_get_ex(obj, "metadata", &m))
        return NULL;
    return bdy_jstr(m, key);
}

void bdy__meta_set_label(json_object *obj, const char *key, const char *value)
{
    json_object *m = bdy__metadata(obj);
    json_object *labels = NULL;
    if (!json_object_object_get_ex(m, "labels", &labels) ||
        !json_object_is_type(labels, json_type_object)) {
        labels = json_object_new_object();
        json_object_object_add(m, "labels", labels);
    }
    json_object_object_add(labels, key, json_object_new_string(value));
}

void bdy__meta_set_str(json_object *obj, const char *key, const char *value)
{
    json_object *m = bdy__metadata(obj);
    if (value == NULL)
        json_object_object_del(m, key);
    else
        json_object_object_add(m, key, json_object_new_string(value));
}

static bool alnum_lower(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool bdy__valid_dns_label(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 63 || !alnum_lower(s[0]) || !alnum_lower(s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!alnum_lower(s[i]) && s[i] != '-')
            return false;
    }
    return true;
}

bool bdy__valid_dns_subdomain(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > BDY__MAX_NAME_LEN)
        return false;
    /* As Kubernetes checks it: dot-separated parts that start and end with
     * an alphanumeric, 253 characters in all, and no cap on a part (a name
     * of 64 characters without a dot is a valid object name). */
    for (size_t start = 0; start < n;) {
        size_t end = start;
        while (end < n && s[end] != '.')
            end++;
        if (end == start || !alnum_lower(s[start]) || !alnum_lower(s[end - 1]))
            return false;
        for (size_t i = start; i < end; i++) {
            if (!alnum_lower(s[i]) && s[i] != '-')
                return false;
        }
        if (end < n && end + 1 == n)
            return false; /* a trailing dot */
        start = end + 1;
    }
    return true;
}

static bool name_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.';
}

/* [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, at most 63 characters. */
static bool valid_name_part(const char *s, size_t n)
{
    if (n == 0 || n > 63 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!name_char(s[i]))
            return false;
    }
    return true;
}

bool bdy__valid_qualified_name(const char *s)
{
    if (s == NULL)
        return false;
    const char *slash = strchr(s, '/');
    if (slash == NULL)
        return valid_name_part(s, strlen(s));
    size_t plen = (size_t)(slash - s);
    char prefix[BDY__MAX_NAME_LEN + 1];
    if (plen == 0 || plen > BDY__MAX_NAME_LEN)
        return false;
    memcpy(prefix, s, plen);
    prefix[plen] = '\0';
    return bdy__valid_dns_subdomain(prefix) && valid_name_part(slash + 1, strlen(slash + 1));
}

bool bdy__valid_label_value(const char *s)
{
    return s != NULL && (s[0] == '\0' || valid_name_part(s, strlen(s)));
}

static void check_string_map(json_object *meta, const char *key, bool labels, bdy_errbuf *eb,
                             int *rc)
{
    json_object *map = NULL;
    if (!json_object_object_get_ex(meta, key, &map) || json_object_is_type(map, json_type_null))
        return;
    char field[256];
    if (!json_object_is_type(map, json_type_object)) {
        snprintf(field, sizeof(field), "metadata.%s", key);
        bdy_errbuf_add_cause(eb, "FieldValueTypeInvalid", field, "must be an object of strings");
        *rc = BDY_EINVALID_OBJECT;
        return;
    }
    size_t total = 0;
    json_object_object_foreach(map, k, v)
    {
        snprintf(field, sizeof(field), "metadata.%s", key);
        if (!json_object_is_type(v, json_type_string)) {
            bdy_errbuf_add_cause(eb, "FieldValueTypeInvalid", field, "%s: value must be a string",
                                 k);
            *rc = BDY_EINVALID_OBJECT;
            continue;
        }
        const char *val = json_object_get_string(v);
        total += strlen(k) + strlen(val);
        if (!bdy__valid_qualified_name(k)) {
            bdy_errbuf_add_cause(eb, "FieldValueInvalid", field,
                                 "Invalid value: \"%s\": name part must consist of alphanumeric "
                                 "characters, '-', '_' or '.', and must start and end with an "
                                 "alphanumeric character",
                                 k);
            *rc = BDY_EINVALID_OBJECT;
        } else if (labels && !bdy__valid_label_value(val)) {
            bdy_errbuf_add_cause(eb, "FieldValueInvalid", field,
                                 "Invalid value: \"%s\": a valid label must be an empty string "
                                 "or consist of alphanumeric characters, '-', '_' or '.', at most "
                                 "63 characters",
                                 val);
            *rc = BDY_EINVALID_OBJECT;
        }
    }
    if (!labels && total > (size_t)BDY__MAX_ANNOTATIONS_BYTES) {
        bdy_errbuf_add_cause(eb, "FieldValueTooLong", "metadata.annotations",
                             "Too long: must have at most %zu bytes",
                             (size_t)BDY__MAX_ANNOTATIONS_BYTES);
        *rc = BDY_EINVALID_OBJECT;
    }
}

/* ObjectMeta's fields. Anything else under metadata is dropped, or under
 * fieldValidation=Strict refused, as the API server's decoder does: a
 * misspelt "lables" was stored as given and the labels never set. */
static const char *const object_meta_fields[] = {"name",
                                                 "generateName",
                                                 "namespace",
                                                 "selfLink",
                                                 "uid",
                                                 "resourceVersion",
                                                 "generation",
                                                 "creationTimestamp",
                                                 "deletionTimestamp",
                                                 "deletionGracePeriodSeconds",
                                                 "labels",
                                                 "annotations",
                                                 "ownerReferences",
                                                 "finalizers",
                                                 "managedFields",
                                                 NULL};

static void unknown_meta_fields(json_object *meta, bdy_unknown_fields mode, bdy_errbuf *eb, int *rc)
{
    /* Deleting the current key inside json_object_object_foreach is safe:
     * the macro reads the next entry before the body runs. */
    json_object_object_foreach(meta, key, val)
    {
        (void)val;
        bool known = false;
        for (size_t i = 0; object_meta_fields[i] != NULL && !known; i++)
            known = strcmp(object_meta_fields[i], key) == 0;
        if (known)
            continue;
        if (mode == BDY_UNKNOWN_PRUNE) {
            json_object_object_del(meta, key);
            continue;
        }
        char field[256];
        snprintf(field, sizeof(field), "metadata.%.200s", key);
        bdy_errbuf_add_cause(eb, "FieldValueForbidden", field, "unknown field \"%s\"", field);
        *rc = BDY_EINVALID_OBJECT;
    }
}

int bdy__meta_validate(json_object *obj, bool namespace_kind, bdy_unknown_fields mode,
                       bdy_errbuf *eb)
{
    int rc = 0;
    json_object *meta = bdy__metadata(obj);
    unknown_meta_fields(meta, mode, eb, &rc);
    const char *name = bdy_jstr(meta, "name");
    if (name == NULL || name[0] == '\0') {
        bdy_errbuf_add_cause(eb, "FieldValueRequired", "metadata.name",
                             "Required value: name or generateName is required");
        rc = BDY_EINVALID_OBJECT;
    } else if (strlen(name) > (namespace_kind ? 63u : (size_t)BDY__MAX_NAME_LEN)) {
        bdy_errbuf_add_cause(eb, "FieldValueInvalid", "metadata.name",
                             "Invalid value: \"%.100s\": must be no more than %d characters", name,
                             namespace_kind ? 63 : BDY__MAX_NAME_LEN);
        rc = BDY_EINVALID_OBJECT;
    } else if (namespace_kind ? !bdy__valid_dns_label(name) : !bdy__valid_dns_subdomain(name)) {
        bdy_errbuf_add_cause(eb, "FieldValueInvalid", "metadata.name",
                             "Invalid value: \"%.100s\": a lowercase RFC 1123 %s must consist of "
                             "lower case alphanumeric characters, '-'%s, and must start and end "
                             "with an alphanumeric character",
                             name, namespace_kind ? "label" : "subdomain",
                             namespace_kind ? "" : " or '.'");
        rc = BDY_EINVALID_OBJECT;
    }
    check_string_map(meta, "labels", true, eb, &rc);
    check_string_map(meta, "annotations", false, eb, &rc);
    json_object *fin = NULL;
    if (json_object_object_get_ex(meta, "finalizers", &fin) &&
        !json_object_is_type(fin, json_type_null)) {
        if (!json_object_is_type(fin, json_type_array) ||
            json_object_array_length(fin) > BDY__MAX_FINALIZERS) {
            bdy_errbuf_add_cause(eb, "FieldValueInvalid", "metadata.finalizers",
                                 "must be a list of at most %d names", BDY__MAX_FINALIZERS);
            rc = BDY_EINVALID_OBJECT;
        } else {
            for (size_t i = 0; i < json_object_array_length(fin); i++) {
                json_object *f = json_object_array_get_idx(fin, i);
                if (!json_object_is_type(f, json_type_string) ||
                    !bdy__valid_qualified_name(json_object_get_string(f))) {
                    char field[64];
                    snprintf(field, sizeof(field), "metadata.finalizers[%zu]", i);
                    bdy_errbuf_add_cause(eb, "FieldValueInvalid", field,
                                         "Invalid value: must be a qualified name");
                    rc = BDY_EINVALID_OBJECT;
                }
            }
        }
    }
    return rc;
}

bool bdy__has_finalizers(json_object *obj)
{
    json_object *fin = NULL;
    return json_object_object_get_ex(bdy__metadata(obj), "finalizers", &fin) &&
           json_object_is_type(fin, json_type_array) && json_object_array_length(fin) > 0;
}

static bool array_has_string(json_object *arr, const char *s)
{
    if (!json_object_is_type(arr, json_type_array))
        return false;
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        const char *v = json_object_get_string(json_object_array_get_idx(arr, i));
        if (v != NULL && strcmp(v, s) == 0)
            return true;
    }
    return false;
}

bool bdy__finalizers_subset(json_object *after, json_object *before)
{
    json_object *fa = NULL;
    json_object *fb = NULL;
    if (!json_object_object_get_ex(bdy__metadata(after), "finalizers", &fa) ||
        !json_object_is_type(fa, json_type_array))
        return true;
    json_object_object_get_ex(bdy__metadata(before), "finalizers", &fb);
    for (size_t i = 0; i < json_object_array_length(fa); i++) {
        const char *v = json_object_get_string(json_object_array_get_idx(fa, i));
        if (v == NULL || !array_has_string(fb, v))
            return false;
    }
    return true;
}

bool bdy__content_changed(json_object *a, json_object *b, bool ignore_status)
{
    /* Compare member by member so no copies are needed. */
    json_object_object_foreach(a, ka, va)
    {
        if (strcmp(ka, "metadata") == 0 || (ignore_status && strcmp(ka, "status") == 0))
            continue;
        json_object *vb = NULL;
        if (!json_object_object_get_ex(b, ka, &vb) || !json_object_equal(va, vb))
            return true;
    }
    json_object_object_foreach(b, kb, vb2)
    {
        (void)vb2;
        if (strcmp(kb, "metadata") == 0 || (ignore_status && strcmp(kb, "status") == 0))
            continue;
        if (!json_object_object_get_ex(a, kb, NULL))
            return true;
    }
    return false;
}

void bdy__invalid_summary(bdy_errbuf *eb, const bdy_resource_info *info, const char *name)
{
    if (eb == NULL)
        return;
    size_t cap = sizeof(eb->message);
    int n = snprintf(eb->message, cap, "%s%s%s \"%s\" is invalid: ", info->kind,
                     info->group[0] ? "." : "", info->group, name ? name : "");
    size_t pos = n > 0 && (size_t)n < cap ? (size_t)n : cap - 1;
    for (size_t i = 0; i < eb->ncauses && pos < cap - 1; i++) {
        const bdy_cause *c = &eb->causes[i];
        n = snprintf(eb->message + pos, cap - pos, "%s%s: %s", i ? ", " : "", c->field, c->message);
        pos = n > 0 && pos + (size_t)n < cap ? pos + (size_t)n : cap - 1;
    }
}
