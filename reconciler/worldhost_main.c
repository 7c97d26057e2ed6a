/* bindery-world-host: runs the modules of one booklet world (worldspec.h)
 * as one world for the process runtime.
 *
 * The runtime starts it as the world's process, leading the world's
 * process group, with the world's environment (BINDERY_WORLD_*, and
 * BINDERY_PORT_<NAME> for every port of the world); each argument is one
 * module instance to run (bdy_host_module_parse). It starts them all as its
 * children, in its process group, and then:
 *
 * - When a module exits, the world is over: the host sends SIGTERM to its
 *   process group (the other modules and every helper), SIGKILL to the
 *   modules still there after their grace period, and exits with the
 *   status of the module that ended first (its exit code, or 128 + signal).
 * - On SIGTERM or SIGINT (the runtime stopping the world sends it to the
 *   host alone: bdy_world_spec.relays_term) it does the same and exits 0
 *   once every module has.
 *
 * Lines about what it does go to stderr, which is the world's log. Single
 * threaded: signals are taken with sigtimedwait, never by handlers.
 */
#include "bindery/worldspec.h"
#include "runtime_internal.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROGRAM "bindery-world-host"
#define EXIT_USAGE 2
#define EXIT_CANNOT_RUN BDY_WORLD_HOST_CANNOT_RUN

extern char **environ;

typedef struct module_proc {
    bdy_host_module m;
    pid_t pid; /* 0 once reaped */
} module_proc;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROGRAM ": ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static const char *env_or_empty(const char *name)
{
    const char *v = getenv(name);
    return v ? v : "";
}

/* A world port's host port, from the world's environment. */
static int world_port(const char *name, size_t len, unsigned *port)
{
    char copy[sizeof(((bdy_port *)0)->name)];
    if (len == 0 || len >= sizeof(copy))
        return BDY_ENOTFOUND;
    memcpy(copy, name, len);
    copy[len] = '\0';
    char var[BDY__PORT_ENV_MAX];
    bdy__port_env_name(copy, var);
    const char *v = getenv(var);
    char *end = NULL;
    unsigned long n = v ? strtoul(v, &end, 10) : 0;
    if (v == NULL || *end != '\0' || n < 1 || n > 65535)
        return BDY_ENOTFOUND;
    *port = (unsigned)n;
    return 0;
}

/* {port:NAME} of a module: its own port NAME first, else the world's. */
static int module_port(void *data, const char *name, size_t len, unsigned *port)
{
    const bdy_host_module *m = data;
    for (size_t i = 0; i < m->nports; i++)
        if (strlen(m->port_names[i]) == len && memcmp(m->port_names[i], name, len) == 0)
            return world_port(m->port_worlds[i], strlen(m->port_worlds[i]), port);
    return world_port(name, len, port);
}

/* Sets the variable that entry ("NAME=value") of the host's environment is. */
static int env_put_entry(bdy__env *env, const char *entry)
{
    const char *eq = strchr(entry, '=');
    if (eq == NULL)
        return 0;
    char *name = strndup(entry, (size_t)(eq - entry));
    if (name == NULL)
        return BDY_ENOMEM;
    int rc = bdy__env_set(env, name, eq + 1);
    free(name);
    return rc;
}

static bool is_bindery_own(const char *entry)
{
    static const char *const own[] = {
        "BINDERY_WORLD_UID=", "BINDERY_WORLD_NAME=", "BINDERY_WORLD_NAMESPACE=",
        "BINDERY_INSTANCE=", BDY__PORT_ENV_PREFIX};
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
        if (strncmp(entry, own[i], strlen(own[i])) == 0)
            return true;
    return false;
}

/* The module's environment, as the runtime builds a world's: the host's
 * (the world's, less the relay mark), the module's own variables with their
 * placeholders replaced, then Bindery's, which a module cannot override:
 * the world's identity and ports, BINDERY_PORT_<NAME> for the module's own
 * ports under their manifest names, BINDERY_MODULE and
 * BINDERY_MODULE_INDEX. */
