/* Demand traces: concurrent players over time, read from a CSV file or
 * generated, for the replay benchmark and tests.
 *
 * CSV: a header line, then one row per sample. Fields are separated by ','
 * (or ';' or a tab, whichever the header uses), may be double-quoted ("" is
 * a quote), and lines may end in CRLF. Blank lines and lines starting with
 * '#' are skipped. The time and player columns are chosen by name
 * (opts.time_col / opts.value_col) or, when not given, found by the usual
 * names (time, timestamp, date, datetime, ts / players, avgplayers,
 * concurrent, ccu, value, count), case-insensitively. An optional group
 * column (e.g. a game id) splits the file into one series per value;
 * opts.group keeps only that series.
 *
 * Times: Unix seconds (or milliseconds, when above 1e11), or
 * YYYY-MM-DD[ T]HH:MM[:SS[.frac]][Z|±HH:MM], YYYY-MM-DD, YYYY/MM/DD HH:MM[:SS];
 * without a zone, UTC. Players: a number >= 0; 0, an empty field, NaN, NA
 * or null mean "missing" (a collection gap), never "no players".
 * Anything else is an error naming the file, line and column:
 *   steam.csv:17: column "AvgPlayers": not a number (got "n/a!")
 *
 * Every buffer fed from the file is capped (bytes, line length, rows,
 * groups). Pure apart from bdy_trace_load reading its file; any thread.
 */
#ifndef BINDERY_TRACE_H
#define BINDERY_TRACE_H

#include "bindery/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest trace file read. */
#define BDY_TRACE_MAX_BYTES ((size_t)256 * 1024 * 1024)
/* Longest line. */
#define BDY_TRACE_MAX_LINE 4096
/* Most columns in a line. */
#define BDY_TRACE_MAX_COLUMNS 64
/* Most samples in all series together. */
#define BDY_TRACE_MAX_ROWS ((size_t)20 * 1000 * 1000)
/* Most series (groups) in one file. */
#define BDY_TRACE_MAX_GROUPS 4096
/* Longest group value kept. */
#define BDY_TRACE_MAX_GROUP 128

typedef struct bdy_trace_point {
    double t;       /* Unix seconds */
    double players; /* concurrent players; NaN = missing */
} bdy_trace_point;

/* One series, sorted by time. */
typedef struct bdy_trace {
    char group[BDY_TRACE_MAX_GROUP + 1]; /* "" without a group column */
    bdy_trace_point *points;
    size_t count;
} bdy_trace;

typedef struct bdy_trace_set {
    bdy_trace *items;
    size_t count;
} bdy_trace_set;

typedef struct bdy_trace_opts {
    const char *time_col;  /* header name; NULL: found by the usual names */
    const char *value_col; /* header name; NULL: found by the usual names */
    const char *group_col; /* header name; NULL: no grouping (unless group is set:
                              then appid, game, group, id are tried) */
    const char *group;     /* keep only this group; NULL: every group */
} bdy_trace_opts;

/* Parses CSV text (need not be NUL-terminated). name prefixes messages.
 * Returns 0 with one series per group (in order of first appearance) in
 * *out, BDY_EPARSE with "name:line: ..." in eb, BDY_ETOOBIG over a cap,
 * BDY_ENOTFOUND when opts.group matches no row, or BDY_ENOMEM. The caller
 * frees *out with bdy_trace_set_free. */
int bdy_trace_parse(const char *text, size_t len, const char *name, const bdy_trace_opts *opts,
                    bdy_trace_set *out, bdy_errbuf *eb);
/* As bdy_trace_parse on a file (at most BDY_TRACE_MAX_BYTES). */
int bdy_trace_load(const char *path, const bdy_trace_opts *opts, bdy_trace_set *out,
                   bdy_errbuf *eb);
void bdy_trace_set_free(bdy_trace_set *s);

/* The last second of year 9999: no later time is read. */
#define BDY_TRACE_MAX_UNIX_SECONDS 253402300799.0

/* Parses one timestamp in the formats above. 0 or BDY_EINVAL. */
int bdy_trace_time_parse(const char *text, double *unix_seconds);

/* A synthetic player curve: a daily cycle with an evening peak, a weekly
 * one (busier weekends), multiplicative noise, bursts (events that add
 * players and fade) and restart dips (players drop and come back). The
 * same options and seed give the same trace. */
typedef struct bdy_synth_opts {
    unsigned days;         /* length, 1..366 */
    unsigned step_s;       /* sample spacing, 60..3600 */
    double peak_players;   /* players at an ordinary weekday's peak (> 0) */
    double trough_ratio;   /* trough / peak of the daily cycle, 0..1 */
    double weekend_boost;  /* extra share of players on weekends, >= 0 */
    double noise;          /* relative standard deviation of the noise, >= 0 */
    double bursts_per_day; /* mean number of bursts a day, >= 0 */
    double burst_size;     /* a burst's extra players as a share of the level, >= 0 */
    double burst_ramp_min; /* time constant of a burst's arrival (minutes; 0: instant) */
    double dips_per_week;  /* mean number of restart dips a week, >= 0 */
    uint64_t seed;
    double start; /* Unix seconds of the first sample */
} bdy_synth_opts;

/* Defaults: 28 days of 5-minute samples, 20,000 players at peak, trough
 * 25 % of peak, weekends +25 %, 3 % noise, one burst every two days (+40 %, arriving
 * over about 15 minutes),
 * one restart dip a week, seed 1, starting Monday 2025-01-06 00:00 UTC. */
bdy_synth_opts bdy_synth_defaults(void);
/* Fills *out with the curve (group "synthetic"); BDY_EINVAL for bad
 * options. Free with bdy_trace_set_free. */
int bdy_trace_synthetic(const bdy_synth_opts *opts, bdy_trace_set *out);

/* A seeded uniform variate in (0, 1) from splitmix64 state *state (advanced):
 * the synthetic traces and the replay's claim stream, reproducible from a
 * seed everywhere (bdy_random_* in util.h are for secrets, not seedable). */
double bdy_trace_uniform(uint64_t *state);

#endif
