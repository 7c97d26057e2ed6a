/* --worlds N: World Startup Latency through the Kubernetes API.
 *
 * Works against any server that speaks the Kubernetes wire format for
 * bindery.dev/v1alpha1 — a real cluster running Bindery or Bindery's own
 * embedded API. The sequence is a client informer's: list the run's worlds
 * (a label unique to the run), watch from the list's resourceVersion, and
 * only then create, so no event can be missed. A world's startup latency is
 * the time from sending its POST to the watch event that shows
 * status.phase Ready. A watch that ends is resumed from the last
 * resourceVersion seen; a 410 (HTTP or ERROR event) relists. Cleanup deletes
 * every world created and waits, on the same watch, until they are gone.
 */
#include "loadtest.h"

#include "bindery/jsonutil.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#define API "/apis/bindery.dev/v1alpha1"
/* The only label of its own a load-test world has: not bindery.dev/pool,
 * which would make bindery take it for an orphan of a pool it is not
 * configured with and delete it after 5 minutes. */
#define RUN_LABEL "bindery.dev/load-test"
#define WORLD_FINALIZER "bindery.dev/world"
/* Watches are asked to end after this long and are then resumed. */
#define WATCH_TIMEOUT_S 60
/* Consecutive failed watch attempts before the run gives up. */
#define WATCH_MAX_FAILURES 10
#define CLEANUP_TIMEOUT_S 120.0

/* W_CREATE_UNKNOWN: the create failed on our side (a timeout, a 5xx) after
 * the server may have made the world: cleanup deletes it all the same. */
typedef enum wstate { W_NEW, W_SENT, W_CREATED, W_CREATE_FAILED, W_CREATE_UNKNOWN } wstate;

typedef struct world {
    wstate state;
    uint64_t sent_ns;
    uint64_t ready_ns; /* 0 until seen Ready */
    bool failed;       /* seen phase Failed */
    bool delete_sent;
    bool gone;
} world;

typedef struct wrun {
    const lt_opts *o;
    lt_client *c;
    lt_output *out;
    lt_report *r;
    const char *ns;
    char manifest[254];
    char run_id[16];
    char selector[96]; /* URL-encoded labelSelector */
    world *w;
    unsigned n;
    unsigned next_create;
    unsigned creates_inflight;
    unsigned deletes_inflight;
    char rv[64]; /* last resourceVersion seen */
    lt_xfer *watch;
    bool need_relist;
    double watch_retry_s; /* when to start the next watch (0 = now) */
    unsigned watch_failures;
    char watch_error[256];
    uint64_t t0_ns;
    bool fatal;
} wrun;

static int world_index(const wrun *s, const char *name)
{
    /* Names are "lt-<run>-<i>". */
    size_t plen = 3 + strlen(s->run_id) + 1;
    if (name == NULL || strncmp(name, "lt-", 3) != 0 ||
        strncmp(name + 3, s->run_id, plen - 4) != 0 || name[plen - 1] != '-')
        return -1;
    char *end = NULL;
    unsigned long i = strtoul(name + plen, &end, 10);
    if (end == name + plen || *end != '\0' || i >= s->n)
        return -1;
    return (int)i;
}

/* Takes in an object's state from an event or a list. now_ns is when we saw it. */
static void observe(wrun *s, json_object *obj, bool deleted, uint64_t now_ns)
{
    json_object *meta = bdy_jget(obj, "metadata");
    const char *rv = bdy_jstr(meta, "resourceVersion");
    if (rv != NULL)
        snprintf(s->rv, sizeof(s->rv), "%s", rv);
    int i = world_index(s, bdy_jstr(meta, "name"));
    if (i < 0)
        return;
    world *w = &s->w[i];
    if (deleted) {
        if (!w->gone && w->delete_sent)
            s->r->deleted++;
        w->gone = true;
        return;
    }
    const char *phase = bdy_jstr(bdy_jget(obj, "status"), "phase");
    if (phase == NULL)
        return;
    /* Allocated or Terminating worlds were Ready before; a first sight in
     * those phases (after a relist) counts as Ready now. */
    if (w->ready_ns == 0 && !w->failed &&
        (strcmp(phase, "Ready") == 0 || strcmp(phase, "Allocated") == 0)) {
        w->ready_ns = now_ns;
        if (w->sent_ns != 0) {
            lt_hist_add(&s->r->startup, now_ns - w->sent_ns);
            s->r->ready++;
            lt_csv_row(s->out, (uint64_t)i, "ready", (double)(w->sent_ns - s->t0_ns) / 1e9,
                       (double)(now_ns - w->sent_ns) / 1e6, 0, "Ready", bdy_jstr(meta, "name"));
        }
    } else if (w->ready_ns == 0 && !w->failed && strcmp(phase, "Failed") == 0) {
        w->failed = true;
        s->r->world_failed++;
        const char *reason = bdy_jstr(bdy_jget(obj, "status"), "reason");
        char key[LT_TALLY_KEY];
        snprintf(key, sizeof(key), "world Failed: %s", reason ? reason : "no reason given");
        lt_tally_add(&s->r->errors, key, 1);
        lt_csv_row(s->out, (uint64_t)i, "ready", (double)(w->sent_ns - s->t0_ns) / 1e9,
                   (double)(now_ns - w->sent_ns) / 1e6, 0, "Failed", bdy_jstr(meta, "name"));
    }
}

