/* The fleet: world records, the warm index, claims against it, counts,
 * scale-down candidates and pool sizing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bindery/pool.h"
#include "bindery/selector.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bdy_config_label arena_labels[] = {{"game", "arena"}};

static bdy_config_pool make_pool(const char *name, unsigned min_warm)
{
    bdy_config_pool p;
    memset(&p, 0, sizeof(p));
    p.name = (char *)name;
    p.ns = "default";
    p.manifest = "arena";
    p.min_warm = min_warm;
    p.max_warm = 50;
    p.max_worlds = 100;
    p.service_level = 0.99;
    p.creation_rate = 20;
    p.labels.items = arena_labels;
    p.labels.count = 1;
    return p;
}

static json_object *world(const char *name, const char *pool, const char *phase, int rv,
                          const char *map, bool deleting, bool cold)
{
    char buf[1024];
    snprintf(buf, sizeof(buf),
             "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"default\",\"resourceVersion\":\"%d\""
             ",\"labels\":{\"map\":\"%s\"}%s%s},\"spec\":{\"pool\":\"%s\"},"
             "\"status\":{\"phase\":\"%s\"}}",
             name, rv, map, deleting ? ",\"deletionTimestamp\":\"2026-01-01T00:00:00Z\"" : "",
             cold ? ",\"annotations\":{\"bindery.dev/cold-claim\":\"alc-1\"}" : "", pool, phase);
    json_object *o = json_tokener_parse(buf);
    assert_non_null(o);
    return o;
}

/* Reports o as the informer would; its process is not looked at yet. */
static void observe_unseen(bdy_fleet *f, json_object *o)
{
    char pool[BDY_NAME_MAX];
    bdy_fleet_observe(f, o, pool);
    json_object_put(o);
}

/* The same, then the world controller finds its process running, as it
 * does for every world of this run. */
static void observe(bdy_fleet *f, json_object *o)
{
    char name[BDY_NAME_MAX];
    snprintf(name, sizeof(name), "%s",
             json_object_get_string(
                 json_object_object_get(json_object_object_get(o, "metadata"), "name")));
    observe_unseen(f, o);
    bdy_fleet_process_seen(f, "default", name, BDY_PROCESS_LIVE);
}

static bdy_fleet *fleet_with_pools(void)
{
    bdy_fleet *f = NULL;
    assert_int_equal(bdy_fleet_new(&f), 0);
    bdy_config_pool pools[] = {make_pool("arena", 2), make_pool("duel", 1)};
    bdy_config_pools set = {pools, 2};
    assert_int_equal(bdy_fleet_set_pools(f, &set), 0);
    return f;
}

static void test_counts_and_warm_index(void **state)
{
    (void)state;
    bdy_fleet *f = fleet_with_pools();
    observe(f, world("a1", "arena", "Ready", 10, "dust", false, false));
    observe(f, world("a2", "arena", "Starting", 11, "dust", false, false));
    observe(f, world("a3", "arena", "Allocated", 12, "dust", false, false));
    observe(f, world("a4", "arena", "Ready", 13, "nuke", true, false));
    observe(f, world("a5", "arena", "Ready", 14, "nuke", false, true));
    observe(f, world("d1", "duel", "Ready", 15, "dust", false, false));
    bdy_pool_counts c;
    assert_int_equal(bdy_fleet_counts(f, "default", "arena", &c), 0);
    assert_int_equal(c.warm, 1); /* a1 only: a4 deleting, a5 reserved for a cold claim */
    assert_int_equal(c.phase[BDY_PHASE_READY], 2);
    assert_int_equal(c.phase[BDY_PHASE_STARTING], 1);
    assert_int_equal(c.phase[BDY_PHASE_ALLOCATED], 1);
    assert_int_equal(c.deleting, 1);
    assert_int_equal(c.total, 4);
    assert_int_equal(c.reserved, 1); /* a5: Ready, but no warm stock */
    assert_int_equal(bdy_fleet_counts(f, "default", "nope", &c), BDY_ENOTFOUND);
    bdy_world_ref held[4];
    assert_int_equal(bdy_fleet_reserved(f, held, 4), 1);
    assert_string_equal(held[0].name, "a5");
    /* The claim took it: no longer held. */
    observe(f, world("a5", "arena", "Allocated", 30, "nuke", false, true));
    assert_int_equal(bdy_fleet_reserved(f, held, 4), 0);
    assert_int_equal(bdy_fleet_counts(f, "default", "arena", &c), 0);
    assert_int_equal(c.reserved, 0);

    /* A phase change moves the world out of the index and the counts. */
    observe(f, world("a1", "arena", "Allocated", 20, "dust", false, false));
    assert_int_equal(bdy_fleet_counts(f, "default", "arena", &c), 0);
    assert_int_equal(c.warm, 0);
    assert_int_equal(c.phase[BDY_PHASE_ALLOCATED], 3); /* a1, a3, a5 */
    /* An older state than one seen is ignored. */
    observe(f, world("a1", "arena", "Ready", 19, "dust", false, false));
    assert_int_equal(bdy_fleet_counts(f, "default", "arena", &c), 0);
    assert_int_equal(c.warm, 0);
    char pool[BDY_NAME_MAX];
    bdy_fleet_forget(f, "default", "a3", pool);
    assert_string_equal(pool, "arena");
    assert_int_equal(bdy_fleet_counts(f, "default", "arena", &c), 0);
    assert_int_equal(c.phase[BDY_PHASE_ALLOCATED], 2);
    bdy_fleet_free(f);
}

static void test_claim_take_and_done(void **state)
{
    (void)state;
    bdy_fleet *f = fleet_with_pools();
    observe(f, world("a1", "arena", "Ready", 10, "dust", false, false));
    observe(f, world("a2", "arena", "Ready", 11, "nuke", false, false));
    bdy_world_ref r1;
    bdy_world_ref r2;
    bdy_world_ref r3;
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r1, NULL), 0);
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r2, NULL), 0);
    assert_string_not_equal(r1.name, r2.name); /* never the same world twice */
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r3, NULL), BDY_EBUSY);
    assert_int_equal(bdy_fleet_claim_take(f, "default", "nope", NULL, 0, &r3, NULL), BDY_ENOTFOUND);
    /* A failed attempt puts the world back; a conflict (stale) does not. */
    bdy_fleet_claim_done(f, &r1, false, false);
    bdy_fleet_claim_done(f, &r2, false, true);
    bdy_pool_counts c;
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.warm, 1);
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r3, NULL), 0);
    assert_string_equal(r3.name, r1.name);
    bdy_fleet_claim_done(f, &r3, true, false);
    bdy_world_seen seen;
    assert_int_equal(bdy_fleet_world_seen(f, "default", r3.name, &seen), 0);
    assert_true(seen.claimed); /* its status says Ready still */
    /* A claimed world is held: counted as allocated at once, and never warm
     * again, even when its status still says Ready at a newer state. */
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.phase[BDY_PHASE_READY], 1); /* r2 */
    assert_int_equal(c.phase[BDY_PHASE_ALLOCATED], 1);
    observe(f, world(r1.name, "arena", "Ready", 40, "dust", false, false));
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.warm, 0);
    assert_int_equal(c.phase[BDY_PHASE_ALLOCATED], 1);
    /* A stale world returns when the informer reports a newer state. */
    observe(f, world(r2.name, "arena", "Ready", (int)r2.resource_version, "nuke", false, false));
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.warm, 0);
    observe(f, world(r2.name, "arena", "Ready", 30, "nuke", false, false));
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.warm, 1);
    /* Once deleted and forgotten, the name is free again. */
    char pool[BDY_NAME_MAX];
    bdy_fleet_forget(f, "default", r1.name, pool);
    observe(f, world(r1.name, "arena", "Ready", 50, "dust", false, false));
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.warm, 2);
    bdy_fleet_free(f);
}

