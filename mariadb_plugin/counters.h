/* Activity counters shared by the audit hook (writers, one per client
 * thread) and the reporter / SHOW STATUS (readers).
 *
 * Everything is a C11 atomic so the hook never takes a lock.  Fields that are
 * written on every query live on their own cache lines; the query counter is
 * striped over several lines so that many client threads on many cores do not
 * all bounce one line between them. */
#ifndef WA_COUNTERS_H
#define WA_COUNTERS_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

#define WA_CACHE_LINE 64
#define WA_QUERY_STRIPES 16 /* power of two */

struct wa_stripe {
    alignas(WA_CACHE_LINE) _Atomic uint64_t queries;
};

struct wa_counters {
    /* connection events: rare compared with queries, one line for all */
    alignas(WA_CACHE_LINE) _Atomic int64_t connections;
    _Atomic uint64_t connects;
    _Atomic uint64_t failed_connects;
    _Atomic uint64_t disconnects;
    _Atomic uint64_t untracked; /* sessions the session table had no room for */
    _Atomic int64_t last_connection_ms;

    /* written at most once per clock tick (the hook checks before storing) */
    alignas(WA_CACHE_LINE) _Atomic int64_t last_query_ms;

    struct wa_stripe stripes[WA_QUERY_STRIPES];
};

/* A consistent-enough copy for one report or one SHOW STATUS row.  The
 * fields are read one by one, so a report taken while clients connect may
 * see a connect before the matching connection count: the next report is
 * exact again. */
struct wa_snapshot {
    int64_t connections;
    uint64_t connects;
    uint64_t failed_connects;
    uint64_t disconnects;
    uint64_t queries;
    uint64_t untracked;
    int64_t last_query_ms;
    int64_t last_connection_ms;
    int64_t last_activity_ms; /* max of the two above */
};

/* Zero everything; "now" becomes the last activity time, because a compute
 * is started for a reason (a client is on its way) and must not look idle
 * since 1970. */
void wa_counters_reset(struct wa_counters *c, int64_t now_ms);

void wa_counters_snapshot(const struct wa_counters *c, struct wa_snapshot *s);

uint64_t wa_counters_queries(const struct wa_counters *c);

/* Hot path helpers, inline so the hook is a handful of instructions. */
static inline void wa_counters_add_query(struct wa_counters *c, uint64_t tid,
                                         int64_t now_ms)
{
    struct wa_stripe *s = &c->stripes[tid & (WA_QUERY_STRIPES - 1)];
    atomic_fetch_add_explicit(&s->queries, 1, memory_order_relaxed);
    /* a load is cheap on a shared line; a store would take it exclusive */
    if (atomic_load_explicit(&c->last_query_ms, memory_order_relaxed) != now_ms)
        atomic_store_explicit(&c->last_query_ms, now_ms, memory_order_relaxed);
}

#endif
