/* Kubernetes label and field selectors.
 *
 * The label selector string grammar, its error messages and its matching rules
 * follow k8s.io/apimachinery/pkg/labels (Parse, NewRequirement,
 * Requirement.Matches); the JSON form follows metav1.LabelSelector; field
 * selectors follow k8s.io/apimachinery/pkg/fields (splitTerms, splitTerm,
 * UnescapeValue). Keeping the same messages lets kubectl users recognise the
 * answers they get from a real API server.
 */
#include "bindery/selector.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Label keys and values are short; error messages quote at most this many
 * bytes of an offending string so that the reason still fits in the
 * bdy_errbuf message. */
#define SEL_QUOTE_MAX 100

/* Longest path segment bdy_json_path_get() looks up without allocating. */
#define SEL_SEGMENT_STACK 256

#define LABEL_NAME_MAX 63
#define LABEL_VALUE_MAX 63
#define DNS_SUBDOMAIN_MAX 253

#define LABEL_KEY_FMT "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
#define LABEL_KEY_ERR                                                                              \
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "    \
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "         \
    "validation is '" LABEL_KEY_FMT "')"
#define LABEL_VALUE_ERR                                                                            \
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "    \
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "             \
    "'my_value',  or '12345', regex used for validation is '(" LABEL_KEY_FMT ")?')"
#define DNS_SUBDOMAIN_ERR                                                                          \
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "   \
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "  \
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"

enum sel_op {
    SEL_IN,
    SEL_NOTIN,
    SEL_EQ, /* "=" and "==" */
    SEL_NE,
    SEL_EXISTS,
    SEL_NOT_EXISTS,
    SEL_GT,
    SEL_LT,
};

struct sel_term {
    enum sel_op op;
    char *key;
    size_t nvalues;
    char **values;   /* sorted, unique, each a valid label value */
    long long bound; /* SEL_GT / SEL_LT only */
};

struct bdy_label_selector {
    size_t nterms;
    struct sel_term terms[BDY_SELECTOR_MAX_TERMS];
};

struct field_term {
    bool negate; /* "!=" */
    char *field;
    char *value; /* unescaped */
    size_t value_len;
};

struct bdy_field_selector {
    size_t nterms;
    struct field_term terms[BDY_SELECTOR_MAX_TERMS];
};

/* A borrowed byte range of the input. */
struct slice {
    const char *p;
    size_t n;
};

/* A bounded message under construction; text is always NUL-terminated and
 * silently truncated at the end. */
struct msg {
    char text[sizeof(((bdy_errbuf *)0)->message)];
    size_t len;
    size_t count; /* number of separate errors appended */
};

static void msg_add(struct msg *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void msg_add(struct msg *m, const char *fmt, ...)
{
    if (m->len + 1 >= sizeof(m->text))
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(m->text + m->len, sizeof(m->text) - m->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    m->len += (size_t)n;
    if (m->len >= sizeof(m->text))
        m->len = sizeof(m->text) - 1;
}

/* Writes s as a Go %q-style quoted string into buf, truncated to
 * SEL_QUOTE_MAX bytes of input with "..." appended. Returns buf. */
static const char *quote(char *buf, size_t bufsz, const char *s, size_t n)
{
    size_t o = 0;
    size_t limit = n > SEL_QUOTE_MAX ? SEL_QUOTE_MAX : n;

    if (bufsz < 8) {
        if (bufsz > 0)
            buf[0] = '\0';
        return buf;
    }
    buf[o++] = '"';
    for (size_t i = 0; i < limit && o + 6 < bufsz; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else if (c == '\t') {
            buf[o++] = '\\';
            buf[o++] = 't';
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(buf + o, bufsz - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    if (limit < n && o + 5 < bufsz) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

/* Quote buffer large enough for SEL_QUOTE_MAX escaped bytes. */
#define QBUF (SEL_QUOTE_MAX * 4 + 16)

static bool is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_lower_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* The regex ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9] shared by label key
 * names and (non-empty) label values. */
static bool matches_name_regex(const char *s, size_t n)
{
    if (n == 0 || !is_alnum((unsigned char)s[0]) || !is_alnum((unsigned char)s[n - 1]))
        return false;
    for (size_t i = 1; i + 1 < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!is_alnum(c) && c != '-' && c != '_' && c != '.')
            return false;
    }
    return true;
}

/* RFC 1123 subdomain: dot-separated labels of [a-z0-9-], each starting and
 * ending with [a-z0-9]. */
static bool matches_subdomain_regex(const char *s, size_t n)
{
    size_t start = 0;

    if (n == 0)
        return false;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.') {
            unsigned char c = (unsigned char)s[i];
            if (!is_lower_alnum(c) && c != '-')
                return false;
            continue;
        }
        if (i == start)
            return false;
        if (!is_lower_alnum((unsigned char)s[start]) || !is_lower_alnum((unsigned char)s[i - 1]))
            return false;
        start = i + 1;
    }
    return true;
}

/* Appends the reasons a label key is invalid (validation.IsQualifiedName),
 * joined by "; ". Returns the number of reasons (0 = valid). */
static size_t label_key_errors(const char *k, size_t n, struct msg *m)
{
    size_t nerr = 0;
    const char *slash = memchr(k, '/', n);
    const char *name = k;
    size_t name_len = n;

#define KEY_ERR(...)                                                                               \
    do {                                                                                           \
        msg_add(m, "%s", nerr++ ? "; " : "");                                                      \
        msg_add(m, __VA_ARGS__);                                                                   \
    } while (0)

    if (slash != NULL) {
        size_t plen = (size_t)(slash - k);
        if (memchr(slash + 1, '/', n - plen - 1) != NULL) {
            KEY_ERR("a qualified name " LABEL_KEY_ERR " with an optional DNS subdomain prefix and "
                    "'/' (e.g. 'example.com/MyName')");
            return nerr;
        }
        if (plen == 0) {
            KEY_ERR("prefix part must be non-empty");
        } else {
            if (plen > DNS_SUBDOMAIN_MAX)
                KEY_ERR("prefix part must be no more than %d characters", DNS_SUBDOMAIN_MAX);
            if (!matches_subdomain_regex(k, plen))
                KEY_ERR("prefix part " DNS_SUBDOMAIN_ERR);
        }
        name = slash + 1;
        name_len = n - plen - 1;
    }
    if (name_len == 0)
        KEY_ERR("name part must be non-empty");
    else if (name_len > LABEL_NAME_MAX)
        KEY_ERR("name part must be no more than %d characters", LABEL_NAME_MAX);
    if (!matches_name_regex(name, name_len))
        KEY_ERR("name part " LABEL_KEY_ERR);
#undef KEY_ERR
    return nerr;
}

/* Appends the reasons a label value is invalid (validation.IsValidLabelValue). */
static size_t label_value_errors(const char *v, size_t n, struct msg *m)
{
    size_t nerr = 0;

    if (n > LABEL_VALUE_MAX) {
        msg_add(m, "must be no more than %d characters", LABEL_VALUE_MAX);
        nerr++;
    }
    if (n > 0 && !matches_name_regex(v, n)) {
        msg_add(m, "%s" LABEL_VALUE_ERR, nerr ? "; " : "");
        nerr++;
    }
    return nerr;
}

bool bdy_label_key_valid(const char *k)
{
    struct msg m = {.len = 0};
    return k != NULL && label_key_errors(k, strlen(k), &m) == 0;
}

bool bdy_label_value_valid(const char *v)
{
    struct msg m = {.len = 0};
    return v != NULL && label_value_errors(v, strlen(v), &m) == 0;
}

/* strconv.ParseInt(s, 10, 64): optional sign, at least one digit, no
 * overflow. */
static bool parse_int64(const char *s, size_t n, long long *out)
{
    size_t i = 0;
    bool neg = false;
    unsigned long long acc = 0;
    unsigned long long limit = (unsigned long long)INT64_MAX;

    if (n > 0 && (s[0] == '+' || s[0] == '-')) {
        neg = s[0] == '-';
        i = 1;
    }
    if (i == n)
        return false;
    if (neg)
        limit += 1;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (acc > (limit - d) / 10)
            return false;
        acc = acc * 10 + d;
    }
    if (neg)
        *out = acc == (unsigned long long)INT64_MAX + 1 ? INT64_MIN : -(long long)acc;
    else
        *out = (long long)acc;
    return true;
}

static char *dup_slice(struct slice s)
{
    char *p = malloc(s.n + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s.p, s.n);
    p[s.n] = '\0';
    return p;
}

static int slice_cmp(const void *a, const void *b)
{
    const struct slice *x = a;
    const struct slice *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->p, y->p, n);

    if (c != 0)
        return c;
    return (x->n > y->n) - (x->n < y->n);
}

