/* Time sources.  Reports carry wall-clock Unix milliseconds (the contract in
 * docs/interfaces.md); scheduling uses the monotonic clock so a wall-clock
 * step never stalls or floods the reporter. */
#ifndef WA_CLOCK_H
#define WA_CLOCK_H

#include <stdint.h>

int64_t wa_wall_ms(void);
/* vDSO coarse clock (a few ms resolution): cheap enough for every query */
int64_t wa_wall_coarse_ms(void);
int64_t wa_mono_ms(void);
int64_t wa_boot_ms(void); /* CLOCK_BOOTTIME: counts suspend, like /proc */

/* Field `field` (3.., numbered as in proc(5)) of a /proc/<pid>/stat line as
 * an unsigned number.  The command name (field 2) may contain blanks and
 * ')', so parsing starts after the last ')'.  Returns 0 or -1. */
int wa_parse_stat_field(const char *line, int field, unsigned long long *v);
/* Field 22 (starttime, clock ticks after boot).  Returns 0 or -1. */
int wa_parse_stat_starttime(const char *line, unsigned long long *ticks);
/* Fields 14 + 15 (utime + stime, clock ticks).  Returns 0 or -1. */
int wa_parse_stat_cpu(const char *line, unsigned long long *ticks);

/* When this process (mariadbd) started, on the CLOCK_BOOTTIME scale, in ms;
 * -1 if /proc is unavailable.  uptime_s in reports is measured from here so
 * that it keeps growing across UNINSTALL/INSTALL SONAME of the plugin. */
int64_t wa_process_start_boot_ms(void);

/* CPU time (user + system) this process (mariadbd, all its threads) used,
 * in ms; -1 if /proc is unavailable.  /proc/self works inside a container
 * too, where cgroup files may be hidden or shared. */
int64_t wa_process_cpu_ms(void);

#endif
