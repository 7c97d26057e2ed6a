/* Fuzz driver for the custom-resource validator (reconciler/schema.c).
 *
 * The input is parsed as JSON (depth-capped like the HTTP edge) and
 * validated in both unknown-field modes against a WorldInstance-like CRD
 * embedded below, which uses every keyword the validator knows. Beyond
 * memory errors the driver aborts when the results contradict each other:
 * an object valid in strict mode must be valid after pruning, and an object
 * that pruning accepted must come out clean in strict mode (pruning and
 * defaulting leave nothing to report).
 */
#include "bindery/crd.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* Bigger documents only slow the fuzzer down without new paths. */
#define FUZZ_MAX_INPUT 65536
/* The nesting the HTTP edge accepts. */
#define FUZZ_JSON_DEPTH 64

static const char world_crd[] =
    "{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"CustomResourceDefinition\","
    "\"metadata\":{\"name\":\"worlds.fuzz.dev\"},"
    "\"spec\":{\"group\":\"fuzz.dev\",\"scope\":\"Namespaced\","
    "\"names\":{\"plural\":\"worlds\",\"kind\":\"World\"},"
    "\"versions\":[{\"name\":\"v1\",\"served\":true,\"storage\":true,"
    "\"subresources\":{\"status\":{}},"
    "\"schema\":{\"openAPIV3Schema\":{\"type\":\"object\",\"required\":[\"spec\"],\"properties\":{"
    "\"spec\":{\"type\":\"object\",\"required\":[\"pool\"],\"minProperties\":1,"
    "\"maxProperties\":6,\"properties\":{"
    "\"pool\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":16,"
    "\"pattern\":\"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$\"},"
    "\"manifest\":{\"type\":\"string\",\"default\":\"m\"},"
    "\"count\":{\"type\":\"integer\",\"format\":\"int32\",\"minimum\":1,\"maximum\":64,"
    "\"default\":1},"
    "\"ratio\":{\"type\":\"number\",\"minimum\":0,\"exclusiveMinimum\":true,\"nullable\":true},"
    "\"size\":{\"x-kubernetes-int-or-string\":true,\"pattern\":\"^[0-9]+%$\"},"
    "\"template\":{\"type\":\"object\",\"x-kubernetes-embedded-resource\":true,"
    "\"x-kubernetes-preserve-unknown-fields\":true}}},"
    "\"status\":{\"type\":\"object\",\"properties\":{"
    "\"phase\":{\"type\":\"string\",\"enum\":[\"Pending\",\"Ready\",\"Failed\"]},"
    "\"ports\":{\"type\":\"array\",\"maxItems\":8,\"items\":{\"type\":\"object\","
    "\"required\":[\"name\"],\"properties\":{"
    "\"name\":{\"type\":\"string\"},"
    "\"port\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":65535},"
    "\"protocol\":{\"type\":\"string\",\"enum\":[\"TCP\",\"UDP\"],\"default\":\"UDP\"}}}},"
    "\"pid\":{\"type\":\"integer\",\"format\":\"int64\"},"
    "\"labels\":{\"type\":\"object\",\"maxProperties\":4,"
    "\"additionalProperties\":{\"type\":\"string\",\"maxLength\":8}},"
    "\"extra\":{\"type\":\"object\",\"additionalProperties\":true},"
    "\"allocation\":{\"type\":\"object\",\"default\":{},\"properties\":{"
    "\"claimedAt\":{\"type\":\"string\",\"format\":\"date-time\"},"
    "\"tries\":{\"type\":\"integer\",\"default\":0}}},"
    "\"matrix\":{\"type\":\"array\",\"minItems\":1,\"items\":{\"type\":\"array\","
    "\"items\":{\"type\":\"boolean\"}}},"
    "\"conditions\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
    "\"x-kubernetes-preserve-unknown-fields\":true,\"properties\":{"
    "\"type\":{\"type\":\"string\"}}}}}}}}}}]}}";

static const bdy_schema *schema(void)
{
    static bdy_crd *crd;
    json_object *o;

    if (crd == NULL) {
        o = json_tokener_parse(world_crd);
        if (o == NULL || bdy_crd_compile(o, &crd, NULL) != 0)
            abort();
        json_object_put(o);
    }
    return crd->versions[0].schema;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_tokener *tok = NULL;
    json_object *pruned = NULL;
    json_object *strict = NULL;
    bdy_errbuf eb;
    int rc_pruned, rc_strict;

    if (size > FUZZ_MAX_INPUT)
        return 0;
    tok = json_tokener_new_ex(FUZZ_JSON_DEPTH);
    if (tok == NULL)
        abort();
    pruned = json_tokener_parse_ex(tok, (const char *)data, (int)size);
    if (json_tokener_get_error(tok) != json_tokener_success ||
        !json_object_is_type(pruned, json_type_object))
        goto out;
    if (json_object_deep_copy(pruned, &strict, NULL) != 0)
        abort();

    rc_pruned = bdy_schema_validate(schema(), pruned, BDY_UNKNOWN_PRUNE, &eb);
    rc_strict = bdy_schema_validate(schema(), strict, BDY_UNKNOWN_REJECT, &eb);
    if (rc_pruned != 0 && rc_pruned != BDY_EINVALID_OBJECT)
        abort();
    if (rc_strict != 0 && rc_strict != BDY_EINVALID_OBJECT)
        abort();
    if (rc_strict == 0 && rc_pruned != 0)
        abort();
    if (rc_pruned == 0 && bdy_schema_validate(schema(), pruned, BDY_UNKNOWN_REJECT, &eb) != 0)
        abort();
    if (eb.ncauses > BDY_ERRBUF_MAX_CAUSES)
        abort();
out:
    json_object_put(pruned);
    json_object_put(strict);
    json_tokener_free(tok);
    return 0;
}
