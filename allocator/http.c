/* The HTTP server on libmicrohttpd (MHD): routing, request limits,
 * bearer-token authentication, API.md error bodies and request metrics.
 *
 * MHD calls access_cb() several times per request: once when the headers
 * are in (we route, authenticate and check the limits, and may answer at
 * once), once per piece of body (we append to a capped buffer) and once
 * when the request is complete (we run the handler and queue its
 * response). completed_cb() frees the per-request state whatever happened,
 * including connections cut mid-body.
 *
 * A handler that cannot answer yet defers (bdy_http_defer): when it
 * returns, the final call suspends the connection instead of queueing, so
 * no worker thread waits; the owner of the deferred request later fills its
 * response and finishes it from any thread, which resumes the connection,
 * and MHD calls access_cb() once more to queue the answer. See struct
 * bdy_http_deferred for the states and who may free what.
 *
 * Threads: MHD's worker threads run the callbacks; one connection stays on
 * one worker. The route table is read-only once the server starts. The
 * token set is swapped under auth_lock (see struct auth_slot).
 *
 * Lock order: defer_lock, then a deferred's lock, then auth_lock or MHD's
 * own connection lock (MHD_suspend_connection and MHD_resume_connection
 * take it briefly; MHD never calls us holding it, since applications may
 * resume connections from inside callbacks).
 */
#include "bindery/http.h"

#include "bindery/auth.h"
#include "bindery/error.h"
#include "bindery/log.h"
#include "bindery/metrics.h"
#include "bindery/tls.h"
#include "bindery/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <json-c/json.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A handler's response body may grow to this (paged lists stay far below). */
/* MHD keeps the request line and headers in the connection's memory pool;
 * below this even ordinary requests with a few cookies would fail. The pool
 * is twice the header limit, so that headers somewhat over the limit still
 * reach our check and get our JSON 431, not MHD's HTML one. */
#define HTTP_MIN_CONNECTION_MEMORY ((size_t)32 * 1024)
#define HTTP_DEFAULT_HEADER_LIMIT ((size_t)16 * 1024)
#define HTTP_DEFAULT_TIMEOUT_S 30u
#define HTTP_DEFAULT_MAX_CONNECTIONS 1024u
#define HTTP_MAX_THREADS 1024u
#define HTTP_MAX_ROUTES 256u
#define HTTP_MAX_PATTERN_LEN 512u
#define HTTP_MAX_LISTEN_LEN 300u
#define HTTP_MAX_MEDIA_TYPES 8u
#define HTTP_MAX_MEDIA_TYPE_LEN 128u
/* TLS sets kept after reloads replaced them (struct bdy_http_server). */
#define HTTP_TLS_RETIRED 8u
/* A connection's client certificate is checked again after this long (it
 * may have expired meanwhile), and at once after a reload loaded another
 * set (a CRL may now revoke it): a kubectl watch or a keep-alive client
 * would otherwise keep a revoked certificate's rights for as long as its
 * connection stays open. */
#define HTTP_TLS_RECHECK_NS (60ull * 1000000000ull)
/* MHD cannot answer while a body is still arriving, so past the cap we
 * read and drop up to this much more to still send 413 (a chunked body, or
 * one whose Content-Length says it is no more over); answered at once, a
 * client still writing (kubectl) saw "broken pipe" instead of the 413.
 * A client that keeps sending beyond it is cut off. */
#define HTTP_DISCARD_LIMIT ((size_t)4 * 1024 * 1024)
/* The body of a request that reads none (a GET, or /healthz without a
 * token) is dropped as it comes, up to this much. */
#define HTTP_UNREAD_LIMIT ((size_t)1024 * 1024)
/* Retry-After of a 503 ShuttingDown: another replica, or this one
 * restarted, can take the request (API.md: Retry-After where a retry can
 * succeed). */
#define SHUTDOWN_RETRY_AFTER_S 1u
/* How long stop() waits for in-flight requests before closing them. */
#define HTTP_STOP_GRACE_MS 10000u

static const double duration_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                         0.1,    0.25,  0.5,    1,     2.5,  5,     10};

struct route {
    char *method; /* NULL: any method */
    char *pattern;
    bdy_route_match match;
    bdy_verb verb;
    bdy_http_handler_cb cb;
    void *data;
    size_t nmedia; /* 0: application/json only */
    char *media[HTTP_MAX_MEDIA_TYPES];
    bdy_http_error_fn errors; /* the shape of the server's own answers; NULL: API.md's */
    bdy_metric *duration;     /* this route's latency histogram child, or NULL */
};

/* A token set and the number of requests that authenticated against it.
 * The current slot takes new requests; one that set_auth() replaced is
 * retired and freed, with its set, by whoever lets it go last. So a swap
 * never waits for a request: a watch may run for hours, a slow client may
 * take as long to send its body. Guarded by auth_lock. */
struct auth_slot {
    bdy_auth *auth; /* owned; NULL: authentication off */
    unsigned users;
    bool retired;
};

struct bdy_http_server {
    char *listen;
    unsigned threads;
    size_t max_body;
    unsigned timeout_s;
    size_t memory_limit;
    size_t header_limit;
    unsigned max_connections;

    bdy_metric_family *requests_total; /* NULL without metrics */
    bdy_metric_family *duration;
    bdy_metric *unmatched_duration;
    bdy_metric *tls_failures; /* handshakes that failed; NULL without metrics */
    bdy_log_limit tls_failure_log;

    struct route *routes;
    size_t nroutes;

    pthread_mutex_t auth_lock; /* guards current and every slot's users */
    struct auth_slot *current; /* owned */

    /* TLS: the set new connections get (a reference; NULL: plain HTTP).
     * Each connection holds its own reference until it closes
     * (struct tls_conn), so a reload never pulls a set from under a
     * handshake. tls, tls_start and tls_started are guarded by tls_lock. */
    pthread_mutex_t tls_lock;
    bdy_tls_set *tls;
    /* Bumped (under tls_lock) each time tls changes: connections check
     * their client again. Read without the lock on every request. */
    _Atomic uint64_t tls_gen;
    bdy_tls_set *tls_start; /* the set MHD was started with (its PEM stays readable) */
    /* Sets replaced by reloads, still referenced: a connection's close
     * (MHD_CONNECTION_NOTIFY_CLOSED) comes before MHD deinits its GnuTLS
     * session, and GnuTLS wants credentials to outlive their sessions; so
     * the server, not the last connection, drops a retired set: when
     * HTTP_TLS_RETIRED newer ones have retired (a connection open across
     * that many reloads is the one case left), or at stop. */
    bdy_tls_set *tls_retired[HTTP_TLS_RETIRED];
    size_t tls_nretired;

    struct MHD_Daemon *daemon;
    bool loopback;    /* set by start(): bound to a loopback address */
    bool tls_started; /* start() listened with TLS: a set can replace it, not turn it off */
    unsigned port;
    atomic_bool stopping;
    atomic_uint inflight; /* requests between their first and completed callbacks */

    /* Deferred requests whose connection has not completed yet, so stop()
     * can answer the open ones; defer_closed (set by stop) makes requests
     * deferred afterwards answer 503 at once. Both guarded by defer_lock. */
    pthread_mutex_t defer_lock;
    bdy_http_deferred *deferred_head;
    bool defer_closed;
    bdy_http_stream *stream_head; /* open streams, also guarded by defer_lock */
    /* Unsent bytes of all streams MHD still serves (each stream's share is
     * added by writes, taken off as MHD sends it or drops the stream). */
    atomic_size_t stream_unsent;
    size_t stream_budget;
};

/* Per-request state, created on MHD's first call and freed in completed_cb. */
struct conn {
    bdy_http_server *s;
    struct MHD_Connection *mhd;
    const struct route *route; /* NULL until routed (404/405 never are) */
    /* The route whose pattern labels the metrics: the matched one, or for a
     * 405 the first with a matching path; NULL: "unmatched". */
    const struct route *metric_route;
    struct auth_slot *slot; /* held while principal is in use */
    bdy_buf body;
    bool too_large;
    bool head;           /* a HEAD, routed as the GET it answers (c->req.method says GET) */
    bool body_unread;    /* a body where none is read: dropped as it comes */
    size_t discarded;    /* bytes of body dropped, counted from the cap on */
    size_t drain_credit; /* bytes still to drop before discarded counts (the cap) */
    bool responded;
    unsigned status;
    uint64_t start_ns;
    bool in_handler;             /* the route's handler is running: it may defer */
    bdy_http_deferred *deferred; /* set by bdy_http_defer(); the connection's reference */
    bdy_http_stream *stream;     /* set by bdy_http_stream_begin(); handed to MHD's response */
    bdy_http_request req;
    bdy_http_response resp;
};

/* Where a deferred request stands. Transitions, all under the deferred's
 * lock:
 *   PENDING   -> SUSPENDED  the handler returned; the connection is suspended
 *   PENDING   -> ANSWERED   finished (or stop()) before the handler returned:
 *                           the connection answers at once, never suspended
 *   SUSPENDED -> ANSWERED   finished (or stop()): the connection is resumed
 *   any       -> CLOSED     the connection completed (completed_cb)
 * Whoever leaves SUSPENDED resumes the connection, exactly once, while
 * holding the lock, so it can never resume a connection that is not (yet)
 * suspended. */
enum defer_state {
    DEFER_PENDING,
    DEFER_SUSPENDED,
    DEFER_ANSWERED,
    DEFER_CLOSED,
};

/* A deferred request. Two references: the connection's (dropped in
 * completed_cb) and the owner's (dropped by bdy_http_deferred_finish);
 * the last one frees. The request fields are copies, so the owner can read
 * them after the client has gone and after the server is freed.
 *
 * The auth slot moves here from the connection so that the principal stays
 * valid until the owner has finished and the handler has returned (or the
 * connection completed, whichever comes first). s is the server while
 * the connection exists, NULL after: a finish() after stop() touches only
 * this object. */
struct bdy_http_deferred {
    pthread_mutex_t lock; /* guards everything below but the list links */
    unsigned refs;
    enum defer_state state;
    bool shutdown;      /* the answer is stop()'s 503, not the owner's */
    bool owner_done;    /* finish() was called */
    bool handler_done;  /* the deferring handler has returned */
    struct conn *c;     /* NULL once CLOSED */
    bdy_http_server *s; /* NULL once CLOSED */
    struct auth_slot *slot;
    bdy_http_deferred *prev, *next; /* in s->deferred_head; guarded by s->defer_lock */
    char *method;
    char *path;
    char *content_type;
    bdy_buf body; /* the connection's body buffer, moved here */
    bdy_http_request req;
    bdy_http_response resp; /* the owner's answer; untouched by the server until finish() */
};

/* A streaming answer. Two references: the connection's, held by the MHD
 * response and dropped in stream_free_cb when MHD is done with it (or when
 * the response could not be made), and the producer's, dropped by
 * bdy_http_stream_end(). The last one frees.
 *
 * The connection is suspended only by stream_read_cb (the one place MHD
 * allows it for a response) when nothing is pending, and resumed, exactly
 * once, by whoever sets suspended back to false under the lock: a write,
 * end(), open() finding the client gone, or stop(). mhd is set while an
 * MHD response refers to the stream and cleared only in stream_free_cb,
 * which MHD never calls for a suspended connection. */
