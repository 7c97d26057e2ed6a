/* The claim API (see claims.h and ../shared/design/API.md). */
#include "bindery/claims.h"

#include "bindery/auth.h"
#include "bindery/hmap.h"
#include "bindery/informer.h"
#include "bindery/jsonutil.h"
#include "bindery/log.h"
#include "bindery/selector.h"
#include "bindery/util.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CLAIM_MAX_TRIES 8
#define CLAIM_MAX_BODY_DEPTH 16
#define CLAIMANT_MAX 253
#define ID_BUCKETS 1024 /* initial; the maps grow */
#define RETRY_AFTER_S 1
#define IDEM_WAIT_MS 5000
#define IDEM_REUSED_MESSAGE "this Idempotency-Key was used with a different request body"
#define HIT_WINDOW_MINUTES 60
#define WORLDS_PAGE_DEFAULT 100
#define WORLDS_PAGE_MAX 1000
#define ORPHAN_GRACE_S 10.0
#define ORPHAN_SWEEP_MAX 64
#define ORPHAN_SWEEP_EVERY_S 2.0
/* Release records answer GETs and idempotent replays for this long. */
#define RECORD_RETENTION_DEFAULT_S (24.0 * 3600.0)
#define RECORD_SWEEP_EVERY_S 60u
#define RECORD_SWEEP_PAGE 500
/* A sweep stops after this long; with records left, the next one comes
 * this soon instead of a minute later. */
#define RECORD_SWEEP_BUDGET_S 5.0
#define RECORD_SWEEP_BEHIND_S 1u
/* Threads writing ledger claims into world status, in rounds of at most
 * MAT_ROUND claims gathered for up to MAT_LINGER_MS. */
#define MATERIALIZERS 1
/* Threads answering cold claims and replays: finishing a cold claim is a
 * store read and a durable write, so several at once share the store's
 * group commit instead of paying an fsync each in turn (200 cold claims
 * whose worlds were Ready together were answered one per ~0.9 ms by one
 * thread). One of them also runs the orphan sweep. */
#define COLD_THREADS 4
/* A cold claim whose world fails (crashes while starting, is deleted) gets
 * another in its place while at least COLD_RESTART_MIN_S of its wait is
 * left, up to COLD_WORLDS_MAX worlds in all: a world lost to a passing
 * fault does not fail the claim, and a manifest that never starts costs a
 * few worlds per claim, not one per second of the wait. */
#define COLD_WORLDS_MAX 3u
#define COLD_RESTART_MIN_S 1.0
#define MAT_ROUND 256
#define MAT_LINGER_MS 20
/* After a round the store could not write (a full disk), the next waits
 * this long, doubling up to the most. */
#define MAT_RETRY_MIN_MS 250u
#define MAT_RETRY_MAX_MS 30000u
#define REFILL_NUDGE_NS (5 * 1000000ULL)
/* A claim's answer: the world's part plus the labels and annotations the
 * claim asked for, which http.maxBodyBytes allows up to 16 MiB of. Capped
 * by what the server can send, not tighter: a 64 KiB cap once turned such
 * claims into a 503 "could not be made durable", again on every retry. */
#define ANSWER_MAX BDY_HTTP_MAX_RESPONSE_BYTES

/* ---- small maps: allocation id → where it lives; idempotency key → id ---- */

/* One per allocation id, live or released (kept for the record retention), so
 * sized to what it holds: with two fixed name buffers it was a 576-byte
 * chunk zeroed on the claim path; now 80 bytes plus its place. */
typedef struct alloc_entry {
    bdy_hnode node; /* first: a node pointer is the entry; node.key = id */
    char id[BDY_ALLOCATION_ID_LEN + 8];
    bool released;
    uint8_t client_releasing; /* DELETEs of its client releasing it right now */
    char *place;              /* owned: "ns\0world\0" (world "" once released), NULL until set */
} alloc_entry;

/* A release cut short: its record is written, but its world, still
 * running, was not deleted (bindery was killed in between). */
typedef struct cut_short {
    struct cut_short *next;
    char id[BDY_ALLOCATION_ID_LEN + 8];
    char ns[BDY_NAME_MAX];
    char world[BDY_NAME_MAX];
} cut_short;

/* An alloc_entry's place, copied out of the lock. */
typedef struct alloc_place {
    char ns[BDY_NAME_MAX];
    char world[BDY_NAME_MAX];
    bool released;
} alloc_place;

/* Longest "ns\nkey" of an idempotency entry, with its NUL. */
#define IDEM_KEY_MAX (BDY_IDEMPOTENCY_KEY_MAX + 1 + BDY_NAME_MAX)
/* Kept as long as its allocation's record, so sized to its key. */
typedef struct idem_entry {
    bdy_hnode node; /* first: node.key = key */
    char hash[65];
    char id[BDY_ALLOCATION_ID_LEN + 8]; /* "" while pending */
    bool pending;
    char key[]; /* "ns\n" + key */
} idem_entry;

/* Misses remembered by Idempotency-Key ("ns\nkey"), so that a client's
 * retries of one claim (503 PoolExhausted, Retry-After) count as one claim
 * of demand, not one a second: the forecast would size the pool for the
 * retries. Oldest first on a list; an entry a hit took leaves the map at
 * once and the list when its turn comes. */
#define MISS_MEMORY_S 600.0
#define MISS_MEMORY_MAX 65536u
typedef struct missed_key {
    bdy_hnode node; /* first: node.key = key */
    struct missed_key *next;
    double at; /* mono_s() of the first miss */
    bool in_map;
    char key[]; /* "ns\nkey" */
} missed_key;

/* world "ns/name" → the live ledger claim holding it, so a world that goes
 * away gets its claim's row checked. */
#define HELD_KEY_MAX (2 * BDY_NAME_MAX + 2)
typedef struct held_entry {
    bdy_hnode node; /* first: node.key = key */
    char id[BDY_ALLOCATION_ID_LEN + 8];
    char key[]; /* "ns/world", as long as it is */
} held_entry;

/* An allocation id whose ledger row needs its world's status brought in
 * line (or its release recorded). */
typedef struct mat_item {
    struct mat_item *next;
    char id[BDY_ALLOCATION_ID_LEN + 8];
    /* The row as it was committed, without its answer (owned, may be
     * NULL): with it, and with the fleet's view of the world, a round needs
     * no reads; without it (at start-up, for a world gone, after a
     * conflict) the row and the world are read back. The answer, most of
     * a row, is left out since only a release needs it, and that reads
     * the row back: a burst of claims queues tens of thousands of these
     * before the materializer catches up. */
    bdy_ledger_record *rec;
} mat_item;

/* Monotonic seconds, for deadlines and durations (not timestamps). */
static double mono_s(void)
{
    return (double)bdy_monotonic_ns() / 1e9;
}

static void mat_item_free(mat_item *m)
{
    if (m != NULL)
        bdy_ledger_record_free(m->rec);
    free(m);
}

/* A claim waiting for a cold world, its own: one per world. */
typedef struct waiter {
    bdy_hnode node;                 /* first: in c->waiting while on c->waiters; node.key = key */
    char key[2 * BDY_NAME_MAX + 2]; /* "ns/world" */
    struct waiter *next;
    bdy_http_deferred *d;
    char ns[BDY_NAME_MAX];
    char world[BDY_NAME_MAX];
    char pool[BDY_NAME_MAX];
    char id[BDY_ALLOCATION_ID_LEN + 8];
    char claimant[CLAIMANT_MAX + 1];
    char idem_key[BDY_IDEMPOTENCY_KEY_MAX + 1];
    char hash[65];
    json_object *labels;      /* owned, may be NULL */
    json_object *annotations; /* owned, may be NULL */
    double deadline;          /* monotonic seconds (mono_s) */
    double started;
    unsigned worlds; /* started for this claim, the one in world included */
    /* The claim has selectors, which its pool's labels (labels_digest)
     * matched: another world is started for it only while they are the
     * same (a reload may change them; the selectors are not kept). */
    bool selective;
    uint64_t labels_digest;
    bool ready; /* the world is Ready: claim it */
    bool failed;
    char why[200]; /* the failed world's status reason and message, for the answer */
} waiter;

/* A retry whose Idempotency-Key is still being claimed: its connection is
 * suspended (no thread waits) until the first claim ends or the deadline
 * passes, then a cold-claim thread answers it. */
typedef struct replay_waiter {
    struct replay_waiter *next;
    bdy_http_deferred *d;
    char idem_full[IDEM_KEY_MAX];
    char ns[BDY_NAME_MAX];
    char pool[BDY_NAME_MAX];
    char id[BDY_ALLOCATION_ID_LEN + 8]; /* set when the first claim succeeded */
    bool ended;                         /* the first claim ended (id "" if it failed) */
    bool reused;                        /* the key now stands for another request body */
    /* How the first claim failed, when it did: the retry gets the same
     * answer (status 0: not told). */
    unsigned fail_status;
    unsigned fail_retry_after;
    char fail_code[32];
    char fail_message[600];
    double deadline; /* monotonic seconds (mono_s) */
    uint64_t t0;
} replay_waiter;

/* Per-pool hit/miss minutes for warmHitRatio and an EWMA lead time. */
typedef struct pool_stats {
    struct pool_stats *next;
    char key[2 * BDY_NAME_MAX];
    uint64_t minute[HIT_WINDOW_MINUTES];
    uint32_t hits[HIT_WINDOW_MINUTES];
    uint32_t misses[HIT_WINDOW_MINUTES];
    double lead_time_s;
    uint64_t refill_ns; /* when a claim last queued the pool for refilling */
} pool_stats;

struct bdy_claims {
    bdy_claims_opts o;
    bdy_reconciler *rec;
    pthread_mutex_t lock; /* ids, idem, waiters, replays, stats */
    bdy_hmap ids;         /* alloc_entry by allocation id */
    bdy_hmap idem;        /* idem_entry by "ns\nkey" */
    bool idem_orphans;    /* records went unnamed: look for keys without them */
    bdy_hmap missed;      /* missed_key by "ns\nkey" */
    missed_key *missed_head;
    missed_key *missed_tail;
    size_t nmissed; /* on the list */
    bdy_hmap held;  /* held_entry by "ns/world" (ledger claims only) */
    /* The waiters by their world's "ns/world": every world event looks for
     * its waiter under the lock, which warm claims take too. */
    bdy_hmap waiting;
    /* Materializing: ledger claims whose world status is not written yet.
     * Guarded by lock; mat_wake signals new items or stopping. */
    mat_item *mat_head;
    mat_item *mat_tail;
    size_t mat_len;
    pthread_cond_t mat_wake;
    pthread_t mat_threads[MATERIALIZERS];
    size_t nmat_threads;
    bdy_log_limit mat_fail_log;    /* a claim's status write failed */
    bdy_log_limit mat_backoff_log; /* the store cannot write claims now */
    waiter *waiters;
    /* Taken off waiters and being answered by a cold-claim thread: the
     * orphan sweep must see that their worlds are still waited for. */
    waiter *inflight;
    replay_waiter *replays;
    pool_stats *stats;
    bdy_informer *records;
    pthread_t cold_threads[COLD_THREADS]; /* cold_main */
    size_t ncold_threads;
    double last_orphan_sweep;  /* mono_s(), under lock: one cold thread sweeps at a time */
    double started_wall;       /* bdy_wall_seconds() when this run made its claims module */
    struct unparked *unparked; /* under lock */
    bool orphan_sweeping;
    pthread_t records_thread;  /* records_main */
    pthread_cond_t sweep_wake; /* stopping or cut_short, for records_main */
    /* Released claims whose world still runs them (a release cut short),
     * for records_main to finish; retried at the next sweep when the store
     * could not. */
    cut_short *cut_short;
    cut_short *cut_short_retry;
    pthread_cond_t wake;

    bdy_metric_family *m_total;
    bdy_metric_family *m_latency;
    bdy_metric_family *m_misses;

    atomic_bool records_synced;
    atomic_bool serving;    /* bdy_claims_serve */
    atomic_bool sweep_stop; /* stopping, read without the lock by a sweep */
    atomic_bool refusing;   /* stopping, read without the lock by new claims */
    bool records_thread_started;
    bool stopping;
};

static const double latency_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                        0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5,
                                        5,      10,      30,     60,    120,    300};

/* A double that prints as written (0.99, not 0.98999999999999999). */
static json_object *jdouble(double v)
{
    char text[32];
    snprintf(text, sizeof(text), "%.6g", v);
    return json_object_new_double_s(v, text);
}

/* Under lock. */
static alloc_entry *id_find(bdy_claims *c, const char *id, bool create)
{
    uint64_t h = bdy_hash_str(id);
    alloc_entry *e = (alloc_entry *)bdy_hmap_find(&c->ids, id, h);
    if (e == NULL && create && (e = calloc(1, sizeof(*e))) != NULL) {
        snprintf(e->id, sizeof(e->id), "%s", id);
        e->node.key = e->id;
        e->node.hash = h;
        bdy_hmap_insert(&c->ids, &e->node);
    }
    return e;
}

static void alloc_entry_free(alloc_entry *e)
{
    if (e != NULL)
        free(e->place);
    free(e);
}

static void id_remove(bdy_claims *c, const char *id)
{
    alloc_entry *e = id_find(c, id, false);
    if (e != NULL) {
        bdy_hmap_remove(&c->ids, &e->node);
        alloc_entry_free(e);
    }
}

static const char *place_ns(const alloc_entry *e)
{
    return e->place != NULL ? e->place : "";
}

static const char *place_world(const alloc_entry *e)
{
    return e->place != NULL ? e->place + strlen(e->place) + 1 : "";
}

/* Sets e's place; out of memory keeps the old one. Under lock. */
static void place_set(alloc_entry *e, const char *ns, const char *world)
{
    if (e->place != NULL && strcmp(place_ns(e), ns) == 0 && strcmp(place_world(e), world) == 0)
        return;
    size_t nl = strlen(ns) + 1;
    size_t wl = strlen(world) + 1;
    char *p = malloc(nl + wl);
    if (p == NULL)
        return;
    memcpy(p, ns, nl);
    memcpy(p + nl, world, wl);
    free(e->place);
    e->place = p;
}

/* Copies where allocation id lives; false when the id is unknown. */
static bool id_place(bdy_claims *c, const char *id, alloc_place *out)
{
    pthread_mutex_lock(&c->lock);
    alloc_entry *e = id_find(c, id, false);
    if (e != NULL) {
        snprintf(out->ns, sizeof(out->ns), "%s", place_ns(e));
        snprintf(out->world, sizeof(out->world), "%s", place_world(e));
        out->released = e->released;
    }
    pthread_mutex_unlock(&c->lock);
    return e != NULL;
}

static void idem_compose(char *out, size_t cap, const char *ns, const char *key)
{
    snprintf(out, cap, "%s\n%s", ns, key);
}

/* Under lock. */
static idem_entry *idem_find(bdy_claims *c, const char *full, bool create)
{
    uint64_t h = bdy_hash_str(full);
    idem_entry *e = (idem_entry *)bdy_hmap_find(&c->idem, full, h);
    if (e != NULL || !create)
        return e;
    /* full comes from idem_compose into an IDEM_KEY_MAX buffer. */
    size_t kl = strnlen(full, IDEM_KEY_MAX - 1) + 1;
    if ((e = calloc(1, sizeof(*e) + kl)) != NULL) {
        memcpy(e->key, full, kl - 1);
        e->node.key = e->key;
        e->node.hash = h;
        bdy_hmap_insert(&c->idem, &e->node);
    }
    return e;
}

static void idem_remove(bdy_claims *c, const char *full)
{
    idem_entry *e = idem_find(c, full, false);
    if (e != NULL) {
        bdy_hmap_remove(&c->idem, &e->node);
        free(e);
    }
}

/* Records a claim's id (and idempotency key, if any) in the indexes; a
 * pending idempotency entry is left to idem_finish(). Under lock. */
static void index_claim(bdy_claims *c, const char *ns, const char *world, const char *id,
                        const char *idem_key, const char *request_hash, bool released)
{
    alloc_entry *e = id_find(c, id, true);
    if (e != NULL) {
        /* A release record wins over a stale live view of the world. */
        bool take = released || !e->released;
        place_set(e, ns, take ? (world ? world : "") : place_world(e));
        if (take)
            e->released = released;
    }
    if (idem_key != NULL && idem_key[0]) {
        char full[IDEM_KEY_MAX];
        idem_compose(full, sizeof(full), ns, idem_key);
        idem_entry *ie = idem_find(c, full, true);
        if (ie != NULL && !ie->pending) {
            snprintf(ie->id, sizeof(ie->id), "%s", id);
            snprintf(ie->hash, sizeof(ie->hash), "%s", request_hash ? request_hash : "");
        }
    }
}

/* index_claim() for what an allocation object (live world status or
 * released record) says. Under lock. */
static void index_allocation(bdy_claims *c, const char *ns, const char *world, json_object *alloc,
                             bool released)
{
    const char *id = bdy_jstr(alloc, "id");
    if (id != NULL)
        index_claim(c, ns, world, id, bdy_jstr(alloc, "idempotencyKey"),
                    bdy_jstr(alloc, "requestHash"), released);
}

static void held_key(char *out, size_t cap, const char *ns, const char *world)
{
    snprintf(out, cap, "%s/%s", ns, world);
}

/* Under lock. */
static void held_set(bdy_claims *c, const char *ns, const char *world, const char *id)
{
    char key[HELD_KEY_MAX];
    held_key(key, sizeof(key), ns, world);
    uint64_t h = bdy_hash_str(key);
    held_entry *e = (held_entry *)bdy_hmap_find(&c->held, key, h);
    size_t kl = strlen(key) + 1;
    if (e == NULL && (e = calloc(1, sizeof(*e) + kl)) != NULL) {
        memcpy(e->key, key, kl);
        e->node.key = e->key;
        e->node.hash = h;
        bdy_hmap_insert(&c->held, &e->node);
    }
    if (e != NULL)
        snprintf(e->id, sizeof(e->id), "%s", id);
}

/* Under lock: forgets that claim id holds world (another claim's entry
 * for the world stays). */
static void held_drop(bdy_claims *c, const char *ns, const char *world, const char *id)
{
    char key[HELD_KEY_MAX];
    held_key(key, sizeof(key), ns, world);
    held_entry *e = (held_entry *)bdy_hmap_find(&c->held, key, bdy_hash_str(key));
    if (e != NULL && strcmp(e->id, id) == 0) {
        bdy_hmap_remove(&c->held, &e->node);
        free(e);
    }
}

/* Under lock: the id holding world, removed from the map ("" when none). */
static void held_take(bdy_claims *c, const char *ns, const char *world, char *id_out, size_t cap)
{
    char key[HELD_KEY_MAX];
    held_key(key, sizeof(key), ns, world);
    held_entry *e = (held_entry *)bdy_hmap_find(&c->held, key, bdy_hash_str(key));
    id_out[0] = '\0';
    if (e != NULL) {
        snprintf(id_out, cap, "%s", e->id);
        bdy_hmap_remove(&c->held, &e->node);
        free(e);
    }
}

/* Queues claim id for its world's status; takes rec (may be NULL). Under
 * lock. The materializer is woken only when the queue was empty or a round
 * is full: it lingers to gather a round anyway, and a wake-up per claim cost
 * the claim path a futex call and a context switch. */
static void materialize_later(bdy_claims *c, const char *id, bdy_ledger_record *rec)
{
    mat_item *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        bdy_error("claims", "out of memory queueing claim %s; it is re-checked at restart", id);
        bdy_ledger_record_free(rec);
        return;
    }
    snprintf(m->id, sizeof(m->id), "%s", id);
    m->rec = rec;
    bool was_empty = c->mat_head == NULL;
    if (c->mat_tail != NULL)
        c->mat_tail->next = m;
    else
        c->mat_head = m;
    c->mat_tail = m;
    c->mat_len++;
    if (was_empty || c->mat_len >= MAT_ROUND)
        pthread_cond_signal(&c->mat_wake);
}

/* ---- stats ------------------------------------------------------------------------ */

