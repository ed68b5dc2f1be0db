/* Handlers of the project, compute and wake endpoints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "util/ids.h"
#include "util/log.h"

static const config *cfg;

/* Every handler starts from this error, so a path that fails without
 * filling its error still answers something true (the store failed). */
#define OP_ERROR_INIT {ERR_UNAVAILABLE, "store_unavailable", "state store unavailable"}

void handlers_init(const config *c)
{
    cfg = c;
}

json_t *compute_json(const compute_rec *c)
{
    char addr[96];
    json_t *j;

    snprintf(addr, sizeof(addr), "%s:%d", c->host, c->port);
    j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:i, s:I, s:I}",
                  "id", c->id, "project", c->project, "state", state_name(c->state),
                  "host", c->host, "address", addr, "port", c->port,
                  "pid", (json_int_t)c->pid, "size_cu", c->size_cu,
                  "state_since_ms", (json_int_t)c->state_since_ms,
                  "last_activity_ms", (json_int_t)c->last_activity_ms);
    if (c->state == ST_SUSPENDED || c->state == ST_SUSPENDING)
        json_object_set_new(j, "mode", json_string(c->mode == MODE_NONE ? "" : mode_name(c->mode)));
    if (c->error[0])
        json_object_set_new(j, "error", json_string(c->error));
    if (c->act_received_ms > 0)
        json_object_set_new(j, "activity",
                            json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                                      "received_ms", (json_int_t)c->act_received_ms,
                                      "seq", (json_int_t)c->act_seq,
                                      "uptime_s", (json_int_t)c->act_uptime_s,
                                      "connections", (json_int_t)c->act_connections,
                                      "connects", (json_int_t)c->act_connects,
                                      "failed_connects", (json_int_t)c->act_failed_connects,
                                      "disconnects", (json_int_t)c->act_disconnects,
                                      "queries", (json_int_t)c->act_queries,
                                      "last_activity_ms", (json_int_t)c->act_last_activity_ms));
    return j;
}

static json_t *project_json(const project_rec *p)
{
    json_t *j = json_pack("{s:s, s:s, s:I, s:i, s:i, s:i, s:i}",
                          "id", p->id, "compute_id", p->compute_id,
                          "created_ms", (json_int_t)p->created_ms,
                          "idle_timeout_s", p->idle_timeout_s,
                          "freeze_after_s", p->freeze_after_s,
                          "min_cu", p->min_cu, "max_cu", p->max_cu);
    compute_rec c;

    if (p->compute_id[0] && store_compute_get(p->compute_id, &c) == 0)
        json_object_set_new(j, "compute", compute_json(&c));
    return j;
}

/* An optional integer field in [lo, hi]; answers 400 itself. */
static int int_field(api_req *r, json_t *doc, const char *name, int lo, int hi, int *out)
{
    json_t *v = json_object_get(doc, name);
    char msg[160];

    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        snprintf(msg, sizeof(msg), "\"%s\" must be an integer in [%d, %d]", name, lo, hi);
        api_error(r, 400, "invalid_field", msg);
        return -1;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

/* Rejects fields a request does not know, so a typo is an error, not a
 * silently ignored setting. */
static int known_fields(api_req *r, json_t *doc, const char *const *names)
{
    const char *key;
    json_t *v;
    char msg[160];

    json_object_foreach(doc, key, v) {
        bool ok = false;
        for (int i = 0; names[i]; i++)
            ok = ok || strcmp(key, names[i]) == 0;
        if (!ok) {
            snprintf(msg, sizeof(msg), "unknown field \"%.64s\"", key);
            api_error(r, 400, "unknown_field", msg);
            return -1;
        }
    }
    return 0;
}

static int parse_spec(api_req *r, json_t *doc, project_spec *s, bool need_id)
{
    static const char *const fields[] = {"id", "idle_timeout_s", "freeze_after_s", "min_cu",
                                         "max_cu", NULL};
    json_t *id = json_object_get(doc, "id");

    if (known_fields(r, doc, fields) < 0)
        return -1;
    if (need_id) {
        if (!json_is_string(id)) {
            api_error(r, 400, "invalid_field", "\"id\" (a string) is required");
            return -1;
        }
        if (!project_id_valid(json_string_value(id))) {
            api_error(r, 400, "invalid_project_id",
                      "invalid project id: 1-63 characters of a-z, 0-9 and -");
            return -1;
        }
        snprintf(s->id, sizeof(s->id), "%s", json_string_value(id));
    }
    s->idle_timeout_s = cfg->idle_timeout_s;
    s->freeze_after_s = -1;
    s->min_cu = 1;
    s->max_cu = 1;
    if (int_field(r, doc, "idle_timeout_s", 1, 86400 * 365, &s->idle_timeout_s) < 0 ||
        int_field(r, doc, "freeze_after_s", 0, 86400 * 365, &s->freeze_after_s) < 0 ||
        int_field(r, doc, "min_cu", 1, 64, &s->min_cu) < 0 ||
        int_field(r, doc, "max_cu", 1, 64, &s->max_cu) < 0)
        return -1;
    if (s->freeze_after_s < 0)
        s->freeze_after_s = cfg->freeze_after_s < s->idle_timeout_s ? cfg->freeze_after_s : 0;
    if (s->freeze_after_s >= s->idle_timeout_s) {
        api_error(r, 400, "invalid_field", "\"freeze_after_s\" must be below \"idle_timeout_s\" (or 0)");
        return -1;
    }
    if (s->min_cu > s->max_cu) {
        api_error(r, 400, "invalid_field", "\"min_cu\" must not exceed \"max_cu\"");
        return -1;
    }
    return 0;
}

static void created(api_req *r, const project_spec *s, const create_result *res)
{
    project_rec p;
    json_t *j;

    int rc = store_project_get(s->id, &p);

    /* the compute exists and runs: say so even if the record cannot be read */
    if (rc != 0)
        return api_json(r, rc < 0 ? 201 : 500,
                        json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", s->id, "compute_id",
                                  res->compute_id, "admin_user", res->admin_user,
                                  "admin_password", res->admin_password, "warning",
                                  rc < 0 ? "state store unavailable" : "project vanished"));
    j = project_json(&p);
    json_object_set_new(j, "admin_user", json_string(res->admin_user));
    json_object_set_new(j, "admin_password", json_string(res->admin_password));
    api_json(r, 201, j);
}

