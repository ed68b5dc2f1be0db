/* Process helpers of the local backend: spawning a detached server, waiting
 * for readiness notifications, telling whether a pid is still the process we
 * started, running a helper command. */
#ifndef SMDB_PROC_H
#define SMDB_PROC_H

#include <stdbool.h>
#include <stddef.h>

/* A local process as a backend instance id: "<pid>:<start time>", the
 * start time guarding against a reused pid. */
void proc_instance(char *buf, size_t len, int pid, long long start);
/* The pid and start time of such an id; false if it is not one. */
bool proc_instance_parse(const char *id, int *pid, long long *start);

/* Start time (jiffies since boot) and state letter of a pid; -1 if gone. */
long long proc_start_time(int pid, char *state);
/* That start time as Unix milliseconds (0 if unknown). */
long long proc_start_ms(long long start);
/* True while pid is the same live (non-zombie) process that started at start. */
bool proc_same_alive(int pid, long long start);
/* Waits up to timeout_ms for the process to end. 0 ended, -1 timeout. */
int proc_wait_exit(int pid, long long start, int timeout_ms);
/* Runs argv to completion with output appended to log_path. exit code or -1 */
int proc_run(const char *const argv[], const char *log_path);

/* Who a spawned server runs as.  uid 0 is refused: a server never runs as
 * root. */
typedef struct {
    unsigned uid, gid;
} proc_user;

/* Spawns argv detached (own session, reparented away from us, so it survives
 * a controller crash) as `as` (no supplementary groups), with exactly the
 * environment env (NULL-terminated; nothing of the controller's own
 * environment is inherited: it may hold tokens) and, if cgroup_procs is set,
 * moved into that cgroup before exec.  out_path (stdout and stderr) is opened
 * after the switch of user, so it is created as that user.  Every descriptor
 * but 0-2 is closed.  Returns the pid or -1. */
int proc_spawn_detached(const char *const argv[], const char *const env[],
                        const proc_user *as, const char *cgroup_procs, const char *out_path);

/* An abstract unix datagram socket for sd_notify READY=1 messages. */
int notify_open(char *name, size_t namelen);
/* Waits up to ms for a message containing READY=1. 1 ready, 0 not yet. */
int notify_wait(int fd, int ms);

int rm_rf(const char *path);
long long du_bytes(const char *path);

#endif
