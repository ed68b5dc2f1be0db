/*
 * The id map of ngx_stream_wake_module: for every live session, handed-out
 * connection id -> (compute thread id, project), indexed twice:
 *
 *   - by id, for rewriting "KILL [QUERY] <handed-out id>";
 *   - by client key (client address + login + "_pid"), for routing the
 *     mariadb CLI's Ctrl-C connection, which names no project.
 *
 * Rule of this file: pure ordering code over nginx's rbtree.  The caller
 * allocates and frees the nodes and holds the zone lock.  Every operation
 * is O(log n) in the number of live sessions, whatever ids or client keys
 * clients present: nothing here walks the map.
 */

#ifndef NGX_STREAM_WAKE_IDMAP_H
#define NGX_STREAM_WAKE_IDMAP_H

#include <ngx_config.h>
#include <ngx_core.h>

#include "mysql_proto.h"


typedef struct {
    ngx_rbtree_node_t           node;       /* key: handed-out id */
    ngx_rbtree_node_t           client;     /* key: client key, then id */
    uint32_t                    real_id;
    u_char                      project_len;
    u_char                      project[MP_PROJECT_MAX];
} ngx_stream_wake_id_node_t;


typedef struct {
    ngx_rbtree_t                ids;
    ngx_rbtree_node_t           ids_sentinel;
    ngx_rbtree_t                clients;    /* only sessions with a key */
    ngx_rbtree_node_t           clients_sentinel;
} ngx_stream_wake_idmap_t;


void ngx_stream_wake_idmap_init(ngx_stream_wake_idmap_t *map);

/* in must not be in the map; client_key 0: not in the client index */
void ngx_stream_wake_idmap_insert(ngx_stream_wake_idmap_t *map,
    ngx_stream_wake_id_node_t *in, uint32_t id, uint32_t client_key);
void ngx_stream_wake_idmap_delete(ngx_stream_wake_idmap_t *map,
    ngx_stream_wake_id_node_t *in);

ngx_stream_wake_id_node_t *ngx_stream_wake_idmap_find(
    ngx_stream_wake_idmap_t *map, uint32_t id);

/* the session with this client key and the highest id (the newest) */
ngx_stream_wake_id_node_t *ngx_stream_wake_idmap_newest(
    ngx_stream_wake_idmap_t *map, uint32_t client_key);

#endif /* NGX_STREAM_WAKE_IDMAP_H */
