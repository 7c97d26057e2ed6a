/* A store of a few objects for the world-spec and capability tests: a
 * bdy_worldspec_get_fn over JSON texts kept by kind (the resource) and
 * name. A name "unreadable" answers BDY_EIO, as a store that cannot
 * answer now. Include after cmocka.h. */
#ifndef BINDERY_TESTS_FAKE_STORE_H
#define BINDERY_TESTS_FAKE_STORE_H

#include "bindery/error.h"
#include "bindery/store.h"

#include <json-c/json.h>
#include <string.h>

typedef struct fake_store {
    const char *kinds[8];
    const char *names[8];
    const char *texts[8];
    size_t n;
    unsigned gets;
} fake_store;

static void put(fake_store *fs, const char *kind, const char *name, const char *json)
{
    fs->kinds[fs->n] = kind;
    fs->names[fs->n] = name;
    fs->texts[fs->n++] = json;
}

static int fake_get(void *data, const bdy_gvr *gvr, const char *name, json_object **out)
{
    fake_store *fs = data;
    fs->gets++;
    if (strcmp(name, "unreadable") == 0)
        return BDY_EIO;
    for (size_t i = 0; i < fs->n; i++)
        if (strcmp(fs->kinds[i], gvr->resource) == 0 && strcmp(fs->names[i], name) == 0) {
            *out = json_tokener_parse(fs->texts[i]);
            assert_non_null(*out);
            return 0;
        }
    return BDY_ENOTFOUND;
}

#endif
