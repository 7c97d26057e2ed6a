/* --mode allocate and --mode churn: claims against POST /v1/allocations.
 *
 * Open loop (--rate): request i is due at t0 + i/rate and its latency is
 * measured from that moment, whether or not it could be sent then (a slow
 * server delays the requests behind it, and that delay is counted: no
 * coordinated omission). Closed loop (--concurrency): C requests in flight,
 * latency from the send.
 *
 * Releases (--hold) are DELETE /v1/allocations/{id} once the hold has
 * passed; they are counted apart and not part of the claim latency. Churn
 * is claim-and-release at once: each cycle makes the server delete one
 * world and the pool controller create its replacement; /metrics is sampled
 * every second for the work queue and read again when the load stops, until
 * the reconciler has drained (reconcile lag).
 */
#include "loadtest.h"

#include "bindery/jsonutil.h"

#include <stdlib.h>
#include <string.h>

/* Most claims held for release at once; beyond, a claim is released at once. */
#define LT_MAX_HELD 1000000
/* Consecutive "cannot connect" transport errors before the run stops. */
#define LT_MAX_CONNECT_FAILURES 20

typedef struct held {
    char id[64];
    double due_s;
} held;

typedef struct run {
    const lt_opts *o;
    lt_client *c;
    lt_output *out;
    lt_report *r;
    char *body;
    uint64_t t0_ns;
    double end_s; /* duration end, absolute */
    uint64_t next_seq;
    size_t claims_inflight;
    size_t releases_inflight;
    bool producing;
    unsigned connect_failures;
    held *q; /* FIFO ring of claims to release (hold is constant, so due times are ordered) */
    size_t q_head;
    size_t q_len;
    size_t q_cap;
    /* churn */
    bool metrics_inflight;
    double next_sample_s;
    double depth_sum;
    uint64_t depth_n;
} run;

static double since_t0(const run *s, uint64_t ns)
{
    return (double)(ns - s->t0_ns) / 1e9;
}

static void abort_run(run *s, const char *why)
{
    if (!s->r->aborted) {
        s->r->aborted = true;
        snprintf(s->r->abort_reason, sizeof(s->r->abort_reason), "%s", why);
    }
    s->producing = false;
}

static bool hold_push(run *s, const char *id, double due)
{
    if (s->q_len == s->q_cap) {
        if (s->q_cap == LT_MAX_HELD)
            return false;
        size_t nc = s->q_cap ? s->q_cap * 2 : 1024;
        if (nc > LT_MAX_HELD)
            nc = LT_MAX_HELD;
        held *nq = malloc(nc * sizeof(*nq));
        if (nq == NULL)
            return false;
        for (size_t i = 0; i < s->q_len; i++)
            nq[i] = s->q[(s->q_head + i) % s->q_cap];
        free(s->q);
        s->q = nq;
        s->q_head = 0;
        s->q_cap = nc;
    }
    held *h = &s->q[(s->q_head + s->q_len) % s->q_cap];
    snprintf(h->id, sizeof(h->id), "%s", id);
    h->due_s = due;
    s->q_len++;
    return true;
}

static void release_done(lt_xfer *x, void *data)
{
    run *s = data;
    s->releases_inflight--;
    double lat = (double)(x->done_ns - x->start_ns) / 1e6;
    if (x->status == 204 || x->status == 200) {
        s->r->released++;
        lt_csv_row(s->out, x->seq, "release", since_t0(s, x->start_ns), lat, x->status, "ok",
                   x->tag);
        return;
    }
    char key[LT_TALLY_KEY];
    lt_error_key(x, key, sizeof(key));
    s->r->release_failed++;
    lt_tally_add(&s->r->release_errors, key, 1);
    lt_csv_row(s->out, x->seq, "release", since_t0(s, x->start_ns), lat, x->status, "error", key);
}

static void start_release(run *s, const char *id)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/allocations/%s", id);
    lt_xfer *x = lt_client_start(s->c, "DELETE", path, NULL, 0, release_done, s);
    if (x == NULL) {
        s->r->release_failed++;
        lt_tally_add(&s->r->release_errors, "client: out of memory", 1);
        return;
    }
    x->seq = s->r->released + s->r->release_failed + s->releases_inflight;
    snprintf(x->tag, sizeof(x->tag), "%s", id);
    s->releases_inflight++;
}

