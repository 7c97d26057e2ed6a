/* Pools: the in-memory picture of every world that claims and the pool
 * controller work from, the warm index, and pool sizing.
 *
 * A bdy_fleet holds every pool from the config and a compact record of every
 * WorldInstance, kept current by the world informer (bdy_fleet_observe /
 * bdy_fleet_forget). Records are plain C structs — no JSON on the claim
 * path. Each pool keeps its warm worlds (Ready, not being deleted, not being
 * claimed, not reserved for a cold claim) in an array with O(1) removal,
 * so the common claim (no selector) is O(1).
 *
 * The index is a hint, never the truth: a claim is made durable against
 * the world's identity (the claim ledger's one live claim per world uid,
 * or, without a ledger, a write of the world with its resourceVersion as a
 * precondition), so a stale entry costs a retry, never a world handed out
 * twice. Within one process, whoever takes a world out of the index (a
 * claim, a scale-down) has it to itself until it settles.
 *
 * Thread-safety: one mutex guards the whole fleet; every function takes it
 * and none blocks on I/O while holding it. Records are only read or changed
 * under it; callers get copies.
 */
#ifndef BINDERY_POOL_H
#define BINDERY_POOL_H

#include "bindery/config.h"
#include "bindery/demand.h"
#include "bindery/error.h"
#include "bindery/selector.h"
#include "bindery/store.h"
#include "bindery/util.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Label and annotation keys under this domain (and its subdomains) are
 * bindery's own; claims may not set them. */
#define BDY_RESERVED_DOMAIN "bindery.dev"
/* True for a key whose prefix is BDY_RESERVED_DOMAIN or a subdomain of it. */
bool bdy_reserved_key(const char *key);
/* Label every pooled world carries: its pool's name. */
#define BDY_LABEL_POOL BDY_RESERVED_DOMAIN "/pool"
/* Finalizer the world controller keeps until the runtime has stopped. */
#define BDY_FINALIZER_WORLD "bindery.dev/world"
/* Annotation on a world created for one waiting claim. */
#define BDY_ANNOTATION_COLD_CLAIM "bindery.dev/cold-claim"
/* Label naming the template a world was made from (bdy_pool_template), as
 * 16 hex digits: a world whose pool has moved on to another template is
 * replaced once it is idle. */
#define BDY_LABEL_TEMPLATE BDY_RESERVED_DOMAIN "/template"

#define BDY_NAME_MAX 254
#define BDY_ALLOCATION_ID_LEN 17 /* "alc-" + 12 hex + NUL */

typedef enum bdy_phase {
    BDY_PHASE_PENDING,
    BDY_PHASE_STARTING,
    BDY_PHASE_READY,
    BDY_PHASE_ALLOCATED,
    BDY_PHASE_TERMINATING,
    BDY_PHASE_FAILED,
    BDY_PHASE_COUNT
} bdy_phase;

const char *bdy_phase_name(bdy_phase p);
/* "" or NULL parse as PENDING (a world no controller has touched yet). */
int bdy_phase_parse(const char *text, bdy_phase *out);
/* The field selector terms (selector.h) that pick the worlds a listing
 * shows in phase p, written to out (cap bytes): "status.phase=Ready", and
 * for PENDING every other phase excluded, since a world no controller has
 * touched has no status.phase to match. 0, or BDY_EINVAL when p is not a
 * phase or out is too small. */
int bdy_phase_selector(bdy_phase p, char *out, size_t cap);

/* A world created for a cold claim (annotation BDY_ANNOTATION_COLD_CLAIM)
 * never enters the warm index while the annotation is there: the waiting
 * claim takes it. Removing the annotation releases it to the pool. */

/* Counts of one pool's worlds, for the controller, /v1/pools and metrics.
 * "warm" = in the warm index; deleting worlds count only in `deleting`. */
