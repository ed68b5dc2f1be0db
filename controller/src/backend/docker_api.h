/* The Docker Engine API over its unix socket (libcurl + jansson): the one
 * place the docker backend's HTTP goes through.  API version 1.41, which
 * Docker 20.10+ and podman's compatibility service both serve. */
#ifndef SMDB_DOCKER_API_H
#define SMDB_DOCKER_API_H

#include <jansson.h>
#include <stddef.h>

typedef struct {
    long status;        /* HTTP status; 0 if the engine was not reached */
    json_t *body;       /* parsed reply (NULL if none or not JSON) */
    char err[256];      /* transport error, or the engine's "message" */
} dk_reply;

/* One request; path is below /v1.41 unless it starts with "/libpod/" or
 * "/_ping" (engine-specific or unversioned).  body is borrowed.  Returns 0
 * if the engine answered (any status), -1 if it could not be reached. */
int dk_call(const char *socket_path, const char *method, const char *path, json_t *body,
            long timeout_ms, dk_reply *out);
/* The raw body of a reply (logs); NULL-terminated, free() it. */
char *dk_call_raw(const char *socket_path, const char *path, long timeout_ms, long *status);
void dk_reply_free(dk_reply *r);

#endif
