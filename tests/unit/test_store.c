/* The embedded store against the Kubernetes API semantics it promises
 * (include/bindery/store.h). Every test opens a fresh store in its own
 * temporary folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bindery/jsonutil.h"
#include "bindery/selector.h"
#include "bindery/store.h"
#include "bindery/util.h"
#include "fault_vfs.h"

#include "../../reconciler/watchlog.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const bdy_gvr WIDGETS = {"test.dev", "v1", "widgets"};

static const char widget_crd[] =
    "{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"CustomResourceDefinition\","
    "\"metadata\":{\"name\":\"widgets.test.dev\"},"
    "\"spec\":{\"group\":\"test.dev\",\"scope\":\"Namespaced\","
    "\"names\":{\"plural\":\"widgets\",\"singular\":\"widget\",\"kind\":\"Widget\","
    "\"shortNames\":[\"wd\"]},"
    "\"versions\":[{\"name\":\"v1\",\"served\":true,\"storage\":true,"
    "\"subresources\":{\"status\":{}},"
    "\"selectableFields\":[{\"jsonPath\":\".spec.color\"}],"
    "\"schema\":{\"openAPIV3Schema\":{\"type\":\"object\",\"properties\":{"
    "\"spec\":{\"type\":\"object\",\"required\":[\"size\"],\"properties\":{"
    "\"size\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100},"
    "\"color\":{\"type\":\"string\",\"enum\":[\"red\",\"blue\"]}}},"
    "\"status\":{\"type\":\"object\",\"properties\":{"
    "\"phase\":{\"type\":\"string\"}}}}}}}]}}";

typedef struct fixture {
    char dir[64];
    bdy_store *store;
} fixture;

static void rm_rf(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static bdy_store *open_store(const char *dir, size_t history)
{
    /* As bindery opens it: Events leave with their namespace. */
    static const bdy_gvr *const ns_records[] = {&BDY_GVR_EVENTS, NULL};
    bdy_sqlite_opts o = {.data_dir = dir,
                         .watch_history = history,
                         .max_batch = 64,
                         .namespace_records = ns_records};
    bdy_store *s = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy_store_sqlite_open(&o, &s, &eb);
    if (rc != 0)
        fail_msg("open %s: %s (%s)", dir, bdy_strerror(rc), eb.message);
    return s;
}

static int setup_history(void **state, size_t history)
{
    fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/bdy-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->store = open_store(f->dir, history);
    json_object *crd = json_tokener_parse(widget_crd);
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy_store_create(f->store, &BDY_GVR_CRDS, NULL, crd, NULL, NULL, &eb);
    if (rc != 0)
        fail_msg("create CRD: %s", eb.message);
    json_object_put(crd);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_history(state, 1000);
}

static int setup_small_history(void **state)
{
    return setup_history(state, 4);
}

static int teardown(void **state)
{
    fixture *f = *state;
    fault_vfs_heal(); /* a test that failed while it failed the disk */
    bdy_store_close(f->store);
    rm_rf(f->dir);
    free(f);
    return 0;
}

static json_object *widget(const char *name, int size, const char *color)
{
    char buf[512];
    snprintf(buf, sizeof(buf),
             "{\"apiVersion\":\"test.dev/v1\",\"kind\":\"Widget\",\"metadata\":{\"name\":\"%s\","
             "\"labels\":{\"color\":\"%s\"}},\"spec\":{\"size\":%d,\"color\":\"%s\"},"
             "\"status\":{\"phase\":\"Injected\"}}",
             name, color, size, color);
    return json_tokener_parse(buf);
}

static json_object *create_widget(fixture *f, const char *name, int size, const char *color)
{
    json_object *w = widget(name, size, color);
    json_object *out = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy_store_create(f->store, &WIDGETS, "default", w, NULL, &out, &eb);
    if (rc != 0)
        fail_msg("create %s: %s", name, eb.message);
    json_object_put(w);
    return out;
}

static const char *meta(json_object *o, const char *key)
{
    return json_object_get_string(bdy_json_path_get(o, key));
}

static uint64_t current_rv(fixture *f)
{
    uint64_t rv = 0;
    assert_int_equal(bdy_store_current_rv(f->store, &rv), 0);
    return rv;
}

static void sql_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", sql, err);
    sqlite3_close(db);
}

static long long sql_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void test_create_sets_server_fields(void **state)
{
    fixture *f = *state;
    json_object *o = create_widget(f, "w1", 3, "red");
    assert_string_equal(meta(o, "metadata.name"), "w1");
    assert_string_equal(meta(o, "metadata.namespace"), "default");
    assert_int_equal(strlen(meta(o, "metadata.uid")), 36);
    assert_non_null(strstr(meta(o, "metadata.creationTimestamp"), "Z"));
    assert_int_equal(json_object_get_int(bdy_json_path_get(o, "metadata.generation")), 1);
    assert_string_equal(meta(o, "kind"), "Widget");
    /* The status subresource means create ignores .status. */
    assert_null(bdy_json_path_get(o, "status"));
    char rv[24];
    snprintf(rv, sizeof(rv), "%llu", (unsigned long long)current_rv(f));
    assert_string_equal(meta(o, "metadata.resourceVersion"), rv);
    /* Acknowledged, so published: what is written is what watches have. */
    uint64_t written = 0;
    assert_int_equal(bdy_store_written_rv(f->store, &written), 0);
    assert_int_equal(written, current_rv(f));

    json_object *got = NULL;
    assert_int_equal(bdy_store_get(f->store, &WIDGETS, "default", "w1", &got, NULL), 0);
    assert_true(json_object_equal(o, got));
    json_object_put(got);
    json_object_put(o);
}

static void test_create_errors_leave_store_unchanged(void **state)
{
    fixture *f = *state;
    json_object_put(create_widget(f, "w1", 3, "red"));
    uint64_t before = current_rv(f);
    bdy_errbuf eb;

    json_object *dup = widget("w1", 3, "red");
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_store_create(f->store, &WIDGETS, "default", dup, NULL, NULL, &eb),
                     BDY_EEXISTS);
    assert_string_equal(eb.message, "widgets.test.dev \"w1\" already exists");

    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_store_create(f->store, &WIDGETS, "nowhere", dup, NULL, NULL, &eb),
                     BDY_ENOTFOUND);
    assert_non_null(strstr(eb.message, "namespaces \"nowhere\" not found"));

    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_store_create(f->store, &WIDGETS, "other", dup, NULL, NULL, &eb),
                     BDY_ENOTFOUND);
    json_object_object_add(json_object_object_get(dup, "metadata"), "namespace",
                           json_object_new_string("default"));
    json_object *ns = json_tokener_parse("{\"metadata\":{\"name\":\"other\"}}");
    json_object *ns_out = NULL;
    assert_int_equal(bdy_store_create(f->store, &BDY_GVR_NAMESPACES, NULL, ns, NULL, &ns_out, NULL),
                     0);
    json_object_put(ns);
    /* Its name as a label, as the API server puts it, kept on updates. */
    json_object *ns_labels = bdy_json_path_get(ns_out, "metadata.labels");
    assert_string_equal(
        json_object_get_string(json_object_object_get(ns_labels, "kubernetes.io/metadata.name")),
        "other");
    json_object_put(ns_out);
    before = current_rv(f);
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_store_create(f->store, &WIDGETS, "other", dup, NULL, NULL, &eb),
                     BDY_EINVAL);
    assert_non_null(strstr(eb.message, "does not match the namespace"));
    json_object_put(dup);

    json_object *bad = widget("Bad_Name", 3, "red");
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_store_create(f->store, &WIDGETS, "default", bad, NULL, NULL, &eb),
                     BDY_EINVALID_OBJECT);
    assert_string_equal(eb.causes[0].field, "metadata.name");
    json_object_put(bad);

    /* Names as Kubernetes checks them: 253 characters in all, no cap on a
     * dot-separated part; a part must start and end with an alphanumeric. */
    char name[300];
    memset(name, 'a', 254);
    name[254] = '\0';
    struct {
        size_t len; /* of name, made of 'a' with the dashes and dots below */
        const char *part;
        bool ok;
        const char *why;
    } names[] = {
        {64, NULL, true, NULL},
        {100, ".b-c.d", true, NULL},
        {253, NULL, true, NULL},
        {254, NULL, false, "must be no more than 253 characters"},
        {70, "-", false, "must start and end with an alphanumeric character"},
        {70, "..b", false, "must start and end with an alphanumeric character"},
        {70, ".-b", false, "must start and end with an alphanumeric character"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        memset(name, 'a', names[i].len);
        name[names[i].len] = '\0';
        if (names[i].part != NULL)
            memcpy(name + names[i].len - strlen(names[i].part), names[i].part,
                   strlen(names[i].part));
        json_object *w = widget(name, 3, "red");
        bdy_errbuf_clear(&eb);
        bdy_write_opts dry = {.dry_run = true}; /* this test changes nothing */
        int rc = bdy_store_create(f->store, &WIDGETS, "default", w, &dry, NULL, &eb);
        if (names[i].ok) {
            assert_int_equal(rc, 0);
        } else {
            assert_int_equal(rc, BDY_EINVALID_OBJECT);
            assert_non_null(strstr(eb.causes[0].message, names[i].why));
        }
        json_object_put(w);
    }

    json_object *big = widget("big", 1000, "green");
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_store_create(f->store, &WIDGETS, "default", big, NULL, NULL, &eb),
                     BDY_EINVALID_OBJECT);
    assert_true(eb.ncauses >= 2);
    assert_non_null(strstr(eb.message, "Widget.test.dev \"big\" is invalid"));
    bool size_cause = false;
    for (size_t i = 0; i < eb.ncauses; i++)
        size_cause |= strcmp(eb.causes[i].field, "spec.size") == 0;
    assert_true(size_cause);
    json_object_put(big);

    json_object *nospec = json_tokener_parse("{\"metadata\":{\"name\":\"x\"},\"spec\":{}}");
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_store_create(f->store, &WIDGETS, "default", nospec, NULL, NULL, &eb),
                     BDY_EINVALID_OBJECT);
    assert_string_equal(eb.causes[0].field, "spec.size");
    assert_string_equal(eb.causes[0].reason, "FieldValueRequired");
    json_object_put(nospec);

    json_object *wrongkind = json_tokener_parse(
        "{\"apiVersion\":\"test.dev/v1\",\"kind\":\"Gadget\",\"metadata\":{\"name\":\"x\"},"
        "\"spec\":{\"size\":1}}");
    assert_int_equal(bdy_store_create(f->store, &WIDGETS, "default", wrongkind, NULL, NULL, NULL),
                     BDY_EINVAL);
    json_object_put(wrongkind);

    assert_int_equal(current_rv(f), before);
    json_object *missing = NULL;
    assert_int_equal(bdy_store_get(f->store, &WIDGETS, "default", "big", &missing, NULL),
                     BDY_ENOTFOUND);
    assert_null(missing);
}

static void test_unknown_fields_pruned_or_rejected(void **state)
{
    fixture *f = *state;
    json_object *w = json_tokener_parse("{\"metadata\":{\"name\":\"u1\",\"lables\":{\"a\":\"b\"}},"
                                        "\"spec\":{\"size\":2,\"extra\":true},\"bogus\":1}");
    json_object *out = NULL;
    assert_int_equal(bdy_store_create(f->store, &WIDGETS, "default", w, NULL, &out, NULL), 0);
    assert_null(bdy_json_path_get(out, "spec.extra"));
    assert_null(bdy_json_path_get(out, "bogus"));
    /* Under metadata too, as ObjectMeta's decoder drops it: a misspelt
     * "lables" was stored as given. */
    assert_null(bdy_json_path_get(out, "metadata.lables"));
    json_object_put(out);

    json_object_object_add(json_object_object_get(w, "metadata"), "name",
                           json_object_new_string("u2"));
    bdy_write_opts strict = {.unknown = BDY_UNKNOWN_REJECT};
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_store_create(f->store, &WIDGETS, "default", w, &strict, NULL, &eb),
                     BDY_EINVALID_OBJECT);
    assert_non_null(strstr(eb.message, "spec.extra"));
    bool meta_named = false;
    for (size_t i = 0; i < eb.ncauses; i++)
        meta_named |= strcmp(eb.causes[i].field, "metadata.lables") == 0 &&
                      strstr(eb.causes[i].message, "unknown field") != NULL;
    assert_true(meta_named);
    json_object_put(w);
}

