/* Unit tests for include/bindery/yaml.h. */
#include "bindery/yaml.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------------- */
/* Helpers                                                                  */

static json_object *to_json_ok(const char *text)
{
    json_object *out = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy_yaml_to_json(text, strlen(text), &out, &eb);
    if (rc != 0)
        fail_msg("bdy_yaml_to_json failed (%d): %s", rc, eb.message);
    assert_non_null(out);
    assert_true(json_object_is_type(out, json_type_array));
    return out;
}

/* Converts text expecting failure with code rc and a message containing
 * want. */
static void to_json_fails(const char *text, size_t len, int rc, const char *want)
{
    json_object *out = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_yaml_to_json(text, len, &out, &eb), rc);
    assert_null(out);
    if (strstr(eb.message, want) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", eb.message, want);
}

static void parse_one_fails(const char *text, int rc, const char *want)
{
    bdy_ynode *n = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_yaml_parse_one(text, strlen(text), &n, &eb), rc);
    assert_null(n);
    if (strstr(eb.message, want) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", eb.message, want);
}

/* The value of key in the only document of text. The caller puts *doc. */
static json_object *single_doc(const char *text, json_object **docs)
{
    *docs = to_json_ok(text);
    assert_int_equal(json_object_array_length(*docs), 1);
    return json_object_array_get_idx(*docs, 0);
}