static void claim_done(lt_xfer *x, void *data)
{
    run *s = data;
    lt_report *r = s->r;
    s->claims_inflight--;
    double start_s = since_t0(s, x->sched_ns);
    double lat_ms = (double)(x->done_ns - x->sched_ns) / 1e6;
    lt_hist_add(&r->latency_all, x->done_ns - x->sched_ns);
    if (x->status == 201 || x->status == 200) {
        s->connect_failures = 0;
        r->ok++;
        lt_hist_add(&r->latency, x->done_ns - x->sched_ns);
        json_object *a = json_tokener_parse(x->body.data ? x->body.data : "");
        const char *id = bdy_jstr(a, "allocationId");
        const char *src = bdy_jstr(a, "source");
        if (src != NULL && strcmp(src, "cold") == 0)
            r->cold++;
        else if (src != NULL)
            r->warm++;
        lt_csv_row(s->out, x->seq, "claim", start_s, lat_ms, x->status, src ? src : "ok",
                   id ? id : "");
        if (id == NULL) {
            lt_tally_add(&r->errors, "client: answer without allocationId", 1);
        } else if (s->o->hold_s < 0) {
            r->still_held++;
        } else if (s->o->hold_s == 0 || !hold_push(s, id, lt_now_s() + s->o->hold_s)) {
            start_release(s, id);
        }
        json_object_put(a);
        return;
    }
    char key[LT_TALLY_KEY];
    lt_error_key(x, key, sizeof(key));
    r->failed++;
    lt_tally_add(&r->errors, key, 1);
    lt_csv_row(s->out, x->seq, "claim", start_s, lat_ms, x->status, "error", key);
    if (x->status == 401 || x->status == 403) {
        char msg[200];
        lt_error_message(x, msg, sizeof(msg));
        abort_run(s, x->status == 401 ? "the server refused the token (401)"
                                      : "the token may not claim in this namespace (403)");
    } else if (x->status == 0 && x->result == CURLE_COULDNT_CONNECT &&
               ++s->connect_failures >= LT_MAX_CONNECT_FAILURES) {
        abort_run(s, "the server stopped accepting connections");
    }
}

static void start_claim(run *s, uint64_t sched_ns)
{
    lt_xfer *x = lt_client_start(s->c, "POST", "/v1/allocations", s->body, 0, claim_done, s);
    if (x == NULL) {
        abort_run(s, "out of memory");
        return;
    }
    x->sched_ns = sched_ns;
    x->seq = s->next_seq++;
    s->claims_inflight++;
    s->r->sent++;
}

/* The claim body from the flags. */
static char *claim_body(const lt_opts *o, const char *ns)
{
    json_object *b = json_object_new_object();
    json_object_object_add(b, "namespace", json_object_new_string(ns));
    json_object_object_add(b, "pool", json_object_new_string(o->pool));
    json_object_object_add(b, "claimant", json_object_new_string(o->claimant));
    if (o->wait_seconds > 0)
        json_object_object_add(b, "waitSeconds", json_object_new_int((int)o->wait_seconds));
    if (o->nselectors > 0) {
        json_object *sels = json_object_new_array();
        for (size_t i = 0; i < o->nselectors; i++) {
            json_object *sel = NULL;
            char err[64];
            if (lt_selector_to_json(o->selectors[i], &sel, err, sizeof(err)) == 0)
                json_object_array_add(sels, sel);
        }
        json_object_object_add(b, "selectors", sels);
    }
    if (o->nlabels > 0 || o->nannotations > 0) {
        json_object *meta = json_object_new_object();
        for (int k = 0; k < 2; k++) {
            const char *const *kv = k == 0 ? o->labels : o->annotations;
            size_t n = k == 0 ? o->nlabels : o->nannotations;
            if (n == 0)
                continue;
            json_object *m = json_object_new_object();
            for (size_t i = 0; i < n; i++) {
                const char *eq = strchr(kv[i], '=');
                char key[256];
                snprintf(key, sizeof(key), "%.*s", (int)(eq - kv[i]), kv[i]);
                json_object_object_add(m, key, json_object_new_string(eq + 1));
            }
            json_object_object_add(meta, k == 0 ? "labels" : "annotations", m);
        }
        json_object_object_add(b, "metadata", meta);
    }
    char *text = strdup(json_object_to_json_string_ext(b, JSON_C_TO_STRING_PLAIN));
    json_object_put(b);
    return text;
}

