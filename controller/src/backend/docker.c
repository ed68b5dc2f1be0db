/* The docker backend: every compute is a container of the compute image
 * (images/compute) on docker_network, with its datadir in a named volume,
 * driven through the Docker Engine API (docker_api.c): Docker 20.10+ or
 * podman 4's compatibility service.  docs/docker-backend.md.
 *
 * The backend keeps no state of its own.  What it needs to re-create a
 * compute lives on the engine: the volume carries the compute's report token
 * and the password of the controller's account on the compute as labels, so
 * a container removed behind the controller's back comes back from its
 * volume, and a restarted controller finds everything by name.  (Only who
 * holds the engine socket reads labels, and that is root on the host.)
 *
 * Names: container <prefix>-<compute id>, volume <prefix>-<compute id>-data,
 * label smdb.prefix=<prefix> on every object, smdb.compute on both. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/docker_api.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/rfc3339.h"
#include "util/sql.h"

#define ADMIN_USER "smdb_admin"
#define CALL_MS 30000L

static const config *cfg;

typedef struct {
    char ctr[160];
    char vol[176];
} names;

static void name_of(const compute_rec *c, names *n)
{
    snprintf(n->ctr, sizeof(n->ctr), "%s-%s", cfg->docker_prefix, c->id);
    snprintf(n->vol, sizeof(n->vol), "%s-%s-data", cfg->docker_prefix, c->id);
}

/* One call; the HTTP status, or -1 if the engine was not reached (err
 * holds why).  The reply is the caller's to free when it asked for it. */
static long call(const char *method, const char *path, json_t *body, long timeout_ms,
                 json_t **reply, char *err, size_t errlen)
{
    dk_reply r;

    if (dk_call(cfg->docker_socket, method, path, body, timeout_ms, &r) < 0) {
        snprintf(err, errlen, "%s", r.err);
        return -1;
    }
    if (r.status >= 300)
        snprintf(err, errlen, "%s", r.err);
    if (reply)
        *reply = r.body;
    else
        dk_reply_free(&r);
    return r.status;
}

/* ---- addresses and passwords -------------------------------------------
 * ready() and probe() run every scheduler tick: the running container's
 * address and the admin password are remembered from its last inspect. */

typedef struct ent {
    struct ent *next;
    char cid[96];
    char host[64];
    char password[64];
    int64_t checked_ms;       /* d_ready's last look at the container */
} ent;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static ent *cache;

static void cache_put(const char *cid, const char *host, const char *password)
{
    ent *e;

    pthread_mutex_lock(&cache_lock);
    for (e = cache; e && strcmp(e->cid, cid) != 0; e = e->next)
        ;
    if (e == NULL && (e = calloc(1, sizeof(*e))) != NULL) {
        snprintf(e->cid, sizeof(e->cid), "%s", cid);
        e->next = cache;
        cache = e;
    }
    if (e) {
        snprintf(e->host, sizeof(e->host), "%s", host);
        snprintf(e->password, sizeof(e->password), "%s", password);
    }
    pthread_mutex_unlock(&cache_lock);
}

static bool cache_get(const char *cid, char host[64], char password[64])
{
    bool found = false;

    pthread_mutex_lock(&cache_lock);
    for (ent *e = cache; e; e = e->next)
        if (strcmp(e->cid, cid) == 0 && e->host[0]) {
            memcpy(host, e->host, 64);
            memcpy(password, e->password, 64);
            found = true;
            break;
        }
    pthread_mutex_unlock(&cache_lock);
    return found;
}

/* true (and the time noted) if the compute's container was last looked at
 * more than ms ago: readiness polls every few ms, inspecting it that often
 * would load the engine. */
static bool cache_due(const char *cid, int ms)
{
    int64_t now = mono_ms();
    bool due = true;

    pthread_mutex_lock(&cache_lock);
    for (ent *e = cache; e; e = e->next)
        if (strcmp(e->cid, cid) == 0) {
            due = now - e->checked_ms >= ms;
            if (due)
                e->checked_ms = now;
        }
    pthread_mutex_unlock(&cache_lock);
    return due;
}

static void cache_forget(const char *cid)
{
    pthread_mutex_lock(&cache_lock);
    for (ent *e = cache; e; e = e->next)
        if (strcmp(e->cid, cid) == 0)
            e->host[0] = '\0';
    pthread_mutex_unlock(&cache_lock);
}

/* ---- inspect ------------------------------------------------------------ */

