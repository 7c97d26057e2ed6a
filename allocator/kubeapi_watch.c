/* Watches: a chunked stream of {"type":...,"object":...} lines fed from a
 * store watch by a thread of its own.
 *
 * Without a resourceVersion (or "0") the watch starts with an ADDED event
 * for every object (the list is taken first, then the store watch starts
 * at the list's resourceVersion, so nothing falls in between); with one it
 * delivers every change after it, or a single 410 ERROR event when that
 * version is older than the retained history (the client relists).
 * sendInitialEvents=true adds the initial-events-end BOOKMARK. BOOKMARKs
 * (allowWatchBookmarks) go out after bookmark_interval_s without events;
 * their resourceVersion is the store's committed version sampled before an
 * idle wait, so every change up to it has been seen (the store appends to
 * the watch history before it publishes the version). timeoutSeconds ends
 * the stream cleanly.
 *
 * The thread holds its own store watch and stream; it checks at least once
 * a second whether the client is still there and whether the API stops. */
#include "kubeapi_internal.h"

#include "bindery/jsonutil.h"
#include "bindery/log.h"
#include "bindery/util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WATCH_POLL_MS 1000
/* Longest a watch from a version the store has not published yet waits for
 * it before it is refused as too large (on an HTTP worker: kept short). */
#define TOO_LARGE_WAIT_MS 500
/* The initial list of a watch from "now" goes out a page at a time, at the
 * client's pace: a watch holds one page, never the whole collection. */
#define INITIAL_PAGE 500u
#define INITIAL_PAGE_BYTES ((size_t)4 * 1024 * 1024)

typedef struct watch_job {
    bdy_kubeapi *k;
    bdy_http_stream *st;
    bdy_watch *w;
    bdy_resource_info info;
    bdy__kube_columns cols;
    bool table;
    bdy_kube_include include;
    bool bookmarks;
    bool initial_end;     /* sendInitialEvents: BOOKMARK after the initial events */
    json_object *initial; /* the initial list's first page: ADDED events to send first */
    char *initial_cont;   /* its continue token while more pages follow, owned */
    char *ns;             /* what the next pages are listed with, owned (NULL: none) */
    char *label_selector;
    char *field_selector;
    uint64_t start_rv;
    uint64_t timeout_ns;
} watch_job;

static void job_free(watch_job *j)
{
    if (j == NULL)
        return;
    if (j->w != NULL)
        bdy_store_watch_close(j->k->store, j->w);
    json_object_put(j->initial);
    free(j->initial_cont);
    free(j->ns);
    free(j->label_selector);
    free(j->field_selector);
    bdy__kube_columns_free(&j->cols);
    free(j);
}

static void release_slot(bdy_kubeapi *k)
{
    pthread_mutex_lock(&k->lock);
    k->nwatches--;
    pthread_cond_broadcast(&k->idle);
    pthread_mutex_unlock(&k->lock);
}

static bool stopping(bdy_kubeapi *k)
{
    pthread_mutex_lock(&k->lock);
    bool s = k->stopping;
    pthread_mutex_unlock(&k->lock);
    return s;
}

