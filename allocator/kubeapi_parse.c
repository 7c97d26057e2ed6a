/* Parsers of what a Kubernetes client sends: resource paths, Accept
 * headers, query parameters and DeleteOptions. All of it is outside input,
 * so every parser is bounded, copies into fixed-size fields and refuses
 * what does not fit; tests/fuzz/fuzz_kubeapi.c drives them. */
#include "bindery/kubeapi.h"

#include "bindery/jsonutil.h"

#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_SEGMENTS 8
#define MAX_PATH_LEN 2048u
#define MAX_LIMIT_DIGITS 12

/* Copies one path segment [p, p+n) into dst; false when empty, too long,
 * "." / ".." or holding bytes no Kubernetes name or group has. */
static bool copy_segment(char *dst, size_t cap, const char *p, size_t n)
{
    if (n == 0 || n >= cap || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c <= 0x20 || c >= 0x7f || c == '%' || c == '?' || c == '#')
            return false;
    }
    memcpy(dst, p, n);
    dst[n] = '\0';
    return true;
}

int bdy_kube_parse_path(const char *path, bdy_kube_path *out)
{
    const char *segs[MAX_SEGMENTS];
    size_t lens[MAX_SEGMENTS];
    size_t n = 0;
    if (path == NULL || out == NULL || path[0] != '/' || strlen(path) > MAX_PATH_LEN)
        return BDY_ENOTFOUND;
    memset(out, 0, sizeof(*out));
    const char *p = path + 1;
    while (*p != '\0') {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (n >= MAX_SEGMENTS)
            return BDY_ENOTFOUND;
        segs[n] = p;
        lens[n] = len;
        n++;
        if (slash == NULL)
            break;
        p = slash + 1;
        if (*p == '\0')
            return BDY_ENOTFOUND; /* trailing slash */
    }
    size_t i = 0;
    if (n >= 2 && lens[0] == 3 && strncmp(segs[0], "api", 3) == 0) {
        if (!copy_segment(out->version, sizeof(out->version), segs[1], lens[1]))
            return BDY_ENOTFOUND;
        i = 2;
    } else if (n >= 3 && lens[0] == 4 && strncmp(segs[0], "apis", 4) == 0) {
        if (!copy_segment(out->group, sizeof(out->group), segs[1], lens[1]) ||
            !copy_segment(out->version, sizeof(out->version), segs[2], lens[2]))
            return BDY_ENOTFOUND;
        i = 3;
    } else {
        return BDY_ENOTFOUND;
    }
    size_t rest = n - i;
    /* namespaces/<ns>/<resource>...; but namespaces/<name> and
     * namespaces/<name>/status address the Namespace itself. */
    bool ns_prefix = rest >= 3 && lens[i] == 10 && strncmp(segs[i], "namespaces", 10) == 0;
    bool namespace_status = out->group[0] == '\0' && rest == 3 && lens[i + 2] == 6 &&
                            strncmp(segs[i + 2], "status", 6) == 0;
    if (ns_prefix && !namespace_status) {
        if (!copy_segment(out->ns, sizeof(out->ns), segs[i + 1], lens[i + 1]))
            return BDY_ENOTFOUND;
        i += 2;
    }
    rest = n - i;
    if (rest > 3)
        return BDY_ENOTFOUND;
    if (rest >= 1 && !copy_segment(out->resource, sizeof(out->resource), segs[i], lens[i]))
        return BDY_ENOTFOUND;
    if (rest >= 2 && !copy_segment(out->name, sizeof(out->name), segs[i + 1], lens[i + 1]))
        return BDY_ENOTFOUND;
    if (rest == 3 &&
        !copy_segment(out->subresource, sizeof(out->subresource), segs[i + 2], lens[i + 2]))
        return BDY_ENOTFOUND;
    return 0;
}

/* ---- Accept -------------------------------------------------------------- */

/* Does the parameter list [p, end) hold name=value (case-insensitive)? */
static bool has_param(const char *p, const char *end, const char *name, const char *value)
{
    size_t nlen = strlen(name);
    size_t vlen = strlen(value);
    while (p < end) {
        while (p < end && (*p == ';' || *p == ' ' || *p == '\t'))
            p++;
        const char *stop = p;
        while (stop < end && *stop != ';')
            stop++;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (eq != NULL && (size_t)(eq - p) == nlen && strncasecmp(p, name, nlen) == 0) {
            const char *v = eq + 1;
            size_t len = (size_t)(stop - v);
            while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
                len--;
            if (len == vlen && strncasecmp(v, value, vlen) == 0)
                return true;
        }
        p = stop;
    }
    return false;
}

