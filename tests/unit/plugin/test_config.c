/* Settings validation and report URL composition. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"

static void test_compute_id(void **state)
{
    (void)state;
    assert_true(wa_valid_compute_id("p1-abc123"));
    assert_true(wa_valid_compute_id("a"));
    assert_false(wa_valid_compute_id(""));
    assert_false(wa_valid_compute_id("P1"));
    assert_false(wa_valid_compute_id("p1_abc"));
    assert_false(wa_valid_compute_id("p1/../x"));
    assert_false(wa_valid_compute_id("p1 abc"));
    char id[WA_COMPUTE_ID_MAX + 2];
    memset(id, 'a', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    assert_false(wa_valid_compute_id(id));
    id[WA_COMPUTE_ID_MAX] = '\0';
    assert_true(wa_valid_compute_id(id));
}

static void test_token(void **state)
{
    (void)state;
    assert_true(wa_valid_token("abcDEF012-_.~+/="));
    assert_false(wa_valid_token(""));
    assert_false(wa_valid_token("abc\r\nX-Evil: 1"));
    assert_false(wa_valid_token("has space"));
    assert_false(wa_valid_token("tab\t"));
    assert_false(wa_valid_token("\x7f"));
    assert_false(wa_valid_token("caf\xc3\xa9"));
}

static void test_url(void **state)
{
    (void)state;
    assert_true(wa_valid_url("http://127.0.0.1:8080/api/v1/compute/x/activity"));
    assert_true(wa_valid_url("https://ctl.example"));
    assert_true(wa_valid_url("HTTP://h"));
    assert_false(wa_valid_url("http://"));
    assert_false(wa_valid_url("https://"));
    assert_false(wa_valid_url("ftp://h/x"));
    assert_false(wa_valid_url("file:///etc/passwd"));
    assert_false(wa_valid_url("127.0.0.1:8080"));
    assert_false(wa_valid_url("http://h/a b"));
    assert_false(wa_valid_url("http://h/\r\n"));
}

static void test_report_url(void **state)
{
    (void)state;
    char out[256];
    assert_int_equal(wa_report_url(out, sizeof out, "http://127.0.0.1:8080", "p1-abc"), 0);
    assert_string_equal(out, "http://127.0.0.1:8080/api/v1/compute/p1-abc/activity");
    assert_int_equal(wa_report_url(out, sizeof out, "http://127.0.0.1:8080/", "p1-abc"), 0);
    assert_string_equal(out, "http://127.0.0.1:8080/api/v1/compute/p1-abc/activity");
    assert_int_equal(wa_report_url(out, sizeof out, "http://h:1/custom/path", "p1-abc"), 0);
    assert_string_equal(out, "http://h:1/custom/path");
    assert_int_equal(wa_report_url(out, 20, "http://127.0.0.1:8080", "p1-abc"), -1);
    const char *exact = "http://h:1/custom/path";
    assert_int_equal(wa_report_url(out, strlen(exact), exact, "x"), -1);
    assert_int_equal(wa_report_url(out, strlen(exact) + 1, exact, "x"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compute_id),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_url),
        cmocka_unit_test(test_report_url),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
