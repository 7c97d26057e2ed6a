#include "bindery/hmap.h"

#include "bindery/error.h"

#include <stdlib.h>
#include <string.h>

uint64_t bdy_hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 1099511628211ull;
    }
    return h;
}

int bdy_hmap_init(bdy_hmap *m, size_t min_buckets)
{
    size_t n = 16;
    while (n < min_buckets)
        n *= 2;
    m->buckets = calloc(n, sizeof(bdy_hnode *));
    if (m->buckets == NULL)
        return BDY_ENOMEM;
    m->nbuckets = n;
    m->count = 0;
    return 0;
}

void bdy_hmap_destroy(bdy_hmap *m)
{
    if (m == NULL)
        return;
    free(m->buckets);
    m->buckets = NULL;
    m->nbuckets = 0;
    m->count = 0;
}

bdy_hnode *bdy_hmap_find(const bdy_hmap *m, const char *key, uint64_t hash)
{
    for (bdy_hnode *n = m->buckets[hash & (m->nbuckets - 1)]; n != NULL; n = n->next) {
        if (n->hash == hash && strcmp(n->key, key) == 0)
            return n;
    }
    return NULL;
}

static void grow(bdy_hmap *m)
{
    size_t n = m->nbuckets * 2;
    bdy_hnode **b = calloc(n, sizeof(bdy_hnode *));
    if (b == NULL)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        bdy_hnode *e = m->buckets[i];
        while (e != NULL) {
            bdy_hnode *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

void bdy_hmap_insert(bdy_hmap *m, bdy_hnode *n)
{
    if (m->count >= m->nbuckets)
        grow(m);
    size_t slot = n->hash & (m->nbuckets - 1);
    n->next = m->buckets[slot];
    m->buckets[slot] = n;
    m->count++;
}

void bdy_hmap_remove(bdy_hmap *m, bdy_hnode *n)
{
    bdy_hnode **pp = &m->buckets[n->hash & (m->nbuckets - 1)];
    while (*pp != NULL && *pp != n)
        pp = &(*pp)->next;
    if (*pp == NULL)
        return;
    *pp = n->next;
    n->next = NULL;
    m->count--;
}
