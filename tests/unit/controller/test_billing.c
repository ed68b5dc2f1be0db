/* The pure parts of billing: RFC 3339 times, nginx's syslog transfer
 * lines, and the clipping and summing of usage events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "billing/transfer_line.h"
#include "billing/usage.h"
#include "util/rfc3339.h"

/* --- RFC 3339 ------------------------------------------------------------ */

static int64_t t(const char *s)
{
    int64_t ms = -42;

    assert_int_equal(rfc3339_parse(s, &ms), 0);
    return ms;
}

static void rfc3339_valid(void **st)
{
    (void)st;
    assert_int_equal(t("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(t("2024-11-22T16:25:01Z"), 1732292701000LL);
    assert_int_equal(t("2024-11-22t16:25:01z"), 1732292701000LL);
    assert_int_equal(t("2024-11-22 16:25:01Z"), 1732292701000LL);
    assert_int_equal(t("2024-11-22T16:25:01.5Z"), 1732292701500LL);
    assert_int_equal(t("2024-11-22T16:25:01.123Z"), 1732292701123LL);
    assert_int_equal(t("2024-11-22T16:25:01.123999Z"), 1732292701123LL);   /* truncated */
    assert_int_equal(t("2024-11-22T18:25:01+02:00"), 1732292701000LL);
    assert_int_equal(t("2024-11-22T11:55:01-04:30"), 1732292701000LL);
    assert_int_equal(t("2024-11-22"), 1732233600000LL);                     /* midnight UTC */
    /* leap days, and the century rule both ways */
    assert_int_equal(t("2024-02-29T00:00:00Z"), 1709164800000LL);
    assert_int_equal(t("2000-02-29T00:00:00Z"), 951782400000LL);
    assert_int_equal(t("2024-03-01T00:00:00Z") - t("2024-02-28T00:00:00Z"), 2 * 86400000LL);
    assert_int_equal(t("2023-03-01T00:00:00Z") - t("2023-02-28T00:00:00Z"), 86400000LL);
    /* a leap second is the next minute's first second */
    assert_int_equal(t("2016-12-31T23:59:60Z"), t("2017-01-01T00:00:00Z"));
    assert_int_equal(t("9999-12-31T23:59:59.999Z"), 253402300799999LL);
}

static void rfc3339_invalid(void **st)
{
    static const char *const bad[] = {
        "", "2024", "2024-11", "2024-11-22T", "2024-11-22T16:25Z", "2024-11-22T16:25:01",
        "2024-11-22T16:25:01+0200", "2024-11-22T16:25:01+02", "2024-11-22T16:25:01.Z",
        "2024-13-01T00:00:00Z", "2024-00-01T00:00:00Z", "2024-11-31T00:00:00Z",
        "2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2024-11-22T24:00:00Z",
        "2024-11-22T16:60:00Z", "2024-11-22T16:25:61Z", "2024-11-22T16:25:01Zjunk",
        "2024-11-22X16:25:01Z", "1969-12-31T23:59:59Z", "1970-01-01T00:00:00+00:01",
        "24-11-22T16:25:01Z", "2024-1-22T16:25:01Z", "+2024-11-22T16:25:01Z",
        "2024-11-22T16:25:01+24:00", "2024-11-22T16:25:01 02:00", "now", "1732292701000",
        "2024-11-22T16:25:01.123456789012345678901234567890Z garbage",
    };
    int64_t ms = 7;

    (void)st;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (rfc3339_parse(bad[i], &ms) == 0)
            fail_msg("accepted \"%s\"", bad[i]);
    }
    assert_int_equal(rfc3339_parse(NULL, &ms), -1);
    assert_int_equal(ms, 7);   /* untouched on failure */
}

static void rfc3339_round_trip(void **st)
{
    char buf[32];
    static const int64_t samples[] = {0, 1, 999, 1000, 951782400000LL, 1709164800000LL,
                                      1732292701123LL, 4102444800000LL, 253402300799999LL};

    (void)st;
    rfc3339_format(1732292701123LL, buf, sizeof(buf));
    assert_string_equal(buf, "2024-11-22T16:25:01.123Z");
    rfc3339_format(0, buf, sizeof(buf));
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        rfc3339_format(samples[i], buf, sizeof(buf));
        assert_int_equal(t(buf), samples[i]);
    }
    /* every day boundary of four years, across a leap year */
    for (int64_t d = 19000; d < 19000 + 4 * 366; d++) {
        rfc3339_format(d * 86400000LL + 86399999LL, buf, sizeof(buf));
        assert_int_equal(t(buf), d * 86400000LL + 86399999LL);
    }
}

