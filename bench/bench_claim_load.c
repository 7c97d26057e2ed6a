/* A small HTTP load client for claim benchmarks: keep-alive connections on
 * raw sockets, one thread per connection, no dependencies.
 *
 *   bench_claim_load --port P [--path /v1/allocations] [--body JSON]
 *                    (--rate R | --concurrency C) [--connections N]
 *                    [--duration S] [--release] [--json]
 *
 * --rate R: open loop. Requests are scheduled at fixed intervals spread over
 *   the connections and latency is measured from the scheduled time, so a
 *   slow answer cannot hide the requests it delays (no coordinated omission).
 * --concurrency C: closed loop with C connections as fast as they go (peak
 *   throughput).
 * --release: after each 201 the allocation is released with DELETE on the
 *   same connection (not timed), so pools do not run dry.
 * Prints count, achieved rate, status counts and latency percentiles. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONN 256
#define RESP_MAX 65536
#define MAX_SAMPLES_PER_CONN 2000000

typedef struct conn_run {
    int id;
    int fd;
    double interval_s; /* open loop: this connection's spacing; 0 = closed */
    double offset_s;
    double start;
    double end;
    double last_done; /* when its last answer came (open loop: may be past end) */
    const char *req;
    size_t req_len;
    bool release;
    uint64_t ok;
    uint64_t by_status[6]; /* 1xx..5xx, [0] = transport errors */
    double *lat;
    size_t nlat;
} conn_run;

static int port;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_until(double t)
{
    double d = t - now_s();
    if (d <= 0)
        return;
    struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
    nanosleep(&ts, NULL);
}

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Reads one response; returns the status (0 on error) and copies up to cap
 * bytes of the body into body. */
static int read_response(int fd, char *buf, char *body, size_t cap)
{
    size_t len = 0;
    char *hdr_end = NULL;
    while (hdr_end == NULL) {
        if (len >= RESP_MAX - 1)
            return 0;
        ssize_t n = read(fd, buf + len, RESP_MAX - 1 - len);
        if (n <= 0)
            return 0;
        len += (size_t)n;
        buf[len] = '\0';
        hdr_end = strstr(buf, "\r\n\r\n");
    }
    int status = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        return 0;
    size_t content_length = 0;
    char *cl = strcasestr(buf, "\r\nContent-Length:");
    if (cl != NULL && cl < hdr_end)
        content_length = (size_t)strtoul(cl + 17, NULL, 10);
    size_t have = len - (size_t)(hdr_end + 4 - buf);
    size_t body_off = (size_t)(hdr_end + 4 - buf);
    while (have < content_length) {
        if (body_off + content_length >= RESP_MAX)
            return 0;
        ssize_t n = read(fd, buf + len, RESP_MAX - 1 - len);
        if (n <= 0)
            return 0;
        len += (size_t)n;
        have += (size_t)n;
    }
    if (body != NULL && cap > 0) {
        size_t m = content_length < cap - 1 ? content_length : cap - 1;
        memcpy(body, buf + body_off, m);
        body[m] = '\0';
    }
    return status;
}

