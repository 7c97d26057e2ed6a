/* A Kubernetes-compatible API over the object store, so that the real
 * kubectl (and any client-go style client) works against an embedded-mode
 * Bindery: /version, legacy and aggregated discovery built live from the
 * CRDs the store holds, a minimal OpenAPI v3, and for every resource the
 * store serves GET/LIST/WATCH/POST/PUT/PATCH/DELETE with the wire formats
 * of the real API server (Status errors, Table output, chunked watches with
 * bookmarks, merge/JSON/strategic-merge patches, DeleteOptions).
 *
 * Routes live on the claim API's server under /version, /api, /apis and
 * /openapi; reads need the read verb, writes the admin verb, and a token
 * limited to some namespaces only sees and writes those.
 *
 * Thread-safety: every function here may be called from any thread, except
 * that bdy_kubeapi_routes() runs before the server starts and
 * bdy_kubeapi_stop()/free() after it has stopped accepting requests.
 */
#ifndef BINDERY_KUBEAPI_H
#define BINDERY_KUBEAPI_H

#include "bindery/error.h"
#include "bindery/http.h"
#include "bindery/store.h"
#include "bindery/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The Kubernetes version /version reports. The kubectl dispatcher runs the
 * kubectl of this minor version, so it must be one kubectl still supports. */
#define BDY_KUBEAPI_MINOR "32"
#define BDY_KUBEAPI_DEFAULT_MAX_WATCHES 256u
#define BDY_KUBEAPI_DEFAULT_WATCH_TIMEOUT_S 1800u
#define BDY_KUBEAPI_MAX_WATCH_TIMEOUT_S 86400u
#define BDY_KUBEAPI_DEFAULT_BOOKMARK_S 60u

typedef struct bdy_kubeapi bdy_kubeapi;

/* Zero selects the default shown. */
typedef struct bdy_kubeapi_opts {
    bdy_store *store;             /* borrowed; must outlive the API */
    unsigned max_watches;         /* open watch streams; more get 429 */
    unsigned watch_timeout_s;     /* watch length without timeoutSeconds */
    unsigned bookmark_interval_s; /* BOOKMARK events of an idle watch */
} bdy_kubeapi_opts;

/* Creates the API. Caller frees with bdy_kubeapi_free(). */
int bdy_kubeapi_new(const bdy_kubeapi_opts *opts, bdy_kubeapi **out, bdy_errbuf *eb);
/* Mounts the routes on s (before bdy_http_server_start). */
int bdy_kubeapi_routes(bdy_kubeapi *k, bdy_http_server *s);
/* Ends every watch and waits (bounded) for their threads; call after
 * bdy_http_server_stop(), before the store is closed. Returns how many
 * still run: each closes its watch on the store when it ends, so the store
 * must then be left open (and the API not freed). */
unsigned bdy_kubeapi_stop(bdy_kubeapi *k);
void bdy_kubeapi_free(bdy_kubeapi *k);

/* ---- kubeconfig ---------------------------------------------------------- */

/* What a kubeconfig for this Bindery says besides its server. Paths are
 * referenced, not copied in, so a rotated certificate or token is read
 * from its file at kubectl's next run. NULL: left out. */
typedef struct bdy_kubeconfig_user {
    const char *ca_file;          /* the cluster's certificate-authority (https) */
    const char *token_file;       /* the user's tokenFile */
    const char *client_cert_file; /* the user's client-certificate ... */
    const char *client_key_file;  /* ... and client-key */
} bdy_kubeconfig_user;

/* Renders a kubeconfig (context "bindery", namespace default) for server_url
 * ("http://127.0.0.1:7780"); user may be NULL. */
int bdy_kubeconfig_render(const char *server_url, const bdy_kubeconfig_user *user, bdy_buf *out);
/* The server URL kubectl should use for a listen address ("0.0.0.0:7780"
 * becomes http://127.0.0.1:7780, or https:// when tls), and the bound port. */
void bdy_kubeconfig_server_url(const char *listen, unsigned port, bool tls, char *out, size_t cap);
/* Where the daemon writes the kubeconfig: "kubeconfig" next to data_dir. */
void bdy_kubeconfig_path(const char *data_dir, char *out, size_t cap);
/* Writes the file atomically (temporary file + rename), mode 0600. */
int bdy_kubeconfig_write(const char *path, const char *server_url, const bdy_kubeconfig_user *user,
                         bdy_errbuf *eb);

