/* The object store: Kubernetes-shaped JSON objects addressed by
 * group/version/resource, namespace and name, with the Kubernetes API's
 * semantics (resourceVersion preconditions, status subresource, generation,
 * finalizers, label/field selectors, paging, watch).
 *
 * One interface, two backends: store_sqlite (embedded mode, this process is
 * the API server) and store_kube (the cluster's API server over libcurl).
 * Code written against bdy_store behaves the same with either.
 *
 * Objects cross this interface as json-c objects. Ownership: inputs are
 * borrowed (the store copies what it keeps); every json_object returned
 * through an out-parameter is owned by the caller (json_object_put).
 * All functions are thread-safe unless a comment says otherwise.
 */
#ifndef BINDERY_STORE_H
#define BINDERY_STORE_H

#include "bindery/crd.h"
#include "bindery/error.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Group/version/resource. group "" is the core group ("v1"). */
typedef struct bdy_gvr {
    const char *group;
    const char *version;
    const char *resource; /* plural, lower-case: "worldinstances" */
} bdy_gvr;

/* Well-known resources. */
extern const bdy_gvr BDY_GVR_NAMESPACES;
extern const bdy_gvr BDY_GVR_PODS;
extern const bdy_gvr BDY_GVR_EVENTS;
extern const bdy_gvr BDY_GVR_LEASES;
extern const bdy_gvr BDY_GVR_SECRETS;
extern const bdy_gvr BDY_GVR_CONFIGMAPS;
extern const bdy_gvr BDY_GVR_CRDS;
extern const bdy_gvr BDY_GVR_WORLDS;
extern const bdy_gvr BDY_GVR_MANIFESTS;
extern const bdy_gvr BDY_GVR_BOOKLETS;
extern const bdy_gvr BDY_GVR_BINDINGS;

/* Caps on what one list or one object may hold. */
#define BDY_STORE_MAX_OBJECT_BYTES ((size_t)1536 * 1024) /* as etcd's default request limit */
#define BDY_STORE_MAX_LIST_LIMIT 10000u
#define BDY_STORE_MAX_CONTINUE 512u

typedef struct bdy_list_opts {
    const char *ns;             /* NULL or "": all namespaces */
    const char *label_selector; /* NULL: everything */
    const char *field_selector; /* NULL: everything */
    size_t limit;               /* 0: no limit; else at most BDY_STORE_MAX_LIST_LIMIT */
    /* 0: none. Else a bound on the items' stored text: with a limit, a page
     * ends early (with a continue token) once it has passed max_bytes, so
     * every page has at least one item; without one, the list fails with
     * BDY_ETOOBIG instead of building an answer that cannot be sent. */
    size_t max_bytes;
    /* From a previous page, or NULL. Every page shows the objects as they
     * were at the first page's resourceVersion (what changed since is put
     * back from the watch history); BDY_EEXPIRED once the history no longer
     * holds every change since. */
    const char *continue_token;
    /* Items as their stored JSON text (json strings), not parsed: a caller
     * that parses on several threads does so. Selectors still apply. */
    bool raw;
} bdy_list_opts;

typedef struct bdy_list_result {
    json_object *items;        /* array, never NULL on success; caller owns */
    uint64_t resource_version; /* the list's RV, constant across pages */
    char *continue_token;      /* NULL on the last page; caller frees */
    long remaining;            /* items after this page, or -1 when unknown */
} bdy_list_result;

void bdy_list_result_free(bdy_list_result *r);

/* Options common to writes. */
typedef struct bdy_write_opts {
    bool dry_run;               /* validate and compute, persist nothing */
    bdy_unknown_fields unknown; /* prune (default) or reject unknown fields */
    bool urgent;                /* a claim: committed ahead of background writes */
    /* A client's write through the Kubernetes API, not bindery's own: the
     * status fields only the world controller may write (the process a
     * WorldInstance runs as, which a restart adopts and a stop signals)
     * are refused to it (422). */
    bool client;
} bdy_write_opts;

typedef struct bdy_delete_opts {
    bool dry_run;
    const char *precondition_uid; /* NULL: none */
    const char *precondition_rv;  /* NULL: none */
} bdy_delete_opts;

