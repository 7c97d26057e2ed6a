/* Informers: list, then watch from the list's resourceVersion, relist when
 * the watch expires or fails (include/bindery/informer.h).
 *
 * Each informer owns one thread. The thread alone touches the map of known
 * keys (key → resourceVersion), so the map needs no lock; the mutex guards
 * only what other threads read or set: the stop flag, the synced flag and
 * the relist counter. Handlers are always called without that mutex, so a
 * handler may read the store or ask whether the informer is synced.
 *
 * Why stop() does not close the watch itself: bdy_store_watch_close frees the
 * watch, and the informer thread may be just about to call
 * bdy_store_watch_next on it (between its stop-flag check and the call), which
 * no lock of ours can exclude. So the thread owns the watch outright, waits in
 * watch_next for at most INFORMER_WATCH_WAIT_MS, checks the stop flag, and
 * closes the watch itself. stop() therefore returns within about that long
 * plus the running handler's time.
 */
#include "bindery/informer.h"

#include "bindery/hmap.h"
#include "bindery/jsonutil.h"
#include "bindery/log.h"
#include "bindery/selector.h"
#include "bindery/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define INFORMER_LOG "informer"
/* How long one watch_next waits, which bounds how late stop() is noticed. */
#define INFORMER_WATCH_WAIT_MS 250
#define INFORMER_BACKOFF_MIN_MS 100u
#define INFORMER_BACKOFF_MAX_MS 5000u
/* Watches expired before their first event after which relists back off. */
#define INFORMER_OUTRUN_RELISTS 3u
#define INFORMER_DEFAULT_PAGE 500u
/* And at most about this much stored text per page (500 typical worlds
 * take under 1 MiB). */
#define INFORMER_PAGE_MAX_BYTES ((size_t)8 << 20)
/* A list whose continue token expires this many times in a row is treated as
 * a failure (backoff) instead of being restarted at once forever. */
#define INFORMER_MAX_LIST_RESTARTS 3
/* Cap on a key "namespace/name" (names ≤ 253, namespaces ≤ 63 bytes), NUL
 * included; objects with longer names are skipped with a log line. */
#define INFORMER_MAX_KEY 512u
#define INFORMER_MAP_MIN_BUCKETS 64u

/* ---- the map of known keys ----------------------------------------------- */

/* One known object. text holds "ns/name\0ns\0" (namespaced) or "name\0"
 * (cluster-scoped) so that the key and the separate ns and name strings
 * handlers need come from one allocation. */
typedef struct known_entry {
    bdy_hnode node; /* first: a node pointer is the entry; node.key = text */
    uint64_t rv;
    uint64_t gen;  /* the list attempt that last saw this key */
    size_t ns_len; /* 0: cluster-scoped */
    char text[];
} known_entry;

typedef bdy_hmap known_map;

static int map_init(known_map *m)
{
    return bdy_hmap_init(m, INFORMER_MAP_MIN_BUCKETS);
}

static void map_free(known_map *m)
{
    if (m->buckets == NULL)
        return;
    BDY_HMAP_FOREACH(m, n)
    {
        free(n);
    }
    bdy_hmap_destroy(m);
}

static known_entry *map_find(const known_map *m, const char *key, uint64_t hash)
{
    return (known_entry *)bdy_hmap_find(m, key, hash);
}

/* Adds key (not present) and returns the new entry, or NULL when out of
 * memory. ns_len is the length of the namespace prefix of key (0: none). */
static known_entry *map_insert(known_map *m, const char *key, uint64_t hash, size_t ns_len)
{
    size_t key_len = strlen(key);
    size_t extra = ns_len ? ns_len + 1 : 0;
    known_entry *e = malloc(sizeof(*e) + key_len + 1 + extra);
    if (e == NULL)
        return NULL;
    e->node.hash = hash;
    e->node.key = e->text;
    e->rv = 0;
    e->gen = 0;
    e->ns_len = ns_len;
    memcpy(e->text, key, key_len + 1);
    if (ns_len) {
        memcpy(e->text + key_len + 1, key, ns_len);
        e->text[key_len + 1 + ns_len] = '\0';
    }
    bdy_hmap_insert(m, &e->node);
    return e;
}

