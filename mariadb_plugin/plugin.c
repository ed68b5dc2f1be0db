/* wake_activity: MariaDB audit plugin that tells the controller whether this
 * compute is in use.  This file is only the glue to the server: the plugin
 * declaration, system and status variables, init and deinit.  The work is
 * done by hook.c (counting, on client threads) and reporter.c (posting, on
 * one background thread). */
#include <mysql/plugin.h>
#include <mysql/plugin_audit.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "hook.h"
#include "http.h"
#include "log.h"
#include "reporter.h"

#define WA_VERSION 0x0100
#define WA_VERSION_STR "1.0"

static struct wa_hook g_hook;
static struct wa_reporter g_rep;

/* ---- system variables --------------------------------------------------- */

static char *opt_report_url;
static char *opt_compute_id;
static char *opt_token;
static char *opt_admin_user;
static unsigned int opt_interval;

static MYSQL_SYSVAR_STR(report_url, opt_report_url,
                        PLUGIN_VAR_READONLY | PLUGIN_VAR_RQCMDARG,
                        "Where activity reports are POSTed: the full URL, or the "
                        "controller's base URL (then /api/v1/compute/<id>/activity "
                        "is appended). Empty: count only, never report.",
                        NULL, NULL, "");

static MYSQL_SYSVAR_STR(compute_id, opt_compute_id,
                        PLUGIN_VAR_READONLY | PLUGIN_VAR_RQCMDARG,
                        "This compute's id as the controller knows it ([a-z0-9-]{1,80}).",
                        NULL, NULL, "");

/* NOSYSVAR: settable from my.cnf / the command line like the others, but
 * not a server variable, so SHOW VARIABLES and
 * information_schema.GLOBAL_VARIABLES never show it. */
static MYSQL_SYSVAR_STR(token, opt_token,
                        PLUGIN_VAR_READONLY | PLUGIN_VAR_NOSYSVAR | PLUGIN_VAR_RQCMDARG,
                        "Bearer token for the reports (never shown by SHOW VARIABLES).",
                        NULL, NULL, "");

/* Read-only: the hook compares against it without a lock, and the set of
 * counted sessions would be meaningless if it changed under them. */
static MYSQL_SYSVAR_STR(admin_user, opt_admin_user,
                        PLUGIN_VAR_READONLY | PLUGIN_VAR_RQCMDARG,
                        "Comma-separated user names whose sessions are not "
                        "activity (the controller's own health checks).",
                        NULL, NULL, "root");

static void update_interval(MYSQL_THD thd, struct st_mysql_sys_var *var,
                            void *var_ptr, const void *save)
{
    (void)thd;
    (void)var;
    unsigned int v = *(const unsigned int *)save;
    *(unsigned int *)var_ptr = v;
    atomic_store(&g_rep.interval_s, v);
    /* reschedule now, not after the old interval ran out */
    if (g_rep.running)
        wa_reporter_poke(&g_rep);
}

static MYSQL_SYSVAR_UINT(interval, opt_interval, PLUGIN_VAR_RQCMDARG,
                         "Seconds between periodic activity reports (0<->1 "
                         "connection changes are reported at once).",
                         NULL, update_interval, 5, 1, 3600, 0);

static struct st_mysql_sys_var *wa_sysvars[] = {
    MYSQL_SYSVAR(report_url), MYSQL_SYSVAR(compute_id), MYSQL_SYSVAR(token),
    MYSQL_SYSVAR(admin_user), MYSQL_SYSVAR(interval), NULL,
};

/* ---- status variables --------------------------------------------------- */

/* One SHOW_SIMPLE_FUNC per variable: atomics (and the striped query count)
 * must be read through atomic loads, not as plain memory by the server. */
#define WA_SHOW(fn, expr)                                                       \
    static int fn(MYSQL_THD thd, struct st_mysql_show_var *var, void *buf,    \
                  struct system_status_var *sv, enum enum_var_type scope)      \
    {                                                                          \
        (void)thd;                                                             \
        (void)sv;                                                              \
        (void)scope;                                                           \
        var->type = SHOW_LONGLONG;                                             \
        var->value = buf;                                                      \
        *(long long *)buf = (long long)(expr);                                 \
        return 0;                                                              \
    }

