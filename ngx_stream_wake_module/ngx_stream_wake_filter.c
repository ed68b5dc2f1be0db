/*
 * The stream filter of ngx_stream_wake_module (model: ngx_stream_js_body_filter).
 *
 * With TLS on the client leg the client's sequence ids run one ahead of the
 * compute's during the auth phase (its SSLRequest took seq 1); both
 * directions are renumbered until OK or ERR.
 *
 * compute -> client, until the auth phase ends:
 *   - the compute's greeting is dropped (the client already has the proxy's);
 *     its connection id is the real thread id, recorded for KILL rewriting
 *     (with wake_preconnect the greeting may have been read already, before
 *     the client was greeted: then this direction starts at DOWN_AUTH);
 *   - AuthSwitchRequest / more-data packets are relayed until OK or ERR.
 * client -> compute:
 *   - the handshake and the auth answers pass untouched;
 *   - the first command after OK is held until it is known whether it is
 *     "KILL [QUERY|CONNECTION] <handed-out id>", which is then rewritten to
 *     the compute's real thread id (only within the same project).
 * After that both directions are passed through without a copy, except
 * when a session has been quiet so long that its compute may have been
 * frozen with it open (see "idle sessions" below).
 *
 * Consumed input buffers are marked (pos = last) and never relinked; output
 * goes into the filter's own buffers and links.  An empty chain is never
 * passed on, except to flush what the next filter still holds.
 */

#include "ngx_stream_wake.h"


#define NGX_STREAM_WAKE_HOLD_MAX  (64 * 1024)
#define NGX_STREAM_WAKE_THAW_MAX  (1024 * 1024)

/*
 * Set on the upstream connection while client bytes are held for a wake:
 * ngx_stream_proxy then keeps the session (it would close it on the
 * client's EOF) and calls the filter on the upstream write event, which is
 * posted when the wake answers.  Outside NGX_LOWLEVEL_BUFFERED and
 * NGX_STREAM_WRITE_BUFFERED.
 */
#define NGX_STREAM_WAKE_BUFFERED  0x20


static ngx_int_t ngx_stream_wake_filter(ngx_stream_session_t *s,
    ngx_chain_t *in, ngx_uint_t from_upstream);
static ngx_int_t ngx_stream_wake_filter_down(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx, ngx_chain_t *in);
static ngx_int_t ngx_stream_wake_filter_up(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx, ngx_chain_t *in);
static void ngx_stream_wake_renumber_up(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx, ngx_chain_t *in);
static ngx_int_t ngx_stream_wake_hold(ngx_stream_session_t *s,
    ngx_chain_t *in, u_char **buf, size_t *len, size_t *size,
    ngx_uint_t *last, size_t max);
static ngx_uint_t ngx_stream_wake_may_be_frozen(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx, ngx_chain_t *in);
static void ngx_stream_wake_thaw_start(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx);
static ngx_int_t ngx_stream_wake_filter_thaw(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx, ngx_chain_t *in);
static ngx_int_t ngx_stream_wake_emit(ngx_stream_session_t *s,
    ngx_chain_t ***ll, u_char *data, size_t len);
static ngx_int_t ngx_stream_wake_output(ngx_stream_session_t *s,
    ngx_chain_t *out, ngx_chain_t **ll, ngx_uint_t last,
    ngx_uint_t from_upstream);
static void ngx_stream_wake_compute_greeting(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx, u_char *p, size_t len);
static ngx_int_t ngx_stream_wake_first_command(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx, ngx_chain_t ***ll, ngx_uint_t last);


static ngx_stream_filter_pt  ngx_stream_next_filter;