static pool_stats *stats_get(bdy_claims *c, const char *ns, const char *pool)
{
    char key[sizeof(((pool_stats *)0)->key)];
    snprintf(key, sizeof(key), "%s/%s", ns, pool);
    pool_stats *s = c->stats;
    while (s != NULL && strcmp(s->key, key) != 0)
        s = s->next;
    if (s == NULL && (s = calloc(1, sizeof(*s))) != NULL) {
        snprintf(s->key, sizeof(s->key), "%s", key);
        s->next = c->stats;
        c->stats = s;
    }
    return s;
}

static void stats_count(bdy_claims *c, const char *ns, const char *pool, bool hit)
{
    uint64_t minute = (uint64_t)(bdy_wall_seconds() / 60);
    pthread_mutex_lock(&c->lock);
    pool_stats *s = stats_get(c, ns, pool);
    if (s != NULL) {
        size_t i = minute % HIT_WINDOW_MINUTES;
        if (s->minute[i] != minute) {
            s->minute[i] = minute;
            s->hits[i] = 0;
            s->misses[i] = 0;
        }
        if (hit)
            s->hits[i]++;
        else
            s->misses[i]++;
    }
    pthread_mutex_unlock(&c->lock);
}

/* Lets go of misses older than MISS_MEMORY_S, and of the oldest past
 * MISS_MEMORY_MAX. Under lock. */
static void missed_prune(bdy_claims *c, double now)
{
    while (c->missed_head != NULL &&
           (c->missed_head->at + MISS_MEMORY_S <= now || c->nmissed > MISS_MEMORY_MAX)) {
        missed_key *m = c->missed_head;
        c->missed_head = m->next;
        if (c->missed_head == NULL)
            c->missed_tail = NULL;
        if (m->in_map)
            bdy_hmap_remove(&c->missed, &m->node);
        free(m);
        c->nmissed--;
    }
}

/* Counts a claim's outcome as demand (the forecast) and in the hit ratio:
 * a miss and a claim of demand, or a hit and a claim. With a key
 * (idem_full, NULL: none), a retry of a claim that missed lately counts
 * nothing again: not its next miss, nor the hit that ends it. */
static void count_demand(bdy_claims *c, const char *ns, const char *pool, const char *idem_full,
                         bool hit)
{
    if (idem_full != NULL) {
        double now = mono_s();
        uint64_t h = bdy_hash_str(idem_full);
        bool counted = false;
        pthread_mutex_lock(&c->lock);
        missed_prune(c, now);
        missed_key *m = (missed_key *)bdy_hmap_find(&c->missed, idem_full, h);
        if (m != NULL) {
            counted = true;
            if (hit) {
                bdy_hmap_remove(&c->missed, &m->node);
                m->in_map = false;
            }
        } else if (!hit) {
            size_t len = strlen(idem_full) + 1;
            if ((m = malloc(sizeof(*m) + len)) != NULL) { /* out of memory: counted again */
                memcpy(m->key, idem_full, len);
                m->node.key = m->key;
                m->node.hash = h;
                m->next = NULL;
                m->at = now;
                m->in_map = true;
                bdy_hmap_insert(&c->missed, &m->node);
                if (c->missed_tail != NULL)
                    c->missed_tail->next = m;
                else
                    c->missed_head = m;
                c->missed_tail = m;
                c->nmissed++;
            }
        }
        pthread_mutex_unlock(&c->lock);
        if (counted)
            return;
    }
    stats_count(c, ns, pool, hit);
    double at = bdy_wall_seconds();
    bdy_demand_record(c->o.demand, ns, pool, BDY_DEMAND_CLAIM, at);
    if (!hit)
        bdy_demand_record(c->o.demand, ns, pool, BDY_DEMAND_MISS, at);
}

/* True at most once per REFILL_NUDGE_NS per pool: a burst of claims wakes
 * the pool controller a few hundred times a second, not once per claim
 * (the world's status change queues it again anyway). */
static bool refill_due(bdy_claims *c, const char *ns, const char *pool)
{
    uint64_t now = bdy_monotonic_ns();
    bool due = false;
    pthread_mutex_lock(&c->lock);
    pool_stats *s = stats_get(c, ns, pool);
    if (s != NULL && now - s->refill_ns >= REFILL_NUDGE_NS) {
        s->refill_ns = now;
        due = true;
    }
    pthread_mutex_unlock(&c->lock);
    return due;
}

static void count_result(bdy_claims *c, const char *ns, const char *pool, const char *source,
                         const char *result, double seconds)
{
    /* A replay names the pool its body did, which may be none configured
     * (a reload removed it, or it never was, with a retry racing the 404):
     * no series for it, or outside input could fill the family and hide
     * those of pools made later. */
    bdy_pool_counts pc = {0};
    if (strcmp(source, "replay") == 0 && bdy_fleet_counts(c->o.fleet, ns, pool, &pc) != 0)
        return;
    const char *labels[] = {ns, pool, source, result, NULL};
    bdy_metric_inc(bdy_metric_child(c->m_total, labels));
    if (strcmp(result, "success") == 0) {
        const char *l2[] = {ns, pool, source, NULL};
        bdy_metric_observe(bdy_metric_child(c->m_latency, l2), seconds);
    }
}

/* ---- observing worlds and records ---------------------------------------------------- */

static void finish_json(bdy_http_deferred *d, unsigned status, json_object *body,
                        const char *location)
{
    bdy_http_response *resp = bdy_http_deferred_response(d);
    bdy_http_json(resp, status, body);
    if (location != NULL)
        bdy_http_set_header(resp, "Location", location);
    bdy_http_deferred_finish(d);
}

static void finish_error(bdy_http_deferred *d, unsigned status, const char *code,
                         const char *message, unsigned retry_after)
{
    bdy_http_error(bdy_http_deferred_response(d), status, code, message, retry_after);
    bdy_http_deferred_finish(d);
}

/* Tells the cold claims waiting for world ns/name that it is Ready or has
 * failed (failed wins; status, when known, says why) and wakes a cold-claim
 * thread. Under c->lock. */
static void tell_waiters(bdy_claims *c, const char *ns, const char *name, bool ready, bool failed,
                         json_object *status)
{
    if (c->waiting.count == 0 || (!ready && !failed))
        return;
    char key[sizeof(((waiter *)0)->key)];
    snprintf(key, sizeof(key), "%s/%s", ns, name);
    waiter *w = (waiter *)bdy_hmap_find(&c->waiting, key, bdy_hash_str(key));
    if (w == NULL)
        return;
    if (failed) {
        w->failed = true;
        const char *reason = bdy_jstr(status, "reason");
        const char *message = bdy_jstr(status, "message");
        if (reason != NULL)
            snprintf(w->why, sizeof(w->why), "%s%s%.160s", reason, message ? ": " : "",
                     message ? message : "");
    } else {
        w->ready = true;
    }
    pthread_cond_signal(&c->wake);
}

/* Takes w off the waiters it is first of (*slot == w). Under c->lock. */
static void waiter_unlink(bdy_claims *c, waiter **slot, waiter *w)
{
    *slot = w->next;
    w->next = NULL;
    bdy_hmap_remove(&c->waiting, &w->node);
}

/* A world whose status names an allocation that is released, and that is
 * not being deleted: the release was cut short after its record and before
 * the world's delete (kill -9). A ledger claim's row has the materializer
 * finish it; a cold claim has none, so it is queued for records_main. Under
 * c->lock. */
static void note_cut_short(bdy_claims *c, const char *ns, const char *name, json_object *world,
                           const char *id)
{
    alloc_entry *e = id ? id_find(c, id, false) : NULL;
    if (e == NULL || !e->released || e->client_releasing ||
        bdy_jget(bdy_jget(world, "metadata"), "deletionTimestamp") != NULL ||
        (c->o.ledger != NULL && bdy_ledger_has(c->o.ledger, id)))
        return;
    for (cut_short *q = c->cut_short; q != NULL; q = q->next)
        if (strcmp(q->id, id) == 0)
            return;
    cut_short *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return; /* seen again at the next world event or start */
    snprintf(q->id, sizeof(q->id), "%s", id);
    snprintf(q->ns, sizeof(q->ns), "%s", ns);
    snprintf(q->world, sizeof(q->world), "%s", name);
    q->next = c->cut_short;
    c->cut_short = q;
    pthread_cond_signal(&c->sweep_wake);
}

void bdy_claims_observe_world(void *data, const char *ns, const char *name, json_object *obj)
{
    bdy_claims *c = data;
    json_object *status = bdy_jget(obj, "status");
    const char *phase = bdy_jstr(status, "phase");
    bool ready = phase != NULL && strcmp(phase, "Ready") == 0;
    /* Looked up before the claims lock, which warm claims take: the fleet's
     * lock is not to be waited for under it on every world event. */
    double created = obj != NULL && ready ? bdy_fleet_created_at(c->o.fleet, obj) : -1;
    pthread_mutex_lock(&c->lock);
    if (obj != NULL) {
        json_object *alloc = bdy_jget(status, "allocation");
        if (alloc != NULL) {
            index_allocation(c, ns, name, alloc, false);
            note_cut_short(c, ns, name, obj, bdy_jstr(alloc, "id"));
        }
        if (ready && created >= 0) {
            /* Lead time: creation to Ready, smoothed. */
            double ready_at = 0;
            if (bdy_timestamp_parse(bdy_jstr(bdy_jget(status, "timings"), "readyAt"), &ready_at) ==
                    0 &&
                ready_at >= created) {
                pool_stats *s = stats_get(c, ns,
                                          bdy_jstr(bdy_jget(obj, "spec"), "pool")
                                              ? bdy_jstr(bdy_jget(obj, "spec"), "pool")
                                              : "");
                if (s != NULL)
                    s->lead_time_s = s->lead_time_s == 0
                                         ? ready_at - created
                                         : 0.8 * s->lead_time_s + 0.2 * (ready_at - created);
            }
        }
    }
    if (obj == NULL && c->o.ledger != NULL) {
        /* A world held by a ledger claim is gone: its row must end too
         * (with a release record, unless one was written already). */
        char held[sizeof(((held_entry *)0)->id)];
        held_take(c, ns, name, held, sizeof(held));
        if (held[0])
            materialize_later(c, held, NULL);
    }
    tell_waiters(c, ns, name, ready, obj == NULL || (phase != NULL && strcmp(phase, "Failed") == 0),
                 status);
    pthread_mutex_unlock(&c->lock);
}

static void rematerialize(bdy_claims *c, const char *id);

static void record_seen(bdy_claims *c, json_object *obj)
{
    json_object *meta = bdy_jget(obj, "metadata");
    json_object *spec = bdy_jget(obj, "spec");
    const char *ns = bdy_jstr(meta, "namespace");
    if (ns == NULL || bdy_jstr(meta, "name") == NULL)
        return;
    /* The record's spec carries the same fields as status.allocation. */
    json_object *alloc = json_object_new_object();
    json_object_object_add(alloc, "id", json_object_get(bdy_jget(meta, "name")));
    json_object_object_add(alloc, "idempotencyKey",
                           json_object_get(bdy_jget(spec, "idempotencyKey")));
    json_object_object_add(alloc, "requestHash", json_object_get(bdy_jget(spec, "requestHash")));
    const char *id = bdy_jstr(meta, "name");
    pthread_mutex_lock(&c->lock);
    index_allocation(c, ns, NULL, alloc, true);
    /* A release whose record is written while its ledger row is live and
     * no DELETE is at work on it (the world's delete failed after the
     * record): the materializer finishes it, but may have looked at the
     * claim before it knew of the record, and nothing else would bring it
     * back. A DELETE at work removes the row itself. */
    alloc_entry *e = id_find(c, id, false);
    if (e != NULL && e->client_releasing == 0 && c->o.ledger != NULL &&
        bdy_ledger_has(c->o.ledger, id) && !c->stopping)
        materialize_later(c, id, NULL);
    pthread_mutex_unlock(&c->lock);
    json_object_put(alloc);
}

static void rec_add_cb(void *data, json_object *obj)
{
    record_seen(data, obj);
}

static void rec_update_cb(void *data, json_object *old, json_object *obj)
{
    (void)old;
    record_seen(data, obj);
}

static void rec_delete_cb(void *data, json_object *last, const char *ns, const char *name)
{
    bdy_claims *c = data;
    pthread_mutex_lock(&c->lock);
    const char *key = bdy_jstr(bdy_jget(last, "spec"), "idempotencyKey");
    if (key != NULL) {
        char full[IDEM_KEY_MAX];
        idem_compose(full, sizeof(full), ns, key);
        idem_remove(c, full);
    } else if (last == NULL) {
        /* Deleted while the watch was away: its key, if it had one, is
         * not known here; the relist's end looks for keys left without
         * their allocation. */
        c->idem_orphans = true;
    }
    alloc_entry *e = id_find(c, name, false);
    if (e != NULL && e->released)
        id_remove(c, name);
    pthread_mutex_unlock(&c->lock);
}

static void rec_synced_cb(void *data)
{
    bdy_claims *c = data;
    pthread_mutex_lock(&c->lock);
    if (c->idem_orphans) {
        /* One pass per relist that saw records go unnamed: an entry whose
         * allocation id is no longer known would answer its retries with
         * an allocation that cannot be read, and stay for good. */
        BDY_HMAP_FOREACH(&c->idem, n)
        {
            idem_entry *e = (idem_entry *)n;
            if (!e->pending && id_find(c, e->id, false) == NULL) {
                bdy_hmap_remove(&c->idem, &e->node);
                free(e);
            }
        }
        c->idem_orphans = false;
    }
    pthread_mutex_unlock(&c->lock);
    atomic_store(&c->records_synced, true);
}

/* ---- request parsing ------------------------------------------------------------------ */

void bdy_claim_request_free(bdy_claim_request *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nselectors; i++)
        bdy_label_selector_free(r->selectors[i]);
    r->nselectors = 0;
    json_object_put(r->body);
    r->body = NULL;
}

/* Parses a JSON body strictly (RFC 8259: no NaN, no trailing garbage, UTF-8
 * only) with a nesting cap. */
static json_object *parse_strict(const char *body, size_t len, char *why, size_t why_cap)
{
    if (!bdy_utf8_valid(body, len)) {
        snprintf(why, why_cap, "malformed JSON: the body is not valid UTF-8");
        return NULL;
    }
    json_tokener *tok = json_tokener_new_ex(CLAIM_MAX_BODY_DEPTH);
    if (tok == NULL)
        return NULL;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *obj = json_tokener_parse_ex(tok, body, (int)len);
    enum json_tokener_error err = json_tokener_get_error(tok);
    if (obj == NULL || err != json_tokener_success ||
        (size_t)json_tokener_get_parse_end(tok) != len) {
        snprintf(why, why_cap, "malformed JSON: %s",
                 err == json_tokener_continue  ? "the body ends inside a value"
                 : err != json_tokener_success ? json_tokener_error_desc(err)
                                               : "unexpected data after the object");
        json_object_put(obj);
        obj = NULL;
    } else if (bdy_json_text_escapes_nul(body, len)) {
        snprintf(why, why_cap, "strings may not contain NUL (\\u0000)");
        json_object_put(obj);
        obj = NULL;
    } else if (!bdy_json_numbers_finite(obj)) {
        /* JSON_TOKENER_STRICT still reads NaN and Infinity. */
        snprintf(why, why_cap,
                 "malformed JSON: numbers must be finite (NaN and Infinity are not JSON)");
        json_object_put(obj);
        obj = NULL;
    } else {
        /* ...and 00, and a key twice (the last one won: a second "pool"
         * claimed from another pool). */
        char what[160];
        int rc = bdy_json_text_check(body, len, true, what, sizeof(what));
        if (rc != 0) {
            snprintf(why, why_cap, "malformed JSON: %s",
                     rc == BDY_ENOMEM ? "out of memory reading it" : what);
            json_object_put(obj);
            obj = NULL;
        }
    }
    json_tokener_free(tok);
    return obj;
}

static bool valid_dns_label(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-'))
            return false;
    }
    return true;
}

/* Checks a labels/annotations map: an object of strings whose keys and
 * (for labels) values are valid Kubernetes names, none of them reserved. */
static bool valid_string_map(json_object *m, bool labels, const char *field, char *why, size_t cap)
{
    if (!json_object_is_type(m, json_type_object)) {
        snprintf(why, cap, "%s must be an object of strings", field);
        return false;
    }
    json_object_object_foreach(m, k, v)
    {
        if (!json_object_is_type(v, json_type_string)) {
            snprintf(why, cap, "%s.%s must be a string", field, k);
            return false;
        }
        if (bdy_reserved_key(k)) {
            snprintf(why, cap, "%s.%.100s: keys under %s/ are reserved for bindery", field, k,
                     BDY_RESERVED_DOMAIN);
            return false;
        }
        bool valid =
            bdy_label_key_valid(k) && (!labels || bdy_label_value_valid(json_object_get_string(v)));
        if (!valid) {
            snprintf(why, cap, "%s: invalid %s \"%.100s\"", field,
                     labels ? "label" : "annotation key", k);
            return false;
        }
    }
    return true;
}

static int parse_claim(json_object *body, bdy_claim_request *r, char *why, size_t cap)
{
    snprintf(r->ns, sizeof(r->ns), "default");
    if (!json_object_is_type(body, json_type_object)) {
        snprintf(why, cap, "the body must be a JSON object");
        return BDY_EINVAL;
    }
    json_object_object_foreach(body, k, v)
    {
        if (strcmp(k, "namespace") == 0) {
            if (!json_object_is_type(v, json_type_string) ||
                !valid_dns_label(json_object_get_string(v))) {
                snprintf(why, cap, "namespace must be a DNS label");
                return BDY_EINVAL;
            }
            snprintf(r->ns, sizeof(r->ns), "%s", json_object_get_string(v));
        } else if (strcmp(k, "pool") == 0) {
            if (!json_object_is_type(v, json_type_string) ||
                !valid_dns_label(json_object_get_string(v))) {
                snprintf(why, cap, "pool must be a DNS label");
                return BDY_EINVAL;
            }
            snprintf(r->pool, sizeof(r->pool), "%s", json_object_get_string(v));
        } else if (strcmp(k, "claimant") == 0) {
            if (!json_object_is_type(v, json_type_string) ||
                strlen(json_object_get_string(v)) > CLAIMANT_MAX) {
                snprintf(why, cap, "claimant must be a string of at most %d bytes", CLAIMANT_MAX);
                return BDY_EINVAL;
            }
            snprintf(r->claimant, sizeof(r->claimant), "%s", json_object_get_string(v));
        } else if (strcmp(k, "waitSeconds") == 0) {
            if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0 ||
                json_object_get_int64(v) > BDY_CLAIM_MAX_WAIT_S) {
                snprintf(why, cap, "waitSeconds must be an integer from 0 to %d",
                         BDY_CLAIM_MAX_WAIT_S);
                return BDY_EINVAL;
            }
            r->wait_s = (unsigned)json_object_get_int64(v);
        } else if (strcmp(k, "selectors") == 0) {
            if (!json_object_is_type(v, json_type_array) ||
                json_object_array_length(v) > BDY_CLAIM_MAX_SELECTORS) {
                snprintf(why, cap, "selectors must be a list of at most %d label selectors",
                         BDY_CLAIM_MAX_SELECTORS);
                return BDY_EINVAL;
            }
            for (size_t i = 0; i < json_object_array_length(v); i++) {
                bdy_errbuf eb;
                bdy_errbuf_clear(&eb);
                bdy_label_selector *s = NULL;
                if (bdy_label_selector_from_json(json_object_array_get_idx(v, i), &s, &eb) != 0) {
                    snprintf(why, cap, "selectors[%zu]: %s", i, eb.message);
                    return BDY_EINVAL;
                }
                r->selectors[r->nselectors++] = s;
            }
        } else if (strcmp(k, "metadata") == 0) {
            if (!json_object_is_type(v, json_type_object)) {
                snprintf(why, cap, "metadata must be an object");
                return BDY_EINVAL;
            }
            json_object_object_foreach(v, mk, mv)
            {
                if (strcmp(mk, "labels") == 0) {
                    if (!valid_string_map(mv, true, "metadata.labels", why, cap))
                        return BDY_EINVAL;
                    r->labels = mv;
                } else if (strcmp(mk, "annotations") == 0) {
                    if (!valid_string_map(mv, false, "metadata.annotations", why, cap))
                        return BDY_EINVAL;
                    r->annotations = mv;
                } else {
                    snprintf(why, cap, "unknown field \"metadata.%.100s\"", mk);
                    return BDY_EINVAL;
                }
            }
        } else {
            snprintf(why, cap, "unknown field \"%.100s\"", k);
            return BDY_EINVAL;
        }
    }
    if (r->pool[0] == '\0') {
        snprintf(why, cap, "pool is required");
        return BDY_EINVAL;
    }
    /* What a claim asks for is written onto its world twice (in
     * status.allocation and in its metadata), as JSON: bounded so that
     * the world always fits the store, or a claim would be granted and
     * never show on its world. Kubernetes bounds annotations alike. */
    size_t size = 0;
    if (r->labels != NULL)
        size += strlen(json_object_to_json_string_ext(r->labels, JSON_C_TO_STRING_PLAIN));
    if (r->annotations != NULL)
        size += strlen(json_object_to_json_string_ext(r->annotations, JSON_C_TO_STRING_PLAIN));
    if (size > BDY_CLAIM_METADATA_MAX) {
        snprintf(why, cap,
                 "metadata: its labels and annotations may hold at most %u bytes of JSON "
                 "together, not %zu",
                 (unsigned)BDY_CLAIM_METADATA_MAX, size);
        return BDY_EINVAL;
    }
    return 0;
}

