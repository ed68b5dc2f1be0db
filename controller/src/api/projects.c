/* Projects: create, list, show, delete, and a new compute for one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers.h"
#include "core/lifecycle.h"
#include "store/store.h"
#include "util/ids.h"

static const config *cfg;

void handlers_init(const config *c)
{
    cfg = c;
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

static int parse_spec(api_req *r, json_t *doc, project_spec *s, bool need_id)
{
    static const char *const fields[] = {"id", "idle_timeout_s", "freeze_after_s", "min_cu",
                                         "max_cu", NULL};
    json_t *id = json_object_get(doc, "id");

    if (api_known_fields(r, doc, fields) < 0)
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
    if (api_int_field(r, doc, "idle_timeout_s", 1, 86400 * 365, &s->idle_timeout_s) < 0 ||
        api_int_field(r, doc, "freeze_after_s", 0, 86400 * 365, &s->freeze_after_s) < 0 ||
        api_int_field(r, doc, "min_cu", 1, 64, &s->min_cu) < 0 ||
        api_int_field(r, doc, "max_cu", 1, 64, &s->max_cu) < 0)
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

