#include "bindery/auth.h"
#include "bindery/error.h"
#include "bindery/http.h"
#include "bindery/metrics.h"
#include "bindery/util.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define MAX_BODY 1024
/* The most deferred requests a test holds at once. */
#define HELD_MAX 256
/* How many requests wait at once in test_deferred_many. */
#define MANY_DEFERRED 200

/* Deferred requests that handlers handed over, for the test to finish. */
typedef struct held {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    bdy_http_deferred *items[HELD_MAX];
    size_t n;     /* handed over so far */
    size_t taken; /* taken by finishers */
} held;

typedef struct fixture {
    char dir[64];
    char tokens[128];
    char tokens2[128];
    bdy_metrics *metrics;
    bdy_auth *auth;
    bdy_http_server *server;
    unsigned port;
    atomic_int handler_calls;
    held held;
    atomic_int defer_failed;           /* bdy_http_defer returned NULL where it should not */
    atomic_int second_defer_null;      /* a second defer in one handler was refused */
    _Atomic(bdy_http_stream *) stream; /* the last stream /v1/stream began */
    int burst_written;                 /* /v1/stream-burst: 64 KiB writes that went */
    int burst_rc;                      /* and the error that ended them */
} fixture;

/* ---- helpers ------------------------------------------------------------ */

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
    assert_int_equal(fclose(fp), 0);
}

static void write_tokens(const char *path, const char *const *names, const char *const *tokens,
                         const char *const *verbs, const char *const *rates, size_t n)
{
    bdy_buf b;
    bdy_buf_init(&b, 8192);
    assert_int_equal(bdy_buf_appends(&b, "tokens:\n"), 0);
    for (size_t i = 0; i < n; i++) {
        char hex[65];
        bdy_sha256_hex(tokens[i], strlen(tokens[i]), hex);
        assert_int_equal(bdy_buf_printf(&b,
                                        "  - name: %s\n    sha256: %s\n    namespaces: [default]\n"
                                        "    verbs: [%s]\n    ratePerSecond: %s\n",
                                        names[i], hex, verbs[i], rates[i]),
                         0);
    }
    write_file(path, b.data);
    bdy_buf_free(&b);
}

typedef struct reply {
    long status;
    CURLcode cc;
    bdy_buf body;
    bdy_buf headers;
    json_object *json;
} reply;

static size_t collect_cb(char *data, size_t size, size_t n, void *userdata)
{
    bdy_buf *b = userdata;
    return bdy_buf_append(b, data, size * n) == 0 ? size * n : 0;
}

typedef struct request {
    const char *method;
    const char *path; /* with query */
    const char *token;
    const char *content_type; /* "" removes curl's default */
    const char *body;
    size_t body_len;
    bool chunked;
    bool no_expect;
    const char *extra_header;
} request;

static size_t chunk_read_cb(char *buf, size_t size, size_t n, void *userdata)
{
    const char **cursor = userdata;
    size_t left = strlen(*cursor);
    size_t k = size * n < left ? size * n : left;
    if (k > 700)
        k = 700; /* several chunks */
    memcpy(buf, *cursor, k);
    *cursor += k;
    return k;
}

static void perform(const fixture *f, const request *rq, reply *out)
{
    memset(out, 0, sizeof(*out));
    bdy_buf_init(&out->body, 4 << 20);
    bdy_buf_init(&out->headers, 1 << 16);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    char url[8192]; /* room for the long-query test */
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", f->port, rq->path);
    struct curl_slist *h = NULL;
    char auth[256];
    if (rq->token != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", rq->token);
        h = curl_slist_append(h, auth);
    }
    char ct[256];
    if (rq->content_type != NULL) {
        snprintf(ct, sizeof(ct), "Content-Type:%s%s", rq->content_type[0] ? " " : "",
                 rq->content_type);
        h = curl_slist_append(h, ct);
    }
    if (rq->no_expect)
        h = curl_slist_append(h, "Expect:");
    if (rq->extra_header != NULL)
        h = curl_slist_append(h, rq->extra_header);
    const char *cursor = rq->body;
    if (rq->chunked) {
        h = curl_slist_append(h, "Transfer-Encoding: chunked");
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, chunk_read_cb);
        curl_easy_setopt(c, CURLOPT_READDATA, &cursor);
    } else if (rq->body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(rq->body_len ? rq->body_len : strlen(rq->body)));
    }
    if (rq->method != NULL && strcmp(rq->method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L); /* a HEAD answer has no body to wait for */
    else if (rq->method != NULL)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &out->headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    out->cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    if (out->body.len > 0)
        out->json = json_tokener_parse(out->body.data);
}

static void reply_free(reply *r)
{
    bdy_buf_free(&r->body);
    bdy_buf_free(&r->headers);
    json_object_put(r->json);
}

static const char *jstr(json_object *o, const char *a, const char *b)
{
    json_object *x = NULL;
    if (!json_object_object_get_ex(o, a, &x))
        return NULL;
    if (b != NULL && !json_object_object_get_ex(x, b, &x))
        return NULL;
    return json_object_get_string(x);
}

/* The value of response header name (case-insensitive), or NULL. */
static const char *header_value(const reply *r, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    const char *p = r->headers.data;
    while (p != NULL && *p != '\0') {
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            size_t len = strcspn(v, "\r\n");
            if (len >= cap)
                len = cap - 1;
            memcpy(out, v, len);
            out[len] = '\0';
            return out;
        }
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return NULL;
}

static void expect_error(const reply *r, long status, const char *code)
{
    if (r->status != status)
        fail_msg("status %ld, want %ld (body %s, curl %d)", r->status, status,
                 r->body.data ? r->body.data : "", (int)r->cc);
    assert_non_null(r->json);
    assert_string_equal(jstr(r->json, "error", "code"), code);
    assert_non_null(jstr(r->json, "error", "message"));
    char ct[128];
    assert_non_null(header_value(r, "Content-Type", ct, sizeof(ct)));
    assert_string_equal(ct, "application/json");
}

/* ---- deferred requests ---------------------------------------------------- */

static void held_push(fixture *f, bdy_http_deferred *d)
{
    held *h = &f->held;
    pthread_mutex_lock(&h->lock);
    bool room = h->n < HELD_MAX;
    if (room)
        h->items[h->n++] = d;
    pthread_cond_broadcast(&h->changed);
    pthread_mutex_unlock(&h->lock);
    if (!room) {
        /* Never leak one: answer it at once (the test then fails on it). */
        atomic_fetch_add(&f->defer_failed, 1);
        bdy_http_error(bdy_http_deferred_response(d), 500, "InternalError", "held is full", 0);
        bdy_http_deferred_finish(d);
    }
}

static struct timespec deadline_in(unsigned ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Waits (at most timeout_ms) until n requests have been handed over. */
static bool held_wait(fixture *f, size_t n, unsigned timeout_ms)
{
    held *h = &f->held;
    struct timespec until = deadline_in(timeout_ms);
    pthread_mutex_lock(&h->lock);
    int rc = 0;
    while (h->n < n && rc == 0)
        rc = pthread_cond_timedwait(&h->changed, &h->lock, &until);
    bool ok = h->n >= n;
    pthread_mutex_unlock(&h->lock);
    return ok;
}

/* The next handed-over request, waiting at most timeout_ms; NULL if none. */
static bdy_http_deferred *held_take(fixture *f, unsigned timeout_ms)
{
    held *h = &f->held;
    struct timespec until = deadline_in(timeout_ms);
    bdy_http_deferred *d = NULL;
    pthread_mutex_lock(&h->lock);
    int rc = 0;
    while (h->taken >= h->n && rc == 0)
        rc = pthread_cond_timedwait(&h->changed, &h->lock, &until);
    if (h->taken < h->n)
        d = h->items[h->taken++];
    pthread_mutex_unlock(&h->lock);
    return d;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The owner's side: answers with what it can still read of the request. */
static void owner_answer(bdy_http_deferred *d, unsigned status)
{
    const bdy_http_request *req = bdy_http_deferred_request(d);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "method", json_object_new_string(req->method));
    json_object_object_add(o, "path", json_object_new_string(req->path));
    json_object_object_add(o, "body", json_object_new_string_len(req->body, (int)req->body_len));
    json_object_object_add(o, "principal",
                           req->principal
                               ? json_object_new_string(bdy_principal_name(req->principal))
                               : json_object_new_string("(none)"));
    bdy_http_response *resp = bdy_http_deferred_response(d);
    bdy_http_set_header(resp, "X-Deferred", "yes");
    bdy_http_json(resp, status, o);
    json_object_put(o);
    bdy_http_deferred_finish(d);
}

/* A thread that answers count handed-over requests, each after delay_ms. */
typedef struct finisher {
    fixture *f;
    size_t count;
    unsigned delay_ms;
    size_t done;
} finisher;

static void *finisher_main(void *arg)
{
    finisher *w = arg;
    for (size_t i = 0; i < w->count; i++) {
        bdy_http_deferred *d = held_take(w->f, 20000);
        if (d == NULL)
            break;
        if (w->delay_ms > 0)
            sleep_ms(w->delay_ms);
        owner_answer(d, 201);
        w->done++;
    }
    return NULL;
}

/* A client thread: one request, reply kept for the test. */
typedef struct client {
    fixture *f;
    request rq;
    reply r;
} client;

static void *client_main(void *arg)
{
    client *cl = arg;
    perform(cl->f, &cl->rq, &cl->r);
    return NULL;
}

/* ---- handlers ------------------------------------------------------------ */

static void echo_cb(void *data, const bdy_http_request *req, bdy_http_response *resp)
{
    fixture *f = data;
    atomic_fetch_add(&f->handler_calls, 1);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "method", json_object_new_string(req->method));
    json_object_object_add(o, "path", json_object_new_string(req->path));
    json_object_object_add(o, "body", json_object_new_string_len(req->body, (int)req->body_len));
    json_object_object_add(o, "bodyLen", json_object_new_int64((int64_t)req->body_len));
    const char *x = bdy_http_query(req, "x");
    const char *y = bdy_http_query(req, "y");
    const char *hdr = bdy_http_header(req, "x-test");
    if (x != NULL)
        json_object_object_add(o, "x", json_object_new_string(x));
    if (y != NULL)
        json_object_object_add(o, "y", json_object_new_string(y));
    if (hdr != NULL)
        json_object_object_add(o, "header", json_object_new_string(hdr));
    if (req->content_type != NULL)
        json_object_object_add(o, "contentType", json_object_new_string(req->content_type));
    json_object_object_add(o, "principal",
                           req->principal
                               ? json_object_new_string(bdy_principal_name(req->principal))
                               : json_object_new_string("(none)"));
    bdy_http_set_header(resp, "X-Echo", "yes");
    bdy_http_json(resp, 200, o);
    json_object_put(o);
}

