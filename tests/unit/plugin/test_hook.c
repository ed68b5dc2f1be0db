/* The audit hook, driven with hand-made server events: what counts as a
 * connection, a failed connect, a query, and when the reporter is poked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <mysql/plugin_audit.h>

#include "clock.h"
#include "hook.h"

static struct wa_hook hook;
static int pokes;

static void count_poke(void *arg)
{
    assert_ptr_equal(arg, &hook);
    pokes++;
}

static int setup(void **state)
{
    (void)state;
    wa_hook_reset(&hook, 1000);
    assert_int_equal(wa_userlist_parse(&hook.admins, "root,ctl"), 0);
    hook.poke = count_poke;
    hook.poke_arg = &hook;
    pokes = 0;
    return 0;
}

static void conn_event(unsigned sub, unsigned long id, const char *user, int status)
{
    struct mysql_event_connection ev;
    memset(&ev, 0, sizeof ev);
    ev.event_subclass = sub;
    ev.status = status;
    ev.thread_id = id;
    ev.user = user;
    ev.user_length = user ? (unsigned)strlen(user) : 0;
    wa_hook_event(&hook, MYSQL_AUDIT_CONNECTION_CLASS, &ev);
}

static void connect_ok(unsigned long id, const char *user) { conn_event(MYSQL_AUDIT_CONNECTION_CONNECT, id, user, 0); }
static void connect_fail(unsigned long id, const char *user) { conn_event(MYSQL_AUDIT_CONNECTION_CONNECT, id, user, 1045); }
static void disconnect(unsigned long id, const char *user) { conn_event(MYSQL_AUDIT_CONNECTION_DISCONNECT, id, user, 0); }

static void general_as(unsigned sub, unsigned long id, const char *command,
                       const char *user_host, int error)
{
    struct mysql_event_general ev;
    memset(&ev, 0, sizeof ev);
    ev.event_subclass = sub;
    ev.general_error_code = error;
    ev.general_thread_id = id;
    ev.general_user = user_host;
    ev.general_user_length = (unsigned)strlen(user_host);
    ev.general_command = command;
    ev.general_command_length = (unsigned)strlen(command);
    wa_hook_event(&hook, MYSQL_AUDIT_GENERAL_CLASS, &ev);
}

static void general(unsigned sub, unsigned long id, const char *command)
{
    general_as(sub, id, command, "app[app] @  [127.0.0.1]", 0);
}

/* What MariaDB 10.11 sends for COM_CHANGE_USER: a connection event that
 * names the old user, then the command's STATUS event as the current one
 * (the new user, or the old one again when the change failed). */
static void change_user(unsigned long id, const char *old_user, const char *new_user, int status)
{
    conn_event(MYSQL_AUDIT_CONNECTION_CHANGE_USER, id, old_user, status);
    const char *now = status ? old_user : new_user;
    char user_host[256];
    snprintf(user_host, sizeof user_host, "%s[%s] @ localhost []", now, now);
    general_as(MYSQL_AUDIT_GENERAL_STATUS, id, "Change user", user_host, status);
}

static void query(unsigned long id) { general(MYSQL_AUDIT_GENERAL_STATUS, id, "Query"); }

static struct wa_snapshot snap(void)
{
    struct wa_snapshot s;
    wa_counters_snapshot(&hook.counters, &s);
    return s;
}

static void test_reset_state(void **state)
{
    (void)state;
    struct wa_snapshot s = snap();
    assert_int_equal(s.connections, 0);
    assert_int_equal(s.connects + s.disconnects + s.failed_connects + s.queries, 0);
    assert_int_equal(s.last_activity_ms, 1000); /* start counts as activity */
}

/* The reporter's local SQL session: never a connection, never a query,
 * even if it carried a user name */
static void test_own_session_is_not_activity(void **state)
{
    (void)state;
    atomic_store(&hook.own_tid, 77);
    connect_ok(77, "app");
    query(77);
    general(MYSQL_AUDIT_GENERAL_STATUS, 77, "Query");
    disconnect(77, "app");
    struct wa_snapshot s = snap();
    assert_int_equal(s.connects + s.disconnects + s.queries, 0);
    assert_int_equal(pokes, 0);
    /* others still count; id 0 never matches "no own session" */
    connect_ok(78, "app");
    query(78);
    atomic_store(&hook.own_tid, 0);
    connect_ok(0, "app");
    s = snap();
    assert_int_equal(s.connects, 2);
    assert_int_equal(s.queries, 1);
}