static int on_line(const char *line, size_t len, void *data)
{
    wrun *s = data;
    bdy_watch_type type;
    json_object *obj = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    if (bdy_watch_event_parse(line, len, &type, &obj, &eb) != 0) {
        snprintf(s->watch_error, sizeof(s->watch_error), "bad watch event: %s", eb.message);
        return BDY_EPARSE;
    }
    uint64_t now = bdy_monotonic_ns();
    int rc = 0;
    if (type == BDY_WATCH_ERROR) {
        bdy_kube_status st;
        if (bdy_kube_status_from_json(obj, &st) == 0 && st.code == 410) {
            s->need_relist = true;
        } else {
            snprintf(s->watch_error, sizeof(s->watch_error), "watch ERROR event: %d %s: %s",
                     st.code, st.reason, st.message);
        }
        rc = BDY_EGONE; /* either way this stream is over */
    } else if (type == BDY_WATCH_BOOKMARK) {
        const char *rv = bdy_jstr(bdy_jget(obj, "metadata"), "resourceVersion");
        if (rv != NULL)
            snprintf(s->rv, sizeof(s->rv), "%s", rv);
    } else {
        observe(s, obj, type == BDY_WATCH_DELETED, now);
    }
    json_object_put(obj);
    return rc;
}

static void watch_done(lt_xfer *x, void *data)
{
    wrun *s = data;
    s->watch = NULL;
    if (s->need_relist || x->status == 410)
        s->need_relist = true;
    bool clean =
        x->status == 200 && (x->result == CURLE_OK || (x->line_rc == BDY_EGONE && s->need_relist));
    if (clean) {
        s->watch_failures = 0;
        s->watch_retry_s = 0;
        return;
    }
    if (x->result == CURLE_ABORTED_BY_CALLBACK && x->line_rc == 0)
        return; /* we cancelled it */
    if (s->watch_error[0] == '\0' || x->status != 200) {
        char msg[200];
        lt_error_message(x, msg, sizeof(msg));
        snprintf(s->watch_error, sizeof(s->watch_error), "watch: %s", msg);
    }
    if (x->status == 401 || x->status == 403)
        s->fatal = true;
    s->watch_failures++;
    s->watch_retry_s = lt_now_s() + 1.0;
}

/* Sync GET; returns the parsed body of a 200 or NULL with a message. */
static json_object *get_json(wrun *s, const char *path, long *status, char *err, size_t errlen)
{
    char *body = NULL;
    *status = lt_client_request(s->c, "GET", path, NULL, &body, err, errlen);
    json_object *o = NULL;
    if (*status == 200) {
        o = json_tokener_parse(body ? body : "");
        if (o == NULL)
            snprintf(err, errlen, "GET %s: the answer is not JSON", path);
    } else if (*status != 0) {
        bdy_kube_status st;
        if (bdy_kube_status_parse(body, body ? strlen(body) : 0, &st) == 0)
            snprintf(err, errlen, "GET %s: %ld %s: %s", path, *status, st.reason, st.message);
        else
            snprintf(err, errlen, "GET %s: HTTP %ld", path, *status);
    }
    free(body);
    return o;
}

/* Lists the run's worlds (all pages) and records their state and the list's
 * resourceVersion. */
