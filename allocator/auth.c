/* Bearer-token authentication: the YAML token file, constant-time lookup,
 * verb and namespace checks, and a token bucket per principal.
 *
 * A loaded bdy_auth never changes, except for each principal's token
 * bucket, which has its own mutex; so lookups need no lock.
 */
#include "bindery/auth.h"

#include "bindery/error.h"
#include "bindery/log.h"
#include "bindery/util.h"
#include "bindery/yaml.h"
#include "yaml_core.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A token file for BDY_AUTH_MAX_TOKENS entries is well below this. */
#define AUTH_MAX_FILE_BYTES ((size_t)1024 * 1024)
#define AUTH_MAX_NAME_LEN 128u
#define AUTH_MAX_NAMESPACES 256u
/* Kubernetes namespace names are DNS-1123 labels. */
#define AUTH_MAX_NAMESPACE_LEN 63u
#define AUTH_MAX_RATE 1e6
/* Slowest limit besides 0 (unlimited): one request in about 17 minutes.
 * Slower ones made Retry-After overflow its unsigned (undefined
 * behaviour: 1410065408 s for 1e-10, or 0 for 1e-320). */
#define AUTH_MIN_RATE 1e-3
/* Longest Retry-After given, whatever the arithmetic says. */
#define AUTH_MAX_RETRY_AFTER_S 3600.0
#define AUTH_HASH_HEX_LEN 64u
/* X.509's upper bound for a common name (RFC 5280, ub-common-name). */
#define AUTH_MAX_COMMON_NAME_LEN 64u
/* Longest field path in an error: tokens[1023].namespaces[255]. */
#define AUTH_FIELD_LEN 80

struct bdy_principal {
    char *name;
    /* Who it is: a token's hash (lower-case hex), or, for an entry that
     * names a client certificate, its subject's common name (sha256 "").
     * Exactly one is set. */
    char sha256[AUTH_HASH_HEX_LEN + 1];
    char *common_name;
    char **namespaces;
    size_t nnamespaces;
    bool all_namespaces; /* "*" was listed */
    unsigned verbs;      /* bdy_verb bits */
    double rate;         /* tokens per second; 0: unlimited */
    double burst;

    /* The token bucket: the only part of a loaded set that changes. */
    pthread_mutex_t lock;
    double tokens;
    uint64_t last_ns;
};

struct bdy_auth {
    bdy_principal *items;
    size_t count;
};

int bdy_verb_parse(const char *text, bdy_verb *out)
{
    static const struct {
        const char *name;
        bdy_verb verb;
    } verbs[] = {
        {"allocate", BDY_VERB_ALLOCATE},
        {"release", BDY_VERB_RELEASE},
        {"read", BDY_VERB_READ},
        {"admin", BDY_VERB_ADMIN},
    };
    for (size_t i = 0; text != NULL && i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (strcmp(text, verbs[i].name) == 0) {
            *out = verbs[i].verb;
            return 0;
        }
    }
    return BDY_EINVAL;
}

static void principal_clear(bdy_principal *p)
{
    for (size_t i = 0; i < p->nnamespaces; i++)
        free(p->namespaces[i]);
    free(p->namespaces);
    free(p->name);
    free(p->common_name);
}

/* Frees a and its principals. The caller guarantees no thread still uses a
 * or a principal from it (the HTTP server frees the sets it was given once
 * their last request ends: bdy_http_server_set_auth). */
void bdy_auth_free(bdy_auth *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->count; i++) {
        principal_clear(&a->items[i]);
        pthread_mutex_destroy(&a->items[i].lock);
    }
    free(a->items);
    free(a);
}

size_t bdy_auth_count(const bdy_auth *a)
{
    return a != NULL ? a->count : 0;
}

/* ---- loading ---------------------------------------------------------- */

/* What every error message needs to name the spot. */
typedef struct load_ctx {
    const char *path;
    bdy_errbuf *eb;
} load_ctx;

