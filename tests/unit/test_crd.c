/* Unit tests for the CRD compiler and the OpenAPI v3 validator
 * (reconciler/crd.c, reconciler/schema.c). Self-contained: every CRD and
 * object is a JSON literal here. */
#include "bindery/crd.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* A CRD around one openAPIV3Schema; %s is the schema. */
static const char crd_template[] =
    "{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"CustomResourceDefinition\","
    "\"metadata\":{\"name\":\"widgets.example.com\"},"
    "\"spec\":{\"group\":\"example.com\",\"scope\":\"Namespaced\","
    "\"names\":{\"plural\":\"widgets\",\"kind\":\"Widget\"},"
    "\"versions\":[{\"name\":\"v1\",\"served\":true,\"storage\":true,"
    "\"schema\":{\"openAPIV3Schema\":%s}}]}}";

/* One schema exercising every keyword the validator knows. */
static const char widget_schema[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"spec\":{\"type\":\"object\",\"required\":[\"pool\"],\"properties\":{"
    "\"pool\":{\"type\":\"string\",\"minLength\":2,\"maxLength\":8,"
    "\"pattern\":\"^[a-z][a-z0-9-]*$\"},"
    "\"title\":{\"type\":\"string\",\"maxLength\":5},"
    "\"replicas\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":10,\"default\":1},"
    "\"ratio\":{\"type\":\"number\",\"minimum\":0,\"exclusiveMinimum\":true,"
    "\"maximum\":1,\"exclusiveMaximum\":true},"
    "\"weight\":{\"type\":\"number\"},"
    "\"mode\":{\"type\":\"string\",\"enum\":[\"a\",\"b\"]},"
    "\"level\":{\"enum\":[1,\"two\",null],\"x-kubernetes-preserve-unknown-fields\":true},"
    "\"enabled\":{\"type\":\"boolean\"},"
    "\"port\":{\"type\":\"integer\",\"maximum\":65535},"
    "\"i32\":{\"type\":\"integer\",\"format\":\"int32\"},"
    "\"i64\":{\"type\":\"integer\",\"format\":\"int64\"},"
    "\"when\":{\"type\":\"string\",\"format\":\"date-time\"},"
    "\"note\":{\"type\":\"string\",\"nullable\":true},"
    "\"maybe\":{\"type\":\"string\",\"nullable\":true,\"default\":null},"
    "\"name\":{\"type\":\"string\",\"default\":\"x\"},"
    "\"ports\":{\"type\":\"array\",\"minItems\":1,\"maxItems\":3,\"items\":{"
    "\"type\":\"object\",\"required\":[\"name\"],\"properties\":{"
    "\"name\":{\"type\":\"string\"},"
    "\"port\":{\"type\":\"integer\",\"maximum\":65535},"
    "\"protocol\":{\"type\":\"string\",\"enum\":[\"TCP\",\"UDP\"],\"default\":\"UDP\"}}}},"
    "\"labels\":{\"type\":\"object\",\"maxProperties\":2,"
    "\"additionalProperties\":{\"type\":\"string\"}},"
    "\"anything\":{\"type\":\"object\",\"additionalProperties\":true},"
    "\"closed\":{\"type\":\"object\",\"additionalProperties\":false},"
    "\"extra\":{\"type\":\"object\",\"x-kubernetes-preserve-unknown-fields\":true,"
    "\"properties\":{\"known\":{\"type\":\"integer\"}}},"
    "\"size\":{\"x-kubernetes-int-or-string\":true,"
    "\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"string\"}]},"
    "\"template\":{\"type\":\"object\",\"x-kubernetes-embedded-resource\":true,"
    "\"x-kubernetes-preserve-unknown-fields\":true},"
    "\"matrix\":{\"type\":\"array\",\"items\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"}}"
    "},"
    "\"opts\":{\"type\":\"object\",\"minProperties\":1,\"properties\":{"
    "\"a\":{\"type\":\"string\"},\"b\":{\"type\":\"string\"}}},"
    "\"nested\":{\"type\":\"object\",\"default\":{},\"properties\":{"
    "\"level\":{\"type\":\"integer\",\"default\":3}}}}},"
    "\"status\":{\"type\":\"object\",\"properties\":{\"phase\":{\"type\":\"string\"}}}}}";

/* Deep enough for the depth-cap test's schema. */
#define TEST_JSON_DEPTH 256
/* Longest CRD or object text the tests build. */
#define TEST_TEXT_MAX 16384

static json_object *parse(const char *text)
{
    json_tokener *tok = json_tokener_new_ex(TEST_JSON_DEPTH);
    json_object *o;

    assert_non_null(tok);
    o = json_tokener_parse_ex(tok, text, (int)strlen(text) + 1);
    json_tokener_free(tok);
    assert_non_null(o);
    return o;
}

static json_object *crd_with_schema(const char *schema)
{
    char text[TEST_TEXT_MAX];

    assert_true((size_t)snprintf(text, sizeof(text), crd_template, schema) < sizeof(text));
    return parse(text);
}

static bdy_crd *compile_ok(json_object *crd_obj)
{
    bdy_errbuf eb;
    bdy_crd *crd = NULL;
    int rc = bdy_crd_compile(crd_obj, &crd, &eb);

    if (rc != 0)
        fprintf(stderr, "unexpected: %s\n", eb.message);
    assert_int_equal(rc, 0);
    assert_non_null(crd);
    return crd;
}

static bdy_crd *widget_crd(void)
{
    json_object *o = crd_with_schema(widget_schema);
    bdy_crd *crd = compile_ok(o);
    json_object_put(o);
    return crd;
}

static void dump(const bdy_errbuf *eb)
{
    fprintf(stderr, "message: %s\n", eb->message);
    for (size_t i = 0; i < eb->ncauses; i++)
        fprintf(stderr, "  %s | %s | %s\n", eb->causes[i].reason, eb->causes[i].field,
                eb->causes[i].message);
}

/* True when eb holds a cause with exactly this field, reason and message. */
static bool has_cause(const bdy_errbuf *eb, const char *field, const char *reason,
                      const char *message)
{
    for (size_t i = 0; i < eb->ncauses; i++) {
        const bdy_cause *c = &eb->causes[i];
        if (strcmp(c->field, field) == 0 && strcmp(c->reason, reason) == 0 &&
            strcmp(c->message, message) == 0)
            return true;
    }
    dump(eb);
    return false;
}

/* Validates the Widget object whose spec is spec_json. */
static int validate_spec(const bdy_crd *crd, const char *spec_json, bdy_unknown_fields mode,
                         json_object **obj_out, bdy_errbuf *eb)
{
    char text[TEST_TEXT_MAX];
    json_object *obj;
    int rc;

    assert_true((size_t)snprintf(text, sizeof(text),
                                 "{\"apiVersion\":\"example.com/v1\",\"kind\":\"Widget\","
                                 "\"metadata\":{\"name\":\"w1\"},\"spec\":%s}",
                                 spec_json) < sizeof(text));
    obj = parse(text);
    rc = bdy_schema_validate(crd->versions[0].schema, obj, mode, eb);
    if (obj_out != NULL)
        *obj_out = obj;
    else
        json_object_put(obj);
    return rc;
}

