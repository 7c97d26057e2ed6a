/* When a call made through a test's fault injection fails: the plan a test
 * arms (let `pass` calls through, then fail `fail` of them), shared by
 * fault_io.h (the claim journal's system calls) and fault_vfs.h (SQLite's
 * file operations).
 *
 * Thread-safety: atomic; a test arms a plan before the calls it means to
 * fail and reads fault_plan_failed() after them. */
#ifndef BINDERY_TEST_FAULT_PLAN_H
#define BINDERY_TEST_FAULT_PLAN_H

#include <stdatomic.h>
#include <stdbool.h>

typedef struct fault_plan {
    atomic_int pass;   /* calls still let through before failing */
    atomic_int fail;   /* calls to fail after those */
    atomic_int failed; /* calls failed so far */
} fault_plan;

static inline void fault_plan_arm(fault_plan *p, int pass, int fail)
{
    atomic_store(&p->pass, pass);
    atomic_store(&p->fail, fail);
}

/* Every call passes again; what failed is forgotten. fail first: a call
 * meanwhile must not find passes gone and failures still armed. */
static inline void fault_plan_heal(fault_plan *p)
{
    atomic_store(&p->fail, 0);
    atomic_store(&p->pass, 0);
    atomic_store(&p->failed, 0);
}

/* Whether the plan fails calls at all now (cheap; read before anything
 * the arming wrote). */
static inline bool fault_plan_armed(fault_plan *p)
{
    return atomic_load(&p->fail) > 0;
}

static inline int fault_plan_failed(fault_plan *p)
{
    return atomic_load(&p->failed);
}

/* Whether this call fails: the plan's passes are used up first. */
static inline bool fault_plan_take(fault_plan *p)
{
    if (atomic_load(&p->fail) <= 0)
        return false;
    int pass = atomic_load(&p->pass);
    while (pass > 0)
        if (atomic_compare_exchange_weak(&p->pass, &pass, pass - 1))
            return false;
    int fail = atomic_load(&p->fail);
    while (fail > 0)
        if (atomic_compare_exchange_weak(&p->fail, &fail, fail - 1)) {
            atomic_fetch_add(&p->failed, 1);
            return true;
        }
    return false;
}

#endif
