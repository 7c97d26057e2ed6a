/* What a world runs: a ModuleManifest's spec as one process, a Booklet's
 * modules as host arguments, and the host's reading of them back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bindery/worldspec.h"
#include "fake_store.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_object *world_of(const char *source_key, const char *source)
{
    char text[512];
    snprintf(text, sizeof(text),
             "{\"metadata\":{\"namespace\":\"default\",\"name\":\"w1\",\"uid\":\"u-1\"},"
             "\"spec\":{\"pool\":\"arena\",\"%s\":\"%s\"}}",
             source_key, source);
    json_object *o = json_tokener_parse(text);
    assert_non_null(o);
    return o;
}

#define ARENA                                                                                      \
    "{\"metadata\":{\"name\":\"arena\",\"uid\":\"m-1\",\"generation\":1},\"spec\":{"               \
    "\"ports\":[{\"name\":\"game\",\"containerPort\":7777,\"protocol\":\"TCP\"}],"                 \
    "\"readinessProbe\":{\"tcpSocket\":{\"port\":7777},\"periodSeconds\":2,"                       \
    "\"failureThreshold\":5,\"initialDelaySeconds\":1},"                                           \
    "\"terminationGracePeriodSeconds\":3,\"startDeadlineSeconds\":30,\"capabilities\":[\"db\"],"   \
    "\"local\":{\"command\":\"arena-world\",\"args\":[\"--port\",\"{port:game}\"],"                \
    "\"env\":[{\"name\":\"MODE\",\"value\":\"duel\"}]}}}"

#define VOICE                                                                                      \
    "{\"metadata\":{\"name\":\"voice\",\"uid\":\"m-2\",\"generation\":4},\"spec\":{"               \
    "\"ports\":[{\"name\":\"voice\",\"containerPort\":7000},"                                      \
    "{\"name\":\"game\",\"containerPort\":7001,\"protocol\":\"TCP\"}],"                            \
    "\"readinessProbe\":{\"httpGet\":{\"port\":\"voice\",\"path\":\"/up\"},\"periodSeconds\":1,"   \
    "\"failureThreshold\":7,\"timeoutSeconds\":2},"                                                \
    "\"terminationGracePeriodSeconds\":9,\"startDeadlineSeconds\":60,"                             \
    "\"resources\":{\"limits\":{\"memory\":\"256Mi\"}},"                                           \
    "\"capabilities\":[\"voice-key\",\"db\"],"                                                     \
    "\"local\":{\"command\":\"voice-server\",\"workingDir\":\"voice\","                            \
    "\"args\":[\"--game\",\"{port:game}\",\"--voice\",\"{port:voice}\",\"${HOME}\"]}}}"

static void test_manifest_world(void **state)
{
    (void)state;
    fake_store fs = {.n = 0};
    put(&fs, "modulemanifests", "arena", ARENA);
    json_object *world = world_of("manifest", "arena");
    bdy_worldspec ws;
    char why[512] = "";
    assert_int_equal(
        bdy_worldspec_build(world, fake_get, &fs, "/bin/host", true, &ws, why, sizeof(why)), 0);
    const bdy_world_spec *s = &ws.spec;
    assert_string_equal(s->command, "arena-world");
    assert_string_equal(s->name, "w1");
    assert_string_equal(s->uid, "u-1");
    assert_int_equal(s->nargs, 2);
    assert_string_equal(s->args[1], "{port:game}");
    assert_int_equal(s->nenv, 1);
    assert_string_equal(s->env_values[0], "duel");
    assert_int_equal(s->nports, 1);
    assert_string_equal(s->ports[0].name, "game");
    assert_string_equal(s->ports[0].protocol, "TCP");
    /* The probe's containerPort is the port's name in embedded mode. */
    assert_int_equal(s->nreadiness, 1);
    assert_int_equal(s->readiness[0].kind, BDY_PROBE_TCP);
    assert_string_equal(s->readiness[0].port, "game");
    assert_int_equal(s->readiness[0].failure_threshold, 5);
    assert_int_equal(s->readiness[0].initial_delay_ms, 1000);
    assert_int_equal(ws.period_ms, 2000);
    assert_int_equal(ws.deadline_s, 30);
    assert_int_equal(s->grace_ms, 3000);
    assert_false(s->relays_term);
    assert_int_equal(s->children, 0);
    assert_false(ws.names_resources);
    bdy_worldspec_free(&ws);
    assert_int_equal(bdy_worldspec_grace_ms(world, fake_get, &fs, 10000), 3000);
    json_object_put(world);

    /* A manifest that requires capabilities: the spec lists them, for the
     * world to wait until they are bound (capability.h). */
    put(&fs, "modulemanifests", "needy",
        "{\"metadata\":{\"uid\":\"n\"},\"spec\":{\"capabilities\":[\"db\",\"voice-key\"],"
        "\"resources\":{\"requests\":{},\"limits\":{}},"
        "\"local\":{\"command\":\"x\"}}}");
    world = world_of("manifest", "needy");
    assert_int_equal(bdy_worldspec_build(world, fake_get, &fs, NULL, true, &ws, why, sizeof(why)),
                     0);
    assert_string_equal(json_object_to_json_string_ext(ws.capabilities, JSON_C_TO_STRING_PLAIN),
                        "[\"db\",\"voice-key\"]");
    assert_int_equal(ws.spec.nbound, 0);
    assert_false(ws.names_resources); /* empty lists name nothing */
    bdy_worldspec_free(&ws);
    json_object_put(world);

    /* Gone: the reason names it; the grace falls back. */
    world = world_of("manifest", "gone");
    assert_int_equal(bdy_worldspec_build(world, fake_get, &fs, NULL, true, &ws, why, sizeof(why)),
                     BDY_ENOTFOUND);
    assert_non_null(strstr(why, "ModuleManifest default/gone"));
    bdy_worldspec_free(&ws);
    assert_int_equal(bdy_worldspec_grace_ms(world, fake_get, &fs, 10000), 10000);
    json_object_put(world);
}

