/* Unit tests for reconciler/kubewatch.c: the watch-stream line splitter
 * (lines split across chunk boundaries at every possible position, CRLF,
 * blank lines, the line cap), watch event decoding and Status objects. */
#include "bindery/kubewatch.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

typedef struct collected {
    char lines[16][256];
    size_t n;
    int stop_at; /* return non-zero at this line (0 = never) */
} collected;

static int collect_cb(const char *line, size_t len, void *data)
{
    collected *c = data;
    assert_int_equal(strlen(line), len); /* NUL-terminated */
    assert_true(c->n < 16);
    snprintf(c->lines[c->n], sizeof(c->lines[0]), "%s", line);
    c->n++;
    return c->stop_at != 0 && (int)c->n == c->stop_at ? 42 : 0;
}

static const char stream[] =
    "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"}}}\n"
    "\r\n"
    "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"b\"}}}\r\n"
    "\n"
    "{\"type\":\"DELETED\",\"object\":{}}\n";

static void check_three(const collected *c)
{
    assert_int_equal(c->n, 3);
    assert_string_equal(c->lines[0],
                        "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"}}}");
    assert_string_equal(c->lines[1],
                        "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"b\"}}}");
    assert_string_equal(c->lines[2], "{\"type\":\"DELETED\",\"object\":{}}");
}

static void test_split_every_boundary(void **state)
{
    (void)state;
    size_t len = strlen(stream);
    /* Two chunks, cut at every position. */
    for (size_t cut = 0; cut <= len; cut++) {
        bdy_linesplit ls;
        bdy_linesplit_init(&ls, 1024);
        collected c = {0};
        assert_int_equal(bdy_linesplit_feed(&ls, stream, cut, collect_cb, &c), 0);
        assert_int_equal(bdy_linesplit_feed(&ls, stream + cut, len - cut, collect_cb, &c), 0);
        check_three(&c);
        assert_int_equal(bdy_linesplit_pending(&ls), 0);
        bdy_linesplit_free(&ls);
    }
    /* One byte at a time. */
    bdy_linesplit ls;
    bdy_linesplit_init(&ls, 1024);
    collected c = {0};
    for (size_t i = 0; i < len; i++)
        assert_int_equal(bdy_linesplit_feed(&ls, stream + i, 1, collect_cb, &c), 0);
    check_three(&c);
    /* An unfinished line stays pending until its newline comes. */
    assert_int_equal(bdy_linesplit_feed(&ls, "{\"partial", 9, collect_cb, &c), 0);
    assert_int_equal(bdy_linesplit_pending(&ls), 9);
    assert_int_equal(c.n, 3);
    bdy_linesplit_reset(&ls);
    assert_int_equal(bdy_linesplit_pending(&ls), 0);
    bdy_linesplit_free(&ls);
}

static void test_cap_and_stop(void **state)
{
    (void)state;
    bdy_linesplit ls;
    bdy_linesplit_init(&ls, 8);
    collected c = {0};
    assert_int_equal(bdy_linesplit_feed(&ls, "12345678\n", 9, collect_cb, &c), 0);
    assert_int_equal(c.n, 1);
    /* Nine bytes without a newline, across two chunks: over the cap. */
    assert_int_equal(bdy_linesplit_feed(&ls, "12345", 5, collect_cb, &c), 0);
    assert_int_equal(bdy_linesplit_feed(&ls, "6789", 4, collect_cb, &c), BDY_ETOOBIG);
    assert_int_equal(bdy_linesplit_pending(&ls), 0);
    bdy_linesplit_free(&ls);

    /* The callback's non-zero value stops the feed and is returned. */
    bdy_linesplit_init(&ls, 64);
    collected s = {.stop_at = 2};
    assert_int_equal(bdy_linesplit_feed(&ls, "a\nb\nc\n", 6, collect_cb, &s), 42);
    assert_int_equal(s.n, 2);
    bdy_linesplit_free(&ls);
}

static void test_event_parse(void **state)
{
    (void)state;
    bdy_watch_type t;
    json_object *obj = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    const char *ok = "{\"type\":\"MODIFIED\",\"object\":{\"status\":{\"phase\":\"Ready\"}}}";
    assert_int_equal(bdy_watch_event_parse(ok, strlen(ok), &t, &obj, &eb), 0);
    assert_int_equal(t, BDY_WATCH_MODIFIED);
    assert_string_equal(bdy_watch_type_name(t), "MODIFIED");
    assert_non_null(obj);
    json_object_put(obj);

    const char *bookmark = "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"WorldInstance\","
                           "\"metadata\":{\"resourceVersion\":\"12746\"}}}";
    assert_int_equal(bdy_watch_event_parse(bookmark, strlen(bookmark), &t, &obj, &eb), 0);
    assert_int_equal(t, BDY_WATCH_BOOKMARK);
    json_object_put(obj);

    static const struct {
        const char *line;
        const char *why;
    } bad[] = {
        {"not json", "not one JSON object"},
        {"{\"type\":\"ADDED\",\"object\":{}} {}", "not one JSON object"},
        {"{\"object\":{}}", "without a type"},
        {"{\"type\":\"RENAMED\",\"object\":{}}", "unknown watch event type"},
        {"{\"type\":\"ADDED\"}", "without an object"},
        {"{\"type\":\"ADDED\",\"object\":[1]}", "without an object"},
        {"{\"type\":\"ADDED\",\"object\":{}", "not one JSON object"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bdy_errbuf_clear(&eb);
        assert_int_equal(bdy_watch_event_parse(bad[i].line, strlen(bad[i].line), &t, &obj, &eb),
                         BDY_EPARSE);
        assert_null(obj);
        if (strstr(eb.message, bad[i].why) == NULL)
            fail_msg("%s: got \"%s\"", bad[i].line, eb.message);
    }
}

static void test_status(void **state)
{
    (void)state;
    const char *gone = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":"
                       "\"Failure\",\"message\":\"too old resource version: 5 (100)\","
                       "\"reason\":\"Expired\",\"code\":410}";
    bdy_kube_status st;
    assert_int_equal(bdy_kube_status_parse(gone, strlen(gone), &st), 0);
    assert_int_equal(st.code, 410);
    assert_string_equal(st.reason, "Expired");
    assert_string_equal(st.status, "Failure");
    assert_string_equal(st.message, "too old resource version: 5 (100)");
    const char *notstatus = "{\"kind\":\"WorldInstance\"}";
    assert_int_equal(bdy_kube_status_parse(notstatus, strlen(notstatus), &st), BDY_EINVAL);
    assert_int_equal(bdy_kube_status_parse("{", 1, &st), BDY_EINVAL);
    assert_int_equal(bdy_kube_status_parse(NULL, 0, &st), BDY_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_every_boundary),
        cmocka_unit_test(test_cap_and_stop),
        cmocka_unit_test(test_event_parse),
        cmocka_unit_test(test_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