typedef struct {
    bool exists, running, paused;
    char id[128];
    long long started_ms;
    char host[64];
    char password[64];
} ctr_state;

static long long started_ms(const char *s)
{
    int64_t ms;

    /* an engine's zero time ("0001-01-01T00:00:00Z", never started) is
     * outside what rfc3339_parse takes: 0 */
    return s && rfc3339_parse(s, &ms) == 0 ? (long long)ms : 0;
}

static const char *env_value(json_t *env, const char *key)
{
    size_t i, n = strlen(key);
    json_t *v;

    json_array_foreach(env, i, v) {
        const char *s = json_string_value(v);
        if (s && strncmp(s, key, n) == 0 && s[n] == '=')
            return s + n + 1;
    }
    return NULL;
}

/* 0 (st filled, st->exists false if there is no such container), -1 if
 * the engine could not tell. */
static int inspect(const compute_rec *c, ctr_state *st, char *err, size_t errlen)
{
    names n;
    char path[224];
    json_t *doc = NULL, *state, *net;
    long s;

    memset(st, 0, sizeof(*st));
    name_of(c, &n);
    snprintf(path, sizeof(path), "/containers/%s/json", n.ctr);
    s = call("GET", path, NULL, CALL_MS, &doc, err, errlen);
    if (s == 404) {
        json_decref(doc);
        return 0;
    }
    if (s != 200 || doc == NULL) {
        json_decref(doc);
        if (s > 0 && !err[0])
            snprintf(err, errlen, "inspect %s: HTTP %ld", n.ctr, s);
        return -1;
    }
    st->exists = true;
    state = json_object_get(doc, "State");
    st->running = json_is_true(json_object_get(state, "Running"));
    st->paused = json_is_true(json_object_get(state, "Paused"));
    snprintf(st->id, sizeof(st->id), "%s", json_string_value(json_object_get(doc, "Id")) ?: "");
    st->started_ms = started_ms(json_string_value(json_object_get(state, "StartedAt")));
    net = json_object_get(json_object_get(json_object_get(doc, "NetworkSettings"), "Networks"),
                          cfg->docker_network);
    snprintf(st->host, sizeof(st->host), "%s",
             json_string_value(json_object_get(net, "IPAddress")) ?: "");
    snprintf(st->password, sizeof(st->password), "%s",
             env_value(json_object_get(json_object_get(doc, "Config"), "Env"),
                       "SMDB_ADMIN_PASSWORD") ?: "");
    json_decref(doc);
    return 0;
}

/* Where the running compute answers and the admin password; -1 if it does
 * not run. */
static int reach(const compute_rec *c, char host[64], char password[64])
{
    ctr_state st;
    char err[256] = "";

    if (cache_get(c->id, host, password))
        return 0;
    if (inspect(c, &st, err, sizeof(err)) < 0 || !st.running || !st.host[0])
        return -1;
    cache_put(c->id, st.host, st.password);
    memcpy(host, st.host, 64);
    memcpy(password, st.password, 64);
    return 0;
}

/* ---- objects ------------------------------------------------------------ */

static json_t *labels(const compute_rec *c)
{
    return json_pack("{s:s, s:s, s:s}", "smdb.prefix", cfg->docker_prefix, "smdb.compute", c->id,
                     "smdb.project", c->project);
}

static int ensure_network(char *err, size_t errlen)
{
    char path[128];
    long s;

    snprintf(path, sizeof(path), "/networks/%s", cfg->docker_network);
    s = call("GET", path, NULL, CALL_MS, NULL, err, errlen);
    if (s == 200)
        return 0;
    if (s != 404)
        return -1;
    json_t *body = json_pack("{s:s, s:s, s:b, s:{s:s}}", "Name", cfg->docker_network, "Driver",
                             "bridge", "CheckDuplicate", 1, "Labels", "smdb.prefix",
                             cfg->docker_prefix);
    err[0] = '\0';
    s = call("POST", "/networks/create", body, CALL_MS, NULL, err, errlen);
    json_decref(body);
    /* 409: another controller made it first */
    if (s == 201 || s == 200 || s == 409)
        return 0;
    log_error("docker: cannot create network %s: %s", cfg->docker_network, err);
    return -1;
}

/* The compute's secrets from its volume's labels; 1 if the volume does not
 * exist. */
