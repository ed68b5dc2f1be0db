/*
 * libFuzzer target for the wake module's pure parsers: the bytes a client
 * (or a compute, or the controller) sends are fed to every parser, and what
 * the builders make from a parse must parse back to the same thing.
 *
 *   make -C ngx_stream_wake_module fuzz FUZZ_SECONDS=20
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mysql_proto.h"
#include "wake_http.h"


#define CHECK(cond)  do { if (!(cond)) abort(); } while (0)


static void
fuzz_response(const uint8_t *data, size_t size)
{
    static const int  modes[] = { MP_ROUTE_DATABASE, MP_ROUTE_USER };

    uint8_t        out[20000];
    size_t         n;
    mp_str_t       v, plugin;
    mp_route_t     route;
    mp_response_t  r, u;

    if (mp_parse_response(data, size, 16380, &r) != MP_OK) {
        return;
    }

    CHECK(r.packet_len <= size);

    (void) mp_attr_get(&r, "_pid", &v);

    if (mp_route(&r, NULL, modes, 2, &route) == MP_OK) {
        CHECK(mp_valid_project_id(route.project.data, route.project.len));
        CHECK(route.project.data >= data
              && route.project.data + route.project.len <= data + size);

    } else {
        route.user = r.user;
    }

    if (r.ssl_request) {
        return;
    }

    plugin.data = (const uint8_t *) "auth_unknown_plugin";
    plugin.len = 19;

    n = mp_build_upstream_response(out, sizeof(out), &r, route.user, plugin,
                                   r.seq);
    CHECK(n == mp_upstream_response_size(&r, route.user, plugin));

    /* what the compute gets must parse, with the client's fields intact */

    CHECK(mp_parse_response(out, n, sizeof(out), &u) == MP_OK);
    CHECK(u.packet_len == n);
    CHECK(u.user.len == route.user.len);
    CHECK(u.auth.len == 0);
    CHECK(u.attrs.len == r.attrs.len);
    CHECK(u.plugin.len == 19 && memcmp(u.plugin.data, plugin.data, 19) == 0);

    /* pre-greeted: the client's own auth data and plugin, when native */

    if (!mp_native_auth(&r)) {
        return;
    }

    n = mp_build_upstream_response_auth(out, sizeof(out), &r, route.user,
                                        r.plugin, &r.auth, r.seq);
    CHECK(n == mp_upstream_response_auth_size(&r, route.user, r.plugin,
                                              &r.auth));

    CHECK(mp_parse_response(out, n, sizeof(out), &u) == MP_OK);
    CHECK(u.packet_len == n);
    CHECK(u.auth.len == r.auth.len
          && memcmp(u.auth.data, r.auth.data, r.auth.len) == 0);
    CHECK(mp_native_auth(&u));
}


static void
fuzz_first_command(const uint8_t *data, size_t size, int compressed)
{
    uint8_t         out[512];
    size_t          n;
    mp_first_cmd_t  fc, fc2;

    if (mp_inspect_first_command(data, size, compressed, &fc) != MP_CMD_KILL) {
        return;
    }

    CHECK(fc.len <= size);
    CHECK(fc.sql_off + fc.sql_len <= fc.len);

    n = mp_rewrite_first_command(out, sizeof(out), data, &fc, compressed,
                                 0x7fffffffu);
    CHECK(n > 0);

    CHECK(mp_inspect_first_command(out, n, compressed, &fc2) == MP_CMD_KILL);
    CHECK(fc2.kill.id == 0x7fffffffu);
    CHECK(fc2.kill.query == fc.kill.query);
    CHECK(fc2.len == n);
}


static void
fuzz_greeting(const uint8_t *data, size_t size)
{
    uint8_t        out[1024];
    size_t         n;
    mp_greeting_t  g, g2;

    if (mp_parse_greeting(data, size, &g) != MP_OK) {
        return;
    }

    CHECK(g.packet_len <= size);

    if (g.version.len > 250 || g.plugin.len > 250) {
        return;
    }

    n = mp_build_greeting(out, sizeof(out), &g);
    CHECK(n == mp_greeting_size(&g));
    CHECK(mp_parse_greeting(out, n, &g2) == MP_OK);
    CHECK(g2.conn_id == g.conn_id);
    CHECK(g2.version.len == g.version.len);
    CHECK(memcmp(g2.scramble, g.scramble, MP_SCRAMBLE_LEN) == 0);
    CHECK(mp_greeting_native(&g2) == mp_greeting_native(&g));
}


static void
fuzz_http(const uint8_t *data, size_t size)
{
    wh_response_t  r;

    if (wh_parse_response(data, size, &r) != MP_OK) {
        return;
    }

    CHECK(r.header_len <= size);
    CHECK(r.status >= 0 && r.status <= 999);
    CHECK(r.freeze_after_ms <= WH_FREEZE_MAX);
    CHECK(!r.freeze_after_bad || r.freeze_after_ms == 0);
    CHECK(r.address.len == 0
          || (r.address.data >= data
              && r.address.data + r.address.len <= data + size));
    CHECK(r.max_sessions >= -1 && r.max_sessions <= WH_NUMBER_MAX);
    CHECK(r.retry_ms >= -1 && r.retry_ms <= WH_NUMBER_MAX);
}


static void
fuzz_renumber(const uint8_t *data, size_t size)
{
    uint8_t        buf[4096];
    size_t         cut;
    mp_renumber_t  st;

    if (size > sizeof(buf) || size == 0) {
        return;
    }

    /* shifting down and up again, cut anywhere, restores the bytes */

    memcpy(buf, data, size);
    memset(&st, 0, sizeof(st));
    st.skip = data[0] % 8;
    cut = data[size - 1] % size;
    mp_renumber(&st, buf, cut, -1);
    mp_renumber(&st, buf + cut, size - cut, -1);

    memset(&st, 0, sizeof(st));
    st.skip = data[0] % 8;
    mp_renumber(&st, buf, size, 1);

    CHECK(memcmp(buf, data, size) == 0);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t     len;
    uint8_t    err[600];
    mp_kill_t  k;

    (void) mp_packet_complete(data, size, &len);
    (void) mp_parse_kill(data, size, &k);

    fuzz_response(data, size);
    fuzz_first_command(data, size, 0);
    fuzz_first_command(data, size, 1);
    fuzz_greeting(data, size);
    fuzz_http(data, size);
    fuzz_renumber(data, size);

    len = mp_build_err(err, sizeof(err), 2, 1049, "42000", (const char *) data,
                       size);
    CHECK(len == 0 || len <= sizeof(err));

    return 0;
}