ngx_int_t
ngx_stream_wake_filter_init(ngx_conf_t *cf)
{
    ngx_stream_next_filter = ngx_stream_top_filter;
    ngx_stream_top_filter = ngx_stream_wake_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_stream_wake_filter(ngx_stream_session_t *s, ngx_chain_t *in,
    ngx_uint_t from_upstream)
{
    ngx_stream_wake_ctx_t       *ctx;
    ngx_stream_wake_srv_conf_t  *wscf;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_wake_module);

    if (ctx == NULL || ctx->state != NGX_STREAM_WAKE_READY) {
        return ngx_stream_next_filter(s, in, from_upstream);
    }

    if (from_upstream) {
        if (in) {
            ctx->last_io = ngx_current_msec;
        }

        if (ctx->down == NGX_STREAM_WAKE_DOWN_PASS) {
            return ngx_stream_next_filter(s, in, from_upstream);
        }

        return ngx_stream_wake_filter_down(s, ctx, in);
    }

    if (ctx->up == NGX_STREAM_WAKE_UP_AUTH
        && ctx->down == NGX_STREAM_WAKE_DOWN_GREETING
        && !ctx->greeting_timer.timer_set
        && !ctx->greeting_late)
    {
        /*
         * The first bytes for the compute: the proxy has just connected.
         * A compute that does not greet (frozen behind a stale cache entry,
         * hung) would keep the client waiting until proxy_timeout.
         */

        wscf = ngx_stream_get_module_srv_conf(s, ngx_stream_wake_module);
        ngx_add_timer(&ctx->greeting_timer, wscf->greeting_timeout);
    }

    if (ctx->thawing || ctx->thawed || ctx->thaw_failed) {
        return ngx_stream_wake_filter_thaw(s, ctx, in);
    }

    if (ngx_stream_wake_may_be_frozen(s, ctx, in)) {
        ngx_stream_wake_thaw_start(s, ctx);
        return ngx_stream_wake_filter_thaw(s, ctx, in);
    }

    if (in) {
        ctx->last_io = ngx_current_msec;
    }

    if (ctx->up == NGX_STREAM_WAKE_UP_AUTH && ctx->seq_delta) {
        ngx_stream_wake_renumber_up(s, ctx, in);
    }

    if (ctx->up != NGX_STREAM_WAKE_UP_FIRST) {
        return ngx_stream_next_filter(s, in, from_upstream);
    }

    return ngx_stream_wake_filter_up(s, ctx, in);
}


/*
 * TLS on the client leg only: the client numbers its auth answers one
 * higher than the compute expects.  The PROXY protocol header and the
 * rewritten HandshakeResponse (c->buffer, already numbered for the compute)
 * go first and are left alone; the bytes are rewritten in place, so the
 * chain is passed on as it is.
 */
static void
ngx_stream_wake_renumber_up(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx, ngx_chain_t *in)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        if (!ctx->up_started) {
            if (s->connection->buffer
                && b->start == s->connection->buffer->start)
            {
                ctx->up_started = 1;
            }

            continue;
        }

        if (b->last > b->pos) {
            mp_renumber(&ctx->renumber, b->pos, b->last - b->pos,
                        - (int) ctx->seq_delta);
        }
    }
}


static ngx_int_t
ngx_stream_wake_filter_down(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx, ngx_chain_t *in)
{
    u_char        *p, *end;
    size_t         plen;
    ngx_uint_t     last;
    ngx_chain_t   *out, **ll;

    if (ngx_stream_wake_hold(s, in, &ctx->dbuf, &ctx->dlen, &ctx->dsize,
                             &last, NGX_STREAM_WAKE_HOLD_MAX)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    out = NULL;
    ll = &out;

    p = ctx->dbuf;
    end = p + ctx->dlen;

    while (ctx->down != NGX_STREAM_WAKE_DOWN_PASS
           && mp_packet_complete(p, end - p, &plen) == MP_OK)
    {
        if (plen == MP_HEADER_LEN) {
            /* an empty packet is no greeting and no auth answer */
            ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                          "wake: empty packet from compute");
            return NGX_ERROR;
        }

        if (ctx->down == NGX_STREAM_WAKE_DOWN_GREETING
            && ctx->greeting_timer.timer_set)
        {
            ngx_del_timer(&ctx->greeting_timer);
        }

        if (ctx->down == NGX_STREAM_WAKE_DOWN_GREETING
            && p[MP_HEADER_LEN] != 0xff)
        {
            ngx_stream_wake_compute_greeting(s, ctx, p, plen);
            ctx->down = NGX_STREAM_WAKE_DOWN_AUTH;
            p += plen;
            continue;
        }

        /*
         * An ERR instead of a greeting (too many connections, host blocked)
         * is for the client, numbered as the answer to its response.
         */

        if (ctx->down == NGX_STREAM_WAKE_DOWN_GREETING) {
            p[3] = ctx->client_seq;

        } else {
            p[3] = (u_char) (p[3] + ctx->seq_delta);
        }

        if (ngx_stream_wake_emit(s, &ll, p, plen) != NGX_OK) {
            return NGX_ERROR;
        }

        if (p[MP_HEADER_LEN] == 0xff && ctx->down == NGX_STREAM_WAKE_DOWN_AUTH) {
            /* failed authentication: charged to the client's address */
            ngx_stream_wake_client_failed(s);
        }

        switch (p[MP_HEADER_LEN]) {

        case 0x00:      /* OK: authenticated, the command phase starts */
            ctx->down = NGX_STREAM_WAKE_DOWN_PASS;
            ctx->up = NGX_STREAM_WAKE_UP_FIRST;
            break;

        case 0xff:      /* ERR: the compute closes the session */
            ctx->down = NGX_STREAM_WAKE_DOWN_PASS;
            ctx->up = NGX_STREAM_WAKE_UP_PASS;
            break;

        default:        /* AuthSwitchRequest or more auth data */
            ctx->down = NGX_STREAM_WAKE_DOWN_AUTH;
            break;
        }

        p += plen;
    }

    if (ctx->down == NGX_STREAM_WAKE_DOWN_PASS && p < end) {
        if (ngx_stream_wake_emit(s, &ll, p, end - p) != NGX_OK) {
            return NGX_ERROR;
        }

        p = end;
    }

    ctx->dlen = end - p;

    if (ctx->dlen) {
        ngx_memmove(ctx->dbuf, p, ctx->dlen);
    }

    if (out) {
        ctx->relayed = 1;
    }

    return ngx_stream_wake_output(s, out, ll, last, 1);
}


