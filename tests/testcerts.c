/* Test certificates made at run time with OpenSSL 3; see testcerts.h. Only
 * non-deprecated OpenSSL 3 calls are used (the EC_KEY_* family is
 * deprecated there and the build uses -Werror). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* fdopen, fchmod, O_CLOEXEC, PATH_MAX with -std=c11 */
#endif

#include "testcerts.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* 10 years of 365 days; leap days do not matter for a test CA. */
#define CA_LIFETIME_S (10L * 365 * 24 * 3600)
/* The CA starts an hour in the past so a leaf made with not_before_s = -3600
 * (or a clock that is slightly off) still lies inside the CA's validity. */
#define CA_BACKDATE_S (-3600L)

/* One X.509v3 extension in the text form of openssl.cnf. */
typedef struct ext_spec {
    int nid;
    const char *value;
} ext_spec;

/* The subjectKeyIdentifier must come before anything that reads it; leaves
 * made later take their authorityKeyIdentifier from it. */
static const ext_spec ca_exts[] = {
    {NID_basic_constraints, "critical,CA:TRUE"},
    {NID_key_usage, "critical,keyCertSign,cRLSign"},
    {NID_subject_key_identifier, "hash"},
};

/* digitalSignature only: an EC key never enciphers a session key (the
 * handshake uses ECDHE and the certificate key only signs), and strict
 * verifiers may reject keyEncipherment on an EC certificate. */
static const ext_spec server_exts[] = {
    {NID_basic_constraints, "critical,CA:FALSE"},
    {NID_key_usage, "critical,digitalSignature"},
    {NID_ext_key_usage, "serverAuth"},
    {NID_subject_alt_name, "IP:127.0.0.1,IP:::1,DNS:localhost"},
    {NID_subject_key_identifier, "hash"},
    {NID_authority_key_identifier, "keyid:always"},
};

static const ext_spec client_exts[] = {
    {NID_basic_constraints, "critical,CA:FALSE"},
    {NID_key_usage, "critical,digitalSignature"},
    {NID_ext_key_usage, "clientAuth"},
    {NID_subject_key_identifier, "hash"},
    {NID_authority_key_identifier, "keyid:always"},
};

/* A client certificate that says nothing of its purpose: verifiers that
 * read no extension as "any purpose" would take it for a client's. */
static const ext_spec no_eku_exts[] = {
    {NID_basic_constraints, "critical,CA:FALSE"},
    {NID_key_usage, "critical,digitalSignature"},
    {NID_subject_key_identifier, "hash"},
    {NID_authority_key_identifier, "keyid:always"},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Prints what failed, then drains OpenSSL's error queue to stderr so the
 * next call starts with an empty queue. */
static void report(const char *what, const char *detail)
{
    fprintf(stderr, "testcerts: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    ERR_print_errors_fp(stderr);
}

static void report_errno(const char *what, const char *path)
{
    fprintf(stderr, "testcerts: %s %s: %s\n", what, path, strerror(errno));
}

/* Writes DIR/NAME + ext into out (PATH_MAX bytes); -1 if it does not fit. */
static int file_path(char *out, const char *dir, const char *name, const char *ext)
{
    int n = snprintf(out, PATH_MAX, "%s/%s%s", dir, name, ext);
    if (n < 0 || n >= PATH_MAX) {
        fprintf(stderr, "testcerts: path too long: %s/%s%s\n", dir, name, ext);
        return -1;
    }
    return 0;
}

/* Writes key as unencrypted PKCS#8 PEM, readable by its owner only. */
static int write_key(const char *path, EVP_PKEY *key)
{
    int rc = -1;
    FILE *fp = NULL;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        report_errno("cannot create", path);
        goto out;
    }
    /* open() keeps the mode of a file that already exists, and the umask
     * could only narrow it, so set 0600 explicitly. */
    if (fchmod(fd, 0600) != 0) {
        report_errno("cannot chmod", path);
        goto out;
    }
    fp = fdopen(fd, "w");
    if (fp == NULL) {
        report_errno("cannot open", path);
        goto out;
    }
    fd = -1; /* fp owns it now */
    if (PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL) != 1) {
        report("cannot write key", path);
        goto out;
    }
    rc = 0;
out:
    /* fclose() is where buffered write errors show up. */
    if (fp != NULL && fclose(fp) != 0 && rc == 0) {
        report_errno("cannot write", path);
        rc = -1;
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

static int write_cert(const char *path, X509 *cert)
{
    int rc = -1;
    FILE *fp = fopen(path, "w");
    if (fp == NULL) {
        report_errno("cannot create", path);
        goto out;
    }
    if (PEM_write_X509(fp, cert) != 1) {
        report("cannot write certificate", path);
        goto out;
    }
    rc = 0;
out:
    if (fp != NULL && fclose(fp) != 0 && rc == 0) {
        report_errno("cannot write", path);
        rc = -1;
    }
    return rc;
}

/* Writes DIR/NAME.key, then DIR/NAME.crt. */
static int save_pair(const char *dir, const char *name, X509 *cert, EVP_PKEY *key)
{
    char path[PATH_MAX];
    if (file_path(path, dir, name, ".key") != 0 || write_key(path, key) != 0)
        return -1;
    if (file_path(path, dir, name, ".crt") != 0 || write_cert(path, cert) != 0)
        return -1;
    return 0;
}

static X509 *read_cert(const char *path)
{
    X509 *cert = NULL;
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        report_errno("cannot open", path);
        goto out;
    }
    cert = PEM_read_X509(fp, NULL, NULL, NULL);
    if (cert == NULL)
        report("cannot read certificate", path);
out:
    if (fp != NULL)
        fclose(fp);
    return cert;
}

static EVP_PKEY *read_key(const char *path)
{
    EVP_PKEY *key = NULL;
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        report_errno("cannot open", path);
        goto out;
    }
    key = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
    if (key == NULL)
        report("cannot read key", path);
out:
    if (fp != NULL)
        fclose(fp);
    return key;
}

