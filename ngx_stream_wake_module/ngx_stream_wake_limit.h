/*
 * Limits of ngx_stream_wake_module (docs/limits.md), in their own shared
 * memory zone, shared by all workers:
 *
 *   - per project: live sessions against the controller's
 *     X-Wake-Max-Sessions, and the clients that wait for a slot;
 *   - per client address: a token bucket charged by failures only.
 */

#ifndef NGX_STREAM_WAKE_LIMIT_H
#define NGX_STREAM_WAKE_LIMIT_H

#define NGX_STREAM_WAKE_DEFAULT_LIMIT_ZONE_SIZE  (1024 * 1024)

/* how often a waiting session looks at its project's count */
#define NGX_STREAM_WAKE_QUEUE_TICK    10


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
