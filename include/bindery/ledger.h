/* The claim ledger: the durable record of live claims in embedded mode.
 *
 * A warm claim must be durable before it is answered, and nothing else on
 * the claim path may cost more than it has to. Writing the claim into the
 * WorldInstance's status means a JSON merge patch of the whole object, its
 * validation and re-serialisation, a watch event and an informer update,
 * all through the store writer that also carries every reconciler write.
 * The ledger instead records a claim as one small record in its journal
 * (claims.journal in the data folder, journal.h): the claim is durable once
 * one aligned write and one fdatasync of that preallocated file are done,
 * and the claims module writes the allocation into the world's status
 * afterwards, off the claim path (it can always redo that from the ledger,
 * so a crash in between loses nothing). An applier thread copies the
 * journal into rows of an SQLite file (claims.db, WAL, synchronous=FULL) a
 * batch at a time, off the claim path too; a start applies what claims.db
 * lacks before anything reads it. Reads see a claim from its commit on.
 *
 * Writes are group-committed by one committer thread: it takes everything
 * queued, writes it as one journal group (one fdatasync), then reports each
 * write. Claims use the asynchronous form, so no HTTP worker thread sleeps
 * on a commit: the committer's callback answers the suspended request. A
 * burst pays one fdatasync and one wake-up per batch, not per claim.
 *
 * One world has at most one live claim (the ledger checks its own map of
 * live claims by world uid before the commit, and a start refuses a file
 * with two), so a world can never be held by two claims, whatever the
 * in-memory index believes.
 *
 * Thread-safety: every function may be called from any thread;
 * bdy_ledger_close() only when no other call is running (it commits what
 * is still queued, callbacks included, before it returns).
 */
#ifndef BINDERY_LEDGER_H
#define BINDERY_LEDGER_H

#include "bindery/error.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct bdy_ledger bdy_ledger;

/* One live claim. Strings are borrowed by bdy_ledger_add(); optional ones
 * (idem_key, request_hash, labels_json, annotations_json) may be NULL. */
typedef struct bdy_ledger_claim {
    const char *id;        /* allocation id, unique */
    const char *ns;        /* the world's namespace */
    const char *world;     /* the world's name */
    const char *world_uid; /* the world's metadata.uid: one live claim per uid */
    const char *pool;
    const char *claimant;
    const char *source;     /* "warm" or "cold" */
    const char *claimed_at; /* RFC 3339 */
    const char *idem_key;
    const char *request_hash;
    const char *labels_json;      /* the labels the claim asked for, a JSON object */
    const char *annotations_json; /* likewise */
    const char *answer_json;      /* the 201 answer as sent, without "state" */
} bdy_ledger_claim;

/* Most ops the committer takes at once (written as one journal group, or
 * a few when they do not fit in one); more queued wait for the next. */
#define BDY_LEDGER_MAX_BATCH 1024

/* Opens dir/claims.db and its journal dir/claims.journal (8 MB). A
 * missing claims.db is made when create; otherwise BDY_ENOTFOUND (an empty
 * file is opened as a new ledger all the same, so that an operator can
 * start one on purpose). A claims.db without its journal is BDY_ENOTFOUND
 * (an empty journal file starts a new one), one with another ledger's
 * journal BDY_ECORRUPT. Errors name the file. */
int bdy_ledger_open(const char *dir, bool create, bdy_ledger **out, bdy_errbuf *eb);
/* Refuses new writes (BDY_ESHUTDOWN) and returns once every write begun
 * before it has been committed and reported, callbacks returned: a caller
 * that answers requests from its callbacks calls this before it stops
 * answering, so that no claim is answered as failed and then committed.
 * Reads keep working until bdy_ledger_close (which calls this first). */
void bdy_ledger_stop_writes(bdy_ledger *l);
void bdy_ledger_close(bdy_ledger *l);

/* Starts the whole-file check (dbcheck.h) of a file that existed at open:
 * once, on a thread of its own; later calls, and a file made by open, do
 * nothing. Called once the daemon is ready, as the store's is. */
int bdy_ledger_check_start(bdy_ledger *l, bdy_errbuf *eb);

/* For /readyz: 0; BDY_ECORRUPT once the whole-file check found damage
 * (claims on a damaged page cannot be read back or released); or BDY_EIO
 * while the ledger's last journal commit, or the applier's last round,
 * failed (see bdy_write_health in util.h). The reason in eb. */
int bdy_ledger_health(bdy_ledger *l, bdy_errbuf *eb);

/* Records a claim durably: returns once it is in the journal, synced.
 * BDY_ECONFLICT: the world already has a live claim; BDY_EEXISTS: the id
 * is taken; BDY_ETOOBIG: the claim is over a quarter of the journal (2 MB);
 * BDY_EIO: the commit failed and was undone (only a disk that refuses the
 * undo too, followed by a crash, can leave it to be applied at the next
 * start: journal.h). */
int bdy_ledger_add(bdy_ledger *l, const bdy_ledger_claim *c);

/* The same, without waiting for a batch: cb(data, rc) runs exactly once,
 * when the row is committed (rc 0) or refused (rc as above) — on the
 * committer thread, or, when the ledger is idle (no commit running or
 * queued, and none for at least as long as the last one took), on the
 * caller's thread before this returns (the caller commits its own row: no
 * hand-off at low load). cb must be quick and must not call back into the
 * ledger synchronously. c and the strings it points to must stay valid
 * until cb has been called. Returns BDY_EINVAL, BDY_ENOMEM or
 * BDY_ESHUTDOWN (cb is then never called). */
typedef void (*bdy_ledger_done_cb)(void *data, int rc);
int bdy_ledger_add_async(bdy_ledger *l, const bdy_ledger_claim *c, bdy_ledger_done_cb cb,
                         void *data);

/* Deletes a claim's row durably (the claim was released and its release
 * record is durable elsewhere). BDY_ENOTFOUND when there was none. */
int bdy_ledger_remove(bdy_ledger *l, const char *id);

/* A claim read back: the fields of bdy_ledger_claim, owned by the record
 * (free with bdy_ledger_record_free, which accepts NULL). One allocation:
 * the strings follow the struct. */
typedef struct bdy_ledger_record {
    bdy_ledger_claim c;
} bdy_ledger_record;

void bdy_ledger_record_free(bdy_ledger_record *r);
/* A record holding copies of c's fields, for a caller that keeps a claim it
 * has just written instead of reading it back. NULL when out of memory. */
bdy_ledger_record *bdy_ledger_record_copy(const bdy_ledger_claim *c);
/* Whether a live claim with this id is in the ledger (memory only, cheap). */
bool bdy_ledger_has(bdy_ledger *l, const char *id);

/* Whether the world with this metadata.uid has a live claim (memory only,
 * cheap); its allocation id into id (cap bytes) when it has. */
bool bdy_ledger_claim_of_world(bdy_ledger *l, const char *world_uid, char *id, size_t cap);

/* Reads one claim by id. BDY_ENOTFOUND when there is none. */
int bdy_ledger_get(bdy_ledger *l, const char *id, bdy_ledger_record **out);

/* Calls cb for every live claim, in claim order (the strings are valid
 * during the call only), once the applier has applied every claim
 * committed so far (BDY_EIO when it cannot). A non-zero return from cb
 * stops and is returned. */
typedef int (*bdy_ledger_each_cb)(void *data, const bdy_ledger_claim *c);
int bdy_ledger_each(bdy_ledger *l, bdy_ledger_each_cb cb, void *data, bdy_errbuf *eb);

/* Number of live claims (for metrics and tests). */
size_t bdy_ledger_count(bdy_ledger *l);

#endif
