/* kubeconfig files and the in-cluster service account → bdy_kubeconfig.
 *
 * The YAML is read with the line-keeping tree of yaml.h so errors can name
 * the line. Several files merge first-wins, as kubectl merges $KUBECONFIG.
 */
#include "bindery/kubeconfig.h"

#include "bindery/util.h"
#include "bindery/yaml.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest path built from a folder and a relative path. */
#define KC_PATH_MAX 4096
/* Longest server URL accepted. */
#define KC_SERVER_MAX 2048

/* One parsed file of a merged configuration. */
typedef struct kc_file {
    bdy_ynode *root;
    char dir[KC_PATH_MAX];
} kc_file;

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

/* A scalar child of map n, or NULL when absent or not a scalar. */
static const char *scalar_at(const bdy_ynode *n, const char *key)
{
    const bdy_ynode *v = bdy_ynode_get(n, key);
    return v != NULL && v->kind == BDY_YNODE_SCALAR ? v->scalar : NULL;
}

/* Finds the entry named name in list key ("clusters", "users",
 * "contexts") across files, first file first; *inner is the entry's
 * member (key without the trailing 's'), *file the file it came from. */
static const bdy_ynode *find_named(const kc_file *files, size_t nfiles, const char *list,
                                   const char *member, const char *name, const kc_file **file)
{
    for (size_t f = 0; f < nfiles; f++) {
        const bdy_ynode *seq = bdy_ynode_get(files[f].root, list);
        if (seq == NULL || seq->kind != BDY_YNODE_SEQ)
            continue;
        for (size_t i = 0; i < seq->count; i++) {
            const char *n = scalar_at(seq->items[i], "name");
            if (n != NULL && strcmp(n, name) == 0) {
                *file = &files[f];
                const bdy_ynode *inner = bdy_ynode_get(seq->items[i], member);
                return inner != NULL && inner->kind == BDY_YNODE_MAP ? inner : NULL;
            }
        }
    }
    return NULL;
}

static bool entry_exists(const kc_file *files, size_t nfiles, const char *list, const char *name)
{
    for (size_t f = 0; f < nfiles; f++) {
        const bdy_ynode *seq = bdy_ynode_get(files[f].root, list);
        for (size_t i = 0; seq != NULL && seq->kind == BDY_YNODE_SEQ && i < seq->count; i++) {
            const char *n = scalar_at(seq->items[i], "name");
            if (n != NULL && strcmp(n, name) == 0)
                return true;
        }
    }
    return false;
}

/* A path from the file, made absolute against dir when relative. */
static char *resolve_path(const char *dir, const char *p)
{
    if (p == NULL || p[0] == '\0')
        return NULL;
    if (p[0] == '/' || dir == NULL || dir[0] == '\0')
        return strdup(p);
    char buf[KC_PATH_MAX];
    snprintf(buf, sizeof(buf), "%s/%s", dir, p);
    return strdup(buf);
}

/* Decodes the base64 scalar key of map n into *pem (left alone if absent). */
static int decode_data(const bdy_ynode *n, const char *key, const char *what, char **pem,
                       size_t *pem_len, bdy_errbuf *eb)
{
    const char *v = scalar_at(n, key);
    if (v == NULL || v[0] == '\0')
        return 0;
    int rc = bdy_base64_decode(v, strlen(v), pem, pem_len);
    if (rc == BDY_EINVAL)
        return bdy_fail(eb, rc, "%s %s: not valid base64", what, key);
    return rc;
}

static bool truthy(const char *v)
{
    return v != NULL && (strcmp(v, "true") == 0 || strcmp(v, "True") == 0 ||
                         strcmp(v, "TRUE") == 0 || strcmp(v, "yes") == 0);
}

