/* The compute backends sit behind this one interface (DESIGN.md §3).
 * Rule: a backend knows its engine and nothing of the store or the state
 * machine; it sees compute_rec values only (core/compute.h) and answers
 * with its own values.  Callers hold the compute's transition (a state no
 * other actor acts on) while they call it.
 *
 * Starting is two calls, so that the lifecycle records a server the moment
 * it exists (a controller that dies while the server starts leaves one its
 * successor finds): launch() returns as soon as the instance exists, and
 * the lifecycle polls ready() until it serves (start_timeout_ms). */
#ifndef SMDB_BACKEND_H
#define SMDB_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "core/compute.h"
#include "util/config.h"

/* INST_UNKNOWN: the engine cannot be asked now; nothing may be concluded.
 * INST_STARTING: exists, not serving yet. */
typedef enum { INST_GONE, INST_STARTING, INST_RUNNING, INST_FROZEN, INST_UNKNOWN } inst_state;

typedef struct {
    char id[128];        /* opaque instance identity: "pid:starttime" (process), container id
                          * (docker), pod uid (kubernetes) */
    char host[64];       /* where the proxy reaches it; "" keeps the stored one */
    long long started_ms;
} instance;

/* What the compute itself says (util/sql.c, sql_activity_probe): the zero
 * session rule looks at client_sessions only; freezing with sessions open
 * also needs the rest (core/scheduler.c). */
typedef struct {
    long long client_sessions;   /* sessions other than the admin's */
    long long busy_sessions;     /* of them running a statement or authenticating */
    long long open_trx;          /* open InnoDB transactions */
    long long server_work;       /* event scheduler, replication */
    long long min_idle_ms;       /* the most recently active session's idle time; -1: none */
} compute_probe;

typedef struct backend {
    const char *name;
    bool can_freeze;     /* false: no freeze tier (kubernetes); the scheduler then only stops */
    /* Data directory and configuration; report_token goes to the compute's
     * plugin configuration and nowhere else. */
    int (*create)(const compute_rec *c, const char *report_token, char *err, size_t errlen);
    /* Launches the server and returns as soon as it exists (out filled), NOT when it serves. */
    int (*launch)(const compute_rec *c, instance *out, char *err, size_t errlen);
    /* 0 serving (a real SELECT 1), 1 not yet, -1 failed or gone (err says why) */
    int (*ready)(const compute_rec *c, char *err, size_t errlen);
    int (*stop)(const compute_rec *c, char *err, size_t errlen);
    int (*freeze)(const compute_rec *c, char *err, size_t errlen);   /* NULL if !can_freeze */
    int (*thaw)(const compute_rec *c, char *err, size_t errlen);
    int (*destroy)(const compute_rec *c, char *err, size_t errlen);
    int (*resize)(const compute_rec *c, int cu, char *err, size_t errlen);
    inst_state (*status)(const compute_rec *c, instance *out /* may be NULL */);
    /* Runs SQL as the admin (creating the project's user at creation). */
    int (*admin_sql)(const compute_rec *c, const char *sql, char *err, size_t errlen);
    /* The direct check of the safe-suspend rule, on the compute itself. */
    int (*probe)(const compute_rec *c, compute_probe *out);
    /* CPU time its server has used since it started, in ms; -1 if unknown.
     * Optional (NULL: the autoscaler takes the plugin's cpu_ms). */
    long long (*cpu_ms)(const compute_rec *c);
    /* Bytes of storage the compute uses; -1 if unknown. */
    long long (*storage_bytes)(const compute_rec *c);
    bool (*available)(char *err, size_t errlen);                      /* NULL: always */
    int (*list)(void (*fn)(const char *cid, void *arg), void *arg);   /* NULL: cannot list */
    /* Optional (NULL: the scheduler polls status()): runs the engine's watch on a thread of the
       backend's own and calls changed(cid) whenever an instance of that compute changes. */
    int (*watch)(void (*changed)(const char *cid));
} backend;

/* probe() on a fresh admin session m (NULL: its connect failed), closing
 * it: the one implementation the backends share (backend/probe.c). */
struct st_mysql;
int backend_probe_sql(struct st_mysql *m, const char *admin_user, compute_probe *out);

/* NULL (with a message in err) if the host does not allow it. */
const backend *backend_process(const config *cfg, char *err, size_t errlen);
/* Never NULL for a valid configuration: an engine that is down now is
 * reported by available() until it answers. */
const backend *backend_docker(const config *cfg, char *err, size_t errlen);
/* NULL if no namespace is known; an unreachable API server is reported by
 * available() until it answers. */
const backend *backend_kubernetes(const config *cfg, char *err, size_t errlen);

#endif
