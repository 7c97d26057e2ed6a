/* The load tool's HTTP client: one libcurl multi handle, any number of
 * concurrent transfers, every one bounded in time (a total timeout for
 * requests, a low-speed limit for watch streams), keep-alive connections
 * reused from the multi handle's cache. */
#include "loadtest.h"

#include "bindery/jsonutil.h"

#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <unistd.h>

/* A watch stream that delivers nothing for this long is dead (servers send
 * bookmarks or close within timeoutSeconds, which we set below this). */
#define LT_STREAM_IDLE_S 90L

struct lt_client {
    CURLM *multi;
    const lt_target *target;
    char auth[BDY_KUBE_TOKEN_MAX + 32];
    size_t inflight;
    lt_xfer *head; /* running transfers */
    /* Wakes poll at a due time finer than curl_multi_poll's milliseconds:
     * an open-loop run at 1,000/s has its next request due in under 1 ms
     * nearly always, and polling with 0 instead made the client spin on a
     * whole CPU, which on a 2-CPU machine it took from the server measured. */
    int timer_fd;
};

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *data)
{
    lt_xfer *x = data;
    size_t n = size * nmemb;
    if (x->stream) {
        if (x->line_rc != 0)
            return 0; /* stops the transfer */
        int rc = bdy_linesplit_feed(&x->lines, ptr, n, x->line_cb, x->line_data);
        if (rc != 0) {
            x->line_rc = rc;
            return 0;
        }
        return n;
    }
    /* Answers beyond the cap are cut, not grown without bound; the status
     * and the first LT_BODY_MAX bytes are all the tool reads. */
    size_t room = x->body.cap - x->body.len;
    if (room > 0)
        bdy_buf_append(&x->body, ptr, n < room ? n : room);
    return n;
}

int lt_client_new(const lt_target *t, lt_client **out)
{
    lt_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return BDY_ENOMEM;
    c->target = t;
    /* Timers of this thread fire when due, not up to 50 us later (the
     * default slack), so a paced request leaves on time. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    c->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (c->timer_fd < 0 || (c->multi = curl_multi_init()) == NULL) {
        if (c->timer_fd >= 0)
            close(c->timer_fd);
        free(c);
        return BDY_ENOMEM;
    }
    if (t->token != NULL && t->token[0] != '\0')
        snprintf(c->auth, sizeof(c->auth), "Authorization: Bearer %s", t->token);
    *out = c;
    return 0;
}

void lt_client_limit_connections(lt_client *c, unsigned n)
{
    curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)n);
}

static void xfer_free(lt_xfer *x)
{
    if (x == NULL)
        return;
    if (x->easy != NULL)
        curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->headers);
    free(x->req_body);
    bdy_buf_free(&x->body);
    if (x->stream)
        bdy_linesplit_free(&x->lines);
    free(x);
}

void lt_client_free(lt_client *c)
{
    if (c == NULL)
        return;
    /* Transfers still running are dropped without their callbacks. */
    while (c->head != NULL) {
        lt_xfer *x = c->head;
        c->head = x->next;
        curl_multi_remove_handle(c->multi, x->easy);
        xfer_free(x);
    }
    if (c->multi != NULL) {
        curl_multi_cleanup(c->multi);
    }
    close(c->timer_fd);
    free(c);
}

/* Applies the target's TLS material and common options to x's handle. */
static void setup_easy(lt_client *c, lt_xfer *x, const char *method, const char *url,
                       double timeout_s)
{
    const lt_target *t = c->target;
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->curl_err);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "bindery-load-test/" BINDERY_VERSION);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(t->connect_timeout_s * 1000));
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (timeout_s > 0) {
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1000));
    } else {
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, LT_STREAM_IDLE_S);
    }
    if (strcmp(method, "GET") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (x->req_body != NULL) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->req_body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(x->req_body));
    }
    if (t->insecure || t->kc.insecure) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (t->cacert != NULL) {
        curl_easy_setopt(e, CURLOPT_CAINFO, t->cacert);
    } else if (t->kc.ca_pem != NULL) {
        struct curl_blob b = {t->kc.ca_pem, t->kc.ca_pem_len, CURL_BLOB_NOCOPY};
        curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &b);
    }
    if (t->kc.cert_pem != NULL && t->kc.key_pem != NULL) {
        struct curl_blob cb = {t->kc.cert_pem, t->kc.cert_pem_len, CURL_BLOB_NOCOPY};
        struct curl_blob kb = {t->kc.key_pem, t->kc.key_pem_len, CURL_BLOB_NOCOPY};
        curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &cb);
        curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &kb);
        curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
    }
    x->headers = curl_slist_append(x->headers, "Accept: application/json");
    if (x->req_body != NULL)
        x->headers = curl_slist_append(x->headers, "Content-Type: application/json");
    /* No "Expect: 100-continue" round trip before small bodies. */
    x->headers = curl_slist_append(x->headers, "Expect:");
    if (c->auth[0] != '\0')
        x->headers = curl_slist_append(x->headers, c->auth);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
}

