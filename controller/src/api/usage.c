/* GET /api/v1/projects/{id}/usage?from=&to=[&detail=0]
 *
 * Served from Redis (the ledger is for billing systems, not for this API),
 * so it works without PostgreSQL and shows events the ledger has not
 * received yet: the events still in the project's usage index (exact
 * clipping), plus the hourly buckets of retired ones (billing/usage.h).
 * docs/billing.md has the answer's shape and the clipping rule. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers.h"
#include "billing/usage.h"
#include "store/store.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/rfc3339.h"
#include "util/strbuf.h"

#define DEFAULT_RANGE_MS (30LL * 86400 * 1000)
#define MAX_RANGE_MS (366LL * 86400 * 1000)

/* A '+' written unencoded in a query string ("...T10:00:00+02:00") reaches
 * us as a space: a space after the time of day can only have been the
 * offset's sign, so take it back (the date/time separator is at 10). */
static int parse_time(const char *s, int64_t *ms)
{
    char buf[64];
    char *sp;

    if (strlen(s) >= sizeof(buf))
        return -1;
    strcpy(buf, s);
    sp = strrchr(buf, ' ');
    if (sp && sp - buf > 10)
        *sp = '+';
    return rfc3339_parse(buf, ms);
}

/* from/to: RFC 3339, both optional; answers 400 itself. */
static int parse_range(api_req *r, int64_t *from, int64_t *to)
{
    const char *f = api_query(r, "from"), *t = api_query(r, "to");
    char msg[200];

    *to = now_ms();
    if (t && parse_time(t, to) < 0) {
        snprintf(msg, sizeof(msg), "\"to\" is not an RFC 3339 time (e.g. 2024-11-01T00:00:00Z): \"%.64s\"", t);
        api_error(r, 400, "invalid_time", msg);
        return -1;
    }
    *from = *to - DEFAULT_RANGE_MS;
    if (f && parse_time(f, from) < 0) {
        snprintf(msg, sizeof(msg), "\"from\" is not an RFC 3339 time (e.g. 2024-11-01T00:00:00Z): \"%.64s\"", f);
        api_error(r, 400, "invalid_time", msg);
        return -1;
    }
    if (*from > *to) {
        api_error(r, 400, "invalid_range", "\"from\" is after \"to\"");
        return -1;
    }
    if (*to - *from > MAX_RANGE_MS) {
        api_error(r, 400, "range_too_large", "the range may span at most 366 days");
        return -1;
    }
    return 0;
}

static int parse_detail(api_req *r, bool *detail)
{
    const char *d = api_query(r, "detail");

    *detail = true;
    if (d == NULL || strcmp(d, "1") == 0 || strcmp(d, "true") == 0)
        return 0;
    if (strcmp(d, "0") == 0 || strcmp(d, "false") == 0) {
        *detail = false;
        return 0;
    }
    api_error(r, 400, "invalid_parameter", "\"detail\" must be 1, 0, true or false");
    return -1;
}

/* 0 the project exists or has usage recorded (a deleted project's usage
 * stays queryable); answers 404/503 itself. */
static int project_known(api_req *r, const char *id, project_rec *p)
{
    int rc = store_project_get(id, p);
    int n;

    if (rc == 0)
        return 0;
    if (rc < 0) {
        api_error(r, 503, "store_unavailable", "state store unavailable");
        return -1;
    }
    n = store_usage_known(id);
    if (n < 0) {
        api_error(r, 503, "store_unavailable", "state store unavailable");
        return -1;
    }
    if (n == 0) {
        api_error(r, 404, "unknown_project", "unknown project");
        return -1;
    }
    return 0;
}

/* The intervals still open on the project's compute: not billed yet, shown
 * so that "usage so far" is visible before the next split. */
static json_t *open_intervals(const project_rec *p)
{
    json_t *arr = json_array();
    compute_rec c;

    if (p->compute_id[0] == '\0' || store_compute_get(p->compute_id, &c) != 0)
        return arr;
    if (c.meter_since_ms > 0)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:I}", "kind", "compute",
                                             "compute_id", p->compute_id, "start_ms",
                                             (json_int_t)c.meter_since_ms, "cu",
                                             (json_int_t)(c.size_cu > 0 ? c.size_cu : 1)));
    if (c.storage_since_ms > 0 && c.storage_bytes >= 0)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:I}", "kind", "storage",
                                             "compute_id", p->compute_id, "start_ms",
                                             (json_int_t)c.storage_since_ms, "bytes",
                                             (json_int_t)c.storage_bytes));
    return arr;
}

/* The stored event as it is, with its share of the range added: the text
 * is copied, not re-serialised (a busy month is ~40,000 events). */
