/* Capabilities: what a world needs from outside it (a database's address
 * and password, say), named by its ModuleManifests' spec.capabilities and
 * satisfied by the CapabilityBindings of the world's namespace. A world
 * does not start until every capability it requires is bound.
 *
 * Which binding: one whose spec.capability is the name and whose
 * worldSelector matches the world's labels. One with a selector that has
 * terms wins over one without (a default for the namespace, overridden
 * for some worlds); two of equal standing are a conflict, not a choice.
 *
 * The value: the binding's source, one of
 *   values         literal key/value pairs,
 *   secretRef      a Secret's data (base64-decoded),
 *   configMapRef   a ConfigMap's data and binaryData (decoded),
 *   serviceRef     a Service (Kubernetes only: embedded mode has none).
 * With a key, only that key's value; without, every key.
 *
 * How it reaches the world: as environment variables. With a key, one
 * variable, spec.inject.env, or CAPABILITY_<NAME> when that is not set
 * (NAME is the capability's name in upper case, '-' and '.' as '_');
 * without a key, one variable per key: that name, '_' and the key (upper
 * case, anything but letters and digits as '_'). A booklet world's
 * modules share the world's environment, and so its capabilities.
 * spec.inject.file needs a volume to mount and a world of its own file
 * system: embedded mode refuses it.
 *
 * Thread-safety: none needed; every call works on its arguments only.
 */
#ifndef BINDERY_CAPABILITY_H
#define BINDERY_CAPABILITY_H

#include "bindery/worldspec.h"

#include <json-c/json.h>
#include <stddef.h>

/* Longest value one variable may carry: an environment string longer than
 * the kernel's limit (128 KiB) makes the start fail with E2BIG, and many
 * such values would pass the limit of all arguments and variables. */
#define BDY_CAPABILITY_MAX_VALUE_BYTES BDY_RUNTIME_MAX_ARG_BYTES
/* Longest all of one world's bound variables may be ("NAME=value" each):
 * the kernel takes about 2 MiB of arguments and environment in all, and
 * a world is recognised after a restart by the variables Bindery sets,
 * which a restarted bindery reads from the first 1 MiB of its
 * environment. */
#define BDY_CAPABILITY_MAX_TOTAL_BYTES ((size_t)256 * 1024)

/* Binds every capability ws->capabilities names for world (a
 * WorldInstance as stored), from bindings (an array of the
 * CapabilityBindings of the world's namespace), reading Secrets and
 * ConfigMaps through get. The variables go to ws->spec.bound_*, their
 * strings held in ws->held. Returns 0; BDY_ENOTFOUND when one is unbound
 * (no binding serves it, or its Secret, ConfigMap or key is missing);
 * BDY_EINVAL when it is bound in a way that cannot be injected here (two
 * bindings of equal standing, a file, a Service, a variable set twice or
 * named BINDERY_*, a value with a NUL byte or longer than
 * BDY_CAPABILITY_MAX_VALUE_BYTES, more than BDY_RUNTIME_MAX_ENV variables
 * or BDY_CAPABILITY_MAX_TOTAL_BYTES in all, a source of more than
 * BDY_RUNTIME_MAX_ENV keys bound without a key); BDY_ENOMEM; or a store error
 * from get. The reason, naming the capability and the binding, in why. */
int bdy_capabilities_bind(bdy_worldspec *ws, json_object *world, json_object *bindings,
                          bdy_worldspec_get_fn get, void *data, char *why, size_t why_cap);

/* What the worlds of a pool would be bound to now, for its template
 * (bdy_pool_template): in out, the SHA-256 in hex of every variable
 * bdy_capabilities_bind would give a world of namespace ns with labels (a
 * JSON object, or NULL) for capabilities (an array of names), so that a
 * changed value (a rotated password, a binding edited) rolls the pool's
 * idle worlds out as a manifest edit does; "" when none is required,
 * "unbound" when one is not bound (the pool's worlds wait). Returns 0, or
 * BDY_ENOMEM or a store error from get (out is "" then: the caller keeps
 * the template it has). */
int bdy_capabilities_stamp(json_object *capabilities, const char *ns, json_object *labels,
                           json_object *bindings, bdy_worldspec_get_fn get, void *data,
                           char out[65]);

/* Whether binding (a CapabilityBinding as stored) can bind its capability
 * here, whichever worlds it serves: its worldSelector valid, its source
 * found, with its key, and every value one a world can be given. 0, or an
 * error with the reason in why as bdy_capabilities_bind gives them (a
 * selector that is not valid is BDY_EINVAL). For the binding's status. */
int bdy_capability_binding_check(json_object *binding, bdy_worldspec_get_fn get, void *data,
                                 char *why, size_t why_cap);

/* Whether another binding of bindings (CapabilityBindings as stored, any
 * namespaces) in binding's namespace serves its capability to the same
 * worlds: the same worldSelector, or neither has one (or an empty one).
 * Every world that needs the capability then waits (bdy_capabilities_bind
 * cannot choose), so the binding's status says so. BDY_EEXISTS with the
 * reason in why, or 0. */
int bdy_capability_binding_twin(json_object *binding, json_object *bindings, char *why,
                                size_t why_cap);

#endif
