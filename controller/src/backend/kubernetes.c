/* The kubernetes backend: every compute is a StatefulSet of one pod (1
 * replica running, 0 stopped) of the compute image, with its datadir on the
 * PVC of a volumeClaimTemplate, a headless Service, a Secret with its
 * report token and the controller's admin password, and a NetworkPolicy:
 * only the proxy's and the controller's pods reach the compute's port; the
 * compute reaches only the controller's report port and DNS.
 * docs/kubernetes-backend.md.
 *
 * Like the docker backend it keeps no state of its own: the objects are
 * found by name, a restarted controller by label.  One thread lists and
 * watches the pods (resuming from resourceVersion, listing again after 410
 * Gone), so status() costs no API call per scheduler tick.
 *
 * Kubernetes has no freeze: a pod cannot be paused.  The tiers here are
 * running and stopped (replicas 0); can_freeze is false and the scheduler
 * stops instead. */
#define _GNU_SOURCE
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/kube_api.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/rfc3339.h"
#include "util/sql.h"

#define ADMIN_USER "smdb_admin"
#define CALL_MS 15000L
#define CONTAINER "mariadb"

static const config *cfg;
static char ns[64];

/* ---- names ---------------------------------------------------------------
 * A StatefulSet's name ends up in its pods' controller-revision-hash label
 * (63 characters at most), so names stay within 52.  Longer compute ids get
 * a cut name plus a hash; the full id is in an annotation, and its hash in a
 * label (label values are limited to 63 characters, compute ids are not). */

typedef struct {
    char sts[64];
    char pod[68];
    char secret[72];
    char pvc[80];
    char hash[17];
} kname;

static void name_of(const char *cid, kname *n)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    char full[160];

    SHA256((const unsigned char *)cid, strlen(cid), md);
    for (int i = 0; i < 8; i++)
        snprintf(n->hash + 2 * i, 3, "%02x", md[i]);
    snprintf(full, sizeof(full), "%s-%s", cfg->k8s_prefix, cid);
    if (strlen(full) <= 52)
        snprintf(n->sts, sizeof(n->sts), "%s", full);
    else
        snprintf(n->sts, sizeof(n->sts), "%.*s-%.8s", 43, full, n->hash);
    snprintf(n->pod, sizeof(n->pod), "%s-0", n->sts);
    snprintf(n->secret, sizeof(n->secret), "%s-secrets", n->sts);
    snprintf(n->pvc, sizeof(n->pvc), "data-%s-0", n->sts);
}

static long call(const char *method, const char *path, json_t *body, const char *ctype,
                 json_t **reply, char *err, size_t errlen)
{
    kube_reply r;

    if (kube_call(method, path, body, ctype, CALL_MS, &r) < 0) {
        snprintf(err, errlen, "%s", r.err);
        return -1;
    }
    if (r.status >= 300)
        snprintf(err, errlen, "%s", r.err);
    if (reply)
        *reply = r.body;
    else
        kube_reply_free(&r);
    return r.status;
}

/* "a=b,c=d" -> {"a": "b", "c": "d"} */
static json_t *label_map(const char *spec)
{
    json_t *m = json_object();
    char copy[256], *save = NULL;

    snprintf(copy, sizeof(copy), "%s", spec);
    for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (eq) {
            *eq = '\0';
            json_object_set_new(m, kv, json_string(eq + 1));
        }
    }
    return m;
}

static json_t *labels(const kname *n)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "app.kubernetes.io/name", "smdb-compute",
                     "app.kubernetes.io/managed-by", "smdb-controller", "smdb.io/prefix",
                     cfg->k8s_prefix, "smdb.io/instance", n->sts, "smdb.io/compute-hash",
                     n->hash);
}

static json_t *meta(const char *name, const kname *n, const compute_rec *c)
{
    return json_pack("{s:s, s:s, s:o, s:{s:s, s:s}}", "name", name, "namespace", ns, "labels",
                     labels(n), "annotations", "smdb.io/compute", c->id, "smdb.io/project",
                     c->project);
}

/* ---- the pod cache (the watch thread keeps it) --------------------------- */

typedef struct pod {
    struct pod *next;
    char name[68];
    char uid[64];
    char ip[64];
    bool ready, deleting, running;
    long long restarts;
    bool crashed;       /* its container restarted since the last start() */
    long long started_ms;
} pod;

static pthread_mutex_t pods_lock = PTHREAD_MUTEX_INITIALIZER;
static pod *pods;
static bool watching;          /* the cache is current */
static volatile int watch_stop;
static void (*changed_fn)(const char *cid);   /* the lifecycle's, from watch() */

