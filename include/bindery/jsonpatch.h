/* JSON merge patch (RFC 7386) and JSON patch (RFC 6902) over json-c.
 * Neither modifies its inputs. */
#ifndef BINDERY_JSONPATCH_H
#define BINDERY_JSONPATCH_H

#include "bindery/error.h"

#include <json-c/json.h>

/* As Kubernetes: more operations than this is 413 RequestEntityTooLarge. */
#define BDY_JSON_PATCH_MAX_OPS 10000
/* Most JSON text (roughly counted) all "copy" operations of one patch may
 * copy: more than the largest object a store keeps (1.5 MiB), so only a
 * patch whose result would be refused anyway is refused for it. */
#define BDY_JSON_PATCH_MAX_COPIED_BYTES ((size_t)2 << 20)

/* Returns a new object: target with patch merged in (null deletes a key; a
 * non-object patch replaces the target). target may be NULL. Returns NULL
 * when the result is JSON null (a null patch) or when out of memory. Caller owns the result. */
json_object *bdy_merge_patch(json_object *target, json_object *patch);

/* Applies an RFC 6902 operation array (add, remove, replace, move, copy,
 * test) to a deep copy of target. Results:
 *   0 and *out set (caller owns);
 *   BDY_EINVAL: the patch is not an array, or an operation is malformed
 *               (unknown op, missing "path"/"value", bad JSON pointer);
 *   BDY_ECONFLICT: a "test" failed or a path does not exist where the
 *               operation needs it;
 *   BDY_EINVALID_OBJECT: an operation would nest the document deeper
 *               than BDY_JSON_MAX_DEPTH;
 *   BDY_ETOOBIG: more than BDY_JSON_PATCH_MAX_OPS operations, or its
 *               "copy" operations copy more than
 *               BDY_JSON_PATCH_MAX_COPIED_BYTES;
 *   BDY_ENOMEM.
 * eb names the failing operation index and path. Kubernetes answers 400
 * only for a patch that is not an array of operations, 413 for too many,
 * and 422 for any operation that fails (the store maps them so). */
int bdy_json_patch(json_object *target, json_object *ops, json_object **out, bdy_errbuf *eb);

/* Deep equality as JSON patch's test has it: bdy_json_same_value
 * (jsonutil.h). */

#endif
