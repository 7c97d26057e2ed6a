/* arena-world: the tiny game world of the examples and the runtime tests.
 *
 *   arena-world --port N [--name NAME] [--crash-after-ms N] [--ready-delay-ms N]
 *               [--deaf-after-ms N] [--mute-after-ms N] [--drain-ms N]
 *
 * Listens on TCP and UDP 127.0.0.1:N. Over TCP every line "ping" is answered
 * "pong NAME", and a GET request (an httpGet readiness probe) "200 OK"
 * once its headers have ended; over UDP a datagram "ping" is answered
 * "pong NAME".
 * --ready-delay-ms holds the listen back, so readiness probes see a real
 * start-up delay; --crash-after-ms exits with status 3 after that long, for
 * tests of crash handling; --deaf-after-ms closes the TCP listener after
 * that long and runs on, a world that stops answering its readiness probe;
 * --mute-after-ms stops reading TCP after that long while connections are
 * still accepted (by the kernel, into the listen backlog): a world that
 * hangs, whose probe waits out its timeout.
 * SIGTERM (or SIGINT) ends it promptly with status 0, or, with --drain-ms,
 * that long after the first, while it goes on serving: a game server
 * finishing its match (a second signal changes nothing; SIGKILL ends it).
 * Single-threaded: one poll() loop over a signalfd, both sockets and the
 * TCP clients. Needs nothing from Bindery but the port it is handed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NAME_MAX_LEN 64  /* --name */
#define LINE_MAX_LEN 128 /* one request line from a TCP client */
#define DATAGRAM_MAX 512 /* one UDP request */
#define MAX_CLIENTS 64   /* TCP clients served at once; more are turned away */
#define EXIT_CRASH 3
#define EXIT_USAGE 2

typedef struct client {
    int fd;
    size_t len;
    bool http; /* sent a GET line: answered once its headers end */
    char line[LINE_MAX_LEN];
} client;

typedef struct world {
    char name[NAME_MAX_LEN + 1];
    unsigned port;
    int64_t ready_at_ms; /* when to start listening */
    int64_t crash_at_ms; /* -1: never */
    int64_t deaf_at_ms;  /* when to stop listening on TCP; -1: never */
    bool deaf;
    int64_t mute_at_ms; /* when to stop serving TCP; -1: never */
    int64_t drain_ms;   /* how long it serves on after SIGTERM */
    int64_t stop_at_ms; /* when a drain ends; -1: not draining */
    int sigfd;
    int tcp;
    int udp;
    client clients[MAX_CLIENTS];
    size_t nclients;
} world;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void usage(void)
{
    fprintf(stderr, "usage: arena-world --port N [--name NAME] [--crash-after-ms N] "
                    "[--ready-delay-ms N] [--deaf-after-ms N] [--mute-after-ms N] "
                    "[--drain-ms N]\n");
}

/* Parses a whole decimal number in [min, max]. */
static bool parse_uint(const char *text, unsigned long min, unsigned long max, unsigned long *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno != 0 || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool parse_args(int argc, char **argv, world *w)
{
    unsigned long port = 0;
    unsigned long crash_ms = 0;
    unsigned long delay_ms = 0;
    unsigned long deaf_ms = 0;
    unsigned long mute_ms = 0;
    unsigned long drain_ms = 0;
    bool crash = false;
    bool deaf = false;
    bool mute = false;
    snprintf(w->name, sizeof(w->name), "arena");
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (val == NULL)
            return false;
        i++;
        if (strcmp(opt, "--port") == 0) {
            if (!parse_uint(val, 1, 65535, &port))
                return false;
        } else if (strcmp(opt, "--name") == 0) {
            if (val[0] == '\0' || strlen(val) > NAME_MAX_LEN)
                return false;
            snprintf(w->name, sizeof(w->name), "%s", val);
        } else if (strcmp(opt, "--crash-after-ms") == 0) {
            if (!parse_uint(val, 0, 86400000, &crash_ms))
                return false;
            crash = true;
        } else if (strcmp(opt, "--ready-delay-ms") == 0) {
            if (!parse_uint(val, 0, 86400000, &delay_ms))
                return false;
        } else if (strcmp(opt, "--deaf-after-ms") == 0) {
            if (!parse_uint(val, 0, 86400000, &deaf_ms))
                return false;
            deaf = true;
        } else if (strcmp(opt, "--mute-after-ms") == 0) {
            if (!parse_uint(val, 0, 86400000, &mute_ms))
                return false;
            mute = true;
        } else if (strcmp(opt, "--drain-ms") == 0) {
            if (!parse_uint(val, 0, 86400000, &drain_ms))
                return false;
        } else {
            return false;
        }
    }
    if (port == 0)
        return false;
    int64_t start = now_ms();
    w->port = (unsigned)port;
    w->ready_at_ms = start + (int64_t)delay_ms;
    w->crash_at_ms = crash ? start + (int64_t)crash_ms : -1;
    w->deaf_at_ms = deaf ? start + (int64_t)deaf_ms : -1;
    w->mute_at_ms = mute ? start + (int64_t)mute_ms : -1;
    w->drain_ms = (int64_t)drain_ms;
    w->stop_at_ms = -1;
    return true;
}