/* A probe that could only ever fail is refused at start, with a reason:
 * a port name none of spec.ports has, an HTTP path with a blank. A path
 * without its leading "/" gets one, as in the kubelet. A world already
 * running (not starting) is built as before. */
static void test_probe_mistakes(void **state)
{
    (void)state;
    fake_store fs = {.n = 0};
    put(&fs, "modulemanifests", "typo",
        "{\"metadata\":{\"uid\":\"t\"},\"spec\":{"
        "\"ports\":[{\"name\":\"game\",\"containerPort\":7777}],"
        "\"readinessProbe\":{\"tcpSocket\":{\"port\":\"gmae\"}},\"local\":{\"command\":\"x\"}}}");
    put(&fs, "modulemanifests", "blank",
        "{\"metadata\":{\"uid\":\"b\"},\"spec\":{"
        "\"ports\":[{\"name\":\"game\",\"containerPort\":7777}],"
        "\"readinessProbe\":{\"httpGet\":{\"port\":\"game\",\"path\":\"/a b\"}},"
        "\"local\":{\"command\":\"x\"}}}");
    put(&fs, "modulemanifests", "relative",
        "{\"metadata\":{\"uid\":\"r\"},\"spec\":{"
        "\"ports\":[{\"name\":\"game\",\"containerPort\":7777}],"
        "\"readinessProbe\":{\"httpGet\":{\"port\":\"game\",\"path\":\"healthz\"}},"
        "\"local\":{\"command\":\"x\"}}}");
    bdy_worldspec ws;
    char why[512] = "";
    json_object *world = world_of("manifest", "typo");
    assert_int_equal(bdy_worldspec_build(world, fake_get, &fs, NULL, true, &ws, why, sizeof(why)),
                     BDY_EINVAL);
    assert_non_null(strstr(why, "readinessProbe port \"gmae\" is the name of none"));
    bdy_worldspec_free(&ws);
    assert_int_equal(bdy_worldspec_build(world, fake_get, &fs, NULL, false, &ws, why, sizeof(why)),
                     0);
    bdy_worldspec_free(&ws);
    json_object_put(world);
    world = world_of("manifest", "blank");
    assert_int_equal(bdy_worldspec_build(world, fake_get, &fs, NULL, true, &ws, why, sizeof(why)),
                     BDY_EINVAL);
    assert_non_null(strstr(why, "readinessProbe.httpGet.path"));
    bdy_worldspec_free(&ws);
    json_object_put(world);
    world = world_of("manifest", "relative");
    assert_int_equal(bdy_worldspec_build(world, fake_get, &fs, NULL, true, &ws, why, sizeof(why)),
                     0);
    assert_string_equal(ws.spec.readiness[0].path, "/healthz");
    bdy_worldspec_free(&ws);
    json_object_put(world);
}

