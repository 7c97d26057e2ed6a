/* Replays a demand trace through the real forecaster and sizer in simulated
 * time and compares warm-pool policies on the same claim stream.
 *
 *   bindery_replay --synthetic [--days N] [--seed S] [--peak PLAYERS]
 *   bindery_replay --trace FILE [--time-col C] [--players-col C]
 *                  [--group-col C] [--group V]
 *   common: [--lead-seconds 120] [--jitter 0.25] [--players-per-world 10]
 *           [--session-minutes 30] [--service-level 0.99] [--warmup-days 3]
 *           [--tick-seconds 5] [--cooldown-seconds 60] [--weekly]
 *           [--plot FILE.png] [--quiet]
 *
 * The trace (concurrent players C(t)) is interpolated to minutes and turned
 * into a claim rate λ(t) = C(t)/(k·D) + max(0, ΔC(t))/k for k players per
 * world and sessions of D minutes; claims arrive as a seeded Poisson stream,
 * second by second. Worlds take the lead time L (± jitter, uniform) from
 * creation to Ready; a claim takes a Ready world or waits (first come, first
 * served) for the next one. Every tick the policy sets a target S for warm
 * worlds (Ready + starting, minus waiting claims); the controller creates up
 * to S and, after the cooldown, deletes idle Ready worlds above S — the same
 * rules as the live pool controller.
 *
 * Policies, each on the identical claim stream:
 *   forecast  the live path: Holt–Winters forecaster fed per 5-minute
 *             bucket, refitted daily on the last 14 days, and bdy_size_pool
 *   buffer    Agones' Buffer policy, S = bufferSize, the smallest bufferSize
 *             (bisection) reaching the forecast policy's overall hit rate
 *   reactive  bdy_size_pool fed the rate of the last 5 minutes
 *   oracle    bdy_size_pool fed the true λ(t) over the coming lead time
 *
 * Printed per policy: warm-hit rate overall and in the worst hour (hours
 * with at least 50 claims), wait p50/p99/p99.9, idle warm-world-hours (Ready
 * and unclaimed), boots, and the forecast's MAPE/WAPE at the lead-time
 * horizon against the true λ. The first days (--warmup-days) train the
 * forecaster and are not scored. With a group column and no --group every
 * series is replayed and the median and worst are summarized. --plot writes
 * a PNG (gnuplot) of demand, the forecast policy's target and its warm
 * worlds, and the tuned buffer, over time. */
#include "bindery/forecast.h"
#include "bindery/sizing.h"
#include "bindery/trace.h"

#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIN_HOUR_CLAIMS 50
#define WAIT_HIST_MAX 7200 /* seconds; longer waits land in the last bin */
#define RING 8192          /* seconds of future Ready events (> 2 * max lead) */
#define RECENT_MIN 2
#define FIT_DAYS 14
#define MAX_SERIES 4096
/* Longest trace replayed (the claim stream takes 248 bytes a minute; the
 * message below says the number too). */
#define MAX_SPAN_DAYS 1100

typedef struct params {
    double lead_s, jitter, k, session_min, service_level, warmup_days, tick_s, cooldown_s;
    bool weekly, quiet;
    uint64_t seed;
    const char *plot;
} params;

typedef enum policy { P_FORECAST, P_BUFFER, P_REACTIVE, P_ORACLE, P_COUNT } policy;
static const char *const policy_names[] = {"forecast", "buffer", "reactive", "oracle"};

typedef struct result {
    double hit, worst_hour, p50, p99, p999, idle_h, boots, mape, wape;
    unsigned buffer;
    unsigned max_target;
} result;

/* The claim stream shared by every policy. */
typedef struct stream {
    double t0; /* Unix seconds of minute 0 */
    size_t minutes;
    double *lambda;    /* [minutes] true claims per minute */
    uint32_t *claims;  /* [minutes * 60] arrivals per second */
    size_t score_from; /* first scored second */
} stream;

/* Plot series, sampled every 5 minutes from the forecast run. */
typedef struct plot_data {
    size_t n;
    double *t, *lambda, *target, *warm;
} plot_data;

/* ---- random numbers ------------------------------------------------------------------ */

/* Poisson variate: multiplication for small means, PTRS (Hörmann 1993)
 * otherwise. */
