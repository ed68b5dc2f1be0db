/* The proxy's per-session transfer record, as nginx sends it over syslog.
 * Pure parsing, unit-tested; the UDP listener (billing_listener.c) feeds it
 * datagrams.  The nginx side (docs/billing.md):
 *
 *   log_format smdb_billing 'smdb1 $wake_project $wake_compute $pid $connection '
 *                           '$msec $session_time $bytes_received $bytes_sent';
 *   access_log syslog:server=127.0.0.1:8514,tag=smdb,nohostname smdb_billing;
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

typedef enum {
    TRANSFER_OK,
    TRANSFER_UNROUTED,        /* well formed, but no project (refused client) */
    TRANSFER_MALFORMED,
} transfer_result;

/* Parses one datagram (not NUL-terminated; a trailing newline is fine). */
transfer_result transfer_parse(const char *buf, size_t len, transfer_rec *out);

/* The event's idempotency key: "<project>:<end_ms>.<pid>.<conn>:transfer".
 * Everything in it comes from the line itself, so the same line received
 * twice (a duplicated datagram, a replayed log) maps to the same key. */
void transfer_key(const transfer_rec *t, char *out, size_t outlen);

#endif
