/* The HTTP server: libmicrohttpd (internal epoll thread pool) with a small
 * router, request limits, bearer-token auth and the API.md error shape.
 *
 * Handlers are plain functions over bdy_http_request / bdy_http_response so
 * they can be unit-tested without sockets. A handler runs on one of the
 * server's threads and must not block except on the durable store write.
 */
#ifndef BINDERY_HTTP_H
#define BINDERY_HTTP_H

#include "bindery/auth.h"
#include "bindery/error.h"
#include "bindery/metrics.h"
#include "bindery/util.h"

#include <stdbool.h>
#include <stddef.h>

#define BDY_HTTP_DEFAULT_MAX_BODY ((size_t)64 * 1024)
#define BDY_HTTP_MAX_RESPONSE_HEADERS 8
/* The largest response body; a handler's larger answer becomes a 500. */
#define BDY_HTTP_MAX_RESPONSE_BYTES ((size_t)16 * 1024 * 1024)

typedef struct bdy_http_server bdy_http_server;

/* Zero in any field but listen and threads selects the default shown. */
typedef struct bdy_http_config {
    const char *listen;            /* "127.0.0.1:8080", "[::1]:8080", "0.0.0.0:8080",
                                      "localhost:8080" */
    unsigned threads;              /* thread-pool size, >= 1 */
    size_t max_body_bytes;         /* 413 PayloadTooLarge beyond; BDY_HTTP_DEFAULT_MAX_BODY */
    unsigned connection_timeout_s; /* idle connection timeout; 30 */
    size_t header_limit_bytes;     /* request line + headers over this get 431
                                      RequestHeaderFieldsTooLarge; 0: 16 KiB. MHD's own
                                      connection buffer is twice this (at least 32 KiB);
                                      past that MHD answers 431 itself, in HTML */
    unsigned max_connections;      /* 1024 */
    size_t stream_budget_bytes;    /* bytes all streams may hold unsent together;
                                      BDY_HTTP_DEFAULT_STREAM_BUDGET (see the streams) */
} bdy_http_config;

typedef struct bdy_http_request {
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* URL path without the query string */
    const char *body;   /* NUL-terminated, may be "" */
    size_t body_len;
    const char *content_type;       /* NULL when absent */
    const bdy_principal *principal; /* NULL when auth is off */
    void *internal;                 /* the server's connection; opaque */
    /* A request with no connection behind it (a handler driven by a test or
     * a fuzz driver): its query parameters (header false) and headers, NULL
     * when absent. Unused when internal is set. */
    const char *(*lookup)(void *data, bool header, const char *key);
    void *lookup_data;
} bdy_http_request;

/* Query parameter / header lookups (NULL when absent). */
const char *bdy_http_query(const bdy_http_request *req, const char *key);
/* The key of the first query parameter of req that is not in known (a
 * NULL-terminated list; NULL: no parameter is known), or NULL when every
 * one is. Valid while the request is. A request without a connection
 * (lookup set) has none to list. */
const char *bdy_http_query_unknown(const bdy_http_request *req, const char *const *known);
const char *bdy_http_header(const bdy_http_request *req, const char *name);

typedef struct bdy_http_response {
    unsigned status;
    const char *content_type; /* static string; default application/json */
    bdy_buf body;             /* capped; owned by the server */
    size_t nheaders;
    char header_names[BDY_HTTP_MAX_RESPONSE_HEADERS][32];
    char header_values[BDY_HTTP_MAX_RESPONSE_HEADERS][256];
} bdy_http_response;

/* For handler unit tests: a response as the server hands it to a handler
 * (status 0, body empty with the server's cap). bdy_http_response_free()
 * releases the body; both accept NULL. */
void bdy_http_response_init(bdy_http_response *resp);
void bdy_http_response_free(bdy_http_response *resp);

/* Sets (or replaces, matching the name case-insensitively) a response
 * header. Names longer than 31 bytes or values longer than 255, values with
 * control characters, and headers past BDY_HTTP_MAX_RESPONSE_HEADERS are
 * dropped with a warning in the log. */
void bdy_http_set_header(bdy_http_response *resp, const char *name, const char *value);

/* Writes the API.md error body {"error":{"code","message"[,"retryAfterSeconds"]}}
 * with status; retry_after_s > 0 also sets Retry-After. */
void bdy_http_error(bdy_http_response *resp, unsigned status, const char *code, const char *message,
                    unsigned retry_after_s);

