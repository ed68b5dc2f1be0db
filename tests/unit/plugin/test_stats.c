/* The server signals from SQL rows: number parsing, names, busy sessions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "stats.h"

#define S(lit) lit, strlen(lit)

static void test_parse_u64(void **state)
{
    (void)state;
    uint64_t v = 99;
    assert_int_equal(wa_parse_u64(S("0"), &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(wa_parse_u64(S("134217728"), &v), 0);
    assert_int_equal(v, 134217728);
    assert_int_equal(wa_parse_u64(S("18446744073709551615"), &v), 0);
    assert_true(v == UINT64_MAX);
    v = 5;
    const char *bad[] = {"", "-1", "+1", " 1", "1 ", "1.5", "1e3", "0x10", "abc",
                         "18446744073709551616", "99999999999999999999", "000000000000000000001"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(wa_parse_u64(bad[i], strlen(bad[i]), &v), -1);
    assert_int_equal(v, 5); /* untouched on error */
    assert_int_equal(wa_parse_u64(NULL, 0, &v), -1);
    /* exactly len bytes: the rest of the buffer does not matter */
    assert_int_equal(wa_parse_u64("12xyz", 2, &v), 0);
    assert_int_equal(v, 12);
}

static void test_set_names(void **state)
{
    (void)state;
    struct wa_stats st;
    memset(&st, 0, sizeof st);
    static const char *rows[][2] = {
        {"THREADS_RUNNING", "3"}, {"Innodb_buffer_pool_pages_total", "2048"},
        {"INNODB_BUFFER_POOL_PAGES_DATA", "300"}, {"INNODB_BUFFER_POOL_PAGES_FREE", "1700"},
        {"INNODB_BUFFER_POOL_READ_REQUESTS", "123456"}, {"INNODB_BUFFER_POOL_READS", "77"},
        {"OWN_ID", "42"}, {"BP_BYTES", "33554432"}, {"MAX_CONNECTIONS", "500"},
        {"OPEN_TRX", "1"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        assert_int_equal(wa_stats_set(&st, S(rows[i][0]), S(rows[i][1])), 0);
    wa_stats_finish(&st);
    assert_int_equal(st.sql_ok, 0); /* EVENTS missing */
    assert_int_equal(wa_stats_set(&st, S("EVENTS"), S("2")), 0);
    wa_stats_finish(&st);
    assert_int_equal(st.sql_ok, 1);
    assert_int_equal(st.bp_max, 0); /* optional */
    assert_int_equal(wa_stats_set(&st, S("BP_MAX"), S("4294967296")), 0);
    assert_true(st.bp_max == 4294967296ULL);
    assert_int_equal(st.threads_running, 3);
    assert_int_equal(st.bp_pages_total, 2048);
    assert_int_equal(st.bp_pages_data, 300);
    assert_int_equal(st.bp_pages_free, 1700);
    assert_int_equal(st.bp_read_requests, 123456);
    assert_int_equal(st.bp_reads, 77);
    assert_int_equal(st.own_id, 42);
    assert_int_equal(st.bp_bytes, 33554432);
    assert_int_equal(st.max_connections, 500);
    assert_int_equal(st.open_trx, 1);
    assert_int_equal(st.events, 2);

    assert_int_equal(wa_stats_set(&st, S("UPTIME"), S("5")), 1);
    assert_int_equal(wa_stats_set(&st, S("THREADS_RUNNINGX"), S("5")), 1);
    assert_int_equal(wa_stats_set(&st, "THREADS", 7, S("5")), 1); /* a prefix is no match */
    assert_int_equal(wa_stats_set(&st, NULL, 0, S("5")), 1);
    assert_int_equal(wa_stats_set(&st, S("OPEN_TRX"), S("-1")), -1);
    assert_int_equal(wa_stats_set(&st, S("OPEN_TRX"), NULL, 0), -1); /* SQL NULL */
    assert_int_equal(st.open_trx, 1);
}

static void test_own_session_not_running(void **state)
{
    (void)state;
    struct wa_stats st = {.threads_running = 1, .own_listed = 1};
    wa_stats_finish(&st);
    assert_int_equal(st.threads_running, 0);
    wa_stats_finish(&st); /* never below zero */
    assert_int_equal(st.threads_running, 0);
    st.threads_running = 2;
    st.own_listed = 0; /* not in the thread list: not counted by the server */
    wa_stats_finish(&st);
    assert_int_equal(st.threads_running, 2);
}

static void test_busy_rows(void **state)
{
    (void)state;
    struct wa_userlist admins;
    assert_int_equal(wa_userlist_parse(&admins, "root,ctl"), 0);
    /* a client statement, replication, a running event, a login in progress */
    assert_true(wa_stats_busy_row(&admins, 9, 1, S("app"), S("Query")));
    assert_true(wa_stats_busy_row(&admins, 9, 2, S("system user"), S("Slave_SQL")));
    assert_true(wa_stats_busy_row(&admins, 9, 3, S("app"), S("Execute")));
    assert_true(wa_stats_busy_row(&admins, 9, 4, S("unauthenticated user"), S("Connect")));
    assert_true(wa_stats_busy_row(&admins, 9, 5, NULL, 0, S("Query")));
    /* idle, internal, ours, the controller's */
    assert_false(wa_stats_busy_row(&admins, 9, 1, S("app"), S("Sleep")));
    assert_false(wa_stats_busy_row(&admins, 9, 6, S("event_scheduler"), S("Daemon")));
    assert_false(wa_stats_busy_row(&admins, 9, 9, S(""), S("Query")));
    assert_false(wa_stats_busy_row(&admins, 9, 7, S("ctl"), S("Query")));
    assert_false(wa_stats_busy_row(&admins, 9, 7, S("root"), S("Query")));
    /* exact names only */
    assert_true(wa_stats_busy_row(&admins, 9, 7, S("Root"), S("Query")));
    assert_true(wa_stats_busy_row(&admins, 9, 1, S("app"), S("Sleeping")));
    assert_true(wa_stats_busy_row(&admins, 9, 1, S("app"), NULL, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_u64),
        cmocka_unit_test(test_set_names),
        cmocka_unit_test(test_own_session_not_running),
        cmocka_unit_test(test_busy_rows),
    };
    return cmocka_run_group_tests_name("stats", tests, NULL, NULL);
}
