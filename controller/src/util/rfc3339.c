#include "util/rfc3339.h"

#include <stdbool.h>
#include <stdio.h>

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    return m == 2 && leap(y) ? 29 : d[m - 1];
}

/* Leap years in [1, y] (proleptic Gregorian). */
static int64_t leaps_through(int64_t y)
{
    return y / 4 - y / 100 + y / 400;
}

/* Days from 1970-01-01 to y-m-d (y >= 1970). */
static int64_t days_since_epoch(int y, int m, int d)
{
    int64_t days = 365 * (int64_t)(y - 1970) + leaps_through(y - 1) - leaps_through(1969);

    for (int i = 1; i < m; i++)
        days += month_days(y, i);
    return days + d - 1;
}

/* Exactly n decimal digits at *p; advances *p. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool lit(const char **p, char c)
{
    if (**p != c)
        return false;
    (*p)++;
    return true;
}

int rfc3339_parse(const char *s, int64_t *ms)
{
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, frac_ms = 0, off_min = 0;

    if (s == NULL)
        return -1;
    if (!digits(&p, 4, &y) || !lit(&p, '-') || !digits(&p, 2, &mo) || !lit(&p, '-') ||
        !digits(&p, 2, &d))
        return -1;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo))
        return -1;
    if (*p != '\0') {
        if (*p != 'T' && *p != 't' && *p != ' ')
            return -1;
        p++;
        if (!digits(&p, 2, &h) || !lit(&p, ':') || !digits(&p, 2, &mi) || !lit(&p, ':') ||
            !digits(&p, 2, &sec))
            return -1;
        /* 60 is a leap second: it lands on the next minute's first second */
        if (h > 23 || mi > 59 || sec > 60)
            return -1;
        if (*p == '.') {
            int n = 0;
            p++;
            for (; *p >= '0' && *p <= '9'; p++, n++)
                if (n < 3)
                    frac_ms = frac_ms * 10 + (*p - '0');
            if (n == 0)
                return -1;
            for (; n < 3; n++)
                frac_ms *= 10;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p == '-' ? -1 : 1, oh, om;
            p++;
            if (!digits(&p, 2, &oh) || !lit(&p, ':') || !digits(&p, 2, &om) || oh > 23 ||
                om > 59)
                return -1;
            off_min = sign * (oh * 60 + om);
        } else {
            return -1;
        }
        if (*p != '\0')
            return -1;
    }
    {
        int64_t t = days_since_epoch(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec -
                    (int64_t)off_min * 60;
        if (t < 0)
            return -1;
        *ms = t * 1000 + frac_ms;
    }
    return 0;
}

void rfc3339_format(int64_t ms, char *out, size_t outlen)
{
    int64_t secs = ms / 1000, days = secs / 86400, rem = secs % 86400;
    int y = 1970, m = 1;

    for (;;) {
        int yl = leap(y) ? 366 : 365;
        if (days < yl)
            break;
        days -= yl;
        y++;
    }
    while (days >= month_days(y, m)) {
        days -= month_days(y, m);
        m++;
    }
    snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m, (int)days + 1,
             (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), (int)(ms % 1000));
}
