/* The activity report body, exactly as docs/interfaces.md
 * ("Activity: compute plugin -> controller") fixes it. */
#ifndef WA_REPORT_H
#define WA_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "stats.h"

struct wa_report {
    const char *compute_id;
    uint64_t seq;
    int64_t connections;
    uint64_t connects;
    uint64_t failed_connects;
    uint64_t disconnects;
    uint64_t queries;
    int64_t last_activity_ms;
    int64_t sent_at_ms;
    uint64_t uptime_s;
    /* optional: the server's own signals (stats.h); NULL, or fields not
     * read, leave the keys out */
    const struct wa_stats *stats;
};

/* Enough for the longest compute id (80 chars, 6x when every byte needs a
 * \u escape) plus 22 20-digit numbers and their keys. */
#define WA_REPORT_MAX 2048

/* Writes the JSON object (no trailing newline) and a terminating NUL.
 * Returns its length, or -1 if it does not fit in cap. */
int wa_report_json(char *buf, size_t cap, const struct wa_report *r);

/* JSON string body of s (without quotes).  Returns the length written, or
 * -1 if it does not fit (cap includes the NUL). */
int wa_json_escape(char *out, size_t cap, const char *s);

#endif
