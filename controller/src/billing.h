/* Metering and billing: usage API, storage sampling, transfer ingestion and
 * the exactly-once export of usage events to the PostgreSQL ledger. */
#ifndef SMDB_BILLING_H
#define SMDB_BILLING_H

#include "config.h"

int billing_init(const config *cfg);
/* Called from the scheduler thread every tick. */
void billing_tick(void);
void billing_stop(void);

#endif
