/* The fleet: every pool and a compact record of every world (see pool.h).
 *
 * Records live in an open-addressing-free chained hash map keyed by
 * "namespace/name". Each pool keeps its warm worlds in an array; a world
 * knows its slot, so removal is a swap with the last entry.
 */
#include "bindery/pool.h"

#include "bindery/hmap.h"

#include "bindery/jsonutil.h"
#include "bindery/log.h"
#include "bindery/util.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLEET_MIN_BUCKETS 1024
#define FLEET_MAX_LABELS_BYTES 4096
/* A created world reaches the fleet through the informer within
 * milliseconds. A creation slot outlives that only when the world was
 * created and deleted while the informer relisted, so it never saw it;
 * the slot is dropped after this long instead of holding room forever. */
#define FLEET_CREATION_TTL_S 60.0

typedef struct fleet_pool fleet_pool;

typedef struct world {
    bdy_hnode node; /* first: a node pointer is the world; node.key = key */
    char *key;      /* "ns/name", owned; ns and name point into key_buf */
    char *name;     /* into key (after the '/') */
    size_t ns_len;
    char *pool_name;  /* its spec.pool, owned; NULL: none */
    fleet_pool *pool; /* NULL when the pool is not configured */
    bdy_phase phase;
    bool deleting;
    bool claiming;        /* a claim is being made durable */
    bool held;            /* a claim succeeded: never warm again; a Ready held world
                             counts as Allocated until its status says so */
    bool stale;           /* a claim found it changed; out of warm until a newer rv */
    bool scaling_down;    /* taken for a scale-down delete: counted as deleting, and out
                             of warm, until put back or a newer rv is seen */
    bool failing;         /* its controller is failing it (bdy_fleet_fail_begin): out of
                             warm until undone or a newer rv is seen */
    bool reserved;        /* created for one cold claim */
    bool failure_listed;  /* handed out by bdy_fleet_failed once already */
    bool failed_no_crash; /* Failed for a reason that is not a crash of its own
                             (Lost, ManifestChanged): no backoff for its pool */
    bool outdated;        /* made from another template than its pool's (outdated_of);
                             kept so that count() removes what it added */
    bdy_process_seen process;
    uint64_t rv;
    uint64_t claim_rv;        /* the rv a claim (or a scale-down, or a fail) started from */
    uint64_t template_id;     /* its BDY_LABEL_TEMPLATE, 0 without one */
    double ready_since;       /* monotonic seconds when first seen Ready (scale-down age) */
    double ready_for;         /* Failed worlds: seconds from ready_since to the failure
                                 (0: never Ready), for the crash backoff */
    double created_at;        /* wall seconds of its grant when this run made it, finer
                                 than creationTimestamp's whole seconds; 0: not known */
    char *labels;             /* "k\0v\0k\0v\0\0" or NULL, owned */
    bool labels_unknown;      /* too many to keep (or no memory): no selector
                                 matches it, claims without one still may */
    char *uid;                /* metadata.uid, owned, NULL until observed */
    char *answer_world;       /* Ready worlds: the "world" object of a claim's answer
                                 as JSON text, owned; built off the claim path */
    long warm_slot;           /* index in pool->warm, or -1 */
    fleet_pool *unchecked_in; /* the pool counting it in counts.unchecked, or NULL */
    double orphan_since;      /* monotonic seconds since a pool made it and the pool is no
                                 longer configured; 0 otherwise (see orphan_sync) */
} world;

/* Room a creator was granted for one world that the informer has not
 * reported yet (see bdy_fleet_creation_grant). */
typedef struct creation {
    char name[BDY_NAME_MAX]; /* the world's, chosen at the grant */
    double since;            /* monotonic seconds of the grant, then of the create */
    double granted_at;       /* wall seconds of the grant, just before the create */
} creation;

struct fleet_pool {
    bdy_config_pool spec; /* deep copy, owned */
    world **warm;
    size_t nwarm;
    size_t awarm;
    bdy_pool_counts counts; /* of observed worlds only; creations apart */
    creation *creating;     /* owned array */
    size_t ncreating;
    size_t acreating;
    bool present;         /* still in the config */
    uint64_t template_id; /* bdy_fleet_set_template; 0: not known */
    bool template_proven; /* a world of template_id has been seen Ready */
    bool template_failed; /* ... or Failed */
};

struct bdy_fleet {
    pthread_mutex_t lock;
    bdy_hmap worlds; /* world records by "ns/name" */
    fleet_pool **pools;
    size_t npools;
    size_t nreserved; /* worlds held for cold claims (skips scans when 0) */
    size_t norphans;  /* worlds with orphan_since set (skips scans when 0) */
};

static void orphan_sync(bdy_fleet *f, world *w);

static const char *const phase_names[BDY_PHASE_COUNT] = {"Pending",   "Starting",    "Ready",
                                                         "Allocated", "Terminating", "Failed"};

const char *bdy_phase_name(bdy_phase p)
{
    return (unsigned)p < BDY_PHASE_COUNT ? phase_names[p] : "Unknown";
}

int bdy_phase_parse(const char *text, bdy_phase *out)
{
    if (text == NULL || text[0] == '\0') {
        *out = BDY_PHASE_PENDING;
        return 0;
    }
    for (int i = 0; i < BDY_PHASE_COUNT; i++) {
        if (strcmp(text, phase_names[i]) == 0) {
            *out = (bdy_phase)i;
            return 0;
        }
    }
    return BDY_EINVAL;
}

int bdy_phase_selector(bdy_phase p, char *out, size_t cap)
{
    if ((unsigned)p >= BDY_PHASE_COUNT || cap == 0)
        return BDY_EINVAL;
    size_t len = 0;
    out[0] = '\0';
    bool pending = p == BDY_PHASE_PENDING;
    for (int i = 0; i < BDY_PHASE_COUNT; i++) {
        /* Pending: every other phase excluded; else that phase alone. */
        if ((i == (int)p) == pending)
            continue;
        int n = snprintf(out + len, cap - len, "%sstatus.phase%s%s", len ? "," : "",
                         pending ? "!=" : "=", phase_names[i]);
        if (n < 0 || (size_t)n >= cap - len) {
            out[0] = '\0';
            return BDY_EINVAL;
        }
        len += (size_t)n;
    }
    return 0;
}