static lt_xfer *start(lt_client *c, const char *method, const char *path, const char *body,
                      double timeout_s, bool stream)
{
    lt_xfer *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return NULL;
    x->client = c;
    bdy_buf_init(&x->body, LT_BODY_MAX);
    x->stream = stream;
    if (stream)
        bdy_linesplit_init(&x->lines, BDY_WATCH_LINE_MAX);
    if ((x->easy = curl_easy_init()) == NULL || (body != NULL && !(x->req_body = strdup(body)))) {
        xfer_free(x);
        return NULL;
    }
    char url[4096];
    snprintf(url, sizeof(url), "%s%s", c->target->base, path);
    setup_easy(c, x, method, url,
               stream          ? 0
               : timeout_s > 0 ? timeout_s
                               : c->target->request_timeout_s);
    x->start_ns = bdy_monotonic_ns();
    x->sched_ns = x->start_ns;
    if (curl_multi_add_handle(c->multi, x->easy) != CURLM_OK) {
        xfer_free(x);
        return NULL;
    }
    c->inflight++;
    x->next = c->head;
    if (c->head != NULL)
        c->head->prev = x;
    c->head = x;
    return x;
}

lt_xfer *lt_client_start(lt_client *c, const char *method, const char *path, const char *body,
                         double timeout_s, lt_done_cb done, void *data)
{
    lt_xfer *x = start(c, method, path, body, timeout_s, false);
    if (x != NULL) {
        x->done = done;
        x->done_data = data;
    }
    return x;
}

lt_xfer *lt_client_stream(lt_client *c, const char *path, bdy_line_cb line_cb, void *line_data,
                          lt_done_cb done, void *data)
{
    lt_xfer *x = start(c, "GET", path, NULL, 0, true);
    if (x != NULL) {
        x->line_cb = line_cb;
        x->line_data = line_data;
        x->done = done;
        x->done_data = data;
    }
    return x;
}

static void finish(lt_client *c, lt_xfer *x, CURLcode result)
{
    curl_multi_remove_handle(c->multi, x->easy);
    c->inflight--;
    if (x->prev != NULL)
        x->prev->next = x->next;
    else
        c->head = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
    x->result = result;
    x->done_ns = bdy_monotonic_ns();
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
    if (result != CURLE_OK)
        x->status = 0;
    if (x->done != NULL)
        x->done(x, x->done_data);
    xfer_free(x);
}

void lt_client_cancel(lt_client *c, lt_xfer *x)
{
    if (x != NULL)
        finish(c, x, CURLE_ABORTED_BY_CALLBACK);
}

/* Waits until activity or timeout_ns, whichever comes first. */
static int wait_ns(lt_client *c, int64_t timeout_ns)
{
    struct itimerspec due = {.it_value = {.tv_sec = (time_t)(timeout_ns / 1000000000),
                                          .tv_nsec = (long)(timeout_ns % 1000000000)}};
    if (timerfd_settime(c->timer_fd, 0, &due, NULL) != 0)
        return BDY_EIO;
    struct curl_waitfd timer = {.fd = c->timer_fd, .events = CURL_WAIT_POLLIN};
    /* The timer ends the wait; the millisecond bound is only a backstop. */
    int backstop_ms = (int)(timeout_ns / 1000000) + 2;
    CURLMcode mc = curl_multi_poll(c->multi, &timer, 1, backstop_ms, NULL);
    struct itimerspec off = {0};
    timerfd_settime(c->timer_fd, 0, &off, NULL);
    uint64_t expirations;
    while (read(c->timer_fd, &expirations, sizeof(expirations)) > 0)
        ;
    return mc == CURLM_OK ? 0 : BDY_EIO;
}

/* Reports every finished transfer; returns how many there were. */
static size_t finish_done(lt_client *c)
{
    size_t n = 0;
    CURLMsg *m;
    int left = 0;
    while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        lt_xfer *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        finish(c, x, m->data.result);
        n++;
    }
    return n;
}

