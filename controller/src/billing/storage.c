/* The storage sampler thread: measures each compute's datadir every
 * storage_sample_s (and soon after it is suspended, when its size is final
 * for the whole sleep) and records the size in the compute's storage
 * interval (billing_events.c).  Measuring walks a directory tree, so it has
 * its own thread: a slow disk delays sampling, never the scheduler.
 *
 * The schedule (when each compute is next due) is the only thing kept in
 * memory; losing it on a restart only moves the next sample. */
#include "billing/private.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "billing/events.h"
#include "util/ids.h"
#include "core/lifecycle.h"
#include "util/log.h"

typedef struct {
    char cid[96];
    int64_t due_ms;       /* monotonic */
    long long gen;        /* the compute's gen when last looked at */
} slot;

static const config *cfg;
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
    char k[160], state[32] = "", project[64] = "";
    long long gen = 0;
    bool has_bytes, due;
    redisReply *r = store_cmd("HMGET %s state gen project storage_bytes",
                              store_key(k, sizeof(k), "compute:%s", s->cid));
    compute_rec c;
    long long bytes;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 4) {
        if (r)
            freeReplyObject(r);
        return;
    }
    if (r->element[0]->type == REDIS_REPLY_STRING)
        snprintf(state, sizeof(state), "%s", r->element[0]->str);
    if (r->element[1]->type == REDIS_REPLY_STRING)
        gen = strtoll(r->element[1]->str, NULL, 10);
    if (r->element[2]->type == REDIS_REPLY_STRING)
        snprintf(project, sizeof(project), "%s", r->element[2]->str);
    has_bytes = r->element[3]->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    if (state[0] == '\0' || strcmp(state, "creating") == 0 || strcmp(state, "deleting") == 0)
        return;

    if (s->due_ms < 0) {
        /* A new compute's interval opened at creation and gets its size from
         * the first regular sample (or at once if it is already asleep, its
         * suspend having come before we first looked); a known one resumes
         * its rhythm. */
        if (has_bytes)
            s->due_ms = mono_ms() + jitter(s->cid, period);
        else
            s->due_ms = mono_ms() + (strcmp(state, "suspended") == 0 ? 0 : period);
        s->gen = gen;
    }
    due = mono_ms() >= s->due_ms || (gen != s->gen && strcmp(state, "suspended") == 0);
    s->gen = gen;
    if (!due)
        return;
    s->due_ms = mono_ms() + period;
    if (store_compute_get(s->cid, &c) != 0)
        return;
    bytes = lifecycle_backend()->storage_bytes(&c);
    if (bytes < 0) {
        store_counter_incr("billing_storage_sample_failures_total", 1);
        return;
    }
    if (events_storage_sample(s->cid, project, bytes, now_ms()) >= 0)
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
        char **ids = lifecycle_compute_ids();

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

int storage_sampler_start(const config *c)
{
    cfg = c;
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
