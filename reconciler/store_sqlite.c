/* The embedded object store: SQLite in WAL mode, one writer thread that
 * group-commits every write queued while the previous commit was running,
 * a small pool of reader connections, and an in-memory watch history.
 *
 * Threads: any thread may call the public functions. Writes are handed to
 * the writer thread and the caller sleeps until its write is durable (or has
 * failed). Reads use a reader connection from the pool. The registry of
 * served resources is changed only by the writer (see registry.h).
 */
#include "bindery/dbcheck.h"
#include "bindery/hmap.h"
#include "bindery/jsonpatch.h"
#include "bindery/jsonutil.h"
#include "bindery/log.h"
#include "bindery/pool.h"
#include "bindery/selector.h"
#include "bindery/store.h"
#include "bindery/util.h"
#include "bindery/walcheckpoint.h"
#include "corekinds.h"
#include "objmeta.h"
#include "registry.h"
#include "watchlog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <semaphore.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#define STORE_FORMAT "bindery-store"
/* The version names the tables' columns and what they hold, which every
 * query relies on; not the objects table's layout on disk, which no query
 * sees. Files written before 2026-12 keep objects in a WITHOUT ROWID table
 * and are converted on open (convert_layout); a Bindery of that time still
 * reads and writes a converted file. */
#define STORE_SCHEMA_VERSION 1
/* Held (flock) by the process that has the data folder open. */
#define READER_COUNT 8
#define GENERATE_NAME_TRIES 8
#define GENERATED_PREFIX_MAX 58
#define DEFAULT_WATCH_HISTORY 10000
/* And at most this much object text: a MODIFIED event holds two objects of
 * up to BDY_STORE_MAX_OBJECT_BYTES, so 10,000 events could otherwise hold
 * 30 GB. Typical events (1-2 KB objects) never come near it. */
#define WATCH_HISTORY_MAX_BYTES ((size_t)256 << 20)
#define DEFAULT_MAX_BATCH 512
/* Background writes committed in one batch while urgent writes (claims)
 * wait: bounds how long a claim can sit behind controller traffic. */
#define BACKGROUND_PER_URGENT_BATCH 8
/* WAL checkpoints run in their own thread, off the commit path, this often.
 * Often, because a checkpoint ends with an fsync of everything it copied,
 * and the claim ledger's commits on the same disk wait behind that flush:
 * at 1,000 claims/s every 500 ms, about eight claims in a row took 5-10 ms;
 * every 50 ms the bursts are a tenth the size and the p99 of claims went
 * from 2.5-4.1 to 2.1-2.6 ms, for about 7% more bytes written. */
#define CHECKPOINT_MS 50
/* A WAL kept busy by readers past this size gets a RESTART that waits for
 * them (walcheckpoint.h). */
#define WAL_RESTART_BYTES (64u << 20)

/* Objects live in a rowid table with a unique index on their key. A
 * WITHOUT ROWID table keeps at most ~1,000 bytes of a row in its 4 KB page:
 * a typical 1 KB world spilled into an overflow page of its own, 85% empty,
 * so a status write dirtied two or three pages and the file held 4.4 KB per
 * world. */
#define OBJECTS_TABLE_COLUMNS                                                                      \
    "(grp TEXT NOT NULL, res TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL,"                 \
    " rv INTEGER NOT NULL, body TEXT NOT NULL)"
#define OBJECTS_KEY_INDEX "CREATE UNIQUE INDEX objects_key ON objects(grp, res, ns, name);"
static const char schema_sql[] = "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                                 "CREATE TABLE objects" OBJECTS_TABLE_COLUMNS ";" OBJECTS_KEY_INDEX;

typedef enum op_kind {
    OP_CREATE,
    OP_UPDATE,
    OP_UPDATE_STATUS,
    OP_PATCH,
    OP_DELETE,
} op_kind;

/* Callers of patch_many wait for a whole group: the writer counts its ops
 * down and posts once. */
typedef struct write_group {
    pthread_mutex_t lock;
    size_t left;
    sem_t done;
} write_group;

/* One queued write. Lives on the caller's stack (or in its group's array);
 * the caller sleeps until done is set, so every borrowed pointer stays
 * valid while the writer uses it. */
typedef struct write_op {
    op_kind kind;
    const bdy_gvr *gvr;
    const char *ns;
    const char *name;
    json_object *obj;
    bdy_patch_type patch_type;
    json_object *patch;
    bool status_only;
    bdy_write_opts wo;
    const bdy_delete_opts *dopts;
    bdy_errbuf *eb;
    /* results */
    int rc;
    json_object *out;
    bool deleted;
    /* effects held back until the batch commits */
    bdy__event *events;
    size_t nevents;
    size_t aevents;
    bdy_crd *crd_put;   /* register after commit */
    char *crd_remove;   /* "group\0plural": unregister after commit */
    sem_t done;         /* posted by the writer when the op is finished */
    write_group *group; /* patch_many: post the group instead, when it is done */
    struct write_op *next;
} write_op;

typedef struct reader {
    pthread_mutex_t lock;
    sqlite3 *db;
    sqlite3_stmt *get;
    sqlite3_stmt *list;
    sqlite3_stmt *rv;
} reader;

typedef struct sqlite_store {
    char *path;
    sqlite3 *db; /* writer connection, writer thread only after open */
    sqlite3_stmt *st_get;
    sqlite3_stmt *st_put;
    sqlite3_stmt *st_del;
    sqlite3_stmt *st_set_rv;
    sqlite3_stmt *st_count_ns; /* objects of a namespace, by kind */
    sqlite3_stmt *st_list_ns;
    sqlite3_stmt *st_list_res;
    const bdy_gvr *const *ns_records; /* opts->namespace_records, static */
    size_t ns_records_max;            /* most of them one namespace delete removes */
    sqlite3_stmt *st_begin;           /* prepared once: parsing them per batch showed in profiles */
    sqlite3_stmt *st_commit;
    sqlite3_stmt *st_rollback;
    sqlite3_stmt *st_op_begin; /* SAVEPOINT around each op of a batch */
    sqlite3_stmt *st_op_undo;
    sqlite3_stmt *st_op_end;
    bdy_wal_checkpointer *ckpt;
    bdy_log_limit batch_fail_log; /* a full disk fails every batch: one line a period */
    bdy_write_health writes;      /* for s_ping: readiness while writes fail */
    bdy_db_check *check;          /* under q_lock; NULL until that check starts */
    reader readers[READER_COUNT];
    unsigned next_reader;
    int lock_fd; /* flock on the data folder's bindery.lock; -1 when not held */

    bdy__registry registry;
    bdy__watchlog log;

    pthread_mutex_t q_lock;
    pthread_cond_t q_nonempty;
    write_op *q_head; /* background writes */
    write_op *q_tail;
    write_op *u_head; /* urgent writes (claims), taken first */
    write_op *u_tail;
    pthread_t writer;
    size_t max_batch;

    /* Writer: the batch being applied, from its first op to the one being
     * applied now (its CRD deletions take effect only after the commit). */
    write_op *batch_first;
    write_op *batch_now;
    uint64_t rv;                   /* writer: last assigned resourceVersion */
    _Atomic uint64_t committed_rv; /* published to watches */
    _Atomic uint64_t written_rv;   /* in the file: readers may see it */
    unsigned batch_crd_removals;   /* ops of the batch so far that delete a CRD */
    bool existed; /* the file was there at open: bdy_store_sqlite_check_start checks it */
    bool stopping;
    bool writer_started;
} sqlite_store;

const char *bdy_event_type_name(bdy_event_type t)
{
    switch (t) {
    case BDY_EVENT_ADDED:
        return "ADDED";
    case BDY_EVENT_MODIFIED:
        return "MODIFIED";
    case BDY_EVENT_DELETED:
        return "DELETED";
    }
    return "UNKNOWN";
}

/* ---- helpers ------------------------------------------------------------ */

static int sql_error(sqlite3 *db, bdy_errbuf *eb, const char *what)
{
    int code = sqlite3_errcode(db);
    int rc = BDY_EIO;
    if (code == SQLITE_READONLY)
        rc = BDY_EREADONLY;
    else if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB)
        rc = BDY_ECORRUPT;
    else if (code == SQLITE_NOMEM)
        rc = BDY_ENOMEM;
    return bdy_fail(eb, rc, "%s: %s", what, sqlite3_errmsg(db));
}

static const char *group_of(const bdy_gvr *gvr)
{
    return gvr->group ? gvr->group : "";
}

static void not_found(bdy_errbuf *eb, const bdy_resource_info *info, const char *name)
{
    bdy_fail(eb, BDY_ENOTFOUND, "%s%s%s \"%s\" not found", info->resource,
             info->group[0] ? "." : "", info->group, name ? name : "");
}

static void api_version_of(const bdy_resource_info *info, char *out, size_t cap)
{
    if (info->group[0])
        snprintf(out, cap, "%s/%s", info->group, info->version);
    else
        snprintf(out, cap, "%s", info->version);
}

/* ---- writer-side row access ----------------------------------------------- */

/* Loads one row with the writer connection (*out NULL when absent); with
 * text_out, also its stored text (caller frees), which the watch event of a
 * change carries as the old object: serializing the parsed copy again would
 * cost as much as the parse. */
static int w_load_text(sqlite_store *s, const char *grp, const char *res, const char *ns,
                       const char *name, json_object **out, char **text_out, bdy_errbuf *eb)
{
    int rc = 0;
    *out = NULL;
    if (text_out != NULL)
        *text_out = NULL;
    sqlite3_stmt *st = s->st_get;
    sqlite3_bind_text(st, 1, grp, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, res, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, name, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(st, 0);
        *out = bdy_json_parse_stored(text);
        if (*out == NULL)
            rc = bdy_fail(eb, BDY_ECORRUPT, "stored object %s/%s %s/%s is not valid JSON", grp, res,
                          ns, name);
        else if (text_out != NULL && (*text_out = strdup(text)) == NULL)
            rc = BDY_ENOMEM;
        if (rc != 0) {
            json_object_put(*out);
            *out = NULL;
        }
    } else if (step != SQLITE_DONE) {
        rc = sql_error(s->db, eb, "read");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int w_load(sqlite_store *s, const char *grp, const char *res, const char *ns,
                  const char *name, json_object **out, bdy_errbuf *eb)
{
    return w_load_text(s, grp, res, ns, name, out, NULL, eb);
}

static int w_put(sqlite_store *s, const char *grp, const char *res, const char *ns,
                 const char *name, uint64_t rv, const char *body, bdy_errbuf *eb)
{
    sqlite3_stmt *st = s->st_put;
    sqlite3_bind_text(st, 1, grp, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, res, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)rv);
    sqlite3_bind_text(st, 6, body, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    int rc = step == SQLITE_DONE ? 0 : sql_error(s->db, eb, "write");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int w_del(sqlite_store *s, const char *grp, const char *res, const char *ns,
                 const char *name, bdy_errbuf *eb)
{
    sqlite3_stmt *st = s->st_del;
    sqlite3_bind_text(st, 1, grp, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, res, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, name, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    int rc = step == SQLITE_DONE ? 0 : sql_error(s->db, eb, "delete");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

/* Queues a watch event for after the commit. */
static int op_add_event(write_op *op, bdy_event_type type, uint64_t rv, const char *grp,
                        const char *res, const char *ns, const char *name, const char *obj_text,
                        const char *old_text)
{
    if (op->nevents == op->aevents) {
        size_t n = op->aevents ? op->aevents * 2 : 2;
        bdy__event *p = realloc(op->events, n * sizeof(*p));
        if (p == NULL)
            return BDY_ENOMEM;
        op->events = p;
        op->aevents = n;
    }
    bdy__event *e = &op->events[op->nevents];
    memset(e, 0, sizeof(*e));
    e->rv = rv;
    e->type = type;
    e->group = strdup(grp);
    e->resource = strdup(res);
    e->ns = strdup(ns);
    e->name = strdup(name);
    e->object = strdup(obj_text);
    e->old_object = old_text ? strdup(old_text) : NULL;
    op->nevents++;
    if (!e->group || !e->resource || !e->ns || !e->name || !e->object ||
        (old_text && !e->old_object))
        return BDY_ENOMEM;
    return 0;
}

/* "group\0plural\0" in one allocation: what a deleted CRD unregisters. */
static char *crd_key(const char *group, const char *plural)
{
    size_t gl = strlen(group) + 1;
    size_t pl = strlen(plural) + 1;
    char *k = malloc(gl + pl);
    if (k != NULL) {
        memcpy(k, group, gl);
        memcpy(k + gl, plural, pl);
    }
    return k;
}

static void set_rv(json_object *obj, uint64_t rv)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)rv);
    bdy__meta_set_str(obj, "resourceVersion", buf);
}

/* Writes obj at a fresh resourceVersion and queues the event. old_text is
 * old's stored text when the caller has it (else old is serialized). */
static int w_store(sqlite_store *s, write_op *op, const bdy_resource_info *info, const char *ns,
                   const char *name, json_object *obj, json_object *old, const char *old_text,
                   bdy_event_type type)
{
    uint64_t rv = s->rv + 1;
    set_rv(obj, rv);
    const char *body = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN);
    if (strlen(body) > BDY_STORE_MAX_OBJECT_BYTES)
        return bdy_fail(op->eb, BDY_ETOOBIG, "object is larger than %zu bytes",
                        BDY_STORE_MAX_OBJECT_BYTES);
    int rc = w_put(s, info->group, info->resource, ns, name, rv, body, op->eb);
    if (rc != 0)
        return rc;
    s->rv = rv;
    if (old != NULL && old_text == NULL)
        old_text = json_object_to_json_string_ext(old, JSON_C_TO_STRING_PLAIN);
    return op_add_event(op, type, rv, info->group, info->resource, ns, name, body, old_text);
}

/* Deletes the row and queues a DELETED event carrying obj at the new rv,
 * and obj as it was (what a page of a list begun before shows). */
static int w_remove(sqlite_store *s, write_op *op, const bdy_resource_info *info, const char *ns,
                    const char *name, json_object *obj)
{
    int rc = w_del(s, info->group, info->resource, ns, name, op->eb);
    if (rc != 0)
        return rc;
    char *before = strdup(json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN));
    if (before == NULL)
        return BDY_ENOMEM;
    s->rv++;
    set_rv(obj, s->rv);
    rc = op_add_event(op, BDY_EVENT_DELETED, s->rv, info->group, info->resource, ns, name,
                      json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN), before);
    free(before);
    return rc;
}

/* ---- validation ----------------------------------------------------------- */

/* Validates a whole object about to be stored: apiVersion/kind, metadata,
 * for custom resources the CRD schema (which may prune and default in
 * place), and for Secrets and ConfigMaps their rules (corekinds.h; old is
 * the stored object on an update, NULL on create). For CRDs, compiles it
 * into *crd_out. Every write goes through here. */
