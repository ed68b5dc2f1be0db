/* Finding the login user in the server's "priv_user[user] @ host [ip]". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "userhost.h"

static const char *user_of(const char *s, char *out)
{
    const char *u;
    size_t n;
    if (wa_user_from_user_host(s, strlen(s), &u, &n) != 0)
        return NULL;
    memcpy(out, u, n);
    out[n] = '\0';
    return out;
}

static void test_shapes(void **state)
{
    (void)state;
    char b[256];
    assert_string_equal(user_of("app[app] @  [127.0.0.1]", b), "app");
    assert_string_equal(user_of("root[root] @ localhost []", b), "root");
    /* anonymous account: empty priv_user */
    assert_string_equal(user_of("[guest] @ localhost []", b), "guest");
    /* a proxied login: priv_user differs */
    assert_string_equal(user_of("real[alias] @ h [1.2.3.4]", b), "alias");
    /* brackets and " @ " inside a plain account's name */
    assert_string_equal(user_of("a[b] @ c[a[b] @ c] @ h [ip]", b), "a[b] @ c");
    assert_string_equal(user_of("x]y[x]y] @ localhost []", b), "x]y");
    /* no user at all (server-internal) */
    assert_string_equal(user_of("[] @  []", b), "");
}

static void test_rejects(void **state)
{
    (void)state;
    char b[256];
    assert_null(user_of("", b));
    assert_null(user_of("garbage", b));
    assert_null(user_of("no brackets @ host", b));
    assert_null(user_of("user] @ host [ip]", b)); /* no opening bracket */
    const char *u;
    size_t n;
    assert_int_equal(wa_user_from_user_host(NULL, 0, &u, &n), -1);
    /* length is honoured: the tail beyond n is not read */
    assert_int_equal(wa_user_from_user_host("app[app] @ x", 5, &u, &n), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_rejects),
    };
    return cmocka_run_group_tests_name("userhost", tests, NULL, NULL);
}
