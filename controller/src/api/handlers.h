/* The endpoints (projects.c, computes.c, wake.c, activity.c, usage.c,
 * metrics.c); server.c routes to them. */
#ifndef SMDB_API_HANDLERS_H
#define SMDB_API_HANDLERS_H

#include <jansson.h>

#include "api/request.h"
#include "core/compute.h"
#include "util/config.h"

void h_projects_create(api_req *r);
void h_projects_list(api_req *r);
void h_project_get(api_req *r, const char *id);
void h_project_delete(api_req *r, const char *id);
void h_project_compute_create(api_req *r, const char *id);
void h_compute_get(api_req *r, const char *id);
void h_compute_delete(api_req *r, const char *id);
void h_compute_suspend(api_req *r, const char *id);
void h_compute_resume(api_req *r, const char *id);
void h_compute_resize(api_req *r, const char *id);
void h_wake(api_req *r);
void h_activity(api_req *r, const char *id);
void h_metrics(api_req *r);
void h_usage(api_req *r, const char *id);

/* Every handler starts from this error, so a path that fails without
 * filling its error still answers something true (the store failed). */
#define OP_ERROR_INIT {ERR_UNAVAILABLE, "store_unavailable", "state store unavailable"}

void handlers_init(const config *cfg);
json_t *compute_json(const compute_rec *c);

#endif
