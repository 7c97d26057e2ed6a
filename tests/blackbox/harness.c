#include "harness.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BB_MAX_BODY (16u * 1024u * 1024u)
#define BB_MAX_LIVE 16

/* What every server this process started left behind, by value, so a test
 * that fails half-way (cmocka jumps out of it) is still cleaned up by the
 * group teardown: see bb_cleanup_all(). */
static struct {
    char dir[64];
    pid_t pid;
} live[BB_MAX_LIVE];

static void live_set(const bb_server *s)
{
    int free_slot = -1;
    for (int i = 0; i < BB_MAX_LIVE; i++) {
        if (strcmp(live[i].dir, s->dir) == 0) {
            live[i].pid = s->pid;
            return;
        }
        if (live[i].dir[0] == '\0' && free_slot < 0)
            free_slot = i;
    }
    if (free_slot >= 0) {
        snprintf(live[free_slot].dir, sizeof(live[free_slot].dir), "%s", s->dir);
        live[free_slot].pid = s->pid;
    }
}

static void live_drop(const char *dir)
{
    for (int i = 0; i < BB_MAX_LIVE; i++) {
        if (strcmp(live[i].dir, dir) == 0)
            live[i].dir[0] = '\0';
    }
}

static void die(const char *what)
{
    fprintf(stderr, "harness: %s: %s\n", what, strerror(errno));
    exit(2);
}

static const char *bindery_bin(void)
{
    const char *bin = getenv("BINDERY_BIN");
    if (bin == NULL || bin[0] == '\0') {
        fprintf(stderr, "harness: BINDERY_BIN is not set\n");
        exit(2);
    }
    return bin;
}

/* Binds port 0 to let the kernel pick a free port, then releases it. */
static unsigned free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        die("free port");
    close(fd);
    return ntohs(a.sin_port);
}

void bb_write(bb_server *s, const char *relpath, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", s->dir, relpath);
    char *slash = strrchr(path, '/');
    if (slash != NULL && slash > path + strlen(s->dir)) {
        *slash = '\0';
        mkdir(path, 0755);
        *slash = '/';
    }
    FILE *f = fopen(path, "w");
    if (f == NULL)
        die(path);
    fputs(text, f);
    fclose(f);
}

void bb_init(bb_server *s, const char *config_text)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "/tmp/bdy-bb-XXXXXX");
    if (mkdtemp(s->dir) == NULL)
        die("mkdtemp");
    snprintf(s->config, sizeof(s->config), "%s/bindery.yaml", s->dir);
    snprintf(s->data, sizeof(s->data), "%s/data", s->dir);
    snprintf(s->log, sizeof(s->log), "%s/bindery.log", s->dir);
    bb_write(s, "bindery.yaml", config_text);
    live_set(s);
    static bool curl_ready = false;
    if (!curl_ready) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        curl_ready = true;
    }
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool exited(bb_server *s)
{
    int st = 0;
    if (s->pid == 0)
        return true;
    pid_t r = waitpid(s->pid, &st, WNOHANG);
    if (r == s->pid) {
        s->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        s->pid = 0;
        live_set(s);
        return true;
    }
    return false;
}

static bool start_once(bb_server *s, const char *const *extra_args);

/* The port free_port() found can be taken by another process's outgoing
 * connection before bindery binds it: a start that failed so is retried on
 * a new port (the log says "Address already in use"). */
bool bb_start(bb_server *s, const char *const *extra_args)
{
    for (int attempt = 0;; attempt++) {
        int in_use_before = bb_log_count(s, "Address already in use");
        if (start_once(s, extra_args))
            return true;
        if (attempt == 2 || s->pid != 0 ||
            bb_log_count(s, "Address already in use") == in_use_before)
            return false;
    }
}

