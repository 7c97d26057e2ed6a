/* YAML input with libyaml's event parser.
 *
 * One builder turns the event stream into bdy_ynode trees, one document at a
 * time, with an explicit stack instead of recursion so that nesting is
 * bounded by BDY_YAML_MAX_DEPTH rather than by the C stack. Both public entry
 * points share it: bdy_yaml_parse_one() hands the tree out, bdy_yaml_to_json()
 * converts each finished document to json-c and frees it before reading the
 * next, so a long manifest stream never holds more than one tree.
 *
 * Refused on purpose: anchors and aliases (an alias can expand a small input
 * into an enormous tree), application tags (we would not know what they
 * mean), duplicate map keys (the later value would silently win) and
 * non-scalar map keys (JSON cannot represent them).
 */
#include "bindery/yaml.h"

#include "bindery/util.h"
#include "yaml_core.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

/* A folder of manifests may hold at most this many matching files and this
 * many bytes in all; each file is also capped at BDY_YAML_MAX_BYTES. */
#define YAML_MAX_MANIFEST_FILES 4096
#define YAML_MAX_MANIFEST_TOTAL_BYTES ((uint64_t)64 * 1024 * 1024)
/* Longest path built from a folder and one of its entries. */
#define YAML_MAX_PATH 4096

/* ---------------------------------------------------------------------- */
/* Core-schema typing of plain scalars                                      */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int digit_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return 99;
}

/* True when s is one or more digits of base and nothing else. */
static bool all_digits(const char *s, int base)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        if (digit_value(*s) >= base)
            return false;
    }
    return true;
}

static bool is_one_of(const char *s, const char *const *words, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s, words[i]) == 0)
            return true;
    }
    return false;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool is_core_float(const char *s)
{
    const char *p = s;
    size_t int_digits = 0;
    size_t frac_digits = 0;
    if (*p == '+' || *p == '-')
        p++;
    while (is_digit(*p)) {
        p++;
        int_digits++;
    }
    if (*p == '.') {
        p++;
        while (is_digit(*p)) {
            p++;
            frac_digits++;
        }
    }
    if (int_digits == 0 && frac_digits == 0)
        return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!is_digit(*p))
            return false;
        while (is_digit(*p))
            p++;
    }
    return *p == '\0';
}

/* Accumulates the digits of s (already checked) in base; *overflow is set
 * when the value does not fit uint64_t, in which case *approx carries it as
 * a double. */
static uint64_t accumulate(const char *s, int base, bool *overflow, double *approx)
{
    uint64_t v = 0;
    double d = 0.0;
    *overflow = false;
    for (; *s != '\0'; s++) {
        uint64_t digit = (uint64_t)digit_value(*s);
        d = d * base + (double)digit;
        if (v > (UINT64_MAX - digit) / (uint64_t)base)
            *overflow = true;
        else
            v = v * (uint64_t)base + digit;
    }
    *approx = d;
    return v;
}

void bdy__yaml_resolve_plain(const char *s, bdy__yplain *out)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    static const char *const trues[] = {"true", "True", "TRUE"};
    static const char *const falses[] = {"false", "False", "FALSE"};
    static const char *const infs[] = {".inf", ".Inf", ".INF"};
    static const char *const nans[] = {".nan", ".NaN", ".NAN"};

    memset(out, 0, sizeof(*out));
    if (is_one_of(s, nulls, 5)) {
        out->kind = BDY__YPLAIN_NULL;
        return;
    }
    if (is_one_of(s, trues, 3) || is_one_of(s, falses, 3)) {
        out->kind = BDY__YPLAIN_BOOL;
        out->b = s[0] == 't' || s[0] == 'T';
        return;
    }

    const char *digits = NULL;
    int base = 10;
    bool neg = false;
    if (s[0] == '0' && s[1] == 'x' && all_digits(s + 2, 16)) {
        digits = s + 2;
        base = 16;
    } else if (s[0] == '0' && s[1] == 'o' && all_digits(s + 2, 8)) {
        digits = s + 2;
        base = 8;
    } else {
        const char *p = s;
        if (*p == '+' || *p == '-') {
            neg = *p == '-';
            p++;
        }
        if (all_digits(p, 10))
            digits = p;
    }
    if (digits != NULL) {
        bool overflow;
        double approx;
        uint64_t mag = accumulate(digits, base, &overflow, &approx);
        out->int_literal = true;
        if (overflow || (neg && mag > (uint64_t)INT64_MAX + 1u)) {
            /* Decimal text goes through strtod for correct rounding. */
            out->kind = BDY__YPLAIN_FLOAT;
            out->d = base == 10 ? strtod(s, NULL) : approx;
        } else if (neg) {
            out->kind = BDY__YPLAIN_INT;
            out->i = mag == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)mag;
        } else if (mag <= (uint64_t)INT64_MAX) {
            out->kind = BDY__YPLAIN_INT;
            out->i = (int64_t)mag;
        } else {
            out->kind = BDY__YPLAIN_UINT;
            out->u = mag;
        }
        return;
    }

    if (is_core_float(s)) {
        out->kind = BDY__YPLAIN_FLOAT;
        out->d = strtod(s, NULL);
        return;
    }
    const char *unsigned_part = s[0] == '+' || s[0] == '-' ? s + 1 : s;
    if (is_one_of(unsigned_part, infs, 3)) {
        out->kind = BDY__YPLAIN_FLOAT;
        out->d = s[0] == '-' ? -INFINITY : INFINITY;
        return;
    }
    if (is_one_of(s, nans, 3)) {
        out->kind = BDY__YPLAIN_FLOAT;
        out->d = NAN;
        return;
    }
    out->kind = BDY__YPLAIN_STR;
}

