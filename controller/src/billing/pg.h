/* libpq with deadlines.  A PostgreSQL server that hangs (stopped, network
 * black hole) must cost the exporter a bounded wait, never a thread stuck
 * in a blocking call: everything here is non-blocking libpq driven by
 * poll() against a deadline, and gives up early when *stop becomes true. */
#ifndef SMDB_BILLING_PG_H
#define SMDB_BILLING_PG_H

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stddef.h>

/* Connects with the given conninfo (its own settings win over our
 * defaults).  NULL on failure, with a message in err. */
PGconn *pg_connect(const char *conninfo, int timeout_ms, atomic_bool *stop, char *err,
                   size_t errlen);

/* Runs sql (one statement with $n parameters when nparams > 0, otherwise
 * any number of statements).  Returns the first failed result, else the
 * last one; NULL when the connection failed or the deadline passed (then
 * the connection is unusable: PQfinish it).  PQclear the result. */
PGresult *pg_exec(PGconn *conn, const char *sql, int nparams, const char *const *params,
                  int timeout_ms, atomic_bool *stop, char *err, size_t errlen);

#endif
