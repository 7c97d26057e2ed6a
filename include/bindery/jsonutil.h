/* Reading json-c objects without ceremony: member lookups that accept NULL
 * and wrong types, for code that walks Kubernetes-shaped objects. */
#ifndef BINDERY_JSONUTIL_H
#define BINDERY_JSONUTIL_H

#include <json-c/json.h>
#include <stdint.h>

/* obj[key], or NULL when obj is NULL, not an object, or has no such key.
 * The result is borrowed. */
json_object *bdy_jget(json_object *obj, const char *key);
/* obj[key] as a string, or NULL when absent or not a string. */
const char *bdy_jstr(json_object *obj, const char *key);
/* obj[key] as an integer, or dflt when absent or not a number. */
int64_t bdy_jint(json_object *obj, const char *key, int64_t dflt);

#endif
