/* Additive Holt–Winters with a damped trend and daily (and weekly) seasons;
 * see forecast.h. */
#include "bindery/forecast.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The most trend damping a fit chooses (and a saved state may hold). */
#define PHI_MAX 0.98
#define DAY_S 86400u
#define WEEK_DAYS 7u
/* Weight of the newest squared error in the running mean square error:
 * about the last 50 buckets (four hours of 5-minute buckets) count. */
#define MSE_WEIGHT 0.02
/* Longest horizon bdy_forecast_fit() scores (buckets). */
#define FIT_HORIZON_MAX 64
/* JSON state format. */
#define STATE_VERSION 1

struct bdy_forecast {
    bdy_forecast_opts o;
    unsigned day;  /* buckets per day */
    unsigned week; /* buckets per week, 0 without a weekly season */
    bdy_hw_params p;
    double level;
    double trend;
    double *season;  /* [day] */
    double *wseason; /* [week] or NULL */
    double *init;    /* [day] first-day observations by slot, NaN = none yet */
    uint64_t init_start;
    bool seasonal;
    bool started;
    uint64_t next;
    uint64_t nobs;
    double ma[BDY_FORECAST_MA_MAX];
    unsigned ma_n;
    unsigned ma_pos;
    double mse;
    double mse_weight; /* sum of weights so far, for an unbiased early mean */
    double last_obs;   /* the newest observation, NaN before any */
};

bdy_hw_params bdy_hw_params_default(void)
{
    bdy_hw_params p = {.alpha = 0.2, .beta = 0.02, .gamma = 0.1, .delta = 0.05, .phi = 0.95};
    return p;
}

static bool opts_valid(const bdy_forecast_opts *o)
{
    return o != NULL && o->step_s >= BDY_FORECAST_STEP_MIN_S &&
           o->step_s <= BDY_FORECAST_STEP_MAX_S && DAY_S % o->step_s == 0 && o->ma_window >= 1 &&
           o->ma_window <= BDY_FORECAST_MA_MAX;
}

/* Empties the state, keeping options and parameters. */
static void reset(bdy_forecast *f)
{
    f->level = 0;
    f->trend = 0;
    memset(f->season, 0, f->day * sizeof(double));
    if (f->wseason != NULL)
        memset(f->wseason, 0, f->week * sizeof(double));
    for (unsigned i = 0; i < 2 * f->day; i++)
        f->init[i] = NAN;
    f->init_start = 0;
    f->seasonal = false;
    f->started = false;
    f->next = 0;
    f->nobs = 0;
    f->ma_n = 0;
    f->ma_pos = 0;
    f->mse = 0;
    f->mse_weight = 0;
    f->last_obs = NAN;
}

int bdy_forecast_new(const bdy_forecast_opts *opts, bdy_forecast **out)
{
    int rc = 0;
    bdy_forecast *f = NULL;
    *out = NULL;
    if (!opts_valid(opts))
        return BDY_EINVAL;
    f = calloc(1, sizeof(*f));
    if (f == NULL) {
        rc = BDY_ENOMEM;
        goto out;
    }
    f->o = *opts;
    f->day = DAY_S / opts->step_s;
    f->week = opts->weekly ? f->day * WEEK_DAYS : 0;
    f->p = bdy_hw_params_default();
    f->season = calloc(f->day, sizeof(double));
    f->init = calloc(2 * (size_t)f->day, sizeof(double));
    if (opts->weekly)
        f->wseason = calloc(f->week, sizeof(double));
    if (f->season == NULL || f->init == NULL || (opts->weekly && f->wseason == NULL)) {
        rc = BDY_ENOMEM;
        goto out;
    }
    reset(f);
    *out = f;
    f = NULL;
out:
    bdy_forecast_free(f);
    return rc;
}

void bdy_forecast_free(bdy_forecast *f)
{
    if (f == NULL)
        return;
    free(f->season);
    free(f->wseason);
    free(f->init);
    free(f);
}

static double ma_mean(const bdy_forecast *f)
{
    if (f->ma_n == 0)
        return 0;
    double sum = 0;
    for (unsigned i = 0; i < f->ma_n; i++)
        sum += f->ma[i];
    return sum / f->ma_n;
}

