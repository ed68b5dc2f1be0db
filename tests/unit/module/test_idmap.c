/*
 * The id map's two indexes (ngx_stream_wake_idmap.c): lookups by id and
 * "newest session of this client" agree with a brute-force scan, through
 * inserts and deletes in any order, with many sessions per client key.
 *
 * nginx-dev ships headers only, so the three rbtree functions the map calls
 * are stood in for by a plain (unbalanced) binary search tree that keeps
 * nginx's contract: insert goes through tree->insert, delete moves nodes
 * (never keys) and clears the deleted node.  Balancing is nginx's business;
 * the ordering, insert callback and descents under test are ours.
 */

/* first, as in nginx: ngx_config.h sets the feature macros */
#include "ngx_stream_wake_idmap.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>


/* ---- stand-in for nginx's rbtree ---- */

void
ngx_rbtree_insert_value(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t  **p;

    for ( ;; ) {
        p = (node->key < temp->key) ? &temp->left : &temp->right;

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
ngx_rbtree_insert(ngx_rbtree_t *tree, ngx_rbtree_node_t *node)
{
    if (tree->root == tree->sentinel) {
        node->parent = NULL;
        node->left = tree->sentinel;
        node->right = tree->sentinel;
        ngx_rbt_black(node);
        tree->root = node;
        return;
    }

    tree->insert(tree->root, node, tree->sentinel);
}


static void
bst_transplant(ngx_rbtree_t *tree, ngx_rbtree_node_t *u, ngx_rbtree_node_t *v)
{
    if (u == tree->root) {
        tree->root = v;

    } else if (u == u->parent->left) {
        u->parent->left = v;

    } else {
        u->parent->right = v;
    }

    if (v != tree->sentinel) {
        v->parent = u->parent;
    }
}


void
ngx_rbtree_delete(ngx_rbtree_t *tree, ngx_rbtree_node_t *z)
{
    ngx_rbtree_node_t  *y, *s;

    s = tree->sentinel;

    if (z->left == s) {
        bst_transplant(tree, z, z->right);

    } else if (z->right == s) {
        bst_transplant(tree, z, z->left);

    } else {
        for (y = z->right; y->left != s; y = y->left) { /* void */ }

        if (y->parent != z) {
            bst_transplant(tree, y, y->right);
            y->right = z->right;
            y->right->parent = y;
        }

        bst_transplant(tree, z, y);
        y->left = z->left;
        y->left->parent = y;
    }

    /* as nginx does: a deleted node is unusable */
    z->left = NULL;
    z->right = NULL;
    z->parent = NULL;
    z->key = 0;
}


/* ---- helpers ---- */

#define N  600

typedef struct {
    ngx_stream_wake_id_node_t  node;
    uint32_t                   id;
    uint32_t                   key;
    int                        live;
} session_t;


static session_t  sessions[N];


static void
add(ngx_stream_wake_idmap_t *map, session_t *s, uint32_t id, uint32_t key)
{
    memset(&s->node, 0xa5, sizeof(s->node));    /* no reliance on zeroes */
    s->node.real_id = id - MP_PROXY_ID_BASE;
    s->id = id;
    s->key = key;
    s->live = 1;
    ngx_stream_wake_idmap_insert(map, &s->node, id, key);
}


static void
del(ngx_stream_wake_idmap_t *map, session_t *s)
{
    ngx_stream_wake_idmap_delete(map, &s->node);
    s->live = 0;
}


static session_t *
scan_newest(uint32_t key)
{
    int         i;
    session_t  *best;

    best = NULL;

    for (i = 0; i < N; i++) {
        if (sessions[i].live && key && sessions[i].key == key
            && (best == NULL || sessions[i].id > best->id))
        {
            best = &sessions[i];
        }
    }

    return best;
}


static void
check_all(ngx_stream_wake_idmap_t *map, uint32_t nkeys)
{
    int                         i;
    uint32_t                    k;
    session_t                  *want;
    ngx_stream_wake_id_node_t  *got;

    for (i = 0; i < N; i++) {
        got = ngx_stream_wake_idmap_find(map, sessions[i].id);

        if (sessions[i].live) {
            assert_ptr_equal(got, &sessions[i].node);
            assert_int_equal(got->real_id,
                             sessions[i].id - MP_PROXY_ID_BASE);
        } else {
            assert_null(got);
        }
    }

    for (k = 0; k <= nkeys; k++) {
        want = scan_newest(k);
        got = ngx_stream_wake_idmap_newest(map, k);
        assert_ptr_equal(got, want ? &want->node : NULL);
    }
}


/* ---- tests ---- */

static void
test_find_and_delete(void **state)
{
    ngx_stream_wake_idmap_t  map;

    (void) state;
    memset(sessions, 0, sizeof(sessions));
    ngx_stream_wake_idmap_init(&map);

    assert_null(ngx_stream_wake_idmap_find(&map, MP_PROXY_ID_BASE | 1));
    assert_null(ngx_stream_wake_idmap_newest(&map, 7));

    add(&map, &sessions[0], MP_PROXY_ID_BASE | 5, 7);
    add(&map, &sessions[1], MP_PROXY_ID_BASE | 3, 0);   /* no _pid */
    add(&map, &sessions[2], MP_PROXY_ID_BASE | 9, 8);

    assert_ptr_equal(ngx_stream_wake_idmap_find(&map, MP_PROXY_ID_BASE | 3),
                     &sessions[1].node);
    assert_null(ngx_stream_wake_idmap_find(&map, MP_PROXY_ID_BASE | 4));
    assert_null(ngx_stream_wake_idmap_find(&map, 5));   /* a real thread id */

    /* key 0 is "no client key": never matched, not indexed */
    assert_null(ngx_stream_wake_idmap_newest(&map, 0));
    assert_ptr_equal(ngx_stream_wake_idmap_newest(&map, 7),
                     &sessions[0].node);
    assert_ptr_equal(ngx_stream_wake_idmap_newest(&map, 8),
                     &sessions[2].node);

    del(&map, &sessions[1]);
    del(&map, &sessions[0]);

    assert_null(ngx_stream_wake_idmap_find(&map, MP_PROXY_ID_BASE | 5));
    assert_null(ngx_stream_wake_idmap_newest(&map, 7));
    assert_ptr_equal(ngx_stream_wake_idmap_find(&map, MP_PROXY_ID_BASE | 9),
                     &sessions[2].node);

    del(&map, &sessions[2]);

    assert_ptr_equal(map.ids.root, map.ids.sentinel);
    assert_ptr_equal(map.clients.root, map.clients.sentinel);
}


/* one client process with many sessions: the newest wins, then the next */
static void
test_newest_of_one_client(void **state)
{
    int                      i;
    ngx_stream_wake_idmap_t  map;

    (void) state;
    memset(sessions, 0, sizeof(sessions));
    ngx_stream_wake_idmap_init(&map);

    /* greetings arrive out of order: ids 10, 40, 20, 50, 30 */
    add(&map, &sessions[0], MP_PROXY_ID_BASE | 10, 42);
    add(&map, &sessions[1], MP_PROXY_ID_BASE | 40, 42);
    add(&map, &sessions[2], MP_PROXY_ID_BASE | 20, 42);
    add(&map, &sessions[3], MP_PROXY_ID_BASE | 50, 41);    /* other client */
    add(&map, &sessions[4], MP_PROXY_ID_BASE | 30, 42);
    add(&map, &sessions[5], MP_PROXY_ID_BASE | 60, 43);    /* other client */

    assert_ptr_equal(ngx_stream_wake_idmap_newest(&map, 42),
                     &sessions[1].node);

    del(&map, &sessions[1]);
    assert_ptr_equal(ngx_stream_wake_idmap_newest(&map, 42),
                     &sessions[4].node);

    del(&map, &sessions[4]);
    del(&map, &sessions[2]);
    assert_ptr_equal(ngx_stream_wake_idmap_newest(&map, 42),
                     &sessions[0].node);

    del(&map, &sessions[0]);
    assert_null(ngx_stream_wake_idmap_newest(&map, 42));
    assert_ptr_equal(ngx_stream_wake_idmap_newest(&map, 41),
                     &sessions[3].node);
    assert_ptr_equal(ngx_stream_wake_idmap_newest(&map, 43),
                     &sessions[5].node);

    for (i = 0; i < N; i++) {
        if (sessions[i].live) {
            del(&map, &sessions[i]);
        }
    }

    assert_ptr_equal(map.clients.root, map.clients.sentinel);
}


/* never the same id twice, in no particular order (odd factor: a bijection) */
static uint32_t
scrambled_id(uint32_t n)
{
    return MP_PROXY_ID_BASE | ((n * 2654435761u) & 0x7fffffff);
}


/* random inserts and deletes against a scan, few keys (many collisions) */
static void
test_random_against_scan(void **state)
{
    int                      i, round, live;
    uint32_t                 next, nkeys;
    ngx_stream_wake_idmap_t  map;

    (void) state;
    memset(sessions, 0, sizeof(sessions));
    ngx_stream_wake_idmap_init(&map);
    srand(12345);

    next = 1;
    nkeys = 9;

    for (i = 0; i < N; i++) {
        sessions[i].id = scrambled_id(next++);
    }

    for (round = 0; round < 20000; round++) {
        i = rand() % N;

        if (sessions[i].live) {
            del(&map, &sessions[i]);

        } else {
            add(&map, &sessions[i], scrambled_id(next++),
                (uint32_t) (rand() % (nkeys + 1)));
        }

        if (round % 997 == 0) {
            check_all(&map, nkeys);
        }
    }

    check_all(&map, nkeys);

    live = 0;

    for (i = 0; i < N; i++) {
        if (sessions[i].live) {
            live++;
            del(&map, &sessions[i]);
        }
    }

    assert_true(live > 0);
    check_all(&map, nkeys);
    assert_ptr_equal(map.ids.root, map.ids.sentinel);
    assert_ptr_equal(map.clients.root, map.clients.sentinel);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_and_delete),
        cmocka_unit_test(test_newest_of_one_client),
        cmocka_unit_test(test_random_against_scan),
    };

    return cmocka_run_group_tests_name("ngx_stream_wake_module id map",
                                       tests, NULL, NULL);
}
