/*
 * MySQL / MariaDB wire protocol helpers for the wake proxy (pure code).
 *
 * Formats follow the MariaDB client/server protocol documentation:
 * a packet is a 3-byte little-endian payload length, a 1-byte sequence id
 * and the payload; the compressed protocol wraps packets in a 7-byte header
 * (compressed length, sequence id, uncompressed length, 0 = not deflated).
 */

#include <string.h>

#include "mysql_proto.h"


static uint32_t
mp_le16(const uint8_t *p)
{
    return (uint32_t) p[0] | ((uint32_t) p[1] << 8);
}


static uint32_t
mp_le24(const uint8_t *p)
{
    return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16);
}


static uint32_t
mp_le32(const uint8_t *p)
{
    return mp_le24(p) | ((uint32_t) p[3] << 24);
}


static uint8_t *
mp_put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t) v;
    p[1] = (uint8_t) (v >> 8);
    return p + 2;
}


static uint8_t *
mp_put24(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t) v;
    p[1] = (uint8_t) (v >> 8);
    p[2] = (uint8_t) (v >> 16);
    return p + 3;
}


static uint8_t *
mp_put32(uint8_t *p, uint32_t v)
{
    p = mp_put24(p, v);
    *p++ = (uint8_t) (v >> 24);
    return p;
}


static uint8_t *
mp_put_bytes(uint8_t *p, const void *src, size_t len)
{
    if (len) {
        memcpy(p, src, len);
    }

    return p + len;
}


/*
 * Length-encoded integer.  0xfb (NULL) and 0xff (ERR marker) are not valid
 * lengths inside a handshake, so they are reported as malformed.
 */
static int
mp_get_lenenc(const uint8_t **pp, const uint8_t *end, uint64_t *value)
{
    size_t          n, i;
    uint64_t        v;
    const uint8_t  *p;

    p = *pp;

    if (p >= end) {
        return MP_ERROR;
    }

    switch (*p) {
    case 0xfc:
        n = 2;
        break;
    case 0xfd:
        n = 3;
        break;
    case 0xfe:
        n = 8;
        break;
    case 0xfb:
    case 0xff:
        return MP_ERROR;
    default:
        *value = *p;
        *pp = p + 1;
        return MP_OK;
    }

    if ((size_t) (end - p) < n + 1) {
        return MP_ERROR;
    }

    v = 0;

    for (i = 0; i < n; i++) {
        v |= (uint64_t) p[1 + i] << (8 * i);
    }

    *value = v;
    *pp = p + 1 + n;

    return MP_OK;
}


static size_t
mp_lenenc_size(uint64_t v)
{
    if (v < 0xfb) {
        return 1;
    }

    if (v <= 0xffff) {
        return 3;
    }

    if (v <= 0xffffff) {
        return 4;
    }

    return 9;
}


static uint8_t *
mp_put_lenenc(uint8_t *p, uint64_t v)
{
    if (v < 0xfb) {
        *p++ = (uint8_t) v;
        return p;
    }

    if (v <= 0xffff) {
        *p++ = 0xfc;
        return mp_put16(p, (uint32_t) v);
    }

    if (v <= 0xffffff) {
        *p++ = 0xfd;
        return mp_put24(p, (uint32_t) v);
    }

    *p++ = 0xfe;
    p = mp_put32(p, (uint32_t) v);
    return mp_put32(p, (uint32_t) (v >> 32));
}


/* a length-encoded string that must fit before end */
static int
mp_get_lenenc_str(const uint8_t **pp, const uint8_t *end, mp_str_t *s)
{
    uint64_t  n;

    if (mp_get_lenenc(pp, end, &n) != MP_OK) {
        return MP_ERROR;
    }

    if (n > (uint64_t) (end - *pp)) {
        return MP_ERROR;
    }

    s->data = *pp;
    s->len = (size_t) n;
    *pp += n;

    return MP_OK;
}


/*
 * A NUL-terminated string.  As the server does, a string that runs to the
 * end of the packet without its NUL is accepted.
 */
static void
mp_get_cstr(const uint8_t **pp, const uint8_t *end, mp_str_t *s)
{
    const uint8_t  *p, *nul;

    p = *pp;
    nul = memchr(p, 0, (size_t) (end - p));

    s->data = p;

    if (nul == NULL) {
        s->len = (size_t) (end - p);
        *pp = end;
        return;
    }

    s->len = (size_t) (nul - p);
    *pp = nul + 1;
}


