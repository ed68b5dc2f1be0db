/* GET /metrics: Prometheus text exposition.  Counters live in Redis (the
 * `metrics` hash and `hist:*` hashes), so they survive controller restarts
 * and several controllers add up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers.h"
#include "api/internal.h"
#include "billing/billing.h"
#include "core/autoscale.h"
#include "core/scheduler.h"
#include "store/store.h"
#include "util/ids.h"
#include "util/strbuf.h"

/* The counters this exposition shows, fetched in one read. */
static const char *const counter_names[] = {
    "wakes_total", "wake_errors_total", "starts_total", "thaws_total", "start_failures_total",
    "creates_total", "crashes_total", "suspends_frozen_total", "suspends_stopped_total",
    "suspends_cancelled_total", "activity_reports_accepted", "activity_reports_unauthorized",
    "activity_reports_forbidden", "activity_reports_stale", "activity_reports_malformed",
    "activity_reports_unknown_compute", "wakes_rate_limited_total"};
#define NCOUNTERS (sizeof(counter_names) / sizeof(counter_names[0]))

static long long value(const long long *v, const char *name)
{
    for (size_t i = 0; i < NCOUNTERS; i++)
        if (strcmp(counter_names[i], name) == 0)
            return v[i];
    return 0;
}

static void counter(strbuf *b, const long long *v, const char *name, const char *field,
                    const char *help)
{
    sb_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %lld\n", name, help, name, name,
              value(v, field));
}

static void histogram(strbuf *b, const char *name, const char *hist, const char *help)
{
    store_hist h;
    long long cum = 0;

    if (store_hist_get(hist, &h) < 0)
        memset(&h, 0, sizeof(h));
    sb_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (int i = 0; i < STORE_HIST_NBOUNDS; i++) {
        cum += h.bucket[i];
        sb_printf(b, "%s_bucket{le=\"%g\"} %lld\n", name, store_hist_bounds[i] / 1000.0, cum);
    }
    sb_printf(b, "%s_bucket{le=\"+Inf\"} %lld\n", name, h.count);
    sb_printf(b, "%s_sum %.6f\n%s_count %lld\n", name, h.sum_ms / 1000.0, name, h.count);
}

/* The autoscaler's last signals of a compute (those it could measure). */
static void autoscale_signals(strbuf *per, strbuf *as, const compute_rec *c)
{
    const struct { const char *name; long long v; double scale; } g[] = {
        {"smdb_autoscale_cpu_utilization", c->as.cpu_ppm, 1e-6},
        {"smdb_autoscale_bp_miss_ratio", c->as.miss_ppm, 1e-6},
        {"smdb_autoscale_bp_data_ratio", c->as.fill_ppm, 1e-6},
    };

    sb_printf(per, "smdb_compute_cu{compute=\"%s\",project=\"%s\"} %d\n", c->id, c->project,
              c->size_cu);
    if (c->state != ST_RUNNING || c->as.signals_ms <= 0)
        return;
    for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++)
        if (g[i].v >= 0)
            sb_printf(as, "%s{compute=\"%s\",project=\"%s\"} %.6f\n", g[i].name, c->id,
                      c->project, g[i].v * g[i].scale);
    if (c->act_opt[A_THREADS_RUNNING] >= 0)
        sb_printf(as, "smdb_compute_threads_running{compute=\"%s\",project=\"%s\"} %lld\n",
                  c->id, c->project, c->act_opt[A_THREADS_RUNNING]);
}

/* Decisions by direction and reason (a decision with two reasons counts
 * under both). */