/* --- nginx transfer lines ---------------------------------------------- */

#define LINE "smdb1 shop shop-0a1b2c 4242 17 1732292701.123 2.500 1234 567890"

static transfer_result parse(const char *s, transfer_rec *out)
{
    return transfer_parse(s, strlen(s), out);
}

static void syslog_valid(void **st)
{
    transfer_rec r;
    char key[256];
    static const char *const framings[] = {
        "<190>Nov 22 16:25:01 host smdb: " LINE,      /* with hostname */
        "<190>Nov 22 16:25:01 smdb: " LINE,           /* nohostname */
        "<190>Nov  2 06:05:01 host smdb: " LINE "\n", /* padded day, trailing newline */
        "<7>Nov 22 16:25:01 h t: " LINE,
        LINE,                                         /* no syslog header */
    };

    (void)st;
    for (size_t i = 0; i < sizeof(framings) / sizeof(framings[0]); i++) {
        assert_int_equal(parse(framings[i], &r), TRANSFER_OK);
        assert_string_equal(r.project, "shop");
        assert_string_equal(r.compute_id, "shop-0a1b2c");
        assert_int_equal(r.pid, 4242);
        assert_int_equal(r.conn, 17);
        assert_int_equal(r.end_ms, 1732292701123LL);
        assert_int_equal(r.start_ms, 1732292701123LL - 2500);
        assert_int_equal(r.bytes_in, 1234);
        assert_int_equal(r.bytes_out, 567890);
    }
    transfer_key(&r, key, sizeof(key));
    assert_string_equal(key, "shop:1732292701123.4242.17:transfer");

    /* no compute known (the wake failed after routing) */
    assert_int_equal(parse("<190>Nov 22 16:25:01 smdb: smdb1 shop - 1 2 10.000 0.000 5 0", &r),
                     TRANSFER_OK);
    assert_string_equal(r.compute_id, "");
    assert_int_equal(r.start_ms, 10000);
    /* no project: a client refused before routing; not billable */
    assert_int_equal(parse("<190>Nov 22 16:25:01 smdb: smdb1 - - 1 2 10.000 0.001 78 99", &r),
                     TRANSFER_UNROUTED);
}

