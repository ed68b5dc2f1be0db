"""Idle-session benchmark (issue 13, make bench).

One pooled session through nginx + the wake module to one compute that the
scheduler freezes while the session stays open (freeze_after_s = 1).  Each
round waits until the compute is frozen, then times the session's next
`SELECT 1`: the proxy holds it, wakes the project (the controller thaws the
compute) and passes it on.  Beside it, the same query on the same session
while the compute is awake.  Goal: first query on a frozen idle session
p50 <= 5 ms.
"""
import os
import sys
import time

from common import Platform, report

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from conftest import mysql  # noqa: E402
from nginx_fixture import start_nginx  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_IDLE_ROUNDS", "20"))
AWAKE = int(os.environ.get("BENCH_IDLE_AWAKE", "400"))
CACHE_TTL_S = 1


def frozen(ctl, project):
    c = ctl.compute(project)
    return c["state"] == "suspended" and c.get("mode") == "frozen"


def wait_frozen(ctl, project, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if frozen(ctl, project):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{project} not frozen: {ctl.compute(project)}")


def timed(cur, q):
    t0 = time.perf_counter()
    cur.execute(q)
    cur.fetchall()
    return (time.perf_counter() - t0) * 1000


def main():
    # the drain waits out the proxy's cache TTL before it freezes
    p = Platform(drain_wait_ms=CACHE_TTL_S * 1000 + 200, scheduler_interval_ms=100,
                 report_interval_s=1)
    try:
        ctl = p.controller
        doc = ctl.create_project("idle", idle_timeout_s=3600, freeze_after_s=1)
        ngx = start_nginx(p.procs, p.run_dir, ctl, cache_ttl=f"{CACHE_TTL_S}s")
        conn = mysql(ngx.port, doc["admin_user"], doc["admin_password"], "idle",
                     read_timeout=30)
        cur = conn.cursor()
        cur.execute("SELECT CONNECTION_ID()")
        cid = cur.fetchone()[0]
        for _ in range(50):
            timed(cur, "SELECT 1")
        awake = [timed(cur, "SELECT 1") for _ in range(AWAKE)]
        thawed = []
        for _ in range(ROUNDS):
            wait_frozen(ctl, "idle")
            thawed.append(timed(cur, "SELECT 1"))
        cur.execute("SELECT CONNECTION_ID()")
        assert cur.fetchone()[0] == cid, "the session changed"
        print(f"SELECT 1 on one pooled session through nginx ({ROUNDS} freezes):")
        a = report("first query, compute frozen (hold + wake + thaw)", thawed)
        b = report("same session, compute awake", awake)
        print(f"  frozen first query p50 {a:.2f} ms (goal <= 5 ms), {a - b:.2f} ms over awake")
        conn.close()
    finally:
        p.stop()


if __name__ == "__main__":
    main()