static void health_cb(void *data, const bdy_http_request *req, bdy_http_response *resp)
{
    (void)data;
    (void)req;
    resp->status = 200;
    resp->content_type = "text/plain; charset=utf-8";
    bdy_buf_appends(&resp->body, "ok\n");
}

static void release_cb(void *data, const bdy_http_request *req, bdy_http_response *resp)
{
    (void)data;
    (void)req;
    resp->status = 204;
}

static void exhausted_cb(void *data, const bdy_http_request *req, bdy_http_response *resp)
{
    (void)data;
    (void)req;
    bdy_http_error(resp, 503, "PoolExhausted", "no warm world in pool default/arena-eu", 2);
}

static void nothing_cb(void *data, const bdy_http_request *req, bdy_http_response *resp)
{
    (void)data;
    (void)req;
    (void)resp;
}

static void slow_cb(void *data, const bdy_http_request *req, bdy_http_response *resp)
{
    (void)data;
    (void)req;
    struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
    resp->status = 200;
    bdy_buf_appends(&resp->body, "{}");
}

/* Sleeps 300 ms, then names its principal: it reads the token set after
 * any swap made meanwhile. */
static void slow_principal_cb(void *data, const bdy_http_request *req, bdy_http_response *resp)
{
    (void)data;
    struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
    resp->status = 200;
    bdy_buf_appends(&resp->body, "{\"principal\":\"");
    bdy_buf_appends(&resp->body, req->principal ? bdy_principal_name(req->principal) : "(none)");
    bdy_buf_appends(&resp->body, "\"}");
}

/* Defers and hands the request to the test. */
static void hold_cb(void *data, const bdy_http_request *req, bdy_http_response *resp)
{
    fixture *f = data;
    atomic_fetch_add(&f->handler_calls, 1);
    bdy_http_deferred *d = bdy_http_defer(req);
    if (d == NULL) {
        atomic_fetch_add(&f->defer_failed, 1);
        bdy_http_error(resp, 500, "InternalError", "defer failed", 0);
        return;
    }
    held_push(f, d);
}

/* Defers, answers and finishes before returning, so the answer is ready
 * before the connection could be suspended. */
static void sync_cb(void *data, const bdy_http_request *req, bdy_http_response *resp)
{
    fixture *f = data;
    bdy_http_deferred *d = bdy_http_defer(req);
    if (d == NULL) {
        atomic_fetch_add(&f->defer_failed, 1);
        bdy_http_error(resp, 500, "InternalError", "defer failed", 0);
        return;
    }
    if (bdy_http_defer(req) == NULL)
        atomic_fetch_add(&f->second_defer_null, 1);
    bdy_http_response *dr = bdy_http_deferred_response(d);
    dr->status = 201;
    bdy_http_set_header(dr, "X-Deferred", "sync");
    bdy_buf_appends(&dr->body, "{\"sync\":true}");
    bdy_http_deferred_finish(d);
}

/* Defers only after 300 ms, so a stop() can come first. */
static void slow_hold_cb(void *data, const bdy_http_request *req, bdy_http_response *resp)
{
    fixture *f = data;
    atomic_fetch_add(&f->handler_calls, 1);
    sleep_ms(300);
    bdy_http_deferred *d = bdy_http_defer(req);
    if (d == NULL) {
        atomic_fetch_add(&f->defer_failed, 1);
        bdy_http_error(resp, 500, "InternalError", "defer failed", 0);
        return;
    }
    held_push(f, d);
}

/* ---- fixture ------------------------------------------------------------- */

static void stream_cb(void *data, const bdy_http_request *req, bdy_http_response *resp)
{
    fixture *f = data;
    bdy_http_stream *st = bdy_http_stream_begin(req, 200, "application/json");
    if (st == NULL) {
        bdy_http_error(resp, 500, "InternalError", "no stream", 0);
        return;
    }
    atomic_store(&f->stream, st);
}

/* Begins a stream and writes 64 KiB blocks, up to 2 MiB, before the
 * handler returns, so none of it can reach the socket yet. */
static void stream_burst_cb(void *data, const bdy_http_request *req, bdy_http_response *resp)
{
    fixture *f = data;
    bdy_http_stream *st = bdy_http_stream_begin(req, 200, "application/json");
    if (st == NULL) {
        bdy_http_error(resp, 500, "InternalError", "no stream", 0);
        return;
    }
    static char block[64 * 1024];
    memset(block, 'h', sizeof(block));
    f->burst_written = 0;
    f->burst_rc = 0;
    while (f->burst_written < 32 &&
           (f->burst_rc = bdy_http_stream_write(st, block, sizeof(block))) == 0)
        f->burst_written++;
    atomic_store(&f->stream, st);
}

/* The streams' budget for the next setup_server (0: the default). */
static size_t next_stream_budget;

static int setup_server(void **state, unsigned threads, unsigned max_connections,
                        unsigned timeout_s)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(pthread_mutex_init(&f->held.lock, NULL), 0);
    assert_int_equal(pthread_cond_init(&f->held.changed, NULL), 0);
    snprintf(f->dir, sizeof(f->dir), "/tmp/bdy-http-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->tokens, sizeof(f->tokens), "%s/tokens.yaml", f->dir);
    snprintf(f->tokens2, sizeof(f->tokens2), "%s/tokens2.yaml", f->dir);
    const char *names[] = {"good", "reader", "limited"};
    const char *tokens[] = {"good-token", "reader-token", "limited-token"};
    const char *verbs[] = {"allocate, release, read", "read", "read"};
    const char *rates[] = {"0", "0", "1"};
    write_tokens(f->tokens, names, tokens, verbs, rates, 3);
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    if (bdy_auth_load(f->tokens, &f->auth, &eb) != 0)
        fail_msg("tokens: %s", eb.message);

    f->metrics = bdy_metrics_new();
    assert_non_null(f->metrics);
    bdy_http_config cfg = {
        .listen = "127.0.0.1:0",
        .threads = threads,
        .max_body_bytes = MAX_BODY,
        .connection_timeout_s = timeout_s,
        .header_limit_bytes = 4096,
        .max_connections = max_connections,
        .stream_budget_bytes = next_stream_budget,
    };
    next_stream_budget = 0;
    assert_int_equal(bdy_http_server_new(&cfg, f->metrics, &f->server, &eb), 0);
    bdy_http_server *s = f->server;
    assert_int_equal(
        bdy_http_route(s, "GET", "/healthz", BDY_ROUTE_EXACT, BDY_VERB_NONE, health_cb, f), 0);
    assert_int_equal(
        bdy_http_route(s, "GET", "/v1/echo", BDY_ROUTE_EXACT, BDY_VERB_READ, echo_cb, f), 0);
    assert_int_equal(
        bdy_http_route(s, "POST", "/v1/echo", BDY_ROUTE_EXACT, BDY_VERB_ALLOCATE, echo_cb, f), 0);
    assert_int_equal(bdy_http_route(s, "DELETE", "/v1/allocations/", BDY_ROUTE_PREFIX,
                                    BDY_VERB_RELEASE, release_cb, f),
                     0);
    assert_int_equal(
        bdy_http_route(s, "PATCH", "/v1/patch", BDY_ROUTE_EXACT, BDY_VERB_READ, echo_cb, f), 0);
    const char *patch_types[] = {"application/merge-patch+json", "application/json-patch+json",
                                 NULL};
    assert_int_equal(bdy_http_route_accept(s, patch_types), 0);
    assert_int_equal(
        bdy_http_route(s, "PUT", "/v1/any", BDY_ROUTE_EXACT, BDY_VERB_READ, echo_cb, f), 0);
    const char *any[] = {BDY_HTTP_ACCEPT_ANY, NULL};
    assert_int_equal(bdy_http_route_accept(s, any), 0);
    assert_int_equal(
        bdy_http_route(s, "GET", "/v1/exhausted", BDY_ROUTE_EXACT, BDY_VERB_NONE, exhausted_cb, f),
        0);
    assert_int_equal(
        bdy_http_route(s, "GET", "/v1/nothing", BDY_ROUTE_EXACT, BDY_VERB_NONE, nothing_cb, f), 0);
    assert_int_equal(
        bdy_http_route(s, "GET", "/v1/slow", BDY_ROUTE_EXACT, BDY_VERB_NONE, slow_cb, f), 0);
    assert_int_equal(bdy_http_route(s, "GET", "/v1/slow-read", BDY_ROUTE_EXACT, BDY_VERB_READ,
                                    slow_principal_cb, f),
                     0);
    assert_int_equal(
        bdy_http_route(s, "POST", "/v1/defer", BDY_ROUTE_EXACT, BDY_VERB_ALLOCATE, hold_cb, f), 0);
    assert_int_equal(
        bdy_http_route(s, "GET", "/v1/defer-sync", BDY_ROUTE_EXACT, BDY_VERB_NONE, sync_cb, f), 0);
    assert_int_equal(
        bdy_http_route(s, "GET", "/v1/defer-slow", BDY_ROUTE_EXACT, BDY_VERB_NONE, slow_hold_cb, f),
        0);
    assert_int_equal(
        bdy_http_route(s, "GET", "/v1/stream", BDY_ROUTE_EXACT, BDY_VERB_NONE, stream_cb, f), 0);
    assert_int_equal(bdy_http_route(s, "GET", "/v1/stream-burst", BDY_ROUTE_EXACT, BDY_VERB_NONE,
                                    stream_burst_cb, f),
                     0);
    bdy_auth *own = NULL; /* the server's; f->auth stays the test's */
    if (bdy_auth_load(f->tokens, &own, &eb) != 0)
        fail_msg("tokens: %s", eb.message);
    assert_int_equal(bdy_http_server_set_auth(s, own), 0);
    if (bdy_http_server_start(s, &eb) != 0)
        fail_msg("start: %s", eb.message);
    f->port = bdy_http_server_port(s);
    assert_true(f->port > 0);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_server(state, 4, 64, 10);
}

