/* Target decisions (see target.h). */
#include "target.h"

uint64_t wa_target_pick(int has, uint64_t want, uint64_t limit, uint64_t current,
                        uint64_t *tried)
{
    if (!has || want == 0)
        return 0;
    if (limit && want > limit)
        want = limit;
    if (want == current) {
        *tried = want; /* reached: a later different target starts afresh */
        return 0;
    }
    if (want == *tried)
        return 0;
    *tried = want;
    return want;
}
