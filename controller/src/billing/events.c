#include "billing/events.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

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

/* KEYS: usage zset, pending hash, queue zset, session marker, project
 * ARGV: key, end_ms, event, marker TTL (ms).
 * A project that does not exist gets nothing (-2): the proxy logs every
 * session, also a handshake naming a random project, and an
 * unauthenticated client must create no state (DESIGN.md §4).
 * The marker (SET NX) remembers the session, whatever the line claimed
 * about project and bytes, for longer than a line is accepted at all
 * (TRANSFER_MAX_AGE_MS): a replayed or altered copy bills nothing, even
 * after the first one has been exported and pruned. */
static const char transfer_lua[] =
    "if redis.call('EXISTS', KEYS[5]) == 0 then return -2 end\n"
    "if not redis.call('SET', KEYS[4], ARGV[1], 'NX', 'PX', ARGV[4]) then return 0 end\n"
    "if redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3]) == 0 then return 0 end\n"
    "redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])\n"
    "redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])\n"
    "return 1\n";

/* KEYS: pending hash, queue zset; ARGV: key prefix, then event keys.
 * Retires events (exported, or past the retention without a ledger): each
 * is folded into its project's hourly buckets (the format is
 * usage_bucket_parse's, billing_usage.h) and removed from the usage index,
 * the pending hash and the queue, in one step, so the usage API counts it
 * exactly once: from the index before, from the buckets after.
 *
 * An interval adds to every hour it overlaps its share (exact integers
 * for compute: ms and cu*ms); it is counted (n) in its first hour and as
 * carried (c) in the others.  Every sum is checked against 2^53 (where a
 * Lua number stops being an exact integer) before anything is written: an
 * event that would overflow, or is not one of ours, is not folded but
 * stays in the usage index, still counted exactly, and is reported.
 * (The project's keys are built from the event, not passed in KEYS: the
 * controller runs on one Redis, not a cluster.) */