void h_projects_create(api_req *r)
{
    json_t *doc = api_body_object(r);
    project_spec s;
    create_result res;
    op_error e = OP_ERROR_INIT;

    if (doc == NULL)
        return;
    memset(&s, 0, sizeof(s));
    if (parse_spec(r, doc, &s, true) < 0) {
        json_decref(doc);
        return;
    }
    json_decref(doc);
    if (lifecycle_create(&s, false, &res, &e) < 0)
        return api_op_error(r, &e);
    created(r, &s, &res);
}

void h_project_compute_create(api_req *r, const char *id)
{
    project_spec s;
    project_rec p;
    create_result res;
    op_error e = OP_ERROR_INIT;

    if (lifecycle_load_project(id, &p, &e) < 0)
        return api_op_error(r, &e);
    memset(&s, 0, sizeof(s));
    snprintf(s.id, sizeof(s.id), "%s", id);
    s.idle_timeout_s = p.idle_timeout_s;
    s.freeze_after_s = p.freeze_after_s;
    s.min_cu = p.min_cu;
    s.max_cu = p.max_cu;
    if (lifecycle_create(&s, true, &res, &e) < 0)
        return api_op_error(r, &e);
    created(r, &s, &res);
}

void h_projects_list(api_req *r)
{
    char **ids = store_project_ids();
    json_t *arr = json_array();

    if (ids == NULL) {
        json_decref(arr);
        return api_error(r, 503, "store_unavailable", "state store unavailable");
    }
    for (char **id = ids; *id; id++) {
        project_rec p;
        if (store_project_get(*id, &p) == 0)
            json_array_append_new(arr, project_json(&p));
    }
    ids_free(ids);
    api_json(r, 200, json_pack("{s:o}", "projects", arr));
}

void h_project_get(api_req *r, const char *id)
{
    project_rec p;
    op_error e = OP_ERROR_INIT;

    if (lifecycle_load_project(id, &p, &e) < 0)
        return api_op_error(r, &e);
    api_json(r, 200, project_json(&p));
}

void h_project_delete(api_req *r, const char *id)
{
    op_error e = OP_ERROR_INIT;

    if (lifecycle_delete_project(id, &e) < 0)
        return api_op_error(r, &e);
    api_json(r, 200, json_pack("{s:s, s:b}", "id", id, "deleted", 1));
}

void h_compute_get(api_req *r, const char *id)
{
    compute_rec c;
    op_error e = OP_ERROR_INIT;

    if (lifecycle_load(id, &c, &e) < 0)
        return api_op_error(r, &e);
    api_json(r, 200, compute_json(&c));
}

void h_compute_delete(api_req *r, const char *id)
{
    op_error e = OP_ERROR_INIT;

    if (lifecycle_delete_compute(id, &e) < 0)
        return api_op_error(r, &e);
    api_json(r, 200, json_pack("{s:s, s:b}", "id", id, "deleted", 1));
}

