/* The bare-HTTP floor: a libmicrohttpd server configured like bindery's
 * (internal epoll thread pool) that answers POST /v1/allocations with a
 * fixed 201 claim answer and does nothing else. Claim throughput is quoted
 * as a ratio to this server's, measured by the same client in the same run.
 *
 * With --sync-dir it is the floor under a durable claim instead: before
 * each answer it overwrites a 4 KB block of a preallocated file in DIR and
 * fdatasyncs it, one request at a time, the least any durable answer costs.
 * Quoting claim latency against this one measurement avoids adding the
 * medians of two separate ones (the disk's and the round trip's), which
 * understates the floor: both are skewed to the right, so the median of
 * their sum is above the sum of their medians. It serializes requests, so
 * it is a latency floor only, never a throughput one.
 *
 *   bench_floor_server --listen PORT [--threads N] [--sync-dir DIR]
 * Runs until SIGTERM/SIGINT. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SYNC_BLOCK 4096
#define SYNC_BLOCKS 256

static const char answer[] =
    "{\"allocationId\":\"alc-6f1c2b9e4d0a\",\"source\":\"warm\",\"claimedAt\":"
    "\"2026-11-27T20:15:02.113482Z\",\"world\":{\"name\":\"arena-7k2pq\",\"namespace\":"
    "\"default\",\"pool\":\"arena\",\"address\":\"127.0.0.1\",\"ports\":[{\"name\":\"game\","
    "\"port\":7777,\"protocol\":\"UDP\"}],\"nodeName\":\"node-a3\",\"labels\":{\"game\":"
    "\"arena\",\"bindery.dev/pool\":\"arena\"},\"annotations\":{}}}";

static volatile sig_atomic_t stop;

/* --sync-dir: the file, the next block to overwrite, and its lock. */
static int sync_fd = -1;
static unsigned sync_next;
static pthread_mutex_t sync_lock = PTHREAD_MUTEX_INITIALIZER;

/* One durable write, as a claim's commit makes at least one. */
static bool durable_write(void)
{
    static char block[SYNC_BLOCK];
    pthread_mutex_lock(&sync_lock);
    off_t at = (off_t)(sync_next++ % SYNC_BLOCKS) * SYNC_BLOCK;
    bool ok = pwrite(sync_fd, block, sizeof(block), at) == (ssize_t)sizeof(block) &&
              fdatasync(sync_fd) == 0;
    pthread_mutex_unlock(&sync_lock);
    return ok;
}

/* Creates and fills the file first, so each write overwrites allocated
 * blocks and fdatasync has no size or extent to record, like a WAL that
 * has been reset. */
static int open_sync_file(const char *dir)
{
    char path[4096];
    static char block[SYNC_BLOCK];
    snprintf(path, sizeof(path), "%s/bench_floor_server.%d", dir, (int)getpid());
    sync_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (sync_fd < 0) {
        fprintf(stderr, "cannot create %s: %s\n", path, strerror(errno));
        return -1;
    }
    unlink(path); /* gone when we exit, however we exit */
    for (unsigned i = 0; i < SYNC_BLOCKS; i++)
        if (write(sync_fd, block, sizeof(block)) != (ssize_t)sizeof(block)) {
            fprintf(stderr, "cannot fill %s: %s\n", path, strerror(errno));
            return -1;
        }
    if (fsync(sync_fd) != 0) {
        fprintf(stderr, "cannot sync %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* Reads the whole body like a real handler would, then answers. */
static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *data,
                              size_t *size, void **req_cls)
{
    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    (void)data;
    static int first;
    if (*req_cls == NULL) {
        *req_cls = &first;
        return MHD_YES;
    }
    if (*size > 0) {
        *size = 0;
        return MHD_YES;
    }
    if (sync_fd >= 0 && !durable_write()) {
        static const char failed[] = "{\"code\":\"Internal\",\"message\":\"write failed\"}";
        struct MHD_Response *r =
            MHD_create_response_from_buffer(strlen(failed), (void *)failed, MHD_RESPMEM_PERSISTENT);
        enum MHD_Result ret = MHD_queue_response(conn, 500, r);
        MHD_destroy_response(r);
        return ret;
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(answer), (void *)answer, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Location", "/v1/allocations/alc-6f1c2b9e4d0a");
    enum MHD_Result ret = MHD_queue_response(conn, 201, r);
    MHD_destroy_response(r);
    return ret;
}

int main(int argc, char **argv)
{
    unsigned long port = 0;
    unsigned long threads = 4;
    const char *sync_dir = NULL;
    bool bad = false;
    for (int i = 1; i < argc && !bad; i++) {
        char *end = NULL;
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            port = strtoul(argv[++i], &end, 10);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = strtoul(argv[++i], &end, 10);
        else if (strcmp(argv[i], "--sync-dir") == 0 && i + 1 < argc)
            sync_dir = argv[++i];
        else
            bad = true;
        /* A port given as ADDR:PORT must not read as its first number. */
        if (end != NULL && (*end != '\0' || end == argv[i]))
            bad = true;
    }
    if (bad || port == 0 || port > 65535 || threads == 0 || threads > 64) {
        fprintf(stderr,
                "usage: %s --listen PORT [--threads N] [--sync-dir DIR]\n"
                "  PORT 1..65535 on 127.0.0.1; N 1..64\n",
                argv[0]);
        return 2;
    }
    if (sync_dir != NULL && open_sync_file(sync_dir) != 0)
        return 1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d =
        MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD, (uint16_t)port, NULL, NULL, handle, NULL,
                         MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_THREAD_POOL_SIZE,
                         (unsigned)threads, MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "cannot listen on 127.0.0.1:%lu\n", port);
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    fprintf(stderr, "floor server on 127.0.0.1:%lu with %lu threads%s\n", port, threads,
            sync_fd >= 0 ? ", a 4 KB write and fdatasync before each answer" : "");
    while (!stop)
        pause();
    MHD_stop_daemon(d);
    return 0;
}
