/* The controller's answer to a report may carry a target size for this
 * compute (docs/interfaces.md, "Activity"):
 *
 *     200 {"target":{"buffer_pool_bytes":N,"max_connections":M}}
 *
 * either key optional.  The reporter applies it through its local session
 * (server.c); this file holds the pure decision of what to set. */
#ifndef WA_TARGET_H
#define WA_TARGET_H

#include <stdint.h>

struct wa_target {
    int has_bp;
    uint64_t bp_bytes;
    int has_mc;
    uint64_t max_connections;
};

/* What the reporter last tried to set, per variable (0 = nothing yet). */
struct wa_tried {
    uint64_t bp_bytes;
    uint64_t max_connections;
};

/* The value to SET now, or 0 for "leave it".
 *
 *  - want is clamped to limit (innodb_buffer_pool_size_max; 0 = none): the
 *    server refuses larger values, and the clamped value is the best it can
 *    do;
 *  - nothing to do when the server already has it;
 *  - a target already tried once is not tried again while it stays the
 *    same: the server may round it (the buffer pool to its granularity) or
 *    refuse it (a shrink it cannot do now), and setting it again at every
 *    report would only repeat that.  A new target is tried at once.
 *
 * *tried is updated when a value is returned. */
uint64_t wa_target_pick(int has, uint64_t want, uint64_t limit, uint64_t current,
                        uint64_t *tried);

#endif
