/* Inside the core: what lifecycle.c shares with reconcile.c. */
#ifndef SMDB_CORE_PRIVATE_H
#define SMDB_CORE_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>

#include "backend/backend.h"
#include "core/compute.h"
#include "core/error.h"
#include "core/state.h"
#include "util/config.h"

extern const config *lc_cfg;
extern const backend *lc_be;

/* Applies a transition of the table (core/state.h) with the fields of u
 * (NULL: none); logs and wakes waiters when it was applied.  As
 * store_transition: 1 applied, 0 refused, -1 unknown. */
int lc_move(const compute_rec *c, transition_id id, const compute_update *u);
/* An actor of this process is moving the compute (or, creating, the
 * project of that id) through a transitional state. */
bool lc_is_held(const char *id);
/* What the backend says of the compute's instance; none recorded: gone. */
inst_state lc_inst_status(const compute_rec *c);
/* Polls ready() until the compute serves, at most start_timeout_ms.  0, or
 * -1 with err saying why. */
int lc_await_ready(const compute_rec *c, char *err, size_t errlen);
/* Destroys a `deleting` compute and removes its records. */
int lc_finish_delete(compute_rec *c, op_error *e);

#endif
