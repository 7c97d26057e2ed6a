/* What kubectl auth can-i (--list) and kubectl auth whoami ask the API
 * server: a SelfSubjectAccessReview and a SelfSubjectRulesReview
 * (authorization.k8s.io/v1) and a SelfSubjectReview
 * (authentication.k8s.io/v1), answered from the caller's token or client
 * certificate entry. Kubernetes verbs map onto bindery's as the rest of the
 * API does: get, list and watch need read; every other verb needs admin,
 * in the namespace asked about, or in all namespaces when none is. */
#include "kubeapi_internal.h"

#include "bindery/auth.h"
#include "bindery/jsonutil.h"
#include "bindery/util.h"

#include <stdio.h>
#include <string.h>

/* Reviews are small: a larger body is no review. */
#define REVIEW_MAX_DEPTH 8

/* The three reviews, as the protobuf decoder and the answers name them. */
static const bdy_resource_info ACCESS_REVIEW = {.group = "authorization.k8s.io",
                                                .version = "v1",
                                                .resource = "selfsubjectaccessreviews",
                                                .kind = "SelfSubjectAccessReview"};
static const bdy_resource_info SELF_REVIEW = {.group = "authentication.k8s.io",
                                              .version = "v1",
                                              .resource = "selfsubjectreviews",
                                              .kind = "SelfSubjectReview"};
static const bdy_resource_info RULES_REVIEW = {.group = "authorization.k8s.io",
                                               .version = "v1",
                                               .resource = "selfsubjectrulesreviews",
                                               .kind = "SelfSubjectRulesReview"};

/* The body as a JSON object, or NULL (resp answered 400). kubectl's
 * typed client sends protobuf; a JSON client JSON. */
static json_object *review_body(const bdy_http_request *req, bdy_http_response *resp,
                                const bdy_resource_info *info)
{
    json_object *o = NULL;
    const char *type = req->content_type != NULL ? req->content_type : "";
    if (strncmp(type, BDY__KUBE_PROTOBUF_TYPE, strlen(BDY__KUBE_PROTOBUF_TYPE)) == 0) {
        bdy_errbuf eb;
        bdy_errbuf_clear(&eb);
        if (bdy__kube_proto_decode(info, req->body, req->body_len, &o, &eb) != 0) {
            bdy__kube_fail_msg(resp, 400, "BadRequest", eb.message);
            return NULL;
        }
        return o;
    }
    if (bdy_utf8_valid(req->body, req->body_len)) {
        json_tokener *tok = json_tokener_new_ex(REVIEW_MAX_DEPTH);
        if (tok != NULL) {
            o = json_tokener_parse_ex(tok, req->body, (int)req->body_len);
            if (o != NULL && json_tokener_get_parse_end(tok) != req->body_len) {
                json_object_put(o);
                o = NULL;
            }
            json_tokener_free(tok);
        }
    }
    if (o != NULL && json_object_is_type(o, json_type_object))
        return o;
    json_object_put(o);
    bdy__kube_fail_msg(resp, 400, "BadRequest", "the request body is not a JSON object");
    return NULL;
}

/* Whether p may do verb (a Kubernetes verb) on resource in ns (NULL or "":
 * all namespaces), and why, into reason. */
static bool may(const bdy_principal *p, const char *verb, const char *group, const char *resource,
                const char *name, const char *ns, char *reason, size_t cap)
{
    bool reads = verb != NULL && (strcmp(verb, "get") == 0 || strcmp(verb, "list") == 0 ||
                                  strcmp(verb, "watch") == 0);
    if (ns != NULL && ns[0] == '\0')
        ns = NULL;
    ns = bdy__kube_authz_namespace(reads && strcmp(verb, "get") == 0, group, resource, name, ns);
    if (p == NULL) {
        snprintf(reason, cap,
                 "authentication is off (a loopback listener): every request is "
                 "allowed");
        return true;
    }
    bdy_verb need = reads ? BDY_VERB_READ : BDY_VERB_ADMIN;
    bool allowed = bdy_principal_allows(p, need, ns);
    snprintf(reason, cap, "%s \"%s\" %s %s in %s%s", bdy_principal_kind(p), bdy_principal_name(p),
             allowed ? "may" : "may not", reads ? "read" : "admin",
             ns != NULL ? "namespace " : "all namespaces", ns != NULL ? ns : "");
    return allowed;
}

/* Answers review (owned, put here) 201 as a review of info, with status. */
static void answer_review(bdy_http_response *resp, json_object *review,
                          const bdy_resource_info *info, json_object *status)
{
    char api_version[200];
    bdy__kube_api_version(info, api_version, sizeof(api_version));
    json_object_object_add(review, "apiVersion", json_object_new_string(api_version));
    json_object_object_add(review, "kind", json_object_new_string(info->kind));
    json_object_object_add(review, "status", status);
    bdy_http_json(resp, 201, review);
    json_object_put(review);
}

