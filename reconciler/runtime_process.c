/* The process runtime (embedded mode): every world is a local process
 * started from its ModuleManifest's spec.local.
 *
 * A world runs in a session of its own, so a signal aimed at Bindery's
 * process group never reaches it, and Bindery does not kill its worlds when
 * it goes: worlds outlive Bindery. A restarted Bindery adopts them back by
 * pid and start time, the pair a recycled pid cannot fake.
 *
 * Threads: one watcher thread waits (epoll) on a pidfd per world and on an
 * eventfd that wakes it for shutdown and for new SIGKILL deadlines. Where
 * pidfds are missing (Linux before 5.4, some sandboxes, valgrind) it polls
 * the worlds every POLL_EXITS_MS instead. It reaps the worlds that are our
 * children, frees their ports and calls the exit callback with no lock
 * held, so the callback may call back into the runtime. Readiness probes
 * run on a prober (prober.h) and its thread, which calls the probe
 * callback, also with no lock of ours held. Every vtable slot
 * may be called from any thread; one mutex guards the world list, the port
 * map and the deadlines.
 */
#include "bindery/log.h"
#include "bindery/runtime.h"
#include "bindery/util.h"
#include "prober.h"
#include "runtime_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOG_COMPONENT "runtime"
#define LOOPBACK "127.0.0.1"
#define PROBE_TIMEOUT_MS 1000 /* when the probe names none */
/* Probes running at once, each with a socket: worlds past this many get no
 * verdict until a later pass. */
#define PROBES_MAX 512
#define EPOLL_BATCH 64
#define POLL_EXITS_MS 50 /* how often exits are looked for without pidfds */
#define LOG_DIR_MODE 0750
#define LOG_FILE_MODE 0640
#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

/* The only variables a world inherits from Bindery's environment: enough to
 * find programs and format text, none of Bindery's own settings or secrets. */
static const char *const inherited_env[] = {"PATH", "HOME", "LANG", "TZ"};
#define INHERITED_ENV_COUNT (sizeof(inherited_env) / sizeof(inherited_env[0]))
/* inherited + the bound + the manifest's + BINDERY_WORLD_UID/NAME/NAMESPACE + BINDERY_INSTANCE +
 * BINDERY_RELAYS_TERM + a port each */
#define ENV_MAX                                                                                    \
    (INHERITED_ENV_COUNT + BDY_RUNTIME_MAX_ENV + BDY_RUNTIME_MAX_ENV + 5 + BDY_RUNTIME_MAX_PORTS)

/* One watched world. Linked while it runs; the watcher unlinks and frees it
 * once its exit has been reported. */
/* Orphan reaping (PID 1 or subreaper): how often, and most zombies kept
 * track of per scan. */
#define REAP_EVERY_MS 2000u
#define REAP_MAX 1024u
#define SPAWNING_MAX 256u
/* A world that relays SIGTERM (a booklet world's host) starts the children
 * it runs at once. Until all of them are seen they are looked for this
 * often; fewer than it runs, once it has been watched CHILDREN_START_MS,
 * means one has ended already. */
#define CHILDREN_SCAN_MS 100u
#define CHILDREN_START_MS 10000u
/* Most worlds whose children one look takes in. */
#define CHILDREN_SCAN_MAX 256u

typedef struct proc_world proc_world;

/* What an epoll event stands for: a world's own process, or one of the
 * children it runs. */
typedef struct watch_tag {
    proc_world *world;
    bool child;
} watch_tag;

/* The children a world runs (bdy_world_spec.children). Watcher thread
 * only, but for being made before the world is linked. */
typedef struct world_children {
    unsigned expected;
    unsigned n;   /* watched; 0 while they are still looked for */
    bool pending; /* still looked for: counted in children_pending (under lock) */
    int64_t pid[BDY_RUNTIME_MAX_ARGS];
    uint64_t start_time[BDY_RUNTIME_MAX_ARGS];
    int pidfd[BDY_RUNTIME_MAX_ARGS]; /* -1 without pidfd support */
} world_children;

struct proc_world {
    struct proc_world *prev;
    struct proc_world *next;
    char ns[BDY__WORLD_NS_MAX + 1];
    char name[BDY__WORLD_NAME_MAX + 1];
    bdy_world_handle h;
    int pidfd;           /* -1 without pidfd support */
    bool own_group;      /* leads its process group: signals go to the whole group */
    bool relays_term;    /* but SIGTERM to it alone (bdy_world_spec.relays_term) */
    uint64_t kill_at_ns; /* SIGKILL deadline after stop(), 0 when none */
    /* A process of a world that no longer exists, being stopped by
     * stop_strays(): no world is its, so it has no name here (find_by_name
     * passes it over) and its exit is reported to no one. */
    bool orphan;
    watch_tag own_tag;      /* its pidfd's */
    watch_tag children_tag; /* its children's pidfds' */
    /* Its children, while watched or looked for (NULL: none), whether
     * their end was reported (on_ending), and since when it is watched.
     * Watcher thread only. */
    world_children *children;
    bool ending;
    uint64_t watched_since_ns;
    bool stop_requested; /* stop() was called: its children end as asked (under lock) */
};

typedef struct proc_runtime {
    pthread_mutex_t lock; /* guards everything down to stopping */
    proc_world *worlds;
    uint8_t *ports_used; /* bitmap over [port_min, port_max] */
    unsigned port_min;
    unsigned port_max;
    unsigned port_cursor; /* offset where the next port search starts */
    bool stopping;

    /* World processes that were running when this runtime was made and
     * that no adopt() or reclaim() has taken yet (runtime_procfs.c). */
    bdy__stray *strays;
    char instance[BDY__INSTANCE_MAX + 1]; /* BINDERY_INSTANCE; "" for none */

    char *work_dir; /* NULL: worlds start in Bindery's directory */
    char *log_dir;
    bdy_world_exit_cb on_exit;
    bdy_world_probe_cb on_probe;
    bdy_world_ending_cb on_ending; /* NULL: not told */
    void *data;
    bdy__prober *prober; /* readiness probes, on its own thread */
    bool have_pidfds;
    char boot_id[sizeof(((bdy_world_handle *)0)->boot_id)]; /* empty: unknown */
    int epfd;
    int wakefd;
    pthread_t thread;
    bool thread_started;
    bdy__log_sweeper *log_sweeper; /* NULL: logs kept for good */

    /* As PID 1 (a container without an init) or a child subreaper, the
     * helpers a world leaves when its group is killed are re-parented to
     * Bindery: their zombies are reaped here, or they would pile up. Only
     * the watcher thread touches these. */
    bool reaps_orphans;
    uint64_t next_reap_ns;
    int64_t zombies[REAP_MAX]; /* unwatched zombie children seen last scan */
    size_t nzombies;
    /* Worlds spawned and not watched yet (under lock): the reaper must not
     * take one that exits at once, whose exit its start reports. */
    int64_t spawning[SPAWNING_MAX];
    size_t nspawning;
    /* Worlds whose children are still looked for (under lock), and when
     * the next look is due (watcher thread only). */
    size_t children_pending;
    uint64_t next_children_look_ns;
    /* Worlds one round looks at (watcher thread only), and the rate of
     * its warnings. */
    proc_world *children_due[CHILDREN_SCAN_MAX];
    /* Without pidfds: where the next poll of watched children starts, as
     * an index among the worlds that have some, so that with more than
     * CHILDREN_SCAN_MAX every one is polled in turn. Watcher thread only. */
    size_t children_poll_next;
    bdy_log_limit children_log;
} proc_runtime;

/* ---- /proc ---------------------------------------------------------------- */

/* Whether the process h recorded is still there: same pid, same start
 * time, not ended (see bdy__proc_stat_ended). BDY_ENOTFOUND when it is not.
 * For handles of this boot: those this runtime made or watches. */
static int alive_as_recorded(const bdy_world_handle *h, bdy__proc_stat *st)
{
    int rc = bdy__proc_stat_read(h->pid, st);
    if (rc != 0)
        return rc;
    if (st->start_time != h->start_time || bdy__proc_stat_ended(st))
        return BDY_ENOTFOUND;
    return 0;
}

/* The same for a handle the caller recorded, perhaps before a reboot: a
 * handle of another boot names no process of this one, whatever now runs
 * under its pid. */
static int recorded_alive(const proc_runtime *rt, const bdy_world_handle *h, bdy__proc_stat *st)
{
    if (h->boot_id[0] != '\0' && rt->boot_id[0] != '\0' && strcmp(h->boot_id, rt->boot_id) != 0)
        return BDY_ENOTFOUND;
    return alive_as_recorded(h, st);
}

/* ---- ports ---------------------------------------------------------------- */

static bool port_in_range(const proc_runtime *rt, unsigned port)
{
    return port >= rt->port_min && port <= rt->port_max;
}

static bool port_taken(const proc_runtime *rt, unsigned port)
{
    unsigned i = port - rt->port_min;
    return (rt->ports_used[i / 8] >> (i % 8)) & 1u;
}

/* Marks a port handed out or free; ports outside the range (an adopted
 * world started under another configuration) are not ours to track.
 * Caller holds rt->lock. */
static void port_mark(proc_runtime *rt, unsigned port, bool taken)
{
    if (!port_in_range(rt, port))
        return;
    unsigned i = port - rt->port_min;
    if (taken)
        rt->ports_used[i / 8] |= (uint8_t)(1u << (i % 8));
    else
        rt->ports_used[i / 8] &= (uint8_t) ~(1u << (i % 8));
}

static void release_ports(proc_runtime *rt, const bdy_world_handle *h)
{
    for (size_t i = 0; i < h->nports; i++)
        if (h->ports[i].port != 0)
            port_mark(rt, h->ports[i].port, false);
}

/* 1 when a TCP and a UDP socket can both bind sa (IPv6 only when v6only);
 * 0 if one cannot; -errno when no socket could be made to tell. A host
 * without IPv6 (no such family or address) holds nothing there: 1. */