/* ---------------------------------------------------------------------- */
/* Nodes                                                                    */

/* Every node this file allocates: the public part first, so a bdy_ynode *
 * that came from here converts back with a cast, plus what only the parser
 * and the JSON conversion need. */
typedef struct ynode_impl {
    bdy_ynode pub;
    size_t alloc;  /* MAP/SEQ: capacity of keys, key_lines and items */
    bool as_float; /* SCALAR tagged !!float: a double even if written as 1 */
} ynode_impl;

void bdy_ynode_free(bdy_ynode *n)
{
    if (n == NULL)
        return;
    /* Recursion is bounded: trees come only from the builder below, which
     * refuses nesting beyond BDY_YAML_MAX_DEPTH. */
    for (size_t i = 0; i < n->count; i++) {
        if (n->keys != NULL)
            free(n->keys[i]);
        bdy_ynode_free(n->items[i]);
    }
    free(n->keys);
    free(n->key_lines);
    free(n->items);
    free(n->scalar);
    free((ynode_impl *)n);
}

const bdy_ynode *bdy_ynode_get(const bdy_ynode *n, const char *key)
{
    if (n == NULL || n->kind != BDY_YNODE_MAP || key == NULL)
        return NULL;
    for (size_t i = 0; i < n->count; i++) {
        if (strcmp(n->keys[i], key) == 0)
            return n->items[i];
    }
    return NULL;
}

/* Appends one item (and for a MAP its key, whose ownership moves in).
 * On failure nothing changes and the caller still owns key and item. */
static int node_append(bdy_ynode *n, char *key, unsigned key_line, bdy_ynode *item)
{
    ynode_impl *impl = (ynode_impl *)n;
    if (n->count == impl->alloc) {
        size_t alloc = impl->alloc == 0 ? 4 : impl->alloc * 2;
        bdy_ynode **items = realloc(n->items, alloc * sizeof(bdy_ynode *));
        if (items == NULL)
            return BDY_ENOMEM;
        n->items = items;
        if (n->kind == BDY_YNODE_MAP) {
            char **keys = realloc(n->keys, alloc * sizeof(*keys));
            if (keys == NULL)
                return BDY_ENOMEM;
            n->keys = keys;
            unsigned *lines = realloc(n->key_lines, alloc * sizeof(*lines));
            if (lines == NULL)
                return BDY_ENOMEM;
            n->key_lines = lines;
        }
        impl->alloc = alloc;
    }
    if (n->kind == BDY_YNODE_MAP) {
        n->keys[n->count] = key;
        n->key_lines[n->count] = key_line;
    }
    n->items[n->count++] = item;
    return 0;
}

typedef struct key_ref {
    const char *key;
    size_t index;
} key_ref;

static int key_ref_cmp(const void *a, const void *b)
{
    const key_ref *x = a;
    const key_ref *y = b;
    int c = strcmp(x->key, y->key);
    if (c != 0)
        return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Reports the first key (in document order) that repeats an earlier one.
 * Sorting keeps this O(n log n): a map may hold BDY_YAML_MAX_NODES keys. */
static int check_duplicate_keys(const bdy_ynode *m, bdy_errbuf *eb)
{
    int rc = 0;
    key_ref *refs = NULL;
    if (m->count < 2)
        goto out;
    refs = malloc(m->count * sizeof(*refs));
    if (refs == NULL) {
        rc = bdy_fail(eb, BDY_ENOMEM, "out of memory checking map keys");
        goto out;
    }
    for (size_t i = 0; i < m->count; i++) {
        refs[i].key = m->keys[i];
        refs[i].index = i;
    }
    qsort(refs, m->count, sizeof(*refs), key_ref_cmp);
    size_t dup = SIZE_MAX;
    size_t first = 0;
    size_t group = 0;
    for (size_t i = 1; i < m->count; i++) {
        if (strcmp(refs[i].key, refs[group].key) != 0) {
            group = i;
            continue;
        }
        if (refs[i].index < dup) {
            dup = refs[i].index;
            first = refs[group].index;
        }
    }
    if (dup != SIZE_MAX)
        rc = bdy_fail(eb, BDY_EPARSE, "line %u: duplicate key \"%.100s\" (first at line %u)",
                      m->key_lines[dup], m->keys[dup], m->key_lines[first]);
out:
    free(refs);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Tags                                                                     */

typedef enum ytag {
    YTAG_NONE,
    YTAG_NONSPECIFIC, /* "!": not plain, so a string */
    YTAG_STR,
    YTAG_INT,
    YTAG_FLOAT,
    YTAG_BOOL,
    YTAG_NULL,
    YTAG_SEQ,
    YTAG_MAP,
} ytag;

static int classify_tag(const yaml_char_t *tag, unsigned line, ytag *out, bdy_errbuf *eb)
{
    static const struct {
        const char *uri;
        ytag tag;
    } known[] = {
        {"!", YTAG_NONSPECIFIC},      {YAML_STR_TAG, YTAG_STR},   {YAML_INT_TAG, YTAG_INT},
        {YAML_FLOAT_TAG, YTAG_FLOAT}, {YAML_BOOL_TAG, YTAG_BOOL}, {YAML_NULL_TAG, YTAG_NULL},
        {YAML_SEQ_TAG, YTAG_SEQ},     {YAML_MAP_TAG, YTAG_MAP},
    };
    *out = YTAG_NONE;
    if (tag == NULL)
        return 0;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp((const char *)tag, known[i].uri) == 0) {
            *out = known[i].tag;
            return 0;
        }
    }
    return bdy_fail(eb, BDY_EPARSE,
                    "line %u: tag \"%.100s\" is not supported (only !!str, !!int, !!float, "
                    "!!bool, !!null, !!seq and !!map)",
                    line, (const char *)tag);
}