struct bdy_http_stream {
    pthread_mutex_t lock;
    unsigned refs;
    bool suspended;             /* the connection sleeps until there is something to send */
    bool ended;                 /* the producer is done: send what is pending, then finish */
    bool closed;                /* client gone or server stopping: writes fail, the body ends */
    struct MHD_Connection *mhd; /* NULL unless an MHD response refers to us */
    unsigned status;
    const char *content_type;
    bdy_buf pending; /* bytes not yet handed to MHD, from off on */
    size_t off;
    /* What MHD took ends where a write ended (all that was pending went):
     * a body closed when it does not ends with an error, not cleanly, so
     * that a client never takes half an event for a whole body. */
    bool sent_whole;
    pthread_cond_t room; /* broadcast when MHD takes bytes, or on close */
    unsigned stall_ms;   /* longest a write waits for room */
    bdy_http_server *s;
    bdy_http_stream *prev, *next; /* in s->stream_head; guarded by s->defer_lock */
    bool listed;
    /* What the request's token was granted (a copy, owned; NULL without
     * authentication): a token set loaded since that no longer grants it
     * ends the stream (bdy_http_server_set_auth). Set at begin, read under
     * s->defer_lock. */
    bdy_principal *grants;
};

/* ---- responses ------------------------------------------------------- */

void bdy_http_response_init(bdy_http_response *resp)
{
    if (resp == NULL)
        return;
    memset(resp, 0, sizeof(*resp));
    bdy_buf_init(&resp->body, BDY_HTTP_MAX_RESPONSE_BYTES);
}

void bdy_http_response_free(bdy_http_response *resp)
{
    if (resp == NULL)
        return;
    bdy_buf_free(&resp->body);
}

/* RFC 9110 token characters, for header names. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

void bdy_http_set_header(bdy_http_response *resp, const char *name, const char *value)
{
    if (resp == NULL || name == NULL || value == NULL)
        return;
    size_t nlen = strlen(name);
    size_t vlen = strlen(value);
    bool ok =
        nlen > 0 && nlen < sizeof(resp->header_names[0]) && vlen < sizeof(resp->header_values[0]);
    for (size_t i = 0; ok && i < nlen; i++)
        ok = is_tchar((unsigned char)name[i]);
    /* Control characters would let a value split the header block. */
    for (size_t i = 0; ok && i < vlen; i++)
        ok = (unsigned char)value[i] >= 0x20 && value[i] != 0x7f;
    if (!ok) {
        bdy_warn("http", "dropping invalid response header %.40s", name);
        return;
    }
    size_t slot = resp->nheaders;
    for (size_t i = 0; i < resp->nheaders; i++) {
        if (strcasecmp(resp->header_names[i], name) == 0)
            slot = i;
    }
    if (slot >= BDY_HTTP_MAX_RESPONSE_HEADERS) {
        bdy_warn("http", "dropping response header %s: too many headers", name);
        return;
    }
    memcpy(resp->header_names[slot], name, nlen + 1);
    memcpy(resp->header_values[slot], value, vlen + 1);
    if (slot == resp->nheaders)
        resp->nheaders++;
}

/* Serializes obj into resp->body. Returns 0 or a bdy_buf error (the body is
 * then empty). */
static int set_json_body(bdy_http_response *resp, json_object *obj)
{
    bdy_buf_reset(&resp->body);
    const char *text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
                                                               JSON_C_TO_STRING_NOSLASHESCAPE);
    int rc = text != NULL ? bdy_buf_appends(&resp->body, text) : BDY_ENOMEM;
    if (rc != 0)
        bdy_buf_reset(&resp->body);
    resp->content_type = "application/json";
    return rc;
}

/* When even the error object cannot be built (out of memory), this static
 * body still gives the client the API.md shape. */
static void set_fallback_error(bdy_http_response *resp)
{
    static const char body[] =
        "{\"error\":{\"code\":\"InternalError\",\"message\":\"out of memory\"}}";
    resp->status = 500;
    resp->content_type = "application/json";
    bdy_buf_reset(&resp->body);
    bdy_buf_append(&resp->body, body, sizeof(body) - 1);
}

void bdy_http_error(bdy_http_response *resp, unsigned status, const char *code, const char *message,
                    unsigned retry_after_s)
{
    if (resp == NULL)
        return;
    json_object *root = json_object_new_object();
    json_object *err = json_object_new_object();
    int rc = BDY_ENOMEM;
    if (root == NULL || err == NULL)
        goto out;
    json_object_object_add(err, "code", json_object_new_string(code ? code : "InternalError"));
    json_object_object_add(err, "message", json_object_new_string(message ? message : ""));
    if (retry_after_s > 0)
        json_object_object_add(err, "retryAfterSeconds", json_object_new_int64(retry_after_s));
    json_object_object_add(root, "error", err);
    err = NULL;
    resp->status = status;
    rc = set_json_body(resp, root);
    if (rc == 0 && retry_after_s > 0) {
        char v[16];
        snprintf(v, sizeof(v), "%u", retry_after_s);
        bdy_http_set_header(resp, "Retry-After", v);
    }
out:
    if (rc != 0)
        set_fallback_error(resp);
    json_object_put(err);
    json_object_put(root);
}

void bdy_http_json(bdy_http_response *resp, unsigned status, const void *json_object)
{
    if (resp == NULL)
        return;
    resp->status = status;
    int rc = set_json_body(resp, (struct json_object *)json_object);
    if (rc == BDY_ETOOBIG) {
        bdy_error("http", "response body over %zu bytes", BDY_HTTP_MAX_RESPONSE_BYTES);
        bdy_http_error(resp, 500, "InternalError", "response too large", 0);
    } else if (rc != 0) {
        set_fallback_error(resp);
    }
}

/* ---- request accessors ----------------------------------------------- */

const char *bdy_http_query(const bdy_http_request *req, const char *key)
{
    if (req != NULL && req->internal == NULL && req->lookup != NULL && key != NULL)
        return req->lookup(req->lookup_data, false, key);
    if (req == NULL || req->internal == NULL || key == NULL)
        return NULL;
    const struct conn *c = req->internal;
    return MHD_lookup_connection_value(c->mhd, MHD_GET_ARGUMENT_KIND, key);
}

typedef struct query_scan {
    const char *const *known;
    const char *unknown; /* the first key not in known */
} query_scan;

static enum MHD_Result query_scan_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    (void)kind;
    (void)value;
    query_scan *q = cls;
    for (size_t i = 0; q->known != NULL && q->known[i] != NULL; i++)
        if (key != NULL && strcmp(key, q->known[i]) == 0)
            return MHD_YES;
    q->unknown = key != NULL ? key : "";
    return MHD_NO; /* stop: one is enough */
}

const char *bdy_http_query_unknown(const bdy_http_request *req, const char *const *known)
{
    if (req == NULL || req->internal == NULL)
        return NULL;
    const struct conn *c = req->internal;
    query_scan q = {known, NULL};
    MHD_get_connection_values(c->mhd, MHD_GET_ARGUMENT_KIND, query_scan_cb, &q);
    return q.unknown;
}

const char *bdy_http_header(const bdy_http_request *req, const char *name)
{
    if (req != NULL && req->internal == NULL && req->lookup != NULL && name != NULL)
        return req->lookup(req->lookup_data, true, name);
    if (req == NULL || req->internal == NULL || name == NULL)
        return NULL;
    const struct conn *c = req->internal;
    return MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, name);
}

/* ---- server set-up ---------------------------------------------------- */

static void route_clear(struct route *r)
{
    free(r->method);
    free(r->pattern);
    for (size_t i = 0; i < r->nmedia; i++)
        free(r->media[i]);
}

/* Creates a server with copies of cfg's values. Caller frees with
 * bdy_http_server_free(). metrics (may be NULL) must outlive the server. */
int bdy_http_server_new(const bdy_http_config *cfg, bdy_metrics *metrics, bdy_http_server **out,
                        bdy_errbuf *eb)
{
    int rc = 0;
    bdy_http_server *s = NULL;
    bool locks = false;

    if (cfg == NULL || out == NULL)
        return bdy_fail(eb, BDY_EINVAL, "http: no configuration");
    if (cfg->listen == NULL || strlen(cfg->listen) > HTTP_MAX_LISTEN_LEN)
        return bdy_fail(eb, BDY_EINVAL, "http: listen address missing or too long");
    if (cfg->threads < 1 || cfg->threads > HTTP_MAX_THREADS)
        return bdy_fail(eb, BDY_EINVAL, "http: threads must be 1..%u, not %u", HTTP_MAX_THREADS,
                        cfg->threads);
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        rc = bdy_fail(eb, BDY_ENOMEM, "http: out of memory");
        goto out;
    }
    s->listen = strdup(cfg->listen);
    if (s->listen == NULL) {
        rc = bdy_fail(eb, BDY_ENOMEM, "http: out of memory");
        goto out;
    }
    s->threads = cfg->threads;
    s->max_body = cfg->max_body_bytes ? cfg->max_body_bytes : BDY_HTTP_DEFAULT_MAX_BODY;
    s->timeout_s = cfg->connection_timeout_s ? cfg->connection_timeout_s : HTTP_DEFAULT_TIMEOUT_S;
    s->header_limit = cfg->header_limit_bytes ? cfg->header_limit_bytes : HTTP_DEFAULT_HEADER_LIMIT;
    s->memory_limit = 2 * s->header_limit > HTTP_MIN_CONNECTION_MEMORY ? 2 * s->header_limit
                                                                       : HTTP_MIN_CONNECTION_MEMORY;
    s->max_connections = cfg->max_connections ? cfg->max_connections : HTTP_DEFAULT_MAX_CONNECTIONS;
    s->stream_budget =
        cfg->stream_budget_bytes ? cfg->stream_budget_bytes : BDY_HTTP_DEFAULT_STREAM_BUDGET;
    atomic_init(&s->stopping, false);
    atomic_init(&s->inflight, 0);
    if ((s->current = calloc(1, sizeof(*s->current))) == NULL) {
        rc = bdy_fail(eb, BDY_ENOMEM, "out of memory");
        goto out;
    }
    if (pthread_mutex_init(&s->auth_lock, NULL) != 0) {
        rc = bdy_fail(eb, BDY_ENOMEM, "http: cannot create a mutex");
        goto out;
    }
    if (pthread_mutex_init(&s->defer_lock, NULL) != 0) {
        pthread_mutex_destroy(&s->auth_lock);
        rc = bdy_fail(eb, BDY_ENOMEM, "http: cannot create a mutex");
        goto out;
    }
    if (pthread_mutex_init(&s->tls_lock, NULL) != 0) {
        pthread_mutex_destroy(&s->auth_lock);
        pthread_mutex_destroy(&s->defer_lock);
        rc = bdy_fail(eb, BDY_ENOMEM, "http: cannot create a mutex");
        goto out;
    }
    locks = true;

    if (metrics != NULL) {
        static const char *const req_labels[] = {"method", "route", "code", NULL};
        static const char *const dur_labels[] = {"route", NULL};
        s->requests_total =
            bdy_metrics_counter(metrics, "bindery_http_requests_total",
                                "HTTP requests by method, route and status code.", req_labels);
        s->duration = bdy_metrics_histogram(
            metrics, "bindery_http_request_duration_seconds",
            "Time from the request headers to the response being sent, by route.", dur_labels,
            duration_bounds, sizeof(duration_bounds) / sizeof(duration_bounds[0]));
        if (s->requests_total == NULL || s->duration == NULL) {
            rc = bdy_fail(eb, BDY_EINVAL, "http: cannot register the HTTP metrics");
            goto out;
        }
        static const char *const unmatched[] = {"unmatched", NULL};
        s->unmatched_duration = bdy_metric_child(s->duration, unmatched);
        bdy_metric_family *tls_failures = bdy_metrics_counter(
            metrics, "bindery_http_tls_handshake_failures_total",
            "Connections closed because their TLS handshake failed (a client that does not speak "
            "TLS or does not trust the certificate, or a scan).",
            NULL);
        s->tls_failures = tls_failures != NULL ? bdy_metric_child(tls_failures, NULL) : NULL;
    }
    *out = s;
    s = NULL;