/* Sorts and de-duplicates vals in place (Kubernetes keeps values in a
 * sets.String, and its error messages index the sorted list). Returns the new
 * count. */
static size_t sort_unique(struct slice *vals, size_t n)
{
    size_t o = 0;

    if (n == 0)
        return 0;
    qsort(vals, n, sizeof(*vals), slice_cmp);
    for (size_t i = 1; i < n; i++) {
        if (slice_cmp(&vals[o], &vals[i]) != 0)
            vals[++o] = vals[i];
    }
    return o + 1;
}

static void term_clear(struct sel_term *t)
{
    free(t->key);
    for (size_t i = 0; i < t->nvalues; i++)
        free(t->values[i]);
    free(t->values);
    memset(t, 0, sizeof(*t));
}

/* Fills t from borrowed slices (values already sorted and unique). Returns 0
 * or BDY_ENOMEM; on error t holds what was copied and term_clear() frees it. */
static int term_fill(struct sel_term *t, enum sel_op op, struct slice key, const struct slice *vals,
                     size_t nvals)
{
    t->op = op;
    t->key = dup_slice(key);
    if (t->key == NULL)
        return BDY_ENOMEM;
    if (nvals == 0)
        return 0;
    t->values = calloc(nvals, sizeof(*t->values));
    if (t->values == NULL)
        return BDY_ENOMEM;
    for (size_t i = 0; i < nvals; i++) {
        t->values[i] = dup_slice(vals[i]);
        if (t->values[i] == NULL)
            return BDY_ENOMEM;
        t->nvalues++;
    }
    return 0;
}

void bdy_label_selector_free(bdy_label_selector *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nterms; i++)
        term_clear(&s->terms[i]);
    free(s);
}

/* ---- string form: lexer ---------------------------------------------- */

enum tok {
    T_END,
    T_CLOSE,
    T_COMMA,
    T_NOT,
    T_DEQ,
    T_EQ,
    T_GT,
    T_ID,
    T_IN,
    T_LT,
    T_NE,
    T_NOTIN,
    T_OPEN,
};

struct token {
    enum tok t;
    struct slice lit;
};

/* In the values context the keywords "in" and "notin" are plain identifiers,
 * so "x in (in,notin)" and "in=notin" parse (labels.Parser.lookahead). */
enum lex_ctx { CTX_KEY_AND_OPERATOR, CTX_VALUES };

struct parser {
    struct token *toks;
    size_t pos;
    bdy_label_selector *sel;
    bdy_errbuf *eb;
};

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_special(char c)
{
    return c == '=' || c == '!' || c == '(' || c == ')' || c == ',' || c == '>' || c == '<';
}

/* Splits text into tokens the way labels.Lexer does, ending with T_END.
 * toks must hold strlen(text) + 1 entries (every byte a token, plus the
 * end). Returns the number of tokens. */
