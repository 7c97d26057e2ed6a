/* The facts of a built-in core/v1 resource ("secrets", "pods") as the
 * embedded store's registry holds them, for unit tests of code that takes
 * a bdy_resource_info: the real entry, not a copy that could drift from it.
 * Include after cmocka.h. */
#ifndef BINDERY_TESTS_BUILTIN_INFO_H
#define BINDERY_TESTS_BUILTIN_INFO_H

#include "../../reconciler/registry.h"
#include "bindery/store.h"

static bdy_resource_info builtin_info(const char *resource)
{
    bdy__registry r;
    bdy_resource_info info;
    if (bdy__registry_init(&r) != 0)
        fail_msg("cannot make a registry");
    int rc = bdy__registry_lookup(&r, "", resource, &info);
    bdy__registry_destroy(&r);
    if (rc != 0)
        fail_msg("no built-in resource %s", resource);
    return info;
}

#endif