/* Expects spec_json to fail with (at least) the given cause in both modes. */
static void expect_cause(const bdy_crd *crd, const char *spec_json, const char *field,
                         const char *reason, const char *message)
{
    bdy_errbuf eb;

    assert_int_equal(validate_spec(crd, spec_json, BDY_UNKNOWN_PRUNE, NULL, &eb),
                     BDY_EINVALID_OBJECT);
    assert_true(has_cause(&eb, field, reason, message));
    assert_int_equal(validate_spec(crd, spec_json, BDY_UNKNOWN_REJECT, NULL, &eb),
                     BDY_EINVALID_OBJECT);
    assert_true(has_cause(&eb, field, reason, message));
}

static void expect_valid(const bdy_crd *crd, const char *spec_json)
{
    bdy_errbuf eb;
    int rc = validate_spec(crd, spec_json, BDY_UNKNOWN_REJECT, NULL, &eb);

    if (rc != 0)
        dump(&eb);
    assert_int_equal(rc, 0);
}

/* Looks up a value by a '/'-separated path (numeric segments index arrays). */
static json_object *at(json_object *o, const char *path)
{
    char buf[256];
    char *save = NULL;

    snprintf(buf, sizeof(buf), "%s", path);
    for (char *seg = strtok_r(buf, "/", &save); seg && o; seg = strtok_r(NULL, "/", &save)) {
        if (json_object_is_type(o, json_type_array))
            o = json_object_array_get_idx(o, (size_t)atoi(seg));
        else if (!json_object_object_get_ex(o, seg, &o))
            return NULL;
    }
    return o;
}

/* Sets (value JSON text) or deletes (NULL) the member at path; array
 * items can only be set. */
static void set(json_object *root, const char *path, const char *value)
{
    char parent_path[256];
    const char *slash = strrchr(path, '/');
    json_object *parent;
    const char *key = slash ? slash + 1 : path;

    snprintf(parent_path, sizeof(parent_path), "%.*s", slash ? (int)(slash - path) : 0, path);
    parent = slash ? at(root, parent_path) : root;
    assert_non_null(parent);
    if (value == NULL)
        json_object_object_del(parent, key);
    else if (json_object_is_type(parent, json_type_array))
        json_object_array_put_idx(parent, (size_t)atoi(key), parse(value));
    else
        json_object_object_add(parent, key, parse(value));
}

/* ---- CRD compilation ---- */

static void test_compile_minimal(void **state)
{
    (void)state;
    json_object *o = crd_with_schema("{\"type\":\"object\"}");
    bdy_crd *crd = compile_ok(o);

    assert_string_equal(crd->name, "widgets.example.com");
    assert_string_equal(crd->group, "example.com");
    assert_string_equal(crd->plural, "widgets");
    assert_string_equal(crd->singular, "widget");
    assert_string_equal(crd->kind, "Widget");
    assert_string_equal(crd->list_kind, "WidgetList");
    assert_true(crd->namespaced);
    assert_int_equal(crd->nshort_names, 0);
    assert_int_equal(crd->nversions, 1);
    assert_string_equal(crd->versions[0].name, "v1");
    assert_true(crd->versions[0].served);
    assert_true(crd->versions[0].storage);
    assert_false(crd->versions[0].status_subresource);
    assert_non_null(crd->versions[0].schema);
    assert_ptr_equal(bdy_crd_find_version(crd, "v1"), &crd->versions[0]);
    assert_null(bdy_crd_find_version(crd, "v2"));
    assert_null(bdy_crd_find_version(NULL, "v1"));
    bdy_crd_free(crd);
    bdy_crd_free(NULL);
    json_object_put(o);
}

static void test_compile_full(void **state)
{
    (void)state;
    json_object *o = crd_with_schema("{\"type\":\"object\",\"properties\":{"
                                     "\"spec\":{\"type\":\"object\",\"properties\":{"
                                     "\"pool\":{\"type\":\"string\"}}},"
                                     "\"status\":{\"type\":\"object\",\"properties\":{"
                                     "\"phase\":{\"type\":\"string\"},"
                                     "\"ready\":{\"type\":\"boolean\"}}}}}");
    bdy_crd *crd;
    const bdy_crd_version *v;

    set(o, "spec/scope", "\"Cluster\"");
    set(o, "spec/names/singular", "\"widge\"");
    set(o, "spec/names/listKind", "\"WidgetCollection\"");
    set(o, "spec/names/shortNames", "[\"wd\",\"wdg\"]");
    set(o, "spec/names/categories", "[\"all\",\"toys\"]");
    set(o, "spec/versions/0/subresources", "{\"status\":{}}");
    set(o, "spec/versions/0/additionalPrinterColumns",
        "[{\"name\":\"Pool\",\"type\":\"string\",\"jsonPath\":\".spec.pool\"},"
        "{\"name\":\"Age\",\"type\":\"date\",\"jsonPath\":\".metadata.creationTimestamp\","
        "\"format\":\"date-time\",\"description\":\"age\",\"priority\":1}]");
    set(o, "spec/versions/0/selectableFields",
        "[{\"jsonPath\":\".spec.pool\"},{\"jsonPath\":\".status.ready\"}]");
    crd = compile_ok(o);
    assert_false(crd->namespaced);
    assert_string_equal(crd->singular, "widge");
    assert_string_equal(crd->list_kind, "WidgetCollection");
    assert_int_equal(crd->nshort_names, 2);
    assert_string_equal(crd->short_names[1], "wdg");
    assert_int_equal(crd->ncategories, 2);
    assert_string_equal(crd->categories[1], "toys");
    v = &crd->versions[0];
    assert_true(v->status_subresource);
    assert_int_equal(v->ncolumns, 2);
    assert_string_equal(v->columns[0].name, "Pool");
    assert_string_equal(v->columns[0].json_path, ".spec.pool");
    assert_null(v->columns[0].format);
    assert_int_equal(v->columns[0].priority, 0);
    assert_string_equal(v->columns[1].type, "date");
    assert_string_equal(v->columns[1].format, "date-time");
    assert_string_equal(v->columns[1].description, "age");
    assert_int_equal(v->columns[1].priority, 1);
    assert_int_equal(v->nselectable_fields, 2);
    assert_string_equal(v->selectable_fields[0], "spec.pool");
    assert_string_equal(v->selectable_fields[1], "status.ready");
    bdy_crd_free(crd);
    json_object_put(o);
}

static void test_compile_two_versions(void **state)
{
    (void)state;
    json_object *o = crd_with_schema("{\"type\":\"object\"}");
    bdy_crd *crd;

    json_object_array_add(at(o, "spec/versions"),
                          parse("{\"name\":\"v2\",\"served\":false,\"storage\":false,"
                                "\"schema\":{\"openAPIV3Schema\":{\"type\":\"object\"}}}"));
    crd = compile_ok(o);
    assert_int_equal(crd->nversions, 2);
    assert_false(bdy_crd_find_version(crd, "v2")->served);
    bdy_crd_free(crd);
    json_object_put(o);
}

/* One mutation of the minimal CRD and the cause it must produce. */
typedef struct crd_case {
    const char *path;
    const char *value; /* JSON text; NULL deletes */
    const char *field;
    const char *reason;
    const char *message;
} crd_case;

#define SCHEMA_PATH "spec.versions[0].schema.openAPIV3Schema"