int bdy_claim_request_parse(const char *body, size_t len, bdy_claim_request *out, char *why,
                            size_t why_cap)
{
    memset(out, 0, sizeof(*out));
    out->body = parse_strict(body, len, why, why_cap);
    if (out->body == NULL)
        return BDY_EINVAL;
    int rc = parse_claim(out->body, out, why, why_cap);
    if (rc != 0)
        bdy_claim_request_free(out);
    return rc;
}

static bool valid_idem_key(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > BDY_IDEMPOTENCY_KEY_MAX)
        return false;
    /* Printable ASCII, space included (API.md); HTTP has already trimmed
     * spaces at either end. */
    for (size_t i = 0; i < n; i++) {
        if (k[i] < 0x20 || k[i] > 0x7e)
            return false;
    }
    return true;
}

static bool allowed(const bdy_http_request *req, bdy_verb verb, const char *ns,
                    bdy_http_response *resp)
{
    if (req->principal == NULL || bdy_principal_allows(req->principal, verb, ns))
        return true;
    char msg[300];
    snprintf(msg, sizeof(msg), "%s \"%s\" may not do this in namespace %s",
             bdy_principal_kind(req->principal), bdy_principal_name(req->principal),
             ns ? ns : "(all)");
    bdy_http_error(resp, 403, "Forbidden", msg, 0);
    return false;
}

/* ---- answering ------------------------------------------------------------------------- */

static void set_location(bdy_http_response *resp, const char *id)
{
    char loc[128];
    snprintf(loc, sizeof(loc), "/v1/allocations/%s", id);
    bdy_http_set_header(resp, "Location", loc);
}

/* The recorded answer for an allocation id, with "state". */
static int lookup_answer(bdy_claims *c, const char *id, json_object **out)
{
    alloc_place copy;
    if (!id_place(c, id, &copy))
        return BDY_ENOTFOUND;
    json_object *obj = NULL;
    int rc;
    int world_rc = 0; /* a world that could not be read: not "no such allocation" */
    if (!copy.released) {
        rc = bdy_store_get(c->o.store, &BDY_GVR_WORLDS, copy.ns, copy.world, &obj, NULL);
        if (rc != BDY_ENOTFOUND)
            world_rc = rc;
        if (rc == 0) {
            const char *wid = bdy_jstr(bdy_jget(bdy_jget(obj, "status"), "allocation"), "id");
            json_object *answer = wid && strcmp(wid, id) == 0 ? bdy_allocation_answer(obj) : NULL;
            json_object_put(obj);
            if (answer != NULL) {
                json_object_object_add(answer, "state", json_object_new_string("Allocated"));
                *out = answer;
                return 0;
            }
        }
        /* Not (yet) in the world's status: a ledger claim answers from its
         * row until the materializer has written it. */
        bdy_ledger_record *r = NULL;
        int ledger_rc = c->o.ledger ? bdy_ledger_get(c->o.ledger, id, &r) : BDY_ENOTFOUND;
        if (ledger_rc == 0) {
            json_object *answer = bdy_json_parse_stored(r->c.answer_json);
            bdy_ledger_record_free(r);
            if (answer != NULL) {
                json_object_object_add(answer, "state", json_object_new_string("Allocated"));
                *out = answer;
                return 0;
            }
        } else if (ledger_rc != BDY_ENOTFOUND && world_rc == 0) {
            world_rc = ledger_rc; /* a row that could not be read may be there */
        }
        /* The world went away: its release record says the rest. */
    }
    rc = bdy_store_get(c->o.store, &BDY_GVR_ALLOCATIONS, copy.ns, id, &obj, NULL);
    if (rc == BDY_ENOTFOUND && world_rc != 0)
        return world_rc;
    if (rc != 0)
        return rc;
    json_object *answer = NULL;
    json_object_deep_copy(bdy_jget(bdy_jget(obj, "spec"), "response"), &answer, NULL);
    json_object_put(obj);
    if (answer == NULL)
        return BDY_ENOTFOUND;
    json_object_object_add(answer, "state", json_object_new_string("Released"));
    *out = answer;
    return 0;
}

/* The status patch that claims a world. */
static json_object *claim_patch(const char *rv, const char *id, const char *claimant,
                                const char *source, const char *idem_key, const char *hash,
                                json_object *labels, json_object *annotations,
                                const char *claimed_at)
{
    char now[BDY_TIMESTAMP_LEN];
    if (claimed_at != NULL)
        snprintf(now, sizeof(now), "%s", claimed_at);
    else
        bdy_timestamp_now(now);
    json_object *patch = json_object_new_object();
    json_object *meta = json_object_new_object();
    json_object_object_add(meta, "resourceVersion", json_object_new_string(rv));
    json_object_object_add(patch, "metadata", meta);
    json_object *st = json_object_new_object();
    json_object_object_add(st, "phase", json_object_new_string("Allocated"));
    json_object_object_add(st, "reason", json_object_new_string("Claimed"));
    char msg[300];
    snprintf(msg, sizeof(msg), "claimed by %s", claimant[0] ? claimant : "(anonymous)");
    json_object_object_add(st, "message", json_object_new_string(msg));
    json_object *alloc = json_object_new_object();
    json_object_object_add(alloc, "id", json_object_new_string(id));
    json_object_object_add(alloc, "claimant", json_object_new_string(claimant));
    json_object_object_add(alloc, "claimedAt", json_object_new_string(now));
    json_object_object_add(alloc, "source", json_object_new_string(source));
    if (idem_key != NULL && idem_key[0]) {
        json_object_object_add(alloc, "idempotencyKey", json_object_new_string(idem_key));
        json_object_object_add(alloc, "requestHash", json_object_new_string(hash));
    }
    if (labels != NULL)
        json_object_object_add(alloc, "labels", json_object_get(labels));
    if (annotations != NULL)
        json_object_object_add(alloc, "annotations", json_object_get(annotations));
    json_object_object_add(st, "allocation", alloc);
    json_object *timings = json_object_new_object();
    json_object_object_add(timings, "allocatedAt", json_object_new_string(now));
    json_object_object_add(st, "timings", timings);
    json_object_object_add(patch, "status", st);
    return patch;
}

/* The world's Event for a claim that has reached its status, so that
 * `kubectl describe wi` shows who holds it. Events are rate-limited by the
 * reconciler (a burst of claims drops some, counted), never the claims. */
static void allocated_event(bdy_claims *c, const char *ns, const char *world, const char *uid,
                            const char *id, const char *claimant, const char *source)
{
    if (c->rec == NULL)
        return;
    char api_version[128];
    snprintf(api_version, sizeof(api_version), "%s/%s", BDY_GVR_WORLDS.group,
             BDY_GVR_WORLDS.version);
    json_object *obj = json_object_new_object();
    json_object *meta = json_object_new_object();
    json_object_object_add(obj, "apiVersion", json_object_new_string(api_version));
    json_object_object_add(obj, "kind", json_object_new_string("WorldInstance"));
    json_object_object_add(meta, "name", json_object_new_string(world));
    json_object_object_add(meta, "namespace", json_object_new_string(ns));
    if (uid != NULL)
        json_object_object_add(meta, "uid", json_object_new_string(uid));
    json_object_object_add(obj, "metadata", meta);
    bdy_reconciler_event_if_spare(c->rec, obj, "Normal", "Allocated", "allocation %s (%s) for %s",
                                  id, source,
                                  claimant != NULL && claimant[0] ? claimant : "(anonymous)");
    json_object_put(obj);
}

/* Writes the claim durably. Returns 0 with *world_out, BDY_ECONFLICT when
 * the world changed since rv (try another), or another error. */
static int write_claim(bdy_claims *c, const char *ns, const char *name, const char *rv,
                       const char *id, const bdy_claim_request *cr, const char *source,
                       const char *idem_key, const char *hash, json_object **world_out)
{
    json_object *patch = claim_patch(rv, id, cr->claimant, source, idem_key, hash, cr->labels,
                                     cr->annotations, NULL);
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    bdy_write_opts wo = {.urgent = true};
    int rc = bdy_store_patch(c->o.store, &BDY_GVR_WORLDS, ns, name, BDY_PATCH_MERGE, patch, true,
                             &wo, world_out, &eb);
    json_object_put(patch);
    if (rc == 0)
        allocated_event(c, ns, name, bdy_jstr(bdy_jget(*world_out, "metadata"), "uid"), id,
                        cr->claimant, source);
    if (rc != 0 && rc != BDY_ECONFLICT && rc != BDY_ENOTFOUND)
        bdy_warn("claims", "claim of %s/%s failed: %s", ns, name, eb.message);
    return rc;
}

/* Ends a pending idempotency entry: success records the id, failure drops
 * the entry so a retry can claim. */
/* How a claim failed, for the retries that waited on its key. */
typedef struct claim_failure {
    unsigned status;
    const char *code;
    const char *message;
    unsigned retry_after;
} claim_failure;

static void idem_end(bdy_claims *c, const char *full, const char *id, const claim_failure *f)
{
    if (full == NULL)
        return;
    pthread_mutex_lock(&c->lock);
    idem_entry *e = idem_find(c, full, false);
    if (e != NULL) {
        if (id != NULL) {
            snprintf(e->id, sizeof(e->id), "%s", id);
            e->pending = false;
        } else {
            idem_remove(c, full);
        }
    }
    bool woke = false;
    for (replay_waiter *w = c->replays; w != NULL; w = w->next) {
        if (!w->ended && strcmp(w->idem_full, full) == 0) {
            w->ended = true;
            snprintf(w->id, sizeof(w->id), "%s", id != NULL ? id : "");
            if (id == NULL && f != NULL) {
                w->fail_status = f->status;
                w->fail_retry_after = f->retry_after;
                snprintf(w->fail_code, sizeof(w->fail_code), "%s", f->code);
                snprintf(w->fail_message, sizeof(w->fail_message), "%s", f->message);
            }
            woke = true;
        }
    }
    if (woke)
        pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
}

/* The claim with key full (NULL: none) succeeded as allocation id. */
static void idem_finish(bdy_claims *c, const char *full, const char *id)
{
    idem_end(c, full, id, NULL);
}

/* The claim with key full (NULL: none) failed: answers resp (or, when
 * resp is NULL, the deferred d, finishing it) with the error, and gives the
 * retries that waited on the key the same answer. */
static void fail_claim(bdy_claims *c, const char *full, bdy_http_response *resp,
                       bdy_http_deferred *d, unsigned status, const char *code, const char *message,
                       unsigned retry_after)
{
    claim_failure f = {status, code, message, retry_after};
    idem_end(c, full, NULL, &f);
    if (resp != NULL) {
        bdy_http_error(resp, status, code, message, retry_after);
    } else {
        bdy_http_error(bdy_http_deferred_response(d), status, code, message, retry_after);
        bdy_http_deferred_finish(d);
    }
}

/* ---- the claim ledger (embedded mode) --------------------------------------------------
 *
 * A warm claim is durable once its ledger row is (ledger.h); the world's
 * status.allocation follows, written by the materializer threads. Until
 * then the fleet holds the world (never warm again, counted as allocated),
 * GETs and replays answer from the row, and a release works from the row.
 * At start-up every row is loaded, its world held and re-checked, so a crash
 * between the row and the status write loses nothing. */

/* A live ledger claim (just committed, or loaded at start-up): indexed,
 * holding its world, and queued for its world's status. Under lock. */
static void ledger_claim_live(bdy_claims *c, const char *ns, const char *world, const char *id,
                              const char *idem_key, const char *request_hash,
                              bdy_ledger_record *rec)
{
    index_claim(c, ns, world, id, idem_key, request_hash, false);
    held_set(c, ns, world, id);
    materialize_later(c, id, rec);
}

/* The status.allocation fields of a ledger claim. Caller owns. */
static json_object *record_allocation(const bdy_ledger_claim *r)
{
    json_object *a = json_object_new_object();
    json_object_object_add(a, "id", json_object_new_string(r->id));
    json_object_object_add(a, "claimant", json_object_new_string(r->claimant));
    json_object_object_add(a, "claimedAt", json_object_new_string(r->claimed_at));
    json_object_object_add(a, "source", json_object_new_string(r->source));
    if (r->idem_key != NULL) {
        json_object_object_add(a, "idempotencyKey", json_object_new_string(r->idem_key));
        json_object_object_add(a, "requestHash",
                               json_object_new_string(r->request_hash ? r->request_hash : ""));
    }
    return a;
}

/* Records the release of a ledger claim whose world is gone, failed or
 * released by DELETE: the Allocation record first (durable), then the world
 * (if it is still the claimed one), then the row. Any step failing leaves
 * the row, so the next check retries. */
static int release_from_ledger(bdy_claims *c, const bdy_ledger_claim *r, json_object *world,
                               const char *reason, bdy_errbuf *eb)
{
    json_object *alloc = record_allocation(r);
    json_object *answer = bdy_json_parse_stored(r->answer_json);
    int rc = bdy_allocation_record(c->o.store, r->ns, r->world, r->pool, alloc, answer, reason, eb);
    json_object_put(alloc);
    json_object_put(answer);
    if (rc != 0)
        return rc;
    const char *uid = bdy_jstr(bdy_jget(world, "metadata"), "uid");
    if (uid != NULL && strcmp(uid, r->world_uid) == 0) {
        rc = bdy_store_delete(c->o.store, &BDY_GVR_WORLDS, r->ns, r->world, NULL, NULL, NULL, eb);
        if (rc != 0 && rc != BDY_ENOTFOUND)
            return rc;
    }
    rc = bdy_ledger_remove(c->o.ledger, r->id);
    /* Draining (BDY_ESHUTDOWN): the row goes at the next start, where the
     * release record makes the materializer finish the release. */
    if (rc == BDY_ENOTFOUND || rc == BDY_ESHUTDOWN)
        rc = 0;
    pthread_mutex_lock(&c->lock);
    alloc_entry *e = id_find(c, r->id, false);
    if (e != NULL)
        e->released = true;
    held_drop(c, r->ns, r->world, r->id);
    pthread_mutex_unlock(&c->lock);
    if (rc == 0)
        bdy_fleet_unhold_unseen(c->o.fleet, r->ns, r->world, r->world_uid);
    return rc;
}

/* One claim of a materializer round: what its status patch needs. */
typedef struct mat_work {
    bdy_ledger_record *r;
    json_object *patch;
} mat_work;

/* The status patch of ledger claim r at resourceVersion rv. Caller owns. */
static json_object *claim_patch_of(const bdy_ledger_record *r, const char *rv)
{
    json_object *labels = r->c.labels_json ? bdy_json_parse_stored(r->c.labels_json) : NULL;
    json_object *annotations =
        r->c.annotations_json ? bdy_json_parse_stored(r->c.annotations_json) : NULL;
    json_object *patch = claim_patch(rv, r->c.id, r->c.claimant, r->c.source, r->c.idem_key,
                                     r->c.request_hash, labels, annotations, r->c.claimed_at);
    json_object_put(labels);
    json_object_put(annotations);
    return patch;
}

/* Whether a store error says the store cannot write now, not that this
 * write is wrong: worth trying again later. */
static bool store_trouble(int rc)
{
    return rc == BDY_EIO || rc == BDY_ENOMEM || rc == BDY_EREADONLY || rc == BDY_EBUSY;
}

/* Has claim id looked at again by the materializer (not once stopping). */
static void rematerialize(bdy_claims *c, const char *id)
{
    pthread_mutex_lock(&c->lock);
    if (!c->stopping)
        materialize_later(c, id, NULL);
    pthread_mutex_unlock(&c->lock);
}

/* A claim the materializer could not settle, for error rc: when the store
 * or the ledger cannot read or write now, queued again after the round's
 * backoff (*trouble) rather than left alone until the next start; not for
 * an error that will not pass (a world that cannot be read at all,
 * BDY_ECORRUPT, would hold the backoff up for every other claim). */
static void materialize_again_if_trouble(bdy_claims *c, const char *id, int rc, bool *trouble)
{
    if (!store_trouble(rc))
        return;
    rematerialize(c, id);
    *trouble = true;
}

/* Decides what queued claim m needs (materializer thread); takes m->rec.
 * Returns a patch to write into its world's status (caller owns), with the
 * row in *rec_out, or NULL when the claim is already there, already
 * released, or ended here because its world went away before the status
 * said so. The common case — the row just committed, the world Ready in the
 * fleet's view — reads nothing; the rest reads the row and the world. */
