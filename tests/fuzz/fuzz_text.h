/* The fuzz input as a NUL-terminated string, for the drivers of parsers
 * that take text. */
#ifndef BINDERY_FUZZ_TEXT_H
#define BINDERY_FUZZ_TEXT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A copy of data with a NUL after its size bytes (a NUL inside stays, for
 * parsers that take a length), or NULL past max bytes or without memory.
 * The caller frees it. */
static inline char *fuzz_text(const uint8_t *data, size_t size, size_t max)
{
    if (size > max)
        return NULL;
    char *text = malloc(size + 1);
    if (text == NULL)
        return NULL;
    memcpy(text, data, size);
    text[size] = '\0';
    return text;
}

#endif
