#include "util/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum { T_STR, T_INT, T_HOSTPORT } opt_type;

typedef struct {
    const char *key;
    opt_type type;
    size_t off;      /* string field, int field, or host field of a host:port */
    size_t size;     /* string size */
    size_t off2;     /* port field of a host:port */
    int min, max;
} opt;

#define S(k, f) {k, T_STR, offsetof(config, f), sizeof(((config *)0)->f), 0, 0, 0}
#define I(k, f, lo, hi) {k, T_INT, offsetof(config, f), 0, 0, lo, hi}
#define HP(k, h, p) {k, T_HOSTPORT, offsetof(config, h), sizeof(((config *)0)->h), offsetof(config, p), 0, 0}

static const opt opts[] = {
    HP("listen", listen_host, listen_port),
    HP("redis", redis_host, redis_port),
    S("redis_prefix", redis_prefix),
    S("redis_user", redis_user),
    S("redis_password_file", redis_password_file),
    I("redis_timeout_ms", redis_timeout_ms, 100, 600000),
    S("api_token", api_token),
    S("wake_token", wake_token),
    S("backend", backend),
    S("data_dir", data_dir),
    S("socket_dir", socket_dir),
    S("compute_host", compute_host),
    I("compute_port_min", compute_port_min, 1, 65535),
    I("compute_port_max", compute_port_max, 1, 65535),
    S("mariadbd", mariadbd),
    S("install_db", install_db),
    S("mycnf_template", mycnf_template),
    S("system_plugin_dir", system_plugin_dir),
    S("activity_plugin", activity_plugin),
    S("report_url_base", report_url_base),
    S("compute_user", compute_user),
    I("compute_uid_min", compute_uid_min, 1000, 2000000000),
    I("compute_uid_max", compute_uid_max, 1000, 2000000000),
    S("compute_proxy_networks", compute_proxy_networks),
    S("compute_plugins", compute_plugins),
    S("docker_socket", docker_socket),
    S("docker_image", docker_image),
    S("docker_network", docker_network),
    S("docker_prefix", docker_prefix),
    S("docker_report_url", docker_report_url),
    S("docker_proxy_networks", docker_proxy_networks),
    I("cu_memory_mb", cu_memory_mb, 64, 1 << 20),
    I("cu_millicpus", cu_millicpus, 10, 1 << 20),
    I("cu_buffer_pool_mb", cu_buffer_pool_mb, 8, 1 << 20),
    I("cu_max_connections", cu_max_connections, 1, 100000),
    I("docker_pids_limit", docker_pids_limit, 64, 1 << 20),
    I("autoscale", autoscale, 0, 1),
    I("autoscale_up_cooldown_s", autoscale_up_cooldown_s, 0, 86400),
    I("autoscale_down_cooldown_s", autoscale_down_cooldown_s, 0, 86400),
    I("autoscale_down_after_s", autoscale_down_after_s, 0, 86400),
    I("autoscale_cpu_up_pct", autoscale_cpu_up_pct, 1, 1000),
    I("autoscale_cpu_down_pct", autoscale_cpu_down_pct, 0, 99),
    I("autoscale_bp_full_pct", autoscale_bp_full_pct, 1, 100),
    I("autoscale_bp_miss_permille", autoscale_bp_miss_permille, 0, 1000),
    I("autoscale_bp_fit_pct", autoscale_bp_fit_pct, 1, 100),
    I("autoscale_ws_reads_per_s", autoscale_ws_reads_per_s, 0, 1 << 30),
    I("autoscale_threads_per_cpu", autoscale_threads_per_cpu, 1, 10000),
    S("k8s_api", k8s_api),
    S("k8s_token_file", k8s_token_file),
    S("k8s_ca_file", k8s_ca_file),
    S("k8s_namespace", k8s_namespace),
    S("k8s_image", k8s_image),
    S("k8s_prefix", k8s_prefix),
    S("k8s_storage_class", k8s_storage_class),
    S("k8s_storage_size", k8s_storage_size),
    S("k8s_report_url", k8s_report_url),
    S("k8s_proxy_networks", k8s_proxy_networks),
    S("k8s_proxy_labels", k8s_proxy_labels),
    S("k8s_controller_labels", k8s_controller_labels),
    I("k8s_controller_port", k8s_controller_port, 1, 65535),
    S("k8s_dns_labels", k8s_dns_labels),
    I("idle_timeout_s", idle_timeout_s, 1, 86400 * 365),
    I("freeze_after_s", freeze_after_s, 0, 86400 * 365),
    I("drain_wait_ms", drain_wait_ms, 0, 600000),
    I("scheduler_interval_ms", scheduler_interval_ms, 10, 600000),
    I("lease_ttl_ms", lease_ttl_ms, 100, 600000),
    I("wake_timeout_ms", wake_timeout_ms, 100, 3600000),
    I("wake_rate_per_min", wake_rate_per_min, 0, 600000),
    I("wake_burst", wake_burst, 1, 100000),
    I("start_timeout_ms", start_timeout_ms, 100, 3600000),
    I("stop_timeout_ms", stop_timeout_ms, 100, 3600000),
    I("report_interval_s", report_interval_s, 1, 3600),
    S("cgroup_root", cgroup_root),
    S("pg_conninfo", pg_conninfo),
    I("meter_interval_s", meter_interval_s, 1, 3600),
    I("export_interval_ms", export_interval_ms, 10, 3600000),
    I("storage_sample_s", storage_sample_s, 1, 86400),
    S("syslog_listen", syslog_listen),
    S("syslog_allow_uids", syslog_allow_uids),
    I("syslog_udp_trusted", syslog_udp_trusted, 0, 1),
    I("usage_retention_s", usage_retention_s, 60, 400 * 86400),
    I("api_threads", api_threads, 1, 64),
    I("api_workers", api_workers, 1, 1024),
    I("api_queue", api_queue, 1, 1000000),
    I("api_max_connections", api_max_connections, 16, 1000000),
    I("api_per_ip_connections", api_per_ip_connections, 0, 1000000),
    I("api_per_ip_exempt_loopback", api_per_ip_exempt_loopback, 0, 1),
    I("api_idle_timeout_s", api_idle_timeout_s, 1, 3600),
};