/* Fails with "path:line: field: message" and a cause naming the field. */
static int fail_at(const load_ctx *ctx, unsigned line, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail_at(const load_ctx *ctx, unsigned line, const char *field, const char *fmt, ...)
{
    char detail[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    bdy_fail(ctx->eb, BDY_EINVAL, "%s:%u: %s: %s", ctx->path, line, field, detail);
    bdy_errbuf_add_cause(ctx->eb, "FieldValueInvalid", field, "%s", detail);
    return BDY_EINVAL;
}

static bool is_plain_null(const bdy_ynode *n)
{
    if (n->kind != BDY_YNODE_SCALAR || n->quoted)
        return false;
    bdy__yplain v;
    bdy__yaml_resolve_plain(n->scalar, &v);
    return v.kind == BDY__YPLAIN_NULL;
}

/* A required non-null scalar. */
static int want_scalar(const load_ctx *ctx, const bdy_ynode *n, const char *field)
{
    if (n->kind != BDY_YNODE_SCALAR)
        return fail_at(ctx, n->line, field, "must be a single value");
    if (is_plain_null(n) || n->scalar[0] == '\0')
        return fail_at(ctx, n->line, field, "must not be empty");
    return 0;
}

static int parse_name(const load_ctx *ctx, const bdy_ynode *n, const char *field, bdy_principal *p)
{
    int rc = want_scalar(ctx, n, field);
    if (rc != 0)
        return rc;
    size_t len = strlen(n->scalar);
    if (len > AUTH_MAX_NAME_LEN)
        return fail_at(ctx, n->line, field, "longer than %u characters", AUTH_MAX_NAME_LEN);
    /* Names go into logs and error messages: printable ASCII only. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)n->scalar[i];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\')
            return fail_at(ctx, n->line, field,
                           "may hold only printable ASCII without spaces, quotes or "
                           "backslashes");
    }
    p->name = strdup(n->scalar);
    return p->name != NULL ? 0 : bdy_fail(ctx->eb, BDY_ENOMEM, "%s: out of memory", ctx->path);
}

static int parse_hash(const load_ctx *ctx, const bdy_ynode *n, const char *field, bdy_principal *p)
{
    int rc = want_scalar(ctx, n, field);
    if (rc != 0)
        return rc;
    bool ok = strlen(n->scalar) == AUTH_HASH_HEX_LEN;
    for (size_t i = 0; ok && i < AUTH_HASH_HEX_LEN; i++) {
        char c = n->scalar[i];
        ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        /* Compare in one case, the one bdy_sha256_hex writes. */
        p->sha256[i] = (char)(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c);
    }
    if (!ok)
        return fail_at(ctx, n->line, field,
                       "must be the SHA-256 of the token as 64 hex digits (not the token)");
    p->sha256[AUTH_HASH_HEX_LEN] = '\0';
    return 0;
}

/* A client certificate's subject common name: what an entry without a
 * token matches (bdy_auth_authenticate_certificate). X.509 caps a common
 * name at 64 characters; control characters would only garble logs. */
static int parse_common_name(const load_ctx *ctx, const bdy_ynode *n, const char *field,
                             bdy_principal *p)
{
    int rc = want_scalar(ctx, n, field);
    if (rc != 0)
        return rc;
    size_t len = strlen(n->scalar);
    if (len == 0 || len > AUTH_MAX_COMMON_NAME_LEN)
        return fail_at(ctx, n->line, field, "must be 1 to %u characters", AUTH_MAX_COMMON_NAME_LEN);
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)n->scalar[i] < 0x20 || n->scalar[i] == 0x7f)
            return fail_at(ctx, n->line, field, "must not hold control characters");
    }
    p->common_name = strdup(n->scalar);
    return p->common_name != NULL ? 0
                                  : bdy_fail(ctx->eb, BDY_ENOMEM, "%s: out of memory", ctx->path);
}