WA_SHOW(show_connections, atomic_load(&g_hook.counters.connections))
WA_SHOW(show_connects, atomic_load(&g_hook.counters.connects))
WA_SHOW(show_failed_connects, atomic_load(&g_hook.counters.failed_connects))
WA_SHOW(show_disconnects, atomic_load(&g_hook.counters.disconnects))
WA_SHOW(show_queries, wa_counters_queries(&g_hook.counters))
WA_SHOW(show_untracked, atomic_load(&g_hook.counters.untracked))
WA_SHOW(show_last_query_ms, atomic_load(&g_hook.counters.last_query_ms))
WA_SHOW(show_last_connection_ms, atomic_load(&g_hook.counters.last_connection_ms))
WA_SHOW(show_last_activity_ms,
        atomic_load(&g_hook.counters.last_query_ms) > atomic_load(&g_hook.counters.last_connection_ms)
            ? atomic_load(&g_hook.counters.last_query_ms)
            : atomic_load(&g_hook.counters.last_connection_ms))
WA_SHOW(show_reports_sent, atomic_load(&g_rep.sent))
WA_SHOW(show_reports_failed, atomic_load(&g_rep.failed))
WA_SHOW(show_report_seq, atomic_load(&g_rep.seq))
WA_SHOW(show_last_report_status, atomic_load(&g_rep.last_status))
WA_SHOW(show_last_report_ms, atomic_load(&g_rep.last_ok_ms))
WA_SHOW(show_backoff_ms, atomic_load(&g_rep.backoff_ms))
WA_SHOW(show_token_set, g_rep.token[0] != '\0')
WA_SHOW(show_server_signals, atomic_load(&g_rep.server.sql_ok))
WA_SHOW(show_targets_applied, atomic_load(&g_rep.server.applied))
WA_SHOW(show_server_read_us, atomic_load(&g_rep.server.read_us))

static struct st_mysql_show_var wa_status[] = {
    {"Wake_activity_connections", (void *)show_connections, SHOW_SIMPLE_FUNC},
    {"Wake_activity_connects", (void *)show_connects, SHOW_SIMPLE_FUNC},
    {"Wake_activity_failed_connects", (void *)show_failed_connects, SHOW_SIMPLE_FUNC},
    {"Wake_activity_disconnects", (void *)show_disconnects, SHOW_SIMPLE_FUNC},
    {"Wake_activity_queries", (void *)show_queries, SHOW_SIMPLE_FUNC},
    {"Wake_activity_untracked_sessions", (void *)show_untracked, SHOW_SIMPLE_FUNC},
    {"Wake_activity_last_query_ms", (void *)show_last_query_ms, SHOW_SIMPLE_FUNC},
    {"Wake_activity_last_connection_ms", (void *)show_last_connection_ms, SHOW_SIMPLE_FUNC},
    {"Wake_activity_last_activity_ms", (void *)show_last_activity_ms, SHOW_SIMPLE_FUNC},
    {"Wake_activity_reports_sent", (void *)show_reports_sent, SHOW_SIMPLE_FUNC},
    {"Wake_activity_reports_failed", (void *)show_reports_failed, SHOW_SIMPLE_FUNC},
    {"Wake_activity_report_seq", (void *)show_report_seq, SHOW_SIMPLE_FUNC},
    {"Wake_activity_last_report_status", (void *)show_last_report_status, SHOW_SIMPLE_FUNC},
    {"Wake_activity_last_report_ms", (void *)show_last_report_ms, SHOW_SIMPLE_FUNC},
    {"Wake_activity_backoff_ms", (void *)show_backoff_ms, SHOW_SIMPLE_FUNC},
    {"Wake_activity_token_set", (void *)show_token_set, SHOW_SIMPLE_FUNC},
    {"Wake_activity_server_signals", (void *)show_server_signals, SHOW_SIMPLE_FUNC},
    {"Wake_activity_targets_applied", (void *)show_targets_applied, SHOW_SIMPLE_FUNC},
    {"Wake_activity_server_read_us", (void *)show_server_read_us, SHOW_SIMPLE_FUNC},
    {NULL, NULL, SHOW_UNDEF},
};

