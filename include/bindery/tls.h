/* TLS for the HTTP API: the server's certificate chain and key, and the
 * certificate authorities a client certificate must chain to, read from PEM
 * files into one immutable set.
 *
 * The HTTP server (http.h) keeps the set in force and puts it on every new
 * connection before its handshake; a connection holds a reference to the
 * set it started with until it closes. A reload (SIGHUP) loads a new set
 * and puts it in force for the connections that come after, while open
 * connections keep theirs; so a certificate is rotated without a restart
 * and without cutting anyone off. (The server keeps the last few replaced
 * sets until it stops, so that a set outlives the GnuTLS sessions made
 * with it.)
 *
 * Client certificates are asked for, never required, when a set has client
 * CAs: a client without one goes on to bearer tokens. One that sends a
 * certificate gets it checked against the set's CAs (chain, validity
 * dates, extended key usage clientAuth) by bdy_tls_verify_peer(); the
 * server then looks its subject's common name up in the token file
 * (bdy_auth_authenticate_certificate in auth.h).
 *
 * Thread-safe: a set does not change once loaded; references are atomic.
 */
#ifndef BINDERY_TLS_H
#define BINDERY_TLS_H

#include "bindery/error.h"

#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stddef.h>

/* Largest PEM file read for a certificate chain, a key or a CA bundle. */
#define BDY_TLS_MAX_PEM_BYTES ((size_t)1024 * 1024)
/* Longest chain a client may present. */
#define BDY_TLS_MAX_PEER_CHAIN 16
/* Longest common name kept (X.509's bound, RFC 5280, plus the NUL). */
#define BDY_TLS_MAX_COMMON_NAME 65

typedef struct bdy_tls_files {
    const char *cert_file;       /* PEM: the server's certificate, then any intermediates */
    const char *key_file;        /* PEM: its private key, unencrypted */
    const char *client_ca_file;  /* PEM bundle of CAs for client certificates; NULL: none asked */
    const char *client_crl_file; /* PEM revocation lists of those CAs; NULL: none */
} bdy_tls_files;

typedef struct bdy_tls_set bdy_tls_set;

/* Reads and checks the files: the key must match the first certificate,
 * which must be valid now; a client CA file must hold at least one
 * certificate; every list in a revocation list file must be signed by one
 * of the client CAs. Errors name the file (BDY_ENOTFOUND, BDY_EIO, BDY_ETOOBIG,
 * BDY_EINVAL). The caller owns the one reference in *out. */
int bdy_tls_load(const bdy_tls_files *files, bdy_tls_set **out, bdy_errbuf *eb);

/* Takes and drops a reference (NULL allowed); the last drop frees. */
bdy_tls_set *bdy_tls_ref(bdy_tls_set *set);
void bdy_tls_unref(bdy_tls_set *set);

/* The certificate chain and key as read (PEM, NUL-terminated), for a
 * server library that wants a certificate at start-up. Valid while the
 * caller holds a reference. */
const char *bdy_tls_cert_pem(const bdy_tls_set *set);
const char *bdy_tls_key_pem(const bdy_tls_set *set);

/* When the chain's first certificate expires (Unix seconds; -1 when it
 * does not say), for the expiry gauge operators alert on. */
long long bdy_tls_expires(const bdy_tls_set *set);

/* Whether the set asks clients for certificates (it has client CAs). */
bool bdy_tls_wants_client_certs(const bdy_tls_set *set);

/* One line for the log: the first certificate's subject, its expiry and
 * its SHA-256 fingerprint; with client CAs, how many. */
void bdy_tls_describe(const bdy_tls_set *set, char *out, size_t cap);

/* Puts the set's certificate and key on a server session that has not
 * begun its handshake, and asks the client for a certificate when the set
 * has client CAs (without naming them: a client may hold a certificate of
 * a CA added by a later reload). The session must not outlive the
 * caller's reference to set. Returns 0 or BDY_EIO. */
int bdy_tls_attach(const bdy_tls_set *set, gnutls_session_t session);

typedef enum bdy_tls_peer {
    BDY_TLS_PEER_NONE,    /* the client sent no certificate */
    BDY_TLS_PEER_TRUSTED, /* it chains to a client CA of set; common_name holds its subject's */
    BDY_TLS_PEER_REFUSED, /* it does not, or has no common name; why says what is wrong */
} bdy_tls_peer;

/* Checks the certificate the client of a session whose handshake is done
 * sent, against set's client CAs (and their revocation lists) at the
 * current time. common_name gets the
 * subject's common name (cap BDY_TLS_MAX_COMMON_NAME) when TRUSTED; why a
 * reason when REFUSED. A set without client CAs refuses any certificate. */
bdy_tls_peer bdy_tls_verify_peer(const bdy_tls_set *set, gnutls_session_t session,
                                 char *common_name, size_t cn_cap, char *why, size_t why_cap);

#endif
