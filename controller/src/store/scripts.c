/* Every Lua script the controller runs, in one place.  Each one is atomic
 * and idempotent: a copy sent again after a lost reply must do no harm
 * (store.h).  Keys come in KEYS (or, where a script derives them, as
 * prefixes from store/keys.h in ARGV); docs/redis-keys.md has the keys. */
#include "store/scripts.h"

#include "store/usage_format.h"

/* Lua: usage_emit(usage, pending, queue, base, s, e, rate, per) records the
 * closed interval [s, e) as events cut at every UTC midnight (USAGE_DAY_MS):
 * `base` holds the fixed fields (kind, project, compute_id, cu or bytes),
 * `per` names the rate integral (cu_seconds, byte_seconds) = seconds * rate.
 * Key: "<compute_id>:<start_ms>:<kind>" — an interval's start is unique per
 * compute and kind, so the key names the interval, whoever records it.
 * Prepended to every script that closes intervals, so there is one
 * definition of an event. */
#define USAGE_EMIT_LUA                                                            \
    "local function usage_emit(ku, kp, kq, base, s, e, rate, per)\n"              \
    "  local n = 0\n"                                                             \
    "  while s < e do\n"                                                          \
    "    local t = math.min(e, (math.floor(s / " USAGE_DAY_STR ") + 1) * " USAGE_DAY_STR ")\n" \
    "    local ev = {}\n"                                                         \
    "    for k, v in pairs(base) do ev[k] = v end\n"                              \
    "    ev.key = base.compute_id .. ':' .. string.format('%d', s) .. ':' .. base.kind\n" \
    "    ev.start_ms = s\n"                                                       \
    "    ev.end_ms = t\n"                                                         \
    "    ev.seconds = (t - s) / 1000.0\n"                                         \
    "    ev[per] = ev.seconds * rate\n"                                           \
    "    local j = cjson.encode(ev)\n"                                            \
    "    redis.call('ZADD', ku, s, j)\n"                                          \
    "    redis.call('HSET', kp, ev.key, j)\n"                                     \
    "    redis.call('ZADD', kq, t, ev.key)\n"                                     \
    "    s = t\n"                                                                 \
    "    n = n + 1\n"                                                             \
    "  end\n"                                                                     \
    "  return n\n"                                                                \
    "end\n"

/* The compute transition, applied atomically.  It checks the current state
 * (and an optional guard field), sets the new state and fields, bumps `gen`,
 * and meters: an open interval (meter_since_ms) is closed into a usage event
 * that goes both to the project's usage index and to the export queue, where
 * it stays until PostgreSQL has acknowledged it.  Doing the metering in the
 * same script as the transition is what makes "no billed second lost or
 * doubled" hold across crashes: either both happen or neither.
 *
 * Events are written by usage_emit (above), shared with the storage
 * sampler.  Deleting a compute also closes its storage interval.
 *
 * A reply lost to a timeout or a dropped connection makes the caller send
 * the same transition again (for OUTCOME_WINDOW_MS): each carries a random
 * operation id, and the script remembers the ids of the last OPS_KEPT
 * transitions it applied (field `ops`, "id=previous-state ..."), so the
 * second copy answers "applied" instead of being refused (the state moved)
 * or applied twice (a second usage event).
 *
 * KEYS: compute hash, usage zset of its project, export pending hash,
 *       export queue zset
 * ARGV: from-states, to-state ('' keeps), now_ms, meter op, guard field,
 *       guard max, operation id, then field/value pairs ('' value deletes). */
