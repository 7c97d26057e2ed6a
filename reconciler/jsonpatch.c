/* JSON merge patch (RFC 7386) and JSON patch (RFC 6902) with JSON pointers
 * (RFC 6901) over json-c.
 *
 * Both entry points work on private deep copies, so callers may keep using
 * (and sharing between threads) the documents they pass in. json-c spells the
 * JSON value null as a NULL pointer, which is why "exists" is always decided
 * by json_object_object_get_ex()'s return value or an array bound, never by
 * the pointer it yields.
 */
#include "bindery/jsonpatch.h"

#include "bindery/jsonutil.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Paths quoted in error messages are cut to this many bytes so the reason
 * still fits in the bdy_errbuf message. */
#define PATCH_QUOTE_MAX 200

/* A decoded JSON pointer: "/a~1b/0" → {"a/b", "0"}. */
struct jptr {
    size_t ntok;
    char **tok;
};

/* Where a failing operation is reported from. */
struct opctx {
    size_t index;
    const char *op;
    const char *path;
    bdy_errbuf *eb;
};

static int op_fail(const struct opctx *c, int err, const char *why)
{
    if (c->path != NULL)
        return bdy_fail(c->eb, err, "json patch operation %zu (%s at \"%.*s\"): %s", c->index,
                        c->op, PATCH_QUOTE_MAX, c->path, why);
    return bdy_fail(c->eb, err, "json patch operation %zu (%s): %s", c->index, c->op, why);
}

/* Same, for a failure to resolve "from" in move and copy. */
static int from_fail(const struct opctx *c, int err, const char *from, const char *why)
{
    return bdy_fail(c->eb, err, "json patch operation %zu (%s at \"%.*s\"): \"from\" \"%.*s\": %s",
                    c->index, c->op, PATCH_QUOTE_MAX, c->path, PATCH_QUOTE_MAX, from, why);
}

static void jptr_free(struct jptr *p)
{
    for (size_t i = 0; i < p->ntok; i++)
        free(p->tok[i]);
    free(p->tok);
    p->tok = NULL;
    p->ntok = 0;
}

/* Decodes an RFC 6901 pointer. "" is the whole document; anything else
 * starts with '/'; '~' must be followed by '0' ('~') or '1' ('/'). Returns 0,
 * BDY_EINVAL (syntax) or BDY_ENOMEM; on error p is empty. */
static int jptr_parse(const char *s, size_t len, struct jptr *p, const char **why)
{
    size_t n = 0;
    int rc = 0;

    p->ntok = 0;
    p->tok = NULL;
    if (memchr(s, '\0', len) != NULL) {
        *why = "a JSON pointer may not contain a NUL character";
        return BDY_EINVAL;
    }
    if (len == 0)
        return 0;
    if (s[0] != '/') {
        *why = "a JSON pointer must be empty or start with '/'";
        return BDY_EINVAL;
    }
    /* One token per '/', the leading one included. */
    n = 1;
    for (size_t i = 1; i < len; i++)
        n += s[i] == '/';
    p->tok = calloc(n, sizeof(*p->tok));
    if (p->tok == NULL) {
        *why = "out of memory";
        return BDY_ENOMEM;
    }
    const char *cur = s + 1;
    const char *end = s + len;
    for (size_t t = 0; t < n; t++) {
        const char *slash = memchr(cur, '/', (size_t)(end - cur));
        const char *stop = slash != NULL ? slash : end;
        char *out = malloc((size_t)(stop - cur) + 1);
        size_t o = 0;
        if (out == NULL) {
            *why = "out of memory";
            rc = BDY_ENOMEM;
            goto out;
        }
        p->tok[p->ntok++] = out;
        for (const char *q = cur; q < stop; q++) {
            if (*q != '~') {
                out[o++] = *q;
                continue;
            }
            if (q + 1 == stop || (q[1] != '0' && q[1] != '1')) {
                *why = "'~' in a JSON pointer must be followed by '0' or '1'";
                rc = BDY_EINVAL;
                goto out;
            }
            /* ~1 first would turn "~01" into "/" instead of "~1". */
            out[o++] = q[1] == '0' ? '~' : '/';
            q++;
        }
        out[o] = '\0';
        cur = stop + 1;
    }
out:
    if (rc != 0)
        jptr_free(p);
    return rc;
}

