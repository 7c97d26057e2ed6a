#include "watchlog.h"

#include "bindery/jsonutil.h"
#include "bindery/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct bdy_watch {
    char *group;
    char *resource;
    char *ns;                   /* NULL: all namespaces */
    bdy_label_selector *labels; /* owned, may be NULL */
    bdy_field_selector *fields; /* owned, may be NULL */
    uint64_t seq;               /* next ring sequence number to read */
    uint64_t from_rv;           /* events at or below it are not delivered */
    bool closing;
    bool busy; /* a thread is inside next() */
    pthread_cond_t idle;
};

static void event_clear(bdy__event *e)
{
    free(e->group);
    free(e->resource);
    free(e->ns);
    free(e->name);
    free(e->object);
    free(e->old_object);
    memset(e, 0, sizeof(*e));
}

static size_t event_bytes(const bdy__event *e)
{
    return (e->object ? strlen(e->object) : 0) + (e->old_object ? strlen(e->old_object) : 0);
}

int bdy__watchlog_init(bdy__watchlog *log, size_t capacity, size_t max_bytes, uint64_t current_rv)
{
    memset(log, 0, sizeof(*log));
    if (capacity == 0)
        capacity = 1;
    log->ring = calloc(capacity, sizeof(*log->ring));
    if (log->ring == NULL)
        return BDY_ENOMEM;
    log->capacity = capacity;
    log->max_bytes = max_bytes;
    log->floor_rv = current_rv;
    log->newest_rv = current_rv;
    pthread_mutex_init(&log->lock, NULL);
    bdy_cond_init_monotonic(&log->changed);
    return 0;
}

void bdy__watchlog_destroy(bdy__watchlog *log)
{
    if (log == NULL || log->ring == NULL)
        return;
    for (size_t i = 0; i < log->capacity; i++)
        event_clear(&log->ring[i]);
    free(log->ring);
    log->ring = NULL;
    pthread_mutex_destroy(&log->lock);
    pthread_cond_destroy(&log->changed);
}

static uint64_t oldest_seq(const bdy__watchlog *log)
{
    uint64_t by_count = log->next_seq > log->capacity ? log->next_seq - log->capacity : 0;
    return by_count > log->first_seq ? by_count : log->first_seq;
}

void bdy__watchlog_append(bdy__watchlog *log, bdy__event *events, size_t n)
{
    pthread_mutex_lock(&log->lock);
    for (size_t i = 0; i < n; i++) {
        bdy__event *slot = &log->ring[log->next_seq % log->capacity];
        if (slot->object != NULL)
            log->floor_rv = slot->rv; /* the evicted change is no longer replayable */
        log->bytes -= event_bytes(slot);
        event_clear(slot);
        *slot = events[i];
        memset(&events[i], 0, sizeof(events[i]));
        log->bytes += event_bytes(slot);
        log->newest_rv = slot->rv;
        log->next_seq++;
    }
    /* Over the byte limit: the oldest go first, as they would by count. */
    while (log->max_bytes != 0 && log->bytes > log->max_bytes &&
           oldest_seq(log) + 1 < log->next_seq) {
        bdy__event *old = &log->ring[oldest_seq(log) % log->capacity];
        log->floor_rv = old->rv;
        log->bytes -= event_bytes(old);
        event_clear(old);
        log->first_seq = oldest_seq(log) + 1;
    }
    pthread_cond_broadcast(&log->changed);
    pthread_mutex_unlock(&log->lock);
}

void bdy__watchlog_close(bdy__watchlog *log)
{
    pthread_mutex_lock(&log->lock);
    log->closed = true;
    pthread_cond_broadcast(&log->changed);
    pthread_mutex_unlock(&log->lock);
}

void bdy__change_list_free(bdy__change_list *l)
{
    free(l->items);
    free(l->keys);
    memset(l, 0, sizeof(*l));
}

/* Appends one change to l (under the log's lock: amortized, one
 * allocation in many). */
static int change_add(bdy__change_list *l, const bdy__event *e, uint64_t seq)
{
    size_t nl = strlen(e->ns) + 1;
    size_t ml = strlen(e->name) + 1;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        bdy__change *grown = realloc(l->items, cap * sizeof(*grown));
        if (grown == NULL)
            return BDY_ENOMEM;
        l->items = grown;
        l->cap = cap;
    }
    if (l->keys_len + nl + ml > l->keys_cap) {
        size_t cap = l->keys_cap ? l->keys_cap * 2 : 8192;
        while (cap < l->keys_len + nl + ml)
            cap *= 2;
        char *grown = realloc(l->keys, cap);
        if (grown == NULL)
            return BDY_ENOMEM;
        l->keys = grown;
        l->keys_cap = cap;
    }
    l->items[l->n++] =
        (bdy__change){.seq = seq, .existed = e->type != BDY_EVENT_ADDED, .key = l->keys_len};
    memcpy(l->keys + l->keys_len, e->ns, nl);
    memcpy(l->keys + l->keys_len + nl, e->name, ml);
    l->keys_len += nl + ml;
    return 0;
}

