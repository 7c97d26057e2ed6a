/* What a world runs, as a runtime spec (see worldspec.h). */
#include "bindery/worldspec.h"

#include "bindery/jsonutil.h"
#include "bindery/util.h"
#include "prober.h"
#include "runtime_internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_GRACE_S 10
#define DEFAULT_DEADLINE_S 120
#define DEFAULT_PERIOD_MS 1000u
/* Longest a readiness probe waits for its answer: a probe waiting holds one
 * of the runtime's probe slots, and a pool of hung worlds with timeouts of
 * hours would hold them all, so that no other world could be probed. */
#define PROBE_TIMEOUT_MAX_MS 60000u
/* Seconds fields saturate here, which also keeps them within the int of a
 * poll() timeout. */
#define MAX_MANIFEST_MS 2000000000u
#define PORT_NAME_MAX (sizeof(((bdy_port *)0)->name) - 1)
#define HOST_JSON_DEPTH 8
/* A booklet world's grace beyond its longest module's: the host sends
 * SIGKILL to the modules left at the end of their grace and exits, before
 * the runtime's SIGKILL to the whole group would cut it short. */
#define HOST_GRACE_MARGIN_MS 2000u
#define HOST_ARGS_MAX ((size_t)1024 * 1024) /* all of a host's arguments, in bytes */

/* Field key of o (seconds, a non-negative int32 by the CRD) in
 * milliseconds, def_s when absent. */
static unsigned seconds_ms(json_object *o, const char *key, int64_t def_s)
{
    int64_t s = bdy_jint(o, key, def_s);
    if (s <= 0)
        return 0;
    return s >= MAX_MANIFEST_MS / 1000 ? MAX_MANIFEST_MS : (unsigned)s * 1000u;
}

static size_t array_len(json_object *list)
{
    return json_object_is_type(list, json_type_array) ? json_object_array_length(list) : 0;
}

/* Refuses a list of the manifest longer than the runtime takes: dropping
 * the rest would run the world other than the manifest says. */
static int list_fits(json_object *list, size_t max, const char *ns, const char *manifest,
                     const char *field, char *why, size_t why_cap)
{
    size_t n = array_len(list);
    if (n <= max)
        return 0;
    snprintf(why, why_cap, "ModuleManifest %s/%s: %s has %zu entries; embedded mode takes %zu", ns,
             manifest, field, n, max);
    return BDY_EINVAL;
}

/* One module as its ModuleManifest says to run it. Pointers into the
 * manifest, which the caller holds. */
typedef struct module_def {
    const char *manifest_name;
    json_object *ms; /* the manifest's spec */
    const char *command;
    const char *working_dir;
    json_object *args;
    json_object *env;
    json_object *ports;
    size_t nports;
    bdy_probe probe;         /* port set by the caller, from probe_port */
    json_object *probe_port; /* as the manifest gives it: a name, a number, or NULL */
    unsigned period_ms;
    unsigned grace_ms;
    unsigned deadline_s;
    bool names_resources; /* spec.resources has requests or limits */
} module_def;

