"""Resume latency of the controller (issue: controller, make bench).

(a) wake call on a stopped compute until a direct client SELECT 1 answers;
(b) the same from frozen;
(c) a bare `mariadbd --defaults-file` start of the same datadir without the
    controller, until a client SELECT 1 answers — measured in the same run,
    interleaved with (a), so the controller's overhead shows as a ratio.
"""
import os
import signal
import socket
import subprocess
import sys
import time

from common import Platform, report

import pymysql

RUNS = int(os.environ.get("BENCH_RUNS", "30"))


def select1(port, user, pw, retry_until=None):
    while True:
        try:
            c = pymysql.connect(host="127.0.0.1", port=port, user=user, password=pw,
                                connect_timeout=5)
            try:
                cur = c.cursor()
                cur.execute("SELECT 1")
                assert cur.fetchone()[0] == 1
            finally:
                c.close()
            return
        except pymysql.err.OperationalError:
            if retry_until is None or time.monotonic() > retry_until:
                raise
            time.sleep(0.0005)


def main():
    p = Platform(freeze_after_s=0, idle_timeout_s=3600)
    try:
        ctl = p.controller
        doc = ctl.create_project("bench", idle_timeout_s=3600, freeze_after_s=0)
        cid, port = doc["compute_id"], doc["compute"]["port"]
        user, pw = doc["admin_user"], doc["admin_password"]
        mycnf = os.path.join(ctl.data_dir, cid, "my.cnf")
        # the compute's own uid (it owns its datadir): the bare start runs as
        # it too, like the controller's, so both start the same server
        uid = os.stat(os.path.join(ctl.data_dir, cid, "data")).st_uid
        as_compute = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        a, b, c = [], [], []
        for _ in range(RUNS):
            # (a) stopped -> wake -> SELECT 1
            st, _ = ctl.post(f"/api/v1/compute/{cid}/suspend", {"mode": "stop"})
            assert st == 200
            t0 = time.monotonic()
            st, w = ctl.wake("bench")
            assert st == 200 and w["cold_start"] == "started", w
            select1(port, user, pw)
            a.append((time.monotonic() - t0) * 1000)
            # (c) bare start of the same datadir, same config, no controller
            st, _ = ctl.post(f"/api/v1/compute/{cid}/suspend", {"mode": "stop"})
            assert st == 200
            t0 = time.monotonic()
            proc = subprocess.Popen(as_compute + ["/usr/sbin/mariadbd", f"--defaults-file={mycnf}"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                select1(port, user, pw, retry_until=time.monotonic() + 30)
                c.append((time.monotonic() - t0) * 1000)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
            # (b) frozen -> wake -> SELECT 1
            st, w = ctl.wake("bench")
            assert st == 200
            st, _ = ctl.post(f"/api/v1/compute/{cid}/suspend", {"mode": "freeze"})
            assert st == 200
            t0 = time.monotonic()
            st, w = ctl.wake("bench")
            assert st == 200 and w["cold_start"] == "thawed", w
            select1(port, user, pw)
            b.append((time.monotonic() - t0) * 1000)
            st, _ = ctl.post(f"/api/v1/compute/{cid}/resume")
        print(f"controller resume latency ({RUNS} runs each, wake + client SELECT 1):")
        pa = report("(a) wake from stopped", a)
        pb = report("(b) wake from frozen", b)
        pc = report("(c) bare mariadbd start, no controller", c)
        print(f"  ratio (a)/(c) p50: {pa / pc:.2f}x (target <= 1.3x); "
              f"(b) p50 {pb:.2f} ms (target <= 5 ms)")
    finally:
        p.stop()


if __name__ == "__main__":
    main()