static void syslog_malformed(void **st)
{
    static const char *const bad[] = {
        "",
        "\n",
        "<190>Nov 22 16:25:01 smdb: ",
        "<190>Nov 22 16:25:01 smdb:" LINE,                       /* no space after the tag */
        "<190 Nov 22 16:25:01 smdb: " LINE,
        "<19000>Nov 22 16:25:01 smdb: " LINE,
        "smdb2 shop shop-0a1b2c 4242 17 1732292701.123 2.500 1234 567890", /* other version */
        "smdb1 shop shop-0a1b2c 4242 17 1732292701.123 2.500 1234",        /* field missing */
        "smdb1 shop shop-0a1b2c 4242 17 1732292701.123 2.500 1234 567890 9", /* one too many */
        "smdb1 shop  shop-0a1b2c 4242 17 1732292701.123 2.500 1234 567890",  /* empty field */
        "smdb1 Shop shop-0a1b2c 4242 17 1732292701.123 2.500 1234 567890",   /* bad project */
        "smdb1 sh:op shop-0a1b2c 4242 17 1732292701.123 2.500 1234 567890",
        "smdb1 shop shop_0a1b2c 4242 17 1732292701.123 2.500 1234 567890",   /* bad compute */
        "smdb1 shop shop-0a1b2c -4242 17 1732292701.123 2.500 1234 567890",
        "smdb1 shop shop-0a1b2c 4242 x 1732292701.123 2.500 1234 567890",
        "smdb1 shop shop-0a1b2c 4242 17 1732292701 2.500 1234 567890",      /* $msec w/o ms */
        "smdb1 shop shop-0a1b2c 4242 17 1732292701.12 2.500 1234 567890",
        "smdb1 shop shop-0a1b2c 4242 17 .123 2.500 1234 567890",
        "smdb1 shop shop-0a1b2c 4242 17 1732292701.123 2.5 1234 567890",
        "smdb1 shop shop-0a1b2c 4242 17 1.000 2.500 1234 567890",           /* ends before 0 */
        "smdb1 shop shop-0a1b2c 4242 17 1732292701.123 2.500 12x4 567890",
        "smdb1 shop shop-0a1b2c 4242 17 1732292701.123 2.500 1234 1234567890123456789", /* 19 digits */
        "smdb1 shop shop-0a1b2c 4242 17 1732292701.123 2.500 1234 -1",
        "smdb1 shop shop-0a1b2c 4242 17 1732292701.123 2.500 1234 567890\n\nextra",
        "GET / HTTP/1.1",
        /* out of bounds: more than 1 TiB, int64 overflow, signs, pid 0 */
        "smdb1 shop shop-0a1b2c 4242 17 1732292701.123 2.500 1099511627777 0",
        "smdb1 shop shop-0a1b2c 4242 17 1732292701.123 2.500 0 1099511627777",
        "smdb1 shop shop-0a1b2c 4242 17 1732292701.123 2.500 9223372036854775808 0",
        "smdb1 shop shop-0a1b2c 4242 17 1732292701.123 2.500 99999999999999999999 0",
        "smdb1 shop shop-0a1b2c 4242 17 1732292701.123 2.500 +5 0",
        "smdb1 shop shop-0a1b2c 4242 17 1732292701.123 2.500 5 0x10",
        "smdb1 shop shop-0a1b2c 4242 17 1732292701.123 2.500 5 1e9",
        "smdb1 shop shop-0a1b2c 0 17 1732292701.123 2.500 5 5",
        "smdb1 shop shop-0a1b2c 4194305 17 1732292701.123 2.500 5 5",
        "smdb1 shop shop-0a1b2c 4242 17 1732292701.123 31622400.001 5 5",   /* > 366 days */
        "smdb1 shop shop-0a1b2c 4242 17 100000000001.000 0.000 5 5",         /* year 5138+ */
        "smdb1 shop shop-0a1b2c 4242 17 1732292701.-12 2.500 5 5",
    };
    transfer_rec r;
    char big[3000];

    (void)st;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i], &r) != TRANSFER_MALFORMED)
            fail_msg("accepted \"%s\"", bad[i]);
    }
    /* an embedded NUL, and a line longer than any real one */
    assert_int_equal(transfer_parse("smdb1 shop\0 x", 13, &r), TRANSFER_MALFORMED);
    memset(big, 'a', sizeof(big));
    assert_int_equal(transfer_parse(big, sizeof(big), &r), TRANSFER_MALFORMED);
    /* not NUL-terminated: only len bytes are read */
    memcpy(big, LINE "JUNK", sizeof(LINE) - 1 + 4);
    assert_int_equal(transfer_parse(big, sizeof(LINE) - 1, &r), TRANSFER_OK);
}

/* --- clipping and summing ---------------------------------------------- */

static usage_event compute_ev(int64_t s, int64_t e, int cu)
{
    usage_event ev = {EV_COMPUTE, s, e, (double)(e - s) / 1000.0, (double)(e - s) / 1000.0 * cu,
                      0, 0, 0};
    return ev;
}