/* Streams may hold 1 MiB unsent between them. */
static int setup_small_stream_budget(void **state)
{
    next_stream_budget = 1024 * 1024;
    return setup_server(state, 4, 64, 10);
}

/* A connection timeout of 1 s, for the streams' tests. */
static int setup_short_timeout(void **state)
{
    return setup_server(state, 2, 64, 1);
}

/* Two workers and room for hundreds of waiting connections. */
static int setup_two_threads(void **state)
{
    return setup_server(state, 2, 1024, 10);
}

static int teardown(void **state)
{
    fixture *f = *state;
    bdy_http_server_free(f->server);
    /* A test that failed midway may leave deferred requests unfinished;
     * their owner (the test) finishes them, after the server is gone. */
    for (bdy_http_deferred *d = held_take(f, 0); d != NULL; d = held_take(f, 0))
        owner_answer(d, 500);
    pthread_cond_destroy(&f->held.changed);
    pthread_mutex_destroy(&f->held.lock);
    bdy_auth_free(f->auth);
    bdy_metrics_free(f->metrics);
    unlink(f->tokens);
    unlink(f->tokens2);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* ---- tests ----------------------------------------------------------------- */

static void test_routes(void **state)
{
    fixture *f = *state;
    reply r;
    char v[256];

    perform(f, &(request){.path = "/healthz"}, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "ok\n");
    assert_string_equal(header_value(&r, "Content-Type", v, sizeof(v)),
                        "text/plain; charset=utf-8");
    reply_free(&r);

    perform(f, &(request){.path = "/nope"}, &r);
    expect_error(&r, 404, "NotFound");
    reply_free(&r);
    /* EXACT does not match longer paths. */
    perform(f, &(request){.path = "/healthz/x"}, &r);
    expect_error(&r, 404, "NotFound");
    reply_free(&r);

    /* HEAD is served by a GET route, without the body. */
    perform(f, &(request){.method = "HEAD", .path = "/healthz"}, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header_value(&r, "Content-Length", v, sizeof(v)), "3"); /* "ok\n" */
    reply_free(&r);

    perform(f, &(request){.method = "PUT", .path = "/v1/echo", .token = "good-token"}, &r);
    expect_error(&r, 405, "MethodNotAllowed");
    /* Every GET route answers HEAD too, so the Allow header says so. */
    assert_string_equal(header_value(&r, "Allow", v, sizeof(v)), "GET, POST, HEAD");
    reply_free(&r);

    /* PREFIX routes match below the pattern; 204 has no body. */
    perform(f,
            &(request){.method = "DELETE", .path = "/v1/allocations/alc-1", .token = "good-token"},
            &r);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.body.len, 0);
    reply_free(&r);

    perform(f, &(request){.path = "/v1/exhausted"}, &r);
    expect_error(&r, 503, "PoolExhausted");
    assert_string_equal(r.body.data, "{\"error\":{\"code\":\"PoolExhausted\",\"message\":\"no warm "
                                     "world in pool default/arena-eu\",\"retryAfterSeconds\":2}}");
    assert_string_equal(header_value(&r, "Retry-After", v, sizeof(v)), "2");
    reply_free(&r);

    perform(f, &(request){.path = "/v1/nothing"}, &r);
    expect_error(&r, 500, "InternalError");
    reply_free(&r);
}