static int open_socket(int type, unsigned port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    /* A restarted world must be able to take its port back while old
     * connections sit in TIME_WAIT. UDP would share the port with it. */
    if ((type == SOCK_STREAM && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one))) ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        (type == SOCK_STREAM && listen(fd, 64) != 0)) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool start_listening(world *w)
{
    w->tcp = open_socket(SOCK_STREAM, w->port);
    w->udp = open_socket(SOCK_DGRAM, w->port);
    if (w->tcp < 0 || w->udp < 0) {
        fprintf(stderr, "arena-world %s: cannot listen on 127.0.0.1:%u: %s\n", w->name, w->port,
                strerror(errno));
        return false;
    }
    fprintf(stderr, "arena-world %s: listening on 127.0.0.1:%u (tcp, udp)\n", w->name, w->port);
    return true;
}

static void drop_client(world *w, size_t i)
{
    close(w->clients[i].fd);
    w->clients[i] = w->clients[--w->nclients];
}

static void accept_clients(world *w)
{
    for (;;) {
        int fd = accept4(w->tcp, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (w->nclients == MAX_CLIENTS) {
            close(fd);
            continue;
        }
        w->clients[w->nclients++] = (client){.fd = fd, .len = 0};
    }
}

/* Answers every complete line a client has sent. False when the client is
 * gone, misbehaves (a line longer than LINE_MAX_LEN) or stops reading. */
static bool serve_client(world *w, client *c)
{
    ssize_t n = recv(c->fd, c->line + c->len, sizeof(c->line) - c->len, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
        return false;
    if (n < 0)
        return true;
    c->len += (size_t)n;
    char *nl;
    while ((nl = memchr(c->line, '\n', c->len)) != NULL) {
        size_t line_len = (size_t)(nl - c->line);
        if (line_len > 0 && c->line[line_len - 1] == '\r')
            line_len--;
        char reply[NAME_MAX_LEN + 96];
        int len = 0;
        bool answered_http = false;
        if (c->http) {
            /* Headers are skipped; the empty line ends the request. */
            if (line_len == 0) {
                len = snprintf(reply, sizeof(reply),
                               "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\npong %s\n",
                               w->name);
                answered_http = true;
            }
        } else if (line_len >= 4 && memcmp(c->line, "GET ", 4) == 0) {
            c->http = true;
        } else if (line_len == 4 && memcmp(c->line, "ping", 4) == 0) {
            len = snprintf(reply, sizeof(reply), "pong %s\n", w->name);
        } else {
            len = snprintf(reply, sizeof(reply), "error unknown command\n");
        }
        if (len > 0 && send(c->fd, reply, (size_t)len, MSG_NOSIGNAL) != len)
            return false;
        if (answered_http)
            return false; /* HTTP/1.0: the answer ends with the connection */
        size_t used = (size_t)(nl - c->line) + 1;
        memmove(c->line, c->line + used, c->len - used);
        c->len -= used;
    }
    return c->len < sizeof(c->line);
}

static void serve_datagram(world *w)
{
    char buf[DATAGRAM_MAX];
    struct sockaddr_in from;
    socklen_t fromlen = sizeof(from);
    ssize_t n = recvfrom(w->udp, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fromlen);
    if (n < 0)
        return;
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n != 4 || memcmp(buf, "ping", 4) != 0)
        return;
    char reply[NAME_MAX_LEN + 8];
    int len = snprintf(reply, sizeof(reply), "pong %s", w->name);
    sendto(w->udp, reply, (size_t)len, 0, (struct sockaddr *)&from, fromlen);
}

/* Milliseconds poll may sleep before the next timed event, -1 for none. */
static int poll_timeout(const world *w)
{
    int64_t now = now_ms();
    int64_t next = -1;
    if (w->tcp < 0 && !w->deaf)
        next = w->ready_at_ms;
    if (!w->deaf && w->deaf_at_ms >= 0 && (next < 0 || w->deaf_at_ms < next))
        next = w->deaf_at_ms;
    if (w->crash_at_ms >= 0 && (next < 0 || w->crash_at_ms < next))
        next = w->crash_at_ms;
    if (w->mute_at_ms >= 0 && w->mute_at_ms > now && (next < 0 || w->mute_at_ms < next))
        next = w->mute_at_ms;
    if (w->stop_at_ms >= 0 && (next < 0 || w->stop_at_ms < next))
        next = w->stop_at_ms;
    if (next < 0)
        return -1;
    return next <= now ? 0 : (int)(next - now);
}

static int run(world *w)
{
    struct pollfd fds[3 + MAX_CLIENTS];
    for (;;) {
        int64_t now = now_ms();
        if (w->crash_at_ms >= 0 && now >= w->crash_at_ms) {
            fprintf(stderr, "arena-world %s: crashing as asked\n", w->name);
            return EXIT_CRASH;
        }
        if (w->stop_at_ms >= 0 && now >= w->stop_at_ms) {
            fprintf(stderr, "arena-world %s: drained, stopping\n", w->name);
            return EXIT_SUCCESS;
        }
        if (!w->deaf && w->deaf_at_ms >= 0 && now >= w->deaf_at_ms) {
            fprintf(stderr, "arena-world %s: no longer listening on tcp, as asked\n", w->name);
            if (w->tcp >= 0)
                close(w->tcp);
            w->tcp = -1;
            w->deaf = true;
        }
        if (w->tcp < 0 && !w->deaf && now >= w->ready_at_ms && !start_listening(w))
            return EXIT_FAILURE;
        /* Muted: TCP is neither accepted nor read (poll skips a negative
         * descriptor); the kernel still completes handshakes. */
        bool muted = w->mute_at_ms >= 0 && now >= w->mute_at_ms;
        fds[0] = (struct pollfd){.fd = w->sigfd, .events = POLLIN};
        fds[1] = (struct pollfd){.fd = muted ? -1 : w->tcp, .events = POLLIN};
        fds[2] = (struct pollfd){.fd = w->udp, .events = POLLIN};
        for (size_t i = 0; i < w->nclients; i++)
            fds[3 + i] = (struct pollfd){.fd = muted ? -1 : w->clients[i].fd, .events = POLLIN};
        size_t nclients = w->nclients;
        int n = poll(fds, 3 + nclients, poll_timeout(w));
        if (n < 0 && errno != EINTR) {
            perror("arena-world: poll");
            return EXIT_FAILURE;
        }
        if (n <= 0)
            continue;
        if (fds[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            unsigned signo =
                read(w->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si) ? si.ssi_signo : 0;
            if (w->drain_ms == 0) {
                fprintf(stderr, "arena-world %s: signal %u, stopping\n", w->name, signo);
                return EXIT_SUCCESS;
            }
            if (w->stop_at_ms < 0) {
                fprintf(stderr, "arena-world %s: signal %u, draining for %lld ms\n", w->name, signo,
                        (long long)w->drain_ms);
                w->stop_at_ms = now_ms() + w->drain_ms;
            }
            continue;
        }
        /* Clients first, from the last: dropping one moves the last into
         * its slot, which has then already been served. */
        for (size_t i = nclients; i-- > 0;)
            if (fds[3 + i].revents != 0 && !serve_client(w, &w->clients[i]))
                drop_client(w, i);
        if (fds[1].revents & POLLIN)
            accept_clients(w);
        if (fds[2].revents & POLLIN)
            serve_datagram(w);
    }
}

int main(int argc, char **argv)
{
    world w = {.sigfd = -1, .tcp = -1, .udp = -1};
    if (!parse_args(argc, argv, &w)) {
        usage();
        return EXIT_USAGE;
    }
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    if (sigprocmask(SIG_BLOCK, &stop, NULL) != 0 ||
        (w.sigfd = signalfd(-1, &stop, SFD_CLOEXEC)) < 0) {
        perror("arena-world: signalfd");
        return EXIT_FAILURE;
    }
    int rc = run(&w);
    for (size_t i = w.nclients; i-- > 0;)
        drop_client(&w, i);
    if (w.tcp >= 0)
        close(w.tcp);
    if (w.udp >= 0)
        close(w.udp);
    close(w.sigfd);
    return rc;
}
