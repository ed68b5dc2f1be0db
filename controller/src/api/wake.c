/* GET /wake_compute: the proxy asks for a project's address (docs/interfaces.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers.h"
#include "core/lifecycle.h"
#include "store/store.h"
#include "util/ids.h"

void h_wake(api_req *r)
{
    const char *project = api_query(r, "endpointish");
    wake_result w;
    op_error e = OP_ERROR_INIT;

    if (project == NULL) {
        e = (op_error){ERR_INVALID, "invalid_project_id", "endpointish is required"};
    } else if (lifecycle_wake(project, &w, &e) == 0) {
        api_header(r, "X-Wake-Address", "%s:%d", w.host, w.port);
        api_header(r, "X-Wake-Compute", "%s", w.compute_id);
        api_header(r, "X-Wake-Cold-Start", "%s", w.cold_start);
        api_header(r, "X-Wake-Max-Sessions", "%d", w.max_sessions);
        /* the proxy's idle rule for sessions on a compute that may freeze */
        api_header(r, "X-Wake-Freeze-After", "%lld", w.freeze_after_ms);
        char addr[96];
        snprintf(addr, sizeof(addr), "%s:%d", w.host, w.port);
        return api_json(r, 200, json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:i, s:f}",
                                          "address", addr, "host", w.host, "port", w.port,
                                          "compute_id", w.compute_id, "project", project,
                                          "cold_start", w.cold_start,
                                          "max_sessions", w.max_sessions, "wake_ms", w.ms));
    }
    api_header(r, "X-Wake-Error", "%s", e.code);
    if (e.kind == ERR_RATE_LIMITED) {
        /* Retry-After in whole seconds, rounded up; the proxy uses the ms */
        api_header(r, "Retry-After", "%d", (e.retry_ms + 999) / 1000);
        api_header(r, "X-Wake-Retry-After-Ms", "%d", e.retry_ms);
    }
    api_op_error(r, &e);
}