static void
ngx_stream_wake_compute_greeting(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx, u_char *p, size_t len)
{
    mp_greeting_t  g;

    if (mp_parse_greeting(p, len, &g) != MP_OK) {
        ngx_log_error(NGX_LOG_WARN, s->connection->log, 0,
                      "wake: unexpected greeting from compute");
        return;
    }

    ngx_stream_wake_compute_id(s, ctx, g.conn_id);
}


/*
 * The compute's thread id, from its greeting: read here, or by
 * wake_preconnect before the client was greeted (ngx_stream_wake_pre_get
 * then starts this direction at DOWN_AUTH: the greeting is not in the
 * stream any more).
 */
void
ngx_stream_wake_compute_id(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx, uint32_t real_id)
{
    ngx_stream_wake_main_conf_t  *wmcf;

    ctx->real_id = real_id;

    ngx_log_debug2(NGX_LOG_DEBUG_STREAM, s->connection->log, 0,
                   "wake: connection id %uD is thread %uD on the compute",
                   ctx->conn_id, ctx->real_id);

    wmcf = ngx_stream_get_module_main_conf(s, ngx_stream_wake_module);

    /* a full zone is logged there, once; the session goes on unmapped */
    if (ngx_stream_wake_ids_add(wmcf->shm_zone, ctx->conn_id, ctx->real_id,
                                ctx->client_key, &ctx->project,
                                s->connection->log)
        == NGX_OK)
    {
        ctx->mapped = 1;
    }
}


