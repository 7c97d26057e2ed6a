/* World log retention for the process runtime: every world writes
 * log_dir/<ns>_<name>.log, and pool worlds get fresh names, so without a
 * sweep the folder gains a file per world ever started. A log of a world
 * that no longer runs is deleted once it has not been written for the
 * retention time; logs of running worlds are never touched, however old
 * their last line (a deleted open file would go on filling the disk,
 * unseen). The sweep runs on its own thread, once a minute, so a large
 * folder never holds up exit notices.
 *
 * A running world's log is capped instead: a chatty or looping world would
 * otherwise fill the disk it shares with the store, and every claim would
 * fail with it. Every few seconds a log past the cap loses its oldest part
 * down to half the cap; once a minute, so does the log of a world that no
 * longer runs but is still written (a process it left behind). */
#include "objmeta.h"
#include "runtime_internal.h"

#include "bindery/log.h"
#include "bindery/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOG_COMPONENT "runtime"
#define SWEEP_EVERY_MS 60000u
#define CAP_EVERY_MS 5000u
/* Without FALLOC_FL_COLLAPSE_RANGE (tmpfs, some filesystems) the kept part
 * is read and written back; at most this much of it. */
#define CAP_COPY_MAX ((uint64_t)4 << 20)

struct bdy__log_sweeper {
    char *dir;
    double retention_s;
    uint64_t max_bytes;
    bdy__logs_running_fn running;
    void *data;
    pthread_mutex_t lock; /* stopping */
    pthread_cond_t cond;
    bool stopping;
    pthread_t thread;
};

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whether name is shaped like a world's log, "<ns>_<name>.log" with a
 * Kubernetes namespace (a DNS label) and object name (a DNS subdomain):
 * lower-case letters, digits, '-' and, in the name, '.'. The sweep deletes
 * and the cap cuts only such files, so that a logDir shared with other
 * logs (bindery's own, /var/log) loses none of theirs: none of "bindery.log",
 * "dpkg.log" or "Xorg.0.log" is. */
static bool is_world_log(const char *file)
{
    char ns[320]; /* "<namespace>_<name>": at most 63 + 1 + 253 */
    size_t len = strlen(file);
    if (len <= 4 || len - 4 >= sizeof(ns) || strcmp(file + len - 4, ".log") != 0)
        return false;
    memcpy(ns, file, len - 4);
    ns[len - 4] = '\0';
    char *sep = strchr(ns, '_');
    if (sep == NULL)
        return false;
    *sep = '\0';
    return bdy__valid_dns_label(ns) && bdy__valid_dns_subdomain(sep + 1);
}

size_t bdy__logs_sweep(const char *dir, double retention_s, double now, char **running,
                       size_t nrunning, size_t max_deletes)
{
    qsort(running, nrunning, sizeof(*running), compare_names);
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    size_t deleted = 0;
    for (struct dirent *de; deleted < max_deletes && (de = readdir(d)) != NULL;) {
        if (!is_world_log(de->d_name))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        double written = (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec / 1e9;
        if (now - written < retention_s)
            continue;
        const char *key = de->d_name;
        if (bsearch(&key, running, nrunning, sizeof(*running), compare_names) != NULL)
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) == 0)
            deleted++;
        else if (errno != ENOENT)
            bdy_warn(LOG_COMPONENT, "cannot delete the old world log %s/%s: %s", dir, de->d_name,
                     strerror(errno));
    }
    closedir(d);
    return deleted;
}

/* Appends the note that says what was cut, on its own line. */
static void note_cut(int dirfd, const char *name, uint64_t dropped, uint64_t max_bytes)
{
    int fd = openat(dirfd, name, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return;
    char note[200];
    int n = snprintf(note, sizeof(note),
                     "\n[bindery] dropped the oldest %llu bytes of this log: it outgrew "
                     "runtime.logMaxMegabytes (%llu MiB)\n",
                     (unsigned long long)dropped, (unsigned long long)(max_bytes >> 20));
    if (n > 0 && write(fd, note, (size_t)n) < 0)
        bdy_debug(LOG_COMPONENT, "cannot note the cut in %s: %s", name, strerror(errno));
    close(fd);
}

/* Cuts one log past max_bytes down to about half of it; the bytes dropped,
 * 0 when it was within the cap or could not be cut. The world writes with
 * O_APPEND, so its next line lands at the new end either way. */
static uint64_t cut_log(int dirfd, const char *name, uint64_t max_bytes)
{
    int fd = openat(dirfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return 0;
    struct stat st;
    uint64_t dropped = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size <= max_bytes)
        goto out;
    uint64_t size = (uint64_t)st.st_size;
    uint64_t keep = max_bytes / 2;
    uint64_t block = st.st_blksize > 0 ? (uint64_t)st.st_blksize : 4096;
    uint64_t collapse = (size - keep) / block * block;
    if (collapse > 0 && fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, (off_t)collapse) == 0) {
        dropped = collapse;
        goto out;
    }
    /* Lines the world writes between the read and the truncate are lost,
     * and those between the truncate and the write-back land before the
     * kept part; and only the last CAP_COPY_MAX bytes are kept. */
    if (keep > CAP_COPY_MAX)
        keep = CAP_COPY_MAX;
    char *tail = malloc(keep ? keep : 1);
    ssize_t got = tail ? pread(fd, tail, keep, (off_t)(size - keep)) : -1;
    /* Written back through this descriptor, appending from now on: no
     * second open can fail between the truncate and the write-back. */
    if (got >= 0 && fcntl(fd, F_SETFL, O_APPEND) == 0 && ftruncate(fd, 0) == 0) {
        ssize_t put = write(fd, tail, (size_t)got);
        if (put < 0) {
            bdy_warn(LOG_COMPONENT, "cannot keep the end of world log %s: %s", name,
                     strerror(errno));
            put = 0;
        }
        dropped = size - (uint64_t)put;
    }
    free(tail);
out:
    close(fd);
    if (dropped > 0)
        note_cut(dirfd, name, dropped, max_bytes);
    return dropped;
}

