/* Log lines (include/bindery/log.h): each is one JSON object on one line,
 * whatever bytes the message carries, and no longer than one atomic pipe
 * write. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bindery/log.h"

#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Runs one bdy_warn with stderr sent to a file, and returns what it wrote. */
static char *logged(const char *msg)
{
    char path[] = "/tmp/bdy-test-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    bdy_warn("test", "%s", msg);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    assert_true(len > 0);
    char *out = calloc(1, (size_t)len + 1);
    assert_non_null(out);
    assert_int_equal(pread(fd, out, (size_t)len, 0), len);
    close(fd);
    return out;
}

/* The line parses as JSON, ends with its only newline; its msg. */
static json_object *parsed(const char *line)
{
    size_t n = strlen(line);
    assert_true(n > 0 && line[n - 1] == '\n');
    assert_ptr_equal(strchr(line, '\n'), line + n - 1);
    json_object *o = json_tokener_parse(line);
    assert_non_null(o);
    return o;
}

static void test_not_utf8_is_replaced(void **state)
{
    (void)state;
    /* A raw 0xff (as a client's %ff in a path decodes), a lone
     * continuation byte, an overlong '/', a surrogate, and a sequence cut
     * short by the end: each becomes U+FFFD. Real UTF-8 stays as it is. */
    char *line = logged("a\xff"
                        "b\x80"
                        "c\xc0\xaf"
                        "d\xed\xa0\x80"
                        "e \xc3\xa9\xe2\x82\xac\xf0\x9f\x8e\xae \xe2\x82");
    json_object *o = parsed(line);
    const char *msg = json_object_get_string(json_object_object_get(o, "msg"));
    assert_string_equal(msg, "a\xef\xbf\xbd"
                             "b\xef\xbf\xbd"
                             "c\xef\xbf\xbd\xef\xbf\xbd"
                             "d\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                             "e \xc3\xa9\xe2\x82\xac\xf0\x9f\x8e\xae \xef\xbf\xbd\xef\xbf\xbd");
    json_object_put(o);
    free(line);
}

static void test_quotes_newlines_and_controls_are_escaped(void **state)
{
    (void)state;
    char *line = logged("say \"hi\"\n\t\\ done");
    json_object *o = parsed(line);
    assert_string_equal(json_object_get_string(json_object_object_get(o, "msg")),
                        "say \"hi\"\n\t\\ done");
    json_object_put(o);
    free(line);
}

static void test_long_line_fits_one_pipe_write(void **state)
{
    (void)state;
    char msg[2048];
    /* Each byte escaped into six: cut, never past PIPE_BUF, still JSON. */
    memset(msg, '\x01', sizeof(msg) - 1);
    msg[sizeof(msg) - 1] = '\0';
    char *line = logged(msg);
    assert_true(strlen(line) <= PIPE_BUF);
    json_object_put(parsed(line));
    free(line);
    /* A character at the cut is left out whole, never split: 600
     * escaped controls (3,600 bytes of line) and then 400 euro signs. */
    char mixed[1801];
    memset(mixed, '\x01', 600);
    for (size_t i = 600; i < 1800; i += 3)
        memcpy(mixed + i, "\xe2\x82\xac", 3);
    mixed[1800] = '\0';
    line = logged(mixed);
    assert_true(strlen(line) <= PIPE_BUF);
    json_object *o = parsed(line);
    const char *m = json_object_get_string(json_object_object_get(o, "msg"));
    size_t n = strlen(m);
    assert_true(n > 600 && n < 1800); /* cut */
    assert_int_equal((n - 600) % 3, 0);
    assert_memory_equal(m + n - 3, "\xe2\x82\xac", 3);
    json_object_put(o);
    free(line);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_utf8_is_replaced),
        cmocka_unit_test(test_quotes_newlines_and_controls_are_escaped),
        cmocka_unit_test(test_long_line_fits_one_pipe_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
