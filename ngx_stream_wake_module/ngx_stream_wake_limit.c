/*
 * Session limits of ngx_stream_wake_module (docs/limits.md), and the limit
 * zone they share with the client buckets (ngx_stream_wake_client.c): one
 * slab zone for every worker, apart from the wake cache so that a flood of
 * addresses never evicts cached computes, and the other way round.
 *
 * Live sessions per project are admitted after the wake answer and released
 * by the session's pool cleanup, which runs on every way out: client RST,
 * upstream failure, ERR.  At the limit a session waits in state QUEUED: its
 * preread handler returns NGX_DONE, a timer looks at the count every
 * NGX_STREAM_WAKE_QUEUE_TICK ms; nothing blocks.  The client sends nothing
 * meanwhile (it waits for the auth exchange), so the compute never sees it
 * until it is admitted.
 */

#include "ngx_stream_wake.h"


#define NGX_STREAM_WAKE_ER_CON_COUNT   1040, "08004"

/* 32-bit counts keep the node in the slab's 128-byte chunks */

typedef struct {
    ngx_str_node_t              sn;         /* crc32, project[] below */
    uint32_t                    sessions;
    uint32_t                    waiters;
    u_char                      project[MP_PROJECT_MAX];
} ngx_stream_wake_project_node_t;


static void ngx_stream_wake_queue_handler(ngx_event_t *ev);


static ngx_int_t ngx_stream_wake_limit_init(ngx_shm_zone_t *shm_zone,
    void *data);


ngx_shm_zone_t *
ngx_stream_wake_limit_zone_add(ngx_conf_t *cf, ngx_str_t *name, size_t size)
{
    ngx_shm_zone_t                *shm_zone;
    ngx_stream_wake_limit_zone_t  *zone;

    shm_zone = ngx_shared_memory_add(cf, name, size, &ngx_stream_wake_module);
    if (shm_zone == NULL) {
        return NULL;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate wake limit zone \"%V\"", name);
        return NULL;
    }

    zone = ngx_pcalloc(cf->pool, sizeof(ngx_stream_wake_limit_zone_t));
    if (zone == NULL) {
        return NULL;
    }

    shm_zone->init = ngx_stream_wake_limit_init;
    shm_zone->data = zone;

    return shm_zone;
}


static ngx_int_t
ngx_stream_wake_limit_init(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_stream_wake_limit_zone_t  *ozone = data;

    size_t                         len;
    ngx_stream_wake_limit_zone_t  *zone;

    zone = shm_zone->data;

    if (ozone) {
        /* reload: old workers' sessions still hold their slots here */
        zone->sh = ozone->sh;
        zone->shpool = ozone->shpool;
        return NGX_OK;
    }

    zone->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        zone->sh = zone->shpool->data;
        return NGX_OK;
    }

    zone->sh = ngx_slab_alloc(zone->shpool, sizeof(ngx_stream_wake_limit_sh_t));
    if (zone->sh == NULL) {
        return NGX_ERROR;
    }

    zone->shpool->data = zone->sh;

    ngx_rbtree_init(&zone->sh->projects, &zone->sh->projects_sentinel,
                    ngx_str_rbtree_insert_value);
    ngx_stream_wake_client_table_init(zone->sh, shm_zone->shm.size);

    len = sizeof(" in wake limit zone \"\"") + shm_zone->shm.name.len;

    zone->shpool->log_ctx = ngx_slab_alloc(zone->shpool, len);
    if (zone->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(zone->shpool->log_ctx, " in wake limit zone \"%V\"%Z",
                &shm_zone->shm.name);

    zone->shpool->log_nomem = 0;

    return NGX_OK;
}


ngx_stream_wake_limit_zone_t *
ngx_stream_wake_limit_zone_of(ngx_stream_session_t *s)
{
    ngx_stream_wake_main_conf_t  *wmcf;

    wmcf = ngx_stream_get_module_main_conf(s, ngx_stream_wake_module);

    return wmcf->limit_zone->data;
}


/* projects */

static ngx_stream_wake_project_node_t *
ngx_stream_wake_project_lookup(ngx_stream_wake_limit_zone_t *zone,
    ngx_str_t *project, uint32_t hash)
{
    return (ngx_stream_wake_project_node_t *)
               ngx_str_rbtree_lookup(&zone->sh->projects, project, hash);
}


