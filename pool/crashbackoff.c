/* A pool's crash backoff (see crashbackoff.h). */
#include "bindery/crashbackoff.h"

#include <math.h>

void bdy_crash_backoff_failed(bdy_crash_backoff *b, double now_s, double ready_for_s)
{
    if (ready_for_s >= BDY_CRASH_BACKOFF_PROVEN_S) {
        b->streak = 0;
        return;
    }
    if (b->streak > 0 && now_s - b->last_s > BDY_CRASH_BACKOFF_RESET_S)
        b->streak = 0;
    if (b->streak < 1000u) /* the delay is capped long before; no wrap */
        b->streak++;
    if (now_s > b->last_s || b->streak == 1)
        b->last_s = now_s;
}

double bdy_crash_backoff_wait(const bdy_crash_backoff *b, double now_s)
{
    if (b->streak < BDY_CRASH_BACKOFF_AFTER)
        return 0;
    double delay =
        fmin(BDY_CRASH_BACKOFF_MAX_S, pow(2.0, (double)(b->streak - BDY_CRASH_BACKOFF_AFTER)));
    double wait = b->last_s + delay - now_s;
    return wait > 0 ? wait : 0;
}
