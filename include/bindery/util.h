/* Small helpers used everywhere: a capped growable buffer, time stamps,
 * random names, hashing. No component state lives here. */
#ifndef BINDERY_UTIL_H
#define BINDERY_UTIL_H

#include "bindery/error.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* A growable byte buffer with a hard cap (curl's dynbuf). The content is
 * always NUL-terminated. Embed it; bdy_buf_free() releases the memory. */
typedef struct bdy_buf {
    char *data;
    size_t len;
    size_t alloc;
    size_t cap; /* the most bytes len may reach */
} bdy_buf;

void bdy_buf_init(bdy_buf *b, size_t cap);
void bdy_buf_free(bdy_buf *b);
void bdy_buf_reset(bdy_buf *b);
/* Drops the first n bytes (all of them if n >= len), keeping the rest. */
void bdy_buf_drop_front(bdy_buf *b, size_t n);
/* Append; BDY_ETOOBIG if the cap would be exceeded (nothing appended),
 * BDY_ENOMEM on allocation failure. */
int bdy_buf_append(bdy_buf *b, const void *data, size_t len);
int bdy_buf_appends(bdy_buf *b, const char *s);
int bdy_buf_printf(bdy_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Detaches the data (caller frees with free()); the buffer is left empty. */
char *bdy_buf_steal(bdy_buf *b);

/* Wall clock as RFC 3339 UTC with microseconds: 2026-11-27T20:15:02.113482Z.
 * out must hold BDY_TIMESTAMP_LEN bytes. */
#define BDY_TIMESTAMP_LEN 32
void bdy_timestamp_now(char out[BDY_TIMESTAMP_LEN]);
/* Same, whole seconds (Kubernetes metadata timestamps): 2026-11-27T20:15:02Z. */
void bdy_timestamp_now_seconds(char out[BDY_TIMESTAMP_LEN]);
/* Parses RFC 3339 (Z or offset, optional fraction) to Unix seconds.
 * Returns 0 or BDY_EINVAL. */
int bdy_timestamp_parse(const char *text, double *unix_seconds);
/* Whether year-month-day (month 1..12) is a day of the Gregorian calendar:
 * timegm would move 2026-02-31 to March 3 without a word. */
bool bdy_date_valid(int year, int month, int day);

/* Names the calling thread (at most 15 characters are kept) and, when
 * background is true, lowers its CPU priority to nice BDY_BACKGROUND_NICE:
 * claims are answered by threads at the normal priority, and everything that
 * can wait (status writes, informers, checkpoints, the kube API's watches)
 * gets a tenth of their CPU share when both want it. Nice does not decide how
 * long a woken claim thread waits for the running one, though: the time
 * slice does (bdy_sched_short_slice). Best effort: a failure is logged at
 * debug level. */
#define BDY_BACKGROUND_NICE 10
void bdy_thread_start(const char *name, bool background);

/* The CPU time slice Bindery's threads ask for, in microseconds. Under the
 * EEVDF scheduler (Linux 6.6 and later; a slice of one's own from 6.12) a
 * thread that wakes to answer a claim waits for the thread running on its
 * CPU to use up its slice, 1.4 ms by default on 2 CPUs, whatever their nice
 * values; with 2 CPUs and a status write running after each claim, that wait
 * was a large part of the p99 of warm claims at 1,000/s. Short slices on
 * every thread cut it (2.42-2.96 ms without, 1.97-2.52 ms with, three
 * alternating runs on 2 CPUs). The cost is more context switches for
 * threads that run long, which Bindery's do not. */
#define BDY_SCHED_SLICE_US 100
/* Asks the kernel for BDY_SCHED_SLICE_US slices for the calling thread,
 * keeping its nice value; threads it creates afterwards inherit it. With
 * reset_on_fork, what the thread creates next (processes and threads alike)
 * starts with the kernel's default slice instead: for the threads that
 * spawn worlds, which are not Bindery's to tune. Returns 0 or an errno value
 * (kernels before 6.12 accept the call and keep their default slice). */
int bdy_sched_short_slice(bool reset_on_fork);

/* The time ms milliseconds from now on clock (CLOCK_REALTIME for condition
 * variables with default attributes, CLOCK_MONOTONIC for those set to it),
 * as pthread_cond_timedwait takes it. */
void bdy_deadline_after_ms(clockid_t clock, unsigned ms, struct timespec *out);
/* Initialises cond for deadlines on CLOCK_MONOTONIC (from
 * bdy_deadline_after_ms(CLOCK_MONOTONIC, ...)): a wall-clock jump neither
 * cuts a timed wait short nor stretches it. Returns pthread_cond_init's
 * result. */
int bdy_cond_init_monotonic(pthread_cond_t *cond);

/* Monotonic clock in nanoseconds. */
uint64_t bdy_monotonic_ns(void);
/* Wall clock in Unix seconds with sub-second precision. */
double bdy_wall_seconds(void);

/* Fills out with n characters from the Kubernetes name-suffix alphabet
 * (no vowels, no confusable digits) and a NUL. Uses the OpenSSL CSPRNG. */
void bdy_random_suffix(char *out, size_t n);
/* Random RFC 4122 version 4 UUID, lower-case, 36 characters + NUL. */
void bdy_uuid4(char out[37]);
/* Random lower-case hex string of n characters + NUL. */
void bdy_random_hex(char *out, size_t n);

/* SHA-256 of data as 64 lower-case hex characters + NUL. */
void bdy_sha256_hex(const void *data, size_t len, char out[65]);
/* Constant-time comparison of two equal-length byte strings. */
bool bdy_ct_equal(const void *a, const void *b, size_t len);

/* True when s[0..n) is well-formed UTF-8 (RFC 3629): no overlong forms, no
 * surrogates, nothing above U+10FFFF, no sequence cut short. */
bool bdy_utf8_valid(const char *s, size_t n);

/* Syncs the folder that holds path (".": the current one), so that a file
 * made or renamed there stays made after a crash. 0, or -1 with errno. */
int bdy_fsync_parent(const char *path);

/* Reads a whole file, capped at max_bytes (BDY_ETOOBIG beyond). The result is
 * NUL-terminated; the caller frees it. Missing file → BDY_ENOTFOUND. */
int bdy_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len);

