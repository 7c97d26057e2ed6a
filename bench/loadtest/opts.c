/* Command line of bindery-load-test. Every flag is checked here, so a run
 * never starts with a value it would misread. */
#include "loadtest.h"

#include "bindery/selector.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Room past waitSeconds for a cold claim's answer to arrive. */
#define COLD_ANSWER_MARGIN_S 5.0

void lt_usage(FILE *f)
{
    fputs(
        "usage: bindery-load-test [target] MODE [options]\n"
        "\n"
        "modes:\n"
        "  --worlds N --namespace NS   create N WorldInstances through the Kubernetes API, "
        "measure\n"
        "                              creation -> Ready by watching, then delete them\n"
        "  --mode allocate --pool P    claim worlds (POST /v1/allocations)\n"
        "  --mode churn --pool P       claim and release at once: every cycle deletes a world and\n"
        "                              the pool controller creates its replacement; reports\n"
        "                              reconcile lag from /metrics\n"
        "\n"
        "target:\n"
        "  --server URL                Bindery's base URL (default http://127.0.0.1:7780, or the\n"
        "                              kubeconfig's server for --worlds)\n"
        "  --kubeconfig FILE           Kubernetes API for --worlds ($KUBECONFIG, ~/.kube/config)\n"
        "  --context NAME              kubeconfig context (default: current-context)\n"
        "  --token-file FILE           bearer token (else $BINDERY_TOKEN, else the kubeconfig's)\n"
        "  --cacert FILE, --insecure   TLS trust for https servers\n"
        "\n"
        "load:\n"
        "  --rate R                    open loop: R requests/s on a fixed schedule; latency is\n"
        "                              measured from each request's scheduled time\n"
        "  --concurrency C             closed loop: C requests in flight (default 16; with "
        "--rate,\n"
        "                              the most connections)\n"
        "  --duration S | --count N    how long, or how many (default --duration 10)\n"
        "  --hold S                    release each claim S seconds after it was granted\n"
        "                              (default: allocate keeps its claims; churn releases at "
        "once)\n"
        "  --namespace NS --pool P     where to claim (namespace default: \"default\")\n"
        "  --selector SEL              ordered preference, repeatable: 'map=dust,tier in (gold)'\n"
        "                              or a JSON LabelSelector\n"
        "  --label K=V, --annotation K=V  metadata written onto claimed worlds (repeatable)\n"
        "  --claimant NAME             (default bindery-load-test)\n"
        "  --wait-seconds N            cold-claim wait (0..300, default 0)\n"
        "  --manifest NAME             worlds: ModuleManifest to run (default: the only one in "
        "NS)\n"
        "  --keep                      worlds: leave the worlds in place\n"
        "  --timeout S                 worlds: wait for Ready (default 300); churn: wait for the\n"
        "                              reconciler to drain (default 60)\n"
        "  --request-timeout S         per request (default 10, or --wait-seconds + 5);\n"
        "                              --connect-timeout S (default 5)\n"
        "  --max-inflight N            open loop: most requests in flight (default 4096)\n"
        "  --max-error-ratio F         exit 1 when more than this share of requests fail (0)\n"
        "\n"
        "output:\n"
        "  --json                      the final report as JSON on stdout\n"
        "  --csv FILE                  one row per request\n"
        "  --progress auto|tty|plain|off, --quiet\n"
        "\n"
        "exit: 0 done, 1 requests failed, 2 bad flags, 3 cannot start (unreachable, 401/403,\n"
        "unknown pool), 4 aborted\n",
        f);
}

static int bad(char *err, size_t errlen, const char *flag, const char *why, const char *got)
{
    if (got != NULL)
        snprintf(err, errlen, "%s: %s (got \"%.80s\")", flag, why, got);
    else
        snprintf(err, errlen, "%s: %s", flag, why);
    return -1;
}