static json_object *member(json_object *obj, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(obj, key, &v))
        fail_msg("key \"%s\" missing", key);
    return v;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static int remove_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_tree(const char *path)
{
    assert_int_equal(nftw(path, remove_cb, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* ---------------------------------------------------------------------- */
/* Typing                                                                   */

static void test_core_schema_typing(void **state)
{
    (void)state;
    json_object *docs = NULL;
    json_object *d = single_doc("n1: null\n"
                                "n2: ~\n"
                                "n3:\n"
                                "n4: NULL\n"
                                "n5: Null\n"
                                "b1: true\n"
                                "b2: True\n"
                                "b3: TRUE\n"
                                "b4: false\n"
                                "b5: FALSE\n"
                                "i1: 42\n"
                                "i2: -17\n"
                                "i3: +8\n"
                                "i4: 0x1F\n"
                                "i5: 0o17\n"
                                "i6: 007\n"
                                "i7: -9223372036854775808\n"
                                "u1: 18446744073709551615\n"
                                "f1: 1.5\n"
                                "f2: -.5\n"
                                "f3: 1e3\n"
                                "f4: 2.\n"
                                "f8: 18446744073709551616\n"
                                "s1: yes\n"
                                "s2: 1_000\n"
                                "s3: 0x\n"
                                "s4: 0o8\n"
                                "s5: 1.2.3\n"
                                "s6: nan\n"
                                "s7: -0x10\n"
                                "s8: hello world\n"
                                "s9: on\n",
                                &docs);
    const char *nulls[] = {"n1", "n2", "n3", "n4", "n5"};
    for (size_t i = 0; i < 5; i++) {
        json_object *v = (json_object *)1;
        assert_true(json_object_object_get_ex(d, nulls[i], &v));
        assert_null(v);
    }
    assert_true(json_object_is_type(member(d, "b1"), json_type_boolean));
    assert_true(json_object_get_boolean(member(d, "b1")));
    assert_true(json_object_get_boolean(member(d, "b2")));
    assert_true(json_object_get_boolean(member(d, "b3")));
    assert_false(json_object_get_boolean(member(d, "b4")));
    assert_true(json_object_is_type(member(d, "b5"), json_type_boolean));
    assert_false(json_object_get_boolean(member(d, "b5")));

    assert_true(json_object_is_type(member(d, "i1"), json_type_int));
    assert_int_equal(json_object_get_int64(member(d, "i1")), 42);
    assert_int_equal(json_object_get_int64(member(d, "i2")), -17);
    assert_int_equal(json_object_get_int64(member(d, "i3")), 8);
    assert_int_equal(json_object_get_int64(member(d, "i4")), 31);
    assert_int_equal(json_object_get_int64(member(d, "i5")), 15);
    assert_int_equal(json_object_get_int64(member(d, "i6")), 7);
    assert_true(json_object_get_int64(member(d, "i7")) == INT64_MIN);
    assert_true(json_object_is_type(member(d, "u1"), json_type_int));
    assert_true(json_object_get_uint64(member(d, "u1")) == UINT64_MAX);

    assert_true(json_object_is_type(member(d, "f1"), json_type_double));
    assert_true(json_object_get_double(member(d, "f1")) == 1.5);
    assert_true(json_object_get_double(member(d, "f2")) == -0.5);
    assert_true(json_object_get_double(member(d, "f3")) == 1000.0);
    assert_true(json_object_is_type(member(d, "f4"), json_type_double));
    assert_true(json_object_get_double(member(d, "f4")) == 2.0);
    assert_true(json_object_is_type(member(d, "f8"), json_type_double));
    assert_true(json_object_get_double(member(d, "f8")) == 18446744073709551616.0);

    const char *strings[][2] = {{"s1", "yes"},   {"s2", "1_000"},       {"s3", "0x"},
                                {"s4", "0o8"},   {"s5", "1.2.3"},       {"s6", "nan"},
                                {"s7", "-0x10"}, {"s8", "hello world"}, {"s9", "on"}};
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        json_object *v = member(d, strings[i][0]);
        assert_true(json_object_is_type(v, json_type_string));
        assert_string_equal(json_object_get_string(v), strings[i][1]);
    }
    json_object_put(docs);
}

/* Numbers JSON cannot hold are refused, with their line: json-c would
 * write them as NaN or Infinity. Quoted, they are strings. */
static void test_non_finite_numbers_refused(void **state)
{
    (void)state;
    const char *texts[] = {"a: 1\nf: .inf\n", "a: 1\nf: -.Inf\n", "a: 1\nf: .NaN\n",
                           "a: 1\nf: 1e999\n", "a: 1\nf: [1, .nan]\n"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        json_object *docs = NULL;
        bdy_errbuf eb;
        bdy_errbuf_clear(&eb);
        assert_int_equal(bdy_yaml_to_json(texts[i], strlen(texts[i]), &docs, &eb), BDY_EPARSE);
        assert_null(docs);
        assert_non_null(strstr(eb.message, "line 2: "));
        assert_non_null(strstr(eb.message, "JSON cannot hold"));
    }
    json_object *docs = NULL;
    json_object *d = single_doc("f: '.inf'\n", &docs);
    assert_string_equal(json_object_get_string(member(d, "f")), ".inf");
    json_object_put(docs);
}

static void test_quoted_and_block_scalars_stay_strings(void **state)
{
    (void)state;
    json_object *docs = NULL;
    json_object *d = single_doc("a: 'true'\n"
                                "b: \"42\"\n"
                                "c: ''\n"
                                "d: |\n"
                                "  12\n"
                                "e: >-\n"
                                "  null\n"
                                "f: \"~\"\n",
                                &docs);
    const char *want[][2] = {{"a", "true"}, {"b", "42"},   {"c", ""},
                             {"d", "12\n"}, {"e", "null"}, {"f", "~"}};
    for (size_t i = 0; i < 6; i++) {
        json_object *v = member(d, want[i][0]);
        assert_true(json_object_is_type(v, json_type_string));
        assert_string_equal(json_object_get_string(v), want[i][1]);
    }
    json_object_put(docs);
}

static void test_standard_tags(void **state)
{
    (void)state;
    json_object *docs = NULL;
    json_object *d = single_doc("a: !!str 5\n"
                                "b: !!float 1\n"
                                "c: !!int \"12\"\n"
                                "d: !!bool true\n"
                                "e: !!null ''\n"
                                "f: !!map {x: 1}\n"
                                "g: !!seq [1]\n"
                                "h: ! 7\n",
                                &docs);
    assert_true(json_object_is_type(member(d, "a"), json_type_string));
    assert_string_equal(json_object_get_string(member(d, "a")), "5");
    assert_true(json_object_is_type(member(d, "b"), json_type_double));
    assert_true(json_object_get_double(member(d, "b")) == 1.0);
    assert_true(json_object_is_type(member(d, "c"), json_type_int));
    assert_int_equal(json_object_get_int64(member(d, "c")), 12);
    assert_true(json_object_is_type(member(d, "d"), json_type_boolean));
    assert_null(member(d, "e"));
    assert_true(json_object_is_type(member(d, "f"), json_type_object));
    assert_true(json_object_is_type(member(d, "g"), json_type_array));
    assert_true(json_object_is_type(member(d, "h"), json_type_string));
    json_object_put(docs);

    const char *bad[][2] = {
        {"a: !!int abc\n", "line 1: \"abc\" is not a valid !!int"},
        {"a: 1\nb: !!bool yes\n", "line 2: \"yes\" is not a valid !!bool"},
        {"a: !!null x\n", "is not a valid !!null"},
        {"a: !!float x\n", "is not a valid !!float"},
        {"a: !!map x\n", "line 1: tag !!map on a scalar"},
        {"a: !!str [1]\n", "on a list"},
        {"a: !!seq {b: 1}\n", "on a map"},
        {"a:\n  b: !custom 1\n", "line 2: tag \"!custom\" is not supported"},
        {"a: !<tag:example.com,2000:x> 1\n", "is not supported"},
        {"%TAG !e! tag:example.com,2000:\n---\na: !e!x 1\n", "line 3: tag"},
        {"a: !!binary aGVsbG8=\n", "is not supported"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        to_json_fails(bad[i][0], strlen(bad[i][0]), BDY_EPARSE, bad[i][1]);
}

/* ---------------------------------------------------------------------- */
/* Documents                                                                */

static void test_multi_document_stream(void **state)
{
    (void)state;
    json_object *docs = to_json_ok("# leading comment\n"
                                   "kind: A\n"
                                   "---\n"
                                   "---\n"
                                   "# only a comment\n"
                                   "--- null\n"
                                   "---\n"
                                   "kind: B\n"
                                   "items: [1, 2]\n"
                                   "...\n"
                                   "--- 7\n"
                                   "--- [x]\n");
    assert_int_equal(json_object_array_length(docs), 4);
    json_object *a = json_object_array_get_idx(docs, 0);
    json_object *b = json_object_array_get_idx(docs, 1);
    assert_string_equal(json_object_get_string(member(a, "kind")), "A");
    assert_string_equal(json_object_get_string(member(b, "kind")), "B");
    assert_int_equal(json_object_array_length(member(b, "items")), 2);
    assert_int_equal(json_object_get_int64(json_object_array_get_idx(docs, 2)), 7);
    assert_true(json_object_is_type(json_object_array_get_idx(docs, 3), json_type_array));
    json_object_put(docs);

    docs = to_json_ok("");
    assert_int_equal(json_object_array_length(docs), 0);
    json_object_put(docs);
    docs = to_json_ok("# nothing\n---\n");
    assert_int_equal(json_object_array_length(docs), 0);
    json_object_put(docs);
    /* A NULL text of length 0 is an empty stream too. */
    json_object *out = NULL;
    assert_int_equal(bdy_yaml_to_json(NULL, 0, &out, NULL), 0);
    assert_int_equal(json_object_array_length(out), 0);
    json_object_put(out);
}

static void test_nested_structure_round_trips(void **state)
{
    (void)state;
    json_object *docs = NULL;
    json_object *d = single_doc("apiVersion: bindery.dev/v1alpha1\n"
                                "kind: ModuleManifest\n"
                                "metadata:\n"
                                "  name: arena\n"
                                "  labels: {tier: gold, \"x/y\": \"1\"}\n"
                                "spec:\n"
                                "  ports:\n"
                                "    - name: game\n"
                                "      port: 7777\n"
                                "    - {name: query, port: 7778}\n"
                                "  command: [\"/bin/world\", --port, \"7777\"]\n",
                                &docs);
    const char *want = "{\"apiVersion\":\"bindery.dev/v1alpha1\",\"kind\":\"ModuleManifest\","
                       "\"metadata\":{\"name\":\"arena\",\"labels\":{\"tier\":\"gold\",\"x/y\":"
                       "\"1\"}},\"spec\":{\"ports\":[{\"name\":\"game\",\"port\":7777},"
                       "{\"name\":\"query\",\"port\":7778}],\"command\":[\"/bin/world\","
                       "\"--port\",\"7777\"]}}";
    assert_string_equal(
        json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
        want);
    json_object_put(docs);
}

static void test_parse_one_tree_and_lines(void **state)
{
    (void)state;
    const char *text = "# comment\n"
                       "listen: \"127.0.0.1:1\"\n"
                       "http:\n"
                       "  threads: 8\n"
                       "\n"
                       "  limits: [a, b]\n"
                       "crds:\n"
                       "  - one\n"
                       "  - two\n";
    bdy_ynode *root = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_yaml_parse_one(text, strlen(text), &root, &eb), 0);
    assert_int_equal(root->kind, BDY_YNODE_MAP);
    assert_int_equal(root->line, 2);
    assert_int_equal(root->count, 3);
    assert_string_equal(root->keys[0], "listen");
    assert_string_equal(root->keys[1], "http");
    assert_string_equal(root->keys[2], "crds");
    assert_int_equal(root->key_lines[0], 2);
    assert_int_equal(root->key_lines[1], 3);
    assert_int_equal(root->key_lines[2], 7);

    const bdy_ynode *listen = bdy_ynode_get(root, "listen");
    assert_non_null(listen);
    assert_int_equal(listen->kind, BDY_YNODE_SCALAR);
    assert_true(listen->quoted);
    assert_string_equal(listen->scalar, "127.0.0.1:1");
    assert_int_equal(listen->line, 2);
    assert_int_equal(listen->column, 9);

    const bdy_ynode *http = bdy_ynode_get(root, "http");
    assert_int_equal(http->kind, BDY_YNODE_MAP);
    assert_int_equal(http->line, 4);
    const bdy_ynode *threads = bdy_ynode_get(http, "threads");
    assert_false(threads->quoted);
    assert_string_equal(threads->scalar, "8");
    assert_int_equal(threads->line, 4);
    assert_int_equal(threads->column, 12);
    assert_int_equal(http->key_lines[1], 6);
    const bdy_ynode *limits = bdy_ynode_get(http, "limits");
    assert_int_equal(limits->kind, BDY_YNODE_SEQ);
    assert_int_equal(limits->count, 2);
    assert_string_equal(limits->items[1]->scalar, "b");

    const bdy_ynode *crds = bdy_ynode_get(root, "crds");
    assert_int_equal(crds->kind, BDY_YNODE_SEQ);
    assert_null(crds->keys);
    assert_int_equal(crds->items[0]->line, 8);
    assert_int_equal(crds->items[1]->line, 9);

    assert_null(bdy_ynode_get(root, "missing"));
    assert_null(bdy_ynode_get(crds, "x"));
    assert_null(bdy_ynode_get(NULL, "x"));
    bdy_ynode_free(root);
    bdy_ynode_free(NULL);
}

static void test_parse_one_empty_and_multiple(void **state)
{
    (void)state;
    const char *empties[] = {"", "# just a comment\n", "---\n", "\n\n"};
    for (size_t i = 0; i < 4; i++) {
        bdy_ynode *root = NULL;
        assert_int_equal(bdy_yaml_parse_one(empties[i], strlen(empties[i]), &root, NULL), 0);
        assert_int_equal(root->kind, BDY_YNODE_MAP);
        assert_int_equal(root->count, 0);
        bdy_ynode_free(root);
    }
    /* A top-level list or scalar is returned as it is. */
    bdy_ynode *root = NULL;
    assert_int_equal(bdy_yaml_parse_one("- a\n", 4, &root, NULL), 0);
    assert_int_equal(root->kind, BDY_YNODE_SEQ);
    bdy_ynode_free(root);
    root = NULL;
    assert_int_equal(bdy_yaml_parse_one("'' \n", 4, &root, NULL), 0);
    assert_int_equal(root->kind, BDY_YNODE_SCALAR);
    assert_true(root->quoted);
    bdy_ynode_free(root);

    parse_one_fails("a: 1\n---\nb: 2\n", BDY_EPARSE, "line 3: expected one YAML document");
    /* Empty documents after the one are nothing (a "---" left at the end). */
    const char *trailing[] = {"a: 1\n---\n", "a: 1\n---\n---\n# done\n"};
    for (size_t i = 0; i < 2; i++) {
        root = NULL;
        assert_int_equal(bdy_yaml_parse_one(trailing[i], strlen(trailing[i]), &root, NULL), 0);
        assert_int_equal(root->kind, BDY_YNODE_MAP);
        assert_int_equal(root->count, 1);
        bdy_ynode_free(root);
    }
    parse_one_fails("a: 1\n---\n---\nb: 2\n", BDY_EPARSE, "line 4: expected one YAML document");
}

/* ---------------------------------------------------------------------- */
/* Refusals                                                                 */

static void test_duplicate_keys(void **state)
{
    (void)state;
    parse_one_fails("a: 1\nb: 2\na: 3\n", BDY_EPARSE,
                    "line 3: duplicate key \"a\" (first at line 1)");
    to_json_fails("x:\n  y: 1\n  z: 2\n  y: 3\n", 24, BDY_EPARSE,
                  "line 4: duplicate key \"y\" (first at line 2)");
    to_json_fails("{a: 1, a: 2}", 12, BDY_EPARSE, "duplicate key \"a\"");
    /* Same key in different maps is fine. */
    json_object *docs = to_json_ok("a: {k: 1}\nb: {k: 2}\n---\nk: 3\n");
    json_object_put(docs);

    /* A big map: the first repeat in document order is the one reported,
     * although "k00005" sorts after "k00002". */
    size_t cap = 64 * 1024;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t pos = 0;
    for (int i = 0; i < 1000; i++)
        pos += (size_t)snprintf(text + pos, cap - pos, "k%05d: %d\n", i, i);
    pos += (size_t)snprintf(text + pos, cap - pos, "k00005: x\nk00002: y\n");
    to_json_fails(text, pos, BDY_EPARSE, "line 1001: duplicate key \"k00005\" (first at line 6)");
    free(text);
}

static void test_anchors_and_aliases_refused(void **state)
{
    (void)state;
    to_json_fails("a: &x 1\nb: 2\n", 13, BDY_EPARSE, "line 1: anchors (&x) are not supported");
    to_json_fails("base: &b {x: 1}\n", 16, BDY_EPARSE, "anchors (&b)");
    to_json_fails("a:\n  - &l [1]\n", 14, BDY_EPARSE, "line 2: anchors (&l)");
    /* An alias is refused even when its anchor would be (the anchor line
     * is reported first, so test a lone alias, which libyaml still emits). */
    to_json_fails("a: *nowhere\n", 12, BDY_EPARSE, "line 1: aliases (*nowhere) are not supported");
    const char *laughs = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
                         "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                         "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                         "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n";
    to_json_fails(laughs, strlen(laughs), BDY_EPARSE, "not supported");
    parse_one_fails("x: &y z\n", BDY_EPARSE, "anchors");
}

static void test_non_scalar_keys_refused(void **state)
{
    (void)state;
    to_json_fails("[a, b]: 1\n", 10, BDY_EPARSE, "line 1: map keys must be scalars, not a list");
    to_json_fails("x:\n  ? {a: 1}\n  : 2\n", 20, BDY_EPARSE,
                  "line 2: map keys must be scalars, not a map");
}

static void test_nul_in_scalar_refused(void **state)
{
    (void)state;
    to_json_fails("a: \"x\\0y\"\n", 10, BDY_EPARSE, "line 1: NUL characters");
}

static void test_malformed_input(void **state)
{
    (void)state;
    const char *cases[][2] = {
        {"a: [1, 2\nb: 3\n", "line 2: "},
        {"a: 1\n b: 2\n", "line 2: mapping values are not allowed"},
        {"a:\n\t- 1\n", "line 2: "},
        {"a: 'unterminated\n", "found unexpected end of stream"},
        {"key: value\n- item\n", "line 2: "},
        {"a: b: c\n", "line 1: mapping values are not allowed"},
        {"{a: 1\n", "line 2: "},
        {"x: @reserved\n", "line 1: "},
        {"a: \"\\q\"\n", "line 1: found unknown escape character"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        to_json_fails(cases[i][0], strlen(cases[i][0]), BDY_EPARSE, cases[i][1]);
        parse_one_fails(cases[i][0], BDY_EPARSE, cases[i][1]);
    }
    /* Invalid UTF-8 on line 3: the reader error still gets a line. */
    const char bad_utf8[] = "a: 1\nb: 2\nc: \xc3\x28\n";
    to_json_fails(bad_utf8, sizeof(bad_utf8) - 1, BDY_EPARSE, "line 3: invalid");
    /* A NUL byte in the stream. */
    const char with_nul[] = "a: 1\nb: x\0y\n";
    to_json_fails(with_nul, sizeof(with_nul) - 1, BDY_EPARSE, "line 2: ");
}

/* ---------------------------------------------------------------------- */
/* Caps                                                                     */

static char *nested_seqs(int depth)
{
    char *s = malloc((size_t)depth * 2 + 1);
    assert_non_null(s);
    for (int i = 0; i < depth; i++) {
        s[i] = '[';
        s[depth * 2 - 1 - i] = ']';
    }
    s[depth * 2] = '\0';
    return s;
}

static void test_depth_cap(void **state)
{
    (void)state;
    char *ok = nested_seqs(BDY_YAML_MAX_DEPTH);
    json_object *docs = to_json_ok(ok);
    json_object_put(docs);
    free(ok);

    char *deep = nested_seqs(BDY_YAML_MAX_DEPTH + 1);
    to_json_fails(deep, strlen(deep), BDY_ETOOBIG, "line 1: nested deeper than 64 levels");
    parse_one_fails(deep, BDY_ETOOBIG, "nested deeper");
    free(deep);

    /* Block style counts the same way. */
    size_t cap = (BDY_YAML_MAX_DEPTH + 2) * (BDY_YAML_MAX_DEPTH + 8);
    char *block = malloc(cap);
    assert_non_null(block);
    size_t pos = 0;
    for (int i = 0; i <= BDY_YAML_MAX_DEPTH; i++)
        pos += (size_t)snprintf(block + pos, cap - pos, "%*sk:\n", i, "");
    to_json_fails(block, pos, BDY_ETOOBIG, "line 65: nested deeper");
    free(block);
}

/* "[1,1,...,1]" with n scalars: n + 1 nodes. */
static char *flat_seq(size_t n, size_t *len)
{
    char *s = malloc(n * 2 + 2);
    assert_non_null(s);
    size_t pos = 0;
    s[pos++] = '[';
    for (size_t i = 0; i < n; i++) {
        s[pos++] = '1';
        s[pos++] = i + 1 < n ? ',' : ']';
    }
    s[pos] = '\0';
    *len = pos;
    return s;
}

static void test_node_cap(void **state)
{
    (void)state;
    size_t len = 0;
    char *at_cap = flat_seq(BDY_YAML_MAX_NODES - 1, &len);
    json_object *out = NULL;
    assert_int_equal(bdy_yaml_to_json(at_cap, len, &out, NULL), 0);
    assert_int_equal(json_object_array_length(json_object_array_get_idx(out, 0)),
                     BDY_YAML_MAX_NODES - 1);
    json_object_put(out);
    free(at_cap);

    char *over = flat_seq(BDY_YAML_MAX_NODES, &len);
    to_json_fails(over, len, BDY_ETOOBIG, "more than 200000 nodes");
    free(over);

    /* The cap is over the whole stream, not per document. */
    const char *doc = "[1,1,1,1,1,1,1,1,1]\n---\n"; /* 10 nodes per document */
    size_t dlen = strlen(doc);
    size_t ndocs = BDY_YAML_MAX_NODES / 10 + 1;
    char *stream = malloc(ndocs * dlen + 1);
    assert_non_null(stream);
    for (size_t i = 0; i < ndocs; i++)
        memcpy(stream + i * dlen, doc, dlen);
    to_json_fails(stream, ndocs * dlen, BDY_ETOOBIG, "more than 200000 nodes");
    free(stream);
}

static void test_byte_cap(void **state)
{
    (void)state;
    size_t len = BDY_YAML_MAX_BYTES;
    char *text = malloc(len + 1);
    assert_non_null(text);
    /* One long comment exactly at the cap parses... */
    memset(text, 'x', len);
    memcpy(text, "a: 1\n#", 6);
    text[len - 1] = '\n';
    text[len] = 'y';
    json_object *out = NULL;
    assert_int_equal(bdy_yaml_to_json(text, len, &out, NULL), 0);
    assert_int_equal(json_object_array_length(out), 1);
    json_object_put(out);
    /* ...one byte more does not. */
    to_json_fails(text, len + 1, BDY_ETOOBIG, "over the 4194304-byte limit");
    bdy_ynode *n = NULL;
    assert_int_equal(bdy_yaml_parse_one(text, len + 1, &n, NULL), BDY_ETOOBIG);
    assert_null(n);
    free(text);
}

/* ---------------------------------------------------------------------- */
/* Files                                                                    */

static void test_file_to_json(void **state)
{
    (void)state;
    char dir[] = "/tmp/bdy-test-yaml-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[512];
    snprintf(path, sizeof(path), "%s/one.yaml", dir);
    write_text(path, "a: 1\n---\nb: 2\n");
    json_object *out = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_yaml_file_to_json(path, &out, &eb), 0);
    assert_int_equal(json_object_array_length(out), 2);
    json_object_put(out);
    out = NULL;

    write_text(path, "a: 1\nb: [\n");
    assert_int_equal(bdy_yaml_file_to_json(path, &out, &eb), BDY_EPARSE);
    assert_null(out);
    char want[600];
    snprintf(want, sizeof(want), "%s: line 3: ", path);
    assert_non_null(strstr(eb.message, want));

    snprintf(path, sizeof(path), "%s/missing.yaml", dir);
    assert_int_equal(bdy_yaml_file_to_json(path, &out, &eb), BDY_ENOTFOUND);
    assert_non_null(strstr(eb.message, "missing.yaml"));
    assert_int_equal(bdy_yaml_file_to_json(dir, &out, &eb), BDY_EINVAL);
    assert_null(out);
    remove_tree(dir);
}

static void test_load_manifests_folder(void **state)
{
    (void)state;
    char dir[] = "/tmp/bdy-test-yaml-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[512];
    struct {
        const char *name;
        const char *text;
    } files[] = {
        {"b.yaml", "kind: B1\n---\nkind: B2\n"},     {"a.json", "{\"kind\": \"A\", \"n\": 1}"},
        {"c.yml", "# comment only\n---\nkind: C\n"}, {"d.txt", "kind: ignored\n"},
        {".hidden.yaml", "kind: hidden\n"},          {"yaml", "kind: no-extension\n"},
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i].name);
        write_text(path, files[i].text);
    }
    snprintf(path, sizeof(path), "%s/sub.yaml", dir);
    assert_int_equal(mkdir(path, 0700), 0); /* a folder named like a file: skipped */
    snprintf(path, sizeof(path), "%s/sub.yaml/deep.yaml", dir);
    write_text(path, "kind: nested\n");

    json_object *out = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_yaml_load_manifests(dir, &out, &eb), 0);
    const char *order[] = {"A", "B1", "B2", "C"};
    assert_int_equal(json_object_array_length(out), 4);
    for (size_t i = 0; i < 4; i++) {
        json_object *doc = json_object_array_get_idx(out, i);
        assert_string_equal(json_object_get_string(member(doc, "kind")), order[i]);
    }
    assert_int_equal(json_object_get_int64(member(json_object_array_get_idx(out, 0), "n")), 1);
    json_object_put(out);
    out = NULL;

    /* Where each document begins, for messages about it. */
    json_object *sources = NULL;
    assert_int_equal(bdy_yaml_load_manifests_at(dir, &out, &sources, &eb), 0);
    assert_int_equal(json_object_array_length(sources), 4);
    const char *at[] = {"a.json:1", "b.yaml:1", "b.yaml:3", "c.yml:3"};
    for (size_t i = 0; i < 4; i++) {
        char want[600];
        snprintf(want, sizeof(want), "%s/%s", dir, at[i]);
        assert_string_equal(json_object_get_string(json_object_array_get_idx(sources, i)), want);
    }
    json_object_put(sources);
    json_object_put(out);
    out = NULL;

    /* A trailing slash on the folder works the same. */
    snprintf(path, sizeof(path), "%s/", dir);
    assert_int_equal(bdy_yaml_load_manifests(path, &out, &eb), 0);
    assert_int_equal(json_object_array_length(out), 4);
    json_object_put(out);
    out = NULL;

    /* A single file is taken whatever its name. */
    snprintf(path, sizeof(path), "%s/d.txt", dir);
    assert_int_equal(bdy_yaml_load_manifests(path, &out, &eb), 0);
    assert_int_equal(json_object_array_length(out), 1);
    json_object_put(out);
    out = NULL;

    /* A broken file makes the whole load fail, naming file and line. */
    snprintf(path, sizeof(path), "%s/bb.yaml", dir);
    write_text(path, "kind: X\nkind: Y\n");
    assert_int_equal(bdy_yaml_load_manifests(dir, &out, &eb), BDY_EPARSE);
    assert_null(out);
    char want[600];
    snprintf(want, sizeof(want), "%s/bb.yaml: line 2: duplicate key \"kind\" (first at line 1)",
             dir);
    assert_string_equal(eb.message, want);

    snprintf(path, sizeof(path), "%s/nope", dir);
    assert_int_equal(bdy_yaml_load_manifests(path, &out, &eb), BDY_ENOTFOUND);
    assert_non_null(strstr(eb.message, "nope"));
    assert_null(out);
    remove_tree(dir);
}

