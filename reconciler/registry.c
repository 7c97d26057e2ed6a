#include "registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fields every resource may be selected by. */
#define BASE_FIELDS "metadata.name", "metadata.namespace"

typedef struct builtin_def {
    const char *group;
    const char *version;
    const char *resource;
    const char *kind;
    bool namespaced;
    bool status_subresource;
    const char *fields[BDY__REGISTRY_MAX_FIELDS + 1];
} builtin_def;

static const builtin_def builtins[] = {
    {"", "v1", "namespaces", "Namespace", false, true, {BASE_FIELDS, "status.phase", NULL}},
    {"",
     "v1",
     "pods",
     "Pod",
     true,
     true,
     {BASE_FIELDS, "spec.nodeName", "status.phase", "spec.restartPolicy", NULL}},
    /* Secrets are also selected by type, as in Kubernetes. */
    {"", "v1", "secrets", "Secret", true, false, {BASE_FIELDS, "type", NULL}},
    {"", "v1", "configmaps", "ConfigMap", true, false, {BASE_FIELDS, NULL}},
    {"",
     "v1",
     "events",
     "Event",
     true,
     false,
     {BASE_FIELDS, "involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
      "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
      "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type", NULL}},
    {"coordination.k8s.io", "v1", "leases", "Lease", true, false, {BASE_FIELDS, NULL}},
    {"apiextensions.k8s.io",
     "v1",
     "customresourcedefinitions",
     "CustomResourceDefinition",
     false,
     true,
     {BASE_FIELDS, NULL}},
};

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static int grow(bdy__registry *r)
{
    if (r->count < r->alloc)
        return 0;
    size_t n = r->alloc ? r->alloc * 2 : 16;
    bdy__resource *p = realloc(r->items, n * sizeof(*p));
    if (p == NULL)
        return BDY_ENOMEM;
    r->items = p;
    r->alloc = n;
    return 0;
}

int bdy__registry_init(bdy__registry *r)
{
    memset(r, 0, sizeof(*r));
    if (pthread_rwlock_init(&r->lock, NULL) != 0)
        return BDY_ENOMEM;
    for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++) {
        const builtin_def *b = &builtins[i];
        if (grow(r) != 0) {
            bdy__registry_destroy(r);
            return BDY_ENOMEM;
        }
        bdy__resource *e = &r->items[r->count++];
        memset(e, 0, sizeof(*e));
        copy_str(e->info.group, sizeof(e->info.group), b->group);
        copy_str(e->info.version, sizeof(e->info.version), b->version);
        copy_str(e->info.resource, sizeof(e->info.resource), b->resource);
        copy_str(e->info.kind, sizeof(e->info.kind), b->kind);
        snprintf(e->info.list_kind, sizeof(e->info.list_kind), "%sList", b->kind);
        e->info.namespaced = b->namespaced;
        e->info.status_subresource = b->status_subresource;
        e->builtin = true;
        for (size_t f = 0; f < BDY__REGISTRY_MAX_FIELDS && b->fields[f] != NULL; f++)
            e->selectable[f] = b->fields[f];
    }
    return 0;
}

void bdy__registry_destroy(bdy__registry *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->count; i++)
        bdy_crd_free(r->items[i].crd);
    free(r->items);
    r->items = NULL;
    r->count = 0;
    pthread_rwlock_destroy(&r->lock);
}

static bdy__resource *find(bdy__registry *r, const char *group, const char *resource)
{
    for (size_t i = 0; i < r->count; i++) {
        if (strcmp(r->items[i].info.group, group ? group : "") == 0 &&
            strcmp(r->items[i].info.resource, resource) == 0)
            return &r->items[i];
    }
    return NULL;
}

