/* The process backend: one local mariadbd per compute, each with its own
 * datadir, my.cnf, port and unix socket under data_dir.  Servers are started
 * detached so that a controller crash leaves them serving; the controller
 * recognises its servers again by their instance id, "<pid>:<process start
 * time>" (util/proc.h).
 *
 * Isolation (DESIGN.md §4): every compute runs as its own uid and gid,
 * compute_uid_min + (port - compute_port_min), never root and never the
 * controller's user.  Its files:
 *   data_dir/            root 0711   (computes traverse, cannot list)
 *     .plugins/          root 0755   allow-listed plugins, as symlinks
 *     .nofiles/          root 0555   secure_file_priv: empty, unwritable
 *     <cid>/             root:gid 0750
 *       my.cnf           root:gid 0640  (its own report token, nothing else)
 *       data/ tmp/ run/  uid:gid 0700  (run/: pid file, error log)
 *   socket_dir/<cid>/    uid:gid 0700  the unix socket the controller uses
 * so a compute can read and write its own files only, cannot change its own
 * configuration, and cannot see another compute's. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/backend.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/sql.h"
#include "util/strbuf.h"

static const config *cfg;
static pthread_mutex_t template_lock = PTHREAD_MUTEX_INITIALIZER;
static bool cgroup_ok;

/* The compute-unit limits (docs/autoscaling.md): the memory and cpu
 * controllers are cgroup v1 hierarchies on these hosts, next to the v2
 * group the freezer uses; each compute gets a group <hier>/smdb/<id> in
 * both.  A host where they cannot be written runs computes without memory
 * and CPU limits (said once at start): the SQL side of a size still holds. */
#define CG1_ROOT "/sys/fs/cgroup"
enum { CG1_MEMORY, CG1_CPU, CG1_CPUACCT, CG1__COUNT };
static const char *const cg1_names[CG1__COUNT] = {"memory", "cpu", "cpuacct"};
static bool cg1_ok[CG1__COUNT];

#define PATHMAX 768

/* The running server's pid and start time, from the instance id the
 * lifecycle recorded; false if there is none. */
static bool server_of(const compute_rec *c, int *pid, long long *start)
{
    return proc_instance_parse(c->instance, pid, start);
}

static void comp_path(char *buf, size_t len, const compute_rec *c, const char *leaf)
{
    snprintf(buf, len, "%s/%s%s%s", cfg->data_dir, c->id, leaf[0] ? "/" : "", leaf);
}

static void socket_dir(char *buf, size_t len, const compute_rec *c)
{
    snprintf(buf, len, "%s/%s", cfg->socket_dir, c->id);
}

static void socket_path(char *buf, size_t len, const compute_rec *c)
{
    snprintf(buf, len, "%s/%s/sock", cfg->socket_dir, c->id);
}

/* The compute's OS identity, derived from its port: ports are unique and
 * reserved atomically in Redis, so uids are too, with no state of their own.
 * A port outside the pool (a record from elsewhere) gets no identity. */
static int compute_ident(const compute_rec *c, proc_user *u)
{
    if (c->port < cfg->compute_port_min || c->port > cfg->compute_port_max)
        return -1;
    u->uid = (unsigned)(cfg->compute_uid_min + (c->port - cfg->compute_port_min));
    u->gid = u->uid;
    return 0;
}

/* Creates dir (one level) and gives it owner, group and mode, whatever it
 * had: a directory left by an older layout is corrected, not trusted. */
static int own_dir(const char *dir, unsigned uid, unsigned gid, mode_t mode)
{
    if (mkdir(dir, mode) < 0 && errno != EEXIST)
        return -1;
    if (chown(dir, uid, gid) < 0 || chmod(dir, mode) < 0)
        return -1;
    return 0;
}

/* Recursive chown of a datadir copied from the root-owned template. */
static int chown_tree(const char *dir, const proc_user *u)
{
    char own[32];

    snprintf(own, sizeof(own), "%u:%u", u->uid, u->gid);
    const char *argv[] = {"/bin/chown", "-R", "--no-dereference", own, dir, NULL};
    return proc_run(argv, NULL);
}

static void cgroup_path(char *buf, size_t len, const compute_rec *c, const char *leaf)
{
    snprintf(buf, len, "%s/smdb/%s%s%s", cfg->cgroup_root, c->id, leaf[0] ? "/" : "", leaf);
}

static int mkdir_p(const char *path, mode_t mode)
{
    char tmp[PATHMAX];

    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, mode) < 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    return (mkdir(tmp, mode) < 0 && errno != EEXIST) ? -1 : 0;
}

