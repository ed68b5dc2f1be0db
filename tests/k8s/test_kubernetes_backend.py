"""The controller's kubernetes backend end to end, against the FAKE API
server (tests/k8s/README.md: it validates every body against the real
schemas and answers like kube-apiserver, but it is not Kubernetes).  Its
"kubelet" runs each pod as a podman container of the compute image; nginx
with the module on the host reaches the pod IPs over the bridge, as the
proxy pods reach compute pods in a cluster.
"""
import glob
import os
import time

import pytest
import yaml

from conftest import PREFIX, ROOT, free_port, mysql, podman, wait_for
from fake_apiserver import FakeApiserver
from nginx_fixture import start_nginx

NS = "smdb"


def query(conn, sql):
    cur = conn.cursor()
    cur.execute(sql)
    return cur.fetchall()


class K:
    def __init__(self, fake, controller, ngx, network):
        self.fake = fake
        self.controller = controller
        self.ngx = ngx
        self.network = network

    def state(self, cid):
        st, c = self.controller.get(f"/api/v1/compute/{cid}")
        assert st == 200, (st, c)
        return c

    def get(self, path):
        st, doc, _ = self.fake.request("GET", path)
        return st, doc


def make_network(engine, name):
    engine.api("POST", "/networks/create", {"Name": name, "Driver": "bridge",
                                            "Labels": {"smdb.prefix": PREFIX}})
    _, net = engine.api("GET", f"/networks/{name}")
    return net["IPAM"]["Config"][0]["Gateway"]


@pytest.fixture
def kube(engine, compute_image, controller_factory, procs, run_dir):
    network = f"{PREFIX}-k8s"
    gw = make_network(engine, network)
    fake = FakeApiserver(procs, run_dir, namespace=NS, kubelet="podman", network=network,
                         prefix=PREFIX).start()
    port = free_port()
    ctl = controller_factory(
        backend="kubernetes", k8s_api=fake.url, k8s_token_file=fake.token_file,
        k8s_ca_file=fake.ca_file, k8s_namespace=NS, k8s_image=compute_image,
        k8s_storage_size="1Gi", listen=f"0.0.0.0:{port}",
        k8s_report_url=f"http://{gw}:{port}", k8s_proxy_networks=f"{gw}/32",
        cu_memory_mb="512", freeze_after_s="0", idle_timeout_s="3600",
        start_timeout_ms="90000", wake_timeout_ms="120000")
    ctl.port, ctl.url = port, f"http://127.0.0.1:{port}"
    ctl.start()
    ngx = start_nginx(procs, run_dir, ctl, proxy_bind=None, route="database user",
                      cache_ttl="100ms", timeout="120s")
    k = K(fake, ctl, ngx, network)
    yield k
    fake.stop()


def seed(k, doc, name):
    c = mysql(k.ngx.port, doc["admin_user"], doc["admin_password"], name)
    query(c, f"CREATE TABLE `{name}`.t (id INT PRIMARY KEY, v VARCHAR(20))")
    query(c, f"INSERT INTO `{name}`.t VALUES (1, 'one'), (2, 'two')")
    c.close()


def rows(k, doc, name):
    c = mysql(k.ngx.port, doc["admin_user"], doc["admin_password"], name)
    try:
        return query(c, f"SELECT id, v FROM `{name}`.t ORDER BY id")
    finally:
        c.close()


def names(k, cid):
    sts = f"smdb-{cid}"
    return {"sts": sts, "pod": f"{sts}-0", "secret": f"{sts}-secrets", "pvc": f"data-{sts}-0"}


def suspend(k, cid):
    st, doc = k.controller.post(f"/api/v1/compute/{cid}/suspend", {"mode": "stop"})
    assert st == 200, (st, doc)


def test_create_wake_rows_kept_across_scale_0_1(kube):
    k = kube
    doc = k.controller.create_project("kb1")
    cid = doc["compute_id"]
    n = names(k, cid)
    f = k.fake
    for path in (f.sts_path(n["sts"]), f.ns_path("services", n["sts"]),
                 f.ns_path("secrets", n["secret"]), f.ns_path("pods", n["pod"]),
                 f.ns_path("networkpolicies", n["sts"], group="networking.k8s.io/v1"),
                 f.ns_path("persistentvolumeclaims", n["pvc"])):
        st, obj = k.get(path)
        assert st == 200, (path, st, obj)
    st, pod = k.get(f.ns_path("pods", n["pod"]))
    assert k.state(cid)["host"] == pod["status"]["podIP"]
    st, np_ = k.get(f.ns_path("networkpolicies", n["sts"], group="networking.k8s.io/v1"))
    assert np_["spec"]["policyTypes"] == ["Ingress", "Egress"]
    seed(k, doc, "kb1")

    suspend(k, cid)
    assert k.state(cid)["state"] == "suspended"
    st, sts = k.get(f.sts_path(n["sts"]))
    assert sts["spec"]["replicas"] == 0
    assert k.get(f.ns_path("pods", n["pod"]))[0] == 404
    assert k.get(f.ns_path("persistentvolumeclaims", n["pvc"]))[0] == 200   # kept

    # a client through nginx scales it back to 1; the rows are on the PVC
    assert rows(k, doc, "kb1") == ((1, "one"), (2, "two"))
    assert k.get(f.sts_path(n["sts"]))[1]["spec"]["replicas"] == 1
    wait_for(lambda: k.state(cid).get("activity", {}).get("received_ms", 0) > 0, timeout=30,
             what="an activity report from the pod")