static uint32_t rng_poisson(uint64_t *s, double mu)
{
    if (mu <= 0)
        return 0;
    if (mu < 10) {
        double l = exp(-mu);
        double p = 1;
        uint32_t k = 0;
        do {
            k++;
            p *= bdy_trace_uniform(s);
        } while (p > l);
        return k - 1;
    }
    double slam = sqrt(mu);
    double loglam = log(mu);
    double b = 0.931 + 2.53 * slam;
    double a = -0.059 + 0.02483 * b;
    double invalpha = 1.1239 + 1.1328 / (b - 3.4);
    double vr = 0.9277 - 3.6224 / (b - 2);
    for (;;) {
        double u = bdy_trace_uniform(s) - 0.5;
        double v = bdy_trace_uniform(s);
        double us = 0.5 - fabs(u);
        double k = floor((2 * a / us + b) * u + mu + 0.43);
        if (us >= 0.07 && v <= vr)
            return (uint32_t)k;
        if (k < 0 || (us < 0.013 && v > us))
            continue;
        if (log(v) + log(invalpha) - log(a / (us * us) + b) <= -mu + k * loglam - lgamma(k + 1))
            return (uint32_t)k;
    }
}

/* ---- trace → claim stream -------------------------------------------------------------- */

static void stream_free(stream *s)
{
    free(s->lambda);
    free(s->claims);
    memset(s, 0, sizeof(*s));
}

/* Interpolates the valid samples to minutes (gaps bridged linearly) and
 * draws the claims. */
static int stream_build(const bdy_trace *tr, const params *p, stream *out)
{
    size_t first = 0;
    size_t last = 0;
    bool any = false;
    for (size_t i = 0; i < tr->count; i++) {
        if (!isnan(tr->points[i].players)) {
            if (!any)
                first = i;
            last = i;
            any = true;
        }
    }
    if (!any || tr->points[last].t - tr->points[first].t < 2 * 86400.0)
        return -1;
    if (tr->points[last].t - tr->points[first].t > MAX_SPAN_DAYS * 86400.0)
        return -2;
    memset(out, 0, sizeof(*out));
    out->t0 = ceil(tr->points[first].t / 60.0) * 60.0;
    out->minutes = (size_t)((tr->points[last].t - out->t0) / 60.0);
    out->lambda = calloc(out->minutes, sizeof(double));
    out->claims = calloc(out->minutes * 60, sizeof(uint32_t));
    if (out->lambda == NULL || out->claims == NULL) {
        stream_free(out);
        return -1;
    }
    size_t j = first;
    double prev_c = NAN;
    for (size_t m = 0; m < out->minutes; m++) {
        double t = out->t0 + m * 60.0;
        while (j < last) {
            size_t nx = j + 1;
            while (nx < last && isnan(tr->points[nx].players))
                nx++;
            if (tr->points[nx].t > t)
                break;
            j = nx;
        }
        size_t nx = j + 1;
        while (nx < last && isnan(tr->points[nx].players))
            nx++;
        double c = tr->points[j].players;
        if (nx <= last && tr->points[nx].t > tr->points[j].t) {
            double w = (t - tr->points[j].t) / (tr->points[nx].t - tr->points[j].t);
            w = w < 0 ? 0 : w > 1 ? 1 : w;
            c = tr->points[j].players + w * (tr->points[nx].players - tr->points[j].players);
        }
        double growth = isnan(prev_c) ? 0 : c - prev_c;
        out->lambda[m] = c / (p->k * p->session_min) + (growth > 0 ? growth / p->k : 0);
        prev_c = c;
    }
    uint64_t rng = p->seed;
    for (size_t sec = 0; sec < out->minutes * 60; sec++)
        out->claims[sec] = rng_poisson(&rng, out->lambda[sec / 60] / 60.0);
    out->score_from = (size_t)(p->warmup_days * 86400.0);
    if (out->score_from >= out->minutes * 60)
        out->score_from = 0;
    return 0;
}

/* ---- one simulated run ----------------------------------------------------------------- */

