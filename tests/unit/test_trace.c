/* Trace reading: columns by name or flag, groups, timestamp formats, gaps
 * and zeros as missing, garbage lines named; the synthetic generator. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bindery/trace.h"

#include <math.h>
#include <string.h>

static int parse(const char *text, const bdy_trace_opts *o, bdy_trace_set *s, bdy_errbuf *eb)
{
    bdy_errbuf_clear(eb);
    return bdy_trace_parse(text, strlen(text), "t.csv", o, s, eb);
}

static void test_grouped_hourly_export(void **state)
{
    (void)state;
    /* Invented values in the layout of a per-game hourly export, its
     * header quoted as spreadsheet tools write it. */
    const char *csv = "\"AppID\",\"Date\",\"AvgPlayers\"\r\n"
                      "7001,2024-06-03 14:07:00,1250\r\n"
                      "7001,2024-06-03 13:05:00,1234\r\n"
                      "7002,2024-06-03 13:05:00,0\r\n"
                      "7002,2024-06-03 14:05:00,\r\n"
                      "7002,2024-06-03 15:05:00,700000\r\n";
    bdy_trace_opts o = {NULL, NULL, "AppID", NULL};
    bdy_trace_set s;
    bdy_errbuf eb;
    assert_int_equal(parse(csv, &o, &s, &eb), 0);
    assert_int_equal(s.count, 2);
    assert_string_equal(s.items[0].group, "7001");
    assert_int_equal(s.items[0].count, 2);
    /* Sorted by time. */
    assert_true(s.items[0].points[0].t == 1717419900.0);
    assert_true(s.items[0].points[0].players == 1234);
    /* A zero and an empty field are gaps, not "no players". */
    assert_true(isnan(s.items[1].points[0].players));
    assert_true(isnan(s.items[1].points[1].players));
    assert_true(s.items[1].points[2].players == 700000);
    bdy_trace_set_free(&s);
    o.group = "7002";
    assert_int_equal(parse(csv, &o, &s, &eb), 0);
    assert_int_equal(s.count, 1);
    bdy_trace_set_free(&s);
    o.group = "999";
    assert_int_equal(parse(csv, &o, &s, &eb), BDY_ENOTFOUND);
}

static void test_columns_by_flag_and_formats(void **state)
{
    (void)state;
    const char *csv = "# exported\n"
                      "when;ccu_total\n"
                      "1736121600;10\n"
                      "\"2025-01-06T00:05:00Z\";11\n"
                      "2025-01-06T01:10:00+01:00;12\n"
                      "2025/01/06 00:15;13\n"
                      "1736122800000;14\n";
    bdy_trace_opts o = {"when", "ccu_total", NULL, NULL};
    bdy_trace_set s;
    bdy_errbuf eb;
    assert_int_equal(parse(csv, &o, &s, &eb), 0);
    assert_int_equal(s.items[0].count, 5);
    for (size_t i = 0; i < 5; i++)
        assert_true(s.items[0].points[i].t == 1736121600.0 + 300.0 * (double)i);
    bdy_trace_set_free(&s);
    /* Without the flags no column is found by name: the message says so. */
    bdy_trace_opts none = {NULL, NULL, NULL, NULL};
    assert_int_equal(parse(csv, &none, &s, &eb), BDY_EPARSE);
    assert_non_null(strstr(eb.message, "t.csv:2: no time column"));
}