static int validate_object(const bdy__resource *res, json_object *obj, json_object *old,
                           bdy_unknown_fields mode, bdy_crd **crd_out, bdy_errbuf *eb)
{
    const bdy_resource_info *info = &res->info;
    char api_version[200];
    api_version_of(info, api_version, sizeof(api_version));
    const char *av = bdy_jstr(obj, "apiVersion");
    const char *kind = bdy_jstr(obj, "kind");
    if ((av != NULL && strcmp(av, api_version) != 0) ||
        (kind != NULL && strcmp(kind, info->kind) != 0))
        return bdy_fail(eb, BDY_EINVAL,
                        "the object's apiVersion/kind %s/%s does not match the resource %s "
                        "(%s, kind %s)",
                        av ? av : "", kind ? kind : "", info->resource, api_version, info->kind);
    json_object_object_add(obj, "apiVersion", json_object_new_string(api_version));
    json_object_object_add(obj, "kind", json_object_new_string(info->kind));
    /* Deeper than the store reads back, it could never be read, updated
     * or deleted again (and a CRD would keep the store from opening). */
    if (!bdy_json_depth_within(obj, BDY_JSON_MAX_DEPTH))
        return bdy_fail(eb, BDY_EINVALID_OBJECT, "the object nests deeper than %d levels",
                        BDY_JSON_MAX_DEPTH);

    /* Every Namespace carries its own name as a label, as the API server
     * puts it (set on each write, so it cannot be taken off or changed):
     * selectors can then pick namespaces by name. */
    const char *ns_name = bdy__meta_str(obj, "name");
    if (strcmp(info->resource, "namespaces") == 0 && !info->group[0] && ns_name != NULL &&
        bdy__valid_dns_label(ns_name))
        bdy__meta_set_label(obj, "kubernetes.io/metadata.name", ns_name);
    /* The schema first (it starts eb afresh), then metadata, whose causes
     * join the schema's: one answer names every unknown field, as the API
     * server's strict decoding does. */
    int rc =
        res->crd_version != NULL ? bdy_schema_validate(res->crd_version->schema, obj, mode, eb) : 0;
    if (rc == 0 || rc == BDY_EINVALID_OBJECT) {
        int meta_rc = bdy__meta_validate(
            obj, strcmp(info->resource, "namespaces") == 0 && !info->group[0], mode, eb);
        rc = rc != 0 ? rc : meta_rc;
    }
    if (rc == 0 && res->builtin)
        rc = bdy__corekind_prepare(info, obj, old, mode, eb);
    /* A CRD only of apiextensions.k8s.io: a CRD may call its own resource
     * customresourcedefinitions, and its objects are no CRDs. */
    if (rc == 0 && crd_out != NULL && strcmp(info->resource, "customresourcedefinitions") == 0 &&
        strcmp(info->group, "apiextensions.k8s.io") == 0) {
        rc = bdy_crd_compile(obj, crd_out, eb);
        if (rc == 0) {
            /* A compiled CRD is accepted and established at once: there is no
             * separate naming controller in embedded mode. */
            json_object *status = json_object_new_object();
            json_object *conds = json_object_new_array();
            const char *types[] = {"NamesAccepted", "Established"};
            char now[BDY_TIMESTAMP_LEN];
            bdy_timestamp_now_seconds(now);
            for (int i = 0; i < 2; i++) {
                json_object *c = json_object_new_object();
                json_object_object_add(c, "type", json_object_new_string(types[i]));
                json_object_object_add(c, "status", json_object_new_string("True"));
                json_object_object_add(
                    c, "reason",
                    json_object_new_string(i ? "InitialNamesAccepted" : "NoConflicts"));
                json_object_object_add(c, "lastTransitionTime", json_object_new_string(now));
                json_object_array_add(conds, c);
            }
            json_object_object_add(status, "conditions", conds);
            json_object *spec = NULL;
            json_object *names = NULL;
            if (json_object_object_get_ex(obj, "spec", &spec) &&
                json_object_object_get_ex(spec, "names", &names))
                json_object_object_add(status, "acceptedNames", json_object_get(names));
            json_object_object_add(obj, "status", status);
        }
    }
    if (rc == BDY_EINVALID_OBJECT)
        bdy__invalid_summary(eb, info, bdy__meta_str(obj, "name"));
    return rc;
}

/* Whether an earlier op of the batch being applied deletes the CRD of
 * group/plural: the registry still serves it until the commit, but its
 * objects are gone, and one created now would be left behind, never
 * listed or deleted, and back (old uid) if the CRD were made again. */
static bool crd_removed_in_batch(const sqlite_store *s, const char *group, const char *plural)
{
    if (s->batch_crd_removals == 0) /* the usual batch: no walk */
        return false;
    for (const write_op *op = s->batch_first; op != NULL && op != s->batch_now; op = op->next) {
        const char *k = op->crd_remove;
        if (k != NULL && strcmp(k, group) == 0 && strcmp(k + strlen(k) + 1, plural) == 0)
            return true;
    }
    return false;
}

/* Resolves gvr against the registry (writer side). */
static const bdy__resource *w_resource(sqlite_store *s, const bdy_gvr *gvr, bdy_errbuf *eb)
{
    const bdy__resource *res = bdy__registry_get(&s->registry, group_of(gvr), gvr->resource);
    if (res != NULL && !res->builtin && crd_removed_in_batch(s, group_of(gvr), gvr->resource))
        res = NULL;
    if (res == NULL)
        bdy_fail(eb, BDY_ENOTFOUND, "the server could not find the requested resource (%s%s%s)",
                 gvr->resource, group_of(gvr)[0] ? "." : "", group_of(gvr));
    return res;
}

static const char *scoped_ns(const bdy_resource_info *info, const char *ns)
{
    return info->namespaced ? (ns ? ns : "") : "";
}

/* ---- write operations (writer thread) --------------------------------------- */

static int check_client_world_create(const bdy_resource_info *info, json_object *obj,
                                     bdy_errbuf *eb);

static int do_create(sqlite_store *s, write_op *op)
{
    int rc = 0;
    json_object *obj = NULL;
    json_object *existing = NULL;
    bdy_crd *crd = NULL;
    const bdy__resource *res = w_resource(s, op->gvr, op->eb);
    if (res == NULL)
        return BDY_ENOTFOUND;
    const bdy_resource_info *info = &res->info;
    const char *ns = scoped_ns(info, op->ns);
    if (!json_object_is_type(op->obj, json_type_object))
        return bdy_fail(op->eb, BDY_EINVAL, "the request body must be a JSON object");
    if (json_object_deep_copy(op->obj, &obj, NULL) != 0) {
        rc = BDY_ENOMEM;
        goto out;
    }
    json_object *meta = bdy__metadata(obj);
    if (info->namespaced) {
        const char *body_ns = bdy_jstr(meta, "namespace");
        if (ns[0] == '\0') {
            rc = bdy_fail(op->eb, BDY_EINVAL, "a namespace is required for %s", info->resource);
            goto out;
        }
        if (body_ns != NULL && body_ns[0] && strcmp(body_ns, ns) != 0) {
            rc = bdy_fail(op->eb, BDY_EINVAL,
                          "the namespace of the provided object does not match the namespace "
                          "sent on the request");
            goto out;
        }
        json_object *nsobj = NULL;
        rc = w_load(s, "", "namespaces", "", ns, &nsobj, op->eb);
        bool terminating = nsobj != NULL && bdy__meta_str(nsobj, "deletionTimestamp") != NULL;
        json_object_put(nsobj);
        if (rc != 0)
            goto out;
        if (nsobj == NULL) {
            rc = bdy_fail(op->eb, BDY_ENOTFOUND, "namespaces \"%s\" not found", ns);
            goto out;
        }
        /* A namespace is marked for deletion only once it is empty (see
         * do_delete): nothing may move in while its finalizers run, or it
         * would go with objects still in it. */
        if (terminating) {
            rc = bdy_fail(op->eb, BDY_EFORBIDDEN,
                          "unable to create new content in namespace %s because it is being "
                          "terminated",
                          ns);
            goto out;
        }
        json_object_object_add(meta, "namespace", json_object_new_string(ns));
    } else {
        json_object_object_del(meta, "namespace");
    }
    /* Fields only the server sets. */
    static const char *const system_fields[] = {"uid",
                                                "resourceVersion",
                                                "creationTimestamp",
                                                "deletionTimestamp",
                                                "deletionGracePeriodSeconds",
                                                "generation",
                                                "selfLink",
                                                "managedFields"};
    for (size_t i = 0; i < sizeof(system_fields) / sizeof(system_fields[0]); i++)
        json_object_object_del(meta, system_fields[i]);
    if (info->status_subresource)
        json_object_object_del(obj, "status");
    if (strcmp(info->resource, "namespaces") == 0 && !info->group[0]) {
        json_object *st = json_object_new_object();
        json_object_object_add(st, "phase", json_object_new_string("Active"));
        json_object_object_add(obj, "status", st);
    }

    const char *name = bdy_jstr(meta, "name");
    const char *gen_name = bdy_jstr(meta, "generateName");
    if ((name == NULL || name[0] == '\0') && gen_name != NULL && gen_name[0]) {
        /* As Kubernetes does: the prefix cut to 58 characters, so that a
         * generated name (5 more) fits in a DNS label, whatever the prefix
         * (a pool's name of up to 63 characters and its dash). */
        char candidate[BDY__MAX_NAME_LEN + 1];
        size_t plen = strlen(gen_name);
        if (plen > GENERATED_PREFIX_MAX)
            plen = GENERATED_PREFIX_MAX;
        for (int i = 0; i < GENERATE_NAME_TRIES; i++) {
            snprintf(candidate, sizeof(candidate), "%.*s", (int)plen, gen_name);
            bdy_random_suffix(candidate + plen, 5);
            json_object_put(existing);
            rc = w_load(s, info->group, info->resource, ns, candidate, &existing, op->eb);
            if (rc != 0)
                goto out;
            if (existing == NULL)
                break;
        }
        json_object_object_add(meta, "name", json_object_new_string(candidate));
    }
    rc = validate_object(res, obj, NULL, op->wo.unknown, &crd, op->eb);
    if (rc == 0 && op->wo.client)
        rc = check_client_world_create(info, obj, op->eb);
    if (rc != 0)
        goto out;
    meta = bdy__metadata(obj);
    name = bdy_jstr(meta, "name");
    json_object_put(existing);
    rc = w_load(s, info->group, info->resource, ns, name, &existing, op->eb);
    if (rc != 0)
        goto out;
    if (existing != NULL) {
        rc = bdy_fail(op->eb, BDY_EEXISTS, "%s%s%s \"%s\" already exists", info->resource,
                      info->group[0] ? "." : "", info->group, name);
        goto out;
    }
    if (crd != NULL && (strcmp(crd->plural, info->resource) == 0) &&
        strcmp(crd->group, info->group) == 0) {
        rc = bdy_fail(op->eb, BDY_EINVALID_OBJECT, "a CRD cannot define itself");
        goto out;
    }
    char uid[37];
    char now[BDY_TIMESTAMP_LEN];
    bdy_uuid4(uid);
    bdy_timestamp_now_seconds(now);
    json_object_object_add(meta, "uid", json_object_new_string(uid));
    json_object_object_add(meta, "creationTimestamp", json_object_new_string(now));
    json_object_object_add(meta, "generation", json_object_new_int64(1));
    if (!op->wo.dry_run) {
        rc = w_store(s, op, info, ns, name, obj, NULL, NULL, BDY_EVENT_ADDED);
        if (rc != 0)
            goto out;
        op->crd_put = crd;
        crd = NULL;
    }
    op->out = obj;
    obj = NULL;
out:
    json_object_put(obj);
    json_object_put(existing);
    bdy_crd_free(crd);
    return rc;
}

/* Deletes every custom resource of a CRD being deleted (the Kubernetes API
 * server does the same). */
static int cascade_crd(sqlite_store *s, write_op *op, const bdy__resource *crd_res)
{
    int rc = 0;
    sqlite3_stmt *st = s->st_list_res;
    sqlite3_bind_text(st, 1, crd_res->info.group, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, crd_res->info.resource, -1, SQLITE_STATIC);
    json_object *victims = json_object_new_array();
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        json_object *o = bdy_json_parse_stored((const char *)sqlite3_column_text(st, 0));
        if (o != NULL)
            json_object_array_add(victims, o);
    }
    if (step != SQLITE_DONE)
        rc = sql_error(s->db, op->eb, "list for cascade");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    for (size_t i = 0; rc == 0 && i < json_object_array_length(victims); i++) {
        json_object *o = json_object_array_get_idx(victims, i);
        const char *ns = bdy__meta_str(o, "namespace");
        rc = w_remove(s, op, &crd_res->info, ns ? ns : "", bdy__meta_str(o, "name"), o);
    }
    json_object_put(victims);
    return rc;
}

/* A WorldInstance's status and its bindery.dev/ labels and annotations are
 * bindery's alone, and its spec is immutable: a client's write that
 * changes any of these is refused. Of
 * the status (written through the subresource), claims read the phase,
 * address and ports, a restart adopts the process it
 * names and a stop signals that process's group, and nothing writes a
 * field back once a client has changed it: a hand-set address was handed
 * to claimants, a Starting world marked Ready was claimed before it
 * listened, and one marked Allocated without a claim was held for good.
 * A world is replaced by deleting it. */