static void map_remove(known_map *m, known_entry *victim)
{
    bdy_hmap_remove(m, &victim->node);
    free(victim);
}

static const char *entry_ns(const known_entry *e)
{
    return e->ns_len ? e->text + strlen(e->text) + 1 : NULL;
}

static const char *entry_name(const known_entry *e)
{
    return e->ns_len ? e->text + e->ns_len + 1 : e->text;
}

/* ---- the informer ---------------------------------------------------------- */

struct bdy_informer {
    bdy_store *store; /* borrowed; outlives the informer */
    char *group;
    char *version;
    char *resource;
    bdy_gvr gvr; /* points at the three strings above */
    char *ns;    /* NULL: all namespaces */
    char *label_selector;
    size_t page_size;
    bdy_informer_handlers h;

    /* Informer thread only. */
    known_map known;
    uint64_t gen;

    pthread_t thread;
    pthread_mutex_t lock; /* guards the fields below */
    pthread_cond_t cond;  /* CLOCK_MONOTONIC; signals synced and stopping */
    bool stopping;
    bool synced;
    uint64_t relists;
};

static bool is_stopping(bdy_informer *inf)
{
    pthread_mutex_lock(&inf->lock);
    bool s = inf->stopping;
    pthread_mutex_unlock(&inf->lock);
    return s;
}

