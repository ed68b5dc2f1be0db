/* Time sources (see clock.h). */
#include "clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t wa_wall_ms(void) { return clock_ms(CLOCK_REALTIME); }
int64_t wa_wall_coarse_ms(void) { return clock_ms(CLOCK_REALTIME_COARSE); }
int64_t wa_mono_ms(void) { return clock_ms(CLOCK_MONOTONIC); }
int64_t wa_boot_ms(void) { return clock_ms(CLOCK_BOOTTIME); }

int wa_parse_stat_field(const char *line, int want, unsigned long long *out)
{
    if (want < 3)
        return -1;
    const char *p = strrchr(line, ')');
    if (!p)
        return -1;
    p++;
    if (*p != ' ')
        return -1; /* also: never step past the NUL of "... (comm)" */
    /* after ')' come fields 3.. separated by single blanks */
    for (int field = 3; field < want; field++) {
        p = strchr(p + 1, ' ');
        if (!p)
            return -1;
    }
    if (p[1] < '0' || p[1] > '9')
        return -1; /* strtoull would take a sign (or blanks) */
    char *end;
    unsigned long long v = strtoull(p + 1, &end, 10);
    if (end == p + 1 || (*end != ' ' && *end != '\n' && *end != '\0'))
        return -1;
    *out = v;
    return 0;
}

int wa_parse_stat_starttime(const char *line, unsigned long long *ticks)
{
    return wa_parse_stat_field(line, 22, ticks);
}

int wa_parse_stat_cpu(const char *line, unsigned long long *ticks)
{
    unsigned long long u, s;
    if (wa_parse_stat_field(line, 14, &u) != 0 || wa_parse_stat_field(line, 15, &s) != 0)
        return -1;
    *ticks = u + s;
    return 0;
}

/* One read of /proc/self/stat into buf; 0 or -1. */
static int read_self_stat(char *buf, size_t cap)
{
    FILE *f = fopen("/proc/self/stat", "re");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return 0;
}

int64_t wa_process_start_boot_ms(void)
{
    char buf[1024];
    unsigned long long ticks;
    long hz = sysconf(_SC_CLK_TCK);
    if (read_self_stat(buf, sizeof buf) != 0 || wa_parse_stat_starttime(buf, &ticks) != 0 ||
        hz <= 0)
        return -1;
    return (int64_t)(ticks * 1000ULL / (unsigned long long)hz);
}

int64_t wa_process_cpu_ms(void)
{
    char buf[1024];
    unsigned long long ticks;
    long hz = sysconf(_SC_CLK_TCK);
    if (read_self_stat(buf, sizeof buf) != 0 || wa_parse_stat_cpu(buf, &ticks) != 0 || hz <= 0)
        return -1;
    return (int64_t)(ticks * 1000ULL / (unsigned long long)hz);
}
