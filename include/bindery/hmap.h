/* An intrusive, chained hash map keyed by C strings: the caller embeds a
 * bdy_hnode in its own struct (first member, so a node pointer converts to
 * the struct), owns the key storage and the nodes, and does its own locking.
 * Buckets double when the load passes 1; a failed grow only makes lookups
 * slower. Used by the informer, the work queue, the fleet, the claim indexes
 * and the controllers' process table. */
#ifndef BINDERY_HMAP_H
#define BINDERY_HMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct bdy_hnode {
    struct bdy_hnode *next;
    uint64_t hash;   /* bdy_hash_str(key), set by the caller before insert */
    const char *key; /* owned by the caller's struct */
} bdy_hnode;

typedef struct bdy_hmap {
    bdy_hnode **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
} bdy_hmap;

/* FNV-1a. */
uint64_t bdy_hash_str(const char *s);

/* min_buckets is rounded up to a power of two. Returns 0 or BDY_ENOMEM. */
int bdy_hmap_init(bdy_hmap *m, size_t min_buckets);
/* Frees the bucket array; the nodes are the caller's (free them first,
 * e.g. with BDY_HMAP_FOREACH). */
void bdy_hmap_destroy(bdy_hmap *m);

bdy_hnode *bdy_hmap_find(const bdy_hmap *m, const char *key, uint64_t hash);
/* Inserts n (its key must not be present). */
void bdy_hmap_insert(bdy_hmap *m, bdy_hnode *n);
/* Unlinks n (no-op when it is not in m). Does not free it. */
void bdy_hmap_remove(bdy_hmap *m, bdy_hnode *n);

/* Visits every node; the body may remove (and free) the current node.
 * `node` names the loop variable the macro declares, so it cannot be
 * parenthesized. */
// NOLINTBEGIN(bugprone-macro-parentheses)
#define BDY_HMAP_FOREACH(m, node)                                                                  \
    for (size_t bdy__b = 0; bdy__b < (m)->nbuckets; bdy__b++)                                      \
        for (bdy_hnode *node = (m)->buckets[bdy__b], *bdy__next = node ? node->next : NULL;        \
             node != NULL; node = bdy__next, bdy__next = node ? node->next : NULL)
// NOLINTEND(bugprone-macro-parentheses)

#endif