static long long rfc3339_ms(const char *s)
{
    int64_t ms = 0;

    return s && rfc3339_parse(s, &ms) == 0 ? (long long)ms : 0;
}

static void pod_parse(json_t *obj, pod *p)
{
    json_t *md = json_object_get(obj, "metadata"), *st = json_object_get(obj, "status"), *c;
    size_t i;

    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", json_string_value(json_object_get(md, "name")) ?: "");
    snprintf(p->uid, sizeof(p->uid), "%s", json_string_value(json_object_get(md, "uid")) ?: "");
    snprintf(p->ip, sizeof(p->ip), "%s", json_string_value(json_object_get(st, "podIP")) ?: "");
    p->deleting = json_object_get(md, "deletionTimestamp") != NULL;
    p->started_ms = rfc3339_ms(json_string_value(json_object_get(st, "startTime")));
    json_array_foreach(json_object_get(st, "containerStatuses"), i, c) {
        p->restarts += json_integer_value(json_object_get(c, "restartCount"));
        if (json_object_get(json_object_get(c, "state"), "running"))
            p->running = true;
    }
    json_array_foreach(json_object_get(st, "conditions"), i, c) {
        const char *type = json_string_value(json_object_get(c, "type"));
        const char *v = json_string_value(json_object_get(c, "status"));
        if (type && v && strcmp(type, "Ready") == 0)
            p->ready = strcmp(v, "True") == 0;
    }
}

static void cache_set(const pod *p, bool deleted)
{
    pod **pp, *e;

    pthread_mutex_lock(&pods_lock);
    for (pp = &pods; *pp && strcmp((*pp)->name, p->name) != 0; pp = &(*pp)->next)
        ;
    if (deleted) {
        if (*pp) {
            e = *pp;
            *pp = e->next;
            free(e);
        }
    } else if (*pp) {
        /* the kubelet restarts a container that died: the sessions on it are
         * gone, which the lifecycle must hear as a crash, however fast the
         * restart was */
        bool crashed = (*pp)->crashed || (strcmp((*pp)->uid, p->uid) == 0 &&
                                          p->restarts > (*pp)->restarts);
        e = (*pp)->next;
        **pp = *p;
        (*pp)->crashed = crashed;
        (*pp)->next = e;
    } else if ((e = malloc(sizeof(*e))) != NULL) {
        *e = *p;
        e->next = pods;
        pods = e;
    }
    pthread_mutex_unlock(&pods_lock);
}

static void cache_clear(void)
{
    pthread_mutex_lock(&pods_lock);
    while (pods) {
        pod *e = pods;
        pods = e->next;
        free(e);
    }
    pthread_mutex_unlock(&pods_lock);
}

/* 1 found, 0 no such pod, -1 the cache is not current */
static int cache_get(const char *name, pod *out)
{
    int rc = -1;

    pthread_mutex_lock(&pods_lock);
    if (watching) {
        rc = 0;
        for (pod *e = pods; e; e = e->next)
            if (strcmp(e->name, name) == 0) {
                *out = *e;
                rc = 1;
                break;
            }
    }
    pthread_mutex_unlock(&pods_lock);
    return rc;
}

static void crash_clear(const char *name)
{
    pthread_mutex_lock(&pods_lock);
    for (pod *e = pods; e; e = e->next)
        if (strcmp(e->name, name) == 0)
            e->crashed = false;
    pthread_mutex_unlock(&pods_lock);
}

typedef struct {
    char rv[32];
    bool gone;
} watch_state;

