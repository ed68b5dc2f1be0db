/* The scheduler thread.  Each tick it
 *   - notices servers that died (supervision),
 *   - decides which running computes are idle and drains them to frozen or
 *     stopped (each drain in its own thread: a drain waits out the proxy
 *     cache TTL and must not hold up the others); a compute whose sessions
 *     are all quiet is frozen with them open (the proxy thaws it on the
 *     next byte, docs/module.md), only one without sessions is stopped,
 *   - deepens frozen computes to stopped after the idle timeout,
 *   - closes metering intervals that ran for meter_interval_s.
 * A backend with a watch of its own (backend.h) also tells it, between
 * ticks, which computes' instances changed: those are supervised at once.
 * It keeps nothing of its own between ticks: all it needs is in Redis. */
#include "core/scheduler.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/autoscale.h"
#include "core/lifecycle.h"
#include "store/store.h"
#include "util/ids.h"
#include "util/log.h"

static const config *cfg;
static pthread_t thread;
static atomic_bool stopping;
static atomic_bool leader;      /* this controller holds the scheduler lease */
/* told whether it holds it, every tick (main wires billing's exporters) */
static void (*lease_changed)(bool held);

/* Computes the backend's watch said changed, until the scheduler looks;
 * past the table's size a full tick does it. */
#define MAX_CHANGED 64
static pthread_mutex_t wake_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake_cv = PTHREAD_COND_INITIALIZER;
static char changed_ids[MAX_CHANGED][96];
static int nchanged;
static bool changed_overflow;

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

/* Sessions open, all of them quiet for the freeze time: asked of the
 * compute itself (only once the activity clock says it may be so). */
static bool sessions_quiet(const compute_rec *c, long long freeze_ms)
{
    compute_probe pr;

    return lifecycle_backend()->probe(c, &pr) == 0 && lifecycle_probe_quiet(&pr, freeze_ms);
}

static void consider(const compute_rec *c)
{
    project_rec p;
    long long idle_ms, freeze_ms;
    bool freezes;

    if (store_project_get(c->project, &p) != 0)
        return;
    if (c->state == ST_SUSPENDED && c->mode == MODE_FROZEN) {
        /* with sessions the drain thaws, looks and stops only if none is left */
        if (now_ms() - c->last_activity_ms >= (long long)p.idle_timeout_s * 1000)
            drain(c, MODE_STOPPED);
        return;
    }
    if (c->state != ST_RUNNING)
        return;
    freeze_ms = (long long)p.freeze_after_s * 1000;
    freezes = freeze_ms > 0 && lifecycle_can_freeze();
    /* from the last activity, or from the wake that made it run: a compute
     * just woken gets its full idle time for the client to log in */
    idle_ms = now_ms() - (c->last_activity_ms > c->state_since_ms ? c->last_activity_ms
                                                                   : c->state_since_ms);
    if (connections(c) > 0) {
        if (!freezes) {
            /* an open session is activity, however quiet: never stopped */
            lifecycle_touch(c->id);
        } else if (idle_ms >= freeze_ms) {
            /* a compute with work going on is asked again a freeze time
             * later, not every tick */
            if (sessions_quiet(c, freeze_ms))
                drain(c, MODE_FROZEN);
            else
                lifecycle_touch(c->id);
        }
        return;
    }
    if (freezes) {
        if (idle_ms >= freeze_ms)
            drain(c, MODE_FROZEN);
    } else if (idle_ms >= (long long)p.idle_timeout_s * 1000) {
        drain(c, MODE_STOPPED);
    }
}

/* The backend's watch (its own thread): remember, wake the scheduler. */
static void instance_changed(const char *cid)
{
    pthread_mutex_lock(&wake_mu);
    for (int i = 0; i < nchanged; i++)
        if (strcmp(changed_ids[i], cid) == 0)
            goto out;
    if (nchanged < MAX_CHANGED)
        snprintf(changed_ids[nchanged++], sizeof(changed_ids[0]), "%s", cid);
    else
        changed_overflow = true;
out:
    pthread_cond_signal(&wake_cv);
    pthread_mutex_unlock(&wake_mu);
}

