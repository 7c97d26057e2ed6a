/* bindery-load-test: load and latency benchmarks for a Bindery installation
 * (embedded or on Kubernetes). See lt_usage() and the README. */
#include "loadtest.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LT_DEFAULT_SERVER "http://127.0.0.1:7780"

volatile int lt_interrupted;

static void on_signal(int sig)
{
    (void)sig;
    if (lt_interrupted < 2)
        lt_interrupted++;
}

static char *read_token_file(const char *path)
{
    char *t = NULL;
    size_t n = 0;
    int rc = bdy_read_file(path, BDY_KUBE_TOKEN_MAX, &t, &n);
    if (rc != 0) {
        fprintf(stderr, "bindery-load-test: --token-file %s: %s\n", path, bdy_strerror(rc));
        return NULL;
    }
    while (n > 0 && (t[n - 1] == '\n' || t[n - 1] == '\r' || t[n - 1] == ' '))
        t[--n] = '\0';
    if (n == 0) {
        fprintf(stderr, "bindery-load-test: --token-file %s is empty\n", path);
        free(t);
        return NULL;
    }
    return t;
}

/* Resolves where requests go and how they authenticate (see lt_usage). */
static int resolve_target(const lt_opts *o, lt_target *t)
{
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    t->request_timeout_s = o->request_timeout_s;
    t->connect_timeout_s = o->connect_timeout_s;
    t->insecure = o->insecure;
    if (o->cacert != NULL && (t->cacert = strdup(o->cacert)) == NULL)
        return -1;
    /* A kubeconfig is used when named, and for --worlds (like kubectl)
     * from $KUBECONFIG or ~/.kube/config when there is one. */
    const char *kc_path = o->kubeconfig;
    char home_kc[4096];
    if (kc_path == NULL && o->mode == LT_MODE_WORLDS && o->server == NULL) {
        const char *env = getenv("KUBECONFIG");
        const char *home = getenv("HOME");
        if (env != NULL && env[0] != '\0') {
            kc_path = env;
        } else if (home != NULL) {
            snprintf(home_kc, sizeof(home_kc), "%s/.kube/config", home);
            if (access(home_kc, R_OK) == 0)
                kc_path = home_kc;
        }
        if (kc_path == NULL && getenv("KUBERNETES_SERVICE_HOST") != NULL) {
            if (bdy_kubeconfig_in_cluster(NULL, &t->kc, &eb) != 0) {
                fprintf(stderr, "bindery-load-test: in-cluster config: %s\n", eb.message);
                return -1;
            }
        }
    }
    if (kc_path != NULL && bdy_kubeconfig_load(kc_path, o->context, &t->kc, &eb) != 0) {
        fprintf(stderr, "bindery-load-test: kubeconfig: %s\n", eb.message);
        return -1;
    }
    const char *base = o->server ? o->server : t->kc.server ? t->kc.server : LT_DEFAULT_SERVER;
    if ((t->base = strdup(base)) == NULL)
        return -1;
    size_t bl = strlen(t->base);
    while (bl > 0 && t->base[bl - 1] == '/')
        t->base[--bl] = '\0';
    const char *env_token = getenv("BINDERY_TOKEN");
    if (o->token_file != NULL) {
        if ((t->token = read_token_file(o->token_file)) == NULL)
            return -1;
    } else if (env_token != NULL && env_token[0] != '\0') {
        t->token = strdup(env_token);
    } else if (t->kc.token != NULL) {
        t->token = strdup(t->kc.token);
    }
    return 0;
}

int main(int argc, char **argv)
{
    lt_opts o;
    char err[512];
    int prc = lt_opts_parse(argc, argv, &o, stdout, err, sizeof(err));
    if (prc == 1)
        return LT_EXIT_OK;
    if (prc != 0) {
        fprintf(stderr, "bindery-load-test: %s\n(see bindery-load-test --help)\n", err);
        return LT_EXIT_USAGE;
    }
    int rc = LT_EXIT_OK;
    lt_target t = {0};
    lt_output out = {.progress = o.progress};
    lt_report *r = malloc(sizeof(*r)); /* two histograms: too big for the stack */
    if (r == NULL)
        return LT_EXIT_SETUP;
    lt_report_init(r, o.mode);
    if (out.progress == LT_PROGRESS_AUTO)
        out.progress = isatty(STDERR_FILENO) ? LT_PROGRESS_TTY : LT_PROGRESS_PLAIN;
    if (o.csv != NULL) {
        if ((out.csv = fopen(o.csv, "w")) == NULL) {
            fprintf(stderr, "bindery-load-test: --csv %s: cannot create the file\n", o.csv);
            rc = LT_EXIT_USAGE;
            goto out;
        }
        fputs("seq,op,start_s,latency_ms,status,result,detail\n", out.csv);
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (resolve_target(&o, &t) != 0) {
        rc = LT_EXIT_SETUP;
        goto out;
    }
    snprintf(r->target, sizeof(r->target), "%s", t.base);
    rc = o.mode == LT_MODE_WORLDS ? lt_run_worlds(&o, &t, &out, r)
                                  : lt_run_allocate(&o, &t, &out, r);
    if (rc != 0)
        goto out;
    if (o.json) {
        json_object *j = lt_report_json(r);
        printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN |
                                                             JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(j);
    } else {
        lt_report_print(r, stdout);
    }
    if (r->aborted)
        fprintf(stderr, "bindery-load-test: aborted: %s\n", r->abort_reason);
    rc = lt_report_exit_code(r, o.max_error_ratio);
out:
    if (out.csv != NULL && fclose(out.csv) != 0) {
        fprintf(stderr, "bindery-load-test: --csv %s: write failed\n", o.csv);
        rc = rc ? rc : LT_EXIT_ERRORS;
    }
    lt_target_free(&t);
    free(r);
    curl_global_cleanup();
    return rc;
}