static const crd_case crd_cases[] = {
    {"apiVersion", "\"apiextensions.k8s.io/v1beta1\"", "apiVersion", "FieldValueNotSupported",
     "Unsupported value: \"apiextensions.k8s.io/v1beta1\": supported values: "
     "\"apiextensions.k8s.io/v1\""},
    {"kind", "\"Widget\"", "kind", "FieldValueNotSupported",
     "Unsupported value: \"Widget\": supported values: \"CustomResourceDefinition\""},
    {"metadata/name", NULL, "metadata.name", "FieldValueRequired", "Required value"},
    {"metadata/name", "\"gadgets.example.com\"", "metadata.name", "FieldValueInvalid",
     "Invalid value: \"gadgets.example.com\": must be spec.names.plural+\".\"+spec.group"},
    {"metadata/name", "\"widgets.example.comx\"", "metadata.name", "FieldValueInvalid",
     "Invalid value: \"widgets.example.comx\": must be spec.names.plural+\".\"+spec.group"},
    {"spec", NULL, "spec", "FieldValueRequired", "Required value"},
    {"spec/group", NULL, "spec.group", "FieldValueRequired", "Required value"},
    {"spec/group", "\"example\"", "spec.group", "FieldValueInvalid",
     "Invalid value: \"example\": should be a domain with at least one dot"},
    {"spec/group", "\"Example.com\"", "spec.group", "FieldValueInvalid",
     "Invalid value: \"Example.com\": a lowercase RFC 1123 subdomain must consist of lower case "
     "alphanumeric characters, '-' or '.'"},
    {"spec/group", "7", "spec.group", "FieldValueTypeInvalid",
     "Invalid value: \"integer\": must be of type string"},
    {"spec/names", NULL, "spec.names", "FieldValueRequired", "Required value"},
    {"spec/names/plural", NULL, "spec.names.plural", "FieldValueRequired", "Required value"},
    {"spec/names/plural", "\"Widgets\"", "spec.names.plural", "FieldValueInvalid",
     "Invalid value: \"Widgets\": a DNS-1035 label must consist of lower case alphanumeric "
     "characters or '-', start with an alphabetic character, and end with an alphanumeric "
     "character"},
    {"spec/names/kind", NULL, "spec.names.kind", "FieldValueRequired", "Required value"},
    {"spec/names/kind", "\"Wid_get\"", "spec.names.kind", "FieldValueInvalid",
     "Invalid value: \"Wid_get\": a DNS-1035 label must consist of lower case alphanumeric "
     "characters or '-', start with an alphabetic character, and end with an alphanumeric "
     "character"},
    {"spec/names/listKind", "\"Widget\"", "spec.names.listKind", "FieldValueInvalid",
     "Invalid value: \"Widget\": kind and listKind may not be the same"},
    {"spec/names/shortNames", "[\"wd\",\"w-\"]", "spec.names.shortNames[1]", "FieldValueInvalid",
     "Invalid value: \"w-\": a DNS-1035 label must consist of lower case alphanumeric "
     "characters or '-', start with an alphabetic character, and end with an alphanumeric "
     "character"},
    {"spec/names/categories", "[3]", "spec.names.categories[0]", "FieldValueTypeInvalid",
     "Invalid value: \"integer\": must be of type string"},
    {"spec/scope", NULL, "spec.scope", "FieldValueRequired", "Required value"},
    {"spec/scope", "\"Global\"", "spec.scope", "FieldValueNotSupported",
     "Unsupported value: \"Global\": supported values: \"Cluster\", \"Namespaced\""},
    {"spec/versions", "[]", "spec.versions", "FieldValueRequired",
     "Required value: must have at least one version"},
    {"spec/versions/0/storage", "false", "spec.versions", "FieldValueInvalid",
     "Invalid value: 0: must have exactly one version marked as storage version"},
    {"spec/versions/0/served", NULL, "spec.versions[0].served", "FieldValueRequired",
     "Required value"},
    {"spec/versions/0/name", "\"V1\"", "spec.versions[0].name", "FieldValueInvalid",
     "Invalid value: \"V1\": a DNS-1035 label must consist of lower case alphanumeric "
     "characters or '-', start with an alphabetic character, and end with an alphanumeric "
     "character"},
    {"spec/versions/0/schema", NULL, "spec.versions[0].schema", "FieldValueRequired",
     "Required value"},
    {"spec/versions/0/schema/openAPIV3Schema", NULL, SCHEMA_PATH, "FieldValueRequired",
     "Required value"},
    {"spec/versions/0/schema/openAPIV3Schema", "{\"type\":\"string\"}", SCHEMA_PATH ".type",
     "FieldValueNotSupported", "Unsupported value: \"string\": supported values: \"object\""},
    {"spec/versions/0/schema/openAPIV3Schema/type", "\"map\"", SCHEMA_PATH ".type",
     "FieldValueNotSupported",
     "Unsupported value: \"map\": supported values: \"array\", \"boolean\", \"integer\", "
     "\"number\", \"object\", \"string\""},
    {"spec/versions/0/schema/openAPIV3Schema/properties", "{\"spec\":{\"properties\":{}}}",
     SCHEMA_PATH ".properties[spec].type", "FieldValueRequired",
     "Required value: must not be empty for specified fields"},
    {"spec/versions/0/schema/openAPIV3Schema/properties", "{\"spec\":[]}",
     SCHEMA_PATH ".properties[spec]", "FieldValueTypeInvalid",
     "Invalid value: \"array\": must be of type object"},
    {"spec/versions/0/schema/openAPIV3Schema/properties",
     "{\"name\":{\"type\":\"string\",\"pattern\":\"a(b\"}}",
     SCHEMA_PATH ".properties[name].pattern", "FieldValueInvalid",
     "Invalid value: \"a(b\": must be a valid regular expression: missing closing parenthesis "
     "at offset 3"},
    {"spec/versions/0/schema/openAPIV3Schema/properties",
     "{\"n\":{\"type\":\"integer\",\"multipleOf\":2}}", SCHEMA_PATH ".properties[n].multipleOf",
     "FieldValueForbidden",
     "Forbidden: keyword \"multipleOf\" is not supported by Bindery's schema validator"},
    {"spec/versions/0/schema/openAPIV3Schema/properties",
     "{\"n\":{\"type\":\"string\",\"anyOf\":[{\"type\":\"string\"}]}}",
     SCHEMA_PATH ".properties[n].anyOf", "FieldValueForbidden",
     "Forbidden: only supported together with x-kubernetes-int-or-string"},
    {"spec/versions/0/schema/openAPIV3Schema/properties", "{\"l\":{\"type\":\"array\"}}",
     SCHEMA_PATH ".properties[l].items", "FieldValueRequired",
     "Required value: must be specified for arrays"},
    {"spec/versions/0/schema/openAPIV3Schema/properties",
     "{\"l\":{\"type\":\"string\",\"items\":{\"type\":\"string\"}}}",
     SCHEMA_PATH ".properties[l].items", "FieldValueForbidden",
     "Forbidden: only allowed for type array"},
    {"spec/versions/0/schema/openAPIV3Schema/properties",
     "{\"m\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}},"
     "\"additionalProperties\":{\"type\":\"string\"}}}",
     SCHEMA_PATH ".properties[m].additionalProperties", "FieldValueForbidden",
     "Forbidden: additionalProperties and properties are mutually exclusive"},
    {"spec/versions/0/schema/openAPIV3Schema/properties",
     "{\"s\":{\"type\":\"string\",\"x-kubernetes-int-or-string\":true}}",
     SCHEMA_PATH ".properties[s].type", "FieldValueForbidden",
     "Forbidden: must be empty if x-kubernetes-int-or-string is true"},
    {"spec/versions/0/schema/openAPIV3Schema/properties",
     "{\"t\":{\"type\":\"string\",\"x-kubernetes-embedded-resource\":true}}",
     SCHEMA_PATH ".properties[t].x-kubernetes-embedded-resource", "FieldValueForbidden",
     "Forbidden: only allowed for type object"},
    {"spec/versions/0/schema/openAPIV3Schema/properties",
     "{\"s\":{\"type\":\"string\",\"minLength\":-1}}", SCHEMA_PATH ".properties[s].minLength",
     "FieldValueInvalid", "Invalid value: -1: must be a non-negative integer"},
    {"spec/versions/0/schema/openAPIV3Schema/properties",
     "{\"s\":{\"type\":\"integer\",\"maximum\":\"ten\"}}", SCHEMA_PATH ".properties[s].maximum",
     "FieldValueTypeInvalid", "Invalid value: \"string\": must be of type number"},
    {"spec/versions/0/schema/openAPIV3Schema/properties",
     "{\"s\":{\"type\":\"string\",\"nullable\":\"yes\"}}", SCHEMA_PATH ".properties[s].nullable",
     "FieldValueTypeInvalid", "Invalid value: \"string\": must be of type boolean"},
    {"spec/versions/0/schema/openAPIV3Schema/properties",
     "{\"s\":{\"type\":\"string\",\"enum\":[]}}", SCHEMA_PATH ".properties[s].enum",
     "FieldValueInvalid", "Invalid value: \"array\": must be a non-empty array"},
    {"spec/versions/0/schema/openAPIV3Schema/properties",
     "{\"r\":{\"type\":\"integer\",\"default\":\"one\"}}", SCHEMA_PATH ".properties[r].default",
     "FieldValueTypeInvalid",
     "Invalid value: \"string\": " SCHEMA_PATH
     ".properties[r].default in body must be of type integer: \"string\""},
    {"spec/versions/0/schema/openAPIV3Schema/properties",
     "{\"r\":{\"type\":\"integer\",\"maximum\":5,\"default\":6}}",
     SCHEMA_PATH ".properties[r].default", "FieldValueInvalid",
     "Invalid value: 6: " SCHEMA_PATH
     ".properties[r].default in body should be less than or equal to 5"},
    {"spec/versions/0/schema/openAPIV3Schema/properties",
     "{\"o\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}},"
     "\"default\":{\"a\":\"x\",\"bogus\":1}}}",
     SCHEMA_PATH ".properties[o].default.bogus", "FieldValueForbidden",
     "unknown field \"" SCHEMA_PATH ".properties[o].default.bogus\""},
    {"spec/versions/0/additionalPrinterColumns",
     "[{\"name\":\"X\",\"type\":\"text\",\"jsonPath\":\".spec.x\"}]",
     "spec.versions[0].additionalPrinterColumns[0].type", "FieldValueNotSupported",
     "Unsupported value: \"text\": supported values: \"boolean\", \"date\", \"integer\", "
     "\"number\", \"string\""},
    {"spec/versions/0/additionalPrinterColumns", "[{\"name\":\"X\",\"type\":\"string\"}]",
     "spec.versions[0].additionalPrinterColumns[0].jsonPath", "FieldValueRequired",
     "Required value"},
    {"spec/versions/0/additionalPrinterColumns",
     "[{\"name\":\"X\",\"type\":\"string\",\"jsonPath\":\"spec.x\"}]",
     "spec.versions[0].additionalPrinterColumns[0].jsonPath", "FieldValueInvalid",
     "Invalid value: \"spec.x\": must be a simple JSON path starting with '.'"},
    {"spec/versions/0/additionalPrinterColumns",
     "[{\"name\":\"X\",\"type\":\"string\",\"jsonPath\":\".a\",\"priority\":-1}]",
     "spec.versions[0].additionalPrinterColumns[0].priority", "FieldValueInvalid",
     "Invalid value: -1: must be a non-negative int32"},
    {"spec/versions/0/selectableFields", "[{\"jsonPath\":\".spec.nothing\"}]",
     "spec.versions[0].selectableFields[0].jsonPath", "FieldValueInvalid",
     "Invalid value: \".spec.nothing\": must point to a field of type string, boolean or integer "
     "declared in the schema"},
    {"spec/versions/0/selectableFields", "[{}]", "spec.versions[0].selectableFields[0].jsonPath",
     "FieldValueRequired", "Required value"},
    {"spec/versions/0/selectableFields",
     "[{\"jsonPath\":\".a\"},{\"jsonPath\":\".a\"},{\"jsonPath\":\".a\"},{\"jsonPath\":\".a\"},"
     "{\"jsonPath\":\".a\"},{\"jsonPath\":\".a\"},{\"jsonPath\":\".a\"},{\"jsonPath\":\".a\"},"
     "{\"jsonPath\":\".a\"}]",
     "spec.versions[0].selectableFields", "FieldValueTooMany",
     "Too many: 9: must have at most 8 items"},
};