static bool docker_name_ok(const char *s)
{
    if (!isalnum((unsigned char)s[0]))
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("_.-", *s))
            return false;
    return true;
}

static bool chars_ok(const char *s, const char *extra)
{
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
            return false;
    return true;
}

/* Values that end up in a compute's my.cnf, Engine and Kubernetes API
 * paths, label selectors, URLs and JSON bodies: letters, digits and only
 * the other characters each one needs. */
static int charset_check(const config *c, char *err, size_t errlen)
{
    static const struct { const char *name; size_t off; const char *extra; } f[] = {
        {"compute_proxy_networks", offsetof(config, compute_proxy_networks), ".:/, "},
        {"compute_plugins", offsetof(config, compute_plugins), "._- "},
        {"docker_proxy_networks", offsetof(config, docker_proxy_networks), ".:/,"},
        {"docker_image", offsetof(config, docker_image), "._-/:@"},
        {"docker_report_url", offsetof(config, docker_report_url), "._~:/?&=%+-"},
        {"k8s_namespace", offsetof(config, k8s_namespace), "-"},
        {"k8s_prefix", offsetof(config, k8s_prefix), "-"},
        {"k8s_image", offsetof(config, k8s_image), "._-/:@"},
        {"k8s_storage_class", offsetof(config, k8s_storage_class), ".-"},
        {"k8s_storage_size", offsetof(config, k8s_storage_size), "."},
        {"k8s_api", offsetof(config, k8s_api), "._~:/-"},
        {"k8s_report_url", offsetof(config, k8s_report_url), "._~:/?&=%+-"},
        {"k8s_proxy_networks", offsetof(config, k8s_proxy_networks), ".:/,"},
        {"k8s_proxy_labels", offsetof(config, k8s_proxy_labels), "._-/=,"},
        {"k8s_controller_labels", offsetof(config, k8s_controller_labels), "._-/=,"},
        {"k8s_dns_labels", offsetof(config, k8s_dns_labels), "._-/=,"},
    };

    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
        if (!chars_ok((const char *)c + f[i].off, f[i].extra)) {
            snprintf(err, errlen, "%s has characters it may not have (letters, digits and "
                     "\"%s\" only)", f[i].name, f[i].extra);
            return -1;
        }
    if (c->k8s_prefix[0] && !isalpha((unsigned char)c->k8s_prefix[0])) {
        snprintf(err, errlen, "k8s_prefix must start with a letter");
        return -1;
    }
    return 0;
}

