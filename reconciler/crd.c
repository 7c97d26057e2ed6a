/* CustomResourceDefinition (apiextensions.k8s.io/v1) → bdy_crd.
 *
 * Checks what the API server checks before it serves a CRD: names, group,
 * scope, versions (exactly one storage version), structural schemas, printer
 * columns and selectable fields. Every problem becomes a field cause worded
 * like the API server's, and all of them are collected before giving up.
 */
#include "bindery/crd.h"

#include "schema_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest field path built for a cause (bdy_cause.field holds 256). */
#define CRD_PATH_MAX 256
#define DNS1035_LABEL_MAX 63
#define DNS1123_SUBDOMAIN_MAX 253
/* The API server allows at most 8 selectable fields per version. */
#define CRD_MAX_SELECTABLE_FIELDS 8

static const char crd_resource[] = "CustomResourceDefinition.apiextensions.k8s.io";

static const char dns1035_message[] =
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character";

static void type_issue(bdy__issues *is, const char *path, json_object *v, json_type want)
{
    bdy__issue(is, "FieldValueTypeInvalid", path, "Invalid value: \"%s\": must be of type %s",
               bdy__json_type_word(json_object_get_type(v)), bdy__json_type_word(want));
}

/* parent[key] if it has type want. Absent or null → NULL and, when
 * required, a Required cause; another type → NULL and a type cause. A NULL
 * parent (already reported by its own lookup) yields NULL quietly. */
static json_object *member(bdy__issues *is, json_object *parent, const char *key, const char *path,
                           json_type want, bool required)
{
    json_object *v = NULL;

    if (parent == NULL)
        return NULL;
    if (!json_object_object_get_ex(parent, key, &v) || v == NULL) {
        if (required)
            bdy__issue(is, "FieldValueRequired", path, "Required value");
        return NULL;
    }
    if (!json_object_is_type(v, want)) {
        type_issue(is, path, v, want);
        return NULL;
    }
    return v;
}

/* A string member; an empty required string counts as missing. */
static const char *str_member(bdy__issues *is, json_object *parent, const char *key,
                              const char *path, bool required)
{
    json_object *v = member(is, parent, key, path, json_type_string, required);

    if (v == NULL)
        return NULL;
    if (required && json_object_get_string_len(v) == 0) {
        bdy__issue(is, "FieldValueRequired", path, "Required value");
        return NULL;
    }
    return json_object_get_string(v);
}