typedef struct sim {
    /* world counts */
    long ready, booting, backlog;
    uint32_t cal[RING];      /* Ready events by second */
    uint32_t *waiting_count; /* backlog ring: arrivals waiting, by arrival second */
    size_t wq_head, wq_tail; /* FIFO of arrival seconds (ring of RING) */
    size_t wq_sec[RING];
    uint32_t wq_n[RING];
    /* scoring */
    uint64_t hist[WAIT_HIST_MAX + 1];
    uint64_t hits, total;
    double idle_s, boots;
    double *hour_hits, *hour_total;
    double surplus_since;
    /* forecasting */
    double ape_sum, ae_sum, actual_sum;
    size_t ape_n;
    unsigned max_target;
} sim;

static void wait_record(sim *s, size_t sec, size_t now, uint64_t n, const stream *st)
{
    if (now < st->score_from || sec < st->score_from)
        return;
    size_t w = now - sec;
    s->hist[w > WAIT_HIST_MAX ? WAIT_HIST_MAX : w] += n;
}

static double percentile(const sim *s, double q)
{
    uint64_t n = 0;
    for (size_t i = 0; i <= WAIT_HIST_MAX; i++)
        n += s->hist[i];
    if (n == 0)
        return 0;
    uint64_t want = (uint64_t)ceil(q * (double)n);
    uint64_t acc = 0;
    for (size_t i = 0; i <= WAIT_HIST_MAX; i++) {
        acc += s->hist[i];
        if (acc >= want)
            return (double)i;
    }
    return WAIT_HIST_MAX;
}

/* Mean of λ over [t, t + lead) seconds from stream start. */
static double true_rate(const stream *st, double t, double lead)
{
    size_t a = (size_t)(t / 60.0);
    size_t b = (size_t)((t + (lead > 60 ? lead : 60)) / 60.0);
    double sum = 0;
    size_t n = 0;
    for (size_t m = a; m < b && m < st->minutes; m++, n++)
        sum += st->lambda[m];
    return n ? sum / n : 0;
}

