#include "core/lifecycle.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/private.h"
#include "util/ids.h"
#include "util/log.h"

const config *lc_cfg;
const backend *lc_be;

/* Waiters for a state change of any compute.  Transitions made by another
 * controller process are seen through the short timed wait. */
static pthread_mutex_t change_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t change_cv = PTHREAD_COND_INITIALIZER;

void lifecycle_init(const config *c, const backend *b)
{
    lc_cfg = c;
    lc_be = b;
}

const backend *lifecycle_backend(void) { return lc_be; }

static void changed(void)
{
    pthread_mutex_lock(&change_mu);
    pthread_cond_broadcast(&change_cv);
    pthread_mutex_unlock(&change_mu);
}

static void wait_change(int ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&change_mu);
    pthread_cond_timedwait(&change_cv, &change_mu, &ts);
    pthread_mutex_unlock(&change_mu);
}

static void set_err(op_error *e, err_kind kind, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_err(op_error *e, err_kind kind, const char *code, const char *fmt, ...)
{
    va_list ap;

    e->kind = kind;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}

/* What a failed store call tells the caller: the outcome is unknown. */
static void store_err(op_error *e)
{
    set_err(e, ERR_UNAVAILABLE, "store_unavailable", "state store unavailable");
}

/* The computes an actor of this process is moving through a transitional
 * state (creating: by project id), counted, so that supervision can tell an
 * orphan (a transition applied after its actor gave up on Redis) from work
 * in progress.  A full table only delays healing to the age bound. */
#define MAX_HELD 256
static struct {
    char id[96];
    int n;
} held[MAX_HELD];
static pthread_mutex_t held_mu = PTHREAD_MUTEX_INITIALIZER;

static void hold(const char *id, int delta)
{
    int slot = -1;

    pthread_mutex_lock(&held_mu);
    for (int i = 0; i < MAX_HELD; i++) {
        if (held[i].n > 0 && strcmp(held[i].id, id) == 0) {
            held[i].n += delta;
            slot = -2;
            break;
        }
        if (held[i].n == 0 && slot == -1)
            slot = i;
    }
    if (delta > 0 && slot >= 0) {
        snprintf(held[slot].id, sizeof(held[slot].id), "%s", id);
        held[slot].n = delta;
    }
    pthread_mutex_unlock(&held_mu);
}

bool lc_is_held(const char *id)
{
    bool found = false;

    pthread_mutex_lock(&held_mu);
    for (int i = 0; i < MAX_HELD && !found; i++)
        found = held[i].n > 0 && strcmp(held[i].id, id) == 0;
    pthread_mutex_unlock(&held_mu);
    return found;
}

int lifecycle_load(const char *cid, compute_rec *c, op_error *e)
{
    int rc;

    if (!compute_id_valid(cid)) {
        set_err(e, ERR_INVALID, "invalid_compute_id", "invalid compute id");
        return -1;
    }
    rc = store_compute_get(cid, c);
    if (rc != 0) {
        set_err(e, rc < 0 ? ERR_UNAVAILABLE : ERR_NOT_FOUND,
                rc < 0 ? "store_unavailable" : "unknown_compute",
                rc < 0 ? "state store unavailable" : "unknown compute");
        return -1;
    }
    return 0;
}

int lifecycle_load_project(const char *id, project_rec *p, op_error *e)
{
    int rc;

    if (!project_id_valid(id)) {
        set_err(e, ERR_INVALID, "invalid_project_id",
                "invalid project id (want 1-63 characters of a-z, 0-9 and -)");
        return -1;
    }
    rc = store_project_get(id, p);
    if (rc != 0) {
        if (rc < 0)
            set_err(e, ERR_UNAVAILABLE, "store_unavailable", "state store unavailable");
        else
            set_err(e, ERR_NOT_FOUND, "unknown_project", "unknown project '%s'", id);
        return -1;
    }
    return 0;
}

/* lc_move with a guard on the compute's activity (store_transition). */
static int move_guarded(const compute_rec *c, transition_id id, const compute_update *u,
                        long long activity_guard)
{
    const transition *t = transition_get(id);
    char cur[32];
    int rc = store_transition(c, t, u, activity_guard, cur);

    if (rc == 1 && t->to != ST_UNKNOWN) {
        log_info("compute %s: %s -> %s (%s)", c->id, cur, state_name(t->to), t->name);
        changed();
    }
    return rc;
}

int lc_move(const compute_rec *c, transition_id id, const compute_update *u)
{
    return move_guarded(c, id, u, -1);
}

/* A backend that cannot act (its engine is down) makes no records: the
 * caller is told to retry (ERR_UNAVAILABLE), no compute is failed. */
static bool backend_up(op_error *e)
{
    char why[256] = "";

    if (lc_be->available == NULL || lc_be->available(why, sizeof(why)))
        return true;
    set_err(e, ERR_UNAVAILABLE, "backend_unavailable", "compute backend %s unavailable: %s",
            lc_be->name, why);
    return false;
}

/* What the backend says of the compute's instance; a compute with none
 * recorded has none. */
inst_state lc_inst_status(const compute_rec *c)
{
    return c->instance[0] ? lc_be->status(c, NULL) : INST_GONE;
}

/* Polls ready() until the compute serves, at most start_timeout_ms; a server
 * that failed or vanished ends it at once.  0 serving, else -1 (err says
 * why). */
int lc_await_ready(const compute_rec *c, char *err, size_t errlen)
{
    int64_t t0 = mono_ms(), end = t0 + lc_cfg->start_timeout_ms;
    char why[512];

    for (;;) {
        int rc = lc_be->ready(c, err, errlen);
        if (rc <= 0)
            return rc;
        if (mono_ms() > end) {
            snprintf(why, sizeof(why), "%s", err);
            snprintf(err, errlen, "not ready after %d ms%s%s", lc_cfg->start_timeout_ms,
                     why[0] ? ": " : "", why);
            return -1;
        }
        /* a cold start takes tens of milliseconds: look often at first */
        usleep(mono_ms() - t0 < 200 ? 2000 : 10000);
    }
}

/* Launches the compute's server (the caller holds it in creating or
 * resuming) and records it the moment it exists (TR_LAUNCHED, which starts
 * metering): a controller that dies while it starts leaves a server its
 * successor finds.  Then waits until it serves; a server that does not is
 * stopped again.  c gets its instance and host. */
static int start_server(compute_rec *c, char *err, size_t errlen)
{
    instance inst = {0};
    compute_update u = {.set = U_INSTANCE | U_HOST | U_NEW_SERVER};
    char e2[256];

    if (lc_be->launch(c, &inst, err, errlen) < 0)
        return -1;
    snprintf(c->instance, sizeof(c->instance), "%s", inst.id);
    if (inst.host[0])
        snprintf(c->host, sizeof(c->host), "%s", inst.host);
    u.instance = c->instance;
    u.host = inst.host;
    lc_move(c, TR_LAUNCHED, &u);
    if (lc_await_ready(c, err, errlen) == 0)
        return 0;
    lc_be->stop(c, e2, sizeof(e2));
    return -1;
}

bool lifecycle_backend_available(char *why, size_t len)
{
    return lc_be->available == NULL || lc_be->available(why, len);
}

const char *lifecycle_backend_name(void)
{
    return lc_be->name;
}

bool lifecycle_can_freeze(void)
{
    return lc_be->can_freeze;
}

void lifecycle_touch(const char *cid)
{
    compute_update u = {.set = U_ACTIVITY, .last_activity_ms = now_ms()};

    store_compute_update(cid, &u);
}

/* The final resuming -> running; a failure leaves its error in e (the server
 * runs: supervision adopts it if the store took the move after all). */
static int resumed(const compute_rec *c, const compute_update *u, op_error *e)
{
    int rc = lc_move(c, TR_RESUMED, u);

    if (rc == 1)
        return 0;
    if (rc < 0)
        set_err(e, ERR_UNAVAILABLE, "store_unavailable",
                "state store unavailable: compute %s not marked running", c->id);
    else
        set_err(e, ERR_BUSY, "busy", "compute %s changed state while resuming", c->id);
    return -1;
}

/* The caller holds the compute in `resuming`.  Thaws or starts it and moves
 * it to running; on failure back to suspended (stopped), so a later wake
 * tries again. */
static int do_resume(compute_rec *c, const char **cold, op_error *e)
{
    char err[512] = "";
    inst_state st = lc_inst_status(c);
    compute_update awake = {.set = U_MODE | U_ERROR, .mode = MODE_NONE, .error = ""};

    if (st == INST_FROZEN || (st == INST_RUNNING && c->mode == MODE_FROZEN)) {
        if (lc_be->thaw && lc_be->thaw(c, err, sizeof(err)) == 0 &&
            lc_be->ready(c, err, sizeof(err)) == 0) {
            *cold = "thawed";
            store_counter_incr("thaws_total", 1);
            return resumed(c, &awake, e);
        }
        log_warn("compute %s: thaw failed (%s), restarting it", c->id, err);
        lc_be->stop(c, err, sizeof(err));
    } else if (st == INST_RUNNING && lc_be->ready(c, err, sizeof(err)) == 0) {
        /* already serving (e.g. adopted half-way through a resume) */
        *cold = "running";
        return resumed(c, &awake, e);
    } else if (st == INST_STARTING && lc_await_ready(c, err, sizeof(err)) == 0) {
        /* an engine that was starting it already (a pod being scheduled) */
        *cold = "started";
        return resumed(c, &awake, e);
    }
    if (start_server(c, err, sizeof(err)) == 0) {
        awake.set |= U_INSTANCE | U_HOST;
        awake.instance = c->instance;
        awake.host = c->host;
        *cold = "started";
        store_counter_incr("starts_total", 1);
        return resumed(c, &awake, e);
    }
    log_error("compute %s: start failed: %s", c->id, err);
    store_counter_incr("start_failures_total", 1);
    {
        compute_update u = {.set = U_MODE | U_ERROR, .mode = MODE_STOPPED, .error = err};
        lc_move(c, TR_START_FAILED, &u);
    }
    set_err(e, ERR_UNAVAILABLE, "wake_failed", "compute %s failed to start: %s", c->id, err);
    return -1;
}

static void fill_result(const compute_rec *c, wake_result *out, const char *cold)
{
    snprintf(out->host, sizeof(out->host), "%s", c->host);
    out->port = c->port;
    snprintf(out->compute_id, sizeof(out->compute_id), "%s", c->id);
    out->cold_start = cold;
    out->max_sessions = (c->size_cu > 0 ? c->size_cu : 1) * lc_cfg->cu_max_connections;
}

/* A wake that has to start or thaw the compute takes a token of the
 * project's bucket (shared by every controller, in the store); a wake of a
 * running compute is cheap and takes none, nor do the waiters of a start
 * in progress.  So a flood of handshakes cannot cycle a compute.  1 taken
 * (give it back if the start was another actor's), 0 no limit or the store
 * could not say (the transition that follows needs the store anyway), -1
 * empty: e says when to retry. */
static int take_wake_token(const char *project, op_error *e)
{
    int retry_ms = 0, rc;

    if (project == NULL || lc_cfg->wake_rate_per_min <= 0)
        return 0;
    rc = store_rate_take(project, lc_cfg->wake_rate_per_min, lc_cfg->wake_burst, &retry_ms);
    if (rc != 0)
        return rc > 0 ? 1 : 0;
    store_counter_incr("wakes_rate_limited_total", 1);
    set_err(e, ERR_RATE_LIMITED, "rate_limited",
            "project '%s' is waking too often (%d starts per minute, burst %d); retry in %d ms",
            project, lc_cfg->wake_rate_per_min, lc_cfg->wake_burst, retry_ms);
    e->retry_ms = retry_ms > 0 ? retry_ms : 1;
    return -1;
}

/* Makes the compute reachable.  Every concurrent caller loops on the stored
 * state; the one whose suspended->resuming transition applies does the work,
 * the others wait for `running` and return the same address.  With a
 * project (the proxy's wakes), a start or thaw is rate limited. */
static int wake_compute(const char *cid, const char *limited, wake_result *out, op_error *e)
{
    int64_t t0 = mono_ms(), deadline = t0 + lc_cfg->wake_timeout_ms;
    const char *cold = NULL;

    for (;;) {
        compute_rec c;
        int rc = store_compute_get(cid, &c);

        if (rc != 0) {
            set_err(e, rc < 0 ? ERR_UNAVAILABLE : ERR_NOT_FOUND,
                    rc < 0 ? "store_unavailable" : "no_compute",
                    rc < 0 ? "state store unavailable" : "the project has no compute");
            return -1;
        }
        switch (c.state) {
        case ST_RUNNING:
            /* no touch: a wake is not activity (DESIGN.md §4) -- an
             * unauthenticated client, or one with a wrong password, must
             * not keep a compute awake.  The sessions it leads to are, as
             * the plugin reports them; the scheduler's idle clock starts no
             * earlier than the compute entered `running`. */
            fill_result(&c, out, cold ? cold : "running");
            return 0;
        case ST_SUSPENDED:
        case ST_FAILED: {
            compute_update u = {.set = U_WAKE, .wake_requested_ms = 0};
            int token;
            if (!backend_up(e))
                return -1;
            token = take_wake_token(limited, e);
            if (token < 0)
                return -1;
            /* only the actor holds the compute, not the waiters */
            hold(cid, 1);
            if (lc_move(&c, TR_WAKE, &u) == 1) {
                c.state = ST_RESUMING;
                rc = do_resume(&c, &cold, e);
                hold(cid, -1);
                if (rc < 0)
                    return -1;
                continue;
            }
            hold(cid, -1);
            if (token > 0)
                store_rate_give(limited, lc_cfg->wake_rate_per_min, lc_cfg->wake_burst);
            break;
        }
        case ST_SUSPENDING: {
            /* tell the draining scheduler a client is coming; it cancels */
            compute_update u = {.set = U_WAKE, .wake_requested_ms = now_ms()};
            store_compute_update(cid, &u);
            wait_change(5);
            break;
        }
        case ST_CREATING:
        case ST_RESUMING:
            wait_change(5);
            break;
        case ST_DELETING:
        default:
            set_err(e, ERR_NOT_FOUND, "unknown_project", "the compute is being deleted");
            return -1;
        }
        if (mono_ms() > deadline) {
            set_err(e, ERR_UNAVAILABLE, "wake_timeout", "compute %s not ready after %d ms", cid,
                    lc_cfg->wake_timeout_ms);
            return -1;
        }
    }
}

int lifecycle_wake(const char *project, wake_result *out, op_error *e)
{
    project_rec p;
    int64_t t0 = mono_ms();
    int rc;

    if (lifecycle_load_project(project, &p, e) < 0)
        return -1;
    if (p.compute_id[0] == '\0') {
        set_err(e, ERR_NOT_FOUND, "no_compute", "project '%s' has no compute", project);
        return -1;
    }
    store_counter_incr("wakes_total", 1);
    out->freeze_after_ms = lc_be->can_freeze ? (long long)p.freeze_after_s * 1000 : 0;
    rc = wake_compute(p.compute_id, project, out, e);
    out->ms = (double)(mono_ms() - t0);
    if (rc < 0)
        store_counter_incr("wake_errors_total", 1);
    else
        store_hist_observe("wake_ms", out->ms);
    return rc;
}

int lifecycle_resume(const char *cid, wake_result *out, op_error *e)
{
    compute_rec c;

    if (lifecycle_load(cid, &c, e) < 0)
        return -1;
    return wake_compute(cid, NULL, out, e);
}

/* Bills the open interval at the size it ran at, then meters the new one. */
static int resize_meter(const compute_rec *c, int cu)
{
    compute_update u = {.set = U_SIZE, .size_cu = cu};

    return lc_move(c, TR_RESIZE, &u);
}

int lifecycle_resize(const char *cid, int cu, op_error *e)
{
    compute_rec c;
    project_rec p;
    char err[512] = "";
    int rc = -1;

    store_err(e);
    if (lifecycle_load(cid, &c, e) < 0 || lifecycle_load_project(c.project, &p, e) < 0)
        return -1;
    if (cu < p.min_cu || cu > p.max_cu) {
        set_err(e, ERR_INVALID, "invalid_field", "\"cu\" must be within the project's %d..%d",
                p.min_cu, p.max_cu);
        return -1;
    }
    if (c.state != ST_RUNNING) {
        set_err(e, ERR_CONFLICT, "not_running",
                "compute %s is %s; only a running compute is resized", cid, state_name(c.state));
        return -1;
    }
    if (!backend_up(e))
        return -1;
    hold(cid, 1);
    if (lc_be->resize(&c, cu, err, sizeof(err)) < 0) {
        set_err(e, ERR_CONFLICT, "resize_failed", "compute %s: %s", cid, err);
    } else if (resize_meter(&c, cu) != 1) {
        /* the limits changed; the meter still runs at the old size */
        set_err(e, ERR_UNAVAILABLE, "store_unavailable", "compute %s resized but not recorded",
                cid);
    } else {
        log_info("compute %s: resized %d -> %d CU", cid, c.size_cu, cu);
        rc = 0;
    }
    hold(cid, -1);
    return rc;
}

static int create_compute_record(const project_spec *spec, bool attach, compute_rec *c,
                                 char token[65], op_error *e)
{
    project_rec p = {0};
    char hex[13], hash[65];
    int rc;

    memset(c, 0, sizeof(*c));
    if (random_hex(hex, 3) < 0 || random_hex(token, 32) < 0) {
        set_err(e, ERR_INTERNAL, "internal", "no randomness");
        return -1;
    }
    snprintf(c->id, sizeof(c->id), "%s-%s", spec->id, hex);
    snprintf(c->project, sizeof(c->project), "%s", spec->id);
    snprintf(c->host, sizeof(c->host), "%s", lc_cfg->compute_host);
    c->size_cu = spec->min_cu;
    sha256_hex(token, hash);
    memcpy(c->token_hash, hash, sizeof(hash));

    snprintf(p.id, sizeof(p.id), "%s", spec->id);
    snprintf(p.compute_id, sizeof(p.compute_id), "%s", c->id);
    p.created_ms = now_ms();
    p.idle_timeout_s = spec->idle_timeout_s;
    p.freeze_after_s = spec->freeze_after_s;
    p.min_cu = spec->min_cu;
    p.max_cu = spec->max_cu;
    rc = store_project_create(&p, c, attach);
    if (rc == 1) {
        set_err(e, ERR_CONFLICT, attach ? "compute_exists" : "project_exists",
                attach ? "project '%s' already has a compute" : "project '%s' already exists",
                spec->id);
        return -1;
    }
    if (rc == 3) {
        set_err(e, ERR_NOT_FOUND, "unknown_project", "unknown project '%s'", spec->id);
        return -1;
    }
    if (rc == 2) {
        set_err(e, ERR_UNAVAILABLE, "no_ports", "no free compute port in %d-%d",
                lc_cfg->compute_port_min, lc_cfg->compute_port_max);
        return -1;
    }
    if (rc < 0 || store_compute_get(c->id, c) != 0) {
        /* supervision fails a record left in `creating` */
        store_err(e);
        return -1;
    }
    return 0;
}

/* The tenant's administrator: a database owner, not a server owner
 * (DESIGN.md §4; each privilege left out, and why: docs/tenancy.md).
 *  - everything on every database (the `%` pattern), without GRANT OPTION:
 *    a grant option on a pattern would let it re-grant the pattern, which
 *    also matches `mysql`, to an account of its own;
 *  - on `mysql` an exact-name grant, which MariaDB matches before the
 *    pattern, keeps it to reading (writing mysql.* is granting oneself
 *    anything);
 *  - GRANT OPTION on the project's database by name and on every database
 *    named `<project>_...` (the pattern `<project>\_%`, underscore escaped:
 *    a pattern that can never match a system schema, so re-granting it or
 *    any narrower pattern reaches the tenant's databases only);
 *  - globally: user management and a view of its own server's sessions and
 *    databases -- nothing that names a file, loads code, or stops or
 *    reconfigures the server, and no global GRANT OPTION (it would combine
 *    with the pattern).
 * Then the controller's own account (the template's root, unix_socket
 * only) gives up everything but PROCESS and reading mysql.event, which its
 * drain check needs (util/sql.c): no
 * account on the compute holds more than the tenant, so none is worth taking
 * over (CREATE USER can alter any account). */
static int grant_owner(const compute_rec *c, const char *user, const char *password,
                       const char *project, char *err, size_t errlen)
{
    char q[16][512];
    int n = 0;

    snprintf(q[n++], sizeof(q[0]), "CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", user, password);
    snprintf(q[n++], sizeof(q[0]),
             "GRANT CREATE USER, PROCESS, SHOW DATABASES, BINLOG MONITOR ON *.* TO '%s'@'%%'", user);
    snprintf(q[n++], sizeof(q[0]), "GRANT ALL PRIVILEGES ON `%%`.* TO '%s'@'%%'", user);
    snprintf(q[n++], sizeof(q[0]), "GRANT SELECT ON `mysql`.* TO '%s'@'%%'", user);
    snprintf(q[n++], sizeof(q[0]), "GRANT ALL PRIVILEGES ON `%s`.* TO '%s'@'%%' WITH GRANT OPTION",
             project, user);
    snprintf(q[n++], sizeof(q[0]),
             "GRANT ALL PRIVILEGES ON `%s\\_%%`.* TO '%s'@'%%' WITH GRANT OPTION", project, user);
    /* a database named after the project, so that routing by database name
     * (`mariadb -D <project>`) finds one; the id is [a-z0-9-], safe quoted */
    snprintf(q[n++], sizeof(q[0]), "CREATE DATABASE IF NOT EXISTS `%s`", project);
    /* PROCESS through a default role: it has to be granted before this
     * account gives up the right to grant */
    snprintf(q[n++], sizeof(q[0]), "CREATE ROLE IF NOT EXISTS smdb_monitor");
    snprintf(q[n++], sizeof(q[0]), "GRANT PROCESS ON *.* TO smdb_monitor");
    /* whether events are enabled: they keep a compute from freezing */
    snprintf(q[n++], sizeof(q[0]), "GRANT SELECT ON mysql.event TO smdb_monitor");
    snprintf(q[n++], sizeof(q[0]), "SET DEFAULT ROLE smdb_monitor");
    /* not "REVOKE ALL PRIVILEGES, GRANT OPTION FROM ...": that form takes
     * the role away too (the default role then never activates, and the
     * drain check saw its own session only).  The template's PROXY grant
     * (on ''@'') cannot be revoked by name in MariaDB 10.11: its row goes. */
    snprintf(q[n++], sizeof(q[0]), "DELETE FROM mysql.proxies_priv WHERE Proxied_user = ''");
    snprintf(q[n++], sizeof(q[0]), "FLUSH PRIVILEGES");
    snprintf(q[n++], sizeof(q[0]), "REVOKE ALL PRIVILEGES ON *.* FROM CURRENT_USER");
    snprintf(q[n++], sizeof(q[0]), "REVOKE GRANT OPTION ON *.* FROM CURRENT_USER");
    for (int i = 0; i < n; i++)
        if (lc_be->admin_sql(c, q[i], err, errlen) < 0)
            return -1;
    return 0;
}

static int create_compute(const project_spec *spec, bool attach, create_result *out,
                          op_error *e)
{
    compute_rec c;
    char token[65], err[512] = "", e2[256];

    if (!backend_up(e))
        return -1;
    if (create_compute_record(spec, attach, &c, token, e) < 0)
        return -1;
    snprintf(out->compute_id, sizeof(out->compute_id), "%s", c.id);
    snprintf(out->admin_user, sizeof(out->admin_user), "admin");
    if (random_alnum(out->admin_password, 24) < 0)
        goto fail;
    if (lc_be->create(&c, token, err, sizeof(err)) < 0 || start_server(&c, err, sizeof(err)) < 0)
        goto fail;
    /* the project's own administrator; its password is returned once and
     * stored nowhere but in the compute (as MariaDB's hash) */
    if (grant_owner(&c, out->admin_user, out->admin_password, spec->id, err, sizeof(err)) < 0)
        goto fail;
    {
        compute_update u = {.set = U_INSTANCE | U_HOST, .instance = c.instance, .host = c.host};
        int rc = lc_move(&c, TR_CREATED, &u);
        if (rc != 1) {
            snprintf(err, sizeof(err), "%s", rc < 0 ? "state store unavailable"
                                                    : "compute changed state during creation");
            goto fail;
        }
    }
    store_counter_incr("creates_total", 1);
    memset(token, 0, sizeof(token));
    return 0;

fail:
    memset(token, 0, sizeof(token));
    log_error("compute %s: creation failed: %s", c.id, err);
    if (c.instance[0])
        lc_be->stop(&c, e2, sizeof(e2));
    {
        compute_update u = {.set = U_ERROR, .error = err};
        lc_move(&c, TR_CREATE_FAILED, &u);
    }
    set_err(e, ERR_INTERNAL, "create_failed", "compute creation failed: %s", err);
    return -1;
}

int lifecycle_create(const project_spec *spec, bool attach, create_result *out, op_error *e)
{
    int rc;

    store_err(e);
    hold(spec->id, 1);
    rc = create_compute(spec, attach, out, e);
    hold(spec->id, -1);
    return rc;
}

/* Removes the compute's records; the compute must be in `deleting`. */
int lc_finish_delete(compute_rec *c, op_error *e)
{
    char err[512] = "";

    if (lc_be->destroy(c, err, sizeof(err)) < 0) {
        set_err(e, ERR_INTERNAL, "delete_failed", "%s", err);
        return -1;
    }
    if (store_compute_remove(c) < 0) {
        store_err(e);
        return -1;
    }
    changed();
    return 0;
}

int lifecycle_delete_compute(const char *cid, op_error *e)
{
    compute_rec c;

    if (lifecycle_load(cid, &c, e) < 0)
        return -1;
    if (c.state != ST_DELETING) {
        int rc = lc_move(&c, TR_DELETE, NULL);
        if (rc < 0) {
            store_err(e);
            return -1;
        }
        if (rc == 0) {
            set_err(e, ERR_BUSY, "busy", "compute %s is %s; try again", cid, state_name(c.state));
            return -1;
        }
    }
    return lc_finish_delete(&c, e);
}

int lifecycle_delete_project(const char *project, op_error *e)
{
    project_rec p;

    if (lifecycle_load_project(project, &p, e) < 0)
        return -1;
    if (p.compute_id[0] && lifecycle_delete_compute(p.compute_id, e) < 0 &&
        e->kind != ERR_NOT_FOUND)
        return -1;
    if (store_project_remove(project) < 0) {
        store_err(e);
        return -1;
    }
    return 0;
}

/* The proxy sees a session's last answer a little after the server sent
 * it (it relays it, on a busy machine late): the server's idle time must
 * exceed the freeze time by this much before the proxy's "younger than the
 * freeze time: not frozen" holds for certain. */
#define FREEZE_MARGIN_MS 1000

bool lifecycle_probe_quiet(const compute_probe *pr, long long freeze_ms)
{
    return pr->busy_sessions == 0 && pr->open_trx == 0 && pr->server_work == 0 &&
           (pr->client_sessions == 0 || pr->min_idle_ms >= freeze_ms + FREEZE_MARGIN_MS);
}

/* The direct check of the safe-suspend rule, on the compute and in the
 * store: no wake and no activity since we looked, and no client session --
 * or, freezing (freeze_ms > 0), sessions that are all quiet. */
static bool still_idle(const compute_rec *before, long long freeze_ms)
{
    compute_rec now;
    compute_probe pr;

    if (store_compute_get(before->id, &now) != 0)
        return false;
    if (now.wake_requested_ms > 0 || now.last_activity_ms > before->last_activity_ms)
        return false;
    if (freeze_ms <= 0 && now.act_received_ms > 0 && now.act_connections > 0)
        return false;
    if (lc_be->probe(&now, &pr) < 0)
        return false;
    if (pr.client_sessions == 0)
        return true;
    return freeze_ms > 0 && lifecycle_probe_quiet(&pr, freeze_ms);
}

/* A frozen compute may have client sessions: it is never stopped blind.
 * Thaw it, let the server reap the sessions whose clients left while it was
 * frozen, and look.  1: no client
 * session, stop it; 0: sessions (it is frozen again); -1: error in err. */
static int thaw_and_look(const compute_rec *c, char *err, size_t errlen)
{
    compute_probe pr = {.client_sessions = 1};

    if (lc_be->thaw(c, err, errlen) < 0 || lc_be->ready(c, err, errlen) != 0)
        return -1;
    /* a closed client's session ends when its thread reads the EOF, a few
     * milliseconds after the thaw */
    for (int i = 0; i < 5; i++) {
        if (lc_be->probe(c, &pr) == 0 && pr.client_sessions == 0)
            return 1;
        usleep(100000);
    }
    if (lc_be->freeze(c, err, errlen) < 0)
        return -1;
    return 0;
}

static int suspend_compute(const char *cid, suspend_mode mode, suspend_kind kind,
                           long long activity_seen, op_error *e)
{
    bool drain = kind == SUSPEND_IDLE;
    compute_rec c;
    project_rec p;
    char err[512] = "";
    bool from_frozen;
    long long freeze_ms = 0;
    int rc;

    if (mode == MODE_FROZEN && !lc_be->can_freeze) {
        set_err(e, ERR_INVALID, "invalid_field",
                "the %s backend has no freeze tier: suspend with \"mode\": \"stop\"", lc_be->name);
        return -1;
    }
    if (lifecycle_load(cid, &c, e) < 0)
        return -1;
    /* the scheduler freezes with sessions open (all quiet for the freeze
     * time); an operator's freeze and every stop keep the zero-session rule */
    if (drain && mode == MODE_FROZEN && store_project_get(c.project, &p) == 0)
        freeze_ms = (long long)p.freeze_after_s * 1000;
    from_frozen = c.state == ST_SUSPENDED && c.mode == MODE_FROZEN && mode == MODE_STOPPED;
    if (c.state == ST_SUSPENDED && !from_frozen) {
        set_err(e, ERR_CONFLICT, "already_suspended", "compute %s is already suspended (%s)", cid,
                mode_name(c.mode));
        return -1;
    }
    {
        /* the scheduler's drain only while nothing happened since it looked */
        compute_update u = {.set = U_WAKE, .wake_requested_ms = 0};
        rc = move_guarded(&c, from_frozen ? TR_DEEPEN : TR_DRAIN, &u, drain ? activity_seen : -1);
        if (rc != 1) {
            if (drain)
                return 0;
            if (rc < 0)
                store_err(e);
            else
                set_err(e, ERR_BUSY, "busy", "compute %s is %s", cid, state_name(c.state));
            return -1;
        }
        log_info("compute %s: suspending to %s", cid, mode_name(mode));
    }
    store_compute_get(cid, &c);

    if (drain && !from_frozen) {
        /* Wait out the proxy's address cache, so that every new client must
         * come through a wake (which we see), then look at the compute
         * itself.  A wake during the wait cancels at once. */
        int64_t end = mono_ms() + lc_cfg->drain_wait_ms;
        bool idle = true;
        while (mono_ms() < end) {
            compute_rec now;
            if (store_compute_get(cid, &now) != 0 || now.wake_requested_ms > 0) {
                idle = false;
                break;
            }
            usleep(20000);
        }
        if (!idle || !still_idle(&c, freeze_ms)) {
            compute_update u = {.set = U_WAKE, .wake_requested_ms = 0};
            lc_move(&c, TR_UNDRAIN, &u);
            store_counter_incr("suspends_cancelled_total", 1);
            return 0;
        }
    }

    if (kind == SUSPEND_AFTER_TTL && !from_frozen) {
        /* an operator's suspend: no idle check, but no proxy may still hold
         * the address when the server goes (wakes now wait, then resume it) */
        usleep((useconds_t)lc_cfg->drain_wait_ms * 1000);
    }
    /* the plugin's last report before the freeze may be stale or lost:
     * the compute itself is asked, thawed for the moment it takes */
    if (drain && from_frozen) {
        rc = thaw_and_look(&c, err, sizeof(err));
        if (rc == 0) {
            /* sessions stay open: frozen again, and looked at again only
             * after another idle timeout */
            lc_move(&c, TR_UNDEEPEN, NULL);
            lifecycle_touch(cid);
            log_info("compute %s: frozen with client sessions open: not stopped", cid);
            return 0;
        }
        if (rc < 0) {
            /* a server that cannot be thawed serves no session: a wake
             * would restart it too (do_resume) */
            log_warn("compute %s: thaw before stopping failed (%s): stopping it", cid, err);
            rc = 1;
        }
    }
    if (rc >= 0)
        rc = mode == MODE_FROZEN ? lc_be->freeze(&c, err, sizeof(err))
                                 : lc_be->stop(&c, err, sizeof(err));
    if (rc < 0) {
        compute_update u = {.set = U_ERROR, .error = err};
        log_error("compute %s: suspend failed: %s", cid, err);
        lc_move(&c, from_frozen ? TR_UNDEEPEN : TR_UNDRAIN, &u);
        set_err(e, ERR_INTERNAL, "suspend_failed", "%s", err);
        return -1;
    }
    {
        compute_update u = {.set = U_MODE | U_WAKE, .mode = mode, .wake_requested_ms = 0};
        if (lc_move(&c, TR_SUSPENDED, &u) < 0) {
            /* the server is down; supervision settles the record */
            store_err(e);
            return -1;
        }
    }
    store_counter_incr(mode == MODE_FROZEN ? "suspends_frozen_total" : "suspends_stopped_total", 1);
    return 1;
}

int lifecycle_suspend(const char *cid, suspend_mode mode, suspend_kind kind,
                      long long activity_seen, op_error *e)
{
    int rc;

    store_err(e);
    hold(cid, 1);
    rc = suspend_compute(cid, mode, kind, activity_seen, e);
    hold(cid, -1);
    return rc;
}