void bdy_kube_parse_accept(const char *accept, bdy_kube_accept *out)
{
    memset(out, 0, sizeof(*out));
    if (accept == NULL || accept[0] == '\0') {
        out->json = true;
        return;
    }
    size_t total = strnlen(accept, BDY_KUBE_MAX_ACCEPT);
    const char *p = accept;
    const char *end = accept + total;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        while (p < stop && (*p == ' ' || *p == '\t'))
            p++;
        const char *semi = memchr(p, ';', (size_t)(stop - p));
        const char *type_end = semi ? semi : stop;
        size_t tlen = (size_t)(type_end - p);
        while (tlen > 0 && (p[tlen - 1] == ' ' || p[tlen - 1] == '\t'))
            tlen--;
        bool is_json = tlen == 16 && strncasecmp(p, "application/json", 16) == 0;
        bool any = (tlen == 3 && strncmp(p, "*/*", 3) == 0) ||
                   (tlen == 13 && strncasecmp(p, "application/*", 13) == 0);
        if (is_json && semi != NULL) {
            if (has_param(semi, stop, "as", "Table") && has_param(semi, stop, "g", "meta.k8s.io"))
                out->table = true;
            else if (has_param(semi, stop, "as", "APIGroupDiscoveryList") &&
                     has_param(semi, stop, "g", "apidiscovery.k8s.io") &&
                     has_param(semi, stop, "v", "v2"))
                out->discovery_v2 = true;
            else if (!has_param(semi, stop, "as", "Table") &&
                     !has_param(semi, stop, "as", "APIGroupDiscoveryList") &&
                     !has_param(semi, stop, "as", "PartialObjectMetadata") &&
                     !has_param(semi, stop, "as", "PartialObjectMetadataList"))
                out->json = true;
        } else if (is_json || any) {
            out->json = true;
        }
        p = comma ? comma + 1 : end;
    }
}

/* ---- query parameters ------------------------------------------------------ */

static const char *q(bdy_kube_query_cb query, void *data, const char *key)
{
    return query != NULL ? query(data, key) : NULL;
}

