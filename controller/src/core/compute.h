/* The records the controller keeps (in Redis, through store/) and hands to
 * the backends: plain values, no behaviour.  docs/redis-keys.md has the
 * stored fields. */
#ifndef SMDB_CORE_COMPUTE_H
#define SMDB_CORE_COMPUTE_H

#include <stdbool.h>

#include "core/state.h"

typedef struct {
    char id[96];
    char project[64];
    compute_state state;
    suspend_mode mode;
    char host[64];
    int port;
    char instance[128];       /* the backend's identity of the running server ("" none) */
    long long gen;            /* bumped by every transition */
    long long state_since_ms;
    long long last_activity_ms;
    long long wake_requested_ms;
    long long meter_since_ms;     /* open metering interval, 0 if none */
    long long storage_since_ms;   /* open storage interval, 0 if none */
    long long storage_bytes;      /* its size, -1 until the first sample */
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

/* Fields a transition (or a plain update) writes besides the state.  Only
 * those named in `set` are written. */
enum {
    U_MODE = 1 << 0,          /* mode; MODE_NONE clears it */
    U_ERROR = 1 << 1,         /* error; "" clears it */
    U_WAKE = 1 << 2,          /* wake_requested_ms; 0 clears it */
    U_HOST = 1 << 3,          /* host, unless "" (keeps the stored one) */
    U_INSTANCE = 1 << 4,      /* instance */
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
    const char *instance;
    int size_cu;
    long long last_activity_ms;
} compute_update;

/* One report of a compute's activity plugin (docs/interfaces.md), checked
 * by the API; start_ms is when the reporting server started (sent_at_ms
 * less its uptime), received_ms when the controller took it. */
typedef struct {
    long long seq, connections, connects, failed_connects, disconnects, queries;
    long long last_activity_ms, sent_at_ms, uptime_s;
    long long start_ms, received_ms;
} activity_report;

#endif