/* Writes one event line; the object is borrowed. */
static int send_event(bdy_http_stream *st, const char *type, json_object *object)
{
    json_object *ev = json_object_new_object();
    if (ev == NULL)
        return BDY_ENOMEM;
    json_object_object_add(ev, "type", json_object_new_string(type));
    json_object_object_add(ev, "object", json_object_get(object));
    const char *text =
        json_object_to_json_string_ext(ev, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    int rc = text != NULL ? bdy_http_stream_write(st, text, strlen(text)) : BDY_ENOMEM;
    if (rc == 0)
        rc = bdy_http_stream_write(st, "\n", 1);
    json_object_put(ev);
    return rc;
}

static int send_object(watch_job *j, const char *type, json_object *obj)
{
    if (!j->table)
        return send_event(j->st, type, obj);
    json_object *items = json_object_new_array();
    json_object_array_add(items, json_object_get(obj));
    json_object *t = bdy__kube_table(&j->cols, items, NULL, NULL, j->include, true);
    json_object_put(items);
    if (t == NULL)
        return BDY_ENOMEM;
    int rc = send_event(j->st, type, t);
    json_object_put(t);
    return rc;
}

static int send_bookmark(watch_job *j, uint64_t rv, bool initial_end)
{
    char av[200];
    char rvs[24];
    bdy__kube_api_version(&j->info, av, sizeof(av));
    snprintf(rvs, sizeof(rvs), "%llu", (unsigned long long)rv);
    json_object *o = json_object_new_object();
    json_object *meta = json_object_new_object();
    json_object_object_add(o, "kind", json_object_new_string(j->info.kind));
    json_object_object_add(o, "apiVersion", json_object_new_string(av));
    json_object_object_add(meta, "resourceVersion", json_object_new_string(rvs));
    if (initial_end) {
        json_object *ann = json_object_new_object();
        json_object_object_add(ann, "k8s.io/initial-events-end", json_object_new_string("true"));
        json_object_object_add(meta, "annotations", ann);
    }
    json_object_object_add(o, "metadata", meta);
    int rc = send_event(j->st, "BOOKMARK", o);
    json_object_put(o);
    return rc;
}

/* An ERROR event carrying a Status: what the API server sends when a watch
 * ends for a reason (410 makes the client relist, others a retry). */
static int send_error_event(bdy_http_stream *st, unsigned code, const char *reason,
                            const char *message)
{
    json_object *s = bdy__kube_status(code, reason, message);
    if (s == NULL)
        return BDY_ENOMEM;
    int rc = send_event(st, "ERROR", s);
    json_object_put(s);
    return rc;
}

/* One page of the initial list of a watch from "now" (cont: NULL for the
 * first). Every page shows the objects as of the first one's
 * resourceVersion (store.h). */
static int initial_page(bdy_kubeapi *k, const watch_job *j, const char *cont, bdy_list_result *lr,
                        bdy_errbuf *eb)
{
    bdy_gvr gvr = {j->info.group, j->info.version, j->info.resource};
    bdy_list_opts lo = {.ns = j->ns,
                        .label_selector = j->label_selector,
                        .field_selector = j->field_selector,
                        .limit = INITIAL_PAGE,
                        .max_bytes = INITIAL_PAGE_BYTES,
                        .continue_token = cont};
    return bdy_store_list(k->store, &gvr, &lo, lr, eb);
}

/* Sends the initial list's ADDED events: the first page, then the next
 * ones as the client takes them. */
static int send_initial(watch_job *j)
{
    int rc = 0;
    while (rc == 0 && j->initial != NULL) {
        /* Every page shows the objects as of the list's version
         * (store.h): the watch delivers each change after it once. */
        for (size_t i = 0; rc == 0 && i < json_object_array_length(j->initial); i++)
            rc = send_object(j, "ADDED", json_object_array_get_idx(j->initial, i));
        json_object_put(j->initial);
        j->initial = NULL;
        if (rc == 0 && j->initial_cont != NULL && stopping(j->k))
            rc = BDY_ESHUTDOWN; /* cut short: no end-of-list bookmark after it */
        if (rc != 0 || j->initial_cont == NULL)
            break;
        bdy_list_result lr = {0};
        bdy_errbuf eb;
        bdy_errbuf_clear(&eb);
        rc = initial_page(j->k, j, j->initial_cont, &lr, &eb);
        free(j->initial_cont);
        j->initial_cont = NULL;
        if (rc != 0) {
            /* 410 (the list's version compacted away meanwhile) makes the
             * client list again; anything else, a retry. */
            unsigned code = 0;
            json_object *st = bdy__kube_status_from_error(rc, &eb, NULL, NULL, &code);
            if (st != NULL)
                send_event(j->st, "ERROR", st);
            json_object_put(st);
            break; /* rc != 0: the stream ends here */
        }
        j->initial = lr.items;
        lr.items = NULL;
        j->initial_cont = lr.continue_token;
        lr.continue_token = NULL;
        bdy_list_result_free(&lr);
    }
    return rc;
}

static char *dup_opt(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static void *watch_main(void *arg)
{
    watch_job *j = arg;
    bdy_thread_start("bdy-kube-watch", true);
    bdy_kubeapi *k = j->k;
    int rc = 0;
    uint64_t start = bdy_monotonic_ns();
    uint64_t last_sent = start;
    rc = send_initial(j);
    if (rc == 0 && j->initial_end)
        rc = send_bookmark(j, j->start_rv, true);
    while (rc == 0 && bdy_http_stream_open(j->st) && !stopping(k)) {
        uint64_t now = bdy_monotonic_ns();
        if (now - start >= j->timeout_ns)
            break;
        uint64_t left_ms = (j->timeout_ns - (now - start)) / 1000000u;
        int wait_ms = left_ms < WATCH_POLL_MS ? (int)left_ms : WATCH_POLL_MS;
        uint64_t committed = 0;
        bdy_store_current_rv(k->store, &committed);
        bdy_watch_event ev = {0};
        int wrc = bdy_store_watch_next(k->store, j->w, wait_ms, &ev);
        if (wrc == 0) {
            rc = send_object(j, bdy_event_type_name(ev.type), ev.object);
            json_object_put(ev.object);
            last_sent = bdy_monotonic_ns();
        } else if (wrc == BDY_ETIMEOUT) {
            /* Every change up to committed has been through this watch. */
            if (j->bookmarks &&
                bdy_monotonic_ns() - last_sent >= (uint64_t)k->bookmark_interval_s * 1000000000u) {
                rc = send_bookmark(j, committed, false);
                last_sent = bdy_monotonic_ns();
            }
        } else if (wrc == BDY_EEXPIRED) {
            send_error_event(j->st, 410, "Expired",
                             "The resourceVersion for the provided watch is too old.");
            break;
        } else {
            break;
        }
    }
    bdy_http_stream_end(j->st);
    job_free(j);
    release_slot(k);
    return NULL;
}

void bdy__kube_watch(bdy_kubeapi *k, const bdy_http_request *req, bdy_http_response *resp,
                     const bdy_resource_info *info, const char *ns, const bdy_kube_query *q,
                     bool table)
{
    watch_job *j = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    bool slot = false;
    int rc = 0;
    bdy_gvr gvr = {info->group, info->version, info->resource};
    const char *rvtext = q->resource_version;
    bool from_now = rvtext == NULL || rvtext[0] == '\0' || strcmp(rvtext, "0") == 0;
    uint64_t from_rv = 0;

    if (q->send_initial_events && !q->allow_bookmarks) {
        bdy_errbuf_add_cause(&eb, "FieldValueForbidden", "sendInitialEvents",
                             "Forbidden: sendInitialEvents requires setting allowWatchBookmarks "
                             "to true");
        snprintf(eb.message, sizeof(eb.message),
                 "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: "
                 "sendInitialEvents requires setting allowWatchBookmarks to true");
        bdy__kube_fail(resp, BDY_EINVALID_OBJECT, &eb, NULL, NULL);
        return;
    }
    /* Checked with sendInitialEvents too, which otherwise ignores it. */
    size_t rvlen = rvtext != NULL ? strlen(rvtext) : 0;
    if (!from_now && (rvlen > 20 || strspn(rvtext, "0123456789") != rvlen)) {
        char msg[200];
        snprintf(msg, sizeof(msg), "invalid resource version: %.40s", rvtext);
        bdy__kube_fail_msg(resp, 400, "BadRequest", msg);
        return;
    }
    if (!from_now && !q->send_initial_events) {
        from_rv = strtoull(rvtext, NULL, 10);
        /* Past what the store has committed (its data restored from a
         * backup, or another data folder behind the same address): a watch
         * from there would skip every event until the store caught up.
         * Kubernetes' answer, 504, makes clients list again. A list's
         * version can run a moment ahead of what the store has published
         * to watches (the commit, then the append): a client that lists and
         * watches at once is given that moment (Kubernetes waits up to 3 s
         * for its cache). Only a version some list may have shown is waited
         * for: the wait sleeps on an HTTP thread, which serves claims too,
         * so a version no list gave out is answered at once. */
        uint64_t committed = 0;
        uint64_t written = 0;
        int crc = bdy_store_current_rv(k->store, &committed);
        if (crc == 0)
            crc = bdy_store_written_rv(k->store, &written);
        bool may_come = from_rv <= written;
        for (int waited_ms = 0;
             crc == 0 && may_come && from_rv > committed && waited_ms < TOO_LARGE_WAIT_MS;
             waited_ms += 5) {
            struct timespec ts = {0, 5 * 1000000L};
            nanosleep(&ts, NULL);
            crc = bdy_store_current_rv(k->store, &committed);
        }
        if (crc == 0 && from_rv > committed) {
            bdy_errbuf_add_cause(&eb, "ResourceVersionTooLarge", "", "Too large resource version");
            snprintf(eb.message, sizeof(eb.message),
                     "Too large resource version: %llu, current: %llu", (unsigned long long)from_rv,
                     (unsigned long long)committed);
            bdy__kube_fail(resp, BDY_ETIMEOUT, &eb, NULL, NULL);
            return;
        }
    }
    pthread_mutex_lock(&k->lock);
    if (!k->stopping && k->nwatches < k->max_watches) {
        k->nwatches++;
        slot = true;
    }
    bool was_stopping = k->stopping;
    pthread_mutex_unlock(&k->lock);
    if (!slot) {
        if (was_stopping)
            bdy__kube_fail_msg(resp, 503, "ServiceUnavailable", "the server is shutting down");
        else
            bdy__kube_fail_msg(resp, 429, "TooManyRequests",
                               "too many open watches, try again later");
        if (!was_stopping)
            bdy_http_set_header(resp, "Retry-After", "1");
        return;
    }
    j = calloc(1, sizeof(*j));
    if (j == NULL) {
        rc = BDY_ENOMEM;
        goto out;
    }
    j->k = k;
    j->info = *info;
    j->table = table;
    j->include = q->include;
    j->bookmarks = q->allow_bookmarks;
    j->initial_end = q->send_initial_events;
    unsigned timeout = q->has_timeout && q->timeout_s > 0 ? q->timeout_s : k->watch_timeout_s;
    j->timeout_ns = (uint64_t)timeout * 1000000000u;
    if (table)
        bdy__kube_columns_load(k->store, info, &j->cols);
    j->ns = dup_opt(ns);
    j->label_selector = dup_opt(q->label_selector);
    j->field_selector = dup_opt(q->field_selector);
    if ((ns != NULL && j->ns == NULL) || (q->label_selector != NULL && !j->label_selector) ||
        (q->field_selector != NULL && !j->field_selector)) {
        rc = bdy_fail(&eb, BDY_ENOMEM, "out of memory");
        goto out;
    }
    if (from_now || q->send_initial_events) {
        /* The first page here, so its errors are this answer's status; the
         * rest from the watch's thread. */
        bdy_list_result lr = {0};
        rc = initial_page(k, j, NULL, &lr, &eb);
        if (rc != 0)
            goto out;
        from_rv = lr.resource_version;
        j->initial = lr.items;
        lr.items = NULL;
        j->initial_cont = lr.continue_token;
        lr.continue_token = NULL;
        bdy_list_result_free(&lr);
    }
    j->start_rv = from_rv;
    rc = bdy_store_watch(k->store, &gvr, ns, q->label_selector, q->field_selector, from_rv, &j->w,
                         &eb);
    if (rc != 0 && rc != BDY_EEXPIRED)
        goto out;
    j->st = bdy_http_stream_begin(req, 200, table ? BDY__KUBE_TABLE_TYPE : "application/json");
    if (j->st == NULL) {
        rc = bdy_fail(&eb, BDY_ENOMEM, "cannot start the watch stream");
        goto out;
    }
    if (rc == BDY_EEXPIRED) {
        /* Clients handle both a 410 answer and a 410 ERROR event; the
         * event is what the API server sends for a watch. The store's
         * message names, as the API server's does, the oldest version it
         * still has. */
        send_error_event(j->st, 410, "Expired", eb.message);
        bdy_http_stream_end(j->st);
        j->st = NULL;
        rc = 0;
        goto out;
    }
    pthread_t tid;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int prc = pthread_create(&tid, &attr, watch_main, j);
    pthread_attr_destroy(&attr);
    if (prc != 0) {
        bdy_error("kubeapi", "cannot start a watch thread");
        /* The 200 has begun: without an error event the client would take
         * the end for a quiet watch and come straight back. */
        send_error_event(j->st, 500, "InternalError", "the server could not start this watch");
        bdy_http_stream_end(j->st);
        j->st = NULL;
        goto out;
    }
    return; /* the thread owns j and the slot */
out:
    if (rc != 0)
        bdy__kube_fail(resp, rc, &eb, info, NULL);
    job_free(j);
    release_slot(k);
}