static int relist(wrun *s)
{
    char cont[1024] = "";
    do {
        char path[2048];
        snprintf(path, sizeof(path),
                 "%s/namespaces/%s/worldinstances?labelSelector=%s&limit=500%s%s", API, s->ns,
                 s->selector, cont[0] ? "&continue=" : "", cont);
        long st = 0;
        char err[512];
        json_object *list = get_json(s, path, &st, err, sizeof(err));
        if (list == NULL) {
            snprintf(s->watch_error, sizeof(s->watch_error), "list: %s", err);
            return -1;
        }
        uint64_t now = bdy_monotonic_ns();
        json_object *items = bdy_jget(list, "items");
        for (size_t i = 0; items != NULL && i < json_object_array_length(items); i++)
            observe(s, json_object_array_get_idx(items, i), false, now);
        const char *rv = bdy_jstr(bdy_jget(list, "metadata"), "resourceVersion");
        snprintf(s->rv, sizeof(s->rv), "%s", rv ? rv : "");
        const char *c = bdy_jstr(bdy_jget(list, "metadata"), "continue");
        char *enc = c && c[0] ? curl_easy_escape(NULL, c, 0) : NULL;
        snprintf(cont, sizeof(cont), "%s", enc ? enc : "");
        curl_free(enc);
        json_object_put(list);
    } while (cont[0] != '\0');
    s->need_relist = false;
    return 0;
}

static void start_watch(wrun *s)
{
    char path[1024];
    char *rv = curl_easy_escape(NULL, s->rv, 0);
    snprintf(path, sizeof(path),
             "%s/namespaces/%s/worldinstances?watch=true&allowWatchBookmarks=true"
             "&timeoutSeconds=%d&labelSelector=%s&resourceVersion=%s",
             API, s->ns, WATCH_TIMEOUT_S, s->selector, rv ? rv : "");
    curl_free(rv);
    s->watch_error[0] = '\0';
    s->watch = lt_client_stream(s->c, path, on_line, s, watch_done, s);
    if (s->watch == NULL)
        s->fatal = true;
}

/* Keeps a watch running: resumes or relists as needed. */
static void tend_watch(wrun *s, double now)
{
    if (s->watch != NULL || s->fatal || now < s->watch_retry_s)
        return;
    if (s->watch_failures >= WATCH_MAX_FAILURES) {
        s->fatal = true;
        return;
    }
    if (s->need_relist) {
        if (relist(s) != 0) {
            s->watch_failures++;
            s->watch_retry_s = now + 1.0;
            return;
        }
        s->r->relists++;
    }
    s->r->rewatches++;
    start_watch(s);
}

static void create_done(lt_xfer *x, void *data)
{
    wrun *s = data;
    world *w = &s->w[x->seq];
    s->creates_inflight--;
    double lat = (double)(x->done_ns - x->start_ns) / 1e6;
    if (x->status == 201 || x->status == 200) {
        w->state = W_CREATED;
        s->r->ok++;
        lt_hist_add(&s->r->latency, x->done_ns - x->start_ns);
        lt_csv_row(s->out, x->seq, "create", (double)(x->start_ns - s->t0_ns) / 1e9, lat, x->status,
                   "ok", x->tag);
        return;
    }
    w->state = x->status == 0 || x->status >= 500 ? W_CREATE_UNKNOWN : W_CREATE_FAILED;
    char key[LT_TALLY_KEY];
    lt_error_key(x, key, sizeof(key));
    s->r->failed++;
    lt_tally_add(&s->r->errors, key, 1);
    lt_csv_row(s->out, x->seq, "create", (double)(x->start_ns - s->t0_ns) / 1e9, lat, x->status,
               "error", key);
    if (x->status == 401 || x->status == 403) {
        s->r->aborted = true;
        lt_error_message(x, s->r->abort_reason, sizeof(s->r->abort_reason));
    }
}

