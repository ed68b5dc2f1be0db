/* Reset and read the activity counters (see counters.h). */
#include "counters.h"

void wa_counters_reset(struct wa_counters *c, int64_t now_ms)
{
    atomic_store(&c->connections, 0);
    atomic_store(&c->connects, 0);
    atomic_store(&c->failed_connects, 0);
    atomic_store(&c->disconnects, 0);
    atomic_store(&c->untracked, 0);
    atomic_store(&c->last_connection_ms, now_ms);
    atomic_store(&c->last_query_ms, now_ms);
    for (int i = 0; i < WA_QUERY_STRIPES; i++)
        atomic_store(&c->stripes[i].queries, 0);
}

uint64_t wa_counters_queries(const struct wa_counters *c)
{
    uint64_t sum = 0;
    for (int i = 0; i < WA_QUERY_STRIPES; i++)
        sum += atomic_load_explicit(&c->stripes[i].queries, memory_order_relaxed);
    return sum;
}

void wa_counters_snapshot(const struct wa_counters *c, struct wa_snapshot *s)
{
    /* The current connection count is read last so that it is the freshest
     * value: it is the one the controller's suspend decision rests on. */
    s->connects = atomic_load(&c->connects);
    s->disconnects = atomic_load(&c->disconnects);
    s->failed_connects = atomic_load(&c->failed_connects);
    s->untracked = atomic_load(&c->untracked);
    s->connections = atomic_load(&c->connections);
    s->queries = wa_counters_queries(c);
    s->last_query_ms = atomic_load(&c->last_query_ms);
    s->last_connection_ms = atomic_load(&c->last_connection_ms);
    s->last_activity_ms = s->last_query_ms > s->last_connection_ms
                              ? s->last_query_ms
                              : s->last_connection_ms;
}
