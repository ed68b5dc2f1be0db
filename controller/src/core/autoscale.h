/* The autoscaler (docs/autoscaling.md): sizes each running compute between
 * its project's min_cu and max_cu from what its plugin measures.
 *
 * Two parts.  autoscale_decide() is pure (unit tested): signals, bounds and
 * the compute's autoscale_rec in, a decision out.  autoscale_compute() is
 * the scheduler's call per compute and tick: it turns the last two reports
 * into signals, decides, keeps the state in the compute's record (the lease
 * may move to another controller), logs and counts the decision and applies
 * it with lifecycle_resize(). */
#ifndef SMDB_AUTOSCALE_H
#define SMDB_AUTOSCALE_H

#include <stdbool.h>

#include "core/compute.h"
#include "util/config.h"

/* Why a size changes (a decision may have several). */
enum {
    AS_CPU = 1 << 0,          /* CPU time near the limit (up) */
    AS_POOL = 1 << 1,         /* buffer pool full and missing (up) */
    AS_THREADS = 1 << 2,      /* more threads running than CPUs can serve (up) */
    AS_CONNECTIONS = 1 << 3,  /* sessions near the proxy's limit (up) */
    AS_IDLE = 1 << 4,         /* everything low for autoscale_down_after_s (down) */
    AS_BOUNDS = 1 << 5,       /* outside the project's min_cu..max_cu */
};
#define AS_NREASONS 6
extern const char *const autoscale_reason_names[AS_NREASONS];

/* The thresholds, from the configuration (autoscale_params_of). */
typedef struct {
    long long up_cooldown_ms, down_cooldown_ms, down_after_ms;
    double cpu_up, cpu_down;     /* fractions of the allowed CPU */
    double bp_full, bp_miss, bp_fit;
    double ws_reads_per_s;
    double threads_per_cpu;
    int millicpus_per_cu;
    int connections_per_cu;
} autoscale_params;

/* What is known of the compute now; negative: unknown. */
typedef struct {
    int cu, min_cu, max_cu;
    long long now_ms;
    double cpu;                  /* CPU used / CPU allowed over the last window */
    double miss;                 /* reads from disk / read requests over the window */
    double read_rate;            /* read requests per second over the window */
    double evicting;             /* share of the window's disk reads that took the place
                                  * of another page (1 - Δ data pages / Δ reads) */
    long long pages_data, pages_total;
    long long threads_running;
    long long connections;
} autoscale_input;

typedef struct {
    int cu;                      /* the new size (== in->cu: no change) */
    int direction;               /* +1 up, -1 down, 0 none */
    unsigned reasons;            /* AS_* */
    unsigned held;               /* a change wanted but not made now: AS_* of it */
} autoscale_decision;

autoscale_params autoscale_params_of(const config *cfg);
/* Decides, and updates st (last_change_ms, low_since_ms) as if the
 * decision were applied.  Pure. */
void autoscale_decide(const autoscale_params *p, const autoscale_input *in, autoscale_rec *st,
                      autoscale_decision *out);
/* "cpu,pool" of a reason mask, into buf. */
const char *autoscale_reasons(unsigned reasons, char *buf, size_t len);

/* What the server of a compute of cu units must have (the plugin applies
 * it; the process backend starts with it). */
typedef struct {
    long long pool_bytes;
    int max_connections;
} autoscale_target;
autoscale_target autoscale_target_of(int cu);

void autoscale_init(const config *cfg);
/* The scheduler's call, once per compute and tick, on the lease holder. */
void autoscale_compute(const compute_rec *c);

#endif
