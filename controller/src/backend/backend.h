/* The compute backends sit behind this one interface (DESIGN.md §3).
 * Every call is synchronous and may take as long as a start takes; callers
 * hold the compute's transition (a state no other actor acts on) meanwhile. */
#ifndef SMDB_BACKEND_H
#define SMDB_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "util/config.h"
#include "core/compute.h"

/* PROC_UNKNOWN: the engine that would know cannot be asked now (a container
 * engine down); nothing may be concluded from it. */
typedef enum { PROC_DEAD, PROC_RUNNING, PROC_FROZEN, PROC_UNKNOWN } proc_status;

/* Identity of a running instance and where the proxy reaches it.  host is
 * empty where it never changes (the process backend: compute_host); a
 * container gets a new address at every start. */
typedef struct {
    int pid;
    long long pid_start;
    char host[64];
} proc_ident;

typedef struct {
    long long client_sessions;   /* sessions other than the admin's */
} compute_probe;

typedef struct backend {
    const char *name;
    /* Data directory and configuration; report_token goes to the compute's
     * plugin configuration and nowhere else. */
    int (*create)(const compute_rec *c, const char *report_token, char *err, size_t errlen);
    /* Starts the server and returns once a client `SELECT 1` is served.
     * spawned() is called as soon as the process exists, so the caller can
     * record it before waiting: a controller that dies during the wait
     * leaves a server its successor can find. */
    int (*start)(const compute_rec *c, proc_ident *out,
                 void (*spawned)(const compute_rec *c, const proc_ident *id),
                 char *err, size_t errlen);
    int (*stop)(const compute_rec *c, char *err, size_t errlen);
    int (*freeze)(const compute_rec *c, char *err, size_t errlen);
    int (*thaw)(const compute_rec *c, char *err, size_t errlen);
    int (*destroy)(const compute_rec *c, char *err, size_t errlen);
    int (*resize)(const compute_rec *c, int cu, char *err, size_t errlen);
    proc_status (*status)(const compute_rec *c);
    /* A `SELECT 1` on a fresh admin session. */
    int (*ready)(const compute_rec *c);
    /* Runs SQL as the admin (creating the project's user at creation). */
    int (*admin_sql)(const compute_rec *c, const char *sql, char *err, size_t errlen);
    /* The direct check of the safe-suspend rule, on the compute itself. */
    int (*probe)(const compute_rec *c, compute_probe *out);
    /* Bytes of storage the compute uses; -1 if unknown. */
    long long (*storage_bytes)(const compute_rec *c);
    /* Optional: false (with the reason) while the backend cannot act at all,
     * e.g. its engine is unreachable.  NULL: always available. */
    bool (*available)(char *err, size_t errlen);
    /* Optional: calls fn with the compute id of every instance the backend
     * finds under its own name (reconcile finds instances the store does not
     * know).  -1 if it cannot list. */
    int (*list)(void (*fn)(const char *cid, void *arg), void *arg);
} backend;

/* NULL (with a message in err) if the host does not allow it. */
const backend *backend_process(const config *cfg, char *err, size_t errlen);
/* Never NULL for a valid configuration: an engine that is down now is
 * reported by available() until it answers. */
const backend *backend_docker(const config *cfg, char *err, size_t errlen);

#endif
