"""Billing at scale (issue: metering and billing export).

10,000 projects with 30 days of usage are written straight into Redis in the
controller's own key format (redis-cli --pipe), all of it waiting for the
ledger, as after a month-long PostgreSQL outage.  Then a controller with a
fresh PostgreSQL ledger is started and we measure

  (a) the export rate: events/s from export:queue into PostgreSQL, until
      nothing waits (and the ledger holds every event exactly once);
  (b) the usage API for one project's month: p50/p99 of
      GET /api/v1/projects/{id}/usage?from=<month start>&to=<month end>,
      for a typical project (a few wakes a day) and for a project that ran
      the whole month (one compute interval a minute), with and without
      per-interval detail.

Usage pattern per typical project and day: one storage event (a sleeping
datadir is closed once a day, at UTC midnight) and SESSIONS wake sessions of
MINUTES one-minute compute intervals.

    /usr/bin/python3 bench/billing_bench.py [--projects N] [--days D] [--queries Q]
"""
import argparse
import json
import os
import random
import subprocess
import sys
import time
import urllib.parse
import urllib.request

from common import Platform, percentiles, report  # noqa: F401 (Platform: path setup)

import conftest  # noqa: E402
from pg_fixture import start_postgres  # noqa: E402

DAY = 86400000
MINUTE = 60000
SESSIONS = 2
MINUTES = 5


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if not isinstance(a, bytes):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def event(kind, project, cid, start, end, **extra):
    secs = (end - start) / 1000.0
    ev = {"key": f"{cid}:{start}:{kind}", "kind": kind, "project": project, "compute_id": cid,
          "start_ms": start, "end_ms": end, "seconds": secs}
    if kind == "compute":
        ev["cu"] = extra["cu"]
        ev["cu_seconds"] = secs * extra["cu"]
    else:
        ev["bytes"] = extra["bytes"]
        ev["byte_seconds"] = secs * extra["bytes"]
    return ev


def project_events(project, first_day, days, rng, heavy=False):
    cid = f"{project}-000000"
    size = rng.randint(40, 400) * 1024 * 1024
    for d in range(days):
        day = first_day + d * DAY
        yield event("storage", project, cid, day, day + DAY, bytes=size)
        if heavy:
            for m in range(1440):
                yield event("compute", project, cid, day + m * MINUTE, day + (m + 1) * MINUTE, cu=2)
            continue
        for _ in range(SESSIONS):
            s = day + rng.randrange(0, 1440 - MINUTES) * MINUTE + rng.randrange(0, MINUTE)
            for m in range(MINUTES):
                yield event("compute", project, cid, s + m * MINUTE, s + (m + 1) * MINUTE, cu=1)


