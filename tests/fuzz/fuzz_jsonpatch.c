/* Fuzz driver for reconciler/jsonpatch.c.
 *
 * The input is split at its first NUL or newline into a target document and
 * a patch document. Both are applied as an RFC 7386 merge patch and as an
 * RFC 6902 JSON patch. Beyond memory errors the driver aborts when an input
 * document changes, when a merge patch is not idempotent (RFC 7386 patches
 * are), or when a JSON patch answers outside its documented contract.
 */
#include "bindery/jsonpatch.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Bigger documents only slow the fuzzer down without new paths. */
#define FUZZ_MAX_INPUT 65536

/* Parses exactly len bytes; *ok tells a parsed JSON null (NULL) from a
 * failure. */
static json_object *parse(const char *text, size_t len, int *ok)
{
    json_object *o = NULL;
    json_tokener *tok = json_tokener_new();

    *ok = 0;
    if (tok == NULL)
        return NULL;
    o = json_tokener_parse_ex(tok, text, (int)len);
    if (json_tokener_get_error(tok) == json_tokener_success &&
        json_tokener_get_parse_end(tok) == len) {
        *ok = 1;
    } else {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

static json_object *copy_of(json_object *o)
{
    json_object *c = NULL;
    if (o != NULL && json_object_deep_copy(o, &c, NULL) != 0)
        abort();
    return c;
}

/* Compares by JSON text rather than json_object_equal(): json-c's lenient
 * parser accepts NaN, which is unequal to itself. Both sides are built the
 * same way, so member order matches too. */
static int same_text(json_object *a, json_object *b)
{
    const char *sa = json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN);
    const char *sb = json_object_to_json_string_ext(b, JSON_C_TO_STRING_PLAIN);
    return strcmp(sa, sb) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    size_t split = 0;
    int ok_target = 0;
    int ok_patch = 0;
    bdy_errbuf eb;

    if (size > FUZZ_MAX_INPUT)
        return 0;
    while (split < size && data[split] != '\0' && data[split] != '\n')
        split++;
    if (split == size)
        return 0;

    json_object *target = parse(text, split, &ok_target);
    json_object *patch = parse(text + split + 1, size - split - 1, &ok_patch);
    json_object *target_copy = copy_of(target);
    json_object *patch_copy = copy_of(patch);
    json_object *merged = NULL;
    json_object *merged_twice = NULL;
    json_object *patched = NULL;

    if (!ok_target || !ok_patch)
        goto out;

    merged = bdy_merge_patch(target, patch);
    merged_twice = bdy_merge_patch(merged, patch);
    if (!same_text(merged, merged_twice))
        abort();

    /* A successful patch may legitimately produce JSON null (NULL), so only
     * failure pins the output down; success needs an operation array. */
    int rc = bdy_json_patch(target, patch, &patched, &eb);
    if (rc != 0 && patched != NULL)
        abort();
    if (rc == 0 && !json_object_is_type(patch, json_type_array))
        abort();
    if (rc != 0 && rc != BDY_EINVAL && rc != BDY_ECONFLICT && rc != BDY_ENOMEM)
        abort();

    if (!same_text(target, target_copy) || !same_text(patch, patch_copy))
        abort();
out:
    json_object_put(patched);
    json_object_put(merged_twice);
    json_object_put(merged);
    json_object_put(patch_copy);
    json_object_put(target_copy);
    json_object_put(patch);
    json_object_put(target);
    return 0;
}