static int run_policy(const stream *st, const params *p, policy pol, unsigned buffer, result *res,
                      plot_data *plot)
{
    int rc = -1;
    sim *s = calloc(1, sizeof(*s));
    bdy_forecast *fc = NULL;
    double *hist = NULL;
    double *pred = NULL;
    size_t hours = st->minutes / 60 + 1;
    size_t seconds = st->minutes * 60;
    unsigned step = BDY_FORECAST_STEP_DEFAULT_S;
    uint64_t first_bucket = (uint64_t)(st->t0 / step);
    size_t nbuckets = (size_t)(seconds / step) + 2;
    if (s == NULL)
        goto out;
    s->hour_hits = calloc(hours, sizeof(double));
    s->hour_total = calloc(hours, sizeof(double));
    hist = calloc(nbuckets, sizeof(double));
    pred = calloc(st->minutes + 1, sizeof(double));
    if (s->hour_hits == NULL || s->hour_total == NULL || hist == NULL || pred == NULL)
        goto out;
    bdy_forecast_opts fo = {.step_s = step, .weekly = p->weekly, .ma_window = 3};
    if (pol == P_FORECAST && bdy_forecast_new(&fo, &fc) != 0)
        goto out;
    uint64_t rng = p->seed ^ 0x5bd1e995ULL;
    double level = -1;
    double level_at = 0;
    uint64_t minute_claims[RECENT_MIN] = {0};
    uint64_t minute_misses[RECENT_MIN] = {0};
    uint64_t bucket_claims = 0;
    double last_fit_day = 0;
    unsigned target = 0;
    for (size_t sec = 0; sec < seconds; sec++) {
        bool scored = sec >= st->score_from;
        size_t minute = sec / 60;
        /* Worlds becoming Ready serve waiting claims first. */
        uint32_t up = s->cal[sec % RING];
        s->cal[sec % RING] = 0;
        s->booting -= up;
        s->ready += up;
        while (s->ready > 0 && s->wq_head != s->wq_tail) {
            size_t i = s->wq_head % RING;
            uint32_t take = s->wq_n[i] < s->ready ? s->wq_n[i] : (uint32_t)s->ready;
            wait_record(s, s->wq_sec[i], sec, take, st);
            s->wq_n[i] -= take;
            s->ready -= take;
            s->backlog -= take;
            if (s->wq_n[i] == 0)
                s->wq_head++;
        }
        /* Claims. */
        uint32_t a = st->claims[sec];
        uint32_t hits = a < s->ready ? a : (uint32_t)s->ready;
        s->ready -= hits;
        uint32_t misses = a - hits;
        if (misses > 0) {
            if (s->wq_tail - s->wq_head >= RING) {
                /* More distinct waiting seconds than the ring holds: count the
                 * newest with the last entry (their wait is overstated). */
                s->wq_n[(s->wq_tail - 1) % RING] += misses;
            } else {
                s->wq_sec[s->wq_tail % RING] = sec;
                s->wq_n[s->wq_tail % RING] = misses;
                s->wq_tail++;
            }
            s->backlog += misses;
        }
        if (scored) {
            s->hits += hits;
            s->total += a;
            s->hist[0] += hits;
            s->hour_hits[sec / 3600] += hits;
            s->hour_total[sec / 3600] += a;
        }
        minute_claims[minute % RECENT_MIN] += a;
        minute_misses[minute % RECENT_MIN] += misses;
        bucket_claims += a;
        double now = st->t0 + (double)sec;

        /* End of a forecast bucket: feed the forecaster, refit daily. */
        if ((uint64_t)((now + 1) / step) != (uint64_t)(now / step)) {
            uint64_t b = (uint64_t)(now / step);
            double rate = (double)bucket_claims * 60.0 / step;
            bucket_claims = 0;
            if (b >= first_bucket && b - first_bucket < nbuckets)
                hist[b - first_bucket] = rate;
            if (fc != NULL) {
                bdy_forecast_observe(fc, b, rate);
                double day = floor((double)sec / 86400.0);
                if (day >= 3 && day > last_fit_day) {
                    last_fit_day = day;
                    size_t have = (size_t)(b - first_bucket + 1);
                    size_t keep = (size_t)FIT_DAYS * 86400 / step;
                    size_t from = have > keep ? have - keep : 0;
                    unsigned horizon = (unsigned)ceil(p->lead_s / step);
                    bdy_forecast_fit(fc, hist + from, have - from, first_bucket + from,
                                     horizon ? horizon : 1);
                }
            }
        }
        /* A new minute: clear its recent slot; note the forecast for L ahead. */
        if ((sec + 1) % 60 == 0) {
            size_t next = minute + 1;
            minute_claims[next % RECENT_MIN] = 0;
            minute_misses[next % RECENT_MIN] = 0;
            if (fc != NULL) {
                double at = now + 1 + p->lead_s;
                size_t m = (size_t)((at - st->t0) / 60.0);
                if (m < st->minutes)
                    pred[m] = bdy_forecast_rate_at(fc, at);
            }
        }

        /* Controller tick. */
        if (sec % (size_t)p->tick_s == 0) {
            if (pol == P_BUFFER) {
                target = buffer;
            } else {
                uint64_t rc_sum = 0;
                uint64_t rm_sum = 0;
                for (size_t i = 0; i < RECENT_MIN; i++) {
                    rc_sum += minute_claims[i];
                    rm_sum += minute_misses[i];
                }
                /* Minutes of the recent window actually elapsed. */
                double span = fmin(RECENT_MIN - 1 + (double)(sec % 60) / 60.0, (double)sec / 60.0);
                double recent = span > 0 ? (double)rc_sum / span : 0;
                bdy_sizing_input in = {.min_warm = 0,
                                       .max_warm = 100000000,
                                       .max_worlds = 100000000,
                                       .service_level = p->service_level,
                                       .creation_rate = 1e9,
                                       .lead_time_s = p->lead_s,
                                       .recent_rate = recent,
                                       .recent_minutes = span,
                                       .recent_misses = (unsigned)rm_sum,
                                       .prev_target = level,
                                       .prev_at = level_at};
                if (pol == P_FORECAST) {
                    double f0 = bdy_forecast_rate_at(fc, now);
                    double f1 = bdy_forecast_rate_at(fc, now + p->lead_s / 2);
                    double f2 = bdy_forecast_rate_at(fc, now + p->lead_s);
                    in.forecast_rate = (f0 + f1 + f2) / 3;
                    if (!bdy_forecast_seasonal(fc) && recent > in.forecast_rate)
                        in.forecast_rate = recent;
                    in.forecast_sd = bdy_forecast_rate_sd(fc, in.forecast_rate);
                } else if (pol == P_REACTIVE) {
                    in.forecast_rate = recent;
                } else {
                    in.forecast_rate = true_rate(st, (double)sec, p->lead_s);
                    in.recent_misses = 0;
                    in.prev_target = -1;
                }
                bdy_sizing out = bdy_size_pool(&in, now);
                level = out.level;
                level_at = now;
                target = out.target;
            }
            if (target > s->max_target && scored)
                s->max_target = target;
            long ip = s->ready + s->booting - s->backlog;
            if (ip < (long)target) {
                long n = (long)target - ip;
                for (long i = 0; i < n; i++) {
                    double lead = p->lead_s * (1 + p->jitter * (2 * bdy_trace_uniform(&rng) - 1));
                    size_t at = sec + (size_t)(lead < 1 ? 1 : lead);
                    s->cal[at % RING]++;
                }
                s->booting += n;
                if (scored)
                    s->boots += (double)n;
                s->surplus_since = -1;
            } else if (ip > (long)target && s->ready > 0) {
                if (s->surplus_since < 0)
                    s->surplus_since = (double)sec;
                if ((double)sec - s->surplus_since >= p->cooldown_s) {
                    long n = ip - (long)target;
                    s->ready -= n < s->ready ? n : s->ready;
                }
            } else {
                s->surplus_since = -1;
            }
        }
        if (scored)
            s->idle_s += (double)s->ready;
        if (plot != NULL && sec % 300 == 0 && plot->n < seconds / 300 + 1) {
            plot->t[plot->n] = (double)sec / 86400.0;
            plot->lambda[plot->n] = st->lambda[minute];
            plot->target[plot->n] = target;
            plot->warm[plot->n] = (double)s->ready;
            plot->n++;
        }
    }
    /* Forecast accuracy at the lead-time horizon, scored minutes only. */
    if (fc != NULL) {
        for (size_t m = st->score_from / 60; m < st->minutes; m++) {
            double y = st->lambda[m];
            double e = fabs(pred[m] - y);
            s->ae_sum += e;
            s->actual_sum += y;
            if (y > 0) {
                s->ape_sum += e / y;
                s->ape_n++;
            }
        }
    }
    memset(res, 0, sizeof(*res));
    res->hit = s->total ? (double)s->hits / (double)s->total : 1;
    res->worst_hour = 1;
    for (size_t h = st->score_from / 3600; h < hours; h++) {
        if (s->hour_total[h] >= MIN_HOUR_CLAIMS &&
            s->hour_hits[h] / s->hour_total[h] < res->worst_hour) {
            res->worst_hour = s->hour_hits[h] / s->hour_total[h];
        }
    }
    res->p50 = percentile(s, 0.5);
    res->p99 = percentile(s, 0.99);
    res->p999 = percentile(s, 0.999);
    res->idle_h = s->idle_s / 3600.0;
    res->boots = s->boots;
    res->mape = s->ape_n ? s->ape_sum / (double)s->ape_n : NAN;
    res->wape = s->actual_sum > 0 ? s->ae_sum / s->actual_sum : NAN;
    res->buffer = buffer;
    res->max_target = s->max_target;
    rc = 0;
out:
    if (s != NULL) {
        free(s->hour_hits);
        free(s->hour_total);
    }
    free(s);
    free(hist);
    free(pred);
    bdy_forecast_free(fc);
    return rc;
}