static char *read_file(const char *path, size_t max)
{
    FILE *f = fopen(path, "r");
    char *buf;
    size_t n;

    if (f == NULL)
        return NULL;
    buf = malloc(max + 1);
    if (buf == NULL) {
        fclose(f);
        return NULL;
    }
    n = fread(buf, 1, max, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int write_file(const char *path, const char *data, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    size_t len = strlen(data);
    ssize_t w;

    if (fd < 0)
        return -1;
    w = write(fd, data, len);
    if (close(fd) < 0 || w != (ssize_t)len)
        return -1;
    return 0;
}

/* The last lines of the server's error log, for error messages. */
static void errlog_tail(const compute_rec *c, char *out, size_t outlen)
{
    char path[PATHMAX];
    FILE *f;
    long size;

    comp_path(path, sizeof(path), c, "run/error.log");
    out[0] = '\0';
    f = fopen(path, "r");
    if (f == NULL)
        return;
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, size > (long)outlen - 1 ? size - (long)outlen + 1 : 0, SEEK_SET);
    size = (long)fread(out, 1, outlen - 1, f);
    out[size > 0 ? size : 0] = '\0';
    fclose(f);
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '"')
            *p = ' ';
}

/* A datadir made by mariadb-install-db once, then copied for every compute:
 * install-db takes seconds, a copy takes milliseconds.  The flock keeps two
 * controller processes from building it at once. */
static int ensure_template(char *err, size_t errlen)
{
    char tpl[PATHMAX], tmp[PATHMAX], lockp[PATHMAX], logp[PATHMAX], user_opt[128];
    char dd_opt[PATHMAX + 16];
    struct stat st;
    int lockfd, rc = 0;

    snprintf(tpl, sizeof(tpl), "%s/.template", cfg->data_dir);
    if (stat(tpl, &st) == 0)
        return 0;
    pthread_mutex_lock(&template_lock);
    snprintf(lockp, sizeof(lockp), "%s/.template.lock", cfg->data_dir);
    lockfd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lockfd >= 0)
        flock(lockfd, LOCK_EX);
    if (stat(tpl, &st) != 0) {
        snprintf(tmp, sizeof(tmp), "%s/.template.tmp", cfg->data_dir);
        snprintf(logp, sizeof(logp), "%s/.template.log", cfg->data_dir);
        snprintf(dd_opt, sizeof(dd_opt), "--datadir=%s", tmp);
        snprintf(user_opt, sizeof(user_opt), "--auth-root-socket-user=%s", cfg->compute_user);
        char uo[96], td[PATHMAX + 16], tdir[PATHMAX];
        snprintf(uo, sizeof(uo), "--user=%s", cfg->compute_user);
        /* its own tmpdir: bootstraps sharing /tmp trip over each other's
         * temporary tables */
        snprintf(tdir, sizeof(tdir), "%s/.template.tmpdir", cfg->data_dir);
        mkdir_p(tdir, 0700);
        snprintf(td, sizeof(td), "--tmpdir=%s", tdir);
        const char *argv[] = {cfg->install_db, "--no-defaults", dd_opt, uo,
                              "--auth-root-authentication-method=socket", user_opt,
                              "--skip-test-db", td,
                              /* A small redo log: the default 96M would make
                               * every project's copy 114M.  And not the 16M of
                               * compute.cnf.in: measured here, a server whose
                               * redo log was written by the bootstrap starts
                               * ~40 ms slower every time (140 vs 95 ms to a
                               * served SELECT 1); the compute's first start
                               * re-creates the log at 16M, which avoids that. */
                              "--innodb-log-file-size=4M", NULL};
        rm_rf(tmp);
        log_info("creating the template datadir with %s", cfg->install_db);
        if (proc_run(argv, logp) != 0 || rename(tmp, tpl) < 0) {
            snprintf(err, errlen, "mariadb-install-db failed, see %s", logp);
            rc = -1;
        }
    }
    if (lockfd >= 0)
        close(lockfd);
    pthread_mutex_unlock(&template_lock);
    return rc;
}

/* Replaced atomically (a new link renamed over the old one): a compute
 * starting meanwhile never finds a listed plugin missing. */