/* GET /metrics, parsed; false when not readable (no read verb, not Bindery). */
static bool fetch_metrics(lt_client *c, lt_metrics *m)
{
    char *body = NULL;
    char err[256];
    long st = lt_client_request(c, "GET", "/metrics", NULL, &body, err, sizeof(err));
    bool ok =
        st == 200 && body != NULL && lt_metrics_parse(body, strlen(body), m, err, sizeof(err)) == 0;
    free(body);
    return ok;
}

static void sample_done(lt_xfer *x, void *data)
{
    run *s = data;
    s->metrics_inflight = false;
    lt_metrics m;
    char err[128];
    if (x->status != 200 || x->body.data == NULL ||
        lt_metrics_parse(x->body.data, x->body.len, &m, err, sizeof(err)) != 0)
        return;
    bool found = false;
    double depth = lt_metrics_sum(&m, "bindery_workqueue_depth", NULL, &found);
    if (found) {
        s->depth_sum += depth;
        s->depth_n++;
        if (depth > s->r->queue_depth_max)
            s->r->queue_depth_max = depth;
    }
    lt_metrics_free(&m);
}

/* Churn: waits until the work queue is empty and no world of the pool is
 * Pending or Starting, sampling twice a second, bounded by --timeout. */
static void drain(run *s, const char *ns)
{
    double start = lt_now_s();
    char pool_label[300];
    char ns_label[300];
    snprintf(pool_label, sizeof(pool_label), "pool=%s", s->o->pool);
    snprintf(ns_label, sizeof(ns_label), "namespace=%s", ns);
    const char *pending[] = {ns_label, pool_label, "phase=Pending", NULL};
    const char *starting[] = {ns_label, pool_label, "phase=Starting", NULL};
    s->r->drained = false;
    while (lt_interrupted < 2) {
        lt_metrics m;
        if (fetch_metrics(s->c, &m)) {
            double depth = lt_metrics_sum(&m, "bindery_workqueue_depth", NULL, NULL);
            double busy = lt_metrics_sum(&m, "bindery_worlds", pending, NULL) +
                          lt_metrics_sum(&m, "bindery_worlds", starting, NULL);
            lt_metrics_free(&m);
            if (depth == 0 && busy == 0) {
                s->r->drained = true;
                break;
            }
        }
        double now = lt_now_s();
        lt_progress_tick(s->out, now, false, "churn: waiting for the reconciler to drain, %.1f s",
                         now - start);
        if (now - start >= s->o->timeout_s)
            break;
        lt_client_poll(s->c, 500);
    }
    s->r->drain_s = lt_now_s() - start;
}

