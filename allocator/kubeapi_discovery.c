/* Discovery and OpenAPI: what a client asks before anything else.
 *
 * Everything here is built on each request from the built-in kinds and the
 * CRDs the store holds at that moment, so creating or deleting a CRD
 * changes discovery at once (there is no cache to invalidate). kubectl
 * caches discovery on its side and asks rarely. */
#include "kubeapi_internal.h"

#include "bindery/jsonutil.h"
#include "bindery/log.h"
#include "bindery/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef BINDERY_VERSION
#define BINDERY_VERSION "dev"
#endif

#define DISCOVERY_V2_TYPE "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

typedef struct builtin_resource {
    const char *group;
    const char *version;
    const char *resource;
    const char *singular;
    const char *kind;
    bool namespaced;
    bool status;
    const char *short_names[3];
    const char *categories[2];
} builtin_resource;

static const builtin_resource builtins[] = {
    {"", "v1", "namespaces", "namespace", "Namespace", false, true, {"ns", NULL}, {NULL}},
    {"", "v1", "pods", "pod", "Pod", true, true, {"po", NULL}, {"all", NULL}},
    {"", "v1", "secrets", "secret", "Secret", true, false, {NULL}, {NULL}},
    {"", "v1", "configmaps", "configmap", "ConfigMap", true, false, {"cm", NULL}, {NULL}},
    {"", "v1", "events", "event", "Event", true, false, {"ev", NULL}, {NULL}},
    {"coordination.k8s.io", "v1", "leases", "lease", "Lease", true, false, {NULL}, {NULL}},
    {"apiextensions.k8s.io",
     "v1",
     "customresourcedefinitions",
     "customresourcedefinition",
     "CustomResourceDefinition",
     false,
     true,
     {"crd", "crds", NULL},
     {"api-extensions", NULL}},
};

static const char *const main_verbs[] = {"create", "delete", "get",   "list",
                                         "patch",  "update", "watch", NULL};
static const char *const status_verbs[] = {"get", "patch", "update", NULL};

json_object *bdy__kube_strings(const char *const *v)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; v != NULL && v[i] != NULL; i++)
        json_object_array_add(a, json_object_new_string(v[i]));
    return a;
}

static json_object *string_list(char **v, size_t n)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < n; i++)
        json_object_array_add(a, json_object_new_string(v[i]));
    return a;
}

/* One served resource: {group, version, resource, singular, kind,
 * namespaced, status, shortNames, categories, storage}. */
static json_object *entry(const char *group, const char *version, const char *resource,
                          const char *singular, const char *kind, bool namespaced, bool status,
                          json_object *short_names, json_object *categories, bool preferred)
{
    json_object *e = json_object_new_object();
    json_object_object_add(e, "group", json_object_new_string(group));
    json_object_object_add(e, "version", json_object_new_string(version));
    json_object_object_add(e, "resource", json_object_new_string(resource));
    json_object_object_add(e, "singular", json_object_new_string(singular));
    json_object_object_add(e, "kind", json_object_new_string(kind));
    json_object_object_add(e, "namespaced", json_object_new_boolean(namespaced));
    json_object_object_add(e, "status", json_object_new_boolean(status));
    json_object_object_add(e, "shortNames", short_names);
    json_object_object_add(e, "categories", categories);
    json_object_object_add(e, "preferred", json_object_new_boolean(preferred));
    return e;
}

static bool same(json_object *e, const char *key, const char *value)
{
    const char *v = bdy_jstr(e, key);
    return v != NULL && strcmp(v, value) == 0;
}

/* The openAPIV3Schema of version name in a stored CRD, or NULL. Borrowed. */
static json_object *version_schema(json_object *crd, const char *name)
{
    json_object *versions = bdy_jget(bdy_jget(crd, "spec"), "versions");
    for (size_t i = 0; i < json_object_array_length(versions); i++) {
        json_object *v = json_object_array_get_idx(versions, i);
        if (same(v, "name", name))
            return bdy_jget(bdy_jget(v, "schema"), "openAPIV3Schema");
    }
    return NULL;
}