static json_object *materialize_prepare(bdy_claims *c, mat_item *m, bdy_ledger_record **rec_out,
                                        bool *trouble)
{
    const char *id = m->id;
    bdy_ledger_record *r = m->rec;
    m->rec = NULL;
    json_object *world = NULL;
    json_object *patch = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    bdy_world_seen seen;
    if (r != NULL) {
        if (!bdy_ledger_has(c->o.ledger, id))
            goto out; /* released meanwhile */
        if (bdy_fleet_world_seen(c->o.fleet, r->c.ns, r->c.world, &seen) == 0 &&
            seen.phase == BDY_PHASE_READY && !seen.deleting &&
            strcmp(seen.uid, r->c.world_uid) == 0) {
            char rv[24];
            snprintf(rv, sizeof(rv), "%llu", (unsigned long long)seen.resource_version);
            patch = claim_patch_of(r, rv);
            if (patch != NULL) {
                *rec_out = r;
                r = NULL;
            }
            goto out;
        }
    }
    bdy_ledger_record_free(r);
    r = NULL;
    int rc = bdy_ledger_get(c->o.ledger, id, &r);
    if (rc != 0) {
        if (rc != BDY_ENOTFOUND)
            bdy_warn("claims", "cannot read claim %s from the ledger: %s", id, bdy_strerror(rc));
        materialize_again_if_trouble(c, id, rc, trouble);
        goto out;
    }
    rc = bdy_store_get(c->o.store, &BDY_GVR_WORLDS, r->c.ns, r->c.world, &world, NULL);
    if (rc != 0 && rc != BDY_ENOTFOUND) {
        bdy_warn("claims", "claim %s: cannot read world %s/%s: %s", id, r->c.ns, r->c.world,
                 bdy_strerror(rc));
        materialize_again_if_trouble(c, id, rc, trouble);
        goto out;
    }
    json_object *meta = bdy_jget(world, "metadata");
    json_object *status = bdy_jget(world, "status");
    const char *uid = bdy_jstr(meta, "uid");
    const char *phase = bdy_jstr(status, "phase");
    const char *have = bdy_jstr(bdy_jget(status, "allocation"), "id");
    bool same = world != NULL && uid != NULL && strcmp(uid, r->c.world_uid) == 0;
    pthread_mutex_lock(&c->lock);
    alloc_entry *e = id_find(c, id, false);
    bool by_client = e != NULL && e->client_releasing;
    bool recorded = e != NULL && e->released;
    pthread_mutex_unlock(&c->lock);
    if (recorded && !by_client) {
        /* Its release record is written, yet the row is live: a release
         * cut short (kill -9, or the world's delete failed) between the
         * two. The record stands; the world goes, and the row with it. */
        bool ours = same && (have == NULL || strcmp(have, id) == 0);
        rc = release_from_ledger(c, &r->c, ours ? world : NULL, "Released", &eb);
        if (rc != 0) {
            bdy_warn("claims", "claim %s: finishing its release failed: %s", id, eb.message);
            materialize_again_if_trouble(c, id, rc, trouble);
        }
        goto out;
    }
    if (same && have != NULL && strcmp(have, id) == 0)
        goto out; /* already in the status */
    if (!same || bdy_jget(meta, "deletionTimestamp") != NULL || have != NULL || phase == NULL ||
        strcmp(phase, "Ready") != 0) {
        /* The claimed world went away (or failed) before its status said
         * so: the claim ends here, and its record says why. Unless its
         * client is releasing it: that is why the world is going, and the
         * release records it. */
        if (by_client)
            goto out;
        const char *reason = !same ? "WorldGone" : "WorldExited";
        bdy_info("claims", "claim %s of %s/%s released: its world %s (%s)", id, r->c.ns, r->c.world,
                 !same          ? "is gone"
                 : have != NULL ? "is held by another allocation"
                                : "failed or is being deleted",
                 reason);
        /* A world whose status names another allocation is that one's:
         * the row ends, the world stays. */
        rc = release_from_ledger(c, &r->c, same && have == NULL ? world : NULL, reason, &eb);
        if (rc != 0) {
            bdy_warn("claims", "claim %s: recording its end failed: %s", id, eb.message);
            materialize_again_if_trouble(c, id, rc, trouble);
        }
        goto out;
    }
    patch = claim_patch_of(r, bdy_jstr(meta, "resourceVersion"));
    if (patch != NULL) {
        *rec_out = r;
        r = NULL;
    }
out:
    json_object_put(world);
    bdy_ledger_record_free(r);
    return patch;
}

/* Takes up to max queued ids (under lock); returns how many. */
static size_t mat_take(bdy_claims *c, mat_item **out, size_t max)
{
    size_t n = 0;
    while (n < max && c->mat_head != NULL) {
        mat_item *m = c->mat_head;
        c->mat_head = m->next;
        if (c->mat_head == NULL)
            c->mat_tail = NULL;
        c->mat_len--;
        out[n++] = m;
    }
    return n;
}

/* The materializer: in rounds, it gathers the claims queued within
 * MAT_LINGER_MS (or MAT_ROUND of them), prepares each one's status patch and
 * writes them all with one bdy_store_patch_many, so a thousand claims a
 * second cost the store a few commits, not a thousand. A patch that lost a
 * race with another write (resourceVersion conflict) goes round again. */
static void *materializer_main(void *arg)
{
    bdy_claims *c = arg;
    /* Claims first: under a burst the status writes wait for spare CPU and
     * catch up afterwards (the ledger row is the durable record meanwhile). */
    bdy_thread_start("bdy-claim-mat", true);
    mat_item **items = calloc(MAT_ROUND, sizeof(mat_item *));
    mat_work *work = calloc(MAT_ROUND, sizeof(*work));
    bdy_store_patch_item *patches = calloc(MAT_ROUND, sizeof(*patches));
    if (items == NULL || work == NULL || patches == NULL) {
        bdy_error("claims", "out of memory: claims reach their worlds' status at restart only");
        goto out;
    }
    unsigned backoff_ms = 0; /* after a round the store could not write */
    pthread_mutex_lock(&c->lock);
    while (!c->stopping) {
        if (c->mat_head == NULL) {
            pthread_cond_wait(&c->mat_wake, &c->lock);
            continue;
        }
        if (c->rec == NULL || !bdy_reconciler_synced(c->rec)) {
            /* Start-up: writing statuses while the world informer lists
             * would outrun its watch history and make it relist forever. */
            struct timespec ts;
            bdy_deadline_after_ms(CLOCK_MONOTONIC, 100, &ts);
            pthread_cond_timedwait(&c->mat_wake, &c->lock, &ts);
            continue;
        }
        /* Let the round fill a little: one commit for many claims. New
         * claims signal mat_wake, so wait out the deadline in a loop. */
        struct timespec until;
        bdy_deadline_after_ms(CLOCK_MONOTONIC, MAT_LINGER_MS, &until);
        while (c->mat_len < MAT_ROUND && !c->stopping &&
               pthread_cond_timedwait(&c->mat_wake, &c->lock, &until) == 0)
            ;
        if (c->stopping)
            break;
        size_t n = mat_take(c, items, MAT_ROUND);
        pthread_mutex_unlock(&c->lock);
        size_t np = 0;
        bool prepare_trouble = false; /* a claim could not be read: queued again */
        for (size_t i = 0; i < n; i++) {
            work[np] = (mat_work){0};
            work[np].patch = materialize_prepare(c, items[i], &work[np].r, &prepare_trouble);
            if (work[np].patch == NULL)
                continue;
            patches[np] = (bdy_store_patch_item){.gvr = &BDY_GVR_WORLDS,
                                                 .ns = work[np].r->c.ns,
                                                 .name = work[np].r->c.world,
                                                 .type = BDY_PATCH_MERGE,
                                                 .patch = work[np].patch,
                                                 .status_only = true};
            np++;
        }
        bdy_store_patch_many(c->o.store, patches, np);
        for (size_t i = 0; i < np; i++) {
            const bdy_ledger_claim *r = &work[i].r->c;
            if (patches[i].rc == 0)
                allocated_event(c, r->ns, r->world, r->world_uid, r->id, r->claimant, r->source);
        }
        pthread_mutex_lock(&c->lock);
        bool store_failed = prepare_trouble;
        for (size_t i = 0; i < np; i++) {
            int rc = patches[i].rc;
            bool again = rc == BDY_ECONFLICT || store_trouble(rc);
            store_failed |= store_trouble(rc);
            if (again && !c->stopping) {
                /* A conflict: read back and again. A store that cannot
                 * write now (a full disk): again after a pause, so that
                 * the world does not read as free in the store until the
                 * next start. */
                materialize_later(c, work[i].r->c.id, NULL);
            } else if (rc != 0) {
                uint64_t held = 0;
                if (bdy_log_admit(&c->mat_fail_log, 10000, &held))
                    bdy_warn("claims",
                             "claim %s: writing it into world %s/%s failed: %s; retried at the "
                             "next start (%llu such lines held back before this one)",
                             work[i].r->c.id, work[i].r->c.ns, work[i].r->c.world, bdy_strerror(rc),
                             (unsigned long long)held);
            }
            json_object_put(work[i].patch);
            bdy_ledger_record_free(work[i].r);
        }
        for (size_t i = 0; i < n; i++)
            mat_item_free(items[i]);
        if (store_failed) {
            backoff_ms = backoff_ms == 0 ? MAT_RETRY_MIN_MS : 2 * backoff_ms;
            if (backoff_ms > MAT_RETRY_MAX_MS)
                backoff_ms = MAT_RETRY_MAX_MS;
            uint64_t held = 0;
            if (bdy_log_admit(&c->mat_backoff_log, 10000, &held))
                bdy_warn("claims",
                         "the store cannot write claims into their worlds' status now; trying "
                         "again in %u ms (%llu such lines held back before this one)",
                         backoff_ms, (unsigned long long)held);
            struct timespec until_retry;
            bdy_deadline_after_ms(CLOCK_MONOTONIC, backoff_ms, &until_retry);
            while (!c->stopping &&
                   pthread_cond_timedwait(&c->mat_wake, &c->lock, &until_retry) == 0)
                ;
        } else {
            backoff_ms = 0;
        }
    }
    pthread_mutex_unlock(&c->lock);
out:
    free(items);
    free(work);
    free(patches);
    return NULL;
}

/* Start-up: every live ledger claim is indexed, holds its world and is
 * checked once against the store. */
static int load_ledger_cb(void *data, const bdy_ledger_claim *r)
{
    bdy_claims *c = data;
    if (bdy_fleet_hold(c->o.fleet, r->ns, r->world, r->world_uid) != 0)
        return BDY_ENOMEM;
    pthread_mutex_lock(&c->lock);
    /* No copy of the row: the fleet may not have seen the world yet, and a
     * hundred thousand rows would be held twice. */
    ledger_claim_live(c, r->ns, r->world, r->id, r->idem_key, r->request_hash, NULL);
    pthread_mutex_unlock(&c->lock);
    return 0;
}

/* Writes the 201 answer of a warm claim from the world part the fleet
 * prepared: plain string concatenation unless the claim adds labels or
 * annotations. id, source and claimed_at need no escaping. */
static int warm_answer(bdy_buf *out, const char *id, const char *claimed_at,
                       const char *answer_world, const bdy_claim_request *cr)
{
    json_object *w = NULL;
    if (cr->labels != NULL || cr->annotations != NULL) {
        if ((w = bdy_json_parse_stored(answer_world)) == NULL)
            return BDY_EINVAL;
        bdy_allocation_merge_metadata(w, cr->labels, cr->annotations);
        answer_world = json_object_to_json_string_ext(w, JSON_C_TO_STRING_PLAIN |
                                                             JSON_C_TO_STRING_NOSLASHESCAPE);
    }
    /* Appends, not a printf: the world part is a few hundred bytes that
     * vfprintf would walk character by character, on the HTTP worker. */
    int rc = 0;
    const char *parts[] = {"{\"allocationId\":\"",
                           id,
                           "\",\"source\":\"warm\",\"claimedAt\":\"",
                           claimed_at,
                           "\",\"world\":",
                           answer_world,
                           "}"};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]) && rc == 0; i++)
        rc = bdy_buf_appends(out, parts[i]);
    json_object_put(w);
    return rc;
}

/* A warm claim on its way into the ledger: its row, its answer and the
 * suspended request, owned until the committer reports (warm_done). */
typedef struct warm_job {
    bdy_claims *c;
    bdy_http_deferred *d;
    bdy_world_ref ref;
    bdy_ledger_claim row; /* points into the fields below */
    char id[BDY_ALLOCATION_ID_LEN];
    char claimant[CLAIMANT_MAX + 1];
    char claimed_at[BDY_TIMESTAMP_LEN];
    char idem_key[BDY_IDEMPOTENCY_KEY_MAX + 1];
    char hash[65];
    char idem_full[IDEM_KEY_MAX];
    bool has_idem;
    char *labels_json;      /* owned, may be NULL */
    char *annotations_json; /* owned, may be NULL */
    bdy_buf answer;
    uint64_t t0;
} warm_job;

static void warm_job_free(warm_job *j)
{
    if (j == NULL)
        return;
    free(j->labels_json);
    free(j->annotations_json);
    bdy_buf_free(&j->answer);
    free(j);
}

static char *json_text_or_null(json_object *o)
{
    return o != NULL ? strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                                    JSON_C_TO_STRING_NOSLASHESCAPE))
                     : NULL;
}

/* Everything the ledger row and the answer of a warm claim of ref need,
 * copied: the request is gone by the time the row is committed. */
static warm_job *warm_job_new(bdy_claims *c, const bdy_world_ref *ref, const char *id,
                              const bdy_claim_request *cr, const char *idem_key, const char *hash,
                              const char *idem_full, const char *answer_world, uint64_t t0)
{
    if (ref->uid[0] == '\0')
        return NULL; /* not fully observed: cannot be recorded */
    warm_job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return NULL;
    j->c = c;
    j->ref = *ref;
    j->t0 = t0;
    snprintf(j->id, sizeof(j->id), "%s", id);
    snprintf(j->claimant, sizeof(j->claimant), "%s", cr->claimant);
    bdy_timestamp_now(j->claimed_at);
    if (idem_key != NULL) {
        snprintf(j->idem_key, sizeof(j->idem_key), "%s", idem_key);
        snprintf(j->hash, sizeof(j->hash), "%s", hash);
    }
    if (idem_full != NULL) {
        snprintf(j->idem_full, sizeof(j->idem_full), "%s", idem_full);
        j->has_idem = true;
    }
    j->labels_json = json_text_or_null(cr->labels);
    j->annotations_json = json_text_or_null(cr->annotations);
    bdy_buf_init(&j->answer, ANSWER_MAX);
    if ((cr->labels != NULL && j->labels_json == NULL) ||
        (cr->annotations != NULL && j->annotations_json == NULL) ||
        warm_answer(&j->answer, id, j->claimed_at, answer_world, cr) != 0) {
        warm_job_free(j);
        return NULL;
    }
    j->row = (bdy_ledger_claim){
        .id = j->id,
        .ns = j->ref.ns,
        .world = j->ref.name,
        .world_uid = j->ref.uid,
        .pool = j->ref.pool,
        .claimant = j->claimant,
        .source = "warm",
        .claimed_at = j->claimed_at,
        .idem_key = idem_key ? j->idem_key : NULL,
        .request_hash = idem_key ? j->hash : NULL,
        .labels_json = j->labels_json,
        .annotations_json = j->annotations_json,
        .answer_json = j->answer.data,
    };
    return j;
}

/* The ledger's verdict on a warm claim (committer thread): answer the
 * suspended request and bring the indexes in line. */
static void warm_done(void *data, int rc)
{
    warm_job *j = data;
    bdy_claims *c = j->c;
    bdy_fleet_claim_done(c->o.fleet, &j->ref, rc == 0, rc == BDY_ECONFLICT);
    bdy_http_response *resp = bdy_http_deferred_response(j->d);
    if (rc == 0) {
        bdy_ledger_claim unanswered = j->row;
        unanswered.answer_json = NULL; /* see mat_item */
        bdy_ledger_record *rec = bdy_ledger_record_copy(&unanswered);
        pthread_mutex_lock(&c->lock);
        ledger_claim_live(c, j->ref.ns, j->ref.name, j->id, j->row.idem_key, j->row.request_hash,
                          rec);
        pthread_mutex_unlock(&c->lock);
        idem_finish(c, j->has_idem ? j->idem_full : NULL, j->id);
        if (c->rec != NULL && refill_due(c, j->ref.ns, j->ref.pool))
            bdy_reconciler_enqueue_pool(c->rec, j->ref.ns, j->ref.pool);
        resp->status = 201;
        if (resp->body.len == 0 && (resp->body.cap == 0 || j->answer.len <= resp->body.cap)) {
            /* Moved, not copied: the claim is durable, and no allocation
             * failing now may answer it 500. */
            bdy_buf moved = j->answer;
            moved.cap = resp->body.cap;
            j->answer = resp->body;
            resp->body = moved;
        } else if (bdy_buf_append(&resp->body, j->answer.data, j->answer.len) != 0) {
            bdy_http_error(resp, 500, "InternalError", "the answer does not fit", 0);
        }
        set_location(resp, j->id);
        count_demand(c, j->ref.ns, j->ref.pool, j->has_idem ? j->idem_full : NULL, true);
        count_result(c, j->ref.ns, j->ref.pool, "warm", "success",
                     (bdy_monotonic_ns() - j->t0) / 1e9);
    } else {
        /* BDY_ECONFLICT: the ledger already holds this world although the
         * warm index offered it. Refuse rather than hand it out twice. */
        bdy_warn("claims", "claim of %s/%s not recorded: %s", j->ref.ns, j->ref.name,
                 rc == BDY_ECONFLICT ? "the ledger holds another claim on it" : bdy_strerror(rc));
        fail_claim(c, j->has_idem ? j->idem_full : NULL, resp, NULL, 503, "Unavailable",
                   "the claim could not be made durable", RETRY_AFTER_S);
        count_result(c, j->ref.ns, j->ref.pool, "warm", "error", 0);
    }
    bdy_http_deferred_finish(j->d);
    warm_job_free(j);
}

/* A new allocation id, none that is known here: live, or released with its
 * record kept. 48 random bits alone are not enough: at 1,000 claims/s, with
 * a day of records kept, a new id would meet a known one some 26 times a
 * day, and the new claim would read as the old, released one. */
static void new_allocation_id(bdy_claims *c, char out[BDY_ALLOCATION_ID_LEN])
{
    for (int tries = 0; tries < 8; tries++) {
        snprintf(out, BDY_ALLOCATION_ID_LEN, "alc-");
        bdy_random_hex(out + 4, BDY_ALLOCATION_ID_LEN - 5);
        pthread_mutex_lock(&c->lock);
        bool known = id_find(c, out, false) != NULL;
        pthread_mutex_unlock(&c->lock);
        if (!known && (c->o.ledger == NULL || !bdy_ledger_has(c->o.ledger, out)))
            return;
    }
}

/* A cold claim between creating its world and waiting for it (park_waiter):
 * the orphan sweep must not give that world to the pool meanwhile. */
typedef struct unparked {
    struct unparked *next;
    char id[BDY_ALLOCATION_ID_LEN + 8]; /* the claim's, as the world's annotation names it */
} unparked;

/* Lists claim id as about to create its world; NULL when out of memory
 * (the world then has the sweep's grace only). */
static unparked *unparked_add(bdy_claims *c, const char *id)
{
    unparked *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return NULL;
    snprintf(u->id, sizeof(u->id), "%s", id);
    pthread_mutex_lock(&c->lock);
    u->next = c->unparked;
    c->unparked = u;
    pthread_mutex_unlock(&c->lock);
    return u;
}

/* Takes u (may be NULL) off the list, once its claim waits or gave up. */
static void unparked_remove(bdy_claims *c, unparked *u)
{
    if (u == NULL)
        return;
    pthread_mutex_lock(&c->lock);
    for (unparked **p = &c->unparked; *p != NULL; p = &(*p)->next) {
        if (*p == u) {
            *p = u->next;
            break;
        }
    }
    pthread_mutex_unlock(&c->lock);
    free(u);
}

/* Under c->lock. */
static bool unparked_has(const bdy_claims *c, const char *id)
{
    for (const unparked *u = c->unparked; u != NULL; u = u->next)
        if (strcmp(u->id, id) == 0)
            return true;
    return false;
}

/* Takes w off the waiters being answered by cold-claim threads. Under
 * c->lock. */
static void inflight_remove(bdy_claims *c, waiter *w)
{
    for (waiter **p = &c->inflight; *p != NULL; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            w->next = NULL;
            return;
        }
    }
}

/* Lists w as waiting for its world (w->ns, w->world). With another_world,
 * w is on c->inflight (a cold-claim thread started that world for it in
 * place of w->world): under the same hold of the lock it is taken off
 * there and waits for another_world instead, so the orphan sweep, which
 * reads both lists, always finds the world waited for. False when
 * stopping: w is left as it was. Once this returns true, a cold-claim
 * thread may answer and free w. */