static int binds_both(const struct sockaddr *sa, socklen_t len, bool v6only)
{
    int one = 1;
    int is_free = 0;
    int tcp = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int udp = tcp >= 0 ? socket(sa->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0) : -1;
    if (tcp < 0 || udp < 0) {
        is_free = v6only && errno == EAFNOSUPPORT ? 1 : -errno;
    } else if ((!v6only || (setsockopt(tcp, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == 0 &&
                            setsockopt(udp, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == 0)) &&
               setsockopt(tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0) {
        bool tcp_ok = bind(tcp, sa, len) == 0;
        int tcp_err = errno;
        is_free =
            (tcp_ok && bind(udp, sa, len) == 0) || (!tcp_ok && v6only && tcp_err == EADDRNOTAVAIL);
    }
    if (tcp >= 0)
        close(tcp);
    if (udp >= 0)
        close(udp);
    return is_free;
}

/* The error for an errno from making a descriptor or a process:
 * BDY_ENOMEM when the system or bindery is short of them now (a later
 * start may succeed, and the world is not to blame), else BDY_EIO. */
static int shortage_or_io(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOMEM || err == ENOBUFS || err == EAGAIN
               ? BDY_ENOMEM
               : BDY_EIO;
}

/* 1 when nothing holds port on any IPv4 or IPv6 address, by TCP or by UDP;
 * 0 if something does; -errno when no socket could be made to tell (out of
 * descriptors): that is bindery's trouble, not the port's. The checks bind
 * the wildcard addresses, which fail if anything is bound to the port on
 * any one address (a check on 127.0.0.1 alone passed a port another
 * program held on 10.0.0.5, and a world binding 0.0.0.0 then failed); the
 * IPv6 one IPv6 only, as IPv4 is checked apart. A world may serve a UDP
 * game port and answer probes over TCP on the same number, so a port is
 * handed out only when both are free. SO_REUSEADDR on the TCP check lets a
 * port whose old connections linger in TIME_WAIT count as free (as it is
 * for a world that sets the option too); it still fails on a listener. The
 * UDP check goes without it, which would let it share a bound port. */
static int port_is_free(unsigned port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_ANY);
    int is_free = binds_both((const struct sockaddr *)&sa, sizeof(sa), false);
    if (is_free != 1)
        return is_free;
    struct sockaddr_in6 sa6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
    sa6.sin6_addr = in6addr_any;
    return binds_both((const struct sockaddr *)&sa6, sizeof(sa6), true);
}

/* Whether a stray that is still running was told port: such a port is not
 * handed out, even before the stray has bound it, since the world it
 * belongs to may be taken back. Strays found gone are forgotten. Caller
 * holds rt->lock. */
static bool stray_holds_port(proc_runtime *rt, unsigned port)
{
    for (bdy__stray **p = &rt->strays; *p != NULL;) {
        bdy__stray *s = *p;
        bool told = false;
        for (size_t i = 0; i < s->nports && !told; i++)
            told = s->ports[i].port == port;
        if (!told) {
            p = &s->next;
            continue;
        }
        bdy_world_handle h = {.pid = s->pid, .start_time = s->start_time};
        bdy__proc_stat st;
        /* Forgotten only when surely gone: a look that failed (no
         * descriptor) says nothing, and the port stays kept. */
        if (alive_as_recorded(&h, &st) != BDY_ENOTFOUND)
            return true;
        *p = s->next;
        free(s);
    }
    return false;
}

/* Gives every port of h a free host port. The search starts after the port
 * handed out last, so a port just freed is the last one reused (a client of
 * the old world may still be talking to it). On failure nothing stays
 * marked. Caller holds rt->lock. */
static int assign_ports(proc_runtime *rt, bdy_world_handle *h, bdy_errbuf *eb)
{
    unsigned span = rt->port_max - rt->port_min + 1;
    /* More ports than the range holds can never be had: the world fails
     * (BDY_EBUSY would keep it waiting for ports for good). */
    if (span == 0 || h->nports > span) /* span 0: the full range of unsigned, never configured */
        return bdy_fail(eb, BDY_EINVAL,
                        "the world needs %zu host ports, more than the %u of runtime.portMin.."
                        "portMax (%u-%u)",
                        h->nports, span, rt->port_min, rt->port_max);
    for (size_t i = 0; i < h->nports; i++) {
        unsigned found = 0;
        int local_err = 0;
        for (unsigned k = 0; k < span && found == 0 && local_err == 0; k++) {
            unsigned port = rt->port_min + (rt->port_cursor + k) % span;
            if (port_taken(rt, port) || stray_holds_port(rt, port))
                continue;
            int is_free = port_is_free(port);
            if (is_free > 0)
                found = port;
            else if (is_free < 0)
                local_err = -is_free;
        }
        if (found == 0) {
            release_ports(rt, h);
            for (size_t j = 0; j < i; j++)
                h->ports[j].port = 0;
            if (local_err != 0)
                return bdy_fail(eb, shortage_or_io(local_err),
                                "cannot open a socket to find a host port: %s",
                                strerror(local_err));
            return bdy_fail(eb, BDY_EBUSY, "no free host port in %u-%u for port \"%s\"",
                            rt->port_min, rt->port_max, h->ports[i].name);
        }
        port_mark(rt, found, true);
        rt->port_cursor = (found - rt->port_min + 1) % span;
        h->ports[i].port = found;
    }
    return 0;
}

/* ---- the world list (caller holds rt->lock) ------------------------------- */

static proc_world *find_by_process(proc_runtime *rt, int64_t pid, uint64_t start_time)
{
    for (proc_world *w = rt->worlds; w != NULL; w = w->next)
        if (w->h.pid == pid && w->h.start_time == start_time)
            return w;
    return NULL;
}

static proc_world *find_by_name(proc_runtime *rt, const char *ns, const char *name)
{
    for (proc_world *w = rt->worlds; w != NULL; w = w->next)
        if (!w->orphan && strcmp(w->ns, ns) == 0 && strcmp(w->name, name) == 0)
            return w;
    return NULL;
}

static void unlink_world(proc_runtime *rt, proc_world *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        rt->worlds = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    w->prev = NULL;
    w->next = NULL;
}

#ifndef PIDFD_SIGNAL_PROCESS_GROUP
#define PIDFD_SIGNAL_PROCESS_GROUP (1U << 2) /* Linux 6.9 */
#endif

/* Signals the process group of pidfd's process through the pidfd itself
 * (Linux 6.9+): exact even for a process that is not our child, whose pid
 * number (and so its group id) the kernel frees when it is reaped, pidfd
 * or not. False when the kernel lacks it or the process is gone. */
static bool pidfd_signal_group(int pidfd, int sig)
{
    return pidfd >= 0 && pidfd_send_signal(pidfd, sig, NULL, PIDFD_SIGNAL_PROCESS_GROUP) == 0;
}

/* Whether signalling pidfd's group failed for want of kernel support (so a
 * kill(-pgid) is the fallback), not because the process is gone. */
static bool group_signal_unsupported(void)
{
    return errno == EINVAL;
}

/* Sends sig to the world and, when it leads its own process group (every
 * world this runtime started does), to the helpers it started as well, so
 * a wrapper script cannot leave its game server running. With a pidfd the
 * kernel signals the group exactly; without one (or on a kernel before
 * 6.9) a check first makes sure the pid, and with it the group id, is
 * still the world's, which leaves a moment for a recycled pid. A world
 * that relays SIGTERM itself gets it alone; its SIGKILL goes to the group. */
static void signal_world(const proc_world *w, int sig)
{
    bool group = w->own_group && !(w->relays_term && sig == SIGTERM);
    if (w->pidfd >= 0 && !group) {
        pidfd_send_signal(w->pidfd, sig, NULL, 0);
        return;
    }
    if (pidfd_signal_group(w->pidfd, sig) || (w->pidfd >= 0 && !group_signal_unsupported()))
        return;
    bdy__proc_stat st;
    bool there = w->pidfd >= 0 ? pidfd_send_signal(w->pidfd, 0, NULL, 0) == 0
                               : alive_as_recorded(&w->h, &st) == 0;
    if (there)
        kill(group ? -(pid_t)w->h.pid : (pid_t)w->h.pid, sig);
}

static void wake_watcher(proc_runtime *rt)
{
    uint64_t one = 1;
    ssize_t n = write(rt->wakefd, &one, sizeof(one));
    (void)n; /* a full counter already wakes the watcher */
}

/* Puts a world under watch: links it, marks its ports taken when
 * mark_ports (an adopted world; a start holds its ports already and keeps
 * them on failure) and registers its pidfd (if any) with the watcher.
 * Takes ownership of pidfd on success only; on failure the ports are as
 * they were. BDY_EEXISTS when another process already runs a world of
 * that name. Caller must not hold rt->lock. */
static int watch_world(proc_runtime *rt, const char *ns, const char *name,
                       const bdy_world_handle *h, int pidfd, bool own_group, bool relays_term,
                       unsigned children, bool mark_ports, bool orphan, bdy_errbuf *eb)
{
    int rc = 0;
    proc_world *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return bdy_fail(eb, BDY_ENOMEM, "out of memory");
    /* A leftover being stopped has no world whose end its children could
     * tell. */
    if (children > 0 && !orphan) {
        if ((w->children = calloc(1, sizeof(*w->children))) == NULL) {
            free(w);
            return bdy_fail(eb, BDY_ENOMEM, "out of memory");
        }
        w->children->expected =
            children < BDY_RUNTIME_MAX_ARGS ? children : (unsigned)BDY_RUNTIME_MAX_ARGS;
    }
    w->own_tag = (watch_tag){.world = w, .child = false};
    w->children_tag = (watch_tag){.world = w, .child = true};
    w->watched_since_ns = bdy_monotonic_ns();
    snprintf(w->ns, sizeof(w->ns), "%s", ns);
    snprintf(w->name, sizeof(w->name), "%s", name);
    w->h = *h;
    w->pidfd = pidfd;
    w->own_group = own_group;
    w->relays_term = relays_term;
    w->orphan = orphan;

    pthread_mutex_lock(&rt->lock);
    const proc_world *other = orphan ? NULL : find_by_name(rt, ns, name);
    if (other != NULL) {
        rc = bdy_fail(eb, BDY_EEXISTS, "world %s/%s already runs as pid %lld", ns, name,
                      (long long)other->h.pid);
        goto out;
    }
    /* Linked before the pidfd is registered: the watcher may report the
     * exit at once and expects to find the world in the list. */
    w->next = rt->worlds;
    if (rt->worlds != NULL)
        rt->worlds->prev = w;
    rt->worlds = w;
    for (size_t i = 0; mark_ports && i < h->nports; i++) {
        /* A leftover told a port that another process holds (a helper of
         * the same gone world, a world started since) does not own it:
         * its exit must not free the port under the holder. */
        if (orphan && port_in_range(rt, h->ports[i].port) && port_taken(rt, h->ports[i].port)) {
            w->h.ports[i].port = 0;
            continue;
        }
        port_mark(rt, h->ports[i].port, true);
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &w->own_tag};
    if (pidfd >= 0 && epoll_ctl(rt->epfd, EPOLL_CTL_ADD, pidfd, &ev) != 0) {
        rc = bdy_fail(eb, BDY_EIO, "cannot watch pid %lld: %s", (long long)h->pid, strerror(errno));
        unlink_world(rt, w);
        if (mark_ports)
            release_ports(rt, &w->h);
        goto out;
    }
    bool look_for_children = w->children != NULL;
    if (look_for_children) {
        w->children->pending = true;
        rt->children_pending++;
    }
    w = NULL;
out:
    pthread_mutex_unlock(&rt->lock);
    if (w != NULL)
        free(w->children);
    free(w);
    /* It may sleep with no timeout while no world was polled, or until
     * children are looked for next. */
    if (rc == 0 && (pidfd < 0 || look_for_children))
        wake_watcher(rt);
    return rc;
}

/* ---- the watcher thread --------------------------------------------------- */

/* Milliseconds until the earliest SIGKILL deadline, or until the next look
 * for exits without pidfds; -1 when there is nothing to wait for. Caller
 * holds rt->lock. */
static int next_timeout_ms(proc_runtime *rt)
{
    uint64_t earliest = rt->reaps_orphans ? rt->next_reap_ns : 0;
    for (const proc_world *w = rt->worlds; w != NULL; w = w->next)
        if (w->kill_at_ns != 0 && (earliest == 0 || w->kill_at_ns < earliest))
            earliest = w->kill_at_ns;
    int poll_ms = rt->have_pidfds || rt->worlds == NULL ? -1 : POLL_EXITS_MS;
    if (rt->children_pending > 0 && (poll_ms < 0 || poll_ms > (int)CHILDREN_SCAN_MS))
        poll_ms = CHILDREN_SCAN_MS;
    if (earliest == 0)
        return poll_ms;
    uint64_t now = bdy_monotonic_ns();
    uint64_t ms = earliest <= now ? 0 : (earliest - now + 999999) / 1000000;
    if (poll_ms >= 0 && ms > (uint64_t)poll_ms)
        return poll_ms;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

static void kill_overdue(proc_runtime *rt)
{
    pthread_mutex_lock(&rt->lock);
    uint64_t now = bdy_monotonic_ns();
    for (proc_world *w = rt->worlds; w != NULL; w = w->next) {
        if (w->kill_at_ns == 0 || w->kill_at_ns > now)
            continue;
        bdy_warn(LOG_COMPONENT, "world %s/%s (pid %lld) outlived its grace period: SIGKILL", w->ns,
                 w->name, (long long)w->h.pid);
        signal_world(w, SIGKILL);
        w->kill_at_ns = 0;
    }
    pthread_mutex_unlock(&rt->lock);
}

/* An adopted world is not our child: its leader is reaped by someone else,
 * so it cannot be held as a zombie while its group is killed, as our own
 * children are. What it started in its group would outlive it, holding
 * its ports. A group outlives its leader only while members are left, and
 * its id cannot be handed to a new process meanwhile: so a member carrying
 * this world's identity shows that the group is still this world's. So do
 * members that carry none (a helper started with a clean environment, or
 * one that wrote over its own, as setproctitle does), started after the
 * leader, while no other process runs under the leader's pid: only a
 * reused pid could have made a new group of that id. A member naming
 * another world says the group is not this one's. */
/* Whether a process's environment says another bindery instance started
 * it (one that names none, or a runtime without an id, cannot tell). */
static bool other_instance(const char *runtime_instance, const bdy__stray *s)
{
    return runtime_instance[0] != '\0' && s->instance[0] != '\0' &&
           strcmp(s->instance, runtime_instance) != 0;
}

static void kill_group_leftovers(const proc_runtime *rt, const proc_world *w)
{
    /* Most groups end with their leader: one signal-0 tells, where a look
     * at every process on the host costs tens of milliseconds with many
     * of them, on the thread that also keeps the SIGKILL deadlines. */
    if (kill(-(pid_t)w->h.pid, 0) != 0 && errno == ESRCH)
        return;
    bdy__stray *left = NULL;
    size_t n = 0;
    if (bdy__group_find(w->h.pid, &left, &n) != 0)
        return;
    size_t ours = 0;
    size_t anonymous = 0;
    size_t others = 0;
    for (const bdy__stray *p = left; p != NULL; p = p->next) {
        /* The same world's of another instance (a copy of this data
         * folder) is another's group. */
        if (p->uid[0] == '\0')
            anonymous += p->start_time >= w->h.start_time;
        else if (strcmp(p->ns, w->ns) == 0 && strcmp(p->name, w->name) == 0 &&
                 !other_instance(rt->instance, p))
            ours++;
        else
            others++;
    }
    bdy__strays_free(left);
    /* The leader's pid names no other process now: gone, or still the
     * world's (a zombie its parent has not reaped). A failed look proves
     * nothing. */
    bdy__proc_stat st;
    int leader = bdy__proc_stat_read(w->h.pid, &st);
    bool pid_unused = leader == BDY_ENOTFOUND || (leader == 0 && st.start_time == w->h.start_time);
    bool group_is_ours = ours > 0 || (anonymous > 0 && pid_unused);
    if (others > 0 || !group_is_ours)
        return;
    ours += anonymous;
    bdy_warn(LOG_COMPONENT, "world %s/%s (pid %lld) left %zu processes in its group: SIGKILL",
             w->ns, w->name, (long long)w->h.pid, ours);
    kill(-(pid_t)w->h.pid, SIGKILL);
}

/* Stops watching child i of c: its pidfd leaves the epoll set and is
 * closed. Watcher thread. */
static void children_unwatch(proc_runtime *rt, world_children *c, size_t i)
{
    if (c->pidfd[i] >= 0) {
        epoll_ctl(rt->epfd, EPOLL_CTL_DEL, c->pidfd[i], NULL);
        close(c->pidfd[i]);
        c->pidfd[i] = -1;
    }
}

/* Stops watching w's children, or looking for them: their pidfds are
 * closed and they are forgotten. Watcher thread, without rt->lock. */
static void children_drop(proc_runtime *rt, proc_world *w)
{
    world_children *c = w->children;
    if (c == NULL)
        return;
    for (unsigned i = 0; i < c->n; i++)
        children_unwatch(rt, c, i);
    pthread_mutex_lock(&rt->lock);
    if (c->pending)
        rt->children_pending--;
    w->children = NULL;
    pthread_mutex_unlock(&rt->lock);
    free(c);
}

/* Finishes a world whose process has exited (its pidfd turned readable,
 * or has_exited() said so). If it is our child, its zombie still pins the
 * pid and with it the process group id, so whatever is left of the group is
 * killed before the reap: helpers must not outlive the world and keep its
 * ports. An adopted world that is not our child is reaped by its own parent
 * and its exit status is unknown (-1); what it left in its group goes by
 * kill_group_leftovers(). Watcher thread only. */
static void world_exited(proc_runtime *rt, proc_world *w)
{
    pthread_mutex_lock(&rt->lock);
    unlink_world(rt, w);
    pthread_mutex_unlock(&rt->lock);
    children_drop(rt, w);
    idtype_t type = P_PID;
    id_t id = (id_t)w->h.pid;
    if (w->pidfd >= 0) {
        epoll_ctl(rt->epfd, EPOLL_CTL_DEL, w->pidfd, NULL);
        type = (idtype_t)P_PIDFD;
        id = (id_t)w->pidfd;
    }

    int status = -1;
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    if (waitid(type, id, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid != 0) {
        if (w->own_group)
            kill(-(pid_t)w->h.pid, SIGKILL);
        memset(&si, 0, sizeof(si));
        if (waitid(type, id, &si, WEXITED) == 0)
            status = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
    } else if (w->own_group) {
        kill_group_leftovers(rt, w);
    }
    if (w->pidfd >= 0)
        close(w->pidfd);

    pthread_mutex_lock(&rt->lock);
    release_ports(rt, &w->h);
    pthread_mutex_unlock(&rt->lock);

    /* An adopted process is not our child: its status is not ours to read. */
    char how[48] = "with a status not known (not bindery's child)";
    if (status >= 0)
        snprintf(how, sizeof(how), "with status %d", status);
    bdy_info(LOG_COMPONENT, "%s %s/%s (pid %lld) exited %s",
             w->orphan ? "the leftover process of world" : "world", w->ns, w->name,
             (long long)w->h.pid, how);
    if (!w->orphan)
        rt->on_exit(rt->data, w->ns, w->name, &w->h, status);
    free(w);
}

/* Without pidfds: whether a world has exited. Our child is then a zombie,
 * which waitid with WNOWAIT sees without reaping it; any other process is
 * looked up in /proc. Caller holds rt->lock. */
static bool has_exited(const proc_world *w)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    if (waitid(P_PID, (id_t)w->h.pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0)
        return si.si_pid != 0;
    bdy__proc_stat st;
    return alive_as_recorded(&w->h, &st) == BDY_ENOTFOUND;
}

/* Without pidfds: finishes every world that has exited. */
static void poll_exits(proc_runtime *rt)
{
    for (;;) {
        proc_world *gone = NULL;
        pthread_mutex_lock(&rt->lock);
        for (proc_world *w = rt->worlds; w != NULL && gone == NULL; w = w->next)
            if (has_exited(w))
                gone = w;
        pthread_mutex_unlock(&rt->lock);
        if (gone == NULL)
            return;
        world_exited(rt, gone);
    }
}

/* ---- the children of a world that runs several (a booklet world's host) -- */

/* The world is over though its process runs: one of its children ended
 * (which names the child, for the log). Told once, and not at all for a
 * world being stopped, whose children end as asked. Watcher thread,
 * without rt->lock. */
static void world_ending(proc_runtime *rt, proc_world *w, const char *which)
{
    if (w->ending)
        return;
    w->ending = true;
    children_drop(rt, w);
    pthread_mutex_lock(&rt->lock);
    bool asked = w->stop_requested;
    pthread_mutex_unlock(&rt->lock);
    if (asked)
        return;
    bdy_info(LOG_COMPONENT,
             "world %s/%s: %s; the world is over, and pid %lld is stopping the rest of it", w->ns,
             w->name, which, (long long)w->h.pid);
    if (rt->on_ending != NULL)
        rt->on_ending(rt->data, w->ns, w->name, &w->h);
}

typedef enum child_look {
    CHILD_RUNS,
    CHILD_GONE,    /* ended, or its pid is another process's now */
    CHILD_UNKNOWN, /* cannot tell now: out of descriptors, a line /proc did not give */
} child_look;

/* What /proc says of pid as a child of w: running (its start time into
 * *start_time), gone (ended, or another process's pid now: not w's child,
 * or not started at want_start when that is not 0), or nothing (a line it
 * could not read). */
static child_look child_look_at(const proc_world *w, int64_t pid, uint64_t want_start,
                                uint64_t *start_time)
{
    bdy__proc_stat st;
    int rc = bdy__proc_stat_read(pid, &st);
    if (rc != 0)
        return rc == BDY_ENOTFOUND ? CHILD_GONE : CHILD_UNKNOWN;
    *start_time = st.start_time;
    return st.ppid != w->h.pid || bdy__proc_stat_ended(&st) ||
                   (want_start != 0 && st.start_time != want_start)
               ? CHILD_GONE
               : CHILD_RUNS;
}

/* Whether child i of c has ended (or its pid is another process's now),
 * by a look at /proc. */
static bool child_gone(const proc_world *w, const world_children *c, unsigned i)
{
    uint64_t start_time = 0;
    return child_look_at(w, c->pid[i], c->start_time[i], &start_time) == CHILD_GONE;
}

/* A pidfd of w's children turned readable: which one is named, for the
 * log. */
static void children_event(proc_runtime *rt, proc_world *w)
{
    world_children *c = w->children;
    if (c == NULL || w->ending)
        return;
    char which[96] = "a process it runs ended";
    for (unsigned i = 0; i < c->n; i++) {
        struct pollfd pfd = {.fd = c->pidfd[i], .events = POLLIN};
        if (c->pidfd[i] >= 0 && poll(&pfd, 1, 0) == 1) {
            snprintf(which, sizeof(which), "pid %lld, which it runs, ended", (long long)c->pid[i]);
            break;
        }
    }
    world_ending(rt, w, which);
}

/* Takes hold of child pid of w: CHILD_RUNS with its pidfd in *fd (-1
 * without pidfd support) and its start time. The pidfd is opened first, so
 * that the look at /proc after it is at the process it holds. */
static child_look child_open(const proc_runtime *rt, const proc_world *w, int64_t pid, int *fd,
                             uint64_t *start_time)
{
    *fd = -1;
    *start_time = 0;
    if (rt->have_pidfds && (*fd = pidfd_open((pid_t)pid, 0)) < 0)
        return errno == ESRCH ? CHILD_GONE : CHILD_UNKNOWN;
    child_look look = child_look_at(w, pid, 0, start_time);
    if (look != CHILD_RUNS && *fd >= 0) {
        close(*fd);
        *fd = -1;
    }
    return look;
}

/* Looks for w's children: once as many run as it has, they are watched;
 * fewer after CHILDREN_START_MS means one ended (or never started), and so
 * does one that is found ended, or gone before its pidfd holds it.
 * Watcher thread, without rt->lock. */
static void children_look(proc_runtime *rt, proc_world *w)
{
    world_children *c = w->children;
    int64_t pids[BDY_RUNTIME_MAX_ARGS];
    ssize_t found = bdy__children_of(w->h.pid, pids, BDY_RUNTIME_MAX_ARGS);
    if (found < 0)
        return; /* its own exit comes through its pidfd */
    if ((size_t)found < c->expected) {
        if (bdy_monotonic_ns() - w->watched_since_ns >= (uint64_t)CHILDREN_START_MS * 1000000u) {
            char which[96];
            snprintf(which, sizeof(which), "only %zd of the %u processes it runs are left", found,
                     c->expected);
            world_ending(rt, w, which);
        }
        return;
    }
    child_look look = CHILD_RUNS;
    size_t opened = 0;
    for (; opened < (size_t)found && look == CHILD_RUNS; opened++) {
        int fd = -1;
        uint64_t start_time = 0;
        look = child_open(rt, w, pids[opened], &fd, &start_time);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &w->children_tag};
        if (look == CHILD_RUNS && fd >= 0 && epoll_ctl(rt->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close(fd);
            look = CHILD_UNKNOWN;
        }
        if (look != CHILD_RUNS)
            break;
        c->pid[opened] = pids[opened];
        c->start_time[opened] = start_time;
        c->pidfd[opened] = fd;
    }
    if (look != CHILD_RUNS) {
        int err = errno;
        for (size_t i = 0; i < opened; i++)
            children_unwatch(rt, c, i);
        if (look == CHILD_GONE) {
            char which[96];
            snprintf(which, sizeof(which), "pid %lld, which it runs, ended",
                     (long long)pids[opened]);
            world_ending(rt, w, which);
            return;
        }
        /* Out of descriptors, say: no verdict on the world; looked for
         * again at the next round. */
        uint64_t held = 0;
        if (bdy_log_admit(&rt->children_log, 10000, &held))
            bdy_warn(LOG_COMPONENT,
                     "world %s/%s: cannot watch pid %lld, which it runs, now: %s; tried again "
                     "(%llu such lines held back before this one)",
                     w->ns, w->name, (long long)pids[opened], strerror(err),
                     (unsigned long long)held);
        return;
    }
    pthread_mutex_lock(&rt->lock);
    c->n = (unsigned)found;
    c->pending = false;
    rt->children_pending--;
    pthread_mutex_unlock(&rt->lock);
}

/* Looks for the children of the worlds still waiting for theirs, every
 * CHILDREN_SCAN_MS. Watcher thread only. */
static void children_look_all(proc_runtime *rt)
{
    uint64_t now = bdy_monotonic_ns();
    if (now < rt->next_children_look_ns)
        return;
    rt->next_children_look_ns = now + (uint64_t)CHILDREN_SCAN_MS * 1000000u;
    proc_world **due = rt->children_due;
    size_t n = 0;
    pthread_mutex_lock(&rt->lock);
    for (proc_world *w = rt->children_pending > 0 ? rt->worlds : NULL;
         w != NULL && n < CHILDREN_SCAN_MAX; w = w->next)
        if (w->children != NULL && w->children->pending && !w->ending)
            due[n++] = w;
    pthread_mutex_unlock(&rt->lock);
    /* Only this thread unlinks and frees worlds. */
    for (size_t i = 0; i < n; i++)
        children_look(rt, due[i]);
}

/* Without pidfds: tells the end of every world one of whose watched
 * children has ended. Watcher thread only. */
static bool children_watched(const proc_world *w)
{
    return w->children != NULL && w->children->n > 0 && !w->ending;
}

static void children_poll(proc_runtime *rt)
{
    proc_world **watched = rt->children_due;
    size_t n = 0;
    pthread_mutex_lock(&rt->lock);
    size_t total = 0;
    for (const proc_world *w = rt->worlds; w != NULL; w = w->next)
        total += children_watched(w);
    /* CHILDREN_SCAN_MAX of them, from where the last poll stopped, round
     * the list. */
    size_t from = total > 0 ? rt->children_poll_next % total : 0;
    size_t index = 0;
    for (int round = 0; round < 2 && n < CHILDREN_SCAN_MAX && n < total; round++) {
        for (proc_world *w = rt->worlds; w != NULL && n < CHILDREN_SCAN_MAX && n < total;
             w = w->next) {
            if (!children_watched(w))
                continue;
            size_t i = index++;
            if ((round == 0 && i >= from) || (round == 1 && i - total < from))
                watched[n++] = w;
        }
    }
    rt->children_poll_next = from + n;
    pthread_mutex_unlock(&rt->lock);
    for (size_t i = 0; i < n; i++) {
        world_children *c = watched[i]->children;
        for (unsigned k = 0; k < c->n; k++) {
            if (child_gone(watched[i], c, k)) {
                char which[96];
                snprintf(which, sizeof(which), "pid %lld, which it runs, ended",
                         (long long)c->pid[k]);
                world_ending(rt, watched[i], which);
                break;
            }
        }
    }
}

/* Whether pid is a world of ours, watched or being started. Under lock. */
static bool pid_watched(proc_runtime *rt, int64_t pid)
{
    for (const proc_world *w = rt->worlds; w != NULL; w = w->next)
        if (w->h.pid == pid)
            return true;
    for (size_t i = 0; i < rt->nspawning; i++)
        if (rt->spawning[i] == pid)
            return true;
    return false;
}

/* Marks pid as spawned but not watched yet (add) or no longer so. False
 * when the set is full (the caller cannot protect it: it is not added). */
static bool spawning_mark(proc_runtime *rt, int64_t pid, bool add)
{
    bool ok = true;
    pthread_mutex_lock(&rt->lock);
    if (add && rt->nspawning < SPAWNING_MAX) {
        rt->spawning[rt->nspawning++] = pid;
    } else if (add) {
        ok = false;
    } else {
        for (size_t i = 0; i < rt->nspawning; i++)
            if (rt->spawning[i] == pid) {
                rt->spawning[i] = rt->spawning[--rt->nspawning];
                break;
            }
    }
    pthread_mutex_unlock(&rt->lock);
    return ok;
}

/* Reaps zombie children that no watched world accounts for and that were
 * zombies at the last scan too (REAP_EVERY_MS before): a world's own
 * process is reaped by world_exited within moments of its exit, also one
 * just spawned and not watched yet, so only orphans are left that long.
 * Watcher thread only. */
static void reap_orphans(proc_runtime *rt)
{
    uint64_t now = bdy_monotonic_ns();
    if (now < rt->next_reap_ns)
        return;
    rt->next_reap_ns = now + (uint64_t)REAP_EVERY_MS * 1000000u;
    static int64_t children[REAP_MAX * 4]; /* watcher thread only */
    ssize_t listed = bdy__children_of(getpid(), children, sizeof(children) / sizeof(children[0]));
    size_t nchildren = listed > 0 ? (size_t)listed : 0;
    int64_t seen[REAP_MAX];
    size_t nseen = 0;
    size_t reaped = 0;
    for (size_t c = 0; c < nchildren && nseen < REAP_MAX; c++) {
        int64_t pid = children[c];
        bdy__proc_stat st;
        if (bdy__proc_stat_read(pid, &st) != 0 || st.state != 'Z')
            continue;
        pthread_mutex_lock(&rt->lock);
        bool watched = pid_watched(rt, pid);
        pthread_mutex_unlock(&rt->lock);
        if (watched)
            continue;
        bool before = false;
        for (size_t i = 0; i < rt->nzombies && !before; i++)
            before = rt->zombies[i] == pid;
        if (before && waitpid((pid_t)pid, NULL, WNOHANG) == (pid_t)pid)
            reaped++;
        else
            seen[nseen++] = pid;
    }
    memcpy(rt->zombies, seen, nseen * sizeof(seen[0]));
    rt->nzombies = nseen;
    if (reaped > 0)
        bdy_debug(LOG_COMPONENT, "reaped %zu orphaned processes left by worlds", reaped);
}

static void *watcher_main(void *arg)
{
    proc_runtime *rt = arg;
    struct epoll_event evs[EPOLL_BATCH];
    for (;;) {
        pthread_mutex_lock(&rt->lock);
        bool stopping = rt->stopping;
        int timeout = next_timeout_ms(rt);
        pthread_mutex_unlock(&rt->lock);
        if (stopping)
            break;
        int n = epoll_wait(rt->epfd, evs, EPOLL_BATCH, timeout);
        if (n < 0 && errno != EINTR) {
            bdy_error(LOG_COMPONENT, "epoll_wait: %s; world exits are no longer noticed",
                      strerror(errno));
            break;
        }
        /* Children first: an end told early never frees its world, an
         * exit does, and both may be in one batch. */
        for (int i = 0; i < n; i++) {
            const watch_tag *tag = evs[i].data.ptr;
            if (tag != NULL && tag->child)
                children_event(rt, tag->world);
        }
        for (int i = 0; i < n; i++) {
            const watch_tag *tag = evs[i].data.ptr;
            if (tag == NULL) {
                uint64_t count;
                ssize_t r = read(rt->wakefd, &count, sizeof(count));
                (void)r; /* only the wake-up matters */
            } else if (!tag->child) {
                world_exited(rt, tag->world);
            }
        }
        if (!rt->have_pidfds) {
            children_poll(rt);
            poll_exits(rt);
        }
        children_look_all(rt);
        kill_overdue(rt);
        if (rt->reaps_orphans)
            reap_orphans(rt);
    }
    return NULL;
}

/* ---- start ---------------------------------------------------------------- */

static const bdy_port *find_port(const bdy_world_handle *h, const char *name, size_t len)
{
    for (size_t i = 0; i < h->nports; i++)
        if (strlen(h->ports[i].name) == len && memcmp(h->ports[i].name, name, len) == 0)
            return &h->ports[i];
    return NULL;
}

/* The host port of the world's port name (bdy__expand's lookup). */
static int handle_port(void *data, const char *name, size_t len, unsigned *port)
{
    const bdy_port *p = find_port(data, name, len);
    if (p == NULL)
        return BDY_ENOTFOUND;
    *port = p->port;
    return 0;
}

/* text with its placeholders replaced (bdy__expand) in *out (caller frees). */
static int expand(const char *text, const bdy_world_spec *spec, const bdy_world_handle *h,
                  char **out, bdy_errbuf *eb)
{
    return bdy__expand(text, spec->ns, spec->name, handle_port, (void *)h, out, eb);
}

/* The environment of a world: a few inherited variables, the bound ones
 * (as given), the manifest's (placeholders replaced), then Bindery's own, which the manifest cannot
 * override: BINDERY_WORLD_UID, BINDERY_WORLD_NAME, BINDERY_WORLD_NAMESPACE,
 * BINDERY_INSTANCE (when the runtime has one) and BINDERY_PORT_<NAME> for
 * every port (upper case, anything but letters and digits as '_'). The uid
 * is how a restarted runtime recognises a world whose start no status
 * recorded (reclaim); the instance, a process it started whose world is
 * gone (stop_strays). */
static int build_env(const proc_runtime *rt, const bdy_world_spec *spec, const bdy_world_handle *h,
                     bdy__env *env, bdy_errbuf *eb)
{
    int rc = 0;
    char *value = NULL;
    for (size_t i = 0; i < INHERITED_ENV_COUNT && rc == 0; i++) {
        const char *v = getenv(inherited_env[i]);
        if (v == NULL && strcmp(inherited_env[i], "PATH") == 0)
            v = DEFAULT_PATH;
        if (v != NULL)
            rc = bdy__env_set(env, inherited_env[i], v);
    }
    for (size_t i = 0; i < spec->nbound && rc == 0; i++)
        if (strcmp(spec->bound_names[i], BDY__RELAYS_TERM_ENV) != 0)
            rc = bdy__env_set(env, spec->bound_names[i], spec->bound_values[i]);
    for (size_t i = 0; i < spec->nenv && rc == 0; i++) {
        /* Bindery's mark alone: a world whose manifest set it would be
         * taken, after a restart, for one that passes SIGTERM on. */
        if (strcmp(spec->env_names[i], BDY__RELAYS_TERM_ENV) == 0)
            continue;
        rc = expand(spec->env_values[i], spec, h, &value, eb);
        if (rc != 0)
            goto out;
        rc = bdy__env_set(env, spec->env_names[i], value);
        free(value);
        value = NULL;
    }
    if (rc == 0 && spec->uid != NULL && spec->uid[0] != '\0')
        rc = bdy__env_set(env, "BINDERY_WORLD_UID", spec->uid);
    if (rc == 0)
        rc = bdy__env_set(env, "BINDERY_WORLD_NAME", spec->name);
    if (rc == 0)
        rc = bdy__env_set(env, "BINDERY_WORLD_NAMESPACE", spec->ns);
    if (rc == 0 && rt->instance[0] != '\0')
        rc = bdy__env_set(env, "BINDERY_INSTANCE", rt->instance);
    if (rc == 0 && spec->relays_term) {
        char count[16];
        snprintf(count, sizeof(count), "%u", spec->children);
        rc = bdy__env_set(env, BDY__RELAYS_TERM_ENV, count);
    }
    for (size_t i = 0; i < h->nports && rc == 0; i++) {
        char var[BDY__PORT_ENV_MAX];
        char num[16];
        bdy__port_env_name(h->ports[i].name, var);
        snprintf(num, sizeof(num), "%u", h->ports[i].port);
        rc = bdy__env_set(env, var, num);
    }
    if (rc != 0)
        rc = bdy_fail(eb, rc, "cannot build the environment of world %s/%s", spec->ns, spec->name);
out:
    free(value);
    return rc;
}

/* argv for the world: the command, then its arguments with placeholders
 * replaced. argv has BDY_RUNTIME_MAX_ARGS + 2 slots; the caller frees the
 * strings. */
static int build_argv(const bdy_world_spec *spec, const bdy_world_handle *h, char **argv,
                      bdy_errbuf *eb)
{
    argv[0] = strdup(spec->command);
    if (argv[0] == NULL)
        return bdy_fail(eb, BDY_ENOMEM, "out of memory");
    for (size_t i = 0; i < spec->nargs; i++) {
        int rc = expand(spec->args[i], spec, h, &argv[i + 1], eb);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Creates dir and its missing parents, like mkdir -p. */
static int make_dirs(const char *dir, bdy_errbuf *eb)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
        return bdy_fail(eb, BDY_ETOOBIG, "log directory path is too long");
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(path, LOG_DIR_MODE) != 0 && errno != EEXIST)
            return bdy_fail(eb, BDY_EIO, "cannot create directory %s: %s", path, strerror(errno));
        *p = c;
        if (c == '\0')
            return 0;
    }
}

/* The log file names of the worlds running now, for the log sweeper
 * (bdy__logs_running_fn): the watched ones, and the strays, which run
 * although no adopt() has taken them yet. */
static int running_log_names(void *data, char ***names, size_t *count)
{
    proc_runtime *rt = data;
    pthread_mutex_lock(&rt->lock);
    size_t n = 0;
    for (const proc_world *w = rt->worlds; w != NULL; w = w->next)
        n++;
    for (const bdy__stray *st = rt->strays; st != NULL; st = st->next)
        n++;
    char **out = calloc(n ? n : 1, sizeof(*out));
    size_t i = 0;
    bool ok = out != NULL;
    for (const proc_world *w = rt->worlds; ok && w != NULL; w = w->next)
        ok = asprintf(&out[i++], "%s_%s.log", w->ns, w->name) >= 0;
    for (const bdy__stray *st = rt->strays; ok && st != NULL; st = st->next)
        ok = asprintf(&out[i++], "%s_%s.log", st->ns, st->name) >= 0;
    pthread_mutex_unlock(&rt->lock);
    if (!ok) {
        /* asprintf leaves its pointer undefined on failure: the last slot
         * is not freed. */
        for (size_t j = 0; out != NULL && j + 1 < i; j++)
            free(out[j]);
        free(out);
        return BDY_ENOMEM;
    }
    *names = out;
    *count = n;
    return 0;
}

static int open_log(const proc_runtime *rt, const bdy_world_spec *spec, int *fd, bdy_errbuf *eb)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s_%s.log", rt->log_dir, spec->ns, spec->name) >=
        (int)sizeof(path))
        return bdy_fail(eb, BDY_ETOOBIG, "log file path for %s/%s is too long", spec->ns,
                        spec->name);
    *fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, LOG_FILE_MODE);
    if (*fd < 0)
        return bdy_fail(eb, shortage_or_io(errno), "cannot open %s: %s", path, strerror(errno));
    /* An old log reopened for a world of the same name is written from now
     * on: the log sweeper must not take it for one of a world long gone. */
    (void)futimens(*fd, NULL);
    return 0;
}