static double seasonal_term(const bdy_forecast *f, uint64_t bucket)
{
    double s = f->season[bucket % f->day];
    if (f->wseason != NULL)
        s += f->wseason[bucket % f->week];
    return s;
}

/* Unclamped forecast of `bucket`, h >= 1 buckets after the last one fed. */
static double raw_forecast(const bdy_forecast *f, uint64_t bucket)
{
    if (!f->seasonal)
        return ma_mean(f);
    uint64_t h = bucket >= f->next ? bucket - f->next + 1 : 1;
    double damp = 0;
    double pk = 1;
    /* phi + phi^2 + ... + phi^h, bounded: the sum converges for phi < 1. */
    for (uint64_t k = 1; k <= h && k <= 10000; k++) {
        pk *= f->p.phi;
        damp += pk;
    }
    return f->level + f->trend * damp + seasonal_term(f, bucket);
}

double bdy_forecast_at(const bdy_forecast *f, uint64_t bucket)
{
    double v = raw_forecast(f, bucket);
    return v > 0 && isfinite(v) ? v : 0;
}

/* Classical initialisation once two days have passed: the trend from the
 * difference of the two days' means, the level where the line ends, and
 * the season as each slot's mean distance from the line. A day that is
 * mostly missing restarts the collection. */
static void maybe_init_season(bdy_forecast *f, uint64_t bucket)
{
    if (bucket + 1 < f->init_start + 2 * (uint64_t)f->day)
        return;
    unsigned seen[2] = {0, 0};
    double sum[2] = {0, 0};
    for (unsigned i = 0; i < 2 * f->day; i++) {
        if (!isnan(f->init[i])) {
            seen[i / f->day]++;
            sum[i / f->day] += f->init[i];
        }
    }
    if (seen[0] * 2 < f->day || seen[1] * 2 < f->day) {
        for (unsigned i = 0; i < 2 * f->day; i++)
            f->init[i] = NAN;
        f->init_start = bucket + 1;
        return;
    }
    double m0 = sum[0] / seen[0];
    double m1 = sum[1] / seen[1];
    double trend = (m1 - m0) / f->day;
    /* The line through the day means: value at position i of the window. */
    double centre0 = (f->day - 1) / 2.0;
    for (unsigned s = 0; s < f->day; s++) {
        double acc = 0;
        unsigned n = 0;
        for (unsigned d = 0; d < 2; d++) {
            unsigned i = d * f->day + s;
            if (!isnan(f->init[i])) {
                acc += f->init[i] - (m0 + trend * (i - centre0));
                n++;
            }
        }
        f->season[(f->init_start + s) % f->day] = n ? acc / n : 0;
    }
    f->trend = trend;
    f->level = m0 + trend * (2.0 * f->day - 1 - centre0);
    f->seasonal = true;
}

static void note_error(bdy_forecast *f, double err)
{
    f->mse_weight = f->mse_weight * (1 - MSE_WEIGHT) + MSE_WEIGHT;
    f->mse = f->mse * (1 - MSE_WEIGHT) + MSE_WEIGHT * err * err;
}

static void hw_update(bdy_forecast *f, uint64_t bucket, double y)
{
    size_t i = bucket % f->day;
    double w = f->wseason != NULL ? f->wseason[bucket % f->week] : 0;
    double s = f->season[i];
    double base = f->level + f->p.phi * f->trend;
    double level = f->p.alpha * (y - s - w) + (1 - f->p.alpha) * base;
    f->trend = f->p.beta * (level - f->level) + (1 - f->p.beta) * f->p.phi * f->trend;
    f->season[i] = f->p.gamma * (y - level - w) + (1 - f->p.gamma) * s;
    if (f->wseason != NULL)
        f->wseason[bucket % f->week] = f->p.delta * (y - level - s) + (1 - f->p.delta) * w;
    f->level = level;
}

/* A bucket without an observation (bindery was down, say): the level
 * follows the damped trend. Demand is never negative, so neither is the
 * level: a falling trend carried across a long gap would otherwise leave
 * it far below zero, the forecast 0 for as long as it takes to climb back. */
static void skip_bucket(bdy_forecast *f)
{
    f->level += f->p.phi * f->trend;
    f->trend *= f->p.phi;
    if (f->level < 0) {
        f->level = 0;
        f->trend = 0;
    }
}