static void test_compile_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(crd_cases) / sizeof(crd_cases[0]); i++) {
        const crd_case *tc = &crd_cases[i];
        json_object *o = crd_with_schema("{\"type\":\"object\"}");
        bdy_crd *crd = (bdy_crd *)&o; /* must be reset to NULL on failure */
        bdy_errbuf eb;

        set(o, tc->path, tc->value);
        assert_int_equal(bdy_crd_compile(o, &crd, &eb), BDY_EINVALID_OBJECT);
        assert_null(crd);
        if (!has_cause(&eb, tc->field, tc->reason, tc->message))
            fail_msg("case %zu (%s)", i, tc->path);
        json_object_put(o);
    }
}

static void test_compile_duplicate_and_selectable(void **state)
{
    (void)state;
    json_object *o = crd_with_schema("{\"type\":\"object\",\"properties\":{"
                                     "\"spec\":{\"type\":\"object\",\"properties\":{"
                                     "\"pool\":{\"type\":\"string\"},"
                                     "\"sub\":{\"type\":\"object\"}}}}}");
    bdy_crd *crd = NULL;
    bdy_errbuf eb;

    json_object_array_add(at(o, "spec/versions"),
                          parse("{\"name\":\"v1\",\"served\":true,\"storage\":false,"
                                "\"schema\":{\"openAPIV3Schema\":{\"type\":\"object\"}}}"));
    set(o, "spec/versions/0/selectableFields",
        "[{\"jsonPath\":\".spec.pool\"},{\"jsonPath\":\".spec.pool\"},"
        "{\"jsonPath\":\".spec.sub\"}]");
    assert_int_equal(bdy_crd_compile(o, &crd, &eb), BDY_EINVALID_OBJECT);
    assert_true(
        has_cause(&eb, "spec.versions[1].name", "FieldValueDuplicate", "Duplicate value: \"v1\""));
    assert_true(has_cause(&eb, "spec.versions[0].selectableFields[1].jsonPath",
                          "FieldValueDuplicate", "Duplicate value: \".spec.pool\""));
    assert_true(has_cause(&eb, "spec.versions[0].selectableFields[2].jsonPath", "FieldValueInvalid",
                          "Invalid value: \".spec.sub\": must point to a field of type string, "
                          "boolean or integer declared in the schema"));
    json_object_put(o);
}

