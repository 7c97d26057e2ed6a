/* What the process runtime reads from /proc (see runtime_internal.h): a
 * process's stat line, and the world processes found by the identity in
 * their environment.
 *
 * Why the environment: the world controller records a world's pid in its
 * status only after the runtime has started the process. A Bindery that
 * stops in between leaves a running world that no status names; the
 * restarted Bindery would start the world a second time and the first
 * process would hold its ports for ever. The environment is set before the
 * process's first instruction, so it names the world from the start,
 * whatever the world program does. */
#include "runtime_internal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STAT_MAX 1024 /* /proc/PID/stat is a few hundred bytes */

void bdy__port_env_name(const char *port_name, char out[BDY__PORT_ENV_MAX])
{
    size_t len = (size_t)snprintf(out, BDY__PORT_ENV_MAX, "%s%s", BDY__PORT_ENV_PREFIX, port_name);
    if (len >= BDY__PORT_ENV_MAX)
        len = BDY__PORT_ENV_MAX - 1;
    for (size_t k = sizeof(BDY__PORT_ENV_PREFIX) - 1; k < len; k++) {
        unsigned char c = (unsigned char)out[k];
        out[k] = isalnum(c) && c < 0x80 ? (char)toupper(c) : '_';
    }
}

/* Copies the value of entry e (n bytes) into out when e is "<name>=value"
 * and the value fits; true when it was that variable. */
static bool take_value(const char *e, size_t n, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    if (n <= nl || memcmp(e, name, nl) != 0 || e[nl] != '=')
        return false;
    size_t vl = n - nl - 1;
    if (vl > 0 && vl < cap) {
        memcpy(out, e + nl + 1, vl);
        out[vl] = '\0';
    }
    return true;
}

static void take_port(const char *e, size_t n, bdy__stray *s)
{
    const char *eq = memchr(e, '=', n);
    size_t name_len = eq ? (size_t)(eq - e) : 0;
    if (eq == NULL || name_len <= sizeof(BDY__PORT_ENV_PREFIX) - 1 ||
        name_len >= BDY__PORT_ENV_MAX || s->nports == BDY_RUNTIME_MAX_PORTS)
        return;
    unsigned port = 0;
    size_t digits = n - name_len - 1;
    if (digits == 0 || digits > 5)
        return;
    for (size_t i = 0; i < digits; i++) {
        char c = eq[1 + i];
        if (c < '0' || c > '9')
            return;
        port = port * 10 + (unsigned)(c - '0');
    }
    if (port == 0 || port > 65535)
        return;
    memcpy(s->ports[s->nports].env, e, name_len);
    s->ports[s->nports].env[name_len] = '\0';
    s->ports[s->nports].port = port;
    s->nports++;
}

/* The value of BINDERY_RELAYS_TERM (n bytes): the process relays SIGTERM,
 * and runs that many children, none watched unless it is a number in
 * 1-BDY_RUNTIME_MAX_ARGS. */
static void take_children(const char *v, size_t n, bdy__stray *s)
{
    unsigned count = 0;
    size_t i = 0;
    for (; i < n && v[i] >= '0' && v[i] <= '9' && count <= BDY_RUNTIME_MAX_ARGS; i++)
        count = count * 10 + (unsigned)(v[i] - '0');
    s->relays_term = true;
    s->children = i == n && count <= BDY_RUNTIME_MAX_ARGS ? count : 0;
}

bool bdy__stray_parse_environ(const char *env, size_t len, bdy__stray *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t off = 0; off < len;) {
        const char *e = env + off;
        size_t n = strnlen(e, len - off);
        static const char relays[] = BDY__RELAYS_TERM_ENV "=";
        if (n > sizeof(relays) - 1 && memcmp(e, relays, sizeof(relays) - 1) == 0)
            take_children(e + sizeof(relays) - 1, n - (sizeof(relays) - 1), out);
        else if (!take_value(e, n, "BINDERY_WORLD_UID", out->uid, sizeof(out->uid)) &&
                 !take_value(e, n, "BINDERY_WORLD_NAMESPACE", out->ns, sizeof(out->ns)) &&
                 !take_value(e, n, "BINDERY_WORLD_NAME", out->name, sizeof(out->name)) &&
                 !take_value(e, n, "BINDERY_INSTANCE", out->instance, sizeof(out->instance)) &&
                 n >= sizeof(BDY__PORT_ENV_PREFIX) - 1 &&
                 memcmp(e, BDY__PORT_ENV_PREFIX, sizeof(BDY__PORT_ENV_PREFIX) - 1) == 0)
            take_port(e, n, out);
        off += n + 1;
    }
    return out->uid[0] != '\0' && out->ns[0] != '\0' && out->name[0] != '\0';
}

