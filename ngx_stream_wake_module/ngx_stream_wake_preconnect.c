/*
 * wake_preconnect: the compute's TCP connect overlaps the client's answer to
 * the proxy's greeting (docs/module.md, "Connect cost").
 *
 * The module can connect to the compute only once the HandshakeResponse has
 * named the project, a client round trip after the client connected; stock
 * proxy_pass connects when the client connects.  With wake_preconnect on, a
 * session whose client address logged in to a compute a moment ago (this
 * worker's table, at most wake_cache_ttl old) connects to that compute when
 * it is accepted.  Once the route is known the guess is either handed to
 * proxy_pass or closed:
 *
 *   - "proxy_pass $wake_upstream" names the module's own upstream{}
 *     ("wake_preconnect", registered by the directive) while the session
 *     waits for the proxy; its peer.get hands over the connection made at
 *     accept (NGX_DONE: connected; NGX_AGAIN: still connecting, the proxy
 *     waits for it as for its own), or gives the proxy the address to
 *     connect to itself (NGX_OK), with the proxy's own local address
 *     (proxy_bind), PROXY protocol header and timeouts either way;
 *   - the connection carries nothing until it is handed over: the compute
 *     greets into the socket, and the proxy reads the greeting as usual.
 *
 * Pre-greeting: the guess is made before the client is greeted, and the
 * session waits up to NGX_STREAM_WAKE_PRE_WAIT for the compute's Initial
 * Handshake (state PREGREET).  If it comes, it is read out of the socket
 * here and the client gets the proxy's greeting with the compute's scramble
 * and thread id: a client that answers with mysql_native_password has then
 * signed that compute's scramble, and if the route confirms the guess the
 * compute gets the client's auth data on that very connection and answers
 * OK/ERR at once, without an AuthSwitchRequest round trip.  In every other
 * case (a miss, another plugin, a guess too old) the response goes as
 * always, with empty auth data: auth data signed on one compute's scramble
 * is written only to the connection that sent that scramble.  A compute
 * that does not greet in time costs that bound; its guess stays open as a
 * plain preconnect (the greeting then stays in the socket for the proxy).
 *
 * The guessed connection exists before the client authenticated, so it is
 * bounded: one per session, at most NGX_STREAM_WAKE_PRE_MAX per worker,
 * only to a compute this client address was routed to within
 * wake_cache_ttl, closed at the latest with the session (a wrong guess or a
 * client that leaves is an aborted connect on that compute).
 */

#include "ngx_stream_wake.h"


#define NGX_STREAM_WAKE_PRE_SLOTS   1024    /* client addresses per worker */
#define NGX_STREAM_WAKE_PRE_MAX     64      /* guesses open per worker */
#define NGX_STREAM_WAKE_PRE_AGE     5000    /* older: MariaDB's connect_timeout
                                               (10 s) may be near */
#define NGX_STREAM_WAKE_PRE_WAIT    3       /* ms for the guess's greeting:
                                               a warm compute greets in
                                               0.1-0.3 ms */
#define NGX_STREAM_WAKE_PRE_GREETING_MAX  256   /* MariaDB's: ~100 bytes */


/* this worker's memory of where a client address was routed */
typedef struct {
    u_char                      key[16];
    size_t                      key_len;
    ngx_msec_t                  time;
    ngx_sockaddr_t              peer;
    socklen_t                   peer_len;
    u_char                      name[NGX_SOCKADDR_STRLEN];
    size_t                      name_len;
    ngx_sockaddr_t              local;
    socklen_t                   local_len;      /* 0: no proxy_bind */
    unsigned                    local_known:1;  /* seen in a handover */
} ngx_stream_wake_pre_slot_t;


struct ngx_stream_wake_pre_s {
    ngx_peer_connection_t       pc;
    ngx_sockaddr_t              peer;
    ngx_addr_t                  local;
    ngx_sockaddr_t              local_sa;
    ngx_str_t                   name;
    ngx_msec_t                  start;
    ngx_event_t                 wait;           /* PREGREET's bound */
    mp_greeting_t               greeting;       /* points into gbuf */
    size_t                      glen;
    u_char                      gbuf[NGX_STREAM_WAKE_PRE_GREETING_MAX];
    unsigned                    connected:1;
    unsigned                    matched:1;
    unsigned                    waiting:1;      /* session in PREGREET */
    unsigned                    greeted:1;      /* greeting read out */
};