/* The program a command names, found as execvp would but with the PATH of
 * the world's own environment (posix_spawnp searches Bindery's): a
 * manifest that sets PATH=/opt/game/bin and runs "gameserver" means that
 * one. A command with a slash is used as it is. Relative PATH entries (an
 * empty one is the current directory) are relative to the world's working
 * directory dir, as the exec happens there: out is the path to exec (in
 * dir), checked from here as dir/out. 0 or an errno value: ENOENT when no
 * entry holds the name, EACCES when one does but cannot be run. */
static int resolve_command(const char *cmd, const char *dir, char *const envp[], char *out,
                           size_t cap)
{
    if (strchr(cmd, '/') != NULL)
        return snprintf(out, cap, "%s", cmd) < (int)cap ? 0 : ENAMETOOLONG;
    const char *path = DEFAULT_PATH;
    for (size_t i = 0; envp[i] != NULL; i++)
        if (strncmp(envp[i], "PATH=", 5) == 0)
            path = envp[i] + 5;
    int err = ENOENT;
    for (const char *p = path;; p++) {
        const char *end = strchr(p, ':');
        int len = (int)(end ? (size_t)(end - p) : strlen(p));
        char seen_from_here[PATH_MAX];
        int n =
            len > 0 ? snprintf(out, cap, "%.*s/%s", len, p, cmd) : snprintf(out, cap, "./%s", cmd);
        int m = out[0] != '/' && dir != NULL
                    ? snprintf(seen_from_here, sizeof(seen_from_here), "%s/%s", dir, out)
                    : snprintf(seen_from_here, sizeof(seen_from_here), "%s", out);
        struct stat st;
        if (n >= (int)cap || m >= (int)sizeof(seen_from_here)) {
            if (err == ENOENT)
                err = ENAMETOOLONG;
        } else if (stat(seen_from_here, &st) == 0) {
            if (S_ISREG(st.st_mode) && access(seen_from_here, X_OK) == 0)
                return 0;
            err = EACCES; /* as execvp: found, but not to be run */
        }
        if (end == NULL)
            return err;
        p = end;
    }
}

