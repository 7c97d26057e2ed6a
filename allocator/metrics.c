/* Prometheus metrics registry and text exposition (format 0.0.4).
 *
 * Locking: the registry mutex guards the family list; each family's mutex
 * guards its child list and lookup table. Lock order is registry, then
 * family (only rendering holds both). Sample values are atomics so updates
 * never take a lock. Doubles live in _Atomic uint64_t as their bit pattern
 * because C11 has no portable atomic double with fetch-add.
 */
#include "bindery/metrics.h"

#include "bindery/error.h"
#include "bindery/log.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Label values come from runtime data (pool names, routes); a value longer
 * than this is refused rather than stored. */
#define METRICS_MAX_LABEL_VALUE_LEN 1024
/* Metric and label names come from code, but still get a bound. */
#define METRICS_MAX_NAME_LEN 200
#define METRICS_MAX_HELP_LEN 1024
/* Child lookup hash table size per family (chained; up to METRICS_MAX_KEPT
 * entries, hidden ones included, so chains stay short). */
#define METRICS_HASH_BUCKETS 2048
/* Series a family keeps, hidden ones included (each a few hundred bytes). */
#define METRICS_MAX_KEPT ((size_t)8 * BDY_METRICS_MAX_CHILDREN)
/* Label pairs hidden at once (removed pools); past it the oldest is
 * forgotten, and a series of it made afresh is shown again. */
#define METRICS_MAX_HIDDEN_PAIRS 1024

typedef enum metric_kind {
    METRIC_COUNTER,
    METRIC_GAUGE,
    METRIC_HISTOGRAM,
} metric_kind;

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

struct bdy_metric {
    bdy_metric_family *family;
    bdy_metric *next;      /* creation order */
    bdy_metric *hash_next; /* lookup chain */
    uint64_t hash;
    bool hidden; /* not exported (under the family's lock; see bdy_metrics_hide_series) */
    char *values[BDY_METRICS_MAX_LABELS]; /* point into the same allocation */
    /* Counter/gauge: the value. Histogram: the sum of observations. */
    _Atomic uint64_t bits;
    /* Histogram only: per-bucket (non-cumulative) counts, nbounds + 1
     * entries, the last being the +Inf bucket. */
    _Atomic uint64_t counts[];
};

struct bdy_metric_family {
    bdy_metrics *owner;
    bdy_metric_family *next; /* registration order */
    metric_kind kind;
    char *name;
    char *help;
    size_t nlabels;
    char *labels[BDY_METRICS_MAX_LABELS];
    size_t nbounds;
    double bounds[BDY_METRICS_MAX_BUCKETS];

    pthread_mutex_t lock; /* guards everything below */
    bdy_metric *head;
    bdy_metric *tail;
    size_t nchildren;
    size_t nhidden;    /* of them hidden (bdy_metrics_hide_series) */
    bool guard_logged; /* the cardinality guard warns once per family */
    bdy_metric *table[METRICS_HASH_BUCKETS];
};

/* Series with label_a = value_a and label_b = value_b are hidden. */
typedef struct hidden_pair {
    struct hidden_pair *next;
    char *label_a, *value_a, *label_b, *value_b; /* into the same allocation */
} hidden_pair;

struct bdy_metrics {
    pthread_mutex_t lock; /* guards the family list */
    bdy_metric_family *head;
    bdy_metric_family *tail;
    /* What bdy_metrics_hide_series hid and bdy_metrics_show_series did not
     * show again, newest first: a series made for such a pair later (a
     * late count for a removed pool) is born hidden. Taken after a
     * family's lock, never before it. */
    pthread_mutex_t hidden_lock;
    hidden_pair *hidden;
    size_t nhidden_pairs;
};

static uint64_t double_bits(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof(u));
    return u;
}

static double bits_double(uint64_t u)
{
    double v;
    memcpy(&v, &u, sizeof(v));
    return v;
}

/* Lock-free v += delta on a double stored as bits. Thread-safe. */
static void atomic_add_double(_Atomic uint64_t *p, double delta)
{
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
    for (;;) {
        uint64_t next = double_bits(bits_double(old) + delta);
        if (atomic_compare_exchange_weak_explicit(p, &old, next, memory_order_relaxed,
                                                  memory_order_relaxed))
            return;
    }
}

