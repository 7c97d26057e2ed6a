/* TLS credential sets for the HTTP API (GnuTLS, which libmicrohttpd uses
 * for its TLS): load, check, attach to a session, verify a client. */
#include "bindery/tls.h"

#include "bindery/error.h"
#include "bindery/util.h"

#include <gnutls/x509.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Relative names read in a client's subject; real ones have a handful. */
#define BDY_TLS_MAX_SUBJECT_RDNS 64

struct bdy_tls_set {
    atomic_uint refs;
    gnutls_certificate_credentials_t cred;
    gnutls_x509_trust_list_t client_cas; /* NULL: client certificates not asked for */
    unsigned nclient_cas;
    unsigned nclient_crls;
    char *cert_pem;
    char *key_pem;
    size_t key_len;
    char subject[256];
    char fingerprint[3 * 32]; /* SHA-256 as colon-separated hex */
    time_t expires;
};

/* t as RFC 3339 UTC ("2027-01-31T12:00:00Z"). */
static void utc_text(time_t t, char *out, size_t cap)
{
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, cap, "%lld", (long long)t);
}

static void set_free(bdy_tls_set *s)
{
    if (s == NULL)
        return;
    if (s->cred != NULL)
        gnutls_certificate_free_credentials(s->cred);
    if (s->client_cas != NULL)
        gnutls_x509_trust_list_deinit(s->client_cas, 1);
    if (s->key_pem != NULL) {
        /* A private key: not left in freed memory. */
        explicit_bzero(s->key_pem, s->key_len);
        free(s->key_pem);
    }
    free(s->cert_pem);
    free(s);
}

bdy_tls_set *bdy_tls_ref(bdy_tls_set *set)
{
    if (set != NULL)
        atomic_fetch_add(&set->refs, 1);
    return set;
}

void bdy_tls_unref(bdy_tls_set *set)
{
    if (set != NULL && atomic_fetch_sub(&set->refs, 1) == 1)
        set_free(set);
}

/* Reads a PEM file whole (cap BDY_TLS_MAX_PEM_BYTES); what names it in
 * errors ("tls.certFile"). */
static int read_pem(const char *path, const char *what, char **out, size_t *len, bdy_errbuf *eb)
{
    int rc = bdy_read_file(path, BDY_TLS_MAX_PEM_BYTES, out, len);
    switch (rc) {
    case 0:
        return 0;
    case BDY_ENOTFOUND:
        return bdy_fail(eb, rc, "%s %s: no such file", what, path);
    case BDY_ETOOBIG:
        return bdy_fail(eb, rc, "%s %s: larger than %zu bytes", what, path, BDY_TLS_MAX_PEM_BYTES);
    default:
        return bdy_fail(eb, rc, "%s %s: cannot read: %s", what, path, bdy_strerror(rc));
    }
}

/* Subject, expiry and fingerprint of the chain's first certificate, which
 * must be valid now: a server that starts with an expired certificate
 * only fails every client's handshake, far from the cause. */
static int describe_leaf(bdy_tls_set *s, const bdy_tls_files *f, bdy_errbuf *eb)
{
    int rc = 0;
    gnutls_x509_crt_t *chain = NULL;
    unsigned n = 0;
    gnutls_datum_t pem = {(unsigned char *)s->cert_pem, (unsigned)strlen(s->cert_pem)};
    gnutls_datum_t dn = {NULL, 0};
    int g = gnutls_x509_crt_list_import2(&chain, &n, &pem, GNUTLS_X509_FMT_PEM, 0);
    if (g < 0 || n == 0) {
        rc = bdy_fail(eb, BDY_EINVAL, "tls.certFile %s: no PEM certificate in it (%s)",
                      f->cert_file, g < 0 ? gnutls_strerror(g) : "empty");
        goto out;
    }
    time_t now = time(NULL);
    time_t from = gnutls_x509_crt_get_activation_time(chain[0]);
    s->expires = gnutls_x509_crt_get_expiration_time(chain[0]);
    char when[32];
    if (s->expires != (time_t)-1 && s->expires < now) {
        utc_text(s->expires, when, sizeof(when));
        rc = bdy_fail(eb, BDY_EINVAL, "tls.certFile %s: the certificate expired at %s",
                      f->cert_file, when);
        goto out;
    }
    if (from != (time_t)-1 && from > now) {
        utc_text(from, when, sizeof(when));
        rc = bdy_fail(eb, BDY_EINVAL, "tls.certFile %s: the certificate is not valid before %s",
                      f->cert_file, when);
        goto out;
    }
    if (gnutls_x509_crt_get_dn3(chain[0], &dn, 0) == 0)
        snprintf(s->subject, sizeof(s->subject), "%.*s", (int)dn.size, (const char *)dn.data);
    unsigned char digest[32];
    size_t dlen = sizeof(digest);
    if (gnutls_x509_crt_get_fingerprint(chain[0], GNUTLS_DIG_SHA256, digest, &dlen) == 0) {
        for (size_t i = 0; i < dlen && 3 * i + 3 <= sizeof(s->fingerprint); i++)
            snprintf(s->fingerprint + 3 * i, 4, i + 1 < dlen ? "%02X:" : "%02X", digest[i]);
    }
out:
    gnutls_free(dn.data);
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(chain[i]);
    gnutls_free(chain);
    return rc;
}

