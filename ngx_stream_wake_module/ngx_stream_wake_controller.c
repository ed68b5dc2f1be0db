/*
 * The non-blocking call to the controller:
 *
 *     GET /wake_compute?endpointish=<project> HTTP/1.0
 *     Authorization: Bearer <token>
 *
 * made from the worker's event loop (model: ngx_mail_auth_http_module.c).
 *
 * One request per project and server configuration is in flight per worker:
 * sessions that need the same project while it runs join its waiter list and
 * all get the same answer.  A request owns its pool and its connection, so it
 * outlives any one session; when it finishes it fills the shared cache and
 * resumes every waiter.  Transport failures, timeouts and 5xx answers are
 * retried with exponential backoff; 4xx answers are final.
 */

#include "ngx_stream_wake.h"


#define NGX_STREAM_WAKE_RESPONSE_SIZE  4096
#define NGX_STREAM_WAKE_BACKOFF_MAX    5000
#define NGX_STREAM_WAKE_RETRY_MAX      60000   /* a 429's negative cache */


struct ngx_stream_wake_req_s {
    ngx_queue_t                     queue;      /* worker's in-flight list */
    ngx_queue_t                     waiters;    /* ngx_stream_wake_ctx_t */
    ngx_pool_t                     *pool;
    ngx_log_t                       log;
    ngx_stream_wake_srv_conf_t     *wscf;
    ngx_shm_zone_t                 *zone;
    ngx_str_t                       project;
    ngx_peer_connection_t           peer;
    ngx_buf_t                      *request;
    ngx_buf_t                      *response;
    ngx_event_t                     backoff;
    ngx_uint_t                      attempt;
    ngx_msec_t                      start;
    ngx_stream_wake_result_t        result;
};


static ngx_stream_wake_req_t *ngx_stream_wake_req_find(
    ngx_stream_wake_srv_conf_t *wscf, ngx_str_t *project);
static ngx_stream_wake_req_t *ngx_stream_wake_req_create(
    ngx_stream_session_t *s, ngx_str_t *project,
    ngx_stream_wake_srv_conf_t *wscf);
static ngx_buf_t *ngx_stream_wake_create_request(ngx_stream_wake_req_t *w);
static void ngx_stream_wake_connect(ngx_stream_wake_req_t *w);
static void ngx_stream_wake_write_handler(ngx_event_t *wev);
static void ngx_stream_wake_read_handler(ngx_event_t *rev);
static void ngx_stream_wake_dummy_handler(ngx_event_t *ev);
static void ngx_stream_wake_process(ngx_stream_wake_req_t *w,
    wh_response_t *r);
static void ngx_stream_wake_retry(ngx_stream_wake_req_t *w, const char *why);
static void ngx_stream_wake_backoff_handler(ngx_event_t *ev);
static void ngx_stream_wake_close_peer(ngx_stream_wake_req_t *w);
static void ngx_stream_wake_finish(ngx_stream_wake_req_t *w);
static ngx_int_t ngx_stream_wake_copy(ngx_pool_t *pool, ngx_str_t *dst,
    mp_str_t *src);
static u_char *ngx_stream_wake_log_error(ngx_log_t *log, u_char *buf,
    size_t len);


/* per worker process: requests in flight */
static ngx_queue_t  ngx_stream_wake_inflight;
static ngx_uint_t   ngx_stream_wake_inflight_init;


/*
 * Wake ctx->project for the session, or (ctx == NULL) just refresh the
 * cache for project in the background.
 */
ngx_int_t
ngx_stream_wake_request(ngx_stream_session_t *s, ngx_stream_wake_ctx_t *ctx,
    ngx_stream_wake_srv_conf_t *wscf, ngx_str_t *project)
{
    ngx_stream_wake_req_t  *w;

    if (!ngx_stream_wake_inflight_init) {
        ngx_queue_init(&ngx_stream_wake_inflight);
        ngx_stream_wake_inflight_init = 1;
    }

    w = ngx_stream_wake_req_find(wscf, project);

    if (w) {
        ngx_log_debug1(NGX_LOG_DEBUG_STREAM, s->connection->log, 0,
                       "wake: joining the wake of \"%V\"", project);

        if (ctx) {
            ctx->wake = w;
            ngx_queue_insert_tail(&w->waiters, &ctx->queue);
        }

        return NGX_OK;
    }

    w = ngx_stream_wake_req_create(s, project, wscf);
    if (w == NULL) {
        return NGX_ERROR;
    }

    /* the waiter goes in first: the call may fail synchronously */

    if (ctx) {
        ctx->wake = w;
        ngx_queue_insert_tail(&w->waiters, &ctx->queue);
    }

    ngx_queue_insert_tail(&ngx_stream_wake_inflight, &w->queue);

    ngx_stream_wake_connect(w);

    return NGX_OK;
}


