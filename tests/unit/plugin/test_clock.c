/* /proc/<pid>/stat parsing for uptime_s, and the clocks' basic sanity. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock.h"

static void test_parse_plain(void **state)
{
    (void)state;
    unsigned long long t = 0;
    const char *line = "6981 (mariadbd) S 1 6981 6981 0 -1 4194560 5049 0 0 0 9 6 0 0 20 0 "
                       "14 0 123456789 2338586624 30129 18446744073709551615\n";
    assert_int_equal(wa_parse_stat_starttime(line, &t), 0);
    assert_int_equal(t, 123456789ULL);
}

static void test_parse_hostile_comm(void **state)
{
    (void)state;
    /* comm may hold blanks and ')' */
    unsigned long long t = 0;
    const char *line = "42 (a) b) c 1 2) R 1 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0";
    assert_int_equal(wa_parse_stat_starttime(line, &t), 0);
    assert_int_equal(t, 777ULL);
}

static void test_parse_garbage(void **state)
{
    (void)state;
    unsigned long long t = 0;
    assert_int_equal(wa_parse_stat_starttime("", &t), -1);
    assert_int_equal(wa_parse_stat_starttime("1 (x) S 1 2 3", &t), -1);
    assert_int_equal(wa_parse_stat_starttime("no paren at all", &t), -1);
    assert_int_equal(
        wa_parse_stat_starttime("1 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 x12 0", &t), -1);
}

static void test_process_start_is_in_the_past(void **state)
{
    (void)state;
    int64_t start = wa_process_start_boot_ms();
    int64_t now = wa_boot_ms();
    assert_true(start >= 0);
    /* this test process started less than 10 minutes ago */
    assert_true(start <= now + 10);
    assert_true(now - start < 600000);
}

static void test_parse_cpu(void **state)
{
    (void)state;
    unsigned long long t = 0;
    /* utime (14) = 9, stime (15) = 6; a ')' and blanks in comm do not shift them */
    const char *line = "6981 (mari) db) S 1 6981 6981 0 -1 4194560 5049 0 0 0 9 6 0 0 20 0 "
                       "14 0 123456789 2338586624 30129 18446744073709551615\n";
    assert_int_equal(wa_parse_stat_cpu(line, &t), 0);
    assert_int_equal(t, 15ULL);
    assert_int_equal(wa_parse_stat_cpu("1 (x) S 1 1 1 0 -1 0 0 0 0 0 7", &t), -1);
    assert_int_equal(wa_parse_stat_cpu("1 (x) S 1 1 1 0 -1 0 0 0 0 0 7 -2 0", &t), -1);
    assert_int_equal(wa_parse_stat_field("1 (x) S 1", 2, &t), -1);
}

static void test_process_cpu_grows(void **state)
{
    (void)state;
    int64_t a = wa_process_cpu_ms();
    assert_true(a >= 0);
    /* burn ~50 ms of CPU (tick resolution is 10 ms) */
    volatile uint64_t x = 1;
    int64_t t0 = wa_mono_ms();
    while (wa_mono_ms() - t0 < 60)
        for (int i = 0; i < 100000; i++)
            x = x * 6364136223846793005ULL + 1;
    int64_t b = wa_process_cpu_ms();
    assert_true(b > a);
}

static void test_clocks(void **state)
{
    (void)state;
    int64_t wall = wa_wall_ms(), coarse = wa_wall_coarse_ms();
    assert_true(wall > INT64_C(1600000000000)); /* after 2020 */
    assert_true(coarse <= wall + 1 && wall - coarse < 100);
    int64_t m1 = wa_mono_ms(), m2 = wa_mono_ms();
    assert_true(m2 >= m1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_plain),
        cmocka_unit_test(test_parse_hostile_comm),
        cmocka_unit_test(test_parse_garbage),
        cmocka_unit_test(test_process_start_is_in_the_past),
        cmocka_unit_test(test_parse_cpu),
        cmocka_unit_test(test_process_cpu_grows),
        cmocka_unit_test(test_clocks),
    };
    return cmocka_run_group_tests_name("clock", tests, NULL, NULL);
}
