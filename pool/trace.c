/* CSV demand traces and the synthetic trace generator; see trace.h. */
#include "bindery/trace.h"

#include "bindery/util.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define QUOTE_MAX 40

static const char *const time_names[] = {"time", "timestamp", "date", "datetime", "ts", NULL};
static const char *const value_names[] = {"players", "avgplayers", "concurrent", "ccu",
                                          "value",   "count",      NULL};
static const char *const group_names[] = {"appid", "game", "group", "id", NULL};

void bdy_trace_set_free(bdy_trace_set *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->count; i++)
        free(s->items[i].points);
    free(s->items);
    s->items = NULL;
    s->count = 0;
}

/* ---- timestamps ------------------------------------------------------------------- */

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
    }
    return n > 0;
}

int bdy_trace_time_parse(const char *text, double *unix_seconds)
{
    if (text == NULL)
        return BDY_EINVAL;
    size_t len = strlen(text);
    if (len == 0 || len > 64)
        return BDY_EINVAL;
    char *end = NULL;
    /* A plain number: Unix seconds, or milliseconds when that large. */
    if (text[0] != '-' && strchr(text, '-') == NULL && strchr(text, '/') == NULL) {
        double v = strtod(text, &end);
        if (end == text || *end != '\0' || !isfinite(v) || v < 0)
            return BDY_EINVAL;
        v = v > 1e11 ? v / 1000.0 : v;
        /* Years 1970 to 9999, as the written forms: a consumer sizes its
         * arrays by a trace's span, which 1e300 would make undefined. */
        if (v > BDY_TRACE_MAX_UNIX_SECONDS)
            return BDY_EINVAL;
        *unix_seconds = v;
        return 0;
    }
    if (len < 10 || !all_digits(text, 4) || (text[4] != '-' && text[4] != '/') ||
        !all_digits(text + 5, 2) || text[7] != text[4] || !all_digits(text + 8, 2))
        return BDY_EINVAL;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = atoi(text) - 1900;
    tm.tm_mon = atoi(text + 5) - 1;
    tm.tm_mday = atoi(text + 8);
    const char *p = text + 10;
    double frac = 0;
    double offset = 0;
    if (*p == 'T' || *p == ' ') {
        p++;
        if (!all_digits(p, 2) || p[2] != ':' || !all_digits(p + 3, 2))
            return BDY_EINVAL;
        tm.tm_hour = atoi(p);
        tm.tm_min = atoi(p + 3);
        p += 5;
        if (*p == ':') {
            if (!all_digits(p + 1, 2))
                return BDY_EINVAL;
            tm.tm_sec = atoi(p + 1);
            p += 3;
            if (*p == '.') {
                const char *f = ++p;
                while (isdigit((unsigned char)*p))
                    p++;
                if (p == f || p - f > 9)
                    return BDY_EINVAL;
                char digits[16];
                snprintf(digits, sizeof(digits), "0.%.*s", (int)(p - f), f);
                frac = strtod(digits, NULL);
            }
        }
        if (*p == 'Z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            if (!all_digits(p + 1, 2) || p[3] != ':' || !all_digits(p + 4, 2) || atoi(p + 1) > 23 ||
                atoi(p + 4) > 59)
                return BDY_EINVAL;
            offset = (atoi(p + 1) * 3600.0 + atoi(p + 4) * 60.0) * (*p == '+' ? 1 : -1);
            p += 6;
        }
    }
    if (*p != '\0' || !bdy_date_valid(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday) ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60 || tm.tm_year < 0)
        return BDY_EINVAL;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return BDY_EINVAL;
    *unix_seconds = (double)t + frac - offset;
    return 0;
}

/* ---- CSV ------------------------------------------------------------------------------ */

typedef struct row {
    char *fields[BDY_TRACE_MAX_COLUMNS];
    size_t n;
} row;

/* Splits line (modified in place) into fields. BDY_EPARSE: an unterminated
 * quote or too many columns. */
