/* Shared helpers: capped buffers, timestamps, random names, hashing, error
 * codes, log levels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bindery/error.h"
#include "bindery/jsonutil.h"
#include "bindery/log.h"
#include "bindery/util.h"

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void test_buf_respects_cap(void **state)
{
    (void)state;
    bdy_buf b;
    bdy_buf_init(&b, 10);
    assert_int_equal(bdy_buf_appends(&b, "hello"), 0);
    assert_int_equal(bdy_buf_printf(&b, "%d", 1234), 0);
    assert_string_equal(b.data, "hello1234");
    assert_int_equal(bdy_buf_appends(&b, "xy"), BDY_ETOOBIG);
    assert_string_equal(b.data, "hello1234"); /* nothing partial appended */
    assert_int_equal(bdy_buf_appends(&b, "z"), 0);
    assert_int_equal(b.len, 10);
    assert_int_equal(bdy_buf_printf(&b, "%s", "q"), BDY_ETOOBIG);
    /* Dropping the front makes room under the cap again. */
    bdy_buf_drop_front(&b, 5);
    assert_string_equal(b.data, "1234z");
    assert_int_equal(bdy_buf_appends(&b, "abcde"), 0);
    assert_string_equal(b.data, "1234zabcde");
    bdy_buf_drop_front(&b, 5);
    assert_string_equal(b.data, "abcde");
    bdy_buf_drop_front(&b, 0);
    assert_string_equal(b.data, "abcde");
    bdy_buf_drop_front(&b, 5);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_int_equal(bdy_buf_appends(&b, "hello1234z"), 0);
    char *s = bdy_buf_steal(&b);
    assert_string_equal(s, "hello1234z");
    assert_int_equal(b.len, 0);
    free(s);
    bdy_buf_free(&b);
    bdy_buf_free(NULL);
}

