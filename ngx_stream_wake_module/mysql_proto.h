/*
 * MySQL / MariaDB wire protocol helpers for the wake proxy.
 *
 * Pure code: bytes in, structs out (and structs in, bytes out).  Nothing here
 * allocates, logs or knows about nginx, so the same file compiles into the
 * nginx module, the cmocka unit tests and the libFuzzer target.
 *
 * Every parser takes (buf, len) and never reads past buf + len; every builder
 * takes (out, cap) and returns the number of bytes written, or 0 when the
 * output would not fit.
 */

#ifndef MYSQL_PROTO_H
#define MYSQL_PROTO_H

#include <stddef.h>
#include <stdint.h>


/* capability flags (lower 32 bits) */
#define MP_CLIENT_MYSQL                 0x00000001u
#define MP_CLIENT_CONNECT_WITH_DB       0x00000008u
#define MP_CLIENT_COMPRESS              0x00000020u
#define MP_CLIENT_PROTOCOL_41           0x00000200u
#define MP_CLIENT_SSL                   0x00000800u
#define MP_CLIENT_SECURE_CONNECTION     0x00008000u
#define MP_CLIENT_PLUGIN_AUTH           0x00080000u
#define MP_CLIENT_CONNECT_ATTRS         0x00100000u
#define MP_CLIENT_PLUGIN_AUTH_LENENC    0x00200000u
#define MP_CLIENT_DEPRECATE_EOF         0x01000000u

/* what MariaDB 10.11 (without TLS) advertises, verified on 10.11.19 */
#define MP_DEFAULT_CAPS                 0x81fff7feu
#define MP_DEFAULT_EXT_CAPS             0x0000001du
#define MP_DEFAULT_VERSION              "5.5.5-10.11.19-MariaDB"
#define MP_DEFAULT_CHARSET              45      /* utf8mb4_general_ci */
#define MP_SERVER_STATUS_AUTOCOMMIT     0x0002

#define MP_HEADER_LEN                   4
#define MP_COMPRESSED_HEADER_LEN        7
#define MP_SSL_REQUEST_LEN              32      /* payload of an SSLRequest */
#define MP_SCRAMBLE_LEN                 20
#define MP_PROJECT_MAX                  63
#define MP_MAX_PAYLOAD                  0xffffffu

#define MP_COM_QUERY                    0x03

/* the longest first command worth inspecting for "KILL ... <id>" */
#define MP_KILL_MAX_PAYLOAD             128

/* handed-out connection ids live above every real MariaDB thread id */
#define MP_PROXY_ID_BASE                0x80000000u


/* return codes */
#define MP_OK                           0
#define MP_AGAIN                        1       /* need more bytes */
#define MP_ERROR                        -1      /* malformed */
#define MP_TOO_LARGE                    -2      /* announced length too big */


typedef struct {
    const uint8_t  *data;
    size_t          len;
} mp_str_t;


/* HandshakeResponse41 (or SSLRequest) as sent by the client */
typedef struct {
    uint32_t        caps;
    uint32_t        max_packet;
    uint8_t         charset;
    uint8_t         seq;
    uint8_t         filler[23];     /* 19 reserved + 4 MariaDB ext caps */
    uint32_t        ext_caps;
    unsigned        ssl_request:1;
    unsigned        has_database:1;
    unsigned        has_plugin:1;
    unsigned        has_attrs:1;
    mp_str_t        user;
    mp_str_t        auth;
    mp_str_t        database;
    mp_str_t        plugin;
    mp_str_t        attrs;          /* key/value block, without its length */
    size_t          packet_len;     /* header + payload */
} mp_response_t;


/* Initial Handshake (protocol 10), built by the proxy or parsed from a compute */
typedef struct {
    mp_str_t        version;
    uint32_t        conn_id;
    uint8_t         scramble[MP_SCRAMBLE_LEN];
    uint32_t        caps;
    uint32_t        ext_caps;
    uint8_t         charset;
    uint16_t        status;
    mp_str_t        plugin;
    size_t          packet_len;
} mp_greeting_t;


