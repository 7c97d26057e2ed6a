/* The four Bindery CRDs in crds/ compile with bdy_crd_compile() and their
 * schemas accept, default and reject objects the way the controllers and
 * operators rely on. */
#include "bindery/crd.h"
#include "bindery/yaml.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#ifndef BINDERY_SOURCE_DIR
#define BINDERY_SOURCE_DIR "."
#endif

static bdy_crd *load_crd(const char *file)
{
    char path[512];
    json_object *docs = NULL;
    bdy_crd *crd = NULL;
    bdy_errbuf eb;
    int rc;

    snprintf(path, sizeof(path), "%s/crds/%s", BINDERY_SOURCE_DIR, file);
    rc = bdy_yaml_file_to_json(path, &docs, &eb);
    if (rc != 0)
        fail_msg("%s: %s", path, eb.message);
    assert_int_equal(json_object_array_length(docs), 1);
    rc = bdy_crd_compile(json_object_array_get_idx(docs, 0), &crd, &eb);
    json_object_put(docs);
    if (rc != 0) {
        for (size_t i = 0; i < eb.ncauses; i++)
            fprintf(stderr, "  %s: %s\n", eb.causes[i].field, eb.causes[i].message);
        fail_msg("%s: %s", path, eb.message);
    }
    return crd;
}

/* Checks what every Bindery CRD shares; returns the v1alpha1 version. */
static const bdy_crd_version *check_common(const bdy_crd *crd, const char *kind, const char *plural,
                                           const char *short_name)
{
    const bdy_crd_version *v = bdy_crd_find_version(crd, "v1alpha1");
    char name[128];

    snprintf(name, sizeof(name), "%s.bindery.dev", plural);
    assert_string_equal(crd->name, name);
    assert_string_equal(crd->group, "bindery.dev");
    assert_string_equal(crd->kind, kind);
    assert_string_equal(crd->plural, plural);
    assert_true(crd->namespaced);
    assert_int_equal(crd->nshort_names, 1);
    assert_string_equal(crd->short_names[0], short_name);
    assert_int_equal(crd->ncategories, 1);
    assert_string_equal(crd->categories[0], "bindery");
    assert_int_equal(crd->nversions, 1);
    assert_non_null(v);
    assert_true(v->served);
    assert_true(v->storage);
    assert_true(v->status_subresource);
    assert_true(v->ncolumns >= 2);
    assert_string_equal(v->columns[v->ncolumns - 1].name, "Age");
    assert_string_equal(v->columns[v->ncolumns - 1].type, "date");
    assert_string_equal(v->columns[v->ncolumns - 1].json_path, ".metadata.creationTimestamp");
    return v;
}

static json_object *parse(const char *text)
{
    json_object *o = json_tokener_parse(text);
    assert_non_null(o);
    return o;
}

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

/* Validates text in strict mode; the object is returned for inspection. */
static int check(const bdy_crd *crd, const char *text, json_object **obj, bdy_errbuf *eb)
{
    *obj = parse(text);
    return bdy_schema_validate(crd->versions[0].schema, *obj, BDY_UNKNOWN_REJECT, eb);
}

static void expect_valid(const bdy_crd *crd, const char *text, json_object **obj)
{
    bdy_errbuf eb;

    if (check(crd, text, obj, &eb) != 0)
        fail_msg("%s", eb.message);
}

/* Expects text to be rejected with a cause on field. */
static void expect_invalid(const bdy_crd *crd, const char *text, const char *field,
                           const char *reason)
{
    json_object *obj = NULL;
    bdy_errbuf eb;
    bool found = false;

    assert_int_equal(check(crd, text, &obj, &eb), BDY_EINVALID_OBJECT);
    for (size_t i = 0; i < eb.ncauses; i++)
        found |= strcmp(eb.causes[i].field, field) == 0 && strcmp(eb.causes[i].reason, reason) == 0;
    if (!found)
        fail_msg("expected %s on %s, got: %s", reason, field, eb.message);
    json_object_put(obj);
}

