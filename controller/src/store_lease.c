/* Leases in Redis: one controller at a time runs the scheduler, reconcile
 * and the billing exporters; the others serve the API and wakes.  A lease
 * lives lease_ttl_ms unless its holder renews it, so a killed holder's work
 * moves to another controller within that time. */
#include <stdio.h>
#include <string.h>

#include "store.h"

/* 2: gained now, 1: renewed (still ours), 0: held by another */
static const char lease_lua[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end\n"
    "if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end\n"
    "return 0\n";

static const char release_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end\n"
    "return 0\n";

int store_lease(const char *name, const char *holder, int ttl_ms)
{
    char key[128], ttl[16];
    const char *argv[] = {"EVAL", lease_lua, "1", key, holder, ttl};
    redisReply *r;
    int rc = -1;

    store_key(key, sizeof(key), "lease:%s", name);
    snprintf(ttl, sizeof(ttl), "%d", ttl_ms);
    r = store_cmdargv(6, argv);
    if (r && r->type == REDIS_REPLY_INTEGER)
        rc = (int)r->integer;
    if (r)
        freeReplyObject(r);
    return rc;
}

int store_lease_release(const char *name, const char *holder)
{
    char key[128];
    const char *argv[] = {"EVAL", release_lua, "1", key, holder};
    redisReply *r;
    int rc = -1;

    store_key(key, sizeof(key), "lease:%s", name);
    r = store_cmdargv(5, argv);
    if (r && r->type == REDIS_REPLY_INTEGER)
        rc = (int)r->integer;
    if (r)
        freeReplyObject(r);
    return rc;
}
