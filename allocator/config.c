/* The daemon's configuration: a table-driven decoder over bdy_ynode trees.
 *
 * Each section of the file is a static table of field descriptors (key, type,
 * where the value lives, bounds, default, doc). Three walks over the tables
 * do all the work, so adding a key is adding a row:
 *
 *   apply_defaults  sets every default by decoding its text exactly as if it
 *                   had been written in the file (so defaults obey the same
 *                   validation and resolution as user values);
 *   decode_section  matches a YAML map against a table, refusing unknown keys
 *                   and reporting missing required ones;
 *   free_section    releases whatever the decoded values own.
 *
 * Lists are generic too. A CFG_LIST row points at an item descriptor that
 * says how one element decodes and how big it is; the list member in the
 * struct is always { T *items; size_t count; }. Today the items are paths
 * (crds, manifests). Adding a list of maps, such as the coming pools:
 * section, needs no new decoder code:
 *
 *   1. a struct for one element (bdy_config_pool) and a member
 *      struct { bdy_config_pool *items; size_t count; } pools; in bdy_config;
 *   2. a field table for the element (pool_fields[], with .required = true on
 *      "name") and its cfg_section pool_section;
 *   3. an item descriptor
 *        {.type = CFG_SECTION, .size = sizeof(bdy_config_pool),
 *         .section = &pool_section}
 *      and a row in top_fields[]
 *        LIST_FIELD(bdy_config, pools, "pools", <cap>, &pool_item, "...").
 *
 * decode_list() then allocates the elements, applies each one's defaults,
 * decodes it and names errors "pools[2].name"; free_section() releases it.
 */
#include "bindery/config.h"

#include "bindery/log.h"
#include "bindery/util.h"
#include "bindery/yaml.h"
#include "yaml_core.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MEMBER(T, m) .offset = offsetof(T, m), .size = sizeof(((T *)0)->m)

/* Most fields one section may have (decode_section tracks which were seen). */
#define CFG_MAX_FIELDS 32
/* Longest dotted key path kept for messages ("pools[12].http.threads"). */
#define CFG_MAX_KEY_PATH 256
/* How much of a bad value is quoted back in a message. */
#define CFG_QUOTE_MAX 64

typedef enum cfg_type {
    CFG_UINT,      /* unsigned or size_t (by .size), an integer in [min, max] */
    CFG_PATH,      /* char *, resolved to an absolute path */
    CFG_LISTEN,    /* char *, host:port */
    CFG_LOG_LEVEL, /* bdy_log_level */
    CFG_SECTION,   /* an embedded struct described by .section */
    CFG_LIST,      /* { T *items; size_t count; }, items described by .item */
} cfg_type;

typedef struct cfg_field cfg_field;

typedef struct cfg_section {
    const cfg_field *fields;
    size_t nfields;
} cfg_section;

struct cfg_field {
    const char *key;            /* the YAML key, camelCase */
    const char *doc;            /* what the key is for (CONFIG.md says the same) */
    size_t offset;              /* of the member within the struct the section describes */
    size_t size;                /* sizeof the member; for a list item, sizeof one element */
    uint64_t min;               /* CFG_UINT: smallest value */
    uint64_t max;               /* CFG_UINT: largest value; CFG_LIST: most entries */
    const char *def;            /* default as YAML plain-scalar text; NULL: zero / empty / NULL */
    const cfg_section *section; /* CFG_SECTION */
    const cfg_field *item;      /* CFG_LIST: one element, decoded at offset 0 */
    cfg_type type;
    bool required; /* absence is an error */
    bool nullable; /* CFG_PATH: null means "not set" (NULL) */
};

/* How every list member is laid out; see the header. */
typedef struct cfg_list_layout {
    void *items;
    size_t count;
} cfg_list_layout;

_Static_assert(sizeof(bdy_config_paths) == sizeof(cfg_list_layout) &&
                   offsetof(bdy_config_paths, count) == offsetof(cfg_list_layout, count),
               "config lists must be laid out as { T *items; size_t count; }");

/* Table rows, one macro per kind so each row reads as one line. */
#define UINT_FIELD(T, m, k, lo, hi, d, text)                                                       \
    {                                                                                              \
        .key = (k), .type = CFG_UINT, MEMBER(T, m), .min = (lo), .max = (hi), .def = (d),          \
        .doc = (text)                                                                              \
    }
