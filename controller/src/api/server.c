#include "api/api.h"

#include <microhttpd.h>

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/handlers.h"
#include "api/internal.h"
#include "api/request.h"
#include "core/lifecycle.h"
#include "core/scheduler.h"
#include "store/store.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/strbuf.h"

#define MAX_BODY (256 * 1024)
#define MAX_ARGS 4096         /* copied query arguments of a slow request */

static const config *cfg;
static struct MHD_Daemon *daemon_;

/* One request, from its first callback to its completion.  A slow request
 * lives across a suspension: the worker fills r, then resumes the
 * connection, and MHD calls on_request again to send what r holds. */
typedef struct {
    strbuf body;
    bool too_big;
    bool done;                /* a worker answered: send r */
    struct MHD_Connection *conn;
    api_req r;
} reqctx;

static bool token_ok(api_req *r, const char *want)
{
    const char *got = api_bearer(r);

    return got != NULL && secret_equal(got, want);
}

static bool is(const api_req *r, const char *method)
{
    return strcmp(r->method, method) == 0;
}

/* Splits /api/v1/a/b/c into segments (in place in a copy of the url). */
static int split_path(char *path, const char **segs, int max)
{
    int n = 0;

    for (char *p = strtok(path, "/"); p && n < max; p = strtok(NULL, "/"))
        segs[n++] = p;
    return n;
}

/* Marks the request for a worker; on_request suspends the connection. */
static void slow(api_req *r, api_handler h, const char *id)
{
    r->slow = h;
    r->slow_id = id;
}

static void slow_projects_create(api_req *r, const char *id)
{
    (void)id;
    h_projects_create(r);
}

static void slow_wake(api_req *r, const char *id)
{
    (void)id;
    h_wake(r);
}

/* A wake of a running compute is two Redis reads: answer it here.  Anything
 * else may wait for a start (up to wake_timeout_ms) and goes to a worker.
 * Invalid or unknown projects are answered here too, by h_wake itself. */
static bool wake_is_quick(api_req *r)
{
    const char *project = api_query(r, "endpointish");
    project_rec p;
    compute_rec c;

    if (project == NULL || !project_id_valid(project) || store_project_get(project, &p) != 0 ||
        p.compute_id[0] == '\0' || store_compute_get(p.compute_id, &c) != 0)
        return true;
    return c.state == ST_RUNNING;
}

static void route_api(api_req *r)
{
    const char **s = r->segs;
    int n = r->nsegs;

    if (n == 1 && strcmp(s[0], "projects") == 0) {
        if (is(r, "POST")) return slow(r, slow_projects_create, NULL);
        if (is(r, "GET")) return h_projects_list(r);
    } else if (n == 2 && strcmp(s[0], "projects") == 0) {
        if (is(r, "GET")) return h_project_get(r, s[1]);
        if (is(r, "DELETE")) return slow(r, h_project_delete, s[1]);
    } else if (n == 3 && strcmp(s[0], "projects") == 0 && strcmp(s[2], "compute") == 0) {
        if (is(r, "POST")) return slow(r, h_project_compute_create, s[1]);
    } else if (n == 3 && strcmp(s[0], "projects") == 0 && strcmp(s[2], "usage") == 0) {
        if (is(r, "GET")) return h_usage(r, s[1]);
    } else if (n == 2 && strcmp(s[0], "compute") == 0) {
        if (is(r, "GET")) return h_compute_get(r, s[1]);
        if (is(r, "DELETE")) return slow(r, h_compute_delete, s[1]);
    } else if (n == 3 && strcmp(s[0], "compute") == 0 && strcmp(s[2], "suspend") == 0) {
        if (is(r, "POST")) return slow(r, h_compute_suspend, s[1]);
    } else if (n == 3 && strcmp(s[0], "compute") == 0 && strcmp(s[2], "resume") == 0) {
        if (is(r, "POST")) return slow(r, h_compute_resume, s[1]);
    } else if (n == 3 && strcmp(s[0], "compute") == 0 && strcmp(s[2], "resize") == 0) {
        if (is(r, "POST")) return slow(r, h_compute_resize, s[1]);
    } else {
        return api_error(r, 404, "not_found", "no such endpoint");
    }
    api_error(r, 405, "method_not_allowed", "method not allowed on this endpoint");
}

