/* The proxy's per-session transfer record, as nginx sends it over syslog.
 * Pure parsing and validation, unit-tested; the listener (transfer.c)
 * feeds it datagrams it has authenticated.  The nginx side (docs/billing.md):
 *
 *   log_format smdb_billing 'smdb1 $wake_project $wake_compute $pid $connection '
 *                           '$msec $session_time $bytes_received $bytes_sent';
 *   access_log syslog:server=unix:/run/smdb/billing.sock,tag=smdb,nohostname smdb_billing;
 *
 * nginx writes a datagram "<PRI>Mmm dd hh:mm:ss [host ]tag: <line>" per
 * session when the session ends; an empty variable is logged as "-". */
#ifndef SMDB_BILLING_SYSLOG_H
#define SMDB_BILLING_SYSLOG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char project[64];
    char compute_id[96];      /* "" when the proxy did not learn it */
    long long pid;            /* nginx worker */
    long long conn;           /* nginx connection serial number */
    int64_t start_ms, end_ms; /* the session: end is when nginx logged it */
    long long bytes_in;       /* client -> compute ($bytes_received) */
    long long bytes_out;      /* compute -> client ($bytes_sent) */
} transfer_rec;

/* Bounds on every value of a line.  Anything outside is malformed: no
 * number from a line can overflow the arithmetic that follows (sums of
 * bytes stay below 2^53, exact in Lua's doubles, for 8192 sessions at
 * the maximum per bucket; the store checks the sums as well). */
#define TRANSFER_MAX_BYTES (1LL << 40)             /* 1 TiB each way per session */
#define TRANSFER_MAX_SESSION_MS (366LL * 86400000) /* a session of a year */
#define TRANSFER_MAX_PID 4194304LL                 /* Linux's PID_MAX_LIMIT */
#define TRANSFER_MAX_CONN (1LL << 53)
/* A line is accepted only if it ended in [now - MAX_AGE, now + MAX_SKEW]:
 * nginx sends it when the session ends, so an older one is a replay (and
 * the dedupe memory below need only outlive MAX_AGE). */
#define TRANSFER_MAX_AGE_MS (3600LL * 1000)
#define TRANSFER_MAX_SKEW_MS (60LL * 1000)
#define TRANSFER_DEDUPE_TTL_MS (2 * TRANSFER_MAX_AGE_MS)

typedef enum {
    TRANSFER_OK,
    TRANSFER_UNROUTED,        /* well formed, but no project (refused client) */
    TRANSFER_MALFORMED,       /* garbage, or a value out of bounds */
    TRANSFER_STALE,           /* well formed, but not ended within MAX_AGE/SKEW of now */
} transfer_result;

/* Parses one datagram (not NUL-terminated; a trailing newline is fine).
 * Every number is bounded (above); the times are not checked against the
 * clock here (transfer_check_time). */
transfer_result transfer_parse(const char *buf, size_t len, transfer_rec *out);

/* TRANSFER_OK if the session ended within [now - MAX_AGE, now + MAX_SKEW],
 * else TRANSFER_STALE. */
transfer_result transfer_check_time(const transfer_rec *t, int64_t now_ms);

/* The session's identity, whatever the line says about its project or
 * bytes: "<pid>.<conn>.<start_ms>" (nginx worker, its connection serial,
 * the session's start).  A second line for the same session, genuine
 * duplicate or tampered copy, is refused by it. */
void transfer_session_id(const transfer_rec *t, char *out, size_t outlen);

/* The event's idempotency key: "<project>:<end_ms>.<pid>.<conn>:transfer".
 * Everything in it comes from the line itself, so the same line received
 * twice (a duplicated datagram, a replayed log) maps to the same key. */
void transfer_key(const transfer_rec *t, char *out, size_t outlen);

#endif