/* Every resource served now, built-ins first, then each CRD's served
 * versions (with its schema, for the OpenAPI documents). Returns a new
 * array or NULL with rc set. */
static json_object *served_resources(bdy_kubeapi *k, int *rc_out)
{
    json_object *all = json_object_new_array();
    bdy_list_result lr = {0};
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++) {
        const builtin_resource *b = &builtins[i];
        json_object_array_add(all,
                              entry(b->group, b->version, b->resource, b->singular, b->kind,
                                    b->namespaced, b->status, bdy__kube_strings(b->short_names),
                                    bdy__kube_strings(b->categories), true));
    }
    bdy_list_opts lo = {0};
    int rc = bdy_store_list(k->store, &BDY_GVR_CRDS, &lo, &lr, &eb);
    if (rc != 0) {
        json_object_put(all);
        *rc_out = rc;
        return NULL;
    }
    for (size_t i = 0; i < json_object_array_length(lr.items); i++) {
        bdy_crd *crd = NULL;
        json_object *obj = json_object_array_get_idx(lr.items, i);
        if (bdy_crd_compile(obj, &crd, NULL) != 0)
            continue; /* stored CRDs compiled when written; skip a stray one */
        for (size_t v = 0; v < crd->nversions; v++) {
            const bdy_crd_version *ver = &crd->versions[v];
            /* The store serves a CRD at its storage version only (it
             * converts between none), so discovery names no other: a
             * client asking for another version learns it from discovery
             * ("no matches for kind"), not from a 404 on its request. */
            if (!ver->served || !ver->storage)
                continue;
            json_object *e =
                entry(crd->group, ver->name, crd->plural, crd->singular, crd->kind, crd->namespaced,
                      ver->status_subresource, string_list(crd->short_names, crd->nshort_names),
                      string_list(crd->categories, crd->ncategories), ver->storage);
            json_object *schema = version_schema(obj, ver->name);
            if (schema != NULL)
                json_object_object_add(e, "schema", json_object_get(schema));
            json_object_array_add(all, e);
        }
        bdy_crd_free(crd);
    }
    bdy_list_result_free(&lr);
    *rc_out = 0;
    return all;
}

static void reply(bdy_http_response *resp, json_object *body, const char *content_type)
{
    if (body == NULL) {
        bdy__kube_fail(resp, BDY_ENOMEM, NULL, NULL, NULL);
        return;
    }
    bdy_http_json(resp, 200, body);
    if (resp->status == 200)
        resp->content_type = content_type;
    json_object_put(body);
}

static bool wants_v2(const bdy_http_request *req)
{
    bdy_kube_accept acc;
    bdy_kube_parse_accept(bdy_http_header(req, "Accept"), &acc);
    return acc.discovery_v2;
}

void bdy__kube_version_cb(void *data, const bdy_http_request *req, bdy_http_response *resp)
{
    (void)data;
    (void)req;
    json_object *v = json_object_new_object();
    json_object_object_add(v, "major", json_object_new_string("1"));
    json_object_object_add(v, "minor", json_object_new_string(BDY_KUBEAPI_MINOR));
    json_object_object_add(
        v, "gitVersion",
        json_object_new_string("v1." BDY_KUBEAPI_MINOR ".0+bindery-" BINDERY_VERSION));
    json_object_object_add(v, "gitCommit", json_object_new_string(""));
    json_object_object_add(v, "gitTreeState", json_object_new_string("clean"));
    json_object_object_add(v, "buildDate", json_object_new_string("1970-01-01T00:00:00Z"));
    json_object_object_add(v, "goVersion", json_object_new_string("none"));
    json_object_object_add(v, "compiler", json_object_new_string("gcc"));
    json_object_object_add(v, "platform", json_object_new_string("linux/amd64"));
    reply(resp, v, "application/json");
}

