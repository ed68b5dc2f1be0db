/* Id validation, secrets and hashing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "util/ids.h"

static void project_ids(void **st)
{
    char longest[64], too_long[65];

    (void)st;
    memset(longest, 'a', 63);
    longest[63] = '\0';
    memset(too_long, 'a', 64);
    too_long[64] = '\0';
    assert_true(project_id_valid("a"));
    assert_true(project_id_valid("my-project-42"));
    assert_true(project_id_valid(longest));
    assert_false(project_id_valid(too_long));
    assert_false(project_id_valid(""));
    assert_false(project_id_valid(NULL));
    assert_false(project_id_valid("Upper"));
    assert_false(project_id_valid("under_score"));
    assert_false(project_id_valid("dot.ted"));
    assert_false(project_id_valid("../etc"));
    assert_false(project_id_valid("a b"));
    assert_false(project_id_valid("a:b"));        /* would split a Redis key */
    assert_false(project_id_valid("a/b"));        /* a path */
    assert_false(project_id_valid("caf\xc3\xa9"));
}

static void compute_ids(void **st)
{
    char s[82];

    (void)st;
    memset(s, 'b', 80);
    s[80] = '\0';
    assert_true(compute_id_valid(s));
    s[80] = 'b';
    s[81] = '\0';
    assert_false(compute_id_valid(s));
    assert_true(compute_id_valid("proj-0a1b2c"));
    assert_false(compute_id_valid("proj*"));
}

static void randomness(void **st)
{
    char a[25], b[25], h[17];

    (void)st;
    assert_int_equal(random_alnum(a, 24), 0);
    assert_int_equal(random_alnum(b, 24), 0);
    assert_int_equal(strlen(a), 24);
    assert_string_not_equal(a, b);
    for (int i = 0; i < 24; i++)
        assert_true((a[i] >= 'a' && a[i] <= 'z') || (a[i] >= 'A' && a[i] <= 'Z') ||
                    (a[i] >= '0' && a[i] <= '9'));
    assert_int_equal(random_hex(h, 8), 0);
    assert_int_equal(strlen(h), 16);
    assert_int_equal(strspn(h, "0123456789abcdef"), 16);
}

static void hashing(void **st)
{
    char out[65];

    (void)st;
    sha256_hex("abc", out);
    assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_true(secret_equal("token", "token"));
    assert_false(secret_equal("token", "tokem"));
    assert_false(secret_equal("token", "token2"));
    assert_false(secret_equal("", "x"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(project_ids),
        cmocka_unit_test(compute_ids),
        cmocka_unit_test(randomness),
        cmocka_unit_test(hashing),
    };
    return cmocka_run_group_tests_name("controller_ids", tests, NULL, NULL);
}