out:
    if (s != NULL && !locks) {
        free(s->current);
        free(s->listen);
        free(s);
    } else {
        bdy_http_server_free(s);
    }
    return rc;
}

static bool valid_method(const char *m)
{
    size_t n = strlen(m);
    if (n == 0 || n > 16)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_tchar((unsigned char)m[i]))
            return false;
    }
    return true;
}

/* Adds a route. Not thread-safe: routes are registered before start(), when
 * no MHD thread reads the table. Returns BDY_EBUSY once started. */
int bdy_http_route(bdy_http_server *s, const char *method, const char *pattern,
                   bdy_route_match match, bdy_verb verb, bdy_http_handler_cb cb, void *data)
{
    int rc = 0;
    struct route r = {0};
    if (s == NULL || pattern == NULL || pattern[0] != '/' ||
        strlen(pattern) > HTTP_MAX_PATTERN_LEN || cb == NULL ||
        (method != NULL && !valid_method(method)) ||
        (match != BDY_ROUTE_EXACT && match != BDY_ROUTE_PREFIX) ||
        ((unsigned)verb & ~(unsigned)(BDY_VERB_ALLOCATE | BDY_VERB_RELEASE | BDY_VERB_READ |
                                      BDY_VERB_ADMIN | BDY_VERB_AUTHENTICATED)) != 0 ||
        (verb & BDY_VERB_AUTHENTICATED && verb != BDY_VERB_AUTHENTICATED))
        return BDY_EINVAL;
    if (s->daemon != NULL)
        return BDY_EBUSY;
    if (s->nroutes >= HTTP_MAX_ROUTES)
        return BDY_ETOOBIG;
    r.match = match;
    r.verb = verb;
    r.cb = cb;
    r.data = data;
    r.pattern = strdup(pattern);
    r.method = method != NULL ? strdup(method) : NULL;
    if (r.pattern == NULL || (method != NULL && r.method == NULL)) {
        rc = BDY_ENOMEM;
        goto out;
    }
    if (s->duration != NULL) {
        const char *values[] = {pattern, NULL};
        r.duration = bdy_metric_child(s->duration, values);
    }
    struct route *grown = realloc(s->routes, (s->nroutes + 1) * sizeof(*grown));
    if (grown == NULL) {
        rc = BDY_ENOMEM;
        goto out;
    }
    s->routes = grown;
    s->routes[s->nroutes++] = r;
    memset(&r, 0, sizeof(r));
out:
    route_clear(&r);
    return rc;
}

int bdy_http_route_errors(bdy_http_server *s, bdy_http_error_fn fn)
{
    if (s == NULL || fn == NULL || s->nroutes == 0)
        return BDY_EINVAL;
    if (s->daemon != NULL)
        return BDY_EBUSY;
    s->routes[s->nroutes - 1].errors = fn;
    return 0;
}

int bdy_http_route_accept(bdy_http_server *s, const char *const *media_types)
{
    int rc = 0;
    char *copies[HTTP_MAX_MEDIA_TYPES] = {0};
    size_t n = 0;
    if (s == NULL || media_types == NULL || s->nroutes == 0)
        return BDY_EINVAL;
    if (s->daemon != NULL)
        return BDY_EBUSY;
    for (; media_types[n] != NULL; n++) {
        if (n >= HTTP_MAX_MEDIA_TYPES || media_types[n][0] == '\0' ||
            strlen(media_types[n]) > HTTP_MAX_MEDIA_TYPE_LEN) {
            rc = BDY_EINVAL;
            goto out;
        }
        copies[n] = strdup(media_types[n]);
        if (copies[n] == NULL) {
            rc = BDY_ENOMEM;
            goto out;
        }
    }
    if (n == 0) {
        rc = BDY_EINVAL;
        goto out;
    }
    struct route *r = &s->routes[s->nroutes - 1];
    for (size_t i = 0; i < r->nmedia; i++)
        free(r->media[i]);
    memcpy(r->media, copies, sizeof(copies));
    r->nmedia = n;
    n = 0; /* the route owns the copies now */
out:
    for (size_t i = 0; i < n && i < HTTP_MAX_MEDIA_TYPES; i++)
        free(copies[i]);
    return rc;
}

/* ---- authentication slots --------------------------------------------- */

static void auth_slot_free(struct auth_slot *slot)
{
    if (slot == NULL)
        return;
    bdy_auth_free(slot->auth);
    free(slot);
}

static void stream_close_locked(bdy_http_stream *st);

/* Ends the streams (watches) of tokens that auth, the set just put in
 * force, no longer grants what they were granted: revoking a token ends
 * the access it gave, not only its next request. */
static void close_revoked_streams(bdy_http_server *s, const bdy_auth *auth)
{
    unsigned n = 0;
    pthread_mutex_lock(&s->defer_lock);
    for (bdy_http_stream *st = s->stream_head; st != NULL; st = st->next) {
        if (st->grants == NULL || bdy_auth_still_grants(auth, st->grants))
            continue;
        pthread_mutex_lock(&st->lock);
        n += !st->closed;
        stream_close_locked(st);
        pthread_mutex_unlock(&st->lock);
    }
    pthread_mutex_unlock(&s->defer_lock);
    if (n > 0)
        bdy_info("http",
                 "ended %u streams (watches) of tokens the new token set no longer "
                 "grants them",
                 n);
}

int bdy_http_server_set_auth(bdy_http_server *s, bdy_auth *auth)
{
    if (s == NULL) {
        bdy_auth_free(auth);
        return BDY_EINVAL;
    }
    struct auth_slot *next = calloc(1, sizeof(*next));
    if (next == NULL) {
        bdy_auth_free(auth);
        return BDY_ENOMEM;
    }
    next->auth = auth;
    pthread_mutex_lock(&s->auth_lock);
    struct auth_slot *old = s->current;
    bdy_auth_carry_buckets(auth, old->auth);
    s->current = next;
    old->retired = true;
    bool unused = old->users == 0; /* else its last user frees it */
    bool open_public = auth == NULL && s->daemon != NULL && !s->loopback;
    pthread_mutex_unlock(&s->auth_lock);
    if (unused)
        auth_slot_free(old);
    close_revoked_streams(s, auth);
    if (open_public)
        bdy_error("http",
                  "authentication turned off while listening on %s: authenticated "
                  "routes now answer 401",
                  s->listen);
    return 0;
}

static struct auth_slot *auth_acquire(bdy_http_server *s)
{
    pthread_mutex_lock(&s->auth_lock);
    struct auth_slot *slot = s->current;
    slot->users++;
    pthread_mutex_unlock(&s->auth_lock);
    return slot;
}

static void auth_release(bdy_http_server *s, struct auth_slot *slot)
{
    if (slot == NULL)
        return;
    pthread_mutex_lock(&s->auth_lock);
    bool last = --slot->users == 0 && slot->retired;
    pthread_mutex_unlock(&s->auth_lock);
    if (last)
        auth_slot_free(slot);
}

/* ---- TLS ---------------------------------------------------------------- */

/* A TLS connection's state, MHD's socket context: the set it started with
 * (a reference) and what its client certificate proved, worked out at its
 * first request. MHD serves one connection on one thread at a time, so
 * this needs no lock. */
struct tls_conn {
    bdy_tls_set *set;
    /* The client certificate's check: against the server's set of
     * generation checked_gen, at checked_ns (monotonic); 0: not yet. */
    uint64_t checked_gen;
    uint64_t checked_ns;
    bdy_tls_peer peer;
    char common_name[BDY_TLS_MAX_COMMON_NAME];
    char why[192];
};

int bdy_http_server_set_tls(bdy_http_server *s, bdy_tls_set *set)
{
    if (s == NULL || set == NULL)
        return BDY_EINVAL;
    pthread_mutex_lock(&s->tls_lock);
    if (s->daemon != NULL && !s->tls_started) {
        pthread_mutex_unlock(&s->tls_lock);
        return BDY_EINVAL;
    }
    bdy_tls_set *old = s->tls;
    s->tls = bdy_tls_ref(set);
    atomic_fetch_add(&s->tls_gen, 1);
    bdy_tls_set *dropped = NULL;
    if (old != NULL) {
        if (s->tls_nretired == HTTP_TLS_RETIRED) {
            dropped = s->tls_retired[0];
            memmove(s->tls_retired, s->tls_retired + 1,
                    (HTTP_TLS_RETIRED - 1) * sizeof(bdy_tls_set *));
            s->tls_nretired--;
        }
        s->tls_retired[s->tls_nretired++] = old;
    }
    pthread_mutex_unlock(&s->tls_lock);
    bdy_tls_unref(dropped);
    return 0;
}

bool bdy_http_server_tls(const bdy_http_server *s)
{
    return s != NULL && s->tls_started;
}

/* MHD's connection callback: a new TLS connection gets the set in force
 * before its handshake begins, and gives it back when it closes. */
static void connection_cb(void *cls, struct MHD_Connection *mhd, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    bdy_http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        struct tls_conn *t = *socket_context;
        if (t != NULL) {
            bdy_tls_unref(t->set);
            free(t);
            *socket_context = NULL;
        }
        return;
    }
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (info == NULL || info->tls_session == NULL)
        return;
    gnutls_session_t session = (gnutls_session_t)info->tls_session;
    struct tls_conn *t = calloc(1, sizeof(*t));
    if (t != NULL) {
        pthread_mutex_lock(&s->tls_lock);
        t->set = bdy_tls_ref(s->tls);
        pthread_mutex_unlock(&s->tls_lock);
    }
    if (t == NULL || bdy_tls_attach(t->set, session) != 0) {
        /* Fail closed: MHD's own credentials are the start-up certificate,
         * perhaps rotated out since; without any the handshake fails. */
        gnutls_credentials_clear(session);
        if (t != NULL)
            bdy_tls_unref(t->set);
        free(t);
        return;
    }
    *socket_context = t;
}