static bool park_waiter(bdy_claims *c, waiter *w, const char *another_world)
{
    char ns[BDY_NAME_MAX];
    char name[BDY_NAME_MAX];
    snprintf(ns, sizeof(ns), "%s", w->ns);
    snprintf(name, sizeof(name), "%s", another_world ? another_world : w->world);
    pthread_mutex_lock(&c->lock);
    bool parked = !c->stopping;
    if (parked) {
        if (another_world != NULL) {
            inflight_remove(c, w);
            snprintf(w->world, sizeof(w->world), "%s", another_world);
            w->worlds++;
        }
        w->ready = false;
        w->failed = false;
        w->why[0] = '\0';
        w->next = c->waiters;
        c->waiters = w;
        snprintf(w->key, sizeof(w->key), "%s/%s", w->ns, w->world);
        w->node.key = w->key;
        w->node.hash = bdy_hash_str(w->key);
        bdy_hmap_insert(&c->waiting, &w->node);
        pthread_cond_signal(&c->wake);
    }
    pthread_mutex_unlock(&c->lock);
    if (!parked)
        return false;
    /* The informer may have reported the world Ready, Failed or deleted
     * before the waiter was listed, finding no waiter to tell: look once
     * now. The fleet hears of a world before the claims do, so any later
     * report finds the waiter listed. A world the fleet does not know was
     * either not reported yet or deleted already; only the store tells
     * which (its create has returned, so NotFound there means gone). */
    bdy_world_seen seen = {0};
    int seen_rc = bdy_fleet_world_seen(c->o.fleet, ns, name, &seen);
    bool gone = false;
    if (seen_rc == BDY_ENOTFOUND) {
        json_object *now = NULL;
        gone = bdy_store_get(c->o.store, &BDY_GVR_WORLDS, ns, name, &now, NULL) == BDY_ENOTFOUND;
        json_object_put(now);
    }
    if (gone ||
        (seen_rc == 0 && (seen.phase == BDY_PHASE_READY || seen.phase == BDY_PHASE_FAILED))) {
        pthread_mutex_lock(&c->lock);
        tell_waiters(c, ns, name, !gone && seen.phase == BDY_PHASE_READY,
                     gone || seen.phase == BDY_PHASE_FAILED, NULL);
        pthread_mutex_unlock(&c->lock);
    }
    return true;
}

/* Creates the world for cold claim id under the pool's maxWorlds (its
 * name in name_out, cap BDY_NAME_MAX). The fleet names the world before
 * the create, which keeps it from being counted twice when the informer
 * reports it before the store call returns. BDY_EBUSY: no room. */
static int create_cold_world(bdy_claims *c, const bdy_config_pool *spec, const char *id,
                             char *name_out, bdy_errbuf *eb)
{
    int rc = BDY_EEXISTS;
    /* A name taken by a world the informer has not reported yet: another. */
    for (int tries = 0; rc == BDY_EEXISTS && tries < 3; tries++) {
        if (!bdy_fleet_creation_grant(c->o.fleet, spec->ns, spec->name, name_out))
            return BDY_EBUSY;
        json_object *w = bdy_pool_new_world(spec, name_out, id,
                                            bdy_fleet_template(c->o.fleet, spec->ns, spec->name));
        bdy_errbuf_clear(eb);
        rc = bdy_store_create(c->o.store, &BDY_GVR_WORLDS, spec->ns, w, NULL, NULL, eb);
        json_object_put(w);
        bdy_fleet_creation_done(c->o.fleet, spec->ns, spec->name, name_out, rc == 0);
    }
    return rc;
}

/* A digest of the labels the pool gives its worlds. */
static uint64_t labels_digest(const bdy_config_pool *spec)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < spec->labels.count; i++) {
        h = (h ^ bdy_hash_str(spec->labels.items[i].key)) * 1099511628211ULL;
        h = (h ^ bdy_hash_str(spec->labels.items[i].value)) * 1099511628211ULL;
    }
    return h;
}

/* True when the pool's own labels (what a new world gets) satisfy the
 * first selector or there are none. */
static bool cold_world_matches(const bdy_config_pool *spec, const bdy_claim_request *cr)
{
    if (cr->nselectors == 0)
        return true;
    json_object *labels = json_object_new_object();
    for (size_t i = 0; i < spec->labels.count; i++)
        json_object_object_add(labels, spec->labels.items[i].key,
                               json_object_new_string(spec->labels.items[i].value));
    json_object_object_add(labels, BDY_LABEL_POOL, json_object_new_string(spec->name));
    bool ok = false;
    for (size_t i = 0; i < cr->nselectors && !ok; i++)
        ok = bdy_label_selector_matches(cr->selectors[i], labels);
    json_object_put(labels);
    return ok;
}

static void waiter_free(waiter *w)
{
    json_object_put(w->labels);
    json_object_put(w->annotations);
    free(w);
}

/* Answers a replay: 200 and allocation prior, as it was first answered. */
static void answer_replay(bdy_claims *c, bdy_http_response *resp, const char *prior, const char *ns,
                          const char *pool, uint64_t t0)
{
    json_object *answer = NULL;
    int rc = lookup_answer(c, prior, &answer);
    if (rc != 0) {
        /* Store trouble passes, as for GET: the client is to retry, not to
         * take the claim for failed. */
        if (rc == BDY_ENOTFOUND)
            bdy_http_error(resp, 500, "InternalError",
                           "the allocation for this Idempotency-Key cannot be read", 0);
        else
            bdy_http_error(resp, 503, "Unavailable",
                           "the allocation for this Idempotency-Key cannot be read now",
                           RETRY_AFTER_S);
        count_result(c, ns, pool, "replay", "error", 0);
        return;
    }
    json_object_object_del(answer, "state");
    bdy_http_json(resp, 200, answer);
    set_location(resp, prior);
    json_object_put(answer);
    count_result(c, ns, pool, "replay", "success", (bdy_monotonic_ns() - t0) / 1e9);
}

/* A retry of a claim whose key is still pending: suspends it until the
 * first claim ends (idem_finish) or IDEM_WAIT_MS past its own waitSeconds;
 * cold_main answers it. Answers at once if it cannot be suspended. */
static void replay_later(bdy_claims *c, const bdy_http_request *req, bdy_http_response *resp,
                         const bdy_claim_request *cr, const char *idem_full, const char *hash,
                         uint64_t t0)
{
    replay_waiter *w = calloc(1, sizeof(*w));
    if (w == NULL || (w->d = bdy_http_defer(req)) == NULL) {
        free(w);
        bdy_http_error(resp, 503, "Unavailable",
                       "a claim with this Idempotency-Key is still in progress; send it again",
                       RETRY_AFTER_S);
        return;
    }
    snprintf(w->idem_full, sizeof(w->idem_full), "%s", idem_full);
    snprintf(w->ns, sizeof(w->ns), "%s", cr->ns);
    snprintf(w->pool, sizeof(w->pool), "%s", cr->pool);
    w->deadline = mono_s() + IDEM_WAIT_MS / 1000.0 + cr->wait_s;
    w->t0 = t0;
    pthread_mutex_lock(&c->lock);
    if (c->stopping) {
        /* A cold-claim thread has answered its last waiter. */
        pthread_mutex_unlock(&c->lock);
        bdy_http_error(bdy_http_deferred_response(w->d), 503, "ShuttingDown",
                       "the server is shutting down", RETRY_AFTER_S);
        bdy_http_deferred_finish(w->d);
        free(w);
        return;
    }
    /* The first claim may have ended while this one was being suspended,
     * and another, with the same key, may have begun. */
    idem_entry *e = idem_find(c, idem_full, false);
    if (e != NULL && strcmp(e->hash, hash) != 0) {
        w->ended = true;
        w->reused = true;
    } else if (e == NULL || !e->pending) {
        w->ended = true;
        if (e != NULL)
            snprintf(w->id, sizeof(w->id), "%s", e->id);
    }
    w->next = c->replays;
    c->replays = w;
    if (w->ended)
        pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
}

/* Answers a replay waiter taken off the list (cold_main). */
static void finish_replay(bdy_claims *c, replay_waiter *w, bool stopping)
{
    bdy_http_response *resp = bdy_http_deferred_response(w->d);
    if (stopping) {
        bdy_http_error(resp, 503, "ShuttingDown", "the server is shutting down", RETRY_AFTER_S);
    } else if (w->reused) {
        bdy_http_error(resp, 409, "IdempotencyKeyReused", IDEM_REUSED_MESSAGE, 0);
        count_result(c, w->ns, w->pool, "replay", "error", 0);
    } else if (w->ended && w->id[0] != '\0') {
        answer_replay(c, resp, w->id, w->ns, w->pool, w->t0);
    } else if (w->ended) {
        /* Failed: the retry is answered as the claim was (nothing was
         * claimed, so sending it again may claim). */
        if (w->fail_status != 0)
            bdy_http_error(resp, w->fail_status, w->fail_code, w->fail_message,
                           w->fail_retry_after);
        else
            bdy_http_error(resp, 503, "Unavailable",
                           "the claim with this Idempotency-Key failed while this retry waited "
                           "for it; send it again",
                           RETRY_AFTER_S);
        count_result(c, w->ns, w->pool, "replay", w->fail_status == 504 ? "timeout" : "error", 0);
    } else {
        /* Its own wait is over, the first claim's is not (a stalled commit,
         * say): it may still succeed, so nothing here says no world came.
         * The same key later gets the first claim's result. */
        bdy_http_error(resp, 503, "Unavailable",
                       "the claim with this Idempotency-Key is still in progress; send it again "
                       "to learn its result",
                       RETRY_AFTER_S);
        count_result(c, w->ns, w->pool, "replay", "error", 0);
    }
    bdy_http_deferred_finish(w->d);
    free(w);
}

/* API.md: unknown request fields are a 400, so that a typo never passes;
 * a query parameter is one (?poool=arena listed every pool's worlds).
 * Answers the 400 and returns true when req has one known does not list. */
static bool unknown_query(const bdy_http_request *req, const char *const *known,
                          bdy_http_response *resp)
{
    const char *key = bdy_http_query_unknown(req, known);
    if (key == NULL)
        return false;
    char msg[200];
    snprintf(msg, sizeof(msg), "unknown query parameter \"%.100s\"", key);
    bdy_http_error(resp, 400, "InvalidRequest", msg, 0);
    return true;
}

static void post_allocation(void *data, const bdy_http_request *req, bdy_http_response *resp)
{
    bdy_claims *c = data;
    uint64_t t0 = bdy_monotonic_ns();
    char why[600];
    bdy_claim_request cr;
    memset(&cr, 0, sizeof(cr));
    json_object *world = NULL;
    char idem_full[IDEM_KEY_MAX];
    const char *idem_pending = NULL;
    bdy_config_pool spec;
    bool have_spec = false;
    unparked *unparked_claim = NULL; /* this claim, while it creates its cold world */
    char id[BDY_ALLOCATION_ID_LEN];
    char hash[65] = "";
    bdy_buf answer_world;
    bdy_buf_init(&answer_world, ANSWER_MAX);

    if (!bdy_claims_ready(c)) {
        bdy_http_error(resp, 503, "NotReady", "claims are served once start-up has finished",
                       RETRY_AFTER_S);
        return;
    }
    if (unknown_query(req, NULL, resp))
        goto out;
    if (bdy_claim_request_parse(req->body, req->body_len, &cr, why, sizeof(why)) != 0) {
        bdy_http_error(resp, 400, "InvalidRequest", why, 0);
        goto out;
    }
    if (!allowed(req, BDY_VERB_ALLOCATE, cr.ns, resp))
        goto out;
    const char *idem_key = bdy_http_header(req, "Idempotency-Key");
    if (idem_key != NULL && !valid_idem_key(idem_key)) {
        bdy_http_error(resp, 400, "InvalidRequest",
                       "Idempotency-Key must be 1 to 128 printable ASCII characters", 0);
        goto out;
    }
    /* A replay is answered before the pool is looked for: a pool a reload
     * removed since still has its allocations. */
    if (idem_key != NULL) {
        bdy_sha256_hex(req->body, req->body_len, hash);
        idem_compose(idem_full, sizeof(idem_full), cr.ns, idem_key);
        pthread_mutex_lock(&c->lock);
        idem_entry *e = idem_find(c, idem_full, false);
        if (e != NULL && !e->pending && id_find(c, e->id, false) == NULL &&
            (c->o.ledger == NULL || !bdy_ledger_has(c->o.ledger, e->id))) {
            /* Its allocation's record is gone (swept after its retention,
             * seen by a relist that could not name its key): the key is
             * free again, as after a restart. Not while the ledger holds
             * its claim (unindexed when memory ran out as it was answered):
             * a retry would claim a second world. */
            idem_remove(c, idem_full);
            e = NULL;
        }
        if (e != NULL) {
            char prior[sizeof(e->id)];
            bool same = strcmp(e->hash, hash) == 0;
            bool pending = e->pending;
            snprintf(prior, sizeof(prior), "%s", e->id);
            pthread_mutex_unlock(&c->lock);
            if (!same)
                bdy_http_error(resp, 409, "IdempotencyKeyReused", IDEM_REUSED_MESSAGE, 0);
            else if (pending)
                /* The same key is being claimed right now: answer with its
                 * result rather than claim a second world. */
                replay_later(c, req, resp, &cr, idem_full, hash, t0);
            else
                answer_replay(c, resp, prior, cr.ns, cr.pool, t0);
            goto out;
        }
        e = idem_find(c, idem_full, true);
        if (e == NULL) {
            pthread_mutex_unlock(&c->lock);
            bdy_http_error(resp, 500, "InternalError", "out of memory", 0);
            goto out;
        }
        e->pending = true;
        snprintf(e->hash, sizeof(e->hash), "%s", hash);
        pthread_mutex_unlock(&c->lock);
        idem_pending = idem_full;
    }
    bdy_pool_counts counts;
    if (bdy_fleet_counts(c->o.fleet, cr.ns, cr.pool, &counts) != 0) {
        snprintf(why, sizeof(why), "no pool %s/%s", cr.ns, cr.pool);
        fail_claim(c, idem_pending, resp, NULL, 404, "NotFound", why, 0);
        goto out;
    }

    if (atomic_load_explicit(&c->refusing, memory_order_relaxed)) {
        /* Draining: no new claim (a replay of a finished one is answered above). */
        fail_claim(c, idem_pending, resp, NULL, 503, "ShuttingDown", "the server is shutting down",
                   RETRY_AFTER_S);
        goto out;
    }
    new_allocation_id(c, id);
    if (c->o.ledger != NULL) {
        bdy_world_ref ref;
        int rc = bdy_fleet_claim_take(c->o.fleet, cr.ns, cr.pool, cr.selectors, cr.nselectors, &ref,
                                      &answer_world);
        if (rc == 0) {
            /* Answered by the ledger's committer once the row is durable:
             * no worker thread sleeps on the commit. */
            warm_job *job =
                warm_job_new(c, &ref, id, &cr, idem_key, hash, idem_pending, answer_world.data, t0);
            if (job != NULL)
                job->d = bdy_http_defer(req);
            rc = job == NULL || job->d == NULL
                     ? BDY_ENOMEM
                     : bdy_ledger_add_async(c->o.ledger, &job->row, warm_done, job);
            if (rc == 0)
                goto out; /* the job owns the claim now */
            bdy_fleet_claim_done(c->o.fleet, &ref, false, false);
            count_result(c, cr.ns, cr.pool, "warm", "error", 0);
            bool deferred = job != NULL && job->d != NULL;
            if (rc == BDY_ESHUTDOWN)
                fail_claim(c, idem_pending, deferred ? NULL : resp, deferred ? job->d : NULL, 503,
                           "ShuttingDown", "the server is shutting down", RETRY_AFTER_S);
            else
                fail_claim(c, idem_pending, deferred ? NULL : resp, deferred ? job->d : NULL, 503,
                           "Unavailable", "the claim could not be made durable", RETRY_AFTER_S);
            warm_job_free(job);
            goto out;
        }
    }
    for (int attempt = 0; attempt < CLAIM_MAX_TRIES && c->o.ledger == NULL; attempt++) {
        /* Without a ledger (Kubernetes mode) the claim is the world's status
         * write, with its resourceVersion as the precondition. */
        bdy_world_ref ref;
        int rc = bdy_fleet_claim_take(c->o.fleet, cr.ns, cr.pool, cr.selectors, cr.nselectors, &ref,
                                      NULL);
        if (rc != 0)
            break;
        char rv[24];
        snprintf(rv, sizeof(rv), "%llu", (unsigned long long)ref.resource_version);
        rc = write_claim(c, ref.ns, ref.name, rv, id, &cr, "warm", idem_key, hash, &world);
        /* A world that changed or vanished since the index saw it stays out
         * of the index until the informer reports it again. */
        bdy_fleet_claim_done(c->o.fleet, &ref, rc == 0, rc == BDY_ECONFLICT || rc == BDY_ENOTFOUND);
        if (rc == BDY_ECONFLICT || rc == BDY_ENOTFOUND)
            continue; /* that world changed under us: the next one */
        if (rc != 0) {
            fail_claim(c, idem_pending, resp, NULL, 503, "Unavailable",
                       "the claim could not be made durable", RETRY_AFTER_S);
            count_result(c, cr.ns, cr.pool, "warm", "error", 0);
            goto out;
        }
        pthread_mutex_lock(&c->lock);
        index_allocation(c, ref.ns, ref.name, bdy_jget(bdy_jget(world, "status"), "allocation"),
                         false);
        pthread_mutex_unlock(&c->lock);
        idem_finish(c, idem_pending, id);
        if (c->rec != NULL)
            bdy_reconciler_enqueue_world(c->rec, ref.ns, ref.name);
        json_object *answer = bdy_allocation_answer(world);
        bdy_http_json(resp, 201, answer);
        set_location(resp, id);
        json_object_put(answer);
        count_demand(c, cr.ns, cr.pool, idem_pending, true);
        count_result(c, cr.ns, cr.pool, "warm", "success", (bdy_monotonic_ns() - t0) / 1e9);
        goto out;
    }

    /* After a restart, worlds that were Ready are claimable once the world
     * controller has found their processes running: until then there is
     * no miss to learn from, nor a cold world to make. */
    bdy_pool_counts pc = {0};
    if (bdy_fleet_counts(c->o.fleet, cr.ns, cr.pool, &pc) == 0 && pc.unchecked > 0) {
        snprintf(why, sizeof(why),
                 "pool %s/%s: its %u Ready worlds are being checked after a restart", cr.ns,
                 cr.pool, pc.unchecked);
        fail_claim(c, idem_pending, resp, NULL, 503, "NotReady", why, RETRY_AFTER_S);
        count_result(c, cr.ns, cr.pool, "warm", "exhausted", 0);
        goto out;
    }
    /* No warm world: a miss, which the forecast learns from. */
    count_demand(c, cr.ns, cr.pool, idem_pending, false);
    const char *pl[] = {cr.ns, cr.pool, NULL};
    bdy_metric_inc(bdy_metric_child(c->m_misses, pl));
    /* Only a miss needs the pool's full spec (a deep copy): not the warm path. */
    if (bdy_fleet_pool_spec(c->o.fleet, cr.ns, cr.pool, &spec) != 0) {
        snprintf(why, sizeof(why), "no pool %s/%s", cr.ns, cr.pool);
        fail_claim(c, idem_pending, resp, NULL, 404, "NotFound", why, 0);
        goto out;
    }
    have_spec = true;
    bool matches = cold_world_matches(&spec, &cr);
    waiter *w = NULL;
    char world_name[BDY_NAME_MAX];
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int create_rc = BDY_EBUSY;
    /* A pool whose worlds keep failing makes none for a claim either: each
     * would fail like the rest, and a burst of waiting claims started
     * three apiece at once. The client hears when to ask again. */
    /* With waitSeconds 0 too: its Retry-After is then the rest of the
     * wait, not a second (README: "even with waitSeconds"). */
    double backoff =
        matches && c->rec != NULL ? bdy_reconciler_pool_backoff(c->rec, cr.ns, cr.pool) : 0;
    if (backoff > 0) {
        snprintf(why, sizeof(why),
                 "no warm world in pool %s/%s, and its worlds keep failing: it makes worlds "
                 "again in %.0f s",
                 cr.ns, cr.pool, ceil(backoff));
        fail_claim(c, idem_pending, resp, NULL, 503, "PoolExhausted", why, (unsigned)ceil(backoff));
        count_result(c, cr.ns, cr.pool, "warm", "exhausted", 0);
        goto out;
    }
    if (cr.wait_s > 0 && matches) {
        w = calloc(1, sizeof(*w));
        unparked_claim = w != NULL ? unparked_add(c, id) : NULL;
        create_rc = w == NULL ? BDY_ENOMEM : create_cold_world(c, &spec, id, world_name, &eb);
    }
    if (create_rc == BDY_EBUSY) {
        free(w);
        /* Warm worlds the selectors passed over are not "none": a client
         * would look for the fault in the pool rather than its selectors. */
        bool passed_over = cr.nselectors > 0 && pc.warm > 0;
        snprintf(why, sizeof(why), "%s in pool %s/%s%s",
                 passed_over ? "no warm world matches the selectors" : "no warm world", cr.ns,
                 cr.pool,
                 cr.wait_s == 0 ? ""
                 : matches      ? " and it is at maxWorlds"
                                : " and a new world would not match the selectors");
        fail_claim(c, idem_pending, resp, NULL, 503, "PoolExhausted", why, RETRY_AFTER_S);
        count_result(c, cr.ns, cr.pool, "warm", "exhausted", 0);
        goto out;
    }
    if (create_rc != 0) {
        free(w);
        /* Not PoolExhausted: there was room for the world; the store could
         * not record it (a full disk, say). */
        snprintf(why, sizeof(why), "the world for this claim could not be recorded: %s",
                 eb.message[0] ? eb.message : bdy_strerror(create_rc));
        fail_claim(c, idem_pending, resp, NULL, 503, "Unavailable", why, RETRY_AFTER_S);
        count_result(c, cr.ns, cr.pool, "cold", "error", 0);
        goto out;
    }
    bdy_demand_record(c->o.demand, cr.ns, cr.pool, BDY_DEMAND_COLD, bdy_wall_seconds());
    snprintf(w->ns, sizeof(w->ns), "%s", cr.ns);
    snprintf(w->world, sizeof(w->world), "%s", world_name);
    snprintf(w->pool, sizeof(w->pool), "%s", cr.pool);
    snprintf(w->id, sizeof(w->id), "%s", id);
    snprintf(w->claimant, sizeof(w->claimant), "%s", cr.claimant);
    if (idem_key != NULL) {
        snprintf(w->idem_key, sizeof(w->idem_key), "%s", idem_key);
        snprintf(w->hash, sizeof(w->hash), "%s", hash);
    }
    /* Copies, not references: this thread frees the request body while
     * a cold-claim thread may use them, and json-c's reference counts
     * are not atomic. Out of memory leaves one NULL: the claim cannot
     * wait, as below. */
    bool copied = (cr.labels == NULL || json_object_deep_copy(cr.labels, &w->labels, NULL) == 0) &&
                  (cr.annotations == NULL ||
                   json_object_deep_copy(cr.annotations, &w->annotations, NULL) == 0);
    w->started = mono_s();
    w->deadline = w->started + cr.wait_s;
    w->d = copied ? bdy_http_defer(req) : NULL;
    if (w->d == NULL) {
        /* Out of memory (a defer cannot fail from inside this handler
         * otherwise): the world is released to the pool by the orphan
         * sweep. */
        waiter_free(w);
        fail_claim(c, idem_pending, resp, NULL, 503, "Unavailable", "the claim could not wait",
                   RETRY_AFTER_S);
        goto out;
    }
    w->worlds = 1;
    w->selective = cr.nselectors > 0;
    w->labels_digest = labels_digest(&spec);
    if (!park_waiter(c, w, NULL)) {
        /* Stopping: the thread that answers waiters is gone or going. The
         * world stays reserved; the next start's orphan sweep gives it to
         * the pool, as for the waiters that thread answers on its way out. */
        fail_claim(c, idem_pending, NULL, w->d, 503, "ShuttingDown", "the server is shutting down",
                   RETRY_AFTER_S);
        waiter_free(w);
        goto out;
    }
    bdy_info("claims", "no warm world in %s/%s: waiting up to %u s for cold world %s", cr.ns,
             cr.pool, cr.wait_s, world_name);
out:
    unparked_remove(c, unparked_claim);
    if (have_spec)
        bdy_fleet_pool_spec_free(&spec);
    bdy_claim_request_free(&cr);
    json_object_put(world);
    bdy_buf_free(&answer_world);
}

