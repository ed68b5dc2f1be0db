#include "store/store.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "billing/events.h"
#include "util/ids.h"
#include "util/log.h"

/* How long a transition or create whose reply was lost is sent again (same
 * operation id) before its caller is told "unknown": long enough to ride out
 * a Redis restart or a stall of a few seconds. */
#define OUTCOME_WINDOW_MS 15000

static const config *cfg;
static pthread_key_t conn_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

/* The compute transition, applied atomically.  It checks the current state
 * (and an optional guard field), sets the new state and fields, bumps `gen`,
 * and meters: an open interval (meter_since_ms) is closed into a usage event
 * that goes both to the project's usage index and to the export queue, where
 * it stays until PostgreSQL has acknowledged it.  Doing the metering in the
 * same script as the transition is what makes "no billed second lost or
 * doubled" hold across crashes: either both happen or neither.
 *
 * Events are written by usage_emit (billing_events.h), shared with the
 * storage sampler.  Deleting a compute also closes its storage interval.
 *
 * A reply lost to a timeout or a dropped connection makes the caller send
 * the same transition again (for OUTCOME_WINDOW_MS): each carries a random
 * operation id, and the script remembers the ids of the last OPS_KEPT
 * transitions it applied (field `ops`, "id=previous-state ..."), so the
 * second copy answers "applied" instead of being refused (the state moved)
 * or applied twice (a second usage event).
 *
 * KEYS: compute hash, usage zset of its project, export pending hash,
 *       export queue zset
 * ARGV: from-states, to-state ('' keeps), now_ms, meter op, guard field,
 *       guard max, operation id, then field/value pairs ('' value deletes). */
#define OPS_KEPT "8"
static const char transition_lua[] =
    USAGE_EMIT_LUA
    "local cur = redis.call('HGET', KEYS[1], 'state')\n"
    "if not cur then return {-1, ''} end\n"
    "local ops = redis.call('HGET', KEYS[1], 'ops') or ''\n"
    "local seen = string.match(' ' .. ops, ' ' .. ARGV[7] .. '=(%S*)')\n"
    "if seen then return {1, seen} end\n"
    "local ok = false\n"
    "for s in string.gmatch(ARGV[1], '[^,]+') do if s == cur then ok = true end end\n"
    "if not ok then return {0, cur} end\n"
    "if ARGV[5] ~= '' then\n"
    "  local v = tonumber(redis.call('HGET', KEYS[1], ARGV[5]) or '0') or 0\n"
    "  if v > tonumber(ARGV[6]) then return {0, ''} end\n"
    "end\n"
    "local now = tonumber(ARGV[3])\n"
    "local op = ARGV[4]\n"
    "if op == 'close' or op == 'split' then\n"
    "  local since = tonumber(redis.call('HGET', KEYS[1], 'meter_since_ms') or '')\n"
    "  if since and now > since then\n"
    "    local cu = tonumber(redis.call('HGET', KEYS[1], 'size_cu') or '1') or 1\n"
    "    usage_emit(KEYS[2], KEYS[3], KEYS[4], {kind = 'compute',\n"
    "      project = redis.call('HGET', KEYS[1], 'project'),\n"
    "      compute_id = redis.call('HGET', KEYS[1], 'id'), cu = cu}, since, now, cu, 'cu_seconds')\n"
    "  end\n"
    "  if op == 'close' then redis.call('HDEL', KEYS[1], 'meter_since_ms')\n"
    "  elseif since then redis.call('HSET', KEYS[1], 'meter_since_ms', now) end\n"
    "elseif op == 'open' then\n"
    "  if not redis.call('HGET', KEYS[1], 'meter_since_ms') then\n"
    "    redis.call('HSET', KEYS[1], 'meter_since_ms', now)\n"
    "  end\n"
    "end\n"
    "if ARGV[2] == 'deleting' then\n"
    "  local ss = tonumber(redis.call('HGET', KEYS[1], 'storage_since_ms') or '')\n"
    "  local sb = tonumber(redis.call('HGET', KEYS[1], 'storage_bytes') or '')\n"
    "  if ss and sb and now > ss then\n"
    "    usage_emit(KEYS[2], KEYS[3], KEYS[4], {kind = 'storage',\n"
    "      project = redis.call('HGET', KEYS[1], 'project'),\n"
    "      compute_id = redis.call('HGET', KEYS[1], 'id'), bytes = sb}, ss, now, sb, 'byte_seconds')\n"
    "  end\n"
    "  redis.call('HDEL', KEYS[1], 'storage_since_ms', 'storage_bytes')\n"
    "end\n"
    "if ARGV[2] ~= '' then\n"
    "  redis.call('HSET', KEYS[1], 'state', ARGV[2], 'state_since_ms', now)\n"
    "  redis.call('HINCRBY', KEYS[1], 'gen', 1)\n"
    "end\n"
    "for i = 8, #ARGV, 2 do\n"
    "  if ARGV[i+1] == '' then redis.call('HDEL', KEYS[1], ARGV[i])\n"
    "  else redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1]) end\n"
    "end\n"
    "local keep = {}\n"
    "for w in string.gmatch(ops, '%S+') do keep[#keep + 1] = w end\n"
    "while #keep >= " OPS_KEPT " do table.remove(keep, 1) end\n"
    "keep[#keep + 1] = ARGV[7] .. '=' .. cur\n"
    "redis.call('HSET', KEYS[1], 'ops', table.concat(keep, ' '))\n"
    "return {1, cur}\n";

