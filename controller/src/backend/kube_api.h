/* The Kubernetes API (libcurl + jansson): bearer token from a file re-read
 * at every request (projected service-account tokens rotate), the API
 * server's certificate checked against a CA file.  The one place the
 * kubernetes backend's HTTP goes through. */
#ifndef SMDB_KUBE_API_H
#define SMDB_KUBE_API_H

#include <jansson.h>
#include <stddef.h>

#include "util/config.h"

typedef struct {
    long status;        /* HTTP status; 0 if the API server was not reached */
    json_t *body;
    char err[256];      /* transport error, or the Status object's message */
    char reason[64];    /* the Status object's reason (Conflict, NotFound ...) */
} kube_reply;

#define KUBE_JSON "application/json"
#define KUBE_MERGE_PATCH "application/merge-patch+json"
#define KUBE_STRATEGIC_PATCH "application/strategic-merge-patch+json"

void kube_init(const config *cfg);
/* One request; body borrowed.  0 if the server answered (any status). */
int kube_call(const char *method, const char *path, json_t *body, const char *content_type,
              long timeout_ms, kube_reply *out);
void kube_reply_free(kube_reply *r);
/* A watch: on_event(type, object) for every event line until the server
 * ends the stream, on_event returns nonzero, or *stop becomes nonzero.
 * Returns the HTTP status (200 for a stream that ended), -1 if the server
 * was not reached. */
long kube_watch(const char *path, int (*on_event)(const char *type, json_t *object, void *arg),
                void *arg, volatile int *stop, char *err, size_t errlen);

#endif