/* Several problems are all reported, and summarized like the API server. */
static void test_compile_collects_all(void **state)
{
    (void)state;
    json_object *o = crd_with_schema("{\"type\":\"object\"}");
    bdy_crd *crd = NULL;
    bdy_errbuf eb;

    set(o, "spec/scope", "\"Global\"");
    set(o, "spec/names/plural", NULL);
    assert_int_equal(bdy_crd_compile(o, &crd, &eb), BDY_EINVALID_OBJECT);
    assert_int_equal(eb.ncauses, 2);
    assert_string_equal(eb.message,
                        "CustomResourceDefinition.apiextensions.k8s.io \"widgets.example.com\" is "
                        "invalid: [spec.names.plural: Required value, spec.scope: Unsupported "
                        "value: \"Global\": supported values: \"Cluster\", \"Namespaced\"]");
    json_object_put(o);

    o = parse("[1]");
    assert_int_equal(bdy_crd_compile(o, &crd, &eb), BDY_EINVAL);
    assert_null(crd);
    json_object_put(o);
}

/* Schemas nested deeper than the cap are refused rather than recursed. */
static void test_compile_depth_cap(void **state)
{
    (void)state;
    char *schema = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&schema, &len);
    json_object *o;
    bdy_crd *crd = NULL;
    bdy_errbuf eb;

    assert_non_null(f);
    fputs("{\"type\":\"object\",\"properties\":{\"spec\":", f);
    for (int i = 0; i < 70; i++)
        fputs("{\"type\":\"object\",\"properties\":{\"a\":", f);
    fputs("{\"type\":\"string\"}", f);
    for (int i = 0; i < 70; i++)
        fputs("}}", f);
    fputs("}}", f);
    fclose(f);
    o = crd_with_schema(schema);
    free(schema);
    assert_int_equal(bdy_crd_compile(o, &crd, &eb), BDY_EINVALID_OBJECT);
    assert_int_equal(eb.ncauses, 1);
    assert_string_equal(eb.causes[0].reason, "FieldValueForbidden");
    assert_string_equal(eb.causes[0].message, "Forbidden: must not be nested more than 64 levels "
                                              "deep");
    json_object_put(o);
}

/* ---- validation ---- */

static void test_valid_object_and_defaults(void **state)
{
    (void)state;
    bdy_crd *crd = widget_crd();
    json_object *obj = NULL;
    bdy_errbuf eb;
    int rc = validate_spec(
        crd,
        "{\"pool\":\"eu-1\",\"ratio\":0.5,\"weight\":3,\"mode\":\"b\","
        "\"enabled\":true,\"port\":7777,\"i32\":-2147483648,"
        "\"i64\":9223372036854775807,\"when\":\"2026-01-02T03:04:05.5+01:00\","
        "\"note\":null,\"name\":null,\"title\":\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\","
        "\"ports\":[{\"name\":\"game\",\"port\":7777}],"
        "\"labels\":{\"a\":\"1\"},\"opts\":{\"a\":\"x\"},\"level\":null,"
        "\"matrix\":[[1,2],[3.0]]}",
        BDY_UNKNOWN_REJECT, &obj, &eb);

    if (rc != 0)
        dump(&eb);
    assert_int_equal(rc, 0);
    assert_int_equal(json_object_get_int(at(obj, "spec/replicas")), 1);
    assert_string_equal(json_object_get_string(at(obj, "spec/ports/0/protocol")), "UDP");
    /* nested: defaulted to {}, then its own default filled in. */
    assert_int_equal(json_object_get_int(at(obj, "spec/nested/level")), 3);
    /* null where null is not allowed takes the default; nullable null stays. */
    assert_string_equal(json_object_get_string(at(obj, "spec/name")), "x");
    assert_true(json_object_object_get_ex(at(obj, "spec"), "note", NULL));
    assert_null(at(obj, "spec/note"));
    /* A null default is none (Kubernetes): the absent field stays absent. */
    assert_false(json_object_object_get_ex(at(obj, "spec"), "maybe", NULL));
    json_object_put(obj);

    /* A null that is neither allowed nor defaulted is dropped, as the
     * Kubernetes API server drops it, in properties and maps alike. */
    assert_int_equal(validate_spec(crd,
                                   "{\"pool\":\"eu\",\"enabled\":null,\"labels\":{\"a\":null,"
                                   "\"b\":\"2\"},\"ports\":[{\"name\":\"g\",\"port\":null}]}",
                                   BDY_UNKNOWN_REJECT, &obj, &eb),
                     0);
    assert_false(json_object_object_get_ex(at(obj, "spec"), "enabled", NULL));
    assert_false(json_object_object_get_ex(at(obj, "spec/labels"), "a", NULL));
    assert_string_equal(json_object_get_string(at(obj, "spec/labels/b")), "2");
    assert_false(json_object_object_get_ex(at(obj, "spec/ports/0"), "port", NULL));
    json_object_put(obj);

    /* An explicit value is never replaced by the default. */
    assert_int_equal(
        validate_spec(crd, "{\"pool\":\"eu\",\"replicas\":0}", BDY_UNKNOWN_PRUNE, &obj, &eb), 0);
    assert_int_equal(json_object_get_int(at(obj, "spec/replicas")), 0);
    json_object_put(obj);
    bdy_crd_free(crd);
}

static void test_default_is_deep_copy(void **state)
{
    (void)state;
    json_object *o = crd_with_schema("{\"type\":\"object\",\"properties\":{"
                                     "\"spec\":{\"type\":\"object\",\"properties\":{"
                                     "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},"
                                     "\"default\":[\"a\"]}}}}}");
    bdy_crd *crd = compile_ok(o);
    json_object *first = NULL;
    json_object *second = NULL;
    bdy_errbuf eb;

    assert_int_equal(validate_spec(crd, "{}", BDY_UNKNOWN_PRUNE, &first, &eb), 0);
    json_object_array_add(at(first, "spec/tags"), json_object_new_string("changed"));
    assert_int_equal(validate_spec(crd, "{}", BDY_UNKNOWN_PRUNE, &second, &eb), 0);
    assert_int_equal(json_object_array_length(at(second, "spec/tags")), 1);
    json_object_put(first);
    json_object_put(second);
    bdy_crd_free(crd);
    json_object_put(o);
}