/* An aggregated-discovery resource entry. */
static json_object *v2_resource(json_object *e)
{
    const char *group = bdy_jstr(e, "group");
    const char *version = bdy_jstr(e, "version");
    json_object *r = json_object_new_object();
    json_object *kind = json_object_new_object();
    json_object_object_add(kind, "group", json_object_new_string(group));
    json_object_object_add(kind, "version", json_object_new_string(version));
    json_object_object_add(kind, "kind", json_object_new_string(bdy_jstr(e, "kind")));
    json_object_object_add(r, "resource", json_object_new_string(bdy_jstr(e, "resource")));
    json_object_object_add(r, "responseKind", kind);
    bool namespaced = json_object_get_boolean(bdy_jget(e, "namespaced"));
    json_object_object_add(r, "scope",
                           json_object_new_string(namespaced ? "Namespaced" : "Cluster"));
    json_object_object_add(r, "singularResource", json_object_new_string(bdy_jstr(e, "singular")));
    json_object_object_add(r, "verbs", bdy__kube_strings(main_verbs));
    if (json_object_array_length(bdy_jget(e, "shortNames")) > 0)
        json_object_object_add(r, "shortNames", json_object_get(bdy_jget(e, "shortNames")));
    if (json_object_array_length(bdy_jget(e, "categories")) > 0)
        json_object_object_add(r, "categories", json_object_get(bdy_jget(e, "categories")));
    if (json_object_get_boolean(bdy_jget(e, "status"))) {
        json_object *subs = json_object_new_array();
        json_object *sub = json_object_new_object();
        json_object *sk = NULL;
        json_object_deep_copy(kind, &sk, NULL);
        json_object_object_add(sub, "subresource", json_object_new_string("status"));
        json_object_object_add(sub, "responseKind", sk);
        json_object_object_add(sub, "verbs", bdy__kube_strings(status_verbs));
        json_object_array_add(subs, sub);
        json_object_object_add(r, "subresources", subs);
    }
    return r;
}

/* The APIGroupDiscoveryList of the core group (core true) or of every
 * named group. */
static json_object *discovery_v2(json_object *all, bool core)
{
    json_object *list = json_object_new_object();
    json_object *items = json_object_new_array();
    json_object_object_add(list, "kind", json_object_new_string("APIGroupDiscoveryList"));
    json_object_object_add(list, "apiVersion", json_object_new_string("apidiscovery.k8s.io/v2"));
    json_object_object_add(list, "metadata", json_object_new_object());
    size_t n = json_object_array_length(all);
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(all, i);
        const char *group = bdy_jstr(e, "group");
        if (core != (group[0] == '\0'))
            continue;
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = same(json_object_array_get_idx(all, j), "group", group);
        if (seen)
            continue;
        json_object *item = json_object_new_object();
        json_object *meta = json_object_new_object();
        if (!core)
            json_object_object_add(meta, "name", json_object_new_string(group));
        json_object_object_add(item, "metadata", meta);
        json_object *versions = json_object_new_array();
        /* Versions of the group in order of first appearance, the
         * preferred (storage) one first as kubectl takes the first. */
        for (int pass = 0; pass < 2; pass++) {
            for (size_t j = i; j < n; j++) {
                json_object *ej = json_object_array_get_idx(all, j);
                const char *ver = bdy_jstr(ej, "version");
                bool pref = json_object_get_boolean(bdy_jget(ej, "preferred"));
                if (!same(ej, "group", group) || pref != (pass == 0))
                    continue;
                json_object *vobj = NULL;
                for (size_t x = 0; x < json_object_array_length(versions) && vobj == NULL; x++) {
                    json_object *cand = json_object_array_get_idx(versions, x);
                    if (same(cand, "version", ver))
                        vobj = cand;
                }
                if (vobj == NULL) {
                    vobj = json_object_new_object();
                    json_object_object_add(vobj, "version", json_object_new_string(ver));
                    json_object_object_add(vobj, "resources", json_object_new_array());
                    json_object_object_add(vobj, "freshness", json_object_new_string("Current"));
                    json_object_array_add(versions, vobj);
                }
                json_object_array_add(bdy_jget(vobj, "resources"), v2_resource(ej));
            }
        }
        json_object_object_add(item, "versions", versions);
        json_object_array_add(items, item);
    }
    json_object_object_add(list, "items", items);
    return list;
}