/* Sleeps for *backoff_ms (or until stop), then doubles it up to the cap. */
static void backoff_sleep(bdy_informer *inf, unsigned *backoff_ms)
{
    if (*backoff_ms == 0)
        *backoff_ms = INFORMER_BACKOFF_MIN_MS;
    struct timespec deadline;
    bdy_deadline_after_ms(CLOCK_MONOTONIC, *backoff_ms, &deadline);
    pthread_mutex_lock(&inf->lock);
    while (!inf->stopping) {
        if (pthread_cond_timedwait(&inf->cond, &inf->lock, &deadline) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&inf->lock);
    *backoff_ms *= 2;
    if (*backoff_ms > INFORMER_BACKOFF_MAX_MS)
        *backoff_ms = INFORMER_BACKOFF_MAX_MS;
}

static const char *string_field(json_object *obj, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* Builds obj's key into key[INFORMER_MAX_KEY] and reads its resourceVersion
 * (0 when absent or not a number). Returns BDY_EINVAL for an object without
 * a name or with a key over the cap. */
static int object_key(json_object *obj, char *key, size_t *ns_len, uint64_t *rv)
{
    json_object *meta = NULL;
    if (!json_object_object_get_ex(obj, "metadata", &meta))
        return BDY_EINVAL;
    const char *name = string_field(meta, "name");
    const char *ns = string_field(meta, "namespace");
    if (name == NULL || name[0] == '\0')
        return BDY_EINVAL;
    int n;
    if (ns != NULL && ns[0] != '\0') {
        n = snprintf(key, INFORMER_MAX_KEY, "%s/%s", ns, name);
        *ns_len = strlen(ns);
    } else {
        n = snprintf(key, INFORMER_MAX_KEY, "%s", name);
        *ns_len = 0;
    }
    if (n < 0 || (size_t)n >= INFORMER_MAX_KEY)
        return BDY_EINVAL;
    *rv = 0;
    const char *rv_text = string_field(meta, "resourceVersion");
    if (rv_text != NULL) {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(rv_text, &end, 10);
        if (errno == 0 && end != rv_text && *end == '\0')
            *rv = v;
    }
    return 0;
}

static void call_add(bdy_informer *inf, json_object *obj)
{
    if (inf->h.on_add != NULL)
        inf->h.on_add(inf->h.data, obj);
}

static void call_update(bdy_informer *inf, json_object *obj)
{
    if (inf->h.on_update != NULL)
        inf->h.on_update(inf->h.data, NULL, obj);
}

/* Delivers one listed object: new keys as added, known keys whose
 * resourceVersion changed as updated. Marks the key as seen by this list
 * attempt. Returns 0 or BDY_ENOMEM. */
static int deliver_listed(bdy_informer *inf, json_object *obj)
{
    char key[INFORMER_MAX_KEY];
    size_t ns_len = 0;
    uint64_t rv = 0;
    if (object_key(obj, key, &ns_len, &rv) != 0) {
        bdy_warn(INFORMER_LOG, "%s: skipping a listed object without a usable name", inf->resource);
        return 0;
    }
    uint64_t hash = bdy_hash_str(key);
    known_entry *e = map_find(&inf->known, key, hash);
    if (e == NULL) {
        e = map_insert(&inf->known, key, hash, ns_len);
        if (e == NULL)
            return BDY_ENOMEM;
        e->rv = rv;
        e->gen = inf->gen;
        call_add(inf, obj);
        return 0;
    }
    e->gen = inf->gen;
    if (e->rv != rv) {
        e->rv = rv;
        call_update(inf, obj);
    }
    return 0;
}

/* After a complete list: every known key the list did not see is gone. The
 * handler gets no last-known object because the informer keeps none. */
static void sweep_unseen(bdy_informer *inf)
{
    known_map *m = &inf->known;
    BDY_HMAP_FOREACH(m, n)
    {
        known_entry *e = (known_entry *)n;
        if (e->gen != inf->gen) {
            if (inf->h.on_delete != NULL)
                inf->h.on_delete(inf->h.data, NULL, entry_ns(e), entry_name(e));
            map_remove(m, e);
        }
    }
}

/* ---- the list pipeline ------------------------------------------------------
 *
 * A restart with 100,000 worlds waits for the first relist to finish, so a
 * list is spread over two threads. A page fetcher thread reads each page as
 * stored text (bdy_list_opts.raw) and parses its items from the front; the
 * informer thread, once done with the page before, parses the same page's
 * items from the back until the two meet, then delivers the whole page in
 * order. When the fetcher parsed every item, it was the slower thread and
 * parsing was 60% of its time (80,000 worlds: 2.0 s of CPU against the
 * informer's 0.9 s); sharing the parsing keeps both threads busy whichever
 * side is slower on a given machine. Each thread frees the objects it
 * parsed, once the page is delivered: an object allocated and freed by one
 * thread stays in that thread's malloc caches (freeing another thread's
 * objects was measurably slower).
 *
 * Slots form a ring; a slot goes EMPTY -> FULL (fetcher) -> DELIVERED
 * (informer) -> EMPTY (fetcher, after freeing). A FULL slot's items are
 * parsed into objs: indexes below front by the fetcher, from back up by the
 * informer; parsing stays true until the fetcher has finished the last item
 * it took. The fetcher stops after the last page, after a failed fetch (its
 * rc is in the slot) or when abandoned. */
#define LIST_SLOTS 2

typedef enum { SLOT_EMPTY, SLOT_FULL, SLOT_DELIVERED } slot_state;

typedef struct list_slot {
    slot_state state;
    int rc;               /* the fetch's result; 0 with page set */
    bool last;            /* no page follows this one */
    bdy_list_result page; /* owned by the fetcher: the items' texts */
    json_object **objs;   /* n parsed items (NULL: not parsed, or not JSON) */
    size_t n;
    size_t front; /* the fetcher's next item */
    size_t back;  /* items from here on are the informer's */
    bool parsing; /* the fetcher may still be parsing an item below front */
} list_slot;

typedef struct list_pipe {
    bdy_informer *inf;
    pthread_mutex_t lock; /* guards slots and abandoned */
    pthread_cond_t cond;
    list_slot slots[LIST_SLOTS];
    bool abandoned; /* the informer wants no more pages */
} list_pipe;

static const char *item_text(list_slot *slot, size_t k)
{
    return json_object_get_string(json_object_array_get_idx(slot->page.items, k));
}

/* Frees a slot's page and the objects left in it (the fetcher's: the
 * informer frees its own). Fetcher only, or any thread once it has ended. */
static void slot_clear(list_slot *slot)
{
    for (size_t k = 0; k < slot->n; k++)
        json_object_put(slot->objs[k]);
    free(slot->objs);
    bdy_list_result_free(&slot->page);
    slot->objs = NULL;
    slot->n = 0;
}

/* Frees the pages the informer has handed back. Fetcher only; lock held. */
static void free_delivered(list_pipe *p)
{
    for (size_t i = 0; i < LIST_SLOTS; i++) {
        if (p->slots[i].state == SLOT_DELIVERED) {
            slot_clear(&p->slots[i]);
            p->slots[i].state = SLOT_EMPTY;
        }
    }
}

/* The fetcher's share of a FULL slot: items from the front until it meets
 * the informer. Lock held on entry and exit. */
static void fetcher_parse(list_pipe *p, list_slot *slot)
{
    while (slot->front < slot->back) {
        size_t k = slot->front++;
        pthread_mutex_unlock(&p->lock);
        json_object *o = bdy_json_parse_stored(item_text(slot, k));
        pthread_mutex_lock(&p->lock);
        slot->objs[k] = o;
    }
    slot->parsing = false;
    pthread_cond_broadcast(&p->cond);
}

static void *fetcher_main(void *arg)
{
    list_pipe *p = arg;
    bdy_informer *inf = p->inf;
    bdy_thread_start("bdy-inf-fetch", true);
    char *token = NULL;
    for (size_t i = 0;; i = (i + 1) % LIST_SLOTS) {
        list_slot *slot = &p->slots[i];
        pthread_mutex_lock(&p->lock);
        for (;;) {
            free_delivered(p);
            if (p->abandoned || slot->state == SLOT_EMPTY)
                break;
            pthread_cond_wait(&p->cond, &p->lock);
        }
        bool abandoned = p->abandoned;
        pthread_mutex_unlock(&p->lock);
        if (abandoned)
            break;

        bdy_list_result page = {0};
        bdy_errbuf eb;
        bdy_errbuf_clear(&eb);
        bdy_list_opts lo = {
            .ns = inf->ns,
            .label_selector = inf->label_selector,
            .limit = inf->page_size,
            /* Objects can grow to BDY_STORE_MAX_OBJECT_BYTES by patches:
             * without a byte cap, a page of them (two in flight, text and
             * parsed) could take gigabytes at every relist and restart. */
            .max_bytes = INFORMER_PAGE_MAX_BYTES,
            .continue_token = token,
            .raw = true,
        };
        int rc = bdy_store_list(inf->store, &inf->gvr, &lo, &page, &eb);
        /* An expired continue token is routine (the informer restarts). */
        if (rc != 0 && (rc != BDY_EEXPIRED || token == NULL))
            bdy_warn(INFORMER_LOG, "list %s: %s: %s", inf->resource, bdy_strerror(rc), eb.message);
        free(token);
        token = rc == 0 ? page.continue_token : NULL;
        page.continue_token = NULL;
        size_t n = rc == 0 ? json_object_array_length(page.items) : 0;
        json_object **objs = n > 0 ? calloc(n, sizeof(json_object *)) : NULL;
        if (n > 0 && objs == NULL) {
            bdy_list_result_free(&page);
            rc = BDY_ENOMEM;
            n = 0;
        }

        pthread_mutex_lock(&p->lock);
        slot->rc = rc;
        slot->page = page;
        slot->objs = objs;
        slot->n = n;
        slot->front = 0;
        slot->back = n;
        slot->parsing = true;
        slot->last = rc != 0 || token == NULL;
        slot->state = SLOT_FULL;
        pthread_cond_broadcast(&p->cond);
        fetcher_parse(p, slot);
        pthread_mutex_unlock(&p->lock);
        if (slot->last)
            break;
    }
    free(token);
    /* Every page still out is freed here, by the thread that made it. */
    pthread_mutex_lock(&p->lock);
    for (;;) {
        free_delivered(p);
        bool out = false;
        for (size_t i = 0; i < LIST_SLOTS; i++)
            out = out || p->slots[i].state == SLOT_FULL;
        if (!out || p->abandoned)
            break;
        pthread_cond_wait(&p->cond, &p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Delivers objs[from, to) in order; a NULL (not JSON) fails the list. */
static int deliver_items(bdy_informer *inf, list_slot *slot, size_t from, size_t to)
{
    int rc = 0;
    for (size_t k = from; k < to && rc == 0; k++) {
        if (slot->objs[k] == NULL) {
            bdy_warn(INFORMER_LOG,
                     "list %s: stored object %zu of the list is not valid JSON: the store's "
                     "file is damaged; restore it from a backup",
                     inf->resource, k + 1);
            return BDY_ECORRUPT;
        }
        rc = deliver_listed(inf, slot->objs[k]);
    }
    return rc;
}

/* The informer's part of a FULL slot: parses items from the back until it
 * meets the fetcher, delivers every item in list order, then frees those
 * it parsed. Items the fetcher has finished are delivered while it parses
 * its last one, so the informer seldom has to sleep (a sleeping thread is
 * woken on its waker's CPU, and the two then share one core for a while). */
static int deliver_page(list_pipe *p, list_slot *slot)
{
    pthread_mutex_lock(&p->lock);
    while (slot->back > slot->front) {
        size_t k = --slot->back;
        pthread_mutex_unlock(&p->lock);
        slot->objs[k] = bdy_json_parse_stored(item_text(slot, k));
        pthread_mutex_lock(&p->lock);
    }
    size_t mine = slot->back;
    /* The fetcher stores each item before it takes the next: all below
     * the one it took last are there. */
    size_t ready = slot->parsing && slot->front > 0 ? slot->front - 1 : slot->front;
    pthread_mutex_unlock(&p->lock);
    int rc = deliver_items(p->inf, slot, 0, ready);
    pthread_mutex_lock(&p->lock);
    while (slot->parsing)
        pthread_cond_wait(&p->cond, &p->lock);
    pthread_mutex_unlock(&p->lock);
    if (rc == 0)
        rc = deliver_items(p->inf, slot, ready, slot->n);
    for (size_t k = mine; k < slot->n; k++) {
        json_object_put(slot->objs[k]);
        slot->objs[k] = NULL;
    }
    return rc;
}

/* One list attempt, page by page, delivering each page while the next is
 * fetched. Returns 0 with *list_rv set, BDY_EEXPIRED when a continue token
 * expired (the caller restarts), BDY_ESHUTDOWN when stop was requested, or
 * the store's error. */
static int list_once(bdy_informer *inf, uint64_t *list_rv)
{
    list_pipe p = {.inf = inf};
    pthread_t fetcher;
    int rc = 0;
    inf->gen++;
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.cond, NULL);
    if (pthread_create(&fetcher, NULL, fetcher_main, &p) != 0) {
        bdy_warn(INFORMER_LOG, "list %s: cannot start the page fetcher", inf->resource);
        rc = BDY_ENOMEM;
        goto out;
    }
    bool first = true;
    for (size_t i = 0;; i = (i + 1) % LIST_SLOTS) {
        list_slot *slot = &p.slots[i];
        pthread_mutex_lock(&p.lock);
        while (slot->state != SLOT_FULL)
            pthread_cond_wait(&p.cond, &p.lock);
        pthread_mutex_unlock(&p.lock);
        /* The fetcher changes a FULL slot only under the lock, and only
         * its parsing fields: rc, last and page can be read without it. */
        rc = slot->rc;
        bool last = slot->last;
        if (rc == 0) {
            if (first)
                *list_rv = slot->page.resource_version;
            first = false;
            rc = deliver_page(&p, slot);
        }
        if (rc == 0 && !last && is_stopping(inf))
            rc = BDY_ESHUTDOWN;
        pthread_mutex_lock(&p.lock);
        slot->state = SLOT_DELIVERED;
        if (rc != 0 || last)
            p.abandoned = true;
        pthread_cond_broadcast(&p.cond);
        pthread_mutex_unlock(&p.lock);
        if (rc != 0 || last)
            break;
    }
    pthread_join(fetcher, NULL);
    /* An abandoned fetcher may leave pages behind; it has stopped, so they
     * are freed here. */
    for (size_t i = 0; i < LIST_SLOTS; i++)
        if (p.slots[i].state != SLOT_EMPTY)
            slot_clear(&p.slots[i]);
    if (rc == 0)
        sweep_unseen(inf);
out:
    pthread_cond_destroy(&p.cond);
    pthread_mutex_destroy(&p.lock);
    return rc;
}

/* Lists until a complete, consistent result has been delivered, restarting
 * when a continue token expires mid-way (bounded), then calls on_synced.
 * A restart starts a new attempt generation, so keys seen only by the
 * abandoned attempt are still swept if the new one does not see them. */
static int relist(bdy_informer *inf, uint64_t *list_rv)
{
    int rc = 0;
    for (int attempt = 0;; attempt++) {
        rc = list_once(inf, list_rv);
        if (rc != BDY_EEXPIRED)
            break;
        if (attempt + 1 >= INFORMER_MAX_LIST_RESTARTS) {
            bdy_warn(INFORMER_LOG, "list %s: continue token expired %d times in a row",
                     inf->resource, INFORMER_MAX_LIST_RESTARTS);
            break;
        }
    }
    if (rc != 0)
        return rc;
    if (inf->h.on_synced != NULL)
        inf->h.on_synced(inf->h.data);
    return 0;
}

/* Applies one watch event. ADDED/MODIFIED at or below the known
 * resourceVersion are skipped: the store's pages are one snapshot, so the
 * watch (started from the first page's version) replays nothing a page
 * showed, but a server whose pages are not (Kubernetes before consistent
 * lists were the rule) would. A MODIFIED of an unknown key is delivered as
 * added (the handler never saw the object); a DELETED of an unknown key is
 * dropped (the handler already saw it go, or never saw it). */
static int apply_event(bdy_informer *inf, const bdy_watch_event *ev)
{
    char key[INFORMER_MAX_KEY];
    size_t ns_len = 0;
    uint64_t obj_rv = 0;
    if (ev->object == NULL || object_key(ev->object, key, &ns_len, &obj_rv) != 0) {
        bdy_warn(INFORMER_LOG, "%s: skipping a watch event without a usable object", inf->resource);
        return 0;
    }
    uint64_t rv = ev->resource_version ? ev->resource_version : obj_rv;
    uint64_t hash = bdy_hash_str(key);
    known_entry *e = map_find(&inf->known, key, hash);
    if (ev->type == BDY_EVENT_DELETED) {
        if (e == NULL)
            return 0;
        if (inf->h.on_delete != NULL)
            inf->h.on_delete(inf->h.data, ev->object, entry_ns(e), entry_name(e));
        map_remove(&inf->known, e);
        return 0;
    }
    if (e == NULL) {
        e = map_insert(&inf->known, key, hash, ns_len);
        if (e == NULL)
            return BDY_ENOMEM;
        e->rv = rv;
        e->gen = inf->gen;
        call_add(inf, ev->object);
        return 0;
    }
    if (rv <= e->rv)
        return 0;
    e->rv = rv;
    call_update(inf, ev->object);
    return 0;
}

/* Watches from list_rv until stop (BDY_ESHUTDOWN), expiry (BDY_EEXPIRED)
 * or another error. The watch is opened and closed here, on this thread.
 * *served becomes true once the watch has answered at all (an event or a
 * quiet timeout), which tells the caller the store is healthy again. */
static int watch_from(bdy_informer *inf, uint64_t list_rv, bool *served)
{
    bdy_watch *w = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy_store_watch(inf->store, &inf->gvr, inf->ns, inf->label_selector, NULL, list_rv, &w,
                             &eb);
    if (rc != 0) {
        if (rc != BDY_EEXPIRED)
            bdy_warn(INFORMER_LOG, "watch %s: %s: %s", inf->resource, bdy_strerror(rc), eb.message);
        goto out;
    }
    while (!is_stopping(inf)) {
        bdy_watch_event ev = {0};
        rc = bdy_store_watch_next(inf->store, w, INFORMER_WATCH_WAIT_MS, &ev);
        if (rc == 0 || rc == BDY_ETIMEOUT)
            *served = true;
        if (rc == BDY_ETIMEOUT)
            continue;
        if (rc != 0) {
            if (rc != BDY_EEXPIRED)
                bdy_warn(INFORMER_LOG, "watch %s: %s", inf->resource, bdy_strerror(rc));
            goto out;
        }
        rc = apply_event(inf, &ev);
        json_object_put(ev.object);
        if (rc != 0)
            goto out;
    }
    rc = BDY_ESHUTDOWN;
out:
    if (w != NULL)
        bdy_store_watch_close(inf->store, w);
    return rc;
}

static void *informer_main(void *arg)
{
    bdy_informer *inf = arg;
    bdy_thread_start("bdy-informer", true);
    unsigned backoff_ms = 0;
    bool listed_before = false;
    /* Watches that expired before serving a single event, in a row: the
     * history could not cover the list's own time. */
    unsigned outrun = 0;
    while (!is_stopping(inf)) {
        uint64_t list_rv = 0;
        int rc = relist(inf, &list_rv);
        if (rc == 0) {
            pthread_mutex_lock(&inf->lock);
            if (listed_before)
                inf->relists++;
            inf->synced = true;
            pthread_cond_broadcast(&inf->cond);
            pthread_mutex_unlock(&inf->lock);
            listed_before = true;
            bool served = false;
            rc = watch_from(inf, list_rv, &served);
            /* The backoff restarts only once the store served a watch, so a
             * store that lists but cannot watch is not relisted every
             * 100 ms. */
            if (served)
                backoff_ms = 0;
            outrun = rc == BDY_EEXPIRED && !served ? outrun + 1 : 0;
            /* An expired watch is the normal way to fall behind: relist at
             * once. Anything else may be a store in trouble: back off. So
             * does a list that the history keeps outrunning: relisting at
             * once would only keep this thread listing, and never watching. */
            if (rc == BDY_EEXPIRED && outrun < INFORMER_OUTRUN_RELISTS)
                continue;
            if (rc == BDY_EEXPIRED) {
                static bdy_log_limit outrun_log;
                uint64_t held = 0;
                if (bdy_log_admit(&outrun_log, 60000, &held))
                    bdy_warn(INFORMER_LOG,
                             "%s: the watch history was used up while listing, %u times in a "
                             "row; the cache lags the store: raise store.watchHistory (%llu "
                             "such lines held back)",
                             inf->resource, outrun, (unsigned long long)held);
            }
        }
        if (rc == BDY_ESHUTDOWN && is_stopping(inf))
            break;
        backoff_sleep(inf, &backoff_ms);
    }
    return NULL;
}

static void informer_free(bdy_informer *inf)
{
    if (inf == NULL)
        return;
    map_free(&inf->known);
    free(inf->group);
    free(inf->version);
    free(inf->resource);
    free(inf->ns);
    free(inf->label_selector);
    free(inf);
}

static char *dup_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? strdup(s) : NULL;
}

/* Validates opts, copies them, and starts the thread. On success the caller
 * owns *out and must release it with bdy_informer_stop (never from inside a
 * handler). Thread-safe. */
int bdy_informer_start(bdy_store *store, const bdy_informer_opts *opts,
                       const bdy_informer_handlers *h, bdy_informer **out, bdy_errbuf *eb)
{
    bdy_informer *inf = NULL;
    bdy_label_selector *sel = NULL;
    bool sync_made = false;
    int rc = 0;
    if (out != NULL)
        *out = NULL;
    /* Nothing is held yet, so bad arguments return directly. */
    if (store == NULL || opts == NULL || h == NULL || out == NULL || opts->gvr == NULL ||
        opts->gvr->version == NULL || opts->gvr->resource == NULL)
        return bdy_fail(eb, BDY_EINVAL, "informer: store, options, GVR and handlers are required");
    /* A bad selector would fail every list forever; refuse it up front. */
    rc = bdy_label_selector_parse(opts->label_selector, &sel, eb);
    if (rc != 0)
        goto out;
    inf = calloc(1, sizeof(*inf));
    if (inf == NULL) {
        rc = BDY_ENOMEM;
        goto out;
    }
    inf->store = store;
    inf->group = strdup(opts->gvr->group != NULL ? opts->gvr->group : "");
    inf->version = strdup(opts->gvr->version);
    inf->resource = strdup(opts->gvr->resource);
    inf->ns = dup_or_null(opts->ns);
    inf->label_selector = dup_or_null(opts->label_selector);
    if (inf->group == NULL || inf->version == NULL || inf->resource == NULL ||
        (opts->ns != NULL && opts->ns[0] != '\0' && inf->ns == NULL) ||
        (opts->label_selector != NULL && opts->label_selector[0] != '\0' &&
         inf->label_selector == NULL)) {
        rc = BDY_ENOMEM;
        goto out;
    }
    inf->gvr = (bdy_gvr){inf->group, inf->version, inf->resource};
    inf->page_size = opts->page_size ? opts->page_size : INFORMER_DEFAULT_PAGE;
    if (inf->page_size > BDY_STORE_MAX_LIST_LIMIT)
        inf->page_size = BDY_STORE_MAX_LIST_LIMIT;
    inf->h = *h;
    rc = map_init(&inf->known);
    if (rc != 0)
        goto out;
    pthread_mutex_init(&inf->lock, NULL);
    bdy_cond_init_monotonic(&inf->cond);
    sync_made = true;
    if (pthread_create(&inf->thread, NULL, informer_main, inf) != 0) {
        rc = bdy_fail(eb, BDY_ENOMEM, "informer: cannot start a thread");
        goto out;
    }
    *out = inf;
    inf = NULL;
out:
    if (inf != NULL && sync_made) {
        pthread_mutex_destroy(&inf->lock);
        pthread_cond_destroy(&inf->cond);
    }
    informer_free(inf);
    bdy_label_selector_free(sel);
    return rc;
}

bool bdy_informer_synced(bdy_informer *inf)
{
    if (inf == NULL)
        return false;
    pthread_mutex_lock(&inf->lock);
    bool s = inf->synced;
    pthread_mutex_unlock(&inf->lock);
    return s;
}

bool bdy_informer_wait_synced(bdy_informer *inf, int timeout_ms)
{
    if (inf == NULL)
        return false;
    struct timespec deadline;
    bdy_deadline_after_ms(CLOCK_MONOTONIC, timeout_ms > 0 ? (unsigned)timeout_ms : 0, &deadline);
    pthread_mutex_lock(&inf->lock);
    while (!inf->synced && !inf->stopping) {
        if (pthread_cond_timedwait(&inf->cond, &inf->lock, &deadline) == ETIMEDOUT)
            break;
    }
    bool s = inf->synced;
    pthread_mutex_unlock(&inf->lock);
    return s;
}

uint64_t bdy_informer_relists(bdy_informer *inf)
{
    if (inf == NULL)
        return 0;
    pthread_mutex_lock(&inf->lock);
    uint64_t n = inf->relists;
    pthread_mutex_unlock(&inf->lock);
    return n;
}

/* Asks the thread to stop, waits for it (and so for a running handler), and
 * frees inf. Accepts NULL. Must not be called from a handler of inf. */
void bdy_informer_stop(bdy_informer *inf)
{
    if (inf == NULL)
        return;
    pthread_mutex_lock(&inf->lock);
    inf->stopping = true;
    pthread_cond_broadcast(&inf->cond);
    pthread_mutex_unlock(&inf->lock);
    pthread_join(inf->thread, NULL);
    pthread_mutex_destroy(&inf->lock);
    pthread_cond_destroy(&inf->cond);
    informer_free(inf);
}
