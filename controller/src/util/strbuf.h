/* The one growable string buffer of the controller and its CLI.  Zero is
 * an empty buffer ({0}, or with .max set).  A buffer that cannot grow (out
 * of memory, or past max) fails for good: every later call does nothing
 * and returns false, so a caller may check once, at the end. */
#ifndef SMDB_UTIL_STRBUF_H
#define SMDB_UTIL_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *buf;        /* NUL-terminated text (it may hold NULs); NULL until something is added */
    size_t len, cap;
    size_t max;       /* 0: no limit; else the most bytes it may hold */
    bool failed;
} strbuf;

bool sb_add(strbuf *b, const void *data, size_t n);
bool sb_puts(strbuf *b, const char *s);
bool sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The text so far ("" when empty). */
const char *sb_str(const strbuf *b);
/* Hands the text over (malloc'd, "" when empty; NULL if the buffer failed)
 * and leaves b empty. */
char *sb_take(strbuf *b);
void sb_free(strbuf *b);

#endif
