/* Background work: crash supervision, idle suspends, metering ticks -- on
 * the one controller that holds the scheduler lease. */
#ifndef SMDB_SCHEDULER_H
#define SMDB_SCHEDULER_H

#include <stdbool.h>

#include "util/config.h"

/* on_lease is told, every tick, whether this controller holds the lease. */
void scheduler_init(const config *cfg, void (*on_lease)(bool held));
int scheduler_start(const config *cfg);
/* Takes or renews the scheduler lease (reconciling when it is gained);
 * true while this controller holds it.  main() calls it once before the
 * API opens (starting: reconcile even if the lease was still its own), the
 * scheduler thread every tick. */
bool scheduler_lease(bool starting);
bool scheduler_is_leader(void);
void scheduler_stop(void);

#endif
