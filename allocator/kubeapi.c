/* The Kubernetes-compatible API: routing, the verbs over the object store,
 * Status errors, strategic merge patches for built-in kinds, and the
 * kubeconfig the daemon writes for kubectl.
 *
 * Every handler runs on an HTTP worker thread and blocks only on the store
 * (a durable write); watches hand their stream to a thread of their own
 * (kubeapi_watch.c). Discovery and OpenAPI are in kubeapi_discovery.c,
 * Table output in kubeapi_table.c, the parsers in kubeapi_parse.c, the
 * protobuf bodies of Secrets, ConfigMaps and Namespaces in kubeapi_proto.c. */
#include "kubeapi_internal.h"

#include "bindery/auth.h"
#include "bindery/jsonpatch.h"
#include "bindery/jsonutil.h"
#include "bindery/log.h"
#include "bindery/selector.h"
#include "bindery/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* kubectl apply retries on 409 itself; a strategic merge patch is applied
 * as a merge patch with a resourceVersion precondition and retried here
 * when another writer came in between. */
#define SMP_RETRIES 5
/* Unknown-field warnings put in one Warning header. */
#define MAX_WARNING_LEN 240u
/* How long stop() waits for watch threads (each notices within a second). */
#define STOP_WAIT_MS 5000
/* A kubeconfig is a few hundred bytes; this is its cap. */
#define KUBECONFIG_MAX ((size_t)64 * 1024)
/* The stored text a list answer may hold: a page ends early past it (with
 * a continue token), a list without limit fails. A MiB under the response
 * cap leaves room for the envelope and the separators. */
#define LIST_MAX_BYTES (BDY_HTTP_MAX_RESPONSE_BYTES - (size_t)1024 * 1024)

/* ---- Status ------------------------------------------------------------------- */

void bdy__kube_api_version(const bdy_resource_info *info, char *out, size_t cap)
{
    if (info->group[0])
        snprintf(out, cap, "%s/%s", info->group, info->version);
    else
        snprintf(out, cap, "%s", info->version);
}

json_object *bdy__kube_status(unsigned code, const char *reason, const char *message)
{
    json_object *s = json_object_new_object();
    if (s == NULL)
        return NULL;
    json_object_object_add(s, "kind", json_object_new_string("Status"));
    json_object_object_add(s, "apiVersion", json_object_new_string("v1"));
    json_object_object_add(s, "metadata", json_object_new_object());
    json_object_object_add(s, "status", json_object_new_string(code < 300 ? "Success" : "Failure"));
    json_object_object_add(s, "message", json_object_new_string(message ? message : ""));
    json_object_object_add(s, "reason", json_object_new_string(reason ? reason : ""));
    json_object_object_add(s, "code", json_object_new_int((int)code));
    return s;
}

/* Kubernetes' StatusReason for an HTTP status the server answers itself
 * (metav1's names: what kubectl prints and client libraries test). */
static const char *status_reason(unsigned status)
{
    switch (status) {
    case 400:
        return "BadRequest";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "NotFound";
    case 405:
        return "MethodNotAllowed";
    case 406:
        return "NotAcceptable";
    case 409:
        return "Conflict";
    case 413:
        return "RequestEntityTooLarge";
    case 415:
        return "UnsupportedMediaType";
    case 422:
        return "Invalid";
    case 429:
        return "TooManyRequests";
    case 503:
        return "ServiceUnavailable";
    case 504:
        return "Timeout";
    default:
        return status >= 500 ? "InternalError" : "BadRequest";
    }
}

void bdy__kube_http_error(bdy_http_response *resp, unsigned status, const char *code,
                          const char *message, unsigned retry_after_s)
{
    (void)code; /* API.md's code; Kubernetes has its reason instead */
    json_object *st = bdy__kube_status(status, status_reason(status), message);
    if (st != NULL && retry_after_s > 0) {
        json_object *details = json_object_new_object();
        json_object_object_add(details, "retryAfterSeconds",
                               json_object_new_int((int)retry_after_s));
        json_object_object_add(st, "details", details);
        char secs[16];
        snprintf(secs, sizeof(secs), "%u", retry_after_s);
        bdy_http_set_header(resp, "Retry-After", secs);
    }
    if (st == NULL) {
        bdy_http_error(resp, status, code, message, retry_after_s); /* out of memory */
        return;
    }
    bdy_http_json(resp, status, st);
    json_object_put(st);
}

json_object *bdy__kube_status_from_error(int rc, const bdy_errbuf *eb,
                                         const bdy_resource_info *info, const char *name,
                                         unsigned *code)
{
    const char *reason = "InternalError";
    unsigned c = 500;
    const char *msg = eb != NULL && eb->message[0] ? eb->message : bdy_strerror(rc);
    switch (rc) {
    case BDY_ENOTFOUND:
        c = 404, reason = "NotFound";
        if (eb == NULL || eb->message[0] == '\0')
            msg = "the server could not find the requested resource";
        break;
    case BDY_EEXISTS:
        c = 409, reason = "AlreadyExists";
        break;
    case BDY_ECONFLICT:
        c = 409, reason = "Conflict";
        break;
    case BDY_EINVALID_OBJECT:
        c = 422, reason = "Invalid";
        break;
    case BDY_EINVAL:
    case BDY_EPARSE:
        c = 400, reason = "BadRequest";
        break;
    case BDY_EEXPIRED:
    case BDY_EGONE:
        c = 410, reason = "Expired";
        break;
    case BDY_ETOOBIG:
        c = 413, reason = "RequestEntityTooLarge";
        break;
    case BDY_EFORBIDDEN:
        c = 403, reason = "Forbidden";
        break;
    case BDY_EUNAUTHORIZED:
        c = 401, reason = "Unauthorized";
        break;
    case BDY_EUNSUPPORTED:
        c = 415, reason = "UnsupportedMediaType";
        break;
    case BDY_ETIMEOUT:
        c = 504, reason = "Timeout";
        break;
    case BDY_ESHUTDOWN:
    case BDY_EBUSY:
        c = 503, reason = "ServiceUnavailable";
        break;
    default:
        break;
    }
    json_object *s = bdy__kube_status(c, reason, msg);
    if (s == NULL)
        return NULL;
    /* A missing namespace is about the namespace, not the object. */
    if (rc == BDY_ENOTFOUND && eb != NULL && strncmp(eb->message, "namespaces \"", 12) == 0)
        info = NULL;
    if (c == 400 && (eb == NULL || eb->ncauses == 0))
        info = NULL;
    if (info != NULL || (eb != NULL && eb->ncauses > 0)) {
        json_object *d = json_object_new_object();
        if (name != NULL && name[0])
            json_object_object_add(d, "name", json_object_new_string(name));
        if (info != NULL) {
            json_object_object_add(d, "group", json_object_new_string(info->group));
            /* Kubernetes names the resource for NotFound/AlreadyExists/
             * Conflict and the kind for Invalid. */
            json_object_object_add(d, "kind",
                                   json_object_new_string(c == 422 ? info->kind : info->resource));
        }
        if (eb != NULL && eb->ncauses > 0) {
            json_object *causes = json_object_new_array();
            for (size_t i = 0; i < eb->ncauses; i++) {
                json_object *cause = json_object_new_object();
                json_object_object_add(cause, "reason",
                                       json_object_new_string(eb->causes[i].reason));
                json_object_object_add(cause, "message",
                                       json_object_new_string(eb->causes[i].message));
                json_object_object_add(cause, "field", json_object_new_string(eb->causes[i].field));
                json_object_array_add(causes, cause);
            }
            json_object_object_add(d, "causes", causes);
        }
        json_object_object_add(s, "details", d);
    }
    *code = c;
    return s;
}