int bdy_forecast_observe(bdy_forecast *f, uint64_t bucket, double value)
{
    bool missing = isnan(value);
    if (f == NULL || (!missing && (!isfinite(value) || value < 0)))
        return BDY_EINVAL;
    if (f->started && bucket < f->next)
        return BDY_EINVAL;
    if (!f->started) {
        if (missing)
            return 0; /* nothing to start from */
        f->started = true;
        f->init_start = bucket;
        f->next = bucket;
    }
    if (f->seasonal) {
        /* Skipped buckets: the level follows the damped trend. */
        for (uint64_t b = f->next; b < bucket; b++)
            skip_bucket(f);
        /* The level is now the skipped buckets' last: the forecast of this
         * one is one step ahead, not gap + 1 (which counted the trend over
         * the gap twice in the error statistics). */
        f->next = bucket;
    }
    if (!missing) {
        /* Scored against the forecast sizing uses (never below 0), and
         * only once there is one: the first observation against the 0 of
         * an empty history made its whole value an error, a new pool's
         * margin as large as its demand for hours. */
        if (f->nobs > 0)
            note_error(f, value - bdy_forecast_at(f, bucket));
        f->ma[f->ma_pos] = value;
        f->ma_pos = (f->ma_pos + 1) % f->o.ma_window;
        if (f->ma_n < f->o.ma_window)
            f->ma_n++;
        f->nobs++;
    }
    f->last_obs = missing ? NAN : value;
    if (f->seasonal) {
        if (missing) {
            skip_bucket(f);
        } else {
            hw_update(f, bucket, value);
        }
    } else {
        if (!missing && bucket - f->init_start < 2 * (uint64_t)f->day)
            f->init[bucket - f->init_start] = value;
        maybe_init_season(f, bucket);
    }
    f->next = bucket + 1;
    return 0;
}

double bdy_forecast_rate_at(const bdy_forecast *f, double unix_seconds)
{
    double step = f->o.step_s;
    double pos = unix_seconds / step - 0.5; /* in bucket-centre units */
    if (pos < 0)
        pos = 0;
    uint64_t b = (uint64_t)floor(pos);
    double w = pos - floor(pos);
    double lo = NAN;
    if (f->started && b + 1 == f->next && !isnan(f->last_obs))
        lo = f->last_obs;
    else
        lo = bdy_forecast_at(f, b);
    double hi = bdy_forecast_at(f, b + 1);
    return (1 - w) * lo + w * hi;
}

bool bdy_forecast_seasonal(const bdy_forecast *f)
{
    return f->seasonal;
}

uint64_t bdy_forecast_observed(const bdy_forecast *f)
{
    return f->nobs;
}

uint64_t bdy_forecast_next_bucket(const bdy_forecast *f)
{
    return f->next;
}

unsigned bdy_forecast_step(const bdy_forecast *f)
{
    return f->o.step_s;
}

double bdy_forecast_rate_sd(const bdy_forecast *f, double rate)
{
    if (f->mse_weight <= 0)
        return 0;
    double mse = f->mse / f->mse_weight;
    double poisson = (rate > 0 ? rate : 0) * 60.0 / f->o.step_s;
    return mse > poisson ? sqrt(mse - poisson) : 0;
}

double bdy_forecast_level(const bdy_forecast *f)
{
    return f->seasonal ? f->level : ma_mean(f);
}

double bdy_forecast_trend(const bdy_forecast *f)
{
    return f->trend;
}

double bdy_forecast_season_at(const bdy_forecast *f, uint64_t bucket)
{
    return seasonal_term(f, bucket);
}

bdy_hw_params bdy_forecast_params(const bdy_forecast *f)
{
    return f->p;
}

/* ---- fitting ------------------------------------------------------------------------ */

/* Runs the filter over obs with f's parameters from an empty state and
 * returns the squared error `horizon` buckets ahead, scored from the
 * second seasonal day on (every parameter set starts from the same
 * initial day). */
