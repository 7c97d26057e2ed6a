/* Informers against the real embedded store: list then watch, paging,
 * label selectors, cluster-scoped keys, retry while the resource is missing,
 * an expired continue token mid-list, and a watch that falls behind (relist,
 * with deletes found by the diff). A recorder keeps what the handlers were
 * told; the tests compare it with the store. Every wait is bounded (5 s). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bindery/informer.h"
#include "bindery/selector.h"
#include "bindery/util.h"

#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const bdy_gvr WIDGETS = {"test.dev", "v1", "widgets"};

/* The test CRD of tests/unit/test_store.c. */
static const char widget_crd[] =
    "{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"CustomResourceDefinition\","
    "\"metadata\":{\"name\":\"widgets.test.dev\"},"
    "\"spec\":{\"group\":\"test.dev\",\"scope\":\"Namespaced\","
    "\"names\":{\"plural\":\"widgets\",\"singular\":\"widget\",\"kind\":\"Widget\","
    "\"shortNames\":[\"wd\"]},"
    "\"versions\":[{\"name\":\"v1\",\"served\":true,\"storage\":true,"
    "\"subresources\":{\"status\":{}},"
    "\"selectableFields\":[{\"jsonPath\":\".spec.color\"}],"
    "\"schema\":{\"openAPIV3Schema\":{\"type\":\"object\",\"properties\":{"
    "\"spec\":{\"type\":\"object\",\"required\":[\"size\"],\"properties\":{"
    "\"size\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100},"
    "\"color\":{\"type\":\"string\",\"enum\":[\"red\",\"blue\"]}}},"
    "\"status\":{\"type\":\"object\",\"properties\":{"
    "\"phase\":{\"type\":\"string\"}}}}}}}]}}";

#define WAIT_MS 5000
#define MAX_OBJS 64
#define MAX_LOG 256

/* ---- fixture --------------------------------------------------------------- */

typedef struct fixture {
    char dir[64];
    bdy_store *store;
} fixture;

static void create_crd(bdy_store *s)
{
    json_object *crd = json_tokener_parse(widget_crd);
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy_store_create(s, &BDY_GVR_CRDS, NULL, crd, NULL, NULL, &eb);
    json_object_put(crd);
    if (rc != 0)
        fail_msg("create CRD: %s", eb.message);
}

static int setup_with(void **state, size_t history, bool crd)
{
    fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/bdy-informer-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    bdy_sqlite_opts o = {.data_dir = f->dir, .watch_history = history, .max_batch = 64};
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy_store_sqlite_open(&o, &f->store, &eb);
    if (rc != 0)
        fail_msg("open %s: %s", f->dir, eb.message);
    if (crd)
        create_crd(f->store);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, 1000, true);
}

static int setup_small_history(void **state)
{
    return setup_with(state, 4, true);
}

static int setup_no_crd(void **state)
{
    return setup_with(state, 1000, false);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    fixture *f = *state;
    bdy_store_close(f->store);
    assert_int_equal(nftw(f->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS), 0);
    free(f);
    return 0;
}

static json_object *widget(const char *name, int size, const char *color)
{
    char buf[512];
    snprintf(buf, sizeof(buf),
             "{\"apiVersion\":\"test.dev/v1\",\"kind\":\"Widget\",\"metadata\":{\"name\":\"%s\","
             "\"labels\":{\"color\":\"%s\"}},\"spec\":{\"size\":%d,\"color\":\"%s\"}}",
             name, color, size, color);
    return json_tokener_parse(buf);
}

static void create_widget_in(bdy_store *s, const char *ns, const char *name, const char *color)
{
    json_object *w = widget(name, 1, color);
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy_store_create(s, &WIDGETS, ns, w, NULL, NULL, &eb);
    json_object_put(w);
    if (rc != 0)
        fail_msg("create %s/%s: %s", ns, name, eb.message);
}

static void create_widget(fixture *f, const char *name, const char *color)
{
    create_widget_in(f->store, "default", name, color);
}

static void merge_patch(fixture *f, const char *name, const char *doc)
{
    json_object *p = json_tokener_parse(doc);
    assert_non_null(p);
    int rc = bdy_store_patch(f->store, &WIDGETS, "default", name, BDY_PATCH_MERGE, p, false, NULL,
                             NULL, NULL);
    json_object_put(p);
    if (rc != 0)
        fail_msg("patch %s: %s", name, bdy_strerror(rc));
}