static void send_status(bdy_http_response *resp, unsigned code, json_object *s)
{
    if (s == NULL) {
        bdy_http_error(resp, 500, "InternalError", "out of memory", 0);
        return;
    }
    bdy_http_json(resp, code, s);
    json_object_put(s);
}

void bdy__kube_fail(bdy_http_response *resp, int rc, const bdy_errbuf *eb,
                    const bdy_resource_info *info, const char *name)
{
    unsigned code = 500;
    json_object *s = bdy__kube_status_from_error(rc, eb, info, name, &code);
    send_status(resp, code, s);
}

void bdy__kube_fail_msg(bdy_http_response *resp, unsigned code, const char *reason,
                        const char *message)
{
    send_status(resp, code, bdy__kube_status(code, reason, message));
}

/* ---- module ------------------------------------------------------------------- */

int bdy_kubeapi_new(const bdy_kubeapi_opts *opts, bdy_kubeapi **out, bdy_errbuf *eb)
{
    if (opts == NULL || opts->store == NULL || out == NULL)
        return bdy_fail(eb, BDY_EINVAL, "kubeapi: no store");
    bdy_kubeapi *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return bdy_fail(eb, BDY_ENOMEM, "kubeapi: out of memory");
    k->store = opts->store;
    k->max_watches = opts->max_watches ? opts->max_watches : BDY_KUBEAPI_DEFAULT_MAX_WATCHES;
    k->watch_timeout_s =
        opts->watch_timeout_s ? opts->watch_timeout_s : BDY_KUBEAPI_DEFAULT_WATCH_TIMEOUT_S;
    k->bookmark_interval_s =
        opts->bookmark_interval_s ? opts->bookmark_interval_s : BDY_KUBEAPI_DEFAULT_BOOKMARK_S;
    if (pthread_mutex_init(&k->lock, NULL) != 0) {
        free(k);
        return bdy_fail(eb, BDY_ENOMEM, "kubeapi: cannot create a mutex");
    }
    int crc = bdy_cond_init_monotonic(&k->idle);
    if (crc != 0) {
        pthread_mutex_destroy(&k->lock);
        free(k);
        return bdy_fail(eb, BDY_ENOMEM, "kubeapi: cannot create a condition variable");
    }
    *out = k;
    return 0;
}

/* Tells watch threads to end and waits for them (bounded: each checks
 * at least once a second). Safe to call twice. */
unsigned bdy_kubeapi_stop(bdy_kubeapi *k)
{
    if (k == NULL)
        return 0;
    pthread_mutex_lock(&k->lock);
    k->stopping = true;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += STOP_WAIT_MS / 1000;
    while (k->nwatches > 0) {
        if (pthread_cond_timedwait(&k->idle, &k->lock, &until) != 0)
            break;
    }
    unsigned left = k->nwatches;
    pthread_mutex_unlock(&k->lock);
    if (left > 0)
        bdy_warn("kubeapi", "%u watch threads still running after %d ms", left, STOP_WAIT_MS);
    return left;
}

void bdy_kubeapi_free(bdy_kubeapi *k)
{
    if (k == NULL)
        return;
    bdy_kubeapi_stop(k);
    if (k->nwatches > 0)
        return; /* a thread still uses k: leaking beats a use after free */
    pthread_cond_destroy(&k->idle);
    pthread_mutex_destroy(&k->lock);
    free(k);
}

/* ---- request helpers ------------------------------------------------------------ */

static const char *query_cb(void *data, const char *key)
{
    return bdy_http_query(data, key);
}

/* Adds a Warning (299, as the API server's) saying text to resp, after
 * any it has: one header, the values comma-separated. Quotes and
 * backslashes escaped, control characters (a decoded key may hold them)
 * shown as '?', or the server would drop the header; what does not fit
 * the header is left out. */
