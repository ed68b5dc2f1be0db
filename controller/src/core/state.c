#include "core/state.h"

#include <string.h>

static const char *const names[ST__COUNT] = {
    "creating", "running", "suspending", "suspended", "resuming", "failed", "deleting",
};

#define S(x) (1u << ST_##x)

static const transition table[TR__COUNT] = {
    [TR_CREATED] = {"created", S(CREATING), ST_RUNNING, METER_KEEP},
    [TR_CREATE_FAILED] = {"create failed", S(CREATING), ST_FAILED, METER_CLOSE},
    /* compute time counts from the moment the server is started: for a new
     * compute not before, a wake opened the interval already */
    [TR_LAUNCHED] = {"launched", S(CREATING) | S(RESUMING), ST_UNKNOWN, METER_OPEN},
    [TR_WAKE] = {"wake", S(SUSPENDED) | S(FAILED), ST_RESUMING, METER_OPEN},
    [TR_RESUMED] = {"resumed", S(RESUMING), ST_RUNNING, METER_KEEP},
    [TR_START_FAILED] = {"start failed", S(RESUMING), ST_SUSPENDED, METER_CLOSE},
    [TR_DRAIN] = {"drain", S(RUNNING), ST_SUSPENDING, METER_KEEP},
    [TR_DEEPEN] = {"deepen", S(SUSPENDED), ST_SUSPENDING, METER_KEEP},
    [TR_UNDRAIN] = {"undrain", S(SUSPENDING), ST_RUNNING, METER_KEEP},
    [TR_UNDEEPEN] = {"undeepen", S(SUSPENDING), ST_SUSPENDED, METER_KEEP},
    [TR_SUSPENDED] = {"suspended", S(SUSPENDING), ST_SUSPENDED, METER_CLOSE},
    [TR_CRASHED] = {"crashed", S(RUNNING), ST_SUSPENDED, METER_CLOSE},
    [TR_FROZEN_DIED] = {"frozen died", S(SUSPENDED), ST_SUSPENDED, METER_KEEP},
    [TR_ADOPTED] = {"adopted", S(RESUMING) | S(SUSPENDING), ST_RUNNING, METER_OPEN},
    [TR_FOUND_STOPPED] = {"found stopped", S(RUNNING) | S(RESUMING) | S(SUSPENDING),
                          ST_SUSPENDED, METER_CLOSE},
    /* a compute in a transition is never deleted under its actor */
    [TR_DELETE] = {"delete", S(RUNNING) | S(SUSPENDED) | S(FAILED), ST_DELETING, METER_CLOSE},
    [TR_METER_SPLIT] = {"meter split", S(CREATING) | S(RUNNING) | S(SUSPENDING) | S(RESUMING),
                        ST_UNKNOWN, METER_SPLIT},
    /* the interval is closed at the old size_cu before the new one is set */
    [TR_RESIZE] = {"resize",
                   S(CREATING) | S(RUNNING) | S(SUSPENDING) | S(SUSPENDED) | S(RESUMING) |
                       S(FAILED),
                   ST_UNKNOWN, METER_SPLIT},
};

const char *state_name(compute_state s)
{
    return (s >= 0 && s < ST__COUNT) ? names[s] : "unknown";
}

compute_state state_parse(const char *s)
{
    if (s == NULL)
        return ST_UNKNOWN;
    for (int i = 0; i < ST__COUNT; i++)
        if (strcmp(s, names[i]) == 0)
            return (compute_state)i;
    return ST_UNKNOWN;
}

const transition *transition_get(transition_id id)
{
    return (id >= 0 && id < TR__COUNT) ? &table[id] : NULL;
}

bool transition_leaves(const transition *t, compute_state s)
{
    return s >= 0 && s < ST__COUNT && (t->from & (1u << s)) != 0;
}

bool state_transition_legal(compute_state from, compute_state to)
{
    if (to < 0 || to >= ST__COUNT)
        return false;
    for (int i = 0; i < TR__COUNT; i++)
        if (table[i].to == to && transition_leaves(&table[i], from))
            return true;
    return false;
}

const char *mode_name(suspend_mode m)
{
    switch (m) {
    case MODE_FROZEN: return "frozen";
    case MODE_STOPPED: return "stopped";
    default: return "";
    }
}

suspend_mode mode_parse(const char *s)
{
    if (s && strcmp(s, "frozen") == 0)
        return MODE_FROZEN;
    if (s && strcmp(s, "stopped") == 0)
        return MODE_STOPPED;
    return MODE_NONE;
}