/* The connection's TLS state, its client certificate checked against the
 * set in force (again once that changed, or HTTP_TLS_RECHECK_NS after the
 * last check). NULL for plain HTTP. */
static struct tls_conn *tls_peer_of(struct conn *c)
{
    const union MHD_ConnectionInfo *ctx =
        MHD_get_connection_info(c->mhd, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct tls_conn *t = ctx != NULL ? ctx->socket_context : NULL;
    if (t == NULL)
        return t;
    uint64_t now = bdy_monotonic_ns();
    uint64_t gen = atomic_load(&c->s->tls_gen);
    if (t->checked_ns != 0 && t->checked_gen == gen && now - t->checked_ns < HTTP_TLS_RECHECK_NS)
        return t; /* the common case: no lock, no reference */
    pthread_mutex_lock(&c->s->tls_lock);
    gen = atomic_load(&c->s->tls_gen);
    bdy_tls_set *set = bdy_tls_ref(c->s->tls != NULL ? c->s->tls : t->set);
    pthread_mutex_unlock(&c->s->tls_lock);
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c->mhd, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    t->peer = info != NULL && info->tls_session != NULL
                  ? bdy_tls_verify_peer(set, (gnutls_session_t)info->tls_session, t->common_name,
                                        sizeof(t->common_name), t->why, sizeof(t->why))
                  : BDY_TLS_PEER_NONE;
    t->checked_gen = gen;
    t->checked_ns = now > 0 ? now : 1;
    bdy_tls_unref(set);
    return t;
}

/* ---- request handling ------------------------------------------------- */

static const char *verb_name(bdy_verb v)
{
    switch (v) {
    case BDY_VERB_ALLOCATE:
        return "allocate";
    case BDY_VERB_RELEASE:
        return "release";
    case BDY_VERB_READ:
        return "read";
    case BDY_VERB_ADMIN:
        return "admin";
    default:
        return "this operation";
    }
}

/* Method label values are limited to the standard set so a client cannot
 * create metric children with made-up methods. */
static const char *method_label(const char *m)
{
    static const char *const known[] = {"GET",    "HEAD",    "POST",  "PUT",
                                        "DELETE", "OPTIONS", "PATCH", NULL};
    for (size_t i = 0; known[i] != NULL; i++) {
        if (strcmp(m, known[i]) == 0)
            return known[i];
    }
    return "other";
}

static bool path_matches(const struct route *r, const char *path)
{
    if (r->match == BDY_ROUTE_EXACT)
        return strcmp(path, r->pattern) == 0;
    return strncmp(path, r->pattern, strlen(r->pattern)) == 0;
}

/* Turns c->resp into an MHD response and queues it. Called from an MHD
 * callback that is allowed to queue (never while body data is passed in). */
static enum MHD_Result queue_response(struct conn *c)
{
    bdy_http_response *resp = &c->resp;
    if (resp->status < 100 || resp->status > 599) {
        bdy_error("http", "%s %s: handler left status %u", c->req.method, c->req.path,
                  resp->status);
        bdy_http_error(resp, 500, "InternalError", "the handler produced no response", 0);
    }
    size_t len = resp->body.len;
    char *data = bdy_buf_steal(&resp->body);
    if (data == NULL)
        return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(data);
        return MHD_NO;
    }
    if (resp->status != 204 && resp->status != 304)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                resp->content_type ? resp->content_type : "application/json");
    for (size_t i = 0; i < resp->nheaders; i++)
        MHD_add_response_header(r, resp->header_names[i], resp->header_values[i]);
    /* While stopping, ask keep-alive clients to go so they stop sending
     * requests that would hold the shutdown up. */
    if (atomic_load(&c->s->stopping))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(c->mhd, resp->status, r);
    MHD_destroy_response(r);
    if (ret == MHD_YES) {
        c->responded = true;
        c->status = resp->status;
    }
    return ret;
}

static bool has_header(const bdy_http_response *resp, const char *name)
{
    for (size_t i = 0; i < resp->nheaders; i++)
        if (strcasecmp(resp->header_names[i], name) == 0)
            return true;
    return false;
}

/* Words an answer of the server's own in the shape of the route the path
 * names (the one taken, or for a 405 one of the path's), API.md's when
 * none does. */
static void own_error(struct conn *c, unsigned status, const char *code, const char *message,
                      unsigned retry_after_s)
{
    const struct route *r = c->route != NULL ? c->route : c->metric_route;
    bdy_http_error_fn fn = r != NULL && r->errors != NULL ? r->errors : bdy_http_error;
    fn(&c->resp, status, code, message, retry_after_s);
}

static enum MHD_Result reject(struct conn *c, unsigned status, const char *code,
                              const char *message, unsigned retry_after_s)
{
    own_error(c, status, code, message, retry_after_s);
    /* Every 401 says how to authenticate (RFC 9110, 11.6.1); a caller may
     * have said more (error="invalid_token"). */
    if (status == 401 && !has_header(&c->resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE))
        bdy_http_set_header(&c->resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"bindery\"");
    return queue_response(c);
}

/* Whether the parameters of a Content-Type (what follows its media type)
 * name no charset but UTF-8: the API is UTF-8 (API.md), and a body sent as
 * latin1 was read as UTF-8 all the same. */
static bool charset_utf8(const char *params)
{
    /* Parameters split at the semicolons outside quoted values. */
    for (const char *p = params; *p != '\0';) {
        while (*p == ';' || *p == ' ' || *p == '\t')
            p++;
        const char *start = p;
        bool quoted = false;
        while (*p != '\0' && (quoted || *p != ';')) {
            if (*p == '\\' && quoted && p[1] != '\0')
                p++;
            else if (*p == '"')
                quoted = !quoted;
            p++;
        }
        if (strncasecmp(start, "charset=", 8) != 0)
            continue;
        const char *v = start + 8;
        size_t n = (size_t)(p - v);
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
            n--;
        if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
            v++;
            n -= 2;
        }
        return (n == 5 && strncasecmp(v, "utf-8", 5) == 0) ||
               (n == 4 && strncasecmp(v, "utf8", 4) == 0);
    }
    return true;
}

/* True when the request's Content-Type is one of r's media types,
 * application/json by default, with no charset but UTF-8. */
static bool media_type_ok(const struct route *r, const char *content_type)
{
    for (size_t i = 0; i < r->nmedia; i++) {
        if (strcmp(r->media[i], BDY_HTTP_ACCEPT_ANY) == 0)
            return true;
    }
    if (content_type == NULL)
        return false;
    const char *p = content_type;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t n = strcspn(p, "; \t");
    if (!charset_utf8(p + n))
        return false;
    if (r->nmedia == 0)
        return n == strlen("application/json") && strncasecmp(p, "application/json", n) == 0;
    for (size_t i = 0; i < r->nmedia; i++) {
        if (n == strlen(r->media[i]) && strncasecmp(p, r->media[i], n) == 0)
            return true;
    }
    return false;
}

/* Routes the request: sets c->route or answers 404/405. */
static enum MHD_Result route_request(struct conn *c)
{
    bdy_http_server *s = c->s;
    const char *methods[16];
    size_t nmethods = 0;
    bool path_seen = false;
    /* HEAD is GET without the body (RFC 9110 9.3.2), which MHD leaves out:
     * load balancers check health with it. */
    bool head = strcmp(c->req.method, MHD_HTTP_METHOD_HEAD) == 0;
    for (size_t i = 0; i < s->nroutes; i++) {
        const struct route *r = &s->routes[i];
        if (!path_matches(r, c->req.path))
            continue;
        if (r->method == NULL || strcmp(r->method, c->req.method) == 0 ||
            (head && strcmp(r->method, MHD_HTTP_METHOD_GET) == 0)) {
            /* Handlers see a GET (the Kubernetes API tells reads from
             * writes by the method); MHD still knows it answers a HEAD. */
            if (head) {
                c->req.method = MHD_HTTP_METHOD_GET;
                c->head = true;
            }
            c->route = r;
            c->metric_route = r;
            return MHD_YES;
        }
        if (!path_seen)
            c->metric_route = r;
        path_seen = true;
        bool dup = false;
        for (size_t j = 0; j < nmethods && !dup; j++)
            dup = strcmp(methods[j], r->method) == 0;
        if (!dup && nmethods < sizeof(methods) / sizeof(methods[0]))
            methods[nmethods++] = r->method;
    }
    if (!path_seen)
        return reject(c, 404, "NotFound", "no such path", 0);
    /* Methods are at most 16 characters, so 16 of them fit, and the HEAD
     * that every GET route answers too. */
    char allow[17 * 18 + 1] = "";
    size_t n = 0;
    bool get = false;
    bool head_listed = false;
    for (size_t j = 0; j < nmethods; j++) {
        n += (size_t)snprintf(allow + n, sizeof(allow) - n, "%s%s", j ? ", " : "", methods[j]);
        get = get || strcmp(methods[j], MHD_HTTP_METHOD_GET) == 0;
        head_listed = head_listed || strcmp(methods[j], MHD_HTTP_METHOD_HEAD) == 0;
    }
    if (get && !head_listed)
        snprintf(allow + n, sizeof(allow) - n, ", " MHD_HTTP_METHOD_HEAD);
    char msg[400];
    snprintf(msg, sizeof(msg), "method %.16s is not allowed here; allowed: %s", c->req.method,
             allow);
    bdy_http_set_header(&c->resp, MHD_HTTP_HEADER_ALLOW, allow);
    return reject(c, 405, "MethodNotAllowed", msg, 0);
}

/* Authenticates and authorizes the verb; answers 401/403/429 or sets
 * c->req.principal (NULL when authentication is off on loopback). */
