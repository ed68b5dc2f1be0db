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

int wa_parse_stat_starttime(const char *line, unsigned long long *ticks)
{
    const char *p = strrchr(line, ')');
    if (!p)
        return -1;
    p++;
    /* after ')' come fields 3.. separated by single blanks; we want 22 */
    for (int field = 3; field < 22; field++) {
        p = strchr(p + 1, ' ');
        if (!p)
            return -1;
    }
    char *end;
    unsigned long long v = strtoull(p + 1, &end, 10);
    if (end == p + 1 || (*end != ' ' && *end != '\n' && *end != '\0'))
        return -1;
    *ticks = v;
    return 0;
}

int64_t wa_process_start_boot_ms(void)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "re");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    unsigned long long ticks;
    long hz = sysconf(_SC_CLK_TCK);
    if (wa_parse_stat_starttime(buf, &ticks) != 0 || hz <= 0)
        return -1;
    return (int64_t)(ticks * 1000ULL / (unsigned long long)hz);
}