/* How a database's writes have been going, for /readyz: a file whose last
 * write failed (a full or failing disk) makes bindery not ready for a
 * while, so a load balancer sends claims elsewhere; the next write that
 * succeeds, or BDY_WRITE_FAILURE_HOLD_S without another failure, ends it.
 * Writers record each outcome; anyone may check. Thread-safe. */
#define BDY_WRITE_FAILURE_HOLD_S 10
typedef struct bdy_write_health {
    pthread_mutex_t lock;
    uint64_t failed_ns; /* monotonic: the last failure */
    bool failing;       /* no write has succeeded since it */
    char why[200];
} bdy_write_health;

void bdy_write_health_init(bdy_write_health *h);
void bdy_write_health_destroy(bdy_write_health *h);
/* A write that wrote something succeeded: a commit of nothing proves
 * nothing about the disk, so callers record only those. */
void bdy_write_health_ok(bdy_write_health *h);
void bdy_write_health_failed(bdy_write_health *h, const char *why);
/* 0, or BDY_EIO with "what: the last write failed N s ago: why" in eb. */
int bdy_write_health_check(bdy_write_health *h, const char *what, bdy_errbuf *eb);

/* Decodes standard base64 (whitespace ignored, padding optional) into a
 * NUL-terminated malloc'd buffer. Returns 0, BDY_EINVAL or BDY_ENOMEM.
 * Kubernetes "*-data" fields, Secrets' data and the world host's
 * arguments use it. */
int bdy_base64_decode(const char *in, size_t len, char **out, size_t *out_len);
/* Encodes len bytes of in as standard base64 with padding into a
 * NUL-terminated malloc'd string. Returns 0, BDY_ETOOBIG (len past what
 * OpenSSL's encoder takes, INT_MAX / 4 * 3) or BDY_ENOMEM. */
int bdy_base64_encode(const void *in, size_t len, char **out);

#endif
