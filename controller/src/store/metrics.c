/* Counters and histograms behind /metrics, in Redis so that they survive a
 * controller restart and several controllers add up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/private.h"
#include "store/store.h"

const double store_hist_bounds[STORE_HIST_NBOUNDS] = {1, 2, 5, 10, 25, 50, 100, 250, 500,
                                                      1000, 2500, 5000, 10000, 30000};

int store_counter_incr(const char *name, long long by)
{
    char key[64];
    redisReply *r = store_cmd("HINCRBY %s %s %lld",
                              store_key(key, sizeof(key), K_METRICS), name, by);

    return store_int_reply(r) < 0 ? -1 : 0;
}

static long long reply_ll(const redisReply *r)
{
    if (r && r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r && r->type == REDIS_REPLY_STRING)
        return strtoll(r->str, NULL, 10);
    return 0;
}

/* HMGET of n fields of a hash into out (0 for a missing field). */
static int hmget(const char *key, const char *const *fields, int n, long long *out,
                 double *dout)
{
    const char **argv = malloc(sizeof(char *) * (size_t)(n + 2));
    redisReply *r;
    int rc = -1;

    if (argv == NULL)
        return -1;
    argv[0] = "HMGET";
    argv[1] = key;
    memcpy(argv + 2, fields, sizeof(char *) * (size_t)n);
    r = store_cmdargv(n + 2, argv);
    free(argv);
    if (r && r->type == REDIS_REPLY_ARRAY && (int)r->elements == n) {
        for (int i = 0; i < n; i++) {
            if (out)
                out[i] = reply_ll(r->element[i]);
            if (dout)
                dout[i] = r->element[i]->type == REDIS_REPLY_STRING
                              ? strtod(r->element[i]->str, NULL) : 0;
        }
        rc = 0;
    }
    if (r)
        freeReplyObject(r);
    return rc;
}

int store_counters_get(const char *const *names, int n, long long *out)
{
    char key[64];

    return hmget(store_key(key, sizeof(key), K_METRICS), names, n, out, NULL);
}

static void bucket_field(char *buf, size_t len, int i)
{
    if (i < STORE_HIST_NBOUNDS)
        snprintf(buf, len, "le_%g", store_hist_bounds[i]);
    else
        snprintf(buf, len, "le_inf");
}

void store_hist_observe(const char *name, double ms)
{
    char key[96], field[32], sum[32];
    redisReply *r;
    int i;

    store_key(key, sizeof(key), K_HIST, name);
    for (i = 0; i < STORE_HIST_NBOUNDS && ms > store_hist_bounds[i]; i++)
        ;
    bucket_field(field, sizeof(field), i);
    snprintf(sum, sizeof(sum), "%.3f", ms);
    /* non-cumulative buckets; the exposition accumulates them */
    r = store_cmd("HINCRBY %s %s 1", key, field);
    if (r) freeReplyObject(r);
    r = store_cmd("HINCRBY %s count 1", key);
    if (r) freeReplyObject(r);
    r = store_cmd("HINCRBYFLOAT %s sum %s", key, sum);
    if (r) freeReplyObject(r);
}

int store_hist_get(const char *name, store_hist *out)
{
    char key[96], names[STORE_HIST_NBOUNDS + 2][32];
    const char *fields[STORE_HIST_NBOUNDS + 2];
    long long v[STORE_HIST_NBOUNDS + 2];
    double d[STORE_HIST_NBOUNDS + 2];
    int n = 0;

    memset(out, 0, sizeof(*out));
    for (; n < STORE_HIST_NBOUNDS; n++) {
        bucket_field(names[n], sizeof(names[n]), n);
        fields[n] = names[n];
    }
    fields[n++] = "count";
    fields[n++] = "sum";
    if (hmget(store_key(key, sizeof(key), K_HIST, name), fields, n, v, d) < 0)
        return -1;
    memcpy(out->bucket, v, sizeof(out->bucket));
    out->count = v[STORE_HIST_NBOUNDS];
    out->sum_ms = d[STORE_HIST_NBOUNDS + 1];
    return 0;
}
