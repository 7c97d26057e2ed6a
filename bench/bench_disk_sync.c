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
#include "bindery/util.h"
#include "loadtest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096
#define MAX_COUNT 100000

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
    /* The load tool's histogram (0.8% resolution): 59 KB whatever the count. */
    lt_hist *lat = malloc(sizeof(*lat));
    char block[BLOCK];
    memset(block, 'x', sizeof(block));
    snprintf(path, sizeof(path), "%s/bench_disk_sync.%d", dir, (int)getpid());
    if (lat == NULL)
        goto out;
    lt_hist_init(lat);
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
    uint64_t interval = (uint64_t)(1e9 / rate);
    uint64_t next = bdy_monotonic_ns();
    for (int i = 0; i < count; i++) {
        uint64_t t = bdy_monotonic_ns();
        uint64_t due = next;
        bool behind = next <= t;
        if (!behind) {
            struct timespec ts = {.tv_sec = (time_t)((next - t) / 1000000000u),
                                  .tv_nsec = (long)((next - t) % 1000000000u)};
            nanosleep(&ts, NULL);
        }
        next += interval;
        uint64_t t0 = bdy_monotonic_ns();
        if (pwrite(fd, block, BLOCK, (off_t)i * BLOCK) != BLOCK || fdatasync(fd) != 0)
            goto write_failed;
        /* A write that could not start on time (the one before ran over)
         * waited too: timed from when it was due, as the claims are, or a
         * slow sync would hide the ones queued behind it. One on time is
         * timed from its start, without the sleep's own lateness. */
        lt_hist_add(lat, bdy_monotonic_ns() - (behind ? due : t0));
    }
    printf("{\"count\":%d,\"p50_ms\":%.4f,\"p90_ms\":%.4f,\"p99_ms\":%.4f}\n", count,
           (double)lt_hist_quantile(lat, 0.5) / 1e6, (double)lt_hist_quantile(lat, 0.9) / 1e6,
           (double)lt_hist_quantile(lat, 0.99) / 1e6);
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
