/*
 * ngx_stream_wake_module: wake a sleeping MariaDB compute on connect.
 *
 * Shared declarations of the module's parts:
 *   ngx_stream_wake_module.c      directives, variables, preread + log phase
 *   ngx_stream_wake_filter.c      the stream filter (both directions)
 *   ngx_stream_wake_controller.c  the non-blocking /wake_compute HTTP call
 *   ngx_stream_wake_shm.c         shared memory: wake cache, connection ids
 *   ngx_stream_wake_limit.c       limit zone, session limits + queue
 *   ngx_stream_wake_client.c      per-address failure buckets
 *   ngx_stream_wake_idmap.c       the id map's indexes (pure, unit tested)
 *   mysql_proto.c, wake_http.c    pure protocol code (unit tested, fuzzed)
 */

#ifndef NGX_STREAM_WAKE_H
#define NGX_STREAM_WAKE_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>
#include <nginx.h>

#include "mysql_proto.h"
#include "wake_http.h"
#include "ngx_stream_wake_idmap.h"


#define NGX_STREAM_WAKE_ADDR_MAX      (NGX_SOCKADDR_STRLEN + 1)
#define NGX_STREAM_WAKE_COMPUTE_MAX   80
#define NGX_STREAM_WAKE_WORD_MAX      16

/*
 * nginx 1.25.5 (stream virtual servers, "server_name") renamed the stream
 * SSL module's server configuration, ngx_stream_ssl_conf_t, to
 * ngx_stream_ssl_srv_conf_t and dropped its "listen" flag: since then it
 * builds an SSL context for every server that has a certificate, while
 * before a module had to set "listen" (as "listen ... ssl" does) to get one.
 */
#if (NGX_STREAM_SSL)
#if (nginx_version >= 1025005)
typedef ngx_stream_ssl_srv_conf_t  ngx_stream_wake_ssl_conf_t;
#define NGX_STREAM_WAKE_SSL_LISTEN    0
#else
typedef ngx_stream_ssl_conf_t      ngx_stream_wake_ssl_conf_t;
#define NGX_STREAM_WAKE_SSL_LISTEN    1
#endif
#endif

/* the plugin name that makes the compute send an AuthSwitchRequest */
#define NGX_STREAM_WAKE_SWITCH_PLUGIN "auth_unknown_plugin"


typedef struct ngx_stream_wake_req_s  ngx_stream_wake_req_t;


typedef struct ngx_stream_wake_pre_s  ngx_stream_wake_pre_t;


typedef struct {
    ngx_shm_zone_t             *shm_zone;
    ngx_shm_zone_t             *limit_zone;     /* ngx_stream_wake_limit.c */
    ngx_stream_upstream_srv_conf_t *preconnect;  /* wake_preconnect's */
} ngx_stream_wake_main_conf_t;


typedef struct {
    ngx_flag_t                  enable;
    ngx_addr_t                 *controller;
    ngx_str_t                   controller_host;    /* for "Host:" */
    ngx_str_t                   token;
    ngx_msec_t                  timeout;
    ngx_uint_t                  retries;
    ngx_msec_t                  backoff;
    ngx_msec_t                  cache_ttl;
    ngx_msec_t                  negative_ttl;
    ngx_msec_t                  handshake_timeout;
    ngx_msec_t                  greeting_timeout;
    ngx_array_t                *route;              /* of int MP_ROUTE_* */
    ngx_flag_t                  strip_database;
    ngx_flag_t                  ssl;
    ngx_str_t                   server_version;
    ngx_uint_t                  caps;
    ngx_uint_t                  ext_caps;
    ngx_uint_t                  charset;
    ngx_uint_t                  session_queue;      /* waiters per project */
    ngx_msec_t                  session_queue_timeout;
    ngx_uint_t                  client_rate;        /* tokens/1000 per s; 0 off */
    ngx_uint_t                  client_burst;       /* tokens */
    ngx_log_t                  *error_log;
    ngx_flag_t                  preconnect;
} ngx_stream_wake_srv_conf_t;


/* what the controller (or the cache) said about a project */
typedef struct {
    ngx_int_t                   status;     /* HTTP status; 0: no answer */
    ngx_str_t                   address;
    ngx_str_t                   compute;
    ngx_str_t                   cold_start;
    ngx_str_t                   error;
    ngx_int_t                   max_sessions;   /* -1: none said, 0: unlimited */
    ngx_msec_t                  retry_ms;       /* 429: when to wake again */
    ngx_msec_t                  freeze_after;   /* X-Wake-Freeze-After */
} ngx_stream_wake_result_t;


