/* libcurl POST (see http.h).
 *
 * libcurl is loaded with dlopen() by the reporter thread, not linked: linking
 * it made mariadbd map libcurl's ~30 dependencies (TLS, Kerberos, LDAP ...)
 * while loading the plugin, ~10 ms on the critical path of every cold start.
 * In the reporter thread the same work overlaps the rest of server start-up. */
#define _GNU_SOURCE /* RTLD_NODELETE */
#include "http.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "config.h"

static struct {
    int loaded;
    CURLcode (*global_init)(long);
    void (*global_cleanup)(void);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    void (*easy_cleanup)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    const char *(*easy_strerror)(CURLcode);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
} api;

#define LOAD(field, name)                                         \
    do {                                                          \
        *(void **)(&api.field) = dlsym(lib, name);                \
        if (!api.field)                                           \
            return -1;                                            \
    } while (0)

int wa_http_global_init(void)
{
    if (api.loaded)
        return 0;
    /* RTLD_NODELETE pins libcurl: UNINSTALL SONAME unloads this plugin, and
     * libcurl's TLS, Kerberos and LDAP libraries are not built to be unloaded
     * and loaded again in one process. */
    void *lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!lib)
        return -1;
    LOAD(global_init, "curl_global_init");
    LOAD(global_cleanup, "curl_global_cleanup");
    LOAD(easy_init, "curl_easy_init");
    LOAD(easy_setopt, "curl_easy_setopt");
    LOAD(easy_perform, "curl_easy_perform");
    LOAD(easy_cleanup, "curl_easy_cleanup");
    LOAD(easy_getinfo, "curl_easy_getinfo");
    LOAD(easy_strerror, "curl_easy_strerror");
    LOAD(slist_append, "curl_slist_append");
    LOAD(slist_free_all, "curl_slist_free_all");
    if (api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    api.loaded = 1;
    return 0;
}

void wa_http_global_cleanup(void)
{
    if (api.loaded)
        api.global_cleanup();
    api.loaded = 0;
}

/* Keeps the first WA_HTTP_ANSWER_MAX bytes of the answer and swallows the
 * rest: a long body must not fail the report (the status is what counts). */
static size_t collect(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct wa_http *h = arg;
    size_t n = size * nmemb;
    size_t room = WA_HTTP_ANSWER_MAX - h->answer_len;
    if (n > room)
        h->answer_truncated = 1;
    size_t take = n < room ? n : room;
    memcpy(h->answer + h->answer_len, ptr, take);
    h->answer_len += take;
    h->answer[h->answer_len] = '\0';
    return n;
}

/* Lets plugin deinit (or server shutdown) interrupt a slow request at once
 * instead of waiting for the transfer timeout. */
static int progress(void *arg, curl_off_t dlt, curl_off_t dln, curl_off_t ult, curl_off_t uln)
{
    (void)dlt;
    (void)dln;
    (void)ult;
    (void)uln;
    const _Atomic int *stop = arg;
    return atomic_load(stop) ? 1 : 0;
}

int wa_http_open(struct wa_http *h, const char *url, const char *token,
                 const _Atomic int *stop)
{
    memset(h, 0, sizeof *h);
    h->stop = stop;
    CURL *c = api.easy_init();
    if (!c)
        return -1;
    h->curl = c;

    char auth[sizeof "Authorization: Bearer " + WA_TOKEN_MAX];
    struct curl_slist *hd = api.slist_append(NULL, "Content-Type: application/json");
    if (hd && token && *token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        struct curl_slist *more = api.slist_append(hd, auth);
        if (!more) {
            api.slist_free_all(hd);
            hd = NULL;
        } else {
            hd = more;
        }
        memset(auth, 0, sizeof auth); /* the token only lives in the list now */
    }
    if (hd) {
        /* no "Expect: 100-continue" round trip */
        struct curl_slist *more = api.slist_append(hd, "Expect:");
        if (more)
            hd = more;
    }
    if (!hd) {
        wa_http_close(h);
        return -1;
    }
    h->headers = hd;

    int bad = 0;
    bad |= api.easy_setopt(c, CURLOPT_URL, url) != CURLE_OK;
    bad |= api.easy_setopt(c, CURLOPT_HTTPHEADER, hd) != CURLE_OK;
    /* libcurl must never raise signals inside mariadbd */
    bad |= api.easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= api.easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)WA_HTTP_CONNECT_TIMEOUT_MS) != CURLE_OK;
    bad |= api.easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)WA_HTTP_TIMEOUT_MS) != CURLE_OK;
    bad |= api.easy_setopt(c, CURLOPT_WRITEFUNCTION, collect) != CURLE_OK;
    bad |= api.easy_setopt(c, CURLOPT_WRITEDATA, (void *)h) != CURLE_OK;
    bad |= api.easy_setopt(c, CURLOPT_NOPROGRESS, 0L) != CURLE_OK;
    bad |= api.easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress) != CURLE_OK;
    bad |= api.easy_setopt(c, CURLOPT_XFERINFODATA, (void *)stop) != CURLE_OK;
    bad |= api.easy_setopt(c, CURLOPT_ERRORBUFFER, h->error) != CURLE_OK;
    bad |= api.easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
    bad |= api.easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
    bad |= api.easy_setopt(c, CURLOPT_USERAGENT, "wake_activity/1.0") != CURLE_OK;
    if (bad) {
        wa_http_close(h);
        return -1;
    }
    return 0;
}

void wa_http_close(struct wa_http *h)
{
    if (h->curl)
        api.easy_cleanup(h->curl);
    if (h->headers)
        api.slist_free_all(h->headers);
    h->curl = NULL;
    h->headers = NULL;
}

long wa_http_post(struct wa_http *h, const char *body, size_t len)
{
    CURL *c = h->curl;
    h->error[0] = '\0';
    h->answer[0] = '\0';
    h->answer_len = 0;
    h->answer_truncated = 0;
    api.easy_setopt(c, CURLOPT_POSTFIELDS, body);
    api.easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    CURLcode rc = api.easy_perform(c);
    if (rc != CURLE_OK) {
        if (!h->error[0])
            snprintf(h->error, sizeof h->error, "%s", api.easy_strerror(rc));
        return 0;
    }
    long status = 0;
    api.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    return status;
}
