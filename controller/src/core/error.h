/* What went wrong, in the lifecycle's own terms.  The core knows no
 * transport: api/ maps each kind to an HTTP status (api/request.c), and the
 * code string is the stable, machine-readable name of the error the API
 * puts in its JSON ("code"). */
#ifndef SMDB_CORE_ERROR_H
#define SMDB_CORE_ERROR_H

typedef enum {
    ERR_NONE,
    ERR_INVALID,        /* the request itself is wrong (an id, a field, a range) */
    ERR_NOT_FOUND,      /* no such project or compute */
    ERR_CONFLICT,       /* the object's state does not allow it (exists, not running) */
    ERR_BUSY,           /* another actor is moving the compute: try again */
    ERR_UNAVAILABLE,    /* a dependency (store, backend) cannot act now: try again */
    ERR_RATE_LIMITED,   /* too many of these lately: try again in retry_ms */
    ERR_INTERNAL,       /* it failed on our side */
} err_kind;

typedef struct {
    err_kind kind;
    const char *code;
    char message[512];
    int retry_ms;       /* ERR_RATE_LIMITED: when to try again */
} op_error;

#endif
