/* bindery-load-test: the internal interfaces of the load tool.
 *
 * The tool is one program (main.c) over a small library that the unit tests
 * and fuzz drivers link too: options (opts.c), a latency histogram and error
 * tallies (stats.c), a Prometheus text reader (promtext.c), the report
 * (report.c), a libcurl multi client (client.c) and the three modes
 * (allocate.c: allocate and churn; worlds.c: WorldInstance startup).
 * Symbols are lt_; nothing here is part of libbindery's API.
 *
 * Threading: the tool is single-threaded; one curl multi handle drives every
 * transfer. Nothing here is thread-safe.
 */
#ifndef BINDERY_LOADTEST_H
#define BINDERY_LOADTEST_H

#include "bindery/kubeconfig.h"
#include "bindery/kubewatch.h"
#include "bindery/util.h"

#include <curl/curl.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- options -------------------------------------------------------------- */

#define LT_MAX_SELECTORS 8 /* the claim API's ordered selector list */
#define LT_MAX_KV 32       /* --label / --annotation pairs */
#define LT_MAX_WORLDS 100000
#define LT_MAX_INFLIGHT_DEFAULT 4096

/* Exit codes. */
enum {
    LT_EXIT_OK = 0,
    LT_EXIT_ERRORS = 1,  /* the run finished but requests failed (over --max-error-ratio) */
    LT_EXIT_USAGE = 2,   /* bad flags */
    LT_EXIT_SETUP = 3,   /* cannot start: unreachable, 401/403, unknown pool, bad kubeconfig */
    LT_EXIT_ABORTED = 4, /* stopped mid-run: the server started refusing us, or Ctrl-C twice */
};

typedef enum lt_mode { LT_MODE_ALLOCATE, LT_MODE_CHURN, LT_MODE_WORLDS } lt_mode;
typedef enum lt_progress {
    LT_PROGRESS_AUTO,
    LT_PROGRESS_TTY,
    LT_PROGRESS_PLAIN,
    LT_PROGRESS_OFF
} lt_progress;

/* Parsed command line. Strings point into argv (they live as long as main). */
typedef struct lt_opts {
    lt_mode mode;
    const char *server;     /* --server URL */
    const char *kubeconfig; /* --kubeconfig FILE */
    const char *context;    /* --context NAME */
    const char *token_file; /* --token-file FILE */
    const char *cacert;     /* --cacert FILE */
    bool insecure;          /* --insecure */
    const char *namespace_; /* --namespace NS (NULL: kubeconfig's, else "default") */
    const char *pool;       /* --pool NAME */
    const char *manifest;   /* --manifest NAME (worlds) */
    const char *claimant;   /* --claimant NAME */
    const char *selectors[LT_MAX_SELECTORS];
    size_t nselectors;
    const char *labels[LT_MAX_KV]; /* "k=v" */
    size_t nlabels;
    const char *annotations[LT_MAX_KV];
    size_t nannotations;
    double rate;          /* --rate per second; 0 = closed loop */
    unsigned concurrency; /* --concurrency */
    double duration_s;    /* --duration; 0 = until --count */
    uint64_t count;       /* --count; 0 = until --duration */
    double hold_s;        /* --hold; < 0 = never release */
    unsigned wait_seconds;
    unsigned worlds;          /* --worlds N */
    bool keep;                /* --keep: leave the worlds */
    double timeout_s;         /* --timeout: worlds Ready / churn drain */
    double request_timeout_s; /* --request-timeout */
    double connect_timeout_s; /* --connect-timeout */
    unsigned max_inflight;
    double max_error_ratio;
    bool json;
    const char *csv;
    lt_progress progress;
} lt_opts;

/* Parses argv. Returns 0, 1 when --help was asked (usage printed to out),
 * or -1 with a one-line reason in err. */
int lt_opts_parse(int argc, char **argv, lt_opts *o, FILE *out, char *err, size_t errlen);
void lt_usage(FILE *f);

/* A label selector flag ("a=b,tier in (x,y),!old" or a JSON LabelSelector)
 * as the claim API's JSON LabelSelector. Returns 0 or -1 with err. */
int lt_selector_to_json(const char *text, json_object **out, char *err, size_t errlen);

/* ---- latency histogram and tallies ------------------------------------------- */

/* Log-linear histogram of nanosecond values: exact below 128 ns, then 128
 * sub-buckets per power of two (relative error below 0.8 %). Fixed size, so
 * runs of any length use the same memory. */
#define LT_HIST_SUB ((size_t)128)
#define LT_HIST_BUCKETS (LT_HIST_SUB * 58)

typedef struct lt_hist {
    uint64_t n;
    uint64_t min_ns;
    uint64_t max_ns;
    double sum_ns;
    uint64_t counts[LT_HIST_BUCKETS];
} lt_hist;