static bool valid_namespace(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > AUTH_MAX_NAMESPACE_LEN || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return true;
}

static int parse_namespaces(const load_ctx *ctx, const bdy_ynode *n, const char *field,
                            bdy_principal *p)
{
    char sub[AUTH_FIELD_LEN + 24];
    if (n->kind != BDY_YNODE_SEQ || n->count == 0)
        return fail_at(ctx, n->line, field, "must be a non-empty list (use [\"*\"] for all)");
    if (n->count > AUTH_MAX_NAMESPACES)
        return fail_at(ctx, n->line, field, "more than %u namespaces", AUTH_MAX_NAMESPACES);
    p->namespaces = calloc(n->count, sizeof(char *));
    if (p->namespaces == NULL)
        return bdy_fail(ctx->eb, BDY_ENOMEM, "%s: out of memory", ctx->path);
    for (size_t i = 0; i < n->count; i++) {
        const bdy_ynode *item = n->items[i];
        snprintf(sub, sizeof(sub), "%s[%zu]", field, i);
        int rc = want_scalar(ctx, item, sub);
        if (rc != 0)
            return rc;
        if (strcmp(item->scalar, "*") == 0) {
            p->all_namespaces = true;
            continue;
        }
        if (!valid_namespace(item->scalar))
            return fail_at(ctx, item->line, sub,
                           "\"%.80s\" is not a namespace name (lower-case letters, digits and "
                           "'-', at most 63) or \"*\"",
                           item->scalar);
        p->namespaces[p->nnamespaces] = strdup(item->scalar);
        if (p->namespaces[p->nnamespaces] == NULL)
            return bdy_fail(ctx->eb, BDY_ENOMEM, "%s: out of memory", ctx->path);
        p->nnamespaces++;
    }
    return 0;
}

static int parse_verbs(const load_ctx *ctx, const bdy_ynode *n, const char *field, bdy_principal *p)
{
    char sub[AUTH_FIELD_LEN + 24];
    if (n->kind != BDY_YNODE_SEQ || n->count == 0)
        return fail_at(ctx, n->line, field,
                       "must be a non-empty list of allocate, release, read, admin");
    for (size_t i = 0; i < n->count; i++) {
        const bdy_ynode *item = n->items[i];
        snprintf(sub, sizeof(sub), "%s[%zu]", field, i);
        int rc = want_scalar(ctx, item, sub);
        if (rc != 0)
            return rc;
        bdy_verb v;
        if (bdy_verb_parse(item->scalar, &v) != 0)
            return fail_at(ctx, item->line, sub,
                           "unknown verb \"%.80s\" (want allocate, release, read or admin)",
                           item->scalar);
        p->verbs |= (unsigned)v;
    }
    return 0;
}

static int parse_rate(const load_ctx *ctx, const bdy_ynode *n, const char *field, bdy_principal *p)
{
    bdy__yplain v = {0};
    if (n->kind == BDY_YNODE_SCALAR && !n->quoted)
        bdy__yaml_resolve_plain(n->scalar, &v);
    double rate = -1;
    if (n->kind == BDY_YNODE_SCALAR && !n->quoted) {
        if (v.kind == BDY__YPLAIN_INT)
            rate = (double)v.i;
        else if (v.kind == BDY__YPLAIN_UINT)
            rate = (double)v.u;
        else if (v.kind == BDY__YPLAIN_FLOAT)
            rate = v.d;
    }
    if (!(rate == 0 || (rate >= AUTH_MIN_RATE && rate <= AUTH_MAX_RATE)))
        return fail_at(ctx, n->line, field,
                       "must be a number, 0 (unlimited) or from %g to %.0f requests per second",
                       AUTH_MIN_RATE, AUTH_MAX_RATE);
    p->rate = rate;
    return 0;
}

