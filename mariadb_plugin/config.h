/* Validation of the plugin's settings, done once at plugin start so that a
 * bad my.cnf fails loudly there instead of producing reports the controller
 * rejects forever. */
#ifndef WA_CONFIG_H
#define WA_CONFIG_H

#define WA_URL_MAX 2048
#define WA_TOKEN_MAX 512
#define WA_COMPUTE_ID_MAX 80

/* ^[a-z0-9-]{1,80}$ (docs/interfaces.md) */
int wa_valid_compute_id(const char *s);
/* printable ASCII without blanks: it goes into an HTTP header verbatim, so
 * CR/LF must never get through */
int wa_valid_token(const char *s);
/* http:// or https://, no blanks or control characters */
int wa_valid_url(const char *s);

/* The URL the reporter posts to.  A URL with a path is used as is; a bare
 * controller address ("http://host:port" or ".../") gets the contract's
 * path "/api/v1/compute/<id>/activity" appended, so my.cnf can name either.
 * Returns 0, or -1 if it does not fit in cap. */
int wa_report_url(char *out, unsigned long cap, const char *url, const char *compute_id);

#endif
