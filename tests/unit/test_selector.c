/* Unit tests for reconciler/selector.c: the Kubernetes label selector string
 * grammar, the JSON LabelSelector, field selectors with escapes, and
 * bdy_json_path_get(). Expected messages are the ones Kubernetes' apimachinery
 * produces for the same input. */
#include "bindery/selector.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* The label sets every label selector case is matched against; a case's
 * "want" string holds one '1' (match) or '0' per set, in this order. */
static const char *const label_sets[] = {
    NULL, /* no labels at all */
    "{\"app\":\"demo\",\"tier\":\"web\",\"env\":\"prod\"}",
    "{\"app\":\"demo\",\"tier\":\"api\",\"legacy\":\"true\"}",
    "{\"app\":\"other\",\"gen\":\"5\",\"example.com/"
    "role\":\"gold\",\"empty\":\"\",\"in\":\"notin\"}",
};
#define NSETS (sizeof(label_sets) / sizeof(label_sets[0]))

struct match_case {
    const char *text;
    const char *want;
};

static const struct match_case valid_label_cases[] = {
    {"", "1111"},
    {"   ", "1111"},
    {"app=demo", "0110"},
    {"app==demo", "0110"},
    {"app!=demo", "1001"},
    {"app!=nothing", "1111"},
    {"tier in (web,api)", "0110"},
    {"tier in (web, api)", "0110"},
    {"tier in (web)", "0100"},
    {"tier notin (web)", "1011"},
    {"tier notin (web,api)", "1001"},
    {"tier", "0110"},
    {"!tier", "1001"},
    {"!legacy,app=demo", "0100"},
    {"tier in (web,api),app=demo,!legacy", "0100"},
    {" app = demo , tier in ( web , api ) ", "0110"},
    {"app\t=\tdemo\n,\r\ntier", "0110"},
    {"example.com/role=gold", "0001"},
    {"example.com/role in (gold,silver)", "0001"},
    {"example.com/role notin (gold,silver)", "1110"},
    {"empty=", "0001"},
    {"empty==", "0001"},
    {"empty!=", "1110"},
    {"empty in ()", "0001"},
    {"empty in (,x)", "0001"},
    {"empty in (x,)", "0001"},
    {"empty in (x,,y)", "0001"},
    {"app in (demo,other),env notin (prod)", "0011"},
    {"gen>4", "0001"},
    {"gen>5", "0000"},
    {"gen<6", "0001"},
    {"gen<4", "0000"},
    {"app>1", "0000"}, /* non-numeric label value never compares */
    {"in in (in,notin)", "0001"},
    {"in=notin", "0001"},
    {"in", "0001"},    /* keywords are keys where a key is expected */
    {"notin", "0000"}, /* no label is called "notin" */
    {"app=demo,app=other", "0000"},
    {"x in (a,a,b)", "0000"},
    {"x notin (a,a,b)", "1111"},
    {"A.b_c-D=Val.u_e-9", "0000"},
};

static json_object *parse_json(const char *text)
{
    if (text == NULL)
        return NULL;
    json_object *o = json_tokener_parse(text);
    assert_non_null(o);
    return o;
}

static void check_matches(const bdy_label_selector *sel, const char *text, const char *want)
{
    for (size_t i = 0; i < NSETS; i++) {
        json_object *labels = parse_json(label_sets[i]);
        bool got = bdy_label_selector_matches(sel, labels);
        if (got != (want[i] == '1'))
            fail_msg("selector %s on label set %zu: got %d want %c", text, i, got, want[i]);
        json_object_put(labels);
    }
}

static void test_label_parse_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(valid_label_cases) / sizeof(valid_label_cases[0]); i++) {
        const struct match_case *c = &valid_label_cases[i];
        bdy_label_selector *sel = NULL;
        bdy_errbuf eb;
        bdy_errbuf_clear(&eb);
        int rc = bdy_label_selector_parse(c->text, &sel, &eb);
        if (rc != 0)
            fail_msg("selector \"%s\": rc %d: %s", c->text, rc, eb.message);
        assert_non_null(sel);
        check_matches(sel, c->text, c->want);
        /* Only blank text has no requirements. */
        assert_int_equal(bdy_label_selector_is_empty(sel), strspn(c->text, " ") == strlen(c->text));
        bdy_label_selector_free(sel);
    }
}

static void test_label_parse_null_matches_all(void **state)
{
    (void)state;
    bdy_label_selector *sel = NULL;
    assert_int_equal(bdy_label_selector_parse(NULL, &sel, NULL), 0);
    assert_true(bdy_label_selector_is_empty(sel));
    check_matches(sel, "(null)", "1111");
    bdy_label_selector_free(sel);
    bdy_label_selector_free(NULL);
    assert_true(bdy_label_selector_is_empty(NULL));
}

