/* The compute state machine of DESIGN.md §3, as pure data.
 *
 *   creating -> running -> suspending -> suspended -> resuming -> running
 *   plus failed and deleting.
 *
 * The store applies a transition atomically in Redis (compare-and-set on the
 * current state); this table says which transitions exist at all, so that no
 * caller can ask for an illegal one. */
#ifndef SMDB_STATE_H
#define SMDB_STATE_H

#include <stdbool.h>

typedef enum {
    ST_CREATING,
    ST_RUNNING,
    ST_SUSPENDING,
    ST_SUSPENDED,
    ST_RESUMING,
    ST_FAILED,
    ST_DELETING,
    ST__COUNT,
    ST_UNKNOWN = -1
} compute_state;

const char *state_name(compute_state s);
compute_state state_parse(const char *s);
bool state_transition_legal(compute_state from, compute_state to);

/* How a suspended compute sleeps. */
typedef enum { MODE_NONE, MODE_FROZEN, MODE_STOPPED } suspend_mode;

const char *mode_name(suspend_mode m);
suspend_mode mode_parse(const char *s);

#endif