static int on_event(const char *type, json_t *obj, void *arg)
{
    watch_state *w = arg;
    const char *rv = json_string_value(
        json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
    pod p;

    if (strcmp(type, "ERROR") == 0) {
        /* 410 Gone: the history the watch would resume from is compacted */
        w->gone = json_integer_value(json_object_get(obj, "code")) == 410;
        return 1;
    }
    if (rv)
        snprintf(w->rv, sizeof(w->rv), "%s", rv);
    if (strcmp(type, "BOOKMARK") == 0)
        return 0;
    pod_parse(obj, &p);
    if (p.name[0])
        cache_set(&p, strcmp(type, "DELETED") == 0);
    /* the compute whose pod changed is supervised now, not at the next tick */
    const char *cid = json_string_value(json_object_get(
        json_object_get(json_object_get(obj, "metadata"), "annotations"), "smdb.io/compute"));
    if (cid && changed_fn)
        changed_fn(cid);
    return 0;
}

static int relist(watch_state *w, char *err, size_t errlen)
{
    char path[512];
    json_t *doc = NULL, *item;
    size_t i;

    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods?labelSelector=smdb.io%%2Fprefix%%3D%s",
             ns, cfg->k8s_prefix);
    if (call("GET", path, NULL, NULL, &doc, err, errlen) != 200 || doc == NULL) {
        json_decref(doc);
        return -1;
    }
    cache_clear();
    json_array_foreach(json_object_get(doc, "items"), i, item) {
        pod p;
        pod_parse(item, &p);
        if (p.name[0])
            cache_set(&p, false);
    }
    snprintf(w->rv, sizeof(w->rv), "%s",
             json_string_value(json_object_get(json_object_get(doc, "metadata"),
                                               "resourceVersion")) ?: "");
    json_decref(doc);
    return 0;
}

static void set_watching(bool on)
{
    pthread_mutex_lock(&pods_lock);
    watching = on;
    pthread_mutex_unlock(&pods_lock);
}

static void *watcher(void *arg)
{
    watch_state w = {"", true};
    char err[256], path[640];

    (void)arg;
    while (!watch_stop) {
        if (w.gone || !w.rv[0]) {
            set_watching(false);
            if (relist(&w, err, sizeof(err)) < 0) {
                log_warn("kubernetes: listing pods failed (%s); retrying", err);
                sleep(1);
                continue;
            }
            w.gone = false;
            set_watching(true);
        }
        snprintf(path, sizeof(path),
                 "/api/v1/namespaces/%s/pods?watch=1&allowWatchBookmarks=true&timeoutSeconds=300"
                 "&labelSelector=smdb.io%%2Fprefix%%3D%s&resourceVersion=%s",
                 ns, cfg->k8s_prefix, w.rv);
        err[0] = '\0';
        long s = kube_watch(path, on_event, &w, &watch_stop, err, sizeof(err));
        if (s == 410)
            w.gone = true;
        else if (s != 200) {
            /* a watch that cannot be held: status() asks the API itself
             * until a fresh list succeeds */
            log_warn("kubernetes: pod watch ended (%ld %s); listing again", s, err);
            w.gone = true;
            sleep(1);
        }
        if (w.gone)
            log_info("kubernetes: pod watch resource version expired, listing again");
    }
    return NULL;
}

/* ---- pods ---------------------------------------------------------------- */

/* 1 found, 0 none, -1 cannot tell */
static int pod_get(const kname *n, pod *out)
{
    char path[256], err[256] = "";
    json_t *doc = NULL;
    long s;
    int rc = cache_get(n->pod, out);

    if (rc >= 0)
        return rc;
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", ns, n->pod);
    s = call("GET", path, NULL, NULL, &doc, err, sizeof(err));
    if (s == 200 && doc)
        pod_parse(doc, out);
    json_decref(doc);
    return s == 200 ? 1 : s == 404 ? 0 : -1;
}

/* The admin password from the compute's Secret (kept in memory). */
typedef struct pw {
    struct pw *next;
    char cid[96];
    char password[64];
} pw;
static pthread_mutex_t pw_lock = PTHREAD_MUTEX_INITIALIZER;
static pw *pws;

/* Secret data is base64 (OpenSSL's coder; the controller links libcrypto) */
static int b64dec(const char *in, char *out, size_t outlen)
{
    size_t n = strlen(in);
    int len;

    if (n % 4 || n / 4 * 3 + 1 > outlen)
        return -1;
    len = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)in, (int)n);
    if (len < 0)
        return -1;
    while (n && in[--n] == '=')
        len--;          /* EVP_DecodeBlock counts the padding's zero bytes */
    out[len] = '\0';
    return 0;
}

static void b64enc(const char *in, char *out, size_t outlen)
{
    size_t n = strlen(in);

    if ((n + 2) / 3 * 4 + 1 > outlen) {
        out[0] = '\0';
        return;
    }
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)n);
}

