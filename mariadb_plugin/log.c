/* Error log lines (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static void emit(const char *level, const char *fmt, va_list ap)
{
    char line[1024];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    /* same shape as the server's own lines: "2024-11-22 16:03:00 0 [Note] ..." */
    int n = snprintf(line, sizeof line, "%04d-%02d-%02d %2d:%02d:%02d 0 [%s] wake_activity: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, level);
    if (n < 0 || (size_t)n >= sizeof line)
        return;
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

#define WA_LOG_FN(name, level)                                                 \
    void name(const char *fmt, ...)                                            \
    {                                                                          \
        va_list ap;                                                            \
        va_start(ap, fmt);                                                     \
        emit(level, fmt, ap);                                                  \
        va_end(ap);                                                            \
    }

WA_LOG_FN(wa_log_note, "Note")
WA_LOG_FN(wa_log_warning, "Warning")
WA_LOG_FN(wa_log_error, "ERROR")
