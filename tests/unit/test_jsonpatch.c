/* Unit tests for reconciler/jsonpatch.c: every example of RFC 7386
 * (section 3 and appendix A) and RFC 6902 appendix A, the RFC 6901 section 5
 * pointer examples, array index rules, malformed patches, the operation cap,
 * and that inputs are never modified. */
#include "bindery/jsonpatch.h"
#include "bindery/jsonutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Parses test JSON; "null" legitimately gives NULL, anything else must parse. */
static json_object *parse_json(const char *text)
{
    json_object *o = json_tokener_parse(text);
    if (o == NULL && strcmp(text, "null") != 0)
        fail_msg("test JSON does not parse: %s", text);
    return o;
}

/* Serialises for before/after comparisons; caller frees. */
static char *dump(json_object *o)
{
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
    char *copy = strdup(s);
    assert_non_null(copy);
    return copy;
}

static void assert_json_equal(json_object *got, const char *want_text, const char *what)
{
    json_object *want = parse_json(want_text);
    if (!json_object_equal(got, want))
        fail_msg("%s:\n got: %s\nwant: %s", what,
                 json_object_to_json_string_ext(got, JSON_C_TO_STRING_PLAIN), want_text);
    json_object_put(want);
}

/* ---- RFC 7386 ----------------------------------------------------------- */

struct merge_case {
    const char *target;
    const char *patch;
    const char *result;
};

static const struct merge_case merge_cases[] = {
    /* Appendix A, in order. */
    {"{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}"},
    {"{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}"},
    {"{\"a\":\"b\"}", "{\"a\":null}", "{}"},
    {"{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}"},
    {"{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}"},
    {"{\"a\":\"c\"}", "{\"a\":[\"b\"]}", "{\"a\":[\"b\"]}"},
    {"{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}", "{\"a\":{\"b\":\"d\"}}"},
    {"{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}"},
    {"[\"a\",\"b\"]", "[\"c\",\"d\"]", "[\"c\",\"d\"]"},
    {"{\"a\":\"b\"}", "[\"c\"]", "[\"c\"]"},
    {"{\"a\":\"foo\"}", "null", "null"},
    {"{\"a\":\"foo\"}", "\"bar\"", "\"bar\""},
    {"{\"e\":null}", "{\"a\":1}", "{\"e\":null,\"a\":1}"},
    {"[1,2]", "{\"a\":\"b\",\"c\":null}", "{\"a\":\"b\"}"},
    {"{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}"},
    /* Section 3. */
    {"{\"title\":\"Goodbye!\",\"author\":{\"givenName\":\"John\",\"familyName\":\"Doe\"},"
     "\"tags\":[\"example\",\"sample\"],\"content\":\"This will be unchanged\"}",
     "{\"title\":\"Hello!\",\"phoneNumber\":\"+01-123-456-7890\",\"author\":{\"familyName\":null},"
     "\"tags\":[\"example\"]}",
     "{\"title\":\"Hello!\",\"author\":{\"givenName\":\"John\"},\"tags\":[\"example\"],"
     "\"content\":\"This will be unchanged\",\"phoneNumber\":\"+01-123-456-7890\"}"},
    /* Beyond the RFC: scalars and nested objects over non-objects. */
    {"{\"a\":1}", "{\"a\":{\"b\":{\"c\":null,\"d\":[null]}}}", "{\"a\":{\"b\":{\"d\":[null]}}}"},
    {"{\"a\":{\"x\":1}}", "{\"a\":{\"y\":2}}", "{\"a\":{\"x\":1,\"y\":2}}"},
    {"{\"metadata\":{\"labels\":{\"app\":\"demo\",\"old\":\"x\"}}}",
     "{\"metadata\":{\"labels\":{\"old\":null,\"new\":\"y\"}}}",
     "{\"metadata\":{\"labels\":{\"app\":\"demo\",\"new\":\"y\"}}}"},
    {"\"text\"", "{\"a\":null}", "{}"},
    {"{\"a\":1}", "{}", "{\"a\":1}"},
};

static void test_merge_patch_examples(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(merge_cases) / sizeof(merge_cases[0]); i++) {
        const struct merge_case *c = &merge_cases[i];
        json_object *target = parse_json(c->target);
        json_object *patch = parse_json(c->patch);
        char *target_before = dump(target);
        char *patch_before = dump(patch);
        char what[64];

        json_object *got = bdy_merge_patch(target, patch);
        snprintf(what, sizeof(what), "merge case %zu", i);
        assert_json_equal(got, c->result, what);

        /* Neither input changed. */
        char *target_after = dump(target);
        char *patch_after = dump(patch);
        assert_string_equal(target_before, target_after);
        assert_string_equal(patch_before, patch_after);
        free(target_before);
        free(patch_before);
        free(target_after);
        free(patch_after);
        json_object_put(got);
        json_object_put(target);
        json_object_put(patch);
    }
}

