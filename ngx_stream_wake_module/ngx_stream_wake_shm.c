/*
 * Shared memory of ngx_stream_wake_module, one slab zone per stream{} block:
 *
 *   - the wake cache: project -> compute address and session limit
 *     (positive, short TTL) or "unknown project" / "waking too often"
 *     (negative, shorter TTL or the controller's retry time), with LRU
 *     eviction;
 *   - the connection id counter: every worker hands out ids from one counter,
 *     so ids are unique per nginx instance;
 *   - the id map: handed-out id -> (compute thread id, project), kept for the
 *     life of the session, so that "KILL <handed-out id>" can be rewritten
 *     (two rbtree indexes, see ngx_stream_wake_idmap.h: no lookup under the
 *     lock walks the live sessions).
 */

#include "ngx_stream_wake.h"


/*
 * The wake cache, the session counts and the client buckets are all
 * string-keyed trees of nginx's ngx_str_node_t (key: crc32, then the
 * string).  Its str points into the node itself, like the tree's own
 * pointers: every worker maps the zone at the same address.
 */
typedef struct {
    ngx_str_node_t              sn;         /* crc32, project[] below */
    ngx_queue_t                 queue;      /* LRU, most recent first */
    ngx_msec_t                  expires;
    ngx_int_t                   status;     /* 200, 404 or 429 */
    ngx_int_t                   max_sessions;
    ngx_msec_t                  freeze_after;
    u_char                      addr_len;
    u_char                      compute_len;
    u_char                      project[MP_PROJECT_MAX];
    u_char                      addr[NGX_STREAM_WAKE_ADDR_MAX];
    u_char                      compute[NGX_STREAM_WAKE_COMPUTE_MAX];
} ngx_stream_wake_cache_node_t;


typedef struct {
    ngx_rbtree_t                cache;
    ngx_rbtree_node_t           cache_sentinel;
    ngx_queue_t                 lru;
    ngx_stream_wake_idmap_t     ids;
    ngx_uint_t                  ids_full;   /* logged, until an add works */
    ngx_atomic_t                next_id;
} ngx_stream_wake_sh_t;


typedef struct {
    ngx_stream_wake_sh_t       *sh;
    ngx_slab_pool_t            *shpool;
} ngx_stream_wake_zone_t;


static ngx_int_t ngx_stream_wake_shm_init(ngx_shm_zone_t *shm_zone,
    void *data);


ngx_shm_zone_t *
ngx_stream_wake_shm_add(ngx_conf_t *cf, ngx_str_t *name, size_t size)
{
    ngx_shm_zone_t          *shm_zone;
    ngx_stream_wake_zone_t  *zone;

    shm_zone = ngx_shared_memory_add(cf, name, size, &ngx_stream_wake_module);
    if (shm_zone == NULL) {
        return NULL;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate wake zone \"%V\"", name);
        return NULL;
    }

    zone = ngx_pcalloc(cf->pool, sizeof(ngx_stream_wake_zone_t));
    if (zone == NULL) {
        return NULL;
    }

    shm_zone->init = ngx_stream_wake_shm_init;
    shm_zone->data = zone;

    return shm_zone;
}


