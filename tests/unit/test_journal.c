/* The claim journal (include/bindery/journal.h): groups read back in order
 * across the ring's wrap, a torn or missing group ends the read, space comes
 * back only when released, and the file is checked before it is trusted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bindery/journal.h"
#include "bindery/util.h"
#include "fault_io.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOCKS 64u /* a small ring: 63 blocks for groups, at most 15 in one */

static char dir[64];
static char path[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/bdy-journal-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/claims.journal", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fault_io_heal(); /* a test that failed while it failed the disk */
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static bdy_journal *open_journal(bool fresh)
{
    bdy_journal *j = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy_journal_open(path, fresh, BLOCKS, &j, NULL, &eb);
    if (rc != 0)
        fail_msg("open %s: %s (%s)", path, bdy_strerror(rc), eb.message);
    return j;
}

/* What a read back saw: the groups' numbers and first bytes. */
typedef struct seen {
    uint64_t seqs[256];
    char first[256];
    size_t lens[256];
    size_t n;
} seen;

static int seen_cb(void *data, uint64_t seq, const void *payload, size_t len)
{
    seen *s = data;
    assert_true(s->n < 256);
    s->seqs[s->n] = seq;
    s->first[s->n] = len > 0 ? *(const char *)payload : '\0';
    s->lens[s->n] = len;
    s->n++;
    return 0;
}

static uint64_t append(bdy_journal *j, char fill, size_t len)
{
    char *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    memset(buf, fill, len);
    uint64_t seq = 0;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy_journal_append(j, buf, len, 0, &seq, &eb);
    free(buf);
    if (rc != 0)
        fail_msg("append: %s (%s)", bdy_strerror(rc), eb.message);
    return seq;
}

static seen replay(bdy_journal *j, uint64_t after, uint64_t *last)
{
    seen s = {0};
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    uint64_t highest = 0;
    int rc = bdy_journal_replay(j, after, seen_cb, &s, last, &highest, &eb);
    assert_true(highest >= *last);
    if (rc != 0)
        fail_msg("replay: %s (%s)", bdy_strerror(rc), eb.message);
    return s;
}

static void test_groups_read_back_in_order(void **state)
{
    (void)state;
    bdy_journal *j = open_journal(true);
    bdy_journal_start(j, 41);
    assert_int_equal(append(j, 'a', 10), 42);
    assert_int_equal(append(j, 'b', 5000), 43); /* two blocks */
    assert_int_equal(append(j, 'c', 0), 44);
    bdy_journal_close(j);

    j = open_journal(false);
    uint64_t last = 0;
    seen s = replay(j, 41, &last);
    assert_int_equal(s.n, 3);
    assert_int_equal(last, 44);
    assert_int_equal(s.seqs[0], 42);
    assert_int_equal(s.first[0], 'a');
    assert_int_equal(s.lens[1], 5000);
    assert_int_equal(s.first[1], 'b');
    assert_int_equal(s.lens[2], 0);
    /* Only what came after a number. */
    s = replay(j, 43, &last);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.seqs[0], 44);
    s = replay(j, 44, &last);
    assert_int_equal(s.n, 0);
    assert_int_equal(last, 44);
    bdy_journal_close(j);
}

