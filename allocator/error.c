#include "bindery/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *bdy_strerror(int err)
{
    switch (err) {
    case BDY_OK:
        return "success";
#define BDY__ERR_STR(name, value, desc)                                                            \
    case BDY_E##name:                                                                              \
        return desc;
        BDY_ERRNO_MAP(BDY__ERR_STR)
#undef BDY__ERR_STR
    default:
        return "unknown error";
    }
}

const char *bdy_errname(int err)
{
    switch (err) {
    case BDY_OK:
        return "OK";
#define BDY__ERR_NAME(name, value, desc)                                                           \
    case BDY_E##name:                                                                              \
        return #name;
        BDY_ERRNO_MAP(BDY__ERR_NAME)
#undef BDY__ERR_NAME
    default:
        return "UNKNOWN";
    }
}

void bdy_errbuf_clear(bdy_errbuf *eb)
{
    if (eb == NULL)
        return;
    eb->message[0] = '\0';
    eb->ncauses = 0;
}

int bdy_fail(bdy_errbuf *eb, int err, const char *fmt, ...)
{
    if (eb != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(eb->message, sizeof(eb->message), fmt, ap);
        va_end(ap);
    }
    return err;
}

void bdy_errbuf_add_cause(bdy_errbuf *eb, const char *reason, const char *field, const char *fmt,
                          ...)
{
    if (eb == NULL || eb->ncauses >= BDY_ERRBUF_MAX_CAUSES)
        return;
    bdy_cause *c = &eb->causes[eb->ncauses++];
    snprintf(c->reason, sizeof(c->reason), "%s", reason ? reason : "");
    snprintf(c->field, sizeof(c->field), "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->message, sizeof(c->message), fmt, ap);
    va_end(ap);
}