/* A folder's files share one node budget: three files of 80,000 nodes
 * each load alone, not together (every document of a folder is kept until
 * it is read whole). */
static void test_load_manifests_node_budget(void **state)
{
    (void)state;
    char dir[] = "/tmp/bdy-test-yaml-XXXXXX";
    assert_non_null(mkdtemp(dir));
    enum { ITEMS = 80000 };
    char *text = malloc(2 * ITEMS + 8);
    assert_non_null(text);
    size_t n = 0;
    text[n++] = '[';
    for (int i = 0; i < ITEMS; i++) {
        text[n++] = '1';
        text[n++] = i + 1 < ITEMS ? ',' : ']';
    }
    text[n++] = '\n';
    text[n] = '\0';
    char path[512];
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/m%d.yaml", dir, i);
        write_text(path, text);
    }
    free(text);
    json_object *out = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    snprintf(path, sizeof(path), "%s/m2.yaml", dir);
    assert_int_equal(bdy_yaml_load_manifests(path, &out, &eb), 0);
    json_object_put(out);
    out = NULL;
    assert_int_equal(bdy_yaml_load_manifests(dir, &out, &eb), BDY_ETOOBIG);
    assert_null(out);
    assert_non_null(strstr(eb.message, "m2.yaml"));
    assert_non_null(strstr(eb.message, "the manifests read together have more than"));
    remove_tree(dir);
}

