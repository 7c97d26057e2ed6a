#include "bindery/jsonutil.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

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
    if (v != NULL && json_object_is_type(v, json_type_int))
        return json_object_get_int64(v);
    /* A double only when it is a whole number an int64 holds: 1.9 is no
     * count, and json-c's cast of NaN or 1e300 is undefined behaviour. */
    if (v != NULL && json_object_is_type(v, json_type_double)) {
        double d = json_object_get_double(v);
        if (isfinite(d) && d == floor(d) && d >= -9.2e18 && d <= 9.2e18)
            return (int64_t)d;
    }
    return dflt;
}

bool bdy_json_same_value(json_object *a, json_object *b)
{
    enum json_type ta = json_object_get_type(a);
    enum json_type tb = json_object_get_type(b);
    bool na = ta == json_type_int || ta == json_type_double;
    bool nb = tb == json_type_int || tb == json_type_double;

    if (na && nb && ta != tb)
        return json_object_get_double(a) == json_object_get_double(b);
    if (ta != tb)
        return false;
    if (ta == json_type_object) {
        struct json_object_iter it;
        if (json_object_object_length(a) != json_object_object_length(b))
            return false;
        json_object_object_foreachC(a, it)
        {
            json_object *other = NULL;
            if (!json_object_object_get_ex(b, it.key, &other) ||
                !bdy_json_same_value(it.val, other))
                return false;
        }
        return true;
    }
    if (ta == json_type_array) {
        size_t n = json_object_array_length(a);
        if (n != json_object_array_length(b))
            return false;
        for (size_t i = 0; i < n; i++) {
            if (!bdy_json_same_value(json_object_array_get_idx(a, i),
                                     json_object_array_get_idx(b, i)))
                return false;
        }
        return true;
    }
    return json_object_equal(a, b) != 0;
}

bool bdy_json_depth_within(json_object *v, int max)
{
    bool is_object = json_object_is_type(v, json_type_object);
    if (!is_object && !json_object_is_type(v, json_type_array))
        return true;
    if (max <= 0)
        return false;
    if (is_object) {
        json_object_object_foreach(v, key, member)
        {
            (void)key;
            if (!bdy_json_depth_within(member, max - 1))
                return false;
        }
        return true;
    }
    for (size_t i = 0, n = json_object_array_length(v); i < n; i++)
        if (!bdy_json_depth_within(json_object_array_get_idx(v, i), max - 1))
            return false;
    return true;
}

bool bdy_json_text_escapes_nul(const char *text, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (text[i] != '\\')
            continue;
        if (text[i + 1] == 'u' && i + 6 <= len && memcmp(text + i + 2, "0000", 4) == 0)
            return true;
        i++; /* the escaped character */
    }
    return false;
}

bool bdy_json_numbers_finite(json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_double:
        return isfinite(json_object_get_double(v));
    case json_type_object: {
        json_object_object_foreach(v, key, member)
        {
            (void)key;
            if (!bdy_json_numbers_finite(member))
                return false;
        }
        return true;
    }
    case json_type_array:
        for (size_t i = 0, n = json_object_array_length(v); i < n; i++)
            if (!bdy_json_numbers_finite(json_object_array_get_idx(v, i)))
                return false;
        return true;
    default:
        return true;
    }
}

/* Nesting the stored-text parser allows: above what any write may store. */
#define STORED_PARSE_DEPTH (2 * BDY_JSON_MAX_DEPTH)

/* One tokener per thread, freed when the thread exits. */
static pthread_key_t tokener_key;
static pthread_once_t tokener_once = PTHREAD_ONCE_INIT;
static bool tokener_key_ok;

static void tokener_free(void *tok)
{
    json_tokener_free(tok);
}

static void tokener_key_create(void)
{
    tokener_key_ok = pthread_key_create(&tokener_key, tokener_free) == 0;
}

json_object *bdy_json_parse_stored(const char *text)
{
    if (text == NULL)
        return NULL;
    pthread_once(&tokener_once, tokener_key_create);
    json_tokener *tok = tokener_key_ok ? pthread_getspecific(tokener_key) : NULL;
    bool kept = tok != NULL;
    if (!kept) {
        if ((tok = json_tokener_new_ex(STORED_PARSE_DEPTH)) == NULL)
            return NULL;
        /* Without a per-thread slot the tokener serves this call only. */
        kept = tokener_key_ok && pthread_setspecific(tokener_key, tok) == 0;
    }
    json_tokener_reset(tok);
    json_object *o = json_tokener_parse_ex(tok, text, -1);
    if (json_tokener_get_error(tok) != json_tokener_success) {
        json_object_put(o);
        o = NULL;
    }
    if (!kept)
        json_tokener_free(tok);
    return o;
}