/* Smallest bufferSize whose overall hit rate reaches `want`. */
static int tune_buffer(const stream *st, const params *p, double want, result *out)
{
    unsigned lo = 0;
    unsigned hi = 1;
    result r;
    for (;;) {
        if (run_policy(st, p, P_BUFFER, hi, &r, NULL) != 0)
            return -1;
        if (r.hit >= want)
            break;
        lo = hi;
        if (hi > 100000000u)
            return -1;
        hi *= 2;
    }
    *out = r;
    while (hi - lo > 1) {
        unsigned mid = lo + (hi - lo) / 2;
        if (run_policy(st, p, P_BUFFER, mid, &r, NULL) != 0)
            return -1;
        if (r.hit >= want) {
            hi = mid;
            *out = r;
        } else {
            lo = mid;
        }
    }
    return 0;
}

static int write_plot(const plot_data *pd, unsigned buffer, const char *png, const char *title)
{
    char data[4096];
    snprintf(data, sizeof(data), "%s.dat", png);
    FILE *f = fopen(data, "w");
    if (f == NULL)
        return -1;
    for (size_t i = 0; i < pd->n; i++)
        fprintf(f, "%.5f %.3f %.0f %.0f %u\n", pd->t[i], pd->lambda[i], pd->target[i], pd->warm[i],
                buffer);
    fclose(f);
    /* Without gnuplot the shell exits at once, and writing to it would
     * end this process by SIGPIPE, the replay's table unprinted: the
     * write fails (EPIPE) instead, and the plot is reported missing. */
    signal(SIGPIPE, SIG_IGN);
    FILE *g = popen("gnuplot", "w");
    if (g == NULL)
        return -1;
    fprintf(g,
            "set terminal pngcairo size 1600,600\nset output '%s'\n"
            "set title '%s'\nset xlabel 'days'\nset ylabel 'claims/min, worlds'\n"
            "set key top left\nset grid\n"
            "plot '%s' u 1:2 w l lw 1 lc rgb '#999999' t 'demand (claims/min)', "
            "'' u 1:3 w l lw 1.5 lc rgb '#1f77b4' t 'forecast target S', "
            "'' u 1:4 w l lw 1 lc rgb '#2ca02c' t 'warm idle worlds (forecast)', "
            "'' u 1:5 w l lw 1.5 dt 2 lc rgb '#d62728' t 'tuned fixed buffer'\n",
            png, title, data);
    int rc = pclose(g);
    remove(data);
    return rc == 0 ? 0 : -1;
}