/* ---- init / deinit ------------------------------------------------------ */

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

/* Copy and check the settings.  A bad value fails plugin init, so a
 * misconfigured compute is visible at once (and with
 * wake_activity=FORCE_PLUS_PERMANENT does not start at all). */
static int load_settings(void)
{
    const char *url = str_or_empty(opt_report_url);
    const char *id = str_or_empty(opt_compute_id);
    const char *token = str_or_empty(opt_token);

    if (wa_userlist_parse(&g_hook.admins, str_or_empty(opt_admin_user)) != 0) {
        wa_log_error("wake_activity_admin_user: at most %d names of at most %d characters",
                     WA_USERLIST_MAX, WA_USER_MAX);
        return -1;
    }
    if (*token && !wa_valid_token(token)) {
        wa_log_error("wake_activity_token must be 1..%d printable ASCII characters without blanks",
                     WA_TOKEN_MAX);
        return -1;
    }
    g_rep.url[0] = '\0';
    g_rep.compute_id[0] = '\0';
    snprintf(g_rep.token, sizeof g_rep.token, "%s", token);
    if (*url) {
        if (!wa_valid_url(url)) {
            wa_log_error("wake_activity_report_url must be an http:// or https:// URL");
            return -1;
        }
        if (!wa_valid_compute_id(id)) {
            wa_log_error("wake_activity_compute_id must match [a-z0-9-]{1,%d} when a report URL is set",
                         WA_COMPUTE_ID_MAX);
            return -1;
        }
        snprintf(g_rep.compute_id, sizeof g_rep.compute_id, "%s", id);
        if (wa_report_url(g_rep.url, sizeof g_rep.url, url, id) != 0) {
            wa_log_error("wake_activity_report_url is too long");
            return -1;
        }
        if (!*token)
            wa_log_warning("no wake_activity_token: the controller will refuse the reports");
    }
    atomic_store(&g_rep.interval_s, opt_interval);
    return 0;
}

static int wa_plugin_init(void *p)
{
    (void)p;
    if (load_settings() != 0)
        return 1;
    wa_hook_reset(&g_hook, wa_wall_ms());
    g_hook.poke = wa_reporter_poke;
    g_hook.poke_arg = &g_rep;
    if (wa_reporter_start(&g_rep, &g_hook) != 0)
        return 1;
    if (g_rep.url[0])
        wa_log_note("reporting activity of compute %s to %s every %u s",
                    g_rep.compute_id, g_rep.url, opt_interval);
    else
        wa_log_note("no wake_activity_report_url: counting activity, not reporting it");
    return 0;
}

static int wa_plugin_deinit(void *p)
{
    (void)p;
    wa_reporter_stop(&g_rep); /* joins the thread: nothing of ours runs after */
    wa_http_global_cleanup();
    memset(g_rep.token, 0, sizeof g_rep.token);
    wa_log_note("stopped after %llu reports (%llu failed)",
                (unsigned long long)atomic_load(&g_rep.sent),
                (unsigned long long)atomic_load(&g_rep.failed));
    return 0;
}

/* ---- declaration -------------------------------------------------------- */

static void wa_notify(MYSQL_THD thd, unsigned int event_class, const void *event)
{
    (void)thd;
    wa_hook_event(&g_hook, event_class, event);
}

static struct st_mysql_audit wa_descriptor = {
    MYSQL_AUDIT_INTERFACE_VERSION,
    NULL, /* release_thd: we hold nothing per session */
    wa_notify,
    {MYSQL_AUDIT_GENERAL_CLASSMASK | MYSQL_AUDIT_CONNECTION_CLASSMASK},
};

maria_declare_plugin(wake_activity){
    MYSQL_AUDIT_PLUGIN,
    &wa_descriptor,
    "wake_activity",
    "Serverless MariaDB",
    "Reports connections and activity to the compute controller",
    PLUGIN_LICENSE_GPL,
    wa_plugin_init,
    wa_plugin_deinit,
    WA_VERSION,
    wa_status,
    wa_sysvars,
    WA_VERSION_STR,
    MariaDB_PLUGIN_MATURITY_STABLE,
} maria_declare_plugin_end;