typedef struct bdy_pool_counts {
    unsigned phase[BDY_PHASE_COUNT];
    unsigned warm;           /* claimable now */
    unsigned deleting;       /* deletionTimestamp set */
    unsigned reserved;       /* Pending, Starting or Ready worlds created for a cold claim:
                                counted in phase[] but no warm stock (the claim takes them) */
    unsigned creating;       /* granted creations not seen yet (bdy_fleet_creation_grant) */
    unsigned unchecked;      /* Ready worlds no claim holds whose process this run has not
                                found running yet (after a restart): not warm yet */
    unsigned total;          /* every world of the pool that is not being deleted, and
                                every creation in `creating` */
    unsigned outdated;       /* Pending, Starting or Ready worlds, not reserved and not held
                                by a claim, made from another template than the pool's
                                (bdy_fleet_set_template): counted in phase[] but no warm
                                stock, since they are being replaced */
    unsigned outdated_ready; /* the Ready ones among them (still claimable meanwhile) */
    bool template_proven;    /* a world of the pool's template has been seen Ready since
                                it was set: the template can make worlds */
    bool template_failed;    /* ... or one has been seen Failed */
} bdy_pool_counts;

/* A copy of what claims need to know about a candidate. */
typedef struct bdy_world_ref {
    char ns[BDY_NAME_MAX];
    char name[BDY_NAME_MAX];
    char pool[BDY_NAME_MAX];
    char uid[64]; /* metadata.uid; "" when not known */
    uint64_t resource_version;
} bdy_world_ref;

typedef struct bdy_fleet bdy_fleet;

/* What this run of Bindery knows of a world's process. A Ready world is
 * claimable only once LIVE: after a restart, until the world controller
 * has adopted its process, the status only says it was Ready before, and
 * its process may have died during the downtime (or a reboot). */
typedef enum bdy_process_seen {
    BDY_PROCESS_UNKNOWN, /* not looked at by this run yet */
    BDY_PROCESS_LIVE,    /* started or adopted by this run, running */
    BDY_PROCESS_EXITED,  /* exited while this run watched it */
    BDY_PROCESS_LOST,    /* gone before this run could adopt it: no crash of its own,
                            so its failure does not count towards the crash backoff */
    BDY_PROCESS_ENDING,  /* runs, but the world is over: a module of a booklet world
                            exited, and its host is stopping the others */
} bdy_process_seen;

/* Whether a world whose process was seen so is done for good: it never
 * becomes claimable again (a new world under its name starts afresh). */
static inline bool bdy_process_over(bdy_process_seen seen)
{
    return seen == BDY_PROCESS_EXITED || seen == BDY_PROCESS_LOST || seen == BDY_PROCESS_ENDING;
}

/* What the fleet last saw of one world: the informer's view, which may lag
 * the store (a write conditioned on resource_version catches that). */
typedef struct bdy_world_seen {
    bdy_phase phase;
    bool deleting;
    uint64_t resource_version;
    char uid[64]; /* "" when not known */
    bool claimed; /* a claim holds it or is being made durable, though its
                     status may still say Ready */
    bdy_process_seen process;
    /* Wall seconds of the create when this run made it (granted by
     * bdy_fleet_creation_grant just before): finer than creationTimestamp,
     * whose whole seconds would add half a second to every startup
     * measured from it. 0: not known (made before a restart, or by hand). */
    double created_at;
} bdy_world_seen;

int bdy_fleet_new(bdy_fleet **out);
void bdy_fleet_free(bdy_fleet *f);

/* Replaces the pool set with cfg's pools (config load and reload). Worlds of
 * pools that disappear stay recorded (and untouched) but are no longer
 * warm. Targets are recomputed by the pool controller. */
int bdy_fleet_set_pools(bdy_fleet *f, const bdy_config_pools *pools);

/* Deep-copies pool ns/name's config entry into *out (free it with
 * bdy_fleet_pool_spec_free). BDY_ENOTFOUND for an unknown pool. */
int bdy_fleet_pool_spec(bdy_fleet *f, const char *ns, const char *name, bdy_config_pool *out);
void bdy_fleet_pool_spec_free(bdy_config_pool *spec);
/* Number of pools and the ns/name of pool i (for iteration). */
size_t bdy_fleet_pool_count(bdy_fleet *f);
int bdy_fleet_pool_at(bdy_fleet *f, size_t i, char *ns, size_t ns_cap, char *name, size_t name_cap);

/* Informer side: records a WorldInstance's current state. Returns the
 * pool's name in pool_out (cap BDY_NAME_MAX; "" when the world has no pool)
 * so the caller can queue the pool for reconciling. */
void bdy_fleet_observe(bdy_fleet *f, json_object *world, char *pool_out);
void bdy_fleet_forget(bdy_fleet *f, const char *ns, const char *name, char *pool_out);