static int volume_secrets(const names *n, char token[128], char password[64], char *err,
                          size_t errlen)
{
    char path[224];
    json_t *doc = NULL, *l;
    long s;

    snprintf(path, sizeof(path), "/volumes/%s", n->vol);
    s = call("GET", path, NULL, CALL_MS, &doc, err, errlen);
    if (s == 404) {
        json_decref(doc);
        return 1;
    }
    if (s != 200 || doc == NULL) {
        json_decref(doc);
        return -1;
    }
    l = json_object_get(doc, "Labels");
    snprintf(token, 128, "%s", json_string_value(json_object_get(l, "smdb.report-token")) ?: "");
    snprintf(password, 64, "%s",
             json_string_value(json_object_get(l, "smdb.admin-password")) ?: "");
    json_decref(doc);
    if (!password[0]) {
        snprintf(err, errlen, "volume %s has no admin password label", n->vol);
        return -1;
    }
    return 0;
}

static int create_container(const compute_rec *c, const names *n, const char *token,
                            const char *password, char *err, size_t errlen)
{
    char env[9][320], path[224], port[32], bind[240];
    int cu = c->size_cu > 0 ? c->size_cu : 1;
    long long mem = cu_memory_bytes(cfg, cu);
    long long nano = (long long)cu * cfg->cu_millicpus * 1000000LL;
    const char *url = cfg->docker_report_url[0] ? cfg->docker_report_url : cfg->report_url_base;
    json_t *envs = json_array(), *body;
    long s;
    int k = 0;

    snprintf(env[k++], sizeof(env[0]), "SMDB_COMPUTE_ID=%s", c->id);
    snprintf(env[k++], sizeof(env[0]), "SMDB_ADMIN_PASSWORD=%s", password);
    snprintf(env[k++], sizeof(env[0]), "SMDB_REPORT_TOKEN=%s", token);
    snprintf(env[k++], sizeof(env[0]), "SMDB_REPORT_URL=%s", url);
    snprintf(env[k++], sizeof(env[0]), "SMDB_PORT=%d", c->port);
    snprintf(env[k++], sizeof(env[0]), "SMDB_PROXY_NETWORKS=%s", cfg->docker_proxy_networks);
    /* the size it starts at (docs/autoscaling.md); the plugin follows
     * resizes from the answers to its reports */
    snprintf(env[k++], sizeof(env[0]), "SMDB_BUFFER_POOL=%lldM", cu_pool_bytes(cfg, cu) >> 20);
    snprintf(env[k++], sizeof(env[0]), "SMDB_MAX_CONNECTIONS=%d", cu_server_connections(cfg, cu));
    snprintf(env[k++], sizeof(env[0]), "SMDB_REPORT_INTERVAL=%d", cfg->report_interval_s);
    for (int i = 0; i < k; i++)
        json_array_append_new(envs, json_string(env[i]));
    snprintf(port, sizeof(port), "%d/tcp", c->port);
    snprintf(bind, sizeof(bind), "%s:/var/lib/mysql", n->vol);
    body = json_pack(
        "{s:s, s:o, s:o, s:{s:{}}, s:i, s:{s:[s], s:s, s:[s], s:[s], s:I, s:I, s:I, s:I, "
        "s:{s:s}}}",
        "Image", cfg->docker_image, "Env", envs, "Labels", labels(c), "ExposedPorts", port,
        "StopTimeout", cfg->stop_timeout_ms / 1000 + 1,
        "HostConfig", "Binds", bind, "NetworkMode", cfg->docker_network,
        /* the server needs no capability: it runs as the image's mysql user */
        "CapDrop", "ALL", "SecurityOpt", "no-new-privileges",
        "PidsLimit", (json_int_t)cfg->docker_pids_limit, "Memory", (json_int_t)mem,
        "MemorySwap", (json_int_t)mem, "NanoCpus", (json_int_t)nano,
        "RestartPolicy", "Name", "no");
    if (body == NULL) {
        snprintf(err, errlen, "cannot build the container definition");
        return -1;
    }
    snprintf(path, sizeof(path), "/containers/create?name=%s", n->ctr);
    s = call("POST", path, body, CALL_MS, NULL, err, errlen);
    json_decref(body);
    if (s == 201 || s == 409)
        return 0;
    if (s > 0)
        log_error("docker: create container %s: %s", n->ctr, err);
    return -1;
}

/* ---- operations --------------------------------------------------------- */