static void route(api_req *r)
{
    if (strlen(r->url) >= sizeof(r->path))
        return api_error(r, 414, "uri_too_long", "request path too long");
    if (strcmp(r->url, "/healthz") == 0) {
        char why[256] = "";
        bool ok = store_ping(), bok = lifecycle_backend_available(why, sizeof(why));
        json_t *doc = json_pack("{s:s, s:b, s:{s:s, s:b}}", "status", ok && bok ? "ok" : "degraded",
                                "redis", ok, "backend", "name", lifecycle_backend_name(),
                                "available", bok);
        if (!bok)
            json_object_set_new(json_object_get(doc, "backend"), "error", json_string(why));
        json_object_set_new(doc, "scheduler_lease", json_boolean(scheduler_is_leader()));
        return api_json(r, ok && bok ? 200 : 503, doc);
    }
    if (strcmp(r->url, "/wake_compute") == 0) {
        if (!token_ok(r, cfg->wake_token))
            return api_error(r, 401, "unauthorized", "missing or wrong wake token");
        if (!is(r, "GET"))
            return api_error(r, 405, "method_not_allowed", "use GET");
        return wake_is_quick(r) ? h_wake(r) : slow(r, slow_wake, NULL);
    }
    if (strcmp(r->url, "/metrics") == 0) {
        if (!token_ok(r, cfg->api_token))
            return api_error(r, 401, "unauthorized", "missing or wrong token");
        return h_metrics(r);
    }
    if (strncmp(r->url, "/api/v1/", 8) != 0)
        return api_error(r, 404, "not_found", "no such endpoint");
    strcpy(r->path, r->url + 8);
    r->nsegs = split_path(r->path, r->segs, 8);
    /* the activity endpoint has per-compute tokens; activity.c checks them */
    if (r->nsegs == 3 && strcmp(r->segs[0], "compute") == 0 &&
        strcmp(r->segs[2], "activity") == 0) {
        if (!is(r, "POST"))
            return api_error(r, 405, "method_not_allowed", "use POST");
        return h_activity(r, r->segs[1]);
    }
    if (!token_ok(r, cfg->api_token))
        return api_error(r, 401, "unauthorized", "missing or wrong token");
    route_api(r);
}

static enum MHD_Result send_response(struct MHD_Connection *conn, api_req *r)
{
    const char *body = r->out ? r->out : "";
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(body), (void *)body,
                                                                MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret;

    if (resp == NULL)
        return MHD_NO;
    if (r->content_type)
        MHD_add_response_header(resp, "Content-Type", r->content_type);
    for (int i = 0; i < r->nhdrs; i++)
        MHD_add_response_header(resp, r->hdr_names[i], r->hdr_values[i]);
    ret = MHD_queue_response(conn, (unsigned int)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Appends "key\0value\0"; the buffer's terminator is the final empty key. */
static enum MHD_Result copy_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
    strbuf *a = cls;
    size_t kl = strlen(key), vl = value ? strlen(value) : 0;

    (void)kind;
    if (a->len + kl + vl + 3 > MAX_ARGS)
        return MHD_NO;
    sb_add(a, key, kl + 1);
    sb_add(a, value ? value : "", vl + 1);
    return MHD_YES;
}

/* A worker must not touch the connection: copy what handlers read from it
 * (MHD keeps method and url alive until the request completes). */
static int detach(api_req *r)
{
    const char *auth = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
    strbuf a = {0};

    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, copy_arg, &a);
    if ((r->args = sb_take(&a)) == NULL)
        return -1;
    if (auth && (r->auth = strdup(auth)) == NULL)
        return -1;
    r->conn = NULL;
    return 0;
}

static void suspend_conn(void *arg)
{
    reqctx *ctx = arg;

    MHD_suspend_connection(ctx->conn);
}

static void run_slow(void *arg, bool cancelled)
{
    reqctx *ctx = arg;

    if (cancelled)
        api_error(&ctx->r, 503, "shutting_down", "the controller is stopping; retry");
    else
        ctx->r.slow(&ctx->r, ctx->r.slow_id);
    ctx->done = true;
    /* from here on the connection's thread owns ctx */
    MHD_resume_connection(ctx->conn);
}