void bdy__kube_api_cb(void *data, const bdy_http_request *req, bdy_http_response *resp)
{
    bdy_kubeapi *k = data;
    int rc = 0;
    if (wants_v2(req)) {
        json_object *all = served_resources(k, &rc);
        if (all == NULL) {
            bdy__kube_fail(resp, rc, NULL, NULL, NULL);
            return;
        }
        reply(resp, discovery_v2(all, true), DISCOVERY_V2_TYPE);
        json_object_put(all);
        return;
    }
    json_object *v = json_object_new_object();
    json_object_object_add(v, "kind", json_object_new_string("APIVersions"));
    const char *const versions[] = {"v1", NULL};
    json_object_object_add(v, "versions", bdy__kube_strings(versions));
    json_object *addrs = json_object_new_array();
    json_object *a = json_object_new_object();
    json_object_object_add(a, "clientCIDR", json_object_new_string("0.0.0.0/0"));
    const char *host = bdy_http_header(req, "Host");
    json_object_object_add(a, "serverAddress", json_object_new_string(host ? host : ""));
    json_object_array_add(addrs, a);
    json_object_object_add(v, "serverAddressByClientCIDRs", addrs);
    reply(resp, v, "application/json");
}

void bdy__kube_apis_cb(void *data, const bdy_http_request *req, bdy_http_response *resp)
{
    bdy_kubeapi *k = data;
    int rc = 0;
    json_object *all = served_resources(k, &rc);
    if (all == NULL) {
        bdy__kube_fail(resp, rc, NULL, NULL, NULL);
        return;
    }
    if (wants_v2(req)) {
        reply(resp, discovery_v2(all, false), DISCOVERY_V2_TYPE);
        json_object_put(all);
        return;
    }
    /* The legacy APIGroupList, derived from the aggregated form. */
    json_object *v2 = discovery_v2(all, false);
    json_object *list = json_object_new_object();
    json_object *groups = json_object_new_array();
    json_object_object_add(list, "kind", json_object_new_string("APIGroupList"));
    json_object_object_add(list, "apiVersion", json_object_new_string("v1"));
    json_object *items = bdy_jget(v2, "items");
    for (size_t i = 0; i < json_object_array_length(items); i++) {
        json_object *it = json_object_array_get_idx(items, i);
        const char *name = bdy_jstr(bdy_jget(it, "metadata"), "name");
        json_object *g = json_object_new_object();
        json_object *vs = json_object_new_array();
        json_object *versions = bdy_jget(it, "versions");
        for (size_t j = 0; j < json_object_array_length(versions); j++) {
            const char *ver = bdy_jstr(json_object_array_get_idx(versions, j), "version");
            json_object *gv = json_object_new_object();
            char buf[400];
            snprintf(buf, sizeof(buf), "%s/%s", name, ver);
            json_object_object_add(gv, "groupVersion", json_object_new_string(buf));
            json_object_object_add(gv, "version", json_object_new_string(ver));
            if (j == 0) {
                json_object *pref = NULL;
                json_object_deep_copy(gv, &pref, NULL);
                json_object_object_add(g, "preferredVersion", pref);
            }
            json_object_array_add(vs, gv);
        }
        json_object_object_add(g, "name", json_object_new_string(name));
        json_object_object_add(g, "versions", vs);
        json_object_array_add(groups, g);
    }
    json_object_object_add(list, "groups", groups);
    json_object_put(v2);
    json_object_put(all);
    reply(resp, list, "application/json");
}