static void test_ring_wraps_and_needs_release(void **state)
{
    (void)state;
    bdy_journal *j = open_journal(true);
    bdy_journal_start(j, 0);
    size_t big = 3 * 4096; /* four blocks with the header */
    uint64_t seq = 0;
    /* 15 groups of four blocks fill 60 of the 63. */
    for (int i = 0; i < 15; i++)
        seq = append(j, (char)('a' + i), big);
    assert_int_equal(bdy_journal_used_blocks(j), 60);
    char buf[3 * 4096];
    memset(buf, 'z', sizeof(buf));
    bdy_errbuf eb;
    uint64_t s2;
    assert_int_equal(bdy_journal_append(j, buf, sizeof(buf), 0, &s2, &eb), BDY_EBUSY);
    assert_int_equal(bdy_journal_append(j, buf, sizeof(buf), 20, &s2, &eb), BDY_EBUSY);
    /* Releasing the first two frees the ring's start: the next group wraps
     * there, over groups already applied. */
    bdy_journal_release(j, 2);
    assert_int_equal(bdy_journal_used_blocks(j), 52);
    assert_int_equal(append(j, 'P', big), seq + 1);
    assert_int_equal(append(j, 'Q', big), seq + 2);
    bdy_journal_close(j);

    j = open_journal(false);
    uint64_t last = 0;
    seen s = replay(j, 2, &last);
    assert_int_equal(s.n, 15);
    assert_int_equal(last, 17);
    assert_int_equal(s.first[0], 'c');
    assert_int_equal(s.first[13], 'P');
    assert_int_equal(s.first[14], 'Q');
    bdy_journal_close(j);

    /* Too big for one group: refused before anything is written. */
    j = open_journal(false);
    bdy_journal_start(j, 17);
    size_t over = bdy_journal_max_payload(j) + 1;
    char *huge = calloc(1, over);
    assert_non_null(huge);
    assert_int_equal(bdy_journal_append(j, huge, over, 0, &s2, &eb), BDY_ETOOBIG);
    free(huge);
    bdy_journal_close(j);
}

/* Flips one byte of the file at off. */
static void damage(off_t off)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char c;
    assert_int_equal(pread(fd, &c, 1, off), 1);
    c ^= 0x5a;
    assert_int_equal(pwrite(fd, &c, 1, off), 1);
    close(fd);
}

static void test_torn_group_ends_the_read(void **state)
{
    (void)state;
    bdy_journal *j = open_journal(true);
    bdy_journal_start(j, 0);
    append(j, 'a', 100);      /* block 1 */
    append(j, 'b', 2 * 4096); /* blocks 2-4 */
    append(j, 'c', 100);      /* block 5 */
    bdy_journal_close(j);
    /* A byte of the second group's last block: its CRC fails, so it and
     * everything after it are not read (the third could not have been
     * written before the second was whole on the disk). */
    damage(4 * 4096 + 10);
    j = open_journal(false);
    uint64_t last = 0;
    seen s = replay(j, 0, &last);
    assert_int_equal(s.n, 1);
    assert_int_equal(last, 1);
    /* The third is still whole: the highest number in the file, above
     * which new groups must be numbered. */
    uint64_t highest = 0;
    s.n = 0;
    assert_int_equal(bdy_journal_replay(j, 0, seen_cb, &s, &last, &highest, NULL), 0);
    assert_int_equal(highest, 3);
    bdy_journal_close(j);
}

/* Appends a group the failing disk refuses: BDY_EIO, naming the file. */
static void append_refused(bdy_journal *j, char fill)
{
    char buf[10];
    memset(buf, fill, sizeof(buf));
    uint64_t seq = 0;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_journal_append(j, buf, sizeof(buf), 0, &seq, &eb), BDY_EIO);
    assert_non_null(strstr(eb.message, path));
}

/* A group reported failed is never read back, even when its bytes reached
 * the file: its header is zeroed at once, or, while the disk refuses that
 * too, before the next group is written (which fails meanwhile) and at
 * close. Its number is used again. */
