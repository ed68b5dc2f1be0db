/* What the reporter sets for a controller target, and when it stops trying. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "target.h"

#define MiB (1024ULL * 1024)

static void test_absent_or_reached(void **state)
{
    (void)state;
    uint64_t tried = 0;
    assert_int_equal(wa_target_pick(0, 64 * MiB, 0, 32 * MiB, &tried), 0);
    assert_int_equal(wa_target_pick(1, 0, 0, 32 * MiB, &tried), 0);
    assert_int_equal(tried, 0);
    assert_int_equal(wa_target_pick(1, 32 * MiB, 0, 32 * MiB, &tried), 0);
}

static void test_new_target_once(void **state)
{
    (void)state;
    uint64_t tried = 0;
    assert_true(wa_target_pick(1, 64 * MiB, 0, 32 * MiB, &tried) == 64 * MiB);
    /* the server rounded it, or refused: not again for the same target */
    assert_int_equal(wa_target_pick(1, 64 * MiB, 0, 32 * MiB, &tried), 0);
    assert_int_equal(wa_target_pick(1, 64 * MiB, 0, 65 * MiB, &tried), 0);
    /* a different target is tried at once */
    assert_true(wa_target_pick(1, 128 * MiB, 0, 65 * MiB, &tried) == 128 * MiB);
    /* reached, then the first target again: tried again */
    assert_int_equal(wa_target_pick(1, 128 * MiB, 0, 128 * MiB, &tried), 0);
    assert_true(wa_target_pick(1, 64 * MiB, 0, 128 * MiB, &tried) == 64 * MiB);
}

static void test_clamped_to_limit(void **state)
{
    (void)state;
    uint64_t tried = 0;
    assert_true(wa_target_pick(1, 8192 * MiB, 4096 * MiB, 32 * MiB, &tried) == 4096 * MiB);
    assert_int_equal(wa_target_pick(1, 8192 * MiB, 4096 * MiB, 32 * MiB, &tried), 0);
    /* already at the limit: nothing to do */
    tried = 0;
    assert_int_equal(wa_target_pick(1, 9000 * MiB, 4096 * MiB, 4096 * MiB, &tried), 0);
    /* below the limit: as asked */
    tried = 0;
    assert_true(wa_target_pick(1, 100 * MiB, 4096 * MiB, 32 * MiB, &tried) == 100 * MiB);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_absent_or_reached),
        cmocka_unit_test(test_new_target_once),
        cmocka_unit_test(test_clamped_to_limit),
    };
    return cmocka_run_group_tests_name("target", tests, NULL, NULL);
}