int
mp_packet_complete(const uint8_t *buf, size_t len, size_t *packet_len)
{
    size_t  plen;

    if (len < MP_HEADER_LEN) {
        return MP_AGAIN;
    }

    plen = mp_le24(buf);

    if (len - MP_HEADER_LEN < plen) {
        return MP_AGAIN;
    }

    *packet_len = MP_HEADER_LEN + plen;

    return MP_OK;
}


static int
mp_check_attrs(const mp_str_t *attrs)
{
    mp_str_t        key, value;
    const uint8_t  *p, *end;

    p = attrs->data;
    end = p + attrs->len;

    while (p < end) {
        if (mp_get_lenenc_str(&p, end, &key) != MP_OK
            || mp_get_lenenc_str(&p, end, &value) != MP_OK)
        {
            return MP_ERROR;
        }
    }

    return MP_OK;
}


static int
mp_parse_auth(const uint8_t **pp, const uint8_t *end, uint32_t caps,
    mp_str_t *auth)
{
    const uint8_t  *p;

    if (caps & MP_CLIENT_PLUGIN_AUTH_LENENC) {
        return mp_get_lenenc_str(pp, end, auth);
    }

    if (caps & MP_CLIENT_SECURE_CONNECTION) {
        p = *pp;

        if (p >= end || (size_t) (end - p - 1) < *p) {
            return MP_ERROR;
        }

        auth->data = p + 1;
        auth->len = *p;
        *pp = p + 1 + *p;

        return MP_OK;
    }

    if (*pp >= end) {
        return MP_ERROR;
    }

    mp_get_cstr(pp, end, auth);

    return MP_OK;
}


int
mp_parse_response(const uint8_t *buf, size_t len, size_t max_payload,
    mp_response_t *r)
{
    size_t          plen;
    const uint8_t  *p, *end;

    memset(r, 0, sizeof(mp_response_t));

    if (len < MP_HEADER_LEN) {
        return MP_AGAIN;
    }

    plen = mp_le24(buf);

    /* decide on the announced length before waiting for the payload */

    if (plen > max_payload) {
        return MP_TOO_LARGE;
    }

    if (plen < MP_SSL_REQUEST_LEN) {
        return MP_ERROR;
    }

    if (len - MP_HEADER_LEN < plen) {
        return MP_AGAIN;
    }

    p = buf + MP_HEADER_LEN;
    end = p + plen;

    r->seq = buf[3];
    r->caps = mp_le32(p);
    r->max_packet = mp_le32(p + 4);
    r->charset = p[8];
    memcpy(r->filler, p + 9, sizeof(r->filler));
    r->ext_caps = mp_le32(p + 28);
    r->packet_len = MP_HEADER_LEN + plen;

    p += MP_SSL_REQUEST_LEN;

    if (!(r->caps & MP_CLIENT_PROTOCOL_41)) {
        return MP_ERROR;
    }

    if (p == end) {
        if (r->caps & MP_CLIENT_SSL) {
            r->ssl_request = 1;
            return MP_OK;
        }

        return MP_ERROR;
    }

    if (memchr(p, 0, (size_t) (end - p)) == NULL) {
        return MP_ERROR;            /* the user name must be terminated */
    }

    mp_get_cstr(&p, end, &r->user);

    if (mp_parse_auth(&p, end, r->caps, &r->auth) != MP_OK) {
        return MP_ERROR;
    }

    if ((r->caps & MP_CLIENT_CONNECT_WITH_DB) && p < end) {
        mp_get_cstr(&p, end, &r->database);
        r->has_database = 1;
    }

    if ((r->caps & MP_CLIENT_PLUGIN_AUTH) && p < end) {
        mp_get_cstr(&p, end, &r->plugin);
        r->has_plugin = 1;
    }

    if ((r->caps & MP_CLIENT_CONNECT_ATTRS) && p < end) {
        if (mp_get_lenenc_str(&p, end, &r->attrs) != MP_OK
            || mp_check_attrs(&r->attrs) != MP_OK)
        {
            return MP_ERROR;
        }

        r->has_attrs = 1;
    }

    /* trailing bytes (e.g. a MySQL 8 zstd level) are ignored, as by the server */

    return MP_OK;
}