static void test_modulemanifests(void **state)
{
    (void)state;
    bdy_crd *crd = load_crd("modulemanifests.yaml");
    json_object *obj = NULL;

    check_common(crd, "ModuleManifest", "modulemanifests", "mm");
    expect_valid(
        crd,
        "{\"apiVersion\":\"bindery.dev/v1alpha1\",\"kind\":\"ModuleManifest\","
        "\"metadata\":{\"name\":\"arena\"},\"spec\":{\"image\":\"ghcr.io/acme/arena:1.4\","
        "\"args\":[\"--port\",\"7777\"],\"env\":[{\"name\":\"MODE\",\"value\":\"ranked\"}],"
        "\"ports\":[{\"name\":\"game\",\"containerPort\":7777},"
        "{\"name\":\"query\",\"containerPort\":27015,\"protocol\":\"TCP\"}],"
        "\"resources\":{\"requests\":{\"cpu\":\"500m\",\"memory\":\"512Mi\"},"
        "\"limits\":{\"cpu\":2}},"
        "\"readinessProbe\":{\"tcpSocket\":{\"port\":\"game\"}},"
        "\"scheduling\":{\"priorityClassName\":\"high-priority-game\","
        "\"nodeSelector\":{\"pool\":\"game\"},"
        "\"affinity\":{\"nodeAffinity\":{\"anything\":[1]}},"
        "\"tolerations\":[{\"key\":\"dedicated\",\"effect\":\"NoSchedule\"}]},"
        "\"capabilities\":[\"matchmaker-secret\"],"
        "\"local\":{\"command\":\"./arena\",\"args\":[\"--port\",\"{port:game}\"],"
        "\"env\":[{\"name\":\"QUERY\",\"value\":\"{port:query}\"}],\"workingDir\":\"/srv\"}}}",
        &obj);
    assert_string_equal(json_object_get_string(at(obj, "spec/ports/0/protocol")), "UDP");
    assert_string_equal(json_object_get_string(at(obj, "spec/ports/1/protocol")), "TCP");
    assert_int_equal(json_object_get_int(at(obj, "spec/readinessProbe/periodSeconds")), 1);
    assert_int_equal(json_object_get_int(at(obj, "spec/readinessProbe/timeoutSeconds")), 1);
    assert_int_equal(json_object_get_int(at(obj, "spec/readinessProbe/failureThreshold")), 3);
    assert_int_equal(json_object_get_int(at(obj, "spec/startDeadlineSeconds")), 120);
    assert_int_equal(json_object_get_int(at(obj, "spec/terminationGracePeriodSeconds")), 10);
    assert_non_null(at(obj, "spec/scheduling/affinity/nodeAffinity/anything/0"));
    json_object_put(obj);

    expect_invalid(crd, "{\"spec\":{\"ports\":[{\"name\":\"Game_1\",\"containerPort\":1}]}}",
                   "spec.ports[0].name", "FieldValueInvalid");
    expect_invalid(crd, "{\"spec\":{\"ports\":[{\"name\":\"game\",\"containerPort\":70000}]}}",
                   "spec.ports[0].containerPort", "FieldValueInvalid");
    expect_invalid(crd, "{\"spec\":{\"ports\":[{\"name\":\"game\"}]}}",
                   "spec.ports[0].containerPort", "FieldValueRequired");
    expect_invalid(crd,
                   "{\"spec\":{\"ports\":[{\"name\":\"g\",\"containerPort\":1,"
                   "\"protocol\":\"SCTP\"}]}}",
                   "spec.ports[0].protocol", "FieldValueNotSupported");
    expect_invalid(crd, "{\"spec\":{\"resources\":{\"requests\":{\"cpu\":\"lots\"}}}}",
                   "spec.resources.requests.cpu", "FieldValueInvalid");
    expect_invalid(crd, "{\"spec\":{\"local\":{\"args\":[\"x\"]}}}", "spec.local.command",
                   "FieldValueRequired");
    expect_invalid(crd, "{\"spec\":{\"readinessProbe\":{\"periodSeconds\":0}}}",
                   "spec.readinessProbe.periodSeconds", "FieldValueInvalid");
    expect_invalid(crd, "{\"spec\":{\"imagePullPolicy\":\"Sometimes\"}}", "spec.imagePullPolicy",
                   "FieldValueNotSupported");
    expect_invalid(crd, "{\"metadata\":{}}", "spec", "FieldValueRequired");
    bdy_crd_free(crd);
}

