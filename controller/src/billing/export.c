/* The exporter thread: moves usage events from Redis to the PostgreSQL
 * ledger, exactly once.
 *
 *   1. take the oldest events of export:queue (their JSON from
 *      export:pending),
 *   2. INSERT them in one statement, ON CONFLICT (key) DO NOTHING,
 *   3. only after PostgreSQL answered the (autocommitted) INSERT, remove
 *      them from export:queue and export:pending.
 *
 * A crash between 2 and 3 exports the batch again on restart; the primary
 * key on the idempotency key makes the second insert a no-op (counted as
 * duplicates).  A crash before 2 loses nothing: the events are still
 * pending.  So every event reaches the ledger once, whatever dies when.
 *
 * PostgreSQL down or hanging: every call has a deadline (pg.c), the
 * events wait in Redis, the thread retries with backoff, and nothing else
 * in the controller notices. */
#include "billing/billing.h"
#include "billing/private.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "billing/pg.h"
#include "store/store.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/strbuf.h"

#define BATCH 1000
#define CONNECT_TIMEOUT_MS 5000
#define QUERY_TIMEOUT_MS 15000     /* above the server-side statement_timeout */
#define MAX_BACKOFF_MS 5000

/* config/ledger.sql, made into a string literal by the Makefile */
static const char ledger_sql[] =
#include "ledger_sql.inc"
    ;

static const char session_sql[] = "SET statement_timeout = '10s';"
                                  "SET lock_timeout = '5s';"
                                  "SET idle_in_transaction_session_timeout = '60s'";

static const char insert_sql[] =
    "INSERT INTO usage_ledger (key, kind, project, compute_id, start_ms, end_ms, seconds,"
    " cu, cu_seconds, bytes, byte_seconds, bytes_in, bytes_out, event)"
    " SELECT e->>'key', e->>'kind', e->>'project', e->>'compute_id',"
    " (e->>'start_ms')::numeric::bigint, (e->>'end_ms')::numeric::bigint,"
    " (e->>'seconds')::float8, (e->>'cu')::numeric::int, (e->>'cu_seconds')::float8,"
    " (e->>'bytes')::numeric::bigint, (e->>'byte_seconds')::float8,"
    " (e->>'bytes_in')::numeric::bigint, (e->>'bytes_out')::numeric::bigint, e"
    " FROM jsonb_array_elements($1::jsonb) AS e"
    " ON CONFLICT (key) DO NOTHING";

static const config *cfg;
static pthread_t thread;
static atomic_bool stopping;
static atomic_int ledger_up = -1;
static bool failing;            /* exporter thread only: for the log */
static PGconn *conn;
static int64_t last_complaint;

int exporter_ledger_up(void) { return atomic_load(&ledger_up); }

/* Logs a ledger problem, at most every 30 s while it lasts. */
static void complain(const char *what, const char *err)
{
    if (!failing || mono_ms() - last_complaint > 30000) {
        log_warn("billing ledger: %s: %s (events wait in Redis)", what, err);
        last_complaint = mono_ms();
    }
    atomic_store(&ledger_up, 0);
    failing = true;
    store_counter_incr("billing_export_failures_total", 1);
}

static bool command_ok(PGresult *r)
{
    bool ok = r && (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);

    if (r)
        PQclear(r);
    return ok;
}

static bool open_ledger(void)
{
    char err[512];
    size_t n = strlen(ledger_sql) + 256;
    char *ddl = malloc(n);

    conn = pg_connect(cfg->pg_conninfo, CONNECT_TIMEOUT_MS, &stopping, err, sizeof(err));
    if (conn == NULL) {
        free(ddl);
        complain("connect", err);
        return false;
    }
    /* the schema, idempotently; the lock keeps two controllers starting at
     * once from racing on CREATE TABLE IF NOT EXISTS */
    if (ddl)
        snprintf(ddl, n, "BEGIN; SELECT pg_advisory_xact_lock(hashtext('smdb usage_ledger'));\n"
                         "%s\nCOMMIT;", ledger_sql);
    if (ddl == NULL ||
        !command_ok(pg_exec(conn, session_sql, 0, NULL, QUERY_TIMEOUT_MS, &stopping, err,
                            sizeof(err))) ||
        !command_ok(pg_exec(conn, ddl, 0, NULL, QUERY_TIMEOUT_MS, &stopping, err, sizeof(err)))) {
        complain("schema", ddl ? err : "out of memory");
        free(ddl);
        PQfinish(conn);
        conn = NULL;
        return false;
    }
    free(ddl);
    log_info("billing ledger: connected");
    return true;
}