/* A world its controller fails (readiness probe) leaves the warm index
 * before its Failed status is written, so no claim gets a world about to be
 * stopped; a claimed or claiming one is kept by its claimant; a failed
 * status write puts it back, and a newer state settles it. */
static void test_fail_begin_keeps_claims_off(void **state)
{
    (void)state;
    bdy_fleet *f = fleet_with_pools();
    observe(f, world("a1", "arena", "Ready", 10, "dust", false, false));
    observe(f, world("a2", "arena", "Ready", 11, "nuke", false, false));
    assert_true(bdy_fleet_fail_begin(f, "default", "a1", 10));
    bdy_pool_counts c;
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.warm, 1);
    bdy_world_ref r;
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r, NULL), 0);
    assert_string_equal(r.name, "a2");
    /* Being claimed: its claimant keeps it. */
    assert_false(bdy_fleet_fail_begin(f, "default", "a2", 11));
    bdy_fleet_claim_done(f, &r, true, false);
    assert_false(bdy_fleet_fail_begin(f, "default", "a2", 11));
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r, NULL), BDY_EBUSY);
    /* The write failed: claimable again. */
    bdy_fleet_fail_undo(f, "default", "a1");
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r, NULL), 0);
    assert_string_equal(r.name, "a1");
    bdy_fleet_claim_done(f, &r, false, false);
    /* Failed again, and this time written: out until a newer state. The
     * write is conditioned on rv 11, which the informer has not reported
     * yet: its report is no newer state than the write's. */
    assert_true(bdy_fleet_fail_begin(f, "default", "a1", 11));
    observe(f, world("a1", "arena", "Ready", 10, "dust", false, false));
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r, NULL), BDY_EBUSY);
    observe(f, world("a1", "arena", "Ready", 11, "dust", false, false));
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r, NULL), BDY_EBUSY);
    observe(f, world("a1", "arena", "Failed", 12, "dust", false, false));
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.warm, 0);
    assert_int_equal(c.phase[BDY_PHASE_FAILED], 1);
    bdy_fleet_free(f);
}

/* An exit is final for a world's process (a late "running" does not make
 * it claimable), until its controller starts a new process for it and says
 * so (unknown), after which the new process running makes it warm. */
static void test_new_process_after_exit(void **state)
{
    (void)state;
    bdy_fleet *f = fleet_with_pools();
    observe(f, world("a1", "arena", "Ready", 10, "dust", false, false));
    bdy_fleet_process_seen(f, "default", "a1", BDY_PROCESS_EXITED);
    bdy_fleet_process_seen(f, "default", "a1", BDY_PROCESS_LIVE);
    bdy_pool_counts c;
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.warm, 0);
    bdy_fleet_process_seen(f, "default", "a1", BDY_PROCESS_UNKNOWN);
    bdy_fleet_process_seen(f, "default", "a1", BDY_PROCESS_LIVE);
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.warm, 1);
    bdy_fleet_free(f);
}

/* Claims recorded in the ledger hold their worlds from start-up on, before
 * the informer has listed them; another world under the same name is not
 * held. The answer's world part is prepared for Ready worlds. */
static void test_hold_from_ledger(void **state)
{
    (void)state;
    bdy_fleet *f = fleet_with_pools();
    assert_int_equal(bdy_fleet_hold(f, "default", "a1", "uid-a1"), 0);
    /* Held before the informer saw it: nothing seen yet. */
    bdy_world_seen seen;
    assert_int_equal(bdy_fleet_world_seen(f, "default", "a1", &seen), BDY_ENOTFOUND);
    assert_int_equal(bdy_fleet_world_seen(f, "default", "nope", &seen), BDY_ENOTFOUND);
    json_object *w1 = world("a1", "arena", "Ready", 10, "dust", false, false);
    json_object_object_add(json_object_object_get(w1, "metadata"), "uid",
                           json_object_new_string("uid-a1"));
    observe(f, w1);
    assert_int_equal(bdy_fleet_world_seen(f, "default", "a1", &seen), 0);
    assert_int_equal(seen.phase, BDY_PHASE_READY);
    assert_false(seen.deleting);
    assert_int_equal(seen.resource_version, 10);
    assert_string_equal(seen.uid, "uid-a1");
    json_object *w2 = world("a2", "arena", "Ready", 11, "dust", false, false);
    json_object_object_add(json_object_object_get(w2, "metadata"), "uid",
                           json_object_new_string("uid-a2"));
    json_object *st = json_object_object_get(w2, "status");
    json_object_object_add(st, "address", json_object_new_string("127.0.0.1"));
    observe(f, w2);
    bdy_pool_counts c;
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.warm, 1);
    assert_int_equal(c.phase[BDY_PHASE_ALLOCATED], 1);
    /* a2 is known under another uid: not held. */
    assert_int_equal(bdy_fleet_hold(f, "default", "a2", "uid-old"), 0);
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.warm, 1);
    bdy_world_ref r;
    bdy_buf aw;
    bdy_buf_init(&aw, 4096);
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r, &aw), 0);
    assert_string_equal(r.name, "a2");
    assert_string_equal(r.uid, "uid-a2");
    json_object *parsed = json_tokener_parse(aw.data);
    assert_non_null(parsed);
    assert_string_equal(json_object_get_string(json_object_object_get(parsed, "name")), "a2");
    assert_string_equal(json_object_get_string(json_object_object_get(parsed, "address")),
                        "127.0.0.1");
    assert_non_null(json_object_object_get(parsed, "labels"));
    json_object_put(parsed);
    bdy_buf_free(&aw);
    bdy_fleet_claim_done(f, &r, true, false);
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.warm, 0);
    assert_int_equal(c.phase[BDY_PHASE_ALLOCATED], 2);

    /* A claim whose world was never seen ends: its record goes (the
     * informer will never report that world deleted). A seen one stays. */
    assert_int_equal(bdy_fleet_hold(f, "default", "a9", "uid-a9"), 0);
    bdy_fleet_unhold_unseen(f, "default", "a9", "uid-other");
    bdy_fleet_unhold_unseen(f, "default", "a1", "uid-a1");
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.phase[BDY_PHASE_ALLOCATED], 2);
    json_object *w9 = world("a9", "arena", "Ready", 12, "dust", false, false);
    json_object_object_add(json_object_object_get(w9, "metadata"), "uid",
                           json_object_new_string("uid-a9"));
    observe(f, json_object_get(w9));
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.phase[BDY_PHASE_ALLOCATED], 3); /* still held: another uid asked */
    char pool[BDY_NAME_MAX];
    bdy_fleet_forget(f, "default", "a9", pool);
    assert_int_equal(bdy_fleet_hold(f, "default", "a9", "uid-a9"), 0);
    bdy_fleet_unhold_unseen(f, "default", "a9", "uid-a9");
    observe(f, w9);
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.phase[BDY_PHASE_ALLOCATED], 2);
    assert_int_equal(c.warm, 1); /* the record went with the claim */
    bdy_fleet_free(f);
}