static void test_generate_name_and_dry_run(void **state)
{
    fixture *f = *state;
    json_object *w =
        json_tokener_parse("{\"metadata\":{\"generateName\":\"arena-\"},\"spec\":{\"size\":2}}");
    json_object *out = NULL;
    assert_int_equal(bdy_store_create(f->store, &WIDGETS, "default", w, NULL, &out, NULL), 0);
    const char *name = meta(out, "metadata.name");
    assert_int_equal(strlen(name), strlen("arena-") + 5);
    assert_memory_equal(name, "arena-", 6);
    json_object_put(out);

    /* A long prefix is cut to 58 characters, as Kubernetes cuts it: the
     * name fits a DNS label (a pool of a 63-character name makes worlds). */
    char prefix[80];
    memset(prefix, 'p', 63);
    strcpy(prefix + 63, "-");
    json_object *long_gen = json_tokener_parse("{\"metadata\":{},\"spec\":{\"size\":2}}");
    json_object_object_add(json_object_object_get(long_gen, "metadata"), "generateName",
                           json_object_new_string(prefix));
    out = NULL;
    assert_int_equal(bdy_store_create(f->store, &WIDGETS, "default", long_gen, NULL, &out, NULL),
                     0);
    assert_int_equal(strlen(meta(out, "metadata.name")), 63);
    assert_memory_equal(meta(out, "metadata.name"), prefix, 58);
    json_object_put(out);
    json_object_put(long_gen);

    uint64_t before = current_rv(f);
    bdy_write_opts dry = {.dry_run = true};
    out = NULL;
    assert_int_equal(bdy_store_create(f->store, &WIDGETS, "default", w, &dry, &out, NULL), 0);
    assert_non_null(out);
    char dry_name[64];
    snprintf(dry_name, sizeof(dry_name), "%s", meta(out, "metadata.name"));
    json_object_put(out);
    assert_int_equal(current_rv(f), before);
    json_object *got = NULL;
    assert_int_equal(bdy_store_get(f->store, &WIDGETS, "default", dry_name, &got, NULL),
                     BDY_ENOTFOUND);
    json_object_put(w);
}

static void test_update_rules(void **state)
{
    fixture *f = *state;
    json_object *o = create_widget(f, "w1", 3, "red");
    char rv1[24];
    snprintf(rv1, sizeof(rv1), "%s", meta(o, "metadata.resourceVersion"));
    json_object *out = NULL;
    bdy_errbuf eb;

    /* A no-op write keeps the resourceVersion. */
    assert_int_equal(bdy_store_update(f->store, &WIDGETS, "default", o, NULL, &out, NULL), 0);
    assert_string_equal(meta(out, "metadata.resourceVersion"), rv1);
    json_object_put(out);

    /* A label change: new RV, same generation. */
    json_object_object_add(json_object_object_get(json_object_object_get(o, "metadata"), "labels"),
                           "tier", json_object_new_string("gold"));
    assert_int_equal(bdy_store_update(f->store, &WIDGETS, "default", o, NULL, &out, NULL), 0);
    assert_string_not_equal(meta(out, "metadata.resourceVersion"), rv1);
    assert_int_equal(json_object_get_int(bdy_json_path_get(out, "metadata.generation")), 1);
    json_object_put(out);

    /* The old RV is now stale. */
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_store_update(f->store, &WIDGETS, "default", o, NULL, NULL, &eb),
                     BDY_ECONFLICT);
    assert_string_equal(eb.message,
                        "Operation cannot be fulfilled on widgets.test.dev \"w1\": the object "
                        "has been modified; please apply your changes to the latest version and "
                        "try again");
    json_object_put(o);

    /* A body naming another namespace than the request is refused. */
    assert_int_equal(bdy_store_get(f->store, &WIDGETS, "default", "w1", &o, NULL), 0);
    uint64_t before = current_rv(f);
    json_object_object_add(json_object_object_get(o, "metadata"), "namespace",
                           json_object_new_string("other"));
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_store_update(f->store, &WIDGETS, "default", o, NULL, NULL, &eb),
                     BDY_EINVAL);
    assert_non_null(strstr(eb.message, "does not match the namespace"));
    assert_int_equal(current_rv(f), before);
    json_object_put(o);

    /* Spec change bumps generation; status written through the main
     * resource is ignored. */
    assert_int_equal(bdy_store_get(f->store, &WIDGETS, "default", "w1", &o, NULL), 0);
    json_object_object_add(json_object_object_get(o, "spec"), "size", json_object_new_int(9));
    json_object *st = json_tokener_parse("{\"phase\":\"Sneaky\"}");
    json_object_object_add(o, "status", st);
    assert_int_equal(bdy_store_update(f->store, &WIDGETS, "default", o, NULL, &out, NULL), 0);
    assert_int_equal(json_object_get_int(bdy_json_path_get(out, "metadata.generation")), 2);
    assert_int_equal(json_object_get_int(bdy_json_path_get(out, "spec.size")), 9);
    assert_null(bdy_json_path_get(out, "status"));
    json_object_put(out);

    /* A custom resource update without a resourceVersion is invalid. */
    json_object_object_del(json_object_object_get(o, "metadata"), "resourceVersion");
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_store_update(f->store, &WIDGETS, "default", o, NULL, NULL, &eb),
                     BDY_EINVALID_OBJECT);
    assert_string_equal(eb.causes[0].field, "metadata.resourceVersion");
    assert_non_null(strstr(eb.causes[0].message, "must be specified for an update"));
    json_object_put(o);

    /* Update of a missing object. */
    json_object *ghost = widget("ghost", 1, "red");
    assert_int_equal(bdy_store_update(f->store, &WIDGETS, "default", ghost, NULL, NULL, NULL),
                     BDY_ENOTFOUND);
    json_object_put(ghost);
}

/* patch_many: every item gets its own result; a stale resourceVersion
 * fails only its own item; the rest are written (status only). */
static void test_patch_many(void **state)
{
    fixture *f = *state;
    json_object_put(create_widget(f, "p1", 1, "red"));
    json_object_put(create_widget(f, "p2", 2, "red"));
    bdy_store_patch_item items[4] = {0};
    json_object *patches[4];
    patches[0] = json_tokener_parse("{\"status\":{\"phase\":\"One\"}}");
    patches[1] = json_tokener_parse("{\"status\":{\"phase\":\"Two\"}}");
    patches[2] = json_tokener_parse("{\"metadata\":{\"resourceVersion\":\"1\"},"
                                    "\"status\":{\"phase\":\"Stale\"}}");
    patches[3] = json_tokener_parse("{\"status\":{\"phase\":\"Nobody\"}}");
    const char *names[4] = {"p1", "p2", "p1", "missing"};
    for (int i = 0; i < 4; i++)
        items[i] = (bdy_store_patch_item){.gvr = &WIDGETS,
                                          .ns = "default",
                                          .name = names[i],
                                          .type = BDY_PATCH_MERGE,
                                          .patch = patches[i],
                                          .status_only = true};
    uint64_t before = current_rv(f);
    assert_int_equal(bdy_store_patch_many(f->store, items, 4), 0);
    assert_int_equal(items[0].rc, 0);
    assert_int_equal(items[1].rc, 0);
    assert_int_equal(items[2].rc, BDY_ECONFLICT);
    assert_int_equal(items[3].rc, BDY_ENOTFOUND);
    assert_int_equal(current_rv(f), before + 2);
    json_object *o = NULL;
    assert_int_equal(bdy_store_get(f->store, &WIDGETS, "default", "p1", &o, NULL), 0);
    assert_string_equal(meta(o, "status.phase"), "One");
    assert_int_equal(json_object_get_int(bdy_json_path_get(o, "metadata.generation")), 1);
    json_object_put(o);
    assert_int_equal(bdy_store_get(f->store, &WIDGETS, "default", "p2", &o, NULL), 0);
    assert_string_equal(meta(o, "status.phase"), "Two");
    json_object_put(o);
    assert_int_equal(bdy_store_patch_many(f->store, items, 0), 0);
    for (int i = 0; i < 4; i++)
        json_object_put(patches[i]);
}

/* One object whose stored text is damaged fails its own write, not the
 * others committed with it (claims share batches with controller
 * writes). */
static void test_damaged_object_fails_alone(void **state)
{
    fixture *f = *state;
    json_object_put(create_widget(f, "good", 1, "red"));
    json_object_put(create_widget(f, "bad", 1, "red"));
    char path[128];
    snprintf(path, sizeof(path), "%s/bindery.db", f->dir);
    sql_exec(path, "UPDATE objects SET body = '{\"metadata\":' WHERE name = 'bad'");
    json_object *patch = json_tokener_parse("{\"status\":{\"phase\":\"Ready\"}}");
    bdy_store_patch_item items[2];
    const char *names[2] = {"bad", "good"};
    for (int i = 0; i < 2; i++)
        items[i] = (bdy_store_patch_item){.gvr = &WIDGETS,
                                          .ns = "default",
                                          .name = names[i],
                                          .type = BDY_PATCH_MERGE,
                                          .patch = patch,
                                          .status_only = true};
    assert_int_equal(bdy_store_patch_many(f->store, items, 2), 0);
    assert_int_equal(items[0].rc, BDY_ECORRUPT);
    assert_int_equal(items[1].rc, 0);
    json_object *o = NULL;
    assert_int_equal(bdy_store_get(f->store, &WIDGETS, "default", "good", &o, NULL), 0);
    assert_string_equal(meta(o, "status.phase"), "Ready");
    json_object_put(o);
    json_object_put(patch);
}

static void test_status_subresource(void **state)
{
    fixture *f = *state;
    json_object *o = create_widget(f, "w1", 3, "red");
    json_object_object_add(o, "status", json_tokener_parse("{\"phase\":\"Ready\"}"));
    json_object_object_add(json_object_object_get(o, "spec"), "size", json_object_new_int(50));
    json_object *out = NULL;
    assert_int_equal(bdy_store_update_status(f->store, &WIDGETS, "default", o, NULL, &out, NULL),
                     0);
    assert_string_equal(meta(out, "status.phase"), "Ready");
    /* Only status moved: spec and generation are as stored. */
    assert_int_equal(json_object_get_int(bdy_json_path_get(out, "spec.size")), 3);
    assert_int_equal(json_object_get_int(bdy_json_path_get(out, "metadata.generation")), 1);
    json_object_put(out);
    /* Stale RV applies to status writes too. */
    assert_int_equal(bdy_store_update_status(f->store, &WIDGETS, "default", o, NULL, NULL, NULL),
                     BDY_ECONFLICT);
    /* And, as for the main resource of a custom resource, none at all is
     * refused: an unconditional status write could undo another's. */
    json_object_object_del(json_object_object_get(o, "metadata"), "resourceVersion");
    assert_int_equal(bdy_store_update_status(f->store, &WIDGETS, "default", o, NULL, NULL, NULL),
                     BDY_EINVALID_OBJECT);
    json_object_put(o);

    json_object *patch = json_tokener_parse("{\"status\":{\"phase\":\"Allocated\"}}");
    assert_int_equal(bdy_store_patch(f->store, &WIDGETS, "default", "w1", BDY_PATCH_MERGE, patch,
                                     true, NULL, &out, NULL),
                     0);
    assert_string_equal(meta(out, "status.phase"), "Allocated");
    json_object_put(out);
    json_object_put(patch);
}