static void test_merge_patch_null_target_and_independence(void **state)
{
    (void)state;
    json_object *patch = parse_json("{\"a\":{\"b\":[1,2]},\"c\":null}");
    json_object *got = bdy_merge_patch(NULL, patch);
    assert_json_equal(got, "{\"a\":{\"b\":[1,2]}}", "merge onto NULL");

    /* The result shares nothing with the patch: changing it leaves the
     * patch as it was. */
    json_object *a = NULL;
    assert_true(json_object_object_get_ex(got, "a", &a));
    json_object_object_add(a, "z", json_object_new_int(9));
    assert_json_equal(patch, "{\"a\":{\"b\":[1,2]},\"c\":null}", "patch after edit");

    /* Nor with the target. */
    json_object *target = parse_json("{\"k\":{\"v\":1}}");
    json_object *empty = parse_json("{}");
    json_object *got2 = bdy_merge_patch(target, empty);
    json_object *k = NULL;
    assert_true(json_object_object_get_ex(got2, "k", &k));
    json_object_object_add(k, "v", json_object_new_int(2));
    assert_json_equal(target, "{\"k\":{\"v\":1}}", "target after edit");

    json_object_put(empty);
    json_object_put(got2);
    json_object_put(target);
    json_object_put(got);
    json_object_put(patch);
}

/* ---- RFC 6902 ----------------------------------------------------------- */

struct patch_case {
    const char *name;
    const char *doc;
    const char *patch;
    int rc;
    const char *result; /* when rc == 0 */
};

static const struct patch_case rfc6902_cases[] = {
    {"A.1 adding an object member", "{\"foo\":\"bar\"}",
     "[{\"op\":\"add\",\"path\":\"/baz\",\"value\":\"qux\"}]", 0,
     "{\"baz\":\"qux\",\"foo\":\"bar\"}"},
    {"A.2 adding an array element", "{\"foo\":[\"bar\",\"baz\"]}",
     "[{\"op\":\"add\",\"path\":\"/foo/1\",\"value\":\"qux\"}]", 0,
     "{\"foo\":[\"bar\",\"qux\",\"baz\"]}"},
    {"A.3 removing an object member", "{\"baz\":\"qux\",\"foo\":\"bar\"}",
     "[{\"op\":\"remove\",\"path\":\"/baz\"}]", 0, "{\"foo\":\"bar\"}"},
    {"A.4 removing an array element", "{\"foo\":[\"bar\",\"qux\",\"baz\"]}",
     "[{\"op\":\"remove\",\"path\":\"/foo/1\"}]", 0, "{\"foo\":[\"bar\",\"baz\"]}"},
    {"A.5 replacing a value", "{\"baz\":\"qux\",\"foo\":\"bar\"}",
     "[{\"op\":\"replace\",\"path\":\"/baz\",\"value\":\"boo\"}]", 0,
     "{\"baz\":\"boo\",\"foo\":\"bar\"}"},
    {"A.6 moving a value",
     "{\"foo\":{\"bar\":\"baz\",\"waldo\":\"fred\"},\"qux\":{\"corge\":\"grault\"}}",
     "[{\"op\":\"move\",\"from\":\"/foo/waldo\",\"path\":\"/qux/thud\"}]", 0,
     "{\"foo\":{\"bar\":\"baz\"},\"qux\":{\"corge\":\"grault\",\"thud\":\"fred\"}}"},
    {"A.7 moving an array element", "{\"foo\":[\"all\",\"grass\",\"cows\",\"eat\"]}",
     "[{\"op\":\"move\",\"from\":\"/foo/1\",\"path\":\"/foo/3\"}]", 0,
     "{\"foo\":[\"all\",\"cows\",\"eat\",\"grass\"]}"},
    {"A.8 testing a value: success", "{\"baz\":\"qux\",\"foo\":[\"a\",2,\"c\"]}",
     "[{\"op\":\"test\",\"path\":\"/baz\",\"value\":\"qux\"},"
     "{\"op\":\"test\",\"path\":\"/foo/1\",\"value\":2}]",
     0, "{\"baz\":\"qux\",\"foo\":[\"a\",2,\"c\"]}"},
    {"A.9 testing a value: error", "{\"baz\":\"qux\"}",
     "[{\"op\":\"test\",\"path\":\"/baz\",\"value\":\"bar\"}]", BDY_ECONFLICT, NULL},
    {"A.10 adding a nested member object", "{\"foo\":\"bar\"}",
     "[{\"op\":\"add\",\"path\":\"/child\",\"value\":{\"grandchild\":{}}}]", 0,
     "{\"foo\":\"bar\",\"child\":{\"grandchild\":{}}}"},
    {"A.11 ignoring unrecognized elements", "{\"foo\":\"bar\"}",
     "[{\"op\":\"add\",\"path\":\"/baz\",\"value\":\"qux\",\"xyz\":123}]", 0,
     "{\"foo\":\"bar\",\"baz\":\"qux\"}"},
    {"A.12 adding to a nonexistent target", "{\"foo\":\"bar\"}",
     "[{\"op\":\"add\",\"path\":\"/baz/bat\",\"value\":\"qux\"}]", BDY_ECONFLICT, NULL},
    /* json-c keeps the last of duplicate members, so the operation reads as
     * a remove of a missing member: still an error, as the RFC requires. */
    {"A.13 invalid JSON patch document", "{\"foo\":\"bar\"}",
     "[{\"op\":\"add\",\"path\":\"/baz\",\"value\":\"qux\",\"op\":\"remove\"}]", BDY_ECONFLICT,
     NULL},
    {"A.14 ~ escape ordering", "{\"/\":9,\"~1\":10}",
     "[{\"op\":\"test\",\"path\":\"/~01\",\"value\":10}]", 0, "{\"/\":9,\"~1\":10}"},
    {"A.15 comparing strings and numbers", "{\"/\":9,\"~1\":10}",
     "[{\"op\":\"test\",\"path\":\"/~01\",\"value\":\"10\"}]", BDY_ECONFLICT, NULL},
    {"A.16 adding an array value", "{\"foo\":[\"bar\"]}",
     "[{\"op\":\"add\",\"path\":\"/foo/-\",\"value\":[\"abc\",\"def\"]}]", 0,
     "{\"foo\":[\"bar\",[\"abc\",\"def\"]]}"},
};