struct error_case {
    const char *text;
    const char *message; /* exact when exact, otherwise a prefix */
    bool exact;
};

#define KEY_REGEX_ERR                                                                              \
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "    \
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "         \
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
#define VALUE_REGEX_ERR                                                                            \
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "    \
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "             \
    "'my_value',  or '12345', regex used for validation is "                                       \
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
#define REQ "unable to parse requirement: "

static const struct error_case invalid_label_cases[] = {
    {",", "found ',', expected: !, identifier, or 'end of string'", true},
    {"(a)", "found '(', expected: !, identifier, or 'end of string'", true},
    {"=a", "found '=', expected: !, identifier, or 'end of string'", true},
    {"app=demo,", "found '', expected: identifier after ','", true},
    {"app=demo,,tier", "found ',', expected: identifier after ','", true},
    {"app=demo tier", "found 'tier', expected: ',' or 'end of string'", true},
    {"app=demo)", "found ')', expected: ',' or 'end of string'", true},
    {"!app=demo", "found '=', expected: ',' or 'end of string'", true},
    {"app demo", REQ "found 'demo', expected: in, notin, =, ==, !=, gt, lt", true},
    {"tier in web", REQ "found 'web' expected: '('", true},
    {"tier in", REQ "found '' expected: '('", true},
    {"tier notin", REQ "found '' expected: '('", true},
    {"tier in (web", REQ "found '', expected: ',' or ')'", true},
    {"tier in (web api)", REQ "found 'api', expected: ',' or ')'", true},
    {"tier in (web,", REQ "found '', expected: ',', or identifier", true},
    {"tier in (=)", REQ "found '=', expected: ',', ')' or identifier", true},
    {"tier in (a,=)", REQ "found '=', expected: ',', or identifier", true},
    {"app===demo", REQ "found '=', expected: identifier", true},
    {"app=(demo)", REQ "found '(', expected: identifier", true},
    {"a<>b", REQ "found '>', expected: identifier", true},
    {"!", REQ "found '', expected: identifier", true},
    {"!!a", REQ "found '!', expected: identifier", true},
    {"a@b=c", REQ "<nil>: Invalid value: \"a@b\": name part " KEY_REGEX_ERR, true},
    {"-a", REQ "<nil>: Invalid value: \"-a\": name part " KEY_REGEX_ERR, true},
    {"a/b/c",
     REQ "<nil>: Invalid value: \"a/b/c\": a qualified name " KEY_REGEX_ERR
         " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
     true},
    {"/a", REQ "<nil>: Invalid value: \"/a\": prefix part must be non-empty", true},
    {"a/",
     REQ "<nil>: Invalid value: \"a/\": name part must be non-empty; name part " KEY_REGEX_ERR,
     true},
    {"Example.com/a",
     REQ "<nil>: Invalid value: \"Example.com/a\": prefix part a lowercase RFC 1123 subdomain",
     false},
    {"ex..com/a", REQ "<nil>: Invalid value: \"ex..com/a\": prefix part a lowercase", false},
    {"a=b@c", REQ "values[0][a]: Invalid value: \"b@c\": " VALUE_REGEX_ERR, true},
    {"a=-b", REQ "values[0][a]: Invalid value: \"-b\": " VALUE_REGEX_ERR, true},
    {"x in (b@,a)", REQ "values[1][x]: Invalid value: \"b@\": ", false},
    {"gen>abc",
     REQ "values[0]: Invalid value: \"abc\": for 'Gt', 'Lt' operators, the value must be an "
         "integer",
     true},
    {"gen<", REQ "values[0]: Invalid value: \"\": for 'Gt', 'Lt' operators", false},
    {"gen>99999999999999999999", REQ "values[0]: Invalid value: \"99999999999999999999\"", false},
    {"gen>a-",
     REQ "[values[0]: Invalid value: \"a-\": for 'Gt', 'Lt' operators, the value must be an "
         "integer, values[0][gen]: Invalid value: \"a-\": " VALUE_REGEX_ERR "]",
     true},
    {"a=\"b\"", REQ "values[0][a]: Invalid value: \"\\\"b\\\"\": ", false},
};

static void test_label_parse_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(invalid_label_cases) / sizeof(invalid_label_cases[0]); i++) {
        const struct error_case *c = &invalid_label_cases[i];
        bdy_label_selector *sel = (bdy_label_selector *)&sel; /* must be reset to NULL */
        bdy_errbuf eb;
        bdy_errbuf_clear(&eb);
        int rc = bdy_label_selector_parse(c->text, &sel, &eb);
        if (rc != BDY_EINVAL)
            fail_msg("selector \"%s\": rc %d, want BDY_EINVAL", c->text, rc);
        assert_null(sel);
        bool ok = c->exact ? strcmp(eb.message, c->message) == 0
                           : strncmp(eb.message, c->message, strlen(c->message)) == 0;
        if (!ok)
            fail_msg("selector \"%s\":\n got: %s\nwant: %s", c->text, eb.message, c->message);
    }
}