static ngx_stream_wake_project_node_t *
ngx_stream_wake_project_get(ngx_stream_wake_limit_zone_t *zone,
    ngx_str_t *project)
{
    uint32_t                         hash;
    ngx_stream_wake_project_node_t  *pn;

    if (project->len > MP_PROJECT_MAX) {
        return NULL;
    }

    hash = ngx_crc32_short(project->data, project->len);

    pn = ngx_stream_wake_project_lookup(zone, project, hash);
    if (pn) {
        return pn;
    }

    pn = ngx_slab_alloc_locked(zone->shpool,
                               sizeof(ngx_stream_wake_project_node_t));

    if (pn == NULL) {
        /* session counts outrank remembered failures */
        ngx_stream_wake_client_evict(zone);

        pn = ngx_slab_alloc_locked(zone->shpool,
                                   sizeof(ngx_stream_wake_project_node_t));
        if (pn == NULL) {
            return NULL;
        }
    }

    pn->sn.node.key = hash;
    pn->sn.str.len = project->len;
    pn->sn.str.data = pn->project;
    pn->sessions = 0;
    pn->waiters = 0;
    ngx_memcpy(pn->project, project->data, project->len);

    ngx_rbtree_insert(&zone->sh->projects, &pn->sn.node);

    return pn;
}


static void
ngx_stream_wake_project_put(ngx_stream_wake_limit_zone_t *zone,
    ngx_stream_wake_project_node_t *pn)
{
    if (pn->sessions == 0 && pn->waiters == 0) {
        ngx_rbtree_delete(&zone->sh->projects, &pn->sn.node);
        ngx_slab_free_locked(zone->shpool, pn);
    }
}


static void
ngx_stream_wake_limit_refuse(ngx_stream_wake_ctx_t *ctx, ngx_msec_t waited)
{
    ngx_stream_wake_srv_conf_t  *wscf;

    wscf = ngx_stream_get_module_srv_conf(ctx->session,
                                          ngx_stream_wake_module);

    if (wscf->session_queue == 0 || wscf->session_queue_timeout == 0) {
        /* no waiting configured */
        (void) ngx_stream_wake_fail(ctx->session, ctx,
                                    NGX_STREAM_SERVICE_UNAVAILABLE,
                                    NGX_STREAM_WAKE_ER_CON_COUNT,
                                    "Too many connections: project '%V' is "
                                    "at its limit of %i sessions; retry later",
                                    &ctx->project, ctx->max_sessions);
        return;
    }

    if (waited == 0) {
        (void) ngx_stream_wake_fail(ctx->session, ctx,
                                    NGX_STREAM_SERVICE_UNAVAILABLE,
                                    NGX_STREAM_WAKE_ER_CON_COUNT,
                                    "Too many connections: project '%V' is "
                                    "at its limit of %i sessions and %ui "
                                    "clients wait already; retry later",
                                    &ctx->project, ctx->max_sessions,
                                    wscf->session_queue);
        return;
    }

    (void) ngx_stream_wake_fail(ctx->session, ctx,
                                NGX_STREAM_SERVICE_UNAVAILABLE,
                                NGX_STREAM_WAKE_ER_CON_COUNT,
                                "Too many connections: project '%V' is at "
                                "its limit of %i sessions (waited %M.%M s); "
                                "retry later",
                                &ctx->project, ctx->max_sessions,
                                waited / 1000, waited % 1000 / 100);
}


