#include "billing/usage.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static double num(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);

    return json_is_number(v) ? json_number_value(v) : 0.0;
}

/* A time in ms that converts to int64_t (the cast of anything else is
 * undefined): up to the year 9999 and no earlier than 1970. */
static bool time_ok(double ms)
{
    return ms >= 0 && ms < 253402300800000.0;
}

int usage_event_from_json(const json_t *ev, usage_event *out)
{
    const char *kind = json_string_value(json_object_get(ev, "kind"));
    const json_t *s = json_object_get(ev, "start_ms"), *e = json_object_get(ev, "end_ms");

    memset(out, 0, sizeof(*out));
    if (kind == NULL || !json_is_number(s) || !json_is_number(e) ||
        !time_ok(json_number_value(s)) || !time_ok(json_number_value(e)))
        return -1;
    if (strcmp(kind, "compute") == 0)
        out->kind = EV_COMPUTE;
    else if (strcmp(kind, "storage") == 0)
        out->kind = EV_STORAGE;
    else if (strcmp(kind, "transfer") == 0)
        out->kind = EV_TRANSFER;
    else
        return -1;
    /* the metering scripts write integers, but Lua's cjson may render a
     * large one in exponent form, which jansson reads as a real */
    out->start_ms = (int64_t)json_number_value(s);
    out->end_ms = (int64_t)json_number_value(e);
    if (out->end_ms < out->start_ms)
        return -1;
    out->seconds = num(ev, "seconds");
    out->cu_seconds = num(ev, "cu_seconds");
    out->byte_seconds = num(ev, "byte_seconds");
    out->bytes_in = (long long)num(ev, "bytes_in");
    out->bytes_out = (long long)num(ev, "bytes_out");
    return 0;
}

/* --- the fast path: a scanner for flat JSON objects ---------------------- */

typedef struct {
    const char *p, *end;
} cursor;

