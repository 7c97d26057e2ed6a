/* The daemon's configuration file (bindery.yaml).
 *
 * Every key is optional; a missing key keeps its default. Unknown keys at any
 * level are errors (a typo must not silently leave a default in place), and
 * every error names the file, the line and the dotted key:
 *
 *   examples/bindery.yaml:7: http.threads: must be an integer between 1 and 64 (got "many")
 *   bindery.yaml:3: unknown key "listn" (did you mean "listen"?)
 *
 * Relative paths resolve against the folder of the config file (for
 * bdy_config_from_text: against base_dir), so the struct holds only absolute,
 * lexically cleaned paths ("." and empty components removed; ".." is kept
 * because symlinks make folding it unsafe).
 *
 * Fields (YAML key → struct member, default, allowed values):
 *
 *   listen: "127.0.0.1:7780"        → listen
 *       Address of the HTTP API: host:port, an IPv6 host in brackets
 *       ("[::1]:7780"). The host is a name or an address; the port 0..65535
 *       (0 picks a free port, for tests).
 *   dataDir: data                   → data_dir
 *       Folder for the SQLite store and the demand history.
 *   logLevel: info                  → log_level
 *       debug | info | warn | error.
 *   http:
 *     threads: 4                    → http.threads              1..64
 *       Size of the HTTP thread pool.
 *     maxBodyBytes: 65536           → http.max_body_bytes       1024..16777216
 *       Larger request bodies get 413.
 *     connectionTimeoutSeconds: 30  → http.connection_timeout_s 1..3600
 *       Idle connections are closed after this long.
 *     maxConnections: 1024          → http.max_connections      1..100000
 *       Concurrent connections beyond this are refused.
 *     headerLimitBytes: 16384       → http.header_limit_bytes   4096..1048576
 *       Memory for one request's line and headers; larger ones are refused.
 *   auth:
 *     tokenFile: (absent)           → auth.token_file
 *       Bearer-token file (see auth.h). Absent or null: no authentication.
 *   tls:
 *     certFile: (absent)            → tls.cert_file
 *       PEM certificate chain of the HTTP API: with keyFile, HTTPS only.
 *     keyFile: (absent)             → tls.key_file
 *       PEM private key of certFile.
 *     clientCAFile: (absent)        → tls.client_ca_file
 *       PEM CAs of client certificates (needs certFile and auth.tokenFile,
 *       whose commonName entries say what a certificate may do).
 *     clientCRLFile: (absent)       → tls.client_crl_file
 *       PEM revocation lists of those CAs (needs clientCAFile).
 *   store:
 *     watchHistory: 10000           → store.watch_history       100..10000000
 *       Events kept so a watch can resume from an older resourceVersion.
 *     maxBatch: 512                 → store.max_batch           1..65536
 *       Most writes committed together in one transaction (group commit).
 *     busyTimeoutMs: 5000           → store.busy_timeout_ms     0..600000
 *       How long SQLite waits for a lock held by another connection.
 *   crds: []                        → crds
 *       Files or folders of CustomResourceDefinitions applied at start-up,
 *       before manifests. The daemon adds its installed crds/ folder itself.
 *   manifests: []                   → manifests
 *       Files or folders of manifests applied at start-up (create or update).
 *       Folders are read non-recursively: *.yaml, *.yml, *.json by name.
 *   runtime:
 *     kind: process                 → runtime.kind              process | bench
 *       What runs a world: process starts the ModuleManifest's local command
 *       as a child process; bench starts nothing (benchmarks and tests).
 *     portMin: 20000                → runtime.port_min          1024..65535
 *     portMax: 29999                → runtime.port_max          portMin..65535
 *       Host ports handed to worlds are taken from portMin..portMax.
 *     workDir: .                    → runtime.work_dir
 *       Working folder of world processes (a path, resolved as above).
 *     logDir: worlds                → runtime.log_dir
 *       Folder for the worlds' stdout and stderr (a path).
 *     benchReadyDelayMs: 0          → runtime.bench_ready_delay_ms 0..600000
 *       bench only: how long a world takes to become Ready.
 *   reconciler:
 *     workers: 2                    → reconciler.workers        1..64
 *       Worker threads draining the reconciler's work queue.
 *   demand:
 *     minuteRetentionHours: 48      → demand.minute_retention_h 1..8760
 *       Per-minute demand history kept; older minutes fold into 5 minutes.
 *     retentionDays: 35             → demand.retention_days     3..3660
 *       5-minute demand history kept (the forecaster fits on it).
 *     leadTimeSeconds: 30           → demand.lead_time_s        0..86400
 *       Lead time (creation → Ready) assumed until one is measured.
 *     weeklySeason: false           → demand.weekly             false | true
 *       Forecast with a weekly season as well as the daily one.
 *   pools: []                       → pools (at most BDY_CONFIG_MAX_POOLS)
 *     - name: (required)            → name                      DNS label
 *         The pool's name; namespace/name is unique in the list.
 *       namespace: default          → ns                        DNS label
 *         Namespace of the pool's worlds and of its manifest or booklet.
 *       manifest: (absent)          → manifest                  DNS subdomain
 *       booklet: (absent)           → booklet                   DNS subdomain
 *         The ModuleManifest or the Booklet the worlds run: exactly one of
 *         the two ("pools[0]: exactly one of manifest or booklet is required").
 *       minWarm: 1                  → min_warm                  0..100000
 *       maxWarm: 100                → max_warm                  minWarm..100000
 *         Bounds of the warm target, whatever the forecast says.
 *       maxWorlds: 1000             → max_worlds                maxWarm..1000000
 *         Most worlds of the pool, warm and allocated together.
 *       serviceLevel: 0.99          → service_level             a number, 0.5..0.9999
 *         Probability that a claim finds a warm world (the forecast quantile).
 *       creationRate: 20            → creation_rate             1..10000
 *         Most worlds created per second.
 *       scaleDownCooldownSeconds: 60 → scale_down_cooldown_s    0..86400
 *         How long a surplus must last before idle worlds are deleted.
 *       labels: {}                  → labels (at most BDY_CONFIG_MAX_LABELS)
 *         Put on every world of the pool. Keys are Kubernetes label keys (an
 *         optional DNS-subdomain prefix and '/', then a name of at most 63
 *         of [A-Za-z0-9-_.] starting and ending alphanumeric); values are
 *         strings of at most 63 of the same, or "" (null is refused).
 *       overrides: []               → overrides (at most 16)
 *         - from: "17:45"           → from   HH:MM[:SS] UTC daily, or RFC 3339
 *           to: "19:00"             → to     the same kind as from
 *           minWarm: 200            → min_warm 0..100000, capped by maxWarm
 *         Scheduled floors of the warm target; the pool starts filling
 *         early enough for the worlds to be Ready when the window opens.
 *   Keys that must agree are checked after decoding, naming the key written:
 *   "pools[1].maxWarm: must be at least minWarm (5)", "runtime.portMax: must
 *   be at least portMin (30000)", "pools[2].name: pool default/arena is
 *   defined twice (first at line 12)".
 *
 * A bdy_config is immutable after loading (apart from the two overrides,
 * meant for command-line flags before anything else reads it), so any
 * thread may read it; reload by loading a new one.
 */