/* Sets status and a JSON body from a json-c object (borrowed). */
void bdy_http_json(bdy_http_response *resp, unsigned status, const void *json_object);

typedef void (*bdy_http_handler_cb)(void *data, const bdy_http_request *req,
                                    bdy_http_response *resp);

typedef enum bdy_route_match {
    BDY_ROUTE_EXACT,  /* path == pattern */
    BDY_ROUTE_PREFIX, /* path starts with pattern */
} bdy_route_match;

/* Creates a server (not yet listening). metrics may be NULL. */
int bdy_http_server_new(const bdy_http_config *cfg, bdy_metrics *metrics, bdy_http_server **out,
                        bdy_errbuf *eb);

/* Registers a route; method NULL matches any method. verb is the verb a
 * principal needs (BDY_VERB_NONE: no authentication at all, e.g. /healthz).
 * Routes are tried in registration order. Call before bdy_http_server_start. */
int bdy_http_route(bdy_http_server *s, const char *method, const char *pattern,
                   bdy_route_match match, bdy_verb verb, bdy_http_handler_cb cb, void *data);

/* Replaces the request media types accepted by the route registered last
 * (default: "application/json" only), e.g. for the Kubernetes-compatible API
 * whose PATCH takes merge-patch+json and json-patch+json. media_types is
 * NULL-terminated, at most 8 entries, copied. Parameters such as charset are
 * ignored when matching; BDY_HTTP_ACCEPT_ANY accepts any body. A POST, PUT or
 * PATCH whose body has another (or no) Content-Type gets 415
 * UnsupportedMediaType. Call before bdy_http_server_start. */
#define BDY_HTTP_ACCEPT_ANY "*/*"
int bdy_http_route_accept(bdy_http_server *s, const char *const *media_types);

/* How the answers the server makes itself on a route are worded (401,
 * 403, 405, 413, 415, 429, 503 while stopping, ...): bdy_http_error's
 * API.md shape unless the route registered last is given another, as the
 * Kubernetes-compatible API gives its routes Kubernetes' Status, which
 * kubectl reads. fn must set resp's status and body, and Retry-After when
 * retry_after_s > 0. Call before bdy_http_server_start. */
typedef void (*bdy_http_error_fn)(bdy_http_response *resp, unsigned status, const char *code,
                                  const char *message, unsigned retry_after_s);
int bdy_http_route_errors(bdy_http_server *s, bdy_http_error_fn fn);

/* Deferred answers. A handler that cannot answer yet (a claim waiting for a
 * cold world) calls bdy_http_defer() and returns without touching resp. The
 * connection is suspended — no worker thread waits — until some thread
 * fills bdy_http_deferred_response() and calls bdy_http_deferred_finish().
 * If the client goes away meanwhile, finish() just frees. Every deferred
 * request must be finished exactly once; bdy_http_server_stop() finishes
 * the ones still open with 503. The deferred object is valid until finish()
 * returns. Thread-safe. */
typedef struct bdy_http_deferred bdy_http_deferred;
bdy_http_deferred *bdy_http_defer(const bdy_http_request *req);
bdy_http_response *bdy_http_deferred_response(bdy_http_deferred *d);
/* The method, path and body of the deferred request stay readable; its
 * principal is NULL once the deferring handler has returned (read it before
 * deferring), and query/header lookups on it return NULL. defer() returns
 * NULL when not called from the request's own handler or called twice. */
const bdy_http_request *bdy_http_deferred_request(bdy_http_deferred *d);
/* True when the client of a suspended request has closed its end (or the
 * connection is gone), so an answer would reach no one; false while it
 * may still be listening or when that cannot be told. A client can leave
 * right after it was asked, so this is a hint for work not worth doing,
 * never a promise that an answer is read. */
bool bdy_http_deferred_client_gone(bdy_http_deferred *d);
void bdy_http_deferred_finish(bdy_http_deferred *d);