static int d_create(const compute_rec *c, const char *report_token, char *err, size_t errlen)
{
    names n;
    char password[40], old_token[128], old_pw[64];
    json_t *body, *l;
    long s;
    int rc;

    name_of(c, &n);
    if (ensure_network(err, errlen) < 0)
        return -1;
    rc = volume_secrets(&n, old_token, old_pw, err, errlen);
    if (rc == 0) {
        snprintf(err, errlen, "volume %s exists already", n.vol);
        return -1;
    }
    if (rc < 0)
        return -1;
    if (random_alnum(password, 32) < 0) {
        snprintf(err, errlen, "no randomness");
        return -1;
    }
    l = labels(c);
    json_object_set_new(l, "smdb.report-token", json_string(report_token ? report_token : ""));
    json_object_set_new(l, "smdb.admin-password", json_string(password));
    body = json_pack("{s:s, s:o}", "Name", n.vol, "Labels", l);
    err[0] = '\0';
    s = call("POST", "/volumes/create", body, CALL_MS, NULL, err, errlen);
    json_decref(body);
    if (s != 201 && s != 200)
        return -1;
    rc = create_container(c, &n, report_token ? report_token : "", password, err, errlen);
    memset(password, 0, sizeof(password));
    return rc;
}

static void logs_tail(const names *n, char *out, size_t outlen)
{
    char path[256];
    long status;
    char *raw;
    size_t o = 0;

    snprintf(path, sizeof(path), "/containers/%s/logs?stdout=1&stderr=1&tail=6", n->ctr);
    raw = dk_call_raw(cfg->docker_socket, path, 5000, &status);
    out[0] = '\0';
    if (raw == NULL)
        return;
    /* a non-TTY container's log is multiplexed: 8-byte frame headers */
    for (const char *p = raw; *p && o + 1 < outlen; p++) {
        if ((unsigned char)*p < 3 && p[1] == '\0') {
            p += 7;
            continue;
        }
        out[o++] = *p == '\n' ? ' ' : *p;
    }
    out[o] = '\0';
    free(raw);
}

static void instance_of(const ctr_state *st, instance *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->id, sizeof(out->id), "%s", st->id);
    snprintf(out->host, sizeof(out->host), "%s", st->host);
    out->started_ms = st->started_ms;
}

static int d_launch(const compute_rec *c, instance *out, char *err, size_t errlen)
{
    names n;
    ctr_state st;
    char path[224], token[128], password[64];
    long s;

    name_of(c, &n);
    if (inspect(c, &st, err, errlen) < 0)
        return -1;
    if (!st.exists) {
        /* removed behind the controller's back: its volume has the data
         * and the secrets to make it again */
        int rc = volume_secrets(&n, token, password, err, errlen);
        if (rc != 0) {
            if (rc == 1)
                snprintf(err, errlen, "compute %s has no container and no volume %s", c->id,
                         n.vol);
            return -1;
        }
        log_warn("docker: container %s is gone, re-creating it from volume %s", n.ctr, n.vol);
        if (ensure_network(err, errlen) < 0 ||
            create_container(c, &n, token, password, err, errlen) < 0)
            return -1;
        memset(token, 0, sizeof(token));
    }
    snprintf(path, sizeof(path), "/containers/%s/%s", n.ctr, st.paused ? "unpause" : "start");
    s = call("POST", path, NULL, CALL_MS, NULL, err, errlen);
    /* 304: already running */
    if (s != 204 && s != 304 && s != 200)
        return -1;
    if (inspect(c, &st, err, errlen) < 0)
        return -1;
    if (!st.running || !st.host[0]) {
        logs_tail(&n, err, errlen);
        return -1;
    }
    instance_of(&st, out);
    cache_put(c->id, st.host, st.password);
    return 0;
}

/* A SELECT 1 as smdb_admin.  While it fails, the container is looked at
 * now and then: a server that exits (bad configuration, corrupt datadir)
 * says why in its log. */
static int d_ready(const compute_rec *c, char *err, size_t errlen)
{
    names n;
    ctr_state st;
    char host[64], password[64];

    if (reach(c, host, password) == 0) {
        /* not admin(): a refused connection must not cost the cached address */
        int rc = sql_ping_tcp(host, c->port, ADMIN_USER, password, 2);
        memset(password, 0, sizeof(password));
        if (rc == 0)
            return 0;
    }
    if (!cache_due(c->id, 200))
        return 1;
    name_of(c, &n);
    if (inspect(c, &st, err, errlen) == 0 && !st.running) {
        logs_tail(&n, err, errlen);
        if (!err[0])
            snprintf(err, errlen, "container %s exited", n.ctr);
        return -1;
    }
    snprintf(err, errlen, "container %s not serving yet", n.ctr);
    return 1;
}