#ifndef BINDERY_CONFIG_H
#define BINDERY_CONFIG_H

#include "bindery/error.h"
#include "bindery/log.h"

#include <stddef.h>

/* Largest config file read. */
#define BDY_CONFIG_MAX_BYTES ((size_t)1024 * 1024)
/* Most entries in one list of paths (crds, manifests). */
#define BDY_CONFIG_MAX_LIST 256
/* Longest path accepted, after resolution. */
#define BDY_CONFIG_MAX_PATH 4096
/* Longest listen address ("[" + IPv6 + "]:" + port, or a 253-byte name). */
#define BDY_CONFIG_MAX_LISTEN 300
/* Most pools in the pools: list. */
#define BDY_CONFIG_MAX_POOLS 256
/* Most labels one pool puts on its worlds. */
#define BDY_CONFIG_MAX_LABELS 32

/* A list of absolute paths. Every list in the config has this shape,
 * { T *items; size_t count; }, which the decoder relies on. */
typedef struct bdy_config_paths {
    char **items;
    size_t count;
} bdy_config_paths;

typedef struct bdy_config_http {
    unsigned threads;
    size_t max_body_bytes;
    unsigned connection_timeout_s;
    unsigned max_connections;
    size_t header_limit_bytes;
} bdy_config_http;

