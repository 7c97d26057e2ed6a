/* The controllers' work queue (include/bindery/informer.h), with client-go's
 * semantics.
 *
 * Every key the queue knows about has one entry in a hash map, holding its
 * whole state:
 *   dirty       queued and not yet taken by a worker;
 *   processing  a worker holds it (between get and done);
 *   heap_index  its slot in the delay heap, or NOT_DELAYED;
 *   failures    its rate-limit count (kept until forget).
 * The ready FIFO holds exactly the entries that are dirty and not
 * processing, so a key is never in it twice and never handed to a second
 * worker while the first still holds it: an add during processing only sets
 * dirty, and done() puts the key back. An entry is freed when none of the
 * four applies.
 *
 * Delayed keys wait in a min-heap by due time. There is no timer thread:
 * getters (and depth()) move due keys to the FIFO, and a getter with nothing
 * ready sleeps on a CLOCK_MONOTONIC condition variable until the earliest
 * due time. One mutex guards everything; no callback is ever called.
 */
#include "bindery/informer.h"

#include "bindery/hmap.h"

#include "bindery/log.h"
#include "bindery/util.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WQ_LOG "workqueue"
/* The longest key the queue accepts, in bytes, terminator included: a
 * getter's buffer of this size always suffices. Longer keys are refused
 * (with a log line), never truncated, since a truncated key names another
 * object. */
#define WQ_MAX_KEY 512u
#define WQ_DEFAULT_BASE_MS 5u
#define WQ_DEFAULT_MAX_MS 60000u
#define WQ_MIN_BUCKETS 64u
#define WQ_MIN_ARRAY 16u
#define NOT_DELAYED SIZE_MAX

typedef struct wq_entry {
    bdy_hnode node;  /* first: a node pointer is the entry; node.key = key */
    uint64_t due_ns; /* valid while heap_index != NOT_DELAYED */
    size_t heap_index;
    unsigned failures;
    bool dirty;
    bool processing;
    char key[];
} wq_entry;

struct bdy_workqueue {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    unsigned base_ms;
    unsigned max_ms;
    bool shutting_down;

    bdy_hmap keys; /* every key the queue remembers */

    wq_entry **fifo; /* ring buffer of ready entries */
    size_t fifo_cap;
    size_t fifo_head;
    size_t fifo_len;

    wq_entry **heap; /* min-heap by due_ns */
    size_t heap_cap;
    size_t heap_len;
};

/* ---- the key map ----------------------------------------------------------- */

static wq_entry *entry_find(const bdy_workqueue *q, const char *key, uint64_t hash)
{
    return (wq_entry *)bdy_hmap_find(&q->keys, key, hash);
}

/* Checks key against the cap and finds or creates its entry. Returns NULL
 * (after logging) for a refused key or when out of memory. Lock held. */
static wq_entry *entry_get(bdy_workqueue *q, const char *key)
{
    size_t len = strnlen(key, WQ_MAX_KEY);
    if (len >= WQ_MAX_KEY) {
        bdy_warn(WQ_LOG, "refusing a key longer than %u bytes", WQ_MAX_KEY - 1);
        return NULL;
    }
    uint64_t hash = bdy_hash_str(key);
    wq_entry *e = entry_find(q, key, hash);
    if (e != NULL)
        return e;
    e = calloc(1, sizeof(*e) + len + 1);
    if (e == NULL) {
        bdy_error(WQ_LOG, "out of memory queueing a key");
        return NULL;
    }
    memcpy(e->key, key, len + 1);
    e->node.hash = hash;
    e->node.key = e->key;
    e->heap_index = NOT_DELAYED;
    bdy_hmap_insert(&q->keys, &e->node);
    return e;
}

/* Frees e once nothing about it is left to remember. Lock held. */
static void entry_release_if_idle(bdy_workqueue *q, wq_entry *e)
{
    if (e->dirty || e->processing || e->failures > 0 || e->heap_index != NOT_DELAYED)
        return;
    bdy_hmap_remove(&q->keys, &e->node);
    free(e);
}

/* ---- the ready FIFO -------------------------------------------------------- */