static const struct patch_case more_cases[] = {
    /* Whole-document operations. */
    {"replace root", "{\"a\":1}", "[{\"op\":\"replace\",\"path\":\"\",\"value\":[1]}]", 0, "[1]"},
    {"add root", "{\"a\":1}", "[{\"op\":\"add\",\"path\":\"\",\"value\":{\"b\":2}}]", 0,
     "{\"b\":2}"},
    {"remove root", "{\"a\":1}", "[{\"op\":\"remove\",\"path\":\"\"}]", BDY_ECONFLICT, NULL},
    {"test root", "{\"a\":[1,{\"b\":null}]}",
     "[{\"op\":\"test\",\"path\":\"\",\"value\":{\"a\":[1,{\"b\":null}]}}]", 0,
     "{\"a\":[1,{\"b\":null}]}"},
    {"replace null doc", "null", "[{\"op\":\"replace\",\"path\":\"\",\"value\":{\"a\":1}}]", 0,
     "{\"a\":1}"},
    {"add under null doc", "null", "[{\"op\":\"add\",\"path\":\"/a\",\"value\":1}]", BDY_ECONFLICT,
     NULL},
    /* Nulls as values and as targets. */
    {"add null value", "{}", "[{\"op\":\"add\",\"path\":\"/a\",\"value\":null}]", 0,
     "{\"a\":null}"},
    {"test null member", "{\"a\":null}", "[{\"op\":\"test\",\"path\":\"/a\",\"value\":null}]", 0,
     "{\"a\":null}"},
    {"remove null member", "{\"a\":null,\"b\":1}", "[{\"op\":\"remove\",\"path\":\"/a\"}]", 0,
     "{\"b\":1}"},
    {"replace null member", "{\"a\":null}", "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":2}]", 0,
     "{\"a\":2}"},
    {"move null member", "{\"a\":null}", "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/b\"}]", 0,
     "{\"b\":null}"},
    {"walk through null", "{\"a\":null}", "[{\"op\":\"add\",\"path\":\"/a/b\",\"value\":1}]",
     BDY_ECONFLICT, NULL},
    /* Replace and remove need an existing target; add replaces. */
    {"replace missing", "{}", "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":1}]", BDY_ECONFLICT,
     NULL},
    {"remove missing", "{}", "[{\"op\":\"remove\",\"path\":\"/a\"}]", BDY_ECONFLICT, NULL},
    {"add existing member", "{\"a\":1}", "[{\"op\":\"add\",\"path\":\"/a\",\"value\":2}]", 0,
     "{\"a\":2}"},
    {"test missing", "{}", "[{\"op\":\"test\",\"path\":\"/a\",\"value\":null}]", BDY_ECONFLICT,
     NULL},
    {"add into scalar", "{\"a\":1}", "[{\"op\":\"add\",\"path\":\"/a/b\",\"value\":1}]",
     BDY_ECONFLICT, NULL},
    /* Arrays. */
    {"add at end index", "{\"a\":[1,2]}", "[{\"op\":\"add\",\"path\":\"/a/2\",\"value\":3}]", 0,
     "{\"a\":[1,2,3]}"},
    {"add at start", "{\"a\":[1,2]}", "[{\"op\":\"add\",\"path\":\"/a/0\",\"value\":0}]", 0,
     "{\"a\":[0,1,2]}"},
    {"add to empty with -", "{\"a\":[]}", "[{\"op\":\"add\",\"path\":\"/a/-\",\"value\":1}]", 0,
     "{\"a\":[1]}"},
    {"add past end", "{\"a\":[1,2]}", "[{\"op\":\"add\",\"path\":\"/a/3\",\"value\":3}]",
     BDY_ECONFLICT, NULL},
    {"remove past end", "{\"a\":[1,2]}", "[{\"op\":\"remove\",\"path\":\"/a/2\"}]", BDY_ECONFLICT,
     NULL},
    {"remove -", "{\"a\":[1,2]}", "[{\"op\":\"remove\",\"path\":\"/a/-\"}]", BDY_ECONFLICT, NULL},
    {"test -", "{\"a\":[1]}", "[{\"op\":\"test\",\"path\":\"/a/-\",\"value\":1}]", BDY_ECONFLICT,
     NULL},
    {"replace array element", "{\"a\":[1,2]}",
     "[{\"op\":\"replace\",\"path\":\"/a/1\",\"value\":{\"x\":1}}]", 0, "{\"a\":[1,{\"x\":1}]}"},
    {"leading zero index", "{\"a\":[1,2]}", "[{\"op\":\"remove\",\"path\":\"/a/01\"}]", BDY_EINVAL,
     NULL},
    {"leading zero add", "{\"a\":[1,2]}", "[{\"op\":\"add\",\"path\":\"/a/00\",\"value\":0}]",
     BDY_EINVAL, NULL},
    {"negative index", "{\"a\":[1,2]}", "[{\"op\":\"remove\",\"path\":\"/a/-1\"}]", BDY_EINVAL,
     NULL},
    {"non-digit index", "{\"a\":[1,2]}", "[{\"op\":\"test\",\"path\":\"/a/1e0\",\"value\":2}]",
     BDY_EINVAL, NULL},
    {"space in index", "{\"a\":[1,2]}", "[{\"op\":\"test\",\"path\":\"/a/ 1\",\"value\":2}]",
     BDY_EINVAL, NULL},
    {"empty index", "{\"a\":[1,2]}", "[{\"op\":\"test\",\"path\":\"/a/\",\"value\":2}]", BDY_EINVAL,
     NULL},
    {"huge index", "{\"a\":[1]}",
     "[{\"op\":\"test\",\"path\":\"/a/99999999999999999999999\",\"value\":1}]", BDY_EINVAL, NULL},
    {"big in-range-syntax index", "{\"a\":[1]}",
     "[{\"op\":\"test\",\"path\":\"/a/4294967296\",\"value\":1}]", BDY_ECONFLICT, NULL},
    {"index on object is a key", "{\"a\":{\"01\":1}}",
     "[{\"op\":\"test\",\"path\":\"/a/01\",\"value\":1}]", 0, "{\"a\":{\"01\":1}}"},
    {"- on object is a key", "{\"a\":{}}", "[{\"op\":\"add\",\"path\":\"/a/-\",\"value\":1}]", 0,
     "{\"a\":{\"-\":1}}"},
    /* Pointer syntax. */
    {"pointer without slash", "{\"a\":1}", "[{\"op\":\"remove\",\"path\":\"a\"}]", BDY_EINVAL,
     NULL},
    {"bad ~ escape", "{\"a~2\":1}", "[{\"op\":\"remove\",\"path\":\"/a~2\"}]", BDY_EINVAL, NULL},
    {"trailing ~", "{\"a~\":1}", "[{\"op\":\"remove\",\"path\":\"/a~\"}]", BDY_EINVAL, NULL},
    {"~1 escape", "{\"a/b\":1}", "[{\"op\":\"remove\",\"path\":\"/a~1b\"}]", 0, "{}"},
    {"~0 escape", "{\"a~b\":1}", "[{\"op\":\"replace\",\"path\":\"/a~0b\",\"value\":2}]", 0,
     "{\"a~b\":2}"},
    {"~01 is ~1 not /", "{\"~1\":1,\"/\":2}", "[{\"op\":\"remove\",\"path\":\"/~01\"}]", 0,
     "{\"/\":2}"},
    {"empty key", "{\"\":1}", "[{\"op\":\"remove\",\"path\":\"/\"}]", 0, "{}"},
    {"NUL in pointer", "{\"a\":1}", "[{\"op\":\"remove\",\"path\":\"/a\\u0000b\"}]", BDY_EINVAL,
     NULL},
    /* move and copy. */
    {"move into own child", "{\"a\":{\"b\":1}}",
     "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/a/c\"}]", BDY_EINVAL, NULL},
    {"move root into child", "{\"a\":1}", "[{\"op\":\"move\",\"from\":\"\",\"path\":\"/b\"}]",
     BDY_EINVAL, NULL},
    {"move to sibling with shared prefix", "{\"a\":1}",
     "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/ab\"}]", 0, "{\"ab\":1}"},
    {"move onto itself", "{\"a\":{\"b\":1}}", "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/a\"}]",
     0, "{\"a\":{\"b\":1}}"},
    {"move missing", "{}", "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/b\"}]", BDY_ECONFLICT,
     NULL},
    {"move up replaces ancestor", "{\"a\":{\"b\":{\"c\":1}}}",
     "[{\"op\":\"move\",\"from\":\"/a/b\",\"path\":\"/a\"}]", 0, "{\"a\":{\"c\":1}}"},
    {"move to root", "{\"a\":{\"b\":1}}", "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"\"}]", 0,
     "{\"b\":1}"},
    {"move to bad target", "{\"a\":1}", "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/x/y\"}]",
     BDY_ECONFLICT, NULL},
    {"move array element to front", "{\"a\":[1,2,3]}",
     "[{\"op\":\"move\",\"from\":\"/a/2\",\"path\":\"/a/0\"}]", 0, "{\"a\":[3,1,2]}"},
    {"copy", "{\"a\":{\"b\":1}}", "[{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"/c\"}]", 0,
     "{\"a\":{\"b\":1},\"c\":{\"b\":1}}"},
    {"copy into own child", "{\"a\":{\"b\":1}}",
     "[{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"/a/c\"}]", 0,
     "{\"a\":{\"b\":1,\"c\":{\"b\":1}}}"},
    {"copy array element", "{\"a\":[1,2]}",
     "[{\"op\":\"copy\",\"from\":\"/a/0\",\"path\":\"/a/-\"}]", 0, "{\"a\":[1,2,1]}"},
    {"copy missing", "{}", "[{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"/b\"}]", BDY_ECONFLICT,
     NULL},
    /* test equality. */
    {"test int vs double", "{\"a\":1}", "[{\"op\":\"test\",\"path\":\"/a\",\"value\":1.0}]", 0,
     "{\"a\":1}"},
    {"test double vs int nested", "{\"a\":[{\"x\":2.0}]}",
     "[{\"op\":\"test\",\"path\":\"/a\",\"value\":[{\"x\":2}]}]", 0, "{\"a\":[{\"x\":2.0}]}"},
    {"test object key order", "{\"a\":{\"x\":1,\"y\":2}}",
     "[{\"op\":\"test\",\"path\":\"/a\",\"value\":{\"y\":2,\"x\":1}}]", 0,
     "{\"a\":{\"x\":1,\"y\":2}}"},
    {"test object extra key", "{\"a\":{\"x\":1}}",
     "[{\"op\":\"test\",\"path\":\"/a\",\"value\":{\"x\":1,\"y\":2}}]", BDY_ECONFLICT, NULL},
    {"test array order", "{\"a\":[1,2]}", "[{\"op\":\"test\",\"path\":\"/a\",\"value\":[2,1]}]",
     BDY_ECONFLICT, NULL},
    {"test bool vs int", "{\"a\":true}", "[{\"op\":\"test\",\"path\":\"/a\",\"value\":1}]",
     BDY_ECONFLICT, NULL},
    {"test null vs missing-like", "{\"a\":0}", "[{\"op\":\"test\",\"path\":\"/a\",\"value\":null}]",
     BDY_ECONFLICT, NULL},
    /* Malformed patch documents. */
    {"not an array", "{}", "{\"op\":\"add\",\"path\":\"/a\",\"value\":1}", BDY_EINVAL, NULL},
    {"null patch", "{}", "null", BDY_EINVAL, NULL},
    {"empty patch", "{\"a\":1}", "[]", 0, "{\"a\":1}"},
    {"op not an object", "{}", "[1]", BDY_EINVAL, NULL},
    {"missing op", "{}", "[{\"path\":\"/a\",\"value\":1}]", BDY_EINVAL, NULL},
    {"op not a string", "{}", "[{\"op\":1,\"path\":\"/a\",\"value\":1}]", BDY_EINVAL, NULL},
    {"unknown op", "{}", "[{\"op\":\"merge\",\"path\":\"/a\",\"value\":1}]", BDY_EINVAL, NULL},
    {"op case matters", "{}", "[{\"op\":\"Add\",\"path\":\"/a\",\"value\":1}]", BDY_EINVAL, NULL},
    {"missing path", "{}", "[{\"op\":\"add\",\"value\":1}]", BDY_EINVAL, NULL},
    {"path not a string", "{}", "[{\"op\":\"add\",\"path\":1,\"value\":1}]", BDY_EINVAL, NULL},
    {"add without value", "{}", "[{\"op\":\"add\",\"path\":\"/a\"}]", BDY_EINVAL, NULL},
    {"replace without value", "{\"a\":1}", "[{\"op\":\"replace\",\"path\":\"/a\"}]", BDY_EINVAL,
     NULL},
    {"test without value", "{\"a\":1}", "[{\"op\":\"test\",\"path\":\"/a\"}]", BDY_EINVAL, NULL},
    {"move without from", "{\"a\":1}", "[{\"op\":\"move\",\"path\":\"/b\"}]", BDY_EINVAL, NULL},
    {"copy with bad from", "{\"a\":1}", "[{\"op\":\"copy\",\"from\":\"a\",\"path\":\"/b\"}]",
     BDY_EINVAL, NULL},
    {"remove ignores value", "{\"a\":1}", "[{\"op\":\"remove\",\"path\":\"/a\",\"value\":5}]", 0,
     "{}"},
    /* Sequencing: later operations see earlier ones; a failure discards
     * everything. */
    {"sequence", "{}",
     "[{\"op\":\"add\",\"path\":\"/a\",\"value\":[]},{\"op\":\"add\",\"path\":\"/a/"
     "-\",\"value\":1},"
     "{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"/b\"},{\"op\":\"test\",\"path\":\"/b/0\","
     "\"value\":1}]",
     0, "{\"a\":[1],\"b\":[1]}"},
    {"late failure", "{\"a\":1}",
     "[{\"op\":\"add\",\"path\":\"/b\",\"value\":2},{\"op\":\"test\",\"path\":\"/b\",\"value\":3}]",
     BDY_ECONFLICT, NULL},
};