unsigned bdy_pool_target_warm(const bdy_config_pool *spec, const bdy_pool_demand *demand,
                              double now, double *level_out)
{
    bdy_sizing_input in = {.min_warm = spec->min_warm,
                           .max_warm = spec->max_warm,
                           .max_worlds = spec->max_worlds,
                           .service_level = spec->service_level,
                           .creation_rate = spec->creation_rate,
                           .prev_target = -1};
    if (demand != NULL) {
        in.forecast_rate = demand->forecast_rate;
        in.forecast_sd = demand->forecast_sd;
        in.lead_time_s = demand->lead_time_s;
        in.recent_rate = demand->recent_rate;
        in.recent_minutes = demand->recent_minutes;
        in.recent_misses = demand->recent_misses;
        in.allocated = demand->allocated;
        in.prev_target = demand->prev_level;
        in.prev_at = demand->prev_at;
        in.overrides = demand->overrides;
        in.noverrides = demand->noverrides;
    }
    bdy_sizing out = bdy_size_pool(&in, now);
    if (level_out != NULL)
        *level_out = out.level;
    return out.target;
}

/* ---- pools ------------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static void spec_free(bdy_config_pool *p)
{
    free(p->name);
    free(p->ns);
    free(p->manifest);
    free(p->booklet);
    for (size_t i = 0; i < p->labels.count; i++) {
        free(p->labels.items[i].key);
        free(p->labels.items[i].value);
    }
    free(p->labels.items);
    memset(p, 0, sizeof(*p));
}

static int spec_copy(bdy_config_pool *dst, const bdy_config_pool *src)
{
    *dst = *src;
    dst->name = dup_or_null(src->name);
    dst->ns = dup_or_null(src->ns ? src->ns : "default");
    dst->manifest = dup_or_null(src->manifest);
    dst->booklet = dup_or_null(src->booklet);
    dst->labels.items = NULL;
    dst->labels.count = 0;
    /* Overrides are not copied: the demand module holds them parsed. */
    dst->overrides.items = NULL;
    dst->overrides.count = 0;
    if (src->labels.count > 0) {
        dst->labels.items = calloc(src->labels.count, sizeof(*dst->labels.items));
        if (dst->labels.items == NULL)
            goto nomem;
        dst->labels.count = src->labels.count;
        for (size_t i = 0; i < src->labels.count; i++) {
            dst->labels.items[i].key = strdup(src->labels.items[i].key);
            dst->labels.items[i].value = strdup(src->labels.items[i].value);
            if (!dst->labels.items[i].key || !dst->labels.items[i].value)
                goto nomem;
        }
    }
    if (dst->name == NULL || dst->ns == NULL || (src->manifest && !dst->manifest) ||
        (src->booklet && !dst->booklet))
        goto nomem;
    return 0;
nomem:
    spec_free(dst);
    return BDY_ENOMEM;
}

static void pool_free(fleet_pool *p)
{
    if (p == NULL)
        return;
    spec_free(&p->spec);
    free(p->warm);
    free(p->creating);
    free(p);
}

static fleet_pool *find_pool(bdy_fleet *f, const char *ns, const char *name)
{
    for (size_t i = 0; i < f->npools; i++) {
        fleet_pool *p = f->pools[i];
        if (p->present && strcmp(p->spec.name, name) == 0 && strcmp(p->spec.ns, ns) == 0)
            return p;
    }
    return NULL;
}

/* ---- the warm index ------------------------------------------------------- */

/* Ready in a configured pool, and nothing holds it or takes it. */
static bool idle_ready(const world *w)
{
    return w->pool != NULL && w->pool->present && w->phase == BDY_PHASE_READY && !w->deleting &&
           !w->claiming && !w->held && !w->stale && !w->reserved && !w->scaling_down && !w->failing;
}

static bool should_be_warm(const world *w)
{
    return idle_ready(w) && w->process == BDY_PROCESS_LIVE;
}

static void warm_remove(world *w)
{
    if (w->warm_slot < 0 || w->pool == NULL)
        return;
    fleet_pool *p = w->pool;
    size_t slot = (size_t)w->warm_slot;
    p->warm[slot] = p->warm[p->nwarm - 1];
    p->warm[slot]->warm_slot = (long)slot;
    p->nwarm--;
    p->counts.warm--;
    w->warm_slot = -1;
}

static void warm_add(world *w)
{
    fleet_pool *p = w->pool;
    if (w->warm_slot >= 0 || p == NULL)
        return;
    if (p->nwarm == p->awarm) {
        size_t n = p->awarm ? p->awarm * 2 : 64;
        world **grown = realloc(p->warm, n * sizeof(world *));
        if (grown == NULL) {
            bdy_error("fleet", "out of memory growing the warm index of %s/%s", p->spec.ns,
                      p->spec.name);
            return;
        }
        p->warm = grown;
        p->awarm = n;
    }
    w->warm_slot = (long)p->nwarm;
    p->warm[p->nwarm++] = w;
    p->counts.warm++;
}

/* A Ready world nothing holds whose process this run has not looked at
 * yet (after a restart): warm stock soon, not claimable yet. */
static bool unchecked(const world *w)
{
    return idle_ready(w) && w->process == BDY_PROCESS_UNKNOWN;
}

/* Keeps w counted in counts.unchecked of the pool it is unchecked in (or
 * in none). Under f->lock. */
static void unchecked_sync(world *w)
{
    fleet_pool *now = unchecked(w) ? w->pool : NULL;
    if (now == w->unchecked_in)
        return;
    if (w->unchecked_in != NULL)
        w->unchecked_in->counts.unchecked--;
    if (now != NULL)
        now->counts.unchecked++;
    w->unchecked_in = now;
}

static void warm_sync(world *w)
{
    if (should_be_warm(w))
        warm_add(w);
    else
        warm_remove(w);
    unchecked_sync(w);
}

/* Whether w was made from another template than its pool's, as far as the
 * pool knows its template. Set w->outdated from it only between a
 * count(w, -1) and a count(w, +1). */
static bool outdated_of(const world *w)
{
    /* A world without a template of its own (made before worlds carried
     * one, or while the pool's was not known) is not outdated: its
     * controller labels it with the pool's template in force. */
    return w->pool != NULL && w->pool->template_id != 0 && w->template_id != 0 &&
           w->template_id != w->pool->template_id;
}

/* Notes that a world of the pool's template is Ready, or has failed (see
 * bdy_pool_counts.template_proven, template_failed). Under f->lock. */
static void proven_sync(world *w)
{
    fleet_pool *p = w->pool;
    if (p == NULL || p->template_id == 0 || w->template_id != p->template_id)
        return;
    if (w->phase == BDY_PHASE_READY)
        p->template_proven = true;
    else if (w->phase == BDY_PHASE_FAILED)
        p->template_failed = true;
}

