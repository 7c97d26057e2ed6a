/* The claim journal (see journal.h): a zero-filled file of fixed size, a
 * ring of block-aligned groups, one pwrite and one fdatasync per group. */
#include "bindery/journal.h"

#include "bindery/log.h"
#include "bindery/util.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FILE_HEADER_LEN 28      /* magic 8, block size 4, blocks 4, salt 8, crc 4 */
#define GROUP_MAGIC 0x31524a42u /* "BJR1" little-endian */
static const unsigned char FILE_MAGIC[8] = {'B', 'D', 'Y', 'J', 'R', 'N', 'L', '1'};
#define GROUP_HEADER_LEN 32 /* magic 4, crc 4, salt 8, seq 8, blocks 4, len 4 */
#define ZERO_CHUNK (1u << 20)

/* One group written and not yet released. */
typedef struct span {
    uint64_t seq;
    uint32_t start;
    uint32_t blocks;
} span;

struct bdy_journal {
    char *path;
    int fd;
    uint32_t blocks; /* of the file, header block included */
    uint64_t salt;

    /* The appender's: where and with which number the next group goes. */
    uint64_t next_seq;
    uint32_t head;      /* next block to write, 1..blocks-1 */
    int64_t dirty;      /* header block of a group whose write failed, or -1 */
    unsigned char *buf; /* the group being written */
    size_t buf_cap;

    /* Groups written, not released: a ring of spans, oldest first. */
    pthread_mutex_t lock;
    pthread_cond_t freed;
    span *spans;
    uint32_t first, count; /* into spans (capacity blocks) */
};

/* ---- little-endian fields ------------------------------------------------------ */

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* ---- CRC32C ----------------------------------------------------------------------- */

static uint32_t crc_table[256];
#if defined(__x86_64__)
static bool crc_hw; /* the CPU has SSE4.2's crc32 instruction */
#endif
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        crc_table[i] = c;
    }
#if defined(__x86_64__)
    crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

#if defined(__x86_64__)
/* The same sum with the CPU's instruction, 8 bytes a step: a group of a
 * busy commit is tens of KB, and the table takes a cycle or more per byte
 * of it on the committer thread. crc is already inverted. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const unsigned char *p,
                                                            size_t len)
{
    uint64_t c = crc;
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t v;
        memcpy(&v, p, sizeof(v));
        c = __builtin_ia32_crc32di(c, v);
    }
    crc = (uint32_t)c;
    while (len--)
        crc = __builtin_ia32_crc32qi(crc, *p++);
    return crc;
}
#endif

uint32_t bdy_crc32c_table(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&crc_once, crc_init);
    const unsigned char *p = data;
    crc = ~crc;
    while (len--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

uint32_t bdy_crc32c(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&crc_once, crc_init);
#if defined(__x86_64__)
    if (crc_hw)
        return ~crc32c_hw(~crc, data, len);
#endif
    return bdy_crc32c_table(crc, data, len);
}

/* ---- the file header ------------------------------------------------------------ */

static void file_header(unsigned char out[FILE_HEADER_LEN], uint32_t blocks, uint64_t salt)
{
    memcpy(out, FILE_MAGIC, sizeof(FILE_MAGIC));
    put32(out + 8, BDY_JOURNAL_BLOCK);
    put32(out + 12, blocks);
    put64(out + 16, salt);
    put32(out + 24, bdy_crc32c(0, out, 24));
}

/* Reads the header at the start of image: 0 with *blocks and *salt, or
 * BDY_ECORRUPT. */
static int parse_file_header(const unsigned char *image, size_t size, uint32_t *blocks,
                             uint64_t *salt)
{
    if (size < FILE_HEADER_LEN || memcmp(image, FILE_MAGIC, sizeof(FILE_MAGIC)) != 0 ||
        get32(image + 24) != bdy_crc32c(0, image, 24) || get32(image + 8) != BDY_JOURNAL_BLOCK)
        return BDY_ECORRUPT;
    uint32_t n = get32(image + 12);
    if (n < BDY_JOURNAL_MIN_BLOCKS || n > BDY_JOURNAL_MAX_BLOCKS)
        return BDY_ECORRUPT;
    *blocks = n;
    *salt = get64(image + 16);
    return 0;
}

/* ---- reading back --------------------------------------------------------------- */

/* The group whose header is at block b of image, if it is whole: 0 with
 * its number, payload and length. */
