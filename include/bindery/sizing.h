/* Pool sizing: how many warm worlds (Pending + Starting + Ready) a pool
 * should hold, from a demand forecast.
 *
 * A warm pool is a base-stock inventory: each claim takes a warm world and
 * the pool controller starts a replacement that takes the lead time L to
 * become Ready. With Poisson claims of rate λ the worlds still starting are
 * Poisson(λL) whatever the start-up time distribution (Palm's theorem), so
 * with a target S a claim finds a warm world with probability
 * P[D <= S - 1], D the demand over L. The target is the smallest S for
 * which that reaches the pool's serviceLevel. An uncertain forecast widens
 * D: its rate is taken as Gamma-distributed around the forecast with the
 * recent forecast error as standard deviation, which makes D negative
 * binomial (mean λL, variance λL + (σL)²).
 *
 * When the recent claims are more than the forecast can explain (above its
 * mean by three Poisson standard deviations over the recent window), the
 * recent rate replaces the forecast: a surprise is not averaged away.
 * On top of the base stock, in this order:
 *   - a floor from recent misses: when claims found no warm world in the
 *     last minutes, the base stock of the recently observed rate, so a
 *     surge is answered before the forecast catches up;
 *   - scheduled overrides ("from 17:45 to 19:00 UTC at least 200"), applied
 *     early enough for the worlds to be Ready when the window opens;
 *   - gradual scale-down: the target falls at most exponentially with time
 *     constant BDY_SIZING_DOWN_TAU_S from the previous one;
 *   - clamps: minWarm <= target <= maxWarm, and warm + allocated <= maxWorlds.
 *
 * Pure: no clock, no I/O, no shared state; any thread.
 */
#ifndef BINDERY_SIZING_H
#define BINDERY_SIZING_H

#include "bindery/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most scheduled overrides per pool. */
#define BDY_SIZING_MAX_OVERRIDES 16
/* Time constant of the gradual scale-down (seconds). */
#define BDY_SIZING_DOWN_TAU_S 600.0
/* Longest text of an override time ("2025-06-01T17:45:00+02:00"). */
#define BDY_OVERRIDE_TIME_MAX 40

/* A scheduled floor. Daily windows repeat every UTC day (from > to wraps
 * past midnight); absolute windows happen once. */
typedef struct bdy_override {
    double from; /* daily: seconds after UTC midnight; absolute: Unix seconds */
    double to;
    unsigned min_warm;
    bool daily;
} bdy_override;

/* What the sizer knows about one pool at one moment. Rates are claims per
 * minute; every field is plain data so the same input can be replayed. */
typedef struct bdy_sizing_input {
    unsigned min_warm, max_warm, max_worlds;
    double service_level;   /* 0.5..0.9999 */
    double creation_rate;   /* worlds per second the controller may create (>= 1) */
    double forecast_rate;   /* mean forecast claim rate over [now, now + lead) */
    double forecast_sd;     /* standard deviation of that rate (forecast error) */
    double lead_time_s;     /* creation → Ready */
    double recent_rate;     /* claims per minute over the last few minutes */
    double recent_minutes;  /* how many minutes recent_rate covers */
    unsigned recent_misses; /* claims that found no warm world in those minutes */
    unsigned allocated;     /* worlds now allocated (for maxWorlds) */
    double prev_target;     /* the previous unrounded target, or < 0 for none */
    double prev_at;         /* when it was computed (Unix seconds) */
    const bdy_override *overrides;
    size_t noverrides;
} bdy_sizing_input;

/* The answer, with its parts for the API and for tests. */
typedef struct bdy_sizing {
    unsigned target;   /* the warm target */
    double level;      /* unrounded demand level after scale-down smoothing and the upper
                        * clamps, before minWarm (feed back as prev_target) */
    unsigned base;     /* base stock of the forecast */
    unsigned floor;    /* from recent misses, 0 without */
    unsigned override; /* from an override active now (or about to be), 0 without */
} bdy_sizing;

/* Smallest S with P[D <= S - 1] >= p for D negative binomial with the given
 * mean and extra variance (0: Poisson). 0 when mean <= 0. p in (0, 1).
 * Never less than the Poisson's S (no error), and past extra_var = mean^2,
 * where the negative binomial's quantile would start to fall, the larger
 * of its value there and the normal approximation's: for p >= 0.75, S
 * never falls as the forecast error grows; below, it may dip by a few. */
unsigned bdy_base_stock(double mean, double extra_var, double p);
/* What a level noted at `at` has decayed to by now under the gradual
 * scale-down (never more than level; a clock gone back decays nothing). */
double bdy_sizing_decayed(double level, double at, double now);

/* The sizing at time now (Unix seconds). */
bdy_sizing bdy_size_pool(const bdy_sizing_input *in, double now);

/* Parses an override window end: "HH:MM" or "HH:MM:SS" (UTC time of day,
 * daily = true) or an RFC 3339 timestamp (absolute). BDY_EINVAL otherwise. */
int bdy_override_time_parse(const char *text, bool *daily, double *seconds);

#endif