#define OPS_KEPT "8"
const char transition_lua[] =
    USAGE_EMIT_LUA
    "local cur = redis.call('HGET', KEYS[1], 'state')\n"
    "if not cur then return {-1, ''} end\n"
    "local ops = redis.call('HGET', KEYS[1], 'ops') or ''\n"
    "local seen = string.match(' ' .. ops, ' ' .. ARGV[7] .. '=(%S*)')\n"
    "if seen then return {1, seen} end\n"
    "local ok = false\n"
    "for s in string.gmatch(ARGV[1], '[^,]+') do if s == cur then ok = true end end\n"
    "if not ok then return {0, cur} end\n"
    "if ARGV[5] ~= '' then\n"
    "  local v = tonumber(redis.call('HGET', KEYS[1], ARGV[5]) or '0') or 0\n"
    "  if v > tonumber(ARGV[6]) then return {0, ''} end\n"
    "end\n"
    "local now = tonumber(ARGV[3])\n"
    "local op = ARGV[4]\n"
    "if op == 'close' or op == 'split' then\n"
    "  local since = tonumber(redis.call('HGET', KEYS[1], 'meter_since_ms') or '')\n"
    "  if since and now > since then\n"
    "    local cu = tonumber(redis.call('HGET', KEYS[1], 'size_cu') or '1') or 1\n"
    "    usage_emit(KEYS[2], KEYS[3], KEYS[4], {kind = 'compute',\n"
    "      project = redis.call('HGET', KEYS[1], 'project'),\n"
    "      compute_id = redis.call('HGET', KEYS[1], 'id'), cu = cu}, since, now, cu, 'cu_seconds')\n"
    "  end\n"
    "  if op == 'close' then redis.call('HDEL', KEYS[1], 'meter_since_ms')\n"
    "  elseif since then redis.call('HSET', KEYS[1], 'meter_since_ms', now) end\n"
    "elseif op == 'open' then\n"
    "  if not redis.call('HGET', KEYS[1], 'meter_since_ms') then\n"
    "    redis.call('HSET', KEYS[1], 'meter_since_ms', now)\n"
    "  end\n"
    "end\n"
    "if ARGV[2] == 'deleting' then\n"
    "  local ss = tonumber(redis.call('HGET', KEYS[1], 'storage_since_ms') or '')\n"
    "  local sb = tonumber(redis.call('HGET', KEYS[1], 'storage_bytes') or '')\n"
    "  if ss and sb and now > ss then\n"
    "    usage_emit(KEYS[2], KEYS[3], KEYS[4], {kind = 'storage',\n"
    "      project = redis.call('HGET', KEYS[1], 'project'),\n"
    "      compute_id = redis.call('HGET', KEYS[1], 'id'), bytes = sb}, ss, now, sb, 'byte_seconds')\n"
    "  end\n"
    "  redis.call('HDEL', KEYS[1], 'storage_since_ms', 'storage_bytes')\n"
    "end\n"
    "if ARGV[2] ~= '' then\n"
    "  redis.call('HSET', KEYS[1], 'state', ARGV[2], 'state_since_ms', now)\n"
    "  redis.call('HINCRBY', KEYS[1], 'gen', 1)\n"
    "end\n"
    "for i = 8, #ARGV, 2 do\n"
    "  if ARGV[i+1] == '' then redis.call('HDEL', KEYS[1], ARGV[i])\n"
    "  else redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1]) end\n"
    "end\n"
    "local keep = {}\n"
    "for w in string.gmatch(ops, '%S+') do keep[#keep + 1] = w end\n"
    "while #keep >= " OPS_KEPT " do table.remove(keep, 1) end\n"
    "keep[#keep + 1] = ARGV[7] .. '=' .. cur\n"
    "redis.call('HSET', KEYS[1], 'ops', table.concat(keep, ' '))\n"
    "return {1, cur}\n";

/* Creates a project and its compute, reserving the first free port of the
 * pool and registering the compute's report token, in one atomic step.  The
 * operation id is recorded on the new compute (`create_op`): the same create
 * sent again after a lost reply answers with the port it reserved the first
 * time instead of "exists".
 * KEYS: project hash, projects set, compute hash, computes set, ports hash,
 *       tokens hash
 * ARGV: port min, port max, compute id, project field/value count,
 *       attach flag ('1': the project exists and gets a new compute),
 *       operation id, token hash, then project pairs, compute pairs. */
