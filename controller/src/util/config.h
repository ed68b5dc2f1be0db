/* Controller configuration: a `key = value` file, then command-line
 * `--key=value` overrides, then secrets from the environment. */
#ifndef SMDB_CONFIG_H
#define SMDB_CONFIG_H

#include <stddef.h>

typedef struct {
    char listen_host[64];
    int listen_port;
    char redis_host[128];
    int redis_port;
    char redis_prefix[32];          /* prefix of every key, see docs/redis-keys.md */
    char redis_user[64];            /* ACL user; empty: "default" */
    char redis_password_file[256];  /* its password (first line); else SMDB_REDIS_PASSWORD */
    int redis_timeout_ms;           /* connect and reply timeout */
    char api_token[256];
    char wake_token[256];
    char backend[32];               /* "process" or "docker" */
    char data_dir[512];             /* per-compute datadirs live here */
    char socket_dir[256];           /* mariadbd unix sockets (short path) */
    char compute_host[64];
    int compute_port_min, compute_port_max;
    char mariadbd[256];
    char install_db[256];
    char mycnf_template[512];
    char system_plugin_dir[256];
    char activity_plugin[512];      /* wake_activity.so; empty: not loaded */
    char report_url_base[256];      /* how computes reach this controller */
    char compute_user[64];          /* the controller's login on computes (unix_socket:
                                     * its own OS user name) */
    int compute_uid_min, compute_uid_max; /* one uid (and gid) per compute */
    char compute_proxy_networks[256];  /* who may send computes a PROXY header */
    char compute_plugins[512];      /* system plugins a compute may load (allow-list) */
    /* docker backend (docs/docker-backend.md) */
    char docker_socket[256];        /* the Engine API's unix socket */
    char docker_image[256];         /* the compute image (images/compute) */
    char docker_network[64];        /* computes join it; the proxy must reach it */
    char docker_prefix[32];         /* names and the smdb.prefix label of what it creates */
    char docker_report_url[256];    /* how compute containers reach the controller */
    char docker_proxy_networks[256];   /* where the proxy connects to computes from */
    int cu_memory_mb;        /* memory limit per compute unit */
    int cu_millicpus;        /* CPU limit per compute unit (1000: one CPU) */
    int cu_buffer_pool_mb;   /* innodb_buffer_pool_size per compute unit */
    int cu_max_connections;  /* client sessions per compute unit (the proxy's limit) */
    int docker_pids_limit;
    /* the autoscaler (docs/autoscaling.md) */
    int autoscale;                  /* 1: size computes between min_cu and max_cu */
    int autoscale_up_cooldown_s;    /* after any change, before a step up */
    int autoscale_down_cooldown_s;  /* after any change, before a step down */
    int autoscale_down_after_s;     /* low for this long before a step down */
    int autoscale_cpu_up_pct;       /* CPU used of allowed: above, up (over 100: never) */
    int autoscale_cpu_down_pct;     /* below (and below the middle at one CU less), low */
    int autoscale_bp_full_pct;      /* data pages of the pool: at least, the pool is full */
    int autoscale_bp_miss_permille; /* reads from disk per 1000 read requests: above, misses */
    int autoscale_bp_fit_pct;       /* a step down keeps the working set within this of the pool */
    int autoscale_ws_reads_per_s;   /* read requests/s from which the pool's pages are in use */
    int autoscale_threads_per_cpu;  /* threads running per allowed CPU: above, up */
    /* kubernetes backend (docs/kubernetes-backend.md) */
    char k8s_api[256];              /* API server URL; default: in-cluster */
    char k8s_token_file[256];       /* bearer token (re-read: projected tokens rotate) */
    char k8s_ca_file[256];          /* CA of the API server's certificate */
    char k8s_namespace[64];         /* computes live here; default: the pod's namespace */
    char k8s_image[256];            /* the compute image */
    char k8s_prefix[32];            /* object names and the smdb.io/prefix label */
    char k8s_storage_class[64];     /* PVC storage class; empty: the cluster's default */
    char k8s_storage_size[32];      /* PVC size (a quantity) */
    char k8s_report_url[256];       /* how compute pods reach the controller */
    char k8s_proxy_networks[256];   /* PROXY header senders: the proxies' pod network */
    char k8s_proxy_labels[256];     /* labels of the proxy pods (NetworkPolicy ingress) */
    char k8s_controller_labels[256];   /* labels of the controller pods (ingress, egress) */
    int k8s_controller_port;        /* the controller's API port the computes report to */
    char k8s_dns_labels[256];       /* labels of the cluster DNS pods (egress) */
    int idle_timeout_s;             /* default per project */
    int freeze_after_s;             /* default per project; 0: no freeze tier */
    int drain_wait_ms;              /* longer than the proxy's cache TTL */
    int scheduler_interval_ms;
    int lease_ttl_ms;               /* the scheduler lease: a dead holder's work moves after it */
    int wake_timeout_ms;
    int wake_rate_per_min;   /* starts + thaws per project per minute, 0: no limit */
    int wake_burst;          /* ... of which this many back to back */
    int start_timeout_ms;
    int stop_timeout_ms;
    int report_interval_s;          /* the plugin's interval */
    char cgroup_root[256];          /* cgroup v2 mount; empty: SIGSTOP fallback */
    char pg_conninfo[512];          /* billing ledger; empty: no export */
    int meter_interval_s;           /* close running intervals this often */
    int export_interval_ms;
    int storage_sample_s;
    char syslog_listen[128];        /* unix:/path (or host:port) for nginx's access log; empty: off */
    char syslog_allow_uids[256];    /* users who may send transfer records (plus root, ourselves) */
    int syslog_udp_trusted;         /* 1: accept host:port (no sender authentication) */
    int usage_retention_s;          /* no ledger: events older than this are aggregated */
    /* HTTP API under load (docs/api-server.md) */
    int api_threads;                /* epoll threads answering requests */
    int api_workers;                /* threads for slow requests (wake of a stopped compute...) */
    int api_queue;                  /* slow requests waiting for a worker; beyond: 503 */
    int api_max_connections;        /* open connections; capped by the open-file limit */
    int api_per_ip_connections;     /* per peer address; 0: no limit */
    int api_per_ip_exempt_loopback; /* 1: 127.0.0.0/8 peers have no per-address limit */
    int api_idle_timeout_s;         /* closes a connection that sends nothing this long */
} config;