#define SCALAR_FIELD(T, m, k, ty, d, text)                                                         \
    {                                                                                              \
        .key = (k), .type = (ty), MEMBER(T, m), .def = (d), .doc = (text)                          \
    }
#define OPTIONAL_PATH_FIELD(T, m, k, text)                                                         \
    {                                                                                              \
        .key = (k), .type = CFG_PATH, MEMBER(T, m), .nullable = true, .doc = (text)                \
    }
#define SECTION_FIELD(T, m, k, sec, text)                                                          \
    {                                                                                              \
        .key = (k), .type = CFG_SECTION, MEMBER(T, m), .section = (sec), .doc = (text)             \
    }
#define LIST_FIELD(T, m, k, most, it, text)                                                        \
    {                                                                                              \
        .key = (k), .type = CFG_LIST, MEMBER(T, m), .max = (most), .item = (it), .doc = (text)     \
    }

static const cfg_field http_fields[] = {
    UINT_FIELD(bdy_config_http, threads, "threads", 1, 64, "4", "size of the HTTP thread pool"),
    UINT_FIELD(bdy_config_http, max_body_bytes, "maxBodyBytes", 1024, 16777216, "65536",
               "largest request body accepted; larger ones get 413"),
    UINT_FIELD(bdy_config_http, connection_timeout_s, "connectionTimeoutSeconds", 1, 3600, "30",
               "idle connections are closed after this many seconds"),
    UINT_FIELD(bdy_config_http, max_connections, "maxConnections", 1, 100000, "1024",
               "most concurrent connections"),
    UINT_FIELD(bdy_config_http, header_limit_bytes, "headerLimitBytes", 4096, 1048576, "16384",
               "memory for one request's line and headers"),
};

static const cfg_field auth_fields[] = {
    OPTIONAL_PATH_FIELD(bdy_config_auth, token_file, "tokenFile",
                        "bearer-token file; absent or null turns authentication off"),
};

static const cfg_field store_fields[] = {
    UINT_FIELD(bdy_config_store, watch_history, "watchHistory", 100, 10000000, "10000",
               "events kept so a watch can resume from an older resourceVersion"),
    UINT_FIELD(bdy_config_store, max_batch, "maxBatch", 1, 65536, "512",
               "most writes committed in one transaction"),
    UINT_FIELD(bdy_config_store, busy_timeout_ms, "busyTimeoutMs", 0, 600000, "5000",
               "how long SQLite waits for a lock held elsewhere"),
};

static const cfg_section http_section = {http_fields, ARRAY_LEN(http_fields)};
static const cfg_section auth_section = {auth_fields, ARRAY_LEN(auth_fields)};
static const cfg_section store_section = {store_fields, ARRAY_LEN(store_fields)};

/* One entry of a list of paths: decoded at offset 0 of its array slot. */
static const cfg_field path_item = {
    .key = "", .type = CFG_PATH, .offset = 0, .size = sizeof(char *), .doc = "a file or folder"};

static const cfg_field top_fields[] = {
    SCALAR_FIELD(bdy_config, listen, "listen", CFG_LISTEN, "127.0.0.1:7780",
                 "address of the HTTP API"),
    SCALAR_FIELD(bdy_config, data_dir, "dataDir", CFG_PATH, "data",
                 "folder for the SQLite store and demand history"),
    SCALAR_FIELD(bdy_config, log_level, "logLevel", CFG_LOG_LEVEL, "info",
                 "debug, info, warn or error"),
    SECTION_FIELD(bdy_config, http, "http", &http_section, "HTTP server limits"),
    SECTION_FIELD(bdy_config, auth, "auth", &auth_section, "authentication"),
    SECTION_FIELD(bdy_config, store, "store", &store_section, "embedded object store"),
    LIST_FIELD(bdy_config, crds, "crds", BDY_CONFIG_MAX_LIST, &path_item,
               "CRD files or folders applied at start-up, before manifests"),
    LIST_FIELD(bdy_config, manifests, "manifests", BDY_CONFIG_MAX_LIST, &path_item,
               "manifest files or folders applied at start-up"),
};

