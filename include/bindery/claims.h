/* The claim API of API.md: POST/GET/DELETE /v1/allocations, GET /v1/pools,
 * GET /v1/pools/{ns}/{name}, GET /v1/worlds.
 *
 * The claim path: parse and validate → authorize → idempotency → the
 * pool's warm index (O(1) without selectors) → one durable status write
 * with the world's resourceVersion as precondition → 201. With
 * waitSeconds > 0 and no warm world, a world is created for the claim and
 * the request waits on a suspended connection until that world is Ready.
 *
 * Threads: handlers run on HTTP threads; bdy_claims_observe_world runs on
 * the world informer's thread; one internal thread finishes cold claims and
 * times them out.
 */
#ifndef BINDERY_CLAIMS_H
#define BINDERY_CLAIMS_H

#include "bindery/error.h"
#include "bindery/http.h"
#include "bindery/ledger.h"
#include "bindery/metrics.h"
#include "bindery/pool.h"
#include "bindery/reconciler.h"
#include "bindery/selector.h"
#include "bindery/store.h"

#include <json-c/json.h>

#define BDY_CLAIM_MAX_SELECTORS 16
#define BDY_CLAIM_MAX_WAIT_S 300
/* Most bytes the labels and annotations of one claim's metadata may hold
 * together, as JSON (Kubernetes' limit on an object's annotations): they
 * are written onto the world twice, which must still fit the store. */
#define BDY_CLAIM_METADATA_MAX ((size_t)256 * 1024)
#define BDY_IDEMPOTENCY_KEY_MAX 128

typedef struct bdy_claims bdy_claims;

/* A parsed and validated POST /v1/allocations body. */
typedef struct bdy_claim_request {
    char ns[BDY_NAME_MAX]; /* "default" when absent */
    char pool[BDY_NAME_MAX];
    char claimant[254];
    unsigned wait_s;
    bdy_label_selector *selectors[BDY_CLAIM_MAX_SELECTORS]; /* owned */
    size_t nselectors;
    json_object *labels;      /* metadata.labels, borrowed from body, or NULL */
    json_object *annotations; /* metadata.annotations, borrowed from body, or NULL */
    json_object *body;        /* the parsed body, owned */
} bdy_claim_request;

/* Parses a claim body strictly (RFC 8259 JSON, no trailing data, nesting
 * capped; unknown fields, bad names, selectors, labels or out-of-range
 * values refused). Returns 0, or BDY_EINVAL with a message naming the field
 * in why. On success free *out with bdy_claim_request_free(). */
int bdy_claim_request_parse(const char *body, size_t len, bdy_claim_request *out, char *why,
                            size_t why_cap);
void bdy_claim_request_free(bdy_claim_request *r);

typedef struct bdy_claims_opts {
    bdy_store *store;     /* borrowed */
    bdy_fleet *fleet;     /* borrowed */
    bdy_metrics *metrics; /* borrowed, may be NULL */
    bdy_ledger *ledger;   /* borrowed, may be NULL: warm claims are then the world's
                             status write itself (Kubernetes mode) */
    bdy_demand *demand;   /* borrowed, may be NULL: claims are then not recorded */
    /* How long a released claim's record is kept (answering GET, DELETE
     * and replays of its key); 0: 24 hours. */
    double record_retention_s;
} bdy_claims_opts;

int bdy_claims_new(const bdy_claims_opts *opts, bdy_claims **out, bdy_errbuf *eb);

/* The reconciler, once it exists (claims queue worlds they changed). */
void bdy_claims_set_reconciler(bdy_claims *c, bdy_reconciler *r);

/* bdy_world_observer_cb for the reconciler: keeps the allocation and
 * idempotency indexes current and wakes cold claims. */
void bdy_claims_observe_world(void *data, const char *ns, const char *name, json_object *obj);

/* Starts the Allocation-record informer and the cold-claim threads; returns
 * once the records are loaded (or after timeout_ms). */
int bdy_claims_start(bdy_claims *c, int timeout_ms, bdy_errbuf *eb);
/* From now on claims are served, once they are ready: the owner calls it
 * when a stop can no longer end the process without draining (a claim
 * committed but not answered would be lost to its client). */
void bdy_claims_serve(bdy_claims *c);
/* True when claims may be served (bdy_claims_serve called, indexes loaded). */
bool bdy_claims_ready(bdy_claims *c);

/* Registers the routes on s. */
int bdy_claims_routes(bdy_claims *c, bdy_http_server *s);

/* For a scrape: every configured pool has its claim counters (warm and
 * cold successes, exhaustions and timeouts, misses), at 0 until counted,
 * so that a rule on their rate sees a series from the start. Any thread
 * (HTTP workers, during reloads too). */
void bdy_claims_collect(bdy_claims *c);

/* Answers every waiting cold claim with 503 and stops the thread. */
void bdy_claims_stop(bdy_claims *c);
void bdy_claims_free(bdy_claims *c);

#endif
