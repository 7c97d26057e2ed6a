/* Kubernetes label and field selectors.
 *
 * Label selectors come as the query-string syntax of the Kubernetes API
 * ("tier in (web,api),app=demo,!legacy") or as the JSON LabelSelector of the
 * claim API ({"matchLabels":{...},"matchExpressions":[...]}); both compile to
 * the same structure. Field selectors support =, == and != on dotted paths.
 *
 * A compiled selector is immutable and may be shared between threads.
 */
#ifndef BINDERY_SELECTOR_H
#define BINDERY_SELECTOR_H

#include "bindery/error.h"

#include <json-c/json.h>
#include <stdbool.h>

/* Caps on outside input. */
#define BDY_SELECTOR_MAX_TEXT 4096
#define BDY_SELECTOR_MAX_TERMS 64
#define BDY_SELECTOR_MAX_VALUES 64

typedef struct bdy_label_selector bdy_label_selector;
typedef struct bdy_field_selector bdy_field_selector;

/* Whether k is a valid label key (Kubernetes' IsQualifiedName: an optional
 * DNS subdomain prefix and "/", then a name of at most 63 characters) and
 * v a valid label value (IsValidLabelValue); annotation keys follow the
 * label key rule too. */
bool bdy_label_key_valid(const char *k);
bool bdy_label_value_valid(const char *v);

/* Parses the string form. NULL or "" gives a selector that matches
 * everything. Bad syntax → BDY_EINVAL with a message in eb. Caller frees. */
int bdy_label_selector_parse(const char *text, bdy_label_selector **out, bdy_errbuf *eb);

/* Compiles a JSON LabelSelector object (matchLabels, matchExpressions with
 * operators In, NotIn, Exists, DoesNotExist). Unknown fields, bad operators,
 * or values given for Exists → BDY_EINVAL; the message names the field path
 * relative to the selector, e.g. "matchExpressions[0].operator". */
int bdy_label_selector_from_json(json_object *sel, bdy_label_selector **out, bdy_errbuf *eb);

/* labels is a JSON object of string values, or NULL (no labels). */
bool bdy_label_selector_matches(const bdy_label_selector *s, json_object *labels);
/* The same against labels a callback looks up (the value of key, NULL when
 * the label is absent), so a caller holding labels in its own form needs no
 * JSON object per match (the warm index, under its lock). */
typedef const char *(*bdy_label_lookup)(void *data, const char *key);
bool bdy_label_selector_matches_lookup(const bdy_label_selector *s, bdy_label_lookup lookup,
                                       void *data);

/* True when the selector has no terms. */
bool bdy_label_selector_is_empty(const bdy_label_selector *s);

void bdy_label_selector_free(bdy_label_selector *s);

/* Parses "metadata.name=foo,status.phase!=Ready". allowed is a NULL-terminated
 * list of field paths the caller supports; a term on any other field gives
 * BDY_EINVAL with message "field label not supported: <field>". allowed ==
 * NULL means metadata.name and metadata.namespace only. */
int bdy_field_selector_parse(const char *text, const char *const *allowed, bdy_field_selector **out,
                             bdy_errbuf *eb);

/* Evaluates the selector against obj; a missing field compares as "". */
bool bdy_field_selector_matches(const bdy_field_selector *s, json_object *obj);

void bdy_field_selector_free(bdy_field_selector *s);

/* Looks up a dotted path ("metadata.name", "involvedObject.uid") in obj.
 * Returns the borrowed value or NULL. */
json_object *bdy_json_path_get(json_object *obj, const char *dotted);

#endif
