/* Admin user list (see userlist.h). */
#include "userlist.h"

#include <string.h>

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

int wa_userlist_parse(struct wa_userlist *l, const char *spec)
{
    l->n = 0;
    if (!spec)
        return 0;
    const char *p = spec;
    while (*p) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && is_blank(*a))
            a++;
        while (b > a && is_blank(b[-1]))
            b--;
        size_t len = (size_t)(b - a);
        if (len > 0) {
            if (l->n == WA_USERLIST_MAX || len >= sizeof l->name[0])
                return -1;
            memcpy(l->name[l->n], a, len);
            l->name[l->n][len] = '\0';
            l->len[l->n] = (unsigned)len;
            l->n++;
        }
        p = *end ? end + 1 : end;
    }
    return 0;
}

int wa_userlist_contains(const struct wa_userlist *l, const char *user, size_t len)
{
    for (unsigned i = 0; i < l->n; i++)
        if (l->len[i] == len && memcmp(l->name[i], user, len) == 0)
            return 1;
    return 0;
}