/* Decodes host argument arg into m. */
static void parse_arg(const char *arg, bdy_host_module *m)
{
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy_host_module_parse(arg, strlen(arg), m, &eb);
    if (rc != 0)
        fprintf(stderr, "parse: %s\n", eb.message);
    assert_int_equal(rc, 0);
}

static void test_booklet_world(void **state)
{
    (void)state;
    fake_store fs = {.n = 0};
    put(&fs, "modulemanifests", "arena", ARENA);
    put(&fs, "modulemanifests", "voice", VOICE);
    put(&fs, "booklets", "duo",
        "{\"metadata\":{\"name\":\"duo\",\"uid\":\"b-1\"},\"spec\":{\"modules\":["
        "{\"name\":\"server\",\"manifest\":\"arena\"},"
        "{\"name\":\"vc\",\"manifest\":\"voice\",\"count\":2}]}}");
    json_object *world = world_of("booklet", "duo");
    bdy_worldspec ws;
    char why[512] = "";
    int rc = bdy_worldspec_build(world, fake_get, &fs, "/opt/bindery/bin/bindery-world-host", true,
                                 &ws, why, sizeof(why));
    if (rc != 0)
        fprintf(stderr, "%s\n", why);
    assert_int_equal(rc, 0);
    const bdy_world_spec *s = &ws.spec;
    assert_string_equal(s->command, "/opt/bindery/bin/bindery-world-host");
    assert_true(s->relays_term);
    /* Its host runs each of the three instances as a child, watched. */
    assert_int_equal(s->children, 3);
    /* A module's manifest names a memory limit, which nothing applies. */
    assert_true(ws.names_resources);
    assert_int_equal(s->nargs, 3);
    /* What its modules require, each name once. */
    assert_string_equal(json_object_to_json_string_ext(ws.capabilities, JSON_C_TO_STRING_PLAIN),
                        "[\"db\",\"voice-key\"]");
    assert_int_equal(s->nenv, 0);
    /* server's game clashes with vc's game, so both are qualified; vc runs
     * twice, so its ports carry the instance. */
    assert_int_equal(s->nports, 5);
    const char *names[] = {"server-game", "vc-0-voice", "vc-0-game", "vc-1-voice", "vc-1-game"};
    const char *protocols[] = {"TCP", "UDP", "TCP", "UDP", "TCP"};
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(s->ports[i].name, names[i]);
        assert_string_equal(s->ports[i].protocol, protocols[i]);
    }
    /* One probe per instance, on its own port under its world name. */
    assert_int_equal(s->nreadiness, 3);
    assert_int_equal(s->readiness[0].kind, BDY_PROBE_TCP);
    assert_string_equal(s->readiness[0].port, "server-game");
    assert_int_equal(s->readiness[1].kind, BDY_PROBE_HTTP);
    assert_string_equal(s->readiness[1].port, "vc-0-voice");
    assert_string_equal(s->readiness[1].path, "/up");
    assert_int_equal(s->readiness[1].timeout_ms, 2000);
    assert_string_equal(s->readiness[2].port, "vc-1-voice");
    /* The world's timing: the most watchful period, a threshold that
     * fails it after as long as the least tolerant module allows (arena:
     * 2 s x 5, voice: 1 s x 7, so 7 s at 1 s), the longest delay, grace
     * and deadline. */
    assert_int_equal(s->readiness[0].period_ms, 1000);
    assert_int_equal(s->readiness[0].failure_threshold, 7);
    assert_int_equal(s->readiness[0].initial_delay_ms, 1000);
    assert_int_equal(ws.period_ms, 1000);
    /* The longest grace, and 2 s for the host to end what is left. */
    assert_int_equal(s->grace_ms, 11000);
    assert_int_equal(ws.deadline_s, 60);
    assert_int_equal(bdy_worldspec_grace_ms(world, fake_get, &fs, 10000), 11000);

    /* One host argument per instance, which the host reads back. */
    assert_int_equal(s->nargs, 3);
    for (size_t i = 0; i < s->nargs; i++)
        assert_null(strpbrk(s->args[i], "{}")); /* nothing for the runtime to replace */
    bdy_host_module m;
    parse_arg(s->args[0], &m);
    assert_string_equal(m.module, "server");
    assert_int_equal(m.index, 0);
    assert_string_equal(m.command, "arena-world");
    assert_int_equal(m.nargs, 2);
    assert_string_equal(m.args[1], "{port:game}");
    assert_int_equal(m.nenv, 1);
    assert_string_equal(m.env_names[0], "MODE");
    assert_null(m.working_dir);
    assert_int_equal(m.grace_ms, 3000);
    assert_int_equal(m.nports, 1);
    assert_string_equal(m.port_names[0], "game");
    assert_string_equal(m.port_worlds[0], "server-game");
    bdy_host_module_free(&m);
    parse_arg(s->args[2], &m);
    assert_string_equal(m.module, "vc");
    assert_int_equal(m.index, 1);
    assert_string_equal(m.working_dir, "voice");
    assert_int_equal(m.nargs, 5);
    assert_string_equal(m.args[4], "${HOME}");
    assert_int_equal(m.nports, 2);
    assert_string_equal(m.port_names[0], "voice");
    assert_string_equal(m.port_worlds[0], "vc-1-voice");
    assert_string_equal(m.port_worlds[1], "vc-1-game");
    bdy_host_module_free(&m);
    bdy_worldspec_free(&ws);
    json_object_put(world);
}