static void release(conn_run *c, const char *body, char *buf)
{
    const char *id = strstr(body, "\"allocationId\":\"");
    if (id == NULL)
        return;
    id += 16;
    const char *q = strchr(id, '"');
    if (q == NULL || q - id > 64)
        return;
    char req[256];
    int n = snprintf(req, sizeof(req),
                     "DELETE /v1/allocations/%.*s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                     (int)(q - id), id);
    if (send_all(c->fd, req, (size_t)n))
        read_response(c->fd, buf, NULL, 0);
}

static void *conn_main(void *arg)
{
    conn_run *c = arg;
    char *buf = malloc(RESP_MAX);
    char body[4096];
    c->fd = dial();
    double next = c->start + c->offset_s;
    /* Closed loop: no request before the window opens, so that the count
     * divided by the window's length is a rate (threads start early). */
    if (c->interval_s <= 0)
        sleep_until(c->start);
    while (buf != NULL) {
        double scheduled = c->interval_s > 0 ? next : now_s();
        if (scheduled >= c->end)
            break;
        if (c->interval_s > 0) {
            sleep_until(scheduled);
            next += c->interval_s;
        }
        if (c->fd < 0)
            c->fd = dial();
        int status = 0;
        if (c->fd >= 0 && send_all(c->fd, c->req, c->req_len))
            status = read_response(c->fd, buf, body, sizeof(body));
        double done = now_s();
        c->last_done = done;
        if (c->interval_s <= 0 && done > c->end)
            break; /* answered after the window: not part of its rate */
        if (status == 0) {
            c->by_status[0]++;
            if (c->fd >= 0)
                close(c->fd);
            c->fd = -1;
            continue;
        }
        c->by_status[status / 100 < 6 ? status / 100 : 5]++;
        if (status / 100 == 2) {
            c->ok++;
            if (c->nlat < MAX_SAMPLES_PER_CONN)
                c->lat[c->nlat++] = (done - scheduled) * 1e3;
            if (c->release && status == 201)
                release(c, body, buf);
        }
    }
    if (c->fd >= 0)
        close(c->fd);
    free(buf);
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static size_t rank_index(size_t n, double p)
{
    size_t r = (size_t)ceil(p * (double)n);
    return r == 0 ? 0 : r > n ? n - 1 : r - 1;
}

int main(int argc, char **argv)
{
    const char *path = "/v1/allocations";
    const char *body = "{\"pool\":\"arena\"}";
    double rate = 0;
    int conc = 0;
    int nconn = 4;
    double duration = 5;
    bool rel = false;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--path") && i + 1 < argc)
            path = argv[++i];
        else if (!strcmp(argv[i], "--body") && i + 1 < argc)
            body = argv[++i];
        else if (!strcmp(argv[i], "--rate") && i + 1 < argc)
            rate = atof(argv[++i]);
        else if (!strcmp(argv[i], "--concurrency") && i + 1 < argc)
            conc = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--connections") && i + 1 < argc)
            nconn = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--duration") && i + 1 < argc)
            duration = atof(argv[++i]);
        else if (!strcmp(argv[i], "--release"))
            rel = true;
        else if (!strcmp(argv[i], "--json"))
            json = true;
        else {
            fprintf(stderr,
                    "usage: %s --port P [--path P] [--body JSON] (--rate R | --concurrency C) "
                    "[--connections N] [--duration S] [--release] [--json]\n",
                    argv[0]);
            return 2;
        }
    }
    if (port <= 0 || port > 65535 || (rate <= 0) == (conc <= 0) || duration <= 0 ||
        duration > 3600) {
        fprintf(stderr,
                "need --port, exactly one of --rate/--concurrency, 0 < --duration <= 3600\n");
        return 2;
    }
    if (conc > 0)
        nconn = conc;
    if (nconn < 1 || nconn > MAX_CONN) {
        fprintf(stderr, "connections must be 1..%d\n", MAX_CONN);
        return 2;
    }
    char req[8192];
    int req_len = snprintf(req, sizeof(req),
                           "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                           "\r\nContent-Length: %zu\r\n\r\n%s",
                           path, strlen(body), body);
    if (req_len <= 0 || (size_t)req_len >= sizeof(req)) {
        fprintf(stderr, "body too long\n");
        return 2;
    }
    conn_run *runs = calloc((size_t)nconn, sizeof(*runs));
    pthread_t th[MAX_CONN];
    double start = now_s() + 0.05;
    size_t cap = MAX_SAMPLES_PER_CONN;
    for (int i = 0; i < nconn; i++) {
        runs[i].id = i;
        runs[i].fd = -1;
        runs[i].start = start;
        runs[i].end = start + duration;
        runs[i].req = req;
        runs[i].req_len = (size_t)req_len;
        runs[i].release = rel;
        runs[i].interval_s = rate > 0 ? (double)nconn / rate : 0;
        runs[i].offset_s = rate > 0 ? (double)i / rate : 0;
        runs[i].lat = malloc(cap * sizeof(double));
        pthread_create(&th[i], NULL, conn_main, &runs[i]);
    }
    uint64_t ok = 0;
    uint64_t status[6] = {0};
    size_t nlat = 0;
    for (int i = 0; i < nconn; i++) {
        pthread_join(th[i], NULL);
        ok += runs[i].ok;
        nlat += runs[i].nlat;
        for (int k = 0; k < 6; k++)
            status[k] += runs[i].by_status[k];
    }
    double *all = malloc((nlat ? nlat : 1) * sizeof(double));
    size_t k = 0;
    for (int i = 0; i < nconn; i++) {
        memcpy(all + k, runs[i].lat, runs[i].nlat * sizeof(double));
        k += runs[i].nlat;
        free(runs[i].lat);
    }
    qsort(all, nlat, sizeof(double), cmp);
    /* Nearest rank: the smallest sample with at least p of them at or
     * below it (p99.9 of 500 samples is the largest, not the second). */
#define PCT(p) (nlat ? all[rank_index(nlat, (p))] : 0.0)
    /* Open loop: requests due in the window may be answered after it; the
     * rate is over the time they took, not the window's (an overloaded
     * server would otherwise show the offered rate). */
    double span = duration;
    for (int i = 0; rate > 0 && i < nconn; i++)
        if (runs[i].last_done - start > span)
            span = runs[i].last_done - start;
    double achieved = (double)ok / span;
    if (json) {
        printf(
            "{\"ok\":%llu,\"rate\":%.1f,\"errors\":%llu,\"s4xx\":%llu,\"s5xx\":%llu,"
            "\"p50_ms\":%.4f,\"p90_ms\":%.4f,\"p99_ms\":%.4f,\"p999_ms\":%.4f,\"max_ms\":%.4f}\n",
            (unsigned long long)ok, achieved, (unsigned long long)status[0],
            (unsigned long long)status[4], (unsigned long long)status[5], PCT(0.5), PCT(0.9),
            PCT(0.99), PCT(0.999), nlat ? all[nlat - 1] : 0.0);
    } else {
        printf("ok %llu in %.1f s = %.0f/s; transport errors %llu, 4xx %llu, 5xx %llu\n",
               (unsigned long long)ok, duration, achieved, (unsigned long long)status[0],
               (unsigned long long)status[4], (unsigned long long)status[5]);
        printf("latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n", PCT(0.5),
               PCT(0.9), PCT(0.99), PCT(0.999), nlat ? all[nlat - 1] : 0.0);
    }
    free(all);
    free(runs);
    return 0;
}