static void resize(fixture *f, const char *name, int size)
{
    char doc[64];
    snprintf(doc, sizeof(doc), "{\"spec\":{\"size\":%d}}", size);
    merge_patch(f, name, doc);
}

static void relabel(fixture *f, const char *name, const char *color)
{
    char doc[96];
    snprintf(doc, sizeof(doc), "{\"metadata\":{\"labels\":{\"color\":\"%s\"}}}", color);
    merge_patch(f, name, doc);
}

static void delete_widget(fixture *f, const char *name)
{
    bool deleted = false;
    assert_int_equal(
        bdy_store_delete(f->store, &WIDGETS, "default", name, NULL, NULL, &deleted, NULL), 0);
    assert_true(deleted);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the recorder: what the handlers were told -------------------------- */

typedef struct tracked {
    char key[160];
    uint64_t rv;
    bool used;
} tracked;

typedef struct recorder {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    tracked objs[MAX_OBJS];
    char log[MAX_LOG][192];
    size_t nlog;
    int synced_calls;
    int errors; /* handler saw something the contract rules out */
    int deletes_with_obj;
    int deletes_without_obj;
    /* Reads back into the store from a handler. */
    bdy_store *store;
    const bdy_gvr *gvr;
    int store_reads_ok;
    /* Blocks the first update until released (the slow-handler test). */
    bool gate_first_update;
    bool blocked;
    bool released;
    /* Runs once, from the first add, on the informer thread: writes between
     * list pages. */
    void (*first_add_hook)(struct recorder *r);
    int adds;
} recorder;

static void recorder_init(recorder *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
}

static void recorder_destroy(recorder *r)
{
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
}

static void key_of(json_object *obj, char *key, size_t cap, uint64_t *rv)
{
    json_object *ns = bdy_json_path_get(obj, "metadata.namespace");
    json_object *name = bdy_json_path_get(obj, "metadata.name");
    if (ns != NULL)
        snprintf(key, cap, "%s/%s", json_object_get_string(ns), json_object_get_string(name));
    else
        snprintf(key, cap, "%s", json_object_get_string(name));
    const char *rv_text =
        json_object_get_string(bdy_json_path_get(obj, "metadata.resourceVersion"));
    *rv = rv_text ? strtoull(rv_text, NULL, 10) : 0;
}

static tracked *find_tracked(recorder *r, const char *key)
{
    for (int i = 0; i < MAX_OBJS; i++) {
        if (r->objs[i].used && strcmp(r->objs[i].key, key) == 0)
            return &r->objs[i];
    }
    return NULL;
}

static void note(recorder *r, const char *what, const char *key)
{
    if (r->nlog < MAX_LOG)
        snprintf(r->log[r->nlog++], sizeof(r->log[0]), "%s:%s", what, key);
    pthread_cond_broadcast(&r->cond);
}

static void on_add(void *data, json_object *obj)
{
    recorder *r = data;
    char key[160];
    uint64_t rv = 0;
    key_of(obj, key, sizeof(key), &rv);
    /* Read the object back: handlers may call into the store. */
    if (r->store != NULL) {
        json_object *got = NULL;
        const char *ns = json_object_get_string(bdy_json_path_get(obj, "metadata.namespace"));
        const char *name = json_object_get_string(bdy_json_path_get(obj, "metadata.name"));
        if (bdy_store_get(r->store, r->gvr, ns, name, &got, NULL) == 0) {
            pthread_mutex_lock(&r->lock);
            r->store_reads_ok++;
            pthread_mutex_unlock(&r->lock);
        }
        json_object_put(got);
    }
    pthread_mutex_lock(&r->lock);
    bool first = r->adds++ == 0;
    tracked *t = find_tracked(r, key);
    if (t != NULL) {
        r->errors++; /* added twice without a delete */
    } else {
        for (int i = 0; i < MAX_OBJS && t == NULL; i++) {
            if (!r->objs[i].used)
                t = &r->objs[i];
        }
        if (t == NULL) {
            r->errors++;
        } else {
            t->used = true;
            snprintf(t->key, sizeof(t->key), "%s", key);
            t->rv = rv;
        }
    }
    note(r, "add", key);
    pthread_mutex_unlock(&r->lock);
    if (first && r->first_add_hook != NULL)
        r->first_add_hook(r);
}

static void on_update(void *data, json_object *old, json_object *obj)
{
    recorder *r = data;
    char key[160];
    uint64_t rv = 0;
    key_of(obj, key, sizeof(key), &rv);
    pthread_mutex_lock(&r->lock);
    if (old != NULL)
        r->errors++; /* the informer keeps no old objects */
    tracked *t = find_tracked(r, key);
    if (t == NULL || rv <= t->rv)
        r->errors++; /* update of an unknown key, or not newer */
    else
        t->rv = rv;
    note(r, "update", key);
    if (r->gate_first_update) {
        r->gate_first_update = false;
        r->blocked = true;
        pthread_cond_broadcast(&r->cond);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += WAIT_MS / 1000;
        while (!r->released) {
            if (pthread_cond_timedwait(&r->cond, &r->lock, &ts) != 0)
                break;
        }
    }
    pthread_mutex_unlock(&r->lock);
}

static void on_delete(void *data, json_object *last, const char *ns, const char *name)
{
    recorder *r = data;
    char key[160];
    if (ns != NULL)
        snprintf(key, sizeof(key), "%s/%s", ns, name);
    else
        snprintf(key, sizeof(key), "%s", name);
    pthread_mutex_lock(&r->lock);
    if (last != NULL) {
        char from_obj[160];
        uint64_t rv = 0;
        key_of(last, from_obj, sizeof(from_obj), &rv);
        if (strcmp(from_obj, key) != 0)
            r->errors++;
        r->deletes_with_obj++;
    } else {
        r->deletes_without_obj++;
    }
    tracked *t = find_tracked(r, key);
    if (t == NULL)
        r->errors++; /* delete of a key never added */
    else
        t->used = false;
    note(r, last != NULL ? "delete" : "gone", key);
    pthread_mutex_unlock(&r->lock);
}

static void on_synced(void *data)
{
    recorder *r = data;
    pthread_mutex_lock(&r->lock);
    r->synced_calls++;
    note(r, "synced", "");
    pthread_mutex_unlock(&r->lock);
}

static bdy_informer_handlers handlers_for(recorder *r)
{
    return (bdy_informer_handlers){on_add, on_update, on_delete, on_synced, r};
}

/* Waits (bounded) until the log holds n entries. */
static void wait_log(recorder *r, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&r->lock);
    while (r->nlog < n) {
        if (pthread_cond_timedwait(&r->cond, &r->lock, &ts) != 0)
            break;
    }
    size_t got = r->nlog;
    pthread_mutex_unlock(&r->lock);
    if (got < n)
        fail_msg("expected %zu handler calls within %d ms, got %zu", n, WAIT_MS, got);
}

