/* Online backup of a data folder (backup.h). */
#include "bindery/backup.h"

#include "bindery/error.h"
#include "bindery/journal.h"
#include "bindery/store.h"
#include "bindery/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* A backup step that meets a lock waits this long, this many times:
 * bindery's writers hold their locks for milliseconds; a checkpoint that
 * truncates the WAL, a little longer. */
#define BACKUP_BUSY_WAIT_MS 50
#define BACKUP_BUSY_TRIES 200
/* Every page in one step: a write between steps would restart the copy
 * (it would never finish under steady claims), and in WAL mode the step's
 * read transaction blocks no writer. */
#define BACKUP_ALL_PAGES (-1)

/* The files of a data folder, in the order they are copied (backup.h
 * says why the store comes before the ledger). */
static const struct {
    const char *name;
    bool sqlite;
    bool required;
    size_t max;             /* a plain file's largest size */
    const char *applied_in; /* a claim journal: the ledger that says how far it is applied */
} data_files[] = {
    {"bindery.db", true, true, 0, NULL},
    /* The claim journal is read before the ledger's database: a claim
     * acknowledged before the store's copy is in the journal's copy, or, if
     * the journal has been written over where it was, it was applied to
     * claims.db before that, so it is in the copy of claims.db that
     * follows. It is written once that copy is made (write_journal_copy). */
    {"claims.journal", false, false, (size_t)BDY_JOURNAL_MAX_BLOCKS *BDY_JOURNAL_BLOCK,
     "claims.db"},
    {"claims.db", true, false, 0, NULL},
    {"demand.db", true, false, 0, NULL},
    {"instance-id", false, false, (size_t)64 * 1024, NULL},
};

static int path_in(char *out, size_t cap, const char *dir, const char *name, const char *suffix,
                   bdy_errbuf *eb)
{
    if ((size_t)snprintf(out, cap, "%s/%s%s", dir, name, suffix) >= cap)
        return bdy_fail(eb, BDY_EINVAL, "path too long: %s/%s", dir, name);
    return 0;
}

/* Whether path (which need not exist yet, but its parent must) is dir or
 * lies under it, both with links and dots resolved. False when either
 * cannot be resolved: the target's own checks say why. */
static bool path_within(const char *path, const char *dir)
{
    char rd[PATH_MAX];
    char rp[PATH_MAX];
    if (realpath(dir, rd) == NULL)
        return false;
    if (realpath(path, rp) == NULL) {
        char parent[PATH_MAX];
        if (snprintf(parent, sizeof(parent), "%s", path) >= (int)sizeof(parent))
            return false;
        size_t len = strlen(parent);
        while (len > 1 && parent[len - 1] == '/')
            parent[--len] = '\0';
        char *slash = strrchr(parent, '/');
        const char *base = slash != NULL ? slash + 1 : parent;
        char resolved[PATH_MAX];
        const char *from = slash == NULL ? "." : slash == parent ? "/" : parent;
        if (slash != NULL && slash != parent)
            *slash = '\0';
        if (realpath(from, resolved) == NULL ||
            snprintf(rp, sizeof(rp), "%s/%s", strcmp(resolved, "/") == 0 ? "" : resolved, base) >=
                (int)sizeof(rp))
            return false;
    }
    size_t n = strlen(rd);
    return strncmp(rp, rd, n) == 0 && (rp[n] == '\0' || rp[n] == '/' || strcmp(rd, "/") == 0);
}

/* to must not exist (it is made) or be an empty folder. */
static int fsync_path(const char *path, int flags);

static int prepare_target(const char *to, bdy_errbuf *eb)
{
    if (mkdir(to, 0700) == 0) {
        /* The new folder's entry in its parent, durable like the files. */
        if (bdy_fsync_parent(to) != 0)
            return bdy_fail(eb, BDY_EIO, "the folder holding %s: %s", to, strerror(errno));
        return 0;
    }
    if (errno != EEXIST)
        return bdy_fail(eb, BDY_EIO, "backup folder %s: %s", to, strerror(errno));
    DIR *d = opendir(to);
    if (d == NULL)
        return bdy_fail(eb, BDY_EIO, "backup folder %s: %s", to, strerror(errno));
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            rc = bdy_fail(eb, BDY_EEXISTS,
                          "backup folder %s is not empty (%s): back up into a new folder", to,
                          e->d_name);
    }
    closedir(d);
    return rc;
}

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Whether path + suffix names a file that exists. */
static bool exists_with(const char *path, const char *suffix)
{
    char p[PATH_MAX];
    return (size_t)snprintf(p, sizeof(p), "%s%s", path, suffix) < sizeof(p) && access(p, F_OK) == 0;
}