static double run_filter(bdy_forecast *f, const double *obs, size_t n, uint64_t first,
                         unsigned horizon, size_t *scored)
{
    double pending[FIT_HORIZON_MAX];
    double sse = 0;
    size_t count = 0;
    reset(f);
    for (size_t t = 0; t < n; t++) {
        uint64_t b = first + t;
        if (f->started && horizon > 1) {
            /* The forecast made now (after bucket b-1) for bucket b+h-1. */
            pending[(b + horizon - 1) % horizon] = raw_forecast(f, b + horizon - 1);
        }
        double pred = horizon > 1 ? pending[b % horizon] : raw_forecast(f, b);
        bool score = f->seasonal && t >= 3 * (size_t)f->day + horizon && !isnan(obs[t]);
        if (score) {
            double e = obs[t] - (pred > 0 ? pred : 0);
            sse += e * e;
            count++;
        }
        bdy_forecast_observe(f, b, obs[t]);
    }
    *scored = count;
    return sse;
}

int bdy_forecast_fit(bdy_forecast *f, const double *obs, size_t n, uint64_t first_bucket,
                     unsigned horizon)
{
    if (f == NULL || (obs == NULL && n > 0) || horizon == 0 || horizon > FIT_HORIZON_MAX)
        return BDY_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!isnan(obs[i]) && (!isfinite(obs[i]) || obs[i] < 0))
            return BDY_EINVAL;
    }
    if (n > BDY_FORECAST_FIT_MAX) {
        first_bucket += n - BDY_FORECAST_FIT_MAX;
        obs += n - BDY_FORECAST_FIT_MAX;
        n = BDY_FORECAST_FIT_MAX;
    }
    size_t scored = 0;
    if (n >= 4 * (size_t)f->day) {
        static const double alphas[] = {0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7};
        static const double betas[] = {0, 0.02, 0.1};
        static const double gammas[] = {0.02, 0.05, 0.1, 0.2, 0.4};
        static const double deltas[] = {0.05, 0.2};
        /* Damped only (phi < 1): an undamped trend carried across a gap
         * grows with the gap's length. */
        static const double phis[] = {0.9, 0.95, PHI_MAX};
        size_t nd = f->wseason != NULL ? 2 : 1;
        bdy_hw_params best = f->p;
        double best_sse = INFINITY;
        for (size_t a = 0; a < sizeof(alphas) / sizeof(alphas[0]); a++)
            for (size_t b = 0; b < sizeof(betas) / sizeof(betas[0]); b++)
                for (size_t g = 0; g < sizeof(gammas) / sizeof(gammas[0]); g++)
                    for (size_t d = 0; d < nd; d++)
                        for (size_t ph = 0; ph < sizeof(phis) / sizeof(phis[0]); ph++) {
                            f->p = (bdy_hw_params){alphas[a], betas[b], gammas[g],
                                                   f->wseason != NULL ? deltas[d] : 0.05, phis[ph]};
                            double sse = run_filter(f, obs, n, first_bucket, horizon, &scored);
                            if (scored > 0 && sse < best_sse) {
                                best_sse = sse;
                                best = f->p;
                            }
                        }
        f->p = best;
    }
    run_filter(f, obs, n, first_bucket, 1, &scored);
    if (!f->started) {
        /* An all-missing history: the forecaster continues after it. */
        f->next = first_bucket + n;
    }
    return 0;
}

/* ---- JSON state --------------------------------------------------------------------- */

static json_object *jnum(double v)
{
    return isnan(v) ? NULL : json_object_new_double(v);
}

static json_object *jarray(const double *v, size_t n)
{
    json_object *a = json_object_new_array_ext((int)n);
    for (size_t i = 0; i < n; i++)
        json_object_array_add(a, jnum(v[i]));
    return a;
}

