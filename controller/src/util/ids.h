/* Identifiers, secrets and clocks: pure helpers, unit-tested. */
#ifndef SMDB_IDS_H
#define SMDB_IDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROJECT_ID_MAX 63
#define COMPUTE_ID_MAX 80

/* A project id is ^[a-z0-9-]{1,63}$: the DNS-label alphabet, so that it is
 * safe in a Redis key, a file path, a URL and a Kubernetes object name. */
bool project_id_valid(const char *s);
bool compute_id_valid(const char *s);

/* Fills buf with n random characters of [a-zA-Z0-9] and a NUL. 0 or -1. */
int random_alnum(char *buf, size_t n);
/* Fills buf with 2*nbytes lowercase hex digits and a NUL. */
int random_hex(char *buf, size_t nbytes);

/* Lowercase hex SHA-256 of s into out[65]. */
void sha256_hex(const char *s, char out[65]);
/* Constant-time comparison of two NUL-terminated strings. */
bool secret_equal(const char *a, const char *b);

int64_t now_ms(void);
int64_t mono_ms(void);

/* Frees a NULL-terminated array of strings (a list of ids). */
void ids_free(char **ids);

#endif
