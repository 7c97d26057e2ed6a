/* bdy_backup_data_dir (backup.h): a folder of SQLite files copied while a
 * writer holds an open transaction, what the copy holds, and what a backup
 * refuses. */
#include "bindery/backup.h"
#include "bindery/error.h"
#include "bindery/journal.h"
#include "bindery/util.h"

#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

typedef struct fixture {
    char dir[64];
    char data[96];
    char to[96];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/bdy-backup-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->data, sizeof(f->data), "%s/data", f->dir);
    snprintf(f->to, sizeof(f->to), "%s/copy", f->dir);
    if (mkdir(f->data, 0700) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", sql, err ? err : "?");
}

/* A WAL database at dir/name with rows 1..n in table t; left open. */
static sqlite3 *make_db(const char *dir, const char *name, int n)
{
    char path[192];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    exec_ok(db, "PRAGMA journal_mode=WAL; CREATE TABLE t(x INTEGER PRIMARY KEY, v TEXT)");
    for (int i = 1; i <= n; i++) {
        char sql[96];
        snprintf(sql, sizeof(sql), "INSERT INTO t VALUES(%d, 'row %d')", i, i);
        exec_ok(db, sql);
    }
    return db;
}

static int rows_in(const char *dir, const char *name)
{
    char path[192];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[192];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

static int count_group(void *data, uint64_t seq, const void *payload, size_t len)
{
    (void)seq;
    (void)payload;
    (void)len;
    (*(int *)data)++;
    return 0;
}

/* The copy holds what was committed when it was taken: not a writer's
 * open transaction, which the backup neither waits for nor blocks. */
static void test_copy_while_writing(void **state)
{
    fixture *f = *state;
    sqlite3 *store = make_db(f->data, "bindery.db", 100);
    sqlite3 *ledger = make_db(f->data, "claims.db", 7);
    /* The ledger has applied the journal up to its group 1. */
    exec_ok(ledger, "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                    "INSERT INTO meta VALUES('applied_seq', '1')");
    write_file(f->data, "instance-id", "0123456789abcdef0123456789abcdef\n");
    /* A claim journal of four groups, the third caught half written: the
     * copy keeps the second, the only one a start would read after group
     * 1, which the ledger holds. */
    char jpath[192];
    snprintf(jpath, sizeof(jpath), "%s/claims.journal", f->data);
    bdy_journal *j = NULL;
    assert_int_equal(bdy_journal_open(jpath, true, 16, &j, NULL, NULL), 0);
    bdy_journal_start(j, 0);
    uint64_t seq;
    assert_int_equal(bdy_journal_append(j, "one", 3, 0, &seq, NULL), 0);
    assert_int_equal(bdy_journal_append(j, "two", 3, 0, &seq, NULL), 0);
    assert_int_equal(bdy_journal_append(j, "three", 5, 0, &seq, NULL), 0);
    assert_int_equal(bdy_journal_append(j, "four", 4, 0, &seq, NULL), 0);
    bdy_journal_close(j);
    FILE *jf = fopen(jpath, "r+b");
    assert_non_null(jf);
    assert_int_equal(fseek(jf, 3 * 4096 + 33, SEEK_SET), 0);
    fputc('T', jf);
    assert_int_equal(fclose(jf), 0);
    exec_ok(store, "BEGIN IMMEDIATE; INSERT INTO t VALUES(1000, 'uncommitted')");
    bdy_backup_report r;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy_backup_data_dir(f->data, f->to, &r, &eb);
    if (rc != 0)
        fail_msg("backup: %s", eb.message);
    exec_ok(store, "COMMIT");
    assert_int_equal(r.files, 4);
    assert_true(r.bytes > 0);
    assert_int_equal(r.nskipped, 1);
    assert_string_equal(r.skipped[0], "demand.db");
    /* Nothing but the copies: no WAL or shared-memory file of a copy that
     * was read back, which a retry would find as a folder not empty. */
    DIR *d = opendir(f->to);
    assert_non_null(d);
    int entries = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        entries++;
        if (strcmp(e->d_name, "bindery.db") != 0 && strcmp(e->d_name, "claims.db") != 0 &&
            strcmp(e->d_name, "claims.journal") != 0 && strcmp(e->d_name, "instance-id") != 0)
            fail_msg("left in the backup: %s", e->d_name);
    }
    closedir(d);
    assert_int_equal(entries, 4);
    assert_int_equal(rows_in(f->to, "bindery.db"), 100);
    assert_int_equal(rows_in(f->to, "claims.db"), 7);
    assert_int_equal(rows_in(f->data, "bindery.db"), 101);
    char path[192];
    struct stat st;
    snprintf(path, sizeof(path), "%s/bindery.db", f->to);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(path, sizeof(path), "%s/instance-id", f->to);
    assert_int_equal(stat(path, &st), 0);
    snprintf(path, sizeof(path), "%s/claims.journal", f->to);
    char *journal = NULL;
    size_t len = 0;
    assert_int_equal(bdy_read_file(path, 16 * 4096, &journal, &len), 0);
    assert_int_equal(len, 16 * 4096);
    int groups = 0;
    uint64_t last = 0, highest = 0;
    assert_int_equal(bdy_journal_scan(journal, len, 1, count_group, &groups, &last, &highest, NULL),
                     0);
    assert_int_equal(groups, 1);
    assert_int_equal(last, 2);
    assert_int_equal(highest, 2); /* the fourth is gone from the copy */
    free(journal);
    /* The original is left as it was. */
    assert_int_equal(bdy_read_file(jpath, 16 * 4096, &journal, &len), 0);
    assert_int_equal(bdy_journal_scan(journal, len, 0, count_group, &groups, &last, &highest, NULL),
                     0);
    assert_int_equal(highest, 4);
    free(journal);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(path, sizeof(path), "%s/bindery.db.part", f->to);
    assert_int_not_equal(stat(path, &st), 0);
    sqlite3_close(store);
    sqlite3_close(ledger);
}

static void test_refusals(void **state)
{
    fixture *f = *state;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    /* No store: not a data folder bindery has used. */
    assert_int_equal(bdy_backup_data_dir(f->data, f->to, NULL, &eb), BDY_ENOTFOUND);
    assert_non_null(strstr(eb.message, "holds no store"));
    sqlite3 *store = make_db(f->data, "bindery.db", 3);
    sqlite3_close(store);
    /* A target that is not empty. */
    assert_int_equal(mkdir(f->to, 0700), 0);
    write_file(f->to, "old", "x");
    assert_int_equal(bdy_backup_data_dir(f->data, f->to, NULL, &eb), BDY_EEXISTS);
    assert_non_null(strstr(eb.message, "not empty"));
    /* A target inside the data folder, however named: a backup there is
     * lost with the folder it is of, and nothing is written there. */
    char inside[200];
    char via_link[200];
    char link_path[160];
    snprintf(inside, sizeof(inside), "%s/sub", f->data);
    snprintf(link_path, sizeof(link_path), "%s/data-link", f->dir);
    assert_int_equal(symlink(f->data, link_path), 0);
    snprintf(via_link, sizeof(via_link), "%s/./sub/", link_path);
    const char *const targets[] = {inside, via_link, f->data, link_path};
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        bdy_errbuf_clear(&eb);
        assert_int_equal(bdy_backup_data_dir(f->data, targets[i], NULL, &eb), BDY_EINVAL);
        assert_non_null(strstr(eb.message, "inside the data folder"));
    }
    assert_int_equal(access(inside, F_OK), -1);
    unlink(link_path);
    /* A file that is not a database: nothing lands under its name. */
    char copy2[128];
    snprintf(copy2, sizeof(copy2), "%s/copy2", f->dir);
    write_file(f->data, "claims.db", "this is not a database, only text of some length.......");
    int rc = bdy_backup_data_dir(f->data, copy2, NULL, &eb);
    assert_true(rc == BDY_ECORRUPT || rc == BDY_EIO);
    assert_non_null(strstr(eb.message, "claims.db"));
    char path[192];
    snprintf(path, sizeof(path), "%s/claims.db", copy2);
    assert_int_not_equal(access(path, F_OK), 0);
    snprintf(path, sizeof(path), "%s/claims.db.part", copy2);
    assert_int_not_equal(access(path, F_OK), 0);
    /* Nor is the store's copy, made before the failure, left under its
     * name: a folder serve would start from with an empty ledger. */
    snprintf(path, sizeof(path), "%s/bindery.db", copy2);
    assert_int_not_equal(access(path, F_OK), 0);
    snprintf(path, sizeof(path), "%s/bindery.db.part", copy2);
    assert_int_not_equal(access(path, F_OK), 0);
}