/* Asserts the log entries from index from on are exactly want. */
static void expect_log(recorder *r, size_t from, const char *const *want, size_t n)
{
    wait_log(r, from + n);
    pthread_mutex_lock(&r->lock);
    size_t have = r->nlog;
    pthread_mutex_unlock(&r->lock);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(r->log[from + i], want[i]);
    assert_int_equal(have, from + n);
}

/* True when the recorder holds exactly the objects (keys and RVs) the store
 * lists for the given namespace and selector. */
static bool matches_store(recorder *r, bdy_store *s, const bdy_gvr *gvr, const char *ns,
                          const char *selector)
{
    bdy_list_opts lo = {.ns = ns, .label_selector = selector};
    bdy_list_result res;
    assert_int_equal(bdy_store_list(s, gvr, &lo, &res, NULL), 0);
    size_t n = json_object_array_length(res.items);
    bool same = true;
    pthread_mutex_lock(&r->lock);
    size_t tracked_n = 0;
    for (int i = 0; i < MAX_OBJS; i++)
        tracked_n += r->objs[i].used;
    same = tracked_n == n;
    for (size_t i = 0; i < n && same; i++) {
        char key[160];
        uint64_t rv = 0;
        key_of(json_object_array_get_idx(res.items, i), key, sizeof(key), &rv);
        tracked *t = find_tracked(r, key);
        same = t != NULL && t->rv == rv;
    }
    pthread_mutex_unlock(&r->lock);
    bdy_list_result_free(&res);
    return same;
}

static bool wait_matches_store(recorder *r, bdy_store *s, const bdy_gvr *gvr, const char *ns,
                               const char *selector)
{
    for (int waited = 0; waited < WAIT_MS; waited += 10) {
        if (matches_store(r, s, gvr, ns, selector))
            return true;
        sleep_ms(10);
    }
    return false;
}

static int errors_of(recorder *r)
{
    pthread_mutex_lock(&r->lock);
    int e = r->errors;
    pthread_mutex_unlock(&r->lock);
    return e;
}

