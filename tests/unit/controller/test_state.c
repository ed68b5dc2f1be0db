/* The compute state machine: the legal moves derived from the one
 * transition table the lifecycle uses, and the illegal ones. */
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

/* The whole matrix, as the table derives it: a change here is a change of
 * the state machine and must be made on purpose. */
static void derived_matrix(void **st)
{
    static const char *const want[ST__COUNT] = {
        /* to:          creating running suspending suspended resuming failed deleting */
        [ST_CREATING] = "0100010",
        [ST_RUNNING] = "0011001",
        [ST_SUSPENDING] = "0101000",
        [ST_SUSPENDED] = "0011101",
        [ST_RESUMING] = "0101000",
        [ST_FAILED] = "0000101",
        [ST_DELETING] = "0000000",
    };

    (void)st;
    for (int f = 0; f < ST__COUNT; f++)
        for (int t = 0; t < ST__COUNT; t++)
            if (state_transition_legal((compute_state)f, (compute_state)t) != (want[f][t] == '1'))
                fail_msg("%s -> %s: legal is %d", state_name((compute_state)f),
                         state_name((compute_state)t), want[f][t] == '1' ? 0 : 1);
}

/* Every named transition leaves some state, never leaves deleting except
 * into nothing, and has a name for the logs. */
static void table_is_sound(void **st)
{
    (void)st;
    for (int i = 0; i < TR__COUNT; i++) {
        const transition *t = transition_get((transition_id)i);
        assert_non_null(t);
        assert_non_null(t->name);
        assert_int_not_equal(t->from, 0);
        assert_false(transition_leaves(t, ST_DELETING));
        assert_true(t->to == ST_UNKNOWN || (t->to >= 0 && t->to < ST__COUNT));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(t->name, transition_get((transition_id)j)->name);
    }
    assert_null(transition_get(TR__COUNT));
    /* the ones the lifecycle's guarantees rest on */
    assert_int_equal(transition_get(TR_WAKE)->meter, METER_OPEN);
    assert_int_equal(transition_get(TR_SUSPENDED)->meter, METER_CLOSE);
    assert_int_equal(transition_get(TR_CRASHED)->meter, METER_CLOSE);
    assert_int_equal(transition_get(TR_DELETE)->meter, METER_CLOSE);
    assert_int_equal(transition_get(TR_RESIZE)->meter, METER_SPLIT);
    assert_int_equal(transition_get(TR_RESIZE)->to, ST_UNKNOWN);
    assert_false(transition_leaves(transition_get(TR_DELETE), ST_RESUMING));
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
        cmocka_unit_test(derived_matrix),
        cmocka_unit_test(table_is_sound),
        cmocka_unit_test(modes),
    };
    return cmocka_run_group_tests_name("controller_state", tests, NULL, NULL);
}
