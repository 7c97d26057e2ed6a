/* Readiness probes over TCP, many at once on one thread (see prober.h).
 *
 * A started probe is queued under the lock and the thread woken (eventfd);
 * the thread alone makes its socket, connects, sends and reads, so every
 * socket has one owner and the lock guards only the id map, the queue and
 * the count. Deadlines are found by a scan of the running probes on each
 * turn of the loop: max_running bounds it, and a turn is rare next to the
 * work of a probe.
 */
#include "prober.h"

#include "bindery/hmap.h"
#include "bindery/log.h"
#include "bindery/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define LOG_COMPONENT "prober"
#define STATUS_LINE_MAX 256 /* what an HTTP probe reads of the answer */
#define REQUEST_MAX 512     /* the request: a path of at most 255 bytes and a host */
#define EPOLL_BATCH 64
#define MIN_BUCKETS 64

typedef enum probe_step { STEP_QUEUED, STEP_CONNECTING, STEP_SENDING, STEP_READING } probe_step;

/* One check of a probe, as it is sent. */
typedef struct probe_check {
    struct sockaddr_in addr;
    bool http;
    unsigned timeout_ms;
    size_t req_len;
    char request[REQUEST_MAX];
} probe_check;

/* One probe, from start to verdict. The node and the queue link are the
 * lock's; the rest, once queued, is the thread's. */
typedef struct probe {
    bdy_hnode node; /* first: node.key = id */
    struct probe *next;
    struct probe *prev; /* the thread's list of running probes */
    char id[BDY__PROBER_ID_MAX];
    probe_step step;
    int fd;
    bool watched; /* in the epoll set */
    uint64_t deadline_ns;
    void *arg;
    size_t sent;
    size_t got;
    char line[STATUS_LINE_MAX];
    size_t current; /* the check running */
    size_t nchecks;
    probe_check checks[]; /* nchecks of them */
} probe;

struct bdy__prober {
    pthread_mutex_t lock; /* by_id, queue, count, stopping */
    bdy_hmap by_id;
    probe *queue_head;
    probe *queue_tail;
    unsigned count; /* queued and running */
    unsigned max_running;
    bool stopping;

    probe *running; /* the thread's */
    int epfd;
    int wakefd;
    pthread_t thread;
    bool thread_started;
    char thread_name[16];
    bdy__prober_done_cb done;
    void *data;
};

bool bdy__prober_path_ok(const char *path)
{
    size_t len = strnlen(path, BDY__PROBER_PATH_MAX);
    if (len == 0 || len == BDY__PROBER_PATH_MAX || path[0] != '/')
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)path[i] <= ' ' || path[i] == 0x7f)
            return false; /* would break the request line */
    return true;
}

bool bdy__prober_status_ok(const char *line, size_t len)
{
    /* "HTTP/1.x NNN" followed by a space or the end of the line */
    if (len < 12 || memcmp(line, "HTTP/1.", 7) != 0 || line[8] != ' ')
        return false;
    int code = 0;
    for (size_t i = 9; i < 12; i++) {
        if (line[i] < '0' || line[i] > '9')
            return false;
        code = code * 10 + (line[i] - '0');
    }
    char after = len > 12 ? line[12] : '\0';
    return (after == ' ' || after == '\r' || after == '\n' || after == '\0') && code >= 200 &&
           code <= 399;
}

static void wake(bdy__prober *p)
{
    uint64_t one = 1;
    ssize_t n = write(p->wakefd, &one, sizeof(one));
    (void)n; /* a full counter already wakes it */
}

/* Fills check c: an HTTP check's request is written out now. */
static int check_set(probe_check *c, struct sockaddr_in addr, const char *http_path,
                     unsigned timeout_ms)
{
    c->addr = addr;
    c->timeout_ms = timeout_ms ? timeout_ms : 1;
    if (http_path == NULL)
        return 0;
    if (!bdy__prober_path_ok(http_path))
        return BDY_EINVAL;
    char host[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &addr.sin_addr, host, sizeof(host));
    int len = snprintf(c->request, sizeof(c->request),
                       "GET %s HTTP/1.0\r\nHost: %s:%u\r\nUser-Agent: bindery-probe\r\n\r\n",
                       http_path, host, (unsigned)ntohs(addr.sin_port));
    if (len < 0 || (size_t)len >= sizeof(c->request))
        return BDY_EINVAL;
    c->http = true;
    c->req_len = (size_t)len;
    return 0;
}