static int module_env(const bdy_host_module *m, bdy__env *env, bdy_errbuf *eb)
{
    static const char relays[] = BDY__RELAYS_TERM_ENV "=";
    int rc = 0;
    for (char **e = environ; *e != NULL && rc == 0; e++)
        if (strncmp(*e, relays, sizeof(relays) - 1) != 0)
            rc = env_put_entry(env, *e);
    const char *ns = env_or_empty("BINDERY_WORLD_NAMESPACE");
    const char *name = env_or_empty("BINDERY_WORLD_NAME");
    for (size_t i = 0; i < m->nenv && rc == 0; i++) {
        char *value = NULL;
        rc = bdy__expand(m->env_values[i], ns, name, module_port, (void *)m, &value, eb);
        if (rc != 0)
            return rc;
        rc = bdy__env_set(env, m->env_names[i], value);
        free(value);
    }
    for (char **e = environ; *e != NULL && rc == 0; e++)
        if (is_bindery_own(*e))
            rc = env_put_entry(env, *e);
    for (size_t i = 0; i < m->nports && rc == 0; i++) {
        unsigned port = 0;
        if (world_port(m->port_worlds[i], strlen(m->port_worlds[i]), &port) != 0)
            return bdy_fail(eb, BDY_EINVAL, "the world has no port %s", m->port_worlds[i]);
        char var[BDY__PORT_ENV_MAX];
        char num[16];
        bdy__port_env_name(m->port_names[i], var);
        snprintf(num, sizeof(num), "%u", port);
        rc = bdy__env_set(env, var, num);
    }
    char index[16];
    snprintf(index, sizeof(index), "%u", m->index);
    if (rc == 0)
        rc = bdy__env_set(env, "BINDERY_MODULE", m->module);
    if (rc == 0)
        rc = bdy__env_set(env, "BINDERY_MODULE_INDEX", index);
    if (rc != 0 && eb->message[0] == '\0')
        rc = bdy_fail(eb, rc, "cannot build the environment");
    return rc;
}

/* argv of the module: its command, then its args with placeholders
 * replaced; NULL-terminated, the caller frees the strings. */
static int module_argv(const bdy_host_module *m, char **argv, bdy_errbuf *eb)
{
    const char *ns = env_or_empty("BINDERY_WORLD_NAMESPACE");
    const char *name = env_or_empty("BINDERY_WORLD_NAME");
    argv[0] = strdup(m->command);
    if (argv[0] == NULL)
        return bdy_fail(eb, BDY_ENOMEM, "out of memory");
    for (size_t i = 0; i < m->nargs; i++) {
        int rc = bdy__expand(m->args[i], ns, name, module_port, (void *)m, &argv[i + 1], eb);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Forks and runs one module; its pid in mp->pid. The child gets the
 * signal mask the host had before it blocked the signals it waits for. */
static int start_module(module_proc *mp, const sigset_t *child_mask, bdy_errbuf *eb)
{
    char *argv[BDY_RUNTIME_MAX_ARGS + 2] = {NULL};
    bdy__env env = {.max = 0};
    int rc = module_argv(&mp->m, argv, eb);
    if (rc == 0)
        rc = module_env(&mp->m, &env, eb);
    if (rc != 0)
        goto out;
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        rc = bdy_fail(eb, BDY_EIO, "fork: %s", strerror(errno));
        goto out;
    }
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, child_mask, NULL);
        if (mp->m.working_dir != NULL && chdir(mp->m.working_dir) != 0) {
            say("module %s[%u]: cannot enter %s: %s", mp->m.module, mp->m.index, mp->m.working_dir,
                strerror(errno));
            _exit(EXIT_CANNOT_RUN);
        }
        environ = bdy__env_vars(&env);
        execvp(argv[0], argv);
        say("module %s[%u]: cannot run %s: %s", mp->m.module, mp->m.index, argv[0],
            strerror(errno));
        _exit(EXIT_CANNOT_RUN);
    }
    mp->pid = pid;
    say("module %s[%u] started: pid %d, command %s", mp->m.module, mp->m.index, (int)pid, argv[0]);
out:
    for (size_t i = 0; i < BDY_RUNTIME_MAX_ARGS + 2; i++)
        free(argv[i]);
    bdy__env_free(&env);
    return rc;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* SIGTERM to the whole process group (every module and its helpers; the
 * host, which has it blocked, takes its own copy as a repeat), and the
 * deadline after which the modules left get SIGKILL. */
static double stop_all(const module_proc *mods, size_t n)
{
    unsigned grace_ms = 0;
    for (size_t i = 0; i < n; i++)
        if (mods[i].pid > 0 && mods[i].m.grace_ms > grace_ms)
            grace_ms = mods[i].m.grace_ms;
    kill(0, SIGTERM);
    return now_s() + grace_ms / 1000.0;
}