static void add_warning(bdy_http_response *resp, const char *text)
{
    char value[sizeof(resp->header_values[0])];
    size_t n = 0;
    for (size_t i = 0; i < resp->nheaders; i++)
        if (strcasecmp(resp->header_names[i], "Warning") == 0)
            n = (size_t)snprintf(value, sizeof(value), "%s, ", resp->header_values[i]);
    if (n + 16 >= sizeof(value))
        return; /* no room for another */
    n += (size_t)snprintf(value + n, sizeof(value) - n, "299 - \"");
    for (const char *p = text; *p != '\0' && n + 4 < sizeof(value); p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"' || ch == '\\')
            value[n++] = '\\';
        value[n++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    snprintf(value + n, sizeof(value) - n, "\"");
    bdy_http_set_header(resp, "Warning", value);
}

/* Parses the body as one JSON value (objects only when want_object). A key
 * given twice in an object is what the API server's decoder makes of it
 * under fields: refused (Strict), taken last with a Warning header on resp
 * (Warn, and the default), or taken last (Ignore). */
static int parse_body(const bdy_http_request *req, bool want_object,
                      bdy_kube_field_validation fields, bdy_http_response *resp, json_object **out,
                      bdy_errbuf *eb)
{
    /* Stored text must stay valid UTF-8: every client reads it back. */
    if (!bdy_utf8_valid(req->body, req->body_len))
        return bdy_fail(eb, BDY_EINVAL, "the request body is not valid UTF-8");
    /* json-c's depth n takes n - 1 levels around a scalar: one more, so
     * that every object the store holds can be sent back (GET, then PUT). */
    json_tokener *tok = json_tokener_new_ex(BDY_JSON_MAX_DEPTH + 1);
    if (tok == NULL)
        return BDY_ENOMEM;
    json_object *o = json_tokener_parse_ex(tok, req->body, (int)req->body_len);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    while (o != NULL && end < req->body_len &&
           (req->body[end] == ' ' || req->body[end] == '\n' || req->body[end] == '\r' ||
            req->body[end] == '\t'))
        end++;
    if (o == NULL || end != req->body_len) {
        json_object_put(o);
        return bdy_fail(eb, BDY_EINVAL, "the request body is not valid JSON");
    }
    if (want_object && !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return bdy_fail(eb, BDY_EINVAL, "the request body must be a JSON object");
    }
    /* Stored, either would break every client that reads it back. */
    if (bdy_json_text_escapes_nul(req->body, req->body_len)) {
        json_object_put(o);
        return bdy_fail(eb, BDY_EINVAL,
                        "strings in the request body may not contain NUL (\\u0000)");
    }
    if (!bdy_json_numbers_finite(o)) {
        json_object_put(o);
        return bdy_fail(
            eb, BDY_EINVAL,
            "numbers in the request body must be finite (NaN and Infinity are not JSON)");
    }
    char what[160];
    int rc = bdy_json_text_check(req->body, req->body_len, fields != BDY_FIELDS_IGNORE, what,
                                 sizeof(what));
    if (rc == BDY_EEXISTS && fields != BDY_FIELDS_STRICT) {
        /* Warn: said, and the last one taken, as json-c took it. */
        add_warning(resp, what);
        rc = bdy_json_text_check(req->body, req->body_len, false, what, sizeof(what));
    }
    if (rc != 0)
        json_object_put(o);
    if (rc == BDY_EEXISTS)
        return bdy_fail(eb, BDY_EINVAL, "strict decoding error: %s", what);
    if (rc == BDY_EINVAL)
        return bdy_fail(eb, BDY_EINVAL, "the request body is not valid JSON: %s", what);
    if (rc != 0)
        return rc;
    *out = o;
    return 0;
}

/* The media type of the request, without parameters, lower-case. */
static void media_type(const char *content_type, char *out, size_t cap)
{
    out[0] = '\0';
    if (content_type == NULL)
        return;
    while (*content_type == ' ')
        content_type++;
    size_t n = strcspn(content_type, "; \t");
    if (n >= cap)
        n = cap - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)((content_type[i] >= 'A' && content_type[i] <= 'Z') ? content_type[i] + 32
                                                                           : content_type[i]);
    out[n] = '\0';
}

static bool is_builtin(const bdy_resource_info *info)
{
    return info->group[0] == '\0' || strcmp(info->group, "coordination.k8s.io") == 0 ||
           strcmp(info->group, "apiextensions.k8s.io") == 0;
}

/* Whether a delete that removed the object answers with it, as the API
 * server's pods, namespaces and CRDs do; the other kinds, custom
 * resources included, answer with a Status. */
static bool delete_returns_object(const bdy_resource_info *info)
{
    return (info->group[0] == '\0' &&
            (strcmp(info->resource, "pods") == 0 || strcmp(info->resource, "namespaces") == 0)) ||
           (strcmp(info->group, "apiextensions.k8s.io") == 0 &&
            strcmp(info->resource, "customresourcedefinitions") == 0);
}

static void reply_object(bdy_http_response *resp, unsigned code, json_object *obj)
{
    bdy_http_json(resp, code, obj);
}

/* Whether cause i of eb is an unknown field (what strict decoding refuses). */
static bool unknown_field_cause(const bdy_errbuf *eb, size_t i)
{
    return strncmp(eb->causes[i].message, "unknown field", 13) == 0;
}

/* Adds a Warning header listing unknown fields reported in eb. */
static void warn_unknown(bdy_http_response *resp, const bdy_errbuf *eb)
{
    char text[MAX_WARNING_LEN];
    size_t n = 0;
    for (size_t i = 0; i < eb->ncauses && n + 1 < sizeof(text); i++) {
        if (!unknown_field_cause(eb, i))
            continue;
        int w = snprintf(text + n, sizeof(text) - n, "%s%s", n ? ", " : "", eb->causes[i].message);
        n += w > 0 ? (size_t)w : 0;
    }
    if (n >= sizeof(text))
        n = sizeof(text) - 1;
    text[n] = '\0';
    add_warning(resp, text);
}

/* True when some cause is an unknown field. */
static bool any_unknown_field(const bdy_errbuf *eb)
{
    for (size_t i = 0; i < eb->ncauses; i++) {
        if (unknown_field_cause(eb, i))
            return true;
    }
    return false;
}

/* The API server's answer to unknown fields with fieldValidation=Strict:
 * its decoder refuses them before any validation, so they are all it
 * names. */
static void fail_strict(bdy_http_response *resp, const bdy_errbuf *eb,
                        const bdy_resource_info *info)
{
    char msg[1024];
    size_t n = (size_t)snprintf(msg, sizeof(msg),
                                "%s in version \"%s\" cannot be handled as a %s: strict decoding "
                                "error: ",
                                info->kind, info->version, info->kind);
    bool first = true;
    for (size_t i = 0; i < eb->ncauses && n < sizeof(msg); i++) {
        if (!unknown_field_cause(eb, i))
            continue;
        n += (size_t)snprintf(msg + n, sizeof(msg) - n, "%s%s", first ? "" : ", ",
                              eb->causes[i].message);
        first = false;
    }
    bdy__kube_fail_msg(resp, 400, "BadRequest", msg);
}

/* A store write under a fieldValidation mode. write_cb performs the write
 * with the given options. */
typedef int (*write_fn)(void *ctx, const bdy_write_opts *wo, json_object **out, bdy_errbuf *eb);

static int validated_write(const bdy_kube_query *q, write_fn fn, void *ctx, json_object **out,
                           bdy_errbuf *eb, bool *strict_failed, bdy_http_response *resp)
{
    bdy_write_opts wo = {.dry_run = q->dry_run, .unknown = BDY_UNKNOWN_REJECT, .client = true};
    *strict_failed = false;
    if (q->field_validation == BDY_FIELDS_IGNORE) {
        wo.unknown = BDY_UNKNOWN_PRUNE;
        return fn(ctx, &wo, out, eb);
    }
    int rc = fn(ctx, &wo, out, eb);
    if (rc != BDY_EINVALID_OBJECT || !any_unknown_field(eb))
        return rc;
    if (q->field_validation == BDY_FIELDS_STRICT) {
        *strict_failed = true;
        return rc;
    }
    /* Warn (also the default): write with the unknown fields dropped and
     * say which they were; what else is wrong is refused on its own, as
     * the API server drops unknown fields before it validates. */
    warn_unknown(resp, eb);
    bdy_errbuf_clear(eb);
    wo.unknown = BDY_UNKNOWN_PRUNE;
    return fn(ctx, &wo, out, eb);
}

/* ---- strategic merge patch (built-in kinds) -------------------------------------- */

/* Lists merged by a key instead of replaced, as the built-in types'
 * patchMergeKey tags say. */
static const char *merge_key(const char *field)
{
    static const struct {
        const char *field;
        const char *key;
    } keys[] = {
        {"containers", "name"},
        {"initContainers", "name"},
        {"ephemeralContainers", "name"},
        {"volumes", "name"},
        {"env", "name"},
        {"volumeMounts", "mountPath"},
        {"ports", "containerPort"},
        {"imagePullSecrets", "name"},
        {"conditions", "type"},
        {"ownerReferences", "uid"},
        {"topologySpreadConstraints", "topologyKey"},
        {"hostAliases", "ip"},
        {"schedulingGates", "name"},
        {"resourceClaims", "name"},
        {"volumeDevices", "devicePath"},
        {"podIPs", "ip"},
        {"hostIPs", "ip"},
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (strcmp(keys[i].field, field) == 0)
            return keys[i].key;
    }
    return NULL;
}

/* Lists of scalars merged as sets instead of replaced (patchStrategy
 * merge without a key): what the built-in types tag that way. */
static bool merges_as_set(const char *field)
{
    return strcmp(field, "finalizers") == 0;
}

#define DELETE_FROM_PRIMITIVE_LIST "$deleteFromPrimitiveList/"

static bool is_directive(const char *key)
{
    return key[0] == '$';
}

static bool list_has(json_object *list, json_object *v)
{
    for (size_t i = 0;
         json_object_is_type(list, json_type_array) && i < json_object_array_length(list); i++)
        if (json_object_equal(json_object_array_get_idx(list, i), v))
            return true;
    return false;
}

/* A set-merged list: current, then what patch adds, less what drop (the
 * $deleteFromPrimitiveList directive, may be NULL) names. New array. */
static json_object *smp_set(json_object *current, json_object *patch, json_object *drop)
{
    json_object *out = json_object_new_array();
    json_object *parts[] = {current, patch};
    for (size_t p = 0; p < 2; p++) {
        for (size_t i = 0; json_object_is_type(parts[p], json_type_array) &&
                           i < json_object_array_length(parts[p]);
             i++) {
            json_object *v = json_object_array_get_idx(parts[p], i);
            if (!list_has(out, v) && !list_has(drop, v))
                json_object_array_add(out, json_object_get(v));
        }
    }
    return out;
}

static json_object *smp_to_merge(json_object *current, json_object *patch, bool *bad);

/* Merges one patch list element into a copy of the current list. */
static json_object *smp_list(json_object *current, json_object *patch, const char *key, bool *bad)
{
    /* {"$patch": "replace"} among the elements: the list is the patch's
     * other elements, the current ones dropped. */
    bool replace = false;
    for (size_t i = 0; i < json_object_array_length(patch) && !replace; i++) {
        const char *d = bdy_jstr(json_object_array_get_idx(patch, i), "$patch");
        replace = d != NULL && strcmp(d, "replace") == 0;
    }
    json_object *out = json_object_new_array();
    for (size_t i = 0; !replace && json_object_is_type(current, json_type_array) &&
                       i < json_object_array_length(current);
         i++)
        json_object_array_add(out, json_object_get(json_object_array_get_idx(current, i)));
    for (size_t i = 0; i < json_object_array_length(patch); i++) {
        json_object *pe = json_object_array_get_idx(patch, i);
        const char *d = bdy_jstr(pe, "$patch");
        if (d != NULL && strcmp(d, "replace") == 0)
            continue;
        json_object *pk = bdy_jget(pe, key);
        size_t found = SIZE_MAX;
        for (size_t j = 0; pk != NULL && j < json_object_array_length(out); j++) {
            json_object *ck = bdy_jget(json_object_array_get_idx(out, j), key);
            if (ck != NULL && json_object_equal(ck, pk))
                found = j;
        }
        const char *directive = bdy_jstr(pe, "$patch");
        if (directive != NULL && strcmp(directive, "delete") == 0) {
            if (found != SIZE_MAX)
                json_object_array_del_idx(out, found, 1);
            continue;
        }
        json_object *base = found != SIZE_MAX ? json_object_array_get_idx(out, found) : NULL;
        json_object *mp = smp_to_merge(base, pe, bad);
        json_object *merged = bdy_merge_patch(base ? base : NULL, mp);
        if (merged == NULL) {
            json_object *empty = json_object_new_object();
            merged = bdy_merge_patch(empty, mp);
            json_object_put(empty);
        }
        json_object_put(mp);
        if (found != SIZE_MAX)
            json_object_array_put_idx(out, found, merged);
        else
            json_object_array_add(out, merged);
    }
    return out;
}

/* A JSON merge patch that turns current into want (directive keys of
 * want left out): a member of current that want lacks is nulled, at every
 * level, since a merge patch would otherwise keep it. New object. */
static json_object *merge_to_become(json_object *current, json_object *want)
{
    if (!json_object_is_type(want, json_type_object))
        return json_object_get(want);
    json_object *out = json_object_new_object();
    if (json_object_is_type(current, json_type_object)) {
        json_object_object_foreach(current, ckey, cval)
        {
            (void)cval;
            if (!json_object_object_get_ex(want, ckey, NULL))
                json_object_object_add(out, ckey, NULL);
        }
    }
    json_object_object_foreach(want, key, val)
    {
        if (!is_directive(key))
            json_object_object_add(out, key, merge_to_become(bdy_jget(current, key), val));
    }
    return out;
}

/* Turns a strategic merge patch into a JSON merge patch against current:
 * directives go, keyed lists become the whole merged list, and a map's
 * directives become what they ask for: "$patch": "replace" the map as the
 * patch has it, "$patch": "delete" no map (JSON null), "$retainKeys" the
 * map less the keys it does not list. Returns a new object (a copy of
 * patch where nothing applies). *bad is set for a "$patch" it does not
 * know, which the API server refuses (400). */
static json_object *smp_to_merge(json_object *current, json_object *patch, bool *bad)
{
    if (!json_object_is_type(patch, json_type_object))
        return json_object_get(patch);
    json_object *directive = bdy_jget(patch, "$patch");
    if (directive != NULL) {
        const char *d = json_object_is_type(directive, json_type_string)
                            ? json_object_get_string(directive)
                            : "";
        if (strcmp(d, "replace") == 0)
            return merge_to_become(current, patch);
        if (strcmp(d, "delete") == 0)
            return NULL;
        if (strcmp(d, "merge") != 0)
            *bad = true;
    }
    json_object *out = json_object_new_object();
    json_object *retain = bdy_jget(patch, "$retainKeys");
    if (json_object_is_type(retain, json_type_array) &&
        json_object_is_type(current, json_type_object)) {
        json_object_object_foreach(current, ckey, cval)
        {
            (void)cval;
            bool listed = false;
            for (size_t i = 0; i < json_object_array_length(retain) && !listed; i++) {
                const char *k = json_object_get_string(json_object_array_get_idx(retain, i));
                listed = k != NULL && strcmp(k, ckey) == 0;
            }
            if (!listed && !json_object_object_get_ex(patch, ckey, NULL))
                json_object_object_add(out, ckey, NULL);
        }
    }
    json_object_object_foreach(patch, key, val)
    {
        if (is_directive(key))
            continue;
        json_object *cur = bdy_jget(current, key);
        const char *mk = merge_key(key);
        if (json_object_is_type(val, json_type_object)) {
            json_object_object_add(out, key, smp_to_merge(cur, val, bad));
        } else if (json_object_is_type(val, json_type_array) && mk != NULL) {
            json_object_object_add(out, key, smp_list(cur, val, mk, bad));
        } else if (json_object_is_type(val, json_type_array) && merges_as_set(key)) {
            char drop_key[160];
            snprintf(drop_key, sizeof(drop_key), DELETE_FROM_PRIMITIVE_LIST "%s", key);
            json_object_object_add(out, key, smp_set(cur, val, bdy_jget(patch, drop_key)));
        } else
            json_object_object_add(out, key, json_object_get(val));
    }
    /* Removals from a list the patch does not otherwise name (what
     * kubectl apply sends to take a finalizer away). */
    size_t plen = strlen(DELETE_FROM_PRIMITIVE_LIST);
    json_object_object_foreach(patch, dkey, dval)
    {
        const char *field = dkey + plen;
        if (strncmp(dkey, DELETE_FROM_PRIMITIVE_LIST, plen) != 0 || bdy_jget(patch, field) != NULL)
            continue;
        json_object *cur = bdy_jget(current, field);
        if (json_object_is_type(cur, json_type_array))
            json_object_object_add(out, field, smp_set(cur, NULL, dval));
    }
    return out;
}

/* ---- verbs ------------------------------------------------------------------------ */

typedef struct verb_ctx {
    bdy_kubeapi *k;
    const bdy_http_request *req;
    bdy_http_response *resp;
    bdy_gvr gvr;
    bdy_resource_info info;
    const bdy_kube_path *path;
    const char *ns; /* NULL for cluster-scoped or all namespaces */
    bdy_kube_query q;
    bdy_kube_accept accept;
    json_object *body;
    bdy_patch_type patch_type;
} verb_ctx;

static void do_get(verb_ctx *v)
{
    json_object *obj = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy_store_get(v->k->store, &v->gvr, v->ns, v->path->name, &obj, &eb);
    if (rc != 0) {
        bdy__kube_fail(v->resp, rc, &eb, &v->info, v->path->name);
        return;
    }
    /* The status subresource is the same object: the same columns. */
    if (v->accept.table &&
        (!v->path->subresource[0] || strcmp(v->path->subresource, "status") == 0)) {
        bdy__kube_columns cols;
        bdy__kube_columns_load(v->k->store, &v->info, &cols);
        json_object *items = json_object_new_array();
        json_object_array_add(items, json_object_get(obj));
        json_object *t = bdy__kube_table(&cols, items, NULL, NULL, v->q.include, true);
        bdy_http_json(v->resp, 200, t);
        if (v->resp->status == 200)
            v->resp->content_type = BDY__KUBE_TABLE_TYPE;
        json_object_put(t);
        json_object_put(items);
        bdy__kube_columns_free(&cols);
    } else {
        reply_object(v->resp, 200, obj);
    }
    json_object_put(obj);
}

static void do_list(verb_ctx *v)
{
    bdy_list_result lr = {0};
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    bdy_list_opts lo = {.ns = v->ns,
                        .label_selector = v->q.label_selector,
                        .field_selector = v->q.field_selector,
                        .limit = v->q.limit,
                        .continue_token = v->q.continue_token,
                        .max_bytes = LIST_MAX_BYTES};
    int rc = bdy_store_list(v->k->store, &v->gvr, &lo, &lr, &eb);
    if (rc == BDY_ETOOBIG) { /* not the request's size: no 413 */
        bdy__kube_fail_msg(v->resp, 500, "InternalError", eb.message);
        return;
    }
    if (rc != 0) {
        bdy__kube_fail(v->resp, rc, &eb, &v->info, NULL);
        return;
    }
    char rv[24];
    snprintf(rv, sizeof(rv), "%llu", (unsigned long long)lr.resource_version);
    json_object *out = NULL;
    if (v->accept.table) {
        bdy__kube_columns cols;
        bdy__kube_columns_load(v->k->store, &v->info, &cols);
        out = bdy__kube_table(&cols, lr.items, rv, lr.continue_token ? lr.continue_token : NULL,
                              v->q.include, true);
        bdy__kube_columns_free(&cols);
    } else {
        char av[200];
        bdy__kube_api_version(&v->info, av, sizeof(av));
        out = json_object_new_object();
        json_object *meta = json_object_new_object();
        json_object_object_add(out, "kind", json_object_new_string(v->info.list_kind));
        json_object_object_add(out, "apiVersion", json_object_new_string(av));
        json_object_object_add(meta, "resourceVersion", json_object_new_string(rv));
        json_object_object_add(meta, "continue",
                               json_object_new_string(lr.continue_token ? lr.continue_token : ""));
        if (lr.continue_token != NULL && lr.remaining >= 0)
            json_object_object_add(meta, "remainingItemCount", json_object_new_int64(lr.remaining));
        json_object_object_add(out, "metadata", meta);
        json_object_object_add(out, "items", json_object_get(lr.items));
    }
    bdy_http_json(v->resp, 200, out);
    if (v->accept.table && v->resp->status == 200)
        v->resp->content_type = BDY__KUBE_TABLE_TYPE;
    json_object_put(out);
    bdy_list_result_free(&lr);
}

static int create_fn(void *ctx, const bdy_write_opts *wo, json_object **out, bdy_errbuf *eb)
{
    verb_ctx *v = ctx;
    return bdy_store_create(v->k->store, &v->gvr, v->ns, v->body, wo, out, eb);
}

static int update_fn(void *ctx, const bdy_write_opts *wo, json_object **out, bdy_errbuf *eb)
{
    verb_ctx *v = ctx;
    if (v->path->subresource[0])
        return bdy_store_update_status(v->k->store, &v->gvr, v->ns, v->body, wo, out, eb);
    return bdy_store_update(v->k->store, &v->gvr, v->ns, v->body, wo, out, eb);
}

static int patch_fn(void *ctx, const bdy_write_opts *wo, json_object **out, bdy_errbuf *eb)
{
    verb_ctx *v = ctx;
    return bdy_store_patch(v->k->store, &v->gvr, v->ns, v->path->name, v->patch_type, v->body,
                           v->path->subresource[0] != '\0', wo, out, eb);
}

/* Runs a write and answers with the object or the Status. */
static void finish_write(verb_ctx *v, write_fn fn, unsigned ok_code, const char *name)
{
    json_object *out = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    bool strict = false;
    int rc = validated_write(&v->q, fn, v, &out, &eb, &strict, v->resp);
    if (strict)
        fail_strict(v->resp, &eb, &v->info);
    else if (rc != 0)
        bdy__kube_fail(v->resp, rc, &eb, &v->info, name);
    else
        reply_object(v->resp, ok_code, out);
    json_object_put(out);
}

static void do_create(verb_ctx *v)
{
    if (v->info.namespaced && v->ns == NULL) {
        bdy__kube_fail_msg(v->resp, 404, "NotFound",
                           "the server could not find the requested resource");
        return;
    }
    const char *name = bdy_jstr(bdy_jget(v->body, "metadata"), "name");
    const char *gen = bdy_jstr(bdy_jget(v->body, "metadata"), "generateName");
    if ((name == NULL || name[0] == '\0') && (gen == NULL || gen[0] == '\0')) {
        bdy_errbuf eb;
        bdy_errbuf_clear(&eb);
        bdy_errbuf_add_cause(&eb, "FieldValueRequired", "metadata.name",
                             "Required value: name or generateName is required");
        snprintf(eb.message, sizeof(eb.message),
                 "%s%s%s \"\" is invalid: metadata.name: Required value: name or generateName is "
                 "required",
                 v->info.kind, v->info.group[0] ? "." : "", v->info.group);
        bdy__kube_fail(v->resp, BDY_EINVALID_OBJECT, &eb, &v->info, "");
        return;
    }
    finish_write(v, create_fn, 201, name);
}

static void do_update(verb_ctx *v)
{
    const char *name = bdy_jstr(bdy_jget(v->body, "metadata"), "name");
    if (name == NULL || strcmp(name, v->path->name) != 0) {
        char msg[700];
        snprintf(msg, sizeof(msg),
                 "the name of the object (%s) does not match the name on the URL (%s)",
                 name ? name : "", v->path->name);
        bdy__kube_fail_msg(v->resp, 400, "BadRequest", msg);
        return;
    }
    finish_write(v, update_fn, 200, name);
}

/* Applies a strategic merge patch: converted against the current object to
 * a merge patch that carries the object's resourceVersion, retried when
 * another write came in between. */
static void do_strategic_patch(verb_ctx *v)
{
    json_object *smp = v->body;
    json_object *out = NULL;
    bdy_errbuf eb;
    int rc = 0;
    bool strict = false;
    /* Shapes the conversion cannot take: json-c aborts the process when a
     * member is added to what is not an object. */
    json_object *smp_meta = bdy_jget(smp, "metadata");
    if (!json_object_is_type(smp, json_type_object) ||
        (smp_meta != NULL && !json_object_is_type(smp_meta, json_type_object))) {
        bdy__kube_fail_msg(v->resp, 400, "BadRequest",
                           json_object_is_type(smp, json_type_object)
                               ? "a strategic merge patch's metadata must be an object"
                               : "a strategic merge patch must be a JSON object");
        return;
    }
    for (int attempt = 0; attempt < SMP_RETRIES; attempt++) {
        json_object *cur = NULL;
        bdy_errbuf_clear(&eb);
        rc = bdy_store_get(v->k->store, &v->gvr, v->ns, v->path->name, &cur, &eb);
        if (rc != 0)
            break;
        bool bad = false;
        json_object *mp = smp_to_merge(cur, smp, &bad);
        if (bad) {
            json_object_put(mp);
            json_object_put(cur);
            rc = bdy_fail(&eb, BDY_EINVAL,
                          "a strategic merge patch's \"$patch\" must be "
                          "\"replace\", \"merge\" or \"delete\"");
            break;
        }
        const char *rv = bdy_jstr(bdy_jget(cur, "metadata"), "resourceVersion");
        const char *want = bdy_jstr(bdy_jget(smp, "metadata"), "resourceVersion");
        if (json_object_is_type(mp, json_type_object)) {
            json_object *meta = bdy_jget(mp, "metadata");
            if (meta == NULL) {
                meta = json_object_new_object();
                json_object_object_add(mp, "metadata", meta);
            }
            /* The client's own precondition wins; else ours. */
            json_object_object_add(meta, "resourceVersion",
                                   json_object_new_string(want ? want
                                                          : rv ? rv
                                                               : ""));
        }
        json_object_put(cur);
        v->body = mp;
        v->patch_type = BDY_PATCH_MERGE;
        rc = validated_write(&v->q, patch_fn, v, &out, &eb, &strict, v->resp);
        v->body = smp;
        json_object_put(mp);
        if (rc != BDY_ECONFLICT || want != NULL)
            break;
    }
    if (strict)
        fail_strict(v->resp, &eb, &v->info);
    else if (rc != 0)
        bdy__kube_fail(v->resp, rc, &eb, &v->info, v->path->name);
    else
        reply_object(v->resp, 200, out);
    json_object_put(out);
}

static void do_patch(verb_ctx *v)
{
    char mt[96];
    media_type(v->req->content_type, mt, sizeof(mt));
    bool smp = strcmp(mt, "application/strategic-merge-patch+json") == 0;
    if (strcmp(mt, "application/merge-patch+json") == 0) {
        v->patch_type = BDY_PATCH_MERGE;
    } else if (strcmp(mt, "application/json-patch+json") == 0) {
        v->patch_type = BDY_PATCH_JSON;
    } else if (!(smp && is_builtin(&v->info))) {
        char msg[400];
        snprintf(msg, sizeof(msg),
                 "the body of the request was in an unknown format - accepted media types "
                 "include: application/json-patch+json, application/merge-patch+json%s",
                 is_builtin(&v->info) ? ", application/strategic-merge-patch+json" : "");
        bdy__kube_fail_msg(v->resp, 415, "UnsupportedMediaType", msg);
        return;
    }
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = parse_body(v->req, v->patch_type == BDY_PATCH_MERGE || smp, v->q.field_validation,
                        v->resp, &v->body, &eb);
    if (rc == 0 && v->patch_type == BDY_PATCH_JSON &&
        !json_object_is_type(v->body, json_type_array))
        rc = bdy_fail(&eb, BDY_EINVAL, "a JSON patch must be an array of operations");
    if (rc != 0) {
        bdy__kube_fail(v->resp, rc, &eb, &v->info, v->path->name);
        return;
    }
    if (smp)
        do_strategic_patch(v);
    else
        finish_write(v, patch_fn, 200, v->path->name);
}

static void do_delete(verb_ctx *v)
{
    bdy_kube_delete d;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc =
        bdy_kube_parse_delete(v->req->body, v->req->body_len, query_cb, (void *)v->req, &d, &eb);
    if (rc != 0) {
        bdy__kube_fail(v->resp, rc, &eb, &v->info, v->path->name);
        return;
    }
    bdy_delete_opts o = {.dry_run = d.dry_run || v->q.dry_run,
                         .precondition_uid = d.uid[0] ? d.uid : NULL,
                         .precondition_rv = d.rv[0] ? d.rv : NULL};
    json_object *out = NULL;
    bool deleted = false;
    rc = bdy_store_delete(v->k->store, &v->gvr, v->ns, v->path->name, &o, &out, &deleted, &eb);
    if (rc != 0) {
        bdy__kube_fail(v->resp, rc, &eb, &v->info, v->path->name);
        return;
    }
    if (deleted && !delete_returns_object(&v->info)) {
        json_object *s = bdy__kube_status(200, "", "");
        json_object_object_del(s, "message");
        json_object_object_del(s, "reason");
        json_object *det = json_object_new_object();
        json_object_object_add(det, "name", json_object_new_string(v->path->name));
        json_object_object_add(det, "group", json_object_new_string(v->info.group));
        json_object_object_add(det, "kind", json_object_new_string(v->info.resource));
        const char *uid = bdy_jstr(bdy_jget(out, "metadata"), "uid");
        json_object_object_add(det, "uid", json_object_new_string(uid ? uid : ""));
        json_object_object_add(s, "details", det);
        send_status(v->resp, 200, s);
    } else {
        reply_object(v->resp, 200, out);
    }
    json_object_put(out);
}

const char *bdy__kube_authz_namespace(bool get_one, const char *group, const char *resource,
                                      const char *name, const char *ns)
{
    bool own = get_one && (group == NULL || group[0] == '\0') && resource != NULL &&
               strcmp(resource, "namespaces") == 0 && name != NULL && name[0] != '\0';
    return own ? name : ns;
}

/* The verb a request needs per namespace (the router already checked the
 * principal holds it somewhere). */
static bool allowed(const bdy_http_request *req, bdy_verb verb, const char *ns)
{
    return req->principal == NULL || bdy_principal_allows(req->principal, verb, ns);
}

void bdy__kube_resource_cb(void *data, const bdy_http_request *req, bdy_http_response *resp)
{
    bdy_kubeapi *k = data;
    bdy_kube_path path;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    verb_ctx v = {.k = k, .req = req, .resp = resp, .path = &path};
    if (bdy_kube_parse_path(req->path, &path) != 0) {
        bdy__kube_fail_msg(resp, 404, "NotFound",
                           "the server could not find the requested resource");
        return;
    }
    if (path.resource[0] == '\0') {
        if (strcmp(req->method, "GET") != 0) {
            bdy__kube_fail_msg(resp, 405, "MethodNotAllowed",
                               "the server does not allow this method on the requested resource");
            return;
        }
        bdy__kube_resource_list(k, path.group, path.version, resp);
        return;
    }
    v.gvr.group = path.group;
    v.gvr.version = path.version;
    v.gvr.resource = path.resource;
    if (bdy_store_resource_info(k->store, &v.gvr, &v.info) != 0 ||
        (!v.info.namespaced && path.ns[0]) ||
        (path.subresource[0] &&
         (strcmp(path.subresource, "status") != 0 || !v.info.status_subresource))) {
        bdy__kube_fail_msg(resp, 404, "NotFound",
                           "the server could not find the requested resource");
        return;
    }
    v.ns = v.info.namespaced && path.ns[0] ? path.ns : NULL;
    bool read = strcmp(req->method, "GET") == 0;
    const char *authz_ns = bdy__kube_authz_namespace(read && path.subresource[0] == '\0',
                                                     path.group, path.resource, path.name, v.ns);
    if (!allowed(req, read ? BDY_VERB_READ : BDY_VERB_ADMIN, authz_ns)) {
        char msg[600];
        snprintf(msg, sizeof(msg), "%s%s%s is forbidden: %s \"%s\" may not %s in %s%s",
                 path.resource, path.group[0] ? "." : "", path.group,
                 bdy_principal_kind(req->principal), bdy_principal_name(req->principal),
                 read ? "read" : "write", v.ns ? "namespace " : "all namespaces", v.ns ? v.ns : "");
        bdy__kube_fail_msg(resp, 403, "Forbidden", msg);
        return;
    }
    int rc = bdy_kube_parse_query(query_cb, (void *)req, &v.q, &eb);
    if (rc != 0) {
        bdy__kube_fail(resp, rc, &eb, NULL, NULL);
        return;
    }
    bdy_kube_parse_accept(bdy_http_header(req, "Accept"), &v.accept);
    bool named = path.name[0] != '\0';
    if (read && v.q.watch) {
        /* A watch of one named object (deprecated, still served by the API
         * server) is the collection's watch selecting that name. */
        char by_name[BDY_SELECTOR_MAX_TEXT + 1];
        if (named) {
            int len = snprintf(by_name, sizeof(by_name), "metadata.name=%s%s%s", path.name,
                               v.q.field_selector ? "," : "",
                               v.q.field_selector ? v.q.field_selector : "");
            if (len < 0 || (size_t)len >= sizeof(by_name)) {
                bdy__kube_fail_msg(resp, 400, "BadRequest", "the field selector is too long");
                return;
            }
            v.q.field_selector = by_name;
        }
        bdy__kube_watch(k, req, resp, &v.info, v.ns, &v.q, v.accept.table);
        return;
    }
    if (read && named) {
        do_get(&v);
        return;
    }
    if (read) {
        do_list(&v);
        return;
    }
    bool post = strcmp(req->method, "POST") == 0;
    bool put = strcmp(req->method, "PUT") == 0;
    if ((post && (named || path.subresource[0])) || (!post && !named)) {
        bdy__kube_fail_msg(resp, 405, "MethodNotAllowed",
                           "the server does not allow this method on the requested resource");
        return;
    }
    if (strcmp(req->method, "DELETE") == 0) {
        if (path.subresource[0]) {
            bdy__kube_fail_msg(resp, 405, "MethodNotAllowed",
                               "the server does not allow this method on the requested resource");
            return;
        }
        do_delete(&v);
        return;
    }
    if (strcmp(req->method, "PATCH") == 0) {
        do_patch(&v);
        json_object_put(v.body);
        return;
    }
    char mt[96];
    media_type(req->content_type, mt, sizeof(mt));
    /* Bodies are JSON, but kubectl's typed clients (`kubectl create secret
     * generic`, `create configmap`, `create namespace`) post these kinds as
     * protobuf. Not to a subresource: a status, which the decoder leaves
     * out, would be written as none. */
    bool proto = bdy__kube_proto_accepts(&v.info) && !v.path->subresource[0];
    bool as_proto = proto && strcmp(mt, BDY__KUBE_PROTOBUF_TYPE) == 0;
    if (strcmp(mt, "application/json") != 0 && !as_proto) {
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "the body of the request was in an unknown format - accepted media types "
                 "include: application/json%s",
                 proto ? ", " BDY__KUBE_PROTOBUF_TYPE : "");
        bdy__kube_fail_msg(resp, 415, "UnsupportedMediaType", msg);
        return;
    }
    rc = as_proto ? bdy__kube_proto_decode(&v.info, req->body, req->body_len, &v.body, &eb)
                  : parse_body(req, true, v.q.field_validation, resp, &v.body, &eb);
    if (rc != 0) {
        bdy__kube_fail(resp, rc, &eb, &v.info, path.name);
        return;
    }
    if (post)
        do_create(&v);
    else if (put)
        do_update(&v);
    json_object_put(v.body);
}

