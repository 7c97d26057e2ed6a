/* The bindery daemon and its command line.
 *
 *   bindery serve --config FILE [--listen ADDR:PORT] [--data DIR]
 *   bindery check-config FILE
 *   bindery hash-token            (token on stdin → SHA-256 for the token file)
 *   bindery kubeconfig --config FILE [--data DIR] [--token-file PATH]
 *   bindery version
 *
 * Threads: main() blocks the shutdown and reload signals before any other
 * thread exists and then waits for them with sigwait(), so signal handling
 * is ordinary code on the main thread rather than async-signal-safe hacks.
 */
#include "bindery/auth.h"
#include "bindery/backup.h"
#include "bindery/claims.h"
#include "bindery/config.h"
#include "bindery/error.h"
#include "bindery/http.h"
#include "bindery/jsonutil.h"
#include "bindery/kubeapi.h"
#include "bindery/log.h"
#include "bindery/metrics.h"
#include "bindery/pool.h"
#include "bindery/reconciler.h"
#include "bindery/runtime.h"
#include "bindery/store.h"
#include "bindery/tls.h"
#include "bindery/util.h"
#include "bindery/yaml.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef BINDERY_VERSION
#define BINDERY_VERSION "dev"
#endif

/* Everything the running daemon owns. The main thread creates and destroys
 * it; HTTP handlers read it. The token set goes to the HTTP server, which
 * owns it and every set a reload installs (bdy_http_server_set_auth). */
typedef struct daemon_state {
    bdy_config *cfg;
    bdy_store *store;
    bdy_ledger *ledger;
    bdy_metrics *metrics;
    bdy_http_server *http;
    bdy_auth *auth; /* loaded at start, until the HTTP server takes it (then NULL) */
    bool auth_on;   /* a token set is in force */
    bdy_fleet *fleet;
    bdy_runtime *runtime;
    bdy_reconciler *reconciler;
    char world_host[PATH_MAX]; /* for the reconciler: world_host_path() */
    /* The reconciler once made, for GET /metrics: the server answers while
     * start-up still applies manifests, before there is one. */
    _Atomic(bdy_reconciler *) reconciler_made;
    bdy_claims *claims;
    bdy_kubeapi *kubeapi;
    bdy_demand *demand;
    atomic_bool ready;
    bdy_metric_family *reloads;
    bdy_metric *store_rv;
    bdy_metric *manifests_applied;
    bdy_metric *tls_expiry; /* with TLS: when the certificate in force expires */
    unsigned connections;   /* the HTTP connection limit in force */
    /* listen and dataDir as the config file says them, before --listen and
     * --data: what a reload's file is compared with. Owned. */
    char *file_listen;
    char *file_data_dir;
    char *kubeconfig_ca; /* the certificate file the written kubeconfig names, or NULL */
    int instance_fd;     /* holds the instance id on this host (instance_claim); -1: none */
} daemon_state;

/* The usage text: on stdout with exit 0 when asked for (--help), else on
 * stderr with exit 2 (a command line bindery cannot run). */
static int usage_to(FILE *out, int code)
{
    fprintf(out, "usage:\n"
                 "  bindery serve --config FILE [--listen ADDR:PORT] [--data DIR]\n"
                 "  bindery check-config FILE\n"
                 "  bindery hash-token < token\n"
                 "  bindery kubeconfig --config FILE [--data DIR] [--token-file PATH]\n"
                 "                     [--ca-file PATH] [--client-cert PATH --client-key PATH]\n"
                 "  bindery backup --config FILE [--data DIR] --to DIR\n"
                 "  bindery version\n");
    return code;
}

static int usage(void)
{
    return usage_to(stderr, 2);
}

/* ---- HTTP handlers --------------------------------------------------------- */

static void healthz_cb(void *data, const bdy_http_request *req, bdy_http_response *resp)
{
    (void)data;
    (void)req;
    resp->status = 200;
    resp->content_type = "application/json";
    bdy_buf_appends(&resp->body, "{\"status\":\"ok\"}");
}

static void readyz_cb(void *data, const bdy_http_request *req, bdy_http_response *resp)
{
    daemon_state *d = data;
    (void)req;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    if (!atomic_load(&d->ready) || !bdy_claims_ready(d->claims)) {
        bdy_http_error(resp, 503, "NotReady", "start-up has not finished", 1);
        return;
    }
    if (bdy_store_ping(d->store, &eb) != 0 ||
        (d->ledger != NULL && bdy_ledger_health(d->ledger, &eb) != 0)) {
        bdy_http_error(resp, 503, "NotReady", eb.message, 1);
        return;
    }
    resp->status = 200;
    resp->content_type = "application/json";
    bdy_buf_appends(&resp->body, "{\"status\":\"ok\"}");
}

static bool principal_reads_ns(void *principal, const char *ns)
{
    return bdy_principal_allows(principal, BDY_VERB_READ, ns);
}

static void metrics_cb(void *data, const bdy_http_request *req, bdy_http_response *resp)
{
    daemon_state *d = data;
    uint64_t rv = 0;
    if (bdy_store_current_rv(d->store, &rv) == 0)
        bdy_metric_set(d->store_rv, (double)rv);
    bdy_reconciler *r = atomic_load(&d->reconciler_made);
    if (r != NULL)
        bdy_reconciler_collect(r);
    if (d->claims != NULL)
        bdy_claims_collect(d->claims);
    /* A token that may read only some namespaces sees their series only,
     * as GET /v1/pools shows it their pools only. */
    const bdy_principal *p = req->principal;
    bool some = p != NULL && !bdy_principal_allows(p, BDY_VERB_READ, NULL);
    int rc =
        some ? bdy_metrics_render_filtered(d->metrics, &resp->body, principal_reads_ns, (void *)p)
             : bdy_metrics_render(d->metrics, &resp->body);
    if (rc != 0) {
        bdy_http_error(resp, 500, "InternalError", "metrics too large", 0);
        return;
    }
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

/* ---- start-up manifests ------------------------------------------------------ */

/* Creates namespace ns: 0, BDY_EEXISTS, or the store's error. */
static int create_namespace(bdy_store *store, const char *ns, bdy_errbuf *eb)
{
    json_object *obj = json_object_new_object();
    json_object *meta = json_object_new_object();
    json_object_object_add(obj, "apiVersion", json_object_new_string("v1"));
    json_object_object_add(obj, "kind", json_object_new_string("Namespace"));
    json_object_object_add(meta, "name", json_object_new_string(ns));
    json_object_object_add(obj, "metadata", meta);
    int rc = bdy_store_create(store, &BDY_GVR_NAMESPACES, NULL, obj, NULL, NULL, eb);
    json_object_put(obj);
    return rc;
}

/* The scratch store of a check lacks what an operator made with kubectl
 * and the live store has. check-config, which has no live store (live
 * NULL), takes a document whose kind no CRD the config applies defines as
 * unchecked (1), and makes its namespace if missing. A reload's check asks
 * the live store instead: a kind or a namespace that neither it nor an
 * earlier document has fails the check as it would fail the apply, which
 * must not begin then (it would stop half-way). */
static int check_prepare(bdy_store *store, bdy_store *live, const char *path, json_object *doc,
                         bdy_errbuf *eb)
{
    json_object *meta = json_object_object_get(doc, "metadata");
    bdy_resource_info info;
    const char *api_version = bdy_jstr(doc, "apiVersion");
    const char *kind = bdy_jstr(doc, "kind");
    if (bdy_store_resolve_kind(store, api_version, kind, &info) != 0) {
        if (live != NULL && bdy_store_resolve_kind(live, api_version, kind, &info) != 0)
            return 0; /* the apply says why */
        bdy_warn("manifests", "%s: %s %s not checked: no CRD the config applies defines its kind",
                 path, kind ? kind : "(no kind)",
                 bdy_jstr(meta, "name") ? bdy_jstr(meta, "name") : "(no name)");
        return 1;
    }
    const char *ns = bdy_jstr(meta, "namespace");
    if (!info.namespaced || ns == NULL || ns[0] == '\0')
        return 0;
    if (live != NULL) {
        json_object *there = NULL;
        bool exists = bdy_store_get(live, &BDY_GVR_NAMESPACES, NULL, ns, &there, NULL) == 0;
        json_object_put(there);
        if (!exists)
            return 0; /* unless an earlier document made it, the apply says so */
    }
    int rc = create_namespace(store, ns, eb);
    return rc == BDY_EEXISTS ? 0 : rc;
}

/* Applies every manifest found under path (check: to check-config's
 * scratch store). Returns the first error; the ones before it stay applied
 * (each apply is its own durable write). */
static int apply_path(bdy_store *store, const char *path, const bdy_write_opts *wo, size_t *applied,
                      bool check, bdy_store *live, bdy_errbuf *eb)
{
    json_object *docs = NULL;
    json_object *sources = NULL;
    int rc = bdy_yaml_load_manifests_at(path, &docs, &sources, eb);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < json_object_array_length(docs); i++) {
        json_object *doc = json_object_array_get_idx(docs, i);
        /* Which file of a folder, and where in it. */
        const char *at = json_object_get_string(json_object_array_get_idx(sources, i));
        bool created = false;
        bool changed = false;
        bdy_errbuf aeb;
        bdy_errbuf_clear(&aeb);
        rc = check ? check_prepare(store, live, at ? at : path, doc, &aeb) : 0;
        if (rc == 1) {
            rc = 0;
            continue;
        }
        if (rc == 0)
            rc = bdy_store_apply(store, doc, wo, &created, &changed, &aeb);
        if (rc != 0) {
            json_object *meta = json_object_object_get(doc, "metadata");
            bdy_fail(eb, rc, "%s: %s %s: %s", at ? at : path,
                     json_object_get_string(json_object_object_get(doc, "kind")),
                     json_object_get_string(json_object_object_get(meta, "name")), aeb.message);
            break;
        }
        (*applied)++;
        json_object *dmeta = json_object_object_get(doc, "metadata");
        const char *dns = json_object_get_string(json_object_object_get(dmeta, "namespace"));
        /* An edit by kubectl of what the config manages is undone here:
         * said, so that the operator knows where it went. */
        if (!check && !created && changed)
            bdy_info("manifests", "%s %s%s%s changed to what %s says", bdy_jstr(doc, "kind"),
                     dns ? dns : "", dns ? "/" : "",
                     json_object_get_string(json_object_object_get(dmeta, "name")), at ? at : path);
        bdy_debug("manifests", "%s %s/%s from %s", created ? "created" : "applied",
                  json_object_get_string(json_object_object_get(doc, "kind")),
                  json_object_get_string(
                      json_object_object_get(json_object_object_get(doc, "metadata"), "name")),
                  at ? at : path);
    }
    json_object_put(docs);
    json_object_put(sources);
    return rc;
}

