/* The transfer listener: a UDP syslog endpoint for nginx's stream access
 * log (billing_syslog.h has the nginx lines).  One datagram is one finished
 * proxied session; each becomes a transfer event of its project.
 *
 * Why syslog over UDP: nginx sends it from its own event loop without ever
 * blocking a worker (a file would need a tailer and rotation handling, an
 * HTTP call per session would put the controller in the data path).  The
 * price is that a datagram can be dropped when the receive buffer is full:
 * the buffer is large, this thread does nothing but parse and record, and
 * the kernel's drop counter for this socket is exported in /metrics. */
#include "billing_internal.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "billing_events.h"
#include "billing_syslog.h"
#include "log.h"
#include "store.h"

static pthread_t thread;
static atomic_bool stopping;
static int sock = -1;

static int open_socket(const char *hostport)
{
    char host[64];
    const char *colon = strrchr(hostport, ':');
    struct addrinfo hints, *ai = NULL;
    int fd, buf = 8 << 20, rc;

    if (colon == NULL || colon == hostport || (size_t)(colon - hostport) >= sizeof(host)) {
        log_error("syslog_listen: expected host:port, got \"%s\"", hostport);
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
    /* bursts of session ends must not overflow the queue (the kernel caps
     * this at net.core.rmem_max unless we are privileged) */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
    return fd;
}

static void handle(const char *dgram, size_t len)
{
    transfer_rec t;
    const char *counter = NULL;

    switch (transfer_parse(dgram, len, &t)) {
    case TRANSFER_MALFORMED:
        counter = "billing_transfer_malformed_total";
        log_warn("syslog: dropped a malformed line (%zu bytes): %.120s", len, dgram);
        break;
    case TRANSFER_UNROUTED:
        counter = "billing_transfer_unrouted_total";
        break;
    case TRANSFER_OK:
        switch (events_transfer(&t)) {
        case 1: counter = "billing_transfer_recorded_total"; break;
        case 0: counter = "billing_transfer_duplicate_total"; break;
        default:
            counter = "billing_transfer_lost_total";
            log_error("syslog: could not record a transfer of %s", t.project);
        }
        break;
    }
    store_counter_incr(counter, 1);
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
        n = recv(sock, buf, sizeof(buf) - 1, 0);
        if (n <= 0)
            continue;
        buf[n] = '\0';   /* for the log message only; the parser takes len */
        handle(buf, (size_t)n);
    }
    return NULL;
}

int transfer_listener_start(const config *cfg)
{
    if ((sock = open_socket(cfg->syslog_listen)) < 0)
        return -1;
    atomic_store(&stopping, false);
    if (pthread_create(&thread, NULL, listener_main, NULL) != 0) {
        close(sock);
        sock = -1;
        return -1;
    }
    log_info("billing: transfer records from nginx on udp %s", cfg->syslog_listen);
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
}

/* The kernel's count of datagrams dropped on this socket (a full receive
 * buffer), from /proc/net/udp{,6} by inode; -1 if unknown. */
long long transfer_listener_drops(void)
{
    char line[512], want[32];
    long long drops = -1;
    FILE *f;
    int fd = sock;

    if (fd < 0)
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