/* Bounded append for building long test selectors. */
static void append(char *buf, size_t bufsz, const char *s)
{
    size_t len = strlen(buf);
    int n = snprintf(buf + len, bufsz - len, "%s", s);
    assert_true(n >= 0 && (size_t)n < bufsz - len);
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void test_label_key_and_value_lengths(void **state)
{
    (void)state;
    char buf[512];
    bdy_label_selector *sel = NULL;
    bdy_errbuf eb;
    char *k63 = repeat('k', 63);
    char *k64 = repeat('k', 64);
    char *p253 = repeat('p', 253);
    char *p254 = repeat('p', 254);

    snprintf(buf, sizeof(buf), "%s=%s", k63, k63);
    assert_int_equal(bdy_label_selector_parse(buf, &sel, &eb), 0);
    bdy_label_selector_free(sel);

    snprintf(buf, sizeof(buf), "%s", k64);
    assert_int_equal(bdy_label_selector_parse(buf, &sel, &eb), BDY_EINVAL);
    assert_non_null(strstr(eb.message, "name part must be no more than 63 characters"));

    snprintf(buf, sizeof(buf), "a=%s", k64);
    assert_int_equal(bdy_label_selector_parse(buf, &sel, &eb), BDY_EINVAL);
    assert_non_null(strstr(eb.message, "values[0][a]: Invalid value: "));
    assert_non_null(strstr(eb.message, "must be no more than 63 characters"));

    snprintf(buf, sizeof(buf), "%s/a", p253);
    assert_int_equal(bdy_label_selector_parse(buf, &sel, &eb), 0);
    bdy_label_selector_free(sel);

    snprintf(buf, sizeof(buf), "%s/a", p254);
    assert_int_equal(bdy_label_selector_parse(buf, &sel, &eb), BDY_EINVAL);
    assert_non_null(strstr(eb.message, "prefix part must be no more than 253 characters"));
    /* The quoted key is cut so the reason still fits. */
    assert_non_null(strstr(eb.message, "...\""));

    free(k63);
    free(k64);
    free(p253);
    free(p254);
}

static void test_label_caps(void **state)
{
    (void)state;
    bdy_label_selector *sel = NULL;
    bdy_errbuf eb;
    char *text = repeat(' ', BDY_SELECTOR_MAX_TEXT + 1);
    json_object *labels = parse_json("{\"a\":\"x\"}");

    /* Exactly the cap parses; one more byte does not. */
    text[0] = 'a';
    text[BDY_SELECTOR_MAX_TEXT] = '\0';
    assert_int_equal(bdy_label_selector_parse(text, &sel, &eb), 0);
    assert_true(bdy_label_selector_matches(sel, labels));
    bdy_label_selector_free(sel);
    text[BDY_SELECTOR_MAX_TEXT] = ' ';
    assert_int_equal(bdy_label_selector_parse(text, &sel, &eb), BDY_EINVAL);
    assert_null(sel);
    assert_string_equal(eb.message, "label selector is longer than 4096 bytes");
    free(text);

    /* 64 requirements are fine, 65 are not. */
    char terms[1024] = "";
    for (int i = 0; i < BDY_SELECTOR_MAX_TERMS; i++)
        snprintf(terms + strlen(terms), sizeof(terms) - strlen(terms), "%sk%d", i ? "," : "", i);
    assert_int_equal(bdy_label_selector_parse(terms, &sel, &eb), 0);
    bdy_label_selector_free(sel);
    append(terms, sizeof(terms), ",k64");
    assert_int_equal(bdy_label_selector_parse(terms, &sel, &eb), BDY_EINVAL);
    assert_string_equal(eb.message, "label selector has more than 64 requirements");

    /* 64 values in one set are fine, 65 are not. */
    char vals[1024] = "a in (";
    for (int i = 0; i < BDY_SELECTOR_MAX_VALUES; i++)
        snprintf(vals + strlen(vals), sizeof(vals) - strlen(vals), "%sv%d", i ? "," : "", i);
    append(vals, sizeof(vals), ")");
    assert_int_equal(bdy_label_selector_parse(vals, &sel, &eb), 0);
    assert_false(bdy_label_selector_matches(sel, labels));
    bdy_label_selector_free(sel);
    vals[strlen(vals) - 1] = '\0';
    append(vals, sizeof(vals), ",x)");
    assert_int_equal(bdy_label_selector_parse(vals, &sel, &eb), BDY_EINVAL);
    assert_string_equal(eb.message, REQ "more than 64 values in a set");

    assert_int_equal(bdy_label_selector_parse("a", NULL, &eb), BDY_EINVAL);
    json_object_put(labels);
}

static void test_label_odd_label_values(void **state)
{
    (void)state;
    bdy_label_selector *sel = NULL;
    /* A label with a non-string value exists but equals nothing; a string
     * with an embedded NUL does not equal its prefix. */
    json_object *labels = parse_json("{\"app\":5,\"n\":\"a\\u0000b\"}");

    assert_int_equal(bdy_label_selector_parse("app", &sel, NULL), 0);
    assert_true(bdy_label_selector_matches(sel, labels));
    bdy_label_selector_free(sel);
    assert_int_equal(bdy_label_selector_parse("app=5", &sel, NULL), 0);
    assert_false(bdy_label_selector_matches(sel, labels));
    bdy_label_selector_free(sel);
    assert_int_equal(bdy_label_selector_parse("app!=5", &sel, NULL), 0);
    assert_true(bdy_label_selector_matches(sel, labels));
    bdy_label_selector_free(sel);
    assert_int_equal(bdy_label_selector_parse("n=a", &sel, NULL), 0);
    assert_false(bdy_label_selector_matches(sel, labels));
    bdy_label_selector_free(sel);

    /* Labels that are not an object are no labels. */
    json_object *arr = parse_json("[\"app\"]");
    assert_int_equal(bdy_label_selector_parse("!app", &sel, NULL), 0);
    assert_true(bdy_label_selector_matches(sel, arr));
    bdy_label_selector_free(sel);
    json_object_put(arr);
    json_object_put(labels);
}

/* ---- JSON LabelSelector ------------------------------------------------- */

static const struct match_case valid_json_cases[] = {
    {"{}", "1111"},
    {"{\"matchLabels\":null,\"matchExpressions\":null}", "1111"},
    {"{\"matchLabels\":{}}", "1111"},
    {"{\"matchLabels\":{\"app\":\"demo\"}}", "0110"},
    {"{\"matchLabels\":{\"app\":\"demo\",\"tier\":\"api\"}}", "0010"},
    {"{\"matchLabels\":{\"empty\":\"\"}}", "0001"},
    {"{\"matchLabels\":{\"app\":\"demo\"},\"matchExpressions\":[{\"key\":\"tier\",\"operator\":"
     "\"In\",\"values\":[\"web\"]}]}",
     "0100"},
    {"{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"NotIn\",\"values\":[\"web\"]}]}",
     "1011"},
    {"{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"Exists\"}]}", "0110"},
    {"{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"Exists\",\"values\":[]}]}", "0110"},
    {"{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"Exists\",\"values\":null}]}", "0110"},
    {"{\"matchExpressions\":[{\"key\":\"legacy\",\"operator\":\"DoesNotExist\"}]}", "1101"},
    {"{\"matchExpressions\":[{\"key\":\"example.com/role\",\"operator\":\"In\",\"values\":"
     "[\"silver\",\"gold\",\"gold\"]},{\"key\":\"app\",\"operator\":\"Exists\"}]}",
     "0001"},
    {"{\"matchExpressions\":[{\"key\":\"empty\",\"operator\":\"In\",\"values\":[\"\"]}]}", "0001"},
};

static void test_json_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(valid_json_cases) / sizeof(valid_json_cases[0]); i++) {
        const struct match_case *c = &valid_json_cases[i];
        json_object *j = parse_json(c->text);
        bdy_label_selector *sel = NULL;
        bdy_errbuf eb;
        bdy_errbuf_clear(&eb);
        int rc = bdy_label_selector_from_json(j, &sel, &eb);
        if (rc != 0)
            fail_msg("selector %s: rc %d: %s", c->text, rc, eb.message);
        check_matches(sel, c->text, c->want);
        bdy_label_selector_free(sel);
        json_object_put(j);
    }
}