/* The CRDs shipped with Bindery: $BINDERY_CRDS_DIR, else <prefix>/share/
 * bindery/crds next to an installed binary, else the source tree's crds/
 * (a build tree run). NULL when none exists. */
static const char *builtin_crds_dir(char *buf, size_t cap)
{
    const char *env = getenv("BINDERY_CRDS_DIR");
    struct stat st;
    if (env != NULL && env[0] != '\0')
        return env;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash != NULL) {
            *slash = '\0';
            snprintf(buf, cap, "%s/../share/bindery/crds", exe);
            if (stat(buf, &st) == 0 && S_ISDIR(st.st_mode))
                return buf;
        }
    }
#ifdef BINDERY_SOURCE_DIR
    snprintf(buf, cap, "%s/crds", BINDERY_SOURCE_DIR);
    if (stat(buf, &st) == 0 && S_ISDIR(st.st_mode))
        return buf;
#endif
    return NULL;
}

/* The world host that runs booklet worlds' modules: $BINDERY_WORLD_HOST,
 * else bindery-world-host beside this binary (installed or in a build
 * tree, both are built into one folder). Empty when neither can be told. */
static void world_host_path(char *buf, size_t cap)
{
    const char *env = getenv("BINDERY_WORLD_HOST");
    buf[0] = '\0';
    if (env != NULL && env[0] != '\0') {
        /* Made absolute here: worlds are spawned in runtime.workDir, where
         * a relative path would name another file (or none). One that does
         * not resolve is kept as given, for the start-up check to name. */
        char resolved[PATH_MAX];
        snprintf(buf, cap, "%s", env[0] != '/' && realpath(env, resolved) ? resolved : env);
        return;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash == NULL)
        return;
    *slash = '\0';
    if (snprintf(buf, cap, "%s/bindery-world-host", exe) >= (int)cap)
        buf[0] = '\0';
}

/* Creates the namespace of every configured pool that does not exist yet:
 * the pool's manifest and worlds live there, and nothing else could create
 * it before the manifests apply (bindery is the API server kubectl would
 * ask). Namespaces are never deleted here. quiet: no line for a creation
 * (in the scratch store of a config check, it is no news). */
