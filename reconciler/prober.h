/* Internal to the reconciler: readiness probes over TCP, many at once on
 * one thread, for the runtimes that probe worlds themselves (the process
 * runtime; in Kubernetes the kubelet does).
 *
 * A probe is a TCP connect to an IPv4 address (a tcpSocket probe), or a
 * connect and one HTTP/1.0 GET whose status line must say 200..399 (an
 * httpGet probe, as Kubernetes judges it). No probe blocks a thread: the
 * prober's thread waits (epoll) on every probe's socket and on the nearest
 * deadline, so a world that accepts connections and never answers costs a
 * descriptor until its probe's timeout, never a worker.
 *
 * Each probe carries an id (a world's "ns/name"); at most one probe per id
 * runs at a time. Its verdict comes through the done callback, once, on
 * the prober's thread with no lock held, so the callback may start the
 * next probe.
 *
 * Thread-safety: bdy__prober_start from any thread; bdy__prober_free from
 * the owner, never from the callback, with no start in flight.
 */
#ifndef BINDERY_RECONCILER_PROBER_H
#define BINDERY_RECONCILER_PROBER_H

#include "bindery/error.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>

#define BDY__PROBER_ID_MAX 320   /* bytes of an id, its NUL included */
#define BDY__PROBER_PATH_MAX 256 /* bytes of an HTTP path, its NUL included */

typedef enum bdy__probe_verdict {
    BDY__PROBE_PASSED,
    /* Refused, reset, timed out, or an answer that is no HTTP status in
     * 200..399. */
    BDY__PROBE_FAILED,
    /* Not run for Bindery's own trouble (no descriptor for its socket):
     * says nothing about the target. */
    BDY__PROBE_NOT_RUN,
    /* The prober stopped first: only from bdy__prober_free, on its caller's
     * thread, so that the owner can free arg. */
    BDY__PROBE_CANCELLED,
} bdy__probe_verdict;

/* arg: the one given to bdy__prober_start, the callee's to free. */
typedef void (*bdy__prober_done_cb)(void *data, void *arg, bdy__probe_verdict verdict);

/* One check after the first of a probe (bdy__probe_target.more). */
typedef struct bdy__probe_check {
    struct sockaddr_in addr;
    const char *http_path; /* NULL: a TCP connect is the whole check */
    unsigned timeout_ms;   /* from the check's start to its verdict; 0 is taken as 1 */
} bdy__probe_check;

/* Most checks one probe runs, the first included. */
#define BDY__PROBER_CHECKS_MAX 16

typedef struct bdy__probe_target {
    const char *id;
    struct sockaddr_in addr;
    const char *http_path; /* NULL: a TCP connect is the whole probe */
    unsigned timeout_ms;   /* from the start call to the verdict; 0 is taken as 1 */
    /* Checks to run after the first, one after another, under the same id
     * and in the same slot (a world of several modules); the probe passes
     * when every check has, and fails at the first that does not. NULL
     * with nmore 0: none. */
    const bdy__probe_check *more;
    size_t nmore;
    void *arg; /* handed to the done callback */
} bdy__probe_target;

typedef struct bdy__prober bdy__prober;

/* Starts the thread, named thread_name. At most max_running probes run at
 * once (each holds a descriptor). */
int bdy__prober_new(unsigned max_running, const char *thread_name, bdy__prober_done_cb done,
                    void *data, bdy__prober **out, bdy_errbuf *eb);

/* Starts one probe: 0, and done is called once, later, with t->arg.
 * Otherwise no callback comes and arg stays the caller's: BDY_EEXISTS when a
 * probe with this id runs, BDY_EBUSY when max_running do, BDY_EINVAL for an
 * id or path too long or a path that is not an absolute request target of
 * visible characters or more than BDY__PROBER_CHECKS_MAX checks, BDY_ENOMEM,
 * BDY_ESHUTDOWN once bdy__prober_free began. */
int bdy__prober_start(bdy__prober *p, const bdy__probe_target *t);

/* Whether an HTTP path can go into a probe's request line as it is. */
bool bdy__prober_path_ok(const char *path);

/* Whether the start of an answer (len bytes, no NUL needed) is an HTTP/1.x
 * status line with a status in 200..399. */
bool bdy__prober_status_ok(const char *line, size_t len);

/* Stops the thread; probes still running end with BDY__PROBE_CANCELLED on
 * the calling thread. NULL allowed. */
void bdy__prober_free(bdy__prober *p);

#endif