static void usage_clipping(void **st)
{
    usage_event c = compute_ev(10000, 70000, 2);
    usage_event x = {EV_TRANSFER, 5000, 9000, 4, 0, 0, 100, 200};
    usage_totals tot = {0};

    (void)st;
    /* inside, outside, touching: [from, to) is half open */
    assert_true(usage_fraction(&c, 0, 100000) == 1.0);
    assert_true(usage_fraction(&c, 10000, 70000) == 1.0);
    assert_true(usage_fraction(&c, 70000, 90000) == 0.0);
    assert_true(usage_fraction(&c, 0, 10000) == 0.0);
    assert_true(usage_fraction(&c, 40000, 40000) == 0.0);
    assert_true(usage_fraction(&c, 50000, 40000) == 0.0);
    /* straddling either end, and a range inside the interval */
    assert_float_equal(usage_fraction(&c, 40000, 100000), 0.5, 1e-12);
    assert_float_equal(usage_fraction(&c, 0, 25000), 0.25, 1e-12);
    assert_float_equal(usage_fraction(&c, 25000, 31000), 0.1, 1e-12);
    /* a transfer is a point at its end */
    assert_true(usage_fraction(&x, 9000, 9001) == 1.0);
    assert_true(usage_fraction(&x, 5000, 9000) == 0.0);
    assert_true(usage_fraction(&x, 6000, 10000) == 1.0);

    usage_add(&tot, &c, usage_fraction(&c, 40000, 100000));
    usage_add(&tot, &x, usage_fraction(&x, 0, 100000));
    usage_add(&tot, &x, usage_fraction(&x, 10000, 100000));   /* 0: not counted */
    assert_float_equal(tot.compute_seconds, 30.0, 1e-9);
    assert_float_equal(tot.cu_seconds, 60.0, 1e-9);
    assert_int_equal(tot.bytes_in, 100);
    assert_int_equal(tot.bytes_out, 200);
    assert_int_equal(tot.events, 2);
}

static void usage_split_sums_to_whole(void **st)
{
    /* splitting a range anywhere never loses or doubles a millisecond */
    usage_event evs[] = {compute_ev(1000, 61000, 1), compute_ev(61000, 121000, 3),
                         compute_ev(121000, 121500, 1)};

    (void)st;
    for (int64_t cut = 0; cut <= 130000; cut += 250) {
        usage_totals a = {0}, b = {0};
        for (size_t i = 0; i < 3; i++) {
            usage_add(&a, &evs[i], usage_fraction(&evs[i], 0, cut));
            usage_add(&b, &evs[i], usage_fraction(&evs[i], cut, 200000));
        }
        assert_float_equal(a.compute_seconds + b.compute_seconds, 120.5, 1e-9);
        assert_float_equal(a.cu_seconds + b.cu_seconds, 60 + 180 + 0.5, 1e-9);
    }
}

static void usage_scan_window(void **st)
{
    /* events never cross a UTC midnight, so one overlapping `from` started
     * at or after the midnight before it */
    int64_t day = USAGE_DAY_MS, from = 19000 * day + 12345;
    usage_event longest = compute_ev(19000 * day, 19001 * day, 1);

    (void)st;
    assert_int_equal(USAGE_SCAN_FROM(from), 19000 * day);
    assert_int_equal(USAGE_SCAN_FROM(19000 * day), 19000 * day);
    assert_true(usage_fraction(&longest, from, from + 1) == 1.0 / (double)day);
    assert_true(longest.start_ms >= USAGE_SCAN_FROM(from));
    /* the day before ends at midnight: not in [from, ...) */
    longest = compute_ev(18999 * day, 19000 * day, 1);
    assert_true(usage_fraction(&longest, from, from + day) == 0.0);
}

static void usage_from_json(void **st)
{
    usage_event e;
    json_t *j;

    (void)st;
    /* what the metering script writes (cjson), exponent form included */
    j = json_loads("{\"key\":\"p-1:1000:storage\",\"kind\":\"storage\",\"project\":\"p\","
                   "\"compute_id\":\"p-1\",\"start_ms\":1000,\"end_ms\":3.6010e+06,"
                   "\"seconds\":3600,\"bytes\":1.5e+15,\"byte_seconds\":5.4e+18}", 0, NULL);
    assert_non_null(j);
    assert_int_equal(usage_event_from_json(j, &e), 0);
    assert_int_equal(e.kind, EV_STORAGE);
    assert_int_equal(e.end_ms, 3601000);
    assert_float_equal(e.byte_seconds, 5.4e18, 1e6);
    json_decref(j);

    j = json_loads("{\"kind\":\"transfer\",\"start_ms\":5,\"end_ms\":9,\"bytes_in\":10,"
                   "\"bytes_out\":20}", 0, NULL);
    assert_int_equal(usage_event_from_json(j, &e), 0);
    assert_int_equal(e.bytes_out, 20);
    json_decref(j);

    static const char *const bad[] = {
        "{\"kind\":\"cpu\",\"start_ms\":1,\"end_ms\":2}",
        "{\"start_ms\":1,\"end_ms\":2}",
        "{\"kind\":\"compute\",\"end_ms\":2}",
        "{\"kind\":\"compute\",\"start_ms\":\"1\",\"end_ms\":2}",
        "{\"kind\":\"compute\",\"start_ms\":3,\"end_ms\":2}",
        "[]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        j = json_loads(bad[i], 0, NULL);
        assert_non_null(j);
        assert_int_equal(usage_event_from_json(j, &e), -1);
        json_decref(j);
    }
}