int bdy__watchlog_before(bdy__watchlog *log, const char *group, const char *resource,
                         const char *ns, uint64_t at, uint64_t upto, bdy__change_list *out)
{
    pthread_mutex_lock(&log->lock);
    int rc = at < log->floor_rv ? BDY_EEXPIRED : log->newest_rv < upto ? BDY_EBUSY : 0;
    for (uint64_t seq = oldest_seq(log); rc == 0 && seq < log->next_seq; seq++) {
        const bdy__event *e = &log->ring[seq % log->capacity];
        if (e->rv <= at || e->rv > upto || e->name == NULL || e->ns == NULL ||
            strcmp(e->group, group) != 0 || strcmp(e->resource, resource) != 0 ||
            (ns != NULL && strcmp(e->ns, ns) != 0))
            continue;
        /* Without its old text, a change cannot be undone: the caller
         * lists again, as for changes no longer held. */
        if (e->type != BDY_EVENT_ADDED && e->old_object == NULL)
            rc = BDY_EEXPIRED;
        else
            rc = change_add(out, e, seq);
    }
    pthread_mutex_unlock(&log->lock);
    return rc;
}

int bdy__watchlog_copy_before(bdy__watchlog *log, uint64_t seq, char **out)
{
    *out = NULL;
    pthread_mutex_lock(&log->lock);
    int rc = BDY_EEXPIRED;
    if (seq >= oldest_seq(log) && seq < log->next_seq) {
        const bdy__event *e = &log->ring[seq % log->capacity];
        rc = e->old_object == NULL                    ? BDY_EEXPIRED
             : (*out = strdup(e->old_object)) == NULL ? BDY_ENOMEM
                                                      : 0;
    }
    pthread_mutex_unlock(&log->lock);
    return rc;
}

uint64_t bdy__watchlog_floor(bdy__watchlog *log)
{
    pthread_mutex_lock(&log->lock);
    uint64_t f = log->floor_rv;
    pthread_mutex_unlock(&log->lock);
    return f;
}

static char *dup_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? strdup(s) : NULL;
}

static void watch_free(bdy_watch *w)
{
    if (w == NULL)
        return;
    free(w->group);
    free(w->resource);
    free(w->ns);
    bdy_label_selector_free(w->labels);
    bdy_field_selector_free(w->fields);
    pthread_cond_destroy(&w->idle);
    free(w);
}

int bdy__watchlog_open(bdy__watchlog *log, const char *group, const char *resource, const char *ns,
                       bdy_label_selector *labels, bdy_field_selector *fields, uint64_t from_rv,
                       bdy_watch **out)
{
    int rc = 0;
    bdy_watch *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        bdy_label_selector_free(labels);
        bdy_field_selector_free(fields);
        return BDY_ENOMEM;
    }
    pthread_cond_init(&w->idle, NULL);
    w->labels = labels;
    w->fields = fields;
    w->group = strdup(group);
    w->resource = strdup(resource);
    w->ns = dup_or_null(ns);
    if (w->group == NULL || w->resource == NULL || (ns != NULL && ns[0] && w->ns == NULL)) {
        rc = BDY_ENOMEM;
        goto out;
    }
    pthread_mutex_lock(&log->lock);
    if (from_rv < log->floor_rv) {
        pthread_mutex_unlock(&log->lock);
        rc = BDY_EEXPIRED;
        goto out;
    }
    /* Start at the first retained event newer than from_rv. The ring is in
     * rv order, so a binary search would do; a linear scan from the newest
     * end is simpler and typical watches start near the head. */
    uint64_t seq = log->next_seq;
    while (seq > oldest_seq(log) && log->ring[(seq - 1) % log->capacity].rv > from_rv)
        seq--;
    w->seq = seq;
    /* The store commits a batch before it appends the batch's events, so a
     * list read in between has a resourceVersion whose events come after
     * this watch's place in the ring: they are skipped in next(). */
    w->from_rv = from_rv;
    pthread_mutex_unlock(&log->lock);
    *out = w;
    w = NULL;
out:
    watch_free(w);
    return rc;
}

static bool selected(const bdy_watch *w, json_object *obj)
{
    if (obj == NULL)
        return false;
    json_object *labels = bdy_json_path_get(obj, "metadata.labels");
    if (w->labels != NULL && !bdy_label_selector_matches(w->labels, labels))
        return false;
    if (w->fields != NULL && !bdy_field_selector_matches(w->fields, obj))
        return false;
    return true;
}

/* How translate() decided. */
typedef enum delivery { DELIVERED, FILTERED, UNREADABLE } delivery;