static char *world_body(wrun *s, unsigned i, char *name, size_t name_cap)
{
    snprintf(name, name_cap, "lt-%s-%u", s->run_id, i);
    json_object *w = json_object_new_object();
    json_object_object_add(w, "apiVersion", json_object_new_string("bindery.dev/v1alpha1"));
    json_object_object_add(w, "kind", json_object_new_string("WorldInstance"));
    json_object *meta = json_object_new_object();
    json_object_object_add(meta, "name", json_object_new_string(name));
    json_object_object_add(meta, "namespace", json_object_new_string(s->ns));
    json_object *labels = json_object_new_object();
    for (size_t k = 0; k < s->o->nlabels; k++) {
        const char *eq = strchr(s->o->labels[k], '=');
        char key[256];
        snprintf(key, sizeof(key), "%.*s", (int)(eq - s->o->labels[k]), s->o->labels[k]);
        json_object_object_add(labels, key, json_object_new_string(eq + 1));
    }
    json_object_object_add(labels, RUN_LABEL, json_object_new_string(s->run_id));
    json_object_object_add(meta, "labels", labels);
    if (s->o->nannotations > 0) {
        json_object *ann = json_object_new_object();
        for (size_t k = 0; k < s->o->nannotations; k++) {
            const char *eq = strchr(s->o->annotations[k], '=');
            char key[256];
            snprintf(key, sizeof(key), "%.*s", (int)(eq - s->o->annotations[k]),
                     s->o->annotations[k]);
            json_object_object_add(ann, key, json_object_new_string(eq + 1));
        }
        json_object_object_add(meta, "annotations", ann);
    }
    /* As the pool controller creates worlds: with the world controller's
     * finalizer from the start, so a world deleted early still has its
     * runtime stopped before the object goes. */
    json_object *fin = json_object_new_array();
    json_object_array_add(fin, json_object_new_string(WORLD_FINALIZER));
    json_object_object_add(meta, "finalizers", fin);
    json_object_object_add(w, "metadata", meta);
    json_object *spec = json_object_new_object();
    json_object_object_add(spec, "pool", json_object_new_string(s->o->pool));
    json_object_object_add(spec, "manifest", json_object_new_string(s->manifest));
    json_object_object_add(w, "spec", spec);
    char *text = strdup(json_object_to_json_string_ext(w, JSON_C_TO_STRING_PLAIN));
    json_object_put(w);
    return text;
}

static void start_create(wrun *s)
{
    unsigned i = s->next_create++;
    char name[128];
    char *body = world_body(s, i, name, sizeof(name));
    char path[512];
    snprintf(path, sizeof(path), "%s/namespaces/%s/worldinstances", API, s->ns);
    lt_xfer *x = body ? lt_client_start(s->c, "POST", path, body, 0, create_done, s) : NULL;
    free(body);
    s->r->sent++;
    if (x == NULL) {
        s->w[i].state = W_CREATE_FAILED;
        s->r->failed++;
        lt_tally_add(&s->r->errors, "client: out of memory", 1);
        return;
    }
    x->seq = i;
    snprintf(x->tag, sizeof(x->tag), "%s", name);
    s->w[i].state = W_SENT;
    s->w[i].sent_ns = x->start_ns;
    s->creates_inflight++;
}

static void delete_done(lt_xfer *x, void *data)
{
    wrun *s = data;
    s->deletes_inflight--;
    world *w = &s->w[x->seq];
    if (x->status == 404 && !w->gone) {
        w->gone = true;
        /* A create that failed our side and never landed: nothing to delete. */
        if (w->state != W_CREATE_UNKNOWN)
            s->r->deleted++;
    } else if (x->status != 200 && x->status != 202 && x->status != 404) {
        char key[LT_TALLY_KEY];
        lt_error_key(x, key, sizeof(key));
        lt_tally_add(&s->r->release_errors, key, 1);
        s->r->release_failed++;
    }
    lt_csv_row(s->out, x->seq, "delete", (double)(x->start_ns - s->t0_ns) / 1e9,
               (double)(x->done_ns - x->start_ns) / 1e6, x->status,
               x->status == 200 || x->status == 202 || x->status == 404 ? "ok" : "error", x->tag);
}

static void start_delete(wrun *s, unsigned i)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/namespaces/%s/worldinstances/lt-%s-%u", API, s->ns, s->run_id,
             i);
    s->w[i].delete_sent = true;
    lt_xfer *x = lt_client_start(s->c, "DELETE", path, "{\"propagationPolicy\":\"Background\"}", 0,
                                 delete_done, s);
    if (x == NULL)
        return;
    x->seq = i;
    snprintf(x->tag, sizeof(x->tag), "lt-%s-%u", s->run_id, i);
    s->deletes_inflight++;
}

/* Finds the ModuleManifest to run when --manifest is not given: the only
 * one in the namespace. */