const char create_lua[] =
    "if redis.call('HGET', KEYS[3], 'create_op') == ARGV[6] then\n"
    "  return tonumber(redis.call('HGET', KEYS[3], 'port'))\n"
    "end\n"
    "if ARGV[5] == '1' then\n"
    "  if redis.call('EXISTS', KEYS[1]) == 0 then return -3 end\n"
    "  local cur = redis.call('HGET', KEYS[1], 'compute_id')\n"
    "  if cur and cur ~= '' then return -1 end\n"
    "elseif redis.call('EXISTS', KEYS[1]) == 1 then return -1 end\n"
    "local port = nil\n"
    "for p = tonumber(ARGV[1]), tonumber(ARGV[2]) do\n"
    "  if redis.call('HSETNX', KEYS[5], tostring(p), ARGV[3]) == 1 then port = p break end\n"
    "end\n"
    "if not port then return -2 end\n"
    "local np = tonumber(ARGV[4])\n"
    "for i = 8, 7 + np, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1]) end\n"
    "for i = 8 + np, #ARGV, 2 do redis.call('HSET', KEYS[3], ARGV[i], ARGV[i+1]) end\n"
    "redis.call('HSET', KEYS[3], 'port', port, 'create_op', ARGV[6])\n"
    "redis.call('HSET', KEYS[6], ARGV[7], ARGV[3])\n"
    "redis.call('SADD', KEYS[2], redis.call('HGET', KEYS[1], 'id'))\n"
    "redis.call('SADD', KEYS[4], ARGV[3])\n"
    "return port\n";

/* KEYS: compute hash, usage zset, pending hash, queue zset
 * ARGV: now_ms, sampled bytes
 *
 * The open storage interval is storage_since_ms + storage_bytes (the size
 * sampled when it opened), on the compute hash.  The create script opens it
 * (since only); the first sample gives it its size.  While the size stays
 * the same the interval is extended and only cut at UTC midnight, so a
 * sleeping project costs one storage event a day, not one per sample. */
const char storage_lua[] =
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
const char transfer_lua[] =
    "if redis.call('EXISTS', KEYS[5]) == 0 then return -2 end\n"
    "if not redis.call('SET', KEYS[4], ARGV[1], 'NX', 'PX', ARGV[4]) then return 0 end\n"
    "if redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3]) == 0 then return 0 end\n"
    "redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])\n"
    "redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])\n"
    "return 1\n";


/* KEYS: pending hash, queue zset; ARGV: the prefix of usage index keys,
 * the prefix of hourly bucket keys, then event keys.
 * Retires events (exported, or past the retention without a ledger): each
 * is folded into its project's hourly buckets (the format is
 * usage_bucket_parse's, billing/usage.h) and removed from the usage index,
 * the pending hash and the queue, in one step, so the usage API counts it
 * exactly once: from the index before, from the buckets after.
 *
 * An interval adds to every hour it overlaps its share (exact integers
 * for compute: ms and cu*ms); it is counted (n) in its first hour and as
 * carried (c) in the others.  Every sum is checked against 2^53 (where a
 * Lua number stops being an exact integer) before anything is written: an
 * event that would overflow, or is not one of ours, is not folded but
 * stays in the usage index, still counted exactly, and is reported.
 * (The project's keys are built from the event and the prefixes, not
 * passed in KEYS: the controller runs on one Redis, not a cluster.) */
const char retire_lua[] =
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
    "for i = 3, #ARGV do\n"
    "  local j = redis.call('HGET', KEYS[1], ARGV[i])\n"
    "  if j then\n"
    "    local ok, ev = pcall(cjson.decode, j)\n"
    "    if ok and type(ev) == 'table' and type(ev.project) == 'string' and\n"
    "       string.match(ev.project, '^[a-z0-9-]+$') then\n"
    "      local ku = ARGV[1] .. ev.project\n"
    "      if not redis.call('ZSCORE', ku, j) then\n"
    "        done = done + 1\n"
    "      elseif fold(ev, ARGV[2] .. ev.project) then\n"
    "        redis.call('ZREM', ku, j)\n"
    "        done = done + 1\n"
    "      else kept = kept + 1 end\n"
    "    else kept = kept + 1 end\n"
    "  end\n"
    "  redis.call('HDEL', KEYS[1], ARGV[i])\n"
    "  redis.call('ZREM', KEYS[2], ARGV[i])\n"
    "end\n"
    "return {done, kept}\n";


/* Accepts a report only if it is newer than the stored one: from a later
 * server start, or from the same start with a higher seq.  Also raises
 * last_activity_ms, which the scheduler's suspend guard compares against.
 * KEYS: compute hash.  ARGV: start_ms, seq, now_ms, then field/value pairs
 * of the report (last_activity_ms among them as ARGV[4]). */