static int admin_password(const compute_rec *c, char out[64])
{
    kname n;
    char path[256], err[256] = "";
    json_t *doc = NULL;
    const char *v;
    int rc = -1;

    pthread_mutex_lock(&pw_lock);
    for (pw *e = pws; e; e = e->next)
        if (strcmp(e->cid, c->id) == 0) {
            memcpy(out, e->password, 64);
            rc = 0;
        }
    pthread_mutex_unlock(&pw_lock);
    if (rc == 0)
        return 0;
    name_of(c->id, &n);
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/secrets/%s", ns, n.secret);
    if (call("GET", path, NULL, NULL, &doc, err, sizeof(err)) == 200 &&
        (v = json_string_value(json_object_get(json_object_get(doc, "data"),
                                               "admin-password"))) != NULL &&
        b64dec(v, out, 64) == 0 && out[0]) {
        pw *e = calloc(1, sizeof(*e));
        if (e) {
            snprintf(e->cid, sizeof(e->cid), "%s", c->id);
            memcpy(e->password, out, 64);
            pthread_mutex_lock(&pw_lock);
            e->next = pws;
            pws = e;
            pthread_mutex_unlock(&pw_lock);
        }
        rc = 0;
    }
    json_decref(doc);
    return rc;
}

static void forget_password(const char *cid)
{
    pthread_mutex_lock(&pw_lock);
    for (pw **pp = &pws; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->cid, cid) == 0) {
            pw *e = *pp;
            *pp = e->next;
            free(e);
            break;
        }
    pthread_mutex_unlock(&pw_lock);
}

/* ---- objects ------------------------------------------------------------- */

static json_t *resources(int cu)
{
    char mem[32], cpu[32];

    snprintf(mem, sizeof(mem), "%dMi", cu * cfg->cu_memory_mb);
    snprintf(cpu, sizeof(cpu), "%dm", cu * cfg->cu_millicpus);
    /* requests = limits: the Guaranteed QoS class, so the size bought is
     * the size held */
    return json_pack("{s:{s:s, s:s}, s:{s:s, s:s}}", "requests", "memory", mem, "cpu", cpu,
                     "limits", "memory", mem, "cpu", cpu);
}

static json_t *env_list(const compute_rec *c, const kname *n)
{
    char port[16], bp[32], interval[16], conns[16];
    int cu = c->size_cu > 0 ? c->size_cu : 1;
    const char *url = cfg->k8s_report_url[0] ? cfg->k8s_report_url : cfg->report_url_base;

    snprintf(port, sizeof(port), "%d", c->port);
    /* the size it starts at (docs/autoscaling.md); the plugin follows
     * in-place resizes from the answers to its reports */
    snprintf(bp, sizeof(bp), "%lldM", cu_pool_bytes(cfg, cu) >> 20);
    snprintf(conns, sizeof(conns), "%d", cu_server_connections(cfg, cu));
    snprintf(interval, sizeof(interval), "%d", cfg->report_interval_s);
    return json_pack(
        "[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}, {s:s, s:s}, {s:s, s:s}, {s:s, s:s}, {s:s, s:s},"
        " {s:s, s:{s:{s:s, s:s}}}, {s:s, s:{s:{s:s, s:s}}}]",
        "name", "SMDB_COMPUTE_ID", "value", c->id, "name", "SMDB_PORT", "value", port, "name",
        "SMDB_REPORT_URL", "value", url, "name", "SMDB_PROXY_NETWORKS", "value",
        cfg->k8s_proxy_networks, "name", "SMDB_BUFFER_POOL", "value", bp, "name",
        "SMDB_MAX_CONNECTIONS", "value", conns, "name",
        "SMDB_REPORT_INTERVAL", "value", interval, "name", "SMDB_ADMIN_PASSWORD", "valueFrom",
        "secretKeyRef", "name", n->secret, "key", "admin-password", "name", "SMDB_REPORT_TOKEN",
        "valueFrom", "secretKeyRef", "name", n->secret, "key", "report-token");
}