int bdy__prober_start(bdy__prober *p, const bdy__probe_target *t)
{
    int rc = 0;
    probe *pr = NULL;
    size_t id_len = t != NULL && t->id != NULL ? strnlen(t->id, BDY__PROBER_ID_MAX) : 0;
    if (p == NULL || id_len == 0 || id_len == BDY__PROBER_ID_MAX ||
        t->nmore >= BDY__PROBER_CHECKS_MAX || (t->nmore > 0 && t->more == NULL)) {
        rc = BDY_EINVAL;
        goto out;
    }
    size_t nchecks = 1 + t->nmore;
    if ((pr = calloc(1, sizeof(*pr) + nchecks * sizeof(pr->checks[0]))) == NULL) {
        rc = BDY_ENOMEM;
        goto out;
    }
    memcpy(pr->id, t->id, id_len + 1);
    pr->node.key = pr->id;
    pr->node.hash = bdy_hash_str(pr->id);
    pr->fd = -1;
    pr->arg = t->arg;
    pr->step = STEP_QUEUED;
    pr->nchecks = nchecks;
    rc = check_set(&pr->checks[0], t->addr, t->http_path, t->timeout_ms);
    for (size_t i = 0; i < t->nmore && rc == 0; i++)
        rc = check_set(&pr->checks[i + 1], t->more[i].addr, t->more[i].http_path,
                       t->more[i].timeout_ms);
    if (rc != 0)
        goto out;
    pr->deadline_ns = bdy_monotonic_ns() + (uint64_t)pr->checks[0].timeout_ms * 1000000u;
    pthread_mutex_lock(&p->lock);
    if (p->stopping)
        rc = BDY_ESHUTDOWN;
    else if (bdy_hmap_find(&p->by_id, pr->id, pr->node.hash) != NULL)
        rc = BDY_EEXISTS;
    else if (p->count >= p->max_running)
        rc = BDY_EBUSY;
    if (rc == 0) {
        bdy_hmap_insert(&p->by_id, &pr->node);
        p->count++;
        if (p->queue_tail != NULL)
            p->queue_tail->next = pr;
        else
            p->queue_head = pr;
        p->queue_tail = pr;
        pr = NULL; /* the prober's now */
    }
    pthread_mutex_unlock(&p->lock);
    if (rc == 0)
        wake(p);
out:
    free(pr);
    return rc;
}

/* ---- the thread ------------------------------------------------------------------ */

static void running_link(bdy__prober *p, probe *pr)
{
    pr->prev = NULL;
    pr->next = p->running;
    if (p->running != NULL)
        p->running->prev = pr;
    p->running = pr;
}

static void running_unlink(bdy__prober *p, probe *pr)
{
    if (pr->prev != NULL)
        pr->prev->next = pr->next;
    else
        p->running = pr->next;
    if (pr->next != NULL)
        pr->next->prev = pr->prev;
    pr->prev = pr->next = NULL;
}

/* Ends a probe: closes its socket, lets its id go, reports, frees it. The
 * probe is on no list. */
static void finish(bdy__prober *p, probe *pr, bdy__probe_verdict verdict)
{
    /* Taken out of the epoll set first: close() alone leaves it there
     * while a copy of the descriptor lives on, in a world's process being
     * spawned (posix_spawn shares the table until exec), and its next event
     * would name this freed probe. */
    if (pr->watched)
        epoll_ctl(p->epfd, EPOLL_CTL_DEL, pr->fd, NULL);
    if (pr->fd >= 0)
        close(pr->fd);
    pthread_mutex_lock(&p->lock);
    bdy_hmap_remove(&p->by_id, &pr->node);
    p->count--;
    pthread_mutex_unlock(&p->lock);
    p->done(p->data, pr->arg, verdict);
    free(pr);
}

static int watch(bdy__prober *p, probe *pr, int op, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = pr};
    return epoll_ctl(p->epfd, op, pr->fd, &ev);
}