static int pick_manifest(wrun *s)
{
    if (s->o->manifest != NULL) {
        snprintf(s->manifest, sizeof(s->manifest), "%s", s->o->manifest);
        return 0;
    }
    char path[512];
    snprintf(path, sizeof(path), "%s/namespaces/%s/modulemanifests?limit=50", API, s->ns);
    long st = 0;
    char err[512];
    json_object *list = get_json(s, path, &st, err, sizeof(err));
    if (list == NULL) {
        fprintf(stderr, "bindery-load-test: cannot list ModuleManifests: %s\n", err);
        return -1;
    }
    json_object *items = bdy_jget(list, "items");
    size_t n = items ? json_object_array_length(items) : 0;
    int rc = 0;
    if (n == 1) {
        const char *name =
            bdy_jstr(bdy_jget(json_object_array_get_idx(items, 0), "metadata"), "name");
        snprintf(s->manifest, sizeof(s->manifest), "%s", name ? name : "");
    } else if (n == 0) {
        fprintf(stderr,
                "bindery-load-test: no ModuleManifest in namespace %s; create one or "
                "name it with --manifest\n",
                s->ns);
        rc = -1;
    } else {
        fprintf(stderr,
                "bindery-load-test: %zu ModuleManifests in namespace %s; choose one with "
                "--manifest:",
                n, s->ns);
        for (size_t i = 0; i < n && i < 10; i++)
            fprintf(stderr, " %s",
                    bdy_jstr(bdy_jget(json_object_array_get_idx(items, i), "metadata"), "name"));
        fprintf(stderr, "\n");
        rc = -1;
    }
    json_object_put(list);
    return rc;
}

/* Checks that the target serves bindery.dev/v1alpha1 worldinstances. */
static int discover(wrun *s)
{
    long st = 0;
    char err[512];
    json_object *res = get_json(s, API, &st, err, sizeof(err));
    if (res == NULL) {
        if (st == 0)
            fprintf(stderr, "bindery-load-test: cannot reach %s: %s\n", s->r->target, err);
        else if (st == 401)
            fprintf(stderr,
                    "bindery-load-test: %s refused the token (401 Unauthorized); give one "
                    "with --token-file, $BINDERY_TOKEN or the kubeconfig\n",
                    s->r->target);
        else if (st == 404)
            fprintf(stderr,
                    "bindery-load-test: %s does not serve the Kubernetes API for "
                    "bindery.dev/v1alpha1 (404 on %s)\n",
                    s->r->target, API);
        else
            fprintf(stderr, "bindery-load-test: %s\n", err);
        return -1;
    }
    bool found = false;
    json_object *list = bdy_jget(res, "resources");
    for (size_t i = 0; list != NULL && i < json_object_array_length(list); i++) {
        const char *n = bdy_jstr(json_object_array_get_idx(list, i), "name");
        found = found || (n != NULL && strcmp(n, "worldinstances") == 0);
    }
    json_object_put(res);
    if (!found)
        fprintf(stderr,
                "bindery-load-test: %s serves %s but not worldinstances (are the CRDs "
                "from crds/ applied?)\n",
                s->r->target, API);
    return found ? 0 : -1;
}

static unsigned count_settled(const wrun *s)
{
    unsigned n = 0;
    for (unsigned i = 0; i < s->next_create; i++) {
        const world *w = &s->w[i];
        n += w->state == W_CREATE_FAILED || w->state == W_CREATE_UNKNOWN || w->ready_ns != 0 ||
             w->failed;
    }
    return n;
}

