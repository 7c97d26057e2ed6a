/* Bearer-token authentication and authorization.
 *
 * The token file (YAML) holds SHA-256 hashes of tokens, never the tokens:
 *
 *   tokens:
 *     - name: matchmaker-eu
 *       sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
 *       namespaces: ["default", "ranked"]   # or ["*"]
 *       verbs: [allocate, release, read]     # and/or admin
 *       ratePerSecond: 200                  # optional, 0 = unlimited, else 0.001..1e6
 *     - name: lobby
 *       commonName: lobby.games.example     # a client certificate's, instead of sha256
 *       namespaces: ["default"]
 *       verbs: [allocate]
 *
 * An entry with commonName grants what it lists to a client whose TLS
 * certificate the server verified (tls.h) and whose subject has that
 * common name; it matches no bearer token.
 * A presented token is hashed and compared with every entry in constant time,
 * so timing reveals neither which entry nor how much of a hash matched.
 * A bdy_auth is immutable once loaded; reload by loading a new one and
 * swapping pointers (the caller keeps the old one alive until no request
 * uses it).
 */
#ifndef BINDERY_AUTH_H
#define BINDERY_AUTH_H

#include "bindery/error.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum bdy_verb {
    BDY_VERB_NONE = 0,
    BDY_VERB_ALLOCATE = 1 << 0,
    BDY_VERB_RELEASE = 1 << 1,
    BDY_VERB_READ = 1 << 2,
    BDY_VERB_ADMIN = 1 << 3, /* implies every other verb */
    /* Routes only: any authenticated client, whatever its verbs (a client
     * asking what it may do: kubectl auth can-i, auth whoami). */
    BDY_VERB_AUTHENTICATED = 1 << 4,
} bdy_verb;

#define BDY_AUTH_MAX_TOKENS 1024
#define BDY_AUTH_MAX_TOKEN_LEN 4096

/* Whether a token of len bytes can be presented at all: 1 to
 * BDY_AUTH_MAX_TOKEN_LEN visible ASCII characters (what a Bearer header
 * carries once its spaces are trimmed). */
bool bdy_auth_token_usable(const char *token, size_t len);

typedef struct bdy_auth bdy_auth;
typedef struct bdy_principal bdy_principal;

/* Loads and validates a token file. Errors name the file, line and key
 * (BDY_EPARSE / BDY_EINVAL), e.g. a hash that is not 64 hex digits or an
 * unknown verb. Caller frees with bdy_auth_free(). */
int bdy_auth_load(const char *path, bdy_auth **out, bdy_errbuf *eb);
void bdy_auth_free(bdy_auth *a);
size_t bdy_auth_count(const bdy_auth *a);

/* Resolves an Authorization header value ("Bearer <token>"). Returns the
 * matching principal (borrowed from a, valid while a lives) or NULL. */
const bdy_principal *bdy_auth_authenticate(const bdy_auth *a, const char *authorization_header);

/* The principal of the entry whose commonName is common_name: a client
 * certificate's subject, which the caller has verified against the
 * configured CAs (tls.h). Borrowed from a; NULL when no entry names it. */
const bdy_principal *bdy_auth_authenticate_certificate(const bdy_auth *a, const char *common_name);

/* True when p may use verb in namespace (ns NULL: a cluster-wide request,
 * allowed only for "*" principals). False for p NULL: with authentication
 * off handlers get no principal and must decide that case themselves. */
bool bdy_principal_allows(const bdy_principal *p, bdy_verb verb, const char *ns);
const char *bdy_principal_name(const bdy_principal *p);
/* What p's entry names, for messages: "token", or "client certificate"
 * for a commonName entry. */
const char *bdy_principal_kind(const bdy_principal *p);
/* True when p holds verb (admin holds every verb) in at least one namespace;
 * the server's 403 check before a handler looks at namespaces. */
bool bdy_principal_has_verb(const bdy_principal *p, bdy_verb verb);

/* Token-bucket rate check for p (thread-safe): ratePerSecond tokens per
 * second, burst max(1, ratePerSecond). Returns true when the request may go
 * ahead (always for p NULL or an unlimited principal); otherwise false and
 * *retry_after_s (>= 1) is set. */
bool bdy_principal_take(const bdy_principal *p, unsigned *retry_after_s);

/* Carries the token buckets of prev over to next, a set loaded to replace
 * it: a principal with the same hash and rate keeps what it has left, so a
 * reload gives no one a fresh burst. A principal whose rate changed starts
 * anew at its new burst. Thread-safe against takes on prev; next must not
 * be in use yet. */
void bdy_auth_carry_buckets(bdy_auth *next, const bdy_auth *prev);

/* A copy of what p is granted (its token's hash, name, verbs and
 * namespaces; no rate), owned by the caller, valid after p's set is gone:
 * for bdy_auth_still_grants. NULL for p NULL or out of memory. */
bdy_principal *bdy_principal_copy(const bdy_principal *p);
void bdy_principal_free(bdy_principal *p);
/* Whether a, a set loaded since p's, still grants p's token every verb in
 * every namespace p had: a request that runs on (a watch) may go on. False
 * for a NULL (no token set). */
bool bdy_auth_still_grants(const bdy_auth *a, const bdy_principal *p);

/* Parses "allocate", "release", "read", "admin". */
int bdy_verb_parse(const char *text, bdy_verb *out);

#endif
