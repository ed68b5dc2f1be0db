/* The scheduler thread.  Each tick it
 *   - notices servers that died (supervision),
 *   - decides which running computes are idle and drains them to frozen or
 *     stopped (each drain in its own thread: a drain waits out the proxy
 *     cache TTL and must not hold up the others),
 *   - deepens frozen computes to stopped after the idle timeout,
 *   - closes metering intervals that ran for meter_interval_s.
 * It keeps nothing of its own between ticks: all it needs is in Redis. */
#include "core/scheduler.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "billing/billing.h"
#include "util/ids.h"
#include "core/lifecycle.h"
#include "util/log.h"

static const config *cfg;
static pthread_t thread;
static atomic_bool stopping;

typedef struct {
    char cid[96];
    suspend_mode mode;
    long long activity_seen;
} drain_job;

static void *drain_main(void *arg)
{
    drain_job *j = arg;
    op_error e;

    if (lifecycle_suspend(j->cid, j->mode, SUSPEND_IDLE, j->activity_seen, &e) < 0)
        log_warn("compute %s: idle suspend failed: %s", j->cid, e.message);
    free(j);
    return NULL;
}

static void drain(const compute_rec *c, suspend_mode mode)
{
    drain_job *j = malloc(sizeof(*j));
    pthread_t t;

    if (j == NULL)
        return;
    snprintf(j->cid, sizeof(j->cid), "%s", c->id);
    j->mode = mode;
    j->activity_seen = c->last_activity_ms;
    if (pthread_create(&t, NULL, drain_main, j) != 0) {
        free(j);
        return;
    }
    pthread_detach(t);
}

/* Client connections now: from the plugin while its reports are fresh,
 * otherwise asked of the compute itself. */
static long long connections(const compute_rec *c)
{
    long long fresh_ms = 3LL * cfg->report_interval_s * 1000;
    compute_probe pr;

    if (c->act_received_ms > 0 && now_ms() - c->act_received_ms < fresh_ms)
        return c->act_connections;
    if (lifecycle_backend()->probe(c, &pr) < 0)
        return 1;   /* cannot tell: assume busy, never suspend blind */
    return pr.client_sessions;
}

static void consider(const compute_rec *c)
{
    project_rec p;
    long long idle_ms;

    if (store_project_get(c->project, &p) != 0)
        return;
    if (c->state == ST_SUSPENDED && c->mode == MODE_FROZEN) {
        if (now_ms() - c->last_activity_ms >= (long long)p.idle_timeout_s * 1000)
            drain(c, MODE_STOPPED);
        return;
    }
    if (c->state != ST_RUNNING)
        return;
    if (connections(c) > 0) {
        /* an open session is activity, however quiet */
        lifecycle_touch(c->id);
        return;
    }
    /* from the last activity, or from the wake that made it run: a compute
     * just woken gets its full idle time for the client to log in */
    idle_ms = now_ms() - (c->last_activity_ms > c->state_since_ms ? c->last_activity_ms
                                                                   : c->state_since_ms);
    if (p.freeze_after_s > 0 && idle_ms >= (long long)p.freeze_after_s * 1000)
        drain(c, MODE_FROZEN);
    else if (p.freeze_after_s == 0 && idle_ms >= (long long)p.idle_timeout_s * 1000)
        drain(c, MODE_STOPPED);
}

/* One pass over the computes: each is read once per tick. */
static void tick(void)
{
    char **ids = store_compute_ids();

    for (char **id = ids; id && *id; id++) {
        compute_rec c;
        if (store_compute_get(*id, &c) != 0)
            continue;
        /* read again only if supervision or metering changed it */
        if (lifecycle_supervise(&c) | lifecycle_meter_tick(&c))
            if (store_compute_get(*id, &c) != 0)
                continue;
        consider(&c);
    }
    ids_free(ids);
}

static void *scheduler_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&stopping)) {
        int64_t t0 = mono_ms();
        tick();
        billing_tick();
        int64_t left = cfg->scheduler_interval_ms - (mono_ms() - t0);
        while (left > 0 && !atomic_load(&stopping)) {
            usleep((useconds_t)(left > 50 ? 50 : left) * 1000);
            left -= 50;
        }
    }
    return NULL;
}

int scheduler_start(const config *c)
{
    cfg = c;
    atomic_store(&stopping, false);
    return pthread_create(&thread, NULL, scheduler_main, NULL);
}

void scheduler_stop(void)
{
    atomic_store(&stopping, true);
    pthread_join(thread, NULL);
}