/* Hands the request to a worker; -1 (and an answer in r) if it cannot. */
static int hand_off(reqctx *ctx)
{
    if (detach(&ctx->r) < 0) {
        api_error(&ctx->r, 500, "internal", "out of memory");
        return -1;
    }
    if (api_work_submit(run_slow, ctx, suspend_conn) < 0) {
        api_error(&ctx->r, 503, "busy", "too many slow requests in progress; retry");
        api_header(&ctx->r, "Retry-After", "1");
        return -1;
    }
    return 0;
}

static enum MHD_Result answer(struct MHD_Connection *conn, reqctx *ctx)
{
    enum MHD_Result ret = send_response(conn, &ctx->r);

    free(ctx->r.out);
    ctx->r.out = NULL;
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    reqctx *ctx = *con_cls;
    api_req *r;

    (void)cls;
    (void)version;
    if (ctx == NULL) {
        ctx = calloc(1, sizeof(*ctx));
        if (ctx == NULL)
            return MHD_NO;
        *con_cls = ctx;
        return MHD_YES;
    }
    if (ctx->done)              /* resumed after a worker answered */
        return answer(conn, ctx);
    if (*upload_size > 0) {
        if (ctx->body.len + *upload_size > MAX_BODY)
            ctx->too_big = true;
        else if (!sb_add(&ctx->body, upload_data, *upload_size))
            return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }

    r = &ctx->r;
    r->conn = conn;
    r->method = method;
    r->url = url;
    r->body = ctx->body.buf;
    r->body_len = ctx->body.len;
    r->status = 500;
    ctx->conn = conn;
    if (ctx->too_big)
        api_error(r, 413, "body_too_large", "request body too large");
    else
        route(r);
    if (r->slow && hand_off(ctx) == 0)
        return MHD_YES;         /* suspended; a worker answers */
    return answer(conn, ctx);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    reqctx *ctx = *con_cls;

    (void)cls;
    (void)conn;
    (void)toe;
    if (ctx) {
        sb_free(&ctx->body);
        free(ctx->r.out);
        free(ctx->r.args);
        free(ctx->r.auth);
        free(ctx);
        *con_cls = NULL;
    }
}

int api_start(const config *c)
{
    struct sockaddr_in sa;
    struct MHD_Daemon *d;
    unsigned mhd_limit;
    int max_conns;

    cfg = c;
    handlers_init(c);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)c->listen_port);
    if (inet_pton(AF_INET, c->listen_host, &sa.sin_addr) != 1) {
        log_error("listen: \"%s\" is not an IPv4 address", c->listen_host);
        return -1;
    }
    if ((max_conns = api_conn_init(c, &mhd_limit)) < 0 ||
        api_work_start(c->api_workers, c->api_queue) < 0)
        return -1;
    /* epoll threads share the listening socket; suspended connections (slow
     * requests on a worker) are not timed out and cost no thread */
    d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                             MHD_USE_ERROR_LOG,
                         (uint16_t)c->listen_port, api_conn_accept, NULL, on_request, NULL,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                         MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)c->api_threads,
                         MHD_OPTION_CONNECTION_LIMIT, mhd_limit,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)c->api_idle_timeout_s,
                         MHD_OPTION_NOTIFY_CONNECTION, api_conn_notify, NULL,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                         MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)1024,
                         MHD_OPTION_END);
    if (d == NULL) {
        api_work_stop();
        return -1;
    }
    daemon_ = d;
    log_info("API: %d epoll threads, %d workers (queue %d), at most %d connections "
             "(%d per remote address), idle timeout %d s",
             c->api_threads, c->api_workers, c->api_queue, max_conns,
             c->api_per_ip_connections, c->api_idle_timeout_s);
    return 0;
}

void api_stop(void)
{
    struct MHD_Daemon *d = daemon_;
    MHD_socket lfd;

    if (d == NULL)
        return;
    lfd = MHD_quiesce_daemon(d);

    /* every suspended connection is resumed (answered or cancelled) before
     * MHD_stop_daemon, which must not find one suspended */
    api_work_stop();
    MHD_stop_daemon(d);
    if (lfd != MHD_INVALID_SOCKET)
        close(lfd);
    api_conn_free();
    daemon_ = NULL;
}
