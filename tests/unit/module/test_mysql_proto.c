/*
 * Unit tests of the wake module's pure protocol code (mysql_proto.c,
 * wake_http.c), on packets captured from real MariaDB clients and servers.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <stdio.h>

#include <cmocka.h>

#include "mysql_proto.h"
#include "wake_http.h"
#include "fixtures.h"


#define STR(s)  ((mp_str_t) { (const uint8_t *) (s), sizeof(s) - 1 })

static const int  route_db[] = { MP_ROUTE_DATABASE };
static const int  route_user[] = { MP_ROUTE_USER };
static const int  route_both[] = { MP_ROUTE_DATABASE, MP_ROUTE_USER };
static const int  route_user_db[] = { MP_ROUTE_USER, MP_ROUTE_DATABASE };


static void
assert_str(mp_str_t s, const char *want)
{
    size_t  n = strlen(want);

    if (s.len != n || (n && memcmp(s.data, want, n) != 0)) {
        fail_msg("got \"%.*s\", want \"%s\"", (int) s.len,
                 s.data ? (const char *) s.data : "", want);
    }
}


static void
parse_ok(const uint8_t *buf, size_t len, mp_response_t *r)
{
    assert_int_equal(mp_parse_response(buf, len, 16 * 1024, r), MP_OK);
    assert_int_equal(r->packet_len, len);
}


/* HandshakeResponse41 parsing: real clients */

static void
test_parse_cli(void **state)
{
    mp_str_t       v;
    mp_response_t  r;

    (void) state;

    parse_ok(fx_cli_db, sizeof(fx_cli_db), &r);

    assert_int_equal(r.seq, 1);
    assert_int_equal(r.caps, 0x00bfa28c);
    assert_true(r.caps & MP_CLIENT_PLUGIN_AUTH);
    assert_false(r.caps & MP_CLIENT_MYSQL);
    assert_int_equal(r.ext_caps, 0x1d);
    assert_int_equal(r.charset, 33);
    assert_int_equal(r.max_packet, 0x00100000);
    assert_false(r.ssl_request);
    assert_str(r.user, "nat");
    assert_int_equal(r.auth.len, 20);
    assert_true(r.has_database);
    assert_str(r.database, "proj1");
    assert_true(r.has_plugin);
    assert_str(r.plugin, "mysql_native_password");
    assert_true(r.has_attrs);

    assert_int_equal(mp_attr_get(&r, "_client_name", &v), MP_OK);
    assert_str(v, "libmariadb");
    assert_int_equal(mp_attr_get(&r, "program_name", &v), MP_OK);
    assert_str(v, "mysql");
    assert_int_equal(mp_attr_get(&r, "_pid", &v), MP_OK);
    assert_str(v, "5519");
    assert_int_equal(mp_attr_get(&r, "nope", &v), MP_ERROR);
}


static void
test_parse_compress_and_nodb(void **state)
{
    mp_response_t  r;

    (void) state;

    parse_ok(fx_cli_compress, sizeof(fx_cli_compress), &r);
    assert_true(r.caps & MP_CLIENT_COMPRESS);
    assert_str(r.database, "proj1");

    parse_ok(fx_cli_nodb_nopw, sizeof(fx_cli_nodb_nopw), &r);
    assert_false(r.caps & MP_CLIENT_CONNECT_WITH_DB);
    assert_false(r.has_database);
    assert_int_equal(r.auth.len, 0);
    assert_str(r.user, "nat");
    assert_str(r.plugin, "mysql_native_password");
}


static void
test_parse_pymysql_and_capi(void **state)
{
    mp_str_t       v;
    mp_response_t  r;

    (void) state;

    parse_ok(fx_pymysql_db, sizeof(fx_pymysql_db), &r);
    assert_true(r.caps & MP_CLIENT_MYSQL);       /* PyMySQL sets bit 0 */
    assert_true(r.caps & MP_CLIENT_PLUGIN_AUTH);
    assert_int_equal(r.max_packet, 0xffffff);
    assert_str(r.user, "nat");
    assert_str(r.database, "proj1");
    assert_int_equal(mp_attr_get(&r, "_client_name", &v), MP_OK);
    assert_str(v, "pymysql");

    parse_ok(fx_capi_db, sizeof(fx_capi_db), &r);
    assert_str(r.user, "nat");
    assert_str(r.database, "proj1");
    assert_int_equal(mp_attr_get(&r, "_client_name", &v), MP_OK);
    assert_str(v, "libmariadb");
}


static void
test_parse_truncated(void **state)
{
    size_t         n;
    mp_response_t  r;

    (void) state;

    /* every proper prefix of a valid packet asks for more */

    for (n = 0; n < sizeof(fx_cli_db); n++) {
        assert_int_equal(mp_parse_response(fx_cli_db, n, 16 * 1024, &r),
                         MP_AGAIN);
    }

    /* bytes after the packet are not part of it */

    {
        uint8_t  buf[sizeof(fx_cli_db) + 5];

        memcpy(buf, fx_cli_db, sizeof(fx_cli_db));
        memset(buf + sizeof(fx_cli_db), 'x', 5);
        assert_int_equal(mp_parse_response(buf, sizeof(buf), 16 * 1024, &r),
                         MP_OK);
        assert_int_equal(r.packet_len, sizeof(fx_cli_db));
    }
}


static void
test_parse_oversize(void **state)
{
    mp_response_t  r;
    uint8_t        big[] = { 0xff, 0xff, 0xff, 0x01, 0x8c, 0xa2 };
    uint8_t        just[] = { 0x00, 0x40, 0x00, 0x01 };

    (void) state;

    /* a packet announcing 16 MB is refused on its header alone */
    assert_int_equal(mp_parse_response(big, sizeof(big), 16380, &r),
                     MP_TOO_LARGE);
    assert_int_equal(mp_parse_response(big, 4, 16380, &r), MP_TOO_LARGE);

    /* 16384 bytes: over a 16380 limit, but fine for a bigger one */
    assert_int_equal(mp_parse_response(just, sizeof(just), 16380, &r),
                     MP_TOO_LARGE);
    assert_int_equal(mp_parse_response(just, sizeof(just), 16384, &r),
                     MP_AGAIN);
}