static void test_timestamps(void **state)
{
    (void)state;
    char ts[BDY_TIMESTAMP_LEN];
    bdy_timestamp_now(ts);
    assert_int_equal(strlen(ts), 27);
    assert_int_equal(ts[26], 'Z');
    double now = bdy_wall_seconds();
    double parsed = 0;
    assert_int_equal(bdy_timestamp_parse(ts, &parsed), 0);
    assert_true(parsed <= now + 0.001 && parsed > now - 5);
    bdy_timestamp_now_seconds(ts);
    assert_int_equal(strlen(ts), 20);

    assert_int_equal(bdy_timestamp_parse("1970-01-01T00:00:10Z", &parsed), 0);
    assert_true(parsed == 10.0);
    assert_int_equal(bdy_timestamp_parse("1970-01-01T01:00:00+01:00", &parsed), 0);
    assert_true(parsed == 0.0);
    assert_int_equal(bdy_timestamp_parse("2028-02-29T00:00:00Z", &parsed), 0); /* a leap day */
    assert_int_equal(bdy_timestamp_parse("2000-02-29T00:00:00Z", &parsed), 0);
    assert_int_equal(bdy_timestamp_parse("2026-11-27T20:15:02.5Z", &parsed), 0);
    assert_true(parsed - (double)(long)parsed == 0.5);
    const char *bad[] = {"",
                         "2026-11-27",
                         "2026-13-01T00:00:00Z",
                         "2026-11-27T20:15:02",
                         "2026-11-27T20:15:02.Z",
                         "2026-11-27T20:15:02Zjunk",
                         "2026-11-27 20:15:02Z",
                         "2026-11-27T25:00:00Z",
                         "2026-02-29T00:00:00Z",
                         "2026-02-31T00:00:00Z",
                         "2026-04-31T00:00:00Z",
                         "1900-02-29T00:00:00Z"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(bdy_timestamp_parse(bad[i], &parsed), BDY_EINVAL);
}

static void test_random_names_and_hashes(void **state)
{
    (void)state;
    char a[6];
    char b[6];
    bdy_random_suffix(a, 5);
    bdy_random_suffix(b, 5);
    assert_int_equal(strlen(a), 5);
    assert_int_equal(strspn(a, "bcdfghjklmnpqrstvwxz2456789"), 5);
    char u[37];
    bdy_uuid4(u);
    assert_int_equal(strlen(u), 36);
    assert_int_equal(u[14], '4');
    assert_non_null(strchr("89ab", u[19]));
    char h[17];
    bdy_random_hex(h, 16);
    assert_int_equal(strspn(h, "0123456789abcdef"), 16);
    char hex[65];
    bdy_sha256_hex("test", 4, hex);
    assert_string_equal(hex, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
    assert_true(bdy_ct_equal("abc", "abc", 3));
    assert_false(bdy_ct_equal("abc", "abd", 3));
    /* 100 suffixes of 5 from 27 symbols: a collision would be a broken RNG. */
    char seen[100][6];
    for (int i = 0; i < 100; i++) {
        bdy_random_suffix(seen[i], 5);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(seen[i], seen[j]);
    }
}

#define DRAWS 2000
typedef char hex_id[16];

static void *draw_hex_ids(void *arg)
{
    hex_id *ids = arg;
    for (int i = 0; i < DRAWS; i++)
        bdy_random_hex(ids[i], 15);
    return NULL;
}

static int compare_ids(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Ids come from per-thread buffers of random bytes refilled many times
 * over here (15 hex characters take 8 bytes): odd lengths are exact, every
 * digit turns up at every position, and no id repeats within a thread or
 * across two threads (a shared or reused buffer would repeat them). */
static void test_random_hex_across_refills_and_threads(void **state)
{
    (void)state;
    hex_id *ids = calloc(2 * DRAWS, sizeof(hex_id));
    assert_non_null(ids);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, draw_hex_ids, ids + DRAWS), 0);
    draw_hex_ids(ids);
    assert_int_equal(pthread_join(t, NULL), 0);
    unsigned seen[15][16] = {{0}};
    for (int i = 0; i < 2 * DRAWS; i++) {
        assert_int_equal(strlen(ids[i]), 15);
        assert_int_equal(strspn(ids[i], "0123456789abcdef"), 15);
        for (int p = 0; p < 15; p++) {
            char c = ids[i][p];
            seen[p][c <= '9' ? c - '0' : c - 'a' + 10]++;
        }
    }
    /* 4,000 draws per position: each digit is expected 250 times. */
    for (int p = 0; p < 15; p++) {
        for (int v = 0; v < 16; v++)
            assert_in_range(seen[p][v], 150, 350);
    }
    qsort(ids, 2 * DRAWS, sizeof(hex_id), compare_ids);
    for (int i = 1; i < 2 * DRAWS; i++)
        assert_string_not_equal(ids[i - 1], ids[i]);
    free(ids);
}

static void test_errors_and_levels(void **state)
{
    (void)state;
    assert_string_equal(bdy_strerror(BDY_ENOTFOUND), "not found");
    assert_string_equal(bdy_errname(BDY_ECONFLICT), "CONFLICT");
    assert_string_equal(bdy_strerror(-999), "unknown error");
    assert_string_equal(bdy_errname(0), "OK");
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_fail(&eb, BDY_EINVAL, "bad %s", "thing"), BDY_EINVAL);
    assert_string_equal(eb.message, "bad thing");
    for (int i = 0; i < BDY_ERRBUF_MAX_CAUSES + 3; i++)
        bdy_errbuf_add_cause(&eb, "FieldValueInvalid", "spec.x", "n=%d", i);
    assert_int_equal(eb.ncauses, BDY_ERRBUF_MAX_CAUSES);
    assert_string_equal(eb.causes[1].message, "n=1");
    assert_int_equal(bdy_fail(NULL, BDY_EIO, "ignored"), BDY_EIO);
    bdy_log_level lvl;
    assert_int_equal(bdy_log_parse_level("warn", &lvl), 0);
    assert_int_equal(lvl, BDY_LOG_WARN);
    assert_int_equal(bdy_log_parse_level("verbose", &lvl), BDY_EINVAL);
}

static void test_read_file_caps(void **state)
{
    (void)state;
    char path[] = "/tmp/bdy-util-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "0123456789", 10), 10);
    close(fd);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(bdy_read_file(path, 10, &data, &len), 0);
    assert_int_equal(len, 10);
    assert_string_equal(data, "0123456789");
    free(data);
    data = NULL;
    assert_int_equal(bdy_read_file(path, 9, &data, &len), BDY_ETOOBIG);
    assert_null(data);
    unlink(path);
    assert_int_equal(bdy_read_file(path, 9, &data, &len), BDY_ENOTFOUND);
    assert_int_equal(bdy_read_file("/tmp", 9, &data, &len), BDY_EINVAL);
}

