/* Fuzz driver for capability binding (bdy_capabilities_bind,
 * reconciler/capability.c): CapabilityBindings, Secrets and ConfigMaps are
 * objects any client allowed to write them controls, and the CRD's schema
 * is all that stands between them and the binder (a Secret's or ConfigMap's
 * none at all).
 *
 * The input is one JSON object: {"caps": [...], "world": {...},
 * "bindings": [...], "secrets": {name: Secret}, "configmaps": {name:
 * ConfigMap}}. Whatever it holds, binding must fail with a reason or bind
 * variables a process can be given: names without '=' and not Bindery's
 * own, values without a NUL byte, within the caps each and in all.
 */
#include "bindery/capability.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static json_object *input;

static int get(void *data, const bdy_gvr *gvr, const char *name, json_object **out)
{
    (void)data;
    json_object *kind = json_object_object_get(input, gvr->resource);
    json_object *obj = NULL;
    if (!json_object_is_type(kind, json_type_object) ||
        !json_object_object_get_ex(kind, name, &obj))
        return BDY_ENOTFOUND;
    *out = json_object_get(obj);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_tokener *tok = json_tokener_new_ex(16);
    if (tok == NULL)
        return 0;
    input = json_tokener_parse_ex(tok, (const char *)data, (int)size);
    json_tokener_free(tok);
    if (!json_object_is_type(input, json_type_object)) {
        json_object_put(input);
        return 0;
    }
    bdy_worldspec ws;
    memset(&ws, 0, sizeof(ws));
    ws.held = json_object_new_array();
    ws.capabilities = json_object_new_array();
    json_object *caps = json_object_object_get(input, "caps");
    for (size_t i = 0;
         json_object_is_type(caps, json_type_array) && i < json_object_array_length(caps) && i < 16;
         i++) {
        json_object *c = json_object_array_get_idx(caps, i);
        if (json_object_is_type(c, json_type_string))
            json_object_array_add(ws.capabilities, json_object_get(c));
    }
    json_object_array_add(ws.held, ws.capabilities);
    char why[512] = "";
    int rc = bdy_capabilities_bind(&ws, json_object_object_get(input, "world"),
                                   json_object_object_get(input, "bindings"), get, NULL, why,
                                   sizeof(why));
    /* The pool's stamp of a world like it: a digest, "unbound" or nothing,
     * as the binding went (get fails on nothing here). */
    json_object *meta = json_object_object_get(json_object_object_get(input, "world"), "metadata");
    json_object *ns = json_object_object_get(meta, "namespace");
    char stamp[65];
    int src = bdy_capabilities_stamp(
        ws.capabilities,
        json_object_is_type(ns, json_type_string) ? json_object_get_string(ns) : "",
        json_object_object_get(meta, "labels"), json_object_object_get(input, "bindings"), get,
        NULL, stamp);
    if (src == 0 && rc != BDY_ENOMEM) {
        bool none = json_object_array_length(ws.capabilities) == 0;
        bool unbound = strcmp(stamp, "unbound") == 0;
        if ((rc == 0) != (none ? stamp[0] == '\0' : strlen(stamp) == 64) || (rc != 0) != unbound)
            abort();
    }
    json_object_put(input); /* what was bound must not point into it */
    input = NULL;
    if (rc != 0 && why[0] == '\0')
        abort();
    if (rc == 0) {
        if (ws.spec.nbound > BDY_RUNTIME_MAX_ENV)
            abort();
        size_t total = 0;
        for (size_t i = 0; i < ws.spec.nbound; i++) {
            const char *name = ws.spec.bound_names[i];
            const char *value = ws.spec.bound_values[i];
            if (name == NULL || name[0] == '\0' || strchr(name, '=') != NULL || value == NULL ||
                strlen(value) > BDY_CAPABILITY_MAX_VALUE_BYTES || strncmp(name, "BINDERY_", 8) == 0)
                abort();
            total += strlen(name) + strlen(value) + 2;
            if (total > BDY_CAPABILITY_MAX_TOTAL_BYTES)
                abort();
            for (size_t k = 0; k < i; k++)
                if (strcmp(ws.spec.bound_names[k], name) == 0)
                    abort();
        }
    }
    bdy_worldspec_free(&ws);
    return 0;
}