/* The client CAs of path; their PEM in *pem_out (caller frees), for the
 * revocation lists' check. */
static int load_client_cas(bdy_tls_set *s, const char *path, char **pem_out, size_t *len_out,
                           bdy_errbuf *eb)
{
    char *pem = NULL;
    size_t len = 0;
    int rc = read_pem(path, "tls.clientCAFile", &pem, &len, eb);
    if (rc != 0)
        return rc;
    int g = gnutls_x509_trust_list_init(&s->client_cas, 0);
    if (g < 0) {
        rc = bdy_fail(eb, BDY_ENOMEM, "tls.clientCAFile: %s", gnutls_strerror(g));
        goto out;
    }
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)len};
    g = gnutls_x509_trust_list_add_trust_mem(s->client_cas, &d, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
    if (g <= 0) {
        rc = bdy_fail(eb, BDY_EINVAL, "tls.clientCAFile %s: no PEM certificate in it (%s)", path,
                      g < 0 ? gnutls_strerror(g) : "empty");
        goto out;
    }
    s->nclient_cas = (unsigned)g;
    *pem_out = pem;
    *len_out = len;
    pem = NULL;
out:
    free(pem);
    return rc;
}

/* Whether crl is signed by one of the CAs in ca_pem. Its dates are not
 * checked: a list past its next update still revokes what it names
 * (GnuTLS keeps applying one that goes stale in force, so one loaded
 * stale is taken the same way). */
static bool crl_signed_by(gnutls_x509_crl_t crl, const char *ca_pem, size_t ca_len)
{
    gnutls_x509_crt_t *cas = NULL;
    unsigned ncas = 0;
    gnutls_datum_t d = {(unsigned char *)ca_pem, (unsigned)ca_len};
    if (gnutls_x509_crt_list_import2(&cas, &ncas, &d, GNUTLS_X509_FMT_PEM, 0) < 0)
        return false;
    unsigned status = 0;
    int g = gnutls_x509_crl_verify(crl, cas, ncas, GNUTLS_VERIFY_DISABLE_TIME_CHECKS, &status);
    /* Only what is wrong with the signature counts. */
    bool ok = g >= 0 &&
              (status & ~(unsigned)(GNUTLS_CERT_REVOCATION_DATA_SUPERSEDED |
                                    GNUTLS_CERT_REVOCATION_DATA_ISSUED_IN_FUTURE |
                                    GNUTLS_CERT_INVALID)) == 0 &&
              (status & (GNUTLS_CERT_SIGNER_NOT_FOUND | GNUTLS_CERT_SIGNATURE_FAILURE |
                         GNUTLS_CERT_SIGNER_NOT_CA | GNUTLS_CERT_INSECURE_ALGORITHM)) == 0;
    for (unsigned i = 0; i < ncas; i++)
        gnutls_x509_crt_deinit(cas[i]);
    gnutls_free(cas);
    return ok;
}

/* Revocation lists of the client CAs (ca_pem), each checked to be signed
 * by one of them: a list no CA signed would revoke nothing, silently. */