def test_delete_removes_every_object(kube):
    k = kube
    doc = k.controller.create_project("kb2")
    cid = doc["compute_id"]
    n = names(k, cid)
    f = k.fake
    st, _ = k.controller.delete("/api/v1/projects/kb2")
    assert st in (200, 204)
    for path in (f.sts_path(n["sts"]), f.ns_path("services", n["sts"]),
                 f.ns_path("secrets", n["secret"]), f.ns_path("pods", n["pod"]),
                 f.ns_path("networkpolicies", n["sts"], group="networking.k8s.io/v1"),
                 f.ns_path("persistentvolumeclaims", n["pvc"])):
        assert k.get(path)[0] == 404, path
    vols = podman("volume", "ls", "-q", "--filter", f"name={f.volume_name(n['pvc'])}").stdout
    assert vols.strip() == ""


def test_every_call_is_allowed_by_the_shipped_role(kube):
    k = kube
    doc = k.controller.create_project("kb3", min_cu=1, max_cu=2)
    cid = doc["compute_id"]
    st, _ = k.controller.post(f"/api/v1/compute/{cid}/resize", {"cu": 2})
    assert st == 200
    suspend(k, cid)
    assert k.controller.wake("kb3")[0] == 200
    k.controller.kill9()
    k.controller.start()
    k.controller.delete("/api/v1/projects/kb3")
    with open(os.path.join(ROOT, "deploy", "kubernetes", "rbac.yaml")) as fh:
        role = [d for d in yaml.safe_load_all(fh) if d and d["kind"] == "Role"][0]
    calls = k.fake.calls()
    verbs = {(c.get("apiGroup", ""), c["resource"] + ("/" + c["subresource"]
                                                      if c.get("subresource") else ""), c["verb"])
             for c in calls if c.get("user") == "fake-client" and "resource" in c}
    # the backend really used what the Role grants: create, patch, watch ...
    assert ("apps", "statefulsets", "patch") in verbs and ("", "pods", "watch") in verbs, verbs
    bad = [(c.get("apiGroup"), c["resource"], c.get("subresource"), c["verb"])
           for c in k.fake.rbac_violations(role)]
    assert bad == [], bad


def test_crash_noticed_through_the_watch_and_410_handled(kube):
    k = kube
    doc = k.controller.create_project("kb4")
    cid = doc["compute_id"]
    seed(k, doc, "kb4")
    n = names(k, cid)
    # the watch's history is compacted: the backend lists again and goes on
    k.fake.expire_watch()
    time.sleep(1)
    podman("kill", "-s", "KILL", k.fake.container_name(n["pod"]))
    comp = wait_for(lambda: (lambda c: c if c["state"] == "suspended" else None)(k.state(cid)),
                    timeout=20, what="the crash noticed")
    assert "exited" in comp.get("error", ""), comp
    assert rows(k, doc, "kb4") == ((1, "one"), (2, "two"))
    assert "listing again" in k.controller.log_tail(40000)


def test_api_errors_5xx_and_conflict(kube):
    k = kube
    doc = k.controller.create_project("kb5")
    cid = doc["compute_id"]
    seed(k, doc, "kb5")
    suspend(k, cid)
    # one failed scale-up: the proxy's retry gets the client in anyway
    k.fake.fault("PATCH", "/statefulsets/", 500, count=1)
    assert rows(k, doc, "kb5") == ((1, "one"), (2, "two"))
    assert any(c.get("fault") and c["verb"] == "patch" for c in k.fake.calls())
    suspend(k, cid)
    # the API server keeps failing: a clear MySQL error, the compute stays
    # suspended (with the reason), and once the server recovers a client gets in
    k.fake.fault("PATCH", "/statefulsets/", 503, count=-1)
    import pymysql
    with pytest.raises(pymysql.err.MySQLError):
        rows(k, doc, "kb5")
    comp = k.state(cid)
    assert comp["state"] == "suspended" and comp.get("error"), comp
    k.fake.control("DELETE", "/fake/faults")
    assert rows(k, doc, "kb5") == ((1, "one"), (2, "two"))
    # a create that meets objects from an earlier attempt (409) still works
    k.fake.fault("POST", "/services", 409, count=1, reason="AlreadyExists")
    doc6 = k.controller.create_project("kb6")
    assert k.state(doc6["compute_id"])["state"] == "running"


def test_controller_restart_adopts_the_running_pod(kube):
    k = kube
    doc = k.controller.create_project("kb7")
    cid = doc["compute_id"]
    seed(k, doc, "kb7")
    n = names(k, cid)
    uid = k.get(k.fake.ns_path("pods", n["pod"]))[1]["metadata"]["uid"]
    k.controller.kill9()
    k.controller.start()
    assert k.state(cid)["state"] == "running"
    assert rows(k, doc, "kb7") == ((1, "one"), (2, "two"))
    assert k.get(k.fake.ns_path("pods", n["pod"]))[1]["metadata"]["uid"] == uid


def test_shipped_manifests_pass_the_schemas(kube):
    """deploy/kubernetes validated by the fake's schema checks (required
    fields, types, enums, quantities, unknown fields)."""
    f = kube.fake
    paths = {"ServiceAccount": "serviceaccounts", "Role": "roles", "RoleBinding": "rolebindings",
             "ConfigMap": "configmaps", "Service": "services", "StatefulSet": "statefulsets",
             "Deployment": "deployments", "NetworkPolicy": "networkpolicies",
             "Namespace": None}
    checked = 0
    for fn in sorted(glob.glob(os.path.join(ROOT, "deploy", "kubernetes", "*.yaml"))):
        if fn.endswith("kustomization.yaml"):
            continue
        with open(fn) as fh:
            for d in yaml.safe_load_all(fh):
                if not d:
                    continue
                st, out, _ = f.request("POST", "/fake/validate", d, token=f.control_token)
                assert st == 200, (fn, d["kind"], d["metadata"]["name"], out)
                checked += 1
    assert checked >= 12
