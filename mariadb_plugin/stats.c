/* Server signals from SQL text rows (see stats.h). */
#include "stats.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

int wa_parse_u64(const char *s, size_t len, uint64_t *out)
{
    if (!s || len == 0 || len > 20)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static const struct {
    const char *name;
    unsigned bit;
    size_t off;
} names[] = {
    {"THREADS_RUNNING", WA_SEEN_THREADS_RUNNING, offsetof(struct wa_stats, threads_running)},
    {"INNODB_BUFFER_POOL_PAGES_TOTAL", WA_SEEN_BP_PAGES_TOTAL,
     offsetof(struct wa_stats, bp_pages_total)},
    {"INNODB_BUFFER_POOL_PAGES_DATA", WA_SEEN_BP_PAGES_DATA,
     offsetof(struct wa_stats, bp_pages_data)},
    {"INNODB_BUFFER_POOL_PAGES_FREE", WA_SEEN_BP_PAGES_FREE,
     offsetof(struct wa_stats, bp_pages_free)},
    {"INNODB_BUFFER_POOL_READ_REQUESTS", WA_SEEN_BP_READ_REQUESTS,
     offsetof(struct wa_stats, bp_read_requests)},
    {"INNODB_BUFFER_POOL_READS", WA_SEEN_BP_READS, offsetof(struct wa_stats, bp_reads)},
    {"OWN_ID", WA_SEEN_OWN_ID, offsetof(struct wa_stats, own_id)},
    {"BP_BYTES", WA_SEEN_BP_BYTES, offsetof(struct wa_stats, bp_bytes)},
    {"BP_MAX", WA_SEEN_BP_MAX, offsetof(struct wa_stats, bp_max)},
    {"MAX_CONNECTIONS", WA_SEEN_MAX_CONNECTIONS, offsetof(struct wa_stats, max_connections)},
    {"OPEN_TRX", WA_SEEN_OPEN_TRX, offsetof(struct wa_stats, open_trx)},
    {"EVENTS", WA_SEEN_EVENTS, offsetof(struct wa_stats, events)},
};

int wa_stats_set(struct wa_stats *st, const char *name, size_t name_len, const char *value,
                 size_t value_len)
{
    if (!name)
        return 1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strlen(names[i].name) != name_len || strncasecmp(names[i].name, name, name_len) != 0)
            continue;
        uint64_t v;
        if (wa_parse_u64(value, value_len, &v) != 0)
            return -1;
        *(uint64_t *)((char *)st + names[i].off) = v;
        st->seen |= names[i].bit;
        return 0;
    }
    return 1;
}

static int is(const char *s, size_t len, const char *lit)
{
    return s && strlen(lit) == len && strncmp(s, lit, len) == 0;
}

int wa_stats_busy_row(const struct wa_userlist *admins, uint64_t own_id, uint64_t id,
                      const char *user, size_t user_len, const char *command,
                      size_t command_len)
{
    if (id == own_id)
        return 0;
    if (user && user_len && wa_userlist_contains(admins, user, user_len))
        return 0;
    if (is(command, command_len, "Sleep") || is(command, command_len, "Daemon"))
        return 0;
    return 1;
}

void wa_stats_finish(struct wa_stats *st)
{
    st->sql_ok = (st->seen & WA_SEEN_REQUIRED) == WA_SEEN_REQUIRED;
    /* our own statement is running while it reads Threads_running; whether
     * the server counts it depends on the version (a local session is not
     * always in the thread list), and PROCESSLIST tells which */
    if (st->own_listed && st->threads_running > 0)
        st->threads_running--;
}