int bdy_fleet_counts(bdy_fleet *f, const char *ns, const char *pool, bdy_pool_counts *out);

/* World controller side: records what it found. Ignored for a world the
 * fleet does not know (the informer reports it first; a later reconcile
 * says it again). */
void bdy_fleet_process_seen(bdy_fleet *f, const char *ns, const char *name, bdy_process_seen seen);

/* World controller, before it fails a Ready world whose process still runs
 * (its readiness probe): takes the world out of the warm index, unless a
 * claim holds it or is being made durable (false: the claimant keeps it).
 * rv is the resourceVersion its Failed write is conditioned on, which the
 * informer may not have reported yet. It stays out until a state newer than
 * that is observed (its Failed status) or bdy_fleet_fail_undo (the status
 * write failed). Without this, a claim between the check and the write got
 * a world about to be stopped. */
bool bdy_fleet_fail_begin(bdy_fleet *f, const char *ns, const char *name, uint64_t rv);
void bdy_fleet_fail_undo(bdy_fleet *f, const char *ns, const char *name);

/* Creators (the pool controller, cold claims), one world at a time: grants
 * room for a new world under the pool's maxWorlds and names it (name_out,
 * cap BDY_NAME_MAX), so that two creators acting on the same counts in
 * quick succession cannot both fill the same room. The room is held until
 * the informer reports a world of that name, which may come before the
 * creator's own store call returns: the name is what keeps the world from
 * being counted twice, as a world and as a slot. False: no room (or an
 * unknown pool). Every grant must be settled with bdy_fleet_creation_done:
 * created true keeps the room until the world is seen, false (the create
 * failed) gives it back. */
bool bdy_fleet_creation_grant(bdy_fleet *f, const char *ns, const char *pool, char *name_out);
void bdy_fleet_creation_done(bdy_fleet *f, const char *ns, const char *pool, const char *name,
                             bool created);

/* Claim side: takes a warm world of the pool matching the first selector
 * (in order) that any warm world matches; selectors may be NULL/empty.
 * The world is marked claiming (out of the warm index) until
 * bdy_fleet_claim_done(). answer_world, when not NULL, receives the
 * "world" object of the claim's answer as JSON text (see
 * bdy_allocation_world), prepared when the world became Ready.
 * BDY_ENOTFOUND: unknown pool; BDY_EBUSY: no warm world matches. */
int bdy_fleet_claim_take(bdy_fleet *f, const char *ns, const char *pool,
                         bdy_label_selector *const *selectors, size_t nselectors,
                         bdy_world_ref *out, bdy_buf *answer_world);
/* Ends a claim attempt. claimed: the world is held by the claim — never
 * warm again, counted as Allocated even while its status still says Ready,
 * until the informer reports it deleted (or a new world under its name).
 * Otherwise it goes back to the warm index if it is still Ready at that
 * resourceVersion (stale: it stays out until the informer reports again). */
void bdy_fleet_claim_done(bdy_fleet *f, const bdy_world_ref *w, bool claimed, bool stale);
/* When world (a WorldInstance) was created, wall seconds: the fleet's own
 * finer time for a world this run made (bdy_world_seen.created_at), else
 * its creationTimestamp; -1 when neither is known. */
double bdy_fleet_created_at(bdy_fleet *f, json_object *world);
/* Fills *out with what the fleet saw of world ns/name. BDY_ENOTFOUND when
 * it has not seen it (or only holds it for a claim, unobserved). */
int bdy_fleet_world_seen(bdy_fleet *f, const char *ns, const char *name, bdy_world_seen *out);
/* Marks world ns/name with metadata.uid uid held by a claim (start-up from
 * the claim ledger, possibly before the informer has seen the world). A
 * world of that name with another uid is not held. BDY_ENOMEM. */
int bdy_fleet_hold(bdy_fleet *f, const char *ns, const char *name, const char *uid);
/* The claim that bdy_fleet_hold marked has ended: a record kept only for it
 * (its world never observed: gone before the informer listed) is freed, as
 * the informer would have freed an observed one when it saw it deleted. */
void bdy_fleet_unhold_unseen(bdy_fleet *f, const char *ns, const char *name, const char *uid);

