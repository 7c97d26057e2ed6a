#include "bindery/log.h"

#include "bindery/error.h"
#include "bindery/util.h"

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

/* Appends s to line as the inside of a JSON string, escaping as needed. */
static size_t json_escape_into(char *line, size_t pos, size_t cap, const char *s)
{
    for (; *s != '\0' && pos + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            line[pos++] = '\\';
            line[pos++] = (char)c;
        } else if (c == '\n') {
            line[pos++] = '\\';
            line[pos++] = 'n';
        } else if (c < 0x20) {
            pos += (size_t)snprintf(line + pos, cap - pos, "\\u%04x", c);
        } else {
            line[pos++] = (char)c;
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
    char line[4608];
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
