/* Reporter thread (see reporter.h). */
#define _GNU_SOURCE /* pthread_setname_np */
#include "reporter.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "answer.h"
#include "clock.h"
#include "http.h"
#include "log.h"
#include "report.h"
#include "sched.h"

void wa_reporter_poke(void *arg)
{
    struct wa_reporter *r = arg;
    uint64_t one = 1;
    /* EFD_NONBLOCK: if the counter were ever saturated the write fails with
     * EAGAIN, and the thread is awake anyway */
    ssize_t n = write(r->efd, &one, sizeof one);
    (void)n;
}

static void drain(int efd)
{
    uint64_t v;
    ssize_t n = read(efd, &v, sizeof v);
    (void)n;
}

/* xorshift32: jitter only, no need for quality */
static uint32_t next_rand(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

static uint64_t uptime_s(const struct wa_reporter *r)
{
    int64_t start = r->process_start_boot_ms >= 0 ? r->process_start_boot_ms
                                                  : r->plugin_start_boot_ms;
    int64_t up = wa_boot_ms() - start;
    return up > 0 ? (uint64_t)(up / 1000) : 0;
}

/* The first report waits (at most this long) for the server to finish
 * starting, so that it already carries the server's signals and the
 * controller hears from a compute that accepts connections. */
#define WA_START_WAIT_MS 10000

/* After applying a target, the next report goes out this soon (not after
 * a whole interval): the controller learns the result quickly. */
#define WA_HURRY_MS 1000

/* A 200 answer may carry a target; apply it.  Returns 1 when something was
 * set (report again soon). */
static int handle_answer(struct wa_reporter *r, struct wa_http *http, long status,
                         const struct wa_stats *st, int *bad_logged)
{
    if (status != 200 || http->answer_len == 0)
        return 0;
    struct wa_target t;
    if (http->answer_truncated || wa_answer_parse(http->answer, http->answer_len, &t) != 0) {
        if (!*bad_logged)
            wa_log_warning("ignoring an answer of %s that is not {\"target\":{...}}", r->url);
        *bad_logged = 1;
        return 0;
    }
    *bad_logged = 0;
    if (!t.has_bp && !t.has_mc)
        return 0;
    return wa_server_apply(&r->server, &t, st) > 0;
}

static int send_one(struct wa_reporter *r, struct wa_http *http, int *was_failing, int *urgent,
                    int *hurry)
{
    static int bad_answer_logged; /* reporter thread only */
    struct wa_snapshot snap;
    struct wa_stats st;
    memset(&st, 0, sizeof st);
    *hurry = 0;
    /* first: the SQL read takes a few ms, and the counters below should be
     * as fresh as possible when they go out.  If the server is still
     * starting, the next report follows soon, with the signals. */
    int starting = wa_server_read(&r->server, &r->hook->admins, &st);
    if (st.sql_ok)
        atomic_store(&r->hook->own_tid, st.own_id);
    int64_t cpu = wa_process_cpu_ms();
    if (cpu >= 0) {
        st.cpu_ok = 1;
        st.cpu_ms = (uint64_t)cpu;
    }
    /* clear before the snapshot: a transition after this point raises the
     * flag again and gets its own report */
    *urgent = atomic_exchange(&r->hook->urgent, 0);
    wa_counters_snapshot(&r->hook->counters, &snap);

    struct wa_report rep = {
        .compute_id = r->compute_id,
        .seq = atomic_fetch_add(&r->seq, 1) + 1,
        .connections = snap.connections,
        .connects = snap.connects,
        .failed_connects = snap.failed_connects,
        .disconnects = snap.disconnects,
        .queries = snap.queries,
        .last_activity_ms = snap.last_activity_ms,
        .sent_at_ms = wa_wall_ms(),
        .uptime_s = uptime_s(r),
        .stats = &st,
    };
    char body[WA_REPORT_MAX];
    int len = wa_report_json(body, sizeof body, &rep);
    if (len < 0)
        return 0;

    long status = wa_http_post(http, body, (size_t)len);
    atomic_store(&r->last_status, status);
    int ok = status >= 200 && status < 300;
    if (ok) {
        atomic_fetch_add(&r->sent, 1);
        atomic_store(&r->last_ok_ms, wa_wall_ms());
        if (*was_failing)
            wa_log_note("reports accepted again by %s", r->url);
        *was_failing = 0;
        *hurry = handle_answer(r, http, status, &st, &bad_answer_logged) || starting;
    } else {
        atomic_fetch_add(&r->failed, 1);
        /* log the first failure of a run only: a controller that is down for
         * an hour must not fill the error log */
        if (!*was_failing && !atomic_load(&r->stop)) {
            if (status)
                wa_log_warning("report rejected by %s: HTTP %ld; retrying with backoff",
                               r->url, status);
            else
                wa_log_warning("report to %s failed: %s; retrying with backoff",
                               r->url, http->error);
        }
        *was_failing = 1;
    }
    return ok;
}

static void *run(void *arg)
{
    struct wa_reporter *r = arg;
    struct wa_http http;
    struct wa_sched sched;
    int have_http = 0, was_failing = 0;
    uint32_t rnd = (uint32_t)wa_mono_ms() ^ (uint32_t)getpid() ^ 0x9e3779b9u;
    if (!rnd)
        rnd = 1;

    wa_sched_init(&sched);
    int64_t started = wa_mono_ms();
    if (r->url[0]) {
        /* libcurl is loaded here, off the server's start-up path (http.c) */
        have_http = wa_http_global_init() == 0 &&
                    wa_http_open(&http, r->url, r->token, &r->stop) == 0;
        if (!have_http)
            wa_log_error("cannot load or set up libcurl; reporting disabled");
    }

    while (!atomic_load(&r->stop)) {
        int64_t interval_ms = (int64_t)atomic_load(&r->interval_s) * 1000;
        int64_t now = wa_mono_ms();
        int timeout = -1; /* idle forever without a URL: only stop wakes us */
        if (have_http) {
            int64_t due = wa_sched_due(&sched, atomic_load(&r->hook->urgent), interval_ms);
            if (!sched.attempted && wa_server_starting() && now - started < WA_START_WAIT_MS)
                due = now + 20; /* poll: the server has no "started" event for plugins */
            if (due <= now) {
                int urgent, hurry;
                int ok = send_one(r, &http, &was_failing, &urgent, &hurry);
                int64_t done = wa_mono_ms();
                int64_t delay = wa_sched_done(&sched, ok, urgent, done, interval_ms,
                                              next_rand(&rnd));
                if (hurry)
                    wa_sched_hurry(&sched, done + WA_HURRY_MS);
                atomic_store(&r->backoff_ms, delay);
                continue;
            }
            int64_t wait = due - now;
            timeout = wait > 60000 ? 60000 : (int)wait;
        }
        struct pollfd p = {.fd = r->efd, .events = POLLIN};
        int n = poll(&p, 1, timeout);
        if (n > 0)
            drain(r->efd);
        else if (n < 0 && errno != EINTR)
            nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL); /* never spin */
    }

    if (have_http)
        wa_http_close(&http);
    wa_server_close(&r->server);
    return NULL;
}