static int link_plugin(const char *dir, const char *name, const char *target)
{
    char link[PATHMAX], tmp[PATHMAX];

    snprintf(link, sizeof(link), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s/.%s.new", dir, name);
    unlink(tmp);
    if (symlink(target, tmp) < 0)
        return -1;
    return rename(tmp, link);
}

static bool plugin_listed(const char *name)
{
    char list[sizeof(cfg->compute_plugins)], *save = NULL;

    if (cfg->activity_plugin[0] && strcmp(name, "wake_activity.so") == 0)
        return true;
    snprintf(list, sizeof(list), "%s", cfg->compute_plugins);
    for (char *n = strtok_r(list, " ,", &save); n; n = strtok_r(NULL, " ,", &save))
        if (strcmp(n, name) == 0)
            return true;
    return false;
}

/* creates run in parallel (the API's worker pool): one rebuilds at a time */
static pthread_mutex_t plugin_dir_lock = PTHREAD_MUTEX_INITIALIZER;
static int rebuild_plugin_dir(const char *dir);

/* plugin_dir for computes: root-owned, read-only to them, holding only the
 * allow-listed system plugins and ours (as symlinks to root-owned files).
 * Not the whole system plugin dir: engines such as FederatedX or CONNECT
 * would give a tenant network or file access, and a tenant's INSTALL SONAME
 * (refused by its grants anyway) could then load only what is listed here.
 * Rebuilt on every create, so the list follows the configuration. */
static int ensure_plugin_dir(char *dir, size_t dirlen)
{
    int rc;

    snprintf(dir, dirlen, "%s/.plugins", cfg->data_dir);
    pthread_mutex_lock(&plugin_dir_lock);
    rc = rebuild_plugin_dir(dir);
    pthread_mutex_unlock(&plugin_dir_lock);
    return rc;
}

static int rebuild_plugin_dir(const char *dir)
{
    char list[sizeof(cfg->compute_plugins)], target[PATHMAX], *save = NULL;
    DIR *d;
    struct dirent *de;

    if (own_dir(dir, 0, 0, 0755) < 0)
        return -1;
    /* drop what is no longer listed */
    if ((d = opendir(dir)) != NULL) {
        while ((de = readdir(d)) != NULL) {
            char p[PATHMAX];
            if (de->d_name[0] == '.' || plugin_listed(de->d_name))
                continue;
            snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
            unlink(p);
        }
        closedir(d);
    }
    snprintf(list, sizeof(list), "%s", cfg->compute_plugins);
    for (char *n = strtok_r(list, " ,", &save); n; n = strtok_r(NULL, " ,", &save)) {
        snprintf(target, sizeof(target), "%s/%s", cfg->system_plugin_dir, n);
        if (access(target, R_OK) < 0 || link_plugin(dir, n, target) < 0) {
            log_error("compute plugin %s: %s", target, strerror(errno));
            return -1;
        }
    }
    if (cfg->activity_plugin[0] && link_plugin(dir, "wake_activity.so", cfg->activity_plugin) < 0)
        return -1;
    return 0;
}

/* secure_file_priv: an empty directory computes cannot write, so even a
 * FILE privilege (which tenants do not get) reads and writes nothing. */
static int ensure_nofiles_dir(char *dir, size_t dirlen)
{
    snprintf(dir, dirlen, "%s/.nofiles", cfg->data_dir);
    return own_dir(dir, 0, 0, 0555);
}

/* The compute's directories with their owners and modes (see the top of
 * this file).  Idempotent; run before every start, so a directory someone
 * loosened is tightened again. */
static int prepare_dirs(const compute_rec *c, const proc_user *u, char *err, size_t errlen)
{
    char dir[PATHMAX];
    const char *own[] = {"data", "tmp", "run"};

    comp_path(dir, sizeof(dir), c, "");
    if (own_dir(dir, 0, u->gid, 0750) < 0)
        goto fail;
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
        comp_path(dir, sizeof(dir), c, own[i]);
        if (own_dir(dir, u->uid, u->gid, 0700) < 0)
            goto fail;
    }
    socket_dir(dir, sizeof(dir), c);
    if (own_dir(dir, u->uid, u->gid, 0700) < 0)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "cannot prepare %s: %s", dir, strerror(errno));
    return -1;
}

/* Replaces every @NAME@ of tpl by its value. NULL if out of memory. */
static char *render(const char *tpl, const char *const *vars)
{
    strbuf out = {0};

    for (const char *p = tpl; *p;) {
        const char *val = NULL;
        size_t nl = 0;
        if (*p == '@')
            for (int i = 0; vars[i]; i += 2) {
                nl = strlen(vars[i]);
                if (strncmp(p + 1, vars[i], nl) == 0 && p[1 + nl] == '@') {
                    val = vars[i + 1];
                    break;
                }
            }
        if (val) {
            sb_puts(&out, val);
            p += nl + 2;
        } else {
            sb_add(&out, p++, 1);
        }
    }
    return sb_take(&out);
}

/* The [mariadbd] lines that load plugins: every allow-listed one (so that,
 * e.g., ed25519 accounts can be created without INSTALL SONAME, which
 * tenants cannot run) and the activity plugin with its settings. */
static void plugin_lines(const compute_rec *c, const char *token, char *out, size_t outlen)
{
    char list[sizeof(cfg->compute_plugins)], *save = NULL;
    size_t n = 0;

    out[0] = '\0';
    snprintf(list, sizeof(list), "%s", cfg->compute_plugins);
    for (char *p = strtok_r(list, " ,", &save); p && n < outlen; p = strtok_r(NULL, " ,", &save))
        n += (size_t)snprintf(out + n, outlen - n, "plugin-load-add = %s\n", p);
    if (cfg->activity_plugin[0] && n < outlen)
        snprintf(out + n, outlen - n,
                 "plugin-load-add = wake_activity.so\n"
                 /* a tenant's admin cannot uninstall it, and a compute
                  * whose plugin fails to load does not start half-blind */
                 "wake-activity = FORCE_PLUS_PERMANENT\n"
                 "loose-wake-activity-report-url = %s/api/v1/compute/%s/activity\n"
                 "loose-wake-activity-compute-id = %s\n"
                 "loose-wake-activity-token = %s\n"
                 "loose-wake-activity-admin-user = %s\n"
                 "loose-wake-activity-interval = %d\n",
                 cfg->report_url_base, c->id, c->id, token ? token : "",
                 cfg->compute_user, cfg->report_interval_s);
}

