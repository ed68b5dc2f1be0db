/* The local SQL session (see server.h). */
#define _GNU_SOURCE /* RTLD_DEFAULT */
#include "server.h"

#include <mysql/plugin.h> /* the service declarations: sql_service */
#include <dlfcn.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"

/* mysql_real_connect_local() builds a THD on the calling thread, and a THD
 * needs the mysys per-thread state that server threads get from
 * my_thread_init().  The reporter is our own pthread, so it calls that
 * itself.  Looked up at run time: mariadbd exports it, but it is not part of
 * any plugin service, and the plugin links with -z defs. */
typedef char (*thread_init_fn)(void);
typedef void (*thread_end_fn)(void);

static int thread_setup(struct wa_server *s)
{
    if (s->thread_ready)
        return 0;
    thread_init_fn init = (thread_init_fn)dlsym(RTLD_DEFAULT, "my_thread_init");
    if (!init || init() != 0)
        return -1;
    s->thread_ready = 1;
    return 0;
}

/* SQL is only safe between the end of server start-up (the server sets
 * mysqld_server_started when it is ready for connections; the reporter's
 * first report goes out before that) and the start of shutdown (abort_loop,
 * after which storage engines and tables go away under a running
 * statement).  Both are mariadbd globals, exported like my_thread_init. */
static const volatile int *server_started;
static const volatile unsigned char *server_stopping;

enum { READY, STARTING, UNAVAILABLE };

static int server_state(void)
{
    if (!server_started) {
        server_started = dlsym(RTLD_DEFAULT, "mysqld_server_started");
        server_stopping = dlsym(RTLD_DEFAULT, "abort_loop");
        if (!server_started || !server_stopping) {
            server_started = NULL;
            return UNAVAILABLE;
        }
    }
    if (*server_stopping)
        return UNAVAILABLE;
    return *server_started ? READY : STARTING;
}

/* Log the first failure of a run; the next success logs the recovery. */
static void fail(struct wa_server *s, const char *what)
{
    if (!s->failing) {
        MYSQL *m = s->mysql;
        if (m)
            wa_log_warning("local SQL session: %s: %s (%u); reporting without server signals",
                           what, mysql_error(m), mysql_errno(m));
        else
            wa_log_warning("local SQL session: %s; reporting without server signals", what);
    }
    s->failing = 1;
}

static void disconnect(struct wa_server *s)
{
    if (s->mysql)
        mysql_close((MYSQL *)s->mysql);
    s->mysql = NULL;
}

void wa_server_init(struct wa_server *s)
{
    s->mysql = NULL;
    s->thread_ready = 0;
    s->failing = 0;
    s->bp_max = 0;
    s->tried.bp_bytes = s->tried.max_connections = 0;
    atomic_store(&s->applied, 0);
    atomic_store(&s->sql_ok, 0);
    atomic_store(&s->read_us, 0);
}

static int run(struct wa_server *s, const char *sql, const char *what)
{
    if (mysql_real_query((MYSQL *)s->mysql, sql, (unsigned long)strlen(sql)) != 0) {
        fail(s, what);
        return -1;
    }
    return 0;
}

/* Runs sql and returns its result, or NULL (logged). */
static MYSQL_RES *select_rows(struct wa_server *s, const char *sql, const char *what)
{
    if (run(s, sql, what) != 0)
        return NULL;
    MYSQL_RES *res = mysql_store_result((MYSQL *)s->mysql);
    if (!res)
        fail(s, what);
    return res;
}