static const char retire_lua[] =
    "local H = " USAGE_HOUR_STR "\n"
    "local LIM = 9007199254740992\n"
    "local function get(kh, h, cache)\n"
    "  local id = kh .. '|' .. h\n"
    "  if cache[id] then return cache[id] end\n"
    "  local b = {0, 0, 0, 0, 0, 0, 0, -1, -1}\n"
    "  local v = redis.call('HGET', kh, string.format('%.0f', h))\n"
    "  if v then local i = 1\n"
    "    for w in string.gmatch(v, '%S+') do b[i] = tonumber(w) or 0; i = i + 1 end end\n"
    "  cache[id] = {kh = kh, h = h, b = b}\n"
    "  return cache[id]\n"
    "end\n"
    "local function span(b, lo, hi)\n"
    "  if b[8] < 0 or lo < b[8] then b[8] = lo end\n"
    "  if hi > b[9] then b[9] = hi end\n"
    "end\n"
    "local function fold(ev, kh)\n"
    "  local s, e = tonumber(ev.start_ms), tonumber(ev.end_ms)\n"
    "  if not s or not e or e < s or s < 0 or e - s > " USAGE_DAY_STR " then return nil end\n"
    "  local touched, cache = {}, {}\n"
    "  if ev.kind == 'transfer' then\n"
    "    local bi, bo = tonumber(ev.bytes_in) or 0, tonumber(ev.bytes_out) or 0\n"
    "    if bi < 0 or bo < 0 then return nil end\n"
    "    local x = get(kh, math.floor(e / H), cache)\n"
    "    x.b[1] = x.b[1] + 1; x.b[6] = x.b[6] + bi; x.b[7] = x.b[7] + bo\n"
    "    span(x.b, e, e + 1)\n"
    "    touched[1] = x\n"
    "  elseif (ev.kind == 'compute' or ev.kind == 'storage') and e > s then\n"
    "    local sec = tonumber(ev.seconds) or 0\n"
    "    local rate = tonumber(ev.kind == 'compute' and ev.cu or ev.bytes)\n"
    "    if not rate then\n"
    "      local per = tonumber(ev.kind == 'compute' and ev.cu_seconds or ev.byte_seconds) or 0\n"
    "      rate = sec > 0 and per / sec or 0\n"
    "    end\n"
    "    if rate < 0 then return nil end\n"
    "    local h = math.floor(s / H)\n"
    "    repeat\n"
    "      local lo, hi = math.max(s, h * H), math.min(e, (h + 1) * H)\n"
    "      local x = get(kh, h, cache)\n"
    "      if h == math.floor(s / H) then x.b[1] = x.b[1] + 1 else x.b[2] = x.b[2] + 1 end\n"
    "      if ev.kind == 'compute' then\n"
    "        x.b[3] = x.b[3] + (hi - lo); x.b[4] = x.b[4] + rate * (hi - lo)\n"
    "      else x.b[5] = x.b[5] + rate * (hi - lo) / 1000 end\n"
    "      span(x.b, lo, hi)\n"
    "      touched[#touched + 1] = x\n"
    "      h = h + 1\n"
    "    until h * H >= e\n"
    "  else return nil end\n"
    "  for _, x in ipairs(touched) do\n"
    "    for i = 1, 7 do\n"
    "      if x.b[i] ~= x.b[i] or x.b[i] >= LIM or x.b[i] < 0 then return nil end\n"
    "    end\n"
    "  end\n"
    "  for _, x in ipairs(touched) do\n"
    "    local b = x.b\n"
    "    redis.call('HSET', x.kh, string.format('%.0f', x.h),\n"
    "      string.format('%.0f %.0f %.0f %.0f %.17g %.0f %.0f %.0f %.0f',\n"
    "        b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9]))\n"
    "  end\n"
    "  return true\n"
    "end\n"
    "local done, kept = 0, 0\n"
    "for i = 2, #ARGV do\n"
    "  local j = redis.call('HGET', KEYS[1], ARGV[i])\n"
    "  if j then\n"
    "    local ok, ev = pcall(cjson.decode, j)\n"
    "    if ok and type(ev) == 'table' and type(ev.project) == 'string' and\n"
    "       string.match(ev.project, '^[a-z0-9-]+$') then\n"
    "      local ku = ARGV[1] .. 'usage:' .. ev.project\n"
    "      if not redis.call('ZSCORE', ku, j) then\n"
    "        done = done + 1\n"
    "      elseif fold(ev, ARGV[1] .. 'usage-hours:' .. ev.project) then\n"
    "        redis.call('ZREM', ku, j)\n"
    "        done = done + 1\n"
    "      else kept = kept + 1 end\n"
    "    else kept = kept + 1 end\n"
    "  end\n"
    "  redis.call('HDEL', KEYS[1], ARGV[i])\n"
    "  redis.call('ZREM', KEYS[2], ARGV[i])\n"
    "end\n"
    "return {done, kept}\n";

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
    char ku[128], kp[64], kq[64], ks[128], kj[128], sid[80], key[256], end[24], ttl[24];
    json_t *ev;
    char *js;
    int rc;

    transfer_key(t, key, sizeof(key));
    transfer_session_id(t, sid, sizeof(sid));
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
    snprintf(ttl, sizeof(ttl), "%lld", (long long)TRANSFER_DEDUPE_TTL_MS);
    {
        const char *keys[] = {store_key(ku, sizeof(ku), "usage:%s", t->project),
                              store_key(kp, sizeof(kp), K_PENDING),
                              store_key(kq, sizeof(kq), K_QUEUE),
                              store_key(ks, sizeof(ks), "transfer-seen:%s", sid),
                              store_key(kj, sizeof(kj), "project:%s", t->project)};
        const char *args[] = {key, end, js, ttl};
        rc = (int)int_reply(eval(transfer_lua, 5, keys, 4, args));
    }
    free(js);
    return rc;
}

int events_retire(const char *const *keys, int n, int *kept)
{
    char kp[64], kq[64], prefix[64];
    const char *k[] = {store_key(kp, sizeof(kp), K_PENDING), store_key(kq, sizeof(kq), K_QUEUE)};
    const char **args;
    redisReply *r;
    int rc = -1;

    *kept = 0;
    if (n == 0)
        return 0;
    if ((args = malloc(sizeof(char *) * (size_t)(n + 1))) == NULL)
        return -1;
    args[0] = store_key(prefix, sizeof(prefix), "%s", "");
    memcpy(args + 1, keys, sizeof(char *) * (size_t)n);
    r = eval(retire_lua, 2, k, n + 1, args);
    free(args);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_INTEGER) {
        *kept = (int)r->element[1]->integer;
        rc = 0;
        if (*kept > 0) {
            store_counter_incr("billing_usage_fold_refused_total", *kept);
            log_error("billing: %d retired events could not be aggregated (out of bounds); "
                      "they stay in the usage index", *kept);
        }
    } else if (r && r->type == REDIS_REPLY_ERROR) {
        log_error("billing: retiring events: %s", r->str);
    }
    if (r)
        freeReplyObject(r);
    return rc;
}