static void test_request_fields(void **state)
{
    fixture *f = *state;
    reply r;
    char v[64];
    perform(f,
            &(request){.path = "/v1/echo?x=1&y=a%20b",
                       .token = "good-token",
                       .extra_header = "X-Test: hello"},
            &r);
    assert_int_equal(r.status, 200);
    assert_non_null(r.json);
    assert_string_equal(jstr(r.json, "method", NULL), "GET");
    assert_string_equal(jstr(r.json, "path", NULL), "/v1/echo");
    assert_string_equal(jstr(r.json, "x", NULL), "1");
    assert_string_equal(jstr(r.json, "y", NULL), "a b");
    assert_string_equal(jstr(r.json, "header", NULL), "hello");
    assert_string_equal(jstr(r.json, "principal", NULL), "good");
    assert_string_equal(jstr(r.json, "body", NULL), "");
    assert_string_equal(header_value(&r, "X-Echo", v, sizeof(v)), "yes");
    assert_string_equal(header_value(&r, "Content-Type", v, sizeof(v)), "application/json");
    reply_free(&r);

    /* A body exactly at the limit is accepted, with a charset parameter. */
    char body[MAX_BODY + 1];
    memset(body, 'a', MAX_BODY);
    body[0] = '"';
    body[MAX_BODY - 1] = '"';
    body[MAX_BODY] = '\0';
    perform(f,
            &(request){.method = "POST",
                       .path = "/v1/echo",
                       .token = "good-token",
                       .content_type = "application/json; charset=utf-8",
                       .body = body},
            &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(jstr(r.json, "body", NULL), body);
    assert_string_equal(jstr(r.json, "contentType", NULL), "application/json; charset=utf-8");
    reply_free(&r);

    /* A chunked body under the limit arrives whole. */
    perform(f,
            &(request){.method = "POST",
                       .path = "/v1/echo",
                       .token = "good-token",
                       .content_type = "application/json",
                       .body = body,
                       .chunked = true},
            &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(jstr(r.json, "body", NULL), body);
    reply_free(&r);
}

static void test_auth_errors(void **state)
{
    fixture *f = *state;
    reply r;
    char v[128];

    perform(f, &(request){.path = "/v1/echo"}, &r);
    expect_error(&r, 401, "Unauthorized");
    assert_non_null(header_value(&r, "WWW-Authenticate", v, sizeof(v)));
    assert_string_equal(v, "Bearer realm=\"bindery\"");
    reply_free(&r);

    perform(f, &(request){.path = "/v1/echo", .token = "wrong"}, &r);
    expect_error(&r, 401, "Unauthorized");
    assert_non_null(header_value(&r, "WWW-Authenticate", v, sizeof(v)));
    assert_string_equal(v, "Bearer realm=\"bindery\", error=\"invalid_token\"");
    reply_free(&r);

    /* Basic (kubectl with the written kubeconfig's user): no bearer token
     * was sent, and the message says so rather than call it invalid. */
    perform(f, &(request){.path = "/v1/echo", .extra_header = "Authorization: Basic Zm9vOmJhcg=="},
            &r);
    expect_error(&r, 401, "Unauthorized");
    assert_non_null(strstr(jstr(r.json, "error", "message"),
                           "the Authorization header is of scheme \"Basic\""));
    assert_non_null(header_value(&r, "WWW-Authenticate", v, sizeof(v)));
    assert_string_equal(v, "Bearer realm=\"bindery\"");
    reply_free(&r);

    /* reader may read but not allocate. */
    perform(f, &(request){.path = "/v1/echo", .token = "reader-token"}, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(jstr(r.json, "principal", NULL), "reader");
    reply_free(&r);
    perform(f,
            &(request){.method = "POST",
                       .path = "/v1/echo",
                       .token = "reader-token",
                       .content_type = "application/json",
                       .body = "{}"},
            &r);
    expect_error(&r, 403, "Forbidden");
    assert_non_null(strstr(jstr(r.json, "error", "message"), "allocate"));
    reply_free(&r);

    /* limited: one request per second, burst 1. */
    perform(f, &(request){.path = "/v1/echo", .token = "limited-token"}, &r);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    perform(f, &(request){.path = "/v1/echo", .token = "limited-token"}, &r);
    expect_error(&r, 429, "RateLimited");
    assert_string_equal(header_value(&r, "Retry-After", v, sizeof(v)), "1");
    json_object *ra = NULL;
    json_object *err = NULL;
    assert_true(json_object_object_get_ex(r.json, "error", &err));
    assert_true(json_object_object_get_ex(err, "retryAfterSeconds", &ra));
    assert_int_equal(json_object_get_int(ra), 1);
    reply_free(&r);

    /* Routes without a verb need no token. */
    perform(f, &(request){.path = "/healthz", .token = "wrong"}, &r);
    assert_int_equal(r.status, 200);
    reply_free(&r);
}

/* POSTs a body of len bytes on a raw connection, all of it before reading
 * anything (no Expect: 100-continue), then reads the status line into
 * status, or what went wrong. Answered from the headers, the server closed
 * while such a client was still writing: it saw a broken pipe or a reset,
 * never the 413. */
static void blind_post(const fixture *f, size_t len, char *status, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    char head[256];
    int hn = snprintf(head, sizeof(head),
                      "POST /v1/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good-token\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                      len);
    char *body = malloc(len);
    assert_non_null(body);
    memset(body, ' ', len);
    snprintf(status, cap, "(nothing read)");
    bool sent = send(fd, head, (size_t)hn, MSG_NOSIGNAL) == hn;
    for (size_t off = 0; sent && off < len;) {
        ssize_t w = send(fd, body + off, len - off, MSG_NOSIGNAL);
        if (w <= 0) {
            snprintf(status, cap, "send after %zu bytes: %s", off, strerror(errno));
            sent = false;
        } else {
            off += (size_t)w;
        }
    }
    free(body);
    if (sent) {
        char buf[256];
        ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
        if (n > 0) {
            buf[n] = '\0';
            buf[strcspn(buf, "\r\n")] = '\0';
            snprintf(status, cap, "%s", buf);
        } else {
            snprintf(status, cap, "recv: %s", n == 0 ? "closed" : strerror(errno));
        }
    }
    close(fd);
}

static void test_body_limits(void **state)
{
    fixture *f = *state;
    reply r;
    int calls = atomic_load(&f->handler_calls);

    enum { BIG = 5 * 1024 * 1024 }; /* past the cap and the 4 MiB the server drops */
    char *big = malloc(BIG + 1);
    assert_non_null(big);
    memset(big, 'b', BIG);
    big[BIG] = '\0';
    big[2000] = '\0'; /* first use: 2000 bytes */

    /* Content-Length over the cap: 413, refused from the headers alone
     * with Expect: 100-continue (nothing sent yet), read through without. */
    perform(f,
            &(request){.method = "POST",
                       .path = "/v1/echo",
                       .token = "good-token",
                       .content_type = "application/json",
                       .body = big},
            &r);
    expect_error(&r, 413, "PayloadTooLarge");
    reply_free(&r);
    perform(f,
            &(request){.method = "POST",
                       .path = "/v1/echo",
                       .token = "good-token",
                       .content_type = "application/json",
                       .body = big,
                       .no_expect = true},
            &r);
    expect_error(&r, 413, "PayloadTooLarge");
    reply_free(&r);

    /* A megabyte, sent whole before reading (as kubectl sends): read
     * through and answered 413, every time. */
    for (int i = 0; i < 5; i++) {
        char status[64];
        blind_post(f, 1024 * 1024, status, sizeof(status));
        if (strstr(status, " 413 ") == NULL)
            fail_msg("try %d: %s", i, status);
    }
    /* Up to 4 MiB past the cap is read through: what is dropped counts
     * from the cap (counted from the first byte, a body within 4 MiB of a
     * cap of 4 MiB or more was cut off all the same). */
    char near_status[64];
    blind_post(f, 4 * 1024 * 1024 + MAX_BODY / 2, near_status, sizeof(near_status));
    if (strstr(near_status, " 413 ") == NULL)
        fail_msg("4 MiB past the cap: %s", near_status);

    /* Chunked over the cap: read through and answered 413. */
    perform(f,
            &(request){.method = "POST",
                       .path = "/v1/echo",
                       .token = "good-token",
                       .content_type = "application/json",
                       .body = big,
                       .chunked = true},
            &r);
    expect_error(&r, 413, "PayloadTooLarge");
    reply_free(&r);

    /* Far over the cap: the server stops reading and closes the connection
     * (curl may or may not see a 413 before the reset). */
    big[2000] = 'b';
    perform(f,
            &(request){.method = "POST",
                       .path = "/v1/echo",
                       .token = "good-token",
                       .content_type = "application/json",
                       .body = big,
                       .chunked = true},
            &r);
    if (r.status != 413 && r.cc == CURLE_OK)
        fail_msg("status %ld with a complete exchange", r.status);
    reply_free(&r);
    assert_int_equal(atomic_load(&f->handler_calls), calls);

    /* A GET's body is dropped as it comes, never buffered: the handler sees
     * none, and one past the discard limit ends the connection. */
    big[600] = '\0'; /* under the cap */
    perform(f,
            &(request){.method = "GET",
                       .path = "/v1/echo",
                       .token = "good-token",
                       .content_type = "application/json",
                       .body = big},
            &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_object_get_int(json_object_object_get(r.json, "bodyLen")), 0);
    reply_free(&r);
    calls = atomic_load(&f->handler_calls);
    big[600] = 'b';
    perform(f, &(request){.method = "GET", .path = "/healthz", .body = big, .chunked = true}, &r);
    if (r.status == 200)
        fail_msg("a 5 MiB body of an unauthenticated GET was read through");
    reply_free(&r);
    free(big);
    assert_int_equal(atomic_load(&f->handler_calls), calls);

    /* Headers over the limit (4 KiB here): 431 with our error body, and no
     * handler runs. */
    char mid[6000];
    memcpy(mid, "X-Big: ", 7);
    memset(mid + 7, 'h', sizeof(mid) - 8);
    mid[sizeof(mid) - 1] = '\0';
    perform(f, &(request){.path = "/healthz", .extra_header = mid}, &r);
    expect_error(&r, 431, "RequestHeaderFieldsTooLarge");
    reply_free(&r);
    mid[3500] = '\0'; /* under the limit */
    perform(f, &(request){.path = "/healthz", .extra_header = mid}, &r);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    /* A long query counts too. */
    char query[6000];
    int qn = snprintf(query, sizeof(query), "/healthz?q=");
    memset(query + qn, 'q', sizeof(query) - (size_t)qn - 1);
    query[sizeof(query) - 1] = '\0';
    perform(f, &(request){.path = query}, &r);
    expect_error(&r, 431, "RequestHeaderFieldsTooLarge");
    reply_free(&r);
    /* Far beyond the connection memory MHD refuses them itself (431, with
     * MHD's own body: it answers before any handler runs). */
    char *hdr = malloc(64 * 1024);
    assert_non_null(hdr);
    memcpy(hdr, "X-Big: ", 7);
    memset(hdr + 7, 'h', 64 * 1024 - 8);
    hdr[64 * 1024 - 1] = '\0';
    perform(f, &(request){.path = "/healthz", .extra_header = hdr}, &r);
    assert_int_equal(r.status, 431);
    reply_free(&r);
    free(hdr);
    assert_int_equal(atomic_load(&f->handler_calls), calls);

    /* The server is still fine. */
    perform(f, &(request){.path = "/healthz"}, &r);
    assert_int_equal(r.status, 200);
    reply_free(&r);
}

static void test_media_types(void **state)
{
    fixture *f = *state;
    reply r;
    perform(f,
            &(request){.method = "POST",
                       .path = "/v1/echo",
                       .token = "good-token",
                       .content_type = "text/plain",
                       .body = "{}"},
            &r);
    expect_error(&r, 415, "UnsupportedMediaType");
    reply_free(&r);
    /* No Content-Type at all. */
    perform(f,
            &(request){.method = "POST",
                       .path = "/v1/echo",
                       .token = "good-token",
                       .content_type = "",
                       .body = "{}"},
            &r);
    expect_error(&r, 415, "UnsupportedMediaType");
    reply_free(&r);
    /* Case-insensitive type, parameters ignored. */
    perform(f,
            &(request){.method = "POST",
                       .path = "/v1/echo",
                       .token = "good-token",
                       .content_type = "Application/JSON;charset=UTF-8",
                       .body = "{}"},
            &r);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    /* The API is UTF-8: a charset parameter naming another is refused
     * (the body was read as UTF-8 all the same); utf8 and quotes pass. */
    const struct {
        const char *type;
        long status;
    } charsets[] = {{"application/json; charset=latin1", 415},
                    {"application/json; charset=\"ISO-8859-1\"", 415},
                    {"application/json; Charset=utf8", 200},
                    {"application/json; foo=\"x;charset=utf-8\"; charset=latin1", 415},
                    {"application/json; foo=\"a;charset=x\"", 200},
                    {"application/json; foo=bar; charset=\"utf-8\"", 200}};
    for (size_t i = 0; i < sizeof(charsets) / sizeof(charsets[0]); i++) {
        perform(f,
                &(request){.method = "POST",
                           .path = "/v1/echo",
                           .token = "good-token",
                           .content_type = charsets[i].type,
                           .body = "{}"},
                &r);
        if (r.status != charsets[i].status)
            fail_msg("%s: %ld", charsets[i].type, r.status);
        reply_free(&r);
    }
    /* No body, no media type check. */
    perform(f, &(request){.method = "POST", .path = "/v1/echo", .token = "good-token"}, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_object_get_int(json_object_object_get(r.json, "bodyLen")), 0);
    reply_free(&r);

    /* A route with its own media types. */
    perform(f,
            &(request){.method = "PATCH",
                       .path = "/v1/patch",
                       .token = "good-token",
                       .content_type = "application/merge-patch+json",
                       .body = "{}"},
            &r);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    perform(f,
            &(request){.method = "PATCH",
                       .path = "/v1/patch",
                       .token = "good-token",
                       .content_type = "application/json",
                       .body = "{}"},
            &r);
    expect_error(&r, 415, "UnsupportedMediaType");
    reply_free(&r);
    perform(f,
            &(request){.method = "PUT",
                       .path = "/v1/any",
                       .token = "good-token",
                       .content_type = "application/apply-patch+yaml",
                       .body = "a: 1"},
            &r);
    assert_int_equal(r.status, 200);
    reply_free(&r);
}

/* Opens a raw connection, sends half a body and hangs up. */
static void cut_mid_body(const fixture *f)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    const char req[] = "POST /v1/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good-token\r\n"
                       "Content-Type: application/json\r\nContent-Length: 500\r\n\r\n"
                       "{\"half\": \"a body that stops";
    assert_int_equal(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL), (ssize_t)(sizeof(req) - 1));
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    close(fd);
}

static void test_cut_connections(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 3; i++)
        cut_mid_body(f);
    reply r;
    perform(f, &(request){.path = "/healthz"}, &r);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    /* Teardown's stop must not wait for the cut requests: they are freed. */
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    uint64_t t0 = bdy_monotonic_ns();
    bdy_http_server_stop(f->server);
    assert_true(bdy_monotonic_ns() - t0 < 2000000000ull);
    assert_int_equal(bdy_http_server_port(f->server), 0);
}

typedef struct worker {
    fixture *f;
    int ok;
    atomic_int done; /* set once its requests have been answered */
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < 15; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/v1/echo?x=%d", i);
        reply r;
        perform(w->f, &(request){.path = path, .token = "good-token"}, &r);
        char want[16];
        snprintf(want, sizeof(want), "%d", i);
        const char *x = r.json ? jstr(r.json, "x", NULL) : NULL;
        if (r.status == 200 && x != NULL && strcmp(x, want) == 0)
            w->ok++;
        reply_free(&r);
    }
    return NULL;
}