static ngx_int_t
ngx_stream_wake_shm_init(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_stream_wake_zone_t  *ozone = data;

    size_t                   len;
    ngx_stream_wake_zone_t  *zone;

    zone = shm_zone->data;

    if (ozone) {
        /* reload: keep the cache, the id counter and live id mappings */
        zone->sh = ozone->sh;
        zone->shpool = ozone->shpool;
        return NGX_OK;
    }

    zone->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        zone->sh = zone->shpool->data;
        return NGX_OK;
    }

    zone->sh = ngx_slab_alloc(zone->shpool, sizeof(ngx_stream_wake_sh_t));
    if (zone->sh == NULL) {
        return NGX_ERROR;
    }

    zone->shpool->data = zone->sh;

    ngx_rbtree_init(&zone->sh->cache, &zone->sh->cache_sentinel,
                    ngx_str_rbtree_insert_value);
    ngx_queue_init(&zone->sh->lru);
    ngx_stream_wake_idmap_init(&zone->sh->ids);
    zone->sh->ids_full = 0;
    zone->sh->next_id = 0;

    len = sizeof(" in wake zone \"\"") + shm_zone->shm.name.len;

    zone->shpool->log_ctx = ngx_slab_alloc(zone->shpool, len);
    if (zone->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(zone->shpool->log_ctx, " in wake zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone evicts cache entries; that is not worth a log line */
    zone->shpool->log_nomem = 0;

    return NGX_OK;
}


static ngx_stream_wake_cache_node_t *
ngx_stream_wake_cache_lookup(ngx_stream_wake_zone_t *zone, ngx_str_t *project,
    uint32_t hash)
{
    return (ngx_stream_wake_cache_node_t *)
               ngx_str_rbtree_lookup(&zone->sh->cache, project, hash);
}


static void
ngx_stream_wake_cache_delete(ngx_stream_wake_zone_t *zone,
    ngx_stream_wake_cache_node_t *cn)
{
    ngx_queue_remove(&cn->queue);
    ngx_rbtree_delete(&zone->sh->cache, &cn->sn.node);
    ngx_slab_free_locked(zone->shpool, cn);
}


/* drop expired entries from the LRU tail; with force, the oldest anyway */
static void
ngx_stream_wake_cache_expire(ngx_stream_wake_zone_t *zone, ngx_uint_t force)
{
    ngx_uint_t                     n;
    ngx_queue_t                   *q;
    ngx_stream_wake_cache_node_t  *cn;

    for (n = 0; n < 3; n++) {

        if (ngx_queue_empty(&zone->sh->lru)) {
            return;
        }

        q = ngx_queue_last(&zone->sh->lru);
        cn = ngx_queue_data(q, ngx_stream_wake_cache_node_t, queue);

        if (!force && (ngx_msec_int_t) (cn->expires - ngx_current_msec) > 0) {
            return;
        }

        ngx_stream_wake_cache_delete(zone, cn);
    }
}


/*
 * NGX_OK: a live positive entry, res filled (strings in pool);
 * NGX_DECLINED: a live negative entry (unknown project);
 * NGX_DONE: nothing usable, ask the controller.
 */
ngx_int_t
ngx_stream_wake_cache_get(ngx_shm_zone_t *shm_zone, ngx_str_t *project,
    ngx_pool_t *pool, ngx_stream_wake_result_t *res)
{
    ngx_int_t                      rc;
    ngx_stream_wake_zone_t        *zone;
    ngx_stream_wake_cache_node_t  *cn;

    zone = shm_zone->data;
    rc = NGX_DONE;

    ngx_shmtx_lock(&zone->shpool->mutex);

    cn = ngx_stream_wake_cache_lookup(zone, project,
                                      ngx_crc32_short(project->data,
                                                      project->len));

    if (cn == NULL) {
        goto done;
    }

    if ((ngx_msec_int_t) (cn->expires - ngx_current_msec) <= 0) {
        ngx_stream_wake_cache_delete(zone, cn);
        goto done;
    }

    ngx_memzero(res, sizeof(ngx_stream_wake_result_t));
    res->status = cn->status;
    res->max_sessions = cn->max_sessions;

    if (cn->status != 200) {
        res->retry_ms = cn->expires - ngx_current_msec;
        rc = NGX_DECLINED;
        goto done;
    }

    res->address.data = ngx_pnalloc(pool, cn->addr_len + cn->compute_len);
    if (res->address.data == NULL) {
        goto done;
    }

    res->address.len = cn->addr_len;
    ngx_memcpy(res->address.data, cn->addr, cn->addr_len);

    res->freeze_after = cn->freeze_after;
    res->compute.data = res->address.data + cn->addr_len;
    res->compute.len = cn->compute_len;
    ngx_memcpy(res->compute.data, cn->compute, cn->compute_len);

    ngx_queue_remove(&cn->queue);
    ngx_queue_insert_head(&zone->sh->lru, &cn->queue);

    rc = NGX_OK;

done:

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return rc;
}


void
ngx_stream_wake_cache_put(ngx_shm_zone_t *shm_zone, ngx_str_t *project,
    ngx_stream_wake_result_t *res, ngx_msec_t ttl)
{
    uint32_t                       hash;
    ngx_stream_wake_zone_t        *zone;
    ngx_stream_wake_cache_node_t  *cn;

    if (ttl == 0
        || project->len > MP_PROJECT_MAX
        || res->address.len > NGX_STREAM_WAKE_ADDR_MAX
        || res->compute.len > NGX_STREAM_WAKE_COMPUTE_MAX)
    {
        return;
    }

    zone = shm_zone->data;
    hash = ngx_crc32_short(project->data, project->len);

    ngx_shmtx_lock(&zone->shpool->mutex);

    cn = ngx_stream_wake_cache_lookup(zone, project, hash);

    if (cn) {
        ngx_queue_remove(&cn->queue);

    } else {
        ngx_stream_wake_cache_expire(zone, 0);

        cn = ngx_slab_alloc_locked(zone->shpool,
                                   sizeof(ngx_stream_wake_cache_node_t));

        if (cn == NULL) {
            ngx_stream_wake_cache_expire(zone, 1);

            cn = ngx_slab_alloc_locked(zone->shpool,
                                       sizeof(ngx_stream_wake_cache_node_t));
            if (cn == NULL) {
                ngx_shmtx_unlock(&zone->shpool->mutex);
                return;
            }
        }

        cn->sn.node.key = hash;
        cn->sn.str.len = project->len;
        cn->sn.str.data = cn->project;
        ngx_memcpy(cn->project, project->data, project->len);

        ngx_rbtree_insert(&zone->sh->cache, &cn->sn.node);
    }

    cn->expires = ngx_current_msec + ttl;
    cn->status = res->status;
    cn->max_sessions = res->max_sessions;
    cn->freeze_after = res->freeze_after;
    cn->addr_len = (u_char) res->address.len;
    ngx_memcpy(cn->addr, res->address.data, res->address.len);
    cn->compute_len = (u_char) res->compute.len;
    ngx_memcpy(cn->compute, res->compute.data, res->compute.len);

    ngx_queue_insert_head(&zone->sh->lru, &cn->queue);

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


/*
 * A live positive entry: the compute answered "running" less than the cache
 * TTL ago, and a drain waits longer than that after marking it suspending
 * before it freezes it, so it is not frozen now (docs/module.md).
 */
ngx_int_t
ngx_stream_wake_cache_fresh(ngx_shm_zone_t *shm_zone, ngx_str_t *project)
{
    ngx_int_t                      rc;
    ngx_stream_wake_zone_t        *zone;
    ngx_stream_wake_cache_node_t  *cn;

    zone = shm_zone->data;

    ngx_shmtx_lock(&zone->shpool->mutex);

    cn = ngx_stream_wake_cache_lookup(zone, project,
                                      ngx_crc32_short(project->data,
                                                      project->len));

    rc = (cn && cn->status == 200
          && (ngx_msec_int_t) (cn->expires - ngx_current_msec) > 0);

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return rc;
}


/*
 * Forget a project's address after a failed connect.  Only the entry that
 * still holds that address goes: a newer answer from another worker stays.
 */
void
ngx_stream_wake_cache_invalidate(ngx_shm_zone_t *shm_zone, ngx_str_t *project,
    ngx_str_t *address)
{
    ngx_stream_wake_zone_t        *zone;
    ngx_stream_wake_cache_node_t  *cn;

    zone = shm_zone->data;

    ngx_shmtx_lock(&zone->shpool->mutex);

    cn = ngx_stream_wake_cache_lookup(zone, project,
                                      ngx_crc32_short(project->data,
                                                      project->len));

    if (cn && cn->status == 200
        && ngx_memn2cmp(cn->addr, address->data, cn->addr_len, address->len)
           == 0)
    {
        ngx_stream_wake_cache_delete(zone, cn);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


/* ids >= 0x80000000: MariaDB thread ids count up from 1 and never get there */
uint32_t
ngx_stream_wake_next_id(ngx_shm_zone_t *shm_zone)
{
    ngx_atomic_uint_t        n;
    ngx_stream_wake_zone_t  *zone;

    zone = shm_zone->data;

    n = ngx_atomic_fetch_add(&zone->sh->next_id, 1);

    return MP_PROXY_ID_BASE | (uint32_t) ((n % 0x7fffffff) + 1);
}


/* the zone full: allocate once more after dropping the oldest cache entries */
static ngx_stream_wake_id_node_t *
ngx_stream_wake_ids_alloc(ngx_stream_wake_zone_t *zone)
{
    ngx_stream_wake_id_node_t  *in;

    in = ngx_slab_alloc_locked(zone->shpool,
                               sizeof(ngx_stream_wake_id_node_t));
    if (in) {
        return in;
    }

    /* id mappings outrank cached addresses */
    ngx_stream_wake_cache_expire(zone, 1);

    return ngx_slab_alloc_locked(zone->shpool,
                                 sizeof(ngx_stream_wake_id_node_t));
}


/*
 * A session whose id cannot be mapped still works; only a KILL naming its
 * id is not rewritten.  Logged once per stretch of a full zone, not once
 * per session: under a connection flood one line says it all.
 */
ngx_int_t
ngx_stream_wake_ids_add(ngx_shm_zone_t *shm_zone, uint32_t id,
    uint32_t real_id, uint32_t client_key, ngx_str_t *project, ngx_log_t *log)
{
    ngx_uint_t                  was_full;
    ngx_stream_wake_zone_t     *zone;
    ngx_stream_wake_id_node_t  *in;

    if (project->len > MP_PROJECT_MAX) {
        return NGX_ERROR;
    }

    zone = shm_zone->data;

    ngx_shmtx_lock(&zone->shpool->mutex);

    in = ngx_stream_wake_idmap_find(&zone->sh->ids, id);

    if (in) {
        /* a second greeting on the same session: map it afresh */
        ngx_stream_wake_idmap_delete(&zone->sh->ids, in);

    } else {
        in = ngx_stream_wake_ids_alloc(zone);
    }

    was_full = zone->sh->ids_full;
    zone->sh->ids_full = (in == NULL);

    if (in == NULL) {
        ngx_shmtx_unlock(&zone->shpool->mutex);

        if (!was_full) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "wake: zone \"%V\" is full: KILL by connection "
                          "id is not rewritten for new sessions (id %uD) "
                          "until sessions end", &shm_zone->shm.name, id);
        }

        return NGX_DECLINED;
    }

    in->real_id = real_id;
    in->project_len = (u_char) project->len;
    ngx_memcpy(in->project, project->data, project->len);

    ngx_stream_wake_idmap_insert(&zone->sh->ids, in, id, client_key);

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (was_full) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "wake: zone \"%V\" maps connection ids again",
                      &shm_zone->shm.name);
    }

    return NGX_OK;
}