/* One SQLite file copied from src into dst (a new file), then checked.
 * idle: no bindery runs on the folder, nor can start (the caller holds its
 * lock), so the WAL and shared-memory files this connection had to make
 * beside src go with it: the backup writes nothing into the live folder.
 * Those that were there (a bindery killed) are left as they were. */
static int copy_database(const char *src, const char *dst, bool idle, bdy_errbuf *eb)
{
    int rc = 0;
    bool had_wal = exists_with(src, "-wal");
    bool had_shm = exists_with(src, "-shm");
    sqlite3 *from = NULL;
    sqlite3 *to = NULL;
    sqlite3_backup *b = NULL;
    sqlite3_stmt *check = NULL;
    /* Read-write without create: reading a WAL database needs its shared
     * memory file, which a read-only connection cannot set up when bindery
     * is not running. Nothing is written through it (query_only, no
     * checkpoint on close); a folder a crash left gets its WAL index
     * rebuilt, as any opening would. */
    if (sqlite3_open_v2(src, &from, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        rc = bdy_fail(eb, BDY_EIO, "%s: %s", src, from ? sqlite3_errmsg(from) : "cannot open");
        goto out;
    }
    /* It must not change the live file: with no bindery running, closing
     * the last connection would otherwise checkpoint its WAL into it. */
    if (sqlite3_db_config(from, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL) != SQLITE_OK ||
        sqlite3_exec(from, "PRAGMA query_only=1", NULL, NULL, NULL) != SQLITE_OK) {
        rc = bdy_fail(eb, BDY_EIO, "%s: %s", src, sqlite3_errmsg(from));
        goto out;
    }
    sqlite3_busy_timeout(from, BACKUP_BUSY_WAIT_MS);
    /* Made here, owner-only, before SQLite opens it: the store holds
     * Secrets and the ledger claimants, whatever the umask says. */
    int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = bdy_fail(eb, BDY_EIO, "%s: %s", dst, strerror(errno));
        goto out;
    }
    close(fd);
    if (sqlite3_open_v2(dst, &to, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        rc = bdy_fail(eb, BDY_EIO, "%s: %s", dst, to ? sqlite3_errmsg(to) : "cannot create");
        goto out;
    }
    b = sqlite3_backup_init(to, "main", from, "main");
    if (b == NULL) {
        rc = bdy_fail(eb, BDY_EIO, "%s: %s", src, sqlite3_errmsg(to));
        goto out;
    }
    int step = SQLITE_OK;
    for (int tries = 0; tries < BACKUP_BUSY_TRIES; tries++) {
        step = sqlite3_backup_step(b, BACKUP_ALL_PAGES);
        if (step != SQLITE_BUSY && step != SQLITE_LOCKED)
            break;
        sqlite3_sleep(BACKUP_BUSY_WAIT_MS);
    }
    int fin = sqlite3_backup_finish(b);
    b = NULL;
    if (step == SQLITE_BUSY || step == SQLITE_LOCKED) {
        rc = bdy_fail(eb, BDY_EBUSY, "%s: still locked after %d tries", src, BACKUP_BUSY_TRIES);
        goto out;
    }
    if (step != SQLITE_DONE || fin != SQLITE_OK) {
        rc = bdy_fail(eb, step == SQLITE_CORRUPT || step == SQLITE_NOTADB ? BDY_ECORRUPT : BDY_EIO,
                      "%s: %s", src, sqlite3_errstr(step != SQLITE_DONE ? step : fin));
        goto out;
    }
    /* The copy, read back whole: a backup is worth what a start from it is. */
    if (sqlite3_prepare_v2(to, "PRAGMA quick_check", -1, &check, NULL) != SQLITE_OK ||
        sqlite3_step(check) != SQLITE_ROW) {
        rc = bdy_fail(eb, BDY_EIO, "%s: cannot check the copy: %s", dst, sqlite3_errmsg(to));
        goto out;
    }
    const char *verdict = (const char *)sqlite3_column_text(check, 0);
    if (verdict == NULL || strcmp(verdict, "ok") != 0) {
        rc = bdy_fail(eb, BDY_ECORRUPT, "%s: the copy fails its check: %s", src,
                      verdict ? verdict : "?");
        goto out;
    }
out:
    sqlite3_finalize(check);
    if (b != NULL)
        sqlite3_backup_finish(b);
    sqlite3_close(to);
    /* Files this connection made: SQLite's own close removes them, when it
     * is the last connection (it checks that under its locks: an operator's
     * sqlite3 shell open on the file keeps them), after a checkpoint of a
     * WAL that is empty, so nothing is written into the store. */
    if (from != NULL && idle && !had_wal && !had_shm)
        sqlite3_db_config(from, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, NULL);
    sqlite3_close(from);
    return rc;
}

/* Writes len bytes to the new file dst (owner-only) and syncs it. */
static int write_copy(const char *dst, const void *data, size_t len, bdy_errbuf *eb)
{
    int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return bdy_fail(eb, BDY_EIO, "%s: %s", dst, strerror(errno));
    int rc = 0;
    const char *p = data;
    while (len > 0 && rc == 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            rc = bdy_fail(eb, BDY_EIO, "%s: %s", dst, w < 0 ? strerror(errno) : "short write");
        else
            p += w, len -= (size_t)w;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = bdy_fail(eb, BDY_EIO, "%s: %s", dst, strerror(errno));
    close(fd);
    return rc;
}

/* A plain file copied whole (at most max bytes). */
static int copy_plain_file(const char *src, const char *dst, size_t max, bdy_errbuf *eb)
{
    char *text = NULL;
    size_t len = 0;
    int rc = bdy_read_file(src, max, &text, &len);
    if (rc != 0)
        return bdy_fail(eb, rc, "%s: %s", src, bdy_strerror(rc));
    rc = write_copy(dst, text, len, eb);
    free(text);
    return rc;
}

/* The journal group claims.db (the copy at db_path) holds everything up
 * to, in *applied: 0 when the copy is missing or records none (a ledger
 * from before the journal). Any other failure is an error: trimming from 0
 * a journal that has gone round would drop every group in it. */
static int ledger_applied(const char *db_path, uint64_t *applied, bdy_errbuf *eb)
{
    *applied = 0;
    if (access(db_path, F_OK) != 0)
        return 0;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = 0;
    int step = SQLITE_ERROR;
    /* Read-write, though nothing is written: the copy is in WAL mode, and
     * a read-only connection leaves the WAL and shared-memory files it
     * makes behind; the last connection to close removes them. */
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key='applied_seq'", -1, &st, NULL) !=
            SQLITE_OK ||
        ((step = sqlite3_step(st)) != SQLITE_ROW && step != SQLITE_DONE))
        rc = bdy_fail(eb, BDY_EIO, "%s: %s", db_path, db ? sqlite3_errmsg(db) : "out of memory");
    else if (step == SQLITE_ROW)
        *applied = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

/* Writes the claim journal read at its turn (image), trimmed to what the
 * copy of claims.db beside it (db_part) does not hold yet: the journal was
 * read while bindery wrote it, so it can hold a group caught half written
 * with whole ones after it, which a start would refuse as damage. */
static int write_journal_copy(unsigned char *image, size_t len, const char *db_part,
                              const char *dst, bdy_errbuf *eb)
{
    unsigned trimmed = 0;
    uint64_t applied = 0;
    int rc = ledger_applied(db_part, &applied, eb);
    if (rc != 0)
        return rc;
    bdy_errbuf jeb;
    bdy_errbuf_clear(&jeb);
    if (bdy_journal_trim(image, len, applied, &trimmed, &jeb) != 0)
        return bdy_fail(eb, BDY_ECORRUPT, "%s: %s", dst, jeb.message);
    return write_copy(dst, image, len, eb);
}

/* A copy made under the name part: synced, and counted in r. */
static int count_copy(const char *part, bdy_backup_report *r, bdy_errbuf *eb)
{
    struct stat st = {0};
    if (fsync_path(part, O_RDONLY) != 0 || stat(part, &st) != 0)
        return bdy_fail(eb, BDY_EIO, "%s: %s", part, strerror(errno));
    r->files++;
    r->bytes += (uint64_t)st.st_size;
    return 0;
}

/* Removes the copies made so far, under either name. */
static void remove_copies(const char *to, size_t upto)
{
    char path[PATH_MAX];
    for (size_t i = 0; i < upto; i++) {
        if (path_in(path, sizeof(path), to, data_files[i].name, ".part", NULL) == 0)
            unlink(path);
        if (path_in(path, sizeof(path), to, data_files[i].name, "", NULL) == 0)
            unlink(path);
    }
}

int bdy_backup_data_dir(const char *data_dir, const char *to, bdy_backup_report *report,
                        bdy_errbuf *eb)
{
    int rc = 0;
    bdy_backup_report r = {0};
    double t0 = bdy_wall_seconds();
    char src[PATH_MAX];
    char part[PATH_MAX];
    char final[PATH_MAX];
    bool copied[sizeof(data_files) / sizeof(data_files[0])] = {false};
    size_t n = sizeof(data_files) / sizeof(data_files[0]);
    size_t done = 0;
    /* The claim journal is read at its turn and written once the copy of
     * claims.db, which says how far to trim it, is made. */
    char *journal = NULL;
    size_t journal_len = 0;
    size_t journal_at = n;
    if (data_dir == NULL || to == NULL)
        return bdy_fail(eb, BDY_EINVAL, "backup: no data folder or target");
    if ((rc = path_in(src, sizeof(src), data_dir, "bindery.db", "", eb)) != 0)
        return rc;
    if (access(src, F_OK) != 0)
        return bdy_fail(eb, BDY_ENOTFOUND,
                        "%s holds no store (bindery.db): not a data folder bindery has used",
                        data_dir);
    if (path_within(to, data_dir))
        return bdy_fail(eb, BDY_EINVAL,
                        "backup folder %s is inside the data folder %s: a backup there shares "
                        "its disk and is lost with it; back up into a folder elsewhere",
                        to, data_dir);
    if ((rc = prepare_target(to, eb)) != 0)
        return rc;
    /* The folder's lock, if free: then no bindery runs on it, and none can
     * start until the backup is done. Held (a bindery runs): it is copied
     * under that bindery, as its files allow. */
    char lock_path[PATH_MAX];
    int lock_fd = -1;
    if (path_in(lock_path, sizeof(lock_path), data_dir, BDY_STORE_LOCK_FILE, "", NULL) == 0 &&
        (lock_fd = open(lock_path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)) >= 0 &&
        flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        close(lock_fd);
        lock_fd = -1;
    }
    bool idle = lock_fd >= 0;
    /* Every file under a temporary name first: a backup that fails half
     * way must not leave a folder serve would start from. */
    for (; done < n; done++) {
        const char *name = data_files[done].name;
        if ((rc = path_in(src, sizeof(src), data_dir, name, "", eb)) != 0 ||
            (rc = path_in(part, sizeof(part), to, name, ".part", eb)) != 0)
            goto out;
        if (access(src, F_OK) != 0 && !data_files[done].required) {
            if (r.nskipped < sizeof(r.skipped) / sizeof(r.skipped[0]))
                snprintf(r.skipped[r.nskipped++], sizeof(r.skipped[0]), "%s", name);
            continue;
        }
        if (data_files[done].applied_in != NULL) {
            rc = bdy_read_file(src, data_files[done].max, &journal, &journal_len);
            if (rc != 0) {
                rc = bdy_fail(eb, rc, "%s: %s", src, bdy_strerror(rc));
                goto out;
            }
            journal_at = done;
            continue;
        }
        rc = data_files[done].sqlite ? copy_database(src, part, idle, eb)
                                     : copy_plain_file(src, part, data_files[done].max, eb);
        if (rc != 0 || (rc = count_copy(part, &r, eb)) != 0)
            goto out;
        copied[done] = true;
    }
    if (journal_at < n) {
        if ((rc = path_in(src, sizeof(src), to, data_files[journal_at].applied_in, ".part", eb)) !=
                0 ||
            (rc = path_in(part, sizeof(part), to, data_files[journal_at].name, ".part", eb)) != 0 ||
            (rc = write_journal_copy((unsigned char *)journal, journal_len, src, part, eb)) != 0 ||
            (rc = count_copy(part, &r, eb)) != 0)
            goto out;
        copied[journal_at] = true;
    }
    /* Then their names, the store's last: a folder without bindery.db but
     * with other files is one bindery refuses to start from (data went
     * missing), so a crash in between leaves nothing startable either. */
    for (size_t i = n; i-- > 0;) { /* the store is data_files[0] */
        if (!copied[i])
            continue;
        if ((rc = path_in(part, sizeof(part), to, data_files[i].name, ".part", eb)) != 0 ||
            (rc = path_in(final, sizeof(final), to, data_files[i].name, "", eb)) != 0)
            goto out;
        if (rename(part, final) != 0) {
            rc = bdy_fail(eb, BDY_EIO, "%s: %s", final, strerror(errno));
            goto out;
        }
    }
    if (fsync_path(to, O_RDONLY | O_DIRECTORY) != 0)
        rc = bdy_fail(eb, BDY_EIO, "%s: %s", to, strerror(errno));
out:
    if (lock_fd >= 0)
        close(lock_fd); /* and with it the lock */
    free(journal);
    if (rc != 0)
        remove_copies(to, n);
    r.seconds = bdy_wall_seconds() - t0;
    if (report != NULL)
        *report = r;
    return rc;
}
