/* The autoscaler: docs/autoscaling.md has the rules and why.  Up fast (a
 * short cool-down, by as many units as the CPU says), down slowly (low for
 * autoscale_down_after_s, one unit at a time, a longer cool-down, and only
 * where one unit less would still be below the middle of the CPU band and
 * would still hold the working set). */
#include "core/autoscale.h"

#include <stdio.h>
#include <string.h>

#include "core/lifecycle.h"
#include "store/store.h"
#include "util/ids.h"
#include "util/log.h"

static const config *cfg;

const char *const autoscale_reason_names[AS_NREASONS] = {"cpu", "pool", "threads",
                                                         "connections", "idle", "bounds"};

autoscale_params autoscale_params_of(const config *c)
{
    return (autoscale_params){
        .up_cooldown_ms = 1000LL * c->autoscale_up_cooldown_s,
        .down_cooldown_ms = 1000LL * c->autoscale_down_cooldown_s,
        .down_after_ms = 1000LL * c->autoscale_down_after_s,
        .cpu_up = c->autoscale_cpu_up_pct / 100.0,
        .cpu_down = c->autoscale_cpu_down_pct / 100.0,
        .bp_full = c->autoscale_bp_full_pct / 100.0,
        .bp_miss = c->autoscale_bp_miss_permille / 1000.0,
        .bp_fit = c->autoscale_bp_fit_pct / 100.0,
        .ws_reads_per_s = c->autoscale_ws_reads_per_s,
        .threads_per_cpu = c->autoscale_threads_per_cpu,
        .millicpus_per_cu = c->cu_millicpus,
        .connections_per_cu = c->cu_max_connections,
    };
}

const char *autoscale_reasons(unsigned reasons, char *buf, size_t len)
{
    size_t n = 0;

    buf[0] = '\0';
    for (int i = 0; i < AS_NREASONS; i++)
        if (reasons & (1u << i))
            n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%s", n ? "," : "",
                                  autoscale_reason_names[i]);
    return buf;
}

/* ceil() without libm, for sizes (a report's numbers may be absurd: the
 * result is capped far above any max_cu) */
static int up_int(double v)
{
    int n;

    if (!(v < 1 << 20))
        return 1 << 20;
    n = (int)v;

    return (double)n < v - 1e-9 ? n + 1 : n;
}

/* Threads that may run at once on cu units' CPUs before they queue. */
static double threads_allowed(const autoscale_params *p, int cu)
{
    double t = p->threads_per_cpu * cu * p->millicpus_per_cu / 1000.0;

    return t < 2 ? 2 : t;
}

/* The size the load asks for now (in->cu if it asks for no more). */
static int wanted_up(const autoscale_params *p, const autoscale_input *in, unsigned *why)
{
    int want = in->cu;
    double mid = (p->cpu_up + p->cpu_down) / 2;

    if (in->cpu >= 0 && in->cpu > p->cpu_up) {
        /* as many units as bring it to the middle of the band: a saturated
         * compute (its quota caps it at 100%) at least doubles */
        int n = up_int(in->cu * in->cpu / mid);
        if (n < in->cu + 1)
            n = in->cu + 1;
        want = n > want ? n : want;
        *why |= AS_CPU;
    }
    /* Full: by its data pages, or because the pages read from disk replace
     * others instead of adding to the data (InnoDB keeps up to
     * innodb_lru_scan_depth pages free under pressure, so a small pool's
     * data pages stop short of any fixed share).  A pool that misses while
     * it is still filling up is warming, not too small. */
    if (in->pages_total > 0 && in->miss > p->bp_miss &&
        (in->pages_data >= p->bp_full * in->pages_total || in->evicting >= 0.5)) {
        if (want < in->cu + 1)
            want = in->cu + 1;
        *why |= AS_POOL;
    }
    if (in->threads_running >= 0 && in->threads_running > threads_allowed(p, in->cu)) {
        if (want < in->cu + 1)
            want = in->cu + 1;
        *why |= AS_THREADS;
    }
    if (in->connections >= 0 &&
        in->connections > 0.8 * in->cu * p->connections_per_cu) {
        int n = up_int(in->connections / (0.5 * p->connections_per_cu));
        if (n < in->cu + 1)
            n = in->cu + 1;
        want = n > want ? n : want;
        *why |= AS_CONNECTIONS;
    }
    return want;
}