static int module_read(const char *ns, const char *manifest_name, json_object *m, bool starting,
                       module_def *d, char *why, size_t why_cap)
{
    memset(d, 0, sizeof(*d));
    d->manifest_name = manifest_name;
    d->ms = bdy_jget(m, "spec");
    json_object *local = bdy_jget(d->ms, "local");
    d->command = bdy_jstr(local, "command");
    if (d->command == NULL) {
        snprintf(why, why_cap, "ModuleManifest %s/%s has no spec.local.command for embedded mode",
                 ns, manifest_name);
        return BDY_EINVAL;
    }
    d->working_dir = bdy_jstr(local, "workingDir");
    d->args = bdy_jget(local, "args");
    d->env = bdy_jget(local, "env");
    d->ports = bdy_jget(d->ms, "ports");
    int rc = 0;
    if (starting && ((rc = list_fits(d->args, BDY_RUNTIME_MAX_ARGS, ns, manifest_name,
                                     "spec.local.args", why, why_cap)) != 0 ||
                     (rc = list_fits(d->env, BDY_RUNTIME_MAX_ENV, ns, manifest_name,
                                     "spec.local.env", why, why_cap)) != 0 ||
                     (rc = list_fits(d->ports, BDY_RUNTIME_MAX_PORTS, ns, manifest_name,
                                     "spec.ports", why, why_cap)) != 0))
        return rc;
    for (size_t i = 0; starting && i < array_len(d->args); i++)
        if (!json_object_is_type(json_object_array_get_idx(d->args, i), json_type_string)) {
            snprintf(why, why_cap, "ModuleManifest %s/%s: spec.local.args[%zu] is not a string", ns,
                     manifest_name, i);
            return BDY_EINVAL;
        }
    for (size_t i = 0; starting && i < array_len(d->env); i++)
        if (bdy_jstr(json_object_array_get_idx(d->env, i), "name") == NULL) {
            snprintf(why, why_cap, "ModuleManifest %s/%s: spec.local.env[%zu] has no name", ns,
                     manifest_name, i);
            return BDY_EINVAL;
        }
    d->nports = array_len(d->ports);
    if (d->nports > BDY_RUNTIME_MAX_PORTS)
        d->nports = BDY_RUNTIME_MAX_PORTS;
    json_object *probe = bdy_jget(d->ms, "readinessProbe");
    json_object *tcp = bdy_jget(probe, "tcpSocket");
    json_object *http = bdy_jget(probe, "httpGet");
    d->probe_port = tcp ? bdy_jget(tcp, "port") : http ? bdy_jget(http, "port") : NULL;
    d->probe.kind = tcp ? BDY_PROBE_TCP : http ? BDY_PROBE_HTTP : BDY_PROBE_NONE;
    if (http != NULL) {
        const char *path = bdy_jstr(http, "path") ? bdy_jstr(http, "path") : "/";
        /* A path without its leading "/" gets one, as in the kubelet's URL. */
        int n =
            snprintf(d->probe.path, sizeof(d->probe.path), "%s%s", path[0] == '/' ? "" : "/", path);
        /* Refused at start rather than failing every probe in silence until
         * the start deadline. */
        if (starting &&
            (n < 0 || (size_t)n >= sizeof(d->probe.path) || !bdy__prober_path_ok(d->probe.path))) {
            snprintf(why, why_cap,
                     "ModuleManifest %s/%s: readinessProbe.httpGet.path must be under %zu bytes "
                     "without blanks or control characters",
                     ns, manifest_name, sizeof(d->probe.path));
            return BDY_EINVAL;
        }
    }
    d->probe.initial_delay_ms = seconds_ms(probe, "initialDelaySeconds", 0);
    d->probe.period_ms = seconds_ms(probe, "periodSeconds", 1);
    d->probe.timeout_ms = seconds_ms(probe, "timeoutSeconds", 1);
    if (d->probe.timeout_ms > PROBE_TIMEOUT_MAX_MS)
        d->probe.timeout_ms = PROBE_TIMEOUT_MAX_MS;
    d->probe.failure_threshold = (unsigned)bdy_jint(probe, "failureThreshold", 3);
    d->period_ms = d->probe.period_ms ? d->probe.period_ms : DEFAULT_PERIOD_MS;
    d->grace_ms = seconds_ms(d->ms, "terminationGracePeriodSeconds", DEFAULT_GRACE_S);
    int64_t deadline = bdy_jint(d->ms, "startDeadlineSeconds", DEFAULT_DEADLINE_S);
    d->deadline_s = deadline < 0 ? 0 : deadline > 1000000000 ? 1000000000u : (unsigned)deadline;
    json_object *resources = bdy_jget(d->ms, "resources");
    json_object *requests = bdy_jget(resources, "requests");
    json_object *limits = bdy_jget(resources, "limits");
    d->names_resources =
        (json_object_is_type(requests, json_type_object) &&
         json_object_object_length(requests) > 0) ||
        (json_object_is_type(limits, json_type_object) && json_object_object_length(limits) > 0);
    return 0;
}

static const char *port_name(const module_def *d, size_t i)
{
    const char *name = bdy_jstr(json_object_array_get_idx(d->ports, i), "name");
    return name ? name : "";
}

static const char *port_protocol(const module_def *d, size_t i)
{
    const char *p = bdy_jstr(json_object_array_get_idx(d->ports, i), "protocol");
    return p ? p : "UDP";
}

/* Which of the module's ports its readiness probe knocks on: a port name,
 * or a number, which (as in a Pod) is a containerPort. Embedded worlds
 * listen on assigned host ports, so a number is the port whose
 * containerPort it is; probing the number itself would knock on another
 * program's port. *index: that port, or -1 when the probe's port is no
 * port of the module (refused at start, with the reason in why; a world
 * already running keeps the number, and a name fails its probes). */
static int probe_port(const char *ns, const module_def *d, bool starting, long *index, char *why,
                      size_t why_cap)
{
    *index = -1;
    const char *text = d->probe_port ? json_object_get_string(d->probe_port) : NULL;
    if (text == NULL)
        return 0;
    for (size_t i = 0; i < d->nports; i++)
        if (strcmp(port_name(d, i), text) == 0) {
            *index = (long)i;
            return 0;
        }
    char *end = NULL;
    errno = 0;
    long number = strtol(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno != 0) {
        if (!starting)
            return 0;
        /* Every probe would fail until the start deadline, naming nothing. */
        snprintf(why, why_cap,
                 "ModuleManifest %s/%s: readinessProbe port \"%.64s\" is the name of none of "
                 "spec.ports",
                 ns, d->manifest_name, text);
        return BDY_EINVAL;
    }
    for (size_t i = 0; i < d->nports; i++)
        if (bdy_jint(json_object_array_get_idx(d->ports, i), "containerPort", 0) == number) {
            *index = (long)i;
            return 0;
        }
    if (!starting)
        return 0;
    snprintf(why, why_cap,
             "ModuleManifest %s/%s: readinessProbe port %ld is the containerPort of none of "
             "spec.ports; name the port, or give a containerPort",
             ns, d->manifest_name, number);
    return BDY_EINVAL;
}

