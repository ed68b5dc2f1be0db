/* POST /api/v1/compute/{id}/activity: reports of a compute's plugin.
 * Each compute has its own random token; the store keeps only its SHA-256
 * and an index from hash to compute, so that a token used for another
 * compute is told apart (403) from a token nobody has (401). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "util/ids.h"

/* Accepts a report only if it is newer than the stored one: from a later
 * server start, or from the same start with a higher seq.  Also raises
 * last_activity_ms, which the scheduler's suspend guard compares against.
 * KEYS: compute hash.  ARGV: start_ms, seq, now_ms, then field/value pairs
 * of the report (last_activity_ms among them as ARGV[4]). */
static const char accept_lua[] =
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

static void count(const char *result)
{
    char f[64];

    snprintf(f, sizeof(f), "activity_reports_%s", result);
    store_counter_incr(f, 1);
}

static void reject(api_req *r, int status, const char *code, const char *msg)
{
    count(code);
    api_error(r, status, code, msg);
}

static const char *token_owner(const char *hash, char *out, size_t outlen)
{
    char key[64];
    redisReply *rep = store_cmd("HGET %s %s", store_key(key, sizeof(key), "tokens"), hash);

    out[0] = '\0';
    if (rep && rep->type == REDIS_REPLY_STRING)
        snprintf(out, outlen, "%s", rep->str);
    if (rep)
        freeReplyObject(rep);
    return out;
}

static const char *const fields[] = {"seq", "connections", "connects", "failed_connects",
                                     "disconnects", "queries", "last_activity_ms",
                                     "sent_at_ms", "uptime_s"};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

void h_activity(api_req *r, const char *id)
{
    const char *token = api_bearer(r);
    char hash[65], owner[96], key[160], vals[NFIELDS][24], start[24], now_s[24];
    long long v[NFIELDS];
    compute_rec c;
    json_t *doc, *cid;
    const char *argv[64];
    int n = 0, rc;
    redisReply *rep;
    long long now = now_ms();

    if (!compute_id_valid(id))
        return reject(r, 404, "unknown_compute", "unknown compute");
    if (token == NULL)
        return reject(r, 401, "unauthorized", "missing report token");
    sha256_hex(token, hash);
    if ((rc = store_compute_get(id, &c)) != 0)
        return reject(r, rc < 0 ? 503 : 404, rc < 0 ? "store_unavailable" : "unknown_compute",
                      rc < 0 ? "state store unavailable" : "unknown compute");
    if (!secret_equal(hash, c.token_hash)) {
        if (token_owner(hash, owner, sizeof(owner))[0])
            return reject(r, 403, "forbidden", "this token reports for another compute only");
        return reject(r, 401, "unauthorized", "unknown report token");
    }
    if ((doc = api_body_object(r)) == NULL)
        return count("malformed");
    cid = json_object_get(doc, "compute_id");
    if (cid && (!json_is_string(cid) || strcmp(json_string_value(cid), id) != 0)) {
        json_decref(doc);
        return reject(r, 400, "malformed", "compute_id does not match the URL");
    }
    for (size_t i = 0; i < NFIELDS; i++) {
        json_t *f = json_object_get(doc, fields[i]);
        if (!json_is_integer(f) || json_integer_value(f) < 0) {
            char msg[96];
            snprintf(msg, sizeof(msg), "\"%s\" must be a non-negative integer", fields[i]);
            json_decref(doc);
            return reject(r, 400, "malformed", msg);
        }
        v[i] = json_integer_value(f);
        snprintf(vals[i], sizeof(vals[i]), "%lld", v[i]);
    }
    json_decref(doc);
    /* reports older than a minute say nothing about now */
    if (v[7] < now - 60000 || v[7] > now + 60000)
        return reject(r, 409, "stale", "report time too far from the controller's clock");
    /* last activity may not lie in the future (it guards suspends) */
    if (v[6] > now) {
        v[6] = now;
        snprintf(vals[6], sizeof(vals[6]), "%lld", v[6]);
    }
    snprintf(start, sizeof(start), "%lld", v[7] - v[8] * 1000);
    snprintf(now_s, sizeof(now_s), "%lld", now);
    argv[n++] = "EVAL";
    argv[n++] = accept_lua;
    argv[n++] = "1";
    argv[n++] = store_key(key, sizeof(key), "compute:%s", id);
    argv[n++] = start;
    argv[n++] = vals[0];
    argv[n++] = now_s;
    argv[n++] = vals[6];
    {
        static const char *const stored[NFIELDS] = {
            "act_seq", "act_connections", "act_connects", "act_failed_connects",
            "act_disconnects", "act_queries", "act_last_activity_ms", "act_sent_at_ms",
            "act_uptime_s"};
        for (size_t i = 0; i < NFIELDS; i++) {
            argv[n++] = stored[i];
            argv[n++] = vals[i];
        }
    }
    rep = store_cmdargv(n, argv);
    rc = (rep && rep->type == REDIS_REPLY_INTEGER) ? (int)rep->integer : -2;
    if (rep)
        freeReplyObject(rep);
    if (rc == -2)
        return reject(r, 503, "store_unavailable", "state store unavailable");
    if (rc == -1)
        return reject(r, 404, "unknown_compute", "unknown compute");
    if (rc == 0)
        return reject(r, 409, "stale", "report is not newer than the last one");
    count("accepted");
    r->status = 204;
}