static int write_mycnf(const compute_rec *c, const proc_user *u, const char *token,
                       char *err, size_t errlen)
{
    char datadir[PATHMAX], mycnf[PATHMAX], sock[PATHMAX], pidf[PATHMAX], errlog[PATHMAX];
    char plugdir[PATHMAX], nofiles[PATHMAX], port[16], bp[32], plugin[4096], tmpdir[PATHMAX];
    char maxconn[16];
    char *tpl, *out;
    int rc;

    comp_path(datadir, sizeof(datadir), c, "data");
    comp_path(mycnf, sizeof(mycnf), c, "my.cnf");
    comp_path(pidf, sizeof(pidf), c, "run/mariadbd.pid");
    comp_path(errlog, sizeof(errlog), c, "run/error.log");
    comp_path(tmpdir, sizeof(tmpdir), c, "tmp");
    socket_path(sock, sizeof(sock), c);
    if (ensure_plugin_dir(plugdir, sizeof(plugdir)) < 0) {
        snprintf(err, errlen, "cannot prepare plugin dir %s", plugdir);
        return -1;
    }
    if (ensure_nofiles_dir(nofiles, sizeof(nofiles)) < 0) {
        snprintf(err, errlen, "cannot prepare %s: %s", nofiles, strerror(errno));
        return -1;
    }
    snprintf(port, sizeof(port), "%d", c->port);
    /* the size it is created at; every start passes its current size too */
    snprintf(bp, sizeof(bp), "%lld", cu_pool_bytes(cfg, c->size_cu > 0 ? c->size_cu : 1));
    snprintf(maxconn, sizeof(maxconn), "%d",
             cu_server_connections(cfg, c->size_cu > 0 ? c->size_cu : 1));
    plugin_lines(c, token, plugin, sizeof(plugin));

    tpl = read_file(cfg->mycnf_template, 1 << 16);
    if (tpl == NULL) {
        snprintf(err, errlen, "cannot read %s", cfg->mycnf_template);
        return -1;
    }
    const char *vars[] = {"DATADIR", datadir, "PORT", port,
                          "HOST", c->host, "SOCKET", sock, "PIDFILE", pidf,
                          "ERRLOG", errlog, "TMPDIR", tmpdir, "PLUGIN_DIR", plugdir, "BUFFER_POOL", bp,
                          "MAX_CONNECTIONS", maxconn,
                          "SECURE_FILE_PRIV", nofiles, "PROXY_NETWORKS", cfg->compute_proxy_networks,
                          "PLUGIN", plugin, "COMPUTE_ID", c->id, NULL};
    out = render(tpl, vars);
    free(tpl);
    /* root-owned, readable by the compute's group only: it holds the
     * compute's report token, and the compute must not rewrite it */
    rc = out ? write_file(mycnf, out, 0640) : -1;
    free(out);
    if (rc == 0 && (chown(mycnf, 0, u->gid) < 0 || chmod(mycnf, 0640) < 0))
        rc = -1;
    if (rc < 0)
        snprintf(err, errlen, "cannot write %s", mycnf);
    return rc;
}

static int p_create(const compute_rec *c, const char *token, char *err, size_t errlen)
{
    char dst[PATHMAX], src[PATHMAX];
    proc_user u;

    if (compute_ident(c, &u) < 0) {
        snprintf(err, errlen, "port %d is outside the compute port pool", c->port);
        return -1;
    }
    if (ensure_template(err, errlen) < 0 || prepare_dirs(c, &u, err, errlen) < 0)
        return -1;
    comp_path(dst, sizeof(dst), c, "data");
    snprintf(src, sizeof(src), "%s/.template", cfg->data_dir);
    rm_rf(dst);
    const char *argv[] = {"/bin/cp", "-a", "--reflink=auto", src, dst, NULL};
    if (proc_run(argv, NULL) != 0 || chown_tree(dst, &u) != 0 || chmod(dst, 0700) < 0) {
        snprintf(err, errlen, "cannot copy the template datadir to %s", dst);
        return -1;
    }
    return write_mycnf(c, &u, token, err, errlen);
}

static bool cgroup_prepare(const compute_rec *c, char *procs, size_t len)
{
    char dir[PATHMAX];

    if (!cgroup_ok)
        return false;
    cgroup_path(dir, sizeof(dir), c, "");
    if (mkdir_p(dir, 0755) < 0)
        return false;
    cgroup_path(procs, len, c, "cgroup.procs");
    return true;
}

static int p_stop(const compute_rec *c, char *err, size_t errlen);

/* A server of this compute that Redis does not know of (its controller died
 * between spawning it and recording it) would hold the datadir's lock and
 * make a new start hang: stop it first.  Its pid file names it. */
static void stop_stray(const compute_rec *c)
{
    char pidf[PATHMAX], cmdp[64], mycnf[PATHMAX], *buf, *cmd;
    int pid;
    long long start;

    comp_path(pidf, sizeof(pidf), c, "run/mariadbd.pid");
    comp_path(mycnf, sizeof(mycnf), c, "my.cnf");
    buf = read_file(pidf, 64);
    if (buf == NULL)
        return;
    pid = atoi(buf);
    free(buf);
    snprintf(cmdp, sizeof(cmdp), "/proc/%d/cmdline", pid);
    cmd = read_file(cmdp, 4096);
    start = proc_start_time(pid, NULL);
    if (cmd && start >= 0) {
        /* cmdline is NUL-separated: look at the second argument */
        const char *arg = cmd + strlen(cmd) + 1;
        if (strstr(arg, mycnf)) {
            compute_rec stray = *c;
            char e[256];
            proc_instance(stray.instance, sizeof(stray.instance), pid, start);
            log_warn("compute %s: stopping stray mariadbd pid %d", c->id, pid);
            p_stop(&stray, e, sizeof(e));
        }
    }
    free(cmd);
}

