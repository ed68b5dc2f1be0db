/* The store's connection: one per thread (hiredis contexts are not
 * thread-safe), authenticated when opened, re-opened after an error, and the
 * rules for sending a command again (store.h). */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "store/private.h"
#include "store/store.h"
#include "util/ids.h"
#include "util/log.h"

const config *store_cfg;
static pthread_key_t conn_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void conn_free(void *p)
{
    if (p)
        redisFree(p);
}

static void make_key(void)
{
    pthread_key_create(&conn_key, conn_free);
}

/* The password: from redis_password_file (read at every connect, so a
 * rotated or corrected file is picked up without a restart), else from
 * SMDB_REDIS_PASSWORD.  0 none, 1 found, -1 unreadable file. */
static int redis_password(char *buf, size_t len)
{
    const char *env = getenv("SMDB_REDIS_PASSWORD");
    FILE *f;
    size_t n;

    buf[0] = '\0';
    if (store_cfg->redis_password_file[0] == '\0') {
        if (env == NULL || env[0] == '\0')
            return 0;
        snprintf(buf, len, "%s", env);
        return 1;
    }
    if ((f = fopen(store_cfg->redis_password_file, "r")) == NULL)
        return -1;
    n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';   /* the first line only */
    return 1;
}

/* AUTH [user] password on a fresh connection; 0 done (or no password). */
static int authenticate(redisContext *c)
{
    char pass[512];
    int have = redis_password(pass, sizeof(pass));
    redisReply *r;
    int rc = 0;

    if (have < 0) {
        log_warn("redis: cannot read redis_password_file %s", store_cfg->redis_password_file);
        return -1;
    }
    if (have == 0)
        return 0;
    if (store_cfg->redis_user[0])
        r = redisCommand(c, "AUTH %s %s", store_cfg->redis_user, pass);
    else
        r = redisCommand(c, "AUTH %s", pass);
    memset(pass, 0, sizeof(pass));
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        log_warn("redis %s:%d: authentication as %s failed: %s", store_cfg->redis_host,
                 store_cfg->redis_port,
                 store_cfg->redis_user[0] ? store_cfg->redis_user : "default",
                 r ? r->str : c->errstr);
        rc = -1;
    }
    if (r)
        freeReplyObject(r);
    return rc;
}