void bdy__kube_access_review_cb(void *data, const bdy_http_request *req, bdy_http_response *resp)
{
    (void)data;
    json_object *review = review_body(req, resp, &ACCESS_REVIEW);
    if (review == NULL)
        return;
    json_object *spec = bdy_jget(review, "spec");
    json_object *attrs = bdy_jget(spec, "resourceAttributes");
    json_object *non_resource = bdy_jget(spec, "nonResourceAttributes");
    char reason[400];
    bool allowed = false;
    if (attrs != NULL) {
        allowed = may(req->principal, bdy_jstr(attrs, "verb"), bdy_jstr(attrs, "group"),
                      bdy_jstr(attrs, "resource"), bdy_jstr(attrs, "name"),
                      bdy_jstr(attrs, "namespace"), reason, sizeof(reason));
    } else if (non_resource != NULL) {
        /* Paths: the health ones need nothing, the rest (/metrics,
         * discovery, OpenAPI) read, in any namespace. */
        const char *path = bdy_jstr(non_resource, "path");
        bool open = path != NULL && (strcmp(path, "/healthz") == 0 || strcmp(path, "/livez") == 0 ||
                                     strcmp(path, "/readyz") == 0);
        allowed =
            open || req->principal == NULL || bdy_principal_has_verb(req->principal, BDY_VERB_READ);
        snprintf(reason, sizeof(reason), "%s",
                 open      ? "health paths need no token"
                 : allowed ? "reading is allowed"
                           : "this needs the read verb");
    } else {
        json_object_put(review);
        bdy__kube_fail_msg(resp, 422, "Invalid",
                           "SelfSubjectAccessReview.authorization.k8s.io is invalid: "
                           "spec.resourceAttributes or spec.nonResourceAttributes is required");
        return;
    }
    json_object *status = json_object_new_object();
    json_object_object_add(status, "allowed", json_object_new_boolean(allowed));
    if (!allowed)
        json_object_object_add(status, "denied", json_object_new_boolean(true));
    json_object_object_add(status, "reason", json_object_new_string(reason));
    answer_review(resp, review, &ACCESS_REVIEW, status);
}

void bdy__kube_self_review_cb(void *data, const bdy_http_request *req, bdy_http_response *resp)
{
    (void)data;
    json_object *review = review_body(req, resp, &SELF_REVIEW);
    if (review == NULL)
        return;
    const bdy_principal *p = req->principal;
    json_object *user = json_object_new_object();
    json_object *groups = json_object_new_array();
    if (p == NULL) {
        json_object_object_add(user, "username", json_object_new_string("system:anonymous"));
        json_object_array_add(groups, json_object_new_string("system:unauthenticated"));
    } else {
        json_object_object_add(user, "username", json_object_new_string(bdy_principal_name(p)));
        json_object_array_add(groups, json_object_new_string("system:authenticated"));
        json_object *extra = json_object_new_object();
        json_object *kind = json_object_new_array();
        json_object_array_add(kind, json_object_new_string(bdy_principal_kind(p)));
        json_object_object_add(extra, "bindery.dev/kind", kind);
        json_object_object_add(user, "extra", extra);
    }
    json_object_object_add(user, "groups", groups);
    json_object *status = json_object_new_object();
    json_object_object_add(status, "userInfo", user);
    answer_review(resp, review, &SELF_REVIEW, status);
}

/* A rule of resources {verbs, apiGroups ["*"], resources ["*"]}. */
static json_object *resource_rule(const char *const *verbs)
{
    static const char *const any[] = {"*", NULL};
    json_object *rule = json_object_new_object();
    json_object_object_add(rule, "verbs", bdy__kube_strings(verbs));
    json_object_object_add(rule, "apiGroups", bdy__kube_strings(any));
    json_object_object_add(rule, "resources", bdy__kube_strings(any));
    return rule;
}

/* A rule of paths {verbs ["get"], nonResourceURLs}. */
static json_object *path_rule(const char *const *paths)
{
    static const char *const get[] = {"get", NULL};
    json_object *rule = json_object_new_object();
    json_object_object_add(rule, "verbs", bdy__kube_strings(get));
    json_object_object_add(rule, "nonResourceURLs", bdy__kube_strings(paths));
    return rule;
}

void bdy__kube_rules_review_cb(void *data, const bdy_http_request *req, bdy_http_response *resp)
{
    (void)data;
    json_object *review = review_body(req, resp, &RULES_REVIEW);
    if (review == NULL)
        return;
    const char *ns = bdy_jstr(bdy_jget(review, "spec"), "namespace");
    if (ns != NULL && ns[0] == '\0')
        ns = NULL;
    const bdy_principal *p = req->principal;
    static const char *const all[] = {"*", NULL};
    static const char *const reading[] = {"get", "list", "watch", NULL};
    static const char *const health[] = {"/healthz", "/livez", "/readyz", NULL};
    static const char *const read_paths[] = {"/metrics", "/version", "/api",       "/api/*",
                                             "/apis",    "/apis/*",  "/openapi/*", NULL};
    json_object *rules = json_object_new_array();
    json_object *paths = json_object_new_array();
    bool admin = p == NULL || bdy_principal_allows(p, BDY_VERB_ADMIN, ns);
    bool reads = admin || bdy_principal_allows(p, BDY_VERB_READ, ns);
    if (admin)
        json_object_array_add(rules, resource_rule(all));
    else if (reads)
        json_object_array_add(rules, resource_rule(reading));
    json_object_array_add(paths, path_rule(health));
    if (p == NULL || bdy_principal_has_verb(p, BDY_VERB_READ))
        json_object_array_add(paths, path_rule(read_paths));
    json_object *status = json_object_new_object();
    json_object_object_add(status, "resourceRules", rules);
    json_object_object_add(status, "nonResourceRules", paths);
    json_object_object_add(status, "incomplete", json_object_new_boolean(false));
    answer_review(resp, review, &RULES_REVIEW, status);
}