static void test_connect_query_disconnect(void **state)
{
    (void)state;
    int64_t before = wa_wall_coarse_ms();
    connect_ok(10, "app");
    connect_ok(11, "app");
    connect_ok(12, "other");
    for (int i = 0; i < 5; i++) {
        query(10);
        query(11);
    }
    query(12);
    struct wa_snapshot s = snap();
    assert_int_equal(s.connections, 3);
    assert_int_equal(s.connects, 3);
    assert_int_equal(s.queries, 11);
    assert_true(s.last_query_ms >= before);
    assert_true(s.last_connection_ms >= before);
    disconnect(10, "app");
    disconnect(11, "app");
    disconnect(12, "other");
    s = snap();
    assert_int_equal(s.connections, 0);
    assert_int_equal(s.disconnects, 3);
    assert_int_equal(s.failed_connects, 0);
    /* one 0->1 and one 1->0 transition; the hook does not clear urgent */
    assert_int_equal(pokes, 1);
    assert_int_equal(atomic_load(&hook.urgent), 1);
}

static void test_poke_once_per_report(void **state)
{
    (void)state;
    connect_ok(1, "app");
    assert_int_equal(pokes, 1);
    disconnect(1, "app");
    connect_ok(2, "app");
    assert_int_equal(pokes, 1); /* folded into the pending report */
    atomic_store(&hook.urgent, 0); /* the reporter took its snapshot */
    disconnect(2, "app");
    assert_int_equal(pokes, 2);
    atomic_store(&hook.urgent, 0);
    connect_ok(3, "app");
    connect_ok(4, "app"); /* 1->2: not a transition */
    disconnect(3, "app"); /* 2->1: not a transition */
    assert_int_equal(pokes, 3);
}

static void test_failed_connect(void **state)
{
    (void)state;
    connect_fail(20, "app");
    struct wa_snapshot s = snap();
    assert_int_equal(s.failed_connects, 1);
    assert_int_equal(s.connections, 0);
    assert_int_equal(s.connects, 0);
    assert_int_equal(s.last_activity_ms, 1000); /* not activity */
    query(20); /* cannot happen, but must not count */
    disconnect(20, "app"); /* the failed session closing: no decrement */
    s = snap();
    assert_int_equal(s.connections, 0);
    assert_int_equal(s.disconnects, 0);
    assert_int_equal(s.queries, 0);
    assert_int_equal(pokes, 0);
}

static void test_admin_and_internal_ignored(void **state)
{
    (void)state;
    connect_ok(30, "root");
    connect_ok(31, "ctl");
    connect_ok(32, NULL);  /* server-internal */
    connect_ok(33, "");    /* no user */
    connect_fail(34, "root"); /* a failing health check is not a failed client */
    connect_fail(35, NULL);   /* handshake garbage */
    for (unsigned long id = 30; id <= 35; id++)
        query(id);
    for (unsigned long id = 30; id <= 35; id++)
        disconnect(id, "root");
    struct wa_snapshot s = snap();
    assert_int_equal(s.connections, 0);
    assert_int_equal(s.connects, 0);
    assert_int_equal(s.disconnects, 0);
    assert_int_equal(s.failed_connects, 0);
    assert_int_equal(s.queries, 0);
    assert_int_equal(s.last_activity_ms, 1000);
    assert_int_equal(pokes, 0);
}

static void test_double_disconnect(void **state)
{
    (void)state;
    connect_ok(40, "app");
    disconnect(40, "app");
    disconnect(40, "app"); /* shutdown may report it twice */
    struct wa_snapshot s = snap();
    assert_int_equal(s.connections, 0);
    assert_int_equal(s.disconnects, 1);
}

