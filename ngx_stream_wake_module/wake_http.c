/*
 * Parser for the controller's /wake_compute answer (pure code).
 *
 * Only the status line and seven headers matter; other headers and the body
 * are skipped.  Lines may end in CRLF or a bare LF.
 */

#include <string.h>

#include "wake_http.h"


static int
wh_name_is(const uint8_t *name, size_t len, const char *want)
{
    size_t  i;

    if (len != strlen(want)) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        uint8_t  ch = name[i];

        if (ch >= 'A' && ch <= 'Z') {
            ch |= 0x20;
        }

        if (ch != (uint8_t) want[i]) {
            return 0;
        }
    }

    return 1;
}


/* decimal digits only, at most WH_NUMBER_MAX; -1 for anything else */
static long
wh_number(mp_str_t *v)
{
    long    n;
    size_t  i;

    if (v->len == 0 || v->len > 10) {
        return -1;
    }

    n = 0;

    for (i = 0; i < v->len; i++) {
        if (v->data[i] < '0' || v->data[i] > '9') {
            return -1;
        }

        if (n > WH_NUMBER_MAX / 10) {
            return -1;
        }

        n = n * 10 + (v->data[i] - '0');
    }

    return (n > WH_NUMBER_MAX) ? -1 : n;
}


static int
wh_status_line(const uint8_t *p, size_t len, int *status)
{
    size_t  i;

    /* "HTTP/1.x NNN" at least */

    if (len < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ') {
        return MP_ERROR;
    }

    *status = 0;

    for (i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return MP_ERROR;
        }

        *status = *status * 10 + (p[i] - '0');
    }

    if (len > 12 && p[12] != ' ') {
        return MP_ERROR;
    }

    return MP_OK;
}


/* a decimal number of milliseconds, at most WH_FREEZE_MAX */
static void
wh_freeze_after(mp_str_t *v, wh_response_t *r)
{
    size_t    i;
    uint64_t  n;

    n = 0;

    for (i = 0; i < v->len; i++) {
        if (v->data[i] < '0' || v->data[i] > '9') {
            break;
        }

        n = n * 10 + (v->data[i] - '0');

        if (n > WH_FREEZE_MAX) {
            break;
        }
    }

    if (v->len == 0 || i < v->len) {
        r->freeze_after_ms = 0;
        r->freeze_after_bad = 1;
        return;
    }

    r->freeze_after_ms = (uint32_t) n;
    r->freeze_after_bad = 0;
}


static void
wh_header(const uint8_t *p, size_t len, wh_response_t *r)
{
    const uint8_t  *colon, *v, *end;
    mp_str_t        value;

    colon = memchr(p, ':', len);

    if (colon == NULL) {
        return;
    }

    v = colon + 1;
    end = p + len;

    while (v < end && (*v == ' ' || *v == '\t')) {
        v++;
    }

    while (end > v && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }

    value.data = v;
    value.len = (size_t) (end - v);

    len = (size_t) (colon - p);

    if (wh_name_is(p, len, "x-wake-address")) {
        r->address = value;

    } else if (wh_name_is(p, len, "x-wake-compute")) {
        r->compute = value;

    } else if (wh_name_is(p, len, "x-wake-cold-start")) {
        r->cold_start = value;

    } else if (wh_name_is(p, len, "x-wake-error")) {
        r->error = value;

    } else if (wh_name_is(p, len, "x-wake-max-sessions")) {
        r->max_sessions = wh_number(&value);

    } else if (wh_name_is(p, len, "x-wake-retry-after-ms")) {
        r->retry_ms = wh_number(&value);
    } else if (wh_name_is(p, len, "x-wake-freeze-after")) {
        wh_freeze_after(&value, r);
    }
}


int
wh_parse_response(const uint8_t *buf, size_t len, wh_response_t *r)
{
    size_t          n;
    const uint8_t  *p, *end, *nl;

    memset(r, 0, sizeof(wh_response_t));
    r->max_sessions = -1;
    r->retry_ms = -1;

    p = buf;
    end = buf + len;

    nl = memchr(p, '\n', len);

    if (nl == NULL) {
        /* a status line never needs more than this */
        return (len > 1024) ? MP_ERROR : MP_AGAIN;
    }

    n = (size_t) (nl - p);

    if (n && p[n - 1] == '\r') {
        n--;
    }

    if (wh_status_line(p, n, &r->status) != MP_OK) {
        return MP_ERROR;
    }

    p = nl + 1;

    for ( ;; ) {
        nl = memchr(p, '\n', (size_t) (end - p));

        if (nl == NULL) {
            return MP_AGAIN;
        }

        n = (size_t) (nl - p);

        if (n && p[n - 1] == '\r') {
            n--;
        }

        if (n == 0) {
            r->header_len = (size_t) (nl + 1 - buf);
            return MP_OK;
        }

        wh_header(p, n, r);

        p = nl + 1;
    }
}
