/* Leases in Redis: one controller at a time runs the scheduler, reconcile
 * and the billing exporters; the others serve the API and wakes.  A lease
 * lives lease_ttl_ms unless its holder renews it, so a killed holder's work
 * moves to another controller within that time. */
#include <stdio.h>

#include "store/keys.h"
#include "store/private.h"
#include "store/scripts.h"
#include "store/store.h"

int store_lease(const char *name, const char *holder, int ttl_ms)
{
    char key[128], ttl[16];
    const char *keys[] = {key};
    const char *args[] = {holder, ttl};

    store_key(key, sizeof(key), K_LEASE, name);
    snprintf(ttl, sizeof(ttl), "%d", ttl_ms);
    return (int)store_int_reply(store_eval(lease_lua, 1, keys, 2, args));
}

int store_lease_release(const char *name, const char *holder)
{
    char key[128];
    const char *keys[] = {key};
    const char *args[] = {holder};

    store_key(key, sizeof(key), K_LEASE, name);
    return (int)store_int_reply(store_eval(lease_release_lua, 1, keys, 1, args));
}