static void test_selectors_in_preference_order(void **state)
{
    (void)state;
    bdy_fleet *f = fleet_with_pools();
    observe(f, world("a1", "arena", "Ready", 10, "dust", false, false));
    observe(f, world("a2", "arena", "Ready", 11, "nuke", false, false));
    observe(f, world("a3", "arena", "Ready", 12, "mirage", false, false));
    bdy_label_selector *sel[2] = {NULL, NULL};
    assert_int_equal(bdy_label_selector_parse("map=inferno", &sel[0], NULL), 0);
    assert_int_equal(bdy_label_selector_parse("map in (nuke,dust)", &sel[1], NULL), 0);
    bdy_world_ref r;
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", sel, 2, &r, NULL), 0);
    assert_true(strcmp(r.name, "a1") == 0 || strcmp(r.name, "a2") == 0);
    bdy_world_ref r2;
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", sel, 2, &r2, NULL), 0);
    assert_true(strcmp(r2.name, "a1") == 0 || strcmp(r2.name, "a2") == 0);
    assert_string_not_equal(r.name, r2.name);
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", sel, 2, &r2, NULL), BDY_EBUSY);
    /* The first selector wins when both match. */
    bdy_label_selector *pref[2] = {NULL, NULL};
    assert_int_equal(bdy_label_selector_parse("map=mirage", &pref[0], NULL), 0);
    assert_int_equal(bdy_label_selector_parse("game!=x", &pref[1], NULL), 0);
    observe(f, world("a4", "arena", "Ready", 13, "dust", false, false));
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", pref, 2, &r2, NULL), 0);
    assert_string_equal(r2.name, "a3");
    /* Labels too many to keep: no selector matches the world (NotIn and
     * DoesNotExist matched it as if it had none); a plain claim takes it. */
    json_object *big = world("a5", "arena", "Ready", 14, "dust", false, false);
    json_object *labels = json_object_object_get(json_object_object_get(big, "metadata"), "labels");
    for (int i = 0; i < 80; i++) {
        char k[96];
        snprintf(k, sizeof(k), "example.com/a-rather-long-label-key-number-%d", i);
        json_object_object_add(labels, k, json_object_new_string("some-value-of-forty-characters"));
    }
    bdy_fleet_claim_done(f, &r2, true, false);
    observe(f, big); /* a4 (dust) and a5 are warm */
    bdy_label_selector *unlike = NULL;
    assert_int_equal(bdy_label_selector_parse("map notin (dust)", &unlike, NULL), 0);
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", &unlike, 1, &r2, NULL), BDY_EBUSY);
    bdy_label_selector_free(unlike);
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r2, NULL), 0);
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r2, NULL), 0);
    for (int i = 0; i < 2; i++) {
        bdy_label_selector_free(sel[i]);
        bdy_label_selector_free(pref[i]);
    }
    bdy_fleet_free(f);
}

static void test_pools_reconfigured(void **state)
{
    (void)state;
    bdy_fleet *f = NULL;
    assert_int_equal(bdy_fleet_new(&f), 0);
    /* Worlds seen before their pool is configured join it when it is. */
    observe(f, world("a1", "arena", "Ready", 10, "dust", false, false));
    bdy_pool_counts c;
    assert_int_equal(bdy_fleet_counts(f, "default", "arena", &c), BDY_ENOTFOUND);
    bdy_config_pool pools[] = {make_pool("arena", 3)};
    bdy_config_pools set = {pools, 1};
    assert_int_equal(bdy_fleet_set_pools(f, &set), 0);
    assert_int_equal(bdy_fleet_counts(f, "default", "arena", &c), 0);
    assert_int_equal(c.warm, 1);
    bdy_config_pool spec;
    assert_int_equal(bdy_fleet_pool_spec(f, "default", "arena", &spec), 0);
    assert_int_equal(spec.min_warm, 3);
    assert_string_equal(spec.labels.items[0].key, "game");
    bdy_fleet_pool_spec_free(&spec);
    assert_int_equal(bdy_fleet_pool_count(f), 1);
    /* Removing the pool takes its worlds out of any warm index. */
    bdy_config_pools none = {NULL, 0};
    assert_int_equal(bdy_fleet_set_pools(f, &none), 0);
    assert_int_equal(bdy_fleet_pool_count(f), 0);
    bdy_world_ref r;
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r, NULL), BDY_ENOTFOUND);
    bdy_fleet_free(f);
}

/* A world as its pool made it: labelled with the pool's name. */
static json_object *pool_made(json_object *o, const char *pool)
{
    json_object *labels = json_object_object_get(json_object_object_get(o, "metadata"), "labels");
    json_object_object_add(labels, BDY_LABEL_POOL, json_object_new_string(pool));
    return o;
}

/* The worlds a removed pool made and nothing holds are its orphans, after
 * its cooldown; claimed ones, and worlds made by hand, never are. */
static void test_removed_pool_orphans(void **state)
{
    (void)state;
    bdy_fleet *f = fleet_with_pools(); /* arena and duel, cooldown 0 */
    observe(f, pool_made(world("a1", "arena", "Ready", 10, "dust", false, false), "arena"));
    observe(f, pool_made(world("a2", "arena", "Ready", 11, "dust", false, false), "arena"));
    observe(f, pool_made(world("a3", "arena", "Failed", 12, "dust", false, false), "arena"));
    observe(f, world("h1", "arena", "Starting", 13, "dust", false, false)); /* by hand */
    observe(f, pool_made(world("d1", "duel", "Ready", 14, "dust", false, false), "duel"));
    bdy_world_ref refs[8];
    assert_int_equal(bdy_fleet_orphans(f, 0, refs, 8), 0); /* all configured */
    bdy_world_ref claimed;
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &claimed, NULL), 0);
    bdy_fleet_claim_done(f, &claimed, true, false);

    bdy_config_pool only_duel[] = {make_pool("duel", 1)};
    bdy_config_pools set = {only_duel, 1};
    assert_int_equal(bdy_fleet_set_pools(f, &set), 0);
    size_t n = bdy_fleet_orphans(f, 3600, refs, 8); /* arena's own cooldown (0) applies */
    assert_int_equal(n, 2);                         /* the idle one and the Failed one */
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(refs[i].pool, "arena");
        assert_string_not_equal(refs[i].name, claimed.name);
        assert_string_not_equal(refs[i].name, "h1");
    }
    /* Taken until settled: listed once, and no claim gets the idle one
     * should its pool come back before the delete. */
    assert_int_equal(bdy_fleet_orphans(f, 0, refs + 2, 6), 0);
    bdy_config_pool both[] = {make_pool("arena", 2), make_pool("duel", 1)};
    bdy_config_pools again = {both, 2};
    assert_int_equal(bdy_fleet_set_pools(f, &again), 0);
    bdy_world_ref r;
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r, NULL), BDY_EBUSY);
    for (size_t i = 0; i < n; i++)
        bdy_fleet_scale_down_done(f, &refs[i], false); /* its delete lost a race */
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r, NULL), 0);
    bdy_fleet_claim_done(f, &r, false, false);
    /* Configured again: none. */
    assert_int_equal(bdy_fleet_orphans(f, 0, refs, 8), 0);
    /* A pool this run never had: the caller's age applies. */
    observe(f, pool_made(world("g1", "ghost", "Ready", 15, "dust", false, false), "ghost"));
    assert_int_equal(bdy_fleet_orphans(f, 3600, refs, 8), 0);
    assert_int_equal(bdy_fleet_orphans(f, 0, refs, 8), 1);
    assert_string_equal(refs[0].name, "g1");
    /* Gone from the store: gone from the count. */
    char pool[BDY_NAME_MAX];
    bdy_fleet_forget(f, "default", "g1", pool);
    assert_int_equal(bdy_fleet_orphans(f, 0, refs, 8), 0);
    bdy_fleet_free(f);
}

/* A world whose spec.pool is edited leaves its old pool's warm index, to
 * an unconfigured pool or to another configured one. */
