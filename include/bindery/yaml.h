/* YAML input: a small document tree that keeps line numbers (for config
 * errors that name file, line and key) and conversion of YAML documents to
 * json-c objects (for Kubernetes manifests and CRDs).
 *
 * Both parse with libyaml. Inputs are capped (BDY_YAML_MAX_BYTES, nesting
 * depth BDY_YAML_MAX_DEPTH, node count BDY_YAML_MAX_NODES); anchors and
 * aliases are refused so "billion laughs" documents cannot blow up memory.
 */
#ifndef BINDERY_YAML_H
#define BINDERY_YAML_H

#include "bindery/error.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#define BDY_YAML_MAX_BYTES ((size_t)4 * 1024 * 1024)
#define BDY_YAML_MAX_DEPTH 64
#define BDY_YAML_MAX_NODES 200000

typedef enum bdy_ynode_kind {
    BDY_YNODE_SCALAR,
    BDY_YNODE_MAP,
    BDY_YNODE_SEQ,
} bdy_ynode_kind;

/* One node of a parsed YAML document. Maps keep keys in document order;
 * duplicate keys are a parse error. */
typedef struct bdy_ynode bdy_ynode;
struct bdy_ynode {
    bdy_ynode_kind kind;
    unsigned line;       /* 1-based line of the node's start */
    unsigned column;     /* 1-based */
    char *scalar;        /* SCALAR: the text (NUL-terminated) */
    bool quoted;         /* SCALAR: written quoted or as a block (so never null/bool/number) */
    size_t count;        /* MAP: number of pairs; SEQ: number of items */
    char **keys;         /* MAP: keys[i] */
    unsigned *key_lines; /* MAP: line of keys[i] */
    bdy_ynode **items;   /* MAP: value of keys[i]; SEQ: items[i] */
};

/* Parses exactly one YAML document (an empty input gives an empty MAP).
 * On error returns BDY_EPARSE with "line N: ..." in eb. The caller frees the
 * result with bdy_ynode_free(). */
int bdy_yaml_parse_one(const char *text, size_t len, bdy_ynode **out, bdy_errbuf *eb);

void bdy_ynode_free(bdy_ynode *n);

/* Looks a key up in a MAP node; NULL if absent or n is not a MAP. */
const bdy_ynode *bdy_ynode_get(const bdy_ynode *n, const char *key);

/* Parses a multi-document YAML stream (documents separated by ---) into a
 * json-c array with one element per non-empty document. Plain scalars are
 * typed the YAML 1.2 core-schema way (null, true/false, integers, floats);
 * quoted scalars stay strings. Returns 0, BDY_EPARSE (eb: "line N: ..."),
 * BDY_ETOOBIG or BDY_ENOMEM. The caller owns *out (json_object_put). */
int bdy_yaml_to_json(const char *text, size_t len, json_object **out, bdy_errbuf *eb);

/* Reads path (capped at BDY_YAML_MAX_BYTES) and converts it as above; error
 * messages are prefixed with the path. */
int bdy_yaml_file_to_json(const char *path, json_object **out, bdy_errbuf *eb);

/* Collects the documents of every *.yaml / *.yml / *.json file under path (a
 * file or a folder, folders read non-recursively in name order) into one
 * json-c array, in order. */
int bdy_yaml_load_manifests(const char *path, json_object **out, bdy_errbuf *eb);
/* The same, and *sources (the caller owns it) an array as long as *out of
 * where each document begins, "file:line", for messages about it. */
int bdy_yaml_load_manifests_at(const char *path, json_object **out, json_object **sources,
                               bdy_errbuf *eb);

#endif