static void test_patches(void **state)
{
    fixture *f = *state;
    json_object_put(create_widget(f, "w1", 3, "red"));
    json_object *out = NULL;
    bdy_errbuf eb;

    json_object *p = json_tokener_parse("{\"metadata\":{\"labels\":{\"color\":null,\"x\":\"y\"}},"
                                        "\"spec\":{\"size\":4}}");
    assert_int_equal(bdy_store_patch(f->store, &WIDGETS, "default", "w1", BDY_PATCH_MERGE, p, false,
                                     NULL, &out, NULL),
                     0);
    assert_null(bdy_json_path_get(out, "metadata.labels.color"));
    assert_string_equal(meta(out, "metadata.labels.x"), "y");
    assert_int_equal(json_object_get_int(bdy_json_path_get(out, "metadata.generation")), 2);
    json_object_put(out);
    json_object_put(p);

    /* A resourceVersion in a merge patch is a precondition. */
    p = json_tokener_parse("{\"metadata\":{\"resourceVersion\":\"1\"},\"spec\":{\"size\":5}}");
    assert_int_equal(bdy_store_patch(f->store, &WIDGETS, "default", "w1", BDY_PATCH_MERGE, p, false,
                                     NULL, NULL, NULL),
                     BDY_ECONFLICT);
    json_object_put(p);

    /* JSON patch: replace works, a failed test is an invalid request. */
    p = json_tokener_parse("[{\"op\":\"replace\",\"path\":\"/spec/size\",\"value\":7}]");
    assert_int_equal(bdy_store_patch(f->store, &WIDGETS, "default", "w1", BDY_PATCH_JSON, p, false,
                                     NULL, &out, NULL),
                     0);
    assert_int_equal(json_object_get_int(bdy_json_path_get(out, "spec.size")), 7);
    json_object_put(out);
    json_object_put(p);
    uint64_t before = current_rv(f);
    p = json_tokener_parse("[{\"op\":\"test\",\"path\":\"/spec/size\",\"value\":1}]");
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_store_patch(f->store, &WIDGETS, "default", "w1", BDY_PATCH_JSON, p, false,
                                     NULL, NULL, &eb),
                     BDY_EINVALID_OBJECT);
    /* The same without an error buffer, which store.h allows. */
    assert_int_equal(bdy_store_patch(f->store, &WIDGETS, "default", "w1", BDY_PATCH_JSON, p, false,
                                     NULL, NULL, NULL),
                     BDY_EINVALID_OBJECT);
    json_object_put(p);
    /* So is an operation that cannot apply (Kubernetes: 422); only a patch
     * that is no array of operations is a bad request. */
    p = json_tokener_parse("[{\"op\":\"frob\",\"path\":\"/spec/size\"}]");
    assert_int_equal(bdy_store_patch(f->store, &WIDGETS, "default", "w1", BDY_PATCH_JSON, p, false,
                                     NULL, NULL, NULL),
                     BDY_EINVALID_OBJECT);
    json_object_put(p);
    /* A patch that breaks the schema is refused. */
    p = json_tokener_parse("{\"spec\":{\"size\":\"huge\"}}");
    assert_int_equal(bdy_store_patch(f->store, &WIDGETS, "default", "w1", BDY_PATCH_MERGE, p, false,
                                     NULL, NULL, NULL),
                     BDY_EINVALID_OBJECT);
    json_object_put(p);
    p = json_tokener_parse("{\"not\":\"an array\"}");
    assert_int_equal(bdy_store_patch(f->store, &WIDGETS, "default", "w1", BDY_PATCH_JSON, p, false,
                                     NULL, NULL, NULL),
                     BDY_EINVAL);
    json_object_put(p);
    assert_int_equal(current_rv(f), before);
}

static int next_event(fixture *f, bdy_watch *w, bdy_watch_event *ev)
{
    return bdy_store_watch_next(f->store, w, w ? 2000 : 0, ev);
}

/* A Lease (no schema) whose spec nests `levels` objects deep in all. */
static json_object *deep_lease(const char *name, int levels)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "apiVersion", json_object_new_string("coordination.k8s.io/v1"));
    json_object_object_add(o, "kind", json_object_new_string("Lease"));
    json_object *m = json_object_new_object();
    json_object_object_add(m, "name", json_object_new_string(name));
    json_object_object_add(o, "metadata", m);
    json_object *inner = json_object_new_object();
    for (int i = 2; i < levels; i++) { /* the object and spec are two levels */
        json_object *outer = json_object_new_object();
        json_object_object_add(outer, "a", inner);
        inner = outer;
    }
    json_object_object_add(o, "spec", inner);
    return o;
}

/* What the store accepts it can read back: an object nested as deep as the
 * API allows is stored, read, listed and deleted; one deeper, or a patch
 * that would make it deeper, is refused and changes nothing. */
static void test_nesting_limit(void **state)
{
    fixture *f = *state;
    json_object *ok = deep_lease("ok", BDY_JSON_MAX_DEPTH);
    assert_true(bdy_json_depth_within(ok, BDY_JSON_MAX_DEPTH));
    assert_false(bdy_json_depth_within(ok, BDY_JSON_MAX_DEPTH - 1));
    assert_int_equal(bdy_store_create(f->store, &BDY_GVR_LEASES, "default", ok, NULL, NULL, NULL),
                     0);
    json_object_put(ok);
    json_object *got = NULL;
    assert_int_equal(bdy_store_get(f->store, &BDY_GVR_LEASES, "default", "ok", &got, NULL), 0);
    json_object_put(got);

    uint64_t before = current_rv(f);
    json_object *deep = deep_lease("deep", BDY_JSON_MAX_DEPTH + 1);
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_store_create(f->store, &BDY_GVR_LEASES, "default", deep, NULL, NULL, &eb),
                     BDY_EINVALID_OBJECT);
    assert_non_null(strstr(eb.message, "deeper"));
    json_object_put(deep);
    /* One more level under the deepest member, by JSON patch. */
    char path[4 * BDY_JSON_MAX_DEPTH + 16] = "/spec";
    for (int i = 2; i < BDY_JSON_MAX_DEPTH; i++)
        strcat(path, "/a");
    char text[sizeof(path) + 80];
    snprintf(text, sizeof(text), "[{\"op\":\"add\",\"path\":\"%s/b\",\"value\":{}}]", path);
    json_object *p = json_tokener_parse(text);
    assert_non_null(p);
    assert_int_equal(bdy_store_patch(f->store, &BDY_GVR_LEASES, "default", "ok", BDY_PATCH_JSON, p,
                                     false, NULL, NULL, NULL),
                     BDY_EINVALID_OBJECT);
    json_object_put(p);
    assert_int_equal(current_rv(f), before);
    assert_int_equal(
        bdy_store_delete(f->store, &BDY_GVR_LEASES, "default", "ok", NULL, NULL, NULL, NULL), 0);
}

static void test_finalizers_and_delete(void **state)
{
    fixture *f = *state;
    json_object *o = create_widget(f, "w1", 3, "red");
    uint64_t start = current_rv(f);
    bdy_watch *w = NULL;
    assert_int_equal(bdy_store_watch(f->store, &WIDGETS, "default", NULL, NULL, start, &w, NULL),
                     0);
    bdy_watch *red = NULL;
    assert_int_equal(
        bdy_store_watch(f->store, &WIDGETS, "default", "color=red", NULL, start, &red, NULL), 0);
    json_object *p = json_tokener_parse("{\"metadata\":{\"finalizers\":[\"test.dev/hold\"]}}");
    assert_int_equal(bdy_store_patch(f->store, &WIDGETS, "default", "w1", BDY_PATCH_MERGE, p, false,
                                     NULL, NULL, NULL),
                     0);
    json_object_put(p);

    json_object *out = NULL;
    bool deleted = true;
    assert_int_equal(
        bdy_store_delete(f->store, &WIDGETS, "default", "w1", NULL, &out, &deleted, NULL), 0);
    assert_false(deleted);
    assert_non_null(meta(out, "metadata.deletionTimestamp"));
    /* Marked as Kubernetes marks it: the generation moves on (from 1). */
    assert_string_equal(meta(out, "metadata.generation"), "2");
    json_object_put(out);
    /* Still there, and no new finalizers may be added. */
    assert_int_equal(bdy_store_get(f->store, &WIDGETS, "default", "w1", &out, NULL), 0);
    json_object_put(out);
    p = json_tokener_parse("{\"metadata\":{\"finalizers\":[\"test.dev/hold\",\"x.dev/more\"]}}");
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_store_patch(f->store, &WIDGETS, "default", "w1", BDY_PATCH_MERGE, p, false,
                                     NULL, NULL, &eb),
                     BDY_EINVALID_OBJECT);
    assert_string_equal(eb.causes[0].field, "metadata.finalizers");
    json_object_put(p);
    /* Removing the last finalizer deletes the object; the same write
     * taking it out of the red watcher's view does not hide its end. */
    p = json_tokener_parse("{\"metadata\":{\"finalizers\":null,\"labels\":{\"color\":null}}}");
    assert_int_equal(bdy_store_patch(f->store, &WIDGETS, "default", "w1", BDY_PATCH_MERGE, p, false,
                                     NULL, NULL, NULL),
                     0);
    json_object_put(p);
    assert_int_equal(bdy_store_get(f->store, &WIDGETS, "default", "w1", &out, NULL), BDY_ENOTFOUND);

    bdy_watch_event ev;
    const bdy_event_type expect[] = {BDY_EVENT_MODIFIED, BDY_EVENT_MODIFIED, BDY_EVENT_DELETED};
    uint64_t last = start;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(next_event(f, w, &ev), 0);
        assert_int_equal(ev.type, expect[i]);
        assert_true(ev.resource_version > last);
        last = ev.resource_version;
        json_object_put(ev.object);
    }
    assert_int_equal(last, current_rv(f));
    assert_int_equal(bdy_store_watch_next(f->store, w, 0, &ev), BDY_ETIMEOUT);
    bdy_store_watch_close(f->store, w);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(next_event(f, red, &ev), 0);
        assert_int_equal(ev.type, expect[i]);
        if (i == 2) {
            /* As it was stored, at the delete's version. */
            assert_string_equal(meta(ev.object, "metadata.labels.color"), "red");
            assert_int_equal(ev.resource_version, last);
        }
        json_object_put(ev.object);
    }
    bdy_store_watch_close(f->store, red);

    /* Plain delete, preconditions. */
    json_object_put(create_widget(f, "w2", 3, "red"));
    bdy_delete_opts pre = {.precondition_uid = "not-the-uid"};
    assert_int_equal(bdy_store_delete(f->store, &WIDGETS, "default", "w2", &pre, NULL, NULL, NULL),
                     BDY_ECONFLICT);
    bdy_delete_opts dry = {.dry_run = true};
    assert_int_equal(
        bdy_store_delete(f->store, &WIDGETS, "default", "w2", &dry, NULL, &deleted, NULL), 0);
    assert_int_equal(bdy_store_get(f->store, &WIDGETS, "default", "w2", &out, NULL), 0);
    json_object_put(out);
    assert_int_equal(
        bdy_store_delete(f->store, &WIDGETS, "default", "w2", NULL, NULL, &deleted, NULL), 0);
    assert_true(deleted);
    assert_int_equal(
        bdy_store_delete(f->store, &WIDGETS, "default", "w2", NULL, NULL, &deleted, NULL),
        BDY_ENOTFOUND);
    json_object_put(o);
}

static size_t list_count(fixture *f, const char *labels, const char *fields, int expect_rc)
{
    bdy_list_opts lo = {.ns = "default", .label_selector = labels, .field_selector = fields};
    bdy_list_result r;
    int rc = bdy_store_list(f->store, &WIDGETS, &lo, &r, NULL);
    assert_int_equal(rc, expect_rc);
    if (rc != 0)
        return 0;
    size_t n = json_object_array_length(r.items);
    bdy_list_result_free(&r);
    return n;
}