typedef struct bdy_config_auth {
    char *token_file; /* absolute path, or NULL: authentication off */
} bdy_config_auth;

typedef struct bdy_config_tls {
    char *cert_file;       /* absolute path, or NULL: plain HTTP */
    char *key_file;        /* absolute path; set exactly when cert_file is */
    char *client_ca_file;  /* absolute path, or NULL: no client certificates */
    char *client_crl_file; /* absolute path, or NULL: no revocation lists */
} bdy_config_tls;

typedef struct bdy_config_store {
    unsigned watch_history;
    unsigned max_batch;
    unsigned busy_timeout_ms;
} bdy_config_store;

/* One label of a pool's worlds. */
typedef struct bdy_config_label {
    char *key;   /* a Kubernetes label key */
    char *value; /* a Kubernetes label value */
} bdy_config_label;

typedef struct bdy_config_labels {
    bdy_config_label *items;
    size_t count;
} bdy_config_labels;

/* A scheduled floor of a pool's warm target (pools[].overrides). from and
 * to are both "HH:MM[:SS]" (UTC, every day; to <= from wraps past
 * midnight) or both RFC 3339 times (once). */
typedef struct bdy_config_override {
    char *from;
    char *to;
    unsigned min_warm; /* minWarm, 0..100000 */
} bdy_config_override;

typedef struct bdy_config_overrides {
    bdy_config_override *items;
    size_t count;
} bdy_config_overrides;

/* One warm pool (pools: list). Exactly one of manifest / booklet is set. */
typedef struct bdy_config_pool {
    char *name;                     /* DNS label, required; unique per namespace */
    char *ns;                       /* "namespace", default "default" */
    char *manifest;                 /* ModuleManifest name, or NULL */
    char *booklet;                  /* Booklet name, or NULL */
    unsigned min_warm;              /* minWarm, default 1, 0..100000 */
    unsigned max_warm;              /* maxWarm, default 100, >= minWarm */
    unsigned max_worlds;            /* maxWorlds, default 1000, >= maxWarm; warm + allocated */
    double service_level;           /* serviceLevel, default 0.99, 0.5..0.9999 */
    unsigned creation_rate;         /* creationRate: most worlds created per second, default 20 */
    unsigned scale_down_cooldown_s; /* scaleDownCooldownSeconds, default 60 */
    bdy_config_labels labels;       /* labels: put on every world of the pool */
    bdy_config_overrides overrides; /* overrides: scheduled floors (at most 16) */
} bdy_config_pool;

typedef struct bdy_config_pools {
    bdy_config_pool *items;
    size_t count;
} bdy_config_pools;

typedef enum bdy_runtime_kind {
    BDY_RUNTIME_PROCESS = 0, /* worlds are local processes (the default) */
    BDY_RUNTIME_BENCH = 1,   /* no processes: for benchmarks and tests only */
} bdy_runtime_kind;