static void ws(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static bool eat(cursor *c, char ch)
{
    ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

/* A string at c->p (after the quote): its raw text, escapes left as they
 * are (the fields we compare never contain any).  Plain ASCII and the
 * one-character escapes only: anything else (\u escapes, UTF-8) is left to
 * jansson, which validates it. */
static bool string_tok(cursor *c, const char **s, size_t *n)
{
    const char *start = c->p;

    while (c->p < c->end && *c->p != '"') {
        unsigned char ch = (unsigned char)*c->p;
        if (ch < 0x20 || ch >= 0x80)
            return false;
        if (ch == '\\') {
            if (++c->p == c->end || strchr("\"\\/bfnrt", *c->p) == NULL || *c->p == '\0')
                return false;
        }
        c->p++;
    }
    if (c->p == c->end)
        return false;
    *s = start;
    *n = (size_t)(c->p - start);
    c->p++;
    return true;
}

static size_t digits(const char *p, const char *end)
{
    size_t n = 0;

    while (p + n < end && p[n] >= '0' && p[n] <= '9')
        n++;
    return n;
}

/* A JSON number, by the grammar (strtod alone would take "1e", "0x10",
 * "inf"), and finite. */
static bool number_tok(cursor *c, double *v)
{
    const char *p = c->p, *end = c->end;
    char buf[48], *e;
    size_t n;

    if (p < end && *p == '-')
        p++;
    if ((n = digits(p, end)) == 0 || (*p == '0' && n > 1))
        return false;
    p += n;
    if (p < end && *p == '.') {
        if ((n = digits(++p, end)) == 0)
            return false;
        p += n;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if ((n = digits(p, end)) == 0)
            return false;
        p += n;
    }
    n = (size_t)(p - c->p);
    if (n >= sizeof(buf))
        return false;
    memcpy(buf, c->p, n);
    buf[n] = '\0';
    *v = strtod(buf, &e);
    if (e != buf + n || !isfinite(*v))
        return false;
    c->p = p;
    return true;
}

static bool literal(cursor *c, const char *word)
{
    size_t n = strlen(word);

    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
        return false;
    c->p += n;
    return true;
}

static bool key_is(const char *k, size_t n, const char *want)
{
    return strlen(want) == n && memcmp(k, want, n) == 0;
}

int usage_event_scan(const char *text, size_t len, usage_event *out)
{
    cursor c = {text, text + len};
    bool have_kind = false, have_start = false, have_end = false;
    double start = 0, end = 0;

    memset(out, 0, sizeof(*out));
    if (!eat(&c, '{'))
        return -1;
    if (!eat(&c, '}')) {
        do {
            const char *k, *sv = NULL;
            size_t kn, sn = 0;
            double v = 0;
            bool is_num = false;

            if (!eat(&c, '"') || !string_tok(&c, &k, &kn) || !eat(&c, ':'))
                return -1;
            ws(&c);
            if (c.p == c.end)
                return -1;
            if (*c.p == '"') {
                c.p++;
                if (!string_tok(&c, &sv, &sn))
                    return -1;
            } else if (*c.p == '-' || (*c.p >= '0' && *c.p <= '9')) {
                if (!number_tok(&c, &v))
                    return -1;
                is_num = true;
            } else if (!literal(&c, "null") && !literal(&c, "true") && !literal(&c, "false")) {
                return -1;   /* nested object or array: not one of ours */
            }
            if (key_is(k, kn, "kind")) {
                if (sv == NULL)
                    return -1;
                if (key_is(sv, sn, "compute"))
                    out->kind = EV_COMPUTE;
                else if (key_is(sv, sn, "storage"))
                    out->kind = EV_STORAGE;
                else if (key_is(sv, sn, "transfer"))
                    out->kind = EV_TRANSFER;
                else
                    return -1;
                have_kind = true;
            } else if (is_num) {
                if (key_is(k, kn, "start_ms")) {
                    start = v;
                    have_start = true;
                } else if (key_is(k, kn, "end_ms")) {
                    end = v;
                    have_end = true;
                } else if (key_is(k, kn, "seconds")) {
                    out->seconds = v;
                } else if (key_is(k, kn, "cu_seconds")) {
                    out->cu_seconds = v;
                } else if (key_is(k, kn, "byte_seconds")) {
                    out->byte_seconds = v;
                } else if (key_is(k, kn, "bytes_in")) {
                    out->bytes_in = (long long)v;
                } else if (key_is(k, kn, "bytes_out")) {
                    out->bytes_out = (long long)v;
                }
            } else if (key_is(k, kn, "start_ms") || key_is(k, kn, "end_ms")) {
                return -1;
            }
        } while (eat(&c, ','));
        if (!eat(&c, '}'))
            return -1;
    }
    ws(&c);
    if (c.p != c.end || !have_kind || !have_start || !have_end || !time_ok(start) ||
        !time_ok(end))
        return -1;
    out->start_ms = (int64_t)start;
    out->end_ms = (int64_t)end;
    return out->end_ms < out->start_ms ? -1 : 0;
}

double usage_fraction(const usage_event *ev, int64_t from, int64_t to)
{
    int64_t lo, hi;

    if (to <= from)
        return 0.0;
    if (ev->kind == EV_TRANSFER || ev->end_ms == ev->start_ms) {
        int64_t at = ev->kind == EV_TRANSFER ? ev->end_ms : ev->start_ms;
        return at >= from && at < to ? 1.0 : 0.0;
    }
    lo = ev->start_ms > from ? ev->start_ms : from;
    hi = ev->end_ms < to ? ev->end_ms : to;
    if (hi <= lo)
        return 0.0;
    if (lo == ev->start_ms && hi == ev->end_ms)
        return 1.0;   /* exactly, not (hi - lo) / len rounded */
    return (double)(hi - lo) / (double)(ev->end_ms - ev->start_ms);
}

static void add_ll(usage_totals *t, long long *sum, long long v)
{
    if (__builtin_add_overflow(*sum, v, sum))
        t->overflow = true;
}

void usage_add(usage_totals *t, const usage_event *ev, double fraction)
{
    if (fraction <= 0.0)
        return;
    add_ll(t, &t->events, 1);
    switch (ev->kind) {
    case EV_COMPUTE:
        t->compute_seconds += ev->seconds * fraction;
        t->cu_seconds += ev->cu_seconds * fraction;
        break;
    case EV_STORAGE:
        t->storage_byte_seconds += ev->byte_seconds * fraction;
        break;
    case EV_TRANSFER:
        add_ll(t, &t->bytes_in, ev->bytes_in);
        add_ll(t, &t->bytes_out, ev->bytes_out);
        break;
    }
}

/* --- hourly buckets ------------------------------------------------------ */

/* A non-negative integer below 2^53 (what the Lua side can write exactly). */
static bool bucket_int(const char **p, const char *end, long long *out)
{
    long long v = 0;
    int n = 0;

    while (*p < end && **p == ' ')
        (*p)++;
    if (*p < end && **p == '-' && *p + 1 < end && (*p)[1] == '1') {
        /* lo/hi of a bucket without intervals: -1 */
        *p += 2;
        *out = -1;
        return *p == end || **p == ' ';
    }
    for (; *p < end && **p >= '0' && **p <= '9'; (*p)++, n++) {
        if (n >= 16)
            return false;
        v = v * 10 + (**p - '0');
    }
    if (n == 0 || v > (1LL << 53) || (*p < end && **p != ' '))
        return false;
    *out = v;
    return true;
}

int usage_bucket_parse(const char *s, size_t len, int64_t hour, usage_bucket *out)
{
    const char *p = s, *end = s + len;
    long long *ints[] = {&out->n, &out->c, &out->compute_ms, &out->cu_ms};
    long long lo, hi;
    char num[48], *e;
    size_t k = 0;

    memset(out, 0, sizeof(*out));
    out->hour = hour;
    for (int i = 0; i < 4; i++)
        if (!bucket_int(&p, end, ints[i]) || *ints[i] < 0)
            return -1;
    while (p < end && *p == ' ')
        p++;
    while (p < end && *p != ' ' && k + 1 < sizeof(num))
        num[k++] = *p++;
    num[k] = '\0';
    out->byte_seconds = strtod(num, &e);
    if (k == 0 || *e != '\0' || !isfinite(out->byte_seconds) || out->byte_seconds < 0)
        return -1;
    if (!bucket_int(&p, end, &out->bytes_in) || !bucket_int(&p, end, &out->bytes_out) ||
        out->bytes_in < 0 || out->bytes_out < 0 || !bucket_int(&p, end, &lo) ||
        !bucket_int(&p, end, &hi) || p != end)
        return -1;
    out->lo = lo;
    out->hi = hi;
    /* a transfer at the hour's last ms spans [end, end + 1): hi may be the
     * next hour's start */
    if (lo < 0 ? hi >= 0 : (lo < hour * USAGE_HOUR_MS || hi <= lo ||
                             hi > (hour + 1) * USAGE_HOUR_MS + 1))
        return -1;
    return 0;
}

void usage_bucket_add(usage_totals *t, const usage_bucket *b, int64_t from, int64_t to,
                      bool first)
{
    int64_t lo, hi;
    double share;

    if (b->lo < 0 || to <= from)
        return;
    lo = b->lo > from ? b->lo : from;
    hi = b->hi < to ? b->hi : to;
    if (hi <= lo)
        return;
    share = (lo == b->lo && hi == b->hi) ? 1.0 : (double)(hi - lo) / (double)(b->hi - b->lo);
    if (share < 1.0)
        t->inexact = true;
    add_ll(t, &t->events, b->n + (first ? b->c : 0));
    t->compute_seconds += (double)b->compute_ms / 1000.0 * share;
    t->cu_seconds += (double)b->cu_ms / 1000.0 * share;
    t->storage_byte_seconds += b->byte_seconds * share;
    add_ll(t, &t->bytes_in, share == 1.0 ? b->bytes_in : (long long)((double)b->bytes_in * share + 0.5));
    add_ll(t, &t->bytes_out, share == 1.0 ? b->bytes_out : (long long)((double)b->bytes_out * share + 0.5));
}