/* Launches argv in a new session, stdin from /dev/null, stdout and stderr
 * appended to logfd, no other descriptor (closing from 3 catches the ones
 * another thread opened without O_CLOEXEC) and default signal handling, so
 * that Bindery's own (SIGPIPE ignored, signals blocked in threads) does not
 * leak into a world. posix_spawn returns only once the exec has happened,
 * and reports its failure. Returns 0 or an errno value. */
static int spawn_world(const char *dir, int logfd, char *const argv[], char *const envp[],
                       pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none;
    sigset_t all;
    sigemptyset(&none);
    sigfillset(&all);
    int err = posix_spawn_file_actions_init(&fa);
    if (err != 0)
        return err;
    err = posix_spawnattr_init(&attr);
    if (err != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return err;
    }
    err = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                              POSIX_SPAWN_SETSIGDEF);
    if (err == 0)
        err = posix_spawnattr_setsigmask(&attr, &none);
    if (err == 0)
        err = posix_spawnattr_setsigdefault(&attr, &all);
    if (err == 0)
        err = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    if (err == 0)
        err = posix_spawn_file_actions_adddup2(&fa, logfd, STDOUT_FILENO);
    if (err == 0)
        err = posix_spawn_file_actions_adddup2(&fa, logfd, STDERR_FILENO);
    if (err == 0)
        err = posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
    if (err == 0 && dir != NULL)
        err = posix_spawn_file_actions_addchdir_np(&fa, dir);
    /* The analyzer's model of posix_spawn lets it overwrite argv, losing
     * the strings the caller still owns and frees: a false leak. */
    char program[PATH_MAX];
    if (err == 0)
        err = resolve_command(argv[0], dir, envp, program, sizeof(program));
    if (err == 0)
        /* NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
        err = posix_spawn(pid, program, &fa, &attr, argv, envp);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    return err;
}

static int check_spec(const bdy_world_spec *spec, bdy_errbuf *eb)
{
    int rc = bdy__runtime_check_names(spec->ns, spec->name, eb);
    if (rc != 0)
        return rc;
    if (spec->command == NULL || spec->command[0] == '\0')
        return bdy_fail(eb, BDY_EINVAL, "world %s/%s has no command", spec->ns, spec->name);
    if (spec->nargs > BDY_RUNTIME_MAX_ARGS || spec->nenv > BDY_RUNTIME_MAX_ENV ||
        spec->nbound > BDY_RUNTIME_MAX_ENV || spec->nports > BDY_RUNTIME_MAX_PORTS)
        return bdy_fail(eb, BDY_EINVAL, "world %s/%s has too many args, env or ports", spec->ns,
                        spec->name);
    for (size_t i = 0; i < spec->nargs; i++)
        if (spec->args[i] == NULL)
            return bdy_fail(eb, BDY_EINVAL, "argument %zu is missing", i);
    for (size_t i = 0; i < spec->nenv; i++) {
        const char *name = spec->env_names[i];
        if (name == NULL || name[0] == '\0' || strchr(name, '=') != NULL ||
            spec->env_values[i] == NULL)
            return bdy_fail(eb, BDY_EINVAL, "env entry %zu needs a name without '=' and a value",
                            i);
    }
    for (size_t i = 0; i < spec->nbound; i++) {
        const char *name = spec->bound_names[i];
        if (name == NULL || name[0] == '\0' || strchr(name, '=') != NULL ||
            spec->bound_values[i] == NULL)
            return bdy_fail(eb, BDY_EINVAL,
                            "bound variable %zu needs a name without '=' and a value", i);
    }
    for (size_t i = 0; i < spec->nports; i++) {
        const bdy_port *p = &spec->ports[i];
        size_t len = strnlen(p->name, sizeof(p->name));
        if (len == 0 || len == sizeof(p->name))
            return bdy_fail(eb, BDY_EINVAL, "port %zu needs a name of 1 to %zu characters", i,
                            sizeof(p->name) - 1);
        if (strnlen(p->protocol, sizeof(p->protocol)) == sizeof(p->protocol) ||
            (p->protocol[0] != '\0' && strcmp(p->protocol, "TCP") != 0 &&
             strcmp(p->protocol, "UDP") != 0))
            return bdy_fail(eb, BDY_EINVAL, "port \"%s\": protocol must be TCP or UDP", p->name);
        char var[BDY__PORT_ENV_MAX];
        bdy__port_env_name(p->name, var);
        for (size_t j = 0; j < i; j++) {
            char other[BDY__PORT_ENV_MAX];
            bdy__port_env_name(spec->ports[j].name, other);
            if (strcmp(spec->ports[j].name, p->name) == 0)
                return bdy_fail(eb, BDY_EINVAL, "port name \"%s\" is used twice", p->name);
            /* One variable cannot carry two ports. */
            if (strcmp(var, other) == 0)
                return bdy_fail(eb, BDY_EINVAL, "port names \"%s\" and \"%s\" are both %s",
                                spec->ports[j].name, p->name, var);
        }
    }
    return 0;
}

