#include "bindery/jsonutil.h"

#include "bindery/error.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
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

/* ---- what json-c lets through: leading zeros, duplicate keys ------------------- */

/* A key of an object being checked: a span of the text, or its decoded
 * copy when it holds escapes ("\u0070ool" is "pool"). */
typedef struct text_key {
    const char *p;
    size_t len;
    char *owned; /* p when decoded, else NULL */
} text_key;

typedef struct text_level {
    bool object;
    size_t first_key; /* its keys are keys[first_key..nkeys) */
} text_level;

typedef struct text_check {
    const char *t;
    size_t n;
    size_t i; /* the byte being looked at */
    bool no_duplicates;
    text_key *keys; /* of the objects open, innermost last; first in inline_keys */
    size_t nkeys, akeys;
    text_level *levels;
    size_t nlevels, alevels;
    char *why;
    size_t cap;
    /* A request body's few objects and keys need no allocation. */
    text_key inline_keys[16];
    text_level inline_levels[8];
} text_check;

/* arr (of *cap elements of size elem, at first the inline buffer
 * inline_buf) moved to room for twice as many, *cap updated; NULL when out
 * of memory (arr unchanged, and still the caller's). */
static void *grow_array(void *arr, const void *inline_buf, size_t *cap, size_t elem)
{
    size_t na = 2 * *cap;
    void *n = arr == inline_buf ? malloc(na * elem) : realloc(arr, na * elem);
    if (n == NULL)
        return NULL;
    if (arr == inline_buf)
        memcpy(n, inline_buf, *cap * elem);
    *cap = na;
    return n;
}

static int text_fail(text_check *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int text_fail(text_check *c, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, c->cap, fmt, ap);
    va_end(ap);
    return rc;
}