static void add_item(strbuf *t, const char *ev, size_t n, double frac)
{
    char tail[48];

    while (n > 0 && ev[n - 1] != '}')
        n--;
    if (n == 0)
        return;
    if (t->len > 1)
        sb_add(t, ",", 1);
    sb_add(t, ev, n - 1);
    snprintf(tail, sizeof(tail), ",\"fraction\":%.17g}", frac);
    sb_add(t, tail, strlen(tail));
}

typedef struct {
    const char *project;
    int64_t from, to, h0;
    usage_totals *tot;
} bucket_walk;

static void add_bucket(int64_t hour, const char *v, size_t len, void *arg)
{
    bucket_walk *w = arg;
    usage_bucket b;

    if (usage_bucket_parse(v, len, hour, &b) < 0) {
        log_error("usage of %s, hour %lld: not a bucket: %.80s", w->project, (long long)hour, v);
        return;
    }
    usage_bucket_add(w->tot, &b, w->from, w->to, hour == w->h0);
}

/* Adds the hourly buckets of retired events that overlap [from, to).
 * -1 Redis failed. */
static int add_buckets(const char *id, int64_t from, int64_t to, usage_totals *tot)
{
    bucket_walk w = {id, from, to, from / USAGE_HOUR_MS, tot};

    if (to <= from)
        return 0;
    return store_usage_hours(id, w.h0, (to - 1) / USAGE_HOUR_MS, add_bucket, &w);
}

typedef struct {
    int64_t from, to;
    bool detail;
    usage_totals *tot;
    strbuf *items;
} event_walk;

static void add_event(const char *ev, size_t n, void *arg)
{
    event_walk *w = arg;
    usage_event e;
    double frac;

    if (usage_event_scan(ev, n, &e) < 0) {
        /* not the flat shape we write: let the full parser judge */
        json_t *j = json_loadb(ev, n, 0, NULL);
        int bad = j == NULL || usage_event_from_json(j, &e) < 0;
        json_decref(j);
        if (bad)
            return;
    }
    if ((frac = usage_fraction(&e, w->from, w->to)) <= 0.0)
        return;
    usage_add(w->tot, &e, frac);
    if (w->detail)
        add_item(w->items, ev, n, frac);
}

void h_usage(api_req *r, const char *id)
{
    int64_t from, to;
    bool detail;
    project_rec p;
    char tf[32], tt[32], *head;
    usage_totals tot = {0};
    strbuf items = {0}, out = {0};
    event_walk w = {0, 0, false, &tot, &items};
    json_t *doc;

    if (!project_id_valid(id))
        return api_error(r, 400, "invalid_project_id", "invalid project id");
    if (parse_range(r, &from, &to) < 0 || parse_detail(r, &detail) < 0 ||
        project_known(r, id, &p) < 0)
        return;

    /* every event overlapping [from, to) starts in [midnight before from, to) */
    w.from = from;
    w.to = to;
    w.detail = detail;
    sb_add(&items, "[", 1);
    if (store_usage_events(id, USAGE_SCAN_FROM(from), to, add_event, &w) < 0) {
        sb_free(&items);
        return api_error(r, 503, "store_unavailable", "state store unavailable");
    }
    sb_add(&items, "]", 1);
    if (add_buckets(id, from, to, &tot) < 0) {
        sb_free(&items);
        return api_error(r, 503, "store_unavailable", "state store unavailable");
    }
    if (tot.overflow) {
        sb_free(&items);
        return api_error(r, 500, "overflow", "a usage total exceeds 64 bits");
    }

    rfc3339_format(from, tf, sizeof(tf));
    rfc3339_format(to, tt, sizeof(tt));
    doc = json_pack("{s:s, s:s, s:s, s:I, s:I, s:{s:f, s:f, s:f, s:I, s:I, s:I}, s:b, s:o}",
                    "project", id, "from", tf, "to", tt, "from_ms", (json_int_t)from, "to_ms",
                    (json_int_t)to, "totals", "compute_seconds", tot.compute_seconds,
                    "cu_seconds", tot.cu_seconds, "storage_byte_seconds",
                    tot.storage_byte_seconds, "bytes_in", (json_int_t)tot.bytes_in, "bytes_out",
                    (json_int_t)tot.bytes_out, "events", (json_int_t)tot.events, "exact",
                    !tot.inexact, "open",
                    open_intervals(&p));
    head = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (head == NULL || items.failed) {
        free(head);
        sb_free(&items);
        return api_error(r, 500, "internal", "out of memory");
    }
    /* {...head...,"intervals":[...]} */
    sb_add(&out, head, strlen(head) - 1);
    if (detail) {
        static const char key[] = ",\"intervals\":";
        sb_add(&out, key, sizeof(key) - 1);
        sb_add(&out, sb_str(&items), items.len);
    }
    sb_add(&out, "}", 1);
    free(head);
    sb_free(&items);
    if (out.failed) {
        sb_free(&out);
        return api_error(r, 500, "internal", "out of memory");
    }
    r->status = 200;
    free(r->out);
    r->out = sb_take(&out);
    r->content_type = "application/json";
}