static redisContext *connect_redis(void)
{
    int ms = store_cfg->redis_timeout_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(store_cfg->redis_host, store_cfg->redis_port, tv);

    if (c == NULL || c->err) {
        log_warn("redis %s:%d: %s", store_cfg->redis_host, store_cfg->redis_port,
                 c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (authenticate(c) < 0) {
        redisFree(c);
        return NULL;
    }
    return c;
}

static redisContext *thread_conn(bool fresh)
{
    redisContext *c;

    pthread_once(&key_once, make_key);
    c = pthread_getspecific(conn_key);
    if (c && (fresh || c->err)) {
        redisFree(c);
        c = NULL;
        pthread_setspecific(conn_key, NULL);
    }
    if (c == NULL) {
        c = connect_redis();
        pthread_setspecific(conn_key, c);
    }
    return c;
}

/* One attempt with a formatted command.  NULL: no reply (no connection, I/O
 * error or timeout); the command may or may not have run. */
static redisReply *send_once(const char *cmd, size_t len, bool fresh)
{
    redisContext *c = thread_conn(fresh);
    void *r = NULL;

    if (c == NULL)
        return NULL;
    if (redisAppendFormattedCommand(c, cmd, len) != REDIS_OK || redisGetReply(c, &r) != REDIS_OK) {
        if (r)
            freeReplyObject(r);
        /* drop the connection: a late reply must not answer the next command */
        redisFree(c);
        pthread_setspecific(conn_key, NULL);
        return NULL;
    }
    return r;
}

/* Counters are the only commands a replay would apply twice (every script
 * is idempotent, see store.h): never sent again. */
static bool replay_safe(const char *cmd, size_t len)
{
    /* the formatted command is "*N\r\n$L\r\nNAME\r\n..." */
    const char *name = memchr(cmd, '\n', len);

    name = name ? memchr(name + 1, '\n', len - (size_t)(name + 1 - cmd)) : NULL;
    return name == NULL || (strncasecmp(name + 1, "HINCRBY", 7) != 0 &&
                            strncasecmp(name + 1, "INCR", 4) != 0);
}

static redisReply *run(const char *cmd, size_t len, const char *what, int64_t window_ms)
{
    int64_t end = mono_ms() + window_ms;
    int pause_ms = 50;
    redisReply *r;

    for (int attempt = 0;; attempt++) {
        r = send_once(cmd, len, attempt > 0);
        if (r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "LOADING", 7) == 0 &&
            window_ms > 0) {
            /* a restarted Redis reading its AOF: refused, not run; wait */
            freeReplyObject(r);
            r = NULL;
        }
        if (r != NULL) {
            if (r->type == REDIS_REPLY_ERROR)
                log_warn("redis %s: %s", what, r->str);
            else if (attempt > 0 && window_ms > 0)
                log_info("redis %s: answered at attempt %d", what, attempt + 1);
            return r;
        }
        if (attempt == 0 && window_ms == 0 && replay_safe(cmd, len))
            continue;   /* once at once: a Redis restart costs no request */
        if (window_ms == 0 || mono_ms() + pause_ms > end)
            break;
        usleep((useconds_t)pause_ms * 1000);
        pause_ms = pause_ms * 2 > 1000 ? 1000 : pause_ms * 2;
    }
    log_error("redis %s failed", what);
    return NULL;
}

redisReply *store_cmdargv_window(int argc, const char **argv, int64_t window_ms)
{
    char *cmd;
    long long len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
    redisReply *r;

    if (len < 0)
        return NULL;
    r = run(cmd, (size_t)len, argv[0], window_ms);
    redisFreeCommand(cmd);
    return r;
}

redisReply *store_cmdargv(int argc, const char **argv)
{
    return store_cmdargv_window(argc, argv, 0);
}

redisReply *store_eval(const char *script, int nkeys, const char *const *keys, int nargs,
                       const char *const *args)
{
    const char **argv = malloc(sizeof(char *) * (size_t)(3 + nkeys + nargs));
    char nk[8];
    int n = 0;
    redisReply *r;

    if (argv == NULL)
        return NULL;
    snprintf(nk, sizeof(nk), "%d", nkeys);
    argv[n++] = "EVAL";
    argv[n++] = script;
    argv[n++] = nk;
    for (int i = 0; i < nkeys; i++)
        argv[n++] = keys[i];
    for (int i = 0; i < nargs; i++)
        argv[n++] = args[i];
    r = store_cmdargv(n, argv);
    free(argv);
    return r;
}

long long store_int_reply(redisReply *r)
{
    long long v = (r && r->type == REDIS_REPLY_INTEGER) ? r->integer : -1;

    if (r)
        freeReplyObject(r);
    return v;
}

redisReply *store_cmd(const char *fmt, ...)
{
    char *cmd, what[24];
    va_list ap;
    int len;
    redisReply *r;

    va_start(ap, fmt);
    len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0)
        return NULL;
    snprintf(what, sizeof(what), "%.*s", (int)strcspn(fmt, " "), fmt);
    r = run(cmd, (size_t)len, what, 0);
    redisFreeCommand(cmd);
    return r;
}

const char *store_key(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(buf, len, "%s", store_cfg->redis_prefix);

    va_start(ap, fmt);
    vsnprintf(buf + n, len - (size_t)n, fmt, ap);
    va_end(ap);
    return buf;
}

int store_init(const config *c)
{
    store_cfg = c;
    if (!store_ping()) {
        log_error("redis %s:%d: not available", c->redis_host, c->redis_port);
        return -1;
    }
    return 0;
}

bool store_ping(void)
{
    redisReply *r = store_cmd("PING");
    bool ok = r && r->type == REDIS_REPLY_STATUS;

    if (r)
        freeReplyObject(r);
    return ok;
}

