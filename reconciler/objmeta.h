/* Internal to the embedded store: Kubernetes object-metadata rules shared by
 * create, update, patch and delete. Pure functions over json-c objects; no
 * locking needed. */
#ifndef BINDERY_RECONCILER_OBJMETA_H
#define BINDERY_RECONCILER_OBJMETA_H

#include "bindery/error.h"
#include "bindery/jsonutil.h"
#include "bindery/store.h"

#include <json-c/json.h>
#include <stdbool.h>

#define BDY__MAX_NAME_LEN 253
#define BDY__MAX_ANNOTATIONS_BYTES (256u * 1024u)
#define BDY__MAX_FINALIZERS 64

/* obj.metadata, created (as an empty object) when absent or not an object. */
json_object *bdy__metadata(json_object *obj);
/* metadata.<key> as a string, or NULL. */
const char *bdy__meta_str(json_object *obj, const char *key);
void bdy__meta_set_str(json_object *obj, const char *key, const char *value);

/* Sets metadata.labels[key] to value (making labels when absent or not an
 * object). */
void bdy__meta_set_label(json_object *obj, const char *key, const char *value);

/* DNS-1123 subdomain (most names) or label (namespace names). */
bool bdy__valid_dns_subdomain(const char *s);
bool bdy__valid_dns_label(const char *s);
/* Kubernetes qualified name (label keys, finalizers) and label value. */
bool bdy__valid_qualified_name(const char *s);
bool bdy__valid_label_value(const char *s);

/* Checks metadata.name, labels, annotations and finalizers, adding causes to
 * eb, and prunes or reports (mode) fields ObjectMeta does not have.
 * Returns 0 or BDY_EINVALID_OBJECT. namespace_kind: names are DNS labels. */
int bdy__meta_validate(json_object *obj, bool namespace_kind, bdy_unknown_fields mode,
                       bdy_errbuf *eb);

/* True when the object's finalizer list is non-empty. */
bool bdy__has_finalizers(json_object *obj);
/* True when every finalizer of after was already in before. */
bool bdy__finalizers_subset(json_object *after, json_object *before);

/* Compares a and b ignoring metadata (and status when ignore_status):
 * whether the "spec" part changed, for generation bumps. */
bool bdy__content_changed(json_object *a, json_object *b, bool ignore_status);

/* Fills eb->message with the Kubernetes "is invalid" summary from its causes:
 *   WorldInstance.bindery.dev "w1" is invalid: spec.pool: Required value */
void bdy__invalid_summary(bdy_errbuf *eb, const bdy_resource_info *info, const char *name);

#endif
