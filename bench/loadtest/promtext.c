/* A reader for the Prometheus text exposition format (0.0.4), enough to
 * take counters, gauges and histogram buckets out of /metrics. Outside
 * input: every line, name, label and the sample count are capped. */
#include "loadtest.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, unsigned line, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "line %u: %s", line, msg);
    return -1;
}

static void sample_free(lt_metric_sample *s)
{
    free(s->name);
    for (size_t i = 0; i < s->nlabels; i++) {
        free(s->labels[i].name);
        free(s->labels[i].value);
    }
}

void lt_metrics_free(lt_metrics *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n; i++)
        sample_free(&m->items[i]);
    free(m->items);
    memset(m, 0, sizeof(*m));
}

static bool name_start(char c)
{
    return isalpha((unsigned char)c) || c == '_' || c == ':';
}

static bool name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == ':';
}

/* Reads a metric or label name at *p (end e) into a new string. */
static char *read_name(const char **p, const char *e, bool metric)
{
    const char *s = *p;
    if (s >= e || !name_start(*s) || (!metric && *s == ':'))
        return NULL;
    const char *q = s;
    while (q < e && name_char(*q) && (metric || *q != ':'))
        q++;
    if ((size_t)(q - s) > LT_METRIC_NAME_MAX)
        return NULL;
    *p = q;
    return strndup(s, (size_t)(q - s));
}

/* Reads a quoted label value with escapes. */
static char *read_value(const char **p, const char *e)
{
    const char *q = *p;
    if (q >= e || *q != '"')
        return NULL;
    q++;
    char buf[LT_METRIC_VALUE_MAX + 1];
    size_t n = 0;
    while (q < e && *q != '"') {
        char c = *q++;
        if (c == '\\') {
            if (q >= e)
                return NULL;
            char x = *q++;
            c = x == 'n' ? '\n' : x; /* \\ and \" stand for themselves */
            if (x != 'n' && x != '\\' && x != '"')
                return NULL;
        }
        if (n == LT_METRIC_VALUE_MAX)
            return NULL;
        buf[n++] = c;
    }
    if (q >= e)
        return NULL;
    *p = q + 1;
    buf[n] = '\0';
    return strdup(buf);
}

static void skip_blank(const char **p, const char *e)
{
    while (*p < e && (**p == ' ' || **p == '\t'))
        (*p)++;
}

/* Parses a sample value: a float, NaN, +Inf or -Inf. */
static bool read_number(const char **p, const char *e, double *out)
{
    char buf[64];
    const char *s = *p;
    size_t n = 0;
    while (s + n < e && s[n] != ' ' && s[n] != '\t') {
        if (n == sizeof(buf) - 1)
            return false;
        buf[n] = s[n];
        n++;
    }
    if (n == 0)
        return false;
    buf[n] = '\0';
    if (strcmp(buf, "+Inf") == 0 || strcmp(buf, "Inf") == 0) {
        *out = INFINITY;
    } else if (strcmp(buf, "-Inf") == 0) {
        *out = -INFINITY;
    } else if (strcmp(buf, "NaN") == 0) {
        *out = NAN;
    } else {
        char *end = NULL;
        errno = 0;
        *out = strtod(buf, &end);
        if (end == buf || *end != '\0')
            return false;
    }
    *p = s + n;
    return true;
}

static int parse_line(const char *s, const char *e, lt_metric_sample *smp, unsigned line, char *err,
                      size_t errlen)
{
    const char *p = s;
    memset(smp, 0, sizeof(*smp));
    if ((smp->name = read_name(&p, e, true)) == NULL)
        return fail(err, errlen, line, "bad metric name");
    if (p < e && *p == '{') {
        p++;
        for (;;) {
            skip_blank(&p, e);
            if (p < e && *p == '}') {
                p++;
                break;
            }
            if (smp->nlabels == LT_METRIC_MAX_LABELS)
                return fail(err, errlen, line, "more than %d labels", LT_METRIC_MAX_LABELS);
            lt_metric_label *l = &smp->labels[smp->nlabels];
            if ((l->name = read_name(&p, e, false)) == NULL)
                return fail(err, errlen, line, "bad label name");
            smp->nlabels++;
            skip_blank(&p, e);
            if (p >= e || *p != '=')
                return fail(err, errlen, line, "expected = after label %s", l->name);
            p++;
            skip_blank(&p, e);
            if ((l->value = read_value(&p, e)) == NULL)
                return fail(err, errlen, line, "bad value for label %s", l->name);
            skip_blank(&p, e);
            if (p < e && *p == ',') {
                p++;
                continue;
            }
            if (p < e && *p == '}') {
                p++;
                break;
            }
            return fail(err, errlen, line, "expected , or } after label %s", l->name);
        }
    }
    if (p >= e || (*p != ' ' && *p != '\t'))
        return fail(err, errlen, line, "expected a space before the value");
    skip_blank(&p, e);
    if (!read_number(&p, e, &smp->value))
        return fail(err, errlen, line, "bad sample value");
    skip_blank(&p, e);
    if (p < e) {
        double ts = 0; /* an optional timestamp, ignored */
        if (!read_number(&p, e, &ts))
            return fail(err, errlen, line, "bad timestamp");
        skip_blank(&p, e);
        if (p < e)
            return fail(err, errlen, line, "text after the timestamp");
    }
    return 0;
}

