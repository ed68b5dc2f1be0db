/* The state store.  All controller state lives in Redis, and store/ is the
 * only code that talks to it: the only code that includes hiredis, builds a
 * key name (keys.h) or holds a Lua script (scripts.c).  Everything else
 * reads and writes typed records through the functions below.  The keys:
 * docs/redis-keys.md.
 *
 * Every thread has its own connection (hiredis contexts are not
 * thread-safe), authenticated (AUTH redis_user password) whenever it is
 * opened.  A broken connection is re-opened and the command sent again
 * once, so a Redis restart costs a failed request at most, never state.
 * Sending again is only safe for a command that does no harm when the
 * first copy ran too (its reply was lost): reads, HSET/HDEL/DEL/SREM, and
 * every script, which must be written to be idempotent.  Counters (HINCRBY)
 * are never sent again.  Transitions and creates carry an operation id and
 * are sent again until Redis answers (up to ~15 s): their callers act on the
 * outcome, so "unknown" must be rare. */
#ifndef SMDB_STORE_H
#define SMDB_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/compute.h"
#include "core/state.h"
#include "util/config.h"

int store_init(const config *cfg);
bool store_ping(void);

/* ---- records (records.c) ---- */

/* 0 found, 1 not found, -1 error */
int store_compute_get(const char *cid, compute_rec *out);
int store_project_get(const char *id, project_rec *out);

/* What the storage sampler looks at every second, without the whole
 * record.  0 found, 1 not found, -1 error. */
typedef struct {
    compute_state state;
    long long gen;
    char project[64];
    bool sized;               /* its storage interval has a size */
} compute_brief;
int store_compute_brief_get(const char *cid, compute_brief *out);

/* Ids of all computes / projects (NULL-terminated, free with ids_free;
 * NULL on error). */
char **store_compute_ids(void);
char **store_project_ids(void);

/* Creates the project and its compute records in one step, reserving a
 * port and registering c->token_hash.  attach: the project exists and gets a
 * new compute.  Returns 0 (also when a lost reply made it send the create
 * again: never "exists" for its own create); 1 if the project (attach: its
 * compute) exists already; 2 if no port is free; 3 (attach) no such project;
 * -1 on error (Redis unreachable: the outcome is unknown). */
int store_project_create(const project_rec *p, const compute_rec *c, bool attach);

/* Applies transition t (core/state.h) atomically (Lua), exactly once, with
 * the fields of u (NULL: none).  activity_guard >= 0: only while the
 * compute's last_activity_ms is at most that.  1 applied (cur holds the
 * state it left), 0 refused (cur holds the current state, "" if the guard
 * refused), -1 no such compute, or Redis unreachable for the whole retry
 * window (the outcome is unknown). */
int store_transition(const compute_rec *c, const transition *t, const compute_update *u,
                     long long activity_guard, char cur[32]);
/* Writes the fields of u with no state check (a cleared field is stored
 * empty). */
int store_compute_update(const char *cid, const compute_update *u);
/* Removes a deleted compute's records, its port and its token, and detaches
 * it from its project if the project still points at it. 0 or -1. */
int store_compute_remove(const compute_rec *c);
int store_project_remove(const char *id);

/* The compute a report token (its SHA-256) belongs to: 1 found, 0 none,
 * -1 error. */
int store_token_owner(const char *token_hash, char *cid, size_t len);
/* Stores a plugin report if it is newer than the stored one (a later
 * server start, or a higher seq of the same start), and raises
 * last_activity_ms to its last activity.  1 stored, 0 not newer, -1 no such
 * compute, -2 error. */
int store_activity_accept(const char *cid, const activity_report *r);
/* Writes the autoscaler's fields of the compute's record (as_*), unless
 * the compute is gone.  0 or -1. */
int store_autoscale_save(const char *cid, const autoscale_rec *s);

/* ---- metrics (metrics.c) ---- */

int store_counter_incr(const char *name, long long by);