/* The READY=1 sockets of servers launched and not yet seen ready: ready()
 * waits on one (up to 20 ms a call) before it tries a SELECT 1, so a cold
 * start is noticed within a millisecond of the server accepting.  A server
 * without one (adopted, or the table was full) is simply polled. */
#define MAX_NOTIFY 64
static struct {
    char cid[96];
    int fd;               /* -1: free */
} notifies[MAX_NOTIFY];
static pthread_mutex_t notify_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t notify_once = PTHREAD_ONCE_INIT;

static void notify_init(void)
{
    for (int i = 0; i < MAX_NOTIFY; i++)
        notifies[i].fd = -1;
}

/* Takes the compute's socket out of the table (-1: none); fd >= 0 puts one
 * in (closing what it replaces, or fd itself if the table is full). */
static int notify_swap(const char *cid, int fd)
{
    int got = -1, free_slot = -1;

    pthread_once(&notify_once, notify_init);
    pthread_mutex_lock(&notify_mu);
    for (int i = 0; i < MAX_NOTIFY; i++) {
        if (notifies[i].fd >= 0 && strcmp(notifies[i].cid, cid) == 0) {
            got = notifies[i].fd;
            notifies[i].fd = -1;
        }
        if (notifies[i].fd < 0 && free_slot < 0)
            free_slot = i;
    }
    if (fd >= 0) {
        if (got >= 0)
            close(got);
        got = -1;
        if (free_slot >= 0) {
            snprintf(notifies[free_slot].cid, sizeof(notifies[0].cid), "%s", cid);
            notifies[free_slot].fd = fd;
        } else {
            close(fd);
        }
    }
    pthread_mutex_unlock(&notify_mu);
    return got;
}

static void notify_forget(const char *cid)
{
    int fd = notify_swap(cid, -1);

    if (fd >= 0)
        close(fd);
}

static void cg1_path(char *buf, size_t len, int ctl, const compute_rec *c, const char *leaf)
{
    snprintf(buf, len, "%s/%s/smdb/%s%s%s", CG1_ROOT, cg1_names[ctl], c->id,
             leaf[0] ? "/" : "", leaf);
}

static int cg1_write(int ctl, const compute_rec *c, const char *leaf, long long v)
{
    char path[PATHMAX], val[32];

    cg1_path(path, sizeof(path), ctl, c, leaf);
    snprintf(val, sizeof(val), "%lld", v);
    return write_file(path, val, 0644);
}

/* Memory and CPU of cu units on the compute's v1 groups.  Memory is set
 * without swap: memory.limit_in_bytes is the limit the OOM killer enforces
 * (a lower one than in use is reclaimed first; the kernel refuses it with
 * EBUSY when it cannot, and the old size stays). */
static int cg1_limit(const compute_rec *c, int cu, char *err, size_t errlen)
{
    if (cg1_ok[CG1_MEMORY] && cg1_write(CG1_MEMORY, c, "memory.limit_in_bytes",
                                        cu_memory_bytes(cfg, cu)) < 0) {
        snprintf(err, errlen, "memory.limit_in_bytes of %d CU: %s", cu, strerror(errno));
        return -1;
    }
    if (cg1_ok[CG1_CPU] &&
        (cg1_write(CG1_CPU, c, "cpu.cfs_period_us", CU_CPU_PERIOD_US) < 0 ||
         cg1_write(CG1_CPU, c, "cpu.cfs_quota_us", cu_cpu_quota_us(cfg, cu)) < 0)) {
        snprintf(err, errlen, "cpu.cfs_quota_us of %d CU: %s", cu, strerror(errno));
        return -1;
    }
    return 0;
}

/* The server joins its groups with its limits set (its memory charged so
 * far moves with it). */
static int cg1_enter(const compute_rec *c, int pid, int cu, char *err, size_t errlen)
{
    char dir[PATHMAX];

    for (int k = 0; k < CG1__COUNT; k++) {
        if (!cg1_ok[k])
            continue;
        cg1_path(dir, sizeof(dir), k, c, "");
        if (mkdir_p(dir, 0755) < 0) {
            snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
            return -1;
        }
    }
    if (cg1_ok[CG1_MEMORY])
        cg1_write(CG1_MEMORY, c, "memory.move_charge_at_immigrate", 3);
    if (cg1_limit(c, cu, err, errlen) < 0)
        return -1;
    for (int k = 0; k < CG1__COUNT; k++)
        if (cg1_ok[k] && cg1_write(k, c, "cgroup.procs", pid) < 0) {
            snprintf(err, errlen, "cannot move the server into its %s group: %s",
                     cg1_names[k], strerror(errno));
            return -1;
        }
    return 0;
}

