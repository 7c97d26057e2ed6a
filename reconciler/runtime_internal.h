/* Internal to the runtime backends: the checks every backend makes the same
 * way, and what the process runtime reads from /proc (runtime_procfs.c). */
#ifndef BINDERY_RECONCILER_RUNTIME_INTERNAL_H
#define BINDERY_RECONCILER_RUNTIME_INTERNAL_H

#include "bindery/error.h"
#include "bindery/runtime.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Kubernetes limits: a namespace is a DNS label, a name a DNS subdomain. */
#define BDY__WORLD_NS_MAX 63
#define BDY__WORLD_NAME_MAX 253

/* Checks that ns and name are usable as a world's identity: present, within
 * the Kubernetes lengths, and safe inside a file name (no '/', no control
 * characters, not "." or ".."), since the process runtime names a log file
 * after them. Returns 0 or BDY_EINVAL with the detail in eb. */
int bdy__runtime_check_names(const char *ns, const char *name, bdy_errbuf *eb);

/* ---- a world's environment and placeholders (runtime_env.c) ------------- */

/* "NAME=value" strings for execve. Zero it to begin (max: most entries,
 * 0 for no limit); free with bdy__env_free. */
typedef struct bdy__env {
    char **vars; /* NULL-terminated once it holds one */
    size_t n;
    size_t cap;
    size_t max;
} bdy__env;

/* Sets name=value, replacing an earlier value of name. BDY_ENOMEM, or
 * BDY_ETOOBIG past max entries. */
int bdy__env_set(bdy__env *env, const char *name, const char *value);
/* The entries, NULL-terminated, for execve (an empty list when none). */
char **bdy__env_vars(bdy__env *env);
void bdy__env_free(bdy__env *env);

/* Port name's host port (name is len bytes, no NUL): 0, or BDY_ENOTFOUND
 * when the world has no such port. */
typedef int (*bdy__port_lookup_fn)(void *data, const char *name, size_t len, unsigned *port);

/* Stores text with its placeholders replaced in *out (caller frees):
 * {port:NAME} becomes the host port lookup gives for NAME, {name} and
 * {namespace} the world's identity. Other braces, and any right after a
 * '$', are copied as they are, so shell text such as ${HOME}, ${name} or
 * ${port:-7777} passes through; an unknown port name is an error because
 * it can only be a mistake in the manifest. BDY_EINVAL, BDY_ETOOBIG (longer
 * than BDY_RUNTIME_MAX_ARG_BYTES) or BDY_ENOMEM, with the reason in eb. */
int bdy__expand(const char *text, const char *ns, const char *name, bdy__port_lookup_fn lookup,
                void *data, char **out, bdy_errbuf *eb);

/* What /proc/PID/stat says of a process. */
typedef struct bdy__proc_stat {
    char state; /* 'R', 'S', ... 'Z' for a zombie */
    int64_t ppid;
    int64_t pgrp;
    int64_t threads;     /* field 20 */
    uint64_t start_time; /* field 22: clock ticks since boot */
} bdy__proc_stat;

/* Whether the process st describes has ended. A zombie leader whose other
 * threads run (its main thread called pthread_exit) reads 'Z' but is a
 * live process, which must be neither failed nor left unwatched. */
static inline bool bdy__proc_stat_ended(const bdy__proc_stat *st)
{
    return (st->state == 'Z' || st->state == 'X') && st->threads <= 1;
}

/* Reads pid's /proc/PID/stat. BDY_ENOTFOUND when there is no such
 * process, BDY_EPARSE when the line is not as expected, BDY_ENOMEM when
 * bindery is short of descriptors or memory to look. */
int bdy__proc_stat_read(int64_t pid, bdy__proc_stat *out);

/* This boot's id, as /proc/sys/kernel/random/boot_id gives it without
 * its newline, into out (sizeof(bdy_world_handle.boot_id) bytes). An
 * empty string when it cannot be read: boots are then not told apart. */
void bdy__boot_id_read(char *out, size_t size);

/* Longest world uid a process's environment may carry (Kubernetes uids are
 * 36 characters). */
#define BDY__WORLD_UID_MAX 128

/* The environment variable that carries port name's host port:
 * "BINDERY_PORT_" + the name in upper case, anything but letters and digits
 * as '_'. Sized for the longest bdy_port name (both NULs counted once). */
#define BDY__PORT_ENV_PREFIX "BINDERY_PORT_"
#define BDY__PORT_ENV_MAX (sizeof(BDY__PORT_ENV_PREFIX) + sizeof(((bdy_port *)0)->name) - 1)
void bdy__port_env_name(const char *port_name, char out[BDY__PORT_ENV_MAX]);

/* Longest Bindery instance id a process's environment may carry
 * (BINDERY_INSTANCE; the daemon's are 32 hex digits). */
#define BDY__INSTANCE_MAX 64

/* The variable that marks a world's process as one that relays SIGTERM to
 * the processes it runs; its value is how many it runs as its children
 * (bdy_world_spec.children; 0: not watched). */
#define BDY__RELAYS_TERM_ENV "BINDERY_RELAYS_TERM"

/* A process found running a world, by the identity the process runtime
 * puts in every world's environment (BINDERY_WORLD_UID, _NAME, _NAMESPACE,
 * BINDERY_INSTANCE, BINDERY_RELAYS_TERM and BINDERY_PORT_<NAME>), so that one whose start no
 * status recorded can be taken back after a restart, and one whose world
 * is gone can be stopped by the Bindery that started it
 * (runtime_procfs.c). */
