/* Supervision and start-up reconciliation: bringing the store in line
 * with what really runs.  A compute whose server died, one an actor left
 * half-way through a transition, and at start every compute, are settled
 * here; an engine that cannot be asked now is never concluded from. */
#include <stdio.h>
#include <string.h>

#include "core/lifecycle.h"
#include "core/private.h"
#include "util/ids.h"
#include "util/log.h"

static void reconcile_one(compute_rec *c);

/* A compute left in a transitional state that no actor of this process
 * holds: its actor lost Redis for the whole retry window (or its transition
 * was applied after it gave up).  Settled the way a controller start does. */
static bool orphaned(const compute_rec *c)
{
    if (c->state != ST_CREATING && c->state != ST_RESUMING && c->state != ST_SUSPENDING)
        return false;
    if (now_ms() - c->state_since_ms < lc_cfg->wake_timeout_ms)
        return false;
    return !lc_is_held(c->id) && !lc_is_held(c->project);
}

bool lifecycle_supervise(const compute_rec *c)
{
    if (orphaned(c)) {
        compute_rec copy = *c;
        log_warn("compute %s: %s for %lld ms with no actor, settling it", c->id,
                 state_name(c->state), (long long)(now_ms() - c->state_since_ms));
        reconcile_one(&copy);
        return true;
    }
    if (c->state == ST_RUNNING && lc_inst_status(c) == INST_GONE) {
        compute_update u = {.set = U_MODE | U_ERROR, .mode = MODE_STOPPED,
                            .error = "server exited unexpectedly"};
        log_warn("compute %s: its server (%s) is gone", c->id, c->instance);
        if (lc_move(c, TR_CRASHED, &u) == 1)
            store_counter_incr("crashes_total", 1);
        return true;
    }
    if (c->state == ST_SUSPENDED && c->mode == MODE_FROZEN && lc_inst_status(c) == INST_GONE) {
        compute_update u = {.set = U_MODE, .mode = MODE_STOPPED};
        lc_move(c, TR_FROZEN_DIED, &u);
        return true;
    }
    return false;
}

static void reconcile_one(compute_rec *c)
{
    char err[512];
    inst_state st = lc_inst_status(c);
    op_error e = {0};

    if (st == INST_UNKNOWN) {
        /* nothing to conclude while the engine cannot be asked: supervision
         * settles the compute once it answers */
        log_warn("compute %s: backend cannot tell its state now, left %s", c->id,
                 state_name(c->state));
        return;
    }
    switch (c->state) {
    case ST_CREATING: {
        /* the admin password was never handed out: the compute is unusable */
        compute_update u = {.set = U_ERROR, .error = "controller stopped during creation"};
        if (st != INST_GONE)
            lc_be->stop(c, err, sizeof(err));
        lc_move(c, TR_CREATE_FAILED, &u);
        break;
    }
    case ST_RUNNING:
    case ST_RESUMING:
    case ST_SUSPENDING: {
        /* a server found alive may still be starting (its controller died
         * while waiting for it): it gets the start timeout to serve */
        if (st == INST_FROZEN && lc_be->thaw)
            lc_be->thaw(c, err, sizeof(err));
        if (st != INST_GONE && lc_await_ready(c, err, sizeof(err)) == 0) {
            compute_update u = {.set = U_MODE | U_WAKE, .mode = MODE_NONE,
                                .wake_requested_ms = 0};
            if (c->state != ST_RUNNING)
                lc_move(c, TR_ADOPTED, &u);
            log_info("compute %s: adopted its running server (%s)", c->id, c->instance);
        } else {
            compute_update u = {.set = U_MODE | U_ERROR, .mode = MODE_STOPPED,
                                .error = "not running at controller start"};
            if (st != INST_GONE)
                lc_be->stop(c, err, sizeof(err));
            lc_move(c, TR_FOUND_STOPPED, &u);
        }
        break;
    }
    case ST_SUSPENDED:
        if (c->mode == MODE_FROZEN && st == INST_GONE) {
            compute_update u = {.set = U_MODE, .mode = MODE_STOPPED};
            lc_move(c, TR_FROZEN_DIED, &u);
        }
        break;
    case ST_DELETING:
        lc_finish_delete(c, &e);
        break;
    default:
        break;
    }
}

/* An instance under the backend's name whose compute the store does not
 * know (its records were deleted while the controller was down, or another
 * store was used): stopped, never deleted -- its data may be wanted. */
static void stray_instance(const char *cid, void *arg)
{
    compute_rec c;
    char err[256];
    inst_state st;

    (void)arg;
    if (store_compute_get(cid, &c) != 1)
        return;
    memset(&c, 0, sizeof(c));
    snprintf(c.id, sizeof(c.id), "%s", cid);
    st = lc_be->status(&c, NULL);
    if (st == INST_RUNNING || st == INST_FROZEN || st == INST_STARTING) {
        log_warn("compute %s: instance found that the store does not know; stopping it "
                 "(its data is kept)", cid);
        lc_be->stop(&c, err, sizeof(err));
    }
}

void lifecycle_reconcile(void)
{
    char **ids = store_compute_ids();
    int n = 0;

    for (char **id = ids; id && *id; id++) {
        compute_rec c;
        if (store_compute_get(*id, &c) == 0) {
            reconcile_one(&c);
            n++;
        }
    }
    ids_free(ids);
    log_info("reconciled %d computes", n);
    if (lc_be->list)
        lc_be->list(stray_instance, NULL);
}

bool lifecycle_meter_tick(const compute_rec *c)
{
    if (c->meter_since_ms <= 0 ||
        now_ms() - c->meter_since_ms < (int64_t)lc_cfg->meter_interval_s * 1000)
        return false;
    lc_move(c, TR_METER_SPLIT, NULL);
    return true;
}