static int load_client_crls(bdy_tls_set *s, const char *path, const char *ca_pem, size_t ca_len,
                            bdy_errbuf *eb)
{
    char *pem = NULL;
    size_t len = 0;
    gnutls_x509_crl_t *crls = NULL;
    unsigned n = 0;
    int rc = read_pem(path, "tls.clientCRLFile", &pem, &len, eb);
    if (rc != 0)
        return rc;
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)len};
    int g = gnutls_x509_crl_list_import2(&crls, &n, &d, GNUTLS_X509_FMT_PEM, 0);
    if (g < 0 || n == 0) {
        rc = bdy_fail(eb, BDY_EINVAL, "tls.clientCRLFile %s: no PEM revocation list in it (%s)",
                      path, g < 0 ? gnutls_strerror(g) : "empty");
        goto out;
    }
    for (unsigned i = 0; i < n; i++) {
        if (!crl_signed_by(crls[i], ca_pem, ca_len)) {
            rc = bdy_fail(eb, BDY_EINVAL,
                          "tls.clientCRLFile %s: revocation list %u is not signed by a CA of "
                          "tls.clientCAFile",
                          path, i + 1);
            goto out;
        }
    }
    /* Checked above, so added as they are; the trust list owns them then. */
    g = gnutls_x509_trust_list_add_crls(s->client_cas, crls, n, 0, 0);
    if (g < 0 || (unsigned)g != n) {
        rc = bdy_fail(eb, BDY_EIO, "tls.clientCRLFile %s: %s", path,
                      g < 0 ? gnutls_strerror(g) : "not every list was taken");
        if (g >= 0) {
            gnutls_free(crls);
            crls = NULL;
        }
        goto out;
    }
    gnutls_free(crls);
    crls = NULL;
    s->nclient_crls = n;
out:
    if (crls != NULL) {
        for (unsigned i = 0; i < n; i++)
            gnutls_x509_crl_deinit(crls[i]);
        gnutls_free(crls);
    }
    free(pem);
    return rc;
}

int bdy_tls_load(const bdy_tls_files *f, bdy_tls_set **out, bdy_errbuf *eb)
{
    int rc = 0;
    size_t cert_len = 0;
    char *ca_pem = NULL;
    size_t ca_len = 0;
    if (f == NULL || f->cert_file == NULL || f->key_file == NULL || out == NULL)
        return bdy_fail(eb, BDY_EINVAL, "tls: certFile and keyFile are both needed");
    bdy_tls_set *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return bdy_fail(eb, BDY_ENOMEM, "out of memory");
    atomic_init(&s->refs, 1);
    if ((rc = read_pem(f->cert_file, "tls.certFile", &s->cert_pem, &cert_len, eb)) != 0 ||
        (rc = read_pem(f->key_file, "tls.keyFile", &s->key_pem, &s->key_len, eb)) != 0)
        goto out;
    int g = gnutls_certificate_allocate_credentials(&s->cred);
    if (g < 0) {
        rc = bdy_fail(eb, BDY_ENOMEM, "tls: %s", gnutls_strerror(g));
        goto out;
    }
    gnutls_datum_t cert = {(unsigned char *)s->cert_pem, (unsigned)cert_len};
    gnutls_datum_t key = {(unsigned char *)s->key_pem, (unsigned)s->key_len};
    /* GnuTLS checks here that the key belongs to the first certificate. */
    g = gnutls_certificate_set_x509_key_mem2(s->cred, &cert, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (g < 0) {
        rc = bdy_fail(eb, BDY_EINVAL, "tls: certFile %s with keyFile %s: %s", f->cert_file,
                      f->key_file, gnutls_strerror(g));
        goto out;
    }
    if ((rc = describe_leaf(s, f, eb)) != 0)
        goto out;
    if (f->client_ca_file != NULL &&
        (rc = load_client_cas(s, f->client_ca_file, &ca_pem, &ca_len, eb)) != 0)
        goto out;
    if (f->client_crl_file != NULL && s->client_cas == NULL) {
        rc = bdy_fail(eb, BDY_EINVAL, "tls: clientCRLFile needs clientCAFile");
        goto out;
    }
    if (f->client_crl_file != NULL &&
        (rc = load_client_crls(s, f->client_crl_file, ca_pem, ca_len, eb)) != 0)
        goto out;
    *out = s;
    s = NULL;
out:
    free(ca_pem);
    set_free(s);
    return rc;
}

const char *bdy_tls_cert_pem(const bdy_tls_set *set)
{
    return set != NULL ? set->cert_pem : NULL;
}

const char *bdy_tls_key_pem(const bdy_tls_set *set)
{
    return set != NULL ? set->key_pem : NULL;
}

long long bdy_tls_expires(const bdy_tls_set *set)
{
    return set != NULL ? (long long)set->expires : -1;
}

bool bdy_tls_wants_client_certs(const bdy_tls_set *set)
{
    return set != NULL && set->client_cas != NULL;
}

void bdy_tls_describe(const bdy_tls_set *set, char *out, size_t cap)
{
    if (cap == 0)
        return;
    if (set == NULL) {
        snprintf(out, cap, "no TLS");
        return;
    }
    char until[32] = "?";
    if (set->expires != (time_t)-1)
        utc_text(set->expires, until, sizeof(until));
    int n = snprintf(out, cap, "certificate \"%s\" valid until %s, SHA-256 %s", set->subject, until,
                     set->fingerprint);
    if (set->client_cas != NULL && n >= 0 && (size_t)n < cap)
        snprintf(out + n, cap - (size_t)n,
                 "; client certificates of %u CA%s asked for (%u revocation list%s)",
                 set->nclient_cas, set->nclient_cas == 1 ? "" : "s", set->nclient_crls,
                 set->nclient_crls == 1 ? "" : "s");
}

int bdy_tls_attach(const bdy_tls_set *set, gnutls_session_t session)
{
    if (set == NULL || session == NULL)
        return BDY_EINVAL;
    if (gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, set->cred) < 0)
        return BDY_EIO;
    if (set->client_cas != NULL) {
        gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUEST);
        /* Naming the CAs would make some clients (Go's, kubectl's) keep a
         * certificate of a CA the server took on since it started. */
        gnutls_certificate_send_x509_rdn_sequence(session, 1);
    }
    return 0;
}

