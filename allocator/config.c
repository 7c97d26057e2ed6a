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
 * Scalar kinds: CFG_UINT (integer in [min, max]), CFG_DOUBLE (number in
 * [dmin, dmax]), CFG_ENUM (one word of .choices, stored as its index),
 * CFG_NAME (a string that must obey a cfg_name_kind rule: DNS label, DNS
 * subdomain, label key or value), CFG_PATH, CFG_LISTEN and CFG_LOG_LEVEL.
 * CFG_STRMAP is a map of string keys to string values, both checked by a
 * cfg_name_kind, stored as { {char *key; char *value;} *items; size_t count; }.
 *
 * Lists are generic too. A CFG_LIST row points at an item descriptor that
 * says how one element decodes and how big it is; the list member in the
 * struct is always { T *items; size_t count; }. The items are paths (crds,
 * manifests) or maps (pools). A list of maps needs no decoder code:
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
 *
 * Rules that span several keys are section data as well, checked after the
 * section's map has been decoded:
 *
 *   .order     pairs of integer keys where the first must not exceed the
 *              second (minWarm <= maxWarm); the error names the key that was
 *              written, so a default is never blamed;
 *   .one_of    string keys of which exactly one must be set (manifest,
 *              booklet);
 *   .identity  for sections that are list items: the string keys that
 *              together must be unique within the list ("namespace/name"),
 *              with .noun for the message ("pool default/a is defined twice").
 */
#include "bindery/config.h"

#include "bindery/log.h"
#include "bindery/pool.h"
#include "bindery/sizing.h"
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
/* Longest DNS label (RFC 1123), and so longest label-key name part and label value. */
#define CFG_DNS_LABEL_MAX 63
/* Longest DNS subdomain (RFC 1123), and so longest label-key prefix. */
#define CFG_DNS_SUBDOMAIN_MAX 253
/* Longest "namespace/name" identity built for duplicate checks. */
#define CFG_MAX_IDENTITY 600

typedef enum cfg_type {
    CFG_UINT,      /* unsigned or size_t (by .size), an integer in [min, max] */
    CFG_DOUBLE,    /* double, a number in [dmin, dmax] */
    CFG_ENUM,      /* an int-sized enum: the index of the word in .choices */
    CFG_NAME,      /* char *, a string obeying the rule .name */
    CFG_PATH,      /* char *, resolved to an absolute path */
    CFG_LISTEN,    /* char *, host:port */
    CFG_LOG_LEVEL, /* bdy_log_level */
    CFG_SECTION,   /* an embedded struct described by .section */
    CFG_LIST,      /* { T *items; size_t count; }, items described by .item */
    CFG_STRMAP,    /* { cfg_pair *items; size_t count; }, keys .key_name, values .name */
} cfg_type;

/* What a CFG_NAME string (or a CFG_STRMAP key or value) must look like. */
typedef enum cfg_name_kind {
    CFG_NAME_DNS_LABEL,     /* RFC 1123 label: a pool name, a namespace */
    CFG_NAME_DNS_SUBDOMAIN, /* RFC 1123 subdomain: most Kubernetes object names */
    CFG_NAME_LABEL_KEY,     /* [subdomain/]name, a Kubernetes label key */
    CFG_NAME_LABEL_VALUE,   /* a Kubernetes label value, possibly empty */
    CFG_NAME_TIME_OF_DAY,   /* "HH:MM[:SS]" UTC, or an RFC 3339 timestamp (overrides) */
} cfg_name_kind;

typedef struct cfg_field cfg_field;

typedef struct cfg_ctx cfg_ctx;

/* minWarm <= maxWarm: both keys name CFG_UINT fields of the same section. */
typedef struct cfg_order {
    const char *lo;
    const char *hi;
} cfg_order;

typedef struct cfg_section {
    const cfg_field *fields;
    size_t nfields;
    const cfg_order *order; /* pairs checked after decoding; NULL: none */
    size_t norder;
    const char *const *one_of;   /* NULL-terminated CFG_NAME keys; exactly one set */
    const char *const *identity; /* NULL-terminated string keys unique within a list */
    const char *noun;            /* what one element is, for duplicate messages */
    /* Rules no table says, run last on the decoded base; NULL: none. */
    int (*check)(const cfg_ctx *c, const bdy_ynode *n, const char *path, const void *base);
} cfg_section;

struct cfg_field {
    const char *key;            /* the YAML key, camelCase */
    const char *doc;            /* what the key is for (CONFIG.md says the same) */
    size_t offset;              /* of the member within the struct the section describes */
    size_t size;                /* sizeof the member; for a list item, sizeof one element */
    uint64_t min;               /* CFG_UINT: smallest value */
    uint64_t max;               /* CFG_UINT: largest value; CFG_LIST, CFG_STRMAP: most entries */
    double dmin;                /* CFG_DOUBLE: smallest value */
    double dmax;                /* CFG_DOUBLE: largest value */
    const char *const *choices; /* CFG_ENUM: NULL-terminated words, index = stored value */
    const char *def;            /* default as YAML plain-scalar text; NULL: zero / empty / NULL */
    const cfg_section *section; /* CFG_SECTION */
    const cfg_field *item;      /* CFG_LIST: one element, decoded at offset 0 */
    cfg_type type;
    cfg_name_kind name;     /* CFG_NAME: the rule; CFG_STRMAP: the rule for values */
    cfg_name_kind key_name; /* CFG_STRMAP: the rule for keys */
    bool required;          /* absence is an error */
    bool nullable;          /* CFG_PATH, CFG_NAME: null means "not set" (NULL) */
};

/* How every list member is laid out; see the header. */
typedef struct cfg_list_layout {
    void *items;
    size_t count;
} cfg_list_layout;

/* One entry of a CFG_STRMAP. */
typedef struct cfg_pair {
    char *key;
    char *value;
} cfg_pair;

