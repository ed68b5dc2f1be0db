/*
 * Limits of ngx_stream_wake_module (docs/limits.md), in their own shared
 * memory zone, shared by all workers:
 *
 *   ngx_stream_wake_limit.c   the zone; per project: live sessions against
 *                             the controller's X-Wake-Max-Sessions, and the
 *                             clients that wait for a slot
 *   ngx_stream_wake_client.c  per client address: a token bucket charged
 *                             by failures only
 */

#ifndef NGX_STREAM_WAKE_LIMIT_H
#define NGX_STREAM_WAKE_LIMIT_H

#define NGX_STREAM_WAKE_DEFAULT_LIMIT_ZONE_SIZE  (1024 * 1024)

/* how often a waiting session looks at its project's count */
#define NGX_STREAM_WAKE_QUEUE_TICK    10


/* the zone's insides, for its two users (limit.c, client.c) */

typedef struct {
    ngx_str_node_t              sn;         /* crc32, addr[] below */
    ngx_queue_t                 queue;      /* LRU, most recent first */
    ngx_msec_t                  last;       /* of the last refill */
    int64_t                     tokens;     /* millionths of a token */
    u_char                      addr[NGX_SOCKADDR_STRLEN];
} ngx_stream_wake_client_node_t;


typedef struct {
    ngx_rbtree_t                projects;
    ngx_rbtree_node_t           projects_sentinel;
    ngx_rbtree_t                clients;
    ngx_rbtree_node_t           clients_sentinel;
    ngx_queue_t                 lru;
    ngx_uint_t                  nclients;
    ngx_uint_t                  max_clients;
    ngx_uint_t                  full;       /* logged, until an add works */
} ngx_stream_wake_limit_sh_t;


typedef struct {
    ngx_stream_wake_limit_sh_t *sh;
    ngx_slab_pool_t            *shpool;
} ngx_stream_wake_limit_zone_t;


ngx_stream_wake_limit_zone_t *ngx_stream_wake_limit_zone_of(
    ngx_stream_session_t *s);
void ngx_stream_wake_client_table_init(ngx_stream_wake_limit_sh_t *sh,
    size_t size);
/* the least recently charged address goes (the zone is locked) */
void ngx_stream_wake_client_evict(ngx_stream_wake_limit_zone_t *zone);


ngx_shm_zone_t *ngx_stream_wake_limit_zone_add(ngx_conf_t *cf,
    ngx_str_t *name, size_t size);
char *ngx_stream_wake_client_limit(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* a wake answered 200: admit (READY), queue (QUEUED) or refuse (FAILED) */
void ngx_stream_wake_limit_enter(ngx_stream_wake_ctx_t *ctx,
    ngx_int_t max_sessions);
/* QUEUED, on a client event: NGX_DONE keep waiting, else the client left */
ngx_int_t ngx_stream_wake_limit_peek(ngx_stream_wake_ctx_t *ctx);
/* the session ends: its slot or its place in the queue goes */
void ngx_stream_wake_limit_release(ngx_stream_wake_ctx_t *ctx);

/* NGX_OK: the client may try; NGX_BUSY: its bucket is empty (*retry_ms) */
ngx_int_t ngx_stream_wake_client_check(ngx_stream_session_t *s,
    ngx_msec_t *retry_ms);
/* the client failed a handshake: one token, once per session */
void ngx_stream_wake_client_failed(ngx_stream_session_t *s);

#endif /* NGX_STREAM_WAKE_LIMIT_H */