/* Starts one world (see runtime.h). The exit callback may run before this
 * returns if the process dies at once. Any thread. */
static int proc_start(void *ctx, const bdy_world_spec *spec, bdy_world_handle *h, bdy_errbuf *eb)
{
    proc_runtime *rt = ctx;
    int rc = 0;
    bool ports_held = false;
    int logfd = -1;
    int pidfd = -1;
    pid_t pid = 0;       /* set while the process is ours to kill if start fails */
    int64_t spawned = 0; /* marked as spawning: unmarked at the end */
    char *argv[BDY_RUNTIME_MAX_ARGS + 2] = {NULL};
    bdy__env env = {.max = ENV_MAX};

    if (spec == NULL || h == NULL)
        return bdy_fail(eb, BDY_EINVAL, "start: spec and handle are required");
    rc = check_spec(spec, eb);
    if (rc != 0)
        return rc;
    memset(h, 0, sizeof(*h));
    snprintf(h->address, sizeof(h->address), "%s", LOOPBACK);
    h->nports = spec->nports;
    for (size_t i = 0; i < spec->nports; i++) {
        snprintf(h->ports[i].name, sizeof(h->ports[i].name), "%s", spec->ports[i].name);
        snprintf(h->ports[i].protocol, sizeof(h->ports[i].protocol), "%s",
                 spec->ports[i].protocol[0] ? spec->ports[i].protocol : "TCP");
    }

    pthread_mutex_lock(&rt->lock);
    const proc_world *other = find_by_name(rt, spec->ns, spec->name);
    if (other != NULL) {
        rc = bdy_fail(eb, BDY_EEXISTS, "world %s/%s already runs as pid %lld", spec->ns, spec->name,
                      (long long)other->h.pid);
    } else {
        rc = assign_ports(rt, h, eb);
        ports_held = rc == 0;
    }
    pthread_mutex_unlock(&rt->lock);
    if (rc != 0)
        goto out;

    rc = build_argv(spec, h, argv, eb);
    if (rc == 0)
        rc = build_env(rt, spec, h, &env, eb);
    if (rc == 0)
        rc = open_log(rt, spec, &logfd, eb);
    if (rc != 0)
        goto out;
    /* A relative workingDir is under runtime.workDir, as the config's own
     * paths are under the config's folder: not under wherever bindery was
     * started from (often / under a service manager). */
    char joined[PATH_MAX];
    const char *dir = spec->working_dir ? spec->working_dir : rt->work_dir;
    if (spec->working_dir != NULL && spec->working_dir[0] != '/' && rt->work_dir != NULL) {
        int n = snprintf(joined, sizeof(joined), "%s/%s", rt->work_dir, spec->working_dir);
        if (n < 0 || (size_t)n >= sizeof(joined)) {
            rc = bdy_fail(eb, BDY_EINVAL, "world %s/%s: workingDir under %s is too long", spec->ns,
                          spec->name, rt->work_dir);
            goto out;
        }
        dir = joined;
    }
    int err = spawn_world(dir, logfd, argv, bdy__env_vars(&env), &pid);
    /* Until it is watched, the orphan reaper leaves it be (if the set is
     * full the reaper may take it: its exit then shows as an error below). */
    spawned = err == 0 && spawning_mark(rt, pid, true) ? pid : 0;
    if (err != 0) {
        rc = bdy_fail(eb, err == ENOENT ? BDY_ENOTFOUND : shortage_or_io(err),
                      "cannot start world %s/%s: %s (in %s): %s", spec->ns, spec->name,
                      spec->command, dir ? dir : ".", strerror(err));
        goto out;
    }
    pidfd = rt->have_pidfds ? pidfd_open(pid, 0) : -1;
    if (rt->have_pidfds && pidfd < 0) {
        rc = bdy_fail(eb, shortage_or_io(errno), "pidfd_open(%d): %s", (int)pid, strerror(errno));
        goto out;
    }
    /* Our child cannot be reaped behind our back, so /proc/PID is there. */
    bdy__proc_stat st;
    rc = bdy__proc_stat_read(pid, &st);
    if (rc != 0) {
        /* Out of descriptors (BDY_ENOMEM): the world is put off, as when
         * its spawn lacks them, not failed (it counted towards the crash
         * backoff of its pool). */
        rc = bdy_fail(eb, rc, "cannot read /proc/%d/stat: %s", (int)pid, bdy_strerror(rc));
        goto out;
    }
    h->pid = pid;
    h->start_time = st.start_time;
    snprintf(h->boot_id, sizeof(h->boot_id), "%s", rt->boot_id);
    rc = watch_world(rt, spec->ns, spec->name, h, pidfd, true, spec->relays_term,
                     spec->relays_term ? spec->children : 0, false, false, eb);
    if (rc != 0)
        goto out;
    pidfd = -1;
    pid = 0;
    ports_held = false;
    bdy_info(LOG_COMPONENT, "world %s/%s started: pid %lld, command %s", spec->ns, spec->name,
             (long long)h->pid, spec->command);
out:
    if (pid > 0) {
        /* Never leave a process behind that nothing watches. */
        kill(-pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    if (spawned != 0)
        spawning_mark(rt, spawned, false);
    if (pidfd >= 0)
        close(pidfd);
    if (ports_held) {
        pthread_mutex_lock(&rt->lock);
        release_ports(rt, h);
        pthread_mutex_unlock(&rt->lock);
    }
    for (size_t i = 0; i < BDY_RUNTIME_MAX_ARGS + 2; i++)
        free(argv[i]);
    bdy__env_free(&env);
    if (logfd >= 0)
        close(logfd);
    return rc;
}

/* ---- adopt, reclaim, stop ------------------------------------------------ */

/* Forgets the stray that is this process, once it is watched. */
static void drop_stray(proc_runtime *rt, int64_t pid, uint64_t start_time)
{
    pthread_mutex_lock(&rt->lock);
    for (bdy__stray **p = &rt->strays; *p != NULL; p = &(*p)->next) {
        if ((*p)->pid == pid && (*p)->start_time == start_time) {
            bdy__stray *s = *p;
            *p = s->next;
            free(s);
            break;
        }
    }
    pthread_mutex_unlock(&rt->lock);
}

/* Whether s is spec's world as this instance started it: one another
 * instance started for a world of the same identity (a copy of this data
 * folder run beside it) is never reclaimed, nor killed for its ports. */
static bool stray_is_world(const proc_runtime *rt, const bdy__stray *s, const bdy_world_spec *spec)
{
    return strcmp(s->uid, spec->uid) == 0 && strcmp(s->ns, spec->ns) == 0 &&
           strcmp(s->name, spec->name) == 0 && !other_instance(rt->instance, s);
}

/* Whether a, rather than b, is the world when both carry its identity. */
static bool stray_before(const bdy__stray *a, const bdy__stray *b)
{
    if (a->start_time != b->start_time)
        return a->start_time < b->start_time;
    if (b->ppid == a->pid || a->ppid == b->pid)
        return b->ppid == a->pid;
    return a->pid < b->pid;
}

/* A copy (*out, the caller's to free) of the stray running spec's world
 * (uid, namespace and name all equal), left listed; BDY_ENOTFOUND when
 * there is none, BDY_ENOMEM. A helper the world started in a session of
 * its own also leads its group and carries the world's environment, so
 * among several the world is the one started first, and of equals the one
 * whose parent is none of the others. Caller holds rt->lock. */
static int copy_stray(proc_runtime *rt, const bdy_world_spec *spec, bdy__stray **out)
{
    const bdy__stray *best = NULL;
    for (const bdy__stray *p = rt->strays; p != NULL; p = p->next) {
        if (stray_is_world(rt, p, spec) && (best == NULL || stray_before(p, best)))
            best = p;
    }
    if (best == NULL)
        return BDY_ENOTFOUND;
    if ((*out = malloc(sizeof(**out))) == NULL)
        return BDY_ENOMEM;
    **out = *best;
    (*out)->next = NULL;
    return 0;
}

/* The ports of a stray as h's: spec's, numbered as the process was told.
 * BDY_ENOTFOUND when it was not told one of them, or was told more (a port
 * the manifest has dropped since): one no handle names would be handed
 * to another world while this process holds it. */
static int stray_ports(const bdy_world_spec *spec, const bdy__stray *s, bdy_world_handle *h)
{
    if (s->nports != spec->nports)
        return BDY_ENOTFOUND;
    for (size_t i = 0; i < spec->nports; i++) {
        char var[BDY__PORT_ENV_MAX];
        bdy__port_env_name(spec->ports[i].name, var);
        unsigned port = 0;
        for (size_t k = 0; k < s->nports && port == 0; k++)
            if (strcmp(s->ports[k].env, var) == 0)
                port = s->ports[k].port;
        if (port == 0)
            return BDY_ENOTFOUND;
        bdy_port *p = &h->ports[h->nports++];
        snprintf(p->name, sizeof(p->name), "%s", spec->ports[i].name);
        snprintf(p->protocol, sizeof(p->protocol), "%s",
                 spec->ports[i].protocol[0] ? spec->ports[i].protocol : "TCP");
        p->port = port;
    }
    return 0;
}

/* A stray as a handle: its pid, start and the ports it was told, named
 * after their variables (BINDERY_PORT_GAME: "game", lower case as most
 * manifests name them; only the numbers matter for a process being
 * stopped). */
static void stray_handle(const proc_runtime *rt, const bdy__stray *s, bdy_world_handle *h)
{
    memset(h, 0, sizeof(*h));
    h->pid = s->pid;
    h->start_time = s->start_time;
    snprintf(h->boot_id, sizeof(h->boot_id), "%s", rt->boot_id); /* found in /proc: this boot */
    snprintf(h->address, sizeof(h->address), "%s", LOOPBACK);
    for (size_t i = 0; i < s->nports && h->nports < BDY_RUNTIME_MAX_PORTS; i++) {
        bdy_port *p = &h->ports[h->nports++];
        const char *n = s->ports[i].env + sizeof(BDY__PORT_ENV_PREFIX) - 1;
        size_t k = 0;
        for (; n[k] != '\0' && k + 1 < sizeof(p->name); k++)
            p->name[k] = (char)tolower((unsigned char)n[k]);
        p->name[k] = '\0';
        snprintf(p->protocol, sizeof(p->protocol), "TCP");
        p->port = s->ports[i].port;
    }
}

/* SIGKILL to a process this runtime does not watch (and its group, when
 * it leads one), after a check that it is the one recorded. The pidfd
 * makes the signal itself exact (see signal_world); without pidfds, or
 * the group flag, the check just before the signal is all there is. True
 * when the signal went. */
static bool kill_unwatched(const proc_runtime *rt, const bdy_world_handle *h)
{
    int pidfd = rt->have_pidfds ? pidfd_open((pid_t)h->pid, 0) : -1;
    bdy__proc_stat st;
    bool sent = false;
    if ((pidfd >= 0 || !rt->have_pidfds) && recorded_alive(rt, h, &st) == 0) {
        if (st.pgrp == h->pid && pidfd_signal_group(pidfd, SIGKILL))
            sent = true;
        else if (st.pgrp == h->pid && (pidfd < 0 || group_signal_unsupported()))
            sent = kill(-(pid_t)h->pid, SIGKILL) == 0;
        else if (pidfd >= 0)
            sent = pidfd_send_signal(pidfd, SIGKILL, NULL, 0) == 0;
        else
            sent = kill((pid_t)h->pid, SIGKILL) == 0;
    }
    if (pidfd >= 0)
        close(pidfd);
    return sent;
}

/* Watches the process h names as world ns/name's, or as a leftover of that
 * world when orphan (stop_strays). Watching it already is a no-op. */
static int adopt_process(proc_runtime *rt, const char *ns, const char *name,
                         const bdy_world_handle *h, bool orphan, bdy_errbuf *eb)
{
    int pidfd = -1;
    bdy__proc_stat st;
    int rc = bdy__runtime_check_names(ns, name, eb);
    if (rc != 0)
        return rc;
    if (h == NULL || h->nports > BDY_RUNTIME_MAX_PORTS)
        return bdy_fail(eb, BDY_EINVAL, "adopt %s/%s: invalid handle", ns, name);
    /* The handle comes from a status that any token allowed to write it
     * can set. A world never is init, Bindery itself or in Bindery's
     * process group (worlds lead their own), and a stop signals the whole
     * group of a world leading one: adopting pid 1 would make a stop
     * kill(-1), every process Bindery may signal. */
    if (h->pid <= 1 || h->pid == getpid() || h->pid == getpgrp())
        return bdy_fail(eb, BDY_EINVAL, "world %s/%s: pid %lld cannot be a world", ns, name,
                        (long long)h->pid);
    rc = recorded_alive(rt, h, &st);
    if (rc == 0 && rt->have_pidfds) {
        pidfd = pidfd_open((pid_t)h->pid, 0);
        if (pidfd < 0)
            rc = errno == ESRCH ? BDY_ENOTFOUND : BDY_EIO;
    }
    /* The pid may have changed hands between the first look and the
     * pidfd; a second look, with the pidfd now holding the process, settles
     * it. */
    if (rc == 0 && pidfd >= 0)
        rc = recorded_alive(rt, h, &st);
    if (rc == BDY_ENOTFOUND && h->boot_id[0] != '\0' && rt->boot_id[0] != '\0' &&
        strcmp(h->boot_id, rt->boot_id) != 0) {
        rc = bdy_fail(eb, rc, "world %s/%s: pid %lld was started before the machine rebooted", ns,
                      name, (long long)h->pid);
        goto out;
    } else if (rc == BDY_ENOTFOUND) {
        /* Its leader died while no bindery watched, the helpers it
         * started may run on in its group, holding its ports. */
        proc_world gone = {.h = *h};
        snprintf(gone.ns, sizeof(gone.ns), "%s", ns);
        snprintf(gone.name, sizeof(gone.name), "%s", name);
        kill_group_leftovers(rt, &gone);
        rc = bdy_fail(eb, rc, "world %s/%s: pid %lld with start time %llu is gone", ns, name,
                      (long long)h->pid, (unsigned long long)h->start_time);
        goto out;
    } else if (rc != 0) {
        rc = bdy_fail(eb, rc, "world %s/%s: cannot inspect pid %lld", ns, name, (long long)h->pid);
        goto out;
    }
    if (st.pgrp == getpgrp()) {
        rc = bdy_fail(eb, BDY_EINVAL, "world %s/%s: pid %lld is in bindery's own process group", ns,
                      name, (long long)h->pid);
        goto out;
    }
    /* A process whose environment names another world is not this one (a
     * process whose environment names none may be a world that rewrote
     * its own, as setproctitle does: it is taken on pid and start time). */
    bdy__stray *id = calloc(1, sizeof(*id));
    if (id == NULL) {
        rc = BDY_ENOMEM;
        goto out;
    }
    bool named = bdy__proc_identity(h->pid, id) == 0;
    bool other = named && (strcmp(id->ns, ns) != 0 || strcmp(id->name, name) != 0);
    /* Nor is one another bindery started, whatever world it names: a copy
     * of this data folder (a backup tried beside the live bindery, with an
     * id of its own) records the same pids, and taking the live one's
     * processes would hand their worlds out twice and stop them on the
     * other's release. */
    char foreign[BDY__INSTANCE_MAX + 1] = "";
    if (named && other_instance(rt->instance, id))
        snprintf(foreign, sizeof(foreign), "%s", id->instance);
    /* Read even from an environment that names no world in full. */
    bool relays_term = id->relays_term;
    unsigned children = id->relays_term ? id->children : 0;
    free(id);
    if (other) {
        rc = bdy_fail(eb, BDY_EINVAL, "world %s/%s: pid %lld belongs to another world", ns, name,
                      (long long)h->pid);
        goto out;
    }
    if (foreign[0] != '\0') {
        rc = bdy_fail(eb, BDY_EINVAL,
                      "world %s/%s: pid %lld was started by another bindery (instance %s), left "
                      "to it",
                      ns, name, (long long)h->pid, foreign);
        goto out;
    }
    pthread_mutex_lock(&rt->lock);
    const proc_world *seen = find_by_process(rt, h->pid, h->start_time);
    bool watched = seen != NULL;
    bool stopping_as_leftover = seen != NULL && seen->orphan && !orphan;
    bool a_world_now = seen != NULL && !seen->orphan && orphan;
    pthread_mutex_unlock(&rt->lock);
    if (stopping_as_leftover || a_world_now) {
        rc = bdy_fail(eb, BDY_EINVAL, "world %s/%s: pid %lld is watched as %s", ns, name,
                      (long long)h->pid,
                      a_world_now ? "a world's" : "the leftover of a gone world, being stopped");
        goto out;
    }
    if (watched)
        goto out;
    rc = watch_world(rt, ns, name, h, pidfd, st.pgrp == h->pid, relays_term, children, true, orphan,
                     eb);
    if (rc != 0)
        goto out;
    pidfd = -1;
    drop_stray(rt, h->pid, h->start_time);
    /* The controller logs the adoption at info, with the world's key. */
    bdy_debug(LOG_COMPONENT, "world %s/%s adopted: pid %lld", ns, name, (long long)h->pid);
out:
    if (pidfd >= 0)
        close(pidfd);
    return rc;
}

/* Takes back a world recorded before a restart (see runtime.h). Adopting a
 * world already watched is a no-op. Any thread. */
static int proc_adopt(void *ctx, const char *ns, const char *name, const bdy_world_handle *h,
                      bdy_errbuf *eb)
{
    return adopt_process(ctx, ns, name, h, false, eb);
}

/* Takes back the process an earlier Bindery started for spec's world but
 * never recorded (see runtime.h). Any thread. */
static int proc_reclaim(void *ctx, const bdy_world_spec *spec, bdy_world_handle *h, bdy_errbuf *eb)
{
    proc_runtime *rt = ctx;
    if (spec == NULL || h == NULL || spec->uid == NULL || spec->uid[0] == '\0' ||
        spec->nports > BDY_RUNTIME_MAX_PORTS)
        return bdy_fail(eb, BDY_EINVAL, "reclaim: a spec with a world uid is required");
    int rc = bdy__runtime_check_names(spec->ns, spec->name, eb);
    if (rc != 0)
        return rc;
    /* A copy: the stray stays listed, its ports kept from new worlds, until
     * adopt_process() watches it (and drops it then) or it is found gone. */
    bdy__stray *s = NULL;
    pthread_mutex_lock(&rt->lock);
    rc = copy_stray(rt, spec, &s);
    pthread_mutex_unlock(&rt->lock);
    if (rc == BDY_ENOMEM)
        return bdy_fail(eb, rc, "reclaim %s/%s: out of memory", spec->ns, spec->name);
    if (rc != 0)
        return bdy_fail(eb, rc, "no unrecorded process of world %s/%s", spec->ns, spec->name);
    /* A spec with no command is the identity alone, what the world
     * controller knows of a world it deletes: the handle gets the ports the
     * process was told, which must stay taken until it has stopped. A whole
     * spec gets its own ports, as the process was told them. */
    stray_handle(rt, s, h);
    if (spec->command != NULL) {
        h->nports = 0;
        rc = stray_ports(spec, s, h);
    }
    if (rc != 0) {
        /* Started with other ports than the manifest now names: nothing
         * can describe it, so it goes, and the world starts afresh. */
        bdy__proc_stat st;
        if (kill_unwatched(rt, h)) {
            bdy_warn(LOG_COMPONENT,
                     "world %s/%s: killed pid %lld, started before a restart with ports the "
                     "manifest no longer names",
                     spec->ns, spec->name, (long long)h->pid);
            rc =
                bdy_fail(eb, BDY_ENOTFOUND, "the unrecorded process of world %s/%s had other ports",
                         spec->ns, spec->name);
        } else if (recorded_alive(rt, h, &st) == BDY_ENOTFOUND) {
            rc = bdy_fail(eb, BDY_ENOTFOUND, "the unrecorded process of world %s/%s is gone",
                          spec->ns, spec->name);
        } else {
            /* Not signalled (no descriptor for its pidfd, say): it runs on,
             * so the world must not start a second time beside it yet. */
            rc = bdy_fail(eb, BDY_EIO, "world %s/%s: cannot stop pid %lld now", spec->ns,
                          spec->name, (long long)h->pid);
        }
    } else {
        rc = proc_adopt(ctx, spec->ns, spec->name, h, eb);
    }
    /* Out of descriptors or memory, say: the process still runs and is
     * still the world's, so a later try must find it again; otherwise it is
     * watched now (adopt_process dropped it), gone, or no world of ours. */
    if (rc != 0 && !bdy_runtime_retry_later(rc))
        drop_stray(rt, s->pid, s->start_time);
    free(s);
    return rc;
}

/* SIGTERM now, SIGKILL from the watcher once grace_ms have passed. A
 * second stop never moves the deadline later. A live process this runtime
 * does not watch is refused (BDY_EINVAL): it must be adopted first, or no
 * exit would ever be reported. Any thread. */
static int proc_stop(void *ctx, const bdy_world_handle *h, unsigned grace_ms);

/* Stops the strays of this instance whose world is gone (runtime.h). A
 * stray is watched as an orphan while it stops, so that the SIGKILL
 * deadline, the reaping and the release of its ports are the ones every
 * world gets. Any thread. */
static size_t proc_stop_strays(void *ctx, bdy_world_known_fn known, void *data, unsigned grace_ms)
{
    proc_runtime *rt = ctx;
    if (rt->instance[0] == '\0' || known == NULL)
        return 0;
    /* Copies: a stray stays on the list, its ports kept from new worlds,
     * until adopt_process() watches it (and drops it from there) or it is
     * found gone. */
    bdy__stray *doomed = NULL;
    pthread_mutex_lock(&rt->lock);
    for (const bdy__stray *s = rt->strays; s != NULL; s = s->next) {
        if (strcmp(s->instance, rt->instance) != 0 || known(data, s->ns, s->name, s->uid))
            continue;
        bdy__stray *copy = malloc(sizeof(*copy));
        if (copy == NULL)
            break; /* the rest wait for a later call */
        *copy = *s;
        copy->next = doomed;
        doomed = copy;
    }
    pthread_mutex_unlock(&rt->lock);

    size_t stopped = 0;
    while (doomed != NULL) {
        bdy__stray *s = doomed;
        doomed = s->next;
        bdy_world_handle h;
        stray_handle(rt, s, &h);
        bdy_errbuf eb;
        bdy_errbuf_clear(&eb);
        /* Fails when it has gone meanwhile (it leaves the list) or is no
         * longer what it was; out of memory or descriptors, a later call
         * tries again. */
        int rc = adopt_process(rt, s->ns, s->name, &h, true, &eb);
        if (rc == 0 && proc_stop(rt, &h, grace_ms) == 0) {
            bdy_warn(LOG_COMPONENT,
                     "stopping pid %lld, started by an earlier run of this bindery for world "
                     "%s/%s (uid %s), which no longer exists",
                     (long long)h.pid, s->ns, s->name, s->uid);
            stopped++;
        } else if (rc == BDY_ENOTFOUND) {
            drop_stray(rt, s->pid, s->start_time); /* gone by itself */
        }
        free(s);
    }
    return stopped;
}

static int proc_stop(void *ctx, const bdy_world_handle *h, unsigned grace_ms)
{
    proc_runtime *rt = ctx;
    if (h == NULL)
        return BDY_EINVAL;
    pthread_mutex_lock(&rt->lock);
    proc_world *w = find_by_process(rt, h->pid, h->start_time);
    if (w != NULL) {
        w->stop_requested = true;
        signal_world(w, SIGTERM);
        uint64_t at = bdy_monotonic_ns() + (uint64_t)grace_ms * 1000000u;
        if (w->kill_at_ns == 0 || at < w->kill_at_ns)
            w->kill_at_ns = at;
    }
    pthread_mutex_unlock(&rt->lock);
    if (w != NULL) {
        wake_watcher(rt);
        return 0;
    }
    bdy__proc_stat st;
    if (recorded_alive(rt, h, &st) != 0)
        return 0;
    bdy_warn(LOG_COMPONENT, "stop: pid %lld is alive but not watched; adopt it first",
             (long long)h->pid);
    return BDY_EINVAL;
}

/* ---- observe -------------------------------------------------------------- */

/* What a probe's verdict is reported for: owned by the prober until its
 * done callback. */
typedef struct probe_for {
    char ns[BDY__WORLD_NS_MAX + 1];
    char name[BDY__WORLD_NAME_MAX + 1];
    bdy_world_handle h;
} probe_for;

/* The prober's done callback, on its thread. */
static void probe_done_cb(void *data, void *arg, bdy__probe_verdict verdict)
{
    proc_runtime *rt = data;
    probe_for *pf = arg;
    if (verdict != BDY__PROBE_CANCELLED)
        rt->on_probe(rt->data, pf->ns, pf->name, &pf->h,
                     verdict == BDY__PROBE_NOT_RUN ? BDY_EIO : 0,
                     verdict == BDY__PROBE_PASSED ? BDY_WORLD_READY : BDY_WORLD_RUNNING);
    free(pf);
}

/* The host port a probe names: one of the world's port names, or a number. */
static int probe_port(const bdy_world_handle *h, const bdy_probe *probe, unsigned *port)
{
    size_t len = strnlen(probe->port, sizeof(probe->port));
    if (len == 0 || len == sizeof(probe->port))
        return BDY_EINVAL;
    const bdy_port *named = find_port(h, probe->port, len);
    if (named != NULL) {
        *port = named->port;
        return named->port >= 1 && named->port <= 65535 ? 0 : BDY_EINVAL;
    }
    char *end = NULL;
    unsigned long v = strtoul(probe->port, &end, 10);
    if (probe->port[0] < '0' || probe->port[0] > '9' || *end != '\0' || v < 1 || v > 65535)
        return BDY_EINVAL;
    *port = (unsigned)v;
    return 0;
}

/* Resolves one probe of world h into the check to run (its HTTP path
 * points into probe). */
static int probe_resolve(const bdy_world_handle *h, const bdy_probe *probe, bdy__probe_check *c)
{
    if (probe->kind != BDY_PROBE_TCP && probe->kind != BDY_PROBE_HTTP)
        return BDY_EINVAL;
    c->http_path = NULL;
    if (probe->kind == BDY_PROBE_HTTP) {
        c->http_path = probe->path[0] ? probe->path : "/";
        if (strnlen(c->http_path, sizeof(probe->path)) == sizeof(probe->path) ||
            !bdy__prober_path_ok(c->http_path))
            return BDY_EINVAL;
    }
    unsigned port = 0;
    int rc = probe_port(h, probe, &port);
    if (rc != 0)
        return rc;
    c->timeout_ms = probe->timeout_ms ? probe->timeout_ms : PROBE_TIMEOUT_MS;
    memset(&c->addr, 0, sizeof(c->addr));
    c->addr.sin_family = AF_INET;
    c->addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, h->address[0] ? h->address : LOOPBACK, &c->addr.sin_addr) != 1)
        return BDY_EINVAL;
    return 0;
}