static void test_world_moved_to_another_pool(void **state)
{
    (void)state;
    bdy_fleet *f = fleet_with_pools();
    observe(f, world("a1", "arena", "Ready", 10, "dust", false, false));
    observe(f, world("a2", "arena", "Ready", 11, "dust", false, false));
    observe(f, world("a1", "elsewhere", "Ready", 12, "dust", false, false));
    bdy_pool_counts c;
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.warm, 1);
    assert_int_equal(c.phase[BDY_PHASE_READY], 1);
    bdy_world_ref r;
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r, NULL), 0);
    assert_string_equal(r.name, "a2");
    bdy_fleet_claim_done(f, &r, true, false);
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r, NULL), BDY_EBUSY);
    /* Into another configured pool: its index gets it, arena's keeps none. */
    observe(f, world("a3", "arena", "Ready", 13, "dust", false, false));
    observe(f, world("d1", "duel", "Ready", 14, "dust", false, false));
    observe(f, world("a3", "duel", "Ready", 15, "dust", false, false));
    bdy_fleet_counts(f, "default", "duel", &c);
    assert_int_equal(c.warm, 2);
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r, NULL), BDY_EBUSY);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(bdy_fleet_claim_take(f, "default", "duel", NULL, 0, &r, NULL), 0);
        assert_true(strcmp(r.name, "a3") == 0 || strcmp(r.name, "d1") == 0);
        bdy_fleet_claim_done(f, &r, true, false);
    }
    char p[BDY_NAME_MAX];
    bdy_fleet_forget(f, "default", "a1", p);
    bdy_fleet_forget(f, "default", "a3", p);
    bdy_fleet_free(f);
}

/* Scale-down of a large pool picks the oldest in one pass, also when a
 * step is larger than one selection round and the warm array's order no
 * longer follows age (claims swap worlds out of it). */
static void test_scale_down_takes_oldest_of_many(void **state)
{
    (void)state;
    enum { WORLDS = 600 };
    bdy_fleet *f = fleet_with_pools();
    for (int i = 0; i < WORLDS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "w%03d", i); /* names sort as they age */
        observe(f, world(name, "arena", "Ready", 10 + i, "dust", false, false));
    }
    static bdy_world_ref refs[WORLDS];
    assert_int_equal(bdy_fleet_take_idle_oldest(f, "default", "arena", 0, 0, refs, 10), 10);
    for (int i = 0; i < 10; i++) {
        char name[16];
        snprintf(name, sizeof(name), "w%03d", i);
        assert_string_equal(refs[i].name, name);
    }
    int claimed = 0;
    for (; claimed < 5; claimed++) {
        bdy_world_ref r;
        assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r, NULL), 0);
        bdy_fleet_claim_done(f, &r, true, false);
    }
    /* 585 warm; keep 100: 485 go, in two rounds, oldest first. */
    size_t n = bdy_fleet_take_idle_oldest(f, "default", "arena", 0, 100, refs, WORLDS);
    assert_int_equal(n, WORLDS - 10 - claimed - 100);
    for (size_t i = 1; i < n; i++)
        assert_true(strcmp(refs[i - 1].name, refs[i].name) < 0);
    bdy_pool_counts c;
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.warm, 100);
    /* What is left is the youngest: none of them is older than a taken one. */
    for (int i = 0; i < 100; i++) {
        bdy_world_ref r;
        assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r, NULL), 0);
        assert_true(strcmp(r.name, refs[n - 1].name) > 0);
        bdy_fleet_claim_done(f, &r, true, false);
    }
    bdy_fleet_free(f);
}

static void test_scale_down_candidates_and_failed(void **state)
{
    (void)state;
    bdy_fleet *f = fleet_with_pools();
    observe(f, world("a1", "arena", "Ready", 10, "dust", false, false));
    observe(f, world("a2", "arena", "Ready", 11, "dust", false, false));
    observe(f, world("a3", "arena", "Allocated", 12, "dust", false, false));
    observe(f, world("a4", "arena", "Failed", 13, "dust", false, false));
    bdy_world_ref refs[8];
    assert_int_equal(bdy_fleet_take_idle_oldest(f, "default", "arena", 3600, 0, refs, 8), 0);
    /* Never fewer than keep left claimable. */
    assert_int_equal(bdy_fleet_take_idle_oldest(f, "default", "arena", 0, 2, refs, 8), 0);
    assert_int_equal(bdy_fleet_take_idle_oldest(f, "default", "arena", 0, 1, refs, 8), 1);
    assert_string_equal(refs[0].name, "a1");
    bdy_fleet_scale_down_done(f, &refs[0], false); /* put back */
    size_t n = bdy_fleet_take_idle_oldest(f, "default", "arena", 0, 0, refs, 8);
    assert_int_equal(n, 2);                  /* never the allocated one */
    assert_string_equal(refs[0].name, "a1"); /* oldest first */
    /* Taken: no claim gets a world being scaled down, nor a second take;
     * and they count as deleting, so a second pass finds no surplus. */
    bdy_world_ref r;
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r, NULL), BDY_EBUSY);
    assert_int_equal(bdy_fleet_take_idle_oldest(f, "default", "arena", 0, 0, refs + 2, 6), 0);
    bdy_pool_counts c;
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.phase[BDY_PHASE_READY], 0);
    assert_int_equal(c.deleting, 2);
    assert_int_equal(c.total, 4); /* their room is kept until the deletes are seen */
    /* a1's delete went through: out until the informer says so; a2's
     * failed: back in the index and the counts. */
    bdy_fleet_scale_down_done(f, &refs[0], true);
    bdy_fleet_scale_down_done(f, &refs[1], false);
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.phase[BDY_PHASE_READY], 1);
    assert_int_equal(c.deleting, 1);
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r, NULL), 0);
    assert_string_equal(r.name, "a2");
    bdy_fleet_claim_done(f, &r, false, false);
    observe(f, world("a1", "arena", "Ready", 20, "dust", true, false));
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.deleting, 1); /* now by its deletionTimestamp */
    assert_int_equal(bdy_fleet_take_idle_oldest(f, "default", "arena", 0, 0, refs, 8), 1);
    assert_string_equal(refs[0].name, "a2");
    /* Its delete lost to a newer state the informer has reported already:
     * settled by that report, not by the put-back. */
    observe(f, world("a2", "arena", "Ready", 21, "dust", false, false));
    bdy_fleet_scale_down_done(f, &refs[0], false);
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.phase[BDY_PHASE_READY], 1);
    assert_int_equal(c.deleting, 1);
    size_t first = 0;
    double ready_s[8];
    n = bdy_fleet_failed(f, "default", "arena", refs, 8, ready_s, &first);
    assert_int_equal(n, 1);
    assert_int_equal(first, 1);
    assert_true(ready_s[0] == 0); /* never seen Ready */
    assert_string_equal(refs[0].name, "a4");
    /* Listed again until its deletion is seen, but a failure only once. */
    observe(f, world("a5", "arena", "Failed", 14, "dust", false, false));
    n = bdy_fleet_failed(f, "default", "arena", refs, 8, ready_s, &first);
    assert_int_equal(n, 2);
    assert_int_equal(first, 1);
    observe(f, world("a4", "arena", "Failed", 15, "dust", true, false));
    n = bdy_fleet_failed(f, "default", "arena", refs, 8, ready_s, &first);
    assert_int_equal(n, 1);
    assert_int_equal(first, 0);
    assert_string_equal(refs[0].name, "a5");
    bdy_fleet_free(f);
}

/* A claimed world whose process exits before its status says Allocated is
 * failed by its controller: the claim ends it, so the pool neither deletes
 * it nor counts it towards the crash backoff; one being claimed neither. */