static int status_code(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: " PROGRAM " MODULE...\n"
                        "Runs the modules of one booklet world; bindery starts it.\n");
        return EXIT_USAGE;
    }
    size_t n = (size_t)argc - 1;
    if (n > BDY_WORLDSPEC_MAX_INSTANCES) {
        say("%zu modules; at most %d", n, BDY_WORLDSPEC_MAX_INSTANCES);
        return EXIT_USAGE;
    }
    module_proc *mods = calloc(n, sizeof(*mods));
    if (mods == NULL) {
        say("out of memory");
        return EXIT_CANNOT_RUN;
    }
    int exit_code = 0;
    for (size_t i = 0; i < n; i++) {
        bdy_errbuf eb;
        bdy_errbuf_clear(&eb);
        if (bdy_host_module_parse(argv[i + 1], strlen(argv[i + 1]), &mods[i].m, &eb) != 0) {
            say("argument %zu: %s", i + 1, eb.message);
            exit_code = EXIT_USAGE;
            goto out;
        }
    }
    /* Started by hand it may share a shell's process group, which its
     * SIGTERM to the group must not reach; bindery starts it leading one. */
    if (getpgrp() != getpid() && setpgid(0, 0) != 0) {
        say("cannot lead a process group: %s", strerror(errno));
        exit_code = EXIT_CANNOT_RUN;
        goto out;
    }
    sigset_t waited;
    sigset_t before;
    sigemptyset(&waited);
    sigaddset(&waited, SIGTERM);
    sigaddset(&waited, SIGINT);
    sigaddset(&waited, SIGCHLD);
    sigprocmask(SIG_BLOCK, &waited, &before);

    bool stopping = false;
    bool requested = false; /* a stop asked for by a signal, not a module's end */
    double kill_at = 0;     /* 0: no SIGKILL deadline */
    size_t running = 0;
    for (size_t i = 0; i < n && !stopping; i++) {
        bdy_errbuf eb;
        bdy_errbuf_clear(&eb);
        if (start_module(&mods[i], &before, &eb) != 0) {
            say("module %s[%u]: %s; stopping the world", mods[i].m.module, mods[i].m.index,
                eb.message);
            exit_code = EXIT_CANNOT_RUN;
            stopping = true;
            kill_at = stop_all(mods, n);
            break;
        }
        running++;
    }
    while (running > 0) {
        siginfo_t info;
        struct timespec wait = {0, 0};
        struct timespec *timeout = NULL;
        if (kill_at > 0) {
            double left = kill_at - now_s();
            if (left > 0) {
                wait.tv_sec = (time_t)left;
                wait.tv_nsec = (long)((left - (double)wait.tv_sec) * 1e9);
            }
            timeout = &wait;
        }
        int sig = sigtimedwait(&waited, &info, timeout);
        if (sig < 0 && errno == EAGAIN) {
            for (size_t i = 0; i < n; i++)
                if (mods[i].pid > 0) {
                    say("module %s[%u] (pid %d) outlived its grace period: SIGKILL",
                        mods[i].m.module, mods[i].m.index, (int)mods[i].pid);
                    kill(mods[i].pid, SIGKILL);
                }
            kill_at = 0;
            continue;
        }
        if (sig == SIGTERM || sig == SIGINT) {
            if (!stopping) {
                say("%s: stopping every module", sig == SIGTERM ? "SIGTERM" : "SIGINT");
                stopping = true;
                requested = true;
                kill_at = stop_all(mods, n);
            }
            continue;
        }
        if (sig != SIGCHLD)
            continue;
        int status = 0;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            for (size_t i = 0; i < n; i++) {
                if (mods[i].pid != pid)
                    continue;
                mods[i].pid = 0;
                running--;
                int code = status_code(status);
                if (!stopping) {
                    say("module %s[%u] (pid %d) exited with status %d; stopping the world",
                        mods[i].m.module, mods[i].m.index, (int)pid, code);
                    exit_code = code;
                    stopping = true;
                    kill_at = stop_all(mods, n);
                } else {
                    say("module %s[%u] (pid %d) exited with status %d", mods[i].m.module,
                        mods[i].m.index, (int)pid, code);
                }
            }
        }
    }
    if (requested)
        exit_code = 0;
out:
    for (size_t i = 0; i < n; i++)
        bdy_host_module_free(&mods[i].m);
    free(mods);
    return exit_code;
}