static void test_booklets(void **state)
{
    (void)state;
    bdy_crd *crd = load_crd("booklets.yaml");
    json_object *obj = NULL;

    check_common(crd, "Booklet", "booklets", "bk");
    expect_valid(crd,
                 "{\"spec\":{\"modules\":[{\"name\":\"game\",\"manifest\":\"arena\"},"
                 "{\"name\":\"voice\",\"manifest\":\"voice\",\"count\":2}]}}",
                 &obj);
    assert_string_equal(json_object_get_string(at(obj, "spec/colocation")), "SameNode");
    assert_int_equal(json_object_get_int(at(obj, "spec/modules/0/count")), 1);
    assert_int_equal(json_object_get_int(at(obj, "spec/modules/1/count")), 2);
    json_object_put(obj);

    expect_invalid(crd, "{\"spec\":{\"modules\":[]}}", "spec.modules", "FieldValueInvalid");
    expect_invalid(crd, "{\"spec\":{\"modules\":[{\"name\":\"game\"}]}}",
                   "spec.modules[0].manifest", "FieldValueRequired");
    expect_invalid(crd,
                   "{\"spec\":{\"modules\":[{\"name\":\"g\",\"manifest\":\"m\"}],"
                   "\"colocation\":\"SameRack\"}}",
                   "spec.colocation", "FieldValueNotSupported");
    expect_invalid(crd,
                   "{\"spec\":{\"modules\":[{\"name\":\"g\",\"manifest\":\"m\",\"count\":0}]}}",
                   "spec.modules[0].count", "FieldValueInvalid");
    bdy_crd_free(crd);
}

static void test_capabilitybindings(void **state)
{
    (void)state;
    bdy_crd *crd = load_crd("capabilitybindings.yaml");
    json_object *obj = NULL;

    check_common(crd, "CapabilityBinding", "capabilitybindings", "cb");
    expect_valid(crd,
                 "{\"spec\":{\"capability\":\"matchmaker-secret\","
                 "\"worldSelector\":{\"matchLabels\":{\"tier\":\"gold\"},"
                 "\"matchExpressions\":[{\"key\":\"map\",\"operator\":\"In\","
                 "\"values\":[\"dust\"]}]},"
                 "\"source\":{\"secretRef\":{\"name\":\"mm\",\"key\":\"token\"}},"
                 "\"inject\":{\"env\":\"MM_TOKEN\"}}}",
                 &obj);
    json_object_put(obj);
    expect_valid(crd,
                 "{\"spec\":{\"capability\":\"redis\",\"source\":{\"serviceRef\":"
                 "{\"name\":\"redis\",\"port\":6379}},\"inject\":{\"file\":\"/etc/redis\"}}}",
                 &obj);
    json_object_put(obj);

    expect_invalid(crd, "{\"spec\":{\"capability\":\"x\"}}", "spec.source", "FieldValueRequired");
    expect_invalid(crd, "{\"spec\":{\"capability\":\"x\",\"source\":{}}}", "spec.source",
                   "FieldValueInvalid");
    expect_invalid(crd,
                   "{\"spec\":{\"capability\":\"x\",\"source\":{\"values\":{\"a\":\"b\"},"
                   "\"configMapRef\":{\"name\":\"c\"}}}}",
                   "spec.source", "FieldValueTooMany");
    expect_invalid(crd,
                   "{\"spec\":{\"capability\":\"x\",\"source\":{\"values\":{}},"
                   "\"worldSelector\":{\"matchExpressions\":[{\"key\":\"k\","
                   "\"operator\":\"Gt\"}]}}}",
                   "spec.worldSelector.matchExpressions[0].operator", "FieldValueNotSupported");
    expect_invalid(crd,
                   "{\"spec\":{\"capability\":\"x\",\"source\":{\"values\":{}},"
                   "\"inject\":{\"env\":\"1BAD\"}}}",
                   "spec.inject.env", "FieldValueInvalid");
    bdy_crd_free(crd);
}

