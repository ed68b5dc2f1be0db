/* Metering and billing: usage API, storage sampling, transfer ingestion and
 * the exactly-once export of usage events to the PostgreSQL ledger.
 * Rule of billing/: Redis through store/store.h only; no API, no lifecycle.
 * docs/billing.md has the rules; the pieces:
 *   store/records.c    compute intervals, inside every state transition
 *   store/usage.c      the Redis side of every event (Lua in store/scripts.c)
 *   storage.c          storage sampler thread
 *   transfer.c         nginx syslog listener thread (transfer)
 *   export.c           exporter thread (PostgreSQL, via pg.c)
 *   api/usage.c        GET /api/v1/projects/{id}/usage
 *   usage.c, transfer_line.c, util/rfc3339.c: the pure parts
 * Billing has no part in the scheduler's tick: compute intervals are split
 * by the lifecycle (a transition, once per compute and tick), and
 * everything slow (measuring datadirs, talking to PostgreSQL) has its own
 * thread, so it can never delay a suspend.
 */
#ifndef SMDB_BILLING_H
#define SMDB_BILLING_H

#include "util/config.h"
#include "backend/backend.h"
#include "util/strbuf.h"

/* Starts the billing threads (the exporter only with pg_conninfo, the
 * listener only with syslog_listen).  -1 if one cannot start (for example
 * syslog_listen's port is taken). */
int billing_init(const config *cfg, const backend *be);
void billing_stop(void);
/* The exporters and the storage sampler run on the holder of the scheduler
 * lease only (core/scheduler.c sets it). */
void billing_set_leader(bool on);
bool billing_is_leader(void);
/* Billing's part of /metrics (Prometheus text), appended to o. */
void billing_metrics(strbuf *o);

#endif
