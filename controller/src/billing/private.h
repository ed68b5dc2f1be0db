/* The threads behind billing.c, each in its own file. */
#ifndef SMDB_BILLING_INTERNAL_H
#define SMDB_BILLING_INTERNAL_H

#include "backend/backend.h"
#include "util/config.h"

/* storage.c: datadir sizes -> storage intervals */
int storage_sampler_start(const config *cfg, const backend *be);
void storage_sampler_stop(void);

/* transfer.c: nginx's syslog datagrams -> transfer events */
int transfer_listener_start(const config *cfg);
void transfer_listener_stop(void);
/* Datagrams the kernel dropped on the listener's socket; -1 unknown. */
long long transfer_listener_drops(void);

/* export.c: export:queue -> PostgreSQL ledger, then the events
 * are retired into hourly buckets; without pg_conninfo the same thread
 * retires events older than usage_retention_s instead. */
int exporter_start(const config *cfg);
void exporter_stop(void);
/* 1 the last attempt reached the ledger, 0 it failed, -1 no ledger. */
int exporter_ledger_up(void);

#endif