static json_t *statefulset(const compute_rec *c, const kname *n)
{
    int cu = c->size_cu > 0 ? c->size_cu : 1;
    json_t *pvc_spec = json_pack("{s:[s], s:{s:{s:s}}}", "accessModes", "ReadWriteOnce",
                                 "resources", "requests", "storage", cfg->k8s_storage_size);
    json_t *tmpl_meta = json_pack("{s:o, s:{s:s}}", "labels", labels(n), "annotations",
                                  "smdb.io/compute", c->id);

    if (cfg->k8s_storage_class[0])
        json_object_set_new(pvc_spec, "storageClassName", json_string(cfg->k8s_storage_class));
    return json_pack(
        "{s:s, s:s, s:o, s:{s:i, s:s, s:{s:{s:s}}, s:s, s:{s:s}, s:{s:s, s:s},"
        " s:{s:o, s:{s:b, s:b, s:I, s:{s:b, s:i, s:i, s:i, s:{s:s}},"
        "   s:[{s:s, s:s, s:s, s:o, s:[{s:s, s:i, s:s}], s:o,"
        "       s:{s:{s:i}, s:i, s:i, s:i},"
        "       s:{s:b, s:b, s:{s:[s]}},"
        "       s:[{s:s, s:s}]}]}},"
        " s:[{s:{s:s}, s:o}]}}",
        "apiVersion", "apps/v1", "kind", "StatefulSet", "metadata", meta(n->sts, n, c),
        "spec", "replicas", 1, "serviceName", n->sts,
        "selector", "matchLabels", "smdb.io/instance", n->sts,
        /* the controller decides when a new pod picks up a changed
         * template: at the next start, not in the middle of a session */
        "podManagementPolicy", "Parallel", "updateStrategy", "type", "OnDelete",
        "persistentVolumeClaimRetentionPolicy", "whenDeleted", "Retain", "whenScaled", "Retain",
        "template", "metadata", tmpl_meta,
        "spec", "automountServiceAccountToken", 0, "enableServiceLinks", 0,
        "terminationGracePeriodSeconds", (json_int_t)(cfg->stop_timeout_ms / 1000 + 1),
        "securityContext", "runAsNonRoot", 1, "runAsUser", 999, "runAsGroup", 999, "fsGroup",
        999, "seccompProfile", "type", "RuntimeDefault",
        "containers", "name", CONTAINER, "image", cfg->k8s_image, "imagePullPolicy",
        "IfNotPresent", "env", env_list(c, n), "ports", "name", "mysql", "containerPort",
        c->port, "protocol", "TCP", "resources", resources(cu),
        "readinessProbe", "tcpSocket", "port", c->port, "periodSeconds", 1, "timeoutSeconds", 1,
        "failureThreshold", 3,
        "securityContext", "allowPrivilegeEscalation", 0, "readOnlyRootFilesystem", 0,
        "capabilities", "drop", "ALL",
        "volumeMounts", "name", "data", "mountPath", "/var/lib/mysql",
        "volumeClaimTemplates", "metadata", "name", "data", "spec", pvc_spec);
}

static json_t *service(const compute_rec *c, const kname *n)
{
    return json_pack("{s:s, s:s, s:o, s:{s:s, s:{s:s}, s:b, s:[{s:s, s:i, s:i, s:s}]}}",
                     "apiVersion", "v1", "kind", "Service", "metadata", meta(n->sts, n, c),
                     "spec", "clusterIP", "None", "selector", "smdb.io/instance", n->sts,
                     "publishNotReadyAddresses", 0, "ports", "name", "mysql", "port", c->port,
                     "targetPort", c->port, "protocol", "TCP");
}

static json_t *secret(const compute_rec *c, const kname *n, const char *token,
                      const char *password)
{
    char t64[256], p64[128];

    b64enc(token, t64, sizeof(t64));
    b64enc(password, p64, sizeof(p64));
    return json_pack("{s:s, s:s, s:o, s:s, s:{s:s, s:s}}", "apiVersion", "v1", "kind", "Secret",
                     "metadata", meta(n->secret, n, c), "type", "Opaque", "data",
                     "report-token", t64, "admin-password", p64);
}

static json_t *network_policy(const compute_rec *c, const kname *n)
{
    return json_pack(
        "{s:s, s:s, s:o, s:{s:{s:{s:s}}, s:[s, s],"
        " s:[{s:[{s:{s:o}}, {s:{s:o}}], s:[{s:s, s:i}]}],"
        " s:[{s:[{s:{s:o}}], s:[{s:s, s:i}]},"
        "    {s:[{s:{}, s:{s:o}}], s:[{s:s, s:i}, {s:s, s:i}]}]}}",
        "apiVersion", "networking.k8s.io/v1", "kind", "NetworkPolicy", "metadata",
        meta(n->sts, n, c), "spec", "podSelector", "matchLabels", "smdb.io/instance", n->sts,
        "policyTypes", "Ingress", "Egress",
        /* in: the proxies (clients) and the controller (readiness, drain) */
        "ingress", "from", "podSelector", "matchLabels", label_map(cfg->k8s_proxy_labels),
        "podSelector", "matchLabels", label_map(cfg->k8s_controller_labels), "ports",
        "protocol", "TCP", "port", c->port,
        /* out: the controller's report endpoint and the cluster DNS only */
        "egress", "to", "podSelector", "matchLabels", label_map(cfg->k8s_controller_labels),
        "ports", "protocol", "TCP", "port", cfg->k8s_controller_port,
        "to", "namespaceSelector", "podSelector", "matchLabels", label_map(cfg->k8s_dns_labels),
        "ports", "protocol", "UDP", "port", 53, "protocol", "TCP", "port", 53);
}

