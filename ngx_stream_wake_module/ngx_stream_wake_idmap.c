/*
 * The id map's two indexes (see ngx_stream_wake_idmap.h).  The id index
 * uses nginx's own ordering (ngx_rbtree_insert_value); the client index
 * orders by (client key, id), so that many sessions of one client process
 * (or clients whose keys collide) still cost O(log n) to find the newest.
 */

#include "ngx_stream_wake_idmap.h"


static ngx_inline ngx_rbtree_key_t
ngx_stream_wake_idmap_id(ngx_rbtree_node_t *cnode)
{
    ngx_stream_wake_id_node_t  *in;

    in = ngx_rbtree_data(cnode, ngx_stream_wake_id_node_t, client);

    return in->node.key;
}


static ngx_uint_t
ngx_stream_wake_client_less(ngx_rbtree_node_t *a, ngx_rbtree_node_t *b)
{
    if (a->key != b->key) {
        return a->key < b->key;
    }

    return ngx_stream_wake_idmap_id(a) < ngx_stream_wake_idmap_id(b);
}


static void
ngx_stream_wake_client_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t  **p;

    for ( ;; ) {

        p = ngx_stream_wake_client_less(node, temp) ? &temp->left
                                                     : &temp->right;
        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


void
ngx_stream_wake_idmap_init(ngx_stream_wake_idmap_t *map)
{
    ngx_rbtree_init(&map->ids, &map->ids_sentinel, ngx_rbtree_insert_value);
    ngx_rbtree_init(&map->clients, &map->clients_sentinel,
                    ngx_stream_wake_client_insert);
}


void
ngx_stream_wake_idmap_insert(ngx_stream_wake_idmap_t *map,
    ngx_stream_wake_id_node_t *in, uint32_t id, uint32_t client_key)
{
    in->node.key = id;
    ngx_rbtree_insert(&map->ids, &in->node);

    in->client.key = client_key;

    if (client_key) {
        ngx_rbtree_insert(&map->clients, &in->client);
    }
}


void
ngx_stream_wake_idmap_delete(ngx_stream_wake_idmap_t *map,
    ngx_stream_wake_id_node_t *in)
{
    ngx_rbtree_delete(&map->ids, &in->node);

    if (in->client.key) {
        ngx_rbtree_delete(&map->clients, &in->client);
    }
}


ngx_stream_wake_id_node_t *
ngx_stream_wake_idmap_find(ngx_stream_wake_idmap_t *map, uint32_t id)
{
    ngx_rbtree_node_t  *node, *sentinel;

    node = map->ids.root;
    sentinel = map->ids.sentinel;

    while (node != sentinel) {

        if (id == node->key) {
            return (ngx_stream_wake_id_node_t *) node;
        }

        node = (id < node->key) ? node->left : node->right;
    }

    return NULL;
}


ngx_stream_wake_id_node_t *
ngx_stream_wake_idmap_newest(ngx_stream_wake_idmap_t *map,
    uint32_t client_key)
{
    ngx_rbtree_node_t  *node, *sentinel, *found;

    if (client_key == 0) {
        return NULL;
    }

    node = map->clients.root;
    sentinel = map->clients.sentinel;
    found = NULL;

    /* the last equal key on the way down is the highest id with that key */

    while (node != sentinel) {

        if (client_key < node->key) {
            node = node->left;

        } else if (client_key > node->key) {
            node = node->right;

        } else {
            found = node;
            node = node->right;
        }
    }

    return found ? ngx_rbtree_data(found, ngx_stream_wake_id_node_t, client)
                 : NULL;
}
