/* The final report (text and JSON), progress lines and CSV rows. */
#include "loadtest.h"

#include <stdarg.h>
#include <string.h>

void lt_report_init(lt_report *r, lt_mode mode)
{
    memset(r, 0, sizeof(*r));
    r->mode = mode;
    lt_hist_init(&r->latency);
    lt_hist_init(&r->latency_all);
    lt_hist_init(&r->startup);
}

static const char *mode_name(lt_mode m)
{
    return m == LT_MODE_WORLDS ? "worlds" : m == LT_MODE_CHURN ? "churn" : "allocate";
}

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static void print_hist(FILE *f, const char *what, const lt_hist *h)
{
    if (h->n == 0) {
        fprintf(f, "%-22s none\n", what);
        return;
    }
    fprintf(f, "%-22s min %.3f  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (ms)\n", what,
            ms(h->min_ns), ms(lt_hist_quantile(h, 0.5)), ms(lt_hist_quantile(h, 0.9)),
            ms(lt_hist_quantile(h, 0.99)), ms(lt_hist_quantile(h, 0.999)), ms(h->max_ns));
}

static void print_tally(FILE *f, const char *what, const lt_tally *t)
{
    if (t->n == 0 && t->other == 0)
        return;
    fprintf(f, "%s\n", what);
    for (size_t i = 0; i < t->n; i++)
        fprintf(f, "  %10llu  %s\n", (unsigned long long)t->items[i].count, t->items[i].key);
    if (t->other > 0)
        fprintf(f, "  %10llu  (other kinds)\n", (unsigned long long)t->other);
}

void lt_report_print(const lt_report *r, FILE *f)
{
    double rate = r->elapsed_s > 0 ? (double)r->sent / r->elapsed_s : 0;
    fprintf(f, "bindery-load-test %s against %s\n", mode_name(r->mode), r->target);
    if (r->mode == LT_MODE_WORLDS) {
        fprintf(f, "%-22s %llu created of %llu, %llu failed to create\n", "worlds",
                (unsigned long long)r->ok, (unsigned long long)r->sent,
                (unsigned long long)r->failed);
        fprintf(f, "%-22s %llu Ready, %llu Failed, %llu not Ready in time\n", "startup",
                (unsigned long long)r->ready, (unsigned long long)r->world_failed,
                (unsigned long long)r->timed_out);
        print_hist(f, "create request", &r->latency);
        print_hist(f, "creation to Ready", &r->startup);
        fprintf(f, "%-22s %llu deleted, %llu left%s; %llu re-watches, %llu relists\n", "cleanup",
                (unsigned long long)r->deleted, (unsigned long long)r->left,
                r->left > 0 ? " (--keep or not gone in time)" : "",
                (unsigned long long)r->rewatches, (unsigned long long)r->relists);
    } else {
        fprintf(f, "%-22s %llu in %.2f s = %.1f/s", "claims", (unsigned long long)r->sent,
                r->elapsed_s, rate);
        if (r->rate > 0)
            fprintf(f, " (open loop at %.1f/s)\n", r->rate);
        else
            fprintf(f, " (closed loop, %u in flight)\n", r->concurrency);
        fprintf(f, "%-22s %llu ok, %llu failed\n", "results", (unsigned long long)r->ok,
                (unsigned long long)r->failed);
        print_hist(f, "claim latency", &r->latency);
        if (r->failed > 0)
            print_hist(f, "  with failures", &r->latency_all);
        uint64_t granted = r->warm + r->cold;
        if (granted > 0)
            fprintf(f, "%-22s %.1f %% (%llu warm, %llu cold)\n", "warm-hit share",
                    100.0 * (double)r->warm / (double)granted, (unsigned long long)r->warm,
                    (unsigned long long)r->cold);
        fprintf(f, "%-22s %llu released, %llu failed, %llu still claimed\n", "releases",
                (unsigned long long)r->released, (unsigned long long)r->release_failed,
                (unsigned long long)r->still_held);
        if (r->server_known)
            fprintf(f, "%-22s %.0f succeeded, %.0f failed (bindery_allocations_total)\n",
                    "server counted", r->server_success, r->server_failed);
        else if (r->server_restarted)
            fprintf(f,
                    "%-22s unknown: bindery restarted during the run (its counters began "
                    "again)\n",
                    "server counted");
        if (r->lag_known) {
            fprintf(f, "%-22s queue depth max %.0f, mean %.1f; %.1f reconciles/s, %.0f errors\n",
                    "reconciler", r->queue_depth_max, r->queue_depth_mean, r->reconciles_per_s,
                    r->reconcile_errors);
            if (r->startup_p50_s >= 0)
                fprintf(f, "%-22s p50 %.3f s, p99 %.3f s (bindery_world_startup_seconds)\n",
                        "world startup", r->startup_p50_s, r->startup_p99_s);
            if (r->drained)
                fprintf(f, "%-22s %.2f s after the last cycle\n", "reconcile lag", r->drain_s);
            else
                fprintf(f, "%-22s not drained within %.2f s\n", "reconcile lag", r->drain_s);
        }
    }
    print_tally(f, "errors:", &r->errors);
    print_tally(f, "release errors:", &r->release_errors);
    if (r->aborted)
        fprintf(f, "ABORTED: %s\n", r->abort_reason);
    else if (r->interrupted)
        fprintf(f, "STOPPED early by Ctrl-C\n");
}