static void test_keywords_reject(void **state)
{
    (void)state;
    bdy_crd *crd = widget_crd();

    expect_cause(crd, "{}", "spec.pool", "FieldValueRequired", "Required value");
    expect_cause(crd, "{\"pool\":\"eu\",\"replicas\":\"string\"}", "spec.replicas",
                 "FieldValueTypeInvalid",
                 "Invalid value: \"string\": spec.replicas in body must be of type integer: "
                 "\"string\"");
    expect_cause(crd, "{\"pool\":\"eu\",\"replicas\":2.5}", "spec.replicas",
                 "FieldValueTypeInvalid",
                 "Invalid value: \"number\": spec.replicas in body must be of type integer: "
                 "\"number\"");
    expect_cause(crd, "{\"pool\":\"eu\",\"weight\":\"1\"}", "spec.weight", "FieldValueTypeInvalid",
                 "Invalid value: \"string\": spec.weight in body must be of type number: "
                 "\"string\"");
    expect_cause(crd, "{\"pool\":\"eu\",\"enabled\":\"true\"}", "spec.enabled",
                 "FieldValueTypeInvalid",
                 "Invalid value: \"string\": spec.enabled in body must be of type boolean: "
                 "\"string\"");
    /* A null item of an array is not dropped, as a member's is. */
    expect_cause(crd, "{\"pool\":\"eu\",\"ports\":[null]}", "spec.ports[0]",
                 "FieldValueTypeInvalid",
                 "Invalid value: \"null\": spec.ports[0] in body must be of type object: \"null\"");
    expect_cause(crd, "{\"pool\":\"eu\",\"labels\":[]}", "spec.labels", "FieldValueTypeInvalid",
                 "Invalid value: \"array\": spec.labels in body must be of type object: \"array\"");
    expect_cause(crd, "{\"pool\":\"eu\",\"mode\":\"c\"}", "spec.mode", "FieldValueNotSupported",
                 "Unsupported value: \"c\": supported values: \"a\", \"b\"");
    expect_cause(crd, "{\"pool\":\"eu\",\"level\":2}", "spec.level", "FieldValueNotSupported",
                 "Unsupported value: 2: supported values: \"1\", \"two\", \"null\"");
    expect_cause(crd, "{\"pool\":\"eu\",\"port\":70000}", "spec.port", "FieldValueInvalid",
                 "Invalid value: 70000: spec.port in body should be less than or equal to 65535");
    expect_cause(crd, "{\"pool\":\"eu\",\"replicas\":-1}", "spec.replicas", "FieldValueInvalid",
                 "Invalid value: -1: spec.replicas in body should be greater than or equal to 0");
    expect_cause(crd, "{\"pool\":\"eu\",\"ratio\":0}", "spec.ratio", "FieldValueInvalid",
                 "Invalid value: 0: spec.ratio in body should be greater than 0");
    expect_cause(crd, "{\"pool\":\"eu\",\"ratio\":1.0}", "spec.ratio", "FieldValueInvalid",
                 "Invalid value: 1.0: spec.ratio in body should be less than 1");
    expect_cause(crd, "{\"pool\":\"Eu\"}", "spec.pool", "FieldValueInvalid",
                 "Invalid value: \"Eu\": spec.pool in body should match '^[a-z][a-z0-9-]*$'");
    expect_cause(crd, "{\"pool\":\"e\"}", "spec.pool", "FieldValueInvalid",
                 "Invalid value: \"e\": spec.pool in body should be at least 2 chars long");
    expect_cause(crd, "{\"pool\":\"abcdefghi\"}", "spec.pool", "FieldValueTooLong",
                 "Too long: may not be longer than 8");
    expect_cause(crd, "{\"pool\":\"eu\",\"title\":\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"}",
                 "spec.title", "FieldValueTooLong", "Too long: may not be longer than 5");
    expect_cause(crd, "{\"pool\":\"eu\",\"ports\":[]}", "spec.ports", "FieldValueInvalid",
                 "Invalid value: 0: spec.ports in body should have at least 1 items");
    expect_cause(crd,
                 "{\"pool\":\"eu\",\"ports\":[{\"name\":\"a\"},{\"name\":\"b\"},{\"name\":\"c\"},"
                 "{\"name\":\"d\"}]}",
                 "spec.ports", "FieldValueTooMany", "Too many: 4: must have at most 3 items");
    expect_cause(crd, "{\"pool\":\"eu\",\"opts\":{}}", "spec.opts", "FieldValueInvalid",
                 "Invalid value: 0: spec.opts in body should have at least 1 properties");
    expect_cause(crd, "{\"pool\":\"eu\",\"labels\":{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\"}}",
                 "spec.labels", "FieldValueTooMany", "Too many: 3: must have at most 2 items");
    expect_cause(crd, "{\"pool\":\"eu\",\"labels\":{\"a\":1}}", "spec.labels.a",
                 "FieldValueTypeInvalid",
                 "Invalid value: \"integer\": spec.labels.a in body must be of type string: "
                 "\"integer\"");
    expect_cause(crd, "{\"pool\":\"eu\",\"i32\":2147483648}", "spec.i32", "FieldValueTypeInvalid",
                 "Invalid value: 2147483648: spec.i32 in body must be of type int32");
    expect_cause(crd, "{\"pool\":\"eu\",\"i64\":18446744073709551615}", "spec.i64",
                 "FieldValueTypeInvalid",
                 "Invalid value: 18446744073709551615: spec.i64 in body must be of type int64");
    expect_cause(crd, "{\"pool\":\"eu\",\"when\":\"yesterday\"}", "spec.when",
                 "FieldValueTypeInvalid",
                 "Invalid value: \"yesterday\": spec.when in body must be of type date-time: "
                 "\"yesterday\"");
    expect_cause(crd, "{\"pool\":\"eu\",\"size\":true}", "spec.size", "FieldValueTypeInvalid",
                 "Invalid value: \"boolean\": spec.size in body must be of type integer,string: "
                 "\"boolean\"");
    expect_cause(crd,
                 "{\"pool\":\"eu\",\"ports\":[{\"name\":\"a\"},{\"name\":\"b\",\"port\":70000}]}",
                 "spec.ports[1].port", "FieldValueInvalid",
                 "Invalid value: 70000: spec.ports[1].port in body should be less than or equal "
                 "to 65535");
    expect_cause(crd, "{\"pool\":\"eu\",\"ports\":[{\"port\":1}]}", "spec.ports[0].name",
                 "FieldValueRequired", "Required value");
    expect_cause(crd, "{\"pool\":\"eu\",\"ports\":[{\"name\":\"a\",\"protocol\":\"SCTP\"}]}",
                 "spec.ports[0].protocol", "FieldValueNotSupported",
                 "Unsupported value: \"SCTP\": supported values: \"TCP\", \"UDP\"");
    expect_cause(crd, "{\"pool\":\"eu\",\"matrix\":[[1],[2,\"x\"]]}", "spec.matrix[1][1]",
                 "FieldValueTypeInvalid",
                 "Invalid value: \"string\": spec.matrix[1][1] in body must be of type integer: "
                 "\"string\"");
    expect_cause(crd, "{\"pool\":\"eu\",\"extra\":{\"known\":\"s\"}}", "spec.extra.known",
                 "FieldValueTypeInvalid",
                 "Invalid value: \"string\": spec.extra.known in body must be of type integer: "
                 "\"string\"");
    expect_cause(crd, "{\"pool\":\"eu\",\"template\":{}}", "spec.template.apiVersion",
                 "FieldValueRequired", "Required value: must not be empty");
    expect_cause(crd, "{\"pool\":\"eu\",\"template\":{\"apiVersion\":\"v1\",\"kind\":\"\"}}",
                 "spec.template.kind", "FieldValueRequired", "Required value: must not be empty");
    expect_cause(crd,
                 "{\"pool\":\"eu\",\"template\":{\"apiVersion\":1,\"kind\":\"Pod\","
                 "\"metadata\":[]}}",
                 "spec.template.metadata", "FieldValueTypeInvalid",
                 "Invalid value: \"array\": spec.template.metadata in body must be of type "
                 "object: \"array\"");
    bdy_crd_free(crd);
}

