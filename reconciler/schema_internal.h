/* Internal to the CRD compiler: what crd.c needs from schema.c.
 *
 * A bdy_schema is compiled once from a CRD's openAPIV3Schema and is read-only
 * afterwards, so every function here taking a const bdy_schema may run on any
 * thread.
 */
#ifndef BINDERY_RECONCILER_SCHEMA_INTERNAL_H
#define BINDERY_RECONCILER_SCHEMA_INTERNAL_H

#include "bindery/crd.h"

/* Deepest nesting of schema nodes accepted in a CRD. Validation only
 * recurses where the schema does, so this also bounds the recursion depth
 * when validating an object (values below preserve-unknown-fields or
 * additionalProperties: true are kept without being walked). */
#define BDY__SCHEMA_MAX_DEPTH 64

/* Collects field causes into an optional errbuf and counts them, so callers
 * know whether anything went wrong even when eb is NULL. */
typedef struct bdy__issues {
    bdy_errbuf *eb;
    size_t count;
} bdy__issues;

void bdy__issue(bdy__issues *is, const char *reason, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The OpenAPI word for a JSON type: "integer" for json_type_int, "number"
 * for json_type_double, "null", "boolean", "object", "array", "string". */
const char *bdy__json_type_word(json_type t);

/* Sets eb->message to the Kubernetes summary of eb's causes:
 *   Kind.group "name" is invalid: field: message
 *   Kind.group "name" is invalid: [field: message, field: message]
 * name may be NULL (printed as ""). NULL eb allowed. */
void bdy__errbuf_summarize(bdy_errbuf *eb, const char *resource, const char *name);

/* Compiles the openAPIV3Schema node found at path (e.g.
 * "spec.versions[0].schema.openAPIV3Schema") into *out. Problems with the
 * schema (not structural, bad keyword values, a regex that does not compile,
 * a default that does not validate) are recorded in is with fields below
 * path; *out is then still set and must be freed, but is not to be used.
 * resource ("WorldInstance.bindery.dev") names objects in validation error
 * summaries and is copied. Returns 0 or BDY_ENOMEM. */
int bdy__schema_compile(json_object *node, const char *path, const char *resource, bdy__issues *is,
                        bdy_schema **out);

void bdy__schema_free(bdy_schema *s);

/* The declared type ("string", "integer", "boolean", "number", "object",
 * "array", or "int-or-string") of the field at a dotted path below the root
 * ("status.phase"), or NULL when the schema does not declare that field. */
const char *bdy__schema_field_type(const bdy_schema *root, const char *dotted);

#endif