static bool parse_double(const char *s, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || !isfinite(v) || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (s[0] == '\0' || !isdigit((unsigned char)s[0]))
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno != 0 || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* "k=v" with a non-empty key of label characters. */
static bool valid_kv(const char *s)
{
    const char *eq = strchr(s, '=');
    if (eq == NULL || eq == s || (size_t)(eq - s) > 253)
        return false;
    for (const char *p = s; p < eq; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.' && *p != '/')
            return false;
    return strlen(eq + 1) <= 4096;
}

/* Splits "--flag=value" so both spellings work. */
static const char *flag_value(int argc, char **argv, int *i, const char *eq)
{
    if (eq != NULL)
        return eq + 1;
    if (*i + 1 >= argc)
        return NULL;
    return argv[++*i];
}

int lt_opts_parse(int argc, char **argv, lt_opts *o, FILE *out, char *err, size_t errlen)
{
    memset(o, 0, sizeof(*o));
    o->hold_s = -1;
    o->request_timeout_s = 10;
    o->connect_timeout_s = 5;
    o->max_inflight = LT_MAX_INFLIGHT_DEFAULT;
    o->claimant = "bindery-load-test";
    bool mode_set = false;
    bool hold_set = false;
    bool timeout_set = false;
    bool request_timeout_set = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            lt_usage(out);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0)
            return bad(err, errlen, arg, "unexpected argument; flags start with --", NULL);
        char flag[64];
        const char *eq = strchr(arg, '=');
        snprintf(flag, sizeof(flag), "%.*s", (int)(eq ? (size_t)(eq - arg) : strlen(arg)), arg);
        /* Flags without a value. */
        if (strcmp(flag, "--insecure") == 0 || strcmp(flag, "--keep") == 0 ||
            strcmp(flag, "--json") == 0 || strcmp(flag, "--quiet") == 0) {
            if (eq != NULL)
                return bad(err, errlen, flag, "takes no value", NULL);
            if (strcmp(flag, "--insecure") == 0)
                o->insecure = true;
            else if (strcmp(flag, "--keep") == 0)
                o->keep = true;
            else if (strcmp(flag, "--json") == 0)
                o->json = true;
            else
                o->progress = LT_PROGRESS_OFF;
            continue;
        }
        static const char *const with_value[] = {"--mode",
                                                 "--worlds",
                                                 "--server",
                                                 "--kubeconfig",
                                                 "--context",
                                                 "--token-file",
                                                 "--cacert",
                                                 "--namespace",
                                                 "--pool",
                                                 "--manifest",
                                                 "--claimant",
                                                 "--selector",
                                                 "--label",
                                                 "--annotation",
                                                 "--rate",
                                                 "--concurrency",
                                                 "--duration",
                                                 "--count",
                                                 "--hold",
                                                 "--wait-seconds",
                                                 "--timeout",
                                                 "--request-timeout",
                                                 "--connect-timeout",
                                                 "--max-inflight",
                                                 "--max-error-ratio",
                                                 "--csv",
                                                 "--progress",
                                                 NULL};
        size_t k = 0;
        while (with_value[k] != NULL && strcmp(with_value[k], flag) != 0)
            k++;
        if (with_value[k] == NULL)
            return bad(err, errlen, flag, "unknown flag (see --help)", NULL);
        const char *v = flag_value(argc, argv, &i, eq);
        if (v == NULL)
            return bad(err, errlen, flag, "needs a value", NULL);
        double d = 0;
        uint64_t u = 0;
        if (strcmp(flag, "--mode") == 0) {
            if (strcmp(v, "allocate") == 0)
                o->mode = LT_MODE_ALLOCATE;
            else if (strcmp(v, "churn") == 0)
                o->mode = LT_MODE_CHURN;
            else if (strcmp(v, "worlds") == 0)
                o->mode = LT_MODE_WORLDS;
            else
                return bad(err, errlen, flag, "must be allocate, churn or worlds", v);
            if (mode_set && o->worlds > 0 && o->mode != LT_MODE_WORLDS)
                return bad(err, errlen, flag, "conflicts with --worlds", v);
            mode_set = true;
        } else if (strcmp(flag, "--worlds") == 0) {
            if (!parse_u64(v, 1, LT_MAX_WORLDS, &u))
                return bad(err, errlen, flag, "must be an integer from 1 to 100000", v);
            if (mode_set && o->mode != LT_MODE_WORLDS)
                return bad(err, errlen, flag, "conflicts with --mode", v);
            o->worlds = (unsigned)u;
            o->mode = LT_MODE_WORLDS;
            mode_set = true;
        } else if (strcmp(flag, "--server") == 0) {
            if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)
                return bad(err, errlen, flag, "must be an http:// or https:// URL", v);
            o->server = v;
        } else if (strcmp(flag, "--kubeconfig") == 0) {
            o->kubeconfig = v;
        } else if (strcmp(flag, "--context") == 0) {
            o->context = v;
        } else if (strcmp(flag, "--token-file") == 0) {
            o->token_file = v;
        } else if (strcmp(flag, "--cacert") == 0) {
            o->cacert = v;
        } else if (strcmp(flag, "--namespace") == 0 || strcmp(flag, "--pool") == 0 ||
                   strcmp(flag, "--manifest") == 0) {
            size_t n = strlen(v);
            bool ok = n > 0 && n <= 253;
            for (size_t k = 0; ok && k < n; k++)
                ok = islower((unsigned char)v[k]) || isdigit((unsigned char)v[k]) || v[k] == '-' ||
                     v[k] == '.';
            if (!ok)
                return bad(err, errlen, flag, "must be a lower-case DNS name", v);
            if (strcmp(flag, "--namespace") == 0)
                o->namespace_ = v;
            else if (strcmp(flag, "--pool") == 0)
                o->pool = v;
            else
                o->manifest = v;
        } else if (strcmp(flag, "--claimant") == 0) {
            if (strlen(v) == 0 || strlen(v) > 253)
                return bad(err, errlen, flag, "must be 1 to 253 characters", v);
            o->claimant = v;
        } else if (strcmp(flag, "--selector") == 0) {
            if (o->nselectors == LT_MAX_SELECTORS)
                return bad(err, errlen, flag, "at most 8 selectors", NULL);
            json_object *sel = NULL;
            char why[256];
            if (lt_selector_to_json(v, &sel, why, sizeof(why)) != 0)
                return bad(err, errlen, flag, why, v);
            json_object_put(sel);
            o->selectors[o->nselectors++] = v;
        } else if (strcmp(flag, "--label") == 0 || strcmp(flag, "--annotation") == 0) {
            bool label = strcmp(flag, "--label") == 0;
            if (!valid_kv(v))
                return bad(err, errlen, flag, "must be KEY=VALUE", v);
            if ((label ? o->nlabels : o->nannotations) == LT_MAX_KV)
                return bad(err, errlen, flag, "at most 32", NULL);
            if (label)
                o->labels[o->nlabels++] = v;
            else
                o->annotations[o->nannotations++] = v;
        } else if (strcmp(flag, "--rate") == 0) {
            if (!parse_double(v, 0.001, 1e6, &d))
                return bad(err, errlen, flag, "must be a number from 0.001 to 1000000", v);
            o->rate = d;
        } else if (strcmp(flag, "--concurrency") == 0) {
            if (!parse_u64(v, 1, 10000, &u))
                return bad(err, errlen, flag, "must be an integer from 1 to 10000", v);
            o->concurrency = (unsigned)u;
        } else if (strcmp(flag, "--duration") == 0) {
            if (!parse_double(v, 0.001, 7 * 86400, &d))
                return bad(err, errlen, flag, "must be seconds, more than 0, at most a week", v);
            o->duration_s = d;
        } else if (strcmp(flag, "--count") == 0) {
            if (!parse_u64(v, 1, 1000000000, &u))
                return bad(err, errlen, flag, "must be an integer from 1 to 1000000000", v);
            o->count = u;
        } else if (strcmp(flag, "--hold") == 0) {
            if (!parse_double(v, 0, 86400, &d))
                return bad(err, errlen, flag, "must be seconds from 0 to 86400", v);
            o->hold_s = d;
            hold_set = true;
        } else if (strcmp(flag, "--wait-seconds") == 0) {
            if (!parse_u64(v, 0, 300, &u))
                return bad(err, errlen, flag, "must be an integer from 0 to 300", v);
            o->wait_seconds = (unsigned)u;
        } else if (strcmp(flag, "--timeout") == 0) {
            if (!parse_double(v, 0.1, 86400, &d))
                return bad(err, errlen, flag, "must be seconds from 0.1 to 86400", v);
            o->timeout_s = d;
            timeout_set = true;
        } else if (strcmp(flag, "--request-timeout") == 0) {
            if (!parse_double(v, 0.01, 3600, &d))
                return bad(err, errlen, flag, "must be seconds from 0.01 to 3600", v);
            o->request_timeout_s = d;
            request_timeout_set = true;
        } else if (strcmp(flag, "--connect-timeout") == 0) {
            if (!parse_double(v, 0.01, 600, &d))
                return bad(err, errlen, flag, "must be seconds from 0.01 to 600", v);
            o->connect_timeout_s = d;
        } else if (strcmp(flag, "--max-inflight") == 0) {
            if (!parse_u64(v, 1, 100000, &u))
                return bad(err, errlen, flag, "must be an integer from 1 to 100000", v);
            o->max_inflight = (unsigned)u;
        } else if (strcmp(flag, "--max-error-ratio") == 0) {
            if (!parse_double(v, 0, 1, &d))
                return bad(err, errlen, flag, "must be a number from 0 to 1", v);
            o->max_error_ratio = d;
        } else if (strcmp(flag, "--csv") == 0) {
            o->csv = v;
        } else if (strcmp(flag, "--progress") == 0) {
            if (strcmp(v, "auto") == 0)
                o->progress = LT_PROGRESS_AUTO;
            else if (strcmp(v, "tty") == 0)
                o->progress = LT_PROGRESS_TTY;
            else if (strcmp(v, "plain") == 0)
                o->progress = LT_PROGRESS_PLAIN;
            else if (strcmp(v, "off") == 0)
                o->progress = LT_PROGRESS_OFF;
            else
                return bad(err, errlen, flag, "must be auto, tty, plain or off", v);
        } else {
            return bad(err, errlen, flag, "unknown flag (see --help)", NULL);
        }
    }
    if (!mode_set)
        return bad(err, errlen, "mode", "choose --worlds N, --mode allocate or --mode churn", NULL);
    if (o->mode == LT_MODE_WORLDS) {
        if (o->worlds == 0)
            return bad(err, errlen, "--mode worlds", "needs --worlds N", NULL);
        if (o->nselectors > 0 || hold_set || o->count > 0 || o->duration_s > 0)
            return bad(err, errlen, "--worlds",
                       "--selector, --hold, --count and --duration are for allocate and churn",
                       NULL);
        if (o->concurrency == 0)
            o->concurrency = 10;
        /* A pool no config names: the worlds are started and watched but
         * never handed to a claim, and the pool controller leaves them be. */
        if (o->pool == NULL)
            o->pool = "bindery-load-test";
        if (!timeout_set)
            o->timeout_s = 300;
        return 0;
    }
    if (o->keep || o->manifest != NULL)
        return bad(err, errlen, o->keep ? "--keep" : "--manifest", "is for --worlds", NULL);
    if (o->pool == NULL)
        return bad(err, errlen, "--pool", "is required for allocate and churn", NULL);
    if (o->count == 0 && o->duration_s == 0)
        o->duration_s = 10;
    if (o->concurrency == 0)
        o->concurrency = o->rate > 0 ? 64 : 16;
    if (o->mode == LT_MODE_CHURN && !hold_set)
        o->hold_s = 0;
    if (!timeout_set)
        o->timeout_s = 60;
    /* A cold claim is answered up to waitSeconds later: a shorter request
     * timeout would report every slow cold start as a transport error. */
    double needed = o->wait_seconds + COLD_ANSWER_MARGIN_S;
    if (o->wait_seconds > 0 && o->request_timeout_s < needed) {
        if (request_timeout_set)
            return bad(err, errlen, "--request-timeout",
                       "must leave room for --wait-seconds (at least it plus 5 s)", NULL);
        o->request_timeout_s = needed;
    }
    return 0;
}

