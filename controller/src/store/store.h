/* All controller state lives in Redis; this file is the only one that knows
 * key names (documented in docs/redis-keys.md) and the only one that talks to
 * Redis.  Every thread has its own connection (hiredis contexts are not
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

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/config.h"
#include "core/state.h"

typedef struct {
    char id[96];
    char project[64];
    compute_state state;
    suspend_mode mode;
    char host[64];
    int port;
    int pid;
    long long pid_start;      /* process start time, guards against pid reuse */
    long long gen;            /* bumped by every transition */
    long long state_since_ms;
    long long last_activity_ms;
    long long wake_requested_ms;
    long long meter_since_ms;     /* open metering interval, 0 if none */
    int size_cu;
    char token_hash[65];
    char error[256];
    /* latest activity report of the compute's plugin */
    long long act_received_ms, act_seq, act_uptime_s, act_connections, act_connects,
        act_failed_connects, act_disconnects, act_queries, act_last_activity_ms;
} compute_rec;

typedef struct {
    char id[64];
    char compute_id[96];
    long long created_ms;
    int idle_timeout_s;
    int freeze_after_s;
    int min_cu, max_cu;
} project_rec;

int store_init(const config *cfg);
/* Runs a command on this thread's connection, reconnecting and sending it
 * again once on an I/O error or timeout (not a counter, see above).  NULL on
 * failure (logged). Free with freeReplyObject. */
redisReply *store_cmd(const char *fmt, ...);
redisReply *store_cmdargv(int argc, const char **argv);
/* Builds "<prefix><fmt...>" into buf. */
const char *store_key(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool store_ping(void);

/* 0 found, 1 not found, -1 error */
int store_compute_get(const char *cid, compute_rec *out);
int store_project_get(const char *pid, project_rec *out);

/* Creates the project and its compute records in one step, reserving a
 * port and registering c->token_hash.  attach: the project exists and gets a
 * new compute.  Returns 0 (also when a lost reply made it send the create
 * again: never "exists" for its own create); 1 if the project (attach: its
 * compute) exists already; 2 if no port is free; 3 (attach) no such project;
 * -1 on error (Redis unreachable: the outcome is unknown). */
int store_project_create(const project_rec *p, const compute_rec *c, bool attach);

/* Fields a transition (or a plain update) writes besides the state.  Only
 * those named in `set` are written. */
enum {
    U_MODE = 1 << 0,          /* mode; MODE_NONE clears it */
    U_ERROR = 1 << 1,         /* error; "" clears it */
    U_WAKE = 1 << 2,          /* wake_requested_ms; 0 clears it */
    U_HOST = 1 << 3,          /* host, unless "" (keeps the stored one) */
    U_PID = 1 << 4,           /* pid, pid_start */
    U_NEW_SERVER = 1 << 5,    /* the plugin's sequence starts again (a new server) */
    U_SIZE = 1 << 6,          /* size_cu */
    U_ACTIVITY = 1 << 7,      /* last_activity_ms */
};

typedef struct {
    unsigned set;
    suspend_mode mode;
    const char *error;
    long long wake_requested_ms;
    const char *host;
    int pid;
    long long pid_start;
    int size_cu;
    long long last_activity_ms;
} compute_update;

/* Applies transition t (core/state.h) atomically (Lua), exactly once, with
 * the fields of u (NULL: none).  activity_guard >= 0: only while the
 * compute's last_activity_ms is at most that.  1 applied (cur holds the
 * state it left), 0 refused (cur holds the current state, "" if the guard
 * refused), -1 no such compute, or Redis unreachable for the whole retry
 * window (the outcome is unknown). */
int store_transition(const compute_rec *c, const transition *t, const compute_update *u,
                     long long activity_guard, char cur[32]);

/* Field updates that need no state check. */
int store_compute_update(const char *cid, const compute_update *u);
int store_counter_incr(const char *field, long long by);
int store_hist_observe(const char *name, double ms);

#endif