bdy_metrics *bdy_metrics_new(void)
{
    bdy_metrics *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return NULL;
    }
    if (pthread_mutex_init(&m->hidden_lock, NULL) != 0) {
        pthread_mutex_destroy(&m->lock);
        free(m);
        return NULL;
    }
    return m;
}

static void family_free(bdy_metric_family *f)
{
    if (f == NULL)
        return;
    bdy_metric *c = f->head;
    while (c != NULL) {
        bdy_metric *next = c->next;
        free(c);
        c = next;
    }
    for (size_t i = 0; i < f->nlabels; i++)
        free(f->labels[i]);
    free(f->name);
    free(f->help);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

/* Frees the registry with every family and child. The caller guarantees no
 * other thread still uses m or any pointer obtained from it. */
void bdy_metrics_free(bdy_metrics *m)
{
    if (m == NULL)
        return;
    bdy_metric_family *f = m->head;
    while (f != NULL) {
        bdy_metric_family *next = f->next;
        family_free(f);
        f = next;
    }
    while (m->hidden != NULL) {
        hidden_pair *next = m->hidden->next;
        free(m->hidden);
        m->hidden = next;
    }
    pthread_mutex_destroy(&m->hidden_lock);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static bool is_name_char(char c, bool first, bool allow_colon)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
        return true;
    if (allow_colon && c == ':')
        return true;
    return !first && c >= '0' && c <= '9';
}

/* Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; label names: [a-zA-Z_][a-zA-Z0-9_]*
 * without the reserved "__" prefix. */
static bool valid_name(const char *s, bool is_label)
{
    if (s == NULL || s[0] == '\0' || strlen(s) > METRICS_MAX_NAME_LEN)
        return false;
    if (is_label && s[0] == '_' && s[1] == '_')
        return false;
    for (size_t i = 0; s[i] != '\0'; i++) {
        if (!is_name_char(s[i], i == 0, !is_label))
            return false;
    }
    return true;
}

static bdy_metric *child_alloc(bdy_metric_family *f, const char *const *values, uint64_t hash)
{
    size_t ncounts = f->kind == METRIC_HISTOGRAM ? f->nbounds + 1 : 0;
    size_t head = sizeof(bdy_metric) + ncounts * sizeof(_Atomic uint64_t);
    size_t total = head;
    for (size_t i = 0; i < f->nlabels; i++)
        total += strlen(values[i]) + 1;
    bdy_metric *c = calloc(1, total);
    if (c == NULL)
        return NULL;
    c->family = f;
    c->hash = hash;
    atomic_init(&c->bits, double_bits(0.0));
    for (size_t i = 0; i < ncounts; i++)
        atomic_init(&c->counts[i], 0);
    char *p = (char *)c + head;
    for (size_t i = 0; i < f->nlabels; i++) {
        size_t n = strlen(values[i]) + 1;
        memcpy(p, values[i], n);
        c->values[i] = p;
        p += n;
    }
    return c;
}

/* FNV-1a over the label values, each followed by a NUL so ("ab","c") and
 * ("a","bc") differ. */
static uint64_t hash_values(size_t n, const char *const *values)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *s = (const unsigned char *)values[i];
        do {
            h ^= *s;
            h *= 1099511628211ull;
        } while (*s++ != '\0');
    }
    return h;
}

/* Appends a child to f. Caller holds f->lock (or is the only user during
 * registration). */
static void family_link_child(bdy_metric_family *f, bdy_metric *c)
{
    size_t slot = c->hash % METRICS_HASH_BUCKETS;
    c->hash_next = f->table[slot];
    f->table[slot] = c;
    if (f->tail != NULL)
        f->tail->next = c;
    else
        f->head = c;
    f->tail = c;
    f->nchildren++;
}