_Static_assert(BDY_RUNTIME_MAX_PROBES <= BDY__PROBER_CHECKS_MAX,
               "a world's probes must fit in one prober probe");

/* Looks at the world, and starts its readiness probes (see runtime.h): one
 * prober probe whose checks are the world's probes, in order. Takes no
 * runtime lock; any thread. */
static int proc_observe(void *ctx, const char *ns, const char *name, const bdy_world_handle *h,
                        const bdy_probe *probes, size_t nprobes, bdy_world_state *state)
{
    proc_runtime *rt = ctx;
    if (h == NULL || state == NULL || ns == NULL || name == NULL ||
        (nprobes > 0 && probes == NULL) || nprobes > BDY_RUNTIME_MAX_PROBES)
        return BDY_EINVAL;
    bdy__proc_stat st;
    int rc = alive_as_recorded(h, &st);
    if (rc == BDY_ENOTFOUND) {
        *state = BDY_WORLD_EXITED;
        return 0;
    }
    if (rc != 0)
        return rc;
    /* A stopped process (SIGSTOP, a debugger) serves no one, yet the kernel
     * still completes TCP handshakes for it until its backlog fills. */
    if (st.state == 'T' || st.state == 't') {
        *state = BDY_WORLD_RUNNING;
        return 0;
    }
    if (nprobes == 0 || probes[0].kind == BDY_PROBE_NONE) {
        *state = BDY_WORLD_READY;
        return 0;
    }
    bdy__probe_check checks[BDY_RUNTIME_MAX_PROBES];
    for (size_t i = 0; i < nprobes; i++) {
        rc = probe_resolve(h, &probes[i], &checks[i]);
        if (rc != 0)
            return rc;
    }
    char id[BDY__PROBER_ID_MAX];
    int idlen = snprintf(id, sizeof(id), "%s/%s", ns, name);
    probe_for *pf = calloc(1, sizeof(*pf));
    if (pf == NULL)
        return BDY_ENOMEM;
    if (idlen < 0 || (size_t)idlen >= sizeof(id) || strlen(ns) >= sizeof(pf->ns) ||
        strlen(name) >= sizeof(pf->name)) {
        free(pf);
        return BDY_EINVAL;
    }
    memcpy(pf->ns, ns, strlen(ns) + 1);
    memcpy(pf->name, name, strlen(name) + 1);
    pf->h = *h;
    bdy__probe_target t = {.id = id,
                           .addr = checks[0].addr,
                           .http_path = checks[0].http_path,
                           .timeout_ms = checks[0].timeout_ms,
                           .more = checks + 1,
                           .nmore = nprobes - 1,
                           .arg = pf};
    rc = bdy__prober_start(rt->prober, &t);
    if (rc != 0)
        free(pf);
    if (rc == 0 || rc == BDY_EEXISTS) {
        *state = BDY_WORLD_PROBING;
        return 0;
    }
    /* Too many running (BDY_EBUSY), or shutting down: no verdict now. */
    return rc == BDY_ESHUTDOWN ? BDY_EIO : rc;
}

