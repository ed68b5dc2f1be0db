/* The storage sampler thread: measures each compute's datadir every
 * storage_sample_s (and soon after it is suspended, when its size is final
 * for the whole sleep) and records the size in the compute's storage
 * interval (store_storage_sample).  Measuring walks a directory tree, so it has
 * its own thread: a slow disk delays sampling, never the scheduler.
 *
 * The schedule (when each compute is next due) is the only thing kept in
 * memory; losing it on a restart only moves the next sample. */
#include "billing/billing.h"
#include "billing/private.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"
#include "util/ids.h"
#include "util/log.h"

typedef struct {
    char cid[96];
    int64_t due_ms;       /* monotonic */
    long long gen;        /* the compute's gen when last looked at */
} slot;

static const config *cfg;
static const backend *be;
static pthread_t thread;
static atomic_bool stopping;
static slot *table;
static size_t ntable;

static int slot_cmp(const void *a, const void *b)
{
    return strcmp(((const slot *)a)->cid, ((const slot *)b)->cid);
}

/* A fixed spread of first samples over the period, so that a restarted
 * controller does not measure every datadir in the same second. */
static int64_t jitter(const char *cid, int64_t period)
{
    unsigned h = 2166136261u;

    for (const char *p = cid; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return period > 0 ? (int64_t)(h % (unsigned)period) : 0;
}

/* Rebuilds the table for the current compute ids, keeping known slots. */
static void refresh(char **ids)
{
    size_t n = 0;
    slot *next;

    for (char **id = ids; id && *id; id++)
        n++;
    next = calloc(n ? n : 1, sizeof(slot));
    if (next == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        slot key, *old;
        snprintf(key.cid, sizeof(key.cid), "%s", ids[i]);
        old = table ? bsearch(&key, table, ntable, sizeof(slot), slot_cmp) : NULL;
        if (old) {
            next[i] = *old;
        } else {
            next[i] = key;
            next[i].due_ms = -1;    /* first sight: decided in sample_one */
            next[i].gen = -1;
        }
    }
    qsort(next, n, sizeof(slot), slot_cmp);
    free(table);
    table = next;
    ntable = n;
}

static void sample_one(slot *s, int64_t period)
{
    compute_brief br;
    compute_rec c;
    long long bytes;
    bool due;

    if (store_compute_brief_get(s->cid, &br) != 0 || br.state == ST_UNKNOWN ||
        br.state == ST_CREATING || br.state == ST_DELETING)
        return;

    if (s->due_ms < 0) {
        /* A new compute's interval opened at creation and gets its size from
         * the first regular sample (or at once if it is already asleep, its
         * suspend having come before we first looked); a known one resumes
         * its rhythm. */
        if (br.sized)
            s->due_ms = mono_ms() + jitter(s->cid, period);
        else
            s->due_ms = mono_ms() + (br.state == ST_SUSPENDED ? 0 : period);
        s->gen = br.gen;
    }
    due = mono_ms() >= s->due_ms || (br.gen != s->gen && br.state == ST_SUSPENDED);
    s->gen = br.gen;
    if (!due)
        return;
    s->due_ms = mono_ms() + period;
    if (store_compute_get(s->cid, &c) != 0)
        return;
    bytes = be->storage_bytes(&c);
    if (bytes < 0) {
        store_counter_incr("billing_storage_sample_failures_total", 1);
        return;
    }
    if (store_storage_sample(s->cid, br.project, bytes, now_ms()) >= 0)
        store_counter_incr("billing_storage_samples_total", 1);
}

static void *sampler_main(void *arg)
{
    int64_t period = (int64_t)cfg->storage_sample_s * 1000;
    /* look at least every second: a suspend should be sampled promptly */
    int64_t tick = period < 1000 ? period : 1000;

    (void)arg;
    while (!atomic_load(&stopping)) {
        int64_t t0 = mono_ms();
        char **ids = billing_is_leader() ? store_compute_ids() : NULL;

        if (ids) {
            refresh(ids);
            for (size_t i = 0; i < ntable && !atomic_load(&stopping); i++)
                sample_one(&table[i], period);
            ids_free(ids);
        }
        while (!atomic_load(&stopping) && mono_ms() - t0 < tick)
            usleep(50000);
    }
    return NULL;
}

int storage_sampler_start(const config *c, const backend *b)
{
    cfg = c;
    be = b;
    atomic_store(&stopping, false);
    return pthread_create(&thread, NULL, sampler_main, NULL) == 0 ? 0 : -1;
}

void storage_sampler_stop(void)
{
    atomic_store(&stopping, true);
    pthread_join(thread, NULL);
    free(table);
    table = NULL;
    ntable = 0;
}
