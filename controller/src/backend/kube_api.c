#include "backend/kube_api.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/strbuf.h"

static const config *cfg;

void kube_init(const config *c)
{
    cfg = c;
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_data(char *p, size_t sz, size_t n, void *arg)
{
    return sb_add(arg, p, sz * n) ? sz * n : 0;
}

/* the token's first line; "" if none */
static void read_token(char *out, size_t len)
{
    FILE *f = cfg->k8s_token_file[0] ? fopen(cfg->k8s_token_file, "r") : NULL;

    out[0] = '\0';
    if (f == NULL)
        return;
    if (fgets(out, (int)len, f) == NULL)
        out[0] = '\0';
    out[strcspn(out, "\r\n")] = '\0';
    fclose(f);
}

static CURL *handle(const char *method, const char *path, struct curl_slist **hd,
                    const char *content_type)
{
    char url[1024], token[4096], auth[4200];
    CURL *c = curl_easy_init();

    if (c == NULL)
        return NULL;
    snprintf(url, sizeof(url), "%s%s", cfg->k8s_api, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    if (cfg->k8s_ca_file[0])
        curl_easy_setopt(c, CURLOPT_CAINFO, cfg->k8s_ca_file);
    read_token(token, sizeof(token));
    if (token[0]) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        *hd = curl_slist_append(*hd, auth);
    }
    *hd = curl_slist_append(*hd, "Accept: application/json");
    if (content_type) {
        char ct[96];
        snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
        *hd = curl_slist_append(*hd, ct);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hd);
    memset(token, 0, sizeof(token));
    memset(auth, 0, sizeof(auth));
    return c;
}

static void status_fields(kube_reply *out)
{
    json_t *m = json_object_get(out->body, "message"), *r = json_object_get(out->body, "reason");

    if (out->status >= 300 && json_is_string(m))
        snprintf(out->err, sizeof(out->err), "%s", json_string_value(m));
    if (json_is_string(r))
        snprintf(out->reason, sizeof(out->reason), "%s", json_string_value(r));
}

int kube_call(const char *method, const char *path, json_t *body, const char *content_type,
              long timeout_ms, kube_reply *out)
{
    struct curl_slist *hd = NULL;
    strbuf b = {.max = 16u << 20};
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    CURL *c;
    CURLcode rc;

    memset(out, 0, sizeof(*out));
    c = handle(method, path, &hd, body ? (content_type ? content_type : KUBE_JSON) : NULL);
    if (c == NULL) {
        free(text);
        snprintf(out->err, sizeof(out->err), "out of memory");
        return -1;
    }
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (text)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
    rc = curl_easy_perform(c);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
        if (b.len)
            out->body = json_loadb(sb_str(&b), b.len, 0, NULL);
        status_fields(out);
        if (out->status >= 300 && !out->err[0])
            snprintf(out->err, sizeof(out->err), "kubernetes API: HTTP %ld on %s %s",
                     out->status, method, path);
    } else {
        snprintf(out->err, sizeof(out->err), "kubernetes API %s: %s", cfg->k8s_api,
                 curl_easy_strerror(rc));
    }
    curl_slist_free_all(hd);
    curl_easy_cleanup(c);
    free(text);
    sb_free(&b);
    return rc == CURLE_OK ? 0 : -1;
}

void kube_reply_free(kube_reply *r)
{
    if (r->body)
        json_decref(r->body);
    r->body = NULL;
}

typedef struct {
    strbuf line;
    int (*on_event)(const char *, json_t *, void *);
    void *arg;
    volatile int *stop;
    bool quit;
} watch_ctx;

/* events arrive as one JSON object per line */
static size_t on_stream(char *p, size_t sz, size_t n, void *arg)
{
    watch_ctx *w = arg;
    size_t k = sz * n;

    if (*w->stop || w->quit)
        return 0;
    for (size_t i = 0; i < k; i++) {
        if (p[i] != '\n') {
            if (!sb_add(&w->line, p + i, 1))
                return 0;
            continue;
        }
        if (w->line.len) {
            json_t *ev = json_loadb(sb_str(&w->line), w->line.len, 0, NULL);
            const char *type = json_string_value(json_object_get(ev, "type"));
            if (ev && type && w->on_event(type, json_object_get(ev, "object"), w->arg) != 0)
                w->quit = true;
            json_decref(ev);
        }
        w->line.len = 0;
        if (w->quit)
            return 0;
    }
    return k;
}

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c2, curl_off_t d)
{
    watch_ctx *w = arg;

    (void)a;
    (void)b;
    (void)c2;
    (void)d;
    return *w->stop ? 1 : 0;
}

long kube_watch(const char *path, int (*on_event)(const char *type, json_t *object, void *arg),
                void *arg, volatile int *stop, char *err, size_t errlen)
{
    struct curl_slist *hd = NULL;
    watch_ctx w = {{.max = 16u << 20}, on_event, arg, stop, false};
    CURL *c = handle("GET", path, &hd, NULL);
    CURLcode rc;
    long status = 0;

    if (c == NULL)
        return -1;
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &w);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &w);
    /* a watch that hears nothing for this long is presumed dead */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 330L);
    rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK && status == 0)
        snprintf(err, errlen, "watch %s: %s", path, curl_easy_strerror(rc));
    curl_slist_free_all(hd);
    curl_easy_cleanup(c);
    sb_free(&w.line);
    return status == 0 && rc != CURLE_OK ? -1 : status;
}