/* The groups of a stopped server (empty: rmdir removes them). */
static void cg1_remove(const compute_rec *c)
{
    char dir[PATHMAX];

    for (int k = 0; k < CG1__COUNT; k++)
        if (cg1_ok[k]) {
            cg1_path(dir, sizeof(dir), k, c, "");
            rmdir(dir);
        }
}

static int p_launch(const compute_rec *c, instance *out, char *err, size_t errlen)
{
    char mycnf[PATHMAX], defaults[PATHMAX + 32], notify_name[64], notify_env[96];
    char procs[PATHMAX], errlog[PATHMAX], bp_opt[64], conn_opt[48];
    int nfd, pid, cu = c->size_cu > 0 ? c->size_cu : 1;
    long long start;
    proc_user u;

    if (compute_ident(c, &u) < 0) {
        snprintf(err, errlen, "port %d is outside the compute port pool", c->port);
        return -1;
    }
    stop_stray(c);
    if (prepare_dirs(c, &u, err, errlen) < 0)
        return -1;
    comp_path(mycnf, sizeof(mycnf), c, "my.cnf");
    comp_path(errlog, sizeof(errlog), c, "run/error.log");
    snprintf(defaults, sizeof(defaults), "--defaults-file=%s", mycnf);
    nfd = notify_open(notify_name, sizeof(notify_name));
    snprintf(notify_env, sizeof(notify_env), "NOTIFY_SOCKET=%s", notify_name);

    /* the current size, whatever my.cnf was written with (the command
     * line wins over it) */
    snprintf(bp_opt, sizeof(bp_opt), "--innodb-buffer-pool-size=%lld", cu_pool_bytes(cfg, cu));
    snprintf(conn_opt, sizeof(conn_opt), "--max-connections=%d", cu_server_connections(cfg, cu));
    const char *argv[] = {cfg->mariadbd, defaults, bp_opt, conn_opt, NULL};
    /* an allow-list: the controller's environment may hold its tokens and
     * the Redis and PostgreSQL credentials */
    const char *env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "TZ=UTC",
                         nfd >= 0 ? notify_env : NULL, NULL};
    pid = proc_spawn_detached(argv, env, &u,
                              cgroup_prepare(c, procs, sizeof(procs)) ? procs : NULL, errlog);
    start = proc_start_time(pid, NULL);
    if (pid <= 0 || start < 0) {
        if (nfd >= 0)
            close(nfd);
        snprintf(err, errlen, "cannot start %s", cfg->mariadbd);
        return -1;
    }
    if (cg1_enter(c, pid, cu, err, errlen) < 0) {
        /* a server without its limits is not this size: stop it */
        kill(pid, SIGKILL);
        proc_wait_exit(pid, start, 5000);
        if (nfd >= 0)
            close(nfd);
        return -1;
    }
    if (nfd >= 0)
        notify_swap(c->id, nfd);
    memset(out, 0, sizeof(*out));
    proc_instance(out->id, sizeof(out->id), pid, start);
    out->started_ms = now_ms();
    return 0;
}

/* Ready means a real client handshake and SELECT 1.  The READY=1
 * notification says when to try; without one, poll. */
static int p_ready(const compute_rec *c, char *err, size_t errlen)
{
    char sock[PATHMAX], tail[400];
    int pid, fd;
    long long start;

    if (!server_of(c, &pid, &start) || !proc_same_alive(pid, start)) {
        notify_forget(c->id);
        errlog_tail(c, tail, sizeof(tail));
        snprintf(err, errlen, "mariadbd exited during start: %s", tail);
        return -1;
    }
    if ((fd = notify_swap(c->id, -1)) >= 0) {
        if (notify_wait(fd, 20) != 1) {
            notify_swap(c->id, fd);
            errlog_tail(c, tail, sizeof(tail));
            snprintf(err, errlen, "no READY=1 yet: %s", tail);
            return 1;
        }
        close(fd);
    }
    socket_path(sock, sizeof(sock), c);
    if (access(sock, F_OK) == 0 && sql_ping(sock, cfg->compute_user, 5) == 0)
        return 0;
    errlog_tail(c, tail, sizeof(tail));
    snprintf(err, errlen, "not answering on its socket yet: %s", tail);
    return 1;
}

static int cgroup_write(const compute_rec *c, const char *leaf, const char *val)
{
    char path[PATHMAX];

    cgroup_path(path, sizeof(path), c, leaf);
    return write_file(path, val, 0644);
}

/* Is pid in this compute's cgroup?  (It is not if it was started before
 * cgroups were available, or adopted from elsewhere.) */
static bool in_cgroup(const compute_rec *c)
{
    char path[PATHMAX], want[PATHMAX], *buf;
    bool yes = false;
    int pid;
    long long start;

    if (!cgroup_ok || !server_of(c, &pid, &start))
        return false;
    snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
    snprintf(want, sizeof(want), "0::/smdb/%s\n", c->id);
    buf = read_file(path, 8192);
    if (buf) {
        yes = strstr(buf, want) != NULL;
        free(buf);
    }
    return yes;
}

