/* Structured logging: one JSON object per line on stderr.
 *
 *   {"ts":"2026-11-27T20:15:02.113Z","level":"info","component":"store","msg":"..."}
 *
 * Safe to call from any thread; each line is written with a single write(2)
 * so lines from different threads never interleave.
 */
#ifndef BINDERY_LOG_H
#define BINDERY_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum bdy_log_level {
    BDY_LOG_DEBUG = 0,
    BDY_LOG_INFO = 1,
    BDY_LOG_WARN = 2,
    BDY_LOG_ERROR = 3,
} bdy_log_level;

/* Sets the minimum level written (default INFO). Thread-safe. */
void bdy_log_set_level(bdy_log_level level);

/* Parses "debug", "info", "warn", "error". Returns 0 or BDY_EINVAL. */
int bdy_log_parse_level(const char *text, bdy_log_level *out);

/* Writes one line if level is enabled. component is a short static name. */
void bdy_log(bdy_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define bdy_debug(c, ...) bdy_log(BDY_LOG_DEBUG, (c), __VA_ARGS__)
#define bdy_info(c, ...) bdy_log(BDY_LOG_INFO, (c), __VA_ARGS__)
#define bdy_warn(c, ...) bdy_log(BDY_LOG_WARN, (c), __VA_ARGS__)
#define bdy_error(c, ...) bdy_log(BDY_LOG_ERROR, (c), __VA_ARGS__)

/* A limit for a line that can repeat many times a second (a full disk,
 * descriptors run out): one line per period at most, so the log cannot
 * flood the disk it may be reporting on. Zero-initialised; thread-safe. */
typedef struct bdy_log_limit {
    _Atomic uint64_t next_ns; /* monotonic: no line before this */
    _Atomic uint64_t held;    /* lines held back since the last one */
} bdy_log_limit;

/* Whether a line may be written now. When it may, *held is how many were
 * held back since the last one (for the line to say so). */
bool bdy_log_admit(bdy_log_limit *l, unsigned period_ms, uint64_t *held);

#endif
