/*
 * The controller's /wake_compute answer, parsed from its header block.
 *
 * Pure code like mysql_proto.c: the module never needs the JSON body,
 * everything it uses travels in X-Wake-* headers (docs/interfaces.md).
 */

#ifndef WAKE_HTTP_H
#define WAKE_HTTP_H

#include "mysql_proto.h"


typedef struct {
    int             status;
    mp_str_t        address;        /* X-Wake-Address: host:port */
    mp_str_t        compute;        /* X-Wake-Compute */
    mp_str_t        cold_start;     /* X-Wake-Cold-Start */
    mp_str_t        error;          /* X-Wake-Error */
    long            max_sessions;   /* X-Wake-Max-Sessions, -1: absent */
    long            retry_ms;       /* X-Wake-Retry-After-Ms, -1: absent */
    /*
     * X-Wake-Freeze-After: <ms>, decimal: after that long without a byte a
     * session's compute may be frozen; 0 or absent: never while a session
     * is open.  A value that is not a number of at most WH_FREEZE_MAX ms
     * sets freeze_after_bad (the caller then assumes the worst).
     */
    uint32_t        freeze_after_ms;
    unsigned        freeze_after_bad:1;
    size_t          header_len;     /* status line + headers + empty line */
} wh_response_t;


/* the largest number a numeric header may carry; more reads as absent */
#define WH_NUMBER_MAX  1000000000L
#define WH_FREEZE_MAX  2147483647u


/*
 * MP_OK once the empty line that ends the headers is in buf, MP_AGAIN before,
 * MP_ERROR when the status line is not "HTTP/1.x NNN".
 */
int wh_parse_response(const uint8_t *buf, size_t len, wh_response_t *r);

#endif /* WAKE_HTTP_H */