static int ensure_pool_namespaces(bdy_store *store, const bdy_config *cfg, bool quiet,
                                  bdy_errbuf *eb)
{
    for (size_t i = 0; i < cfg->pools.count; i++) {
        const char *ns = cfg->pools.items[i].ns ? cfg->pools.items[i].ns : "default";
        json_object *existing = NULL;
        int rc = bdy_store_get(store, &BDY_GVR_NAMESPACES, NULL, ns, &existing, eb);
        json_object_put(existing);
        if (rc == BDY_ENOTFOUND) {
            rc = create_namespace(store, ns, eb);
            if (rc == BDY_EEXISTS)
                rc = 0; /* created meanwhile (by kubectl) */
            else if (rc == 0 && !quiet)
                bdy_info("manifests", "created namespace %s for pool %s", ns,
                         cfg->pools.items[i].name);
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Applies what start-up applies, in its order: the built-in CRDs, the
 * config's CRDs, the pools' namespaces, the config's manifests. serve runs
 * it against its store; check-config against a scratch one, so that a
 * manifest serve would refuse is refused there too. */
static int apply_manifests(bdy_store *store, const bdy_config *cfg, size_t *applied, bool check,
                           bdy_store *live, bdy_errbuf *eb)
{
    char crds_buf[PATH_MAX + 64];
    const char *crds = builtin_crds_dir(crds_buf, sizeof(crds_buf));
    int rc = 0;
    /* Counted apart: *applied is what the config names. */
    size_t builtin = 0;
    if (crds != NULL)
        rc = apply_path(store, crds, NULL, &builtin, false, NULL, eb);
    else
        bdy_warn("manifests", "no built-in crds/ folder found; set BINDERY_CRDS_DIR");
    for (size_t i = 0; rc == 0 && i < cfg->crds.count; i++)
        rc = apply_path(store, cfg->crds.items[i], NULL, applied, false, NULL, eb);
    if (rc == 0)
        rc = ensure_pool_namespaces(store, cfg, check, eb); /* a check's store is scratch */
    /* The config's manifests strictly, as kubectl apply sends them: a
     * misspelt field is an error, not dropped (readinessProbe.perodSeconds
     * would be a probe of the default period). */
    static const bdy_write_opts strict = {.unknown = BDY_UNKNOWN_REJECT};
    for (size_t i = 0; rc == 0 && i < cfg->manifests.count; i++)
        rc = apply_path(store, cfg->manifests.items[i], &strict, applied, check, live, eb);
    return rc;
}

/* Whether store holds the object ns/name of gvr. */
static bool store_holds(bdy_store *store, const bdy_gvr *gvr, const char *ns, const char *name)
{
    json_object *o = NULL;
    bool held = store != NULL && bdy_store_get(store, gvr, ns, name, &o, NULL) == 0;
    json_object_put(o);
    return held;
}

/* Says which pools name a manifest or booklet that store (or live, when
 * not NULL) lacks: their worlds fail at once (ManifestGone) and the pool
 * goes into crash backoff, with nothing at start, reload or check-config
 * to say why. scratch: store holds only what the config applies (one made
 * with kubectl may come). */
static void warn_missing_templates(bdy_store *store, bdy_store *live, const bdy_config *cfg,
                                   bool scratch)
{
    for (size_t i = 0; i < cfg->pools.count; i++) {
        const bdy_config_pool *p = &cfg->pools.items[i];
        const char *ns = p->ns != NULL ? p->ns : "default";
        const bdy_gvr *gvr = p->manifest != NULL ? &BDY_GVR_MANIFESTS : &BDY_GVR_BOOKLETS;
        const char *name = p->manifest != NULL ? p->manifest : p->booklet;
        if (name == NULL || store_holds(store, gvr, ns, name) || store_holds(live, gvr, ns, name))
            continue;
        bdy_warn("pools",
                 "pool %s/%s: %s %s/%s does not exist%s; until it is applied the pool's worlds "
                 "fail (ManifestGone)",
                 ns, p->name, p->manifest != NULL ? "ModuleManifest" : "Booklet", ns, name,
                 scratch && live == NULL ? " in the config's manifests (kubectl may make it)" : "");
    }
}

static int apply_startup_manifests(daemon_state *d, const bdy_config *cfg, bdy_errbuf *eb)
{
    size_t applied = 0;
    int rc = apply_manifests(d->store, cfg, &applied, false, NULL, eb);
    if (rc == 0) {
        bdy_metric_set(d->manifests_applied, (double)applied);
        bdy_info("manifests", "applied %zu manifests of the config's crds and manifests", applied);
        warn_missing_templates(d->store, NULL, cfg, false);
    }
    return rc;
}

/* Removes a scratch folder of check_manifests and what the store left in
 * it (no subfolders). */
static void remove_scratch(const char *dir)
{
    DIR *d = opendir(dir);
    for (struct dirent *de; d != NULL && (de = readdir(d)) != NULL;)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            unlinkat(dirfd(d), de->d_name, 0);
    if (d != NULL)
        closedir(d);
    rmdir(dir);
}

/* Applies the CRDs and manifests serve would apply to a scratch store in a
 * temporary folder, then removes it. live: the running store a reload
 * would apply them to (NULL for check-config). *checked: the scratch store
 * could be made (else the error says why not, and nothing was checked). */
static int check_manifests(const bdy_config *cfg, bdy_store *live, bool *checked, bdy_errbuf *eb)
{
    const char *tmp = getenv("TMPDIR");
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/bindery-check-XXXXXX", tmp != NULL && tmp[0] ? tmp : "/tmp");
    *checked = false;
    if (mkdtemp(dir) == NULL)
        return bdy_fail(eb, BDY_EIO, "cannot make a scratch folder to check the manifests in: %s",
                        strerror(errno));
    bdy_sqlite_opts so = {.data_dir = dir,
                          .watch_history = 16,
                          .max_batch = 64,
                          .busy_timeout_ms = 5000,
                          .quiet = true};
    bdy_store *store = NULL;
    size_t applied = 0;
    *checked = false;
    int rc = bdy_store_sqlite_open(&so, &store, eb);
    if (rc == 0) {
        *checked = true;
        rc = apply_manifests(store, cfg, &applied, true, live, eb);
        if (rc == 0)
            warn_missing_templates(store, live, cfg, true);
    }
    bdy_store_close(store);
    remove_scratch(dir);
    return rc;
}

/* ---- descriptors ------------------------------------------------------------- */

/* Descriptors bindery keeps for itself whatever its clients do: SQLite
 * files, the listening and internal sockets, logs, a few in flight. */
#define FD_RESERVE_BASE 256u
/* HTTP connections below which the limit is not lowered further: fewer
 * would make bindery useless, and then the operator has to raise it. */
#define MIN_CONNECTIONS 16u
/* Below this descriptor limit bindery does not start: its stores, threads
 * and server alone take most of it (with 40 it failed in libmicrohttpd's
 * thread set-up with a message that did not say why). */
#define FD_LIMIT_MIN 128u

/* Raises the soft RLIMIT_NOFILE to the hard limit (once, at start). */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < rl.rlim_max) {
        struct rlimit raised = {.rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max};
        (void)setrlimit(RLIMIT_NOFILE, &raised);
    }
}

/* What cfg's worlds need of the descriptor limit. */
typedef struct fd_budget {
    uint64_t limit;   /* the soft RLIMIT_NOFILE, 0 when unlimited or unknown */
    uint64_t worlds;  /* most worlds that can run at once */
    uint64_t reserve; /* descriptors kept for bindery's files and those worlds */
    unsigned fit;     /* HTTP connections that fit beside them, at least MIN_CONNECTIONS */
} fd_budget;

/* Client connections must not take the descriptors bindery needs for its
 * own files and its worlds: out of descriptors, a world's readiness probe
 * and the port search for a new world fail, and warm worlds were failed
 * for it. Keeps FD_RESERVE_BASE plus two per possible world (its pidfd and
 * a probe's socket), worlds being bounded by the port range and the pools'
 * maxWorlds; want is the connection limit asked for. */
static fd_budget fd_budget_of(const bdy_config *cfg, unsigned want)
{
    fd_budget b = {.fit = want};
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return b;
    b.limit = rl.rlim_cur;
    if (cfg->runtime.kind == BDY_RUNTIME_PROCESS) {
        uint64_t max_worlds = 0;
        for (size_t i = 0; i < cfg->pools.count; i++)
            max_worlds += cfg->pools.items[i].max_worlds;
        uint64_t ports = (uint64_t)cfg->runtime.port_max - cfg->runtime.port_min + 1;
        b.worlds = max_worlds < ports ? max_worlds : ports;
    }
    b.reserve = FD_RESERVE_BASE + 2 * b.worlds;
    uint64_t room = b.limit > b.reserve ? b.limit - b.reserve : 0;
    if (room < want) {
        /* Never below MIN_CONNECTIONS, but a configured limit under it stays. */
        unsigned floor = want < MIN_CONNECTIONS ? want : MIN_CONNECTIONS;
        b.fit = room > floor ? (unsigned)room : floor;
    }
    return b;
}

/* The connection limit to start with: http.maxConnections, lowered (with a
 * warning) to what fits beside the worlds. */
static unsigned fit_connections_to_fd_limit(const bdy_config *cfg)
{
    unsigned want = cfg->http.max_connections;
    fd_budget b = fd_budget_of(cfg, want);
    if (b.limit > 0 && b.limit < b.reserve + b.fit)
        /* Not even the lowered limit fits: say what it takes, not a
         * reserve the limit cannot hold. */
        bdy_warn("http",
                 "the descriptor limit is %llu: http.maxConnections %u %s %u, and even so "
                 "bindery's files and up to %llu worlds may need more than the %llu left (up "
                 "to %llu): worlds may fail to start or to be probed; raise the limit (ulimit "
                 "-n, LimitNOFILE=)",
                 (unsigned long long)b.limit, want, b.fit < want ? "lowered to" : "kept at", b.fit,
                 (unsigned long long)b.worlds,
                 (unsigned long long)(b.limit > b.fit ? b.limit - b.fit : 0),
                 (unsigned long long)b.reserve);
    else if (b.fit < want)
        bdy_warn("http",
                 "the descriptor limit is %llu: http.maxConnections %u lowered to %u, to keep "
                 "%llu for bindery's files and up to %llu worlds; raise the limit (ulimit -n, "
                 "LimitNOFILE=) to allow more",
                 (unsigned long long)b.limit, want, b.fit, (unsigned long long)b.reserve,
                 (unsigned long long)b.worlds);
    return b.fit;
}

/* A reload cannot change the running connection limit (http settings
 * change on restart), but its pools may allow more worlds than the limit
 * left descriptors for: says so, since clients could then starve worlds. */
static void check_fd_budget_on_reload(const bdy_config *next, unsigned running)
{
    fd_budget b = fd_budget_of(next, running);
    if (b.fit < running)
        bdy_warn("http",
                 "the reloaded pools allow up to %llu worlds: with the descriptor limit %llu, "
                 "the running connection limit %u leaves them too few (%llu kept for "
                 "bindery's files and its worlds); restart to lower it to %u, or raise the "
                 "limit (ulimit -n, LimitNOFILE=)",
                 (unsigned long long)b.worlds, (unsigned long long)b.limit, running,
                 (unsigned long long)b.reserve, b.fit);
}

/* ---- reload ------------------------------------------------------------------ */

static bool same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* The runtime settings read once at start. */
static bool same_runtime(const bdy_config_runtime *a, const bdy_config_runtime *b)
{
    return a->kind == b->kind && a->port_min == b->port_min && a->port_max == b->port_max &&
           same_str(a->work_dir, b->work_dir) && same_str(a->log_dir, b->log_dir) &&
           a->log_retention_h == b->log_retention_h && a->log_max_mb == b->log_max_mb &&
           a->bench_ready_delay_ms == b->bench_ready_delay_ms;
}

static bool same_demand(const bdy_config_demand *a, const bdy_config_demand *b)
{
    return a->minute_retention_h == b->minute_retention_h &&
           a->retention_days == b->retention_days && a->lead_time_s == b->lead_time_s &&
           a->weekly == b->weekly;
}

static bool same_http(const bdy_config_http *a, const bdy_config_http *b)
{
    return a->threads == b->threads && a->max_body_bytes == b->max_body_bytes &&
           a->connection_timeout_s == b->connection_timeout_s &&
           a->max_connections == b->max_connections &&
           a->header_limit_bytes == b->header_limit_bytes;
}

static bool same_store(const bdy_config_store *a, const bdy_config_store *b)
{
    return a->watch_history == b->watch_history && a->max_batch == b->max_batch &&
           a->busy_timeout_ms == b->busy_timeout_ms;
}

static void count_reload(daemon_state *d, const char *result)
{
    const char *labels[] = {result, NULL};
    bdy_metric_inc(bdy_metric_child(d->reloads, labels));
}

/* Whether pools holds ns/name. */
static bool has_pool(const bdy_config_pools *pools, const char *ns, const char *name)
{
    for (size_t i = 0; i < pools->count; i++)
        if (strcmp(pools->items[i].ns, ns) == 0 && strcmp(pools->items[i].name, name) == 0)
            return true;
    return false;
}

/* A pool the reload removed keeps no series in /metrics (its gauges would
 * go on showing their last values); they come back if it is configured
 * again. */
static void sync_pool_series(daemon_state *d, const bdy_config_pools *old,
                             const bdy_config_pools *now)
{
    for (size_t i = 0; i < old->count; i++) {
        const bdy_config_pool *p = &old->items[i];
        if (!has_pool(now, p->ns, p->name))
            bdy_metrics_hide_series(d->metrics, "namespace", p->ns, "pool", p->name);
    }
    for (size_t i = 0; i < now->count; i++) {
        const bdy_config_pool *p = &now->items[i];
        if (!has_pool(old, p->ns, p->name))
            bdy_metrics_show_series(d->metrics, "namespace", p->ns, "pool", p->name);
    }
}

/* Puts a reloaded token set, read from token_file, in force (taken over,
 * whatever happens); when the reload around it is refused, says so. */
static void install_auth(daemon_state *d, bdy_auth *auth, const char *token_file, bool refused)
{
    size_t tokens = bdy_auth_count(auth); /* before: a failed install frees auth */
    if (bdy_http_server_set_auth(d->http, auth) != 0) {
        bdy_error("auth", "out of memory: the reloaded token set is not in force; the old one is");
        return;
    }
    bool was_on = d->auth_on;
    d->auth_on = true; /* turning it off again needs a restart */
    if (refused)
        bdy_warn("config", "the token file %s was reloaded all the same (%zu tokens in force)",
                 token_file, tokens);
    else if (!was_on)
        /* The start's "without authentication" was the log's last word. */
        bdy_info("auth", "authentication is on from now: %zu token%s from %s", tokens,
                 tokens == 1 ? "" : "s", token_file);
    else
        bdy_info("auth", "token file %s read again: %zu token%s in force", token_file, tokens,
                 tokens == 1 ? "" : "s");
}

/* Loads the TLS files cfg names (none: *out NULL) and logs what they hold. */
static int load_tls(const bdy_config *cfg, bdy_tls_set **out, bdy_errbuf *eb)
{
    *out = NULL;
    if (cfg->tls.cert_file == NULL)
        return 0;
    bdy_tls_files files = {.cert_file = cfg->tls.cert_file,
                           .key_file = cfg->tls.key_file,
                           .client_ca_file = cfg->tls.client_ca_file,
                           .client_crl_file = cfg->tls.client_crl_file};
    int rc = bdy_tls_load(&files, out, eb);
    /* A private key every user can read (or replace) is the server's
     * identity given away; said at every load (start, check-config, each
     * reload). A group that may read it (Debian's ssl-cert) is the
     * operator's choice. */
    struct stat st;
    if (rc == 0 && stat(cfg->tls.key_file, &st) == 0 && (st.st_mode & (S_IROTH | S_IWOTH)) != 0)
        bdy_warn("tls", "tls.keyFile %s can be %s by every user (mode %03o): chmod o-rw it",
                 cfg->tls.key_file, (st.st_mode & S_IROTH) ? "read" : "written",
                 (unsigned)(st.st_mode & 0777));
    return rc;
}

/* Puts a loaded TLS set in force for new connections (the server takes its
 * own reference; set's is dropped here). */
static void install_tls(daemon_state *d, bdy_tls_set *set, bool refused)
{
    char what[512];
    bdy_tls_describe(set, what, sizeof(what));
    if (bdy_http_server_set_tls(d->http, set) == 0) {
        bdy_info("tls", "%s%s",
                 refused ? "reloaded all the same: " : "in force for new connections: ", what);
        bdy_metric_set(d->tls_expiry, (double)bdy_tls_expires(set));
    }
    bdy_tls_unref(set);
}

/* A reload refused for its config, or one that would turn TLS on or off,
 * still reads the running TLS files again: a certificate about to expire
 * must not wait for a config that loads, or for a restart. */
static void reload_running_tls(daemon_state *d, bool refused)
{
    if (!bdy_http_server_tls(d->http))
        return;
    bdy_tls_set *set = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    if (load_tls(d->cfg, &set, &eb) != 0) {
        bdy_error("tls", "TLS files not reloaded either, the running certificate stays: %s",
                  eb.message);
        return;
    }
    install_tls(d, set, refused);
}

/* A reload refused for its config still re-reads the token file in force:
 * revoking a token must not wait for a config that loads. */
static void reload_running_tokens(daemon_state *d)
{
    if (!d->auth_on || d->cfg->auth.token_file == NULL)
        return;
    bdy_auth *auth = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    if (bdy_auth_load(d->cfg->auth.token_file, &auth, &eb) != 0) {
        bdy_error("config", "token file not reloaded either, the running tokens stay: %s",
                  eb.message);
        return;
    }
    install_auth(d, auth, d->cfg->auth.token_file, true);
}

/* SIGHUP: read the config again. A config that does not load, a token file
 * that does not load, or manifests that do not apply leave the running
 * configuration in force, except for the token set (one that loads goes in
 * force all the same). Settings that need a restart are reported. */
static void reload(daemon_state *d, const char *path)
{
    bdy_config *next = NULL;
    bdy_auth *auth = NULL;
    bdy_tls_set *tls = NULL;
    bool tls_on_off = false;
    bool tls_read = false; /* the running TLS files were read (and failed) */
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy_config_load(path, &next, &eb);
    if (rc != 0) {
        bdy_error("config", "reload refused, keeping the running config: %s", eb.message);
        reload_running_tokens(d);
        reload_running_tls(d, true);
        count_reload(d, "refused");
        return;
    }
    if (next->settings == 0) {
        /* Taken at its word it would end every pool; an editor or `cat >`
         * rewriting the file in place leaves it empty for a moment. */
        bdy_error("config",
                  "reload refused, keeping the running config: %s sets nothing "
                  "(replace the file whole, e.g. write another and rename it over)",
                  path);
        bdy_config_free(next);
        reload_running_tokens(d);
        reload_running_tls(d, true);
        count_reload(d, "refused");
        return;
    }
    /* The file against what runs: listen and dataDir as the file gave them
     * at start (the command-line overrides, which stay in force, would
     * hide an edit), the other restart-only sections as d->cfg keeps them
     * (each applied reload carries the running ones over, below). */
    char edited[160] = "";
    const struct {
        const char *key;
        bool same;
    } restart_only[] = {
        {"listen", same_str(next->listen, d->file_listen)},
        {"dataDir", same_str(next->data_dir, d->file_data_dir)},
        {"http", same_http(&next->http, &d->cfg->http)},
        {"store", same_store(&next->store, &d->cfg->store)},
        {"runtime", same_runtime(&next->runtime, &d->cfg->runtime)},
        {"demand", same_demand(&next->demand, &d->cfg->demand)},
        {"reconciler.workers", next->reconciler.workers == d->cfg->reconciler.workers},
        {"claims", next->claims.record_retention_h == d->cfg->claims.record_retention_h},
        {"tls (on or off)", (next->tls.cert_file != NULL) == bdy_http_server_tls(d->http)},
    };
    for (size_t i = 0; i < sizeof(restart_only) / sizeof(restart_only[0]); i++)
        if (!restart_only[i].same)
            snprintf(edited + strlen(edited), sizeof(edited) - strlen(edited), "%s%s",
                     edited[0] ? ", " : "", restart_only[i].key);
    bdy_config_override_listen(next, d->cfg->listen, NULL);
    bdy_config_override_data_dir(next, d->cfg->data_dir, NULL);
    if (next->auth.token_file != NULL) {
        rc = bdy_auth_load(next->auth.token_file, &auth, &eb);
        if (rc != 0) {
            bdy_error("config", "reload refused, keeping the running config: %s", eb.message);
            goto refused;
        }
    } else if (d->auth_on) {
        bdy_error("config", "reload refused: turning authentication off needs a restart "
                            "(the server may be listening beyond loopback)");
        goto refused;
    }
    /* TLS stays as it runs when the file turns it on or off (a restart);
     * otherwise the files it names, perhaps a rotated certificate, are read
     * again. */
    tls_on_off = (next->tls.cert_file != NULL) != bdy_http_server_tls(d->http);
    if (!tls_on_off && load_tls(next, &tls, &eb) != 0) {
        bdy_error("config", "reload refused, keeping the running config: %s", eb.message);
        /* The running files are these very ones: reading them again below
         * would only fail again. */
        tls_read = same_str(next->tls.cert_file, d->cfg->tls.cert_file) &&
                   same_str(next->tls.key_file, d->cfg->tls.key_file) &&
                   same_str(next->tls.client_ca_file, d->cfg->tls.client_ca_file) &&
                   same_str(next->tls.client_crl_file, d->cfg->tls.client_crl_file);
        goto refused;
    }
    /* Every manifest is checked on a scratch store first, so that one the
     * store refuses leaves the running ones as they were, not half
     * applied. A scratch store that cannot be made checks nothing. */
    bool checked = false;
    rc = check_manifests(next, d->store, &checked, &eb);
    if (rc != 0 && checked) {
        bdy_error("config", "reload refused, a manifest is invalid: %s", eb.message);
        goto refused;
    } else if (rc != 0) {
        bdy_warn("config", "manifests not checked before the reload: %s", eb.message);
    }
    bdy_errbuf_clear(&eb);
    rc = apply_startup_manifests(d, next, &eb);
    if (rc != 0) {
        bdy_error("config", "reload refused, manifests did not apply: %s", eb.message);
        goto refused;
    }
    if (edited[0] != '\0')
        bdy_warn("config",
                 "the file changes %s, which take effect on restart only: what runs stays in "
                 "force until then",
                 edited);
    bdy_errbuf_clear(&eb);
    if (bdy_fleet_set_pools(d->fleet, &next->pools) != 0 ||
        bdy_demand_set_pools(d->demand, &next->pools, &eb) != 0) {
        bdy_error("config", "reload refused, applying the pools failed: %s",
                  eb.message[0] ? eb.message : "out of memory");
        goto refused;
    }
    sync_pool_series(d, &d->cfg->pools, &next->pools);
    bdy_reconciler_pools_changed(d->reconciler);
    bdy_log_set_level(next->log_level);
    if (auth != NULL) {
        install_auth(d, auth, next->auth.token_file, false);
    }
    if (tls != NULL) {
        install_tls(d, tls, false);
    }
    /* Restart-only sections stay as they run, so d->cfg says what is in
     * force (and the next reload compares against it). Swapped, so each
     * config keeps owning what it points to. */
#define SWAP_SECTION(type, field)                                                                  \
    do {                                                                                           \
        type section = next->field;                                                                \
        next->field = d->cfg->field;                                                               \
        d->cfg->field = section;                                                                   \
    } while (0)
    SWAP_SECTION(bdy_config_http, http);
    SWAP_SECTION(bdy_config_store, store);
    SWAP_SECTION(bdy_config_runtime, runtime);
    SWAP_SECTION(bdy_config_demand, demand);
    SWAP_SECTION(bdy_config_reconciler, reconciler);
    SWAP_SECTION(bdy_config_claims, claims);
    if (tls_on_off)
        SWAP_SECTION(bdy_config_tls, tls);
#undef SWAP_SECTION
    check_fd_budget_on_reload(next, d->connections);
    bdy_config_free(d->cfg);
    d->cfg = next;
    /* TLS turned on or off waits for a restart, but the running files,
     * perhaps a renewed certificate, are read again as on any reload. */
    if (tls_on_off)
        reload_running_tls(d, false);
    count_reload(d, "applied");
    bdy_info("config", "reloaded %s", path);
    return;
refused:
    /* The token file loaded: its set goes in force all the same, as a
     * revoked token must not wait for a manifest or pool to be fixed. */
    if (auth != NULL) {
        install_auth(d, auth, next->auth.token_file, true);
        /* The file in force is the one to read again when a later config
         * does not load: swapped, so each config owns what it points to. */
        char *in_force = next->auth.token_file;
        next->auth.token_file = d->cfg->auth.token_file;
        d->cfg->auth.token_file = in_force;
    } else {
        /* Refused before a token file was read (one that turns
         * authentication off, or names a file that does not load): the
         * file in force is read again, as for a config that does not load. */
        reload_running_tokens(d);
    }
    /* The same for TLS: the new files when they loaded (and their paths
     * are the ones in force from now on, so a later reload that is refused
     * reads them, not the old ones), else the running ones again. */
    if (tls != NULL) {
        install_tls(d, tls, true);
        bdy_config_tls in_force = next->tls;
        next->tls = d->cfg->tls;
        d->cfg->tls = in_force;
    } else if (!tls_read) {
        reload_running_tls(d, true);
    }
    count_reload(d, "refused");
    bdy_config_free(next);
}

/* The id of the Bindery that owns data directory dir: random, made on the
 * first start and kept in dir/instance-id. Worlds carry it (runtime.h,
 * instance), so a later run tells the processes it started from those of
 * another Bindery on the same machine. The file is written whole or not at
 * all (rename), so one that holds no id was edited: refused, since a new
 * id would leave the worlds of the old one running unstopped for good. */
#define INSTANCE_ID_LEN 32
#define INSTANCE_ID_FILE "instance-id"
/* Takes the instance id for this process on the host, as the abstract
 * Unix socket "bindery-instance-<id>", which the kernel lets go when the
 * process ends however it ends. The data folder's lock cannot see a copy
 * of the folder (a restored backup checked on the same machine, a cp -a):
 * that copy has the same id, and its runtime would take the first
 * bindery's worlds for its own, stopping those its store does not know
 * and adopting the others, claimed or not. Close-on-exec, so that no
 * world holds it after bindery has gone. */
static int instance_claim(const char *instance, int *fd_out, bdy_errbuf *eb)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    /* sun_path[0] = '\0': the abstract namespace, no file to leave. */
    int len =
        snprintf(addr.sun_path + 1, sizeof(addr.sun_path) - 1, "bindery-instance-%s", instance);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return bdy_fail(eb, BDY_EIO, "cannot make a socket for the instance id: %s",
                        strerror(errno));
    if (bind(fd, (struct sockaddr *)&addr,
             (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)len)) != 0) {
        int err = errno;
        close(fd);
        if (err == EADDRINUSE)
            return bdy_fail(eb, BDY_EBUSY,
                            "another bindery on this machine runs with instance id %s (a copy "
                            "of its data folder, such as a restored backup?): two binderies of "
                            "one id take each other's worlds for their own; give the copy a "
                            "new id by deleting its " INSTANCE_ID_FILE " file",
                            instance);
        return bdy_fail(eb, BDY_EIO, "cannot hold the instance id: %s", strerror(err));
    }
    *fd_out = fd;
    return 0;
}