/* Checks that an explicitly tagged scalar really is what its tag says and
 * records how it must be typed later. */
static int apply_scalar_tag(ynode_impl *n, ytag tag, bdy_errbuf *eb)
{
    bdy__yplain v;
    bool ok = true;
    const char *name = "";
    switch (tag) {
    case YTAG_NONE:
        return 0;
    case YTAG_NONSPECIFIC:
    case YTAG_STR:
        n->pub.quoted = true;
        return 0;
    case YTAG_SEQ:
    case YTAG_MAP:
        return bdy_fail(eb, BDY_EPARSE, "line %u: tag !!%s on a scalar", n->pub.line,
                        tag == YTAG_SEQ ? "seq" : "map");
    case YTAG_NULL:
        bdy__yaml_resolve_plain(n->pub.scalar, &v);
        ok = v.kind == BDY__YPLAIN_NULL;
        name = "null";
        break;
    case YTAG_BOOL:
        bdy__yaml_resolve_plain(n->pub.scalar, &v);
        ok = v.kind == BDY__YPLAIN_BOOL;
        name = "bool";
        break;
    case YTAG_INT:
        bdy__yaml_resolve_plain(n->pub.scalar, &v);
        ok = v.int_literal;
        name = "int";
        break;
    case YTAG_FLOAT:
        bdy__yaml_resolve_plain(n->pub.scalar, &v);
        ok = v.kind == BDY__YPLAIN_FLOAT || v.kind == BDY__YPLAIN_INT || v.kind == BDY__YPLAIN_UINT;
        n->as_float = true;
        name = "float";
        break;
    }
    if (!ok)
        return bdy_fail(eb, BDY_EPARSE, "line %u: \"%.100s\" is not a valid !!%s", n->pub.line,
                        n->pub.scalar, name);
    /* Validated against its tag, the text now types itself correctly. */
    n->pub.quoted = false;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Builder                                                                  */

typedef struct yframe {
    bdy_ynode *node; /* borrowed: owned by its parent or by the builder's root */
    char *key;       /* MAP: key read, value not yet; owned */
    unsigned key_line;
} yframe;

typedef struct ybuilder {
    yaml_parser_t parser;
    bool parser_ready;
    const char *text;
    size_t len;
    yframe stack[BDY_YAML_MAX_DEPTH];
    size_t depth;
    bdy_ynode *root;  /* the document being built; owned */
    size_t nodes;     /* nodes made so far in the whole stream */
    size_t max_nodes; /* BDY_YAML_MAX_NODES, or what a folder's budget has left */
    bool stream_done;
} ybuilder;

static unsigned mark_line(yaml_mark_t m)
{
    return m.line >= UINT_MAX ? UINT_MAX : (unsigned)m.line + 1u;
}

static unsigned line_at_offset(const ybuilder *b, size_t offset)
{
    unsigned line = 1;
    if (offset > b->len)
        offset = b->len;
    for (size_t i = 0; i < offset; i++) {
        if (b->text[i] == '\n')
            line++;
    }
    return line;
}

static int builder_init(ybuilder *b, const char *text, size_t len, bdy_errbuf *eb)
{
    memset(b, 0, sizeof(*b));
    if (len > BDY_YAML_MAX_BYTES)
        return bdy_fail(eb, BDY_ETOOBIG, "YAML input of %zu bytes is over the %zu-byte limit", len,
                        BDY_YAML_MAX_BYTES);
    b->text = text != NULL ? text : "";
    b->len = text != NULL ? len : 0;
    b->max_nodes = BDY_YAML_MAX_NODES;
    if (!yaml_parser_initialize(&b->parser))
        return bdy_fail(eb, BDY_ENOMEM, "out of memory starting the YAML parser");
    b->parser_ready = true;
    yaml_parser_set_input_string(&b->parser, (const unsigned char *)b->text, b->len);
    return 0;
}

static void builder_cleanup(ybuilder *b)
{
    for (size_t i = 0; i < b->depth; i++)
        free(b->stack[i].key);
    b->depth = 0;
    bdy_ynode_free(b->root);
    b->root = NULL;
    if (b->parser_ready)
        yaml_parser_delete(&b->parser);
    b->parser_ready = false;
}

static int parser_error(const ybuilder *b, bdy_errbuf *eb)
{
    const yaml_parser_t *p = &b->parser;
    const char *problem = p->problem != NULL ? p->problem : "malformed YAML";
    if (p->error == YAML_MEMORY_ERROR)
        return bdy_fail(eb, BDY_ENOMEM, "out of memory while parsing YAML");
    if (p->error == YAML_READER_ERROR) {
        unsigned line = line_at_offset(b, p->problem_offset);
        if (p->problem_value != -1)
            return bdy_fail(eb, BDY_EPARSE, "line %u: %s (#%X at byte %zu)", line, problem,
                            (unsigned)p->problem_value, p->problem_offset);
        return bdy_fail(eb, BDY_EPARSE, "line %u: %s (at byte %zu)", line, problem,
                        p->problem_offset);
    }
    if (p->context != NULL)
        return bdy_fail(eb, BDY_EPARSE, "line %u: %s (%s at line %u)", mark_line(p->problem_mark),
                        problem, p->context, mark_line(p->context_mark));
    return bdy_fail(eb, BDY_EPARSE, "line %u: %s", mark_line(p->problem_mark), problem);
}

static int refuse_anchor(const yaml_char_t *anchor, unsigned line, bdy_errbuf *eb)
{
    if (anchor == NULL)
        return 0;
    return bdy_fail(eb, BDY_EPARSE,
                    "line %u: anchors (&%.100s) are not supported; write the value out in full",
                    line, (const char *)anchor);
}

/* Makes a node, counting it against b->max_nodes. */
static int make_node(ybuilder *b, bdy_ynode_kind kind, unsigned line, unsigned column,
                     ynode_impl **out, bdy_errbuf *eb)
{
    /* The codes are returned as constants (not bdy_fail's result) so static
     * analysis can see that *out is set whenever 0 comes back. */
    if (b->nodes >= b->max_nodes) {
        if (b->max_nodes < BDY_YAML_MAX_NODES)
            bdy_fail(eb, BDY_ETOOBIG,
                     "line %u: the manifests read together have more than %d nodes", line,
                     BDY_YAML_MAX_NODES);
        else
            bdy_fail(eb, BDY_ETOOBIG, "line %u: more than %d nodes", line, BDY_YAML_MAX_NODES);
        return BDY_ETOOBIG;
    }
    ynode_impl *n = calloc(1, sizeof(*n));
    if (n == NULL) {
        bdy_fail(eb, BDY_ENOMEM, "out of memory building the YAML tree");
        return BDY_ENOMEM;
    }
    b->nodes++;
    n->pub.kind = kind;
    n->pub.line = line;
    n->pub.column = column;
    *out = n;
    return 0;
}

/* Hangs a finished or just-opened node under the innermost open collection
 * (or makes it the document root). Takes ownership of node in every case:
 * on failure it is freed. */
static int attach(ybuilder *b, bdy_ynode *node, bdy_errbuf *eb)
{
    int rc = 0;
    if (b->depth == 0) {
        b->root = node;
        return 0;
    }
    yframe *f = &b->stack[b->depth - 1];
    if (f->node->kind == BDY_YNODE_SEQ) {
        rc = node_append(f->node, NULL, 0, node);
        if (rc < 0) {
            rc = bdy_fail(eb, rc, "out of memory building the YAML tree");
            goto out;
        }
        node = NULL;
        goto out;
    }
    if (f->key == NULL) {
        if (node->kind != BDY_YNODE_SCALAR) {
            rc = bdy_fail(eb, BDY_EPARSE, "line %u: map keys must be scalars, not a %s", node->line,
                          node->kind == BDY_YNODE_MAP ? "map" : "list");
            goto out;
        }
        f->key = node->scalar;
        f->key_line = node->line;
        node->scalar = NULL;
        goto out;
    }
    rc = node_append(f->node, f->key, f->key_line, node);
    if (rc < 0) {
        rc = bdy_fail(eb, rc, "out of memory building the YAML tree");
        goto out;
    }
    f->key = NULL;
    node = NULL;
out:
    bdy_ynode_free(node);
    return rc;
}

static int on_scalar(ybuilder *b, const yaml_event_t *ev, bdy_errbuf *eb)
{
    int rc = 0;
    ynode_impl *n = NULL;
    unsigned line = mark_line(ev->start_mark);
    ytag tag;
    rc = refuse_anchor(ev->data.scalar.anchor, line, eb);
    if (rc < 0)
        goto out;
    rc = classify_tag(ev->data.scalar.tag, line, &tag, eb);
    if (rc < 0)
        goto out;
    size_t len = ev->data.scalar.length;
    /* The tree holds C strings, so a "\0" escape cannot be represented. */
    if (memchr(ev->data.scalar.value, '\0', len) != NULL) {
        rc = bdy_fail(eb, BDY_EPARSE, "line %u: NUL characters in scalars are not supported", line);
        goto out;
    }
    rc = make_node(b, BDY_YNODE_SCALAR, line, (unsigned)ev->start_mark.column + 1u, &n, eb);
    if (rc < 0)
        goto out;
    n->pub.scalar = malloc(len + 1);
    if (n->pub.scalar == NULL) {
        rc = bdy_fail(eb, BDY_ENOMEM, "out of memory building the YAML tree");
        goto out;
    }
    memcpy(n->pub.scalar, ev->data.scalar.value, len);
    n->pub.scalar[len] = '\0';
    n->pub.quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
    rc = apply_scalar_tag(n, tag, eb);
    if (rc < 0)
        goto out;
    rc = attach(b, &n->pub, eb);
    n = NULL;
out:
    bdy_ynode_free(n ? &n->pub : NULL);
    return rc;
}

static int on_collection_start(ybuilder *b, const yaml_event_t *ev, bdy_errbuf *eb)
{
    int rc = 0;
    ynode_impl *n = NULL;
    bool is_map = ev->type == YAML_MAPPING_START_EVENT;
    unsigned line = mark_line(ev->start_mark);
    const yaml_char_t *anchor =
        is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
    const yaml_char_t *tag_text = is_map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag;
    ytag tag;
    rc = refuse_anchor(anchor, line, eb);
    if (rc < 0)
        goto out;
    rc = classify_tag(tag_text, line, &tag, eb);
    if (rc < 0)
        goto out;
    if (tag != YTAG_NONE && tag != YTAG_NONSPECIFIC && tag != (is_map ? YTAG_MAP : YTAG_SEQ)) {
        rc = bdy_fail(eb, BDY_EPARSE, "line %u: tag \"%s\" on a %s", line, (const char *)tag_text,
                      is_map ? "map" : "list");
        goto out;
    }
    if (b->depth >= BDY_YAML_MAX_DEPTH) {
        rc = bdy_fail(eb, BDY_ETOOBIG, "line %u: nested deeper than %d levels", line,
                      BDY_YAML_MAX_DEPTH);
        goto out;
    }
    rc = make_node(b, is_map ? BDY_YNODE_MAP : BDY_YNODE_SEQ, line,
                   (unsigned)ev->start_mark.column + 1u, &n, eb);
    if (rc < 0)
        goto out;
    bdy_ynode *node = &n->pub;
    n = NULL;
    rc = attach(b, node, eb);
    if (rc < 0)
        goto out;
    b->stack[b->depth].node = node;
    b->stack[b->depth].key = NULL;
    b->depth++;
out:
    bdy_ynode_free(n ? &n->pub : NULL);
    return rc;
}

static int on_collection_end(ybuilder *b, bdy_errbuf *eb)
{
    /* libyaml only emits balanced events, so depth is at least 1 here and a
     * map never ends with a key waiting for its value. */
    yframe *f = &b->stack[--b->depth];
    free(f->key);
    f->key = NULL;
    if (f->node->kind == BDY_YNODE_MAP)
        return check_duplicate_keys(f->node, eb);
    return 0;
}

static int on_event(ybuilder *b, const yaml_event_t *ev, bool *doc_done, bdy_errbuf *eb)
{
    switch (ev->type) {
    case YAML_STREAM_END_EVENT:
        b->stream_done = true;
        return 0;
    case YAML_DOCUMENT_END_EVENT:
        *doc_done = true;
        return 0;
    case YAML_ALIAS_EVENT:
        return bdy_fail(eb, BDY_EPARSE,
                        "line %u: aliases (*%.100s) are not supported; write the value out in full",
                        mark_line(ev->start_mark), (const char *)ev->data.alias.anchor);
    case YAML_SCALAR_EVENT:
        return on_scalar(b, ev, eb);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        return on_collection_start(b, ev, eb);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return on_collection_end(b, eb);
    default:
        return 0;
    }
}

/* Reads the next document. *out is its tree (caller owns it) or NULL when
 * the stream has ended. */
static int next_document(ybuilder *b, bdy_ynode **out, bdy_errbuf *eb)
{
    bool doc_done = false;
    *out = NULL;
    while (!doc_done && !b->stream_done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&b->parser, &ev))
            return parser_error(b, eb);
        int rc = on_event(b, &ev, &doc_done, eb);
        yaml_event_delete(&ev);
        if (rc < 0)
            return rc;
    }
    *out = b->root;
    b->root = NULL;
    return 0;
}

