#include "bindery/auth.h"
#include "bindery/error.h"
#include "bindery/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* sha256("test"), the example in auth.h. */
#define TEST_HASH "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

typedef struct fixture {
    char dir[64];
    char path[128];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/bdy-auth-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/tokens.yaml", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void write_file(const fixture *f, const char *text)
{
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
    assert_int_equal(fclose(fp), 0);
}

static char *hash_of(const char *token, char out[65])
{
    bdy_sha256_hex(token, strlen(token), out);
    return out;
}

static bdy_auth *load_good(const fixture *f)
{
    char ops[65];
    char reader[65];
    char slow[65];
    hash_of("ops-token", ops);
    for (char *p = ops; *p; p++) /* upper-case hex is accepted too */
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    char text[2048];
    snprintf(text, sizeof(text),
             "# Tokens for the tests.\n"
             "tokens:\n"
             "  - name: matchmaker-eu\n"
             "    sha256: " TEST_HASH "\n"
             "    namespaces: [\"default\", \"ranked\"]\n"
             "    verbs: [allocate, release, read]\n"
             "    ratePerSecond: 200\n"
             "  - name: ops\n"
             "    sha256: %s\n"
             "    namespaces: [\"*\"]\n"
             "    verbs: [admin]\n"
             "  - name: reader\n"
             "    sha256: %s\n"
             "    namespaces:\n"
             "      - default\n"
             "    verbs: [read]\n"
             "    ratePerSecond: 2\n"
             "  - name: slow\n"
             "    sha256: %s\n"
             "    namespaces: [default]\n"
             "    verbs: [read]\n"
             "    ratePerSecond: 0.5\n",
             ops, hash_of("reader-token", reader), hash_of("slow-token", slow));
    write_file(f, text);
    bdy_auth *a = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy_auth_load(f->path, &a, &eb);
    if (rc != 0)
        fail_msg("load failed: %s", eb.message);
    return a;
}

static void test_load_and_authenticate(void **state)
{
    fixture *f = *state;
    bdy_auth *a = load_good(f);
    assert_int_equal(bdy_auth_count(a), 4);

    const bdy_principal *mm = bdy_auth_authenticate(a, "Bearer test");
    assert_non_null(mm);
    assert_string_equal(bdy_principal_name(mm), "matchmaker-eu");
    /* Scheme is case-insensitive; extra blanks around the token are fine. */
    assert_ptr_equal(bdy_auth_authenticate(a, "bearer   test  "), mm);
    assert_ptr_equal(bdy_auth_authenticate(a, "BEARER\ttest"), mm);

    const bdy_principal *ops = bdy_auth_authenticate(a, "Bearer ops-token");
    assert_non_null(ops);
    assert_string_equal(bdy_principal_name(ops), "ops");
    const bdy_principal *reader = bdy_auth_authenticate(a, "Bearer reader-token");
    assert_non_null(reader);
    assert_string_equal(bdy_principal_name(reader), "reader");

    /* Wrong, missing and malformed. */
    assert_null(bdy_auth_authenticate(a, "Bearer wrong"));
    assert_null(bdy_auth_authenticate(a, "Bearer tes"));
    assert_null(bdy_auth_authenticate(a, "Bearer testt"));
    assert_null(bdy_auth_authenticate(a, NULL));
    assert_null(bdy_auth_authenticate(a, ""));
    assert_null(bdy_auth_authenticate(a, "Bearer"));
    assert_null(bdy_auth_authenticate(a, "Bearer "));
    assert_null(bdy_auth_authenticate(a, "Bearertest"));
    assert_null(bdy_auth_authenticate(a, "Basic dGVzdA=="));
    assert_null(bdy_auth_authenticate(a, "test"));
    assert_null(bdy_auth_authenticate(a, "Bearer te st"));
    assert_null(bdy_auth_authenticate(a, "Bearer test\n"));
    /* The hash itself is not a token. */
    assert_null(bdy_auth_authenticate(a, "Bearer " TEST_HASH));
    assert_null(bdy_auth_authenticate(NULL, "Bearer test"));

    /* Over-long tokens are refused before hashing. */
    size_t n = BDY_AUTH_MAX_TOKEN_LEN + 8;
    char *big = malloc(7 + n + 1);
    assert_non_null(big);
    memcpy(big, "Bearer ", 7);
    memset(big + 7, 'x', n);
    big[7 + n] = '\0';
    assert_null(bdy_auth_authenticate(a, big));
    free(big);
    bdy_auth_free(a);
    bdy_auth_free(NULL);
    assert_int_equal(bdy_auth_count(NULL), 0);
}

static void test_verbs_and_namespaces(void **state)
{
    fixture *f = *state;
    bdy_auth *a = load_good(f);
    const bdy_principal *mm = bdy_auth_authenticate(a, "Bearer test");
    const bdy_principal *ops = bdy_auth_authenticate(a, "Bearer ops-token");
    const bdy_principal *reader = bdy_auth_authenticate(a, "Bearer reader-token");

    assert_true(bdy_principal_allows(mm, BDY_VERB_ALLOCATE, "default"));
    assert_true(bdy_principal_allows(mm, BDY_VERB_RELEASE, "ranked"));
    assert_true(bdy_principal_allows(mm, BDY_VERB_READ, "ranked"));
    assert_false(bdy_principal_allows(mm, BDY_VERB_ALLOCATE, "other"));
    assert_false(bdy_principal_allows(mm, BDY_VERB_ALLOCATE, "defaul"));
    assert_false(bdy_principal_allows(mm, BDY_VERB_ADMIN, "default"));
    assert_false(bdy_principal_allows(mm, BDY_VERB_READ, NULL)); /* cluster-wide */
    assert_true(bdy_principal_has_verb(mm, BDY_VERB_ALLOCATE));
    assert_false(bdy_principal_has_verb(mm, BDY_VERB_ADMIN));

    /* admin implies every verb; "*" every namespace and cluster-wide. */
    assert_true(bdy_principal_allows(ops, BDY_VERB_ALLOCATE, "anything"));
    assert_true(bdy_principal_allows(ops, BDY_VERB_RELEASE, "default"));
    assert_true(bdy_principal_allows(ops, BDY_VERB_READ, NULL));
    assert_true(bdy_principal_allows(ops, BDY_VERB_ADMIN, NULL));
    assert_true(bdy_principal_has_verb(ops, BDY_VERB_READ));

    assert_true(bdy_principal_allows(reader, BDY_VERB_READ, "default"));
    assert_false(bdy_principal_allows(reader, BDY_VERB_READ, "ranked"));
    assert_false(bdy_principal_allows(reader, BDY_VERB_ALLOCATE, "default"));
    assert_false(bdy_principal_allows(reader, BDY_VERB_RELEASE, "default"));
    assert_false(bdy_principal_has_verb(reader, BDY_VERB_ALLOCATE));

    /* No principal: nothing is allowed. */
    assert_false(bdy_principal_allows(NULL, BDY_VERB_READ, "default"));
    assert_false(bdy_principal_has_verb(NULL, BDY_VERB_READ));
    assert_string_equal(bdy_principal_name(NULL), "");

    bdy_verb v;
    assert_int_equal(bdy_verb_parse("allocate", &v), 0);
    assert_int_equal(v, BDY_VERB_ALLOCATE);
    assert_int_equal(bdy_verb_parse("release", &v), 0);
    assert_int_equal(v, BDY_VERB_RELEASE);
    assert_int_equal(bdy_verb_parse("read", &v), 0);
    assert_int_equal(v, BDY_VERB_READ);
    assert_int_equal(bdy_verb_parse("admin", &v), 0);
    assert_int_equal(v, BDY_VERB_ADMIN);
    assert_int_equal(bdy_verb_parse("Admin", &v), BDY_EINVAL);
    assert_int_equal(bdy_verb_parse("", &v), BDY_EINVAL);
    assert_int_equal(bdy_verb_parse(NULL, &v), BDY_EINVAL);
    bdy_auth_free(a);
}

static void test_rate_limit(void **state)
{
    fixture *f = *state;
    bdy_auth *a = load_good(f);
    const bdy_principal *ops = bdy_auth_authenticate(a, "Bearer ops-token");
    const bdy_principal *reader = bdy_auth_authenticate(a, "Bearer reader-token");
    const bdy_principal *slow = bdy_auth_authenticate(a, "Bearer slow-token");
    unsigned retry = 0;

    /* Unlimited. */
    for (int i = 0; i < 1000; i++)
        assert_true(bdy_principal_take(ops, &retry));
    assert_true(bdy_principal_take(NULL, &retry));

    /* 2 per second: a burst of 2, then refused for about half a second. */
    assert_true(bdy_principal_take(reader, &retry));
    assert_true(bdy_principal_take(reader, &retry));
    retry = 0;
    assert_false(bdy_principal_take(reader, &retry));
    assert_int_equal(retry, 1);
    struct timespec ts = {0, 600 * 1000 * 1000};
    nanosleep(&ts, NULL);
    assert_true(bdy_principal_take(reader, &retry));
    assert_false(bdy_principal_take(reader, &retry));

    /* 0.5 per second: burst max(1, rate) = 1, and the next token in 2 s. */
    assert_true(bdy_principal_take(slow, &retry));
    retry = 0;
    assert_false(bdy_principal_take(slow, &retry));
    assert_int_equal(retry, 2);
    bdy_auth_free(a);
}

/* A reload carries the buckets over: no one gets a fresh burst from it,
 * except a principal whose rate changed. */
static void test_reload_keeps_buckets(void **state)
{
    fixture *f = *state;
    bdy_auth *a = load_good(f);
    unsigned retry = 0;
    assert_true(bdy_principal_take(bdy_auth_authenticate(a, "Bearer slow-token"), &retry));
    assert_true(bdy_principal_take(bdy_auth_authenticate(a, "Bearer reader-token"), &retry));
    assert_true(bdy_principal_take(bdy_auth_authenticate(a, "Bearer reader-token"), &retry));

    bdy_auth *b = load_good(f);
    bdy_auth_carry_buckets(b, a);
    assert_false(bdy_principal_take(bdy_auth_authenticate(b, "Bearer slow-token"), &retry));
    assert_false(bdy_principal_take(bdy_auth_authenticate(b, "Bearer reader-token"), &retry));
    /* Unlimited stays unlimited. */
    assert_true(bdy_principal_take(bdy_auth_authenticate(b, "Bearer ops-token"), &retry));

    /* The same hash at another rate starts at its new burst. */
    char slow[65];
    char text[512];
    snprintf(text, sizeof(text),
             "tokens:\n  - name: slow\n    sha256: %s\n    namespaces: [default]\n"
             "    verbs: [read]\n    ratePerSecond: 3\n",
             hash_of("slow-token", slow));
    write_file(f, text);
    bdy_auth *c = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_auth_load(f->path, &c, &eb), 0);
    bdy_auth_carry_buckets(c, b);
    const bdy_principal *p = bdy_auth_authenticate(c, "Bearer slow-token");
    for (int i = 0; i < 3; i++)
        assert_true(bdy_principal_take(p, &retry));
    assert_false(bdy_principal_take(p, &retry));
    bdy_auth_free(c);
    bdy_auth_free(b);
    bdy_auth_free(a);
}