static int split(char *line, char sep, row *r)
{
    r->n = 0;
    char *p = line;
    for (;;) {
        if (r->n == BDY_TRACE_MAX_COLUMNS)
            return BDY_ETOOBIG;
        char *out = p;
        r->fields[r->n++] = out;
        if (*p == '"') {
            p++;
            for (;;) {
                if (*p == '\0')
                    return BDY_EPARSE;
                if (*p == '"' && p[1] == '"') {
                    *out++ = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    *out++ = *p++;
                }
            }
            if (*p != sep && *p != '\0')
                return BDY_EPARSE;
        } else {
            while (*p != sep && *p != '\0')
                *out++ = *p++;
        }
        bool more = *p == sep;
        *out = '\0';
        if (!more)
            return 0;
        p++;
    }
}

static char *trim(char *s)
{
    while (*s == ' ')
        s++;
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == ' ')
        s[--n] = '\0';
    return s;
}

static int find_column(const row *h, const char *want, const char *const *names)
{
    for (size_t i = 0; i < h->n; i++) {
        if (want != NULL && strcasecmp(h->fields[i], want) == 0)
            return (int)i;
    }
    if (want != NULL)
        return -1;
    for (size_t k = 0; names[k] != NULL; k++) {
        for (size_t i = 0; i < h->n; i++) {
            if (strcasecmp(h->fields[i], names[k]) == 0)
                return (int)i;
        }
    }
    return -1;
}

static void quote(char *out, size_t cap, const char *s)
{
    snprintf(out, cap, "%.*s%s", QUOTE_MAX, s, strlen(s) > QUOTE_MAX ? "..." : "");
}

static bool missing_word(const char *s)
{
    return *s == '\0' || strcasecmp(s, "nan") == 0 || strcasecmp(s, "na") == 0 ||
           strcasecmp(s, "null") == 0;
}

static int group_index(bdy_trace_set *s, const char *g, size_t *cap, size_t *out)
{
    for (size_t i = s->count; i-- > 0;) {
        if (strcmp(s->items[i].group, g) == 0) {
            *out = i;
            return 0;
        }
    }
    if (s->count == BDY_TRACE_MAX_GROUPS)
        return BDY_ETOOBIG;
    if (s->count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        bdy_trace *n = realloc(s->items, ncap * sizeof(*n));
        if (n == NULL)
            return BDY_ENOMEM;
        s->items = n;
        *cap = ncap;
    }
    bdy_trace *t = &s->items[s->count];
    memset(t, 0, sizeof(*t));
    snprintf(t->group, sizeof(t->group), "%s", g);
    *out = s->count++;
    return 0;
}

static int push_point(bdy_trace *t, size_t *cap, double time, double players)
{
    if (t->count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 256;
        bdy_trace_point *n = realloc(t->points, ncap * sizeof(*n));
        if (n == NULL)
            return BDY_ENOMEM;
        t->points = n;
        *cap = ncap;
    }
    t->points[t->count].t = time;
    t->points[t->count].players = players;
    t->count++;
    return 0;
}

static int by_time(const void *a, const void *b)
{
    double x = ((const bdy_trace_point *)a)->t;
    double y = ((const bdy_trace_point *)b)->t;
    return x < y ? -1 : x > y ? 1 : 0;
}