static ngx_stream_wake_pre_slot_t *ngx_stream_wake_pre_slot(
    ngx_connection_t *c, ngx_uint_t create);
static void ngx_stream_wake_pre_handler(ngx_event_t *ev);
static void ngx_stream_wake_pre_read(ngx_stream_wake_ctx_t *ctx);
static void ngx_stream_wake_pre_wait_timeout(ngx_event_t *ev);
static void ngx_stream_wake_pre_resume(ngx_stream_wake_ctx_t *ctx);
static void ngx_stream_wake_pre_drop(ngx_stream_wake_ctx_t *ctx);
static ngx_int_t ngx_stream_wake_pre_init_upstream(ngx_conf_t *cf,
    ngx_stream_upstream_srv_conf_t *us);
static ngx_int_t ngx_stream_wake_pre_init_peer(ngx_stream_session_t *s,
    ngx_stream_upstream_srv_conf_t *us);
static ngx_int_t ngx_stream_wake_pre_get(ngx_peer_connection_t *pc,
    void *data);
static void ngx_stream_wake_pre_free(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state);


static ngx_stream_wake_pre_slot_t  *ngx_stream_wake_pre_slots;
static ngx_uint_t                   ngx_stream_wake_pre_open;

static ngx_str_t  ngx_stream_wake_pre_upstream = ngx_string("wake_preconnect");

static ngx_str_t  ngx_stream_wake_pre_hit = ngx_string("hit");
static ngx_str_t  ngx_stream_wake_pre_miss = ngx_string("miss");