/* A token set loaded since: which copies of earlier grants it still
 * grants (a watch opened with them may run on). */
static void test_still_grants(void **state)
{
    fixture *f = *state;
    bdy_auth *a = load_good(f);
    bdy_principal *reader = bdy_principal_copy(bdy_auth_authenticate(a, "Bearer reader-token"));
    bdy_principal *slow = bdy_principal_copy(bdy_auth_authenticate(a, "Bearer slow-token"));
    bdy_principal *ops = bdy_principal_copy(bdy_auth_authenticate(a, "Bearer ops-token"));
    assert_non_null(reader);
    assert_non_null(ops);
    assert_string_equal(bdy_principal_name(reader), "reader");
    assert_true(bdy_auth_still_grants(a, reader)); /* the same set */
    assert_true(bdy_auth_still_grants(a, ops));
    assert_false(bdy_auth_still_grants(NULL, reader));
    /* reader keeps read in default (and gains a namespace); slow loses
     * default; ops loses admin; matchmaker's token is gone. */
    char h_reader[65];
    char h_slow[65];
    char h_ops[65];
    char text[1024];
    snprintf(text, sizeof(text),
             "tokens:\n"
             "  - name: reader\n    sha256: %s\n    namespaces: [default, extra]\n"
             "    verbs: [read, release]\n"
             "  - name: slow\n    sha256: %s\n    namespaces: [other]\n    verbs: [read]\n"
             "  - name: ops\n    sha256: %s\n    namespaces: [\"*\"]\n    verbs: [read]\n",
             hash_of("reader-token", h_reader), hash_of("slow-token", h_slow),
             hash_of("ops-token", h_ops));
    write_file(f, text);
    bdy_auth *b = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_auth_load(f->path, &b, &eb), 0);
    assert_true(bdy_auth_still_grants(b, reader));
    assert_false(bdy_auth_still_grants(b, slow));
    assert_false(bdy_auth_still_grants(b, ops));
    /* TEST_HASH is the hash of "test". */
    bdy_principal *mm = bdy_principal_copy(bdy_auth_authenticate(a, "Bearer test"));
    assert_non_null(mm);
    assert_false(bdy_auth_still_grants(b, mm));
    bdy_principal_free(mm);
    bdy_principal_free(reader);
    bdy_principal_free(slow);
    bdy_principal_free(ops);
    assert_null(bdy_principal_copy(NULL));
    bdy_auth_free(b);
    bdy_auth_free(a);
}