static size_t lex(const char *text, struct token *toks)
{
    size_t n = 0;
    const char *p = text;

    for (;;) {
        while (is_ws(*p))
            p++;
        struct token *t = &toks[n++];
        t->lit.p = p;
        if (*p == '\0') {
            t->t = T_END;
            t->lit.n = 0;
            return n;
        }
        if (is_special(*p)) {
            /* Longest match over the symbol table; only "==" and "!=" are
             * two bytes long, so at most one byte of lookahead is needed. */
            t->lit.n = 1;
            if ((p[0] == '=' || p[0] == '!') && p[1] == '=') {
                t->t = p[0] == '=' ? T_DEQ : T_NE;
                t->lit.n = 2;
            } else {
                switch (*p) {
                case '=':
                    t->t = T_EQ;
                    break;
                case '!':
                    t->t = T_NOT;
                    break;
                case '(':
                    t->t = T_OPEN;
                    break;
                case ')':
                    t->t = T_CLOSE;
                    break;
                case ',':
                    t->t = T_COMMA;
                    break;
                case '>':
                    t->t = T_GT;
                    break;
                default:
                    t->t = T_LT;
                    break;
                }
            }
            p += t->lit.n;
            continue;
        }
        while (*p != '\0' && !is_special(*p) && !is_ws(*p))
            p++;
        t->lit.n = (size_t)(p - t->lit.p);
        if (t->lit.n == 2 && memcmp(t->lit.p, "in", 2) == 0)
            t->t = T_IN;
        else if (t->lit.n == 5 && memcmp(t->lit.p, "notin", 5) == 0)
            t->t = T_NOTIN;
        else
            t->t = T_ID;
    }
}

static struct token peek(const struct parser *ps, enum lex_ctx ctx)
{
    struct token t = ps->toks[ps->pos];
    if (ctx == CTX_VALUES && (t.t == T_IN || t.t == T_NOTIN))
        t.t = T_ID;
    return t;
}

static struct token next(struct parser *ps, enum lex_ctx ctx)
{
    struct token t = peek(ps, ctx);
    /* The end token is sticky: the grammar never reads past it, but the
     * parser must not walk off the array if it tried. */
    if (t.t != T_END)
        ps->pos++;
    return t;
}

/* ---- string form: parser ---------------------------------------------- */

#define PARSE_PREFIX "unable to parse requirement: "

static int fail_found(struct parser *ps, bool requirement, struct slice lit, const char *expected)
{
    return bdy_fail(ps->eb, BDY_EINVAL, "%sfound '%.*s', expected: %s",
                    requirement ? PARSE_PREFIX : "",
                    (int)(lit.n > SEL_QUOTE_MAX ? SEL_QUOTE_MAX : lit.n), lit.p, expected);
}

/* parseValues + parseIdentifiersList: "(a,b)", "()", "(,a)", "(a,,b)".
 * Empty entries stand for the empty string value. */
static int parse_values(struct parser *ps, struct slice *vals, size_t *nvals)
{
    struct token t = next(ps, CTX_VALUES);
    size_t n = 0;
    static const struct slice empty = {"", 0};

#define ADD_VALUE(v)                                                                               \
    do {                                                                                           \
        if (n == BDY_SELECTOR_MAX_VALUES)                                                          \
            return bdy_fail(ps->eb, BDY_EINVAL, PARSE_PREFIX "more than %d values in a set",       \
                            BDY_SELECTOR_MAX_VALUES);                                              \
        vals[n++] = (v);                                                                           \
    } while (0)

    if (t.t != T_OPEN)
        return bdy_fail(ps->eb, BDY_EINVAL, PARSE_PREFIX "found '%.*s' expected: '('",
                        (int)(t.lit.n > SEL_QUOTE_MAX ? SEL_QUOTE_MAX : t.lit.n), t.lit.p);
    t = peek(ps, CTX_VALUES);
    if (t.t == T_CLOSE) {
        next(ps, CTX_VALUES);
        ADD_VALUE(empty);
        *nvals = n;
        return 0;
    }
    if (t.t != T_ID && t.t != T_COMMA)
        return fail_found(ps, true, t.lit, "',', ')' or identifier");
    for (;;) {
        t = next(ps, CTX_VALUES);
        if (t.t == T_ID) {
            ADD_VALUE(t.lit);
            struct token t2 = peek(ps, CTX_VALUES);
            if (t2.t == T_COMMA)
                continue;
            if (t2.t == T_CLOSE)
                break;
            return fail_found(ps, true, t2.lit, "',' or ')'");
        }
        if (t.t != T_COMMA)
            return fail_found(ps, true, t.lit, "',', or identifier");
        if (n == 0)
            ADD_VALUE(empty); /* "(," */
        struct token t2 = peek(ps, CTX_VALUES);
        if (t2.t == T_CLOSE) {
            ADD_VALUE(empty); /* ",)" */
            break;
        }
        if (t2.t == T_COMMA) {
            next(ps, CTX_VALUES);
            ADD_VALUE(empty); /* ",," */
        }
    }
#undef ADD_VALUE
    next(ps, CTX_VALUES); /* the ')' seen by peek above */
    *nvals = n;
    return 0;
}

/* NewRequirement's value checks for the string form, aggregated the way
 * field.ErrorList.ToAggregate() prints them. */