/* Removes the cold-claim reservation: the world joins the pool. */
static void unreserve(bdy_claims *c, const char *ns, const char *name)
{
    json_object *patch = bdy_json_parse_stored(
        "{\"metadata\":{\"annotations\":{\"" BDY_ANNOTATION_COLD_CLAIM "\":null}}}");
    bdy_store_patch(c->o.store, &BDY_GVR_WORLDS, ns, name, BDY_PATCH_MERGE, patch, false, NULL,
                    NULL, NULL);
    json_object_put(patch);
}

/* Whether the world's process has exited (or was lost, or is stopping a
 * world that is over) while its status still says Ready: the world
 * controller writes Failed a moment after the notice, and a claim in that
 * moment would be handed a dead address. */
static bool process_gone(bdy_claims *c, const char *ns, const char *name)
{
    bdy_world_seen seen;
    return bdy_fleet_world_seen(c->o.fleet, ns, name, &seen) == 0 && bdy_process_over(seen.process);
}

/* Whether a retry waits on the claim with key full. Under lock. */
static bool replay_waiting(bdy_claims *c, const char *full)
{
    bool waiting = false;
    for (replay_waiter *r = c->replays; r != NULL && !waiting; r = r->next)
        waiting = !r->ended && strcmp(r->idem_full, full) == 0;
    return waiting;
}

/* Finishes one cold claim whose world is Ready (a cold-claim thread).
 * False: the world turned out not to be Ready after all (failing, being
 * deleted, gone), and w is not answered. */
static bool complete_cold(bdy_claims *c, waiter *w)
{
    json_object *world = NULL;
    json_object *claimed = NULL;
    int rc = BDY_ECONFLICT;
    bdy_claim_request cr;
    memset(&cr, 0, sizeof(cr));
    snprintf(cr.claimant, sizeof(cr.claimant), "%s", w->claimant);
    cr.labels = w->labels;
    cr.annotations = w->annotations;
    char idem_full[IDEM_KEY_MAX];
    const char *idem = NULL;
    if (w->idem_key[0]) {
        idem_compose(idem_full, sizeof(idem_full), w->ns, w->idem_key);
        idem = idem_full;
    }
    /* A client that gave up waiting (its own timeout, shorter than
     * waitSeconds) would never learn the allocation's id: the world would
     * stay claimed by no one, for good. It joins the pool instead, as on a
     * 504. With an Idempotency-Key only when no retry waits on this very
     * claim: one that comes later finds the key free and claims anew, most
     * likely this world, now warm. */
    bool abandoned = false;
    if (bdy_http_deferred_client_gone(w->d)) {
        /* Looked at and let go under one hold of the lock: a retry that
         * comes after finds the key free, none is left waiting on it. */
        pthread_mutex_lock(&c->lock);
        abandoned = idem == NULL || !replay_waiting(c, idem);
        if (abandoned && idem != NULL)
            idem_remove(c, idem);
        pthread_mutex_unlock(&c->lock);
    }
    if (abandoned) {
        bdy_info("claims",
                 "cold claim %s: the client left before world %s/%s was Ready; the "
                 "world joins the pool",
                 w->id, w->ns, w->world);
        fail_claim(c, NULL, NULL, w->d, 503, "PoolExhausted",
                   "the client left before the world was ready", RETRY_AFTER_S);
        count_result(c, w->ns, w->pool, "cold", "abandoned", 0);
        unreserve(c, w->ns, w->world);
        return true;
    }
    for (int attempt = 0; attempt < CLAIM_MAX_TRIES && rc == BDY_ECONFLICT; attempt++) {
        json_object_put(world);
        world = NULL;
        rc = bdy_store_get(c->o.store, &BDY_GVR_WORLDS, w->ns, w->world, &world, NULL);
        if (rc != 0)
            break;
        /* Ready, with its process, and not being deleted (a kubectl
         * delete before the world controller wrote Terminating): the
         * claim would be answered with a world about to stop. */
        const char *phase = bdy_jstr(bdy_jget(world, "status"), "phase");
        if (phase == NULL || strcmp(phase, "Ready") != 0 || process_gone(c, w->ns, w->world) ||
            bdy_jget(bdy_jget(world, "metadata"), "deletionTimestamp") != NULL) {
            rc = BDY_EBUSY;
            break;
        }
        rc = write_claim(c, w->ns, w->world,
                         bdy_jstr(bdy_jget(world, "metadata"), "resourceVersion"), w->id, &cr,
                         "cold", w->idem_key, w->hash, &claimed);
    }
    double seconds = mono_s() - w->started;
    bool answered = true;
    if (rc == 0) {
        pthread_mutex_lock(&c->lock);
        index_allocation(c, w->ns, w->world, bdy_jget(bdy_jget(claimed, "status"), "allocation"),
                         false);
        pthread_mutex_unlock(&c->lock);
        idem_finish(c, idem, w->id);
        if (c->rec != NULL)
            bdy_reconciler_enqueue_world(c->rec, w->ns, w->world);
        json_object *answer = bdy_allocation_answer(claimed);
        char loc[128];
        snprintf(loc, sizeof(loc), "/v1/allocations/%s", w->id);
        finish_json(w->d, 201, answer, loc);
        json_object_put(answer);
        count_result(c, w->ns, w->pool, "cold", "success", seconds);
    } else if (rc != BDY_EBUSY && store_trouble(rc)) { /* EBUSY here: no longer Ready */
        /* The world is Ready; the claim could not be recorded. It stays
         * reserved until the orphan sweep gives it to the pool. */
        fail_claim(c, idem, NULL, w->d, 503, "Unavailable", "the claim could not be made durable",
                   RETRY_AFTER_S);
        count_result(c, w->ns, w->pool, "cold", "error", 0);
    } else if (rc == BDY_EBUSY || rc == BDY_ENOTFOUND) {
        answered = false; /* not Ready after all, or gone */
    } else {
        /* A write the store refuses for good would be refused for any
         * other world too: no other is started for it. */
        fail_claim(c, idem, NULL, w->d, 503, "PoolExhausted",
                   "the world started for this claim could not be claimed", RETRY_AFTER_S);
        count_result(c, w->ns, w->pool, "cold", "error", 0);
    }
    json_object_put(world);
    json_object_put(claimed);
    return answered;
}

typedef enum cold_restart {
    COLD_RESTARTED, /* w waits for another world: no longer the caller's */
    COLD_NOT_RESTARTED,
    COLD_STOPPING, /* bindery is draining or stopping */
} cold_restart;

/* Starts another world for cold claim w, whose world failed, when its wait
 * and COLD_WORLDS_MAX allow, and lists w as waiting for that one. w is on
 * c->inflight; unless restarted, it still is, not answered. The failed
 * world keeps its reservation until the world controller deletes it or the
 * orphan sweep lets it go. */
static cold_restart restart_cold(bdy_claims *c, waiter *w)
{
    if (atomic_load(&c->refusing))
        return COLD_STOPPING;
    if (w->worlds >= COLD_WORLDS_MAX || w->deadline - mono_s() < COLD_RESTART_MIN_S ||
        bdy_http_deferred_client_gone(w->d))
        return COLD_NOT_RESTARTED;
    bdy_config_pool spec;
    if (bdy_fleet_pool_spec(c->o.fleet, w->ns, w->pool, &spec) != 0)
        return COLD_NOT_RESTARTED; /* a reload removed the pool */
    if (w->selective && labels_digest(&spec) != w->labels_digest) {
        bdy_fleet_pool_spec_free(&spec);
        return COLD_NOT_RESTARTED; /* a new world might not match its selectors */
    }
    char name[BDY_NAME_MAX];
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    unparked *u = unparked_add(c, w->id);
    int rc = create_cold_world(c, &spec, w->id, name, &eb);
    bdy_fleet_pool_spec_free(&spec);
    if (rc != 0) {
        unparked_remove(c, u);
        if (rc != BDY_EBUSY)
            bdy_warn("claims", "cold claim %s: no world could replace %s/%s: %s", w->id, w->ns,
                     w->world, eb.message[0] ? eb.message : bdy_strerror(rc));
        return COLD_NOT_RESTARTED;
    }
    bdy_demand_record(c->o.demand, w->ns, w->pool, BDY_DEMAND_COLD, bdy_wall_seconds());
    bdy_info("claims",
             "cold claim %s: world %s/%s failed; waiting up to %.0f s more for cold "
             "world %s",
             w->id, w->ns, w->world, w->deadline - mono_s(), name);
    /* Stopping: the new world stays reserved, and the next start's orphan
     * sweep gives it to the pool. */
    cold_restart result = park_waiter(c, w, name) ? COLD_RESTARTED : COLD_STOPPING;
    unparked_remove(c, u);
    return result;
}

/* Worlds reserved for a cold claim that no longer waits here — bindery
 * restarted while the claim waited, or the claim failed between creating the
 * world and parking — would otherwise stay out of the pool for good. A
 * reservation nobody waits for, and whose claim is not between creating it
 * and waiting (unparked), is released: at once when an earlier run made it
 * (after a kill -9 in a burst, the pool refused claims for ten seconds while
 * Ready worlds sat reserved), else once it is ORPHAN_GRACE_S old. */
static void sweep_orphans(bdy_claims *c)
{
    bdy_world_ref refs[ORPHAN_SWEEP_MAX];
    size_t n = bdy_fleet_reserved(c->o.fleet, refs, ORPHAN_SWEEP_MAX);
    for (size_t i = 0; i < n; i++) {
        json_object *world = NULL;
        double created = 0;
        if (bdy_store_get(c->o.store, &BDY_GVR_WORLDS, refs[i].ns, refs[i].name, &world, NULL) !=
                0 ||
            bdy_timestamp_parse(bdy_jstr(bdy_jget(world, "metadata"), "creationTimestamp"),
                                &created) != 0) {
            json_object_put(world);
            continue;
        }
        const char *claim_id = bdy_jstr(bdy_jget(bdy_jget(world, "metadata"), "annotations"),
                                        BDY_ANNOTATION_COLD_CLAIM);
        char key[sizeof(((waiter *)0)->key)];
        snprintf(key, sizeof(key), "%s/%s", refs[i].ns, refs[i].name);
        pthread_mutex_lock(&c->lock);
        bool waited = bdy_hmap_find(&c->waiting, key, bdy_hash_str(key)) != NULL ||
                      (claim_id != NULL && unparked_has(c, claim_id));
        for (waiter *w = c->inflight; w != NULL && !waited; w = w->next)
            waited = strcmp(w->ns, refs[i].ns) == 0 && strcmp(w->world, refs[i].name) == 0;
        pthread_mutex_unlock(&c->lock);
        if (!waited &&
            (created < c->started_wall || bdy_wall_seconds() - created > ORPHAN_GRACE_S)) {
            bdy_info("claims", "releasing %s/%s to the pool: its cold claim no longer waits",
                     refs[i].ns, refs[i].name);
            unreserve(c, refs[i].ns, refs[i].name);
        }
        json_object_put(world);
    }
}

/* Whether stored record text may hold a releasedAt before cutoff: true if
 * any "releasedAt" member in it (a label could be named so too) does. Only
 * such records are parsed, so a sweep of a day of records costs a scan of
 * their text, not a parse of each. */
static bool may_be_released_before(const char *text, double cutoff)
{
    static const char member[] = "\"releasedAt\":\"";
    for (const char *p = strstr(text, member); p != NULL; p = strstr(p + 1, member)) {
        const char *v = p + sizeof(member) - 1;
        const char *q = strchr(v, '"');
        char stamp[48];
        double t = 0;
        if (q == NULL || (size_t)(q - v) >= sizeof(stamp))
            continue;
        memcpy(stamp, v, (size_t)(q - v));
        stamp[q - v] = '\0';
        if (bdy_timestamp_parse(stamp, &t) == 0 && t < cutoff)
            return true;
    }
    return false;
}

/* Whether the release a record says was cut short (kill -9 after the
 * record, before the rest): its ledger row is still live, or its world
 * still names the allocation and is not being deleted. Such a record is
 * what finishes the release (the materializer, the cut-short sweep look
 * for it), however old: bindery may have been down for longer than the
 * record retention. Unknown (the store cannot say now) counts as cut short. */
static bool release_unfinished(bdy_claims *c, json_object *rec)
{
    const char *ns = bdy_jstr(bdy_jget(rec, "metadata"), "namespace");
    const char *id = bdy_jstr(bdy_jget(rec, "metadata"), "name");
    const char *world_name = bdy_jstr(bdy_jget(rec, "spec"), "world");
    if (ns == NULL || id == NULL)
        return false;
    if (c->o.ledger != NULL && bdy_ledger_has(c->o.ledger, id))
        return true;
    if (world_name == NULL || world_name[0] == '\0')
        return false;
    json_object *world = NULL;
    int rc = bdy_store_get(c->o.store, &BDY_GVR_WORLDS, ns, world_name, &world, NULL);
    const char *holder = bdy_jstr(bdy_jget(bdy_jget(world, "status"), "allocation"), "id");
    bool unfinished = rc != 0
                          ? rc != BDY_ENOTFOUND
                          : bdy_jget(bdy_jget(world, "metadata"), "deletionTimestamp") == NULL &&
                                holder != NULL && strcmp(holder, id) == 0;
    json_object_put(world);
    return unfinished;
}

/* Deletes the release record whose stored text is text if it was released
 * before cutoff and its release is finished. Returns whether it did. */
static bool delete_if_released_before(bdy_claims *c, const char *text, double cutoff)
{
    if (!may_be_released_before(text, cutoff))
        return false;
    json_object *rec = bdy_json_parse_stored(text);
    json_object *meta = bdy_jget(rec, "metadata");
    double released = 0;
    bool deleted =
        bdy_timestamp_parse(bdy_jstr(bdy_jget(rec, "spec"), "releasedAt"), &released) == 0 &&
        released < cutoff && !release_unfinished(c, rec) &&
        bdy_store_delete(c->o.store, &BDY_GVR_ALLOCATIONS, bdy_jstr(meta, "namespace"),
                         bdy_jstr(meta, "name"), NULL, NULL, NULL, NULL) == 0;
    json_object_put(rec);
    return deleted;
}

/* Deletes release records older than the record retention, a page of
 * RECORD_SWEEP_PAGE at a time (memory stays that of one page however many
 * records a day of claims leaves), for at most RECORD_SWEEP_BUDGET_S; the
 * next sweep goes on from where this one stopped (*token, owned, NULL: from
 * the start). Returns true when it stopped with records left to look at. */
static bool sweep_records(bdy_claims *c, char **token)
{
    double cutoff = bdy_wall_seconds() - c->o.record_retention_s; /* records carry wall time */
    double stop_at = mono_s() + RECORD_SWEEP_BUDGET_S;
    size_t deleted = 0;
    bool stopped = false; /* out of time, or shutting down */
    bool more = false;    /* records left to look at */
    do {
        /* The token that fetched this page: a stop inside the page keeps
         * it, so that the next sweep looks at the page's rest. Tokens name
         * a position, not a cursor: one can be used again. */
        char *page_token = *token;
        *token = NULL;
        bdy_list_opts lo = {.limit = RECORD_SWEEP_PAGE, .continue_token = page_token, .raw = true};
        bdy_list_result res;
        int rc = bdy_store_list(c->o.store, &BDY_GVR_ALLOCATIONS, &lo, &res, NULL);
        if (rc != 0) {
            /* An expired token (more changes than the watch history holds
             * since it was made): start over at once. A failing store: the
             * next sweep. */
            more = rc == BDY_EEXPIRED && page_token != NULL;
            free(page_token);
            break;
        }
        size_t n = json_object_array_length(res.items);
        size_t i = 0;
        for (; i < n && !stopped; i++) {
            const char *text = json_object_get_string(json_object_array_get_idx(res.items, i));
            if (text != NULL && delete_if_released_before(c, text, cutoff))
                deleted++;
            stopped = mono_s() >= stop_at || atomic_load(&c->sweep_stop);
        }
        if (i < n) {
            *token = page_token;
        } else {
            free(page_token);
            *token = res.continue_token;
            res.continue_token = NULL;
        }
        bdy_list_result_free(&res);
        more = i < n || *token != NULL;
    } while (more && !stopped);
    if (deleted > 0)
        bdy_info("claims", "deleted %zu allocation records older than %.0f h%s", deleted,
                 c->o.record_retention_s / 3600.0, more ? "; more in the next sweep" : "");
    return more;
}

/* Finishes a release cut short (see note_cut_short): the world goes, as
 * the DELETE that wrote the record would have done. False when the store
 * could not do it now (tried again later). */