static bool cgroup_frozen(const compute_rec *c)
{
    char path[PATHMAX], *buf;
    bool yes = false;

    cgroup_path(path, sizeof(path), c, "cgroup.events");
    buf = read_file(path, 4096);
    if (buf) {
        yes = strstr(buf, "frozen 1") != NULL;
        free(buf);
    }
    return yes;
}

static inst_state p_status(const compute_rec *c, instance *out)
{
    char st = 0;
    int pid;
    long long start, s;

    if (!server_of(c, &pid, &start))
        return INST_GONE;
    s = proc_start_time(pid, &st);
    if (s < 0 || s != start || st == 'Z' || st == 'X')
        return INST_GONE;
    if (out) {
        memset(out, 0, sizeof(*out));
        snprintf(out->id, sizeof(out->id), "%s", c->instance);
        out->started_ms = proc_start_ms(start);
    }
    if (st == 'T' || (in_cgroup(c) && cgroup_frozen(c)))
        return INST_FROZEN;
    return INST_RUNNING;
}

static int p_thaw(const compute_rec *c, char *err, size_t errlen)
{
    int pid;
    long long start;

    if (!server_of(c, &pid, &start))
        return 0;
    if (in_cgroup(c) && cgroup_write(c, "cgroup.freeze", "0") == 0) {
        for (int i = 0; i < 2000 && cgroup_frozen(c); i++)
            usleep(100);
    }
    /* a SIGSTOPped process (the fallback) needs SIGCONT; harmless otherwise */
    if (kill(pid, SIGCONT) < 0 && errno != ESRCH) {
        snprintf(err, errlen, "SIGCONT: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static int p_freeze(const compute_rec *c, char *err, size_t errlen)
{
    int pid;
    long long start;

    if (!server_of(c, &pid, &start)) {
        snprintf(err, errlen, "no server to freeze");
        return -1;
    }
    if (in_cgroup(c) && cgroup_write(c, "cgroup.freeze", "1") == 0) {
        for (int i = 0; i < 20000; i++) {
            if (cgroup_frozen(c))
                return 0;
            usleep(100);
        }
        snprintf(err, errlen, "cgroup did not freeze");
        cgroup_write(c, "cgroup.freeze", "0");
        return -1;
    }
    if (kill(pid, SIGSTOP) < 0) {
        snprintf(err, errlen, "SIGSTOP: %s", strerror(errno));
        return -1;
    }
    for (int i = 0; i < 20000; i++) {
        char st = 0;
        if (proc_start_time(pid, &st) < 0 || st == 'T')
            return 0;
        usleep(100);
    }
    snprintf(err, errlen, "process did not stop");
    return -1;
}

static int p_stop(const compute_rec *c, char *err, size_t errlen)
{
    int pid;
    long long start;

    notify_forget(c->id);
    if (!server_of(c, &pid, &start) || !proc_same_alive(pid, start))
        return 0;
    p_thaw(c, err, errlen);  /* a frozen server cannot shut down */
    if (kill(pid, SIGTERM) < 0 && errno != ESRCH) {
        snprintf(err, errlen, "SIGTERM: %s", strerror(errno));
        return -1;
    }
    if (proc_wait_exit(pid, start, cfg->stop_timeout_ms) == 0) {
        cg1_remove(c);
        return 0;
    }
    log_warn("compute %s: no clean shutdown in %d ms, killing", c->id, cfg->stop_timeout_ms);
    kill(pid, SIGKILL);
    if (proc_wait_exit(pid, start, 5000) < 0)
        return -1;
    cg1_remove(c);
    return 0;
}

static int p_destroy(const compute_rec *c, char *err, size_t errlen)
{
    char dir[PATHMAX], sock[PATHMAX];

    if (p_stop(c, err, errlen) < 0)
        return -1;
    comp_path(dir, sizeof(dir), c, "");
    socket_dir(sock, sizeof(sock), c);
    rm_rf(sock);
    if (cgroup_ok) {
        char cg[PATHMAX];
        cgroup_path(cg, sizeof(cg), c, "");
        rmdir(cg);
    }
    cg1_remove(c);
    if (rm_rf(dir) < 0) {
        snprintf(err, errlen, "cannot remove %s", dir);
        return -1;
    }
    return 0;
}

static int p_admin_sql(const compute_rec *c, const char *q, char *err, size_t errlen)
{
    char sock[PATHMAX];

    socket_path(sock, sizeof(sock), c);
    return sql_exec_close(sql_connect(sock, cfg->compute_user, 10, err, errlen), q, err, errlen);
}

static int p_probe(const compute_rec *c, compute_probe *out)
{
    char sock[PATHMAX], err[256];

    socket_path(sock, sizeof(sock), c);
    return backend_probe_sql(sql_connect(sock, cfg->compute_user, 5, err, sizeof(err)),
                             cfg->compute_user, out);
}

/* The limits of the server's groups.  The buffer pool and max_connections
 * are not set here: SET GLOBAL is what the controller's account gives up
 * at creation (docs/tenancy.md); the plugin applies them from inside the
 * server, from the answer to its next report (docs/autoscaling.md). */
static int p_resize(const compute_rec *c, int cu, char *err, size_t errlen)
{
    int pid;
    long long start;

    if (!server_of(c, &pid, &start) || !proc_same_alive(pid, start)) {
        snprintf(err, errlen, "no server to resize");
        return -1;
    }
    return cg1_limit(c, cu, err, errlen);
}

/* The kernel's count of the server's CPU time (cpuacct.usage, ns): the
 * autoscaler's CPU signal, exact and not the server's own word. */
static long long p_cpu_ms(const compute_rec *c)
{
    char path[PATHMAX], *buf;
    long long ns = -1;

    if (!cg1_ok[CG1_CPUACCT])
        return -1;
    cg1_path(path, sizeof(path), CG1_CPUACCT, c, "cpuacct.usage");
    if ((buf = read_file(path, 64)) != NULL) {
        ns = strtoll(buf, NULL, 10);
        free(buf);
    }
    return ns < 0 ? -1 : ns / 1000000;
}

static long long p_storage_bytes(const compute_rec *c)
{
    char dir[PATHMAX];

    comp_path(dir, sizeof(dir), c, "data");
    return du_bytes(dir);
}

static const backend process_backend = {
    .name = "process",
    .can_freeze = true,
    .create = p_create,
    .launch = p_launch,
    .ready = p_ready,
    .stop = p_stop,
    .freeze = p_freeze,
    .thaw = p_thaw,
    .destroy = p_destroy,
    .resize = p_resize,
    .status = p_status,
    .admin_sql = p_admin_sql,
    .probe = p_probe,
    .cpu_ms = p_cpu_ms,
    .storage_bytes = p_storage_bytes,
};

/* Every directory above data_dir and socket_dir must let a compute's uid
 * through (o+x), or no compute can reach its own files: say which one. */
static int check_traversable(const char *path, char *err, size_t errlen)
{
    char p[PATHMAX];
    struct stat st;

    snprintf(p, sizeof(p), "%s", path);
    for (char *slash = strrchr(p, '/'); slash && slash > p; slash = strrchr(p, '/')) {
        *slash = '\0';
        if (stat(p, &st) == 0 && !(st.st_mode & S_IXOTH)) {
            snprintf(err, errlen, "%s is not traversable by computes (chmod o+x %s)", p, p);
            return -1;
        }
    }
    return 0;
}

const backend *backend_process(const config *c, char *err, size_t errlen)
{
    char probe[PATHMAX];

    cfg = c;
    /* computes run as their own uids: only root can switch to them, give
     * them their files, and read every compute's files itself */
    if (geteuid() != 0) {
        snprintf(err, errlen, "the process backend runs each compute as its own uid and "
                 "must run as root");
        return NULL;
    }
    if (mkdir_p(cfg->data_dir, 0711) < 0 || own_dir(cfg->data_dir, 0, 0, 0711) < 0 ||
        mkdir_p(cfg->socket_dir, 0711) < 0 || own_dir(cfg->socket_dir, 0, 0, 0711) < 0) {
        snprintf(err, errlen, "cannot prepare %s and %s: %s", cfg->data_dir, cfg->socket_dir,
                 strerror(errno));
        return NULL;
    }
    if (check_traversable(cfg->data_dir, err, errlen) < 0 ||
        check_traversable(cfg->socket_dir, err, errlen) < 0)
        return NULL;
    /* cgroup v2 freezer where the host lets us create groups, else SIGSTOP */
    cgroup_ok = false;
    if (cfg->cgroup_root[0]) {
        snprintf(probe, sizeof(probe), "%s/smdb", cfg->cgroup_root);
        char ff[PATHMAX];
        snprintf(ff, sizeof(ff), "%s/cgroup.procs", cfg->cgroup_root);
        if (access(ff, W_OK) == 0 && mkdir_p(probe, 0755) == 0)
            cgroup_ok = true;
    }
    for (int k = 0; k < CG1__COUNT; k++) {
        char dir[PATHMAX], procs[PATHMAX + 16];
        snprintf(dir, sizeof(dir), "%s/%s/smdb", CG1_ROOT, cg1_names[k]);
        snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
        cg1_ok[k] = mkdir_p(dir, 0755) == 0 && access(procs, W_OK) == 0;
        if (!cg1_ok[k])
            log_warn("process backend: no writable cgroup v1 %s controller at %s/%s: computes "
                     "run without %s limits (buffer pool and max_connections still follow "
                     "their size)", cg1_names[k], CG1_ROOT, cg1_names[k],
                     k == CG1_MEMORY ? "memory" : k == CG1_CPU ? "CPU" : "measured CPU");
    }
    log_info("process backend: data %s, computes as uids %d-%d, freezer %s, limits: memory %s, "
             "cpu %s", cfg->data_dir, cfg->compute_uid_min, cfg->compute_uid_max,
             cgroup_ok ? "cgroup v2" : "SIGSTOP", cg1_ok[CG1_MEMORY] ? "cgroup v1" : "none",
             cg1_ok[CG1_CPU] ? (cg1_ok[CG1_CPUACCT] ? "cgroup v1 (cpuacct)" : "cgroup v1")
                             : "none");
    return &process_backend;
}