static void
test_parse_malformed(void **state)
{
    uint8_t        buf[512];
    mp_response_t  r;
    size_t         n;

    (void) state;

    /* shorter than the fixed part */
    {
        uint8_t  p[] = { 0x05, 0x00, 0x00, 0x01, 'h', 'e', 'l', 'l', 'o' };
        assert_int_equal(mp_parse_response(p, sizeof(p), 16380, &r),
                         MP_ERROR);
    }

    /* HTTP, TLS ClientHello: garbage */
    {
        const char  *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        uint8_t      tls[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00 };

        assert_int_not_equal(mp_parse_response((const uint8_t *) http,
                                               strlen(http), 16380, &r),
                             MP_OK);
        assert_int_not_equal(mp_parse_response(tls, sizeof(tls), 16380, &r),
                             MP_OK);
    }

    /* no CLIENT_PROTOCOL_41 */
    memcpy(buf, fx_cli_db, sizeof(fx_cli_db));
    buf[5] &= ~0x02;
    assert_int_equal(mp_parse_response(buf, sizeof(fx_cli_db), 16380, &r),
                     MP_ERROR);

    /* auth data length running past the packet */
    memcpy(buf, fx_cli_db, sizeof(fx_cli_db));
    buf[40] = 0xfa;
    assert_int_equal(mp_parse_response(buf, sizeof(fx_cli_db), 16380, &r),
                     MP_ERROR);

    /* attributes length running past the packet */
    memcpy(buf, fx_cli_db, sizeof(fx_cli_db));
    buf[89] = 0x7f;
    assert_int_equal(mp_parse_response(buf, sizeof(fx_cli_db), 16380, &r),
                     MP_ERROR);

    /* a user name without its NUL: the packet ends in it */
    n = 4 + 32 + 3;
    memcpy(buf, fx_cli_db, 4 + 32);
    buf[0] = (uint8_t) (n - 4);
    memcpy(buf + 36, "nat", 3);
    assert_int_equal(mp_parse_response(buf, n, 16380, &r), MP_ERROR);
}


static void
test_parse_ssl_request(void **state)
{
    uint8_t        buf[36];
    mp_response_t  r;

    (void) state;

    memcpy(buf, fx_cli_db, 36);
    buf[0] = 32;
    buf[5] |= 0x08;             /* CLIENT_SSL */

    assert_int_equal(mp_parse_response(buf, sizeof(buf), 16380, &r), MP_OK);
    assert_true(r.ssl_request);

    buf[5] &= ~0x08;
    assert_int_equal(mp_parse_response(buf, sizeof(buf), 16380, &r),
                     MP_ERROR);
}


/* an old-style client: no CLIENT_PLUGIN_AUTH, NUL-terminated database */
static void
test_parse_no_plugin_auth(void **state)
{
    uint8_t        buf[128], *p;
    mp_response_t  r;
    uint32_t       caps = MP_CLIENT_PROTOCOL_41 | MP_CLIENT_SECURE_CONNECTION
                          | MP_CLIENT_CONNECT_WITH_DB;

    (void) state;

    memset(buf, 0, sizeof(buf));
    p = buf + 4;
    memcpy(p, &caps, 4);                    /* little-endian host */
    p[8] = 33;
    p += 32;
    memcpy(p, "bob", 4);
    p += 4;
    *p++ = 20;
    memset(p, 'a', 20);
    p += 20;
    memcpy(p, "proj1", 6);
    p += 6;
    buf[0] = (uint8_t) (p - buf - 4);
    buf[3] = 1;

    assert_int_equal(mp_parse_response(buf, (size_t) (p - buf), 16380, &r),
                     MP_OK);
    assert_false(r.caps & MP_CLIENT_PLUGIN_AUTH);
    assert_false(r.has_plugin);
    assert_str(r.user, "bob");
    assert_str(r.database, "proj1");
}


/* routing and project ids */

static void
test_project_ids(void **state)
{
    char  long_id[65];

    (void) state;

    assert_true(mp_valid_project_id((const uint8_t *) "proj1", 5));
    assert_true(mp_valid_project_id((const uint8_t *) "a-b-0", 5));
    assert_true(mp_valid_project_id((const uint8_t *) "-", 1));
    assert_false(mp_valid_project_id((const uint8_t *) "", 0));
    assert_false(mp_valid_project_id((const uint8_t *) "Proj", 4));
    assert_false(mp_valid_project_id((const uint8_t *) "a_b", 3));
    assert_false(mp_valid_project_id((const uint8_t *) "a.b", 3));
    assert_false(mp_valid_project_id((const uint8_t *) "a b", 3));
    assert_false(mp_valid_project_id((const uint8_t *) "a\0b", 3));
    assert_false(mp_valid_project_id((const uint8_t *) "caf\xc3\xa9", 5));

    memset(long_id, 'a', sizeof(long_id));
    assert_true(mp_valid_project_id((const uint8_t *) long_id, 63));
    assert_false(mp_valid_project_id((const uint8_t *) long_id, 64));
}


static void
test_route(void **state)
{
    mp_route_t     route;
    mp_response_t  r;

    (void) state;

    parse_ok(fx_cli_db, sizeof(fx_cli_db), &r);

    assert_int_equal(mp_route(&r, NULL, route_db, 1, &route), MP_OK);
    assert_int_equal(route.mode, MP_ROUTE_DATABASE);
    assert_str(route.project, "proj1");
    assert_str(route.user, "nat");

    /* "nat" has no prefix: user routing finds nothing */
    assert_int_equal(mp_route(&r, NULL, route_user, 1, &route), MP_ERROR);
    assert_int_equal(route.project.len, 0);

    parse_ok(fx_cli_prefix, sizeof(fx_cli_prefix), &r);

    assert_int_equal(mp_route(&r, NULL, route_user, 1, &route), MP_OK);
    assert_int_equal(route.mode, MP_ROUTE_USER);
    assert_str(route.project, "proj1");
    assert_str(route.user, "nat");

    /* no database: the second mode is used */
    assert_int_equal(mp_route(&r, NULL, route_both, 2, &route), MP_OK);
    assert_int_equal(route.mode, MP_ROUTE_USER);

    /* database routing alone: nothing to go by */
    assert_int_equal(mp_route(&r, NULL, route_db, 1, &route), MP_ERROR);
    assert_int_equal(route.project.len, 0);
}