/* Same type, label names and buckets (help text aside). */
static bool same_definition(const bdy_metric_family *a, const bdy_metric_family *b)
{
    if (a->kind != b->kind || a->nlabels != b->nlabels || a->nbounds != b->nbounds)
        return false;
    for (size_t i = 0; i < a->nlabels; i++) {
        if (strcmp(a->labels[i], b->labels[i]) != 0)
            return false;
    }
    for (size_t i = 0; i < a->nbounds; i++) {
        if (a->bounds[i] != b->bounds[i])
            return false;
    }
    return true;
}

/* Registers a family. Registering a name again with the same definition
 * returns the existing family, so two components (or two HTTP servers) can
 * share one; with a different definition it is refused. Also refuses (NULL)
 * bad names, more than BDY_METRICS_MAX_LABELS labels, duplicate label names,
 * "le" on a histogram, and bounds that are not finite and strictly
 * increasing. Thread-safe. */
static bdy_metric_family *family_register(bdy_metrics *m, metric_kind kind, const char *name,
                                          const char *help, const char *const *label_names,
                                          const double *bounds, size_t nbounds)
{
    bdy_metric_family *f = NULL;
    bdy_metric_family *result = NULL;

    if (m == NULL || !valid_name(name, false) || nbounds > BDY_METRICS_MAX_BUCKETS ||
        (nbounds > 0 && bounds == NULL))
        goto out;
    if (help != NULL && strlen(help) > METRICS_MAX_HELP_LEN)
        goto out;
    for (size_t i = 0; i < nbounds; i++) {
        if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
            goto out;
    }
    f = calloc(1, sizeof(*f));
    if (f == NULL)
        goto out;
    f->owner = m;
    if (pthread_mutex_init(&f->lock, NULL) != 0) {
        free(f);
        f = NULL;
        goto out;
    }
    f->kind = kind;
    f->name = strdup(name);
    f->help = strdup(help != NULL ? help : "");
    if (f->name == NULL || f->help == NULL)
        goto out;
    for (size_t i = 0; label_names != NULL && label_names[i] != NULL; i++) {
        if (i >= BDY_METRICS_MAX_LABELS || !valid_name(label_names[i], true))
            goto out;
        if (kind == METRIC_HISTOGRAM && strcmp(label_names[i], "le") == 0)
            goto out;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(label_names[j], label_names[i]) == 0)
                goto out;
        }
        f->labels[i] = strdup(label_names[i]);
        if (f->labels[i] == NULL)
            goto out;
        f->nlabels = i + 1;
    }
    f->nbounds = nbounds;
    for (size_t i = 0; i < nbounds; i++)
        f->bounds[i] = bounds[i];
    /* A family without labels has exactly one child; creating it now makes
     * it render as 0 from the start, as Prometheus clients do. */
    if (f->nlabels == 0) {
        bdy_metric *c = child_alloc(f, NULL, hash_values(0, NULL));
        if (c == NULL)
            goto out;
        family_link_child(f, c);
    }

    pthread_mutex_lock(&m->lock);
    bool taken = false;
    for (bdy_metric_family *g = m->head; g != NULL && !taken; g = g->next) {
        if (strcmp(g->name, name) != 0)
            continue;
        taken = true;
        if (same_definition(g, f))
            result = g;
    }
    if (!taken) {
        if (m->tail != NULL)
            m->tail->next = f;
        else
            m->head = f;
        m->tail = f;
        result = f;
        f = NULL;
    }
    pthread_mutex_unlock(&m->lock);
    if (taken && result == NULL)
        bdy_warn("metrics",
                 "metric family %s registered twice with different labels, type "
                 "or buckets",
                 name);
out:
    family_free(f);
    return result;
}

bdy_metric_family *bdy_metrics_counter(bdy_metrics *m, const char *name, const char *help,
                                       const char *const *label_names)
{
    return family_register(m, METRIC_COUNTER, name, help, label_names, NULL, 0);
}

bdy_metric_family *bdy_metrics_gauge(bdy_metrics *m, const char *name, const char *help,
                                     const char *const *label_names)
{
    return family_register(m, METRIC_GAUGE, name, help, label_names, NULL, 0);
}

