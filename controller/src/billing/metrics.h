/* Billing's part of /metrics (billing.c), appended to the exposition. */
#ifndef SMDB_METRICS_H
#define SMDB_METRICS_H

#include <stdarg.h>
#include <stddef.h>

void metrics_billing(char **buf, size_t *len, size_t *cap);

#endif
