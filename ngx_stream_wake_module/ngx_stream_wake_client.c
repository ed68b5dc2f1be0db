/*
 * Per client address failure buckets of ngx_stream_wake_module
 * (docs/limits.md), in the limit zone (ngx_stream_wake_limit.c).
 *
 * A token bucket per address, charged only by failures: bad handshake,
 * handshake timeout, no/invalid/unknown project, failed authentication.  An
 * empty bucket refuses the address's handshakes at once, before the
 * greeting: no controller call, no compute.  The table is an LRU of at most
 * half the zone, so its memory is bounded and the session counts always
 * find room (they may evict addresses, never the reverse).
 */

#include "ngx_stream_wake.h"


/* the client table's share of the zone: 1/2 */
#define NGX_STREAM_WAKE_CLIENT_SHARE   2

/* a client bucket's token, in millionths */
#define NGX_STREAM_WAKE_TOKEN          1000000


void
ngx_stream_wake_client_table_init(ngx_stream_wake_limit_sh_t *sh, size_t size)
{
    size_t  chunk;

    ngx_rbtree_init(&sh->clients, &sh->clients_sentinel,
                    ngx_str_rbtree_insert_value);
    ngx_queue_init(&sh->lru);
    sh->nclients = 0;
    sh->full = 0;

    /*
     * The explicit bound: the client table never takes more than its share,
     * counted in the slab's chunks (a power of two).
     */
    for (chunk = 8; chunk < sizeof(ngx_stream_wake_client_node_t); chunk <<= 1)
    {
        /* void */
    }

    sh->max_clients = size / NGX_STREAM_WAKE_CLIENT_SHARE / chunk;

}


static ngx_stream_wake_client_node_t *
ngx_stream_wake_client_lookup(ngx_stream_wake_limit_zone_t *zone,
    ngx_str_t *addr, uint32_t hash)
{
    return (ngx_stream_wake_client_node_t *)
               ngx_str_rbtree_lookup(&zone->sh->clients, addr, hash);
}


/* the least recently charged address goes */
void
ngx_stream_wake_client_evict(ngx_stream_wake_limit_zone_t *zone)
{
    ngx_queue_t                    *q;
    ngx_stream_wake_client_node_t  *cn;

    if (ngx_queue_empty(&zone->sh->lru)) {
        return;
    }

    q = ngx_queue_last(&zone->sh->lru);
    cn = ngx_queue_data(q, ngx_stream_wake_client_node_t, queue);

    ngx_queue_remove(q);
    ngx_rbtree_delete(&zone->sh->clients, &cn->sn.node);
    ngx_slab_free_locked(zone->shpool, cn);
    zone->sh->nclients--;
}


/*
 * Refill since the last look, at most to the burst.  client_rate is in
 * thousandths of a token per second, which makes ms x rate exactly the
 * millionths of a token earned: no rounding loses a slow refill.
 */
static void
ngx_stream_wake_client_refill(ngx_stream_wake_client_node_t *cn,
    ngx_stream_wake_srv_conf_t *wscf)
{
    ngx_msec_int_t  ms;
    int64_t         full;

    full = (int64_t) wscf->client_burst * NGX_STREAM_WAKE_TOKEN;
    ms = (ngx_msec_int_t) (ngx_current_msec - cn->last);

    if (ms > 0) {
        if (ms > 86400000) {
            ms = 86400000;
        }

        cn->tokens += (int64_t) ms * (int64_t) wscf->client_rate;
        cn->last = ngx_current_msec;
    }

    if (cn->tokens > full) {
        cn->tokens = full;
    }
}