static void
test_route_order_and_invalid(void **state)
{
    uint8_t        buf[256];
    size_t         n;
    mp_route_t     route;
    mp_response_t  r;

    (void) state;

    /* user "proj1.nat" with database "Other_DB" */

    n = 4 + 32;
    memcpy(buf, fx_cli_db, n);
    memcpy(buf + n, "proj1.nat", 10);
    n += 10;
    buf[n++] = 0;                           /* empty auth data */
    memcpy(buf + n, "Other_DB", 9);
    n += 9;
    memcpy(buf + n, "mysql_native_password", 22);
    n += 22;
    buf[4 + 2] &= ~0x10;                    /* no CONNECT_ATTRS */
    buf[0] = (uint8_t) (n - 4);
    buf[1] = buf[2] = 0;

    assert_int_equal(mp_parse_response(buf, n, 16380, &r), MP_OK);
    assert_str(r.user, "proj1.nat");
    assert_str(r.database, "Other_DB");

    /* the invalid database is skipped for the valid user prefix */
    assert_int_equal(mp_route(&r, NULL, route_both, 2, &route), MP_OK);
    assert_str(route.project, "proj1");
    assert_str(route.user, "nat");

    assert_int_equal(mp_route(&r, NULL, route_user_db, 2, &route), MP_OK);
    assert_str(route.project, "proj1");

    /* database alone: the invalid name is reported */
    assert_int_equal(mp_route(&r, NULL, route_db, 1, &route), MP_ERROR);
    assert_str(route.project, "Other_DB");
}


static void
test_route_same_project_strips_user(void **state)
{
    mp_route_t     route;
    mp_response_t  r;

    (void) state;

    memset(&r, 0, sizeof(r));
    r.user = STR("proj1.alice");
    r.database = STR("proj1");
    r.has_database = 1;

    /* database first, and the prefix names the same project: stripped */
    assert_int_equal(mp_route(&r, NULL, route_both, 2, &route), MP_OK);
    assert_int_equal(route.mode, MP_ROUTE_DATABASE);
    assert_str(route.project, "proj1");
    assert_str(route.user, "alice");

    /* database routing alone: a dotted login is just a login */
    assert_int_equal(mp_route(&r, NULL, route_db, 1, &route), MP_OK);
    assert_str(route.user, "proj1.alice");

    /* different projects: the first mode wins, the login stays whole */
    r.database = STR("proj2");
    assert_int_equal(mp_route(&r, NULL, route_both, 2, &route), MP_OK);
    assert_str(route.project, "proj2");
    assert_str(route.user, "proj1.alice");

    assert_int_equal(mp_route(&r, NULL, route_user_db, 2, &route), MP_OK);
    assert_str(route.project, "proj1");
    assert_str(route.user, "alice");
}


static void
test_route_sni(void **state)
{
    static const int  sni_db[] = { MP_ROUTE_SNI, MP_ROUTE_DATABASE };

    mp_str_t       sni;
    mp_route_t     route;
    mp_response_t  r;

    (void) state;

    parse_ok(fx_cli_db, sizeof(fx_cli_db), &r);

    sni = STR("proj7.db.example.com");
    assert_int_equal(mp_route(&r, &sni, sni_db, 2, &route), MP_OK);
    assert_int_equal(route.mode, MP_ROUTE_SNI);
    assert_str(route.project, "proj7");
    assert_str(route.user, "nat");

    sni = STR("proj7");
    assert_int_equal(mp_route(&r, &sni, sni_db, 2, &route), MP_OK);
    assert_str(route.project, "proj7");

    /* no SNI (or an IP address: not a valid id): the database decides */
    assert_int_equal(mp_route(&r, NULL, sni_db, 2, &route), MP_OK);
    assert_str(route.project, "proj1");

    sni = STR("127.0.0.1");
    assert_int_equal(mp_route(&r, &sni, sni_db, 2, &route), MP_OK);
    assert_str(route.project, "proj1");

    sni = STR("Upper.example.com");
    assert_int_equal(mp_route(&r, &sni, sni_db, 1, &route), MP_ERROR);
    assert_str(route.project, "Upper");
}


static void
test_route_user_prefix_edges(void **state)
{
    mp_route_t     route;
    mp_response_t  r;

    (void) state;

    memset(&r, 0, sizeof(r));

    r.user = STR(".nat");
    assert_int_equal(mp_route(&r, NULL, route_user, 1, &route), MP_ERROR);

    r.user = STR("proj1.");
    assert_int_equal(mp_route(&r, NULL, route_user, 1, &route), MP_ERROR);

    /* only the first dot splits: "proj1.first.last" logs in as "first.last" */
    r.user = STR("proj1.first.last");
    assert_int_equal(mp_route(&r, NULL, route_user, 1, &route), MP_OK);
    assert_str(route.project, "proj1");
    assert_str(route.user, "first.last");

    r.user = STR("BAD.nat");
    assert_int_equal(mp_route(&r, NULL, route_user, 1, &route), MP_ERROR);
    assert_str(route.project, "BAD");
}


/* greeting */

static void
test_greeting_matches_mariadb(void **state)
{
    uint8_t        out[256];
    size_t         n;
    mp_greeting_t  g;

    (void) state;

    /* rebuild the real server's greeting from its parts: byte for byte */

    memset(&g, 0, sizeof(g));
    g.version = STR("5.5.5-10.11.19-MariaDB-0+deb12u1");
    g.conn_id = 4;
    memcpy(g.scramble, "[c_4#PMqre(3h3c{bYvf", 20);
    g.caps = 0x81fff7fe;
    g.ext_caps = 0x1d;
    g.charset = 8;
    g.status = 2;
    g.plugin = STR("mysql_native_password");

    n = mp_build_greeting(out, sizeof(out), &g);

    assert_int_equal(n, sizeof(fx_mariadb_greeting));
    assert_int_equal(n, mp_greeting_size(&g));
    assert_memory_equal(out, fx_mariadb_greeting, n);

    assert_int_equal(mp_build_greeting(out, n - 1, &g), 0);
}


