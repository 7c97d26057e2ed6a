/* A pool's crash backoff: how long its controller holds back creations
 * while its worlds keep failing.
 *
 * Failures are counted in a streak. From the BDY_CRASH_BACKOFF_AFTER-th
 * on, creations wait 1 s, then 2, 4, ... up to BDY_CRASH_BACKOFF_MAX_S,
 * counted from the latest failure. The streak starts over when
 *   - a world that had been Ready for BDY_CRASH_BACKOFF_PROVEN_S fails:
 *     the pool's worlds do run, and this is one world's crash, replaced at
 *     once (a large pool whose worlds crash now and then, independently,
 *     would otherwise back off for good), or
 *   - no counted failure came for BDY_CRASH_BACKOFF_RESET_S.
 *
 * The reset period is longer than the longest delay on purpose. The first
 * version counted the failures of the last 60 s, with a 60 s cap: a pool
 * held back for a minute found its window empty and started a burst at
 * full rate, so a crash-looping pool never stayed backed off.
 *
 * Plain data, no clock and no lock: the caller passes monotonic seconds
 * and guards it like the rest of its pool's state. Zeroed is a pool with
 * no failure. */
#ifndef BINDERY_CRASHBACKOFF_H
#define BINDERY_CRASHBACKOFF_H

#define BDY_CRASH_BACKOFF_AFTER 3
#define BDY_CRASH_BACKOFF_MAX_S 60.0
#define BDY_CRASH_BACKOFF_PROVEN_S 60.0
#define BDY_CRASH_BACKOFF_RESET_S 300.0

typedef struct bdy_crash_backoff {
    unsigned streak; /* failures counted since the last start-over */
    double last_s;   /* when the latest of them was seen */
} bdy_crash_backoff;

/* A world of the pool failed at now_s of a crash of its own, after
 * ready_for_s seconds Ready (0: it never was). */
void bdy_crash_backoff_failed(bdy_crash_backoff *b, double now_s, double ready_for_s);

/* Seconds from now_s until the pool may create again; 0: now. */
double bdy_crash_backoff_wait(const bdy_crash_backoff *b, double now_s);

#endif
