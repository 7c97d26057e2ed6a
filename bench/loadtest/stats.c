/* Latency histogram and error tallies of the load tool. */
#include "loadtest.h"

#include <math.h>
#include <string.h>
#include <time.h>

double lt_now_s(void)
{
    return (double)bdy_monotonic_ns() / 1e9;
}

void lt_hist_init(lt_hist *h)
{
    memset(h, 0, sizeof(*h));
}

/* Bucket of v: v itself below LT_HIST_SUB, else 7 bits after the leading
 * one per power of two. */
static size_t bucket_of(uint64_t v)
{
    if (v < LT_HIST_SUB)
        return (size_t)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 7 */
    uint64_t sub = (v >> (e - 7)) & (LT_HIST_SUB - 1);
    size_t idx = LT_HIST_SUB + (size_t)(e - 7) * LT_HIST_SUB + (size_t)sub;
    return idx < LT_HIST_BUCKETS ? idx : LT_HIST_BUCKETS - 1;
}

/* The middle of bucket idx's value range. */
static uint64_t bucket_value(size_t idx)
{
    if (idx < LT_HIST_SUB)
        return idx;
    size_t k = idx - LT_HIST_SUB;
    unsigned e = (unsigned)(k / LT_HIST_SUB) + 7;
    uint64_t sub = k % LT_HIST_SUB;
    uint64_t lo = (1ull << e) | (sub << (e - 7));
    uint64_t width = 1ull << (e - 7);
    return lo + width / 2;
}

void lt_hist_add(lt_hist *h, uint64_t ns)
{
    if (h->n == 0 || ns < h->min_ns)
        h->min_ns = ns;
    if (ns > h->max_ns)
        h->max_ns = ns;
    h->n++;
    h->sum_ns += (double)ns;
    h->counts[bucket_of(ns)]++;
}

uint64_t lt_hist_quantile(const lt_hist *h, double q)
{
    if (h->n == 0)
        return 0;
    if (q <= 0)
        return h->min_ns;
    if (q >= 1)
        return h->max_ns;
    uint64_t rank = (uint64_t)ceil(q * (double)h->n);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < LT_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = bucket_value(i);
            if (v < h->min_ns)
                v = h->min_ns;
            if (v > h->max_ns)
                v = h->max_ns;
            return v;
        }
    }
    return h->max_ns;
}

void lt_tally_add(lt_tally *t, const char *key, uint64_t count)
{
    for (size_t i = 0; i < t->n; i++) {
        if (strncmp(t->items[i].key, key, LT_TALLY_KEY - 1) == 0) {
            t->items[i].count += count;
            return;
        }
    }
    if (t->n == LT_TALLY_MAX) {
        t->other += count;
        return;
    }
    snprintf(t->items[t->n].key, LT_TALLY_KEY, "%s", key);
    t->items[t->n].count = count;
    t->n++;
}

uint64_t lt_tally_total(const lt_tally *t)
{
    uint64_t sum = t->other;
    for (size_t i = 0; i < t->n; i++)
        sum += t->items[i].count;
    return sum;
}