static int check_values(struct parser *ps, struct slice key, enum sel_op op,
                        const struct slice *vals, size_t nvals, long long *bound)
{
    struct msg m = {.len = 0};
    char qv[QBUF];

    for (size_t i = 0; i < nvals; i++) {
        if ((op == SEL_GT || op == SEL_LT) && !parse_int64(vals[i].p, vals[i].n, bound)) {
            msg_add(&m,
                    "%svalues[%zu]: Invalid value: %s: for 'Gt', 'Lt' operators, the value "
                    "must be an integer",
                    m.count++ ? ", " : "", i, quote(qv, sizeof(qv), vals[i].p, vals[i].n));
        }
    }
    for (size_t i = 0; i < nvals; i++) {
        struct msg why = {.len = 0};
        if (label_value_errors(vals[i].p, vals[i].n, &why) == 0)
            continue;
        /* Kubernetes prints the key unquoted inside the brackets. */
        msg_add(&m, "%svalues[%zu][%.*s]: Invalid value: %s: %s", m.count++ ? ", " : "", i,
                (int)(key.n > SEL_QUOTE_MAX ? SEL_QUOTE_MAX : key.n), key.p,
                quote(qv, sizeof(qv), vals[i].p, vals[i].n), why.text);
    }
    if (m.count == 0)
        return 0;
    if (m.count == 1)
        return bdy_fail(ps->eb, BDY_EINVAL, PARSE_PREFIX "%s", m.text);
    return bdy_fail(ps->eb, BDY_EINVAL, PARSE_PREFIX "[%s]", m.text);
}

static int add_term(bdy_label_selector *sel, bdy_errbuf *eb, enum sel_op op, struct slice key,
                    const struct slice *vals, size_t nvals, long long bound)
{
    if (sel->nterms == BDY_SELECTOR_MAX_TERMS)
        return bdy_fail(eb, BDY_EINVAL, "label selector has more than %d requirements",
                        BDY_SELECTOR_MAX_TERMS);
    struct sel_term *t = &sel->terms[sel->nterms];
    int rc = term_fill(t, op, key, vals, nvals);
    if (rc != 0) {
        term_clear(t);
        return bdy_fail(eb, rc, "out of memory");
    }
    t->bound = bound;
    sel->nterms++;
    return 0;
}

/* parseRequirement: [!] KEY [ in|notin (values) | =|==|!=|>|< value ]. */
static int parse_requirement(struct parser *ps)
{
    enum sel_op op = SEL_EXISTS;
    bool negated = false;
    struct token t = next(ps, CTX_VALUES);
    struct slice vals[BDY_SELECTOR_MAX_VALUES];
    size_t nvals = 0;
    long long bound = 0;
    char qk[QBUF];
    int rc;

    if (t.t == T_NOT) {
        negated = true;
        t = next(ps, CTX_VALUES);
    }
    if (t.t != T_ID)
        return fail_found(ps, true, t.lit, "identifier");
    struct slice key = t.lit;
    struct msg why = {.len = 0};
    if (label_key_errors(key.p, key.n, &why) != 0) {
        /* "<nil>" is literally what Kubernetes prints here: the parser
         * reports key errors against a nil field path. */
        return bdy_fail(ps->eb, BDY_EINVAL, PARSE_PREFIX "<nil>: Invalid value: %s: %s",
                        quote(qk, sizeof(qk), key.p, key.n), why.text);
    }
    struct token la = peek(ps, CTX_VALUES);
    /* "!key" is complete whatever follows; "!a=b" then fails in the caller
     * on the unexpected '=' exactly as in Kubernetes. */
    if (negated)
        return add_term(ps->sel, ps->eb, SEL_NOT_EXISTS, key, NULL, 0, 0);
    if (la.t == T_END || la.t == T_COMMA)
        return add_term(ps->sel, ps->eb, SEL_EXISTS, key, NULL, 0, 0);

    t = next(ps, CTX_KEY_AND_OPERATOR);
    switch (t.t) {
    case T_IN:
        op = SEL_IN;
        break;
    case T_NOTIN:
        op = SEL_NOTIN;
        break;
    case T_EQ:
    case T_DEQ:
        op = SEL_EQ;
        break;
    case T_NE:
        op = SEL_NE;
        break;
    case T_GT:
        op = SEL_GT;
        break;
    case T_LT:
        op = SEL_LT;
        break;
    default:
        return fail_found(ps, true, t.lit, "in, notin, =, ==, !=, gt, lt");
    }

    if (op == SEL_IN || op == SEL_NOTIN) {
        rc = parse_values(ps, vals, &nvals);
        if (rc != 0)
            return rc;
    } else {
        /* parseExactValue: "k=" means the empty value. */
        la = peek(ps, CTX_VALUES);
        if (la.t == T_END || la.t == T_COMMA) {
            vals[0] = (struct slice){"", 0};
        } else {
            t = next(ps, CTX_VALUES);
            if (t.t != T_ID)
                return fail_found(ps, true, t.lit, "identifier");
            vals[0] = t.lit;
        }
        nvals = 1;
    }
    nvals = sort_unique(vals, nvals);
    rc = check_values(ps, key, op, vals, nvals, &bound);
    if (rc != 0)
        return rc;
    return add_term(ps->sel, ps->eb, op, key, vals, nvals, bound);
}

static int parse_selector(struct parser *ps)
{
    for (;;) {
        struct token t = peek(ps, CTX_VALUES);
        if (t.t == T_END)
            return 0;
        if (t.t != T_ID && t.t != T_NOT)
            return fail_found(ps, false, t.lit, "!, identifier, or 'end of string'");
        int rc = parse_requirement(ps);
        if (rc != 0)
            return rc;
        t = next(ps, CTX_VALUES);
        if (t.t == T_END)
            return 0;
        if (t.t != T_COMMA)
            return fail_found(ps, false, t.lit, "',' or 'end of string'");
        t = peek(ps, CTX_VALUES);
        if (t.t != T_ID && t.t != T_NOT)
            return fail_found(ps, false, t.lit, "identifier after ','");
    }
}

/* Parses the query-string form. The result owns copies of every key and
 * value; text is not referenced afterwards. Thread-safe (no shared state). */
