/* POST /api/v1/compute/{id}/activity: reports of a compute's plugin.
 * Each compute has its own random token; the store keeps only its SHA-256
 * and an index from hash to compute, so that a token used for another
 * compute is told apart (403) from a token nobody has (401). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers.h"
#include "core/autoscale.h"
#include "store/store.h"
#include "util/ids.h"

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

static const char *const fields[] = {"seq", "connections", "connects", "failed_connects",
                                     "disconnects", "queries", "last_activity_ms",
                                     "sent_at_ms", "uptime_s"};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

void h_activity(api_req *r, const char *id)
{
    const char *token = api_bearer(r);
    char hash[65], owner[96];
    long long v[NFIELDS], opt[ACT_NOPT];
    compute_rec c;
    activity_report rep;
    json_t *doc, *cid;
    int rc;
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
        if (store_token_owner(hash, owner, sizeof(owner)) == 1)
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
    }
    /* the load signals are optional (an older plugin has none): absent is
     * unknown; present, they are checked like the others */
    for (int i = 0; i < ACT_NOPT; i++) {
        json_t *f = json_object_get(doc, act_opt_names[i]);
        opt[i] = -1;
        if (f == NULL || json_is_null(f))
            continue;
        if (!json_is_integer(f) || json_integer_value(f) < 0) {
            char msg[96];
            snprintf(msg, sizeof(msg), "\"%s\" must be a non-negative integer",
                     act_opt_names[i]);
            json_decref(doc);
            return reject(r, 400, "malformed", msg);
        }
        opt[i] = json_integer_value(f);
    }
    json_decref(doc);
    rep = (activity_report){.seq = v[0], .connections = v[1], .connects = v[2],
                            .failed_connects = v[3], .disconnects = v[4], .queries = v[5],
                            .last_activity_ms = v[6], .sent_at_ms = v[7], .uptime_s = v[8],
                            .received_ms = now};
    memcpy(rep.opt, opt, sizeof(opt));
    /* reports older than a minute say nothing about now */
    if (rep.sent_at_ms < now - 60000 || rep.sent_at_ms > now + 60000)
        return reject(r, 409, "stale", "report time too far from the controller's clock");
    /* last activity may not lie in the future (it guards suspends) */
    if (rep.last_activity_ms > now)
        rep.last_activity_ms = now;
    rep.start_ms = rep.sent_at_ms - rep.uptime_s * 1000;
    rc = store_activity_accept(id, &rep);
    if (rc == -2)
        return reject(r, 503, "store_unavailable", "state store unavailable");
    if (rc == -1)
        return reject(r, 404, "unknown_compute", "unknown compute");
    if (rc == 0)
        return reject(r, 409, "stale", "report is not newer than the last one");
    count("accepted");
    /* The answer is the size the server must have (docs/autoscaling.md):
     * the plugin applies it with SET GLOBAL from inside the server, the only
     * place that may (the controller's account gave SET GLOBAL up). */
    {
        int cu = c.size_cu > 0 ? c.size_cu : 1;
        autoscale_target t = autoscale_target_of(cu);
        api_json(r, 200, json_pack("{s:{s:I, s:I, s:i}}", "target", "buffer_pool_bytes",
                                   (json_int_t)t.pool_bytes, "max_connections",
                                   (json_int_t)t.max_connections, "cu", cu));
    }
}
