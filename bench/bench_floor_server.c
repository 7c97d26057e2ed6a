/* The bare-HTTP floor: a libmicrohttpd server configured like bindery's
 * (internal epoll thread pool) that answers POST /v1/allocations with a
 * fixed 201 claim answer and does nothing else. Claim throughput is quoted
 * as a ratio to this server's, measured by the same client in the same run.
 *
 *   bench_floor_server --listen PORT [--threads N]
 * Runs until SIGTERM/SIGINT. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char answer[] =
    "{\"allocationId\":\"alc-6f1c2b9e4d0a\",\"source\":\"warm\",\"claimedAt\":"
    "\"2026-11-27T20:15:02.113482Z\",\"world\":{\"name\":\"arena-7k2pq\",\"namespace\":"
    "\"default\",\"pool\":\"arena\",\"address\":\"127.0.0.1\",\"ports\":[{\"name\":\"game\","
    "\"port\":7777,\"protocol\":\"UDP\"}],\"nodeName\":\"node-a3\",\"labels\":{\"game\":"
    "\"arena\",\"bindery.dev/pool\":\"arena\"},\"annotations\":{}}}";

static volatile sig_atomic_t stop;

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
    unsigned port = 0;
    unsigned threads = 4;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            port = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = (unsigned)atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s --listen PORT [--threads N]\n", argv[0]);
            return 2;
        }
    }
    if (port == 0 || port > 65535 || threads == 0 || threads > 64) {
        fprintf(stderr, "--listen PORT (1..65535) is required; --threads 1..64\n");
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d =
        MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD, (uint16_t)port, NULL, NULL, handle, NULL,
                         MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_THREAD_POOL_SIZE, threads,
                         MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "cannot listen on 127.0.0.1:%u\n", port);
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    fprintf(stderr, "floor server on 127.0.0.1:%u with %u threads\n", port, threads);
    while (!stop)
        pause();
    MHD_stop_daemon(d);
    return 0;
}
