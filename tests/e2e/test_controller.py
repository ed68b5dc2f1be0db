"""End-to-end tests of the controller with real redis-server and mariadbd."""
import concurrent.futures
import os
import signal
import time

import pytest

from conftest import Procs, mysql, pid_alive


def make_rows(doc, n=3):
    c = mysql(doc["compute"]["port"], doc["admin_user"], doc["admin_password"])
    cur = c.cursor()
    cur.execute("CREATE DATABASE IF NOT EXISTS app")
    cur.execute("CREATE TABLE IF NOT EXISTS app.t (id INT PRIMARY KEY, v VARCHAR(20))")
    for i in range(n):
        cur.execute("INSERT INTO app.t VALUES (%s, %s)", (i, f"row{i}"))
    c.close()


def read_rows(doc):
    c = mysql(doc["compute"]["port"], doc["admin_user"], doc["admin_password"], "app")
    cur = c.cursor()
    cur.execute("SELECT id, v FROM t ORDER BY id")
    rows = cur.fetchall()
    c.close()
    return [tuple(r) for r in rows]


def mariadbd_pids(controller):
    """mariadbd processes whose command line names this test's data dir."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"mariadbd") and controller.data_dir.encode() in b" ".join(cmd):
            if pid_alive(int(d)):
                out.append(int(d))
    return out


def wait_state(controller, project, want, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        c = controller.compute(project)
        if c["state"] == want:
            return c
        time.sleep(0.05)
    raise AssertionError(f"compute of {project} not {want}: {c}")


def test_create_write_suspend_resume_rows_survive(controller):
    doc = controller.create_project("rows")
    assert doc["compute"]["state"] == "running"
    assert doc["admin_user"] and len(doc["admin_password"]) >= 20
    make_rows(doc)
    st, comp = controller.post(f"/api/v1/compute/{doc['compute_id']}/suspend", {"mode": "stop"})
    assert st == 200, comp
    assert comp["state"] == "suspended" and comp["mode"] == "stopped"
    assert mariadbd_pids(controller) == []
    st, w = controller.wake("rows")
    assert st == 200, w
    assert w["cold_start"] == "started"
    assert w["address"] == f"127.0.0.1:{doc['compute']['port']}"
    assert read_rows(doc) == [(0, "row0"), (1, "row1"), (2, "row2")]
    # the password is returned once and stored nowhere in Redis
    dump = controller.redis.cli("--scan")
    for key in dump.split():
        t = controller.redis.cli("TYPE", key)
        if t == "hash":
            assert doc["admin_password"] not in controller.redis.cli("HGETALL", key)


def test_freeze_thaw_cycle(controller):
    doc = controller.create_project("frz")
    make_rows(doc, 1)
    pids = mariadbd_pids(controller)
    assert len(pids) == 1
    st, comp = controller.post(f"/api/v1/compute/{doc['compute_id']}/suspend", {"mode": "freeze"})
    assert st == 200, comp
    assert comp["state"] == "suspended" and comp["mode"] == "frozen"
    # frozen: same process, not runnable
    assert mariadbd_pids(controller) == pids
    with open(f"/proc/{pids[0]}/cgroup") as f:
        cg = [l for l in f if l.startswith("0::")][0].split("::")[1].strip()
    if "/smdb/" in cg:
        with open(f"/sys/fs/cgroup/unified{cg}/cgroup.events") as f:
            assert "frozen 1" in f.read()
    else:
        with open(f"/proc/{pids[0]}/stat") as f:
            assert f.read().split(")")[1].split()[0] == "T"
    st, w = controller.wake("frz")
    assert st == 200 and w["cold_start"] == "thawed", w
    assert mariadbd_pids(controller) == pids
    assert read_rows(doc) == [(0, "row0")]
    # again: running answers at once
    st, w = controller.wake("frz")
    assert st == 200 and w["cold_start"] == "running"


def test_concurrent_wakes_start_once(controller):
    doc = controller.create_project("herd")
    st, _ = controller.post(f"/api/v1/compute/{doc['compute_id']}/suspend", {"mode": "stop"})
    assert st == 200
    starts_before = metric(controller, "smdb_compute_starts_total")
    with concurrent.futures.ThreadPoolExecutor(50) as ex:
        results = list(ex.map(lambda _: controller.wake("herd"), range(50)))
    assert all(st == 200 for st, _ in results), results
    addrs = {w["address"] for _, w in results}
    assert addrs == {f"127.0.0.1:{doc['compute']['port']}"}
    assert sum(1 for _, w in results if w["cold_start"] == "started") == 1
    assert metric(controller, "smdb_compute_starts_total") == starts_before + 1
    assert len(mariadbd_pids(controller)) == 1


def metric(controller, name, labels=""):
    st, text = controller.request("GET", "/metrics")
    assert st == 200
    for line in text.splitlines():
        if line.startswith(name + labels + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name}{labels} not in metrics")


def test_kill9_controller_adopts_running_compute(controller):
    doc = controller.create_project("adopt")
    make_rows(doc, 2)
    pids = mariadbd_pids(controller)
    assert len(pids) == 1
    controller.kill9()
    # the server keeps serving without its controller
    assert read_rows(doc) == [(0, "row0"), (1, "row1")]
    controller.start()
    comp = controller.compute("adopt")
    assert comp["state"] == "running"
    assert comp["pid"] == pids[0]
    st, w = controller.wake("adopt")
    assert st == 200 and w["cold_start"] == "running"
    assert w["port"] == doc["compute"]["port"]
    assert mariadbd_pids(controller) == pids


def test_kill9_mariadbd_is_noticed_and_restarted(controller):
    doc = controller.create_project("crash")
    make_rows(doc, 3)
    pids = mariadbd_pids(controller)
    assert len(pids) == 1
    os.kill(pids[0], signal.SIGKILL)
    comp = wait_state(controller, "crash", "suspended", timeout=10)
    assert comp["mode"] == "stopped"
    assert "exited" in comp.get("error", "")
    st, w = controller.wake("crash")
    assert st == 200 and w["cold_start"] == "started", w
    assert read_rows(doc) == [(0, "row0"), (1, "row1"), (2, "row2")]
    assert metric(controller, "smdb_compute_crashes_total") == 1


def test_kill9_controller_mid_start_recovers(controller):
    """A controller killed while a wake is starting the compute: the next
    controller finishes or rolls back, and a wake then serves."""
    doc = controller.create_project("midstart")
    controller.post(f"/api/v1/compute/{doc['compute_id']}/suspend", {"mode": "stop"})
    import threading
    def wake():
        try:
            controller.wake("midstart", timeout=30)
        except OSError:
            pass  # the controller died under this request: expected
    t = threading.Thread(target=wake)
    t.start()
    time.sleep(0.03)
    controller.kill9()
    t.join()
    controller.start()
    st, w = controller.wake("midstart")
    assert st == 200, w
    assert len(mariadbd_pids(controller)) == 1
    make_rows(doc, 1)


def test_api_auth(controller):
    for token in (None, "wrong", controller.wake_token):
        st, doc = controller.get("/api/v1/projects", token=token)
        assert st == 401 and doc["code"] == "unauthorized", (token, st, doc)
    st, doc = controller.get("/wake_compute?endpointish=x", token=controller.token)
    assert st == 401
    st, doc = controller.get("/wake_compute?endpointish=x", token=None)
    assert st == 401
    st, doc = controller.request("GET", "/metrics", token=None)
    assert st == 401
    st, doc = controller.get("/api/v1/projects")
    assert st == 200 and doc == {"projects": []}


def snapshot(redis):
    """Redis content, less what changes by itself (counters, plugin reports,
    activity times, the autoscaler's view of those reports)."""
    keys = sorted(k for k in redis.cli("--scan").split() if not k.startswith("smdb:metrics")
                  and not k.startswith("smdb:hist"))
    snap = {}
    for k in keys:
        t = redis.cli("TYPE", k)
        if t == "hash":
            items = redis.cli("HGETALL", k).split("\n")
            pairs = dict(zip(items[0::2], items[1::2]))
            snap[k] = {f: v for f, v in pairs.items()
                       if not f.startswith(("act_", "as_")) and f != "last_activity_ms"}
        elif t == "set":
            snap[k] = sorted(redis.cli("SMEMBERS", k).split())
        else:
            snap[k] = t
    return snap


@pytest.mark.parametrize("body,status,code", [
    (b"{not json", 400, "invalid_json"),
    (b"[1,2]", 400, "invalid_json"),
    (b"", 400, "invalid_json"),
    (b'{"id": 5}', 400, "invalid_field"),
    (b'{"id": "Bad_Id"}', 400, "invalid_project_id"),
    (b'{"id": "' + b"a" * 64 + b'"}', 400, "invalid_project_id"),
    (b'{"id": "ok", "idle_timeout_s": "10"}', 400, "invalid_field"),
    (b'{"id": "ok", "idle_timeout_s": -1}', 400, "invalid_field"),
    (b'{"id": "ok", "colour": "blue"}', 400, "unknown_field"),
    (b'{"id": "ok", "min_cu": 4, "max_cu": 2}', 400, "invalid_field"),
])
def test_bad_create_requests_change_nothing(controller, body, status, code):
    before = snapshot(controller.redis)
    st, doc = controller.request("POST", "/api/v1/projects", body=body)
    assert (st, doc["code"]) == (status, code), doc
    assert "error" in doc
    assert snapshot(controller.redis) == before


def test_unknown_and_conflicting(controller):
    controller.create_project("dup")
    before = snapshot(controller.redis)
    st, doc = controller.post("/api/v1/projects", {"id": "dup"})
    assert st == 409 and doc["code"] == "project_exists"
    st, doc = controller.get("/api/v1/projects/nope")
    assert st == 404 and doc["code"] == "unknown_project"
    st, doc = controller.get("/api/v1/projects/BAD")
    assert st == 400 and doc["code"] == "invalid_project_id"
    st, doc = controller.wake("nope")
    assert st == 404 and doc["code"] == "unknown_project"
    st, doc = controller.wake("in..valid")
    assert st == 400 and doc["code"] == "invalid_project_id"
    st, doc = controller.get("/api/v1/compute/nope-123456")
    assert st == 404
    st, doc = controller.post("/api/v1/compute/nope-123456/suspend", {"mode": "stop"})
    assert st == 404
    st, doc = controller.post("/api/v1/compute/" + controller.compute("dup")["id"] + "/suspend",
                              {"mode": "sideways"})
    assert st == 400 and doc["code"] == "invalid_field"
    st, doc = controller.get("/api/v1/nothing")
    assert st == 404
    assert snapshot(controller.redis) == before


def test_delete_project_stops_and_removes(controller):
    doc = controller.create_project("gone")
    assert len(mariadbd_pids(controller)) == 1
    st, d = controller.delete("/api/v1/projects/gone")
    assert st == 200, d
    assert mariadbd_pids(controller) == []
    st, _ = controller.get("/api/v1/projects/gone")
    assert st == 404
    assert not os.path.exists(os.path.join(controller.data_dir, doc["compute_id"]))
    # the name can be used again
    controller.create_project("gone")


def test_scheduler_suspends_idle_compute_but_not_a_connected_one(controller):
    # freezing off: a compute with a quiet session would be frozen with it
    # open, which only a client behind the proxy survives (test_idle_freeze.py)
    doc = controller.create_project("idle", idle_timeout_s=2, freeze_after_s=0)
    conn = mysql(doc["compute"]["port"], doc["admin_user"], doc["admin_password"])
    time.sleep(5)   # far past both timeouts, but a client is connected
    assert controller.compute("idle")["state"] == "running"
    conn.cursor().execute("SELECT 1")
    conn.close()
    c = wait_state(controller, "idle", "suspended", timeout=15)
    assert c["mode"] in ("frozen", "stopped")
    c = wait_state_mode(controller, "idle", "stopped", timeout=15)
    st, w = controller.wake("idle")
    assert st == 200 and w["cold_start"] == "started"


def wait_state_mode(controller, project, mode, timeout):
    end = time.time() + timeout
    while time.time() < end:
        c = controller.compute(project)
        if c["state"] == "suspended" and c.get("mode") == mode:
            return c
        time.sleep(0.05)
    raise AssertionError(f"not suspended/{mode}: {c}")


def test_cli(controller):
    import subprocess
    from conftest import CTL_BIN
    env = dict(os.environ, SMDB_URL=controller.url, SMDB_API_TOKEN=controller.token,
               SMDB_WAKE_TOKEN=controller.wake_token)
    run = lambda *a: subprocess.run([CTL_BIN, *a], env=env, capture_output=True, text=True,
                                    timeout=60)
    r = run("project", "create", "clip", "--idle-timeout", "100")
    assert r.returncode == 0, r.stderr
    assert '"admin_password"' in r.stdout
    r = run("project", "list")
    assert r.returncode == 0 and '"clip"' in r.stdout
    cid = controller.compute("clip")["id"]
    r = run("compute", "suspend", cid, "--freeze")
    assert r.returncode == 0 and '"frozen"' in r.stdout, r.stdout
    r = run("compute", "resume", cid)
    assert r.returncode == 0 and '"running"' in r.stdout
    r = run("project", "show", "nope")
    assert r.returncode == 1 and "404" in r.stderr
    r = run("project", "delete", "clip")
    assert r.returncode == 0


def test_concurrent_first_creates(controller):
    """Creates run in parallel on the API's workers; the first ones also
    build the shared plugin directory: none may fail for another's sake."""
    import threading
    out = []

    def create(i):
        out.append(controller.post("/api/v1/projects", {"id": f"conc{i}"})[0])

    threads = [threading.Thread(target=create, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert out == [201] * 12, out