/* Reads the CA's certificate and key and checks that they belong together,
 * so a mixed-up CA name fails here rather than as a puzzling verify error.
 * On success the caller frees *cert and *key; on failure both are NULL. */
static int load_ca(const char *dir, const char *name, X509 **cert, EVP_PKEY **key)
{
    int rc = -1;
    char path[PATH_MAX];
    *cert = NULL;
    *key = NULL;

    if (file_path(path, dir, name, ".crt") != 0 || (*cert = read_cert(path)) == NULL)
        goto out;
    if (file_path(path, dir, name, ".key") != 0 || (*key = read_key(path)) == NULL)
        goto out;
    if (X509_check_private_key(*cert, *key) != 1) {
        report("CA key does not match its certificate", path);
        goto out;
    }
    rc = 0;
out:
    if (rc != 0) {
        X509_free(*cert);
        EVP_PKEY_free(*key);
        *cert = NULL;
        *key = NULL;
    }
    return rc;
}

/* A random serial of exactly 64 bits: the top bit is forced to one so it is
 * never zero and always positive (RFC 5280 wants a positive integer of at
 * most 20 octets, unique per CA, which randomness gives us). */
static int set_random_serial(X509 *cert)
{
    int rc = -1;
    BIGNUM *bn = BN_new();
    if (bn == NULL || BN_rand(bn, 64, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) != 1)
        goto out;
    /* Converts into the certificate's own serial in place. */
    if (BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) == NULL)
        goto out;
    rc = 0;
out:
    if (rc != 0)
        report("cannot set serial", NULL);
    BN_free(bn);
    return rc;
}

/* Subject O=org (when given), CN=cn: the most significant part first, as
 * in Kubernetes client certificates. */
static int set_subject(X509 *cert, const char *cn, const char *org)
{
    X509_NAME *subject = X509_get_subject_name(cert); /* owned by cert */
    const unsigned char *o = (const unsigned char *)org;
    if (org != NULL && X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8, o, -1, -1, 0) != 1) {
        report("cannot set subject", cn);
        return -1;
    }
    /* One CN per line of cn. */
    for (const char *line = cn; line != NULL;) {
        const char *end = strchr(line, '\n');
        int len = end != NULL ? (int)(end - line) : -1;
        if (X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, (const unsigned char *)line,
                                       len, -1, 0) != 1) {
            report("cannot set subject", cn);
            return -1;
        }
        line = end != NULL ? end + 1 : NULL;
    }
    return 0;
}