typedef enum bdy_patch_type {
    BDY_PATCH_MERGE, /* RFC 7386 */
    BDY_PATCH_JSON,  /* RFC 6902 */
} bdy_patch_type;

typedef enum bdy_event_type {
    BDY_EVENT_ADDED,
    BDY_EVENT_MODIFIED,
    BDY_EVENT_DELETED,
} bdy_event_type;

const char *bdy_event_type_name(bdy_event_type t);

/* One change seen through a watch. object is the state after the change
 * (for DELETED: the last state, with the deletion's resourceVersion). */
typedef struct bdy_watch_event {
    bdy_event_type type;
    uint64_t resource_version;
    json_object *object; /* caller owns */
} bdy_watch_event;

typedef struct bdy_watch bdy_watch;

/* Resolved facts about a resource the store serves. */
typedef struct bdy_resource_info {
    char group[128];
    char version[64];
    char resource[128];
    char kind[128];
    char list_kind[136];
    bool namespaced;
    bool status_subresource;
} bdy_resource_info;

/* The backend interface. Every slot returns 0 or a negative BDY_E* code and
 * fills eb (may be NULL) on error. Error codes mean:
 *   BDY_ENOTFOUND        object, namespace or resource does not exist
 *   BDY_EEXISTS          create of a name that exists
 *   BDY_ECONFLICT        resourceVersion/uid precondition failed
 *   BDY_EINVALID_OBJECT  validation failed (causes in eb)
 *   BDY_EINVAL           malformed request (bad selector, bad patch document)
 *   BDY_EEXPIRED         resourceVersion or continue token older than history
 *   BDY_EIO/BDY_ESHUTDOWN the backend cannot serve */
/* One patch of a bdy_store_patch_many group (fields as bdy_store_patch;
 * rc is the result). */
typedef struct bdy_store_patch_item {
    const bdy_gvr *gvr;
    const char *ns;
    const char *name;
    bdy_patch_type type;
    json_object *patch; /* borrowed */
    bool status_only;
    int rc;
} bdy_store_patch_item;