static void test_load_manifests_empty_folder(void **state)
{
    (void)state;
    char dir[] = "/tmp/bdy-test-yaml-XXXXXX";
    assert_non_null(mkdtemp(dir));
    json_object *out = NULL;
    assert_int_equal(bdy_yaml_load_manifests(dir, &out, NULL), 0);
    assert_int_equal(json_object_array_length(out), 0);
    json_object_put(out);
    remove_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_core_schema_typing),
        cmocka_unit_test(test_non_finite_numbers_refused),
        cmocka_unit_test(test_quoted_and_block_scalars_stay_strings),
        cmocka_unit_test(test_standard_tags),
        cmocka_unit_test(test_multi_document_stream),
        cmocka_unit_test(test_nested_structure_round_trips),
        cmocka_unit_test(test_parse_one_tree_and_lines),
        cmocka_unit_test(test_parse_one_empty_and_multiple),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_anchors_and_aliases_refused),
        cmocka_unit_test(test_non_scalar_keys_refused),
        cmocka_unit_test(test_nul_in_scalar_refused),
        cmocka_unit_test(test_malformed_input),
        cmocka_unit_test(test_depth_cap),
        cmocka_unit_test(test_node_cap),
        cmocka_unit_test(test_byte_cap),
        cmocka_unit_test(test_file_to_json),
        cmocka_unit_test(test_load_manifests_folder),
        cmocka_unit_test(test_load_manifests_node_budget),
        cmocka_unit_test(test_load_manifests_empty_folder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
