/* A one-shot HTTP server for the probe tests (test_prober, the process
 * runtime's): a listening socket on a free loopback port, and a thread that
 * accepts one connection, reads the request up to its blank line, answers
 * and closes. Include after cmocka.h. */
#ifndef BINDERY_TESTS_ONE_SHOT_SERVER_H
#define BINDERY_TESTS_ONE_SHOT_SERVER_H

#include <arpa/inet.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

typedef struct one_shot {
    const char *reply; /* NULL: answer nothing, and wait until the client goes */
    size_t split;      /* > 0: the reply in two writes, cut here, 50 ms apart */
    int listen_fd;
    struct sockaddr_in addr; /* where it listens */
    pthread_t thread;
    char request[512]; /* what it read */
} one_shot;

static void *one_shot_main(void *arg)
{
    one_shot *s = arg;
    int fd = accept(s->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    size_t got = 0;
    while (got < sizeof(s->request) - 1 && strstr(s->request, "\r\n\r\n") == NULL) {
        ssize_t n = recv(fd, s->request + got, sizeof(s->request) - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        s->request[got] = '\0';
    }
    ssize_t n = 0;
    if (s->reply == NULL) {
        char c;
        n = recv(fd, &c, 1, 0); /* until the prober gives up */
    } else {
        size_t len = strlen(s->reply);
        size_t first = s->split > 0 && s->split < len ? s->split : len;
        n = send(fd, s->reply, first, MSG_NOSIGNAL);
        if (first < len) {
            struct timespec pause = {.tv_nsec = 50 * 1000000};
            nanosleep(&pause, NULL);
            n = send(fd, s->reply + first, len - first, MSG_NOSIGNAL);
        }
    }
    (void)n;
    close(fd);
    return NULL;
}

/* Listens and starts the thread; s->reply and s->split set by the caller. */
static void one_shot_start(one_shot *s)
{
    memset(&s->addr, 0, sizeof(s->addr));
    s->addr.sin_family = AF_INET;
    s->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->request[0] = '\0';
    s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->listen_fd >= 0);
    assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&s->addr, sizeof(s->addr)), 0);
    assert_int_equal(listen(s->listen_fd, 4), 0);
    socklen_t len = sizeof(s->addr);
    assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *)&s->addr, &len), 0);
    assert_int_equal(pthread_create(&s->thread, NULL, one_shot_main, s), 0);
}

/* Ends the thread (an accept still waiting is woken) and closes. */
static void one_shot_stop(one_shot *s)
{
    shutdown(s->listen_fd, SHUT_RDWR);
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
}

#endif