void h_compute_suspend(api_req *r, const char *id)
{
    static const char *const fields[] = {"mode", "drain", NULL};
    suspend_mode mode = MODE_STOPPED;
    suspend_kind kind = SUSPEND_AFTER_TTL;
    json_t *doc = NULL, *m;
    compute_rec c;
    op_error e = OP_ERROR_INIT;
    int rc;

    if (!compute_id_valid(id))
        return api_error(r, 400, "invalid_compute_id", "invalid compute id");
    if (r->body_len > 0) {
        if ((doc = api_body_object(r)) == NULL)
            return;
        if (known_fields(r, doc, fields) < 0) {
            json_decref(doc);
            return;
        }
        m = json_object_get(doc, "mode");
        if (m) {
            const char *s = json_is_string(m) ? json_string_value(m) : "";
            if (strcmp(s, "stop") == 0 || strcmp(s, "stopped") == 0)
                mode = MODE_STOPPED;
            else if (strcmp(s, "freeze") == 0 || strcmp(s, "frozen") == 0)
                mode = MODE_FROZEN;
            else {
                json_decref(doc);
                return api_error(r, 400, "invalid_field", "\"mode\" must be \"stop\" or \"freeze\"");
            }
        }
        m = json_object_get(doc, "drain");
        if (m) {
            if (!json_is_boolean(m)) {
                json_decref(doc);
                return api_error(r, 400, "invalid_field", "\"drain\" must be true or false");
            }
            kind = json_is_true(m) ? SUSPEND_AFTER_TTL : SUSPEND_NOW;
        }
        json_decref(doc);
    }
    if (lifecycle_suspend(id, mode, kind, 0, &e) < 0)
        return api_op_error(r, &e);
    if ((rc = store_compute_get(id, &c)) != 0)
        return api_error(r, rc < 0 ? 503 : 404, rc < 0 ? "store_unavailable" : "unknown_compute",
                         rc < 0 ? "state store unavailable" : "compute vanished");
    api_json(r, 200, compute_json(&c));
}

void h_compute_resume(api_req *r, const char *id)
{
    wake_result w;
    op_error e = OP_ERROR_INIT;
    compute_rec c;
    int rc;

    if (!compute_id_valid(id))
        return api_error(r, 400, "invalid_compute_id", "invalid compute id");
    if (lifecycle_resume(id, &w, &e) < 0)
        return api_op_error(r, &e);
    if ((rc = store_compute_get(id, &c)) != 0)
        return api_error(r, rc < 0 ? 503 : 404, rc < 0 ? "store_unavailable" : "unknown_compute",
                         rc < 0 ? "state store unavailable" : "compute vanished");
    api_json(r, 200, compute_json(&c));
}

void h_compute_resize(api_req *r, const char *id)
{
    static const char *const fields[] = {"cu", NULL};
    json_t *doc, *cu;
    op_error e = OP_ERROR_INIT;
    compute_rec c;
    json_int_t n;
    int rc;

    if (!compute_id_valid(id))
        return api_error(r, 400, "invalid_compute_id", "invalid compute id");
    if ((doc = api_body_object(r)) == NULL)
        return;
    if (known_fields(r, doc, fields) < 0) {
        json_decref(doc);
        return;
    }
    cu = json_object_get(doc, "cu");
    n = json_is_integer(cu) ? json_integer_value(cu) : -1;
    json_decref(doc);
    if (n < 1 || n > 1024)
        return api_error(r, 400, "invalid_field", "\"cu\" must be an integer 1..1024");
    if (lifecycle_resize(id, (int)n, &e) < 0)
        return api_op_error(r, &e);
    if ((rc = store_compute_get(id, &c)) != 0)
        return api_error(r, rc < 0 ? 503 : 404, rc < 0 ? "store_unavailable" : "unknown_compute",
                         rc < 0 ? "state store unavailable" : "compute vanished");
    api_json(r, 200, compute_json(&c));
}

void h_wake(api_req *r)
{
    const char *project = api_query(r, "endpointish");
    wake_result w;
    op_error e = OP_ERROR_INIT;

    if (project == NULL) {
        e = (op_error){ERR_INVALID, "invalid_project_id", "endpointish is required"};
    } else if (lifecycle_wake(project, &w, &e) == 0) {
        api_header(r, "X-Wake-Address", "%s:%d", w.host, w.port);
        api_header(r, "X-Wake-Compute", "%s", w.compute_id);
        api_header(r, "X-Wake-Cold-Start", "%s", w.cold_start);
        char addr[96];
        snprintf(addr, sizeof(addr), "%s:%d", w.host, w.port);
        return api_json(r, 200, json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:f}",
                                          "address", addr, "host", w.host, "port", w.port,
                                          "compute_id", w.compute_id, "project", project,
                                          "cold_start", w.cold_start, "wake_ms", w.ms));
    }
    api_header(r, "X-Wake-Error", "%s", e.code);
    api_op_error(r, &e);
}
