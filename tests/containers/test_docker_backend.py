"""The controller's docker backend against a real engine: podman's Docker
Engine API service, real compute containers from images/compute, nginx
with the module on the host reaching them over the bridge network.

Each test gets a network of its own (the run's prefix, so teardown finds
everything), and the controller is configured the way an operator would:
docker_proxy_networks = where nginx connects from (the bridge's gateway),
docker_report_url = the controller's address as the containers see it.
"""
import json
import os
import signal
import subprocess
import time
import urllib.parse

import pytest

from conftest import PREFIX, podman, wait_for, mysql  # noqa: F401 (re-exported by conftest)
from nginx_fixture import start_nginx


def query(conn, sql):
    cur = conn.cursor()
    cur.execute(sql)
    return cur.fetchall()


class Setup:
    def __init__(self, engine, controller, ngx, network, gateway):
        self.engine = engine
        self.controller = controller
        self.ngx = ngx
        self.network = network
        self.gateway = gateway

    def container(self, cid):
        return self.engine.inspect(f"{PREFIX}-{cid}")

    def state(self, cid):
        st, c = self.controller.get(f"/api/v1/compute/{cid}")
        assert st == 200, (st, c)
        return c


def make_network(engine, name):
    st, doc = engine.api("POST", "/networks/create", {
        "Name": name, "Driver": "bridge", "Labels": {"smdb.prefix": PREFIX}})
    _, net = engine.api("GET", f"/networks/{name}")
    subnets = [c for c in (net.get("IPAM", {}).get("Config") or [])]
    gateway = subnets[0].get("Gateway")
    assert gateway, net
    return gateway


def controller_opts(engine, image, network, gateway, port):
    return {
        "backend": "docker",
        "docker_socket": engine.socket,
        "docker_image": image,
        "docker_network": network,
        "docker_prefix": PREFIX,
        # the containers reach the controller through the bridge
        "listen": f"0.0.0.0:{port}",
        "docker_report_url": f"http://{gateway}:{port}",
        "docker_proxy_networks": f"{gateway}/32",
        "cu_memory_mb": "512",
        "freeze_after_s": "0",
        "idle_timeout_s": "3600",
        "start_timeout_ms": "60000",
    }


def make_setup(engine, image, controller_factory, procs, run_dir):
    from conftest import free_port
    network = f"{PREFIX}-{os.urandom(3).hex()}"
    gateway = make_network(engine, network)
    port = free_port()
    ctl = controller_factory(**controller_opts(engine, image, network, gateway, port))
    ctl.port = port
    ctl.url = f"http://127.0.0.1:{port}"
    ctl.start()
    # a short cache: the tests suspend through the API and connect at once
    ngx = start_nginx(procs, run_dir, ctl, proxy_bind=None, route="database user",
                      cache_ttl="100ms")
    return Setup(engine, ctl, ngx, network, gateway)


@pytest.fixture
def setup(engine, compute_image, controller_factory, procs, run_dir):
    return make_setup(engine, compute_image, controller_factory, procs, run_dir)


def create(s, name):
    doc = s.controller.create_project(name)
    return doc, doc["compute_id"]


def rows(s, doc, name):
    c = mysql(s.ngx.port, doc["admin_user"], doc["admin_password"], name)
    try:
        return query(c, f"SELECT id, v FROM `{name}`.t ORDER BY id")
    finally:
        c.close()


def seed(s, doc, name):
    c = mysql(s.ngx.port, doc["admin_user"], doc["admin_password"], name)
    query(c, f"CREATE TABLE `{name}`.t (id INT PRIMARY KEY, v VARCHAR(20))")
    query(c, f"INSERT INTO `{name}`.t VALUES (1, 'one'), (2, 'two')")
    c.close()


def suspend(s, cid, mode):
    st, doc = s.controller.post(f"/api/v1/compute/{cid}/suspend", {"mode": mode})
    assert st == 200, (st, doc)
    return doc


