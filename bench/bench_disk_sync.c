/* The disk's own durable-write latency: what no durable claim can beat.
 * Overwrites 4 KB blocks of a preallocated file and fdatasyncs each, paced
 * like claims at a fixed rate, and prints the latency percentiles. A claim
 * is answered after its ledger commit, which is at least one such write and
 * sync (SQLite's WAL frames, then fdatasync), so these are the floor under
 * the warm claim latency that bench/run measures in the same run.
 *
 *   bench_disk_sync [--dir DIR] [--count N] [--rate R]
 * Defaults: the current directory, 2,000 writes, 1,000/s. Prints one JSON
 * object: {"count":N,"p50_ms":..,"p90_ms":..,"p99_ms":..}. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096
#define MAX_COUNT 100000

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double percentile(const double *sorted, int n, double q)
{
    int i = (int)(q * (double)n);
    return sorted[i < n ? i : n - 1];
}

int main(int argc, char **argv)
{
    const char *dir = ".";
    int count = 2000;
    double rate = 1000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
            count = atoi(argv[++i]);
        else if (strcmp(argv[i], "--rate") == 0 && i + 1 < argc)
            rate = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--dir DIR] [--count N] [--rate R]\n", argv[0]);
            return 2;
        }
    }
    if (count < 10 || count > MAX_COUNT || !(rate > 0 && rate <= 1e6)) {
        fprintf(stderr, "--count 10..%d, --rate in (0, 1e6]\n", MAX_COUNT);
        return 2;
    }

    int rc = 1;
    int fd = -1;
    char path[4096];
    double *lat = calloc((size_t)count, sizeof(*lat));
    char block[BLOCK];
    memset(block, 'x', sizeof(block));
    snprintf(path, sizeof(path), "%s/bench_disk_sync.%d", dir, (int)getpid());
    if (lat == NULL)
        goto out;
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        goto out;
    }
    /* Allocated and synced first, so the timed writes are overwrites, as
     * SQLite's WAL frames mostly are once the WAL has grown. */
    for (int i = 0; i < count; i++) {
        if (pwrite(fd, block, BLOCK, (off_t)i * BLOCK) != BLOCK)
            goto write_failed;
    }
    if (fsync(fd) != 0)
        goto write_failed;
    double interval = 1e3 / rate;
    double next = now_ms();
    for (int i = 0; i < count; i++) {
        double wait = next - now_ms();
        if (wait > 0) {
            long long ns = (long long)(wait * 1e6);
            struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000LL),
                                  .tv_nsec = (long)(ns % 1000000000LL)};
            nanosleep(&ts, NULL);
        }
        next += interval;
        double t0 = now_ms();
        if (pwrite(fd, block, BLOCK, (off_t)i * BLOCK) != BLOCK || fdatasync(fd) != 0)
            goto write_failed;
        lat[i] = now_ms() - t0;
    }
    qsort(lat, (size_t)count, sizeof(*lat), compare_doubles);
    printf("{\"count\":%d,\"p50_ms\":%.4f,\"p90_ms\":%.4f,\"p99_ms\":%.4f}\n", count,
           percentile(lat, count, 0.5), percentile(lat, count, 0.9), percentile(lat, count, 0.99));
    rc = 0;
    goto out;
write_failed:
    fprintf(stderr, "%s: %s\n", path, strerror(errno));
out:
    if (fd >= 0) {
        close(fd);
        unlink(path);
    }
    free(lat);
    return rc;
}
