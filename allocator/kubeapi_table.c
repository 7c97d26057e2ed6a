/* Table output (meta.k8s.io/v1 Table), what `kubectl get` asks for: the
 * resource's printer columns rendered by the server, dates as ages the way
 * kubectl's duration.HumanDuration writes them, and rows[].object holding
 * the object's metadata (kubectl reads namespace and labels from it). */
#include "kubeapi_internal.h"

#include "bindery/jsonutil.h"
#include "bindery/util.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct builtin_columns {
    const char *group;
    const char *resource;
    bdy__kube_column cols[8];
} builtin_columns;

#define AGE_COLUMN                                                                                 \
    {                                                                                              \
        "Age", "date", "", "CreationTimestamp is a timestamp of when this object was created.",    \
            ".metadata.creationTimestamp", 0, BDY__CELL_VALUE                                      \
    }
#define NAME_COLUMN                                                                                \
    {                                                                                              \
        "Name", "string", "name", "Name must be unique within a namespace.", NULL, 0,              \
            BDY__CELL_VALUE                                                                        \
    }

static const builtin_columns builtin[] = {
    {"",
     "namespaces",
     {NAME_COLUMN, {"Status", "string", "", "", ".status.phase", 0, BDY__CELL_VALUE}, AGE_COLUMN}},
    {"",
     "pods",
     {NAME_COLUMN,
      {"Status", "string", "", "", ".status.phase", 0, BDY__CELL_VALUE},
      {"Node", "string", "", "", ".spec.nodeName", 1, BDY__CELL_VALUE},
      AGE_COLUMN}},
    /* As the API server prints them: DATA is the number of keys. */
    {"",
     "secrets",
     {NAME_COLUMN,
      {"Type", "string", "", "Used to facilitate programmatic handling of secret data.", ".type", 0,
       BDY__CELL_VALUE},
      {"Data", "integer", "", "The number of keys in data.", ".data", 0, BDY__CELL_COUNT},
      AGE_COLUMN}},
    {"",
     "configmaps",
     {NAME_COLUMN,
      {"Data", "integer", "", "The number of keys in data and binaryData.", ".data,.binaryData", 0,
       BDY__CELL_COUNT},
      AGE_COLUMN}},
    {"",
     "events",
     {{"Last Seen", "date", "", "", ".lastTimestamp", 0, BDY__CELL_VALUE},
      {"Type", "string", "", "", ".type", 0, BDY__CELL_VALUE},
      {"Reason", "string", "", "", ".reason", 0, BDY__CELL_VALUE},
      {"Object", "string", "", "", ".involvedObject", 0, BDY__CELL_REFERENCE},
      {"Message", "string", "", "", ".message", 0, BDY__CELL_VALUE}}},
    {"coordination.k8s.io",
     "leases",
     {NAME_COLUMN,
      {"Holder", "string", "", "", ".spec.holderIdentity", 0, BDY__CELL_VALUE},
      AGE_COLUMN}},
    {"apiextensions.k8s.io",
     "customresourcedefinitions",
     {NAME_COLUMN,
      {"Created At", "string", "date-time", "", ".metadata.creationTimestamp", 0,
       BDY__CELL_VALUE}}},
};

void bdy__kube_columns_free(bdy__kube_columns *c)
{
    if (c == NULL)
        return;
    bdy_crd_free(c->crd);
    c->crd = NULL;
    c->count = 0;
}

static void add_column(bdy__kube_columns *out, bdy__kube_column col)
{
    if (out->count < sizeof(out->items) / sizeof(out->items[0]))
        out->items[out->count++] = col;
}

/* Columns from the CRD serving info's resource, as the API server's CRD
 * table converter builds them. */
static int crd_columns(bdy_store *store, const bdy_resource_info *info, bdy__kube_columns *out)
{
    json_object *obj = NULL;
    char name[300];
    snprintf(name, sizeof(name), "%s.%s", info->resource, info->group);
    int rc = bdy_store_get(store, &BDY_GVR_CRDS, NULL, name, &obj, NULL);
    if (rc == 0)
        rc = bdy_crd_compile(obj, &out->crd, NULL);
    json_object_put(obj);
    bdy__kube_column name_col = NAME_COLUMN;
    add_column(out, name_col);
    const bdy_crd_version *v = rc == 0 ? bdy_crd_find_version(out->crd, info->version) : NULL;
    if (v == NULL || v->ncolumns == 0) {
        bdy__kube_column age = AGE_COLUMN;
        add_column(out, age);
        return rc;
    }
    for (size_t i = 0; i < v->ncolumns; i++) {
        const bdy_printer_column *p = &v->columns[i];
        bdy__kube_column c = {p->name,
                              p->type,
                              p->format ? p->format : "",
                              p->description ? p->description : "",
                              p->json_path,
                              p->priority,
                              BDY__CELL_VALUE};
        add_column(out, c);
    }
    return 0;
}