static bdy_informer *start(fixture *f, const bdy_gvr *gvr, const char *ns, const char *selector,
                           size_t page_size, recorder *r)
{
    bdy_informer_opts o = {
        .gvr = gvr, .ns = ns, .label_selector = selector, .page_size = page_size};
    bdy_informer_handlers h = handlers_for(r);
    bdy_informer *inf = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy_informer_start(f->store, &o, &h, &inf, &eb);
    if (rc != 0)
        fail_msg("start: %s (%s)", bdy_strerror(rc), eb.message);
    return inf;
}

static void stop_bounded(bdy_informer *inf)
{
    uint64_t t0 = bdy_monotonic_ns();
    bdy_informer_stop(inf);
    /* Loose: the thread notices stop within one watch wait (250 ms). */
    assert_true(bdy_monotonic_ns() - t0 < 3000000000ull);
}

/* ---- tests ----------------------------------------------------------------- */

static void test_list_then_watch(void **state)
{
    fixture *f = *state;
    json_object *other = json_tokener_parse("{\"metadata\":{\"name\":\"other\"}}");
    assert_int_equal(bdy_store_create(f->store, &BDY_GVR_NAMESPACES, NULL, other, NULL, NULL, NULL),
                     0);
    json_object_put(other);
    const char *names[] = {"w1", "w2", "w3", "w4", "w5"};
    for (int i = 0; i < 5; i++)
        create_widget(f, names[i], i % 2 ? "blue" : "red");
    create_widget_in(f->store, "other", "o1", "red");

    recorder r;
    recorder_init(&r);
    r.store = f->store;
    r.gvr = &WIDGETS;
    /* Pages of 2: three pages for six objects. */
    bdy_informer *inf = start(f, &WIDGETS, NULL, NULL, 2, &r);
    assert_true(bdy_informer_wait_synced(inf, WAIT_MS));
    assert_true(bdy_informer_synced(inf));
    const char *listed[] = {"add:default/w1", "add:default/w2", "add:default/w3", "add:default/w4",
                            "add:default/w5", "add:other/o1",   "synced:"};
    expect_log(&r, 0, listed, 7);
    assert_int_equal(r.store_reads_ok, 6);

    /* Changes after the sync arrive in order. */
    resize(f, "w2", 7);
    delete_widget(f, "w1");
    create_widget(f, "w6", "blue");
    create_widget_in(f->store, "other", "o2", "blue");
    relabel(f, "w3", "blue");
    const char *changes[] = {"update:default/w2", "delete:default/w1", "add:default/w6",
                             "add:other/o2", "update:default/w3"};
    expect_log(&r, 7, changes, 5);
    assert_true(matches_store(&r, f->store, &WIDGETS, NULL, NULL));

    /* A write that changes nothing keeps the RV and delivers nothing; the
     * next real change is the next handler call. */
    json_object *same = NULL;
    assert_int_equal(bdy_store_get(f->store, &WIDGETS, "default", "w4", &same, NULL), 0);
    assert_int_equal(bdy_store_update(f->store, &WIDGETS, "default", same, NULL, NULL, NULL), 0);
    json_object_put(same);
    resize(f, "w5", 9);
    const char *after[] = {"update:default/w5"};
    expect_log(&r, 12, after, 1);

    assert_int_equal(bdy_informer_relists(inf), 0);
    assert_int_equal(r.synced_calls, 1);
    assert_int_equal(r.deletes_with_obj, 1);
    assert_int_equal(errors_of(&r), 0);
    stop_bounded(inf);
    recorder_destroy(&r);
}

static void test_label_selector(void **state)
{
    fixture *f = *state;
    create_widget(f, "r1", "red");
    create_widget(f, "b1", "blue");
    recorder r;
    recorder_init(&r);
    bdy_informer *inf = start(f, &WIDGETS, "default", "color=red", 0, &r);
    assert_true(bdy_informer_wait_synced(inf, WAIT_MS));
    const char *listed[] = {"add:default/r1", "synced:"};
    expect_log(&r, 0, listed, 2);

    /* Moving into the selector is an add, moving out a delete; objects that
     * never match are never seen (the red one created after the blue one
     * is the very next call). */
    relabel(f, "b1", "red");
    relabel(f, "r1", "blue");
    create_widget(f, "b2", "blue");
    resize(f, "b2", 4);
    create_widget(f, "r2", "red");
    const char *changes[] = {"add:default/b1", "delete:default/r1", "add:default/r2"};
    expect_log(&r, 2, changes, 3);
    assert_true(matches_store(&r, f->store, &WIDGETS, "default", "color=red"));
    assert_int_equal(errors_of(&r), 0);
    stop_bounded(inf);
    recorder_destroy(&r);
}

