#!/usr/bin/python3
"""wake_activity overhead: query throughput and connect rate on one compute,
with the plugin loaded vs not loaded, in the same run.

One mariadbd is started without the plugin; each round measures both modes,
switching with INSTALL SONAME / UNINSTALL SONAME (the server recomputes its
audit mask on uninstall, so "off" really is a server without audit hooks).
Rounds alternate the order (off,on then on,off ...) so that drift of a shared
machine hits both modes alike.  While loaded, the plugin reports to a local
HTTP receiver every second, as it would to the controller.

Workloads (Debian's sysbench):
  point_select  sysbench oltp_point_select, N threads, one persistent session
                each: the per-query cost of the audit hook.
  connect       a sysbench Lua script that connects and disconnects in a
                loop: the per-connection cost, including the 0<->1
                transition reports when one thread is used.

Run:  /usr/bin/python3 bench/plugin_bench.py [--time 4] [--rounds 8]
Prints rate and p50/p90/p99 latency per mode and the on/off ratio (target
>= 0.98x).  The verdict uses the median of the per-round ratios: each round
measures off and on back to back, so a burst of load from other processes on
a shared machine spoils one pair instead of a whole mode.  The overall ratio
(total events / total time) is printed too.  Exit status 0; --strict makes a
missed target exit 1.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))

from conftest import Procs  # noqa: E402
from mariadb_fixture import PLUGIN_SO, MariaDB, ReportReceiver  # noqa: E402

TARGET = 0.98

CONNECT_LUA = """
-- one event = one full client session: connect, then disconnect
function thread_init()
  drv = sysbench.sql.driver()
end
function event()
  local con = drv:connect()
  con:disconnect()