static int fifo_push(bdy_workqueue *q, wq_entry *e)
{
    if (q->fifo_len == q->fifo_cap) {
        size_t n = q->fifo_cap ? q->fifo_cap * 2 : WQ_MIN_ARRAY;
        wq_entry **f = malloc(n * sizeof(wq_entry *));
        if (f == NULL)
            return BDY_ENOMEM;
        for (size_t i = 0; i < q->fifo_len; i++)
            f[i] = q->fifo[(q->fifo_head + i) % q->fifo_cap];
        free(q->fifo);
        q->fifo = f;
        q->fifo_cap = n;
        q->fifo_head = 0;
    }
    q->fifo[(q->fifo_head + q->fifo_len) % q->fifo_cap] = e;
    q->fifo_len++;
    return 0;
}

static wq_entry *fifo_pop(bdy_workqueue *q)
{
    wq_entry *e = q->fifo[q->fifo_head];
    q->fifo_head = (q->fifo_head + 1) % q->fifo_cap;
    q->fifo_len--;
    return e;
}

/* ---- the delay heap -------------------------------------------------------- */

static void heap_set(bdy_workqueue *q, size_t i, wq_entry *e)
{
    q->heap[i] = e;
    e->heap_index = i;
}

static void heap_up(bdy_workqueue *q, size_t i)
{
    wq_entry *e = q->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (q->heap[parent]->due_ns <= e->due_ns)
            break;
        heap_set(q, i, q->heap[parent]);
        i = parent;
    }
    heap_set(q, i, e);
}

static void heap_down(bdy_workqueue *q, size_t i)
{
    wq_entry *e = q->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= q->heap_len)
            break;
        if (child + 1 < q->heap_len && q->heap[child + 1]->due_ns < q->heap[child]->due_ns)
            child++;
        if (q->heap[child]->due_ns >= e->due_ns)
            break;
        heap_set(q, i, q->heap[child]);
        i = child;
    }
    heap_set(q, i, e);
}

static int heap_push(bdy_workqueue *q, wq_entry *e)
{
    if (q->heap_len == q->heap_cap) {
        size_t n = q->heap_cap ? q->heap_cap * 2 : WQ_MIN_ARRAY;
        wq_entry **h = realloc(q->heap, n * sizeof(wq_entry *));
        if (h == NULL)
            return BDY_ENOMEM;
        q->heap = h;
        q->heap_cap = n;
    }
    q->heap_len++;
    heap_set(q, q->heap_len - 1, e);
    heap_up(q, q->heap_len - 1);
    return 0;
}

static wq_entry *heap_pop(bdy_workqueue *q)
{
    wq_entry *top = q->heap[0];
    q->heap_len--;
    if (q->heap_len > 0) {
        heap_set(q, 0, q->heap[q->heap_len]);
        heap_down(q, 0);
    }
    top->heap_index = NOT_DELAYED;
    return top;
}

/* ---- queue operations (lock held) ------------------------------------------ */

/* Marks e dirty and, unless a worker holds it, makes it ready. */
static void add_locked(bdy_workqueue *q, wq_entry *e)
{
    if (e->dirty)
        return;
    if (!e->processing && fifo_push(q, e) != 0) {
        bdy_error(WQ_LOG, "out of memory queueing key %s", e->key);
        return;
    }
    e->dirty = true;
    if (!e->processing)
        pthread_cond_signal(&q->cond);
}

/* Moves every delayed key whose time has come to the ready FIFO. */
static void promote_due(bdy_workqueue *q)
{
    if (q->heap_len == 0)
        return;
    uint64_t now = bdy_monotonic_ns();
    while (q->heap_len > 0 && q->heap[0]->due_ns <= now) {
        wq_entry *e = heap_pop(q);
        add_locked(q, e);
        entry_release_if_idle(q, e);
    }
}