/* "wake_preconnect on|off": the flag, and the module's upstream{} once */
char *
ngx_stream_wake_preconnect(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char                            *rv;
    ngx_url_t                        u;
    ngx_stream_upstream_srv_conf_t  *uscf;
    ngx_stream_wake_main_conf_t     *wmcf;

    rv = ngx_conf_set_flag_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    wmcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_wake_module);

    if (wmcf->preconnect != NULL) {
        return NGX_CONF_OK;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.host = ngx_stream_wake_pre_upstream;
    u.no_port = 1;

    uscf = ngx_stream_upstream_add(cf, &u, NGX_STREAM_UPSTREAM_CREATE);
    if (uscf == NULL) {
        return NGX_CONF_ERROR;
    }

    uscf->peer.init_upstream = ngx_stream_wake_pre_init_upstream;
    wmcf->preconnect = uscf;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_stream_wake_pre_init_upstream(ngx_conf_t *cf,
    ngx_stream_upstream_srv_conf_t *us)
{
    us->peer.init = ngx_stream_wake_pre_init_peer;

    return NGX_OK;
}


/* the client's address bytes: the key of its slot */
static ngx_stream_wake_pre_slot_t *
ngx_stream_wake_pre_slot(ngx_connection_t *c, ngx_uint_t create)
{
    u_char                      *key;
    size_t                       len;
    uint32_t                     hash;
    ngx_stream_wake_pre_slot_t  *slot;

    switch (c->sockaddr->sa_family) {

    case AF_INET:
        key = (u_char *) &((struct sockaddr_in *) c->sockaddr)->sin_addr;
        len = 4;
        break;

#if (NGX_HAVE_INET6)
    case AF_INET6:
        key = (u_char *) &((struct sockaddr_in6 *) c->sockaddr)->sin6_addr;
        len = 16;
        break;
#endif

    default:
        return NULL;
    }

    if (ngx_stream_wake_pre_slots == NULL) {
        if (!create) {
            return NULL;
        }

        /* per worker, for its lifetime: allocated on first use */
        ngx_stream_wake_pre_slots = ngx_calloc(NGX_STREAM_WAKE_PRE_SLOTS
                                         * sizeof(ngx_stream_wake_pre_slot_t),
                                         c->log);
        if (ngx_stream_wake_pre_slots == NULL) {
            return NULL;
        }
    }

    hash = ngx_crc32_short(key, len);
    slot = &ngx_stream_wake_pre_slots[hash % NGX_STREAM_WAKE_PRE_SLOTS];

    if (slot->key_len != len || ngx_memcmp(slot->key, key, len) != 0) {
        if (!create) {
            return NULL;
        }

        ngx_memzero(slot, sizeof(ngx_stream_wake_pre_slot_t));
        ngx_memcpy(slot->key, key, len);
        slot->key_len = len;
    }

    return slot;
}


/*
 * accepted: connect to the compute this address was routed to, if fresh.
 * NGX_AGAIN: the session waits for the compute's greeting (PREGREET) and is
 * resumed by a posted read event; NGX_DECLINED: greet the client now.
 */
ngx_int_t
ngx_stream_wake_preconnect_start(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_connection_t            *c, *pc;
    ngx_stream_wake_pre_t       *pre;
    ngx_stream_wake_pre_slot_t  *slot;
    ngx_stream_wake_srv_conf_t  *wscf;

    c = s->connection;
    wscf = ngx_stream_get_module_srv_conf(s, ngx_stream_wake_module);

    if (!wscf->preconnect || wscf->cache_ttl == 0
        || ngx_stream_wake_pre_open >= NGX_STREAM_WAKE_PRE_MAX)
    {
        return NGX_DECLINED;
    }

    slot = ngx_stream_wake_pre_slot(c, 0);

    if (slot == NULL || slot->peer_len == 0 || !slot->local_known
        || ngx_current_msec - slot->time > wscf->cache_ttl)
    {
        return NGX_DECLINED;
    }

    pre = ngx_pcalloc(c->pool, sizeof(ngx_stream_wake_pre_t));
    if (pre == NULL) {
        return NGX_DECLINED;
    }

    /* copies: the slot may be taken by another address meanwhile */

    ngx_memcpy(&pre->peer, &slot->peer, slot->peer_len);
    pre->pc.sockaddr = &pre->peer.sockaddr;
    pre->pc.socklen = slot->peer_len;

    pre->name.data = ngx_pnalloc(c->pool, slot->name_len);
    if (pre->name.data == NULL) {
        return NGX_DECLINED;
    }

    pre->name.len = slot->name_len;
    ngx_memcpy(pre->name.data, slot->name, slot->name_len);
    pre->pc.name = &pre->name;

    if (slot->local_len) {
        ngx_memcpy(&pre->local_sa, &slot->local, slot->local_len);
        pre->local.sockaddr = &pre->local_sa.sockaddr;
        pre->local.socklen = slot->local_len;
        ngx_str_set(&pre->local.name, "proxy_bind address");
        pre->pc.local = &pre->local;
    }

    pre->pc.get = ngx_event_get_peer;
    pre->pc.log = c->log;
    pre->pc.log_error = NGX_ERROR_ERR;
    pre->pc.type = SOCK_STREAM;
    pre->start = ngx_current_msec;

    rc = ngx_event_connect_peer(&pre->pc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        if (pre->pc.connection) {
            ngx_close_connection(pre->pc.connection);
        }

        return NGX_DECLINED;
    }

    pc = pre->pc.connection;
    pc->data = ctx;
    pc->pool = c->pool;
    pc->read->handler = ngx_stream_wake_pre_handler;
    pc->write->handler = ngx_stream_wake_pre_handler;

    if (rc == NGX_OK) {
        pre->connected = 1;

    } else {
        ngx_add_timer(pc->write, wscf->greeting_timeout);
    }

    /* unused for this long: closed, before the compute gives up on it */
    ngx_add_timer(pc->read, NGX_STREAM_WAKE_PRE_AGE);

    ctx->pre = pre;
    ngx_stream_wake_pre_open++;

    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "wake: preconnecting to %V", &pre->name);

    /* the client is greeted with this compute's scramble if it is quick */

    pre->wait.handler = ngx_stream_wake_pre_wait_timeout;
    pre->wait.data = ctx;
    pre->wait.log = c->log;
    pre->waiting = 1;

    ngx_add_timer(&pre->wait, NGX_STREAM_WAKE_PRE_WAIT);

    if (pc->read->ready) {
        ngx_stream_wake_pre_read(ctx);
    }

    return pre->waiting ? NGX_AGAIN : NGX_DECLINED;
}


/*
 * Before the handover: note the end of the connect, drop what fails, read
 * the compute's greeting while the session waits for it.  Otherwise the
 * greeting stays in the socket (c->read->ready) for the proxy.
 */