end
"""


def sysbench(db, args, threads, seconds):
    argv = ["sysbench", *args, "--db-driver=mysql", "--mysql-host=127.0.0.1",
            f"--mysql-port={db.port}", "--mysql-user=sb", "--mysql-password=sb",
            "--mysql-db=sbtest", f"--threads={threads}", f"--time={seconds}",
            "--histogram=on", "--percentile=99", "--report-interval=0", "run"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError("sysbench failed:\n" + out.stdout[-2000:] + out.stderr[-2000:])
    return parse(out.stdout)


def parse(text):
    """events, seconds and the latency histogram {ms: count} of one run."""
    events = int(re.search(r"total number of events:\s+(\d+)", text).group(1))
    seconds = float(re.search(r"total time:\s+([\d.]+)s", text).group(1))
    hist = {}
    for m in re.finditer(r"^\s*([\d.]+)\s*\|\**\s+(\d+)\s*$", text, re.M):
        hist[float(m.group(1))] = hist.get(float(m.group(1)), 0) + int(m.group(2))
    return {"events": events, "seconds": seconds, "hist": hist}


def percentile(hist, p):
    total = sum(hist.values())
    if not total:
        return float("nan")
    want = total * p / 100.0
    seen = 0
    for value in sorted(hist):
        seen += hist[value]
        if seen >= want:
            return value
    return max(hist)


class Totals:
    def __init__(self):
        self.events = 0
        self.seconds = 0.0
        self.hist = {}
        self.rates = []

    def add(self, r):
        self.events += r["events"]
        self.seconds += r["seconds"]
        self.rates.append(r["events"] / r["seconds"])
        for k, v in r["hist"].items():
            self.hist[k] = self.hist.get(k, 0) + v

    def summary(self):
        return {"rate": self.events / self.seconds if self.seconds else 0.0,
                "p50_ms": percentile(self.hist, 50), "p90_ms": percentile(self.hist, 90),
                "p99_ms": percentile(self.hist, 99), "rates": self.rates}


def set_plugin(db, on):
    loaded = bool(db.sql("SELECT 1 FROM information_schema.PLUGINS "
                         "WHERE PLUGIN_NAME = 'wake_activity'"))
    if on and not loaded:
        db.sql("INSTALL SONAME 'wake_activity'")
    elif not on and loaded:
        db.sql("UNINSTALL SONAME 'wake_activity'")
        end = time.time() + 10  # deinit runs once the last session lets go
        while "wake_activity" in db.thread_names() and time.time() < end:
            time.sleep(0.05)
    time.sleep(0.5)  # let the reporter's first report and the switch settle


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--time", type=int, default=4, help="seconds per measurement")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=4, help="point_select threads")
    ap.add_argument("--connect-threads", type=int, default=1,
                    help="connect threads (1: every session is a 0<->1 transition)")
    ap.add_argument("--table-size", type=int, default=10000)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--strict", action="store_true", help="exit 1 below the target")
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    opts = ap.parse_args()

    if not os.path.exists(PLUGIN_SO):
        sys.exit(f"{PLUGIN_SO} missing: run make -C mariadb_plugin all")
    if not shutil.which("sysbench"):
        sys.exit("sysbench missing: apt-get install sysbench")

    run_dir = tempfile.mkdtemp(prefix="plugin-bench-")
    os.chmod(run_dir, 0o755)
    procs = Procs(run_dir)
    receiver = ReportReceiver().up()
    lua = os.path.join(run_dir, "connect.lua")
    with open(lua, "w") as f:
        f.write(CONNECT_LUA)
    try:
        db = MariaDB(procs, run_dir, plugin=False, settings={
            "report_url": receiver.url, "compute_id": "bench-000001",
            "token": "bench-token", "interval": 1},
            extra_args=["--max-connections=1000", "--thread-cache-size=100"]).start()
        db.sql("CREATE DATABASE sbtest")
        db.create_user("sb", "sb")
        prepare = subprocess.run(
            ["sysbench", "oltp_point_select", "--db-driver=mysql", "--mysql-host=127.0.0.1",
             f"--mysql-port={db.port}", "--mysql-user=sb", "--mysql-password=sb",
             "--mysql-db=sbtest", "--tables=1", f"--table-size={opts.table_size}", "prepare"],
            capture_output=True, text=True, timeout=300)
        if prepare.returncode != 0:
            raise RuntimeError("sysbench prepare failed:\n" + prepare.stdout + prepare.stderr)

        workloads = {
            "point_select": (["oltp_point_select", "--tables=1",
                              f"--table-size={opts.table_size}"], opts.threads),
            "connect": ([lua], opts.connect_threads),
        }
        # warm-up: buffer pool, thread cache, both code paths
        for args, threads in workloads.values():
            sysbench(db, args, threads, 3)

        totals = {(w, m): Totals() for w in workloads for m in ("off", "on")}
        for rnd in range(opts.rounds):
            order = ("off", "on") if rnd % 2 == 0 else ("on", "off")
            for mode in order:
                set_plugin(db, mode == "on")
                for name, (args, threads) in workloads.items():
                    r = sysbench(db, args, threads, opts.time)
                    totals[(name, mode)].add(r)
                    print(f"  round {rnd + 1} {name:<12} plugin {mode:<3} "
                          f"{r['events'] / r['seconds']:10.1f}/s", flush=True)
        set_plugin(db, False)
        reports = receiver.count()
    finally:
        receiver.close()
        procs.stop_all()
        if not opts.keep:
            shutil.rmtree(run_dir, ignore_errors=True)

    print()
    print(f"wake_activity overhead on one compute: {os.cpu_count()} CPUs, "
          f"{opts.rounds} rounds x {opts.time} s per mode, alternating order; "
          f"{reports} reports received while loaded")
    print(f"{'workload':<14}{'plugin':<8}{'rate/s':>12}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}")
    results = {}
    ok = True
    for name in workloads:
        s = {m: totals[(name, m)].summary() for m in ("off", "on")}
        for m in ("off", "on"):
            print(f"{name:<14}{m:<8}{s[m]['rate']:>12.1f}{s[m]['p50_ms']:>10.3f}"
                  f"{s[m]['p90_ms']:>10.3f}{s[m]['p99_ms']:>10.3f}")
        ratio = s["on"]["rate"] / s["off"]["rate"]
        per_round = [a / b for a, b in zip(s["on"]["rates"], s["off"]["rates"])]
        median = statistics.median(per_round)
        verdict = "ok" if median >= TARGET else "BELOW TARGET"
        ok &= median >= TARGET
        print(f"{name:<14}{'ratio':<8}{median:>11.3f}x  median of rounds (target >= {TARGET}x: "
              f"{verdict}); overall {ratio:.3f}x; per round "
              f"{' '.join(f'{x:.3f}' for x in per_round)}")
        results[name] = {"off": s["off"], "on": s["on"], "ratio_median": median,
                         "ratio_overall": ratio, "ratio_per_round": per_round}
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump({"target": TARGET, "seconds": opts.time, "rounds": opts.rounds,
                       "results": results}, f, indent=2)
    return 1 if (opts.strict and not ok) else 0


if __name__ == "__main__":
    sys.exit(main())
