/* Config file parsing, overrides and validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "util/config.h"

static void defaults_need_tokens(void **st)
{
    config c;
    char err[256];

    (void)st;
    config_defaults(&c);
    assert_string_equal(c.listen_host, "127.0.0.1");   /* loopback by default */
    assert_int_equal(c.idle_timeout_s, 300);
    assert_int_equal(config_validate(&c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "token"));
}

static void parses_file_text(void **st)
{
    config c;
    char err[256];
    const char *text = "# comment\n"
                       "listen = 127.0.0.1:9000\n"
                       "\n"
                       "  redis=10.0.0.5:6380  \n"
                       "api_token = a\n"
                       "wake_token = w\n"
                       "idle_timeout_s = 30\n"
                       "freeze_after_s = 0\n"
                       "; other comment\n"
                       "data_dir = /srv/smdb";

    (void)st;
    config_defaults(&c);
    assert_int_equal(config_parse_text(&c, text, err, sizeof(err)), 0);
    assert_int_equal(c.listen_port, 9000);
    assert_string_equal(c.redis_host, "10.0.0.5");
    assert_int_equal(c.redis_port, 6380);
    assert_int_equal(c.idle_timeout_s, 30);
    assert_string_equal(c.data_dir, "/srv/smdb");
    assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
}

static void rejects_bad_lines(void **st)
{
    config c;
    char err[256];

    (void)st;
    config_defaults(&c);
    assert_int_equal(config_parse_text(&c, "a\nlisten 1\n", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "line 1"));
    assert_int_equal(config_parse_text(&c, "colour = blue\n", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "unknown setting"));
    assert_int_equal(config_parse_text(&c, "idle_timeout_s = ten\n", err, sizeof(err)), -1);
    assert_int_equal(config_parse_text(&c, "idle_timeout_s = 0\n", err, sizeof(err)), -1);
    assert_int_equal(config_parse_text(&c, "listen = nocolon\n", err, sizeof(err)), -1);
    assert_int_equal(config_parse_text(&c, "listen = h:70000\n", err, sizeof(err)), -1);
    assert_int_equal(config_parse_text(&c, "\n\nredis = :1\n", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "line 3"));
}

static void redis_auth_settings(void **st)
{
    config c;
    char err[256];

    (void)st;
    config_defaults(&c);
    assert_int_equal(c.redis_timeout_ms, 5000);
    assert_string_equal(c.redis_user, "");
    assert_int_equal(config_set(&c, "api_token", "a", err, sizeof(err)), 0);
    assert_int_equal(config_set(&c, "wake_token", "w", err, sizeof(err)), 0);
    assert_int_equal(config_parse_text(&c, "redis_user = smdb\nredis_timeout_ms = 750\n",
                                       err, sizeof(err)), 0);
    assert_string_equal(c.redis_user, "smdb");
    assert_int_equal(c.redis_timeout_ms, 750);
    assert_int_equal(config_set(&c, "redis_timeout_ms", "5", err, sizeof(err)), -1);
    assert_int_equal(config_set(&c, "redis_password", "x", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "unknown setting"));
    /* a password file that cannot be read is an error at start, not a
     * silent unauthenticated connection */
    assert_int_equal(config_set(&c, "redis_password_file", "/nonexistent/pw", err, sizeof(err)), 0);
    assert_int_equal(config_validate(&c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "redis_password_file"));
}

static void overrides_and_cross_checks(void **st)
{
    config c;
    char err[256];

    (void)st;
    config_defaults(&c);
    assert_int_equal(config_set(&c, "api_token", "x", err, sizeof(err)), 0);
    assert_int_equal(config_set(&c, "wake_token", "x", err, sizeof(err)), 0);
    assert_int_equal(config_validate(&c, err, sizeof(err)), -1);   /* same token */
    assert_int_equal(config_set(&c, "wake_token", "y", err, sizeof(err)), 0);
    assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
    assert_int_equal(config_set(&c, "freeze_after_s", "400", err, sizeof(err)), 0);
    assert_int_equal(config_validate(&c, err, sizeof(err)), -1);   /* >= idle timeout */
    assert_int_equal(config_set(&c, "freeze_after_s", "10", err, sizeof(err)), 0);
    assert_int_equal(config_set(&c, "backend", "mainframe", err, sizeof(err)), 0);
    assert_int_equal(config_validate(&c, err, sizeof(err)), -1);
    assert_int_equal(config_set(&c, "backend", "process", err, sizeof(err)), 0);
    assert_int_equal(config_set(&c, "data_dir", "relative", err, sizeof(err)), 0);
    assert_int_equal(config_validate(&c, err, sizeof(err)), -1);
    {
        char big[600];
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        assert_int_equal(config_set(&c, "data_dir", big, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "too long"));
    }
}

/* names and URLs the docker backend puts into Engine API paths, container
 * environments and PROXY settings: only their own characters */
static void docker_settings(void **st)
{
    config c;
    char err[256];
    static const struct { const char *key, *value; int ok; } cases[] = {
        {"backend", "docker", 0},
        {"docker_prefix", "smdb-t1", 0},
        {"docker_prefix", "../x", -1},
        {"docker_prefix", "-x", -1},
        {"docker_network", "smdb", 0},
        {"docker_network", "a/b", -1},
        {"docker_network", "a?b", -1},
        {"docker_image", "localhost/smdb-compute:11.8", 0},
        {"docker_image", "img with space", -1},
        {"docker_report_url", "http://controller:8480", 0},
        {"docker_report_url", "http://x\n", -1},
        {"docker_proxy_networks", "172.30.0.10/32,10.0.0.0/8", 0},
        {"docker_proxy_networks", "1.2.3.4 ; x", -1},
    };

    (void)st;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        config_defaults(&c);
        assert_int_equal(config_set(&c, "api_token", "x", err, sizeof(err)), 0);
        assert_int_equal(config_set(&c, "wake_token", "y", err, sizeof(err)), 0);
        assert_int_equal(config_set(&c, cases[i].key, cases[i].value, err, sizeof(err)), 0);
        if (config_validate(&c, err, sizeof(err)) != cases[i].ok)
            fail_msg("%s = %s: expected %d (%s)", cases[i].key, cases[i].value, cases[i].ok, err);
    }
}

static void shipped_config_parses(void **st)
{
    config c;
    char err[256];

    (void)st;
    config_defaults(&c);
    assert_int_equal(config_load_file(&c, "../config/controller.conf", err, sizeof(err)), 0);
    assert_int_equal(c.listen_port, 8480);
    assert_int_equal(config_load_file(&c, "/nonexistent.conf", err, sizeof(err)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_need_tokens),
        cmocka_unit_test(parses_file_text),
        cmocka_unit_test(rejects_bad_lines),
        cmocka_unit_test(redis_auth_settings),
        cmocka_unit_test(overrides_and_cross_checks),
        cmocka_unit_test(docker_settings),
        cmocka_unit_test(shipped_config_parses),
    };
    return cmocka_run_group_tests_name("controller_config", tests, NULL, NULL);
}