typedef struct bad_case {
    const char *yaml;
    int rc;
    const char *where;  /* expected after "path:" in the message */
    const char *field;  /* expected cause field, NULL: no cause */
    const char *detail; /* expected somewhere in the message */
} bad_case;

#define ENTRY_HEAD "tokens:\n  - name: a\n    sha256: " TEST_HASH "\n"

static void test_bad_files(void **state)
{
    fixture *f = *state;
    static const bad_case cases[] = {
        {"", BDY_EINVAL, "1: tokens: ", "tokens", "is required"},
        {"- a\n", BDY_EINVAL, "1: tokens: ", "tokens", "must be a map"},
        {"token:\n  - name: a\n", BDY_EINVAL, "1: token: ", "token", "unknown key"},
        {"# c\ntokens: 5\n", BDY_EINVAL, "2: tokens: ", "tokens", "must be a list"},
        {"tokens:\n  - foo\n", BDY_EINVAL, "2: tokens[0]: ", "tokens[0]", "must be a map"},
        {"tokens:\n  - name: a\n    sha256: abc\n    namespaces: [x]\n    verbs: [read]\n",
         BDY_EINVAL, "3: tokens[0].sha256: ", "tokens[0].sha256", "64 hex digits"},
        {"tokens:\n  - name: a\n    sha256: " TEST_HASH "0\n    namespaces: [x]\n"
         "    verbs: [read]\n",
         BDY_EINVAL, "3: tokens[0].sha256: ", "tokens[0].sha256", "64 hex digits"},
        {"tokens:\n  - name: a\n    sha256: "
         "zf86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
         "    namespaces: [x]\n    verbs: [read]\n",
         BDY_EINVAL, "3: tokens[0].sha256: ", "tokens[0].sha256", "64 hex digits"},
        {ENTRY_HEAD "    namespaces: [x]\n    verbs: [allocate, destroy]\n", BDY_EINVAL,
         "5: tokens[0].verbs[1]: ", "tokens[0].verbs[1]", "unknown verb \"destroy\""},
        {ENTRY_HEAD "    namespaces: [x]\n    verbs: []\n", BDY_EINVAL,
         "5: tokens[0].verbs: ", "tokens[0].verbs", "non-empty list"},
        {ENTRY_HEAD "    namespaces: [x]\n", BDY_EINVAL, "2: tokens[0].verbs: ", "tokens[0].verbs",
         "is required"},
        {"tokens:\n  - sha256: " TEST_HASH "\n    namespaces: [x]\n    verbs: [read]\n", BDY_EINVAL,
         "2: tokens[0].name: ", "tokens[0].name", "is required"},
        {"tokens:\n  - name: \"\"\n    sha256: " TEST_HASH "\n    namespaces: [x]\n"
         "    verbs: [read]\n",
         BDY_EINVAL, "2: tokens[0].name: ", "tokens[0].name", "must not be empty"},
        {"tokens:\n  - name: ~\n    sha256: " TEST_HASH "\n    namespaces: [x]\n"
         "    verbs: [read]\n",
         BDY_EINVAL, "2: tokens[0].name: ", "tokens[0].name", "must not be empty"},
        {"tokens:\n  - name: a b\n    sha256: " TEST_HASH "\n    namespaces: [x]\n"
         "    verbs: [read]\n",
         BDY_EINVAL, "2: tokens[0].name: ", "tokens[0].name", "printable"},
        {ENTRY_HEAD "    namespaces: [x]\n    verbs: [read]\n    rate: 5\n", BDY_EINVAL,
         "6: tokens[0].rate: ", "tokens[0].rate", "unknown key"},
        {ENTRY_HEAD "    namespaces: [x]\n    verbs: [read]\n    ratePerSecond: -1\n", BDY_EINVAL,
         "6: tokens[0].ratePerSecond: ", "tokens[0].ratePerSecond", "a number"},
        {ENTRY_HEAD "    namespaces: [x]\n    verbs: [read]\n    ratePerSecond: \"5\"\n",
         BDY_EINVAL, "6: tokens[0].ratePerSecond: ", "tokens[0].ratePerSecond", "a number"},
        {ENTRY_HEAD "    namespaces: [x]\n    verbs: [read]\n    ratePerSecond: fast\n", BDY_EINVAL,
         "6: tokens[0].ratePerSecond: ", "tokens[0].ratePerSecond", "a number"},
        {ENTRY_HEAD "    namespaces: [x]\n    verbs: [read]\n    ratePerSecond: 1e7\n", BDY_EINVAL,
         "6: tokens[0].ratePerSecond: ", "tokens[0].ratePerSecond", "a number"},
        {ENTRY_HEAD "    namespaces: [x]\n    verbs: [read]\n    ratePerSecond: .nan\n", BDY_EINVAL,
         "6: tokens[0].ratePerSecond: ", "tokens[0].ratePerSecond", "a number"},
        /* Slower than one request in ~17 minutes made Retry-After overflow. */
        {ENTRY_HEAD "    namespaces: [x]\n    verbs: [read]\n    ratePerSecond: 1e-10\n",
         BDY_EINVAL, "6: tokens[0].ratePerSecond: ", "tokens[0].ratePerSecond", "0.001"},
        {ENTRY_HEAD "    namespaces: [default, Ranked]\n    verbs: [read]\n", BDY_EINVAL,
         "4: tokens[0].namespaces[1]: ", "tokens[0].namespaces[1]", "\"Ranked\""},
        {ENTRY_HEAD "    namespaces: []\n    verbs: [read]\n", BDY_EINVAL,
         "4: tokens[0].namespaces: ", "tokens[0].namespaces", "non-empty list"},
        {ENTRY_HEAD "    namespaces: default\n    verbs: [read]\n", BDY_EINVAL,
         "4: tokens[0].namespaces: ", "tokens[0].namespaces", "non-empty list"},
        {ENTRY_HEAD "    namespaces: [[a]]\n    verbs: [read]\n", BDY_EINVAL,
         "4: tokens[0].namespaces[0]: ", "tokens[0].namespaces[0]", "single value"},
        {ENTRY_HEAD "    namespaces: [x]\n    verbs: [read]\n"
                    "  - name: a\n    sha256: "
                    "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08\n"
                    "    namespaces: [x]\n    verbs: [read]\n",
         BDY_EINVAL, "6: tokens[1].name: ", "tokens[1].name", "also tokens[0]"},
        {ENTRY_HEAD "    namespaces: [x]\n    verbs: [read]\n"
                    "  - name: b\n    sha256: "
                    "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08\n"
                    "    namespaces: [x]\n    verbs: [read]\n",
         BDY_EINVAL, "6: tokens[1].sha256: ", "tokens[1].sha256", "same hash as tokens[0]"},
        {"tokens:\n  - name: a\n    namespaces: [x]\n    verbs: [read]\n", BDY_EINVAL,
         "2: tokens[0]: ", "tokens[0]", "needs sha256 (a token's hash) or commonName"},
        {ENTRY_HEAD "    commonName: lobby\n    namespaces: [x]\n    verbs: [read]\n", BDY_EINVAL,
         "2: tokens[0]: ", "tokens[0]", "has both sha256 and commonName"},
        {"tokens:\n  - name: a\n    commonName: \"\"\n    namespaces: [x]\n    verbs: [read]\n",
         BDY_EINVAL, "3: tokens[0].commonName: ", "tokens[0].commonName", "must not be empty"},
        {"tokens:\n  - name: a\n    commonName: "
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
         "    namespaces: [x]\n    verbs: [read]\n",
         BDY_EINVAL, "3: tokens[0].commonName: ", "tokens[0].commonName", "1 to 64 characters"},
        {"tokens:\n  - name: a\n    commonName: \"lob\\tby\"\n    namespaces: [x]\n"
         "    verbs: [read]\n",
         BDY_EINVAL, "3: tokens[0].commonName: ", "tokens[0].commonName", "control characters"},
        {"tokens:\n  - name: a\n    commonName: [lobby]\n    namespaces: [x]\n    verbs: [read]\n",
         BDY_EINVAL, "3: tokens[0].commonName: ", "tokens[0].commonName", "single value"},
        {"tokens:\n  - name: a\n    commonName: lobby\n    namespaces: [x]\n    verbs: [read]\n"
         "  - name: b\n    commonName: lobby\n    namespaces: [x]\n    verbs: [read]\n",
         BDY_EINVAL, "6: tokens[1].commonName: ", "tokens[1].commonName",
         "same common name as tokens[0]"},
        /* YAML syntax errors come from the YAML module, prefixed with the path. */
        {"tokens: [\n", BDY_EPARSE, "2: ", NULL, ""},
        {"tokens:\n  - name: a\n    name: b\n", BDY_EPARSE, "3: ", NULL, "duplicate key"},
        {"tokens: &x [a]\nmore: *x\n", BDY_EPARSE, "1: ", NULL, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const bad_case *c = &cases[i];
        write_file(f, c->yaml);
        bdy_auth *a = NULL;
        bdy_errbuf eb;
        bdy_errbuf_clear(&eb);
        int rc = bdy_auth_load(f->path, &a, &eb);
        if (rc != c->rc)
            fail_msg("case %zu: rc %d, want %d (%s)", i, rc, c->rc, eb.message);
        assert_null(a);
        char want[512];
        snprintf(want, sizeof(want), "%s:%s", f->path, c->where);
        if (strncmp(eb.message, want, strlen(want)) != 0)
            fail_msg("case %zu: message \"%s\" does not start with \"%s\"", i, eb.message, want);
        if (strstr(eb.message, c->detail) == NULL)
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, eb.message, c->detail);
        if (c->field != NULL) {
            assert_int_equal(eb.ncauses, 1);
            assert_string_equal(eb.causes[0].field, c->field);
        }
    }
}