static int create_obj(const char *collection, json_t *body, char *err, size_t errlen)
{
    long s;

    if (body == NULL) {
        /* a json_pack format that does not match its arguments */
        snprintf(err, errlen, "internal error building the object for %s", collection);
        log_error("kubernetes: %s", err);
        return -1;
    }
    s = call("POST", collection, body, KUBE_JSON, NULL, err, errlen);

    json_decref(body);
    /* 409: made by an earlier attempt of this same create */
    return s == 201 || s == 200 || s == 202 || s == 409 ? 0 : -1;
}

static int scale(const kname *n, int replicas, char *err, size_t errlen)
{
    char path[256];
    json_t *body = json_pack("{s:{s:i}}", "spec", "replicas", replicas);
    long s;

    snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/statefulsets/%s", ns, n->sts);
    s = call("PATCH", path, body, KUBE_MERGE_PATCH, NULL, err, errlen);
    json_decref(body);
    return s == 200 ? 0 : -1;
}

/* ---- operations ---------------------------------------------------------- */

static int k_create(const compute_rec *c, const char *report_token, char *err, size_t errlen)
{
    kname n;
    char path[256], password[40];

    name_of(c->id, &n);
    if (random_alnum(password, 32) < 0) {
        snprintf(err, errlen, "no randomness");
        return -1;
    }
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/secrets", ns);
    if (create_obj(path, secret(c, &n, report_token ? report_token : "", password), err,
                   errlen) < 0)
        return -1;
    memset(password, 0, sizeof(password));
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/services", ns);
    if (create_obj(path, service(c, &n), err, errlen) < 0)
        return -1;
    snprintf(path, sizeof(path), "/apis/networking.k8s.io/v1/namespaces/%s/networkpolicies", ns);
    if (create_obj(path, network_policy(c, &n), err, errlen) < 0)
        return -1;
    /* created with 0 replicas: start() scales it up and waits */
    json_t *sts = statefulset(c, &n);
    json_object_set_new(json_object_get(sts, "spec"), "replicas", json_integer(0));
    snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/statefulsets", ns);
    return create_obj(path, sts, err, errlen);
}

/* Scales the StatefulSet to 1 and returns once its pod has an address
 * (the proxy's target); ready() then waits for it to serve. */
static int k_launch(const compute_rec *c, instance *out, char *err, size_t errlen)
{
    kname n;
    pod p;
    int64_t end = mono_ms() + cfg->start_timeout_ms;

    name_of(c->id, &n);
    if (scale(&n, 1, err, errlen) < 0)
        return -1;
    while (mono_ms() < end) {
        if (pod_get(&n, &p) == 1 && p.ip[0] && !p.deleting) {
            snprintf(out->id, sizeof(out->id), "%s", p.uid);
            snprintf(out->host, sizeof(out->host), "%s", p.ip);
            out->started_ms = p.started_ms;
            return 0;
        }
        usleep(20000);
    }
    snprintf(err, errlen, "pod %s got no address within %d ms", n.pod, cfg->start_timeout_ms);
    return -1;
}

/* Ready (the pod's probe) and then a real SELECT 1: the wake answers only
 * once a client would be served. */
static int k_ready(const compute_rec *c, char *err, size_t errlen)
{
    kname n;
    pod p;
    char password[64];
    int rc;

    name_of(c->id, &n);
    rc = pod_get(&n, &p);
    if (rc == 0 || (rc == 1 && p.deleting)) {
        snprintf(err, errlen, "pod %s is gone", n.pod);
        return -1;
    }
    if (rc < 0 || !p.ready || !p.ip[0]) {
        snprintf(err, errlen, "pod %s not ready yet", n.pod);
        return 1;
    }
    if (admin_password(c, password) < 0) {
        snprintf(err, errlen, "compute %s: no secret %s", c->id, n.secret);
        return -1;
    }
    rc = sql_ping_tcp(p.ip, c->port, ADMIN_USER, password, 2);
    memset(password, 0, sizeof(password));
    if (rc != 0) {
        snprintf(err, errlen, "pod %s does not answer SELECT 1 yet", n.pod);
        return 1;
    }
    crash_clear(n.pod);
    return 0;
}