static bool wait_blocked(recorder *r)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&r->lock);
    while (!r->blocked) {
        if (pthread_cond_timedwait(&r->cond, &r->lock, &ts) != 0)
            break;
    }
    bool b = r->blocked;
    pthread_mutex_unlock(&r->lock);
    return b;
}

static bool wait_relists(bdy_informer *inf, uint64_t n)
{
    for (int waited = 0; waited < WAIT_MS; waited += 10) {
        if (bdy_informer_relists(inf) >= n)
            return true;
        sleep_ms(10);
    }
    return false;
}

static bool logged(recorder *r, const char *entry)
{
    pthread_mutex_lock(&r->lock);
    bool found = false;
    for (size_t i = 0; i < r->nlog && !found; i++)
        found = strcmp(r->log[i], entry) == 0;
    pthread_mutex_unlock(&r->lock);
    return found;
}

static void test_relist_after_watch_expiry(void **state)
{
    fixture *f = *state; /* the store keeps 4 events of history */
    const char *names[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++)
        create_widget(f, names[i], "red");
    recorder r;
    recorder_init(&r);
    r.gate_first_update = true;
    bdy_informer *inf = start(f, &WIDGETS, NULL, NULL, 0, &r);
    assert_true(bdy_informer_wait_synced(inf, WAIT_MS));
    wait_log(&r, 5);

    /* The first update blocks the informer in its handler ... */
    resize(f, "a", 2);
    assert_true(wait_blocked(&r));
    /* ... while six more changes push its place out of the history. */
    delete_widget(f, "b");
    delete_widget(f, "c");
    create_widget(f, "e", "blue");
    resize(f, "d", 5);
    create_widget(f, "f", "red");
    resize(f, "e", 6);
    pthread_mutex_lock(&r.lock);
    r.released = true;
    pthread_cond_broadcast(&r.cond);
    pthread_mutex_unlock(&r.lock);

    /* It relists; the relist's diff reports the two deletes it missed
     * (without a last-known object) and the rest as adds and updates. */
    assert_true(wait_relists(inf, 1));
    assert_true(wait_matches_store(&r, f->store, &WIDGETS, NULL, NULL));
    assert_true(logged(&r, "gone:default/b"));
    assert_true(logged(&r, "gone:default/c"));
    assert_true(logged(&r, "add:default/e"));
    assert_true(logged(&r, "add:default/f"));
    assert_true(logged(&r, "update:default/d"));
    pthread_mutex_lock(&r.lock);
    assert_int_equal(r.deletes_without_obj, 2);
    assert_int_equal(r.synced_calls, 2);
    pthread_mutex_unlock(&r.lock);

    /* And it watches again afterwards. */
    size_t n = r.nlog;
    delete_widget(f, "d");
    const char *after[] = {"delete:default/d"};
    expect_log(&r, n, after, 1);
    assert_true(matches_store(&r, f->store, &WIDGETS, NULL, NULL));
    assert_int_equal(errors_of(&r), 0);
    stop_bounded(inf);
    recorder_destroy(&r);
}

/* Five creates and a delete of p0, which the first page already showed. */
static void write_between_pages(recorder *r)
{
    for (int i = 0; i < 5; i++) {
        char name[32];
        snprintf(name, sizeof(name), "late%d", i);
        create_widget_in(r->store, "default", name, "red");
    }
    assert_int_equal(bdy_store_delete(r->store, &WIDGETS, "default", "p0", NULL, NULL, NULL, NULL),
                     0);
}

static void test_list_restarts_on_expired_continue(void **state)
{
    fixture *f = *state; /* the store keeps 4 events of history */
    for (int i = 0; i < 8; i++) {
        char name[8];
        snprintf(name, sizeof(name), "p%d", i);
        create_widget(f, name, "red");
    }
    recorder r;
    recorder_init(&r);
    r.store = f->store;
    r.gvr = &WIDGETS;
    /* The first add writes 6 changes while the first page is delivered, so
     * the continue token expires and the list starts over: at the second
     * page, or at the third when the page fetcher had the second already
     * (it fetches one page ahead, never two). Either way the abandoned
     * attempt delivered p0..p1 or p0..p3 and the new one adds the rest, 13
     * adds in all. p0 is gone when the new attempt runs: it must still be
     * reported, since the watch starts after its deletion. */
    r.first_add_hook = write_between_pages;
    bdy_informer *inf = start(f, &WIDGETS, NULL, NULL, 2, &r);
    assert_true(bdy_informer_wait_synced(inf, WAIT_MS));
    assert_true(wait_matches_store(&r, f->store, &WIDGETS, NULL, NULL));
    assert_true(logged(&r, "gone:default/p0"));
    pthread_mutex_lock(&r.lock);
    assert_int_equal(r.adds, 13);
    assert_int_equal(r.deletes_without_obj, 1);
    assert_int_equal(r.synced_calls, 1);
    pthread_mutex_unlock(&r.lock);
    /* A restarted list is not a relist. */
    assert_int_equal(bdy_informer_relists(inf), 0);
    assert_int_equal(errors_of(&r), 0);
    stop_bounded(inf);
    recorder_destroy(&r);
}