static void
ngx_stream_wake_pre_handler(ngx_event_t *ev)
{
    int                     err;
    socklen_t               len;
    ngx_connection_t       *pc;
    ngx_stream_wake_ctx_t  *ctx;

    pc = ev->data;
    ctx = pc->data;

    if (ev->timedout) {
        ngx_stream_wake_pre_drop(ctx);
        return;
    }

    if (ev->write) {
        if (!ctx->pre->connected) {
            err = 0;
            len = sizeof(int);

            if (getsockopt(pc->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len)
                == -1)
            {
                err = ngx_socket_errno;
            }

            if (err) {
                ngx_stream_wake_pre_drop(ctx);
                return;
            }

            ctx->pre->connected = 1;

            if (pc->write->timer_set) {
                ngx_del_timer(pc->write);
            }
        }

        return;
    }

    if (ctx->pre->waiting) {
        ngx_stream_wake_pre_read(ctx);
        return;
    }

    if (ev->eof || ev->error || ev->pending_eof) {
        /* the compute closed it (or refused the connect) */
        ngx_stream_wake_pre_drop(ctx);
    }
}


/*
 * PREGREET: the compute's Initial Handshake, read out of the guess socket.
 * A compute sends nothing after it until it has the response, so all there
 * is to read is the greeting; anything else (an ERR such as "too many
 * connections", more bytes, a packet too long) drops the guess.
 */
static void
ngx_stream_wake_pre_read(ngx_stream_wake_ctx_t *ctx)
{
    int                     rc;
    ssize_t                 n;
    ngx_connection_t       *pc;
    ngx_stream_wake_pre_t  *pre;

    pre = ctx->pre;
    pc = pre->pc.connection;

    for ( ;; ) {
        if (pre->glen == sizeof(pre->gbuf)) {
            ngx_stream_wake_pre_drop(ctx);
            return;
        }

        n = pc->recv(pc, pre->gbuf + pre->glen, sizeof(pre->gbuf) - pre->glen);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(pc->read, 0) != NGX_OK) {
                ngx_stream_wake_pre_drop(ctx);
            }

            return;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_stream_wake_pre_drop(ctx);
            return;
        }

        pre->glen += n;

        rc = mp_parse_greeting(pre->gbuf, pre->glen, &pre->greeting);

        if (rc == MP_AGAIN) {
            continue;
        }

        if (rc != MP_OK || pre->greeting.packet_len != pre->glen
            || pre->gbuf[3] != 0)
        {
            ngx_log_error(NGX_LOG_INFO, pc->log, 0,
                          "wake: no greeting from preconnected %V",
                          &pre->name);
            ngx_stream_wake_pre_drop(ctx);
            return;
        }

        pre->greeted = 1;

        ngx_log_debug2(NGX_LOG_DEBUG_STREAM, pc->log, 0,
                       "wake: %V greeted as thread %uD before the client",
                       &pre->name, pre->greeting.conn_id);

        ngx_stream_wake_pre_resume(ctx);
        return;
    }
}


/* the guess did not greet in time: the client gets the proxy's greeting */
static void
ngx_stream_wake_pre_wait_timeout(ngx_event_t *ev)
{
    ngx_stream_wake_ctx_t  *ctx;

    ctx = ev->data;

    ngx_log_debug0(NGX_LOG_DEBUG_STREAM, ev->log, 0,
                   "wake: preconnect greeting wait timed out");

    if (ctx->pre->glen) {
        /* half a greeting: that connection is of no use to the proxy */
        ngx_stream_wake_pre_drop(ctx);
        return;
    }

    /* the connection stays a plain guess: its greeting is the proxy's */
    ngx_stream_wake_pre_resume(ctx);
}


/* PREGREET ends: back to the preread handler, which greets the client */
static void
ngx_stream_wake_pre_resume(ngx_stream_wake_ctx_t *ctx)
{
    ngx_stream_wake_pre_t  *pre;

    pre = ctx->pre;

    if (!pre->waiting) {
        return;
    }

    pre->waiting = 0;

    if (pre->wait.timer_set) {
        ngx_del_timer(&pre->wait);
    }

    if (ctx->state == NGX_STREAM_WAKE_PREGREET) {
        ctx->state = NGX_STREAM_WAKE_GREETING;
        ngx_post_event(ctx->session->connection->read, &ngx_posted_events);
    }
}


