/* YAML 1.2 core-schema typing of plain scalars, shared by yaml.c (YAML to
 * JSON) and config.c (typed config fields) so that "what is an integer"
 * has one answer in the whole daemon. Internal to allocator/.
 */
#ifndef BINDERY_ALLOCATOR_YAML_CORE_H
#define BINDERY_ALLOCATOR_YAML_CORE_H

#include <stdbool.h>
#include <stdint.h>

typedef enum bdy__yplain_kind {
    BDY__YPLAIN_NULL,  /* "", "~", null, Null, NULL */
    BDY__YPLAIN_BOOL,  /* true/True/TRUE, false/False/FALSE: .b */
    BDY__YPLAIN_INT,   /* an integer that fits int64_t: .i */
    BDY__YPLAIN_UINT,  /* a positive integer above INT64_MAX that fits uint64_t: .u */
    BDY__YPLAIN_FLOAT, /* a float, .inf/.nan, or an integer wider than 64 bits: .d */
    BDY__YPLAIN_STR,   /* anything else */
} bdy__yplain_kind;

typedef struct bdy__yplain {
    bdy__yplain_kind kind;
    bool b;
    int64_t i;
    uint64_t u;
    double d;
    bool int_literal; /* written as an integer (also when it became a FLOAT by size) */
} bdy__yplain;

/* Types the text of a plain (unquoted, untagged) scalar the way the YAML 1.2
 * core schema does: integers are [-+]?[0-9]+, 0o[0-7]+ or 0x[0-9a-fA-F]+;
 * floats are [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? and
 * [-+]?.inf / .nan in three spellings each. Integers too wide for 64 bits
 * become doubles rather than errors, as most YAML loaders do.
 * Pure function of s; thread-safe (decimal floats go through strtod, which
 * expects the "C" locale the daemon runs in). */
void bdy__yaml_resolve_plain(const char *s, bdy__yplain *out);

#endif