#define CFG_SAME_LIST_LAYOUT(T)                                                                    \
    _Static_assert(sizeof(T) == sizeof(cfg_list_layout) &&                                         \
                       offsetof(T, count) == offsetof(cfg_list_layout, count),                     \
                   #T " must be laid out as { T *items; size_t count; }")

CFG_SAME_LIST_LAYOUT(bdy_config_paths);
CFG_SAME_LIST_LAYOUT(bdy_config_pools);
CFG_SAME_LIST_LAYOUT(bdy_config_labels);
CFG_SAME_LIST_LAYOUT(bdy_config_overrides);
_Static_assert(sizeof(bdy_config_label) == sizeof(cfg_pair) &&
                   offsetof(bdy_config_label, key) == offsetof(cfg_pair, key) &&
                   offsetof(bdy_config_label, value) == offsetof(cfg_pair, value),
               "bdy_config_label must be laid out as { char *key; char *value; }");
_Static_assert(sizeof(bdy_runtime_kind) == sizeof(int) && BDY_RUNTIME_PROCESS == 0 &&
                   BDY_RUNTIME_BENCH == 1,
               "runtime_kinds[] must list the enum in order, stored as an int");

/* Table rows, one macro per kind so each row reads as one line. */
#define UINT_FIELD(T, m, k, lo, hi, d, text)                                                       \
    {                                                                                              \
        .key = (k), .type = CFG_UINT, MEMBER(T, m), .min = (lo), .max = (hi), .def = (d),          \
        .doc = (text)                                                                              \
    }
#define DOUBLE_FIELD(T, m, k, lo, hi, d, text)                                                     \
    {                                                                                              \
        .key = (k), .type = CFG_DOUBLE, MEMBER(T, m), .dmin = (lo), .dmax = (hi), .def = (d),      \
        .doc = (text)                                                                              \
    }
#define ENUM_FIELD(T, m, k, words, d, text)                                                        \
    {                                                                                              \
        .key = (k), .type = CFG_ENUM, MEMBER(T, m), .choices = (words), .def = (d), .doc = (text)  \
    }
#define NAME_FIELD(T, m, k, rule, d, text)                                                         \
    {                                                                                              \
        .key = (k), .type = CFG_NAME, MEMBER(T, m), .name = (rule), .def = (d), .doc = (text)      \
    }
#define REQUIRED_NAME_FIELD(T, m, k, rule, text)                                                   \
    {                                                                                              \
        .key = (k), .type = CFG_NAME, MEMBER(T, m), .name = (rule), .required = true,              \
        .doc = (text)                                                                              \
    }
#define OPTIONAL_NAME_FIELD(T, m, k, rule, text)                                                   \
    {                                                                                              \
        .key = (k), .type = CFG_NAME, MEMBER(T, m), .name = (rule), .nullable = true,              \
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
#define STRMAP_FIELD(T, m, k, most, krule, vrule, text)                                            \
    {                                                                                              \
        .key = (k), .type = CFG_STRMAP, MEMBER(T, m), .max = (most), .key_name = (krule),          \
        .name = (vrule), .doc = (text)                                                             \
    }

/* A section with no rules spanning keys. */
#define PLAIN_SECTION(f)                                                                           \
    {                                                                                              \
        .fields = (f), .nfields = ARRAY_LEN(f)                                                     \
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

static const cfg_field tls_fields[] = {
    OPTIONAL_PATH_FIELD(bdy_config_tls, cert_file, "certFile",
                        "PEM certificate chain of the HTTP API; with keyFile, HTTPS only"),
    OPTIONAL_PATH_FIELD(bdy_config_tls, key_file, "keyFile", "PEM private key of certFile"),
    OPTIONAL_PATH_FIELD(bdy_config_tls, client_ca_file, "clientCAFile",
                        "PEM certificate authorities of client certificates"),
    OPTIONAL_PATH_FIELD(bdy_config_tls, client_crl_file, "clientCRLFile",
                        "PEM revocation lists of those authorities"),
};

static const cfg_field store_fields[] = {
    UINT_FIELD(bdy_config_store, watch_history, "watchHistory", 100, 10000000, "10000",
               "events kept so a watch can resume from an older resourceVersion"),
    UINT_FIELD(bdy_config_store, max_batch, "maxBatch", 1, 65536, "512",
               "most writes committed in one transaction"),
    UINT_FIELD(bdy_config_store, busy_timeout_ms, "busyTimeoutMs", 0, 600000, "5000",
               "how long SQLite waits for a lock held elsewhere (0: the default, 5000)"),
};

/* Indexed by bdy_runtime_kind (asserted above). */
static const char *const bool_words[] = {"false", "true", NULL};
static const char *const runtime_kinds[] = {"process", "bench", NULL};

static const cfg_field runtime_fields[] = {
    ENUM_FIELD(bdy_config_runtime, kind, "kind", runtime_kinds, "process",
               "what runs a world: local processes, or nothing (bench)"),
    UINT_FIELD(bdy_config_runtime, port_min, "portMin", 1024, 65535, "20000",
               "lowest host port handed to worlds"),
    UINT_FIELD(bdy_config_runtime, port_max, "portMax", 1024, 65535, "29999",
               "highest host port handed to worlds"),
    SCALAR_FIELD(bdy_config_runtime, work_dir, "workDir", CFG_PATH, ".",
                 "working folder of world processes"),
    SCALAR_FIELD(bdy_config_runtime, log_dir, "logDir", CFG_PATH, "worlds",
                 "folder for the worlds' stdout and stderr"),
    UINT_FIELD(bdy_config_runtime, log_retention_h, "logRetentionHours", 0, 87600, "24",
               "hours a log of a world no longer running is kept after its last line; 0: "
               "forever"),
    UINT_FIELD(bdy_config_runtime, log_max_mb, "logMaxMegabytes", 0, 1048576, "256",
               "MiB a running world's log may reach before its oldest half is dropped; 0: no "
               "cap"),
    UINT_FIELD(bdy_config_runtime, bench_ready_delay_ms, "benchReadyDelayMs", 0, 600000, "0",
               "bench runtime: how long a world takes to become Ready"),
};

static const cfg_order runtime_order[] = {{"portMin", "portMax"}};

static const cfg_field demand_fields[] = {
    UINT_FIELD(bdy_config_demand, minute_retention_h, "minuteRetentionHours", 1, 8760, "48",
               "hours of per-minute demand history kept before it is folded into 5 minutes"),
    UINT_FIELD(bdy_config_demand, retention_days, "retentionDays", 3, 3660, "35",
               "days of 5-minute demand history kept (the forecaster fits its parameters on "
               "at least 3)"),
    UINT_FIELD(bdy_config_demand, lead_time_s, "leadTimeSeconds", 0, 86400, "30",
               "world lead time the sizing assumes until one has been measured"),
    ENUM_FIELD(bdy_config_demand, weekly, "weeklySeason", bool_words, "false",
               "forecast with a weekly season besides the daily one"),
};

static const cfg_field reconciler_fields[] = {
    UINT_FIELD(bdy_config_reconciler, workers, "workers", 1, 64, "2",
               "reconciler worker threads draining the work queue"),
};

static const cfg_field claims_fields[] = {
    UINT_FIELD(bdy_config_claims, record_retention_h, "recordRetentionHours", 1, 8760, "24",
               "hours a released claim's record answers GET, DELETE and replays of its key"),
};

static const cfg_field override_fields[] = {
    {.key = "from",
     .type = CFG_NAME,
     MEMBER(bdy_config_override, from),
     .name = CFG_NAME_TIME_OF_DAY,
     .required = true,
     .doc = "start of the window: HH:MM UTC every day, or an RFC 3339 time"},
    {.key = "to",
     .type = CFG_NAME,
     MEMBER(bdy_config_override, to),
     .name = CFG_NAME_TIME_OF_DAY,
     .required = true,
     .doc = "end of the window, the same kind as from"},
    /* Required: without it the window would do nothing, in silence. */
    {.key = "minWarm",
     .type = CFG_UINT,
     MEMBER(bdy_config_override, min_warm),
     .min = 0,
     .max = 100000,
     .def = "0",
     .required = true,
     .doc = "fewest warm worlds during the window (ready when it opens)"},
};
static int check_override(const cfg_ctx *c, const bdy_ynode *n, const char *path, const void *base);
static const cfg_section override_section = {
    .fields = override_fields, .nfields = ARRAY_LEN(override_fields), .check = check_override};
static const cfg_field override_item = {.key = "",
                                        .type = CFG_SECTION,
                                        .size = sizeof(bdy_config_override),
                                        .section = &override_section,
                                        .doc = "a scheduled floor"};

static const cfg_field pool_fields[] = {
    REQUIRED_NAME_FIELD(bdy_config_pool, name, "name", CFG_NAME_DNS_LABEL,
                        "the pool's name, unique within its namespace"),
    NAME_FIELD(bdy_config_pool, ns, "namespace", CFG_NAME_DNS_LABEL, "default",
               "namespace of the pool's worlds and of its manifest or booklet"),
    OPTIONAL_NAME_FIELD(bdy_config_pool, manifest, "manifest", CFG_NAME_DNS_SUBDOMAIN,
                        "the ModuleManifest the worlds run"),
    OPTIONAL_NAME_FIELD(bdy_config_pool, booklet, "booklet", CFG_NAME_DNS_SUBDOMAIN,
                        "the Booklet the worlds run"),
    UINT_FIELD(bdy_config_pool, min_warm, "minWarm", 0, 100000, "1",
               "fewest warm worlds kept, whatever the forecast"),
    UINT_FIELD(bdy_config_pool, max_warm, "maxWarm", 0, 100000, "100",
               "most warm worlds kept, whatever the forecast"),
    UINT_FIELD(bdy_config_pool, max_worlds, "maxWorlds", 1, 1000000, "1000",
               "most worlds of the pool, warm and allocated"),
    DOUBLE_FIELD(bdy_config_pool, service_level, "serviceLevel", 0.5, 0.9999, "0.99",
                 "probability that a claim finds a warm world"),
    UINT_FIELD(bdy_config_pool, creation_rate, "creationRate", 1, 10000, "20",
               "most worlds created per second"),
    UINT_FIELD(bdy_config_pool, scale_down_cooldown_s, "scaleDownCooldownSeconds", 0, 86400, "60",
               "seconds a surplus must last before idle worlds are deleted"),
    STRMAP_FIELD(bdy_config_pool, labels, "labels", BDY_CONFIG_MAX_LABELS, CFG_NAME_LABEL_KEY,
                 CFG_NAME_LABEL_VALUE, "labels put on every world of the pool"),
    LIST_FIELD(bdy_config_pool, overrides, "overrides", BDY_SIZING_MAX_OVERRIDES, &override_item,
               "scheduled floors of the warm target"),
};

static const cfg_order pool_order[] = {{"minWarm", "maxWarm"}, {"maxWarm", "maxWorlds"}};
static const char *const pool_sources[] = {"manifest", "booklet", NULL};
static const char *const pool_identity[] = {"namespace", "name", NULL};

static const cfg_section http_section = PLAIN_SECTION(http_fields);
static const cfg_section auth_section = PLAIN_SECTION(auth_fields);
static int check_tls(const cfg_ctx *c, const bdy_ynode *n, const char *path, const void *base);
static const cfg_section tls_section = {
    .fields = tls_fields, .nfields = ARRAY_LEN(tls_fields), .check = check_tls};
static const cfg_section store_section = PLAIN_SECTION(store_fields);
static const cfg_section runtime_section = {.fields = runtime_fields,
                                            .nfields = ARRAY_LEN(runtime_fields),
                                            .order = runtime_order,
                                            .norder = ARRAY_LEN(runtime_order)};
static const cfg_section reconciler_section = PLAIN_SECTION(reconciler_fields);
static int check_demand(const cfg_ctx *c, const bdy_ynode *n, const char *path, const void *base);
static const cfg_section demand_section = {
    .fields = demand_fields, .nfields = ARRAY_LEN(demand_fields), .check = check_demand};
static const cfg_section claims_section = PLAIN_SECTION(claims_fields);
static const cfg_section pool_section = {.fields = pool_fields,
                                         .nfields = ARRAY_LEN(pool_fields),
                                         .order = pool_order,
                                         .norder = ARRAY_LEN(pool_order),
                                         .one_of = pool_sources,
                                         .identity = pool_identity,
                                         .noun = "pool"};

/* One entry of a list of paths: decoded at offset 0 of its array slot. */
static const cfg_field path_item = {
    .key = "", .type = CFG_PATH, .offset = 0, .size = sizeof(char *), .doc = "a file or folder"};

/* One pool: a whole bdy_config_pool in its array slot. */
static const cfg_field pool_item = {.key = "",
                                    .type = CFG_SECTION,
                                    .offset = 0,
                                    .size = sizeof(bdy_config_pool),
                                    .section = &pool_section,
                                    .doc = "a warm pool"};

static const cfg_field top_fields[] = {
    SCALAR_FIELD(bdy_config, listen, "listen", CFG_LISTEN, "127.0.0.1:7780",
                 "address of the HTTP API"),
    SCALAR_FIELD(bdy_config, data_dir, "dataDir", CFG_PATH, "data",
                 "folder for the SQLite store and demand history"),
    SCALAR_FIELD(bdy_config, log_level, "logLevel", CFG_LOG_LEVEL, "info",
                 "debug, info, warn or error"),
    SECTION_FIELD(bdy_config, http, "http", &http_section, "HTTP server limits"),
    SECTION_FIELD(bdy_config, auth, "auth", &auth_section, "authentication"),
    SECTION_FIELD(bdy_config, tls, "tls", &tls_section, "TLS of the HTTP API"),
    SECTION_FIELD(bdy_config, store, "store", &store_section, "embedded object store"),
    LIST_FIELD(bdy_config, crds, "crds", BDY_CONFIG_MAX_LIST, &path_item,
               "CRD files or folders applied at start-up, before manifests"),
    LIST_FIELD(bdy_config, manifests, "manifests", BDY_CONFIG_MAX_LIST, &path_item,
               "manifest files or folders applied at start-up"),
    SECTION_FIELD(bdy_config, runtime, "runtime", &runtime_section, "what runs the worlds"),
    SECTION_FIELD(bdy_config, reconciler, "reconciler", &reconciler_section,
                  "the embedded reconciler"),
    SECTION_FIELD(bdy_config, demand, "demand", &demand_section,
                  "demand history and forecast sizing"),
    SECTION_FIELD(bdy_config, claims, "claims", &claims_section, "the claim API"),
    LIST_FIELD(bdy_config, pools, "pools", BDY_CONFIG_MAX_POOLS, &pool_item, "warm pools"),
};

static int check_top(const cfg_ctx *c, const bdy_ynode *n, const char *path, const void *base);
static const cfg_section top_section = {
    .fields = top_fields, .nfields = ARRAY_LEN(top_fields), .check = check_top};

/* What one decode needs besides the tree. */
struct cfg_ctx {
    const char *name;     /* prefix of messages: the file name or the flag */
    const char *base_dir; /* absolute; relative paths resolve against it */
    bdy_errbuf *eb;
};

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
    char detail[512];
    char where[32] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(where, sizeof(where), ":%u", line);
    return bdy_fail(c->eb, rc, "%s%s: %s%s%s", c->name, where, path, path[0] ? ": " : "", detail);
}

/* ---------------------------------------------------------------------- */
/* Names                                                                    */

static bool is_lower_alnum(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

static bool is_alnum(char ch)
{
    return is_lower_alnum(ch) || (ch >= 'A' && ch <= 'Z');
}

/* RFC 1123 label of len bytes at s: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63. */
static bool dns_label_n(const char *s, size_t len)
{
    if (len == 0 || len > CFG_DNS_LABEL_MAX)
        return false;
    if (!is_lower_alnum(s[0]) || !is_lower_alnum(s[len - 1]))
        return false;
    for (size_t i = 1; i + 1 < len; i++) {
        if (!is_lower_alnum(s[i]) && s[i] != '-')
            return false;
    }
    return true;
}

/* RFC 1123 subdomain: dot-separated labels, at most 253 bytes in all. As in
 * Kubernetes, only the total length is capped, not each label's. */
static bool dns_subdomain_n(const char *s, size_t len)
{
    if (len == 0 || len > CFG_DNS_SUBDOMAIN_MAX)
        return false;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.')
            continue;
        size_t part = i - start;
        if (part == 0 || !is_lower_alnum(s[start]) || !is_lower_alnum(s[i - 1]))
            return false;
        for (size_t j = start; j < i; j++) {
            if (!is_lower_alnum(s[j]) && s[j] != '-')
                return false;
        }
        start = i + 1;
    }
    return true;
}

/* A label value, or a label key's name part: ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9],
 * at most 63 bytes; empty only where allow_empty. */
static bool label_name_n(const char *s, size_t len, bool allow_empty)
{
    if (len == 0)
        return allow_empty;
    if (len > CFG_DNS_LABEL_MAX || !is_alnum(s[0]) || !is_alnum(s[len - 1]))
        return false;
    for (size_t i = 1; i + 1 < len; i++) {
        if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
            return false;
    }
    return true;
}

static bool valid_dns_label(const char *s)
{
    return dns_label_n(s, strlen(s));
}

static bool valid_dns_subdomain(const char *s)
{
    return dns_subdomain_n(s, strlen(s));
}

/* A Kubernetes label key: an optional DNS-subdomain prefix and '/', then a
 * name. A second '/' fails as a character of the name. Keys under
 * bindery.dev are bindery's own (a pool's labels would otherwise fake a
 * world's template or pool). */
static bool valid_label_key(const char *s)
{
    const char *slash = strchr(s, '/');
    if (slash == NULL)
        return label_name_n(s, strlen(s), false);
    return dns_subdomain_n(s, (size_t)(slash - s)) &&
           label_name_n(slash + 1, strlen(slash + 1), false) && !bdy_reserved_key(s);
}

static bool valid_label_value(const char *s)
{
    return label_name_n(s, strlen(s), true);
}

static bool valid_time_of_day(const char *s)
{
    bool daily = false;
    double t = 0;
    return bdy_override_time_parse(s, &daily, &t) == 0;
}

typedef struct cfg_name_rule {
    const char *noun;   /* "a DNS label" */
    const char *plural; /* "DNS labels", for maps */
    const char *rule;   /* what the noun means, spelled out for the user */
    bool (*valid)(const char *s);
} cfg_name_rule;

static const cfg_name_rule name_rules[] = {
    [CFG_NAME_DNS_LABEL] = {"a DNS label", "DNS labels",
                            "at most 63 lower-case letters, digits or '-', starting and ending "
                            "with a letter or digit",
                            valid_dns_label},
    [CFG_NAME_DNS_SUBDOMAIN] = {"a DNS subdomain", "DNS subdomains",
                                "at most 253 lower-case letters, digits, '-' or '.', each "
                                "dot-separated part starting and ending with a letter or digit",
                                valid_dns_subdomain},
    [CFG_NAME_LABEL_KEY] = {"a label key", "label keys",
                            "an optional DNS subdomain (not " BDY_RESERVED_DOMAIN
                            " or under it) and '/', then at most 63 letters, digits, '-', '_' or "
                            "'.', starting and ending with a letter or digit",
                            valid_label_key},
    [CFG_NAME_LABEL_VALUE] = {"a label value", "label values",
                              "\"\" or at most 63 letters, digits, '-', '_' or '.', starting "
                              "and ending with a letter or digit",
                              valid_label_value},
    [CFG_NAME_TIME_OF_DAY] = {"a time", "times",
                              "HH:MM or HH:MM:SS (UTC, every day) or an RFC 3339 time such as "
                              "2025-06-01T17:45:00Z",
                              valid_time_of_day},
};

/* ---------------------------------------------------------------------- */
/* Messages about values                                                    */

/* The "must be ..." phrase for a field. */
static void expectation(const cfg_field *f, char *buf, size_t size)
{
    size_t pos = 0;
    switch (f->type) {
    case CFG_UINT:
        snprintf(buf, size, "must be an integer between %llu and %llu", (unsigned long long)f->min,
                 (unsigned long long)f->max);
        break;
    case CFG_DOUBLE:
        snprintf(buf, size, "must be a number between %g and %g", f->dmin, f->dmax);
        break;
    case CFG_ENUM:
        pos = (size_t)snprintf(buf, size, "must be one of ");
        for (size_t i = 0; f->choices[i] != NULL && pos < size; i++)
            pos +=
                (size_t)snprintf(buf + pos, size - pos, "%s%s", i > 0 ? ", " : "", f->choices[i]);
        break;
    case CFG_NAME:
        snprintf(buf, size, "must be %s%s: %s", name_rules[f->name].noun,
                 f->nullable ? " or null" : "", name_rules[f->name].rule);
        break;
    case CFG_PATH:
        snprintf(buf, size, f->nullable ? "must be a path or null" : "must be a path");
        break;
    case CFG_LISTEN:
        snprintf(buf, size,
                 "must be IPv4:port, localhost:port or [IPv6]:port with a port between 0 and "
                 "65535, e.g. \"127.0.0.1:7780\" or \"[::1]:7780\"");
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
    case CFG_STRMAP:
        snprintf(buf, size, "must be a map of %s to %s", name_rules[f->key_name].plural,
                 name_rules[f->name].plural);
        break;
    }
}

static int fail_expect(const cfg_ctx *c, const cfg_field *f, unsigned line, const char *path,
                       const char *got, const char *note)
{
    char expect[320];
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
    case CFG_NAME:
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
    case CFG_STRMAP: {
        char *items = NULL;
        size_t count = 0;
        list_get(at(base, f->offset), &items, &count);
        cfg_pair *pairs = (cfg_pair *)(void *)items;
        for (size_t i = 0; pairs != NULL && i < count; i++) {
            free(pairs[i].key);
            free(pairs[i].value);
        }
        free(items);
        list_set(at(base, f->offset), NULL, 0);
        break;
    }
    case CFG_UINT:
    case CFG_DOUBLE:
    case CFG_ENUM:
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

/* "localhost" or an IPv4 address: what the server can bind without a
 * resolver (a name's addresses may change, and which of them to bind is a
 * guess), so a config that passes here does not fail at start. */
static bool valid_host(const char *h, size_t len)
{
    char buf[INET_ADDRSTRLEN];
    struct in_addr a4;
    if (len == strlen("localhost") && memcmp(h, "localhost", len) == 0)
        return true;
    if (len == 0 || len >= sizeof(buf))
        return false;
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
        /* A v4-mapped address (::ffff:127.0.0.1) cannot be bound by the
         * v6-only socket the server listens on: say so here, not at start. */
        return inet_pton(AF_INET6, buf, &a6) == 1 && !IN6_IS_ADDR_V4MAPPED(&a6) &&
               valid_port(close + 2);
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
    case CFG_DOUBLE: {
        double x = 0;
        bool is_number =
            v.kind == BDY__YPLAIN_INT || v.kind == BDY__YPLAIN_UINT || v.kind == BDY__YPLAIN_FLOAT;
        if (quoted || !is_number)
            return fail_expect(c, f, line, path, got,
                               quoted && is_number ? ", which is quoted and so a string" : "");
        if (v.kind == BDY__YPLAIN_INT)
            x = (double)v.i;
        else if (v.kind == BDY__YPLAIN_UINT)
            x = (double)v.u;
        else
            x = v.d;
        /* Written so that NaN, which compares false with everything, fails. */
        if (!(x >= f->dmin && x <= f->dmax) || f->size != sizeof(double))
            return fail_expect(c, f, line, path, got, "");
        memcpy(slot, &x, sizeof(x));
        return 0;
    }
    case CFG_ENUM:
        /* A word is a word whether quoted or not; only exact spellings count. */
        for (int i = 0; f->choices[i] != NULL; i++) {
            if (strcmp(f->choices[i], text) == 0 && f->size == sizeof(int)) {
                memcpy(slot, &i, sizeof(i));
                return 0;
            }
        }
        return fail_expect(c, f, line, path, got, "");
    case CFG_NAME:
        /* Other plain scalars (true, 12) are taken as the text written: a
         * name that looks like a number is still a valid name. Null is not. */
        if (!quoted && v.kind == BDY__YPLAIN_NULL) {
            if (!f->nullable)
                return fail_expect(c, f, line, path, got, "");
            return store_string(slot, NULL) < 0
                       ? cfg_fail(c, BDY_ENOMEM, line, path, "out of memory")
                       : 0;
        }
        if (!name_rules[f->name].valid(text))
            return fail_expect(c, f, line, path, got, "");
        if (store_string(slot, text) < 0)
            return cfg_fail(c, BDY_ENOMEM, line, path, "out of memory");
        return 0;
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
    case CFG_STRMAP:
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
        else if (f->type != CFG_LIST && f->type != CFG_STRMAP && f->def != NULL)
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

/* The line of key in the map n, or 0 when the key is not written there. */
static unsigned key_line(const bdy_ynode *n, const char *key)
{
    for (size_t i = 0; n->kind == BDY_YNODE_MAP && i < n->count; i++) {
        if (strcmp(n->keys[i], key) == 0)
            return n->key_lines[i];
    }
    return 0;
}

static const cfg_field *section_field(const cfg_section *s, const char *key)
{
    for (size_t i = 0; i < s->nfields; i++) {
        if (strcmp(s->fields[i].key, key) == 0)
            return &s->fields[i];
    }
    return NULL;
}

/* The value of a CFG_UINT field, whatever its width. */
static uint64_t read_uint(const cfg_field *f, const void *base)
{
    const char *slot = (const char *)base + f->offset;
    if (f->size == sizeof(unsigned)) {
        unsigned u = 0;
        memcpy(&u, slot, sizeof(u));
        return u;
    }
    uint64_t u = 0;
    memcpy(&u, slot, sizeof(u));
    return u;
}

/* The string of a CFG_NAME (or CFG_PATH) field; NULL when not set. */
static const char *read_string(const cfg_field *f, const void *base)
{
    const char *s = NULL;
    memcpy(&s, (const char *)base + f->offset, sizeof(s));
    return s;
}

/* lo <= hi for one cfg_order pair of the section decoded from the map n.
 * The message names the key the user wrote: the upper one if written
 * ("maxWarm: must be at least minWarm (5)"), else the lower one, so a
 * default the user never saw is not the key blamed. */
static int check_order(const cfg_ctx *c, const cfg_section *s, const cfg_order *o,
                       const bdy_ynode *n, const char *path, const void *base)
{
    char kpath[CFG_MAX_KEY_PATH];
    const cfg_field *lo = section_field(s, o->lo);
    const cfg_field *hi = section_field(s, o->hi);
    if (lo == NULL || hi == NULL || lo->type != CFG_UINT || hi->type != CFG_UINT)
        return cfg_fail(c, BDY_EINVAL, n->line, path, "bad order rule %s <= %s", o->lo, o->hi);
    uint64_t lv = read_uint(lo, base);
    uint64_t hv = read_uint(hi, base);
    if (lv <= hv)
        return 0;
    unsigned line = key_line(n, o->hi);
    if (line > 0) {
        snprintf(kpath, sizeof(kpath), "%s%s%s", path, path[0] ? "." : "", o->hi);
        return cfg_fail(c, BDY_EINVAL, line, kpath, "must be at least %s (%llu)", o->lo,
                        (unsigned long long)lv);
    }
    line = key_line(n, o->lo);
    snprintf(kpath, sizeof(kpath), "%s%s%s", path, path[0] ? "." : "", o->lo);
    return cfg_fail(c, BDY_EINVAL, line > 0 ? line : n->line, kpath, "must be at most %s (%llu)",
                    o->hi, (unsigned long long)hv);
}

/* Exactly one of the string keys in s->one_of is set. */
static int check_one_of(const cfg_ctx *c, const cfg_section *s, const bdy_ynode *n,
                        const char *path, const void *base)
{
    char names[CFG_MAX_KEY_PATH] = "";
    size_t set = 0;
    size_t total = 0;
    size_t pos = 0;
    while (s->one_of[total] != NULL)
        total++;
    for (size_t i = 0; i < total; i++) {
        const cfg_field *f = section_field(s, s->one_of[i]);
        if (f == NULL || f->type != CFG_NAME)
            return cfg_fail(c, BDY_EINVAL, n->line, path, "bad one-of rule on %s", s->one_of[i]);
        if (read_string(f, base) != NULL)
            set++;
        const char *sep = i == 0 ? "" : i + 1 == total ? " or " : ", ";
        if (pos < sizeof(names))
            pos += (size_t)snprintf(names + pos, sizeof(names) - pos, "%s%s", sep, s->one_of[i]);
    }
    if (set == 1)
        return 0;
    return cfg_fail(c, BDY_EINVAL, n->line, path, "exactly one of %s is required", names);
}

/* The rules of s that span keys, once the map n has been decoded into base. */
static int check_section(const cfg_ctx *c, const cfg_section *s, const bdy_ynode *n,
                         const char *path, const void *base)
{
    for (size_t i = 0; i < s->norder; i++) {
        int rc = check_order(c, s, &s->order[i], n, path, base);
        if (rc < 0)
            return rc;
    }
    if (s->one_of != NULL) {
        int rc = check_one_of(c, s, n, path, base);
        if (rc < 0)
            return rc;
    }
    return s->check != NULL ? s->check(c, n, path, base) : 0;
}

/* from and to of a window are the same kind (both times of day, or both
 * RFC 3339 times, the later after the earlier): the demand module refuses
 * a mix, which would otherwise pass here and fail the start (or half
 * apply a reload). */
static int check_override(const cfg_ctx *c, const bdy_ynode *n, const char *path, const void *base)
{
    const bdy_config_override *o = base;
    bool daily_from = false;
    bool daily_to = false;
    double from = 0;
    double to = 0;
    if (bdy_override_time_parse(o->from, &daily_from, &from) != 0 ||
        bdy_override_time_parse(o->to, &daily_to, &to) != 0)
        return 0; /* the fields' own rules have said so */
    char kpath[CFG_MAX_KEY_PATH];
    snprintf(kpath, sizeof(kpath), "%s%sto", path, path[0] ? "." : "");
    unsigned line = key_line(n, "to") ? key_line(n, "to") : n->line;
    if (daily_from != daily_to)
        return cfg_fail(c, BDY_EINVAL, line, kpath, "must be the same kind as from (%s): %s",
                        o->from, daily_from ? "a time of day HH:MM" : "an RFC 3339 time");
    if (!daily_from && to <= from)
        return cfg_fail(c, BDY_EINVAL, line, kpath, "must be after from (%s)", o->from);
    return 0;
}

/* certFile and keyFile come together; clientCAFile needs them, and
 * clientCRLFile clientCAFile. */
static int check_tls(const cfg_ctx *c, const bdy_ynode *n, const char *path, const void *base)
{
    const bdy_config_tls *t = base;
    char kpath[CFG_MAX_KEY_PATH];
    const char *missing = NULL;
    const char *given = NULL;
    if (t->cert_file != NULL && t->key_file == NULL) {
        missing = "keyFile";
        given = "certFile";
    } else if (t->cert_file == NULL && (t->key_file != NULL || t->client_ca_file != NULL)) {
        missing = "certFile";
        given = t->key_file != NULL ? "keyFile" : "clientCAFile";
    } else if (t->client_crl_file != NULL && t->client_ca_file == NULL) {
        missing = "clientCAFile";
        given = "clientCRLFile";
    }
    if (missing == NULL)
        return 0;
    snprintf(kpath, sizeof(kpath), "%s%s%s", path, path[0] ? "." : "", given);
    unsigned line = key_line(n, given) ? key_line(n, given) : n->line;
    return cfg_fail(c, BDY_EINVAL, line, kpath, "needs %s too", missing);
}

/* Per-minute history is folded, and then deleted with the rest at
 * retentionDays: a minute retention past that would keep nothing longer. */
static int check_demand(const cfg_ctx *c, const bdy_ynode *n, const char *path, const void *base)
{
    const bdy_config_demand *d = base;
    if (d->minute_retention_h <= 24u * d->retention_days)
        return 0;
    char kpath[CFG_MAX_KEY_PATH];
    snprintf(kpath, sizeof(kpath), "%s%sminuteRetentionHours", path, path[0] ? "." : "");
    unsigned line =
        key_line(n, "minuteRetentionHours") ? key_line(n, "minuteRetentionHours") : n->line;
    return cfg_fail(c, BDY_EINVAL, line, kpath,
                    "must be at most 24 times retentionDays (%u hours): demand history goes "
                    "after retentionDays whatever its step",
                    24u * d->retention_days);
}

/* Client certificates grant what the token file's commonName entries say:
 * without a token file they would grant nothing, or everything. */
static int check_top(const cfg_ctx *c, const bdy_ynode *n, const char *path, const void *base)
{
    (void)path;
    const bdy_config *cfg = base;
    if (cfg->tls.client_ca_file == NULL || cfg->auth.token_file != NULL)
        return 0;
    const bdy_ynode *tls = bdy_ynode_get(n, "tls");
    unsigned line =
        tls != NULL && key_line(tls, "clientCAFile") ? key_line(tls, "clientCAFile") : n->line;
    return cfg_fail(c, BDY_EINVAL, line, "tls.clientCAFile",
                    "needs auth.tokenFile, whose commonName entries say what a client "
                    "certificate may do");
}

/* Whether list elements a and b have the same identity (NULL counts as ""). */
static bool same_identity(const cfg_section *s, const void *a, const void *b)
{
    for (size_t k = 0; s->identity[k] != NULL; k++) {
        const cfg_field *f = section_field(s, s->identity[k]);
        const char *x = f != NULL ? read_string(f, a) : NULL;
        const char *y = f != NULL ? read_string(f, b) : NULL;
        if (strcmp(x != NULL ? x : "", y != NULL ? y : "") != 0)
            return false;
    }
    return true;
}

/* Element i of the list n (decoded into items) against the ones before it:
 * "pools[2].name: pool default/arena is defined twice (first at line 12)".
 * The key blamed is the last identity key; lines are where it is written. */
static int check_unique(const cfg_ctx *c, const cfg_field *f, const bdy_ynode *n, size_t i,
                        const char *ipath, const char *items)
{
    const cfg_section *s = f->item->section;
    const char *elem = items + i * f->item->size;
    size_t j = 0;
    while (j < i && !same_identity(s, items + j * f->item->size, elem))
        j++;
    if (j == i)
        return 0;
    char id[CFG_MAX_IDENTITY] = "";
    char kpath[CFG_MAX_KEY_PATH];
    const char *last = NULL;
    size_t pos = 0;
    for (size_t k = 0; s->identity[k] != NULL; k++) {
        const cfg_field *idf = section_field(s, s->identity[k]);
        const char *v = idf != NULL ? read_string(idf, elem) : NULL;
        last = s->identity[k];
        if (pos < sizeof(id))
            pos += (size_t)snprintf(id + pos, sizeof(id) - pos, "%s%s", k > 0 ? "/" : "",
                                    v != NULL ? v : "");
    }
    unsigned line = last != NULL ? key_line(n->items[i], last) : 0;
    unsigned first = last != NULL ? key_line(n->items[j], last) : 0;
    snprintf(kpath, sizeof(kpath), "%s%s%s", ipath, last != NULL ? "." : "",
             last != NULL ? last : "");
    return cfg_fail(c, BDY_EINVAL, line > 0 ? line : n->items[i]->line, kpath,
                    "%s %s is defined twice (first at line %u)",
                    s->noun != NULL ? s->noun : "entry", id, first > 0 ? first : n->items[j]->line);
}

/* A list value: null empties it, otherwise every element is decoded by
 * f->item into a fresh array that replaces the old one. Elements that are
 * sections must be maps (a bare "-" would skip their required keys) and,
 * when the section has an identity, unique. */
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
        const bdy_ynode *in = n->items[i];
        snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
        if (f->item->type == CFG_SECTION) {
            if (in->kind != BDY_YNODE_MAP) {
                describe(in, got, sizeof(got));
                return fail_expect(c, f->item, in->line, ipath, got, "");
            }
            rc = apply_defaults(c, f->item->section, elem);
            if (rc < 0)
                return rc;
        }
        rc = decode_value(c, f->item, in, in->line, ipath, elem);
        if (rc < 0)
            return rc;
        if (f->item->type == CFG_SECTION && f->item->section->identity != NULL) {
            rc = check_unique(c, f, n, i, ipath, items);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* A map of strings (labels): null empties it, otherwise every key must obey
 * f->key_name and every value f->name; the pairs replace the old ones, in
 * file order. Values are scalars taken as written (version: 1.10 stays
 * "1.10"); null is refused, "" is the empty value. */
static int decode_strmap(const cfg_ctx *c, const cfg_field *f, const bdy_ynode *n, unsigned line,
                         const char *path, void *base)
{
    char got[CFG_QUOTE_MAX * 4 + 16];
    const cfg_name_rule *krule = &name_rules[f->key_name];
    const cfg_name_rule *vrule = &name_rules[f->name];
    void *slot = at(base, f->offset);
    if (is_null_node(n)) {
        free_field(f, base);
        return 0;
    }
    if (n->kind != BDY_YNODE_MAP) {
        describe(n, got, sizeof(got));
        return fail_expect(c, f, line, path, got, "");
    }
    if (n->count > f->max)
        return cfg_fail(c, BDY_EINVAL, line, path, "must have at most %llu entries (got %zu)",
                        (unsigned long long)f->max, n->count);
    free_field(f, base);
    if (n->count == 0)
        return 0;
    cfg_pair *pairs = calloc(n->count, sizeof(*pairs));
    if (pairs == NULL)
        return cfg_fail(c, BDY_ENOMEM, line, path, "out of memory");
    /* Owned by the struct from here on, so every exit frees it the same way. */
    list_set(slot, (char *)pairs, n->count);
    for (size_t i = 0; i < n->count; i++) {
        const char *key = n->keys[i];
        const bdy_ynode *v = n->items[i];
        unsigned kline = n->key_lines[i];
        if (!krule->valid(key)) {
            quote(key, got, sizeof(got));
            return cfg_fail(c, BDY_EINVAL, kline, path, "every key must be %s: %s (got %s)",
                            krule->noun, krule->rule, got);
        }
        char kpath[CFG_MAX_KEY_PATH];
        snprintf(kpath, sizeof(kpath), "%s.%s", path, key);
        if (v->kind != BDY_YNODE_SCALAR || is_null_node(v) || !vrule->valid(v->scalar)) {
            describe(v, got, sizeof(got));
            return cfg_fail(c, BDY_EINVAL, kline, kpath, "must be %s: %s (got %s)", vrule->noun,
                            vrule->rule, got);
        }
        pairs[i].key = strdup(key);
        pairs[i].value = strdup(v->scalar);
        if (pairs[i].key == NULL || pairs[i].value == NULL)
            return cfg_fail(c, BDY_ENOMEM, kline, kpath, "out of memory");
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
    case CFG_STRMAP:
        return decode_strmap(c, f, n, line, path, base);
    case CFG_UINT:
    case CFG_DOUBLE:
    case CFG_ENUM:
    case CFG_NAME:
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

/* Decodes the map n into the struct at base by the table s, then checks the
 * section's rules that span keys. */
static int decode_section(const cfg_ctx *c, const cfg_section *s, const bdy_ynode *n,
                          const char *path, void *base)
{
    bool seen[CFG_MAX_FIELDS] = {false};
    if (s->nfields > CFG_MAX_FIELDS)
        return cfg_fail(c, BDY_EINVAL, n->line, path, "section has too many fields");
    for (size_t i = 0; i < n->count; i++) {
        const char *key = n->keys[i];
        const cfg_field *f = section_field(s, key);
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
    return check_section(c, s, n, path, base);
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
    cfg->settings = root->count;
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

int bdy_config_override_listen(bdy_config *cfg, const char *text, bdy_errbuf *eb)
{
    cfg_ctx c = {.name = "--listen", .base_dir = cfg->base_dir, .eb = eb};
    if (text == NULL)
        return bdy_fail(eb, BDY_EINVAL, "--listen: missing value");
    /* Treated as quoted: on the command line "null" is just text. */
    return set_scalar(&c, section_field(&top_section, "listen"), text, true, 0, "", cfg);
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
    rc = set_scalar(&c, section_field(&top_section, "dataDir"), path, true, 0, "", cfg);
out:
    free(cwd);
    return rc;
}