static int instance_id_load(const char *dir, char out[INSTANCE_ID_LEN + 1], bdy_errbuf *eb)
{
    char path[PATH_MAX];
    char tmp[PATH_MAX];
    if ((size_t)snprintf(path, sizeof(path), "%s/" INSTANCE_ID_FILE, dir) >= sizeof(path) ||
        (size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return bdy_fail(eb, BDY_EINVAL, "data directory path too long: %s", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        char buf[INSTANCE_ID_LEN + 2];
        ssize_t n = read(fd, buf, sizeof(buf));
        close(fd);
        bool ok = n == INSTANCE_ID_LEN + 1 && buf[INSTANCE_ID_LEN] == '\n';
        for (size_t i = 0; ok && i < INSTANCE_ID_LEN; i++)
            ok = (buf[i] >= '0' && buf[i] <= '9') || (buf[i] >= 'a' && buf[i] <= 'f');
        if (!ok)
            return bdy_fail(eb, BDY_ECORRUPT,
                            "%s holds no instance id (32 hex digits and a newline); delete it "
                            "to have a new one made, and stop by hand any world process "
                            "started under the old one",
                            path);
        memcpy(out, buf, INSTANCE_ID_LEN);
        out[INSTANCE_ID_LEN] = '\0';
        return 0;
    } else if (errno != ENOENT) {
        return bdy_fail(eb, BDY_EIO, "cannot read %s: %s", path, strerror(errno));
    }
    bdy_random_hex(out, INSTANCE_ID_LEN);
    char line[INSTANCE_ID_LEN + 1];
    memcpy(line, out, INSTANCE_ID_LEN);
    line[INSTANCE_ID_LEN] = '\n';
    int rc = 0;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool written = fd >= 0;
    if (written) {
        errno = EIO; /* what a short write leaves unset */
        written = write(fd, line, sizeof(line)) == (ssize_t)sizeof(line) && fsync(fd) == 0 &&
                  rename(tmp, path) == 0;
    }
    if (!written)
        rc = bdy_fail(eb, BDY_EIO, "cannot write %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    if (rc != 0)
        unlink(tmp);
    /* The rename itself lasts once the directory is synced. */
    int dfd = rc == 0 ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return rc;
}

/* Opens the claim ledger, making its file only while the store holds no
 * world. Beside worlds, a missing claims.db is a ledger lost (deleted, or
 * left out of a restore), not a first start: the acknowledged claims not
 * yet written into their worlds' status would be lost with it, and those
 * worlds, Ready in the store, handed out again to other claimants. */
static int open_ledger(daemon_state *d, bdy_errbuf *eb)
{
    bdy_list_opts one = {.limit = 1};
    bdy_list_result res = {0};
    int rc = bdy_store_list(d->store, &BDY_GVR_WORLDS, &one, &res, eb);
    if (rc != 0 && rc != BDY_ENOTFOUND) /* NotFound: no WorldInstance kind yet, no world */
        return rc;
    bool worlds = rc == 0 && json_object_array_length(res.items) > 0;
    bdy_list_result_free(&res);
    char path[BDY_CONFIG_MAX_PATH + 16];
    snprintf(path, sizeof(path), "%s/claims.db", d->cfg->data_dir);
    struct stat st;
    if (worlds && stat(path, &st) == 0 && st.st_size == 0)
        bdy_warn("ledger",
                 "%s is empty beside a store with worlds: starting a new claim ledger; claims "
                 "their worlds' status does not show are lost",
                 path);
    rc = bdy_ledger_open(d->cfg->data_dir, !worlds, &d->ledger, eb);
    /* Not found may also be the ledger's journal, which the ledger names. */
    if (rc == BDY_ENOTFOUND && stat(path, &st) != 0)
        bdy_fail(eb, rc,
                 "%s is missing, but the store holds worlds: the claims it recorded and "
                 "their worlds' status does not show yet would be lost, and those worlds "
                 "handed out again. Restore claims.db and claims.journal from the backup that "
                 "bindery.db came from (bindery backup copies them all); to start without "
                 "them all the same, create claims.db empty (touch %s)",
                 path, path);
    return rc;
}

/* Creates the runtime, the reconciler (world informer, controllers) and
 * the claim indexes; returns once both informers have loaded. */
static int start_worlds(daemon_state *d, bdy_errbuf *eb)
{
    world_host_path(d->world_host, sizeof(d->world_host));
    bool booklets = false;
    for (size_t i = 0; i < d->cfg->pools.count; i++)
        booklets |= d->cfg->pools.items[i].booklet != NULL;
    if (booklets && access(d->world_host, X_OK) != 0)
        bdy_warn("main",
                 "the world host %s cannot be run (%s): the worlds of booklet pools will fail "
                 "to start; install bindery-world-host beside bindery or set "
                 "BINDERY_WORLD_HOST to its absolute path",
                 d->world_host[0] ? d->world_host : "(not found)", strerror(errno));
    bdy_reconciler_opts ro = {.store = d->store,
                              .fleet = d->fleet,
                              .metrics = d->metrics,
                              .demand = d->demand,
                              .workers = d->cfg->reconciler.workers,
                              .world_host = d->world_host[0] ? d->world_host : NULL,
                              .on_world = bdy_claims_observe_world,
                              .on_world_data = d->claims};
    int rc = bdy_reconciler_new(&ro, &d->reconciler, eb);
    if (rc != 0)
        return rc;
    atomic_store(&d->reconciler_made, d->reconciler);
    bdy_claims_set_reconciler(d->claims, d->reconciler);
    const bdy_config_runtime *rt = &d->cfg->runtime;
    if (rt->kind == BDY_RUNTIME_BENCH) {
        bdy_bench_runtime_opts bo = {.ready_delay_ms = rt->bench_ready_delay_ms,
                                     .port_min = rt->port_min,
                                     .port_max = rt->port_max,
                                     .on_exit = bdy_reconciler_world_exited,
                                     .data = d->reconciler};
        rc = bdy_runtime_bench_new(&bo, &d->runtime, eb);
        bdy_warn("runtime", "runtime kind is bench: worlds are simulated, no process runs");
    } else {
        char instance[INSTANCE_ID_LEN + 1];
        rc = instance_id_load(d->cfg->data_dir, instance, eb);
        if (rc == 0)
            rc = instance_claim(instance, &d->instance_fd, eb);
        if (rc != 0)
            return rc;
        bdy_process_runtime_opts po = {.port_min = rt->port_min,
                                       .port_max = rt->port_max,
                                       .work_dir = rt->work_dir,
                                       .log_dir = rt->log_dir,
                                       .log_retention_s = (double)rt->log_retention_h * 3600,
                                       .log_max_bytes = (uint64_t)rt->log_max_mb << 20,
                                       .instance = instance,
                                       .on_exit = bdy_reconciler_world_exited,
                                       .on_probe = bdy_reconciler_probe_done,
                                       .on_ending = bdy_reconciler_world_ending,
                                       .data = d->reconciler};
        rc = bdy_runtime_process_new(&po, &d->runtime, eb);
    }
    if (rc != 0)
        return rc;
    rc = bdy_claims_start(d->claims, 30000, eb);
    if (rc == 0)
        rc = bdy_reconciler_start(d->reconciler, d->runtime, 30000, eb);
    return rc;
}

/* ---- serve ------------------------------------------------------------------- */

/* The Kubernetes-compatible API for kubectl, on the claim API's port. */
static int start_kubeapi(daemon_state *d, bdy_errbuf *eb)
{
    bdy_kubeapi_opts ko = {.store = d->store};
    int rc = bdy_kubeapi_new(&ko, &d->kubeapi, eb);
    if (rc == 0)
        rc = bdy_kubeapi_routes(d->kubeapi, d->http);
    return rc;
}

/* Writes the kubeconfig next to the data folder; a failure is logged, not
 * fatal (the API itself works without it). */
static void write_kubeconfig(daemon_state *d)
{
    char path[PATH_MAX];
    char url[400];
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    bdy_kubeconfig_path(d->cfg->data_dir, path, sizeof(path));
    bdy_kubeconfig_server_url(d->cfg->listen, bdy_http_server_port(d->http),
                              bdy_http_server_tls(d->http), url, sizeof(url));
    /* The server's own certificate file as the authority: it holds the
     * chain kubectl verifies against, and a rotated one is read from
     * there on kubectl's next run. */
    bdy_kubeconfig_user user = {.ca_file = d->cfg->tls.cert_file};
    free(d->kubeconfig_ca);
    d->kubeconfig_ca = NULL;
    if (bdy_kubeconfig_write(path, url, &user, &eb) != 0) {
        bdy_warn("kubeapi", "cannot write the kubeconfig: %s", eb.message);
        return;
    }
    bdy_info("kubeapi", "kubectl: KUBECONFIG=%s kubectl get wi (server %s)", path, url);
    if (d->cfg->tls.cert_file != NULL)
        d->kubeconfig_ca = strdup(d->cfg->tls.cert_file);
}

/* After a reload: a certificate now read from another file (a versioned
 * path, say) is what the written kubeconfig must name as its authority. */
static void kubeconfig_follow_tls(daemon_state *d)
{
    const char *now = d->cfg->tls.cert_file;
    if (bdy_http_server_tls(d->http) && now != NULL &&
        (d->kubeconfig_ca == NULL || strcmp(d->kubeconfig_ca, now) != 0))
        write_kubeconfig(d);
}

static int register_routes(daemon_state *d)
{
    int rc = 0;
    /* /livez as the API server names liveness (its probes and kubectl get
     * --raw /livez), the same answer as /healthz. */
    if ((rc = bdy_http_route(d->http, "GET", "/healthz", BDY_ROUTE_EXACT, BDY_VERB_NONE, healthz_cb,
                             d)) != 0 ||
        (rc = bdy_http_route(d->http, "GET", "/livez", BDY_ROUTE_EXACT, BDY_VERB_NONE, healthz_cb,
                             d)) != 0 ||
        (rc = bdy_http_route(d->http, "GET", "/readyz", BDY_ROUTE_EXACT, BDY_VERB_NONE, readyz_cb,
                             d)) != 0 ||
        (rc = bdy_http_route(d->http, "GET", "/metrics", BDY_ROUTE_EXACT, BDY_VERB_READ, metrics_cb,
                             d)) != 0)
        return rc;
    return 0;
}

static int setup_metrics(daemon_state *d)
{
    d->metrics = bdy_metrics_new();
    if (d->metrics == NULL)
        return BDY_ENOMEM;
    const char *info_labels[] = {"version", NULL};
    const char *info_values[] = {BINDERY_VERSION, NULL};
    bdy_metric_family *info = bdy_metrics_gauge(d->metrics, "bindery_build_info",
                                                "Build information; always 1.", info_labels);
    bdy_metric_set(bdy_metric_child(info, info_values), 1);
    const char *result_label[] = {"result", NULL};
    d->reloads = bdy_metrics_counter(d->metrics, "bindery_config_reloads_total",
                                     "Config reloads by result (applied, refused).", result_label);
    bdy_metric_family *rv = bdy_metrics_gauge(d->metrics, "bindery_store_resource_version",
                                              "Newest committed resourceVersion.", NULL);
    d->store_rv = bdy_metric_child(rv, NULL);
    bdy_metric_family *applied =
        bdy_metrics_gauge(d->metrics, "bindery_manifests_applied",
                          "Documents of the config's crds and manifests applied at the last "
                          "(re)load (the built-in CRDs not counted).",
                          NULL);
    d->manifests_applied = bdy_metric_child(applied, NULL);
    if (d->reloads == NULL || d->store_rv == NULL || d->manifests_applied == NULL)
        return BDY_ENOMEM;
    return 0;
}

#ifdef BINDERY_JEMALLOC
/* jemalloc's own settings, read at its start; an operator's MALLOC_CONF
 * is read after them and wins. Freed pages go back to the kernel only
 * when jemalloc runs its decay (10 s by default), and without background
 * threads it runs it only when the same arena allocates again: a bindery
 * that went quiet after a restart's relist or a burst of claims kept what
 * they had freed for good (270 MB against 205 MB with background threads,
 * 100,000 bench worlds, 16 s after a restart, live heap 177 MB in both).
 * One such thread purges every arena, and sleeps between purges. */
const char *malloc_conf = "background_thread:true,max_background_threads:1";
#endif

/* With jemalloc (the shipped build) there is nothing else to tune (see
 * malloc_conf above). With glibc's malloc (BINDERY_JEMALLOC off): glibc gives threads up to 8
 * arenas per CPU and keeps what each has freed; with Bindery's ~18 threads
 * that was 46 arenas and 284 MB after a fill of 100,000 bench worlds. Two
 * per CPU: 255 MB, claims/s the same within noise (21.1k / 19.9k default,
 * 22.4k / 18.4k capped, 1 s bursts of 64 connections, 2 CPUs). An
 * operator's arena limit (MALLOC_ARENA_MAX, or glibc.malloc.arena_max in
 * GLIBC_TUNABLES) wins. */
static void tune_malloc(void)
{
#ifndef BINDERY_JEMALLOC
    const char *tunables = getenv("GLIBC_TUNABLES");
    if (getenv("MALLOC_ARENA_MAX") != NULL ||
        (tunables != NULL && strstr(tunables, "arena_max") != NULL))
        return;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1)
        cpus = 1;
    if (mallopt(M_ARENA_MAX, (int)(2 * cpus)) != 1)
        bdy_debug("main", "cannot limit malloc arenas");
#endif
}

/* SIGTERM and SIGINT while bindery starts. Start-up can wait a long time
 * (the informers' first lists, up to 30 s each, on a large or damaged
 * store), and the main thread takes signals only once it is ready. A stop
 * asked for meanwhile ends the process at once: nothing has been answered
 * yet, the files are as safe as after a crash, and worlds keep running for
 * the next start to adopt. SIGHUP stays pending for the main loop. */
typedef struct startup_signals {
    pthread_t thread;
    bool started;
    atomic_bool done;
} startup_signals;

static void *startup_signals_main(void *arg)
{
    startup_signals *ss = arg;
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    const struct timespec tick = {0, 100L * 1000000L};
    while (!atomic_load(&ss->done)) {
        int sig = sigtimedwait(&stop, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT) {
            /* A stop that was asked for: exit 0, as a drained stop does,
             * or supervisors record a stop during a long start as a crash.
             * Claims are refused (NotReady) until start-up ends and this
             * thread is done (bdy_claims_serve), so none is lost. */
            bdy_warn("main",
                     "received %s during start-up: stopping now, no claim answered yet (worlds "
                     "keep running; the next start adopts them)",
                     sig == SIGTERM ? "SIGTERM" : "SIGINT");
            _exit(0);
        }
    }
    return NULL;
}

static void startup_signals_begin(startup_signals *ss)
{
    atomic_init(&ss->done, false);
    ss->started = pthread_create(&ss->thread, NULL, startup_signals_main, ss) == 0;
}

/* Hands the signals back to the caller's sigwait. */
static void startup_signals_end(startup_signals *ss)
{
    if (!ss->started)
        return;
    atomic_store(&ss->done, true);
    pthread_join(ss->thread, NULL);
    ss->started = false;
}

static int serve(const char *config_path, const char *listen, const char *data_dir)
{
    int rc = 0;
    daemon_state d = {0};
    d.instance_fd = -1;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    atomic_init(&d.ready, false);

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* Before any thread starts: they all inherit it (reconcile workers then
     * see to it that worlds do not). */
    int slice_rc = bdy_sched_short_slice(false);
    tune_malloc();
    startup_signals ss = {0};
    startup_signals_begin(&ss);

    rc = bdy_config_load(config_path, &d.cfg, &eb);
    if (rc == 0 && ((d.file_listen = strdup(d.cfg->listen)) == NULL ||
                    (d.file_data_dir = strdup(d.cfg->data_dir)) == NULL))
        rc = bdy_fail(&eb, BDY_ENOMEM, "out of memory");
    if (rc == 0 && listen != NULL)
        rc = bdy_config_override_listen(d.cfg, listen, &eb);
    if (rc == 0 && data_dir != NULL)
        rc = bdy_config_override_data_dir(d.cfg, data_dir, &eb);
    if (rc != 0) {
        bdy_error("config", "%s", eb.message);
        goto out;
    }
    bdy_log_set_level(d.cfg->log_level);
    if (slice_rc != 0)
        bdy_debug("main", "cannot ask for %d us CPU slices: %s", BDY_SCHED_SLICE_US,
                  strerror(slice_rc));
    bdy_info("main", "bindery %s starting (config %s, data %s)", BINDERY_VERSION, config_path,
             d.cfg->data_dir);

    /* What bindery records of a namespace's worlds and claims leaves with
     * the namespace: nothing else would let it be deleted. */
    static const bdy_gvr *const ns_records[] = {&BDY_GVR_EVENTS, &BDY_GVR_ALLOCATIONS, NULL};
    bdy_sqlite_opts so = {.data_dir = d.cfg->data_dir,
                          .watch_history = d.cfg->store.watch_history,
                          .max_batch = d.cfg->store.max_batch,
                          .busy_timeout_ms = (int)d.cfg->store.busy_timeout_ms,
                          .namespace_records = ns_records};
    rc = bdy_store_sqlite_open(&so, &d.store, &eb);
    if (rc != 0) {
        bdy_error("store", "cannot open the store: %s", eb.message);
        goto out;
    }
    rc = open_ledger(&d, &eb);
    if (rc != 0) {
        bdy_error("store", "cannot open the claim ledger: %s", eb.message);
        goto out;
    }
    if (d.cfg->auth.token_file != NULL) {
        rc = bdy_auth_load(d.cfg->auth.token_file, &d.auth, &eb);
        if (rc != 0) {
            bdy_error("auth", "%s", eb.message);
            goto out;
        }
        bdy_info("auth", "loaded %zu tokens from %s", bdy_auth_count(d.auth),
                 d.cfg->auth.token_file);
        d.auth_on = true;
    }
    rc = setup_metrics(&d);
    if (rc != 0) {
        bdy_error("main", "cannot set up the metrics: %s", bdy_strerror(rc));
        goto out;
    }
    rc = bdy_fleet_new(&d.fleet);
    if (rc == 0)
        rc = bdy_fleet_set_pools(d.fleet, &d.cfg->pools);
    if (rc != 0) {
        bdy_error("main", "cannot set up the pools: %s", bdy_strerror(rc));
        goto out;
    }
    /* Demand history beside the store (demand.h says why a file of its own). */
    char demand_path[BDY_CONFIG_MAX_PATH + 16];
    snprintf(demand_path, sizeof(demand_path), "%s/demand.db", d.cfg->data_dir);
    bdy_demand_opts dopt = {.path = demand_path,
                            .minute_retention_h = d.cfg->demand.minute_retention_h,
                            .retention_days = d.cfg->demand.retention_days,
                            .default_lead_s = d.cfg->demand.lead_time_s,
                            .weekly = d.cfg->demand.weekly != 0,
                            .metrics = d.metrics};
    rc = bdy_demand_open(&dopt, &d.demand, &eb);
    if (rc == 0)
        rc = bdy_demand_set_pools(d.demand, &d.cfg->pools, &eb);
    if (rc == 0)
        rc = bdy_demand_start(d.demand, &eb);
    if (rc != 0) {
        bdy_error("demand", "cannot open the demand history: %s", eb.message);
        goto out;
    }
    bdy_claims_opts co = {.store = d.store,
                          .fleet = d.fleet,
                          .metrics = d.metrics,
                          .demand = d.demand,
                          .ledger = d.ledger,
                          .record_retention_s = d.cfg->claims.record_retention_h * 3600.0};
    rc = bdy_claims_new(&co, &d.claims, &eb);
    if (rc != 0) {
        bdy_error("claims", "cannot set up the claims: %s",
                  eb.message[0] ? eb.message : bdy_strerror(rc));
        goto out;
    }
    raise_fd_limit();
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY &&
        nofile.rlim_cur < FD_LIMIT_MIN) {
        bdy_error("http",
                  "the descriptor limit is %llu: bindery needs at least %u to start; raise it "
                  "(ulimit -n, LimitNOFILE=)",
                  (unsigned long long)nofile.rlim_cur, FD_LIMIT_MIN);
        rc = BDY_EINVAL;
        goto out;
    }
    d.connections = fit_connections_to_fd_limit(d.cfg);
    bdy_http_config hc = {.listen = d.cfg->listen,
                          .threads = d.cfg->http.threads,
                          .max_body_bytes = d.cfg->http.max_body_bytes,
                          .connection_timeout_s = d.cfg->http.connection_timeout_s,
                          .header_limit_bytes = d.cfg->http.header_limit_bytes,
                          .max_connections = d.connections};
    rc = bdy_http_server_new(&hc, d.metrics, &d.http, &eb);
    if (rc == 0)
        rc = register_routes(&d);
    if (rc == 0)
        rc = bdy_claims_routes(d.claims, d.http);
    if (rc == 0)
        rc = start_kubeapi(&d, &eb);
    if (rc != 0) {
        bdy_error("http", "cannot set up the HTTP server: %s", eb.message);
        goto out;
    }
    rc = bdy_http_server_set_auth(d.http, d.auth);
    d.auth = NULL; /* the server's now */
    if (rc != 0) {
        bdy_error("http", "out of memory installing the token set");
        goto out;
    }
    bdy_tls_set *tls = NULL;
    rc = load_tls(d.cfg, &tls, &eb);
    if (rc == 0 && tls != NULL) {
        char what[512];
        bdy_tls_describe(tls, what, sizeof(what));
        bdy_info("tls", "%s", what);
        /* Registered only with TLS (which a reload cannot turn on), before
         * the server serves /metrics. */
        bdy_metric_family *expiry = bdy_metrics_gauge(
            d.metrics, "bindery_tls_certificate_expiry_timestamp_seconds",
            "When the HTTP API's certificate in force expires (Unix time).", NULL);
        d.tls_expiry = expiry != NULL ? bdy_metric_child(expiry, NULL) : NULL;
        bdy_metric_set(d.tls_expiry, (double)bdy_tls_expires(tls));
        rc = bdy_http_server_set_tls(d.http, tls);
        bdy_tls_unref(tls);
    }
    if (rc != 0) {
        bdy_error("tls", "%s", eb.message[0] ? eb.message : "cannot install the TLS set");
        goto out;
    }
    rc = bdy_http_server_start(d.http, &eb);
    if (rc != 0) {
        bdy_error("http", "cannot listen on %s: %s", d.cfg->listen, eb.message);
        goto out;
    }

    rc = apply_startup_manifests(&d, d.cfg, &eb);
    if (rc != 0) {
        bdy_error("manifests", "start-up manifests did not apply: %s", eb.message);
        goto out;
    }
    rc = start_worlds(&d, &eb);
    if (rc != 0) {
        bdy_error("main", "%s", eb.message);
        goto out;
    }
    /* Only now, past every check that refuses a start: the file is shared
     * by whatever runs with this config, and a copy of the data folder
     * refused for its instance id had pointed the running bindery's
     * kubectl at its own port. */
    write_kubeconfig(&d);
    /* Before ready: a stop asked for once clients may see bindery ready
     * drains, like any later one. */
    startup_signals_end(&ss);
    bdy_claims_serve(d.claims);
    atomic_store(&d.ready, true);
    bdy_info("main", "ready");
    /* Now, not at open: the check would compete with the world list. */
    if (bdy_store_sqlite_check_start(d.store, &eb) != 0)
        bdy_warn("store", "%s", eb.message);
    if (bdy_ledger_check_start(d.ledger, &eb) != 0)
        bdy_warn("ledger", "%s", eb.message);

    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            reload(&d, config_path);
            kubeconfig_follow_tls(&d);
            continue;
        }
        bdy_info("main", "received %s, draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }
    atomic_store(&d.ready, false);
out:
    startup_signals_end(&ss);
    /* Order matters: no new claim is taken and waiting claims are answered
     * before the HTTP server stops; so is every claim whose ledger commit
     * has begun, with its real outcome (the HTTP stop would answer it
     * ShuttingDown, and the commit land anyway: a world held by a claim its
     * client was told had failed); no ledger callback may run once the
     * claims and the fleet are freed, no request once the store is gone;
     * and the runtime is freed last (worlds keep running: a restarted
     * bindery adopts them). */
    bdy_claims_stop(d.claims);
    bdy_ledger_stop_writes(d.ledger);
    bdy_http_server_stop(d.http);
    /* A watch thread still running closes its watch on the store when it
     * ends: the store then stays open (the process is ending anyway). */
    bool watches_left = bdy_kubeapi_stop(d.kubeapi) > 0;
    bdy_reconciler_stop(d.reconciler);
    bdy_runtime_free(d.runtime); /* no exit notice may reach a freed reconciler */
    if (d.instance_fd >= 0)
        close(d.instance_fd);
    bdy_http_server_free(d.http);
    bdy_claims_free(d.claims);
    bdy_kubeapi_free(d.kubeapi);
    bdy_reconciler_free(d.reconciler);
    bdy_fleet_free(d.fleet);
    bdy_ledger_close(d.ledger);
    bdy_demand_close(d.demand);
    if (!watches_left)
        bdy_store_close(d.store);
    bdy_metrics_free(d.metrics);
    bdy_auth_free(d.auth);
    bdy_config_free(d.cfg);
    free(d.file_listen);
    free(d.file_data_dir);
    free(d.kubeconfig_ca);
    if (rc == 0)
        bdy_info("main", "stopped");
    return rc == 0 ? 0 : 1;
}

static int check_config(const char *path)
{
    bdy_config *cfg = NULL;
    bdy_auth *auth = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy_config_load(path, &cfg, &eb);
    if (rc == 0 && cfg->auth.token_file != NULL)
        rc = bdy_auth_load(cfg->auth.token_file, &auth, &eb);
    if (rc == 0)
        rc = bdy_http_listen_check(cfg->listen, auth != NULL, &eb);
    bdy_tls_set *tls = NULL;
    if (rc == 0)
        rc = load_tls(cfg, &tls, &eb);
    bdy_tls_unref(tls);
    /* CRDs and manifests are applied at start; one that cannot be read or
     * that the store refuses (its schema, its metadata) stops serve. */
    bool checked = false;
    if (rc == 0)
        rc = check_manifests(cfg, NULL, &checked, &eb);
    if (rc != 0)
        fprintf(stderr, "%s\n", eb.message);
    else
        printf("%s: ok\n", path);
    if (rc == 0 && cfg->settings == 0)
        fprintf(stderr,
                "%s sets nothing: serve would run with the defaults and no pools, "
                "and a reload refuses it\n",
                path);
    bdy_auth_free(auth);
    bdy_config_free(cfg);
    return rc == 0 ? 0 : 1;
}

/* flags of `bindery kubeconfig`: files the printed kubeconfig refers to. */
typedef struct kubeconfig_flags {
    const char *token_file;
    const char *ca_file;
    const char *client_cert;
    const char *client_key;
} kubeconfig_flags;

/* path made absolute (kubectl resolves a relative one against the
 * kubeconfig's folder, not the caller's), into buf; NULL stays NULL. */
static const char *absolute(const char *path, char buf[PATH_MAX])
{
    if (path == NULL || path[0] == '/')
        return path;
    return realpath(path, buf) != NULL ? buf : path;
}

/* Prints the kubeconfig the daemon wrote for this config (and --data):
 * its server, and the flags' files in it (--ca-file in place of the
 * server's certificate file). */
static int print_kubeconfig(const char *config_path, const char *data, const kubeconfig_flags *f)
{
    bdy_config *cfg = NULL;
    char *text = NULL;
    bdy_buf b;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    bdy_buf_init(&b, (size_t)64 * 1024);
    int rc = 0;
    /* Files the kubeconfig names must be there: kubectl reads them later,
     * and a misspelt path failed only then, far from the command. */
    const char *named[][2] = {{"--token-file", f->token_file},
                              {"--ca-file", f->ca_file},
                              {"--client-cert", f->client_cert},
                              {"--client-key", f->client_key}};
    for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
        if (named[i][1] != NULL && access(named[i][1], R_OK) != 0) {
            fprintf(stderr, "bindery kubeconfig: %s %s: %s\n", named[i][0], named[i][1],
                    strerror(errno));
            rc = BDY_EINVAL;
            goto out;
        }
    }
    rc = bdy_config_load(config_path, &cfg, &eb);
    if (rc == 0 && data != NULL)
        rc = bdy_config_override_data_dir(cfg, data, &eb);
    if (rc != 0) {
        fprintf(stderr, "%s\n", eb.message);
        goto out;
    }
    if ((f->client_cert == NULL) != (f->client_key == NULL)) {
        fprintf(stderr, "bindery kubeconfig: --client-cert and --client-key go together\n");
        rc = BDY_EINVAL;
        goto out;
    }
    char path[PATH_MAX];
    bdy_kubeconfig_path(cfg->data_dir, path, sizeof(path));
    size_t len = 0;
    rc = bdy_read_file(path, (size_t)64 * 1024, &text, &len);
    if (rc != 0) {
        fprintf(stderr, "%s: %s (bindery writes it when it starts with this config)\n", path,
                bdy_strerror(rc));
        goto out;
    }
    /* The server (with the port the daemon bound) from the written file. */
    const char *server = strstr(text, "server: ");
    char url[400] = "";
    if (server != NULL)
        sscanf(server + 8, "%399s", url);
    char ca[PATH_MAX];
    char token[PATH_MAX];
    char cert[PATH_MAX];
    char key[PATH_MAX];
    bdy_kubeconfig_user user = {.ca_file = f->ca_file != NULL ? absolute(f->ca_file, ca)
                                                              : cfg->tls.cert_file,
                                .token_file = absolute(f->token_file, token),
                                .client_cert_file = absolute(f->client_cert, cert),
                                .client_key_file = absolute(f->client_key, key)};
    if (strncmp(url, "https://", 8) != 0)
        user.ca_file = NULL;
    /* client-go sends no credentials over plain HTTP: every request of
     * this kubeconfig would get 401. */
    if (user.token_file != NULL && strncmp(url, "http://", 7) == 0)
        fprintf(stderr,
                "bindery kubeconfig: warning: kubectl sends no bearer token to %s (plain "
                "HTTP): with a token file, serve over TLS (tls: in the config)\n",
                url);
    rc = bdy_kubeconfig_render(url, &user, &b);
    if (rc == 0)
        fputs(b.data, stdout);
out:
    free(text);
    bdy_buf_free(&b);
    bdy_config_free(cfg);
    return rc == 0 ? 0 : 1;
}

