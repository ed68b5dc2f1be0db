#include "util/sql.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

static void lib_init(void)
{
    mysql_library_init(0, NULL, NULL);
}

/* A handle with the timeouts set; NULL (err says so) if out of memory. */
static MYSQL *handle(int timeout_s, char *err, size_t errlen)
{
    unsigned int t = (unsigned int)timeout_s;
    MYSQL *m;

    pthread_once(&lib_once, lib_init);
    m = mysql_init(NULL);
    if (m == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &t);
    mysql_optionsv(m, MYSQL_OPT_READ_TIMEOUT, &t);
    mysql_optionsv(m, MYSQL_OPT_WRITE_TIMEOUT, &t);
    return m;
}

static MYSQL *connect_or_close(MYSQL *m, const char *host, const char *user,
                               const char *password, int port, const char *socket_path,
                               char *err, size_t errlen)
{
    if (m && mysql_real_connect(m, host, user, password, NULL, (unsigned)port, socket_path,
                                0) == NULL) {
        snprintf(err, errlen, "%s", mysql_error(m));
        mysql_close(m);
        return NULL;
    }
    return m;
}

MYSQL *sql_connect(const char *socket_path, const char *user, int timeout_s,
                   char *err, size_t errlen)
{
    return connect_or_close(handle(timeout_s, err, errlen), NULL, user, NULL, 0, socket_path,
                            err, errlen);
}

MYSQL *sql_connect_tcp(const char *host, int port, const char *user, const char *password,
                       int timeout_s, char *err, size_t errlen)
{
    MYSQL *m = handle(timeout_s, err, errlen);
    my_bool no = 0;

    /* a compute on a private network, reached by address: no TLS of its
     * own to verify (connector 3.4 would otherwise insist) */
    if (m)
        mysql_optionsv(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &no);
    return connect_or_close(m, host, user, password, port, NULL, err, errlen);
}

int sql_exec(MYSQL *m, const char *q, char *err, size_t errlen)
{
    MYSQL_RES *res;

    if (mysql_query(m, q) != 0) {
        snprintf(err, errlen, "%s", mysql_error(m));
        return -1;
    }
    res = mysql_store_result(m);
    if (res)
        mysql_free_result(res);
    return 0;
}

long long sql_value(MYSQL *m, const char *q)
{
    MYSQL_RES *res;
    MYSQL_ROW row;
    long long v = -1;

    if (mysql_query(m, q) != 0 || (res = mysql_store_result(m)) == NULL)
        return -1;
    row = mysql_fetch_row(res);
    if (row && row[0])
        v = strtoll(row[0], NULL, 10);
    mysql_free_result(res);
    return v;
}

/* SELECT 1 on m, then closes it; 0 if served. */
static int ping_close(MYSQL *m)
{
    long long v;

    if (m == NULL)
        return -1;
    v = sql_value(m, "SELECT 1");
    mysql_close(m);
    return v == 1 ? 0 : -1;
}

int sql_ping(const char *socket_path, const char *user, int timeout_s)
{
    char err[256];

    return ping_close(sql_connect(socket_path, user, timeout_s, err, sizeof(err)));
}

int sql_ping_tcp(const char *host, int port, const char *user, const char *password,
                 int timeout_s)
{
    char err[256];

    return ping_close(sql_connect_tcp(host, port, user, password, timeout_s, err, sizeof(err)));
}

int sql_exec_close(MYSQL *m, const char *q, char *err, size_t errlen)
{
    int rc;

    if (m == NULL)
        return -1;
    rc = sql_exec(m, q, err, errlen);
    mysql_close(m);
    return rc;
}