/* Would n units (one less) carry the load without asking for more at
 * once?  Unknown CPU is not low: never shrink blind. */
static bool fits_smaller(const autoscale_params *p, const autoscale_input *in, int n,
                         unsigned *blocked)
{
    double mid = (p->cpu_up + p->cpu_down) / 2;
    bool ok = true;

    if (in->cpu < 0 || in->cpu >= p->cpu_down || in->cpu * in->cu / n >= mid) {
        *blocked |= AS_CPU;
        ok = false;
    }
    /* The working set: pages a busy pool holds must fit the smaller pool.
     * A pool that is hardly read (below ws_reads_per_s) holds pages nobody
     * needs now; InnoDB keeps them until evicted, so they say nothing. */
    if (in->pages_total > 0 && in->read_rate >= p->ws_reads_per_s &&
        (in->pages_data > p->bp_fit * in->pages_total * n / in->cu || in->miss > p->bp_miss)) {
        *blocked |= AS_POOL;
        ok = false;
    }
    if (in->threads_running >= 0 && in->threads_running > threads_allowed(p, n) / 2) {
        *blocked |= AS_THREADS;
        ok = false;
    }
    if (in->connections >= 0 && in->connections > 0.5 * n * p->connections_per_cu) {
        *blocked |= AS_CONNECTIONS;
        ok = false;
    }
    return ok;
}

void autoscale_decide(const autoscale_params *p, const autoscale_input *in, autoscale_rec *st,
                      autoscale_decision *out)
{
    long long since_change = st->last_change_ms > 0 ? in->now_ms - st->last_change_ms
                                                    : (long long)1 << 62;
    unsigned why = 0, blocked = 0;
    int want;

    *out = (autoscale_decision){.cu = in->cu};
    /* the project's bounds first (they changed, or a size from elsewhere) */
    if (in->cu < in->min_cu || in->cu > in->max_cu) {
        out->cu = in->cu < in->min_cu ? in->min_cu : in->max_cu;
        out->direction = out->cu > in->cu ? 1 : -1;
        out->reasons = AS_BOUNDS;
        st->last_change_ms = in->now_ms;
        st->low_since_ms = 0;
        return;
    }
    want = wanted_up(p, in, &why);
    if (want > in->max_cu)
        want = in->max_cu;
    if (why) {
        /* under load: not low, whatever else */
        st->low_since_ms = 0;
        if (want <= in->cu)
            return;   /* at max_cu already */
        if (since_change < p->up_cooldown_ms) {
            out->held = why;
            return;
        }
        out->cu = want;
        out->direction = 1;
        out->reasons = why;
        st->last_change_ms = in->now_ms;
        return;
    }
    if (in->cu <= in->min_cu || !fits_smaller(p, in, in->cu - 1, &blocked)) {
        st->low_since_ms = 0;
        return;
    }
    if (st->low_since_ms == 0 || st->low_since_ms > in->now_ms)
        st->low_since_ms = in->now_ms;
    if (in->now_ms - st->low_since_ms < p->down_after_ms) {
        out->held = AS_IDLE;
        return;
    }
    if (since_change < p->down_cooldown_ms) {
        out->held = AS_IDLE;
        return;
    }
    out->cu = in->cu - 1;
    out->direction = -1;
    out->reasons = AS_IDLE;
    st->last_change_ms = in->now_ms;
    /* the next unit down waits its own low period */
    st->low_since_ms = in->now_ms;
}

