/* What every runtime backend shares: freeing the interface and the checks
 * on a world's identity. */
#include "bindery/runtime.h"
#include "runtime_internal.h"

#include <stdlib.h>
#include <string.h>

static int check_one(const char *what, const char *s, size_t max, bdy_errbuf *eb)
{
    if (s == NULL || s[0] == '\0')
        return bdy_fail(eb, BDY_EINVAL, "world %s is empty", what);
    size_t len = strnlen(s, max + 1);
    if (len > max)
        return bdy_fail(eb, BDY_EINVAL, "world %s is longer than %zu characters", what, max);
    if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return bdy_fail(eb, BDY_EINVAL, "world %s \"%s\" is not allowed", what, s);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '/' || c < 0x20 || c == 0x7f)
            return bdy_fail(eb, BDY_EINVAL, "world %s contains '/' or a control character", what);
    }
    return 0;
}

int bdy__runtime_check_names(const char *ns, const char *name, bdy_errbuf *eb)
{
    int rc = check_one("namespace", ns, BDY__WORLD_NS_MAX, eb);
    if (rc == 0)
        rc = check_one("name", name, BDY__WORLD_NAME_MAX, eb);
    return rc;
}

void bdy_runtime_free(bdy_runtime *rt)
{
    if (rt == NULL)
        return;
    if (rt->vt != NULL && rt->vt->destroy != NULL)
        rt->vt->destroy(rt->ctx);
    free(rt);
}
