/* Report JSON: the exact bytes of the contract in docs/interfaces.md. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "report.h"

static struct wa_report sample(void)
{
    struct wa_report r = {
        .compute_id = "p1-abc123",
        .seq = 17,
        .connections = 2,
        .connects = 40,
        .failed_connects = 1,
        .disconnects = 38,
        .queries = 1234,
        .last_activity_ms = 1732290000123,
        .sent_at_ms = 1732290000456,
        .uptime_s = 300,
    };
    return r;
}

static void test_contract_example(void **state)
{
    (void)state;
    char buf[WA_REPORT_MAX];
    struct wa_report r = sample();
    int n = wa_report_json(buf, sizeof buf, &r);
    const char *want =
        "{\"compute_id\":\"p1-abc123\",\"seq\":17,\"connections\":2,\"connects\":40,"
        "\"failed_connects\":1,\"disconnects\":38,\"queries\":1234,"
        "\"last_activity_ms\":1732290000123,\"sent_at_ms\":1732290000456,\"uptime_s\":300}";
    assert_string_equal(buf, want);
    assert_int_equal(n, (int)strlen(want));
}

static void test_extremes_fit(void **state)
{
    (void)state;
    char id[81];
    memset(id, 'a', 80);
    id[80] = '\0';
    struct wa_report r = {
        .compute_id = id,
        .seq = UINT64_MAX,
        .connections = INT64_MIN,
        .connects = UINT64_MAX,
        .failed_connects = UINT64_MAX,
        .disconnects = UINT64_MAX,
        .queries = UINT64_MAX,
        .last_activity_ms = INT64_MIN,
        .sent_at_ms = INT64_MAX,
        .uptime_s = UINT64_MAX,
    };
    char buf[WA_REPORT_MAX];
    assert_true(wa_report_json(buf, sizeof buf, &r) > 0);
    assert_non_null(strstr(buf, "\"seq\":18446744073709551615,"));
    assert_non_null(strstr(buf, "\"connections\":-9223372036854775808,"));
}

static void test_truncation_is_an_error(void **state)
{
    (void)state;
    struct wa_report r = sample();
    char buf[WA_REPORT_MAX];
    int n = wa_report_json(buf, sizeof buf, &r);
    assert_true(n > 0);
    assert_int_equal(wa_report_json(buf, (size_t)n, &r), -1); /* no room for NUL */
    assert_int_equal(wa_report_json(buf, (size_t)n + 1, &r), n);
    assert_int_equal(wa_report_json(buf, 10, &r), -1);
}

static void test_escape(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(wa_json_escape(out, sizeof out, "a\"b\\c\n\x01"), 15);
    assert_string_equal(out, "a\\\"b\\\\c\\n\\u0001");
    assert_int_equal(wa_json_escape(out, sizeof out, ""), 0);
    assert_string_equal(out, "");
    assert_int_equal(wa_json_escape(out, 3, "abc"), -1);
    assert_int_equal(wa_json_escape(out, 4, "abc"), 3);
    assert_int_equal(wa_json_escape(out, 4, "\x02"), -1);
    /* UTF-8 passes through untouched */
    assert_int_equal(wa_json_escape(out, sizeof out, "\xc3\xa9"), 2);
}

static void test_escaped_id_in_report(void **state)
{
    (void)state;
    struct wa_report r = sample();
    r.compute_id = "x\"y";
    char buf[WA_REPORT_MAX];
    assert_true(wa_report_json(buf, sizeof buf, &r) > 0);
    assert_non_null(strstr(buf, "{\"compute_id\":\"x\\\"y\","));
}

static void test_server_fields(void **state)
{
    (void)state;
    struct wa_report r = sample();
    struct wa_stats st = {.sql_ok = 1, .threads_running = 1, .busy_sessions = 2,
                          .open_trx = 3, .events = 4, .bp_bytes = 134217728,
                          .bp_pages_total = 8192, .bp_pages_data = 100, .bp_pages_free = 8000,
                          .bp_read_requests = 5555, .bp_reads = 66, .max_connections = 151,
                          .bp_max = 9, .own_id = 7, .cpu_ok = 1, .cpu_ms = 1230};
    r.stats = &st;
    char buf[WA_REPORT_MAX];
    int n = wa_report_json(buf, sizeof buf, &r);
    const char *want =
        "{\"compute_id\":\"p1-abc123\",\"seq\":17,\"connections\":2,\"connects\":40,"
        "\"failed_connects\":1,\"disconnects\":38,\"queries\":1234,"
        "\"last_activity_ms\":1732290000123,\"sent_at_ms\":1732290000456,\"uptime_s\":300,"
        "\"threads_running\":1,\"busy_sessions\":2,\"open_trx\":3,\"events\":4,"
        "\"bp_bytes\":134217728,\"bp_pages_total\":8192,\"bp_pages_data\":100,"
        "\"bp_pages_free\":8000,\"bp_read_requests\":5555,\"bp_reads\":66,"
        "\"max_connections\":151,\"cpu_ms\":1230}";
    assert_string_equal(buf, want);
    assert_int_equal(n, (int)strlen(want));

    /* the SQL session failed: only cpu_ms; no /proc either: the plain report */
    st.sql_ok = 0;
    n = wa_report_json(buf, sizeof buf, &r);
    assert_true(n > 0);
    assert_null(strstr(buf, "threads_running"));
    assert_non_null(strstr(buf, ",\"uptime_s\":300,\"cpu_ms\":1230}"));
    st.cpu_ok = 0;
    n = wa_report_json(buf, sizeof buf, &r);
    assert_true(n > 0);
    assert_non_null(strstr(buf, ",\"uptime_s\":300}"));

    /* truncated anywhere in the optional part: an error, never half a key */
    st.sql_ok = st.cpu_ok = 1;
    n = wa_report_json(buf, sizeof buf, &r);
    for (int cap = 1; cap <= n; cap++)
        assert_int_equal(wa_report_json(buf, (size_t)cap, &r), -1);
    assert_int_equal(wa_report_json(buf, (size_t)n + 1, &r), n);
}

static void test_extremes_with_server_fields_fit(void **state)
{
    (void)state;
    char id[81];
    memset(id, '\x01', 80); /* every byte a 6-byte \\u escape */
    id[80] = '\0';
    struct wa_stats st;
    memset(&st, 0xff, sizeof st);
    st.sql_ok = st.cpu_ok = 1;
    struct wa_report r = {.compute_id = id, .seq = UINT64_MAX, .connections = INT64_MIN,
                          .connects = UINT64_MAX, .failed_connects = UINT64_MAX,
                          .disconnects = UINT64_MAX, .queries = UINT64_MAX,
                          .last_activity_ms = INT64_MIN, .sent_at_ms = INT64_MIN,
                          .uptime_s = UINT64_MAX, .stats = &st};
    char buf[WA_REPORT_MAX];
    assert_true(wa_report_json(buf, sizeof buf, &r) > 0);
    assert_non_null(strstr(buf, "\"cpu_ms\":18446744073709551615}"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contract_example),
        cmocka_unit_test(test_extremes_fit),
        cmocka_unit_test(test_truncation_is_an_error),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_escaped_id_in_report),
        cmocka_unit_test(test_server_fields),
        cmocka_unit_test(test_extremes_with_server_fields_fit),
    };
    return cmocka_run_group_tests_name("report", tests, NULL, NULL);
}