static void same(const usage_event *a, const usage_event *b)
{
    assert_int_equal(a->kind, b->kind);
    assert_int_equal(a->start_ms, b->start_ms);
    assert_int_equal(a->end_ms, b->end_ms);
    assert_true(a->seconds == b->seconds && a->cu_seconds == b->cu_seconds &&
                a->byte_seconds == b->byte_seconds);
    assert_int_equal(a->bytes_in, b->bytes_in);
    assert_int_equal(a->bytes_out, b->bytes_out);
}

static void usage_scan_agrees_with_jansson(void **st)
{
    static const char *const good[] = {
        /* as Lua's cjson writes them (any key order) */
        "{\"seconds\":1.028,\"cu\":1,\"start_ms\":1795365563259,\"end_ms\":1795365564287,"
        "\"project\":\"p1\",\"cu_seconds\":1.028,\"kind\":\"compute\","
        "\"key\":\"p1-343d2c:1795365563259:compute\",\"compute_id\":\"p1-343d2c\"}",
        "{\"bytes\":1.5e+15,\"seconds\":3600,\"kind\":\"storage\",\"start_ms\":1000,"
        "\"end_ms\":3.601e+06,\"byte_seconds\":5.4e+18,\"key\":\"a\\\"b\"}",
        /* as jansson writes transfers, with a null compute */
        "{\"key\":\"p:9.1.2:transfer\",\"kind\":\"transfer\",\"project\":\"p\","
        "\"compute_id\":null,\"start_ms\":5,\"end_ms\":9,\"seconds\":0.004,"
        "\"bytes_in\":10,\"bytes_out\":20}",
        " { \"kind\" : \"compute\" , \"start_ms\" : -0 , \"end_ms\" : 0 , \"x\" : true } ",
        "{\"kind\":\"compute\",\"start_ms\":1,\"end_ms\":2,\"flag\":false,\"u\":\"\\t/\\/\"}",
    };
    /* valid JSON the scanner leaves to jansson (the API falls back) */
    static const char *const fallback[] = {
        "{\"kind\":\"compute\",\"start_ms\":1,\"end_ms\":2,\"u\":\"\\u00e9\"}",
        "{\"kind\":\"compute\",\"start_ms\":1,\"end_ms\":2,\"u\":\"\xc3\xa9\"}",
    };
    static const char *const bad[] = {
        "", "{", "}", "[]", "{\"kind\":\"compute\",\"start_ms\":1}",
        "{\"kind\":\"compute\",\"start_ms\":1,\"end_ms\":2,\"x\":{\"y\":1}}",
        "{\"kind\":\"compute\",\"start_ms\":1,\"end_ms\":2,\"x\":[1]}",
        "{\"kind\":\"compute\",\"start_ms\":\"1\",\"end_ms\":2}",
        "{\"kind\":\"gpu\",\"start_ms\":1,\"end_ms\":2}",
        "{\"kind\":\"compute\",\"start_ms\":3,\"end_ms\":2}",
        "{\"kind\":\"compute\",\"start_ms\":1,\"end_ms\":2}x",
        "{\"kind\":\"compute\",\"start_ms\":1,\"end_ms\":2,}",
        "{\"kind\":\"compute\" \"start_ms\":1,\"end_ms\":2}",
        "{\"kind\":\"compute\",\"start_ms\":1e,\"end_ms\":2}",
        "{\"kind\":\"compute\",\"start_ms\":1,\"end_ms\":2,\"s\":\"unterminated}",
    };
    usage_event a, b;
    char buf[512];
    unsigned seed = 12345;

    (void)st;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        json_t *j = json_loads(good[i], JSON_DECODE_ANY, NULL);
        assert_non_null(j);
        assert_int_equal(usage_event_from_json(j, &a), 0);
        if (usage_event_scan(good[i], strlen(good[i]), &b) != 0)
            fail_msg("scan refused %s", good[i]);
        same(&a, &b);
        json_decref(j);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (usage_event_scan(bad[i], strlen(bad[i]), &b) == 0)
            fail_msg("scan accepted %s", bad[i]);
    for (size_t i = 0; i < sizeof(fallback) / sizeof(fallback[0]); i++) {
        json_t *j = json_loads(fallback[i], 0, NULL);
        assert_int_equal(usage_event_scan(fallback[i], strlen(fallback[i]), &b), -1);
        assert_int_equal(usage_event_from_json(j, &a), 0);
        json_decref(j);
    }
    /* mutations of a good event: the scanner may refuse what jansson takes
     * (then the API falls back to jansson), but whatever it accepts it
     * must read exactly as jansson does, and it never reads past len */
    for (int round = 0; round < 20000; round++) {
        const char *src = good[round % 3];
        size_t n = strlen(src);
        json_t *j;

        memcpy(buf, src, n);
        for (int k = 0; k < 1 + round % 3; k++) {
            seed = seed * 1103515245u + 12345u;
            buf[(seed >> 8) % n] = "{}[]\",:0123456789.eE-+ nx\\"[(seed >> 20) % 27];
        }
        if (usage_event_scan(buf, n, &b) != 0)
            continue;
        j = json_loadb(buf, n, 0, NULL);
        if (j == NULL || usage_event_from_json(j, &a) != 0)
            fail_msg("scan accepted what jansson refuses: %.*s", (int)n, buf);
        same(&a, &b);
        json_decref(j);
    }
}

