/* The records: projects and computes, their creation, transitions and
 * removal, and the activity reports and tokens kept on them. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/private.h"
#include "store/store.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/proc.h"

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

static int opt_index(const char *name)
{
    for (int i = 0; i < ACT_NOPT; i++)
        if (strcmp(name, act_opt_names[i]) == 0)
            return i;
    return -1;
}

/* A record being read: the compute, and the fields records written before
 * the instance field have in its place. */
typedef struct {
    compute_rec *c;
    long long pid, pid_start;
} compute_read;

static void compute_field(void *arg, const char *k, const char *v)
{
    compute_read *rd = arg;
    compute_rec *c = rd->c;
    static const struct {
        const char *name;
        size_t off;
    } ll[] = {
        {"gen", offsetof(compute_rec, gen)},
        {"state_since_ms", offsetof(compute_rec, state_since_ms)},
        {"last_activity_ms", offsetof(compute_rec, last_activity_ms)},
        {"wake_requested_ms", offsetof(compute_rec, wake_requested_ms)},
        {"meter_since_ms", offsetof(compute_rec, meter_since_ms)},
        {"storage_since_ms", offsetof(compute_rec, storage_since_ms)},
        {"storage_bytes", offsetof(compute_rec, storage_bytes)},
        {"act_received_ms", offsetof(compute_rec, act_received_ms)},
        {"act_seq", offsetof(compute_rec, act_seq)},
        {"act_uptime_s", offsetof(compute_rec, act_uptime_s)},
        {"act_connections", offsetof(compute_rec, act_connections)},
        {"act_connects", offsetof(compute_rec, act_connects)},
        {"act_failed_connects", offsetof(compute_rec, act_failed_connects)},
        {"act_disconnects", offsetof(compute_rec, act_disconnects)},
        {"act_queries", offsetof(compute_rec, act_queries)},
        {"act_last_activity_ms", offsetof(compute_rec, act_last_activity_ms)},
        {"act_sent_at_ms", offsetof(compute_rec, act_sent_at_ms)},
        {"as_last_change_ms", offsetof(compute_rec, as.last_change_ms)},
        {"as_low_since_ms", offsetof(compute_rec, as.low_since_ms)},
        {"as_prev_sent_ms", offsetof(compute_rec, as.prev_sent_ms)},
        {"as_prev_cpu_ms", offsetof(compute_rec, as.prev_cpu_ms)},
        {"as_prev_cpu_at_ms", offsetof(compute_rec, as.prev_cpu_at_ms)},
        {"as_prev_bp_pages_data", offsetof(compute_rec, as.prev_bp_pages_data)},
        {"as_prev_bp_reads", offsetof(compute_rec, as.prev_bp_reads)},
        {"as_prev_bp_read_requests", offsetof(compute_rec, as.prev_bp_read_requests)},
        {"as_cpu_ppm", offsetof(compute_rec, as.cpu_ppm)},
        {"as_miss_ppm", offsetof(compute_rec, as.miss_ppm)},
        {"as_fill_ppm", offsetof(compute_rec, as.fill_ppm)},
        {"as_signals_ms", offsetof(compute_rec, as.signals_ms)},
    };

    if (strcmp(k, "id") == 0) copy(c->id, sizeof(c->id), v);
    else if (strcmp(k, "project") == 0) copy(c->project, sizeof(c->project), v);
    else if (strcmp(k, "state") == 0) c->state = state_parse(v);
    else if (strcmp(k, "mode") == 0) c->mode = mode_parse(v);
    else if (strcmp(k, "host") == 0) copy(c->host, sizeof(c->host), v);
    else if (strcmp(k, "port") == 0) c->port = (int)field_ll(v);
    else if (strcmp(k, "instance") == 0) copy(c->instance, sizeof(c->instance), v);
    else if (strcmp(k, "pid") == 0) rd->pid = field_ll(v);
    else if (strcmp(k, "pid_start") == 0) rd->pid_start = field_ll(v);
    else if (strcmp(k, "size_cu") == 0) c->size_cu = (int)field_ll(v);
    else if (strcmp(k, "token_hash") == 0) copy(c->token_hash, sizeof(c->token_hash), v);
    else if (strcmp(k, "error") == 0) copy(c->error, sizeof(c->error), v);
    else if (strcmp(k, "as_last_decision") == 0)
        copy(c->as.last_decision, sizeof(c->as.last_decision), v);
    else if (strncmp(k, "act_", 4) == 0 && opt_index(k + 4) >= 0)
        c->act_opt[opt_index(k + 4)] = field_ll(v);
    else
        for (size_t i = 0; i < sizeof(ll) / sizeof(ll[0]); i++)
            if (strcmp(k, ll[i].name) == 0)
                *(long long *)((char *)c + ll[i].off) = field_ll(v);
}

