/* The autoscaler's decision function (core/autoscale.c): up fast, down
 * slowly, cool-downs, hysteresis, the working set, the project's bounds,
 * and no thrash under an oscillating load. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "core/autoscale.h"
#include "util/config.h"

static autoscale_params params(void)
{
    config c;

    config_defaults(&c);
    c.autoscale_up_cooldown_s = 10;
    c.autoscale_down_cooldown_s = 60;
    c.autoscale_down_after_s = 120;
    return autoscale_params_of(&c);
}

/* A compute of cu units, 1..4, doing nothing. */
static autoscale_input idle(int cu, long long now)
{
    return (autoscale_input){.cu = cu, .min_cu = 1, .max_cu = 4, .now_ms = now, .cpu = 0.02,
                             .miss = 0, .read_rate = 0, .pages_data = 100,
                             .pages_total = 1000 * cu, .threads_running = 1,
                             .connections = 0};
}

static autoscale_decision decide(const autoscale_params *p, autoscale_input in,
                                 autoscale_rec *st)
{
    autoscale_decision d;

    autoscale_decide(p, &in, st, &d);
    return d;
}

static void cpu_saturated_steps_up_by_more_than_one(void **s)
{
    autoscale_params p = params();
    autoscale_rec st = {0};
    autoscale_input in = idle(1, 1000000);
    autoscale_decision d;

    (void)s;
    in.cpu = 1.0;   /* at its quota */
    d = decide(&p, in, &st);
    assert_int_equal(d.direction, 1);
    assert_int_equal(d.cu, 2);            /* 1 * 1.0 / 0.5 */
    assert_true(d.reasons & AS_CPU);
    assert_int_equal(st.last_change_ms, 1000000);
    /* from 2 at 100%: to 4, not 3 */
    in.cu = 2;
    in.now_ms += 10000;
    d = decide(&p, in, &st);
    assert_int_equal(d.cu, 4);
    /* and never above max_cu */
    st.last_change_ms = 0;
    in.cu = 3;
    d = decide(&p, in, &st);
    assert_int_equal(d.cu, 4);
}

static void moderate_cpu_holds(void **s)
{
    autoscale_params p = params();
    autoscale_rec st = {0};
    autoscale_input in = idle(2, 1000000);
    autoscale_decision d;

    (void)s;
    /* inside the band (25..75%): neither up nor low */
    in.cpu = 0.6;
    d = decide(&p, in, &st);
    assert_int_equal(d.direction, 0);
    assert_int_equal(st.low_since_ms, 0);
}

static void up_cooldown_holds_a_second_step(void **s)
{
    autoscale_params p = params();
    autoscale_rec st = {.last_change_ms = 1000000};
    autoscale_input in = idle(2, 1000000 + 5000);
    autoscale_decision d;

    (void)s;
    in.cpu = 0.95;
    d = decide(&p, in, &st);
    assert_int_equal(d.direction, 0);
    assert_true(d.held & AS_CPU);
    in.now_ms = 1000000 + 10000;
    d = decide(&p, in, &st);
    assert_int_equal(d.direction, 1);
}

static void pool_full_with_misses_steps_up(void **s)
{
    autoscale_params p = params();
    autoscale_rec st = {0};
    autoscale_input in = idle(1, 1000000);
    autoscale_decision d;

    (void)s;
    in.cpu = 0.3;
    in.pages_total = 1000;
    in.pages_data = 990;
    in.read_rate = 5000;
    in.miss = 0.2;
    d = decide(&p, in, &st);
    assert_int_equal(d.direction, 1);
    assert_int_equal(d.cu, 2);
    assert_int_equal(d.reasons, AS_POOL);
    /* full but no misses: the data fits, nothing to do */
    st = (autoscale_rec){0};
    in.miss = 0.001;
    d = decide(&p, in, &st);
    assert_int_equal(d.direction, 0);
    /* misses but room left: it is still filling */
    in.miss = 0.3;
    in.pages_data = 500;
    d = decide(&p, in, &st);
    assert_int_equal(d.direction, 0);
    /* short of full by its data pages (InnoDB keeps pages free under
     * pressure), but what it reads replaces other pages: too small */
    in.pages_data = 900;
    in.evicting = 0.95;
    d = decide(&p, in, &st);
    assert_int_equal(d.direction, 1);
    assert_int_equal(d.reasons, AS_POOL);
    /* evicting without misses worth the name: fine */
    st = (autoscale_rec){0};
    in.miss = 0.005;
    d = decide(&p, in, &st);
    assert_int_equal(d.direction, 0);
}

