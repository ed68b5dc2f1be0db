/* The reporter's own SQL session on this server (MariaDB's SQL service,
 * mysql_real_connect_local()): it reads the signals of stats.h at every
 * report and applies the controller's targets with SET GLOBAL, which the
 * controller's own account on a compute (no SUPER) cannot.
 *
 * Used only by the reporter thread, never by the audit hook.  The session
 * has no user (the server skips privilege checks for it) and runs
 * statements in-process, so it is not a client connection: the hook never
 * counts it (no user name), and stats.c leaves it out of threads_running
 * and busy_sessions.  Every failure is logged once per run of failures and
 * leaves the report without the server's fields: the report itself always
 * goes out. */
#ifndef WA_SERVER_H
#define WA_SERVER_H

#include <stdatomic.h>
#include <stdint.h>

#include "stats.h"
#include "target.h"
#include "userlist.h"

struct wa_server {
    void *mysql;       /* MYSQL *; NULL = not connected */
    int thread_ready;  /* my_thread_init() done on this thread */
    int failing;       /* the current failure was logged */
    uint64_t bp_max;   /* @@innodb_buffer_pool_size_max, 0 = unknown */
    struct wa_tried tried;
    _Atomic unsigned long long applied; /* SET GLOBALs that succeeded (status) */
    _Atomic int sql_ok;                 /* the last read worked (status) */
    _Atomic long long read_us;          /* how long the last read took (status) */
};

void wa_server_init(struct wa_server *s);

/* Fill the SQL fields of *st (st->sql_ok says whether it worked), opening
 * the session first if needed.  Never blocks for long: the session's
 * statements run with a short max_statement_time and lock_wait_timeout.
 * Returns 1 when the server is still starting (no SQL yet: the first
 * report goes out before the server accepts connections), else 0. */
int wa_server_read(struct wa_server *s, const struct wa_userlist *admins, struct wa_stats *st);

/* 1 while mariadbd is still starting up (not yet ready for connections). */
int wa_server_starting(void);

/* Apply a target against the values read into *cur (which must be
 * sql_ok).  Returns how many SET GLOBALs it tried (0, 1 or 2): the caller
 * reports again soon so that the controller sees the result. */
int wa_server_apply(struct wa_server *s, const struct wa_target *t, const struct wa_stats *cur);

/* Close the session and release the thread's server state. */
void wa_server_close(struct wa_server *s);

#endif
