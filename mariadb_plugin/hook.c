/* The audit event hook (see hook.h for the rules it lives by). */
#include "hook.h"

#include <mysql/plugin_audit.h>
#include <string.h>

#include "clock.h"
#include "userhost.h"

void wa_hook_reset(struct wa_hook *h, int64_t now_ms)
{
    wa_counters_reset(&h->counters, now_ms);
    wa_sessions_clear(&h->sessions);
    atomic_store(&h->urgent, 0);
    atomic_store(&h->own_tid, 0);
}

static int is_own(const struct wa_hook *h, uint64_t id)
{
    uint64_t own = atomic_load_explicit(&h->own_tid, memory_order_relaxed);
    return own != 0 && own == id;
}

static void transition(struct wa_hook *h)
{
    /* only the first transition since the last report pays for the poke;
     * later ones are folded into that report */
    if (atomic_exchange(&h->urgent, 1) == 0 && h->poke)
        h->poke(h->poke_arg);
}

/* Sessions without a user name are server-internal (or a handshake that
 * never got as far as naming a user); admin sessions are the controller's. */
static int is_client(const struct wa_hook *h, const char *user, unsigned len)
{
    if (!user || len == 0)
        return 0;
    return !wa_userlist_contains(&h->admins, user, len);
}

static void session_start(struct wa_hook *h, uint64_t id)
{
    struct wa_counters *c = &h->counters;
    enum wa_insert_result r = wa_sessions_insert(&h->sessions, id);
    if (r == WA_ALREADY)
        return;
    if (r == WA_FULL)
        /* Counted but never uncounted: keeping a compute awake by mistake
         * is cheaper than suspending it under a live client. */
        atomic_fetch_add(&c->untracked, 1);
    atomic_fetch_add(&c->connects, 1);
    atomic_store_explicit(&c->last_connection_ms, wa_wall_coarse_ms(), memory_order_relaxed);
    if (atomic_fetch_add(&c->connections, 1) == 0)
        transition(h);
}

static void session_end(struct wa_hook *h, uint64_t id)
{
    struct wa_counters *c = &h->counters;
    if (!wa_sessions_remove(&h->sessions, id))
        return; /* never counted: failed login, admin, or a second disconnect */
    atomic_fetch_add(&c->disconnects, 1);
    atomic_store_explicit(&c->last_connection_ms, wa_wall_coarse_ms(), memory_order_relaxed);
    if (atomic_fetch_sub(&c->connections, 1) == 1)
        transition(h);
}

static void on_connection(struct wa_hook *h, const struct mysql_event_connection *ev)
{
    uint64_t id = ev->thread_id;
    if (is_own(h, id))
        return;

    switch (ev->event_subclass) {
    case MYSQL_AUDIT_CONNECTION_CONNECT:
        if (!is_client(h, ev->user, ev->user_length))
            return;
        if (ev->status != 0) {
            /* a failed login is not a session: its disconnect finds nothing
             * in the table and therefore changes nothing */
            atomic_fetch_add(&h->counters.failed_connects, 1);
            return;
        }
        session_start(h, id);
        return;
    case MYSQL_AUDIT_CONNECTION_DISCONNECT:
        session_end(h, id);
        return;
    case MYSQL_AUDIT_CONNECTION_CHANGE_USER:
        /* MariaDB 10.11 fills this event from the security context saved
         * *before* the change, so it cannot tell who the session belongs to
         * now.  The general STATUS event of the same COM_CHANGE_USER can:
         * see after_change_user(). */
        return;
    default:
        return;
    }
}

static int command_is(const struct mysql_event_general *ev, const char *name, unsigned len)
{
    return ev->general_command_length == len && ev->general_command &&
           memcmp(ev->general_command, name, len) == 0;
}

/* COM_CHANGE_USER finished (well or not): the session now runs as the user
 * named in general_user (on failure the server restored the old one).  It
 * joins or leaves the counted set like a connect or a disconnect would. */
static void after_change_user(struct wa_hook *h, const struct mysql_event_general *ev)
{
    const char *user;
    size_t len;
    if (wa_user_from_user_host(ev->general_user, ev->general_user_length, &user, &len) != 0)
        return;
    if (is_client(h, user, (unsigned)len))
        session_start(h, ev->general_thread_id);
    else
        session_end(h, ev->general_thread_id);
}

static void on_general(struct wa_hook *h, const struct mysql_event_general *ev)
{
    /* STATUS fires once per executed statement (each one of a multi-statement
     * query), after the result went out.  COM_QUIT is the session ending,
     * not activity. */
    if (ev->event_subclass != MYSQL_AUDIT_GENERAL_STATUS)
        return;
    if (is_own(h, ev->general_thread_id))
        return;
    if (command_is(ev, "Quit", 4))
        return;
    if (command_is(ev, "Change user", 11)) {
        after_change_user(h, ev);
        return;
    }
    if (!wa_sessions_contains(&h->sessions, ev->general_thread_id))
        return;
    wa_counters_add_query(&h->counters, ev->general_thread_id, wa_wall_coarse_ms());
}

void wa_hook_event(struct wa_hook *h, unsigned int event_class, const void *event)
{
    if (event_class == MYSQL_AUDIT_GENERAL_CLASS)
        on_general(h, event);
    else if (event_class == MYSQL_AUDIT_CONNECTION_CLASS)
        on_connection(h, event);
}
