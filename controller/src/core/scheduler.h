/* Background work: crash supervision, idle suspends, metering ticks. */
#ifndef SMDB_SCHEDULER_H
#define SMDB_SCHEDULER_H

#include "util/config.h"

int scheduler_start(const config *cfg);
void scheduler_stop(void);

#endif