/* a session going away stops waiting; the request itself carries on */
void
ngx_stream_wake_request_detach(ngx_stream_wake_ctx_t *ctx)
{
    if (ctx->wake) {
        ngx_queue_remove(&ctx->queue);
        ctx->wake = NULL;
    }
}


static ngx_stream_wake_req_t *
ngx_stream_wake_req_find(ngx_stream_wake_srv_conf_t *wscf, ngx_str_t *project)
{
    ngx_queue_t            *q;
    ngx_stream_wake_req_t  *w;

    for (q = ngx_queue_head(&ngx_stream_wake_inflight);
         q != ngx_queue_sentinel(&ngx_stream_wake_inflight);
         q = ngx_queue_next(q))
    {
        w = ngx_queue_data(q, ngx_stream_wake_req_t, queue);

        if (w->wscf == wscf
            && w->project.len == project->len
            && ngx_strncmp(w->project.data, project->data, project->len) == 0)
        {
            return w;
        }
    }

    return NULL;
}


static ngx_stream_wake_req_t *
ngx_stream_wake_req_create(ngx_stream_session_t *s, ngx_str_t *project,
    ngx_stream_wake_srv_conf_t *wscf)
{
    ngx_pool_t                   *pool;
    ngx_stream_wake_req_t        *w;
    ngx_stream_wake_main_conf_t  *wmcf;

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        return NULL;
    }

    w = ngx_pcalloc(pool, sizeof(ngx_stream_wake_req_t));
    if (w == NULL) {
        goto failed;
    }

    wmcf = ngx_stream_get_module_main_conf(s, ngx_stream_wake_module);

    w->pool = pool;
    w->wscf = wscf;
    w->zone = wmcf->shm_zone;
    w->start = ngx_current_msec;
    ngx_queue_init(&w->waiters);

    w->project.data = ngx_pstrdup(pool, project);
    if (w->project.data == NULL) {
        goto failed;
    }

    w->project.len = project->len;

    /* the request outlives the session that started it: log on its own */

    w->log = *wscf->error_log;
    w->log.connection = 0;
    w->log.handler = ngx_stream_wake_log_error;
    w->log.data = w;
    w->log.action = "waking compute";
    pool->log = &w->log;

    w->request = ngx_stream_wake_create_request(w);
    if (w->request == NULL) {
        goto failed;
    }

    w->response = ngx_create_temp_buf(pool, NGX_STREAM_WAKE_RESPONSE_SIZE);
    if (w->response == NULL) {
        goto failed;
    }

    w->backoff.handler = ngx_stream_wake_backoff_handler;
    w->backoff.data = w;
    w->backoff.log = &w->log;

    return w;

failed:

    ngx_destroy_pool(pool);
    return NULL;
}


static ngx_buf_t *
ngx_stream_wake_create_request(ngx_stream_wake_req_t *w)
{
    size_t                       len;
    ngx_buf_t                   *b;
    ngx_stream_wake_srv_conf_t  *wscf;

    static const char  get[] = "GET /wake_compute?endpointish=";
    static const char  ver[] = " HTTP/1.0" CRLF "Host: ";
    static const char  auth[] = CRLF "Authorization: Bearer ";
    static const char  tail[] = CRLF "User-Agent: ngx_stream_wake_module"
                                CRLF "Connection: close" CRLF CRLF;

    wscf = w->wscf;

    /* project ids are [a-z0-9-]: nothing to escape */

    len = sizeof(get) - 1 + w->project.len + sizeof(ver) - 1
          + wscf->controller_host.len + sizeof(tail) - 1;

    if (wscf->token.len) {
        len += sizeof(auth) - 1 + wscf->token.len;
    }

    b = ngx_create_temp_buf(w->pool, len);
    if (b == NULL) {
        return NULL;
    }

    b->last = ngx_cpymem(b->last, get, sizeof(get) - 1);
    b->last = ngx_cpymem(b->last, w->project.data, w->project.len);
    b->last = ngx_cpymem(b->last, ver, sizeof(ver) - 1);
    b->last = ngx_cpymem(b->last, wscf->controller_host.data,
                         wscf->controller_host.len);

    if (wscf->token.len) {
        b->last = ngx_cpymem(b->last, auth, sizeof(auth) - 1);
        b->last = ngx_cpymem(b->last, wscf->token.data, wscf->token.len);
    }

    b->last = ngx_cpymem(b->last, tail, sizeof(tail) - 1);

    return b;
}