static void close_ledger(void)
{
    if (conn)
        PQfinish(conn);
    conn = NULL;
}

/* An error in the data itself (SQLSTATE class 22 or 23), as opposed to the
 * connection or the server: retrying the same batch would fail forever. */
static bool data_error(PGresult *r)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

    return state && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0);
}

/* Inserts a JSON array of events. >= 0 rows inserted; -1 connection or
 * server failure; -2 the data was refused. */
static long long insert(const char *json, char *err, size_t errlen)
{
    const char *params[] = {json};
    PGresult *r = pg_exec(conn, insert_sql, 1, params, QUERY_TIMEOUT_MS, &stopping, err, errlen);
    long long n;

    if (r == NULL)
        return -1;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        n = data_error(r) ? -2 : -1;
        PQclear(r);
        return n;
    }
    n = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return n;
}

/* A batch the ledger refused: event by event, so that one bad event (which
 * our code should never produce) is set aside in export:rejected instead
 * of blocking the queue forever. */
static int insert_one_by_one(char **keys, char **vals, int n, long long *inserted)
{
    char err[512];

    *inserted = 0;
    for (int i = 0; i < n; i++) {
        strbuf one = {0};
        long long rc;
        if (vals[i] == NULL)
            continue;
        if (!sb_add(&one, "[", 1) || !sb_add(&one, vals[i], strlen(vals[i])) ||
            !sb_add(&one, "]", 1)) {
            sb_free(&one);
            return -1;
        }
        rc = insert(one.buf, err, sizeof(err));
        sb_free(&one);
        if (rc == -1)
            return -1;
        if (rc == -2) {
            if (store_export_reject(keys[i], vals[i]) < 0)
                return -1;
            log_error("billing ledger refused event %s (kept in export:rejected): %s", keys[i],
                      err);
            store_counter_incr("billing_events_rejected_total", 1);
            continue;
        }
        *inserted += rc;
    }
    return 0;
}

/* Retires events (exported, or expired without a ledger); -1 on a Redis
 * error. */
static int retire(const char *const *keys, int n)
{
    int kept;

    if (store_usage_retire(keys, n, &kept) < 0)
        return -1;
    if (kept > 0) {
        store_counter_incr("billing_usage_fold_refused_total", kept);
        log_error("billing: %d retired events could not be aggregated (out of bounds); "
                  "they stay in the usage index", kept);
    }
    return 0;
}

/* Exports one batch.  Returns the number of queue entries handled (0: the
 * queue is empty), -1 on a ledger failure, -2 on a Redis failure. */
static int export_batch(void)
{
    char err[512];
    store_batch b;
    strbuf json = {0};
    int n, nev = 0, rc = -2;
    long long inserted = 0;

    if ((n = store_export_next(BATCH, &b)) <= 0)
        return n < 0 ? -2 : 0;
    if (!sb_add(&json, "[", 1))
        goto out;
    for (int i = 0; i < n; i++) {
        /* a queue entry without its event was acknowledged half-way by an
         * older controller: nothing to export, just drop it */
        if (b.events[i] == NULL)
            continue;
        if ((nev > 0 && !sb_add(&json, ",", 1)) ||
            !sb_add(&json, b.events[i], strlen(b.events[i])))
            goto out;
        nev++;
    }
    if (!sb_add(&json, "]", 1))
        goto out;
    if (nev > 0) {
        inserted = insert(json.buf, err, sizeof(err));
        if (inserted == -2 && insert_one_by_one(b.keys, b.events, n, &inserted) < 0)
            inserted = -1;
        if (inserted < 0) {
            complain("export", err);
            rc = -1;
            goto out;
        }
    }
    /* committed: now, and only now, the events leave the queue (and the
     * usage index, for the hourly buckets) */
    if (retire((const char *const *)b.keys, n) < 0)
        goto out;
    store_counter_incr("billing_events_exported_total", nev);
    if (nev > inserted)
        store_counter_incr("billing_export_duplicates_total", nev - inserted);
    rc = n;
out:
    sb_free(&json);
    store_batch_free(&b);
    return rc;
}