static json_object *hist_json(const lt_hist *h)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "count", json_object_new_int64((int64_t)h->n));
    static const struct {
        const char *name;
        double q;
    } qs[] = {{"p50_ms", 0.5}, {"p90_ms", 0.9}, {"p99_ms", 0.99}, {"p999_ms", 0.999}};
    json_object_object_add(o, "min_ms", json_object_new_double(ms(h->min_ns)));
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++)
        json_object_object_add(o, qs[i].name,
                               json_object_new_double(ms(lt_hist_quantile(h, qs[i].q))));
    json_object_object_add(o, "max_ms", json_object_new_double(ms(h->max_ns)));
    json_object_object_add(o, "mean_ms",
                           json_object_new_double(h->n ? h->sum_ns / (double)h->n / 1e6 : 0));
    return o;
}

static json_object *tally_json(const lt_tally *t)
{
    json_object *o = json_object_new_object();
    for (size_t i = 0; i < t->n; i++)
        json_object_object_add(o, t->items[i].key,
                               json_object_new_int64((int64_t)t->items[i].count));
    if (t->other > 0)
        json_object_object_add(o, "other", json_object_new_int64((int64_t)t->other));
    return o;
}

static void add_u(json_object *o, const char *k, uint64_t v)
{
    json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

static void add_d(json_object *o, const char *k, double v)
{
    json_object_object_add(o, k, json_object_new_double(v));
}

json_object *lt_report_json(const lt_report *r)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "mode", json_object_new_string(mode_name(r->mode)));
    json_object_object_add(o, "target", json_object_new_string(r->target));
    add_d(o, "elapsed_s", r->elapsed_s);
    add_u(o, "count", r->sent);
    add_d(o, "rate", r->elapsed_s > 0 ? (double)r->sent / r->elapsed_s : 0);
    add_d(o, "target_rate", r->rate);
    add_u(o, "ok", r->ok);
    add_u(o, "errors", r->failed);
    json_object_object_add(o, "errors_by_code", tally_json(&r->errors));
    json_object_object_add(o, "latency", hist_json(&r->latency));
    if (r->mode != LT_MODE_WORLDS)
        json_object_object_add(o, "latency_all", hist_json(&r->latency_all));
    if (r->mode == LT_MODE_WORLDS) {
        add_u(o, "ready", r->ready);
        add_u(o, "failed", r->world_failed);
        add_u(o, "timed_out", r->timed_out);
        json_object_object_add(o, "startup", hist_json(&r->startup));
        add_u(o, "deleted", r->deleted);
        add_u(o, "left", r->left);
        add_u(o, "rewatches", r->rewatches);
        add_u(o, "relists", r->relists);
    } else {
        add_u(o, "warm", r->warm);
        add_u(o, "cold", r->cold);
        uint64_t g = r->warm + r->cold;
        add_d(o, "warm_hit_share", g ? (double)r->warm / (double)g : 0);
        add_u(o, "released", r->released);
        add_u(o, "release_failed", r->release_failed);
        add_u(o, "still_held", r->still_held);
        json_object_object_add(o, "release_errors_by_code", tally_json(&r->release_errors));
        json_object_object_add(o, "server_restarted", json_object_new_boolean(r->server_restarted));
        if (r->server_known) {
            json_object *s = json_object_new_object();
            add_d(s, "success", r->server_success);
            add_d(s, "failed", r->server_failed);
            json_object_object_add(o, "server_allocations", s);
        }
        if (r->lag_known) {
            json_object *l = json_object_new_object();
            add_d(l, "queue_depth_max", r->queue_depth_max);
            add_d(l, "queue_depth_mean", r->queue_depth_mean);
            add_d(l, "reconciles_per_s", r->reconciles_per_s);
            add_d(l, "reconcile_errors", r->reconcile_errors);
            add_d(l, "startup_p50_s", r->startup_p50_s);
            add_d(l, "startup_p99_s", r->startup_p99_s);
            add_d(l, "drain_s", r->drain_s);
            json_object_object_add(l, "drained", json_object_new_boolean(r->drained));
            json_object_object_add(o, "reconcile", l);
        }
    }
    json_object_object_add(o, "aborted", json_object_new_boolean(r->aborted));
    json_object_object_add(o, "interrupted", json_object_new_boolean(r->interrupted));
    if (r->aborted)
        json_object_object_add(o, "abort_reason", json_object_new_string(r->abort_reason));
    return o;
}

