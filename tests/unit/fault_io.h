/* A disk that fails on demand, for the tests of what Bindery does when a
 * write or a sync is refused.
 *
 * A test that includes this header is linked with
 * -Wl,--wrap=pwrite,--wrap=fdatasync (CMakeLists.txt: FAULT_IO_TESTS), so
 * every pwrite and fdatasync that Bindery's own code makes (the static
 * bindery_core library; not SQLite's, a shared library: fault_vfs.h) goes
 * through the wrappers below. They pass every call through until a test
 * arms them: fault_io_arm(FAULT_IO_SYNC, 0, 1) lets no fdatasync through
 * and fails the next one with EIO; fault_io_arm(FAULT_IO_WRITE, 1, 2) lets
 * one pwrite through, then fails two. (In bindery_core only the claim
 * journal calls them.) */
#ifndef BINDERY_TEST_FAULT_IO_H
#define BINDERY_TEST_FAULT_IO_H

#include "fault_plan.h"

#include <errno.h>
#include <sys/types.h>
#include <unistd.h>

typedef enum fault_io_call { FAULT_IO_WRITE, FAULT_IO_SYNC } fault_io_call;

static fault_plan fault_io[2];

ssize_t __real_pwrite(int fd, const void *buf, size_t count, off_t offset);
int __real_fdatasync(int fd);
ssize_t __wrap_pwrite(int fd, const void *buf, size_t count, off_t offset);
int __wrap_fdatasync(int fd);

static inline void fault_io_arm(fault_io_call call, int pass, int fail)
{
    fault_plan_arm(&fault_io[call], pass, fail);
}

/* Back to a disk that works; forgets what failed. */
static inline void fault_io_heal(void)
{
    fault_plan_heal(&fault_io[FAULT_IO_WRITE]);
    fault_plan_heal(&fault_io[FAULT_IO_SYNC]);
}

static inline int fault_io_failed(fault_io_call call)
{
    return fault_plan_failed(&fault_io[call]);
}

ssize_t __wrap_pwrite(int fd, const void *buf, size_t count, off_t offset)
{
    if (fault_plan_take(&fault_io[FAULT_IO_WRITE])) {
        errno = EIO;
        return -1;
    }
    return __real_pwrite(fd, buf, count, offset);
}

int __wrap_fdatasync(int fd)
{
    if (fault_plan_take(&fault_io[FAULT_IO_SYNC])) {
        errno = EIO;
        return -1;
    }
    return __real_fdatasync(fd);
}

#endif
