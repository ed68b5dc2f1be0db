/* A request as the handlers see it, and the answers they give: JSON bodies
 * and errors, and the one mapping of the lifecycle's error kinds to HTTP
 * statuses. */
#include "api/request.h"

#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* The one place the lifecycle's error kinds become HTTP statuses. */
int api_status_of(err_kind kind)
{
    switch (kind) {
    case ERR_NONE: return 200;
    case ERR_INVALID: return 400;
    case ERR_NOT_FOUND: return 404;
    case ERR_CONFLICT: return 409;
    case ERR_BUSY: return 409;
    case ERR_UNAVAILABLE: return 503;
    case ERR_RATE_LIMITED: return 429;
    case ERR_INTERNAL: break;
    }
    return 500;
}

void api_op_error(api_req *r, const op_error *e)
{
    api_error(r, api_status_of(e->kind), e->code, e->message);
}

void api_header(api_req *r, const char *name, const char *fmt, ...)
{
    va_list ap;

    if (r->nhdrs >= (int)(sizeof(r->hdr_names) / sizeof(r->hdr_names[0])))
        return;
    r->hdr_names[r->nhdrs] = name;
    va_start(ap, fmt);
    vsnprintf(r->hdr_values[r->nhdrs], sizeof(r->hdr_values[0]), fmt, ap);
    va_end(ap);
    r->nhdrs++;
}

const char *api_query(api_req *r, const char *name)
{
    if (r->conn)
        return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
    for (const char *k = r->args; k && *k; ) {
        const char *v = k + strlen(k) + 1;
        if (strcmp(k, name) == 0)
            return v;
        k = v + strlen(v) + 1;
    }
    return NULL;
}

const char *api_bearer(api_req *r)
{
    const char *h = r->conn ? MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                          "Authorization")
                            : r->auth;

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

/* An optional integer field in [lo, hi]; answers 400 itself. */
int api_int_field(api_req *r, json_t *doc, const char *name, int lo, int hi, int *out)
{
    json_t *v = json_object_get(doc, name);
    char msg[160];

    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        snprintf(msg, sizeof(msg), "\"%s\" must be an integer in [%d, %d]", name, lo, hi);
        api_error(r, 400, "invalid_field", msg);
        return -1;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

/* Rejects fields a request does not know, so a typo is an error, not a
 * silently ignored setting. */
int api_known_fields(api_req *r, json_t *doc, const char *const *names)
{
    const char *key;
    json_t *v;
    char msg[160];

    json_object_foreach(doc, key, v) {
        bool ok = false;
        for (int i = 0; names[i]; i++)
            ok = ok || strcmp(key, names[i]) == 0;
        if (!ok) {
            snprintf(msg, sizeof(msg), "unknown field \"%.64s\"", key);
            api_error(r, 400, "unknown_field", msg);
            return -1;
        }
    }
    return 0;
}

