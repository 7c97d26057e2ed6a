/* CustomResourceDefinitions: compiling a CRD object into what the embedded
 * store needs to serve and validate its custom resources.
 *
 * The validator is generic and driven only by the CRD's openAPIV3Schema
 * (structural schema subset): type, properties, required, enum, minimum,
 * maximum, exclusiveMinimum/Maximum, pattern, minLength/maxLength,
 * minItems/maxItems, minProperties/maxProperties, items, additionalProperties,
 * nullable, default, format (int32/int64/date-time), x-kubernetes-int-or-string,
 * x-kubernetes-preserve-unknown-fields, x-kubernetes-embedded-resource.
 *
 * A compiled bdy_crd is immutable after bdy_crd_compile() returns and may be
 * read from many threads at once.
 */
#ifndef BINDERY_CRD_H
#define BINDERY_CRD_H

#include "bindery/error.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct bdy_schema bdy_schema;

/* One additionalPrinterColumns entry. */
typedef struct bdy_printer_column {
    char *name;
    char *type;        /* string, integer, number, boolean, date */
    char *format;      /* may be NULL */
    char *description; /* may be NULL */
    char *json_path;   /* e.g. ".status.phase" */
    int priority;
} bdy_printer_column;

typedef struct bdy_crd_version {
    char *name; /* "v1alpha1" */
    bool served;
    bool storage;
    bool status_subresource;
    bdy_schema *schema; /* never NULL once compiled */
    bdy_printer_column *columns;
    size_t ncolumns;
    char **selectable_fields; /* "status.phase" style (leading dot removed) */
    size_t nselectable_fields;
} bdy_crd_version;

typedef struct bdy_crd {
    char *name;      /* metadata.name: "<plural>.<group>" */
    char *group;     /* "bindery.dev" */
    char *plural;    /* "worldinstances" */
    char *singular;  /* "worldinstance" */
    char *kind;      /* "WorldInstance" */
    char *list_kind; /* "WorldInstanceList" */
    bool namespaced; /* scope == Namespaced */
    char **short_names;
    size_t nshort_names;
    char **categories;
    size_t ncategories;
    bdy_crd_version *versions;
    size_t nversions;
} bdy_crd;

/* Validates a CustomResourceDefinition object (apiextensions.k8s.io/v1) and
 * compiles it. Errors (missing names, bad scope, a schema that is not
 * structural, a bad regex, metadata.name != plural.group, no storage version)
 * → BDY_EINVALID_OBJECT with field-level causes in eb. Caller frees. */
int bdy_crd_compile(json_object *crd, bdy_crd **out, bdy_errbuf *eb);

void bdy_crd_free(bdy_crd *crd);

/* The version named name, or NULL. */
const bdy_crd_version *bdy_crd_find_version(const bdy_crd *crd, const char *name);

typedef enum bdy_unknown_fields {
    BDY_UNKNOWN_PRUNE,  /* drop unknown fields silently (Kubernetes default) */
    BDY_UNKNOWN_REJECT, /* fieldValidation=Strict: unknown field is an error */
} bdy_unknown_fields;

/* Validates obj (a whole custom resource: apiVersion, kind, metadata, spec,
 * status ...) against the version's schema, in place: applies defaults and
 * prunes unknown fields (or reports them, per mode). apiVersion, kind and
 * metadata are left to the caller and never pruned. Returns 0 or
 * BDY_EINVALID_OBJECT with one cause per problem, each naming the path
 * ("spec.ports[0].port") and a Kubernetes reason (FieldValueRequired,
 * FieldValueInvalid, FieldValueNotSupported, FieldValueTypeInvalid,
 * FieldValueTooLong, FieldValueTooMany, FieldValueForbidden for unknown
 * fields in REJECT mode). */
int bdy_schema_validate(const bdy_schema *schema, json_object *obj, bdy_unknown_fields mode,
                        bdy_errbuf *eb);

#endif