static const cfg_section top_section = {top_fields, ARRAY_LEN(top_fields)};

/* What one decode needs besides the tree. */
typedef struct cfg_ctx {
    const char *name;     /* prefix of messages: the file name or the flag */
    const char *base_dir; /* absolute; relative paths resolve against it */
    bdy_errbuf *eb;
} cfg_ctx;

/* ---------------------------------------------------------------------- */
/* Messages                                                                 */

/* Writes s double-quoted into buf, escaping what would garble a terminal or
 * a log line and cutting it at CFG_QUOTE_MAX bytes. */
static void quote(const char *s, char *buf, size_t size)
{
    size_t pos = 0;
    size_t used = 0;
    if (size < 8) {
        if (size > 0)
            buf[0] = '\0';
        return;
    }
    buf[pos++] = '"';
    for (; *s != '\0' && pos + 8 < size; s++, used++) {
        unsigned char ch = (unsigned char)*s;
        if (used == CFG_QUOTE_MAX) {
            memcpy(buf + pos, "...", 3);
            pos += 3;
            break;
        }
        if (ch == '"' || ch == '\\') {
            buf[pos++] = '\\';
            buf[pos++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            pos += (size_t)snprintf(buf + pos, size - pos, "\\x%02x", ch);
        } else {
            buf[pos++] = (char)ch;
        }
    }
    buf[pos++] = '"';
    buf[pos] = '\0';
}

/* Describes a value for "(got ...)". */
static void describe(const bdy_ynode *n, char *buf, size_t size)
{
    if (n->kind == BDY_YNODE_MAP) {
        snprintf(buf, size, "a map");
    } else if (n->kind == BDY_YNODE_SEQ) {
        snprintf(buf, size, "a list");
    } else if (!n->quoted && n->scalar[0] == '\0') {
        snprintf(buf, size, "nothing");
    } else {
        quote(n->scalar, buf, size);
    }
}

/* Fails with "name:line: path: detail" (line 0: "name: path: detail", for
 * values that came from a flag rather than a file). */
static int cfg_fail(const cfg_ctx *c, int rc, unsigned line, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int cfg_fail(const cfg_ctx *c, int rc, unsigned line, const char *path, const char *fmt, ...)
{
    char detail[400];
    char where[32] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(where, sizeof(where), ":%u", line);
    return bdy_fail(c->eb, rc, "%s%s: %s%s%s", c->name, where, path, path[0] ? ": " : "", detail);
}

/* The "must be ..." phrase for a field. */
static void expectation(const cfg_field *f, char *buf, size_t size)
{
    switch (f->type) {
    case CFG_UINT:
        snprintf(buf, size, "must be an integer between %llu and %llu", (unsigned long long)f->min,
                 (unsigned long long)f->max);
        break;
    case CFG_PATH:
        snprintf(buf, size, f->nullable ? "must be a path or null" : "must be a path");
        break;
    case CFG_LISTEN:
        snprintf(buf, size,
                 "must be host:port with a port between 0 and 65535, e.g. \"127.0.0.1:7780\" "
                 "or \"[::1]:7780\"");
        break;
    case CFG_LOG_LEVEL:
        snprintf(buf, size, "must be one of debug, info, warn, error");
        break;
    case CFG_SECTION:
        snprintf(buf, size, "must be a map");
        break;
    case CFG_LIST:
        snprintf(buf, size, "must be a list");
        break;
    }
}

static int fail_expect(const cfg_ctx *c, const cfg_field *f, unsigned line, const char *path,
                       const char *got, const char *note)
{
    char expect[160];
    expectation(f, expect, sizeof(expect));
    return cfg_fail(c, BDY_EINVAL, line, path, "%s (got %s%s)", expect, got, note);
}

/* Edit distance for "did you mean"; keys longer than 63 bytes get none. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a);
    size_t lb = strlen(b);
    size_t row[64];
    if (la >= 64 || lb >= 64)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = diag + cost;
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static int fail_unknown_key(const cfg_ctx *c, const cfg_section *s, unsigned line,
                            const char *parent, const char *key)
{
    char full[CFG_MAX_KEY_PATH];
    char quoted[CFG_QUOTE_MAX * 4 + 16];
    char hint[CFG_MAX_KEY_PATH + 32] = "";
    const char *best = NULL;
    size_t best_d = 3; /* suggest only within two edits */
    for (size_t i = 0; i < s->nfields; i++) {
        size_t d =
            strcasecmp(key, s->fields[i].key) == 0 ? 0 : edit_distance(key, s->fields[i].key);
        if (d < best_d) {
            best_d = d;
            best = s->fields[i].key;
        }
    }
    snprintf(full, sizeof(full), "%s%s%s", parent, parent[0] ? "." : "", key);
    quote(full, quoted, sizeof(quoted));
    if (best != NULL)
        snprintf(hint, sizeof(hint), " (did you mean \"%s%s%s\"?)", parent, parent[0] ? "." : "",
                 best);
    return cfg_fail(c, BDY_EINVAL, line, "", "unknown key %s%s", quoted, hint);
}

/* ---------------------------------------------------------------------- */
/* Values                                                                   */

static void *at(void *base, size_t offset)
{
    return (char *)base + offset;
}

static void list_get(const void *slot, char **items, size_t *count)
{
    memcpy(items, slot, sizeof(*items));
    memcpy(count, (const char *)slot + offsetof(cfg_list_layout, count), sizeof(*count));
}

static void list_set(void *slot, char *items, size_t count)
{
    memcpy(slot, &items, sizeof(items));
    memcpy((char *)slot + offsetof(cfg_list_layout, count), &count, sizeof(count));
}

static void free_section(const cfg_section *s, void *base);

static void free_field(const cfg_field *f, void *base)
{
    switch (f->type) {
    case CFG_PATH:
    case CFG_LISTEN: {
        char **slot = at(base, f->offset);
        free(*slot);
        *slot = NULL;
        break;
    }
    case CFG_SECTION:
        free_section(f->section, at(base, f->offset));
        break;
    case CFG_LIST: {
        char *items = NULL;
        size_t count = 0;
        list_get(at(base, f->offset), &items, &count);
        for (size_t i = 0; items != NULL && i < count; i++)
            free_field(f->item, items + i * f->item->size);
        free(items);
        list_set(at(base, f->offset), NULL, 0);
        break;
    }
    case CFG_UINT:
    case CFG_LOG_LEVEL:
        break;
    }
}

static void free_section(const cfg_section *s, void *base)
{
    for (size_t i = 0; i < s->nfields; i++)
        free_field(&s->fields[i], base);
}

/* Joins base_dir and text (text alone when absolute) and drops empty and "."
 * components. ".." stays: folding it is only right without symlinks.
 * The caller frees *out. */
static int resolve_path(const char *base_dir, const char *text, char **out)
{
    int rc = 0;
    char *joined = NULL;
    char *clean = NULL;
    size_t len = 0;
    if (text[0] == '/') {
        joined = strdup(text);
    } else if (base_dir == NULL) {
        rc = BDY_EINVAL;
        goto out;
    } else {
        len = strlen(base_dir) + 1 + strlen(text) + 1;
        joined = malloc(len);
        if (joined != NULL)
            snprintf(joined, len, "%s/%s", base_dir, text);
    }
    if (joined == NULL) {
        rc = BDY_ENOMEM;
        goto out;
    }
    len = strlen(joined);
    clean = malloc(len + 2);
    if (clean == NULL) {
        rc = BDY_ENOMEM;
        goto out;
    }
    size_t pos = 0;
    char *save = NULL;
    for (char *part = strtok_r(joined, "/", &save); part != NULL;
         part = strtok_r(NULL, "/", &save)) {
        if (strcmp(part, ".") == 0)
            continue;
        size_t plen = strlen(part);
        clean[pos++] = '/';
        memcpy(clean + pos, part, plen);
        pos += plen;
    }
    if (pos == 0)
        clean[pos++] = '/';
    clean[pos] = '\0';
    *out = clean;
    clean = NULL;
out:
    free(joined);
    free(clean);
    return rc;
}

static bool valid_port(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > 5)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    return v <= 65535;
}