typedef struct bdy_config_runtime {
    bdy_runtime_kind kind;         /* kind: process | bench */
    unsigned port_min;             /* portMin, default 20000, 1024..65535 */
    unsigned port_max;             /* portMax, default 29999, >= portMin */
    char *work_dir;                /* workDir: worlds' working folder, default "." */
    char *log_dir;                 /* logDir: worlds' stdout/stderr, default "worlds" */
    unsigned log_retention_h;      /* logRetentionHours, default 24, 0 (forever)..87600 */
    unsigned log_max_mb;           /* logMaxMegabytes, default 256, 0 (no cap)..1048576 */
    unsigned bench_ready_delay_ms; /* benchReadyDelayMs, default 0, 0..600000 */
} bdy_config_runtime;

typedef struct bdy_config_demand {
    unsigned minute_retention_h; /* minuteRetentionHours, default 48, 1..8760 */
    unsigned retention_days;     /* retentionDays, default 35, 3..3660 */
    unsigned lead_time_s;        /* leadTimeSeconds, default 30, 0..86400 */
    int weekly;                  /* weeklySeason, default false (0) */
} bdy_config_demand;

typedef struct bdy_config_reconciler {
    unsigned workers; /* workers, default 2, 1..64 */
} bdy_config_reconciler;

typedef struct bdy_config_claims {
    unsigned record_retention_h; /* recordRetentionHours, default 24, 1..8760 */
} bdy_config_claims;

typedef struct bdy_config {
    char *source;   /* the file name as given (or name_for_errors), for messages */
    char *base_dir; /* absolute folder relative paths were resolved against */
    char *listen;   /* "host:port" as written, validated */
    char *data_dir; /* absolute */
    bdy_log_level log_level;
    bdy_config_http http;
    bdy_config_auth auth;
    bdy_config_tls tls;
    bdy_config_store store;
    bdy_config_paths crds;      /* absolute paths, in file order */
    bdy_config_paths manifests; /* absolute paths, in file order */
    bdy_config_runtime runtime;
    bdy_config_reconciler reconciler;
    bdy_config_claims claims;
    bdy_config_demand demand;
    bdy_config_pools pools;
    size_t settings; /* top-level keys the text set: 0 for an empty file, which a
                        reload refuses (most likely one caught being rewritten) */
} bdy_config;

/* Reads and decodes the config file at path (capped at BDY_CONFIG_MAX_BYTES).
 * Relative paths inside resolve against the file's folder, taken lexically
 * from path (not through realpath, so a ConfigMap's symlinked file still
 * resolves next to its mount point). Returns 0, BDY_ENOTFOUND, BDY_EIO,
 * BDY_ETOOBIG, BDY_EPARSE (malformed YAML) or BDY_EINVAL (a bad value),
 * with "file:line: key: detail" in eb. The caller frees *out with
 * bdy_config_free(). Thread-safe (no shared state). */
int bdy_config_load(const char *path, bdy_config **out, bdy_errbuf *eb);

/* As bdy_config_load() on text already in memory (tests, fuzzing).
 * name_for_errors prefixes messages (NULL: "<config>"); base_dir is where
 * relative paths resolve (NULL: the current directory; relative: against the
 * current directory). An empty text gives the defaults. text need not be
 * NUL-terminated. */
int bdy_config_from_text(const char *text, size_t len, const char *name_for_errors,
                         const char *base_dir, bdy_config **out, bdy_errbuf *eb);

/* Frees cfg and everything it owns. NULL allowed. */
void bdy_config_free(bdy_config *cfg);

/* Replace listen / data_dir from the --listen / --data command-line flags,
 * with the same validation as the file ("--listen: must be host:port ...").
 * A relative --data path resolves against the current directory, as any
 * command-line path would. On error cfg is unchanged. Not thread-safe:
 * call before sharing cfg. */
int bdy_config_override_listen(bdy_config *cfg, const char *text, bdy_errbuf *eb);
int bdy_config_override_data_dir(bdy_config *cfg, const char *path, bdy_errbuf *eb);

#endif
