/* Black-box helpers for the bindery-load-test tests: runs the tool
 * ($LOADTEST_BIN) with a deadline and captures what it prints. */
#ifndef BINDERY_TESTS_LOADTOOL_H
#define BINDERY_TESTS_LOADTOOL_H

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LT_OUTPUT_MAX 262144

typedef struct lt_result {
    int code;    /* exit code, 128+signal, or -1 when the deadline killed it */
    char *out;   /* stdout, owned */
    char *err;   /* stderr, owned */
    double secs; /* how long it ran */
} lt_result;

static inline char *lt_slurp(const char *path)
{
    char *buf = calloc(1, LT_OUTPUT_MAX + 1);
    FILE *f = fopen(path, "r");
    if (f != NULL && buf != NULL) {
        size_t n = fread(buf, 1, LT_OUTPUT_MAX, f);
        buf[n] = '\0';
    }
    if (f != NULL)
        fclose(f);
    return buf;
}

/* Runs the tool with args (NULL-terminated) and kills it after deadline_s:
 * a tool that hangs fails the test instead of the suite. */
static inline lt_result lt_run(const char *workdir, const char *const *args, int deadline_s)
{
    lt_result r = {0};
    const char *bin = getenv("LOADTEST_BIN");
    if (bin == NULL || bin[0] == '\0') {
        fprintf(stderr, "LOADTEST_BIN is not set\n");
        exit(2);
    }
    char out_path[256];
    char err_path[256];
    snprintf(out_path, sizeof(out_path), "%s/lt.out", workdir);
    snprintf(err_path, sizeof(err_path), "%s/lt.err", workdir);
    const char *argv[64];
    int n = 0;
    argv[n++] = bin;
    for (int i = 0; args[i] != NULL && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    struct timespec t0;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid == 0) {
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0)
            _exit(126);
        dup2(o, STDOUT_FILENO);
        dup2(e, STDERR_FILENO);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    bool killed = false;
    for (int i = 0;; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            break;
        if (i >= deadline_s * 20) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            killed = true;
            break;
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    r.secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    r.code = killed ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r.out = lt_slurp(out_path);
    r.err = lt_slurp(err_path);
    return r;
}

static inline void lt_result_free(lt_result *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

#endif
