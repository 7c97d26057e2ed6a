/* Internal to the embedded store: the rules the Kubernetes API server
 * applies on every write of the core/v1 kinds that carry data, Secret and
 * ConfigMap. The store calls bdy__corekind_prepare() from the one function
 * every write goes through (create, update, status update and each kind of
 * patch), so clients of the Kubernetes API and bindery's own writers get the
 * same rules. Pure functions over json-c objects; no locking needed.
 */
#ifndef BINDERY_RECONCILER_COREKINDS_H
#define BINDERY_RECONCILER_COREKINDS_H

#include "bindery/crd.h"
#include "bindery/error.h"
#include "bindery/store.h"

#include <json-c/json.h>
#include <stddef.h>

/* The most a Secret's decoded data, or a ConfigMap's data and decoded
 * binaryData together, may hold (Kubernetes' MaxSecretSize). */
#define BDY__CORE_DATA_MAX_BYTES ((size_t)1024 * 1024)
/* The longest key of data, stringData or binaryData (a DNS subdomain's). */
#define BDY__CORE_KEY_MAX_LEN 253

/* Prepares obj, an object of the resource info about to be stored, in
 * place, and checks it; objects of other kinds are left alone (0).
 *
 * Secret: stringData is merged into data as base64 (stringData wins on a
 * key both hold) and dropped; data values must be standard base64 (padded;
 * line breaks are allowed and removed, as the API server re-encodes what it
 * decoded); type defaults to "Opaque". ConfigMap: data values are strings,
 * binaryData values standard base64 (made canonical the same way), and no
 * key may be in both. Both: keys match [-._a-zA-Z0-9]+, are at most
 * BDY__CORE_KEY_MAX_LEN characters and are not ".", ".." or "..*"; the
 * decoded values total at most BDY__CORE_DATA_MAX_BYTES; immutable is a
 * boolean; empty maps are dropped (the API server omits them); top-level
 * fields the kind does not have are pruned or, with BDY_UNKNOWN_REJECT,
 * reported as "unknown field" causes.
 *
 * old is the stored object on an update (NULL on create): a Secret's type
 * cannot change, and once old is immutable its immutable flag stays true
 * and its data (ConfigMap: data and binaryData) cannot change.
 *
 * Returns 0, BDY_EINVALID_OBJECT with causes added to eb (may be NULL; the
 * caller writes the summary), or BDY_ENOMEM. obj may have been changed in
 * part when it fails. */
int bdy__corekind_prepare(const bdy_resource_info *info, json_object *obj, json_object *old,
                          bdy_unknown_fields mode, bdy_errbuf *eb);

#endif
