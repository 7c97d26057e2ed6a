/* What kubectl's Table columns show that bindery formats itself: ages as
 * kubectl's HumanDuration writes them (allocator/kubeapi_table.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../allocator/kubeapi_internal.h"

#include <math.h>
#include <string.h>

static void test_human_duration(void **state)
{
    (void)state;
    static const struct {
        double seconds;
        const char *want;
    } cases[] = {
        {0, "0s"},
        {-0.5, "0s"},
        /* A clock up to a second ahead, kubectl truncating toward zero. */
        {-1.5, "0s"},
        {-2.5, "<invalid>"},
        {59.9, "59s"},
        {61, "61s"},
        {3 * 60 + 5, "3m5s"},
        {2 * 3600 + 5 * 60, "125m"},
        {26 * 3600, "26h"},
        {3 * 86400 + 2 * 3600, "3d2h"},
        {400 * 86400, "400d"},
        {NAN, "<invalid>"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[32];
        bdy__kube_human_duration(cases[i].seconds, out, sizeof(out));
        if (strcmp(out, cases[i].want) != 0)
            fail_msg("%g s: \"%s\", want \"%s\"", cases[i].seconds, out, cases[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_human_duration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