void bdy__kube_resource_list(bdy_kubeapi *k, const char *group, const char *version,
                             bdy_http_response *resp)
{
    int rc = 0;
    json_object *all = served_resources(k, &rc);
    if (all == NULL) {
        bdy__kube_fail(resp, rc, NULL, NULL, NULL);
        return;
    }
    json_object *list = json_object_new_object();
    json_object *res = json_object_new_array();
    char gv[400];
    snprintf(gv, sizeof(gv), "%s%s%s", group, group[0] ? "/" : "", version);
    json_object_object_add(list, "kind", json_object_new_string("APIResourceList"));
    json_object_object_add(list, "apiVersion", json_object_new_string("v1"));
    json_object_object_add(list, "groupVersion", json_object_new_string(gv));
    bool any = false;
    for (size_t i = 0; i < json_object_array_length(all); i++) {
        json_object *e = json_object_array_get_idx(all, i);
        if (!same(e, "group", group) || !same(e, "version", version))
            continue;
        any = true;
        json_object *r = json_object_new_object();
        json_object_object_add(r, "name", json_object_new_string(bdy_jstr(e, "resource")));
        json_object_object_add(r, "singularName", json_object_new_string(bdy_jstr(e, "singular")));
        json_object_object_add(r, "namespaced", json_object_get(bdy_jget(e, "namespaced")));
        json_object_object_add(r, "kind", json_object_new_string(bdy_jstr(e, "kind")));
        json_object_object_add(r, "verbs", bdy__kube_strings(main_verbs));
        if (json_object_array_length(bdy_jget(e, "shortNames")) > 0)
            json_object_object_add(r, "shortNames", json_object_get(bdy_jget(e, "shortNames")));
        if (json_object_array_length(bdy_jget(e, "categories")) > 0)
            json_object_object_add(r, "categories", json_object_get(bdy_jget(e, "categories")));
        json_object_array_add(res, r);
        if (json_object_get_boolean(bdy_jget(e, "status"))) {
            json_object *s = json_object_new_object();
            char name[300];
            snprintf(name, sizeof(name), "%s/status", bdy_jstr(e, "resource"));
            json_object_object_add(s, "name", json_object_new_string(name));
            json_object_object_add(s, "singularName", json_object_new_string(""));
            json_object_object_add(s, "namespaced", json_object_get(bdy_jget(e, "namespaced")));
            json_object_object_add(s, "kind", json_object_new_string(bdy_jstr(e, "kind")));
            json_object_object_add(s, "verbs", bdy__kube_strings(status_verbs));
            json_object_array_add(res, s);
        }
    }
    json_object_object_add(list, "resources", res);
    json_object_put(all);
    if (!any) {
        json_object_put(list);
        bdy__kube_fail_msg(resp, 404, "NotFound",
                           "the server could not find the requested resource");
        return;
    }
    reply(resp, list, "application/json");
}

/* ---- OpenAPI v3 ------------------------------------------------------------------ */

/* The built-ins whose OpenAPI patch operation names strategic merge patch:
 * those kubectl apply patches that way (its own types), so that it computes
 * the patch from the served document as against a cluster. */
static bool takes_strategic_merge(const char *group, const char *resource)
{
    static const struct {
        const char *group;
        const char *resource;
    } smp[] = {
        {"", "pods"},
        {"", "secrets"},
        {"", "configmaps"},
        {"coordination.k8s.io", "leases"},
    };
    for (size_t i = 0; i < sizeof(smp) / sizeof(smp[0]); i++) {
        if (strcmp(smp[i].group, group) == 0 && strcmp(smp[i].resource, resource) == 0)
            return true;
    }
    return false;
}

static json_object *operation(json_object *e, bool patch)
{
    json_object *op = json_object_new_object();
    json_object *gvk = json_object_new_object();
    json_object_object_add(gvk, "group", json_object_new_string(bdy_jstr(e, "group")));
    json_object_object_add(gvk, "version", json_object_new_string(bdy_jstr(e, "version")));
    json_object_object_add(gvk, "kind", json_object_new_string(bdy_jstr(e, "kind")));
    json_object_object_add(op, "x-kubernetes-group-version-kind", gvk);
    json_object *params = json_object_new_array();
    const char *const names[] = {"dryRun", "fieldManager", "fieldValidation", NULL};
    for (size_t i = 0; names[i] != NULL; i++) {
        json_object *p = json_object_new_object();
        json_object *schema = json_object_new_object();
        json_object_object_add(schema, "type", json_object_new_string("string"));
        json_object_object_add(p, "name", json_object_new_string(names[i]));
        json_object_object_add(p, "in", json_object_new_string("query"));
        json_object_object_add(p, "schema", schema);
        json_object_array_add(params, p);
    }
    json_object_object_add(op, "parameters", params);
    json_object *content = json_object_new_object();
    bool smp = takes_strategic_merge(bdy_jstr(e, "group"), bdy_jstr(e, "resource"));
    const char *const patch_types[] = {"application/merge-patch+json",
                                       "application/json-patch+json",
                                       smp ? "application/strategic-merge-patch+json" : NULL, NULL};
    const char *const body_types[] = {"application/json", NULL};
    const char *const *types = patch ? patch_types : body_types;
    for (size_t i = 0; types[i] != NULL; i++) {
        json_object *c = json_object_new_object();
        json_object *schema = json_object_new_object();
        json_object_object_add(schema, "type", json_object_new_string("object"));
        json_object_object_add(c, "schema", schema);
        json_object_object_add(content, types[i], c);
    }
    json_object *body = json_object_new_object();
    json_object_object_add(body, "content", content);
    json_object_object_add(op, "requestBody", body);
    json_object *responses = json_object_new_object();
    json_object *ok = json_object_new_object();
    json_object_object_add(ok, "description", json_object_new_string("OK"));
    json_object_object_add(responses, "200", ok);
    json_object_object_add(op, "responses", responses);
    return op;
}