static bool start_once(bb_server *s, const char *const *extra_args)
{
    s->port = free_port();
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", s->port);
    const char *argv[32];
    int n = 0;
    argv[n++] = bindery_bin();
    argv[n++] = "serve";
    argv[n++] = "--config";
    argv[n++] = s->config;
    argv[n++] = "--listen";
    argv[n++] = listen;
    argv[n++] = "--data";
    argv[n++] = s->data;
    for (int i = 0; extra_args != NULL && extra_args[i] != NULL && n < 31; i++)
        argv[n++] = extra_args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            dup2(fd, STDOUT_FILENO);
            close(fd);
        }
        if (s->nofile != 0) {
            struct rlimit rl = {.rlim_cur = s->nofile, .rlim_max = s->nofile};
            if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
                _exit(126);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
    live_set(s);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    time_t deadline = now.tv_sec + 15; /* each /readyz may itself take seconds */
    for (int i = 0; i < 300; i++) {
        if (exited(s))
            return false;
        bb_response r = bb_request(s, "GET", "/readyz", NULL, NULL);
        long status = r.status;
        bb_response_free(&r);
        if (status == 200)
            return true;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec >= deadline)
            break;
        sleep_ms(50);
    }
    return false;
}

int bb_run(bb_server *s, const char *const *args, const char *stdin_text, char **output)
{
    char out_path[160];
    char in_path[160];
    snprintf(out_path, sizeof(out_path), "%s/run.out", s->dir);
    snprintf(in_path, sizeof(in_path), "%s/run.in", s->dir);
    bb_write(s, "run.in", stdin_text ? stdin_text : "");
    const char *argv[32];
    int n = 0;
    argv[n++] = bindery_bin();
    for (int i = 0; args[i] != NULL && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int in = open(in_path, O_RDONLY);
        if (fd >= 0 && in >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            dup2(in, STDIN_FILENO);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    for (int i = 0; i < 600; i++) { /* 30 s */
        if (waitpid(pid, &st, WNOHANG) == pid)
            break;
        if (i == 599) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
        }
        sleep_ms(50);
    }
    FILE *f = fopen(out_path, "r");
    *output = calloc(1, 65536);
    if (f != NULL && *output != NULL) {
        size_t got = fread(*output, 1, 65535, f);
        (*output)[got] = '\0';
    }
    if (f != NULL)
        fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

typedef struct sink {
    char *data;
    size_t len;
} sink;

static size_t sink_cb(char *ptr, size_t size, size_t n, void *userdata)
{
    sink *k = userdata;
    size_t add = size * n;
    if (k->len + add > BB_MAX_BODY)
        return 0;
    char *p = realloc(k->data, k->len + add + 1);
    if (p == NULL)
        return 0;
    memcpy(p + k->len, ptr, add);
    k->data = p;
    k->len += add;
    p[k->len] = '\0';
    return add;
}

bb_response bb_request(bb_server *s, const char *method, const char *path, const char *body,
                       const char *const *headers)
{
    bb_response r = {0};
    sink b = {calloc(1, 1), 0};
    sink h = {calloc(1, 1), 0};
    CURL *c = curl_easy_init();
    char url[512];
    bool tls = s->tls_ca[0] != '\0';
    snprintf(url, sizeof(url), "%s://127.0.0.1:%u%s", tls ? "https" : "http", s->port, path);
    struct curl_slist *hl = NULL;
    for (int i = 0; headers != NULL && headers[i] != NULL; i++)
        hl = curl_slist_append(hl, headers[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, sink_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    if (tls)
        curl_easy_setopt(c, CURLOPT_CAINFO, s->tls_ca);
    if (tls && s->tls_cert[0] != '\0' && s->tls_key[0] != '\0') {
        curl_easy_setopt(c, CURLOPT_SSLCERT, s->tls_cert);
        curl_easy_setopt(c, CURLOPT_SSLKEY, s->tls_key);
    }
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    r.body = b.data;
    r.headers = h.data;
    return r;
}

void bb_response_free(bb_response *r)
{
    free(r->body);
    free(r->headers);
    r->body = NULL;
    r->headers = NULL;
}

void bb_signal(bb_server *s, int sig)
{
    if (s->pid > 0)
        kill(s->pid, sig);
}

bool bb_wait_exit(bb_server *s, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        if (exited(s))
            return true;
        sleep_ms(20);
    }
    return false;
}

#define LOG_TAIL_LINES 60
void bb_print_log_tail(bb_server *s, const char *why)
{
    FILE *f = fopen(s->log, "r");
    if (f == NULL)
        return;
    static char ring[LOG_TAIL_LINES][1024];
    size_t n = 0;
    while (fgets(ring[n % LOG_TAIL_LINES], sizeof(ring[0]), f) != NULL)
        n++;
    fclose(f);
    fprintf(stderr, "bb: %s; the last lines of %s:\n", why, s->log);
    for (size_t i = n > LOG_TAIL_LINES ? n - LOG_TAIL_LINES : 0; i < n; i++)
        fputs(ring[i % LOG_TAIL_LINES], stderr);
}

/* Whether file path holds a line with text, polling up to timeout_ms. */
static bool file_contains(const char *path, const char *text, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            char line[8192];
            while (fgets(line, sizeof(line), f) != NULL) {
                if (strstr(line, text) != NULL) {
                    fclose(f);
                    return true;
                }
            }
            fclose(f);
        }
        sleep_ms(50);
    }
    return false;
}

bool bb_log_contains(bb_server *s, const char *text, int timeout_ms)
{
    if (file_contains(s->log, text, timeout_ms))
        return true;
    if (timeout_ms > 0) { /* a wait, not a check that a line is absent */
        char why[300];
        snprintf(why, sizeof(why), "\"%.200s\" not logged within %d ms", text, timeout_ms);
        bb_print_log_tail(s, why);
    }
    return false;
}

bool bb_file_contains(bb_server *s, const char *rel, const char *text, int timeout_ms)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", s->dir, rel);
    return file_contains(path, text, timeout_ms);
}