static bool is_lower_alnum(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

/* ASCII only: names must not depend on the process locale. */
static char fold_ascii(char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/* A DNS-1035 label; fold compares case-insensitively (kinds are CamelCase
 * but must be a label once lower-cased). */
static bool is_dns1035_label(const char *s, bool fold)
{
    size_t n = strlen(s);

    if (n == 0 || n > DNS1035_LABEL_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = fold ? fold_ascii(s[i]) : s[i];
        bool first = i == 0;
        bool last = i + 1 == n;
        if (first ? !(ch >= 'a' && ch <= 'z') : !(is_lower_alnum(ch) || (ch == '-' && !last)))
            return false;
    }
    return true;
}

static bool is_dns1123_subdomain(const char *s)
{
    size_t n = strlen(s);
    size_t label = 0;

    if (n == 0 || n > DNS1123_SUBDOMAIN_MAX)
        return false;
    for (size_t i = 0; i <= n; i++) {
        char ch = s[i];
        if (ch == '.' || ch == '\0') {
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
        } else if (is_lower_alnum(ch) || (ch == '-' && label > 0)) {
            label++;
        } else {
            return false;
        }
    }
    return true;
}

static int dup_str(const char *s, char **out)
{
    if (s == NULL)
        return 0;
    *out = strdup(s);
    return *out ? 0 : BDY_ENOMEM;
}

/* Checks that s is a DNS-1035 label (after lower-casing when fold).
 * Returns s, or NULL after a cause. */
static const char *check_label(bdy__issues *is, const char *s, const char *path, bool fold)
{
    if (s != NULL && !is_dns1035_label(s, fold)) {
        bdy__issue(is, "FieldValueInvalid", path, "Invalid value: \"%.80s\": %s", s,
                   dns1035_message);
        return NULL;
    }
    return s;
}

static const char *label_member(bdy__issues *is, json_object *parent, const char *key,
                                const char *path, bool required, bool fold)
{
    return check_label(is, str_member(is, parent, key, path, required), path, fold);
}

/* shortNames and categories: arrays of DNS-1035 labels. */
static int label_array(bdy__issues *is, json_object *parent, const char *key, const char *path,
                       char ***out, size_t *count)
{
    json_object *arr = member(is, parent, key, path, json_type_array, false);
    char ipath[CRD_PATH_MAX];
    size_t n;

    if (arr == NULL || (n = json_object_array_length(arr)) == 0)
        return 0;
    *out = calloc(n, sizeof(char *));
    if (*out == NULL)
        return BDY_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_object *item = json_object_array_get_idx(arr, i);
        const char *s = NULL;

        snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
        if (!json_object_is_type(item, json_type_string))
            type_issue(is, ipath, item, json_type_string);
        else
            s = check_label(is, json_object_get_string(item), ipath, false);
        if (s == NULL)
            continue;
        if (dup_str(s, &(*out)[*count]) != 0)
            return BDY_ENOMEM;
        (*count)++;
    }
    return 0;
}

static int compile_names(bdy__issues *is, json_object *spec, bdy_crd *crd)
{
    json_object *names = member(is, spec, "names", "spec.names", json_type_object, true);
    const char *plural = label_member(is, names, "plural", "spec.names.plural", true, false);
    const char *singular = label_member(is, names, "singular", "spec.names.singular", false, false);
    const char *kind = label_member(is, names, "kind", "spec.names.kind", true, true);
    const char *list_kind = label_member(is, names, "listKind", "spec.names.listKind", false, true);
    int rc;

    if (kind != NULL && list_kind != NULL && strcmp(kind, list_kind) == 0)
        bdy__issue(is, "FieldValueInvalid", "spec.names.listKind",
                   "Invalid value: \"%s\": kind and listKind may not be the same", list_kind);
    if ((rc = dup_str(plural, &crd->plural)) != 0 || (rc = dup_str(kind, &crd->kind)) != 0)
        return rc;
    if (singular != NULL) {
        rc = dup_str(singular, &crd->singular);
    } else if (kind != NULL) {
        rc = dup_str(kind, &crd->singular);
        for (char *p = crd->singular; rc == 0 && *p; p++)
            *p = fold_ascii(*p);
    }
    if (rc != 0)
        return rc;
    if (list_kind != NULL) {
        rc = dup_str(list_kind, &crd->list_kind);
    } else if (kind != NULL) {
        crd->list_kind = malloc(strlen(kind) + sizeof("List"));
        if (crd->list_kind == NULL)
            return BDY_ENOMEM;
        sprintf(crd->list_kind, "%sList", kind);
    }
    if (rc != 0)
        return rc;
    rc = label_array(is, names, "shortNames", "spec.names.shortNames", &crd->short_names,
                     &crd->nshort_names);
    if (rc == 0)
        rc = label_array(is, names, "categories", "spec.names.categories", &crd->categories,
                         &crd->ncategories);
    return rc;
}

static int compile_column(bdy__issues *is, json_object *col, const char *path,
                          bdy_printer_column *out)
{
    static const char *const types[] = {"boolean", "date", "integer", "number", "string"};
    static const char *const formats[] = {"byte",  "date",  "date-time", "double",
                                          "float", "int32", "int64",     "password"};
    char p[CRD_PATH_MAX];
    const char *name, *type, *format, *description, *json_path;
    json_object *priority;
    bool known = false;
    int rc;

#define COL_PATH(field) (snprintf(p, sizeof(p), "%s." field, path), p)
    name = str_member(is, col, "name", COL_PATH("name"), true);
    type = str_member(is, col, "type", COL_PATH("type"), true);
    for (size_t i = 0; type != NULL && i < sizeof(types) / sizeof(types[0]); i++)
        known |= strcmp(type, types[i]) == 0;
    if (type != NULL && !known)
        bdy__issue(is, "FieldValueNotSupported", p,
                   "Unsupported value: \"%.80s\": supported values: \"boolean\", \"date\", "
                   "\"integer\", \"number\", \"string\"",
                   type);
    format = str_member(is, col, "format", COL_PATH("format"), false);
    known = false;
    for (size_t i = 0; format != NULL && i < sizeof(formats) / sizeof(formats[0]); i++)
        known |= strcmp(format, formats[i]) == 0;
    if (format != NULL && !known)
        bdy__issue(is, "FieldValueNotSupported", p,
                   "Unsupported value: \"%.80s\": supported values: \"byte\", \"date\", "
                   "\"date-time\", \"double\", \"float\", \"int32\", \"int64\", \"password\"",
                   format);
    description = str_member(is, col, "description", COL_PATH("description"), false);
    json_path = str_member(is, col, "jsonPath", COL_PATH("jsonPath"), true);
    if (json_path != NULL && json_path[0] != '.')
        bdy__issue(is, "FieldValueInvalid", p,
                   "Invalid value: \"%.80s\": must be a simple JSON path starting with '.'",
                   json_path);
    priority = member(is, col, "priority", COL_PATH("priority"), json_type_int, false);
    if (priority != NULL &&
        (json_object_get_int64(priority) < 0 || json_object_get_int64(priority) > INT32_MAX))
        bdy__issue(is, "FieldValueInvalid", p, "Invalid value: %lld: must be a non-negative int32",
                   (long long)json_object_get_int64(priority));
    else if (priority != NULL)
        out->priority = (int)json_object_get_int64(priority);
#undef COL_PATH
    if ((rc = dup_str(name, &out->name)) != 0 || (rc = dup_str(type, &out->type)) != 0 ||
        (rc = dup_str(format, &out->format)) != 0 ||
        (rc = dup_str(description, &out->description)) != 0)
        return rc;
    return dup_str(json_path, &out->json_path);
}

static int compile_columns(bdy__issues *is, json_object *ver, const char *vpath, bdy_crd_version *v)
{
    char path[CRD_PATH_MAX];
    json_object *arr;
    size_t n;

    snprintf(path, sizeof(path), "%s.additionalPrinterColumns", vpath);
    arr = member(is, ver, "additionalPrinterColumns", path, json_type_array, false);
    if (arr == NULL || (n = json_object_array_length(arr)) == 0)
        return 0;
    v->columns = calloc(n, sizeof(*v->columns));
    if (v->columns == NULL)
        return BDY_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_object *col = json_object_array_get_idx(arr, i);
        int rc;

        snprintf(path, sizeof(path), "%s.additionalPrinterColumns[%zu]", vpath, i);
        if (!json_object_is_type(col, json_type_object)) {
            type_issue(is, path, col, json_type_object);
            continue;
        }
        v->ncolumns++;
        rc = compile_column(is, col, path, &v->columns[v->ncolumns - 1]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* selectableFields must name a string, integer or boolean field of the
 * schema, each once. Stored without the leading dot. */
static int compile_selectable(bdy__issues *is, json_object *ver, const char *vpath,
                              bdy_crd_version *v)
{
    char path[CRD_PATH_MAX];
    json_object *arr;
    char **fields;
    size_t n, kept = 0;

    snprintf(path, sizeof(path), "%s.selectableFields", vpath);
    arr = member(is, ver, "selectableFields", path, json_type_array, false);
    if (arr == NULL || (n = json_object_array_length(arr)) == 0)
        return 0;
    if (n > CRD_MAX_SELECTABLE_FIELDS) {
        bdy__issue(is, "FieldValueTooMany", path, "Too many: %zu: must have at most %d items", n,
                   CRD_MAX_SELECTABLE_FIELDS);
        return 0;
    }
    fields = calloc(n, sizeof(char *));
    if (fields == NULL)
        return BDY_ENOMEM;
    v->selectable_fields = fields;
    for (size_t i = 0; i < n; i++) {
        json_object *item = json_object_array_get_idx(arr, i);
        const char *jp;
        const char *type;
        bool dup = false;

        snprintf(path, sizeof(path), "%s.selectableFields[%zu].jsonPath", vpath, i);
        if (!json_object_is_type(item, json_type_object)) {
            path[strlen(path) - strlen(".jsonPath")] = '\0';
            type_issue(is, path, item, json_type_object);
            continue;
        }
        jp = str_member(is, item, "jsonPath", path, true);
        if (jp == NULL)
            continue;
        type = jp[0] == '.' ? bdy__schema_field_type(v->schema, jp + 1) : NULL;
        if (type == NULL || (strcmp(type, "string") != 0 && strcmp(type, "integer") != 0 &&
                             strcmp(type, "boolean") != 0)) {
            bdy__issue(is, "FieldValueInvalid", path,
                       "Invalid value: \"%.80s\": must point to a field of type string, boolean "
                       "or integer declared in the schema",
                       jp);
            continue;
        }
        for (size_t j = 0; j < kept; j++)
            dup |= strcmp(fields[j], jp + 1) == 0;
        if (dup) {
            bdy__issue(is, "FieldValueDuplicate", path, "Duplicate value: \"%.80s\"", jp);
            continue;
        }
        if (dup_str(jp + 1, &fields[kept]) != 0)
            return BDY_ENOMEM;
        v->nselectable_fields = ++kept;
    }
    return 0;
}

static int compile_version(bdy__issues *is, json_object *ver, const char *vpath,
                           const char *resource, bdy_crd_version *v)
{
    char path[CRD_PATH_MAX];
    const char *name;
    json_object *b, *schema, *sub;
    bool schema_ok = false;
    int rc;

#define VER_PATH(field) (snprintf(path, sizeof(path), "%s." field, vpath), path)
    name = label_member(is, ver, "name", VER_PATH("name"), true, false);
    if ((rc = dup_str(name, &v->name)) != 0)
        return rc;
    if ((b = member(is, ver, "served", VER_PATH("served"), json_type_boolean, true)) != NULL)
        v->served = json_object_get_boolean(b);
    if ((b = member(is, ver, "storage", VER_PATH("storage"), json_type_boolean, true)) != NULL)
        v->storage = json_object_get_boolean(b);
    sub = member(is, ver, "subresources", VER_PATH("subresources"), json_type_object, false);
    v->status_subresource =
        member(is, sub, "status", VER_PATH("subresources.status"), json_type_object, false) != NULL;
    schema = member(is, ver, "schema", VER_PATH("schema"), json_type_object, true);
    schema = member(is, schema, "openAPIV3Schema", VER_PATH("schema.openAPIV3Schema"),
                    json_type_object, true);
    if (schema != NULL) {
        size_t issues_before = is->count;
        rc = bdy__schema_compile(schema, VER_PATH("schema.openAPIV3Schema"), resource, is,
                                 &v->schema);
        if (rc != 0)
            return rc;
        schema_ok = is->count == issues_before;
    }
#undef VER_PATH
    if ((rc = compile_columns(is, ver, vpath, v)) != 0)
        return rc;
    /* Field lookups need a schema that compiled cleanly. */
    if (schema_ok)
        rc = compile_selectable(is, ver, vpath, v);
    return rc;
}

static int compile_versions(bdy__issues *is, json_object *spec, const char *resource, bdy_crd *crd)
{
    json_object *arr = member(is, spec, "versions", "spec.versions", json_type_array, true);
    char vpath[CRD_PATH_MAX];
    size_t n, storage = 0;

    if (arr == NULL)
        return 0;
    n = json_object_array_length(arr);
    if (n == 0) {
        bdy__issue(is, "FieldValueRequired", "spec.versions",
                   "Required value: must have at least one version");
        return 0;
    }
    crd->versions = calloc(n, sizeof(*crd->versions));
    if (crd->versions == NULL)
        return BDY_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_object *ver = json_object_array_get_idx(arr, i);
        bdy_crd_version *v = &crd->versions[crd->nversions];
        int rc;

        snprintf(vpath, sizeof(vpath), "spec.versions[%zu]", i);
        if (!json_object_is_type(ver, json_type_object)) {
            type_issue(is, vpath, ver, json_type_object);
            continue;
        }
        crd->nversions++;
        if ((rc = compile_version(is, ver, vpath, resource, v)) != 0)
            return rc;
        storage += v->storage;
        if (v->name != NULL && v != bdy_crd_find_version(crd, v->name)) {
            snprintf(vpath, sizeof(vpath), "spec.versions[%zu].name", i);
            bdy__issue(is, "FieldValueDuplicate", vpath, "Duplicate value: \"%s\"", v->name);
        }
    }
    if (storage != 1)
        bdy__issue(is, "FieldValueInvalid", "spec.versions",
                   "Invalid value: %zu: must have exactly one version marked as storage version",
                   storage);
    return 0;
}

int bdy_crd_compile(json_object *obj, bdy_crd **out, bdy_errbuf *eb)
{
    bdy__issues is = {eb, 0};
    bdy_crd *crd = NULL;
    json_object *meta, *spec;
    const char *s, *name, *group, *scope;
    char resource[DNS1035_LABEL_MAX + DNS1123_SUBDOMAIN_MAX + 2];
    int rc = 0;

    *out = NULL;
    bdy_errbuf_clear(eb);
    if (!json_object_is_type(obj, json_type_object)) {
        rc = bdy_fail(eb, BDY_EINVAL, "a CustomResourceDefinition must be a JSON object");
        goto out;
    }
    crd = calloc(1, sizeof(*crd));
    if (crd == NULL) {
        rc = BDY_ENOMEM;
        goto out;
    }
    s = str_member(&is, obj, "apiVersion", "apiVersion", true);
    if (s != NULL && strcmp(s, "apiextensions.k8s.io/v1") != 0)
        bdy__issue(&is, "FieldValueNotSupported", "apiVersion",
                   "Unsupported value: \"%.80s\": supported values: \"apiextensions.k8s.io/v1\"",
                   s);
    s = str_member(&is, obj, "kind", "kind", true);
    if (s != NULL && strcmp(s, "CustomResourceDefinition") != 0)
        bdy__issue(&is, "FieldValueNotSupported", "kind",
                   "Unsupported value: \"%.80s\": supported values: \"CustomResourceDefinition\"",
                   s);
    meta = member(&is, obj, "metadata", "metadata", json_type_object, true);
    name = str_member(&is, meta, "name", "metadata.name", true);
    spec = member(&is, obj, "spec", "spec", json_type_object, true);

    group = str_member(&is, spec, "group", "spec.group", true);
    if (group != NULL && !is_dns1123_subdomain(group)) {
        bdy__issue(&is, "FieldValueInvalid", "spec.group",
                   "Invalid value: \"%.80s\": a lowercase RFC 1123 subdomain must consist of lower "
                   "case alphanumeric characters, '-' or '.'",
                   group);
        group = NULL;
    } else if (group != NULL && strchr(group, '.') == NULL) {
        bdy__issue(&is, "FieldValueInvalid", "spec.group",
                   "Invalid value: \"%.80s\": should be a domain with at least one dot", group);
        group = NULL;
    }
    if ((rc = dup_str(group, &crd->group)) != 0 || (rc = compile_names(&is, spec, crd)) != 0)
        goto out;

    scope = str_member(&is, spec, "scope", "spec.scope", true);
    if (scope != NULL && strcmp(scope, "Namespaced") != 0 && strcmp(scope, "Cluster") != 0)
        bdy__issue(&is, "FieldValueNotSupported", "spec.scope",
                   "Unsupported value: \"%.80s\": supported values: \"Cluster\", \"Namespaced\"",
                   scope);
    crd->namespaced = scope != NULL && strcmp(scope, "Namespaced") == 0;

    snprintf(resource, sizeof(resource), "%s.%s", crd->kind ? crd->kind : "",
             crd->group ? crd->group : "");
    if ((rc = compile_versions(&is, spec, resource, crd)) != 0)
        goto out;

    if (name != NULL && crd->plural != NULL && crd->group != NULL &&
        (strncmp(name, crd->plural, strlen(crd->plural)) != 0 || name[strlen(crd->plural)] != '.' ||
         strcmp(name + strlen(crd->plural) + 1, crd->group) != 0))
        bdy__issue(&is, "FieldValueInvalid", "metadata.name",
                   "Invalid value: \"%.80s\": must be spec.names.plural+\".\"+spec.group", name);
    if (is.count > 0) {
        bdy__errbuf_summarize(eb, crd_resource, name);
        rc = BDY_EINVALID_OBJECT;
        goto out;
    }
    if ((rc = dup_str(name, &crd->name)) != 0)
        goto out;
    *out = crd;
    crd = NULL;
out:
    bdy_crd_free(crd);
    return rc;
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void bdy_crd_free(bdy_crd *crd)
{
    if (crd == NULL)
        return;
    for (size_t i = 0; i < crd->nversions; i++) {
        bdy_crd_version *v = &crd->versions[i];
        free(v->name);
        bdy__schema_free(v->schema);
        for (size_t j = 0; j < v->ncolumns; j++) {
            free(v->columns[j].name);
            free(v->columns[j].type);
            free(v->columns[j].format);
            free(v->columns[j].description);
            free(v->columns[j].json_path);
        }
        free(v->columns);
        free_strings(v->selectable_fields, v->nselectable_fields);
    }
    free(crd->versions);
    free(crd->name);
    free(crd->group);
    free(crd->plural);
    free(crd->singular);
    free(crd->kind);
    free(crd->list_kind);
    free_strings(crd->short_names, crd->nshort_names);
    free_strings(crd->categories, crd->ncategories);
    free(crd);
}

const bdy_crd_version *bdy_crd_find_version(const bdy_crd *crd, const char *name)
{
    for (size_t i = 0; crd != NULL && name != NULL && i < crd->nversions; i++) {
        if (crd->versions[i].name != NULL && strcmp(crd->versions[i].name, name) == 0)
            return &crd->versions[i];
    }
    return NULL;
}
