/* The audit event hook: turns server events into counter updates.
 *
 * Runs on the client's own thread for every statement, so it must not block,
 * allocate or take a lock: it only touches atomics, the lock-free session
 * table and, on a 0<->1 change of the connection count, pokes the reporter
 * through a callback that must itself be non-blocking. */
#ifndef WA_HOOK_H
#define WA_HOOK_H

#include <stdatomic.h>
#include <stdint.h>

#include "counters.h"
#include "sessions.h"
#include "userlist.h"

struct wa_hook {
    struct wa_counters counters;
    struct wa_sessions sessions;
    struct wa_userlist admins;
    /* set by the hook on a 0<->1 transition, cleared by the reporter when it
     * takes the snapshot for the next report */
    _Atomic int urgent;
    /* connection id of the reporter's own SQL session (server.h), 0 = none:
     * its statements are never activity */
    _Atomic uint64_t own_tid;
    void (*poke)(void *arg); /* called when urgent goes 0 -> 1 */
    void *poke_arg;
};

/* Clear counters and sessions; not thread-safe (plugin init only). */
void wa_hook_reset(struct wa_hook *h, int64_t now_ms);

/* event_class/event as passed to st_mysql_audit.event_notify */
void wa_hook_event(struct wa_hook *h, unsigned int event_class, const void *event);

#endif