int bdy__kube_columns_load(bdy_store *store, const bdy_resource_info *info, bdy__kube_columns *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++) {
        if (strcmp(builtin[i].group, info->group) != 0 ||
            strcmp(builtin[i].resource, info->resource) != 0)
            continue;
        for (size_t c = 0; c < 8 && builtin[i].cols[c].name != NULL; c++)
            add_column(out, builtin[i].cols[c]);
        return 0;
    }
    /* A CRD that cannot be read any more (deleted meanwhile) still gets a
     * Name/Age table rather than an error. */
    crd_columns(store, info, out);
    return 0;
}

void bdy__kube_human_duration(double seconds, char *out, size_t cap)
{
    /* Whole seconds toward zero first, as kubectl's HumanDuration does: a
     * clock a second and a half ahead shows 0s, not <invalid>. */
    long long s = isfinite(seconds) && fabs(seconds) < 1e15 ? (long long)seconds : -2;
    if (s < -1) {
        snprintf(out, cap, "<invalid>");
        return;
    }
    if (s < 0)
        s = 0;
    long long minutes = s / 60;
    long long hours = s / 3600;
    long long days = hours / 24;
    if (s < 120)
        snprintf(out, cap, "%llds", s);
    else if (minutes < 10)
        snprintf(out, cap, s % 60 ? "%lldm%llds" : "%lldm", minutes, s % 60);
    else if (minutes < 180)
        snprintf(out, cap, "%lldm", minutes);
    else if (hours < 8)
        snprintf(out, cap, minutes % 60 ? "%lldh%lldm" : "%lldh", hours, minutes % 60);
    else if (hours < 48)
        snprintf(out, cap, "%lldh", hours);
    else if (hours < 24LL * 8)
        snprintf(out, cap, hours % 24 ? "%lldd%lldh" : "%lldd", days, hours % 24);
    else if (hours < 24LL * 365 * 2)
        snprintf(out, cap, "%lldd", days);
    else if (hours < 24LL * 365 * 8)
        snprintf(out, cap, days % 365 ? "%lldy%lldd" : "%lldy", days / 365, days % 365);
    else
        snprintf(out, cap, "%lldy", days / 365);
}

static json_object *eval_from(json_object *cur, const char *p);

/* A filter's test, "@.type==\"Ready\"" (len bytes at f): == or != between
 * the member an @-path names in item and a literal, quoted ('' or "") for
 * a string, bare for a number or boolean. False for anything else. */
static bool filter_holds(json_object *item, const char *f, size_t len)
{
    char text[256];
    if (len >= sizeof(text) || f[0] != '@')
        return false;
    memcpy(text, f + 1, len - 1);
    text[len - 1] = '\0';
    char *op = strstr(text, "==");
    char *ne = strstr(text, "!=");
    bool negate = ne != NULL && (op == NULL || ne < op);
    if (negate)
        op = ne;
    if (op == NULL)
        return false;
    /* Blanks around the operator are allowed, as in Kubernetes' JSONPath. */
    for (char *e = op; e > text && e[-1] == ' '; e--)
        e[-1] = '\0';
    *op = '\0';
    const char *lit = op + 2;
    while (*lit == ' ')
        lit++;
    size_t n = strlen(lit);
    while (n > 0 && lit[n - 1] == ' ')
        n--;
    json_object *v = text[0] == '\0' ? item : eval_from(item, text);
    bool equal = false;
    if (n >= 2 && (lit[0] == '"' || lit[0] == '\'') && lit[n - 1] == lit[0])
        equal = json_object_is_type(v, json_type_string) &&
                (size_t)json_object_get_string_len(v) == n - 2 &&
                memcmp(json_object_get_string(v), lit + 1, n - 2) == 0;
    else if (n > 0 && v != NULL && !json_object_is_type(v, json_type_string) &&
             !json_object_is_type(v, json_type_object) &&
             !json_object_is_type(v, json_type_array)) {
        const char *j = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
        equal = strlen(j) == n && memcmp(j, lit, n) == 0;
    }
    return negate ? v != NULL && !equal : equal;
}