/* Fills p from one list entry; every error names the key. */
static int parse_entry(const load_ctx *ctx, const bdy_ynode *n, size_t index, bdy_principal *p)
{
    static const char *const required[] = {"name", "namespaces", "verbs"};
    char field[32];
    int rc = 0;
    snprintf(field, sizeof(field), "tokens[%zu]", index);
    if (n->kind != BDY_YNODE_MAP)
        return fail_at(ctx, n->line, field,
                       "must be a map with name, sha256 or commonName, namespaces, verbs");
    for (size_t i = 0; i < n->count && rc == 0; i++) {
        const char *key = n->keys[i];
        const bdy_ynode *value = n->items[i];
        char sub[AUTH_FIELD_LEN];
        snprintf(sub, sizeof(sub), "%s.%.40s", field, key);
        if (strcmp(key, "name") == 0)
            rc = parse_name(ctx, value, sub, p);
        else if (strcmp(key, "sha256") == 0)
            rc = parse_hash(ctx, value, sub, p);
        else if (strcmp(key, "commonName") == 0)
            rc = parse_common_name(ctx, value, sub, p);
        else if (strcmp(key, "namespaces") == 0)
            rc = parse_namespaces(ctx, value, sub, p);
        else if (strcmp(key, "verbs") == 0)
            rc = parse_verbs(ctx, value, sub, p);
        else if (strcmp(key, "ratePerSecond") == 0)
            rc = parse_rate(ctx, value, sub, p);
        else
            rc = fail_at(ctx, n->key_lines[i], sub,
                         "unknown key (known: name, sha256, commonName, namespaces, verbs, "
                         "ratePerSecond)");
    }
    bool by_hash = bdy_ynode_get(n, "sha256") != NULL;
    bool by_name = bdy_ynode_get(n, "commonName") != NULL;
    if (rc == 0 && by_hash == by_name)
        rc = fail_at(ctx, n->line, field,
                     by_hash ? "has both sha256 and commonName; an entry is a token or a "
                               "client certificate, not both"
                             : "needs sha256 (a token's hash) or commonName (a client "
                               "certificate's)");
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]) && rc == 0; i++) {
        if (bdy_ynode_get(n, required[i]) == NULL) {
            char sub[AUTH_FIELD_LEN];
            snprintf(sub, sizeof(sub), "%s.%s", field, required[i]);
            rc = fail_at(ctx, n->line, sub, "is required");
        }
    }
    return rc;
}

/* Whether p and q are one token or one certificate subject. */
static bool same_identity(const bdy_principal *p, const bdy_principal *q)
{
    if ((p->common_name == NULL) != (q->common_name == NULL))
        return false;
    if (p->common_name != NULL)
        return strcmp(p->common_name, q->common_name) == 0;
    return strcmp(p->sha256, q->sha256) == 0;
}

/* Two entries with one name would be indistinguishable in logs; two with
 * one hash or common name would make the match depend on order. */
static int check_unique(const load_ctx *ctx, const bdy_ynode *seq, const bdy_auth *a)
{
    for (size_t i = 1; i < a->count; i++) {
        for (size_t j = 0; j < i; j++) {
            char field[80];
            if (strcmp(a->items[i].name, a->items[j].name) == 0) {
                snprintf(field, sizeof(field), "tokens[%zu].name", i);
                return fail_at(ctx, seq->items[i]->line, field, "\"%s\" is also tokens[%zu]",
                               a->items[i].name, j);
            }
            if (same_identity(&a->items[i], &a->items[j])) {
                bool cert = a->items[i].common_name != NULL;
                snprintf(field, sizeof(field), "tokens[%zu].%s", i, cert ? "commonName" : "sha256");
                return fail_at(ctx, seq->items[i]->line, field, "same %s as tokens[%zu] (%s)",
                               cert ? "common name" : "hash", j, a->items[j].name);
            }
        }
    }
    return 0;
}