static bool finish_cut_short(bdy_claims *c, const cut_short *q)
{
    json_object *world = NULL;
    int rc = bdy_store_get(c->o.store, &BDY_GVR_WORLDS, q->ns, q->world, &world, NULL);
    if (rc != 0)
        return rc == BDY_ENOTFOUND;
    json_object *meta = bdy_jget(world, "metadata");
    const char *have = bdy_jstr(bdy_jget(bdy_jget(world, "status"), "allocation"), "id");
    pthread_mutex_lock(&c->lock);
    alloc_entry *e = id_find(c, q->id, false);
    bool still = e != NULL && e->released && !e->client_releasing;
    pthread_mutex_unlock(&c->lock);
    /* A world whose process has exited is being released by its
     * controller (WorldExited), which deletes it itself. */
    still = still && !process_gone(c, q->ns, q->world);
    bool ok = true;
    if (still && have != NULL && strcmp(have, q->id) == 0 &&
        bdy_jget(meta, "deletionTimestamp") == NULL) {
        bdy_delete_opts d = {.precondition_rv = bdy_jstr(meta, "resourceVersion")};
        rc = bdy_store_delete(c->o.store, &BDY_GVR_WORLDS, q->ns, q->world, &d, NULL, NULL, NULL);
        if (rc == 0) {
            bdy_info("claims",
                     "allocation %s is released, but its world %s/%s was not deleted (a release "
                     "cut short): it stops now",
                     q->id, q->ns, q->world);
            if (c->rec != NULL)
                bdy_reconciler_event_if_spare(c->rec, world, "Normal", "Released",
                                              "allocation %s is released; the world stops (a "
                                              "release cut short, finished)",
                                              q->id);
        }
        /* A conflict: a newer state of the world, which says again. */
        ok = rc == 0 || rc == BDY_ECONFLICT || rc == BDY_ENOTFOUND;
    }
    json_object_put(world);
    return ok;
}

/* Finishes the releases in list (records_main), freeing it; those the store
 * could not finish go to cut_short_retry. */
static void finish_cut_shorts(bdy_claims *c, cut_short *list)
{
    while (list != NULL) {
        cut_short *q = list;
        list = q->next;
        if (finish_cut_short(c, q)) {
            free(q);
            continue;
        }
        pthread_mutex_lock(&c->lock);
        q->next = c->cut_short_retry;
        c->cut_short_retry = q;
        pthread_mutex_unlock(&c->lock);
    }
}

static void free_cut_shorts(cut_short *list)
{
    while (list != NULL) {
        cut_short *next = list->next;
        free(list);
        list = next;
    }
}

/* The record sweeper: a sweep at start-up, then every RECORD_SWEEP_EVERY_S,
 * or RECORD_SWEEP_BEHIND_S after one that left records to look at; between
 * sweeps, the releases cut short as they are found. A thread of its own: a
 * sweep makes one durable write per record it deletes, and must not hold up
 * cold claims and replays. */
static void *records_main(void *arg)
{
    bdy_claims *c = arg;
    bdy_thread_start("bdy-rec-sweep", true);
    char *token = NULL;
    double next_sweep = 0;
    pthread_mutex_lock(&c->lock);
    while (!c->stopping) {
        cut_short *todo = c->cut_short;
        c->cut_short = NULL;
        if (todo != NULL) {
            pthread_mutex_unlock(&c->lock);
            finish_cut_shorts(c, todo);
            pthread_mutex_lock(&c->lock);
            continue;
        }
        double now = mono_s();
        if (now >= next_sweep) {
            /* Those the store could not finish, once a sweep. */
            c->cut_short = c->cut_short_retry;
            c->cut_short_retry = NULL;
            pthread_mutex_unlock(&c->lock);
            bool behind = sweep_records(c, &token);
            pthread_mutex_lock(&c->lock);
            next_sweep = mono_s() + (behind ? RECORD_SWEEP_BEHIND_S : RECORD_SWEEP_EVERY_S);
            continue;
        }
        struct timespec until;
        bdy_deadline_after_ms(CLOCK_MONOTONIC, (unsigned)((next_sweep - now) * 1000) + 1, &until);
        pthread_cond_timedwait(&c->sweep_wake, &c->lock, &until);
    }
    pthread_mutex_unlock(&c->lock);
    free(token);
    return NULL;
}

/* A cold claim that timed out: the world keeps starting and joins the
 * pool once the annotation that reserved it is gone. */
static void expire_cold(bdy_claims *c, waiter *w)
{
    char idem_full[IDEM_KEY_MAX];
    if (w->idem_key[0])
        idem_compose(idem_full, sizeof(idem_full), w->ns, w->idem_key);
    char msg[400];
    snprintf(msg, sizeof(msg),
             "world %s was not Ready within %.0f s; it keeps starting and joins "
             "the pool",
             w->world, w->deadline - w->started);
    fail_claim(c, w->idem_key[0] ? idem_full : NULL, NULL, w->d, 504, "ColdStartTimeout", msg, 0);
    count_result(c, w->ns, w->pool, "cold", "timeout", 0);
    unreserve(c, w->ns, w->world);
}

static void *cold_main(void *arg)
{
    bdy_claims *c = arg;
    pthread_setname_np(pthread_self(), "bdy-cold-claims");
    pthread_mutex_lock(&c->lock);
    while (!c->stopping) {
        double now = mono_s();
        if (!c->orphan_sweeping && now - c->last_orphan_sweep >= ORPHAN_SWEEP_EVERY_S) {
            c->orphan_sweeping = true;
            pthread_mutex_unlock(&c->lock);
            sweep_orphans(c);
            pthread_mutex_lock(&c->lock);
            c->orphan_sweeping = false;
            c->last_orphan_sweep = mono_s();
            continue;
        }
        replay_waiter **rslot = &c->replays;
        while (*rslot != NULL && !(*rslot)->ended && now < (*rslot)->deadline)
            rslot = &(*rslot)->next;
        if (*rslot != NULL) {
            replay_waiter *r = *rslot;
            *rslot = r->next;
            pthread_cond_signal(&c->wake); /* another thread for whatever else is due */
            pthread_mutex_unlock(&c->lock);
            finish_replay(c, r, false);
            pthread_mutex_lock(&c->lock);
            continue;
        }
        waiter **slot = &c->waiters;
        waiter *due = NULL;
        while (*slot != NULL) {
            waiter *w = *slot;
            if (w->ready || w->failed || now >= w->deadline) {
                waiter_unlink(c, slot, w);
                due = w;
                break;
            }
            slot = &w->next;
        }
        if (due != NULL) {
            due->next = c->inflight;
            c->inflight = due;
            pthread_cond_signal(&c->wake); /* another thread for whatever else is due */
            pthread_mutex_unlock(&c->lock);
            bool world_failed = false;
            if (due->ready)
                world_failed = !complete_cold(c, due);
            else if (due->failed)
                world_failed = true;
            else
                expire_cold(c, due);
            cold_restart restart = world_failed ? restart_cold(c, due) : COLD_NOT_RESTARTED;
            if (restart == COLD_RESTARTED) {
                pthread_mutex_lock(&c->lock); /* listed again, no longer ours */
                continue;
            }
            if (world_failed) {
                char idem_full[IDEM_KEY_MAX];
                if (due->idem_key[0])
                    idem_compose(idem_full, sizeof(idem_full), due->ns, due->idem_key);
                char msg[400];
                snprintf(msg, sizeof(msg), "%s started for this claim failed%s%s",
                         due->worlds > 1 ? "every world" : "the world",
                         due->why[0] ? (due->worlds > 1 ? ", the last with " : ": ") : "",
                         due->why);
                bool stopping = restart == COLD_STOPPING;
                fail_claim(c, due->idem_key[0] ? idem_full : NULL, NULL, due->d, 503,
                           stopping ? "ShuttingDown" : "PoolExhausted",
                           stopping ? "the server is shutting down" : msg, RETRY_AFTER_S);
                count_result(c, due->ns, due->pool, "cold", "error", 0);
            }
            pthread_mutex_lock(&c->lock);
            inflight_remove(c, due);
            pthread_mutex_unlock(&c->lock);
            waiter_free(due);
            pthread_mutex_lock(&c->lock);
            continue;
        }
        struct timespec ts;
        bdy_deadline_after_ms(CLOCK_MONOTONIC, 100, &ts);
        pthread_cond_timedwait(&c->wake, &c->lock, &ts);
    }
    /* Shutting down: nobody will make these worlds ready for them now. */
    while (c->replays != NULL) {
        replay_waiter *r = c->replays;
        c->replays = r->next;
        pthread_mutex_unlock(&c->lock);
        finish_replay(c, r, true);
        pthread_mutex_lock(&c->lock);
    }
    while (c->waiters != NULL) {
        waiter *w = c->waiters;
        waiter_unlink(c, &c->waiters, w);
        pthread_mutex_unlock(&c->lock);
        finish_error(w->d, 503, "ShuttingDown", "the server is shutting down", RETRY_AFTER_S);
        waiter_free(w);
        pthread_mutex_lock(&c->lock);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* ---- GET/DELETE /v1/allocations/{id} ------------------------------------------------------ */

/* Marks (or unmarks) allocation id as being released by its client, so
 * the materializer, finding its world going, does not end it as if the
 * world had failed: counts a DELETE of id in (on) or out, and returns how
 * many run now, this one included. */
static unsigned client_releasing(bdy_claims *c, const char *id, bool on)
{
    pthread_mutex_lock(&c->lock);
    alloc_entry *e = id_find(c, id, false);
    if (e != NULL && (on ? e->client_releasing < UINT8_MAX : e->client_releasing > 0))
        e->client_releasing = (uint8_t)(on ? e->client_releasing + 1 : e->client_releasing - 1);
    unsigned now = e != NULL ? e->client_releasing : 0;
    pthread_mutex_unlock(&c->lock);
    return now;
}

/* The world a released allocation was on, from its release record (a
 * released entry keeps no world name): "" when the record is gone. */
static int record_world(bdy_claims *c, const char *ns, const char *id, char *out, size_t cap)
{
    json_object *rec = NULL;
    int rc = bdy_store_get(c->o.store, &BDY_GVR_ALLOCATIONS, ns, id, &rec, NULL);
    const char *world = rc == 0 ? bdy_jstr(bdy_jget(rec, "spec"), "world") : NULL;
    snprintf(out, cap, "%s", world ? world : "");
    json_object_put(rec);
    return rc == BDY_ENOTFOUND ? 0 : rc;
}

/* DELETE /v1/allocations/{id}. An id released already (its release record
 * exists) is released again, idempotently: a release cut short between
 * its record and the world's delete (the delete failed, or kill -9) left
 * the world running, and the client's retry is what finishes it. */
static void release_allocation(bdy_claims *c, const char *id, const alloc_place *place,
                               bdy_http_response *resp)
{
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    bdy_ledger_record *r = NULL;
    json_object *world = NULL;
    bool live = true;
    bool first = false; /* this call begins the world's end: demand counts it */
    char pool_name[BDY_NAME_MAX] = "";
    char world_name[BDY_NAME_MAX];
    snprintf(world_name, sizeof(world_name), "%s", place->world);
    /* Of DELETEs of one id running at once, only the first may count it. */
    bool alone = client_releasing(c, id, true) == 1;
    int rc = c->o.ledger != NULL ? bdy_ledger_get(c->o.ledger, id, &r) : BDY_ENOTFOUND;
    if (rc == 0)
        snprintf(world_name, sizeof(world_name), "%s", r->c.world);
    else if (rc == BDY_ENOTFOUND)
        rc = world_name[0] ? 0 : record_world(c, place->ns, id, world_name, sizeof(world_name));
    if (rc == 0 && world_name[0] != '\0') {
        rc = bdy_store_get(c->o.store, &BDY_GVR_WORLDS, place->ns, world_name, &world, NULL);
        if (rc == BDY_ENOTFOUND)
            rc = 0;
    }
    if (rc != 0) {
        /* Releasing from the ledger row alone would leave the world
         * running, and free to be claimed again. */
        bdy_fail(&eb, rc, "the allocation or its world could not be read now");
        goto out;
    }
    const char *wid = bdy_jstr(bdy_jget(bdy_jget(world, "status"), "allocation"), "id");
    const char *world_pool = bdy_jstr(bdy_jget(world, "spec"), "pool");
    snprintf(pool_name, sizeof(pool_name), "%s", world_pool ? world_pool : "");
    if (wid != NULL && strcmp(wid, id) == 0) {
        rc = bdy_allocation_release(c->o.store, world, "Released", &eb);
        /* Once: a repeated or concurrent DELETE finds the world already
         * being deleted. */
        first = bdy_jget(bdy_jget(world, "metadata"), "deletionTimestamp") == NULL;
        if (rc == 0 && c->rec != NULL && first)
            bdy_reconciler_event_if_spare(c->rec, world, "Normal", "Released",
                                          "allocation %s released by its client; the world stops",
                                          id);
        /* The release record is durable: the ledger row may go. While
         * draining (BDY_ESHUTDOWN) it goes at the next start, where the
         * record wins over the row. */
        if (rc == 0 && c->o.ledger != NULL) {
            int lrc = bdy_ledger_remove(c->o.ledger, id);
            if (lrc != 0 && lrc != BDY_ENOTFOUND && lrc != BDY_ESHUTDOWN)
                rc = bdy_fail(&eb, lrc, "the claim ledger could not be updated");
        }
    } else if (r != NULL) {
        /* Not in the world's status (yet, or any more): from the row. */
        snprintf(pool_name, sizeof(pool_name), "%s", r->c.pool);
        /* A world whose status names another allocation is that one's:
         * only the row goes (as the materializer does it). */
        rc = release_from_ledger(c, &r->c, wid == NULL ? world : NULL, "Released", &eb);
        first = true; /* the row was live until now */
    } else {
        live = false; /* nothing live to release: already gone */
    }
out:
    bdy_ledger_record_free(r);
    json_object_put(world);
    client_releasing(c, id, false);
    if (rc != 0) {
        /* The materializer may have left this claim to the release that
         * failed: have it looked at again. */
        if (c->o.ledger != NULL)
            rematerialize(c, id);
        bdy_http_error(resp, 503, "Unavailable", eb.message, RETRY_AFTER_S);
        return;
    }
    if (live) {
        pthread_mutex_lock(&c->lock);
        alloc_entry *e = id_find(c, id, false);
        if (e != NULL)
            e->released = true;
        pthread_mutex_unlock(&c->lock);
    }
    /* Counted by the call that ended it: a retry after a release cut short
     * counts it (the first attempt answered 503), a repeat does not. */
    if (first && alone)
        bdy_demand_record(c->o.demand, place->ns, pool_name, BDY_DEMAND_RELEASE,
                          bdy_wall_seconds());
    resp->status = 204;
}

static void allocation_by_id(void *data, const bdy_http_request *req, bdy_http_response *resp)
{
    bdy_claims *c = data;
    const char *id = req->path + strlen("/v1/allocations/");
    if (unknown_query(req, NULL, resp))
        return;
    if (id[0] == '\0' || strchr(id, '/') != NULL || strlen(id) > 64) {
        bdy_http_error(resp, 404, "NotFound", "no such allocation", 0);
        return;
    }
    alloc_place copy;
    if (!id_place(c, id, &copy)) {
        /* Until start-up has loaded the claims, an id not known yet may be
         * a live one: a 404 would tell its client the world is gone. */
        if (!bdy_claims_ready(c))
            bdy_http_error(resp, 503, "NotReady",
                           "allocations are served once start-up has "
                           "finished",
                           RETRY_AFTER_S);
        else
            bdy_http_error(resp, 404, "NotFound", "no such allocation", 0);
        return;
    }
    bool del = strcmp(req->method, "DELETE") == 0;
    if (!allowed(req, del ? BDY_VERB_RELEASE : BDY_VERB_READ, copy.ns, resp))
        return;
    if (!del) {
        json_object *answer = NULL;
        int rc = lookup_answer(c, id, &answer);
        if (rc == BDY_ENOTFOUND) {
            bdy_http_error(resp, 404, "NotFound", "no such allocation", 0);
            return;
        }
        if (rc != 0) {
            /* Not NotFound: a client may take that to mean its world is gone. */
            bdy_http_error(resp, 503, "Unavailable", "the allocation could not be read now",
                           RETRY_AFTER_S);
            return;
        }
        bdy_http_json(resp, 200, answer);
        json_object_put(answer);
        return;
    }
    release_allocation(c, id, &copy, resp);
}

/* ---- GET /v1/pools, /v1/pools/{ns}/{name}, /v1/worlds ------------------------------------ */

static json_object *pool_json(bdy_claims *c, const char *ns, const char *name)
{
    bdy_config_pool spec;
    if (bdy_fleet_pool_spec(c->o.fleet, ns, name, &spec) != 0)
        return NULL;
    bdy_pool_counts counts;
    memset(&counts, 0, sizeof(counts));
    bdy_fleet_counts(c->o.fleet, ns, name, &counts);
    json_object *p = json_object_new_object();
    json_object_object_add(p, "name", json_object_new_string(name));
    json_object_object_add(p, "namespace", json_object_new_string(ns));
    json_object *s = json_object_new_object();
    json_object_object_add(s, "minWarm", json_object_new_int((int)spec.min_warm));
    json_object_object_add(s, "maxWarm", json_object_new_int((int)spec.max_warm));
    json_object_object_add(s, "maxWorlds", json_object_new_int((int)spec.max_worlds));
    json_object_object_add(s, "serviceLevel", jdouble(spec.service_level));
    if (spec.manifest != NULL)
        json_object_object_add(s, "manifest", json_object_new_string(spec.manifest));
    if (spec.booklet != NULL)
        json_object_object_add(s, "booklet", json_object_new_string(spec.booklet));
    json_object_object_add(p, "spec", s);
    json_object *st = json_object_new_object();
    json_object_object_add(st, "warm", json_object_new_int((int)counts.warm));
    json_object_object_add(st, "starting",
                           json_object_new_int((int)(counts.phase[BDY_PHASE_PENDING] +
                                                     counts.phase[BDY_PHASE_STARTING])));
    json_object_object_add(st, "allocated",
                           json_object_new_int((int)counts.phase[BDY_PHASE_ALLOCATED]));
    json_object_object_add(st, "failed", json_object_new_int((int)counts.phase[BDY_PHASE_FAILED]));
    json_object_object_add(st, "terminating", json_object_new_int((int)counts.deleting));
    json_object_object_add(st, "outdated", json_object_new_int((int)counts.outdated));
    /* Target and forecast from the demand module (the same sizing as the
     * pool controller's). */
    bdy_pool_demand dem;
    bool known = bdy_demand_input(c->o.demand, ns, name, bdy_wall_seconds(), &dem) == 0;
    dem.allocated = counts.phase[BDY_PHASE_ALLOCATED];
    unsigned target = bdy_pool_target_warm(&spec, known ? &dem : NULL, bdy_wall_seconds(), NULL);
    json_object_object_add(st, "targetWarm", json_object_new_int((int)target));
    uint64_t hits = 0;
    uint64_t misses = 0;
    double lead = 0;
    uint64_t minute = (uint64_t)(bdy_wall_seconds() / 60);
    pthread_mutex_lock(&c->lock);
    pool_stats *ps = stats_get(c, ns, name);
    for (size_t i = 0; ps != NULL && i < HIT_WINDOW_MINUTES; i++) {
        if (ps->minute[i] + HIT_WINDOW_MINUTES > minute) {
            hits += ps->hits[i];
            misses += ps->misses[i];
        }
    }
    if (ps != NULL)
        lead = ps->lead_time_s;
    pthread_mutex_unlock(&c->lock);
    json_object_object_add(
        st, "forecastPerMinute",
        jdouble(known ? dem.forecast_rate : (double)(hits + misses) / HIT_WINDOW_MINUTES));
    json_object_object_add(st, "leadTimeSeconds", jdouble(known ? dem.lead_time_s : lead));
    /* The demand module's, as /metrics has it: it holds the last hour
     * across a restart. */
    json_object_object_add(st, "warmHitRatio",
                           known           ? jdouble(dem.warm_hit_ratio)
                           : hits + misses ? jdouble((double)hits / (double)(hits + misses))
                                           : jdouble(1.0));
    json_object_object_add(p, "status", st);
    bdy_fleet_pool_spec_free(&spec);
    return p;
}

static void list_pools(void *data, const bdy_http_request *req, bdy_http_response *resp)
{
    bdy_claims *c = data;
    if (unknown_query(req, NULL, resp))
        return;
    json_object *items = json_object_new_array();
    size_t n = bdy_fleet_pool_count(c->o.fleet);
    for (size_t i = 0; i < n; i++) {
        char ns[BDY_NAME_MAX];
        char name[BDY_NAME_MAX];
        if (bdy_fleet_pool_at(c->o.fleet, i, ns, sizeof(ns), name, sizeof(name)) != 0)
            continue;
        if (req->principal != NULL && !bdy_principal_allows(req->principal, BDY_VERB_READ, ns))
            continue;
        json_object *p = pool_json(c, ns, name);
        if (p != NULL)
            json_object_array_add(items, p);
    }
    json_object *out = json_object_new_object();
    json_object_object_add(out, "items", items);
    bdy_http_json(resp, 200, out);
    json_object_put(out);
}

static void get_pool(void *data, const bdy_http_request *req, bdy_http_response *resp)
{
    bdy_claims *c = data;
    char ns[BDY_NAME_MAX];
    char name[BDY_NAME_MAX];
    const char *rest = req->path + strlen("/v1/pools/");
    if (unknown_query(req, NULL, resp))
        return;
    const char *slash = strchr(rest, '/');
    if (slash == NULL || (size_t)(slash - rest) >= sizeof(ns) || strchr(slash + 1, '/') != NULL ||
        strlen(slash + 1) >= sizeof(name)) {
        bdy_http_error(resp, 404, "NotFound", "no such pool", 0);
        return;
    }
    memcpy(ns, rest, (size_t)(slash - rest));
    ns[slash - rest] = '\0';
    snprintf(name, sizeof(name), "%s", slash + 1);
    if (!allowed(req, BDY_VERB_READ, ns, resp))
        return;
    json_object *p = pool_json(c, ns, name);
    if (p == NULL) {
        char msg[600];
        snprintf(msg, sizeof(msg), "no pool %s/%s", ns, name);
        bdy_http_error(resp, 404, "NotFound", msg, 0);
        return;
    }
    bdy_http_json(resp, 200, p);
    json_object_put(p);
}

/* The claim on world w that its status does not show yet: a claim is
 * durable in the ledger first, and the materializer writes it into the
 * status a moment later (later still under a burst, or while the store
 * cannot write). The id into id. */
static bool claim_not_in_status(bdy_claims *c, json_object *w, char *id, size_t cap)
{
    json_object *st = bdy_jget(w, "status");
    const char *uid = bdy_jstr(bdy_jget(w, "metadata"), "uid");
    return c->o.ledger != NULL && uid != NULL && bdy_jget(st, "allocation") == NULL &&
           bdy_ledger_claim_of_world(c->o.ledger, uid, id, cap);
}

/* The /v1/worlds item of w; claimed_by: a claim its status does not show
 * yet (NULL: none), which makes a Ready world Allocated. */
static json_object *world_summary(json_object *w, const char *claimed_by)
{
    json_object *meta = bdy_jget(w, "metadata");
    json_object *st = bdy_jget(w, "status");
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_get(bdy_jget(meta, "name")));
    json_object_object_add(o, "namespace", json_object_get(bdy_jget(meta, "namespace")));
    json_object_object_add(o, "pool", json_object_get(bdy_jget(bdy_jget(w, "spec"), "pool")));
    json_object *phase = bdy_jget(st, "phase");
    const char *phase_name = phase ? json_object_get_string(phase) : "Pending";
    if (claimed_by != NULL && strcmp(phase_name, "Ready") == 0)
        phase_name = "Allocated";
    json_object_object_add(o, "phase", json_object_new_string(phase_name));
    json_object_object_add(o, "address", json_object_get(bdy_jget(st, "address")));
    json_object *ports = bdy_jget(st, "ports");
    json_object_object_add(o, "ports", ports ? json_object_get(ports) : json_object_new_array());
    json_object_object_add(o, "allocationId",
                           claimed_by != NULL
                               ? json_object_new_string(claimed_by)
                               : json_object_get(bdy_jget(bdy_jget(st, "allocation"), "id")));
    json_object *labels = bdy_jget(meta, "labels");
    json_object_object_add(o, "labels",
                           labels ? json_object_get(labels) : json_object_new_object());
    json_object_object_add(o, "createdAt", json_object_get(bdy_jget(meta, "creationTimestamp")));
    return o;
}

static void list_worlds(void *data, const bdy_http_request *req, bdy_http_response *resp)
{
    bdy_claims *c = data;
    static const char *const known[] = {"namespace", "pool", "phase", "limit", "continue", NULL};
    if (unknown_query(req, known, resp))
        return;
    const char *ns = bdy_http_query(req, "namespace");
    const char *pool = bdy_http_query(req, "pool");
    const char *phase = bdy_http_query(req, "phase");
    const char *limit = bdy_http_query(req, "limit");
    const char *cont = bdy_http_query(req, "continue");
    if (ns != NULL && ns[0] == '\0')
        ns = NULL;
    /* Across namespaces only for a token that may read them all: the store
     * pages before the filter below, and a page's continue token names
     * the last world scanned, whatever its namespace. */
    if (ns == NULL && req->principal != NULL &&
        !bdy_principal_allows(req->principal, BDY_VERB_READ, NULL)) {
        char msg[300];
        snprintf(msg, sizeof(msg),
                 "%s \"%s\" may read only some namespaces: name one with ?namespace=",
                 bdy_principal_kind(req->principal), bdy_principal_name(req->principal));
        bdy_http_error(resp, 403, "Forbidden", msg, 0);
        return;
    }
    if (ns != NULL && !valid_dns_label(ns)) {
        bdy_http_error(resp, 400, "InvalidRequest", "namespace must be a DNS label", 0);
        return;
    }
    if (ns != NULL && !allowed(req, BDY_VERB_READ, ns, resp))
        return;
    bdy_phase ph;
    if (phase != NULL && phase[0] && bdy_phase_parse(phase, &ph) != 0) {
        bdy_http_error(resp, 400, "InvalidRequest",
                       "phase must be one of Pending, Starting, Ready, Allocated, Terminating, "
                       "Failed",
                       0);
        return;
    }
    if (pool != NULL && pool[0] && !valid_dns_label(pool)) {
        bdy_http_error(resp, 400, "InvalidRequest", "pool must be a DNS label", 0);
        return;
    }
    long lim = WORLDS_PAGE_DEFAULT;
    if (limit != NULL && limit[0] != '\0') { /* empty, as the other parameters: not given */
        char *end = NULL;
        lim = strtol(limit, &end, 10);
        if (end == limit || *end != '\0' || lim < 1 || lim > WORLDS_PAGE_MAX) {
            bdy_http_error(resp, 400, "InvalidRequest", "limit must be an integer from 1 to 1000",
                           0);
            return;
        }
    }
    /* By spec.pool, what the pool itself goes by, not the bindery.dev/pool
     * label, which kubectl can change. */
    char field_sel[400] = "";
    if (pool != NULL && pool[0])
        snprintf(field_sel, sizeof(field_sel), "spec.pool=%s", pool);
    /* By bdy_phase_selector: a world the controller has not started yet
     * has no status.phase at all, and is listed as Pending. Allocated: Ready
     * worlds too (their claim may not be in their status yet); the phase
     * of each is settled below. */
    bool want_phase = phase != NULL && phase[0];
    if (want_phase) {
        size_t used = strlen(field_sel);
        if (used > 0)
            field_sel[used++] = ',';
        bool allocated = ph == BDY_PHASE_ALLOCATED && c->o.ledger != NULL;
        int n =
            allocated
                ? snprintf(field_sel + used, sizeof(field_sel) - used,
                           "status.phase!=%s,status.phase!=%s,status.phase!=%s,"
                           "status.phase!=%s",
                           bdy_phase_name(BDY_PHASE_PENDING), bdy_phase_name(BDY_PHASE_STARTING),
                           bdy_phase_name(BDY_PHASE_TERMINATING), bdy_phase_name(BDY_PHASE_FAILED))
                : 0;
        if ((allocated && (n < 0 || (size_t)n >= sizeof(field_sel) - used)) ||
            (!allocated &&
             bdy_phase_selector(ph, field_sel + used, sizeof(field_sel) - used) != 0)) {
            bdy_http_error(resp, 500, "InternalError", "the phase filter does not fit", 0);
            return;
        }
    }
    bdy_list_opts lo = {.ns = ns,
                        .field_selector = field_sel[0] ? field_sel : NULL,
                        .limit = (size_t)lim,
                        .continue_token = cont && cont[0] ? cont : NULL};
    bdy_list_result res;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy_store_list(c->o.store, &BDY_GVR_WORLDS, &lo, &res, &eb);
    if (rc == BDY_EINVAL || rc == BDY_EEXPIRED) {
        bdy_http_error(resp, 400, "InvalidRequest", eb.message, 0);
        return;
    }
    if (rc != 0) {
        bdy_http_error(resp, 503, "Unavailable", eb.message, RETRY_AFTER_S);
        return;
    }
    json_object *items = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(res.items); i++) {
        json_object *w = json_object_array_get_idx(res.items, i);
        if (req->principal != NULL &&
            !bdy_principal_allows(req->principal, BDY_VERB_READ,
                                  bdy_jstr(bdy_jget(w, "metadata"), "namespace")))
            continue;
        char claim[BDY_ALLOCATION_ID_LEN + 8];
        bool claimed = claim_not_in_status(c, w, claim, sizeof(claim));
        json_object *item = world_summary(w, claimed ? claim : NULL);
        /* A page may come out shorter than the limit: the continue token
         * still goes on from the last world scanned. */
        if (want_phase && strcmp(bdy_jstr(item, "phase"), bdy_phase_name(ph)) != 0) {
            json_object_put(item);
            continue;
        }
        json_object_array_add(items, item);
    }
    json_object *out = json_object_new_object();
    json_object_object_add(out, "items", items);
    json_object_object_add(out, "continue",
                           json_object_new_string(res.continue_token ? res.continue_token : ""));
    bdy_http_json(resp, 200, out);
    json_object_put(out);
    bdy_list_result_free(&res);
}