/* `bindery backup`: the data folder of this config (and --data) copied,
 * online, into a new folder `serve --data` can start from (backup.h). */
static int backup(const char *config_path, const char *data, const char *to)
{
    bdy_config *cfg = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy_config_load(config_path, &cfg, &eb);
    if (rc == 0 && data != NULL)
        rc = bdy_config_override_data_dir(cfg, data, &eb);
    bdy_backup_report r = {0};
    if (rc == 0)
        rc = bdy_backup_data_dir(cfg->data_dir, to, &r, &eb);
    if (rc != 0) {
        fprintf(stderr, "bindery backup: %s\n", eb.message);
    } else {
        printf("backed up %s to %s: %u files, %.1f MB in %.2f s", cfg->data_dir, to, r.files,
               (double)r.bytes / 1e6, r.seconds);
        for (unsigned i = 0; i < r.nskipped; i++)
            printf("%s%s", i == 0 ? " (not there, so not copied: " : ", ", r.skipped[i]);
        printf("%s\n", r.nskipped > 0 ? ")" : "");
    }
    bdy_config_free(cfg);
    return rc == 0 ? 0 : 1;
}

#define HASH_TOKEN_MAX 4096

static int hash_token(void)
{
    char token[HASH_TOKEN_MAX + 2];
    size_t n = fread(token, 1, sizeof(token) - 1, stdin);
    if (n > HASH_TOKEN_MAX) {
        fprintf(stderr, "token longer than %d bytes\n", HASH_TOKEN_MAX);
        return 1;
    }
    while (n > 0 && (token[n - 1] == '\n' || token[n - 1] == '\r'))
        n--;
    if (n == 0) {
        fprintf(stderr, "empty token on stdin\n");
        return 1;
    }
    /* A hash of a token no request can present would never log in. */
    if (!bdy_auth_token_usable(token, n)) {
        fprintf(stderr, "the token has characters an Authorization header cannot carry (spaces, "
                        "control or non-ASCII characters): it could never log in\n");
        return 1;
    }
    char hex[65];
    bdy_sha256_hex(token, n, hex);
    printf("%s\n", hex);
    return 0;
}