/* ---- one series ------------------------------------------------------------------------- */

typedef struct summary {
    char name[BDY_TRACE_MAX_GROUP + 1];
    result r[P_COUNT];
    double saving; /* idle-hour reduction of forecast vs buffer */
} summary;

static void print_table(const summary *sm)
{
    printf("%-9s %8s %8s %6s %6s %7s %11s %9s %8s %7s %7s\n", "policy", "hit", "worstHr", "p50 s",
           "p99 s", "p99.9 s", "idle w-h", "boots", "S max", "MAPE", "WAPE");
    for (int i = 0; i < P_COUNT; i++) {
        const result *r = &sm->r[i];
        char mape[16] = "-";
        char wape[16] = "-";
        if (i == P_FORECAST) {
            snprintf(mape, sizeof(mape), "%.1f%%", 100 * r->mape);
            snprintf(wape, sizeof(wape), "%.1f%%", 100 * r->wape);
        }
        printf("%-9s %7.3f%% %7.2f%% %6.0f %6.0f %7.0f %11.1f %9.0f %8u %7s %7s", policy_names[i],
               100 * r->hit, 100 * r->worst_hour, r->p50, r->p99, r->p999, r->idle_h, r->boots,
               i == P_BUFFER ? r->buffer : r->max_target, mape, wape);
        if (i == P_BUFFER)
            printf("  (bufferSize %u)", r->buffer);
        printf("\n");
    }
    printf("idle warm-world-hours, forecast vs tuned buffer: %+.1f%%\n", -100 * sm->saving);
}

