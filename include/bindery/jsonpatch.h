/* JSON merge patch (RFC 7386) and JSON patch (RFC 6902) over json-c.
 * Neither modifies its inputs. */
#ifndef BINDERY_JSONPATCH_H
#define BINDERY_JSONPATCH_H

#include "bindery/error.h"

#include <json-c/json.h>

#define BDY_JSON_PATCH_MAX_OPS 1000
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
 *   BDY_EINVAL: the patch document is malformed (not an array, unknown op,
 *               missing "path"/"value", bad JSON pointer, too many ops);
 *   BDY_ECONFLICT: a "test" failed or a path does not exist where the
 *               operation needs it (Kubernetes answers 422 for both);
 *   BDY_ETOOBIG: its "copy" operations copy more than
 *               BDY_JSON_PATCH_MAX_COPIED_BYTES.
 * eb names the failing operation index and path. */
int bdy_json_patch(json_object *target, json_object *ops, json_object **out, bdy_errbuf *eb);

/* Deep equality: use json-c's json_object_equal(). */

#endif