static void *slow_main(void *arg)
{
    worker *w = arg;
    reply r;
    perform(w->f, &(request){.path = "/v1/slow"}, &r);
    if (r.status == 200)
        w->ok++;
    reply_free(&r);
    return NULL;
}

static void test_concurrent(void **state)
{
    fixture *f = *state;
    pthread_t t[6];
    worker w[6];
    for (int i = 0; i < 6; i++) {
        w[i] = (worker){.f = f};
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].ok, 15);
    }

    /* Slow handlers on several connections all complete. (How much they
     * overlap depends on which MHD worker accepts each connection.) */
    uint64_t t0 = bdy_monotonic_ns();
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){.f = f};
        assert_int_equal(pthread_create(&t[i], NULL, slow_main, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].ok, 1);
    }
    assert_true(bdy_monotonic_ns() - t0 < 5000ull * 1000 * 1000);
}

static void *slow_read_main(void *arg)
{
    worker *w = arg;
    reply r;
    perform(w->f, &(request){.path = "/v1/slow-read", .token = "good-token"}, &r);
    if (r.status == 200 && strcmp(jstr(r.json, "principal", NULL), "good") == 0)
        w->ok++;
    reply_free(&r);
    atomic_store(&w->done, 1);
    return NULL;
}

/* set_auth() does not wait for requests that authenticated against the old
 * set (a watch may run for hours, and a reload waited on it): the old set
 * lives on until the last of them ends, which still reads its principal.
 * (Under ASan a set freed early is a use after free.) Reloaded twice
 * meanwhile: each retired set goes on its own. */
static void test_auth_swap_does_not_wait(void **state)
{
    fixture *f = *state;
    worker w = {.f = f};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, slow_read_main, &w), 0);
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    bdy_auth *second = NULL;
    bdy_errbuf eb;
    assert_int_equal(bdy_auth_load(f->tokens, &second, &eb), 0);
    assert_int_equal(bdy_http_server_set_auth(f->server, second), 0);
    assert_int_equal(bdy_http_server_set_auth(f->server, NULL), 0);
    /* The handler sleeps 300 ms and had run for about 100 ms: both swaps
     * came back while it ran. */
    bool returned_first = atomic_load(&w.done) == 0;
    pthread_join(t, NULL);
    assert_int_equal(w.ok, 1);
    assert_true(returned_first);
}

/* stop() lets a request in flight finish. */
static void test_stop_drains(void **state)
{
    fixture *f = *state;
    worker w = {.f = f};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, slow_main, &w), 0);
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    bdy_http_server_stop(f->server);
    pthread_join(t, NULL);
    assert_int_equal(w.ok, 1);
    /* Nothing listens any more. */
    reply r;
    perform(f, &(request){.path = "/healthz"}, &r);
    assert_int_equal(r.cc, CURLE_COULDNT_CONNECT);
    reply_free(&r);
    bdy_http_server_stop(f->server); /* twice is fine */
}

static void test_metrics_recorded(void **state)
{
    fixture *f = *state;
    reply r;
    for (int i = 0; i < 2; i++) {
        perform(f, &(request){.path = "/healthz"}, &r);
        reply_free(&r);
    }
    perform(f, &(request){.path = "/nope"}, &r);
    reply_free(&r);
    perform(f, &(request){.method = "BREW", .path = "/healthz"}, &r);
    reply_free(&r);
    /* A HEAD is counted as one, though its handler sees a GET. */
    perform(f, &(request){.method = "HEAD", .path = "/healthz"}, &r);
    reply_free(&r);
    /* Metrics are recorded when MHD reports the request complete, which can
     * be just after the client has its answer. */
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    bdy_buf b;
    bdy_buf_init(&b, 1 << 20);
    assert_int_equal(bdy_metrics_render(f->metrics, &b), 0);
    assert_non_null(strstr(
        b.data, "bindery_http_requests_total{method=\"GET\",route=\"/healthz\",code=\"200\"} 2\n"));
    assert_non_null(
        strstr(b.data,
               "bindery_http_requests_total{method=\"GET\",route=\"unmatched\",code=\"404\"} 1\n"));
    assert_non_null(strstr(
        b.data,
        "bindery_http_requests_total{method=\"other\",route=\"/healthz\",code=\"405\"} 1\n"));
    assert_non_null(
        strstr(b.data,
               "bindery_http_requests_total{method=\"HEAD\",route=\"/healthz\",code=\"200\"} 1\n"));
    assert_non_null(strstr(b.data, "# TYPE bindery_http_request_duration_seconds histogram\n"));
    assert_non_null(
        strstr(b.data, "bindery_http_request_duration_seconds_count{route=\"/healthz\"} 4\n"));
    assert_non_null(
        strstr(b.data, "bindery_http_request_duration_seconds_count{route=\"unmatched\"} 1\n"));
    bdy_buf_free(&b);
}

static void test_auth_swap(void **state)
{
    fixture *f = *state;
    const char *names[] = {"fresh"};
    const char *tokens[] = {"fresh-token"};
    const char *verbs[] = {"read"};
    const char *rates[] = {"0"};
    write_tokens(f->tokens2, names, tokens, verbs, rates, 1);
    bdy_auth *fresh = NULL;
    bdy_errbuf eb;
    assert_int_equal(bdy_auth_load(f->tokens2, &fresh, &eb), 0);
    assert_int_equal(bdy_http_server_set_auth(f->server, fresh), 0); /* the server's now */

    reply r;
    perform(f, &(request){.path = "/v1/echo", .token = "good-token"}, &r);
    expect_error(&r, 401, "Unauthorized");
    reply_free(&r);
    perform(f, &(request){.path = "/v1/echo", .token = "fresh-token"}, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(jstr(r.json, "principal", NULL), "fresh");
    reply_free(&r);

    /* Off on loopback: requests pass with no principal. */
    bdy_http_server_set_auth(f->server, NULL);
    perform(f, &(request){.path = "/v1/echo"}, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(jstr(r.json, "principal", NULL), "(none)");
    reply_free(&r);
}

/* ---- deferred answers ------------------------------------------------------ */

/* The value of a rendered sample, or -1 when it is missing. */
static double sample_value(const char *text, const char *sample)
{
    const char *p = strstr(text, sample);
    if (p == NULL)
        return -1;
    return strtod(p + strlen(sample), NULL);
}

/* A handler defers; another thread answers 100 ms later; the client gets
 * that answer, and the request is counted once answered. */
static void test_deferred_answer(void **state)
{
    fixture *f = *state;
    finisher w = {.f = f, .count = 1, .delay_ms = 100};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, finisher_main, &w), 0);
    reply r;
    uint64_t t0 = bdy_monotonic_ns();
    perform(f,
            &(request){.method = "POST",
                       .path = "/v1/defer",
                       .token = "good-token",
                       .content_type = "application/json",
                       .body = "{\"n\":1}"},
            &r);
    uint64_t took = bdy_monotonic_ns() - t0;
    pthread_join(t, NULL);
    assert_int_equal(w.done, 1);
    if (r.status != 201)
        fail_msg("status %ld (body %s, curl %d)", r.status, r.body.data ? r.body.data : "",
                 (int)r.cc);
    char v[64];
    assert_string_equal(header_value(&r, "X-Deferred", v, sizeof(v)), "yes");
    assert_string_equal(header_value(&r, "Content-Type", v, sizeof(v)), "application/json");
    assert_string_equal(jstr(r.json, "method", NULL), "POST");
    assert_string_equal(jstr(r.json, "path", NULL), "/v1/defer");
    assert_string_equal(jstr(r.json, "body", NULL), "{\"n\":1}");
    /* The deferred request gives its principal up when its handler returns,
     * so a token reload never waits on a parked request. */
    assert_string_equal(jstr(r.json, "principal", NULL), "(none)");
    /* The answer is the finisher's, so it cannot have come sooner. */
    assert_true(took >= 100ull * 1000 * 1000);
    reply_free(&r);
    assert_int_equal(atomic_load(&f->defer_failed), 0);

    /* Counted once answered, with the wait in its duration. */
    sleep_ms(100);
    bdy_buf b;
    bdy_buf_init(&b, 1 << 20);
    assert_int_equal(bdy_metrics_render(f->metrics, &b), 0);
    assert_non_null(strstr(
        b.data,
        "bindery_http_requests_total{method=\"POST\",route=\"/v1/defer\",code=\"201\"} 1\n"));
    assert_non_null(
        strstr(b.data, "bindery_http_request_duration_seconds_count{route=\"/v1/defer\"} 1\n"));
    double sum =
        sample_value(b.data, "bindery_http_request_duration_seconds_sum{route=\"/v1/defer\"} ");
    if (sum < 0.1)
        fail_msg("duration sum %f, want the 100 ms wait included", sum);
    bdy_buf_free(&b);

    /* Authentication still comes first: the handler never runs. */
    int calls = atomic_load(&f->handler_calls);
    perform(f,
            &(request){.method = "POST",
                       .path = "/v1/defer",
                       .content_type = "application/json",
                       .body = "{}"},
            &r);
    expect_error(&r, 401, "Unauthorized");
    reply_free(&r);
    assert_int_equal(atomic_load(&f->handler_calls), calls);
}

/* Hundreds of requests wait at once on a server with two workers: no
 * worker is blocked by them, so a plain request still gets through. */