typedef struct bdy__stray {
    struct bdy__stray *next;
    int64_t pid;
    int64_t ppid;
    uint64_t start_time; /* /proc/PID/stat field 22 */
    char uid[BDY__WORLD_UID_MAX + 1];
    char ns[BDY__WORLD_NS_MAX + 1];
    char name[BDY__WORLD_NAME_MAX + 1];
    char instance[BDY__INSTANCE_MAX + 1]; /* "" when it carries none */
    /* BINDERY_RELAYS_TERM=N: it passes SIGTERM on to its modules itself
     * (bdy_world_spec.relays_term), and runs N of them as its children
     * (bdy_world_spec.children; 0 when the value is no number up to
     * BDY_RUNTIME_MAX_ARGS). */
    bool relays_term;
    unsigned children;
    size_t nports;
    struct {
        char env[BDY__PORT_ENV_MAX]; /* "BINDERY_PORT_GAME" */
        unsigned port;
    } ports[BDY_RUNTIME_MAX_PORTS];
} bdy__stray;

/* Reads a world's identity and ports from one process environment: len
 * bytes of NUL-separated NAME=value entries, as /proc/PID/environ holds
 * them (the last entry may lack its NUL). Fills everything but pid,
 * start_time. False when the environment names no world (a
 * uid, namespace and name, each within its limit, are all needed; the
 * instance is optional). Entries
 * that do not fit (an over-long value, a port that is no number in
 * 1-65535, more ports than fit) are skipped. */
bool bdy__stray_parse_environ(const char *env, size_t len, bdy__stray *out);

/* Every process of this user but the caller that leads its process group
 * (as every world the process runtime starts does, unlike the helpers a
 * world may start, which inherit its environment) and whose environment
 * names a world, as a list (*out, NULL when none; free with bdy__strays_free).
 * Processes that end while being looked at, or whose environment cannot
 * be read (another user, not dumpable), are passed over; at most
 * BDY__ENVIRON_MAX bytes of each environment are read. BDY_ENOMEM, or
 * BDY_EIO when /proc cannot be listed. */
#define BDY__ENVIRON_MAX ((size_t)1 << 20)
int bdy__strays_find(bdy__stray **out, size_t *count);
/* The same for the processes of process group pgrp, leader or not, and
 * those among them whose environment names no world too (uid, ns and name
 * empty). */
int bdy__group_find(int64_t pgrp, bdy__stray **out, size_t *count);
void bdy__strays_free(bdy__stray *list);
/* Appends the pids of parent's children (every thread's, from
 * /proc/PID/task/TID/children) to out, at most max; returns how many, or,
 * where the kernel has no such files (no CONFIG_PROC_CHILDREN), those a
 * scan of every process finds (ppid == parent), which costs tens of
 * milliseconds with many processes. -1 when parent cannot be looked at. */
ssize_t bdy__children_of(int64_t parent, int64_t *out, size_t max);

/* The world identity in one process's environment (out as for
 * bdy__stray_parse_environ, filled as far as it goes even when it names no
 * world). BDY_ENOTFOUND when it names none or cannot be read; BDY_ENOMEM. */
int bdy__proc_identity(int64_t pid, bdy__stray *out);

/* ---- world logs (runtime_logs.c) ---------------------------------------- */

/* Most logs one sweep deletes, so that a folder of a million old logs is
 * worked through a slice a minute. */
#define BDY__LOG_SWEEP_MAX 10000u

/* Deletes the regular files "*.log" in dir last written retention_s or more
 * before now (wall seconds) whose name is not in running (the log file
 * names of running worlds, "<ns>_<name>.log"; sorted here), at most
 * max_deletes of them. Returns how many went. */
size_t bdy__logs_sweep(const char *dir, double retention_s, double now, char **running,
                       size_t nrunning, size_t max_deletes);

/* Fills *names (malloc'ed array of malloc'ed strings, the caller frees
 * both) with the log file names of the worlds running now. 0 or BDY_ENOMEM,
 * when no sweep happens. */
typedef int (*bdy__logs_running_fn)(void *data, char ***names, size_t *count);

/* Cuts every log named in running (log file names in dir) that is larger
 * than max_bytes down to about half of it, dropping its oldest bytes and
 * appending a line that says so (0: no cap). Returns how many were cut. */
size_t bdy__logs_cap(const char *dir, char **running, size_t nrunning, uint64_t max_bytes);

/* The same for the other "*.log" files in dir written within the last
 * within_s seconds before now (wall seconds): a world's helper that left
 * its process group (setsid, a daemon) writes on after the world ended,
 * and its log, neither running nor old, would grow without bound. running
 * is sorted here. Returns how many were cut. */
size_t bdy__logs_cap_written(const char *dir, char **running, size_t nrunning, uint64_t max_bytes,
                             double now, double within_s);

typedef struct bdy__log_sweeper bdy__log_sweeper;
/* Starts a thread that caps running worlds' logs at max_bytes every few
 * seconds and sweeps dir of old logs once a minute; *out stays NULL
 * (nothing to stop) when retention_s and max_bytes are both 0. */
int bdy__log_sweeper_start(const char *dir, double retention_s, uint64_t max_bytes,
                           bdy__logs_running_fn running, void *data, bdy__log_sweeper **out,
                           bdy_errbuf *eb);
/* Stops and frees the sweeper (NULL: nothing). */
void bdy__log_sweeper_stop(bdy__log_sweeper *s);

#endif