/* Evaluates the simple JSONPath of printer columns from p on: ".a.b",
 * ".a[0].b", ".metadata.labels.app", ".spec.ports[*].name",
 * ".status.conditions[?(@.type==\"Ready\")].status". A wildcard or filter
 * yields the first element for which the rest of the path resolves, as the
 * Kubernetes API server's column printer shows only a path's first result.
 * Returns the borrowed value or NULL. Depth is bounded by the path. */
static json_object *eval_from(json_object *cur, const char *p)
{
    char key[256];
    while (cur != NULL && *p != '\0' && *p != '}') {
        if (*p == '.') {
            p++;
            size_t n = strcspn(p, ".[}");
            if (n == 0 || n >= sizeof(key))
                return NULL;
            memcpy(key, p, n);
            key[n] = '\0';
            cur = bdy_jget(cur, key);
            p += n;
        } else if (strncmp(p, "[*]", 3) == 0) {
            if (!json_object_is_type(cur, json_type_array))
                return NULL;
            for (size_t i = 0; i < json_object_array_length(cur); i++) {
                json_object *v = eval_from(json_object_array_get_idx(cur, i), p + 3);
                if (v != NULL && !json_object_is_type(v, json_type_null))
                    return v;
            }
            return NULL;
        } else if (strncmp(p, "[?(", 3) == 0) {
            const char *close = strstr(p + 3, ")]");
            if (close == NULL || !json_object_is_type(cur, json_type_array))
                return NULL;
            for (size_t i = 0; i < json_object_array_length(cur); i++) {
                json_object *item = json_object_array_get_idx(cur, i);
                if (!filter_holds(item, p + 3, (size_t)(close - (p + 3))))
                    continue;
                json_object *v = eval_from(item, close + 2);
                if (v != NULL && !json_object_is_type(v, json_type_null))
                    return v;
            }
            return NULL;
        } else if (*p == '[') {
            char *end = NULL;
            long idx = strtol(p + 1, &end, 10);
            if (end == NULL || *end != ']' || !json_object_is_type(cur, json_type_array) ||
                idx < 0 || (size_t)idx >= json_object_array_length(cur))
                return NULL;
            cur = json_object_array_get_idx(cur, (size_t)idx);
            p = end + 1;
        } else {
            return NULL;
        }
    }
    return cur;
}

static json_object *eval_path(json_object *obj, const char *path)
{
    if (path == NULL)
        return NULL;
    return eval_from(obj, path[0] == '{' ? path + 1 : path); /* "{.spec.x}" */
}

/* A count column's cell: the members of what its paths name, added up. */
static json_object *count_cell(const bdy__kube_column *c, json_object *obj)
{
    char path[256];
    int64_t n = 0;
    for (const char *p = c->json_path; p != NULL && *p != '\0';) {
        size_t len = strcspn(p, ",");
        if (len < sizeof(path)) {
            memcpy(path, p, len);
            path[len] = '\0';
            json_object *v = eval_path(obj, path);
            if (json_object_is_type(v, json_type_object))
                n += json_object_object_length(v);
            else if (json_object_is_type(v, json_type_array))
                n += (int64_t)json_object_array_length(v);
        }
        p += len;
        if (*p == ',')
            p++;
    }
    return json_object_new_int64(n);
}

/* An object reference's cell: "kind/name", the kind in lower case. */
static json_object *reference_cell(const bdy__kube_column *c, json_object *obj)
{
    json_object *ref = eval_path(obj, c->json_path);
    const char *kind = bdy_jstr(ref, "kind");
    const char *name = bdy_jstr(ref, "name");
    if (name == NULL)
        return NULL;
    char text[512];
    size_t n = 0;
    for (; kind != NULL && kind[n] != '\0' && n < sizeof(text) - 2; n++)
        text[n] = (char)tolower((unsigned char)kind[n]);
    snprintf(text + n, sizeof(text) - n, "%s%s", n > 0 ? "/" : "", name);
    return json_object_new_string(text);
}