static int connect_session(struct wa_server *s)
{
    if (s->mysql)
        return 0;
    if (thread_setup(s) != 0) {
        fail(s, "my_thread_init failed");
        return -1;
    }
    MYSQL *m = mysql_init(NULL);
    if (!m) {
        fail(s, "out of memory");
        return -1;
    }
    if (!mysql_real_connect_local(m)) {
        s->mysql = m;
        fail(s, "connect");
        disconnect(s);
        return -1;
    }
    s->mysql = m;
    /* Never stall the reporter on a lock (the reads below also carry a
     * statement time limit; a SET GLOBAL of a target does not: a buffer
     * pool resize takes as long as it takes, and cut short it would fail).
     * Keep the session out of the general and slow logs: it is not a
     * client's work. */
    if (run(s, "SET SESSION lock_wait_timeout=2, sql_log_off=1, long_query_time=3600",
            "session settings") != 0) {
        disconnect(s);
        return -1;
    }
    /* fixed at startup; older servers lack it (no clamp then) */
    s->bp_max = 0;
    if (mysql_real_query(m, "SELECT @@innodb_buffer_pool_size_max",
                         sizeof "SELECT @@innodb_buffer_pool_size_max" - 1) == 0) {
        MYSQL_RES *res = mysql_store_result(m);
        MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
        unsigned long *len = row ? mysql_fetch_lengths(res) : NULL;
        uint64_t v;
        if (row && row[0] && wa_parse_u64(row[0], len[0], &v) == 0)
            s->bp_max = v;
        if (res)
            mysql_free_result(res);
    }
    return 0;
}

/* One (name, value) row per signal; the labels are wa_stats_set's. */
static const char STATS_SQL[] =
    "SET STATEMENT max_statement_time=2 FOR "
    "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS"
    " WHERE VARIABLE_NAME IN ('THREADS_RUNNING','INNODB_BUFFER_POOL_PAGES_TOTAL',"
    "'INNODB_BUFFER_POOL_PAGES_DATA','INNODB_BUFFER_POOL_PAGES_FREE',"
    "'INNODB_BUFFER_POOL_READ_REQUESTS','INNODB_BUFFER_POOL_READS')"
    " UNION ALL SELECT 'OWN_ID', CONNECTION_ID()"
    " UNION ALL SELECT 'BP_BYTES', @@GLOBAL.innodb_buffer_pool_size"
    " UNION ALL SELECT 'MAX_CONNECTIONS', @@GLOBAL.max_connections"
    " UNION ALL SELECT 'OPEN_TRX', COUNT(*) FROM information_schema.INNODB_TRX"
    " UNION ALL SELECT 'EVENTS', IF(@@GLOBAL.event_scheduler = 'ON', COUNT(*), 0)"
    " FROM information_schema.EVENTS WHERE STATUS = 'ENABLED'";

static const char SESSIONS_SQL[] = "SET STATEMENT max_statement_time=2 FOR "
                                   "SELECT ID, USER, COMMAND FROM information_schema.PROCESSLIST";

static int read_stats(struct wa_server *s, struct wa_stats *st)
{
    MYSQL_RES *res = select_rows(s, STATS_SQL, "reading status");
    if (!res)
        return -1;
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res))) {
        unsigned long *len = mysql_fetch_lengths(res);
        if (row[0] && row[1])
            wa_stats_set(st, row[0], len[0], row[1], len[1]);
    }
    mysql_free_result(res);
    return 0;
}

static int read_sessions(struct wa_server *s, const struct wa_userlist *admins,
                         struct wa_stats *st)
{
    MYSQL_RES *res = select_rows(s, SESSIONS_SQL, "reading the process list");
    if (!res)
        return -1;
    MYSQL_ROW row;
    uint64_t busy = 0;
    while ((row = mysql_fetch_row(res))) {
        unsigned long *len = mysql_fetch_lengths(res);
        uint64_t id;
        if (!row[0] || wa_parse_u64(row[0], len[0], &id) != 0)
            continue;
        if (id == st->own_id)
            st->own_listed = 1;
        busy += (uint64_t)wa_stats_busy_row(admins, st->own_id, id, row[1], row[1] ? len[1] : 0,
                                            row[2], row[2] ? len[2] : 0);
    }
    mysql_free_result(res);
    st->busy_sessions = busy;
    return 0;
}

int wa_server_starting(void)
{
    return server_state() == STARTING;
}

