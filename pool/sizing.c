/* Base-stock sizing of warm pools; see sizing.h. */
#include "bindery/sizing.h"

#include "bindery/util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define DAY_S 86400.0
/* The shortest lead time the sizer takes (seconds). */
#define MIN_LEAD_S 1.0
/* Below this log-probability of zero demand the exact recursion would
 * underflow: use the normal approximation instead. */
#define LOG_P0_MIN (-700.0)
/* Variance below this share of the mean is treated as pure Poisson. */
#define EXTRA_VAR_EPS 1e-9

/* Inverse of the standard normal CDF (Acklam's rational approximation,
 * relative error below 1.2e-9). */
static double normal_quantile(double p)
{
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
                               -2.759285104469687e+02, 1.383577518672690e+02,
                               -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
                               -1.556989798598866e+02, 6.680131188771972e+01,
                               -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
                               -2.400758277161838e+00, -2.549732539343734e+00,
                               4.374664141464968e+00,  2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                               3.754408661907416e+00};
    const double lo = 0.02425;
    if (p < lo) {
        double q = sqrt(-2 * log(p));
        return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
               ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    }
    if (p > 1 - lo) {
        double q = sqrt(-2 * log(1 - p));
        return -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
               ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    }
    double q = p - 0.5;
    double r = q * q;
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
           (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

/* Smallest S with P[D <= S - 1] >= p by the normal approximation, at
 * least 1. */
static unsigned normal_stock(double mean, double var, double p)
{
    double s = ceil(mean + normal_quantile(p) * sqrt(var) - 0.5) + 1;
    return s < 1 ? 1 : s > 4e9 ? 4000000000u : (unsigned)s;
}

/* The exact quantile (extra_var 0: Poisson), normal beyond the recursion's
 * range. mean > 0, p in (0, 1). */
static unsigned exact_stock(double mean, double extra_var, double p)
{
    double var = mean + extra_var;
    /* Negative binomial with r = mean^2 / extra_var and success odds
     * q = mean / (r + mean); r → infinity is the Poisson. */
    double r = extra_var > 0 ? mean * mean / extra_var : INFINITY;
    double q = extra_var > 0 ? mean / (r + mean) : 0;
    double log_p0 = extra_var > 0 ? r * log1p(-q) : -mean;
    double limit = mean + 60 * sqrt(var) + 100;
    if (log_p0 < LOG_P0_MIN || limit > 4e9)
        return normal_stock(mean, var, p);
    double pmf = exp(log_p0);
    double cdf = pmf;
    unsigned k = 0;
    while (cdf < p && k < (unsigned)limit) {
        pmf *= extra_var > 0 ? (k + r) / (k + 1) * q : mean / (k + 1);
        k++;
        cdf += pmf;
    }
    return k + 1;
}

unsigned bdy_base_stock(double mean, double extra_var, double p)
{
    if (!(mean > 0) || !isfinite(mean))
        return 0;
    if (!(p > 0))
        return 0;
    if (p >= 1)
        p = 1 - 1e-12;
    if (!(extra_var > EXTRA_VAR_EPS * mean) || !isfinite(extra_var))
        extra_var = 0;
    /* Forecast error only adds stock. While it is at most the mean
     * squared (r >= 1) the negative binomial's quantile grows with it;
     * beyond, nearly all the mass moves to zero and the quantile falls,
     * to 1 at last: one burst would shrink the pool for the hours the
     * error takes to decay. There the quantile at r = 1 is kept, and the
     * normal approximation takes over once it is larger. */
    double capped = extra_var < mean * mean ? extra_var : mean * mean;
    unsigned s = exact_stock(mean, capped, p);
    if (extra_var > capped) {
        unsigned normal = normal_stock(mean, mean + extra_var, p);
        s = s > normal ? s : normal;
    }
    /* At low service levels (a median, say) the negative binomial's
     * quantile sits below the Poisson's from the start: never less than
     * without the error. */
    unsigned poisson = extra_var > 0 ? exact_stock(mean, 0, p) : s;
    s = s > poisson ? s : poisson;
    return s;
}

/* True when an override window is open at now or opens within `early`
 * seconds. */
static bool override_active(const bdy_override *o, double now, double early)
{
    if (!o->daily)
        return now >= o->from - early && now < o->to;
    double day0 = floor(now / DAY_S) * DAY_S;
    for (int k = -1; k <= 1; k++) {
        double start = day0 + k * DAY_S + o->from;
        double end = day0 + k * DAY_S + o->to;
        if (o->to <= o->from)
            end += DAY_S;
        if (now >= start - early && now < end)
            return true;
    }
    return false;
}

double bdy_sizing_decayed(double level, double at, double now)
{
    double dt = now - at > 0 ? now - at : 0;
    return level * exp(-dt / BDY_SIZING_DOWN_TAU_S);
}

bdy_sizing bdy_size_pool(const bdy_sizing_input *in, double now)
{
    bdy_sizing out;
    memset(&out, 0, sizeof(out));
    /* No world starts in no time: a lead time of 0 (leadTimeSeconds: 0
     * until one is measured) sized every pool at 0, and a pool at 0 with
     * minWarm 0 starts no world to measure one by. */
    double lead_min = (in->lead_time_s > MIN_LEAD_S ? in->lead_time_s : MIN_LEAD_S) / 60.0;
    double rate = in->forecast_rate > 0 ? in->forecast_rate : 0;
    if (in->recent_minutes > 0 && in->recent_rate > rate) {
        double expect = rate * in->recent_minutes;
        if (in->recent_rate * in->recent_minutes > expect + 3 * sqrt(expect) + 1)
            rate = in->recent_rate;
    }
    double sd = in->forecast_sd > 0 ? in->forecast_sd * lead_min : 0;
    double p = in->service_level;
    out.base = bdy_base_stock(rate * lead_min, sd * sd, p);
    if (in->recent_misses > 0 && in->recent_rate > 0)
        out.floor = bdy_base_stock(in->recent_rate * lead_min, 0, p);
    for (size_t i = 0; i < in->noverrides; i++) {
        const bdy_override *o = &in->overrides[i];
        /* Early enough to create the worlds and for them to start. */
        double rate_s = in->creation_rate >= 1 ? in->creation_rate : 1;
        double early = lead_min * 60.0 + o->min_warm / rate_s; /* the lead time, 1 s at least */
        if (override_active(o, now, early) && o->min_warm > out.override)
            out.override = o->min_warm;
    }
    double want = out.base;
    if (out.floor > want)
        want = out.floor;
    if (out.override > want)
        want = out.override;
    double level = want;
    if (in->prev_target >= 0 && want < in->prev_target) {
        double decayed = bdy_sizing_decayed(in->prev_target, in->prev_at, now);
        if (decayed > level)
            level = decayed;
    }
    double hi = in->max_warm;
    double room = in->max_worlds > in->allocated ? (double)(in->max_worlds - in->allocated) : 0;
    if (room < hi)
        hi = room;
    if (level > hi)
        level = hi;
    /* The remembered level is demand's, not minWarm's: a floor the operator
     * lowers applies at once instead of decaying from the old one (and a
     * reconcile racing a reload cannot bring the old floor back). */
    out.level = level;
    double lo = in->min_warm < hi ? in->min_warm : hi;
    if (level < lo)
        level = lo;
    /* A target a hair above an integer rounds down: decay never ends exactly. */
    out.target = (unsigned)ceil(level - 1e-6);
    return out;
}

int bdy_override_time_parse(const char *text, bool *daily, double *seconds)
{
    if (text == NULL || strlen(text) > BDY_OVERRIDE_TIME_MAX)
        return BDY_EINVAL;
    size_t len = strlen(text);
    /* DD:DD or DD:DD:DD, digits and colons only (sscanf's %u also took a
     * sign or spaces: "09:+3", " 9:30"). */
    bool shaped = len == 5 || len == 8;
    for (size_t i = 0; shaped && i < len; i++)
        shaped = i % 3 == 2 ? text[i] == ':' : (text[i] >= '0' && text[i] <= '9');
    if (shaped) {
        unsigned h = (unsigned)(text[0] - '0') * 10 + (unsigned)(text[1] - '0');
        unsigned m = (unsigned)(text[3] - '0') * 10 + (unsigned)(text[4] - '0');
        unsigned s = len == 8 ? (unsigned)(text[6] - '0') * 10 + (unsigned)(text[7] - '0') : 0;
        if (h > 24 || m > 59 || s > 59 || (h == 24 && (m > 0 || s > 0)))
            return BDY_EINVAL;
        *daily = true;
        *seconds = h * 3600.0 + m * 60.0 + s;
        return 0;
    }
    double t = 0;
    /* RFC 3339 allows the T (and Z) in lower case (section 5.6, NOTE). */
    if (len >= 20 && (text[10] == 'T' || text[10] == 't') && bdy_timestamp_parse(text, &t) == 0) {
        *daily = false;
        *seconds = t;
        return 0;
    }
    return BDY_EINVAL;
}