/* se.slice (ns) from a /proc .../sched file, or -1. */
static long long slice_of(const char *sched_path)
{
    FILE *f = fopen(sched_path, "r");
    if (f == NULL)
        return -1;
    char line[256];
    long long v = -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "se.slice", 8) == 0) {
            const char *colon = strchr(line, ':');
            v = colon != NULL ? atoll(colon + 1) : -1;
            break;
        }
    }
    fclose(f);
    return v;
}

static void *report_slice(void *out)
{
    *(long long *)out = slice_of("/proc/thread-self/sched");
    return NULL;
}

static void test_short_slice_not_inherited_by_worlds(void **state)
{
    (void)state;
    const long long want = (long long)BDY_SCHED_SLICE_US * 1000;
    if (bdy_sched_short_slice(false) != 0 || slice_of("/proc/thread-self/sched") != want)
        skip(); /* a kernel without slices of one's own (before 6.12) */
    /* Threads created afterwards inherit it ... */
    pthread_t t;
    long long thread_slice = -1;
    assert_int_equal(pthread_create(&t, NULL, report_slice, &thread_slice), 0);
    pthread_join(t, NULL);
    assert_int_equal(thread_slice, want);

    /* ... unless the creator asked for a reset: a spawned world does not. */
    assert_int_equal(bdy_sched_short_slice(true), 0);
    assert_int_equal(slice_of("/proc/thread-self/sched"), want);
    char *argv[] = {"sleep", "5", NULL};
    pid_t pid = -1;
    assert_int_equal(posix_spawn(&pid, "/bin/sleep", NULL, NULL, argv, environ), 0);
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/sched", (int)pid);
    long long child_slice = slice_of(path);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    assert_true(child_slice > 0);
    assert_int_not_equal(child_slice, want);
    /* Back to an inheritable short slice for whatever runs next here. */
    assert_int_equal(bdy_sched_short_slice(false), 0);
}

/* bdy_jint takes a double only when it is a whole number within int64. */
static void test_jint(void **state)
{
    (void)state;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "i", json_object_new_int64(-5));
    json_object_object_add(o, "whole", json_object_new_double(30.0));
    json_object_object_add(o, "part", json_object_new_double(1.9));
    json_object_object_add(o, "nan", json_object_new_double(NAN));
    json_object_object_add(o, "huge", json_object_new_double(1e300));
    json_object_object_add(o, "s", json_object_new_string("7"));
    assert_int_equal(bdy_jint(o, "i", 1), -5);
    assert_int_equal(bdy_jint(o, "whole", 1), 30);
    assert_int_equal(bdy_jint(o, "part", 99), 99);
    assert_int_equal(bdy_jint(o, "nan", 99), 99);
    assert_int_equal(bdy_jint(o, "huge", 99), 99);
    assert_int_equal(bdy_jint(o, "s", 99), 99);
    assert_int_equal(bdy_jint(o, "absent", 99), 99);
    json_object_put(o);
}

static void *parse_in_thread(void *out)
{
    json_object *o = bdy_json_parse_stored("{\"n\":7}");
    *(int64_t *)out = bdy_jint(o, "n", -1);
    json_object_put(o);
    return NULL; /* the thread's tokener is freed as it exits */
}

static void test_parse_stored(void **state)
{
    (void)state;
    json_object *o = bdy_json_parse_stored("{\"a\":{\"b\":[1,2]},\"s\":\"x\"}");
    assert_non_null(o);
    assert_string_equal(bdy_jstr(o, "s"), "x");
    json_object_put(o);
    /* Errors leave no state behind in the kept tokener. */
    assert_null(bdy_json_parse_stored("{\"a\":"));
    assert_null(bdy_json_parse_stored("nonsense"));
    assert_null(bdy_json_parse_stored(NULL));
    o = bdy_json_parse_stored("{\"after\":true}");
    assert_non_null(o);
    assert_non_null(bdy_jget(o, "after"));
    json_object_put(o);
    /* Another thread parses with a tokener of its own. */
    pthread_t t;
    int64_t n = 0;
    assert_int_equal(pthread_create(&t, NULL, parse_in_thread, &n), 0);
    pthread_join(t, NULL);
    assert_int_equal(n, 7);
}