int lt_report_exit_code(const lt_report *r, double max_error_ratio)
{
    if (r->aborted)
        return LT_EXIT_ABORTED;
    uint64_t bad = r->failed + r->release_failed;
    if (r->mode == LT_MODE_WORLDS)
        bad += r->world_failed + r->timed_out;
    uint64_t total = r->sent + r->released + r->release_failed;
    if (bad > 0 && (total == 0 || (double)bad / (double)total > max_error_ratio))
        return LT_EXIT_ERRORS;
    return LT_EXIT_OK;
}

void lt_csv_row(lt_output *o, uint64_t seq, const char *op, double start_s, double latency_ms,
                long status, const char *result, const char *detail)
{
    if (o->csv == NULL)
        return;
    /* detail is a world name or an error key: no commas or quotes in the
     * former, and error keys are quoted with inner quotes doubled. */
    fprintf(o->csv, "%llu,%s,%.6f,%.3f,%ld,%s,\"", (unsigned long long)seq, op, start_s, latency_ms,
            status, result);
    for (const char *p = detail ? detail : ""; *p; p++)
        fputs(*p == '"' ? "\"\"" : (char[2]){*p, 0}, o->csv);
    fputs("\"\n", o->csv);
}

void lt_progress_tick(lt_output *o, double now_s, bool force, const char *fmt, ...)
{
    if (o->progress == LT_PROGRESS_OFF)
        return;
    double every = o->progress == LT_PROGRESS_TTY ? 0.5 : 5.0;
    if (!force && now_s - o->last_progress_s < every)
        return;
    o->last_progress_s = now_s;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (o->progress == LT_PROGRESS_TTY) {
        fprintf(stderr, "\r\033[K%s", line);
        o->line_open = true;
    } else {
        fprintf(stderr, "%s\n", line);
    }
    fflush(stderr);
}

void lt_progress_end(lt_output *o)
{
    if (o->line_open) {
        fputc('\n', stderr);
        o->line_open = false;
    }
}