int bdy_trace_parse(const char *text, size_t len, const char *name, const bdy_trace_opts *opts,
                    bdy_trace_set *out, bdy_errbuf *eb)
{
    int rc = 0;
    bdy_trace_set set = {NULL, 0};
    size_t set_cap = 0;
    size_t *caps = NULL; /* point capacity per group */
    size_t caps_cap = 0;
    char line[BDY_TRACE_MAX_LINE + 2];
    char header[BDY_TRACE_MAX_LINE + 2];
    row h = {{NULL}, 0};
    row r;
    int tcol = -1;
    int vcol = -1;
    int gcol = -1;
    char sep = ',';
    size_t rows = 0;
    bdy_trace_opts none = {NULL, NULL, NULL, NULL};
    if (opts == NULL)
        opts = &none;
    if (name == NULL)
        name = "<trace>";
    out->items = NULL;
    out->count = 0;
    size_t pos = 0;
    size_t lineno = 0;
    /* A UTF-8 byte-order mark, as spreadsheet exports write, is no part of
     * the first column's name. */
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        pos = 3;
    bool have_header = false;
    while (pos < len) {
        size_t start = pos;
        while (pos < len && text[pos] != '\n')
            pos++;
        size_t n = pos - start;
        if (pos < len)
            pos++;
        lineno++;
        if (n > 0 && text[start + n - 1] == '\r')
            n--;
        if (n > BDY_TRACE_MAX_LINE) {
            rc = bdy_fail(eb, BDY_ETOOBIG, "%s:%zu: line longer than %d bytes", name, lineno,
                          BDY_TRACE_MAX_LINE);
            goto out;
        }
        memcpy(line, text + start, n);
        line[n] = '\0';
        if (memchr(line, '\0', n) != NULL) {
            rc = bdy_fail(eb, BDY_EPARSE, "%s:%zu: a NUL byte in the line", name, lineno);
            goto out;
        }
        if (n == 0 || line[0] == '#')
            continue;
        if (!have_header) {
            memcpy(header, line, n + 1);
            sep = strchr(header, ',') ? ',' : strchr(header, ';') ? ';' : '\t';
            int src = split(header, sep, &h);
            if (src != 0) {
                rc = bdy_fail(eb, BDY_EPARSE, "%s:%zu: header: %s", name, lineno,
                              src == BDY_ETOOBIG ? "too many columns" : "unterminated quote");
                goto out;
            }
            for (size_t i = 0; i < h.n; i++)
                h.fields[i] = trim(h.fields[i]);
            tcol = find_column(&h, opts->time_col, time_names);
            vcol = find_column(&h, opts->value_col, value_names);
            if (opts->group_col != NULL || opts->group != NULL)
                gcol = find_column(&h, opts->group_col, group_names);
            if (tcol < 0 || vcol < 0 || ((opts->group_col || opts->group) && gcol < 0)) {
                const char *which = tcol < 0 ? "time" : vcol < 0 ? "players" : "group";
                const char *want = tcol < 0   ? opts->time_col
                                   : vcol < 0 ? opts->value_col
                                              : opts->group_col;
                if (want != NULL)
                    rc = bdy_fail(eb, BDY_EPARSE, "%s:%zu: no %s column named \"%s\"", name, lineno,
                                  which, want);
                else
                    rc = bdy_fail(eb, BDY_EPARSE,
                                  "%s:%zu: no %s column found by name; choose one with a flag",
                                  name, lineno, which);
                goto out;
            }
            have_header = true;
            continue;
        }
        int src = split(line, sep, &r);
        if (src != 0) {
            rc = bdy_fail(eb, BDY_EPARSE, "%s:%zu: %s", name, lineno,
                          src == BDY_ETOOBIG ? "too many columns" : "unterminated quote");
            goto out;
        }
        if (r.n != h.n) {
            rc = bdy_fail(eb, BDY_EPARSE, "%s:%zu: %zu columns where the header has %zu", name,
                          lineno, r.n, h.n);
            goto out;
        }
        char q[QUOTE_MAX + 8];
        const char *ttext = trim(r.fields[tcol]);
        double t = 0;
        if (bdy_trace_time_parse(ttext, &t) != 0) {
            quote(q, sizeof(q), ttext);
            rc = bdy_fail(eb, BDY_EPARSE, "%s:%zu: column \"%s\": not a time (got \"%s\")", name,
                          lineno, h.fields[tcol], q);
            goto out;
        }
        const char *vtext = trim(r.fields[vcol]);
        double v = NAN;
        if (!missing_word(vtext)) {
            char *end = NULL;
            v = strtod(vtext, &end);
            if (end == vtext || *end != '\0' || !isfinite(v) || v < 0) {
                quote(q, sizeof(q), vtext);
                rc = bdy_fail(eb, BDY_EPARSE, "%s:%zu: column \"%s\": not a number (got \"%s\")",
                              name, lineno, h.fields[vcol], q);
                goto out;
            }
            if (v == 0)
                v = NAN; /* a zero is a collection gap */
        }
        const char *g = gcol >= 0 ? trim(r.fields[gcol]) : "";
        if (strlen(g) > BDY_TRACE_MAX_GROUP) {
            rc = bdy_fail(eb, BDY_EPARSE, "%s:%zu: group longer than %d bytes", name, lineno,
                          BDY_TRACE_MAX_GROUP);
            goto out;
        }
        if (opts->group != NULL && strcmp(g, opts->group) != 0)
            continue;
        if (++rows > BDY_TRACE_MAX_ROWS) {
            rc = bdy_fail(eb, BDY_ETOOBIG, "%s:%zu: more than %zu rows", name, lineno,
                          BDY_TRACE_MAX_ROWS);
            goto out;
        }
        size_t gi = 0;
        if ((rc = group_index(&set, g, &set_cap, &gi)) != 0) {
            rc = bdy_fail(eb, rc, "%s:%zu: %s", name, lineno,
                          rc == BDY_ETOOBIG ? "too many groups" : "out of memory");
            goto out;
        }
        if (set_cap > caps_cap) {
            size_t *nc = realloc(caps, set_cap * sizeof(*nc));
            if (nc == NULL) {
                rc = bdy_fail(eb, BDY_ENOMEM, "out of memory");
                goto out;
            }
            memset(nc + caps_cap, 0, (set_cap - caps_cap) * sizeof(*nc));
            caps = nc;
            caps_cap = set_cap;
        }
        if (caps == NULL || push_point(&set.items[gi], &caps[gi], t, v) != 0) {
            rc = bdy_fail(eb, BDY_ENOMEM, "out of memory");
            goto out;
        }
    }
    if (!have_header) {
        rc = bdy_fail(eb, BDY_EPARSE, "%s: no header line", name);
        goto out;
    }
    if (set.count == 0) {
        rc = opts->group != NULL
                 ? bdy_fail(eb, BDY_ENOTFOUND, "%s: no rows of group \"%s\"", name, opts->group)
                 : bdy_fail(eb, BDY_EPARSE, "%s: no data rows", name);
        goto out;
    }
    for (size_t i = 0; i < set.count; i++)
        qsort(set.items[i].points, set.items[i].count, sizeof(bdy_trace_point), by_time);
    *out = set;
    set.items = NULL;
    set.count = 0;
out:
    free(caps);
    bdy_trace_set_free(&set);
    return rc;
}