/* Array index per RFC 6901: "0" or a digit string without leading zeros.
 * Returns 0 and *idx, or BDY_EINVAL. */
static int parse_index(const char *tok, size_t *idx)
{
    size_t v = 0;

    if (tok[0] == '\0' || (tok[0] == '0' && tok[1] != '\0'))
        return BDY_EINVAL;
    for (const char *p = tok; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return BDY_EINVAL;
        size_t d = (size_t)(*p - '0');
        if (v > (SIZE_MAX - d) / 10)
            return BDY_EINVAL;
        v = v * 10 + d;
    }
    *idx = v;
    return 0;
}

/* Follows tokens [0, upto) from root. Returns 0 with *found (borrowed,
 * may be NULL for a JSON null), BDY_ECONFLICT when a step does not exist, or
 * BDY_EINVAL for an array step that is not a valid index. */
static int jptr_walk(json_object *root, const struct jptr *p, size_t upto, json_object **found,
                     const char **why)
{
    json_object *cur = root;

    for (size_t i = 0; i < upto; i++) {
        const char *tok = p->tok[i];
        json_object *child = NULL;
        size_t idx = 0;

        if (json_object_is_type(cur, json_type_object)) {
            if (!json_object_object_get_ex(cur, tok, &child)) {
                *why = "path does not exist";
                return BDY_ECONFLICT;
            }
        } else if (json_object_is_type(cur, json_type_array)) {
            if (strcmp(tok, "-") == 0) {
                *why = "path does not exist ('-' is past the end of the array)";
                return BDY_ECONFLICT;
            }
            if (parse_index(tok, &idx) != 0) {
                *why = "invalid array index in JSON pointer";
                return BDY_EINVAL;
            }
            if (idx >= json_object_array_length(cur)) {
                *why = "array index out of bounds";
                return BDY_ECONFLICT;
            }
            child = json_object_array_get_idx(cur, idx);
        } else {
            *why = "path does not exist (parent is not an object or array)";
            return BDY_ECONFLICT;
        }
        cur = child;
    }
    *found = cur;
    return 0;
}

/* The size of v as JSON text (strings without their escapes), counted
 * only until it passes limit: the walk stops there, so a huge value costs
 * no more than a small one. */