/* Changes to the third page while the first is delivered (the informer's
 * page fetcher may have fetched the second page already, never the third). */
static void change_later_page(recorder *r)
{
    json_object *p = json_tokener_parse("{\"spec\":{\"size\":9}}");
    assert_int_equal(bdy_store_patch(r->store, &WIDGETS, "default", "p5", BDY_PATCH_MERGE, p, false,
                                     NULL, NULL, NULL),
                     0);
    json_object_put(p);
    assert_int_equal(bdy_store_delete(r->store, &WIDGETS, "default", "p4", NULL, NULL, NULL, NULL),
                     0);
    create_widget_in(r->store, "default", "pz", "red");
}

static void test_pages_are_a_snapshot(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 6; i++) {
        char name[8];
        snprintf(name, sizeof(name), "p%d", i);
        create_widget(f, name, "red");
    }
    recorder r;
    recorder_init(&r);
    r.store = f->store;
    r.gvr = &WIDGETS;
    r.first_add_hook = change_later_page;
    bdy_informer *inf = start(f, &WIDGETS, NULL, NULL, 2, &r);
    assert_true(bdy_informer_wait_synced(inf, WAIT_MS));
    /* Every page shows the widgets as of the first page's version (the
     * store's pages do, as Kubernetes' do): p4 and the old p5, not pz. The
     * watch, which starts from that version, then delivers the three
     * changes once each, in order. A later change proves it is over. */
    create_widget(f, "zz", "red");
    const char *want[] = {"add:default/p0", "add:default/p1",    "add:default/p2",
                          "add:default/p3", "add:default/p4",    "add:default/p5",
                          "synced:",        "update:default/p5", "delete:default/p4",
                          "add:default/pz", "add:default/zz"};
    expect_log(&r, 0, want, 11);
    assert_true(matches_store(&r, f->store, &WIDGETS, NULL, NULL));
    assert_int_equal(errors_of(&r), 0);
    stop_bounded(inf);
    recorder_destroy(&r);
}

/* Holds the informer in its first add until the test releases it. */
static void block_first_add(recorder *r)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&r->lock);
    r->blocked = true;
    pthread_cond_broadcast(&r->cond);
    while (!r->released) {
        if (pthread_cond_timedwait(&r->cond, &r->lock, &ts) != 0)
            break;
    }
    pthread_mutex_unlock(&r->lock);
}

static void *stop_in_thread(void *inf)
{
    bdy_informer_stop(inf);
    return NULL;
}

/* Stopped while it delivers the first page, with the second already
 * fetched: the list is abandoned, the fetcher stops, and every page it made
 * is freed (the sanitizers and valgrind check that) without a handler call
 * for it. */
static void test_stop_during_list(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 10; i++) {
        char name[8];
        snprintf(name, sizeof(name), "s%d", i);
        create_widget(f, name, "red");
    }
    recorder r;
    recorder_init(&r);
    r.first_add_hook = block_first_add;
    bdy_informer *inf = start(f, &WIDGETS, NULL, NULL, 2, &r);
    assert_true(wait_blocked(&r));
    pthread_t stopper;
    uint64_t t0 = bdy_monotonic_ns();
    assert_int_equal(pthread_create(&stopper, NULL, stop_in_thread, inf), 0);
    usleep(200 * 1000); /* the stop flag is set long before this */
    pthread_mutex_lock(&r.lock);
    r.released = true;
    pthread_cond_broadcast(&r.cond);
    pthread_mutex_unlock(&r.lock);
    pthread_join(stopper, NULL);
    assert_true(bdy_monotonic_ns() - t0 < 3000000000ull);
    pthread_mutex_lock(&r.lock);
    /* Stop seen after the first page: only it was delivered, no sync. */
    int adds = r.adds;
    int synced = r.synced_calls;
    pthread_mutex_unlock(&r.lock);
    assert_int_equal(adds, 2);
    assert_int_equal(synced, 0);
    assert_int_equal(errors_of(&r), 0);
    recorder_destroy(&r);
}