int
mp_attr_get(const mp_response_t *r, const char *key, mp_str_t *value)
{
    size_t          klen;
    mp_str_t        k, v;
    const uint8_t  *p, *end;

    if (!r->has_attrs) {
        return MP_ERROR;
    }

    klen = strlen(key);
    p = r->attrs.data;
    end = p + r->attrs.len;

    while (p < end) {
        if (mp_get_lenenc_str(&p, end, &k) != MP_OK
            || mp_get_lenenc_str(&p, end, &v) != MP_OK)
        {
            return MP_ERROR;
        }

        if (k.len == klen && memcmp(k.data, key, klen) == 0) {
            *value = v;
            return MP_OK;
        }
    }

    return MP_ERROR;
}


int
mp_valid_project_id(const uint8_t *p, size_t len)
{
    size_t  i;

    if (len == 0 || len > MP_PROJECT_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!((p[i] >= 'a' && p[i] <= 'z')
              || (p[i] >= '0' && p[i] <= '9')
              || p[i] == '-'))
        {
            return 0;
        }
    }

    return 1;
}


static int
mp_route_candidate(const mp_response_t *r, const mp_str_t *sni, int mode,
    mp_route_t *c)
{
    size_t          i;
    const uint8_t  *dot;

    c->mode = mode;

    switch (mode) {

    case MP_ROUTE_SNI:
        if (sni == NULL || sni->len == 0) {
            return 0;
        }

        /* an IPv4 literal is no host name (and clients must not send it) */

        for (i = 0; i < sni->len; i++) {
            if (sni->data[i] != '.' && (sni->data[i] < '0' || sni->data[i] > '9'))
            {
                break;
            }
        }

        if (i == sni->len) {
            return 0;
        }

        /* "project.db.example.com": the first label; "project" alone too */

        dot = memchr(sni->data, '.', sni->len);

        c->project.data = sni->data;
        c->project.len = dot ? (size_t) (dot - sni->data) : sni->len;
        c->user = r->user;
        return 1;

    case MP_ROUTE_DATABASE:
        if (!r->has_database || r->database.len == 0) {
            return 0;
        }

        c->project = r->database;
        c->user = r->user;
        return 1;

    case MP_ROUTE_USER:
        if (r->user.len == 0) {
            return 0;
        }

        dot = memchr(r->user.data, '.', r->user.len);

        /* "project.user": both parts must be non-empty */

        if (dot == NULL || dot == r->user.data
            || dot + 1 == r->user.data + r->user.len)
        {
            return 0;
        }

        c->project.data = r->user.data;
        c->project.len = (size_t) (dot - r->user.data);
        c->user.data = dot + 1;
        c->user.len = (size_t) (r->user.data + r->user.len - dot - 1);
        return 1;
    }

    return 0;
}


/*
 * "proj.alice" connecting to database "proj": whichever mode chose the
 * project, a user prefix naming the same project is not part of the login.
 */
static void
mp_route_strip_user(const mp_response_t *r, const int *modes, size_t nmodes,
    mp_route_t *route)
{
    size_t      i;
    mp_route_t  c;

    if (route->mode == MP_ROUTE_USER) {
        return;
    }

    for (i = 0; i < nmodes; i++) {
        if (modes[i] == MP_ROUTE_USER
            && mp_route_candidate(r, NULL, MP_ROUTE_USER, &c)
            && c.project.len == route->project.len
            && memcmp(c.project.data, route->project.data, c.project.len) == 0)
        {
            route->user = c.user;
            return;
        }
    }
}


/*
 * Modes are tried in the configured order; the first one that yields a valid
 * project id wins.  When none does, route->project is the first candidate
 * seen (possibly empty), so that the caller can say what was wrong.
 */
int
mp_route(const mp_response_t *r, const mp_str_t *sni, const int *modes,
    size_t nmodes, mp_route_t *route)
{
    size_t      i;
    int         have_first;
    mp_route_t  c;

    memset(route, 0, sizeof(mp_route_t));
    have_first = 0;

    for (i = 0; i < nmodes; i++) {
        if (!mp_route_candidate(r, sni, modes[i], &c)) {
            continue;
        }

        if (mp_valid_project_id(c.project.data, c.project.len)) {
            *route = c;
            mp_route_strip_user(r, modes, nmodes, route);
            return MP_OK;
        }

        if (!have_first) {
            *route = c;
            have_first = 1;
        }
    }

    return MP_ERROR;
}