int bdy_label_selector_parse(const char *text, bdy_label_selector **out, bdy_errbuf *eb)
{
    bdy_label_selector *sel = NULL;
    struct token *toks = NULL;
    int rc = 0;

    if (out == NULL)
        return bdy_fail(eb, BDY_EINVAL, "no output for the label selector");
    *out = NULL;
    if (text == NULL)
        text = "";
    size_t len = strnlen(text, BDY_SELECTOR_MAX_TEXT + 1);
    if (len > BDY_SELECTOR_MAX_TEXT) {
        rc = bdy_fail(eb, BDY_EINVAL, "label selector is longer than %d bytes",
                      BDY_SELECTOR_MAX_TEXT);
        goto out;
    }
    sel = calloc(1, sizeof(*sel));
    toks = calloc(len + 1, sizeof(*toks));
    if (sel == NULL || toks == NULL) {
        rc = bdy_fail(eb, BDY_ENOMEM, "out of memory");
        goto out;
    }
    struct parser ps = {.toks = toks, .sel = sel, .eb = eb};
    lex(text, toks);
    rc = parse_selector(&ps);
    if (rc != 0)
        goto out;
    *out = sel;
    sel = NULL;
out:
    free(toks);
    bdy_label_selector_free(sel);
    return rc;
}

/* ---- JSON form ---------------------------------------------------------- */

static const char *json_kind(json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_null:
        return "null";
    case json_type_boolean:
        return "a boolean";
    case json_type_double:
    case json_type_int:
        return "a number";
    case json_type_object:
        return "an object";
    case json_type_array:
        return "an array";
    case json_type_string:
        return "a string";
    }
    return "unknown";
}

static struct slice json_slice(json_object *s)
{
    return (struct slice){json_object_get_string(s), (size_t)json_object_get_string_len(s)};
}