static int parse_group(const unsigned char *image, uint32_t blocks, uint64_t salt, uint32_t b,
                       uint64_t *seq, const unsigned char **payload, size_t *len,
                       uint32_t *span_out)
{
    const unsigned char *h = image + (size_t)b * BDY_JOURNAL_BLOCK;
    if (get32(h) != GROUP_MAGIC || get64(h + 8) != salt)
        return BDY_ENOTFOUND;
    uint32_t n = get32(h + 24);
    uint32_t l = get32(h + 28);
    if (n == 0 || n > blocks - b || (size_t)l > (size_t)n * BDY_JOURNAL_BLOCK - GROUP_HEADER_LEN)
        return BDY_ENOTFOUND;
    if (get32(h + 4) != bdy_crc32c(0, h + 8, GROUP_HEADER_LEN - 8 + (size_t)l))
        return BDY_ENOTFOUND;
    *seq = get64(h + 16);
    *payload = h + GROUP_HEADER_LEN;
    *len = l;
    *span_out = n;
    return 0;
}

typedef struct found {
    uint64_t seq;
    uint32_t block;
} found;

static int found_cmp(const void *a, const void *b)
{
    const found *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The whole groups numbered above after, sorted by number: *all (free it)
 * and *n. */
static int collect(const unsigned char *img, size_t size, uint64_t after, found **all, size_t *n,
                   uint32_t *blocks_out, uint64_t *salt_out, bdy_errbuf *eb)
{
    uint32_t blocks;
    uint64_t salt;
    if (parse_file_header(img, size, &blocks, &salt) != 0)
        return bdy_fail(eb, BDY_ECORRUPT, "not a claim journal, or its header is damaged");
    if (size != (size_t)blocks * BDY_JOURNAL_BLOCK)
        return bdy_fail(eb, BDY_ECORRUPT, "%zu bytes long, its header says %u blocks", size,
                        blocks);
    /* Every block is looked at: a group's header can be anywhere, and a
     * group written over the start of an older one leaves the older one's
     * tail behind (its CRC then fails). */
    *all = malloc(sizeof(**all) * blocks);
    if (*all == NULL)
        return bdy_fail(eb, BDY_ENOMEM, "out of memory");
    *n = 0;
    for (uint32_t b = 1; b < blocks; b++) {
        uint64_t seq;
        const unsigned char *p;
        size_t len;
        uint32_t span_blocks;
        if (parse_group(img, blocks, salt, b, &seq, &p, &len, &span_blocks) == 0 && seq > after)
            (*all)[(*n)++] = (found){seq, b};
    }
    qsort(*all, *n, sizeof(**all), found_cmp);
    *blocks_out = blocks;
    *salt_out = salt;
    return 0;
}

/* How many of all[0..n) form the run numbered after + 1, after + 2, ...
 * up to the first number missing or found twice. */
static size_t run_length(const found *all, size_t n, uint64_t after)
{
    size_t i = 0;
    for (uint64_t want = after + 1; i < n && all[i].seq == want; i++, want++)
        if (i + 1 < n && all[i + 1].seq == want)
            break;
    return i;
}

int bdy_journal_scan(const void *image, size_t size, uint64_t after, bdy_journal_group_cb cb,
                     void *data, uint64_t *last, uint64_t *highest, bdy_errbuf *eb)
{
    const unsigned char *img = image;
    *last = after;
    *highest = after;
    found *all = NULL;
    size_t n = 0;
    uint32_t blocks;
    uint64_t salt;
    int rc = collect(img, size, after, &all, &n, &blocks, &salt, eb);
    if (rc != 0)
        return rc;
    if (n > 0)
        *highest = all[n - 1].seq;
    size_t run = run_length(all, n, after);
    if (run < n && all[run].seq == after + 1 + run) {
        /* The run stopped at a number it wanted: found twice. */
        unsigned long long twice = (unsigned long long)all[run].seq;
        free(all);
        return bdy_fail(eb, BDY_ECORRUPT, "two groups numbered %llu", twice);
    }
    for (size_t i = 0; i < run; i++) {
        uint64_t seq;
        const unsigned char *p;
        size_t len;
        uint32_t span_blocks;
        if (parse_group(img, blocks, salt, all[i].block, &seq, &p, &len, &span_blocks) != 0) {
            rc = BDY_ECORRUPT; /* collect found it whole: cannot happen */
            break;
        }
        if ((rc = cb(data, seq, p, len)) != 0)
            break;
        *last = seq;
    }
    free(all);
    return rc;
}

int bdy_journal_trim(void *image, size_t size, uint64_t after, unsigned *trimmed, bdy_errbuf *eb)
{
    unsigned char *img = image;
    *trimmed = 0;
    found *all = NULL;
    size_t n = 0;
    uint32_t blocks;
    uint64_t salt;
    int rc = collect(img, size, after, &all, &n, &blocks, &salt, eb);
    if (rc != 0)
        return rc;
    size_t run = run_length(all, n, after);
    /* A number found twice ends the run before it: neither copy is kept. */
    for (size_t i = run; i < n; i++) {
        memset(img + (size_t)all[i].block * BDY_JOURNAL_BLOCK, 0, GROUP_HEADER_LEN);
        (*trimmed)++;
    }
    free(all);
    return 0;
}

/* ---- open, make, close -------------------------------------------------------------- */

/* Makes the journal file under a temporary name, whole, zero-filled and
 * synced, then renames it into place: a crash leaves either no journal or
 * a whole one. */
static int make_file(const char *path, uint32_t blocks, bdy_errbuf *eb)
{
    char tmp[4200];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.new", path) >= sizeof(tmp))
        return bdy_fail(eb, BDY_EINVAL, "claim journal %s: path too long", path);
    uint64_t salt;
    if (RAND_bytes((unsigned char *)&salt, sizeof(salt)) != 1)
        return bdy_fail(eb, BDY_EIO, "claim journal %s: no random salt", path);
    unsigned char *zero = calloc(1, ZERO_CHUNK);
    if (zero == NULL)
        return bdy_fail(eb, BDY_ENOMEM, "out of memory");
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = bdy_fail(eb, BDY_EIO, "claim journal %s: %s", tmp, strerror(errno));
        goto out;
    }
    file_header(zero, blocks, salt);
    size_t total = (size_t)blocks * BDY_JOURNAL_BLOCK;
    for (size_t done = 0; done < total;) {
        size_t want = total - done < ZERO_CHUNK ? total - done : ZERO_CHUNK;
        ssize_t w = write(fd, zero, want);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = bdy_fail(eb, BDY_EIO, "claim journal %s: %s", tmp,
                          w < 0 ? strerror(errno) : "short write");
            goto out;
        }
        if (done == 0)
            memset(zero, 0, FILE_HEADER_LEN);
        done += (size_t)w;
    }
    int synced = fsync(fd);
    int e = errno;
    int closed = close(fd);
    fd = -1;
    if (synced != 0 || closed != 0) {
        rc = bdy_fail(eb, BDY_EIO, "claim journal %s: %s", tmp, strerror(synced != 0 ? e : errno));
        goto out;
    }
    if (rename(tmp, path) != 0 || bdy_fsync_parent(path) != 0)
        rc = bdy_fail(eb, BDY_EIO, "claim journal %s: %s", path, strerror(errno));
