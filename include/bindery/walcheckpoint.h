/* Background WAL checkpoints for one SQLite database file.
 *
 * A commit that crosses SQLite's auto-checkpoint threshold copies the WAL
 * back into the database on the committing thread, so every thousandth
 * commit or so pays milliseconds for it. Owners of a hot write path turn
 * auto-checkpoints off on their write connection
 * (sqlite3_wal_autocheckpoint(db, 0)), install
 * bdy_wal_writer_busy_handler() on it, and start one of these: a thread
 * with its own connection that runs a PASSIVE checkpoint every period.
 * PASSIVE never blocks writers or readers, but under steady writes it never
 * catches up with the last commit, and only a fully copied WAL restarts
 * from its beginning. So when frames are left, a RESTART checkpoint
 * follows: it copies the frames committed meanwhile and makes the next
 * writer start the WAL over, holding writers back for that copy and two
 * fsyncs (a millisecond or two); if the write lock or a reader keeps it
 * waiting for more than 2 ms it gives up until the next period (writers
 * wait at bdy_wal_checkpointer_before_write() meanwhile, so back-to-back
 * commits cannot starve it). The WAL then stays the same size and
 * commits overwrite its blocks rather than append new ones (appending
 * costs each fdatasync a size change, and the file grows without bound).
 * Readers that keep the WAL busy all the time can defeat that; once the
 * WAL holds more frames than a limit, the RESTART waits up to 5 s for them,
 * holding writers back meanwhile; when even that fails it warns, and waits
 * that long again only after 30 s.
 *
 * Thread-safety: start and stop from one owning thread; the other calls
 * from any thread.
 */
#ifndef BINDERY_WALCHECKPOINT_H
#define BINDERY_WALCHECKPOINT_H

#include "bindery/error.h"

#include <sqlite3.h>
#include <stddef.h>

typedef struct bdy_wal_checkpointer bdy_wal_checkpointer;

/* Opens path (which must exist, in WAL mode) and starts the thread, named
 * thread_name, at normal priority (a RESTART holds the writers back until
 * it ends). restart_over_bytes: the size of the WAL frames in use beyond
 * which a RESTART waits up to 5 s for readers (0: never). BDY_EIO with the
 * file named in eb. */
int bdy_wal_checkpointer_start(const char *path, unsigned period_ms, size_t restart_over_bytes,
                               const char *thread_name, bdy_wal_checkpointer **out, bdy_errbuf *eb);
/* Stops the thread and closes its connection. NULL allowed. */
void bdy_wal_checkpointer_stop(bdy_wal_checkpointer *c);

/* The owner's writer calls this before each write transaction (c may be
 * NULL): it returns at once, unless a RESTART is running; then it waits
 * for it to end. Without it back-to-back commits can keep the RESTART from
 * ever getting the write lock. Any thread. */
void bdy_wal_checkpointer_before_write(bdy_wal_checkpointer *c);

/* Caps the size the owner's writer leaves the WAL file at when it starts
 * the WAL over (PRAGMA journal_size_limit): without it one burst leaves a
 * file that large for good. The owners pass their restart_over_bytes.
 * 0 or BDY_EIO. */
int bdy_wal_writer_size_limit(sqlite3 *db, size_t bytes);

/* A busy handler for a connection that writes to a file with a
 * checkpointer, in place of sqlite3_busy_timeout(): it retries every 50 µs
 * for the first 2 ms, so a writer held back by a RESTART checkpoint goes on
 * as soon as the checkpoint ends (SQLite's own handler sleeps at least
 * 1 ms, then 2, then 5), then every millisecond up to about timeout_ms
 * (0: no retries). */
void bdy_wal_writer_busy_handler(sqlite3 *db, unsigned timeout_ms);

#endif
