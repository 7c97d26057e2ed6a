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

typedef struct bdy_config_store {
    unsigned watch_history;
    unsigned max_batch;
    unsigned busy_timeout_ms;
} bdy_config_store;

typedef struct bdy_config {
    char *source;   /* the file name as given (or name_for_errors), for messages */
    char *base_dir; /* absolute folder relative paths were resolved against */
    char *listen;   /* "host:port" as written, validated */
    char *data_dir; /* absolute */
    bdy_log_level log_level;
    bdy_config_http http;
    bdy_config_auth auth;
    bdy_config_store store;
    bdy_config_paths crds;      /* absolute paths, in file order */
    bdy_config_paths manifests; /* absolute paths, in file order */
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
