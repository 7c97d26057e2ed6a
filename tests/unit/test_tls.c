/* The TLS credential sets (tls.h): what a load refuses, and what a client
 * certificate proves, over real GnuTLS handshakes on a socket pair with
 * certificates made for the test (testcerts.h). */
#include "bindery/error.h"
#include "bindery/tls.h"
#include "testcerts.h"

#include <gnutls/gnutls.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

typedef struct fixture {
    char dir[64];
} fixture;

static char *at(const fixture *f, const char *name)
{
    static char path[4][192];
    static unsigned next;
    char *p = path[next++ % 4];
    snprintf(p, sizeof(path[0]), "%s/%s", f->dir, name);
    return p;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/bdy-tls-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    /* One PKI for every test: two CAs, a server, clients good and bad. */
    if (testcert_make_ca(f->dir, "ca", "Test CA") != 0 ||
        testcert_make_ca(f->dir, "other", "Other CA") != 0 ||
        testcert_make_leaf(f->dir, "server", "localhost", NULL, "ca", TESTCERT_SERVER, -60,
                           86400) != 0 ||
        testcert_make_leaf(f->dir, "lobby", "lobby", "games", "ca", TESTCERT_CLIENT, -60, 86400) !=
            0 ||
        testcert_make_leaf(f->dir, "expired", "lobby", NULL, "ca", TESTCERT_CLIENT, -7200, -3600) !=
            0 ||
        testcert_make_leaf(f->dir, "future", "localhost", NULL, "ca", TESTCERT_SERVER, 3600,
                           86400) != 0 ||
        testcert_make_leaf(f->dir, "rogue", "lobby", NULL, "other", TESTCERT_CLIENT, -60, 86400) !=
            0 ||
        testcert_make_leaf(f->dir, "old-server", "localhost", NULL, "ca", TESTCERT_SERVER, -7200,
                           -3600) != 0 ||
        testcert_make_leaf(f->dir, "no-eku", "lobby", NULL, "ca", TESTCERT_CLIENT_NO_EKU, -60,
                           86400) != 0 ||
        testcert_make_leaf(f->dir, "two-cn", "lobby\nadmin", NULL, "ca", TESTCERT_CLIENT, -60,
                           86400) != 0 ||
        testcert_make_leaf(f->dir, "comma", "Lobby, Inc", NULL, "ca", TESTCERT_CLIENT, -60,
                           86400) != 0 ||
        testcert_make_leaf(f->dir, "lobby2", "lobby", NULL, "ca", TESTCERT_CLIENT, -60, 86400) !=
            0 ||
        testcert_make_crl(f->dir, "revokes-lobby", "ca", (const char *const[]){"lobby", NULL},
                          86400) != 0 ||
        testcert_make_crl(f->dir, "other-revokes", "other", (const char *const[]){"rogue", NULL},
                          86400) != 0 ||
        testcert_make_crl(f->dir, "stale", "ca", (const char *const[]){"lobby", NULL}, -3600) !=
            0 ||
        testcert_append(f->dir, "cas.crt", "other.crt") != 0 ||
        testcert_append(f->dir, "cas.crt", "ca.crt") != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

/* bdy_tls_load of these files of the fixture (cas NULL: none). */
static int try_load(const fixture *f, const char *cert, const char *key, const char *cas,
                    bdy_tls_set **set, bdy_errbuf *eb)
{
    bdy_tls_files files = {.cert_file = at(f, cert),
                           .key_file = at(f, key),
                           .client_ca_file = cas != NULL ? at(f, cas) : NULL};
    *set = NULL;
    bdy_errbuf_clear(eb);
    return bdy_tls_load(&files, set, eb);
}

static bdy_tls_set *load(const fixture *f, const char *cert, const char *key, const char *cas)
{
    bdy_tls_set *set = NULL;
    bdy_errbuf eb;
    if (try_load(f, cert, key, cas, &set, &eb) != 0)
        fail_msg("load failed: %s", eb.message);
    return set;
}

/* What a load of these files refuses, and the message's words. */
static void expect_refused(const fixture *f, const char *cert, const char *key, const char *cas,
                           int want_rc, const char *words)
{
    bdy_tls_set *set = NULL;
    bdy_errbuf eb;
    int rc = try_load(f, cert, key, cas, &set, &eb);
    if (rc != want_rc || strstr(eb.message, words) == NULL)
        fail_msg("%s/%s/%s: got %d \"%s\", want %d with \"%s\"", cert, key, cas ? cas : "-", rc,
                 eb.message, want_rc, words);
    assert_null(set);
}

static void write_text(const fixture *f, const char *name, const char *text)
{
    FILE *fp = fopen(at(f, name), "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

static void test_load(void **state)
{
    fixture *f = *state;
    bdy_tls_set *set = load(f, "server.crt", "server.key", NULL);
    assert_false(bdy_tls_wants_client_certs(set));
    assert_non_null(strstr(bdy_tls_cert_pem(set), "BEGIN CERTIFICATE"));
    assert_non_null(strstr(bdy_tls_key_pem(set), "PRIVATE KEY"));
    char what[512];
    bdy_tls_describe(set, what, sizeof(what));
    assert_non_null(strstr(what, "CN=localhost"));
    assert_non_null(strstr(what, "SHA-256 "));
    assert_null(strstr(what, "client certificates"));
    bdy_tls_unref(set);

    set = load(f, "server.crt", "server.key", "cas.crt");
    assert_true(bdy_tls_wants_client_certs(set));
    bdy_tls_describe(set, what, sizeof(what));
    assert_non_null(strstr(what, "client certificates of 2 CAs"));
    /* References: the last one frees (ASan and valgrind see a leak or a
     * use after free otherwise). */
    assert_ptr_equal(bdy_tls_ref(set), set);
    bdy_tls_unref(set);
    bdy_tls_unref(set);
    bdy_tls_unref(NULL);
}

static void test_load_refusals(void **state)
{
    fixture *f = *state;
    expect_refused(f, "missing.crt", "server.key", NULL, BDY_ENOTFOUND, "no such file");
    expect_refused(f, "server.crt", "missing.key", NULL, BDY_ENOTFOUND, "tls.keyFile");
    expect_refused(f, "server.crt", "lobby.key", NULL, BDY_EINVAL, "with keyFile");
    expect_refused(f, "old-server.crt", "old-server.key", NULL, BDY_EINVAL, "expired at");
    expect_refused(f, "future.crt", "future.key", NULL, BDY_EINVAL, "not valid before");
    expect_refused(f, "server.crt", "server.key", "missing.crt", BDY_ENOTFOUND, "tls.clientCAFile");
    write_text(f, "empty.crt", "no certificate here\n");
    expect_refused(f, "server.crt", "server.key", "empty.crt", BDY_EINVAL, "no PEM certificate");
    expect_refused(f, "empty.crt", "server.key", NULL, BDY_EINVAL, "certFile");
    bdy_tls_set *set = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    bdy_tls_files half = {.cert_file = at(f, "server.crt")};
    assert_int_equal(bdy_tls_load(&half, &set, &eb), BDY_EINVAL);
    assert_null(set);
}

/* One handshake: the server side with set, the client presenting
 * cert/key (NULL: none). Returns what the server makes of the client. */
typedef struct client_side {
    int fd;
    const char *cert;
    const char *key;
    int rc;
} client_side;

static void *client_main(void *arg)
{
    client_side *c = arg;
    gnutls_certificate_credentials_t cred = NULL;
    gnutls_session_t s = NULL;
    c->rc = gnutls_certificate_allocate_credentials(&cred);
    if (c->rc == 0 && c->cert != NULL)
        c->rc = gnutls_certificate_set_x509_key_file(cred, c->cert, c->key, GNUTLS_X509_FMT_PEM);
    if (c->rc >= 0)
        c->rc = gnutls_init(&s, GNUTLS_CLIENT);
    if (c->rc >= 0)
        c->rc = gnutls_set_default_priority(s);
    if (c->rc >= 0)
        c->rc = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
    if (c->rc >= 0) {
        gnutls_transport_set_int(s, c->fd);
        gnutls_handshake_set_timeout(s, 10000);
        do {
            c->rc = gnutls_handshake(s);
        } while (c->rc < 0 && !gnutls_error_is_fatal(c->rc));
    }
    if (s != NULL) {
        gnutls_bye(s, GNUTLS_SHUT_WR);
        gnutls_deinit(s);
    }
    if (cred != NULL)
        gnutls_certificate_free_credentials(cred);
    return NULL;
}

static bdy_tls_peer handshake(const fixture *f, const bdy_tls_set *set, const char *client,
                              char cn[BDY_TLS_MAX_COMMON_NAME], char why[256])
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    char cert[192];
    char key[192];
    snprintf(cert, sizeof(cert), "%s/%s.crt", f->dir, client != NULL ? client : "");
    snprintf(key, sizeof(key), "%s/%s.key", f->dir, client != NULL ? client : "");
    client_side c = {.fd = sv[1], .cert = client != NULL ? cert : NULL, .key = key};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, client_main, &c), 0);
    gnutls_session_t s = NULL;
    assert_int_equal(gnutls_init(&s, GNUTLS_SERVER), 0);
    assert_int_equal(gnutls_set_default_priority(s), 0);
    assert_int_equal(bdy_tls_attach(set, s), 0);
    gnutls_transport_set_int(s, sv[0]);
    gnutls_handshake_set_timeout(s, 10000);
    int rc;
    do {
        rc = gnutls_handshake(s);
    } while (rc < 0 && !gnutls_error_is_fatal(rc));
    if (rc < 0)
        fail_msg("server handshake: %s", gnutls_strerror(rc));
    bdy_tls_peer peer = bdy_tls_verify_peer(set, s, cn, BDY_TLS_MAX_COMMON_NAME, why, 256);
    gnutls_bye(s, GNUTLS_SHUT_WR);
    pthread_join(t, NULL);
    gnutls_deinit(s);
    close(sv[0]);
    close(sv[1]);
    if (c.rc < 0)
        fail_msg("client handshake: %s", gnutls_strerror(c.rc));
    return peer;
}

static void test_client_certificates(void **state)
{
    fixture *f = *state;
    bdy_tls_set *set = load(f, "server.crt", "server.key", "cas.crt");
    char cn[BDY_TLS_MAX_COMMON_NAME];
    char why[256];
    assert_int_equal(handshake(f, set, "lobby", cn, why), BDY_TLS_PEER_TRUSTED);
    assert_string_equal(cn, "lobby");
    assert_int_equal(handshake(f, set, NULL, cn, why), BDY_TLS_PEER_NONE);
    assert_string_equal(cn, "");
    assert_int_equal(handshake(f, set, "expired", cn, why), BDY_TLS_PEER_REFUSED);
    assert_non_null(strstr(why, "expired"));
    assert_string_equal(cn, "");
    /* A server certificate is not a client's (extended key usage), and
     * neither is one that names no purpose at all; nor a CA's. */
    assert_int_equal(handshake(f, set, "server", cn, why), BDY_TLS_PEER_REFUSED);
    assert_true(why[0] != '\0');
    assert_int_equal(handshake(f, set, "no-eku", cn, why), BDY_TLS_PEER_REFUSED);
    assert_non_null(strstr(why, "extended key usage"));
    /* Two common names: which one counts differs between verifiers. */
    assert_int_equal(handshake(f, set, "two-cn", cn, why), BDY_TLS_PEER_REFUSED);
    assert_non_null(strstr(why, "more than one common name"));
    /* A common name is taken as it is, not escaped as RFC 4514 text. */
    assert_int_equal(handshake(f, set, "comma", cn, why), BDY_TLS_PEER_TRUSTED);
    assert_string_equal(cn, "Lobby, Inc");
    bdy_tls_unref(set);

    /* Only the test CA: the other's certificate is refused. */
    set = load(f, "server.crt", "server.key", "ca.crt");
    assert_int_equal(handshake(f, set, "rogue", cn, why), BDY_TLS_PEER_REFUSED);
    if (strstr(why, "issuer is unknown") == NULL)
        fail_msg("why: %s", why);
    assert_int_equal(handshake(f, set, "lobby", cn, why), BDY_TLS_PEER_TRUSTED);
    bdy_tls_unref(set);

    /* A set without client CAs asks for none, so a client sends none. */
    set = load(f, "server.crt", "server.key", NULL);
    assert_int_equal(handshake(f, set, "lobby", cn, why), BDY_TLS_PEER_NONE);
    bdy_tls_unref(set);
}

/* Revocation lists: a revoked certificate is refused, another of the same
 * name is not; a list no client CA signed is refused at load. */
static void test_revocation_lists(void **state)
{
    fixture *f = *state;
    /* Paths of their own: at() reuses four buffers. */
    char cert[192], key[192], cas[192], crl[192], other_crl[192], not_crl[192];
    snprintf(cert, sizeof(cert), "%s", at(f, "server.crt"));
    snprintf(key, sizeof(key), "%s", at(f, "server.key"));
    snprintf(cas, sizeof(cas), "%s", at(f, "ca.crt"));
    snprintf(crl, sizeof(crl), "%s", at(f, "revokes-lobby.crl"));
    snprintf(other_crl, sizeof(other_crl), "%s", at(f, "other-revokes.crl"));
    snprintf(not_crl, sizeof(not_crl), "%s", at(f, "ca.crt"));
    bdy_tls_files files = {
        .cert_file = cert, .key_file = key, .client_ca_file = cas, .client_crl_file = crl};
    bdy_tls_set *set = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    if (bdy_tls_load(&files, &set, &eb) != 0)
        fail_msg("load: %s", eb.message);
    char what[512];
    bdy_tls_describe(set, what, sizeof(what));
    assert_non_null(strstr(what, "(1 revocation list)"));
    char cn[BDY_TLS_MAX_COMMON_NAME];
    char why[256];
    assert_int_equal(handshake(f, set, "lobby", cn, why), BDY_TLS_PEER_REFUSED);
    if (strstr(why, "revoked") == NULL)
        fail_msg("why: %s", why);
    assert_int_equal(handshake(f, set, "lobby2", cn, why), BDY_TLS_PEER_TRUSTED);
    assert_string_equal(cn, "lobby");
    bdy_tls_unref(set);
    set = NULL;

    /* A list past its next update still revokes what it names (GnuTLS
     * applies one that goes stale in force the same way). */
    char stale[192];
    snprintf(stale, sizeof(stale), "%s", at(f, "stale.crl"));
    files.client_crl_file = stale;
    if (bdy_tls_load(&files, &set, &eb) != 0)
        fail_msg("load: %s", eb.message);
    assert_int_equal(handshake(f, set, "lobby", cn, why), BDY_TLS_PEER_REFUSED);
    assert_non_null(strstr(why, "revoked"));
    assert_int_equal(handshake(f, set, "lobby2", cn, why), BDY_TLS_PEER_TRUSTED);
    bdy_tls_unref(set);
    set = NULL;
    files.client_crl_file = crl;

    /* The other CA's list, beside only the test CA: nothing verifies it. */
    files.client_crl_file = other_crl;
    assert_int_equal(bdy_tls_load(&files, &set, &eb), BDY_EINVAL);
    if (strstr(eb.message, "not signed by a CA of tls.clientCAFile") == NULL)
        fail_msg("message: %s", eb.message);
    assert_null(set);
    files.client_crl_file = not_crl; /* a certificate, not a list */
    assert_int_equal(bdy_tls_load(&files, &set, &eb), BDY_EINVAL);
    assert_non_null(strstr(eb.message, "no PEM revocation list"));
    files.client_ca_file = NULL;
    files.client_crl_file = crl;
    assert_int_equal(bdy_tls_load(&files, &set, &eb), BDY_EINVAL);
    assert_non_null(strstr(eb.message, "needs clientCAFile"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_load_refusals),
        cmocka_unit_test(test_client_certificates),
        cmocka_unit_test(test_revocation_lists),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