const char activity_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end\n"
    "local start = tonumber(ARGV[1]); local seq = tonumber(ARGV[2])\n"
    "local ostart = tonumber(redis.call('HGET', KEYS[1], 'act_start_ms') or '0') or 0\n"
    "local oseq = tonumber(redis.call('HGET', KEYS[1], 'act_seq') or '0') or 0\n"
    "local newer = false\n"
    "if start > ostart + 2000 then newer = true\n"
    "elseif start >= ostart - 2000 and seq > oseq then newer = true end\n"
    "if not newer then return 0 end\n"
    "if math.abs(start - ostart) <= 2000 and start < ostart then start = ostart end\n"
    "redis.call('HSET', KEYS[1], 'act_start_ms', start, 'act_received_ms', ARGV[3])\n"
    "for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1]) end\n"
    "local la = tonumber(ARGV[4])\n"
    "local old = tonumber(redis.call('HGET', KEYS[1], 'last_activity_ms') or '0') or 0\n"
    "if la > old then redis.call('HSET', KEYS[1], 'last_activity_ms', la) end\n"
    "return 1\n";


/* Removes a compute's records (it is `deleting`): the hash, its set entry,
 * its port and its token, and detaches it from its project only if the
 * project still points at it.
 * KEYS: compute hash, computes set, ports hash, project hash, tokens hash
 * ARGV: compute id, port, token hash ('-' if none) */
const char remove_compute_lua[] =
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('SREM', KEYS[2], ARGV[1])\n"
    "redis.call('HDEL', KEYS[5], ARGV[3])\n"
    "if redis.call('HGET', KEYS[3], ARGV[2]) == ARGV[1] then\n"
    "  redis.call('HDEL', KEYS[3], ARGV[2])\n"
    "end\n"
    "if redis.call('HGET', KEYS[4], 'compute_id') == ARGV[1] then\n"
    "  redis.call('HSET', KEYS[4], 'compute_id', '')\n"
    "end\n"
    "return 1\n";

/* Removes a project (its compute removed first).
 * KEYS: project hash, projects set.  ARGV: project id */
const char remove_project_lua[] =
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('SREM', KEYS[2], ARGV[1])\n"
    "return 1\n";

/* KEYS[1] the lease; ARGV holder, ttl ms.  2: gained now, 1: renewed (still
 * the holder's), 0: another holds it. */
const char lease_lua[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end\n"
    "if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end\n"
    "return 0\n";

/* KEYS[1] the lease; ARGV holder.  1: released, 0: not the holder's. */
const char lease_release_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end\n"
    "return 0\n";

/* Writes fields of a record only while it exists (a compute deleted
 * meanwhile is not brought back as a stub).
 * KEYS: the hash.  ARGV: field, value, ... */
const char hset_existing_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
    "for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1]) end\n"
    "return 1\n";

/* A project's wake token bucket (store/rate.c).  KEYS[1] the bucket (hash
 * tokens, ts); ARGV now_ms, rate per minute, burst, n: 1 takes a token, -1
 * gives one back (a take whose wake turned out to be another actor's).
 * Refilled from the elapsed time; a clock behind the stored ts (another
 * controller's) refills nothing and keeps ts, so skew never mints tokens.
 * Returns {1, 0} taken, {0, ms until a token} empty.  A copy sent again
 * after a lost reply takes a second token: it errs on the strict side for
 * one wake, which is the harmless direction.  The key expires once the
 * bucket would be full again. */
const char rate_lua[] =
    "local now = tonumber(ARGV[1])\n"
    "local rate = tonumber(ARGV[2]) / 60000.0\n"
    "local burst = tonumber(ARGV[3])\n"
    "local n = tonumber(ARGV[4])\n"
    "local v = redis.call('HMGET', KEYS[1], 'tokens', 'ts')\n"
    "local tokens = tonumber(v[1]) or burst\n"
    "local ts = tonumber(v[2]) or now\n"
    "if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate) else now = ts end\n"
    "local ok, wait = 1, 0\n"
    "if n > 0 then\n"
    "  if tokens >= n then tokens = tokens - n\n"
    "  else ok = 0; wait = math.ceil((n - tokens) / rate) end\n"
    "else tokens = math.min(burst, tokens - n) end\n"
    "redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens),\n"
    "           'ts', string.format('%d', now))\n"
    "redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate) + 1000)\n"
    "return {ok, wait}\n";