int lt_metrics_parse(const char *text, size_t len, lt_metrics *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (len > LT_METRICS_MAX_BYTES) {
        snprintf(err, errlen, "metrics text larger than %zu bytes", LT_METRICS_MAX_BYTES);
        return -1;
    }
    const char *p = text;
    const char *end = text + len;
    unsigned line = 0;
    while (p < end) {
        line++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl != NULL ? nl : end;
        const char *s = p;
        p = nl != NULL ? nl + 1 : end;
        if (e > s && e[-1] == '\r')
            e--;
        skip_blank(&s, e);
        if (s == e || *s == '#')
            continue;
        if (memchr(s, '\0', (size_t)(e - s)) != NULL) {
            fail(err, errlen, line, "NUL byte");
            goto fail;
        }
        if (out->n == LT_METRICS_MAX_SAMPLES) {
            fail(err, errlen, line, "more than %d samples", LT_METRICS_MAX_SAMPLES);
            goto fail;
        }
        if (out->n == out->alloc) {
            size_t na = out->alloc ? out->alloc * 2 : 64;
            lt_metric_sample *ni = realloc(out->items, na * sizeof(*ni));
            if (ni == NULL) {
                snprintf(err, errlen, "out of memory");
                goto fail;
            }
            out->items = ni;
            out->alloc = na;
        }
        lt_metric_sample *smp = &out->items[out->n];
        if (parse_line(s, e, smp, line, err, errlen) != 0) {
            sample_free(smp);
            goto fail;
        }
        out->n++;
    }
    return 0;
fail:
    lt_metrics_free(out);
    return -1;
}

static const char *label_of(const lt_metric_sample *s, const char *name)
{
    for (size_t i = 0; i < s->nlabels; i++)
        if (strcmp(s->labels[i].name, name) == 0)
            return s->labels[i].value;
    return NULL;
}

/* True when s carries every "k=v" of match. */
static bool matches(const lt_metric_sample *s, const char *const *match)
{
    for (size_t i = 0; match != NULL && match[i] != NULL; i++) {
        const char *eq = strchr(match[i], '=');
        if (eq == NULL)
            return false;
        bool hit = false;
        for (size_t j = 0; j < s->nlabels && !hit; j++)
            hit = strlen(s->labels[j].name) == (size_t)(eq - match[i]) &&
                  strncmp(s->labels[j].name, match[i], (size_t)(eq - match[i])) == 0 &&
                  strcmp(s->labels[j].value, eq + 1) == 0;
        if (!hit)
            return false;
    }
    return true;
}

double lt_metrics_sum(const lt_metrics *m, const char *name, const char *const *match, bool *found)
{
    double sum = 0;
    bool any = false;
    for (size_t i = 0; m != NULL && i < m->n; i++) {
        if (strcmp(m->items[i].name, name) == 0 && matches(&m->items[i], match)) {
            sum += m->items[i].value;
            any = true;
        }
    }
    if (found != NULL)
        *found = any;
    return sum;
}

#define HQ_MAX_BUCKETS 64

typedef struct hq_bucket {
    double le;
    double count;
} hq_bucket;

/* Adds every bucket of base (summed over label sets matching match) into b. */
static size_t collect(const lt_metrics *m, const char *base, const char *const *match, hq_bucket *b,
                      size_t nb, double sign)
{
    char name[LT_METRIC_NAME_MAX + 16];
    snprintf(name, sizeof(name), "%s_bucket", base);
    for (size_t i = 0; m != NULL && i < m->n; i++) {
        const lt_metric_sample *s = &m->items[i];
        if (strcmp(s->name, name) != 0 || !matches(s, match))
            continue;
        const char *le_text = label_of(s, "le");
        if (le_text == NULL)
            continue;
        double le = strcmp(le_text, "+Inf") == 0 ? INFINITY : strtod(le_text, NULL);
        size_t j = 0;
        while (j < nb && b[j].le != le)
            j++;
        if (j == nb) {
            if (nb == HQ_MAX_BUCKETS)
                continue;
            b[nb].le = le;
            b[nb].count = 0;
            nb++;
        }
        b[j].count += sign * s->value;
    }
    return nb;
}

static int cmp_bucket(const void *a, const void *b)
{
    double x = ((const hq_bucket *)a)->le;
    double y = ((const hq_bucket *)b)->le;
    return x < y ? -1 : x > y;
}

double lt_metrics_hist_quantile(const lt_metrics *before, const lt_metrics *after, const char *base,
                                const char *const *match, double q)
{
    hq_bucket b[HQ_MAX_BUCKETS];
    size_t nb = collect(after, base, match, b, 0, 1.0);
    nb = collect(before, base, match, b, nb, -1.0);
    if (nb == 0)
        return -1;
    qsort(b, nb, sizeof(b[0]), cmp_bucket);
    double total = b[nb - 1].count; /* buckets are cumulative; the last is +Inf */
    if (total <= 0)
        return -1;
    double rank = q * total;
    double prev_le = 0;
    double prev_count = 0;
    for (size_t i = 0; i < nb; i++) {
        if (b[i].count >= rank) {
            if (isinf(b[i].le))
                return prev_le; /* beyond the last finite bound: its bound */
            double in_bucket = b[i].count - prev_count;
            double frac = in_bucket > 0 ? (rank - prev_count) / in_bucket : 1;
            return prev_le + (b[i].le - prev_le) * frac;
        }
        prev_le = b[i].le;
        prev_count = b[i].count;
    }
    return prev_le;
}