static void autoscale_decisions(strbuf *b)
{
    const char *names[2 * AS_NREASONS + 1];
    char buf[2 * AS_NREASONS][48];
    long long v[2 * AS_NREASONS + 1];
    int n = 0;

    for (int d = 0; d < 2; d++)
        for (int i = 0; i < AS_NREASONS; i++) {
            snprintf(buf[n], sizeof(buf[n]), "autoscale_%s_%s", d == 0 ? "up" : "down",
                     autoscale_reason_names[i]);
            names[n] = buf[n];
            n++;
        }
    names[n++] = "autoscale_failed";
    if (store_counters_get(names, n, v) < 0)
        memset(v, 0, sizeof(v));
    sb_printf(b, "# HELP smdb_autoscale_decisions_total Autoscaler size changes by direction "
                 "and reason.\n# TYPE smdb_autoscale_decisions_total counter\n");
    for (int k = 0; k < 2 * AS_NREASONS; k++)
        sb_printf(b, "smdb_autoscale_decisions_total{direction=\"%s\",reason=\"%s\"} %lld\n",
                  k < AS_NREASONS ? "up" : "down", autoscale_reason_names[k % AS_NREASONS], v[k]);
    sb_printf(b, "# HELP smdb_autoscale_failures_total Autoscaler decisions the backend could "
                 "not apply.\n# TYPE smdb_autoscale_failures_total counter\n"
                 "smdb_autoscale_failures_total %lld\n", v[n - 1]);
}

static void computes(strbuf *b)
{
    char **ids = store_compute_ids();
    int by_state[ST__COUNT] = {0};
    strbuf per = {0}, cu = {0}, as = {0};
    long long now = now_ms();

    for (char **id = ids; id && *id; id++) {
        compute_rec c;
        if (store_compute_get(*id, &c) != 0 || c.state < 0)
            continue;
        by_state[c.state]++;
        autoscale_signals(&cu, &as, &c);
        if (c.act_received_ms > 0) {
            sb_printf(&per, "smdb_compute_connections{compute=\"%s\",project=\"%s\"} %lld\n",
                      c.id, c.project, c.act_connections);
            sb_printf(&per, "smdb_compute_queries_total{compute=\"%s\",project=\"%s\"} %lld\n",
                      c.id, c.project, c.act_queries);
        }
        sb_printf(&per, "smdb_compute_last_activity_age_seconds{compute=\"%s\",project=\"%s\"} %.3f\n",
                  c.id, c.project, c.last_activity_ms > 0 ? (now - c.last_activity_ms) / 1000.0 : 0.0);
    }
    ids_free(ids);
    sb_printf(b, "# HELP smdb_computes Computes by state.\n# TYPE smdb_computes gauge\n");
    for (int s = 0; s < ST__COUNT; s++)
        sb_printf(b, "smdb_computes{state=\"%s\"} %d\n", state_name((compute_state)s), by_state[s]);
    sb_printf(b, "# HELP smdb_compute_connections Client connections reported by the compute's plugin.\n"
                 "# TYPE smdb_compute_connections gauge\n"
                 "# HELP smdb_compute_queries_total Queries reported by the compute's plugin.\n"
                 "# TYPE smdb_compute_queries_total counter\n"
                 "# HELP smdb_compute_last_activity_age_seconds Time since the compute's last activity.\n"
                 "# TYPE smdb_compute_last_activity_age_seconds gauge\n");
    sb_add(b, sb_str(&per), per.len);
    sb_free(&per);
    sb_printf(b, "# HELP smdb_compute_cu The compute's size in compute units.\n"
                 "# TYPE smdb_compute_cu gauge\n");
    sb_add(b, sb_str(&cu), cu.len);
    sb_printf(b, "# HELP smdb_autoscale_cpu_utilization CPU time used of the CPU the size "
                 "allows, last window.\n# TYPE smdb_autoscale_cpu_utilization gauge\n"
                 "# HELP smdb_autoscale_bp_miss_ratio Buffer pool reads from disk per read "
                 "request, last window.\n# TYPE smdb_autoscale_bp_miss_ratio gauge\n"
                 "# HELP smdb_autoscale_bp_data_ratio Buffer pool pages holding data.\n"
                 "# TYPE smdb_autoscale_bp_data_ratio gauge\n"
                 "# HELP smdb_compute_threads_running Threads running in the compute's server.\n"
                 "# TYPE smdb_compute_threads_running gauge\n");
    sb_add(b, sb_str(&as), as.len);
    sb_free(&cu);
    sb_free(&as);
    autoscale_decisions(b);
}