/* Events in export:pending that have no queue entry (written by a version
 * of the metering script without the queue) get one, so that they are
 * exported too.  Cheap when nothing is missing: two counts. */
static void repair_queue(void)
{
    int added = store_export_repair();

    if (added > 0)
        log_info("billing: queued %d pending events that had no queue entry", added);
}

static void pause_ms(int64_t ms)
{
    int64_t end = mono_ms() + ms;

    while (!atomic_load(&stopping) && mono_ms() < end)
        usleep(20000);
}

/* Without a ledger: retires events older than usage_retention_s (oldest
 * first, by end), so Redis keeps a bounded tail of per-event records and
 * the hourly buckets.  Returns the number retired, -1 on a Redis error. */
static int retire_expired(void)
{
    store_batch b;
    int n = store_export_expired(now_ms() - (int64_t)cfg->usage_retention_s * 1000, 1000, &b);

    if (n < 0)
        return -1;
    if (n > 0 && retire((const char *const *)b.keys, n) < 0)
        n = -1;
    store_batch_free(&b);
    if (n > 0)
        store_counter_incr("billing_events_expired_total", n);
    return n;
}

static void *retention_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&stopping)) {
        if (!billing_is_leader()) {
            pause_ms(cfg->export_interval_ms);
            continue;
        }
        int n = retire_expired();
        if (n < 1000)
            pause_ms(n < 0 ? MAX_BACKOFF_MS : cfg->export_interval_ms);
    }
    return NULL;
}

static void *exporter_main(void *arg)
{
    int64_t backoff = 0, last_repair = 0;

    (void)arg;
    while (!atomic_load(&stopping)) {
        int rc;

        /* one exporter at a time: the lease holder's */
        if (!billing_is_leader()) {
            pause_ms(cfg->export_interval_ms);
            continue;
        }
        if (mono_ms() - last_repair > 60000) {
            repair_queue();
            last_repair = mono_ms();
        }
        if (conn == NULL && !open_ledger()) {
            rc = -1;
        } else {
            rc = export_batch();
            if (rc == -1)
                close_ledger();   /* unknown state after a failure: start afresh */
        }
        if (rc < 0) {
            int64_t base = cfg->export_interval_ms > 200 ? cfg->export_interval_ms : 200;
            backoff = backoff ? backoff * 2 : base;
            if (backoff > MAX_BACKOFF_MS)
                backoff = MAX_BACKOFF_MS;
            pause_ms(backoff);
            continue;
        }
        atomic_store(&ledger_up, 1);
        if (failing)
            log_info("billing ledger: exporting again");
        failing = false;
        backoff = 0;
        if (rc < BATCH)
            pause_ms(cfg->export_interval_ms);
    }
    close_ledger();
    return NULL;
}

int exporter_start(const config *c)
{
    cfg = c;
    atomic_store(&stopping, false);
    atomic_store(&ledger_up, c->pg_conninfo[0] ? 0 : -1);
    if (pthread_create(&thread, NULL, c->pg_conninfo[0] ? exporter_main : retention_main,
                       NULL) != 0)
        return -1;
    return 0;
}

void exporter_stop(void)
{
    atomic_store(&stopping, true);
    pthread_join(thread, NULL);
    atomic_store(&ledger_up, -1);
}