bdy_metric_family *bdy_metrics_histogram(bdy_metrics *m, const char *name, const char *help,
                                         const char *const *label_names, const double *bounds,
                                         size_t nbounds)
{
    return family_register(m, METRIC_HISTOGRAM, name, help, label_names, bounds, nbounds);
}

/* Finds or creates the child for label_values (f->nlabels strings, none
 * NULL, each at most METRICS_MAX_LABEL_VALUE_LEN bytes). Returns NULL for bad
 * values, on allocation failure, or when the family already holds
 * BDY_METRICS_MAX_CHILDREN children. The child lives as long as the
 * registry. Thread-safe (takes the family mutex). */
static bool born_hidden(bdy_metric_family *f, const bdy_metric *c);

bdy_metric *bdy_metric_child(bdy_metric_family *f, const char *const *label_values)
{
    if (f == NULL || (f->nlabels > 0 && label_values == NULL))
        return NULL;
    for (size_t i = 0; i < f->nlabels; i++) {
        if (label_values[i] == NULL || strlen(label_values[i]) > METRICS_MAX_LABEL_VALUE_LEN)
            return NULL;
    }
    uint64_t hash = hash_values(f->nlabels, label_values);
    bdy_metric *found = NULL;
    bool log_guard = false;

    pthread_mutex_lock(&f->lock);
    for (bdy_metric *c = f->table[hash % METRICS_HASH_BUCKETS]; c != NULL; c = c->hash_next) {
        if (c->hash != hash)
            continue;
        bool same = true;
        for (size_t i = 0; i < f->nlabels && same; i++)
            same = strcmp(c->values[i], label_values[i]) == 0;
        if (same) {
            found = c;
            break;
        }
    }
    if (found == NULL) {
        /* Hidden series (removed pools) are never freed, since hot paths
         * keep their pointers, but they do not count against the cap: pools
         * renamed over a long run must not use up the room for new ones.
         * All of them together are held to METRICS_MAX_KEPT. */
        if (f->nchildren - f->nhidden >= BDY_METRICS_MAX_CHILDREN ||
            f->nchildren >= METRICS_MAX_KEPT) {
            log_guard = !f->guard_logged;
            f->guard_logged = true;
        } else {
            found = child_alloc(f, label_values, hash);
            if (found != NULL) {
                family_link_child(f, found);
                if (born_hidden(f, found)) {
                    found->hidden = true;
                    f->nhidden++;
                }
            }
        }
    }
    pthread_mutex_unlock(&f->lock);
    if (log_guard)
        bdy_warn("metrics", "metric %s reached %d label combinations; new ones are dropped",
                 f->name, BDY_METRICS_MAX_CHILDREN);
    return found;
}

void bdy_metric_inc(bdy_metric *c)
{
    bdy_metric_add(c, 1.0);
}

/* Counters only go up: a negative or NaN delta on a counter is ignored. */
void bdy_metric_add(bdy_metric *c, double v)
{
    if (c == NULL || c->family->kind == METRIC_HISTOGRAM)
        return;
    if (c->family->kind == METRIC_COUNTER && !(v >= 0))
        return;
    atomic_add_double(&c->bits, v);
}

/* Only gauges can be set; on a counter or histogram this does nothing. */
void bdy_metric_set(bdy_metric *c, double v)
{
    if (c == NULL || c->family->kind != METRIC_GAUGE)
        return;
    atomic_store_explicit(&c->bits, double_bits(v), memory_order_relaxed);
}

/* Histograms only. A NaN observation is dropped so it cannot poison _sum. */
void bdy_metric_observe(bdy_metric *c, double v)
{
    if (c == NULL || c->family->kind != METRIC_HISTOGRAM || isnan(v))
        return;
    const bdy_metric_family *f = c->family;
    size_t i = 0;
    while (i < f->nbounds && v > f->bounds[i])
        i++;
    atomic_fetch_add_explicit(&c->counts[i], 1, memory_order_relaxed);
    atomic_add_double(&c->bits, v);
}