/* Adds (sign +1) or removes (-1) w from its pool's phase counts. */
static void count(world *w, int sign)
{
    if (w->pool == NULL)
        return;
    bdy_pool_counts *c = &w->pool->counts;
    if (w->deleting) {
        c->deleting = (unsigned)((int)c->deleting + sign);
        return;
    }
    /* One being deleted by scale-down counts as deleting already: a second
     * pass before the informer reports the delete must not find the same
     * surplus and delete other worlds for it. It keeps its room under
     * maxWorlds until then: a delete that fails puts it back. */
    if (w->scaling_down) {
        c->deleting = (unsigned)((int)c->deleting + sign);
        c->total = (unsigned)((int)c->total + sign);
        return;
    }
    /* A held world whose status still says Ready is allocated all the
     * same: the pool must replace it now, not once the status catches up. */
    bdy_phase phase = w->held && w->phase == BDY_PHASE_READY ? BDY_PHASE_ALLOCATED : w->phase;
    c->phase[phase] = (unsigned)((int)c->phase[phase] + sign);
    bool stock =
        phase == BDY_PHASE_PENDING || phase == BDY_PHASE_STARTING || phase == BDY_PHASE_READY;
    if (w->reserved && stock)
        c->reserved = (unsigned)((int)c->reserved + sign);
    if (w->outdated && stock && !w->reserved) {
        c->outdated = (unsigned)((int)c->outdated + sign);
        if (phase == BDY_PHASE_READY)
            c->outdated_ready = (unsigned)((int)c->outdated_ready + sign);
    }
    c->total = (unsigned)((int)c->total + sign);
}

int bdy_fleet_set_pools(bdy_fleet *f, const bdy_config_pools *pools)
{
    int rc = 0;
    fleet_pool **added = calloc(pools->count ? pools->count : 1, sizeof(fleet_pool *));
    if (added == NULL)
        return BDY_ENOMEM;
    size_t nadded = 0;
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->npools; i++)
        f->pools[i]->present = false;
    for (size_t i = 0; i < pools->count; i++) {
        const bdy_config_pool *src = &pools->items[i];
        const char *ns = src->ns ? src->ns : "default";
        fleet_pool *p = NULL;
        for (size_t j = 0; j < f->npools; j++) {
            if (!strcmp(f->pools[j]->spec.name, src->name) && !strcmp(f->pools[j]->spec.ns, ns))
                p = f->pools[j];
        }
        if (p != NULL) {
            bdy_config_pool copy;
            if ((rc = spec_copy(&copy, src)) != 0)
                goto out;
            spec_free(&p->spec);
            p->spec = copy;
            p->present = true;
            continue;
        }
        p = calloc(1, sizeof(*p));
        if (p == NULL || (rc = spec_copy(&p->spec, src)) != 0) {
            free(p);
            rc = BDY_ENOMEM;
            goto out;
        }
        p->present = true;
        added[nadded++] = p;
    }
    if (nadded > 0) {
        fleet_pool **grown = realloc(f->pools, (f->npools + nadded) * sizeof(fleet_pool *));
        if (grown == NULL) {
            rc = BDY_ENOMEM;
            goto out;
        }
        f->pools = grown;
        memcpy(f->pools + f->npools, added, nadded * sizeof(fleet_pool *));
        f->npools += nadded;
        nadded = 0;
    }
    /* A removed pool's creation slots go: its creators can no longer
     * settle them (find_pool skips it), and a pool configured again later
     * starts from its worlds as seen. */
    for (size_t i = 0; i < f->npools; i++)
        if (!f->pools[i]->present)
            f->pools[i]->ncreating = 0;
    /* Re-home every world: new pools pick up worlds seen before they were
     * configured, removed pools lose their warm index. */
    BDY_HMAP_FOREACH(&f->worlds, n)
    {
        world *w = (world *)n;
        char ns[BDY_NAME_MAX];
        snprintf(ns, sizeof(ns), "%.*s", (int)w->ns_len, w->key);
        fleet_pool *p = w->pool_name ? find_pool(f, ns, w->pool_name) : NULL;
        if (p != w->pool) {
            warm_remove(w);
            count(w, -1);
            w->pool = p;
            w->outdated = outdated_of(w);
            count(w, +1);
        }
        warm_sync(w);
        orphan_sync(f, w);
    }
out:
    pthread_mutex_unlock(&f->lock);
    for (size_t i = 0; i < nadded; i++)
        pool_free(added[i]);
    free(added);
    return rc;
}

int bdy_fleet_pool_spec(bdy_fleet *f, const char *ns, const char *name, bdy_config_pool *out)
{
    pthread_mutex_lock(&f->lock);
    fleet_pool *p = find_pool(f, ns, name);
    int rc = p ? spec_copy(out, &p->spec) : BDY_ENOTFOUND;
    pthread_mutex_unlock(&f->lock);
    return rc;
}

void bdy_fleet_pool_spec_free(bdy_config_pool *p)
{
    spec_free(p);
}

size_t bdy_fleet_pool_count(bdy_fleet *f)
{
    pthread_mutex_lock(&f->lock);
    size_t n = 0;
    for (size_t i = 0; i < f->npools; i++)
        n += f->pools[i]->present;
    pthread_mutex_unlock(&f->lock);
    return n;
}