int store_compute_get(const char *cid, compute_rec *out)
{
    char key[160];
    compute_read rd = {out, 0, 0};

    /* build the key first: cid may point into *out */
    store_key(key, sizeof(key), K_COMPUTE, cid);
    int rc;

    memset(out, 0, sizeof(*out));
    out->state = ST_UNKNOWN;
    out->storage_bytes = -1;
    /* signals a report never sent (an older plugin) are unknown, not 0 */
    {
        for (int i = 0; i < ACT_NOPT; i++)
            out->act_opt[i] = -1;
        out->as.cpu_ppm = out->as.miss_ppm = out->as.fill_ppm = -1;
        out->as.prev_bp_pages_data = -1;
    }
    rc = hgetall(key, compute_field, &rd);
    /* a record of a controller before the instance field: its server was
     * a local process, named by pid and start time */
    if (rc == 0 && out->instance[0] == '\0' && rd.pid > 0)
        proc_instance(out->instance, sizeof(out->instance), (int)rd.pid, rd.pid_start);
    return rc;
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

    store_key(key, sizeof(key), K_PROJECT, pid);
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
    snprintf(pmin, sizeof(pmin), "%d", store_cfg->compute_port_min);
    snprintf(pmax, sizeof(pmax), "%d", store_cfg->compute_port_max);
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
    argv[n++] = store_key(k_proj, sizeof(k_proj), K_PROJECT, p->id);
    argv[n++] = store_key(k_projs, sizeof(k_projs), K_PROJECTS);
    argv[n++] = store_key(k_comp, sizeof(k_comp), K_COMPUTE, c->id);
    argv[n++] = store_key(k_comps, sizeof(k_comps), K_COMPUTES);
    argv[n++] = store_key(k_ports, sizeof(k_ports), K_PORTS);
    argv[n++] = store_key(k_tokens, sizeof(k_tokens), K_TOKENS);
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
    r = store_cmdargv_window(n, argv, OUTCOME_WINDOW_MS);
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
    char wake[24], size[16], activity[24];
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
    if (u->set & U_INSTANCE) {
        argv[n++] = "instance";
        argv[n++] = u->instance ? u->instance : "";
        /* the fields it replaces (records before the instance field) */
        argv[n++] = "pid";
        argv[n++] = "";
        argv[n++] = "pid_start";
        argv[n++] = "";
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
    argv[n++] = store_key(k_comp, sizeof(k_comp), K_COMPUTE, c->id);
    argv[n++] = store_key(k_usage, sizeof(k_usage), K_USAGE, c->project);
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

    r = store_cmdargv_window(n, argv, OUTCOME_WINDOW_MS);
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
    argv[n++] = store_key(key, sizeof(key), K_COMPUTE, cid);
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


int store_compute_remove(const compute_rec *c)
{
    char k[160], ks[64], kports[64], kp[128], kt[64], port[16];
    const char *keys[] = {store_key(k, sizeof(k), K_COMPUTE, c->id),
                          store_key(ks, sizeof(ks), K_COMPUTES),
                          store_key(kports, sizeof(kports), K_PORTS),
                          store_key(kp, sizeof(kp), K_PROJECT, c->project),
                          store_key(kt, sizeof(kt), K_TOKENS)};
    const char *args[] = {c->id, port, c->token_hash[0] ? c->token_hash : "-"};

    snprintf(port, sizeof(port), "%d", c->port);
    return store_int_reply(store_eval(remove_compute_lua, 5, keys, 3, args)) == 1 ? 0 : -1;
}

int store_project_remove(const char *id)
{
    char kp[128], ks[64];
    const char *keys[] = {store_key(kp, sizeof(kp), K_PROJECT, id),
                          store_key(ks, sizeof(ks), K_PROJECTS)};
    const char *args[] = {id};

    return store_int_reply(store_eval(remove_project_lua, 2, keys, 1, args)) == 1 ? 0 : -1;
}

static char **smembers(const char *setname)
{
    char key[64];
    redisReply *r = store_cmd("SMEMBERS %s", store_key(key, sizeof(key), "%s", setname));
    char **ids;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        if (r)
            freeReplyObject(r);
        return NULL;
    }
    ids = calloc(r->elements + 1, sizeof(char *));
    for (size_t i = 0; ids && i < r->elements; i++)
        ids[i] = strdup(r->element[i]->str);
    freeReplyObject(r);
    return ids;
}

char **store_compute_ids(void) { return smembers(K_COMPUTES); }
char **store_project_ids(void) { return smembers(K_PROJECTS); }

int store_compute_brief_get(const char *cid, compute_brief *out)
{
    char k[160];
    redisReply *r = store_cmd("HMGET %s state gen project storage_bytes",
                              store_key(k, sizeof(k), K_COMPUTE, cid));
    redisReply **e;
    bool found;

    memset(out, 0, sizeof(*out));
    out->state = ST_UNKNOWN;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 4) {
        if (r)
            freeReplyObject(r);
        return -1;
    }
    e = r->element;
    if (e[0]->type == REDIS_REPLY_STRING)
        out->state = state_parse(e[0]->str);
    if (e[1]->type == REDIS_REPLY_STRING)
        out->gen = strtoll(e[1]->str, NULL, 10);
    if (e[2]->type == REDIS_REPLY_STRING)
        snprintf(out->project, sizeof(out->project), "%s", e[2]->str);
    out->sized = e[3]->type == REDIS_REPLY_STRING;
    found = e[0]->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    return found ? 0 : 1;
}

