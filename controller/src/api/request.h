/* The request a handler gets and the helpers it answers with
 * (request.c).  Handlers include this, never the server (server.c), so
 * nothing loops: server.c -> handlers.h -> request.h. */
#ifndef SMDB_API_REQUEST_H
#define SMDB_API_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

struct MHD_Connection;

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
    const char *hdr_names[8];
    char hdr_values[8][128];
    int nhdrs;
    /* set by the router: run this on a worker (server.c) */
    api_handler slow;
    const char *slow_id;
    char *args;               /* worker: query arguments, "k\0v\0...\0" */
    char *auth;               /* worker: the Authorization header */
};

/* answers; a second answer replaces the first */
void api_json(api_req *r, int status, json_t *doc);          /* steals doc */
void api_error(api_req *r, int status, const char *code, const char *msg);
void api_op_error(api_req *r, const op_error *e);
void api_header(api_req *r, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *api_query(api_req *r, const char *name);
const char *api_bearer(api_req *r);
/* Parses the body as a JSON object; answers 400 itself and returns NULL. */
json_t *api_body_object(api_req *r);
/* The HTTP status of an error kind (the only place one is chosen). */
int api_status_of(err_kind kind);
/* An optional integer field of doc in [lo, hi]; answers 400 itself. */
int api_int_field(api_req *r, json_t *doc, const char *name, int lo, int hi, int *out);
/* Rejects fields a request does not know (NULL-terminated names), so a
 * typo is an error, not a silently ignored setting; answers 400 itself. */
int api_known_fields(api_req *r, json_t *doc, const char *const *names);

#endif
