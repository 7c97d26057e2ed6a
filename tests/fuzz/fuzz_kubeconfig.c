/* Fuzzes the kubeconfig parser: bytes in, a resolved configuration or a
 * named error out, never a crash or a leak. It reads no files. A success
 * must carry an http(s) server and a context name. */
#include "bindery/kubeconfig.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > BDY_KUBECONFIG_MAX_BYTES)
        return 0;
    bdy_kubeconfig kc;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    int rc = bdy_kubeconfig_parse((const char *)data, size, "/nonexistent", NULL, &kc, &eb);
    if (rc == 0) {
        if (kc.server == NULL || kc.context == NULL ||
            (strncmp(kc.server, "http://", 7) != 0 && strncmp(kc.server, "https://", 8) != 0))
            abort();
        bdy_kubeconfig_free(&kc);
    } else if (eb.message[0] == '\0' && rc != BDY_ENOMEM) {
        abort(); /* every refusal says why */
    }
    return 0;
}