/* Makes the socket and begins the connect; false when the probe ended. */
static bool begin(bdy__prober *p, probe *pr)
{
    pr->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (pr->fd < 0) {
        finish(p, pr, BDY__PROBE_NOT_RUN);
        return false;
    }
    const probe_check *c = &pr->checks[pr->current];
    if (connect(pr->fd, (const struct sockaddr *)&c->addr, sizeof(c->addr)) != 0 &&
        errno != EINPROGRESS) {
        finish(p, pr, BDY__PROBE_FAILED);
        return false;
    }
    /* Connected at once or not: writable once connected, with EPOLLERR or
     * EPOLLHUP when refused. */
    pr->step = STEP_CONNECTING;
    if (watch(p, pr, EPOLL_CTL_ADD, EPOLLOUT) != 0) {
        finish(p, pr, BDY__PROBE_NOT_RUN);
        return false;
    }
    pr->watched = true;
    running_link(p, pr);
    return true;
}

/* One step on a readiness event: a verdict, or -1 while the probe goes on. */
static int advance(bdy__prober *p, probe *pr)
{
    const probe_check *c = &pr->checks[pr->current];
    if (pr->step == STEP_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(pr->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
            return BDY__PROBE_FAILED;
        if (!c->http)
            return BDY__PROBE_PASSED;
        pr->step = STEP_SENDING;
    }
    if (pr->step == STEP_SENDING) {
        while (pr->sent < c->req_len) {
            ssize_t n = send(pr->fd, c->request + pr->sent, c->req_len - pr->sent, MSG_NOSIGNAL);
            if (n > 0)
                pr->sent += (size_t)n;
            else if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return -1; /* EPOLLOUT again */
            else
                return BDY__PROBE_FAILED;
        }
        pr->step = STEP_READING;
        if (watch(p, pr, EPOLL_CTL_MOD, EPOLLIN) != 0)
            return BDY__PROBE_NOT_RUN;
        return -1;
    }
    /* STEP_READING: only the status line counts, at most STATUS_LINE_MAX
     * bytes of it; the end of the answer ends it too. */
    for (;;) {
        ssize_t n = recv(pr->fd, pr->line + pr->got, sizeof(pr->line) - pr->got, 0);
        if (n > 0) {
            pr->got += (size_t)n;
            if (pr->got == sizeof(pr->line) || memchr(pr->line, '\n', pr->got) != NULL)
                break;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            return -1;
        } else {
            break; /* the end, or reset */
        }
    }
    return bdy__prober_status_ok(pr->line, pr->got) ? BDY__PROBE_PASSED : BDY__PROBE_FAILED;
}

/* Moves a probe whose check passed on to its next check, keeping its id
 * and slot: false when it has none left (the probe passed). The probe is
 * on no list; begin() starts it again. */
static bool next_check(bdy__prober *p, probe *pr)
{
    if (pr->current + 1 >= pr->nchecks)
        return false;
    if (pr->watched)
        epoll_ctl(p->epfd, EPOLL_CTL_DEL, pr->fd, NULL);
    if (pr->fd >= 0)
        close(pr->fd);
    pr->fd = -1;
    pr->watched = false;
    pr->current++;
    pr->sent = 0;
    pr->got = 0;
    pr->step = STEP_QUEUED;
    pr->deadline_ns = bdy_monotonic_ns() + (uint64_t)pr->checks[pr->current].timeout_ms * 1000000u;
    return true;
}

/* Ends the probes past their deadline; the wait until the next one, in
 * milliseconds, -1 for none. */
static int expire(bdy__prober *p)
{
    uint64_t now = bdy_monotonic_ns();
    uint64_t next = UINT64_MAX;
    for (probe *pr = p->running, *after; pr != NULL; pr = after) {
        after = pr->next;
        if (pr->deadline_ns <= now) {
            running_unlink(p, pr);
            finish(p, pr, BDY__PROBE_FAILED);
        } else if (pr->deadline_ns < next) {
            next = pr->deadline_ns;
        }
    }
    if (next == UINT64_MAX)
        return -1;
    uint64_t ms = (next - now + 999999) / 1000000;
    return ms > 60000 ? 60000 : (int)ms;
}

/* Begins the probes queued since the last turn. */
static void take_queue(bdy__prober *p)
{
    uint64_t count;
    ssize_t n = read(p->wakefd, &count, sizeof(count));
    (void)n; /* EAGAIN: woken by an earlier write already read */
    pthread_mutex_lock(&p->lock);
    probe *pr = p->queue_head;
    p->queue_head = p->queue_tail = NULL;
    pthread_mutex_unlock(&p->lock);
    while (pr != NULL) {
        probe *after = pr->next;
        pr->next = NULL;
        begin(p, pr);
        pr = after;
    }
}

static void *prober_main(void *arg)
{
    bdy__prober *p = arg;
    bdy_thread_start(p->thread_name, false);
    struct epoll_event evs[EPOLL_BATCH];
    for (;;) {
        pthread_mutex_lock(&p->lock);
        bool stopping = p->stopping;
        pthread_mutex_unlock(&p->lock);
        if (stopping)
            break;
        int timeout = expire(p);
        int n = epoll_wait(p->epfd, evs, EPOLL_BATCH, timeout);
        if (n < 0 && errno != EINTR) {
            bdy_warn(LOG_COMPONENT, "epoll_wait: %s", strerror(errno));
            n = 0;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                take_queue(p);
                continue;
            }
            probe *pr = evs[i].data.ptr;
            int verdict = advance(p, pr);
            if (verdict >= 0) {
                running_unlink(p, pr);
                if (verdict == BDY__PROBE_PASSED && next_check(p, pr))
                    begin(p, pr);
                else
                    finish(p, pr, (bdy__probe_verdict)verdict);
            }
        }
    }
    return NULL;
}