static void test_failed_claimed_world_is_the_claims(void **state)
{
    (void)state;
    bdy_fleet *f = fleet_with_pools();
    observe(f, world("a1", "arena", "Ready", 10, "dust", false, false));
    observe(f, world("a2", "arena", "Ready", 11, "dust", false, false));
    bdy_world_ref held;
    bdy_world_ref taking;
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &held, NULL), 0);
    bdy_fleet_claim_done(f, &held, true, false);
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &taking, NULL), 0);
    observe(f, world(held.name, "arena", "Failed", 20, "dust", false, false));
    observe(f, world(taking.name, "arena", "Failed", 21, "dust", false, false));
    bdy_world_ref refs[4];
    size_t first = 0;
    double ready_s[8];
    assert_int_equal(bdy_fleet_failed(f, "default", "arena", refs, 4, ready_s, &first), 0);
    assert_int_equal(first, 0);
    /* The claim being made failed: the world is the pool's again. */
    bdy_fleet_claim_done(f, &taking, false, false);
    assert_int_equal(bdy_fleet_failed(f, "default", "arena", refs, 4, ready_s, &first), 1);
    assert_string_equal(refs[0].name, taking.name);
    assert_int_equal(first, 1);
    /* It was Ready from its first report to its failure: not long. */
    assert_true(ready_s[0] > 0 && ready_s[0] < 60);
    bdy_fleet_free(f);
}

/* o labelled as made from template hex (16 hex digits, or any text). */
static json_object *made_from(json_object *o, const char *hex)
{
    json_object *labels = json_object_object_get(json_object_object_get(o, "metadata"), "labels");
    json_object_object_add(labels, BDY_LABEL_TEMPLATE, json_object_new_string(hex));
    return o;
}

#define T1 "00000000000000a1"
#define T2 "00000000000000b2"

/* Worlds of another template than the pool's are outdated (those of none
 * are not): no warm stock, taken for replacement once Ready and as long as
 * enough claimable worlds are left, never one held by a claim or reserved
 * for a cold one; claimable until taken. */
static void test_outdated_worlds(void **state)
{
    (void)state;
    bdy_fleet *f = fleet_with_pools();
    assert_int_equal(bdy_fleet_template(f, "default", "arena"), 0);
    observe(f, made_from(world("a1", "arena", "Ready", 10, "dust", false, false), T1));
    observe(f, made_from(world("a2", "arena", "Ready", 11, "dust", false, false), T1));
    observe(f, made_from(world("a3", "arena", "Starting", 12, "dust", false, false), T1));
    observe(f, made_from(world("a4", "arena", "Allocated", 13, "dust", false, false), T1));
    observe(f, made_from(world("a5", "arena", "Ready", 14, "dust", false, true), T1));
    observe(f, made_from(world("a6", "arena", "Ready", 15, "dust", false, false), T1));
    observe(f, world("a7", "arena", "Ready", 16, "dust", false, false)); /* no label */
    observe(f, made_from(world("a9", "arena", "Ready", 19, "dust", false, false), "not-hex"));
    observe(f, made_from(world("d1", "duel", "Ready", 17, "dust", false, false), T1));
    bdy_pool_counts c;
    bdy_world_ref refs[8];
    /* No template known: nothing is outdated. */
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.outdated, 0);
    assert_int_equal(bdy_fleet_take_outdated(f, "default", "arena", 0, refs, 8), 0);

    bdy_fleet_set_template(f, "default", "arena", 0xa1);
    assert_int_equal(bdy_fleet_template(f, "default", "arena"), 0xa1);
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.outdated, 0); /* worlds without one are not: they get the pool's */
    assert_true(c.template_proven);  /* a1 is Ready */

    bdy_fleet_set_template(f, "default", "arena", 0xb2);
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.outdated, 4); /* a1 a2 a3 a6: not a4 (claimed), a5 (cold), a7 a9 */
    assert_int_equal(c.outdated_ready, 3);
    assert_int_equal(c.warm, 5); /* still claimable meanwhile: a1 a2 a6 a7 a9 */
    assert_false(c.template_proven);
    bdy_pool_counts d;
    bdy_fleet_counts(f, "default", "duel", &d);
    assert_int_equal(d.outdated, 0); /* another pool's template is its own */

    /* A new world of the pool's template, Starting, then Ready; another
     * that failed. */
    observe(f, made_from(world("a8", "arena", "Starting", 18, "dust", false, false), T2));
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_false(c.template_proven);
    assert_false(c.template_failed);
    observe(f, made_from(world("a10", "arena", "Failed", 21, "dust", false, false), T2));
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_true(c.template_failed);
    /* Only a failure of the pool's template feeds its crash backoff: one
     * of an older template says nothing of the new one. */
    observe(f, made_from(world("a11", "arena", "Failed", 22, "dust", false, false), T1));
    size_t crashes = 0;
    double ready_s[8];
    assert_int_equal(bdy_fleet_failed(f, "default", "arena", refs, 8, ready_s, &crashes), 2);
    assert_int_equal(crashes, 1);
    observe(f, made_from(world("a8", "arena", "Ready", 20, "dust", false, false), T2));
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.outdated, 4);
    assert_true(c.template_proven);

    /* Claimable Ready ones only, never fewer than keep claimable left:
     * 6 claimable, keep 4, so two of a1 a2 a6; never a3 (not Ready yet),
     * a4, a5, a7, a8 or a9. */
    size_t n = bdy_fleet_take_outdated(f, "default", "arena", 4, refs, 8);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++)
        assert_true(strcmp(refs[i].name, "a1") == 0 || strcmp(refs[i].name, "a2") == 0 ||
                    strcmp(refs[i].name, "a6") == 0);
    assert_int_equal(bdy_fleet_take_outdated(f, "default", "arena", 4, refs + 2, 6), 0);
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.outdated, 2);
    assert_int_equal(c.outdated_ready, 1);
    assert_int_equal(c.deleting, 2);
    assert_int_equal(c.warm, 4);
    /* A delete that failed puts its world back, outdated still. */
    for (size_t i = 0; i < n; i++)
        bdy_fleet_scale_down_done(f, &refs[i], false);
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.outdated, 4);
    assert_int_equal(c.deleting, 0);

    /* A world being claimed is not taken; once claimed it is the claim's. */
    bdy_world_ref claimed;
    bool outdated_one = false;
    while (!outdated_one) {
        assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &claimed, NULL), 0);
        outdated_one = strcmp(claimed.name, "a1") == 0 || strcmp(claimed.name, "a2") == 0 ||
                       strcmp(claimed.name, "a6") == 0;
        if (!outdated_one)
            bdy_fleet_claim_done(f, &claimed, true, false);
    }
    n = bdy_fleet_take_outdated(f, "default", "arena", 0, refs, 8);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++)
        assert_string_not_equal(refs[i].name, claimed.name);
    bdy_fleet_claim_done(f, &claimed, true, false);
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.outdated, 1); /* a3, until it is Ready */
    assert_int_equal(c.outdated_ready, 0);
    assert_int_equal(bdy_fleet_take_outdated(f, "default", "arena", 0, refs, 8), 0);
    observe(f, made_from(world("a3", "arena", "Ready", 30, "dust", false, false), T1));
    assert_int_equal(bdy_fleet_take_outdated(f, "default", "arena", 0, refs, 8), 1);
    assert_string_equal(refs[0].name, "a3");

    /* Template unknown again: nothing is outdated, taken ones stay taken. */
    bdy_fleet_set_template(f, "default", "arena", 0);
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.outdated, 0);
    assert_int_equal(c.deleting, 3);
    bdy_fleet_free(f);
}

/* The template digest: the source's identity and generation and the pool's
 * labels, in any order. */
