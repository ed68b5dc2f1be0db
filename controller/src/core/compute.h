/* The records the controller keeps (in Redis, through store/) and hands to
 * the backends: plain values, no behaviour.  docs/redis-keys.md has the
 * stored fields. */
#ifndef SMDB_CORE_COMPUTE_H
#define SMDB_CORE_COMPUTE_H

#include <stdbool.h>

#include "core/state.h"

/* The optional load signals of a report (docs/interfaces.md): its JSON
 * names, stored as act_<name> in the compute's record. */
#define ACT_NOPT 12
static const char *const act_opt_names[ACT_NOPT] = {
    "threads_running", "busy_sessions", "open_trx", "events", "bp_bytes", "bp_pages_total",
    "bp_pages_data", "bp_pages_free", "bp_read_requests", "bp_reads", "max_connections",
    "cpu_ms"};
enum {
    A_THREADS_RUNNING, A_BUSY_SESSIONS, A_OPEN_TRX, A_EVENTS, A_BP_BYTES, A_BP_PAGES_TOTAL,
    A_BP_PAGES_DATA, A_BP_PAGES_FREE, A_BP_READ_REQUESTS, A_BP_READS, A_MAX_CONNECTIONS,
    A_CPU_MS,
};

/* The autoscaler's memory of a compute (core/autoscale.c), kept in its
 * record so that a controller taking over the scheduler lease goes on where
 * the last one stopped: when the size last changed, since when the load has
 * been low, the report sample the next deltas are taken from, and the last
 * signals (for /metrics).  Ratios are in parts per million (-1 unknown). */
typedef struct {
    long long last_change_ms;     /* 0: never */
    long long low_since_ms;       /* 0: not low */
    long long prev_sent_ms;       /* the sample deltas start from; 0: none */
    long long prev_cpu_ms, prev_bp_reads, prev_bp_read_requests;
    long long prev_cpu_at_ms;     /* when prev_cpu_ms was read */
    long long prev_bp_pages_data;
    long long cpu_ppm;            /* CPU used of the CPU allowed */
    long long miss_ppm;           /* buffer pool reads from disk per read request */
    long long fill_ppm;           /* data pages of the pool's pages */
    long long signals_ms;         /* when these signals were taken; 0: never */
    char last_decision[160];      /* "up 1->2: cpu" */
} autoscale_rec;

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
    long long act_sent_at_ms;
    long long act_opt[ACT_NOPT];  /* the report's load signals (A_*); -1 unknown */
    autoscale_rec as;
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
    long long opt[ACT_NOPT];   /* A_*; -1: not in the report */
} activity_report;

#endif
