/* Fuzz driver for pool/journal.c's read back (bdy_journal_scan).
 *
 * The input fills the blocks after a valid file header (16 blocks, the
 * smallest journal). A block whose input begins with the group magic gets
 * the file's salt and, when the input's CRC field is zero, the right CRC:
 * so inputs reach whole groups, torn ones, overlapping ones and repeated
 * numbers, not only the header check. What comes back must be numbered
 * one after another from 1 and lie inside the image.
 */
#include "bindery/journal.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BLOCKS 16u
#define SALT 0x0123456789abcdefull

typedef struct span {
    const unsigned char *image;
    size_t size;
    uint64_t next;
} span;

static int check(void *data, uint64_t seq, const void *payload, size_t len)
{
    span *s = data;
    const unsigned char *p = payload;
    if (seq != s->next || p < s->image || p + len > s->image + s->size)
        abort();
    s->next++;
    return 0;
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t total = (size_t)BLOCKS * BDY_JOURNAL_BLOCK;
    if (size > total - BDY_JOURNAL_BLOCK)
        return 0;
    unsigned char *image = calloc(1, total);
    if (image == NULL)
        return 0;
    memcpy(image, "BDYJRNL1", 8);
    put32(image + 8, BDY_JOURNAL_BLOCK);
    put32(image + 12, BLOCKS);
    for (int i = 0; i < 8; i++)
        image[16 + i] = (unsigned char)(SALT >> (8 * i));
    put32(image + 24, bdy_crc32c(0, image, 24));
    memcpy(image + BDY_JOURNAL_BLOCK, data, size);
    for (uint32_t b = 1; b < BLOCKS; b++) {
        unsigned char *h = image + (size_t)b * BDY_JOURNAL_BLOCK;
        if (memcmp(h, "BJR1", 4) != 0)
            continue;
        for (int i = 0; i < 8; i++)
            h[8 + i] = (unsigned char)(SALT >> (8 * i));
        uint32_t len = get32(h + 28);
        size_t room = total - (size_t)b * BDY_JOURNAL_BLOCK - 32;
        if (get32(h + 4) == 0 && len <= room)
            put32(h + 4, bdy_crc32c(0, h + 8, 24 + (size_t)len));
    }
    for (uint64_t after = 0; after < 3; after++) {
        span s = {image, total, after + 1};
        uint64_t last = 0, highest = 0;
        if (bdy_journal_scan(image, total, after, check, &s, &last, &highest, NULL) == 0 &&
            (last != s.next - 1 || highest < last))
            abort();
    }
    /* A cut image is refused, never read past its end. */
    uint64_t last = 0, highest = 0;
    span s = {image, total - 1, 1};
    if (bdy_journal_scan(image, total - 1, 0, check, &s, &last, &highest, NULL) != BDY_ECORRUPT)
        abort();
    free(image);
    return 0;
}