/* Creates a project and its compute, reserving the first free port of the
 * pool and registering the compute's report token, in one atomic step.  The
 * operation id is recorded on the new compute (`create_op`): the same create
 * sent again after a lost reply answers with the port it reserved the first
 * time instead of "exists".
 * KEYS: project hash, projects set, compute hash, computes set, ports hash,
 *       tokens hash
 * ARGV: port min, port max, compute id, project field/value count,
 *       attach flag ('1': the project exists and gets a new compute),
 *       operation id, token hash, then project pairs, compute pairs. */
static const char create_lua[] =
    "if redis.call('HGET', KEYS[3], 'create_op') == ARGV[6] then\n"
    "  return tonumber(redis.call('HGET', KEYS[3], 'port'))\n"
    "end\n"
    "if ARGV[5] == '1' then\n"
    "  if redis.call('EXISTS', KEYS[1]) == 0 then return -3 end\n"
    "  local cur = redis.call('HGET', KEYS[1], 'compute_id')\n"
    "  if cur and cur ~= '' then return -1 end\n"
    "elseif redis.call('EXISTS', KEYS[1]) == 1 then return -1 end\n"
    "local port = nil\n"
    "for p = tonumber(ARGV[1]), tonumber(ARGV[2]) do\n"
    "  if redis.call('HSETNX', KEYS[5], tostring(p), ARGV[3]) == 1 then port = p break end\n"
    "end\n"
    "if not port then return -2 end\n"
    "local np = tonumber(ARGV[4])\n"
    "for i = 8, 7 + np, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1]) end\n"
    "for i = 8 + np, #ARGV, 2 do redis.call('HSET', KEYS[3], ARGV[i], ARGV[i+1]) end\n"
    "redis.call('HSET', KEYS[3], 'port', port, 'create_op', ARGV[6])\n"
    "redis.call('HSET', KEYS[6], ARGV[7], ARGV[3])\n"
    "redis.call('SADD', KEYS[2], redis.call('HGET', KEYS[1], 'id'))\n"
    "redis.call('SADD', KEYS[4], ARGV[3])\n"
    "return port\n";

static void conn_free(void *p)
{
    if (p)
        redisFree(p);
}

static void make_key(void)
{
    pthread_key_create(&conn_key, conn_free);
}

/* The password: from redis_password_file (read at every connect, so a
 * rotated or corrected file is picked up without a restart), else from
 * SMDB_REDIS_PASSWORD.  0 none, 1 found, -1 unreadable file. */
static int redis_password(char *buf, size_t len)
{
    const char *env = getenv("SMDB_REDIS_PASSWORD");
    FILE *f;
    size_t n;

    buf[0] = '\0';
    if (cfg->redis_password_file[0] == '\0') {
        if (env == NULL || env[0] == '\0')
            return 0;
        snprintf(buf, len, "%s", env);
        return 1;
    }
    if ((f = fopen(cfg->redis_password_file, "r")) == NULL)
        return -1;
    n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';   /* the first line only */
    return 1;
}