/* Supervises the computes the watch named; true if it asks for a full tick. */
static bool supervise_changed(void)
{
    char ids[MAX_CHANGED][96];
    int n;
    bool full;

    pthread_mutex_lock(&wake_mu);
    n = nchanged;
    memcpy(ids, changed_ids, sizeof(ids[0]) * (size_t)n);
    full = changed_overflow;
    nchanged = 0;
    changed_overflow = false;
    pthread_mutex_unlock(&wake_mu);
    for (int i = 0; i < n && atomic_load(&leader); i++) {
        compute_rec c;
        if (store_compute_get(ids[i], &c) == 0)
            lifecycle_supervise(&c);
    }
    return full && atomic_load(&leader);
}

/* Waits until the next tick is due, supervising what the watch reports
 * meanwhile. */
static void wait_tick(int64_t due)
{
    for (;;) {
        int64_t left = due - mono_ms();
        struct timespec ts;

        if (atomic_load(&stopping) || left <= 0)
            return;
        if (left > 50)
            left = 50;   /* stopping is looked at this often */
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)left * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_mutex_lock(&wake_mu);
        if (nchanged == 0 && !changed_overflow)
            pthread_cond_timedwait(&wake_cv, &wake_mu, &ts);
        pthread_mutex_unlock(&wake_mu);
        if (supervise_changed())
            return;
    }
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
        autoscale_compute(&c);
    }
    ids_free(ids);
}

/* ---- the lease -----------------------------------------------------------
 * Every controller serves the API and wakes (the state machine in Redis
 * makes concurrent wakes safe); one at a time holds the lease and runs the
 * scheduler, reconcile and the billing exporters, so idle decisions, crash
 * handling and exports are not made twice.  A holder that dies stops
 * renewing; another takes over within lease_ttl_ms and reconciles first. */

static char holder[128];

/* Stable across restarts of the same controller (host name and API
 * address, unique among controllers sharing a Redis): a controller that
 * was killed and restarted takes its own lease back at once instead of
 * waiting out its TTL.  The pid is only for the log. */
static void holder_id(void)
{
    char host[64] = "";

    gethostname(host, sizeof(host) - 1);
    snprintf(holder, sizeof(holder), "%s:%s:%d", host, cfg->listen_host, cfg->listen_port);
}

bool scheduler_lease(bool starting)
{
    int rc;

    if (!holder[0])
        holder_id();
    rc = store_lease("scheduler", holder, cfg->lease_ttl_ms);
    if (rc == 2 || (rc == 1 && starting)) {
        log_info("this controller (%s, pid %d) holds the scheduler lease: reconciling", holder,
                 (int)getpid());
        lifecycle_reconcile();
    } else if (rc == 0 && atomic_load(&leader)) {
        log_warn("scheduler lease lost to another controller");
    }
    /* Redis unreachable: nobody can schedule anything; on its return a
     * renewal (1) keeps the lease without a second reconcile */
    atomic_store(&leader, rc >= 1);
    if (lease_changed)
        lease_changed(rc >= 1);
    return rc >= 1;
}

bool scheduler_is_leader(void)
{
    return atomic_load(&leader);
}

static void *scheduler_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&stopping)) {
        int64_t t0 = mono_ms();
        if (scheduler_lease(false))
            tick();
        wait_tick(t0 + cfg->scheduler_interval_ms);
    }
    return NULL;
}

void scheduler_init(const config *c, void (*on_lease)(bool held))
{
    cfg = c;
    lease_changed = on_lease;
}

int scheduler_start(const config *c)
{
    const backend *be = lifecycle_backend();

    cfg = c;
    atomic_store(&stopping, false);
    if (pthread_create(&thread, NULL, scheduler_main, NULL) != 0)
        return -1;
    if (be->watch && be->watch(instance_changed) < 0)
        log_warn("backend %s: no watch; crashes are noticed at the scheduler's tick", be->name);
    return 0;
}

void scheduler_stop(void)
{
    atomic_store(&stopping, true);
    pthread_join(thread, NULL);
    /* hand over at once instead of after lease_ttl_ms */
    if (atomic_load(&leader) && holder[0])
        store_lease_release("scheduler", holder);
    atomic_store(&leader, false);
    if (lease_changed)
        lease_changed(false);
}