static void test_list_selectors_and_paging(void **state)
{
    fixture *f = *state;
    const char *colors[] = {"red", "blue"};
    for (int i = 0; i < 7; i++) {
        char name[16];
        snprintf(name, sizeof(name), "w%d", i);
        json_object_put(create_widget(f, name, i + 1, colors[i % 2]));
    }
    assert_int_equal(list_count(f, NULL, NULL, 0), 7);
    assert_int_equal(list_count(f, "color=red", NULL, 0), 4);
    assert_int_equal(list_count(f, "color in (red,blue)", NULL, 0), 7);
    assert_int_equal(list_count(f, "color!=red", NULL, 0), 3);
    assert_int_equal(list_count(f, "!color", NULL, 0), 0);
    assert_int_equal(list_count(f, NULL, "metadata.name=w3", 0), 1);
    assert_int_equal(list_count(f, NULL, "spec.color=blue", 0), 3);
    assert_int_equal(list_count(f, NULL, "spec.size=3", BDY_EINVAL), 0);
    assert_int_equal(list_count(f, "color in (red", NULL, BDY_EINVAL), 0);

    /* Pages of 3: the list RV stays constant and the last page has no token;
     * a widget made after the first page is not in the later ones. */
    bdy_list_opts lo = {.ns = "default", .limit = 3};
    bdy_list_result r;
    char *token = NULL;
    uint64_t rv = 0;
    size_t total = 0;
    int pages = 0;
    do {
        lo.continue_token = token;
        assert_int_equal(bdy_store_list(f->store, &WIDGETS, &lo, &r, NULL), 0);
        if (pages == 0) {
            rv = r.resource_version;
            /* A write between pages does not change the pages' RV. */
            json_object_put(create_widget(f, "zz-late", 1, "red"));
        }
        assert_int_equal(r.resource_version, rv);
        total += json_object_array_length(r.items);
        free(token);
        token = r.continue_token;
        r.continue_token = NULL;
        bdy_list_result_free(&r);
        pages++;
    } while (token != NULL && pages < 10);
    assert_int_equal(pages, 3);
    assert_int_equal(total, 7);

    lo.continue_token = "not base64!";
    assert_int_equal(bdy_store_list(f->store, &WIDGETS, &lo, &r, NULL), BDY_EINVAL);
    /* A token continues the list it came from only: not another resource's,
     * nor the same resource's in another namespace. */
    lo.continue_token = NULL;
    assert_int_equal(bdy_store_list(f->store, &WIDGETS, &lo, &r, NULL), 0);
    token = r.continue_token;
    r.continue_token = NULL;
    bdy_list_result_free(&r);
    assert_non_null(token);
    /* URL-safe and unpadded, as Kubernetes' tokens (a "+" came as a space
     * from clients that put the token in a query as it was); the standard
     * alphabet's tokens, padded, given out before, and with a space for
     * "+" continue the list too, at the same place. */
    assert_null(strpbrk(token, "+/="));
    /* Tokens made by hand from this one's list, continuing after "w3" plus
     * some "~" (which sort after every letter, so the next page starts at
     * w4): base64 of "~~~" is "fn5+", and one of three alignments puts it
     * at a 3-byte boundary, so the standard form has a "+". */
    char std_token[BDY_STORE_MAX_CONTINUE + 4] = "";
    {
        char url[BDY_STORE_MAX_CONTINUE + 4];
        snprintf(url, sizeof(url), "%s", token);
        for (char *p = url; *p != '\0'; p++)
            *p = *p == '-' ? '+' : *p == '_' ? '/' : *p;
        char *raw = NULL;
        size_t rawn = 0;
        assert_int_equal(bdy_base64_decode(url, strlen(url), &raw, &rawn), 0);
        char *last = strrchr(raw, '\n'); /* before the name */
        assert_non_null(last);
        last[1] = '\0';
        for (int pad = 0; pad < 3 && strpbrk(std_token, "+/") == NULL; pad++) {
            char made[BDY_STORE_MAX_CONTINUE];
            snprintf(made, sizeof(made), "%sw3%.*s~~~", raw, pad, "aa");
            char *enc = NULL;
            assert_int_equal(bdy_base64_encode(made, strlen(made), &enc), 0);
            snprintf(std_token, sizeof(std_token), "%s", enc);
            free(enc);
        }
        free(raw);
    }
    assert_non_null(strpbrk(std_token, "+/"));
    char forms[3][BDY_STORE_MAX_CONTINUE + 4];
    size_t tlen = strlen(std_token);
    for (size_t i = 0; i <= tlen; i++) {
        forms[0][i] = std_token[i]; /* standard, padded: given out before */
        forms[1][i] = std_token[i] == '+' ? '-' : std_token[i] == '/' ? '_' : std_token[i];
        forms[2][i] = std_token[i] == '+' ? ' ' : std_token[i]; /* "+" read as a space */
    }
    for (char *e = strchr(forms[1], '='); e != NULL; e = NULL)
        *e = '\0'; /* unpadded */
    for (int k = 0; k < 3; k++) {
        bdy_list_opts again = {.ns = "default", .limit = 3, .continue_token = forms[k]};
        assert_int_equal(bdy_store_list(f->store, &WIDGETS, &again, &r, NULL), 0);
        const char *name = json_object_get_string(json_object_object_get(
            json_object_object_get(json_object_array_get_idx(r.items, 0), "metadata"), "name"));
        if (name == NULL || strcmp(name, "w4") != 0)
            fail_msg("form %d (%s) continued at %s, not w4", k, forms[k], name ? name : "nothing");
        bdy_list_result_free(&r);
    }
    bdy_list_opts other = {.ns = "default", .limit = 3, .continue_token = token};
    assert_int_equal(bdy_store_list(f->store, &BDY_GVR_LEASES, &other, &r, NULL), BDY_EINVAL);
    other.ns = "elsewhere";
    assert_int_equal(bdy_store_list(f->store, &WIDGETS, &other, &r, NULL), BDY_EINVAL);
    free(token);
    token = NULL;
    /* A token made before tokens named their list: 410, list again. */
    other.ns = "default";
    other.continue_token = "NQpkZWZhdWx0Cncx"; /* base64("5\ndefault\nw1") */
    assert_int_equal(bdy_store_list(f->store, &WIDGETS, &other, &r, NULL), BDY_EEXPIRED);

    /* All namespaces, and an unknown resource. */
    bdy_list_opts all = {0};
    assert_int_equal(bdy_store_list(f->store, &WIDGETS, &all, &r, NULL), 0);
    assert_int_equal(json_object_array_length(r.items), 8);
    bdy_list_result_free(&r);
    const bdy_gvr nope = {"test.dev", "v1", "gizmos"};
    assert_int_equal(bdy_store_list(f->store, &nope, &all, &r, NULL), BDY_ENOTFOUND);
}

/* max_bytes ends a page early with a continue token, never before its
 * first item, and fails a list without limit. */
static void test_list_bounded_in_bytes(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 7; i++) {
        char name[16];
        snprintf(name, sizeof(name), "w%d", i);
        json_object_put(create_widget(f, name, i + 1, "red"));
    }
    bdy_list_opts lo = {.ns = "default", .limit = 100, .max_bytes = 1};
    bdy_list_result r;
    char *token = NULL;
    int pages = 0;
    do {
        lo.continue_token = token;
        assert_int_equal(bdy_store_list(f->store, &WIDGETS, &lo, &r, NULL), 0);
        assert_int_equal(json_object_array_length(r.items), 1);
        char want[16];
        snprintf(want, sizeof(want), "w%d", pages);
        assert_string_equal(meta(json_object_array_get_idx(r.items, 0), "metadata.name"), want);
        free(token);
        token = r.continue_token;
        r.continue_token = NULL;
        bdy_list_result_free(&r);
        pages++;
    } while (token != NULL && pages < 10);
    assert_int_equal(pages, 7);

    /* A page never passes max_bytes (but for its first object): with room
     * for one and a half objects, one a page. */
    bdy_list_opts one = {.ns = "default", .limit = 1, .raw = true};
    assert_int_equal(bdy_store_list(f->store, &WIDGETS, &one, &r, NULL), 0);
    size_t size = strlen(json_object_get_string(json_object_array_get_idx(r.items, 0)));
    bdy_list_result_free(&r);
    lo.max_bytes = size + size / 2;
    lo.continue_token = NULL;
    assert_int_equal(bdy_store_list(f->store, &WIDGETS, &lo, &r, NULL), 0);
    assert_int_equal(json_object_array_length(r.items), 1);
    assert_non_null(r.continue_token);
    bdy_list_result_free(&r);

    bdy_list_opts whole = {.ns = "default", .max_bytes = 1};
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_store_list(f->store, &WIDGETS, &whole, &r, &eb), BDY_ETOOBIG);
    assert_non_null(strstr(eb.message, "ask for it in pages"));
    whole.max_bytes = 1024 * 1024;
    assert_int_equal(bdy_store_list(f->store, &WIDGETS, &whole, &r, NULL), 0);
    assert_int_equal(json_object_array_length(r.items), 7);
    assert_null(r.continue_token);
    bdy_list_result_free(&r);
}

/* The names, in order, of a page's items. */
static void page_names(const bdy_list_result *r, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = 0; i < json_object_array_length(r->items); i++) {
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s%s", i ? "," : "",
                 meta(json_object_array_get_idx(r->items, i), "metadata.name"));
    }
}

/* The pages after the first show the objects as they were at the list's
 * resourceVersion, as Kubernetes' do: one changed since as it was, one
 * deleted since still there, one made since not at all; selectors apply
 * to what they were. */
static void test_later_pages_show_the_list_version(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 6; i++) {
        char name[16];
        snprintf(name, sizeof(name), "w%d", i);
        json_object_put(create_widget(f, name, i + 1, "red"));
    }
    bdy_list_opts lo = {.ns = "default", .limit = 2};
    bdy_list_opts red = {.ns = "default", .limit = 2, .label_selector = "color=red"};
    bdy_list_result r;
    char names[128];
    assert_int_equal(bdy_store_list(f->store, &WIDGETS, &lo, &r, NULL), 0);
    uint64_t list_rv = r.resource_version;
    char *token = r.continue_token;
    r.continue_token = NULL;
    bdy_list_result_free(&r);
    assert_non_null(token);

    json_object *patch = json_tokener_parse(
        "{\"metadata\":{\"labels\":{\"color\":\"blue\"}},\"spec\":{\"size\":99}}");
    json_object *out = NULL;
    assert_int_equal(bdy_store_patch(f->store, &WIDGETS, "default", "w3", BDY_PATCH_MERGE, patch,
                                     false, NULL, &out, NULL),
                     0);
    json_object_put(out);
    json_object_put(patch);
    assert_int_equal(bdy_store_delete(f->store, &WIDGETS, "default", "w2", NULL, NULL, NULL, NULL),
                     0);
    assert_int_equal(bdy_store_delete(f->store, &WIDGETS, "default", "w5", NULL, NULL, NULL, NULL),
                     0);
    json_object_put(create_widget(f, "w1a", 1, "red"));
    json_object_put(create_widget(f, "w9", 1, "red"));

    lo.continue_token = token;
    assert_int_equal(bdy_store_list(f->store, &WIDGETS, &lo, &r, NULL), 0);
    assert_int_equal(r.resource_version, list_rv);
    page_names(&r, names, sizeof(names));
    assert_string_equal(names, "w2,w3");
    json_object *w3 = json_object_array_get_idx(r.items, 1);
    assert_int_equal(json_object_get_int(bdy_json_path_get(w3, "spec.size")), 4);
    assert_string_equal(meta(w3, "metadata.labels.color"), "red");
    assert_true(strtoull(meta(w3, "metadata.resourceVersion"), NULL, 10) <= list_rv);
    assert_true(strtoull(meta(json_object_array_get_idx(r.items, 0), "metadata.resourceVersion"),
                         NULL, 10) <= list_rv);
    char *token2 = r.continue_token;
    r.continue_token = NULL;
    bdy_list_result_free(&r);
    assert_non_null(token2);
    lo.continue_token = token2;
    assert_int_equal(bdy_store_list(f->store, &WIDGETS, &lo, &r, NULL), 0);
    page_names(&r, names, sizeof(names));
    assert_string_equal(names, "w4,w5");
    assert_null(r.continue_token); /* w9 came later */
    bdy_list_result_free(&r);
    free(token2);

    /* The same token with a selector: w3 was red then. */
    red.continue_token = token;
    assert_int_equal(bdy_store_list(f->store, &WIDGETS, &red, &r, NULL), 0);
    page_names(&r, names, sizeof(names));
    assert_string_equal(names, "w2,w3");
    bdy_list_result_free(&r);
    free(token);
}