typedef enum {
    NGX_STREAM_WAKE_GREETING = 0,   /* writing the proxy's greeting */
    NGX_STREAM_WAKE_PREGREET,       /* wake_preconnect: the guess's greeting */
    NGX_STREAM_WAKE_RESPONSE,       /* reading the HandshakeResponse41 */
    NGX_STREAM_WAKE_TLS,            /* TLS handshake after an SSLRequest */
    NGX_STREAM_WAKE_WAKING,         /* waiting for the controller */
    NGX_STREAM_WAKE_QUEUED,         /* project at its session limit: waiting */
    NGX_STREAM_WAKE_READY,          /* $wake_upstream set: proxying */
    NGX_STREAM_WAKE_FAILED          /* ERR to send, then close */
} ngx_stream_wake_state_e;


/* compute -> client direction of the filter */
typedef enum {
    NGX_STREAM_WAKE_DOWN_GREETING = 0,  /* drop the compute's greeting */
    NGX_STREAM_WAKE_DOWN_AUTH,          /* relay auth packets until OK/ERR */
    NGX_STREAM_WAKE_DOWN_PASS
} ngx_stream_wake_down_e;


/* client -> compute direction of the filter */
typedef enum {
    NGX_STREAM_WAKE_UP_AUTH = 0,        /* handshake and auth: untouched */
    NGX_STREAM_WAKE_UP_FIRST,           /* first command: KILL rewrite */
    NGX_STREAM_WAKE_UP_PASS
} ngx_stream_wake_up_e;


typedef struct {
    ngx_stream_session_t       *session;
    ngx_stream_wake_state_e     state;

    ngx_buf_t                  *out;            /* greeting being written */
    ngx_buf_t                  *in;             /* client packet being read */
    ngx_event_t                 timer;          /* handshake timeout */
    ngx_event_t                 greeting_timer; /* the compute's greeting */

    uint32_t                    conn_id;        /* handed out; id map key */
    uint32_t                    client_id;      /* in the client's greeting */
    uint32_t                    real_id;        /* the compute's thread id */
    uint32_t                    client_caps;
    uint32_t                    client_key;     /* addr + user + _pid */
    uint8_t                     client_seq;     /* next seq the client wants */
    uint8_t                     seq_delta;      /* client seq - compute seq */
    int                         route_mode;     /* MP_ROUTE_* */

    ngx_str_t                   project;
    ngx_str_t                   user;
    ngx_str_t                   upstream;
    ngx_str_t                   compute;
    ngx_str_t                   cold_start;
    ngx_msec_t                  wake_start;
    ngx_msec_t                  wake_time;

    ngx_stream_wake_req_t      *wake;
    ngx_queue_t                 queue;          /* in wake->waiters */

    ngx_event_t                 queue_timer;    /* QUEUED: look again */
    ngx_msec_t                  queue_start;
    ngx_int_t                   max_sessions;   /* the project's limit */

    ngx_uint_t                  err_code;
    const char                 *err_state;
    ngx_str_t                   err_msg;
    ngx_uint_t                  err_status;

    ngx_stream_wake_down_e      down;
    ngx_stream_wake_up_e        up;
    u_char                     *dbuf;           /* held compute bytes */
    size_t                      dlen;
    size_t                      dsize;
    u_char                     *ubuf;           /* held client bytes */
    size_t                      ulen;
    size_t                      usize;

    unsigned                    relayed:1;      /* compute spoke to client */
    unsigned                    mapped:1;       /* id map entry exists */
    unsigned                    compress:1;
    unsigned                    woken:1;        /* a wake call answered */
    unsigned                    rewoken:1;      /* no greeting: woken again */
    unsigned                    err_sent:1;
    unsigned                    greeting_late:1;
    unsigned                    tls:1;          /* TLS on the client leg */
    unsigned                    up_started:1;   /* handshake passed upstream */
    unsigned                    counted:1;      /* holds a session slot */
    unsigned                    queued:1;       /* counted as a waiter */
    unsigned                    charged:1;      /* a failure charged */
    unsigned                    thawing:1;      /* client bytes held: waking */
    unsigned                    thawed:1;       /* woken: pass them on */
    unsigned                    thaw_failed:1;  /* woken in vain: ERR, close */
    unsigned                    held_last:1;    /* the client's EOF is held */

    /* idle sessions on a compute that may be frozen (docs/module.md) */
    ngx_msec_t                  freeze_after;   /* 0: never frozen under us */
    ngx_msec_t                  last_io;        /* last byte, either way */

    mp_renumber_t               renumber;       /* client -> compute, auth */

    ngx_stream_wake_pre_t      *pre;            /* wake_preconnect's guess */
    ngx_addr_t                 *pre_addr;       /* ctx->upstream, parsed */
    ngx_str_t                  *preconnect;     /* $wake_preconnect */
    unsigned                    pre_pending:1;  /* proxy to ask our peer */
    unsigned                    pre_tried:1;    /* preconnect_start ran */
    unsigned                    pregreeted:1;   /* client has the guess's
                                                   scramble and thread id */
    ngx_buf_t                  *pre_resp;       /* response with auth data,
                                                   for the guess only */
} ngx_stream_wake_ctx_t;