out:
    if (fd >= 0)
        close(fd);
    if (rc != 0)
        unlink(tmp);
    free(zero);
    return rc;
}

static int write_all(int fd, const unsigned char *p, size_t len, off_t off);

/* Zeroes the header of the group whose write failed, if any, and syncs:
 * that group must never be read back. */
static int clear_dirty(bdy_journal *j)
{
    static const unsigned char zero[GROUP_HEADER_LEN];
    if (j->dirty < 0)
        return 0;
    if (write_all(j->fd, zero, sizeof(zero), (off_t)j->dirty * BDY_JOURNAL_BLOCK) != 0 ||
        fdatasync(j->fd) != 0)
        return -1;
    j->dirty = -1;
    return 0;
}

void bdy_journal_close(bdy_journal *j)
{
    if (j == NULL)
        return;
    if (j->fd >= 0 && clear_dirty(j) != 0)
        bdy_warn("journal",
                 "%s: the header of a group whose write failed cannot be cleared (%s): its "
                 "records, reported failed, may be applied at the next start",
                 j->path, strerror(errno));
    if (j->fd >= 0)
        close(j->fd);
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->freed);
    free(j->spans);
    free(j->buf);
    free(j->path);
    free(j);
}

int bdy_journal_open(const char *path, bool fresh, uint32_t blocks, bdy_journal **out,
                     bool *created, bdy_errbuf *eb)
{
    if (blocks < BDY_JOURNAL_MIN_BLOCKS || blocks > BDY_JOURNAL_MAX_BLOCKS)
        return bdy_fail(eb, BDY_EINVAL, "claim journal: %u blocks is out of range", blocks);
    if (created != NULL)
        *created = false;
    struct stat st;
    bool exists = stat(path, &st) == 0;
    if (!exists && (errno != ENOENT || !fresh))
        return bdy_fail(eb, errno == ENOENT ? BDY_ENOTFOUND : BDY_EIO, "claim journal %s: %s", path,
                        errno == ENOENT ? "missing" : strerror(errno));
    if (fresh || st.st_size == 0) {
        int rc = make_file(path, blocks, eb);
        if (rc != 0)
            return rc;
        if (created != NULL)
            *created = true;
    }
    int rc = 0;
    bdy_journal *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return bdy_fail(eb, BDY_ENOMEM, "out of memory");
    j->fd = -1;
    j->dirty = -1;
    pthread_mutex_init(&j->lock, NULL);
    bdy_cond_init_monotonic(&j->freed);
    if ((j->path = strdup(path)) == NULL) {
        rc = bdy_fail(eb, BDY_ENOMEM, "out of memory");
        goto out;
    }
    j->fd = open(path, O_RDWR | O_CLOEXEC);
    unsigned char hdr[FILE_HEADER_LEN];
    if (j->fd < 0 || fstat(j->fd, &st) != 0) {
        rc = bdy_fail(eb, BDY_EIO, "claim journal %s: %s", path, strerror(errno));
        goto out;
    }
    if (pread(j->fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) ||
        parse_file_header(hdr, sizeof(hdr), &j->blocks, &j->salt) != 0) {
        rc = bdy_fail(eb, BDY_ECORRUPT,
                      "claim journal %s: not a claim journal, or its header is "
                      "damaged",
                      path);
        goto out;
    }
    if ((uint64_t)st.st_size != (uint64_t)j->blocks * BDY_JOURNAL_BLOCK) {
        rc = bdy_fail(eb, BDY_ECORRUPT,
                      "claim journal %s: %lld bytes long, its header says %u "
                      "blocks",
                      path, (long long)st.st_size, j->blocks);
        goto out;
    }
    if ((j->spans = calloc(j->blocks, sizeof(*j->spans))) == NULL) {
        rc = bdy_fail(eb, BDY_ENOMEM, "out of memory");
        goto out;
    }
    j->head = 1;
    j->next_seq = 1;
    *out = j;
    j = NULL;
out:
    bdy_journal_close(j);
    return rc;
}

