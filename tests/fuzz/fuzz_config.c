/* Fuzz driver: bytes → bdy_config_from_text().
 *
 * A config either loads (and then every path in it is absolute) or fails
 * with a documented code and a message that names the file; never a crash,
 * hang or leak. The overrides are exercised on every config that loads.
 */
#include "bindery/config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NAME "fuzz.yaml"

static void check_absolute(const char *path)
{
    if (path != NULL && path[0] != '/')
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bdy_config *cfg = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy_config_from_text((const char *)data, size, NAME, "/srv/bindery", &cfg, &eb);
    if (rc != 0) {
        if (cfg != NULL)
            abort();
        if (rc != BDY_EINVAL && rc != BDY_EPARSE && rc != BDY_ETOOBIG && rc != BDY_ENOMEM)
            abort();
        if (strncmp(eb.message, NAME, strlen(NAME)) != 0)
            abort();
        return 0;
    }
    check_absolute(cfg->data_dir);
    check_absolute(cfg->auth.token_file);
    for (size_t i = 0; i < cfg->crds.count; i++)
        check_absolute(cfg->crds.items[i]);
    for (size_t i = 0; i < cfg->manifests.count; i++)
        check_absolute(cfg->manifests.items[i]);
    if (cfg->http.threads < 1 || cfg->http.threads > 64)
        abort();

    /* The first line of the input doubles as a --listen value. */
    char flag[128];
    size_t n = 0;
    while (n < size && n + 1 < sizeof(flag) && data[n] != '\n' && data[n] != '\0') {
        flag[n] = (char)data[n];
        n++;
    }
    flag[n] = '\0';
    if (bdy_config_override_listen(cfg, flag, &eb) == 0 && strcmp(cfg->listen, flag) != 0)
        abort();
    bdy_config_free(cfg);
    return 0;
}