size_t bdy__logs_cap(const char *dir, char **running, size_t nrunning, uint64_t max_bytes)
{
    if (max_bytes == 0)
        return 0;
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return 0;
    size_t cut = 0;
    for (size_t i = 0; i < nrunning; i++) {
        struct stat st;
        if (fstatat(dirfd, running[i], &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
            (uint64_t)st.st_size <= max_bytes)
            continue;
        uint64_t dropped = cut_log(dirfd, running[i], max_bytes);
        if (dropped > 0) {
            cut++;
            bdy_warn(LOG_COMPONENT,
                     "world log %s/%s outgrew runtime.logMaxMegabytes (%llu MiB): dropped its "
                     "oldest %llu bytes",
                     dir, running[i], (unsigned long long)(max_bytes >> 20),
                     (unsigned long long)dropped);
        }
    }
    close(dirfd);
    return cut;
}

size_t bdy__logs_cap_written(const char *dir, char **running, size_t nrunning, uint64_t max_bytes,
                             double now, double within_s)
{
    if (max_bytes == 0)
        return 0;
    qsort(running, nrunning, sizeof(*running), compare_names);
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    size_t cut = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        struct stat st;
        if (!is_world_log(de->d_name) ||
            fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
            (uint64_t)st.st_size <= max_bytes)
            continue;
        double written = (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec / 1e9;
        const char *key = de->d_name;
        if (now - written > within_s ||
            bsearch(&key, running, nrunning, sizeof(*running), compare_names) != NULL)
            continue;
        uint64_t dropped = cut_log(dirfd(d), de->d_name, max_bytes);
        if (dropped > 0) {
            cut++;
            bdy_warn(LOG_COMPONENT,
                     "log %s/%s of a world that no longer runs is still written (a process it "
                     "left behind?) and outgrew runtime.logMaxMegabytes: dropped its oldest %llu "
                     "bytes",
                     dir, de->d_name, (unsigned long long)dropped);
        }
    }
    closedir(d);
    return cut;
}

static void *sweeper_main(void *arg)
{
    bdy__log_sweeper *s = arg;
    bdy_thread_start("bdy-log-sweep", true);
    pthread_mutex_lock(&s->lock);
    for (unsigned round = 1; !s->stopping; round++) {
        struct timespec deadline;
        bdy_deadline_after_ms(CLOCK_MONOTONIC, CAP_EVERY_MS, &deadline);
        while (!s->stopping && pthread_cond_timedwait(&s->cond, &s->lock, &deadline) != ETIMEDOUT)
            ;
        if (s->stopping)
            break;
        bool minute = round % (SWEEP_EVERY_MS / CAP_EVERY_MS) == 0;
        bool sweep = s->retention_s > 0 && minute;
        if (s->max_bytes == 0 && !sweep)
            continue;
        pthread_mutex_unlock(&s->lock);
        char **running = NULL;
        size_t nrunning = 0;
        if (s->running(s->data, &running, &nrunning) == 0) {
            bdy__logs_cap(s->dir, running, nrunning, s->max_bytes);
            if (minute)
                bdy__logs_cap_written(s->dir, running, nrunning, s->max_bytes, bdy_wall_seconds(),
                                      2.0 * SWEEP_EVERY_MS / 1000);
            size_t n = sweep ? bdy__logs_sweep(s->dir, s->retention_s, bdy_wall_seconds(), running,
                                               nrunning, BDY__LOG_SWEEP_MAX)
                             : 0;
            if (n > 0)
                bdy_info(LOG_COMPONENT, "deleted %zu logs of worlds gone for over %.0f h", n,
                         s->retention_s / 3600);
        }
        for (size_t i = 0; i < nrunning; i++)
            free(running[i]);
        free(running);
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int bdy__log_sweeper_start(const char *dir, double retention_s, uint64_t max_bytes,
                           bdy__logs_running_fn running, void *data, bdy__log_sweeper **out,
                           bdy_errbuf *eb)
{
    *out = NULL;
    if (retention_s <= 0 && max_bytes == 0)
        return 0;
    bdy__log_sweeper *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->dir = strdup(dir)) == NULL) {
        free(s);
        return bdy_fail(eb, BDY_ENOMEM, "out of memory");
    }
    s->retention_s = retention_s;
    s->max_bytes = max_bytes;
    s->running = running;
    s->data = data;
    pthread_mutex_init(&s->lock, NULL);
    bdy_cond_init_monotonic(&s->cond);
    int err = pthread_create(&s->thread, NULL, sweeper_main, s);
    if (err != 0) {
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->lock);
        free(s->dir);
        free(s);
        return bdy_fail(eb, BDY_EIO, "process runtime: cannot start the log sweeper: %s",
                        strerror(err));
    }
    *out = s;
    return 0;
}

void bdy__log_sweeper_stop(bdy__log_sweeper *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s->dir);
    free(s);
}
