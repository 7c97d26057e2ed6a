/* Demand forecasting: additive Holt–Winters on a pool's claim rate.
 *
 * The series is the claim rate (claims per minute) averaged over buckets of
 * step_s seconds, aligned to the Unix epoch: bucket b covers
 * [b * step_s, (b + 1) * step_s). The seasons are aligned the same way, so a
 * daily slot is the UTC time of day and a weekly slot the UTC time of week;
 * a forecaster restarted after a gap still knows which slot comes next.
 *
 * Model (additive, damped trend, daily season s, optional weekly season w):
 *   forecast(b + h) = level + trend * (phi + ... + phi^h) + s[b+h] + w[b+h]
 * Until two days have been observed the forecast is the moving average of
 * the last ma_window observations; then level, trend and season start from
 * the classical two-day estimate. The
 * smoothing parameters are fitted on the pool's own history by
 * bdy_forecast_fit() (grid search on the SSE at the requested horizon).
 *
 * Missing observations (NaN, or buckets skipped between two observe calls)
 * leave the season untouched and let level follow the trend: a gap is not a
 * zero. Negative forecasts are reported as 0.
 *
 * Pure: no clock, no I/O. A bdy_forecast is not thread-safe; callers guard
 * it. The state round-trips through JSON so a restarted daemon continues.
 */
#ifndef BINDERY_FORECAST_H
#define BINDERY_FORECAST_H

#include "bindery/error.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bucket length bounds; a day must hold a whole number of buckets. */
#define BDY_FORECAST_STEP_MIN_S 60
#define BDY_FORECAST_STEP_MAX_S 3600
/* Default bucket: five minutes (288 daily slots). */
#define BDY_FORECAST_STEP_DEFAULT_S 300
/* Longest moving-average window (buckets). */
#define BDY_FORECAST_MA_MAX 64
/* Largest history bdy_forecast_fit() looks at (buckets): 60 days of minutes. */
#define BDY_FORECAST_FIT_MAX ((size_t)60 * 1440)

typedef struct bdy_forecast_opts {
    unsigned step_s;    /* bucket length, divides 86400, within the bounds above */
    bool weekly;        /* add a weekly season (needs a week of history to help) */
    unsigned ma_window; /* moving-average fallback window, 1..BDY_FORECAST_MA_MAX */
} bdy_forecast_opts;

typedef struct bdy_hw_params {
    double alpha; /* level, 0..1 */
    double beta;  /* trend, 0..1 */
    double gamma; /* daily season, 0..1 */
    double delta; /* weekly season, 0..1 (unused without weekly) */
    double phi;   /* trend damping, 0..1 */
} bdy_hw_params;

typedef struct bdy_forecast bdy_forecast;

/* Sensible parameters before any fit. */
bdy_hw_params bdy_hw_params_default(void);

/* A new, empty forecaster (BDY_EINVAL for bad opts, BDY_ENOMEM). Free it
 * with bdy_forecast_free (NULL allowed). */
int bdy_forecast_new(const bdy_forecast_opts *opts, bdy_forecast **out);
void bdy_forecast_free(bdy_forecast *f);

/* Feeds bucket `bucket`'s observed rate (NaN: missing). Buckets must
 * increase: an older or repeated bucket is BDY_EINVAL and changes nothing.
 * Buckets skipped since the last call count as missing. Negative or
 * non-finite values other than NaN are BDY_EINVAL. */
int bdy_forecast_observe(bdy_forecast *f, uint64_t bucket, double value);

/* Forecast of the rate in `bucket` (normally after the last observed one;
 * earlier buckets get the one-step forecast). 0 with no history. */
double bdy_forecast_at(const bdy_forecast *f, uint64_t bucket);

/* The forecast rate at an instant (Unix seconds): linear between bucket
 * centres, so a rising curve is not flattened to steps. Before the centre of
 * the first unobserved bucket it leans on the last observation. */
double bdy_forecast_rate_at(const bdy_forecast *f, double unix_seconds);

/* True once the seasonal model is in use (two days have been observed). */
bool bdy_forecast_seasonal(const bdy_forecast *f);
/* Observations fed so far (missing ones not counted). */
uint64_t bdy_forecast_observed(const bdy_forecast *f);
/* The bucket after the last one fed (0 before any). */
uint64_t bdy_forecast_next_bucket(const bdy_forecast *f);
unsigned bdy_forecast_step(const bdy_forecast *f);

/* Standard deviation of the forecast rate itself at `rate`: the recent
 * one-step error with the Poisson sampling noise of a bucket (rate * 60 /
 * step_s for counts per minute) taken out, so sizing does not count the
 * Poisson part twice. Never negative. */
double bdy_forecast_rate_sd(const bdy_forecast *f, double rate);

/* Components, for tests and diagnostics. season_at: the daily plus weekly
 * seasonal term of `bucket`. */
double bdy_forecast_level(const bdy_forecast *f);
double bdy_forecast_trend(const bdy_forecast *f);
double bdy_forecast_season_at(const bdy_forecast *f, uint64_t bucket);
bdy_hw_params bdy_forecast_params(const bdy_forecast *f);

/* Fits the parameters on obs[0..n) (bucket first_bucket onwards; NaN =
 * missing) minimizing the squared error `horizon` buckets ahead, then
 * rebuilds the state by running the filter over the whole history with the
 * fitted parameters. History shorter than four days keeps the current
 * parameters and only rebuilds. n is capped at BDY_FORECAST_FIT_MAX (the
 * newest part is kept). Returns 0, BDY_EINVAL or BDY_ENOMEM. */
int bdy_forecast_fit(bdy_forecast *f, const double *obs, size_t n, uint64_t first_bucket,
                     unsigned horizon);

/* Serializes the whole state (options, parameters, components, error
 * statistics). Caller owns the result. */
json_object *bdy_forecast_to_json(const bdy_forecast *f);
/* Rebuilds a forecaster from bdy_forecast_to_json output, checking every
 * field (shape, lengths, finite values, bounds): BDY_EPARSE with eb naming
 * the field when it does not fit. */
int bdy_forecast_from_json(json_object *j, bdy_forecast **out, bdy_errbuf *eb);

#endif
