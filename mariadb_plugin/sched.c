/* Report scheduling and retry backoff (see sched.h). */
#include "sched.h"

void wa_sched_init(struct wa_sched *s)
{
    s->attempted = 0;
    s->last_attempt_ms = 0;
    s->gap_ms = WA_MIN_GAP_MS;
    s->failures = 0;
    s->retry_at_ms = 0;
    s->hurry_at_ms = 0;
}

void wa_sched_hurry(struct wa_sched *s, int64_t at_ms)
{
    s->hurry_at_ms = at_ms;
}

int64_t wa_backoff_delay(unsigned failures, int64_t base_ms, int64_t cap_ms, uint32_t rnd)
{
    if (cap_ms < base_ms)
        cap_ms = base_ms;
    int64_t d = base_ms;
    for (unsigned i = 1; i < failures && d < cap_ms; i++)
        d *= 2; /* stops doubling at the cap: no overflow for any count */
    if (d > cap_ms)
        d = cap_ms;
    int64_t half = d / 2;
    return half + (int64_t)(rnd % (uint64_t)(d - half + 1));
}

int64_t wa_sched_due(const struct wa_sched *s, int urgent, int64_t interval_ms)
{
    if (!s->attempted)
        return INT64_MIN;
    if (s->failures > 0)
        return s->retry_at_ms;
    int64_t due = s->last_attempt_ms + interval_ms;
    if (s->hurry_at_ms && s->hurry_at_ms < due)
        due = s->hurry_at_ms;
    if (urgent) {
        int64_t soon = s->last_attempt_ms + s->gap_ms;
        if (soon < due)
            due = soon;
    }
    return due;
}

int64_t wa_sched_done(struct wa_sched *s, int ok, int urgent, int64_t now_ms,
                      int64_t interval_ms, uint32_t rnd)
{
    /* Urgent reports in quick succession mean churn: widen the gap.  A
     * calm spell (or a periodic report) brings it back to the minimum. */
    if (urgent && s->attempted && now_ms - s->last_attempt_ms < 2 * s->gap_ms) {
        s->gap_ms *= 2;
        if (s->gap_ms > WA_MAX_GAP_MS)
            s->gap_ms = WA_MAX_GAP_MS;
    } else {
        s->gap_ms = WA_MIN_GAP_MS;
    }
    s->attempted = 1;
    s->last_attempt_ms = now_ms;
    s->hurry_at_ms = 0;
    if (ok) {
        s->failures = 0;
        return 0;
    }
    s->failures++;
    int64_t cap = interval_ms < WA_BACKOFF_CAP_MS ? interval_ms : WA_BACKOFF_CAP_MS;
    int64_t delay = wa_backoff_delay(s->failures, WA_BACKOFF_BASE_MS, cap, rnd);
    s->retry_at_ms = now_ms + delay;
    return delay;
}