/* Adds the module's probe, its port named as world port `named` (NULL:
 * the probe's own text, which names no port of the module). */
static void add_probe(bdy_world_spec *spec, const module_def *d, const char *named)
{
    bdy_probe *p = &spec->readiness[spec->nreadiness++];
    *p = d->probe;
    const char *text = d->probe_port ? json_object_get_string(d->probe_port) : NULL;
    snprintf(p->port, sizeof(p->port), "%s", named ? named : text ? text : "");
}

/* Holds o (a new reference) in held; o itself, or NULL when out of memory. */
static json_object *hold(json_object *held, json_object *o)
{
    if (o == NULL || json_object_array_add(held, o) != 0) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

int bdy_worldspec_note_capabilities(json_object *names, json_object *manifest_spec)
{
    json_object *caps = bdy_jget(manifest_spec, "capabilities");
    for (size_t i = 0; i < array_len(caps); i++) {
        json_object *c = json_object_array_get_idx(caps, i);
        if (!json_object_is_type(c, json_type_string))
            continue;
        bool known = false;
        for (size_t k = 0; k < json_object_array_length(names) && !known; k++)
            known = strcmp(json_object_get_string(json_object_array_get_idx(names, k)),
                           json_object_get_string(c)) == 0;
        if (!known && json_object_array_add(names, json_object_get(c)) != 0) {
            json_object_put(c);
            return BDY_ENOMEM;
        }
    }
    return 0;
}

/* ---- a world of one ModuleManifest ------------------------------------- */

static int build_manifest(const char *ns, const char *manifest_name, json_object *m, bool starting,
                          bdy_worldspec *out, char *why, size_t why_cap)
{
    bdy_world_spec *spec = &out->spec;
    module_def d;
    int rc = module_read(ns, manifest_name, m, starting, &d, why, why_cap);
    if (rc == 0)
        rc = bdy_worldspec_note_capabilities(out->capabilities, d.ms);
    if (rc != 0)
        return rc;
    out->names_resources = d.names_resources;
    spec->command = d.command;
    spec->working_dir = d.working_dir;
    for (size_t i = 0; i < array_len(d.args) && i < BDY_RUNTIME_MAX_ARGS; i++)
        spec->args[spec->nargs++] = json_object_get_string(json_object_array_get_idx(d.args, i));
    for (size_t i = 0; i < array_len(d.env) && i < BDY_RUNTIME_MAX_ENV; i++) {
        json_object *e = json_object_array_get_idx(d.env, i);
        spec->env_names[spec->nenv] = bdy_jstr(e, "name");
        spec->env_values[spec->nenv] = bdy_jstr(e, "value") ? bdy_jstr(e, "value") : "";
        spec->nenv++;
    }
    for (size_t i = 0; i < d.nports; i++) {
        bdy_port *sp = &spec->ports[spec->nports++];
        snprintf(sp->name, sizeof(sp->name), "%s", port_name(&d, i));
        snprintf(sp->protocol, sizeof(sp->protocol), "%s", port_protocol(&d, i));
    }
    spec->readiness[0] = d.probe;
    if (d.probe.kind != BDY_PROBE_NONE) {
        long index = -1;
        if (d.probe_port != NULL && (rc = probe_port(ns, &d, starting, &index, why, why_cap)) != 0)
            return rc;
        add_probe(spec, &d, index >= 0 ? port_name(&d, (size_t)index) : NULL);
    }
    spec->grace_ms = d.grace_ms;
    out->period_ms = d.period_ms;
    out->deadline_s = d.deadline_s;
    return 0;
}

/* ---- a world of a Booklet's modules ------------------------------------ */

typedef struct booklet_module {
    const char *name;
    unsigned count;
    module_def def;
    size_t first_port; /* its ports' world names: names[first_port + instance * nports + i] */
} booklet_module;

static unsigned grace_with_margin(unsigned grace_ms)
{
    return grace_ms > MAX_MANIFEST_MS - HOST_GRACE_MARGIN_MS ? MAX_MANIFEST_MS
                                                             : grace_ms + HOST_GRACE_MARGIN_MS;
}

/* A placeholder's port as the host will find it (bdy__expand's lookup, to
 * check a module's text before it starts): the module's own port names,
 * then the world's. The number is no real one. */
typedef struct placeholder_ports {
    const module_def *def;
    const bdy_world_spec *spec;
} placeholder_ports;

static int placeholder_port(void *data, const char *name, size_t len, unsigned *port)
{
    const placeholder_ports *pp = data;
    for (size_t i = 0; i < pp->def->nports; i++) {
        const char *own = port_name(pp->def, i);
        if (strlen(own) == len && memcmp(own, name, len) == 0) {
            *port = 1;
            return 0;
        }
    }
    for (size_t i = 0; i < pp->spec->nports; i++)
        if (strlen(pp->spec->ports[i].name) == len &&
            memcmp(pp->spec->ports[i].name, name, len) == 0) {
            *port = 1;
            return 0;
        }
    return BDY_ENOTFOUND;
}

/* Whether every placeholder in the module's args and env values names a
 * port the host will find: a mistake is a start error with its reason
 * here, not a module that exits at once in every world (a crash loop whose
 * reason only the world's log would hold). */
static int check_placeholders(const char *ns, const char *booklet, const booklet_module *bm,
                              const bdy_world_spec *spec, char *why, size_t why_cap)
{
    placeholder_ports pp = {&bm->def, spec};
    size_t nargs = array_len(bm->def.args);
    size_t nenv = array_len(bm->def.env);
    for (size_t i = 0; i < nargs + nenv; i++) {
        json_object *item =
            i < nargs ? json_object_array_get_idx(bm->def.args, i)
                      : bdy_jget(json_object_array_get_idx(bm->def.env, i - nargs), "value");
        const char *text = item ? json_object_get_string(item) : NULL;
        char *out = NULL;
        bdy_errbuf eb;
        bdy_errbuf_clear(&eb);
        int rc = text ? bdy__expand(text, "", "", placeholder_port, &pp, &out, &eb) : 0;
        free(out);
        if (rc != 0) {
            snprintf(why, why_cap, "Booklet %s/%s: module %s: %s", ns, booklet, bm->name,
                     eb.message);
            return BDY_EINVAL;
        }
    }
    return 0;
}

/* Whether a module other than modules[self] has a port called name. */
static bool port_name_shared(const booklet_module *modules, size_t n, size_t self, const char *name)
{
    for (size_t j = 0; j < n; j++)
        for (size_t i = 0; j != self && i < modules[j].def.nports; i++)
            if (strcmp(port_name(&modules[j].def, i), name) == 0)
                return true;
    return false;
}

/* The world's names of every module instance's ports, into spec->ports
 * (see worldspec.h for the rule). */
static int name_ports(const char *ns, const char *booklet, booklet_module *modules, size_t n,
                      bdy_world_spec *spec, char *why, size_t why_cap)
{
    for (size_t m = 0; m < n; m++) {
        booklet_module *bm = &modules[m];
        bm->first_port = spec->nports;
        for (unsigned k = 0; k < bm->count; k++) {
            for (size_t i = 0; i < bm->def.nports; i++) {
                const char *pn = port_name(&bm->def, i);
                if (spec->nports == BDY_RUNTIME_MAX_PORTS) {
                    snprintf(why, why_cap,
                             "Booklet %s/%s: its modules have more than %d ports in all; "
                             "embedded mode takes %d",
                             ns, booklet, BDY_RUNTIME_MAX_PORTS, BDY_RUNTIME_MAX_PORTS);
                    return BDY_EINVAL;
                }
                char name[128];
                if (bm->count > 1)
                    snprintf(name, sizeof(name), "%s-%u-%s", bm->name, k, pn);
                else if (port_name_shared(modules, n, m, pn))
                    snprintf(name, sizeof(name), "%s-%s", bm->name, pn);
                else
                    snprintf(name, sizeof(name), "%s", pn);
                if (strlen(name) > PORT_NAME_MAX) {
                    snprintf(why, why_cap,
                             "Booklet %s/%s: module %s's port %s would be named %s in the world, "
                             "longer than %zu characters; shorten the module's or the port's "
                             "name",
                             ns, booklet, bm->name, pn, name, PORT_NAME_MAX);
                    return BDY_EINVAL;
                }
                for (size_t j = 0; j < spec->nports; j++)
                    if (strcmp(spec->ports[j].name, name) == 0) {
                        snprintf(why, why_cap,
                                 "Booklet %s/%s: two ports of its modules would both be named "
                                 "%s in the world; rename a module or a port",
                                 ns, booklet, name);
                        return BDY_EINVAL;
                    }
                bdy_port *sp = &spec->ports[spec->nports++];
                memcpy(sp->name, name, strlen(name) + 1);
                snprintf(sp->protocol, sizeof(sp->protocol), "%s", port_protocol(&bm->def, i));
            }
        }
    }
    return 0;
}

/* Copies the string array list (NULL: none) into a new array. */
static json_object *copy_strings(json_object *list)
{
    json_object *out = json_object_new_array();
    for (size_t i = 0; out != NULL && i < array_len(list); i++)
        if (json_object_array_add(out, json_object_new_string(json_object_get_string(
                                           json_object_array_get_idx(list, i)))) != 0) {
            json_object_put(out);
            return NULL;
        }
    return out;
}

/* Instance k of module bm as the host's argument: base64 of its JSON. */
static json_object *host_argument(const booklet_module *bm, unsigned k, const bdy_world_spec *spec)
{
    const module_def *d = &bm->def;
    json_object *o = json_object_new_object();
    json_object *env = json_object_new_array();
    json_object *ports = json_object_new_array();
    json_object *args = copy_strings(d->args);
    json_object *result = NULL;
    char *b64 = NULL;
    if (o == NULL || env == NULL || ports == NULL || args == NULL)
        goto out;
    for (size_t i = 0; i < array_len(d->env); i++) {
        json_object *e = json_object_array_get_idx(d->env, i);
        json_object *c = json_object_new_object();
        if (c == NULL || json_object_array_add(env, c) != 0) {
            json_object_put(c);
            goto out;
        }
        json_object_object_add(c, "name", json_object_new_string(bdy_jstr(e, "name")));
        json_object_object_add(
            c, "value", json_object_new_string(bdy_jstr(e, "value") ? bdy_jstr(e, "value") : ""));
    }
    for (size_t i = 0; i < d->nports; i++) {
        json_object *p = json_object_new_object();
        if (p == NULL || json_object_array_add(ports, p) != 0) {
            json_object_put(p);
            goto out;
        }
        json_object_object_add(p, "name", json_object_new_string(port_name(d, i)));
        json_object_object_add(
            p, "world",
            json_object_new_string(spec->ports[bm->first_port + k * d->nports + i].name));
    }
    json_object_object_add(o, "module", json_object_new_string(bm->name));
    json_object_object_add(o, "index", json_object_new_int((int)k));
    json_object_object_add(o, "command", json_object_new_string(d->command));
    json_object_object_add(o, "args", args);
    args = NULL;
    json_object_object_add(o, "env", env);
    env = NULL;
    json_object_object_add(o, "ports", ports);
    ports = NULL;
    if (d->working_dir != NULL)
        json_object_object_add(o, "workingDir", json_object_new_string(d->working_dir));
    json_object_object_add(o, "graceMs", json_object_new_int64(d->grace_ms));
    size_t len = 0;
    const char *text = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    if (text == NULL || len > (size_t)BDY_RUNTIME_MAX_ARG_BYTES / 4 * 3 - 3)
        goto out;
    if (bdy_base64_encode(text, len, &b64) != 0)
        goto out;
    result = json_object_new_string(b64);
out:
    free(b64);
    json_object_put(o);
    json_object_put(env);
    json_object_put(ports);
    json_object_put(args);
    return result;
}

static int build_booklet(const char *ns, const char *booklet_name, json_object *booklet,
                         bdy_worldspec_get_fn get, void *data, const char *host, bool starting,
                         bdy_worldspec *out, char *why, size_t why_cap)
{
    bdy_world_spec *spec = &out->spec;
    json_object *list = bdy_jget(bdy_jget(booklet, "spec"), "modules");
    size_t n = array_len(list);
    if (n == 0) {
        snprintf(why, why_cap, "Booklet %s/%s has no modules", ns, booklet_name);
        return BDY_EINVAL;
    }
    if (host == NULL || host[0] == '\0') {
        snprintf(why, why_cap, "Booklet %s/%s: no world host to run its modules", ns, booklet_name);
        return BDY_EUNSUPPORTED;
    }
    booklet_module *modules = calloc(n, sizeof(*modules));
    if (modules == NULL)
        return BDY_ENOMEM;
    int rc = 0;
    size_t instances = 0;
    for (size_t m = 0; m < n && rc == 0; m++) {
        json_object *entry = json_object_array_get_idx(list, m);
        booklet_module *bm = &modules[m];
        bm->name = bdy_jstr(entry, "name");
        const char *manifest_name = bdy_jstr(entry, "manifest");
        int64_t count = bdy_jint(entry, "count", 1);
        if (bm->name == NULL || manifest_name == NULL || count < 1 ||
            count > BDY_WORLDSPEC_MAX_INSTANCES) {
            snprintf(why, why_cap,
                     "Booklet %s/%s: spec.modules[%zu] needs a name, a manifest "
                     "and a count of 1 to %d",
                     ns, booklet_name, m, BDY_WORLDSPEC_MAX_INSTANCES);
            rc = BDY_EINVAL;
            break;
        }
        bm->count = (unsigned)count;
        instances += bm->count;
        json_object *manifest = NULL;
        rc = get(data, &BDY_GVR_MANIFESTS, manifest_name, &manifest);
        if (rc != 0) {
            snprintf(why, why_cap, "Booklet %s/%s: module %s: ModuleManifest %s/%s: %s", ns,
                     booklet_name, bm->name, ns, manifest_name, bdy_strerror(rc));
            break;
        }
        if (hold(out->held, manifest) == NULL) {
            rc = BDY_ENOMEM;
            break;
        }
        rc = module_read(ns, manifest_name, manifest, starting, &bm->def, why, why_cap);
        if (rc == 0)
            rc = bdy_worldspec_note_capabilities(out->capabilities, bm->def.ms);
        out->names_resources |= rc == 0 && bm->def.names_resources;
    }
    if (rc == 0 && instances > BDY_WORLDSPEC_MAX_INSTANCES) {
        snprintf(why, why_cap,
                 "Booklet %s/%s runs %zu module instances in all; embedded mode takes %d", ns,
                 booklet_name, instances, BDY_WORLDSPEC_MAX_INSTANCES);
        rc = BDY_EINVAL;
    }
    if (rc == 0)
        rc = name_ports(ns, booklet_name, modules, n, spec, why, why_cap);
    spec->grace_ms = 0;
    out->deadline_s = 0;
    /* The world's probe timing: probed as often as its most watchful
     * module asks, after the longest initial delay, and failed once its
     * probes have failed for as long as the least tolerant module allows
     * (period times threshold), since one failing check fails them all. */
    unsigned period_ms = 0;
    unsigned initial_delay_ms = 0;
    uint64_t tolerance_ms = 0;
    size_t arg_bytes = 0;
    for (size_t m = 0; m < n && rc == 0; m++) {
        booklet_module *bm = &modules[m];
        const module_def *d = &bm->def;
        long index = -1;
        if (d->probe.kind != BDY_PROBE_NONE && d->probe_port != NULL)
            rc = probe_port(ns, d, starting, &index, why, why_cap);
        if (rc == 0 && starting)
            rc = check_placeholders(ns, booklet_name, bm, spec, why, why_cap);
        /* The host runs each instance as its child: the end of one is the
         * end of the world (runtime.h). */
        spec->children += bm->count;
        for (unsigned k = 0; k < bm->count && rc == 0; k++) {
            /* The host's arguments are made to start the world only: a
             * world being probed needs its ports and probes. */
            json_object *arg = starting ? hold(out->held, host_argument(bm, k, spec)) : NULL;
            if (starting && arg == NULL) {
                snprintf(why, why_cap,
                         "Booklet %s/%s: module %s: its command, args and env take more than "
                         "%d bytes, or memory ran out",
                         ns, booklet_name, bm->name, BDY_RUNTIME_MAX_ARG_BYTES / 4 * 3);
                rc = BDY_EINVAL;
                break;
            }
            if (arg != NULL) {
                spec->args[spec->nargs++] = json_object_get_string(arg);
                arg_bytes += (size_t)json_object_get_string_len(arg) + 1;
            }
            if (d->probe.kind == BDY_PROBE_NONE)
                continue;
            if (spec->nreadiness == BDY_RUNTIME_MAX_PROBES) {
                snprintf(why, why_cap,
                         "Booklet %s/%s: its module instances have more than %d readiness "
                         "probes; embedded mode takes %d",
                         ns, booklet_name, BDY_RUNTIME_MAX_PROBES, BDY_RUNTIME_MAX_PROBES);
                rc = BDY_EINVAL;
                break;
            }
            size_t world_port = bm->first_port + k * d->nports + (size_t)index;
            add_probe(spec, d, index >= 0 ? spec->ports[world_port].name : NULL);
        }
        if (rc != 0)
            break;
        if (d->probe.kind != BDY_PROBE_NONE) {
            unsigned period = d->probe.period_ms ? d->probe.period_ms : DEFAULT_PERIOD_MS;
            unsigned threshold = d->probe.failure_threshold ? d->probe.failure_threshold : 3;
            if (period_ms == 0 || period < period_ms)
                period_ms = period;
            if (d->probe.initial_delay_ms > initial_delay_ms)
                initial_delay_ms = d->probe.initial_delay_ms;
            if (tolerance_ms == 0 || (uint64_t)period * threshold < tolerance_ms)
                tolerance_ms = (uint64_t)period * threshold;
        }
        if (d->grace_ms > spec->grace_ms)
            spec->grace_ms = d->grace_ms;
        if (d->deadline_s > out->deadline_s)
            out->deadline_s = d->deadline_s;
    }
    /* Linux takes about 2 MiB of arguments and environment in all (a
     * quarter of the default stack limit); past it the start would fail
     * with E2BIG, and say less than this. */
    if (rc == 0 && arg_bytes > HOST_ARGS_MAX) {
        snprintf(why, why_cap,
                 "Booklet %s/%s: its modules' commands, args and env take %zu bytes in all; "
                 "embedded mode takes %zu",
                 ns, booklet_name, arg_bytes, HOST_ARGS_MAX);
        rc = BDY_EINVAL;
    }
    if (rc == 0) {
        spec->grace_ms = grace_with_margin(spec->grace_ms);
        bdy_probe *timing = &spec->readiness[0];
        if (spec->nreadiness == 0) {
            timing->kind = BDY_PROBE_NONE;
            period_ms = DEFAULT_PERIOD_MS;
            tolerance_ms = (uint64_t)3 * DEFAULT_PERIOD_MS;
        }
        if (period_ms == 0) /* a probe always has a period; for the analyzer */
            period_ms = DEFAULT_PERIOD_MS;
        uint64_t threshold = (tolerance_ms + period_ms - 1) / period_ms;
        timing->period_ms = period_ms;
        timing->initial_delay_ms = initial_delay_ms;
        timing->failure_threshold = threshold > 1000000 ? 1000000u : (unsigned)threshold;
        out->period_ms = period_ms;
        spec->command = host;
        spec->relays_term = true;
    }
    free(modules);
    return rc;
}

static void note_missing(int rc, const char *kind, const char *ns, const char *name, char *why,
                         size_t why_cap)
{
    snprintf(why, why_cap, "%s %s/%s: %s", kind, ns, name, bdy_strerror(rc));
}

int bdy_worldspec_build(json_object *world, bdy_worldspec_get_fn get, void *data, const char *host,
                        bool starting, bdy_worldspec *out, char *why, size_t why_cap)
{
    memset(out, 0, sizeof(*out));
    out->period_ms = DEFAULT_PERIOD_MS;
    out->deadline_s = DEFAULT_DEADLINE_S;
    out->held = json_object_new_array();
    out->capabilities = out->held ? hold(out->held, json_object_new_array()) : NULL;
    if (out->capabilities == NULL) {
        snprintf(why, why_cap, "out of memory");
        return BDY_ENOMEM;
    }
    json_object *meta = bdy_jget(world, "metadata");
    json_object *wspec = bdy_jget(world, "spec");
    const char *ns = bdy_jstr(meta, "namespace");
    const char *manifest_name = bdy_jstr(wspec, "manifest");
    const char *booklet_name = bdy_jstr(wspec, "booklet");
    out->spec.ns = ns;
    out->spec.name = bdy_jstr(meta, "name");
    out->spec.uid = bdy_jstr(meta, "uid");
    if (ns == NULL || (manifest_name == NULL) == (booklet_name == NULL)) {
        snprintf(why, why_cap, "the world names neither a manifest nor a booklet");
        return BDY_EINVAL;
    }
    const bdy_gvr *gvr = manifest_name ? &BDY_GVR_MANIFESTS : &BDY_GVR_BOOKLETS;
    const char *source_name = manifest_name ? manifest_name : booklet_name;
    json_object *source = NULL;
    int rc = get(data, gvr, source_name, &source);
    if (rc != 0) {
        note_missing(rc, manifest_name ? "ModuleManifest" : "Booklet", ns, source_name, why,
                     why_cap);
        return rc;
    }
    if (hold(out->held, source) == NULL) {
        snprintf(why, why_cap, "out of memory");
        return BDY_ENOMEM;
    }
    if (manifest_name != NULL)
        return build_manifest(ns, manifest_name, source, starting, out, why, why_cap);
    return build_booklet(ns, booklet_name, source, get, data, host, starting, out, why, why_cap);
}

void bdy_worldspec_free(bdy_worldspec *ws)
{
    if (ws == NULL)
        return;
    json_object_put(ws->held);
    ws->held = NULL;
    ws->capabilities = NULL;
}

unsigned bdy_worldspec_grace_ms(json_object *world, bdy_worldspec_get_fn get, void *data,
                                unsigned default_ms)
{
    json_object *wspec = bdy_jget(world, "spec");
    const char *manifest_name = bdy_jstr(wspec, "manifest");
    const char *booklet_name = bdy_jstr(wspec, "booklet");
    unsigned default_s = default_ms / 1000;
    json_object *source = NULL;
    if (manifest_name != NULL) {
        if (get(data, &BDY_GVR_MANIFESTS, manifest_name, &source) != 0)
            return default_ms;
        unsigned ms =
            seconds_ms(bdy_jget(source, "spec"), "terminationGracePeriodSeconds", default_s);
        json_object_put(source);
        return ms;
    }
    if (booklet_name == NULL || get(data, &BDY_GVR_BOOKLETS, booklet_name, &source) != 0)
        return default_ms;
    json_object *list = bdy_jget(bdy_jget(source, "spec"), "modules");
    bool any = false;
    unsigned longest = 0;
    for (size_t i = 0; i < array_len(list); i++) {
        const char *name = bdy_jstr(json_object_array_get_idx(list, i), "manifest");
        json_object *m = NULL;
        if (name == NULL || get(data, &BDY_GVR_MANIFESTS, name, &m) != 0)
            continue;
        unsigned ms = seconds_ms(bdy_jget(m, "spec"), "terminationGracePeriodSeconds", default_s);
        json_object_put(m);
        any = true;
        if (ms > longest)
            longest = ms;
    }
    json_object_put(source);
    return grace_with_margin(any ? longest : default_ms);
}

/* ---- the host's side ------------------------------------------------------ */

static bool is_string(json_object *v)
{
    return json_object_is_type(v, json_type_string);
}

/* The strings of list (an array of at most max strings, or absent) into
 * out[]. */
static int take_strings(json_object *list, const char **out, size_t max, size_t *n,
                        const char *field, bdy_errbuf *eb)
{
    *n = 0;
    if (list == NULL)
        return 0;
    if (!json_object_is_type(list, json_type_array) || json_object_array_length(list) > max)
        return bdy_fail(eb, BDY_EINVAL, "%s: an array of at most %zu strings", field, max);
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        json_object *v = json_object_array_get_idx(list, i);
        if (!is_string(v))
            return bdy_fail(eb, BDY_EINVAL, "%s[%zu]: not a string", field, i);
        out[(*n)++] = json_object_get_string(v);
    }
    return 0;
}

