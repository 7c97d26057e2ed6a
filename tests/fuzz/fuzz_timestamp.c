/* Fuzz driver for bdy_timestamp_parse (allocator/util.c), which reads
 * RFC 3339 times that clients write: Table date columns of any object,
 * WorldInstance status timings.
 *
 * Whatever the bytes, the parse reads no further than the terminating NUL,
 * gives the same answer twice, and what it accepts is a finite time that
 * formats back to the same second (no day its month does not have).
 */
#include "bindery/util.h"
#include "fuzz_text.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_INPUT 128

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size, MAX_INPUT);
    if (text == NULL)
        return 0;
    double a = 0;
    double b = 0;
    int rc = bdy_timestamp_parse(text, &a);
    if (bdy_timestamp_parse(text, &b) != rc || (rc == 0 && a != b))
        abort();
    if (rc == 0) {
        if (!isfinite(a))
            abort();
        /* A UTC time without a fraction or offset names its own second (years
         * of four digits, no leap second). */
        size_t len = strlen(text);
        if (len == 20 && (text[19] == 'Z' || text[19] == 'z') && text[17] != '6' &&
            text[0] >= '1') {
            time_t t = (time_t)a;
            struct tm tm;
            char back[32];
            if (gmtime_r(&t, &tm) == NULL ||
                strftime(back, sizeof(back), "%Y-%m-%dT%H:%M:%S", &tm) == 0 ||
                strncmp(back, text, 10) != 0 || strncmp(back + 11, text + 11, 8) != 0)
                abort();
        }
    }
    free(text);
    return 0;
}