static void test_continue_token_expires(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof(name), "w%d", i);
        json_object_put(create_widget(f, name, 1, "red"));
    }
    bdy_list_opts lo = {.ns = "default", .limit = 2};
    bdy_list_result r;
    assert_int_equal(bdy_store_list(f->store, &WIDGETS, &lo, &r, NULL), 0);
    char *token = r.continue_token;
    r.continue_token = NULL;
    bdy_list_result_free(&r);
    /* History holds 4 events; 5 more writes push the token's RV out. */
    for (int i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof(name), "x%d", i);
        json_object_put(create_widget(f, name, 1, "red"));
    }
    lo.continue_token = token;
    assert_int_equal(bdy_store_list(f->store, &WIDGETS, &lo, &r, NULL), BDY_EEXPIRED);
    free(token);
}

static void test_watch_order_and_selectors(void **state)
{
    fixture *f = *state;
    uint64_t start = current_rv(f);
    bdy_watch *all = NULL;
    bdy_watch *red = NULL;
    assert_int_equal(bdy_store_watch(f->store, &WIDGETS, NULL, NULL, NULL, start, &all, NULL), 0);
    assert_int_equal(
        bdy_store_watch(f->store, &WIDGETS, "default", "color=red", NULL, start, &red, NULL), 0);
    json_object_put(create_widget(f, "a", 1, "red"));
    json_object_put(create_widget(f, "b", 1, "blue"));
    json_object *p = json_tokener_parse("{\"metadata\":{\"labels\":{\"color\":\"blue\"}}}");
    assert_int_equal(bdy_store_patch(f->store, &WIDGETS, "default", "a", BDY_PATCH_MERGE, p, false,
                                     NULL, NULL, NULL),
                     0);
    json_object_put(p);
    p = json_tokener_parse("{\"metadata\":{\"labels\":{\"color\":\"red\"}}}");
    assert_int_equal(bdy_store_patch(f->store, &WIDGETS, "default", "b", BDY_PATCH_MERGE, p, false,
                                     NULL, NULL, NULL),
                     0);
    json_object_put(p);

    bdy_watch_event ev;
    const char *names[] = {"a", "b", "a", "b"};
    const bdy_event_type types[] = {BDY_EVENT_ADDED, BDY_EVENT_ADDED, BDY_EVENT_MODIFIED,
                                    BDY_EVENT_MODIFIED};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(next_event(f, all, &ev), 0);
        assert_int_equal(ev.type, types[i]);
        assert_string_equal(meta(ev.object, "metadata.name"), names[i]);
        json_object_put(ev.object);
    }
    /* The red watcher: a added; a turned blue → DELETED; b turned red → ADDED. */
    const char *rnames[] = {"a", "a", "b"};
    const bdy_event_type rtypes[] = {BDY_EVENT_ADDED, BDY_EVENT_DELETED, BDY_EVENT_ADDED};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(next_event(f, red, &ev), 0);
        assert_int_equal(ev.type, rtypes[i]);
        assert_string_equal(meta(ev.object, "metadata.name"), rnames[i]);
        /* Gone from view: the object as the watcher saw it, at the
         * event's version. */
        assert_string_equal(meta(ev.object, "metadata.labels.color"), "red");
        char rv[24];
        snprintf(rv, sizeof(rv), "%llu", (unsigned long long)ev.resource_version);
        assert_string_equal(meta(ev.object, "metadata.resourceVersion"), rv);
        json_object_put(ev.object);
    }
    assert_int_equal(bdy_store_watch_next(f->store, red, 0, &ev), BDY_ETIMEOUT);
    bdy_store_watch_close(f->store, all);
    bdy_store_watch_close(f->store, red);

    /* Resuming from the middle replays only what came after. */
    bdy_watch *mid = NULL;
    assert_int_equal(bdy_store_watch(f->store, &WIDGETS, NULL, NULL, NULL, start + 2, &mid, NULL),
                     0);
    assert_int_equal(next_event(f, mid, &ev), 0);
    assert_int_equal(ev.resource_version, start + 3);
    json_object_put(ev.object);
    bdy_store_watch_close(f->store, mid);
}

/* A watch-log event for a WorldInstance in default, its strings owned
 * (object is taken, and may be NULL for out of memory). */
static bdy__event world_event(uint64_t rv, bdy_event_type type, char *object)
{
    return (bdy__event){.rv = rv,
                        .type = type,
                        .group = strdup("bindery.dev"),
                        .resource = strdup("worldinstances"),
                        .ns = strdup("default"),
                        .object = object};
}

/* The store commits a batch, then appends its events: a list read in
 * between has a resourceVersion whose own events reach the watch log after
 * a watch from it has opened. They are not delivered again (the informer
 * took a DELETED among them for news and forgot a world it had). */
static void test_watchlog_skips_events_at_or_below_start(void **state)
{
    (void)state;
    bdy__watchlog log;
    assert_int_equal(bdy__watchlog_init(&log, 16, 0, 10), 0);
    bdy_watch *w = NULL;
    assert_int_equal(
        bdy__watchlog_open(&log, "bindery.dev", "worldinstances", NULL, NULL, NULL, 12, &w), 0);
    bdy__event ev[3];
    for (int i = 0; i < 3; i++)
        ev[i] = world_event((uint64_t)(11 + i), i == 0 ? BDY_EVENT_DELETED : BDY_EVENT_ADDED,
                            strdup("{\"metadata\":{\"name\":\"w\"}}"));
    bdy__watchlog_append(&log, ev, 3);
    bdy_watch_event out;
    assert_int_equal(bdy__watchlog_next(&log, w, 0, &out), 0);
    assert_int_equal(out.resource_version, 13);
    json_object_put(out.object);
    assert_int_equal(bdy__watchlog_next(&log, w, 0, &out), BDY_ETIMEOUT);
    bdy__watchlog_close_watch(&log, w);
    bdy__watchlog_destroy(&log);
}

/* An event the log cannot hand out (its text could not be copied or
 * parsed: out of memory) is never skipped silently: the watcher is told
 * it expired, so it lists again. */
static void test_watchlog_unreadable_event_expires(void **state)
{
    (void)state;
    bdy__watchlog log;
    assert_int_equal(bdy__watchlog_init(&log, 16, 0, 10), 0);
    bdy_watch *w = NULL;
    assert_int_equal(
        bdy__watchlog_open(&log, "bindery.dev", "worldinstances", NULL, NULL, NULL, 10, &w), 0);
    bdy__event ev[2] = {
        world_event(11, BDY_EVENT_ADDED, strdup("{\"metadata\":")),
        world_event(12, BDY_EVENT_ADDED, strdup("{\"metadata\":{\"name\":\"w\"}}"))};
    bdy__watchlog_append(&log, ev, 2);
    bdy_watch_event out;
    assert_int_equal(bdy__watchlog_next(&log, w, 0, &out), BDY_EEXPIRED);
    bdy__watchlog_close_watch(&log, w);
    bdy__watchlog_destroy(&log);
}

/* The history is bounded in bytes as well as in events: past the limit
 * the oldest go (the newest always stays), the floor rises with them, and
 * a watch that still needed them is told to relist. */
static void test_watchlog_bounded_in_bytes(void **state)
{
    (void)state;
    bdy__watchlog log;
    assert_int_equal(bdy__watchlog_init(&log, 16, 100, 10), 0);
    bdy_watch *early = NULL;
    assert_int_equal(
        bdy__watchlog_open(&log, "bindery.dev", "worldinstances", NULL, NULL, NULL, 10, &early), 0);
    const char *obj = "{\"metadata\":{\"name\":\"w\"},\"x\":\"01234567\"}"; /* 40 bytes */
    assert_int_equal(strlen(obj), 40);
    for (int i = 0; i < 4; i++) {
        bdy__event ev = world_event((uint64_t)(11 + i), BDY_EVENT_ADDED, strdup(obj));
        bdy__watchlog_append(&log, &ev, 1);
    }
    /* 160 bytes appended, 100 kept at most: events 13 and 14 remain. */
    assert_int_equal(log.bytes, 80);
    assert_int_equal(bdy__watchlog_floor(&log), 12);
    bdy_watch_event out;
    assert_int_equal(bdy__watchlog_next(&log, early, 0, &out), BDY_EEXPIRED);
    bdy__watchlog_close_watch(&log, early);
    bdy_watch *late = NULL;
    assert_int_equal(
        bdy__watchlog_open(&log, "bindery.dev", "worldinstances", NULL, NULL, NULL, 11, &late),
        BDY_EEXPIRED);
    assert_int_equal(
        bdy__watchlog_open(&log, "bindery.dev", "worldinstances", NULL, NULL, NULL, 12, &late), 0);
    assert_int_equal(bdy__watchlog_next(&log, late, 0, &out), 0);
    assert_int_equal(out.resource_version, 13);
    json_object_put(out.object);
    assert_int_equal(bdy__watchlog_next(&log, late, 0, &out), 0);
    assert_int_equal(out.resource_version, 14);
    json_object_put(out.object);
    bdy__watchlog_close_watch(&log, late);
    /* One event larger than the limit is still kept: it is the newest. */
    char *big = malloc(301);
    memset(big, ' ', 300);
    big[0] = '{';
    big[299] = '}';
    big[300] = '\0';
    bdy__event ev = world_event(15, BDY_EVENT_ADDED, big);
    bdy__watchlog_append(&log, &ev, 1);
    assert_int_equal(log.bytes, 300);
    assert_int_equal(bdy__watchlog_floor(&log), 14);
    bdy__watchlog_destroy(&log);
}

static void test_watch_expiry_never_skips(void **state)
{
    fixture *f = *state;
    uint64_t start = current_rv(f);
    bdy_watch *slow = NULL;
    assert_int_equal(bdy_store_watch(f->store, &WIDGETS, NULL, NULL, NULL, start, &slow, NULL), 0);
    for (int i = 0; i < 6; i++) {
        char name[16];
        snprintf(name, sizeof(name), "w%d", i);
        json_object_put(create_widget(f, name, 1, "red"));
    }
    /* The ring holds 4: the slow watcher's next event is gone, so it must be
     * told to relist rather than skip ahead. */
    bdy_watch_event ev;
    assert_int_equal(bdy_store_watch_next(f->store, slow, 0, &ev), BDY_EEXPIRED);
    bdy_store_watch_close(f->store, slow);
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_store_watch(f->store, &WIDGETS, NULL, NULL, NULL, start, &slow, &eb),
                     BDY_EEXPIRED);
    assert_non_null(strstr(eb.message, "too old resource version"));
    /* A recent RV still works. */
    assert_int_equal(
        bdy_store_watch(f->store, &WIDGETS, NULL, NULL, NULL, current_rv(f) - 2, &slow, NULL), 0);
    assert_int_equal(next_event(f, slow, &ev), 0);
    json_object_put(ev.object);
    bdy_store_watch_close(f->store, slow);
}