static int check_client_world_write(const bdy_resource_info *info, const char *name,
                                    json_object *old, json_object *neu, bdy_errbuf *eb)
{
    if (strcmp(info->group, BDY_GVR_WORLDS.group) != 0 ||
        strcmp(info->resource, BDY_GVR_WORLDS.resource) != 0)
        return 0;
    json_object *was = bdy_jget(old, "status");
    json_object *now = bdy_jget(neu, "status");
    int rc = 0;
    /* Every member of either, once: those of was, then those only in now. */
    json_object *sides[2] = {was, now};
    for (int side = 0; side < 2; side++) {
        if (!json_object_is_type(sides[side], json_type_object))
            continue;
        json_object_object_foreach(sides[side], key, v)
        {
            (void)v;
            if (side == 1 && json_object_object_get_ex(was, key, NULL))
                continue;
            if (json_object_equal(bdy_jget(was, key), bdy_jget(now, key)))
                continue;
            char path[160];
            snprintf(path, sizeof(path), "status.%.120s", key);
            bdy_errbuf_add_cause(eb, "FieldValueForbidden", path,
                                 "Forbidden: set by bindery only (delete the world to replace it)");
            rc = BDY_EINVALID_OBJECT;
        }
    }
    /* A status that is no object (null, or gone) where one was. */
    if (rc == 0 && !json_object_equal(was, now) &&
        !(json_object_is_type(was, json_type_object) &&
          json_object_is_type(now, json_type_object))) {
        bdy_errbuf_add_cause(eb, "FieldValueForbidden", "status",
                             "Forbidden: set by bindery only (delete the world to replace it)");
        rc = BDY_EINVALID_OBJECT;
    }
    /* The spec is set once, by the pool that made the world. A world moved
     * to another pool by hand was counted and claimed as that pool's while
     * it ran its first pool's manifest; one given another manifest or
     * booklet kept running the program it was started with while its
     * observedGeneration said the change had taken. */
    static const char *const spec_fields[] = {"pool", "manifest", "booklet"};
    for (size_t i = 0; i < sizeof(spec_fields) / sizeof(spec_fields[0]); i++) {
        json_object *field_was = bdy_jget(bdy_jget(old, "spec"), spec_fields[i]);
        json_object *field_now = bdy_jget(bdy_jget(neu, "spec"), spec_fields[i]);
        if (json_object_equal(field_was, field_now))
            continue;
        char path[32];
        snprintf(path, sizeof(path), "spec.%s", spec_fields[i]);
        bdy_errbuf_add_cause(eb, "FieldValueInvalid", path,
                             "Invalid value: %s: field is immutable (delete the world to "
                             "replace it)",
                             field_now ? json_object_to_json_string(field_now) : "null");
        rc = BDY_EINVALID_OBJECT;
    }
    /* Labels and annotations under bindery.dev/ are bindery's: the pool
     * label marks a world its pool made (a pool deletes only those when it
     * is removed, and `-l bindery.dev/pool=` finds them), the template label
     * what it runs, the cold-claim annotation the claim it is kept for. */
    static const char *const maps[] = {"labels", "annotations"};
    for (size_t m = 0; m < sizeof(maps) / sizeof(maps[0]); m++) {
        json_object *map_was = bdy_jget(bdy_jget(old, "metadata"), maps[m]);
        json_object *map_now = bdy_jget(bdy_jget(neu, "metadata"), maps[m]);
        json_object *either[2] = {map_was, map_now};
        for (int side = 0; side < 2; side++) {
            if (!json_object_is_type(either[side], json_type_object))
                continue;
            json_object_object_foreach(either[side], key, v)
            {
                (void)v;
                if (!bdy_reserved_key(key) ||
                    (side == 1 && json_object_object_get_ex(map_was, key, NULL)) ||
                    json_object_equal(bdy_jget(map_was, key), bdy_jget(map_now, key)))
                    continue;
                char path[300];
                snprintf(path, sizeof(path), "metadata.%s[%.200s]", maps[m], key);
                bdy_errbuf_add_cause(eb, "FieldValueForbidden", path,
                                     "Forbidden: set by bindery only");
                rc = BDY_EINVALID_OBJECT;
            }
        }
    }
    if (rc != 0)
        bdy__invalid_summary(eb, info, name);
    return rc;
}

/* A client's new WorldInstance may not carry the marks bindery puts on the
 * worlds it makes: the pool label would make a pool take it for its own
 * (and delete it with the pool), the template label say what it runs, the
 * cold-claim annotation keep it reserved for a claim that never was. Other
 * bindery.dev/ keys (bindery-load-test's) are the client's to set, once. */
static int check_client_world_create(const bdy_resource_info *info, json_object *obj,
                                     bdy_errbuf *eb)
{
    if (strcmp(info->group, BDY_GVR_WORLDS.group) != 0 ||
        strcmp(info->resource, BDY_GVR_WORLDS.resource) != 0)
        return 0;
    static const char *const marks[][2] = {{"labels", BDY_LABEL_POOL},
                                           {"labels", BDY_LABEL_TEMPLATE},
                                           {"annotations", BDY_ANNOTATION_COLD_CLAIM}};
    int rc = 0;
    for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
        if (bdy_jget(bdy_jget(bdy_jget(obj, "metadata"), marks[i][0]), marks[i][1]) == NULL)
            continue;
        char path[160];
        snprintf(path, sizeof(path), "metadata.%s[%s]", marks[i][0], marks[i][1]);
        bdy_errbuf_add_cause(eb, "FieldValueForbidden", path, "Forbidden: set by bindery only");
        rc = BDY_EINVALID_OBJECT;
    }
    if (rc != 0)
        bdy__invalid_summary(eb, info, bdy__meta_str(obj, "name"));
    return rc;
}

/* The name of the storage version of a stored CRD object, or NULL. */
static const char *crd_storage_version(json_object *crd_obj)
{
    json_object *versions = bdy_jget(bdy_jget(crd_obj, "spec"), "versions");
    for (size_t i = 0; versions != NULL && i < json_object_array_length(versions); i++) {
        json_object *v = json_object_array_get_idx(versions, i);
        json_object *storage = bdy_jget(v, "storage");
        if (storage != NULL && json_object_get_boolean(storage))
            return bdy_jstr(v, "name");
    }
    return NULL;
}

/* An update of a CRD (old, stored; crd and neu, the update compiled and
 * validated): its scope is immutable, as in Kubernetes, and so is its
 * storage version here, since the store keeps every object at that
 * version and converts between none (the objects kept would no longer be
 * served, got or deleted). Conditions that did not change keep their
 * lastTransitionTime, so applying an unchanged CRD changes nothing. */
static int crd_update_allowed(const bdy_resource_info *info, const char *name, json_object *old,
                              const bdy_crd *crd, json_object *neu, bdy_errbuf *eb)
{
    const char *old_scope = bdy_jstr(bdy_jget(old, "spec"), "scope");
    const char *new_scope = bdy_jstr(bdy_jget(neu, "spec"), "scope");
    const char *old_storage = crd_storage_version(old);
    const bdy_crd_version *still = old_storage ? bdy_crd_find_version(crd, old_storage) : NULL;
    if (old_scope != NULL && new_scope != NULL && strcmp(old_scope, new_scope) != 0)
        bdy_errbuf_add_cause(eb, "FieldValueInvalid", "spec.scope",
                             "Invalid value: \"%s\": field is immutable", new_scope);
    else if (old_storage != NULL && (still == NULL || !still->storage))
        bdy_errbuf_add_cause(eb, "FieldValueInvalid", "spec.versions",
                             "Invalid value: the storage version stays %s: objects are kept at "
                             "it and not converted (delete and create the CRD to change it)",
                             old_storage);
    else {
        json_object *oc = bdy_jget(bdy_jget(old, "status"), "conditions");
        json_object *nc = bdy_jget(bdy_jget(neu, "status"), "conditions");
        for (size_t i = 0; nc != NULL && i < json_object_array_length(nc); i++) {
            json_object *c = json_object_array_get_idx(nc, i);
            for (size_t k = 0; oc != NULL && k < json_object_array_length(oc); k++) {
                json_object *o = json_object_array_get_idx(oc, k);
                const char *t = bdy_jstr(o, "lastTransitionTime");
                if (t != NULL && bdy_jstr(o, "type") && bdy_jstr(c, "type") &&
                    strcmp(bdy_jstr(o, "type"), bdy_jstr(c, "type")) == 0 &&
                    bdy_jstr(o, "status") && bdy_jstr(c, "status") &&
                    strcmp(bdy_jstr(o, "status"), bdy_jstr(c, "status")) == 0)
                    json_object_object_add(c, "lastTransitionTime", json_object_new_string(t));
            }
        }
        return 0;
    }
    bdy__invalid_summary(eb, info, name);
    return BDY_EINVALID_OBJECT;
}

/* Finishes a write whose new content is `neu` over `old`: the shared rules
 * of update, status update and patch. Takes neu, old and old_text (old's
 * stored text, may be NULL). */
static int commit_update(sqlite_store *s, write_op *op, const bdy__resource *res, const char *ns,
                         json_object *old, char *old_text, json_object *neu, bool status_write,
                         bool rv_required)
{
    int rc = 0;
    bdy_crd *crd = NULL;
    const bdy_resource_info *info = &res->info;
    const char *name = bdy__meta_str(old, "name");
    if (!json_object_is_type(neu, json_type_object)) {
        rc = bdy_fail(op->eb, BDY_EINVAL, "the object must be a JSON object");
        goto out;
    }
    const char *want_rv = bdy__meta_str(neu, "resourceVersion");
    const char *have_rv = bdy__meta_str(old, "resourceVersion");
    if (want_rv == NULL || want_rv[0] == '\0') {
        if (rv_required) {
            bdy_errbuf_add_cause(op->eb, "FieldValueInvalid", "metadata.resourceVersion",
                                 "Invalid value: 0x0: must be specified for an update");
            bdy__invalid_summary(op->eb, info, name);
            rc = BDY_EINVALID_OBJECT;
            goto out;
        }
    } else if (strcmp(want_rv, have_rv ? have_rv : "") != 0) {
        rc = bdy_fail(op->eb, BDY_ECONFLICT,
                      "Operation cannot be fulfilled on %s%s%s \"%s\": the object has been "
                      "modified; please apply your changes to the latest version and try again",
                      info->resource, info->group[0] ? "." : "", info->group, name);
        goto out;
    }
    const char *want_uid = bdy__meta_str(neu, "uid");
    if (want_uid != NULL && want_uid[0] &&
        strcmp(want_uid, bdy__meta_str(old, "uid") ? bdy__meta_str(old, "uid") : "") != 0) {
        rc = bdy_fail(op->eb, BDY_ECONFLICT,
                      "Precondition failed: UID in precondition: %s, UID in object meta: %s",
                      want_uid, bdy__meta_str(old, "uid"));
        goto out;
    }

    if (status_write) {
        /* Only .status moves; everything else stays as stored. The new
         * object shares old's members (old is dropped once this write is
         * done) except metadata, which gets a fresh resourceVersion and so
         * is copied: a deep copy of the whole world per status write showed
         * in profiles of the claim path. */
        json_object *status = NULL;
        json_object *merged = json_object_new_object();
        if (merged == NULL) {
            rc = BDY_ENOMEM;
            goto out;
        }
        json_object_object_foreach(old, key, val)
        {
            json_object *member = NULL;
            if (strcmp(key, "status") == 0)
                continue;
            if (strcmp(key, "metadata") != 0)
                member = json_object_get(val);
            else if (json_object_deep_copy(val, &member, NULL) != 0)
                member = NULL;
            /* A JSON null member (a kind without a schema keeps it) is no
             * object in json-c, and no failure to copy. */
            if ((val != NULL && member == NULL) ||
                json_object_object_add(merged, key, member) != 0) {
                json_object_put(member);
                json_object_put(merged);
                rc = BDY_ENOMEM;
                goto out;
            }
        }
        if (json_object_object_get_ex(neu, "status", &status))
            json_object_object_add(merged, "status", json_object_get(status));
        else
            json_object_object_del(merged, "status");
        json_object_put(neu);
        neu = merged;
    } else {
        json_object *nmeta = bdy__metadata(neu);
        json_object *ometa = bdy__metadata(old);
        static const char *const kept[] = {"name",
                                           "namespace",
                                           "uid",
                                           "creationTimestamp",
                                           "deletionTimestamp",
                                           "deletionGracePeriodSeconds",
                                           "generation"};
        for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
            json_object *v = NULL;
            if (json_object_object_get_ex(ometa, kept[i], &v))
                json_object_object_add(nmeta, kept[i], json_object_get(v));
            else
                json_object_object_del(nmeta, kept[i]);
        }
        if (info->status_subresource) {
            json_object *status = NULL;
            if (json_object_object_get_ex(old, "status", &status))
                json_object_object_add(neu, "status", json_object_get(status));
            else
                json_object_object_del(neu, "status");
        }
    }
    json_object_object_del(bdy__metadata(neu), "managedFields");
    set_rv(neu, strtoull(have_rv ? have_rv : "0", NULL, 10));
    /* Through the status or, for a CRD without the subresource, the object. */
    if (op->wo.client && (rc = check_client_world_write(info, name, old, neu, op->eb)) != 0)
        goto out;

    rc = validate_object(res, neu, old, op->wo.unknown, &crd, op->eb);
    if (rc == 0 && crd != NULL)
        rc = crd_update_allowed(info, name, old, crd, neu, op->eb);
    if (rc != 0)
        goto out;
    bool deleting = bdy__meta_str(old, "deletionTimestamp") != NULL;
    if (deleting && !bdy__finalizers_subset(neu, old)) {
        bdy_errbuf_add_cause(op->eb, "FieldValueForbidden", "metadata.finalizers",
                             "Forbidden: no new finalizers can be added if the object is being "
                             "deleted");
        bdy__invalid_summary(op->eb, info, name);
        rc = BDY_EINVALID_OBJECT;
        goto out;
    }
    if (!status_write && bdy__content_changed(old, neu, info->status_subresource)) {
        json_object *gen = NULL;
        int64_t g = json_object_object_get_ex(bdy__metadata(old), "generation", &gen)
                        ? json_object_get_int64(gen)
                        : 0;
        json_object_object_add(bdy__metadata(neu), "generation", json_object_new_int64(g + 1));
    }
    if (json_object_equal(old, neu)) {
        /* A write that changes nothing keeps the resourceVersion. */
        op->out = neu;
        neu = NULL;
        goto out;
    }
    if (op->wo.dry_run) {
        op->out = neu;
        neu = NULL;
        goto out;
    }
    if (deleting && !bdy__has_finalizers(neu)) {
        /* The write that empties the finalizers is not stored: the object
         * goes as it was stored, and its DELETED event says so (as in
         * Kubernetes), so a watch whose selector that write would have
         * left still sees it go. */
        rc = w_remove(s, op, info, ns, name, old);
        if (rc != 0)
            goto out;
        set_rv(neu, s->rv);
        op->deleted = true;
        if (strcmp(info->resource, "customresourcedefinitions") == 0 && crd != NULL) {
            const bdy__resource *cr = bdy__registry_get(&s->registry, crd->group, crd->plural);
            /* As in do_delete: a CRD naming a built-in resource never
             * served it, and takes none of its objects with it. One not
             * served yet may have been made earlier in this batch, and is
             * unregistered after the commit all the same. */
            if (cr == NULL || !cr->builtin) {
                if (cr != NULL && (rc = cascade_crd(s, op, cr)) != 0)
                    goto out;
                op->crd_remove = crd_key(crd->group, crd->plural);
                if (op->crd_remove == NULL) {
                    rc = BDY_ENOMEM;
                    goto out;
                }
            }
        }
    } else {
        rc = w_store(s, op, info, ns, name, neu, old, old_text, BDY_EVENT_MODIFIED);
        if (rc != 0)
            goto out;
        op->crd_put = crd;
        crd = NULL;
    }
    op->out = neu;
    neu = NULL;
out:
    json_object_put(old);
    free(old_text);
    json_object_put(neu);
    bdy_crd_free(crd);
    return rc;
}

/* Loads the current object for an update-like op; with old_text, also its
 * stored text (caller frees). */