void
ngx_stream_wake_ids_del(ngx_shm_zone_t *shm_zone, uint32_t id)
{
    ngx_stream_wake_zone_t     *zone;
    ngx_stream_wake_id_node_t  *in;

    zone = shm_zone->data;

    ngx_shmtx_lock(&zone->shpool->mutex);

    in = ngx_stream_wake_idmap_find(&zone->sh->ids, id);

    if (in) {
        ngx_stream_wake_idmap_delete(&zone->sh->ids, in);
        ngx_slab_free_locked(zone->shpool, in);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


/* NGX_OK only if the id is mapped for this very project */
ngx_int_t
ngx_stream_wake_ids_get(ngx_shm_zone_t *shm_zone, uint32_t id,
    ngx_str_t *project, uint32_t *real_id)
{
    ngx_int_t                   rc;
    ngx_stream_wake_zone_t     *zone;
    ngx_stream_wake_id_node_t  *in;

    zone = shm_zone->data;
    rc = NGX_DECLINED;

    ngx_shmtx_lock(&zone->shpool->mutex);

    in = ngx_stream_wake_idmap_find(&zone->sh->ids, id);

    if (in && in->real_id
        && ngx_memn2cmp(in->project, project->data, in->project_len,
                        project->len) == 0)
    {
        *real_id = in->real_id;
        rc = NGX_OK;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return rc;
}


/*
 * The project of the newest live session opened by the same client process
 * (same address, login and "_pid" connect attribute).  The mariadb CLI
 * opens its Ctrl-C "KILL QUERY" connection without a database, so with
 * database routing this is the only way to know where it belongs.  The
 * project is copied out under the lock: the session may end right after.
 */
ngx_int_t
ngx_stream_wake_ids_find_client(ngx_shm_zone_t *shm_zone, uint32_t client_key,
    ngx_pool_t *pool, ngx_str_t *project)
{
    u_char                     *p;
    ngx_stream_wake_zone_t     *zone;
    ngx_stream_wake_id_node_t  *in;

    zone = shm_zone->data;
    p = NULL;

    ngx_shmtx_lock(&zone->shpool->mutex);

    in = ngx_stream_wake_idmap_newest(&zone->sh->ids, client_key);

    if (in) {
        p = ngx_pnalloc(pool, in->project_len);

        if (p) {
            project->data = p;
            project->len = in->project_len;
            ngx_memcpy(p, in->project, in->project_len);
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return p ? NGX_OK : NGX_DECLINED;
}