int lt_run_worlds(const lt_opts *o, const lt_target *t, lt_output *out, lt_report *r)
{
    int rc = 0;
    wrun s = {.o = o, .out = out, .r = r, .n = o->worlds};
    s.ns = o->namespace_ ? o->namespace_ : t->kc.namespace_ ? t->kc.namespace_ : "default";
    r->rate = o->rate;
    r->concurrency = o->concurrency;
    bdy_random_suffix(s.run_id, 8);
    snprintf(s.selector, sizeof(s.selector), "bindery.dev%%2Fload-test%%3D%s", s.run_id);
    if ((s.w = calloc(s.n, sizeof(*s.w))) == NULL || lt_client_new(t, &s.c) != 0) {
        fprintf(stderr, "bindery-load-test: out of memory\n");
        rc = LT_EXIT_SETUP;
        goto out;
    }
    if (discover(&s) != 0 || pick_manifest(&s) != 0 || relist(&s) != 0) {
        if (s.watch_error[0] != '\0')
            fprintf(stderr, "bindery-load-test: %s\n", s.watch_error);
        rc = LT_EXIT_SETUP;
        goto out;
    }
    if (o->progress != LT_PROGRESS_OFF)
        fprintf(stderr, "bindery-load-test: %u worlds of manifest %s in %s (pool %s, run %s)\n",
                s.n, s.manifest, s.ns, o->pool, s.run_id);
    start_watch(&s);
    s.t0_ns = bdy_monotonic_ns();
    double t0 = lt_now_s();
    double create_end = 0;
    /* Phase 1: create at the rate (or concurrency) and watch them become Ready. */
    while (lt_interrupted == 0 && !r->aborted && !s.fatal) {
        double now = lt_now_s();
        tend_watch(&s, now);
        /* Creating waits for the first watch so no Ready event can be missed. */
        while (s.watch != NULL && s.next_create < s.n && s.creates_inflight < o->concurrency) {
            if (o->rate > 0 && now < t0 + (double)s.next_create / o->rate)
                break;
            start_create(&s);
        }
        if (s.next_create == s.n && s.creates_inflight == 0 && create_end == 0)
            create_end = now;
        unsigned settled = count_settled(&s);
        lt_progress_tick(out, now, false, "worlds: %u created, %llu Ready, %llu failed, %.0f s",
                         s.next_create - s.creates_inflight, (unsigned long long)r->ready,
                         (unsigned long long)r->world_failed + (unsigned long long)r->failed,
                         now - t0);
        if (s.next_create == s.n && s.creates_inflight == 0 && settled == s.n)
            break;
        if (now - t0 >= o->timeout_s)
            break;
        lt_client_poll(s.c, 50);
    }
    if (s.fatal && !r->aborted) {
        r->aborted = true;
        snprintf(r->abort_reason, sizeof(r->abort_reason), "%s",
                 s.watch_error[0] ? s.watch_error : "the watch failed");
    }
    r->elapsed_s = (create_end > 0 ? create_end : lt_now_s()) - t0;
    for (unsigned i = 0; i < s.next_create; i++)
        if (s.w[i].state == W_CREATED && s.w[i].ready_ns == 0 && !s.w[i].failed)
            r->timed_out++;
    /* Creations still running are waited for below; those that failed
     * where the server may still have made the world are deleted too. */
    /* Phase 2: cleanup. */
    if (!o->keep && lt_interrupted < 2) {
        while (s.creates_inflight > 0 && lt_interrupted < 2)
            lt_client_poll(s.c, 50);
        double c0 = lt_now_s();
        unsigned next = 0;
        while (lt_interrupted < 2) {
            double now = lt_now_s();
            tend_watch(&s, now);
            while (next < s.next_create && s.deletes_inflight < o->concurrency) {
                if (s.w[next].state == W_CREATED || s.w[next].state == W_SENT ||
                    s.w[next].state == W_CREATE_UNKNOWN)
                    start_delete(&s, next);
                next++;
            }
            unsigned gone = 0;
            unsigned want = 0;
            for (unsigned i = 0; i < s.next_create; i++) {
                want += s.w[i].delete_sent;
                gone += s.w[i].delete_sent && s.w[i].gone;
            }
            lt_progress_tick(out, now, false, "cleanup: %u of %u worlds gone, %.0f s", gone, want,
                             now - c0);
            if (next == s.next_create && s.deletes_inflight == 0 && gone == want)
                break;
            if (now - c0 >= CLEANUP_TIMEOUT_S || (s.fatal && s.deletes_inflight == 0))
                break;
            lt_client_poll(s.c, 50);
        }
    }
    for (unsigned i = 0; i < s.next_create; i++)
        if (!s.w[i].gone &&
            (s.w[i].state == W_CREATED || (s.w[i].state == W_CREATE_UNKNOWN && s.w[i].delete_sent)))
            r->left++;
    lt_progress_end(out);
    if (s.watch != NULL)
        lt_client_cancel(s.c, s.watch);
    if (o->keep && o->progress != LT_PROGRESS_OFF)
        fprintf(stderr,
                "bindery-load-test: kept the worlds; delete them with: kubectl delete wi "
                "-n %s -l %s=%s\n",
                s.ns, RUN_LABEL, s.run_id);
out:
    lt_client_free(s.c);
    free(s.w);
    return rc;
}