typedef struct bdy_store_vtable {
    /* Human name of the backend ("sqlite", "kube"). */
    const char *name;
    /* Facts about gvr, or BDY_ENOTFOUND if the store does not serve it. */
    int (*resource_info)(void *ctx, const bdy_gvr *gvr, bdy_resource_info *out);
    /* Facts about the resource serving apiVersion ("group/version" or "v1")
     * and kind, or BDY_ENOTFOUND. */
    int (*resolve_kind)(void *ctx, const char *api_version, const char *kind,
                        bdy_resource_info *out);
    /* One object. */
    int (*get)(void *ctx, const bdy_gvr *gvr, const char *ns, const char *name, json_object **out,
               bdy_errbuf *eb);
    /* A page of objects in (namespace, name) order. */
    int (*list)(void *ctx, const bdy_gvr *gvr, const bdy_list_opts *opts, bdy_list_result *out,
                bdy_errbuf *eb);
    /* Creates obj in ns (ns ignored for cluster-scoped resources). Sets uid,
     * creationTimestamp, resourceVersion, generation 1; honours generateName;
     * drops .status when the resource has a status subresource. */
    int (*create)(void *ctx, const bdy_gvr *gvr, const char *ns, json_object *obj,
                  const bdy_write_opts *wo, json_object **out, bdy_errbuf *eb);
    /* Replaces the object named by obj's metadata. metadata.resourceVersion
     * is required for custom resources and must match (else CONFLICT). Keeps
     * the stored status when the resource has a status subresource; bumps
     * generation when anything but metadata (and status) changed; a write
     * that changes nothing keeps the resourceVersion. */
    int (*update)(void *ctx, const bdy_gvr *gvr, const char *ns, json_object *obj,
                  const bdy_write_opts *wo, json_object **out, bdy_errbuf *eb);
    /* Replaces only .status (resourceVersion precondition if given). */
    int (*update_status)(void *ctx, const bdy_gvr *gvr, const char *ns, json_object *obj,
                         const bdy_write_opts *wo, json_object **out, bdy_errbuf *eb);
    /* Patches the object (status_only: the status subresource). A
     * metadata.resourceVersion inside a merge patch is a precondition. */
    int (*patch)(void *ctx, const bdy_gvr *gvr, const char *ns, const char *name,
                 bdy_patch_type type, json_object *patch, bool status_only,
                 const bdy_write_opts *wo, json_object **out, bdy_errbuf *eb);
    /* Deletes. With finalizers the object only gains deletionTimestamp and
     * *out is the updated object (*deleted false); without, it is gone and
     * *out is its last state (*deleted true). */
    /* Optional (NULL: bdy_store_patch_many patches one by one): applies n
     * patches as one group, committed together where the backend can, each
     * with its own result in items[i].rc; returns once all are done. */
    int (*patch_many)(void *ctx, bdy_store_patch_item *items, size_t n);
    int (*remove)(void *ctx, const bdy_gvr *gvr, const char *ns, const char *name,
                  const bdy_delete_opts *opts, json_object **out, bool *deleted, bdy_errbuf *eb);
    /* Starts a watch of gvr (ns NULL: all) delivering every change with a
     * resourceVersion > from_rv, in commit order. from_rv older than the
     * retained history → BDY_EEXPIRED (the caller relists). */
    int (*watch)(void *ctx, const bdy_gvr *gvr, const char *ns, const char *label_selector,
                 const char *field_selector, uint64_t from_rv, bdy_watch **out, bdy_errbuf *eb);
    /* Next event, waiting up to timeout_ms (0: poll). Returns 0 with *ev
     * filled, BDY_ETIMEOUT, BDY_EEXPIRED (the watcher fell behind the
     * retained history: relist), or BDY_ESHUTDOWN. */
    int (*watch_next)(void *ctx, bdy_watch *w, int timeout_ms, bdy_watch_event *ev);
    /* Wakes a blocked watch_next (it returns BDY_ESHUTDOWN) and frees w once
     * no thread is inside watch_next for it. */
    void (*watch_close)(void *ctx, bdy_watch *w);
    /* The newest committed resourceVersion: watches have every event up
     * to it. */
    int (*current_rv)(void *ctx, uint64_t *out);
    /* The newest resourceVersion written, which a list may already show
     * while its events are still on their way to watches (>= current_rv;
     * no list answers a version above it). NULL: current_rv. */
    int (*written_rv)(void *ctx, uint64_t *out);
    /* Cheap health check (for /readyz). The SQLite store's also fails with
     * BDY_ECORRUPT once its background whole-file check found damage. */
    int (*ping)(void *ctx, bdy_errbuf *eb);
    /* Flushes pending writes and frees the backend. */
    void (*destroy)(void *ctx);
} bdy_store_vtable;

typedef struct bdy_store {
    const bdy_store_vtable *vt;
    void *ctx;
} bdy_store;

/* Embedded backend. */
/* The file in the data folder a running bindery holds an exclusive
 * flock(2) on (the store takes it at open): whoever else gets the lock
 * knows no bindery runs on the folder, and keeps one from starting. */
#define BDY_STORE_LOCK_FILE "bindery.lock"

typedef struct bdy_sqlite_opts {
    const char *data_dir; /* created when absent; the file is data_dir/bindery.db */
    size_t watch_history; /* events kept in memory for watch resumption */
    size_t max_batch;     /* writes per group commit */
    int busy_timeout_ms;
    bool quiet; /* no info lines (a scratch store's opening is no news) */
    /* NULL-terminated, may be NULL: kinds of record that leave with their
     * namespace (bindery's Events and Allocation records). Deleting a
     * namespace that holds anything else answers BDY_ECONFLICT naming it;
     * one that holds only these deletes them with it, up to
     * BDY_STORE_NS_RECORDS_MAX. */
    const bdy_gvr *const *namespace_records;
} bdy_sqlite_opts;

/* Most records one namespace delete removes with it: each is a watch event
 * held in memory until its commit. */
#define BDY_STORE_NS_RECORDS_MAX 20000

/* Opens (or initialises) the SQLite store. Refuses, with a message naming
 * the file: a data file that is not a Bindery store or whose header or
 * schema is damaged (BDY_ECORRUPT), a data folder that holds other files but
 * no bindery.db (BDY_ENOTFOUND: never a silently empty store), a read-only
 * file or folder (BDY_EREADONLY). The rest of an existing file is checked
 * by bdy_store_sqlite_check_start(). The caller owns *out and frees it with
 * bdy_store_close. */
