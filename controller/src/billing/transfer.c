/* The transfer listener: nginx's stream access log, one datagram per
 * finished proxied session (transfer_line.h has the nginx lines); each
 * becomes a transfer event of its project.
 *
 * Who may bill: a record names a project and a byte count, so whoever can
 * send one can charge any tenant.  The listener is therefore a unix
 * datagram socket (syslog_listen = unix:/path; nginx:
 * access_log syslog:server=unix:/path) with SO_PASSCRED: the kernel
 * attaches the sender's credentials to every datagram, a process cannot
 * claim a uid it does not have (only root can), and a datagram from a uid
 * outside syslog_allow_uids (plus root and the controller's own uid) is
 * dropped and counted.  The socket file is also closed to others (mode
 * 0660, group of the first allowed user), so most forgers cannot even send.
 * Why not a TCP/HTTP endpoint with a token: nginx's access log can only
 * write files or syslog, and a token would sit in nginx.conf, readable by
 * more than the nginx workers; credentials from the kernel need no secret.
 * UDP (host:port) carries no identity at all: it is refused unless
 * syslog_udp_trusted = 1 says the network is trusted.
 *
 * Why syslog datagrams: nginx sends them from its event loop without ever
 * blocking a worker (a file would need a tailer and rotation handling, an
 * HTTP call per session would put the controller in the data path).  The
 * price is that a datagram can be dropped when the receive buffer is full:
 * the buffer is large, this thread does nothing but parse and record, and
 * the kernel's drop counter is exported in /metrics (UDP only). */
#define _GNU_SOURCE
#include "billing/private.h"

#include <errno.h>
#include <jansson.h>
#include <grp.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "billing/transfer_line.h"
#include "store/store.h"
#include "util/ids.h"
#include "util/log.h"

#define MAX_UIDS 16

static pthread_t thread;
static atomic_bool stopping;
static int sock = -1;
static bool is_unix;
static char unix_path[108];
static uid_t allowed[MAX_UIDS];
static int nallowed;

static void set_rcvbuf(int fd)
{
    int buf = 8 << 20;

    /* bursts of session ends must not overflow the queue (the kernel caps
     * this at net.core.rmem_max unless we are privileged) */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
}