ngx_int_t
ngx_stream_wake_client_check(ngx_stream_session_t *s, ngx_msec_t *retry_ms)
{
    ngx_int_t                       rc;
    ngx_str_t                      *addr;
    ngx_stream_wake_srv_conf_t     *wscf;
    ngx_stream_wake_limit_zone_t   *zone;
    ngx_stream_wake_client_node_t  *cn;

    wscf = ngx_stream_get_module_srv_conf(s, ngx_stream_wake_module);

    if (wscf->client_rate == 0) {
        return NGX_OK;
    }

    addr = &s->connection->addr_text;

    if (addr->len == 0 || addr->len > NGX_SOCKADDR_STRLEN) {
        return NGX_OK;
    }

    zone = ngx_stream_wake_limit_zone_of(s);
    rc = NGX_OK;

    ngx_shmtx_lock(&zone->shpool->mutex);

    cn = ngx_stream_wake_client_lookup(zone, addr,
                                       ngx_crc32_short(addr->data, addr->len));

    if (cn) {
        ngx_stream_wake_client_refill(cn, wscf);

        if (cn->tokens < NGX_STREAM_WAKE_TOKEN) {
            /* a refused attempt is not charged: it cost nothing */
            *retry_ms = (ngx_msec_t) ((NGX_STREAM_WAKE_TOKEN - cn->tokens)
                                      / (int64_t) wscf->client_rate) + 1;
            rc = NGX_BUSY;
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return rc;
}


void
ngx_stream_wake_client_failed(ngx_stream_session_t *s)
{
    ngx_uint_t                      was_full;
    uint32_t                        hash;
    ngx_str_t                      *addr;
    ngx_stream_wake_ctx_t          *ctx;
    ngx_stream_wake_srv_conf_t     *wscf;
    ngx_stream_wake_limit_zone_t   *zone;
    ngx_stream_wake_client_node_t  *cn;

    wscf = ngx_stream_get_module_srv_conf(s, ngx_stream_wake_module);
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_wake_module);

    if (wscf->client_rate == 0 || ctx == NULL || ctx->charged) {
        return;
    }

    ctx->charged = 1;

    addr = &s->connection->addr_text;

    if (addr->len == 0 || addr->len > NGX_SOCKADDR_STRLEN) {
        return;
    }

    zone = ngx_stream_wake_limit_zone_of(s);
    hash = ngx_crc32_short(addr->data, addr->len);

    ngx_shmtx_lock(&zone->shpool->mutex);

    cn = ngx_stream_wake_client_lookup(zone, addr, hash);

    if (cn) {
        ngx_queue_remove(&cn->queue);

    } else {
        if (zone->sh->nclients >= zone->sh->max_clients) {
            ngx_stream_wake_client_evict(zone);
        }

        cn = ngx_slab_alloc_locked(zone->shpool,
                                   sizeof(ngx_stream_wake_client_node_t));
        if (cn == NULL) {
            ngx_stream_wake_client_evict(zone);

            cn = ngx_slab_alloc_locked(zone->shpool,
                                       sizeof(ngx_stream_wake_client_node_t));
        }

        was_full = zone->sh->full;
        zone->sh->full = (cn == NULL);

        if (cn == NULL) {
            ngx_shmtx_unlock(&zone->shpool->mutex);

            if (!was_full) {
                ngx_log_error(NGX_LOG_WARN, s->connection->log, 0,
                              "wake: limit zone full, failures of %V "
                              "not counted", addr);
            }

            return;
        }

        cn->sn.node.key = hash;
        cn->sn.str.len = addr->len;
        cn->sn.str.data = cn->addr;
        ngx_memcpy(cn->addr, addr->data, addr->len);
        cn->tokens = (int64_t) wscf->client_burst * NGX_STREAM_WAKE_TOKEN;
        cn->last = ngx_current_msec;

        ngx_rbtree_insert(&zone->sh->clients, &cn->sn.node);
        zone->sh->nclients++;
    }

    ngx_stream_wake_client_refill(cn, wscf);

    cn->tokens -= NGX_STREAM_WAKE_TOKEN;

    if (cn->tokens < 0) {
        cn->tokens = 0;
    }

    ngx_queue_insert_head(&zone->sh->lru, &cn->queue);

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


/* wake_client_limit rate=10r/s burst=20 | off */
char *
ngx_stream_wake_client_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_wake_srv_conf_t *wscf = conf;

    u_char      *p;
    size_t       len;
    ngx_int_t    n, scale;
    ngx_str_t   *value;
    ngx_uint_t   i;

    if (wscf->client_rate != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        wscf->client_rate = 0;
        wscf->client_burst = 0;
        return NGX_CONF_OK;
    }

    wscf->client_rate = 0;
    wscf->client_burst = NGX_CONF_UNSET_UINT;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "rate=", 5) == 0) {
            p = value[i].data + 5;
            len = value[i].len - 5;
            scale = 1;

            if (len > 3 && ngx_strncmp(p + len - 3, "r/s", 3) == 0) {
                len -= 3;

            } else if (len > 3 && ngx_strncmp(p + len - 3, "r/m", 3) == 0) {
                len -= 3;
                scale = 60;

            } else {
                goto invalid;
            }

            n = ngx_atoi(p, len);
            if (n <= 0 || n > 1000000) {
                goto invalid;
            }

            wscf->client_rate = (ngx_uint_t) (n * 1000 / scale);

            if (wscf->client_rate == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "burst=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);
            if (n <= 0 || n > 1000000) {
                goto invalid;
            }

            wscf->client_burst = (ngx_uint_t) n;
            continue;
        }

        goto invalid;
    }

    if (wscf->client_rate == 0) {
        return "needs rate=";
    }

    if (wscf->client_burst == NGX_CONF_UNSET_UINT) {
        wscf->client_burst = 1;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid wake_client_limit parameter \"%V\" (use "
                       "rate=<n>r/s or r/m, burst=<n>, or off)", &value[i]);

    return NGX_CONF_ERROR;
}
