/* Usage events and the arithmetic of a usage query: which events fall in a
 * range and how much of each counts.  Pure, unit-tested.
 *
 * Three kinds of event (docs/billing.md):
 *   compute   an interval a compute ran, at a size:      seconds, cu_seconds
 *   storage   an interval the datadir held `bytes`:      seconds, byte_seconds
 *   transfer  one proxied session, billed when it ended: bytes_in, bytes_out
 *
 * Interval events (compute, storage) are clipped to the query range: an
 * event half inside counts half.  A transfer event is a point at its end
 * (nginx only knows the byte counts when the session closes): it counts in
 * full if it ended inside the range, not at all otherwise. */
#ifndef SMDB_BILLING_USAGE_H
#define SMDB_BILLING_USAGE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/usage_format.h"

typedef struct {
    int64_t hour;                 /* start_ms / USAGE_HOUR_MS */
    long long n, c, compute_ms, cu_ms, bytes_in, bytes_out;
    double byte_seconds;
    int64_t lo, hi;
} usage_bucket;

typedef enum { EV_COMPUTE, EV_STORAGE, EV_TRANSFER } usage_kind;

typedef struct {
    usage_kind kind;
    int64_t start_ms, end_ms;
    double seconds, cu_seconds, byte_seconds;
    long long bytes_in, bytes_out;
} usage_event;

typedef struct {
    double compute_seconds, cu_seconds, storage_byte_seconds;
    long long bytes_in, bytes_out;
    long long events;
    bool overflow;                /* a sum left int64: the totals are wrong */
    bool inexact;                 /* a bucket had to be pro-rated (usage_bucket_add) */
} usage_totals;

/* Reads the fields of a stored event object. 0, or -1 if it is not one. */
int usage_event_from_json(const json_t *ev, usage_event *out);

/* The same from the event's JSON text, without building a JSON tree: a
 * month of a busy project is tens of thousands of events per query.  It
 * reads flat objects of strings, numbers, booleans and nulls (what the
 * metering scripts write); -1 for anything else, and the caller may fall
 * back to jansson. */
int usage_event_scan(const char *text, size_t len, usage_event *out);

/* The share of ev that lies in [from, to), 0..1 (0: not in the range). */
double usage_fraction(const usage_event *ev, int64_t from, int64_t to);

/* Adds `fraction` of ev to t (transfer events only ever count whole).
 * Integer sums are overflow-checked (t->overflow). */
void usage_add(usage_totals *t, const usage_event *ev, double fraction);

/* Parses a bucket's value.  0, or -1 if it is not one (negative, not
 * integers where integers belong, lo/hi outside the hour). */
int usage_bucket_parse(const char *s, size_t len, int64_t hour, usage_bucket *out);

/* Adds what of bucket b lies in [from, to) to t:
 *   its usage span inside the range: all of it (exact);
 *   outside: nothing;
 *   cut by from or to: the events themselves are gone, so the bucket is
 *   pro-rated over its span and t->inexact is set.
 * `first`: b is the range's first hour (floor(from)): only there do the
 * events carried in from earlier hours count (elsewhere the hour they
 * started in, or the first hour, counted them). */
void usage_bucket_add(usage_totals *t, const usage_bucket *b, int64_t from, int64_t to,
                      bool first);

#endif