int bdy_trace_load(const char *path, const bdy_trace_opts *opts, bdy_trace_set *out, bdy_errbuf *eb)
{
    char *text = NULL;
    size_t len = 0;
    int rc = bdy_read_file(path, BDY_TRACE_MAX_BYTES, &text, &len);
    if (rc != 0) {
        rc = bdy_fail(eb, rc, "%s: %s", path, bdy_strerror(rc));
        goto out;
    }
    rc = bdy_trace_parse(text, len, path, opts, out, eb);
out:
    free(text);
    return rc;
}

/* ---- synthetic traces ------------------------------------------------------------------- */

/* splitmix64: small, fast, and the same everywhere. */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double bdy_trace_uniform(uint64_t *state)
{
    return ((double)(next_u64(state) >> 11) + 0.5) / 9007199254740992.0;
}

static double gauss(uint64_t *s)
{
    double u = bdy_trace_uniform(s);
    double v = bdy_trace_uniform(s);
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

bdy_synth_opts bdy_synth_defaults(void)
{
    bdy_synth_opts o = {.days = 28,
                        .step_s = 300,
                        .peak_players = 20000,
                        .trough_ratio = 0.25,
                        .weekend_boost = 0.25,
                        .noise = 0.03,
                        .bursts_per_day = 0.5,
                        .burst_size = 0.4,
                        .burst_ramp_min = 15,
                        .dips_per_week = 1,
                        .seed = 1,
                        .start = 1736121600.0 /* Monday 2025-01-06 00:00 UTC */};
    return o;
}

/* Daily shape in [0, 1]: low around 05:00 UTC, high around 20:00, with a
 * shoulder in the afternoon (two harmonics). */
static double daily_shape(double hour)
{
    double x = 2 * M_PI * (hour - 20.0) / 24.0;
    double v = 0.75 * cos(x) + 0.25 * cos(2 * x);
    return (v + 0.8) / 1.8 < 0 ? 0 : (v + 0.8) / 1.8 > 1 ? 1 : (v + 0.8) / 1.8;
}

int bdy_trace_synthetic(const bdy_synth_opts *o, bdy_trace_set *out)
{
    int rc = 0;
    bdy_trace_set set = {NULL, 0};
    if (o == NULL || o->days < 1 || o->days > 366 || o->step_s < 60 || o->step_s > 3600 ||
        !(o->peak_players > 0) || !(o->trough_ratio >= 0 && o->trough_ratio <= 1) ||
        !(o->weekend_boost >= 0) || !(o->noise >= 0) || !(o->bursts_per_day >= 0) ||
        !(o->burst_size >= 0) || !(o->burst_ramp_min >= 0) || !(o->dips_per_week >= 0) ||
        !isfinite(o->start))
        return BDY_EINVAL;
    size_t n = (size_t)o->days * 86400 / o->step_s;
    set.items = calloc(1, sizeof(*set.items));
    if (set.items == NULL || (set.items[0].points = calloc(n, sizeof(bdy_trace_point))) == NULL) {
        rc = BDY_ENOMEM;
        goto out;
    }
    set.count = 1;
    snprintf(set.items[0].group, sizeof(set.items[0].group), "synthetic");
    uint64_t rng = o->seed;
    double step_h = o->step_s / 3600.0;
    double noise = 0;        /* AR(1), correlated over about an hour */
    double burst = 0;        /* extra share from events, fading */
    double burst_coming = 0; /* announced share still ramping in */
    double dip = 1;          /* restart dips: share of players left */
    double dip_left_h = 0;   /* hours until a dip starts recovering */
    double rho = exp(-step_h);
    for (size_t i = 0; i < n; i++) {
        double t = o->start + (double)i * o->step_s;
        double hour = fmod(t, 86400.0) / 3600.0;
        /* 1970-01-01 was a Thursday: day 0 = Thursday, 2 = Saturday, 3 = Sunday. */
        long weekday = (long)floor(t / 86400.0) % 7;
        bool weekend = weekday == 2 || weekday == 3;
        double level = o->trough_ratio + (1 - o->trough_ratio) * daily_shape(hour);
        if (weekend)
            level *= 1 + o->weekend_boost;
        noise = rho * noise + sqrt(1 - rho * rho) * o->noise * gauss(&rng);
        if (bdy_trace_uniform(&rng) < o->bursts_per_day * step_h / 24.0)
            burst_coming += o->burst_size * (0.5 + bdy_trace_uniform(&rng));
        /* An event draws players in over burst_ramp_min, then fades over a
         * couple of hours. */
        double moved = o->burst_ramp_min > 0
                           ? burst_coming * (1 - exp(-step_h * 60.0 / o->burst_ramp_min))
                           : burst_coming;
        burst_coming -= moved;
        burst = (burst + moved) * exp(-step_h / 1.5);
        if (dip_left_h <= 0 && dip >= 0.99 &&
            bdy_trace_uniform(&rng) < o->dips_per_week * step_h / (24.0 * 7)) {
            dip = 0.15; /* a restart: most players are thrown out */
            dip_left_h = 0.25;
        }
        if (dip_left_h > 0)
            dip_left_h -= step_h;
        else
            dip += (1 - dip) * (1 - exp(-step_h / 0.3)); /* they come back within the hour */
        double players = o->peak_players * level * (1 + noise + burst) * dip;
        set.items[0].points[i].t = t;
        set.items[0].points[i].players = players > 1 ? round(players) : 1;
    }
    set.items[0].count = n;
    *out = set;
    set.items = NULL;
    set.count = 0;
out:
    bdy_trace_set_free(&set);
    return rc;
}
