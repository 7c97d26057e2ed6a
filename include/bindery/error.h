/* Error codes shared by every Bindery component.
 *
 * Functions return 0 on success or a negative BDY_E* code. The codes come from
 * one X-macro list so that the enum, bdy_strerror() and bdy_errname() cannot
 * drift apart. Human detail (which field, which file and line) travels
 * separately in a bdy_errbuf, never encoded in the code itself.
 */
#ifndef BINDERY_ERROR_H
#define BINDERY_ERROR_H

#include <stddef.h>

/* X(name, value, description) */
#define BDY_ERRNO_MAP(X)                                                                           \
    X(NOMEM, -1, "out of memory")                                                                  \
    X(INVAL, -2, "invalid argument")                                                               \
    X(NOTFOUND, -3, "not found")                                                                   \
    X(EXISTS, -4, "already exists")                                                                \
    X(CONFLICT, -5, "conflict: the object has been modified")                                      \
    X(EXPIRED, -6, "resource version expired")                                                     \
    X(IO, -7, "input/output error")                                                                \
    X(CORRUPT, -8, "data file is corrupt")                                                         \
    X(READONLY, -9, "data file is read-only")                                                      \
    X(TOOBIG, -10, "too large")                                                                    \
    X(UNSUPPORTED, -11, "not supported")                                                           \
    X(UNAUTHORIZED, -12, "unauthorized")                                                           \
    X(FORBIDDEN, -13, "forbidden")                                                                 \
    X(TIMEOUT, -14, "timed out")                                                                   \
    X(SHUTDOWN, -15, "shutting down")                                                              \
    X(BUSY, -16, "resource busy")                                                                  \
    X(PARSE, -17, "parse error")                                                                   \
    X(INVALID_OBJECT, -18, "object is invalid")                                                    \
    X(GONE, -19, "gone")

enum {
    BDY_OK = 0,
#define BDY__ERR_ENUM(name, value, desc) BDY_E##name = (value),
    BDY_ERRNO_MAP(BDY__ERR_ENUM)
#undef BDY__ERR_ENUM
};

/* Returns a static, human readable description of err ("unknown error" for
 * codes not in the map). Thread-safe. */
const char *bdy_strerror(int err);

/* Returns the static symbolic name of err without the prefix ("NOTFOUND"). */
const char *bdy_errname(int err);

/* Maximum number of field-level causes one error can carry. */
#define BDY_ERRBUF_MAX_CAUSES 16

/* One field-level cause, shaped like a Kubernetes StatusCause. */
typedef struct bdy_cause {
    char reason[48];   /* e.g. "FieldValueRequired", "FieldValueInvalid" */
    char field[256];   /* dotted path, e.g. "spec.ports[0].port" */
    char message[256]; /* human detail */
} bdy_cause;

/* Detail that accompanies an error code. Callers own it (usually on the
 * stack); callee functions fill it only when they return an error. Every
 * function taking a bdy_errbuf accepts NULL. */
typedef struct bdy_errbuf {
    char message[512];
    size_t ncauses;
    bdy_cause causes[BDY_ERRBUF_MAX_CAUSES];
} bdy_errbuf;

/* Clears eb (NULL allowed). */
void bdy_errbuf_clear(bdy_errbuf *eb);

/* printf-style: sets eb->message (NULL eb allowed). Always returns err so
 * call sites can write `return bdy_fail(eb, BDY_EINVAL, "...")`. */
int bdy_fail(bdy_errbuf *eb, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Appends a cause (ignored once BDY_ERRBUF_MAX_CAUSES are held). */
void bdy_errbuf_add_cause(bdy_errbuf *eb, const char *reason, const char *field, const char *fmt,
                          ...) __attribute__((format(printf, 4, 5)));

#endif