/* ---- selectors ----------------------------------------------------------------- */

/* Copies the trimmed text [s, e) into a new json string. */
static json_object *jstr_range(const char *s, const char *e)
{
    while (s < e && isspace((unsigned char)*s))
        s++;
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    return json_object_new_string_len(s, (int)(e - s));
}

static json_object *values_of(const char *open, const char *close)
{
    json_object *arr = json_object_new_array();
    const char *p = open + 1;
    while (p <= close) {
        const char *c = memchr(p, ',', (size_t)(close - p));
        const char *e = c != NULL ? c : close;
        json_object_array_add(arr, jstr_range(p, e));
        p = e + 1;
    }
    return arr;
}

static void add_expr(json_object *exprs, json_object *key, const char *op, json_object *values)
{
    json_object *x = json_object_new_object();
    json_object_object_add(x, "key", key);
    json_object_object_add(x, "operator", json_object_new_string(op));
    if (values != NULL)
        json_object_object_add(x, "values", values);
    json_object_array_add(exprs, x);
}

/* Converts one term of the string syntax (already validated by the
 * selector parser, so its shape is known). */
static void convert_term(const char *s, const char *e, json_object *ml, json_object *exprs)
{
    while (s < e && isspace((unsigned char)*s))
        s++;
    const char *paren = memchr(s, '(', (size_t)(e - s));
    if (paren != NULL) {
        const char *close = memchr(paren, ')', (size_t)(e - paren));
        const char *k_end = s;
        while (k_end < paren && !isspace((unsigned char)*k_end))
            k_end++;
        const char *opw = k_end;
        while (opw < paren && isspace((unsigned char)*opw))
            opw++;
        bool notin = strncmp(opw, "notin", 5) == 0;
        add_expr(exprs, jstr_range(s, k_end), notin ? "NotIn" : "In",
                 values_of(paren, close != NULL ? close : e));
        return;
    }
    const char *ne = NULL;
    for (const char *p = s; p + 1 < e; p++)
        if (p[0] == '!' && p[1] == '=')
            ne = p;
    if (ne != NULL) {
        json_object *vals = json_object_new_array();
        json_object_array_add(vals, jstr_range(ne + 2, e));
        add_expr(exprs, jstr_range(s, ne), "NotIn", vals);
        return;
    }
    const char *eq = memchr(s, '=', (size_t)(e - s));
    if (eq != NULL) {
        const char *v = eq + 1;
        if (v < e && *v == '=')
            v++;
        json_object *key = jstr_range(s, eq);
        json_object_object_add(ml, json_object_get_string(key), jstr_range(v, e));
        json_object_put(key);
        return;
    }
    if (*s == '!')
        add_expr(exprs, jstr_range(s + 1, e), "DoesNotExist", NULL);
    else
        add_expr(exprs, jstr_range(s, e), "Exists", NULL);
}

