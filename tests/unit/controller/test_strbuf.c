/* The one string buffer: grows, holds NULs, fails for good past its limit,
 * hands its text over. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "util/strbuf.h"

static void grows(void **st)
{
    strbuf b = {0};
    char *s;

    (void)st;
    assert_string_equal(sb_str(&b), "");
    for (int i = 0; i < 1000; i++)
        assert_true(sb_printf(&b, "%04d,", i));
    assert_int_equal(b.len, 5000);
    assert_int_equal(strncmp(sb_str(&b), "0000,0001,", 10), 0);
    assert_string_equal(sb_str(&b) + 4995, "0999,");
    s = sb_take(&b);
    assert_int_equal(strlen(s), 5000);
    assert_null(b.buf);
    assert_int_equal(b.len, 0);
    free(s);
}

static void holds_nuls(void **st)
{
    strbuf b = {0};

    (void)st;
    assert_true(sb_add(&b, "k\0v\0", 4));
    assert_true(sb_add(&b, "", 0));
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.buf, "k\0v\0\0", 5);   /* always terminated */
    sb_free(&b);
}

static void empty_take(void **st)
{
    strbuf b = {0};
    char *s = sb_take(&b);

    (void)st;
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
}

static void limit_fails_for_good(void **st)
{
    strbuf b = {.max = 8};

    (void)st;
    assert_true(sb_puts(&b, "12345678"));
    assert_false(sb_puts(&b, "9"));
    assert_true(b.failed);
    assert_false(sb_puts(&b, ""));
    assert_false(sb_printf(&b, "%d", 1));
    assert_string_equal(sb_str(&b), "");
    assert_null(sb_take(&b));
    assert_false(b.failed);                   /* taken: empty again */
    sb_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(grows),
        cmocka_unit_test(holds_nuls),
        cmocka_unit_test(empty_take),
        cmocka_unit_test(limit_fails_for_good),
    };
    return cmocka_run_group_tests_name("controller_strbuf", tests, NULL, NULL);
}
