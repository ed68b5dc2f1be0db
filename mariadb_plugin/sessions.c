/* Lock-free table of counted sessions (see sessions.h). */
#include "sessions.h"

/* Connection ids are handed out sequentially; multiplicative hashing spreads
 * neighbours over the whole table so windows rarely overlap. */
static unsigned home_slot(uint64_t id)
{
    return (unsigned)((id * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - WA_SESSIONS_BITS));
}

static unsigned slot_at(unsigned home, unsigned i)
{
    return (home + i) & (WA_SESSIONS_SLOTS - 1);
}

void wa_sessions_clear(struct wa_sessions *t)
{
    for (unsigned i = 0; i < WA_SESSIONS_SLOTS; i++)
        atomic_store_explicit(&t->slot[i], 0, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
}

int wa_sessions_contains(const struct wa_sessions *t, uint64_t id)
{
    uint64_t key = id + 1;
    unsigned home = home_slot(id);
    for (unsigned i = 0; i < WA_SESSIONS_WINDOW; i++)
        if (atomic_load_explicit(&t->slot[slot_at(home, i)], memory_order_acquire) == key)
            return 1;
    return 0;
}

enum wa_insert_result wa_sessions_insert(struct wa_sessions *t, uint64_t id)
{
    uint64_t key = id + 1;
    unsigned home = home_slot(id);
    unsigned first_empty = WA_SESSIONS_WINDOW;

    /* One pass: the key must not be anywhere in the window (a session
     * starting twice), and the first empty slot is remembered on the way. */
    for (unsigned i = 0; i < WA_SESSIONS_WINDOW; i++) {
        uint64_t v = atomic_load_explicit(&t->slot[slot_at(home, i)], memory_order_acquire);
        if (v == key)
            return WA_ALREADY;
        if (v == 0 && first_empty == WA_SESSIONS_WINDOW)
            first_empty = i;
    }
    /* Another session may take an empty slot first; only this thread ever
     * inserts this key, so no second scan for it is needed. */
    for (unsigned i = first_empty; i < WA_SESSIONS_WINDOW; i++) {
        _Atomic uint64_t *s = &t->slot[slot_at(home, i)];
        uint64_t expect = 0;
        if (atomic_load_explicit(s, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong_explicit(s, &expect, key,
                                                    memory_order_acq_rel,
                                                    memory_order_relaxed))
            return WA_INSERTED;
    }
    return WA_FULL;
}

int wa_sessions_remove(struct wa_sessions *t, uint64_t id)
{
    uint64_t key = id + 1;
    unsigned home = home_slot(id);
    for (unsigned i = 0; i < WA_SESSIONS_WINDOW; i++) {
        _Atomic uint64_t *s = &t->slot[slot_at(home, i)];
        uint64_t expect = key;
        /* the CAS makes a racing second disconnect of the same id a no-op */
        if (atomic_load_explicit(s, memory_order_relaxed) == key &&
            atomic_compare_exchange_strong_explicit(s, &expect, 0,
                                                    memory_order_acq_rel,
                                                    memory_order_relaxed))
            return 1;
    }
    return 0;
}

unsigned wa_sessions_count(const struct wa_sessions *t)
{
    unsigned n = 0;
    for (unsigned i = 0; i < WA_SESSIONS_SLOTS; i++)
        n += atomic_load_explicit(&t->slot[i], memory_order_relaxed) != 0;
    return n;
}
