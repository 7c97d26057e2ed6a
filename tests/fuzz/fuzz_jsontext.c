/* Fuzz driver for bdy_json_text_check (allocator/jsonutil.c), which reads
 * the raw bytes of every claim body and Kubernetes API body for what
 * json-c lets through (numbers RFC 8259 refuses, a key twice).
 *
 * Whatever the bytes (NULs too, unbalanced brackets, broken escapes), it
 * reads only the len bytes given (the copy has no terminator), gives the
 * same answer twice, and fills why on a refusal. A text it refuses for a
 * key twice is refused for something without the duplicate check only if
 * it has a bad number or string too; never the reverse: a text that passes
 * the duplicate check passes without it.
 */
#include "bindery/error.h"
#include "bindery/jsonutil.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INPUT 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    /* An exact copy: a read past size is caught by the sanitizers. */
    char *text = malloc(size ? size : 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    char why[160];
    char why2[160];
    why[0] = why2[0] = '\0';
    int strict = bdy_json_text_check(text, size, true, why, sizeof(why));
    int again = bdy_json_text_check(text, size, true, why2, sizeof(why2));
    if (strict != again || (strict != 0 && strcmp(why, why2) != 0))
        abort();
    if (strict != 0 && strict != BDY_ENOMEM && why[0] == '\0')
        abort();
    if (strict != 0 && strict != BDY_EINVAL && strict != BDY_EEXISTS && strict != BDY_ENOMEM)
        abort();
    int lax = bdy_json_text_check(text, size, false, why2, sizeof(why2));
    if (lax == BDY_EEXISTS || (strict == 0 && lax != 0))
        abort();
    free(text);
    return 0;
}