json_object *bdy_forecast_to_json(const bdy_forecast *f)
{
    json_object *j = json_object_new_object();
    json_object_object_add(j, "version", json_object_new_int(STATE_VERSION));
    json_object_object_add(j, "stepSeconds", json_object_new_int((int)f->o.step_s));
    json_object_object_add(j, "weekly", json_object_new_boolean(f->wseason != NULL));
    json_object_object_add(j, "maWindow", json_object_new_int((int)f->o.ma_window));
    json_object *p = json_object_new_object();
    json_object_object_add(p, "alpha", jnum(f->p.alpha));
    json_object_object_add(p, "beta", jnum(f->p.beta));
    json_object_object_add(p, "gamma", jnum(f->p.gamma));
    json_object_object_add(p, "delta", jnum(f->p.delta));
    json_object_object_add(p, "phi", jnum(f->p.phi));
    json_object_object_add(j, "params", p);
    json_object_object_add(j, "level", jnum(f->level));
    json_object_object_add(j, "trend", jnum(f->trend));
    json_object_object_add(j, "season", jarray(f->season, f->day));
    if (f->wseason != NULL)
        json_object_object_add(j, "weekSeason", jarray(f->wseason, f->week));
    json_object_object_add(j, "init", jarray(f->init, 2 * (size_t)f->day));
    json_object_object_add(j, "initStart", json_object_new_int64((int64_t)f->init_start));
    json_object_object_add(j, "seasonal", json_object_new_boolean(f->seasonal));
    json_object_object_add(j, "started", json_object_new_boolean(f->started));
    json_object_object_add(j, "next", json_object_new_int64((int64_t)f->next));
    json_object_object_add(j, "observed", json_object_new_int64((int64_t)f->nobs));
    /* The moving-average window in age order, oldest first. */
    double ma[BDY_FORECAST_MA_MAX];
    for (unsigned i = 0; i < f->ma_n; i++) {
        unsigned start = f->ma_n < f->o.ma_window ? 0 : f->ma_pos;
        ma[i] = f->ma[(start + i) % f->o.ma_window];
    }
    json_object_object_add(j, "recent", jarray(ma, f->ma_n));
    json_object_object_add(j, "mse", jnum(f->mse));
    json_object_object_add(j, "mseWeight", jnum(f->mse_weight));
    json_object_object_add(j, "lastObservation", jnum(f->last_obs));
    return j;
}

static int get_num(json_object *j, const char *key, double lo, double hi, double *out,
                   bdy_errbuf *eb)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(j, key, &v) ||
        (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int)))
        return bdy_fail(eb, BDY_EPARSE, "forecast state: %s: must be a number", key);
    double d = json_object_get_double(v);
    if (!isfinite(d) || d < lo || d > hi)
        return bdy_fail(eb, BDY_EPARSE, "forecast state: %s: out of range (%g)", key, d);
    *out = d;
    return 0;
}

static int get_bool(json_object *j, const char *key, bool *out, bdy_errbuf *eb)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(j, key, &v) || !json_object_is_type(v, json_type_boolean))
        return bdy_fail(eb, BDY_EPARSE, "forecast state: %s: must be true or false", key);
    *out = json_object_get_boolean(v);
    return 0;
}

/* Reads an array of exactly n numbers (null allowed when nan_ok: NaN). */
static int get_array(json_object *j, const char *key, double *out, size_t n, bool nan_ok,
                     bdy_errbuf *eb)
{
    json_object *a = NULL;
    if (!json_object_object_get_ex(j, key, &a) || !json_object_is_type(a, json_type_array) ||
        json_object_array_length(a) != n)
        return bdy_fail(eb, BDY_EPARSE, "forecast state: %s: must be an array of %zu numbers", key,
                        n);
    for (size_t i = 0; i < n; i++) {
        json_object *v = json_object_array_get_idx(a, i);
        if (v == NULL && nan_ok) {
            out[i] = NAN;
            continue;
        }
        if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
            return bdy_fail(eb, BDY_EPARSE, "forecast state: %s[%zu]: must be a number", key, i);
        out[i] = json_object_get_double(v);
        if (!isfinite(out[i]) || fabs(out[i]) > 1e12)
            return bdy_fail(eb, BDY_EPARSE, "forecast state: %s[%zu]: out of range", key, i);
    }
    return 0;
}

