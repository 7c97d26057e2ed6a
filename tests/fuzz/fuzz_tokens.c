/* Fuzz driver: bytes → token file → bdy_auth_load(), then lookups on what
 * loaded.
 *
 * bdy_auth_load() reads a path, so the bytes go into a memfd opened once per
 * process and read back through /proc/self/fd (no disk traffic per input).
 * Loading must succeed or fail with a documented code and a message that
 * names the file; a loaded set must answer lookups without crashing.
 */
#include "bindery/auth.h"
#include "bindery/error.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int memfd = -1;
static char path[64];

static void write_input(const uint8_t *data, size_t size)
{
    if (memfd < 0) {
        memfd = memfd_create("fuzz_tokens", 0);
        if (memfd < 0)
            abort();
        snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
    }
    if (ftruncate(memfd, 0) != 0 || lseek(memfd, 0, SEEK_SET) != 0)
        abort();
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(memfd, data + done, size - done);
        if (n <= 0)
            abort();
        done += (size_t)n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bdy_auth *a = NULL;
    bdy_errbuf eb;

    write_input(data, size);
    bdy_errbuf_clear(&eb);
    int rc = bdy_auth_load(path, &a, &eb);
    if (rc != 0) {
        if (a != NULL)
            abort();
        if (rc != BDY_EINVAL && rc != BDY_EPARSE && rc != BDY_ETOOBIG && rc != BDY_ENOMEM)
            abort();
        if (strstr(eb.message, path) == NULL)
            abort();
        return 0;
    }
    if (bdy_auth_count(a) > BDY_AUTH_MAX_TOKENS)
        abort();
    /* "test" is the token whose hash the seeds use. */
    static const char *const headers[] = {"Bearer test", "Bearer x", "bearer  test ", "Basic x"};
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        const bdy_principal *p = bdy_auth_authenticate(a, headers[i]);
        if (p == NULL)
            continue;
        if (bdy_principal_name(p)[0] == '\0')
            abort();
        (void)bdy_principal_allows(p, BDY_VERB_ALLOCATE, "default");
        (void)bdy_principal_allows(p, BDY_VERB_READ, NULL);
        unsigned retry = 0;
        if (!bdy_principal_take(p, &retry) && retry == 0)
            abort();
    }
    /* A client certificate's entry: found by its common name only, and
     * its copy still granted by the set it came from. */
    static const char *const names[] = {"lobby.games.example", "x", "test", ""};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const bdy_principal *p = bdy_auth_authenticate_certificate(a, names[i]);
        if (p == NULL)
            continue;
        if (p == bdy_auth_authenticate(a, "Bearer test"))
            abort(); /* one entry cannot be both a token and a certificate */
        bdy_principal *copy = bdy_principal_copy(p);
        if (copy != NULL && !bdy_auth_still_grants(a, copy))
            abort();
        bdy_principal_free(copy);
    }
    bdy_auth_free(a);
    return 0;
}