static int load_current(sqlite_store *s, write_op *op, const bdy__resource **res_out,
                        const char **ns_out, const char *name, json_object **old, char **old_text)
{
    const bdy__resource *res = w_resource(s, op->gvr, op->eb);
    *res_out = res;
    if (res == NULL)
        return BDY_ENOTFOUND;
    const char *ns = scoped_ns(&res->info, op->ns);
    *ns_out = ns;
    if (name == NULL || name[0] == '\0')
        return bdy_fail(op->eb, BDY_EINVAL, "a name is required");
    int rc = w_load_text(s, res->info.group, res->info.resource, ns, name, old, old_text, op->eb);
    if (rc != 0)
        return rc;
    if (*old == NULL) {
        not_found(op->eb, &res->info, name);
        return BDY_ENOTFOUND;
    }
    return 0;
}

static int do_update(sqlite_store *s, write_op *op)
{
    json_object *old = NULL;
    json_object *neu = NULL;
    const bdy__resource *res = NULL;
    const char *ns = NULL;
    if (!json_object_is_type(op->obj, json_type_object))
        return bdy_fail(op->eb, BDY_EINVAL, "the request body must be a JSON object");
    const char *name = bdy__meta_str(op->obj, "name");
    char *old_text = NULL;
    int rc = load_current(s, op, &res, &ns, name, &old, &old_text);
    if (rc != 0)
        return rc;
    /* As on create: the object is where the request says, or it is refused. */
    const char *body_ns = bdy__meta_str(op->obj, "namespace");
    if (res->info.namespaced && body_ns != NULL && body_ns[0] && strcmp(body_ns, ns) != 0) {
        json_object_put(old);
        free(old_text);
        return bdy_fail(op->eb, BDY_EINVAL,
                        "the namespace of the provided object does not match the namespace sent "
                        "on the request");
    }
    if (json_object_deep_copy(op->obj, &neu, NULL) != 0) {
        json_object_put(old);
        free(old_text);
        return BDY_ENOMEM;
    }
    /* Custom resources need the resourceVersion on a status PUT too, as in
     * Kubernetes (their status strategy allows no unconditional update). */
    bool status_write = op->kind == OP_UPDATE_STATUS;
    return commit_update(s, op, res, ns, old, old_text, neu, status_write,
                         res->requires_rv_on_update);
}

static int do_patch(sqlite_store *s, write_op *op)
{
    json_object *old = NULL;
    json_object *neu = NULL;
    const bdy__resource *res = NULL;
    const char *ns = NULL;
    char *old_text = NULL;
    int rc = load_current(s, op, &res, &ns, op->name, &old, &old_text);
    if (rc != 0)
        return rc;
    if (op->patch_type == BDY_PATCH_MERGE) {
        neu = bdy_merge_patch(old, op->patch);
        if (neu == NULL)
            rc = json_object_is_type(op->patch, json_type_null)
                     ? bdy_fail(op->eb, BDY_EINVAL, "a null merge patch would erase the object")
                     : BDY_ENOMEM;
    } else {
        rc = bdy_json_patch(old, op->patch, &neu, op->eb);
        bool op_failed = rc == BDY_ECONFLICT || rc == BDY_EINVALID_OBJECT ||
                         (rc == BDY_EINVAL && json_object_is_type(op->patch, json_type_array));
        if (op_failed) {
            /* An operation that fails (a failed "test", a missing path, an
             * unknown op) makes the request invalid for the object, as
             * Kubernetes answers (422), not a resourceVersion conflict. */
            if (op->eb != NULL) /* callers may pass none (store.h) */
                bdy_errbuf_add_cause(op->eb, "FieldValueInvalid", "", "%s", op->eb->message);
            rc = BDY_EINVALID_OBJECT;
        }
    }
    if (rc != 0) {
        json_object_put(old);
        free(old_text);
        json_object_put(neu);
        return rc;
    }
    /* The patched metadata may not rename or move the object. */
    const char *pname = bdy__meta_str(neu, "name");
    if (pname != NULL && strcmp(pname, op->name) != 0) {
        json_object_put(old);
        free(old_text);
        json_object_put(neu);
        return bdy_fail(op->eb, BDY_EINVAL,
                        "the name of the object (%s) does not match the "
                        "name on the URL (%s)",
                        pname, op->name);
    }
    return commit_update(s, op, res, ns, old, old_text, neu, op->status_only, false);
}

/* A record removed with its namespace, read before the removal. */
typedef struct ns_victim {
    const bdy__resource *res;
    json_object *obj; /* owned */
} ns_victim;

static bool is_ns_record(const sqlite_store *s, const char *group, const char *resource)
{
    for (size_t i = 0; s->ns_records != NULL && s->ns_records[i] != NULL; i++)
        if (strcmp(s->ns_records[i]->group, group) == 0 &&
            strcmp(s->ns_records[i]->resource, resource) == 0)
            return true;
    return false;
}

/* A namespace about to be deleted: BDY_ECONFLICT naming what it still
 * holds, but for records (s->ns_records), which are removed with it (one
 * watch event each; not on a dry run). Kubernetes empties a namespace in
 * the background; here deleting what holds a finalizer (a world and its
 * process) stays the client's to ask for, and nothing waits for it. */
static int empty_namespace_records(sqlite_store *s, write_op *op, const char *ns)
{
    /* What the records are, for the messages: "events, allocations.bindery.dev". */
    char record_kinds[256] = "";
    size_t klen = 0;
    for (size_t i = 0; s->ns_records != NULL && s->ns_records[i] != NULL; i++) {
        const bdy_gvr *g = s->ns_records[i];
        int w = snprintf(record_kinds + klen, sizeof(record_kinds) - klen, "%s%s%s%s",
                         i ? ", " : "", g->resource, g->group[0] ? "." : "", g->group);
        klen += w > 0 && (size_t)w < sizeof(record_kinds) - klen ? (size_t)w : 0;
    }

    sqlite3_stmt *st = s->st_count_ns;
    sqlite3_bind_text(st, 1, ns, -1, SQLITE_STATIC);
    char held[512] = "";
    size_t len = 0;
    sqlite3_int64 records = 0;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *grp = (const char *)sqlite3_column_text(st, 0);
        const char *res = (const char *)sqlite3_column_text(st, 1);
        sqlite3_int64 n = sqlite3_column_int64(st, 2);
        if (is_ns_record(s, grp, res)) {
            records += n;
            continue;
        }
        if (len < sizeof(held)) {
            int w = snprintf(held + len, sizeof(held) - len, "%s%lld %s%s%s", len ? ", " : "",
                             (long long)n, res, grp[0] ? "." : "", grp);
            len += w > 0 ? (size_t)w : 0;
        }
    }
    int rc = step == SQLITE_DONE ? 0 : sql_error(s->db, op->eb, "count");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != 0)
        return rc;
    if (len > 0)
        return bdy_fail(op->eb, BDY_ECONFLICT,
                        "namespace \"%s\" still holds %s; delete them first%s%s%s", ns, held,
                        klen ? " (its " : "", record_kinds, klen ? " go with it)" : "");
    if ((size_t)records > s->ns_records_max)
        return bdy_fail(
            op->eb, BDY_ECONFLICT,
            "namespace \"%s\" holds %lld records (%s), more than one delete removes "
            "(%zu: half of store.watchHistory, at most 20000): delete some of them first "
            "(kubectl delete KIND --all -n %s), or wait until they expire",
            ns, (long long)records, record_kinds, s->ns_records_max, ns);
    if (records == 0 || op->wo.dry_run)
        return 0;
    /* Read first, removed after: the statement is not stepped over rows
     * it deletes. */
    ns_victim *v = calloc((size_t)records, sizeof(*v));
    if (v == NULL)
        return BDY_ENOMEM;
    size_t nv = 0;
    st = s->st_list_ns;
    sqlite3_bind_text(st, 1, ns, -1, SQLITE_STATIC);
    while (nv < (size_t)records && (step = sqlite3_step(st)) == SQLITE_ROW) {
        const bdy__resource *res =
            bdy__registry_get(&s->registry, (const char *)sqlite3_column_text(st, 0),
                              (const char *)sqlite3_column_text(st, 1));
        if (res == NULL || !is_ns_record(s, res->info.group, res->info.resource))
            continue;
        json_object *o = bdy_json_parse_stored((const char *)sqlite3_column_text(st, 2));
        if (o == NULL) {
            rc = BDY_ENOMEM;
            break;
        }
        v[nv++] = (ns_victim){res, o};
    }
    if (rc == 0 && nv < (size_t)records && step != SQLITE_DONE)
        rc = sql_error(s->db, op->eb, "list for the namespace's delete");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    for (size_t i = 0; rc == 0 && i < nv; i++)
        rc = w_remove(s, op, &v[i].res->info, ns, bdy__meta_str(v[i].obj, "name"), v[i].obj);
    for (size_t i = 0; i < nv; i++)
        json_object_put(v[i].obj);
    free(v);
    return rc;
}

static int do_delete(sqlite_store *s, write_op *op)
{
    json_object *old = NULL;
    const bdy__resource *res = NULL;
    const char *ns = NULL;
    int rc = load_current(s, op, &res, &ns, op->name, &old, NULL);
    if (rc != 0)
        return rc;
    const bdy_resource_info *info = &res->info;
    const bdy_delete_opts *d = op->dopts;
    const char *uid = bdy__meta_str(old, "uid");
    const char *rv = bdy__meta_str(old, "resourceVersion");
    if (d != NULL && d->precondition_uid != NULL && strcmp(d->precondition_uid, uid) != 0) {
        rc = bdy_fail(op->eb, BDY_ECONFLICT,
                      "Precondition failed: UID in precondition: %s, UID in object meta: %s",
                      d->precondition_uid, uid);
        goto out;
    }
    if (d != NULL && d->precondition_rv != NULL && strcmp(d->precondition_rv, rv) != 0) {
        rc = bdy_fail(op->eb, BDY_ECONFLICT,
                      "Precondition failed: ResourceVersion in precondition: %s, "
                      "ResourceVersion in object meta: %s",
                      d->precondition_rv, rv);
        goto out;
    }
    if (strcmp(info->resource, "namespaces") == 0 && !info->group[0] &&
        (rc = empty_namespace_records(s, op, op->name)) != 0)
        goto out;
    if (op->wo.dry_run) {
        op->deleted = !bdy__has_finalizers(old);
        op->out = old;
        old = NULL;
        goto out;
    }
    if (bdy__has_finalizers(old)) {
        if (bdy__meta_str(old, "deletionTimestamp") != NULL) {
            op->out = old; /* already being deleted: nothing changes */
            old = NULL;
            goto out;
        }
        json_object *neu = NULL;
        if (json_object_deep_copy(old, &neu, NULL) != 0) {
            rc = BDY_ENOMEM;
            goto out;
        }
        char now[BDY_TIMESTAMP_LEN];
        bdy_timestamp_now_seconds(now);
        json_object *meta = bdy__metadata(neu);
        json_object_object_add(meta, "deletionTimestamp", json_object_new_string(now));
        json_object_object_add(meta, "deletionGracePeriodSeconds", json_object_new_int(0));
        /* As Kubernetes marks an object for deletion: controllers that
         * look only at generation changes see it too. */
        int64_t gen = bdy_jint(meta, "generation", 0);
        if (gen > 0)
            json_object_object_add(meta, "generation", json_object_new_int64(gen + 1));
        rc = w_store(s, op, info, ns, op->name, neu, old, NULL, BDY_EVENT_MODIFIED);
        if (rc != 0) {
            json_object_put(neu);
            goto out;
        }
        op->out = neu;
        goto out;
    }
    rc = w_remove(s, op, info, ns, op->name, old);
    if (rc != 0)
        goto out;
    if (strcmp(info->resource, "customresourcedefinitions") == 0 &&
        !strcmp(info->group, "apiextensions.k8s.io")) {
        json_object *spec = NULL;
        json_object *names = NULL;
        json_object_object_get_ex(old, "spec", &spec);
        json_object_object_get_ex(spec, "names", &names);
        const char *group = bdy_jstr(spec, "group");
        const char *plural = bdy_jstr(names, "plural");
        const bdy__resource *cr =
            group && plural ? bdy__registry_get(&s->registry, group, plural) : NULL;
        /* One not served yet may have been made earlier in this batch (it
         * is registered after the commit): unregistered then all the
         * same, or it would be served with no CRD behind it. */
        if (group != NULL && plural != NULL && (cr == NULL || !cr->builtin)) {
            if (cr != NULL && (rc = cascade_crd(s, op, cr)) != 0)
                goto out;
            op->crd_remove = crd_key(group, plural);
            if (op->crd_remove == NULL) {
                rc = BDY_ENOMEM;
                goto out;
            }
        }
    }
    op->deleted = true;
    op->out = old;
    old = NULL;
out:
    json_object_put(old);
    return rc;
}

static int apply_op(sqlite_store *s, write_op *op)
{
    switch (op->kind) {
    case OP_CREATE:
        return do_create(s, op);
    case OP_UPDATE:
    case OP_UPDATE_STATUS:
        return do_update(s, op);
    case OP_PATCH:
        return do_patch(s, op);
    case OP_DELETE:
        return do_delete(s, op);
    }
    return BDY_EINVAL;
}

static void op_drop_effects(write_op *op)
{
    for (size_t i = 0; i < op->nevents; i++) {
        bdy__event *e = &op->events[i];
        free(e->group);
        free(e->resource);
        free(e->ns);
        free(e->name);
        free(e->object);
        free(e->old_object);
    }
    free(op->events);
    op->events = NULL;
    op->nevents = 0;
    op->aevents = 0;
    bdy_crd_free(op->crd_put);
    op->crd_put = NULL;
    free(op->crd_remove);
    op->crd_remove = NULL;
}

/* Runs a prepared statement without results (BEGIN, COMMIT, ROLLBACK). */
static int step_simple(sqlite3_stmt *st)
{
    int step = sqlite3_step(st);
    sqlite3_reset(st);
    return step == SQLITE_DONE ? 0 : BDY_EIO;
}

