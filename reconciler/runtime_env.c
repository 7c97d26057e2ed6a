/* What a world's process is started with (see runtime_internal.h): its
 * environment, and the placeholders in its args and env values. The
 * process runtime builds them for a world's own process, the world host for
 * each module of a booklet world, by the same rules. */
#include "bindery/util.h"
#include "runtime_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bdy__env_set(bdy__env *env, const char *name, const char *value)
{
    size_t nlen = strlen(name);
    char *var = NULL;
    if (asprintf(&var, "%s=%s", name, value) < 0)
        return BDY_ENOMEM;
    for (size_t i = 0; i < env->n; i++) {
        if (strncmp(env->vars[i], name, nlen) == 0 && env->vars[i][nlen] == '=') {
            free(env->vars[i]);
            env->vars[i] = var;
            return 0;
        }
    }
    if (env->max != 0 && env->n == env->max) {
        free(var);
        return BDY_ETOOBIG;
    }
    if (env->n + 2 > env->cap) {
        size_t cap = env->cap ? env->cap * 2 : 32;
        char **grown = realloc(env->vars, cap * sizeof(*grown));
        if (grown == NULL) {
            free(var);
            return BDY_ENOMEM;
        }
        env->vars = grown;
        env->cap = cap;
    }
    env->vars[env->n++] = var;
    env->vars[env->n] = NULL;
    return 0;
}

char **bdy__env_vars(bdy__env *env)
{
    static char *none[] = {NULL};
    return env->n > 0 ? env->vars : none;
}

void bdy__env_free(bdy__env *env)
{
    for (size_t i = 0; i < env->n; i++)
        free(env->vars[i]);
    free(env->vars);
    env->vars = NULL;
    env->n = 0;
    env->cap = 0;
}

int bdy__expand(const char *text, const char *ns, const char *name, bdy__port_lookup_fn lookup,
                void *data, char **out, bdy_errbuf *eb)
{
    int rc = 0;
    bdy_buf b;
    bdy_buf_init(&b, BDY_RUNTIME_MAX_ARG_BYTES);
    const char *p = text;
    for (;;) {
        const char *close = strchr(p, '}');
        const char *open = close ? memrchr(p, '{', (size_t)(close - p)) : NULL;
        if (open == NULL) {
            rc = close ? bdy_buf_append(&b, p, (size_t)(close - p) + 1) : bdy_buf_appends(&b, p);
            if (rc != 0 || close == NULL)
                break;
            p = close + 1;
            continue;
        }
        rc = bdy_buf_append(&b, p, (size_t)(open - p));
        if (rc != 0)
            break;
        const char *key = open + 1;
        size_t len = (size_t)(close - key);
        bool shell = open > text && open[-1] == '$'; /* ${...} is the shell's */
        if (!shell && len == 4 && memcmp(key, "name", 4) == 0) {
            rc = bdy_buf_appends(&b, name);
        } else if (!shell && len == 9 && memcmp(key, "namespace", 9) == 0) {
            rc = bdy_buf_appends(&b, ns);
        } else if (!shell && len > 5 && memcmp(key, "port:", 5) == 0) {
            unsigned port = 0;
            if (lookup(data, key + 5, len - 5, &port) != 0) {
                rc = bdy_fail(eb, BDY_EINVAL, "placeholder {%.*s} names no port of the world",
                              (int)len, key);
                goto out;
            }
            rc = bdy_buf_printf(&b, "%u", port);
        } else {
            rc = bdy_buf_append(&b, open, len + 2);
        }
        if (rc != 0)
            break;
        p = close + 1;
    }
    if (rc == BDY_ETOOBIG)
        rc = bdy_fail(eb, rc, "an argument or env value is longer than %d bytes",
                      BDY_RUNTIME_MAX_ARG_BYTES);
    else if (rc != 0)
        rc = bdy_fail(eb, rc, "out of memory");
    else
        *out = bdy_buf_steal(&b);
out:
    bdy_buf_free(&b);
    return rc;
}