int bdy_journal_replay(bdy_journal *j, uint64_t after, bdy_journal_group_cb cb, void *data,
                       uint64_t *last, uint64_t *highest, bdy_errbuf *eb)
{
    *last = *highest = after;
    char *image = NULL;
    size_t size = 0;
    int rc = bdy_read_file(j->path, (size_t)j->blocks * BDY_JOURNAL_BLOCK, &image, &size);
    if (rc != 0)
        return bdy_fail(eb, rc, "claim journal %s: %s", j->path, bdy_strerror(rc));
    /* A refusal of cb's own leaves eb to the caller, who knows why. */
    bdy_errbuf scan_eb;
    bdy_errbuf_clear(&scan_eb);
    rc = bdy_journal_scan(image, size, after, cb, data, last, highest, &scan_eb);
    if (rc != 0 && scan_eb.message[0] != '\0')
        bdy_fail(eb, rc, "claim journal %s: %s", j->path, scan_eb.message);
    free(image);
    return rc;
}

void bdy_journal_start(bdy_journal *j, uint64_t last)
{
    pthread_mutex_lock(&j->lock);
    j->next_seq = last + 1;
    j->count = 0;
    j->first = 0;
    j->head = 1;
    pthread_mutex_unlock(&j->lock);
}

uint64_t bdy_journal_salt(const bdy_journal *j)
{
    return j->salt;
}

size_t bdy_journal_max_payload(const bdy_journal *j)
{
    return (size_t)((j->blocks - 1) / 4) * BDY_JOURNAL_BLOCK - GROUP_HEADER_LEN;
}

/* Where a group of n blocks can go now, or 0 when the ring has no room.
 * Under lock. Groups are laid down in ring order: free space is what lies
 * from the head to the oldest unreleased group, wrapping at the end. */
