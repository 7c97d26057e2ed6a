#include "bindery/jsonutil.h"

json_object *bdy_jget(json_object *obj, const char *key)
{
    json_object *v = NULL;
    if (obj == NULL || !json_object_is_type(obj, json_type_object) ||
        !json_object_object_get_ex(obj, key, &v))
        return NULL;
    return v;
}

const char *bdy_jstr(json_object *obj, const char *key)
{
    json_object *v = bdy_jget(obj, key);
    return v != NULL && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

int64_t bdy_jint(json_object *obj, const char *key, int64_t dflt)
{
    json_object *v = bdy_jget(obj, key);
    if (v == NULL ||
        !(json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
        return dflt;
    return json_object_get_int64(v);
}