static void test_worldinstances(void **state)
{
    (void)state;
    bdy_crd *crd = load_crd("worldinstances.yaml");
    const bdy_crd_version *v = check_common(crd, "WorldInstance", "worldinstances", "wi");
    static const char *const columns[][2] = {
        {"Pool", ".spec.pool"},
        {"Phase", ".status.phase"},
        {"Address", ".status.address"},
        {"Claimant", ".status.allocation.claimant"},
    };
    json_object *obj = NULL;

    for (size_t i = 0; i < sizeof(columns) / sizeof(columns[0]); i++) {
        assert_string_equal(v->columns[i].name, columns[i][0]);
        assert_string_equal(v->columns[i].json_path, columns[i][1]);
        assert_int_equal(v->columns[i].priority, 0);
    }
    assert_int_equal(v->nselectable_fields, 2);
    assert_string_equal(v->selectable_fields[0], "spec.pool");
    assert_string_equal(v->selectable_fields[1], "status.phase");

    expect_valid(crd,
                 "{\"apiVersion\":\"bindery.dev/v1alpha1\",\"kind\":\"WorldInstance\","
                 "\"metadata\":{\"name\":\"arena-eu-7k2pq\",\"labels\":{\"map\":\"dust\"}},"
                 "\"spec\":{\"pool\":\"arena-eu\",\"manifest\":\"arena\"},"
                 "\"status\":{\"phase\":\"Allocated\",\"address\":\"10.4.2.17\","
                 "\"ports\":[{\"name\":\"game\",\"port\":7777,\"protocol\":\"UDP\"}],"
                 "\"nodeName\":\"node-a3\",\"pid\":4242,"
                 "\"processStartTime\":\"2026-11-27T20:14:58.000001Z\","
                 "\"allocation\":{\"id\":\"alc-6f1c2b9e4d0a\",\"claimant\":\"matchmaker-eu-2\","
                 "\"claimedAt\":\"2026-11-27T20:15:02.113482Z\"},"
                 "\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\","
                 "\"lastTransitionTime\":\"2026-11-27T20:15:00Z\",\"observedGeneration\":1}],"
                 "\"observedGeneration\":1,\"restarts\":0,"
                 "\"timings\":{\"createdAt\":\"2026-11-27T20:14:57Z\","
                 "\"readyAt\":\"2026-11-27T20:15:00Z\"}}}",
                 &obj);
    json_object_put(obj);
    expect_valid(crd, "{\"spec\":{\"pool\":\"arena-eu\",\"booklet\":\"arena-full\"}}", &obj);
    /* A new world (its status dropped on create) reads Pending. */
    json_object *status = NULL;
    json_object *phase = NULL;
    assert_true(json_object_object_get_ex(obj, "status", &status));
    assert_true(json_object_object_get_ex(status, "phase", &phase));
    assert_string_equal(json_object_get_string(phase), "Pending");
    json_object_put(obj);

    expect_invalid(crd, "{\"spec\":{\"manifest\":\"arena\"}}", "spec.pool", "FieldValueRequired");
    expect_invalid(crd, "{\"spec\":{\"pool\":\"p\"}}", "spec", "FieldValueInvalid");
    expect_invalid(crd, "{\"spec\":{\"pool\":\"p\",\"manifest\":\"m\",\"booklet\":\"b\"}}", "spec",
                   "FieldValueTooMany");
    expect_invalid(crd,
                   "{\"spec\":{\"pool\":\"p\",\"manifest\":\"m\"},\"status\":{\"phase\":\"Up\"}}",
                   "status.phase", "FieldValueNotSupported");
    expect_invalid(crd,
                   "{\"spec\":{\"pool\":\"p\",\"manifest\":\"m\"},"
                   "\"status\":{\"allocation\":{\"id\":\"a\",\"claimedAt\":\"now\"}}}",
                   "status.allocation.claimedAt", "FieldValueTypeInvalid");
    expect_invalid(crd,
                   "{\"spec\":{\"pool\":\"p\",\"manifest\":\"m\"},"
                   "\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"Yes\"}]}}",
                   "status.conditions[0].status", "FieldValueNotSupported");
    expect_invalid(crd,
                   "{\"spec\":{\"pool\":\"p\",\"manifest\":\"m\"},"
                   "\"status\":{\"ports\":[{\"name\":\"game\",\"port\":0}]}}",
                   "status.ports[0].port", "FieldValueInvalid");
    bdy_crd_free(crd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_modulemanifests),
        cmocka_unit_test(test_booklets),
        cmocka_unit_test(test_capabilitybindings),
        cmocka_unit_test(test_worldinstances),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