/* With no bindery running (a folder a crash left, WAL not checkpointed),
 * the copy holds what the WAL holds and the live folder is not changed:
 * the backup's connection must not checkpoint on close. */
static void test_copy_of_a_stopped_folder(void **state)
{
    fixture *f = *state;
    sqlite3 *store = make_db(f->data, "bindery.db", 0);
    assert_int_equal(sqlite3_db_config(store, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL),
                     SQLITE_OK);
    exec_ok(store, "PRAGMA wal_autocheckpoint=0");
    for (int i = 1; i <= 50; i++) {
        char sql[96];
        snprintf(sql, sizeof(sql), "INSERT INTO t VALUES(%d, 'row %d')", i, i);
        exec_ok(store, sql);
    }
    sqlite3_close(store);
    char wal[192];
    snprintf(wal, sizeof(wal), "%s/bindery.db-wal", f->data);
    struct stat before;
    assert_int_equal(stat(wal, &before), 0);
    assert_true(before.st_size > 0);
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    if (bdy_backup_data_dir(f->data, f->to, NULL, &eb) != 0)
        fail_msg("backup: %s", eb.message);
    assert_int_equal(rows_in(f->to, "bindery.db"), 50);
    struct stat after;
    assert_int_equal(stat(wal, &after), 0);
    assert_int_equal(after.st_size, before.st_size);
}

