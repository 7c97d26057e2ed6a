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

#define WATCH_POLL_MS 1000
#define INITIAL_PAGE 500u
/* Objects a watch from "now" may start with; beyond, the client must list
 * and watch from the list's resourceVersion (what informers do anyway). */
#define MAX_INITIAL_OBJECTS 200000u

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
    json_object *initial; /* ADDED events to send first, or NULL */
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

static void *watch_main(void *arg)
{
    watch_job *j = arg;
    bdy_thread_start("bdy-kube-watch", true);
    bdy_kubeapi *k = j->k;
    int rc = 0;
    uint64_t start = bdy_monotonic_ns();
    uint64_t last_sent = start;
    for (size_t i = 0; rc == 0 && j->initial != NULL && i < json_object_array_length(j->initial);
         i++)
        rc = send_object(j, "ADDED", json_object_array_get_idx(j->initial, i));
    json_object_put(j->initial);
    j->initial = NULL;
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

/* The initial list of a watch from "now": every object, page by page. */
static int initial_list(bdy_kubeapi *k, const bdy_gvr *gvr, const char *ns, const bdy_kube_query *q,
                        json_object **items, uint64_t *rv, bdy_errbuf *eb)
{
    int rc = 0;
    char *cont = NULL;
    json_object *all = json_object_new_array();
    if (all == NULL)
        return BDY_ENOMEM;
    do {
        bdy_list_result lr = {0};
        bdy_list_opts lo = {.ns = ns,
                            .label_selector = q->label_selector,
                            .field_selector = q->field_selector,
                            .limit = INITIAL_PAGE,
                            .continue_token = cont};
        rc = bdy_store_list(k->store, gvr, &lo, &lr, eb);
        free(cont);
        cont = NULL;
        if (rc != 0)
            break;
        *rv = lr.resource_version;
        for (size_t i = 0; i < json_object_array_length(lr.items); i++)
            json_object_array_add(all, json_object_get(json_object_array_get_idx(lr.items, i)));
        cont = lr.continue_token;
        lr.continue_token = NULL;
        bdy_list_result_free(&lr);
        if (json_object_array_length(all) > MAX_INITIAL_OBJECTS)
            rc = bdy_fail(eb, BDY_ETOOBIG,
                          "more than %u objects: list with limit/continue and watch from the "
                          "list's resourceVersion",
                          MAX_INITIAL_OBJECTS);
    } while (rc == 0 && cont != NULL);
    free(cont);
    if (rc != 0) {
        json_object_put(all);
        return rc;
    }
    *items = all;
    return 0;
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
    if (!from_now && !q->send_initial_events) {
        size_t n = strlen(rvtext);
        if (n > 20 || strspn(rvtext, "0123456789") != n) {
            char msg[200];
            snprintf(msg, sizeof(msg), "invalid resource version: %.40s", rvtext);
            bdy__kube_fail_msg(resp, 400, "BadRequest", msg);
            return;
        }
        from_rv = strtoull(rvtext, NULL, 10);
        /* Past what the store has committed (its data restored from a
         * backup, or another data folder behind the same address): a watch
         * from there would skip every event until the store caught up.
         * Kubernetes' answer, which makes clients list again. */
        uint64_t committed = 0;
        if (bdy_store_current_rv(k->store, &committed) == 0 && from_rv > committed) {
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
    if (from_now || q->send_initial_events) {
        rc = initial_list(k, &gvr, ns, q, &j->initial, &from_rv, &eb);
        if (rc != 0)
            goto out;
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
         * event is what the API server sends for a watch. */
        char msg[200];
        uint64_t cur = 0;
        bdy_store_current_rv(k->store, &cur);
        snprintf(msg, sizeof(msg), "too old resource version: %llu (%llu)",
                 (unsigned long long)from_rv, (unsigned long long)cur);
        send_error_event(j->st, 410, "Expired", msg);
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
