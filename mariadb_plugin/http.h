/* One reused libcurl handle that POSTs a JSON body with a bearer token.
 * Used only by the reporter thread. */
#ifndef WA_HTTP_H
#define WA_HTTP_H

#include <stdatomic.h>
#include <stddef.h>

#define WA_HTTP_CONNECT_TIMEOUT_MS 1000
#define WA_HTTP_TIMEOUT_MS 2000

/* The controller's answers are small ({"target":{...}}); a longer body is
 * not one of them and is ignored (answer_truncated). */
#define WA_HTTP_ANSWER_MAX 4096

struct wa_http {
    void *curl;   /* CURL * */
    void *headers; /* struct curl_slist * */
    const _Atomic int *stop; /* set: abort a transfer in flight */
    char error[256];
    /* body of the last answer, NUL-terminated */
    char answer[WA_HTTP_ANSWER_MAX + 1];
    size_t answer_len;
    int answer_truncated;
};

/* Loads and sets up libcurl (dlopen); call from the reporter thread before
 * the first wa_http_open.  Cleanup from plugin deinit, after the join. */
int wa_http_global_init(void);
void wa_http_global_cleanup(void);

/* token may be empty (no Authorization header then). 0 or -1. */
int wa_http_open(struct wa_http *h, const char *url, const char *token,
                 const _Atomic int *stop);
void wa_http_close(struct wa_http *h);

/* Returns the HTTP status (2xx = accepted), or 0 when no response came
 * (refused, timeout, aborted); h->error then says why.  The answer's body
 * is in h->answer. */
long wa_http_post(struct wa_http *h, const char *body, size_t len);

#endif
