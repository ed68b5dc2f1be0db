/* Which client sessions are currently counted, keyed by connection id.
 *
 * Why not a per-session THDVAR flag: the server re-initialises plugin
 * session variables on COM_CHANGE_USER *before* the audit event fires, so a
 * flag would forget that the session had been counted.  A table of our own
 * also makes the disconnect handling idempotent (the server may report a
 * disconnect twice for one session during shutdown) and ignores sessions
 * that were never counted (failed logins, admin sessions, sessions opened
 * before the plugin was loaded).
 *
 * Lock-free open addressing with a fixed probe window: a key may only sit in
 * the WA_SESSIONS_WINDOW slots after its hash, so lookups never depend on
 * tombstones and a removed slot simply becomes empty again.  Each id is
 * inserted only by its own connection thread, so two inserts of one key
 * never race.  All memory is part of the struct (no allocation). */
#ifndef WA_SESSIONS_H
#define WA_SESSIONS_H

#include <stdatomic.h>
#include <stdint.h>

#define WA_SESSIONS_BITS 14 /* 16384 slots, 128 KiB */
#define WA_SESSIONS_SLOTS (1u << WA_SESSIONS_BITS)
#define WA_SESSIONS_WINDOW 32 /* slots probed per key: 4 cache lines */

struct wa_sessions {
    _Atomic uint64_t slot[WA_SESSIONS_SLOTS]; /* 0 = empty, else id + 1 */
};

enum wa_insert_result { WA_INSERTED, WA_ALREADY, WA_FULL };

void wa_sessions_clear(struct wa_sessions *t);
enum wa_insert_result wa_sessions_insert(struct wa_sessions *t, uint64_t id);
/* 1 if this call removed the id, 0 if it was not there */
int wa_sessions_remove(struct wa_sessions *t, uint64_t id);
int wa_sessions_contains(const struct wa_sessions *t, uint64_t id);
unsigned wa_sessions_count(const struct wa_sessions *t); /* for tests */

#endif