static json_object *cell(const bdy__kube_column *c, json_object *obj)
{
    if (c->cell == BDY__CELL_COUNT)
        return count_cell(c, obj);
    if (c->cell == BDY__CELL_REFERENCE)
        return reference_cell(c, obj);
    if (c->json_path == NULL)
        return json_object_new_string(bdy_jstr(bdy_jget(obj, "metadata"), "name")
                                          ? bdy_jstr(bdy_jget(obj, "metadata"), "name")
                                          : "");
    json_object *v = eval_path(obj, c->json_path);
    if (v == NULL || json_object_is_type(v, json_type_null))
        return NULL;
    if (strcmp(c->type, "date") == 0) {
        double t = 0;
        if (!json_object_is_type(v, json_type_string) ||
            bdy_timestamp_parse(json_object_get_string(v), &t) != 0)
            return json_object_new_string("<unknown>");
        char age[32];
        bdy__kube_human_duration(bdy_wall_seconds() - t, age, sizeof(age));
        return json_object_new_string(age);
    }
    if (strcmp(c->type, "integer") == 0 && json_object_is_type(v, json_type_int))
        return json_object_new_int64(json_object_get_int64(v));
    if (strcmp(c->type, "number") == 0 &&
        (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
        return json_object_new_double(json_object_get_double(v));
    if (strcmp(c->type, "boolean") == 0 && json_object_is_type(v, json_type_boolean))
        return json_object_new_boolean(json_object_get_boolean(v));
    if (json_object_is_type(v, json_type_string))
        return json_object_new_string(json_object_get_string(v));
    return json_object_new_string(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
}

static json_object *row_object(json_object *obj, bdy_kube_include include)
{
    if (include == BDY_INCLUDE_OBJECT)
        return json_object_get(obj);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "kind", json_object_new_string("PartialObjectMetadata"));
    json_object_object_add(o, "apiVersion", json_object_new_string("meta.k8s.io/v1"));
    json_object *meta = bdy_jget(obj, "metadata");
    json_object_object_add(o, "metadata", meta ? json_object_get(meta) : json_object_new_object());
    return o;
}

json_object *bdy__kube_table(const bdy__kube_columns *cols, json_object *items,
                             const char *resource_version, const char *continue_token,
                             bdy_kube_include include, bool with_columns)
{
    json_object *t = json_object_new_object();
    json_object *defs = json_object_new_array();
    json_object *rows = json_object_new_array();
    json_object *meta = json_object_new_object();
    if (t == NULL || defs == NULL || rows == NULL || meta == NULL) {
        json_object_put(t);
        json_object_put(defs);
        json_object_put(rows);
        json_object_put(meta);
        return NULL;
    }
    json_object_object_add(t, "kind", json_object_new_string("Table"));
    json_object_object_add(t, "apiVersion", json_object_new_string("meta.k8s.io/v1"));
    if (resource_version != NULL)
        json_object_object_add(meta, "resourceVersion", json_object_new_string(resource_version));
    if (continue_token != NULL)
        json_object_object_add(meta, "continue", json_object_new_string(continue_token));
    json_object_object_add(t, "metadata", meta);
    for (size_t i = 0; with_columns && i < cols->count; i++) {
        const bdy__kube_column *c = &cols->items[i];
        json_object *d = json_object_new_object();
        json_object_object_add(d, "name", json_object_new_string(c->name));
        json_object_object_add(d, "type", json_object_new_string(c->type));
        json_object_object_add(d, "format", json_object_new_string(c->format ? c->format : ""));
        json_object_object_add(d, "description",
                               json_object_new_string(c->description ? c->description : ""));
        json_object_object_add(d, "priority", json_object_new_int(c->priority));
        json_object_array_add(defs, d);
    }
    json_object_object_add(t, "columnDefinitions", defs);
    for (size_t i = 0; items != NULL && i < json_object_array_length(items); i++) {
        json_object *obj = json_object_array_get_idx(items, i);
        json_object *row = json_object_new_object();
        json_object *cells = json_object_new_array();
        for (size_t c = 0; c < cols->count; c++)
            json_object_array_add(cells, cell(&cols->items[c], obj));
        json_object_object_add(row, "cells", cells);
        if (include != BDY_INCLUDE_NONE)
            json_object_object_add(row, "object", row_object(obj, include));
        json_object_array_add(rows, row);
    }
    json_object_object_add(t, "rows", rows);
    return t;
}