static bool is_empty_plain(const bdy_ynode *n)
{
    return n->kind == BDY_YNODE_SCALAR && !n->quoted && n->scalar[0] == '\0';
}

int bdy_yaml_parse_one(const char *text, size_t len, bdy_ynode **out, bdy_errbuf *eb)
{
    int rc = 0;
    ybuilder b;
    bdy_ynode *doc = NULL;
    bdy_ynode *extra = NULL;
    rc = builder_init(&b, text, len, eb);
    if (rc < 0)
        goto out;
    rc = next_document(&b, &doc, eb);
    if (rc < 0)
        goto out;
    /* Empty documents after it ("---" at the end of a file) are nothing,
     * as bdy_yaml_to_json and kubectl take them. */
    while (doc != NULL && (rc = next_document(&b, &extra, eb)) >= 0 && extra != NULL) {
        if (!is_empty_plain(extra)) {
            rc = bdy_fail(eb, BDY_EPARSE, "line %u: expected one YAML document, found another",
                          extra->line);
            goto out;
        }
        bdy_ynode_free(extra);
        extra = NULL;
    }
    if (rc < 0)
        goto out;
    /* No document at all, or one with nothing in it ("---" alone), reads as
     * an empty map: an empty config file means "all defaults". */
    if (doc == NULL || is_empty_plain(doc)) {
        ynode_impl *m = NULL;
        unsigned line = doc != NULL ? doc->line : 1;
        rc = make_node(&b, BDY_YNODE_MAP, line, 1, &m, eb);
        if (rc < 0)
            goto out;
        bdy_ynode_free(doc);
        doc = &m->pub;
    }
    *out = doc;
    doc = NULL;
out:
    bdy_ynode_free(doc);
    bdy_ynode_free(extra);
    builder_cleanup(&b);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* JSON                                                                     */

/* Converts a scalar. *out is NULL (with 0 returned) for a null value, which
 * is how json-c spells JSON null. A number JSON cannot hold (.nan, .inf,
 * 1e999) is BDY_EPARSE: json-c would write it as NaN or Infinity, which no
 * JSON reader takes, and the store would serve it to kubectl so. */
static int scalar_to_json(const bdy_ynode *n, json_object **out, bdy_errbuf *eb)
{
    const ynode_impl *impl = (const ynode_impl *)n;
    *out = NULL;
    if (n->quoted) {
        *out = json_object_new_string(n->scalar);
        return *out != NULL ? 0 : BDY_ENOMEM;
    }
    bdy__yplain v;
    bdy__yaml_resolve_plain(n->scalar, &v);
    if (impl->as_float) {
        if (v.kind == BDY__YPLAIN_INT)
            v.d = (double)v.i;
        else if (v.kind == BDY__YPLAIN_UINT)
            v.d = (double)v.u;
        v.kind = BDY__YPLAIN_FLOAT;
    }
    switch (v.kind) {
    case BDY__YPLAIN_NULL:
        return 0;
    case BDY__YPLAIN_BOOL:
        *out = json_object_new_boolean(v.b);
        break;
    case BDY__YPLAIN_INT:
        *out = json_object_new_int64(v.i);
        break;
    case BDY__YPLAIN_UINT:
        *out = json_object_new_uint64(v.u);
        break;
    case BDY__YPLAIN_FLOAT:
        if (!isfinite(v.d))
            return bdy_fail(eb, BDY_EPARSE, "line %u: %s is a number JSON cannot hold", n->line,
                            n->scalar);
        *out = json_object_new_double(v.d);
        break;
    case BDY__YPLAIN_STR:
        *out = json_object_new_string(n->scalar);
        break;
    }
    return *out != NULL ? 0 : BDY_ENOMEM;
}

/* Recursion is bounded by BDY_YAML_MAX_DEPTH (the builder refuses deeper
 * trees). The caller owns *out. */
static int node_to_json(const bdy_ynode *n, json_object **out, bdy_errbuf *eb)
{
    int rc = 0;
    json_object *obj = NULL;
    json_object *child = NULL;
    *out = NULL;
    if (n->kind == BDY_YNODE_SCALAR)
        return scalar_to_json(n, out, eb);
    obj = n->kind == BDY_YNODE_MAP ? json_object_new_object() : json_object_new_array();
    if (obj == NULL) {
        rc = BDY_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n->count; i++) {
        rc = node_to_json(n->items[i], &child, eb);
        if (rc < 0)
            goto out;
        int added = n->kind == BDY_YNODE_MAP ? json_object_object_add(obj, n->keys[i], child)
                                             : json_object_array_add(obj, child);
        if (added != 0) {
            rc = BDY_ENOMEM;
            goto out;
        }
        child = NULL;
    }
    *out = obj;
    obj = NULL;
out:
    json_object_put(child);
    json_object_put(obj);
    return rc;
}

/* bdy_yaml_to_json making at most *nodes_left nodes, less what it made on
 * return (a folder of manifests shares one budget). */
static int to_json_within(const char *text, size_t len, size_t *nodes_left, json_object **out,
                          unsigned **lines, bdy_errbuf *eb)
{
    int rc = 0;
    ybuilder b;
    json_object *docs = NULL;
    json_object *json = NULL;
    bdy_ynode *doc = NULL;
    rc = builder_init(&b, text, len, eb);
    if (rc < 0)
        goto out;
    if (*nodes_left < b.max_nodes)
        b.max_nodes = *nodes_left;
    docs = json_object_new_array();
    if (docs == NULL) {
        rc = bdy_fail(eb, BDY_ENOMEM, "out of memory converting YAML");
        goto out;
    }
    size_t nlines = 0;
    for (;;) {
        rc = next_document(&b, &doc, eb);
        if (rc < 0)
            goto out;
        if (doc == NULL)
            break;
        unsigned line = doc->line;
        rc = node_to_json(doc, &json, eb);
        if (rc == BDY_ENOMEM) {
            rc = bdy_fail(eb, rc, "out of memory converting YAML");
            goto out;
        }
        if (rc < 0)
            goto out;
        bdy_ynode_free(doc);
        doc = NULL;
        /* Empty documents (a stray "---", a trailing "--- null") are skipped
         * like kubectl does. */
        if (json == NULL)
            continue;
        if (lines != NULL) {
            unsigned *more = realloc(*lines, (nlines + 1) * sizeof(**lines));
            if (more == NULL) {
                rc = bdy_fail(eb, BDY_ENOMEM, "out of memory converting YAML");
                goto out;
            }
            *lines = more;
            (*lines)[nlines++] = line;
        }
        if (json_object_array_add(docs, json) != 0) {
            rc = bdy_fail(eb, BDY_ENOMEM, "out of memory converting YAML");
            goto out;
        }
        json = NULL;
    }
    *out = docs;
    docs = NULL;
out:
    *nodes_left -= b.nodes < *nodes_left ? b.nodes : *nodes_left;
    json_object_put(json);
    json_object_put(docs);
    bdy_ynode_free(doc);
    builder_cleanup(&b);
    return rc;
}

int bdy_yaml_to_json(const char *text, size_t len, json_object **out, bdy_errbuf *eb)
{
    size_t nodes = BDY_YAML_MAX_NODES;
    return to_json_within(text, len, &nodes, out, NULL, eb);
}

/* ---------------------------------------------------------------------- */
/* Files                                                                    */

/* Reads a file capped at BDY_YAML_MAX_BYTES with a message naming it. */
static int read_capped(const char *path, char **text, size_t *len, bdy_errbuf *eb)
{
    int rc = bdy_read_file(path, BDY_YAML_MAX_BYTES, text, len);
    switch (rc) {
    case 0:
        return 0;
    case BDY_ENOTFOUND:
        return bdy_fail(eb, rc, "%s: no such file", path);
    case BDY_ETOOBIG:
        return bdy_fail(eb, rc, "%s: larger than the %zu-byte limit", path, BDY_YAML_MAX_BYTES);
    case BDY_EINVAL:
        return bdy_fail(eb, rc, "%s: is a folder, not a file", path);
    default:
        return bdy_fail(eb, rc, "%s: cannot read: %s", path, bdy_strerror(rc));
    }
}

static int file_to_json_within(const char *path, size_t *nodes_left, json_object **out,
                               unsigned **lines, bdy_errbuf *eb)
{
    int rc = 0;
    char *text = NULL;
    size_t len = 0;
    bdy_errbuf inner;
    bdy_errbuf_clear(&inner);
    rc = read_capped(path, &text, &len, eb);
    if (rc < 0)
        goto out;
    rc = to_json_within(text, len, nodes_left, out, lines, &inner);
    if (rc < 0)
        rc = bdy_fail(eb, rc, "%s: %s", path, inner.message);
out:
    free(text);
    return rc;
}

static bool is_manifest_name(const char *name)
{
    static const char *const exts[] = {".yaml", ".yml", ".json"};
    size_t n = strlen(name);
    /* Dot files are skipped: editors' lock files, and the "..data" links and
     * timestamped folders of a Kubernetes ConfigMap volume. */
    if (name[0] == '.')
        return false;
    for (size_t i = 0; i < 3; i++) {
        size_t e = strlen(exts[i]);
        if (n > e && strcmp(name + n - e, exts[i]) == 0)
            return true;
    }
    return false;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; names != NULL && i < n; i++)
        free(names[i]);
    free(names);
}

