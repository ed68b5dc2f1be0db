"""End-to-end tests of compute units and the autoscaler (docs/autoscaling.md):
a real controller (process backend: cgroup v1 memory and CPU limits), real
mariadbd computes, nginx with the module and sysbench for the load.

Small units so that 1 -> 4 CU is a real change on a 2-core box:
cu_millicpus=250, cu_buffer_pool_mb=16, cu_memory_mb=256."""
import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import mysql, report_token, wait_for
from nginx_fixture import start_nginx

MIB = 1024 * 1024
CG1 = "/sys/fs/cgroup"
SYSBENCH = "/usr/bin/sysbench"

SMALL_CU = dict(cu_millicpus=250, cu_buffer_pool_mb=16, cu_memory_mb=256,
                cu_max_connections=20, report_interval_s=1)
# quick enough to watch in a test, the same rules as the defaults
QUICK = dict(autoscale_up_cooldown_s=2, autoscale_down_cooldown_s=3,
             autoscale_down_after_s=4)


def now_ms():
    return int(time.time() * 1000)


def cg1(ctl_name, cid, leaf):
    with open(os.path.join(CG1, ctl_name, "smdb", cid, leaf)) as f:
        return int(f.read().split()[0])


def have_cg1():
    return all(os.access(os.path.join(CG1, k), os.W_OK) for k in ("memory", "cpu"))


