/* World log retention for the process runtime: every world writes
 * log_dir/<ns>_<name>.log, and pool worlds get fresh names, so without a
 * sweep the folder gains a file per world ever started. A log of a world
 * that no longer runs is deleted once it has not been written for the
 * retention time; logs of running worlds are never touched, however old
 * their last line (a deleted open file would go on filling the disk,
 * unseen). The sweep runs on its own thread, once a minute, so a large
 * folder never holds up exit notices. */
#include "runtime_internal.h"

#include "bindery/log.h"
#include "bindery/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOG_COMPONENT "runtime"
#define SWEEP_EVERY_MS 60000u

struct bdy__log_sweeper {
    char *dir;
    double retention_s;
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

static bool ends_with_log(const char *name)
{
    size_t len = strlen(name);
    return len > 4 && strcmp(name + len - 4, ".log") == 0;
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
        if (!ends_with_log(de->d_name))
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

static void *sweeper_main(void *arg)
{
    bdy__log_sweeper *s = arg;
    bdy_thread_start("bdy-log-sweep", true);
    pthread_mutex_lock(&s->lock);
    while (!s->stopping) {
        struct timespec deadline;
        bdy_deadline_after_ms(CLOCK_MONOTONIC, SWEEP_EVERY_MS, &deadline);
        while (!s->stopping && pthread_cond_timedwait(&s->cond, &s->lock, &deadline) != ETIMEDOUT)
            ;
        if (s->stopping)
            break;
        pthread_mutex_unlock(&s->lock);
        char **running = NULL;
        size_t nrunning = 0;
        if (s->running(s->data, &running, &nrunning) == 0) {
            size_t n = bdy__logs_sweep(s->dir, s->retention_s, bdy_wall_seconds(), running,
                                       nrunning, BDY__LOG_SWEEP_MAX);
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

int bdy__log_sweeper_start(const char *dir, double retention_s, bdy__logs_running_fn running,
                           void *data, bdy__log_sweeper **out, bdy_errbuf *eb)
{
    *out = NULL;
    if (retention_s <= 0)
        return 0;
    bdy__log_sweeper *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->dir = strdup(dir)) == NULL) {
        free(s);
        return bdy_fail(eb, BDY_ENOMEM, "out of memory");
    }
    s->retention_s = retention_s;
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