int store_token_owner(const char *token_hash, char *cid, size_t len)
{
    char key[64];
    redisReply *r = store_cmd("HGET %s %s", store_key(key, sizeof(key), K_TOKENS), token_hash);
    int rc = r == NULL ? -1 : 0;

    cid[0] = '\0';
    if (r && r->type == REDIS_REPLY_STRING) {
        snprintf(cid, len, "%s", r->str);
        rc = 1;
    }
    if (r)
        freeReplyObject(r);
    return rc;
}

int store_activity_accept(const char *cid, const activity_report *a)
{
    char key[160], v[11][24], opt[ACT_NOPT][24], names[ACT_NOPT][40];
    const long long in[11] = {a->start_ms, a->seq, a->received_ms, a->last_activity_ms,
                              a->seq, a->connections, a->connects, a->failed_connects,
                              a->disconnects, a->queries, a->last_activity_ms};
    const char *keys[] = {store_key(key, sizeof(key), K_COMPUTE, cid)};
    char sent[24], uptime[24];
    const char *args[4 + 2 * 9 + 2 * ACT_NOPT];
    int n = 0;
    long long rc;
    redisReply *r;

    for (int i = 0; i < 11; i++)
        snprintf(v[i], sizeof(v[i]), "%lld", in[i]);
    snprintf(sent, sizeof(sent), "%lld", a->sent_at_ms);
    snprintf(uptime, sizeof(uptime), "%lld", a->uptime_s);
    args[n++] = v[0];           /* start_ms */
    args[n++] = v[1];           /* seq */
    args[n++] = v[2];           /* now */
    args[n++] = v[3];           /* last_activity_ms */
    {
        const char *const fields[] = {"act_seq", "act_connections", "act_connects",
                                      "act_failed_connects", "act_disconnects", "act_queries",
                                      "act_last_activity_ms"};
        for (int i = 0; i < 7; i++) {
            args[n++] = fields[i];
            args[n++] = v[4 + i];
        }
    }
    args[n++] = "act_sent_at_ms";
    args[n++] = sent;
    args[n++] = "act_uptime_s";
    args[n++] = uptime;
    /* every signal, -1 when this report has none: an old value must not
     * pass for a current one */
    for (int i = 0; i < ACT_NOPT; i++) {
        snprintf(names[i], sizeof(names[i]), "act_%s", act_opt_names[i]);
        snprintf(opt[i], sizeof(opt[i]), "%lld", a->opt[i] >= 0 ? a->opt[i] : -1);
        args[n++] = names[i];
        args[n++] = opt[i];
    }
    r = store_eval(activity_lua, 1, keys, n, args);
    rc = (r && r->type == REDIS_REPLY_INTEGER) ? r->integer : -2;
    if (r)
        freeReplyObject(r);
    return rc >= 1 ? 1 : (int)rc;
}

int store_autoscale_save(const char *cid, const autoscale_rec *s)
{
    char key[160], v[12][24];
    const long long in[12] = {s->last_change_ms, s->low_since_ms, s->prev_sent_ms,
                              s->prev_cpu_ms, s->prev_bp_reads, s->prev_bp_read_requests,
                              s->cpu_ppm, s->miss_ppm, s->fill_ppm, s->signals_ms,
                              s->prev_cpu_at_ms, s->prev_bp_pages_data};
    static const char *const fields[12] = {
        "as_last_change_ms", "as_low_since_ms", "as_prev_sent_ms", "as_prev_cpu_ms",
        "as_prev_bp_reads", "as_prev_bp_read_requests", "as_cpu_ppm", "as_miss_ppm",
        "as_fill_ppm", "as_signals_ms", "as_prev_cpu_at_ms", "as_prev_bp_pages_data"};
    const char *keys[] = {store_key(key, sizeof(key), K_COMPUTE, cid)};
    const char *args[2 * 13];
    int n = 0;

    for (int i = 0; i < 12; i++) {
        snprintf(v[i], sizeof(v[i]), "%lld", in[i]);
        args[n++] = fields[i];
        args[n++] = v[i];
    }
    args[n++] = "as_last_decision";
    args[n++] = s->last_decision;
    return store_int_reply(store_eval(hset_existing_lua, 1, keys, n, args)) == 1 ? 0 : -1;
}