/* Counter/gauge: the value. Histogram: the number of observations. */
double bdy_metric_value(const bdy_metric *c)
{
    if (c == NULL)
        return 0.0;
    if (c->family->kind == METRIC_HISTOGRAM) {
        uint64_t n = 0;
        for (size_t i = 0; i <= c->family->nbounds; i++)
            n += atomic_load_explicit(&c->counts[i], memory_order_relaxed);
        return (double)n;
    }
    return bits_double(atomic_load_explicit(&c->bits, memory_order_relaxed));
}

/* Formats v exactly as the Go client (strconv.FormatFloat(v, 'g', -1, 64))
 * does, so our output diffs cleanly against other exporters: NaN, +Inf,
 * -Inf, otherwise the fewest digits that read back as the same double, in
 * exponent form when the decimal exponent is < -4 or >= 6 (80000, 1e+06). */
static void format_value(char out[40], double v)
{
    if (isnan(v)) {
        snprintf(out, 40, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, 40, "%s", v > 0 ? "+Inf" : "-Inf");
        return;
    }
    int digits = 17;
    for (int p = 1; p <= 17; p++) {
        snprintf(out, 40, "%.*e", p - 1, v);
        if (strtod(out, NULL) == v) {
            digits = p;
            break;
        }
    }
    snprintf(out, 40, "%.*e", digits - 1, v);
    const char *e = strchr(out, 'e');
    int exp = e != NULL ? atoi(e + 1) : 0;
    if (exp < -4 || exp >= 6)
        return;
    int decimals = digits - 1 - exp;
    snprintf(out, 40, "%.*f", decimals > 0 ? decimals : 0, v);
}

/* Appends s with \ and newline escaped, plus " when in_label (the escaping
 * that 0.0.4 requires in label values; HELP escapes only the first two). */
static int append_escaped(bdy_buf *out, const char *s, bool in_label)
{
    int rc = 0;
    size_t start = 0;
    size_t i = 0;
    for (; s[i] != '\0'; i++) {
        const char *rep = NULL;
        if (s[i] == '\\')
            rep = "\\\\";
        else if (s[i] == '\n')
            rep = "\\n";
        else if (in_label && s[i] == '"')
            rep = "\\\"";
        if (rep == NULL)
            continue;
        rc = bdy_buf_append(out, s + start, i - start);
        if (rc == 0)
            rc = bdy_buf_appends(out, rep);
        if (rc != 0)
            return rc;
        start = i + 1;
    }
    return bdy_buf_append(out, s + start, i - start);
}

/* Appends {a="x",b="y"[,le="..."]} (nothing when there are no labels). */
static int append_labels(bdy_buf *out, const bdy_metric_family *f, const bdy_metric *c,
                         const char *le)
{
    int rc = 0;
    if (f->nlabels == 0 && le == NULL)
        return 0;
    rc = bdy_buf_appends(out, "{");
    for (size_t i = 0; i < f->nlabels && rc == 0; i++) {
        rc = bdy_buf_printf(out, "%s%s=\"", i > 0 ? "," : "", f->labels[i]);
        if (rc == 0)
            rc = append_escaped(out, c->values[i], true);
        if (rc == 0)
            rc = bdy_buf_appends(out, "\"");
    }
    if (rc == 0 && le != NULL)
        rc = bdy_buf_printf(out, "%sle=\"%s\"", f->nlabels > 0 ? "," : "", le);
    if (rc == 0)
        rc = bdy_buf_appends(out, "}");
    return rc;
}

static int append_sample(bdy_buf *out, const bdy_metric_family *f, const bdy_metric *c,
                         const char *suffix, const char *le, double v)
{
    char num[40];
    format_value(num, v);
    int rc = bdy_buf_printf(out, "%s%s", f->name, suffix);
    if (rc == 0)
        rc = append_labels(out, f, c, le);
    if (rc == 0)
        rc = bdy_buf_printf(out, " %s\n", num);
    return rc;
}