size_t
mp_greeting_size(const mp_greeting_t *g)
{
    /*
     * protocol 1, version + NUL, connection id 4, scramble 8, filler 1,
     * caps 2, charset 1, status 2, caps 2, auth data length 1, filler 6,
     * ext caps 4, scramble 12 + NUL, plugin + NUL
     */

    return MP_HEADER_LEN + 47 + g->version.len + g->plugin.len;
}


size_t
mp_build_greeting(uint8_t *out, size_t cap, const mp_greeting_t *g)
{
    size_t    size;
    uint8_t  *p;

    size = mp_greeting_size(g);

    if (size > cap || size - MP_HEADER_LEN > MP_MAX_PAYLOAD) {
        return 0;
    }

    p = mp_put24(out, (uint32_t) (size - MP_HEADER_LEN));
    *p++ = 0;                                   /* sequence id */

    *p++ = 10;                                  /* protocol version */
    p = mp_put_bytes(p, g->version.data, g->version.len);
    *p++ = 0;
    p = mp_put32(p, g->conn_id);
    p = mp_put_bytes(p, g->scramble, 8);
    *p++ = 0;
    p = mp_put16(p, g->caps & 0xffff);
    *p++ = g->charset;
    p = mp_put16(p, g->status);
    p = mp_put16(p, g->caps >> 16);
    *p++ = MP_SCRAMBLE_LEN + 1;
    memset(p, 0, 6);
    p += 6;

    /* MariaDB: extended capabilities live in the last filler bytes */
    p = mp_put32(p, (g->caps & MP_CLIENT_MYSQL) ? 0 : g->ext_caps);

    p = mp_put_bytes(p, g->scramble + 8, MP_SCRAMBLE_LEN - 8);
    *p++ = 0;
    p = mp_put_bytes(p, g->plugin.data, g->plugin.len);
    *p++ = 0;

    return (size_t) (p - out);
}


int
mp_parse_greeting(const uint8_t *buf, size_t len, mp_greeting_t *g)
{
    size_t          plen, n;
    const uint8_t  *p, *end;

    memset(g, 0, sizeof(mp_greeting_t));

    if (mp_packet_complete(buf, len, &plen) != MP_OK) {
        return MP_AGAIN;
    }

    g->packet_len = plen;

    p = buf + MP_HEADER_LEN;
    end = buf + plen;

    if (p >= end || *p != 10) {
        return MP_ERROR;
    }

    p++;

    if (memchr(p, 0, (size_t) (end - p)) == NULL) {
        return MP_ERROR;
    }

    mp_get_cstr(&p, end, &g->version);

    /* connection id, scramble part 1, filler, lower capabilities */

    if (end - p < 15) {
        return MP_ERROR;
    }

    g->conn_id = mp_le32(p);
    memcpy(g->scramble, p + 4, 8);
    g->caps = mp_le16(p + 13);
    p += 15;

    if (p == end) {
        return MP_OK;               /* pre-4.1 servers stop here */
    }

    if (end - p < 16) {
        return MP_ERROR;
    }

    g->charset = p[0];
    g->status = (uint16_t) mp_le16(p + 1);
    g->caps |= mp_le16(p + 3) << 16;
    n = p[5];
    g->ext_caps = mp_le32(p + 12);
    p += 16;

    /* the second part of the scramble: max(13, auth data length - 8) */

    n = (n > 8) ? n - 8 : 0;

    if (n < 13) {
        n = 13;
    }

    if ((size_t) (end - p) < n) {
        return MP_ERROR;
    }

    memcpy(g->scramble + 8, p, 12);
    p += n;

    if (p < end) {
        mp_get_cstr(&p, end, &g->plugin);
    }

    return MP_OK;
}


size_t
mp_build_err(uint8_t *out, size_t cap, uint8_t seq, uint16_t code,
    const char *sqlstate, const char *msg, size_t msg_len)
{
    size_t    size;
    uint8_t  *p;

    if (msg_len > 512) {
        msg_len = 512;
    }

    size = MP_HEADER_LEN + 1 + 2 + 1 + 5 + msg_len;

    if (size > cap) {
        return 0;
    }

    p = mp_put24(out, (uint32_t) (size - MP_HEADER_LEN));
    *p++ = seq;
    *p++ = 0xff;
    p = mp_put16(p, code);
    *p++ = '#';
    p = mp_put_bytes(p, sqlstate, 5);
    p = mp_put_bytes(p, msg, msg_len);

    return (size_t) (p - out);
}


