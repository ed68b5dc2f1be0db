#define _GNU_SOURCE
#include "util/proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/ids.h"

void proc_instance(char *buf, size_t len, int pid, long long start)
{
    snprintf(buf, len, "%d:%lld", pid, start);
}

bool proc_instance_parse(const char *id, int *pid, long long *start)
{
    char *end;
    long p;
    long long st;

    if (id == NULL || *id < '1' || *id > '9')
        return false;
    p = strtol(id, &end, 10);
    if (*end != ':' || p <= 0 || p > 0x7fffffffL || end[1] < '0' || end[1] > '9')
        return false;
    st = strtoll(end + 1, &end, 10);
    if (*end != '\0')
        return false;
    *pid = (int)p;
    *start = st;
    return true;
}

long long proc_start_time(int pid, char *state)
{
    char path[64], buf[1024], *p;
    int fd;
    ssize_t n;
    long long start = -1;

    if (pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* the command name may contain spaces and parentheses: skip to the last ')' */
    p = strrchr(buf, ')');
    if (p == NULL || p[1] == '\0')
        return -1;
    p += 2;
    if (state)
        *state = *p;
    /* fields after ')': 3=state ... 22=starttime, i.e. the 20th from here */
    for (int field = 3; field < 22 && p; field++) {
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    if (p)
        start = strtoll(p, NULL, 10);
    return start;
}

long long proc_start_ms(long long start)
{
    static long long boot_ms = -1;
    char line[256];
    FILE *f;

    if (boot_ms < 0 && (f = fopen("/proc/stat", "r")) != NULL) {
        while (fgets(line, sizeof(line), f))
            if (strncmp(line, "btime ", 6) == 0)
                boot_ms = strtoll(line + 6, NULL, 10) * 1000;
        fclose(f);
    }
    if (boot_ms < 0 || start < 0)
        return 0;
    return boot_ms + start * 1000 / sysconf(_SC_CLK_TCK);
}

bool proc_same_alive(int pid, long long start)
{
    char st = 0;
    long long s = proc_start_time(pid, &st);

    return s >= 0 && s == start && st != 'Z' && st != 'X';
}

int proc_wait_exit(int pid, long long start, int timeout_ms)
{
    int64_t end = mono_ms() + timeout_ms;
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);

    while (proc_same_alive(pid, start)) {
        int64_t left = end - mono_ms();
        if (left <= 0) {
            if (pfd >= 0)
                close(pfd);
            return -1;
        }
        if (pfd >= 0) {
            /* a pidfd becomes readable when the process ends, even if it is
             * not our child and nobody has reaped it yet */
            struct pollfd p = {pfd, POLLIN, 0};
            poll(&p, 1, (int)(left < 50 ? left : 50));
        } else {
            usleep(1000);
        }
    }
    if (pfd >= 0)
        close(pfd);
    return 0;
}

static void child_redirect(const char *out_path)
{
    int devnull = open("/dev/null", O_RDONLY);
    int out = out_path ? open(out_path, O_WRONLY | O_CREAT | O_APPEND, 0640) : -1;

    if (devnull >= 0)
        dup2(devnull, 0);
    if (out < 0)
        out = open("/dev/null", O_WRONLY);
    if (out >= 0) {
        dup2(out, 1);
        dup2(out, 2);
    }
    /* drop every other descriptor: the child must not hold our sockets
     * (Redis, the API's listener, clients' connections), whatever their
     * number: the API raises the descriptor limit far above 1024 */
    if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0)
        for (int fd = 3; fd < 65536; fd++)
            close(fd);
}

int proc_run(const char *const argv[], const char *log_path)
{
    pid_t pid = fork();
    int st;

    if (pid < 0)
        return -1;
    if (pid == 0) {
        child_redirect(log_path);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* In the child, before exec: only async-signal-safe calls.  The group list
 * goes first (it needs root), then the gid, then the uid; each is checked,
 * since a server left running as root would be worse than none. */
static int child_become(const proc_user *as)
{
    if (as->uid == 0 || as->gid == 0)
        return -1;
    if (setgroups(0, NULL) < 0 || setresgid(as->gid, as->gid, as->gid) < 0 ||
        setresuid(as->uid, as->uid, as->uid) < 0)
        return -1;
    return getuid() == as->uid && geteuid() == as->uid ? 0 : -1;
}

int proc_spawn_detached(const char *const argv[], const char *const env[],
                        const proc_user *as, const char *cgroup_procs, const char *out_path)
{
    int pipefd[2], st;
    pid_t mid, pid = -1;

    if (as == NULL || as->uid == 0)
        return -1;
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return -1;
    mid = fork();
    if (mid < 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        return -1;
    }
    if (mid == 0) {
        /* the middle process exits at once, so the server is reparented
         * (no zombie of ours, and it survives the controller) */
        pid_t g;
        setsid();
        g = fork();
        if (g == 0) {
            if (cgroup_procs) {
                int fd = open(cgroup_procs, O_WRONLY);
                if (fd >= 0) {
                    (void)!write(fd, "0", 1);
                    close(fd);
                }
            }
            signal(SIGPIPE, SIG_DFL);
            if (child_become(as) < 0)
                _exit(126);
            umask(077);
            child_redirect(out_path);
            execve(argv[0], (char *const *)argv, (char *const *)env);
            _exit(127);
        }
        (void)!write(pipefd[1], &g, sizeof(g));
        _exit(0);
    }
    close(pipefd[1]);
    if (read(pipefd[0], &pid, sizeof(pid)) != sizeof(pid))
        pid = -1;
    close(pipefd[0]);
    while (waitpid(mid, &st, 0) < 0 && errno == EINTR)
        ;
    return pid;
}

int notify_open(char *name, size_t namelen)
{
    struct sockaddr_un sa;
    char rnd[17];
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    socklen_t len;

    if (fd < 0 || random_hex(rnd, 8) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    /* abstract namespace: no path length limit or file to clean up;
     * sd_notify() understands the leading '@' of $NOTIFY_SOCKET */
    snprintf(name, namelen, "@smdb-notify-%d-%s", (int)getpid(), rnd);
    memcpy(sa.sun_path + 1, name + 1, strlen(name) - 1);
    len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name));
    if (bind(fd, (struct sockaddr *)&sa, len) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int notify_wait(int fd, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    char buf[4096];

    if (poll(&p, 1, ms) <= 0)
        return 0;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
        if (n <= 0)
            return 0;
        buf[n] = '\0';
        if (strstr(buf, "READY=1"))
            return 1;
    }
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

int rm_rf(const char *path)
{
    struct stat st;

    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -1;
    return nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS);
}

static __thread long long du_total;

static int du_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)path;
    (void)ftw;
    if (flag == FTW_F)
        du_total += (long long)sb->st_blocks * 512;
    return 0;
}

long long du_bytes(const char *path)
{
    du_total = 0;
    if (nftw(path, du_one, 32, FTW_PHYS) < 0)
        return -1;
    return du_total;
}