static void test_pool_template(void **state)
{
    (void)state;
    bdy_config_pool p = make_pool("arena", 1);
    json_object *src = json_tokener_parse("{\"metadata\":{\"uid\":\"u-1\",\"generation\":1}}");
    uint64_t t = bdy_pool_template(&p, src, NULL, 0, NULL);
    assert_true(t != 0);
    assert_true(bdy_pool_template(&p, src, NULL, 0, NULL) == t);
    /* What its capabilities are bound to: none is no change (a pool
     * without capabilities keeps its template), another value another. */
    assert_true(bdy_pool_template(&p, src, NULL, 0, "") == t);
    uint64_t bound = bdy_pool_template(&p, src, NULL, 0, "0f1e");
    assert_true(bound != t && bound != 0);
    assert_true(bdy_pool_template(&p, src, NULL, 0, "0f1e") == bound);
    assert_true(bdy_pool_template(&p, src, NULL, 0, "0f1f") != bound);
    /* Labels reordered: the same; another value: another. */
    bdy_config_label two[] = {{"game", "arena"}, {"tier", "gold"}};
    bdy_config_label two_swapped[] = {{"tier", "gold"}, {"game", "arena"}};
    p.labels.items = two;
    p.labels.count = 2;
    uint64_t t2 = bdy_pool_template(&p, src, NULL, 0, NULL);
    assert_true(t2 != t);
    p.labels.items = two_swapped;
    assert_true(bdy_pool_template(&p, src, NULL, 0, NULL) == t2);
    two_swapped[0].value = "silver";
    assert_true(bdy_pool_template(&p, src, NULL, 0, NULL) != t2);
    p.labels.items = arena_labels;
    p.labels.count = 1;
    /* An edit of the source's spec (its generation), or a new source of
     * the same name (its uid), or another source: another template. */
    json_object *gen2 = json_tokener_parse("{\"metadata\":{\"uid\":\"u-1\",\"generation\":2}}");
    json_object *uid2 = json_tokener_parse("{\"metadata\":{\"uid\":\"u-2\",\"generation\":1}}");
    assert_true(bdy_pool_template(&p, gen2, NULL, 0, NULL) != t);
    assert_true(bdy_pool_template(&p, uid2, NULL, 0, NULL) != t);
    p.manifest = "arena-v2";
    assert_true(bdy_pool_template(&p, src, NULL, 0, NULL) != t);
    p.manifest = NULL;
    p.booklet = "arena";
    assert_true(bdy_pool_template(&p, src, NULL, 0, NULL) != t);
    /* A source not stored yet (no uid) gives none. */
    json_object *bare = json_tokener_parse("{\"metadata\":{\"generation\":1}}");
    assert_true(bdy_pool_template(&p, bare, NULL, 0, NULL) == 0);
    /* A new world carries it as 16 hex digits. */
    p.manifest = "arena";
    p.booklet = NULL;
    json_object *w = bdy_pool_new_world(&p, "arena-x", NULL, 0xa1);
    json_object *labels = json_object_object_get(json_object_object_get(w, "metadata"), "labels");
    assert_string_equal(json_object_get_string(json_object_object_get(labels, BDY_LABEL_TEMPLATE)),
                        T1);
    json_object_put(w);
    w = bdy_pool_new_world(&p, "arena-y", NULL, 0);
    labels = json_object_object_get(json_object_object_get(w, "metadata"), "labels");
    assert_null(json_object_object_get(labels, BDY_LABEL_TEMPLATE));
    json_object_put(w);
    json_object_put(src);
    json_object_put(gen2);
    json_object_put(uid2);
    json_object_put(bare);
}

static json_object *with_uid(json_object *o, const char *uid)
{
    json_object_object_add(json_object_object_get(o, "metadata"), "uid",
                           json_object_new_string(uid));
    return o;
}

/* A world deleted and made again under the same name while a claim of the
 * first was being made durable: the claim's end does not hold the new
 * world (nothing would ever release it), and the new world is claimable
 * once the claim ends; an ending of the first world's process does not
 * outlive it either. */
static void test_claim_of_a_world_made_again(void **state)
{
    (void)state;
    bdy_fleet *f = fleet_with_pools();
    observe(f, with_uid(world("a1", "arena", "Ready", 10, "dust", false, false), "uid-old"));
    bdy_world_ref r;
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r, NULL), 0);
    assert_string_equal(r.uid, "uid-old");
    observe(f, with_uid(world("a1", "arena", "Ready", 20, "dust", false, false), "uid-new"));
    bdy_pool_counts c;
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.warm, 0); /* claiming: no second claim meanwhile */
    bdy_fleet_claim_done(f, &r, true, false);
    bdy_world_seen seen;
    assert_int_equal(bdy_fleet_world_seen(f, "default", "a1", &seen), 0);
    assert_false(seen.claimed);
    bdy_fleet_process_seen(f, "default", "a1", BDY_PROCESS_LIVE);
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.phase[BDY_PHASE_ALLOCATED], 0);
    assert_int_equal(c.warm, 1);
    /* A process over (a module of a booklet world exited) is over for
     * good, and for that world alone. */
    bdy_fleet_process_seen(f, "default", "a1", BDY_PROCESS_ENDING);
    bdy_fleet_process_seen(f, "default", "a1", BDY_PROCESS_LIVE);
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.warm, 0);
    observe(f, with_uid(world("a1", "arena", "Ready", 30, "dust", false, false), "uid-third"));
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.warm, 1);
    bdy_fleet_free(f);
}

/* After a restart a Ready status only says the world was Ready before:
 * it is claimable once its process is found running, never after it
 * exited; and a world lost during the downtime is no crash. */
static void test_claimable_once_process_seen(void **state)
{
    (void)state;
    bdy_fleet *f = fleet_with_pools();
    observe_unseen(f, world("a1", "arena", "Ready", 10, "dust", false, false));
    observe_unseen(f, world("a2", "arena", "Ready", 11, "dust", false, false));
    bdy_pool_counts c;
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.phase[BDY_PHASE_READY], 2); /* stock all the same: no extra worlds made */
    assert_int_equal(c.warm, 0);
    assert_int_equal(c.unchecked, 2); /* claims are told to come back, no miss */
    bdy_world_ref r;
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r, NULL), BDY_EBUSY);
    bdy_world_ref refs[4];
    assert_int_equal(bdy_fleet_take_idle_oldest(f, "default", "arena", 0, 0, refs, 4), 0);

    bdy_fleet_process_seen(f, "default", "a1", BDY_PROCESS_LIVE);
    bdy_fleet_process_seen(f, "default", "nobody", BDY_PROCESS_LIVE); /* unknown: ignored */
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.warm, 1);
    assert_int_equal(c.unchecked, 1);
    /* A newer state of the same world keeps what was found. */
    observe_unseen(f, world("a1", "arena", "Ready", 12, "dust", false, false));
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.warm, 1);
    /* What the world controller sees of a claim before the status does. */
    bdy_world_seen seen;
    assert_int_equal(bdy_fleet_world_seen(f, "default", "a1", &seen), 0);
    assert_false(seen.claimed);
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r, NULL), 0);
    assert_string_equal(r.name, "a1");
    assert_int_equal(bdy_fleet_world_seen(f, "default", "a1", &seen), 0);
    assert_true(seen.claimed); /* being made durable */
    assert_int_equal(seen.phase, BDY_PHASE_READY);
    bdy_fleet_claim_done(f, &r, false, false);
    assert_int_equal(bdy_fleet_world_seen(f, "default", "a1", &seen), 0);
    assert_false(seen.claimed); /* the claim failed: warm again */
    /* Its process exits: out at once, before its Failed status; a pass
     * that found it running just before cannot put it back. */
    assert_int_equal(seen.process, BDY_PROCESS_LIVE);
    bdy_fleet_process_seen(f, "default", "a1", BDY_PROCESS_EXITED);
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r, NULL), BDY_EBUSY);
    bdy_fleet_process_seen(f, "default", "a1", BDY_PROCESS_LIVE);
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r, NULL), BDY_EBUSY);
    /* A cold claim, which reads the stored phase, asks the same question. */
    assert_int_equal(bdy_fleet_world_seen(f, "default", "a1", &seen), 0);
    assert_int_equal(seen.process, BDY_PROCESS_EXITED);

    /* a2 was lost during the downtime, a1 crashed: one failure to count. */
    bdy_fleet_process_seen(f, "default", "a2", BDY_PROCESS_LOST);
    observe_unseen(f, world("a1", "arena", "Failed", 13, "dust", false, false));
    observe_unseen(f, world("a2", "arena", "Failed", 14, "dust", false, false));
    size_t first = 0;
    double ready_s[8];
    assert_int_equal(bdy_fleet_failed(f, "default", "arena", refs, 4, ready_s, &first), 2);
    assert_int_equal(first, 1);
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.unchecked, 0);
    /* Failed as Lost by an earlier run (still no crash after a restart),
     * or as its manifest changed its ports while it started (a rollout):
     * no crash to back off from. */
    static const char *const no_crash[] = {"Lost", "ManifestChanged"};
    for (size_t i = 0; i < 2; i++) {
        char name[8];
        snprintf(name, sizeof(name), "a%zu", 4 + i);
        json_object *failed = world(name, "arena", "Failed", 20 + (int)i, "dust", false, false);
        json_object_object_add(json_object_object_get(failed, "status"), "reason",
                               json_object_new_string(no_crash[i]));
        observe_unseen(f, failed);
        assert_int_equal(bdy_fleet_failed(f, "default", "arena", refs, 4, ready_s, &first), 3 + i);
        assert_int_equal(first, 0);
    }

    /* A new world under an old name is looked at afresh. */
    observe_unseen(f, with_uid(world("a3", "arena", "Ready", 15, "dust", false, false), "uid-1"));
    bdy_fleet_process_seen(f, "default", "a3", BDY_PROCESS_LIVE);
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.warm, 1);
    observe_unseen(f, with_uid(world("a3", "arena", "Ready", 16, "dust", false, false), "uid-2"));
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.warm, 0);
    bdy_fleet_free(f);
}