/* What one compute unit is (docs/autoscaling.md), the same on every
 * backend: cu_memory_mb of memory, cu_millicpus of CPU time, a buffer pool
 * of cu_buffer_pool_mb and cu_max_connections client sessions (the proxy's
 * limit; the server's own max_connections has a reserve above it, so that
 * the proxy refuses first and the admin always gets in). */
#define CU_CONNECTION_RESERVE 10
#define CU_CPU_PERIOD_US 100000
static inline long long cu_memory_bytes(const config *c, int cu)
{
    return (long long)cu * c->cu_memory_mb * 1024 * 1024;
}
static inline long long cu_pool_bytes(const config *c, int cu)
{
    return (long long)cu * c->cu_buffer_pool_mb * 1024 * 1024;
}
static inline long long cu_cpu_quota_us(const config *c, int cu)   /* of CU_CPU_PERIOD_US */
{
    return (long long)cu * c->cu_millicpus * (CU_CPU_PERIOD_US / 1000);
}
static inline int cu_server_connections(const config *c, int cu)
{
    return cu * c->cu_max_connections + CU_CONNECTION_RESERVE;
}

void config_defaults(config *c);
/* Parses the text of a config file. On error returns -1 and writes a
 * message (with the line number) into err. */
int config_parse_text(config *c, const char *text, char *err, size_t errlen);
int config_load_file(config *c, const char *path, char *err, size_t errlen);
/* One "key=value" override. */
int config_set(config *c, const char *key, const char *value, char *err, size_t errlen);
/* Cross-field checks after everything is set. */
int config_validate(const config *c, char *err, size_t errlen);

#endif