static void test_change_user(void **state)
{
    (void)state;
    connect_ok(50, "app");
    change_user(50, "app", "other", 0); /* client to client: still one session */
    assert_int_equal(snap().connections, 1);
    assert_int_equal(snap().connects, 1);
    assert_int_equal(snap().queries, 0); /* a change of user is not a query */
    change_user(50, "other", "root", 0); /* client becomes admin: leaves */
    assert_int_equal(snap().connections, 0);
    assert_int_equal(snap().disconnects, 1);
    assert_int_equal(pokes, 1);
    query(50);
    assert_int_equal(snap().queries, 0);
    change_user(50, "root", "app", 1045); /* failed: stays admin */
    assert_int_equal(snap().connections, 0);
    change_user(50, "root", "app", 0); /* admin becomes client: joins */
    assert_int_equal(snap().connections, 1);
    assert_int_equal(snap().connects, 2);
    query(50);
    assert_int_equal(snap().queries, 1);
    change_user(50, "app", "root", 1045); /* failed: stays client */
    assert_int_equal(snap().connections, 1);
    disconnect(50, "app");
    struct wa_snapshot s = snap();
    assert_int_equal(s.connections, 0);
    assert_int_equal(s.connects, 2);
    assert_int_equal(s.disconnects, 2);
    assert_int_equal(s.connects - s.disconnects, (uint64_t)s.connections);
}

static void test_change_user_event_alone_changes_nothing(void **state)
{
    (void)state;
    /* the connection-class event names the old user: acting on it would
     * count an admin who became a client as leaving */
    connect_ok(51, "app");
    conn_event(MYSQL_AUDIT_CONNECTION_CHANGE_USER, 51, "root", 0);
    conn_event(MYSQL_AUDIT_CONNECTION_CHANGE_USER, 52, "app", 0);
    assert_int_equal(snap().connections, 1);
    assert_int_equal(snap().connects, 1);
    /* an unparseable user_host leaves the session as it was */
    general_as(MYSQL_AUDIT_GENERAL_STATUS, 51, "Change user", "garbage", 0);
    assert_int_equal(snap().connections, 1);
}

static void test_only_status_events_count(void **state)
{
    (void)state;
    connect_ok(60, "app");
    general(MYSQL_AUDIT_GENERAL_LOG, 60, "Query");
    general(MYSQL_AUDIT_GENERAL_ERROR, 60, "Query");
    general(MYSQL_AUDIT_GENERAL_RESULT, 60, "Query");
    general(MYSQL_AUDIT_GENERAL_WARNING, 60, "Query");
    assert_int_equal(snap().queries, 0);
    general(MYSQL_AUDIT_GENERAL_STATUS, 60, "Query");
    general(MYSQL_AUDIT_GENERAL_STATUS, 60, "Execute");
    general(MYSQL_AUDIT_GENERAL_STATUS, 60, "Ping");
    general(MYSQL_AUDIT_GENERAL_STATUS, 60, "Quit"); /* the session ending */
    assert_int_equal(snap().queries, 3);
}

static void test_other_classes_ignored(void **state)
{
    (void)state;
    struct mysql_event_table ev;
    memset(&ev, 0, sizeof ev);
    wa_hook_event(&hook, MYSQL_AUDIT_TABLE_CLASS, &ev);
    conn_event(99, 1, "app", 0); /* unknown subclass */
    struct wa_snapshot s = snap();
    assert_int_equal(s.connections, 0);
    assert_int_equal(s.connects, 0);
}

static void test_queries_spread_over_stripes(void **state)
{
    (void)state;
    for (unsigned long id = 100; id < 164; id++)
        connect_ok(id, "app");
    for (int r = 0; r < 100; r++)
        for (unsigned long id = 100; id < 164; id++)
            query(id);
    assert_int_equal(wa_counters_queries(&hook.counters), 6400);
    unsigned used = 0;
    for (int i = 0; i < WA_QUERY_STRIPES; i++)
        used += atomic_load(&hook.counters.stripes[i].queries) > 0;
    assert_int_equal(used, WA_QUERY_STRIPES);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_reset_state, setup),
        cmocka_unit_test_setup(test_connect_query_disconnect, setup),
        cmocka_unit_test_setup(test_own_session_is_not_activity, setup),
        cmocka_unit_test_setup(test_poke_once_per_report, setup),
        cmocka_unit_test_setup(test_failed_connect, setup),
        cmocka_unit_test_setup(test_admin_and_internal_ignored, setup),
        cmocka_unit_test_setup(test_double_disconnect, setup),
        cmocka_unit_test_setup(test_change_user, setup),
        cmocka_unit_test_setup(test_change_user_event_alone_changes_nothing, setup),
        cmocka_unit_test_setup(test_only_status_events_count, setup),
        cmocka_unit_test_setup(test_other_classes_ignored, setup),
        cmocka_unit_test_setup(test_queries_spread_over_stripes, setup),
    };
    return cmocka_run_group_tests_name("hook", tests, NULL, NULL);
}
