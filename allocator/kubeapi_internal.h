/* Internal to the Kubernetes-compatible API (allocator/kubeapi*.c): the
 * module state and the helpers its files share. */
#ifndef BINDERY_ALLOCATOR_KUBEAPI_INTERNAL_H
#define BINDERY_ALLOCATOR_KUBEAPI_INTERNAL_H

#include "bindery/crd.h"
#include "bindery/http.h"
#include "bindery/kubeapi.h"
#include "bindery/store.h"

#include <json-c/json.h>
#include <pthread.h>
#include <stdbool.h>

struct bdy_kubeapi {
    bdy_store *store;
    unsigned max_watches;
    unsigned watch_timeout_s;
    unsigned bookmark_interval_s;
    pthread_mutex_t lock; /* guards nwatches and stopping */
    pthread_cond_t idle;  /* signalled when nwatches drops */
    unsigned nwatches;
    bool stopping;
};

#define BDY__KUBE_TABLE_TYPE "application/json;as=Table;v=v1;g=meta.k8s.io"

/* What a column's cell shows of what its json_path names. */
typedef enum bdy__kube_cell {
    BDY__CELL_VALUE,
    /* A count: the members of the objects (or elements of the arrays) at
     * json_path's comma-separated paths, added up, 0 when none is there
     * (".data,.binaryData": a ConfigMap's keys). */
    BDY__CELL_COUNT,
    /* An object reference as "kind/name", the kind in lower case (an
     * Event's involvedObject, as kubectl get events shows it). */
    BDY__CELL_REFERENCE,
} bdy__kube_cell;

/* One printer column, as the Table shows it. */
typedef struct bdy__kube_column {
    const char *name;
    const char *type; /* string, integer, number, boolean, date */
    const char *format;
    const char *description;
    const char *json_path; /* ".status.phase"; NULL: the object's name */
    int priority;
    bdy__kube_cell cell;
} bdy__kube_column;

/* The columns of a resource: the built-in kinds' own, or a CRD version's
 * additionalPrinterColumns (with Name first and Age when there are none). */
typedef struct bdy__kube_columns {
    bdy__kube_column items[24];
    size_t count;
    bdy_crd *crd; /* owned when the columns come from a CRD */
} bdy__kube_columns;

/* The handler of every resource path (/api/v1/..., /apis/g/v/...): get,
 * list, watch, create, update, patch and delete. data is the bdy_kubeapi.
 * Exposed for the fuzz driver of request bodies (tests/fuzz). */
void bdy__kube_resource_cb(void *data, const bdy_http_request *req, bdy_http_response *resp);

/* Loads the columns for info. Returns 0 or a store error. */
int bdy__kube_columns_load(bdy_store *store, const bdy_resource_info *info, bdy__kube_columns *out);
void bdy__kube_columns_free(bdy__kube_columns *c);

/* A Table of objects (an array, borrowed) with list metadata; include says
 * what rows[].object holds; with_columns false leaves columnDefinitions
 * empty. Returns a new object or NULL without memory. */
json_object *bdy__kube_table(const bdy__kube_columns *cols, json_object *items,
                             const char *resource_version, const char *continue_token,
                             bdy_kube_include include, bool with_columns);

/* kubectl's duration.HumanDuration of seconds ("5m", "3h", "2d5h"). */
void bdy__kube_human_duration(double seconds, char *out, size_t cap);

/* Builds a Status (kind Status, apiVersion v1) failure from a store error
 * code and its errbuf for the resource info (may be NULL) and name. Sets
 * *code to the HTTP status. Caller owns the result. */
json_object *bdy__kube_status_from_error(int rc, const bdy_errbuf *eb,
                                         const bdy_resource_info *info, const char *name,
                                         unsigned *code);
/* A Status with an explicit reason, message and HTTP code. */
json_object *bdy__kube_status(unsigned code, const char *reason, const char *message);
/* The server's own answers on the API's routes as a Status
 * (bdy_http_error_fn). */
