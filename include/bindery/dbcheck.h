/* A whole-file check of a SQLite database, in the background.
 *
 * PRAGMA quick_check reads every page of a file and checks the structure
 * of its b-trees (not that indexes match their tables). Its time grows with
 * the file: about 0.2 s for a store of 80,000 worlds (256 MB) on our 2-CPU
 * machines. Run before serving, it delayed every start by that much. Run
 * here, on a thread of its own at background priority (nice, not idle: it
 * holds one read snapshot, which keeps WAL checkpoints from restarting the
 * WAL, and SQLite's own mutexes, so it must not starve), it reports damage
 * while the daemon serves. Its owner makes the outcome visible (the SQLite
 * store through its ping, so /readyz fails); the thread logs it. A check
 * that cannot finish (busy, unreadable, out of memory) is logged and tried
 * again a minute later, five times in all; a file that cannot be opened is
 * not tried again. A damaged header or schema is refused when the file is
 * opened, since those are read at once.
 *
 * Ownership: the caller owns the check from start and frees it with stop.
 * Thread-safety: start and stop from one owning thread; result from any
 * thread until stop is called.
 */
#ifndef BINDERY_DBCHECK_H
#define BINDERY_DBCHECK_H

#include "bindery/error.h"

typedef struct bdy_db_check bdy_db_check;

/* Starts checking path (an existing SQLite file) on a thread named
 * thread_name; the outcome is logged under component. BDY_ENOMEM, or
 * BDY_EIO when the thread cannot start. */
int bdy_db_check_start(const char *path, const char *thread_name, const char *component,
                       bdy_db_check **out, bdy_errbuf *eb);

/* BDY_EBUSY while the check runs (retries included); then 0 if it found
 * no damage, BDY_ECORRUPT with the file and the first problem in eb, or the
 * error that kept it from finishing (BDY_EIO, BDY_ENOMEM) with the reason
 * in eb. */
int bdy_db_check_result(bdy_db_check *c, bdy_errbuf *eb);

/* Interrupts a running check (or its wait for a retry), waits for its
 * thread and frees c. NULL allowed. */
void bdy_db_check_stop(bdy_db_check *c);

#endif
