/* The REST API (libmicrohttpd on a few epoll threads), the only code that
 * knows HTTP: statuses, headers, the server.  Fast requests are answered on
 * those threads; the router hands slow ones (a wake that must start a
 * compute, create, suspend, resume, delete) to a worker pool with the
 * connection suspended, so a flood of idle sockets or of slow requests does
 * not hold up activity reports and wakes of running computes. */
#ifndef SMDB_API_H
#define SMDB_API_H

#include "util/config.h"

/* Listens and serves; -1 if it cannot. */
int api_start(const config *cfg);
/* Stops accepting, finishes the slow requests in progress, stops. */
void api_stop(void);

#endif