/* AUTH [user] password on a fresh connection; 0 done (or no password). */
static int authenticate(redisContext *c)
{
    char pass[512];
    int have = redis_password(pass, sizeof(pass));
    redisReply *r;
    int rc = 0;

    if (have < 0) {
        log_warn("redis: cannot read redis_password_file %s", cfg->redis_password_file);
        return -1;
    }
    if (have == 0)
        return 0;
    if (cfg->redis_user[0])
        r = redisCommand(c, "AUTH %s %s", cfg->redis_user, pass);
    else
        r = redisCommand(c, "AUTH %s", pass);
    memset(pass, 0, sizeof(pass));
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        log_warn("redis %s:%d: authentication as %s failed: %s", cfg->redis_host,
                 cfg->redis_port, cfg->redis_user[0] ? cfg->redis_user : "default",
                 r ? r->str : c->errstr);
        rc = -1;
    }
    if (r)
        freeReplyObject(r);
    return rc;
}

static redisContext *connect_redis(void)
{
    struct timeval tv = {cfg->redis_timeout_ms / 1000, (cfg->redis_timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(cfg->redis_host, cfg->redis_port, tv);

    if (c == NULL || c->err) {
        log_warn("redis %s:%d: %s", cfg->redis_host, cfg->redis_port,
                 c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (authenticate(c) < 0) {
        redisFree(c);
        return NULL;
    }
    return c;
}

static redisContext *thread_conn(bool fresh)
{
    redisContext *c;

    pthread_once(&key_once, make_key);
    c = pthread_getspecific(conn_key);
    if (c && (fresh || c->err)) {
        redisFree(c);
        c = NULL;
        pthread_setspecific(conn_key, NULL);
    }
    if (c == NULL) {
        c = connect_redis();
        pthread_setspecific(conn_key, c);
    }
    return c;
}

/* One attempt with a formatted command.  NULL: no reply (no connection, I/O
 * error or timeout); the command may or may not have run. */
static redisReply *send_once(const char *cmd, size_t len, bool fresh)
{
    redisContext *c = thread_conn(fresh);
    void *r = NULL;

    if (c == NULL)
        return NULL;
    if (redisAppendFormattedCommand(c, cmd, len) != REDIS_OK || redisGetReply(c, &r) != REDIS_OK) {
        if (r)
            freeReplyObject(r);
        /* drop the connection: a late reply must not answer the next command */
        redisFree(c);
        pthread_setspecific(conn_key, NULL);
        return NULL;
    }
    return r;
}

/* Counters are the only commands a replay would apply twice (every script
 * is idempotent, see store.h): never sent again. */
static bool replay_safe(const char *cmd, size_t len)
{
    /* the formatted command is "*N\r\n$L\r\nNAME\r\n..." */
    const char *name = memchr(cmd, '\n', len);

    name = name ? memchr(name + 1, '\n', len - (size_t)(name + 1 - cmd)) : NULL;
    return name == NULL || (strncasecmp(name + 1, "HINCRBY", 7) != 0 &&
                            strncasecmp(name + 1, "INCR", 4) != 0);
}

static redisReply *run(const char *cmd, size_t len, const char *what, int64_t window_ms)
{
    int64_t end = mono_ms() + window_ms;
    int pause_ms = 50;
    redisReply *r;

    for (int attempt = 0;; attempt++) {
        r = send_once(cmd, len, attempt > 0);
        if (r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "LOADING", 7) == 0 &&
            window_ms > 0) {
            /* a restarted Redis reading its AOF: refused, not run; wait */
            freeReplyObject(r);
            r = NULL;
        }
        if (r != NULL) {
            if (r->type == REDIS_REPLY_ERROR)
                log_warn("redis %s: %s", what, r->str);
            else if (attempt > 0 && window_ms > 0)
                log_info("redis %s: answered at attempt %d", what, attempt + 1);
            return r;
        }
        if (attempt == 0 && window_ms == 0 && replay_safe(cmd, len))
            continue;   /* once at once: a Redis restart costs no request */
        if (window_ms == 0 || mono_ms() + pause_ms > end)
            break;
        usleep((useconds_t)pause_ms * 1000);
        pause_ms = pause_ms * 2 > 1000 ? 1000 : pause_ms * 2;
    }
    log_error("redis %s failed", what);
    return NULL;
}

static redisReply *cmdargv(int argc, const char **argv, int64_t window_ms)
{
    char *cmd;
    long long len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
    redisReply *r;

    if (len < 0)
        return NULL;
    r = run(cmd, (size_t)len, argv[0], window_ms);
    redisFreeCommand(cmd);
    return r;
}

redisReply *store_cmdargv(int argc, const char **argv)
{
    return cmdargv(argc, argv, 0);
}

redisReply *store_cmd(const char *fmt, ...)
{
    char *cmd, what[24];
    va_list ap;
    int len;
    redisReply *r;

    va_start(ap, fmt);
    len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0)
        return NULL;
    snprintf(what, sizeof(what), "%.*s", (int)strcspn(fmt, " "), fmt);
    r = run(cmd, (size_t)len, what, 0);
    redisFreeCommand(cmd);
    return r;
}

const char *store_key(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(buf, len, "%s", cfg->redis_prefix);

    va_start(ap, fmt);
    vsnprintf(buf + n, len - (size_t)n, fmt, ap);
    va_end(ap);
    return buf;
}

int store_init(const config *c)
{
    cfg = c;
    if (!store_ping()) {
        log_error("redis %s:%d: not available", c->redis_host, c->redis_port);
        return -1;
    }
    return 0;
}

bool store_ping(void)
{
    redisReply *r = store_cmd("PING");
    bool ok = r && r->type == REDIS_REPLY_STATUS;

    if (r)
        freeReplyObject(r);
    return ok;
}

static long long field_ll(const char *v)
{
    return v ? strtoll(v, NULL, 10) : 0;
}

static void copy(char *dst, size_t n, const char *v)
{
    snprintf(dst, n, "%s", v ? v : "");
}

/* HGETALL into a callback per field. 0 found, 1 empty, -1 error */
static int hgetall(const char *key, void (*fn)(void *, const char *, const char *), void *arg)
{
    redisReply *r = store_cmd("HGETALL %s", key);
    int rc;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        if (r)
            freeReplyObject(r);
        return -1;
    }
    rc = r->elements == 0 ? 1 : 0;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        fn(arg, r->element[i]->str, r->element[i + 1]->str);
    freeReplyObject(r);
    return rc;
}

static void compute_field(void *arg, const char *k, const char *v)
{
    compute_rec *c = arg;
    static const struct {
        const char *name;
        size_t off;
    } ll[] = {
        {"pid_start", offsetof(compute_rec, pid_start)},
        {"gen", offsetof(compute_rec, gen)},
        {"state_since_ms", offsetof(compute_rec, state_since_ms)},
        {"last_activity_ms", offsetof(compute_rec, last_activity_ms)},
        {"wake_requested_ms", offsetof(compute_rec, wake_requested_ms)},
        {"meter_since_ms", offsetof(compute_rec, meter_since_ms)},
        {"act_received_ms", offsetof(compute_rec, act_received_ms)},
        {"act_seq", offsetof(compute_rec, act_seq)},
        {"act_uptime_s", offsetof(compute_rec, act_uptime_s)},
        {"act_connections", offsetof(compute_rec, act_connections)},
        {"act_connects", offsetof(compute_rec, act_connects)},
        {"act_failed_connects", offsetof(compute_rec, act_failed_connects)},
        {"act_disconnects", offsetof(compute_rec, act_disconnects)},
        {"act_queries", offsetof(compute_rec, act_queries)},
        {"act_last_activity_ms", offsetof(compute_rec, act_last_activity_ms)},
    };

    if (strcmp(k, "id") == 0) copy(c->id, sizeof(c->id), v);
    else if (strcmp(k, "project") == 0) copy(c->project, sizeof(c->project), v);
    else if (strcmp(k, "state") == 0) c->state = state_parse(v);
    else if (strcmp(k, "mode") == 0) c->mode = mode_parse(v);
    else if (strcmp(k, "host") == 0) copy(c->host, sizeof(c->host), v);
    else if (strcmp(k, "port") == 0) c->port = (int)field_ll(v);
    else if (strcmp(k, "pid") == 0) c->pid = (int)field_ll(v);
    else if (strcmp(k, "size_cu") == 0) c->size_cu = (int)field_ll(v);
    else if (strcmp(k, "token_hash") == 0) copy(c->token_hash, sizeof(c->token_hash), v);
    else if (strcmp(k, "error") == 0) copy(c->error, sizeof(c->error), v);
    else
        for (size_t i = 0; i < sizeof(ll) / sizeof(ll[0]); i++)
            if (strcmp(k, ll[i].name) == 0)
                *(long long *)((char *)c + ll[i].off) = field_ll(v);
}

int store_compute_get(const char *cid, compute_rec *out)
{
    char key[160];

    /* build the key first: cid may point into *out */
    store_key(key, sizeof(key), "compute:%s", cid);
    memset(out, 0, sizeof(*out));
    out->state = ST_UNKNOWN;
    return hgetall(key, compute_field, out);
}

static void project_field(void *arg, const char *k, const char *v)
{
    project_rec *p = arg;

    if (strcmp(k, "id") == 0) copy(p->id, sizeof(p->id), v);
    else if (strcmp(k, "compute_id") == 0) copy(p->compute_id, sizeof(p->compute_id), v);
    else if (strcmp(k, "created_ms") == 0) p->created_ms = field_ll(v);
    else if (strcmp(k, "idle_timeout_s") == 0) p->idle_timeout_s = (int)field_ll(v);
    else if (strcmp(k, "freeze_after_s") == 0) p->freeze_after_s = (int)field_ll(v);
    else if (strcmp(k, "min_cu") == 0) p->min_cu = (int)field_ll(v);
    else if (strcmp(k, "max_cu") == 0) p->max_cu = (int)field_ll(v);
}

int store_project_get(const char *pid, project_rec *out)
{
    char key[128];

    store_key(key, sizeof(key), "project:%s", pid);
    memset(out, 0, sizeof(*out));
    return hgetall(key, project_field, out);
}

int store_project_create(const project_rec *p, const compute_rec *c, bool attach)
{
    char k_proj[128], k_projs[64], k_comp[160], k_comps[64], k_ports[64];
    char pmin[16], pmax[16], np[16], created[24], idle[16], frz[16], mincu[16], maxcu[16];
    char now[24], cu[16], k_tokens[64], op[17];
    const char *argv[64];
    int n = 0, rc = -1;
    redisReply *r;

    if (random_hex(op, 8) < 0)
        return -1;
    snprintf(pmin, sizeof(pmin), "%d", cfg->compute_port_min);
    snprintf(pmax, sizeof(pmax), "%d", cfg->compute_port_max);
    snprintf(created, sizeof(created), "%lld", p->created_ms);
    snprintf(idle, sizeof(idle), "%d", p->idle_timeout_s);
    snprintf(frz, sizeof(frz), "%d", p->freeze_after_s);
    snprintf(mincu, sizeof(mincu), "%d", p->min_cu);
    snprintf(maxcu, sizeof(maxcu), "%d", p->max_cu);
    snprintf(now, sizeof(now), "%lld", (long long)now_ms());
    snprintf(cu, sizeof(cu), "%d", c->size_cu);

    argv[n++] = "EVAL";
    argv[n++] = create_lua;
    argv[n++] = "6";
    argv[n++] = store_key(k_proj, sizeof(k_proj), "project:%s", p->id);
    argv[n++] = store_key(k_projs, sizeof(k_projs), "projects");
    argv[n++] = store_key(k_comp, sizeof(k_comp), "compute:%s", c->id);
    argv[n++] = store_key(k_comps, sizeof(k_comps), "computes");
    argv[n++] = store_key(k_ports, sizeof(k_ports), "ports");
    argv[n++] = store_key(k_tokens, sizeof(k_tokens), "tokens");
    argv[n++] = pmin;
    argv[n++] = pmax;
    argv[n++] = c->id;
    argv[n++] = np;
    argv[n++] = attach ? "1" : "0";
    argv[n++] = op;
    argv[n++] = c->token_hash;
    {
        int start = n;
        const char *pk[] = {"compute_id", c->id, "id", p->id, "created_ms", created,
                            "idle_timeout_s", idle, "freeze_after_s", frz,
                            "min_cu", mincu, "max_cu", maxcu};
        size_t npk = attach ? 2 : sizeof(pk) / sizeof(pk[0]);
        for (size_t i = 0; i < npk; i++)
            argv[n++] = pk[i];
        snprintf(np, sizeof(np), "%d", n - start);
    }
    {
        const char *ck[] = {"id", c->id, "project", c->project, "state", "creating",
                            "state_since_ms", now, "gen", "1", "host", c->host,
                            "size_cu", cu, "token_hash", c->token_hash,
                            "last_activity_ms", now,
                            "storage_since_ms", now};
        for (size_t i = 0; i < sizeof(ck) / sizeof(ck[0]); i++)
            argv[n++] = ck[i];
    }
    r = cmdargv(n, argv, OUTCOME_WINDOW_MS);
    if (r && r->type == REDIS_REPLY_INTEGER)
        rc = r->integer == -1 ? 1 : r->integer == -2 ? 2 : r->integer == -3 ? 3 : 0;
    if (r)
        freeReplyObject(r);
    return rc;
}

static const char *meter_name(meter_op m)
{
    switch (m) {
    case METER_OPEN: return "open";
    case METER_CLOSE: return "close";
    case METER_SPLIT: return "split";
    default: return "keep";
    }
}

/* The field/value pairs of an update ("" deletes a field), into argv; the
 * values live in vals.  Returns the number of strings added. */
typedef struct {
    char wake[24], pid[16], pid_start[24], size[16], activity[24];
} update_vals;

static int update_pairs(const compute_update *u, const char **argv, update_vals *v)
{
    int n = 0;

    if (u == NULL)
        return 0;
    if (u->set & U_MODE) {
        argv[n++] = "mode";
        argv[n++] = mode_name(u->mode);
    }
    if (u->set & U_ERROR) {
        argv[n++] = "error";
        argv[n++] = u->error ? u->error : "";
    }
    if (u->set & U_WAKE) {
        snprintf(v->wake, sizeof(v->wake), "%lld", u->wake_requested_ms);
        argv[n++] = "wake_requested_ms";
        argv[n++] = u->wake_requested_ms > 0 ? v->wake : "";
    }
    if ((u->set & U_HOST) && u->host && u->host[0]) {
        argv[n++] = "host";
        argv[n++] = u->host;
    }
    if (u->set & U_PID) {
        snprintf(v->pid, sizeof(v->pid), "%d", u->pid);
        snprintf(v->pid_start, sizeof(v->pid_start), "%lld", u->pid_start);
        argv[n++] = "pid";
        argv[n++] = v->pid;
        argv[n++] = "pid_start";
        argv[n++] = v->pid_start;
    }
    if (u->set & U_NEW_SERVER) {
        /* A new server's plugin counts its reports from seq 1 again: forget
         * the old sequence before the server can report, so that its first
         * report is not taken as stale. */
        static const char *const fresh[] = {"act_seq", "0", "act_start_ms", "0",
                                            "act_connections", "0"};
        for (size_t i = 0; i < sizeof(fresh) / sizeof(fresh[0]); i++)
            argv[n++] = fresh[i];
    }
    if (u->set & U_SIZE) {
        snprintf(v->size, sizeof(v->size), "%d", u->size_cu);
        argv[n++] = "size_cu";
        argv[n++] = v->size;
    }
    if (u->set & U_ACTIVITY) {
        snprintf(v->activity, sizeof(v->activity), "%lld", u->last_activity_ms);
        argv[n++] = "last_activity_ms";
        argv[n++] = v->activity;
    }
    return n;
}

int store_transition(const compute_rec *c, const transition *t, const compute_update *u,
                     long long activity_guard, char cur[32])
{
    char k_comp[160], k_usage[128], k_pend[64], k_queue[64], now[24], gmax[24], op[17];
    char from[128] = "";
    const char *argv[64];
    update_vals vals;
    int n = 0, rc = -1;
    redisReply *r;

    if (random_hex(op, 8) < 0)
        return -1;
    for (int s = 0; s < ST__COUNT; s++)
        if (transition_leaves(t, (compute_state)s))
            snprintf(from + strlen(from), sizeof(from) - strlen(from), "%s%s",
                     from[0] ? "," : "", state_name((compute_state)s));
    snprintf(now, sizeof(now), "%lld", (long long)now_ms());
    snprintf(gmax, sizeof(gmax), "%lld", activity_guard);
    argv[n++] = "EVAL";
    argv[n++] = transition_lua;
    argv[n++] = "4";
    argv[n++] = store_key(k_comp, sizeof(k_comp), "compute:%s", c->id);
    argv[n++] = store_key(k_usage, sizeof(k_usage), "usage:%s", c->project);
    argv[n++] = store_key(k_pend, sizeof(k_pend), K_PENDING);
    argv[n++] = store_key(k_queue, sizeof(k_queue), K_QUEUE);
    argv[n++] = from;
    argv[n++] = t->to == ST_UNKNOWN ? "" : state_name(t->to);
    argv[n++] = now;
    argv[n++] = meter_name(t->meter);
    argv[n++] = activity_guard >= 0 ? "last_activity_ms" : "";
    argv[n++] = gmax;
    argv[n++] = op;
    n += update_pairs(u, argv + n, &vals);

    r = cmdargv(n, argv, OUTCOME_WINDOW_MS);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
        rc = (int)r->element[0]->integer;
        if (cur)
            snprintf(cur, 32, "%s", r->element[1]->str ? r->element[1]->str : "");
    }
    if (r)
        freeReplyObject(r);
    return rc < 0 ? -1 : rc;
}