static void test_deferred_many(void **state)
{
    fixture *f = *state;
    CURLM *m = curl_multi_init();
    assert_non_null(m);
    CURL *easy[MANY_DEFERRED];
    bdy_buf bodies[MANY_DEFERRED];
    char posts[MANY_DEFERRED][32];
    long status[MANY_DEFERRED];
    bool done[MANY_DEFERRED];
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/defer", f->port);
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Authorization: Bearer good-token");
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    for (int i = 0; i < MANY_DEFERRED; i++) {
        snprintf(posts[i], sizeof(posts[i]), "{\"i\":%d}", i);
        bdy_buf_init(&bodies[i], 4096);
        status[i] = 0;
        done[i] = false;
        easy[i] = curl_easy_init();
        assert_non_null(easy[i]);
        curl_easy_setopt(easy[i], CURLOPT_URL, url);
        curl_easy_setopt(easy[i], CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(easy[i], CURLOPT_POSTFIELDS, posts[i]);
        curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, collect_cb);
        curl_easy_setopt(easy[i], CURLOPT_WRITEDATA, &bodies[i]);
        curl_easy_setopt(easy[i], CURLOPT_TIMEOUT, 60L);
        curl_easy_setopt(easy[i], CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(easy[i], CURLOPT_PRIVATE, (void *)(intptr_t)i);
        assert_int_equal(curl_multi_add_handle(m, easy[i]), CURLM_OK);
    }

    /* Drive the clients until every request waits in the server. */
    int finished = 0;
    int running = 0;
    uint64_t until = bdy_monotonic_ns() + 30ull * 1000 * 1000 * 1000;
    while (!held_wait(f, MANY_DEFERRED, 0) && bdy_monotonic_ns() < until) {
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 20, NULL);
        int left = 0;
        for (CURLMsg *msg = curl_multi_info_read(m, &left); msg != NULL;
             msg = curl_multi_info_read(m, &left))
            finished += msg->msg == CURLMSG_DONE;
    }
    if (!held_wait(f, MANY_DEFERRED, 0))
        fail_msg("only %zu of %d requests reached the handler", f->held.n, MANY_DEFERRED);
    assert_int_equal(finished, 0);

    /* Both workers are free although every deferred request still waits. */
    reply r;
    perform(f, &(request){.path = "/healthz"}, &r);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    curl_multi_perform(m, &running);
    assert_int_equal(running, MANY_DEFERRED);

    finisher w = {.f = f, .count = MANY_DEFERRED};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, finisher_main, &w), 0);
    until = bdy_monotonic_ns() + 30ull * 1000 * 1000 * 1000;
    while (finished < MANY_DEFERRED && bdy_monotonic_ns() < until) {
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 20, NULL);
        int left = 0;
        for (CURLMsg *msg = curl_multi_info_read(m, &left); msg != NULL;
             msg = curl_multi_info_read(m, &left)) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            void *priv = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
            int i = (int)(intptr_t)priv;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status[i]);
            done[i] = true;
            finished++;
        }
    }
    pthread_join(t, NULL);
    assert_int_equal(w.done, MANY_DEFERRED);
    assert_int_equal(finished, MANY_DEFERRED);
    for (int i = 0; i < MANY_DEFERRED; i++) {
        assert_true(done[i]);
        if (status[i] != 201)
            fail_msg("request %d: status %ld", i, status[i]);
        json_object *o = json_tokener_parse(bodies[i].data);
        assert_non_null(o);
        /* Each client got the answer to its own request. */
        assert_string_equal(jstr(o, "body", NULL), posts[i]);
        json_object_put(o);
        curl_multi_remove_handle(m, easy[i]);
        curl_easy_cleanup(easy[i]);
        bdy_buf_free(&bodies[i]);
    }
    curl_slist_free_all(h);
    curl_multi_cleanup(m);
    assert_int_equal(atomic_load(&f->defer_failed), 0);
}

/* The answer can be ready before the handler returns, i.e. before the
 * connection would be suspended. */
static void test_deferred_finish_in_handler(void **state)
{
    fixture *f = *state;
    reply r;
    char v[64];
    perform(f, &(request){.path = "/v1/defer-sync"}, &r);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.body.data, "{\"sync\":true}");
    assert_string_equal(header_value(&r, "X-Deferred", v, sizeof(v)), "sync");
    reply_free(&r);
    /* A second defer in the same handler is refused. */
    assert_int_equal(atomic_load(&f->second_defer_null), 1);

    /* A finisher that answers the moment the handler hands over races the
     * handler's return; whichever wins, the client gets the answer. */
    finisher w = {.f = f, .count = 30};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, finisher_main, &w), 0);
    for (int i = 0; i < 30; i++) {
        char body[32];
        snprintf(body, sizeof(body), "{\"race\":%d}", i);
        perform(f,
                &(request){.method = "POST",
                           .path = "/v1/defer",
                           .token = "good-token",
                           .content_type = "application/json",
                           .body = body},
                &r);
        assert_int_equal(r.status, 201);
        assert_string_equal(jstr(r.json, "body", NULL), body);
        reply_free(&r);
    }
    pthread_join(t, NULL);
    assert_int_equal(w.done, 30);

    /* An owner that finishes without an answer gets the client a 500. */
    client cl = {.f = f,
                 .rq = {.method = "POST",
                        .path = "/v1/defer",
                        .token = "good-token",
                        .content_type = "application/json",
                        .body = "{}"}};
    assert_int_equal(pthread_create(&t, NULL, client_main, &cl), 0);
    bdy_http_deferred *d = held_take(f, 10000);
    assert_non_null(d);
    bdy_http_deferred_finish(d);
    pthread_join(t, NULL);
    expect_error(&cl.r, 500, "InternalError");
    reply_free(&cl.r);
    assert_int_equal(atomic_load(&f->defer_failed), 0);
}

/* Opens a raw connection and sends a whole request to /v1/defer; returns
 * the socket. */
static int send_deferred_raw(const fixture *f)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    const char req[] = "POST /v1/defer HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good-token\r\n"
                       "Content-Type: application/json\r\nContent-Length: 10\r\n\r\n"
                       "{\"gone\":1}";
    assert_int_equal(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL), (ssize_t)(sizeof(req) - 1));
    return fd;
}

/* The client hangs up while its request waits; the later finish must
 * neither crash nor leak, and the request must not hold up stop(). */
static void test_deferred_client_gone(void **state)
{
    fixture *f = *state;
    int fd = send_deferred_raw(f);
    assert_true(held_wait(f, 1, 10000));
    close(fd);
    sleep_ms(50);
    bdy_http_deferred *d = held_take(f, 0);
    assert_non_null(d);
    /* The copies outlive what MHD knew of the request. */
    assert_string_equal(bdy_http_deferred_request(d)->path, "/v1/defer");
    assert_string_equal(bdy_http_deferred_request(d)->body, "{\"gone\":1}");
    assert_null(bdy_http_query(bdy_http_deferred_request(d), "x"));
    owner_answer(d, 201);

    reply r;
    perform(f, &(request){.path = "/healthz"}, &r);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    /* The resumed connection found its client gone and completed, so stop()
     * has nothing to wait for (it would wait 10 s otherwise). */
    sleep_ms(200);
    uint64_t t0 = bdy_monotonic_ns();
    bdy_http_server_stop(f->server);
    assert_true(bdy_monotonic_ns() - t0 < 2000ull * 1000 * 1000);
}

/* A client that sent more than its request (as a TLS client sends
 * close_notify) and then hung up is gone all the same, though unread
 * bytes wait on its socket. */
static void test_deferred_client_gone_after_more_bytes(void **state)
{
    fixture *f = *state;
    int fd = send_deferred_raw(f);
    assert_true(held_wait(f, 1, 10000));
    bdy_http_deferred *d = held_take(f, 0);
    assert_non_null(d);
    sleep_ms(50); /* suspended once the handler has returned */
    assert_false(bdy_http_deferred_client_gone(d));
    assert_int_equal(send(fd, "\x15\x03\x03", 3, MSG_NOSIGNAL), 3);
    sleep_ms(50);
    assert_false(bdy_http_deferred_client_gone(d)); /* bytes alone are no hang-up */
    close(fd);
    bool gone = false;
    for (int waited = 0; waited < 2000 && !gone; waited += 20) {
        gone = bdy_http_deferred_client_gone(d);
        if (!gone)
            sleep_ms(20);
    }
    assert_true(gone);
    owner_answer(d, 201);
}

/* Opens GET path (a stream route) with a small receive buffer, reads
 * nothing, and returns the socket once the handler has begun the stream. */
static int open_stream_at(fixture *f, const char *path, bdy_http_stream **st)
{
    atomic_store(&f->stream, NULL);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    char req[128];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    assert_int_equal(write(fd, req, (size_t)n), (ssize_t)n);
    for (int waited = 0; waited < 5000 && atomic_load(&f->stream) == NULL; waited += 10)
        sleep_ms(10);
    *st = atomic_load(&f->stream);
    assert_non_null(*st);
    return fd;
}

static int open_stream(fixture *f, bdy_http_stream **st)
{
    return open_stream_at(f, "/v1/stream", st);
}

/* A stream with nothing to send outlives the connection timeout; one
 * whose client reads nothing of what waits is closed after it, where it
 * used to hold its connection and bytes for good. A write waiting for room
 * meanwhile fails then, BDY_ESHUTDOWN. */
static void test_stream_stall_times_out(void **state)
{
    fixture *f = *state;
    bdy_http_stream *idle = NULL;
    int idle_fd = open_stream(f, &idle);
    bdy_http_stream *stuck = NULL;
    int stuck_fd = open_stream(f, &stuck);
    static char block[64 * 1024];
    memset(block, 'x', sizeof(block));
    /* Until the socket buffers are full, the cap is reached, and a write
     * waits for room until the stalled connection is closed: at most 16 MiB. */
    int rc = 0;
    for (int i = 0; i < 256 && rc == 0; i++) {
        rc = bdy_http_stream_write(stuck, block, sizeof(block));
        if (i % 8 == 7)
            sleep_ms(5); /* let the worker move what it can into the socket */
    }
    assert_int_equal(rc, BDY_ESHUTDOWN);
    bool closed = false;
    for (int waited = 0; waited < 8000 && !closed; waited += 50) {
        closed = !bdy_http_stream_open(stuck);
        sleep_ms(50);
    }
    assert_true(closed);
    assert_int_equal(bdy_http_stream_write(stuck, "x", 1), BDY_ESHUTDOWN);
    assert_true(bdy_http_stream_open(idle));
    bdy_http_stream_end(stuck);
    bdy_http_stream_end(idle);
    close(stuck_fd);
    close(idle_fd);
}