void config_defaults(config *c)
{
    struct passwd *pw = getpwuid(geteuid());

    memset(c, 0, sizeof(*c));
    strcpy(c->listen_host, "127.0.0.1");
    c->listen_port = 8480;
    strcpy(c->redis_host, "127.0.0.1");
    c->redis_port = 6379;
    strcpy(c->redis_prefix, "smdb:");
    c->redis_timeout_ms = 5000;
    strcpy(c->backend, "process");
    strcpy(c->data_dir, "/var/lib/smdb");
    strcpy(c->compute_host, "127.0.0.1");
    c->compute_port_min = 33100;
    c->compute_port_max = 33999;
    strcpy(c->mariadbd, "/usr/sbin/mariadbd");
    strcpy(c->install_db, "/usr/bin/mariadb-install-db");
    strcpy(c->system_plugin_dir, "/usr/lib/mysql/plugin");
    snprintf(c->compute_user, sizeof(c->compute_user), "%s", pw ? pw->pw_name : "root");
    /* above every distribution's dynamic and system ranges, below the
     * 524288+ ranges that container engines hand out (subuid) */
    c->compute_uid_min = 200000;
    c->compute_uid_max = 299999;
    strcpy(c->compute_proxy_networks, "127.0.0.2/32");
    strcpy(c->compute_plugins, "auth_ed25519.so");
    strcpy(c->docker_socket, "/var/run/docker.sock");
    strcpy(c->docker_image, "smdb-compute:latest");
    strcpy(c->docker_network, "smdb");
    strcpy(c->docker_prefix, "smdb");
    c->cu_memory_mb = 1024;
    c->cu_millicpus = 1000;
    c->cu_buffer_pool_mb = 256;
    c->cu_max_connections = 100;
    c->docker_pids_limit = 512;
    c->autoscale = 1;
    c->autoscale_up_cooldown_s = 30;
    c->autoscale_down_cooldown_s = 120;
    c->autoscale_down_after_s = 300;
    c->autoscale_cpu_up_pct = 75;
    c->autoscale_cpu_down_pct = 25;
    c->autoscale_bp_full_pct = 95;
    c->autoscale_bp_miss_permille = 10;
    c->autoscale_bp_fit_pct = 90;
    c->autoscale_ws_reads_per_s = 100;
    c->autoscale_threads_per_cpu = 4;
    strcpy(c->k8s_api, "https://kubernetes.default.svc");
    strcpy(c->k8s_token_file, "/var/run/secrets/kubernetes.io/serviceaccount/token");
    strcpy(c->k8s_ca_file, "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt");
    strcpy(c->k8s_image, "smdb-compute:latest");
    strcpy(c->k8s_prefix, "smdb");
    strcpy(c->k8s_storage_size, "10Gi");
    strcpy(c->k8s_proxy_labels, "app.kubernetes.io/name=smdb-proxy");
    strcpy(c->k8s_controller_labels, "app.kubernetes.io/name=smdb-controller");
    c->k8s_controller_port = 8480;
    strcpy(c->k8s_dns_labels, "k8s-app=kube-dns");
    c->idle_timeout_s = 300;
    c->freeze_after_s = 60;
    c->drain_wait_ms = 3000;
    c->scheduler_interval_ms = 1000;
    c->lease_ttl_ms = 5000;
    c->wake_timeout_ms = 30000;
    /* a compute started or thawed 20 times in a row, then once every 2 s */
    c->wake_rate_per_min = 30;
    c->wake_burst = 20;
    c->start_timeout_ms = 20000;
    c->stop_timeout_ms = 20000;
    c->report_interval_s = 5;
    strcpy(c->cgroup_root, "/sys/fs/cgroup/unified");
    c->meter_interval_s = 60;
    c->export_interval_ms = 1000;
    c->storage_sample_s = 60;
    c->usage_retention_s = 7 * 86400;
    c->api_threads = 4;
    c->api_workers = 16;
    c->api_queue = 1024;
    c->api_max_connections = 4096;
    c->api_per_ip_connections = 256;
    c->api_per_ip_exempt_loopback = 1;
    c->api_idle_timeout_s = 10;
}

static char *trim(char *s)
{
    char *e;

    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static int parse_int(const char *v, int min, int max, int *out)
{
    char *end;
    long n;

    errno = 0;
    n = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || n < min || n > max)
        return -1;
    *out = (int)n;
    return 0;
}

int config_set(config *c, const char *key, const char *value, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        const opt *o = &opts[i];
        char *base = (char *)c;

        if (strcmp(o->key, key) != 0)
            continue;
        switch (o->type) {
        case T_STR:
            if (strlen(value) >= o->size) {
                snprintf(err, errlen, "%s: value too long (max %zu)", key, o->size - 1);
                return -1;
            }
            strcpy(base + o->off, value);
            return 0;
        case T_INT:
            if (parse_int(value, o->min, o->max, (int *)(base + o->off)) < 0) {
                snprintf(err, errlen, "%s: expected an integer in [%d, %d], got \"%s\"",
                         key, o->min, o->max, value);
                return -1;
            }
            return 0;
        case T_HOSTPORT: {
            const char *colon = strrchr(value, ':');
            size_t hl = colon ? (size_t)(colon - value) : 0;

            if (colon == NULL || hl == 0 || hl >= o->size ||
                parse_int(colon + 1, 1, 65535, (int *)(base + o->off2)) < 0) {
                snprintf(err, errlen, "%s: expected host:port, got \"%s\"", key, value);
                return -1;
            }
            memcpy(base + o->off, value, hl);
            base[o->off + hl] = '\0';
            return 0;
        }
        }
    }
    snprintf(err, errlen, "unknown setting \"%s\"", key);
    return -1;
}