static void
test_greeting_parse(void **state)
{
    size_t         n;
    mp_greeting_t  g;

    (void) state;

    assert_int_equal(mp_parse_greeting(fx_mariadb_greeting,
                                       sizeof(fx_mariadb_greeting), &g),
                     MP_OK);
    assert_int_equal(g.conn_id, 4);
    assert_int_equal(g.caps, 0x81fff7fe);
    assert_false(g.caps & MP_CLIENT_MYSQL);
    assert_int_equal(g.ext_caps, 0x1d);
    assert_int_equal(g.charset, 8);
    assert_int_equal(g.status, 2);
    assert_str(g.version, "5.5.5-10.11.19-MariaDB-0+deb12u1");
    assert_str(g.plugin, "mysql_native_password");
    assert_memory_equal(g.scramble, "[c_4#PMqre(3h3c{bYvf", 20);

    for (n = 0; n < sizeof(fx_mariadb_greeting); n++) {
        assert_int_equal(mp_parse_greeting(fx_mariadb_greeting, n, &g),
                         MP_AGAIN);
    }

    /* an ERR where the greeting should be */
    {
        uint8_t  err[] = { 0x05, 0, 0, 0, 0xff, 0x10, 0x04, 'x', 'y' };
        assert_int_equal(mp_parse_greeting(err, sizeof(err), &g), MP_ERROR);
    }
}


static void
test_greeting_mysql_bit(void **state)
{
    uint8_t        out[256];
    size_t         n;
    mp_greeting_t  g, p;

    (void) state;

    memset(&g, 0, sizeof(g));
    g.version = STR("8.0.0");
    g.conn_id = 0x80000001u;
    g.caps = MP_DEFAULT_CAPS | MP_CLIENT_MYSQL;
    g.ext_caps = 0x1d;
    g.plugin = STR("mysql_native_password");

    n = mp_build_greeting(out, sizeof(out), &g);
    assert_int_equal(mp_parse_greeting(out, n, &p), MP_OK);

    /* a MySQL-style greeting carries no MariaDB extended capabilities */
    assert_int_equal(p.ext_caps, 0);
    assert_int_equal(p.conn_id, 0x80000001u);
}


/* ERR packet */

static void
test_err(void **state)
{
    uint8_t      out[64];
    size_t       n;
    const char  *msg = "Unknown database 'x'";
    uint8_t      want[] = { 0xff, 0x19, 0x04, '#', '4', '2', '0', '0', '0' };

    (void) state;

    n = mp_build_err(out, sizeof(out), 2, 1049, "42000", msg, strlen(msg));

    assert_int_equal(n, 4 + 9 + strlen(msg));
    assert_int_equal(out[0], 9 + strlen(msg));
    assert_int_equal(out[1], 0);
    assert_int_equal(out[3], 2);
    assert_memory_equal(out + 4, want, sizeof(want));
    assert_memory_equal(out + 13, msg, strlen(msg));

    assert_int_equal(mp_build_err(out, 10, 2, 1049, "42000", msg,
                                  strlen(msg)),
                     0);
}


/* the HandshakeResponse41 sent to the compute */

static void
check_upstream(const uint8_t *fx, size_t len, mp_str_t user,
    const char *want_user)
{
    uint8_t        out[1024];
    size_t         n;
    mp_response_t  r, u;
    mp_str_t       v1, v2;
    mp_str_t       plugin = STR("auth_unknown_plugin");

    parse_ok(fx, len, &r);

    n = mp_build_upstream_response(out, sizeof(out), &r, user, plugin, 1);

    assert_int_not_equal(n, 0);
    assert_int_equal(n, mp_upstream_response_size(&r, user, plugin));
    assert_int_equal(mp_build_upstream_response(out, n - 1, &r, user, plugin,
                                                1),
                     0);

    parse_ok(out, n, &u);

    assert_int_equal(u.seq, 1);
    assert_int_equal(u.caps, (r.caps & ~MP_CLIENT_SSL)
                             | MP_CLIENT_PLUGIN_AUTH);
    assert_int_equal(u.max_packet, r.max_packet);
    assert_int_equal(u.charset, r.charset);
    assert_memory_equal(u.filler, r.filler, sizeof(r.filler));
    assert_str(u.user, want_user);
    assert_int_equal(u.auth.len, 0);            /* the proxy knows nothing */
    assert_int_equal(u.has_database, r.has_database);
    assert_int_equal(u.database.len, r.database.len);
    assert_str(u.plugin, "auth_unknown_plugin");
    assert_int_equal(u.attrs.len, r.attrs.len);
    assert_memory_equal(u.attrs.data, r.attrs.data, r.attrs.len);

    if (r.has_attrs) {
        assert_int_equal(mp_attr_get(&r, "_client_name", &v1), MP_OK);
        assert_int_equal(mp_attr_get(&u, "_client_name", &v2), MP_OK);
        assert_int_equal(v1.len, v2.len);
    }
}


static void
test_upstream_response(void **state)
{
    (void) state;

    check_upstream(fx_cli_db, sizeof(fx_cli_db), STR("nat"), "nat");
    check_upstream(fx_cli_compress, sizeof(fx_cli_compress), STR("nat"),
                   "nat");
    check_upstream(fx_cli_prefix, sizeof(fx_cli_prefix), STR("nat"), "nat");
    check_upstream(fx_cli_nodb_nopw, sizeof(fx_cli_nodb_nopw), STR("nat"),
                   "nat");
    check_upstream(fx_pymysql_db, sizeof(fx_pymysql_db), STR("nat"), "nat");
    check_upstream(fx_capi_db, sizeof(fx_capi_db), STR("nat"), "nat");
}


static void
test_upstream_response_ssl_and_lenenc(void **state)
{
    uint8_t        out[2048], big[600];
    size_t         n;
    mp_response_t  r, u;
    mp_str_t       plugin = STR("auth_unknown_plugin");

    (void) state;

    parse_ok(fx_cli_db, sizeof(fx_cli_db), &r);

    /* TLS on the client leg never reaches the compute leg */
    r.caps |= MP_CLIENT_SSL;

    /* attributes of 600 bytes need a 3-byte length */
    memset(big, 0, sizeof(big));
    big[0] = 2;
    memcpy(big + 1, "_k", 2);
    big[3] = 0xfc;
    big[4] = (uint8_t) (sizeof(big) - 6);
    big[5] = (uint8_t) ((sizeof(big) - 6) >> 8);
    r.attrs.data = big;
    r.attrs.len = sizeof(big);

    n = mp_build_upstream_response(out, sizeof(out), &r, STR("nat"), plugin,
                                   1);
    assert_int_not_equal(n, 0);

    parse_ok(out, n, &u);
    assert_false(u.caps & MP_CLIENT_SSL);
    assert_int_equal(u.attrs.len, sizeof(big));
}


