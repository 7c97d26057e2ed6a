/* Background whole-file checks (include/bindery/dbcheck.h): a sound file
 * passes, a damaged page deep in a file that still opens is reported as
 * corruption naming the file, a missing file is an error, not damage, and
 * stop ends a check at any moment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bindery/dbcheck.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096

typedef struct fixture {
    char dir[32];
    char path[256];
} fixture;

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", sql, err ? err : "?");
}

/* A file of about 100 leaf pages under one root: the last page is a leaf
 * that nothing but a walk of the whole tree reads. */
static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/bdy-dbcheck-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/test.db", f->dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    exec_ok(db, "PRAGMA page_size=4096; CREATE TABLE t(b BLOB); BEGIN;");
    for (int i = 0; i < 2000; i++)
        exec_ok(db, "INSERT INTO t VALUES (randomblob(200))");
    exec_ok(db, "COMMIT");
    sqlite3_close(db);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char p[300];
    snprintf(p, sizeof(p), "%s/test.db", f->dir);
    unlink(p);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* The check's result once it has ended (at most 10 s). */
static int wait_result(bdy_db_check *c, bdy_errbuf *eb)
{
    for (int i = 0; i < 2000; i++) {
        int rc = bdy_db_check_result(c, eb);
        if (rc != BDY_EBUSY)
            return rc;
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    fail_msg("the check did not end within 10 s");
    return BDY_EBUSY;
}

static void test_sound_file_passes(void **state)
{
    fixture *f = *state;
    bdy_db_check *c = NULL;
    bdy_errbuf eb;
    assert_int_equal(bdy_db_check_start(f->path, "test-check", "test", &c, &eb), 0);
    assert_int_equal(wait_result(c, &eb), 0);
    bdy_db_check_stop(c);
}

static void test_damaged_leaf_is_corruption(void **state)
{
    fixture *f = *state;
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    long pages = (long)(st.st_size / PAGE);
    assert_true(pages > 50);
    /* A table leaf's first byte is its type (13); 0 is no page type. */
    FILE *fp = fopen(f->path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, (pages - 1) * PAGE, SEEK_SET), 0);
    assert_int_equal(fgetc(fp), 13);
    assert_int_equal(fseek(fp, (pages - 1) * PAGE, SEEK_SET), 0);
    fputc(0, fp);
    fclose(fp);

    /* The file still opens and its first pages read fine. */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    exec_ok(db, "SELECT count(*) FROM sqlite_master");
    sqlite3_close(db);

    bdy_db_check *c = NULL;
    bdy_errbuf eb;
    assert_int_equal(bdy_db_check_start(f->path, "test-check", "test", &c, &eb), 0);
    assert_int_equal(wait_result(c, &eb), BDY_ECORRUPT);
    assert_non_null(strstr(eb.message, f->path));
    assert_non_null(strstr(eb.message, "corrupt"));
    /* The outcome stays. */
    assert_int_equal(bdy_db_check_result(c, NULL), BDY_ECORRUPT);
    bdy_db_check_stop(c);
}

static void test_missing_file_is_not_damage(void **state)
{
    fixture *f = *state;
    char path[300];
    snprintf(path, sizeof(path), "%s/missing.db", f->dir);
    bdy_db_check *c = NULL;
    bdy_errbuf eb;
    assert_int_equal(bdy_db_check_start(path, "test-check", "test", &c, &eb), 0);
    assert_int_equal(wait_result(c, &eb), BDY_EIO);
    assert_non_null(strstr(eb.message, "did not finish"));
    bdy_db_check_stop(c);
    /* The check never creates the file it was given. */
    assert_int_equal(access(path, F_OK), -1);
}

static void test_stop_at_any_moment(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 20; i++) {
        bdy_db_check *c = NULL;
        assert_int_equal(bdy_db_check_start(f->path, "test-check", "test", &c, NULL), 0);
        if (i % 2 == 1) {
            struct timespec ts = {0, (long)i * 100000L};
            nanosleep(&ts, NULL);
        }
        bdy_db_check_stop(c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sound_file_passes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_leaf_is_corruption, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file_is_not_damage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_at_any_moment, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
