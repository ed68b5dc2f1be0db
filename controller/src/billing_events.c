#include "billing_events.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* KEYS: compute hash, usage zset, pending hash, queue zset
 * ARGV: now_ms, sampled bytes
 *
 * The open storage interval is storage_since_ms + storage_bytes (the size
 * sampled when it opened), on the compute hash.  The create script opens it
 * (since only); the first sample gives it its size.  While the size stays
 * the same the interval is extended and only cut at UTC midnight, so a
 * sleeping project costs one storage event a day, not one per sample. */
static const char storage_lua[] =
    USAGE_EMIT_LUA
    "local st = redis.call('HGET', KEYS[1], 'state')\n"
    "if not st or st == 'deleting' or st == 'creating' then return -1 end\n"
    "local now = tonumber(ARGV[1])\n"
    "local bytes = tonumber(ARGV[2])\n"
    "local since = tonumber(redis.call('HGET', KEYS[1], 'storage_since_ms') or '')\n"
    "local held = tonumber(redis.call('HGET', KEYS[1], 'storage_bytes') or '')\n"
    "if not since then\n"
    "  redis.call('HSET', KEYS[1], 'storage_since_ms', now, 'storage_bytes', bytes)\n"
    "  return 0\n"
    "end\n"
    "if not held then\n"
    "  redis.call('HSET', KEYS[1], 'storage_bytes', bytes)\n"
    "  return 0\n"
    "end\n"
    "if now <= since then return 0 end\n"
    "local base = {kind = 'storage', project = redis.call('HGET', KEYS[1], 'project'),\n"
    "  compute_id = redis.call('HGET', KEYS[1], 'id'), bytes = held}\n"
    "local stop = now\n"
    "if held == bytes then\n"
    "  stop = math.floor(now / " USAGE_DAY_STR ") * " USAGE_DAY_STR "\n"
    "  if stop <= since then return 0 end\n"
    "end\n"
    "local n = usage_emit(KEYS[2], KEYS[3], KEYS[4], base, since, stop, held, 'byte_seconds')\n"
    "redis.call('HSET', KEYS[1], 'storage_since_ms', stop, 'storage_bytes', bytes)\n"
    "return n\n";

/* KEYS: usage zset, pending hash, queue zset; ARGV: key, end_ms, event.
 * The usage index is the memory of what was recorded: a member already
 * there is the same session reported again, and is not queued again. */
static const char transfer_lua[] =
    "if redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3]) == 0 then return 0 end\n"
    "redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])\n"
    "redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])\n"
    "return 1\n";

/* KEYS: pending hash, queue zset; ARGV: keys committed to the ledger. */
static const char ack_lua[] =
    "for i = 1, #ARGV do\n"
    "  redis.call('HDEL', KEYS[1], ARGV[i])\n"
    "  redis.call('ZREM', KEYS[2], ARGV[i])\n"
    "end\n"
    "return #ARGV\n";

/* EVAL with the script text each time (Redis caches it by its SHA): unlike
 * EVALSHA this survives a Redis restart or SCRIPT FLUSH without reloading. */
static redisReply *eval(const char *script, int nkeys, const char *const *keys, int nargs,
                        const char *const *args)
{
    const char **argv = malloc(sizeof(char *) * (size_t)(3 + nkeys + nargs));
    char nk[8];
    int n = 0;
    redisReply *r;

    if (argv == NULL)
        return NULL;
    snprintf(nk, sizeof(nk), "%d", nkeys);
    argv[n++] = "EVAL";
    argv[n++] = script;
    argv[n++] = nk;
    for (int i = 0; i < nkeys; i++)
        argv[n++] = keys[i];
    for (int i = 0; i < nargs; i++)
        argv[n++] = args[i];
    r = store_cmdargv(n, argv);
    free(argv);
    return r;
}

static long long int_reply(redisReply *r)
{
    long long v = (r && r->type == REDIS_REPLY_INTEGER) ? r->integer : -1;

    if (r)
        freeReplyObject(r);
    return v;
}

int events_storage_sample(const char *cid, const char *project, long long bytes, int64_t now)
{
    char kc[160], ku[128], kp[64], kq[64], snow[24], sbytes[24];
    const char *keys[] = {store_key(kc, sizeof(kc), "compute:%s", cid),
                          store_key(ku, sizeof(ku), "usage:%s", project),
                          store_key(kp, sizeof(kp), K_PENDING), store_key(kq, sizeof(kq), K_QUEUE)};
    const char *args[] = {snow, sbytes};

    snprintf(snow, sizeof(snow), "%lld", (long long)now);
    snprintf(sbytes, sizeof(sbytes), "%lld", bytes);
    return (int)int_reply(eval(storage_lua, 4, keys, 2, args));
}

int events_transfer(const transfer_rec *t)
{
    char ku[128], kp[64], kq[64], key[256], end[24];
    json_t *ev;
    char *js;
    int rc;

    transfer_key(t, key, sizeof(key));
    ev = json_pack("{s:s, s:s, s:s, s:o, s:I, s:I, s:f, s:I, s:I}", "key", key, "kind",
                   "transfer", "project", t->project, "compute_id",
                   t->compute_id[0] ? json_string(t->compute_id) : json_null(),
                   "start_ms", (json_int_t)t->start_ms, "end_ms", (json_int_t)t->end_ms,
                   "seconds", (double)(t->end_ms - t->start_ms) / 1000.0,
                   "bytes_in", (json_int_t)t->bytes_in, "bytes_out", (json_int_t)t->bytes_out);
    js = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    json_decref(ev);
    if (js == NULL)
        return -1;
    snprintf(end, sizeof(end), "%lld", (long long)t->end_ms);
    {
        const char *keys[] = {store_key(ku, sizeof(ku), "usage:%s", t->project),
                              store_key(kp, sizeof(kp), K_PENDING),
                              store_key(kq, sizeof(kq), K_QUEUE)};
        const char *args[] = {key, end, js};
        rc = (int)int_reply(eval(transfer_lua, 3, keys, 3, args));
    }
    free(js);
    return rc;
}

int events_ack(const char *const *keys, int n)
{
    char kp[64], kq[64];
    const char *k[] = {store_key(kp, sizeof(kp), K_PENDING), store_key(kq, sizeof(kq), K_QUEUE)};

    if (n == 0)
        return 0;
    return int_reply(eval(ack_lua, 2, k, n, keys)) == n ? 0 : -1;
}