/* ---- parsers of outside input (public so they can be fuzzed) ------------- */

#define BDY_KUBE_MAX_SEGMENT 253u

/* A request path: /api/v1/..., /apis/<group>/<version>/... */
typedef struct bdy_kube_path {
    char group[BDY_KUBE_MAX_SEGMENT + 1];
    char version[64];
    char ns[BDY_KUBE_MAX_SEGMENT + 1];       /* "" when not in the path */
    char resource[BDY_KUBE_MAX_SEGMENT + 1]; /* "" for /api/v1 itself */
    char name[BDY_KUBE_MAX_SEGMENT + 1];     /* "" for collections */
    char subresource[32];                    /* "status" or "" */
} bdy_kube_path;

/* Parses path. BDY_ENOTFOUND when it is not a resource path of this
 * shape (too many segments, empty or over-long segments, "." or ".."). */
int bdy_kube_parse_path(const char *path, bdy_kube_path *out);

typedef struct bdy_kube_accept {
    bool table;        /* application/json;as=Table;g=meta.k8s.io */
    bool discovery_v2; /* application/json;as=APIGroupDiscoveryList;g=apidiscovery.k8s.io;v=v2 */
    bool json;         /* plain JSON (or any) acceptable */
} bdy_kube_accept;

/* Parses an Accept header (NULL: anything). Never fails: unknown media
 * types are ignored. At most BDY_KUBE_MAX_ACCEPT bytes are looked at. */
#define BDY_KUBE_MAX_ACCEPT 2048u
void bdy_kube_parse_accept(const char *accept, bdy_kube_accept *out);

typedef enum bdy_kube_propagation {
    BDY_PROPAGATE_DEFAULT,
    BDY_PROPAGATE_ORPHAN,
    BDY_PROPAGATE_BACKGROUND,
    BDY_PROPAGATE_FOREGROUND,
} bdy_kube_propagation;

/* DeleteOptions from the body and/or the query. */
typedef struct bdy_kube_delete {
    bdy_kube_propagation propagation;
    bool dry_run;
    bool has_grace;
    int64_t grace_seconds;
    char uid[64]; /* precondition, "" for none */
    char rv[32];  /* precondition, "" for none */
} bdy_kube_delete;

/* A query-string lookup: the value of key or NULL. */
typedef const char *(*bdy_kube_query_cb)(void *data, const char *key);

/* Parses a DeleteOptions body (may be empty) and the query parameters
 * gracePeriodSeconds, propagationPolicy, dryRun. Bad input → BDY_EINVAL with
 * a message in eb. Bodies beyond BDY_KUBE_MAX_DELETE_BODY → BDY_ETOOBIG. */
#define BDY_KUBE_MAX_DELETE_BODY 8192u
int bdy_kube_parse_delete(const char *body, size_t len, bdy_kube_query_cb query, void *data,
                          bdy_kube_delete *out, bdy_errbuf *eb);

typedef enum bdy_kube_field_validation {
    BDY_FIELDS_DEFAULT, /* absent: Warn, as the API server does (kubectl >= 1.27 sends Strict) */
    BDY_FIELDS_IGNORE,
    BDY_FIELDS_WARN,
    BDY_FIELDS_STRICT,
} bdy_kube_field_validation;

typedef enum bdy_kube_include {
    BDY_INCLUDE_METADATA,
    BDY_INCLUDE_OBJECT,
    BDY_INCLUDE_NONE,
} bdy_kube_include;

/* The list/watch/write query parameters of one request. Strings point into
 * the lookup's storage (borrowed for the request's life). */
typedef struct bdy_kube_query {
    const char *label_selector;
    const char *field_selector;
    const char *continue_token;
    const char *resource_version; /* NULL or "" when absent */
    size_t limit;
    bool watch;
    bool allow_bookmarks;
    bool send_initial_events;
    bool has_timeout;
    unsigned timeout_s;
    bool dry_run;
    bdy_kube_field_validation field_validation;
    bdy_kube_include include;
} bdy_kube_query;

/* Parses the query parameters. Malformed values (limit "x", watch "maybe",
 * dryRun "Some", timeoutSeconds -1) → BDY_EINVAL with the Kubernetes-style
 * message in eb. */
int bdy_kube_parse_query(bdy_kube_query_cb query, void *data, bdy_kube_query *out, bdy_errbuf *eb);

#endif