int bdy_kubeapi_routes(bdy_kubeapi *k, bdy_http_server *s)
{
    static const char *const any_body[] = {BDY_HTTP_ACCEPT_ANY, NULL};
    static const char *const writes[] = {"POST", "PUT", "PATCH", "DELETE"};
    int rc = 0;
    if (k == NULL || s == NULL)
        return BDY_EINVAL;
    static const struct {
        const char *path;
        bdy_route_match match;
        bdy_http_handler_cb cb;
    } reads[] = {
        {"/version", BDY_ROUTE_EXACT, bdy__kube_version_cb},
        {"/api", BDY_ROUTE_EXACT, bdy__kube_api_cb},
        {"/apis", BDY_ROUTE_EXACT, bdy__kube_apis_cb},
        {"/openapi/", BDY_ROUTE_PREFIX, bdy__kube_openapi_cb},
        {"/api/", BDY_ROUTE_PREFIX, bdy__kube_resource_cb},
        {"/apis/", BDY_ROUTE_PREFIX, bdy__kube_resource_cb},
    };
    /* Every route answers in Status, also what the server refuses itself
     * (401, 403, 413, 429): kubectl prints an error body of another shape
     * as "unknown". */
    for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++)
        if ((rc = bdy_http_route(s, "GET", reads[i].path, reads[i].match, BDY_VERB_READ,
                                 reads[i].cb, k)) != 0 ||
            (rc = bdy_http_route_errors(s, bdy__kube_http_error)) != 0)
            return rc;
    /* What kubectl auth can-i and auth whoami post: before the writes'
     * prefixes, and open to any authenticated client, whose question is
     * what it may do. */
    static const struct {
        const char *path;
        bdy_http_handler_cb cb;
    } reviews[] = {
        {"/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", bdy__kube_access_review_cb},
        {"/apis/authentication.k8s.io/v1/selfsubjectreviews", bdy__kube_self_review_cb},
        {"/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", bdy__kube_rules_review_cb},
    };
    static const char *const review_types[] = {"application/json", BDY__KUBE_PROTOBUF_TYPE, NULL};
    for (size_t i = 0; i < sizeof(reviews) / sizeof(reviews[0]); i++)
        if ((rc = bdy_http_route(s, "POST", reviews[i].path, BDY_ROUTE_EXACT,
                                 BDY_VERB_AUTHENTICATED, reviews[i].cb, k)) != 0 ||
            (rc = bdy_http_route_accept(s, review_types)) != 0 ||
            (rc = bdy_http_route_errors(s, bdy__kube_http_error)) != 0)
            return rc;
    /* Writes: the handler checks the media type itself so that a client
     * gets a Status 415 naming what is accepted. */
    for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
        const char *prefixes[] = {"/api/", "/apis/"};
        for (size_t p = 0; p < 2; p++) {
            if ((rc = bdy_http_route(s, writes[i], prefixes[p], BDY_ROUTE_PREFIX, BDY_VERB_ADMIN,
                                     bdy__kube_resource_cb, k)) != 0 ||
                (rc = bdy_http_route_accept(s, any_body)) != 0 ||
                (rc = bdy_http_route_errors(s, bdy__kube_http_error)) != 0)
                return rc;
        }
    }
    return 0;
}