static enum MHD_Result authenticate(struct conn *c)
{
    bdy_http_server *s = c->s;
    c->slot = auth_acquire(s);
    const bdy_auth *auth = c->slot->auth;
    if (auth == NULL) {
        if (s->loopback)
            return MHD_YES;
        return reject(c, 401, "Unauthorized",
                      "authentication is required but no token set is loaded", 0);
    }
    /* A client certificate the token file names comes first; one it does
     * not name, or one not trusted, leaves the bearer token to decide (as
     * Kubernetes' authenticators do), and the 401 says what was wrong with
     * both. */
    const struct tls_conn *t = tls_peer_of(c);
    const bdy_principal *p = NULL;
    char cert_problem[320] = "";
    if (t != NULL && t->peer == BDY_TLS_PEER_TRUSTED) {
        p = bdy_auth_authenticate_certificate(auth, t->common_name);
        if (p == NULL)
            snprintf(cert_problem, sizeof(cert_problem),
                     "; the client certificate of common name \"%s\" is in no entry of the "
                     "token file",
                     t->common_name);
    } else if (t != NULL && t->peer == BDY_TLS_PEER_REFUSED) {
        snprintf(cert_problem, sizeof(cert_problem), "; the client certificate was refused: %s",
                 t->why);
    }
    const char *header =
        MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (p == NULL)
        p = bdy_auth_authenticate(auth, header);
    if (p == NULL) {
        bool missing = header == NULL;
        /* Another scheme (kubectl's Basic with the written kubeconfig's
         * user) sent no bearer token at all: said so, not "invalid". */
        bool other_scheme =
            !missing && !(strncasecmp(header, "Bearer", 6) == 0 &&
                          (header[6] == '\0' || header[6] == ' ' || header[6] == '\t'));
        bdy_http_set_header(&c->resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                            missing || other_scheme
                                ? "Bearer realm=\"bindery\""
                                : "Bearer realm=\"bindery\", error=\"invalid_token\"");
        char msg[400];
        char scheme[32];
        snprintf(scheme, sizeof(scheme), "%.*s", (int)strcspn(header ? header : "", " "),
                 header ? header : "");
        if (other_scheme)
            snprintf(msg, sizeof(msg),
                     "missing bearer token: the Authorization header is of scheme \"%s\"; "
                     "only \"Bearer\" tokens (and client certificates) are accepted%s",
                     scheme, cert_problem);
        else
            snprintf(msg, sizeof(msg), "%s%s",
                     missing ? "missing bearer token" : "invalid bearer token", cert_problem);
        return reject(c, 401, "Unauthorized", msg, 0);
    }
    if (c->route->verb != BDY_VERB_AUTHENTICATED && !bdy_principal_has_verb(p, c->route->verb)) {
        char msg[300];
        snprintf(msg, sizeof(msg), "%s \"%s\" may not %s", bdy_principal_kind(p),
                 bdy_principal_name(p), verb_name(c->route->verb));
        return reject(c, 403, "Forbidden", msg, 0);
    }
    unsigned retry_after = 0;
    if (!bdy_principal_take(p, &retry_after)) {
        char msg[300];
        snprintf(msg, sizeof(msg), "%s %s is over its request rate", bdy_principal_kind(p),
                 bdy_principal_name(p));
        return reject(c, 429, "RateLimited", msg, retry_after > 0 ? retry_after : 1);
    }
    c->req.principal = p;
    return MHD_YES;
}

/* Adds one header ("key: value" and CRLF) or query argument ("key=value"
 * and '&') to the byte count in cls. */
static enum MHD_Result add_value_size(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    size_t separators = kind == MHD_GET_ARGUMENT_KIND ? 2 : 4;
    *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + separators;
    return MHD_YES;
}

/* Bytes of the request line and headers, as sent give or take whitespace
 * and escapes. MHD hands us the path without its query, so the query's
 * arguments are counted on their own. */
static size_t header_bytes(struct conn *c, const char *url, const char *version)
{
    size_t n = strlen(c->req.method) + strlen(url) + strlen(version) + 4;
    MHD_get_connection_values(c->mhd, MHD_HEADER_KIND, add_value_size, &n);
    MHD_get_connection_values(c->mhd, MHD_GET_ARGUMENT_KIND, add_value_size, &n);
    return n;
}

/* The first call, with the headers in: everything that can be decided
 * before reading the body is decided here, so a rejected request never
 * makes us buffer its body. */
static enum MHD_Result begin_request(struct conn *c, const char *url, const char *version)
{
    if (header_bytes(c, url, version) > c->s->header_limit) {
        char msg[128];
        snprintf(msg, sizeof(msg), "request line and headers over %zu bytes", c->s->header_limit);
        return reject(c, 431, "RequestHeaderFieldsTooLarge", msg, 0);
    }
    enum MHD_Result ret = route_request(c);
    if (ret != MHD_YES || c->responded)
        return ret;
    if (c->route->verb != BDY_VERB_NONE) {
        ret = authenticate(c);
        if (ret != MHD_YES || c->responded)
            return ret;
    }

    const char *length =
        MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *encoding =
        MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    bool has_body = encoding != NULL;
    bool writes = strcmp(c->req.method, "POST") == 0 || strcmp(c->req.method, "PUT") == 0 ||
                  strcmp(c->req.method, "PATCH") == 0;
    bool reads_body = writes || strcmp(c->req.method, "DELETE") == 0;
    if (length != NULL) {
        /* MHD has already refused a malformed Content-Length with 400. */
        char *end = NULL;
        errno = 0;
        unsigned long long n = strtoull(length, &end, 10);
        /* A client waiting for 100 Continue has sent no body: answered at
         * once. Others are sending it: read to its end and dropped, so
         * that they get to read the answer. */
        const char *expect =
            MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
        bool drain = errno == 0 && reads_body && n - c->s->max_body <= HTTP_DISCARD_LIMIT &&
                     (expect == NULL || strcasecmp(expect, "100-continue") != 0);
        if (errno != 0 || n > c->s->max_body) {
            if (drain) {
                /* take_body drops it, finish_request answers 413; the cap's
                 * worth does not count towards what may be dropped. */
                c->too_large = true;
                c->discarded = 0;
                c->drain_credit = c->s->max_body;
            } else {
                char msg[128];
                snprintf(msg, sizeof(msg), "request body over %zu bytes", c->s->max_body);
                return reject(c, 413, "PayloadTooLarge", msg, 0);
            }
        }
        has_body = has_body || n > 0;
    }
    if (writes && has_body && !media_type_ok(c->route, c->req.content_type)) {
        char msg[300];
        snprintf(msg, sizeof(msg), "Content-Type %.200s is not supported here",
                 c->req.content_type ? c->req.content_type : "(none)");
        return reject(c, 415, "UnsupportedMediaType", msg, 0);
    }
    /* Only writes and DELETE (whose options travel in a body) read one; a
     * GET's is never looked at, and /healthz and /readyz take no token, so
     * buffering theirs would let anyone hold maxBodyBytes per connection. */
    c->body_unread = has_body && !reads_body;
    return MHD_YES;
}

/* A piece of body. Returns MHD_NO (close the connection) only once a client
 * has sent HTTP_DISCARD_LIMIT bytes past the cap, or of a body not read. */
static enum MHD_Result take_body(struct conn *c, const char *data, size_t len)
{
    if (!c->too_large && !c->body_unread) {
        int rc = bdy_buf_append(&c->body, data, len);
        if (rc == 0)
            return MHD_YES;
        if (rc != BDY_ETOOBIG)
            return MHD_NO;
        c->too_large = true;
        bdy_buf_free(&c->body);
    }
    size_t credit = len < c->drain_credit ? len : c->drain_credit;
    c->drain_credit -= credit;
    c->discarded += len - credit;
    if (c->discarded > (c->too_large ? HTTP_DISCARD_LIMIT : HTTP_UNREAD_LIMIT)) {
        if (c->too_large)
            bdy_warn("http", "%s %s: body far over the %zu-byte limit, closing the connection",
                     c->req.method, c->req.path, c->s->max_body);
        return MHD_NO;
    }
    return MHD_YES;
}

/* ---- deferred answers ------------------------------------------------- */

static void deferred_free(bdy_http_deferred *d)
{
    if (d == NULL)
        return;
    pthread_mutex_destroy(&d->lock);
    free(d->method);
    free(d->path);
    free(d->content_type);
    bdy_buf_free(&d->body);
    bdy_http_response_free(&d->resp);
    free(d);
}

/* Gives the auth slot back. Called with d->lock held, once nobody reads
 * the principal any more; d->s is alive whenever it is set. */
static void release_slot_locked(bdy_http_deferred *d)
{
    if (d->slot != NULL && d->s != NULL)
        auth_release(d->s, d->slot);
    d->slot = NULL;
}

/* Makes the request a handler is answering a deferred one. Only the
 * handler's own request, while the handler runs, and only once: anything
 * else (a handler unit test's request, a second call) gets NULL, as does
 * running out of memory, and the handler then answers through resp as
 * usual. If the server is stopping, the request is deferred but answered
 * 503 ShuttingDown as soon as the handler returns. The caller owns the
 * result until it passes it to bdy_http_deferred_finish(). Thread: the
 * handler's. */
bdy_http_deferred *bdy_http_defer(const bdy_http_request *req)
{
    bdy_http_deferred *d = NULL;
    if (req == NULL || req->internal == NULL) {
        bdy_warn("http", "bdy_http_defer: not a request the server is handling");
        return NULL;
    }
    struct conn *c = req->internal;
    if (req != &c->req || !c->in_handler || c->deferred != NULL || c->stream != NULL) {
        bdy_error("http", "%s %s: bdy_http_defer called outside its handler or twice",
                  c->req.method, c->req.path);
        return NULL;
    }
    bdy_http_server *s = c->s;
    d = calloc(1, sizeof(*d));
    if (d == NULL)
        goto out;
    if (pthread_mutex_init(&d->lock, NULL) != 0) {
        free(d);
        d = NULL;
        goto out;
    }
    bdy_buf_init(&d->body, s->max_body);
    bdy_http_response_init(&d->resp);
    /* Copies, because MHD frees the originals with the connection, which
     * may end before the owner finishes (stop(), or a client gone). */
    d->method = strdup(c->req.method);
    d->path = strdup(c->req.path);
    if (c->req.content_type != NULL)
        d->content_type = strdup(c->req.content_type);
    if (d->method == NULL || d->path == NULL ||
        (c->req.content_type != NULL && d->content_type == NULL)) {
        deferred_free(d);
        d = NULL;
        goto out;
    }
    /* The body moves instead: c->req.body keeps pointing at it while the
     * handler runs, which is safe because d outlives the connection. */
    d->body = c->body;
    bdy_buf_init(&c->body, s->max_body);
    d->req = c->req;
    d->req.method = d->method;
    d->req.path = d->path;
    d->req.content_type = d->content_type;
    d->req.body = d->body.data != NULL ? d->body.data : "";
    d->req.body_len = d->body.len;
    d->req.internal = NULL; /* query and header lookups need the connection */
    d->refs = 2;
    d->state = DEFER_PENDING;
    d->c = c;
    d->s = s;
    d->slot = c->slot;
    c->slot = NULL;
    c->deferred = d;

    pthread_mutex_lock(&s->defer_lock);
    d->next = s->deferred_head;
    if (d->next != NULL)
        d->next->prev = d;
    s->deferred_head = d;
    /* Checked under the same lock stop() sets it with, so a request is
     * either answered by close_deferred() or born answered. */
    if (s->defer_closed) {
        d->state = DEFER_ANSWERED;
        d->shutdown = true;
    }
    pthread_mutex_unlock(&s->defer_lock);
out:
    if (d == NULL)
        bdy_error("http", "%s %s: cannot defer: out of memory", c->req.method, c->req.path);
    return d;
}

/* The owner's response to fill, until finish(). Thread: the owner's. */
bdy_http_response *bdy_http_deferred_response(bdy_http_deferred *d)
{
    return d != NULL ? &d->resp : NULL;
}

/* The copied request; its query and header lookups return NULL. The
 * principal is valid until finish(), or, once bdy_http_server_stop() has
 * answered the request, only while the caller keeps the token set alive.
 * Thread: the owner's. */
