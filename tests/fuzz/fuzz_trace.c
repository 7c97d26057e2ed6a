/* Fuzz driver for pool/trace.c.
 *
 * The input is parsed as a trace CSV twice: once finding the columns by
 * name, once with a group column and a group chosen. Every series that
 * comes back must be sorted and hold only non-negative players or NaN, and
 * parsing the same text twice must give the same answer.
 */
#include "bindery/trace.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Inputs beyond a few lines only repeat the line parser. */
#define FUZZ_MAX_INPUT (16 * BDY_TRACE_MAX_LINE)

static void check(const bdy_trace_set *s)
{
    for (size_t i = 0; i < s->count; i++) {
        for (size_t k = 0; k < s->items[i].count; k++) {
            const bdy_trace_point *p = &s->items[i].points[k];
            if (!(isnan(p->players) || p->players > 0) ||
                (k > 0 && p->t < s->items[i].points[k - 1].t))
                abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT)
        return 0;
    const char *text = (const char *)data;
    bdy_trace_opts plain = {NULL, NULL, NULL, NULL};
    bdy_trace_opts grouped = {NULL, NULL, "AppID", "7001"};
    const bdy_trace_opts *opts[] = {&plain, &grouped};
    for (int i = 0; i < 2; i++) {
        bdy_trace_set a = {NULL, 0};
        bdy_trace_set b = {NULL, 0};
        bdy_errbuf eb;
        int ra = bdy_trace_parse(text, size, "fuzz", opts[i], &a, &eb);
        int rb = bdy_trace_parse(text, size, "fuzz", opts[i], &b, &eb);
        if (ra != rb || a.count != b.count)
            abort();
        check(&a);
        bdy_trace_set_free(&a);
        bdy_trace_set_free(&b);
    }
    return 0;
}
