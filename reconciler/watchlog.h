/* Internal to the embedded store: the in-memory history of committed changes
 * that watches read from.
 *
 * A fixed-size ring of the most recent events in commit order, bounded in
 * bytes too (an event holds up to two whole objects, each up to the store's
 * object limit, so a count alone bounds nothing). The single
 * writer appends after each commit and never waits for readers; each watch
 * keeps its own cursor. A watch whose next event has been overwritten gets
 * BDY_EEXPIRED (and relists) instead of silently skipping events, which is
 * the Kubernetes "410 Gone" contract. Thread-safety: one mutex guards the
 * ring and the cursors; waiting readers sleep on a condition variable.
 */
#ifndef BINDERY_RECONCILER_WATCHLOG_H
#define BINDERY_RECONCILER_WATCHLOG_H

#include "bindery/selector.h"
#include "bindery/store.h"

#include <pthread.h>
#include <stdint.h>

/* One committed change. Strings are owned by the ring slot. */
typedef struct bdy__event {
    uint64_t rv;
    bdy_event_type type;
    char *group;
    char *resource;
    char *ns;
    char *object;     /* JSON of the object after the change */
    char *old_object; /* JSON before the change (MODIFIED only), else NULL */
} bdy__event;

typedef struct bdy__watchlog {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    bdy__event *ring;
    size_t capacity;
    size_t bytes;       /* object text held by the ring */
    size_t max_bytes;   /* 0: no limit but the capacity */
    uint64_t first_seq; /* the oldest event not evicted for bytes */
    uint64_t next_seq;  /* sequence number the next appended event gets */
    uint64_t floor_rv;  /* every change with rv > floor_rv is still in the ring */
    bool closed;
} bdy__watchlog;

/* capacity events, holding at most max_bytes of object text (0: no limit;
 * the newest event is kept whatever its size). */
int bdy__watchlog_init(bdy__watchlog *log, size_t capacity, size_t max_bytes, uint64_t current_rv);
void bdy__watchlog_destroy(bdy__watchlog *log);

/* Writer: appends events (taking ownership of their strings) and wakes
 * watchers. Never blocks on readers beyond the mutex. */
void bdy__watchlog_append(bdy__watchlog *log, bdy__event *events, size_t n);

/* Wakes every waiting watcher with BDY_ESHUTDOWN from now on. */
void bdy__watchlog_close(bdy__watchlog *log);

/* The oldest resourceVersion a watch or continue token may start from. */
uint64_t bdy__watchlog_floor(bdy__watchlog *log);

/* Opens a cursor for changes with rv > from_rv (BDY_EEXPIRED if older than
 * the floor). Selectors are copied. */
int bdy__watchlog_open(bdy__watchlog *log, const char *group, const char *resource, const char *ns,
                       bdy_label_selector *labels, bdy_field_selector *fields, uint64_t from_rv,
                       bdy_watch **out);
int bdy__watchlog_next(bdy__watchlog *log, bdy_watch *w, int timeout_ms, bdy_watch_event *ev);
void bdy__watchlog_close_watch(bdy__watchlog *log, bdy_watch *w);

#endif