/* Opens /dev/null onto whichever of descriptors 0, 1 and 2 is closed (a
 * supervisor may start bindery so): otherwise the next file bindery opens
 * takes that number, and a world's log would be opened as descriptor 0,
 * then replaced by the /dev/null meant for the world's stdin. */
static void fill_standard_descriptors(void)
{
    for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        int opened = open("/dev/null", fd == STDIN_FILENO ? O_RDONLY : O_WRONLY);
        if (opened >= 0 && opened != fd) /* cannot happen: the lowest free is fd */
            close(opened);
    }
}

int main(int argc, char **argv)
{
    fill_standard_descriptors();
    if (argc < 2)
        return usage();
    const char *cmd = argv[1];
    /* Asked for anywhere (bindery serve --help), the usage is the answer. */
    if (strcmp(cmd, "help") == 0)
        return usage_to(stdout, 0);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return usage_to(stdout, 0);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("bindery %s\n", BINDERY_VERSION);
        return 0;
    }
    if (strcmp(cmd, "check-config") == 0)
        return argc == 3 ? check_config(argv[2]) : usage();
    if (strcmp(cmd, "hash-token") == 0)
        return argc == 2 ? hash_token() : usage();
    bool kubeconfig = strcmp(cmd, "kubeconfig") == 0;
    bool backing_up = strcmp(cmd, "backup") == 0;
    if (strcmp(cmd, "serve") != 0 && !kubeconfig && !backing_up)
        return usage();
    const char *to = NULL;
    const char *config = NULL;
    const char *listen = NULL;
    const char *data = NULL;
    kubeconfig_flags kf = {0};
    for (int i = 2; i < argc; i++) {
        const char **slot = NULL;
        if (strcmp(argv[i], "--config") == 0)
            slot = &config;
        else if (strcmp(argv[i], "--listen") == 0)
            slot = &listen;
        else if (strcmp(argv[i], "--data") == 0)
            slot = &data;
        else if (kubeconfig && strcmp(argv[i], "--token-file") == 0)
            slot = &kf.token_file;
        else if (kubeconfig && strcmp(argv[i], "--ca-file") == 0)
            slot = &kf.ca_file;
        else if (kubeconfig && strcmp(argv[i], "--client-cert") == 0)
            slot = &kf.client_cert;
        else if (kubeconfig && strcmp(argv[i], "--client-key") == 0)
            slot = &kf.client_key;
        else if (backing_up && strcmp(argv[i], "--to") == 0)
            slot = &to;
        if (slot == NULL || i + 1 >= argc) {
            fprintf(stderr, "bindery %s: unknown or incomplete flag %s\n", cmd, argv[i]);
            return usage();
        }
        *slot = argv[++i];
    }
    if (config == NULL) {
        fprintf(stderr, "bindery %s: --config FILE is required\n", cmd);
        return usage();
    }
    if (kubeconfig)
        return print_kubeconfig(config, data, &kf);
    if (backing_up && to == NULL) {
        fprintf(stderr, "bindery backup: --to DIR is required\n");
        return usage();
    }
    if (backing_up)
        return backup(config, data, to);
    return serve(config, listen, data);
}