static int render_histogram_child(bdy_buf *out, const bdy_metric_family *f, const bdy_metric *c)
{
    int rc = 0;
    uint64_t cumulative = 0;
    /* _count is the +Inf bucket rather than a separate atomic, so the two can
     * never disagree in one scrape even while observations race with it. */
    for (size_t i = 0; i <= f->nbounds && rc == 0; i++) {
        cumulative += atomic_load_explicit(&c->counts[i], memory_order_relaxed);
        char le[40];
        if (i < f->nbounds)
            format_value(le, f->bounds[i]);
        else
            snprintf(le, sizeof(le), "+Inf");
        rc = append_sample(out, f, c, "_bucket", le, (double)cumulative);
    }
    double sum = bits_double(atomic_load_explicit(&c->bits, memory_order_relaxed));
    if (rc == 0)
        rc = append_sample(out, f, c, "_sum", NULL, sum);
    if (rc == 0)
        rc = append_sample(out, f, c, "_count", NULL, (double)cumulative);
    return rc;
}

/* The filter of a render: series whose namespace label it refuses go. */
typedef struct ns_filter {
    bool (*keep)(void *data, const char *ns);
    void *data;
} ns_filter;

/* The index of label name in f, or -1. */
static int label_index(const bdy_metric_family *f, const char *name)
{
    for (size_t i = 0; i < f->nlabels; i++)
        if (strcmp(f->labels[i], name) == 0)
            return (int)i;
    return -1;
}

static bool child_kept(const bdy_metric_family *f, const bdy_metric *c, const ns_filter *filter)
{
    if (c->hidden)
        return false;
    int ns = filter != NULL ? label_index(f, "namespace") : -1;
    return ns < 0 || filter->keep(filter->data, c->values[ns]);
}

/* Renders one family; caller holds the registry lock. Families with no
 * series to show (labelled ones with no children yet, as the reference
 * client does, or all hidden or filtered out) are left out. */
static int render_family(bdy_buf *out, bdy_metric_family *f, const ns_filter *filter)
{
    int rc = 0;
    bool header = false;
    pthread_mutex_lock(&f->lock);
    for (const bdy_metric *c = f->head; c != NULL && rc == 0; c = c->next) {
        if (!child_kept(f, c, filter))
            continue;
        if (!header) {
            header = true;
            rc = bdy_buf_printf(out, "# HELP %s ", f->name);
            if (rc == 0)
                rc = append_escaped(out, f->help, false);
            if (rc == 0)
                rc = bdy_buf_printf(out, "\n# TYPE %s %s\n", f->name, kind_names[f->kind]);
            if (rc != 0)
                break;
        }
        if (f->kind == METRIC_HISTOGRAM)
            rc = render_histogram_child(out, f, c);
        else
            rc = append_sample(out, f, c, "", NULL,
                               bits_double(atomic_load_explicit(&c->bits, memory_order_relaxed)));
    }
    pthread_mutex_unlock(&f->lock);
    return rc;
}

/* Appends the exposition of every family in registration order, children
 * in creation order. On error out holds a partial exposition. Thread-safe. */
static int render(bdy_metrics *m, bdy_buf *out, const ns_filter *filter)
{
    int rc = 0;
    if (m == NULL || out == NULL)
        return BDY_EINVAL;
    pthread_mutex_lock(&m->lock);
    for (bdy_metric_family *f = m->head; f != NULL && rc == 0; f = f->next)
        rc = render_family(out, f, filter);
    pthread_mutex_unlock(&m->lock);
    return rc;
}

static bool pair_is(const hidden_pair *h, const char *label_a, const char *value_a,
                    const char *label_b, const char *value_b)
{
    return strcmp(h->label_a, label_a) == 0 && strcmp(h->value_a, value_a) == 0 &&
           strcmp(h->label_b, label_b) == 0 && strcmp(h->value_b, value_b) == 0;
}

/* Whether new child c of f is of a hidden pair. Under f->lock. */
static bool born_hidden(bdy_metric_family *f, const bdy_metric *c)
{
    bool hidden = false;
    pthread_mutex_lock(&f->owner->hidden_lock);
    for (const hidden_pair *h = f->owner->hidden; h != NULL && !hidden; h = h->next) {
        int a = label_index(f, h->label_a);
        int b = label_index(f, h->label_b);
        hidden = a >= 0 && b >= 0 && strcmp(c->values[a], h->value_a) == 0 &&
                 strcmp(c->values[b], h->value_b) == 0;
    }
    pthread_mutex_unlock(&f->owner->hidden_lock);
    return hidden;
}