static void test_many_worlds_claim_is_constant_time(void **state)
{
    (void)state;
    bdy_fleet *f = fleet_with_pools();
    char name[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(name, sizeof(name), "w%d", i);
        observe(f, world(name, "arena", "Ready", 100 + i, "dust", false, false));
    }
    bdy_pool_counts c;
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.warm, 20000);
    /* Every world is handed out exactly once. */
    char *seen = calloc(20000, 1);
    bdy_world_ref r;
    for (int i = 0; i < 20000; i++) {
        assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r, NULL), 0);
        int idx = atoi(r.name + 1);
        assert_int_equal(seen[idx], 0);
        seen[idx] = 1;
        bdy_fleet_claim_done(f, &r, true, false);
    }
    assert_int_equal(bdy_fleet_claim_take(f, "default", "arena", NULL, 0, &r, NULL), BDY_EBUSY);
    free(seen);
    bdy_fleet_free(f);
}

/* Room granted to a creator stays taken until the informer reports the
 * world, so creators acting on the same counts cannot pass maxWorlds. */
static void test_creations_hold_room_until_seen(void **state)
{
    (void)state;
    bdy_fleet *f = NULL;
    assert_int_equal(bdy_fleet_new(&f), 0);
    bdy_config_pool pool = make_pool("arena", 2);
    pool.max_worlds = 4;
    bdy_config_pools set = {&pool, 1};
    assert_int_equal(bdy_fleet_set_pools(f, &set), 0);
    observe(f, world("a1", "arena", "Allocated", 10, "dust", false, false));
    observe(f, world("a2", "arena", "Allocated", 11, "dust", false, false));
    observe(f, world("a3", "arena", "Allocated", 12, "dust", false, false));

    char n1[BDY_NAME_MAX], n2[BDY_NAME_MAX], n3[BDY_NAME_MAX];
    double before = bdy_wall_seconds();
    assert_true(bdy_fleet_creation_grant(f, "default", "arena", n1));
    double after = bdy_wall_seconds();
    assert_int_equal(strncmp(n1, "arena-", 6), 0);
    assert_int_equal(strlen(n1), 11);
    bdy_pool_counts c;
    assert_int_equal(bdy_fleet_counts(f, "default", "arena", &c), 0);
    assert_int_equal(c.creating, 1);
    assert_int_equal(c.total, 4);
    /* A second creator on the same counts, before anything is created. */
    assert_false(bdy_fleet_creation_grant(f, "default", "arena", n2));
    assert_string_equal(n2, "");
    bdy_fleet_creation_done(f, "default", "arena", n1, true);
    assert_false(bdy_fleet_creation_grant(f, "default", "arena", n2));
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.creating, 1);
    /* Seen: it counts as a world now, not twice. */
    observe(f, world(n1, "arena", "Pending", 13, "dust", false, false));
    /* It knows when it was made, finer than creationTimestamp's seconds;
     * a world it did not make, not. */
    bdy_world_seen seen;
    assert_int_equal(bdy_fleet_world_seen(f, "default", n1, &seen), 0);
    assert_true(seen.created_at >= before && seen.created_at <= after);
    assert_int_equal(bdy_fleet_world_seen(f, "default", "a3", &seen), 0);
    assert_true(seen.created_at == 0);
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.creating, 0);
    assert_int_equal(c.phase[BDY_PHASE_PENDING], 1);
    assert_int_equal(c.total, 4);
    assert_false(bdy_fleet_creation_grant(f, "default", "arena", n2));

    /* A failed create gives its room back. */
    char p[BDY_NAME_MAX];
    bdy_fleet_forget(f, "default", "a1", p);
    assert_true(bdy_fleet_creation_grant(f, "default", "arena", n2));
    assert_string_not_equal(n2, n1);
    bdy_fleet_creation_done(f, "default", "arena", n2, false);
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.creating, 0);
    assert_int_equal(c.total, 3);
    /* The informer may report the world before its creator returns: it is
     * counted once all along, so the room it left is there at once. */
    assert_true(bdy_fleet_creation_grant(f, "default", "arena", n2));
    bdy_fleet_forget(f, "default", "a2", p);
    observe(f, world(n2, "arena", "Pending", 14, "dust", false, false));
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.creating, 0);
    assert_int_equal(c.total, 3);
    assert_true(bdy_fleet_creation_grant(f, "default", "arena", n3));
    bdy_fleet_creation_done(f, "default", "arena", n2, true); /* its slot went: no-op */
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.creating, 1);
    assert_int_equal(c.total, 4);
    bdy_fleet_creation_done(f, "default", "arena", n3, false);
    /* Deleting worlds leave room; unknown pools get none. */
    observe(f, world(n2, "arena", "Pending", 15, "dust", true, false));
    assert_true(bdy_fleet_creation_grant(f, "default", "arena", n3));
    bdy_fleet_creation_done(f, "default", "arena", n3, false);
    assert_false(bdy_fleet_creation_grant(f, "default", "nope", n3));

    /* A pool removed by a reload drops its slots: configured again, it
     * starts from the worlds it has. */
    assert_true(bdy_fleet_creation_grant(f, "default", "arena", n3));
    bdy_config_pools none = {NULL, 0};
    assert_int_equal(bdy_fleet_set_pools(f, &none), 0);
    bdy_fleet_creation_done(f, "default", "arena", n3, true); /* finds no pool: no-op */
    assert_int_equal(bdy_fleet_set_pools(f, &set), 0);
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.creating, 0);
    bdy_fleet_free(f);
}

