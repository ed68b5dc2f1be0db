/* The compute state machine: every legal transition and the illegal ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/state.h"

static void names_round_trip(void **st)
{
    (void)st;
    for (int s = 0; s < ST__COUNT; s++)
        assert_int_equal(state_parse(state_name((compute_state)s)), s);
    assert_int_equal(state_parse("sleeping"), ST_UNKNOWN);
    assert_int_equal(state_parse(NULL), ST_UNKNOWN);
    assert_string_equal(state_name(ST_UNKNOWN), "unknown");
}

static void lifecycle_path_is_legal(void **st)
{
    (void)st;
    /* creating -> running -> suspending -> suspended -> resuming -> running */
    assert_true(state_transition_legal(ST_CREATING, ST_RUNNING));
    assert_true(state_transition_legal(ST_RUNNING, ST_SUSPENDING));
    assert_true(state_transition_legal(ST_SUSPENDING, ST_SUSPENDED));
    assert_true(state_transition_legal(ST_SUSPENDED, ST_RESUMING));
    assert_true(state_transition_legal(ST_RESUMING, ST_RUNNING));
    /* drain cancelled, crash, failed start, retry after failure */
    assert_true(state_transition_legal(ST_SUSPENDING, ST_RUNNING));
    assert_true(state_transition_legal(ST_RUNNING, ST_SUSPENDED));
    assert_true(state_transition_legal(ST_RESUMING, ST_SUSPENDED));
    assert_true(state_transition_legal(ST_FAILED, ST_RESUMING));
    assert_true(state_transition_legal(ST_CREATING, ST_FAILED));
    /* frozen deepens to stopped through suspending */
    assert_true(state_transition_legal(ST_SUSPENDED, ST_SUSPENDING));
}

static void illegal_transitions(void **st)
{
    (void)st;
    /* a suspended compute is never running without resuming */
    assert_false(state_transition_legal(ST_SUSPENDED, ST_RUNNING));
    /* nothing comes back from deleting */
    for (int s = 0; s < ST__COUNT; s++)
        assert_false(state_transition_legal(ST_DELETING, (compute_state)s));
    /* a compute in a transition cannot be deleted under the actor */
    assert_false(state_transition_legal(ST_RESUMING, ST_DELETING));
    assert_false(state_transition_legal(ST_SUSPENDING, ST_DELETING));
    assert_false(state_transition_legal(ST_CREATING, ST_SUSPENDED));
    assert_false(state_transition_legal(ST_RUNNING, ST_RESUMING));
    assert_false(state_transition_legal(ST_RUNNING, ST_CREATING));
    assert_false(state_transition_legal(ST_UNKNOWN, ST_RUNNING));
    assert_false(state_transition_legal(ST_RUNNING, ST__COUNT));
}

static void modes(void **st)
{
    (void)st;
    assert_int_equal(mode_parse("frozen"), MODE_FROZEN);
    assert_int_equal(mode_parse("stopped"), MODE_STOPPED);
    assert_int_equal(mode_parse(""), MODE_NONE);
    assert_int_equal(mode_parse(NULL), MODE_NONE);
    assert_string_equal(mode_name(MODE_FROZEN), "frozen");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_round_trip),
        cmocka_unit_test(lifecycle_path_is_legal),
        cmocka_unit_test(illegal_transitions),
        cmocka_unit_test(modes),
    };
    return cmocka_run_group_tests_name("controller_state", tests, NULL, NULL);
}