/* A DNS name or an IPv4 address; numeric-looking hosts must be real IPv4
 * addresses so "999.1.1.1" fails here rather than at bind time. */
static bool valid_host(const char *h, size_t len)
{
    char buf[256];
    bool numeric = true;
    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = h[i];
        bool alnum =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum && ch != '.' && ch != '-' && ch != '_')
            return false;
        if (!(ch >= '0' && ch <= '9') && ch != '.')
            numeric = false;
    }
    if (!numeric)
        return true;
    struct in_addr a4;
    memcpy(buf, h, len);
    buf[len] = '\0';
    return inet_pton(AF_INET, buf, &a4) == 1;
}

static bool valid_listen(const char *text)
{
    size_t len = strlen(text);
    if (len == 0 || len > BDY_CONFIG_MAX_LISTEN)
        return false;
    if (text[0] == '[') {
        char buf[INET6_ADDRSTRLEN];
        struct in6_addr a6;
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':')
            return false;
        size_t hlen = (size_t)(close - text - 1);
        if (hlen == 0 || hlen >= sizeof(buf))
            return false;
        memcpy(buf, text + 1, hlen);
        buf[hlen] = '\0';
        return inet_pton(AF_INET6, buf, &a6) == 1 && valid_port(close + 2);
    }
    const char *colon = strrchr(text, ':');
    /* A colon before the last one means an IPv6 address without brackets,
     * which cannot be told apart from its port. */
    if (colon == NULL || memchr(text, ':', (size_t)(colon - text)) != NULL)
        return false;
    return valid_host(text, (size_t)(colon - text)) && valid_port(colon + 1);
}