#define MP_ROUTE_NONE       0
#define MP_ROUTE_DATABASE   1
#define MP_ROUTE_USER       2
#define MP_ROUTE_SNI        3       /* TLS server name "project.<domain>" */

#define MP_ROUTE_MAX_MODES  4

typedef struct {
    int             mode;           /* MP_ROUTE_* that produced the project */
    mp_str_t        project;
    mp_str_t        user;           /* login for the compute */
} mp_route_t;


typedef struct {
    size_t          id_off;         /* digits, relative to the SQL text */
    size_t          id_len;
    uint64_t        id;
    int             query;          /* KILL QUERY (1) or KILL [CONNECTION] (0) */
} mp_kill_t;


/*
 * Sequence-id rewriting over a byte stream cut anywhere: the first `skip`
 * bytes are left alone, then the sequence id of every packet is shifted.
 */
typedef struct {
    size_t          skip;
    uint32_t        left;           /* payload bytes of the current packet */
    uint8_t         hdr[3];
    unsigned        hpos;           /* header bytes seen, 0..3 */
} mp_renumber_t;


#define MP_CMD_MORE         0       /* first command not complete yet */
#define MP_CMD_PASS         1       /* not a KILL we care about: pass as is */
#define MP_CMD_KILL         2       /* KILL [QUERY|CONNECTION] <id> */

typedef struct {
    size_t          len;            /* bytes of the (compressed) packet */
    size_t          sql_off;        /* start of the SQL text in buf */
    size_t          sql_len;
    mp_kill_t       kill;
} mp_first_cmd_t;


/* packets */
int mp_packet_complete(const uint8_t *buf, size_t len, size_t *packet_len);

/* client HandshakeResponse41 / SSLRequest */
int mp_parse_response(const uint8_t *buf, size_t len, size_t max_payload,
    mp_response_t *r);
int mp_attr_get(const mp_response_t *r, const char *key, mp_str_t *value);

/* routing */
int mp_valid_project_id(const uint8_t *p, size_t len);
int mp_route(const mp_response_t *r, const mp_str_t *sni, const int *modes,
    size_t nmodes, mp_route_t *route);

/* greeting */
size_t mp_greeting_size(const mp_greeting_t *g);
size_t mp_build_greeting(uint8_t *out, size_t cap, const mp_greeting_t *g);
int mp_parse_greeting(const uint8_t *buf, size_t len, mp_greeting_t *g);

/* ERR packet */
size_t mp_build_err(uint8_t *out, size_t cap, uint8_t seq, uint16_t code,
    const char *sqlstate, const char *msg, size_t msg_len);

/* the HandshakeResponse41 the proxy sends to the compute */
size_t mp_upstream_response_size(const mp_response_t *r, mp_str_t user,
    mp_str_t plugin);
size_t mp_build_upstream_response(uint8_t *out, size_t cap,
    const mp_response_t *r, mp_str_t user, mp_str_t plugin, uint8_t seq);

/* the same with the client's auth data (signed on the compute's scramble) */
size_t mp_upstream_response_auth_size(const mp_response_t *r, mp_str_t user,
    mp_str_t plugin, const mp_str_t *auth);
size_t mp_build_upstream_response_auth(uint8_t *out, size_t cap,
    const mp_response_t *r, mp_str_t user, mp_str_t plugin,
    const mp_str_t *auth, uint8_t seq);
int mp_native_auth(const mp_response_t *r);
int mp_greeting_native(const mp_greeting_t *g);

/* sequence ids (TLS on the client leg shifts them by one in the auth phase) */
void mp_renumber(mp_renumber_t *st, uint8_t *p, size_t len, int delta);

/* KILL handling (first command of a session only) */
int mp_parse_kill(const uint8_t *sql, size_t len, mp_kill_t *k);
int mp_inspect_first_command(const uint8_t *buf, size_t len, int compressed,
    mp_first_cmd_t *fc);
size_t mp_rewrite_first_command(uint8_t *out, size_t cap, const uint8_t *buf,
    const mp_first_cmd_t *fc, int compressed, uint64_t new_id);

#endif /* MYSQL_PROTO_H */