def load(redis, projects, first_day, days, seed):
    """Writes projects and events with redis-cli --pipe; returns the count."""
    rng = random.Random(seed)
    p = subprocess.Popen(redis.cli_argv("--pipe"), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    n = 0
    buf = []
    for i, project in enumerate(projects):
        buf.append(resp("HSET", f"smdb:project:{project}", "id", project, "compute_id", "",
                        "created_ms", first_day, "idle_timeout_s", 300, "freeze_after_s", 60,
                        "min_cu", 1, "max_cu", 2))
        buf.append(resp("SADD", "smdb:projects", project))
        for ev in project_events(project, first_day, days, rng, heavy=(i == 0)):
            js = json.dumps(ev, separators=(",", ":"))
            buf.append(resp("ZADD", f"smdb:usage:{project}", ev["start_ms"], js))
            buf.append(resp("HSET", "smdb:export:pending", ev["key"], js))
            buf.append(resp("ZADD", "smdb:export:queue", ev["end_ms"], ev["key"]))
            n += 1
        if len(buf) > 20000:
            p.stdin.write(b"".join(buf))
            buf = []
    p.stdin.write(b"".join(buf))
    p.stdin.close()
    out = p.stdout.read().decode()
    if p.wait() != 0 or "errors: 0" not in out:
        raise RuntimeError("redis-cli --pipe: " + out)
    return n


def metric(ctl, name):
    st, text = ctl.request("GET", "/metrics")
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise KeyError(name)


def usage_latency(ctl, project, frm, to, detail):
    """One query: ms until the whole answer is read (not parsed), and the
    answer."""
    q = urllib.parse.urlencode({"from": frm, "to": to, "detail": "1" if detail else "0"})
    req = urllib.request.Request(f"{ctl.url}/api/v1/projects/{project}/usage?{q}",
                                 headers={"Authorization": "Bearer " + ctl.token})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as r:
        raw = r.read()
    ms = (time.perf_counter() - t0) * 1000
    doc = json.loads(raw)
    return ms, len(doc.get("intervals", [])), len(raw), doc


def rfc3339(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--projects", type=int, default=10000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--queries", type=int, default=int(os.environ.get("BENCH_RUNS", "50")))
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    run_dir = conftest.tempfile.mkdtemp(prefix="smdb-bench-")
    os.chmod(run_dir, 0o755)
    procs = conftest.Procs(run_dir)
    try:
        redis = conftest.Redis(procs, run_dir).start()
        pg = start_postgres(procs, run_dir)
        today = int(time.time() * 1000) // DAY * DAY
        first_day = today - a.days * DAY
        projects = ["heavy"] + [f"p{i:05d}" for i in range(1, a.projects)]

        t0 = time.perf_counter()
        n = load(redis, projects, first_day, a.days, a.seed)
        t_load = time.perf_counter() - t0
        mem = redis.cli("INFO", "memory").split("used_memory_human:")[1].split()[0]
        print(f"  loaded {n} events of {len(projects)} projects x {a.days} days into Redis "
              f"in {t_load:.1f} s ({mem})")

        # (a) export: a controller with a ledger, everything waiting
        ctl = conftest.Controller(procs, run_dir, redis, pg_conninfo=pg.conninfo,
                                  scheduler_interval_ms=1000)
        t0 = time.perf_counter()
        ctl.start()
        lags = []
        while True:
            waiting = metric(ctl, "smdb_billing_events_waiting")
            lags.append(metric(ctl, "smdb_billing_export_lag_seconds"))
            if waiting == 0:
                break
            if time.perf_counter() - t0 > 3600:
                raise RuntimeError("export did not finish in an hour")
            time.sleep(0.2)
        t_export = time.perf_counter() - t0
        exported = metric(ctl, "smdb_billing_events_exported_total")
        rows = int(pg.query("SELECT count(*) FROM usage_ledger")[0][0])
        keys = int(pg.query("SELECT count(DISTINCT key) FROM usage_ledger")[0][0])
        assert rows == keys == n == exported, (rows, keys, n, exported)
        print(f"  (a) export: {n} events into PostgreSQL in {t_export:.1f} s = "
              f"{n / t_export:,.0f} events/s (batches of 1000, ledger rows {rows}, "
              f"initial lag {lags[0] / 86400:.1f} days)")

        # (b) usage API, one project's month; in steady state, not while
        # Redis rewrites its append-only file after the bulk load
        end = time.time() + 600
        while time.time() < end and any(
                f"{k}:1" in redis.cli("INFO", "persistence")
                for k in ("aof_rewrite_in_progress", "rdb_bgsave_in_progress")):
            time.sleep(0.5)
        frm, to = rfc3339(first_day), rfc3339(today)
        print(f"  (b) usage API, {a.queries} queries each, from={frm} to={to}:")
        rng = random.Random(a.seed)
        for name, project in (("typical project", None), ("project running all month", "heavy")):
            for detail in (True, False):
                xs = []
                for _ in range(a.queries):
                    p = project or projects[rng.randrange(1, len(projects))]
                    ms, size, nbytes, doc = usage_latency(ctl, p, frm, to, detail)
                    xs.append(ms)
                label = f"{name}, {'with' if detail else 'without'} detail"
                p50, _, p99 = percentiles(xs)
                print(f"      {label:<48} p50={p50:8.2f} ms  p99={p99:8.2f} ms  "
                      f"({doc['totals']['events']} events, {nbytes / 1024:.0f} KiB"
                      f"{', %d intervals listed' % size if detail else ''})")
    finally:
        procs.stop_all()
        conftest.shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