static void threads_and_connections_step_up(void **s)
{
    autoscale_params p = params();
    autoscale_rec st = {0};
    autoscale_input in = idle(1, 1000000);
    autoscale_decision d;

    (void)s;
    in.threads_running = 9;   /* 4 per CPU, 1 CPU per CU by default */
    d = decide(&p, in, &st);
    assert_int_equal(d.direction, 1);
    assert_int_equal(d.reasons, AS_THREADS);
    st = (autoscale_rec){0};
    in = idle(1, 1000000);
    in.connections = 90;      /* of 100 per CU */
    d = decide(&p, in, &st);
    assert_int_equal(d.direction, 1);
    assert_int_equal(d.cu, 2);
    assert_int_equal(d.reasons, AS_CONNECTIONS);
}

static void steps_down_slowly_one_unit_at_a_time(void **s)
{
    autoscale_params p = params();
    autoscale_rec st = {.last_change_ms = 1};
    long long t = 1000000;
    autoscale_decision d;

    (void)s;
    d = decide(&p, idle(4, t), &st);
    assert_int_equal(d.direction, 0);
    assert_int_equal(st.low_since_ms, t);
    /* not before down_after */
    d = decide(&p, idle(4, t + 119000), &st);
    assert_int_equal(d.direction, 0);
    assert_true(d.held & AS_IDLE);
    d = decide(&p, idle(4, t + 120000), &st);
    assert_int_equal(d.direction, -1);
    assert_int_equal(d.cu, 3);
    assert_int_equal(d.reasons, AS_IDLE);
    /* the next unit waits a full low period again */
    d = decide(&p, idle(3, t + 121000), &st);
    assert_int_equal(d.direction, 0);
    d = decide(&p, idle(3, t + 240000), &st);
    assert_int_equal(d.cu, 2);
    d = decide(&p, idle(2, t + 360000), &st);
    assert_int_equal(d.cu, 1);
    /* never below min_cu */
    d = decide(&p, idle(1, t + 480000), &st);
    assert_int_equal(d.direction, 0);
    d = decide(&p, idle(1, t + 10000000), &st);
    assert_int_equal(d.direction, 0);
}

static void down_cooldown_after_a_step_up(void **s)
{
    autoscale_params p = params();
    autoscale_rec st = {.last_change_ms = 1000000, .low_since_ms = 1};
    autoscale_decision d;

    (void)s;
    /* low for long, but it grew 30 s ago: the down cool-down is 60 s */
    d = decide(&p, idle(3, 1000000 + 30000), &st);
    assert_int_equal(d.direction, 0);
    d = decide(&p, idle(3, 1000000 + 60000), &st);
    assert_int_equal(d.direction, -1);
}

static void hysteresis_no_step_down_that_would_step_up(void **s)
{
    autoscale_params p = params();
    autoscale_rec st = {.last_change_ms = 1, .low_since_ms = 1};
    autoscale_input in = idle(2, 10000000);
    autoscale_decision d;

    (void)s;
    /* a band of 35..80%: one unit less must land below its middle (57.5%) */
    p.cpu_up = 0.80;
    p.cpu_down = 0.35;
    in.cpu = 0.28;   /* 56% of one unit */
    d = decide(&p, in, &st);
    assert_int_equal(d.direction, -1);
    st = (autoscale_rec){.last_change_ms = 1, .low_since_ms = 1};
    in.cpu = 0.30;   /* low, but 60% of one unit: it would come straight back */
    d = decide(&p, in, &st);
    assert_int_equal(d.direction, 0);
    assert_int_equal(st.low_since_ms, 0);
    /* above the down line is not low */
    p = params();
    st = (autoscale_rec){.last_change_ms = 1, .low_since_ms = 1};
    in.cpu = 0.26;
    d = decide(&p, in, &st);
    assert_int_equal(d.direction, 0);
    /* unknown CPU is never low */
    st = (autoscale_rec){.last_change_ms = 1, .low_since_ms = 1};
    in.cpu = -1;
    d = decide(&p, in, &st);
    assert_int_equal(d.direction, 0);
}

