/* Who may hold an API connection: a global limit below the open-file limit
 * and a per-address limit (loopback exempt by default).  MHD's own limits would queue
 * connections in the kernel's backlog once full (it stops accepting), so a
 * flood would keep legitimate clients waiting until the flood times out;
 * refusing at accept closes the excess at once and keeps the backlog moving. */
#include "api/internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "util/log.h"

/* fds the controller needs besides API connections: a Redis connection per
 * thread (plus one per API thread and worker), PostgreSQL, the syslog
 * socket, pipes to starting servers, logs */
#define FD_RESERVE_BASE 256

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int max_open;          /* limit in force */
static int per_ip;            /* 0: none */
static bool exempt_loopback;
static int open_now;
static long long refused;
static time_t refused_logged;
static ip_table ips;

/* ---- per-address table: linear probing, backward-shift deletion ---- */

static size_t slot_of(const ip_table *t, uint32_t addr)
{
    /* murmur3's finalizer: consecutive addresses land far apart */
    addr ^= addr >> 16;
    addr *= 0x85ebca6bu;
    addr ^= addr >> 13;
    addr *= 0xc2b2ae35u;
    addr ^= addr >> 16;
    return (size_t)addr & t->mask;
}

int ip_table_init(ip_table *t, size_t max_entries)
{
    size_t n = 16;

    while (n < max_entries * 2)
        n <<= 1;
    t->slot = calloc(n, sizeof(*t->slot));
    t->mask = n - 1;
    t->used = 0;
    return t->slot ? 0 : -1;
}

void ip_table_free(ip_table *t)
{
    free(t->slot);
    memset(t, 0, sizeof(*t));
}

static ip_slot *find(const ip_table *t, uint32_t addr)
{
    for (size_t i = slot_of(t, addr);; i = (i + 1) & t->mask) {
        if (t->slot[i].count == 0)
            return NULL;
        if (t->slot[i].addr == addr)
            return &t->slot[i];
    }
}

int ip_table_count(const ip_table *t, uint32_t addr)
{
    const ip_slot *s = find(t, addr);

    return s ? s->count : 0;
}

int ip_table_add(ip_table *t, uint32_t addr)
{
    size_t i;

    for (i = slot_of(t, addr); t->slot[i].count > 0; i = (i + 1) & t->mask) {
        if (t->slot[i].addr == addr) {
            t->slot[i].count++;
            return 0;
        }
    }
    /* keep half the table free so probes stay short and always end */
    if (t->used + 1 > (t->mask + 1) / 2)
        return -1;
    t->slot[i].addr = addr;
    t->slot[i].count = 1;
    t->used++;
    return 0;
}

void ip_table_del(ip_table *t, uint32_t addr)
{
    ip_slot *s = find(t, addr);
    size_t i, j;

    if (s == NULL || --s->count > 0)
        return;
    t->used--;
    /* close the gap: move later entries of the probe run back into it */
    i = (size_t)(s - t->slot);
    for (j = (i + 1) & t->mask; t->slot[j].count > 0; j = (j + 1) & t->mask) {
        size_t home = slot_of(t, t->slot[j].addr);
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);

        if (stays)
            continue;
        t->slot[i] = t->slot[j];
        t->slot[j].count = 0;
        i = j;
    }
}

/* ---- admission ---- */

/* Raises the soft open-file limit to what the connection limit needs, no
 * further: mariadbd children inherit it and size their file table by it. */
static rlim_t raise_nofile(rlim_t want)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        struct rlimit up = rl;
        up.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl.rlim_cur = up.rlim_cur;
        else
            log_warn("cannot raise the open-file limit from %llu to %llu",
                     (unsigned long long)rl.rlim_cur, (unsigned long long)up.rlim_cur);
    }
    return rl.rlim_cur == RLIM_INFINITY ? want : rl.rlim_cur;
}

/* MHD's own limit stays this far above ours.  It splits its limit evenly
 * between the epoll threads, and one that reaches its share stops accepting;
 * once all have, connections wait in the kernel backlog instead of being
 * refused.  The accept policy also runs before MHD counts a connection, so
 * threads accepting at once can take our count a few over. */
static int slack(int n)
{
    return n / 8 + 32;
}