static void test_file_limits(void **state)
{
    fixture *f = *state;
    bdy_auth *a = NULL;
    bdy_errbuf eb;
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/none.yaml", f->dir);
    assert_int_equal(bdy_auth_load(missing, &a, &eb), BDY_ENOTFOUND);
    assert_non_null(strstr(eb.message, missing));
    assert_null(a);
    assert_int_equal(bdy_auth_load(f->dir, &a, &eb), BDY_EINVAL); /* a directory */
    assert_int_equal(bdy_auth_load(NULL, &a, &eb), BDY_EINVAL);

    /* Over the size cap. */
    size_t big = 1024 * 1024 + 1;
    char *text = malloc(big + 1);
    assert_non_null(text);
    memset(text, '#', big);
    text[big] = '\0';
    write_file(f, text);
    free(text);
    assert_int_equal(bdy_auth_load(f->path, &a, &eb), BDY_ETOOBIG);
    assert_non_null(strstr(eb.message, f->path));

    /* More entries than BDY_AUTH_MAX_TOKENS. */
    bdy_buf b;
    bdy_buf_init(&b, 1024 * 1024);
    assert_int_equal(bdy_buf_appends(&b, "tokens:\n"), 0);
    for (int i = 0; i <= BDY_AUTH_MAX_TOKENS; i++)
        assert_int_equal(bdy_buf_printf(&b,
                                        "  - {name: t%d, sha256: %064x, namespaces: [x], "
                                        "verbs: [read]}\n",
                                        i, i),
                         0);
    write_file(f, b.data);
    bdy_buf_free(&b);
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_auth_load(f->path, &a, &eb), BDY_EINVAL);
    assert_non_null(strstr(eb.message, ":2: tokens: more than 1024"));

    /* An empty list loads (and authenticates nobody). */
    write_file(f, "tokens: []\n");
    assert_int_equal(bdy_auth_load(f->path, &a, &eb), 0);
    assert_int_equal(bdy_auth_count(a), 0);
    assert_null(bdy_auth_authenticate(a, "Bearer test"));
    bdy_auth_free(a);
}