/* wake_preconnect's pre-greeting: the client's auth data for the compute */

static void
check_upstream_auth(const uint8_t *fx, size_t len, uint32_t drop_caps)
{
    uint8_t        out[1024];
    size_t         n;
    mp_str_t       plugin = STR("mysql_native_password");
    mp_response_t  r, u;

    parse_ok(fx, len, &r);
    r.caps &= ~drop_caps;

    n = mp_build_upstream_response_auth(out, sizeof(out), &r, STR("nat"),
                                        plugin, &r.auth, 1);
    assert_int_not_equal(n, 0);
    assert_int_equal(n, mp_upstream_response_auth_size(&r, STR("nat"), plugin,
                                                       &r.auth));
    assert_int_equal(mp_build_upstream_response_auth(out, n - 1, &r,
                                                     STR("nat"), plugin,
                                                     &r.auth, 1),
                     0);

    parse_ok(out, n, &u);
    assert_int_equal(u.seq, 1);
    assert_str(u.user, "nat");
    assert_int_equal(u.auth.len, r.auth.len);
    assert_memory_equal(u.auth.data, r.auth.data, r.auth.len);
    assert_str(u.plugin, "mysql_native_password");
    assert_int_equal(u.has_database, r.has_database);
    assert_int_equal(u.attrs.len, r.attrs.len);
}


static void
test_upstream_response_auth(void **state)
{
    uint8_t        out[1024];
    mp_str_t       none = { NULL, 0 };
    mp_response_t  r;

    (void) state;

    parse_ok(fx_cli_db, sizeof(fx_cli_db), &r);
    assert_true(mp_native_auth(&r));
    assert_int_equal(r.auth.len, MP_SCRAMBLE_LEN);

    /* lenenc, then the 1-byte length of CLIENT_SECURE_CONNECTION */
    check_upstream_auth(fx_cli_db, sizeof(fx_cli_db), 0);
    check_upstream_auth(fx_cli_db, sizeof(fx_cli_db),
                        MP_CLIENT_PLUGIN_AUTH_LENENC);
    check_upstream_auth(fx_pymysql_db, sizeof(fx_pymysql_db), 0);
    check_upstream_auth(fx_capi_db, sizeof(fx_capi_db), 0);

    /* neither encoding: NUL-terminated auth data could be cut short */
    r.caps &= ~(MP_CLIENT_PLUGIN_AUTH_LENENC | MP_CLIENT_SECURE_CONNECTION);
    assert_false(mp_native_auth(&r));
    assert_int_equal(mp_build_upstream_response_auth(out, sizeof(out), &r,
                                                     STR("nat"),
                                                     STR("x"), &r.auth, 1),
                     0);

    /* empty auth data: the same bytes as the auth-switch response's */
    parse_ok(fx_cli_db, sizeof(fx_cli_db), &r);
    assert_int_equal(mp_upstream_response_auth_size(&r, STR("nat"), STR("x"),
                                                    &none),
                     mp_upstream_response_size(&r, STR("nat"), STR("x")));
}


static void
test_native_auth(void **state)
{
    mp_response_t  r;

    (void) state;

    parse_ok(fx_cli_db, sizeof(fx_cli_db), &r);
    assert_true(mp_native_auth(&r));

    r.auth.len = 0;                     /* an empty password */
    assert_true(mp_native_auth(&r));

    r.auth.len = 32;                    /* not a native token */
    assert_false(mp_native_auth(&r));

    parse_ok(fx_cli_db, sizeof(fx_cli_db), &r);
    r.plugin = STR("client_ed25519");
    assert_false(mp_native_auth(&r));

    r.plugin = STR("mysql_native_passwor");
    assert_false(mp_native_auth(&r));

    parse_ok(fx_cli_db, sizeof(fx_cli_db), &r);
    r.has_plugin = 0;
    assert_false(mp_native_auth(&r));

    parse_ok(fx_cli_db, sizeof(fx_cli_db), &r);
    r.ssl_request = 1;
    assert_false(mp_native_auth(&r));
}


static void
test_greeting_native(void **state)
{
    uint8_t        out[256];
    size_t         n;
    mp_greeting_t  g, p;

    (void) state;

    memset(&g, 0, sizeof(g));
    g.version = STR(MP_DEFAULT_VERSION);
    g.conn_id = 42;
    g.caps = MP_DEFAULT_CAPS;
    g.ext_caps = MP_DEFAULT_EXT_CAPS;
    g.charset = MP_DEFAULT_CHARSET;
    memcpy(g.scramble, "abcdefghijklmnopqrst", MP_SCRAMBLE_LEN);
    g.plugin = STR("mysql_native_password");

    n = mp_build_greeting(out, sizeof(out), &g);
    assert_int_equal(mp_parse_greeting(out, n, &p), MP_OK);
    assert_true(mp_greeting_native(&p));
    assert_memory_equal(p.scramble, g.scramble, MP_SCRAMBLE_LEN);
    assert_int_equal(p.conn_id, 42);

    g.plugin = STR("client_ed25519");
    n = mp_build_greeting(out, sizeof(out), &g);
    assert_int_equal(mp_parse_greeting(out, n, &p), MP_OK);
    assert_false(mp_greeting_native(&p));

    g.plugin = STR("mysql_native_password");
    g.caps &= ~MP_CLIENT_PLUGIN_AUTH;
    n = mp_build_greeting(out, sizeof(out), &g);
    assert_int_equal(mp_parse_greeting(out, n, &p), MP_OK);
    assert_false(mp_greeting_native(&p));
}


/* KILL recognition and rewriting */

static int
kill_ok(const char *sql, uint64_t id, int query)
{
    mp_kill_t  k;

    if (mp_parse_kill((const uint8_t *) sql, strlen(sql), &k) != MP_OK) {
        return 0;
    }

    return k.id == id && k.query == query && k.id_len > 0
           && sql[k.id_off] >= '0' && sql[k.id_off] <= '9';
}


static int
kill_no(const char *sql)
{
    mp_kill_t  k;

    return mp_parse_kill((const uint8_t *) sql, strlen(sql), &k) == MP_ERROR;
}