/* Replaces the string at slot with a copy of value (or NULL). */
static int store_string(char **slot, const char *value)
{
    char *copy = NULL;
    if (value != NULL) {
        copy = strdup(value);
        if (copy == NULL)
            return BDY_ENOMEM;
    }
    free(*slot);
    *slot = copy;
    return 0;
}

/* Decodes scalar text into field f of the struct at base. On failure the
 * field keeps its previous value. line 0: the text is a default or a flag. */
static int set_scalar(const cfg_ctx *c, const cfg_field *f, const char *text, bool quoted,
                      unsigned line, const char *path, void *base)
{
    int rc = 0;
    char got[CFG_QUOTE_MAX * 4 + 16];
    char *resolved = NULL;
    bdy__yplain v;
    bdy__yaml_resolve_plain(text, &v);
    if (!quoted && v.kind == BDY__YPLAIN_NULL && text[0] == '\0')
        snprintf(got, sizeof(got), "nothing");
    else
        quote(text, got, sizeof(got));
    void *slot = at(base, f->offset);

    switch (f->type) {
    case CFG_UINT: {
        uint64_t x = 0;
        bool is_int = v.kind == BDY__YPLAIN_INT || v.kind == BDY__YPLAIN_UINT;
        if (!quoted && v.kind == BDY__YPLAIN_INT && v.i >= 0)
            x = (uint64_t)v.i;
        else if (!quoted && v.kind == BDY__YPLAIN_UINT)
            x = v.u;
        else
            return fail_expect(c, f, line, path, got,
                               quoted && is_int ? ", which is quoted and so a string" : "");
        if (x < f->min || x > f->max)
            return fail_expect(c, f, line, path, got, "");
        if (f->size == sizeof(unsigned)) {
            unsigned u = (unsigned)x;
            memcpy(slot, &u, sizeof(u));
        } else if (f->size == sizeof(uint64_t)) {
            uint64_t u = x;
            memcpy(slot, &u, sizeof(u));
        } else {
            return cfg_fail(c, BDY_EINVAL, line, path, "unsupported integer width");
        }
        return 0;
    }
    case CFG_PATH:
        if (!quoted && v.kind == BDY__YPLAIN_NULL) {
            if (!f->nullable)
                return fail_expect(c, f, line, path, got, "");
            return store_string(slot, NULL) < 0
                       ? cfg_fail(c, BDY_ENOMEM, line, path, "out of memory")
                       : 0;
        }
        if (text[0] == '\0')
            return cfg_fail(c, BDY_EINVAL, line, path, "must not be empty");
        rc = resolve_path(c->base_dir, text, &resolved);
        if (rc < 0)
            return cfg_fail(c, rc, line, path, "cannot resolve the path: %s", bdy_strerror(rc));
        if (strlen(resolved) > BDY_CONFIG_MAX_PATH) {
            free(resolved);
            return cfg_fail(c, BDY_EINVAL, line, path, "path longer than %d bytes",
                            BDY_CONFIG_MAX_PATH);
        }
        free(*(char **)slot);
        *(char **)slot = resolved;
        return 0;
    case CFG_LISTEN:
        if (!valid_listen(text))
            return fail_expect(c, f, line, path, got, "");
        if (store_string(slot, text) < 0)
            return cfg_fail(c, BDY_ENOMEM, line, path, "out of memory");
        return 0;
    case CFG_LOG_LEVEL: {
        bdy_log_level level;
        if (bdy_log_parse_level(text, &level) < 0)
            return fail_expect(c, f, line, path, got, "");
        memcpy(slot, &level, sizeof(level));
        return 0;
    }
    case CFG_SECTION:
    case CFG_LIST:
        break;
    }
    return cfg_fail(c, BDY_EINVAL, line, path, "not a scalar field");
}

