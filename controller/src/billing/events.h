/* Recording usage events in Redis, and acknowledging exported ones.
 *
 * Every event is written, in one Lua script with whatever state change
 * produced it, to three places:
 *   usage:<project>   sorted set, the event JSON (score: start_ms; a
 *                     transfer event, a point in time, scores its end_ms)
 *                     — the usage index the API reads; kept after export
 *   export:pending    hash, idempotency key -> event JSON, until the ledger
 *                     has committed it
 *   export:queue      sorted set, idempotency key by end_ms: the export
 *                     order (oldest first) and the export lag, cheaply
 * so a crash can never leave an event in one and not the others.
 *
 * Once exported (or, without a ledger, older than usage_retention_s) an
 * event is retired: folded into usage-hours:<project> (hash, hour -> sums,
 * billing_usage.h) and removed from all three, in one script. */
#ifndef SMDB_BILLING_EVENTS_H
#define SMDB_BILLING_EVENTS_H

#include <stdint.h>

#include "billing/transfer_line.h"
#include "billing/usage.h"
#include "store/store.h"

/* Lua: usage_emit(usage, pending, queue, base, s, e, rate, per) records the
 * closed interval [s, e) as events cut at every UTC midnight (USAGE_DAY_MS):
 * `base` holds the fixed fields (kind, project, compute_id, cu or bytes),
 * `per` names the rate integral (cu_seconds, byte_seconds) = seconds * rate.
 * Key: "<compute_id>:<start_ms>:<kind>" — an interval's start is unique per
 * compute and kind, so the key names the interval, whoever records it.
 * Prepended to every script that closes intervals (store.c's transition
 * script included), so there is one definition of an event. */
#define USAGE_EMIT_LUA                                                            \
    "local function usage_emit(ku, kp, kq, base, s, e, rate, per)\n"              \
    "  local n = 0\n"                                                             \
    "  while s < e do\n"                                                          \
    "    local t = math.min(e, (math.floor(s / " USAGE_DAY_STR ") + 1) * " USAGE_DAY_STR ")\n" \
    "    local ev = {}\n"                                                         \
    "    for k, v in pairs(base) do ev[k] = v end\n"                              \
    "    ev.key = base.compute_id .. ':' .. string.format('%d', s) .. ':' .. base.kind\n" \
    "    ev.start_ms = s\n"                                                       \
    "    ev.end_ms = t\n"                                                         \
    "    ev.seconds = (t - s) / 1000.0\n"                                         \
    "    ev[per] = ev.seconds * rate\n"                                           \
    "    local j = cjson.encode(ev)\n"                                            \
    "    redis.call('ZADD', ku, s, j)\n"                                          \
    "    redis.call('HSET', kp, ev.key, j)\n"                                     \
    "    redis.call('ZADD', kq, t, ev.key)\n"                                     \
    "    s = t\n"                                                                 \
    "    n = n + 1\n"                                                             \
    "  end\n"                                                                     \
    "  return n\n"                                                                \
    "end\n"

/* Key names (store_key adds the prefix). */
#define K_PENDING "export:pending"
#define K_QUEUE "export:queue"

/* A storage sample of a compute: closes the open storage interval when the
 * size changed, or at UTC midnight; otherwise extends it.
 * Returns the number of events written, -1 if the compute is gone or
 * being deleted or on error. */
int events_storage_sample(const char *cid, const char *project, long long bytes, int64_t now);

/* A proxied session. 1 recorded, 0 already recorded (same key), -1 error. */
int events_transfer(const transfer_rec *t);

/* Retires events by idempotency key: folds each into its project's hourly
 * buckets and removes it from the usage index, export:pending and
 * export:queue.  *kept: events that could not be folded (out of bounds)
 * and stay in the usage index.  0, or -1 on a Redis error. */
int events_retire(const char *const *keys, int n, int *kept);

#endif
