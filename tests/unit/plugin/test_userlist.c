/* Admin user list parsing and matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "userlist.h"

static int has(const struct wa_userlist *l, const char *u)
{
    return wa_userlist_contains(l, u, strlen(u));
}

static void test_single_default(void **state)
{
    (void)state;
    struct wa_userlist l;
    assert_int_equal(wa_userlist_parse(&l, "root"), 0);
    assert_int_equal(l.n, 1);
    assert_true(has(&l, "root"));
    assert_false(has(&l, "roo"));
    assert_false(has(&l, "rootx"));
    assert_false(has(&l, "Root")); /* case-sensitive like MariaDB */
    assert_false(has(&l, ""));
    /* the hook passes (pointer, length) without a NUL at the end */
    assert_true(wa_userlist_contains(&l, "rootbeer", 4));
}

static void test_list_with_blanks_and_empties(void **state)
{
    (void)state;
    struct wa_userlist l;
    assert_int_equal(wa_userlist_parse(&l, " root ,\tsmdb-ctl,,  monitor  ,"), 0);
    assert_int_equal(l.n, 3);
    assert_true(has(&l, "root"));
    assert_true(has(&l, "smdb-ctl"));
    assert_true(has(&l, "monitor"));
    assert_false(has(&l, " root"));
}

static void test_empty_means_nobody(void **state)
{
    (void)state;
    struct wa_userlist l;
    assert_int_equal(wa_userlist_parse(&l, ""), 0);
    assert_int_equal(l.n, 0);
    assert_false(has(&l, "root"));
    assert_int_equal(wa_userlist_parse(&l, NULL), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(wa_userlist_parse(&l, " , ,"), 0);
    assert_int_equal(l.n, 0);
}

static void test_limits(void **state)
{
    (void)state;
    struct wa_userlist l;
    assert_int_equal(wa_userlist_parse(&l, "a,b,c,d,e,f,g,h"), 0);
    assert_int_equal(l.n, WA_USERLIST_MAX);
    assert_int_equal(wa_userlist_parse(&l, "a,b,c,d,e,f,g,h,i"), -1);

    char longname[sizeof l.name[0] + 2];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(wa_userlist_parse(&l, longname), -1);
    longname[sizeof l.name[0] - 1] = '\0'; /* exactly the maximum */
    assert_int_equal(wa_userlist_parse(&l, longname), 0);
    assert_true(has(&l, longname));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_default),
        cmocka_unit_test(test_list_with_blanks_and_empties),
        cmocka_unit_test(test_empty_means_nobody),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests_name("userlist", tests, NULL, NULL);
}