static bool is_null_node(const bdy_ynode *n)
{
    if (n->kind != BDY_YNODE_SCALAR || n->quoted)
        return false;
    bdy__yplain v;
    bdy__yaml_resolve_plain(n->scalar, &v);
    return v.kind == BDY__YPLAIN_NULL;
}

static int apply_defaults(const cfg_ctx *c, const cfg_section *s, void *base)
{
    for (size_t i = 0; i < s->nfields; i++) {
        const cfg_field *f = &s->fields[i];
        int rc = 0;
        if (f->type == CFG_SECTION)
            rc = apply_defaults(c, f->section, at(base, f->offset));
        else if (f->type != CFG_LIST && f->def != NULL)
            rc = set_scalar(c, f, f->def, false, 0, f->key, base);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int decode_section(const cfg_ctx *c, const cfg_section *s, const bdy_ynode *n,
                          const char *path, void *base);

static int decode_value(const cfg_ctx *c, const cfg_field *f, const bdy_ynode *n, unsigned line,
                        const char *path, void *base);

/* A list value: null empties it, otherwise every element is decoded by
 * f->item into a fresh array that replaces the old one. */
static int decode_list(const cfg_ctx *c, const cfg_field *f, const bdy_ynode *n, unsigned line,
                       const char *path, void *base)
{
    int rc = 0;
    char got[CFG_QUOTE_MAX * 4 + 16];
    void *slot = at(base, f->offset);
    if (is_null_node(n)) {
        free_field(f, base);
        return 0;
    }
    if (n->kind != BDY_YNODE_SEQ) {
        describe(n, got, sizeof(got));
        return fail_expect(c, f, line, path, got, "");
    }
    if (n->count > f->max)
        return cfg_fail(c, BDY_EINVAL, line, path, "must have at most %llu entries (got %zu)",
                        (unsigned long long)f->max, n->count);
    free_field(f, base);
    if (n->count == 0)
        return 0;
    char *items = calloc(n->count, f->item->size);
    if (items == NULL)
        return cfg_fail(c, BDY_ENOMEM, line, path, "out of memory");
    /* Owned by the struct from here on, so every exit frees it the same way. */
    list_set(slot, items, n->count);
    for (size_t i = 0; i < n->count; i++) {
        char ipath[CFG_MAX_KEY_PATH];
        char *elem = items + i * f->item->size;
        snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
        if (f->item->type == CFG_SECTION) {
            rc = apply_defaults(c, f->item->section, elem);
            if (rc < 0)
                return rc;
        }
        rc = decode_value(c, f->item, n->items[i], n->items[i]->line, ipath, elem);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Decodes the value n of field f. line is where the error points: the
 * key's line for map entries (a value may start on a later line), the
 * item's own for list items. */
static int decode_value(const cfg_ctx *c, const cfg_field *f, const bdy_ynode *n, unsigned line,
                        const char *path, void *base)
{
    char got[CFG_QUOTE_MAX * 4 + 16];
    switch (f->type) {
    case CFG_SECTION:
        if (n->kind == BDY_YNODE_MAP)
            return decode_section(c, f->section, n, path, at(base, f->offset));
        if (is_null_node(n))
            return 0;
        describe(n, got, sizeof(got));
        return fail_expect(c, f, line, path, got, "");
    case CFG_LIST:
        return decode_list(c, f, n, line, path, base);
    case CFG_UINT:
    case CFG_PATH:
    case CFG_LISTEN:
    case CFG_LOG_LEVEL:
        break;
    }
    if (n->kind != BDY_YNODE_SCALAR) {
        describe(n, got, sizeof(got));
        return fail_expect(c, f, line, path, got, "");
    }
    return set_scalar(c, f, n->scalar, n->quoted, line, path, base);
}

static int decode_section(const cfg_ctx *c, const cfg_section *s, const bdy_ynode *n,
                          const char *path, void *base)
{
    bool seen[CFG_MAX_FIELDS] = {false};
    if (s->nfields > CFG_MAX_FIELDS)
        return cfg_fail(c, BDY_EINVAL, n->line, path, "section has too many fields");
    for (size_t i = 0; i < n->count; i++) {
        const char *key = n->keys[i];
        const cfg_field *f = NULL;
        for (size_t j = 0; j < s->nfields && f == NULL; j++) {
            if (strcmp(s->fields[j].key, key) == 0)
                f = &s->fields[j];
        }
        if (f == NULL)
            return fail_unknown_key(c, s, n->key_lines[i], path, key);
        seen[f - s->fields] = true;
        char kpath[CFG_MAX_KEY_PATH];
        snprintf(kpath, sizeof(kpath), "%s%s%s", path, path[0] ? "." : "", key);
        int rc = decode_value(c, f, n->items[i], n->key_lines[i], kpath, base);
        if (rc < 0)
            return rc;
    }
    for (size_t j = 0; j < s->nfields; j++) {
        if (s->fields[j].required && !seen[j])
            return cfg_fail(c, BDY_EINVAL, n->line, path, "missing required key \"%s\"",
                            s->fields[j].key);
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Loading                                                                  */

static int current_dir(char **out, bdy_errbuf *eb)
{
    char buf[PATH_MAX];
    if (getcwd(buf, sizeof(buf)) == NULL)
        return bdy_fail(eb, BDY_EIO, "cannot determine the current directory");
    *out = strdup(buf);
    return *out != NULL ? 0 : bdy_fail(eb, BDY_ENOMEM, "out of memory");
}

/* Makes dir absolute (against the current directory) and clean. */
static int absolute_dir(const char *dir, char **out, bdy_errbuf *eb)
{
    int rc = 0;
    char *cwd = NULL;
    if (dir == NULL || dir[0] != '/') {
        rc = current_dir(&cwd, eb);
        if (rc < 0)
            goto out;
    }
    if (dir == NULL || dir[0] == '\0')
        rc = resolve_path(cwd, ".", out);
    else
        rc = resolve_path(cwd, dir, out);
    if (rc < 0)
        rc = bdy_fail(eb, rc, "cannot resolve the base directory: %s", bdy_strerror(rc));
out:
    free(cwd);
    return rc;
}

/* Rewrites the YAML module's "line N: detail" as "name:N: detail". */
static int yaml_failure(const char *name, int rc, const bdy_errbuf *inner, bdy_errbuf *eb)
{
    unsigned line = 0;
    int used = 0;
    if (sscanf(inner->message, "line %u: %n", &line, &used) == 1 && used > 0)
        return bdy_fail(eb, rc, "%s:%u: %s", name, line, inner->message + used);
    return bdy_fail(eb, rc, "%s: %s", name, inner->message);
}

int bdy_config_from_text(const char *text, size_t len, const char *name_for_errors,
                         const char *base_dir, bdy_config **out, bdy_errbuf *eb)
{
    int rc = 0;
    bdy_config *cfg = NULL;
    bdy_ynode *root = NULL;
    bdy_errbuf inner;
    const char *name = name_for_errors != NULL ? name_for_errors : "<config>";
    char got[CFG_QUOTE_MAX * 4 + 16];
    bdy_errbuf_clear(&inner);
    if (len > BDY_CONFIG_MAX_BYTES) {
        rc = bdy_fail(eb, BDY_ETOOBIG, "%s: larger than the %zu-byte limit", name,
                      BDY_CONFIG_MAX_BYTES);
        goto out;
    }
    cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL) {
        rc = bdy_fail(eb, BDY_ENOMEM, "out of memory");
        goto out;
    }
    cfg->source = strdup(name);
    if (cfg->source == NULL) {
        rc = bdy_fail(eb, BDY_ENOMEM, "out of memory");
        goto out;
    }
    rc = absolute_dir(base_dir, &cfg->base_dir, eb);
    if (rc < 0)
        goto out;
    cfg_ctx c = {.name = name, .base_dir = cfg->base_dir, .eb = eb};
    rc = apply_defaults(&c, &top_section, cfg);
    if (rc < 0)
        goto out;
    rc = bdy_yaml_parse_one(text, len, &root, &inner);
    if (rc < 0) {
        rc = yaml_failure(name, rc, &inner, eb);
        goto out;
    }
    if (root->kind != BDY_YNODE_MAP) {
        describe(root, got, sizeof(got));
        rc = cfg_fail(&c, BDY_EINVAL, root->line, "",
                      "the configuration must be a map of keys (got %s)", got);
        goto out;
    }
    rc = decode_section(&c, &top_section, root, "", cfg);
    if (rc < 0)
        goto out;
    *out = cfg;
    cfg = NULL;
out:
    bdy_ynode_free(root);
    bdy_config_free(cfg);
    return rc;
}

int bdy_config_load(const char *path, bdy_config **out, bdy_errbuf *eb)
{
    int rc = 0;
    char *text = NULL;
    char *dir = NULL;
    size_t len = 0;
    rc = bdy_read_file(path, BDY_CONFIG_MAX_BYTES, &text, &len);
    switch (rc) {
    case 0:
        break;
    case BDY_ENOTFOUND:
        rc = bdy_fail(eb, rc, "%s: no such file", path);
        goto out;
    case BDY_ETOOBIG:
        rc = bdy_fail(eb, rc, "%s: larger than the %zu-byte limit", path, BDY_CONFIG_MAX_BYTES);
        goto out;
    case BDY_EINVAL:
        rc = bdy_fail(eb, rc, "%s: is a folder, not a file", path);
        goto out;
    default:
        rc = bdy_fail(eb, rc, "%s: cannot read: %s", path, bdy_strerror(rc));
        goto out;
    }
    /* The folder comes from the path as written, not realpath(): see the
     * header. */
    dir = strdup(path);
    if (dir == NULL) {
        rc = bdy_fail(eb, BDY_ENOMEM, "out of memory");
        goto out;
    }
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        dir[0] = '\0'; /* the current directory */
    else if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    rc = bdy_config_from_text(text, len, path, dir, out, eb);
out:
    free(dir);
    free(text);
    return rc;
}

void bdy_config_free(bdy_config *cfg)
{
    if (cfg == NULL)
        return;
    free_section(&top_section, cfg);
    free(cfg->source);
    free(cfg->base_dir);
    free(cfg);
}

static const cfg_field *top_field(const char *key)
{
    for (size_t i = 0; i < top_section.nfields; i++) {
        if (strcmp(top_fields[i].key, key) == 0)
            return &top_fields[i];
    }
    return NULL;
}

int bdy_config_override_listen(bdy_config *cfg, const char *text, bdy_errbuf *eb)
{
    cfg_ctx c = {.name = "--listen", .base_dir = cfg->base_dir, .eb = eb};
    if (text == NULL)
        return bdy_fail(eb, BDY_EINVAL, "--listen: missing value");
    /* Treated as quoted: on the command line "null" is just text. */
    return set_scalar(&c, top_field("listen"), text, true, 0, "", cfg);
}

int bdy_config_override_data_dir(bdy_config *cfg, const char *path, bdy_errbuf *eb)
{
    int rc = 0;
    char *cwd = NULL;
    if (path == NULL) {
        rc = bdy_fail(eb, BDY_EINVAL, "--data: missing value");
        goto out;
    }
    rc = current_dir(&cwd, eb);
    if (rc < 0)
        goto out;
    cfg_ctx c = {.name = "--data", .base_dir = cwd, .eb = eb};
    rc = set_scalar(&c, top_field("dataDir"), path, true, 0, "", cfg);
out:
    free(cwd);
    return rc;
}