static uint32_t
mp_upstream_caps(const mp_response_t *r)
{
    /* the compute leg is plain TCP; plugin auth drives the auth switch */
    return (r->caps & ~MP_CLIENT_SSL) | MP_CLIENT_PLUGIN_AUTH;
}


/* the client's auth data on the compute leg: NULL or empty is "" */
static size_t
mp_auth_size(uint32_t caps, const mp_str_t *auth)
{
    if (auth == NULL || auth->len == 0) {
        return 1;           /* length 0 in every encoding, or "" + NUL */
    }

    if (caps & MP_CLIENT_PLUGIN_AUTH_LENENC) {
        return mp_lenenc_size(auth->len) + auth->len;
    }

    /* CLIENT_SECURE_CONNECTION (mp_native_auth() requires one of both) */
    return 1 + auth->len;
}


size_t
mp_upstream_response_size(const mp_response_t *r, mp_str_t user,
    mp_str_t plugin)
{
    return mp_upstream_response_auth_size(r, user, plugin, NULL);
}


size_t
mp_upstream_response_auth_size(const mp_response_t *r, mp_str_t user,
    mp_str_t plugin, const mp_str_t *auth)
{
    size_t    size;
    uint32_t  caps;

    caps = mp_upstream_caps(r);

    size = MP_HEADER_LEN + MP_SSL_REQUEST_LEN
           + user.len + 1           /* user */
           + mp_auth_size(caps, auth)
           + plugin.len + 1;

    if (caps & MP_CLIENT_CONNECT_WITH_DB) {
        size += r->database.len + 1;
    }

    if ((caps & MP_CLIENT_CONNECT_ATTRS) && r->has_attrs) {
        size += mp_lenenc_size(r->attrs.len) + r->attrs.len;
    }

    return size;
}


/*
 * The client's HandshakeResponse41 as the compute must see it: same
 * capabilities (minus TLS), max packet, charset, filler with MariaDB
 * extended capabilities, user (prefix stripped), database and attributes,
 * but EMPTY auth data and a plugin name the server does not know, so that
 * it answers with an AuthSwitchRequest carrying its own scramble.
 */
size_t
mp_build_upstream_response(uint8_t *out, size_t cap, const mp_response_t *r,
    mp_str_t user, mp_str_t plugin, uint8_t seq)
{
    return mp_build_upstream_response_auth(out, cap, r, user, plugin, NULL,
                                           seq);
}


/*
 * The same with the client's own auth data: only for a client that signed
 * the compute's own scramble (a greeting relayed from that very connection,
 * see mp_native_auth()).  Auth data that the client's capabilities cannot
 * carry (no length-prefixed encoding, over 255 bytes without lenenc) gives 0.
 */
size_t
mp_build_upstream_response_auth(uint8_t *out, size_t cap,
    const mp_response_t *r, mp_str_t user, mp_str_t plugin,
    const mp_str_t *auth, uint8_t seq)
{
    size_t    size;
    uint8_t  *p;
    uint32_t  caps;

    caps = mp_upstream_caps(r);

    if (auth && auth->len
        && !(caps & MP_CLIENT_PLUGIN_AUTH_LENENC)
        && (!(caps & MP_CLIENT_SECURE_CONNECTION) || auth->len > 255))
    {
        return 0;
    }

    size = mp_upstream_response_auth_size(r, user, plugin, auth);

    if (size > cap || size - MP_HEADER_LEN > MP_MAX_PAYLOAD) {
        return 0;
    }

    p = mp_put24(out, (uint32_t) (size - MP_HEADER_LEN));
    *p++ = seq;

    p = mp_put32(p, caps);
    p = mp_put32(p, r->max_packet);
    *p++ = r->charset;
    p = mp_put_bytes(p, r->filler, sizeof(r->filler));

    p = mp_put_bytes(p, user.data, user.len);
    *p++ = 0;

    if (auth == NULL || auth->len == 0) {
        *p++ = 0;   /* auth data: length 0 in every encoding, or "" + NUL */

    } else if (caps & MP_CLIENT_PLUGIN_AUTH_LENENC) {
        p = mp_put_lenenc(p, auth->len);
        p = mp_put_bytes(p, auth->data, auth->len);

    } else {
        *p++ = (uint8_t) auth->len;
        p = mp_put_bytes(p, auth->data, auth->len);
    }

    if (caps & MP_CLIENT_CONNECT_WITH_DB) {
        p = mp_put_bytes(p, r->database.data, r->database.len);
        *p++ = 0;
    }

    p = mp_put_bytes(p, plugin.data, plugin.len);
    *p++ = 0;

    if ((caps & MP_CLIENT_CONNECT_ATTRS) && r->has_attrs) {
        p = mp_put_lenenc(p, r->attrs.len);
        p = mp_put_bytes(p, r->attrs.data, r->attrs.len);
    }

    return (size_t) (p - out);
}