static void test_json_api_example(void **state)
{
    (void)state;
    /* The claim example from design/API.md. */
    json_object *j = parse_json("{\"matchLabels\": {\"map\": \"dust\"}, \"matchExpressions\": "
                                "[{\"key\": \"tier\", \"operator\": \"In\", \"values\": "
                                "[\"gold\"]}]}");
    json_object *yes = parse_json("{\"map\":\"dust\",\"tier\":\"gold\",\"x\":\"y\"}");
    json_object *no1 = parse_json("{\"map\":\"dust\",\"tier\":\"silver\"}");
    json_object *no2 = parse_json("{\"map\":\"mirage\",\"tier\":\"gold\"}");
    bdy_label_selector *sel = NULL;

    assert_int_equal(bdy_label_selector_from_json(j, &sel, NULL), 0);
    assert_false(bdy_label_selector_is_empty(sel));
    assert_true(bdy_label_selector_matches(sel, yes));
    assert_false(bdy_label_selector_matches(sel, no1));
    assert_false(bdy_label_selector_matches(sel, no2));
    assert_false(bdy_label_selector_matches(sel, NULL));
    bdy_label_selector_free(sel);
    json_object_put(j);
    json_object_put(yes);
    json_object_put(no1);
    json_object_put(no2);
}

static const struct error_case invalid_json_cases[] = {
    {"[]", "Invalid value: a label selector must be an object, not an array", true},
    {"null", "Invalid value: a label selector must be an object, not null", true},
    {"{\"matchLabel\":{}}", "unknown field \"matchLabel\"", true},
    {"{\"matchLabels\":[]}", "matchLabels: Invalid value: must be an object, not an array", true},
    {"{\"matchLabels\":{\"app\":5}}",
     "matchLabels[app]: Invalid value: must be a string, not a "
     "number",
     true},
    {"{\"matchLabels\":{\"a@\":\"x\"}}",
     "matchLabels: Invalid value: \"a@\": name part " KEY_REGEX_ERR, true},
    {"{\"matchLabels\":{\"a\":\"x@\"}}", "matchLabels: Invalid value: \"x@\": " VALUE_REGEX_ERR,
     true},
    {"{\"matchExpressions\":{}}",
     "matchExpressions: Invalid value: must be an array, not an "
     "object",
     true},
    {"{\"matchExpressions\":[1]}",
     "matchExpressions[0]: Invalid value: must be an object, not "
     "a number",
     true},
    {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\",\"values\":[\"x\"]},{\"key\":"
     "\"b\",\"operator\":\"Foo\"}]}",
     "matchExpressions[1].operator: Unsupported value: \"Foo\": supported values: "
     "\"DoesNotExist\", \"Exists\", \"In\", \"NotIn\"",
     true},
    {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"in\",\"values\":[\"x\"]}]}",
     "matchExpressions[0].operator: Unsupported value: \"in\"", false},
    {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Gt\",\"values\":[\"1\"]}]}",
     "matchExpressions[0].operator: Unsupported value: \"Gt\"", false},
    {"{\"matchExpressions\":[{\"key\":\"a\"}]}", "matchExpressions[0].operator: Required value",
     true},
    {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":7}]}",
     "matchExpressions[0].operator: Invalid value: must be a string, not a number", true},
    {"{\"matchExpressions\":[{\"operator\":\"Exists\"}]}",
     "matchExpressions[0].key: Required "
     "value",
     true},
    {"{\"matchExpressions\":[{\"key\":null,\"operator\":\"Exists\"}]}",
     "matchExpressions[0].key: Required value", true},
    {"{\"matchExpressions\":[{\"key\":[],\"operator\":\"Exists\"}]}",
     "matchExpressions[0].key: Invalid value: must be a string, not an array", true},
    {"{\"matchExpressions\":[{\"key\":\"a b\",\"operator\":\"Exists\"}]}",
     "matchExpressions[0].key: Invalid value: \"a b\": name part " KEY_REGEX_ERR, true},
    {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\"}]}",
     "matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or "
     "'NotIn'",
     true},
    {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"NotIn\",\"values\":[]}]}",
     "matchExpressions[0].values: Required value", false},
    {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Exists\",\"values\":[\"x\"]}]}",
     "matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists' "
     "or 'DoesNotExist'",
     true},
    {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"DoesNotExist\",\"values\":[\"\"]}]}",
     "matchExpressions[0].values: Forbidden", false},
    {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\",\"values\":\"x\"}]}",
     "matchExpressions[0].values: Invalid value: must be an array, not a string", true},
    {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\",\"values\":[1]}]}",
     "matchExpressions[0].values[0]: Invalid value: must be a string, not a number", true},
    {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\",\"values\":[\"ok\",\"b@d\"]}]}",
     "matchExpressions[0].values[1]: Invalid value: \"b@d\": " VALUE_REGEX_ERR, true},
    {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Exists\",\"value\":[]}]}",
     "unknown field \"matchExpressions[0].value\"", true},
};