/* Fills the server-side figures from two /metrics snapshots. */
static void server_figures(run *s, const lt_metrics *before, const lt_metrics *after,
                           double seconds)
{
    char pool_label[300];
    char ns_label[300];
    snprintf(pool_label, sizeof(pool_label), "pool=%s", s->o->pool);
    snprintf(ns_label, sizeof(ns_label), "namespace=%s",
             s->o->namespace_ ? s->o->namespace_ : "default");
    const char *all[] = {ns_label, pool_label, NULL};
    const char *ok[] = {ns_label, pool_label, "result=success", NULL};
    bool found = false;
    double total = lt_metrics_sum(after, "bindery_allocations_total", all, &found) -
                   lt_metrics_sum(before, "bindery_allocations_total", all, NULL);
    double succ = lt_metrics_sum(after, "bindery_allocations_total", ok, NULL) -
                  lt_metrics_sum(before, "bindery_allocations_total", ok, NULL);
    /* Counters only grow: less at the end means they began again. */
    bool restarted = total < 0 || succ < 0 || succ > total;
    s->r->server_known = found && !restarted;
    s->r->server_restarted = restarted;
    s->r->server_success = succ;
    s->r->server_failed = total - succ;
    if (s->o->mode != LT_MODE_CHURN)
        return;
    const char *success[] = {"result=success", NULL};
    double rec = lt_metrics_sum(after, "bindery_reconcile_total", NULL, &found) -
                 lt_metrics_sum(before, "bindery_reconcile_total", NULL, NULL);
    double rec_ok = lt_metrics_sum(after, "bindery_reconcile_total", success, NULL) -
                    lt_metrics_sum(before, "bindery_reconcile_total", success, NULL);
    restarted = restarted || rec < 0 || rec_ok < 0 || rec_ok > rec;
    s->r->server_known = s->r->server_known && !restarted;
    s->r->server_restarted = restarted;
    s->r->lag_known = found && !restarted;
    s->r->reconciles_per_s = seconds > 0 ? rec / seconds : 0;
    s->r->reconcile_errors = rec - rec_ok;
    s->r->queue_depth_mean = s->depth_n ? s->depth_sum / (double)s->depth_n : 0;
    s->r->startup_p50_s =
        lt_metrics_hist_quantile(before, after, "bindery_world_startup_seconds", all, 0.5);
    s->r->startup_p99_s =
        lt_metrics_hist_quantile(before, after, "bindery_world_startup_seconds", all, 0.99);
}

/* Checks the pool before loading it: reachable, token accepted, pool known. */
static int preflight(run *s, const char *ns)
{
    char path[600];
    snprintf(path, sizeof(path), "/v1/pools/%s/%s", ns, s->o->pool);
    char *body = NULL;
    char err[512];
    long st = lt_client_request(s->c, "GET", path, NULL, &body, err, sizeof(err));
    int rc = 0;
    if (st == 0) {
        fprintf(stderr, "bindery-load-test: cannot reach %s: %s\n", s->r->target, err);
        rc = LT_EXIT_SETUP;
    } else if (st == 401) {
        fprintf(stderr,
                "bindery-load-test: %s refused the token (401 Unauthorized); give one "
                "with --token-file or $BINDERY_TOKEN\n",
                s->r->target);
        rc = LT_EXIT_SETUP;
    } else if (st == 403) {
        fprintf(stderr, "bindery-load-test: the token may not read pool %s/%s (403 Forbidden)\n",
                ns, s->o->pool);
        rc = LT_EXIT_SETUP;
    } else if (st == 404) {
        fprintf(stderr, "bindery-load-test: pool %s/%s not found at %s (404)\n", ns, s->o->pool,
                s->r->target);
        rc = LT_EXIT_SETUP;
    } else if (st != 200) {
        /* A server that answers 5xx is measured, not refused: its errors
         * are what the report is for. */
        fprintf(stderr, "bindery-load-test: warning: GET %s answered %ld; running anyway\n", path,
                st);
    }
    free(body);
    return rc;
}

