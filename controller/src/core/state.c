#include "core/state.h"

#include <string.h>

static const char *const names[ST__COUNT] = {
    "creating", "running", "suspending", "suspended", "resuming", "failed", "deleting",
};

/* legal[from][to] */
static const bool legal[ST__COUNT][ST__COUNT] = {
    /* creating: finishes, fails, or is deleted */
    [ST_CREATING] = {[ST_RUNNING] = true, [ST_FAILED] = true, [ST_DELETING] = true},
    /* running: drains, crashes (-> suspended/stopped), breaks, or is deleted */
    [ST_RUNNING] = {[ST_SUSPENDING] = true, [ST_SUSPENDED] = true, [ST_FAILED] = true,
                    [ST_DELETING] = true},
    /* suspending: completes, is cancelled by activity, or breaks */
    [ST_SUSPENDING] = {[ST_SUSPENDED] = true, [ST_RUNNING] = true, [ST_FAILED] = true},
    /* suspended: wakes, or deepens frozen -> stopped through suspending */
    [ST_SUSPENDED] = {[ST_RESUMING] = true, [ST_SUSPENDING] = true, [ST_DELETING] = true,
                      [ST_SUSPENDED] = true},
    /* resuming: ready, or start failed (back to sleep, or broken) */
    [ST_RESUMING] = {[ST_RUNNING] = true, [ST_SUSPENDED] = true, [ST_FAILED] = true},
    /* failed: a wake retries a start; or deleted */
    [ST_FAILED] = {[ST_RESUMING] = true, [ST_DELETING] = true},
    [ST_DELETING] = {false},
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

bool state_transition_legal(compute_state from, compute_state to)
{
    if (from < 0 || from >= ST__COUNT || to < 0 || to >= ST__COUNT)
        return false;
    return legal[from][to];
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