static void
test_kill_parse(void **state)
{
    mp_kill_t  k;

    (void) state;

    assert_true(kill_ok("KILL 5", 5, 0));
    assert_true(kill_ok("KILL QUERY 2147483649", 2147483649u, 1));
    assert_true(kill_ok("kill query 12", 12, 1));
    assert_true(kill_ok("  KiLl \t QuErY\n\r 12 ;  ", 12, 1));
    assert_true(kill_ok("KILL CONNECTION 7", 7, 0));
    assert_true(kill_ok("KILL HARD QUERY 9", 9, 1));
    assert_true(kill_ok("KILL SOFT CONNECTION 9;", 9, 0));
    assert_true(kill_ok("KILL 4294967295", 4294967295u, 0));

    assert_true(kill_no("KILL QUERY ID 5"));
    assert_true(kill_no("KILL USER bob"));
    assert_true(kill_no("KILLQUERY 5"));
    assert_true(kill_no("KILL5"));
    assert_true(kill_no("KILL"));
    assert_true(kill_no("KILL "));
    assert_true(kill_no("KILL 5 6"));
    assert_true(kill_no("KILL 5; SELECT 1"));
    assert_true(kill_no("KILL -5"));
    assert_true(kill_no("KILL 12345678901234567890"));
    assert_true(kill_no("SELECT 1"));
    assert_true(kill_no(""));
    assert_true(kill_no("KILL QUERY"));

    assert_int_equal(mp_parse_kill((const uint8_t *) "KILL QUERY  77 ", 15,
                                   &k),
                     MP_OK);
    assert_int_equal(k.id_off, 12);
    assert_int_equal(k.id_len, 2);
}


static size_t
make_query(uint8_t *out, uint8_t seq, const char *sql)
{
    size_t  n = strlen(sql);

    out[0] = (uint8_t) (n + 1);
    out[1] = (uint8_t) ((n + 1) >> 8);
    out[2] = 0;
    out[3] = seq;
    out[4] = MP_COM_QUERY;
    memcpy(out + 5, sql, n);

    return n + 5;
}


static size_t
make_compressed(uint8_t *out, uint8_t cseq, const uint8_t *pkt, size_t len)
{
    out[0] = (uint8_t) len;
    out[1] = (uint8_t) (len >> 8);
    out[2] = 0;
    out[3] = cseq;
    out[4] = out[5] = out[6] = 0;
    memcpy(out + 7, pkt, len);

    return len + 7;
}


static void
test_first_command(void **state)
{
    uint8_t         pkt[256], cpkt[300], out[300];
    size_t          n, cn, m, i;
    mp_first_cmd_t  fc, fc2;

    (void) state;

    n = make_query(pkt, 0, "KILL QUERY 2147483661");

    /* every prefix waits for more */
    for (i = 0; i < n; i++) {
        assert_int_equal(mp_inspect_first_command(pkt, i, 0, &fc),
                         MP_CMD_MORE);
    }

    assert_int_equal(mp_inspect_first_command(pkt, n, 0, &fc), MP_CMD_KILL);
    assert_int_equal(fc.len, n);
    assert_int_equal(fc.kill.id, 2147483661u);
    assert_true(fc.kill.query);

    m = mp_rewrite_first_command(out, sizeof(out), pkt, &fc, 0, 20);
    assert_int_equal(m, n - 8);
    assert_int_equal(out[0], (uint8_t) (m - 4));
    assert_int_equal(out[3], 0);
    assert_int_equal(out[4], MP_COM_QUERY);
    assert_memory_equal(out + 5, "KILL QUERY 20", 13);

    assert_int_equal(mp_inspect_first_command(out, m, 0, &fc2), MP_CMD_KILL);
    assert_int_equal(fc2.kill.id, 20);

    /* too small an output */
    assert_int_equal(mp_rewrite_first_command(out, m - 1, pkt, &fc, 0, 20),
                     0);

    /* the same inside an uncompressed "compressed protocol" packet */

    cn = make_compressed(cpkt, 0, pkt, n);

    for (i = 0; i < cn; i++) {
        assert_int_equal(mp_inspect_first_command(cpkt, i, 1, &fc),
                         MP_CMD_MORE);
    }

    assert_int_equal(mp_inspect_first_command(cpkt, cn, 1, &fc), MP_CMD_KILL);
    assert_int_equal(fc.len, cn);

    m = mp_rewrite_first_command(out, sizeof(out), cpkt, &fc, 1, 123456);
    assert_int_equal(m, cn - 4);
    assert_int_equal(out[0], (uint8_t) (m - 7));    /* compressed length */
    assert_int_equal(out[4] | out[5] | out[6], 0);
    assert_int_equal(out[7], (uint8_t) (m - 11));   /* inner length */
    assert_memory_equal(out + 12, "KILL QUERY 123456", 17);

    assert_int_equal(mp_inspect_first_command(out, m, 1, &fc2), MP_CMD_KILL);
    assert_int_equal(fc2.kill.id, 123456);
}


static void
test_first_command_pass(void **state)
{
    uint8_t         pkt[256], cpkt[300];
    size_t          n;
    mp_first_cmd_t  fc;

    (void) state;

    n = make_query(pkt, 0, "select @@version_comment limit 1");
    assert_int_equal(mp_inspect_first_command(pkt, n, 0, &fc), MP_CMD_PASS);

    /* COM_PING */
    {
        uint8_t  ping[] = { 1, 0, 0, 0, 0x0e };
        assert_int_equal(mp_inspect_first_command(ping, 5, 0, &fc),
                         MP_CMD_PASS);
    }

    /* a long first command is decided on its header alone */
    {
        uint8_t  big[] = { 0x00, 0x10, 0x00, 0x00, 0x03, 'K' };
        assert_int_equal(mp_inspect_first_command(big, sizeof(big), 0, &fc),
                         MP_CMD_PASS);
    }

    /* not COM_QUERY, even with KILL text */
    n = make_query(pkt, 0, "KILL 5");
    pkt[4] = 0x16;                              /* COM_STMT_PREPARE */
    assert_int_equal(mp_inspect_first_command(pkt, n, 0, &fc), MP_CMD_PASS);

    /* deflated compressed packet: not inspected */
    n = make_query(pkt, 0, "KILL 5");
    make_compressed(cpkt, 0, pkt, n);
    cpkt[4] = (uint8_t) n;
    assert_int_equal(mp_inspect_first_command(cpkt, n + 7, 1, &fc),
                     MP_CMD_PASS);

    /* two packets inside one compressed packet */
    n = make_query(pkt, 0, "KILL 5");
    n += make_query(pkt + n, 1, "KILL 6");
    make_compressed(cpkt, 0, pkt, n);
    assert_int_equal(mp_inspect_first_command(cpkt, n + 7, 1, &fc),
                     MP_CMD_PASS);
}