static int d_stop(const compute_rec *c, char *err, size_t errlen)
{
    names n;
    ctr_state st;
    char path[224];
    long s;

    name_of(c, &n);
    cache_forget(c->id);
    if (inspect(c, &st, err, errlen) < 0)
        return -1;
    if (!st.exists || (!st.running && !st.paused))
        return 0;
    if (st.paused) {
        snprintf(path, sizeof(path), "/containers/%s/unpause", n.ctr);
        call("POST", path, NULL, CALL_MS, NULL, err, errlen);
    }
    snprintf(path, sizeof(path), "/containers/%s/stop?t=%d", n.ctr,
             cfg->stop_timeout_ms / 1000 + 1);
    s = call("POST", path, NULL, cfg->stop_timeout_ms + 15000L, NULL, err, errlen);
    return s == 204 || s == 304 || s == 404 ? 0 : -1;
}

static int pause_op(const compute_rec *c, bool pause, char *err, size_t errlen)
{
    names n;
    char path[224];
    long s;

    name_of(c, &n);
    snprintf(path, sizeof(path), "/containers/%s/%s", n.ctr, pause ? "pause" : "unpause");
    s = call("POST", path, NULL, CALL_MS, NULL, err, errlen);
    if (s == 204 || s == 200)
        return 0;
    /* already in the wanted state (engines answer 409 or 500 for that) */
    if (s > 0) {
        ctr_state st;
        char e2[256] = "";
        if (inspect(c, &st, e2, sizeof(e2)) == 0 && st.running && st.paused == pause)
            return 0;
    }
    return -1;
}

static int d_freeze(const compute_rec *c, char *err, size_t errlen)
{
    return pause_op(c, true, err, errlen);
}

static int d_thaw(const compute_rec *c, char *err, size_t errlen)
{
    return pause_op(c, false, err, errlen);
}

static int d_destroy(const compute_rec *c, char *err, size_t errlen)
{
    names n;
    char path[256];
    long s;

    name_of(c, &n);
    cache_forget(c->id);
    snprintf(path, sizeof(path), "/containers/%s?force=true", n.ctr);
    s = call("DELETE", path, NULL, cfg->stop_timeout_ms + 15000L, NULL, err, errlen);
    if (s != 204 && s != 200 && s != 404)
        return -1;
    snprintf(path, sizeof(path), "/volumes/%s?force=true", n.vol);
    err[0] = '\0';
    s = call("DELETE", path, NULL, CALL_MS, NULL, err, errlen);
    return s == 204 || s == 200 || s == 404 ? 0 : -1;
}

/* The container of the compute's name is its instance: a container
 * re-created from its volume is the same compute's server. */
static inst_state d_status(const compute_rec *c, instance *out)
{
    ctr_state st;
    char err[256] = "";

    if (inspect(c, &st, err, sizeof(err)) < 0)
        return INST_UNKNOWN;
    if (!st.running) {
        cache_forget(c->id);
        return INST_GONE;
    }
    if (out)
        instance_of(&st, out);
    return st.paused ? INST_FROZEN : INST_RUNNING;
}

static MYSQL *admin(const compute_rec *c, int timeout_s, char *err, size_t errlen)
{
    char host[64], password[64];
    MYSQL *m;

    if (reach(c, host, password) < 0) {
        snprintf(err, errlen, "compute %s is not running", c->id);
        return NULL;
    }
    m = sql_connect_tcp(host, c->port, ADMIN_USER, password, timeout_s, err, errlen);
    memset(password, 0, sizeof(password));
    /* a stale address (the container was re-created): look again next time */
    if (m == NULL)
        cache_forget(c->id);
    return m;
}

static int d_admin_sql(const compute_rec *c, const char *q, char *err, size_t errlen)
{
    return sql_exec_close(admin(c, 10, err, errlen), q, err, errlen);
}

static int d_probe(const compute_rec *c, compute_probe *out)
{
    char err[256];

    return backend_probe_sql(admin(c, 5, err, sizeof(err)), ADMIN_USER, out);
}

/* Memory and CPU limits of the running container.  Docker has the
 * compatibility endpoint; podman 4 only its own (same effect on the
 * cgroup).  The buffer pool is not changed here: the controller's account
 * gives up SET GLOBAL at creation (docs/tenancy.md). */