static void test_json_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(invalid_json_cases) / sizeof(invalid_json_cases[0]); i++) {
        const struct error_case *c = &invalid_json_cases[i];
        json_object *j = json_tokener_parse(c->text); /* "null" gives NULL */
        bdy_label_selector *sel = (bdy_label_selector *)&sel;
        bdy_errbuf eb;
        bdy_errbuf_clear(&eb);
        int rc = bdy_label_selector_from_json(j, &sel, &eb);
        if (rc != BDY_EINVAL)
            fail_msg("selector %s: rc %d, want BDY_EINVAL", c->text, rc);
        assert_null(sel);
        bool ok = c->exact ? strcmp(eb.message, c->message) == 0
                           : strncmp(eb.message, c->message, strlen(c->message)) == 0;
        if (!ok)
            fail_msg("selector %s:\n got: %s\nwant: %s", c->text, eb.message, c->message);
        json_object_put(j);
    }
}

static void test_json_caps(void **state)
{
    (void)state;
    bdy_label_selector *sel = NULL;
    bdy_errbuf eb;

    /* 64 values: fine; 65: too many. */
    json_object *vals = json_object_new_array();
    for (int i = 0; i < BDY_SELECTOR_MAX_VALUES; i++) {
        char v[16];
        snprintf(v, sizeof(v), "v%d", i);
        json_object_array_add(vals, json_object_new_string(v));
    }
    json_object *expr = json_object_new_object();
    json_object_object_add(expr, "key", json_object_new_string("a"));
    json_object_object_add(expr, "operator", json_object_new_string("In"));
    json_object_object_add(expr, "values", vals);
    json_object *exprs = json_object_new_array();
    json_object_array_add(exprs, expr);
    json_object *sel_json = json_object_new_object();
    json_object_object_add(sel_json, "matchExpressions", exprs);
    assert_int_equal(bdy_label_selector_from_json(sel_json, &sel, &eb), 0);
    bdy_label_selector_free(sel);
    json_object_array_add(vals, json_object_new_string("extra"));
    assert_int_equal(bdy_label_selector_from_json(sel_json, &sel, &eb), BDY_EINVAL);
    assert_string_equal(eb.message,
                        "matchExpressions[0].values: Too many: 65: must have at most 64 items");
    json_object_put(sel_json);

    /* 40 labels + 24 expressions = 64 terms: fine; one more: too many. */
    json_object *labels = json_object_new_object();
    for (int i = 0; i < 40; i++) {
        char k[16];
        snprintf(k, sizeof(k), "l%d", i);
        json_object_object_add(labels, k, json_object_new_string("x"));
    }
    exprs = json_object_new_array();
    for (int i = 0; i < 24; i++) {
        char k[16];
        snprintf(k, sizeof(k), "e%d", i);
        expr = json_object_new_object();
        json_object_object_add(expr, "key", json_object_new_string(k));
        json_object_object_add(expr, "operator", json_object_new_string("DoesNotExist"));
        json_object_array_add(exprs, expr);
    }
    sel_json = json_object_new_object();
    json_object_object_add(sel_json, "matchLabels", labels);
    json_object_object_add(sel_json, "matchExpressions", exprs);
    assert_int_equal(bdy_label_selector_from_json(sel_json, &sel, &eb), 0);
    bdy_label_selector_free(sel);
    json_object_object_add(labels, "one-more", json_object_new_string("x"));
    assert_int_equal(bdy_label_selector_from_json(sel_json, &sel, &eb), BDY_EINVAL);
    assert_string_equal(eb.message, "label selector has more than 64 requirements");
    json_object_put(sel_json);

    assert_int_equal(bdy_label_selector_from_json(NULL, NULL, &eb), BDY_EINVAL);
}