/* A new, unsigned v3 certificate for key: serial, subject and validity
 * (seconds from now) set; issuer, extensions and signature are left to the
 * caller. NULL on failure. */
static X509 *new_cert(EVP_PKEY *key, const char *cn, const char *org, long not_before_s,
                      long not_after_s)
{
    int rc = -1;
    X509 *cert = X509_new();
    if (cert == NULL || X509_set_version(cert, X509_VERSION_3) != 1 ||
        X509_set_pubkey(cert, key) != 1 ||
        X509_gmtime_adj(X509_getm_notBefore(cert), not_before_s) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(cert), not_after_s) == NULL) {
        report("cannot make certificate", cn);
        goto out;
    }
    if (set_random_serial(cert) != 0 || set_subject(cert, cn, org) != 0)
        goto out;
    rc = 0;
out:
    if (rc != 0) {
        X509_free(cert);
        cert = NULL;
    }
    return cert;
}

/* Adds extensions in order. ctx names the issuer and subject certificates:
 * subjectKeyIdentifier=hash reads the subject's public key, and
 * authorityKeyIdentifier=keyid:always copies the issuer's
 * subjectKeyIdentifier. */
static int add_exts(X509 *cert, X509V3_CTX *ctx, const ext_spec *specs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        /* No config database: values never refer to @sections. */
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, specs[i].nid, specs[i].value);
        if (ext == NULL) {
            report("bad extension", specs[i].value);
            return -1;
        }
        /* X509_add_ext copies ext, so ours is freed either way. */
        int added = X509_add_ext(cert, ext, -1);
        X509_EXTENSION_free(ext);
        if (added != 1) {
            report("cannot add extension", specs[i].value);
            return -1;
        }
    }
    return 0;
}

/* X509_sign returns the signature's size, 0 on failure. */
static int sign(X509 *cert, EVP_PKEY *key, const char *cn)
{
    if (X509_sign(cert, key, EVP_sha256()) <= 0) {
        report("cannot sign", cn);
        return -1;
    }
    return 0;
}

static EVP_PKEY *new_key(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    if (key == NULL)
        report("cannot generate a P-256 key", NULL);
    return key;
}

int testcert_make_ca(const char *dir, const char *name, const char *cn)
{
    int rc = -1;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    X509V3_CTX ctx = {0};

    key = new_key();
    if (key == NULL)
        goto out;
    cert = new_cert(key, cn, NULL, CA_BACKDATE_S, CA_BACKDATE_S + CA_LIFETIME_S);
    if (cert == NULL)
        goto out;
    /* Self-signed: the issuer is the subject. */
    if (X509_set_issuer_name(cert, X509_get_subject_name(cert)) != 1) {
        report("cannot set issuer", cn);
        goto out;
    }
    X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
    if (add_exts(cert, &ctx, ca_exts, COUNT(ca_exts)) != 0 || sign(cert, key, cn) != 0)
        goto out;
    rc = save_pair(dir, name, cert, key);
out:
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc;
}

int testcert_make_leaf(const char *dir, const char *name, const char *cn, const char *org,
                       const char *ca_name, testcert_kind kind, long not_before_s, long not_after_s)
{
    int rc = -1;
    X509 *ca = NULL;
    EVP_PKEY *ca_key = NULL;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    X509V3_CTX ctx = {0};
    const ext_spec *exts = kind == TESTCERT_SERVER   ? server_exts
                           : kind == TESTCERT_CLIENT ? client_exts
                                                     : no_eku_exts;
    size_t n_exts = kind == TESTCERT_SERVER   ? COUNT(server_exts)
                    : kind == TESTCERT_CLIENT ? COUNT(client_exts)
                                              : COUNT(no_eku_exts);

    if (load_ca(dir, ca_name, &ca, &ca_key) != 0)
        goto out;
    key = new_key();
    if (key == NULL)
        goto out;
    cert = new_cert(key, cn, org, not_before_s, not_after_s);
    if (cert == NULL)
        goto out;
    if (X509_set_issuer_name(cert, X509_get_subject_name(ca)) != 1) {
        report("cannot set issuer", cn);
        goto out;
    }
    X509V3_set_ctx(&ctx, ca, cert, NULL, NULL, 0);
    if (add_exts(cert, &ctx, exts, n_exts) != 0 || sign(cert, ca_key, cn) != 0)
        goto out;
    rc = save_pair(dir, name, cert, key);
out:
    X509_free(cert);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
    X509_free(ca);
    return rc;
}