static int replay_one(const bdy_trace *tr, const params *p, const char *plot_path, summary *sm)
{
    stream st;
    int built = stream_build(tr, p, &st);
    if (built != 0) {
        fprintf(stderr, "%s: %s, skipped\n", tr->group[0] ? tr->group : "trace",
                built == -2 ? "samples span more than 1100 days"
                            : "fewer than two days of samples");
        return 1;
    }
    int rc = -1;
    plot_data pd = {0, NULL, NULL, NULL, NULL};
    size_t np = st.minutes * 60 / 300 + 2;
    if (plot_path != NULL) {
        pd.t = calloc(np, sizeof(double));
        pd.lambda = calloc(np, sizeof(double));
        pd.target = calloc(np, sizeof(double));
        pd.warm = calloc(np, sizeof(double));
        if (pd.t == NULL || pd.lambda == NULL || pd.target == NULL || pd.warm == NULL)
            goto out;
    }
    snprintf(sm->name, sizeof(sm->name), "%s", tr->group[0] ? tr->group : "trace");
    if (run_policy(&st, p, P_FORECAST, 0, &sm->r[P_FORECAST], plot_path ? &pd : NULL) != 0 ||
        tune_buffer(&st, p, sm->r[P_FORECAST].hit, &sm->r[P_BUFFER]) != 0 ||
        run_policy(&st, p, P_REACTIVE, 0, &sm->r[P_REACTIVE], NULL) != 0 ||
        run_policy(&st, p, P_ORACLE, 0, &sm->r[P_ORACLE], NULL) != 0)
        goto out;
    sm->saving =
        sm->r[P_BUFFER].idle_h > 0 ? 1 - sm->r[P_FORECAST].idle_h / sm->r[P_BUFFER].idle_h : 0;
    if (plot_path != NULL) {
        char title[256];
        snprintf(title, sizeof(title), "%s: L = %.0f s, serviceLevel %.4g", sm->name, p->lead_s,
                 p->service_level);
        if (write_plot(&pd, sm->r[P_BUFFER].buffer, plot_path, title) != 0)
            fprintf(stderr, "could not write the plot %s (is gnuplot installed?)\n", plot_path);
        else if (!p->quiet)
            printf("plot: %s\n", plot_path);
    }
    rc = 0;
out:
    free(pd.t);
    free(pd.lambda);
    free(pd.target);
    free(pd.warm);
    stream_free(&st);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(double), cmp_double);
    return n == 0 ? NAN : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bindery_replay (--synthetic [--days N] [--seed S] [--peak PLAYERS]\n"
            "                       [--burst-ramp-minutes 15] |\n"
            "                       --trace FILE [--time-col C] [--players-col C]\n"
            "                       [--group-col C] [--group V])\n"
            "       [--lead-seconds 120] [--jitter 0.25] [--players-per-world 10]\n"
            "       [--session-minutes 30] [--service-level 0.99] [--warmup-days 3]\n"
            "       [--tick-seconds 5] [--cooldown-seconds 60] [--weekly] [--plot FILE.png]\n"
            "       [--quiet]\n");
}

