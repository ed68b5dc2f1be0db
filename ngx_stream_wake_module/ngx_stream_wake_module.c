/*
 * ngx_stream_wake_module: the MySQL front door of serverless MariaDB.
 *
 * MySQL servers speak first, so in the PREREAD phase the module greets the
 * client itself, reads its HandshakeResponse41, picks the project (database
 * name or "project.user" login), asks the controller to wake the project's
 * compute (ngx_stream_wake_controller.c) and sets $wake_upstream for the
 * stock "proxy_pass $wake_upstream;".  The client's HandshakeResponse is
 * rewritten in c->buffer (empty auth data, unknown plugin) so that the
 * compute answers with an AuthSwitchRequest carrying its own scramble; the
 * stream filter (ngx_stream_wake_filter.c) drops the compute's greeting and
 * relays the auth exchange.  The proxy never sees a password.  (With
 * wake_preconnect a right guess may skip the switch: the client is greeted
 * with the guessed compute's scramble, ngx_stream_wake_preconnect.c.)
 *
 * While the controller works the preread handler returns NGX_DONE; the
 * answer posts c->read, the phase engine calls the handler again and it
 * returns NGX_OK.  Errors reach the client as MySQL ERR packets.
 */

#include "ngx_stream_wake.h"


#define NGX_STREAM_WAKE_DEFAULT_ZONE_SIZE  (4 * 1024 * 1024)

/* MariaDB error numbers and SQLSTATEs the client will show */
#define NGX_STREAM_WAKE_ER_HANDSHAKE       1043, "08S01"
#define NGX_STREAM_WAKE_ER_ACCESS          1045, "28000"
#define NGX_STREAM_WAKE_ER_NO_DB           1046, "3D000"
#define NGX_STREAM_WAKE_ER_BAD_DB          1049, "42000"
#define NGX_STREAM_WAKE_ER_UNKNOWN         1105, "HY000"
#define NGX_STREAM_WAKE_ER_TOO_LARGE       1153, "08S01"
#define NGX_STREAM_WAKE_ER_AUTH_MODE       1251, "08004"
#define NGX_STREAM_WAKE_ER_CON_COUNT       1040, "08004"


typedef struct {
    ngx_str_t   name;
    int         mode;
} ngx_stream_wake_route_name_t;


static ngx_int_t ngx_stream_wake_preread_handler(ngx_stream_session_t *s);
static ngx_stream_wake_ctx_t *ngx_stream_wake_create_ctx(
    ngx_stream_session_t *s, ngx_stream_wake_srv_conf_t *wscf);
static ngx_int_t ngx_stream_wake_build_greeting(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx, ngx_stream_wake_srv_conf_t *wscf,
    const uint8_t *scramble);
static ngx_int_t ngx_stream_wake_pregreet(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx, ngx_stream_wake_srv_conf_t *wscf);
static ngx_int_t ngx_stream_wake_send_greeting(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx);
static void ngx_stream_wake_greeting_handler(ngx_event_t *wev);
static void ngx_stream_wake_handshake_timeout(ngx_event_t *ev);
static ssize_t ngx_stream_wake_recv_plain(ngx_connection_t *c, ngx_buf_t *b,
    size_t need);
static ngx_int_t ngx_stream_wake_read_response(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx, ngx_stream_wake_srv_conf_t *wscf);
static ngx_int_t ngx_stream_wake_start_tls(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx);
#if (NGX_STREAM_SSL)
static void ngx_stream_wake_tls_handshaked(ngx_connection_t *c);
#endif
static ngx_int_t ngx_stream_wake_route(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx, ngx_stream_wake_srv_conf_t *wscf,
    mp_response_t *r);
static ngx_int_t ngx_stream_wake_rewrite_response(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx, ngx_stream_wake_srv_conf_t *wscf,
    mp_response_t *r);
static ngx_int_t ngx_stream_wake_start(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx, ngx_stream_wake_srv_conf_t *wscf);
static ngx_int_t ngx_stream_wake_refuse_client(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx);
static void ngx_stream_wake_stop_timers(ngx_stream_wake_ctx_t *ctx);
static void ngx_stream_wake_cleanup(void *data);
static ngx_int_t ngx_stream_wake_log_handler(ngx_stream_session_t *s);