void
ngx_stream_wake_limit_enter(ngx_stream_wake_ctx_t *ctx, ngx_int_t max_sessions)
{
    ngx_uint_t                       admit;
    ngx_stream_session_t            *s;
    ngx_stream_wake_srv_conf_t      *wscf;
    ngx_stream_wake_limit_zone_t    *zone;
    ngx_stream_wake_project_node_t  *pn;

    s = ctx->session;
    ctx->max_sessions = max_sessions;

    if (max_sessions <= 0 || ctx->counted) {
        ctx->state = NGX_STREAM_WAKE_READY;
        return;
    }

    wscf = ngx_stream_get_module_srv_conf(s, ngx_stream_wake_module);
    zone = ngx_stream_wake_limit_zone_of(s);

    ngx_shmtx_lock(&zone->shpool->mutex);

    pn = ngx_stream_wake_project_get(zone, &ctx->project);

    if (pn == NULL) {
        ngx_shmtx_unlock(&zone->shpool->mutex);

        /* no memory: the compute's own max_connections is the limit */
        ngx_log_error(NGX_LOG_WARN, s->connection->log, 0,
                      "wake: limit zone full, session for \"%V\" not "
                      "counted", &ctx->project);
        ctx->state = NGX_STREAM_WAKE_READY;
        return;
    }

    /* a newcomer does not overtake the clients that wait already */
    admit = pn->sessions < (ngx_uint_t) max_sessions && pn->waiters == 0;

    if (admit) {
        pn->sessions++;
        ctx->counted = 1;

    } else if (pn->waiters < wscf->session_queue
               && wscf->session_queue_timeout)
    {
        pn->waiters++;
        ctx->queued = 1;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (admit) {
        ctx->state = NGX_STREAM_WAKE_READY;
        return;
    }

    if (!ctx->queued) {
        ngx_stream_wake_limit_refuse(ctx, 0);
        return;
    }

    /* one line per waiter, like the ERR or admission that ends the wait */
    ngx_log_error(NGX_LOG_INFO, s->connection->log, 0,
                  "wake: project \"%V\" is at its limit of %i sessions, "
                  "waiting for a slot", &ctx->project, max_sessions);

    s->connection->log->action = "waiting for a session slot";

    ctx->state = NGX_STREAM_WAKE_QUEUED;
    ctx->queue_start = ngx_current_msec;

    ctx->queue_timer.handler = ngx_stream_wake_queue_handler;
    ctx->queue_timer.data = ctx;
    ctx->queue_timer.log = s->connection->log;

    ngx_add_timer(&ctx->queue_timer, NGX_STREAM_WAKE_QUEUE_TICK);
}


static void
ngx_stream_wake_queue_handler(ngx_event_t *ev)
{
    ngx_msec_t                       waited;
    ngx_uint_t                       admit;
    ngx_connection_t                *c;
    ngx_stream_session_t            *s;
    ngx_stream_wake_ctx_t           *ctx;
    ngx_stream_wake_srv_conf_t      *wscf;
    ngx_stream_wake_limit_zone_t    *zone;
    ngx_stream_wake_project_node_t  *pn;

    ctx = ev->data;
    s = ctx->session;
    c = s->connection;

    wscf = ngx_stream_get_module_srv_conf(s, ngx_stream_wake_module);
    zone = ngx_stream_wake_limit_zone_of(s);

    waited = ngx_current_msec - ctx->queue_start;
    admit = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    pn = ngx_stream_wake_project_lookup(zone, &ctx->project,
                                        ngx_crc32_short(ctx->project.data,
                                                        ctx->project.len));

    /* pn exists: this waiter keeps it */

    if (pn && pn->sessions < (ngx_uint_t) ctx->max_sessions) {
        pn->sessions++;
        pn->waiters--;
        ctx->counted = 1;
        ctx->queued = 0;
        admit = 1;

    } else if (waited >= wscf->session_queue_timeout) {
        if (pn) {
            pn->waiters--;
            ngx_stream_wake_project_put(zone, pn);
        }

        ctx->queued = 0;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (admit) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "wake: project \"%V\": session slot after %M ms",
                      &ctx->project, waited);

        c->log->action = "waking compute";
        ctx->state = NGX_STREAM_WAKE_READY;

        /* the phase engine goes on: the preread handler returns NGX_OK */
        ngx_post_event(c->read, &ngx_posted_events);
        return;
    }

    if (!ctx->queued) {
        ngx_stream_wake_limit_refuse(ctx, waited);
        ngx_stream_finalize_session(s, ngx_stream_wake_send_err(s, ctx));
        return;
    }

    ngx_add_timer(&ctx->queue_timer, NGX_STREAM_WAKE_QUEUE_TICK);
}


/*
 * A client event while queued: only its going away matters (it sends
 * nothing before the auth exchange).  A peek leaves any byte for later.
 */
ngx_int_t
ngx_stream_wake_limit_peek(ngx_stream_wake_ctx_t *ctx)
{
    u_char             ch;
    ssize_t            n;
    ngx_err_t          err;
    ngx_connection_t  *c;

    c = ctx->session->connection;

    n = recv(c->fd, &ch, 1, MSG_PEEK);

    if (n > 0) {
        return NGX_DONE;
    }

    if (n == -1) {
        err = ngx_socket_errno;

        if (err == NGX_EAGAIN || err == NGX_EINTR) {
            return NGX_DONE;
        }
    }

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "wake: client left while waiting for a session slot");

    return NGX_STREAM_OK;
}


void
ngx_stream_wake_limit_release(ngx_stream_wake_ctx_t *ctx)
{
    ngx_stream_wake_limit_zone_t    *zone;
    ngx_stream_wake_project_node_t  *pn;

    if (ctx->queue_timer.timer_set) {
        ngx_del_timer(&ctx->queue_timer);
    }

    if (!ctx->counted && !ctx->queued) {
        return;
    }

    zone = ngx_stream_wake_limit_zone_of(ctx->session);

    ngx_shmtx_lock(&zone->shpool->mutex);

    pn = ngx_stream_wake_project_lookup(zone, &ctx->project,
                                        ngx_crc32_short(ctx->project.data,
                                                        ctx->project.len));

    if (pn) {
        if (ctx->counted && pn->sessions) {
            pn->sessions--;
        }

        if (ctx->queued && pn->waiters) {
            pn->waiters--;
        }

        ngx_stream_wake_project_put(zone, pn);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    ctx->counted = 0;
    ctx->queued = 0;
}
