#include "billing/pg.h"

#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "util/ids.h"

/* Waits for events on fd until the deadline (monotonic ms) or *stop.
 * Returns the revents, 0 on timeout or stop. */
static short wait_fd(int fd, short events, int64_t deadline, atomic_bool *stop)
{
    for (;;) {
        int64_t left = deadline - mono_ms();
        struct pollfd p = {fd, events, 0};
        int rc;

        if (left <= 0 || (stop && atomic_load(stop)))
            return 0;
        /* short slices, so that a stopping controller is not held up */
        rc = poll(&p, 1, left > 100 ? 100 : (int)left);
        if (rc > 0)
            return p.revents ? p.revents : events;
        if (rc < 0)
            return POLLERR;
    }
}

static void set_err(char *err, size_t errlen, const char *what, PGconn *c)
{
    const char *m = c ? PQerrorMessage(c) : "";
    size_t n;

    snprintf(err, errlen, "%s%s%s", what, m[0] ? ": " : "", m);
    n = strlen(err);
    while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' '))
        err[--n] = '\0';
}

PGconn *pg_connect(const char *conninfo, int timeout_ms, atomic_bool *stop, char *err,
                   size_t errlen)
{
    /* our defaults first: a later keyword (the expanded conninfo) wins */
    static const char *const kw[] = {"connect_timeout", "application_name", "keepalives",
                                     "keepalives_idle", "keepalives_interval",
                                     "keepalives_count", "dbname", NULL};
    const char *val[] = {"5", "smdb-controller", "1", "10", "5", "3", conninfo, NULL};
    int64_t deadline = mono_ms() + timeout_ms;
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    PGconn *c = PQconnectStartParams(kw, val, 1);

    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (PQstatus(c) == CONNECTION_BAD) {
        set_err(err, errlen, "connect", c);
        PQfinish(c);
        return NULL;
    }
    while (st != PGRES_POLLING_OK) {
        short want;
        if (st == PGRES_POLLING_FAILED) {
            set_err(err, errlen, "connect", c);
            PQfinish(c);
            return NULL;
        }
        want = st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
        if (wait_fd(PQsocket(c), want, deadline, stop) == 0) {
            snprintf(err, errlen, "connect: no answer within %d ms", timeout_ms);
            PQfinish(c);
            return NULL;
        }
        st = PQconnectPoll(c);
    }
    if (PQsetnonblocking(c, 1) != 0) {
        set_err(err, errlen, "nonblocking", c);
        PQfinish(c);
        return NULL;
    }
    return c;
}

PGresult *pg_exec(PGconn *conn, const char *sql, int nparams, const char *const *params,
                  int timeout_ms, atomic_bool *stop, char *err, size_t errlen)
{
    int64_t deadline = mono_ms() + timeout_ms;
    PGresult *keep = NULL, *r;
    int sent = nparams > 0 ? PQsendQueryParams(conn, sql, nparams, NULL, params, NULL, NULL, 0)
                           : PQsendQuery(conn, sql);

    if (!sent) {
        set_err(err, errlen, "send", conn);
        return NULL;
    }
    /* a large batch may not fit the socket buffer at once */
    for (;;) {
        int f = PQflush(conn);
        short ev;
        if (f == 0)
            break;
        if (f < 0) {
            set_err(err, errlen, "send", conn);
            return NULL;
        }
        ev = wait_fd(PQsocket(conn), POLLIN | POLLOUT, deadline, stop);
        if (ev == 0) {
            snprintf(err, errlen, "send: timed out after %d ms", timeout_ms);
            return NULL;
        }
        if ((ev & POLLIN) && !PQconsumeInput(conn)) {
            set_err(err, errlen, "receive", conn);
            return NULL;
        }
    }
    for (;;) {
        while (PQisBusy(conn)) {
            if (wait_fd(PQsocket(conn), POLLIN, deadline, stop) == 0) {
                snprintf(err, errlen, "no answer within %d ms", timeout_ms);
                if (keep)
                    PQclear(keep);
                return NULL;
            }
            if (!PQconsumeInput(conn)) {
                set_err(err, errlen, "receive", conn);
                if (keep)
                    PQclear(keep);
                return NULL;
            }
        }
        if ((r = PQgetResult(conn)) == NULL)
            break;
        if (keep && PQresultStatus(keep) == PGRES_FATAL_ERROR) {
            PQclear(r);       /* the first error explains the failure */
        } else {
            if (keep)
                PQclear(keep);
            keep = r;
        }
    }
    if (keep == NULL)
        set_err(err, errlen, "no result", conn);
    else if (PQresultStatus(keep) == PGRES_FATAL_ERROR)
        snprintf(err, errlen, "%s", PQresultErrorMessage(keep));
    return keep;
}