int config_parse_text(config *c, const char *text, char *err, size_t errlen)
{
    const char *p = text;
    int lineno = 0;

    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char line[1024], *s, *eq, msg[512];

        lineno++;
        if (len >= sizeof(line)) {
            snprintf(err, errlen, "line %d: too long", lineno);
            return -1;
        }
        memcpy(line, p, len);
        line[len] = '\0';
        p += len + (nl ? 1 : 0);

        s = trim(line);
        if (*s == '\0' || *s == '#' || *s == ';')
            continue;
        eq = strchr(s, '=');
        if (eq == NULL) {
            snprintf(err, errlen, "line %d: expected key = value", lineno);
            return -1;
        }
        *eq = '\0';
        if (config_set(c, trim(s), trim(eq + 1), msg, sizeof(msg)) < 0) {
            snprintf(err, errlen, "line %d: %s", lineno, msg);
            return -1;
        }
    }
    return 0;
}

int config_load_file(config *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long n;
    int rc;

    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n < 0 || n > 1 << 20) {
        fclose(f);
        snprintf(err, errlen, "%s: unreadable or too large", path);
        return -1;
    }
    buf = malloc((size_t)n + 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        snprintf(err, errlen, "%s: read error", path);
        return -1;
    }
    buf[n] = '\0';
    fclose(f);
    rc = config_parse_text(c, buf, err, errlen);
    free(buf);
    return rc;
}

int config_validate(const config *c, char *err, size_t errlen)
{
    if (c->api_token[0] == '\0' || c->wake_token[0] == '\0') {
        snprintf(err, errlen, "api_token and wake_token are required "
                 "(config file, --api_token=, or SMDB_API_TOKEN / SMDB_WAKE_TOKEN)");
        return -1;
    }
    if (strcmp(c->api_token, c->wake_token) == 0) {
        snprintf(err, errlen, "wake_token must differ from api_token");
        return -1;
    }
    if (c->compute_port_min > c->compute_port_max) {
        snprintf(err, errlen, "compute_port_min > compute_port_max");
        return -1;
    }
    if (c->compute_uid_min > c->compute_uid_max ||
        c->compute_port_max - c->compute_port_min > c->compute_uid_max - c->compute_uid_min) {
        /* a compute's uid is compute_uid_min + (port - compute_port_min) */
        snprintf(err, errlen, "compute_uid_min..compute_uid_max must hold at least as many "
                 "ids as compute_port_min..compute_port_max");
        return -1;
    }
    /* names the docker backend builds paths and URLs from */
    if (!docker_name_ok(c->docker_network) || !docker_name_ok(c->docker_prefix)) {
        snprintf(err, errlen, "docker_network and docker_prefix: [a-zA-Z0-9_.-], starting "
                 "with a letter or digit");
        return -1;
    }
    if (c->autoscale_cpu_down_pct * 2 >= c->autoscale_cpu_up_pct) {
        /* a step down must not land above the step-up line (thrash) */
        snprintf(err, errlen, "autoscale_cpu_down_pct must be below half autoscale_cpu_up_pct");
        return -1;
    }
    if (c->cu_memory_mb < 2 * c->cu_buffer_pool_mb) {
        /* a one-CU step down lowers the memory limit before the plugin has
         * shrunk the pool: (n-1) CU of memory must hold n CU of pool */
        snprintf(err, errlen, "cu_memory_mb must be at least twice cu_buffer_pool_mb");
        return -1;
    }
    if (c->lease_ttl_ms < 2 * c->scheduler_interval_ms) {
        /* the holder renews it every tick: two ticks must fit */
        snprintf(err, errlen, "lease_ttl_ms must be at least twice scheduler_interval_ms");
        return -1;
    }
    if (charset_check(c, err, errlen) < 0)
        return -1;
    if (strcmp(c->backend, "process") != 0 && strcmp(c->backend, "docker") != 0 &&
        strcmp(c->backend, "kubernetes") != 0) {
        snprintf(err, errlen, "backend \"%s\" is not available (\"process\", \"docker\" or "
                 "\"kubernetes\")", c->backend);
        return -1;
    }
    if (c->redis_password_file[0] && access(c->redis_password_file, R_OK) != 0) {
        snprintf(err, errlen, "redis_password_file %s: %s", c->redis_password_file,
                 strerror(errno));
        return -1;
    }
    if (c->data_dir[0] != '/') {
        snprintf(err, errlen, "data_dir must be an absolute path");
        return -1;
    }
    if (c->freeze_after_s > 0 && c->freeze_after_s >= c->idle_timeout_s) {
        snprintf(err, errlen, "freeze_after_s must be shorter than idle_timeout_s (or 0)");
        return -1;
    }
    return 0;
}