int bdy_forecast_from_json(json_object *j, bdy_forecast **out, bdy_errbuf *eb)
{
    int rc = 0;
    bdy_forecast *f = NULL;
    double version = 0;
    double step = 0;
    double ma_window = 0;
    double v = 0;
    bool weekly = false;
    *out = NULL;
    if (!json_object_is_type(j, json_type_object))
        return bdy_fail(eb, BDY_EPARSE, "forecast state: must be an object");
    if ((rc = get_num(j, "version", STATE_VERSION, STATE_VERSION, &version, eb)) != 0 ||
        (rc = get_num(j, "stepSeconds", BDY_FORECAST_STEP_MIN_S, BDY_FORECAST_STEP_MAX_S, &step,
                      eb)) != 0 ||
        (rc = get_num(j, "maWindow", 1, BDY_FORECAST_MA_MAX, &ma_window, eb)) != 0 ||
        (rc = get_bool(j, "weekly", &weekly, eb)) != 0)
        goto out;
    bdy_forecast_opts o = {
        .step_s = (unsigned)step, .weekly = weekly, .ma_window = (unsigned)ma_window};
    if (step != (double)o.step_s || ma_window != (double)o.ma_window ||
        bdy_forecast_new(&o, &f) != 0) {
        rc = bdy_fail(eb, BDY_EPARSE, "forecast state: stepSeconds must divide a day");
        goto out;
    }
    json_object *p = NULL;
    if (!json_object_object_get_ex(j, "params", &p)) {
        rc = bdy_fail(eb, BDY_EPARSE, "forecast state: params: missing");
        goto out;
    }
    if ((rc = get_num(p, "alpha", 0, 1, &f->p.alpha, eb)) != 0 ||
        (rc = get_num(p, "beta", 0, 1, &f->p.beta, eb)) != 0 ||
        (rc = get_num(p, "gamma", 0, 1, &f->p.gamma, eb)) != 0 ||
        (rc = get_num(p, "delta", 0, 1, &f->p.delta, eb)) != 0 ||
        (rc = get_num(p, "phi", 0, 1, &f->p.phi, eb)) != 0 ||
        (rc = get_num(j, "level", -1e12, 1e12, &f->level, eb)) != 0 ||
        (rc = get_num(j, "trend", -1e12, 1e12, &f->trend, eb)) != 0 ||
        (rc = get_array(j, "season", f->season, f->day, false, eb)) != 0 ||
        (weekly && (rc = get_array(j, "weekSeason", f->wseason, f->week, false, eb)) != 0) ||
        (rc = get_array(j, "init", f->init, 2 * (size_t)f->day, true, eb)) != 0 ||
        (rc = get_bool(j, "seasonal", &f->seasonal, eb)) != 0 ||
        (rc = get_bool(j, "started", &f->started, eb)) != 0 ||
        (rc = get_num(j, "mse", 0, 1e24, &f->mse, eb)) != 0 ||
        (rc = get_num(j, "mseWeight", 0, 1, &f->mse_weight, eb)) != 0)
        goto out;
    /* A state saved when fits could choose an undamped trend. */
    if (f->p.phi > PHI_MAX)
        f->p.phi = PHI_MAX;
    /* Bucket numbers fit a double exactly far beyond any real clock. */
    if ((rc = get_num(j, "initStart", 0, 9e15, &v, eb)) != 0)
        goto out;
    f->init_start = (uint64_t)v;
    if ((rc = get_num(j, "next", 0, 9e15, &v, eb)) != 0)
        goto out;
    f->next = (uint64_t)v;
    if ((rc = get_num(j, "observed", 0, 9e15, &v, eb)) != 0)
        goto out;
    f->nobs = (uint64_t)v;
    json_object *recent = NULL;
    size_t nrecent = 0;
    if (json_object_object_get_ex(j, "recent", &recent) &&
        json_object_is_type(recent, json_type_array))
        nrecent = json_object_array_length(recent);
    if (nrecent > f->o.ma_window) {
        rc = bdy_fail(eb, BDY_EPARSE, "forecast state: recent: more than maWindow values");
        goto out;
    }
    if ((rc = get_array(j, "recent", f->ma, nrecent, false, eb)) != 0)
        goto out;
    f->ma_n = (unsigned)nrecent;
    json_object *lo = NULL;
    if (json_object_object_get_ex(j, "lastObservation", &lo) && lo != NULL &&
        (rc = get_num(j, "lastObservation", 0, 1e12, &f->last_obs, eb)) != 0)
        goto out;
    f->ma_pos = f->ma_n % f->o.ma_window;
    *out = f;
    f = NULL;
out:
    bdy_forecast_free(f);
    return rc;
}