static void
ngx_stream_wake_connect(ngx_stream_wake_req_t *w)
{
    ngx_int_t          rc;
    ngx_connection_t  *c;

    w->attempt++;
    w->request->pos = w->request->start;
    w->response->pos = w->response->start;
    w->response->last = w->response->start;

    ngx_memzero(&w->peer, sizeof(ngx_peer_connection_t));

    w->peer.sockaddr = w->wscf->controller->sockaddr;
    w->peer.socklen = w->wscf->controller->socklen;
    w->peer.name = &w->wscf->controller->name;
    w->peer.get = ngx_event_get_peer;
    w->peer.log = &w->log;
    w->peer.log_error = NGX_ERROR_ERR;

    rc = ngx_event_connect_peer(&w->peer);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        ngx_stream_wake_retry(w, "connect failed");
        return;
    }

    c = w->peer.connection;
    c->data = w;
    c->pool = w->pool;
    c->log = &w->log;
    c->read->log = &w->log;
    c->write->log = &w->log;

    c->read->handler = ngx_stream_wake_read_handler;
    c->write->handler = ngx_stream_wake_write_handler;

    ngx_add_timer(c->read, w->wscf->timeout);
    ngx_add_timer(c->write, w->wscf->timeout);

    if (rc == NGX_OK) {
        ngx_stream_wake_write_handler(c->write);
    }
}


static void
ngx_stream_wake_write_handler(ngx_event_t *wev)
{
    ssize_t                 n, size;
    ngx_connection_t       *c;
    ngx_stream_wake_req_t  *w;

    c = wev->data;
    w = c->data;

    if (wev->timedout) {
        ngx_stream_wake_retry(w, "controller timed out");
        return;
    }

    size = w->request->last - w->request->pos;

    n = ngx_send(c, w->request->pos, size);

    if (n == NGX_ERROR) {
        ngx_stream_wake_retry(w, "send failed");
        return;
    }

    if (n > 0) {
        w->request->pos += n;

        if (n == size) {
            wev->handler = ngx_stream_wake_dummy_handler;

            if (wev->timer_set) {
                ngx_del_timer(wev);
            }

            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                ngx_stream_wake_retry(w, "write event failed");
            }

            return;
        }
    }

    if (ngx_handle_write_event(wev, 0) != NGX_OK) {
        ngx_stream_wake_retry(w, "write event failed");
    }
}


static void
ngx_stream_wake_read_handler(ngx_event_t *rev)
{
    int                     rc;
    ssize_t                 n;
    ngx_buf_t              *b;
    ngx_connection_t       *c;
    wh_response_t           r;
    ngx_stream_wake_req_t  *w;

    c = rev->data;
    w = c->data;
    b = w->response;

    if (rev->timedout) {
        ngx_stream_wake_retry(w, "controller timed out");
        return;
    }

    for ( ;; ) {

        if (b->last == b->end) {
            ngx_stream_wake_retry(w, "controller response too long");
            return;
        }

        n = ngx_recv(c, b->last, b->end - b->last);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                ngx_stream_wake_retry(w, "read event failed");
            }

            return;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_stream_wake_retry(w, "controller closed connection "
                                     "prematurely");
            return;
        }

        b->last += n;

        rc = wh_parse_response(b->pos, b->last - b->pos, &r);

        if (rc == MP_OK) {
            ngx_stream_wake_process(w, &r);
            return;
        }

        if (rc == MP_ERROR) {
            ngx_stream_wake_retry(w, "invalid controller response");
            return;
        }
    }
}


static void
ngx_stream_wake_dummy_handler(ngx_event_t *ev)
{
    ngx_log_debug0(NGX_LOG_DEBUG_STREAM, ev->log, 0, "wake dummy handler");
}