int store_compute_update(const char *cid, const compute_update *u)
{
    char key[160];
    const char *argv[40];
    update_vals vals;
    int n = 0, rc;
    redisReply *r;

    argv[n++] = "HSET";
    argv[n++] = store_key(key, sizeof(key), "compute:%s", cid);
    rc = update_pairs(u, argv + n, &vals);
    if (rc == 0)
        return 0;
    n += rc;
    r = store_cmdargv(n, argv);
    n = (r && r->type == REDIS_REPLY_INTEGER) ? 0 : -1;
    if (r)
        freeReplyObject(r);
    return n;
}

int store_counter_incr(const char *field, long long by)
{
    char key[64];
    redisReply *r = store_cmd("HINCRBY %s %s %lld",
                              store_key(key, sizeof(key), "metrics"), field, by);
    int rc = (r && r->type == REDIS_REPLY_INTEGER) ? 0 : -1;

    if (r)
        freeReplyObject(r);
    return rc;
}

/* Histogram buckets (ms) shared with metrics.c */
const double hist_bounds[] = {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000};
const int hist_nbounds = sizeof(hist_bounds) / sizeof(hist_bounds[0]);

int store_hist_observe(const char *name, double ms)
{
    char key[96], field[32], sum[32];
    redisReply *r;
    int i;

    store_key(key, sizeof(key), "hist:%s", name);
    for (i = 0; i < hist_nbounds && ms > hist_bounds[i]; i++)
        ;
    if (i < hist_nbounds)
        snprintf(field, sizeof(field), "le_%g", hist_bounds[i]);
    else
        snprintf(field, sizeof(field), "le_inf");
    snprintf(sum, sizeof(sum), "%.3f", ms);
    /* non-cumulative buckets; metrics.c accumulates them for the exposition */
    r = store_cmd("HINCRBY %s %s 1", key, field);
    if (r) freeReplyObject(r);
    r = store_cmd("HINCRBY %s count 1", key);
    if (r) freeReplyObject(r);
    r = store_cmd("HINCRBYFLOAT %s sum %s", key, sum);
    if (r) freeReplyObject(r);
    return 0;
}