def test_wake_through_nginx_rows_kept_across_stop_start(setup):
    s = setup
    doc, cid = create(s, "dk1")
    ctr = s.container(cid)
    assert ctr and ctr["State"]["Running"], ctr
    ip = ctr["NetworkSettings"]["Networks"][s.network]["IPAddress"]
    comp = s.state(cid)
    assert comp["state"] == "running" and comp["host"] == ip, comp
    # the compute container runs unprivileged and limited
    assert ctr["HostConfig"]["CapDrop"] and ctr["Config"]["User"] == "mysql", ctr["Config"]
    assert ctr["Config"]["Labels"]["smdb.compute"] == cid
    seed(s, doc, "dk1")

    suspend(s, cid, "stop")
    assert s.state(cid)["state"] == "suspended"
    assert not s.container(cid)["State"]["Running"]

    # a client through nginx wakes the stopped container; the rows are there
    t0 = time.time()
    assert rows(s, doc, "dk1") == ((1, "one"), (2, "two"))
    assert time.time() - t0 < 30
    ctr = s.container(cid)
    assert ctr["State"]["Running"]
    assert s.state(cid)["host"] == ctr["NetworkSettings"]["Networks"][s.network]["IPAddress"]
    # the plugin in the container reports to the controller
    wait_for(lambda: s.state(cid).get("activity", {}).get("received_ms", 0) > 0,
             timeout=30, what="an activity report")

    # the controller's account gave up everything but PROCESS at creation
    c = mysql(s.ngx.port, doc["admin_user"], doc["admin_password"], "dk1")
    grants = " ".join(g[0] for g in query(c, "SHOW GRANTS FOR 'smdb_admin'@'%'"))
    c.close()
    assert "ALL PRIVILEGES ON *.*" not in grants and "SUPER" not in grants, grants


def test_pause_unpause(setup):
    s = setup
    doc, cid = create(s, "dk2")
    seed(s, doc, "dk2")
    suspend(s, cid, "freeze")
    comp = s.state(cid)
    assert comp["state"] == "suspended" and comp["mode"] == "frozen", comp
    assert s.container(cid)["State"]["Paused"]
    pid = s.container(cid)["State"]["Pid"]
    assert rows(s, doc, "dk2") == ((1, "one"), (2, "two"))
    ctr = s.container(cid)
    assert ctr["State"]["Running"] and not ctr["State"]["Paused"]
    assert ctr["State"]["Pid"] == pid        # thawed, not restarted


def test_controller_restart_adopts_running_containers(setup):
    s = setup
    doc, cid = create(s, "dk3")
    seed(s, doc, "dk3")
    started = s.container(cid)["State"]["StartedAt"]
    s.controller.kill9()
    s.controller.start()
    comp = s.state(cid)
    assert comp["state"] == "running", comp
    assert rows(s, doc, "dk3") == ((1, "one"), (2, "two"))
    assert s.container(cid)["State"]["StartedAt"] == started    # adopted, not restarted


def test_kill9_of_compute_container_noticed(setup):
    s = setup
    doc, cid = create(s, "dk4")
    seed(s, doc, "dk4")
    podman("kill", "-s", "KILL", f"{PREFIX}-{cid}")
    comp = wait_for(lambda: (lambda c: c if c["state"] == "suspended" else None)(s.state(cid)),
                    timeout=10, what="the crash noticed")
    assert "exited" in comp.get("error", ""), comp
    # the next client starts it again; committed rows survived the kill
    assert rows(s, doc, "dk4") == ((1, "one"), (2, "two"))


def test_removed_container_recreated_from_volume(setup):
    s = setup
    doc, cid = create(s, "dk5")
    seed(s, doc, "dk5")
    podman("rm", "-f", "-t", "0", f"{PREFIX}-{cid}")
    wait_for(lambda: s.state(cid)["state"] == "suspended", timeout=10, what="the removal noticed")
    assert rows(s, doc, "dk5") == ((1, "one"), (2, "two"))
    assert s.container(cid)["State"]["Running"]


def test_delete_removes_container_and_volume(setup):
    s = setup
    doc, cid = create(s, "dk6")
    st, _ = s.controller.delete("/api/v1/projects/dk6")
    assert st in (200, 204), st
    assert s.container(cid) is None
    st, _ = s.engine.api("GET", f"/volumes/{PREFIX}-{cid}-data", check=False)
    assert st == 404