/* ---- lifetime --------------------------------------------------------------------- */

int bdy__prober_new(unsigned max_running, const char *thread_name, bdy__prober_done_cb done,
                    void *data, bdy__prober **out, bdy_errbuf *eb)
{
    int rc = 0;
    *out = NULL;
    if (done == NULL || max_running == 0)
        return bdy_fail(eb, BDY_EINVAL, "prober: a callback and a limit are needed");
    bdy__prober *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return bdy_fail(eb, BDY_ENOMEM, "prober: out of memory");
    p->epfd = -1;
    p->wakefd = -1;
    p->max_running = max_running;
    p->done = done;
    p->data = data;
    snprintf(p->thread_name, sizeof(p->thread_name), "%s",
             thread_name ? thread_name : "bdy-prober");
    pthread_mutex_init(&p->lock, NULL);
    if (bdy_hmap_init(&p->by_id, MIN_BUCKETS) != 0) {
        rc = bdy_fail(eb, BDY_ENOMEM, "prober: out of memory");
        goto out;
    }
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    p->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (p->epfd < 0 || p->wakefd < 0 || epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->wakefd, &ev) != 0) {
        rc = bdy_fail(eb, BDY_EIO, "prober: epoll/eventfd: %s", strerror(errno));
        goto out;
    }
    if (pthread_create(&p->thread, NULL, prober_main, p) != 0) {
        rc = bdy_fail(eb, BDY_EIO, "prober: cannot start its thread");
        goto out;
    }
    p->thread_started = true;
    *out = p;
out:
    if (rc != 0)
        bdy__prober_free(p);
    return rc;
}

void bdy__prober_free(bdy__prober *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    probe *queued = p->queue_head;
    p->queue_head = p->queue_tail = NULL;
    pthread_mutex_unlock(&p->lock);
    if (p->thread_started) {
        wake(p);
        pthread_join(p->thread, NULL);
    }
    while (p->running != NULL) {
        probe *pr = p->running;
        running_unlink(p, pr);
        finish(p, pr, BDY__PROBE_CANCELLED);
    }
    while (queued != NULL) {
        probe *after = queued->next;
        finish(p, queued, BDY__PROBE_CANCELLED);
        queued = after;
    }
    if (p->epfd >= 0)
        close(p->epfd);
    if (p->wakefd >= 0)
        close(p->wakefd);
    bdy_hmap_destroy(&p->by_id);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
