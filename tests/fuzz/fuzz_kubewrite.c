/* Fuzzes the Kubernetes-compatible API's request handling end to end,
 * bodies above all: body parsing (UTF-8, depth, trailing bytes), metadata
 * and schema validation, merge, JSON and strategic merge patches, updates,
 * status updates, deletes with their options, and the answers built from
 * what the store returns. The input is three parts split at the first two
 * newlines: "METHOD /path[?k=v&k=v]" (query not URL-decoded; no watch:
 * a watch needs a connection), the Content-Type[, a tab and the Accept
 * header] and the body. Requests go to
 * the real handler over a real SQLite store (a temporary folder, removed at
 * exit) that holds a custom resource definition with a status subresource
 * and a schema, so that one run's creates are the next run's updates.
 *
 * Beyond memory errors the driver aborts when an answer is not what every
 * client relies on: a status between 200 and 599 with a JSON object body. */
#include "../../allocator/kubeapi_internal.h"
#include "bindery/jsonutil.h"
#include "bindery/store.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Bigger bodies only slow the fuzzer down without new paths. */
#define FUZZ_MAX_INPUT 65536

static const char gadget_crd[] =
    "{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"CustomResourceDefinition\","
    "\"metadata\":{\"name\":\"gadgets.fuzz.dev\"},"
    "\"spec\":{\"group\":\"fuzz.dev\",\"scope\":\"Namespaced\","
    "\"names\":{\"plural\":\"gadgets\",\"singular\":\"gadget\",\"kind\":\"Gadget\"},"
    "\"versions\":[{\"name\":\"v1\",\"served\":true,\"storage\":true,"
    "\"subresources\":{\"status\":{}},"
    "\"additionalPrinterColumns\":[{\"name\":\"Phase\",\"type\":\"string\","
    "\"jsonPath\":\".status.phase\"},{\"name\":\"Size\",\"type\":\"integer\","
    "\"jsonPath\":\".spec.size\"},{\"name\":\"Ready\",\"type\":\"string\","
    "\"jsonPath\":\".status.conditions[?(@.type==\\\"Ready\\\")].status\"},"
    "{\"name\":\"Other\",\"type\":\"string\","
    "\"jsonPath\":\".status.conditions[?(@.n!=3)].type\"}],"
    "\"schema\":{\"openAPIV3Schema\":{\"type\":\"object\",\"properties\":{"
    "\"spec\":{\"type\":\"object\",\"required\":[\"size\"],\"properties\":{"
    "\"size\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":100,\"default\":1},"
    "\"mode\":{\"type\":\"string\",\"enum\":[\"a\",\"b\"]},"
    "\"tags\":{\"type\":\"array\",\"maxItems\":8,\"items\":{\"type\":\"string\","
    "\"pattern\":\"^[a-z]+$\"}},"
    "\"extra\":{\"type\":\"object\",\"x-kubernetes-preserve-unknown-fields\":true}}},"
    "\"status\":{\"type\":\"object\",\"properties\":{"
    "\"phase\":{\"type\":\"string\"},\"count\":{\"type\":\"integer\"},"
    "\"conditions\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
    "\"x-kubernetes-preserve-unknown-fields\":true}}}}}}}}]}}";

static char data_dir[64];
static bdy_store *store;
static bdy_kubeapi *api;