static void syslog_bounds_and_identity(void **st)
{
    transfer_rec r, r2;
    char a[80], b[80];
    const int64_t end = 1732292701123LL;

    (void)st;
    /* the largest values accepted */
    assert_int_equal(transfer_parse("smdb1 shop - 4194304 9007199254740992 1732292701.123 "
                                    "31622400.000 1099511627776 1099511627776",
                                    strlen("smdb1 shop - 4194304 9007199254740992 1732292701.123 "
                                           "31622400.000 1099511627776 1099511627776"), &r),
                     TRANSFER_OK);
    assert_int_equal(r.bytes_in, TRANSFER_MAX_BYTES);
    assert_int_equal(r.start_ms, end - TRANSFER_MAX_SESSION_MS);
    /* the clock window: a replay from more than an hour ago, a line from the future */
    assert_int_equal(parse(LINE, &r), TRANSFER_OK);
    assert_int_equal(transfer_check_time(&r, end), TRANSFER_OK);
    assert_int_equal(transfer_check_time(&r, end + TRANSFER_MAX_AGE_MS), TRANSFER_OK);
    assert_int_equal(transfer_check_time(&r, end + TRANSFER_MAX_AGE_MS + 1), TRANSFER_STALE);
    assert_int_equal(transfer_check_time(&r, end - TRANSFER_MAX_SKEW_MS), TRANSFER_OK);
    assert_int_equal(transfer_check_time(&r, end - TRANSFER_MAX_SKEW_MS - 1), TRANSFER_STALE);
    assert_true(TRANSFER_DEDUPE_TTL_MS > TRANSFER_MAX_AGE_MS + TRANSFER_MAX_SKEW_MS);
    /* the session id ignores what a forger would change: project, bytes */
    assert_int_equal(parse("smdb1 other - 4242 17 1732292701.123 2.500 1 1", &r2), TRANSFER_OK);
    transfer_session_id(&r, a, sizeof(a));
    transfer_session_id(&r2, b, sizeof(b));
    assert_string_equal(a, "4242.17.1732292698623");
    assert_string_equal(a, b);
}

/* --- hourly buckets ------------------------------------------------------ */

static usage_bucket bucket(const char *s, int64_t hour)
{
    usage_bucket b;

    if (usage_bucket_parse(s, strlen(s), hour, &b) != 0)
        fail_msg("refused bucket \"%s\"", s);
    return b;
}

