/* Client configuration for a Kubernetes API server: kubeconfig files and
 * the in-cluster service account, resolved to what an HTTP client needs
 * (server URL, CA, client certificate, bearer token, namespace).
 *
 * kubeconfig is YAML (JSON is YAML too). Several files (a $KUBECONFIG
 * colon list) merge the way kubectl merges them: the first file that names
 * a context, cluster or user wins, and the first current-context wins.
 * Relative paths resolve against the folder of the file that wrote them.
 * Supported: clusters[].cluster{server, certificate-authority(-data),
 * insecure-skip-tls-verify, tls-server-name}, users[].user{token, tokenFile,
 * client-certificate(-data), client-key(-data)}, contexts[].context{cluster,
 * user, namespace}. Credential plugins (exec, auth-provider) are refused
 * with a message saying so, never silently ignored.
 *
 * Parsing reads no files; bdy_kubeconfig_read_files() loads the CA, client
 * certificate, key and token files a parsed config names. All inputs are
 * capped (BDY_KUBECONFIG_MAX_BYTES per file, BDY_KUBE_TOKEN_MAX).
 */
#ifndef BINDERY_KUBECONFIG_H
#define BINDERY_KUBECONFIG_H

#include "bindery/error.h"

#include <stdbool.h>
#include <stddef.h>

#define BDY_KUBECONFIG_MAX_BYTES ((size_t)1024 * 1024)
/* Most files in a $KUBECONFIG list. */
#define BDY_KUBECONFIG_MAX_FILES 16
/* Longest bearer token accepted (projected service-account tokens are ~1 KiB). */
#define BDY_KUBE_TOKEN_MAX 16384
/* Longest PEM bundle accepted for a CA, certificate or key. */
#define BDY_KUBE_PEM_MAX ((size_t)512 * 1024)

#define BDY_KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/* A resolved client configuration. Every string is owned (NULL when not
 * set); free with bdy_kubeconfig_free(). */
typedef struct bdy_kubeconfig {
    char *context;         /* the context used ("" in-cluster) */
    char *server;          /* "https://host:port", no trailing slash */
    char *namespace_;      /* the context's namespace; NULL = not set */
    char *tls_server_name; /* name to verify the server certificate against */
    bool insecure;         /* insecure-skip-tls-verify */
    char *ca_file;         /* absolute or as given (relative resolved) */
    char *cert_file;
    char *key_file;
    char *token_file;
    char *ca_pem; /* PEM from *-data (decoded) or read from *_file */
    size_t ca_pem_len;
    char *cert_pem;
    size_t cert_pem_len;
    char *key_pem;
    size_t key_pem_len;
    char *token; /* from token, or read from token_file (trailing space cut) */
} bdy_kubeconfig;

/* Parses one kubeconfig document. dir (may be NULL = current folder) is the
 * folder relative paths resolve against; context NULL means the file's
 * current-context. Returns 0, BDY_EPARSE (bad YAML), BDY_EINVAL (missing
 * context/cluster/user, bad server URL, bad base64: eb names the key),
 * BDY_EUNSUPPORTED (exec or auth-provider users) or BDY_ENOMEM. On error
 * *out is left empty. Reads no files. Thread-safe (no shared state). */
int bdy_kubeconfig_parse(const char *text, size_t len, const char *dir, const char *context,
                         bdy_kubeconfig *out, bdy_errbuf *eb);

/* Loads the kubeconfig files in paths (a colon-separated list as in
 * $KUBECONFIG; missing files in a list are skipped as kubectl does, but a
 * list with no readable file is BDY_ENOTFOUND), merges them, resolves the
 * context and reads the files it names (bdy_kubeconfig_read_files). */
int bdy_kubeconfig_load(const char *paths, const char *context, bdy_kubeconfig *out,
                        bdy_errbuf *eb);

/* Reads ca_file, cert_file, key_file and token_file into the *_pem and
 * token fields where those are not already set from inline data. */
int bdy_kubeconfig_read_files(bdy_kubeconfig *kc, bdy_errbuf *eb);

/* The in-cluster configuration: $KUBERNETES_SERVICE_HOST/PORT, the service
 * account token and CA under sa_dir (NULL = BDY_KUBE_SA_DIR), the namespace
 * from $POD_NAMESPACE or sa_dir/namespace. BDY_ENOTFOUND when not running
 * in a cluster. */
int bdy_kubeconfig_in_cluster(const char *sa_dir, bdy_kubeconfig *out, bdy_errbuf *eb);

/* Re-reads token_file (projected tokens rotate); no-op without one. */
int bdy_kubeconfig_reload_token(bdy_kubeconfig *kc, bdy_errbuf *eb);

/* Frees the strings; kc itself is the caller's. Accepts NULL. */
void bdy_kubeconfig_free(bdy_kubeconfig *kc);

#endif