/* ---- kubeconfig ------------------------------------------------------------------------ */

int bdy_kubeconfig_render(const char *server_url, const bdy_kubeconfig_user *user, bdy_buf *out)
{
    const bdy_kubeconfig_user none = {0};
    const bdy_kubeconfig_user *u = user != NULL ? user : &none;
    int rc = bdy_buf_printf(out,
                            "# kubeconfig for a local Bindery (written by bindery at start-up;\n"
                            "# `bindery kubeconfig` prints it). Use: KUBECONFIG=<this file> "
                            "kubectl get wi\n"
                            "apiVersion: v1\n"
                            "kind: Config\n"
                            "clusters:\n"
                            "  - name: bindery\n"
                            "    cluster:\n"
                            "      server: %s\n",
                            server_url);
    if (rc == 0 && u->ca_file != NULL)
        rc = bdy_buf_printf(out, "      certificate-authority: %s\n", u->ca_file);
    if (rc == 0)
        rc = bdy_buf_printf(out, "contexts:\n"
                                 "  - name: bindery\n"
                                 "    context:\n"
                                 "      cluster: bindery\n"
                                 "      user: bindery\n"
                                 "      namespace: default\n"
                                 "current-context: bindery\n"
                                 "users:\n"
                                 "  - name: bindery\n");
    bool any = u->token_file != NULL || u->client_cert_file != NULL;
    /* Over https, kubectl asks at the terminal for a username and password
     * when the user has no credentials at all (and fails without one); a
     * name, which bindery ignores, keeps it from asking. */
    bool https = strncmp(server_url, "https://", 8) == 0;
    if (rc == 0 && !any && https)
        rc = bdy_buf_printf(out,
                            "    user:\n"
                            "      # over https kubectl asks for a username when a user has no\n"
                            "      # credentials; bindery ignores this one\n"
                            "      username: bindery\n");
    else if (rc == 0)
        rc = bdy_buf_printf(out, any ? "    user:\n" : "    user: {}\n");
    if (rc == 0 && u->token_file != NULL)
        rc = bdy_buf_printf(out, "      tokenFile: %s\n", u->token_file);
    if (rc == 0 && u->client_cert_file != NULL)
        rc = bdy_buf_printf(out, "      client-certificate: %s\n      client-key: %s\n",
                            u->client_cert_file,
                            u->client_key_file != NULL ? u->client_key_file : u->client_cert_file);
    return rc;
}

