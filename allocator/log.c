#include "bindery/log.h"

#include "bindery/error.h"
#include "bindery/util.h"

#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static atomic_int min_level = BDY_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void bdy_log_set_level(bdy_log_level level)
{
    atomic_store(&min_level, (int)level);
}

int bdy_log_parse_level(const char *text, bdy_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (text != NULL && strcmp(text, level_names[i]) == 0) {
            *out = (bdy_log_level)i;
            return 0;
        }
    }
    return BDY_EINVAL;
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong
 * forms, no surrogates, nothing past U+10FFFF), or 0 when there is none. */
static size_t utf8_sequence(const unsigned char *s)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf; /* the second byte's range */
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    else
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

/* Appends s to line as the inside of a JSON string, escaping as needed.
 * Text that is not UTF-8 (a client's bytes in a path, say) becomes U+FFFD,
 * so every line stays valid JSON; a sequence is never cut in two. */
static size_t json_escape_into(char *line, size_t pos, size_t cap, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0' && pos + 7 < cap) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            line[pos++] = '\\';
            line[pos++] = (char)c;
            p++;
        } else if (c == '\n') {
            line[pos++] = '\\';
            line[pos++] = 'n';
            p++;
        } else if (c < 0x20) {
            pos += (size_t)snprintf(line + pos, cap - pos, "\\u%04x", c);
            p++;
        } else if (c < 0x80) {
            line[pos++] = (char)c;
            p++;
        } else {
            size_t n = utf8_sequence(p);
            if (n == 0) {
                pos += (size_t)snprintf(line + pos, cap - pos, "\\ufffd");
                p++;
            } else {
                memcpy(line + pos, p, n); /* n <= 4 fits: pos + 7 < cap */
                pos += n;
                p += n;
            }
        }
    }
    return pos;
}

void bdy_log(bdy_log_level level, const char *component, const char *fmt, ...)
{
    if ((int)level < atomic_load(&min_level) || (int)level > BDY_LOG_ERROR)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    char ts[BDY_TIMESTAMP_LEN];
    bdy_timestamp_now(ts);
    /* At most PIPE_BUF bytes: one write(2) of a line to a pipe (a
     * container's log collector) is then atomic, never interleaved. */
    char line[PIPE_BUF];
    size_t cap = sizeof(line) - 3;
    size_t pos = (size_t)snprintf(line, cap, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":\"", ts,
                                  level_names[level]);
    pos = json_escape_into(line, pos, cap, component ? component : "");
    pos += (size_t)snprintf(line + pos, cap - pos, "\",\"msg\":\"");
    pos = json_escape_into(line, pos, cap, msg);
    line[pos++] = '"';
    line[pos++] = '}';
    line[pos++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, pos);
    (void)w; /* nowhere left to report a failed log write */
}

bool bdy_log_admit(bdy_log_limit *l, unsigned period_ms, uint64_t *held)
{
    uint64_t now = bdy_monotonic_ns();
    uint64_t next = atomic_load(&l->next_ns);
    /* One thread wins each period: the one whose exchange moves it on. */
    if (now < next ||
        !atomic_compare_exchange_strong(&l->next_ns, &next, now + (uint64_t)period_ms * 1000000u)) {
        atomic_fetch_add(&l->held, 1);
        return false;
    }
    *held = atomic_exchange(&l->held, 0);
    return true;
}
