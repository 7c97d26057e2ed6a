/* The runtime: starts, stops and observes the thing that runs one world.
 *
 * One interface, two backends: runtime_process (embedded mode: a local
 * process per world) and runtime_pods (Kubernetes mode). The world
 * controller drives it and records what start() returned in the
 * WorldInstance status, which is how a restarted Bindery re-adopts worlds
 * that kept running while it was down.
 *
 * Thread-safety: every slot may be called from any thread; the backend
 * serializes what it must. Exit notices and probe verdicts arrive on the
 * backend's own threads through the callbacks given at creation; none
 * arrives once the runtime is freed.
 */
#ifndef BINDERY_RUNTIME_H
#define BINDERY_RUNTIME_H

#include "bindery/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BDY_RUNTIME_MAX_PORTS 16
#define BDY_RUNTIME_MAX_ARGS 64
#define BDY_RUNTIME_MAX_ENV 64
/* Longest argument or env value, placeholders replaced. */
#define BDY_RUNTIME_MAX_ARG_BYTES 65536
/* Readiness probes of one world: one per module of a booklet world. */
#define BDY_RUNTIME_MAX_PROBES 16

typedef enum bdy_probe_kind {
    BDY_PROBE_NONE, /* ready as soon as the process runs */
    BDY_PROBE_TCP,  /* a TCP connect to the port succeeds */
    BDY_PROBE_HTTP, /* GET path on the port answers 200..399 */
} bdy_probe_kind;

typedef struct bdy_probe {
    bdy_probe_kind kind;
    char port[16];  /* port name from the manifest, or a number as text */
    char path[256]; /* HTTP only */
    unsigned initial_delay_ms;
    unsigned period_ms;
    unsigned timeout_ms;
    unsigned failure_threshold;
} bdy_probe;

typedef struct bdy_port {
    char name[16];
    char protocol[4]; /* "TCP" or "UDP" */
    unsigned port;    /* assigned host port (0 before start) */
} bdy_port;

/* Everything needed to run one world, resolved from its ModuleManifest.
 * Strings are owned by the caller and only read during start(). */
typedef struct bdy_world_spec {
    const char *ns;
    const char *name;
    const char *uid;
    const char *command;
    const char *args[BDY_RUNTIME_MAX_ARGS];
    size_t nargs;
    const char *env_names[BDY_RUNTIME_MAX_ENV];
    const char *env_values[BDY_RUNTIME_MAX_ENV];
    size_t nenv;
    /* Variables set as given, before env: no placeholder is replaced in
     * them, since they carry what bound capabilities inject (a password
     * may hold "{port:x}"). env sets a name again over one of these, and
     * Bindery's own variables win over both. */
    const char *bound_names[BDY_RUNTIME_MAX_ENV];
    const char *bound_values[BDY_RUNTIME_MAX_ENV];
    size_t nbound;
    const char *working_dir; /* NULL: the runtime's default */
    bdy_port ports[BDY_RUNTIME_MAX_PORTS];
    size_t nports;
    /* The world is ready when every one of these passes (a booklet world
     * has one per module that names one); none: once it runs. The runtime
     * reads none of them at start: they are the caller's to hand to
     * observe(). */
    bdy_probe readiness[BDY_RUNTIME_MAX_PROBES];
    size_t nreadiness;
    unsigned grace_ms; /* SIGTERM → SIGKILL */
    /* The world's process passes SIGTERM on to the processes it runs, and
     * ends once they have (the booklet world host): stop() then sends
     * SIGTERM to it alone, not to its process group, so that no module gets
     * it twice. SIGKILL at the end of the grace period still goes to the
     * whole group. */
    bool relays_term;
    /* relays_term only: how many processes it runs as its own children (a
     * booklet world's module instances); 0 when they are not to be watched.
     * Once that many run, the runtime watches them, and the end of any one
     * is the end of the world, reported at once through the ending
     * callback, while the process itself stops the others, which can take
     * its grace period, before it exits. */
    unsigned children;
} bdy_world_spec;

/* What identifies a running world across Bindery restarts. Plain data: the
 * controller stores it in WorldInstance status and hands it back. */
