/* Fuzzes the claim body parser (POST /v1/allocations): bytes in, a parsed
 * request or a named error out, never a crash or a leak. A successful
 * parse must give a pool name and a wait in range. */
#include "bindery/claims.h"
#include "fuzz_text.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size, 70000);
    if (text == NULL)
        return 0;
    bdy_claim_request r;
    char why[600];
    if (bdy_claim_request_parse(text, size, &r, why, sizeof(why)) == 0) {
        if (r.pool[0] == '\0' || r.wait_s > BDY_CLAIM_MAX_WAIT_S ||
            r.nselectors > BDY_CLAIM_MAX_SELECTORS)
            abort();
        bdy_claim_request_free(&r);
    } else if (why[0] == '\0') {
        abort(); /* every refusal says why */
    }
    free(text);
    return 0;
}
