/* The per-address connection table: counts, frees and survives churn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"

static void counts_per_address(void **st)
{
    ip_table t;

    (void)st;
    assert_int_equal(ip_table_init(&t, 8), 0);
    assert_int_equal(ip_table_count(&t, 0x0a000001), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(ip_table_add(&t, 0x0a000001), 0);
    assert_int_equal(ip_table_add(&t, 0x0a000002), 0);
    assert_int_equal(ip_table_count(&t, 0x0a000001), 5);
    assert_int_equal(ip_table_count(&t, 0x0a000002), 1);
    ip_table_del(&t, 0x0a000001);
    assert_int_equal(ip_table_count(&t, 0x0a000001), 4);
    ip_table_del(&t, 0x0a000002);
    assert_int_equal(ip_table_count(&t, 0x0a000002), 0);
    assert_int_equal(t.used, 1);
    ip_table_del(&t, 0x0a000009);                   /* unknown: no effect */
    assert_int_equal(ip_table_count(&t, 0x0a000001), 4);
    ip_table_free(&t);
}

static void full_table_refuses_new_addresses(void **st)
{
    ip_table t;
    size_t half;
    uint32_t a;

    (void)st;
    assert_int_equal(ip_table_init(&t, 4), 0);
    half = (t.mask + 1) / 2;
    for (a = 1; a <= half; a++)
        assert_int_equal(ip_table_add(&t, a), 0);
    assert_int_equal(ip_table_add(&t, a), -1);      /* a new address: full */
    assert_int_equal(ip_table_add(&t, 1), 0);       /* a known one still counts */
    ip_table_free(&t);
}

/* Random adds and deletes against a plain array: deletion must keep every
 * other address findable (the backward shift of the probe run). */
static void churn_matches_a_model(void **st)
{
    enum { N = 300 };
    static int model[N];
    ip_table t;

    (void)st;
    srand(7);
    memset(model, 0, sizeof(model));
    assert_int_equal(ip_table_init(&t, N), 0);
    for (int step = 0; step < 200000; step++) {
        int k = rand() % N;
        /* addresses that collide often: a small spread of high bits */
        uint32_t addr = 0xc0a80000u + (uint32_t)k * 4096u;
        if (rand() % 2 == 0) {
            assert_int_equal(ip_table_add(&t, addr), 0);
            model[k]++;
        } else {
            ip_table_del(&t, addr);
            if (model[k] > 0)
                model[k]--;
        }
        if (step % 1000 == 0)
            for (int i = 0; i < N; i++)
                assert_int_equal(ip_table_count(&t, 0xc0a80000u + (uint32_t)i * 4096u),
                                 model[i]);
    }
    ip_table_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counts_per_address),
        cmocka_unit_test(full_table_refuses_new_addresses),
        cmocka_unit_test(churn_matches_a_model),
    };
    return cmocka_run_group_tests_name("controller_api_conn", tests, NULL, NULL);
}
