/* Lock-free session table: membership, idempotent removal, crowding, and a
 * multi-threaded run of the connect/query/disconnect pattern. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "sessions.h"

static struct wa_sessions table; /* 128 KiB: static, like in the plugin */

static int setup(void **state)
{
    (void)state;
    wa_sessions_clear(&table);
    return 0;
}

static void test_insert_contains_remove(void **state)
{
    (void)state;
    assert_false(wa_sessions_contains(&table, 7));
    assert_int_equal(wa_sessions_insert(&table, 7), WA_INSERTED);
    assert_true(wa_sessions_contains(&table, 7));
    assert_false(wa_sessions_contains(&table, 8));
    assert_int_equal(wa_sessions_insert(&table, 7), WA_ALREADY);
    assert_int_equal(wa_sessions_count(&table), 1);
    assert_int_equal(wa_sessions_remove(&table, 7), 1);
    assert_int_equal(wa_sessions_remove(&table, 7), 0); /* second disconnect */
    assert_false(wa_sessions_contains(&table, 7));
    assert_int_equal(wa_sessions_count(&table), 0);
}

static void test_id_zero_and_max(void **state)
{
    (void)state;
    assert_int_equal(wa_sessions_insert(&table, 0), WA_INSERTED);
    assert_true(wa_sessions_contains(&table, 0));
    assert_int_equal(wa_sessions_insert(&table, UINT64_MAX - 1), WA_INSERTED);
    assert_true(wa_sessions_contains(&table, UINT64_MAX - 1));
    assert_int_equal(wa_sessions_remove(&table, 0), 1);
    assert_int_equal(wa_sessions_remove(&table, UINT64_MAX - 1), 1);
}

static void test_many_sequential_ids(void **state)
{
    (void)state;
    /* thousands of live sessions with sequential ids, as the server hands
     * them out; then a hole pattern, then reuse of the freed slots */
    for (uint64_t id = 1; id <= 5000; id++)
        assert_int_equal(wa_sessions_insert(&table, id), WA_INSERTED);
    assert_int_equal(wa_sessions_count(&table), 5000);
    for (uint64_t id = 1; id <= 5000; id += 2)
        assert_int_equal(wa_sessions_remove(&table, id), 1);
    for (uint64_t id = 1; id <= 5000; id++)
        assert_int_equal(wa_sessions_contains(&table, id), id % 2 == 0);
    for (uint64_t id = 100001; id <= 102500; id++)
        assert_int_equal(wa_sessions_insert(&table, id), WA_INSERTED);
    assert_int_equal(wa_sessions_count(&table), 5000);
}

static void test_window_full(void **state)
{
    (void)state;
    /* Fill the whole table, then one more id cannot find a slot in its
     * window and must be reported, not silently dropped. */
    uint64_t id = 1, inserted = 0;
    while (inserted < WA_SESSIONS_SLOTS && id < 10u * WA_SESSIONS_SLOTS) {
        if (wa_sessions_insert(&table, id) == WA_INSERTED)
            inserted++;
        id++;
    }
    assert_int_equal(inserted, WA_SESSIONS_SLOTS);
    assert_int_equal(wa_sessions_insert(&table, id), WA_FULL);
    assert_false(wa_sessions_contains(&table, id));
    assert_int_equal(wa_sessions_remove(&table, id), 0);
}

#define THREADS 8
#define ROUNDS 20000

struct worker {
    unsigned index;
    unsigned failures;
};

static _Atomic int go;

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    while (!atomic_load(&go))
        ;
    for (unsigned r = 0; r < ROUNDS; r++) {
        uint64_t id = (uint64_t)r * THREADS + w->index; /* unique per thread */
        if (wa_sessions_insert(&table, id) != WA_INSERTED)
            w->failures++;
        if (!wa_sessions_contains(&table, id))
            w->failures++;
        if (wa_sessions_remove(&table, id) != 1)
            w->failures++;
        if (wa_sessions_remove(&table, id) != 0)
            w->failures++;
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    pthread_t t[THREADS];
    struct worker w[THREADS];
    atomic_store(&go, 0);
    for (unsigned i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.index = i};
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    atomic_store(&go, 1);
    for (unsigned i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    assert_int_equal(wa_sessions_count(&table), 0);
}

struct racer {
    uint64_t id;
    int removed;
};

static void *racer_main(void *arg)
{
    struct racer *r = arg;
    while (!atomic_load(&go))
        ;
    r->removed = wa_sessions_remove(&table, r->id);
    return NULL;
}

static void test_racing_double_disconnect(void **state)
{
    (void)state;
    /* the server may run a session's disconnect from two threads at
     * shutdown: exactly one of them may win */
    for (int round = 0; round < 200; round++) {
        uint64_t id = 424242 + (uint64_t)round;
        assert_int_equal(wa_sessions_insert(&table, id), WA_INSERTED);
        pthread_t a, b;
        struct racer ra = {.id = id}, rb = {.id = id};
        atomic_store(&go, 0);
        pthread_create(&a, NULL, racer_main, &ra);
        pthread_create(&b, NULL, racer_main, &rb);
        atomic_store(&go, 1);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        assert_int_equal(ra.removed + rb.removed, 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_insert_contains_remove, setup),
        cmocka_unit_test_setup(test_id_zero_and_max, setup),
        cmocka_unit_test_setup(test_many_sequential_ids, setup),
        cmocka_unit_test_setup(test_window_full, setup),
        cmocka_unit_test_setup(test_concurrent, setup),
        cmocka_unit_test_setup(test_racing_double_disconnect, setup),
    };
    return cmocka_run_group_tests_name("sessions", tests, NULL, NULL);
}