void h_metrics(api_req *r)
{
    long long h[NCOUNTERS];
    strbuf b = {0};

    if (store_counters_get(counter_names, (int)NCOUNTERS, h) < 0)
        return api_error(r, 503, "store_unavailable", "state store unavailable");
    computes(&b);
    sb_printf(&b, "# HELP smdb_scheduler_lease 1 on the controller that runs the scheduler.\n"
                  "# TYPE smdb_scheduler_lease gauge\nsmdb_scheduler_lease %d\n",
              scheduler_is_leader() ? 1 : 0);
    counter(&b, h, "smdb_wakes_total", "wakes_total", "Wake requests.");
    counter(&b, h, "smdb_wake_errors_total", "wake_errors_total", "Wake requests that failed.");
    counter(&b, h, "smdb_wakes_rate_limited_total", "wakes_rate_limited_total",
            "Wakes refused (429): the project's start/thaw token bucket was empty.");
    counter(&b, h, "smdb_compute_starts_total", "starts_total", "Computes started by a wake.");
    counter(&b, h, "smdb_compute_thaws_total", "thaws_total", "Computes thawed by a wake.");
    counter(&b, h, "smdb_compute_start_failures_total", "start_failures_total", "Failed starts.");
    counter(&b, h, "smdb_compute_creates_total", "creates_total", "Computes created.");
    counter(&b, h, "smdb_compute_crashes_total", "crashes_total", "Servers found dead while running.");
    sb_printf(&b, "# HELP smdb_suspends_total Suspends by mode.\n# TYPE smdb_suspends_total counter\n"
                  "smdb_suspends_total{mode=\"frozen\"} %lld\nsmdb_suspends_total{mode=\"stopped\"} %lld\n",
              value(h, "suspends_frozen_total"), value(h, "suspends_stopped_total"));
    counter(&b, h, "smdb_suspends_cancelled_total", "suspends_cancelled_total",
            "Drains cancelled by activity.");
    sb_printf(&b, "# HELP smdb_activity_reports_total Plugin reports by result.\n"
                  "# TYPE smdb_activity_reports_total counter\n");
    {
        static const char *const results[] = {"accepted", "unauthorized", "forbidden", "stale",
                                              "malformed", "unknown_compute"};
        for (size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++) {
            char f[64];
            snprintf(f, sizeof(f), "activity_reports_%s", results[i]);
            sb_printf(&b, "smdb_activity_reports_total{result=\"%s\"} %lld\n", results[i],
                      value(h, f));
        }
    }
    histogram(&b, "smdb_wake_duration_seconds", "wake_ms", "Time to answer a wake.");
    /* this process's API server, not shared through Redis */
    sb_printf(&b, "# HELP smdb_api_connections Open API connections.\n"
                  "# TYPE smdb_api_connections gauge\nsmdb_api_connections %d\n"
                  "# HELP smdb_api_connections_refused_total Connections closed at accept "
                  "(connection limits).\n"
                  "# TYPE smdb_api_connections_refused_total counter\n"
                  "smdb_api_connections_refused_total %lld\n"
                  "# HELP smdb_api_slow_queued Slow requests waiting for a worker.\n"
                  "# TYPE smdb_api_slow_queued gauge\nsmdb_api_slow_queued %d\n",
              api_conn_open(), api_conn_refused(), api_work_queued());
    billing_metrics(&b);
    if (b.failed) {
        sb_free(&b);
        return api_error(r, 500, "internal", "out of memory");
    }
    r->status = 200;
    free(r->out);
    r->out = sb_take(&b);
    r->content_type = "text/plain; version=0.0.4";
}
