/* Informers and work queues: the machinery controllers run on.
 *
 * An informer keeps a caller up to date with one resource: it lists (paged),
 * then watches from the list's resourceVersion, and relists when the watch
 * expires (410) or fails, with backoff. Handlers see an object "added" when
 * a (re)list or the watch finds it new, "updated" (with no old object after
 * a relist, which keeps none) when it changed, and "deleted" — including for
 * objects that disappeared
 * while the watch was down (found by diffing the relist against the keys it
 * knew). The informer keeps only keys and resourceVersions, never objects:
 * handlers keep whatever compact state they need.
 *
 * A work queue holds keys ("namespace/name") for controllers: a key queued
 * several times before a worker takes it is processed once; a key is never
 * processed by two workers at once (if it is queued again while being
 * processed, it is processed again afterwards); failed keys are retried with
 * per-key exponential backoff; keys can be queued after a delay.
 */
#ifndef BINDERY_INFORMER_H
#define BINDERY_INFORMER_H

#include "bindery/error.h"
#include "bindery/store.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- informer ------------------------------------------------------------ */

/* Handlers run on the informer's own thread, one at a time, in event order.
 * Objects are borrowed for the duration of the call. Any slot may be NULL. */
typedef struct bdy_informer_handlers {
    void (*on_add)(void *data, json_object *obj);
    void (*on_update)(void *data, json_object *old_or_null, json_object *obj);
    void (*on_delete)(void *data, json_object *last_known_or_null, const char *ns,
                      const char *name);
    /* Called after each complete (re)list has been delivered. */
    void (*on_synced)(void *data);
    void *data;
} bdy_informer_handlers;

typedef struct bdy_informer bdy_informer;

typedef struct bdy_informer_opts {
    const bdy_gvr *gvr;         /* copied */
    const char *ns;             /* NULL: all namespaces */
    const char *label_selector; /* NULL: everything */
    size_t page_size;           /* list page size (default 500) */
} bdy_informer_opts;

/* Creates and starts the informer thread. store must outlive it. */
int bdy_informer_start(bdy_store *store, const bdy_informer_opts *opts,
                       const bdy_informer_handlers *h, bdy_informer **out, bdy_errbuf *eb);
/* True once the first list has been delivered. Thread-safe. */
bool bdy_informer_synced(bdy_informer *inf);
/* Waits up to timeout_ms for the first sync. Returns true when synced. */
bool bdy_informer_wait_synced(bdy_informer *inf, int timeout_ms);
/* Number of relists after the first list (for metrics and tests). */
uint64_t bdy_informer_relists(bdy_informer *inf);
/* Stops the thread (waits for a running handler to return) and frees. */
void bdy_informer_stop(bdy_informer *inf);

/* ---- work queue ---------------------------------------------------------- */

typedef struct bdy_workqueue bdy_workqueue;

typedef struct bdy_workqueue_opts {
    unsigned base_delay_ms; /* first retry delay (default 5) */
    unsigned max_delay_ms;  /* cap on retry delay (default 60000) */
} bdy_workqueue_opts;

int bdy_workqueue_new(const bdy_workqueue_opts *opts, bdy_workqueue **out);
/* Queues key now (deduplicated). Thread-safe. */
void bdy_workqueue_add(bdy_workqueue *q, const char *key);
/* Queues key after delay_ms (the earliest pending time wins). */
void bdy_workqueue_add_after(bdy_workqueue *q, const char *key, unsigned delay_ms);
/* Queues key after its backoff delay, and doubles its delay for next time. */
void bdy_workqueue_add_rate_limited(bdy_workqueue *q, const char *key);
/* Resets key's backoff (after a success). */
void bdy_workqueue_forget(bdy_workqueue *q, const char *key);
/* Blocks until a key is ready, copying it into buf (cap bytes). Returns 0,
 * or BDY_ESHUTDOWN once the queue is shut down. The caller must call
 * bdy_workqueue_done(q, buf) when finished with the key. */
int bdy_workqueue_get(bdy_workqueue *q, char *buf, size_t cap);
void bdy_workqueue_done(bdy_workqueue *q, const char *key);
/* Keys queued and ready now, not counting delayed ones (a gauge). */
size_t bdy_workqueue_depth(bdy_workqueue *q);
/* Wakes every getter with BDY_ESHUTDOWN. */
void bdy_workqueue_shutdown(bdy_workqueue *q);
void bdy_workqueue_free(bdy_workqueue *q);

#endif