static size_t approx_json_size(json_object *v, size_t limit)
{
    switch (json_object_get_type(v)) {
    case json_type_string:
        return (size_t)json_object_get_string_len(v) + 2;
    case json_type_object: {
        size_t n = 2;
        json_object_object_foreach(v, key, child)
        {
            if (n > limit)
                break;
            n += strlen(key) + 4 + approx_json_size(child, limit - n);
        }
        return n;
    }
    case json_type_array: {
        size_t n = 2;
        size_t len = json_object_array_length(v);
        for (size_t i = 0; i < len && n <= limit; i++)
            n += 1 + approx_json_size(json_object_array_get_idx(v, i), limit - n);
        return n;
    }
    case json_type_null:
        return 4;
    default: /* a number or a boolean, as it would be written */
        return strlen(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
    }
}

/* Whether value, put at path, leaves the document within the nesting that
 * a stored object may have (BDY_JSON_MAX_DEPTH). Checked before the op,
 * not on the result: a copy of a value into itself doubles its depth, so a
 * short patch could nest tens of thousands of levels, and the recursive
 * deep copies and frees of such a document overflow the stack. */
static bool depth_fits(const struct jptr *path, json_object *value)
{
    return path->ntok <= BDY_JSON_MAX_DEPTH &&
           bdy_json_depth_within(value, BDY_JSON_MAX_DEPTH - (int)path->ntok);
}

static int too_deep(const struct opctx *c)
{
    char why[96];
    snprintf(why, sizeof(why), "the result would nest deeper than %d levels", BDY_JSON_MAX_DEPTH);
    return op_fail(c, BDY_EINVALID_OBJECT, why);
}

/* Deep copy that also copies JSON null (NULL). */
static int copy_value(json_object *src, json_object **dst)
{
    *dst = NULL;
    if (src == NULL)
        return 0;
    if (json_object_deep_copy(src, dst, NULL) != 0) {
        json_object_put(*dst);
        *dst = NULL;
        return BDY_ENOMEM;
    }
    return 0;
}

/* Inserts val before position idx (idx == length appends). json-c 0.16 has
 * no insert primitive, so the tail is shifted up one slot; put_idx drops the
 * reference a slot held, so each moved element gains one first. Takes
 * ownership of val. */
static int array_insert(json_object *arr, size_t idx, json_object *val)
{
    size_t n = json_object_array_length(arr);

    if (json_object_array_add(arr, NULL) != 0) {
        json_object_put(val);
        return BDY_ENOMEM;
    }
    for (size_t i = n; i > idx; i--) {
        json_object *moved = json_object_array_get_idx(arr, i - 1);
        json_object_array_put_idx(arr, i, json_object_get(moved));
    }
    json_object_array_put_idx(arr, idx, val);
    return 0;
}

/* RFC 6902 "add". Takes ownership of val on every path. */
static int do_add(json_object **doc, const struct jptr *p, json_object *val, const char **why)
{
    json_object *parent = NULL;
    size_t idx = 0;
    int rc;

    if (p->ntok == 0) {
        json_object_put(*doc);
        *doc = val;
        return 0;
    }
    rc = jptr_walk(*doc, p, p->ntok - 1, &parent, why);
    if (rc != 0)
        goto fail;
    const char *last = p->tok[p->ntok - 1];
    if (json_object_is_type(parent, json_type_object)) {
        if (json_object_object_add(parent, last, val) != 0) {
            *why = "out of memory";
            rc = BDY_ENOMEM;
            goto fail;
        }
        return 0;
    }
    if (!json_object_is_type(parent, json_type_array)) {
        *why = "path does not exist (parent is not an object or array)";
        rc = BDY_ECONFLICT;
        goto fail;
    }
    size_t len = json_object_array_length(parent);
    if (strcmp(last, "-") == 0) {
        idx = len;
    } else if (parse_index(last, &idx) != 0) {
        *why = "invalid array index in JSON pointer";
        rc = BDY_EINVAL;
        goto fail;
    } else if (idx > len) {
        *why = "array index out of bounds";
        rc = BDY_ECONFLICT;
        goto fail;
    }
    rc = array_insert(parent, idx, val);
    if (rc != 0)
        *why = "out of memory";
    return rc;
fail:
    json_object_put(val);
    return rc;
}

/* Locates the member a non-root pointer names: its container and, for
 * arrays, its index. Shared by remove and replace, which both need the
 * target to exist. */
static int locate(json_object *doc, const struct jptr *p, json_object **parent, size_t *idx,
                  const char **why)
{
    int rc = jptr_walk(doc, p, p->ntok - 1, parent, why);
    const char *last = p->tok[p->ntok - 1];

    if (rc != 0)
        return rc;
    if (json_object_is_type(*parent, json_type_object)) {
        if (!json_object_object_get_ex(*parent, last, NULL)) {
            *why = "path does not exist";
            return BDY_ECONFLICT;
        }
        return 0;
    }
    if (!json_object_is_type(*parent, json_type_array)) {
        *why = "path does not exist (parent is not an object or array)";
        return BDY_ECONFLICT;
    }
    if (strcmp(last, "-") == 0) {
        *why = "path does not exist ('-' is past the end of the array)";
        return BDY_ECONFLICT;
    }
    if (parse_index(last, idx) != 0) {
        *why = "invalid array index in JSON pointer";
        return BDY_EINVAL;
    }
    if (*idx >= json_object_array_length(*parent)) {
        *why = "array index out of bounds";
        return BDY_ECONFLICT;
    }
    return 0;
}

static int do_remove(json_object **doc, const struct jptr *p, const char **why)
{
    json_object *parent = NULL;
    size_t idx = 0;

    if (p->ntok == 0) {
        *why = "the document root cannot be removed";
        return BDY_ECONFLICT;
    }
    int rc = locate(*doc, p, &parent, &idx, why);
    if (rc != 0)
        return rc;
    if (json_object_is_type(parent, json_type_object))
        json_object_object_del(parent, p->tok[p->ntok - 1]);
    else
        json_object_array_del_idx(parent, idx, 1);
    return 0;
}

/* RFC 6902 "replace". Takes ownership of val on every path. */
static int do_replace(json_object **doc, const struct jptr *p, json_object *val, const char **why)
{
    json_object *parent = NULL;
    size_t idx = 0;

    if (p->ntok == 0) {
        json_object_put(*doc);
        *doc = val;
        return 0;
    }
    int rc = locate(*doc, p, &parent, &idx, why);
    if (rc != 0) {
        json_object_put(val);
        return rc;
    }
    if (json_object_is_type(parent, json_type_object)) {
        /* json-c keeps val on failure, so it is released here. */
        if (json_object_object_add(parent, p->tok[p->ntok - 1], val) != 0) {
            json_object_put(val);
            *why = "out of memory";
            return BDY_ENOMEM;
        }
        return 0;
    }
    json_object_array_put_idx(parent, idx, val);
    return 0;
}

/* Reads a pointer-valued member ("path" or "from") of an operation. */
static int op_pointer(json_object *op, const char *name, const char **text, struct jptr *p,
                      const struct opctx *c)
{
    json_object *v = NULL;
    const char *why = NULL;
    char msg[64];

    if (!json_object_object_get_ex(op, name, &v)) {
        snprintf(msg, sizeof(msg), "missing \"%s\"", name);
        return op_fail(c, BDY_EINVAL, msg);
    }
    if (!json_object_is_type(v, json_type_string)) {
        snprintf(msg, sizeof(msg), "\"%s\" must be a string", name);
        return op_fail(c, BDY_EINVAL, msg);
    }
    *text = json_object_get_string(v);
    int rc = jptr_parse(*text, (size_t)json_object_get_string_len(v), p, &why);
    if (rc != 0)
        return op_fail(c, rc, why);
    return 0;
}

/* Applies one operation to *doc (owned by the caller, possibly replaced). */
static int apply_op(json_object **doc, json_object *op, size_t index, size_t *copy_budget,
                    bdy_errbuf *eb)
{
    struct opctx c = {.index = index, .op = "?", .path = NULL, .eb = eb};
    struct jptr path = {0, NULL};
    struct jptr from = {0, NULL};
    const char *from_text = NULL;
    const char *why = NULL;
    json_object *jop = NULL;
    json_object *value = NULL;
    json_object *found = NULL;
    json_object *val = NULL;
    bool has_value;
    int rc = 0;

    if (!json_object_is_type(op, json_type_object)) {
        rc = op_fail(&c, BDY_EINVAL, "an operation must be a JSON object");
        goto out;
    }
    if (!json_object_object_get_ex(op, "op", &jop)) {
        rc = op_fail(&c, BDY_EINVAL, "missing \"op\"");
        goto out;
    }
    if (!json_object_is_type(jop, json_type_string)) {
        rc = op_fail(&c, BDY_EINVAL, "\"op\" must be a string");
        goto out;
    }
    c.op = json_object_get_string(jop);
    bool is_add = strcmp(c.op, "add") == 0;
    bool is_remove = strcmp(c.op, "remove") == 0;
    bool is_replace = strcmp(c.op, "replace") == 0;
    bool is_move = strcmp(c.op, "move") == 0;
    bool is_copy = strcmp(c.op, "copy") == 0;
    bool is_test = strcmp(c.op, "test") == 0;
    if (!is_add && !is_remove && !is_replace && !is_move && !is_copy && !is_test) {
        rc = op_fail(&c, BDY_EINVAL,
                     "unknown \"op\" (want add, remove, replace, move, copy or "
                     "test)");
        goto out;
    }
    rc = op_pointer(op, "path", &c.path, &path, &c);
    if (rc != 0)
        goto out;
    /* Members an operation does not define are ignored (RFC 6902 section 4),
     * so "value" is only looked at where it is required. */
    has_value = json_object_object_get_ex(op, "value", &value);
    if ((is_add || is_replace || is_test) && !has_value) {
        rc = op_fail(&c, BDY_EINVAL, "missing \"value\"");
        goto out;
    }
    if (is_move || is_copy) {
        rc = op_pointer(op, "from", &from_text, &from, &c);
        if (rc != 0)
            goto out;
    }

    if ((is_add || is_replace) && !depth_fits(&path, value)) {
        rc = too_deep(&c);
        goto out;
    }
    if (is_add || is_replace) {
        rc = copy_value(value, &val);
        if (rc != 0) {
            rc = op_fail(&c, rc, "out of memory");
            goto out;
        }
        rc = is_add ? do_add(doc, &path, val, &why) : do_replace(doc, &path, val, &why);
    } else if (is_remove) {
        rc = do_remove(doc, &path, &why);
    } else if (is_test) {
        rc = jptr_walk(*doc, &path, path.ntok, &found, &why);
        if (rc == 0 && !bdy_json_same_value(found, value)) {
            why = "test failed: the value differs";
            rc = BDY_ECONFLICT;
        }
    } else if (is_copy) {
        rc = jptr_walk(*doc, &from, from.ntok, &found, &why);
        if (rc != 0) {
            rc = from_fail(&c, rc, from_text, why);
            goto out;
        }
        if (!depth_fits(&path, found)) {
            rc = too_deep(&c);
            goto out;
        }
        /* Each copy can double the document (a value copied into itself),
         * so a patch of a few dozen copies would fill the memory long
         * before the result's size is checked. */
        size_t size = approx_json_size(found, *copy_budget);
        if (size > *copy_budget) {
            rc = op_fail(&c, BDY_ETOOBIG, "the patch copies more than it may");
            goto out;
        }
        *copy_budget -= size;
        rc = copy_value(found, &val);
        if (rc != 0)
            why = "out of memory";
        else
            rc = do_add(doc, &path, val, &why);
    } else { /* move */
        size_t flen = strlen(from_text);
        if (strcmp(from_text, c.path) != 0 && strncmp(from_text, c.path, flen) == 0 &&
            c.path[flen] == '/') {
            rc = op_fail(&c, BDY_EINVAL,
                         "\"from\" may not be a prefix of \"path\" (a value "
                         "cannot be moved into one of its children)");
            goto out;
        }
        rc = jptr_walk(*doc, &from, from.ntok, &found, &why);
        if (rc != 0) {
            rc = from_fail(&c, rc, from_text, why);
            goto out;
        }
        if (from.ntok == 0 || strcmp(from_text, c.path) == 0)
            goto out; /* moving a value onto itself */
        if (!depth_fits(&path, found)) {
            rc = too_deep(&c);
            goto out;
        }
        /* The value survives its removal through the extra reference, which
         * do_add() then takes over. */
        val = json_object_get(found);
        rc = do_remove(doc, &from, &why);
        if (rc == 0)
            rc = do_add(doc, &path, val, &why);
        else
            json_object_put(val);
    }
    if (rc != 0)
        rc = op_fail(&c, rc, why != NULL ? why : "failed");
out:
    jptr_free(&path);
    jptr_free(&from);
    return rc;
}

/* Applies ops to a deep copy of target. Inputs are only read. The result,
 * owned by the caller, exists only when 0 is returned. Thread-safe as long
 * as nobody modifies the inputs meanwhile. */
int bdy_json_patch(json_object *target, json_object *ops, json_object **out, bdy_errbuf *eb)
{
    json_object *doc = NULL;
    int rc = 0;

    if (out == NULL)
        return bdy_fail(eb, BDY_EINVAL, "no output for the json patch");
    *out = NULL;
    if (!json_object_is_type(ops, json_type_array)) {
        rc = bdy_fail(eb, BDY_EINVAL, "a json patch must be a JSON array of operations");
        goto out;
    }
    size_t n = json_object_array_length(ops);
    if (n > BDY_JSON_PATCH_MAX_OPS) {
        rc = bdy_fail(eb, BDY_ETOOBIG,
                      "a json patch may hold at most %d operations, this one has "
                      "%zu",
                      BDY_JSON_PATCH_MAX_OPS, n);
        goto out;
    }
    rc = copy_value(target, &doc);
    if (rc != 0) {
        rc = bdy_fail(eb, rc, "out of memory");
        goto out;
    }
    size_t copy_budget = BDY_JSON_PATCH_MAX_COPIED_BYTES;
    for (size_t i = 0; i < n; i++) {
        rc = apply_op(&doc, json_object_array_get_idx(ops, i), i, &copy_budget, eb);
        if (rc != 0)
            goto out;
    }
    *out = doc;
    doc = NULL;
out:
    json_object_put(doc);
    return rc;
}

/* RFC 7386 MergePatch on an object the caller owns (obj) with an object
 * patch: null deletes, objects recurse, anything else replaces. */
static int merge_object(json_object *obj, json_object *patch)
{
    struct json_object_iter it;

    json_object_object_foreachC(patch, it)
    {
        json_object *cur = NULL;
        json_object *val = NULL;

        if (it.val == NULL) {
            json_object_object_del(obj, it.key);
            continue;
        }
        if (json_object_is_type(it.val, json_type_object)) {
            /* Merge in place into an existing object member; any other
             * member value is discarded for a fresh object. */
            if (json_object_object_get_ex(obj, it.key, &cur) &&
                json_object_is_type(cur, json_type_object)) {
                int rc = merge_object(cur, it.val);
                if (rc != 0)
                    return rc;
                continue;
            }
            val = json_object_new_object();
            if (val == NULL)
                return BDY_ENOMEM;
            int rc = merge_object(val, it.val);
            if (rc != 0) {
                json_object_put(val);
                return rc;
            }
        } else if (copy_value(it.val, &val) != 0) {
            return BDY_ENOMEM;
        }
        if (json_object_object_add(obj, it.key, val) != 0) {
            json_object_put(val); /* json-c keeps it on failure */
            return BDY_ENOMEM;
        }
    }
    return 0;
}

/* Returns a new document; target and patch are only read. A non-object
 * patch replaces the target wholesale, so a null patch yields JSON null,
 * which json-c represents as NULL. */
json_object *bdy_merge_patch(json_object *target, json_object *patch)
{
    json_object *result = NULL;

    if (!json_object_is_type(patch, json_type_object)) {
        if (copy_value(patch, &result) != 0)
            return NULL;
        return result;
    }
    if (json_object_is_type(target, json_type_object)) {
        if (copy_value(target, &result) != 0)
            return NULL;
    } else {
        result = json_object_new_object();
        if (result == NULL)
            return NULL;
    }
    if (merge_object(result, patch) != 0) {
        json_object_put(result);
        return NULL;
    }
    return result;
}
