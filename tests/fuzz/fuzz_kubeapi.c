/* Fuzzes the parsers of the Kubernetes-compatible API: request paths,
 * Accept headers, query parameters and DeleteOptions. The input is four
 * parts split at the first three newlines: path, Accept, query string
 * ("k=v&k=v", not URL-decoded) and the DeleteOptions body. Every parse
 * either succeeds with fields inside their caps or fails, never crashes
 * or leaks. */
#include "bindery/kubeapi.h"
#include "fuzz_text.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INPUT 20000
#define MAX_PARAMS 32

typedef struct params {
    char *keys[MAX_PARAMS];
    char *values[MAX_PARAMS];
    size_t n;
} params;

static const char *lookup(void *data, const char *key)
{
    params *p = data;
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->keys[i], key) == 0)
            return p->values[i];
    }
    return NULL;
}

/* Splits text (modified in place) into parameters. */
static void split_query(char *text, params *p)
{
    p->n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(text, "&", &save); tok != NULL && p->n < MAX_PARAMS;
         tok = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(tok, '=');
        p->keys[p->n] = tok;
        p->values[p->n] = eq != NULL ? eq + 1 : tok + strlen(tok);
        if (eq != NULL)
            *eq = '\0';
        p->n++;
    }
}

static char *next_line(char **cursor)
{
    char *start = *cursor;
    char *nl = strchr(start, '\n');
    if (nl == NULL) {
        *cursor = start + strlen(start);
        return start;
    }
    *nl = '\0';
    *cursor = nl + 1;
    return start;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size, MAX_INPUT);
    if (text == NULL)
        return 0;
    char *cursor = text;
    char *path = next_line(&cursor);
    char *accept = next_line(&cursor);
    char *query = next_line(&cursor);
    char *body = cursor;

    bdy_kube_path kp;
    if (bdy_kube_parse_path(path, &kp) == 0) {
        if (strlen(kp.version) == 0 || strlen(kp.group) > BDY_KUBE_MAX_SEGMENT ||
            strchr(kp.ns, '/') != NULL || strchr(kp.resource, '/') != NULL ||
            strchr(kp.name, '/') != NULL || (kp.name[0] && !kp.resource[0]) ||
            (kp.subresource[0] && !kp.name[0]))
            abort();
    }
    bdy_kube_accept acc;
    bdy_kube_parse_accept(accept, &acc);

    params p;
    split_query(query, &p);
    bdy_kube_query q;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    if (bdy_kube_parse_query(lookup, &p, &q, &eb) == 0) {
        if (q.limit > BDY_STORE_MAX_LIST_LIMIT || q.timeout_s > BDY_KUBEAPI_MAX_WATCH_TIMEOUT_S)
            abort();
    } else if (eb.message[0] == '\0') {
        abort(); /* every refusal says why */
    }
    bdy_kube_delete d;
    bdy_errbuf_clear(&eb);
    if (bdy_kube_parse_delete(body, strlen(body), lookup, &p, &d, &eb) == 0) {
        if (strlen(d.uid) >= sizeof(d.uid) || strlen(d.rv) >= sizeof(d.rv))
            abort();
    }
    free(text);
    return 0;
}
