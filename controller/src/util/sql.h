/* Admin sessions to a compute (mariadb-connector-c).  A local process
 * compute is reached over its unix socket, where the controller logs in as
 * the OS user it runs as (unix_socket authentication), so no such compute
 * holds a password of the controller's; a container compute over TCP with
 * the per-container password its backend set (backend/docker.c). */
#ifndef SMDB_SQL_H
#define SMDB_SQL_H

#include <mysql.h>
#include <stddef.h>

MYSQL *sql_connect(const char *socket_path, const char *user, int timeout_s,
                   char *err, size_t errlen);
/* The same over TCP with a password (computes in containers). */
MYSQL *sql_connect_tcp(const char *host, int port, const char *user, const char *password,
                       int timeout_s, char *err, size_t errlen);
int sql_ping_tcp(const char *host, int port, const char *user, const char *password,
                 int timeout_s);
int sql_exec(MYSQL *m, const char *q, char *err, size_t errlen);
/* First column of the first row as a number; -1 on error. */
long long sql_value(MYSQL *m, const char *q);
/* A fresh connection, `SELECT 1`, close: the readiness probe. 0 if served. */
int sql_ping(const char *socket_path, const char *user, int timeout_s);
/* Client sessions on the compute, excluding the admin user, system threads and
 * this session; sessions still authenticating count (they are clients).
 * -1 on error. */
long long sql_client_sessions(MYSQL *m, const char *admin_user);

/* What the freeze rule asks of a compute that has client sessions
 * (docs/controller-layers.md, "The scheduler's rule"): a compute is frozen
 * with sessions open only if none of them runs a statement or holds a
 * transaction, the server does no work of its own, and every session has
 * been idle at least the freeze time. */
typedef struct {
    long long sessions;      /* as sql_client_sessions() */
    long long busy;          /* of them running a statement or still authenticating */
    long long open_trx;      /* InnoDB transactions (information_schema.INNODB_TRX) */
    long long server_work;   /* event scheduler, replication threads, replicas attached */
    long long min_idle_ms;   /* idle time of the most recently active session; -1: none */
} sql_activity;

/* 0, or -1 on error (out then undefined). */
int sql_activity_probe(MYSQL *m, const char *admin_user, sql_activity *out);

/* The same on a fresh session m (NULL: its connect failed, err is set),
 * closing it afterwards: the backends' one-statement admin calls. */
int sql_exec_close(MYSQL *m, const char *q, char *err, size_t errlen);
int sql_activity_probe_close(MYSQL *m, const char *admin_user, sql_activity *out);

#endif