void lt_hist_init(lt_hist *h);
void lt_hist_add(lt_hist *h, uint64_t ns);
/* The q-quantile (0..1) in ns: the smallest recorded bucket value v with at
 * least ceil(q*n) values at or below it, clamped to [min, max]; 0 when empty. */
uint64_t lt_hist_quantile(const lt_hist *h, double q);

#define LT_TALLY_MAX 64
#define LT_TALLY_KEY 96

/* Counts by key ("503 PoolExhausted"); keys past LT_TALLY_MAX go to other. */
typedef struct lt_tally {
    size_t n;
    struct {
        char key[LT_TALLY_KEY];
        uint64_t count;
    } items[LT_TALLY_MAX];
    uint64_t other;
} lt_tally;

void lt_tally_add(lt_tally *t, const char *key, uint64_t count);
uint64_t lt_tally_total(const lt_tally *t);

/* ---- Prometheus text format --------------------------------------------------- */

#define LT_METRICS_MAX_BYTES ((size_t)16 * 1024 * 1024)
#define LT_METRICS_MAX_SAMPLES 200000
#define LT_METRIC_MAX_LABELS 16
#define LT_METRIC_NAME_MAX 200
#define LT_METRIC_VALUE_MAX 1024

typedef struct lt_metric_label {
    char *name;
    char *value;
} lt_metric_label;

typedef struct lt_metric_sample {
    char *name;
    size_t nlabels;
    lt_metric_label labels[LT_METRIC_MAX_LABELS];
    double value;
} lt_metric_sample;

typedef struct lt_metrics {
    lt_metric_sample *items;
    size_t n;
    size_t alloc;
} lt_metrics;

/* Parses the text exposition format (0.0.4): comments and blank lines are
 * skipped; samples are name{label="value",...} value [timestamp]; label
 * values may hold \\, \" and \n escapes. Returns 0, or -1 with "line N: ..."
 * in err (the partial result is freed). out is the caller's. */
int lt_metrics_parse(const char *text, size_t len, lt_metrics *out, char *err, size_t errlen);
void lt_metrics_free(lt_metrics *m);
/* Sum of the samples called name that carry every "k=v" pair of match
 * (NULL-terminated, may be NULL). *found (may be NULL) says whether any did. */
double lt_metrics_sum(const lt_metrics *m, const char *name, const char *const *match, bool *found);
/* The q-quantile of the observations a histogram family (base name,
 * without _bucket) gained between before and after, by linear
 * interpolation within the bucket; -1 when it gained none. */
double lt_metrics_hist_quantile(const lt_metrics *before, const lt_metrics *after, const char *base,
                                const char *const *match, double q);

/* ---- report ------------------------------------------------------------------ */

typedef struct lt_report {
    lt_mode mode;
    char target[256];
    double elapsed_s;
    double rate;          /* asked for; 0 = closed loop */
    unsigned concurrency; /* closed loop */
    uint64_t sent;        /* claims, or world creations */
    uint64_t ok;
    uint64_t failed;
    lt_hist latency; /* claims: from the scheduled time; worlds: the POST */
    /* Claims: every one answered or failed (errors and timeouts too, a
     * timeout at the moment it gave up), so that a slow failure is not
     * dropped from the tail. */
    lt_hist latency_all;
    lt_tally errors; /* "503 PoolExhausted", "transport: ..." */
    uint64_t warm;
    uint64_t cold;
    uint64_t released;
    uint64_t release_failed;
    uint64_t still_held; /* claims never released (no --hold, or aborted) */
    lt_tally release_errors;
    /* worlds */
    uint64_t ready;
    uint64_t world_failed;
    uint64_t timed_out;
    lt_hist startup; /* creation (POST sent) to Ready, seen on the watch */
    uint64_t deleted;
    uint64_t left;    /* still there after cleanup (or kept) */
    uint64_t relists; /* watch 410s recovered by relisting */
    uint64_t rewatches;
    /* server-side counters from /metrics (delta over the run) */
    bool server_known;
    /* A counter went backwards over the run: bindery restarted, and its
     * figures (allocations, reconciles) are not deltas of this run. */
    bool server_restarted;
    double server_success;
    double server_failed;
    /* churn: reconcile lag from /metrics samples */
    bool lag_known;
    double queue_depth_max;
    double queue_depth_mean;
    double reconciles_per_s;
    double reconcile_errors;
    double startup_p50_s;
    double startup_p99_s;
    double drain_s; /* after the last operation until the queue was empty and no world starting */
    bool drained;
    bool aborted;
    char abort_reason[256];
    bool interrupted; /* stopped early by one Ctrl-C: not aborted */
} lt_report;

void lt_report_init(lt_report *r, lt_mode mode);
void lt_report_print(const lt_report *r, FILE *f);
/* Caller puts the result. */
json_object *lt_report_json(const lt_report *r);
/* The exit code for a finished report (see LT_EXIT_*). */
int lt_report_exit_code(const lt_report *r, double max_error_ratio);

/* ---- HTTP client (libcurl multi) --------------------------------------------- */