/* Whether cert names TLS client authentication among its extended key
 * usages. GnuTLS's purpose check in verification passes a certificate
 * with no such extension at all ("any purpose"); a client's must say so. */
static bool has_client_purpose(gnutls_x509_crt_t cert)
{
    for (unsigned i = 0; i < 64; i++) {
        char oid[128];
        size_t len = sizeof(oid);
        if (gnutls_x509_crt_get_key_purpose_oid(cert, i, oid, &len, NULL) < 0)
            return false;
        if (strcmp(oid, GNUTLS_KP_TLS_WWW_CLIENT) == 0)
            return true;
    }
    return false;
}

/* The subject's one common name, as its bytes (not RFC 4514-escaped
 * text, which would put "\\," or "#hex" where the name has a comma or
 * bytes that do not decode). Refused: no common name or more than one
 * (verifiers disagree on which counts), a type other than UTF8String,
 * PrintableString or IA5String, control characters, or over cap - 1
 * bytes. Returns 0 or -1 with why. */
static int common_name_of(gnutls_x509_crt_t cert, char *out, size_t cap, char *why, size_t why_cap)
{
    unsigned char der[BDY_TLS_MAX_COMMON_NAME + 8]; /* tag, length, value */
    size_t der_len = 0;
    unsigned found = 0;
    for (unsigned i = 0; i < BDY_TLS_MAX_SUBJECT_RDNS; i++) {
        unsigned char buf[sizeof(der)];
        size_t len = sizeof(buf);
        /* raw: the attribute's DER value, whatever its string type. */
        int g = gnutls_x509_crt_get_dn_by_oid(cert, GNUTLS_OID_X520_COMMON_NAME, i, 1, buf, &len);
        if (g == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            break;
        if (g == GNUTLS_E_SHORT_MEMORY_BUFFER) {
            snprintf(why, why_cap, "its common name is over %zu bytes", cap > 0 ? cap - 1 : 0);
            return -1;
        }
        if (g < 0) {
            snprintf(why, why_cap, "its subject does not parse");
            return -1;
        }
        if (found++ == 0) {
            memcpy(der, buf, len);
            der_len = len;
        }
    }
    if (found != 1) {
        snprintf(why, why_cap,
                 found == 0 ? "its subject has no common name"
                            : "its subject has more than one common name");
        return -1;
    }
    /* 0x0c UTF8String, 0x13 PrintableString, 0x16 IA5String; a length of
     * one byte, or 0x81 and one byte. */
    unsigned tag = der_len >= 2 ? der[0] : 0;
    size_t head = der_len >= 2 && der[1] == 0x81 ? 3 : 2;
    size_t n = der_len < head ? 0 : head == 3 ? der[2] : der[1];
    if (tag != 0x0c && tag != 0x13 && tag != 0x16) {
        snprintf(why, why_cap, "its common name is not a UTF-8, printable or IA5 string");
        return -1;
    }
    if ((head == 2 && der[1] >= 0x80) || head + n != der_len || n == 0 || n >= cap) {
        snprintf(why, why_cap, "its common name is empty, malformed or over %zu bytes",
                 cap > 0 ? cap - 1 : 0);
        return -1;
    }
    for (size_t k = 0; k < n; k++) {
        if (der[head + k] < 0x20 || der[head + k] == 0x7f) {
            snprintf(why, why_cap, "its common name holds control characters");
            return -1;
        }
    }
    memcpy(out, der + head, n);
    out[n] = '\0';
    return 0;
}

bdy_tls_peer bdy_tls_verify_peer(const bdy_tls_set *set, gnutls_session_t session,
                                 char *common_name, size_t cn_cap, char *why, size_t why_cap)
{
    bdy_tls_peer result = BDY_TLS_PEER_REFUSED;
    gnutls_x509_crt_t chain[BDY_TLS_MAX_PEER_CHAIN];
    unsigned n = 0;
    unsigned npeers = 0;
    gnutls_datum_t text = {NULL, 0};
    if (cn_cap > 0)
        common_name[0] = '\0';
    if (why_cap > 0)
        why[0] = '\0';
    const gnutls_datum_t *peers =
        session != NULL ? gnutls_certificate_get_peers(session, &npeers) : NULL;
    if (peers == NULL || npeers == 0)
        return BDY_TLS_PEER_NONE;
    if (set == NULL || set->client_cas == NULL) {
        snprintf(why, why_cap, "client certificates are not accepted here");
        goto out;
    }
    if (gnutls_certificate_type_get(session) != GNUTLS_CRT_X509) {
        snprintf(why, why_cap, "not an X.509 certificate");
        goto out;
    }
    if (npeers > BDY_TLS_MAX_PEER_CHAIN) {
        snprintf(why, why_cap, "a chain of %u certificates (at most %d)", npeers,
                 BDY_TLS_MAX_PEER_CHAIN);
        goto out;
    }
    for (; n < npeers; n++) {
        if (gnutls_x509_crt_init(&chain[n]) < 0)
            goto out;
        if (gnutls_x509_crt_import(chain[n], &peers[n], GNUTLS_X509_FMT_DER) < 0) {
            gnutls_x509_crt_deinit(chain[n]);
            snprintf(why, why_cap, "certificate %u of the chain does not parse", n);
            goto out;
        }
    }
    gnutls_typed_vdata_st purpose = {
        .type = GNUTLS_DT_KEY_PURPOSE_OID, .data = (void *)GNUTLS_KP_TLS_WWW_CLIENT, .size = 0};
    unsigned status = 0;
    int g = gnutls_x509_trust_list_verify_crt2(set->client_cas, chain, n, &purpose, 1, 0, &status,
                                               NULL);
    if (g < 0) {
        snprintf(why, why_cap, "cannot be verified: %s", gnutls_strerror(g));
        goto out;
    }
    if (status != 0) {
        if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0) == 0)
            snprintf(why, why_cap, "%.*s", (int)text.size, (const char *)text.data);
        else
            snprintf(why, why_cap, "not trusted (status 0x%x)", status);
        goto out;
    }
    if (!has_client_purpose(chain[0])) {
        snprintf(why, why_cap, "it is not for TLS client authentication (extended key usage)");
        goto out;
    }
    if (gnutls_x509_crt_get_ca_status(chain[0], NULL) > 0) {
        snprintf(why, why_cap, "it is a CA's certificate, not a client's");
        goto out;
    }
    if (common_name_of(chain[0], common_name, cn_cap, why, why_cap) != 0) {
        if (cn_cap > 0)
            common_name[0] = '\0';
        goto out;
    }
    result = BDY_TLS_PEER_TRUSTED;
out:
    gnutls_free(text.data);
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(chain[i]);
    return result;
}