long long sql_client_sessions(MYSQL *m, const char *admin_user)
{
    char q[512], esc[130];
    long long listed, counted = 0;
    MYSQL_RES *res;
    MYSQL_ROW row;

    if (strlen(admin_user) > 64)
        return -1;
    mysql_real_escape_string(m, esc, admin_user, (unsigned long)strlen(admin_user));
    snprintf(q, sizeof(q),
             "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
             "WHERE ID <> CONNECTION_ID() AND COMMAND NOT IN ('Daemon', 'Binlog Dump') "
             "AND USER NOT IN ('system user', 'event_scheduler', '%s')", esc);
    listed = sql_value(m, q);
    if (listed < 0)
        return -1;
    /* The process list shows every session only while this account holds
     * PROCESS, which a tenant with CREATE USER can take from it; the
     * activity plugin's own count cannot be altered by SQL.  A session
     * either sees keeps the compute up. */
    if (mysql_query(m, "SHOW GLOBAL STATUS LIKE 'Wake_activity_connections'") == 0 &&
        (res = mysql_store_result(m)) != NULL) {
        if ((row = mysql_fetch_row(res)) != NULL && row[1])
            counted = strtoll(row[1], NULL, 10);
        mysql_free_result(res);
    }
    return listed > counted ? listed : counted;
}

/* One statement for the rest, so that the counts are of one moment.
 * TIME_MS of a sleeping session counts from the end of its last command,
 * which is when its last bytes went to the client: the proxy's rule ("a
 * session whose last byte is younger than the freeze time cannot be on a
 * frozen compute", docs/module.md) holds only if no session younger than
 * that is ever frozen.  The admin account keeps PROCESS, which is what
 * PROCESSLIST and INNODB_TRX need, and its role reads mysql.event (both
 * granted at creation, core/lifecycle.c): a compute without them cannot be
 * asked, so it is never frozen with sessions.  Server work: enabled events
 * while the event scheduler runs (compute.cnf turns it on), replication
 * threads; InnoDB's own background threads ("system user", Daemon) do no
 * tenant's work and freeze with it. */
int sql_activity_probe(MYSQL *m, const char *admin_user, sql_activity *out)
{
    char q[1024], esc[130];
    MYSQL_RES *res;
    MYSQL_ROW row;
    int rc = -1;

    if (strlen(admin_user) > 64)
        return -1;
    out->sessions = sql_client_sessions(m, admin_user);
    if (out->sessions < 0)
        return -1;
    mysql_real_escape_string(m, esc, admin_user, (unsigned long)strlen(admin_user));
    snprintf(q, sizeof(q),
             "SELECT COUNT(*), COALESCE(SUM(COMMAND <> 'Sleep'), 0), COALESCE(MIN(TIME_MS), -1), "
             "(SELECT COUNT(*) FROM information_schema.INNODB_TRX), "
             "(SELECT COUNT(*) FROM information_schema.PROCESSLIST "
             " WHERE COMMAND IN ('Binlog Dump', 'Slave_IO', 'Slave_SQL', 'Slave_worker')) + "
             "(SELECT COUNT(*) FROM information_schema.PROCESSLIST "
             " WHERE USER = 'event_scheduler') * "
             "(SELECT COUNT(*) FROM mysql.event WHERE status = 'ENABLED') "
             "FROM information_schema.PROCESSLIST "
             "WHERE ID <> CONNECTION_ID() AND COMMAND NOT IN ('Daemon', 'Binlog Dump') "
             "AND USER NOT IN ('system user', 'event_scheduler', '%s')", esc);
    if (mysql_query(m, q) != 0 || (res = mysql_store_result(m)) == NULL)
        return -1;
    if ((row = mysql_fetch_row(res)) != NULL && row[0] && row[1] && row[2] && row[3] && row[4]) {
        long long listed = strtoll(row[0], NULL, 10);
        out->busy = strtoll(row[1], NULL, 10);
        out->min_idle_ms = (long long)strtod(row[2], NULL);
        out->open_trx = strtoll(row[3], NULL, 10);
        out->server_work = strtoll(row[4], NULL, 10);
        /* sessions the list does not show (PROCESS taken away, see
         * sql_client_sessions) are of unknown state: busy */
        if (out->sessions > listed)
            out->busy += out->sessions - listed;
        rc = 0;
    }
    mysql_free_result(res);
    return rc;
}

int sql_activity_probe_close(MYSQL *m, const char *admin_user, sql_activity *out)
{
    int rc;

    if (m == NULL)
        return -1;
    rc = sql_activity_probe(m, admin_user, out);
    mysql_close(m);
    return rc;
}