static void test_json_and_string_agree(void **state)
{
    (void)state;
    /* The same requirement in both forms selects the same label sets. */
    static const struct {
        const char *text;
        const char *json;
    } pairs[] = {
        {"app=demo", "{\"matchLabels\":{\"app\":\"demo\"}}"},
        {"tier in (web,api)",
         "{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"In\",\"values\":[\"web\","
         "\"api\"]}]}"},
        {"tier notin (web)",
         "{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"NotIn\",\"values\":[\"web\"]}]}"},
        {"legacy", "{\"matchExpressions\":[{\"key\":\"legacy\",\"operator\":\"Exists\"}]}"},
        {"!legacy", "{\"matchExpressions\":[{\"key\":\"legacy\",\"operator\":\"DoesNotExist\"}]}"},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        bdy_label_selector *a = NULL;
        bdy_label_selector *b = NULL;
        json_object *j = parse_json(pairs[i].json);
        assert_int_equal(bdy_label_selector_parse(pairs[i].text, &a, NULL), 0);
        assert_int_equal(bdy_label_selector_from_json(j, &b, NULL), 0);
        for (size_t s = 0; s < NSETS; s++) {
            json_object *labels = parse_json(label_sets[s]);
            assert_int_equal(bdy_label_selector_matches(a, labels),
                             bdy_label_selector_matches(b, labels));
            json_object_put(labels);
        }
        bdy_label_selector_free(a);
        bdy_label_selector_free(b);
        json_object_put(j);
    }
}

/* ---- field selectors ---------------------------------------------------- */

static const char *const field_object =
    "{\"metadata\":{\"name\":\"w-1\",\"namespace\":\"default\"},"
    "\"status\":{\"phase\":\"Ready\",\"ready\":true,\"count\":3,\"ratio\":0.5},"
    "\"involvedObject\":{\"uid\":\"u,1=x\\\\y\"}}";