/* ---- lifetime ------------------------------------------------------------- */

/* Stops the watcher and frees everything; running worlds are left running
 * (they outlive Bindery and a later runtime adopts them). No exit callback
 * runs once this returns. Not from the exit callback, and with no other
 * call in flight. */
static void proc_destroy(void *ctx)
{
    proc_runtime *rt = ctx;
    if (rt == NULL)
        return;
    bdy__prober_free(rt->prober); /* no probe verdict from here on */
    if (rt->thread_started) {
        pthread_mutex_lock(&rt->lock);
        rt->stopping = true;
        pthread_mutex_unlock(&rt->lock);
        wake_watcher(rt);
        pthread_join(rt->thread, NULL);
    }
    bdy__log_sweeper_stop(rt->log_sweeper);
    for (proc_world *w = rt->worlds, *next; w != NULL; w = next) {
        next = w->next;
        if (w->pidfd >= 0)
            close(w->pidfd);
        for (unsigned i = 0; w->children != NULL && i < w->children->n; i++)
            if (w->children->pidfd[i] >= 0)
                close(w->children->pidfd[i]);
        free(w->children);
        free(w);
    }
    rt->worlds = NULL;
    if (rt->epfd >= 0)
        close(rt->epfd);
    if (rt->wakefd >= 0)
        close(rt->wakefd);
    bdy__strays_free(rt->strays);
    free(rt->ports_used);
    free(rt->work_dir);
    free(rt->log_dir);
    pthread_mutex_destroy(&rt->lock);
    free(rt);
}

