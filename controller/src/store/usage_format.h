/* The shape of usage data in Redis, shared by the scripts that write it
 * (store/scripts.c) and the arithmetic that reads it (billing/usage.c). */
#ifndef SMDB_STORE_USAGE_FORMAT_H
#define SMDB_STORE_USAGE_FORMAT_H

/* No event crosses a UTC midnight: the metering scripts cut every
 * interval at day boundaries (multiples of this since the epoch).  So a
 * daily or monthly bill never has to split an event, and a query for
 * [from, to) finds every overlapping event among those that start in
 * [midnight before from, to). */
#define USAGE_DAY_MS 86400000LL
#define USAGE_DAY_STR "86400000"

/* The first start_ms an event overlapping [from, ...) can have. */
#define USAGE_SCAN_FROM(from) ((from) - (from) % USAGE_DAY_MS)

/* Retired events (exported, or past the retention) live on as sums per
 * UTC hour: usage-hours:<project>, field "<hour>" (start_ms / HOUR_MS),
 * value "n c compute_ms cu_ms byte_seconds bytes_in bytes_out lo hi":
 *   n   events that start in the hour (a transfer: that end in it)
 *   c   events that started earlier and continue into it
 *   compute_ms, cu_ms, byte_seconds   the hour's share of the intervals
 *   bytes_in, bytes_out               the transfers that ended in it
 *   lo, hi  the part of the hour that had usage, [lo, hi) in ms (a
 *           transfer counts as [end, end + 1))
 * Written by the retire script (store/scripts.c). */
#define USAGE_HOUR_MS 3600000LL
#define USAGE_HOUR_STR "3600000"

#endif