static void test_keywords_accept(void **state)
{
    (void)state;
    bdy_crd *crd = widget_crd();

    expect_valid(crd, "{\"pool\":\"eu\",\"replicas\":2.0}");
    expect_valid(crd, "{\"pool\":\"eu\",\"weight\":-3}");
    expect_valid(crd, "{\"pool\":\"eu\",\"level\":1}");
    expect_valid(crd, "{\"pool\":\"eu\",\"level\":\"two\"}");
    expect_valid(crd, "{\"pool\":\"eu\",\"level\":1.0}"); /* enum values compare as numbers */
    expect_valid(crd, "{\"pool\":\"eu\",\"size\":3}");
    expect_valid(crd, "{\"pool\":\"eu\",\"size\":\"50%\"}");
    expect_valid(crd, "{\"pool\":\"eu\",\"ratio\":0.999}");
    expect_valid(crd, "{\"pool\":\"eu\",\"port\":65535,\"replicas\":10}");
    expect_valid(crd, "{\"pool\":\"abcdefgh\",\"i32\":2147483647,\"i64\":-9223372036854775808}");
    expect_valid(crd, "{\"pool\":\"eu\",\"when\":\"2026-11-27T20:15:02Z\"}");
    expect_valid(crd, "{\"pool\":\"eu\",\"labels\":{\"a\":\"1\",\"b\":\"2\"}}");
    expect_valid(crd, "{\"pool\":\"eu\",\"template\":{\"apiVersion\":\"v1\",\"kind\":\"Pod\","
                      "\"metadata\":{\"name\":\"p\"},\"spec\":{\"containers\":[]}}}");
    bdy_crd_free(crd);
}

static void test_pattern_rejects_embedded_nul(void **state)
{
    (void)state;
    bdy_crd *crd = widget_crd();
    bdy_errbuf eb;

    assert_int_equal(validate_spec(crd, "{\"pool\":\"eu\\u0000X\"}", BDY_UNKNOWN_PRUNE, NULL, &eb),
                     BDY_EINVALID_OBJECT);
    assert_string_equal(eb.causes[0].field, "spec.pool");
    bdy_crd_free(crd);
}

/* Patterns are read in the syntax Kubernetes reads them in (Go's RE2):
 * \d is a digit, not the letter d; (?:...) groups; $ ends the string. A
 * pattern that backtracks without end is cut short, never hangs. */