const bdy_http_request *bdy_http_deferred_request(bdy_http_deferred *d)
{
    return d != NULL ? &d->req : NULL;
}

/* Whether the client of a connection MHD leaves alone (suspended) has
 * hung up: its FIN came. Asked of poll, not of a one-byte peek: a TLS
 * client sends close_notify before its FIN, and those bytes, unread, would
 * make a peek read data, not the end, for as long as the connection
 * waits. */
static bool peer_hung_up(struct MHD_Connection *mhd)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci == NULL)
        return false;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

bool bdy_http_deferred_client_gone(bdy_http_deferred *d)
{
    if (d == NULL)
        return false;
    bool gone = false;
    pthread_mutex_lock(&d->lock);
    if (d->state == DEFER_CLOSED) {
        gone = true;
    } else if (d->state == DEFER_SUSPENDED) {
        /* Suspended, so MHD leaves the socket alone and the connection
         * stays alive while we hold the lock (see close_deferred). The
         * client's FIN means it has given up on this request. */
        gone = peer_hung_up(d->c->mhd);
    }
    pthread_mutex_unlock(&d->lock);
    return gone;
}

/* Hands the owner's answer to the connection (resuming it if it is
 * suspended) and drops the owner's reference; after stop() or a vanished
 * client the answer is just dropped. Any thread, a handler's included:
 * MHD allows resuming from callbacks. d must not be used afterwards. */
void bdy_http_deferred_finish(bdy_http_deferred *d)
{
    if (d == NULL)
        return;
    pthread_mutex_lock(&d->lock);
    d->owner_done = true;
    if (d->state == DEFER_PENDING) {
        /* The handler has not returned: it will see ANSWERED and queue the
         * answer without suspending. */
        d->state = DEFER_ANSWERED;
    } else if (d->state == DEFER_SUSPENDED) {
        /* Suspended, so the connection and its daemon are alive, and they
         * stay so while we hold the lock (see close_deferred). */
        d->state = DEFER_ANSWERED;
        MHD_resume_connection(d->c->mhd);
    }
    if (d->handler_done)
        release_slot_locked(d);
    bool last = --d->refs == 0;
    pthread_mutex_unlock(&d->lock);
    if (last)
        deferred_free(d);
}

/* Queues a deferred request's answer: the owner's response, or stop()'s
 * 503. Runs on the connection's worker once the state is ANSWERED; from
 * then on only this thread touches the deferred's state. */
static enum MHD_Result answer_deferred(struct conn *c)
{
    bdy_http_deferred *d = c->deferred;
    pthread_mutex_lock(&d->lock);
    bool shutdown = d->shutdown;
    if (!shutdown) {
        /* The owner has finished, so its response is ours to send. */
        bdy_http_response mine = c->resp;
        c->resp = d->resp;
        d->resp = mine;
    }
    if (d->owner_done)
        release_slot_locked(d);
    pthread_mutex_unlock(&d->lock);
    if (shutdown) {
        /* Whatever the handler left in resp goes, headers included. */
        bdy_http_response_free(&c->resp);
        bdy_http_response_init(&c->resp);
        own_error(c, 503, "ShuttingDown", "the server is shutting down", SHUTDOWN_RETRY_AFTER_S);
    }
    return queue_response(c);
}

/* The deferring handler has returned: suspend the connection until the
 * answer is there, or queue it at once if it already is. */
static enum MHD_Result suspend_or_answer(struct conn *c)
{
    bdy_http_deferred *d = c->deferred;
    pthread_mutex_lock(&d->lock);
    d->handler_done = true;
    /* The token set must not be held while a request waits (up to minutes):
     * a reload would block on it. Owners read the principal before
     * deferring; from here on the deferred request has none. */
    release_slot_locked(d);
    d->req.principal = NULL;
    bool answered = d->state != DEFER_PENDING;
    if (!answered) {
        d->state = DEFER_SUSPENDED;
        /* Under the lock, so no finisher can resume before the suspend. */
        MHD_suspend_connection(c->mhd);
    }
    pthread_mutex_unlock(&d->lock);
    return answered ? answer_deferred(c) : MHD_YES;
}

/* The connection of a deferred request has completed: unlist it, give the
 * principal's slot back and drop the connection's reference. Runs on the
 * connection's worker (completed_cb), so the server is alive. */
static void deferred_close(bdy_http_server *s, bdy_http_deferred *d)
{
    pthread_mutex_lock(&s->defer_lock);
    if (d->prev != NULL)
        d->prev->next = d->next;
    else
        s->deferred_head = d->next;
    if (d->next != NULL)
        d->next->prev = d->prev;
    pthread_mutex_unlock(&s->defer_lock);

    pthread_mutex_lock(&d->lock);
    d->state = DEFER_CLOSED;
    d->c = NULL;
    release_slot_locked(d);
    d->s = NULL;
    bool last = --d->refs == 0;
    pthread_mutex_unlock(&d->lock);
    if (last)
        deferred_free(d);
}

/* Answers every deferred request still waiting with 503 ShuttingDown and
 * makes later bdy_http_defer() calls do the same, so that no connection
 * stays suspended: MHD cannot stop with suspended connections. A finisher
 * that resumes holds the deferred's lock, so once this has passed every
 * listed request none can be suspended or resumed any more. */
static void close_deferred(bdy_http_server *s)
{
    unsigned n = 0;
    pthread_mutex_lock(&s->defer_lock);
    s->defer_closed = true;
    for (bdy_http_deferred *d = s->deferred_head; d != NULL; d = d->next) {
        pthread_mutex_lock(&d->lock);
        if (d->state == DEFER_SUSPENDED)
            MHD_resume_connection(d->c->mhd);
        if (d->state == DEFER_PENDING || d->state == DEFER_SUSPENDED) {
            d->state = DEFER_ANSWERED;
            d->shutdown = true;
            n++;
        }
        pthread_mutex_unlock(&d->lock);
    }
    pthread_mutex_unlock(&s->defer_lock);
    if (n > 0)
        bdy_info("http", "answering %u waiting requests with 503: shutting down", n);
}

/* ---- streaming answers ------------------------------------------------ */

#define HTTP_STREAM_BLOCK ((size_t)16 * 1024)

static void stream_unlist(bdy_http_stream *st)
{
    bdy_http_server *s = st->s;
    pthread_mutex_lock(&s->defer_lock);
    if (st->listed) {
        if (st->prev != NULL)
            st->prev->next = st->next;
        else
            s->stream_head = st->next;
        if (st->next != NULL)
            st->next->prev = st->prev;
        st->listed = false;
    }
    pthread_mutex_unlock(&s->defer_lock);
}

static void stream_free(bdy_http_stream *st)
{
    if (st == NULL)
        return;
    pthread_cond_destroy(&st->room);
    pthread_mutex_destroy(&st->lock);
    bdy_buf_free(&st->pending);
    bdy_principal_free(st->grants);
    free(st);
}

/* Drops one reference (the lock held on entry is released). */
static void stream_unref_locked(bdy_http_stream *st)
{
    bool last = --st->refs == 0;
    pthread_mutex_unlock(&st->lock);
    if (last)
        stream_free(st);
}

/* Wakes the connection if it sleeps. Called with st->lock held. */
static void stream_wake_locked(bdy_http_stream *st)
{
    if (st->suspended && st->mhd != NULL) {
        st->suspended = false;
        MHD_resume_connection(st->mhd);
    }
}

/* Creates the stream for the handler's own request. Thread: the handler's. */
bdy_http_stream *bdy_http_stream_begin(const bdy_http_request *req, unsigned status,
                                       const char *content_type)
{
    if (req == NULL || req->internal == NULL || status < 200 || status > 599)
        return NULL;
    struct conn *c = req->internal;
    if (req != &c->req || !c->in_handler || c->deferred != NULL || c->stream != NULL) {
        bdy_error("http", "%s %s: bdy_http_stream_begin called outside its handler or twice",
                  c->req.method, c->req.path);
        return NULL;
    }
    bdy_http_stream *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return NULL;
    if (pthread_mutex_init(&st->lock, NULL) != 0) {
        free(st);
        return NULL;
    }
    if (bdy_cond_init_monotonic(&st->room) != 0) {
        pthread_mutex_destroy(&st->lock);
        free(st);
        return NULL;
    }
    /* MHD closes a connection whose client takes nothing for its timeout,
     * which wakes a waiting write; this bounds the wait all the same. */
    st->stall_ms = 2000u * (c->s->timeout_s ? c->s->timeout_s : 1) + 1000u;
    bdy_buf_init(&st->pending, BDY_HTTP_STREAM_MAX_PENDING);
    st->sent_whole = true;
    st->refs = 2;
    st->status = status;
    st->content_type = content_type != NULL ? content_type : "application/json";
    st->s = c->s;
    if (c->req.principal != NULL && (st->grants = bdy_principal_copy(c->req.principal)) == NULL) {
        stream_free(st); /* without the copy a revoked token could not end it */
        return NULL;
    }
    pthread_mutex_lock(&c->s->defer_lock);
    st->listed = true;
    st->next = c->s->stream_head;
    if (st->next != NULL)
        st->next->prev = st;
    c->s->stream_head = st;
    /* Checked under the locks stop() and set_auth() hold: a stream is
     * either closed by close_streams() or close_revoked_streams(), or born
     * closed. A token set put in force since the request authenticated
     * (its body came slowly) may have revoked it already. */
    bool revoked = false;
    if (st->grants != NULL) {
        pthread_mutex_lock(&c->s->auth_lock);
        revoked =
            c->s->current != c->slot && !bdy_auth_still_grants(c->s->current->auth, st->grants);
        pthread_mutex_unlock(&c->s->auth_lock);
    }
    st->closed = c->s->defer_closed || revoked;
    pthread_mutex_unlock(&c->s->defer_lock);
    c->stream = st;
    return st;
}