/* Booklets embedded mode cannot run say why, and name what to change. */
static void test_booklet_refused(void **state)
{
    (void)state;
    struct {
        const char *booklet;
        int rc;
        const char *why;
    } cases[] = {
        {"{\"metadata\":{\"uid\":\"b\"},\"spec\":{\"modules\":["
         "{\"name\":\"a-very-long-module\",\"manifest\":\"arena\",\"count\":2}]}}",
         BDY_EINVAL, "a-very-long-module-0-game in the world, longer than 15 characters"},
        {"{\"metadata\":{\"uid\":\"b\"},\"spec\":{\"modules\":["
         "{\"name\":\"a\",\"manifest\":\"arena\",\"count\":17}]}}",
         BDY_EINVAL, "more than 16 ports"},
        {"{\"metadata\":{\"uid\":\"b\"},\"spec\":{\"modules\":["
         "{\"name\":\"a\",\"manifest\":\"missing\"}]}}",
         BDY_ENOTFOUND, "module a: ModuleManifest default/missing"},
        {"{\"metadata\":{\"uid\":\"b\"},\"spec\":{\"modules\":["
         "{\"name\":\"a-b\",\"manifest\":\"named\"},{\"name\":\"a\",\"manifest\":\"named\"}]}}",
         BDY_EINVAL, "would both be named a-b-c"},
        {"{\"metadata\":{\"uid\":\"b\"},\"spec\":{\"modules\":[]}}", BDY_EINVAL, "no modules"},
        /* A placeholder that names no port of the module or the world. */
        {"{\"metadata\":{\"uid\":\"b\"},\"spec\":{\"modules\":["
         "{\"name\":\"a\",\"manifest\":\"arena\"},{\"name\":\"t\",\"manifest\":\"typo\"}]}}",
         BDY_EINVAL, "module t: placeholder {port:gmae} names no port of the world"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fake_store fs = {.n = 0};
        put(&fs, "modulemanifests", "arena", ARENA);
        /* Ports "c" and "b-c": module "a-b" port "c" and module "a" port
         * "b-c" clash once qualified. */
        put(&fs, "modulemanifests", "named",
            "{\"metadata\":{\"uid\":\"n\"},\"spec\":{\"ports\":[{\"name\":\"c\","
            "\"containerPort\":1},{\"name\":\"b-c\",\"containerPort\":2}],"
            "\"local\":{\"command\":\"x\"}}}");
        put(&fs, "modulemanifests", "typo",
            "{\"metadata\":{\"uid\":\"t\"},\"spec\":{\"local\":{\"command\":\"x\","
            "\"env\":[{\"name\":\"GAME\",\"value\":\"{port:game}\"},"
            "{\"name\":\"OOPS\",\"value\":\"{port:gmae}\"}]}}}");
        put(&fs, "booklets", "bk", cases[i].booklet);
        json_object *world = world_of("booklet", "bk");
        bdy_worldspec ws;
        char why[512] = "";
        assert_int_equal(
            bdy_worldspec_build(world, fake_get, &fs, "/host", true, &ws, why, sizeof(why)),
            cases[i].rc);
        if (strstr(why, cases[i].why) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, why, cases[i].why);
        bdy_worldspec_free(&ws);
        json_object_put(world);
    }
    /* Without a host no booklet world can start. */
    fake_store fs = {.n = 0};
    put(&fs, "modulemanifests", "arena", ARENA);
    put(&fs, "booklets", "bk",
        "{\"metadata\":{\"uid\":\"b\"},\"spec\":{\"modules\":[{\"name\":\"a\","
        "\"manifest\":\"arena\"}]}}");
    json_object *world = world_of("booklet", "bk");
    bdy_worldspec ws;
    char why[512] = "";
    assert_int_equal(bdy_worldspec_build(world, fake_get, &fs, NULL, true, &ws, why, sizeof(why)),
                     BDY_EUNSUPPORTED);
    bdy_worldspec_free(&ws);
    json_object_put(world);
}

/* base64 of text, for the host's parser. */
static char *b64(const char *text)
{
    size_t len = strlen(text);
    char *out = malloc(len / 3 * 4 + 5);
    assert_non_null(out);
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)text, (int)len);
    return out;
}

