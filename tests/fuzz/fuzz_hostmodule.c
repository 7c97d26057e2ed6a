/* Fuzz driver for the world host's reading of one argument
 * (bdy_host_module_parse, reconciler/worldspec.c): base64 of a JSON object
 * that bindery wrote from a Booklet's modules' manifests, which any client
 * allowed to write them controls.
 *
 * Whatever the bytes, the parse must fail cleanly (nothing held) or give a
 * module within the runtime's limits, every string present, and the same
 * answer twice.
 */
#include "bindery/worldspec.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check(const bdy_host_module *m)
{
    if (m->module == NULL || m->command == NULL || m->command[0] == '\0' ||
        m->index >= BDY_WORLDSPEC_MAX_INSTANCES || m->nargs > BDY_RUNTIME_MAX_ARGS ||
        m->nenv > BDY_RUNTIME_MAX_ENV || m->nports > BDY_RUNTIME_MAX_PORTS)
        abort();
    for (size_t i = 0; i < m->nargs; i++)
        if (m->args[i] == NULL)
            abort();
    for (size_t i = 0; i < m->nenv; i++)
        if (m->env_names[i] == NULL || m->env_names[i][0] == '\0' ||
            strchr(m->env_names[i], '=') != NULL || m->env_values[i] == NULL)
            abort();
    for (size_t i = 0; i < m->nports; i++)
        if (m->port_names[i] == NULL || m->port_worlds[i] == NULL)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bdy_host_module *a = malloc(sizeof(*a));
    bdy_host_module *b = malloc(sizeof(*b));
    if (a == NULL || b == NULL) {
        free(a);
        free(b);
        return 0;
    }
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy_host_module_parse((const char *)data, size, a, &eb);
    if (rc != 0 && (a->held != NULL || eb.message[0] == '\0'))
        abort();
    if (rc == 0) {
        check(a);
        bdy_errbuf_clear(&eb);
        if (bdy_host_module_parse((const char *)data, size, b, &eb) != 0 ||
            strcmp(a->command, b->command) != 0 || a->nargs != b->nargs || a->nenv != b->nenv ||
            a->nports != b->nports || a->index != b->index)
            abort();
        bdy_host_module_free(b);
    }
    bdy_host_module_free(a);
    free(a);
    free(b);
    return 0;
}