/* An entry with commonName is a client certificate's: found by that name
 * alone, never by a bearer token, and told apart from a token with the
 * same name's hash across reloads. */
static void test_certificate_entries(void **state)
{
    fixture *f = *state;
    char lobby_hash[65];
    char text[1024];
    snprintf(text, sizeof(text),
             "tokens:\n"
             "  - name: lobby\n"
             "    commonName: lobby.games.example\n"
             "    namespaces: [default]\n"
             "    verbs: [allocate]\n"
             "    ratePerSecond: 1\n"
             "  - name: tool\n"
             "    sha256: %s\n"
             "    namespaces: [\"*\"]\n"
             "    verbs: [read]\n",
             hash_of("lobby.games.example", lobby_hash));
    write_file(f, text);
    bdy_auth *a = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_auth_load(f->path, &a, &eb), 0);
    const bdy_principal *p = bdy_auth_authenticate_certificate(a, "lobby.games.example");
    assert_non_null(p);
    assert_string_equal(bdy_principal_name(p), "lobby");
    assert_true(bdy_principal_allows(p, BDY_VERB_ALLOCATE, "default"));
    assert_false(bdy_principal_allows(p, BDY_VERB_READ, "default"));
    assert_null(bdy_auth_authenticate_certificate(a, "lobby.games"));
    assert_null(bdy_auth_authenticate_certificate(a, "tool"));
    assert_null(bdy_auth_authenticate_certificate(a, NULL));
    /* The common name as a bearer token is the other entry's token, and
     * the certificate's entry answers no token at all. */
    const bdy_principal *t = bdy_auth_authenticate(a, "Bearer lobby.games.example");
    assert_non_null(t);
    assert_string_equal(bdy_principal_name(t), "tool");
    /* Its grants survive a reload that keeps it, and go with one that
     * drops its verb; its bucket is carried over. */
    bdy_principal *copy = bdy_principal_copy(p);
    assert_non_null(copy);
    assert_true(bdy_principal_take(p, NULL));
    bdy_auth *again = NULL;
    assert_int_equal(bdy_auth_load(f->path, &again, &eb), 0);
    bdy_auth_carry_buckets(again, a);
    assert_true(bdy_auth_still_grants(again, copy));
    unsigned retry = 0;
    assert_false(bdy_principal_take(bdy_auth_authenticate_certificate(again, "lobby.games.example"),
                                    &retry));
    char *verbs = strstr(text, "verbs: [allocate]");
    assert_non_null(verbs);
    memcpy(verbs, "verbs: [read]    ", strlen("verbs: [read]    "));
    write_file(f, text);
    bdy_auth *fewer = NULL;
    assert_int_equal(bdy_auth_load(f->path, &fewer, &eb), 0);
    assert_false(bdy_auth_still_grants(fewer, copy));
    bdy_principal_free(copy);
    bdy_auth_free(fewer);
    bdy_auth_free(again);
    bdy_auth_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_load_and_authenticate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verbs_and_namespaces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_keeps_buckets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_still_grants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_certificate_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_limits, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