/* the guess's greeting, if the client may be greeted with its scramble */
mp_greeting_t *
ngx_stream_wake_preconnect_greeting(ngx_stream_wake_ctx_t *ctx)
{
    ngx_stream_wake_pre_t  *pre;

    pre = ctx->pre;

    if (pre == NULL || pre->pc.connection == NULL || !pre->greeted
        || !mp_greeting_native(&pre->greeting)
        || pre->greeting.conn_id == 0)
    {
        return NULL;
    }

    return &pre->greeting;
}


static void
ngx_stream_wake_pre_drop(ngx_stream_wake_ctx_t *ctx)
{
    ngx_stream_wake_pre_t  *pre;

    pre = ctx->pre;

    if (pre == NULL || pre->pc.connection == NULL) {
        return;
    }

    /* a session waiting for this guess's greeting greets the client now */
    ngx_stream_wake_pre_resume(ctx);

    ngx_close_connection(pre->pc.connection);
    pre->pc.connection = NULL;
    ngx_stream_wake_pre_open--;

    if (!pre->matched) {
        ctx->preconnect = &ngx_stream_wake_pre_miss;
    }
}


/*
 * The route is known (ctx->upstream).  Remember it for this client address,
 * keep the guess if it is right, close it if not.  $wake_upstream then names
 * the module's upstream{} until the proxy has asked it for a peer, if the
 * address is one the module can connect to (an IP literal and port).
 */
void
ngx_stream_wake_preconnect_route(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx)
{
    ngx_addr_t                   addr;
    ngx_connection_t            *c;
    ngx_stream_wake_pre_t       *pre;
    ngx_stream_wake_pre_slot_t  *slot;
    ngx_stream_wake_srv_conf_t  *wscf;

    c = s->connection;
    wscf = ngx_stream_get_module_srv_conf(s, ngx_stream_wake_module);
    pre = ctx->pre;

    if (pre && pre->pc.connection) {
        if (pre->name.len == ctx->upstream.len
            && ngx_strncmp(pre->name.data, ctx->upstream.data,
                           ctx->upstream.len) == 0)
        {
            pre->matched = 1;

        } else {
            ngx_stream_wake_pre_drop(ctx);
        }
    }

    if (!wscf->preconnect
        || ctx->upstream.len == 0 || ctx->upstream.len > NGX_SOCKADDR_STRLEN
        || ngx_parse_addr_port(c->pool, &addr, ctx->upstream.data,
                               ctx->upstream.len) != NGX_OK
        || addr.socklen > sizeof(ngx_sockaddr_t))
    {
        ngx_stream_wake_pre_drop(ctx);
        return;         /* a host name: the proxy resolves it as before */
    }

    ctx->pre_addr = ngx_palloc(c->pool, sizeof(ngx_addr_t));
    if (ctx->pre_addr == NULL) {
        ngx_stream_wake_pre_drop(ctx);
        return;
    }

    *ctx->pre_addr = addr;
    ctx->pre_pending = 1;

    slot = ngx_stream_wake_pre_slot(c, 1);
    if (slot == NULL) {
        return;
    }

    if (slot->name_len != ctx->upstream.len
        || ngx_memcmp(slot->name, ctx->upstream.data, ctx->upstream.len) != 0)
    {
        ngx_memcpy(&slot->peer, addr.sockaddr, addr.socklen);
        slot->peer_len = addr.socklen;
        ngx_memcpy(slot->name, ctx->upstream.data, ctx->upstream.len);
        slot->name_len = ctx->upstream.len;
    }

    slot->time = ngx_current_msec;
}


/* $wake_preconnect: a guess still open when the session ends missed */
ngx_str_t *
ngx_stream_wake_preconnect_result(ngx_stream_wake_ctx_t *ctx)
{
    if (ctx->preconnect == NULL && ctx->pre && ctx->pre->pc.connection) {
        return &ngx_stream_wake_pre_miss;
    }

    return ctx->preconnect;
}