static int read_all(struct wa_server *s, const struct wa_userlist *admins, struct wa_stats *st)
{
    st->sql_ok = 0;
    st->seen = 0;
    st->own_listed = 0;
    int state = server_state();
    if (state != READY) {
        disconnect(s); /* shutting down: let go of the session now */
        return state == STARTING;
    }
    if (connect_session(s) != 0)
        return 0;
    if (read_stats(s, st) != 0 || !(st->seen & WA_SEEN_OWN_ID) ||
        read_sessions(s, admins, st) != 0) {
        /* a session that failed may be broken for good (the server killed
         * it): open a fresh one next time */
        if (!(st->seen & WA_SEEN_OWN_ID))
            fail(s, "status rows incomplete");
        disconnect(s);
        return 0;
    }
    st->bp_max = s->bp_max;
    if (s->bp_max)
        st->seen |= WA_SEEN_BP_MAX;
    wa_stats_finish(st);
    if (!st->sql_ok) {
        fail(s, "status rows incomplete");
        return 0;
    }
    if (s->failing)
        wa_log_note("local SQL session works again: reporting server signals");
    s->failing = 0;
    return 0;
}

int wa_server_read(struct wa_server *s, const struct wa_userlist *admins, struct wa_stats *st)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int starting = read_all(s, admins, st);
    clock_gettime(CLOCK_MONOTONIC, &b);
    atomic_store(&s->sql_ok, st->sql_ok);
    if (st->sql_ok)
        atomic_store(&s->read_us, (long long)(b.tv_sec - a.tv_sec) * 1000000 +
                                      (b.tv_nsec - a.tv_nsec) / 1000);
    return starting;
}

static int set_global(struct wa_server *s, const char *var, uint64_t from, uint64_t to)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SET GLOBAL %s=%" PRIu64, var, to);
    if (mysql_real_query((MYSQL *)s->mysql, sql, (unsigned long)strlen(sql)) != 0) {
        /* once per target: wa_target_pick does not try it again */
        wa_log_warning("target: %s: %s (%u)", sql, mysql_error((MYSQL *)s->mysql),
                       mysql_errno((MYSQL *)s->mysql));
        return 0;
    }
    atomic_fetch_add(&s->applied, 1);
    /* the server may have rounded or clamped it (with a warning only): log
     * what it took */
    uint64_t now = to;
    snprintf(sql, sizeof sql, "SELECT @@GLOBAL.%s", var);
    if (mysql_real_query((MYSQL *)s->mysql, sql, (unsigned long)strlen(sql)) == 0) {
        MYSQL_RES *res = mysql_store_result((MYSQL *)s->mysql);
        MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
        unsigned long *len = row ? mysql_fetch_lengths(res) : NULL;
        if (!row || !row[0] || wa_parse_u64(row[0], len[0], &now) != 0)
            now = to;
        if (res)
            mysql_free_result(res);
    }
    if (now == to)
        wa_log_note("target: %s=%" PRIu64 " (was %" PRIu64 ")", var, to, from);
    else
        wa_log_note("target: %s=%" PRIu64 " (asked %" PRIu64 ", was %" PRIu64 ")", var, now,
                    to, from);
    return 1;
}

int wa_server_apply(struct wa_server *s, const struct wa_target *t, const struct wa_stats *cur)
{
    if (!s->mysql || !cur->sql_ok)
        return 0;
    int n = 0;
    uint64_t v = wa_target_pick(t->has_bp, t->bp_bytes, s->bp_max, cur->bp_bytes,
                                &s->tried.bp_bytes);
    if (v) {
        set_global(s, "innodb_buffer_pool_size", cur->bp_bytes, v);
        n++;
    }
    v = wa_target_pick(t->has_mc, t->max_connections, 0, cur->max_connections,
                       &s->tried.max_connections);
    if (v) {
        set_global(s, "max_connections", cur->max_connections, v);
        n++;
    }
    return n;
}

void wa_server_close(struct wa_server *s)
{
    disconnect(s);
    if (s->thread_ready) {
        thread_end_fn end = (thread_end_fn)dlsym(RTLD_DEFAULT, "my_thread_end");
        if (end)
            end();
        s->thread_ready = 0;
    }
}
