/* The API server below the router: who may connect (conn.c) and the
 * worker pool that runs slow requests off the epoll threads (work.c).
 * Rule: nothing here knows a route or a handler; server.c joins them. */
#ifndef SMDB_API_INTERNAL_H
#define SMDB_API_INTERNAL_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "util/config.h"

/* Connection admission.  api_conn_init raises RLIMIT_NOFILE as far as the
 * configured connection limit needs (within the hard limit) and returns the
 * connection limit in force, below the open-file limit; *mhd_limit is the
 * backstop to give MHD (the file limit less a reserve for everything else
 * the controller opens).  -1 if it cannot allocate its table. */
int api_conn_init(const config *cfg, unsigned *mhd_limit);
void api_conn_free(void);
/* MHD_OPTION_ACCEPT_POLICY: refuses (closes at once) a connection over the
 * global or the per-address limit.  Loopback peers have no per-address limit
 * unless api_per_ip_exempt_loopback = 0: the co-located proxy and every
 * compute's plugin share 127.0.0.1, and limiting it starves them first. */
enum MHD_Result api_conn_accept(void *cls, const struct sockaddr *addr, socklen_t len);
/* MHD_OPTION_NOTIFY_CONNECTION: counts open connections. */
void api_conn_notify(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                     enum MHD_ConnectionNotificationCode code);
int api_conn_open(void);
long long api_conn_refused(void);

/* Open connections per IPv4 address (host order), a fixed-size open
 * addressing table sized for the connection limit.  Pure; unit tested. */
typedef struct {
    uint32_t addr;
    int count;                /* 0: free slot */
} ip_slot;

typedef struct {
    ip_slot *slot;
    size_t mask;              /* size - 1, size a power of two */
    size_t used;
} ip_table;

int ip_table_init(ip_table *t, size_t max_entries);
void ip_table_free(ip_table *t);
int ip_table_count(const ip_table *t, uint32_t addr);
/* 0 counted; -1 the table is full (more addresses than it was sized for). */
int ip_table_add(ip_table *t, uint32_t addr);
void ip_table_del(ip_table *t, uint32_t addr);

/* Worker pool.  A job runs fn(arg, false) on a worker thread, or
 * fn(arg, true) if the pool is stopping before it ran, so a job is always
 * finished exactly once. */
typedef void (*work_fn)(void *arg, bool cancelled);

int api_work_start(int workers, int queue_max);
/* Enqueues a job.  before(arg) runs first, under the queue lock, only if the
 * job is accepted: the caller suspends its connection there, so no worker
 * can finish (and resume) the job before it was suspended.  -1 if the queue
 * is full or the pool is stopping (before was not called). */
int api_work_submit(work_fn fn, void *arg, void (*before)(void *arg));
/* Stops taking jobs, cancels queued ones, waits for running ones. */
void api_work_stop(void);
int api_work_queued(void);

#endif