/* A granted name is none the fleet knows, worlds or other slots. */
static void test_creation_names_are_fresh(void **state)
{
    (void)state;
    bdy_fleet *f = NULL;
    assert_int_equal(bdy_fleet_new(&f), 0);
    bdy_config_pool pool = make_pool("arena", 2);
    pool.max_worlds = 300;
    bdy_config_pools set = {&pool, 1};
    assert_int_equal(bdy_fleet_set_pools(f, &set), 0);
    static char names[200][BDY_NAME_MAX];
    for (size_t i = 0; i < 200; i++) {
        assert_true(bdy_fleet_creation_grant(f, "default", "arena", names[i]));
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(names[i], names[j]);
        if (i % 2 == 0) /* half are seen, half still held */
            observe(f, world(names[i], "arena", "Pending", (int)i + 1, "dust", false, false));
    }
    bdy_pool_counts c;
    bdy_fleet_counts(f, "default", "arena", &c);
    assert_int_equal(c.creating, 100);
    assert_int_equal(c.total, 200);
    bdy_fleet_free(f);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* Enough names that unchecked random suffixes (27^5 of them) would repeat:
 * 30,000 draws give about 31 repeats by the birthday bound, so a check that
 * does not work fails here all but certainly. Each name is seen as a world
 * before the next grant, so it is the world records that must rule it out. */
static void test_creation_names_avoid_known_worlds(void **state)
{
    (void)state;
    enum { N = 30000 };
    bdy_fleet *f = NULL;
    assert_int_equal(bdy_fleet_new(&f), 0);
    bdy_config_pool pool = make_pool("arena", 2);
    pool.max_worlds = N + 1;
    bdy_config_pools set = {&pool, 1};
    assert_int_equal(bdy_fleet_set_pools(f, &set), 0);
    char(*names)[BDY_NAME_MAX] = calloc(N, BDY_NAME_MAX);
    assert_non_null(names);
    for (int i = 0; i < N; i++) {
        assert_true(bdy_fleet_creation_grant(f, "default", "arena", names[i]));
        observe(f, world(names[i], "arena", "Pending", i + 1, "dust", false, false));
    }
    qsort(names, N, BDY_NAME_MAX, name_cmp);
    int repeats = 0;
    for (int i = 1; i < N; i++)
        repeats += strcmp(names[i - 1], names[i]) == 0;
    assert_int_equal(repeats, 0);
    free(names);
    bdy_fleet_free(f);
}

static void test_sizing_clamps(void **state)
{
    (void)state;
    bdy_config_pool p = make_pool("arena", 5);
    assert_int_equal(bdy_pool_target_warm(&p, NULL, 0, NULL), 5);
    p.max_warm = 3;
    assert_int_equal(bdy_pool_target_warm(&p, NULL, 0, NULL), 3);
    p.max_warm = 50;
    p.max_worlds = 2;
    assert_int_equal(bdy_pool_target_warm(&p, NULL, 0, NULL), 2);
    assert_string_equal(bdy_phase_name(BDY_PHASE_TERMINATING), "Terminating");
    bdy_phase ph;
    assert_int_equal(bdy_phase_parse("", &ph), 0);
    assert_int_equal(ph, BDY_PHASE_PENDING);
    assert_int_equal(bdy_phase_parse("Sleeping", &ph), BDY_EINVAL);
}

/* Whether the listing's selector for phase p picks world (JSON text). */
static bool phase_picks(bdy_phase p, const char *world)
{
    char text[256];
    assert_int_equal(bdy_phase_selector(p, text, sizeof(text)), 0);
    static const char *const allowed[] = {"status.phase", NULL};
    bdy_field_selector *sel = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    if (bdy_field_selector_parse(text, allowed, &sel, &eb) != 0)
        fail_msg("%s: %s", text, eb.message);
    json_object *w = json_tokener_parse(world);
    assert_non_null(w);
    bool picked = bdy_field_selector_matches(sel, w);
    json_object_put(w);
    bdy_field_selector_free(sel);
    return picked;
}

/* GET /v1/worlds?phase=Pending lists the worlds it shows as Pending: those
 * no controller has written a phase for too (a backlog of new worlds),
 * which "status.phase=Pending" missed. */
static void test_phase_selector(void **state)
{
    (void)state;
    const char *fresh = "{\"metadata\":{\"name\":\"w\"}}";
    const char *waiting = "{\"status\":{\"phase\":\"Pending\",\"reason\":\"CapabilityUnbound\"}}";
    const char *ready = "{\"status\":{\"phase\":\"Ready\"}}";
    assert_true(phase_picks(BDY_PHASE_PENDING, fresh));
    assert_true(phase_picks(BDY_PHASE_PENDING, waiting));
    assert_false(phase_picks(BDY_PHASE_PENDING, ready));
    assert_true(phase_picks(BDY_PHASE_READY, ready));
    assert_false(phase_picks(BDY_PHASE_READY, fresh));
    assert_false(phase_picks(BDY_PHASE_FAILED, ready));
    char small[8];
    assert_int_equal(bdy_phase_selector(BDY_PHASE_PENDING, small, sizeof(small)), BDY_EINVAL);
    assert_string_equal(small, "");
    assert_int_equal(bdy_phase_selector(BDY_PHASE_COUNT, small, sizeof(small)), BDY_EINVAL);
}

static void test_allocation_answer(void **state)
{
    (void)state;
    json_object *w = json_tokener_parse(
        "{\"metadata\":{\"name\":\"a1\",\"namespace\":\"default\",\"labels\":{\"game\":\"arena\"}},"
        "\"spec\":{\"pool\":\"arena\"},\"status\":{\"phase\":\"Allocated\",\"address\":"
        "\"127.0.0.1\",\"nodeName\":\"n1\",\"ports\":[{\"name\":\"game\",\"port\":20001,"
        "\"protocol\":\"UDP\"}],\"allocation\":{\"id\":\"alc-123\",\"claimant\":\"mm\","
        "\"claimedAt\":\"2026-11-27T20:15:02.113482Z\",\"source\":\"warm\",\"labels\":{\"match-"
        "id\":"
        "\"m-1\"},\"annotations\":{\"note\":\"ranked\"}}}}");
    json_object *a = bdy_allocation_answer(w);
    assert_non_null(a);
    const char *text = json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN);
    assert_non_null(strstr(text, "\"allocationId\":\"alc-123\""));
    assert_non_null(strstr(text, "\"source\":\"warm\""));
    assert_non_null(strstr(text, "\"address\":\"127.0.0.1\""));
    assert_non_null(strstr(text, "\"match-id\":\"m-1\""));
    assert_non_null(strstr(text, "\"game\":\"arena\""));
    assert_non_null(strstr(text, "\"note\":\"ranked\""));
    assert_non_null(strstr(text, "\"port\":20001"));
    json_object_put(a);
    json_object_object_del(json_object_object_get(w, "status"), "allocation");
    assert_null(bdy_allocation_answer(w));
    json_object_put(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_and_warm_index),
        cmocka_unit_test(test_claim_take_and_done),
        cmocka_unit_test(test_fail_begin_keeps_claims_off),
        cmocka_unit_test(test_new_process_after_exit),
        cmocka_unit_test(test_hold_from_ledger),
        cmocka_unit_test(test_scale_down_takes_oldest_of_many),
        cmocka_unit_test(test_selectors_in_preference_order),
        cmocka_unit_test(test_pools_reconfigured),
        cmocka_unit_test(test_world_moved_to_another_pool),
        cmocka_unit_test(test_scale_down_candidates_and_failed),
        cmocka_unit_test(test_claimable_once_process_seen),
        cmocka_unit_test(test_claim_of_a_world_made_again),
        cmocka_unit_test(test_removed_pool_orphans),
        cmocka_unit_test(test_many_worlds_claim_is_constant_time),
        cmocka_unit_test(test_creations_hold_room_until_seen),
        cmocka_unit_test(test_creation_names_are_fresh),
        cmocka_unit_test(test_creation_names_avoid_known_worlds),
        cmocka_unit_test(test_sizing_clamps),
        cmocka_unit_test(test_phase_selector),
        cmocka_unit_test(test_allocation_answer),
        cmocka_unit_test(test_outdated_worlds),
        cmocka_unit_test(test_failed_claimed_world_is_the_claims),
        cmocka_unit_test(test_pool_template),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
