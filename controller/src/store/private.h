/* Inside the store: the connection with its retry rules (conn.c), key
 * names (keys.h) and scripts (scripts.c).  Nothing outside store/ includes
 * this file, so nothing outside store/ sees hiredis. */
#ifndef SMDB_STORE_PRIVATE_H
#define SMDB_STORE_PRIVATE_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "store/keys.h"
#include "store/scripts.h"
#include "util/config.h"

/* How long a transition or create whose reply was lost is sent again (same
 * operation id) before its caller is told "unknown": long enough to ride out
 * a Redis restart or a stall of a few seconds. */
#define OUTCOME_WINDOW_MS 15000

extern const config *store_cfg;

/* Runs a command on this thread's connection, reconnecting and sending it
 * again once on an I/O error or timeout (not a counter, see store.h).  NULL
 * on failure (logged).  Free with freeReplyObject. */
redisReply *store_cmd(const char *fmt, ...);
redisReply *store_cmdargv(int argc, const char **argv);
/* The same, sent again for up to window_ms until Redis answers (scripts
 * with an operation id only). */
redisReply *store_cmdargv_window(int argc, const char **argv, int64_t window_ms);
/* EVAL with the script text each time (Redis caches it by its SHA): unlike
 * EVALSHA this survives a Redis restart or SCRIPT FLUSH without reloading. */
redisReply *store_eval(const char *script, int nkeys, const char *const *keys, int nargs,
                       const char *const *args);
/* Builds "<prefix><fmt...>" into buf. */
const char *store_key(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* An integer reply's value (-1 for anything else); frees r. */
long long store_int_reply(redisReply *r);

#endif
