/* Report scheduling and backoff policy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sched.h"

static void test_backoff_grows_and_caps(void **state)
{
    (void)state;
    /* rnd 0 picks the lower jitter bound d/2; any rnd stays in [d/2, d] */
    for (unsigned f = 1; f <= 200; f++) {
        int64_t d = wa_backoff_delay(f, 250, 30000, UINT32_MAX);
        int64_t lo = wa_backoff_delay(f, 250, 30000, 0);
        int64_t expect = 250;
        for (unsigned i = 1; i < f && expect < 30000; i++)
            expect *= 2;
        if (expect > 30000)
            expect = 30000;
        assert_true(d <= expect);
        assert_int_equal(lo, expect / 2);
        assert_true(d >= expect / 2);
    }
    assert_int_equal(wa_backoff_delay(1, 250, 30000, 0), 125);
    assert_int_equal(wa_backoff_delay(3, 250, 30000, 0), 500);
    assert_int_equal(wa_backoff_delay(1000000, 250, 30000, 0), 15000);
}

static void test_jitter_range(void **state)
{
    (void)state;
    for (uint32_t r = 0; r < 5000; r++) {
        int64_t d = wa_backoff_delay(4, 250, 30000, r * 2654435761u);
        assert_true(d >= 1000 && d <= 2000);
    }
    /* exact upper bound reachable */
    assert_int_equal(wa_backoff_delay(4, 250, 30000, 1000), 2000);
}

static void test_cap_below_base(void **state)
{
    (void)state;
    /* interval 1 s is below nothing, but a cap under the base must not
     * produce zero or negative delays */
    int64_t d = wa_backoff_delay(5, 250, 100, 0);
    assert_true(d >= 125 && d <= 250);
}

static void test_first_report_is_immediate(void **state)
{
    (void)state;
    struct wa_sched s;
    wa_sched_init(&s);
    assert_true(wa_sched_due(&s, 0, 5000) <= 0);
    assert_true(wa_sched_due(&s, 1, 5000) <= 0);
}

static void test_periodic_and_urgent(void **state)
{
    (void)state;
    struct wa_sched s;
    wa_sched_init(&s);
    assert_int_equal(wa_sched_done(&s, 1, 0, 10000, 5000, 0), 0);
    assert_int_equal(wa_sched_due(&s, 0, 5000), 15000);
    assert_int_equal(wa_sched_due(&s, 1, 5000), 10000 + WA_MIN_GAP_MS);
    /* an interval shorter than the gap wins over the gap */
    assert_int_equal(wa_sched_due(&s, 1, 50), 10050);
    /* a changed interval applies at once */
    assert_int_equal(wa_sched_due(&s, 0, 1000), 11000);
}

static void test_hurry_after_a_target(void **state)
{
    (void)state;
    struct wa_sched s;
    wa_sched_init(&s);
    wa_sched_done(&s, 1, 0, 10000, 30000, 0);
    wa_sched_hurry(&s, 11000);
    assert_int_equal(wa_sched_due(&s, 0, 30000), 11000);
    /* an urgent report may still go sooner; a short interval wins too */
    assert_int_equal(wa_sched_due(&s, 1, 30000), 10000 + WA_MIN_GAP_MS);
    assert_int_equal(wa_sched_due(&s, 0, 500), 10500);
    /* the next attempt clears it: back to the interval */
    wa_sched_done(&s, 1, 0, 11000, 30000, 0);
    assert_int_equal(wa_sched_due(&s, 0, 30000), 41000);
    /* a failure's backoff wins over a hurry */
    wa_sched_done(&s, 0, 0, 50000, 30000, 0);
    wa_sched_hurry(&s, 50001);
    assert_int_equal(wa_sched_due(&s, 0, 30000), 50000 + WA_BACKOFF_BASE_MS / 2);
}