int bb_log_count(bb_server *s, const char *text)
{
    int n = 0;
    FILE *f = fopen(s->log, "r");
    if (f == NULL)
        return 0;
    char line[8192];
    while (fgets(line, sizeof(line), f) != NULL)
        n += strstr(line, text) != NULL;
    fclose(f);
    return n;
}

/* World processes outlive bindery by design, so the harness stops the ones
 * this server started itself: every process whose working folder is the
 * server's folder (the test configs run worlds there). */
static void kill_worlds(const char *dir)
{
    DIR *proc = opendir("/proc");
    struct dirent *de;
    while (proc != NULL && (de = readdir(proc)) != NULL) {
        char *end = NULL;
        long pid = strtol(de->d_name, &end, 10);
        if (end == de->d_name || *end != '\0' || pid <= 1 || pid == (long)getpid())
            continue;
        char link[64];
        char cwd[256];
        snprintf(link, sizeof(link), "/proc/%ld/cwd", pid);
        ssize_t n = readlink(link, cwd, sizeof(cwd) - 1);
        if (n <= 0)
            continue;
        cwd[n] = '\0';
        if (strcmp(cwd, dir) == 0)
            kill((pid_t)pid, SIGKILL);
    }
    if (proc != NULL)
        closedir(proc);
}

void bb_cleanup(bb_server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        if (!bb_wait_exit(s, 10000)) {
            kill(s->pid, SIGKILL);
            bb_wait_exit(s, 5000);
        }
    }
    if (s->dir[0] != '\0') {
        kill_worlds(s->dir);
        live_drop(s->dir);
    }
    if (s->dir[0] != '\0') {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "harness: could not remove %s\n", s->dir);
    }
}

void bb_cleanup_all(void)
{
    for (int i = 0; i < BB_MAX_LIVE; i++) {
        if (live[i].dir[0] == '\0')
            continue;
        if (live[i].pid > 0) {
            kill(live[i].pid, SIGKILL);
            waitpid(live[i].pid, NULL, 0);
        }
        kill_worlds(live[i].dir);
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", live[i].dir);
        if (system(cmd) != 0)
            fprintf(stderr, "harness: could not remove %s\n", live[i].dir);
        live[i].dir[0] = '\0';
    }
}

int bb_teardown(void **state)
{
    (void)state;
    bb_cleanup_all();
    return 0;
}
