/* Process instance ids ("<pid>:<start time>"): what the process backend
 * records, what old records' pid fields become, what the API shows as pid. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <unistd.h>

#include "util/proc.h"

static void round_trip(void **st)
{
    char id[128];
    int pid = 0;
    long long start = 0;

    (void)st;
    proc_instance(id, sizeof(id), 4242, 987654321LL);
    assert_string_equal(id, "4242:987654321");
    assert_true(proc_instance_parse(id, &pid, &start));
    assert_int_equal(pid, 4242);
    assert_int_equal(start, 987654321LL);
}

static void not_a_process(void **st)
{
    static const char *const bad[] = {
        "", "4242", "4242:", ":12", "0:12", "-1:12", "12:x", "12:3x", "abc", "99999999999:1",
        /* a container id is not a process */
        "3f4e8a9b2c1d0e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f",
    };
    int pid;
    long long start;

    (void)st;
    assert_false(proc_instance_parse(NULL, &pid, &start));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (proc_instance_parse(bad[i], &pid, &start))
            fail_msg("\"%s\" taken for a process", bad[i]);
}

/* Our own process: alive, and its start time converts to a plausible wall time. */
static void own_start_time(void **st)
{
    long long start = proc_start_time(getpid(), NULL);

    (void)st;
    assert_true(start >= 0);
    assert_true(proc_same_alive(getpid(), start));
    assert_false(proc_same_alive(getpid(), start + 1));
    assert_true(proc_start_ms(start) > 1500000000000LL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(not_a_process),
        cmocka_unit_test(own_start_time),
    };
    return cmocka_run_group_tests_name("controller_proc", tests, NULL, NULL);
}
