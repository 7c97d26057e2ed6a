/* Test certificates made at run time, for the test suite only: never link
 * this into bindery itself. Each call writes PEM files into a folder the
 * test owns (usually a mkdtemp() folder): certificates as NAME.crt, private
 * keys as NAME.key (unencrypted PKCS#8, mode 0600). Keys are EC P-256 and
 * signatures SHA-256, so making a whole PKI takes milliseconds and tests
 * need no certificate files checked into the repository, which would
 * expire. Uses OpenSSL 3 (link with -lcrypto); the functions keep no state
 * and may be called from any thread. */
#ifndef BINDERY_TESTS_TESTCERTS_H
#define BINDERY_TESTS_TESTCERTS_H

#include <stdbool.h>

/* Kinds of leaf certificate. */
typedef enum testcert_kind {
    TESTCERT_SERVER,
    TESTCERT_CLIENT,
    TESTCERT_CLIENT_NO_EKU, /* a client's, without the extendedKeyUsage extension */
} testcert_kind;

/* Writes a self-signed CA (basicConstraints CA:TRUE critical, keyUsage keyCertSign+cRLSign)
 * with subject CN=cn as DIR/NAME.crt and its key as DIR/NAME.key. Valid from 1 hour ago for 10
 * years. Returns 0, or -1 after printing why to stderr. */
int testcert_make_ca(const char *dir, const char *name, const char *cn);

/* Writes a leaf certificate DIR/NAME.crt and key DIR/NAME.key signed by the CA DIR/CA_NAME.crt/.key
 * (made by testcert_make_ca in the same dir). Subject CN=cn (and, when org is not NULL, O=org);
 * a cn with newlines ("a\nb") gives one CN attribute per line.
 * SERVER: extendedKeyUsage serverAuth, subjectAltName IP:127.0.0.1, IP:::1, DNS:localhost.
 * CLIENT: extendedKeyUsage clientAuth, no SAN.
 * Both: basicConstraints CA:FALSE, keyUsage digitalSignature (+keyEncipherment is fine), a random
 * 64-bit positive serial, subjectKeyIdentifier and authorityKeyIdentifier.
 * Validity: notBefore = now + not_before_s, notAfter = now + not_after_s (seconds, may be negative,
 * so an expired certificate is not_before_s=-7200, not_after_s=-3600).
 * Returns 0 or -1 (printing why). */
int testcert_make_leaf(const char *dir, const char *name, const char *cn, const char *org,
                       const char *ca_name, testcert_kind kind, long not_before_s,
                       long not_after_s);

/* Writes DIR/NAME.crl, a PEM certificate revocation list signed by the CA
 * DIR/CA_NAME (made by testcert_make_ca), revoking the certificates
 * DIR/<revoked[i]>.crt (a NULL-terminated list, may be empty). Issued two
 * hours ago; its next update is next_update_s from now (negative: a list
 * already past it). 0 or -1 (printing why). */
int testcert_make_crl(const char *dir, const char *name, const char *ca_name,
                      const char *const *revoked, long next_update_s);

/* Appends file DIR/SRC to DIR/DST (creating DST), e.g. to build a chain or a CA bundle. 0 or -1. */
int testcert_append(const char *dir, const char *dst, const char *src);

#endif