static void test_host_argument_refused(void **state)
{
    (void)state;
    const char *bad[] = {
        "[]",
        "{}",
        "{\"module\":\"a\",\"index\":0}",
        "{\"module\":\"a\",\"index\":64,\"command\":\"x\"}",
        "{\"module\":\"a\",\"index\":-1,\"command\":\"x\"}",
        "{\"module\":\"a\",\"index\":0,\"command\":\"x\",\"args\":[1]}",
        "{\"module\":\"a\",\"index\":0,\"command\":\"x\",\"env\":[{\"name\":\"A=B\","
        "\"value\":\"v\"}]}",
        "{\"module\":\"a\",\"index\":0,\"command\":\"x\",\"ports\":[{\"name\":\"p\"}]}",
        "{\"module\":\"a\",\"index\":0,\"command\":\"x\",\"graceMs\":-5}",
        "{\"module\":\"a\",\"index\":0,\"command\":\"x\\u0000y\"}",
        "{\"module\":\"a\",\"index\":0,\"command\":\"x\"} trailing",
        "{\"module\":\"a\",\"index\":0,\"command\":\"x\",\"workingDir\":3}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *arg = b64(bad[i]);
        bdy_host_module m;
        bdy_errbuf eb;
        bdy_errbuf_clear(&eb);
        if (bdy_host_module_parse(arg, strlen(arg), &m, &eb) == 0)
            fail_msg("case %zu (%s) was taken", i, bad[i]);
        assert_null(m.held);
        assert_true(eb.message[0] != '\0');
        free(arg);
    }
    bdy_host_module m;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    assert_int_equal(bdy_host_module_parse("not base64!", 11, &m, &eb), BDY_EPARSE);
    char *arg = b64("{\"module\":\"a\",\"index\":3,\"command\":\"x\"}");
    parse_arg(arg, &m);
    assert_int_equal(m.index, 3);
    assert_int_equal(m.grace_ms, 10000);
    assert_int_equal(m.nargs + m.nenv + m.nports, 0);
    bdy_host_module_free(&m);
    free(arg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_manifest_world),        cmocka_unit_test(test_probe_mistakes),
        cmocka_unit_test(test_booklet_world),         cmocka_unit_test(test_booklet_refused),
        cmocka_unit_test(test_host_argument_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