static ngx_int_t
ngx_stream_wake_filter_up(ngx_stream_session_t *s, ngx_stream_wake_ctx_t *ctx,
    ngx_chain_t *in)
{
    ngx_uint_t    last;
    ngx_chain_t  *out, **ll;

    if (ngx_stream_wake_hold(s, in, &ctx->ubuf, &ctx->ulen, &ctx->usize,
                             &last, NGX_STREAM_WAKE_HOLD_MAX)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    out = NULL;
    ll = &out;

    if (ngx_stream_wake_first_command(s, ctx, &ll, last) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_stream_wake_output(s, out, ll, last, 0);
}


static ngx_int_t
ngx_stream_wake_first_command(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx, ngx_chain_t ***ll, ngx_uint_t last)
{
    int                           rc;
    size_t                        n;
    u_char                       *p;
    uint32_t                      real_id;
    uint64_t                      id;
    mp_first_cmd_t                fc;
    ngx_stream_wake_main_conf_t  *wmcf;

    rc = mp_inspect_first_command(ctx->ubuf, ctx->ulen, ctx->compress, &fc);

    if (rc == MP_CMD_MORE && !last) {
        return NGX_OK;              /* hold the bytes until it is complete */
    }

    ctx->up = NGX_STREAM_WAKE_UP_PASS;

    if (rc == MP_CMD_KILL) {
        id = fc.kill.id;
        wmcf = ngx_stream_get_module_main_conf(s, ngx_stream_wake_module);

        if (id >= MP_PROXY_ID_BASE && id <= 0xffffffff
            && ngx_stream_wake_ids_get(wmcf->shm_zone, (uint32_t) id,
                                       &ctx->project, &real_id)
               == NGX_OK)
        {
            p = ngx_pnalloc(s->connection->pool, fc.len + NGX_INT64_LEN);
            if (p == NULL) {
                return NGX_ERROR;
            }

            n = mp_rewrite_first_command(p, fc.len + NGX_INT64_LEN, ctx->ubuf,
                                         &fc, ctx->compress, real_id);

            ngx_log_error(NGX_LOG_INFO, s->connection->log, 0,
                          "wake: KILL %s%uL rewritten to thread %uD",
                          fc.kill.query ? "QUERY " : "", id, real_id);

            if (n == 0 || ngx_stream_wake_emit(s, ll, p, n) != NGX_OK) {
                return NGX_ERROR;
            }

            ctx->ulen -= fc.len;
            ngx_memmove(ctx->ubuf, ctx->ubuf + fc.len, ctx->ulen);
        }
    }

    if (ctx->ulen) {
        if (ngx_stream_wake_emit(s, ll, ctx->ubuf, ctx->ulen) != NGX_OK) {
            return NGX_ERROR;
        }

        ctx->ulen = 0;
    }

    return NGX_OK;
}


/* copy the chain's bytes into our own buffer and mark them consumed */
static ngx_int_t
ngx_stream_wake_hold(ngx_stream_session_t *s, ngx_chain_t *in, u_char **buf,
    size_t *len, size_t *size, ngx_uint_t *last, size_t max)
{
    u_char       *nb;
    size_t        n, want;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    *last = 0;

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        if (b->last_buf) {
            *last = 1;
        }

        n = b->last - b->pos;

        if (n == 0) {
            continue;
        }

        if (*len + n > *size) {
            want = ngx_max(*size * 2, 1024);

            while (want < *len + n) {
                want *= 2;
            }

            if (want > max) {
                ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                              "wake: more than %uz bytes to hold", max);
                return NGX_ERROR;
            }

            nb = ngx_pnalloc(s->connection->pool, want);
            if (nb == NULL) {
                return NGX_ERROR;
            }

            if (*len) {
                ngx_memcpy(nb, *buf, *len);
            }

            *buf = nb;
            *size = want;
        }

        ngx_memcpy(*buf + *len, b->pos, n);
        *len += n;
        b->pos = b->last;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_stream_wake_emit(ngx_stream_session_t *s, ngx_chain_t ***ll, u_char *data,
    size_t len)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    b = ngx_create_temp_buf(s->connection->pool, len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_cpymem(b->last, data, len);
    b->flush = 1;
    b->tag = (ngx_buf_tag_t) &ngx_stream_wake_module;

    cl = ngx_alloc_chain_link(s->connection->pool);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->buf = b;
    cl->next = NULL;

    **ll = cl;
    *ll = &cl->next;

    return NGX_OK;
}


static ngx_int_t
ngx_stream_wake_output(ngx_stream_session_t *s, ngx_chain_t *out,
    ngx_chain_t **ll, ngx_uint_t last, ngx_uint_t from_upstream)
{
    ngx_buf_t         *b;
    ngx_chain_t       *cl;
    ngx_connection_t  *dst;

    if (last) {
        /* end of stream: pass it on after whatever we produced */

        b = ngx_calloc_buf(s->connection->pool);
        if (b == NULL) {
            return NGX_ERROR;
        }

        b->last_buf = 1;
        b->tag = (ngx_buf_tag_t) &ngx_stream_wake_module;

        cl = ngx_alloc_chain_link(s->connection->pool);
        if (cl == NULL) {
            return NGX_ERROR;
        }

        cl->buf = b;
        cl->next = NULL;
        *ll = cl;

        if (out == NULL) {
            out = cl;
        }
    }

    dst = from_upstream ? s->connection
                        : (s->upstream ? s->upstream->peer.connection : NULL);

    /* a flush only for what the next filters hold, not for our own flag */

    if (out == NULL
        && (dst == NULL || !(dst->buffered & ~NGX_STREAM_WAKE_BUFFERED)))
    {
        return NGX_OK;
    }

    return ngx_stream_next_filter(s, out, from_upstream);
}


/*
 * Idle sessions and frozen computes (docs/module.md).
 *
 * The controller freezes a compute with sessions open only once every one
 * of them has been quiet for the project's freeze time (ctx->freeze_after,
 * from X-Wake-Freeze-After), and only after waiting out the wake cache's
 * TTL in `suspending`.  So a session whose last byte, either way, is younger
 * than the freeze time, or whose project has a live cache entry, cannot be
 * on a frozen compute: its bytes pass at no cost.  Otherwise the client's
 * bytes are held and the project woken (the coalesced wake: fifty sessions
 * make one call per worker, and the controller thaws once); when the answer
 * comes the upstream write event is posted and the held bytes go on, to a
 * compute that runs again, on the same connection.
 */
static ngx_uint_t
ngx_stream_wake_may_be_frozen(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx, ngx_chain_t *in)
{
    size_t                        n;
    ngx_chain_t                  *cl;
    ngx_stream_wake_main_conf_t  *wmcf;

    static u_char  quit[] = { 0x01, 0x00, 0x00, 0x00, 0x01 };

    if (ctx->freeze_after == 0
        || ctx->up == NGX_STREAM_WAKE_UP_AUTH
        || ngx_current_msec - ctx->last_io < ctx->freeze_after
        || s->upstream == NULL
        || s->upstream->peer.connection == NULL)
    {
        return 0;
    }

    n = 0;

    for (cl = in; cl; cl = cl->next) {
        n += cl->buf->last - cl->buf->pos;
    }

    if (n == 0) {
        return 0;           /* an EOF alone: the compute reaps it on thaw */
    }

    /*
     * A COM_QUIT needs no answer: it waits in the socket for the thawed
     * server, which then ends the session cleanly.
     */

    if (!ctx->compress && n == sizeof(quit)
        && (size_t) (in->buf->last - in->buf->pos) == sizeof(quit)
        && ngx_memcmp(in->buf->pos, quit, sizeof(quit)) == 0)
    {
        return 0;
    }

    wmcf = ngx_stream_get_module_main_conf(s, ngx_stream_wake_module);

    if (ngx_stream_wake_cache_fresh(wmcf->shm_zone, &ctx->project)) {
        return 0;
    }

    return 1;
}


static void
ngx_stream_wake_thaw_start(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx)
{
    ngx_stream_wake_srv_conf_t  *wscf;

    ngx_log_error(NGX_LOG_INFO, s->connection->log, 0,
                  "wake: session quiet for %M ms, its compute may be frozen: "
                  "waking project \"%V\"", ngx_current_msec - ctx->last_io,
                  &ctx->project);

    wscf = ngx_stream_get_module_srv_conf(s, ngx_stream_wake_module);

    ctx->thawing = 1;
    ctx->wake_start = ngx_current_msec;
    s->upstream->peer.connection->buffered |= NGX_STREAM_WAKE_BUFFERED;

    /* its answer comes through ngx_stream_wake_resume(), maybe at once */

    if (ngx_stream_wake_request(s, ctx, wscf, &ctx->project) != NGX_OK) {
        ctx->thawing = 0;
        ctx->thaw_failed = 1;
    }
}


/* the wake this session's held bytes wait for answered */
void
ngx_stream_wake_thawed(ngx_stream_wake_ctx_t *ctx,
    ngx_stream_wake_result_t *res)
{
    ngx_connection_t      *pc;
    ngx_stream_session_t  *s;

    s = ctx->session;

    ctx->thawing = 0;

    if (res->status == 200) {
        ctx->thawed = 1;
        ctx->freeze_after = res->freeze_after;

        if (res->address.len != ctx->upstream.len
            || ngx_strncmp(res->address.data, ctx->upstream.data,
                           ctx->upstream.len) != 0)
        {
            /* restarted elsewhere: this connection's server is gone */
            ngx_log_error(NGX_LOG_WARN, s->connection->log, 0,
                          "wake: compute of project \"%V\" moved from %V "
                          "to %V", &ctx->project, &ctx->upstream,
                          &res->address);
        }

        ngx_log_debug3(NGX_LOG_DEBUG_STREAM, s->connection->log, 0,
                       "wake: project \"%V\" awake (%V) after %M ms, "
                       "passing held bytes", &ctx->project, &res->cold_start,
                       ngx_current_msec - ctx->wake_start);

    } else {
        ctx->thaw_failed = 1;
    }

    pc = s->upstream ? s->upstream->peer.connection : NULL;

    if (pc) {
        ngx_post_event(pc->write, &ngx_posted_events);
    }
}


static ngx_int_t
ngx_stream_wake_filter_thaw(ngx_stream_session_t *s,
    ngx_stream_wake_ctx_t *ctx, ngx_chain_t *in)
{
    size_t             n;
    u_char             buf[256];
    ngx_uint_t         last;
    ngx_chain_t       *out, **ll;
    ngx_connection_t  *c, *pc;

    static u_char  msg[] = "Compute not available after its idle freeze, "
                           "try again later";

    c = s->connection;
    pc = s->upstream->peer.connection;

    if (ngx_stream_wake_hold(s, in, &ctx->ubuf, &ctx->ulen, &ctx->usize,
                             &last, NGX_STREAM_WAKE_THAW_MAX)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (last) {
        ctx->held_last = 1;
    }

    out = NULL;
    ll = &out;

    if (ctx->thawing) {
        return ngx_stream_wake_output(s, NULL, ll, 0, 0);
    }

    pc->buffered &= ~NGX_STREAM_WAKE_BUFFERED;

    if (ctx->thaw_failed) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "wake: project \"%V\" not woken for a quiet session, "
                      "closing it", &ctx->project);

        /* the answer to the held command; best effort, the socket is idle */

        if (!ctx->compress && ctx->ulen > MP_HEADER_LEN && !c->read->eof) {
            n = mp_build_err(buf, sizeof(buf), (uint8_t) (ctx->ubuf[3] + 1),
                             1105, "HY000", (char *) msg, sizeof(msg) - 1);

            if (n) {
                (void) c->send(c, buf, n);
            }
        }

        return NGX_ERROR;
    }

    ctx->thawed = 0;
    ctx->last_io = ngx_current_msec;

    if (ctx->up == NGX_STREAM_WAKE_UP_FIRST) {
        if (ngx_stream_wake_first_command(s, ctx, &ll, ctx->held_last)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else if (ctx->ulen) {
        if (ngx_stream_wake_emit(s, &ll, ctx->ubuf, ctx->ulen) != NGX_OK) {
            return NGX_ERROR;
        }

        ctx->ulen = 0;
    }

    return ngx_stream_wake_output(s, out, ll, ctx->held_last, 0);
}


/*
 * The compute accepted the TCP connection but did not greet.  A frozen
 * compute behind a stale cache entry does exactly that (the kernel accepts
 * for it): the first time, wake the project again (the controller thaws it,
 * and the thawed server greets the waiting connection) and keep waiting.
 * The second time, shut the socket down: the proxy module sees an upstream
 * EOF and finalizes the session the usual way, and the LOG phase handler
 * tells the client.
 */
void
ngx_stream_wake_greeting_timeout(ngx_event_t *ev)
{
    ngx_connection_t             *pc;
    ngx_stream_session_t         *s;
    ngx_stream_wake_ctx_t        *ctx;
    ngx_stream_wake_srv_conf_t   *wscf;
    ngx_stream_wake_main_conf_t  *wmcf;

    ctx = ev->data;
    s = ctx->session;

    if (ctx->down != NGX_STREAM_WAKE_DOWN_GREETING || s->upstream == NULL) {
        return;
    }

    pc = s->upstream->peer.connection;

    if (pc == NULL) {
        return;
    }

    wscf = ngx_stream_get_module_srv_conf(s, ngx_stream_wake_module);

    if (!ctx->rewoken) {
        ctx->rewoken = 1;

        ngx_log_error(NGX_LOG_WARN, s->connection->log, 0,
                      "wake: compute %V of project \"%V\" did not greet, "
                      "waking it again", &ctx->upstream, &ctx->project);

        wmcf = ngx_stream_get_module_main_conf(s, ngx_stream_wake_module);
        ngx_stream_wake_cache_invalidate(wmcf->shm_zone, &ctx->project,
                                         &ctx->upstream);

        if (ngx_stream_wake_request(s, NULL, wscf, &ctx->project) == NGX_OK) {
            ngx_add_timer(&ctx->greeting_timer,
                          ngx_max(wscf->timeout, wscf->greeting_timeout));
            return;
        }
    }

    ngx_log_error(NGX_LOG_ERR, s->connection->log, NGX_ETIMEDOUT,
                  "wake: compute %V of project \"%V\" did not greet",
                  &ctx->upstream, &ctx->project);

    ctx->greeting_late = 1;

    (void) ngx_shutdown_socket(pc->fd, SHUT_RDWR);

    /* as if epoll had reported the EOF, in case its event comes late */
    pc->read->ready = 1;
    pc->read->pending_eof = 1;
    ngx_post_event(pc->read, &ngx_posted_events);
}