static void test_failed_group_is_never_read_back(void **state)
{
    (void)state;
    bdy_journal *j = open_journal(true);
    bdy_journal_start(j, 0);
    assert_int_equal(append(j, 'a', 10), 1);

    /* The sync fails, the undo works: gone at once. */
    fault_io_arm(FAULT_IO_SYNC, 0, 1);
    append_refused(j, 'x');
    assert_int_equal(fault_io_failed(FAULT_IO_SYNC), 1);
    uint64_t last = 0;
    seen s = replay(j, 0, &last);
    assert_int_equal(s.n, 1);
    assert_int_equal(last, 1);
    fault_io_heal();

    /* The write reaches the file, its sync fails and so does the undo:
     * the group is whole in the file... */
    fault_io_arm(FAULT_IO_WRITE, 1, 1);
    fault_io_arm(FAULT_IO_SYNC, 0, 1);
    append_refused(j, 'b');
    assert_int_equal(fault_io_failed(FAULT_IO_WRITE), 1);
    s = replay(j, 0, &last);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.first[1], 'b');
    /* ...so nothing is written after it while the undo still fails... */
    fault_io_arm(FAULT_IO_WRITE, 0, 1);
    append_refused(j, 'c');
    assert_int_equal(fault_io_failed(FAULT_IO_WRITE), 2);
    /* ...and the undo comes first once the disk works again. */
    fault_io_heal();
    assert_int_equal(append(j, 'c', 10), 2);
    s = replay(j, 0, &last);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.first[1], 'c');

    /* The same failure just before a close: the close undoes it. */
    fault_io_arm(FAULT_IO_WRITE, 1, 1);
    fault_io_arm(FAULT_IO_SYNC, 0, 1);
    append_refused(j, 'd');
    fault_io_heal();
    bdy_journal_close(j);
    j = open_journal(false);
    s = replay(j, 0, &last);
    assert_int_equal(s.n, 2);
    assert_int_equal(last, 2);
    assert_int_equal(s.first[0], 'a');
    assert_int_equal(s.first[1], 'c');
    bdy_journal_close(j);
}

static void test_file_checks(void **state)
{
    (void)state;
    bdy_journal *j = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    /* Missing: not made unless asked. */
    assert_int_equal(bdy_journal_open(path, false, BLOCKS, &j, NULL, &eb), BDY_ENOTFOUND);
    assert_non_null(strstr(eb.message, path));
    /* An empty file is made anew. */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    bool created = false;
    assert_int_equal(bdy_journal_open(path, false, BLOCKS, &j, &created, &eb), 0);
    assert_true(created);
    uint64_t salt = bdy_journal_salt(j);
    bdy_journal_start(j, 0);
    append(j, 'a', 10);
    bdy_journal_close(j);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, BLOCKS * 4096);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* A fresh journal has another salt, and none of the old groups. */
    j = open_journal(true);
    assert_true(bdy_journal_salt(j) != salt);
    uint64_t last = 0;
    seen s = replay(j, 0, &last);
    assert_int_equal(s.n, 0);
    bdy_journal_close(j);

    /* A damaged header, or a file cut short, is refused. */
    damage(20);
    assert_int_equal(bdy_journal_open(path, false, BLOCKS, &j, NULL, &eb), BDY_ECORRUPT);
    damage(20);
    assert_int_equal(truncate(path, (BLOCKS - 1) * 4096), 0);
    assert_int_equal(bdy_journal_open(path, false, BLOCKS, &j, NULL, &eb), BDY_ECORRUPT);
    assert_non_null(strstr(eb.message, "blocks"));
}

/* A payload that holds a whole valid-looking group header is still read as
 * payload: without the file's salt no header can be forged. */
static void test_payload_cannot_pass_for_a_group(void **state)
{
    (void)state;
    bdy_journal *j = open_journal(true);
    bdy_journal_start(j, 0);
    /* Group 2 spans blocks 2-4; its payload fills block 3 with a header of
     * a group 3, whole and with its CRC right, but for the salt. */
    unsigned char buf[3 * 4096 - 64];
    memset(buf, 0, sizeof(buf));
    unsigned char *fake = buf + 4096 - 32;
    memcpy(fake, "BJR1", 4);
    fake[16] = 3; /* seq */
    fake[24] = 1; /* blocks */
    uint32_t crc = bdy_crc32c(0, fake + 8, 24);
    for (int i = 0; i < 4; i++)
        fake[4 + i] = (unsigned char)(crc >> (8 * i));
    append(j, 'x', 10);
    uint64_t seq;
    bdy_errbuf eb;
    assert_int_equal(bdy_journal_append(j, buf, sizeof(buf), 0, &seq, &eb), 0);
    bdy_journal_close(j);
    j = open_journal(false);
    uint64_t last = 0;
    seen s = replay(j, 0, &last);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.lens[1], sizeof(buf));
    bdy_journal_close(j);
}