static void run_patch_cases(const struct patch_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct patch_case *c = &cases[i];
        json_object *doc = parse_json(c->doc);
        json_object *ops = parse_json(c->patch);
        char *doc_before = dump(doc);
        char *ops_before = dump(ops);
        json_object *out = (json_object *)&out; /* must be reset */
        bdy_errbuf eb;
        bdy_errbuf_clear(&eb);

        int rc = bdy_json_patch(doc, ops, &out, &eb);
        if (rc != c->rc)
            fail_msg("%s: rc %d (%s), want %d", c->name, rc, eb.message, c->rc);
        if (rc == 0) {
            assert_json_equal(out, c->result, c->name);
        } else {
            assert_null(out);
            assert_true(strlen(eb.message) > 0);
        }
        char *doc_after = dump(doc);
        char *ops_after = dump(ops);
        if (strcmp(doc_before, doc_after) != 0 || strcmp(ops_before, ops_after) != 0)
            fail_msg("%s: an input was modified", c->name);
        free(doc_before);
        free(ops_before);
        free(doc_after);
        free(ops_after);
        json_object_put(out);
        json_object_put(doc);
        json_object_put(ops);
    }
}

static void test_rfc6902_appendix_a(void **state)
{
    (void)state;
    run_patch_cases(rfc6902_cases, sizeof(rfc6902_cases) / sizeof(rfc6902_cases[0]));
}