static int hex4(const char *p)
{
    int v = 0;
    for (int k = 0; k < 4; k++) {
        char ch = p[k];
        int d = ch >= '0' && ch <= '9'   ? ch - '0'
                : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                         : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Decodes the escapes of string body s (len bytes between its quotes) into
 * a new NUL-terminated buffer of *out_len bytes; NULL when out of memory or
 * an escape is bad. Never longer than s: an escape of 2, 6 or 12 bytes
 * becomes at most 1, 3 or 4. */
static char *decode_string(const char *s, size_t len, size_t *out_len)
{
    char *out = malloc(len + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '\\') {
            out[o++] = s[i];
            continue;
        }
        if (++i >= len)
            goto bad;
        static const char from[] = "\"\\/bfnrt";
        static const char to[] = "\"\\/\b\f\n\r\t";
        const char *e = s[i] != '\0' ? strchr(from, s[i]) : NULL;
        if (e != NULL) {
            out[o++] = to[e - from];
            continue;
        }
        if (s[i] != 'u' || len - i < 5) /* u and four hex digits */
            goto bad;
        long cp = hex4(s + i + 1);
        if (cp < 0)
            goto bad;
        i += 4; /* on the last hex digit */
        if (cp >= 0xD800 && cp <= 0xDBFF && len - i >= 7 && s[i + 1] == '\\' && s[i + 2] == 'u') {
            int lo = hex4(s + i + 3);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            }
        }
        /* A surrogate left unpaired is what json-c reads it as: U+FFFD. */
        if (cp >= 0xD800 && cp <= 0xDFFF)
            cp = 0xFFFD;
        if (cp < 0x80) {
            out[o++] = (char)cp;
        } else if (cp < 0x800) {
            out[o++] = (char)(0xC0 | (cp >> 6));
            out[o++] = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out[o++] = (char)(0xE0 | (cp >> 12));
            out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (cp & 0x3F));
        } else {
            out[o++] = (char)(0xF0 | (cp >> 18));
            out[o++] = (char)(0x80 | ((cp >> 12) & 0x3F));
            out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    out[o] = '\0';
    *out_len = o;
    return out;
bad:
    free(out);
    return NULL;
}

static int key_cmp(const void *a, const void *b)
{
    const text_key *x = a;
    const text_key *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int d = memcmp(x->p, y->p, n);
    return d != 0 ? d : (x->len > y->len) - (x->len < y->len);
}

/* The innermost object (level l) closes: a key twice is refused when
 * c->no_duplicates; its keys are dropped either way. */
static int close_object(text_check *c, const text_level *l)
{
    text_key *k = c->keys + l->first_key;
    size_t n = c->nkeys - l->first_key;
    int rc = 0;
    if (c->no_duplicates && n > 1) {
        qsort(k, n, sizeof(*k), key_cmp);
        for (size_t j = 1; j < n && rc == 0; j++)
            if (key_cmp(&k[j - 1], &k[j]) == 0)
                rc = text_fail(c, BDY_EEXISTS, "duplicate field \"%.*s\"",
                               (int)(k[j].len > 100 ? 100 : k[j].len), k[j].p);
    }
    for (size_t j = 0; j < n; j++)
        free(k[j].owned);
    c->nkeys = l->first_key;
    return rc;
}

/* The string whose opening quote is at c->i: skipped, and kept as a key
 * of the innermost object when is_key. */
static int scan_string(text_check *c, bool is_key)
{
    size_t start = ++c->i;
    bool escaped = false;
    while (c->i < c->n && c->t[c->i] != '"') {
        if (c->t[c->i] == '\\') {
            escaped = true;
            c->i++;
        }
        c->i++;
    }
    if (c->i >= c->n)
        return text_fail(c, BDY_EINVAL, "a string is not closed");
    size_t len = c->i - start;
    c->i++;
    if (!is_key || !c->no_duplicates)
        return 0;
    text_key k = {c->t + start, len, NULL};
    if (escaped) {
        if ((k.owned = decode_string(c->t + start, len, &k.len)) == NULL)
            return text_fail(c, BDY_EINVAL, "a key near offset %zu has a bad escape", start);
        k.p = k.owned;
    }
    if (c->nkeys == c->akeys) {
        text_key *grown = grow_array(c->keys, c->inline_keys, &c->akeys, sizeof(*c->keys));
        if (grown == NULL) {
            free(k.owned);
            return BDY_ENOMEM;
        }
        c->keys = grown;
    }
    c->keys[c->nkeys++] = k;
    return 0;
}

static bool is_digit(const char *t, size_t n, size_t i)
{
    return i < n && t[i] >= '0' && t[i] <= '9';
}

/* The number at c->i, as RFC 8259 writes one: -?(0|[1-9][0-9]*)(.[0-9]+)?
 * ([eE][+-]?[0-9]+)?, followed by no more of a number ("00", "1.", ".5",
 * "01" are not JSON). */
static int scan_number(text_check *c)
{
    const char *t = c->t;
    size_t n = c->n;
    size_t start = c->i;
    size_t i = start + (t[start] == '-');
    bool ok = is_digit(t, n, i);
    if (ok && t[i] == '0')
        i++;
    else
        while (is_digit(t, n, i))
            i++;
    if (ok && i < n && t[i] == '.') {
        ok = is_digit(t, n, ++i);
        while (is_digit(t, n, i))
            i++;
    }
    if (ok && i < n && (t[i] == 'e' || t[i] == 'E')) {
        i++;
        if (i < n && (t[i] == '+' || t[i] == '-'))
            i++;
        ok = is_digit(t, n, i);
        while (is_digit(t, n, i))
            i++;
    }
    ok = ok && !(i < n && strchr("0123456789.eE+-", t[i]) != NULL && t[i] != '\0');
    if (!ok) {
        size_t end = start;
        while (end < n && end - start < 40 && t[end] != '\0' &&
               strchr(",]} \t\r\n", t[end]) == NULL)
            end++;
        return text_fail(c, BDY_EINVAL, "the number %.*s at offset %zu is not JSON",
                         (int)(end - start), t + start, start);
    }
    c->i = i;
    return 0;
}

int bdy_json_text_check(const char *text, size_t len, bool no_duplicates, char *why, size_t cap)
{
    text_check c = {.t = text, .n = len, .no_duplicates = no_duplicates, .why = why, .cap = cap};
    c.keys = c.inline_keys;
    c.akeys = sizeof(c.inline_keys) / sizeof(c.inline_keys[0]);
    c.levels = c.inline_levels;
    c.alevels = sizeof(c.inline_levels) / sizeof(c.inline_levels[0]);
    int rc = 0;
    bool want_key = false; /* the next string of the innermost object is a key */
    while (rc == 0 && c.i < c.n) {
        char ch = c.t[c.i];
        if (ch == '"') {
            rc = scan_string(&c, want_key);
            want_key = false;
        } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
            rc = scan_number(&c);
        } else if (ch == '{' || ch == '[') {
            if (c.nlevels == c.alevels) {
                text_level *grown =
                    grow_array(c.levels, c.inline_levels, &c.alevels, sizeof(*c.levels));
                if (grown == NULL) {
                    rc = BDY_ENOMEM;
                    break;
                }
                c.levels = grown;
            }
            c.levels[c.nlevels++] = (text_level){ch == '{', c.nkeys};
            want_key = ch == '{';
            c.i++;
        } else if (ch == '}' || ch == ']') {
            c.i++;
            if (c.nlevels == 0)
                break; /* unbalanced: the parser run before says so */
            text_level l = c.levels[--c.nlevels];
            if (l.object)
                rc = close_object(&c, &l);
            want_key = false;
        } else if (ch == ',') {
            want_key = c.nlevels > 0 && c.levels[c.nlevels - 1].object;
            size_t next = ++c.i;
            while (next < c.n && strchr(" \t\r\n", c.t[next]) != NULL && c.t[next] != '\0')
                next++;
            if (next < c.n && (c.t[next] == '}' || c.t[next] == ']'))
                rc = text_fail(&c, BDY_EINVAL, "a comma before the %c at offset %zu is not JSON",
                               c.t[next], next);
        } else if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == ':') {
            c.i++;
        } else {
            /* What json-c reads but JSON has not: single-quoted strings
             * (keys too: a key the duplicate check would not see),
             * comments, bare words. */
            static const char *const words[] = {"true", "false", "null"};
            size_t w = 0;
            while (w < 3 && !(c.n - c.i >= strlen(words[w]) &&
                              memcmp(c.t + c.i, words[w], strlen(words[w])) == 0))
                w++;
            if (w == 3) {
                unsigned char u = (unsigned char)ch;
                rc = u >= 0x21 && u < 0x7f
                         ? text_fail(&c, BDY_EINVAL, "'%c' at offset %zu is not JSON", ch, c.i)
                         : text_fail(&c, BDY_EINVAL, "byte 0x%02x at offset %zu is not JSON", u,
                                     c.i);
            } else {
                c.i += strlen(words[w]);
            }
        }
    }
    c.no_duplicates = false; /* what is left open is only freed */
    while (c.nlevels > 0) {
        text_level l = c.levels[--c.nlevels];
        if (l.object)
            close_object(&c, &l);
    }
    if (c.keys != c.inline_keys)
        free(c.keys);
    if (c.levels != c.inline_levels)
        free(c.levels);
    return rc;
}