/* Reads n bytes (or fewer if the connection ends or stalls for 5 s). */
static size_t read_some(int fd, size_t n)
{
    static char sink[64 * 1024];
    size_t got = 0;
    while (got < n) {
        size_t want = n - got < sizeof(sink) ? n - got : sizeof(sink);
        ssize_t r = read(fd, sink, want);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

/* The cap bounds the bytes waiting to be sent, not all the bytes a stream
 * has sent: a client that reads steadily but 3 MiB behind receives 8 MiB
 * more. (Sent bytes stayed in the buffer until it drained completely, so
 * such a client was cut off with BDY_ETOOBIG after 4 MiB in all.) */
static void test_stream_cap_counts_unsent_bytes(void **state)
{
    fixture *f = *state;
    bdy_http_stream *st = NULL;
    int fd = open_stream(f, &st);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    static char block[64 * 1024];
    memset(block, 'y', sizeof(block));
    for (int i = 0; i < 48; i++) /* 3 MiB ahead of the client */
        assert_int_equal(bdy_http_stream_write(st, block, sizeof(block)), 0);
    for (int i = 0; i < 128; i++) {
        int rc = bdy_http_stream_write(st, block, sizeof(block));
        if (rc != 0)
            fail_msg("write %d of 64 KiB after the first 3 MiB: %s", i, bdy_strerror(rc));
        assert_int_equal(read_some(fd, sizeof(block)), sizeof(block));
    }
    bdy_http_stream_end(st);
    close(fd);
}

/* Past the server's budget for unsent stream bytes, a stream holding more
 * than its share is cut at once (BDY_ETOOBIG), not waited for, while a
 * stream holding little may still write. (Each stream could hold 4 MiB,
 * so slow readers on every connection pinned gigabytes.) */
static void test_streams_share_a_budget(void **state)
{
    fixture *f = *state;
    /* Written before its handler returns, so nothing reaches the socket:
     * 16 blocks (1 MiB, the budget) go, the 17th is refused at once. */
    bdy_http_stream *hog = NULL;
    int hog_fd = open_stream_at(f, "/v1/stream-burst", &hog);
    assert_int_equal(f->burst_rc, BDY_ETOOBIG);
    assert_int_equal(f->burst_written, 16);
    /* Cut, not waited for: closed, what waited in it dropped. */
    assert_int_equal(bdy_http_stream_write(hog, "x", 1), BDY_ESHUTDOWN);
    /* A stream holding little may still write. */
    bdy_http_stream *small = NULL;
    int small_fd = open_stream(f, &small);
    static char block[1024];
    memset(block, 's', sizeof(block));
    assert_int_equal(bdy_http_stream_write(small, block, sizeof(block)), 0);
    bdy_http_stream_end(hog);
    bdy_http_stream_end(small);
    close(hog_fd);
    close(small_fd);
}

/* A stream cut over the budget while its client has part of a write ends
 * with a broken connection, not a clean end of body after the half: a
 * watch client would take half a JSON event for the end of the stream. */
static void test_stream_cut_mid_write_is_no_clean_end(void **state)
{
    fixture *f = *state;
    bdy_http_stream *st = NULL;
    int fd = open_stream(f, &st); /* small receive buffer; reads nothing yet */
    /* Writes until the stream is cut over the 1 MiB budget: by then the
     * socket is full and MHD holds part of what was written. */
    static char block[300 * 1024];
    memset(block, 'b', sizeof(block));
    size_t written = 0;
    int rc = 0;
    for (int i = 0; i < 40 && rc == 0; i++) {
        rc = bdy_http_stream_write(st, block, sizeof(block));
        if (rc == 0)
            written += sizeof(block);
        sleep_ms(20); /* MHD hands the socket what fits */
    }
    assert_int_equal(rc, BDY_ETOOBIG);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    static char got[16 * 1024 * 1024];
    size_t n = 0;
    for (ssize_t r; n < sizeof(got) - 1 && (r = read(fd, got + n, sizeof(got) - 1 - n)) > 0;)
        n += (size_t)r;
    got[n] = '\0';
    assert_true(n > 0);
    assert_true(n < written); /* the client had part of what was written */
    /* No last chunk: the body did not end cleanly. */
    assert_null(strstr(got, "\r\n0\r\n\r\n"));
    bdy_http_stream_end(st);
    close(fd);
}

typedef struct slow_reader {
    int fd;
    size_t want;
    size_t got;
} slow_reader;

/* Reads r->want bytes in small pieces with pauses: a client slower than
 * its producer. */
static void *slow_reader_main(void *arg)
{
    slow_reader *r = arg;
    static char sink[16 * 1024];
    while (r->got < r->want) {
        ssize_t n = read(r->fd, sink, sizeof(sink));
        if (n <= 0)
            break;
        r->got += (size_t)n;
        if (r->got % (1024 * 1024) < (size_t)n)
            sleep_ms(20);
    }
    return NULL;
}

/* A producer far ahead of a slow client waits for it instead of being cut
 * off: twelve MiB, three times the cap, all arrive. (A full buffer failed
 * the write with BDY_ETOOBIG, and a watch's initial list then ended
 * cleanly, cut short, as if it were whole.) */
static void test_stream_write_waits_for_a_slow_client(void **state)
{
    fixture *f = *state;
    bdy_http_stream *st = NULL;
    int fd = open_stream(f, &st);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    enum { BLOCK = 64 * 1024, BLOCKS = 192 };
    slow_reader r = {.fd = fd, .want = (size_t)BLOCK * BLOCKS};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, slow_reader_main, &r), 0);
    static char block[BLOCK];
    memset(block, 'z', sizeof(block));
    for (int i = 0; i < BLOCKS; i++) {
        int rc = bdy_http_stream_write(st, block, sizeof(block));
        if (rc != 0)
            fail_msg("write %d of %d: %s", i, BLOCKS, bdy_strerror(rc));
    }
    pthread_join(t, NULL);
    assert_true(r.got >= r.want); /* the body, plus chunk framing */
    bdy_http_stream_end(st);
    close(fd);
}

/* stop() answers the waiting requests 503 ShuttingDown and returns; the
 * owners finish theirs afterwards, even after the server is freed. */
static void test_deferred_stop(void **state)
{
    fixture *f = *state;
    enum { NCLIENTS = 3 };
    client cl[NCLIENTS];
    pthread_t t[NCLIENTS];
    for (int i = 0; i < NCLIENTS; i++) {
        cl[i] = (client){.f = f,
                         .rq = {.method = "POST",
                                .path = "/v1/defer",
                                .token = "good-token",
                                .content_type = "application/json",
                                .body = "{}"}};
        assert_int_equal(pthread_create(&t[i], NULL, client_main, &cl[i]), 0);
    }
    /* And one whose client has already hung up. */
    assert_true(held_wait(f, NCLIENTS, 10000));
    int fd = send_deferred_raw(f);
    assert_true(held_wait(f, NCLIENTS + 1, 10000));
    close(fd);

    uint64_t t0 = bdy_monotonic_ns();
    bdy_http_server_stop(f->server);
    uint64_t took = bdy_monotonic_ns() - t0;
    if (took >= 5000ull * 1000 * 1000)
        fail_msg("stop took %llu ms", (unsigned long long)(took / 1000000));
    char v[64];
    for (int i = 0; i < NCLIENTS; i++) {
        pthread_join(t[i], NULL);
        expect_error(&cl[i].r, 503, "ShuttingDown");
        assert_string_equal(header_value(&cl[i].r, "Connection", v, sizeof(v)), "close");
        /* Another replica, or this one restarted, can take it. */
        assert_string_equal(header_value(&cl[i].r, "Retry-After", v, sizeof(v)), "1");
        reply_free(&cl[i].r);
    }

    bdy_http_server_free(f->server);
    f->server = NULL;
    /* The owners had not finished; they do now, with the server gone. */
    for (int i = 0; i < NCLIENTS + 1; i++) {
        bdy_http_deferred *d = held_take(f, 0);
        assert_non_null(d);
        const bdy_http_request *req = bdy_http_deferred_request(d);
        assert_string_equal(req->method, "POST");
        assert_string_equal(req->path, "/v1/defer");
        owner_answer(d, 201);
    }
    assert_null(held_take(f, 0));
    assert_int_equal(atomic_load(&f->defer_failed), 0);
}

/* A handler that defers after stop() has begun gets its request answered
 * 503 at once rather than suspended (which would block the stop). */
static void test_defer_while_stopping(void **state)
{
    fixture *f = *state;
    client cl = {.f = f, .rq = {.path = "/v1/defer-slow"}};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, client_main, &cl), 0);
    uint64_t until = bdy_monotonic_ns() + 10ull * 1000 * 1000 * 1000;
    while (atomic_load(&f->handler_calls) == 0 && bdy_monotonic_ns() < until)
        sleep_ms(5);
    assert_int_equal(atomic_load(&f->handler_calls), 1);
    uint64_t t0 = bdy_monotonic_ns();
    bdy_http_server_stop(f->server);
    assert_true(bdy_monotonic_ns() - t0 < 5000ull * 1000 * 1000);
    pthread_join(t, NULL);
    expect_error(&cl.r, 503, "ShuttingDown");
    reply_free(&cl.r);
    /* The handler did defer; its owner still finishes. */
    bdy_http_deferred *d = held_take(f, 0);
    assert_non_null(d);
    owner_answer(d, 201);
    assert_int_equal(atomic_load(&f->defer_failed), 0);
}

