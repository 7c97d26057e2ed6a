/* A disk that fails on demand, for the tests of what Bindery does when a
 * write or a sync is refused.
 *
 * A test that includes this header is linked with
 * -Wl,--wrap=pwrite,--wrap=fdatasync (CMakeLists.txt: FAULT_IO_TESTS), so
 * every pwrite and fdatasync that Bindery's own code makes (the static
 * bindery_core library; not SQLite's, a shared library) goes through the
 * wrappers below. They pass every call through until a test arms them:
 * fault_io_arm(FAULT_IO_SYNC, 0, 1) lets no fdatasync through and fails the
 * next one with EIO; fault_io_arm(FAULT_IO_WRITE, 1, 2) lets one pwrite
 * through, then fails two. (In bindery_core only the claim journal calls them.)
 *
 * Thread-safety: the counters are atomic; a test arms them before the
 * calls it means to fail and reads fault_io_failed() after them. */
#ifndef BINDERY_TEST_FAULT_IO_H
#define BINDERY_TEST_FAULT_IO_H

#include <errno.h>
#include <stdatomic.h>
#include <sys/types.h>
#include <unistd.h>

typedef enum fault_io_call { FAULT_IO_WRITE, FAULT_IO_SYNC } fault_io_call;

typedef struct fault_io_plan {
    atomic_int pass;   /* calls still let through before failing */
    atomic_int fail;   /* calls to fail after those */
    atomic_int failed; /* calls failed so far */
} fault_io_plan;

static fault_io_plan fault_io[2];

ssize_t __real_pwrite(int fd, const void *buf, size_t count, off_t offset);
int __real_fdatasync(int fd);
ssize_t __wrap_pwrite(int fd, const void *buf, size_t count, off_t offset);
int __wrap_fdatasync(int fd);

static inline void fault_io_arm(fault_io_call call, int pass, int fail)
{
    atomic_store(&fault_io[call].pass, pass);
    atomic_store(&fault_io[call].fail, fail);
}

/* Back to a disk that works; forgets what failed. */
static inline void fault_io_heal(void)
{
    for (int i = 0; i < 2; i++) {
        fault_io_arm((fault_io_call)i, 0, 0);
        atomic_store(&fault_io[i].failed, 0);
    }
}

static inline int fault_io_failed(fault_io_call call)
{
    return atomic_load(&fault_io[call].failed);
}

/* Whether this call fails: the plan's passes are used up first. */
static inline int fault_io_should_fail(fault_io_call call)
{
    fault_io_plan *p = &fault_io[call];
    if (atomic_load(&p->fail) <= 0)
        return 0;
    int pass = atomic_load(&p->pass);
    while (pass > 0)
        if (atomic_compare_exchange_weak(&p->pass, &pass, pass - 1))
            return 0;
    int fail = atomic_load(&p->fail);
    while (fail > 0)
        if (atomic_compare_exchange_weak(&p->fail, &fail, fail - 1)) {
            atomic_fetch_add(&p->failed, 1);
            return 1;
        }
    return 0;
}

ssize_t __wrap_pwrite(int fd, const void *buf, size_t count, off_t offset)
{
    if (fault_io_should_fail(FAULT_IO_WRITE)) {
        errno = EIO;
        return -1;
    }
    return __real_pwrite(fd, buf, count, offset);
}

int __wrap_fdatasync(int fd)
{
    if (fault_io_should_fail(FAULT_IO_SYNC)) {
        errno = EIO;
        return -1;
    }
    return __real_fdatasync(fd);
}

#endif