/* Notes the pair hidden (hide) or not (show); false when out of memory. */
static bool note_pair(bdy_metrics *m, bool hide, const char *label_a, const char *value_a,
                      const char *label_b, const char *value_b)
{
    const char *const parts[] = {label_a, value_a, label_b, value_b};
    size_t len[4];
    size_t total = sizeof(hidden_pair);
    for (int i = 0; i < 4; i++)
        total += (len[i] = strlen(parts[i]) + 1);
    hidden_pair *add = NULL;
    if (hide && (add = malloc(total)) != NULL) {
        char *p = (char *)(add + 1);
        char **dst[] = {&add->label_a, &add->value_a, &add->label_b, &add->value_b};
        for (int i = 0; i < 4; i++) {
            memcpy(p, parts[i], len[i]);
            *dst[i] = p;
            p += len[i];
        }
    }
    pthread_mutex_lock(&m->hidden_lock);
    hidden_pair **link = &m->hidden;
    while (*link != NULL) {
        hidden_pair *h = *link;
        if (pair_is(h, label_a, value_a, label_b, value_b) ||
            (add != NULL && h->next == NULL && m->nhidden_pairs >= METRICS_MAX_HIDDEN_PAIRS)) {
            *link = h->next;
            free(h);
            m->nhidden_pairs--;
        } else {
            link = &h->next;
        }
    }
    if (add != NULL) {
        add->next = m->hidden;
        m->hidden = add;
        m->nhidden_pairs++;
    }
    pthread_mutex_unlock(&m->hidden_lock);
    return !hide || add != NULL;
}

/* Marks hidden (or shown) every series whose label_a is value_a and
 * label_b is value_b. */
static void mark_series(bdy_metrics *m, bool hide, const char *label_a, const char *value_a,
                        const char *label_b, const char *value_b)
{
    pthread_mutex_lock(&m->lock);
    for (bdy_metric_family *f = m->head; f != NULL; f = f->next) {
        int a = label_index(f, label_a);
        int b = label_index(f, label_b);
        if (a < 0 || b < 0)
            continue;
        pthread_mutex_lock(&f->lock);
        for (bdy_metric *c = f->head; c != NULL; c = c->next)
            if (c->hidden != hide && strcmp(c->values[a], value_a) == 0 &&
                strcmp(c->values[b], value_b) == 0) {
                c->hidden = hide;
                if (hide)
                    f->nhidden++;
                else
                    f->nhidden--;
            }
        pthread_mutex_unlock(&f->lock);
    }
    pthread_mutex_unlock(&m->lock);
}

static void set_hidden(bdy_metrics *m, bool hide, const char *label_a, const char *value_a,
                       const char *label_b, const char *value_b)
{
    if (m == NULL || label_a == NULL || value_a == NULL || label_b == NULL || value_b == NULL)
        return;
    /* Noted first: a series made meanwhile is born hidden. Out of memory,
     * the series there are hidden all the same. */
    (void)note_pair(m, hide, label_a, value_a, label_b, value_b);
    mark_series(m, hide, label_a, value_a, label_b, value_b);
}

void bdy_metrics_hide_series(bdy_metrics *m, const char *label_a, const char *value_a,
                             const char *label_b, const char *value_b)
{
    set_hidden(m, true, label_a, value_a, label_b, value_b);
}

void bdy_metrics_show_series(bdy_metrics *m, const char *label_a, const char *value_a,
                             const char *label_b, const char *value_b)
{
    set_hidden(m, false, label_a, value_a, label_b, value_b);
}

int bdy_metrics_render(bdy_metrics *m, bdy_buf *out)
{
    return render(m, out, NULL);
}

int bdy_metrics_render_filtered(bdy_metrics *m, bdy_buf *out,
                                bool (*keep_ns)(void *data, const char *ns), void *data)
{
    if (keep_ns == NULL)
        return BDY_EINVAL;
    ns_filter filter = {keep_ns, data};
    return render(m, out, &filter);
}
