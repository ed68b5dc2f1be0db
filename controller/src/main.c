/* smdb-controller: the daemon.
 *
 *   smdb-controller --config FILE [--key=value ...]
 *
 * Settings come from the file, then from --key=value overrides, then the
 * secrets SMDB_API_TOKEN / SMDB_WAKE_TOKEN from the environment.  On start it
 * reconciles Redis against the servers that really run, then serves.  On
 * SIGTERM it stops serving and leaves computes running: the next controller
 * adopts them. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "backend/backend.h"
#include "billing/billing.h"
#include "core/autoscale.h"
#include "core/lifecycle.h"
#include "core/scheduler.h"
#include "store/store.h"
#include "util/config.h"
#include "util/ids.h"
#include "util/log.h"

/* backend = <name> (config_validate knows the same names) */
static const struct {
    const char *name;
    const backend *(*make)(const config *cfg, char *err, size_t errlen);
} backends[] = {
    {"process", backend_process},
    {"docker", backend_docker},
    {"kubernetes", backend_kubernetes},
};

static volatile sig_atomic_t quit;

static void on_signal(int sig)
{
    (void)sig;
    quit = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: smdb-controller [--config FILE] [--key=value ...]\n"
               "settings: see config/controller.conf; secrets also from\n"
               "SMDB_API_TOKEN and SMDB_WAKE_TOKEN\n");
}

static int load_config(config *cfg, int argc, char **argv)
{
    char err[512];
    const char *env;

    config_defaults(cfg);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            struct stat st;
            /* the file holds the tokens (and credentials): like ssh with a
             * private key, refuse one that other users can read or change */
            if (stat(argv[i + 1], &st) == 0 && (st.st_mode & (S_IROTH | S_IWOTH | S_IWGRP))) {
                snprintf(err, sizeof(err), "%s is accessible to other users; it holds secrets "
                         "(chmod 600 %s)", argv[i + 1], argv[i + 1]);
                goto bad;
            }
            if (config_load_file(cfg, argv[++i], err, sizeof(err)) < 0)
                goto bad;
        } else if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            exit(0);
        } else if (strncmp(argv[i], "--", 2) == 0 && strchr(argv[i], '=')) {
            char key[64];
            const char *eq = strchr(argv[i], '=');
            snprintf(key, sizeof(key), "%.*s", (int)(eq - argv[i] - 2), argv[i] + 2);
            if (config_set(cfg, key, eq + 1, err, sizeof(err)) < 0)
                goto bad;
        } else {
            usage(stderr);
            return -1;
        }
    }
    if ((env = getenv("SMDB_API_TOKEN")) && config_set(cfg, "api_token", env, err, sizeof(err)) < 0)
        goto bad;
    if ((env = getenv("SMDB_WAKE_TOKEN")) && config_set(cfg, "wake_token", env, err, sizeof(err)) < 0)
        goto bad;
    if (cfg->socket_dir[0] == '\0')
        snprintf(cfg->socket_dir, sizeof(cfg->socket_dir), "%.200s/sock", cfg->data_dir);
    if (cfg->report_url_base[0] == '\0')
        snprintf(cfg->report_url_base, sizeof(cfg->report_url_base), "http://%s:%d",
                 cfg->listen_host, cfg->listen_port);
    if (config_validate(cfg, err, sizeof(err)) < 0)
        goto bad;
    return 0;
bad:
    fprintf(stderr, "smdb-controller: %s\n", err);
    return -1;
}

int main(int argc, char **argv)
{
    static config cfg;
    const backend *be;

    setvbuf(stderr, NULL, _IOLBF, 0);
    if (load_config(&cfg, argc, argv) < 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    /* Redis may still be starting: wait for it rather than fail */
    for (int i = 0; store_init(&cfg) < 0; i++) {
        if (quit || i >= 300)
            return 1;
        sleep(1);
    }
    {
        char err[512] = "";
        be = NULL;
        for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
            if (strcmp(cfg.backend, backends[i].name) == 0)
                be = backends[i].make(&cfg, err, sizeof(err));
        if (be == NULL) {
            log_error("backend %s: %s", cfg.backend, err[0] ? err : "unknown");
            return 2;
        }
    }
    lifecycle_init(&cfg, be);
    autoscale_init(&cfg);
    /* billing's exporters follow the lease (core knows nothing of billing) */
    scheduler_init(&cfg, billing_set_leader);
    /* the lease holder settles what a dead controller left, before the API
     * opens; the others leave that to it */
    if (!scheduler_lease(true))
        log_info("another controller holds the scheduler lease; serving the API and wakes");
    if (billing_init(&cfg, be) < 0)
        return 1;
    if (api_start(&cfg) < 0) {
        log_error("cannot listen on %s:%d", cfg.listen_host, cfg.listen_port);
        return 1;
    }
    if (scheduler_start(&cfg) != 0) {
        log_error("cannot start the scheduler");
        return 1;
    }
    log_info("smdb-controller listening on %s:%d (backend %s)", cfg.listen_host,
             cfg.listen_port, be->name);
    while (!quit)
        pause();
    log_info("stopping; computes keep running and will be adopted");
    api_stop();
    scheduler_stop();
    billing_stop();
    return 0;
}
