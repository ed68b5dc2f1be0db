/* Billing's data (docs/billing.md).
 *
 * Every usage event is written, in one Lua script with whatever state
 * change produced it, to three places:
 *   usage:<project>   sorted set, the event JSON (score: start_ms; a
 *                     transfer event, a point in time, scores its end_ms)
 *                     — the usage index the API reads; kept after export
 *   export:pending    hash, idempotency key -> event JSON, until the ledger
 *                     has committed it
 *   export:queue      sorted set, idempotency key by end_ms: the export
 *                     order (oldest first) and the export lag, cheaply
 * so a crash can never leave an event in one and not the others.
 *
 * Once exported (or, without a ledger, older than usage_retention_s) an
 * event is retired: folded into usage-hours:<project> (hash, hour -> sums,
 * usage_format.h) and removed from all three, in one script. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/private.h"
#include "store/store.h"
#include "util/ids.h"
#include "util/log.h"

int store_storage_sample(const char *cid, const char *project, long long bytes, int64_t now)
{
    char kc[160], ku[128], kp[64], kq[64], snow[24], sbytes[24];
    const char *keys[] = {store_key(kc, sizeof(kc), K_COMPUTE, cid),
                          store_key(ku, sizeof(ku), K_USAGE, project),
                          store_key(kp, sizeof(kp), K_PENDING),
                          store_key(kq, sizeof(kq), K_QUEUE)};
    const char *args[] = {snow, sbytes};

    snprintf(snow, sizeof(snow), "%lld", (long long)now);
    snprintf(sbytes, sizeof(sbytes), "%lld", bytes);
    return (int)store_int_reply(store_eval(storage_lua, 4, keys, 2, args));
}

int store_transfer_record(const char *project, const char *key, const char *session,
                          int64_t end_ms, const char *event, long long dedupe_ttl_ms)
{
    char ku[128], kp[64], kq[64], ks[128], kj[128], end[24], ttl[24];
    const char *keys[] = {store_key(ku, sizeof(ku), K_USAGE, project),
                          store_key(kp, sizeof(kp), K_PENDING),
                          store_key(kq, sizeof(kq), K_QUEUE),
                          store_key(ks, sizeof(ks), K_TRANSFER_SEEN, session),
                          store_key(kj, sizeof(kj), K_PROJECT, project)};
    const char *args[] = {key, end, event, ttl};
    redisReply *r;
    long long rc;

    snprintf(end, sizeof(end), "%lld", (long long)end_ms);
    snprintf(ttl, sizeof(ttl), "%lld", dedupe_ttl_ms);
    r = store_eval(transfer_lua, 5, keys, 4, args);
    rc = (r && r->type == REDIS_REPLY_INTEGER) ? r->integer : -1;
    if (r)
        freeReplyObject(r);
    return rc == -2 ? -2 : rc < 0 ? -1 : (int)rc;
}

int store_usage_retire(const char *const *keys, int n, int *kept)
{
    char kp[64], kq[64], pu[64], ph[64];
    const char *k[] = {store_key(kp, sizeof(kp), K_PENDING), store_key(kq, sizeof(kq), K_QUEUE)};
    const char **args;
    redisReply *r;
    int rc = -1;

    *kept = 0;
    if (n == 0)
        return 0;
    if ((args = malloc(sizeof(char *) * (size_t)(n + 2))) == NULL)
        return -1;
    args[0] = store_key(pu, sizeof(pu), K_USAGE, "");
    args[1] = store_key(ph, sizeof(ph), K_USAGE_HOURS, "");
    memcpy(args + 2, keys, sizeof(char *) * (size_t)n);
    r = store_eval(retire_lua, 2, k, n + 2, args);
    free(args);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_INTEGER) {
        *kept = (int)r->element[1]->integer;
        rc = 0;
    } else if (r && r->type == REDIS_REPLY_ERROR) {
        log_error("billing: retiring events: %s", r->str);
    }
    if (r)
        freeReplyObject(r);
    return rc;
}

int store_usage_known(const char *project)
{
    char ku[128], kh[128];
    redisReply *r = store_cmd("EXISTS %s %s", store_key(ku, sizeof(ku), K_USAGE, project),
                              store_key(kh, sizeof(kh), K_USAGE_HOURS, project));
    long long n = store_int_reply(r);

    return n < 0 ? -1 : n > 0;
}

int store_usage_events(const char *project, int64_t min_start, int64_t before,
                       void (*fn)(const char *event, size_t len, void *arg), void *arg)
{
    char k[128], smin[24], smax[24];
    const char *argv[] = {"ZRANGEBYSCORE", store_key(k, sizeof(k), K_USAGE, project), smin,
                          smax};
    redisReply *r;

    snprintf(smin, sizeof(smin), "%lld", (long long)min_start);
    snprintf(smax, sizeof(smax), "(%lld", (long long)before);
    r = store_cmdargv(4, argv);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        if (r)
            freeReplyObject(r);
        return -1;
    }
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            fn(r->element[i]->str, r->element[i]->len, arg);
    freeReplyObject(r);
    return 0;
}

int store_usage_hours(const char *project, int64_t h0, int64_t h1,
                      void (*fn)(int64_t hour, const char *value, size_t len, void *arg),
                      void *arg)
{
    size_t n = (size_t)(h1 - h0 + 1);
    const char **argv;
    char k[128], (*names)[24];
    redisReply *r;
    int rc = -1;

    if (h1 < h0)
        return 0;
    argv = malloc(sizeof(char *) * (n + 2));
    names = malloc(sizeof(*names) * n);
    if (argv == NULL || names == NULL) {
        free(argv);
        free(names);
        return -1;
    }
    argv[0] = "HMGET";
    argv[1] = store_key(k, sizeof(k), K_USAGE_HOURS, project);
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof(names[i]), "%lld", (long long)(h0 + (int64_t)i));
        argv[i + 2] = names[i];
    }
    r = store_cmdargv((int)(n + 2), argv);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == n) {
        for (size_t i = 0; i < n; i++)
            if (r->element[i]->type == REDIS_REPLY_STRING)
                fn(h0 + (int64_t)i, r->element[i]->str, r->element[i]->len, arg);
        rc = 0;
    }
    if (r)
        freeReplyObject(r);
    free(argv);
    free(names);
    return rc;
}

/* ---- export queue ---- */

