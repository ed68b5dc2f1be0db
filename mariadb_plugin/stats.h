/* What the reporter reads from the server itself at every report (the
 * autoscaler's and the idle detector's signals), and the pure helpers that
 * turn the local SQL session's text rows into it.  server.c runs the
 * queries; nothing here touches the server. */
#ifndef WA_STATS_H
#define WA_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "userlist.h"

struct wa_stats {
    int sql_ok; /* 1: every field down to max_connections was read */
    uint64_t threads_running;  /* Threads_running, minus our own session */
    uint64_t busy_sessions;    /* sessions with a statement running (wa_stats_busy_row) */
    uint64_t open_trx;         /* rows of information_schema.INNODB_TRX */
    uint64_t events;           /* enabled events, 0 unless event_scheduler=ON */
    uint64_t bp_bytes;         /* @@innodb_buffer_pool_size */
    uint64_t bp_pages_total;   /* Innodb_buffer_pool_pages_total ... */
    uint64_t bp_pages_data;
    uint64_t bp_pages_free;
    uint64_t bp_read_requests; /* cumulative, as the server counts them */
    uint64_t bp_reads;
    uint64_t max_connections;  /* @@max_connections */

    /* not reported: used to apply targets */
    uint64_t bp_max;   /* @@innodb_buffer_pool_size_max; 0 = unknown */
    uint64_t own_id;   /* CONNECTION_ID() of the plugin's local session */
    int own_listed;    /* that session appeared in PROCESSLIST */
    unsigned seen;     /* bit per name of wa_stats_set that was read */

    int cpu_ok;        /* needs no SQL: reported even when the session fails */
    uint64_t cpu_ms;
};

/* Bits of `seen`; all of WA_SEEN_REQUIRED must be there for sql_ok. */
enum {
    WA_SEEN_THREADS_RUNNING = 1u << 0,
    WA_SEEN_BP_PAGES_TOTAL = 1u << 1,
    WA_SEEN_BP_PAGES_DATA = 1u << 2,
    WA_SEEN_BP_PAGES_FREE = 1u << 3,
    WA_SEEN_BP_READ_REQUESTS = 1u << 4,
    WA_SEEN_BP_READS = 1u << 5,
    WA_SEEN_OWN_ID = 1u << 6,
    WA_SEEN_BP_BYTES = 1u << 7,
    WA_SEEN_MAX_CONNECTIONS = 1u << 8,
    WA_SEEN_OPEN_TRX = 1u << 9,
    WA_SEEN_EVENTS = 1u << 10,
    WA_SEEN_REQUIRED = (1u << 11) - 1,
    WA_SEEN_BP_MAX = 1u << 11, /* optional: older servers lack the variable */
};

/* A plain decimal number (digits only, no sign, blank or fraction) of
 * exactly len bytes that fits in 64 bits.  0 or -1. */
int wa_parse_u64(const char *s, size_t len, uint64_t *out);

/* One (name, value) row of the stats query: the name is a GLOBAL_STATUS
 * variable name (any case) or one of the query's own labels (OWN_ID,
 * BP_BYTES, BP_MAX, MAX_CONNECTIONS, OPEN_TRX, EVENTS).  Returns 0 when
 * stored, 1 for a name it does not know, -1 for a value that is not a
 * non-negative integer (then nothing is stored). */
int wa_stats_set(struct wa_stats *st, const char *name, size_t name_len, const char *value,
                 size_t value_len);

/* Does this PROCESSLIST row count as a busy session?  No for our own
 * session, for the admin users' sessions (the controller's), and for
 * commands "Sleep" (idle between statements) and "Daemon" (server-internal
 * background threads).  Yes for everything else: a client statement,
 * replication threads, a running event.  user may be NULL (SQL NULL). */
int wa_stats_busy_row(const struct wa_userlist *admins, uint64_t own_id, uint64_t id,
                      const char *user, size_t user_len, const char *command,
                      size_t command_len);

/* After all rows: checks completeness (sets sql_ok) and takes our own
 * session out of threads_running when the server counted it. */
void wa_stats_finish(struct wa_stats *st);

#endif