static ngx_int_t ngx_stream_wake_variable_str(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_stream_wake_variable_upstream(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_stream_wake_variable_pre(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_stream_wake_variable_time(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_stream_wake_variable_id(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data);

static char *ngx_stream_wake_controller(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_stream_wake_parse_zone(ngx_conf_t *cf,
    const char *what, ngx_str_t *name, ssize_t *size);
static char *ngx_stream_wake_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_wake_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_wake_route_modes(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_wake_capabilities(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_wake_ssl(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_stream_wake_add_variables(ngx_conf_t *cf);
static void *ngx_stream_wake_create_main_conf(ngx_conf_t *cf);
static void *ngx_stream_wake_create_srv_conf(ngx_conf_t *cf);
static char *ngx_stream_wake_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_stream_wake_init(ngx_conf_t *cf);


static ngx_conf_num_bounds_t  ngx_stream_wake_charset_bounds = {
    ngx_conf_check_num_bounds, 1, 255
};


static ngx_command_t  ngx_stream_wake_commands[] = {

    { ngx_string("wake"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_wake_srv_conf_t, enable),
      NULL },

    { ngx_string("wake_controller"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_stream_wake_controller,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("wake_token"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_wake_srv_conf_t, token),
      NULL },

    { ngx_string("wake_timeout"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_wake_srv_conf_t, timeout),
      NULL },

    { ngx_string("wake_retries"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_wake_srv_conf_t, retries),
      NULL },

    { ngx_string("wake_backoff"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_wake_srv_conf_t, backoff),
      NULL },

    { ngx_string("wake_cache_ttl"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_wake_srv_conf_t, cache_ttl),
      NULL },

    { ngx_string("wake_negative_ttl"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_wake_srv_conf_t, negative_ttl),
      NULL },

    { ngx_string("wake_cache_zone"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_stream_wake_zone,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("wake_route"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE123,
      ngx_stream_wake_route_modes,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("wake_handshake_timeout"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_wake_srv_conf_t, handshake_timeout),
      NULL },

    { ngx_string("wake_server_version"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_wake_srv_conf_t, server_version),
      NULL },

    { ngx_string("wake_capabilities"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE12,
      ngx_stream_wake_capabilities,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("wake_preconnect"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_FLAG,
      ngx_stream_wake_preconnect,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_wake_srv_conf_t, preconnect),
      NULL },

    { ngx_string("wake_greeting_timeout"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_wake_srv_conf_t, greeting_timeout),
      NULL },

    { ngx_string("wake_strip_database"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_wake_srv_conf_t, strip_database),
      NULL },

    { ngx_string("wake_ssl"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_FLAG,
      ngx_stream_wake_ssl,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_wake_srv_conf_t, ssl),
      NULL },

    { ngx_string("wake_server_charset"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_wake_srv_conf_t, charset),
      &ngx_stream_wake_charset_bounds },

    { ngx_string("wake_session_queue"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_wake_srv_conf_t, session_queue),
      NULL },

    { ngx_string("wake_session_queue_timeout"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_wake_srv_conf_t, session_queue_timeout),
      NULL },

    { ngx_string("wake_client_limit"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE12,
      ngx_stream_wake_client_limit,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("wake_limit_zone"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_stream_wake_limit_zone,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_stream_module_t  ngx_stream_wake_module_ctx = {
    ngx_stream_wake_add_variables,          /* preconfiguration */
    ngx_stream_wake_init,                   /* postconfiguration */

    ngx_stream_wake_create_main_conf,       /* create main configuration */
    NULL,                                   /* init main configuration */

    ngx_stream_wake_create_srv_conf,        /* create server configuration */
    ngx_stream_wake_merge_srv_conf          /* merge server configuration */
};


ngx_module_t  ngx_stream_wake_module = {
    NGX_MODULE_V1,
    &ngx_stream_wake_module_ctx,            /* module context */
    ngx_stream_wake_commands,               /* module directives */
    NGX_STREAM_MODULE,                      /* module type */
    NULL,                                   /* init master */
    NULL,                                   /* init module */
    NULL,                                   /* init process */
    NULL,                                   /* init thread */
    NULL,                                   /* exit thread */
    NULL,                                   /* exit process */
    NULL,                                   /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_stream_variable_t  ngx_stream_wake_vars[] = {

    { ngx_string("wake_project"), NULL, ngx_stream_wake_variable_str,
      offsetof(ngx_stream_wake_ctx_t, project), 0, 0 },

    { ngx_string("wake_user"), NULL, ngx_stream_wake_variable_str,
      offsetof(ngx_stream_wake_ctx_t, user), 0, 0 },

    { ngx_string("wake_upstream"), NULL, ngx_stream_wake_variable_upstream,
      offsetof(ngx_stream_wake_ctx_t, upstream), NGX_STREAM_VAR_NOCACHEABLE,
      0 },

    { ngx_string("wake_preconnect"), NULL, ngx_stream_wake_variable_pre,
      0, NGX_STREAM_VAR_NOCACHEABLE, 0 },

    { ngx_string("wake_compute"), NULL, ngx_stream_wake_variable_str,
      offsetof(ngx_stream_wake_ctx_t, compute), 0, 0 },

    { ngx_string("wake_cold_start"), NULL, ngx_stream_wake_variable_str,
      offsetof(ngx_stream_wake_ctx_t, cold_start), 0, 0 },

    { ngx_string("wake_time"), NULL, ngx_stream_wake_variable_time,
      0, NGX_STREAM_VAR_NOCACHEABLE, 0 },

    { ngx_string("wake_connection_id"), NULL, ngx_stream_wake_variable_id,
      offsetof(ngx_stream_wake_ctx_t, client_id), 0, 0 },

    { ngx_string("wake_thread_id"), NULL, ngx_stream_wake_variable_id,
      offsetof(ngx_stream_wake_ctx_t, real_id), NGX_STREAM_VAR_NOCACHEABLE,
      0 },

      ngx_stream_null_variable
};


static ngx_stream_wake_route_name_t  ngx_stream_wake_route_names[] = {
    { ngx_string("database"), MP_ROUTE_DATABASE },
    { ngx_string("user"), MP_ROUTE_USER },
    { ngx_string("sni"), MP_ROUTE_SNI },
    { ngx_null_string, MP_ROUTE_NONE }
};


static ngx_str_t  ngx_stream_wake_switch_plugin =
    ngx_string(NGX_STREAM_WAKE_SWITCH_PLUGIN);

static ngx_str_t  ngx_stream_wake_warm = ngx_string("warm");


/* PREREAD phase */

static ngx_int_t
ngx_stream_wake_preread_handler(ngx_stream_session_t *s)
{
    ngx_int_t                    rc;
    ngx_connection_t            *c;
    ngx_stream_wake_ctx_t       *ctx;
    ngx_stream_wake_srv_conf_t  *wscf;

    c = s->connection;

    wscf = ngx_stream_get_module_srv_conf(s, ngx_stream_wake_module);
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_wake_module);

    if (ctx == NULL) {
        if (!wscf->enable || c->type != SOCK_STREAM) {
            return NGX_DECLINED;
        }

        ctx = ngx_stream_wake_create_ctx(s, wscf);
        if (ctx == NULL) {
            return NGX_ERROR;
        }

        if (ngx_stream_wake_refuse_client(s, ctx) != NGX_OK) {
            return ngx_stream_wake_send_err(s, ctx);
        }
    }

    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "wake preread handler, state %d", ctx->state);

    switch (ctx->state) {

    case NGX_STREAM_WAKE_GREETING:
        if (!ctx->pre_tried) {
            ctx->pre_tried = 1;

            /* wake_preconnect: the guess first, its greeting if it is quick */
            if (ngx_stream_wake_preconnect_start(s, ctx) == NGX_AGAIN) {
                ctx->state = NGX_STREAM_WAKE_PREGREET;
                return NGX_DONE;
            }
        }

        if (ngx_stream_wake_pregreet(s, ctx, wscf) != NGX_OK) {
            return NGX_ERROR;
        }

        rc = ngx_stream_wake_send_greeting(s, ctx);

        if (rc == NGX_ERROR) {
            return NGX_STREAM_OK;       /* the client went away */
        }

        /* a partial greeting is finished by the write handler */

        ctx->state = NGX_STREAM_WAKE_RESPONSE;

        /* fall through */

    case NGX_STREAM_WAKE_RESPONSE:
        rc = ngx_stream_wake_read_response(s, ctx, wscf);

        if (ctx->state == NGX_STREAM_WAKE_FAILED) {
            return ngx_stream_wake_send_err(s, ctx);
        }

        return rc;

    case NGX_STREAM_WAKE_PREGREET:
    case NGX_STREAM_WAKE_TLS:
    case NGX_STREAM_WAKE_WAKING:
        /*
         * re-entered by a client event while the guess, TLS or the
         * controller works
         */
        return NGX_DONE;

    case NGX_STREAM_WAKE_QUEUED:
        /* waiting for a session slot: did the client leave? */
        return ngx_stream_wake_limit_peek(ctx);

    case NGX_STREAM_WAKE_READY:
        c->log->action = "prereading client data";
        return NGX_OK;

    default: /* NGX_STREAM_WAKE_FAILED */
        return ngx_stream_wake_send_err(s, ctx);
    }
}


static ngx_stream_wake_ctx_t *
ngx_stream_wake_create_ctx(ngx_stream_session_t *s,
    ngx_stream_wake_srv_conf_t *wscf)
{
    ngx_uint_t                    i;
    ngx_connection_t             *c;
    uint8_t                       scramble[MP_SCRAMBLE_LEN];
    ngx_pool_cleanup_t           *cln;
    ngx_stream_wake_ctx_t        *ctx;
    ngx_stream_core_srv_conf_t   *cscf;
    ngx_stream_wake_main_conf_t  *wmcf;

    c = s->connection;

    ctx = ngx_pcalloc(c->pool, sizeof(ngx_stream_wake_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(c->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_stream_wake_cleanup;
    cln->data = ctx;

    wmcf = ngx_stream_get_module_main_conf(s, ngx_stream_wake_module);

    ctx->session = s;
    ctx->state = NGX_STREAM_WAKE_GREETING;
    ctx->client_seq = 2;
    ctx->conn_id = ngx_stream_wake_next_id(wmcf->shm_zone);

    ctx->client_id = ctx->conn_id;

    /*
     * The client signs this scramble, the proxy throws the result away:
     * the compute sends its own scramble in the AuthSwitchRequest.
     * It only has to look like MariaDB's: 20 printable characters.
     */

    for (i = 0; i < MP_SCRAMBLE_LEN; i++) {
        scramble[i] = (uint8_t) (33 + ngx_random() % 94);
    }

    if (ngx_stream_wake_build_greeting(s, ctx, wscf, scramble) != NGX_OK) {
        return NULL;
    }

    ctx->timer.handler = ngx_stream_wake_handshake_timeout;
    ctx->timer.data = ctx;
    ctx->timer.log = c->log;

    ctx->greeting_timer.handler = ngx_stream_wake_greeting_timeout;
    ctx->greeting_timer.data = ctx;
    ctx->greeting_timer.log = c->log;

    /*
     * The handler reads the client's handshake itself, into its own buffer,
     * and never returns NGX_AGAIN: the preread phase's own reading (a recv()
     * into c->buffer before nginx 1.25.5, a MSG_PEEK that is undone after
     * the handler since then) and its preread_timeout never come into play.
     * c->read carries no timer either: since 1.25.5 the phase calls the
     * handler on a read event only when c->read has no timer.
     */

    cscf = ngx_stream_get_module_srv_conf(s, ngx_stream_core_module);

    ctx->in = ngx_create_temp_buf(c->pool, cscf->preread_buffer_size);
    if (ctx->in == NULL) {
        return NULL;
    }

    ngx_add_timer(&ctx->timer, wscf->handshake_timeout);

    ngx_stream_set_ctx(s, ctx, ngx_stream_wake_module);

    return ctx;
}


/*
 * The proxy's greeting: the configured version and capabilities (what the
 * computes behind it are, see docs/module.md), ctx->client_id, a scramble.
 */
static ngx_int_t
ngx_stream_wake_build_greeting(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx, ngx_stream_wake_srv_conf_t *wscf,
    const uint8_t *scramble)
{
    size_t          size;
    mp_greeting_t   g;

    ngx_memzero(&g, sizeof(mp_greeting_t));

    g.version.data = wscf->server_version.data;
    g.version.len = wscf->server_version.len;
    g.conn_id = ctx->client_id;
    g.caps = (uint32_t) wscf->caps;
    g.ext_caps = (uint32_t) wscf->ext_caps;
    g.charset = (uint8_t) wscf->charset;
    g.status = MP_SERVER_STATUS_AUTOCOMMIT;
    g.plugin.data = (const uint8_t *) "mysql_native_password";
    g.plugin.len = sizeof("mysql_native_password") - 1;
    ngx_memcpy(g.scramble, scramble, MP_SCRAMBLE_LEN);

    size = mp_greeting_size(&g);

    if (ctx->out == NULL || (size_t) (ctx->out->end - ctx->out->start) < size)
    {
        ctx->out = ngx_create_temp_buf(s->connection->pool, size);
        if (ctx->out == NULL) {
            return NGX_ERROR;
        }
    }

    ctx->out->pos = ctx->out->start;
    ctx->out->last = ctx->out->pos
                     + mp_build_greeting(ctx->out->pos, size, &g);

    return NGX_OK;
}


/*
 * wake_preconnect: the guess greeted before the client was.  The client
 * gets the same greeting as always but with that compute's scramble and
 * thread id, so that its mysql_native_password answer is valid on that
 * connection (ngx_stream_wake_rewrite_response keeps it for the guess).
 */
static ngx_int_t
ngx_stream_wake_pregreet(ngx_stream_session_t *s, ngx_stream_wake_ctx_t *ctx,
    ngx_stream_wake_srv_conf_t *wscf)
{
    mp_greeting_t  *g;

    g = ngx_stream_wake_preconnect_greeting(ctx);

    if (g == NULL || ctx->out->pos != ctx->out->start) {
        return NGX_OK;
    }

    ctx->client_id = g->conn_id;
    ctx->pregreeted = 1;

    return ngx_stream_wake_build_greeting(s, ctx, wscf, g->scramble);
}


/*
 * An address whose failures emptied its bucket gets ERR 1040 in place of
 * the greeting (as MariaDB sends "too many connections"): no handshake is
 * read, no controller asked, no compute woken.
 */
static ngx_int_t
ngx_stream_wake_refuse_client(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx)
{
    ngx_msec_t  retry;

    if (ngx_stream_wake_client_check(s, &retry) == NGX_OK) {
        return NGX_OK;
    }

    ctx->out->pos = ctx->out->last;     /* no greeting */
    ctx->client_seq = 0;

    return ngx_stream_wake_fail(s, ctx, NGX_STREAM_SERVICE_UNAVAILABLE,
                                NGX_STREAM_WAKE_ER_CON_COUNT,
                                "Too many failed connection attempts from "
                                "%V; retry in %M s",
                                &s->connection->addr_text,
                                (retry + 999) / 1000);
}


static ngx_int_t
ngx_stream_wake_send_greeting(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx)
{
    ssize_t            n;
    ngx_buf_t         *b;
    ngx_connection_t  *c;

    c = s->connection;
    b = ctx->out;

    while (b->pos < b->last) {

        n = c->send(c, b->pos, b->last - b->pos);

        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (n == NGX_AGAIN) {
            c->write->handler = ngx_stream_wake_greeting_handler;

            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                return NGX_ERROR;
            }

            return NGX_AGAIN;
        }

        b->pos += n;
    }

    return NGX_OK;
}


static void
ngx_stream_wake_greeting_handler(ngx_event_t *wev)
{
    ngx_int_t               rc;
    ngx_connection_t       *c;
    ngx_stream_session_t   *s;
    ngx_stream_wake_ctx_t  *ctx;

    c = wev->data;
    s = c->data;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_wake_module);

    if (ctx == NULL || ctx->out == NULL || ctx->out->pos == ctx->out->last) {
        return;
    }

    rc = ngx_stream_wake_send_greeting(s, ctx);

    if (rc == NGX_ERROR) {
        ngx_stream_finalize_session(s, NGX_STREAM_OK);
    }
}


static void
ngx_stream_wake_handshake_timeout(ngx_event_t *ev)
{
    ngx_stream_session_t   *s;
    ngx_stream_wake_ctx_t  *ctx;

    ctx = ev->data;
    s = ctx->session;

    ngx_log_error(NGX_LOG_INFO, s->connection->log, NGX_ETIMEDOUT,
                  "client timed out in handshake");

    if (ctx->state == NGX_STREAM_WAKE_TLS) {
        /* no plain text inside a TLS handshake */
        ngx_stream_wake_client_failed(s);
        ngx_stream_finalize_session(s, NGX_STREAM_BAD_REQUEST);
        return;
    }

    (void) ngx_stream_wake_fail(s, ctx, NGX_STREAM_BAD_REQUEST,
                                NGX_STREAM_WAKE_ER_HANDSHAKE,
                                "Bad handshake: timed out");

    ngx_stream_finalize_session(s, ngx_stream_wake_send_err(s, ctx));
}


/*
 * Reads the client's next handshake packet into ctx->in, never past its
 * end: on the plain socket a MSG_PEEK and one read of exactly the packet
 * (ngx_stream_wake_recv_plain); through TLS reads of exactly the missing
 * length, the 4-byte header first, then its payload.
 * Nothing after the packet is taken from the socket, so the ClientHello
 * after an SSLRequest stays there for OpenSSL, and anything a client sends
 * early stays there for the proxy.  NGX_OK: a packet (or a header that
 * decides the packet's fate: too large, too small) is in ctx->in;
 * NGX_AGAIN: wait for the next read event; NGX_ERROR: the client left.
 */
static ssize_t
ngx_stream_wake_recv_plain(ngx_connection_t *c, ngx_buf_t *b, size_t need)
{
    size_t        seen;
    ssize_t       n, peeked;
    ngx_err_t     err;
    ngx_event_t  *rev;

    rev = c->read;

#if (NGX_HAVE_EPOLLRDHUP)
    /* as ngx_unix_recv(): nothing has arrived since the last read */
    if ((ngx_event_flags & NGX_USE_EPOLL_EVENT) && ngx_use_epoll_rdhup
        && !rev->available && !rev->pending_eof)
    {
        rev->ready = 0;
        return NGX_AGAIN;
    }
#endif

    /*
     * The connect path's syscalls are its cost (docs/module.md, "Connect
     * cost"): one MSG_PEEK shows what the client sent, and the header and
     * payload are then taken with one read of exactly the packet, instead
     * of a read of the header, nginx's FIONREAD after a read that filled
     * its buffer (ngx_unix_recv), and a read of the payload.  Nothing after
     * the packet leaves the socket.
     */

    for ( ;; ) {
        peeked = recv(c->fd, b->last, b->end - b->last, MSG_PEEK);

        if (peeked > 0) {
            break;
        }

        if (peeked == 0) {
            rev->ready = 0;
            rev->eof = 1;
            return 0;
        }

        err = ngx_socket_errno;

        if (err == NGX_EINTR) {
            continue;
        }

        if (err == NGX_EAGAIN) {
            rev->ready = 0;
            rev->available = 0;
            return NGX_AGAIN;
        }

        rev->ready = 0;
        rev->error = 1;
        ngx_connection_error(c, err, "recv() failed");
        return NGX_ERROR;
    }

    seen = (b->last - b->pos) + peeked;

    if (seen >= MP_HEADER_LEN) {
        /* the header is known: read up to the end of the packet */
        need = MP_HEADER_LEN + ((size_t) b->pos[0]
                                | (size_t) b->pos[1] << 8
                                | (size_t) b->pos[2] << 16)
               - (b->last - b->pos);
    }

    need = ngx_min(need, (size_t) peeked);

    do {
        n = recv(c->fd, b->last, need, 0);
    } while (n == -1 && ngx_socket_errno == NGX_EINTR);

    if (n <= 0) {
        /* the peeked bytes are there: only a reset takes them away */
        rev->ready = 0;
        rev->error = 1;
        return NGX_ERROR;
    }

    if (n == peeked) {
        /* drained: edge-triggered epoll reports what comes next */
        rev->ready = 0;
        rev->available = 0;

    } else {
        rev->available = peeked - n;    /* left for OpenSSL or the proxy */
    }

    return n;
}


static ngx_int_t
ngx_stream_wake_read_packet(ngx_stream_session_t *s, ngx_stream_wake_ctx_t *ctx)
{
    size_t             have, need;
    ssize_t            n;
    ngx_buf_t         *b;
    ngx_connection_t  *c;

    c = s->connection;
    b = ctx->in;

    for ( ;; ) {
        have = b->last - b->pos;

        if (have < MP_HEADER_LEN) {
            need = MP_HEADER_LEN - have;

        } else {
            need = MP_HEADER_LEN + ((size_t) b->pos[0]
                                    | (size_t) b->pos[1] << 8
                                    | (size_t) b->pos[2] << 16);

            if (have >= need || need > (size_t) (b->end - b->pos)) {
                return NGX_OK;      /* complete, or the parser refuses it */
            }

            need -= have;
        }

#if (NGX_SSL)
        if (c->ssl) {
            n = c->recv(c, b->last, need);
        } else
#endif
        {
            n = ngx_stream_wake_recv_plain(c, b, need);
        }

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
                return NGX_ERROR;
            }

            return NGX_AGAIN;
        }

        if (n == NGX_ERROR || n == 0) {
            return NGX_ERROR;
        }

        b->last += n;

        /* $bytes_received: the proxy counts only what it reads itself */
        s->received += n;
    }
}


static ngx_int_t
ngx_stream_wake_read_response(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx, ngx_stream_wake_srv_conf_t *wscf)
{
    int                           rc;
    size_t                        max;
    ngx_buf_t                    *b;
    ngx_int_t                     n;
    mp_response_t                 r;
    ngx_connection_t             *c;
    ngx_stream_core_srv_conf_t   *cscf;

    c = s->connection;
    c->log->action = "reading MySQL handshake response";

    n = ngx_stream_wake_read_packet(s, ctx);

    if (n == NGX_AGAIN) {
        return NGX_DONE;            /* the next read event calls us again */
    }

    if (n != NGX_OK) {
        return NGX_STREAM_OK;       /* the client went away */
    }

    /* the whole packet must fit into the preread buffer */

    cscf = ngx_stream_get_module_srv_conf(s, ngx_stream_core_module);
    max = cscf->preread_buffer_size - MP_HEADER_LEN;
    b = ctx->in;

    rc = mp_parse_response(b->pos, b->last - b->pos, max, &r);

    switch (rc) {

    case MP_OK:
        break;

    case MP_TOO_LARGE:
        return ngx_stream_wake_fail(s, ctx, NGX_STREAM_BAD_REQUEST,
                                    NGX_STREAM_WAKE_ER_TOO_LARGE,
                                    "Got a packet bigger than the proxy's "
                                    "preread_buffer_size in the handshake");

    default:
        return ngx_stream_wake_fail(s, ctx, NGX_STREAM_BAD_REQUEST,
                                    NGX_STREAM_WAKE_ER_HANDSHAKE,
                                    "Bad handshake");
    }

    if (!wscf->enable) {
        /* the TLS server name chose a server (server_name) without wake */
        return ngx_stream_wake_fail(s, ctx, NGX_STREAM_BAD_REQUEST,
                                    NGX_STREAM_WAKE_ER_HANDSHAKE,
                                    "Bad handshake: the TLS server name "
                                    "selects a server without \"wake on\"");
    }

    ctx->client_seq = (uint8_t) (r.seq + 1);

    if (r.ssl_request) {
        if (!wscf->ssl || ctx->tls || r.seq != 1) {
            return ngx_stream_wake_fail(s, ctx, NGX_STREAM_BAD_REQUEST,
                                        NGX_STREAM_WAKE_ER_HANDSHAKE,
                                        "Bad handshake: %s",
                                        wscf->ssl ? "unexpected SSLRequest"
                                                  : "this proxy does not "
                                                    "offer TLS");
        }

        return ngx_stream_wake_start_tls(s, ctx);
    }

    /* after an SSLRequest (seq 1) the response is seq 2 */

    if (r.seq != (ctx->tls ? 2 : 1)) {
        return ngx_stream_wake_fail(s, ctx, NGX_STREAM_BAD_REQUEST,
                                    NGX_STREAM_WAKE_ER_HANDSHAKE,
                                    "Bad handshake: packets out of order");
    }

    if (!(r.caps & MP_CLIENT_PLUGIN_AUTH)) {
        return ngx_stream_wake_fail(s, ctx, NGX_STREAM_BAD_REQUEST,
                                    NGX_STREAM_WAKE_ER_AUTH_MODE,
                                    "Client does not support authentication "
                                    "protocol requested by server; "
                                    "consider upgrading MariaDB client "
                                    "(CLIENT_PLUGIN_AUTH is required)");
    }

    ctx->client_caps = r.caps;
    ctx->compress = (r.caps & MP_CLIENT_COMPRESS) ? 1 : 0;

    /* the compute leg is plain: its numbering starts at the response */
    ctx->seq_delta = (uint8_t) (r.seq - 1);

    rc = ngx_stream_wake_route(s, ctx, wscf, &r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_stream_wake_rewrite_response(s, ctx, wscf, &r) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_stream_wake_stop_timers(ctx);

    return ngx_stream_wake_start(s, ctx, wscf);
}


/*
 * SSLRequest: TLS with the stream SSL module's context (ssl_certificate and
 * friends in this server).  The preread phase stays parked (NGX_DONE) while
 * OpenSSL drives the connection's events.
 */
static ngx_int_t
ngx_stream_wake_start_tls(ngx_stream_session_t *s, ngx_stream_wake_ctx_t *ctx)
{
#if (NGX_STREAM_SSL)

    ngx_int_t               rc;
    ngx_connection_t       *c;
    ngx_stream_wake_ssl_conf_t  *sslcf;

    c = s->connection;
    c->log->action = "SSL handshaking";

    sslcf = ngx_stream_get_module_srv_conf(s, ngx_stream_ssl_module);

    if (sslcf->ssl.ctx == NULL
        || ngx_ssl_create_connection(&sslcf->ssl, c, 0) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->state = NGX_STREAM_WAKE_TLS;

    /* the response (seq 2) comes through TLS, into the same buffer */
    ctx->in->pos = ctx->in->start;
    ctx->in->last = ctx->in->start;

    rc = ngx_ssl_handshake(c);

    if (rc == NGX_ERROR) {
        return NGX_STREAM_BAD_REQUEST;
    }

    if (rc == NGX_AGAIN) {
        c->ssl->handler = ngx_stream_wake_tls_handshaked;
        return NGX_DONE;
    }

    ngx_stream_wake_tls_handshaked(c);

    return NGX_DONE;

#else

    return NGX_ERROR;

#endif
}


#if (NGX_STREAM_SSL)

static void
ngx_stream_wake_tls_handshaked(ngx_connection_t *c)
{
    ngx_stream_session_t        *s;
    ngx_stream_wake_ctx_t       *ctx;

    s = c->data;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_wake_module);

    if (!c->ssl->handshaked) {
        ngx_stream_finalize_session(s, NGX_STREAM_BAD_REQUEST);
        return;
    }

    ctx->tls = 1;
    ctx->state = NGX_STREAM_WAKE_RESPONSE;
    ctx->client_seq = 3;        /* greeting 0, SSLRequest 1, response 2 */

    /* back to the phase engine, which now reads through TLS */

    c->read->handler = ngx_stream_session_handler;
    c->write->handler = ngx_stream_wake_greeting_handler;
    c->read->ready = 1;
    ngx_post_event(c->read, &ngx_posted_events);
}

#endif


/* client key: the client process, for routing its Ctrl-C connection */
static uint32_t
ngx_stream_wake_client_key(ngx_stream_session_t *s, mp_response_t *r)
{
    uint32_t   crc;
    mp_str_t   pid;
    ngx_str_t  addr;

    if (mp_attr_get(r, "_pid", &pid) != MP_OK || pid.len == 0) {
        return 0;
    }

    addr = s->connection->addr_text;

    ngx_crc32_init(crc);
    ngx_crc32_update(&crc, addr.data, addr.len);
    ngx_crc32_update(&crc, (u_char *) "\0", 1);
    ngx_crc32_update(&crc, (u_char *) r->user.data, r->user.len);
    ngx_crc32_update(&crc, (u_char *) "\0", 1);
    ngx_crc32_update(&crc, (u_char *) pid.data, pid.len);
    ngx_crc32_final(crc);

    return crc ? crc : 1;
}


static ngx_int_t
ngx_stream_wake_route(ngx_stream_session_t *s, ngx_stream_wake_ctx_t *ctx,
    ngx_stream_wake_srv_conf_t *wscf, mp_response_t *r)
{
    int                           *modes;
    mp_str_t                       sni;
    mp_route_t                     route;
    ngx_str_t                      project;
    ngx_connection_t              *c;
    ngx_stream_wake_main_conf_t   *wmcf;

    c = s->connection;
    modes = wscf->route->elts;

    sni.data = NULL;
    sni.len = 0;

#ifdef SSL_CTRL_SET_TLSEXT_HOSTNAME
    if (c->ssl) {
        sni.data = (const uint8_t *) SSL_get_servername(c->ssl->connection,
                                                TLSEXT_NAMETYPE_host_name);
        sni.len = sni.data ? ngx_strlen(sni.data) : 0;
    }
#endif

    ctx->client_key = ngx_stream_wake_client_key(s, r);

    if (mp_route(r, sni.len ? &sni : NULL, modes, wscf->route->nelts, &route)
        == MP_OK)
    {
        ctx->route_mode = route.mode;
        project.data = (u_char *) route.project.data;
        project.len = route.project.len;
        ctx->user.data = (u_char *) route.user.data;
        ctx->user.len = route.user.len;

    } else if (route.project.len) {
        return ngx_stream_wake_fail(s, ctx, NGX_STREAM_FORBIDDEN,
                                    NGX_STREAM_WAKE_ER_BAD_DB,
                                    "Unknown database '%*s' (not a valid "
                                    "project id: [a-z0-9-]{1,63})",
                                    route.project.len, route.project.data);

    } else {
        /* no project named: a Ctrl-C connection of a known client? */

        wmcf = ngx_stream_get_module_main_conf(s, ngx_stream_wake_module);

        if (ngx_stream_wake_ids_find_client(wmcf->shm_zone, ctx->client_key,
                                            c->pool, &ctx->project)
            != NGX_OK)
        {
            return ngx_stream_wake_fail(s, ctx, NGX_STREAM_FORBIDDEN,
                                        NGX_STREAM_WAKE_ER_NO_DB,
                                        "No database selected: connect "
                                        "with the project id as database "
                                        "name%s",
                                        (wscf->route->nelts > 1
                                         || modes[0] == MP_ROUTE_USER)
                                        ? " or as user prefix "
                                          "(project.user)" : "");
        }

        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "wake: no project named, routed to \"%V\" like "
                      "this client's other session", &ctx->project);

        ctx->user.data = (u_char *) r->user.data;
        ctx->user.len = r->user.len;
        project = ctx->project;
    }

    /* keep what points into the client's packet, whatever becomes of it */

    ctx->project.data = ngx_pstrdup(c->pool, &project);
    if (ctx->project.data == NULL) {
        return NGX_ERROR;
    }

    ctx->project.len = project.len;

    if (ctx->user.len) {
        project = ctx->user;
        ctx->user.data = ngx_pstrdup(c->pool, &project);
        if (ctx->user.data == NULL) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * c->buffer becomes the HandshakeResponse41 for the compute: the proxy
 * module writes c->buffer (from pos to last) after the PROXY protocol header
 * on every upstream connect, in nginx 1.22 as in 1.26.  The preread phase
 * never saw this buffer (the handler read the client itself and returns
 * NGX_OK without having returned NGX_AGAIN), so no nginx version resets it.
 */
static ngx_int_t
ngx_stream_wake_rewrite_response(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx, ngx_stream_wake_srv_conf_t *wscf,
    mp_response_t *r)
{
    size_t             size, n;
    mp_str_t           user, plugin, auth;
    ngx_buf_t         *b;
    mp_response_t      stripped;
    ngx_connection_t  *c;

    c = s->connection;

    if (wscf->strip_database && ctx->route_mode == MP_ROUTE_DATABASE) {
        /* the database named the project: no default database upstream */
        stripped = *r;
        stripped.caps &= ~MP_CLIENT_CONNECT_WITH_DB;
        stripped.has_database = 0;
        stripped.database.len = 0;
        r = &stripped;
    }

    user.data = ctx->user.data;
    user.len = ctx->user.len;
    plugin.data = ngx_stream_wake_switch_plugin.data;
    plugin.len = ngx_stream_wake_switch_plugin.len;

    size = mp_upstream_response_size(r, user, plugin);

    b = ngx_create_temp_buf(c->pool, size);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last += mp_build_upstream_response(b->pos, size, r, user, plugin, 1);

    c->buffer = b;

    /*
     * Pre-greeted: the client signed the guess's scramble.  If it used the
     * plugin that greeting named, its auth data is valid on the guess's
     * connection, and on no other: this response is written there only
     * (ngx_stream_wake_pre_get), in place of c->buffer.
     */

    ctx->pre_resp = NULL;

    if (!ctx->pregreeted || !mp_native_auth(r)) {
        return NGX_OK;
    }

    auth.data = r->auth.data;
    auth.len = r->auth.len;
    plugin.data = r->plugin.data;
    plugin.len = r->plugin.len;

    size = mp_upstream_response_auth_size(r, user, plugin, &auth);

    b = ngx_create_temp_buf(c->pool, size);
    if (b == NULL) {
        return NGX_ERROR;
    }

    n = mp_build_upstream_response_auth(b->pos, size, r, user, plugin, &auth,
                                        1);
    if (n == 0) {
        return NGX_OK;
    }

    b->last += n;
    ctx->pre_resp = b;

    return NGX_OK;
}


static ngx_int_t
ngx_stream_wake_start(ngx_stream_session_t *s, ngx_stream_wake_ctx_t *ctx,
    ngx_stream_wake_srv_conf_t *wscf)
{
    ngx_int_t                     rc;
    ngx_stream_wake_result_t      res;
    ngx_stream_wake_main_conf_t  *wmcf;

    s->connection->log->action = "waking compute";

    wmcf = ngx_stream_get_module_main_conf(s, ngx_stream_wake_module);

    rc = ngx_stream_wake_cache_get(wmcf->shm_zone, &ctx->project,
                                   s->connection->pool, &res);

    if (rc == NGX_OK || rc == NGX_DECLINED) {
        res.cold_start = ngx_stream_wake_warm;
        ngx_stream_wake_resume(ctx, &res);

        return (ctx->state == NGX_STREAM_WAKE_READY) ? NGX_OK : NGX_DONE;
    }

    ctx->state = NGX_STREAM_WAKE_WAKING;
    ctx->wake_start = ngx_current_msec;

    if (ngx_stream_wake_request(s, ctx, wscf, &ctx->project) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_DONE;
}


/*
 * The controller (or the cache) answered.  Called from a wake request's
 * event handler for waiting sessions, directly for cache hits.
 */
void
ngx_stream_wake_resume(ngx_stream_wake_ctx_t *ctx,
    ngx_stream_wake_result_t *res)
{
    ngx_connection_t      *c;
    ngx_stream_session_t  *s;

    s = ctx->session;
    c = s->connection;

    if (ctx->thawing) {
        /* a proxying session's held bytes waited for this wake */
        ngx_stream_wake_thawed(ctx, res);
        return;
    }

    if (ctx->state == NGX_STREAM_WAKE_WAKING) {
        ctx->wake_time = ngx_current_msec - ctx->wake_start;
        ctx->woken = 1;
    }

    switch (res->status) {

    case 200:
        ctx->upstream.data = ngx_pstrdup(c->pool, &res->address);
        ctx->compute.data = ngx_pstrdup(c->pool, &res->compute);
        ctx->cold_start.data = ngx_pstrdup(c->pool, &res->cold_start);

        if ((res->address.len && ctx->upstream.data == NULL)
            || (res->compute.len && ctx->compute.data == NULL)
            || (res->cold_start.len && ctx->cold_start.data == NULL))
        {
            (void) ngx_stream_wake_fail(s, ctx, NGX_STREAM_INTERNAL_SERVER_ERROR,
                                        NGX_STREAM_WAKE_ER_UNKNOWN,
                                        "Out of memory");
            break;
        }

        ctx->upstream.len = res->address.len;
        ctx->compute.len = res->compute.len;
        ctx->cold_start.len = res->cold_start.len;

        ctx->freeze_after = res->freeze_after;
        ctx->last_io = ngx_current_msec;

        /* READY, or QUEUED at the project's session limit, or FAILED */
        ngx_stream_wake_limit_enter(ctx, res->max_sessions);

        ngx_stream_wake_preconnect_route(s, ctx);
        break;

    case 400:
    case 404:
        (void) ngx_stream_wake_fail(s, ctx, NGX_STREAM_FORBIDDEN,
                                    NGX_STREAM_WAKE_ER_BAD_DB,
                                    "Unknown database '%V' (no such project)",
                                    &ctx->project);
        break;

    case 429:
        (void) ngx_stream_wake_fail(s, ctx, NGX_STREAM_SERVICE_UNAVAILABLE,
                                    NGX_STREAM_WAKE_ER_CON_COUNT,
                                    "Too many connections: project '%V' is "
                                    "waking too often; retry in %M s",
                                    &ctx->project,
                                    (res->retry_ms + 999) / 1000);
        break;

    case 401:
    case 403:
        (void) ngx_stream_wake_fail(s, ctx, NGX_STREAM_SERVICE_UNAVAILABLE,
                                    NGX_STREAM_WAKE_ER_ACCESS,
                                    "Access denied: the proxy is not "
                                    "authorized by the controller");
        break;

    default:
        (void) ngx_stream_wake_fail(s, ctx, NGX_STREAM_SERVICE_UNAVAILABLE,
                                    NGX_STREAM_WAKE_ER_UNKNOWN,
                                    "Compute for project '%V' is not "
                                    "available: %s, try again later",
                                    &ctx->project,
                                    res->status ? "wake failed"
                                                : "controller unreachable");
        break;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "wake: project \"%V\" status %i upstream \"%V\"",
                   &ctx->project, res->status, &ctx->upstream);

    if (ctx->woken) {
        /* resume the phase engine: the preread handler returns NGX_OK */
        ngx_post_event(c->read, &ngx_posted_events);
    }
}


/*
 * Remember the ERR for the client; it is sent by the preread handler (or the
 * timeout or log handler) through ngx_stream_wake_send_err().  The client's
 * own failures (400: bad handshake or timeout, 403: no or unknown project)
 * are charged to its address's bucket.
 */
ngx_int_t
ngx_stream_wake_fail(ngx_stream_session_t *s, ngx_stream_wake_ctx_t *ctx,
    ngx_uint_t status, ngx_uint_t code, const char *state, const char *fmt, ...)
{
    u_char   *p;
    va_list   args;
    u_char    msg[512];

    va_start(args, fmt);
    p = ngx_vslprintf(msg, msg + sizeof(msg), fmt, args);
    va_end(args);

    ctx->err_msg.len = p - msg;
    ctx->err_msg.data = ngx_pnalloc(s->connection->pool, ctx->err_msg.len);

    if (ctx->err_msg.data == NULL) {
        ctx->err_msg.len = 0;

    } else {
        ngx_memcpy(ctx->err_msg.data, msg, ctx->err_msg.len);
    }

    ctx->err_code = code;
    ctx->err_state = state;
    ctx->err_status = status;
    ctx->state = NGX_STREAM_WAKE_FAILED;

    if (status == NGX_STREAM_BAD_REQUEST || status == NGX_STREAM_FORBIDDEN) {
        ngx_stream_wake_client_failed(s);
    }

    return status;
}


/*
 * Best effort: the ERR is small and the socket idle.  Whatever the client
 * already sent is read first, so that closing does not turn into a reset
 * that could destroy the ERR before the client reads it.
 */
ngx_int_t
ngx_stream_wake_send_err(ngx_stream_session_t *s, ngx_stream_wake_ctx_t *ctx)
{
    size_t             n;
    ngx_uint_t         i;
    ngx_connection_t  *c;
    u_char             buf[1024];

    c = s->connection;

    ngx_stream_wake_stop_timers(ctx);

    if (ctx->err_sent) {
        return ctx->err_status;
    }

    ctx->err_sent = 1;

    ngx_log_error(NGX_LOG_INFO, c->log, 0, "wake: ERR %ui to client: \"%V\"",
                  ctx->err_code, &ctx->err_msg);

    if (c->read->eof || c->error) {
        return ctx->err_status;
    }

    if (ctx->out && ctx->out->pos < ctx->out->last) {
        if (ngx_stream_wake_send_greeting(s, ctx) != NGX_OK) {
            return ctx->err_status;
        }
    }

    n = mp_build_err(buf, sizeof(buf), ctx->client_seq,
                     (uint16_t) ctx->err_code, ctx->err_state,
                     (char *) ctx->err_msg.data, ctx->err_msg.len);

    if (n && c->send(c, buf, n) == (ssize_t) n) {
        for (i = 0; i < 16 && c->recv(c, buf, sizeof(buf)) > 0; i++) {
            /* drain */
        }
    }

    return ctx->err_status;
}


static void
ngx_stream_wake_stop_timers(ngx_stream_wake_ctx_t *ctx)
{
    ngx_connection_t  *c;

    c = ctx->session->connection;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }
}


static void
ngx_stream_wake_cleanup(void *data)
{
    ngx_stream_wake_ctx_t  *ctx = data;

    ngx_stream_wake_main_conf_t  *wmcf;

    ngx_stream_wake_request_detach(ctx);
    ngx_stream_wake_limit_release(ctx);
    ngx_stream_wake_preconnect_close(ctx);

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    if (ctx->greeting_timer.timer_set) {
        ngx_del_timer(&ctx->greeting_timer);
    }

    if (ctx->mapped) {
        wmcf = ngx_stream_get_module_main_conf(ctx->session,
                                               ngx_stream_wake_module);
        ngx_stream_wake_ids_del(wmcf->shm_zone, ctx->conn_id);
        ctx->mapped = 0;
    }
}


/*
 * LOG phase: the session is about to close.  If the client was promised a
 * compute but the compute never said a word (connect failed, it closed at
 * once, or it did not greet in time: stale cache entry, frozen compute),
 * the client gets an ERR instead of a bare EOF.  The address is forgotten
 * and the project woken again in the background, so that the client's
 * retry finds it: stock proxy_pass cannot go back to the preread phase.
 */
static ngx_int_t
ngx_stream_wake_log_handler(ngx_stream_session_t *s)
{
    ngx_uint_t                    failed;
    ngx_connection_t             *c;
    ngx_stream_upstream_t        *u;
    ngx_stream_wake_ctx_t        *ctx;
    ngx_stream_wake_srv_conf_t   *wscf;
    ngx_stream_wake_main_conf_t  *wmcf;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_wake_module);

    if (ctx == NULL || ctx->state != NGX_STREAM_WAKE_READY || ctx->relayed) {
        return NGX_OK;
    }

    c = s->connection;
    u = s->upstream;

    if (u == NULL || c->read->eof) {
        return NGX_OK;              /* the client left first */
    }

    failed = !u->connected || ctx->greeting_late || u->received == 0;

    if (failed) {
        wmcf = ngx_stream_get_module_main_conf(s, ngx_stream_wake_module);
        wscf = ngx_stream_get_module_srv_conf(s, ngx_stream_wake_module);

        ngx_stream_wake_cache_invalidate(wmcf->shm_zone, &ctx->project,
                                         &ctx->upstream);

        (void) ngx_stream_wake_request(s, NULL, wscf, &ctx->project);
    }

    (void) ngx_stream_wake_fail(s, ctx, s->status, NGX_STREAM_WAKE_ER_UNKNOWN,
                                "Compute for project '%V' is unreachable "
                                "(%s), try again",
                                &ctx->project,
                                !u->connected ? "connect failed"
                                : ctx->greeting_late ? "no greeting"
                                : "closed the connection");

    (void) ngx_stream_wake_send_err(s, ctx);

    return NGX_OK;
}


/* variables */

static ngx_int_t
ngx_stream_wake_variable_str(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data)
{
    ngx_str_t              *str;
    ngx_stream_wake_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_wake_module);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    str = (ngx_str_t *) ((char *) ctx + data);

    if (str->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = str->len;
    v->data = str->data;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


/* with wake_preconnect: the module's upstream{} until the proxy asked it */
static ngx_int_t
ngx_stream_wake_variable_upstream(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data)
{
    ngx_str_t               name;
    ngx_stream_wake_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_wake_module);

    if (ctx && ngx_stream_wake_preconnect_upstream(ctx, &name) == NGX_OK) {
        v->len = name.len;
        v->data = name.data;
        v->valid = 1;
        v->no_cacheable = 0;
        v->not_found = 0;
        return NGX_OK;
    }

    return ngx_stream_wake_variable_str(s, v, data);
}


/* $wake_preconnect: "hit", "miss", or empty (no guess was made) */
static ngx_int_t
ngx_stream_wake_variable_pre(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data)
{
    ngx_str_t              *res;
    ngx_stream_wake_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_wake_module);

    res = ctx ? ngx_stream_wake_preconnect_result(ctx) : NULL;

    if (res == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = res->len;
    v->data = res->data;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_stream_wake_variable_time(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data)
{
    u_char                 *p;
    ngx_stream_wake_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_wake_module);

    if (ctx == NULL || ctx->upstream.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(s->connection->pool, NGX_TIME_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->len = ngx_sprintf(p, "%M", ctx->wake_time) - p;
    v->data = p;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_stream_wake_variable_id(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data)
{
    u_char                 *p;
    uint32_t                id;
    ngx_stream_wake_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_wake_module);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    id = *(uint32_t *) ((char *) ctx + data);

    if (id == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(s->connection->pool, NGX_INT32_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->len = ngx_sprintf(p, "%uD", id) - p;
    v->data = p;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


/* configuration */

static char *
ngx_stream_wake_controller(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_wake_srv_conf_t *wscf = conf;

    ngx_str_t  *value;
    ngx_url_t   u;

    if (wscf->controller != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = value[1];

    if (u.url.len > 7 && ngx_strncasecmp(u.url.data, (u_char *) "http://", 7)
                         == 0)
    {
        u.url.len -= 7;
        u.url.data += 7;
    }

    u.default_port = 80;
    u.uri_part = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in wake_controller \"%V\"", u.err, &u.url);
        }

        return NGX_CONF_ERROR;
    }

    if (u.uri.len && !(u.uri.len == 1 && u.uri.data[0] == '/')) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "wake_controller takes an address, not a URI, "
                           "in \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    wscf->controller = u.addrs;
    wscf->controller_host = u.host;

    if (u.family != AF_UNIX && u.port != 80) {
        wscf->controller_host.data = ngx_pnalloc(cf->pool,
                                                 u.host.len + NGX_INT_T_LEN);
        if (wscf->controller_host.data == NULL) {
            return NGX_CONF_ERROR;
        }

        wscf->controller_host.len = ngx_sprintf(wscf->controller_host.data,
                                                "%V:%d", &u.host, u.port)
                                    - wscf->controller_host.data;
    }

    if (wscf->controller_host.len == 0) {
        ngx_str_set(&wscf->controller_host, "localhost");
    }

    return NGX_CONF_OK;
}


/*
 * The "name:size" argument of wake_zone and wake_limit_zone; "what" names
 * the zone in the error messages ("wake zone", "wake limit zone").
 */
static ngx_int_t
ngx_stream_wake_parse_zone(ngx_conf_t *cf, const char *what, ngx_str_t *name,
    ssize_t *size)
{
    u_char     *p;
    ngx_str_t  *value, s;

    value = cf->args->elts;

    p = (u_char *) ngx_strchr(value[1].data, ':');

    if (p == NULL || p == value[1].data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid %s \"%V\", use name:size",
                           what, &value[1]);
        return NGX_ERROR;
    }

    name->data = value[1].data;
    name->len = p - value[1].data;

    s.data = p + 1;
    s.len = value[1].data + value[1].len - s.data;

    *size = ngx_parse_size(&s);

    if (*size == NGX_ERROR || *size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid %s size \"%V\" (8 pages at least)",
                           what, &value[1]);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static char *
ngx_stream_wake_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_wake_main_conf_t *wmcf = conf;

    ssize_t    size;
    ngx_str_t  name;

    if (wmcf->shm_zone) {
        return "is duplicate";
    }

    if (ngx_stream_wake_parse_zone(cf, "wake zone", &name, &size) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    wmcf->shm_zone = ngx_stream_wake_shm_add(cf, &name, size);
    if (wmcf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_stream_wake_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_wake_main_conf_t *wmcf = conf;

    ssize_t    size;
    ngx_str_t  name;

    if (wmcf->limit_zone) {
        return "is duplicate";
    }

    if (ngx_stream_wake_parse_zone(cf, "wake limit zone", &name, &size)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    wmcf->limit_zone = ngx_stream_wake_limit_zone_add(cf, &name, size);
    if (wmcf->limit_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_stream_wake_route_modes(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_wake_srv_conf_t *wscf = conf;

    int                           *mode, *modes;
    ngx_str_t                     *value;
    ngx_uint_t                     i, j;
    ngx_stream_wake_route_name_t  *rn;

    if (wscf->route != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    wscf->route = ngx_array_create(cf->pool, 2, sizeof(int));
    if (wscf->route == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        for (rn = ngx_stream_wake_route_names; rn->name.len; rn++) {
            if (rn->name.len == value[i].len
                && ngx_strncmp(rn->name.data, value[i].data, value[i].len)
                   == 0)
            {
                break;
            }
        }

        if (rn->name.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "unknown wake_route \"%V\", use "
                               "\"database\", \"user\" or \"sni\"",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        modes = wscf->route->elts;

        for (j = 0; j < wscf->route->nelts; j++) {
            if (modes[j] == rn->mode) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "duplicate wake_route \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }
        }

        mode = ngx_array_push(wscf->route);
        if (mode == NULL) {
            return NGX_CONF_ERROR;
        }

        *mode = rn->mode;
    }

    return NGX_CONF_OK;
}


/*
 * "wake_ssl on": TLS for clients that send an SSLRequest, with the stock
 * ssl_certificate, ssl_certificate_key, ssl_protocols... of this server.
 * The stream SSL module builds its context only for "listen ... ssl"; this
 * asks it to build one anyway (a "listen ... ssl" port would start TLS
 * before the MySQL greeting, which MySQL clients do not speak).
 */
static char *
ngx_stream_wake_ssl(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
#if (NGX_STREAM_SSL)

    ngx_stream_wake_srv_conf_t *wscf = conf;

    char                        *rv;
#if (NGX_STREAM_WAKE_SSL_LISTEN)
    ngx_stream_wake_ssl_conf_t  *sslcf;
#endif

    rv = ngx_conf_set_flag_slot(cf, cmd, conf);

    if (rv != NGX_CONF_OK || !wscf->ssl) {
        return rv;
    }

#if (NGX_STREAM_WAKE_SSL_LISTEN)
    sslcf = ngx_stream_conf_get_module_srv_conf(cf, ngx_stream_ssl_module);

    sslcf->listen = 1;
    sslcf->file = cf->conf_file->file.name.data;
    sslcf->line = cf->conf_file->line;
#endif

    return NGX_CONF_OK;

#else

    return "requires the stream SSL module";

#endif
}


static ngx_int_t
ngx_stream_wake_parse_hex(ngx_str_t *v)
{
    if (v->len > 2 && v->data[0] == '0' && (v->data[1] | 0x20) == 'x') {
        return ngx_hextoi(v->data + 2, v->len - 2);
    }

    return ngx_atoi(v->data, v->len);
}


static char *
ngx_stream_wake_capabilities(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_wake_srv_conf_t *wscf = conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    if (wscf->caps != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    n = ngx_stream_wake_parse_hex(&value[1]);

    if (n == NGX_ERROR || n > 0xffffffff) {
        return "has an invalid capability mask";
    }

    if (!(n & MP_CLIENT_PROTOCOL_41) || !(n & MP_CLIENT_PLUGIN_AUTH)) {
        return "must include CLIENT_PROTOCOL_41 and CLIENT_PLUGIN_AUTH";
    }

    wscf->caps = (ngx_uint_t) n;

    if (cf->args->nelts == 3) {
        n = ngx_stream_wake_parse_hex(&value[2]);

        if (n == NGX_ERROR || n > 0xffffffff) {
            return "has an invalid extended capability mask";
        }

        wscf->ext_caps = (ngx_uint_t) n;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_stream_wake_add_variables(ngx_conf_t *cf)
{
    ngx_stream_variable_t  *var, *v;

    for (v = ngx_stream_wake_vars; v->name.len; v++) {
        var = ngx_stream_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static void *
ngx_stream_wake_create_main_conf(ngx_conf_t *cf)
{
    return ngx_pcalloc(cf->pool, sizeof(ngx_stream_wake_main_conf_t));
}


static void *
ngx_stream_wake_create_srv_conf(ngx_conf_t *cf)
{
    ngx_stream_wake_srv_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_stream_wake_srv_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->controller_host = { 0, NULL };
     *     conf->token = { 0, NULL };
     *     conf->server_version = { 0, NULL };
     */

    conf->enable = NGX_CONF_UNSET;
    conf->strip_database = NGX_CONF_UNSET;
    conf->preconnect = NGX_CONF_UNSET;
    conf->ssl = NGX_CONF_UNSET;
    conf->controller = NGX_CONF_UNSET_PTR;
    conf->timeout = NGX_CONF_UNSET_MSEC;
    conf->retries = NGX_CONF_UNSET_UINT;
    conf->backoff = NGX_CONF_UNSET_MSEC;
    conf->cache_ttl = NGX_CONF_UNSET_MSEC;
    conf->negative_ttl = NGX_CONF_UNSET_MSEC;
    conf->handshake_timeout = NGX_CONF_UNSET_MSEC;
    conf->greeting_timeout = NGX_CONF_UNSET_MSEC;
    conf->route = NGX_CONF_UNSET_PTR;
    conf->caps = NGX_CONF_UNSET_UINT;
    conf->ext_caps = NGX_CONF_UNSET_UINT;
    conf->charset = NGX_CONF_UNSET_UINT;
    conf->session_queue = NGX_CONF_UNSET_UINT;
    conf->session_queue_timeout = NGX_CONF_UNSET_MSEC;
    conf->client_rate = NGX_CONF_UNSET_UINT;
    conf->client_burst = NGX_CONF_UNSET_UINT;

    return conf;
}


static char *
ngx_stream_wake_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_stream_wake_srv_conf_t *prev = parent;
    ngx_stream_wake_srv_conf_t *conf = child;

    int                          *mode;
    ngx_stream_core_srv_conf_t   *cscf;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_value(conf->strip_database, prev->strip_database, 0);
    ngx_conf_merge_value(conf->preconnect, prev->preconnect, 0);
    ngx_conf_merge_ptr_value(conf->controller, prev->controller, NULL);
    ngx_conf_merge_str_value(conf->controller_host, prev->controller_host, "");
    ngx_conf_merge_str_value(conf->token, prev->token, "");
    ngx_conf_merge_msec_value(conf->timeout, prev->timeout, 30000);
    ngx_conf_merge_uint_value(conf->retries, prev->retries, 2);
    ngx_conf_merge_msec_value(conf->backoff, prev->backoff, 100);
    ngx_conf_merge_msec_value(conf->cache_ttl, prev->cache_ttl, 2000);
    ngx_conf_merge_msec_value(conf->negative_ttl, prev->negative_ttl, 1000);
    ngx_conf_merge_msec_value(conf->handshake_timeout,
                              prev->handshake_timeout, 10000);
    ngx_conf_merge_msec_value(conf->greeting_timeout,
                              prev->greeting_timeout, 1000);
    ngx_conf_merge_str_value(conf->server_version, prev->server_version,
                             MP_DEFAULT_VERSION);
    ngx_conf_merge_value(conf->ssl, prev->ssl, 0);
    ngx_conf_merge_uint_value(conf->caps, prev->caps, MP_DEFAULT_CAPS);

    /* CLIENT_SSL is offered exactly when TLS is */

    if (conf->ssl) {
        conf->caps |= MP_CLIENT_SSL;

    } else {
        conf->caps &= ~MP_CLIENT_SSL;
    }
    ngx_conf_merge_uint_value(conf->ext_caps, prev->ext_caps,
                              MP_DEFAULT_EXT_CAPS);
    ngx_conf_merge_uint_value(conf->charset, prev->charset,
                              MP_DEFAULT_CHARSET);
    ngx_conf_merge_ptr_value(conf->route, prev->route, NULL);
    ngx_conf_merge_uint_value(conf->session_queue, prev->session_queue, 100);
    ngx_conf_merge_msec_value(conf->session_queue_timeout,
                              prev->session_queue_timeout, 10000);

    /* off unless configured: clients behind one NAT share an address */
    if (conf->client_rate == NGX_CONF_UNSET_UINT) {
        conf->client_rate = (prev->client_rate == NGX_CONF_UNSET_UINT)
                            ? 0 : prev->client_rate;
        conf->client_burst = (prev->client_burst == NGX_CONF_UNSET_UINT)
                             ? 0 : prev->client_burst;
    }

    if (conf->route == NULL) {
        conf->route = ngx_array_create(cf->pool, 1, sizeof(int));
        if (conf->route == NULL) {
            return NGX_CONF_ERROR;
        }

        mode = ngx_array_push(conf->route);
        if (mode == NULL) {
            return NGX_CONF_ERROR;
        }

        *mode = MP_ROUTE_DATABASE;
    }

    if (conf->enable && conf->controller == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"wake on\" needs \"wake_controller\"");
        return NGX_CONF_ERROR;
    }

#if (NGX_STREAM_SSL)
    if (conf->enable && conf->ssl) {
        /*
         * Before nginx 1.25.5 the SSL module itself refuses a "listen"ed
         * server without a certificate; since then it just builds no
         * context, and every SSLRequest would fail.  Say so at load time.
         */
        ngx_stream_wake_ssl_conf_t  *sslcf;

        sslcf = ngx_stream_conf_get_module_srv_conf(cf, ngx_stream_ssl_module);

        if (sslcf->certificates == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"wake_ssl on\" needs \"ssl_certificate\" "
                               "and \"ssl_certificate_key\"");
            return NGX_CONF_ERROR;
        }
    }
#endif

    if (conf->server_version.len > 250) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "wake_server_version is too long");
        return NGX_CONF_ERROR;
    }

    cscf = ngx_stream_conf_get_module_srv_conf(cf, ngx_stream_core_module);
    conf->error_log = cscf->error_log;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_stream_wake_init(ngx_conf_t *cf)
{
    ngx_str_t                     name;
    ngx_stream_handler_pt        *h;
    ngx_stream_core_main_conf_t  *cmcf;
    ngx_stream_wake_main_conf_t  *wmcf;

    cmcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_core_module);
    wmcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_wake_module);

    if (wmcf->shm_zone == NULL) {
        ngx_str_set(&name, "ngx_stream_wake");

        wmcf->shm_zone = ngx_stream_wake_shm_add(cf, &name,
                                          NGX_STREAM_WAKE_DEFAULT_ZONE_SIZE);
        if (wmcf->shm_zone == NULL) {
            return NGX_ERROR;
        }
    }

    if (wmcf->limit_zone == NULL) {
        ngx_str_set(&name, "ngx_stream_wake_limit");

        wmcf->limit_zone = ngx_stream_wake_limit_zone_add(cf, &name,
                                    NGX_STREAM_WAKE_DEFAULT_LIMIT_ZONE_SIZE);
        if (wmcf->limit_zone == NULL) {
            return NGX_ERROR;
        }
    }

    h = ngx_array_push(&cmcf->phases[NGX_STREAM_PREREAD_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_stream_wake_preread_handler;

    h = ngx_array_push(&cmcf->phases[NGX_STREAM_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_stream_wake_log_handler;

    return ngx_stream_wake_filter_init(cf);
}
