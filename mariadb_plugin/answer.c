/* Controller answers (see answer.h). */
#include "answer.h"

#include <mysql/plugin.h> /* the service declarations: json_service */
#include <string.h>

#include "stats.h"

/* key of obj: absent or null -> 0 with *has = 0; a non-negative integer ->
 * 0 with *has = 1; anything else -> -1 */
static int number_key(const char *obj, int obj_len, const char *key, int *has, uint64_t *v)
{
    const char *val;
    int len;
    *has = 0;
    switch (json_get_object_key(obj, obj + obj_len, key, &val, &len)) {
    case JSV_NOTHING:
    case JSV_NULL:
        return 0;
    case JSV_NUMBER:
        if (len < 0 || wa_parse_u64(val, (size_t)len, v) != 0)
            return -1;
        *has = 1;
        return 0;
    default:
        return -1;
    }
}

int wa_answer_parse(const char *body, size_t len, struct wa_target *t)
{
    memset(t, 0, sizeof *t);
    /* the bodies we accept are a few dozen bytes: an int length is plenty */
    if (!body || len == 0 || len > 65536)
        return -1;
    const char *obj;
    int obj_len;
    switch (json_get_object_key(body, body + len, "target", &obj, &obj_len)) {
    case JSV_NOTHING:
    case JSV_NULL:
        return 0;
    case JSV_OBJECT:
        break;
    default:
        return -1;
    }
    struct wa_target got;
    memset(&got, 0, sizeof got);
    if (number_key(obj, obj_len, "buffer_pool_bytes", &got.has_bp, &got.bp_bytes) != 0 ||
        number_key(obj, obj_len, "max_connections", &got.has_mc, &got.max_connections) != 0)
        return -1;
    *t = got;
    return 0;
}
