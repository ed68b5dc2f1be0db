/* Parse the server's user_host string (see userhost.h). */
#include "userhost.h"

#include <string.h>

int wa_user_from_user_host(const char *s, size_t n, const char **user, size_t *len)
{
    static const char sep[] = "] @ ";
    const size_t seplen = sizeof sep - 1;
    if (!s || n < seplen + 1)
        return -1;

    size_t end = (size_t)-1; /* index of the last "] @ " */
    for (size_t i = n - seplen + 1; i-- > 0;)
        if (memcmp(s + i, sep, seplen) == 0) {
            end = i;
            break;
        }
    if (end == (size_t)-1)
        return -1;

    /* plain account: "u[u] @ ..." */
    if (end % 2 == 1) {
        size_t ulen = (end - 1) / 2;
        if (s[ulen] == '[' && memcmp(s, s + ulen + 1, ulen) == 0) {
            *user = s + ulen + 1;
            *len = ulen;
            return 0;
        }
    }
    const char *open = memchr(s, '[', end);
    if (!open)
        return -1;
    *user = open + 1;
    *len = (size_t)(s + end - (open + 1));
    return 0;
}