static void never_below_the_working_set(void **s)
{
    autoscale_params p = params();
    autoscale_rec st = {.last_change_ms = 1, .low_since_ms = 1};
    autoscale_input in = idle(4, 10000000);
    autoscale_decision d;

    (void)s;
    /* a busy pool holding 3000 of 4000 pages: 3 units hold 3000 * 0.9 = 2700 */
    in.pages_total = 4000;
    in.pages_data = 3000;
    in.read_rate = 2000;
    d = decide(&p, in, &st);
    assert_int_equal(d.direction, 0);
    /* 2600 fits */
    in.pages_data = 2600;
    st = (autoscale_rec){.last_change_ms = 1, .low_since_ms = 1};
    d = decide(&p, in, &st);
    assert_int_equal(d.direction, -1);
    assert_int_equal(d.cu, 3);
    /* a full pool nobody reads holds nothing that is needed now */
    in.pages_data = 4000;
    in.read_rate = 1;
    st = (autoscale_rec){.last_change_ms = 1, .low_since_ms = 1};
    d = decide(&p, in, &st);
    assert_int_equal(d.direction, -1);
}

static void bounds_first(void **s)
{
    autoscale_params p = params();
    autoscale_rec st = {.last_change_ms = 9999999};
    autoscale_input in = idle(6, 10000000);
    autoscale_decision d;

    (void)s;
    d = decide(&p, in, &st);   /* no cool-down for bounds */
    assert_int_equal(d.cu, 4);
    assert_int_equal(d.direction, -1);
    assert_int_equal(d.reasons, AS_BOUNDS);
    in = idle(1, 10000000);
    in.min_cu = 2;
    d = decide(&p, in, &st);
    assert_int_equal(d.cu, 2);
    assert_int_equal(d.direction, 1);
    /* min == max: pinned whatever the load */
    in = idle(1, 20000000);
    in.max_cu = 1;
    in.cpu = 1.0;
    in.threads_running = 50;
    st = (autoscale_rec){0};
    d = decide(&p, in, &st);
    assert_int_equal(d.direction, 0);
}

/* Load alternating between saturated and idle every 30 s for an hour: it
 * grows, then stays -- the idle halves are shorter than down_after. */
static void oscillating_load_does_not_thrash(void **s)
{
    autoscale_params p = params();
    autoscale_rec st = {0};
    int cu = 1, ups = 0, downs = 0;

    (void)s;
    for (long long t = 0; t < 3600 * 1000; t += 2000) {
        autoscale_input in = idle(cu, 1000000 + t);
        autoscale_decision d;
        bool busy = (t / 30000) % 2 == 0;
        /* the load needs 1.5 CPUs: saturating below 2 units */
        if (busy)
            in.cpu = 1.5 / cu > 1.0 ? 1.0 : 1.5 / cu;
        d = decide(&p, in, &st);
        if (d.direction > 0)
            ups++;
        if (d.direction < 0)
            downs++;
        cu = d.cu;
    }
    assert_int_equal(downs, 0);
    assert_true(ups >= 1 && ups <= 2);
    assert_true(cu >= 2);
}

/* A report may carry any non-negative integer: absurd ones are bounded. */
static void absurd_signals_stay_in_bounds(void **s)
{
    autoscale_params p = params();
    autoscale_rec st = {0};
    autoscale_input in = idle(1, 1000000);
    autoscale_decision d;

    (void)s;
    in.connections = 9223372036854775807LL;
    in.threads_running = 9223372036854775807LL;
    in.pages_data = 9223372036854775807LL;
    in.pages_total = 1;
    in.miss = 1e300;
    in.cpu = 1e300;
    d = decide(&p, in, &st);
    assert_int_equal(d.cu, 4);
}

static void reasons_text(void **s)
{
    char buf[64];

    (void)s;
    assert_string_equal(autoscale_reasons(AS_CPU | AS_POOL, buf, sizeof(buf)), "cpu,pool");
    assert_string_equal(autoscale_reasons(0, buf, sizeof(buf)), "");
    assert_string_equal(autoscale_reasons(AS_IDLE, buf, sizeof(buf)), "idle");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cpu_saturated_steps_up_by_more_than_one),
        cmocka_unit_test(moderate_cpu_holds),
        cmocka_unit_test(up_cooldown_holds_a_second_step),
        cmocka_unit_test(pool_full_with_misses_steps_up),
        cmocka_unit_test(threads_and_connections_step_up),
        cmocka_unit_test(steps_down_slowly_one_unit_at_a_time),
        cmocka_unit_test(down_cooldown_after_a_step_up),
        cmocka_unit_test(hysteresis_no_step_down_that_would_step_up),
        cmocka_unit_test(never_below_the_working_set),
        cmocka_unit_test(bounds_first),
        cmocka_unit_test(oscillating_load_does_not_thrash),
        cmocka_unit_test(absurd_signals_stay_in_bounds),
        cmocka_unit_test(reasons_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