/* Lists the manifest files of dir in name order. The caller frees *names
 * (each entry and the array) with free_names(). */
static int list_manifests(const char *dir, char ***names, size_t *count, bdy_errbuf *eb)
{
    int rc = 0;
    DIR *d = NULL;
    char **list = NULL;
    size_t n = 0;
    size_t alloc = 0;
    d = opendir(dir);
    if (d == NULL) {
        rc = bdy_fail(eb, BDY_EIO, "%s: cannot open folder: %s", dir, strerror(errno));
        goto out;
    }
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (de == NULL) {
            if (errno != 0) {
                rc = bdy_fail(eb, BDY_EIO, "%s: cannot read folder: %s", dir, strerror(errno));
                goto out;
            }
            break;
        }
        if (!is_manifest_name(de->d_name))
            continue;
        if (n == YAML_MAX_MANIFEST_FILES) {
            rc = bdy_fail(eb, BDY_ETOOBIG, "%s: more than %d manifest files", dir,
                          YAML_MAX_MANIFEST_FILES);
            goto out;
        }
        if (n == alloc) {
            size_t grown = alloc == 0 ? 16 : alloc * 2;
            char **bigger = realloc(list, grown * sizeof(*bigger));
            if (bigger == NULL) {
                rc = bdy_fail(eb, BDY_ENOMEM, "%s: out of memory listing the folder", dir);
                goto out;
            }
            list = bigger;
            alloc = grown;
        }
        list[n] = strdup(de->d_name);
        if (list[n] == NULL) {
            rc = bdy_fail(eb, BDY_ENOMEM, "%s: out of memory listing the folder", dir);
            goto out;
        }
        n++;
    }
    if (n > 1)
        qsort(list, n, sizeof(*list), cmp_names);
    *names = list;
    *count = n;
    list = NULL;
    n = 0;