static void usage_buckets(void **st)
{
    const int64_t H = USAGE_HOUR_MS, h = 480000;   /* some hour in 2024 */
    char txt[200];
    usage_totals t = {0};
    usage_bucket b;
    static const char *const bad[] = {
        "", "1 0 0 0 0 0 0", "1 0 0 0 0 0 0 -1 -1 9", "-2 0 0 0 0 0 0 -1 -1",
        "1 0 0 0 -5 0 0 -1 -1", "1 0 0 0 nan 0 0 -1 -1", "1 0 0 0 inf 0 0 -1 -1",
        "1 0 0 0 0 9007199254740993 0 -1 -1", "1 0 0 0 0 0 0 5 -1", "x 0 0 0 0 0 0 -1 -1",
        "1 0 0 0 0 0 0 1 2",                                      /* span outside the hour */
        "1 0 0 0 0 0 0 1728000000000 1728000000000",              /* empty span */
        "1.5 0 0 0 0 0 0 -1 -1",
    };

    (void)st;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (usage_bucket_parse(bad[i], strlen(bad[i]), h, &b) == 0)
            fail_msg("accepted bucket \"%s\"", bad[i]);

    /* 10 min of compute at 2 cu from :10, 20 min at 1e9 bytes, 2 transfers */
    snprintf(txt, sizeof(txt), "3 1 600000 1200000 1200000000000 100 200 %lld %lld",
             (long long)(h * H + 600000), (long long)(h * H + 1800000));
    b = bucket(txt, h);
    /* the whole hour, and any range around the span: everything, exact */
    usage_bucket_add(&t, &b, h * H, (h + 1) * H, true);
    assert_int_equal(t.events, 4);
    assert_true(t.compute_seconds == 600.0 && t.cu_seconds == 1200.0);
    assert_true(t.storage_byte_seconds == 1200000000000.0);
    assert_int_equal(t.bytes_in, 100);
    assert_false(t.inexact);
    memset(&t, 0, sizeof(t));
    usage_bucket_add(&t, &b, h * H + 600000, h * H + 1800000, false);
    assert_int_equal(t.events, 3);            /* not the first hour: carried not counted */
    assert_false(t.inexact);
    /* outside the span: nothing, exact */
    memset(&t, 0, sizeof(t));
    usage_bucket_add(&t, &b, h * H + 1800000, (h + 1) * H, true);
    usage_bucket_add(&t, &b, h * H, h * H + 600000, false);
    assert_int_equal(t.events, 0);
    assert_true(t.compute_seconds == 0.0 && !t.inexact);
    /* cut through the span: pro-rated, and said so */
    memset(&t, 0, sizeof(t));
    usage_bucket_add(&t, &b, h * H + 1200000, (h + 1) * H, true);
    assert_true(t.inexact);
    assert_true(t.compute_seconds == 300.0);
    assert_int_equal(t.bytes_in, 50);
    /* a bucket without intervals */
    memset(&t, 0, sizeof(t));
    b = bucket("0 0 0 0 0 0 0 -1 -1", h);
    usage_bucket_add(&t, &b, 0, INT64_MAX / 2, true);
    assert_int_equal(t.events, 0);
    /* a transfer at the hour's last ms spans into the next hour's first */
    snprintf(txt, sizeof(txt), "1 0 0 0 0 7 9 %lld %lld", (long long)((h + 1) * H - 1),
             (long long)((h + 1) * H));
    b = bucket(txt, h);
    usage_bucket_add(&t, &b, h * H, (h + 1) * H, true);
    assert_int_equal(t.bytes_out, 9);
    assert_false(t.inexact);
}

static void usage_sums_are_overflow_checked(void **st)
{
    usage_totals t = {0};
    usage_event e = {.kind = EV_TRANSFER, .start_ms = 1, .end_ms = 2,
                     .bytes_in = INT64_MAX, .bytes_out = 1};

    (void)st;
    usage_add(&t, &e, 1.0);
    assert_false(t.overflow);
    usage_add(&t, &e, 1.0);
    assert_true(t.overflow);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rfc3339_valid),       cmocka_unit_test(rfc3339_invalid),
        cmocka_unit_test(rfc3339_round_trip),  cmocka_unit_test(syslog_valid),
        cmocka_unit_test(syslog_malformed),    cmocka_unit_test(usage_clipping),
        cmocka_unit_test(usage_split_sums_to_whole), cmocka_unit_test(usage_scan_window),
        cmocka_unit_test(usage_from_json),     cmocka_unit_test(usage_scan_agrees_with_jansson),
        cmocka_unit_test(syslog_bounds_and_identity), cmocka_unit_test(usage_buckets),
        cmocka_unit_test(usage_sums_are_overflow_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