static const bdy_runtime_vtable proc_vtable = {
    .name = "process",
    .start = proc_start,
    .adopt = proc_adopt,
    .reclaim = proc_reclaim,
    .observe = proc_observe,
    .stop = proc_stop,
    .stop_strays = proc_stop_strays,
    .destroy = proc_destroy,
};

/* Whether exits can be noticed through pidfds (Linux 5.3) and reaped
 * through waitid(P_PIDFD) (Linux 5.4). Both are tried on bindery's own
 * pid: waitid on a pidfd of a process that is not our child fails with
 * ECHILD where P_PIDFD is known, EINVAL where it is not. A sandbox may
 * refuse the calls with EPERM rather than ENOSYS: no pidfds either. */
static bool pidfds_supported(void)
{
    int fd = pidfd_open(getpid(), 0);
    if (fd < 0) /* short of descriptors now is no reason to poll for ever */
        return errno == EMFILE || errno == ENFILE || errno == ENOMEM;
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    bool ok = waitid((idtype_t)P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG) != 0 && errno == ECHILD;
    close(fd);
    return ok;
}

/* An instance id that fits the environment variable and what the stray
 * finder reads back. */
static bool instance_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > BDY__INSTANCE_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]) && id[i] != '-' && id[i] != '_')
            return false;
    return true;
}

int bdy_runtime_process_new(const bdy_process_runtime_opts *opts, bdy_runtime **out, bdy_errbuf *eb)
{
    int rc = 0;
    proc_runtime *rt = NULL;
    bdy_runtime *r = NULL;
    if (opts == NULL || out == NULL)
        return bdy_fail(eb, BDY_EINVAL, "process runtime: options are required");
    if (opts->port_min < 1 || opts->port_max > 65535 || opts->port_min > opts->port_max)
        return bdy_fail(eb, BDY_EINVAL, "process runtime: port range %u-%u is not within 1-65535",
                        opts->port_min, opts->port_max);
    if (opts->log_dir == NULL || opts->log_dir[0] == '\0' || opts->on_exit == NULL ||
        opts->on_probe == NULL)
        return bdy_fail(eb, BDY_EINVAL,
                        "process runtime: log_dir, on_exit and on_probe are required");
    if (opts->instance != NULL && !instance_valid(opts->instance))
        return bdy_fail(eb, BDY_EINVAL,
                        "process runtime: instance \"%.80s\" is not 1-%d letters, digits, '-' "
                        "or '_'",
                        opts->instance, BDY__INSTANCE_MAX);

    rt = calloc(1, sizeof(*rt));
    if (rt == NULL)
        return bdy_fail(eb, BDY_ENOMEM, "out of memory");
    pthread_mutex_init(&rt->lock, NULL);
    rt->epfd = -1;
    rt->wakefd = -1;
    rt->port_min = opts->port_min;
    rt->port_max = opts->port_max;
    rt->on_exit = opts->on_exit;
    rt->on_probe = opts->on_probe;
    rt->on_ending = opts->on_ending;
    if (opts->instance != NULL)
        snprintf(rt->instance, sizeof(rt->instance), "%s", opts->instance);
    rt->data = opts->data;
    rt->have_pidfds = pidfds_supported();
    int subreaper = 0;
    rt->reaps_orphans =
        getpid() == 1 || (prctl(PR_GET_CHILD_SUBREAPER, &subreaper) == 0 && subreaper != 0);
    rt->next_reap_ns = bdy_monotonic_ns() + (uint64_t)REAP_EVERY_MS * 1000000u;
    bdy__boot_id_read(rt->boot_id, sizeof(rt->boot_id));
    if (rt->boot_id[0] == '\0')
        bdy_warn(LOG_COMPONENT, "cannot read /proc/sys/kernel/random/boot_id: after a reboot, "
                                "a recorded world's pid may be taken for the world");
    if (!rt->have_pidfds)
        bdy_warn(LOG_COMPONENT,
                 "no pidfds here (Linux 5.4 or newer needed, and a sandbox that allows "
                 "pidfd_open and waitid on one): looking for world exits every %d ms instead",
                 POLL_EXITS_MS);
    rt->ports_used = calloc((opts->port_max - opts->port_min) / 8 + 1, 1);
    rt->log_dir = strdup(opts->log_dir);
    rt->work_dir = opts->work_dir ? strdup(opts->work_dir) : NULL;
    r = malloc(sizeof(*r));
    if (rt->ports_used == NULL || rt->log_dir == NULL || (opts->work_dir && !rt->work_dir) ||
        r == NULL) {
        rc = bdy_fail(eb, BDY_ENOMEM, "out of memory");
        goto out;
    }
    rc = make_dirs(rt->log_dir, eb);
    if (rc != 0)
        goto out;
    size_t nstrays = 0;
    int found = bdy__strays_find(&rt->strays, &nstrays);
    if (found != 0) {
        /* Only a crash in the middle of a start can leave a world that no
         * status recorded: worth a warning, not refusing to run. */
        bdy_warn(LOG_COMPONENT, "cannot look for running world processes in /proc: %s",
                 bdy_strerror(found));
    } else if (nstrays > 0) {
        bdy_info(LOG_COMPONENT,
                 "%zu running processes of this user carry a world's identity; this "
                 "bindery's worlds adopt theirs by recorded pid, or take them back by uid if "
                 "none was recorded; those this bindery started for worlds that no longer "
                 "exist are stopped; the rest are left alone, their ports kept from new worlds",
                 nstrays);
    }
    rt->epfd = epoll_create1(EPOLL_CLOEXEC);
    rt->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (rt->epfd < 0 || rt->wakefd < 0 ||
        epoll_ctl(rt->epfd, EPOLL_CTL_ADD, rt->wakefd, &ev) != 0) {
        rc = bdy_fail(eb, BDY_EIO, "process runtime: epoll/eventfd: %s", strerror(errno));
        goto out;
    }
    rc = bdy__prober_new(PROBES_MAX, "bdy-prober", probe_done_cb, rt, &rt->prober, eb);
    if (rc != 0)
        goto out;
    rc = bdy__log_sweeper_start(rt->log_dir, opts->log_retention_s, opts->log_max_bytes,
                                running_log_names, rt, &rt->log_sweeper, eb);
    if (rc != 0)
        goto out;
    int err = pthread_create(&rt->thread, NULL, watcher_main, rt);
    if (err != 0) {
        rc = bdy_fail(eb, BDY_EIO, "process runtime: cannot start its thread: %s", strerror(err));
        goto out;
    }
    rt->thread_started = true;
    r->vt = &proc_vtable;
    r->ctx = rt;
    *out = r;
    rt = NULL;
    r = NULL;
out:
    proc_destroy(rt);
    free(r);
    return rc;
}
