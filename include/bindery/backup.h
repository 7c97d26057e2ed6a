/* Online backup of a data folder: a copy that `bindery serve --data` can
 * start from, taken while bindery runs (or not).
 *
 * Each SQLite file (the object store bindery.db, the claim ledger
 * claims.db, the demand history demand.db) is copied with SQLite's online
 * backup API: one read transaction per file, so the copy is that file as
 * of one moment, whatever bindery writes meanwhile (WAL readers do not
 * block the writer, nor it them). The files are copied store first, then
 * ledger: a claim the store's copy does not show yet is in the ledger's,
 * which is the record of claims, and a start from the copy writes it into
 * its world as after any restart. The ledger's journal (claims.journal,
 * where a claim is durable first) is read whole just before claims.db is
 * copied and written once that copy is made, trimmed to the groups the
 * copy of claims.db lacks that a start would read (a group the read
 * caught half written ends them): a start from the copy applies them. The
 * instance-id file (which tells this bindery's world processes from
 * others') is copied too.
 *
 * Each copy is checked (PRAGMA quick_check) and made durable before it is
 * renamed into place, so a folder with a file of that name holds a whole,
 * checked copy of it. Not copied: the world logs and the kubeconfig
 * (written again at start).
 *
 * Thread-safety: none needed; it opens its own connections.
 */
#ifndef BINDERY_BACKUP_H
#define BINDERY_BACKUP_H

#include "bindery/error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct bdy_backup_report {
    unsigned files;      /* files copied */
    uint64_t bytes;      /* their size */
    double seconds;      /* wall time of the whole backup */
    char skipped[4][32]; /* optional files the folder did not have */
    unsigned nskipped;
} bdy_backup_report;

/* Copies the data folder data_dir into to, a folder that must not exist
 * or be empty (made with mode 0700). BDY_ENOTFOUND when data_dir holds no
 * store, BDY_EEXISTS when to is not empty, BDY_EBUSY when a file stayed
 * locked, BDY_ECORRUPT when a copy fails its check, BDY_EIO otherwise;
 * eb says which file. A failed backup leaves no file under its final name
 * in to. */
int bdy_backup_data_dir(const char *data_dir, const char *to, bdy_backup_report *report,
                        bdy_errbuf *eb);

#endif