void bdy__kube_http_error(bdy_http_response *resp, unsigned status, const char *code,
                          const char *message, unsigned retry_after_s);
/* Answers resp with the Status for rc. */
void bdy__kube_fail(bdy_http_response *resp, int rc, const bdy_errbuf *eb,
                    const bdy_resource_info *info, const char *name);
void bdy__kube_fail_msg(bdy_http_response *resp, unsigned code, const char *reason,
                        const char *message);

/* Discovery and OpenAPI handlers (kubeapi_discovery.c); data is the
 * bdy_kubeapi. */
void bdy__kube_version_cb(void *data, const bdy_http_request *req, bdy_http_response *resp);
void bdy__kube_api_cb(void *data, const bdy_http_request *req, bdy_http_response *resp);
void bdy__kube_apis_cb(void *data, const bdy_http_request *req, bdy_http_response *resp);
void bdy__kube_openapi_cb(void *data, const bdy_http_request *req, bdy_http_response *resp);
/* The namespace a request is authorized in: a GET of one Namespace by
 * name is in that namespace, as Kubernetes authorizes it (a token for
 * namespace X may read X, not the list); anything else in ns (NULL: all
 * namespaces, or none). */
const char *bdy__kube_authz_namespace(bool get_one, const char *group, const char *resource,
                                      const char *name, const char *ns);
/* A JSON array of the strings of the NULL-terminated v. */
json_object *bdy__kube_strings(const char *const *v);

/* kubectl auth can-i (--list) and auth whoami (kubeapi_review.c): POSTs
 * of a SelfSubjectAccessReview, a SelfSubjectReview and a
 * SelfSubjectRulesReview, answered for the request's principal. */
void bdy__kube_access_review_cb(void *data, const bdy_http_request *req, bdy_http_response *resp);
void bdy__kube_self_review_cb(void *data, const bdy_http_request *req, bdy_http_response *resp);
void bdy__kube_rules_review_cb(void *data, const bdy_http_request *req, bdy_http_response *resp);
/* /api/v1 or /apis/<g>/<v> without a resource: the APIResourceList. */
void bdy__kube_resource_list(bdy_kubeapi *k, const char *group, const char *version,
                             bdy_http_response *resp);

/* Watch (kubeapi_watch.c): starts the stream for a validated watch request
 * and answers resp itself on errors. */
void bdy__kube_watch(bdy_kubeapi *k, const bdy_http_request *req, bdy_http_response *resp,
                     const bdy_resource_info *info, const char *ns, const bdy_kube_query *q,
                     bool table);

/* Kubernetes protobuf bodies (kubeapi_proto.c): what kubectl's typed
 * clients post (`kubectl create secret generic`, `create configmap`,
 * `create namespace`). */
#define BDY__KUBE_PROTOBUF_TYPE "application/vnd.kubernetes.protobuf"
/* Whether a create or update of info's resource may come as protobuf
 * (Secrets, ConfigMaps and Namespaces). */
bool bdy__kube_proto_accepts(const bdy_resource_info *info);
/* Decodes a protobuf body of len bytes (the "k8s\0" envelope around a
 * runtime.Unknown holding the object) into the JSON object a JSON client
 * would have sent; fields of the message the JSON form leaves out (empty
 * strings, what only the server sets) are left out. Returns 0 with *out
 * (the caller owns it), BDY_EINVAL with eb for a malformed body,
 * BDY_EUNSUPPORTED for a resource without protobuf, or BDY_ENOMEM. Reads
 * nothing past body + len. Any thread. */
int bdy__kube_proto_decode(const bdy_resource_info *info, const char *body, size_t len,
                           json_object **out, bdy_errbuf *eb);

/* "group/version" or "version" of info into out. */
void bdy__kube_api_version(const bdy_resource_info *info, char *out, size_t cap);

#endif