typedef struct writer_arg {
    fixture *f;
    int id;
    int ok;
} writer_arg;

static void *concurrent_writer(void *p)
{
    writer_arg *a = p;
    for (int i = 0; i < 40; i++) {
        char name[32];
        snprintf(name, sizeof(name), "t%d-%d", a->id, i);
        json_object *w = widget(name, 1, "red");
        if (bdy_store_create(a->f->store, &WIDGETS, "default", w, NULL, NULL, NULL) == 0)
            a->ok++;
        json_object_put(w);
    }
    return NULL;
}

static void test_concurrent_writers_and_restart(void **state)
{
    fixture *f = *state;
    uint64_t start = current_rv(f);
    bdy_watch *w = NULL;
    assert_int_equal(bdy_store_watch(f->store, &WIDGETS, NULL, NULL, NULL, start, &w, NULL), 0);
    pthread_t th[8];
    writer_arg args[8];
    for (int i = 0; i < 8; i++) {
        args[i] = (writer_arg){f, i, 0};
        pthread_create(&th[i], NULL, concurrent_writer, &args[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].ok, 40);
    }
    assert_int_equal(current_rv(f), start + 320);
    /* The watch sees all 320 in strictly increasing RV order. */
    bdy_watch_event ev;
    uint64_t last = start;
    for (int i = 0; i < 320; i++) {
        assert_int_equal(next_event(f, w, &ev), 0);
        assert_int_equal(ev.resource_version, last + 1);
        last = ev.resource_version;
        json_object_put(ev.object);
    }
    bdy_store_watch_close(f->store, w);

    /* Everything acknowledged survives a restart, CRDs included. */
    uint64_t rv = current_rv(f);
    bdy_store_close(f->store);
    f->store = open_store(f->dir, 1000);
    assert_int_equal(current_rv(f), rv);
    bdy_list_opts lo = {0};
    bdy_list_result r;
    assert_int_equal(bdy_store_list(f->store, &WIDGETS, &lo, &r, NULL), 0);
    assert_int_equal(json_object_array_length(r.items), 320);
    assert_int_equal(r.resource_version, rv);
    bdy_list_result_free(&r);
    json_object_put(create_widget(f, "after-restart", 1, "blue"));
    assert_int_equal(current_rv(f), rv + 1);
}

static void test_crd_delete_cascades(void **state)
{
    fixture *f = *state;
    json_object_put(create_widget(f, "w1", 1, "red"));
    bdy_resource_info info;
    assert_int_equal(bdy_store_resource_info(f->store, &WIDGETS, &info), 0);
    assert_string_equal(info.kind, "Widget");
    assert_true(info.namespaced);
    assert_true(info.status_subresource);
    assert_int_equal(bdy_store_resolve_kind(f->store, "test.dev/v1", "Widget", &info), 0);
    assert_string_equal(info.resource, "widgets");

    bdy_watch *w = NULL;
    assert_int_equal(bdy_store_watch(f->store, &WIDGETS, NULL, NULL, NULL, current_rv(f), &w, NULL),
                     0);
    bool deleted = false;
    assert_int_equal(bdy_store_delete(f->store, &BDY_GVR_CRDS, NULL, "widgets.test.dev", NULL, NULL,
                                      &deleted, NULL),
                     0);
    assert_true(deleted);
    bdy_watch_event ev;
    assert_int_equal(next_event(f, w, &ev), 0);
    assert_int_equal(ev.type, BDY_EVENT_DELETED);
    json_object_put(ev.object);
    bdy_store_watch_close(f->store, w);
    assert_int_equal(bdy_store_resource_info(f->store, &WIDGETS, &info), BDY_ENOTFOUND);
    json_object *o = widget("w2", 1, "red");
    assert_int_equal(bdy_store_create(f->store, &WIDGETS, "default", o, NULL, NULL, NULL),
                     BDY_ENOTFOUND);
    json_object_put(o);
}

typedef struct creator {
    fixture *f;
    int id;
    volatile bool stop;
    int made;
} creator;

static void *create_loop(void *arg)
{
    creator *c = arg;
    char name[48];
    for (int i = 0; i < 100000 && !c->stop; i++) {
        snprintf(name, sizeof(name), "c%d-%d", c->id, i);
        json_object *o = widget(name, 1, "red");
        c->made += bdy_store_create(c->f->store, &WIDGETS, "default", o, NULL, NULL, NULL) == 0;
        json_object_put(o);
    }
    return NULL;
}

/* Creates racing a CRD's deletion: one that lands in the deletion's own
 * write batch, after it, is refused too (the CRD is still registered until
 * the commit), so once the deletion is done no object of the CRD is left in
 * the file, where it would come back if the CRD were made again. */
static void test_crd_delete_races_creates(void **state)
{
    fixture *f = *state;
    enum { WRITERS = 32 };
    creator c[WRITERS];
    pthread_t t[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        c[i] = (creator){.f = f, .id = i};
        assert_int_equal(pthread_create(&t[i], NULL, create_loop, &c[i]), 0);
    }
    struct timespec ts = {0, 100 * 1000000L};
    nanosleep(&ts, NULL);
    bool deleted = false;
    assert_int_equal(bdy_store_delete(f->store, &BDY_GVR_CRDS, NULL, "widgets.test.dev", NULL, NULL,
                                      &deleted, NULL),
                     0);
    assert_true(deleted);
    int made = 0;
    for (int i = 0; i < WRITERS; i++) {
        c[i].stop = true;
        pthread_join(t[i], NULL);
        made += c[i].made;
    }
    assert_true(made > 0);
    char path[128];
    snprintf(path, sizeof(path), "%s/bindery.db", f->dir);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM objects WHERE res='widgets'"), 0);
}

/* A CRD that names a built-in resource is stored but never serves it; its
 * deletion, finalizer or not, takes none of the built-in's objects. */
static void test_crd_naming_a_builtin_takes_nothing(void **state)
{
    fixture *f = *state;
    json_object *lease =
        json_tokener_parse("{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\","
                           "\"metadata\":{\"name\":\"keep\"},\"spec\":{\"holderIdentity\":\"a\"}}");
    assert_int_equal(
        bdy_store_create(f->store, &BDY_GVR_LEASES, "default", lease, NULL, NULL, NULL), 0);
    json_object_put(lease);
    json_object *crd = json_tokener_parse(
        "{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"CustomResourceDefinition\","
        "\"metadata\":{\"name\":\"leases.coordination.k8s.io\",\"finalizers\":[\"x.io/f\"]},"
        "\"spec\":{\"group\":\"coordination.k8s.io\",\"scope\":\"Namespaced\","
        "\"names\":{\"plural\":\"leases\",\"singular\":\"lease\",\"kind\":\"Lease\"},"
        "\"versions\":[{\"name\":\"v1\",\"served\":true,\"storage\":true,"
        "\"schema\":{\"openAPIV3Schema\":{\"type\":\"object\","
        "\"x-kubernetes-preserve-unknown-fields\":true}}}]}}");
    assert_non_null(crd);
    assert_int_equal(bdy_store_create(f->store, &BDY_GVR_CRDS, NULL, crd, NULL, NULL, NULL), 0);
    json_object_put(crd);
    assert_int_equal(bdy_store_delete(f->store, &BDY_GVR_CRDS, NULL, "leases.coordination.k8s.io",
                                      NULL, NULL, NULL, NULL),
                     0);
    json_object *p = json_tokener_parse("{\"metadata\":{\"finalizers\":null}}");
    assert_int_equal(bdy_store_patch(f->store, &BDY_GVR_CRDS, NULL, "leases.coordination.k8s.io",
                                     BDY_PATCH_MERGE, p, false, NULL, NULL, NULL),
                     0);
    json_object_put(p);
    json_object *got = NULL;
    assert_int_equal(
        bdy_store_get(f->store, &BDY_GVR_CRDS, NULL, "leases.coordination.k8s.io", &got, NULL),
        BDY_ENOTFOUND);
    assert_int_equal(bdy_store_get(f->store, &BDY_GVR_LEASES, "default", "keep", &got, NULL), 0);
    json_object_put(got);
}

static void test_invalid_crd_refused(void **state)
{
    fixture *f = *state;
    json_object *crd = json_tokener_parse(widget_crd);
    json_object_object_add(json_object_object_get(crd, "metadata"), "name",
                           json_object_new_string("wrong.test.dev"));
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_store_create(f->store, &BDY_GVR_CRDS, NULL, crd, NULL, NULL, &eb),
                     BDY_EINVALID_OBJECT);
    assert_true(eb.ncauses >= 1);
    json_object_put(crd);
}

static void test_apply_create_then_update(void **state)
{
    fixture *f = *state;
    json_object *w = json_tokener_parse("{\"apiVersion\":\"test.dev/v1\",\"kind\":\"Widget\","
                                        "\"metadata\":{\"name\":\"ap\",\"namespace\":\"default\"},"
                                        "\"spec\":{\"size\":2}}");
    bool created = false;
    bool changed = false;
    assert_int_equal(bdy_store_apply(f->store, w, NULL, &created, &changed, NULL), 0);
    assert_true(created);
    assert_true(changed);
    uint64_t rv = current_rv(f);
    assert_int_equal(bdy_store_apply(f->store, w, NULL, &created, &changed, NULL), 0);
    assert_false(created);
    assert_false(changed);
    assert_int_equal(current_rv(f), rv); /* unchanged manifest: nothing written */
    json_object_object_add(json_object_object_get(w, "spec"), "size", json_object_new_int(3));
    assert_int_equal(bdy_store_apply(f->store, w, NULL, &created, &changed, NULL), 0);
    assert_false(created);
    assert_true(changed);
    assert_int_equal(current_rv(f), rv + 1);
    /* Strict, as the config's manifests are applied: a field the schema
     * does not have is refused, not dropped. */
    json_object_object_add(json_object_object_get(w, "spec"), "sise", json_object_new_int(4));
    bdy_write_opts strict = {.unknown = BDY_UNKNOWN_REJECT};
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_store_apply(f->store, w, &strict, &created, &changed, &eb),
                     BDY_EINVALID_OBJECT);
    assert_non_null(strstr(eb.message, "sise"));
    assert_int_equal(current_rv(f), rv + 1);
    json_object_put(w);
    json_object *unknown = json_tokener_parse(
        "{\"apiVersion\":\"nope.dev/v1\",\"kind\":\"Nope\",\"metadata\":{\"name\":\"x\"}}");
    assert_int_equal(bdy_store_apply(f->store, unknown, NULL, &created, NULL, NULL), BDY_ENOTFOUND);
    json_object_put(unknown);
}

/* A CRD applied unchanged writes nothing (its conditions keep their
 * times); its scope and its storage version cannot change (objects kept at
 * the old ones would no longer be served). */
static void test_crd_updates(void **state)
{
    fixture *f = *state;
    json_object *crd = json_tokener_parse(widget_crd);
    bool created = true;
    uint64_t rv = current_rv(f);
    sleep(1); /* a condition rewritten now would carry another second */
    assert_int_equal(bdy_store_apply(f->store, crd, NULL, &created, NULL, NULL), 0);
    assert_false(created);
    assert_int_equal(current_rv(f), rv);

    json_object *scoped = NULL;
    assert_int_equal(json_object_deep_copy(crd, &scoped, NULL), 0);
    json_object_object_add(json_object_object_get(scoped, "spec"), "scope",
                           json_object_new_string("Cluster"));
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_store_apply(f->store, scoped, NULL, &created, NULL, &eb),
                     BDY_EINVALID_OBJECT);
    assert_string_equal(eb.causes[0].field, "spec.scope");
    json_object_put(scoped);

    json_object *renamed = NULL;
    assert_int_equal(json_object_deep_copy(crd, &renamed, NULL), 0);
    json_object *v0 = json_object_array_get_idx(
        json_object_object_get(json_object_object_get(renamed, "spec"), "versions"), 0);
    json_object_object_add(v0, "name", json_object_new_string("v2"));
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_store_apply(f->store, renamed, NULL, &created, NULL, &eb),
                     BDY_EINVALID_OBJECT);
    assert_string_equal(eb.causes[0].field, "spec.versions");
    json_object_put(renamed);
    assert_int_equal(current_rv(f), rv);
    json_object_put(crd);
}