static void test_failure_backs_off_even_urgent(void **state)
{
    (void)state;
    struct wa_sched s;
    wa_sched_init(&s);
    int64_t d1 = wa_sched_done(&s, 0, 0, 1000, 5000, 0);
    assert_int_equal(d1, WA_BACKOFF_BASE_MS / 2);
    assert_int_equal(wa_sched_due(&s, 0, 5000), 1000 + d1);
    assert_int_equal(wa_sched_due(&s, 1, 5000), 1000 + d1);
    int64_t now = 1000 + d1;
    int64_t prev = d1;
    for (int i = 0; i < 20; i++) {
        int64_t d = wa_sched_done(&s, 0, 0, now, 5000, 0);
        assert_true(d >= prev);
        assert_true(d <= 5000); /* capped by the interval */
        assert_int_equal(wa_sched_due(&s, 1, 5000), now + d);
        now += d;
        prev = d;
    }
    assert_int_equal(prev, 2500); /* lower jitter bound of the 5 s cap */
    /* success resets */
    assert_int_equal(wa_sched_done(&s, 1, 0, now, 5000, 0), 0);
    assert_int_equal(wa_sched_due(&s, 0, 5000), now + 5000);
}

static void test_cap_is_30s_for_long_intervals(void **state)
{
    (void)state;
    struct wa_sched s;
    wa_sched_init(&s);
    int64_t d = 0;
    for (int i = 0; i < 30; i++)
        d = wa_sched_done(&s, 0, 0, 0, 3600 * 1000, 15000); /* upper bound */
    assert_int_equal(d, WA_BACKOFF_CAP_MS);
}

static void test_churn_widens_the_gap(void **state)
{
    (void)state;
    struct wa_sched s;
    wa_sched_init(&s);
    int64_t now = 0;
    wa_sched_done(&s, 1, 0, now, 5000, 0); /* the start-up report */
    /* a quiet compute: the first transition goes out within the minimum gap */
    now = 3000;
    assert_int_equal(wa_sched_due(&s, 1, 5000), WA_MIN_GAP_MS);
    wa_sched_done(&s, 1, 1, now, 5000, 0);
    assert_int_equal(s.gap_ms, WA_MIN_GAP_MS);
    /* a client connecting and disconnecting in a loop keeps urgent set:
     * each report is due one gap after the previous, the gap doubles */
    int64_t gaps[] = {200, 400, 800, 1000, 1000, 1000};
    for (unsigned i = 0; i < sizeof gaps / sizeof gaps[0]; i++) {
        now = wa_sched_due(&s, 1, 5000) + 1; /* sent 1 ms late */
        wa_sched_done(&s, 1, 1, now, 5000, 0);
        assert_int_equal(s.gap_ms, gaps[i]);
    }
    /* churn costs about one report a second, never more than ten */
    assert_int_equal(wa_sched_due(&s, 1, 5000), now + WA_MAX_GAP_MS);
    /* calm again: the next periodic report resets the gap */
    now += 5000;
    wa_sched_done(&s, 1, 0, now, 5000, 0);
    assert_int_equal(s.gap_ms, WA_MIN_GAP_MS);
    assert_int_equal(wa_sched_due(&s, 1, 5000), now + WA_MIN_GAP_MS);
}

static void test_isolated_transitions_stay_fast(void **state)
{
    (void)state;
    struct wa_sched s;
    wa_sched_init(&s);
    wa_sched_done(&s, 1, 0, 0, 5000, 0);
    /* a client every two seconds: each 0->1 and 1->0 stays prompt */
    for (int64_t t = 2000; t < 20000; t += 2000) {
        assert_int_equal(wa_sched_due(&s, 1, 5000) <= t, 1);
        wa_sched_done(&s, 1, 1, t, 5000, 0); /* 0->1 */
        int64_t due = wa_sched_due(&s, 1, 5000);
        assert_true(due - t <= WA_MIN_GAP_MS);
        wa_sched_done(&s, 1, 1, due, 5000, 0); /* 1->0 right after */
        assert_true(s.gap_ms <= 2 * WA_MIN_GAP_MS);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_grows_and_caps),
        cmocka_unit_test(test_jitter_range),
        cmocka_unit_test(test_cap_below_base),
        cmocka_unit_test(test_first_report_is_immediate),
        cmocka_unit_test(test_periodic_and_urgent),
        cmocka_unit_test(test_hurry_after_a_target),
        cmocka_unit_test(test_failure_backs_off_even_urgent),
        cmocka_unit_test(test_cap_is_30s_for_long_intervals),
        cmocka_unit_test(test_churn_widens_the_gap),
        cmocka_unit_test(test_isolated_transitions_stay_fast),
    };
    return cmocka_run_group_tests_name("sched", tests, NULL, NULL);
}