extern ngx_module_t  ngx_stream_wake_module;

#include "ngx_stream_wake_limit.h"


/* ngx_stream_wake_module.c */
void ngx_stream_wake_resume(ngx_stream_wake_ctx_t *ctx,
    ngx_stream_wake_result_t *res);
ngx_int_t ngx_stream_wake_send_err(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx);
ngx_int_t ngx_stream_wake_fail(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx, ngx_uint_t status, ngx_uint_t code,
    const char *state, const char *fmt, ...);

/* ngx_stream_wake_filter.c */
ngx_int_t ngx_stream_wake_filter_init(ngx_conf_t *cf);
void ngx_stream_wake_thawed(ngx_stream_wake_ctx_t *ctx,
    ngx_stream_wake_result_t *res);
void ngx_stream_wake_greeting_timeout(ngx_event_t *ev);
void ngx_stream_wake_compute_id(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx, uint32_t real_id);

/* ngx_stream_wake_preconnect.c */
char *ngx_stream_wake_preconnect(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_stream_wake_preconnect_start(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx);
mp_greeting_t *ngx_stream_wake_preconnect_greeting(
    ngx_stream_wake_ctx_t *ctx);
void ngx_stream_wake_preconnect_route(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx);
ngx_int_t ngx_stream_wake_preconnect_upstream(ngx_stream_wake_ctx_t *ctx,
    ngx_str_t *v);
void ngx_stream_wake_preconnect_close(ngx_stream_wake_ctx_t *ctx);
ngx_str_t *ngx_stream_wake_preconnect_result(ngx_stream_wake_ctx_t *ctx);

/* ngx_stream_wake_controller.c */
ngx_int_t ngx_stream_wake_request(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx, ngx_stream_wake_srv_conf_t *wscf,
    ngx_str_t *project);
void ngx_stream_wake_request_detach(ngx_stream_wake_ctx_t *ctx);

/* ngx_stream_wake_shm.c */
ngx_shm_zone_t *ngx_stream_wake_shm_add(ngx_conf_t *cf, ngx_str_t *name,
    size_t size);
ngx_int_t ngx_stream_wake_cache_get(ngx_shm_zone_t *zone, ngx_str_t *project,
    ngx_pool_t *pool, ngx_stream_wake_result_t *res);
void ngx_stream_wake_cache_put(ngx_shm_zone_t *zone, ngx_str_t *project,
    ngx_stream_wake_result_t *res, ngx_msec_t ttl);
void ngx_stream_wake_cache_invalidate(ngx_shm_zone_t *zone,
    ngx_str_t *project, ngx_str_t *address);
ngx_int_t ngx_stream_wake_cache_fresh(ngx_shm_zone_t *zone,
    ngx_str_t *project);
uint32_t ngx_stream_wake_next_id(ngx_shm_zone_t *zone);
ngx_int_t ngx_stream_wake_ids_add(ngx_shm_zone_t *zone, uint32_t id,
    uint32_t real_id, uint32_t client_key, ngx_str_t *project,
    ngx_log_t *log);
void ngx_stream_wake_ids_del(ngx_shm_zone_t *zone, uint32_t id);
ngx_int_t ngx_stream_wake_ids_get(ngx_shm_zone_t *zone, uint32_t id,
    ngx_str_t *project, uint32_t *real_id);
ngx_int_t ngx_stream_wake_ids_find_client(ngx_shm_zone_t *zone,
    uint32_t client_key, ngx_pool_t *pool, ngx_str_t *project);

#endif /* NGX_STREAM_WAKE_H */