/* An Event named name in namespace ns (about a Widget). */
static void create_event(fixture *f, const char *ns, const char *name)
{
    char text[256];
    snprintf(text, sizeof(text),
             "{\"metadata\":{\"name\":\"%s\"},\"involvedObject\":{\"kind\":\"Widget\","
             "\"name\":\"w\"},\"reason\":\"Test\",\"message\":\"m\"}",
             name);
    json_object *e = json_tokener_parse(text);
    assert_int_equal(bdy_store_create(f->store, &BDY_GVR_EVENTS, ns, e, NULL, NULL, NULL), 0);
    json_object_put(e);
}

/* Records beyond half the watch history are not removed with their
 * namespace in one commit: that many watch events at once would expire
 * every watch. The 409 says what to do. (History of 4: at most 2.) */
static void test_namespace_records_cap(void **state)
{
    fixture *f = *state;
    json_object *ns = json_tokener_parse("{\"metadata\":{\"name\":\"busy\"}}");
    assert_int_equal(bdy_store_create(f->store, &BDY_GVR_NAMESPACES, NULL, ns, NULL, NULL, NULL),
                     0);
    json_object_put(ns);
    static const char *const events[] = {"e0", "e1", "e2"};
    for (size_t i = 0; i < 3; i++)
        create_event(f, "busy", events[i]);
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(
        bdy_store_delete(f->store, &BDY_GVR_NAMESPACES, NULL, "busy", NULL, NULL, NULL, &eb),
        BDY_ECONFLICT);
    assert_non_null(
        strstr(eb.message, "holds 3 records (events), more than one delete removes (2"));
    assert_int_equal(
        bdy_store_delete(f->store, &BDY_GVR_EVENTS, "busy", "e0", NULL, NULL, NULL, NULL), 0);
    assert_int_equal(
        bdy_store_delete(f->store, &BDY_GVR_NAMESPACES, NULL, "busy", NULL, NULL, NULL, NULL), 0);
}

static void test_namespace_rules(void **state)
{
    fixture *f = *state;
    json_object *ns = json_tokener_parse("{\"metadata\":{\"name\":\"arena\"}}");
    json_object *out = NULL;
    assert_int_equal(bdy_store_create(f->store, &BDY_GVR_NAMESPACES, NULL, ns, NULL, &out, NULL),
                     0);
    assert_string_equal(meta(out, "status.phase"), "Active");
    assert_null(bdy_json_path_get(out, "metadata.namespace"));
    json_object_put(out);
    json_object_put(ns);
    /* A member that is a JSON null (a kind without a schema keeps it) is
     * no reason to refuse the object's status writes: they were answered
     * "out of memory", for ever. */
    ns = json_tokener_parse("{\"metadata\":{\"name\":\"nully\"},\"spec\":null}");
    assert_int_equal(bdy_store_create(f->store, &BDY_GVR_NAMESPACES, NULL, ns, NULL, &out, NULL),
                     0);
    json_object_object_add(out, "status", json_tokener_parse("{\"phase\":\"Active\"}"));
    json_object *again = NULL;
    assert_int_equal(
        bdy_store_update_status(f->store, &BDY_GVR_NAMESPACES, NULL, out, NULL, &again, NULL), 0);
    assert_true(json_object_object_get_ex(again, "spec", NULL));
    assert_null(json_object_object_get(again, "spec"));
    json_object_put(again);
    json_object_put(out);
    json_object_put(ns);
    ns = json_tokener_parse("{\"metadata\":{\"name\":\"a.b\"}}");
    assert_int_equal(bdy_store_create(f->store, &BDY_GVR_NAMESPACES, NULL, ns, NULL, NULL, NULL),
                     BDY_EINVALID_OBJECT);
    json_object_put(ns);
    json_object *w = widget("w1", 1, "red");
    assert_int_equal(bdy_store_create(f->store, &WIDGETS, "arena", w, NULL, NULL, NULL), 0);
    json_object_put(w);
    /* A namespace that still holds objects is not deleted, and says what
     * it holds. Its Events are no such objects. */
    static const char *const events[] = {"e1", "e2", "e3"};
    for (size_t i = 0; i < 3; i++)
        create_event(f, "arena", events[i]);
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(
        bdy_store_delete(f->store, &BDY_GVR_NAMESPACES, NULL, "arena", NULL, NULL, NULL, &eb),
        BDY_ECONFLICT);
    assert_non_null(strstr(eb.message, "still holds 1 widgets.test.dev;"));
    assert_int_equal(bdy_store_delete(f->store, &WIDGETS, "arena", "w1", NULL, NULL, NULL, NULL),
                     0);
    /* A dry run removes nothing. */
    bdy_delete_opts dry = {.dry_run = true};
    assert_int_equal(
        bdy_store_delete(f->store, &BDY_GVR_NAMESPACES, NULL, "arena", &dry, NULL, NULL, NULL), 0);
    assert_int_equal(bdy_store_get(f->store, &BDY_GVR_EVENTS, "arena", "e2", &out, NULL), 0);
    json_object_put(out);
    /* Then it goes, its Events with it, each seen going by a watch. */
    uint64_t start = current_rv(f);
    bdy_watch *ew = NULL;
    assert_int_equal(
        bdy_store_watch(f->store, &BDY_GVR_EVENTS, "arena", NULL, NULL, start, &ew, NULL), 0);
    bool gone = false;
    assert_int_equal(
        bdy_store_delete(f->store, &BDY_GVR_NAMESPACES, NULL, "arena", NULL, NULL, &gone, NULL), 0);
    assert_true(gone);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(bdy_store_get(f->store, &BDY_GVR_EVENTS, "arena", events[i], &out, NULL),
                         BDY_ENOTFOUND);
        bdy_watch_event ev;
        assert_int_equal(next_event(f, ew, &ev), 0);
        assert_int_equal(ev.type, BDY_EVENT_DELETED);
        json_object_put(ev.object);
    }
    bdy_store_watch_close(f->store, ew);
    assert_int_equal(bdy_store_get(f->store, &BDY_GVR_NAMESPACES, NULL, "arena", &out, NULL),
                     BDY_ENOTFOUND);
    /* One held by a finalizer while it goes takes no new objects, or they
     * would outlive it once the finalizer is removed. */
    ns = json_tokener_parse("{\"metadata\":{\"name\":\"held\",\"finalizers\":[\"x.dev/y\"]}}");
    assert_int_equal(bdy_store_create(f->store, &BDY_GVR_NAMESPACES, NULL, ns, NULL, NULL, NULL),
                     0);
    json_object_put(ns);
    bool deleted = true;
    assert_int_equal(
        bdy_store_delete(f->store, &BDY_GVR_NAMESPACES, NULL, "held", NULL, NULL, &deleted, NULL),
        0);
    assert_false(deleted);
    w = widget("late", 1, "red");
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_store_create(f->store, &WIDGETS, "held", w, NULL, NULL, &eb),
                     BDY_EFORBIDDEN);
    assert_non_null(strstr(eb.message, "being terminated"));
    json_object_put(w);
    /* Built-ins update without a resourceVersion. */
    json_object *lease = json_tokener_parse(
        "{\"metadata\":{\"name\":\"leader\"},\"spec\":{\"holderIdentity\":\"a\"}}");
    assert_int_equal(
        bdy_store_create(f->store, &BDY_GVR_LEASES, "default", lease, NULL, NULL, NULL), 0);
    json_object_object_add(json_object_object_get(lease, "spec"), "holderIdentity",
                           json_object_new_string("b"));
    assert_int_equal(
        bdy_store_update(f->store, &BDY_GVR_LEASES, "default", lease, NULL, &out, NULL), 0);
    assert_string_equal(meta(out, "spec.holderIdentity"), "b");
    json_object_put(out);
    json_object_put(lease);
}

/* ---- opening bad data folders ------------------------------------------- */

static int open_rc(const char *dir, bdy_errbuf *eb)
{
    bdy_sqlite_opts o = {.data_dir = dir};
    bdy_store *s = NULL;
    bdy_errbuf_clear(eb);
    int rc = bdy_store_sqlite_open(&o, &s, eb);
    bdy_store_close(s);
    return rc;
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void test_bad_data_files(void **state)
{
    (void)state;
    char dir[64] = "/tmp/bdy-bad-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    bdy_errbuf eb;

    /* A folder with other files but no database is never a silent new store. */
    snprintf(path, sizeof(path), "%s/bindery.db-wal", dir);
    write_file(path, "x");
    assert_int_equal(open_rc(dir, &eb), BDY_ENOTFOUND);
    assert_non_null(strstr(eb.message, "missing"));
    unlink(path);

    /* Garbage in the database file. */
    snprintf(path, sizeof(path), "%s/bindery.db", dir);
    write_file(path, "this is not a database, just text that is long enough to look like one "
                     "to a careless reader, repeated: not a database, not a database.");
    assert_int_equal(open_rc(dir, &eb), BDY_ECORRUPT);
    assert_non_null(strstr(eb.message, path));
    unlink(path);

    /* Someone else's SQLite database. */
    sql_exec(path, "CREATE TABLE t(x); INSERT INTO t VALUES(1);");
    assert_int_equal(open_rc(dir, &eb), BDY_ECORRUPT);
    assert_non_null(strstr(eb.message, "not a Bindery store"));
    unlink(path);

    /* A first start cut short before its schema's commit: an empty store
     * file (no byte, or a database without a table) is made anew... */
    write_file(path, "");
    assert_int_equal(open_rc(dir, &eb), 0);
    unlink(path);
    sql_exec(path, "PRAGMA user_version = 0;");
    assert_int_equal(open_rc(dir, &eb), 0);
    unlink(path);
    /* ...but not beside other data, which says more went missing. */
    write_file(path, "");
    char other[128];
    snprintf(other, sizeof(other), "%s/claims.db", dir);
    write_file(other, "");
    assert_int_equal(open_rc(dir, &eb), BDY_ECORRUPT);
    unlink(other);
    unlink(path);

    /* A good store, then damaged in the middle. */
    assert_int_equal(open_rc(dir, &eb), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_SET);
    fwrite("garbage!garbage!", 1, 16, fp);
    fclose(fp);
    assert_int_equal(open_rc(dir, &eb), BDY_ECORRUPT);
    unlink(path);

    /* Read-only file. */
    assert_int_equal(open_rc(dir, &eb), 0);
    chmod(path, 0444);
    assert_int_equal(open_rc(dir, &eb), BDY_EREADONLY);
    assert_non_null(strstr(eb.message, "read-only"));
    chmod(path, 0644);
    /* Read-only folder. */
    chmod(dir, 0555);
    assert_int_equal(open_rc(dir, &eb), BDY_EREADONLY);
    chmod(dir, 0755);
    assert_int_equal(open_rc(dir, &eb), 0);
    rm_rf(dir);
}

/* A store written when the objects table was WITHOUT ROWID opens with
 * every object, its resource version and its CRDs, is converted to the
 * rowid layout (same schema version), takes writes, and still takes the
 * older Bindery's write statement, so going back a release keeps working. */
static void test_without_rowid_layout_converted(void **state)
{
    fixture *f = *state;
    char name[32];
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "w-%04d", i);
        json_object_put(create_widget(f, name, 1 + i % 100, "red"));
    }
    uint64_t rv = current_rv(f);
    bdy_store_close(f->store);
    f->store = NULL;
    char path[128];
    snprintf(path, sizeof(path), "%s/bindery.db", f->dir);
    /* The file as the WITHOUT ROWID layout left it. */
    sql_exec(path, "BEGIN;"
                   "CREATE TABLE v1(grp TEXT NOT NULL, res TEXT NOT NULL, ns TEXT NOT NULL,"
                   " name TEXT NOT NULL, rv INTEGER NOT NULL, body TEXT NOT NULL,"
                   " PRIMARY KEY(grp, res, ns, name)) WITHOUT ROWID;"
                   "INSERT INTO v1 SELECT grp, res, ns, name, rv, body FROM objects;"
                   "DROP TABLE objects; ALTER TABLE v1 RENAME TO objects; COMMIT;");
    const char *has_index = "SELECT count(*) FROM sqlite_master WHERE type='index' AND "
                            "name='objects_key'";
    assert_int_equal(sql_int(path, has_index), 0);

    f->store = open_store(f->dir, 1000);
    assert_int_equal(current_rv(f), rv);
    assert_int_equal(sql_int(path, "SELECT value FROM meta WHERE key='schema_version'"), 1);
    assert_int_equal(sql_int(path, has_index), 1);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE sql LIKE "
                                   "'%WITHOUT ROWID%'"),
                     0);
    bdy_list_opts lo = {0};
    bdy_list_result r;
    assert_int_equal(bdy_store_list(f->store, &WIDGETS, &lo, &r, NULL), 0);
    assert_int_equal(json_object_array_length(r.items), 200);
    assert_string_equal(json_object_get_string(bdy_json_path_get(
                            json_object_array_get_idx(r.items, 0), "metadata.name")),
                        "w-0000");
    assert_string_equal(json_object_get_string(bdy_json_path_get(
                            json_object_array_get_idx(r.items, 199), "metadata.name")),
                        "w-0199");
    bdy_list_result_free(&r);

    /* An update keeps the row; a create adds one. */
    json_object *w = NULL;
    assert_int_equal(bdy_store_get(f->store, &WIDGETS, "default", "w-0100", &w, NULL), 0);
    json_object_object_add(json_object_object_get(w, "spec"), "color",
                           json_object_new_string("blue"));
    json_object *out = NULL;
    assert_int_equal(bdy_store_update(f->store, &WIDGETS, "default", w, NULL, &out, NULL), 0);
    json_object_put(w);
    json_object_put(out);
    json_object_put(create_widget(f, "after-conversion", 1, "blue"));
    assert_int_equal(current_rv(f), rv + 2);
    assert_int_equal(bdy_store_get(f->store, &WIDGETS, "default", "w-0100", &w, NULL), 0);
    assert_string_equal(json_object_get_string(bdy_json_path_get(w, "spec.color")), "blue");
    json_object_put(w);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM objects WHERE res='widgets'"), 201);
    uint64_t rv_now = current_rv(f);
    bdy_store_close(f->store);
    f->store = NULL;

    /* The older Bindery's write (REPLACE by key) replaces, not duplicates. */
    sql_exec(path, "INSERT OR REPLACE INTO objects SELECT grp, res, ns, name, rv, body FROM "
                   "objects WHERE name='w-0001'");
    assert_int_equal(sql_int(path, "SELECT count(*) FROM objects WHERE res='widgets'"), 201);

    /* And the converted file opens as it is. */
    f->store = open_store(f->dir, 1000);
    assert_int_equal(current_rv(f), rv_now);
    assert_int_equal(sql_int(path, has_index), 1);
}

