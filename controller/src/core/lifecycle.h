/* Compute lifecycle: creation, wake, drain-safe suspend, deletion, crash
 * supervision and start-up reconciliation.  Every step is a state transition
 * of the table in core/state.c, applied atomically in Redis first; only the
 * actor whose transition was applied acts on the compute, so concurrent
 * wakes start a compute once.
 * Rule of core/: no transport and no database of its own: errors are
 * err_kinds (core/error.h, mapped to HTTP by api/), Redis is store/store.h,
 * engines are backend/backend.h. */
#ifndef SMDB_LIFECYCLE_H
#define SMDB_LIFECYCLE_H

#include <stdbool.h>
#include <stddef.h>

#include "backend/backend.h"
#include "core/error.h"
#include "store/store.h"
#include "util/config.h"

void lifecycle_init(const config *cfg, const backend *be);
const backend *lifecycle_backend(void);

typedef struct {
    char host[64];
    int port;
    char compute_id[96];
    const char *cold_start;   /* "running", "thawed", "started" */
    int max_sessions;         /* the proxy's session limit: size_cu x cu_max_connections */
    double ms;
    /* the project's freeze time, 0 when its compute is never frozen with
     * sessions open (no freeze tier, or freezing off): X-Wake-Freeze-After */
    long long freeze_after_ms;
} wake_result;


int lifecycle_wake(const char *project, wake_result *out, op_error *e);

/* Validate an id and read its record; ERR_INVALID, ERR_NOT_FOUND or
 * ERR_UNAVAILABLE in e otherwise. */
int lifecycle_load(const char *cid, compute_rec *c, op_error *e);
int lifecycle_load_project(const char *id, project_rec *p, op_error *e);

typedef struct {
    char id[64];
    int idle_timeout_s, freeze_after_s, min_cu, max_cu;
} project_spec;

typedef struct {
    char compute_id[96];
    char admin_user[32];
    char admin_password[40];
} create_result;

/* Creates a project with its compute (attach=false), or a new compute for an
 * existing project that has none (attach=true). */
int lifecycle_create(const project_spec *spec, bool attach, create_result *out, op_error *e);
int lifecycle_delete_project(const char *project, op_error *e);
int lifecycle_delete_compute(const char *cid, op_error *e);

typedef enum {
    SUSPEND_NOW,        /* operator, no proxy in front: at once */
    SUSPEND_AFTER_TTL,  /* operator: wait out the proxy's address cache first */
    SUSPEND_IDLE,       /* scheduler: the drain-safe path of DESIGN.md §3 */
} suspend_kind;

/* activity_seen: the last_activity_ms the scheduler judged idle (IDLE only).
 * Returns 1 suspended, 0 cancelled (activity), -1 error. */
int lifecycle_suspend(const char *cid, suspend_mode mode, suspend_kind kind,
                      long long activity_seen, op_error *e);
int lifecycle_resume(const char *cid, wake_result *out, op_error *e);
/* Sets a running compute's size (the project's min_cu..max_cu): the
 * backend's limits, then the meter split at the new size. */
int lifecycle_resize(const char *cid, int cu, op_error *e);

/* The backend can act now (false: why, e.g. its engine is unreachable). */
bool lifecycle_backend_available(char *why, size_t len);
const char *lifecycle_backend_name(void);
/* false: the backend has no freeze tier (suspends always stop). */
bool lifecycle_can_freeze(void);
/* Settles a compute whose server died (running -> suspended) or that an
 * actor left half-way through a transition.  true: changed it. */
bool lifecycle_supervise(const compute_rec *c);
/* Start-up: brings Redis in line with what really runs. */
void lifecycle_reconcile(void);
/* Splits the compute's open interval once it is meter_interval_s long. */
bool lifecycle_meter_tick(const compute_rec *c);  /* true: changed it */
/* The compute's own answer allows freezing it with its sessions open:
 * none busy or in a transaction, no server work, every session idle for
 * freeze_ms (docs/controller-layers.md, "The scheduler's rule"). */
bool lifecycle_probe_quiet(const compute_probe *pr, long long freeze_ms);
/* Records activity now (a wake, an open session). */
void lifecycle_touch(const char *cid);

#endif