static int parse_module(json_object *o, bdy_host_module *m, bdy_errbuf *eb)
{
    if (!json_object_is_type(o, json_type_object))
        return bdy_fail(eb, BDY_EINVAL, "not a JSON object");
    json_object *v = NULL;
    m->module = bdy_jstr(o, "module");
    m->command = bdy_jstr(o, "command");
    if (m->module == NULL || m->module[0] == '\0' || m->command == NULL || m->command[0] == '\0')
        return bdy_fail(eb, BDY_EINVAL, "module and command are required strings");
    if (!json_object_object_get_ex(o, "index", &v) || !json_object_is_type(v, json_type_int) ||
        json_object_get_int64(v) < 0 || json_object_get_int64(v) >= BDY_WORLDSPEC_MAX_INSTANCES)
        return bdy_fail(eb, BDY_EINVAL, "index: an integer from 0 to %d",
                        BDY_WORLDSPEC_MAX_INSTANCES - 1);
    m->index = (unsigned)json_object_get_int64(v);
    v = NULL;
    if (json_object_object_get_ex(o, "graceMs", &v) &&
        (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0 ||
         json_object_get_int64(v) > MAX_MANIFEST_MS))
        return bdy_fail(eb, BDY_EINVAL, "graceMs: an integer from 0 to %u", MAX_MANIFEST_MS);
    m->grace_ms = v ? (unsigned)json_object_get_int64(v) : DEFAULT_GRACE_S * 1000u;
    v = NULL;
    if (json_object_object_get_ex(o, "workingDir", &v) && !is_string(v))
        return bdy_fail(eb, BDY_EINVAL, "workingDir: not a string");
    m->working_dir = v ? json_object_get_string(v) : NULL;
    int rc =
        take_strings(bdy_jget(o, "args"), m->args, BDY_RUNTIME_MAX_ARGS, &m->nargs, "args", eb);
    if (rc != 0)
        return rc;
    json_object *env = bdy_jget(o, "env");
    if (env != NULL && (!json_object_is_type(env, json_type_array) ||
                        json_object_array_length(env) > BDY_RUNTIME_MAX_ENV))
        return bdy_fail(eb, BDY_EINVAL, "env: an array of at most %d entries", BDY_RUNTIME_MAX_ENV);
    for (size_t i = 0; i < array_len(env); i++) {
        json_object *e = json_object_array_get_idx(env, i);
        const char *name = bdy_jstr(e, "name");
        const char *value = bdy_jstr(e, "value");
        if (name == NULL || name[0] == '\0' || strchr(name, '=') != NULL || value == NULL)
            return bdy_fail(eb, BDY_EINVAL, "env[%zu]: a name without '=' and a value", i);
        m->env_names[m->nenv] = name;
        m->env_values[m->nenv++] = value;
    }
    json_object *ports = bdy_jget(o, "ports");
    if (ports != NULL && (!json_object_is_type(ports, json_type_array) ||
                          json_object_array_length(ports) > BDY_RUNTIME_MAX_PORTS))
        return bdy_fail(eb, BDY_EINVAL, "ports: an array of at most %d entries",
                        BDY_RUNTIME_MAX_PORTS);
    for (size_t i = 0; i < array_len(ports); i++) {
        json_object *p = json_object_array_get_idx(ports, i);
        const char *name = bdy_jstr(p, "name");
        const char *world = bdy_jstr(p, "world");
        if (name == NULL || name[0] == '\0' || world == NULL || world[0] == '\0')
            return bdy_fail(eb, BDY_EINVAL, "ports[%zu]: a name and a world port name", i);
        m->port_names[m->nports] = name;
        m->port_worlds[m->nports++] = world;
    }
    return 0;
}

