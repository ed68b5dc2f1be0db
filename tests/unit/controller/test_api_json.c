/* JSON bodies and JSON errors of the API helpers (no server needed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "api/request.h"

static json_t *answer(api_req *r)
{
    json_t *doc = json_loads(r->out, 0, NULL);

    assert_non_null(doc);
    assert_string_equal(r->content_type, "application/json");
    return doc;
}

static void expect_bad_body(const char *body, const char *needle)
{
    api_req r;
    json_t *doc;

    memset(&r, 0, sizeof(r));
    r.body = body;
    r.body_len = strlen(body);
    assert_null(api_body_object(&r));
    assert_int_equal(r.status, 400);
    doc = answer(&r);
    assert_string_equal(json_string_value(json_object_get(doc, "code")), "invalid_json");
    assert_non_null(strstr(json_string_value(json_object_get(doc, "error")), needle));
    json_decref(doc);
    free(r.out);
}

static void bad_bodies(void **st)
{
    (void)st;
    expect_bad_body("", "required");
    expect_bad_body("{", "invalid JSON");
    expect_bad_body("[1]", "object");
    expect_bad_body("\"s\"", "invalid JSON");   /* not an object or array */
    expect_bad_body("{\"a\":1,\"a\":2}", "invalid JSON");   /* duplicate keys */
}

static void good_body(void **st)
{
    api_req r;
    json_t *doc;

    (void)st;
    memset(&r, 0, sizeof(r));
    r.body = "{\"id\":\"p\"}";
    r.body_len = strlen(r.body);
    doc = api_body_object(&r);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "id")), "p");
    assert_null(r.out);
    json_decref(doc);
}

static void error_shape(void **st)
{
    api_req r;
    json_t *doc;
    op_error e = {ERR_BUSY, "busy", "compute x is resuming"};

    (void)st;
    memset(&r, 0, sizeof(r));
    api_op_error(&r, &e);
    assert_int_equal(r.status, 409);
    doc = answer(&r);
    assert_string_equal(json_string_value(json_object_get(doc, "code")), "busy");
    assert_string_equal(json_string_value(json_object_get(doc, "error")), "compute x is resuming");
    assert_int_equal(json_object_size(doc), 2);
    json_decref(doc);
    /* a second answer replaces the first without leaking */
    api_error(&r, 404, "unknown_project", "unknown \"quoted\" project");
    doc = answer(&r);
    assert_string_equal(json_string_value(json_object_get(doc, "error")),
                        "unknown \"quoted\" project");
    json_decref(doc);
    free(r.out);
}

/* Every kind answers the status the API has always given for it. */
static void error_kinds_to_http(void **st)
{
    (void)st;
    assert_int_equal(api_status_of(ERR_INVALID), 400);
    assert_int_equal(api_status_of(ERR_NOT_FOUND), 404);
    assert_int_equal(api_status_of(ERR_CONFLICT), 409);
    assert_int_equal(api_status_of(ERR_BUSY), 409);
    assert_int_equal(api_status_of(ERR_UNAVAILABLE), 503);
    assert_int_equal(api_status_of(ERR_INTERNAL), 500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_bodies),
        cmocka_unit_test(good_body),
        cmocka_unit_test(error_shape),
        cmocka_unit_test(error_kinds_to_http),
    };
    return cmocka_run_group_tests_name("controller_api_json", tests, NULL, NULL);
}