/* Pool controller, scale-down: takes up to max idle warm worlds of the
 * pool, oldest first, that have been Ready at least min_age_s, leaving at
 * least keep claimable (the counts the step came from may include worlds
 * being claimed, and claims may have come in since), out of the
 * warm index as a claim would, so that no claim is given a world being
 * deleted and no world given to a claim is deleted. (With the claim
 * ledger a claim does not write the world, so the delete's
 * resourceVersion precondition alone cannot tell.) The counts have them
 * as deleting from here, so that a pass before the informer reports the
 * deletes does not find the same surplus again. Settle each with
 * bdy_fleet_scale_down_done. */
size_t bdy_fleet_take_idle_oldest(bdy_fleet *f, const char *ns, const char *pool, double min_age_s,
                                  size_t keep, bdy_world_ref *out, size_t max);
/* deleted: the delete went through, or lost to a newer state of the world
 * (a resourceVersion conflict); the world stays as taken until the
 * informer reports that newer state. Otherwise it is put back (warm and
 * counted as it is), unless the informer has already reported newer. */
void bdy_fleet_scale_down_done(bdy_fleet *f, const bdy_world_ref *ref, bool deleted);
/* Pool controller: the template the pool's worlds should be made from
 * (bdy_pool_template; 0: not known, and then no world is outdated). Worlds
 * labelled with another one count as outdated from here on
 * (bdy_pool_counts.outdated); worlds labelled with none do not. */
void bdy_fleet_set_template(bdy_fleet *f, const char *ns, const char *pool, uint64_t template_id);
/* The template last set for the pool (0: none, or an unknown pool). */
uint64_t bdy_fleet_template(bdy_fleet *f, const char *ns, const char *pool);
/* Pool controller, replacing outdated worlds: takes up to max claimable
 * (warm) outdated worlds of the pool, leaving at least keep claimable
 * worlds, as bdy_fleet_take_idle_oldest takes them (out of the warm index,
 * counted as deleting). Never one a claim holds or takes, or one reserved
 * for a cold claim; nor one not Ready yet: it may be a cold claim's world
 * that joins the pool after a 504, and is taken once Ready like any other.
 * Settle each with bdy_fleet_scale_down_done. */
size_t bdy_fleet_take_outdated(bdy_fleet *f, const char *ns, const char *pool, size_t keep,
                               bdy_world_ref *out, size_t max);
/* Pool controller: up to max Failed worlds of the pool not yet being deleted,
 * and not held by a claim (its status may say Failed before the claim
 * reached it: the claim releases it).
 * A world stays listed until its deletion is seen. Of those listed for the
 * first time that failed of a crash of their own (not BDY_PROCESS_LOST,
 * not a reason like ManifestChanged) and were made from the pool's
 * current template, *ncrashes are counted, and for each
 * crash_ready_s (room for max) gets how long the world had been Ready (0:
 * never), so that each failure feeds the crash backoff once. */
size_t bdy_fleet_failed(bdy_fleet *f, const char *ns, const char *pool, bdy_world_ref *out,
                        size_t max, double *crash_ready_s, size_t *ncrashes);

/* A new WorldInstance named name (from bdy_fleet_creation_grant) for the
 * pool: the pool's labels and BDY_LABEL_POOL, the world finalizer;
 * cold_claim_id non-NULL reserves it for that waiting claim. Caller owns
 * the result. */
json_object *bdy_pool_new_world(const bdy_config_pool *spec, const char *name,
                                const char *cold_claim_id, uint64_t template_id);

/* The template of the pool's worlds: what a world must have been made from
 * to be current. A digest of the pool's manifest or booklet (its kind, name,
 * uid and generation, so an edit of its spec, or its deletion and
 * re-creation, makes a new template) and of the pool's labels (in any
 * order). source is that ModuleManifest or Booklet object as stored; for
 * a Booklet, modules are the ModuleManifests its modules name, in its
 * order (the same digest of each: an edit of a module's manifest is a new
 * template too). bound: what its worlds' capabilities are bound to
 * (bdy_capabilities_stamp), NULL or "" when they require none (so a pool
 * without capabilities keeps the template it had before bindings were
 * digested). Never 0; 0 when source or a module has no metadata.uid.
 * A new world carries it as BDY_LABEL_TEMPLATE (bdy_pool_new_world with
 * template_id non-zero). */