/* Builds the principals from a parsed document. */
static int build(const load_ctx *ctx, const bdy_ynode *root, bdy_auth *a)
{
    if (root->kind != BDY_YNODE_MAP)
        return fail_at(ctx, root->line, "tokens", "the file must be a map with a tokens list");
    for (size_t i = 0; i < root->count; i++) {
        if (strcmp(root->keys[i], "tokens") != 0) {
            char field[64];
            snprintf(field, sizeof(field), "%.40s", root->keys[i]);
            return fail_at(ctx, root->key_lines[i], field, "unknown key (known: tokens)");
        }
    }
    const bdy_ynode *seq = bdy_ynode_get(root, "tokens");
    if (seq == NULL)
        return fail_at(ctx, root->line, "tokens", "is required");
    if (seq->kind != BDY_YNODE_SEQ)
        return fail_at(ctx, seq->line, "tokens", "must be a list");
    if (seq->count > BDY_AUTH_MAX_TOKENS)
        return fail_at(ctx, seq->line, "tokens", "more than %d entries", BDY_AUTH_MAX_TOKENS);
    if (seq->count > 0) {
        a->items = calloc(seq->count, sizeof(bdy_principal));
        if (a->items == NULL)
            return bdy_fail(ctx->eb, BDY_ENOMEM, "%s: out of memory", ctx->path);
    }
    uint64_t now = bdy_monotonic_ns();
    for (size_t i = 0; i < seq->count; i++) {
        bdy_principal *p = &a->items[i];
        int rc = parse_entry(ctx, seq->items[i], i, p);
        if (rc == 0 && pthread_mutex_init(&p->lock, NULL) != 0)
            rc = bdy_fail(ctx->eb, BDY_ENOMEM, "%s: cannot create a mutex", ctx->path);
        if (rc != 0) {
            principal_clear(p);
            return rc;
        }
        a->count++;
        p->burst = p->rate > 1 ? p->rate : 1;
        p->tokens = p->burst;
        p->last_ns = now;
    }
    return check_unique(ctx, seq, a);
}

/* Loads path. The caller owns *out (bdy_auth_free). Thread-safe; touches no
 * shared state. */
