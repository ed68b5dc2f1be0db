/* When the reporter sends next: a pure function of what happened so far, so
 * the whole policy is unit-tested without threads or sockets.
 *
 *  - the first report goes out at once (the controller learns the compute is
 *    up and sees a small uptime_s);
 *  - then one report per interval;
 *  - an urgent report (0<->1 connections) goes out at once, but not sooner
 *    than `gap` after the previous attempt.  The gap starts at
 *    WA_MIN_GAP_MS and doubles, up to WA_MAX_GAP_MS, while urgent reports
 *    follow each other closely (a client that connects and disconnects in a
 *    loop): churn costs the controller about one report a second, while the
 *    first client after a quiet spell is reported within WA_MIN_GAP_MS;
 *  - after a failure, retries follow exponential backoff with jitter, capped
 *    at min(interval, WA_BACKOFF_CAP_MS): a dead controller never sees more
 *    traffic than a live one, and a recovered one hears from us within an
 *    interval.  Urgent reports wait for the backoff too; each attempt carries
 *    the latest counters, so nothing is lost by waiting. */
#ifndef WA_SCHED_H
#define WA_SCHED_H

#include <stdint.h>

#define WA_BACKOFF_BASE_MS 250
#define WA_BACKOFF_CAP_MS 30000
#define WA_MIN_GAP_MS 100
#define WA_MAX_GAP_MS 1000

struct wa_sched {
    int attempted;           /* any attempt yet? */
    int64_t last_attempt_ms; /* monotonic */
    int64_t gap_ms;          /* current minimum spacing of urgent reports */
    unsigned failures;       /* consecutive */
    int64_t retry_at_ms;     /* monotonic; meaningful while failures > 0 */
    int64_t hurry_at_ms;     /* monotonic; 0 = none (wa_sched_hurry) */
};

void wa_sched_init(struct wa_sched *s);

/* Monotonic time at which the next report is due (may be in the past). */
int64_t wa_sched_due(const struct wa_sched *s, int urgent, int64_t interval_ms);

/* Record an attempt finished at now_ms; `urgent` says whether a 0<->1
 * change was pending when it was built; rnd is any random 32-bit value
 * (jitter source).  Returns the backoff delay chosen, 0 after a success. */
int64_t wa_sched_done(struct wa_sched *s, int ok, int urgent, int64_t now_ms,
                      int64_t interval_ms, uint32_t rnd);

/* Have the next report go out by at_ms (monotonic) at the latest, e.g.
 * after applying a target, so that the controller sees the new values
 * soon.  A failure's backoff still wins; the next attempt clears it. */
void wa_sched_hurry(struct wa_sched *s, int64_t at_ms);

/* The delay before retry number `failures` (1 = first retry): base doubled
 * per failure, capped, then "equal jitter" (a value in [d/2, d]) so that
 * many computes that lost the controller together do not retry in step. */
int64_t wa_backoff_delay(unsigned failures, int64_t base_ms, int64_t cap_ms, uint32_t rnd);

#endif