static void add_after_locked(bdy_workqueue *q, wq_entry *e, unsigned delay_ms)
{
    if (delay_ms == 0) {
        add_locked(q, e);
        return;
    }
    uint64_t due = bdy_monotonic_ns() + (uint64_t)delay_ms * 1000000u;
    if (e->heap_index != NOT_DELAYED) {
        /* Already waiting: the earliest time wins. */
        if (due >= e->due_ns)
            return;
        e->due_ns = due;
        heap_up(q, e->heap_index);
    } else {
        e->due_ns = due;
        if (heap_push(q, e) != 0) {
            bdy_error(WQ_LOG, "out of memory delaying key %s", e->key);
            return;
        }
    }
    /* A getter may be sleeping until a later time, or without a deadline. */
    pthread_cond_broadcast(&q->cond);
}

/* base * 2^failures, capped at max, without overflowing. */
static unsigned backoff_ms(const bdy_workqueue *q, unsigned failures)
{
    uint64_t d = q->base_ms;
    for (unsigned i = 0; i < failures && d < q->max_ms; i++)
        d *= 2;
    return d > q->max_ms ? q->max_ms : (unsigned)d;
}

/* ---- public API ------------------------------------------------------------ */

/* Creates an empty queue (opts NULL or zero fields: defaults). The caller
 * owns *out and frees it with bdy_workqueue_free. */
int bdy_workqueue_new(const bdy_workqueue_opts *opts, bdy_workqueue **out)
{
    bdy_workqueue *q = NULL;
    int rc = 0;
    if (out == NULL)
        return BDY_EINVAL;
    *out = NULL;
    q = calloc(1, sizeof(*q));
    if (q == NULL) {
        rc = BDY_ENOMEM;
        goto out;
    }
    q->base_ms = opts && opts->base_delay_ms ? opts->base_delay_ms : WQ_DEFAULT_BASE_MS;
    q->max_ms = opts && opts->max_delay_ms ? opts->max_delay_ms : WQ_DEFAULT_MAX_MS;
    if (q->base_ms > q->max_ms)
        q->base_ms = q->max_ms;
    if (bdy_hmap_init(&q->keys, WQ_MIN_BUCKETS) != 0) {
        rc = BDY_ENOMEM;
        goto out;
    }
    pthread_mutex_init(&q->lock, NULL);
    bdy_cond_init_monotonic(&q->cond);
    *out = q;
    q = NULL;
out:
    if (q != NULL)
        bdy_hmap_destroy(&q->keys);
    free(q);
    return rc;
}

/* Queues key now unless it is already queued. key is copied; NULL, keys of
 * WQ_MAX_KEY bytes or more, and adds after shutdown are ignored. Thread-safe. */
void bdy_workqueue_add(bdy_workqueue *q, const char *key)
{
    if (q == NULL || key == NULL)
        return;
    pthread_mutex_lock(&q->lock);
    if (!q->shutting_down) {
        wq_entry *e = entry_get(q, key);
        if (e != NULL) {
            add_locked(q, e);
            entry_release_if_idle(q, e);
        }
    }
    pthread_mutex_unlock(&q->lock);
}

/* Queues key once delay_ms has passed; a key already waiting keeps the
 * earlier of its two times. Same input rules as add. Thread-safe. */
void bdy_workqueue_add_after(bdy_workqueue *q, const char *key, unsigned delay_ms)
{
    if (q == NULL || key == NULL)
        return;
    pthread_mutex_lock(&q->lock);
    if (!q->shutting_down) {
        wq_entry *e = entry_get(q, key);
        if (e != NULL) {
            add_after_locked(q, e, delay_ms);
            entry_release_if_idle(q, e);
        }
    }
    pthread_mutex_unlock(&q->lock);
}

/* Queues key after base * 2^failures (capped at max) and counts one more
 * failure for it. Thread-safe. */
void bdy_workqueue_add_rate_limited(bdy_workqueue *q, const char *key)
{
    if (q == NULL || key == NULL)
        return;
    pthread_mutex_lock(&q->lock);
    if (!q->shutting_down) {
        wq_entry *e = entry_get(q, key);
        if (e != NULL) {
            unsigned delay = backoff_ms(q, e->failures);
            if (e->failures < UINT_MAX)
                e->failures++;
            add_after_locked(q, e, delay);
            entry_release_if_idle(q, e);
        }
    }
    pthread_mutex_unlock(&q->lock);
}