static void teardown(void)
{
    bdy_kubeapi_stop(api);
    bdy_kubeapi_free(api);
    bdy_store_close(store);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", data_dir);
    if (data_dir[0] && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", data_dir);
}

/* Opens the store and the API once per process. */
static void setup(void)
{
    snprintf(data_dir, sizeof(data_dir), "/tmp/bdy-fuzz-kube-XXXXXX");
    if (mkdtemp(data_dir) == NULL)
        abort();
    bdy_sqlite_opts so = {.data_dir = data_dir, .watch_history = 64, .max_batch = 64};
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    if (bdy_store_sqlite_open(&so, &store, &eb) != 0) {
        fprintf(stderr, "store: %s\n", eb.message);
        abort();
    }
    json_object *crd = json_tokener_parse(gadget_crd);
    if (crd == NULL || bdy_store_create(store, &BDY_GVR_CRDS, NULL, crd, NULL, NULL, &eb) != 0) {
        fprintf(stderr, "CRD: %s\n", eb.message);
        abort();
    }
    json_object_put(crd);
    bdy_kubeapi_opts ko = {
        .store = store, .max_watches = 1, .watch_timeout_s = 1, .bookmark_interval_s = 1};
    if (bdy_kubeapi_new(&ko, &api, &eb) != 0)
        abort();
    atexit(teardown);
}

#define MAX_PARAMS 16

typedef struct lookups {
    char *keys[MAX_PARAMS];
    char *values[MAX_PARAMS];
    size_t n;
    const char *accept;
} lookups;

static const char *lookup(void *data, bool header, const char *key)
{
    lookups *l = data;
    if (header)
        return strcasecmp(key, "Accept") == 0 ? l->accept : NULL;
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->keys[i], key) == 0)
            return l->values[i];
    return NULL;
}

/* Splits query text (modified in place) into parameters. */
static void split_query(char *text, lookups *l)
{
    char *save = NULL;
    for (char *tok = strtok_r(text, "&", &save); tok != NULL && l->n < MAX_PARAMS;
         tok = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(tok, '=');
        if (eq != NULL)
            *eq++ = '\0';
        l->keys[l->n] = tok;
        l->values[l->n++] = eq != NULL ? eq : "";
    }
}

/* Splits off the text up to the next newline (NUL-terminating it) and
 * returns what follows, or NULL when there is no newline. */
static char *split_line(char *text)
{
    char *nl = strchr(text, '\n');
    if (nl == NULL)
        return NULL;
    *nl = '\0';
    return nl + 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT)
        return 0;
    if (store == NULL)
        setup();
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    /* The body keeps any NUL bytes: its length is what is left. */
    char *content_type = split_line(text);
    char *body = content_type ? split_line(content_type) : NULL;
    char *path = strchr(text, ' ');
    if (body == NULL || path == NULL) {
        free(text);
        return 0;
    }
    *path++ = '\0';
    lookups l = {.n = 0};
    char *query = strchr(path, '?');
    if (query != NULL) {
        *query++ = '\0';
        split_query(query, &l);
    }
    char *tab = strchr(content_type, '\t');
    if (tab != NULL) {
        *tab++ = '\0';
        l.accept = tab;
    }
    if (lookup(&l, false, "watch") != NULL) {
        free(text);
        return 0;
    }
    static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
    const char *method = NULL;
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (strcmp(text, methods[i]) == 0)
            method = methods[i];
    }
    if (method == NULL) {
        free(text);
        return 0;
    }
    bdy_http_request req = {
        .method = method,
        .path = path,
        .body = body,
        .body_len = size - (size_t)(body - text),
        .content_type = content_type[0] ? content_type : NULL,
        .lookup = lookup,
        .lookup_data = &l,
    };
    bdy_http_response resp;
    bdy_http_response_init(&resp);
    bdy__kube_resource_cb(api, &req, &resp);
    if (resp.status < 200 || resp.status > 599)
        abort();
    /* Answers echo stored objects, as deep as the store takes them. */
    json_tokener *tok = json_tokener_new_ex(BDY_JSON_MAX_DEPTH + 8);
    if (tok == NULL)
        abort();
    json_object *answer =
        json_tokener_parse_ex(tok, resp.body.data ? resp.body.data : "", (int)resp.body.len);
    if (!json_object_is_type(answer, json_type_object)) {
        fprintf(stderr, "%u answer is not a JSON object: %s\n", resp.status,
                resp.body.data ? resp.body.data : "");
        abort();
    }
    json_object_put(answer);
    json_tokener_free(tok);
    bdy_http_response_free(&resp);
    free(text);
    return 0;
}