/* One process per data folder: a second open is refused while the first
 * has it, and succeeds once it is closed. */
static void test_data_folder_taken_once(void **state)
{
    fixture *f = *state;
    bdy_errbuf eb;
    assert_int_equal(open_rc(f->dir, &eb), BDY_EBUSY);
    assert_non_null(strstr(eb.message, "in use by another Bindery process"));
    bdy_store_close(f->store);
    f->store = NULL;
    assert_int_equal(open_rc(f->dir, &eb), 0);
    f->store = open_store(f->dir, 1000);
    /* A lock file alone does not make a fresh folder look used. */
    char dir[64];
    snprintf(dir, sizeof(dir), "/tmp/bdy-store-lock-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/bindery.lock", dir);
    write_file(path, "");
    assert_int_equal(open_rc(dir, &eb), 0);
    rm_rf(dir);
}

/* Damage past the header and schema: the file opens (start-up does not
 * read every page), the background check, once started, finds it and the
 * ping, which /readyz asks, fails from then on. */
static void test_deep_damage_fails_ping(void **state)
{
    fixture *f = *state;
    char name[32];
    for (int i = 0; i < 600; i++) {
        snprintf(name, sizeof(name), "w-%04d", i);
        json_object *w = widget(name, 1 + i % 100, "red");
        assert_int_equal(bdy_store_create(f->store, &WIDGETS, "default", w, NULL, NULL, NULL), 0);
        json_object_put(w);
    }
    bdy_errbuf eb;
    assert_int_equal(bdy_store_ping(f->store, &eb), 0);
    bdy_store_close(f->store); /* the last connection copies the WAL back */
    f->store = NULL;

    /* The widgets' keys are in the objects_key index b-tree in key order;
     * find its leaf (type 10) that holds w-0300 and unset its type. */
    char path[128];
    snprintf(path, sizeof(path), "%s/bindery.db", f->dir);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    static unsigned char page[4096];
    long found = -1;
    for (long off = 4096; found < 0 && fseek(fp, off, SEEK_SET) == 0; off += 4096) {
        if (fread(page, 1, sizeof(page), fp) != sizeof(page))
            break;
        if (page[0] == 10 && memmem(page, sizeof(page), "w-0300", 6) != NULL)
            found = off;
    }
    assert_true(found > 0);
    assert_int_equal(fseek(fp, found, SEEK_SET), 0);
    fputc(0, fp);
    fclose(fp);

    f->store = open_store(f->dir, 1000);
    /* Nothing checks the pages until the owner asks. */
    assert_int_equal(bdy_store_ping(f->store, &eb), 0);
    assert_int_equal(bdy_store_sqlite_check_start(f->store, &eb), 0);
    assert_int_equal(bdy_store_sqlite_check_start(f->store, &eb), 0); /* once */
    int rc = 0;
    for (int i = 0; i < 2000 && rc == 0; i++) {
        bdy_errbuf_clear(&eb);
        rc = bdy_store_ping(f->store, &eb);
        if (rc == 0) {
            struct timespec ts = {0, 5 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    assert_int_equal(rc, BDY_ECORRUPT);
    assert_non_null(strstr(eb.message, path));
    assert_non_null(strstr(eb.message, "corrupt"));
}

/* A patch of d1's status, optionally only if d1 is still at version rv. */
static json_object *phase_patch(const char *phase, const char *rv)
{
    char buf[160];
    if (rv != NULL)
        snprintf(buf, sizeof(buf),
                 "{\"metadata\":{\"resourceVersion\":\"%s\"},\"status\":{\"phase\":\"%s\"}}", rv,
                 phase);
    else
        snprintf(buf, sizeof(buf), "{\"status\":{\"phase\":\"%s\"}}", phase);
    return json_tokener_parse(buf);
}

/* A batch that cannot be made durable (the WAL refuses its writes) leaves
 * no trace: every write in it is told so, including one refused only
 * because of another of the same batch (its answer was worked out against
 * a write that never happened); nothing is read back, no watcher sees it,
 * the versions are given back, and the store says it is unhealthy until a
 * write reaches the disk again. */
static void test_failed_batch_leaves_no_trace(void **state)
{
    fixture *f = *state;
    json_object *d1 = create_widget(f, "d1", 1, "red");
    char rv[24];
    snprintf(rv, sizeof(rv), "%s", meta(d1, "metadata.resourceVersion"));
    json_object_put(d1);
    uint64_t start = current_rv(f);
    bdy_watch *w = NULL;
    assert_int_equal(bdy_store_watch(f->store, &WIDGETS, NULL, NULL, NULL, start, &w, NULL), 0);

    /* One batch: the second write conflicts with the first. */
    json_object *patches[2] = {phase_patch("Lost", NULL), phase_patch("AlsoLost", rv)};
    bdy_store_patch_item items[2];
    for (int i = 0; i < 2; i++)
        items[i] = (bdy_store_patch_item){.gvr = &WIDGETS,
                                          .ns = "default",
                                          .name = "d1",
                                          .type = BDY_PATCH_MERGE,
                                          .patch = patches[i],
                                          .status_only = true};
    fault_vfs_arm("-wal", FAULT_VFS_WRITE, 0, 1000);
    assert_int_equal(bdy_store_patch_many(f->store, items, 2), 0);
    assert_true(fault_vfs_failed(FAULT_VFS_WRITE) > 0);
    fault_vfs_heal();
    assert_int_equal(items[0].rc, BDY_EIO);
    assert_int_equal(items[1].rc, BDY_EIO);
    json_object *o = NULL;
    assert_int_equal(bdy_store_get(f->store, &WIDGETS, "default", "d1", &o, NULL), 0);
    assert_null(meta(o, "status.phase")); /* create leaves status out */
    assert_string_equal(meta(o, "metadata.resourceVersion"), rv);
    json_object_put(o);
    assert_int_equal(current_rv(f), start);
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_store_ping(f->store, &eb), BDY_EIO);
    assert_non_null(strstr(eb.message, "disk I/O error"));
    bdy_watch_event ev;
    assert_int_equal(bdy_store_watch_next(f->store, w, 0, &ev), BDY_ETIMEOUT);

    /* The disk works again: so does the store, with the version given back. */
    json_object *kept = phase_patch("Kept", rv);
    assert_int_equal(bdy_store_patch(f->store, &WIDGETS, "default", "d1", BDY_PATCH_MERGE, kept,
                                     true, NULL, NULL, NULL),
                     0);
    json_object_put(kept);
    assert_int_equal(bdy_store_ping(f->store, NULL), 0);
    assert_int_equal(bdy_store_watch_next(f->store, w, 1000, &ev), 0);
    assert_int_equal(ev.resource_version, start + 1);
    assert_string_equal(meta(ev.object, "status.phase"), "Kept");
    json_object_put(ev.object);
    bdy_store_watch_close(f->store, w);
    bdy_store_close(f->store);
    f->store = open_store(f->dir, 1000);
    assert_int_equal(bdy_store_get(f->store, &WIDGETS, "default", "d1", &o, NULL), 0);
    assert_string_equal(meta(o, "status.phase"), "Kept");
    json_object_put(o);
    for (int i = 0; i < 2; i++)
        json_object_put(patches[i]);
}

int main(void)
{
    /* Every test's SQLite through it: it passes every call until armed. */
    if (fault_vfs_install() != SQLITE_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_sets_server_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_errors_leave_store_unchanged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_fields_pruned_or_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generate_name_and_dry_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_object_fails_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_subresource, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patch_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nesting_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalizers_and_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_selectors_and_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_bounded_in_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_continue_token_expires, setup_small_history, teardown),
        cmocka_unit_test_setup_teardown(test_later_pages_show_the_list_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_order_and_selectors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_expiry_never_skips, setup_small_history,
                                        teardown),
        cmocka_unit_test(test_watchlog_skips_events_at_or_below_start),
        cmocka_unit_test(test_watchlog_unreadable_event_expires),
        cmocka_unit_test(test_watchlog_bounded_in_bytes),
        cmocka_unit_test_setup_teardown(test_concurrent_writers_and_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crd_delete_cascades, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crd_delete_races_creates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crd_naming_a_builtin_takes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_crd_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_create_then_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crd_updates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_namespace_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_namespace_records_cap, setup_small_history, teardown),
        cmocka_unit_test(test_bad_data_files),
        cmocka_unit_test_setup_teardown(test_data_folder_taken_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_without_rowid_layout_converted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deep_damage_fails_ping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_batch_leaves_no_trace, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
