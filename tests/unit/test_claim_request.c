/* The claim request parser (POST /v1/allocations bodies): what it accepts,
 * and that every refusal names its reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bindery/claims.h"
#include "bindery/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse(const char *body, size_t len, char *why, size_t cap)
{
    bdy_claim_request r;
    memset(&r, 0, sizeof(r));
    why[0] = '\0';
    int rc = bdy_claim_request_parse(body, len, &r, why, cap);
    if (rc == 0)
        bdy_claim_request_free(&r);
    return rc;
}

static void refused(const char *body, size_t len, const char *reason)
{
    char why[256];
    if (parse(body, len, why, sizeof(why)) != BDY_EINVAL || strstr(why, reason) == NULL)
        fail_msg("body %.80s: expected a refusal naming \"%s\", got \"%s\"", body, reason, why);
}

static void accepted(const char *body)
{
    char why[256];
    if (parse(body, strlen(body), why, sizeof(why)) != 0)
        fail_msg("body %.80s refused: %s", body, why);
}

static void test_reserved_keys(void **state)
{
    (void)state;
    const char *reserved[] = {
        "{\"pool\":\"a\",\"metadata\":{\"labels\":{\"bindery.dev/pool\":\"b\"}}}",
        "{\"pool\":\"a\",\"metadata\":{\"labels\":{\"x.bindery.dev/k\":\"v\"}}}",
        "{\"pool\":\"a\",\"metadata\":{\"annotations\":{\"bindery.dev/cold-claim\":\"alc-1\"}}}",
    };
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        refused(reserved[i], strlen(reserved[i]), "reserved for bindery");
    /* Other domains, and names that only end alike, are the claim's. */
    accepted("{\"pool\":\"a\",\"metadata\":{\"labels\":{\"notbindery.dev/k\":\"v\"}}}");
    accepted("{\"pool\":\"a\",\"metadata\":{\"labels\":{\"bindery.dev.example/k\":\"v\"}}}");
    accepted("{\"pool\":\"a\",\"metadata\":{\"annotations\":{\"bindery.dev\":\"v\"}}}");
    accepted("{\"pool\":\"a\",\"metadata\":{\"labels\":{\"match-id\":\"m-1\"}}}");
}

/* Keys and label values the API server would refuse on the world are
 * refused with the claim (400), not answered 201 and never written: a
 * value a selector parser reads as two terms, blanks around it, "=", a
 * key with a control character, a value over 63 characters. */
static void test_metadata_names_as_kubernetes_checks_them(void **state)
{
    (void)state;
    const char *bad[] = {
        "{\"pool\":\"a\",\"metadata\":{\"labels\":{\"match-id\":\"m-1,m-2\"}}}",
        "{\"pool\":\"a\",\"metadata\":{\"labels\":{\"match-id\":\" m-1\"}}}",
        "{\"pool\":\"a\",\"metadata\":{\"labels\":{\"match-id\":\"m-1 \"}}}",
        "{\"pool\":\"a\",\"metadata\":{\"labels\":{\"match-id\":\"=\"}}}",
        "{\"pool\":\"a\",\"metadata\":{\"annotations\":{\"note\\n\":\"x\"}}}",
        "{\"pool\":\"a\",\"metadata\":{\"labels\":{\"note\\t\":\"x\"}}}",
        "{\"pool\":\"a\",\"metadata\":{\"labels\":{\"k\":"
        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}}}",
        "{\"pool\":\"a\",\"metadata\":{\"labels\":{\"a/b/c\":\"x\"}}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        refused(bad[i], strlen(bad[i]), "invalid");
    /* Annotation values are free text; an empty label value is valid. */
    accepted("{\"pool\":\"a\",\"metadata\":{\"annotations\":{\"note\":\" a, b = c \"}}}");
    accepted("{\"pool\":\"a\",\"metadata\":{\"labels\":{\"example.com/tier\":\"\"}}}");
}

/* A claim's annotations are written onto its world: more than
 * BDY_CLAIM_METADATA_MAX bytes of them is refused at once (400), not
 * granted and then never written. */