static const char *const wide_allowed[] = {
    "metadata.name", "metadata.namespace", "status.phase", "status.ready", "status.count",
    "status.ratio",  "involvedObject.uid", "spec.missing", "metadata",     NULL,
};

struct field_case {
    const char *text;
    bool wide;  /* use wide_allowed instead of the default list */
    bool match; /* when rc == 0 */
    int rc;
    const char *message; /* when rc != 0: exact */
};

static const struct field_case field_cases[] = {
    {"", false, true, 0, NULL},
    {"metadata.name=w-1", false, true, 0, NULL},
    {"metadata.name==w-1", false, true, 0, NULL},
    {"metadata.name!=w-1", false, false, 0, NULL},
    {"metadata.name=w-2", false, false, 0, NULL},
    {"metadata.name!=w-2", false, true, 0, NULL},
    {"metadata.name=w-1,metadata.namespace=default", false, true, 0, NULL},
    {"metadata.name=w-1,metadata.namespace!=default", false, false, 0, NULL},
    {"metadata.name=w-1,,", false, true, 0, NULL},
    {",metadata.namespace==default", false, true, 0, NULL},
    {"metadata.name=", false, false, 0, NULL},
    {"spec.missing=", true, true, 0, NULL},
    {"spec.missing!=", true, false, 0, NULL},
    {"spec.missing=x", true, false, 0, NULL},
    {"status.phase=Ready", true, true, 0, NULL},
    {"status.ready=true", true, true, 0, NULL},
    {"status.ready=false", true, false, 0, NULL},
    {"status.count=3", true, true, 0, NULL},
    {"status.count!=3", true, false, 0, NULL},
    {"status.ratio=0.5", true, true, 0, NULL},
    {"metadata=", true, false, 0, NULL},
    {"metadata!=", true, true, 0, NULL},
    {"involvedObject.uid=u\\,1\\=x\\\\y", true, true, 0, NULL},
    {"involvedObject.uid=u\\,1\\=x\\\\y,metadata.name=w-1", true, true, 0, NULL},
    {"involvedObject.uid!=u\\,1\\=x\\\\y", true, false, 0, NULL},
    {"involvedObject.uid=u\\,1", true, false, 0, NULL},
    {"metadata.name=a=b", false, false, BDY_EINVAL,
     "invalid field selector: unescaped character in value: ="},
    {"metadata.name!==x", false, false, BDY_EINVAL,
     "invalid field selector: unescaped character in value: ="},
    {"metadata.name=a\\", false, false, BDY_EINVAL,
     "invalid field selector: invalid escape sequence: \\"},
    {"metadata.name=a\\n", false, false, BDY_EINVAL,
     "invalid field selector: invalid escape sequence: \\n"},
    {"metadata.name=a\\\xc3\xa9", false, false, BDY_EINVAL,
     "invalid field selector: invalid escape sequence: \\\xc3\xa9"},
    {"metadata.name", false, false, BDY_EINVAL,
     "invalid selector: 'metadata.name'; can't understand 'metadata.name'"},
    {"metadata.name=x,oops", false, false, BDY_EINVAL,
     "invalid selector: 'metadata.name=x,oops'; can't understand 'oops'"},
    {"spec.x=1", false, false, BDY_EINVAL, "field label not supported: spec.x"},
    {"status.phase=Ready", false, false, BDY_EINVAL, "field label not supported: status.phase"},
    {"metadata.name = w-1", false, false, BDY_EINVAL, "field label not supported: metadata.name "},
    {"=x", false, false, BDY_EINVAL, "field label not supported: "},
};

static void test_field_selectors(void **state)
{
    (void)state;
    json_object *obj = parse_json(field_object);
    for (size_t i = 0; i < sizeof(field_cases) / sizeof(field_cases[0]); i++) {
        const struct field_case *c = &field_cases[i];
        bdy_field_selector *sel = (bdy_field_selector *)&sel;
        bdy_errbuf eb;
        bdy_errbuf_clear(&eb);
        int rc = bdy_field_selector_parse(c->text, c->wide ? wide_allowed : NULL, &sel, &eb);
        if (rc != c->rc)
            fail_msg("field selector \"%s\": rc %d want %d (%s)", c->text, rc, c->rc, eb.message);
        if (rc != 0) {
            assert_null(sel);
            if (strcmp(eb.message, c->message) != 0)
                fail_msg("field selector \"%s\":\n got: %s\nwant: %s", c->text, eb.message,
                         c->message);
            continue;
        }
        if (bdy_field_selector_matches(sel, obj) != c->match)
            fail_msg("field selector \"%s\": match %d want %d", c->text, !c->match, c->match);
        bdy_field_selector_free(sel);
    }
    json_object_put(obj);
}