int lt_selector_to_json(const char *text, json_object **out, char *err, size_t errlen)
{
    *out = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    bdy_label_selector *sel = NULL;
    const char *p = text;
    while (isspace((unsigned char)*p))
        p++;
    if (*p == '{') {
        json_object *j = json_tokener_parse(p);
        if (j == NULL || !json_object_is_type(j, json_type_object)) {
            json_object_put(j);
            snprintf(err, errlen, "not a JSON object");
            return -1;
        }
        if (bdy_label_selector_from_json(j, &sel, &eb) != 0) {
            json_object_put(j);
            snprintf(err, errlen, "%s", eb.message);
            return -1;
        }
        bdy_label_selector_free(sel);
        *out = j;
        return 0;
    }
    if (strlen(text) > BDY_SELECTOR_MAX_TEXT || bdy_label_selector_parse(text, &sel, &eb) != 0) {
        snprintf(err, errlen, "%s", eb.message[0] ? eb.message : "selector too long");
        return -1;
    }
    bool empty = bdy_label_selector_is_empty(sel);
    bdy_label_selector_free(sel);
    if (empty) {
        snprintf(err, errlen, "empty selector");
        return -1;
    }
    json_object *ml = json_object_new_object();
    json_object *exprs = json_object_new_array();
    int depth = 0;
    const char *start = text;
    for (const char *q = text;; q++) {
        if (*q == '(')
            depth++;
        else if (*q == ')')
            depth--;
        if ((*q == ',' && depth == 0) || *q == '\0') {
            if (q > start)
                convert_term(start, q, ml, exprs);
            if (*q == '\0')
                break;
            start = q + 1;
        }
    }
    json_object *j = json_object_new_object();
    if (json_object_object_length(ml) > 0)
        json_object_object_add(j, "matchLabels", ml);
    else
        json_object_put(ml);
    if (json_object_array_length(exprs) > 0)
        json_object_object_add(j, "matchExpressions", exprs);
    else
        json_object_put(exprs);
    *out = j;
    return 0;
}