/* Puts one of the properties every object has into a schema's properties,
 * as the API server does in place of what the CRD says of them. */
static void add_meta_property(json_object *props, const char *name, const char *type,
                              const char *description)
{
    json_object *p = json_object_new_object();
    json_object_object_add(p, "type", json_object_new_string(type));
    json_object_object_add(p, "description", json_object_new_string(description));
    json_object_object_add(props, name, p);
}

/* A custom resource's schema as the API server publishes it, under the
 * name kubectl explain looks it up by (its x-kubernetes-group-version-kind):
 * the CRD's openAPIV3Schema with apiVersion, kind and metadata described.
 * "bindery.dev", "v1alpha1", "WorldInstance" is published as
 * "dev.bindery.v1alpha1.WorldInstance". */
static void add_component(json_object *schemas, json_object *e)
{
    json_object *copy = NULL;
    if (json_object_deep_copy(bdy_jget(e, "schema"), &copy, NULL) != 0 ||
        !json_object_is_type(copy, json_type_object)) {
        json_object_put(copy);
        return;
    }
    const char *group = bdy_jstr(e, "group");
    char name[600];
    size_t n = 0;
    /* The group's labels in reverse order. */
    for (const char *end = group + strlen(group); end > group && n < sizeof(name);) {
        const char *dot = end;
        while (dot > group && dot[-1] != '.')
            dot--;
        n += (size_t)snprintf(name + n, sizeof(name) - n, "%.*s.", (int)(end - dot), dot);
        end = dot > group ? dot - 1 : group;
    }
    if (n < sizeof(name))
        snprintf(name + n, sizeof(name) - n, "%s.%s", bdy_jstr(e, "version"), bdy_jstr(e, "kind"));
    json_object *props = bdy_jget(copy, "properties");
    if (props == NULL) {
        props = json_object_new_object();
        json_object_object_add(copy, "properties", props);
    }
    add_meta_property(props, "apiVersion", "string",
                      "APIVersion defines the versioned schema of this representation of an "
                      "object.");
    add_meta_property(props, "kind", "string",
                      "Kind is a string value representing the REST resource this object "
                      "represents.");
    add_meta_property(props, "metadata", "object",
                      "Standard object's metadata: name, namespace, labels, annotations, ...");
    json_object *gvk = json_object_new_object();
    json_object_object_add(gvk, "group", json_object_new_string(group));
    json_object_object_add(gvk, "kind", json_object_new_string(bdy_jstr(e, "kind")));
    json_object_object_add(gvk, "version", json_object_new_string(bdy_jstr(e, "version")));
    json_object *gvks = json_object_new_array();
    json_object_array_add(gvks, gvk);
    json_object_object_add(copy, "x-kubernetes-group-version-kind", gvks);
    json_object_object_add(schemas, name, copy);
}

/* The document of one group-version ("api/v1", "apis/g/v"), or NULL when
 * no resource is served there. */