/* Adds one revoked entry, for the certificate at path, to crl. */
static int revoke_cert(X509_CRL *crl, const char *path, const ASN1_TIME *when)
{
    int rc = -1;
    X509 *cert = read_cert(path);
    X509_REVOKED *r = X509_REVOKED_new();
    if (cert == NULL || r == NULL)
        goto out;
    if (X509_REVOKED_set_serialNumber(r, X509_get_serialNumber(cert)) != 1 ||
        X509_REVOKED_set_revocationDate(r, (ASN1_TIME *)when) != 1 ||
        X509_CRL_add0_revoked(crl, r) != 1) {
        report("cannot revoke", path);
        goto out;
    }
    r = NULL; /* the CRL's now */
    rc = 0;
out:
    X509_REVOKED_free(r);
    X509_free(cert);
    return rc;
}

int testcert_make_crl(const char *dir, const char *name, const char *ca_name,
                      const char *const *revoked, long next_update_s)
{
    int rc = -1;
    X509 *ca = NULL;
    EVP_PKEY *ca_key = NULL;
    X509_CRL *crl = X509_CRL_new();
    ASN1_TIME *last = X509_gmtime_adj(NULL, -7200);
    ASN1_TIME *next = X509_gmtime_adj(NULL, next_update_s);
    FILE *fp = NULL;
    char path[PATH_MAX];
    if (crl == NULL || last == NULL || next == NULL || load_ca(dir, ca_name, &ca, &ca_key) != 0)
        goto out;
    if (X509_CRL_set_version(crl, 1) != 1 ||
        X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)) != 1 ||
        X509_CRL_set1_lastUpdate(crl, last) != 1 || X509_CRL_set1_nextUpdate(crl, next) != 1) {
        report("cannot make CRL", name);
        goto out;
    }
    for (size_t i = 0; revoked != NULL && revoked[i] != NULL; i++) {
        if (file_path(path, dir, revoked[i], ".crt") != 0 || revoke_cert(crl, path, last) != 0)
            goto out;
    }
    if (X509_CRL_sort(crl) != 1 || X509_CRL_sign(crl, ca_key, EVP_sha256()) <= 0) {
        report("cannot sign CRL", name);
        goto out;
    }
    if (file_path(path, dir, name, ".crl") != 0)
        goto out;
    if ((fp = fopen(path, "w")) == NULL) {
        report_errno("cannot create", path);
        goto out;
    }
    if (PEM_write_X509_CRL(fp, crl) != 1) {
        report("cannot write CRL", path);
        goto out;
    }
    rc = 0;
out:
    if (fp != NULL && fclose(fp) != 0 && rc == 0) {
        report_errno("cannot write", path);
        rc = -1;
    }
    ASN1_TIME_free(last);
    ASN1_TIME_free(next);
    X509_CRL_free(crl);
    EVP_PKEY_free(ca_key);
    X509_free(ca);
    return rc;
}

int testcert_append(const char *dir, const char *dst, const char *src)
{
    int rc = -1;
    char src_path[PATH_MAX];
    char dst_path[PATH_MAX];
    char buf[4096];
    FILE *in = NULL;
    FILE *out = NULL;
    size_t n;

    if (file_path(src_path, dir, src, "") != 0 || file_path(dst_path, dir, dst, "") != 0)
        goto out;
    in = fopen(src_path, "rb");
    if (in == NULL) {
        report_errno("cannot open", src_path);
        goto out;
    }
    out = fopen(dst_path, "ab");
    if (out == NULL) {
        report_errno("cannot open", dst_path);
        goto out;
    }
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
        if (fwrite(buf, 1, n, out) != n) {
            report_errno("cannot write", dst_path);
            goto out;
        }
    }
    if (ferror(in)) {
        report_errno("cannot read", src_path);
        goto out;
    }
    rc = 0;
out:
    if (in != NULL)
        fclose(in);
    if (out != NULL && fclose(out) != 0 && rc == 0) {
        report_errno("cannot write", dst_path);
        rc = -1;
    }
    return rc;
}