/* ---- the scheduler's part ------------------------------------------------ */

void autoscale_init(const config *c)
{
    cfg = c;
}

autoscale_target autoscale_target_of(int cu)
{
    return (autoscale_target){.pool_bytes = cu_pool_bytes(cfg, cu),
                              .max_connections = cu_server_connections(cfg, cu)};
}

/* A window must be this long for its deltas to mean something (reports on
 * a connection's 0->1 come at any time). */
#define MIN_WINDOW_MS 900

static void count(const autoscale_decision *d)
{
    char name[64];

    for (int i = 0; i < AS_NREASONS; i++)
        if (d->reasons & (1u << i)) {
            snprintf(name, sizeof(name), "autoscale_%s_%s", d->direction > 0 ? "up" : "down",
                     autoscale_reason_names[i]);
            store_counter_incr(name, 1);
        }
}

static void pct(char *buf, size_t len, double v)
{
    if (v < 0)
        snprintf(buf, len, "?");
    else
        snprintf(buf, len, "%.1f%%", v * 100);
}

void autoscale_compute(const compute_rec *c)
{
    long long now = now_ms(), window, fresh_ms, cpu_now, cpu_at;
    const backend *be = lifecycle_backend();
    autoscale_rec st;
    autoscale_input in;
    autoscale_decision d;
    autoscale_params p;
    project_rec pr;
    bool counters_ok;

    if (cfg == NULL || !cfg->autoscale || c->state != ST_RUNNING || c->size_cu <= 0)
        return;
    /* a report of this run of the server, and a recent one */
    fresh_ms = 3LL * cfg->report_interval_s * 1000;
    if (c->act_received_ms <= 0 || now - c->act_received_ms > fresh_ms ||
        c->act_received_ms < c->state_since_ms)
        return;
    if (c->act_sent_at_ms <= c->as.prev_sent_ms)
        return;   /* nothing new since the last sample */
    window = c->act_sent_at_ms - c->as.prev_sent_ms;
    /* CPU time: the kernel's count where the backend has one (cgroup
     * cpuacct), else the plugin's */
    cpu_now = be && be->cpu_ms ? be->cpu_ms(c) : -1;
    cpu_at = now;
    if (cpu_now < 0) {
        cpu_now = c->act_opt[A_CPU_MS];
        cpu_at = c->act_sent_at_ms;
    }
    st = c->as;
    /* counters that went back belong to a new server: start again */
    counters_ok = c->as.prev_sent_ms > 0 && cpu_now >= c->as.prev_cpu_ms &&
                  c->act_opt[A_BP_READS] >= c->as.prev_bp_reads &&
                  c->act_opt[A_BP_READ_REQUESTS] >= c->as.prev_bp_read_requests;
    if (counters_ok && window < MIN_WINDOW_MS)
        return;   /* keep the older sample: a longer window next time */
    st.prev_sent_ms = c->act_sent_at_ms;
    st.prev_cpu_ms = cpu_now;
    st.prev_cpu_at_ms = cpu_at;
    st.prev_bp_reads = c->act_opt[A_BP_READS];
    st.prev_bp_read_requests = c->act_opt[A_BP_READ_REQUESTS];
    st.prev_bp_pages_data = c->act_opt[A_BP_PAGES_DATA];
    if (!counters_ok || store_project_get(c->project, &pr) != 0) {
        store_autoscale_save(c->id, &st);
        return;
    }
    p = autoscale_params_of(cfg);
    in = (autoscale_input){.cu = c->size_cu, .min_cu = pr.min_cu, .max_cu = pr.max_cu,
                           .now_ms = now, .cpu = -1, .miss = -1, .read_rate = -1,
                           .evicting = -1,
                           .pages_data = c->act_opt[A_BP_PAGES_DATA],
                           .pages_total = c->act_opt[A_BP_PAGES_TOTAL],
                           .threads_running = c->act_opt[A_THREADS_RUNNING],
                           .connections = c->act_connections};
    if (cpu_now >= 0 && c->as.prev_cpu_ms >= 0 && c->as.prev_cpu_at_ms > 0 &&
        cpu_at > c->as.prev_cpu_at_ms)
        in.cpu = (double)(cpu_now - c->as.prev_cpu_ms) /
                 ((double)(cpu_at - c->as.prev_cpu_at_ms) * c->size_cu * cfg->cu_millicpus /
                  1000.0);
    if (c->act_opt[A_BP_READ_REQUESTS] >= 0 && c->as.prev_bp_read_requests >= 0 &&
        c->act_opt[A_BP_READS] >= 0 && c->as.prev_bp_reads >= 0) {
        long long req = c->act_opt[A_BP_READ_REQUESTS] - c->as.prev_bp_read_requests;
        long long rd = c->act_opt[A_BP_READS] - c->as.prev_bp_reads;
        in.miss = req > 0 ? (double)rd / (double)req : 0;
        in.read_rate = req * 1000.0 / (double)window;
        if (rd > 0 && c->act_opt[A_BP_PAGES_DATA] >= 0 && c->as.prev_bp_pages_data >= 0) {
            double grew = (double)(c->act_opt[A_BP_PAGES_DATA] - c->as.prev_bp_pages_data);
            in.evicting = 1.0 - (grew > 0 ? grew : 0) / (double)rd;
            if (in.evicting < 0)
                in.evicting = 0;
        }
    }
    st.cpu_ppm = in.cpu < 0 ? -1 : (long long)(in.cpu > 1e6 ? 1e12 : in.cpu * 1e6);
    st.miss_ppm = in.miss < 0 ? -1 : (long long)(in.miss > 1e6 ? 1e12 : in.miss * 1e6);
    /* in double: a report's integers may be anything up to 2^63 */
    st.fill_ppm = in.pages_total > 0 && in.pages_data >= 0
                      ? (long long)((double)in.pages_data / (double)in.pages_total * 1e6 > 1e12
                                        ? 1e12
                                        : (double)in.pages_data / (double)in.pages_total * 1e6)
                      : -1;
    st.signals_ms = now;
    autoscale_decide(&p, &in, &st, &d);
    if (d.direction != 0) {
        char why[96], cpu[16], miss[16], fill[16], evict[16];
        op_error e = {ERR_NONE, "", ""};

        autoscale_reasons(d.reasons, why, sizeof(why));
        pct(cpu, sizeof(cpu), in.cpu);
        pct(miss, sizeof(miss), in.miss);
        pct(fill, sizeof(fill), st.fill_ppm < 0 ? -1 : st.fill_ppm / 1e6);
        snprintf(st.last_decision, sizeof(st.last_decision), "%s %d->%d: %s",
                 d.direction > 0 ? "up" : "down", c->size_cu, d.cu, why);
        pct(evict, sizeof(evict), in.evicting);
        log_info("compute %s: autoscale %s %d -> %d CU (%s; cpu %s of %d millicpus, pool %s "
                 "full, misses %s, evicting %s, %.0f reads/s, threads running %lld, "
                 "connections %lld)",
                 c->id, d.direction > 0 ? "up" : "down", c->size_cu, d.cu, why, cpu,
                 c->size_cu * cfg->cu_millicpus, fill, miss, evict,
                 in.read_rate < 0 ? 0 : in.read_rate, in.threads_running, in.connections);
        /* saved before the resize: the cool-down holds even if it fails,
         * which spaces out retries */
        store_autoscale_save(c->id, &st);
        count(&d);
        if (lifecycle_resize(c->id, d.cu, &e) < 0) {
            log_warn("compute %s: autoscale to %d CU failed: %s", c->id, d.cu, e.message);
            store_counter_incr("autoscale_failed", 1);
        }
        return;
    }
    store_autoscale_save(c->id, &st);
}