/*
 * A response whose auth data the compute can check as it is: the client
 * answered a mysql_native_password greeting with that plugin, a 20-byte
 * token (or nothing: an empty password) in a length-prefixed encoding.
 */
int
mp_native_auth(const mp_response_t *r)
{
    static const char  native[] = "mysql_native_password";

    if (r->ssl_request || !r->has_plugin
        || r->plugin.len != sizeof(native) - 1
        || memcmp(r->plugin.data, native, sizeof(native) - 1) != 0)
    {
        return 0;
    }

    if (r->auth.len != 0 && r->auth.len != MP_SCRAMBLE_LEN) {
        return 0;
    }

    return (r->caps & (MP_CLIENT_PLUGIN_AUTH_LENENC
                       | MP_CLIENT_SECURE_CONNECTION)) != 0;
}


/* a compute's greeting whose scramble a client may sign for that compute */
int
mp_greeting_native(const mp_greeting_t *g)
{
    static const char  native[] = "mysql_native_password";

    return (g->caps & MP_CLIENT_PLUGIN_AUTH)
           && (g->caps & MP_CLIENT_SECURE_CONNECTION)
           && g->plugin.len == sizeof(native) - 1
           && memcmp(g->plugin.data, native, sizeof(native) - 1) == 0;
}


void
mp_renumber(mp_renumber_t *st, uint8_t *p, size_t len, int delta)
{
    size_t  n;

    while (len) {

        if (st->skip) {
            n = (len < st->skip) ? len : st->skip;
            st->skip -= n;
            p += n;
            len -= n;
            continue;
        }

        if (st->left) {
            n = (len < st->left) ? len : st->left;
            st->left -= (uint32_t) n;
            p += n;
            len -= n;
            continue;
        }

        if (st->hpos < 3) {
            st->hdr[st->hpos++] = *p++;
            len--;
            continue;
        }

        /* the sequence id */

        *p = (uint8_t) (*p + delta);
        p++;
        len--;

        st->left = mp_le24(st->hdr);
        st->hpos = 0;
    }
}


static int
mp_is_space(uint8_t ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'
           || ch == '\f' || ch == '\v';
}


/* a keyword followed by at least one space, case-insensitively */
static int
mp_keyword(const uint8_t **pp, const uint8_t *end, const char *word)
{
    size_t          i, n;
    const uint8_t  *p;

    p = *pp;
    n = strlen(word);

    if ((size_t) (end - p) < n + 1) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        if ((p[i] | 0x20) != (uint8_t) word[i]) {
            return 0;
        }
    }

    if (!mp_is_space(p[n])) {
        return 0;
    }

    p += n;

    while (p < end && mp_is_space(*p)) {
        p++;
    }

    *pp = p;

    return 1;
}


/*
 * KILL [HARD|SOFT] [CONNECTION|QUERY] <thread id> [;]
 * with any whitespace, any case.  "KILL QUERY ID <query id>" and
 * "KILL USER <name>" do not match: their number is not a thread id.
 */
