/* The REST API (libmicrohttpd on a few epoll threads).  Fast requests are
 * answered on those threads; the router hands slow ones (a wake that must
 * start a compute, create, suspend, resume, delete) to a worker pool with
 * the connection suspended, so a flood of idle sockets or of slow requests
 * does not hold up activity reports and wakes of running computes. */
#ifndef SMDB_API_H
#define SMDB_API_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>

#include "util/config.h"
#include "core/lifecycle.h"

typedef struct api_req api_req;
typedef void (*api_handler)(api_req *r, const char *id);

struct api_req {
    struct MHD_Connection *conn;  /* NULL on a worker: use api_query/api_bearer */
    const char *method;
    const char *url;
    char path[512];           /* copy of the url after /api/v1/, split in place */
    const char *segs[8];      /* path segments after /api/v1 */
    int nsegs;
    const char *body;
    size_t body_len;
    /* response */
    int status;
    char *out;                /* malloc'd body */
    const char *content_type;
    const char *hdr_names[6];
    char hdr_values[6][128];
    int nhdrs;
    /* set by the router: run this on a worker (api.c) */
    api_handler slow;
    const char *slow_id;
    char *args;               /* worker: query arguments, "k\0v\0...\0" */
    char *auth;               /* worker: the Authorization header */
};

struct MHD_Daemon *api_start(const config *cfg);
/* Stops accepting, finishes the slow requests in progress, stops. */
void api_stop(struct MHD_Daemon *d);

/* helpers for handlers */
void api_json(api_req *r, int status, json_t *doc);          /* steals doc */
void api_error(api_req *r, int status, const char *code, const char *msg);
void api_op_error(api_req *r, const op_error *e);
int api_status_of(err_kind kind);
void api_header(api_req *r, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *api_query(api_req *r, const char *name);
const char *api_bearer(api_req *r);
/* Parses the body as a JSON object; answers 400 itself and returns NULL. */
json_t *api_body_object(api_req *r);

/* handlers (api_handlers.c, activity.c, metrics.c) */
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

void handlers_init(const config *cfg);
json_t *compute_json(const compute_rec *c);

#endif