int bdy_store_sqlite_open(const bdy_sqlite_opts *opts, bdy_store **out, bdy_errbuf *eb);

/* Starts the whole-file check (dbcheck.h) of a data file that existed at
 * open: once, on a thread of its own; later calls and a new file do
 * nothing. The daemon calls it once it is ready, so the check does not
 * compete with start-up for the CPU. Once the check finds damage, the
 * store's ping (so /readyz) fails with BDY_ECORRUPT; reads and writes go
 * on, and those that touch a damaged page fail. BDY_EINVAL for a store of
 * another backend. Any thread. */
int bdy_store_sqlite_check_start(bdy_store *s, bdy_errbuf *eb);

void bdy_store_close(bdy_store *s);

/* Thin wrappers so callers write bdy_store_get(s, ...) */
int bdy_store_get(bdy_store *s, const bdy_gvr *gvr, const char *ns, const char *name,
                  json_object **out, bdy_errbuf *eb);
int bdy_store_list(bdy_store *s, const bdy_gvr *gvr, const bdy_list_opts *opts,
                   bdy_list_result *out, bdy_errbuf *eb);
int bdy_store_create(bdy_store *s, const bdy_gvr *gvr, const char *ns, json_object *obj,
                     const bdy_write_opts *wo, json_object **out, bdy_errbuf *eb);
int bdy_store_update(bdy_store *s, const bdy_gvr *gvr, const char *ns, json_object *obj,
                     const bdy_write_opts *wo, json_object **out, bdy_errbuf *eb);
int bdy_store_update_status(bdy_store *s, const bdy_gvr *gvr, const char *ns, json_object *obj,
                            const bdy_write_opts *wo, json_object **out, bdy_errbuf *eb);
int bdy_store_patch(bdy_store *s, const bdy_gvr *gvr, const char *ns, const char *name,
                    bdy_patch_type type, json_object *patch, bool status_only,
                    const bdy_write_opts *wo, json_object **out, bdy_errbuf *eb);
/* Background patches in bulk (the claims' status writes): the embedded
 * store commits a group in as few transactions as its batch size allows,
 * so a thousand status writes cost a handful of fsyncs. Returns 0 once
 * every item is done; each item's rc says how it went. */
int bdy_store_patch_many(bdy_store *s, bdy_store_patch_item *items, size_t n);
int bdy_store_delete(bdy_store *s, const bdy_gvr *gvr, const char *ns, const char *name,
                     const bdy_delete_opts *opts, json_object **out, bool *deleted, bdy_errbuf *eb);
int bdy_store_watch(bdy_store *s, const bdy_gvr *gvr, const char *ns, const char *label_selector,
                    const char *field_selector, uint64_t from_rv, bdy_watch **out, bdy_errbuf *eb);
int bdy_store_watch_next(bdy_store *s, bdy_watch *w, int timeout_ms, bdy_watch_event *ev);
void bdy_store_watch_close(bdy_store *s, bdy_watch *w);
int bdy_store_resource_info(bdy_store *s, const bdy_gvr *gvr, bdy_resource_info *out);
int bdy_store_resolve_kind(bdy_store *s, const char *api_version, const char *kind,
                           bdy_resource_info *out);
int bdy_store_current_rv(bdy_store *s, uint64_t *out);
int bdy_store_written_rv(bdy_store *s, uint64_t *out);
int bdy_store_ping(bdy_store *s, bdy_errbuf *eb);

/* Create-or-update ("apply") of a manifest object whose apiVersion/kind
 * name a resource the store serves; used for start-up manifests. Resolves
 * the resource from apiVersion+kind; keeps status. wo may be NULL (unknown
 * fields pruned). *created: it was made; *changed (may be NULL): it was
 * made, or the stored object differed and was replaced (an unchanged
 * manifest changes nothing). */
int bdy_store_apply(bdy_store *s, json_object *obj, const bdy_write_opts *wo, bool *created,
                    bool *changed, bdy_errbuf *eb);

#endif
