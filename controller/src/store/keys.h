/* Every Redis key the controller uses, as store_key() patterns (the prefix,
 * redis_prefix, comes first).  docs/redis-keys.md says what each holds. */
#ifndef SMDB_STORE_KEYS_H
#define SMDB_STORE_KEYS_H

#define K_PROJECTS "projects"               /* set: project ids */
#define K_PROJECT "project:%s"              /* hash: a project */
#define K_COMPUTES "computes"               /* set: compute ids */
#define K_COMPUTE "compute:%s"              /* hash: a compute */
#define K_PORTS "ports"                     /* hash: port -> compute id */
#define K_TOKENS "tokens"                   /* hash: report token SHA-256 -> compute id */
#define K_METRICS "metrics"                 /* hash: counters */
#define K_HIST "hist:%s"                    /* hash: histogram buckets */
#define K_USAGE "usage:%s"                  /* zset: a project's usage events */
#define K_USAGE_HOURS "usage-hours:%s"      /* hash: a project's retired usage per hour */
#define K_TRANSFER_SEEN "transfer-seen:%s"  /* string: a billed nginx session */
#define K_PENDING "export:pending"          /* hash: key -> event not yet in the ledger */
#define K_QUEUE "export:queue"              /* zset: pending keys by end_ms */
#define K_REJECTED "export:rejected"        /* hash: events the ledger refused */
#define K_LEASE "lease:%s"                  /* string: a lease's holder (PX: its lifetime) */
#define K_RATE "rate:%s"                    /* hash: a project's wake token bucket */

#endif