/* Checks the URL shape: http(s)://host[:port][/path], printable, bounded. */
static int check_server(const char *server, bdy_errbuf *eb)
{
    size_t len = strlen(server);
    if (len == 0 || len > KC_SERVER_MAX)
        return bdy_fail(eb, BDY_EINVAL, "cluster server: must be a URL of at most %d bytes",
                        KC_SERVER_MAX);
    const char *host = NULL;
    if (strncmp(server, "https://", 8) == 0)
        host = server + 8;
    else if (strncmp(server, "http://", 7) == 0)
        host = server + 7;
    if (host == NULL || host[0] == '\0' || host[0] == '/')
        return bdy_fail(eb, BDY_EINVAL, "cluster server: \"%.200s\" is not an http(s) URL", server);
    for (const char *p = server; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
            return bdy_fail(eb, BDY_EINVAL,
                            "cluster server: URL contains a space or control "
                            "character");
    return 0;
}

/* Fills out from the merged files. */
static int resolve(const kc_file *files, size_t nfiles, const char *context, bdy_kubeconfig *out,
                   bdy_errbuf *eb)
{
    int rc = 0;
    memset(out, 0, sizeof(*out));
    const char *ctx_name = context;
    for (size_t f = 0; ctx_name == NULL && f < nfiles; f++) {
        const char *c = scalar_at(files[f].root, "current-context");
        if (c != NULL && c[0] != '\0')
            ctx_name = c;
    }
    if (ctx_name == NULL) {
        rc = bdy_fail(eb, BDY_EINVAL, "no current-context set and no context chosen");
        goto out;
    }
    const kc_file *cf = NULL;
    const bdy_ynode *ctx = find_named(files, nfiles, "contexts", "context", ctx_name, &cf);
    if (ctx == NULL) {
        rc = bdy_fail(eb, BDY_EINVAL, "context \"%.200s\" not found", ctx_name);
        goto out;
    }
    const char *cluster_name = scalar_at(ctx, "cluster");
    const char *user_name = scalar_at(ctx, "user");
    const char *ns = scalar_at(ctx, "namespace");
    if (cluster_name == NULL || cluster_name[0] == '\0') {
        rc = bdy_fail(eb, BDY_EINVAL, "context \"%.200s\": no cluster", ctx_name);
        goto out;
    }
    const kc_file *clf = NULL;
    const bdy_ynode *cl = find_named(files, nfiles, "clusters", "cluster", cluster_name, &clf);
    if (cl == NULL) {
        rc = bdy_fail(eb, BDY_EINVAL, "cluster \"%.200s\" (context \"%.200s\") not found",
                      cluster_name, ctx_name);
        goto out;
    }
    const char *server = scalar_at(cl, "server");
    if (server == NULL) {
        rc = bdy_fail(eb, BDY_EINVAL, "cluster \"%.200s\": no server", cluster_name);
        goto out;
    }
    if ((rc = check_server(server, eb)) != 0)
        goto out;
    out->context = strdup(ctx_name);
    out->server = strdup(server);
    if (out->context == NULL || out->server == NULL) {
        rc = BDY_ENOMEM;
        goto out;
    }
    size_t sl = strlen(out->server);
    while (sl > 0 && out->server[sl - 1] == '/')
        out->server[--sl] = '\0';
    if (ns != NULL && ns[0] != '\0' && (out->namespace_ = strdup(ns)) == NULL) {
        rc = BDY_ENOMEM;
        goto out;
    }
    out->insecure = truthy(scalar_at(cl, "insecure-skip-tls-verify"));
    out->tls_server_name = dup_or_null(scalar_at(cl, "tls-server-name"));
    out->ca_file = resolve_path(clf->dir, scalar_at(cl, "certificate-authority"));
    if ((rc = decode_data(cl, "certificate-authority-data", "cluster", &out->ca_pem,
                          &out->ca_pem_len, eb)) != 0)
        goto out;

    if (user_name != NULL && user_name[0] != '\0') {
        const kc_file *uf = NULL;
        const bdy_ynode *u = find_named(files, nfiles, "users", "user", user_name, &uf);
        if (u == NULL && !entry_exists(files, nfiles, "users", user_name)) {
            rc = bdy_fail(eb, BDY_EINVAL, "user \"%.200s\" (context \"%.200s\") not found",
                          user_name, ctx_name);
            goto out;
        }
        if (u != NULL) {
            if (bdy_ynode_get(u, "exec") != NULL || bdy_ynode_get(u, "auth-provider") != NULL) {
                rc = bdy_fail(eb, BDY_EUNSUPPORTED,
                              "user \"%.200s\": credential plugins (exec, auth-provider) are not "
                              "supported; use a token, tokenFile or client certificate",
                              user_name);
                goto out;
            }
            out->token = dup_or_null(scalar_at(u, "token"));
            out->token_file = resolve_path(uf->dir, scalar_at(u, "tokenFile"));
            out->cert_file = resolve_path(uf->dir, scalar_at(u, "client-certificate"));
            out->key_file = resolve_path(uf->dir, scalar_at(u, "client-key"));
            if ((rc = decode_data(u, "client-certificate-data", "user", &out->cert_pem,
                                  &out->cert_pem_len, eb)) != 0 ||
                (rc = decode_data(u, "client-key-data", "user", &out->key_pem, &out->key_pem_len,
                                  eb)) != 0)
                goto out;
            if (out->token != NULL && strlen(out->token) > BDY_KUBE_TOKEN_MAX) {
                rc = bdy_fail(eb, BDY_ETOOBIG, "user \"%.200s\": token longer than %d bytes",
                              user_name, BDY_KUBE_TOKEN_MAX);
                goto out;
            }
        }
    }
out:
    if (rc != 0)
        bdy_kubeconfig_free(out);
    return rc;
}

int bdy_kubeconfig_parse(const char *text, size_t len, const char *dir, const char *context,
                         bdy_kubeconfig *out, bdy_errbuf *eb)
{
    int rc = 0;
    kc_file file = {0};
    memset(out, 0, sizeof(*out));
    if (len > BDY_KUBECONFIG_MAX_BYTES)
        return bdy_fail(eb, BDY_ETOOBIG, "kubeconfig larger than %zu bytes",
                        BDY_KUBECONFIG_MAX_BYTES);
    if ((rc = bdy_yaml_parse_one(text, len, &file.root, eb)) != 0)
        goto out;
    if (file.root->kind != BDY_YNODE_MAP) {
        rc = bdy_fail(eb, BDY_EPARSE, "kubeconfig is not a YAML mapping");
        goto out;
    }
    snprintf(file.dir, sizeof(file.dir), "%s", dir ? dir : "");
    rc = resolve(&file, 1, context, out, eb);
out:
    bdy_ynode_free(file.root);
    return rc;
}

/* Reads a PEM or token file capped at max into *data unless already set. */
static int read_capped(const char *path, size_t max, const char *what, char **data, size_t *len,
                       bdy_errbuf *eb)
{
    if (path == NULL || *data != NULL)
        return 0;
    size_t n = 0;
    int rc = bdy_read_file(path, max, data, &n);
    if (rc != 0)
        return bdy_fail(eb, rc, "%s %s: %s", what, path, bdy_strerror(rc));
    if (len != NULL)
        *len = n;
    return 0;
}

static void trim_token(char *t)
{
    size_t n = strlen(t);
    while (n > 0 && isspace((unsigned char)t[n - 1]))
        t[--n] = '\0';
}

int bdy_kubeconfig_read_files(bdy_kubeconfig *kc, bdy_errbuf *eb)
{
    int rc = 0;
    if ((rc = read_capped(kc->ca_file, BDY_KUBE_PEM_MAX, "certificate-authority", &kc->ca_pem,
                          &kc->ca_pem_len, eb)) != 0 ||
        (rc = read_capped(kc->cert_file, BDY_KUBE_PEM_MAX, "client-certificate", &kc->cert_pem,
                          &kc->cert_pem_len, eb)) != 0 ||
        (rc = read_capped(kc->key_file, BDY_KUBE_PEM_MAX, "client-key", &kc->key_pem,
                          &kc->key_pem_len, eb)) != 0)
        return rc;
    if (kc->token == NULL && kc->token_file != NULL) {
        if ((rc = read_capped(kc->token_file, BDY_KUBE_TOKEN_MAX, "tokenFile", &kc->token, NULL,
                              eb)) != 0)
            return rc;
        trim_token(kc->token);
    }
    return 0;
}

int bdy_kubeconfig_reload_token(bdy_kubeconfig *kc, bdy_errbuf *eb)
{
    if (kc->token_file == NULL)
        return 0;
    char *t = NULL;
    int rc = read_capped(kc->token_file, BDY_KUBE_TOKEN_MAX, "tokenFile", &t, NULL, eb);
    if (rc != 0)
        return rc;
    trim_token(t);
    free(kc->token);
    kc->token = t;
    return 0;
}

int bdy_kubeconfig_load(const char *paths, const char *context, bdy_kubeconfig *out, bdy_errbuf *eb)
{
    int rc = 0;
    kc_file files[BDY_KUBECONFIG_MAX_FILES];
    size_t nfiles = 0;
    char *list = NULL;
    memset(out, 0, sizeof(*out));
    if (paths == NULL || paths[0] == '\0')
        return bdy_fail(eb, BDY_EINVAL, "no kubeconfig path");
    if ((list = strdup(paths)) == NULL)
        return BDY_ENOMEM;
    char *save = NULL;
    for (char *p = strtok_r(list, ":", &save); p != NULL; p = strtok_r(NULL, ":", &save)) {
        if (nfiles == BDY_KUBECONFIG_MAX_FILES) {
            rc = bdy_fail(eb, BDY_ETOOBIG, "more than %d kubeconfig files",
                          BDY_KUBECONFIG_MAX_FILES);
            goto out;
        }
        char *text = NULL;
        size_t len = 0;
        rc = bdy_read_file(p, BDY_KUBECONFIG_MAX_BYTES, &text, &len);
        if (rc == BDY_ENOTFOUND)
            continue; /* skipped, as kubectl skips missing files in the list */
        if (rc != 0) {
            rc = bdy_fail(eb, rc, "%s: %s", p, bdy_strerror(rc));
            goto out;
        }
        kc_file *f = &files[nfiles];
        memset(f, 0, sizeof(*f));
        bdy_errbuf peb;
        bdy_errbuf_clear(&peb);
        rc = bdy_yaml_parse_one(text, len, &f->root, &peb);
        free(text);
        if (rc == 0 && f->root->kind != BDY_YNODE_MAP)
            rc = bdy_fail(&peb, BDY_EPARSE, "not a YAML mapping");
        if (rc != 0) {
            bdy_ynode_free(f->root);
            rc = bdy_fail(eb, rc, "%s: %s", p, peb.message);
            goto out;
        }
        const char *slash = strrchr(p, '/');
        if (slash != NULL)
            snprintf(f->dir, sizeof(f->dir), "%.*s", (int)(slash - p), p);
        if (slash == p)
            snprintf(f->dir, sizeof(f->dir), "/");
        nfiles++;
    }
    if (nfiles == 0) {
        rc = bdy_fail(eb, BDY_ENOTFOUND, "kubeconfig %s: no such file", paths);
        goto out;
    }
    if ((rc = resolve(files, nfiles, context, out, eb)) != 0)
        goto out;
    if ((rc = bdy_kubeconfig_read_files(out, eb)) != 0)
        bdy_kubeconfig_free(out);
out:
    for (size_t i = 0; i < nfiles; i++)
        bdy_ynode_free(files[i].root);
    free(list);
    return rc;
}

int bdy_kubeconfig_in_cluster(const char *sa_dir, bdy_kubeconfig *out, bdy_errbuf *eb)
{
    int rc = 0;
    memset(out, 0, sizeof(*out));
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    if (host == NULL || host[0] == '\0' || port == NULL || port[0] == '\0')
        return bdy_fail(eb, BDY_ENOTFOUND, "not in a cluster: KUBERNETES_SERVICE_HOST unset");
    const char *dir = sa_dir != NULL ? sa_dir : BDY_KUBE_SA_DIR;
    char url[KC_SERVER_MAX];
    /* An IPv6 service address needs brackets in a URL. */
    if (strchr(host, ':') != NULL)
        snprintf(url, sizeof(url), "https://[%s]:%s", host, port);
    else
        snprintf(url, sizeof(url), "https://%s:%s", host, port);
    if ((rc = check_server(url, eb)) != 0)
        return rc;
    char path[KC_PATH_MAX];
    out->context = strdup("");
    out->server = strdup(url);
    snprintf(path, sizeof(path), "%s/token", dir);
    out->token_file = strdup(path);
    snprintf(path, sizeof(path), "%s/ca.crt", dir);
    out->ca_file = strdup(path);
    if (out->context == NULL || out->server == NULL || out->token_file == NULL ||
        out->ca_file == NULL) {
        rc = BDY_ENOMEM;
        goto out;
    }
    const char *ns = getenv("POD_NAMESPACE");
    if (ns != NULL && ns[0] != '\0') {
        out->namespace_ = strdup(ns);
    } else {
        snprintf(path, sizeof(path), "%s/namespace", dir);
        size_t n = 0;
        if (bdy_read_file(path, 256, &out->namespace_, &n) == 0)
            trim_token(out->namespace_);
    }
    rc = bdy_kubeconfig_read_files(out, eb);
out:
    if (rc != 0)
        bdy_kubeconfig_free(out);
    return rc;
}

void bdy_kubeconfig_free(bdy_kubeconfig *kc)
{
    if (kc == NULL)
        return;
    free(kc->context);
    free(kc->server);
    free(kc->namespace_);
    free(kc->tls_server_name);
    free(kc->ca_file);
    free(kc->cert_file);
    free(kc->key_file);
    free(kc->token_file);
    free(kc->ca_pem);
    free(kc->cert_pem);
    if (kc->key_pem != NULL)
        memset(kc->key_pem, 0, kc->key_pem_len);
    free(kc->key_pem);
    if (kc->token != NULL)
        memset(kc->token, 0, strlen(kc->token));
    free(kc->token);
    memset(kc, 0, sizeof(*kc));
}
