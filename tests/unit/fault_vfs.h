/* SQLite on a disk that fails on demand, for the tests of what the store
 * does when a write batch cannot be made durable.
 *
 * fault_vfs_install() registers, as SQLite's default, a VFS that hands
 * every call to the default one it found, except that the writes (xWrite)
 * and syncs (xSync) of files whose names end with fault_vfs_arm()'s suffix
 * fail with SQLITE_IOERR as its plan says (fault_plan.h): arm("-wal",
 * FAULT_VFS_WRITE, 0, 1000) fails the next thousand writes of any WAL.
 * Install it before opening the database the test means to fail.
 *
 * Thread-safety: as fault_plan.h. The suffix is written only while the
 * plan is healed (arm it after fault_vfs_heal), and read only once the
 * plan is seen armed, which the atomics order after the write. */
#ifndef BINDERY_TEST_FAULT_VFS_H
#define BINDERY_TEST_FAULT_VFS_H

#include "fault_plan.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

typedef enum fault_vfs_call { FAULT_VFS_WRITE, FAULT_VFS_SYNC } fault_vfs_call;

static fault_plan fault_vfs_plan[2];
static char fault_vfs_suffix[32];
static sqlite3_vfs *fault_vfs_base; /* the default VFS it wraps */
static sqlite3_vfs fault_vfs_vfs;

/* An open file: the base VFS's own file follows it in the same block. */
typedef struct fault_vfs_file {
    sqlite3_file file;
    sqlite3_file *real;
    const char *name; /* SQLite keeps it valid until xClose; NULL: temporary */
} fault_vfs_file;

static sqlite3_file *fault_vfs_real(sqlite3_file *f)
{
    return ((fault_vfs_file *)(void *)f)->real;
}

static bool fault_vfs_take(sqlite3_file *f, fault_vfs_call call)
{
    if (!fault_plan_armed(&fault_vfs_plan[call]))
        return false;
    const char *name = ((fault_vfs_file *)(void *)f)->name;
    size_t n = name ? strlen(name) : 0, k = strlen(fault_vfs_suffix);
    return name != NULL && n >= k && strcmp(name + n - k, fault_vfs_suffix) == 0 &&
           fault_plan_take(&fault_vfs_plan[call]);
}

static inline void fault_vfs_arm(const char *suffix, fault_vfs_call call, int pass, int fail)
{
    snprintf(fault_vfs_suffix, sizeof(fault_vfs_suffix), "%s", suffix);
    fault_plan_arm(&fault_vfs_plan[call], pass, fail);
}

static inline void fault_vfs_heal(void)
{
    fault_plan_heal(&fault_vfs_plan[FAULT_VFS_WRITE]);
    fault_plan_heal(&fault_vfs_plan[FAULT_VFS_SYNC]);
}

static inline int fault_vfs_failed(fault_vfs_call call)
{
    return fault_plan_failed(&fault_vfs_plan[call]);
}

static int fault_vfs_close(sqlite3_file *f)
{
    sqlite3_file *r = fault_vfs_real(f);
    return r->pMethods->xClose(r);
}

static int fault_vfs_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
    sqlite3_file *r = fault_vfs_real(f);
    return r->pMethods->xRead(r, buf, amt, off);
}

static int fault_vfs_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
    if (fault_vfs_take(f, FAULT_VFS_WRITE))
        return SQLITE_IOERR_WRITE;
    sqlite3_file *r = fault_vfs_real(f);
    return r->pMethods->xWrite(r, buf, amt, off);
}

static int fault_vfs_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    sqlite3_file *r = fault_vfs_real(f);
    return r->pMethods->xTruncate(r, size);
}

static int fault_vfs_sync(sqlite3_file *f, int flags)
{
    if (fault_vfs_take(f, FAULT_VFS_SYNC))
        return SQLITE_IOERR_FSYNC;
    sqlite3_file *r = fault_vfs_real(f);
    return r->pMethods->xSync(r, flags);
}

static int fault_vfs_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    sqlite3_file *r = fault_vfs_real(f);
    return r->pMethods->xFileSize(r, size);
}

static int fault_vfs_lock(sqlite3_file *f, int level)
{
    sqlite3_file *r = fault_vfs_real(f);
    return r->pMethods->xLock(r, level);
}

static int fault_vfs_unlock(sqlite3_file *f, int level)
{
    sqlite3_file *r = fault_vfs_real(f);
    return r->pMethods->xUnlock(r, level);
}

static int fault_vfs_check_reserved(sqlite3_file *f, int *out)
{
    sqlite3_file *r = fault_vfs_real(f);
    return r->pMethods->xCheckReservedLock(r, out);
}

static int fault_vfs_file_control(sqlite3_file *f, int op, void *arg)
{
    sqlite3_file *r = fault_vfs_real(f);
    return r->pMethods->xFileControl(r, op, arg);
}

