/* Build the activity report JSON (see report.h). */
#include "report.h"

#include <inttypes.h>
#include <stdio.h>

int wa_json_escape(char *out, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc = 0;
        switch (*p) {
        case '"': esc = '"'; break;
        case '\\': esc = '\\'; break;
        case '\n': esc = 'n'; break;
        case '\r': esc = 'r'; break;
        case '\t': esc = 't'; break;
        default: break;
        }
        if (esc) {
            if (o + 2 >= cap)
                return -1;
            out[o++] = '\\';
            out[o++] = esc;
        } else if (*p < 0x20) {
            if (o + 6 >= cap)
                return -1;
            out[o++] = '\\';
            out[o++] = 'u';
            out[o++] = '0';
            out[o++] = '0';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        } else {
            /* bytes >= 0x80 pass through: UTF-8 is valid JSON as is */
            if (o + 1 >= cap)
                return -1;
            out[o++] = (char)*p;
        }
    }
    if (o >= cap)
        return -1;
    out[o] = '\0';
    return (int)o;
}

int wa_report_json(char *buf, size_t cap, const struct wa_report *r)
{
    char id[6 * 80 + 1];
    if (wa_json_escape(id, sizeof id, r->compute_id ? r->compute_id : "") < 0)
        return -1;
    int n = snprintf(buf, cap,
                     "{\"compute_id\":\"%s\",\"seq\":%" PRIu64
                     ",\"connections\":%" PRId64 ",\"connects\":%" PRIu64
                     ",\"failed_connects\":%" PRIu64 ",\"disconnects\":%" PRIu64
                     ",\"queries\":%" PRIu64 ",\"last_activity_ms\":%" PRId64
                     ",\"sent_at_ms\":%" PRId64 ",\"uptime_s\":%" PRIu64 "}",
                     id, r->seq, r->connections, r->connects, r->failed_connects,
                     r->disconnects, r->queries, r->last_activity_ms, r->sent_at_ms,
                     r->uptime_s);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    size_t len = (size_t)n - 1; /* overwrite the closing brace */
    const struct wa_stats *st = r->stats;
    if (st && st->sql_ok) {
        n = snprintf(buf + len, cap - len,
                     ",\"threads_running\":%" PRIu64 ",\"busy_sessions\":%" PRIu64
                     ",\"open_trx\":%" PRIu64 ",\"events\":%" PRIu64 ",\"bp_bytes\":%" PRIu64
                     ",\"bp_pages_total\":%" PRIu64 ",\"bp_pages_data\":%" PRIu64
                     ",\"bp_pages_free\":%" PRIu64 ",\"bp_read_requests\":%" PRIu64
                     ",\"bp_reads\":%" PRIu64 ",\"max_connections\":%" PRIu64,
                     st->threads_running, st->busy_sessions, st->open_trx, st->events,
                     st->bp_bytes, st->bp_pages_total, st->bp_pages_data, st->bp_pages_free,
                     st->bp_read_requests, st->bp_reads, st->max_connections);
        if (n < 0 || (size_t)n >= cap - len)
            return -1;
        len += (size_t)n;
    }
    if (st && st->cpu_ok) {
        n = snprintf(buf + len, cap - len, ",\"cpu_ms\":%" PRIu64, st->cpu_ms);
        if (n < 0 || (size_t)n >= cap - len)
            return -1;
        len += (size_t)n;
    }
    if (len + 2 > cap)
        return -1;
    buf[len++] = '}';
    buf[len] = '\0';
    return (int)len;
}