int lt_run_allocate(const lt_opts *o, const lt_target *t, lt_output *out, lt_report *r)
{
    int rc = 0;
    run s = {.o = o, .out = out, .r = r, .producing = true};
    lt_metrics before = {0};
    lt_metrics after = {0};
    bool have_before = false;
    const char *ns = o->namespace_ ? o->namespace_ : "default";
    r->rate = o->rate;
    r->concurrency = o->concurrency;
    if (lt_client_new(t, &s.c) != 0 || (s.body = claim_body(o, ns)) == NULL) {
        fprintf(stderr, "bindery-load-test: out of memory\n");
        rc = LT_EXIT_SETUP;
        goto out;
    }
    /* Open loop: --concurrency bounds the connections, as --help says
     * (the requests in flight are --max-inflight's). */
    if (o->rate > 0)
        lt_client_limit_connections(s.c, o->concurrency);
    if ((rc = preflight(&s, ns)) != 0)
        goto out;
    have_before = fetch_metrics(s.c, &before);

    s.t0_ns = bdy_monotonic_ns();
    double t0_s = (double)s.t0_ns / 1e9;
    s.end_s = o->duration_s > 0 ? t0_s + o->duration_s : 0;
    double interval_ns = o->rate > 0 ? 1e9 / o->rate : 0;
    const char *label = o->mode == LT_MODE_CHURN ? "churn" : "allocate";
    double claims_end = 0;
    while (lt_interrupted < 2) {
        double now = lt_now_s();
        if (lt_interrupted == 1 && s.producing) {
            /* Stopped by the operator, not aborted: the exit code says how
             * the requests sent went (README), the report that it stopped. */
            s.r->interrupted = true;
            s.producing = false;
        }
        if (s.producing) {
            if (o->rate > 0) {
                /* Every request whose time has come is started, up to the
                 * in-flight cap; the rest keep their due time. */
                while (s.producing && s.claims_inflight + s.releases_inflight < o->max_inflight) {
                    uint64_t due = s.t0_ns + (uint64_t)((double)s.next_seq * interval_ns);
                    if ((o->count > 0 && s.next_seq >= o->count) ||
                        (s.end_s > 0 && (double)due / 1e9 >= s.end_s)) {
                        s.producing = false;
                        break;
                    }
                    if ((double)due / 1e9 > now)
                        break;
                    start_claim(&s, due);
                }
            } else {
                while (s.producing && s.claims_inflight < o->concurrency) {
                    if ((o->count > 0 && s.next_seq >= o->count) ||
                        (s.end_s > 0 && now >= s.end_s)) {
                        s.producing = false;
                        break;
                    }
                    start_claim(&s, bdy_monotonic_ns());
                }
            }
        }
        if (!s.producing && s.claims_inflight == 0 && claims_end == 0)
            claims_end = now;
        /* Releases whose hold has passed; all of them once the run stops
         * early. */
        while (s.q_len > 0 && (s.q[s.q_head].due_s <= now || r->aborted || r->interrupted)) {
            start_release(&s, s.q[s.q_head].id);
            s.q_head = (s.q_head + 1) % s.q_cap;
            s.q_len--;
        }
        if (o->mode == LT_MODE_CHURN && !s.metrics_inflight && now >= s.next_sample_s) {
            s.next_sample_s = now + 1.0;
            if (lt_client_start(s.c, "GET", "/metrics", NULL, 0, sample_done, &s) != NULL)
                s.metrics_inflight = true;
        }
        lt_progress_tick(out, now, false,
                         "%s: %.0f s, %llu sent, %llu ok, %llu failed, %zu in flight, p99 %.2f ms",
                         label, now - t0_s, (unsigned long long)r->sent, (unsigned long long)r->ok,
                         (unsigned long long)r->failed, s.claims_inflight,
                         (double)lt_hist_quantile(&r->latency, 0.99) / 1e6);
        if (!s.producing && s.claims_inflight == 0 && s.releases_inflight == 0 && s.q_len == 0 &&
            !s.metrics_inflight)
            break;
        /* Sleep until the next due request, release or sample, at most 50 ms. */
        double wake = now + 0.05;
        if (s.producing && o->rate > 0) {
            double due = t0_s + (double)s.next_seq * interval_ns / 1e9;
            if (due < wake)
                wake = due;
        }
        if (s.q_len > 0 && s.q[s.q_head].due_s < wake)
            wake = s.q[s.q_head].due_s;
        int64_t ns = (int64_t)((wake - now) * 1e9);
        lt_client_poll_ns(s.c, ns > 0 ? ns : 0);
    }
    if (lt_interrupted >= 2) {
        abort_run(&s, "interrupted twice: left without waiting");
        r->still_held += s.q_len + s.releases_inflight;
    }
    r->elapsed_s = (claims_end > 0 ? claims_end : lt_now_s()) - t0_s;
    if (o->mode == LT_MODE_CHURN && lt_interrupted < 2)
        drain(&s, ns);
    lt_progress_end(out);
    if (have_before && fetch_metrics(s.c, &after))
        server_figures(&s, &before, &after, lt_now_s() - t0_s);
out:
    lt_metrics_free(&before);
    lt_metrics_free(&after);
    lt_client_free(s.c);
    free(s.body);
    free(s.q);
    return rc;
}
