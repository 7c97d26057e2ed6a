/* Allocation answers and release records (see pool.h). */
#include "bindery/jsonutil.h"
#include "bindery/log.h"
#include "bindery/pool.h"
#include "bindery/util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool bdy_reserved_key(const char *k)
{
    const char *slash = strchr(k, '/');
    size_t dlen = slash ? (size_t)(slash - k) : 0;
    size_t rlen = strlen(BDY_RESERVED_DOMAIN);
    if (dlen < rlen || strncmp(slash - rlen, BDY_RESERVED_DOMAIN, rlen) != 0)
        return false;
    return dlen == rlen || slash[-(ptrdiff_t)rlen - 1] == '.';
}

const bdy_gvr BDY_GVR_ALLOCATIONS = {"bindery.dev", "v1alpha1", "allocations"};

static json_object *copy_or_empty(json_object *v)
{
    json_object *out = NULL;
    if (v == NULL || json_object_deep_copy(v, &out, NULL) != 0)
        return json_object_new_object();
    return out;
}

/* The "world" member; with share, its objects are world's own (refcounted:
 * fine to serialize, not to change). */
static json_object *build_world(json_object *world, bool share)
{
    json_object *meta = bdy_jget(world, "metadata");
    json_object *status = bdy_jget(world, "status");
    json_object *w = json_object_new_object();
    json_object_object_add(w, "name", json_object_get(bdy_jget(meta, "name")));
    json_object_object_add(w, "namespace", json_object_get(bdy_jget(meta, "namespace")));
    json_object_object_add(w, "pool", json_object_get(bdy_jget(bdy_jget(world, "spec"), "pool")));
    json_object_object_add(w, "address", json_object_get(bdy_jget(status, "address")));
    json_object *ports = bdy_jget(status, "ports");
    json_object *labels = bdy_jget(meta, "labels");
    json_object *annotations = bdy_jget(meta, "annotations");
    json_object_object_add(w, "ports",
                           ports == NULL ? json_object_new_array()
                           : share       ? json_object_get(ports)
                                         : copy_or_empty(ports));
    json_object_object_add(w, "nodeName", json_object_get(bdy_jget(status, "nodeName")));
    json_object_object_add(w, "labels",
                           share && labels ? json_object_get(labels) : copy_or_empty(labels));
    /* The cold-claim reservation is bindery's own bookkeeping, not the
     * claimant's business: an answer never shows it. */
    bool reservation = json_object_object_get_ex(annotations, BDY_ANNOTATION_COLD_CLAIM, NULL);
    json_object *shown = share && annotations && !reservation ? json_object_get(annotations)
                                                              : copy_or_empty(annotations);
    json_object_object_del(shown, BDY_ANNOTATION_COLD_CLAIM);
    json_object_object_add(w, "annotations", shown);
    return w;
}

json_object *bdy_allocation_world(json_object *world)
{
    return build_world(world, false);
}

