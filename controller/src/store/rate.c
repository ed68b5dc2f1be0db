/* Per-project wake rate limit: a token bucket in Redis, shared by every
 * controller (the script is store/scripts.c's rate_lua).  The lifecycle
 * takes a token only when a wake has to start or thaw the compute. */
#include <stdio.h>

#include "store/keys.h"
#include "store/private.h"
#include "store/scripts.h"
#include "store/store.h"
#include "util/ids.h"

static int rate_call(const char *project, int rate_per_min, int burst, int n,
                     int *retry_ms)
{
    char key[128], now[24], rate[16], b[16], nb[8];
    const char *keys[] = {key};
    const char *args[] = {now, rate, b, nb};
    redisReply *r;
    int rc = -1;

    store_key(key, sizeof(key), K_RATE, project);
    snprintf(now, sizeof(now), "%lld", (long long)now_ms());
    snprintf(rate, sizeof(rate), "%d", rate_per_min);
    snprintf(b, sizeof(b), "%d", burst);
    snprintf(nb, sizeof(nb), "%d", n);
    r = store_eval(rate_lua, 1, keys, 4, args);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_INTEGER && r->element[1]->type == REDIS_REPLY_INTEGER) {
        rc = r->element[0]->integer ? 1 : 0;
        if (retry_ms)
            *retry_ms = (int)r->element[1]->integer;
    }
    if (r)
        freeReplyObject(r);
    return rc;
}

int store_rate_take(const char *project, int rate_per_min, int burst, int *retry_ms)
{
    *retry_ms = 0;
    return rate_call(project, rate_per_min, burst, 1, retry_ms);
}

void store_rate_give(const char *project, int rate_per_min, int burst)
{
    (void)rate_call(project, rate_per_min, burst, -1, NULL);
}