void bdy_kubeconfig_server_url(const char *listen, unsigned port, bool tls, char *out, size_t cap)
{
    char host[300] = "127.0.0.1";
    if (listen != NULL && listen[0] == '[') {
        const char *close = strchr(listen, ']');
        size_t n = close ? (size_t)(close - listen + 1) : 0;
        if (n > 0 && n < sizeof(host)) {
            memcpy(host, listen, n);
            host[n] = '\0';
        }
        if (strcmp(host, "[::]") == 0)
            snprintf(host, sizeof(host), "[::1]");
    } else if (listen != NULL) {
        const char *colon = strrchr(listen, ':');
        size_t n = colon ? (size_t)(colon - listen) : strlen(listen);
        if (n > 0 && n < sizeof(host)) {
            memcpy(host, listen, n);
            host[n] = '\0';
        }
        if (strcmp(host, "0.0.0.0") == 0)
            snprintf(host, sizeof(host), "127.0.0.1");
    }
    snprintf(out, cap, "%s://%s:%u", tls ? "https" : "http", host, port);
}

void bdy_kubeconfig_path(const char *data_dir, char *out, size_t cap)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", data_dir ? data_dir : "data");
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        dir[--n] = '\0';
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(out, cap, "kubeconfig");
    else if (slash == dir)
        snprintf(out, cap, "/kubeconfig");
    else
        snprintf(out, cap, "%.*s/kubeconfig", (int)(slash - dir), dir);
}

int bdy_kubeconfig_write(const char *path, const char *server_url, const bdy_kubeconfig_user *user,
                         bdy_errbuf *eb)
{
    int rc = 0;
    int fd = -1;
    bdy_buf b;
    char tmp[PATH_MAX + 16];
    bdy_buf_init(&b, KUBECONFIG_MAX);
    if ((rc = bdy_kubeconfig_render(server_url, user, &b)) != 0) {
        rc = bdy_fail(eb, rc, "kubeconfig: cannot render");
        goto out;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = bdy_fail(eb, BDY_EIO, "kubeconfig %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (write(fd, b.data, b.len) != (ssize_t)b.len || fsync(fd) != 0) {
        rc = bdy_fail(eb, BDY_EIO, "kubeconfig %s: %s", tmp, strerror(errno));
        goto out;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = bdy_fail(eb, BDY_EIO, "kubeconfig %s: %s", path, strerror(errno));
        unlink(tmp);
    }
out:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    bdy_buf_free(&b);
    return rc;
}
