/* bdy_json_text_check: RFC 8259's numbers, duplicate keys (decoded, per
 * object), and what it must leave alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bindery/error.h"
#include "bindery/jsonutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check(const char *text, bool no_duplicates, char *why)
{
    return bdy_json_text_check(text, strlen(text), no_duplicates, why, 160);
}

static void test_numbers(void **state)
{
    (void)state;
    char why[160];
    static const char *const good[] = {"0",         "-0",       "0.5",          "10",
                                       "1e10",      "1E+2",     "-1.5e-3",      "[0,1]",
                                       "{\"a\":0}", "[-0.0e0]", "123456789012", NULL};
    for (size_t i = 0; good[i] != NULL; i++)
        if (check(good[i], true, why) != 0)
            fail_msg("%s refused: %s", good[i], why);
    static const char *const bad[] = {"00",
                                      "-01",
                                      "01",
                                      "1.",
                                      "1.e5",
                                      "1e",
                                      "1e+",
                                      "-",
                                      "1-2",
                                      "[0,00]",
                                      "{\"waitSeconds\":00}",
                                      "0.5.1",
                                      NULL};
    for (size_t i = 0; bad[i] != NULL; i++) {
        why[0] = '\0';
        if (check(bad[i], true, why) != BDY_EINVAL)
            fail_msg("%s not refused", bad[i]);
        assert_non_null(strstr(why, "is not JSON"));
    }
    assert_int_equal(check("{\"waitSeconds\":00}", true, why), BDY_EINVAL);
    assert_string_equal(why, "the number 00 at offset 15 is not JSON");
    /* Digits and brackets inside strings are text. */
    assert_int_equal(check("{\"k\":\"{\\\"a\\\":00,\\\"a\\\":1}\",\"01\":\"-\"}", true, why), 0);
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    char why[160];
    assert_int_equal(check("{\"pool\":\"arena\",\"pool\":\"crashy\"}", true, why), BDY_EEXISTS);
    assert_string_equal(why, "duplicate field \"pool\"");
    /* Without the check the text passes (json-c keeps the last). */
    assert_int_equal(check("{\"pool\":\"arena\",\"pool\":\"crashy\"}", false, why), 0);
    /* Decoded: an escape does not hide it, a surrogate pair neither. */
    assert_int_equal(check("{\"p\\u006fol\":1,\"pool\":2}", true, why), BDY_EEXISTS);
    assert_int_equal(check("{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}", true, why),
                     BDY_EEXISTS);
    assert_int_equal(check("{\"a\\nb\":1,\"a\\u000ab\":2}", true, why), BDY_EEXISTS);
    /* Unpaired surrogates all read as U+FFFD, as json-c reads them. */
    assert_int_equal(check("{\"\\ud800\":1,\"\\udbff\":2}", true, why), BDY_EEXISTS);
    assert_int_equal(check("{\"\\udc00x\":1,\"\xef\xbf\xbdx\":2}", true, why), BDY_EEXISTS);
    /* Per object, at any depth. */
    assert_int_equal(
        check("{\"a\":{\"x\":1},\"b\":{\"x\":1},\"c\":[{\"x\":1},{\"x\":2}]}", true, why), 0);
    assert_int_equal(check("{\"a\":1,\"b\":{\"c\":1,\"d\":[{\"e\":1,\"e\":2}]}}", true, why),
                     BDY_EEXISTS);
    assert_string_equal(why, "duplicate field \"e\"");
    /* A value equal to a key is no key. */
    assert_int_equal(check("{\"a\":\"a\",\"b\":\"a\",\"c\":[\"c\",\"c\"]}", true, why), 0);
    /* Keys that share a prefix differ. */
    assert_int_equal(check("{\"ab\":1,\"a\":2,\"abc\":3,\"\":4}", true, why), 0);
    assert_int_equal(check("{\"\":1,\"\":2}", true, why), BDY_EEXISTS);
    /* Many keys, and the twice-given one the last of them. */
    size_t cap = 20000 * 20 + 64;
    char *big = malloc(cap);
    assert_non_null(big);
    size_t n = (size_t)snprintf(big, cap, "{");
    for (int i = 0; i < 20000; i++)
        n += (size_t)snprintf(big + n, cap - n, "%s\"k%d\":%d", i ? "," : "", i, i);
    snprintf(big + n, cap - n, "}");
    assert_int_equal(check(big, true, why), 0);
    snprintf(big + n, cap - n, ",\"k19999\":0}");
    assert_int_equal(check(big, true, why), BDY_EEXISTS);
    assert_string_equal(why, "duplicate field \"k19999\"");
    free(big);
}

/* What json-c reads but JSON has not is refused: a single-quoted key
 * would hide from the duplicate check ({"pool":"a",'pool':"b"} claimed
 * from b), and so would a comment that holds a quote. */
static void test_not_json(void **state)
{
    (void)state;
    char why[160];
    static const char *const bad[] = {"{\"pool\":\"arena\",'pool':\"crashy\"}",
                                      "{\"pool\":\"a\",/*\"*/\"pool\":\"b\"/*\"*/}",
                                      "{\"a\":1 // note\n}",
                                      "[1,2,]",
                                      "{\"a\":1,}",
                                      "{\"a\":1 , }",
                                      "{\"a\":NaN}",
                                      "{\"a\":tru}",
                                      "{\"a\":nul}",
                                      "{\"a\":True}",
                                      "{a:1}",
                                      NULL};
    for (size_t i = 0; bad[i] != NULL; i++) {
        why[0] = '\0';
        if (check(bad[i], true, why) != BDY_EINVAL)
            fail_msg("%s not refused", bad[i]);
        assert_non_null(strstr(why, "not JSON"));
    }
    assert_int_equal(check("{\"pool\":\"arena\",'pool':\"crashy\"}", true, why), BDY_EINVAL);
    assert_string_equal(why, "''' at offset 16 is not JSON");
    assert_int_equal(
        check("{\"a\":true,\"b\":false,\"c\":null,\"d\":[true , null]}\r\n", true, why), 0);
}

/* Broken text is the parser's to judge; nothing here reads past it. */
static void test_broken_text(void **state)
{
    (void)state;
    char why[160];
    assert_int_equal(check("{\"a", true, why), BDY_EINVAL);
    assert_int_equal(check("{\"a\\u00", true, why), BDY_EINVAL);
    assert_int_equal(check("{\"a\\u00\":1,\"a\\u00\":2}", true, why), BDY_EINVAL);
    assert_int_equal(check("}}]]", true, why), 0);
    assert_int_equal(check("{{{{[[[", true, why), 0);
    /* Deeper than the levels kept inline, and a key twice at the bottom. */
    char deep[256] = "";
    for (int i = 0; i < 30; i++)
        strcat(deep, "{\"a\":");
    strcat(deep, "{\"k\":1,\"k\":2}");
    for (int i = 0; i < 30; i++)
        strcat(deep, "}");
    assert_int_equal(check(deep, true, why), BDY_EEXISTS);
    assert_string_equal(why, "duplicate field \"k\"");
    assert_int_equal(check("", true, why), 0);
    /* Length, not NUL, ends it. */
    const char text[] = {'{', '"', 'a', '"', ':', '0', '0'};
    assert_int_equal(bdy_json_text_check(text, 6, true, why, sizeof(why)), 0);
    assert_int_equal(bdy_json_text_check(text, 7, true, why, sizeof(why)), BDY_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_not_json),
        cmocka_unit_test(test_broken_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