/* Deferring needs a live request; NULL is harmless everywhere. */
static void test_defer_bad_input(void **state)
{
    (void)state;
    assert_null(bdy_http_defer(NULL));
    bdy_http_request req = {.method = "GET", .path = "/"};
    assert_null(bdy_http_defer(&req));
    assert_null(bdy_http_deferred_response(NULL));
    assert_null(bdy_http_deferred_request(NULL));
    bdy_http_deferred_finish(NULL);
}

static void test_listen_rules(void **state)
{
    fixture *f = *state;
    bdy_errbuf eb;
    bdy_http_server *s = NULL;
    bdy_http_config cfg = {.listen = "0.0.0.0:0", .threads = 1};

    /* Non-loopback without auth: refused, with a message that says why. */
    assert_int_equal(bdy_http_server_new(&cfg, NULL, &s, &eb), 0);
    assert_int_equal(
        bdy_http_route(s, "GET", "/healthz", BDY_ROUTE_EXACT, BDY_VERB_NONE, health_cb, NULL), 0);
    assert_int_equal(
        bdy_http_route(s, "GET", "/read", BDY_ROUTE_EXACT, BDY_VERB_READ, health_cb, NULL), 0);
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_http_server_start(s, &eb), BDY_EFORBIDDEN);
    assert_non_null(strstr(eb.message, "without authentication"));
    assert_int_equal(bdy_http_server_port(s), 0);
    /* With a token set it starts (one thread is fine too). */
    bdy_auth *own = NULL;
    assert_int_equal(bdy_auth_load(f->tokens, &own, &eb), 0);
    assert_int_equal(bdy_http_server_set_auth(s, own), 0);
    assert_int_equal(bdy_http_server_start(s, &eb), 0);
    assert_true(bdy_http_server_port(s) > 0);
    assert_int_equal(bdy_http_server_start(s, &eb), BDY_EBUSY);
    assert_int_equal(
        bdy_http_route(s, "GET", "/late", BDY_ROUTE_EXACT, BDY_VERB_NONE, health_cb, NULL),
        BDY_EBUSY);
    fixture probe = {.port = bdy_http_server_port(s)};
    reply r;
    perform(&probe, &(request){.path = "/healthz"}, &r);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    perform(&probe, &(request){.path = "/read", .token = "good-token"}, &r);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    /* Turning auth off on a public address fails closed. */
    bdy_http_server_set_auth(s, NULL);
    perform(&probe, &(request){.path = "/read", .token = "good-token"}, &r);
    expect_error(&r, 401, "Unauthorized");
    assert_non_null(strstr(jstr(r.json, "error", "message"), "no token set"));
    reply_free(&r);
    perform(&probe, &(request){.path = "/healthz"}, &r);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    bdy_http_server_free(s);
    s = NULL;

    /* Bad addresses. */
    static const char *const bad[] = {"127.0.0.1", "::1:80",        "[::1]",      "[::1]80",
                                      "host:80",   "1.2.3.4:99999", "127.0.0.1:", "127.0.0.1:8o",
                                      "[zz]:1",    "256.1.1.1:80",  ":80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cfg.listen = bad[i];
        assert_int_equal(bdy_http_server_new(&cfg, NULL, &s, &eb), 0);
        bdy_errbuf_clear(&eb);
        if (bdy_http_server_start(s, &eb) != BDY_EINVAL)
            fail_msg("%s was accepted", bad[i]);
        assert_non_null(strstr(eb.message, bad[i]));
        bdy_http_server_free(s);
        s = NULL;
    }

    /* localhost is loopback, so no auth is needed; a taken port is EIO. */
    char addr[64];
    snprintf(addr, sizeof(addr), "localhost:%u", f->port);
    cfg.listen = addr;
    assert_int_equal(bdy_http_server_new(&cfg, NULL, &s, &eb), 0);
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_http_server_start(s, &eb), BDY_EIO);
    assert_non_null(strstr(eb.message, "in use"));
    bdy_http_server_free(s);
    s = NULL;

    /* IPv6 loopback, where the host has it. */
    int probe6 = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool have_v6 = probe6 >= 0 && bind(probe6, (struct sockaddr *)&a6, sizeof(a6)) == 0;
    if (probe6 >= 0)
        close(probe6);
    if (have_v6) {
        cfg.listen = "[::1]:0";
        assert_int_equal(bdy_http_server_new(&cfg, NULL, &s, &eb), 0);
        assert_int_equal(bdy_http_server_start(s, &eb), 0);
        assert_true(bdy_http_server_port(s) > 0);
        bdy_http_server_free(s);
        s = NULL;
        cfg.listen = "[::]:0";
        assert_int_equal(bdy_http_server_new(&cfg, NULL, &s, &eb), 0);
        assert_int_equal(bdy_http_server_start(s, &eb), BDY_EFORBIDDEN);
        bdy_http_server_free(s);
        s = NULL;
    }

    /* Configuration errors. */
    cfg.listen = "127.0.0.1:0";
    cfg.threads = 0;
    assert_int_equal(bdy_http_server_new(&cfg, NULL, &s, &eb), BDY_EINVAL);
    assert_null(s);
    cfg.threads = 1;
    cfg.listen = NULL;
    assert_int_equal(bdy_http_server_new(&cfg, NULL, &s, &eb), BDY_EINVAL);
    bdy_http_server_free(NULL);
}

static void test_route_registration(void **state)
{
    (void)state;
    bdy_errbuf eb;
    bdy_http_server *s = NULL;
    bdy_http_config cfg = {.listen = "127.0.0.1:0", .threads = 1};
    assert_int_equal(bdy_http_server_new(&cfg, NULL, &s, &eb), 0);
    const char *json[] = {"application/json", NULL};
    assert_int_equal(bdy_http_route_accept(s, json), BDY_EINVAL); /* no route yet */
    assert_int_equal(
        bdy_http_route(s, "GET", "healthz", BDY_ROUTE_EXACT, BDY_VERB_NONE, health_cb, NULL),
        BDY_EINVAL);
    assert_int_equal(
        bdy_http_route(s, "GE T", "/x", BDY_ROUTE_EXACT, BDY_VERB_NONE, health_cb, NULL),
        BDY_EINVAL);
    assert_int_equal(bdy_http_route(s, "GET", "/x", BDY_ROUTE_EXACT, BDY_VERB_NONE, NULL, NULL),
                     BDY_EINVAL);
    assert_int_equal(
        bdy_http_route(s, NULL, "/x", BDY_ROUTE_PREFIX, BDY_VERB_READ, health_cb, NULL), 0);
    const char *none[] = {NULL};
    assert_int_equal(bdy_http_route_accept(s, none), BDY_EINVAL);
    const char *nine[] = {"a/a", "a/b", "a/c", "a/d", "a/e", "a/f", "a/g", "a/h", "a/i", NULL};
    assert_int_equal(bdy_http_route_accept(s, nine), BDY_EINVAL);
    assert_int_equal(bdy_http_route_accept(s, json), 0);
    assert_int_equal(bdy_http_route_accept(s, json), 0); /* replaces */
    bdy_http_server_free(s);
}

/* Response helpers work without a server, for handler unit tests. */
static void test_response_helpers(void **state)
{
    (void)state;
    bdy_http_response resp;
    bdy_http_response_init(&resp);
    bdy_http_error(&resp, 400, "InvalidRequest", "field \"pool\" is required", 0);
    assert_int_equal(resp.status, 400);
    assert_string_equal(resp.body.data, "{\"error\":{\"code\":\"InvalidRequest\",\"message\":"
                                        "\"field \\\"pool\\\" is required\"}}");
    assert_int_equal(resp.nheaders, 0);

    bdy_http_set_header(&resp, "Location", "/v1/allocations/a");
    bdy_http_set_header(&resp, "location", "/v1/allocations/b"); /* replaces */
    assert_int_equal(resp.nheaders, 1);
    assert_string_equal(resp.header_values[0], "/v1/allocations/b");
    bdy_http_set_header(&resp, "X-Bad", "a\r\nSet-Cookie: x"); /* injection: dropped */
    bdy_http_set_header(&resp, "Bad Name", "v");
    bdy_http_set_header(&resp, "X-This-Name-Is-Far-Too-Long-For-The-Slot", "v");
    assert_int_equal(resp.nheaders, 1);
    for (int i = 0; i < BDY_HTTP_MAX_RESPONSE_HEADERS + 3; i++) {
        char name[16];
        snprintf(name, sizeof(name), "X-H%d", i);
        bdy_http_set_header(&resp, name, "v");
    }
    assert_int_equal(resp.nheaders, BDY_HTTP_MAX_RESPONSE_HEADERS);

    json_object *o = json_object_new_object();
    json_object_object_add(o, "url", json_object_new_string("/a/b"));
    bdy_http_json(&resp, 201, o);
    json_object_put(o);
    assert_int_equal(resp.status, 201);
    assert_string_equal(resp.body.data, "{\"url\":\"/a/b\"}");
    assert_string_equal(resp.content_type, "application/json");
    bdy_http_response_free(&resp);
    bdy_http_response_free(NULL);

    /* The server-side query/header lookups need a live request. */
    bdy_http_request req = {.method = "GET", .path = "/"};
    assert_null(bdy_http_query(&req, "x"));
    assert_null(bdy_http_header(&req, "Host"));
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_media_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_swap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_swap_does_not_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_drains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_many, setup_two_threads, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_finish_in_handler, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_client_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_client_gone_after_more_bytes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_stall_times_out, setup_short_timeout, teardown),
        cmocka_unit_test_setup_teardown(test_stream_cap_counts_unsent_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_cut_mid_write_is_no_clean_end,
                                        setup_small_stream_budget, teardown),
        cmocka_unit_test_setup_teardown(test_streams_share_a_budget, setup_small_stream_budget,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_write_waits_for_a_slow_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defer_while_stopping, setup, teardown),
        cmocka_unit_test(test_defer_bad_input),
        cmocka_unit_test_setup_teardown(test_listen_rules, setup, teardown),
        cmocka_unit_test(test_route_registration),
        cmocka_unit_test(test_response_helpers),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