/* Clears key's failure count; a pending delayed add stays. Thread-safe. */
void bdy_workqueue_forget(bdy_workqueue *q, const char *key)
{
    if (q == NULL || key == NULL)
        return;
    pthread_mutex_lock(&q->lock);
    wq_entry *e = entry_find(q, key, bdy_hash_str(key));
    if (e != NULL) {
        e->failures = 0;
        entry_release_if_idle(q, e);
    }
    pthread_mutex_unlock(&q->lock);
}

/* Blocks until a key is ready and hands it to the caller, who then holds it
 * until bdy_workqueue_done. Returns 0, BDY_ESHUTDOWN once the queue is shut
 * down (even with keys left), BDY_EINVAL for bad arguments, or BDY_ETOOBIG
 * when the next key does not fit in cap bytes (it stays queued; a buffer of
 * 512 bytes always suffices). Thread-safe; any number of getters. */
int bdy_workqueue_get(bdy_workqueue *q, char *buf, size_t cap)
{
    if (q == NULL || buf == NULL || cap == 0)
        return BDY_EINVAL;
    int rc = 0;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        if (q->shutting_down) {
            rc = BDY_ESHUTDOWN;
            break;
        }
        promote_due(q);
        if (q->fifo_len > 0) {
            wq_entry *e = q->fifo[q->fifo_head];
            size_t len = strlen(e->key);
            if (len >= cap) {
                rc = BDY_ETOOBIG;
                break;
            }
            fifo_pop(q);
            e->dirty = false;
            e->processing = true;
            memcpy(buf, e->key, len + 1);
            rc = 0;
            break;
        }
        if (q->heap_len > 0) {
            uint64_t due = q->heap[0]->due_ns;
            struct timespec ts = {.tv_sec = (time_t)(due / 1000000000u),
                                  .tv_nsec = (long)(due % 1000000000u)};
            pthread_cond_timedwait(&q->cond, &q->lock, &ts);
        } else {
            pthread_cond_wait(&q->cond, &q->lock);
        }
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

/* Releases a key taken with get; if it was queued again meanwhile, it
 * becomes ready again now. A key not being processed is ignored.
 * Thread-safe. */
void bdy_workqueue_done(bdy_workqueue *q, const char *key)
{
    if (q == NULL || key == NULL)
        return;
    pthread_mutex_lock(&q->lock);
    wq_entry *e = entry_find(q, key, bdy_hash_str(key));
    if (e != NULL && e->processing) {
        e->processing = false;
        if (e->dirty && fifo_push(q, e) != 0) {
            bdy_error(WQ_LOG, "out of memory requeueing key %s", e->key);
            e->dirty = false;
        } else if (e->dirty) {
            pthread_cond_signal(&q->cond);
        }
        entry_release_if_idle(q, e);
    } else {
        bdy_debug(WQ_LOG, "done for a key that is not being processed");
    }
    pthread_mutex_unlock(&q->lock);
}

/* Ready keys (delayed keys count once due). Thread-safe. */
size_t bdy_workqueue_depth(bdy_workqueue *q)
{
    if (q == NULL)
        return 0;
    pthread_mutex_lock(&q->lock);
    promote_due(q);
    size_t n = q->fifo_len;
    pthread_mutex_unlock(&q->lock);
    return n;
}

/* From now on get returns BDY_ESHUTDOWN and adds are ignored; wakes every
 * blocked getter. Thread-safe; idempotent. */
void bdy_workqueue_shutdown(bdy_workqueue *q)
{
    if (q == NULL)
        return;
    pthread_mutex_lock(&q->lock);
    q->shutting_down = true;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

/* Frees q and every key in it. Accepts NULL. No thread may be inside any
 * other call on q: shut it down and join the workers first. */
void bdy_workqueue_free(bdy_workqueue *q)
{
    if (q == NULL)
        return;
    BDY_HMAP_FOREACH(&q->keys, n)
    {
        free(n);
    }
    bdy_hmap_destroy(&q->keys);
    free(q->fifo);
    free(q->heap);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->cond);
    free(q);
}