/* Decides whether event e is delivered to w and how: a MODIFIED event moves
 * an object into or out of a selector's view, which the watcher must see as
 * ADDED or DELETED. DELIVERED fills *ev. UNREADABLE: a copy or a parse
 * failed (out of memory: the text is the store's own), so whether the
 * watcher wanted the event is unknown. Called without the log lock (e is a
 * private copy). */
static delivery translate(const bdy_watch *w, const bdy__event *e, bdy_watch_event *ev)
{
    json_object *obj = e->object != NULL ? bdy_json_parse_stored(e->object) : NULL;
    if (obj == NULL)
        return UNREADABLE;
    bdy_event_type type = e->type;
    bool now = selected(w, obj);
    if (e->type == BDY_EVENT_MODIFIED && (w->labels != NULL || w->fields != NULL)) {
        json_object *old = e->old_object ? bdy_json_parse_stored(e->old_object) : NULL;
        if (e->old_object != NULL && old == NULL) {
            json_object_put(obj);
            return UNREADABLE;
        }
        bool before = selected(w, old);
        if (before && !now) {
            /* Gone from the watcher's view: as Kubernetes says it, the
             * object as the watcher last saw it, at this event's version. */
            type = BDY_EVENT_DELETED;
            now = true;
            char rv[24];
            snprintf(rv, sizeof(rv), "%llu", (unsigned long long)e->rv);
            json_object *meta = json_object_object_get(old, "metadata");
            if (meta != NULL)
                json_object_object_add(meta, "resourceVersion", json_object_new_string(rv));
            json_object_put(obj);
            obj = old;
            old = NULL;
        } else if (!before && now) {
            type = BDY_EVENT_ADDED;
        }
        json_object_put(old);
    }
    if (!now) {
        json_object_put(obj);
        return FILTERED;
    }
    ev->type = type;
    ev->resource_version = e->rv;
    ev->object = obj;
    return DELIVERED;
}

static bool wants(const bdy_watch *w, const bdy__event *e)
{
    if (strcmp(w->group, e->group) != 0 || strcmp(w->resource, e->resource) != 0)
        return false;
    return w->ns == NULL || (e->ns != NULL && strcmp(w->ns, e->ns) == 0);
}

int bdy__watchlog_next(bdy__watchlog *log, bdy_watch *w, int timeout_ms, bdy_watch_event *ev)
{
    struct timespec deadline;
    bdy_deadline_after_ms(CLOCK_MONOTONIC, timeout_ms > 0 ? (unsigned)timeout_ms : 0, &deadline);
    pthread_mutex_lock(&log->lock);
    w->busy = true;
    int rc = BDY_ETIMEOUT;
    for (;;) {
        if (w->closing || log->closed) {
            rc = BDY_ESHUTDOWN;
            break;
        }
        if (w->seq < oldest_seq(log)) {
            rc = BDY_EEXPIRED;
            break;
        }
        if (w->seq < log->next_seq) {
            const bdy__event *e = &log->ring[w->seq % log->capacity];
            w->seq++;
            if (e->rv <= w->from_rv || !wants(w, e))
                continue;
            /* Copy the strings out so JSON parsing happens without the lock:
             * the writer must never wait on a slow watcher. */
            bdy__event copy = {.rv = e->rv, .type = e->type};
            copy.object = strdup(e->object);
            /* The old text matters only to a MODIFIED event under
             * selectors (translate). */
            bool had_old = e->old_object != NULL && e->type == BDY_EVENT_MODIFIED &&
                           (w->labels != NULL || w->fields != NULL);
            copy.old_object = had_old ? strdup(e->old_object) : NULL;
            pthread_mutex_unlock(&log->lock);
            delivery d = had_old && copy.old_object == NULL ? UNREADABLE : translate(w, &copy, ev);
            free(copy.object);
            free(copy.old_object);
            pthread_mutex_lock(&log->lock);
            if (d == DELIVERED) {
                rc = 0;
                break;
            }
            /* Skipping the event would lose it for good; a watcher told
             * it expired lists again. */
            if (d == UNREADABLE) {
                rc = BDY_EEXPIRED;
                break;
            }
            continue;
        }
        if (timeout_ms <= 0)
            break;
        if (pthread_cond_timedwait(&log->changed, &log->lock, &deadline) == ETIMEDOUT &&
            w->seq >= log->next_seq)
            break;
    }
    w->busy = false;
    pthread_cond_broadcast(&w->idle);
    pthread_mutex_unlock(&log->lock);
    return rc;
}

void bdy__watchlog_close_watch(bdy__watchlog *log, bdy_watch *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&log->lock);
    w->closing = true;
    pthread_cond_broadcast(&log->changed);
    while (w->busy)
        pthread_cond_wait(&w->idle, &log->lock);
    pthread_mutex_unlock(&log->lock);
    watch_free(w);
}