static void test_patch_operations(void **state)
{
    (void)state;
    run_patch_cases(more_cases, sizeof(more_cases) / sizeof(more_cases[0]));
}

/* RFC 6901 section 5: each pointer evaluated with a "test" against the
 * value the RFC lists. */
static void test_rfc6901_examples(void **state)
{
    (void)state;
    static const char *const doc_text =
        "{\"foo\":[\"bar\",\"baz\"],\"\":0,\"a/b\":1,\"c%d\":2,\"e^f\":3,\"g|h\":4,"
        "\"i\\\\j\":5,\"k\\\"l\":6,\" \":7,\"m~n\":8}";
    static const struct {
        const char *pointer; /* as a JSON string body */
        const char *value;
    } cases[] = {
        {"", NULL}, /* the whole document */
        {"/foo", "[\"bar\",\"baz\"]"},
        {"/foo/0", "\"bar\""},
        {"/", "0"},
        {"/a~1b", "1"},
        {"/c%d", "2"},
        {"/e^f", "3"},
        {"/g|h", "4"},
        {"/i\\\\j", "5"},
        {"/k\\\"l", "6"},
        {"/ ", "7"},
        {"/m~0n", "8"},
    };
    json_object *doc = parse_json(doc_text);

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char patch[512];
        snprintf(patch, sizeof(patch), "[{\"op\":\"test\",\"path\":\"%s\",\"value\":%s}]",
                 cases[i].pointer, cases[i].value != NULL ? cases[i].value : doc_text);
        json_object *ops = parse_json(patch);
        json_object *out = NULL;
        bdy_errbuf eb;
        int rc = bdy_json_patch(doc, ops, &out, &eb);
        if (rc != 0)
            fail_msg("pointer \"%s\": rc %d: %s", cases[i].pointer, rc, eb.message);
        json_object_put(out);

        /* The same pointer with a different value must fail the test, so a
         * pointer resolving to the wrong member cannot pass. */
        snprintf(patch, sizeof(patch), "[{\"op\":\"test\",\"path\":\"%s\",\"value\":\"nope\"}]",
                 cases[i].pointer);
        json_object_put(ops);
        ops = parse_json(patch);
        assert_int_equal(bdy_json_patch(doc, ops, &out, &eb), BDY_ECONFLICT);
        assert_null(out);
        json_object_put(ops);
    }
    json_object_put(doc);
}