/* $wake_upstream: the module's upstream{} while the proxy is to ask it */
ngx_int_t
ngx_stream_wake_preconnect_upstream(ngx_stream_wake_ctx_t *ctx, ngx_str_t *v)
{
    if (!ctx->pre_pending) {
        return NGX_DECLINED;
    }

    *v = ngx_stream_wake_pre_upstream;

    return NGX_OK;
}


static ngx_int_t
ngx_stream_wake_pre_init_peer(ngx_stream_session_t *s,
    ngx_stream_upstream_srv_conf_t *us)
{
    ngx_stream_upstream_t  *u;
    ngx_stream_wake_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_wake_module);

    if (ctx == NULL || !ctx->pre_pending) {
        ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                      "upstream \"%V\" is the wake module's own: use "
                      "\"proxy_pass $wake_upstream\"",
                      &ngx_stream_wake_pre_upstream);
        return NGX_ERROR;
    }

    u = s->upstream;

    u->peer.get = ngx_stream_wake_pre_get;
    u->peer.free = ngx_stream_wake_pre_free;
    u->peer.data = ctx;
    u->peer.tries = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_stream_wake_pre_get(ngx_peer_connection_t *pc, void *data)
{
    ngx_stream_wake_ctx_t       *ctx = data;

    ngx_connection_t            *c;
    ngx_stream_wake_pre_t       *pre;
    ngx_stream_wake_pre_slot_t  *slot;

    c = ctx->session->connection;
    pre = ctx->pre;

    ctx->pre_pending = 0;

    /* the proxy's local address (proxy_bind) is what guesses must use */

    slot = ngx_stream_wake_pre_slot(c, 0);

    if (slot) {
        slot->local_len = 0;

        if (pc->local && pc->local->socklen <= sizeof(ngx_sockaddr_t)) {
            ngx_memcpy(&slot->local, pc->local->sockaddr, pc->local->socklen);
            slot->local_len = pc->local->socklen;
        }

        slot->local_known = (pc->local == NULL || slot->local_len) ? 1 : 0;

#if (NGX_HAVE_TRANSPARENT_PROXY)
        if (pc->transparent) {
            /* "proxy_bind $remote_addr transparent": no guesses */
            slot->local_known = 0;
        }
#endif
    }

    pc->name = &ctx->upstream;

    if (pre && pre->pc.connection && pre->matched
        && ngx_current_msec - pre->start < NGX_STREAM_WAKE_PRE_AGE)
    {
        pc->sockaddr = pre->pc.sockaddr;
        pc->socklen = pre->pc.socklen;
        pc->connection = pre->pc.connection;

        pre->pc.connection = NULL;
        ngx_stream_wake_pre_open--;
        ctx->preconnect = &ngx_stream_wake_pre_hit;

        if (pre->greeted) {
            /* its greeting was read before the client was greeted */
            ctx->down = NGX_STREAM_WAKE_DOWN_AUTH;
            ngx_stream_wake_compute_id(ctx->session, ctx,
                                       pre->greeting.conn_id);

            if (ctx->pre_resp) {
                /* the client signed this compute's scramble: no switch */
                c->buffer = ctx->pre_resp;
            }
        }

        if (pc->connection->write->timer_set) {
            ngx_del_timer(pc->connection->write);
        }

        if (pc->connection->read->timer_set) {
            ngx_del_timer(pc->connection->read);
        }

        ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, 0,
                       "wake: preconnected to %V", pc->name);

        /* NGX_AGAIN: the proxy waits for the connect as for its own */
        return pre->connected ? NGX_DONE : NGX_AGAIN;
    }

    ngx_stream_wake_pre_drop(ctx);

    pc->sockaddr = ctx->pre_addr->sockaddr;
    pc->socklen = ctx->pre_addr->socklen;

    return NGX_OK;
}


static void
ngx_stream_wake_pre_free(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state)
{
    pc->tries = 0;
}


/* the session's end: a guess never handed over is closed */
void
ngx_stream_wake_preconnect_close(ngx_stream_wake_ctx_t *ctx)
{
    if (ctx->pre == NULL) {
        return;
    }

    /* nothing is resumed: the session is going away */
    ctx->pre->waiting = 0;

    if (ctx->pre->wait.timer_set) {
        ngx_del_timer(&ctx->pre->wait);
    }

    ngx_stream_wake_pre_drop(ctx);
}