static int fault_vfs_sector_size(sqlite3_file *f)
{
    sqlite3_file *r = fault_vfs_real(f);
    return r->pMethods->xSectorSize(r);
}

static int fault_vfs_device(sqlite3_file *f)
{
    sqlite3_file *r = fault_vfs_real(f);
    return r->pMethods->xDeviceCharacteristics(r);
}

static int fault_vfs_shm_map(sqlite3_file *f, int page, int size, int extend, void volatile **out)
{
    sqlite3_file *r = fault_vfs_real(f);
    return r->pMethods->xShmMap(r, page, size, extend, out);
}

static int fault_vfs_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    sqlite3_file *r = fault_vfs_real(f);
    return r->pMethods->xShmLock(r, offset, n, flags);
}

static void fault_vfs_shm_barrier(sqlite3_file *f)
{
    sqlite3_file *r = fault_vfs_real(f);
    r->pMethods->xShmBarrier(r);
}

static int fault_vfs_shm_unmap(sqlite3_file *f, int delete_flag)
{
    sqlite3_file *r = fault_vfs_real(f);
    return r->pMethods->xShmUnmap(r, delete_flag);
}

/* Version 2 (shared memory, which WAL needs) and no memory mapping: SQLite
 * then reads through xRead, which is all the tests need. */
static const sqlite3_io_methods fault_vfs_methods = {
    .iVersion = 2,
    .xClose = fault_vfs_close,
    .xRead = fault_vfs_read,
    .xWrite = fault_vfs_write,
    .xTruncate = fault_vfs_truncate,
    .xSync = fault_vfs_sync,
    .xFileSize = fault_vfs_file_size,
    .xLock = fault_vfs_lock,
    .xUnlock = fault_vfs_unlock,
    .xCheckReservedLock = fault_vfs_check_reserved,
    .xFileControl = fault_vfs_file_control,
    .xSectorSize = fault_vfs_sector_size,
    .xDeviceCharacteristics = fault_vfs_device,
    .xShmMap = fault_vfs_shm_map,
    .xShmLock = fault_vfs_shm_lock,
    .xShmBarrier = fault_vfs_shm_barrier,
    .xShmUnmap = fault_vfs_shm_unmap,
};

static int fault_vfs_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
                          int *out_flags)
{
    (void)vfs;
    fault_vfs_file *f = (fault_vfs_file *)(void *)file;
    f->real = (sqlite3_file *)(void *)(f + 1);
    f->name = name;
    int rc = fault_vfs_base->xOpen(fault_vfs_base, name, f->real, flags, out_flags);
    /* No methods: SQLite calls no xClose, as for a failed open of its own. */
    file->pMethods = f->real->pMethods != NULL ? &fault_vfs_methods : NULL;
    return rc;
}

static int fault_vfs_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void)vfs;
    return fault_vfs_base->xDelete(fault_vfs_base, name, sync_dir);
}

static int fault_vfs_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void)vfs;
    return fault_vfs_base->xAccess(fault_vfs_base, name, flags, out);
}

static int fault_vfs_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    return fault_vfs_base->xFullPathname(fault_vfs_base, name, n, out);
}

static int fault_vfs_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return fault_vfs_base->xRandomness(fault_vfs_base, n, out);
}

static int fault_vfs_sleep(sqlite3_vfs *vfs, int us)
{
    (void)vfs;
    return fault_vfs_base->xSleep(fault_vfs_base, us);
}

static int fault_vfs_current_time(sqlite3_vfs *vfs, double *out)
{
    (void)vfs;
    return fault_vfs_base->xCurrentTime(fault_vfs_base, out);
}

static int fault_vfs_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return fault_vfs_base->xGetLastError(fault_vfs_base, n, out);
}

static int fault_vfs_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    (void)vfs;
    return fault_vfs_base->xCurrentTimeInt64(fault_vfs_base, out);
}

/* Makes the failing VFS SQLite's default (once). 0 or an SQLite code. */
static inline int fault_vfs_install(void)
{
    if (fault_vfs_base != NULL)
        return SQLITE_OK;
    sqlite3_vfs *base = sqlite3_vfs_find(NULL);
    if (base == NULL || base->iVersion < 2)
        return SQLITE_ERROR;
    fault_vfs_base = base;
    fault_vfs_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(fault_vfs_file) + base->szOsFile,
        .mxPathname = base->mxPathname,
        .zName = "bindery-fault",
        .xOpen = fault_vfs_open,
        .xDelete = fault_vfs_delete,
        .xAccess = fault_vfs_access,
        .xFullPathname = fault_vfs_full_pathname,
        .xRandomness = fault_vfs_randomness,
        .xSleep = fault_vfs_sleep,
        .xCurrentTime = fault_vfs_current_time,
        .xGetLastError = fault_vfs_last_error,
        .xCurrentTimeInt64 = fault_vfs_current_time64,
    };
    return sqlite3_vfs_register(&fault_vfs_vfs, 1);
}

#endif