void store_batch_free(store_batch *b)
{
    for (int i = 0; i < b->n; i++) {
        free(b->keys[i]);
        if (b->events)
            free(b->events[i]);
    }
    free(b->keys);
    free(b->events);
    memset(b, 0, sizeof(*b));
}

/* The keys of an array reply into b (b->n of them); -1 out of memory. */
static int take_keys(redisReply *r, store_batch *b)
{
    b->n = 0;
    b->keys = calloc(r->elements + 1, sizeof(char *));
    if (b->keys == NULL)
        return -1;
    for (size_t i = 0; i < r->elements; i++) {
        if ((b->keys[i] = strdup(r->element[i]->str ? r->element[i]->str : "")) == NULL)
            return -1;
        b->n++;
    }
    return 0;
}

int store_export_next(int max, store_batch *b)
{
    char kq[64], kp[64];
    redisReply *ks = store_cmd("ZRANGE %s 0 %d", store_key(kq, sizeof(kq), K_QUEUE), max - 1);
    redisReply *vs = NULL;
    const char **argv = NULL;
    int rc = -1;

    memset(b, 0, sizeof(*b));
    if (ks == NULL || ks->type != REDIS_REPLY_ARRAY)
        goto out;
    if (ks->elements == 0) {
        rc = 0;
        goto out;
    }
    if (take_keys(ks, b) < 0 || (b->events = calloc((size_t)b->n, sizeof(char *))) == NULL ||
        (argv = calloc((size_t)b->n + 2, sizeof(char *))) == NULL)
        goto out;
    argv[0] = "HMGET";
    argv[1] = store_key(kp, sizeof(kp), K_PENDING);
    memcpy(argv + 2, b->keys, sizeof(char *) * (size_t)b->n);
    vs = store_cmdargv(b->n + 2, argv);
    if (vs == NULL || vs->type != REDIS_REPLY_ARRAY || (int)vs->elements != b->n)
        goto out;
    for (int i = 0; i < b->n; i++)
        if (vs->element[i]->type == REDIS_REPLY_STRING &&
            (b->events[i] = strdup(vs->element[i]->str)) == NULL)
            goto out;
    rc = b->n;
out:
    if (rc < 0)
        store_batch_free(b);
    free(argv);
    if (vs)
        freeReplyObject(vs);
    if (ks)
        freeReplyObject(ks);
    return rc;
}