typedef struct bdy_world_handle {
    int64_t pid;
    uint64_t start_time; /* process start time in clock ticks since boot (/proc/PID/stat
                            field 22), so a recycled pid is never mistaken for the world */
    /* The boot the process was started in (/proc/sys/kernel/random/boot_id),
     * since pids and start ticks both begin again at every boot: after a
     * reboot, another process may carry the recorded pair. Empty: not known
     * (a record from before it was kept, or a backend without processes),
     * and then not checked. */
    char boot_id[40];
    char address[64]; /* where clients connect: "127.0.0.1" in embedded mode */
    bdy_port ports[BDY_RUNTIME_MAX_PORTS];
    size_t nports;
} bdy_world_handle;

typedef enum bdy_world_state {
    BDY_WORLD_RUNNING, /* alive, not (yet) passing its readiness probe */
    BDY_WORLD_READY,   /* alive and passing */
    BDY_WORLD_EXITED,  /* gone */
    /* alive; its readiness probe runs, and its verdict comes through the
     * probe callback */
    BDY_WORLD_PROBING,
} bdy_world_state;

/* Called on the runtime's thread when a world it started or adopted exits.
 * exit_status: exit code, or 128 + signal. */
typedef void (*bdy_world_exit_cb)(void *data, const char *ns, const char *name,
                                  const bdy_world_handle *h, int exit_status);

/* Called on the runtime's thread, at most once per process, when a world
 * whose process still runs is over all the same: one of the children it
 * runs (bdy_world_spec.children) has ended, and it is stopping the others.
 * No claim should get it any more; its exit is reported later, as every
 * world's is. */
typedef void (*bdy_world_ending_cb)(void *data, const char *ns, const char *name,
                                    const bdy_world_handle *h);

/* Called on the runtime's thread with the verdict of a probe that
 * observe() started for the world with handle h: rc 0 and state READY
 * (passed) or RUNNING (failed, or no answer within the timeout); or an
 * error that bdy_runtime_retry_later() accepts when the probe could not run
 * (no descriptor): no verdict on the world. */
typedef void (*bdy_world_probe_cb)(void *data, const char *ns, const char *name,
                                   const bdy_world_handle *h, int rc, bdy_world_state state);

/* Whether world ns/name with metadata.uid uid exists (stop_strays). */
typedef bool (*bdy_world_known_fn)(void *data, const char *ns, const char *name, const char *uid);

typedef struct bdy_runtime_vtable {
    const char *name;
    /* Starts the world; fills h (ports assigned, placeholders such as
     * {port:game} in args and env values replaced). Returns once the
     * process exists, not when it is ready. BDY_ENOMEM: out of memory,
     * descriptors or processes now; BDY_EBUSY: no host port of the range
     * is free now. Both are bindery's trouble and not the world's: nothing
     * was started, and a later start may succeed. */
    int (*start)(void *ctx, const bdy_world_spec *spec, bdy_world_handle *h, bdy_errbuf *eb);
    /* Takes back a world recorded before a restart. BDY_ENOTFOUND when the
     * process is gone or its pid now belongs to another process; BDY_EINVAL
     * when the pid can be no world of ns/name (init, Bindery or its process
     * group, a process whose environment names another world, or another
     * instance of Bindery as the one that started it). */
    int (*adopt)(void *ctx, const char *ns, const char *name, const bdy_world_handle *h,
                 bdy_errbuf *eb);
    /* Takes back a process an earlier Bindery started for spec's world
     * (spec->uid, ns and name) but never recorded: it stopped after start()
     * and before the world's status named the process. Fills h as start()
     * would, with spec's ports numbered as the process was told them; a
     * spec of the identity alone (no command, as for a world being
     * deleted) gets the ports the process was told, so that none is handed
     * out before it has stopped. A process told other ports
     * than spec names is killed and BDY_ENOTFOUND returned. The process
     * runtime knows these processes by the BINDERY_WORLD_UID in their
     * environment, from a look at /proc when it was made, and hands out
     * none of their ports meanwhile. BDY_ENOTFOUND when there is none;
     * after an error that bdy_runtime_retry_later() accepts, the process
     * is left to a later try. NULL in a backend that cannot leave such a
     * process behind. */
    int (*reclaim)(void *ctx, const bdy_world_spec *spec, bdy_world_handle *h, bdy_errbuf *eb);
    /* Looks at world ns/name once, and never waits for it: sets *state to
     * what can be told at once (EXITED; RUNNING for a process that is
     * stopped; READY when there is no probe (nprobes 0, or a first probe of
     * kind BDY_PROBE_NONE), or for a backend that runs none), or starts
     * the readiness probes and says PROBING; they run one after another,
     * and the verdict (READY only when every one passed) then comes
     * through the probe callback, within the sum of their timeouts.
     * At most one probe per world runs: while one does, PROBING again and
     * none is started. BDY_EBUSY (too many probes running already) and an
     * error that bdy_runtime_retry_later() accepts (no descriptor, say) say
     * nothing about the world: the caller neither counts them as a failed
     * probe nor as a pass. */
    int (*observe)(void *ctx, const char *ns, const char *name, const bdy_world_handle *h,
                   const bdy_probe *probes, size_t nprobes, bdy_world_state *state);
    /* Asks the world to stop: SIGTERM now, SIGKILL after grace_ms. Returns
     * at once; the exit callback reports the end. Stopping a world that is
     * already gone is not an error. */
    int (*stop)(void *ctx, const bdy_world_handle *h, unsigned grace_ms);
    /* Stops the processes that an earlier run of this same Bindery (the
     * instance named at creation) started for worlds that no longer exist:
     * those found when the runtime was made, not taken back since, whose
     * world known() does not know. The world's object went while no
     * Bindery ran its finalizer (a forced delete, the CRD removed), so
     * nothing else would ever stop them and free their ports. Call only
     * with a complete view of the worlds (an informer that has synced):
     * known() is called under the runtime's lock and must not call into
     * it. SIGTERM now, SIGKILL after grace_ms, ports free once they have
     * exited; no exit callback, since no world is theirs. Processes of
     * other instances, or of none, are left alone. Returns how many it
     * stopped. NULL in a backend that cannot leave such a process. */
    size_t (*stop_strays)(void *ctx, bdy_world_known_fn known, void *data, unsigned grace_ms);
    /* Stops watching (worlds keep running) and frees the backend. */
    void (*destroy)(void *ctx);
} bdy_runtime_vtable;

