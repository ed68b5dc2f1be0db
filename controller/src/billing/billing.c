/* Metering and billing: starting and stopping its threads, and its part of
 * /metrics.  Compute intervals are closed by the state transitions
 * themselves (the transition script); see billing.h for where everything else lives. */
#include "billing/billing.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing/private.h"
#include "store/store.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/strbuf.h"

static const config *cfg;
static bool sampler_on, listener_on, exporter_on;
static atomic_bool leader_on;

void billing_set_leader(bool on)
{
    atomic_store(&leader_on, on);
}

bool billing_is_leader(void)
{
    return atomic_load(&leader_on);
}

int billing_init(const config *c, const backend *be)
{
    cfg = c;
    if (storage_sampler_start(c, be) < 0) {
        log_error("billing: cannot start the storage sampler");
        return -1;
    }
    sampler_on = true;
    if (c->syslog_listen[0]) {
        if (transfer_listener_start(c) < 0)
            return -1;
        listener_on = true;
    }
    if (exporter_start(c) < 0) {
        log_error("billing: cannot start the exporter");
        return -1;
    }
    exporter_on = true;
    if (!c->pg_conninfo[0])
        log_info("billing: no pg_conninfo; usage is recorded and served from Redis, events "
                 "wait in export:pending for a ledger for usage_retention_s (%d s)",
                 c->usage_retention_s);
    return 0;
}

void billing_stop(void)
{
    if (exporter_on)
        exporter_stop();
    if (listener_on)
        transfer_listener_stop();
    if (sampler_on)
        storage_sampler_stop();
    exporter_on = listener_on = sampler_on = false;
}

/* --- /metrics ------------------------------------------------------------ */

void billing_metrics(strbuf *o)
{
    static const char *const fields[] = {
        "billing_events_exported_total", "billing_export_failures_total",
        "billing_export_duplicates_total", "billing_events_rejected_total",
        "billing_storage_samples_total", "billing_storage_sample_failures_total",
        "billing_transfer_recorded_total", "billing_transfer_duplicate_total",
        "billing_transfer_malformed_total", "billing_transfer_unrouted_total",
        "billing_transfer_lost_total", "billing_transfer_stale_total",
        "billing_transfer_unauthenticated_total", "billing_events_expired_total",
        "billing_usage_fold_refused_total"};
    enum { N = sizeof(fields) / sizeof(fields[0]) };
    long long v[N] = {0}, waiting;
    int64_t oldest;
    double lag = 0;

    if (store_counters_get(fields, N, v) < 0)
        memset(v, 0, sizeof(v));
    waiting = store_export_waiting();
    if (waiting < 0)
        waiting = 0;
    if (store_export_oldest(&oldest) == 1) {
        lag = (double)(now_ms() - oldest) / 1000.0;
        if (lag < 0)
            lag = 0;
    }

    sb_printf(o, "# HELP smdb_billing_export_lag_seconds Age of the oldest usage event not yet in the ledger.\n"
                 "# TYPE smdb_billing_export_lag_seconds gauge\nsmdb_billing_export_lag_seconds %.3f\n",
        lag);
    sb_printf(o, "# HELP smdb_billing_events_waiting Usage events waiting for the ledger.\n"
                 "# TYPE smdb_billing_events_waiting gauge\nsmdb_billing_events_waiting %lld\n",
        waiting);
    sb_printf(o, "# HELP smdb_billing_ledger_up 1 if the last export reached PostgreSQL, 0 if it failed, -1 without a ledger.\n"
                 "# TYPE smdb_billing_ledger_up gauge\nsmdb_billing_ledger_up %d\n",
        exporter_on && cfg->pg_conninfo[0] ? exporter_ledger_up() : -1);
    sb_printf(o, "# HELP smdb_billing_events_exported_total Usage events committed to the ledger.\n"
                 "# TYPE smdb_billing_events_exported_total counter\nsmdb_billing_events_exported_total %lld\n",
        v[0]);
    sb_printf(o, "# HELP smdb_billing_export_failures_total Failed attempts to reach or write the ledger.\n"
                 "# TYPE smdb_billing_export_failures_total counter\nsmdb_billing_export_failures_total %lld\n",
        v[1]);
    sb_printf(o, "# HELP smdb_billing_export_duplicates_total Exported events the ledger already had (re-exports after a crash).\n"
                 "# TYPE smdb_billing_export_duplicates_total counter\nsmdb_billing_export_duplicates_total %lld\n",
        v[2]);
    sb_printf(o, "# HELP smdb_billing_events_rejected_total Events the ledger refused, kept in export:rejected.\n"
                 "# TYPE smdb_billing_events_rejected_total counter\nsmdb_billing_events_rejected_total %lld\n",
        v[3]);
    sb_printf(o, "# HELP smdb_billing_storage_samples_total Datadir size samples.\n"
                 "# TYPE smdb_billing_storage_samples_total counter\nsmdb_billing_storage_samples_total %lld\n"
                 "# HELP smdb_billing_storage_sample_failures_total Datadir sizes that could not be measured.\n"
                 "# TYPE smdb_billing_storage_sample_failures_total counter\n"
                 "smdb_billing_storage_sample_failures_total %lld\n",
        v[4], v[5]);
    sb_printf(o, "# HELP smdb_billing_transfer_lines_total nginx transfer records by outcome.\n"
                 "# TYPE smdb_billing_transfer_lines_total counter\n"
                 "smdb_billing_transfer_lines_total{result=\"recorded\"} %lld\n"
                 "smdb_billing_transfer_lines_total{result=\"duplicate\"} %lld\n"
                 "smdb_billing_transfer_lines_total{result=\"malformed\"} %lld\n"
                 "smdb_billing_transfer_lines_total{result=\"unrouted\"} %lld\n"
                 "smdb_billing_transfer_lines_total{result=\"lost\"} %lld\n"
                 "smdb_billing_transfer_lines_total{result=\"stale\"} %lld\n"
                 "smdb_billing_transfer_lines_total{result=\"unauthenticated\"} %lld\n",
        v[6], v[7], v[8], v[9], v[10], v[11], v[12]);
    sb_printf(o, "# HELP smdb_billing_events_expired_total Events retired unexported after usage_retention_s (no ledger).\n"
                 "# TYPE smdb_billing_events_expired_total counter\nsmdb_billing_events_expired_total %lld\n"
                 "# HELP smdb_billing_usage_fold_refused_total Retired events kept per event: out of bounds for the hourly sums.\n"
                 "# TYPE smdb_billing_usage_fold_refused_total counter\nsmdb_billing_usage_fold_refused_total %lld\n",
        v[13], v[14]);
    if (listener_on && transfer_listener_drops() >= 0)
        sb_printf(o, "# HELP smdb_billing_syslog_drops Datagrams the kernel dropped on the transfer listener (full buffer).\n"
                     "# TYPE smdb_billing_syslog_drops gauge\nsmdb_billing_syslog_drops %lld\n",
                 transfer_listener_drops());
}