static void test_utf8_validation(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        bool valid;
    } cases[] = {
        {"", true},
        {"plain ascii", true},
        {"\xc3\xa9", true},               /* U+00E9 */
        {"\xe2\x82\xac", true},           /* U+20AC */
        {"\xef\xbf\xbf", true},           /* U+FFFF */
        {"\xf0\x9f\x8e\xae", true},       /* U+1F3AE */
        {"\xf4\x8f\xbf\xbf", true},       /* U+10FFFF, the last */
        {"\xff", false},                  /* never in UTF-8 */
        {"\x80", false},                  /* a lone continuation */
        {"\xc0\xaf", false},              /* overlong '/' */
        {"\xc1\xbf", false},              /* overlong */
        {"\xe0\x80\xaf", false},          /* overlong */
        {"\xf0\x80\x80\xaf", false},      /* overlong */
        {"\xed\xa0\x80", false},          /* surrogate U+D800 */
        {"\xf4\x90\x80\x80", false},      /* past U+10FFFF */
        {"\xf5\x80\x80\x80", false},      /* past U+10FFFF */
        {"\xe2\x82", false},              /* cut short */
        {"\xe2\x28\xa1", false},          /* bad continuation */
        {"ok \xc3\xa9 then \xc3", false}, /* cut short at the end */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (bdy_utf8_valid(cases[i].bytes, strlen(cases[i].bytes)) != cases[i].valid)
            fail_msg("case %zu: expected %s", i, cases[i].valid ? "valid" : "invalid");
    }
    /* Length counts, not NUL: a NUL byte is valid UTF-8 (U+0000). */
    assert_true(bdy_utf8_valid("a\0b", 3));
    assert_false(bdy_utf8_valid("\xc3\xa9", 1));
}

/* One line per period; the next one admitted says how many were held. */
static void test_log_admit(void **state)
{
    (void)state;
    /* A period no scheduler delay outlasts: the refusals are certain. */
    bdy_log_limit l = {0};
    uint64_t held = 99;
    assert_true(bdy_log_admit(&l, 600000, &held));
    assert_int_equal(held, 0);
    assert_false(bdy_log_admit(&l, 600000, &held));
    assert_false(bdy_log_admit(&l, 600000, &held));
    atomic_store(&l.next_ns, 0); /* the period is over */
    assert_true(bdy_log_admit(&l, 600000, &held));
    assert_int_equal(held, 2);
    /* A short period passes on its own. */
    bdy_log_limit s = {0};
    assert_true(bdy_log_admit(&s, 5, &held));
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
    assert_true(bdy_log_admit(&s, 5, &held));
}

/* A failed write makes the check fail, naming the file and the cause,
 * until a write succeeds. */
static void test_write_health(void **state)
{
    (void)state;
    bdy_write_health h;
    bdy_write_health_init(&h);
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_write_health_check(&h, "claims.db", &eb), 0);
    bdy_write_health_ok(&h);
    bdy_write_health_failed(&h, "database or disk is full");
    assert_int_equal(bdy_write_health_check(&h, "claims.db", &eb), BDY_EIO);
    assert_non_null(strstr(eb.message, "claims.db: the last write failed"));
    assert_non_null(strstr(eb.message, "database or disk is full"));
    bdy_write_health_ok(&h);
    assert_int_equal(bdy_write_health_check(&h, "claims.db", &eb), 0);
    /* A success and a failure in the same clock tick: the later counts. */
    bdy_write_health_ok(&h);
    bdy_write_health_failed(&h, "disk I/O error");
    assert_int_equal(bdy_write_health_check(&h, "claims.db", &eb), BDY_EIO);
    bdy_write_health_ok(&h);
    assert_int_equal(bdy_write_health_check(&h, "claims.db", &eb), 0);
    bdy_write_health_destroy(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_respects_cap),
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_random_names_and_hashes),
        cmocka_unit_test(test_random_hex_across_refills_and_threads),
        cmocka_unit_test(test_errors_and_levels),
        cmocka_unit_test(test_read_file_caps),
        cmocka_unit_test(test_short_slice_not_inherited_by_worlds),
        cmocka_unit_test(test_jint),
        cmocka_unit_test(test_parse_stored),
        cmocka_unit_test(test_utf8_validation),
        cmocka_unit_test(test_log_admit),
        cmocka_unit_test(test_write_health),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