out:
    free_names(list, n);
    if (d != NULL)
        closedir(d);
    return rc;
}

int bdy_yaml_file_to_json(const char *path, json_object **out, bdy_errbuf *eb)
{
    size_t nodes = BDY_YAML_MAX_NODES;
    return file_to_json_within(path, &nodes, out, NULL, eb);
}

/* Appends the documents of path to all and, when sources is not NULL,
 * where each begins ("path:line") to sources; their nodes are counted
 * against *nodes_left: every document of a folder is kept until the whole
 * folder is read, so the folder, not each file, gets BDY_YAML_MAX_NODES
 * (4,096 files of nested empty lists just under the cap each would take
 * gigabytes). */
static int append_file(json_object *all, json_object *sources, const char *path, size_t *nodes_left,
                       bdy_errbuf *eb)
{
    int rc = 0;
    json_object *docs = NULL;
    unsigned *lines = NULL;
    rc = file_to_json_within(path, nodes_left, &docs, sources ? &lines : NULL, eb);
    if (rc < 0)
        goto out;
    size_t n = json_object_array_length(docs);
    for (size_t i = 0; i < n; i++) {
        json_object *doc = json_object_get(json_object_array_get_idx(docs, i));
        if (json_object_array_add(all, doc) != 0) {
            json_object_put(doc);
            rc = bdy_fail(eb, BDY_ENOMEM, "%s: out of memory", path);
            goto out;
        }
        if (sources == NULL)
            continue;
        char at[YAML_MAX_PATH + 16];
        snprintf(at, sizeof(at), "%s:%u", path, lines[i]);
        json_object *str = json_object_new_string(at);
        if (str == NULL || json_object_array_add(sources, str) != 0) {
            json_object_put(str);
            rc = bdy_fail(eb, BDY_ENOMEM, "%s: out of memory", path);
            goto out;
        }
    }
out:
    free(lines);
    json_object_put(docs);
    return rc;
}