static void
test_renumber(void **state)
{
    size_t         i, cut;
    uint8_t        stream[64], buf[64];
    mp_renumber_t  st;

    (void) state;

    /* 5 bytes to skip, a 3-byte packet seq 2, an empty packet seq 3,
       a 1-byte packet seq 4 */
    const uint8_t  in[] = { 'P', 'R', 'O', 'X', 'Y',
                            3, 0, 0, 2, 'a', 'b', 'c',
                            0, 0, 0, 3,
                            1, 0, 0, 4, 'z' };
    const uint8_t  want[] = { 'P', 'R', 'O', 'X', 'Y',
                              3, 0, 0, 1, 'a', 'b', 'c',
                              0, 0, 0, 2,
                              1, 0, 0, 3, 'z' };

    memcpy(stream, in, sizeof(in));

    /* cut the stream at every point, and byte by byte */

    for (cut = 0; cut <= sizeof(in); cut++) {
        memcpy(buf, in, sizeof(in));
        memset(&st, 0, sizeof(st));
        st.skip = 5;
        mp_renumber(&st, buf, cut, -1);
        mp_renumber(&st, buf + cut, sizeof(in) - cut, -1);
        assert_memory_equal(buf, want, sizeof(want));
    }

    memcpy(buf, in, sizeof(in));
    memset(&st, 0, sizeof(st));
    st.skip = 5;

    for (i = 0; i < sizeof(in); i++) {
        mp_renumber(&st, buf + i, 1, -1);
    }

    assert_memory_equal(buf, want, sizeof(want));

    /* and back */
    memset(&st, 0, sizeof(st));
    st.skip = 5;
    mp_renumber(&st, buf, sizeof(in), 1);
    assert_memory_equal(buf, stream, sizeof(in));
}


static void
test_packet_complete(void **state)
{
    size_t   len;
    uint8_t  empty[] = { 0, 0, 0, 5 };

    (void) state;

    assert_int_equal(mp_packet_complete(fx_auth_switch_ed25519, 3, &len),
                     MP_AGAIN);
    assert_int_equal(mp_packet_complete(fx_auth_switch_ed25519,
                                        sizeof(fx_auth_switch_ed25519) - 1,
                                        &len),
                     MP_AGAIN);
    assert_int_equal(mp_packet_complete(fx_auth_switch_ed25519,
                                        sizeof(fx_auth_switch_ed25519), &len),
                     MP_OK);
    assert_int_equal(len, sizeof(fx_auth_switch_ed25519));
    assert_int_equal(fx_auth_switch_ed25519[4], 0xfe);

    assert_int_equal(mp_packet_complete(empty, 4, &len), MP_OK);
    assert_int_equal(len, 4);
}


/* the controller's answer */

static int
http(const char *text, wh_response_t *r)
{
    return wh_parse_response((const uint8_t *) text, strlen(text), r);
}


static void
test_http_ok(void **state)
{
    wh_response_t  r;
    const char    *ok =
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: application/json\r\n"
        "x-wake-address:   127.0.0.1:40123  \r\n"
        "X-Wake-Compute: proj1-a1b2c3\r\n"
        "X-WAKE-COLD-START: started\r\n"
        "Content-Length: 2\r\n"
        "\r\n"
        "{}";

    (void) state;

    assert_int_equal(http(ok, &r), MP_OK);
    assert_int_equal(r.status, 200);
    assert_str(r.address, "127.0.0.1:40123");
    assert_str(r.compute, "proj1-a1b2c3");
    assert_str(r.cold_start, "started");
    assert_int_equal(r.error.len, 0);
    assert_int_equal(r.max_sessions, -1);
    assert_int_equal(r.retry_ms, -1);
    assert_int_equal(r.header_len, strlen(ok) - 2);

    /* bare LF line ends */
    assert_int_equal(http("HTTP/1.0 200\nX-Wake-Address: h:1\n\n", &r),
                     MP_OK);
    assert_str(r.address, "h:1");
}


static void
test_http_errors(void **state)
{
    size_t         i, n;
    wh_response_t  r;
    const char    *nf =
        "HTTP/1.1 404 Not Found\r\n"
        "X-Wake-Error: unknown_project\r\n"
        "\r\n";

    (void) state;

    assert_int_equal(http(nf, &r), MP_OK);
    assert_int_equal(r.status, 404);
    assert_str(r.error, "unknown_project");
    assert_int_equal(r.address.len, 0);

    /* every prefix asks for more */
    n = strlen(nf);

    for (i = 0; i < n; i++) {
        assert_int_equal(wh_parse_response((const uint8_t *) nf, i, &r),
                         MP_AGAIN);
    }

    assert_int_equal(http("HTTP/1.1 2x0 OK\r\n\r\n", &r), MP_ERROR);
    assert_int_equal(http("SSH-2.0-OpenSSH\r\n\r\n", &r), MP_ERROR);
    assert_int_equal(http("HTTP/1.1 200OK\r\n\r\n", &r), MP_ERROR);
    assert_int_equal(http("HTTP/1.1 503 Busy\r\nX-Wake-Error: wake_timeout"
                          "\r\nNoColonHere\r\n\r\n", &r),
                     MP_OK);
    assert_int_equal(r.status, 503);
    assert_str(r.error, "wake_timeout");
}