static void test_metadata_size_is_bounded(void **state)
{
    (void)state;
    size_t big = BDY_CLAIM_METADATA_MAX + 1;
    char *body = malloc(big + 100);
    assert_non_null(body);
    int n = snprintf(body, 100, "{\"pool\":\"a\",\"metadata\":{\"annotations\":{\"note\":\"");
    memset(body + n, 'x', big);
    strcpy(body + n + big, "\"}}}");
    refused(body, strlen(body), "labels and annotations may hold at most");
    /* Within, as JSON: accepted ({"note":"..."} adds 11 bytes). */
    strcpy(body + n + big - 20, "\"}}}");
    accepted(body);
    /* Escapes count: 150,000 '/' become 300,000 bytes of JSON. */
    n = snprintf(body, 100, "{\"pool\":\"a\",\"metadata\":{\"annotations\":{\"note\":\"");
    memset(body + n, '/', 150000);
    strcpy(body + n + 150000, "\"}}}");
    refused(body, strlen(body), "labels and annotations may hold at most");
    free(body);
}

static void test_text_must_be_whole_utf8(void **state)
{
    (void)state;
    const char bad_utf8[] = "{\"pool\":\"a\",\"claimant\":\"\xff\xfe\"}";
    refused(bad_utf8, sizeof(bad_utf8) - 1, "UTF-8");
    const char overlong[] = "{\"pool\":\"a\",\"claimant\":\"\xc0\xaf\"}";
    refused(overlong, sizeof(overlong) - 1, "UTF-8");
    const char *nul[] = {"{\"pool\":\"a\",\"claimant\":\"\\u0000x\"}",
                         "{\"pool\":\"a\",\"metadata\":{\"labels\":{\"team\\u0000x\":\"a\"}}}",
                         "{\"pool\":\"a\",\"metadata\":{\"annotations\":{\"n\":\"a\\u0000\"}}}"};
    for (size_t i = 0; i < sizeof(nul) / sizeof(nul[0]); i++)
        refused(nul[i], strlen(nul[i]), "NUL");
    refused("{\"pool\":", strlen("{\"pool\":"), "ends inside");
    /* JSON_TOKENER_STRICT still reads these. */
    const char *not_json[] = {"{\"pool\":\"a\",\"waitSeconds\":NaN}",
                              "{\"pool\":\"a\",\"waitSeconds\":Infinity}",
                              "{\"pool\":\"a\",\"waitSeconds\":1e999}"};
    for (size_t i = 0; i < sizeof(not_json) / sizeof(not_json[0]); i++)
        refused(not_json[i], strlen(not_json[i]), "finite");
    /* ...and these: a leading zero, and a field twice, of which json-c
     * kept the last (the second pool was claimed from, the empty
     * selectors dropped the first). */
    refused("{\"pool\":\"a\",\"waitSeconds\":00}", strlen("{\"pool\":\"a\",\"waitSeconds\":00}"),
            "the number 00 at offset 26 is not JSON");
    const char *twice[] = {
        "{\"pool\":\"arena\",\"pool\":\"crashy\"}",
        "{\"pool\":\"a\",\"selectors\":[{\"matchLabels\":{\"f\":\"b\"}}],\"selectors\":[]}",
        "{\"pool\":\"a\",\"metadata\":{\"labels\":{\"k\":\"1\",\"\\u006b\":\"2\"}}}"};
    for (size_t i = 0; i < sizeof(twice) / sizeof(twice[0]); i++)
        refused(twice[i], strlen(twice[i]), "duplicate field");
    /* json-c's strict mode reads a single-quoted key, which would hide the
     * second "pool" from the duplicate check. */
    const char quoted[] = "{\"pool\":\"arena\",'pool':\"crashy\"}";
    refused(quoted, strlen(quoted), "is not JSON");
    accepted("{\"pool\":\"a\",\"waitSeconds\":0}");
    accepted("{\"pool\":\"a\",\"claimant\":\"spieler-\xc3\xa9\xe2\x82\xac\"}");
    accepted("{\"pool\":\"a\",\"claimant\":\"\\u00e9\"}");
    /* An escaped backslash before "u0000" is text, not a NUL. */
    accepted("{\"pool\":\"a\",\"metadata\":{\"annotations\":{\"n\":\"\\\\u0000\"}}}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reserved_keys),
        cmocka_unit_test(test_metadata_names_as_kubernetes_checks_them),
        cmocka_unit_test(test_metadata_size_is_bounded),
        cmocka_unit_test(test_text_must_be_whole_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
