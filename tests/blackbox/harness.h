/* Black-box test harness: starts the real bindery binary ($BINDERY_BIN) on
 * a free loopback port with a config written to a temporary folder, talks
 * HTTP to it with libcurl, and always stops what it started. Every wait is
 * bounded in time. */
#ifndef BINDERY_TESTS_HARNESS_H
#define BINDERY_TESTS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct bb_server {
    char dir[64];     /* temporary folder: config, data/, log */
    char config[128]; /* dir/bindery.yaml */
    char data[128];   /* dir/data */
    char log[128];    /* dir/bindery.log: the daemon's stderr */
    unsigned port;
    pid_t pid;       /* 0 when not running */
    int exit_status; /* after bb_wait_exit: exit code, or 128+signal */
    unsigned nofile; /* set before bb_start: RLIMIT_NOFILE (soft and hard) of the daemon */
    /* Set after bb_init for a daemon that serves TLS: bb_request then uses
     * https, trusting the PEM file tls_ca (a path), and presents the client
     * certificate tls_cert with key tls_key when both are set. */
    char tls_ca[160];
    char tls_cert[160];
    char tls_key[160];
} bb_server;

typedef struct bb_response {
    long status;
    char *body;    /* NUL-terminated, owned */
    char *headers; /* raw header block, owned */
} bb_response;

/* Creates the folder and writes config_text to dir/bindery.yaml. A "%PORT%"
 * is not needed: the harness passes --listen and --data itself. */
void bb_init(bb_server *s, const char *config_text);
/* Writes a file under the server's folder (path relative to it). */
void bb_write(bb_server *s, const char *relpath, const char *text);
/* Starts `bindery serve` with extra flags (NULL-terminated, may be NULL).
 * Returns true once /readyz answers 200, false if the process exited or
 * readiness did not come within 15 s (the process is left for bb_stop). */
bool bb_start(bb_server *s, const char *const *extra_args);
/* Runs bindery with argv (after the program name) to completion, capturing
 * stdout+stderr into *output (owned). Returns the exit code. */
int bb_run(bb_server *s, const char *const *args, const char *stdin_text, char **output);
/* HTTP to the server. headers: NULL-terminated "Name: value" lines. */
bb_response bb_request(bb_server *s, const char *method, const char *path, const char *body,
                       const char *const *headers);
void bb_response_free(bb_response *r);
/* Sends a signal to the running daemon. */
void bb_signal(bb_server *s, int sig);
/* Waits up to timeout_ms for exit; returns true if it exited. */
bool bb_wait_exit(bb_server *s, int timeout_ms);
/* True if the daemon's log contains text (polls up to timeout_ms). A wait
 * that fails (timeout_ms > 0) prints the log's last lines to stderr. */
bool bb_log_contains(bb_server *s, const char *text, int timeout_ms);
/* The same for file rel under the server's folder (a world's log), with
 * nothing printed. */
bool bb_file_contains(bb_server *s, const char *rel, const char *text, int timeout_ms);
/* Lines of the server's log holding text, now. */
int bb_log_count(bb_server *s, const char *text);
/* Copies the last 60 lines of the daemon's log to stderr, after why: the
 * folder is removed at cleanup, so a failed wait prints what explains it. */
void bb_print_log_tail(bb_server *s, const char *why);
/* SIGTERM (then SIGKILL after 10 s), kills the worlds it started (their
 * working folder is the server's folder) and removes the folder. */
void bb_cleanup(bb_server *s);
/* Group teardown: kills and removes whatever a failed test left behind. */
void bb_cleanup_all(void);
int bb_teardown(void **state);

#endif