int api_conn_init(const config *cfg, unsigned *mhd_limit)
{
    int want = cfg->api_max_connections;
    int reserve = FD_RESERVE_BASE + cfg->api_threads + cfg->api_workers;
    rlim_t nofile = raise_nofile((rlim_t)want + (rlim_t)slack(want) + (rlim_t)reserve);
    long long cap = (long long)nofile - reserve;

    if (want + slack(want) <= cap) {
        max_open = want;
        *mhd_limit = (unsigned)(want + slack(want));
    } else {
        /* the open-file limit decides: MHD may use every fd we can spare */
        if (cap < 48)
            cap = 48;
        max_open = (int)(cap - slack((int)cap));
        if (max_open < 16)
            max_open = 16;
        *mhd_limit = (unsigned)cap;
        log_warn("api_max_connections %d lowered to %d: the open-file limit is %llu "
                 "(raise the hard limit, e.g. LimitNOFILE=)",
                 want, max_open, (unsigned long long)nofile);
    }
    per_ip = cfg->api_per_ip_connections;
    exempt_loopback = cfg->api_per_ip_exempt_loopback != 0;
    open_now = 0;
    refused = 0;
    ip_table_free(&ips);
    return ip_table_init(&ips, (size_t)*mhd_limit) < 0 ? -1 : max_open;
}

void api_conn_free(void)
{
    pthread_mutex_lock(&mu);
    ip_table_free(&ips);
    pthread_mutex_unlock(&mu);
}

/* Host-order IPv4 address of a peer limited per address; false for exempt
 * loopback peers and for families we do not limit per address. */
static bool limited_ipv4(const struct sockaddr *addr, socklen_t len, uint32_t *out)
{
    const struct sockaddr_in *in = (const struct sockaddr_in *)addr;

    if (addr == NULL || addr->sa_family != AF_INET || len < (socklen_t)sizeof(*in))
        return false;
    *out = ntohl(in->sin_addr.s_addr);
    return !exempt_loopback || (*out >> 24) != 127;
}

static void note_refusal(const char *why)
{
    time_t now = time(NULL);

    refused++;
    /* a flood refuses thousands a second: one line per 10 s is enough */
    if (now - refused_logged >= 10) {
        refused_logged = now;
        log_warn("API: refusing connections (%s; %lld refused so far)", why, refused);
    }
}

enum MHD_Result api_conn_accept(void *cls, const struct sockaddr *addr, socklen_t len)
{
    uint32_t ip;
    enum MHD_Result ok = MHD_YES;

    (void)cls;
    pthread_mutex_lock(&mu);
    if (open_now >= max_open) {
        note_refusal("api_max_connections reached");
        ok = MHD_NO;
    } else if (per_ip > 0 && limited_ipv4(addr, len, &ip) && ip_table_count(&ips, ip) >= per_ip) {
        note_refusal("api_per_ip_connections reached by a peer");
        ok = MHD_NO;
    }
    pthread_mutex_unlock(&mu);
    return ok;
}

void api_conn_notify(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                     enum MHD_ConnectionNotificationCode code)
{
    const union MHD_ConnectionInfo *ci;
    uint32_t ip;

    (void)cls;
    pthread_mutex_lock(&mu);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        open_now++;
        ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        /* remember the counted address: the table must get back what it got */
        if (per_ip > 0 && ci && limited_ipv4(ci->client_addr, sizeof(struct sockaddr_in), &ip) &&
            ip_table_add(&ips, ip) == 0)
            *socket_ctx = (void *)((uintptr_t)ip | (uintptr_t)1 << 32);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        open_now--;
        if (*socket_ctx) {
            ip_table_del(&ips, (uint32_t)(uintptr_t)*socket_ctx);
            *socket_ctx = NULL;
        }
    }
    pthread_mutex_unlock(&mu);
}

int api_conn_open(void)
{
    int n;

    pthread_mutex_lock(&mu);
    n = open_now;
    pthread_mutex_unlock(&mu);
    return n;
}

long long api_conn_refused(void)
{
    long long n;

    pthread_mutex_lock(&mu);
    n = refused;
    pthread_mutex_unlock(&mu);
    return n;
}

_Static_assert(sizeof(uintptr_t) >= 8, "socket context holds a flagged IPv4 address");