/* Go's strconv.ParseBool, which the API server uses for boolean params. */
static int parse_bool(const char *v, const char *key, bool *out, bdy_errbuf *eb)
{
    static const char *const yes[] = {"1", "t", "T", "true", "TRUE", "True"};
    static const char *const no[] = {"0", "f", "F", "false", "FALSE", "False", ""};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcmp(v, yes[i]) == 0) {
            *out = true;
            return 0;
        }
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        if (strcmp(v, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return bdy_fail(eb, BDY_EINVAL, "%s: invalid boolean value %.64s", key, v);
}

/* A non-negative decimal integer of at most MAX_LIMIT_DIGITS digits. */
static int parse_uint(const char *v, const char *key, unsigned long long max,
                      unsigned long long *out, bdy_errbuf *eb)
{
    size_t n = strlen(v);
    if (n == 0 || n > MAX_LIMIT_DIGITS || strspn(v, "0123456789") != n)
        return bdy_fail(eb, BDY_EINVAL, "%s: invalid value %.64s: must be a non-negative integer",
                        key, v);
    unsigned long long x = strtoull(v, NULL, 10);
    *out = x > max ? max : x;
    return 0;
}

static int parse_dry_run(const char *v, bool *out, bdy_errbuf *eb)
{
    if (v == NULL || v[0] == '\0') {
        *out = false;
        return 0;
    }
    if (strcmp(v, "All") == 0) {
        *out = true;
        return 0;
    }
    return bdy_fail(eb, BDY_EINVAL,
                    "dryRun: Unsupported value: \"%.64s\": supported values: \"All\"", v);
}

int bdy_kube_parse_query(bdy_kube_query_cb query, void *data, bdy_kube_query *out, bdy_errbuf *eb)
{
    int rc = 0;
    unsigned long long x = 0;
    memset(out, 0, sizeof(*out));
    out->label_selector = q(query, data, "labelSelector");
    out->field_selector = q(query, data, "fieldSelector");
    out->continue_token = q(query, data, "continue");
    out->resource_version = q(query, data, "resourceVersion");
    const char *v = q(query, data, "limit");
    if (v != NULL && (rc = parse_uint(v, "limit", BDY_STORE_MAX_LIST_LIMIT, &x, eb)) != 0)
        return rc;
    out->limit = (size_t)x;
    if ((v = q(query, data, "watch")) != NULL && (rc = parse_bool(v, "watch", &out->watch, eb)))
        return rc;
    if ((v = q(query, data, "allowWatchBookmarks")) != NULL &&
        (rc = parse_bool(v, "allowWatchBookmarks", &out->allow_bookmarks, eb)) != 0)
        return rc;
    if ((v = q(query, data, "sendInitialEvents")) != NULL &&
        (rc = parse_bool(v, "sendInitialEvents", &out->send_initial_events, eb)) != 0)
        return rc;
    if ((v = q(query, data, "timeoutSeconds")) != NULL) {
        if ((rc = parse_uint(v, "timeoutSeconds", BDY_KUBEAPI_MAX_WATCH_TIMEOUT_S, &x, eb)) != 0)
            return rc;
        out->has_timeout = true;
        out->timeout_s = (unsigned)x;
    }
    if ((rc = parse_dry_run(q(query, data, "dryRun"), &out->dry_run, eb)) != 0)
        return rc;
    v = q(query, data, "fieldValidation");
    if (v == NULL || v[0] == '\0')
        out->field_validation = BDY_FIELDS_DEFAULT;
    else if (strcmp(v, "Ignore") == 0)
        out->field_validation = BDY_FIELDS_IGNORE;
    else if (strcmp(v, "Warn") == 0)
        out->field_validation = BDY_FIELDS_WARN;
    else if (strcmp(v, "Strict") == 0)
        out->field_validation = BDY_FIELDS_STRICT;
    else
        return bdy_fail(eb, BDY_EINVAL,
                        "fieldValidation: Unsupported value: \"%.64s\": supported values: "
                        "\"Ignore\", \"Strict\", \"Warn\"",
                        v);
    v = q(query, data, "includeObject");
    if (v == NULL || v[0] == '\0' || strcmp(v, "Metadata") == 0)
        out->include = BDY_INCLUDE_METADATA;
    else if (strcmp(v, "Object") == 0)
        out->include = BDY_INCLUDE_OBJECT;
    else if (strcmp(v, "None") == 0)
        out->include = BDY_INCLUDE_NONE;
    else
        return bdy_fail(eb, BDY_EINVAL, "includeObject: Unsupported value: \"%.64s\"", v);
    return 0;
}

/* ---- DeleteOptions ----------------------------------------------------------- */

static int parse_propagation(const char *v, bdy_kube_propagation *out, bdy_errbuf *eb)
{
    if (strcmp(v, "Orphan") == 0)
        *out = BDY_PROPAGATE_ORPHAN;
    else if (strcmp(v, "Background") == 0)
        *out = BDY_PROPAGATE_BACKGROUND;
    else if (strcmp(v, "Foreground") == 0)
        *out = BDY_PROPAGATE_FOREGROUND;
    else
        return bdy_fail(eb, BDY_EINVAL,
                        "propagationPolicy: Unsupported value: \"%.64s\": supported values: "
                        "\"Foreground\", \"Background\", \"Orphan\"",
                        v);
    return 0;
}

static int copy_precondition(json_object *pre, const char *key, char *dst, size_t cap,
                             bdy_errbuf *eb)
{
    json_object *v = bdy_jget(pre, key);
    if (v == NULL || json_object_is_type(v, json_type_null))
        return 0;
    const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
    if (s == NULL || strlen(s) >= cap)
        return bdy_fail(eb, BDY_EINVAL, "preconditions.%s: must be a string of at most %zu bytes",
                        key, cap - 1);
    snprintf(dst, cap, "%s", s);
    return 0;
}

static int parse_delete_body(json_object *o, bdy_kube_delete *out, bdy_errbuf *eb)
{
    int rc = 0;
    if (!json_object_is_type(o, json_type_object))
        return bdy_fail(eb, BDY_EINVAL, "the DeleteOptions body must be a JSON object");
    json_object *v = bdy_jget(o, "propagationPolicy");
    if (v != NULL && !json_object_is_type(v, json_type_null)) {
        if (!json_object_is_type(v, json_type_string))
            return bdy_fail(eb, BDY_EINVAL, "propagationPolicy: must be a string");
        if ((rc = parse_propagation(json_object_get_string(v), &out->propagation, eb)) != 0)
            return rc;
    }
    v = bdy_jget(o, "orphanDependents");
    if (json_object_is_type(v, json_type_boolean) && out->propagation == BDY_PROPAGATE_DEFAULT)
        out->propagation =
            json_object_get_boolean(v) ? BDY_PROPAGATE_ORPHAN : BDY_PROPAGATE_BACKGROUND;
    v = bdy_jget(o, "gracePeriodSeconds");
    if (v != NULL && !json_object_is_type(v, json_type_null)) {
        if (!json_object_is_type(v, json_type_int))
            return bdy_fail(eb, BDY_EINVAL, "gracePeriodSeconds: must be an integer");
        out->has_grace = true;
        out->grace_seconds = json_object_get_int64(v);
    }
    v = bdy_jget(o, "dryRun");
    if (v != NULL && !json_object_is_type(v, json_type_null)) {
        if (!json_object_is_type(v, json_type_array))
            return bdy_fail(eb, BDY_EINVAL, "dryRun: must be a list");
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            json_object *e = json_object_array_get_idx(v, i);
            if (!json_object_is_type(e, json_type_string))
                return bdy_fail(eb, BDY_EINVAL, "dryRun[%zu]: must be a string", i);
            bool dry = false;
            if ((rc = parse_dry_run(json_object_get_string(e), &dry, eb)) != 0)
                return rc;
            out->dry_run = out->dry_run || dry;
        }
    }
    json_object *pre = bdy_jget(o, "preconditions");
    if (pre != NULL && !json_object_is_type(pre, json_type_null)) {
        if (!json_object_is_type(pre, json_type_object))
            return bdy_fail(eb, BDY_EINVAL, "preconditions: must be an object");
        if ((rc = copy_precondition(pre, "uid", out->uid, sizeof(out->uid), eb)) != 0 ||
            (rc = copy_precondition(pre, "resourceVersion", out->rv, sizeof(out->rv), eb)) != 0)
            return rc;
    }
    return 0;
}