static void test_waits_for_missing_resource(void **state)
{
    fixture *f = *state; /* no CRD yet */
    recorder r;
    recorder_init(&r);
    bdy_informer *inf = start(f, &WIDGETS, NULL, NULL, 0, &r);
    assert_false(bdy_informer_wait_synced(inf, 300));
    assert_false(bdy_informer_synced(inf));
    create_crd(f->store);
    create_widget(f, "w1", "red");
    /* The informer retries with backoff and syncs once the resource exists. */
    assert_true(bdy_informer_wait_synced(inf, WAIT_MS));
    /* w1 comes with the list, or from the watch when a retry listed between
     * the two creates: either order is right, nothing else is. */
    wait_log(&r, 2);
    pthread_mutex_lock(&r.lock);
    bool listed = strcmp(r.log[0], "add:default/w1") == 0 && strcmp(r.log[1], "synced:") == 0;
    bool watched = strcmp(r.log[0], "synced:") == 0 && strcmp(r.log[1], "add:default/w1") == 0;
    size_t n = r.nlog;
    pthread_mutex_unlock(&r.lock);
    assert_true(listed || watched);
    assert_int_equal(n, 2);
    assert_int_equal(bdy_informer_relists(inf), 0);
    stop_bounded(inf);
    recorder_destroy(&r);
}

static void test_cluster_scoped(void **state)
{
    fixture *f = *state;
    recorder r;
    recorder_init(&r);
    bdy_informer *inf = start(f, &BDY_GVR_NAMESPACES, NULL, NULL, 0, &r);
    assert_true(bdy_informer_wait_synced(inf, WAIT_MS));
    assert_true(logged(&r, "add:default"));
    size_t n = r.nlog;
    json_object *ns = json_tokener_parse("{\"metadata\":{\"name\":\"arena\"}}");
    assert_int_equal(bdy_store_create(f->store, &BDY_GVR_NAMESPACES, NULL, ns, NULL, NULL, NULL),
                     0);
    json_object_put(ns);
    assert_int_equal(
        bdy_store_delete(f->store, &BDY_GVR_NAMESPACES, NULL, "arena", NULL, NULL, NULL, NULL), 0);
    /* Cluster-scoped keys are bare names; on_delete gets ns NULL. The store
     * may report the namespace's termination as an update first. */
    wait_log(&r, n + 2);
    assert_string_equal(r.log[n], "add:arena");
    assert_true(wait_matches_store(&r, f->store, &BDY_GVR_NAMESPACES, NULL, NULL));
    assert_true(logged(&r, "delete:arena"));
    assert_int_equal(errors_of(&r), 0);
    stop_bounded(inf);
    recorder_destroy(&r);
}

/* A list of many pages: the fetcher and the informer share each page's
 * parsing, and every object must still be delivered once, in list order. */
typedef struct order_check {
    int adds;
    int out_of_order;
    char last[64];
} order_check;

static void order_add(void *data, json_object *obj)
{
    order_check *oc = data;
    const char *name = json_object_get_string(
        json_object_object_get(json_object_object_get(obj, "metadata"), "name"));
    if (name == NULL || strcmp(name, oc->last) <= 0)
        oc->out_of_order++;
    snprintf(oc->last, sizeof(oc->last), "%s", name ? name : "");
    oc->adds++;
}

static void create_many(fixture *f, int n)
{
    char name[32];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "w-%05d", i);
        create_widget(f, name, i % 2 ? "blue" : "red");
    }
}

static void test_many_pages_in_order(void **state)
{
    fixture *f = *state;
    create_many(f, 3000);
    for (size_t page = 1; page <= 1000; page *= 10) {
        order_check oc = {0};
        bdy_informer_handlers h = {.on_add = order_add, .data = &oc};
        bdy_informer_opts o = {.gvr = &WIDGETS, .page_size = page};
        bdy_informer *inf = NULL;
        assert_int_equal(bdy_informer_start(f->store, &o, &h, &inf, NULL), 0);
        assert_true(bdy_informer_wait_synced(inf, 30000));
        /* A first list that failed would have been retried: none did. */
        assert_int_equal(bdy_informer_relists(inf), 0);
        stop_bounded(inf);
        assert_int_equal(oc.adds, 3000);
        assert_int_equal(oc.out_of_order, 0);
    }
}

