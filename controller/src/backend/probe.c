/* The backends' probe(): the same questions on every engine, asked over
 * the admin session each backend opens its own way. */
#include "backend/backend.h"
#include "util/sql.h"

int backend_probe_sql(MYSQL *m, const char *admin_user, compute_probe *out)
{
    sql_activity a;

    if (sql_activity_probe_close(m, admin_user, &a) < 0)
        return -1;
    out->client_sessions = a.sessions;
    out->busy_sessions = a.busy;
    out->open_trx = a.open_trx;
    out->server_work = a.server_work;
    out->min_idle_ms = a.min_idle_ms;
    return 0;
}