uint64_t bdy_pool_template(const bdy_config_pool *spec, json_object *source,
                           json_object *const *modules, size_t nmodules, const char *bound);
/* A BDY_LABEL_TEMPLATE value as a template id: 0 for NULL or anything but
 * 16 lower-case hex digits. */
uint64_t bdy_pool_template_parse(const char *text);
/* A template id as its label value: 16 hex digits and a NUL. */
void bdy_pool_template_text(uint64_t template_id, char out[17]);

/* Each world listed is taken as by bdy_fleet_take_idle_oldest: settle it
 * with bdy_fleet_scale_down_done.
 * Up to max worlds that a pool made (labelled BDY_LABEL_POOL with their
 * spec.pool) while that pool is not configured (a reload removed it, or
 * bindery started without it), for as long as the pool's scale-down
 * cooldown (default_age_s for a pool this run never had), and that nothing
 * holds: no claim, no cold claim waiting, not Allocated, not being
 * deleted. The pool controller deletes them, or they would run unclaimable
 * for good. */
size_t bdy_fleet_orphans(bdy_fleet *f, double default_age_s, bdy_world_ref *out, size_t max);

/* Up to max worlds held for cold claims (annotation BDY_ANNOTATION_COLD_CLAIM),
 * so the claim module can release the ones whose claim no longer waits. */
size_t bdy_fleet_reserved(bdy_fleet *f, bdy_world_ref *out, size_t max);

/* Sizing, the one entry point: the warm target (Pending + Starting + Ready)
 * of a pool at time now (Unix seconds) from its demand — forecast, lead
 * time, recent claims and misses, overrides, the previous level and the
 * allocated count (demand.h, sizing.h). NULL demand: nothing known, so
 * minWarm clamped to maxWarm and maxWorlds. level_out (may be NULL) gets the
 * unrounded target to pass back through bdy_demand_note_target, which makes
 * scale-down gradual. Pure. */
unsigned bdy_pool_target_warm(const bdy_config_pool *spec, const bdy_pool_demand *demand,
                              double now, double *level_out);

#endif

/* ---- allocations ----------------------------------------------------------
 * While a world is claimed, its status.allocation records the claim (in
 * embedded mode the claim ledger, ledger.h, is the durable record first and
 * the status follows shortly). When the world is released, an Allocation object (crds/
 * allocations.yaml) named after the allocation id keeps the answer, so GETs
 * and idempotent replays still work after the world is gone. */

extern const bdy_gvr BDY_GVR_ALLOCATIONS;

/* The claim answer of API.md for an allocated world (status.allocation set),
 * without "state". Returns NULL when world has no allocation. Caller owns. */
json_object *bdy_allocation_answer(json_object *world);
/* The "world" member of a claim's answer for world as it is now (its own
 * labels and annotations). Caller owns. */
json_object *bdy_allocation_world(json_object *world);
/* The same as compact JSON text (malloc'd; NULL when out of memory),
 * without copying world's labels, annotations and ports. */
char *bdy_allocation_world_json(json_object *world);
/* Adds the labels and annotations a claim asked for (borrowed, either may
 * be NULL) to an answer's "world" member. */
void bdy_allocation_merge_metadata(json_object *answer_world, json_object *labels,
                                   json_object *annotations);

/* Writes the release record (Allocation named after alloc's "id") of a
 * claim of world ns/world in pool: alloc holds the fields of
 * status.allocation, answer the claim's answer (both borrowed). An existing
 * record is kept (returns 0). */
int bdy_allocation_record(bdy_store *store, const char *ns, const char *world, const char *pool,
                          json_object *alloc, json_object *answer, const char *reason,
                          bdy_errbuf *eb);

/* Whether bdy_allocation_record failed because the record itself can never
 * be written (an allocation no claim made, set by hand: no valid name, a
 * field missing, too large), not for a trouble a retry may get past. */
bool bdy_allocation_record_refused(int rc);

/* Releases an allocated world: records the Allocation (answer, reason,
 * releasedAt; an existing record is kept) and then deletes the world (its
 * finalizer makes the world controller stop it). Idempotent. A record that
 * can never be written (bdy_allocation_record_refused) is logged and the
 * world deleted all the same. */
int bdy_allocation_release(bdy_store *store, json_object *world, const char *reason,
                           bdy_errbuf *eb);