#define LT_BODY_MAX ((size_t)4 * 1024 * 1024) /* most bytes kept of one answer */

/* Where requests go and how to authenticate. Owned strings. */
typedef struct lt_target {
    char *base;        /* "http(s)://host:port", no trailing slash */
    bdy_kubeconfig kc; /* TLS material and token (token also from --token-file/env) */
    char *token;
    bool insecure;
    char *cacert;
    double request_timeout_s;
    double connect_timeout_s;
} lt_target;

void lt_target_free(lt_target *t);

typedef struct lt_client lt_client;
typedef struct lt_xfer lt_xfer;

/* Called when a transfer ends (answer complete, error or timeout). The
 * transfer is freed after the callback returns. */
typedef void (*lt_done_cb)(lt_xfer *x, void *data);

/* One request. Filled by the client; read in the callbacks. */
struct lt_xfer {
    lt_client *client;
    CURL *easy;
    struct curl_slist *headers;
    char *req_body;
    bdy_buf body;
    long status;     /* HTTP status, 0 on transport error */
    CURLcode result; /* CURLE_OK or the transport error */
    char curl_err[CURL_ERROR_SIZE];
    uint64_t sched_ns; /* when the request was due (open loop) */
    uint64_t start_ns;
    uint64_t done_ns;
    uint64_t seq;
    int op;      /* caller's tag */
    void *udata; /* caller's pointer, not freed */
    char tag[128];
    lt_done_cb done;
    void *done_data;
    /* streaming (watch): lines go to line_cb instead of body */
    bool stream;
    bdy_linesplit lines;
    bdy_line_cb line_cb;
    void *line_data;
    int line_rc;   /* first non-zero line callback result (stops the stream) */
    lt_xfer *next; /* the client's list of running transfers */
    lt_xfer *prev;
};

int lt_client_new(const lt_target *t, lt_client **out);
/* At most n connections to the server at once; more requests wait for one
 * (their latency counts the wait). 0: no limit (the default). */
void lt_client_limit_connections(lt_client *c, unsigned n);
void lt_client_free(lt_client *c);
/* Starts method path (relative to the base) with an optional JSON body.
 * timeout_s 0 = the target's request timeout; streams use a low-speed limit
 * instead of a total timeout. Returns the transfer or NULL (out of memory). */
lt_xfer *lt_client_start(lt_client *c, const char *method, const char *path, const char *body,
                         double timeout_s, lt_done_cb done, void *data);
lt_xfer *lt_client_stream(lt_client *c, const char *path, bdy_line_cb line_cb, void *line_data,
                          lt_done_cb done, void *data);
/* Aborts a running transfer (its done callback runs with CURLE_ABORTED_BY_CALLBACK). */
void lt_client_cancel(lt_client *c, lt_xfer *x);
/* Waits up to timeout_ms for activity and runs the done callbacks. */
int lt_client_poll(lt_client *c, int timeout_ms);
/* The same with a timeout in nanoseconds, for due times under 1 ms away. */
int lt_client_poll_ns(lt_client *c, int64_t timeout_ns);
size_t lt_client_inflight(const lt_client *c);
/* A blocking request (runs the loop until it ends). *body_out is owned by
 * the caller (may be NULL). Returns the status, 0 on transport error (the
 * message in err). */
long lt_client_request(lt_client *c, const char *method, const char *path, const char *body,
                       char **body_out, char *err, size_t errlen);

/* "503 PoolExhausted" / "409 AlreadyExists" / "transport: Couldn't connect
 * to server": a short name for a failed answer, from the claim API's error
 * shape or a Kubernetes Status. */
void lt_error_key(const lt_xfer *x, char *out, size_t cap);
/* The message a human should see for a failed answer. */
void lt_error_message(const lt_xfer *x, char *out, size_t cap);

/* ---- progress and CSV -------------------------------------------------------- */

typedef struct lt_output {
    lt_progress progress; /* resolved: TTY, PLAIN or OFF */
    double last_progress_s;
    bool line_open; /* a TTY line waits for its "\n" */
    FILE *csv;
} lt_output;

/* One CSV row per request: seq,op,start_s,latency_ms,status,result,detail. */
void lt_csv_row(lt_output *o, uint64_t seq, const char *op, double start_s, double latency_ms,
                long status, const char *result, const char *detail);
/* Prints the progress line when due (every second on a TTY, every 5 s plain). */
void lt_progress_tick(lt_output *o, double now_s, bool force, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void lt_progress_end(lt_output *o);

/* ---- modes ------------------------------------------------------------------- */

/* Set by SIGINT/SIGTERM: 1 = stop starting work and clean up; 2 = leave now. */
extern volatile int lt_interrupted;

int lt_run_allocate(const lt_opts *o, const lt_target *t, lt_output *out, lt_report *r);
int lt_run_worlds(const lt_opts *o, const lt_target *t, lt_output *out, lt_report *r);

double lt_now_s(void);

#endif