static int d_resize(const compute_rec *c, int cu, char *err, size_t errlen)
{
    names n;
    char path[224];
    long long mem = cu_memory_bytes(cfg, cu);
    long long quota = cu_cpu_quota_us(cfg, cu);   /* of CU_CPU_PERIOD_US */
    json_t *body;
    long s;

    name_of(c, &n);
    snprintf(path, sizeof(path), "/containers/%s/update", n.ctr);
    body = json_pack("{s:I, s:I, s:I}", "Memory", (json_int_t)mem, "MemorySwap",
                     (json_int_t)mem, "NanoCpus", (json_int_t)cu * cfg->cu_millicpus *
                     1000000LL);
    s = call("POST", path, body, CALL_MS, NULL, err, errlen);
    json_decref(body);
    if (s == 200)
        return 0;
    if (s != 404 && s != 405)
        return -1;
    snprintf(path, sizeof(path), "/libpod/containers/%s/update", n.ctr);
    body = json_pack("{s:{s:I, s:I}, s:{s:I, s:I}}", "memory", "limit", (json_int_t)mem, "swap",
                     (json_int_t)mem, "cpu", "quota", (json_int_t)quota, "period",
                     (json_int_t)CU_CPU_PERIOD_US);
    err[0] = '\0';
    s = call("POST", path, body, CALL_MS, NULL, err, errlen);
    json_decref(body);
    return s == 200 || s == 201 || s == 204 ? 0 : -1;
}

static long long d_storage_bytes(const compute_rec *c)
{
    names n;
    char err[256] = "";
    json_t *doc = NULL, *v;
    long long bytes = -1;
    size_t i;

    name_of(c, &n);
    if (call("GET", "/system/df", NULL, CALL_MS, &doc, err, sizeof(err)) == 200)
        json_array_foreach(json_object_get(doc, "Volumes"), i, v) {
            const char *name = json_string_value(json_object_get(v, "Name"));
            json_t *size = json_object_get(json_object_get(v, "UsageData"), "Size");
            if (name && strcmp(name, n.vol) == 0 && json_is_integer(size))
                bytes = json_integer_value(size);
        }
    json_decref(doc);
    return bytes;
}

static bool d_available(char *err, size_t errlen)
{
    long s = call("GET", "/_ping", NULL, 3000, NULL, err, errlen);

    if (s == 200)
        return true;
    if (s > 0)
        snprintf(err, errlen, "docker engine at %s answers HTTP %ld", cfg->docker_socket, s);
    return false;
}

static int d_list(void (*fn)(const char *cid, void *arg), void *arg)
{
    char path[256], err[256] = "";
    json_t *doc = NULL, *v;
    size_t i;

    /* filters={"label":["smdb.prefix=<prefix>"]}; the prefix is [A-Za-z0-9_.-] */
    snprintf(path, sizeof(path),
             "/containers/json?all=true&filters=%%7B%%22label%%22%%3A%%5B%%22smdb.prefix%%3D%s"
             "%%22%%5D%%7D", cfg->docker_prefix);
    if (call("GET", path, NULL, CALL_MS, &doc, err, sizeof(err)) != 200 || !json_is_array(doc)) {
        json_decref(doc);
        return -1;
    }
    json_array_foreach(doc, i, v) {
        const char *cid = json_string_value(json_object_get(json_object_get(v, "Labels"),
                                                            "smdb.compute"));
        if (cid)
            fn(cid, arg);
    }
    json_decref(doc);
    return 0;
}

static const backend docker_backend = {
    .name = "docker",
    .can_freeze = true,
    .create = d_create,
    .launch = d_launch,
    .ready = d_ready,
    .stop = d_stop,
    .freeze = d_freeze,
    .thaw = d_thaw,
    .destroy = d_destroy,
    .resize = d_resize,
    .status = d_status,
    .admin_sql = d_admin_sql,
    .probe = d_probe,
    .storage_bytes = d_storage_bytes,
    .available = d_available,
    .list = d_list,
};

const backend *backend_docker(const config *c, char *err, size_t errlen)
{
    char why[256] = "";

    (void)err;
    (void)errlen;
    cfg = c;
    if (!d_available(why, sizeof(why)))
        log_warn("docker backend: engine unavailable for now (%s); computes wait for it", why);
    else if (ensure_network(why, sizeof(why)) < 0)
        log_warn("docker backend: network %s: %s", cfg->docker_network, why);
    log_info("docker backend: engine %s, image %s, network %s, prefix %s", cfg->docker_socket,
             cfg->docker_image, cfg->docker_network, cfg->docker_prefix);
    return &docker_backend;
}