/* Streaming answers (chunked transfer encoding), e.g. a Kubernetes watch.
 * A handler calls bdy_http_stream_begin() and returns; the server then
 * sends the status, the headers the handler set on resp and the content
 * type, and from there on every piece a producer hands to
 * bdy_http_stream_write() goes out as it comes (one chunk per write, no
 * worker thread waits in between: the connection is suspended while there
 * is nothing to send). bdy_http_stream_end() sends what is left and ends
 * the body cleanly; the stream object is gone when it returns.
 *
 * Writes fail with BDY_ESHUTDOWN once the client has gone or the server is
 * stopping. A write that would leave more than BDY_HTTP_STREAM_MAX_PENDING
 * bytes waiting blocks until the client has taken enough (so a producer
 * goes at the client's pace); it fails with BDY_ETOOBIG only when no room
 * came within about twice the connection timeout, or when len alone is
 * over the cap (the producer should end the stream then). bdy_http_stream_open() tells a producer
 * with nothing to write whether to keep going; it also notices a client that hung up on an idle
 * stream (which MHD itself cannot see while the connection sleeps). bdy_http_server_stop() ends
 * every open stream. A stream with nothing to send has no idle timeout (its producer decides when
 * it ends); one whose client reads nothing of what waits is closed after the server's connection
 * timeout, and writes then fail with BDY_ESHUTDOWN. The producer must call end() exactly once, from
 * any thread; write() and open() are thread-safe. begin() returns NULL outside the request's own
 * handler, when the request already deferred or streams, or without memory; the handler then
 * answers through resp as usual. */
#define BDY_HTTP_STREAM_MAX_PENDING ((size_t)4 * 1024 * 1024)
/* All streams together hold about this many unsent bytes (the config's
 * stream_budget_bytes; streams under their share may still add theirs):
 * past it, a write to a stream already holding more than
 * BDY_HTTP_STREAM_FAIR_SHARE fails at once with BDY_ETOOBIG, the stream is
 * closed with what waited in it dropped, and its producer ends it (a watch
 * client watches again).
 * Without it, slow readers on every connection would each pin the per-
 * stream cap: 1,024 of them, 4 GiB. */
#define BDY_HTTP_DEFAULT_STREAM_BUDGET ((size_t)256 * 1024 * 1024)
#define BDY_HTTP_STREAM_FAIR_SHARE ((size_t)256 * 1024)
typedef struct bdy_http_stream bdy_http_stream;
bdy_http_stream *bdy_http_stream_begin(const bdy_http_request *req, unsigned status,
                                       const char *content_type);
int bdy_http_stream_write(bdy_http_stream *st, const void *data, size_t len);
bool bdy_http_stream_open(bdy_http_stream *st);
void bdy_http_stream_end(bdy_http_stream *st);

/* Installs (or replaces, at any time, thread-safely) the token set. NULL
 * turns authentication off; the server then refuses to listen on a
 * non-loopback address (and, if it already does, answers 401 on every
 * authenticated route). The server takes auth over, whatever it returns:
 * it frees a replaced set once the last request that authenticated
 * against it ends, so this never waits for a request (a watch may last
 * hours). BDY_ENOMEM: the old set stays in force. */
int bdy_http_server_set_auth(bdy_http_server *s, bdy_auth *auth);

/* TLS (tls.h). Before start(): the server will listen with TLS only,
 * with set. After a start with TLS: set replaces the one in force for the
 * connections accepted from then on (a certificate rotated on reload);
 * open connections keep theirs until they close. The server takes its own
 * reference. BDY_EINVAL for a server started without TLS (turning it on
 * needs a restart) or a NULL set. Thread-safe. */
typedef struct bdy_tls_set bdy_tls_set;
int bdy_http_server_set_tls(bdy_http_server *s, bdy_tls_set *set);
/* Whether the server listens with TLS. */
bool bdy_http_server_tls(const bdy_http_server *s);

/* Starts listening. Returns BDY_EINVAL for a bad address, BDY_EFORBIDDEN
 * for a non-loopback address without auth, BDY_EIO when the port is taken. */
int bdy_http_server_start(bdy_http_server *s, bdy_errbuf *eb);

/* The same address and authentication rules without a server (for
 * `bindery check-config`): BDY_EINVAL for an address that does not parse,
 * BDY_EFORBIDDEN for a non-loopback one without authentication. */
int bdy_http_listen_check(const char *listen, bool auth_configured, bdy_errbuf *eb);

/* The bound port (useful with port 0). */
unsigned bdy_http_server_port(const bdy_http_server *s);

/* Stops accepting, lets in-flight requests finish (for up to 10 s), stops
 * the threads. */
void bdy_http_server_stop(bdy_http_server *s);
void bdy_http_server_free(bdy_http_server *s);

#endif
