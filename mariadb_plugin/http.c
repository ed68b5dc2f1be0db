/* libcurl POST (see http.h). */
#define _GNU_SOURCE /* dladdr, RTLD_NODELETE */
#include "http.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "config.h"

int wa_http_global_init(void)
{
    /* UNINSTALL SONAME unloads this plugin and with it libcurl, which drags
     * in GnuTLS, Kerberos and LDAP libraries that are not built to be
     * unloaded and loaded again in one process.  Pin libcurl: it stays
     * mapped for the life of mariadbd, our own .so still unloads cleanly. */
    Dl_info info;
    if (dladdr((void *)curl_easy_init, &info) && info.dli_fname)
        (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void wa_http_global_cleanup(void)
{
    curl_global_cleanup();
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *arg)
{
    (void)ptr;
    (void)arg;
    return size * nmemb;
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
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    h->curl = c;

    char auth[sizeof "Authorization: Bearer " + WA_TOKEN_MAX];
    struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
    if (hd && token && *token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        struct curl_slist *more = curl_slist_append(hd, auth);
        if (!more) {
            curl_slist_free_all(hd);
            hd = NULL;
        } else {
            hd = more;
        }
        memset(auth, 0, sizeof auth); /* the token only lives in the list now */
    }
    if (hd) {
        /* no "Expect: 100-continue" round trip */
        struct curl_slist *more = curl_slist_append(hd, "Expect:");
        if (more)
            hd = more;
    }
    if (!hd) {
        wa_http_close(h);
        return -1;
    }
    h->headers = hd;

    int bad = 0;
    bad |= curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd) != CURLE_OK;
    /* libcurl must never raise signals inside mariadbd */
    bad |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)WA_HTTP_CONNECT_TIMEOUT_MS) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)WA_HTTP_TIMEOUT_MS) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)stop) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->error) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_USERAGENT, "wake_activity/1.0") != CURLE_OK;
    if (bad) {
        wa_http_close(h);
        return -1;
    }
    return 0;
}

void wa_http_close(struct wa_http *h)
{
    if (h->curl)
        curl_easy_cleanup(h->curl);
    if (h->headers)
        curl_slist_free_all(h->headers);
    h->curl = NULL;
    h->headers = NULL;
}

long wa_http_post(struct wa_http *h, const char *body, size_t len)
{
    CURL *c = h->curl;
    h->error[0] = '\0';
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        if (!h->error[0])
            snprintf(h->error, sizeof h->error, "%s", curl_easy_strerror(rc));
        return 0;
    }
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    return status;
}
