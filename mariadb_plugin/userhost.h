/* The login user name inside the server's "user_host" string.
 *
 * General-class audit events do not carry the user name as such, only the
 * string the server builds for the general log:
 *     priv_user "[" user "] @ " host " [" ip "]"
 * We need it after COM_CHANGE_USER, whose connection-class event in
 * MariaDB 10.11 names the *previous* user; the general STATUS event of the
 * same command names the current one. */
#ifndef WA_USERHOST_H
#define WA_USERHOST_H

#include <stddef.h>

/* Finds `user` in s[0..n).  Host and ip never contain "] @ ", so the last
 * occurrence ends the user name; where it starts is unambiguous when
 * priv_user equals user (a plain account) or is empty (anonymous or proxied
 * account), otherwise the first '[' is taken.  Returns 0, or -1 when the
 * string does not have that shape. */
int wa_user_from_user_host(const char *s, size_t n, const char **user, size_t *len);

#endif