/* Runs one batch in one transaction: a single fsync for all of it. */
static void run_batch(sqlite_store *s, write_op *batch)
{
    uint64_t start_rv = s->rv;
    write_op *broke = NULL; /* the op whose own failure broke the transaction */
    bdy_wal_checkpointer_before_write(s->ckpt);
    int txn_rc = step_simple(s->st_begin);
    for (write_op *op = batch; op != NULL; op = op->next) {
        if (txn_rc != 0) {
            op->rc = sql_error(s->db, op->eb, "begin");
            continue;
        }
        /* Each op in a savepoint: one that fails after writing (out of
         * memory for its event, say) leaves no row behind for a write its
         * caller is told failed, and gives its resourceVersions back. */
        uint64_t op_rv = s->rv;
        if (step_simple(s->st_op_begin) != 0) {
            op->rc = sql_error(s->db, op->eb, "savepoint");
            txn_rc = op->rc == BDY_ENOMEM ? BDY_EIO : op->rc;
            continue;
        }
        s->batch_first = batch;
        s->batch_now = op;
        op->rc = apply_op(s, op);
        if (op->rc != 0) {
            json_object_put(op->out);
            op->out = NULL;
            op_drop_effects(op);
            s->rv = op_rv;
            /* A damaged object (its page, or text that does not parse)
             * fails its own write, not the others of the batch: claims
             * share batches with controller writes, and one write that
             * keeps touching a bad row would fail them all, each retry. */
            if (op->rc == BDY_EIO || op->rc == BDY_EREADONLY) {
                txn_rc = op->rc; /* the transaction itself is broken */
                broke = op;
            } else if (sqlite3_get_autocommit(s->db) || step_simple(s->st_op_undo) != 0)
                txn_rc = BDY_EIO; /* SQLite rolled it all back (out of memory, say) */
        }
        if (txn_rc == 0 && step_simple(s->st_op_end) != 0)
            txn_rc = BDY_EIO;
        if (op->rc == 0 && op->crd_remove != NULL)
            s->batch_crd_removals++;
    }
    s->batch_first = s->batch_now = NULL;
    s->batch_crd_removals = 0;
    if (txn_rc == 0 && s->rv != start_rv) {
        sqlite3_bind_int64(s->st_set_rv, 1, (sqlite3_int64)s->rv);
        if (sqlite3_step(s->st_set_rv) != SQLITE_DONE)
            txn_rc = BDY_EIO;
        sqlite3_reset(s->st_set_rv);
    }
    /* Before the commit: readers may see the new version the moment it
     * lands, and written_rv is only ever an upper bound. */
    if (txn_rc == 0)
        s->written_rv = s->rv;
    if (txn_rc == 0 && step_simple(s->st_commit) != 0)
        txn_rc = BDY_EIO;
    if (txn_rc != 0) {
        s->written_rv = start_rv;
        /* The cause, before the ROLLBACK replaces it: SQLite may have
         * rolled back already (SQLITE_FULL), and then the ROLLBACK fails
         * with "no transaction is active". */
        char why[256];
        snprintf(why, sizeof(why), "%s", sqlite3_errmsg(s->db));
        uint64_t held = 0;
        if (bdy_log_admit(&s->batch_fail_log, 10000, &held))
            bdy_error("store",
                      "write batch failed, rolling back: %s (%llu such lines held back before "
                      "this one)",
                      why, (unsigned long long)held);
        if (!sqlite3_get_autocommit(s->db))
            step_simple(s->st_rollback);
        if (txn_rc == BDY_EIO || txn_rc == BDY_EREADONLY || txn_rc == BDY_ECORRUPT)
            bdy_write_health_failed(&s->writes, why);
        s->rv = start_rv;
        /* Every answer of the batch, a refusal (404, 409) or a dry run as
         * much as a success, was worked out against writes now undone:
         * each is told the batch failed, and a retry gets the real one. */
        for (write_op *op = batch; op != NULL; op = op->next) {
            if (op != broke)
                op->rc = bdy_fail(op->eb, txn_rc, "the write could not be made durable: %s", why);
            json_object_put(op->out);
            op->out = NULL;
            op_drop_effects(op);
        }
        return;
    }
    if (s->rv != start_rv)
        bdy_write_health_ok(&s->writes); /* something reached the disk */
    /* Durable: publish effects in commit order. */
    for (write_op *op = batch; op != NULL; op = op->next) {
        if (op->crd_remove != NULL) {
            const char *g = op->crd_remove;
            bdy__registry_remove_crd(&s->registry, g, g + strlen(g) + 1);
        }
        if (op->crd_put != NULL) {
            bdy_errbuf eb;
            bdy_errbuf_clear(&eb);
            if (bdy__registry_put_crd(&s->registry, op->crd_put, &eb) != 0)
                bdy_warn("store", "CRD stored but not served: %s", eb.message);
            op->crd_put = NULL;
        }
        bdy__watchlog_append(&s->log, op->events, op->nevents);
        op_drop_effects(op);
    }
    s->committed_rv = s->rv;
}

static void *writer_main(void *arg)
{
    sqlite_store *s = arg;
    bdy_thread_start("bdy-store-wr", true);
    for (;;) {
        pthread_mutex_lock(&s->q_lock);
        while (s->q_head == NULL && s->u_head == NULL && !s->stopping)
            pthread_cond_wait(&s->q_nonempty, &s->q_lock);
        if (s->q_head == NULL && s->u_head == NULL && s->stopping) {
            pthread_mutex_unlock(&s->q_lock);
            break;
        }
        /* Take everything queued (up to max_batch): these all share one
         * commit. Urgent writes go first, and while any wait only a few
         * background writes join them, so a claim's commit is never a big
         * batch of controller traffic. */
        write_op *batch = NULL;
        write_op **tail = &batch;
        size_t n = 0;
        bool urgent = s->u_head != NULL;
        while (s->u_head != NULL && n < s->max_batch) {
            write_op *op = s->u_head;
            s->u_head = op->next;
            *tail = op;
            tail = &op->next;
            n++;
        }
        if (s->u_head == NULL)
            s->u_tail = NULL;
        size_t bg_cap = urgent ? n + BACKGROUND_PER_URGENT_BATCH : s->max_batch;
        while (s->q_head != NULL && n < bg_cap && n < s->max_batch) {
            write_op *op = s->q_head;
            s->q_head = op->next;
            *tail = op;
            tail = &op->next;
            n++;
        }
        if (s->q_head == NULL)
            s->q_tail = NULL;
        *tail = NULL;
        pthread_mutex_unlock(&s->q_lock);

        run_batch(s, batch);

        /* Wake each caller individually: one broadcast would wake every
         * waiting writer for every batch. The op lives on its caller's stack,
         * so read next before posting. */
        for (write_op *op = batch; op != NULL;) {
            write_op *next = op->next;
            write_group *g = op->group;
            if (g == NULL) {
                sem_post(&op->done);
            } else {
                pthread_mutex_lock(&g->lock);
                bool last = --g->left == 0;
                pthread_mutex_unlock(&g->lock);
                if (last)
                    sem_post(&g->done);
            }
            op = next;
        }
    }
    return NULL;
}

/* Queues op and sleeps until the writer has finished it. */
static int submit(sqlite_store *s, write_op *op)
{
    op->next = NULL;
    pthread_mutex_lock(&s->q_lock);
    if (s->stopping) {
        pthread_mutex_unlock(&s->q_lock);
        op->rc = bdy_fail(op->eb, BDY_ESHUTDOWN, "the store is shutting down");
        return op->rc;
    }
    sem_init(&op->done, 0, 0);
    write_op **head = op->wo.urgent ? &s->u_head : &s->q_head;
    write_op **tail = op->wo.urgent ? &s->u_tail : &s->q_tail;
    if (*tail != NULL)
        (*tail)->next = op;
    else
        *head = op;
    *tail = op;
    pthread_cond_signal(&s->q_nonempty);
    pthread_mutex_unlock(&s->q_lock);
    while (sem_wait(&op->done) != 0)
        ; /* EINTR: keep waiting, the writer will post */
    sem_destroy(&op->done);
    return op->rc;
}

/* ---- vtable: writes ------------------------------------------------------ */

static const bdy_write_opts default_wo = {.unknown = BDY_UNKNOWN_PRUNE};

static int finish(write_op *op, json_object **out)
{
    if (op->rc == 0 && out != NULL) {
        *out = op->out;
        op->out = NULL;
    }
    json_object_put(op->out);
    return op->rc;
}

static int s_create(void *ctx, const bdy_gvr *gvr, const char *ns, json_object *obj,
                    const bdy_write_opts *wo, json_object **out, bdy_errbuf *eb)
{
    write_op op = {.kind = OP_CREATE, .gvr = gvr, .ns = ns, .obj = obj, .eb = eb};
    op.wo = wo ? *wo : default_wo;
    submit(ctx, &op);
    return finish(&op, out);
}

static int s_update(void *ctx, const bdy_gvr *gvr, const char *ns, json_object *obj,
                    const bdy_write_opts *wo, json_object **out, bdy_errbuf *eb)
{
    write_op op = {.kind = OP_UPDATE, .gvr = gvr, .ns = ns, .obj = obj, .eb = eb};
    op.wo = wo ? *wo : default_wo;
    submit(ctx, &op);
    return finish(&op, out);
}

static int s_update_status(void *ctx, const bdy_gvr *gvr, const char *ns, json_object *obj,
                           const bdy_write_opts *wo, json_object **out, bdy_errbuf *eb)
{
    write_op op = {.kind = OP_UPDATE_STATUS, .gvr = gvr, .ns = ns, .obj = obj, .eb = eb};
    op.wo = wo ? *wo : default_wo;
    submit(ctx, &op);
    return finish(&op, out);
}

static int s_patch(void *ctx, const bdy_gvr *gvr, const char *ns, const char *name,
                   bdy_patch_type type, json_object *patch, bool status_only,
                   const bdy_write_opts *wo, json_object **out, bdy_errbuf *eb)
{
    write_op op = {.kind = OP_PATCH,
                   .gvr = gvr,
                   .ns = ns,
                   .name = name,
                   .patch_type = type,
                   .patch = patch,
                   .status_only = status_only,
                   .eb = eb};
    op.wo = wo ? *wo : default_wo;
    submit(ctx, &op);
    return finish(&op, out);
}

/* Queues every patch under one lock, so they reach the writer together and
 * share its commits (up to max_batch each). Background writes only. */
static int s_patch_many(void *ctx, bdy_store_patch_item *items, size_t n)
{
    sqlite_store *s = ctx;
    if (n == 0)
        return 0;
    write_op *ops = calloc(n, sizeof(*ops));
    if (ops == NULL)
        return BDY_ENOMEM;
    write_group g;
    pthread_mutex_init(&g.lock, NULL);
    sem_init(&g.done, 0, 0);
    g.left = n;
    for (size_t i = 0; i < n; i++) {
        ops[i] = (write_op){.kind = OP_PATCH,
                            .gvr = items[i].gvr,
                            .ns = items[i].ns,
                            .name = items[i].name,
                            .patch_type = items[i].type,
                            .patch = items[i].patch,
                            .status_only = items[i].status_only,
                            .wo = default_wo,
                            .group = &g};
        ops[i].next = i + 1 < n ? &ops[i + 1] : NULL;
    }
    pthread_mutex_lock(&s->q_lock);
    bool stopping = s->stopping;
    if (!stopping) {
        if (s->q_tail != NULL)
            s->q_tail->next = &ops[0];
        else
            s->q_head = &ops[0];
        s->q_tail = &ops[n - 1];
        pthread_cond_signal(&s->q_nonempty);
    }
    pthread_mutex_unlock(&s->q_lock);
    if (!stopping) {
        while (sem_wait(&g.done) != 0)
            ; /* EINTR: the writer will post */
    }
    for (size_t i = 0; i < n; i++) {
        items[i].rc = stopping ? BDY_ESHUTDOWN : ops[i].rc;
        json_object_put(ops[i].out);
    }
    sem_destroy(&g.done);
    pthread_mutex_destroy(&g.lock);
    free(ops);
    return 0;
}

static int s_remove(void *ctx, const bdy_gvr *gvr, const char *ns, const char *name,
                    const bdy_delete_opts *opts, json_object **out, bool *deleted, bdy_errbuf *eb)
{
    write_op op = {.kind = OP_DELETE, .gvr = gvr, .ns = ns, .name = name, .dopts = opts, .eb = eb};
    op.wo = default_wo;
    op.wo.dry_run = opts != NULL && opts->dry_run;
    submit(ctx, &op);
    if (deleted != NULL)
        *deleted = op.rc == 0 && op.deleted;
    return finish(&op, out);
}

/* ---- vtable: reads ------------------------------------------------------- */

static reader *reader_acquire(sqlite_store *s)
{
    unsigned start = __atomic_fetch_add(&s->next_reader, 1, __ATOMIC_RELAXED);
    for (unsigned i = 0; i < READER_COUNT; i++) {
        reader *r = &s->readers[(start + i) % READER_COUNT];
        if (pthread_mutex_trylock(&r->lock) == 0)
            return r;
    }
    reader *r = &s->readers[start % READER_COUNT];
    pthread_mutex_lock(&r->lock);
    return r;
}

static void reader_release(reader *r)
{
    pthread_mutex_unlock(&r->lock);
}

static int s_resource_info(void *ctx, const bdy_gvr *gvr, bdy_resource_info *out)
{
    sqlite_store *s = ctx;
    int rc = bdy__registry_lookup(&s->registry, group_of(gvr), gvr->resource, out);
    if (rc == 0 && gvr->version != NULL && gvr->version[0] &&
        strcmp(gvr->version, out->version) != 0)
        rc = BDY_ENOTFOUND;
    return rc;
}

static int s_resolve_kind(void *ctx, const char *api_version, const char *kind,
                          bdy_resource_info *out)
{
    sqlite_store *s = ctx;
    char group[128] = "";
    const char *version = api_version;
    const char *slash = api_version ? strchr(api_version, '/') : NULL;
    if (api_version == NULL || kind == NULL)
        return BDY_EINVAL;
    if (slash != NULL) {
        size_t n = (size_t)(slash - api_version);
        if (n >= sizeof(group))
            return BDY_ENOTFOUND;
        memcpy(group, api_version, n);
        group[n] = '\0';
        version = slash + 1;
    }
    return bdy__registry_lookup_kind(&s->registry, group, version, kind, out);
}