char *bdy_allocation_world_json(json_object *world)
{
    json_object *w = build_world(world, true);
    const char *text =
        json_object_to_json_string_ext(w, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    char *out = text ? strdup(text) : NULL;
    json_object_put(w);
    return out;
}

void bdy_allocation_merge_metadata(json_object *answer_world, json_object *labels,
                                   json_object *annotations)
{
    json_object *want[2] = {labels, annotations};
    static const char *const keys[2] = {"labels", "annotations"};
    for (int k = 0; k < 2; k++) {
        json_object *have = bdy_jget(answer_world, keys[k]);
        if (want[k] == NULL || have == NULL)
            continue;
        json_object_object_foreach(want[k], wk, wv)
        {
            json_object_object_add(have, wk, json_object_get(wv));
        }
    }
}

json_object *bdy_allocation_answer(json_object *world)
{
    json_object *alloc = bdy_jget(bdy_jget(world, "status"), "allocation");
    if (alloc == NULL || bdy_jget(alloc, "id") == NULL)
        return NULL;
    json_object *answer = json_object_new_object();
    json_object_object_add(answer, "allocationId", json_object_get(bdy_jget(alloc, "id")));
    json_object *source = bdy_jget(alloc, "source");
    json_object_object_add(answer, "source",
                           source ? json_object_get(source) : json_object_new_string("warm"));
    json_object_object_add(answer, "claimedAt", json_object_get(bdy_jget(alloc, "claimedAt")));
    /* The world's labels as the claimant sees them: its own plus what the
     * claim asked for (the controller copies those onto metadata shortly). */
    json_object *w = bdy_allocation_world(world);
    bdy_allocation_merge_metadata(w, bdy_jget(alloc, "labels"), bdy_jget(alloc, "annotations"));
    json_object_object_add(answer, "world", w);
    return answer;
}

int bdy_allocation_record(bdy_store *store, const char *ns, const char *world, const char *pool,
                          json_object *alloc, json_object *answer, const char *reason,
                          bdy_errbuf *eb)
{
    char now[BDY_TIMESTAMP_LEN];
    bdy_timestamp_now(now);
    json_object *record = json_object_new_object();
    json_object_object_add(record, "apiVersion", json_object_new_string("bindery.dev/v1alpha1"));
    json_object_object_add(record, "kind", json_object_new_string("Allocation"));
    json_object *rmeta = json_object_new_object();
    json_object_object_add(rmeta, "name", json_object_get(bdy_jget(alloc, "id")));
    json_object_object_add(rmeta, "namespace", json_object_new_string(ns));
    json_object *rlabels = json_object_new_object();
    json_object_object_add(rlabels, BDY_LABEL_POOL, json_object_new_string(pool));
    json_object_object_add(rmeta, "labels", rlabels);
    json_object_object_add(record, "metadata", rmeta);
    json_object *spec = json_object_new_object();
    json_object_object_add(spec, "pool", json_object_new_string(pool));
    json_object_object_add(spec, "world", json_object_new_string(world));
    static const char *const copied[] = {"claimant", "source", "claimedAt", "idempotencyKey",
                                         "requestHash"};
    for (size_t i = 0; i < sizeof(copied) / sizeof(copied[0]); i++) {
        json_object *v = bdy_jget(alloc, copied[i]);
        if (v != NULL)
            json_object_object_add(spec, copied[i], json_object_get(v));
    }
    json_object_object_add(spec, "releasedAt", json_object_new_string(now));
    json_object_object_add(spec, "reason", json_object_new_string(reason ? reason : ""));
    json_object_object_add(spec, "response", json_object_get(answer));
    json_object_object_add(record, "spec", spec);
    int rc = bdy_store_create(store, &BDY_GVR_ALLOCATIONS, ns, record, NULL, NULL, eb);
    if (rc == BDY_EEXISTS)
        rc = 0; /* released before: the first record stands */
    json_object_put(record);
    return rc;
}

bool bdy_allocation_record_refused(int rc)
{
    return rc == BDY_EINVALID_OBJECT || rc == BDY_EINVAL || rc == BDY_ETOOBIG || rc == BDY_EPARSE;
}

int bdy_allocation_release(bdy_store *store, json_object *world, const char *reason, bdy_errbuf *eb)
{
    int rc = 0;
    json_object *answer = bdy_allocation_answer(world);
    json_object *meta = bdy_jget(world, "metadata");
    const char *ns = json_object_get_string(bdy_jget(meta, "namespace"));
    const char *name = json_object_get_string(bdy_jget(meta, "name"));
    if (answer != NULL) {
        const char *pool = bdy_jstr(bdy_jget(world, "spec"), "pool");
        rc = bdy_allocation_record(store, ns, name, pool ? pool : "",
                                   bdy_jget(bdy_jget(world, "status"), "allocation"), answer,
                                   reason, eb);
        if (bdy_allocation_record_refused(rc)) {
            bdy_warn("claims", "%s/%s: its allocation cannot be recorded as released: %s", ns, name,
                     eb != NULL && eb->message[0] ? eb->message : bdy_strerror(rc));
            rc = 0;
        }
        if (rc != 0)
            goto out;
    }
    rc = bdy_store_delete(store, &BDY_GVR_WORLDS, ns, name, NULL, NULL, NULL, eb);
    if (rc == BDY_ENOTFOUND)
        rc = 0;
out:
    json_object_put(answer);
    return rc;
}

static int label_cmp(const void *a, const void *b)
{
    const bdy_config_label *x = a;
    const bdy_config_label *y = b;
    return strcmp(x->key, y->key);
}

/* Appends s and its NUL, so that no two field lists run into one text. */
static int append_field(bdy_buf *b, const char *s)
{
    return bdy_buf_append(b, s, strlen(s) + 1);
}

/* Appends what identifies one version of a stored object: kind, name, uid
 * and generation. BDY_EINVAL when it has no uid. */
static int append_version(bdy_buf *text, const char *kind, json_object *o)
{
    json_object *meta = bdy_jget(o, "metadata");
    const char *uid = bdy_jstr(meta, "uid");
    const char *name = bdy_jstr(meta, "name");
    if (uid == NULL)
        return BDY_EINVAL;
    char generation[24];
    snprintf(generation, sizeof(generation), "%lld", (long long)bdy_jint(meta, "generation", 0));
    int rc = append_field(text, kind);
    rc = rc ? rc : append_field(text, name ? name : "");
    rc = rc ? rc : append_field(text, uid);
    return rc ? rc : append_field(text, generation);
}

uint64_t bdy_pool_template(const bdy_config_pool *spec, json_object *source,
                           json_object *const *modules, size_t nmodules, const char *bound)
{
    /* Labels sorted by key: reordering them in the config is no change. */
    bdy_config_label sorted[BDY_CONFIG_MAX_LABELS]; /* the strings stay spec's */
    size_t nlabels =
        spec->labels.count < BDY_CONFIG_MAX_LABELS ? spec->labels.count : BDY_CONFIG_MAX_LABELS;
    for (size_t i = 0; i < nlabels; i++)
        sorted[i] = spec->labels.items[i];
    qsort(sorted, nlabels, sizeof(sorted[0]), label_cmp);
    bdy_buf text;
    bdy_buf_init(&text, (size_t)64 * 1024);
    /* The name comes from the pool's spec, as it always has, so that an
     * upgrade keeps every manifest pool's template. */
    int rc = bdy_jstr(bdy_jget(source, "metadata"), "uid") ? 0 : BDY_EINVAL;
    rc = rc ? rc : append_field(&text, spec->manifest ? "ModuleManifest" : "Booklet");
    rc = rc ? rc : append_field(&text, spec->manifest ? spec->manifest : spec->booklet);
    rc = rc ? rc : append_field(&text, bdy_jstr(bdy_jget(source, "metadata"), "uid"));
    char generation[24];
    snprintf(generation, sizeof(generation), "%lld",
             (long long)bdy_jint(bdy_jget(source, "metadata"), "generation", 0));
    rc = rc ? rc : append_field(&text, generation);
    for (size_t i = 0; i < nmodules && rc == 0; i++)
        rc = append_version(&text, "ModuleManifest", modules[i]);
    for (size_t i = 0; i < nlabels && rc == 0; i++) {
        rc = append_field(&text, sorted[i].key);
        rc = rc ? rc : append_field(&text, sorted[i].value);
    }
    if (bound != NULL && bound[0] != '\0') {
        rc = rc ? rc : append_field(&text, "capabilities");
        rc = rc ? rc : append_field(&text, bound);
    }
    uint64_t id = 0;
    if (rc == 0) {
        char hex[65];
        bdy_sha256_hex(text.data, text.len, hex);
        hex[16] = '\0';
        id = strtoull(hex, NULL, 16);
        if (id == 0)
            id = 1; /* 0 says "no template" */
    }
    bdy_buf_free(&text);
    return id;
}

uint64_t bdy_pool_template_parse(const char *text)
{
    if (text == NULL || strlen(text) != 16 || strspn(text, "0123456789abcdef") != 16)
        return 0;
    return strtoull(text, NULL, 16);
}

void bdy_pool_template_text(uint64_t template_id, char out[17])
{
    snprintf(out, 17, "%016llx", (unsigned long long)template_id);
}

json_object *bdy_pool_new_world(const bdy_config_pool *spec, const char *name,
                                const char *cold_claim_id, uint64_t template_id)
{
    json_object *w = json_object_new_object();
    json_object_object_add(w, "apiVersion", json_object_new_string("bindery.dev/v1alpha1"));
    json_object_object_add(w, "kind", json_object_new_string("WorldInstance"));
    json_object *meta = json_object_new_object();
    json_object_object_add(meta, "name", json_object_new_string(name));
    json_object *labels = json_object_new_object();
    for (size_t i = 0; i < spec->labels.count; i++)
        json_object_object_add(labels, spec->labels.items[i].key,
                               json_object_new_string(spec->labels.items[i].value));
    json_object_object_add(labels, BDY_LABEL_POOL, json_object_new_string(spec->name));
    if (template_id != 0) {
        char hex[17];
        bdy_pool_template_text(template_id, hex);
        json_object_object_add(labels, BDY_LABEL_TEMPLATE, json_object_new_string(hex));
    }
    json_object_object_add(meta, "labels", labels);
    if (cold_claim_id != NULL) {
        json_object *ann = json_object_new_object();
        json_object_object_add(ann, BDY_ANNOTATION_COLD_CLAIM,
                               json_object_new_string(cold_claim_id));
        json_object_object_add(meta, "annotations", ann);
    }
    /* The finalizer from the start: no window in which a new world could be
     * deleted before its controller has seen it. */
    json_object *fin = json_object_new_array();
    json_object_array_add(fin, json_object_new_string(BDY_FINALIZER_WORLD));
    json_object_object_add(meta, "finalizers", fin);
    json_object_object_add(w, "metadata", meta);
    json_object *ws = json_object_new_object();
    json_object_object_add(ws, "pool", json_object_new_string(spec->name));
    if (spec->manifest != NULL)
        json_object_object_add(ws, "manifest", json_object_new_string(spec->manifest));
    else
        json_object_object_add(ws, "booklet", json_object_new_string(spec->booklet));
    json_object_object_add(w, "spec", ws);
    return w;
}