/* ---- lifecycle -------------------------------------------------------------------------- */

int bdy_claims_new(const bdy_claims_opts *opts, bdy_claims **out, bdy_errbuf *eb)
{
    bdy_claims *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return bdy_fail(eb, BDY_ENOMEM, "out of memory");
    c->o = *opts;
    c->started_wall = bdy_wall_seconds();
    if (c->o.record_retention_s <= 0)
        c->o.record_retention_s = RECORD_RETENTION_DEFAULT_S;
    if (bdy_hmap_init(&c->ids, ID_BUCKETS) != 0 || bdy_hmap_init(&c->idem, ID_BUCKETS) != 0 ||
        bdy_hmap_init(&c->held, ID_BUCKETS) != 0 || bdy_hmap_init(&c->missed, ID_BUCKETS) != 0 ||
        bdy_hmap_init(&c->waiting, 16) != 0) {
        bdy_hmap_destroy(&c->ids);
        bdy_hmap_destroy(&c->idem);
        bdy_hmap_destroy(&c->held);
        bdy_hmap_destroy(&c->missed);
        free(c);
        return bdy_fail(eb, BDY_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&c->lock, NULL);
    /* Waits are timed on the monotonic clock: a stepped wall clock must
     * neither time every waiting claim out at once nor let waits overrun. */
    bdy_cond_init_monotonic(&c->wake);
    bdy_cond_init_monotonic(&c->sweep_wake);
    bdy_cond_init_monotonic(&c->mat_wake);
    atomic_init(&c->records_synced, false);
    atomic_init(&c->serving, false);
    atomic_init(&c->sweep_stop, false);
    atomic_init(&c->refusing, false);
    if (c->o.metrics != NULL) {
        const char *psr[] = {"namespace", "pool", "source", "result", NULL};
        const char *ps[] = {"namespace", "pool", "source", NULL};
        const char *p[] = {"namespace", "pool", NULL};
        c->m_total =
            bdy_metrics_counter(c->o.metrics, "bindery_allocations_total",
                                "Claims by pool, source (warm, cold, replay) and result.", psr);
        c->m_latency = bdy_metrics_histogram(
            c->o.metrics, "bindery_allocation_duration_seconds",
            "Claim latency, request parsed to durable answer, by pool and source.", ps,
            latency_bounds, sizeof(latency_bounds) / sizeof(latency_bounds[0]));
        c->m_misses = bdy_metrics_counter(c->o.metrics, "bindery_allocation_misses_total",
                                          "Claims that found no warm world, by pool.", p);
    }
    *out = c;
    return 0;
}

void bdy_claims_set_reconciler(bdy_claims *c, bdy_reconciler *r)
{
    c->rec = r;
}

int bdy_claims_start(bdy_claims *c, int timeout_ms, bdy_errbuf *eb)
{
    bdy_informer_opts io = {.gvr = &BDY_GVR_ALLOCATIONS};
    bdy_informer_handlers h = {.on_add = rec_add_cb,
                               .on_update = rec_update_cb,
                               .on_delete = rec_delete_cb,
                               .on_synced = rec_synced_cb,
                               .data = c};
    int rc = bdy_informer_start(c->o.store, &io, &h, &c->records, eb);
    if (rc != 0)
        return rc;
    if (!bdy_informer_wait_synced(c->records, timeout_ms))
        return bdy_fail(eb, BDY_ETIMEOUT, "allocation records did not load within %d ms",
                        timeout_ms);
    if (c->o.ledger != NULL) {
        if ((rc = bdy_ledger_each(c->o.ledger, load_ledger_cb, c, eb)) != 0)
            return rc;
        if (c->mat_len > 0)
            bdy_info("claims", "%zu claims in the ledger; checking them against their worlds",
                     c->mat_len);
        for (size_t i = 0; i < MATERIALIZERS; i++) {
            if (pthread_create(&c->mat_threads[i], NULL, materializer_main, c) != 0)
                return bdy_fail(eb, BDY_ENOMEM, "cannot start the claim materializer");
            c->nmat_threads++;
        }
    }
    for (size_t i = 0; i < COLD_THREADS; i++) {
        if (pthread_create(&c->cold_threads[i], NULL, cold_main, c) != 0)
            return bdy_fail(eb, BDY_ENOMEM, "cannot start the cold-claim threads");
        c->ncold_threads++;
    }
    if (pthread_create(&c->records_thread, NULL, records_main, c) != 0)
        return bdy_fail(eb, BDY_ENOMEM, "cannot start the record sweeper");
    c->records_thread_started = true;
    return 0;
}

void bdy_claims_serve(bdy_claims *c)
{
    atomic_store(&c->serving, true);
}

bool bdy_claims_ready(bdy_claims *c)
{
    return atomic_load(&c->serving) && atomic_load(&c->records_synced) && c->rec != NULL &&
           bdy_reconciler_synced(c->rec);
}

void bdy_claims_collect(bdy_claims *c)
{
    static const char *const results[][2] = {
        {"warm", "success"}, {"warm", "exhausted"}, {"cold", "success"}, {"cold", "timeout"}};
    size_t n = bdy_fleet_pool_count(c->o.fleet);
    for (size_t i = 0; i < n; i++) {
        char ns[BDY_NAME_MAX];
        char name[BDY_NAME_MAX];
        if (bdy_fleet_pool_at(c->o.fleet, i, ns, sizeof(ns), name, sizeof(name)) != 0)
            continue;
        for (size_t k = 0; k < sizeof(results) / sizeof(results[0]); k++) {
            const char *labels[] = {ns, name, results[k][0], results[k][1], NULL};
            bdy_metric_add(bdy_metric_child(c->m_total, labels), 0);
        }
        const char *pl[] = {ns, name, NULL};
        bdy_metric_add(bdy_metric_child(c->m_misses, pl), 0);
    }
}

int bdy_claims_routes(bdy_claims *c, bdy_http_server *s)
{
    int rc;
    if ((rc = bdy_http_route(s, "POST", "/v1/allocations", BDY_ROUTE_EXACT, BDY_VERB_ALLOCATE,
                             post_allocation, c)) != 0 ||
        (rc = bdy_http_route(s, "GET", "/v1/allocations/", BDY_ROUTE_PREFIX, BDY_VERB_READ,
                             allocation_by_id, c)) != 0 ||
        (rc = bdy_http_route(s, "DELETE", "/v1/allocations/", BDY_ROUTE_PREFIX, BDY_VERB_RELEASE,
                             allocation_by_id, c)) != 0 ||
        (rc = bdy_http_route(s, "GET", "/v1/pools", BDY_ROUTE_EXACT, BDY_VERB_READ, list_pools,
                             c)) != 0 ||
        (rc = bdy_http_route(s, "GET", "/v1/pools/", BDY_ROUTE_PREFIX, BDY_VERB_READ, get_pool,
                             c)) != 0 ||
        (rc = bdy_http_route(s, "GET", "/v1/worlds", BDY_ROUTE_EXACT, BDY_VERB_READ, list_worlds,
                             c)) != 0)
        return rc;
    return 0;
}

void bdy_claims_stop(bdy_claims *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->lock);
    c->stopping = true;
    atomic_store(&c->refusing, true);
    atomic_store(&c->sweep_stop, true);
    pthread_cond_broadcast(&c->wake);
    pthread_cond_signal(&c->sweep_wake);
    pthread_cond_broadcast(&c->mat_wake);
    pthread_mutex_unlock(&c->lock);
    for (size_t i = 0; i < c->ncold_threads; i++)
        pthread_join(c->cold_threads[i], NULL);
    c->ncold_threads = 0;
    if (c->records_thread_started) {
        pthread_join(c->records_thread, NULL);
        c->records_thread_started = false;
    }
    /* Claims still queued here are re-checked from the ledger at start. */
    for (size_t i = 0; i < c->nmat_threads; i++)
        pthread_join(c->mat_threads[i], NULL);
    c->nmat_threads = 0;
    if (c->records != NULL) {
        bdy_informer_stop(c->records);
        c->records = NULL;
    }
}

void bdy_claims_free(bdy_claims *c)
{
    if (c == NULL)
        return;
    bdy_claims_stop(c);
    if (c->ids.buckets != NULL) {
        BDY_HMAP_FOREACH(&c->ids, n)
        {
            alloc_entry_free((alloc_entry *)n);
        }
    }
    if (c->idem.buckets != NULL) {
        BDY_HMAP_FOREACH(&c->idem, n)
        {
            free(n);
        }
    }
    if (c->held.buckets != NULL) {
        BDY_HMAP_FOREACH(&c->held, n)
        {
            free(n);
        }
    }
    bdy_hmap_destroy(&c->ids);
    bdy_hmap_destroy(&c->idem);
    bdy_hmap_destroy(&c->held);
    while (c->missed_head != NULL) {
        missed_key *m = c->missed_head;
        c->missed_head = m->next;
        free(m);
    }
    bdy_hmap_destroy(&c->missed);
    bdy_hmap_destroy(&c->waiting); /* its nodes are the waiters, freed below */
    while (c->mat_head != NULL) {
        mat_item *n = c->mat_head->next;
        mat_item_free(c->mat_head);
        c->mat_head = n;
    }
    while (c->stats != NULL) {
        pool_stats *n = c->stats->next;
        free(c->stats);
        c->stats = n;
    }
    while (c->waiters != NULL) {
        waiter *n = c->waiters->next;
        waiter_free(c->waiters);
        c->waiters = n;
    }
    while (c->replays != NULL) {
        replay_waiter *n = c->replays->next;
        free(c->replays);
        c->replays = n;
    }
    free_cut_shorts(c->cut_short);
    free_cut_shorts(c->cut_short_retry);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->wake);
    pthread_cond_destroy(&c->sweep_wake);
    pthread_cond_destroy(&c->mat_wake);
    free(c);
}
