/* Prometheus metrics: counters, gauges and histograms with labels, rendered
 * in the text exposition format (version 0.0.4).
 *
 * Families are registered once at start-up; children (one per label-value
 * combination) are created on first use and live until bdy_metrics_free()
 * (hidden from the exposition by bdy_metrics_hide_series, never freed, so
 * a pointer kept by a hot path stays valid). BDY_METRICS_MAX_CHILDREN
 * bounds the series a family shows; hidden ones do not count, up to eight
 * times that many kept in all.
 * Updating a child is lock-free (atomics); looking a child up by label
 * values takes the family's mutex, so hot paths should look children up once
 * and keep the pointer. All functions are thread-safe.
 */
#ifndef BINDERY_METRICS_H
#define BINDERY_METRICS_H

#include "bindery/util.h"

#include <stddef.h>

#define BDY_METRICS_MAX_LABELS 4
#define BDY_METRICS_MAX_BUCKETS 24
/* A family refuses new children past this many (a cardinality guard). */
#define BDY_METRICS_MAX_CHILDREN 4096

typedef struct bdy_metrics bdy_metrics;
typedef struct bdy_metric_family bdy_metric_family;
typedef struct bdy_metric bdy_metric; /* one child */

bdy_metrics *bdy_metrics_new(void);
void bdy_metrics_free(bdy_metrics *m);

/* label_names: up to BDY_METRICS_MAX_LABELS names, NULL-terminated (or NULL
 * for none). Returns NULL on allocation failure or a bad name. */
bdy_metric_family *bdy_metrics_counter(bdy_metrics *m, const char *name, const char *help,
                                       const char *const *label_names);
bdy_metric_family *bdy_metrics_gauge(bdy_metrics *m, const char *name, const char *help,
                                     const char *const *label_names);
/* bounds: strictly increasing upper bounds (the +Inf bucket is implied). */
bdy_metric_family *bdy_metrics_histogram(bdy_metrics *m, const char *name, const char *help,
                                         const char *const *label_names, const double *bounds,
                                         size_t nbounds);

/* The child for these label values (as many as the family has names).
 * Returns NULL if the cardinality guard trips; the update functions accept
 * NULL and do nothing. */
bdy_metric *bdy_metric_child(bdy_metric_family *f, const char *const *label_values);

void bdy_metric_inc(bdy_metric *c);
void bdy_metric_add(bdy_metric *c, double v);
void bdy_metric_set(bdy_metric *c, double v);
void bdy_metric_observe(bdy_metric *c, double v);

/* Current value of a counter or gauge child (for tests and /v1 readers). */
double bdy_metric_value(const bdy_metric *c);

/* Stops exporting, in every family that has both labels, the series whose
 * label_a is value_a and label_b is value_b (a removed pool's: "namespace",
 * ns, "pool", name), and those made for them later (a late count for the
 * removed pool must not bring its series back, frozen). Their values are
 * kept, and updates go on; bdy_metrics_show_series shows them again (the
 * pool configured again). */
void bdy_metrics_hide_series(bdy_metrics *m, const char *label_a, const char *value_a,
                             const char *label_b, const char *value_b);
void bdy_metrics_show_series(bdy_metrics *m, const char *label_a, const char *value_a,
                             const char *label_b, const char *value_b);

/* Appends the whole exposition to out. Returns 0 or a bdy_buf error. */
int bdy_metrics_render(bdy_metrics *m, bdy_buf *out);
/* The same, leaving out every series whose "namespace" label keep_ns
 * (called under the family's lock: quick, no metrics calls) refuses; a
 * family with no series left is left out whole. For a reader allowed only
 * some namespaces. */
int bdy_metrics_render_filtered(bdy_metrics *m, bdy_buf *out,
                                bool (*keep_ns)(void *data, const char *ns), void *data);

#endif