int store_export_reject(const char *key, const char *event)
{
    char kr[64];
    redisReply *r = store_cmd("HSET %s %s %s", store_key(kr, sizeof(kr), K_REJECTED), key,
                              event);

    return store_int_reply(r) < 0 ? -1 : 0;
}

int store_export_expired(int64_t before_ms, int max, store_batch *b)
{
    char kq[64], smax[32], lim[16];
    const char *argv[] = {"ZRANGEBYSCORE", store_key(kq, sizeof(kq), K_QUEUE), "-inf", smax,
                          "LIMIT", "0", lim};
    redisReply *r;
    int rc = -1;

    memset(b, 0, sizeof(*b));
    snprintf(smax, sizeof(smax), "(%lld", (long long)before_ms);
    snprintf(lim, sizeof(lim), "%d", max);
    r = store_cmdargv(7, argv);
    if (r && r->type == REDIS_REPLY_ARRAY)
        rc = take_keys(r, b) < 0 ? -1 : b->n;
    if (rc < 0)
        store_batch_free(b);
    if (r)
        freeReplyObject(r);
    return rc;
}

long long store_export_waiting(void)
{
    char kp[64];

    return store_int_reply(store_cmd("HLEN %s", store_key(kp, sizeof(kp), K_PENDING)));
}

int store_export_oldest(int64_t *end_ms)
{
    char kq[64];
    redisReply *r = store_cmd("ZRANGE %s 0 0 WITHSCORES", store_key(kq, sizeof(kq), K_QUEUE));
    int rc = -1;

    if (r && r->type == REDIS_REPLY_ARRAY) {
        rc = r->elements == 2;
        if (rc)
            *end_ms = strtoll(r->element[1]->str, NULL, 10);
    }
    if (r)
        freeReplyObject(r);
    return rc;
}

int store_export_repair(void)
{
    char kp[64], kq[64], cursor[32] = "0";
    long long pending = store_int_reply(store_cmd("HLEN %s", store_key(kp, sizeof(kp), K_PENDING)));
    long long queued = store_int_reply(store_cmd("ZCARD %s", store_key(kq, sizeof(kq), K_QUEUE)));
    int added = 0;

    if (pending < 0 || queued < 0)
        return -1;
    if (pending <= queued)
        return 0;
    do {
        redisReply *r = store_cmd("HSCAN %s %s COUNT 1000", kp, cursor);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            if (r)
                freeReplyObject(r);
            return -1;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (size_t i = 0; i + 1 < r->element[1]->elements; i += 2) {
            const char *key = r->element[1]->element[i]->str;
            json_t *ev = json_loads(r->element[1]->element[i + 1]->str, 0, NULL);
            json_t *end = json_object_get(ev, "end_ms");
            long long score = json_is_number(end) ? (long long)json_number_value(end) : now_ms();
            long long z = store_int_reply(store_cmd("ZADD %s NX %lld %s", kq, score, key));
            if (z > 0)
                added += (int)z;
            json_decref(ev);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return added;
}
