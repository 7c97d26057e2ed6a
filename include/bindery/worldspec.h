/* What a world runs, as a runtime spec (runtime.h): its ModuleManifest's
 * spec.local as one process, or its Booklet's modules, each as many times
 * as its count says, run by one host process (bindery-world-host) that
 * starts them all and ends the world when one of them ends.
 *
 * A booklet world's ports are its modules' ports. A port keeps its
 * manifest's name when no other module of the booklet has a port of that
 * name and its module runs once; otherwise it is "<module>-<port>", or
 * "<module>-<i>-<port>" for instance i (from 0) of a module that runs more
 * than once. A name longer than 15 characters (a Pod's limit too), more
 * than BDY_RUNTIME_MAX_PORTS ports, or more module instances than the host
 * takes make the world fail to start, with the reason.
 *
 * In a module's args and env values, {port:NAME} names the module's own
 * port NAME first, else a port of the world by its world name (a game
 * server told its voice module's port, say); each module also gets
 * BINDERY_PORT_<NAME> for its own ports under their manifest names,
 * BINDERY_MODULE and BINDERY_MODULE_INDEX. The world is ready when every
 * module instance passes its own readiness probe.
 *
 * Thread-safety: none needed; every call works on its arguments only.
 */
#ifndef BINDERY_WORLDSPEC_H
#define BINDERY_WORLDSPEC_H

#include "bindery/error.h"
#include "bindery/runtime.h"
#include "bindery/store.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

/* Module instances one booklet world may run: the host takes one argument
 * each. */
#define BDY_WORLDSPEC_MAX_INSTANCES BDY_RUNTIME_MAX_ARGS

/* Reads object name of kind gvr in the world's namespace: 0 and *out (the
 * caller's reference), BDY_ENOTFOUND, or another store error. */
typedef int (*bdy_worldspec_get_fn)(void *data, const bdy_gvr *gvr, const char *name,
                                    json_object **out);

typedef struct bdy_worldspec {
    /* Strings point into held. readiness[0] also carries the world's probe
     * timing: for a booklet world the shortest period and failure
     * threshold and the longest initial delay of its modules' probes. */
    bdy_world_spec spec;
    unsigned period_ms;  /* between readiness probes */
    unsigned deadline_s; /* to be Ready after the start (startDeadlineSeconds, the longest) */
    /* The capabilities its manifests require (spec.capabilities), each name
     * once, in the order met: strings, in held. bdy_capabilities_bind
     * (capability.h) binds them before the world may start. */
    json_object *capabilities;
    /* A manifest of it names resources (requests or limits): the process
     * runtime applies none, so the caller says so. */
    bool names_resources;
    json_object *held; /* owns what spec points into; the caller's to put */
} bdy_worldspec;

/* Builds the spec of world (a WorldInstance as stored) into *out; strings
 * in out->spec point into out->held, which the caller puts (bdy_worldspec_free)
 * also after an error. host is the world host's path, for booklet worlds.
 * starting: refuse lists longer than the runtime takes, and a readiness
 * port that names no port (a world already running is probed as far as
 * its spec goes). Errors, with the reason in why: BDY_ENOTFOUND (a manifest
 * or booklet missing), BDY_EINVAL (one that embedded mode cannot run),
 * or a store error from get. */
int bdy_worldspec_build(json_object *world, bdy_worldspec_get_fn get, void *data, const char *host,
                        bool starting, bdy_worldspec *out, char *why, size_t why_cap);
void bdy_worldspec_free(bdy_worldspec *ws);

/* Adds the capabilities a ModuleManifest's spec requires
 * (spec.capabilities) to names, an array of strings, each name once, in
 * the order met. 0 or BDY_ENOMEM. */
int bdy_worldspec_note_capabilities(json_object *names, json_object *manifest_spec);

/* The grace period of the world (terminationGracePeriodSeconds; a booklet
 * world's longest module's, and 2 s for its host to end the modules left
 * and exit), default_ms when nothing says (the manifest gone). */
unsigned bdy_worldspec_grace_ms(json_object *world, bdy_worldspec_get_fn get, void *data,
                                unsigned default_ms);

/* ---- the host's side ------------------------------------------------------ */

/* One module instance as the host runs it, from one of its arguments:
 * base64 of a JSON object, so that the runtime, which replaces placeholders
 * in every argument by the world's port names, finds none in it; the host
 * replaces a module's by its own (bdy_worldspec above). Strings point into
 * held; args and env values still hold their placeholders. */
typedef struct bdy_host_module {
    const char *module;
    unsigned index;
    const char *command;
    const char *args[BDY_RUNTIME_MAX_ARGS];
    size_t nargs;
    const char *env_names[BDY_RUNTIME_MAX_ENV];
    const char *env_values[BDY_RUNTIME_MAX_ENV];
    size_t nenv;
    const char *working_dir; /* NULL: the host's own */
    unsigned grace_ms;
    /* The module's own ports: port_names[i] (its manifest's name) is the
     * world's port port_worlds[i]. */
    const char *port_names[BDY_RUNTIME_MAX_PORTS];
    const char *port_worlds[BDY_RUNTIME_MAX_PORTS];
    size_t nports;
    json_object *held;
} bdy_host_module;

/* The world host's exit status when a module's program could not be run
 * (not found, not executable, its workingDir missing), or the host could
 * not set up: what a shell says for a command it cannot run. bindery reads
 * it as the world's StartError, as it does a plain world's failed spawn. */
#define BDY_WORLD_HOST_CANNOT_RUN 127

/* Parses one host argument (len bytes, at most BDY_RUNTIME_MAX_ARG_BYTES)
 * into *out. BDY_EPARSE, BDY_EINVAL, BDY_ETOOBIG or BDY_ENOMEM with the
 * reason in eb; out->held is NULL then. */
int bdy_host_module_parse(const char *text, size_t len, bdy_host_module *out, bdy_errbuf *eb);
void bdy_host_module_free(bdy_host_module *m);

#endif
