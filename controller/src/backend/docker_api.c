#include "backend/docker_api.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/strbuf.h"

/* replies are bounded: an inspect is a few kB, /system/df with many images
 * some hundred */
#define REPLY_MAX (8u << 20)

static size_t on_data(char *p, size_t sz, size_t n, void *arg)
{
    return sb_add(arg, p, sz * n) ? sz * n : 0;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int perform(const char *socket_path, const char *method, const char *path,
                   const char *body, long timeout_ms, strbuf *b, long *status, char *err,
                   size_t errlen)
{
    char url[1024];
    CURL *c;
    CURLcode rc;
    struct curl_slist *hd = NULL;
    bool versioned = strncmp(path, "/libpod/", 8) != 0 && strcmp(path, "/_ping") != 0;

    pthread_once(&once, init);
    /* the host part is ignored on a unix socket */
    snprintf(url, sizeof(url), "http://docker%s%s", versioned ? "/v1.41" : "/v4.0.0", path);
    if (strcmp(path, "/_ping") == 0)
        snprintf(url, sizeof(url), "http://docker/_ping");
    c = curl_easy_init();
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, socket_path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 3000 ? timeout_ms : 3000);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    if (body) {
        hd = curl_slist_append(hd, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    }
    rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    else
        snprintf(err, errlen, "docker engine at %s: %s", socket_path, curl_easy_strerror(rc));
    curl_slist_free_all(hd);
    curl_easy_cleanup(c);
    return rc == CURLE_OK ? 0 : -1;
}

int dk_call(const char *socket_path, const char *method, const char *path, json_t *body,
            long timeout_ms, dk_reply *out)
{
    strbuf b = {.max = REPLY_MAX};
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = perform(socket_path, method, path, text, timeout_ms, &b, &out->status, out->err,
                 sizeof(out->err));
    free(text);
    if (rc == 0 && b.len) {
        out->body = json_loadb(b.buf, b.len, 0, NULL);
        json_t *m = out->body ? json_object_get(out->body, "message") : NULL;
        if (out->status >= 300 && json_is_string(m))
            snprintf(out->err, sizeof(out->err), "%s", json_string_value(m));
    }
    if (rc == 0 && out->status >= 300 && !out->err[0])
        snprintf(out->err, sizeof(out->err), "docker engine: HTTP %ld on %s %s", out->status,
                 method, path);
    sb_free(&b);
    return rc;
}

char *dk_call_raw(const char *socket_path, const char *path, long timeout_ms, long *status)
{
    strbuf b = {.max = 1u << 20};
    char err[256];

    *status = 0;
    if (perform(socket_path, "GET", path, NULL, timeout_ms, &b, status, err, sizeof(err)) < 0) {
        sb_free(&b);
        return NULL;
    }
    return sb_take(&b);
}

void dk_reply_free(dk_reply *r)
{
    if (r->body)
        json_decref(r->body);
    r->body = NULL;
}