int bdy_yaml_load_manifests(const char *path, json_object **out, bdy_errbuf *eb)
{
    return bdy_yaml_load_manifests_at(path, out, NULL, eb);
}

int bdy_yaml_load_manifests_at(const char *path, json_object **out, json_object **sources,
                               bdy_errbuf *eb)
{
    int rc = 0;
    size_t nodes_left = BDY_YAML_MAX_NODES;
    json_object *all = NULL;
    json_object *at = NULL;
    char **names = NULL;
    size_t count = 0;
    struct stat st;
    all = json_object_new_array();
    at = sources != NULL ? json_object_new_array() : NULL;
    if (all == NULL || (sources != NULL && at == NULL)) {
        rc = bdy_fail(eb, BDY_ENOMEM, "out of memory");
        goto out;
    }
    if (stat(path, &st) != 0) {
        rc = errno == ENOENT ? BDY_ENOTFOUND : BDY_EIO;
        rc = bdy_fail(eb, rc, "%s: %s", path,
                      rc == BDY_ENOTFOUND ? "no such file or folder" : strerror(errno));
        goto out;
    }
    if (!S_ISDIR(st.st_mode)) {
        rc = append_file(all, at, path, &nodes_left, eb);
        if (rc < 0)
            goto out;
    } else {
        rc = list_manifests(path, &names, &count, eb);
        if (rc < 0)
            goto out;
        size_t plen = strlen(path);
        const char *sep = plen > 0 && path[plen - 1] == '/' ? "" : "/";
        uint64_t total = 0;
        for (size_t i = 0; i < count; i++) {
            char full[YAML_MAX_PATH];
            int w = snprintf(full, sizeof(full), "%s%s%s", path, sep, names[i]);
            if (w < 0 || (size_t)w >= sizeof(full)) {
                rc = bdy_fail(eb, BDY_ETOOBIG, "%s: path too long", path);
                goto out;
            }
            /* Follow symlinks (ConfigMap volumes are made of them) but
             * take only regular files. */
            if (stat(full, &st) != 0 || !S_ISREG(st.st_mode))
                continue;
            total += (uint64_t)st.st_size;
            if (total > YAML_MAX_MANIFEST_TOTAL_BYTES) {
                rc = bdy_fail(eb, BDY_ETOOBIG, "%s: manifests larger than %llu bytes in all", path,
                              (unsigned long long)YAML_MAX_MANIFEST_TOTAL_BYTES);
                goto out;
            }
            rc = append_file(all, at, full, &nodes_left, eb);
            if (rc < 0)
                goto out;
        }
    }
    *out = all;
    all = NULL;
    if (sources != NULL) {
        *sources = at;
        at = NULL;
    }
out:
    free_names(names, count);
    json_object_put(all);
    json_object_put(at);
    return rc;
}