/* Writes body as the stored text of widget name, past the store. */
static void store_text(fixture *f, const char *name, const char *body)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/bindery.db", f->dir);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "UPDATE objects SET body=?1 WHERE res='widgets' AND "
                                        "name=?2",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, body, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    assert_int_equal(sqlite3_changes(db), 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* A stored text that is not JSON (written past the store) fails the list,
 * early in a page (where the fetcher parses) or late (where the informer
 * thread does, once it catches up), and the informer neither syncs on a
 * partial list nor leaks the items already parsed (ASan). */
static void test_unparsable_object_fails_list(void **state)
{
    fixture *f = *state;
    create_many(f, 1000);
    /* Pages of 100: item 3 of the fourth page, then item 97 of it. */
    const char *bad[] = {"w-00303", "w-00397"};
    for (int i = 0; i < 2; i++) {
        json_object *good = NULL;
        assert_int_equal(bdy_store_get(f->store, &WIDGETS, "default", bad[i], &good, NULL), 0);
        char *good_text = strdup(json_object_to_json_string(good));
        json_object_put(good);
        store_text(f, bad[i], "{\"metadata\":");
        order_check oc = {0};
        bdy_informer_handlers h = {.on_add = order_add, .data = &oc};
        bdy_informer_opts o = {.gvr = &WIDGETS, .page_size = 100};
        bdy_informer *inf = NULL;
        assert_int_equal(bdy_informer_start(f->store, &o, &h, &inf, NULL), 0);
        assert_false(bdy_informer_wait_synced(inf, 500));
        stop_bounded(inf);
        /* The pages before the bad one were delivered, in order. */
        assert_true(oc.adds >= 300 && oc.adds < 1000);
        assert_int_equal(oc.out_of_order, 0);
        store_text(f, bad[i], good_text);
        free(good_text);
    }
}

static void test_bad_input(void **state)
{
    fixture *f = *state;
    recorder r;
    recorder_init(&r);
    bdy_informer_handlers h = handlers_for(&r);
    bdy_informer_opts o = {.gvr = &WIDGETS};
    bdy_informer *inf = (bdy_informer *)&r; /* must be reset to NULL on failure */
    bdy_errbuf eb;
    assert_int_equal(bdy_informer_start(NULL, &o, &h, &inf, NULL), BDY_EINVAL);
    assert_null(inf);
    assert_int_equal(bdy_informer_start(f->store, NULL, &h, &inf, NULL), BDY_EINVAL);
    assert_int_equal(bdy_informer_start(f->store, &o, NULL, &inf, NULL), BDY_EINVAL);
    assert_int_equal(bdy_informer_start(f->store, &o, &h, NULL, NULL), BDY_EINVAL);
    bdy_informer_opts no_gvr = {0};
    assert_int_equal(bdy_informer_start(f->store, &no_gvr, &h, &inf, NULL), BDY_EINVAL);
    const bdy_gvr half = {"test.dev", NULL, "widgets"};
    bdy_informer_opts half_gvr = {.gvr = &half};
    assert_int_equal(bdy_informer_start(f->store, &half_gvr, &h, &inf, NULL), BDY_EINVAL);
    bdy_informer_opts bad_sel = {.gvr = &WIDGETS, .label_selector = "color in (red"};
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_informer_start(f->store, &bad_sel, &h, &inf, &eb), BDY_EINVAL);
    assert_true(eb.message[0] != '\0');
    assert_null(inf);
    assert_int_equal(r.nlog, 0);

    /* All handler slots may be NULL; an oversized page is capped. */
    bdy_informer_handlers none = {0};
    create_widget(f, "w1", "red");
    bdy_informer_opts big_page = {.gvr = &WIDGETS, .page_size = 1000000};
    assert_int_equal(bdy_informer_start(f->store, &big_page, &none, &inf, NULL), 0);
    assert_true(bdy_informer_wait_synced(inf, WAIT_MS));
    resize(f, "w1", 3);
    delete_widget(f, "w1");
    stop_bounded(inf);

    bdy_informer_stop(NULL);
    assert_false(bdy_informer_synced(NULL));
    assert_false(bdy_informer_wait_synced(NULL, 10));
    assert_int_equal(bdy_informer_relists(NULL), 0);
    recorder_destroy(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list_then_watch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_label_selector, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relist_after_watch_expiry, setup_small_history,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_list_restarts_on_expired_continue, setup_small_history,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pages_are_a_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_during_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waits_for_missing_resource, setup_no_crd, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_scoped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_pages_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unparsable_object_fails_list, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