/* A backup's copy is trimmed to the run a start reads: whole groups after
 * a torn one, and both of two groups of one number, lose their headers. */
static void test_trim(void **state)
{
    (void)state;
    bdy_journal *j = open_journal(true);
    bdy_journal_start(j, 0);
    for (int i = 0; i < 5; i++)
        append(j, (char)('a' + i), 100); /* blocks 1-5 */
    bdy_journal_close(j);
    damage(3 * 4096 + 40); /* group 3 */
    char *image = NULL;
    size_t len = 0;
    assert_int_equal(bdy_read_file(path, BLOCKS * 4096, &image, &len), 0);
    uint64_t last = 0, highest = 0;
    seen s = {0};
    assert_int_equal(bdy_journal_scan(image, len, 0, seen_cb, &s, &last, &highest, NULL), 0);
    assert_int_equal(last, 2);
    assert_int_equal(highest, 5);
    unsigned trimmed = 0;
    assert_int_equal(bdy_journal_trim(image, len, 0, &trimmed, NULL), 0);
    assert_int_equal(trimmed, 2);
    s.n = 0;
    assert_int_equal(bdy_journal_scan(image, len, 0, seen_cb, &s, &last, &highest, NULL), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(last, 2);
    assert_int_equal(highest, 2);

    /* Group 1 twice (block 1 copied to block 10): the scan refuses, the
     * trim keeps neither, nor anything after. */
    memcpy(image + 10 * 4096, image + 4096, 4096);
    s.n = 0;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_journal_scan(image, len, 0, seen_cb, &s, &last, &highest, &eb),
                     BDY_ECORRUPT);
    assert_non_null(strstr(eb.message, "two groups numbered 1"));
    assert_int_equal(bdy_journal_trim(image, len, 0, &trimmed, NULL), 0);
    assert_int_equal(trimmed, 3);
    assert_int_equal(bdy_journal_scan(image, len, 0, seen_cb, &s, &last, &highest, NULL), 0);
    assert_int_equal(highest, 0);
    free(image);
}

/* Both ways: the CPU's instruction where it has one, and the table. */
static uint32_t (*const crc_ways[])(uint32_t, const void *, size_t) = {bdy_crc32c,
                                                                       bdy_crc32c_table};

static void test_crc32c(void **state)
{
    (void)state;
    for (size_t w = 0; w < 2; w++) {
        uint32_t (*crc)(uint32_t, const void *, size_t) = crc_ways[w];
        /* The standard check value of CRC-32C. */
        assert_int_equal(crc(0, "123456789", 9), 0xe3069283u);
        /* In pieces, the same. */
        assert_int_equal(crc(crc(0, "1234", 4), "56789", 5), 0xe3069283u);
        /* RFC 3720's vectors (B.4): 32 bytes, whole words for the CPU's
         * instruction; then the same split at odd places. */
        unsigned char v[32];
        memset(v, 0, sizeof(v));
        assert_int_equal(crc(0, v, 32), 0x8a9136aau);
        memset(v, 0xff, sizeof(v));
        assert_int_equal(crc(0, v, 32), 0x62a8ab43u);
        for (int i = 0; i < 32; i++)
            v[i] = (unsigned char)i;
        assert_int_equal(crc(0, v, 32), 0x46dd794eu);
        for (size_t at = 1; at < 32; at += 5)
            assert_int_equal(crc(crc(0, v, at), v + at, 32 - at), 0x46dd794eu);
        for (int i = 0; i < 32; i++)
            v[i] = (unsigned char)(31 - i);
        assert_int_equal(crc(0, v, 32), 0x113fdb5cu);
    }
    /* A group's worth, at an odd length and offset: the same both ways. */
    static unsigned char big[4099 + 3];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (unsigned char)(i * 131u + 7u);
    assert_int_equal(bdy_crc32c(0, big + 3, 4099), bdy_crc32c_table(0, big + 3, 4099));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_groups_read_back_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ring_wraps_and_needs_release, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_group_ends_the_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_group_is_never_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_payload_cannot_pass_for_a_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim, setup, teardown),
        cmocka_unit_test(test_crc32c),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
