/* Settings validation (see config.h). */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

int wa_valid_compute_id(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return 0;
    }
    return n >= 1 && n <= WA_COMPUTE_ID_MAX;
}

static int visible_ascii(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n]; n++)
        if ((unsigned char)s[n] <= 0x20 || (unsigned char)s[n] >= 0x7f)
            return 0;
    return n >= 1 && n <= max;
}

int wa_valid_token(const char *s)
{
    return visible_ascii(s, WA_TOKEN_MAX);
}

int wa_valid_url(const char *s)
{
    if (strncasecmp(s, "http://", 7) != 0 && strncasecmp(s, "https://", 8) != 0)
        return 0;
    return visible_ascii(s, WA_URL_MAX) && strlen(s) > (s[4] == ':' ? 7u : 8u);
}

int wa_report_url(char *out, unsigned long cap, const char *url, const char *compute_id)
{
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    const char *path = strchr(host, '/');
    int n;
    if (!path || strcmp(path, "/") == 0) {
        size_t base = path ? (size_t)(path - url) : strlen(url);
        n = snprintf(out, cap, "%.*s/api/v1/compute/%s/activity", (int)base, url, compute_id);
    } else {
        n = snprintf(out, cap, "%s", url);
    }
    return n < 0 || (unsigned long)n >= cap ? -1 : 0;
}
