/* The embedded reconciler: a world informer feeding the fleet, a work queue
 * and workers for the world and pool controllers, an Event recorder, and
 * the glue to the runtime.
 *
 * World controller: drives one WorldInstance through
 *   Pending → Starting → Ready → Allocated → Terminating → (deleted), Failed
 * with the finalizer bindery.dev/world, status conditions, observedGeneration,
 * a timestamp per transition and Kubernetes Events saying why.
 * Pool controller: keeps warm (Pending + Starting + Ready) worlds of each
 * pool at its target, creating at a bounded rate and backing off when
 * worlds keep failing; deletes Failed worlds and, after a cooldown, surplus
 * idle ones (oldest first) — never an allocated one.
 *
 * Thread-safety: all functions may be called from any thread. Controllers
 * run on the reconciler's worker threads.
 */
#ifndef BINDERY_RECONCILER_H
#define BINDERY_RECONCILER_H

#include "bindery/error.h"
#include "bindery/metrics.h"
#include "bindery/pool.h"
#include "bindery/runtime.h"
#include "bindery/store.h"

#include <json-c/json.h>
#include <stdbool.h>

typedef struct bdy_reconciler bdy_reconciler;

/* Called on the informer thread after the fleet has seen a world change
 * (obj NULL: the world was deleted). Must not block. */
typedef void (*bdy_world_observer_cb)(void *data, const char *ns, const char *name,
                                      json_object *obj);

typedef struct bdy_reconciler_opts {
    bdy_store *store;     /* borrowed; outlives the reconciler */
    bdy_fleet *fleet;     /* borrowed */
    bdy_metrics *metrics; /* borrowed, may be NULL */
    bdy_demand *demand;   /* borrowed, may be NULL: pools are then sized at minWarm */
    unsigned workers;     /* worker threads (>= 1) */
    /* The world host program (bindery-world-host) that runs a booklet
     * world's modules; borrowed. NULL: booklet worlds fail to start. */
    const char *world_host;
    bdy_world_observer_cb on_world;
    void *on_world_data;
} bdy_reconciler_opts;

int bdy_reconciler_new(const bdy_reconciler_opts *opts, bdy_reconciler **out, bdy_errbuf *eb);

/* The runtime's exit callback: pass it (with the reconciler as data) when
 * creating the runtime. */
void bdy_reconciler_world_exited(void *data, const char *ns, const char *name,
                                 const bdy_world_handle *h, int exit_status);
/* The runtime's ending callback (a booklet world's module exited while its
 * host runs on), passed the same way. */
void bdy_reconciler_world_ending(void *data, const char *ns, const char *name,
                                 const bdy_world_handle *h);
/* The runtime's probe callback, passed the same way. */
void bdy_reconciler_probe_done(void *data, const char *ns, const char *name,
                               const bdy_world_handle *h, int rc, bdy_world_state state);

/* Starts the informer and workers with this runtime (borrowed). Returns once
 * the informer has delivered its first list (or after timeout_ms). */
int bdy_reconciler_start(bdy_reconciler *r, bdy_runtime *runtime, int timeout_ms, bdy_errbuf *eb);
/* True once the world informer has synced. */
bool bdy_reconciler_synced(bdy_reconciler *r);
/* Queues every pool for reconciling (after a config reload). */
void bdy_reconciler_pools_changed(bdy_reconciler *r);
/* Queues a pool for the pool controller (a claim changed its counts). */
void bdy_reconciler_enqueue_pool(bdy_reconciler *r, const char *ns, const char *pool);
/* Queues one world (e.g. a claim changed it). */
void bdy_reconciler_enqueue_world(bdy_reconciler *r, const char *ns, const char *name);
/* Records a Kubernetes Event about a world (asynchronously, bounded). */
void bdy_reconciler_event(bdy_reconciler *r, json_object *world, const char *type,
                          const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* The same for events as frequent as claims: recorded only while the
 * events' budget holds a reserve for the controllers' own events, so that
 * a burst of them never crowds out why a world failed. */
void bdy_reconciler_event_if_spare(bdy_reconciler *r, json_object *world, const char *type,
                                   const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Seconds until pool ns/pool creates worlds again while its worlds keep
 * failing (crashbackoff.h); 0: not held back. Any thread. */
double bdy_reconciler_pool_backoff(bdy_reconciler *r, const char *ns, const char *pool);
/* Updates the gauges (worlds by pool/phase, queue depth) for a scrape. */
void bdy_reconciler_collect(bdy_reconciler *r);
/* Stops workers and informer; worlds keep running. */
void bdy_reconciler_stop(bdy_reconciler *r);
void bdy_reconciler_free(bdy_reconciler *r);

#endif