static int k_stop(const compute_rec *c, char *err, size_t errlen)
{
    kname n;
    pod p;
    long long end = mono_ms() + cfg->stop_timeout_ms + 10000;
    int rc;

    name_of(c->id, &n);
    if (scale(&n, 0, err, errlen) < 0) {
        /* no StatefulSet: nothing runs */
        return strstr(err, "not found") ? 0 : -1;
    }
    /* returns once the pod is gone: its PVC is free for the next start */
    while ((rc = pod_get(&n, &p)) != 0) {
        if (mono_ms() > end) {
            snprintf(err, errlen, "pod %s still there after the stop timeout", n.pod);
            return -1;
        }
        usleep(50000);
    }
    return 0;
}

static int del(const char *path, char *err, size_t errlen)
{
    long s = call("DELETE", path, NULL, NULL, NULL, err, errlen);

    return s == 200 || s == 202 || s == 404 ? 0 : -1;
}

static int k_destroy(const compute_rec *c, char *err, size_t errlen)
{
    kname n;
    char path[320];
    int rc = 0;

    name_of(c->id, &n);
    forget_password(c->id);
    /* the pod first: a PVC in use is only marked for deletion (its
     * protection finalizer waits for the pod) */
    if (k_stop(c, err, errlen) < 0)
        return -1;
    snprintf(path, sizeof(path),
             "/apis/apps/v1/namespaces/%s/statefulsets/%s?propagationPolicy=Foreground", ns,
             n.sts);
    rc |= del(path, err, errlen);
    /* the PVC outlives its StatefulSet (retention Retain): deleted here,
     * and waited for, so a delete that answers has freed the storage */
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/persistentvolumeclaims/%s", ns, n.pvc);
    rc |= del(path, err, errlen);
    for (int64_t end = mono_ms() + 30000; rc == 0 && mono_ms() < end;) {
        if (call("GET", path, NULL, NULL, NULL, err, errlen) == 404)
            break;
        usleep(100000);
    }
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/services/%s", ns, n.sts);
    rc |= del(path, err, errlen);
    snprintf(path, sizeof(path), "/apis/networking.k8s.io/v1/namespaces/%s/networkpolicies/%s",
             ns, n.sts);
    rc |= del(path, err, errlen);
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/secrets/%s", ns, n.secret);
    rc |= del(path, err, errlen);
    return rc ? -1 : 0;
}

static inst_state k_status(const compute_rec *c, instance *out)
{
    kname n;
    pod p;
    int rc;

    name_of(c->id, &n);
    rc = pod_get(&n, &p);
    if (rc < 0)
        return INST_UNKNOWN;
    if (rc == 0 || p.deleting || p.crashed)
        /* gone, going, or restarted since it was started: its sessions died
         * with the old container, however fast the kubelet brought it back */
        return INST_GONE;
    if (out) {
        snprintf(out->id, sizeof(out->id), "%s", p.uid);
        snprintf(out->host, sizeof(out->host), "%s", p.ip);
        out->started_ms = p.started_ms;
    }
    /* a running pod that fails a readiness probe for a moment still serves
     * its sessions */
    return p.running && p.ip[0] ? INST_RUNNING : INST_STARTING;
}

static MYSQL *admin(const compute_rec *c, int timeout_s, char *err, size_t errlen)
{
    kname n;
    pod p;
    char password[64];
    MYSQL *m;

    name_of(c->id, &n);
    if (pod_get(&n, &p) != 1 || !p.ip[0]) {
        snprintf(err, errlen, "compute %s has no pod", c->id);
        return NULL;
    }
    if (admin_password(c, password) < 0) {
        snprintf(err, errlen, "compute %s: no secret", c->id);
        return NULL;
    }
    m = sql_connect_tcp(p.ip, c->port, ADMIN_USER, password, timeout_s, err, errlen);
    memset(password, 0, sizeof(password));
    return m;
}

static int k_admin_sql(const compute_rec *c, const char *q, char *err, size_t errlen)
{
    return sql_exec_close(admin(c, 10, err, errlen), q, err, errlen);
}

static int k_probe(const compute_rec *c, compute_probe *out)
{
    char err[256];

    return backend_probe_sql(admin(c, 5, err, sizeof(err)), ADMIN_USER, out);
}

/* In place where the cluster can (the pods/resize subresource, Kubernetes
 * 1.33+); the StatefulSet's template always, so that the next pod has the
 * size too (updateStrategy OnDelete: it applies at the next start, never
 * by restarting a serving pod). */