/* The lease `name` for holder (store/lease.c): 2 gained now, 1 renewed, 0
 * another holds it, -1 Redis unreachable. */
int store_lease(const char *name, const char *holder, int ttl_ms);
/* Gives it up if holder has it: 1 released, 0 not ours, -1 error. */
int store_lease_release(const char *name, const char *holder);
/* A project's wake token bucket (store/rate.c): 1 a token taken, 0 the
 * bucket is empty (*retry_ms: until the next token), -1 Redis error. */
int store_rate_take(const char *project, int rate_per_min, int burst, int *retry_ms);
/* Gives a taken token back (best effort). */
void store_rate_give(const char *project, int rate_per_min, int burst);
/* The counters named, into out (0 if never counted).  0 or -1. */
int store_counters_get(const char *const *names, int n, long long *out);

#define STORE_HIST_NBOUNDS 14
extern const double store_hist_bounds[STORE_HIST_NBOUNDS];   /* upper bounds, ms */
typedef struct {
    long long bucket[STORE_HIST_NBOUNDS];   /* observations in each bucket (not cumulative) */
    long long count;
    double sum_ms;
} store_hist;
void store_hist_observe(const char *name, double ms);
int store_hist_get(const char *name, store_hist *out);

/* ---- usage and export (usage.c; docs/billing.md) ---- */

/* A storage sample of a compute: closes the open storage interval when the
 * size changed, or at UTC midnight; otherwise extends it.  Returns the
 * number of events written, -1 if the compute is gone or being deleted or
 * on error. */
int store_storage_sample(const char *cid, const char *project, long long bytes, int64_t now);
/* A proxied session's transfer event (event: its JSON, key: its idempotency
 * key, session: its identity, remembered for dedupe_ttl_ms).  1 recorded,
 * 0 already recorded, -2 no such project, -1 error. */
int store_transfer_record(const char *project, const char *key, const char *session,
                          int64_t end_ms, const char *event, long long dedupe_ttl_ms);
/* Retires events by idempotency key: folds each into its project's hourly
 * buckets and removes it from the usage index, export:pending and
 * export:queue.  *kept: events that could not be folded (out of bounds)
 * and stay in the usage index.  0, or -1 on a Redis error. */
int store_usage_retire(const char *const *keys, int n, int *kept);
/* 1 the project has usage recorded (events or hourly buckets), 0 none, -1 error. */
int store_usage_known(const char *project);
/* Calls fn with the JSON of every event of the project's usage index whose
 * score (start; a transfer's end) is in [min_start, before).  0 or -1. */
int store_usage_events(const char *project, int64_t min_start, int64_t before,
                       void (*fn)(const char *event, size_t len, void *arg), void *arg);
/* Calls fn with every hourly bucket of the project in hours [h0, h1]. 0 or -1. */
int store_usage_hours(const char *project, int64_t h0, int64_t h1,
                      void (*fn)(int64_t hour, const char *value, size_t len, void *arg),
                      void *arg);

typedef struct {
    int n;
    char **keys;
    char **events;            /* store_export_next: each key's event, NULL if gone */
} store_batch;
void store_batch_free(store_batch *b);
/* The oldest (by end) at most max events waiting for the ledger.  n (0: none) or -1. */
int store_export_next(int max, store_batch *b);
/* Keys only, of events that ended before before_ms.  n or -1. */
int store_export_expired(int64_t before_ms, int max, store_batch *b);
/* Sets an event the ledger refused aside in export:rejected. 0 or -1. */
int store_export_reject(const char *key, const char *event);
/* Events waiting for the ledger; -1 on error. */
long long store_export_waiting(void);
/* The end of the oldest waiting event: 1 (in *end_ms), 0 none, -1 error. */
int store_export_oldest(int64_t *end_ms);
/* Queues pending events that have no queue entry (written by an older
 * metering script); cheap when none is missing.  The number queued, -1 on
 * error. */
int store_export_repair(void);

#endif