static void
ngx_stream_wake_process(ngx_stream_wake_req_t *w, wh_response_t *r)
{
    ngx_stream_wake_result_t  *res;

    res = &w->result;

    ngx_log_debug3(NGX_LOG_DEBUG_STREAM, &w->log, 0,
                   "wake: controller status %d, address \"%*s\"",
                   r->status, r->address.len, r->address.data);

    if (r->status >= 500 || (r->status == 200 && r->address.len == 0)) {
        res->status = r->status;
        ngx_stream_wake_retry(w, r->status == 200 ? "no X-Wake-Address"
                                                  : "controller error");
        return;
    }

    ngx_memzero(res, sizeof(ngx_stream_wake_result_t));
    res->status = r->status;
    res->max_sessions = r->max_sessions;

    /* a value it cannot read: the compute may be frozen at any time */
    res->freeze_after = r->freeze_after_bad ? 1 : r->freeze_after_ms;

    if (r->freeze_after_bad) {
        ngx_log_error(NGX_LOG_WARN, &w->log, 0,
                      "invalid X-Wake-Freeze-After from the controller");
    }

    if (ngx_stream_wake_copy(w->pool, &res->address, &r->address) != NGX_OK
        || ngx_stream_wake_copy(w->pool, &res->compute, &r->compute) != NGX_OK
        || ngx_stream_wake_copy(w->pool, &res->cold_start, &r->cold_start)
           != NGX_OK
        || ngx_stream_wake_copy(w->pool, &res->error, &r->error) != NGX_OK)
    {
        res->status = 0;
    }

    switch (res->status) {

    case 200:
        ngx_stream_wake_cache_put(w->zone, &w->project, res,
                                  w->wscf->cache_ttl);
        break;

    case 404:
        ngx_stream_wake_cache_put(w->zone, &w->project, res,
                                  w->wscf->negative_ttl);
        break;

    case 429:
        /* waking too often: no controller call until the retry time */
        res->retry_ms = (r->retry_ms > 0)
                        ? (ngx_msec_t) ngx_min(r->retry_ms,
                                               NGX_STREAM_WAKE_RETRY_MAX)
                        : 1000;
        ngx_stream_wake_cache_put(w->zone, &w->project, res, res->retry_ms);
        ngx_log_error(NGX_LOG_WARN, &w->log, 0,
                      "controller: project is waking too often, retry in "
                      "%Mms", res->retry_ms);
        break;

    case 401:
    case 403:
        ngx_log_error(NGX_LOG_ALERT, &w->log, 0,
                      "controller refused the wake token (status %i)",
                      res->status);
        break;

    default:
        ngx_log_error(NGX_LOG_ERR, &w->log, 0,
                      "controller answered %i \"%V\"",
                      res->status, &res->error);
        break;
    }

    ngx_stream_wake_finish(w);
}


static void
ngx_stream_wake_retry(ngx_stream_wake_req_t *w, const char *why)
{
    ngx_msec_t  delay;

    ngx_stream_wake_close_peer(w);

    if (w->attempt > w->wscf->retries) {
        ngx_log_error(NGX_LOG_ERR, &w->log, 0,
                      "wake failed after %ui attempt%s: %s",
                      w->attempt, w->attempt == 1 ? "" : "s", why);

        if (w->result.status < 500) {
            w->result.status = 0;
        }

        ngx_stream_wake_finish(w);
        return;
    }

    delay = w->wscf->backoff << (w->attempt - 1 < 16 ? w->attempt - 1 : 16);

    if (delay > NGX_STREAM_WAKE_BACKOFF_MAX) {
        delay = NGX_STREAM_WAKE_BACKOFF_MAX;
    }

    ngx_log_error(NGX_LOG_WARN, &w->log, 0,
                  "wake attempt %ui failed: %s, retrying in %Mms",
                  w->attempt, why, delay);

    ngx_add_timer(&w->backoff, delay);
}


static void
ngx_stream_wake_backoff_handler(ngx_event_t *ev)
{
    ngx_stream_wake_connect(ev->data);
}


static void
ngx_stream_wake_close_peer(ngx_stream_wake_req_t *w)
{
    if (w->peer.connection) {
        ngx_close_connection(w->peer.connection);
        w->peer.connection = NULL;
    }
}


/* resume every waiter with the same answer, then go away */
static void
ngx_stream_wake_finish(ngx_stream_wake_req_t *w)
{
    ngx_queue_t            *q;
    ngx_stream_wake_ctx_t  *ctx;

    ngx_stream_wake_close_peer(w);

    if (w->backoff.timer_set) {
        ngx_del_timer(&w->backoff);
    }

    ngx_queue_remove(&w->queue);

    while (!ngx_queue_empty(&w->waiters)) {
        q = ngx_queue_head(&w->waiters);
        ngx_queue_remove(q);

        ctx = ngx_queue_data(q, ngx_stream_wake_ctx_t, queue);
        ctx->wake = NULL;

        ngx_stream_wake_resume(ctx, &w->result);
    }

    ngx_destroy_pool(w->pool);
}


static ngx_int_t
ngx_stream_wake_copy(ngx_pool_t *pool, ngx_str_t *dst, mp_str_t *src)
{
    if (src->len == 0) {
        ngx_str_null(dst);
        return NGX_OK;
    }

    dst->data = ngx_pnalloc(pool, src->len);
    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dst->data, src->data, src->len);
    dst->len = src->len;

    return NGX_OK;
}


static u_char *
ngx_stream_wake_log_error(ngx_log_t *log, u_char *buf, size_t len)
{
    u_char                 *p;
    ngx_stream_wake_req_t  *w;

    w = log->data;
    p = buf;

    if (log->action) {
        p = ngx_snprintf(p, len, " while %s", log->action);
        len -= p - buf;
        buf = p;
    }

    return ngx_snprintf(p, len, ", project: \"%V\", controller: %V",
                        &w->project, &w->wscf->controller->name);
}