static void test_error_messages(void **state)
{
    (void)state;
    json_object *doc = parse_json("{\"baz\":\"qux\",\"foo\":[1]}");
    json_object *ops = parse_json("[{\"op\":\"test\",\"path\":\"/baz\",\"value\":\"qux\"},"
                                  "{\"op\":\"test\",\"path\":\"/baz\",\"value\":\"bar\"}]");
    json_object *out = NULL;
    bdy_errbuf eb;

    assert_int_equal(bdy_json_patch(doc, ops, &out, &eb), BDY_ECONFLICT);
    assert_string_equal(
        eb.message, "json patch operation 1 (test at \"/baz\"): test failed: the value differs");
    json_object_put(ops);

    ops = parse_json("[{\"op\":\"remove\",\"path\":\"/foo/01\"}]");
    assert_int_equal(bdy_json_patch(doc, ops, &out, &eb), BDY_EINVAL);
    assert_string_equal(eb.message, "json patch operation 0 (remove at \"/foo/01\"): invalid "
                                    "array index in JSON pointer");
    json_object_put(ops);

    ops = parse_json("[{\"op\":\"move\",\"from\":\"/nope\",\"path\":\"/x\"}]");
    assert_int_equal(bdy_json_patch(doc, ops, &out, &eb), BDY_ECONFLICT);
    assert_string_equal(eb.message, "json patch operation 0 (move at \"/x\"): \"from\" \"/nope\": "
                                    "path does not exist");
    json_object_put(ops);

    ops = parse_json("[{\"op\":\"frob\",\"path\":\"/x\"}]");
    assert_int_equal(bdy_json_patch(doc, ops, &out, &eb), BDY_EINVAL);
    assert_string_equal(eb.message, "json patch operation 0 (frob): unknown \"op\" (want add, "
                                    "remove, replace, move, copy or test)");
    json_object_put(ops);

    ops = parse_json("[{\"op\":\"add\",\"path\":\"/x\"}]");
    assert_int_equal(bdy_json_patch(doc, ops, &out, &eb), BDY_EINVAL);
    assert_string_equal(eb.message, "json patch operation 0 (add at \"/x\"): missing \"value\"");
    json_object_put(ops);

    assert_int_equal(bdy_json_patch(doc, NULL, NULL, &eb), BDY_EINVAL);
    json_object_put(doc);
}

