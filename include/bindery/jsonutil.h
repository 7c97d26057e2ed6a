/* Reading json-c objects without ceremony: member lookups that accept NULL
 * and wrong types, for code that walks Kubernetes-shaped objects, and
 * parsing of the JSON text Bindery itself stored. */
#ifndef BINDERY_JSONUTIL_H
#define BINDERY_JSONUTIL_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* obj[key], or NULL when obj is NULL, not an object, or has no such key.
 * The result is borrowed. */
json_object *bdy_jget(json_object *obj, const char *key);
/* obj[key] as a string, or NULL when absent or not a string. */
const char *bdy_jstr(json_object *obj, const char *key);
/* obj[key] as an integer, or dflt when absent, not a number, or a double
 * that is not a whole number within int64 (1.9, NaN, 1e300). */
int64_t bdy_jint(json_object *obj, const char *key, int64_t dflt);

/* The deepest nesting (objects and arrays) a stored object may have: what
 * the Kubernetes API accepts in a request body, and what the store checks
 * again on every write (a patch can nest deeper than its own body). */
#define BDY_JSON_MAX_DEPTH 64

/* Deep equality as JSON means it: json_object_equal() except that numbers
 * compare by value across json-c's int and double types (1 equals 1.0),
 * as RFC 6902's "test" (section 4.6) and a schema's enum want, and as
 * Kubernetes, which decodes every number as float64, compares them. */
bool bdy_json_same_value(json_object *a, json_object *b);

/* Whether v nests no deeper than max levels of objects and arrays (a
 * scalar is 0 levels; {} is 1). Stops at the first level past max. */
bool bdy_json_depth_within(json_object *v, int max);

/* Checks for what json-c reads in a request body but no other JSON reader
 * takes back once stored: every Go client of a resource would fail on it.
 * bdy_json_text_escapes_nul: text escapes a NUL (\u0000) in a key or a
 * string; json-c cuts keys short at it and every use of a value as a C
 * string would (escapes are skipped in pairs, so "\\u0000" is text).
 * bdy_json_numbers_finite: every number in v is finite; json-c reads NaN,
 * Infinity and 1e999, strict mode or not, and writes them back as such. */
bool bdy_json_text_escapes_nul(const char *text, size_t len);
bool bdy_json_numbers_finite(json_object *v);

/* Checks the text of a request body json-c has read for two things it lets
 * through: numbers RFC 8259 does not allow ("00", "-01", "1.", ".5"), and,
 * when no_duplicates, an object with a key twice (json-c keeps the last,
 * so {"pool":"a","pool":"b"} claimed from b). BDY_EINVAL (a number, or
 * a string not closed) or BDY_EEXISTS (a key twice) with why (cap bytes)
 * saying which, BDY_ENOMEM, or 0. Keys compare as decoded
 * ("\u0070ool" is "pool"). Reads any bytes safely, valid JSON or not; the
 * caller's parser judges the rest. */
int bdy_json_text_check(const char *text, size_t len, bool no_duplicates, char *why, size_t cap);

/* Parses text that Bindery wrote itself (stored objects, ledger rows),
 * as json_tokener_parse() does but with room for BDY_JSON_MAX_DEPTH levels
 * and more, so whatever the store accepted reads back (NULL on any
 * error), but with a tokener kept per thread. json_tokener_parse() allocates
 * a tokener and its 1.3 KB parse stack per call; that allocation is in
 * glibc's large-chunk range, so every call also consolidated the thread's
 * fast bins, which showed in profiles of restarts (100,000 stored worlds)
 * and of the store writer. Returns a new reference. Not for outside input:
 * request bodies have their own caps (depth, size, trailing bytes). */
json_object *bdy_json_parse_stored(const char *text);

#endif