int wa_reporter_start(struct wa_reporter *r, struct wa_hook *hook)
{
    r->hook = hook;
    r->running = 0;
    wa_server_init(&r->server);
    atomic_store(&r->stop, 0);
    atomic_store(&r->seq, 0);
    atomic_store(&r->sent, 0);
    atomic_store(&r->failed, 0);
    atomic_store(&r->last_status, 0);
    atomic_store(&r->last_ok_ms, 0);
    atomic_store(&r->backoff_ms, 0);
    r->plugin_start_boot_ms = wa_boot_ms();
    r->process_start_boot_ms = wa_process_start_boot_ms();

    r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->efd < 0) {
        wa_log_error("eventfd: %s", strerror(errno));
        return -1;
    }

    /* The thread must not take the server's signals (mariadbd handles them
     * in its own signal thread): block everything while creating it, the
     * new thread inherits the mask. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&r->thread, NULL, run, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        wa_log_error("pthread_create: %s", strerror(rc));
        close(r->efd);
        r->efd = -1;
        return -1;
    }
    pthread_setname_np(r->thread, "wake_activity");
    r->running = 1;
    return 0;
}

void wa_reporter_stop(struct wa_reporter *r)
{
    if (r->running) {
        atomic_store(&r->stop, 1);
        wa_reporter_poke(r);
        pthread_join(r->thread, NULL);
        r->running = 0;
    }
    if (r->efd >= 0) {
        close(r->efd);
        r->efd = -1;
    }
}