static bool num_arg(const char *text, double lo, double hi, double *out)
{
    char *end = NULL;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || !(v >= lo && v <= hi))
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    params p = {.lead_s = 120,
                .jitter = 0.25,
                .k = 10,
                .session_min = 30,
                .service_level = 0.99,
                .warmup_days = 3,
                .tick_s = 5,
                .cooldown_s = 60,
                .seed = 42,
                .plot = "replay.png"};
    bdy_synth_opts so = bdy_synth_defaults();
    bdy_trace_opts to = {NULL, NULL, NULL, NULL};
    const char *trace = NULL;
    bool synthetic = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        double d = 0;
        bool ok = true;
        if (strcmp(a, "--synthetic") == 0) {
            synthetic = true;
            continue;
        }
        if (strcmp(a, "--weekly") == 0) {
            p.weekly = true;
            continue;
        }
        if (strcmp(a, "--quiet") == 0) {
            p.quiet = true;
            continue;
        }
        if (v == NULL) {
            usage();
            return 2;
        }
        i++;
        if (strcmp(a, "--trace") == 0)
            trace = v;
        else if (strcmp(a, "--time-col") == 0)
            to.time_col = v;
        else if (strcmp(a, "--players-col") == 0)
            to.value_col = v;
        else if (strcmp(a, "--group-col") == 0)
            to.group_col = v;
        else if (strcmp(a, "--group") == 0)
            to.group = v;
        else if (strcmp(a, "--plot") == 0)
            p.plot = v;
        else if (strcmp(a, "--days") == 0 && (ok = num_arg(v, 3, 366, &d)))
            so.days = (unsigned)d;
        else if (strcmp(a, "--seed") == 0 && (ok = num_arg(v, 0, 1e15, &d)))
            so.seed = p.seed = (uint64_t)d;
        else if (strcmp(a, "--burst-ramp-minutes") == 0 && (ok = num_arg(v, 0, 600, &d)))
            so.burst_ramp_min = d;
        else if (strcmp(a, "--peak") == 0 && (ok = num_arg(v, 1, 1e9, &d)))
            so.peak_players = d;
        else if (strcmp(a, "--lead-seconds") == 0 && (ok = num_arg(v, 1, 1800, &d)))
            p.lead_s = d;
        else if (strcmp(a, "--jitter") == 0 && (ok = num_arg(v, 0, 0.9, &d)))
            p.jitter = d;
        else if (strcmp(a, "--players-per-world") == 0 && (ok = num_arg(v, 1, 1e6, &d)))
            p.k = d;
        else if (strcmp(a, "--session-minutes") == 0 && (ok = num_arg(v, 1, 1e4, &d)))
            p.session_min = d;
        else if (strcmp(a, "--service-level") == 0 && (ok = num_arg(v, 0.5, 0.9999, &d)))
            p.service_level = d;
        else if (strcmp(a, "--warmup-days") == 0 && (ok = num_arg(v, 0, 60, &d)))
            p.warmup_days = d;
        else if (strcmp(a, "--tick-seconds") == 0 && (ok = num_arg(v, 1, 60, &d)))
            p.tick_s = d;
        else if (strcmp(a, "--cooldown-seconds") == 0 && (ok = num_arg(v, 0, 3600, &d)))
            p.cooldown_s = d;
        else
            ok = false;
        if (!ok) {
            fprintf(stderr, "bad option or value: %s %s\n", a, v);
            usage();
            return 2;
        }
    }
    if (synthetic == (trace != NULL)) {
        usage();
        return 2;
    }
    bdy_trace_set set = {NULL, 0};
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = synthetic ? bdy_trace_synthetic(&so, &set) : bdy_trace_load(trace, &to, &set, &eb);
    if (rc != 0) {
        fprintf(stderr, "%s\n", synthetic ? "bad synthetic trace options" : eb.message);
        return 1;
    }
    printf("replay: %s, %zu series, L = %.0f s ± %.0f%%, k = %.0f players/world, D = %.0f min, "
           "serviceLevel %.4g, tick %.0f s, cooldown %.0f s, warm-up %.1f days not scored\n",
           synthetic ? "synthetic trace" : trace, set.count, p.lead_s, 100 * p.jitter, p.k,
           p.session_min, p.service_level, p.tick_s, p.cooldown_s, p.warmup_days);
    summary *sums = calloc(set.count, sizeof(*sums));
    size_t done = 0;
    int status = 0;
    for (size_t i = 0; sums != NULL && i < set.count; i++) {
        int r = replay_one(&set.items[i], &p, i == 0 ? p.plot : NULL, &sums[done]);
        if (r < 0) {
            status = 1;
            break;
        }
        if (r > 0)
            continue;
        if (set.count == 1 || !p.quiet) {
            printf("\n== %s ==\n", sums[done].name);
            print_table(&sums[done]);
        }
        done++;
    }
    if (done > 1) {
        double *sv = calloc(done, sizeof(double));
        double *wh = calloc(done, sizeof(double));
        double *hit = calloc(done, sizeof(double));
        double *mape = calloc(done, sizeof(double));
        size_t meet = 0;
        if (sv != NULL && wh != NULL && hit != NULL && mape != NULL) {
            for (size_t i = 0; i < done; i++) {
                sv[i] = sums[i].saving;
                wh[i] = sums[i].r[P_FORECAST].worst_hour;
                hit[i] = sums[i].r[P_FORECAST].hit;
                mape[i] = sums[i].r[P_FORECAST].mape;
                meet += sums[i].saving >= 0.30 && wh[i] >= 0.97;
            }
            printf("\n== summary over %zu series (forecast policy vs tuned buffer) ==\n", done);
            printf("%-40s %10s %10s %10s\n", "", "median", "worst", "best");
            double sm = median(sv, done);
            printf("%-40s %9.1f%% %9.1f%% %9.1f%%\n", "idle warm-world-hours saved", 100 * sm,
                   100 * sv[0], 100 * sv[done - 1]);
            double wm = median(wh, done);
            printf("%-40s %9.2f%% %9.2f%% %9.2f%%\n", "worst-hour hit rate", 100 * wm, 100 * wh[0],
                   100 * wh[done - 1]);
            double hm = median(hit, done);
            printf("%-40s %9.3f%% %9.3f%% %9.3f%%\n", "overall hit rate", 100 * hm, 100 * hit[0],
                   100 * hit[done - 1]);
            double mm = median(mape, done);
            printf("%-40s %9.1f%% %9.1f%% %9.1f%%\n", "forecast MAPE at lead time", 100 * mm,
                   100 * mape[done - 1], 100 * mape[0]);
            printf("series meeting both targets (>= 30%% saved, worst hour >= 97%%): %zu of %zu\n",
                   meet, done);
        }
        free(sv);
        free(wh);
        free(hit);
        free(mape);
    }
    free(sums);
    bdy_trace_set_free(&set);
    return status;
}
