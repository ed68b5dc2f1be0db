#include "util/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for n more bytes and the terminator. */
static bool reserve(strbuf *b, size_t n)
{
    size_t cap;
    char *nb;

    if (b->failed)
        return false;
    if (n > (size_t)-1 / 2 - b->len || (b->max && b->len + n > b->max)) {
        b->failed = true;
        return false;
    }
    if (b->len + n + 1 <= b->cap)
        return true;
    cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
        cap *= 2;
    if ((nb = realloc(b->buf, cap)) == NULL) {
        b->failed = true;
        return false;
    }
    b->buf = nb;
    b->cap = cap;
    return true;
}

bool sb_add(strbuf *b, const void *data, size_t n)
{
    if (!reserve(b, n))
        return false;
    if (n)
        memcpy(b->buf + b->len, data, n);
    b->len += n;
    b->buf[b->len] = '\0';
    return true;
}

bool sb_puts(strbuf *b, const char *s)
{
    return sb_add(b, s, strlen(s));
}

bool sb_printf(strbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return false;
    }
    if (!reserve(b, (size_t)n))
        return false;
    va_start(ap, fmt);
    vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return true;
}

const char *sb_str(const strbuf *b)
{
    return b->buf && !b->failed ? b->buf : "";
}

char *sb_take(strbuf *b)
{
    char *s = b->failed ? NULL : b->buf ? b->buf : strdup("");

    if (b->failed)
        free(b->buf);
    b->buf = NULL;
    b->len = b->cap = 0;
    b->failed = false;
    return s;
}

void sb_free(strbuf *b)
{
    free(b->buf);
    b->buf = NULL;
    b->len = b->cap = 0;
    b->failed = false;
}