static void test_ops_cap(void **state)
{
    (void)state;
    json_object *doc = parse_json("{\"a\":[]}");
    json_object *ops = json_object_new_array();
    json_object *out = NULL;
    bdy_errbuf eb;

    for (int i = 0; i < BDY_JSON_PATCH_MAX_OPS; i++) {
        json_object *op = json_object_new_object();
        json_object_object_add(op, "op", json_object_new_string("add"));
        json_object_object_add(op, "path", json_object_new_string("/a/-"));
        json_object_object_add(op, "value", json_object_new_int(i));
        json_object_array_add(ops, op);
    }
    assert_int_equal(bdy_json_patch(doc, ops, &out, &eb), 0);
    json_object *a = NULL;
    assert_true(json_object_object_get_ex(out, "a", &a));
    assert_int_equal(json_object_array_length(a), BDY_JSON_PATCH_MAX_OPS);
    assert_int_equal(json_object_get_int(json_object_array_get_idx(a, BDY_JSON_PATCH_MAX_OPS - 1)),
                     BDY_JSON_PATCH_MAX_OPS - 1);
    json_object_put(out);

    json_object *extra = json_object_new_object();
    json_object_object_add(extra, "op", json_object_new_string("remove"));
    json_object_object_add(extra, "path", json_object_new_string("/a/0"));
    json_object_array_add(ops, extra);
    assert_int_equal(bdy_json_patch(doc, ops, &out, &eb), BDY_ETOOBIG);
    assert_null(out);
    assert_string_equal(eb.message, "a json patch may hold at most 10000 operations, this one has "
                                    "10001");
    json_object_put(ops);
    json_object_put(doc);
}

/* A value copied into itself doubles the document each time: a patch of a
 * few dozen such copies is refused once it has copied about 2 MiB, before
 * it fills the memory; copies that stay small go through. */
static void test_copies_are_bounded(void **state)
{
    (void)state;
    char big[4096];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    json_object *doc = json_object_new_object();
    json_object *spec = json_object_new_object();
    json_object_object_add(spec, "s", json_object_new_string(big));
    json_object_object_add(doc, "spec", spec);
    json_object *ops = json_object_new_array();
    for (int i = 0; i < 40; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/spec/c%d", i);
        json_object *op = json_object_new_object();
        json_object_object_add(op, "op", json_object_new_string("copy"));
        json_object_object_add(op, "from", json_object_new_string("/spec"));
        json_object_object_add(op, "path", json_object_new_string(path));
        json_object_array_add(ops, op);
    }
    json_object *out = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_json_patch(doc, ops, &out, &eb), BDY_ETOOBIG);
    assert_null(out);
    /* 4 KiB doubled each time: the ninth copy (index 8) would bring the
     * copies to 2 MiB. */
    assert_non_null(strstr(eb.message, "json patch operation 8 (copy"));

    /* Numbers count as written: one copy of 300,000 zeros (600 KB of
     * text) stays within the budget. */
    json_object *zeros_doc = json_object_new_object();
    json_object *zeros = json_object_new_array_ext(300000);
    for (int i = 0; i < 300000; i++)
        json_object_array_add(zeros, json_object_new_int(0));
    json_object_object_add(zeros_doc, "z", zeros);
    json_object *one = json_tokener_parse("[{\"op\":\"copy\",\"from\":\"/z\",\"path\":\"/y\"}]");
    assert_int_equal(bdy_json_patch(zeros_doc, one, &out, &eb), 0);
    json_object_put(out);
    json_object_put(one);
    json_object_put(zeros_doc);

    json_object *few = json_object_new_array();
    for (int i = 0; i < 5; i++)
        json_object_array_add(few, json_object_get(json_object_array_get_idx(ops, (size_t)i)));
    assert_int_equal(bdy_json_patch(doc, few, &out, &eb), 0);
    assert_non_null(out);
    json_object_put(out);
    json_object_put(few);
    json_object_put(ops);
    json_object_put(doc);
}