/* Queues len bytes. Thread-safe. */
int bdy_http_stream_write(bdy_http_stream *st, const void *data, size_t len)
{
    if (st == NULL || (data == NULL && len > 0))
        return BDY_EINVAL;
    pthread_mutex_lock(&st->lock);
    int rc = 0;
    if (st->closed || st->ended) {
        rc = BDY_ESHUTDOWN;
        goto out;
    }
    /* A full buffer waits for the client to take bytes: the producer (a
     * watch's initial list, say) goes at the client's pace rather than
     * being cut off. A client that takes nothing has its connection closed
     * by MHD's timeout, which ends the wait. */
    struct timespec until;
    bdy_deadline_after_ms(CLOCK_MONOTONIC, st->stall_ms, &until);
    for (;;) {
        /* Over the server's budget, the streams holding more than their
         * share are cut, not waited for: others may be stuck too. Cut at
         * once, what waits included, so the budget has its bytes back now
         * rather than after the client's timeout. */
        size_t unsent = st->pending.len - st->off;
        if (unsent + len > BDY_HTTP_STREAM_FAIR_SHARE &&
            atomic_load(&st->s->stream_unsent) + len > st->s->stream_budget) {
            atomic_fetch_sub(&st->s->stream_unsent, unsent);
            st->off = st->pending.len;
            st->closed = true;
            pthread_cond_broadcast(&st->room);
            stream_wake_locked(st); /* so MHD ends the body and frees the connection */
            rc = BDY_ETOOBIG;
            goto out;
        }
        /* Sent bytes leave the buffer, so that its cap bounds the bytes
         * that wait, not all a long watch has sent. Moved down once they
         * are half of it, or the new bytes need the room. */
        if (st->off > 0 &&
            (2 * st->off >= st->pending.len || st->pending.len + len > st->pending.cap)) {
            bdy_buf_drop_front(&st->pending, st->off);
            st->off = 0;
        }
        if (st->pending.len + len <= st->pending.cap || len > st->pending.cap)
            break;
        if (pthread_cond_timedwait(&st->room, &st->lock, &until) == ETIMEDOUT)
            break;
        if (st->closed || st->ended) {
            rc = BDY_ESHUTDOWN;
            goto out;
        }
    }
    rc = bdy_buf_append(&st->pending, data, len);
    if (rc == 0) {
        atomic_fetch_add(&st->s->stream_unsent, len);
        stream_wake_locked(st);
    }
out:
    pthread_mutex_unlock(&st->lock);
    return rc;
}

/* False once the stream cannot deliver any more. A sleeping connection is
 * checked for a hang-up here: MHD does not watch suspended sockets, so
 * without this an idle watch whose client left would live until its
 * timeout. The socket is only looked at while suspended, when MHD keeps it
 * open for certain. Thread-safe. */
bool bdy_http_stream_open(bdy_http_stream *st)
{
    if (st == NULL)
        return false;
    pthread_mutex_lock(&st->lock);
    if (!st->closed && st->suspended && st->mhd != NULL && peer_hung_up(st->mhd)) {
        st->closed = true;
        stream_wake_locked(st); /* so MHD finishes and frees the connection */
    }
    bool open = !st->closed && !st->ended;
    pthread_mutex_unlock(&st->lock);
    return open;
}

/* Ends the body after what is pending and drops the producer's reference. */
void bdy_http_stream_end(bdy_http_stream *st)
{
    if (st == NULL)
        return;
    pthread_mutex_lock(&st->lock);
    st->ended = true;
    stream_wake_locked(st);
    stream_unref_locked(st);
}

/* MHD asks for the next piece of body (on the connection's worker). */
static ssize_t stream_read_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    bdy_http_stream *st = cls;
    ssize_t n = 0;
    pthread_mutex_lock(&st->lock);
    size_t avail = st->pending.len - st->off;
    if (avail > 0 && !st->closed) {
        size_t take = avail < max ? avail : max;
        memcpy(buf, st->pending.data + st->off, take);
        st->off += take;
        st->sent_whole = st->off == st->pending.len;
        atomic_fetch_sub(&st->s->stream_unsent, take);
        n = (ssize_t)take;
        pthread_cond_broadcast(&st->room);
    } else if (st->closed && !st->sent_whole) {
        /* Cut in the middle of a write (over the budget): the connection
         * is aborted, so the client sees a broken body, not a clean end
         * after half a JSON line. */
        n = MHD_CONTENT_READER_END_WITH_ERROR;
    } else if (st->closed || st->ended) {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        /* Nothing to send: sleep until a write, end() or stop() wakes us. */
        st->suspended = true;
        MHD_suspend_connection(st->mhd);
    }
    pthread_mutex_unlock(&st->lock);
    return n;
}

/* MHD is done with the response (the connection completed or closed). */
static void stream_free_cb(void *cls)
{
    bdy_http_stream *st = cls;
    stream_unlist(st);
    pthread_mutex_lock(&st->lock);
    /* What was never sent leaves the budget; closed, the stream takes no
     * more (the server may be gone when its producer lets it go). */
    atomic_fetch_sub(&st->s->stream_unsent, st->pending.len - st->off);
    st->off = st->pending.len;
    st->suspended = false;
    st->closed = true;
    st->mhd = NULL;
    pthread_cond_broadcast(&st->room);
    stream_unref_locked(st);
}

/* The handler began a stream: queue the chunked response. */
static enum MHD_Result queue_stream(struct conn *c)
{
    bdy_http_stream *st = c->stream;
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, HTTP_STREAM_BLOCK,
                                                               stream_read_cb, st, stream_free_cb);
    if (r == NULL) {
        stream_free_cb(st); /* the connection's reference */
        return reject(c, 500, "InternalError", "cannot create a streaming response", 0);
    }
    pthread_mutex_lock(&st->lock);
    st->mhd = c->mhd;
    pthread_mutex_unlock(&st->lock);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, st->content_type);
    for (size_t i = 0; i < c->resp.nheaders; i++)
        MHD_add_response_header(r, c->resp.header_names[i], c->resp.header_values[i]);
    /* No timeout of its own: a stream with nothing to send is suspended,
     * and MHD times out no suspended connection, so a quiet watch lives as
     * long as its producer wants. A stream with data that its client does
     * not read is not suspended; it is closed after connectionTimeoutSeconds
     * without progress, like any connection, instead of holding its slot
     * and its pending bytes for good. */
    enum MHD_Result ret = MHD_queue_response(c->mhd, st->status, r);
    MHD_destroy_response(r); /* on failure this calls stream_free_cb */
    if (ret == MHD_YES) {
        c->responded = true;
        c->status = st->status;
    }
    return ret;
}

/* Ends every open stream (server stopping): MHD cannot stop with suspended
 * connections, and producers must learn that writing is pointless. */
/* Closes a stream: writes fail, the body ends, a waiting write wakes.
 * Called with st->lock held. */
static void stream_close_locked(bdy_http_stream *st)
{
    st->closed = true;
    stream_wake_locked(st);
    pthread_cond_broadcast(&st->room);
}

static void close_streams(bdy_http_server *s)
{
    pthread_mutex_lock(&s->defer_lock);
    for (bdy_http_stream *st = s->stream_head; st != NULL; st = st->next) {
        pthread_mutex_lock(&st->lock);
        stream_close_locked(st);
        pthread_mutex_unlock(&st->lock);
    }
    pthread_mutex_unlock(&s->defer_lock);
}

/* The request is complete: run the handler and answer, or suspend the
 * connection if the handler deferred. */
static enum MHD_Result finish_request(struct conn *c)
{
    if (c->too_large) {
        char msg[128];
        snprintf(msg, sizeof(msg), "request body over %zu bytes", c->s->max_body);
        return reject(c, 413, "PayloadTooLarge", msg, 0);
    }
    /* The listen socket stays open until MHD_stop_daemon (see stop()):
     * requests that arrive meanwhile are turned away here. */
    if (atomic_load(&c->s->stopping))
        return reject(c, 503, "ShuttingDown", "the server is shutting down",
                      SHUTDOWN_RETRY_AFTER_S);
    /* A token set put in force since the headers were authenticated (the
     * body came slowly) may have revoked the token: the handler must not
     * act on what the old set granted. Checked as streams are. */
    if (c->req.principal != NULL) {
        pthread_mutex_lock(&c->s->auth_lock);
        bool revoked = c->s->current != c->slot &&
                       !bdy_auth_still_grants(c->s->current->auth, c->req.principal);
        pthread_mutex_unlock(&c->s->auth_lock);
        if (revoked) {
            bdy_http_set_header(&c->resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Bearer realm=\"bindery\", error=\"invalid_token\"");
            return reject(c, 401, "Unauthorized",
                          "the token's grants changed while the request was read", 0);
        }
    }
    c->req.body = c->body.data != NULL ? c->body.data : "";
    c->req.body_len = c->body.len;
    c->in_handler = true;
    c->route->cb(c->route->data, &c->req, &c->resp);
    c->in_handler = false;
    if (c->deferred != NULL)
        return suspend_or_answer(c);
    if (c->stream != NULL)
        return queue_stream(c);
    return queue_response(c);
}

static struct conn *conn_new(bdy_http_server *s, struct MHD_Connection *mhd, const char *url,
                             const char *method)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->s = s;
    c->mhd = mhd;
    c->start_ns = bdy_monotonic_ns();
    bdy_buf_init(&c->body, s->max_body);
    bdy_http_response_init(&c->resp);
    c->req.method = method;
    c->req.path = url;
    c->req.body = "";
    c->req.content_type =
        MHD_lookup_connection_value(mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    c->req.internal = c;
    atomic_fetch_add(&s->inflight, 1);
    return c;
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *mhd, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **req_cls)
{
    bdy_http_server *s = cls;
    struct conn *c = *req_cls;
    if (c == NULL) {
        c = conn_new(s, mhd, url, method);
        if (c == NULL)
            return MHD_NO;
        *req_cls = c;
        return begin_request(c, url, version);
    }
    if (*upload_data_size > 0) {
        enum MHD_Result ret = take_body(c, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return ret;
    }
    /* Deferred requests come back here once resumed, answer ready. */
    if (c->deferred != NULL)
        return answer_deferred(c);
    return finish_request(c);
}

/* MHD's end-of-request notice, also for requests cut off mid-body or by a
 * timeout: records metrics for answered requests and frees the state. A
 * deferred request is counted here too, once answered, so its duration
 * runs from the headers to the answer. */
static void completed_cb(void *cls, struct MHD_Connection *mhd, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)mhd;
    bdy_http_server *s = cls;
    struct conn *c = *req_cls;
    if (c == NULL)
        return;
    *req_cls = NULL;
    if (c->responded && s->requests_total != NULL) {
        char code[8];
        snprintf(code, sizeof(code), "%u", c->status);
        const struct route *r = c->metric_route;
        const char *values[] = {c->head ? MHD_HTTP_METHOD_HEAD : method_label(c->req.method),
                                r ? r->pattern : "unmatched", code, NULL};
        bdy_metric_inc(bdy_metric_child(s->requests_total, values));
        double seconds = (double)(bdy_monotonic_ns() - c->start_ns) / 1e9;
        bdy_metric_observe(r ? r->duration : s->unmatched_duration, seconds);
        bdy_debug("http", "%s %s %u %.3f ms%s", c->req.method, c->req.path, c->status,
                  seconds * 1e3, c->deferred != NULL ? " (deferred)" : "");
    } else if (!c->responded) {
        bdy_debug("http", "%s %s ended without a response (termination %d)", c->req.method,
                  c->req.path, (int)toe);
    }
    if (c->deferred != NULL)
        deferred_close(s, c->deferred);
    auth_release(s, c->slot);
    bdy_buf_free(&c->body);
    bdy_http_response_free(&c->resp);
    free(c);
    atomic_fetch_sub(&s->inflight, 1);
}

/* MHD's messages go to our log. The ones about clients hanging up are
 * routine on a busy server (and a client can cause any number of them), so
 * they go out at debug level; everything else is a warning. */