/* Whether an error from adopt() or reclaim() says only that the runtime
 * cannot tell now (out of memory or descriptors): the process may well run,
 * so the caller tries again later rather than take the world for gone. */
static inline bool bdy_runtime_retry_later(int rc)
{
    return rc == BDY_EIO || rc == BDY_ENOMEM;
}

typedef struct bdy_runtime {
    const bdy_runtime_vtable *vt;
    void *ctx;
} bdy_runtime;

typedef struct bdy_process_runtime_opts {
    unsigned port_min; /* host ports handed to worlds come from [port_min, port_max] */
    unsigned port_max;
    const char *work_dir; /* default working directory for worlds */
    const char *log_dir;  /* each world's stdout/stderr go to log_dir/<ns>_<name>.log */
    /* A log of a world this runtime does not run is deleted once it has
     * not been written for this long; 0: never. Swept once a minute. */
    double log_retention_s;
    /* A running world's log past this size loses its oldest part, down to
     * about half of it; checked every 5 s. 0: no cap. */
    uint64_t log_max_bytes;
    /* This Bindery's identity, handed to every world as BINDERY_INSTANCE,
     * so that a later run of the same Bindery can tell its own leftover
     * processes from another's on the same machine (stop_strays). NULL or
     * empty: worlds carry none, and stop_strays stops nothing. At most 64
     * characters, letters, digits, '-' and '_'. */
    const char *instance;
    bdy_world_exit_cb on_exit;
    bdy_world_probe_cb on_probe;
    bdy_world_ending_cb on_ending; /* NULL: not told */
    void *data;                    /* for the callbacks */
} bdy_process_runtime_opts;

int bdy_runtime_process_new(const bdy_process_runtime_opts *opts, bdy_runtime **out,
                            bdy_errbuf *eb);
/* The benchmark runtime: starts no process. A world is RUNNING at once and
 * READY ready_delay_ms after start; it never exits on its own, and stop()
 * reports the exit through the callback after a short delay. For
 * benchmarks and tests that need far more worlds than processes can give;
 * never the default (config runtime: bench). Handles carry pid 0. */
typedef struct bdy_bench_runtime_opts {
    unsigned ready_delay_ms;
    unsigned port_min;
    unsigned port_max;
    bdy_world_exit_cb on_exit;
    void *data;
} bdy_bench_runtime_opts;

int bdy_runtime_bench_new(const bdy_bench_runtime_opts *opts, bdy_runtime **out, bdy_errbuf *eb);

void bdy_runtime_free(bdy_runtime *rt);

#endif