int bdy__registry_lookup(bdy__registry *r, const char *group, const char *resource,
                         bdy_resource_info *out)
{
    int rc = BDY_ENOTFOUND;
    pthread_rwlock_rdlock(&r->lock);
    const bdy__resource *e = find(r, group, resource);
    if (e != NULL) {
        *out = e->info;
        rc = 0;
    }
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

int bdy__registry_lookup_kind(bdy__registry *r, const char *group, const char *version,
                              const char *kind, bdy_resource_info *out)
{
    int rc = BDY_ENOTFOUND;
    pthread_rwlock_rdlock(&r->lock);
    for (size_t i = 0; i < r->count; i++) {
        const bdy__resource *e = &r->items[i];
        if (strcmp(e->info.group, group) == 0 && strcmp(e->info.kind, kind) == 0 &&
            strcmp(e->info.version, version) == 0) {
            *out = e->info;
            rc = 0;
            break;
        }
    }
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

const bdy__resource *bdy__registry_get(bdy__registry *r, const char *group, const char *resource)
{
    /* Only the writer mutates the registry, and only the writer calls this,
     * so no lock is needed to read. */
    return find(r, group, resource);
}

/* The version a CRD's objects are served and stored at. */
static const bdy_crd_version *storage_version(const bdy_crd *crd)
{
    for (size_t i = 0; i < crd->nversions; i++) {
        if (crd->versions[i].storage)
            return &crd->versions[i];
    }
    return crd->nversions > 0 ? &crd->versions[0] : NULL;
}

int bdy__registry_put_crd(bdy__registry *r, bdy_crd *crd, bdy_errbuf *eb)
{
    int rc = 0;
    const bdy_crd_version *v = storage_version(crd);
    if (v == NULL) {
        rc = bdy_fail(eb, BDY_EINVALID_OBJECT, "CRD %s has no storage version", crd->name);
        goto out;
    }
    pthread_rwlock_wrlock(&r->lock);
    bdy__resource *e = find(r, crd->group, crd->plural);
    if (e != NULL && e->builtin) {
        pthread_rwlock_unlock(&r->lock);
        rc = bdy_fail(eb, BDY_EEXISTS, "%s.%s is a built-in resource", crd->plural, crd->group);
        goto out;
    }
    if (e == NULL) {
        if (grow(r) != 0) {
            pthread_rwlock_unlock(&r->lock);
            rc = BDY_ENOMEM;
            goto out;
        }
        e = &r->items[r->count++];
    } else {
        bdy_crd_free(e->crd);
    }
    memset(e, 0, sizeof(*e));
    copy_str(e->info.group, sizeof(e->info.group), crd->group);
    copy_str(e->info.version, sizeof(e->info.version), v->name);
    copy_str(e->info.resource, sizeof(e->info.resource), crd->plural);
    copy_str(e->info.kind, sizeof(e->info.kind), crd->kind);
    copy_str(e->info.list_kind, sizeof(e->info.list_kind), crd->list_kind);
    e->info.namespaced = crd->namespaced;
    e->info.status_subresource = v->status_subresource;
    e->requires_rv_on_update = true;
    e->crd = crd;
    e->crd_version = v;
    e->selectable[0] = "metadata.name";
    e->selectable[1] = "metadata.namespace";
    size_t n = 2;
    for (size_t i = 0; i < v->nselectable_fields && n < BDY__REGISTRY_MAX_FIELDS; i++)
        e->selectable[n++] = v->selectable_fields[i];
    crd = NULL;
    pthread_rwlock_unlock(&r->lock);
out:
    bdy_crd_free(crd);
    return rc;
}

void bdy__registry_remove_crd(bdy__registry *r, const char *group, const char *plural)
{
    pthread_rwlock_wrlock(&r->lock);
    bdy__resource *e = find(r, group, plural);
    if (e != NULL && !e->builtin) {
        bdy_crd_free(e->crd);
        size_t idx = (size_t)(e - r->items);
        memmove(e, e + 1, (r->count - idx - 1) * sizeof(*e));
        r->count--;
    }
    pthread_rwlock_unlock(&r->lock);
}