static int from_json_match_labels(bdy_label_selector *sel, json_object *ml, bdy_errbuf *eb)
{
    struct json_object_iter it;
    char q[QBUF];

    if (ml == NULL)
        return 0;
    if (!json_object_is_type(ml, json_type_object))
        return bdy_fail(eb, BDY_EINVAL, "matchLabels: Invalid value: must be an object, not %s",
                        json_kind(ml));
    json_object_object_foreachC(ml, it)
    {
        struct slice key = {it.key, strlen(it.key)};
        struct msg why = {.len = 0};
        if (label_key_errors(key.p, key.n, &why) != 0)
            return bdy_fail(eb, BDY_EINVAL, "matchLabels: Invalid value: %s: %s",
                            quote(q, sizeof(q), key.p, key.n), why.text);
        if (!json_object_is_type(it.val, json_type_string))
            return bdy_fail(eb, BDY_EINVAL,
                            "matchLabels[%.*s]: Invalid value: must be a string, "
                            "not %s",
                            (int)(key.n > SEL_QUOTE_MAX ? SEL_QUOTE_MAX : key.n), key.p,
                            json_kind(it.val));
        struct slice v = json_slice(it.val);
        if (label_value_errors(v.p, v.n, &why) != 0)
            return bdy_fail(eb, BDY_EINVAL, "matchLabels: Invalid value: %s: %s",
                            quote(q, sizeof(q), v.p, v.n), why.text);
        int rc = add_term(sel, eb, SEL_EQ, key, &v, 1, 0);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int from_json_expression(bdy_label_selector *sel, json_object *e, size_t idx, bdy_errbuf *eb)
{
    struct json_object_iter it;
    json_object *jkey = NULL;
    json_object *jop = NULL;
    json_object *jvals = NULL;
    struct slice vals[BDY_SELECTOR_MAX_VALUES];
    size_t nvals = 0;
    enum sel_op op;
    char q[QBUF];

    if (!json_object_is_type(e, json_type_object))
        return bdy_fail(eb, BDY_EINVAL,
                        "matchExpressions[%zu]: Invalid value: must be an object, "
                        "not %s",
                        idx, json_kind(e));
    json_object_object_foreachC(e, it)
    {
        if (strcmp(it.key, "key") == 0)
            jkey = it.val;
        else if (strcmp(it.key, "operator") == 0)
            jop = it.val;
        else if (strcmp(it.key, "values") == 0)
            jvals = it.val;
        else
            return bdy_fail(eb, BDY_EINVAL, "unknown field \"matchExpressions[%zu].%s\"", idx,
                            it.key);
    }

    if (jkey == NULL)
        return bdy_fail(eb, BDY_EINVAL, "matchExpressions[%zu].key: Required value", idx);
    if (!json_object_is_type(jkey, json_type_string))
        return bdy_fail(eb, BDY_EINVAL,
                        "matchExpressions[%zu].key: Invalid value: must be a "
                        "string, not %s",
                        idx, json_kind(jkey));
    struct slice key = json_slice(jkey);
    struct msg why = {.len = 0};
    if (label_key_errors(key.p, key.n, &why) != 0)
        return bdy_fail(eb, BDY_EINVAL, "matchExpressions[%zu].key: Invalid value: %s: %s", idx,
                        quote(q, sizeof(q), key.p, key.n), why.text);

    if (jop == NULL)
        return bdy_fail(eb, BDY_EINVAL, "matchExpressions[%zu].operator: Required value", idx);
    if (!json_object_is_type(jop, json_type_string))
        return bdy_fail(eb, BDY_EINVAL,
                        "matchExpressions[%zu].operator: Invalid value: must be "
                        "a string, not %s",
                        idx, json_kind(jop));
    const char *ops = json_object_get_string(jop);
    if (strcmp(ops, "In") == 0)
        op = SEL_IN;
    else if (strcmp(ops, "NotIn") == 0)
        op = SEL_NOTIN;
    else if (strcmp(ops, "Exists") == 0)
        op = SEL_EXISTS;
    else if (strcmp(ops, "DoesNotExist") == 0)
        op = SEL_NOT_EXISTS;
    else
        return bdy_fail(eb, BDY_EINVAL,
                        "matchExpressions[%zu].operator: Unsupported value: %s: "
                        "supported values: \"DoesNotExist\", \"Exists\", \"In\", "
                        "\"NotIn\"",
                        idx, quote(q, sizeof(q), ops, (size_t)json_object_get_string_len(jop)));

    if (jvals != NULL) {
        if (!json_object_is_type(jvals, json_type_array))
            return bdy_fail(eb, BDY_EINVAL,
                            "matchExpressions[%zu].values: Invalid value: must "
                            "be an array, not %s",
                            idx, json_kind(jvals));
        size_t n = json_object_array_length(jvals);
        if (n > BDY_SELECTOR_MAX_VALUES)
            return bdy_fail(eb, BDY_EINVAL,
                            "matchExpressions[%zu].values: Too many: %zu: must "
                            "have at most %d items",
                            idx, n, BDY_SELECTOR_MAX_VALUES);
        for (size_t i = 0; i < n; i++) {
            json_object *v = json_object_array_get_idx(jvals, i);
            if (!json_object_is_type(v, json_type_string))
                return bdy_fail(eb, BDY_EINVAL,
                                "matchExpressions[%zu].values[%zu]: Invalid "
                                "value: must be a string, not %s",
                                idx, i, json_kind(v));
            vals[i] = json_slice(v);
            why.len = 0;
            why.text[0] = '\0';
            if (label_value_errors(vals[i].p, vals[i].n, &why) != 0)
                return bdy_fail(eb, BDY_EINVAL,
                                "matchExpressions[%zu].values[%zu]: Invalid "
                                "value: %s: %s",
                                idx, i, quote(q, sizeof(q), vals[i].p, vals[i].n), why.text);
        }
        nvals = n;
    }
    if ((op == SEL_IN || op == SEL_NOTIN) && nvals == 0)
        return bdy_fail(eb, BDY_EINVAL,
                        "matchExpressions[%zu].values: Required value: must be "
                        "specified when `operator` is 'In' or 'NotIn'",
                        idx);
    if ((op == SEL_EXISTS || op == SEL_NOT_EXISTS) && nvals != 0)
        return bdy_fail(eb, BDY_EINVAL,
                        "matchExpressions[%zu].values: Forbidden: may not be "
                        "specified when `operator` is 'Exists' or "
                        "'DoesNotExist'",
                        idx);
    nvals = sort_unique(vals, nvals);
    return add_term(sel, eb, op, key, vals, nvals, 0);
}

/* Compiles a metav1.LabelSelector. sel is borrowed and only read; the result
 * owns copies. Thread-safe as long as nobody modifies sel meanwhile. */
int bdy_label_selector_from_json(json_object *sel, bdy_label_selector **out, bdy_errbuf *eb)
{
    bdy_label_selector *s = NULL;
    json_object *ml = NULL;
    json_object *me = NULL;
    struct json_object_iter it;
    int rc = 0;

    if (out == NULL)
        return bdy_fail(eb, BDY_EINVAL, "no output for the label selector");
    *out = NULL;
    if (!json_object_is_type(sel, json_type_object)) {
        rc = bdy_fail(eb, BDY_EINVAL, "Invalid value: a label selector must be an object, not %s",
                      json_kind(sel));
        goto out;
    }
    json_object_object_foreachC(sel, it)
    {
        if (strcmp(it.key, "matchLabels") == 0) {
            ml = it.val;
        } else if (strcmp(it.key, "matchExpressions") == 0) {
            me = it.val;
        } else {
            char q[QBUF];
            rc = bdy_fail(eb, BDY_EINVAL, "unknown field %s",
                          quote(q, sizeof(q), it.key, strlen(it.key)));
            goto out;
        }
    }
    size_t nexpr = 0;
    if (me != NULL) {
        if (!json_object_is_type(me, json_type_array)) {
            rc = bdy_fail(eb, BDY_EINVAL,
                          "matchExpressions: Invalid value: must be an array, "
                          "not %s",
                          json_kind(me));
            goto out;
        }
        nexpr = json_object_array_length(me);
    }
    size_t nlabels =
        json_object_is_type(ml, json_type_object) ? (size_t)json_object_object_length(ml) : 0;
    if (nexpr + nlabels > BDY_SELECTOR_MAX_TERMS) {
        rc = bdy_fail(eb, BDY_EINVAL, "label selector has more than %d requirements",
                      BDY_SELECTOR_MAX_TERMS);
        goto out;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        rc = bdy_fail(eb, BDY_ENOMEM, "out of memory");
        goto out;
    }
    rc = from_json_match_labels(s, ml, eb);
    if (rc != 0)
        goto out;
    for (size_t i = 0; i < nexpr; i++) {
        rc = from_json_expression(s, json_object_array_get_idx(me, i), i, eb);
        if (rc != 0)
            goto out;
    }
    *out = s;
    s = NULL;
out:
    bdy_label_selector_free(s);
    return rc;
}

/* ---- matching ----------------------------------------------------------- */

static bool term_has_value(const struct sel_term *t, const char *v, size_t n)
{
    if (v == NULL)
        return false;
    for (size_t i = 0; i < t->nvalues; i++) {
        if (strlen(t->values[i]) == n && memcmp(t->values[i], v, n) == 0)
            return true;
    }
    return false;
}

/* Requirement.Matches. A label present with a non-string value (which a
 * valid object never has) counts as present but equal to no value. */
static bool term_matches_value(const struct sel_term *t, bool has, const char *s, size_t n)
{
    long long num;
    switch (t->op) {
    case SEL_IN:
    case SEL_EQ:
        return has && term_has_value(t, s, n);
    case SEL_NOTIN:
    case SEL_NE:
        return !has || !term_has_value(t, s, n);
    case SEL_EXISTS:
        return has;
    case SEL_NOT_EXISTS:
        return !has;
    case SEL_GT:
        return s != NULL && parse_int64(s, n, &num) && num > t->bound;
    case SEL_LT:
        return s != NULL && parse_int64(s, n, &num) && num < t->bound;
    }
    return false;
}

static bool term_matches(const struct sel_term *t, json_object *labels)
{
    json_object *v = NULL;
    bool has = json_object_is_type(labels, json_type_object) &&
               json_object_object_get_ex(labels, t->key, &v);
    const char *s = NULL;
    size_t n = 0;
    if (has && json_object_is_type(v, json_type_string)) {
        s = json_object_get_string(v);
        n = (size_t)json_object_get_string_len(v);
    }
    return term_matches_value(t, has, s, n);
}

/* Read-only on both arguments; safe to call from many threads at once. */
bool bdy_label_selector_matches(const bdy_label_selector *s, json_object *labels)
{
    if (s == NULL)
        return true;
    for (size_t i = 0; i < s->nterms; i++) {
        if (!term_matches(&s->terms[i], labels))
            return false;
    }
    return true;
}

bool bdy_label_selector_matches_lookup(const bdy_label_selector *s, bdy_label_lookup lookup,
                                       void *data)
{
    if (s == NULL)
        return true;
    for (size_t i = 0; i < s->nterms; i++) {
        const char *v = lookup(data, s->terms[i].key);
        if (!term_matches_value(&s->terms[i], v != NULL, v, v != NULL ? strlen(v) : 0))
            return false;
    }
    return true;
}

bool bdy_label_selector_is_empty(const bdy_label_selector *s)
{
    return s == NULL || s->nterms == 0;
}

/* ---- field selectors ---------------------------------------------------- */

static const char *const default_allowed_fields[] = {"metadata.name", "metadata.namespace", NULL};

void bdy_field_selector_free(bdy_field_selector *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nterms; i++) {
        free(s->terms[i].field);
        free(s->terms[i].value);
    }
    free(s);
}

/* Byte length of the UTF-8 sequence starting with c, so an error message
 * quotes a whole character after a backslash. */
static size_t utf8_len(unsigned char c)
{
    if (c >= 0xf0 && c < 0xf8)
        return 4;
    if (c >= 0xe0)
        return c < 0xf0 ? 3 : 1;
    if (c >= 0xc0)
        return 2;
    return 1;
}

/* fields.UnescapeValue: "\\", "\," and "\=" are the only escapes; a bare ','
 * or '=' is an error. out must hold n + 1 bytes. */
static int unescape_value(struct slice v, char *out, size_t *out_len, bdy_errbuf *eb)
{
    size_t o = 0;

    for (size_t i = 0; i < v.n; i++) {
        char c = v.p[i];
        if (c == '\\') {
            if (i + 1 == v.n)
                return bdy_fail(eb, BDY_EINVAL,
                                "invalid field selector: invalid escape sequence: \\");
            char e = v.p[++i];
            if (e != '\\' && e != ',' && e != '=') {
                size_t l = utf8_len((unsigned char)e);
                if (l > v.n - i)
                    l = v.n - i;
                return bdy_fail(eb, BDY_EINVAL,
                                "invalid field selector: invalid escape sequence: \\%.*s", (int)l,
                                v.p + i);
            }
            out[o++] = e;
        } else if (c == ',' || c == '=') {
            return bdy_fail(eb, BDY_EINVAL,
                            "invalid field selector: unescaped character in value: %c", c);
        } else {
            out[o++] = c;
        }
    }
    out[o] = '\0';
    *out_len = o;
    return 0;
}

/* fields.splitTerm: the first position where "!=", "==" or "=" starts (in
 * that order of preference) splits field from value. */
static bool split_term(struct slice term, struct slice *lhs, bool *negate, struct slice *rhs)
{
    for (size_t i = 0; i < term.n; i++) {
        size_t oplen = 0;
        if (term.p[i] == '!' && i + 1 < term.n && term.p[i + 1] == '=') {
            *negate = true;
            oplen = 2;
        } else if (term.p[i] == '=') {
            *negate = false;
            oplen = i + 1 < term.n && term.p[i + 1] == '=' ? 2 : 1;
        }
        if (oplen != 0) {
            *lhs = (struct slice){term.p, i};
            *rhs = (struct slice){term.p + i + oplen, term.n - i - oplen};
            return true;
        }
    }
    return false;
}

static int field_add(bdy_field_selector *sel, struct slice text, struct slice term, bdy_errbuf *eb)
{
    struct slice lhs;
    struct slice rhs;
    bool negate = false;
    struct field_term *ft = NULL;

    if (term.n == 0)
        return 0;
    if (!split_term(term, &lhs, &negate, &rhs))
        return bdy_fail(eb, BDY_EINVAL, "invalid selector: '%.*s'; can't understand '%.*s'",
                        (int)(text.n > SEL_QUOTE_MAX ? SEL_QUOTE_MAX : text.n), text.p,
                        (int)(term.n > SEL_QUOTE_MAX ? SEL_QUOTE_MAX : term.n), term.p);
    if (sel->nterms == BDY_SELECTOR_MAX_TERMS)
        return bdy_fail(eb, BDY_EINVAL, "field selector has more than %d terms",
                        BDY_SELECTOR_MAX_TERMS);
    ft = &sel->terms[sel->nterms];
    ft->negate = negate;
    ft->field = dup_slice(lhs);
    ft->value = malloc(rhs.n + 1);
    if (ft->field == NULL || ft->value == NULL) {
        free(ft->field);
        free(ft->value);
        memset(ft, 0, sizeof(*ft));
        return bdy_fail(eb, BDY_ENOMEM, "out of memory");
    }
    sel->nterms++; /* from here bdy_field_selector_free() owns the strings */
    return unescape_value(rhs, ft->value, &ft->value_len, eb);
}

/* Parses a field selector. allowed is borrowed for the call only; the
 * result owns its strings. Thread-safe (no shared state). */
int bdy_field_selector_parse(const char *text, const char *const *allowed, bdy_field_selector **out,
                             bdy_errbuf *eb)
{
    bdy_field_selector *sel = NULL;
    int rc = 0;

    if (out == NULL)
        return bdy_fail(eb, BDY_EINVAL, "no output for the field selector");
    *out = NULL;
    if (text == NULL)
        text = "";
    if (allowed == NULL)
        allowed = default_allowed_fields;
    size_t len = strnlen(text, BDY_SELECTOR_MAX_TEXT + 1);
    if (len > BDY_SELECTOR_MAX_TEXT) {
        rc = bdy_fail(eb, BDY_EINVAL, "field selector is longer than %d bytes",
                      BDY_SELECTOR_MAX_TEXT);
        goto out;
    }
    sel = calloc(1, sizeof(*sel));
    if (sel == NULL) {
        rc = bdy_fail(eb, BDY_ENOMEM, "out of memory");
        goto out;
    }
    /* fields.splitTerms: commas split terms unless escaped by a backslash,
     * and the backslash stays for unescape_value() to interpret. */
    struct slice whole = {text, len};
    size_t start = 0;
    bool in_slash = false;
    for (size_t i = 0; i <= len; i++) {
        if (i < len) {
            if (in_slash) {
                in_slash = false;
                continue;
            }
            if (text[i] == '\\') {
                in_slash = true;
                continue;
            }
            if (text[i] != ',')
                continue;
        }
        rc = field_add(sel, whole, (struct slice){text + start, i - start}, eb);
        if (rc != 0)
            goto out;
        start = i + 1;
    }
    /* Kubernetes checks field support after the whole selector parsed. */
    for (size_t i = 0; i < sel->nterms; i++) {
        bool ok = false;
        for (const char *const *a = allowed; *a != NULL && !ok; a++)
            ok = strcmp(*a, sel->terms[i].field) == 0;
        if (!ok) {
            rc = bdy_fail(eb, BDY_EINVAL, "field label not supported: %s", sel->terms[i].field);
            goto out;
        }
    }
    *out = sel;
    sel = NULL;
out:
    bdy_field_selector_free(sel);
    return rc;
}

/* Renders a scalar as the string Kubernetes field sets hold, without
 * touching json-c's per-object print buffer (json_object_get_string() on a
 * number would write into it, and obj may be shared between threads).
 * Returns false for objects and arrays, which have no field-set form. */
static bool field_string(json_object *v, char *buf, size_t bufsz, const char **s, size_t *n)
{
    switch (json_object_get_type(v)) {
    case json_type_null:
        *s = "";
        *n = 0;
        return true;
    case json_type_string:
        *s = json_object_get_string(v);
        *n = (size_t)json_object_get_string_len(v);
        return true;
    case json_type_boolean:
        *s = json_object_get_boolean(v) ? "true" : "false";
        *n = strlen(*s);
        return true;
    case json_type_int:
        if (json_object_get_int64(v) == INT64_MAX && json_object_get_uint64(v) > INT64_MAX)
            snprintf(buf, bufsz, "%llu", (unsigned long long)json_object_get_uint64(v));
        else
            snprintf(buf, bufsz, "%lld", (long long)json_object_get_int64(v));
        *s = buf;
        *n = strlen(buf);
        return true;
    case json_type_double: {
        double d = json_object_get_double(v);
        snprintf(buf, bufsz, "%.15g", d);
        if (strtod(buf, NULL) != d)
            snprintf(buf, bufsz, "%.17g", d);
        *s = buf;
        *n = strlen(buf);
        return true;
    }
    case json_type_object:
    case json_type_array:
        break;
    }
    return false;
}

/* Read-only on both arguments; safe to call from many threads at once. */
bool bdy_field_selector_matches(const bdy_field_selector *s, json_object *obj)
{
    char buf[32];

    if (s == NULL)
        return true;
    for (size_t i = 0; i < s->nterms; i++) {
        const struct field_term *t = &s->terms[i];
        const char *v = NULL;
        size_t n = 0;
        bool eq = field_string(bdy_json_path_get(obj, t->field), buf, sizeof(buf), &v, &n) &&
                  n == t->value_len && memcmp(v, t->value, n) == 0;
        if (eq == t->negate)
            return false;
    }
    return true;
}

/* Walks object members only; an empty segment ("a..b", ".a") finds nothing.
 * Borrowed result; read-only, thread-safe on a shared obj. */
json_object *bdy_json_path_get(json_object *obj, const char *dotted)
{
    char stack[SEL_SEGMENT_STACK];
    char *heap = NULL;
    json_object *cur = obj;

    if (obj == NULL || dotted == NULL || *dotted == '\0')
        return NULL;
    for (const char *p = dotted;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot != NULL ? (size_t)(dot - p) : strlen(p);
        char *seg = stack;
        json_object *next_obj = NULL;

        if (n == 0 || !json_object_is_type(cur, json_type_object)) {
            cur = NULL;
            break;
        }
        if (n >= sizeof(stack)) {
            free(heap);
            heap = malloc(n + 1);
            if (heap == NULL) {
                cur = NULL;
                break;
            }
            seg = heap;
        }
        memcpy(seg, p, n);
        seg[n] = '\0';
        if (!json_object_object_get_ex(cur, seg, &next_obj)) {
            cur = NULL;
            break;
        }
        cur = next_obj;
        if (dot == NULL)
            break;
        p = dot + 1;
    }
    free(heap);
    return cur;
}