/* {"": {"": ... {}}}, depth levels deep. */
static json_object *nested(int depth)
{
    json_object *v = json_object_new_object();
    for (int i = 1; i < depth; i++) {
        json_object *outer = json_object_new_object();
        json_object_object_add(outer, "", v);
        v = outer;
    }
    return v;
}

/* One op whose path is "/" + first + skip times "/" + "/x". */
static json_object *deep_op(const char *op, const char *first, int skip, const char *from,
                            json_object *value)
{
    char path[128];
    int n = snprintf(path, sizeof(path), "/%s", first);
    for (int i = 0; i < skip; i++)
        path[n++] = '/';
    snprintf(path + n, sizeof(path) - (size_t)n, "/x");
    json_object *o = json_object_new_object();
    json_object_object_add(o, "op", json_object_new_string(op));
    json_object_object_add(o, "path", json_object_new_string(path));
    if (from != NULL)
        json_object_object_add(o, "from", json_object_new_string(from));
    if (value != NULL)
        json_object_object_add(o, "value", value);
    json_object *ops = json_object_new_array();
    json_object_array_add(ops, o);
    return ops;
}

/* No op nests the document past BDY_JSON_MAX_DEPTH: copies of a value into
 * itself would otherwise double its depth with every op, and the deep
 * copies and frees of the result overflow the stack. */
static void test_depth_is_bounded(void **state)
{
    (void)state;
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "a", nested(40));
    json_object_object_add(doc, "b", nested(40));
    /* "/a" and 39 empty tokens reach the innermost {}: "/x" in it is token
     * 41, so a value there may be 23 levels deep. */
    struct {
        const char *op;
        const char *from;
        json_object *value;
        int want;
    } cases[] = {
        {"add", NULL, nested(23), 0},
        {"add", NULL, nested(24), BDY_EINVALID_OBJECT},
        {"replace", NULL, nested(24), BDY_EINVALID_OBJECT},
        {"copy", "/b", NULL, BDY_EINVALID_OBJECT},
        {"move", "/b", NULL, BDY_EINVALID_OBJECT},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_object *ops = deep_op(cases[i].op, "a", 39, cases[i].from, cases[i].value);
        json_object *out = NULL;
        bdy_errbuf eb;
        bdy_errbuf_clear(&eb);
        int rc = bdy_json_patch(doc, ops, &out, &eb);
        if (rc != cases[i].want)
            fail_msg("case %zu (%s): %d, want %d (%s)", i, cases[i].op, rc, cases[i].want,
                     eb.message);
        if (rc == 0)
            assert_true(bdy_json_depth_within(out, BDY_JSON_MAX_DEPTH));
        else
            assert_non_null(strstr(eb.message, "deeper than 64 levels"));
        json_object_put(out);
        json_object_put(ops);
    }
    json_object_put(doc);
}

static void test_patch_result_is_independent(void **state)
{
    (void)state;
    json_object *doc = parse_json("{\"a\":{\"b\":1}}");
    json_object *ops = parse_json("[{\"op\":\"add\",\"path\":\"/v\",\"value\":{\"x\":[1]}},"
                                  "{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"/c\"}]");
    json_object *out = NULL;

    assert_int_equal(bdy_json_patch(doc, ops, &out, NULL), 0);
    /* Editing the result touches neither the target, the patch value, nor
     * the copy's source. */
    json_object *v = NULL;
    json_object *c = NULL;
    assert_true(json_object_object_get_ex(out, "v", &v));
    assert_true(json_object_object_get_ex(out, "c", &c));
    json_object_object_add(v, "y", json_object_new_int(2));
    json_object_object_add(c, "b", json_object_new_int(5));
    assert_json_equal(out, "{\"a\":{\"b\":1},\"v\":{\"x\":[1],\"y\":2},\"c\":{\"b\":5}}", "out");
    assert_json_equal(doc, "{\"a\":{\"b\":1}}", "doc");
    assert_json_equal(ops,
                      "[{\"op\":\"add\",\"path\":\"/v\",\"value\":{\"x\":[1]}},"
                      "{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"/c\"}]",
                      "ops");
    json_object_put(out);
    json_object_put(ops);
    json_object_put(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_patch_examples),
        cmocka_unit_test(test_merge_patch_null_target_and_independence),
        cmocka_unit_test(test_rfc6902_appendix_a),
        cmocka_unit_test(test_patch_operations),
        cmocka_unit_test(test_rfc6901_examples),
        cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_ops_cap),
        cmocka_unit_test(test_copies_are_bounded),
        cmocka_unit_test(test_depth_is_bounded),
        cmocka_unit_test(test_patch_result_is_independent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
