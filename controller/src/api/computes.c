/* Computes: show, delete, suspend, resume, resize. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers.h"
#include "core/lifecycle.h"
#include "store/store.h"
#include "util/ids.h"
#include "util/proc.h"

json_t *compute_json(const compute_rec *c)
{
    char addr[96];
    json_t *j;
    int pid;
    long long start;

    snprintf(addr, sizeof(addr), "%s:%d", c->host, c->port);
    /* "pid": the server's process where it is a local one (0 elsewhere) */
    if (!proc_instance_parse(c->instance, &pid, &start))
        pid = 0;
    j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:I, s:i, s:I, s:I}",
                  "id", c->id, "project", c->project, "state", state_name(c->state),
                  "host", c->host, "address", addr, "port", c->port,
                  "instance", c->instance, "pid", (json_int_t)pid, "size_cu", c->size_cu,
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
    if (c->act_received_ms > 0) {
        /* the load signals of the report, those it had */
        json_t *a = json_object_get(j, "activity");
        for (int i = 0; i < ACT_NOPT; i++)
            if (c->act_opt[i] >= 0)
                json_object_set_new(a, act_opt_names[i], json_integer(c->act_opt[i]));
    }
    /* "cu": the size it has now (what it is billed at while running) */
    json_object_set_new(j, "cu", json_integer(c->size_cu));
    if (c->as.signals_ms > 0) {
        json_t *as = json_pack("{s:I, s:s}", "signals_ms", (json_int_t)c->as.signals_ms,
                               "last_decision", c->as.last_decision);
        if (c->as.last_change_ms > 0)
            json_object_set_new(as, "last_change_ms", json_integer(c->as.last_change_ms));
        if (c->as.low_since_ms > 0)
            json_object_set_new(as, "low_since_ms", json_integer(c->as.low_since_ms));
        if (c->as.cpu_ppm >= 0)
            json_object_set_new(as, "cpu_utilization", json_real(c->as.cpu_ppm / 1e6));
        if (c->as.miss_ppm >= 0)
            json_object_set_new(as, "bp_miss_ratio", json_real(c->as.miss_ppm / 1e6));
        if (c->as.fill_ppm >= 0)
            json_object_set_new(as, "bp_data_ratio", json_real(c->as.fill_ppm / 1e6));
        json_object_set_new(j, "autoscale", as);
    }
    return j;
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
        if (api_known_fields(r, doc, fields) < 0) {
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
    if (api_known_fields(r, doc, fields) < 0) {
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