/* Reads up to cap bytes of file path under dirfd; -1 when it cannot. */
static ssize_t read_at(int dirfd, const char *path, char *buf, size_t cap)
{
    int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t got = 0;
    while (got < cap) {
        ssize_t n = read(fd, buf + got, cap - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n < 0)
                got = 0;
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    return (ssize_t)got;
}

void bdy__boot_id_read(char *out, size_t size)
{
    out[0] = '\0';
    char buf[64];
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    /* A UUID is 36 characters; anything that does not fit is not one. */
    if (strlen(buf) < size)
        snprintf(out, size, "%s", buf);
}

int bdy__proc_stat_read(int64_t pid, bdy__proc_stat *out)
{
    if (pid <= 0 || pid > INT_MAX)
        return BDY_ENOTFOUND;
    char path[64];
    char buf[STAT_MAX];
    snprintf(path, sizeof(path), "/proc/%lld/stat", (long long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? BDY_ENOTFOUND
               /* bindery short of descriptors or memory: nothing about pid */
               : errno == EMFILE || errno == ENFILE || errno == ENOMEM ? BDY_ENOMEM
                                                                       : BDY_EIO;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    int read_errno = errno;
    close(fd);
    if (n < 0)
        return read_errno == ESRCH ? BDY_ENOTFOUND : BDY_EIO;
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces and parentheses, so fields
     * are counted after the last ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return BDY_EPARSE;
    char *save = NULL;
    int field = 2;
    for (char *tok = strtok_r(p + 1, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save)) {
        field++;
        if (field == 3) {
            out->state = tok[0];
        } else if (field == 4) {
            out->ppid = strtoll(tok, NULL, 10);
        } else if (field == 5) {
            out->pgrp = strtoll(tok, NULL, 10);
        } else if (field == 20) {
            out->threads = strtoll(tok, NULL, 10);
        } else if (field == 22) {
            out->start_time = strtoull(tok, NULL, 10);
            return 0;
        }
    }
    return BDY_EPARSE;
}

/* Appends the pids listed in one children file (space-separated) to out,
 * at most max in all; read a block at a time, so a list of any length
 * needs no buffer of its size. */
static void read_children_file(int fd, int64_t *out, size_t max, size_t *n)
{
    char buf[4096];
    size_t len = 0; /* an unfinished number carried over from the last block */
    for (;;) {
        ssize_t got = read(fd, buf + len, sizeof(buf) - len);
        if (got < 0 && errno == EINTR)
            continue;
        bool end = got <= 0;
        len += end ? 0 : (size_t)got;
        size_t at = 0;
        for (;;) {
            while (at < len && (buf[at] < '0' || buf[at] > '9'))
                at++;
            size_t digits = at;
            while (digits < len && buf[digits] >= '0' && buf[digits] <= '9')
                digits++;
            if (at == len || (digits == len && !end) || *n >= max)
                break;
            int64_t pid = 0;
            for (size_t i = at; i < digits && pid < INT32_MAX; i++)
                pid = pid * 10 + (buf[i] - '0');
            out[(*n)++] = pid;
            at = digits;
        }
        if (end || *n >= max)
            return;
        memmove(buf, buf + at, len - at);
        len -= at;
        if (len == sizeof(buf)) /* no pid is that long */
            return;
    }
}

ssize_t bdy__children_of(int64_t parent, int64_t *out, size_t max)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%lld/task", (long long)parent);
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    size_t n = 0;
    bool any = false;
    for (struct dirent *de; n < max && (de = readdir(d)) != NULL;) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        char file[96];
        snprintf(file, sizeof(file), "%s/children", de->d_name);
        int fd = openat(dirfd(d), file, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        any = true;
        read_children_file(fd, out, max, &n);
        close(fd);
    }
    closedir(d);
    if (any)
        return (ssize_t)n;
    d = opendir("/proc");
    if (d == NULL)
        return -1;
    for (struct dirent *de; n < max && (de = readdir(d)) != NULL;) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        int64_t pid = strtoll(de->d_name, NULL, 10);
        bdy__proc_stat st;
        if (bdy__proc_stat_read(pid, &st) == 0 && st.ppid == parent)
            out[n++] = pid;
    }
    closedir(d);
    return (ssize_t)n;
}

static bool all_digits(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* Every process of this user but the caller whose environment names a
 * world: group leaders (group < 0) or the members of process group
 * `group`. */
static int procs_find(int64_t group, bdy__stray **out, size_t *count)
{
    int rc = 0;
    *out = NULL;
    *count = 0;
    char *env = malloc(BDY__ENVIRON_MAX);
    bdy__stray *s = NULL;
    DIR *proc = opendir("/proc");
    if (env == NULL) {
        rc = BDY_ENOMEM;
        goto out;
    }
    if (proc == NULL) {
        rc = BDY_EIO;
        goto out;
    }
    uid_t me = geteuid();
    pid_t self = getpid();
    for (struct dirent *de; (de = readdir(proc)) != NULL;) {
        if (!all_digits(de->d_name))
            continue;
        int64_t pid = strtoll(de->d_name, NULL, 10);
        struct stat sb;
        if (pid == self || fstatat(dirfd(proc), de->d_name, &sb, 0) != 0 || sb.st_uid != me)
            continue;
        bdy__proc_stat st;
        if (bdy__proc_stat_read(pid, &st) != 0 || bdy__proc_stat_ended(&st) ||
            st.pgrp != (group < 0 ? pid : group))
            continue;
        char path[64];
        snprintf(path, sizeof(path), "%s/environ", de->d_name);
        ssize_t n = read_at(dirfd(proc), path, env, BDY__ENVIRON_MAX);
        if (n <= 0)
            continue;
        if (s == NULL && (s = malloc(sizeof(*s))) == NULL) {
            rc = BDY_ENOMEM;
            goto out;
        }
        if (!bdy__stray_parse_environ(env, (size_t)n, s)) {
            if (group < 0)
                continue;
            /* A group member whose environment names no world (a helper
             * started with a clean one, or one that wrote over its own):
             * listed all the same, its identity empty. */
            memset(s, 0, sizeof(*s));
        }
        s->start_time = st.start_time;
        s->ppid = st.ppid;
        s->pid = pid;
        s->next = *out;
        *out = s;
        (*count)++;
        s = NULL;
    }
out:
    if (proc != NULL)
        closedir(proc);
    free(s);
    free(env);
    if (rc != 0) {
        bdy__strays_free(*out);
        *out = NULL;
        *count = 0;
    }
    return rc;
}

int bdy__proc_identity(int64_t pid, bdy__stray *out)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%lld/environ", (long long)pid);
    char *env = malloc(BDY__ENVIRON_MAX);
    if (env == NULL)
        return BDY_ENOMEM;
    ssize_t n = read_at(AT_FDCWD, path, env, BDY__ENVIRON_MAX);
    int rc = n > 0 && bdy__stray_parse_environ(env, (size_t)n, out) ? 0 : BDY_ENOTFOUND;
    free(env);
    return rc;
}

int bdy__strays_find(bdy__stray **out, size_t *count)
{
    return procs_find(-1, out, count);
}

int bdy__group_find(int64_t pgrp, bdy__stray **out, size_t *count)
{
    return procs_find(pgrp, out, count);
}

void bdy__strays_free(bdy__stray *list)
{
    while (list != NULL) {
        bdy__stray *next = list->next;
        free(list);
        list = next;
    }
}
