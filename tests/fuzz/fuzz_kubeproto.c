/* Fuzz driver for Secret and ConfigMap bodies: the Kubernetes protobuf
 * decoder (allocator/kubeapi_proto.c) and the rules the store applies to
 * both kinds (reconciler/corekinds.c).
 *
 * An input starting with the protobuf prefix "k8s\0" is decoded as a
 * Secret, a ConfigMap and a Namespace; any other is parsed as JSON (depth-capped like the
 * HTTP edge). Each object is then prepared by the rules of both kinds in
 * both unknown-field modes. Beyond memory errors the driver aborts when a
 * decoded object does not survive a round trip through JSON text, or when
 * preparing an object the rules accepted is not a fixed point (a second
 * pass must accept it unchanged: what is stored is what a client reads
 * back and may send again).
 */
#include "../../allocator/kubeapi_internal.h"
#include "../../reconciler/corekinds.h"
#include "bindery/jsonutil.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The HTTP server's default body cap: bigger inputs only slow it down. */
#define FUZZ_MAX_INPUT 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bdy_resource_info info_of(const char *resource, const char *kind)
{
    bdy_resource_info info;
    memset(&info, 0, sizeof(info));
    memcpy(info.version, "v1", 3);
    memcpy(info.resource, resource, strlen(resource) + 1);
    memcpy(info.kind, kind, strlen(kind) + 1);
    info.namespaced = true;
    return info;
}

/* Prepares a copy of obj; when accepted, a second pass must accept the
 * result and leave it as it is. */
static void check_fixed_point(const bdy_resource_info *info, json_object *obj,
                              bdy_unknown_fields mode)
{
    json_object *once = NULL;
    json_object *twice = NULL;
    if (json_object_deep_copy(obj, &once, NULL) != 0)
        abort();
    int rc = bdy__corekind_prepare(info, once, NULL, mode, NULL);
    if (rc == 0) {
        if (json_object_deep_copy(once, &twice, NULL) != 0)
            abort();
        if (bdy__corekind_prepare(info, twice, NULL, mode, NULL) != 0 ||
            !json_object_equal(once, twice))
            abort();
        /* An update to the same content is allowed, immutable or not. */
        json_object *again = NULL;
        if (json_object_deep_copy(once, &again, NULL) != 0)
            abort();
        if (bdy__corekind_prepare(info, again, once, mode, NULL) != 0)
            abort();
        json_object_put(again);
    } else if (rc != BDY_EINVALID_OBJECT) {
        abort();
    }
    json_object_put(once);
    json_object_put(twice);
}

static void check_kinds(json_object *obj)
{
    bdy_resource_info secrets = info_of("secrets", "Secret");
    bdy_resource_info configmaps = info_of("configmaps", "ConfigMap");
    if (!json_object_is_type(obj, json_type_object))
        return;
    check_fixed_point(&secrets, obj, BDY_UNKNOWN_PRUNE);
    check_fixed_point(&secrets, obj, BDY_UNKNOWN_REJECT);
    check_fixed_point(&configmaps, obj, BDY_UNKNOWN_PRUNE);
    check_fixed_point(&configmaps, obj, BDY_UNKNOWN_REJECT);
}

/* A decoded object must be valid JSON text that reads back the same. */
static void check_round_trip(json_object *obj)
{
    const char *text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN);
    json_object *back = json_tokener_parse(text);
    if (back == NULL || !json_object_equal(obj, back) || !bdy_utf8_valid(text, strlen(text)))
        abort();
    json_object_put(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT)
        return 0;
    if (size >= 4 && memcmp(data, "k8s\0", 4) == 0) {
        const char *const kinds[][3] = {
            {"", "secrets", "Secret"},
            {"", "configmaps", "ConfigMap"},
            {"", "namespaces", "Namespace"},
            {"authorization.k8s.io", "selfsubjectaccessreviews", "SelfSubjectAccessReview"},
            {"authorization.k8s.io", "selfsubjectrulesreviews", "SelfSubjectRulesReview"},
            {"authentication.k8s.io", "selfsubjectreviews", "SelfSubjectReview"}};
        for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
            bdy_resource_info info = info_of(kinds[i][1], kinds[i][2]);
            memcpy(info.group, kinds[i][0], strlen(kinds[i][0]) + 1);
            json_object *obj = NULL;
            int rc = bdy__kube_proto_decode(&info, (const char *)data, size, &obj, NULL);
            if ((rc == 0) != (obj != NULL) || (rc != 0 && rc != BDY_EINVAL))
                abort();
            if (obj != NULL) {
                check_round_trip(obj);
                check_kinds(obj);
            }
            json_object_put(obj);
        }
        return 0;
    }
    json_tokener *tok = json_tokener_new_ex(BDY_JSON_MAX_DEPTH + 1);
    if (tok == NULL)
        return 0;
    json_object *obj = json_tokener_parse_ex(tok, (const char *)data, (int)size);
    json_tokener_free(tok);
    check_kinds(obj);
    json_object_put(obj);
    return 0;
}