static void test_field_selector_edges(void **state)
{
    (void)state;
    bdy_field_selector *sel = NULL;
    bdy_errbuf eb;

    /* NULL text and NULL object: missing fields compare as "". */
    assert_int_equal(bdy_field_selector_parse(NULL, NULL, &sel, &eb), 0);
    assert_true(bdy_field_selector_matches(sel, NULL));
    bdy_field_selector_free(sel);
    assert_int_equal(bdy_field_selector_parse("metadata.name=", NULL, &sel, &eb), 0);
    assert_true(bdy_field_selector_matches(sel, NULL));
    bdy_field_selector_free(sel);
    assert_int_equal(bdy_field_selector_parse("metadata.name!=", NULL, &sel, &eb), 0);
    assert_false(bdy_field_selector_matches(sel, NULL));
    bdy_field_selector_free(sel);
    bdy_field_selector_free(NULL);

    /* A value with an embedded NUL does not equal its prefix. */
    json_object *obj = parse_json("{\"metadata\":{\"name\":\"a\\u0000b\"}}");
    assert_int_equal(bdy_field_selector_parse("metadata.name=a", NULL, &sel, &eb), 0);
    assert_false(bdy_field_selector_matches(sel, obj));
    bdy_field_selector_free(sel);
    json_object_put(obj);

    /* Caps: text length and term count. */
    char *text = repeat(',', BDY_SELECTOR_MAX_TEXT + 1);
    text[BDY_SELECTOR_MAX_TEXT] = '\0';
    assert_int_equal(bdy_field_selector_parse(text, NULL, &sel, &eb), 0);
    bdy_field_selector_free(sel);
    text[BDY_SELECTOR_MAX_TEXT] = ',';
    assert_int_equal(bdy_field_selector_parse(text, NULL, &sel, &eb), BDY_EINVAL);
    assert_string_equal(eb.message, "field selector is longer than 4096 bytes");
    free(text);

    char terms[2048] = "";
    for (int i = 0; i < BDY_SELECTOR_MAX_TERMS; i++)
        append(terms, sizeof(terms), i ? ",metadata.name!=x" : "metadata.name!=x");
    assert_int_equal(bdy_field_selector_parse(terms, NULL, &sel, &eb), 0);
    bdy_field_selector_free(sel);
    append(terms, sizeof(terms), ",metadata.name!=x");
    assert_int_equal(bdy_field_selector_parse(terms, NULL, &sel, &eb), BDY_EINVAL);
    assert_string_equal(eb.message, "field selector has more than 64 terms");

    assert_int_equal(bdy_field_selector_parse("", NULL, NULL, &eb), BDY_EINVAL);
}

static void test_json_path_get(void **state)
{
    (void)state;
    char *longkey = repeat('k', 300);
    char json[1024];
    snprintf(json, sizeof(json), "{\"metadata\":{\"name\":\"w-1\",\"nil\":null},\"%s\":{\"x\":1}}",
             longkey);
    json_object *obj = parse_json(json);
    char path[400];

    json_object *v = bdy_json_path_get(obj, "metadata.name");
    assert_non_null(v);
    assert_string_equal(json_object_get_string(v), "w-1");
    assert_true(json_object_is_type(bdy_json_path_get(obj, "metadata"), json_type_object));
    assert_null(bdy_json_path_get(obj, "metadata.nope"));
    assert_null(bdy_json_path_get(obj, "metadata.nil"));
    assert_null(bdy_json_path_get(obj, "metadata..name"));
    assert_null(bdy_json_path_get(obj, ".metadata"));
    assert_null(bdy_json_path_get(obj, "metadata."));
    assert_null(bdy_json_path_get(obj, "metadata.name.x"));
    assert_null(bdy_json_path_get(obj, ""));
    assert_null(bdy_json_path_get(obj, NULL));
    assert_null(bdy_json_path_get(NULL, "metadata"));
    snprintf(path, sizeof(path), "%s.x", longkey);
    v = bdy_json_path_get(obj, path);
    assert_non_null(v);
    assert_int_equal(json_object_get_int(v), 1);
    json_object_put(obj);
    free(longkey);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_parse_valid),
        cmocka_unit_test(test_label_parse_null_matches_all),
        cmocka_unit_test(test_label_parse_invalid),
        cmocka_unit_test(test_label_key_and_value_lengths),
        cmocka_unit_test(test_label_caps),
        cmocka_unit_test(test_label_odd_label_values),
        cmocka_unit_test(test_json_valid),
        cmocka_unit_test(test_json_api_example),
        cmocka_unit_test(test_json_invalid),
        cmocka_unit_test(test_json_caps),
        cmocka_unit_test(test_json_and_string_agree),
        cmocka_unit_test(test_field_selectors),
        cmocka_unit_test(test_field_selector_edges),
        cmocka_unit_test(test_json_path_get),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