static int s_get(void *ctx, const bdy_gvr *gvr, const char *ns, const char *name, json_object **out,
                 bdy_errbuf *eb)
{
    sqlite_store *s = ctx;
    bdy_resource_info info;
    if (s_resource_info(ctx, gvr, &info) != 0)
        return bdy_fail(eb, BDY_ENOTFOUND, "the server could not find the requested resource");
    int rc = 0;
    reader *r = reader_acquire(s);
    sqlite3_stmt *st = r->get;
    sqlite3_bind_text(st, 1, info.group, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, info.resource, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, scoped_ns(&info, ns), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, name ? name : "", -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        *out = bdy_json_parse_stored((const char *)sqlite3_column_text(st, 0));
        if (*out == NULL)
            rc = bdy_fail(eb, BDY_ECORRUPT,
                          "%s: stored object %s %s/%s is not valid JSON: the file is damaged; "
                          "restore it from a backup",
                          s->path, info.resource, scoped_ns(&info, ns), name ? name : "");
    } else if (step == SQLITE_DONE) {
        not_found(eb, &info, name);
        rc = BDY_ENOTFOUND;
    } else {
        rc = sql_error(r->db, eb, "read");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    reader_release(r);
    return rc;
}

/* Continue tokens are base64 of "rv\nlist\nnamespace\nname", list being
 * what the list is of (a hash of group, resource and namespace asked for):
 * opaque to clients, cheap to check, bounded, and refused for any other
 * list than the one they came from (Kubernetes answers 400 for that; the
 * token alone would resume the other list at a place from this one). */
static void list_id(const bdy_resource_info *info, const char *ns, char out[9])
{
    char what[400];
    snprintf(what, sizeof(what), "%s/%s/%s", info->group, info->resource, ns ? ns : "");
    snprintf(out, 9, "%08x", (unsigned)(bdy_hash_str(what) & 0xffffffffu));
}

static char *encode_continue(uint64_t rv, const char *list, const char *ns, const char *name)
{
    char raw[BDY_STORE_MAX_CONTINUE];
    int n = snprintf(raw, sizeof(raw), "%llu\n%s\n%s\n%s", (unsigned long long)rv, list, ns, name);
    if (n < 0 || (size_t)n >= sizeof(raw))
        return NULL;
    char *out = malloc(4 * ((size_t)n + 2) / 3 + 4);
    if (out == NULL)
        return NULL;
    /* URL-safe and unpadded, as Kubernetes' tokens: standard base64's "+"
     * reached the server as a space from clients that put the token in a
     * query unescaped, as it came. */
    int len = EVP_EncodeBlock((unsigned char *)out, (unsigned char *)raw, n);
    while (len > 0 && out[len - 1] == '=')
        out[--len] = '\0';
    for (int i = 0; i < len; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    return out;
}

/* A continue token older than what the store can still show as of its
 * version: the client lists again (Kubernetes' words). */
static int continue_expired(bdy_errbuf *eb)
{
    return bdy_fail(eb, BDY_EEXPIRED,
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter.");
}

static int decode_continue(const char *token, const char *list, uint64_t *rv, char *ns, char *name,
                           bdy_errbuf *eb)
{
    size_t len = strlen(token);
    char text[BDY_STORE_MAX_CONTINUE + 1];
    char raw[BDY_STORE_MAX_CONTINUE + 1];
    if (len == 0 || len > BDY_STORE_MAX_CONTINUE)
        return bdy_fail(eb, BDY_EINVAL, "continue key is not valid");
    /* Tokens of both alphabets are taken (the standard one was given out
     * before), and a space is the "+" of one that came unescaped in a
     * query. */
    for (size_t i = 0; i < len; i++)
        text[i] = token[i] == '-' || token[i] == ' ' ? '+' : token[i] == '_' ? '/' : token[i];
    char *decoded = NULL;
    size_t n = 0;
    int drc = bdy_base64_decode(text, len, &decoded, &n);
    if (drc != 0) {
        free(decoded);
        return drc == BDY_ENOMEM ? bdy_fail(eb, drc, "out of memory")
                                 : bdy_fail(eb, BDY_EINVAL, "continue key is not valid");
    }
    /* Decoded, it is shorter than the token: it fits. */
    memcpy(raw, decoded, n);
    free(decoded);
    raw[n] = '\0';
    if (memchr(raw, '\0', n) != NULL)
        return bdy_fail(eb, BDY_EINVAL, "continue key is not valid");
    char *p1 = strchr(raw, '\n');
    char *p2 = p1 ? strchr(p1 + 1, '\n') : NULL;
    char *p3 = p2 ? strchr(p2 + 1, '\n') : NULL;
    if (p2 != NULL && p3 == NULL)
        /* Made before tokens named their list: 410, so that pagers list
         * again (client-go's pager and kubectl --chunk-size give up on a
         * 400). */
        return continue_expired(eb);
    if (p3 == NULL)
        return bdy_fail(eb, BDY_EINVAL, "continue key is not valid");
    *p1 = '\0';
    *p2 = '\0';
    *p3 = '\0';
    char *end = NULL;
    *rv = strtoull((char *)raw, &end, 10);
    if (end == (char *)raw || *end != '\0')
        return bdy_fail(eb, BDY_EINVAL, "continue key is not valid");
    if (strcmp(p1 + 1, list) != 0)
        return bdy_fail(eb, BDY_EINVAL,
                        "continue key is not valid: it continues another list than this one");
    snprintf(ns, 254, "%s", p2 + 1);
    snprintf(name, 254, "%s", p3 + 1);
    return 0;
}

static int compile_selectors(sqlite_store *s, const bdy_resource_info *info, const char *labels,
                             const char *fields, bdy_label_selector **ls, bdy_field_selector **fs,
                             bdy_errbuf *eb)
{
    *ls = NULL;
    *fs = NULL;
    if (labels != NULL && labels[0] != '\0') {
        int rc = bdy_label_selector_parse(labels, ls, eb);
        if (rc != 0)
            return rc;
    }
    if (fields != NULL && fields[0] != '\0') {
        /* The selectable fields come from the registry entry; copy them under
         * the registry lock so a concurrent CRD change cannot free them. */
        const char *allowed[BDY__REGISTRY_MAX_FIELDS + 1] = {0};
        char storage[BDY__REGISTRY_MAX_FIELDS][128];
        pthread_rwlock_rdlock(&s->registry.lock);
        const bdy__resource *e = NULL;
        for (size_t i = 0; i < s->registry.count; i++) {
            if (!strcmp(s->registry.items[i].info.group, info->group) &&
                !strcmp(s->registry.items[i].info.resource, info->resource))
                e = &s->registry.items[i];
        }
        for (size_t i = 0; e != NULL && i < BDY__REGISTRY_MAX_FIELDS && e->selectable[i]; i++) {
            snprintf(storage[i], sizeof(storage[i]), "%s", e->selectable[i]);
            allowed[i] = storage[i];
        }
        pthread_rwlock_unlock(&s->registry.lock);
        int rc = bdy_field_selector_parse(fields, allowed, fs, eb);
        if (rc != 0) {
            bdy_label_selector_free(*ls);
            *ls = NULL;
            return rc;
        }
    }
    return 0;
}

/* ---- pages of a list after its first ------------------------------------ */

/* A later page of a list shows the objects as they were at the list's
 * resourceVersion, as Kubernetes' do: what changed since is put back from
 * the watch history (the changes' old texts), so a client that lists in
 * pages and then watches from the list's version sees every change once.
 * A token older than the history is refused (410), as before. */
typedef struct changed_obj {
    bdy_hnode node; /* first; node.key = key */
    const char *ns;
    const char *name;
    bool existed; /* at the list's version */
    uint64_t seq; /* of its first change since: its old text is what it was */
    char key[];   /* "ns/name", then ns and name, each NUL-terminated */
} changed_obj;

typedef struct changes {
    bdy_hmap map;
    changed_obj **all;
    size_t n, cap;
    const char *after_ns; /* only objects after the page's start matter */
    const char *after_name;
    int rc;
} changes;

static int key_cmp(const char *ans, const char *aname, const char *bns, const char *bname)
{
    int c = strcmp(ans, bns);
    return c != 0 ? c : strcmp(aname, bname);
}

/* One change from the watch history, oldest first: the first of an object
 * says what it was at the list's version. */
static void change_seen(changes *c, const char *ns, const char *name, bool existed, uint64_t seq)
{
    if (c->rc != 0 || key_cmp(ns, name, c->after_ns, c->after_name) <= 0)
        return;
    size_t nl = strlen(ns) + 1;
    size_t ml = strlen(name) + 1;
    char key[2 * 256 + 2];
    snprintf(key, sizeof(key), "%s/%s", ns, name);
    uint64_t h = bdy_hash_str(key);
    if (bdy_hmap_find(&c->map, key, h) != NULL)
        return;
    size_t kl = strlen(key) + 1;
    changed_obj *o = calloc(1, sizeof(*o) + kl + nl + ml);
    if (o != NULL && c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        changed_obj **grown = realloc(c->all, cap * sizeof(changed_obj *));
        if (grown != NULL) {
            c->all = grown;
            c->cap = cap;
        }
    }
    if (o == NULL || c->n == c->cap) {
        free(o);
        c->rc = BDY_ENOMEM;
        return;
    }
    memcpy(o->key, key, kl);
    memcpy(o->key + kl, ns, nl);
    memcpy(o->key + kl + nl, name, ml);
    o->ns = o->key + kl;
    o->name = o->key + kl + nl;
    o->existed = existed;
    o->seq = seq;
    o->node.key = o->key;
    o->node.hash = h;
    bdy_hmap_insert(&c->map, &o->node);
    c->all[c->n++] = o;
}

static void changes_free(changes *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->all[i]);
    free(c->all);
    bdy_hmap_destroy(&c->map);
}

static int changed_cmp(const void *a, const void *b)
{
    const changed_obj *x = *(const changed_obj *const *)a;
    const changed_obj *y = *(const changed_obj *const *)b;
    return key_cmp(x->ns, x->name, y->ns, y->name);
}

/* What changed in (at, upto] of the list's objects after its page start,
 * into c, sorted by key (ns, name). The writer appends to the history just
 * after its commit, so a reader that saw rv upto may wait a moment for it. */
static int changes_load(sqlite_store *s, const bdy_resource_info *info, const char *ns, uint64_t at,
                        uint64_t upto, changes *c, bdy_errbuf *eb)
{
    if (bdy_hmap_init(&c->map, 64) != 0)
        return BDY_ENOMEM;
    bdy__change_list list = {.n = 0};
    int rc = BDY_EBUSY;
    for (int waited_ms = 0; rc == BDY_EBUSY && waited_ms <= 1000; waited_ms++) {
        if (waited_ms > 0) {
            struct timespec ms = {0, 1000000L};
            nanosleep(&ms, NULL);
        }
        /* BDY_EBUSY is said before any change is handed over. */
        rc = bdy__watchlog_before(&s->log, info->group, info->resource, ns, at, upto, &list);
    }
    for (size_t i = 0; rc == 0 && i < list.n; i++) {
        const char *change_ns = list.keys + list.items[i].key;
        change_seen(c, change_ns, change_ns + strlen(change_ns) + 1, list.items[i].existed,
                    list.items[i].seq);
    }
    bdy__change_list_free(&list);
    if (rc == 0)
        rc = c->rc;
    if (rc == BDY_EEXPIRED)
        return continue_expired(eb);
    if (rc != 0)
        return bdy_fail(eb, rc == BDY_EBUSY ? BDY_ETIMEOUT : rc,
                        "list: the changes since the list's version cannot be read now");
    if (c->n > 1)
        qsort(c->all, c->n, sizeof(changed_obj *), changed_cmp);
    return 0;
}

/* One page being filled. */
typedef struct page {
    json_object *items;
    size_t n;
    size_t limit; /* 0: none */
    size_t max_bytes;
    size_t bytes;
    bool raw;
    bool more; /* full: what was offered last starts the next page */
    bdy_label_selector *ls;
    bdy_field_selector *fs;
    char last_ns[256];
    char last_name[256];
} page;

/* Offers one object (its stored text) to the page, in key order. 0: taken
 * or filtered out; 1: the page is full; an error. */
static int page_offer(page *p, const sqlite_store *s, const bdy_resource_info *info, const char *ns,
                      const char *name, const char *text, size_t text_len, bdy_errbuf *eb)
{
    if (p->limit && (p->n >= p->limit || (p->max_bytes && p->bytes >= p->max_bytes)))
        return p->more = true;
    /* A page never passes max_bytes, but for a first object larger than
     * it: this one starts the next page (the token names the last object
     * of this one). */
    if (p->limit && p->max_bytes && p->n > 0 && p->bytes + text_len > p->max_bytes)
        return p->more = true;
    snprintf(p->last_ns, sizeof(p->last_ns), "%s", ns);
    snprintf(p->last_name, sizeof(p->last_name), "%s", name);
    json_object *o = NULL;
    if (!p->raw || p->ls != NULL || p->fs != NULL) {
        if ((o = bdy_json_parse_stored(text)) == NULL)
            return bdy_fail(eb, BDY_ECORRUPT,
                            "%s: stored object %s %s/%s is not valid JSON: the file is "
                            "damaged; restore it from a backup",
                            s->path, info->resource, ns, name);
        if ((p->ls &&
             !bdy_label_selector_matches(p->ls, bdy_json_path_get(o, "metadata.labels"))) ||
            (p->fs && !bdy_field_selector_matches(p->fs, o))) {
            json_object_put(o);
            return 0;
        }
    }
    if (p->raw) {
        json_object_put(o);
        if ((o = json_object_new_string_len(text, (int)text_len)) == NULL)
            return bdy_fail(eb, BDY_ENOMEM, "out of memory");
    }
    json_object_array_add(p->items, o);
    p->n++;
    p->bytes += text_len;
    if (!p->limit && p->max_bytes && p->bytes > p->max_bytes)
        return bdy_fail(eb, BDY_ETOOBIG,
                        "the list of %s is over %zu bytes; ask for it in pages (limit and "
                        "continue)",
                        info->resource, p->max_bytes);
    return 0;
}

/* Offers the objects that were there at the list's version and have
 * changed or gone since, whose keys come before ns/name (NULL: all that
 * are left), from *next on. */
static int page_offer_changed(page *p, sqlite_store *s, const bdy_resource_info *info,
                              const changes *c, size_t *next, const char *ns, const char *name,
                              bdy_errbuf *eb)
{
    int rc = 0;
    for (; rc == 0 && *next < c->n; (*next)++) {
        const changed_obj *o = c->all[*next];
        if (ns != NULL && key_cmp(o->ns, o->name, ns, name) >= 0)
            break;
        if (!o->existed)
            continue;
        /* Copied only now: a page takes a few of what may be thousands. */
        char *before = NULL;
        rc = bdy__watchlog_copy_before(&s->log, o->seq, &before);
        if (rc == BDY_EEXPIRED)
            rc = continue_expired(eb);
        else if (rc != 0)
            rc = bdy_fail(eb, rc, "out of memory");
        if (rc == 0)
            rc = page_offer(p, s, info, o->ns, o->name, before, strlen(before), eb);
        free(before);
        if (rc == 1)
            break; /* it starts the next page */
    }
    return rc;
}

static int s_list(void *ctx, const bdy_gvr *gvr, const bdy_list_opts *opts, bdy_list_result *out,
                  bdy_errbuf *eb)
{
    sqlite_store *s = ctx;
    bdy_resource_info info;
    bdy_label_selector *ls = NULL;
    bdy_field_selector *fs = NULL;
    json_object *items = NULL;
    reader *r = NULL;
    int rc = 0;
    changes changed = {.n = 0};
    page pg = {.n = 0};
    memset(out, 0, sizeof(*out));
    out->remaining = -1;
    if (s_resource_info(ctx, gvr, &info) != 0)
        return bdy_fail(eb, BDY_ENOTFOUND, "the server could not find the requested resource");
    rc = compile_selectors(s, &info, opts ? opts->label_selector : NULL,
                           opts ? opts->field_selector : NULL, &ls, &fs, eb);
    if (rc != 0)
        goto out;
    const char *ns = info.namespaced && opts && opts->ns && opts->ns[0] ? opts->ns : NULL;
    size_t limit = opts && opts->limit ? opts->limit : 0;
    if (limit > BDY_STORE_MAX_LIST_LIMIT)
        limit = BDY_STORE_MAX_LIST_LIMIT;
    uint64_t token_rv = 0;
    char after_ns[256] = "";
    char after_name[256] = "";
    char list[9];
    list_id(&info, ns, list);
    if (opts && opts->continue_token && opts->continue_token[0]) {
        rc = decode_continue(opts->continue_token, list, &token_rv, after_ns, after_name, eb);
        if (rc != 0)
            goto out;
        if (token_rv < bdy__watchlog_floor(&s->log)) {
            rc = continue_expired(eb);
            goto out;
        }
    }
    items = json_object_new_array();
    r = reader_acquire(s);
    /* One read transaction: the rv and the rows come from the same snapshot
     * (without it, or without the rv, the list's version would not name
     * its rows). */
    if (sqlite3_exec(r->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        rc = sql_error(r->db, eb, "list");
        goto out;
    }
    uint64_t list_rv = 0;
    int rv_step = sqlite3_step(r->rv);
    if (rv_step == SQLITE_ROW)
        list_rv = (uint64_t)sqlite3_column_int64(r->rv, 0);
    else
        rc = sql_error(r->db, eb, "list");
    sqlite3_reset(r->rv);
    if (rc != 0) {
        sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
        goto out;
    }
    /* A later page: what changed since the list's version is put back. */
    changed.after_ns = after_ns;
    changed.after_name = after_name;
    if (token_rv != 0 && token_rv < list_rv &&
        (rc = changes_load(s, &info, ns, token_rv, list_rv, &changed, eb)) != 0) {
        sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
        goto out;
    }
    sqlite3_stmt *st = r->list;
    sqlite3_bind_text(st, 1, info.group, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, info.resource, -1, SQLITE_STATIC);
    if (ns != NULL)
        sqlite3_bind_text(st, 3, ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, after_ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, after_name, -1, SQLITE_STATIC);
    int step = SQLITE_DONE;
    size_t next_changed = 0;
    pg.items = items;
    pg.limit = limit;
    pg.raw = opts && opts->raw;
    pg.max_bytes = opts ? opts->max_bytes : 0;
    pg.ls = ls;
    pg.fs = fs;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *row_ns = (const char *)sqlite3_column_text(st, 0);
        const char *row_name = (const char *)sqlite3_column_text(st, 1);
        rc = page_offer_changed(&pg, s, &info, &changed, &next_changed, row_ns, row_name, eb);
        if (rc != 0)
            break;
        char key[2 * 256 + 2];
        snprintf(key, sizeof(key), "%s/%s", row_ns, row_name);
        if (changed.n > 0 && bdy_hmap_find(&changed.map, key, bdy_hash_str(key)) != NULL)
            continue; /* changed since the list's version: offered as it was then */
        const char *text = (const char *)sqlite3_column_text(st, 2);
        rc = page_offer(&pg, s, &info, row_ns, row_name, text, (size_t)sqlite3_column_bytes(st, 2),
                        eb);
    }
    if (rc == 0 && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = sql_error(r->db, eb, "list");
    if (rc == 0) /* the rows have ended: the rest of what has gone since */
        rc = page_offer_changed(&pg, s, &info, &changed, &next_changed, NULL, NULL, eb);
    bool more = rc == 1;
    if (rc == 1)
        rc = 0;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
    if (rc != 0)
        goto out;
    out->resource_version = token_rv ? token_rv : list_rv;
    if (more) {
        out->continue_token =
            encode_continue(out->resource_version, list, pg.last_ns, pg.last_name);
        if (out->continue_token == NULL) {
            rc = BDY_ENOMEM;
            goto out;
        }
    } else {
        out->remaining = 0;
    }
    out->items = items;
    items = NULL;
out:
    if (r != NULL)
        reader_release(r);
    json_object_put(items);
    changes_free(&changed);
    bdy_label_selector_free(ls);
    bdy_field_selector_free(fs);
    return rc;
}

void bdy_list_result_free(bdy_list_result *r)
{
    if (r == NULL)
        return;
    json_object_put(r->items);
    free(r->continue_token);
    r->items = NULL;
    r->continue_token = NULL;
}

/* ---- vtable: watch and misc ------------------------------------------------ */

static int s_watch(void *ctx, const bdy_gvr *gvr, const char *ns, const char *label_selector,
                   const char *field_selector, uint64_t from_rv, bdy_watch **out, bdy_errbuf *eb)
{
    sqlite_store *s = ctx;
    bdy_resource_info info;
    bdy_label_selector *ls = NULL;
    bdy_field_selector *fs = NULL;
    if (s_resource_info(ctx, gvr, &info) != 0)
        return bdy_fail(eb, BDY_ENOTFOUND, "the server could not find the requested resource");
    int rc = compile_selectors(s, &info, label_selector, field_selector, &ls, &fs, eb);
    if (rc != 0)
        return rc;
    rc = bdy__watchlog_open(&s->log, info.group, info.resource, info.namespaced ? ns : NULL, ls, fs,
                            from_rv, out);
    if (rc == BDY_EEXPIRED)
        bdy_fail(eb, rc, "too old resource version: %llu (%llu)", (unsigned long long)from_rv,
                 (unsigned long long)bdy__watchlog_floor(&s->log));
    return rc;
}

static int s_watch_next(void *ctx, bdy_watch *w, int timeout_ms, bdy_watch_event *ev)
{
    sqlite_store *s = ctx;
    return bdy__watchlog_next(&s->log, w, timeout_ms, ev);
}

static void s_watch_close(void *ctx, bdy_watch *w)
{
    sqlite_store *s = ctx;
    bdy__watchlog_close_watch(&s->log, w);
}

static int s_current_rv(void *ctx, uint64_t *out)
{
    sqlite_store *s = ctx;
    *out = s->committed_rv;
    return 0;
}

static int s_written_rv(void *ctx, uint64_t *out)
{
    sqlite_store *s = ctx;
    *out = s->written_rv;
    return 0;
}

static int s_ping(void *ctx, bdy_errbuf *eb)
{
    sqlite_store *s = ctx;
    reader *r = reader_acquire(s);
    int rc = 0;
    if (sqlite3_step(r->rv) != SQLITE_ROW)
        rc = sql_error(r->db, eb, "ping");
    sqlite3_reset(r->rv);
    reader_release(r);
    /* Only damage fails the ping: a check that could not finish (a busy
     * or unreadable moment) was logged, and says nothing about the data. */
    pthread_mutex_lock(&s->q_lock);
    if (rc == 0 && s->check != NULL && bdy_db_check_result(s->check, NULL) == BDY_ECORRUPT)
        rc = bdy_db_check_result(s->check, eb);
    if (s->stopping)
        rc = bdy_fail(eb, BDY_ESHUTDOWN, "the store is shutting down");
    pthread_mutex_unlock(&s->q_lock);
    if (rc == 0)
        rc = bdy_write_health_check(&s->writes, s->path, eb);
    return rc;
}

static void s_destroy(void *ctx);

static const bdy_store_vtable sqlite_vtable = {
    .name = "sqlite",
    .resource_info = s_resource_info,
    .resolve_kind = s_resolve_kind,
    .get = s_get,
    .list = s_list,
    .create = s_create,
    .update = s_update,
    .update_status = s_update_status,
    .patch = s_patch,
    .patch_many = s_patch_many,
    .remove = s_remove,
    .watch = s_watch,
    .watch_next = s_watch_next,
    .watch_close = s_watch_close,
    .current_rv = s_current_rv,
    .written_rv = s_written_rv,
    .ping = s_ping,
    .destroy = s_destroy,
};

/* ---- open / close ------------------------------------------------------------ */

static void s_destroy(void *ctx)
{
    sqlite_store *s = ctx;
    if (s == NULL)
        return;
    bdy_db_check_stop(s->check);
    if (s->writer_started) {
        pthread_mutex_lock(&s->q_lock);
        s->stopping = true;
        pthread_cond_signal(&s->q_nonempty);
        pthread_mutex_unlock(&s->q_lock);
        pthread_join(s->writer, NULL); /* drains what was queued first */
    }
    bdy_wal_checkpointer_stop(s->ckpt);
    if (s->log.ring != NULL)
        bdy__watchlog_close(&s->log);
    for (int i = 0; i < READER_COUNT; i++) {
        reader *r = &s->readers[i];
        sqlite3_finalize(r->get);
        sqlite3_finalize(r->list);
        sqlite3_finalize(r->rv);
        sqlite3_close(r->db);
        pthread_mutex_destroy(&r->lock);
    }
    sqlite3_finalize(s->st_get);
    sqlite3_finalize(s->st_put);
    sqlite3_finalize(s->st_del);
    sqlite3_finalize(s->st_set_rv);
    sqlite3_finalize(s->st_count_ns);
    sqlite3_finalize(s->st_list_ns);
    sqlite3_finalize(s->st_list_res);
    sqlite3_finalize(s->st_begin);
    sqlite3_finalize(s->st_commit);
    sqlite3_finalize(s->st_rollback);
    sqlite3_finalize(s->st_op_begin);
    sqlite3_finalize(s->st_op_undo);
    sqlite3_finalize(s->st_op_end);
    sqlite3_close(s->db);
    bdy__watchlog_destroy(&s->log);
    bdy__registry_destroy(&s->registry);
    pthread_mutex_destroy(&s->q_lock);
    pthread_cond_destroy(&s->q_nonempty);
    bdy_write_health_destroy(&s->writes);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* after every connection: the next owner may open */
    free(s->path);
    free(s);
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, bdy_errbuf *eb)
{
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK)
        return sql_error(db, eb, "prepare");
    return 0;
}

/* Checks the data folder before SQLite touches it, so that a missing,
 * foreign or read-only data file is reported instead of papered over. */
/* Takes the data folder for this process alone. Two processes on one store
 * would each number resource versions and keep a watch history of their own
 * (informers would skip events as already seen), and the ledger and demand
 * files beside it would get two writers. The lock goes with the process, so
 * kill -9 frees it; the descriptor is close-on-exec, so no world holds it. */
static int lock_data_dir(const char *dir, int *fd_out, bdy_errbuf *eb)
{
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, BDY_STORE_LOCK_FILE) >= sizeof(path))
        return bdy_fail(eb, BDY_EINVAL, "data folder path %s is too long", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return bdy_fail(eb, errno == EROFS || errno == EACCES ? BDY_EREADONLY : BDY_EIO,
                        "cannot open %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        close(fd);
        if (err == EWOULDBLOCK)
            return bdy_fail(eb, BDY_EBUSY,
                            "data folder %s is in use by another Bindery process (%s is locked)",
                            dir, path);
        /* A file system without locks (NFS mounted nolock): run as before
         * the lock existed, and say that nothing guards the folder. */
        if (err == ENOLCK || err == EOPNOTSUPP) {
            bdy_warn("store",
                     "cannot lock %s (%s): nothing stops a second Bindery from opening this "
                     "data folder",
                     path, strerror(err));
            return 0;
        }
        return bdy_fail(eb, BDY_EIO, "cannot lock %s: %s", path, strerror(err));
    }
    /* On NFS a lock is granted even where it guards nothing (mounted
     * nolock, it excludes only the processes of this machine), so the
     * warning above never comes there: say it whenever the folder is on
     * NFS. SQLite's WAL needs one machine's shared memory besides. */
    struct statfs fs;
    if (fstatfs(fd, &fs) == 0 && fs.f_type == NFS_SUPER_MAGIC)
        bdy_warn("store",
                 "data folder %s is on NFS: its lock may guard it only against processes of "
                 "this machine, and its files must never be opened from two machines",
                 dir);
    *fd_out = fd;
    return 0;
}

/* Names in dir other than what a new store's folder may hold (the lock,
 * the kubeconfig, and with store_files the store's own files): 1 with the
 * first in name, 0 for none, or an error. */
static int first_stray(const char *dir, bool store_files, char *name, size_t cap, bdy_errbuf *eb)
{
    static const char *const store_names[] = {"bindery.db", "bindery.db-wal", "bindery.db-shm",
                                              "bindery.db-journal", NULL};
    DIR *d = opendir(dir);
    if (d == NULL)
        return bdy_fail(eb, BDY_EIO, "data folder %s: %s", dir, strerror(errno));
    struct dirent *de;
    int found = 0;
    while (found == 0 && (de = readdir(d)) != NULL) {
        bool ours = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
                    strcmp(de->d_name, "kubeconfig") == 0 ||
                    strcmp(de->d_name, BDY_STORE_LOCK_FILE) == 0;
        for (size_t i = 0; store_files && !ours && store_names[i] != NULL; i++)
            ours = strcmp(de->d_name, store_names[i]) == 0;
        if (!ours) {
            snprintf(name, cap, "%s", de->d_name);
            found = 1;
        }
    }
    closedir(d);
    return found;
}

static int check_data_dir(const char *dir, const char *path, bool *fresh, bdy_errbuf *eb)
{
    struct stat st;
    *fresh = false;
    if (stat(dir, &st) != 0) {
        if (errno != ENOENT)
            return bdy_fail(eb, BDY_EIO, "data folder %s: %s", dir, strerror(errno));
        if (mkdir(dir, 0700) != 0)
            return bdy_fail(eb, errno == EROFS || errno == EACCES ? BDY_EREADONLY : BDY_EIO,
                            "cannot create data folder %s: %s", dir, strerror(errno));
        bdy_info("store", "created data folder %s", dir);
        *fresh = true;
        return 0;
    }
    if (!S_ISDIR(st.st_mode))
        return bdy_fail(eb, BDY_EINVAL, "data folder %s is not a folder", dir);
    if ((st.st_mode & S_IWUSR) == 0 || access(dir, W_OK) != 0)
        return bdy_fail(eb, BDY_EREADONLY,
                        "data folder %s is read-only; Bindery needs to write its store there", dir);
    if (stat(path, &st) == 0) {
        if (!S_ISREG(st.st_mode))
            return bdy_fail(eb, BDY_ECORRUPT, "data file %s is not a regular file", path);
        if ((st.st_mode & S_IWUSR) == 0 || access(path, W_OK) != 0)
            return bdy_fail(eb, BDY_EREADONLY, "data file %s is read-only", path);
        return 0;
    }
    /* No store file: only an empty folder may become a new store. Anything
     * else (a WAL without its database, other files) means data went
     * missing, and starting empty would silently lose every object. */
    char stray[256];
    int rc = first_stray(dir, false, stray, sizeof(stray), eb);
    if (rc < 0)
        return rc;
    if (rc > 0)
        return bdy_fail(eb, BDY_ENOTFOUND,
                        "data file %s is missing but the data folder is not empty (found %s); "
                        "refusing to start with an empty store",
                        path, stray);
    *fresh = true;
    return 0;
}

static int open_conn(const char *path, int flags, int busy_ms, sqlite3 **db, bdy_errbuf *eb)
{
    if (sqlite3_open_v2(path, db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        int rc = *db ? sql_error(*db, eb, path) : BDY_ENOMEM;
        sqlite3_close(*db);
        *db = NULL;
        return rc;
    }
    sqlite3_busy_timeout(*db, busy_ms);
    sqlite3_extended_result_codes(*db, 0);
    return 0;
}

static int read_meta(sqlite3 *db, const char *key, char *out, size_t cap)
{
    sqlite3_stmt *st = NULL;
    int rc = BDY_ENOTFOUND;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key=?", -1, &st, NULL) != SQLITE_OK)
        return BDY_ECORRUPT;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
        rc = 0;
    }
    sqlite3_finalize(st);
    return rc;
}

/* How many schema entries match where (an SQL condition on sqlite_master),
 * or -1 when the schema cannot be read (sqlite3_errmsg says why). */
static int schema_count(sqlite3 *db, const char *where)
{
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM sqlite_master WHERE %s", where);
    sqlite3_stmt *st = NULL;
    int n = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* Converts a file whose objects are in a WITHOUT ROWID table (no
 * objects_key index) to the rowid layout, in one transaction: a crash or a
 * full disk midway leaves the file as it was. The copy needs as much free
 * disk as the objects take, once; the old table's pages then go to the free
 * list for later writes, and the file does not shrink. */
static int convert_layout(sqlite_store *s, bdy_errbuf *eb)
{
    int indexes = schema_count(s->db, "type='index' AND name='objects_key'");
    if (indexes < 0)
        return sql_error(s->db, eb, s->path);
    if (indexes > 0)
        return 0;
    bdy_info("store", "converting the objects table of %s to the rowid layout", s->path);
    /* Debian's SQLite zeroes freed pages by default: the dropped table's
     * would all pass through the WAL, several times the objects' size. */
    if (sqlite3_exec(s->db, "PRAGMA secure_delete=OFF", NULL, NULL, NULL) != SQLITE_OK)
        return sql_error(s->db, eb, s->path);
    static const char sql[] =
        "BEGIN IMMEDIATE;"
        "CREATE TABLE objects_rowid" OBJECTS_TABLE_COLUMNS ";"
        "INSERT INTO objects_rowid SELECT grp, res, ns, name, rv, body"
        " FROM objects ORDER BY grp, res, ns, name;"
        "DROP TABLE objects;"
        "ALTER TABLE objects_rowid RENAME TO objects;" OBJECTS_KEY_INDEX "COMMIT;";
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        int rc = sql_error(s->db, eb, "converting the objects table to the rowid layout");
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    bdy_info("store", "converted the objects table of %s to the rowid layout", s->path);
    return 0;
}

/* Creates the schema on a fresh file, or checks that an existing file is a
 * Bindery store of a version we understand, converting an older layout. */
static int init_schema(sqlite_store *s, bool fresh, bdy_errbuf *eb)
{
    char value[64];
    if (!fresh) {
        int tables = schema_count(s->db, "type='table' AND name IN ('meta','objects')");
        if (tables < 0)
            return bdy_fail(eb, BDY_ECORRUPT, "data file %s is not a Bindery store: %s", s->path,
                            sqlite3_errmsg(s->db));
        if (tables != 2 || read_meta(s->db, "format", value, sizeof(value)) != 0 ||
            strcmp(value, STORE_FORMAT) != 0)
            return bdy_fail(eb, BDY_ECORRUPT, "data file %s is not a Bindery store", s->path);
        if (read_meta(s->db, "schema_version", value, sizeof(value)) != 0 ||
            atoi(value) != STORE_SCHEMA_VERSION)
            return bdy_fail(eb, BDY_ECORRUPT,
                            "data file %s has store schema version %s; this Bindery reads "
                            "version %d",
                            s->path, value, STORE_SCHEMA_VERSION);
        if (read_meta(s->db, "resource_version", value, sizeof(value)) != 0)
            return bdy_fail(eb, BDY_ECORRUPT, "data file %s has no resource version", s->path);
        s->rv = strtoull(value, NULL, 10);
        return convert_layout(s, eb);
    }
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "BEGIN;%s INSERT INTO meta VALUES('format','%s');"
             "INSERT INTO meta VALUES('schema_version','%d');"
             "INSERT INTO meta VALUES('resource_version','0');COMMIT;",
             schema_sql, STORE_FORMAT, STORE_SCHEMA_VERSION);
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return sql_error(s->db, eb, "initialising the store");
    s->rv = 0;
    return 0;
}

/* Compiles every stored CRD into the registry so its resources are served
 * from the first request on. */
static int load_crds(sqlite_store *s, bdy_errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(s->db,
                     "SELECT name, body FROM objects WHERE grp='apiextensions.k8s.io' AND "
                     "res='customresourcedefinitions' ORDER BY name",
                     &st, eb);
    if (rc != 0)
        return rc;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        json_object *obj = bdy_json_parse_stored((const char *)sqlite3_column_text(st, 1));
        bdy_crd *crd = NULL;
        bdy_errbuf ceb;
        bdy_errbuf_clear(&ceb);
        if (obj == NULL) {
            rc = bdy_fail(eb, BDY_ECORRUPT, "stored CRD %s is not valid JSON", name);
            break;
        }
        if (bdy_crd_compile(obj, &crd, &ceb) != 0 ||
            bdy__registry_put_crd(&s->registry, crd, &ceb) != 0)
            bdy_warn("store", "stored CRD %s is not served: %s", name, ceb.message);
        json_object_put(obj);
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = sql_error(s->db, eb, "loading CRDs");
    sqlite3_finalize(st);
    return rc;
}

static int seed_default_namespace(sqlite_store *s, bdy_errbuf *eb)
{
    json_object *ns = bdy_json_parse_stored(
        "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"default\"}}");
    json_object *existing = NULL;
    int rc = s_get(s, &BDY_GVR_NAMESPACES, NULL, "default", &existing, NULL);
    if (rc == BDY_ENOTFOUND)
        rc = s_create(s, &BDY_GVR_NAMESPACES, NULL, ns, NULL, NULL, eb);
    json_object_put(existing);
    json_object_put(ns);
    return rc;
}

int bdy_store_sqlite_open(const bdy_sqlite_opts *opts, bdy_store **out, bdy_errbuf *eb)
{
    int rc = 0;
    bdy_store *store = NULL;
    /* The build asks for 3.24; a program can still load an older library. */
    if (sqlite3_libversion_number() < 3024000)
        return bdy_fail(eb, BDY_EINVAL, "the store needs SQLite 3.24 or later (upsert); found %s",
                        sqlite3_libversion());
    sqlite_store *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return BDY_ENOMEM;
    s->lock_fd = -1;
    pthread_mutex_init(&s->q_lock, NULL);
    pthread_cond_init(&s->q_nonempty, NULL);
    bdy_write_health_init(&s->writes);
    for (int i = 0; i < READER_COUNT; i++)
        pthread_mutex_init(&s->readers[i].lock, NULL);
    s->max_batch = opts->max_batch ? opts->max_batch : DEFAULT_MAX_BATCH;
    s->ns_records = opts->namespace_records;
    int busy = opts->busy_timeout_ms > 0 ? opts->busy_timeout_ms : 5000;
    if (bdy__registry_init(&s->registry) != 0) {
        rc = BDY_ENOMEM;
        goto out;
    }
    const char *dir = opts->data_dir && opts->data_dir[0] ? opts->data_dir : ".";
    if (asprintf(&s->path, "%s/bindery.db", dir) < 0) {
        s->path = NULL;
        rc = BDY_ENOMEM;
        goto out;
    }
    bool fresh = false;
    rc = check_data_dir(dir, s->path, &fresh, eb);
    if (rc != 0)
        goto out;
    rc = lock_data_dir(dir, &s->lock_fd, eb);
    if (rc != 0)
        goto out;
    rc = open_conn(s->path, SQLITE_OPEN_READWRITE | (fresh ? SQLITE_OPEN_CREATE : 0), busy, &s->db,
                   eb);
    if (rc != 0)
        goto out;
    /* The first statement reads the header: a foreign or damaged file fails
     * here with SQLITE_NOTADB / SQLITE_CORRUPT. */
    char *errmsg = NULL;
    if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL", NULL, NULL, &errmsg) != SQLITE_OK) {
        rc = sql_error(s->db, eb, s->path);
        if (rc == BDY_EIO)
            rc = BDY_ECORRUPT;
        sqlite3_free(errmsg);
        goto out;
    }
    if (sqlite3_exec(s->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK) {
        rc = sql_error(s->db, eb, s->path);
        goto out;
    }
    /* A store file without a single table, in a folder that holds nothing
     * else of Bindery's: a first start cut short (killed, or a full disk)
     * before its schema's commit. It holds nothing to lose, and refusing
     * it as foreign would leave the folder unstartable until someone
     * deletes the file by hand. */
    if (!fresh && schema_count(s->db, "1") == 0) {
        char stray[256];
        int found = first_stray(dir, true, stray, sizeof(stray), eb);
        if (found < 0) {
            rc = found;
            goto out;
        }
        if (found == 0) {
            bdy_info("store", "%s has no tables (a first start cut short): made anew", s->path);
            fresh = true;
        }
    }
    rc = init_schema(s, fresh, eb);
    if (rc != 0)
        goto out;
    /* A read-only file opened read-write only fails at the first write. */
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE; COMMIT;", NULL, NULL, NULL) != SQLITE_OK) {
        rc = sql_error(s->db, eb, s->path);
        goto out;
    }
    s->committed_rv = s->rv;
    s->written_rv = s->rv;
    if ((rc = prepare(s->db,
                      "SELECT body FROM objects WHERE grp=?1 AND res=?2 AND ns=?3 AND name=?4",
                      &s->st_get, eb)) != 0 ||
        /* An update rewrites the row where it is: its rowid and index entry
         * stay, so one page changes (REPLACE would delete and append). */
        (rc = prepare(s->db,
                      "INSERT INTO objects(grp, res, ns, name, rv, body) "
                      "VALUES(?1,?2,?3,?4,?5,?6) ON CONFLICT(grp, res, ns, name) "
                      "DO UPDATE SET rv=excluded.rv, body=excluded.body",
                      &s->st_put, eb)) != 0 ||
        (rc = prepare(s->db, "DELETE FROM objects WHERE grp=?1 AND res=?2 AND ns=?3 AND name=?4",
                      &s->st_del, eb)) != 0 ||
        (rc = prepare(s->db, "UPDATE meta SET value=?1 WHERE key='resource_version'", &s->st_set_rv,
                      eb)) != 0 ||
        (rc = prepare(s->db, "SELECT grp, res, count(*) FROM objects WHERE ns=?1 GROUP BY grp, res",
                      &s->st_count_ns, eb)) != 0 ||
        (rc = prepare(s->db, "SELECT grp, res, body FROM objects WHERE ns=?1", &s->st_list_ns,
                      eb)) != 0 ||
        (rc = prepare(s->db, "SELECT body FROM objects WHERE grp=?1 AND res=?2", &s->st_list_res,
                      eb)) != 0 ||
        (rc = prepare(s->db, "BEGIN IMMEDIATE", &s->st_begin, eb)) != 0 ||
        (rc = prepare(s->db, "COMMIT", &s->st_commit, eb)) != 0 ||
        (rc = prepare(s->db, "ROLLBACK", &s->st_rollback, eb)) != 0 ||
        (rc = prepare(s->db, "SAVEPOINT op", &s->st_op_begin, eb)) != 0 ||
        (rc = prepare(s->db, "ROLLBACK TO op", &s->st_op_undo, eb)) != 0 ||
        (rc = prepare(s->db, "RELEASE op", &s->st_op_end, eb)) != 0)
        goto out;
    /* Checkpoints in the background: a commit never copies the WAL back. */
    sqlite3_wal_autocheckpoint(s->db, 0);
    bdy_wal_writer_busy_handler(s->db, (unsigned)busy);
    if (bdy_wal_writer_size_limit(s->db, WAL_RESTART_BYTES) != 0) {
        rc = sql_error(s->db, eb, "journal_size_limit");
        goto out;
    }
    if ((rc = bdy_wal_checkpointer_start(s->path, CHECKPOINT_MS, WAL_RESTART_BYTES,
                                         "bdy-store-ckpt", &s->ckpt, eb)) != 0)
        goto out;
    for (int i = 0; i < READER_COUNT; i++) {
        reader *r = &s->readers[i];
        if ((rc = open_conn(s->path, SQLITE_OPEN_READWRITE, busy, &r->db, eb)) != 0 ||
            (rc = prepare(r->db,
                          "SELECT body FROM objects WHERE grp=?1 AND res=?2 AND ns=?3 AND "
                          "name=?4",
                          &r->get, eb)) != 0 ||
            (rc = prepare(r->db,
                          "SELECT ns, name, body FROM objects WHERE grp=?1 AND res=?2 AND "
                          "(?3 IS NULL OR ns=?3) AND (ns, name) > (?4, ?5) ORDER BY ns, name",
                          &r->list, eb)) != 0 ||
            (rc = prepare(r->db, "SELECT value FROM meta WHERE key='resource_version'", &r->rv,
                          eb)) != 0)
            goto out;
    }
    rc = load_crds(s, eb);
    if (rc != 0)
        goto out;
    size_t history = opts->watch_history ? opts->watch_history : DEFAULT_WATCH_HISTORY;
    /* A namespace's records go in one commit, one watch event each: more
     * than the history holds would expire every watch at once. */
    s->ns_records_max =
        history / 2 < BDY_STORE_NS_RECORDS_MAX ? history / 2 : BDY_STORE_NS_RECORDS_MAX;
    rc = bdy__watchlog_init(&s->log, history, WATCH_HISTORY_MAX_BYTES, s->rv);
    if (rc != 0)
        goto out;
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
        rc = bdy_fail(eb, BDY_ENOMEM, "cannot start the store writer thread");
        goto out;
    }
    s->writer_started = true;
    rc = seed_default_namespace(s, eb);
    if (rc != 0)
        goto out;
    s->existed = !fresh;
    store = calloc(1, sizeof(*store));
    if (store == NULL) {
        rc = BDY_ENOMEM;
        goto out;
    }
    store->vt = &sqlite_vtable;
    store->ctx = s;
    if (!opts->quiet)
        bdy_info("store", "opened %s at resourceVersion %llu", s->path, (unsigned long long)s->rv);
    *out = store;
    s = NULL;
out:
    s_destroy(s);
    return rc;
}

int bdy_store_sqlite_check_start(bdy_store *store, bdy_errbuf *eb)
{
    if (store == NULL || store->vt != &sqlite_vtable)
        return bdy_fail(eb, BDY_EINVAL, "not a SQLite store");
    sqlite_store *s = store->ctx;
    int rc = 0;
    pthread_mutex_lock(&s->q_lock);
    if (s->existed && s->check == NULL && !s->stopping)
        rc = bdy_db_check_start(s->path, "bdy-store-check", "store", &s->check, eb);
    pthread_mutex_unlock(&s->q_lock);
    return rc;
}
