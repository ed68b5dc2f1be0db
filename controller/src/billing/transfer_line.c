#include "billing/transfer_line.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "util/ids.h"

#define LINE_MAX_LEN 1024
#define NFIELDS 9

/* A non-negative decimal integer of at most 18 digits (so it cannot
 * overflow long long) and at most max.  No sign, no spaces, no leading '+'. */
static bool parse_uint(const char *s, long long max, long long *out)
{
    long long v = 0;
    int n = 0;

    for (; *s; s++, n++) {
        if (*s < '0' || *s > '9' || n >= 18)
            return false;
        v = v * 10 + (*s - '0');
    }
    if (n == 0 || v > max)
        return false;
    *out = v;
    return true;
}

/* nginx's "<seconds>.<3 digits>" ($msec, $session_time) as milliseconds. */
static bool parse_millis(const char *s, int64_t *out)
{
    const char *dot = strchr(s, '.');
    char secs[20];
    long long whole, frac;

    if (dot == NULL || dot == s || (size_t)(dot - s) >= sizeof(secs) || strlen(dot + 1) != 3)
        return false;
    memcpy(secs, s, (size_t)(dot - s));
    secs[dot - s] = '\0';
    /* seconds up to the year 5138, well inside int64 once multiplied */
    if (!parse_uint(secs, 100000000000LL, &whole) || !parse_uint(dot + 1, 999, &frac))
        return false;
    *out = whole * 1000 + frac;
    return true;
}

/* Skips the syslog header "<PRI>timestamp [hostname ]tag: " if there is one.
 * Neither the timestamp, a hostname nor a tag contains ": ", so the first
 * one ends the header. */
static const char *skip_header(const char *line)
{
    const char *p = line, *colon;

    if (*p != '<')
        return line;
    for (p++; *p >= '0' && *p <= '9'; p++)
        ;
    if (*p != '>' || p - line < 2 || p - line > 4)
        return NULL;
    colon = strstr(p, ": ");
    return colon ? colon + 2 : NULL;
}

/* Splits on single spaces; an empty field (two spaces) is an error, since
 * nginx logs an empty value as "-". */
static int split(char *s, char **f, int max)
{
    int n = 0;

    for (;;) {
        char *sp = strchr(s, ' ');
        if (n == max)
            return -1;
        f[n++] = s;
        if (sp == NULL)
            break;
        *sp = '\0';
        s = sp + 1;
    }
    for (int i = 0; i < n; i++)
        if (f[i][0] == '\0')
            return -1;
    return n;
}

transfer_result transfer_parse(const char *buf, size_t len, transfer_rec *out)
{
    char line[LINE_MAX_LEN + 1], *f[NFIELDS];
    const char *msg;
    int64_t session_ms;

    memset(out, 0, sizeof(*out));
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == '\0'))
        len--;
    if (len == 0 || len > LINE_MAX_LEN || memchr(buf, '\0', len) != NULL)
        return TRANSFER_MALFORMED;
    memcpy(line, buf, len);
    line[len] = '\0';
    if ((msg = skip_header(line)) == NULL)
        return TRANSFER_MALFORMED;
    if (split((char *)msg, f, NFIELDS) != NFIELDS || strcmp(f[0], "smdb1") != 0)
        return TRANSFER_MALFORMED;
    if (!parse_uint(f[3], TRANSFER_MAX_PID, &out->pid) || out->pid == 0 ||
        !parse_uint(f[4], TRANSFER_MAX_CONN, &out->conn) ||
        !parse_millis(f[5], &out->end_ms) || !parse_millis(f[6], &session_ms) ||
        !parse_uint(f[7], TRANSFER_MAX_BYTES, &out->bytes_in) ||
        !parse_uint(f[8], TRANSFER_MAX_BYTES, &out->bytes_out) ||
        session_ms > TRANSFER_MAX_SESSION_MS || session_ms > out->end_ms)
        return TRANSFER_MALFORMED;
    out->start_ms = out->end_ms - session_ms;
    if (strcmp(f[2], "-") != 0) {
        if (!compute_id_valid(f[2]))
            return TRANSFER_MALFORMED;
        snprintf(out->compute_id, sizeof(out->compute_id), "%s", f[2]);
    }
    if (strcmp(f[1], "-") == 0)
        return TRANSFER_UNROUTED;
    if (!project_id_valid(f[1]))
        return TRANSFER_MALFORMED;
    snprintf(out->project, sizeof(out->project), "%s", f[1]);
    return TRANSFER_OK;
}

void transfer_key(const transfer_rec *t, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s:%lld.%lld.%lld:transfer", t->project, (long long)t->end_ms,
             t->pid, t->conn);
}

transfer_result transfer_check_time(const transfer_rec *t, int64_t now)
{
    if (t->end_ms < now - TRANSFER_MAX_AGE_MS || t->end_ms > now + TRANSFER_MAX_SKEW_MS)
        return TRANSFER_STALE;
    return TRANSFER_OK;
}

void transfer_session_id(const transfer_rec *t, char *out, size_t outlen)
{
    snprintf(out, outlen, "%lld.%lld.%lld", t->pid, t->conn, (long long)t->start_ms);
}