static int open_udp(const char *hostport)
{
    char host[64];
    const char *colon = strrchr(hostport, ':');
    struct addrinfo hints, *ai = NULL;
    int fd, rc;

    if (colon == NULL || colon == hostport || (size_t)(colon - hostport) >= sizeof(host)) {
        log_error("syslog_listen: expected unix:/path or host:port, got \"%s\"", hostport);
        return -1;
    }
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = '\0';
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if ((rc = getaddrinfo(host, colon + 1, &hints, &ai)) != 0) {
        log_error("syslog_listen %s: %s", hostport, gai_strerror(rc));
        return -1;
    }
    fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        log_error("syslog_listen %s: %s", hostport, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    set_rcvbuf(fd);
    return fd;
}

/* syslog_allow_uids: user names or numeric uids, comma or space separated.
 * Root and our own uid are always allowed (both can read our config and
 * write Redis anyway). */
static int parse_allowed(const char *list, gid_t *group)
{
    char buf[256], *save = NULL;

    nallowed = 0;
    allowed[nallowed++] = 0;
    allowed[nallowed++] = geteuid();
    *group = (gid_t)-1;
    snprintf(buf, sizeof(buf), "%s", list);
    for (char *w = strtok_r(buf, ", ", &save); w; w = strtok_r(NULL, ", ", &save)) {
        struct passwd *pw = getpwnam(w);
        char *end;
        unsigned long v = strtoul(w, &end, 10);

        if (pw == NULL && (*end != '\0' || v > 0x7fffffffUL))
            return log_error("syslog_allow_uids: no such user \"%s\"", w), -1;
        if (pw == NULL)
            pw = getpwuid((uid_t)v);
        if (nallowed == MAX_UIDS)
            return log_error("syslog_allow_uids: at most %d users", MAX_UIDS - 2), -1;
        allowed[nallowed++] = pw ? pw->pw_uid : (uid_t)v;
        if (*group == (gid_t)-1 && pw)
            *group = pw->pw_gid;
    }
    return 0;
}

static int open_unix(const char *path, const char *allow)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    gid_t group;
    int fd, one = 1;

    if (parse_allowed(allow, &group) < 0)
        return -1;
    if (path[0] != '/' || strlen(path) >= sizeof(sa.sun_path)) {
        log_error("syslog_listen: unix:%s must be an absolute path of at most %zu bytes", path,
                  sizeof(sa.sun_path) - 1);
        return -1;
    }
    strcpy(sa.sun_path, path);
    /* a stale socket of an earlier run; never remove anything else */
    {
        struct stat st;
        if (lstat(path, &st) == 0) {
            if (!S_ISSOCK(st.st_mode)) {
                log_error("syslog_listen: %s exists and is not a socket", path);
                return -1;
            }
            unlink(path);
        }
    }
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return log_error("syslog_listen unix:%s: %s", path, strerror(errno)), -1;
    /* created closed (umask), opened to the allowed group only after
     * chown, so there is no moment when anyone may send */
    {
        mode_t old = umask(0177);
        int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
        umask(old);
        if (rc < 0 || setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0 ||
            (group != (gid_t)-1 && chown(path, (uid_t)-1, group) < 0) ||
            chmod(path, group != (gid_t)-1 ? 0660 : 0600) < 0) {
            log_error("syslog_listen unix:%s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
    }
    set_rcvbuf(fd);
    snprintf(unix_path, sizeof(unix_path), "%s", path);
    is_unix = true;
    return fd;
}

static int open_socket(const config *cfg)
{
    const char *l = cfg->syslog_listen;

    is_unix = false;
    if (strncmp(l, "unix:", 5) == 0)
        return open_unix(l + 5, cfg->syslog_allow_uids);
    if (!cfg->syslog_udp_trusted) {
        log_error("syslog_listen = %s: a UDP listener lets anyone who can reach it bill any "
                  "project; use unix:/path, or set syslog_udp_trusted = 1 on a trusted network",
                  l);
        return -1;
    }
    log_warn("billing: UDP transfer listener %s is unauthenticated (syslog_udp_trusted)", l);
    return open_udp(l);
}

static bool uid_allowed(uid_t uid)
{
    for (int i = 0; i < nallowed; i++)
        if (allowed[i] == uid)
            return true;
    return false;
}

/* A transfer event of the session, recorded once: 1 recorded, 0 already
 * recorded, -2 no such project, -1 error. */
static int record(const transfer_rec *t)
{
    char sid[80], key[256];
    json_t *ev;
    char *js;
    int rc;

    transfer_key(t, key, sizeof(key));
    transfer_session_id(t, sid, sizeof(sid));
    ev = json_pack("{s:s, s:s, s:s, s:o, s:I, s:I, s:f, s:I, s:I}", "key", key, "kind",
                   "transfer", "project", t->project, "compute_id",
                   t->compute_id[0] ? json_string(t->compute_id) : json_null(),
                   "start_ms", (json_int_t)t->start_ms, "end_ms", (json_int_t)t->end_ms,
                   "seconds", (double)(t->end_ms - t->start_ms) / 1000.0,
                   "bytes_in", (json_int_t)t->bytes_in, "bytes_out", (json_int_t)t->bytes_out);
    js = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    json_decref(ev);
    if (js == NULL)
        return -1;
    rc = store_transfer_record(t->project, key, sid, t->end_ms, js, TRANSFER_DEDUPE_TTL_MS);
    free(js);
    return rc;
}

static void handle(const char *dgram, size_t len)
{
    transfer_rec t;
    const char *counter = NULL;
    transfer_result res = transfer_parse(dgram, len, &t);

    if (res == TRANSFER_OK)
        res = transfer_check_time(&t, now_ms());
    switch (res) {
    case TRANSFER_STALE:
        counter = "billing_transfer_stale_total";
        log_warn("syslog: dropped a transfer of %s that ended at %lld (not within the last "
                 "hour): a replay or a wrong clock", t.project, (long long)t.end_ms);
        break;
    case TRANSFER_MALFORMED:
        counter = "billing_transfer_malformed_total";
        log_warn("syslog: dropped a malformed line (%zu bytes): %.120s", len, dgram);
        break;
    case TRANSFER_UNROUTED:
        counter = "billing_transfer_unrouted_total";
        break;
    case TRANSFER_OK:
        switch (record(&t)) {
        case 1: counter = "billing_transfer_recorded_total"; break;
        case 0: counter = "billing_transfer_duplicate_total"; break;
        case -2: counter = "billing_transfer_unrouted_total"; break;   /* no such project */
        default:
            counter = "billing_transfer_lost_total";
            log_error("syslog: could not record a transfer of %s", t.project);
        }
        break;
    }
    store_counter_incr(counter, 1);
}

/* Receives one datagram and the sender's credentials.  -1 nothing read;
 * 0 read but not from an allowed sender (counted); n > 0 its length. */
static ssize_t receive(char *buf, size_t cap)
{
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(struct ucred))];
    } ctl;
    struct iovec iov = {buf, cap};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    struct ucred *cred = NULL;
    ssize_t n;

    if (is_unix) {
        m.msg_control = ctl.b;
        m.msg_controllen = sizeof(ctl.b);
    }
    n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
    if (n <= 0 || !is_unix)
        return n <= 0 ? -1 : n;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
            c->cmsg_len == CMSG_LEN(sizeof(struct ucred)))
            cred = (struct ucred *)CMSG_DATA(c);
    /* a file descriptor passed along (SCM_RIGHTS) would leak: none expected */
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            for (int *fd = (int *)CMSG_DATA(c);
                 (char *)(fd + 1) <= (char *)c + c->cmsg_len; fd++)
                close(*fd);
    if (cred == NULL || !uid_allowed(cred->uid) || (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
        store_counter_incr("billing_transfer_unauthenticated_total", 1);
        log_warn("syslog: dropped a datagram from uid %ld pid %ld: not in syslog_allow_uids",
                 cred ? (long)cred->uid : -1L, cred ? (long)cred->pid : -1L);
        return 0;
    }
    return n;
}

