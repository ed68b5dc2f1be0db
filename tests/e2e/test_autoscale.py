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

    def send(self, **signals):
        """An idle server's CPU time (the kernel's cpuacct count, where
        there is one, takes its place)."""
        self.seq += 1
        self.cpu_ms += 1
        now = now_ms()
        body = {"compute_id": self.cid, "seq": self.seq, "connections": 0, "connects": 1,
                "failed_connects": 0, "disconnects": 1, "queries": 1,
                "last_activity_ms": now, "sent_at_ms": now,
                "uptime_s": (now - self.start) // 1000, "cpu_ms": self.cpu_ms}
        body.update(signals)
        return post_report(self.ctl, self.cid, self.token, body)


def test_sizes_follow_reported_load_and_billing_follows_sizes(controller_factory):
    """The limits are checked where the host has cgroup v1 memory and cpu
    (not in the Debian 13 chroot); the rest holds everywhere."""
    ctl = controller_factory(**SMALL_CU, **QUICK).start()
    t0 = now_ms()
    p = ctl.create_project("as-rep", min_cu=1, max_cu=4, idle_timeout_s=3600, freeze_after_s=0)
    cid = p["compute_id"]
    c = ctl.compute("as-rep")
    assert c["state"] == "running" and c["cu"] == 1
    # one CU, everywhere: cgroup limits, the server's pool and sessions
    if have_cg1():
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

    # overloaded: more threads running than its CPUs serve (the CPU signal is
    # the kernel's cpuacct count here, which a report cannot fake)
    def busy():
        cu = ctl.compute("as-rep")["cu"]
        st, doc = fake.send(threads_running=12, bp_pages_total=1024 * cu, bp_pages_data=100,
                            bp_read_requests=1000, bp_reads=0)
        assert st == 200, doc
        return cu
    t_up, ups = time.time(), [1]
    while ups[-1] < 4:
        assert time.time() - t_up < 40, (ups, ctl.log_tail())
        cu = busy()
        if cu != ups[-1]:
            ups.append(cu)
        time.sleep(0.5)
    up_s = time.time() - t_up
    assert ups == [1, 2, 3, 4], ups
    c = ctl.compute("as-rep")
    assert c["cu"] == 4 and c["size_cu"] == 4
    if have_cg1():
        assert cg1("memory", cid, "memory.limit_in_bytes") == 4 * 256 * MIB
        assert cg1("cpu", cid, "cpu.cfs_quota_us") == 100000
    st, doc = fake.send(threads_running=12)
    assert doc["target"] == {"buffer_pool_bytes": 64 * MIB, "max_connections": 90, "cu": 4}
    assert c["autoscale"]["last_decision"] == "up 3->4: threads", c["autoscale"]
    # the up cool-down (2 s) between steps
    assert up_s >= 2 * 2
    st, text = ctl.get("/metrics")
    assert metric(text, "smdb_autoscale_decisions_total", direction="up", reason="threads") == 3
    assert metric(text, "smdb_autoscale_decisions_total", direction="up", reason="cpu") == 0
    assert metric(text, "smdb_compute_cu", compute=cid, project="as-rep") == 4
    assert metric(text, "smdb_compute_threads_running", compute=cid, project="as-rep") == 12
    assert metric(text, "smdb_autoscale_cpu_utilization", compute=cid, project="as-rep") < 0.5
    assert re.search(r"autoscale up 1 -> 2 CU \(threads; cpu \d+\.\d% of 250 millicpus.*"
                     r"threads running 12", ctl.log_tail(20000)), ctl.log_tail()

    # idle: one unit at a time, each after a low period of its own
    seen, t_down = [4], time.time()
    while seen[-1] > 1:
        assert time.time() - t_down < 60, (seen, ctl.log_tail())
        fake.send(threads_running=1, bp_pages_total=1024, bp_pages_data=100,
                  bp_read_requests=1000, bp_reads=0)
        cu = ctl.compute("as-rep")["cu"]
        if cu != seen[-1]:
            seen.append(cu)
        time.sleep(0.5)
    assert seen == [4, 3, 2, 1], seen
    # down_after_s (4) per step at least
    assert time.time() - t_down >= 3 * 4
    if have_cg1():
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
    assert steps == [1, 2, 3, 4, 3, 2], steps
    assert [o["cu"] for o in doc["open"] if o["kind"] == "compute"] == [1]
    # the split is at the change: each closed interval ends where the next starts
    for a, b in zip(comp, comp[1:]):
        assert a["end_ms"] == b["start_ms"], (a, b)
    print(f"\nautoscale: 1 -> 4 CU in {up_s:.1f} s of reported overload; down {seen}")


def test_min_max_bounds_and_autoscale_off(controller_factory):
    ctl = controller_factory(**SMALL_CU, **QUICK, autoscale=0).start()
    p = ctl.create_project("as-off", min_cu=1, max_cu=4, idle_timeout_s=3600, freeze_after_s=0)
    cid = p["compute_id"]
    fake = FakePlugin(ctl, cid)
    for _ in range(5):
        fake.send(threads_running=50)
        time.sleep(0.5)
    assert ctl.compute("as-off")["cu"] == 1
    # the manual resize still works, within the project's bounds
    st, doc = ctl.post(f"/api/v1/compute/{cid}/resize", {"cu": 3})
    assert st == 200, doc
    if have_cg1():
        assert cg1("cpu", cid, "cpu.cfs_quota_us") == 75000
    st, doc = ctl.post(f"/api/v1/compute/{cid}/resize", {"cu": 5})
    assert st == 400, doc
    # suspended and woken, it starts at its size
    st, doc = ctl.post(f"/api/v1/compute/{cid}/suspend", {"mode": "stop"})
    assert st in (200, 202), doc
    wait_for(lambda: ctl.compute("as-off")["state"] == "suspended", timeout=30)
    if have_cg1():
        assert not os.path.exists(os.path.join(CG1, "memory", "smdb", cid))
    st, doc = ctl.wake("as-off")
    assert st == 200, doc
    c = ctl.compute("as-off")
    db = mysql(c["port"], p["admin_user"], p["admin_password"])
    cur = db.cursor()
    cur.execute("SELECT @@innodb_buffer_pool_size, @@max_connections")
    assert cur.fetchone() == (48 * MIB, 3 * 20 + 10)
    db.close()
    if have_cg1():
        assert cg1("memory", cid, "memory.limit_in_bytes") == 3 * 256 * MIB


# ---- real load through the proxy ------------------------------------------

def plugin_reports_pool(ctl, project):
    """The plugin reports the buffer pool (and applies the answer's target)."""
    a = ctl.compute(project).get("activity") or {}
    return "bp_read_requests" in a and "bp_pages_total" in a


def sysbench(port, project, user, password, test, threads, seconds, tables=1,
             table_size=10000, extra=()):
    return [SYSBENCH, test, "--mysql-host=127.0.0.1", f"--mysql-port={port}",
            f"--mysql-user={user}", f"--mysql-password={password}", f"--mysql-db={project}",
            "--db-driver=mysql", f"--tables={tables}", f"--table-size={table_size}",
            f"--threads={threads}", f"--time={seconds}", "--report-interval=0", *extra]


def run_sysbench(argv, timeout):
    r = subprocess.run(argv + ["run"], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"transactions:\s+\d+\s+\(([\d.]+) per sec", r.stdout)
    assert m, r.stdout
    return float(m.group(1))


def prepare(argv):
    r = subprocess.run(argv + ["prepare"], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr


def pool_size(ctl, project, p):
    c = ctl.compute(project)
    db = mysql(c["port"], p["admin_user"], p["admin_password"])
    try:
        cur = db.cursor()
        cur.execute("SELECT @@innodb_buffer_pool_size")
        return cur.fetchone()[0]
    finally:
        db.close()


def load_in_background(argv, timeout):
    box = {}

    def run():
        try:
            box["tps"] = run_sysbench(argv, timeout)
        except BaseException as e:   # reported by the test thread
            box["error"] = e
    th = threading.Thread(target=run)
    th.start()
    return th, box


@pytest.mark.skipif(not have_cg1() or not os.path.exists(SYSBENCH),
                    reason="needs cgroup v1 memory/cpu/cpuacct (the CPU limit and the kernel's "
                           "count of the CPU used) and sysbench")
def test_sysbench_cpu_load_through_proxy_scales_up_and_back(controller_factory, procs,
                                                            run_dir):
    ctl = controller_factory(**SMALL_CU, **QUICK).start()
    ngx = start_nginx(procs, run_dir, ctl, cache_ttl="2s")
    projects = {"as-pin": ctl.create_project("as-pin", min_cu=1, max_cu=1, idle_timeout_s=3600,
                                             freeze_after_s=0),
                "as-auto": ctl.create_project("as-auto", min_cu=1, max_cu=4,
                                              idle_timeout_s=3600, freeze_after_s=0)}
    # CPU-heavy: read-only transactions on a table that fits one unit's pool
    args = {}
    for name, p in projects.items():
        args[name] = sysbench(ngx.port, name, p["admin_user"], p["admin_password"],
                              "oltp_read_only", threads=8, seconds=15, table_size=5000)
        prepare(args[name])
    pinned = run_sysbench(args["as-pin"], 120)
    t0 = time.time()
    th, box = load_in_background(args["as-auto"], 120)
    top = 1
    try:
        wait_for(lambda: ctl.compute("as-auto")["cu"] >= 2, timeout=12, what="a step up")
        up_s = time.time() - t0
        # a saturated compute doubles: 1 -> 2 -> 4 (unless the shared box
        # starves it below the up line at 2)
        while th.is_alive():
            top = max(top, ctl.compute("as-auto")["cu"])
            time.sleep(0.2)
    finally:
        th.join()
    assert "error" not in box, box.get("error")
    scaled = box["tps"]
    c = ctl.compute("as-auto")
    assert 2 <= c["cu"] <= 4 and c["cu"] == top, (c, top)
    assert cg1("cpu", c["id"], "cpu.cfs_quota_us") == c["cu"] * 25000
    assert cg1("memory", c["id"], "memory.limit_in_bytes") == c["cu"] * 256 * MIB
    assert c["autoscale"]["last_decision"].startswith("up") and "cpu" in \
        c["autoscale"]["last_decision"], c["autoscale"]
    if plugin_reports_pool(ctl, "as-auto"):
        # the plugin applied the target: the server has the bigger pool
        wait_for(lambda: pool_size(ctl, "as-auto", projects["as-auto"]) == top * 16 * MIB,
                 timeout=15, what="the bigger pool")
    print(f"\nCPU load (8 clients, oltp_read_only): pinned at 1 CU {pinned:.0f} tps, "
          f"autoscaled {scaled:.0f} tps; first step after {up_s:.1f} s, up to {top} CU")
    # 1 CU is a quarter of a CPU; the box is shared, so only a robust margin
    assert scaled > 1.4 * pinned, (pinned, scaled)

    # idle: back to 1, one unit at a time
    wait_for(lambda: ctl.compute("as-auto")["cu"] == 1, timeout=40, what="back to 1 CU")
    st, text = ctl.get("/metrics")
    assert metric(text, "smdb_autoscale_decisions_total", direction="down", reason="idle") \
        == top - 1
    assert cg1("cpu", c["id"], "cpu.cfs_quota_us") == 25000


# Random point reads of rows of 4000 bytes (3 to a page): 6000 rows are ~2000
# pages, twice one unit's 16 MiB pool (1024 pages), within three units'.
POOL_ROWS = 6000
POOL_LUA = """
function thread_init()
  drv = sysbench.sql.driver()
  con = drv:connect()
end
function event()
  con:query("SELECT LENGTH(pad) FROM big WHERE id=" .. sysbench.rand.uniform(1, %d))
end
function thread_done()
  con:disconnect()
end
""" % POOL_ROWS


def status(conn, *names):
    cur = conn.cursor()
    cur.execute("SHOW GLOBAL STATUS WHERE Variable_name IN (%s)" % ",".join(["%s"] * len(names)),
                names)
    return {k: int(v) for k, v in cur.fetchall()}


def miss_window(conn, seconds):
    """Buffer pool misses per read request and read requests/s over a window."""
    names = ("Innodb_buffer_pool_reads", "Innodb_buffer_pool_read_requests")
    a = status(conn, *names)
    time.sleep(seconds)
    b = status(conn, *names)
    req = b[names[1]] - a[names[1]]
    return (b[names[0]] - a[names[0]]) / max(1, req), req / seconds


@pytest.mark.skipif(not os.path.exists(SYSBENCH), reason="needs sysbench")
def test_sysbench_pool_load_through_proxy_grows_the_pool(controller_factory, procs, run_dir):
    # only the pool may step it up here: CPU and threads lines out of reach
    ctl = controller_factory(**SMALL_CU, **QUICK, autoscale_cpu_up_pct=1000,
                             autoscale_threads_per_cpu=1000).start()
    ngx = start_nginx(procs, run_dir, ctl, cache_ttl="2s")
    lua = os.path.join(run_dir, "pool_reads.lua")
    with open(lua, "w") as f:
        f.write(POOL_LUA)
    projects = {"as-pool-pin": ctl.create_project("as-pool-pin", min_cu=1, max_cu=1,
                                                  idle_timeout_s=3600, freeze_after_s=0),
                "as-pool": ctl.create_project("as-pool", min_cu=1, max_cu=4,
                                              idle_timeout_s=3600, freeze_after_s=0)}
    direct = {}
    for name, p in projects.items():
        c = ctl.compute(name)
        direct[name] = mysql(c["port"], p["admin_user"], p["admin_password"], database=name)
        cur = direct[name].cursor()
        cur.execute("CREATE TABLE big (id INT PRIMARY KEY, pad VARCHAR(5000))")
        cur.execute(f"INSERT INTO big SELECT seq, REPEAT(CHAR(65 + seq % 26), 4000) "
                    f"FROM seq_1_to_{POOL_ROWS}")

    def load(name, seconds):
        p = projects[name]
        argv = sysbench(ngx.port, name, p["admin_user"], p["admin_password"], lua, threads=2,
                        seconds=seconds)
        return subprocess.Popen(argv + ["run"], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    # pinned at 1 CU: the pool is too small, whatever the time
    pr = load("as-pool-pin", 9)
    try:
        time.sleep(3)
        pinned_miss, pinned_rate = miss_window(direct["as-pool-pin"], 5)
    finally:
        out = pr.communicate(timeout=60)[0]
    assert pr.returncode == 0, out
    assert ctl.compute("as-pool-pin")["cu"] == 1

    pr = load("as-pool", 60)
    try:
        t0 = time.time()
        wait_for(lambda: ctl.compute("as-pool")["cu"] >= 2, timeout=20, what="a step up")
        up_s = time.time() - t0

        def settled():
            # the size stays put for a while and the server has its pool
            cu = ctl.compute("as-pool")["cu"]
            time.sleep(3)
            if ctl.compute("as-pool")["cu"] != cu:
                return None
            bp = pool_size(ctl, "as-pool", projects["as-pool"])
            return cu if bp == cu * 16 * MIB else None
        cu = wait_for(settled, timeout=40, what="a settled size with its pool")
        auto_miss, auto_rate = miss_window(direct["as-pool"], 5)
    finally:
        pr.terminate()
        pr.communicate(timeout=30)
    c = ctl.compute("as-pool")
    print(f"\npool load (2 clients, random rows, ~{POOL_ROWS // 3} pages): pinned at 1 CU "
          f"misses {pinned_miss:.1%} at {pinned_rate:.0f} reads/s; autoscaled to {cu} CU "
          f"misses {auto_miss:.1%} at {auto_rate:.0f} reads/s; first step after {up_s:.1f} s")
    assert 2 <= cu <= 4, c
    if have_cg1():
        # the limit of the size it has now: a last step may have come after
        # `settled` looked (the load ran until terminate)
        wait_for(lambda: cg1("memory", c["id"], "memory.limit_in_bytes")
                 == ctl.compute("as-pool")["cu"] * 256 * MIB, timeout=10,
                 what="the memory limit of the current size")
    st, text = ctl.get("/metrics")
    assert metric(text, "smdb_autoscale_decisions_total", direction="up", reason="pool") >= 1
    assert metric(text, "smdb_autoscale_decisions_total", direction="up", reason="cpu") == 0
    assert pinned_miss > 0.05, pinned_miss
    assert auto_miss < pinned_miss / 2, (pinned_miss, auto_miss)

    # idle, the pool is not the working set any more: back to 1 CU
    wait_for(lambda: ctl.compute("as-pool")["cu"] == 1, timeout=40, what="back to 1 CU")
    for conn in direct.values():
        conn.close()