int lt_client_poll_ns(lt_client *c, int64_t timeout_ns)
{
    int running = 0;
    if (curl_multi_perform(c->multi, &running) != CURLM_OK)
        return BDY_EIO;
    /* A transfer can finish inside that call: libcurl sends a new request
     * and reads an answer that is already there. It is reported now, not
     * after the wait: a server answering within ~0.1 ms read as one paced
     * interval (10 ms at 100/s) for a third of the requests when it waited
     * first, and a closed-loop caller gets to start the next request. */
    if (finish_done(c) > 0 || timeout_ns <= 0)
        return 0;
    if (wait_ns(c, timeout_ns) != 0)
        return BDY_EIO;
    if (curl_multi_perform(c->multi, &running) != CURLM_OK)
        return BDY_EIO;
    finish_done(c);
    return 0;
}

int lt_client_poll(lt_client *c, int timeout_ms)
{
    return lt_client_poll_ns(c, (int64_t)timeout_ms * 1000000);
}

size_t lt_client_inflight(const lt_client *c)
{
    return c->inflight;
}

typedef struct sync_result {
    bool done;
    long status;
    char *body;
    char err[256];
} sync_result;

static void sync_done(lt_xfer *x, void *data)
{
    sync_result *r = data;
    r->done = true;
    r->status = x->status;
    if (x->status == 0)
        lt_error_message(x, r->err, sizeof(r->err));
    r->body = bdy_buf_steal(&x->body);
}

long lt_client_request(lt_client *c, const char *method, const char *path, const char *body,
                       char **body_out, char *err, size_t errlen)
{
    sync_result r = {0};
    if (body_out != NULL)
        *body_out = NULL;
    if (lt_client_start(c, method, path, body, 0, sync_done, &r) == NULL) {
        snprintf(err, errlen, "out of memory");
        return 0;
    }
    /* The transfer has its own total timeout, so this loop ends. */
    while (!r.done)
        lt_client_poll(c, 100);
    if (r.status == 0)
        snprintf(err, errlen, "%s", r.err);
    if (body_out != NULL)
        *body_out = r.body;
    else
        free(r.body);
    return r.status;
}

/* The error code of a claim-API error body or a Kubernetes Status. */
static void body_code(const lt_xfer *x, char *code, size_t ccap, char *msg, size_t mcap)
{
    code[0] = '\0';
    msg[0] = '\0';
    if (x->body.len == 0)
        return;
    json_object *o = json_tokener_parse(x->body.data);
    if (o == NULL)
        return;
    json_object *e = bdy_jget(o, "error");
    const char *c = bdy_jstr(e, "code");
    const char *m = bdy_jstr(e, "message");
    bdy_kube_status st;
    if (c == NULL && bdy_kube_status_from_json(o, &st) == 0) {
        snprintf(code, ccap, "%s", st.reason);
        snprintf(msg, mcap, "%s", st.message);
    } else {
        snprintf(code, ccap, "%s", c ? c : "");
        snprintf(msg, mcap, "%s", m ? m : "");
    }
    json_object_put(o);
}

void lt_error_key(const lt_xfer *x, char *out, size_t cap)
{
    if (x->status == 0) {
        snprintf(out, cap, "transport: %s",
                 x->curl_err[0] ? x->curl_err : curl_easy_strerror(x->result));
        /* Timeouts carry the elapsed milliseconds; one key for all of them. */
        if (x->result == CURLE_OPERATION_TIMEDOUT)
            snprintf(out, cap, "transport: timed out");
        return;
    }
    char code[64];
    char msg[8];
    body_code(x, code, sizeof(code), msg, sizeof(msg));
    if (code[0] != '\0')
        snprintf(out, cap, "%ld %s", x->status, code);
    else
        snprintf(out, cap, "%ld", x->status);
}

void lt_error_message(const lt_xfer *x, char *out, size_t cap)
{
    if (x->status == 0) {
        snprintf(out, cap, "%s", x->curl_err[0] ? x->curl_err : curl_easy_strerror(x->result));
        return;
    }
    char code[64];
    char msg[512];
    body_code(x, code, sizeof(code), msg, sizeof(msg));
    if (code[0] != '\0')
        snprintf(out, cap, "HTTP %ld %s: %s", x->status, code, msg);
    else
        snprintf(out, cap, "HTTP %ld", x->status);
}

void lt_target_free(lt_target *t)
{
    if (t == NULL)
        return;
    free(t->base);
    bdy_kubeconfig_free(&t->kc);
    if (t->token != NULL)
        memset(t->token, 0, strlen(t->token));
    free(t->token);
    free(t->cacert);
    memset(t, 0, sizeof(*t));
}