def test_engine_down_then_back(setup):
    s = setup
    doc, cid = create(s, "dk7")
    seed(s, doc, "dk7")
    suspend(s, cid, "stop")
    s.engine.stop()
    st, h = s.controller.get("/healthz", token=None)
    assert st == 503 and h["backend"]["available"] is False, (st, h)
    assert h["redis"] is True
    # API calls that need the engine: a JSON 503, no record made
    st, e = s.controller.post("/api/v1/projects", {"id": "dk8"})
    assert st == 503 and e["code"] == "backend_unavailable", (st, e)
    st, _ = s.controller.get("/api/v1/projects/dk8")
    assert st == 404
    # the client through nginx gets a MySQL error, not a hang
    import pymysql
    with pytest.raises(pymysql.err.MySQLError):
        rows(s, doc, "dk7")
    # the running scheduler concludes nothing from an engine it cannot ask
    time.sleep(1)
    assert s.state(cid)["state"] == "suspended"
    s.engine.start()
    wait_for(lambda: s.controller.get("/healthz", token=None)[0] == 200, timeout=10,
             what="healthz back")
    assert rows(s, doc, "dk7") == ((1, "one"), (2, "two"))


def test_mariadb_11_8_compute_image(engine, compute_image_11_8, controller_factory, procs,
                                    run_dir):
    """The same image definition on MariaDB 11.8: the plugin is built against
    that server's headers; create, stop, wake, pause, unpause."""
    s = make_setup(engine, compute_image_11_8, controller_factory, procs, run_dir)
    doc, cid = create(s, "dk9")
    seed(s, doc, "dk9")
    c = mysql(s.ngx.port, doc["admin_user"], doc["admin_password"], "dk9")
    assert query(c, "SELECT VERSION()")[0][0].startswith("11.8")
    c.close()
    wait_for(lambda: s.state(cid).get("activity", {}).get("received_ms", 0) > 0,
             timeout=30, what="an activity report from the 11.8 plugin")
    suspend(s, cid, "stop")
    assert rows(s, doc, "dk9") == ((1, "one"), (2, "two"))
    suspend(s, cid, "freeze")
    assert s.container(cid)["State"]["Paused"]
    assert rows(s, doc, "dk9") == ((1, "one"), (2, "two"))


def test_reconcile_stops_containers_the_store_does_not_know(setup):
    """A container under the controller's prefix whose compute has no record
    (deleted while the controller was down): stopped at the next start, its
    volume kept."""
    s = setup
    doc, cid = create(s, "dk10")
    s.controller.kill9()
    r = s.controller.redis
    assert r.cli("DEL", f"smdb:compute:{cid}") == "1"
    s.controller.start()
    wait_for(lambda: not s.container(cid)["State"]["Running"], timeout=30,
             what="the stray container stopped")
    st, _ = s.engine.api("GET", f"/volumes/{PREFIX}-{cid}-data", check=False)
    assert st == 200
    assert "store does not know" in s.controller.log_tail(20000)


def cgroup_memory_limit(container_id):
    import glob
    hits = glob.glob(f"/sys/fs/cgroup/memory/**/*{container_id}*/memory.limit_in_bytes",
                     recursive=True)
    assert hits, "no memory cgroup for " + container_id
    with open(hits[0]) as f:
        return int(f.read())


def test_resize_changes_container_limits(setup):
    s = setup
    doc = s.controller.create_project("dk11", min_cu=1, max_cu=2)
    cid = doc["compute_id"]
    ctr = s.container(cid)
    assert cgroup_memory_limit(ctr["Id"]) == 512 << 20
    st, c = s.controller.post(f"/api/v1/compute/{cid}/resize", {"cu": 2})
    assert st == 200 and c["size_cu"] == 2, (st, c)
    assert cgroup_memory_limit(ctr["Id"]) == 1024 << 20
    # outside the project's range, or not an integer: a JSON 400
    st, e = s.controller.post(f"/api/v1/compute/{cid}/resize", {"cu": 3})
    assert st == 400 and e["code"] == "invalid_field", (st, e)
    st, e = s.controller.post(f"/api/v1/compute/{cid}/resize", {"cu": "2"})
    assert st == 400, (st, e)
    # a suspended compute is not resized
    suspend(s, cid, "stop")
    st, e = s.controller.post(f"/api/v1/compute/{cid}/resize", {"cu": 1})
    assert st == 409 and e["code"] == "not_running", (st, e)
