/* The freeze rule for a compute with client sessions open
 * (lifecycle_probe_quiet, docs/controller-layers.md "The scheduler's rule"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/lifecycle.h"

static compute_probe quiet(void)
{
    return (compute_probe){.client_sessions = 3, .min_idle_ms = 5000};
}

static void sessions_all_quiet(void **st)
{
    compute_probe p = quiet();

    (void)st;
    assert_true(lifecycle_probe_quiet(&p, 2000));
    /* idle for the freeze time plus the proxy's margin of a second */
    p.min_idle_ms = 3000;
    assert_true(lifecycle_probe_quiet(&p, 2000));
    p.min_idle_ms = 2999;
    assert_false(lifecycle_probe_quiet(&p, 2000));
    p.min_idle_ms = 2000;      /* exactly the freeze time: too young */
    assert_false(lifecycle_probe_quiet(&p, 2000));
    /* no session at all: the idle time does not matter */
    p = (compute_probe){.client_sessions = 0, .min_idle_ms = -1};
    assert_true(lifecycle_probe_quiet(&p, 2000));
}

static void work_keeps_it_awake(void **st)
{
    compute_probe p;

    (void)st;
    p = quiet();
    p.busy_sessions = 1;        /* a statement running, or a login */
    assert_false(lifecycle_probe_quiet(&p, 2000));
    p = quiet();
    p.open_trx = 1;
    assert_false(lifecycle_probe_quiet(&p, 2000));
    p = quiet();
    p.server_work = 2;          /* enabled events, replication */
    assert_false(lifecycle_probe_quiet(&p, 2000));
    /* sessions the process list cannot show: min_idle_ms unknown */
    p = (compute_probe){.client_sessions = 2, .busy_sessions = 2, .min_idle_ms = -1};
    assert_false(lifecycle_probe_quiet(&p, 2000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sessions_all_quiet),
        cmocka_unit_test(work_keeps_it_awake),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
