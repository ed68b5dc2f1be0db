#include "api.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "log.h"

#define MAX_BODY (256 * 1024)

static const config *cfg;

typedef struct {
    char *buf;
    size_t len;
    bool too_big;
} upload;

void api_json(api_req *r, int status, json_t *doc)
{
    r->status = status;
    free(r->out);
    r->out = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    r->content_type = "application/json";
    if (doc)
        json_decref(doc);
}

void api_error(api_req *r, int status, const char *code, const char *msg)
{
    api_json(r, status, json_pack("{s:s, s:s}", "error", msg, "code", code));
}

void api_op_error(api_req *r, const op_error *e)
{
    api_error(r, e->status, e->code, e->message);
}

void api_header(api_req *r, const char *name, const char *fmt, ...)
{
    va_list ap;

    if (r->nhdrs >= 6)
        return;
    r->hdr_names[r->nhdrs] = name;
    va_start(ap, fmt);
    vsnprintf(r->hdr_values[r->nhdrs], sizeof(r->hdr_values[0]), fmt, ap);
    va_end(ap);
    r->nhdrs++;
}

const char *api_query(api_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *api_bearer(api_req *r)
{
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");

    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    return h + 7;
}

json_t *api_body_object(api_req *r)
{
    json_error_t jerr;
    json_t *doc;
    char msg[300];

    if (r->body_len == 0) {
        api_error(r, 400, "invalid_json", "a JSON object body is required");
        return NULL;
    }
    doc = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        snprintf(msg, sizeof(msg), "invalid JSON at line %d column %d: %s", jerr.line,
                 jerr.column, jerr.text);
        api_error(r, 400, "invalid_json", msg);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        api_error(r, 400, "invalid_json", "the body must be a JSON object");
        return NULL;
    }
    return doc;
}

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

static void route_api(api_req *r)
{
    const char **s = r->segs;
    int n = r->nsegs;

    if (n == 1 && strcmp(s[0], "projects") == 0) {
        if (is(r, "POST")) return h_projects_create(r);
        if (is(r, "GET")) return h_projects_list(r);
    } else if (n == 2 && strcmp(s[0], "projects") == 0) {
        if (is(r, "GET")) return h_project_get(r, s[1]);
        if (is(r, "DELETE")) return h_project_delete(r, s[1]);
    } else if (n == 3 && strcmp(s[0], "projects") == 0 && strcmp(s[2], "compute") == 0) {
        if (is(r, "POST")) return h_project_compute_create(r, s[1]);
    } else if (n == 3 && strcmp(s[0], "projects") == 0 && strcmp(s[2], "usage") == 0) {
        if (is(r, "GET")) return h_usage(r, s[1]);
    } else if (n == 2 && strcmp(s[0], "compute") == 0) {
        if (is(r, "GET")) return h_compute_get(r, s[1]);
        if (is(r, "DELETE")) return h_compute_delete(r, s[1]);
    } else if (n == 3 && strcmp(s[0], "compute") == 0 && strcmp(s[2], "suspend") == 0) {
        if (is(r, "POST")) return h_compute_suspend(r, s[1]);
    } else if (n == 3 && strcmp(s[0], "compute") == 0 && strcmp(s[2], "resume") == 0) {
        if (is(r, "POST")) return h_compute_resume(r, s[1]);
    } else {
        return api_error(r, 404, "not_found", "no such endpoint");
    }
    api_error(r, 405, "method_not_allowed", "method not allowed on this endpoint");
}

static void route(api_req *r)
{
    char path[512];

    if (strlen(r->url) >= sizeof(path))
        return api_error(r, 414, "uri_too_long", "request path too long");
    if (strcmp(r->url, "/healthz") == 0) {
        bool ok = store_ping();
        return api_json(r, ok ? 200 : 503, json_pack("{s:s, s:b}", "status", ok ? "ok" : "degraded",
                                                     "redis", ok));
    }
    if (strcmp(r->url, "/wake_compute") == 0) {
        if (!token_ok(r, cfg->wake_token))
            return api_error(r, 401, "unauthorized", "missing or wrong wake token");
        if (!is(r, "GET"))
            return api_error(r, 405, "method_not_allowed", "use GET");
        return h_wake(r);
    }
    if (strcmp(r->url, "/metrics") == 0) {
        if (!token_ok(r, cfg->api_token))
            return api_error(r, 401, "unauthorized", "missing or wrong token");
        return h_metrics(r);
    }
    if (strncmp(r->url, "/api/v1/", 8) != 0)
        return api_error(r, 404, "not_found", "no such endpoint");
    strcpy(path, r->url + 8);
    r->nsegs = split_path(path, r->segs, 8);
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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    upload *up = *con_cls;
    api_req r;
    enum MHD_Result ret;

    (void)cls;
    (void)version;
    if (up == NULL) {
        up = calloc(1, sizeof(*up));
        if (up == NULL)
            return MHD_NO;
        *con_cls = up;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (up->len + *upload_size > MAX_BODY) {
            up->too_big = true;
        } else {
            char *nb = realloc(up->buf, up->len + *upload_size + 1);
            if (nb == NULL)
                return MHD_NO;
            up->buf = nb;
            memcpy(up->buf + up->len, upload_data, *upload_size);
            up->len += *upload_size;
            up->buf[up->len] = '\0';
        }
        *upload_size = 0;
        return MHD_YES;
    }

    memset(&r, 0, sizeof(r));
    r.conn = conn;
    r.method = method;
    r.url = url;
    r.body = up->buf;
    r.body_len = up->len;
    r.status = 500;
    if (up->too_big)
        api_error(&r, 413, "body_too_large", "request body too large");
    else
        route(&r);
    ret = send_response(conn, &r);
    free(r.out);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    upload *up = *con_cls;

    (void)cls;
    (void)conn;
    (void)toe;
    if (up) {
        free(up->buf);
        free(up);
        *con_cls = NULL;
    }
}

struct MHD_Daemon *api_start(const config *c)
{
    struct sockaddr_in sa;

    cfg = c;
    handlers_init(c);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)c->listen_port);
    if (inet_pton(AF_INET, c->listen_host, &sa.sin_addr) != 1) {
        log_error("listen: \"%s\" is not an IPv4 address", c->listen_host);
        return NULL;
    }
    return MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                MHD_USE_ERROR_LOG,
                            (uint16_t)c->listen_port, NULL, NULL, on_request, NULL,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)120,
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)1024,
                            MHD_OPTION_END);
}