static void test_garbage_lines_are_named(void **state)
{
    (void)state;
    bdy_trace_set s;
    bdy_errbuf eb;
    assert_int_equal(
        parse("time,players\n2025-01-06 00:00,5\n2025-01-06 00:05,n/a!\n", NULL, &s, &eb),
        BDY_EPARSE);
    assert_string_equal(eb.message, "t.csv:3: column \"players\": not a number (got \"n/a!\")");
    assert_int_equal(parse("time,players\nyesterday,5\n", NULL, &s, &eb), BDY_EPARSE);
    assert_non_null(strstr(eb.message, "t.csv:2: column \"time\": not a time"));
    assert_int_equal(parse("time,players\n2025-01-06 00:00,5,7\n", NULL, &s, &eb), BDY_EPARSE);
    assert_non_null(strstr(eb.message, "t.csv:2: 3 columns"));
    assert_int_equal(parse("time,players\n2025-01-06 00:00,-5\n", NULL, &s, &eb), BDY_EPARSE);
    assert_int_equal(parse("time,players\n\"2025-01-06 00:00,5\n", NULL, &s, &eb), BDY_EPARSE);
    assert_non_null(strstr(eb.message, "unterminated quote"));
    assert_int_equal(parse("", NULL, &s, &eb), BDY_EPARSE);
    assert_int_equal(parse("time,players\n", NULL, &s, &eb), BDY_EPARSE);
    assert_non_null(strstr(eb.message, "no data rows"));
    assert_int_equal(parse("time,players\n2025-13-06 00:00,5\n", NULL, &s, &eb), BDY_EPARSE);
    /* A byte-order mark before the header is skipped. */
    assert_int_equal(parse("\xEF\xBB\xBFtime,players\n2025-01-06 00:00,5\n", NULL, &s, &eb), 0);
    assert_int_equal(s.items[0].count, 1);
    bdy_trace_set_free(&s);
    /* Numbers past year 9999 (in seconds or milliseconds) are no times. */
    assert_int_equal(parse("time,players\n1e300,5\n", NULL, &s, &eb), BDY_EPARSE);
    assert_int_equal(parse("time,players\n253402300800000,5\n", NULL, &s, &eb), BDY_EPARSE);
    double t = 0;
    assert_int_equal(bdy_trace_time_parse("253402300799", &t), 0);
    /* Days no calendar has, and zone offsets past a day, are no times
     * (timegm would have read 2025-02-30 as March 2). */
    assert_int_equal(bdy_trace_time_parse("2025-02-30", &t), BDY_EINVAL);
    assert_int_equal(bdy_trace_time_parse("2025-02-29 00:00", &t), BDY_EINVAL);
    assert_int_equal(bdy_trace_time_parse("2024-02-29 00:00", &t), 0);
    assert_int_equal(bdy_trace_time_parse("2025-04-31T10:00:00Z", &t), BDY_EINVAL);
    assert_int_equal(bdy_trace_time_parse("2025-01-06T10:00:00+99:99", &t), BDY_EINVAL);
    assert_int_equal(bdy_trace_time_parse("2025-01-06T10:00:00+05:30", &t), 0);
}

static void test_synthetic(void **state)
{
    (void)state;
    bdy_synth_opts o = bdy_synth_defaults();
    o.days = 14;
    bdy_trace_set a;
    bdy_trace_set b;
    assert_int_equal(bdy_trace_synthetic(&o, &a), 0);
    assert_int_equal(bdy_trace_synthetic(&o, &b), 0);
    assert_int_equal(a.items[0].count, 14 * 288);
    double lo = INFINITY;
    double hi = 0;
    for (size_t i = 0; i < a.items[0].count; i++) {
        assert_true(a.items[0].points[i].players == b.items[0].points[i].players);
        lo = fmin(lo, a.items[0].points[i].players);
        hi = fmax(hi, a.items[0].points[i].players);
    }
    /* A daily cycle with a deep trough and bursts above the ordinary peak. */
    assert_true(lo < 0.3 * o.peak_players);
    assert_true(hi > o.peak_players);
    bdy_trace_set_free(&b);
    /* Another seed, another trace. */
    o.seed++;
    assert_int_equal(bdy_trace_synthetic(&o, &b), 0);
    bool differs = false;
    for (size_t i = 0; i < a.items[0].count && !differs; i++)
        differs = a.items[0].points[i].players != b.items[0].points[i].players;
    assert_true(differs);
    bdy_trace_set_free(&a);
    bdy_trace_set_free(&b);
    o.days = 0;
    assert_int_equal(bdy_trace_synthetic(&o, &a), BDY_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grouped_hourly_export),
        cmocka_unit_test(test_columns_by_flag_and_formats),
        cmocka_unit_test(test_garbage_lines_are_named),
        cmocka_unit_test(test_synthetic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