int bdy_fleet_pool_at(bdy_fleet *f, size_t i, char *ns, size_t ns_cap, char *name, size_t name_cap)
{
    int rc = BDY_ENOTFOUND;
    pthread_mutex_lock(&f->lock);
    size_t k = 0;
    for (size_t j = 0; j < f->npools; j++) {
        if (!f->pools[j]->present)
            continue;
        if (k++ == i) {
            snprintf(ns, ns_cap, "%s", f->pools[j]->spec.ns);
            snprintf(name, name_cap, "%s", f->pools[j]->spec.name);
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&f->lock);
    return rc;
}

/* ---- world records ---------------------------------------------------------- */

static world *find_world(bdy_fleet *f, const char *key)
{
    return (world *)bdy_hmap_find(&f->worlds, key, bdy_hash_str(key));
}

int bdy_fleet_new(bdy_fleet **out)
{
    bdy_fleet *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return BDY_ENOMEM;
    if (bdy_hmap_init(&f->worlds, FLEET_MIN_BUCKETS) != 0) {
        free(f);
        return BDY_ENOMEM;
    }
    pthread_mutex_init(&f->lock, NULL);
    *out = f;
    return 0;
}

static void world_free(world *w)
{
    if (w == NULL)
        return;
    free(w->key);
    free(w->pool_name);
    free(w->labels);
    free(w->uid);
    free(w->answer_world);
    free(w);
}

void bdy_fleet_free(bdy_fleet *f)
{
    if (f == NULL)
        return;
    BDY_HMAP_FOREACH(&f->worlds, n)
    {
        world_free((world *)n);
    }
    bdy_hmap_destroy(&f->worlds);
    for (size_t i = 0; i < f->npools; i++)
        pool_free(f->pools[i]);
    free(f->pools);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

/* Serializes a labels object to "k\0v\0...\0"; NULL for no labels, and
 * NULL with *unknown set when they do not fit FLEET_MAX_LABELS_BYTES or
 * memory: a selector must then match nothing, not see no labels (NotIn and
 * DoesNotExist would match). */
static char *pack_labels(json_object *labels, bool *unknown)
{
    *unknown = false;
    if (labels == NULL || !json_object_is_type(labels, json_type_object) ||
        json_object_object_length(labels) == 0)
        return NULL;
    *unknown = true;
    size_t n = 1;
    json_object_object_foreach(labels, k, v)
    {
        n += strlen(k) + 1 + strlen(json_object_get_string(v)) + 1;
    }
    if (n > FLEET_MAX_LABELS_BYTES)
        return NULL;
    char *buf = malloc(n);
    if (buf == NULL)
        return NULL;
    char *p = buf;
    json_object_object_foreach(labels, k2, v2)
    {
        const char *val = json_object_get_string(v2);
        size_t kl = strlen(k2) + 1;
        size_t vl = strlen(val) + 1;
        memcpy(p, k2, kl);
        p += kl;
        memcpy(p, val, vl);
        p += vl;
    }
    *p = '\0';
    *unknown = false;
    return buf;
}

/* bdy_label_lookup over packed labels: no allocation under the lock. */
static const char *packed_label(void *data, const char *key)
{
    for (const char *p = data; p != NULL && *p;) {
        const char *v = p + strlen(p) + 1;
        if (strcmp(p, key) == 0)
            return v;
        p = v + strlen(v) + 1;
    }
    return NULL;
}

/* A BDY_LABEL_TEMPLATE label's template id, 0 for none. */
static uint64_t template_of(json_object *label)
{
    return bdy_pool_template_parse(
        json_object_get_type(label) == json_type_string ? json_object_get_string(label) : NULL);
}

/* A new, empty record for "ns/name" (ns_len bytes of namespace), in the
 * map; NULL when out of memory. Under lock. */
static world *world_add(bdy_fleet *f, const char *key, size_t ns_len)
{
    world *w = calloc(1, sizeof(*w));
    if (w == NULL || (w->key = strdup(key)) == NULL) {
        free(w);
        return NULL;
    }
    w->ns_len = ns_len;
    w->name = w->key + ns_len + 1;
    w->warm_slot = -1;
    w->node.key = w->key;
    w->node.hash = bdy_hash_str(w->key);
    bdy_hmap_insert(&f->worlds, &w->node);
    return w;
}

/* Sets w's pool name to pool (NULL or "": none), copying only when it
 * changed: a world's spec.pool is set once, and every status write of it
 * comes through here. Out of memory, the name stays as it was (no pool
 * for a new world): its pool then counts it on the next observation. */
static void pool_name_set(world *w, const char *pool)
{
    if (pool != NULL && *pool == '\0')
        pool = NULL;
    if (pool == NULL ? w->pool_name == NULL
                     : w->pool_name != NULL && strncmp(w->pool_name, pool, BDY_NAME_MAX - 1) == 0)
        return;
    char *copy = pool != NULL ? strndup(pool, BDY_NAME_MAX - 1) : NULL;
    if (pool != NULL && copy == NULL)
        return;
    free(w->pool_name);
    w->pool_name = copy;
}

/* ---- creation slots (granted below, dropped when the informer reports) ------- */

static double monotonic_s(void)
{
    return (double)bdy_monotonic_ns() / 1e9;
}

/* Whether w's labels name its spec.pool as the pool that made it: only a
 * pool's own worlds are its orphans, never a world made by hand that names
 * a pool. Under f->lock. */
static bool made_by_its_pool(const world *w)
{
    if (w->pool_name == NULL)
        return false;
    for (const char *k = w->labels; k != NULL && *k != '\0';) {
        const char *v = k + strlen(k) + 1;
        if (strcmp(k, BDY_LABEL_POOL) == 0)
            return strcmp(v, w->pool_name) == 0;
        k = v + strlen(v) + 1;
    }
    return false;
}

/* Keeps w->orphan_since and f->norphans right after w's pool or labels
 * changed: set when the pool that made it is not configured, from the
 * first time that was seen. Under f->lock. */
static void orphan_sync(bdy_fleet *f, world *w)
{
    bool orphan = w->pool == NULL && w->pool_name != NULL && made_by_its_pool(w);
    if (orphan && w->orphan_since == 0) {
        w->orphan_since = monotonic_s();
        f->norphans++;
    } else if (!orphan && w->orphan_since != 0) {
        w->orphan_since = 0;
        f->norphans--;
    }
}

static void creation_drop(fleet_pool *p, size_t i)
{
    p->creating[i] = p->creating[--p->ncreating];
}

/* Drops slots older than FLEET_CREATION_TTL_S. Under f->lock. */
static void creations_prune(fleet_pool *p, double now)
{
    for (size_t i = p->ncreating; i-- > 0;) {
        if (now - p->creating[i].since >= FLEET_CREATION_TTL_S) {
            bdy_warn("fleet", "pool %s/%s: world %s was created %.0f s ago and never seen",
                     p->spec.ns, p->spec.name, p->creating[i].name, FLEET_CREATION_TTL_S);
            creation_drop(p, i);
        }
    }
}

/* The world ns/name of pool p has been seen: its slot, if any, goes.
 * Returns the slot's grant time (wall seconds), 0 without one. Under
 * f->lock. */
static double creation_seen(fleet_pool *p, const char *name)
{
    for (size_t i = 0; p != NULL && i < p->ncreating; i++) {
        if (strcmp(p->creating[i].name, name) == 0) {
            double granted_at = p->creating[i].granted_at;
            creation_drop(p, i);
            return granted_at;
        }
    }
    return 0;
}

void bdy_fleet_observe(bdy_fleet *f, json_object *obj, char *pool_out)
{
    const char *ns = bdy_jstr(bdy_jget(obj, "metadata"), "namespace");
    const char *name = bdy_jstr(bdy_jget(obj, "metadata"), "name");
    const char *pool = bdy_jstr(bdy_jget(obj, "spec"), "pool");
    const char *rv_text = bdy_jstr(bdy_jget(obj, "metadata"), "resourceVersion");
    pool_out[0] = '\0';
    if (ns == NULL || name == NULL)
        return;
    bdy_phase phase = BDY_PHASE_PENDING;
    if (bdy_phase_parse(bdy_jstr(bdy_jget(obj, "status"), "phase"), &phase) != 0)
        phase = BDY_PHASE_FAILED;
    /* Failed as lost by an earlier run: still no crash of its own. */
    const char *reason = bdy_jstr(bdy_jget(obj, "status"), "reason");
    bool lost = phase == BDY_PHASE_FAILED && reason != NULL && strcmp(reason, "Lost") == 0;
    /* Failed because its manifest changed its ports while it started (a
     * rollout, every Starting world of the pool at once): no crash either,
     * and counting them held the pool's refills back for a minute while
     * its Ready worlds were all outdated. */
    bool no_crash = lost || (phase == BDY_PHASE_FAILED && reason != NULL &&
                             strcmp(reason, "ManifestChanged") == 0);
    uint64_t rv = rv_text ? strtoull(rv_text, NULL, 10) : 0;
    json_object *meta = json_object_object_get(obj, "metadata");
    bool deleting = bdy_jstr(bdy_jget(obj, "metadata"), "deletionTimestamp") != NULL;
    json_object *annotations = json_object_object_get(meta, "annotations");
    bool reserved = annotations != NULL &&
                    json_object_object_get_ex(annotations, BDY_ANNOTATION_COLD_CLAIM, NULL);
    bool labels_unknown = false;
    char *labels = pack_labels(json_object_object_get(meta, "labels"), &labels_unknown);
    uint64_t template_id = template_of(
        json_object_object_get(json_object_object_get(meta, "labels"), BDY_LABEL_TEMPLATE));
    const char *uid_text = bdy_jstr(meta, "uid");
    char *uid = uid_text ? strdup(uid_text) : NULL;
    /* The claim answer's world part, built here so a warm claim only
     * concatenates strings. Only Ready worlds can be claimed. */
    char *answer_world = NULL;
    if (phase == BDY_PHASE_READY && !deleting)
        answer_world = bdy_allocation_world_json(obj);
    char key[2 * BDY_NAME_MAX + 2];
    snprintf(key, sizeof(key), "%s/%s", ns, name);
    snprintf(pool_out, BDY_NAME_MAX, "%s", pool ? pool : "");

    pthread_mutex_lock(&f->lock);
    world *w = find_world(f, key);
    double created_at = 0;
    if (w == NULL) {
        if (pool != NULL)
            created_at = creation_seen(find_pool(f, ns, pool), name);
        if ((w = world_add(f, key, strlen(ns))) == NULL) {
            free(labels);
            free(uid);
            free(answer_world);
            pthread_mutex_unlock(&f->lock);
            return;
        }
        w->created_at = created_at;
    } else {
        if (rv != 0 && rv < w->rv) {
            /* An older state than one already seen (a relist racing a
             * claim's own answer): keep the newer. */
            free(labels);
            free(uid);
            free(answer_world);
            pthread_mutex_unlock(&f->lock);
            return;
        }
        count(w, -1);
    }
    fleet_pool *now_in = pool ? find_pool(f, ns, pool) : NULL;
    if (now_in != w->pool)
        warm_remove(w); /* its slot is in the pool it leaves (spec.pool edited) */
    pool_name_set(w, pool);
    w->pool = now_in;
    bool new_world = w->uid != NULL && uid != NULL && strcmp(w->uid, uid) != 0;
    if (new_world) {
        /* A new world under an old name: nothing of the last one's holds. */
        w->held = false;
        w->process = BDY_PROCESS_UNKNOWN;
        w->failure_listed = false;
        w->ready_since = 0;
        w->ready_for = 0;
        w->created_at = 0;
    }
    if (phase == BDY_PHASE_READY && (w->phase != BDY_PHASE_READY || w->ready_since == 0))
        w->ready_since = monotonic_s();
    if (phase == BDY_PHASE_FAILED && w->phase != BDY_PHASE_FAILED)
        w->ready_for = w->ready_since > 0 ? monotonic_s() - w->ready_since : 0;
    w->phase = phase;
    w->failed_no_crash = no_crash;
    w->deleting = deleting;
    bool now_reserved = reserved && phase != BDY_PHASE_ALLOCATED;
    if (now_reserved != w->reserved)
        f->nreserved = now_reserved ? f->nreserved + 1 : f->nreserved - 1;
    w->reserved = now_reserved;
    if (w->stale && rv > w->claim_rv)
        w->stale = false; /* the informer caught up */
    if (w->scaling_down && rv > w->claim_rv)
        w->scaling_down = false; /* its delete (or what beat it) is seen */
    if (w->failing && rv > w->claim_rv)
        w->failing = false; /* its Failed status (or what beat it) is seen */
    if (lost)
        w->process = BDY_PROCESS_LOST;
    w->rv = rv;
    free(w->labels);
    w->labels = labels;
    w->labels_unknown = labels_unknown;
    w->template_id = template_id;
    w->outdated = outdated_of(w);
    proven_sync(w);
    free(w->uid);
    w->uid = uid;
    free(w->answer_world);
    w->answer_world = answer_world;
    count(w, +1);
    warm_sync(w);
    orphan_sync(f, w);
    pthread_mutex_unlock(&f->lock);
}

void bdy_fleet_process_seen(bdy_fleet *f, const char *ns, const char *name, bdy_process_seen seen)
{
    char key[2 * BDY_NAME_MAX + 2];
    snprintf(key, sizeof(key), "%s/%s", ns, name);
    pthread_mutex_lock(&f->lock);
    world *w = find_world(f, key);
    /* A process that exited or was lost stays so: a pass that found it
     * running just before its exit notice must not make it claimable
     * again (a new world under the name starts afresh, see observe). */
    bool final = w != NULL && bdy_process_over(w->process);
    if (w != NULL && w->process != seen && !(final && seen == BDY_PROCESS_LIVE)) {
        w->process = seen;
        warm_sync(w);
    }
    pthread_mutex_unlock(&f->lock);
}

bool bdy_fleet_fail_begin(bdy_fleet *f, const char *ns, const char *name, uint64_t rv)
{
    char key[2 * BDY_NAME_MAX + 2];
    snprintf(key, sizeof(key), "%s/%s", ns, name);
    pthread_mutex_lock(&f->lock);
    world *w = find_world(f, key);
    bool ok = w == NULL || !(w->held || w->claiming);
    if (w != NULL && ok) {
        w->failing = true;
        /* Not just what the informer reported: the write may be conditioned
         * on a newer state, whose report must not end this. */
        w->claim_rv = rv > w->rv ? rv : w->rv;
        warm_sync(w);
    }
    pthread_mutex_unlock(&f->lock);
    return ok;
}

void bdy_fleet_fail_undo(bdy_fleet *f, const char *ns, const char *name)
{
    char key[2 * BDY_NAME_MAX + 2];
    snprintf(key, sizeof(key), "%s/%s", ns, name);
    pthread_mutex_lock(&f->lock);
    world *w = find_world(f, key);
    if (w != NULL && w->failing) {
        w->failing = false;
        warm_sync(w);
    }
    pthread_mutex_unlock(&f->lock);
}

/* Drops w from the fleet, undoing everything it is counted in. Under
 * f->lock. */
static void world_remove(bdy_fleet *f, world *w)
{
    if (w->reserved)
        f->nreserved--;
    if (w->orphan_since != 0)
        f->norphans--;
    if (w->unchecked_in != NULL)
        w->unchecked_in->counts.unchecked--;
    warm_remove(w);
    count(w, -1);
    bdy_hmap_remove(&f->worlds, &w->node);
    world_free(w);
}

void bdy_fleet_forget(bdy_fleet *f, const char *ns, const char *name, char *pool_out)
{
    char key[2 * BDY_NAME_MAX + 2];
    snprintf(key, sizeof(key), "%s/%s", ns, name);
    pool_out[0] = '\0';
    pthread_mutex_lock(&f->lock);
    world *w = find_world(f, key);
    if (w != NULL) {
        snprintf(pool_out, BDY_NAME_MAX, "%s", w->pool_name ? w->pool_name : "");
        world_remove(f, w);
    }
    pthread_mutex_unlock(&f->lock);
}

/* ---- creations --------------------------------------------------------------- */

/* A fresh name for a world of pool p, "<pool>-<5 random>" as generateName
 * would give, that no world or slot of the fleet has (out must not be one
 * of p's counted slots). Under f->lock. */
static void creation_name(bdy_fleet *f, fleet_pool *p, char *out)
{
    char key[2 * BDY_NAME_MAX + 2];
    for (int tries = 0; tries < 8; tries++) {
        size_t plen = (size_t)snprintf(out, BDY_NAME_MAX, "%.60s-", p->spec.name);
        bdy_random_suffix(out + plen, 5);
        snprintf(key, sizeof(key), "%s/%s", p->spec.ns, out);
        bool taken = find_world(f, key) != NULL;
        for (size_t i = 0; i < p->ncreating && !taken; i++)
            taken = strcmp(p->creating[i].name, out) == 0;
        if (!taken)
            return;
    }
    /* 27^5 names: eight misses in a row means a pool of millions. The
     * store refuses a taken name, and the creator tries again. */
}

bool bdy_fleet_creation_grant(bdy_fleet *f, const char *ns, const char *pool, char *name_out)
{
    bool granted = false;
    name_out[0] = '\0';
    pthread_mutex_lock(&f->lock);
    fleet_pool *p = find_pool(f, ns, pool);
    if (p == NULL)
        goto out;
    double now = monotonic_s();
    creations_prune(p, now);
    if ((size_t)p->counts.total + p->ncreating >= p->spec.max_worlds)
        goto out;
    if (p->ncreating == p->acreating) {
        size_t n = p->acreating < 8 ? 16 : p->acreating * 2;
        creation *grown = realloc(p->creating, n * sizeof(*grown));
        if (grown == NULL)
            goto out;
        p->creating = grown;
        p->acreating = n;
    }
    /* Named before it is counted: a slot compared with itself would make
     * every name look taken. */
    creation *slot = &p->creating[p->ncreating];
    creation_name(f, p, slot->name);
    p->ncreating++;
    slot->since = now;
    slot->granted_at = bdy_wall_seconds();
    snprintf(name_out, BDY_NAME_MAX, "%s", slot->name);
    granted = true;
out:
    pthread_mutex_unlock(&f->lock);
    return granted;
}

void bdy_fleet_creation_done(bdy_fleet *f, const char *ns, const char *pool, const char *name,
                             bool created)
{
    pthread_mutex_lock(&f->lock);
    fleet_pool *p = find_pool(f, ns, pool);
    for (size_t i = 0; p != NULL && i < p->ncreating; i++) {
        if (strcmp(p->creating[i].name, name) != 0)
            continue;
        /* Not found: the informer has reported the world already. */
        if (!created)
            creation_drop(p, i);
        else
            p->creating[i].since = monotonic_s(); /* the TTL counts from the create */
        break;
    }
    pthread_mutex_unlock(&f->lock);
}

int bdy_fleet_counts(bdy_fleet *f, const char *ns, const char *pool, bdy_pool_counts *out)
{
    pthread_mutex_lock(&f->lock);
    fleet_pool *p = find_pool(f, ns, pool);
    if (p != NULL) {
        creations_prune(p, monotonic_s());
        *out = p->counts;
        out->template_proven = p->template_proven;
        out->template_failed = p->template_failed;
        out->creating = (unsigned)p->ncreating;
        out->total += out->creating;
    }
    pthread_mutex_unlock(&f->lock);
    return p ? 0 : BDY_ENOTFOUND;
}

/* ---- claims ------------------------------------------------------------------ */

static void fill_ref(const world *w, bdy_world_ref *out)
{
    snprintf(out->ns, sizeof(out->ns), "%.*s", (int)w->ns_len, w->key);
    snprintf(out->name, sizeof(out->name), "%s", w->name);
    snprintf(out->pool, sizeof(out->pool), "%s", w->pool_name ? w->pool_name : "");
    snprintf(out->uid, sizeof(out->uid), "%s", w->uid ? w->uid : "");
    out->resource_version = w->rv;
}

int bdy_fleet_claim_take(bdy_fleet *f, const char *ns, const char *pool,
                         bdy_label_selector *const *selectors, size_t nselectors,
                         bdy_world_ref *out, bdy_buf *answer_world)
{
    int rc = BDY_EBUSY;
    pthread_mutex_lock(&f->lock);
    fleet_pool *p = find_pool(f, ns, pool);
    if (p == NULL) {
        rc = BDY_ENOTFOUND;
        goto out;
    }
    if (p->nwarm == 0)
        goto out;
    world *chosen = NULL;
    if (nselectors == 0) {
        chosen = p->warm[p->nwarm - 1]; /* O(1): the most recently warmed */
    } else {
        /* Preference order: the first selector any warm world matches. */
        for (size_t s = 0; s < nselectors && chosen == NULL; s++) {
            for (size_t i = p->nwarm; i-- > 0 && chosen == NULL;) {
                world *w = p->warm[i];
                if (!w->labels_unknown &&
                    bdy_label_selector_matches_lookup(selectors[s], packed_label, w->labels))
                    chosen = w;
            }
        }
        if (chosen == NULL)
            goto out;
    }
    chosen->claiming = true;
    chosen->claim_rv = chosen->rv;
    warm_remove(chosen);
    fill_ref(chosen, out);
    if (answer_world != NULL) {
        bdy_buf_reset(answer_world);
        if (chosen->answer_world == NULL ||
            bdy_buf_appends(answer_world, chosen->answer_world) != 0) {
            /* Cannot answer for it: leave it to the informer's next word. */
            chosen->claiming = false;
            chosen->stale = true;
            rc = BDY_EBUSY;
            goto out;
        }
    }
    rc = 0;
out:
    pthread_mutex_unlock(&f->lock);
    return rc;
}

void bdy_fleet_claim_done(bdy_fleet *f, const bdy_world_ref *ref, bool claimed, bool stale)
{
    char key[2 * BDY_NAME_MAX + 2];
    snprintf(key, sizeof(key), "%s/%s", ref->ns, ref->name);
    pthread_mutex_lock(&f->lock);
    world *w = find_world(f, key);
    /* The claim took the world of ref's uid: one made since under the same
     * name (the informer reported it meanwhile) is not what it holds. Its
     * claim ends by the uid it names; this world only stops being claimed,
     * which kept any other claim off it until now. */
    bool same_world =
        w != NULL && (ref->uid[0] == '\0' || w->uid == NULL || strcmp(w->uid, ref->uid) == 0);
    if (w != NULL) {
        w->claiming = false;
        if (claimed && same_world) {
            count(w, -1);
            w->held = true;
            count(w, +1);
        } else if (stale && same_world) {
            /* Out of the warm index until the informer reports a state newer
             * than the one this claim started from. */
            w->stale = w->rv <= ref->resource_version;
            w->claim_rv = ref->resource_version;
        }
        warm_sync(w);
    }
    pthread_mutex_unlock(&f->lock);
}

int bdy_fleet_world_seen(bdy_fleet *f, const char *ns, const char *name, bdy_world_seen *out)
{
    char key[2 * BDY_NAME_MAX + 2];
    snprintf(key, sizeof(key), "%s/%s", ns, name);
    int rc = BDY_ENOTFOUND;
    pthread_mutex_lock(&f->lock);
    const world *w = find_world(f, key);
    if (w != NULL && w->rv != 0) {
        out->phase = w->phase;
        out->deleting = w->deleting;
        out->resource_version = w->rv;
        snprintf(out->uid, sizeof(out->uid), "%s", w->uid ? w->uid : "");
        out->claimed = w->held || w->claiming;
        out->process = w->process;
        out->created_at = w->created_at;
        rc = 0;
    }
    pthread_mutex_unlock(&f->lock);
    return rc;
}

double bdy_fleet_created_at(bdy_fleet *f, json_object *world)
{
    json_object *meta = bdy_jget(world, "metadata");
    const char *ns = bdy_jstr(meta, "namespace");
    const char *name = bdy_jstr(meta, "name");
    bdy_world_seen seen;
    if (ns != NULL && name != NULL && bdy_fleet_world_seen(f, ns, name, &seen) == 0 &&
        seen.created_at > 0)
        return seen.created_at;
    double created = 0;
    return bdy_timestamp_parse(bdy_jstr(meta, "creationTimestamp"), &created) == 0 ? created : -1;
}

int bdy_fleet_hold(bdy_fleet *f, const char *ns, const char *name, const char *uid)
{
    char key[2 * BDY_NAME_MAX + 2];
    snprintf(key, sizeof(key), "%s/%s", ns, name);
    int rc = 0;
    pthread_mutex_lock(&f->lock);
    world *w = find_world(f, key);
    if (w == NULL) {
        /* Not seen yet (start-up: claims load before the informer lists):
         * a record with no pool that the first observation fills in. */
        if ((w = world_add(f, key, strlen(ns))) == NULL) {
            rc = BDY_ENOMEM;
            goto out;
        }
        w->uid = strdup(uid); /* observing another uid under this name unholds */
    } else if (w->uid != NULL && strcmp(w->uid, uid) != 0) {
        goto out; /* the claimed world is gone; this is another one */
    }
    count(w, -1);
    w->held = true;
    count(w, +1);
    warm_sync(w);
out:
    pthread_mutex_unlock(&f->lock);
    return rc;
}

void bdy_fleet_unhold_unseen(bdy_fleet *f, const char *ns, const char *name, const char *uid)
{
    char key[2 * BDY_NAME_MAX + 2];
    snprintf(key, sizeof(key), "%s/%s", ns, name);
    pthread_mutex_lock(&f->lock);
    world *w = find_world(f, key);
    if (w != NULL && w->rv == 0 && w->uid != NULL && strcmp(w->uid, uid) == 0) {
        world_remove(f, w);
    }
    pthread_mutex_unlock(&f->lock);
}

/* Takes w for a delete (scale-down, an orphan): out of the warm index and
 * counted as deleting until bdy_fleet_scale_down_done or a newer state
 * settles it; its ref in out. Under f->lock. */
static void take_for_deletion(world *w, bdy_world_ref *out)
{
    count(w, -1);
    w->scaling_down = true;
    w->claim_rv = w->rv;
    count(w, +1);
    warm_sync(w);
    fill_ref(w, out);
}

/* Most worlds one selection pass of bdy_fleet_take_idle_oldest keeps. */
#define OLDEST_CHUNK 256

/* Sifts heap[i] down a max-heap of n worlds ordered by ready_since (the
 * youngest of the selection on top). */
static void youngest_sift_down(world **heap, size_t n, size_t i)
{
    for (;;) {
        size_t top = i;
        size_t l = 2 * i + 1;
        size_t r = l + 1;
        if (l < n && heap[l]->ready_since > heap[top]->ready_since)
            top = l;
        if (r < n && heap[r]->ready_since > heap[top]->ready_since)
            top = r;
        if (top == i)
            return;
        world *t = heap[i];
        heap[i] = heap[top];
        heap[top] = t;
        i = top;
    }
}

/* Fills heap with the (at most) want oldest warm worlds of p that have been
 * Ready at least min_age_s, in one pass over the warm array: the lock is
 * held O(nwarm log want), not O(nwarm × want), so a large scale-down step
 * of a large pool does not stall claims. Returns how many, oldest first. */
static size_t select_oldest(const fleet_pool *p, double now, double min_age_s, world **heap,
                            size_t want)
{
    size_t n = 0;
    for (size_t i = 0; i < p->nwarm && want > 0; i++) {
        world *w = p->warm[i];
        if (now - w->ready_since < min_age_s)
            continue;
        if (n < want) {
            heap[n++] = w;
            for (size_t j = n - 1; j > 0 && heap[(j - 1) / 2]->ready_since < heap[j]->ready_since;
                 j = (j - 1) / 2) {
                world *t = heap[j];
                heap[j] = heap[(j - 1) / 2];
                heap[(j - 1) / 2] = t;
            }
        } else if (w->ready_since < heap[0]->ready_since) {
            heap[0] = w;
            youngest_sift_down(heap, n, 0);
        }
    }
    /* Heap sort: the youngest goes to the end each round. */
    for (size_t end = n; end > 1; end--) {
        world *t = heap[0];
        heap[0] = heap[end - 1];
        heap[end - 1] = t;
        youngest_sift_down(heap, end - 1, 0);
    }
    return n;
}

size_t bdy_fleet_take_idle_oldest(bdy_fleet *f, const char *ns, const char *pool, double min_age_s,
                                  size_t keep, bdy_world_ref *out, size_t max)
{
    size_t n = 0;
    double now = monotonic_s();
    world *chosen[OLDEST_CHUNK];
    pthread_mutex_lock(&f->lock);
    fleet_pool *p = find_pool(f, ns, pool);
    while (p != NULL && n < max && p->nwarm > keep) {
        size_t want = max - n;
        if (want > p->nwarm - keep)
            want = p->nwarm - keep;
        if (want > OLDEST_CHUNK)
            want = OLDEST_CHUNK;
        size_t got = select_oldest(p, now, min_age_s, chosen, want);
        /* Each one taken leaves the warm array, which select_oldest read:
         * the choice is made before any is taken. */
        for (size_t i = 0; i < got; i++)
            take_for_deletion(chosen[i], &out[n++]);
        if (got < want)
            break; /* no more old enough */
    }
    pthread_mutex_unlock(&f->lock);
    return n;
}

void bdy_fleet_scale_down_done(bdy_fleet *f, const bdy_world_ref *ref, bool deleted)
{
    char key[2 * BDY_NAME_MAX + 2];
    snprintf(key, sizeof(key), "%s/%s", ref->ns, ref->name);
    pthread_mutex_lock(&f->lock);
    world *w = find_world(f, key);
    if (w != NULL && w->scaling_down && !deleted && w->rv <= ref->resource_version) {
        count(w, -1);
        w->scaling_down = false;
        count(w, +1);
        warm_sync(w);
    }
    pthread_mutex_unlock(&f->lock);
}

void bdy_fleet_set_template(bdy_fleet *f, const char *ns, const char *pool, uint64_t template_id)
{
    pthread_mutex_lock(&f->lock);
    fleet_pool *p = find_pool(f, ns, pool);
    if (p != NULL && p->template_id != template_id) {
        p->template_id = template_id;
        p->template_proven = false;
        p->template_failed = false;
        /* Once per change of template (an edit, a reload): a walk of every
         * world is fine here, never on a claim's path. */
        BDY_HMAP_FOREACH(&f->worlds, node)
        {
            world *w = (world *)node;
            if (w->pool != p)
                continue;
            count(w, -1);
            w->outdated = outdated_of(w);
            count(w, +1);
            proven_sync(w);
        }
    }
    pthread_mutex_unlock(&f->lock);
}

uint64_t bdy_fleet_template(bdy_fleet *f, const char *ns, const char *pool)
{
    pthread_mutex_lock(&f->lock);
    fleet_pool *p = find_pool(f, ns, pool);
    uint64_t t = p ? p->template_id : 0;
    pthread_mutex_unlock(&f->lock);
    return t;
}

size_t bdy_fleet_take_outdated(bdy_fleet *f, const char *ns, const char *pool, size_t keep,
                               bdy_world_ref *out, size_t max)
{
    size_t n = 0;
    world *chosen[OLDEST_CHUNK];
    if (max > OLDEST_CHUNK)
        max = OLDEST_CHUNK;
    pthread_mutex_lock(&f->lock);
    fleet_pool *p = find_pool(f, ns, pool);
    if (p != NULL && p->counts.outdated_ready > 0 && p->nwarm > keep) {
        if (max > p->nwarm - keep)
            max = p->nwarm - keep;
        /* The warm array holds every claimable world, these among them:
         * chosen first, since each one taken leaves it. */
        for (size_t i = 0; i < p->nwarm && n < max; i++)
            if (p->warm[i]->outdated)
                chosen[n++] = p->warm[i];
        for (size_t i = 0; i < n; i++)
            take_for_deletion(chosen[i], &out[i]);
    }
    pthread_mutex_unlock(&f->lock);
    return n;
}

size_t bdy_fleet_failed(bdy_fleet *f, const char *ns, const char *pool, bdy_world_ref *out,
                        size_t max, double *crash_ready_s, size_t *ncrashes)
{
    size_t n = 0;
    *ncrashes = 0;
    pthread_mutex_lock(&f->lock);
    fleet_pool *p = find_pool(f, ns, pool);
    if (p != NULL && p->counts.phase[BDY_PHASE_FAILED] > 0) {
        BDY_HMAP_FOREACH(&f->worlds, node)
        {
            world *w = (world *)node;
            /* A claim's world that failed before its status said Allocated
             * is the claim's to end (released, WorldExited): no crash of
             * the pool's stock to replace or back off from. */
            if (n < max && w->pool == p && w->phase == BDY_PHASE_FAILED && !w->deleting &&
                !w->held && !w->claiming) {
                fill_ref(w, &out[n++]);
                /* A world of an older template says nothing of the new
                 * one's (a manifest fixed while its worlds crashed). */
                if (!w->failure_listed && w->process != BDY_PROCESS_LOST && !w->failed_no_crash &&
                    !w->outdated)
                    crash_ready_s[(*ncrashes)++] = w->ready_for;
                w->failure_listed = true;
            }
        }
    }
    pthread_mutex_unlock(&f->lock);
    return n;
}

/* The cooldown of the pool w names, removed by a reload (its last spec is
 * kept), or def_s for a pool this run never had. Under f->lock. */
static double removed_pool_cooldown(const bdy_fleet *f, const world *w, double def_s)
{
    for (size_t i = 0; i < f->npools; i++) {
        const fleet_pool *p = f->pools[i];
        if (!p->present && w->pool_name != NULL && strcmp(p->spec.name, w->pool_name) == 0 &&
            strlen(p->spec.ns) == w->ns_len && strncmp(p->spec.ns, w->key, w->ns_len) == 0)
            return p->spec.scale_down_cooldown_s;
    }
    return def_s;
}

size_t bdy_fleet_orphans(bdy_fleet *f, double default_age_s, bdy_world_ref *out, size_t max)
{
    size_t n = 0;
    double now = monotonic_s();
    pthread_mutex_lock(&f->lock);
    if (f->norphans > 0) {
        BDY_HMAP_FOREACH(&f->worlds, node)
        {
            world *w = (world *)node;
            if (n < max && w->orphan_since != 0 && !w->deleting && !w->held && !w->claiming &&
                !w->reserved && !w->scaling_down && w->phase != BDY_PHASE_ALLOCATED &&
                w->phase != BDY_PHASE_TERMINATING &&
                now - w->orphan_since >= removed_pool_cooldown(f, w, default_age_s)) {
                /* Should its pool come back meanwhile, no claim gets it
                 * before the delete. */
                take_for_deletion(w, &out[n++]);
            }
        }
    }
    pthread_mutex_unlock(&f->lock);
    return n;
}

size_t bdy_fleet_reserved(bdy_fleet *f, bdy_world_ref *out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&f->lock);
    if (f->nreserved > 0) {
        BDY_HMAP_FOREACH(&f->worlds, node)
        {
            world *w = (world *)node;
            if (n < max && w->reserved && !w->deleting)
                fill_ref(w, &out[n++]);
        }
    }
    pthread_mutex_unlock(&f->lock);
    return n;
}
