/* The set of admin user names whose sessions never count as activity
 * (the controller's health checks and metric reads).  Parsed once at plugin
 * start from a comma-separated list into fixed storage, so the hook compares
 * against it without locks or allocation. */
#ifndef WA_USERLIST_H
#define WA_USERLIST_H

#include <stddef.h>

#define WA_USERLIST_MAX 8
#define WA_USER_MAX 128 /* MariaDB's user name limit in characters */

struct wa_userlist {
    unsigned n;
    unsigned len[WA_USERLIST_MAX];
    char name[WA_USERLIST_MAX][WA_USER_MAX * 4 + 1]; /* utf8mb4 bytes */
};

/* "root, ctl" -> {"root","ctl"}; blanks around names are dropped, empty
 * items skipped.  Returns 0, or -1 when there are too many names or one is
 * too long. */
int wa_userlist_parse(struct wa_userlist *l, const char *spec);

/* Exact, case-sensitive match (MariaDB user names are case-sensitive). */
int wa_userlist_contains(const struct wa_userlist *l, const char *user, size_t len);

#endif
