/* The compute state machine of DESIGN.md §3, as pure data.
 *
 *   creating -> running -> suspending -> suspended -> resuming -> running
 *   plus failed and deleting.
 *
 * Every change of a compute record goes through one of the named
 * transitions below: the states it may leave, the state it enters, and what
 * it does to the metering interval.  The lifecycle asks for a transition by
 * its id; the store applies it atomically in Redis (compare-and-set on the
 * current state); the unit test derives the legal state matrix from the same
 * table.  There is no other list of legal moves. */
#ifndef SMDB_CORE_STATE_H
#define SMDB_CORE_STATE_H

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

/* How a suspended compute sleeps. */
typedef enum { MODE_NONE, MODE_FROZEN, MODE_STOPPED } suspend_mode;

const char *mode_name(suspend_mode m);
suspend_mode mode_parse(const char *s);

/* The metering interval (docs/billing.md): opened when a server starts,
 * closed into a usage event when it stops, split to bill a part. */
typedef enum { METER_KEEP, METER_OPEN, METER_CLOSE, METER_SPLIT } meter_op;

typedef enum {
    TR_CREATED,           /* creating -> running: the new compute serves */
    TR_CREATE_FAILED,     /* creating -> failed */
    TR_LAUNCHED,          /* creating|resuming, state kept: the server exists, metering starts */
    TR_WAKE,              /* suspended|failed -> resuming */
    TR_RESUMED,           /* resuming -> running */
    TR_START_FAILED,      /* resuming -> suspended (stopped): a later wake tries again */
    TR_DRAIN,             /* running -> suspending */
    TR_DEEPEN,            /* suspended -> suspending: frozen on its way to stopped */
    TR_UNDRAIN,           /* suspending -> running: cancelled by a wake, or the suspend failed */
    TR_UNDEEPEN,          /* suspending -> suspended: stopping a frozen compute failed */
    TR_SUSPENDED,         /* suspending -> suspended */
    TR_CRASHED,           /* running -> suspended (stopped): the server died */
    TR_FROZEN_DIED,       /* suspended -> suspended: a frozen server died, now stopped */
    TR_ADOPTED,           /* resuming|suspending -> running: found serving at start-up */
    TR_FOUND_STOPPED,     /* running|resuming|suspending -> suspended: found not serving */
    TR_DELETE,            /* running|suspended|failed -> deleting */
    TR_METER_SPLIT,       /* state kept: the open interval billed up to now */
    TR_RESIZE,            /* state kept: interval billed at the old size, new size set */
    TR__COUNT
} transition_id;

typedef struct {
    const char *name;     /* for logs */
    unsigned from;        /* (1u << state) for every state it may leave */
    compute_state to;     /* ST_UNKNOWN: the state stays (fields and metering only) */
    meter_op meter;
} transition;

const transition *transition_get(transition_id id);
bool transition_leaves(const transition *t, compute_state s);
/* Derived from the table: some transition moves `from` to `to`.  Transitions
 * that keep the state are not moves. */
bool state_transition_legal(compute_state from, compute_state to);

#endif