static void *listener_main(void *arg)
{
    char buf[4096];

    (void)arg;
    while (!atomic_load(&stopping)) {
        struct pollfd p = {sock, POLLIN, 0};
        ssize_t n;

        if (poll(&p, 1, 200) <= 0)
            continue;
        if ((n = receive(buf, sizeof(buf) - 1)) <= 0)
            continue;
        buf[n] = '\0';   /* for the log message only; the parser takes len */
        handle(buf, (size_t)n);
    }
    return NULL;
}

int transfer_listener_start(const config *cfg)
{
    if ((sock = open_socket(cfg)) < 0)
        return -1;
    atomic_store(&stopping, false);
    if (pthread_create(&thread, NULL, listener_main, NULL) != 0) {
        close(sock);
        sock = -1;
        return -1;
    }
    log_info("billing: transfer records from nginx on %s", cfg->syslog_listen);
    return 0;
}

void transfer_listener_stop(void)
{
    if (sock < 0)
        return;
    atomic_store(&stopping, true);
    pthread_join(thread, NULL);
    close(sock);
    sock = -1;
    if (is_unix)
        unlink(unix_path);
}

/* The kernel's count of datagrams dropped on this socket (a full receive
 * buffer), from /proc/net/udp{,6} by inode; -1 if unknown. */
long long transfer_listener_drops(void)
{
    char line[512], want[32];
    long long drops = -1;
    FILE *f;
    int fd = sock;

    if (fd < 0 || is_unix)
        return -1;
    {
        char link[64], target[64];
        ssize_t n;
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        n = readlink(link, target, sizeof(target) - 1);
        if (n <= 0)
            return -1;
        target[n] = '\0';
        /* "socket:[12345]" */
        if (sscanf(target, "socket:[%31[0-9]]", want) != 1)
            return -1;
    }
    for (int v6 = 0; v6 < 2 && drops < 0; v6++) {
        f = fopen(v6 ? "/proc/net/udp6" : "/proc/net/udp", "r");
        if (f == NULL)
            continue;
        while (fgets(line, sizeof(line), f)) {
            char inode[32];
            long long d;
            /* sl local rem st tx:rx tr:when retr uid timeout inode ref ptr drops */
            if (sscanf(line, "%*s %*s %*s %*s %*s %*s %*s %*s %*s %31s %*s %*s %lld", inode,
                       &d) == 2 &&
                strcmp(inode, want) == 0) {
                drops = d;
                break;
            }
        }
        fclose(f);
    }
    return drops;
}