static void mhd_log_cb(void *cls, const char *fmt, va_list ap)
{
    static const char *const client_caused[] = {
        "Connection was closed by remote side", "The connection was forcibly closed by remote peer",
        "Application reported internal error", /* our own choice to cut a client */
    };
    bdy_http_server *s = cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    /* MHD says this of every failed TLS handshake, whatever failed: a
     * client's doing, and as frequent as clients or scanners make it. So
     * counted, and said at most once a minute, in words that help. */
    if (strncmp(msg, "Error: received handshake message out of context", 48) == 0) {
        bdy_metric_inc(s->tls_failures);
        uint64_t held = 0;
        if (bdy_log_admit(&s->tls_failure_log, 60000, &held))
            bdy_warn("http",
                     "a TLS handshake failed: a client that speaks plain HTTP, does not trust "
                     "the certificate or offers no common protocol (%llu more since the last "
                     "such line; bindery_http_tls_handshake_failures_total counts them)",
                     (unsigned long long)held);
        return;
    }
    bdy_log_level level = BDY_LOG_WARN;
    for (size_t i = 0; i < sizeof(client_caused) / sizeof(client_caused[0]); i++) {
        if (strncmp(msg, client_caused[i], strlen(client_caused[i])) == 0)
            level = BDY_LOG_DEBUG;
    }
    bdy_log(level, "http", "%s", msg);
}

/* ---- listening -------------------------------------------------------- */

/* Parses "host:port" (IPv4 dotted quad or "localhost") or "[v6]:port". */
static int parse_listen(const char *text, struct sockaddr_storage *ss, socklen_t *len,
                        bool *loopback, bdy_errbuf *eb)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *port_text = NULL;
    memset(ss, 0, sizeof(*ss));
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':' || (size_t)(close - text - 1) >= sizeof(host))
            goto bad;
        memcpy(host, text + 1, (size_t)(close - text - 1));
        host[close - text - 1] = '\0';
        port_text = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon == NULL || (size_t)(colon - text) >= sizeof(host))
            goto bad;
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = '\0';
        if (strchr(host, ':') != NULL)
            goto bad; /* IPv6 addresses need brackets */
        port_text = colon + 1;
    }
    size_t digits = strspn(port_text, "0123456789");
    if (digits == 0 || digits > 5 || port_text[digits] != '\0')
        goto bad;
    unsigned long port = strtoul(port_text, NULL, 10);
    if (port > 65535)
        goto bad;

    if (text[0] == '[') {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
        if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
            goto bad;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*a6);
        const unsigned char *b = a6->sin6_addr.s6_addr;
        *loopback = IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr) ||
                    (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr) && b[12] == 127);
        return 0;
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
        goto bad;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    *len = sizeof(*a4);
    *loopback = (ntohl(a4->sin_addr.s_addr) >> 24) == 127;
    return 0;
bad:
    return bdy_fail(eb, BDY_EINVAL,
                    "http: bad listen address \"%s\": want host:port with an IPv4 address or "
                    "localhost, or [IPv6]:port",
                    text);
}

static int refuse_open_listen(const char *listen, bdy_errbuf *eb)
{
    return bdy_fail(eb, BDY_EFORBIDDEN,
                    "http: refusing to listen on %s without authentication: configure a "
                    "token file or listen on a loopback address",
                    listen);
}

int bdy_http_listen_check(const char *listen, bool auth_configured, bdy_errbuf *eb)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    bool loopback = false;
    int rc = parse_listen(listen, &ss, &len, &loopback, eb);
    if (rc == 0 && !auth_configured && !loopback)
        rc = refuse_open_listen(listen, eb);
    return rc;
}

/* Creates, binds and listens on the socket ourselves rather than letting MHD
 * do it, so a taken port is reported with its errno. Returns the fd or a
 * negative BDY_E*. */
static int open_listener(const bdy_http_server *s, const struct sockaddr_storage *ss, socklen_t len,
                         bdy_errbuf *eb)
{
    int rc = 0;
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return bdy_fail(eb, BDY_EIO, "http: socket: %s", strerror(errno));
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
        rc = bdy_fail(eb, BDY_EIO, "http: SO_REUSEADDR: %s", strerror(errno));
        goto out;
    }
    if (ss->ss_family == AF_INET6) {
        /* "[::]" means every address, IPv4 included, whatever the host's
         * bindv6only default is. */
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)ss;
        int v6only = IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr) ? 0 : 1;
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) != 0) {
            rc = bdy_fail(eb, BDY_EIO, "http: IPV6_V6ONLY: %s", strerror(errno));
            goto out;
        }
    }
    if (bind(fd, (const struct sockaddr *)ss, len) != 0) {
        int e = errno;
        rc = bdy_fail(eb, e == EADDRNOTAVAIL ? BDY_EINVAL : BDY_EIO,
                      "http: cannot listen on %s: %s", s->listen, strerror(e));
        goto out;
    }
    if (listen(fd, SOMAXCONN) != 0) {
        rc = bdy_fail(eb, BDY_EIO, "http: listen on %s: %s", s->listen, strerror(errno));
        goto out;
    }
out:
    if (rc != 0) {
        close(fd);
        return rc;
    }
    return fd;
}

/* Starts MHD's threads. Not thread-safe against stop()/free(). */
int bdy_http_server_start(bdy_http_server *s, bdy_errbuf *eb)
{
    int rc = 0;
    int fd = -1;
    struct sockaddr_storage ss;
    socklen_t len = 0;
    bool loopback = false;

    if (s == NULL)
        return bdy_fail(eb, BDY_EINVAL, "http: no server");
    if (s->daemon != NULL)
        return bdy_fail(eb, BDY_EBUSY, "http: already started");
    rc = parse_listen(s->listen, &ss, &len, &loopback, eb);
    if (rc != 0)
        goto out;
    pthread_mutex_lock(&s->auth_lock);
    bool auth_off = s->current->auth == NULL;
    s->loopback = loopback;
    pthread_mutex_unlock(&s->auth_lock);
    if (auth_off && !loopback) {
        rc = refuse_open_listen(s->listen, eb);
        goto out;
    }
    fd = open_listener(s, &ss, len, eb);
    if (fd < 0) {
        rc = fd;
        fd = -1;
        goto out;
    }
    /* Suspend/resume for deferred answers; ITC (implied by it) wakes a
     * worker when a connection is resumed. */
    unsigned flags =
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    pthread_mutex_lock(&s->tls_lock);
    bdy_tls_set *tls = bdy_tls_ref(s->tls);
    pthread_mutex_unlock(&s->tls_lock);
    if (tls != NULL && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        bdy_tls_unref(tls);
        rc = bdy_fail(eb, BDY_EINVAL, "http: this libmicrohttpd is built without TLS");
        goto out;
    }
    if (tls != NULL)
        flags |= MHD_USE_TLS;
    atomic_store(&s->stopping, false);
    pthread_mutex_lock(&s->defer_lock);
    s->defer_closed = false;
    pthread_mutex_unlock(&s->defer_lock);
    /* MHD documents the logger as the first option so start-up messages go
     * through it too. A pool of one is no pool: MHD warns about it. */
    struct MHD_OptionItem opts[12] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log_cb, s},
        {MHD_OPTION_LISTEN_SOCKET, fd, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)s->timeout_s, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)s->memory_limit, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)s->max_connections, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)completed_cb, s},
    };
    size_t nopts = 6;
    if (s->threads > 1)
        opts[nopts++] =
            (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)s->threads, NULL};
    if (tls != NULL) {
        /* MHD wants a certificate at start; each connection then gets the
         * set in force when it is accepted (connection_cb). TLS 1.2 and 1.3
         * only. */
        opts[nopts++] =
            (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)bdy_tls_cert_pem(tls)};
        opts[nopts++] =
            (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)bdy_tls_key_pem(tls)};
        opts[nopts++] = (struct MHD_OptionItem){
            MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"};
        opts[nopts++] =
            (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)connection_cb, s};
    }
    opts[nopts] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, access_cb, s, MHD_OPTION_ARRAY, opts,
                                 MHD_OPTION_END);
    if (s->daemon == NULL) {
        bdy_tls_unref(tls);
        rc = bdy_fail(eb, BDY_EIO, "http: cannot start the server on %s (see the log)", s->listen);
        goto out;
    }
    pthread_mutex_lock(&s->tls_lock);
    s->tls_start = tls;
    s->tls_started = tls != NULL;
    pthread_mutex_unlock(&s->tls_lock);
    fd = -1; /* MHD owns the socket and closes it in MHD_stop_daemon */
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info != NULL ? info->port : 0;
    if (auth_off)
        bdy_info("http", "listening on %s (port %u)%s without authentication: loopback only",
                 s->listen, s->port, tls != NULL ? " with TLS" : "");
    else
        bdy_info("http", "listening on %s (port %u)%s", s->listen, s->port,
                 tls != NULL ? " with TLS" : "");
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

unsigned bdy_http_server_port(const bdy_http_server *s)
{
    return s != NULL && s->daemon != NULL ? s->port : 0;
}

/* Stops the server: answers deferred requests still waiting with 503,
 * then waits up to HTTP_STOP_GRACE_MS for requests in flight. Must not be
 * called from a handler (it would wait for itself). Once it returns every
 * connection has completed, so no deferred request refers to the server. */
void bdy_http_server_stop(bdy_http_server *s)
{
    if (s == NULL || s->daemon == NULL)
        return;
    /* No MHD_quiesce_daemon: with epoll worker threads it races the workers'
     * own removal of the listen socket from their epoll sets and MHD aborts
     * the process ("Failed to remove listen FD from epoll set", an open MHD
     * defect in 0.9.75). New requests get 503 ShuttingDown instead, and
     * MHD_stop_daemon closes the socket. */
    atomic_store(&s->stopping, true);
    close_deferred(s);
    close_streams(s);
    for (unsigned waited = 0; atomic_load(&s->inflight) > 0 && waited < HTTP_STOP_GRACE_MS;
         waited += 10) {
        struct timespec ts = {0, 10L * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    s->port = 0;
    pthread_mutex_lock(&s->tls_lock);
    bdy_tls_unref(s->tls_start);
    s->tls_start = NULL;
    s->tls_started = false;
    /* Every connection has closed and its session is gone. */
    for (size_t i = 0; i < s->tls_nretired; i++)
        bdy_tls_unref(s->tls_retired[i]);
    s->tls_nretired = 0;
    pthread_mutex_unlock(&s->tls_lock);
}

void bdy_http_server_free(bdy_http_server *s)
{
    if (s == NULL)
        return;
    bdy_http_server_stop(s);
    for (size_t i = 0; i < s->nroutes; i++)
        route_clear(&s->routes[i]);
    free(s->routes);
    pthread_mutex_destroy(&s->defer_lock);
    pthread_mutex_destroy(&s->auth_lock);
    pthread_mutex_destroy(&s->tls_lock);
    bdy_tls_unref(s->tls);
    for (size_t i = 0; i < s->tls_nretired; i++) /* replaced before a start */
        bdy_tls_unref(s->tls_retired[i]);
    /* Every connection has completed (stop), and a deferred request gives
     * its slot back when its handler returns: the current slot is unused. */
    auth_slot_free(s->current);
    free(s->listen);
    free(s);
}