int
mp_parse_kill(const uint8_t *sql, size_t len, mp_kill_t *k)
{
    uint64_t        id;
    const uint8_t  *p, *end, *digits;

    memset(k, 0, sizeof(mp_kill_t));

    p = sql;
    end = sql + len;

    while (p < end && mp_is_space(*p)) {
        p++;
    }

    if (!mp_keyword(&p, end, "kill")) {
        return MP_ERROR;
    }

    if (!mp_keyword(&p, end, "hard")) {
        (void) mp_keyword(&p, end, "soft");
    }

    if (mp_keyword(&p, end, "query")) {
        k->query = 1;

    } else {
        (void) mp_keyword(&p, end, "connection");
    }

    digits = p;
    id = 0;

    while (p < end && *p >= '0' && *p <= '9') {
        if (p - digits == 19) {
            return MP_ERROR;        /* would not fit, not a thread id */
        }

        id = id * 10 + (uint64_t) (*p - '0');
        p++;
    }

    if (p == digits) {
        return MP_ERROR;
    }

    k->id_off = (size_t) (digits - sql);
    k->id_len = (size_t) (p - digits);
    k->id = id;

    while (p < end && mp_is_space(*p)) {
        p++;
    }

    if (p < end && *p == ';') {
        p++;

        while (p < end && mp_is_space(*p)) {
            p++;
        }
    }

    return (p == end) ? MP_OK : MP_ERROR;
}


int
mp_inspect_first_command(const uint8_t *buf, size_t len, int compressed,
    mp_first_cmd_t *fc)
{
    size_t          hlen, clen, plen;
    const uint8_t  *pkt;

    memset(fc, 0, sizeof(mp_first_cmd_t));

    hlen = 0;
    pkt = buf;

    if (compressed) {
        if (len < MP_COMPRESSED_HEADER_LEN) {
            return MP_CMD_MORE;
        }

        clen = mp_le24(buf);

        /* deflated payloads are not inspected: only short commands matter */

        if (mp_le24(buf + 4) != 0
            || clen > MP_HEADER_LEN + MP_KILL_MAX_PAYLOAD
            || clen < MP_HEADER_LEN)
        {
            return MP_CMD_PASS;
        }

        if (len - MP_COMPRESSED_HEADER_LEN < clen) {
            return MP_CMD_MORE;
        }

        hlen = MP_COMPRESSED_HEADER_LEN;
        pkt = buf + hlen;

        /* exactly one packet inside the compressed one */

        if (MP_HEADER_LEN + mp_le24(pkt) != clen) {
            return MP_CMD_PASS;
        }
    }

    if (len - hlen < MP_HEADER_LEN) {
        return MP_CMD_MORE;
    }

    plen = mp_le24(pkt);

    if (plen > MP_KILL_MAX_PAYLOAD || plen < 1) {
        return MP_CMD_PASS;
    }

    if (len - hlen - MP_HEADER_LEN < plen) {
        return MP_CMD_MORE;
    }

    fc->len = hlen + MP_HEADER_LEN + plen;
    fc->sql_off = hlen + MP_HEADER_LEN + 1;
    fc->sql_len = plen - 1;

    if (pkt[MP_HEADER_LEN] != MP_COM_QUERY) {
        return MP_CMD_PASS;
    }

    if (mp_parse_kill(buf + fc->sql_off, fc->sql_len, &fc->kill) != MP_OK) {
        return MP_CMD_PASS;
    }

    return MP_CMD_KILL;
}


/* the KILL packet with its thread id replaced by new_id */
size_t
mp_rewrite_first_command(uint8_t *out, size_t cap, const uint8_t *buf,
    const mp_first_cmd_t *fc, int compressed, uint64_t new_id)
{
    size_t          n, payload, size, tail;
    uint8_t         digits[20], *p;
    const uint8_t  *sql;

    n = 0;

    do {
        digits[sizeof(digits) - 1 - n++] = (uint8_t) ('0' + new_id % 10);
        new_id /= 10;
    } while (new_id);

    sql = buf + fc->sql_off;
    tail = fc->sql_len - fc->kill.id_off - fc->kill.id_len;
    payload = 1 + fc->kill.id_off + n + tail;
    size = MP_HEADER_LEN + payload
           + (compressed ? MP_COMPRESSED_HEADER_LEN : 0);

    if (size > cap) {
        return 0;
    }

    p = out;

    if (compressed) {
        p = mp_put24(p, (uint32_t) (MP_HEADER_LEN + payload));
        *p++ = buf[3];
        p = mp_put24(p, 0);
        buf += MP_COMPRESSED_HEADER_LEN;
    }

    p = mp_put24(p, (uint32_t) payload);
    *p++ = buf[3];
    *p++ = MP_COM_QUERY;
    p = mp_put_bytes(p, sql, fc->kill.id_off);
    p = mp_put_bytes(p, digits + sizeof(digits) - n, n);
    p = mp_put_bytes(p, sql + fc->kill.id_off + fc->kill.id_len, tail);

    return (size_t) (p - out);
}