static json_object *gv_document(json_object *all, const char *gv_path)
{
    json_object *doc = json_object_new_object();
    json_object *info = json_object_new_object();
    json_object *paths = json_object_new_object();
    json_object *schemas = json_object_new_object();
    bool any = false;
    json_object_object_add(doc, "openapi", json_object_new_string("3.0.0"));
    json_object_object_add(info, "title", json_object_new_string("Bindery"));
    json_object_object_add(info, "version", json_object_new_string("v1." BDY_KUBEAPI_MINOR ".0"));
    json_object_object_add(doc, "info", info);
    for (size_t i = 0; i < json_object_array_length(all); i++) {
        json_object *e = json_object_array_get_idx(all, i);
        const char *group = bdy_jstr(e, "group");
        char mine[400];
        snprintf(mine, sizeof(mine), "%s%s/%s", group[0] ? "apis/" : "api", group,
                 bdy_jstr(e, "version"));
        if (strcmp(mine, gv_path) != 0)
            continue;
        any = true;
        bool namespaced = json_object_get_boolean(bdy_jget(e, "namespaced"));
        char coll[700];
        char item[760];
        snprintf(coll, sizeof(coll), "/%s/%s%s", mine, namespaced ? "namespaces/{namespace}/" : "",
                 bdy_jstr(e, "resource"));
        snprintf(item, sizeof(item), "%s/{name}", coll);
        json_object *cp = json_object_new_object();
        json_object_object_add(cp, "post", operation(e, false));
        json_object_object_add(paths, coll, cp);
        json_object *ip = json_object_new_object();
        json_object_object_add(ip, "put", operation(e, false));
        json_object_object_add(ip, "patch", operation(e, true));
        json_object_object_add(paths, item, ip);
        if (bdy_jget(e, "schema") != NULL)
            add_component(schemas, e);
    }
    json_object_object_add(doc, "paths", paths);
    json_object *components = json_object_new_object();
    json_object_object_add(components, "schemas", schemas);
    json_object_object_add(doc, "components", components);
    if (!any) {
        json_object_put(doc);
        return NULL;
    }
    return doc;
}

static void gv_hash(json_object *doc, char out[17])
{
    char hex[65];
    const char *text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN);
    bdy_sha256_hex(text, strlen(text), hex);
    memcpy(out, hex, 16);
    out[16] = '\0';
}

void bdy__kube_openapi_cb(void *data, const bdy_http_request *req, bdy_http_response *resp)
{
    bdy_kubeapi *k = data;
    int rc = 0;
    const char *path = req->path;
    if (strncmp(path, "/openapi/v3", 11) != 0 || (path[11] != '\0' && path[11] != '/')) {
        bdy__kube_fail_msg(resp, 404, "NotFound",
                           "the server could not find the requested resource");
        return;
    }
    json_object *all = served_resources(k, &rc);
    if (all == NULL) {
        bdy__kube_fail(resp, rc, NULL, NULL, NULL);
        return;
    }
    if (path[11] == '/') {
        json_object *doc = gv_document(all, path + 12);
        json_object_put(all);
        if (doc == NULL) {
            bdy__kube_fail_msg(resp, 404, "NotFound",
                               "the server could not find the requested resource");
            return;
        }
        reply(resp, doc, "application/json");
        return;
    }
    json_object *root = json_object_new_object();
    json_object *paths = json_object_new_object();
    for (size_t i = 0; i < json_object_array_length(all); i++) {
        json_object *e = json_object_array_get_idx(all, i);
        const char *group = bdy_jstr(e, "group");
        char gv[400];
        snprintf(gv, sizeof(gv), "%s%s/%s", group[0] ? "apis/" : "api", group,
                 bdy_jstr(e, "version"));
        if (bdy_jget(paths, gv) != NULL)
            continue;
        json_object *doc = gv_document(all, gv);
        char hash[17];
        gv_hash(doc, hash);
        json_object_put(doc);
        char url[500];
        snprintf(url, sizeof(url), "/openapi/v3/%s?hash=%s", gv, hash);
        json_object *ref = json_object_new_object();
        json_object_object_add(ref, "serverRelativeURL", json_object_new_string(url));
        json_object_object_add(paths, gv, ref);
    }
    json_object_object_add(root, "paths", paths);
    json_object_put(all);
    reply(resp, root, "application/json");
}
