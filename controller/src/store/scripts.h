/* The Lua scripts (scripts.c, where each says its KEYS and ARGV). */
#ifndef SMDB_STORE_SCRIPTS_H
#define SMDB_STORE_SCRIPTS_H

extern const char transition_lua[];      /* a compute's state transition, with metering */
extern const char create_lua[];          /* a project and its compute, port and token */
extern const char remove_compute_lua[];  /* a deleted compute's records */
extern const char remove_project_lua[];  /* a deleted project's records */
extern const char activity_lua[];        /* a plugin report, if newer than the stored one */
extern const char hset_existing_lua[];   /* HSET only while the hash exists */
extern const char storage_lua[];         /* a storage sample into the storage interval */
extern const char transfer_lua[];        /* a proxied session's transfer event */
extern const char retire_lua[];          /* exported events into hourly buckets */
extern const char lease_lua[];           /* take or renew a lease */
extern const char lease_release_lua[];   /* give a lease up */
extern const char rate_lua[];            /* take (or give back) a wake token */

#endif
