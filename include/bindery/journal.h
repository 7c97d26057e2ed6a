/* A write-ahead journal of fixed size: the claim ledger's durable write.
 *
 * A claim is durable once one aligned write and one fdatasync of a file
 * that is already allocated have finished: no file grows, no metadata
 * changes, no database page is written on the claim's path. Whatever a
 * group of records says is applied to a database elsewhere, later; the
 * group's space is reused once its owner says that is done
 * (bdy_journal_release).
 *
 * The file is made once at its full size, zero-filled, and never grows:
 * block 0 holds the file's header (its size and a random salt), the other
 * blocks a ring of groups. A group is one or more whole 4 KB blocks: a
 * header (sequence number, length, the salt, a CRC32C of header and
 * payload) and the payload. Sequence numbers increase by one per group, so
 * reading the file back (bdy_journal_scan) finds the groups written after
 * a given one in order and stops at the first one missing or torn: each
 * group is written only after the one before it was synced, so nothing
 * written after a torn group can exist. The salt, secret to the file, keeps
 * payload bytes (claim labels, say) from ever passing for a header.
 *
 * Thread-safety: bdy_journal_append from one thread at a time;
 * bdy_journal_release from any thread, also during an append.
 */
#ifndef BINDERY_JOURNAL_H
#define BINDERY_JOURNAL_H

#include "bindery/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BDY_JOURNAL_BLOCK 4096
/* The size of a new journal: 2,048 blocks, 8 MB. */
#define BDY_JOURNAL_DEFAULT_BLOCKS 2048u
#define BDY_JOURNAL_MIN_BLOCKS 16u
#define BDY_JOURNAL_MAX_BLOCKS 65536u

typedef struct bdy_journal bdy_journal;

/* Opens the journal at path. fresh: a new one, blocks long, with a new
 * salt, replaces whatever is there. Otherwise the file must exist
 * (BDY_ENOTFOUND) and keeps its own size, but an empty file is made anew
 * all the same (an operator's way to start one on purpose). A file that is
 * not a journal or has a damaged header: BDY_ECORRUPT. Errors name the
 * file. *created says whether it was made now (NULL allowed). A journal is
 * made whole under another name and renamed into place. */
int bdy_journal_open(const char *path, bool fresh, uint32_t blocks, bdy_journal **out,
                     bool *created, bdy_errbuf *eb);
/* The file's random salt: names the journal (its owner keeps it, to know
 * the journal beside it is the one it wrote). */
uint64_t bdy_journal_salt(const bdy_journal *j);
void bdy_journal_close(bdy_journal *j);

/* Reading back: cb(data, seq, payload, len) for every group with a
 * sequence number above after, in order, stopping at the first missing or
 * torn one. A non-zero return from cb stops and is returned. *last is the
 * last sequence number passed to cb (after when none); *highest the
 * highest of any whole group in the file (after when none). Above *last it
 * means damage: every group is written only after the one before it was
 * synced. (A copy taken while the journal was written can hold such
 * groups too, which is why a backup trims its copy: bdy_journal_trim.) */
typedef int (*bdy_journal_group_cb)(void *data, uint64_t seq, const void *payload, size_t len);
int bdy_journal_replay(bdy_journal *j, uint64_t after, bdy_journal_group_cb cb, void *data,
                       uint64_t *last, uint64_t *highest, bdy_errbuf *eb);

/* The same over a journal file's whole image in memory (what replay reads;
 * exposed for tests and the fuzz driver). BDY_ECORRUPT when the image has
 * no valid header, or two whole groups of one number above after. */
int bdy_journal_scan(const void *image, size_t size, uint64_t after, bdy_journal_group_cb cb,
                     void *data, uint64_t *last, uint64_t *highest, bdy_errbuf *eb);

/* Makes a copy of a journal's image (a backup's) read back only the run
 * of groups numbered after + 1, after + 2, ...: zeroes the header of every
 * other whole group above after (one beyond a group the copy caught half
 * written, or either of two of one number), so that a start from the copy
 * meets no gap. *trimmed is how many. BDY_ECORRUPT when the image has no
 * valid header. */
int bdy_journal_trim(void *image, size_t size, uint64_t after, unsigned *trimmed, bdy_errbuf *eb);

/* Begins writing: the next group gets sequence number last + 1 and every
 * block is free. No whole group numbered above last may be left in the
 * file (a start refuses a journal with groups beyond a gap), or it could
 * pass for a new one. */
void bdy_journal_start(bdy_journal *j, uint64_t last);

/* Most payload bytes one group can hold (a quarter of the ring). */
size_t bdy_journal_max_payload(const bdy_journal *j);

/* Writes payload as the next group and syncs it; *seq is its sequence
 * number. Waits up to wait_ms for released space when the ring is full
 * (BDY_EBUSY after that). BDY_ETOOBIG: len over bdy_journal_max_payload.
 * BDY_EIO: the write or sync failed (errno's text in eb); the group may
 * or may not be on the disk, so its header block is zeroed and synced at
 * once, or, if the disk refuses that too, before the next append (which
 * fails as well while it cannot) and at close. The sequence number is used
 * again: at most one group of a number is ever read back, and a group
 * reported failed is read back only if the process dies while the disk
 * refuses every write. */
int bdy_journal_append(bdy_journal *j, const void *payload, size_t len, unsigned wait_ms,
                       uint64_t *seq, bdy_errbuf *eb);

/* Every group up to seq has been applied where it belongs, durably: its
 * space may be written over. */
void bdy_journal_release(bdy_journal *j, uint64_t seq);

/* Blocks of the ring holding groups not yet released (for tests). */
uint32_t bdy_journal_used_blocks(bdy_journal *j);

/* CRC32C (Castagnoli) of len bytes, continuing from crc (0 to begin):
 * with the CPU's instruction where it has one (x86-64 with SSE4.2). */
uint32_t bdy_crc32c(uint32_t crc, const void *data, size_t len);
/* The same by a table, on any CPU (what other CPUs use; exposed so that
 * tests hold both ways to the same answers). */
uint32_t bdy_crc32c_table(uint32_t crc, const void *data, size_t len);

#endif