static int k_resize(const compute_rec *c, int cu, char *err, size_t errlen)
{
    kname n;
    char path[256];
    json_t *body;
    long s;

    name_of(c->id, &n);
    body = json_pack("{s:{s:{s:{s:[{s:s, s:o}]}}}}", "spec", "template", "spec", "containers",
                     "name", CONTAINER, "resources", resources(cu));
    snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/statefulsets/%s", ns, n.sts);
    s = call("PATCH", path, body, KUBE_STRATEGIC_PATCH, NULL, err, errlen);
    json_decref(body);
    if (s != 200)
        return -1;
    body = json_pack("{s:{s:[{s:s, s:o}]}}", "spec", "containers", "name", CONTAINER,
                     "resources", resources(cu));
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s/resize", ns, n.pod);
    s = call("PATCH", path, body, KUBE_STRATEGIC_PATCH, NULL, err, errlen);
    json_decref(body);
    if (s == 200)
        return 0;
    if (s == 404 || s == 405) {
        log_info("compute %s: no in-place pod resize here; %d CU from its next start", c->id,
                 cu);
        return 0;
    }
    return -1;
}

static long long k_storage_bytes(const compute_rec *c)
{
    /* the kubelet's volume stats are not the controller's to read */
    (void)c;
    return -1;
}

static bool k_available(char *err, size_t errlen)
{
    long s = call("GET", "/version", NULL, NULL, NULL, err, errlen);

    if (s == 200)
        return true;
    if (s > 0)
        snprintf(err, errlen, "kubernetes API at %s answers HTTP %ld", cfg->k8s_api, s);
    return false;
}

static int k_list(void (*fn)(const char *cid, void *arg), void *arg)
{
    char path[512], err[256] = "";
    json_t *doc = NULL, *item;
    size_t i;

    snprintf(path, sizeof(path),
             "/apis/apps/v1/namespaces/%s/statefulsets?labelSelector=smdb.io%%2Fprefix%%3D%s", ns,
             cfg->k8s_prefix);
    if (call("GET", path, NULL, NULL, &doc, err, sizeof(err)) != 200) {
        json_decref(doc);
        return -1;
    }
    json_array_foreach(json_object_get(doc, "items"), i, item) {
        const char *cid = json_string_value(json_object_get(
            json_object_get(json_object_get(item, "metadata"), "annotations"), "smdb.io/compute"));
        if (cid)
            fn(cid, arg);
    }
    json_decref(doc);
    return 0;
}

static int k_watch(void (*changed)(const char *cid))
{
    changed_fn = changed;
    return 0;
}

/* no freeze: a pod cannot be paused (can_freeze false, freeze/thaw NULL) */
static const backend kubernetes_backend = {
    .name = "kubernetes",
    .can_freeze = false,
    .create = k_create,
    .launch = k_launch,
    .stop = k_stop,
    .destroy = k_destroy,
    .resize = k_resize,
    .status = k_status,
    .ready = k_ready,
    .admin_sql = k_admin_sql,
    .probe = k_probe,
    .storage_bytes = k_storage_bytes,
    .available = k_available,
    .list = k_list,
    .watch = k_watch,
};

const backend *backend_kubernetes(const config *c, char *err, size_t errlen)
{
    pthread_t t;
    char why[256] = "";

    cfg = c;
    kube_init(c);
    snprintf(ns, sizeof(ns), "%s", c->k8s_namespace);
    if (!ns[0]) {
        /* in a cluster: the namespace of the controller's own pod */
        FILE *f = fopen("/var/run/secrets/kubernetes.io/serviceaccount/namespace", "r");
        if (f) {
            if (fgets(ns, sizeof(ns), f) == NULL)
                ns[0] = '\0';
            ns[strcspn(ns, "\r\n")] = '\0';
            fclose(f);
        }
    }
    if (!ns[0]) {
        snprintf(err, errlen, "k8s_namespace is not set and the controller runs in no pod");
        return NULL;
    }
    if (!k_available(why, sizeof(why)))
        log_warn("kubernetes backend: API unavailable for now (%s); computes wait for it", why);
    if (pthread_create(&t, NULL, watcher, NULL) != 0) {
        snprintf(err, errlen, "cannot start the pod watch");
        return NULL;
    }
    pthread_detach(t);
    log_info("kubernetes backend: API %s, namespace %s, image %s, prefix %s", c->k8s_api, ns,
             c->k8s_image, c->k8s_prefix);
    return &kubernetes_backend;
}
