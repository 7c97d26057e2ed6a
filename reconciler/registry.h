/* Internal to the embedded store: the set of resources it serves — the
 * built-in kinds plus one entry per CustomResourceDefinition it holds.
 *
 * Thread-safety: lookups copy facts out under a read lock and may run on any
 * thread. Only the store's writer thread adds or removes CRDs, and only it
 * may use the pointer returned by bdy__registry_crd_version() (the entry
 * cannot change under it because it is the only writer).
 */
#ifndef BINDERY_RECONCILER_REGISTRY_H
#define BINDERY_RECONCILER_REGISTRY_H

#include "bindery/crd.h"
#include "bindery/store.h"

#include <pthread.h>

#define BDY__REGISTRY_MAX_FIELDS 16

typedef struct bdy__resource {
    bdy_resource_info info;
    bool builtin;
    bool requires_rv_on_update; /* custom resources: PUT needs resourceVersion */
    const char *selectable[BDY__REGISTRY_MAX_FIELDS + 1]; /* NULL-terminated field paths */
    bdy_crd *crd;                                         /* custom resources only, owned */
    const bdy_crd_version *crd_version;                   /* the served storage version */
} bdy__resource;

typedef struct bdy__registry {
    pthread_rwlock_t lock;
    bdy__resource *items;
    size_t count;
    size_t alloc;
} bdy__registry;

int bdy__registry_init(bdy__registry *r);
void bdy__registry_destroy(bdy__registry *r);

/* Copies the entry's facts and field-selector list (strings stay valid while
 * the entry lives; callers outside the writer use only info). */
int bdy__registry_lookup(bdy__registry *r, const char *group, const char *resource,
                         bdy_resource_info *out);
int bdy__registry_lookup_kind(bdy__registry *r, const char *group, const char *version,
                              const char *kind, bdy_resource_info *out);

/* Writer thread only: the entry itself (NULL when unknown). */
const bdy__resource *bdy__registry_get(bdy__registry *r, const char *group, const char *resource);

/* Writer thread only: registers crd (taking ownership), replacing an entry of
 * the same group/resource. Refuses to shadow a built-in (BDY_EEXISTS). */
int bdy__registry_put_crd(bdy__registry *r, bdy_crd *crd, bdy_errbuf *eb);
/* Writer thread only: drops the CRD's entry. */
void bdy__registry_remove_crd(bdy__registry *r, const char *group, const char *plural);

#endif