def post_report(ctl, cid, token, body):
    req = urllib.request.Request(
        f"{ctl.url}/api/v1/compute/{cid}/activity", data=json.dumps(body).encode(),
        method="POST", headers={"Authorization": f"Bearer {token}",
                                "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def metric(text, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} ") or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return None


def rfc3339(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def usage_intervals(ctl, project, since_ms):
    q = urllib.parse.urlencode({"from": rfc3339(since_ms - 60_000),
                                "to": rfc3339(now_ms() + 60_000)})
    st, doc = ctl.get(f"/api/v1/projects/{project}/usage?{q}")
    assert st == 200, doc
    return doc


class FakePlugin:
    """Reports as a plugin would, with a higher seq than the real one's (so
    the real plugin's own reports are stale from here on): lets a test set
    the signals exactly."""

    def __init__(self, ctl, cid):
        self.ctl, self.cid = ctl, cid
        self.token = report_token(ctl, cid)
        self.seq = 10 ** 9
        self.start = wait_for(lambda: int(ctl.redis.cli("HGET", f"smdb:compute:{cid}",
                                                        "act_start_ms") or 0),
                              timeout=30, what="a first plugin report")
        self.cpu_ms = 0
        self.last = time.time()

    def burn(self, cu, share=1.0):
        """CPU time as if the server used `share` of what cu units allow
        since the last call."""
        t = time.time()
        self.cpu_ms += int((t - self.last) * 1000 * cu * 250 / 1000 * share)
        self.last = t

    def send(self, **signals):
        self.seq += 1
        now = now_ms()
        body = {"compute_id": self.cid, "seq": self.seq, "connections": 0, "connects": 1,
                "failed_connects": 0, "disconnects": 1, "queries": 1,
                "last_activity_ms": now, "sent_at_ms": now,
                "uptime_s": (now - self.start) // 1000, "cpu_ms": self.cpu_ms}
        body.update(signals)
        return post_report(self.ctl, self.cid, self.token, body)


@pytest.mark.skipif(not have_cg1(), reason="no writable cgroup v1 memory and cpu controllers")
def test_sizes_follow_reported_load_and_billing_follows_sizes(controller_factory):
    ctl = controller_factory(**SMALL_CU, **QUICK).start()
    t0 = now_ms()
    p = ctl.create_project("as-rep", min_cu=1, max_cu=4, idle_timeout_s=3600, freeze_after_s=0)
    cid = p["compute_id"]
    c = ctl.compute("as-rep")
    assert c["state"] == "running" and c["cu"] == 1
    # one CU, everywhere: cgroup limits, the server's pool and sessions
    assert cg1("memory", cid, "memory.limit_in_bytes") == 256 * MIB
    assert cg1("cpu", cid, "cpu.cfs_quota_us") == 25000
    assert cg1("cpu", cid, "cpu.cfs_period_us") == 100000
    with open(os.path.join(CG1, "memory", "smdb", cid, "cgroup.procs")) as f:
        assert str(c["pid"]) in f.read().split()
    db = mysql(c["port"], p["admin_user"], p["admin_password"])
    cur = db.cursor()
    cur.execute("SELECT @@innodb_buffer_pool_size, @@max_connections")
    assert cur.fetchone() == (16 * MIB, 20 + 10)
    db.close()

    fake = FakePlugin(ctl, cid)
    # malformed signals are refused like any other field
    st, doc = fake.send(threads_running=-1)
    assert st == 400 and "threads_running" in json.dumps(doc), doc
    st, doc = fake.send()
    assert st == 200 and doc["target"] == {"buffer_pool_bytes": 16 * MIB,
                                           "max_connections": 30, "cu": 1}, doc

    # saturated: every report says it used all the CPU its size allows
    def busy():
        cu = ctl.compute("as-rep")["cu"]
        fake.burn(cu)
        st, doc = fake.send(threads_running=1, bp_pages_total=1024 * cu, bp_pages_data=100,
                            bp_read_requests=1000, bp_reads=0)
        assert st == 200, doc
        return cu
    t_up = time.time()
    while busy() < 4:
        assert time.time() - t_up < 30, ctl.log_tail()
        time.sleep(1.0)
    up_s = time.time() - t_up
    c = ctl.compute("as-rep")
    assert c["cu"] == 4 and c["size_cu"] == 4
    assert cg1("memory", cid, "memory.limit_in_bytes") == 4 * 256 * MIB
    assert cg1("cpu", cid, "cpu.cfs_quota_us") == 100000
    st, doc = fake.send()
    assert doc["target"] == {"buffer_pool_bytes": 64 * MIB, "max_connections": 90, "cu": 4}
    assert c["autoscale"]["last_decision"].startswith("up 2->4: cpu"), c["autoscale"]
    # 1 -> 2 -> 4: a saturated compute doubles
    st, text = ctl.get("/metrics")
    assert metric(text, "smdb_autoscale_decisions_total", direction="up", reason="cpu") == 2
    assert metric(text, "smdb_compute_cu", compute=cid, project="as-rep") == 4
    assert metric(text, "smdb_autoscale_cpu_utilization", compute=cid, project="as-rep") >= 0.75
    assert re.search(r"autoscale up 1 -> 2 CU \(cpu; cpu \d+\.\d% of 250 millicpus",
                     ctl.log_tail(20000)), ctl.log_tail()

    # idle: one unit at a time, each after a low period of its own
    seen, t_down = [4], time.time()
    while seen[-1] > 1:
        assert time.time() - t_down < 60, (seen, ctl.log_tail())
        fake.burn(seen[-1], share=0.02)
        fake.send(threads_running=1, bp_pages_total=1024, bp_pages_data=100,
                  bp_read_requests=1000, bp_reads=0)
        cu = ctl.compute("as-rep")["cu"]
        if cu != seen[-1]:
            seen.append(cu)
        time.sleep(0.5)
    assert seen == [4, 3, 2, 1], seen
    # down_after_s (4) per step at least
    assert time.time() - t_down >= 3 * 4
    assert cg1("memory", cid, "memory.limit_in_bytes") == 256 * MIB
    st, text = ctl.get("/metrics")
    assert metric(text, "smdb_autoscale_decisions_total", direction="down", reason="idle") == 3

    # billing: an interval per size, CU-seconds = seconds x that size
    doc = usage_intervals(ctl, "as-rep", t0)
    comp = sorted((i for i in doc["intervals"] if i["kind"] == "compute"),
                  key=lambda i: i["start_ms"])
    for i in comp:
        assert abs(i["cu_seconds"] - i["seconds"] * i["cu"]) < 0.01, i
    steps = [i["cu"] for i in comp]
    steps = [cu for k, cu in enumerate(steps) if k == 0 or steps[k - 1] != cu]
    assert steps == [1, 2, 4, 3, 2], steps
    assert [o["cu"] for o in doc["open"] if o["kind"] == "compute"] == [1]
    # the split is at the change: each closed interval ends where the next starts
    for a, b in zip(comp, comp[1:]):
        assert a["end_ms"] == b["start_ms"], (a, b)
    print(f"\nautoscale: 1 -> 4 CU in {up_s:.1f} s of reported saturation; down {seen}")


@pytest.mark.skipif(not have_cg1(), reason="no writable cgroup v1 memory and cpu controllers")
def test_min_max_bounds_and_autoscale_off(controller_factory):
    ctl = controller_factory(**SMALL_CU, **QUICK, autoscale=0).start()
    p = ctl.create_project("as-off", min_cu=1, max_cu=4, idle_timeout_s=3600, freeze_after_s=0)
    cid = p["compute_id"]
    fake = FakePlugin(ctl, cid)
    for _ in range(5):
        fake.cpu_ms += 250
        fake.send(threads_running=50)
        time.sleep(0.5)
    assert ctl.compute("as-off")["cu"] == 1
    # the manual resize still works, within the project's bounds
    st, doc = ctl.post(f"/api/v1/compute/{cid}/resize", {"cu": 3})
    assert st == 200, doc
    assert cg1("cpu", cid, "cpu.cfs_quota_us") == 75000
    st, doc = ctl.post(f"/api/v1/compute/{cid}/resize", {"cu": 5})
    assert st == 400, doc
    # suspended and woken, it starts at its size
    st, doc = ctl.post(f"/api/v1/compute/{cid}/suspend", {"mode": "stop"})
    assert st in (200, 202), doc
    wait_for(lambda: ctl.compute("as-off")["state"] == "suspended", timeout=30)
    assert not os.path.exists(os.path.join(CG1, "memory", "smdb", cid))
    st, doc = ctl.wake("as-off")
    assert st == 200, doc
    c = ctl.compute("as-off")
    db = mysql(c["port"], p["admin_user"], p["admin_password"])
    cur = db.cursor()
    cur.execute("SELECT @@innodb_buffer_pool_size, @@max_connections")
    assert cur.fetchone() == (48 * MIB, 3 * 20 + 10)
    db.close()
    assert cg1("memory", cid, "memory.limit_in_bytes") == 3 * 256 * MIB


# ---- real load through the proxy (needs the plugin's load signals) ----------

def plugin_has_signals(ctl, project):
    a = ctl.compute(project).get("activity") or {}
    return "cpu_ms" in a and "bp_read_requests" in a


def sysbench(port, project, user, password, test, threads, seconds, tables=1,
             table_size=10000, extra=()):
    argv = [SYSBENCH, test, f"--mysql-host=127.0.0.1", f"--mysql-port={port}",
            f"--mysql-user={user}", f"--mysql-password={password}", f"--mysql-db={project}",
            "--db-driver=mysql", f"--tables={tables}", f"--table-size={table_size}",
            f"--threads={threads}", f"--time={seconds}", "--report-interval=0",
            "--mysql-ssl=off", *extra]
    return argv


def run_sysbench(argv, timeout):
    r = subprocess.run(argv + ["run"], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"transactions:\s+\d+\s+\(([\d.]+) per sec", r.stdout)
    q = re.search(r"queries:\s+\d+\s+\(([\d.]+) per sec", r.stdout)
    return float(m.group(1) if m else q.group(1))


def prepare(argv):
    r = subprocess.run(argv + ["prepare"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.skipif(not have_cg1() or not os.path.exists(SYSBENCH),
                    reason="needs cgroup v1 memory/cpu and sysbench")
def test_sysbench_through_proxy_scales_up_and_back(controller_factory, procs, run_dir):
    ctl = controller_factory(**SMALL_CU, **QUICK).start()
    ngx = start_nginx(procs, run_dir, ctl, cache_ttl="2s")
    pins = ctl.create_project("as-pin", min_cu=1, max_cu=1, idle_timeout_s=3600,
                              freeze_after_s=0)
    auto = ctl.create_project("as-auto", min_cu=1, max_cu=4, idle_timeout_s=3600,
                              freeze_after_s=0)
    wait_for(lambda: (ctl.compute("as-auto").get("activity") or {}), timeout=30,
             what="a first report")
    if not plugin_has_signals(ctl, "as-auto"):
        pytest.skip("the activity plugin does not report load signals yet (h-plugin)")
    for p in (pins, auto):
        conn = mysql(ngx.port, p["admin_user"], p["admin_password"], database=p["id"])
        conn.close()
    # CPU-heavy: point selects on a table that fits the pool, 8 clients
    cpu_args = {}
    for name, p in (("as-pin", pins), ("as-auto", auto)):
        cpu_args[name] = sysbench(ngx.port, name, p["admin_user"], p["admin_password"],
                                  "oltp_read_only", threads=8, seconds=20, table_size=5000)
        prepare(cpu_args[name])
    pinned = run_sysbench(cpu_args["as-pin"], 120)
    t0 = time.time()
    box = {}
    th = threading.Thread(target=lambda: box.setdefault(
        "tps", run_sysbench(cpu_args["as-auto"], 120)))
    th.start()
    wait_for(lambda: ctl.compute("as-auto")["cu"] >= 2, timeout=20, what="a step up")
    up_s = time.time() - t0
    th.join()
    scaled = box["tps"]
    c = ctl.compute("as-auto")
    assert c["cu"] >= 2, c
    assert cg1("cpu", c["id"], "cpu.cfs_quota_us") == c["cu"] * 25000
    # the plugin applied the target: the server has the bigger pool
    db = mysql(c["port"], auto["admin_user"], auto["admin_password"])
    cur = db.cursor()
    wait_for(lambda: (cur.execute("SELECT @@innodb_buffer_pool_size"),
                      cur.fetchone()[0] >= c["cu"] * 16 * MIB)[1], timeout=15,
             what="the bigger pool")
    db.close()
    print(f"\nCPU load: pinned at 1 CU {pinned:.0f} tps, autoscaled {scaled:.0f} tps, "
          f"step up after {up_s:.1f} s, at {c['cu']} CU")
    # robust margin: the box is shared; 1 CU is a quarter of a CPU
    assert scaled > 1.3 * pinned, (pinned, scaled)

    # idle: it steps back down to 1
    wait_for(lambda: ctl.compute("as-auto")["cu"] == 1, timeout=60, what="back to 1 CU")
    st, text = ctl.get("/metrics")
    assert metric(text, "smdb_autoscale_decisions_total", direction="down", reason="idle") >= 1