int bdy_kube_parse_delete(const char *body, size_t len, bdy_kube_query_cb query, void *data,
                          bdy_kube_delete *out, bdy_errbuf *eb)
{
    int rc = 0;
    json_object *o = NULL;
    json_tokener *tok = NULL;
    memset(out, 0, sizeof(*out));
    if (len > BDY_KUBE_MAX_DELETE_BODY)
        return bdy_fail(eb, BDY_ETOOBIG, "DeleteOptions over %u bytes", BDY_KUBE_MAX_DELETE_BODY);
    size_t skip = 0;
    while (skip < len &&
           (body[skip] == ' ' || body[skip] == '\n' || body[skip] == '\r' || body[skip] == '\t'))
        skip++;
    if (body != NULL && skip < len) {
        tok = json_tokener_new_ex(32);
        if (tok == NULL)
            return BDY_ENOMEM;
        o = json_tokener_parse_ex(tok, body, (int)len);
        if (o == NULL || json_tokener_get_parse_end(tok) != len) {
            size_t end = json_tokener_get_parse_end(tok);
            while (end < len && (body[end] == ' ' || body[end] == '\n' || body[end] == '\r' ||
                                 body[end] == '\t'))
                end++;
            if (o == NULL || end != len) {
                rc = bdy_fail(eb, BDY_EINVAL, "the DeleteOptions body is not valid JSON");
                goto out;
            }
        }
        if ((rc = parse_delete_body(o, out, eb)) != 0)
            goto out;
    }
    const char *v = q(query, data, "propagationPolicy");
    if (v != NULL && (rc = parse_propagation(v, &out->propagation, eb)) != 0)
        goto out;
    v = q(query, data, "gracePeriodSeconds");
    if (v != NULL) {
        char *end = NULL;
        errno = 0;
        long long g = strtoll(v, &end, 10);
        if (v[0] == '\0' || *end != '\0' || errno != 0) {
            rc = bdy_fail(eb, BDY_EINVAL, "gracePeriodSeconds: invalid value %.64s", v);
            goto out;
        }
        out->has_grace = true;
        out->grace_seconds = g;
    }
    v = q(query, data, "dryRun");
    if (v != NULL) {
        bool dry = false;
        if ((rc = parse_dry_run(v, &dry, eb)) != 0)
            goto out;
        out->dry_run = out->dry_run || dry;
    }
out:
    json_object_put(o);
    if (tok != NULL)
        json_tokener_free(tok);
    return rc;
}
