/* Fuzz driver for the process environment parser of reconciler/runtime_procfs.c,
 * which reads /proc/PID/environ of every process of Bindery's user.
 *
 * Whatever the bytes, the parse must stay within them and give an identity
 * whose strings are terminated and within their limits, ports in 1-65535
 * named BINDERY_PORT_*, a count of children only for a relaying world and
 * within BDY_RUNTIME_MAX_ARGS, and the same answer twice.
 */
#include "../../reconciler/runtime_internal.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check(const bdy__stray *s)
{
    if (strnlen(s->uid, sizeof(s->uid)) == sizeof(s->uid) ||
        strnlen(s->ns, sizeof(s->ns)) == sizeof(s->ns) ||
        strnlen(s->name, sizeof(s->name)) == sizeof(s->name) || s->nports > BDY_RUNTIME_MAX_PORTS ||
        s->children > BDY_RUNTIME_MAX_ARGS || (s->children > 0 && !s->relays_term))
        abort();
    for (size_t i = 0; i < s->nports; i++) {
        const char *env = s->ports[i].env;
        if (strnlen(env, sizeof(s->ports[i].env)) == sizeof(s->ports[i].env) ||
            strncmp(env, BDY__PORT_ENV_PREFIX, sizeof(BDY__PORT_ENV_PREFIX) - 1) != 0 ||
            s->ports[i].port == 0 || s->ports[i].port > 65535)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bdy__stray *a = malloc(sizeof(*a));
    bdy__stray *b = malloc(sizeof(*b));
    if (a == NULL || b == NULL) {
        free(a);
        free(b);
        return 0;
    }
    bool found = bdy__stray_parse_environ((const char *)data, size, a);
    check(a);
    if (found && (a->uid[0] == '\0' || a->ns[0] == '\0' || a->name[0] == '\0'))
        abort();
    if (bdy__stray_parse_environ((const char *)data, size, b) != found ||
        memcmp(a, b, sizeof(*a)) != 0)
        abort();
    free(a);
    free(b);
    return 0;
}