int bdy_auth_load(const char *path, bdy_auth **out, bdy_errbuf *eb)
{
    int rc = 0;
    char *text = NULL;
    size_t len = 0;
    bdy_ynode *root = NULL;
    bdy_auth *a = NULL;
    bdy_errbuf yeb;
    load_ctx ctx = {.path = path, .eb = eb};

    if (path == NULL || out == NULL)
        return bdy_fail(eb, BDY_EINVAL, "token file: no path");
    rc = bdy_read_file(path, AUTH_MAX_FILE_BYTES, &text, &len);
    if (rc == BDY_ENOTFOUND) {
        rc = bdy_fail(eb, rc, "%s: no such token file", path);
        goto out;
    } else if (rc == BDY_ETOOBIG) {
        rc = bdy_fail(eb, rc, "%s: token file over %zu bytes", path, AUTH_MAX_FILE_BYTES);
        goto out;
    } else if (rc != 0) {
        rc = bdy_fail(eb, rc, "%s: cannot read the token file: %s", path, bdy_strerror(rc));
        goto out;
    }
    bdy_errbuf_clear(&yeb);
    rc = bdy_yaml_parse_one(text, len, &root, &yeb);
    if (rc != 0) {
        /* The YAML module says "line N: ..."; print it as "path:N: ..." like
         * our own errors. */
        unsigned line = 0;
        int used = 0;
        if (sscanf(yeb.message, "line %u: %n", &line, &used) == 1 && used > 0)
            rc = bdy_fail(eb, rc, "%s:%u: %s", path, line, yeb.message + used);
        else
            rc = bdy_fail(eb, rc, "%s: %s", path, yeb.message);
        goto out;
    }
    a = calloc(1, sizeof(*a));
    if (a == NULL) {
        rc = bdy_fail(eb, BDY_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    rc = build(&ctx, root, a);
    if (rc != 0)
        goto out;
    if (a->count == 0)
        bdy_warn("auth", "%s lists no tokens: every authenticated request will be refused", path);
    *out = a;
    a = NULL;
out:
    bdy_auth_free(a);
    bdy_ynode_free(root);
    if (text != NULL) {
        /* The file holds only hashes, but it is still credential material. */
        memset(text, 0, len);
        free(text);
    }
    return rc;
}

/* ---- checks ------------------------------------------------------------ */

bool bdy_auth_token_usable(const char *token, size_t len)
{
    if (len == 0 || len > BDY_AUTH_MAX_TOKEN_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)token[i];
        if (c <= 0x20 || c >= 0x7f)
            return false;
    }
    return true;
}

/* Hashes the presented token once and compares it with every entry without
 * stopping at a match, so the time taken is the same whichever entry (if
 * any) matches. Hashes are unique (checked at load), so at most one entry
 * can match and OR-ing the masked pointers picks it. Thread-safe. */
const bdy_principal *bdy_auth_authenticate(const bdy_auth *a, const char *authorization_header)
{
    if (a == NULL || authorization_header == NULL)
        return NULL;
    const char *h = authorization_header;
    /* RFC 7235: the scheme is case-insensitive, then one or more spaces. */
    if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
        return NULL;
    const char *token = h + 6;
    while (*token == ' ' || *token == '\t')
        token++;
    size_t len = strnlen(token, BDY_AUTH_MAX_TOKEN_LEN + 1);
    while (len > 0 && (token[len - 1] == ' ' || token[len - 1] == '\t'))
        len--;
    if (!bdy_auth_token_usable(token, len))
        return NULL;
    char hex[AUTH_HASH_HEX_LEN + 1];
    bdy_sha256_hex(token, len, hex);
    uintptr_t found = 0;
    for (size_t i = 0; i < a->count; i++) {
        /* A certificate's entry has no hash ("" never equals 64 hex digits);
         * which entries those are is no secret, so skipping them is fine. */
        if (a->items[i].common_name != NULL)
            continue;
        uintptr_t eq = (uintptr_t)bdy_ct_equal(hex, a->items[i].sha256, AUTH_HASH_HEX_LEN);
        found |= (uintptr_t)&a->items[i] & ((uintptr_t)0 - eq);
    }
    return (const bdy_principal *)found;
}

const bdy_principal *bdy_auth_authenticate_certificate(const bdy_auth *a, const char *common_name)
{
    if (a == NULL || common_name == NULL)
        return NULL;
    for (size_t i = 0; i < a->count; i++) {
        if (a->items[i].common_name != NULL && strcmp(a->items[i].common_name, common_name) == 0)
            return &a->items[i];
    }
    return NULL;
}

static bool has_verb(const bdy_principal *p, bdy_verb verb)
{
    if ((p->verbs & BDY_VERB_ADMIN) != 0)
        return true;
    return (p->verbs & (unsigned)verb) == (unsigned)verb;
}

bool bdy_principal_has_verb(const bdy_principal *p, bdy_verb verb)
{
    return p != NULL && has_verb(p, verb);
}

/* A NULL principal is allowed nothing: with authentication off the server
 * hands handlers NULL, and they must decide that case explicitly. */
bool bdy_principal_allows(const bdy_principal *p, bdy_verb verb, const char *ns)
{
    if (p == NULL || !has_verb(p, verb))
        return false;
    if (p->all_namespaces)
        return true;
    if (ns == NULL)
        return false;
    for (size_t i = 0; i < p->nnamespaces; i++) {
        if (strcmp(p->namespaces[i], ns) == 0)
            return true;
    }
    return false;
}

bdy_principal *bdy_principal_copy(const bdy_principal *p)
{
    if (p == NULL)
        return NULL;
    bdy_principal *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    memcpy(c->sha256, p->sha256, sizeof(c->sha256));
    c->common_name = p->common_name != NULL ? strdup(p->common_name) : NULL;
    c->all_namespaces = p->all_namespaces;
    c->verbs = p->verbs;
    c->name = strdup(p->name ? p->name : "");
    c->namespaces = p->nnamespaces ? calloc(p->nnamespaces, sizeof(char *)) : NULL;
    bool ok = c->name != NULL && (p->nnamespaces == 0 || c->namespaces != NULL) &&
              (p->common_name == NULL || c->common_name != NULL);
    for (size_t i = 0; ok && i < p->nnamespaces; i++) {
        ok = (c->namespaces[i] = strdup(p->namespaces[i])) != NULL;
        c->nnamespaces += ok;
    }
    if (!ok) {
        bdy_principal_free(c);
        return NULL;
    }
    return c;
}

void bdy_principal_free(bdy_principal *p)
{
    if (p == NULL)
        return;
    principal_clear(p);
    free(p);
}

bool bdy_auth_still_grants(const bdy_auth *a, const bdy_principal *p)
{
    if (a == NULL || p == NULL)
        return false;
    for (size_t i = 0; i < a->count; i++) {
        const bdy_principal *q = &a->items[i];
        if (!same_identity(q, p))
            continue;
        bool verbs = (q->verbs & BDY_VERB_ADMIN) != 0 || (q->verbs & p->verbs) == p->verbs;
        bool every_ns = q->all_namespaces || !p->all_namespaces;
        for (size_t k = 0; every_ns && !q->all_namespaces && k < p->nnamespaces; k++)
            every_ns = bdy_principal_allows(q, BDY_VERB_NONE, p->namespaces[k]);
        return verbs && every_ns;
    }
    return false;
}

const char *bdy_principal_name(const bdy_principal *p)
{
    return p != NULL ? p->name : "";
}

const char *bdy_principal_kind(const bdy_principal *p)
{
    return p != NULL && p->common_name != NULL ? "client certificate" : "token";
}

/* Token bucket: rate tokens per second up to burst = max(1, rate). The
 * bucket is mutable state inside an otherwise immutable set, hence the cast
 * away from const; the principal's mutex guards it. */
bool bdy_principal_take(const bdy_principal *cp, unsigned *retry_after_s)
{
    if (cp == NULL || cp->rate <= 0)
        return true;
    bdy_principal *p = (bdy_principal *)cp;
    bool ok = false;
    double wait = 0;
    pthread_mutex_lock(&p->lock);
    uint64_t now = bdy_monotonic_ns();
    double elapsed = now > p->last_ns ? (double)(now - p->last_ns) / 1e9 : 0;
    p->last_ns = now;
    p->tokens += elapsed * p->rate;
    if (p->tokens > p->burst)
        p->tokens = p->burst;
    if (p->tokens >= 1) {
        p->tokens -= 1;
        ok = true;
    } else {
        wait = (1 - p->tokens) / p->rate;
    }
    pthread_mutex_unlock(&p->lock);
    if (!ok && retry_after_s != NULL) {
        double s = ceil(wait);
        *retry_after_s = s < 1                        ? 1
                         : s > AUTH_MAX_RETRY_AFTER_S ? (unsigned)AUTH_MAX_RETRY_AFTER_S
                                                      : (unsigned)s;
    }
    return ok;
}

void bdy_auth_carry_buckets(bdy_auth *next, const bdy_auth *prev)
{
    if (next == NULL || prev == NULL)
        return;
    for (size_t i = 0; i < next->count; i++) {
        bdy_principal *p = &next->items[i];
        for (size_t j = 0; j < prev->count; j++) {
            /* Mutable bucket inside an immutable set, as in take(). */
            bdy_principal *old = (bdy_principal *)&prev->items[j];
            if (!same_identity(old, p))
                continue;
            if (old->rate == p->rate) {
                pthread_mutex_lock(&old->lock);
                p->tokens = old->tokens;
                p->last_ns = old->last_ns;
                pthread_mutex_unlock(&old->lock);
            }
            break;
        }
    }
}