static uint32_t place_locked(const bdy_journal *j, uint32_t n)
{
    uint32_t end = j->blocks;
    if (j->count == 0)
        return j->head + n <= end ? j->head : 1;
    uint32_t tail = j->spans[j->first].start;
    const span *newest = &j->spans[(j->first + j->count - 1) % j->blocks];
    bool wrapped = newest->start < tail;
    if (wrapped)
        return j->head + n <= tail ? j->head : 0;
    if (j->head + n <= end)
        return j->head;
    return 1 + n <= tail ? 1 : 0;
}

static int write_all(int fd, const unsigned char *p, size_t len, off_t off)
{
    while (len > 0) {
        ssize_t w = pwrite(fd, p, len, off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return -1;
        }
        p += w;
        len -= (size_t)w;
        off += w;
    }
    return 0;
}

int bdy_journal_append(bdy_journal *j, const void *payload, size_t len, unsigned wait_ms,
                       uint64_t *seq, bdy_errbuf *eb)
{
    if (len > bdy_journal_max_payload(j))
        return bdy_fail(eb, BDY_ETOOBIG, "claim journal %s: a group of %zu bytes is over %zu",
                        j->path, len, bdy_journal_max_payload(j));
    /* A write that failed, and could not be undone then, may have reached
     * the disk: its header goes before its number is used again. */
    if (clear_dirty(j) != 0)
        return bdy_fail(eb, BDY_EIO, "claim journal %s: %s", j->path, strerror(errno));
    uint32_t n = (uint32_t)((GROUP_HEADER_LEN + len + BDY_JOURNAL_BLOCK - 1) / BDY_JOURNAL_BLOCK);
    size_t bytes = (size_t)n * BDY_JOURNAL_BLOCK;
    if (bytes > j->buf_cap) {
        unsigned char *nb = realloc(j->buf, bytes);
        if (nb == NULL)
            return bdy_fail(eb, BDY_ENOMEM, "out of memory");
        j->buf = nb;
        j->buf_cap = bytes;
    }
    unsigned char *h = j->buf;
    put32(h, GROUP_MAGIC);
    put64(h + 8, j->salt);
    put64(h + 16, j->next_seq);
    put32(h + 24, n);
    put32(h + 28, (uint32_t)len);
    memcpy(h + GROUP_HEADER_LEN, payload, len);
    memset(h + GROUP_HEADER_LEN + len, 0, bytes - GROUP_HEADER_LEN - len);
    put32(h + 4, bdy_crc32c(0, h + 8, GROUP_HEADER_LEN - 8 + len));

    pthread_mutex_lock(&j->lock);
    uint32_t at = place_locked(j, n);
    if (at == 0 && wait_ms > 0) {
        struct timespec until;
        bdy_deadline_after_ms(CLOCK_MONOTONIC, wait_ms, &until);
        while ((at = place_locked(j, n)) == 0 &&
               pthread_cond_timedwait(&j->freed, &j->lock, &until) == 0)
            ;
    }
    pthread_mutex_unlock(&j->lock);
    if (at == 0)
        return bdy_fail(eb, BDY_EBUSY,
                        "claim journal %s is full: its groups are not being "
                        "applied",
                        j->path);
    if (write_all(j->fd, h, bytes, (off_t)at * BDY_JOURNAL_BLOCK) != 0 || fdatasync(j->fd) != 0) {
        /* Reported failed, so it must not be read back: undone at once if
         * the disk lets us, else before the next write or at close. */
        int e = errno;
        j->dirty = at;
        clear_dirty(j);
        return bdy_fail(eb, BDY_EIO, "claim journal %s: %s", j->path, strerror(e));
    }
    pthread_mutex_lock(&j->lock);
    j->spans[(j->first + j->count) % j->blocks] = (span){j->next_seq, at, n};
    j->count++;
    j->head = at + n;
    pthread_mutex_unlock(&j->lock);
    *seq = j->next_seq++;
    return 0;
}

void bdy_journal_release(bdy_journal *j, uint64_t seq)
{
    pthread_mutex_lock(&j->lock);
    while (j->count > 0 && j->spans[j->first].seq <= seq) {
        j->first = (j->first + 1) % j->blocks;
        j->count--;
    }
    pthread_cond_broadcast(&j->freed);
    pthread_mutex_unlock(&j->lock);
}

uint32_t bdy_journal_used_blocks(bdy_journal *j)
{
    pthread_mutex_lock(&j->lock);
    uint32_t used = 0;
    for (uint32_t i = 0; i < j->count; i++)
        used += j->spans[(j->first + i) % j->blocks].blocks;
    pthread_mutex_unlock(&j->lock);
    return used;
}
