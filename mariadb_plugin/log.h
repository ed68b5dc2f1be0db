/* Messages to the server's error log.
 *
 * mariadbd's stderr is its error log.  Writing there directly (one write()
 * per line, in the server's own line format) works from any thread, while
 * the server's logging service expects a server thread; the reporter thread
 * is not one. */
#ifndef WA_LOG_H
#define WA_LOG_H

#if defined(__GNUC__)
#define WA_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define WA_PRINTF(a, b)
#endif

void wa_log_note(const char *fmt, ...) WA_PRINTF(1, 2);
void wa_log_warning(const char *fmt, ...) WA_PRINTF(1, 2);
void wa_log_error(const char *fmt, ...) WA_PRINTF(1, 2);

#endif
