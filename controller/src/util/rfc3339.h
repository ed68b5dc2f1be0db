/* RFC 3339 times <-> Unix milliseconds (UTC), for the usage API.  Pure:
 * no time zone database, no locale, so it behaves the same in every
 * process and is unit-tested on its own. */
#ifndef SMDB_BILLING_TIME_H
#define SMDB_BILLING_TIME_H

#include <stddef.h>
#include <stdint.h>

/* Accepts a full date-time ("2024-11-22T16:25:01Z", fractional seconds and
 * "+hh:mm"/"-hh:mm" offsets allowed, 't'/'z' or a space as in RFC 3339 §5.6)
 * or a full date ("2024-11-22", midnight UTC).  Years 1970..9999.
 * Fractions finer than a millisecond are truncated.
 * Returns 0 and sets *ms, or -1 when s is not such a time. */
int rfc3339_parse(const char *s, int64_t *ms);

/* "2024-11-22T16:25:01.123Z"; out needs 25 bytes. ms must be >= 0. */
void rfc3339_format(int64_t ms, char *out, size_t outlen);

#endif
