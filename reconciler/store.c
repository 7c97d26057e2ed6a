/* Backend-independent parts of the store interface: well-known resources,
 * the dispatching wrappers, and apply (create-or-update) of manifests. */
#include "bindery/store.h"

#include "bindery/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const bdy_gvr BDY_GVR_NAMESPACES = {"", "v1", "namespaces"};
const bdy_gvr BDY_GVR_PODS = {"", "v1", "pods"};
const bdy_gvr BDY_GVR_EVENTS = {"", "v1", "events"};
const bdy_gvr BDY_GVR_LEASES = {"coordination.k8s.io", "v1", "leases"};
const bdy_gvr BDY_GVR_SECRETS = {"", "v1", "secrets"};
const bdy_gvr BDY_GVR_CONFIGMAPS = {"", "v1", "configmaps"};
const bdy_gvr BDY_GVR_CRDS = {"apiextensions.k8s.io", "v1", "customresourcedefinitions"};
const bdy_gvr BDY_GVR_WORLDS = {"bindery.dev", "v1alpha1", "worldinstances"};
const bdy_gvr BDY_GVR_MANIFESTS = {"bindery.dev", "v1alpha1", "modulemanifests"};
const bdy_gvr BDY_GVR_BOOKLETS = {"bindery.dev", "v1alpha1", "booklets"};
const bdy_gvr BDY_GVR_BINDINGS = {"bindery.dev", "v1alpha1", "capabilitybindings"};

void bdy_store_close(bdy_store *s)
{
    if (s == NULL)
        return;
    s->vt->destroy(s->ctx);
    free(s);
}

int bdy_store_get(bdy_store *s, const bdy_gvr *gvr, const char *ns, const char *name,
                  json_object **out, bdy_errbuf *eb)
{
    return s->vt->get(s->ctx, gvr, ns, name, out, eb);
}

int bdy_store_list(bdy_store *s, const bdy_gvr *gvr, const bdy_list_opts *opts,
                   bdy_list_result *out, bdy_errbuf *eb)
{
    return s->vt->list(s->ctx, gvr, opts, out, eb);
}

int bdy_store_create(bdy_store *s, const bdy_gvr *gvr, const char *ns, json_object *obj,
                     const bdy_write_opts *wo, json_object **out, bdy_errbuf *eb)
{
    return s->vt->create(s->ctx, gvr, ns, obj, wo, out, eb);
}

int bdy_store_update(bdy_store *s, const bdy_gvr *gvr, const char *ns, json_object *obj,
                     const bdy_write_opts *wo, json_object **out, bdy_errbuf *eb)
{
    return s->vt->update(s->ctx, gvr, ns, obj, wo, out, eb);
}

int bdy_store_update_status(bdy_store *s, const bdy_gvr *gvr, const char *ns, json_object *obj,
                            const bdy_write_opts *wo, json_object **out, bdy_errbuf *eb)
{
    return s->vt->update_status(s->ctx, gvr, ns, obj, wo, out, eb);
}

int bdy_store_patch(bdy_store *s, const bdy_gvr *gvr, const char *ns, const char *name,
                    bdy_patch_type type, json_object *patch, bool status_only,
                    const bdy_write_opts *wo, json_object **out, bdy_errbuf *eb)
{
    return s->vt->patch(s->ctx, gvr, ns, name, type, patch, status_only, wo, out, eb);
}

int bdy_store_patch_many(bdy_store *s, bdy_store_patch_item *items, size_t n)
{
    if (s->vt->patch_many != NULL)
        return s->vt->patch_many(s->ctx, items, n);
    for (size_t i = 0; i < n; i++)
        items[i].rc = s->vt->patch(s->ctx, items[i].gvr, items[i].ns, items[i].name, items[i].type,
                                   items[i].patch, items[i].status_only, NULL, NULL, NULL);
    return 0;
}

int bdy_store_delete(bdy_store *s, const bdy_gvr *gvr, const char *ns, const char *name,
                     const bdy_delete_opts *opts, json_object **out, bool *deleted, bdy_errbuf *eb)
{
    return s->vt->remove(s->ctx, gvr, ns, name, opts, out, deleted, eb);
}

int bdy_store_watch(bdy_store *s, const bdy_gvr *gvr, const char *ns, const char *label_selector,
                    const char *field_selector, uint64_t from_rv, bdy_watch **out, bdy_errbuf *eb)
{
    return s->vt->watch(s->ctx, gvr, ns, label_selector, field_selector, from_rv, out, eb);
}