int bdy_host_module_parse(const char *text, size_t len, bdy_host_module *out, bdy_errbuf *eb)
{
    memset(out, 0, sizeof(*out));
    if (len > BDY_RUNTIME_MAX_ARG_BYTES)
        return bdy_fail(eb, BDY_ETOOBIG, "longer than %d bytes", BDY_RUNTIME_MAX_ARG_BYTES);
    char *raw = NULL;
    size_t raw_len = 0;
    int rc = bdy_base64_decode(text, len, &raw, &raw_len);
    if (rc == BDY_ENOMEM)
        return bdy_fail(eb, rc, "out of memory");
    if (rc != 0)
        return bdy_fail(eb, BDY_EPARSE, "not base64");
    json_object *o = NULL;
    json_tokener *tok = json_tokener_new_ex(HOST_JSON_DEPTH);
    if (tok == NULL) {
        rc = bdy_fail(eb, BDY_ENOMEM, "out of memory");
        goto out;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    /* A NUL byte, or one escaped, would cut a string short. */
    bool nul = memchr(raw, '\0', raw_len) != NULL || bdy_json_text_escapes_nul(raw, raw_len);
    o = nul || !bdy_utf8_valid(raw, raw_len) ? NULL : json_tokener_parse_ex(tok, raw, (int)raw_len);
    if (o == NULL || json_tokener_get_error(tok) != json_tokener_success ||
        (size_t)json_tokener_get_parse_end(tok) != raw_len) {
        rc = bdy_fail(eb, BDY_EPARSE, "not one JSON object in UTF-8 without NUL characters");
        goto out;
    }
    rc = parse_module(o, out, eb);
    if (rc == 0) {
        out->held = o;
        o = NULL;
    } else {
        memset(out, 0, sizeof(*out));
    }
out:
    if (tok != NULL)
        json_tokener_free(tok);
    json_object_put(o);
    free(raw);
    return rc;
}

void bdy_host_module_free(bdy_host_module *m)
{
    if (m == NULL)
        return;
    json_object_put(m->held);
    m->held = NULL;
}