static void
test_http_freeze_after(void **state)
{
    wh_response_t  r;

    (void) state;

    assert_int_equal(http("HTTP/1.1 200 OK\r\nX-Wake-Address: h:1\r\n"
                          "X-Wake-Freeze-After: 2000\r\n\r\n", &r), MP_OK);
    assert_int_equal(r.freeze_after_ms, 2000);
    assert_int_equal(r.freeze_after_bad, 0);

    /* absent: 0, not bad (a controller that never freezes with sessions) */
    assert_int_equal(http("HTTP/1.1 200 OK\r\nX-Wake-Address: h:1\r\n\r\n",
                          &r), MP_OK);
    assert_int_equal(r.freeze_after_ms, 0);
    assert_int_equal(r.freeze_after_bad, 0);

    assert_int_equal(http("HTTP/1.1 200 OK\r\nx-wake-freeze-after:  0 \r\n\r\n",
                          &r), MP_OK);
    assert_int_equal(r.freeze_after_ms, 0);
    assert_int_equal(r.freeze_after_bad, 0);

    assert_int_equal(http("HTTP/1.1 200 OK\r\nX-Wake-Freeze-After: 2147483647"
                          "\r\n\r\n", &r), MP_OK);
    assert_int_equal(r.freeze_after_ms, 2147483647u);
    assert_int_equal(r.freeze_after_bad, 0);

    /* not a number of milliseconds the module can keep */
    assert_int_equal(http("HTTP/1.1 200 OK\r\nX-Wake-Freeze-After: 2147483648"
                          "\r\n\r\n", &r), MP_OK);
    assert_int_equal(r.freeze_after_bad, 1);
    assert_int_equal(http("HTTP/1.1 200 OK\r\nX-Wake-Freeze-After: 99999999999999999999999"
                          "\r\n\r\n", &r), MP_OK);
    assert_int_equal(r.freeze_after_bad, 1);
    assert_int_equal(http("HTTP/1.1 200 OK\r\nX-Wake-Freeze-After: -1\r\n\r\n",
                          &r), MP_OK);
    assert_int_equal(r.freeze_after_bad, 1);
    assert_int_equal(http("HTTP/1.1 200 OK\r\nX-Wake-Freeze-After: 2 s\r\n\r\n",
                          &r), MP_OK);
    assert_int_equal(r.freeze_after_bad, 1);
    assert_int_equal(http("HTTP/1.1 200 OK\r\nX-Wake-Freeze-After:\r\n\r\n",
                          &r), MP_OK);
    assert_int_equal(r.freeze_after_bad, 1);
    assert_int_equal(r.freeze_after_ms, 0);
}


static void
test_http_limits(void **state)
{
    wh_response_t  r;

    (void) state;

    assert_int_equal(http("HTTP/1.1 200 OK\r\nX-Wake-Address: h:1\r\n"
                          "x-wake-max-sessions:  300 \r\n\r\n", &r), MP_OK);
    assert_int_equal(r.max_sessions, 300);
    assert_int_equal(r.retry_ms, -1);

    assert_int_equal(http("HTTP/1.1 429 Too Many Requests\r\n"
                          "X-Wake-Error: rate_limited\r\nRetry-After: 3\r\n"
                          "X-Wake-Retry-After-Ms: 2500\r\n\r\n", &r), MP_OK);
    assert_int_equal(r.status, 429);
    assert_str(r.error, "rate_limited");
    assert_int_equal(r.retry_ms, 2500);

    /* 0 is a number (unlimited); garbage, signs and overflow read as absent */
    assert_int_equal(http("HTTP/1.1 200\r\nX-Wake-Max-Sessions: 0\r\n\r\n",
                          &r), MP_OK);
    assert_int_equal(r.max_sessions, 0);

    assert_int_equal(http("HTTP/1.1 200\r\nX-Wake-Max-Sessions: -5\r\n\r\n",
                          &r), MP_OK);
    assert_int_equal(r.max_sessions, -1);

    assert_int_equal(http("HTTP/1.1 200\r\nX-Wake-Max-Sessions: 12x\r\n\r\n",
                          &r), MP_OK);
    assert_int_equal(r.max_sessions, -1);

    assert_int_equal(http("HTTP/1.1 200\r\nX-Wake-Max-Sessions:\r\n\r\n",
                          &r), MP_OK);
    assert_int_equal(r.max_sessions, -1);

    assert_int_equal(http("HTTP/1.1 429\r\nX-Wake-Retry-After-Ms: "
                          "1000000001\r\n\r\n", &r), MP_OK);
    assert_int_equal(r.retry_ms, -1);

    assert_int_equal(http("HTTP/1.1 429\r\nX-Wake-Retry-After-Ms: "
                          "99999999999999999999\r\n\r\n", &r), MP_OK);
    assert_int_equal(r.retry_ms, -1);

    assert_int_equal(http("HTTP/1.1 429\r\nX-Wake-Retry-After-Ms: "
                          "1000000000\r\n\r\n", &r), MP_OK);
    assert_int_equal(r.retry_ms, 1000000000);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_cli),
        cmocka_unit_test(test_parse_compress_and_nodb),
        cmocka_unit_test(test_parse_pymysql_and_capi),
        cmocka_unit_test(test_parse_truncated),
        cmocka_unit_test(test_parse_oversize),
        cmocka_unit_test(test_parse_malformed),
        cmocka_unit_test(test_parse_ssl_request),
        cmocka_unit_test(test_parse_no_plugin_auth),
        cmocka_unit_test(test_project_ids),
        cmocka_unit_test(test_route),
        cmocka_unit_test(test_route_order_and_invalid),
        cmocka_unit_test(test_route_same_project_strips_user),
        cmocka_unit_test(test_route_sni),
        cmocka_unit_test(test_route_user_prefix_edges),
        cmocka_unit_test(test_greeting_matches_mariadb),
        cmocka_unit_test(test_greeting_parse),
        cmocka_unit_test(test_greeting_mysql_bit),
        cmocka_unit_test(test_err),
        cmocka_unit_test(test_upstream_response),
        cmocka_unit_test(test_upstream_response_ssl_and_lenenc),
        cmocka_unit_test(test_upstream_response_auth),
        cmocka_unit_test(test_native_auth),
        cmocka_unit_test(test_greeting_native),
        cmocka_unit_test(test_kill_parse),
        cmocka_unit_test(test_first_command),
        cmocka_unit_test(test_first_command_pass),
        cmocka_unit_test(test_renumber),
        cmocka_unit_test(test_packet_complete),
        cmocka_unit_test(test_http_ok),
        cmocka_unit_test(test_http_errors),
        cmocka_unit_test(test_http_limits),
        cmocka_unit_test(test_http_freeze_after),
    };

    return cmocka_run_group_tests_name("ngx_stream_wake_module protocol",
                                       tests, NULL, NULL);
}