int bdy_store_watch_next(bdy_store *s, bdy_watch *w, int timeout_ms, bdy_watch_event *ev)
{
    return s->vt->watch_next(s->ctx, w, timeout_ms, ev);
}

void bdy_store_watch_close(bdy_store *s, bdy_watch *w)
{
    s->vt->watch_close(s->ctx, w);
}

int bdy_store_resource_info(bdy_store *s, const bdy_gvr *gvr, bdy_resource_info *out)
{
    return s->vt->resource_info(s->ctx, gvr, out);
}

int bdy_store_resolve_kind(bdy_store *s, const char *api_version, const char *kind,
                           bdy_resource_info *out)
{
    return s->vt->resolve_kind(s->ctx, api_version, kind, out);
}

int bdy_store_current_rv(bdy_store *s, uint64_t *out)
{
    return s->vt->current_rv(s->ctx, out);
}

int bdy_store_written_rv(bdy_store *s, uint64_t *out)
{
    return s->vt->written_rv != NULL ? s->vt->written_rv(s->ctx, out)
                                     : s->vt->current_rv(s->ctx, out);
}

int bdy_store_ping(bdy_store *s, bdy_errbuf *eb)
{
    return s->vt->ping(s->ctx, eb);
}

static const char *member_str(json_object *obj, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

int bdy_store_apply(bdy_store *s, json_object *obj, const bdy_write_opts *wo, bool *created,
                    bool *changed, bdy_errbuf *eb)
{
    int rc = 0;
    json_object *current = NULL;
    json_object *desired = NULL;
    json_object *stored = NULL;
    json_object *meta = NULL;
    bdy_resource_info info;
    bool unused = false;
    if (changed == NULL)
        changed = &unused;
    *created = false;
    *changed = false;
    const char *api_version = member_str(obj, "apiVersion");
    const char *kind = member_str(obj, "kind");
    if (api_version == NULL || kind == NULL)
        return bdy_fail(eb, BDY_EINVAL, "manifest has no apiVersion or kind");
    if (bdy_store_resolve_kind(s, api_version, kind, &info) != 0)
        return bdy_fail(eb, BDY_ENOTFOUND, "no resource serves %s %s (is its CRD applied?)",
                        api_version, kind);
    if (!json_object_object_get_ex(obj, "metadata", &meta))
        return bdy_fail(eb, BDY_EINVAL, "%s has no metadata", kind);
    const char *name = member_str(meta, "name");
    const char *ns = info.namespaced ? member_str(meta, "namespace") : NULL;
    if (info.namespaced && ns == NULL)
        ns = "default";
    if (name == NULL)
        return bdy_fail(eb, BDY_EINVAL, "%s has no metadata.name", kind);
    bdy_gvr gvr = {info.group, info.version, info.resource};
    rc = bdy_store_get(s, &gvr, ns, name, &current, NULL);
    if (rc == BDY_ENOTFOUND) {
        rc = bdy_store_create(s, &gvr, ns, obj, wo, NULL, eb);
        *created = rc == 0;
        *changed = rc == 0;
        goto out;
    }
    if (rc != 0)
        goto out;
    /* Update the stored object to the manifest, keeping server-set metadata
     * and status: re-applying an unchanged manifest changes nothing. */
    if (json_object_deep_copy(obj, &desired, NULL) != 0) {
        rc = BDY_ENOMEM;
        goto out;
    }
    json_object *dmeta = NULL;
    json_object_object_get_ex(desired, "metadata", &dmeta);
    json_object *cmeta = NULL;
    json_object_object_get_ex(current, "metadata", &cmeta);
    json_object *rv = NULL;
    if (json_object_object_get_ex(cmeta, "resourceVersion", &rv))
        json_object_object_add(dmeta, "resourceVersion", json_object_get(rv));
    json_object *status = NULL;
    if (json_object_object_get_ex(current, "status", &status) && !info.status_subresource &&
        !json_object_object_get_ex(desired, "status", NULL))
        json_object_object_add(desired, "status", json_object_get(status));
    rc = bdy_store_update(s, &gvr, ns, desired, wo, &stored, eb);
    if (rc == 0) {
        json_object *smeta = NULL;
        json_object_object_get_ex(stored, "metadata", &smeta);
        const char *now = member_str(smeta, "resourceVersion");
        const char *was = member_str(cmeta, "resourceVersion");
        *changed = now == NULL || was == NULL || strcmp(now, was) != 0;
    }
out:
    json_object_put(current);
    json_object_put(desired);
    json_object_put(stored);
    return rc;
}
