/* Background WAL checkpoints for one SQLite database file.
 *
 * A commit that crosses SQLite's auto-checkpoint threshold copies the WAL
 * back into the database on the committing thread, so every thousandth
 * commit or so pays milliseconds for it. Owners of a hot write path turn
 * auto-checkpoints off on their write connection
 * (sqlite3_wal_autocheckpoint(db, 0)) and start one of these: a thread with
 * its own connection that runs a PASSIVE checkpoint every period. PASSIVE
 * never blocks writers or readers; the WAL restarts from its beginning at
 * the next commit once all of it has been copied back, so the file stays the
 * same size and commits overwrite it rather than grow it. Readers that keep
 * the WAL busy all the time can stop that restart; once the WAL is larger
 * than a limit, a RESTART checkpoint waits for them (holding writers back
 * for that moment) so the file stops growing.
 *
 * Thread-safety: start and stop from one owning thread.
 */
#ifndef BINDERY_WALCHECKPOINT_H
#define BINDERY_WALCHECKPOINT_H

#include "bindery/error.h"

#include <stddef.h>

typedef struct bdy_wal_checkpointer bdy_wal_checkpointer;

/* Opens path (which must exist, in WAL mode) and starts the thread, named
 * thread_name, at background priority. restart_over_bytes: the WAL size
 * beyond which RESTART checkpoints run (0: never). BDY_EIO with the file
 * named in eb. */
int bdy_wal_checkpointer_start(const char *path, unsigned period_ms, size_t restart_over_bytes,
                               const char *thread_name, bdy_wal_checkpointer **out, bdy_errbuf *eb);
/* Stops the thread and closes its connection. NULL allowed. */
void bdy_wal_checkpointer_stop(bdy_wal_checkpointer *c);

#endif
