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
    char *name;
    char *object;     /* JSON of the object after the change */
    char *old_object; /* JSON before the change (MODIFIED and DELETED), else NULL */
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
    uint64_t newest_rv; /* of the last change appended (the store's rv at init) */
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

/* The changes of some objects, as bdy__watchlog_before lists them. */
typedef struct bdy__change {
    uint64_t seq; /* for bdy__watchlog_copy_before */
    bool existed; /* the object existed before the change */
    size_t key;   /* offset of "ns\0name\0" in the list's keys */
} bdy__change;
typedef struct bdy__change_list {
    bdy__change *items;
    size_t n;
    size_t cap;
    char *keys;
    size_t keys_len;
    size_t keys_cap;
} bdy__change_list;
void bdy__change_list_free(bdy__change_list *l);

/* The changes of the objects of group/resource (in namespace ns; NULL:
 * all) after rv `at`, up to rv `upto`, oldest first, appended to *out: the
 * first change of an object says what it was at `at`. Under the log's lock
 * only the matching changes' names are copied, so the writer, which needs
 * the lock to publish every commit, waits for no more. BDY_EEXPIRED when
 * the changes after `at` are no longer all held; BDY_EBUSY when the log has
 * not caught up with `upto` yet (the writer appends after its commit);
 * BDY_ENOMEM. */
int bdy__watchlog_before(bdy__watchlog *log, const char *group, const char *resource,
                         const char *ns, uint64_t at, uint64_t upto, bdy__change_list *out);
/* A copy (*out, the caller's to free) of the object's text before change
 * seq (from bdy__watchlog_before, which said it existed). BDY_EEXPIRED once
 * the change is no longer held; BDY_ENOMEM. */
int bdy__watchlog_copy_before(bdy__watchlog *log, uint64_t seq, char **out);
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