/* A cleanly stopped folder has no WAL or shared-memory files; the backup's
 * connection had to make them, and left them in the live folder. With the
 * folder's lock free (no bindery runs) it removes what it made, and leaves
 * the lock free again. */
static void test_copy_of_a_cleanly_stopped_folder(void **state)
{
    fixture *f = *state;
    sqlite3 *store = make_db(f->data, "bindery.db", 20);
    sqlite3_close(store); /* the last connection: checkpointed, -wal and -shm gone */
    char path[192];
    snprintf(path, sizeof(path), "%s/bindery.lock", f->data);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    const char *made[] = {"bindery.db-wal", "bindery.db-shm"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/%s", f->data, made[i]);
        assert_int_not_equal(access(path, F_OK), 0);
    }
    char db[192];
    snprintf(db, sizeof(db), "%s/bindery.db", f->data);
    struct stat before;
    assert_int_equal(stat(db, &before), 0);
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    if (bdy_backup_data_dir(f->data, f->to, NULL, &eb) != 0)
        fail_msg("backup: %s", eb.message);
    assert_int_equal(rows_in(f->to, "bindery.db"), 20);
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/%s", f->data, made[i]);
        if (access(path, F_OK) == 0)
            fail_msg("the backup left %s in the live folder", made[i]);
    }
    struct stat after;
    assert_int_equal(stat(db, &after), 0);
    assert_int_equal(after.st_size, before.st_size);
    assert_true(after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
                after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);

    /* With the lock held (a bindery running), the files are that bindery's:
     * the backup leaves what its connection found or made. */
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
    char to2[192];
    snprintf(to2, sizeof(to2), "%s-running", f->to);
    bdy_errbuf_clear(&eb);
    if (bdy_backup_data_dir(f->data, to2, NULL, &eb) != 0)
        fail_msg("backup: %s", eb.message);
    snprintf(path, sizeof(path), "%s/bindery.db-wal", f->data);
    assert_int_equal(access(path, F_OK), 0);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_copy_while_writing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_of_a_stopped_folder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_of_a_cleanly_stopped_folder, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