static void test_pattern_syntax_as_in_kubernetes(void **state)
{
    (void)state;
    json_object *o = crd_with_schema(
        "{\"type\":\"object\",\"properties\":{\"spec\":{\"type\":\"object\",\"properties\":{"
        "\"code\":{\"type\":\"string\",\"pattern\":\"^\\\\d+(?:-\\\\w+)?$\"},"
        "\"slow\":{\"type\":\"string\",\"pattern\":\"^(a+)+$\"},"
        "\"list\":{\"type\":\"string\",\"pattern\":\"^(a|b)*$\"}}}}}");
    bdy_crd *crd = compile_ok(o);
    json_object_put(o);
    bdy_errbuf eb;
    assert_int_equal(validate_spec(crd, "{\"code\":\"123\"}", BDY_UNKNOWN_PRUNE, NULL, &eb), 0);
    assert_int_equal(validate_spec(crd, "{\"code\":\"123-ab_9\"}", BDY_UNKNOWN_PRUNE, NULL, &eb),
                     0);
    assert_int_equal(validate_spec(crd, "{\"code\":\"ddd\"}", BDY_UNKNOWN_PRUNE, NULL, &eb),
                     BDY_EINVALID_OBJECT);
    assert_int_equal(validate_spec(crd, "{\"code\":\"123\\n\"}", BDY_UNKNOWN_PRUNE, NULL, &eb),
                     BDY_EINVALID_OBJECT);
    char spec[200];
    snprintf(spec, sizeof(spec), "{\"slow\":\"%s\"}", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab");
    assert_int_equal(validate_spec(crd, spec, BDY_UNKNOWN_PRUNE, NULL, &eb), BDY_EINVALID_OBJECT);
    assert_string_equal(eb.causes[0].field, "spec.slow");
    /* A long value a repeated group matches still matches (RE2 takes it). */
    char *big = malloc(9000);
    assert_non_null(big);
    int at = snprintf(big, 9000, "{\"list\":\"");
    memset(big + at, 'a', 8000);
    snprintf(big + at + 8000, 9000 - (size_t)at - 8000, "\"}");
    assert_int_equal(validate_spec(crd, big, BDY_UNKNOWN_PRUNE, NULL, &eb), 0);
    free(big);
    bdy_crd_free(crd);
}

static void test_unknown_fields_prune(void **state)
{
    (void)state;
    bdy_crd *crd = widget_crd();
    json_object *obj = NULL;
    bdy_errbuf eb;
    const char *spec = "{\"pool\":\"eu\",\"x\":1,\"ports\":[{\"name\":\"a\"},"
                       "{\"name\":\"b\",\"bogus\":{\"deep\":1}}],\"closed\":{\"k\":1},"
                       "\"anything\":{\"free\":{\"form\":[1]}},"
                       "\"extra\":{\"known\":1,\"other\":{\"kept\":true}},"
                       "\"template\":{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"spec\":{\"z\":1}}}";
    json_object *meta;

    assert_int_equal(validate_spec(crd, spec, BDY_UNKNOWN_PRUNE, &obj, &eb), 0);
    assert_false(json_object_object_get_ex(at(obj, "spec"), "x", NULL));
    assert_false(json_object_object_get_ex(at(obj, "spec/ports/1"), "bogus", NULL));
    assert_int_equal(json_object_object_length(at(obj, "spec/closed")), 0);
    assert_int_equal(json_object_get_int(at(obj, "spec/anything/free/form/0")), 1);
    assert_true(json_object_get_boolean(at(obj, "spec/extra/other/kept")));
    assert_int_equal(json_object_get_int(at(obj, "spec/template/spec/z")), 1);
    json_object_put(obj);

    /* Top level: apiVersion, kind and metadata (even unknown metadata
     * fields) are the caller's and stay; other unknown fields go. */
    obj = parse("{\"apiVersion\":\"example.com/v1\",\"kind\":\"Widget\","
                "\"metadata\":{\"name\":\"w\",\"whatever\":1},\"spec\":{\"pool\":\"eu\"},"
                "\"junk\":true,\"status\":{\"phase\":\"Ready\",\"gone\":1}}");
    assert_int_equal(bdy_schema_validate(crd->versions[0].schema, obj, BDY_UNKNOWN_PRUNE, &eb), 0);
    assert_false(json_object_object_get_ex(obj, "junk", NULL));
    assert_false(json_object_object_get_ex(at(obj, "status"), "gone", NULL));
    assert_string_equal(json_object_get_string(at(obj, "status/phase")), "Ready");
    assert_string_equal(json_object_get_string(at(obj, "apiVersion")), "example.com/v1");
    assert_string_equal(json_object_get_string(at(obj, "kind")), "Widget");
    assert_true(json_object_object_get_ex(obj, "metadata", &meta));
    assert_int_equal(json_object_get_int(at(meta, "whatever")), 1);
    assert_int_equal(bdy_schema_validate(crd->versions[0].schema, obj, BDY_UNKNOWN_REJECT, &eb), 0);
    json_object_put(obj);
    bdy_crd_free(crd);
}

static void test_unknown_fields_reject(void **state)
{
    (void)state;
    bdy_crd *crd = widget_crd();
    json_object *obj = NULL;
    bdy_errbuf eb;

    assert_int_equal(validate_spec(crd,
                                   "{\"pool\":\"eu\",\"x\":1,\"ports\":[{\"name\":\"a\"},"
                                   "{\"name\":\"b\",\"bogus\":2}],\"closed\":{\"k\":1}}",
                                   BDY_UNKNOWN_REJECT, &obj, &eb),
                     BDY_EINVALID_OBJECT);
    assert_int_equal(eb.ncauses, 3);
    assert_true(has_cause(&eb, "spec.x", "FieldValueForbidden", "unknown field \"spec.x\""));
    assert_true(has_cause(&eb, "spec.ports[1].bogus", "FieldValueForbidden",
                          "unknown field \"spec.ports[1].bogus\""));
    assert_true(
        has_cause(&eb, "spec.closed.k", "FieldValueForbidden", "unknown field \"spec.closed.k\""));
    /* Reject mode reports but does not change the object. */
    assert_int_equal(json_object_get_int(at(obj, "spec/x")), 1);
    json_object_put(obj);

    obj = parse("{\"apiVersion\":\"example.com/v1\",\"kind\":\"Widget\",\"metadata\":{},"
                "\"spec\":{\"pool\":\"eu\"},\"junk\":true}");
    assert_int_equal(bdy_schema_validate(crd->versions[0].schema, obj, BDY_UNKNOWN_REJECT, &eb),
                     BDY_EINVALID_OBJECT);
    assert_true(has_cause(&eb, "junk", "FieldValueForbidden", "unknown field \"junk\""));
    json_object_put(obj);
    bdy_crd_free(crd);
}

static void test_messages_and_cap(void **state)
{
    (void)state;
    bdy_crd *crd = widget_crd();
    bdy_errbuf eb;
    char spec[2048];
    size_t len;

    assert_int_equal(validate_spec(crd, "{}", BDY_UNKNOWN_PRUNE, NULL, &eb), BDY_EINVALID_OBJECT);
    assert_string_equal(eb.message, "Widget.example.com \"w1\" is invalid: spec.pool: Required "
                                    "value");

    assert_int_equal(validate_spec(crd, "{\"mode\":\"z\"}", BDY_UNKNOWN_PRUNE, NULL, &eb),
                     BDY_EINVALID_OBJECT);
    assert_int_equal(eb.ncauses, 2);
    assert_string_equal(eb.message, "Widget.example.com \"w1\" is invalid: [spec.mode: Unsupported "
                                    "value: \"z\": supported values: \"a\", \"b\", spec.pool: "
                                    "Required value]");

    /* More problems than an errbuf holds: the first ones are kept. */
    len = (size_t)snprintf(spec, sizeof(spec), "{\"pool\":\"eu\",\"matrix\":[");
    for (int i = 0; i < 40; i++)
        len += (size_t)snprintf(spec + len, sizeof(spec) - len, "%s[\"x\"]", i ? "," : "");
    snprintf(spec + len, sizeof(spec) - len, "]}");
    assert_int_equal(validate_spec(crd, spec, BDY_UNKNOWN_PRUNE, NULL, &eb), BDY_EINVALID_OBJECT);
    assert_int_equal(eb.ncauses, BDY_ERRBUF_MAX_CAUSES);
    assert_string_equal(eb.causes[15].field, "spec.matrix[15][0]");

    /* NULL errbuf: the result code still tells. */
    assert_int_equal(validate_spec(crd, "{}", BDY_UNKNOWN_PRUNE, NULL, NULL), BDY_EINVALID_OBJECT);
    bdy_crd_free(crd);
}

static void test_bad_input(void **state)
{
    (void)state;
    bdy_crd *crd = widget_crd();
    json_object *obj = parse("[1,2]");
    bdy_errbuf eb;

    assert_int_equal(bdy_schema_validate(crd->versions[0].schema, obj, BDY_UNKNOWN_PRUNE, &eb),
                     BDY_EINVAL);
    assert_int_equal(bdy_schema_validate(NULL, obj, BDY_UNKNOWN_PRUNE, &eb), BDY_EINVAL);
    json_object_put(obj);

    obj = parse("{\"metadata\":{\"name\":\"w\"},\"spec\":{\"pool\":\"eu\"}}");
    json_object_object_add(at(obj, "spec"), "weight", json_object_new_double(NAN));
    assert_int_equal(bdy_schema_validate(crd->versions[0].schema, obj, BDY_UNKNOWN_PRUNE, &eb),
                     BDY_EINVALID_OBJECT);
    assert_string_equal(eb.causes[0].field, "spec.weight");
    assert_string_equal(eb.causes[0].message,
                        "Invalid value: NaN: spec.weight in body must be a finite number");
    json_object_put(obj);

    obj = parse("{\"spec\":{\"pool\":\"eu\"},\"status\":{\"phase\":5}}");
    assert_int_equal(bdy_schema_validate(crd->versions[0].schema, obj, BDY_UNKNOWN_PRUNE, &eb),
                     BDY_EINVALID_OBJECT);
    assert_true(has_cause(&eb, "status.phase", "FieldValueTypeInvalid",
                          "Invalid value: \"integer\": status.phase in body must be of type "
                          "string: \"integer\""));
    assert_string_equal(eb.message, "Widget.example.com \"\" is invalid: status.phase: Invalid "
                                    "value: \"integer\": status.phase in body must be of type "
                                    "string: \"integer\"");
    json_object_put(obj);
    bdy_crd_free(crd);
}

/* Values kept below preserve-unknown-fields are not walked, so a deeply
 * nested value costs no recursion. */
static void test_deep_value_under_preserve(void **state)
{
    (void)state;
    bdy_crd *crd = widget_crd();
    json_object *obj = parse("{\"spec\":{\"pool\":\"eu\",\"extra\":{}}}");
    json_object *leaf = json_object_new_int(1);
    bdy_errbuf eb;

    for (int i = 0; i < 5000; i++) {
        json_object *arr = json_object_new_array();
        json_object_array_add(arr, leaf);
        leaf = arr;
    }
    json_object_object_add(at(obj, "spec/extra"), "deep", leaf);
    assert_int_equal(bdy_schema_validate(crd->versions[0].schema, obj, BDY_UNKNOWN_REJECT, &eb), 0);
    json_object_put(obj);
    bdy_crd_free(crd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compile_minimal),
        cmocka_unit_test(test_compile_full),
        cmocka_unit_test(test_compile_two_versions),
        cmocka_unit_test(test_compile_errors),
        cmocka_unit_test(test_compile_duplicate_and_selectable),
        cmocka_unit_test(test_compile_collects_all),
        cmocka_unit_test(test_compile_depth_cap),
        cmocka_unit_test(test_valid_object_and_defaults),
        cmocka_unit_test(test_default_is_deep_copy),
        cmocka_unit_test(test_keywords_reject),
        cmocka_unit_test(test_keywords_accept),
        cmocka_unit_test(test_pattern_rejects_embedded_nul),
        cmocka_unit_test(test_pattern_syntax_as_in_kubernetes),
        cmocka_unit_test(test_unknown_fields_prune),
        cmocka_unit_test(test_unknown_fields_reject),
        cmocka_unit_test(test_messages_and_cap),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_deep_value_under_preserve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
