/* Fuzzes the load tool's Prometheus text reader (it parses /metrics of
 * whatever server it is pointed at): a parse either succeeds with every
 * sample named and within the caps, or fails with a line number. */
#include "loadtest.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 20)
        return 0;
    lt_metrics m;
    char err[256] = "";
    if (lt_metrics_parse((const char *)data, size, &m, err, sizeof(err)) == 0) {
        for (size_t i = 0; i < m.n; i++)
            if (m.items[i].name == NULL || m.items[i].nlabels > LT_METRIC_MAX_LABELS)
                abort();
        const char *match[] = {"pool=arena", NULL};
        (void)lt_metrics_sum(&m, "bindery_allocations_total", match, NULL);
        (void)lt_metrics_hist_quantile(NULL, &m, "bindery_world_startup_seconds", NULL, 0.5);
        lt_metrics_free(&m);
    } else if (strncmp(err, "line ", 5) != 0 && strstr(err, "metrics text") == NULL &&
               strcmp(err, "out of memory") != 0) {
        abort();
    }
    return 0;
}
