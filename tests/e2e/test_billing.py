"""End-to-end tests of metering, the usage API and the PostgreSQL ledger
export: real redis-server, PostgreSQL, mariadbd, smdb-controller (and nginx
with the wake module for data transfer)."""
import json
import os
import random
import socket
import threading
import time
import urllib.parse

import pytest

from conftest import mysql

HERE = os.path.dirname(os.path.abspath(__file__))


# --- helpers -------------------------------------------------------------



def now_ms():
    return int(time.time() * 1000)


def start_ctl(controller_factory, pg=None, **opts):
    o = {"meter_interval_s": 1, "export_interval_ms": 100}
    if pg is not None:
        o["pg_conninfo"] = pg.conninfo
    o.update(opts)
    return controller_factory(**o).start()


def metrics(ctl):
    st, text = ctl.request("GET", "/metrics")
    assert st == 200, text
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def usage(ctl, project, frm=None, to=None, **params):
    q = dict(params)
    if frm is not None:
        q["from"] = frm
    if to is not None:
        q["to"] = to
    st, doc = ctl.get(f"/api/v1/projects/{project}/usage?" + urllib.parse.urlencode(q))
    assert st == 200, doc
    return doc


def rfc3339(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def all_usage(ctl, project, since_ms):
    """Every event of the project from since_ms until a minute from now."""
    return usage(ctl, project, rfc3339(since_ms - 3600_000), rfc3339(now_ms() + 60_000))


def redis_events(ctl, project):
    out = ctl.redis.cli("ZRANGE", f"smdb:usage:{project}", "0", "-1")
    return [json.loads(line) for line in out.splitlines() if line]


LEDGER_COLS = ["key", "kind", "project", "compute_id", "start_ms", "end_ms", "seconds", "cu",
               "cu_seconds", "bytes", "byte_seconds", "bytes_in", "bytes_out"]


def ledger(pg, project=None):
    where = f"WHERE project = '{project}'" if project else ""
    rows = pg.query(f"SELECT {', '.join(LEDGER_COLS)} FROM usage_ledger {where} ORDER BY start_ms")
    out = []
    for r in rows:
        d = dict(zip(LEDGER_COLS, r))
        for k in ("start_ms", "end_ms", "cu", "bytes", "bytes_in", "bytes_out"):
            d[k] = int(d[k]) if d[k] != "" else None
        for k in ("seconds", "cu_seconds", "byte_seconds"):
            d[k] = float(d[k]) if d[k] != "" else None
        out.append(d)
    return out


def redis_event_count(ctl):
    """Per-event records left in every project's usage index."""
    return sum(int(ctl.redis.cli("ZCARD", k) or 0)
               for k in ctl.redis.cli("--scan", "--pattern", "smdb:usage:*").split())


def wait_exported(ctl, pg, timeout=40):
    """Until nothing waits for the ledger and every exported event has left
    Redis' usage indexes (retired into the hourly buckets)."""
    end = time.time() + timeout
    while True:
        m = metrics(ctl)
        left = redis_event_count(ctl)
        if m["smdb_billing_events_waiting"] == 0 and left == 0:
            return m
        if time.time() > end:
            raise AssertionError(f"export did not finish: {m} ({left} events left in "
                                 "redis)\n" + ctl.log_tail())
        time.sleep(0.1)


def same_totals(doc, rows):
    """The usage API's totals (a range holding every row whole) are the
    ledger's sums: the hourly buckets lost nothing."""
    t = doc["totals"]
    comp = [r for r in rows if r["kind"] == "compute"]
    assert t["events"] == len(rows), (t, len(rows))
    assert abs(t["compute_seconds"] - sum(r["seconds"] for r in comp)) < 1e-6, t
    assert abs(t["cu_seconds"] - sum(r["cu_seconds"] for r in comp)) < 1e-6, t
    bs = sum(r["byte_seconds"] or 0 for r in rows if r["kind"] == "storage")
    assert abs(t["storage_byte_seconds"] - bs) <= 1e-9 * max(1.0, bs), (t, bs)
    tr = [r for r in rows if r["kind"] == "transfer"]
    assert (t["bytes_in"], t["bytes_out"]) == (sum(r["bytes_in"] for r in tr),
                                               sum(r["bytes_out"] for r in tr))
    assert doc["exact"] is True


def warm_template(ctl):
    """Builds the data_dir's template datadir (seconds, once) outside any
    measured window: compute time starts at the server's spawn, so a window
    that also timed the template build would measure more than is billed."""
    ctl.create_project("warmup")
    st, _ = ctl.delete("/api/v1/projects/warmup")
    assert st == 200


def suspend(ctl, cid):
    st, doc = ctl.post(f"/api/v1/compute/{cid}/suspend", {"mode": "stop"})
    assert st == 200 and doc["state"] == "suspended", doc


def wake(ctl, project):
    st, doc = ctl.wake(project)
    assert st == 200, doc


def check_windows(events, windows, tolerance_s=1.0):
    """Compute events against the running windows the test measured, each
    (t_start_call, t_started, t_stop_call, t_stopped): within a window the
    events are contiguous (no gap, no overlap), begin while the starting call
    ran and end while the stopping call ran; none lies outside a window; and
    the billed time is within tolerance of the measured running time."""
    evs = sorted((e for e in events if e["kind"] == "compute"), key=lambda e: e["start_ms"])
    used = 0
    for (t0, t1, t2, t3) in windows:
        w = [e for e in evs if t0 <= e["start_ms"] < t3]
        assert w, f"no compute events in window {t0}..{t3}"
        used += len(w)
        for a, b in zip(w, w[1:]):
            assert b["start_ms"] == a["end_ms"], f"gap or overlap: {a} {b}"
        assert t0 <= w[0]["start_ms"] <= t1, (w[0], t0, t1)
        assert t2 <= w[-1]["end_ms"] <= t3, (w[-1], t2, t3)
        billed = sum(e["seconds"] for e in w)
        measured = (t3 - t0) / 1000.0
        assert abs(billed - (w[-1]["end_ms"] - w[0]["start_ms"]) / 1000.0) < 1e-6
        assert measured - tolerance_s <= billed <= measured + 0.001, (billed, measured)
    assert used == len(evs), "compute events outside every running window"


def same_events(api_events, ledger_rows):
    """The usage API's intervals and the ledger's rows are the same events."""
    a = {e["key"]: e for e in api_events}
    b = {r["key"]: r for r in ledger_rows}
    assert set(a) == set(b), (set(a) ^ set(b))
    for k, e in a.items():
        r = b[k]
        assert (e["kind"], e["project"], e["start_ms"], e["end_ms"]) == \
               (r["kind"], r["project"], r["start_ms"], r["end_ms"]), (e, r)
        assert abs(e["seconds"] - r["seconds"]) < 1e-6
        for f in ("cu_seconds", "byte_seconds"):
            if f in e:
                assert abs(e[f] - r[f]) <= 1e-9 * max(1.0, abs(e[f])), (e, r)
        for f in ("bytes_in", "bytes_out", "bytes", "cu"):
            if f in e:
                assert e[f] == r[f], (e, r)


# --- compute time ----------------------------------------------------------

def test_usage_and_ledger_match_running_time_per_project(controller_factory, pg):
    ctl = start_ctl(controller_factory, pg)
    warm_template(ctl)
    windows = {"alpha": [], "beta": []}
    cids = {}
    errors = []

    def run(project, plan, **create):
        try:
            for i, hold in enumerate(plan):
                t0 = now_ms()
                if i == 0:
                    cids[project] = ctl.create_project(project, **create)["compute_id"]
                else:
                    wake(ctl, project)
                t1 = now_ms()
                time.sleep(hold)
                t2 = now_ms()
                suspend(ctl, cids[project])
                windows[project].append((t0, t1, t2, now_ms()))
                time.sleep(1.2)       # stopped: must not be billed
        except Exception as e:        # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=("alpha", [2.0, 2.5])),
               threading.Thread(target=run, args=("beta", [1.0, 3.2, 0.3]),
                                kwargs={"min_cu": 2, "max_cu": 2})]
    t_begin = now_ms()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    wait_exported(ctl, pg)

    for project, other in (("alpha", "beta"), ("beta", "alpha")):
        # exported events are gone from Redis; the API answers from the
        # hourly buckets, the ledger has every event
        assert redis_events(ctl, project) == []
        doc = all_usage(ctl, project, t_begin)
        assert doc["intervals"] == []
        rows = ledger(pg, project)
        same_totals(doc, rows)
        evs = [e for e in rows if e["kind"] == "compute"]
        check_windows(evs, windows[project])
        # intervals close at least every meter_interval_s (1 s) while running
        # (1 s, plus the scheduler's tick and slack for a loaded machine)
        assert max(e["seconds"] for e in evs) <= 2.5
        assert all(e["project"] == project and e["compute_id"] == cids[project] for e in evs)
        cu = 2 if project == "beta" else 1
        assert all(e["cu"] == cu and abs(e["cu_seconds"] - cu * e["seconds"]) < 1e-6
                   for e in evs)
        tot = doc["totals"]
        assert abs(tot["cu_seconds"] - cu * tot["compute_seconds"]) < 1e-6
        # the ledger holds only this project's events
        assert not any(cids[other] in r["key"] or r["compute_id"] == cids[other] for r in rows)
        assert doc["open"] == [] or all(o["kind"] == "storage" for o in doc["open"])


def test_usage_range_is_clipped(controller_factory):
    """An event half inside the range counts half; the CLI shows the same."""
    import subprocess
    from conftest import CTL_BIN
    ctl = start_ctl(controller_factory)          # no ledger: served from Redis
    doc = ctl.create_project("clip")
    time.sleep(2.5)
    suspend(ctl, doc["compute_id"])
    evs = [e for e in redis_events(ctl, "clip") if e["kind"] == "compute"]
    assert len(evs) >= 2
    e = evs[0]
    mid = (e["start_ms"] + e["end_ms"]) // 2
    end = max(x["end_ms"] for x in evs)
    u = usage(ctl, "clip", rfc3339(mid), rfc3339(end + 1000))
    want = (e["end_ms"] - mid) / 1000.0 + sum(x["seconds"] for x in evs[1:])
    assert abs(u["totals"]["compute_seconds"] - want) < 1e-6
    first = [x for x in u["intervals"] if x["key"] == e["key"]][0]
    assert abs(first["fraction"] - (e["end_ms"] - mid) / (e["end_ms"] - e["start_ms"])) < 1e-9
    # a '+' offset, sent unencoded as humans do, and the CLI
    q = rfc3339(mid).replace("Z", "+00:00")
    st, raw = ctl.get(f"/api/v1/projects/clip/usage?from={q}&to={rfc3339(end + 1000)}")
    assert st == 200 and abs(raw["totals"]["compute_seconds"] - want) < 1e-6, raw
    env = dict(os.environ, SMDB_URL=ctl.url, SMDB_API_TOKEN=ctl.token)
    r = subprocess.run([CTL_BIN, "usage", "clip", "--from", q, "--to", rfc3339(end + 1000)],
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert abs(json.loads(r.stdout)["totals"]["compute_seconds"] - want) < 1e-6


# --- crashes -----------------------------------------------------------------

def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def preload_transfers(redis, project, n):
    """n transfer events waiting for export, written the way the controller
    writes them (usage index, pending, queue), with redis-cli --pipe."""
    import subprocess
    base = now_ms() - 60_000
    cmds = []
    for i in range(n):
        end = base + i // 100
        key = f"{project}:{end}.4242.{i}:transfer"
        ev = json.dumps({"key": key, "kind": "transfer", "project": project,
                         "compute_id": None, "start_ms": end - 5, "end_ms": end,
                         "seconds": 0.005, "bytes_in": i, "bytes_out": 2 * i},
                        separators=(",", ":"))
        cmds.append(resp("ZADD", f"smdb:usage:{project}", end, ev))
        cmds.append(resp("HSET", "smdb:export:pending", key, ev))
        cmds.append(resp("ZADD", "smdb:export:queue", end, key))
    r = subprocess.run(redis.cli_argv("--pipe"), input=b"".join(cmds),
                       capture_output=True, timeout=120)
    assert r.returncode == 0 and b"errors: 0" in r.stdout, r.stdout

def test_kill9_during_metering_and_export(controller_factory, pg):
    """The controller dies at random moments while intervals are split every
    second, storage is sampled every second and the exporter works through a
    backlog of 100,000 events (so kills land inside export batches, between
    PostgreSQL's commit and the acknowledgement in Redis).  The ledger ends
    up with every interval and every event exactly once."""
    seed = int(os.environ.get("SMDB_TEST_SEED", "0")) or random.randrange(1, 10**9)
    rounds = int(os.environ.get("SMDB_TEST_KILLS", "24"))
    print(f"seed={seed} (SMDB_TEST_SEED), kills={rounds} (SMDB_TEST_KILLS)")
    rng = random.Random(seed)
    ctl = start_ctl(controller_factory, pg, export_interval_ms=20, storage_sample_s=1)
    warm_template(ctl)
    windows = []
    t0 = now_ms()
    doc = ctl.create_project("crashy")
    cid = doc["compute_id"]
    preload_transfers(ctl.redis, "bulk", 100_000)
    start = [t0, now_ms()]
    kills = 0
    for i in range(rounds):
        time.sleep(rng.uniform(0.0, 1.4))
        ctl.kill9()
        kills += 1
        time.sleep(rng.uniform(0.0, 0.3))
        ctl.start()
        if i % 6 == 5:
            # a suspend and a wake between crashes: closes and opens
            t2 = now_ms()
            suspend(ctl, cid)
            windows.append((start[0], start[1], t2, now_ms()))
            time.sleep(rng.uniform(0.2, 0.8))
            t0 = now_ms()
            wake(ctl, "crashy")
            start = [t0, now_ms()]
            c = mysql(doc["compute"]["port"], doc["admin_user"], doc["admin_password"])
            c.cursor().execute("CREATE DATABASE IF NOT EXISTS d%d" % i)
            c.close()
    t2 = now_ms()
    suspend(ctl, cid)
    windows.append((start[0], start[1], t2, now_ms()))
    time.sleep(2)             # the sample at suspend
    m = wait_exported(ctl, pg, timeout=120)

    # the backlog: all of it, once
    bulk = pg.query("SELECT count(*), count(DISTINCT key), sum(bytes_in), sum(bytes_out) "
                    "FROM usage_ledger WHERE project = 'bulk'")[0]
    n = 100_000
    assert [int(x) for x in bulk] == [n, n, n * (n - 1) // 2, n * (n - 1)]

    rows = ledger(pg, "crashy")
    assert len(rows) == len({r["key"] for r in rows})
    same_totals(all_usage(ctl, "crashy", windows[0][0]), rows)
    check_windows(rows, windows)
    # storage: one unbroken chain of intervals from creation on
    st = sorted((r for r in rows if r["kind"] == "storage"), key=lambda r: r["start_ms"])
    assert st, "no storage intervals"
    comp = sorted((r for r in rows if r["kind"] == "compute"), key=lambda r: r["start_ms"])
    # storage from the compute record's creation, compute time from the spawn
    assert st[0]["start_ms"] <= comp[0]["start_ms"]
    for a, b in zip(st, st[1:]):
        assert b["start_ms"] == a["end_ms"], (a, b)
    for r in st:
        assert r["bytes"] > 0 and abs(r["byte_seconds"] - r["bytes"] * r["seconds"]) \
            <= 1e-9 * r["byte_seconds"]
    print(f"kills={kills} events={len(rows)} duplicates_skipped="
          f"{m['smdb_billing_export_duplicates_total']:.0f} "
          f"failures={m['smdb_billing_export_failures_total']:.0f}")


def test_postgres_down_then_back(controller_factory, pg):
    ctl = start_ctl(controller_factory, pg)
    warm_template(ctl)
    t_begin = now_ms()
    windows = []
    t0 = now_ms()
    doc = ctl.create_project("outage")
    windows_start = [t0, now_ms()]
    time.sleep(1)
    wait_exported(ctl, pg)

    pg.stop()
    t2 = now_ms()
    suspend(ctl, doc["compute_id"])
    windows.append((windows_start[0], windows_start[1], t2, now_ms()))
    for hold in (1.5, 0.7):
        t0 = now_ms()
        wake(ctl, "outage")
        t1 = now_ms()
        time.sleep(hold)
        t2 = now_ms()
        suspend(ctl, doc["compute_id"])
        windows.append((t0, t1, t2, now_ms()))
    m = metrics(ctl)
    assert m["smdb_billing_events_waiting"] > 0
    assert m["smdb_billing_export_lag_seconds"] > 0
    time.sleep(2)
    m = metrics(ctl)
    assert m["smdb_billing_export_failures_total"] > 0
    assert m["smdb_billing_ledger_up"] == 0
    # usage is served meanwhile, from Redis
    served = all_usage(ctl, "outage", t_begin)
    assert served["totals"]["compute_seconds"] > 3

    pg.start()
    wait_exported(ctl, pg, timeout=30)
    m = metrics(ctl)
    assert m["smdb_billing_ledger_up"] == 1 and m["smdb_billing_export_lag_seconds"] == 0
    rows = ledger(pg, "outage")
    assert abs(served["totals"]["compute_seconds"] -
               sum(r["seconds"] for r in rows if r["kind"] == "compute"
                   and r["end_ms"] <= served["to_ms"])) < 1e-6
    same_totals(all_usage(ctl, "outage", t_begin), rows)
    check_windows(rows, windows)


def test_postgres_hangs(controller_factory, pg):
    """A PostgreSQL that accepts connections but never answers (every
    process stopped): the controller keeps serving, the events wait, and
    they are exported once it answers again."""
    ctl = start_ctl(controller_factory, pg)
    t_begin = now_ms()
    doc = ctl.create_project("hang")
    wait_exported(ctl, pg)
    failures = metrics(ctl)["smdb_billing_export_failures_total"]

    pg.pause()
    t = time.time()
    suspend(ctl, doc["compute_id"])
    wake(ctl, "hang")
    time.sleep(1)
    suspend(ctl, doc["compute_id"])
    usage(ctl, "hang")
    assert time.time() - t < 10, "the API was held up by the ledger"
    end = time.time() + 40
    while metrics(ctl)["smdb_billing_export_failures_total"] == failures:
        assert time.time() < end, "a hung ledger was never given up on"
        time.sleep(0.5)
    assert metrics(ctl)["smdb_billing_events_waiting"] > 0

    pg.resume()
    wait_exported(ctl, pg, timeout=40)
    same_totals(all_usage(ctl, "hang", t_begin), ledger(pg, "hang"))


# --- storage -----------------------------------------------------------------

def datadir_bytes(path):
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(d, f)).st_blocks * 512
            except OSError:
                pass
    return total


def test_storage_sampled_at_suspend_and_closed_at_delete(controller_factory):
    """Storage is sampled when a compute is suspended (even with a long
    sample period), and a deleted compute's storage interval is closed at
    the deletion; the deleted project's usage stays queryable."""
    ctl = start_ctl(controller_factory, storage_sample_s=3600, meter_interval_s=60)
    t0 = now_ms()
    doc = ctl.create_project("disk")
    cid = doc["compute_id"]
    suspend(ctl, cid)
    end = time.time() + 10
    while True:
        opened = [o for o in usage(ctl, "disk")["open"] if o["kind"] == "storage"]
        if opened and "bytes" in opened[0]:
            break
        assert time.time() < end, "no storage sample after the suspend"
        time.sleep(0.1)
    size = datadir_bytes(os.path.join(ctl.data_dir, cid, "data"))
    assert opened[0]["bytes"] == size
    assert t0 <= opened[0]["start_ms"] <= now_ms()
    time.sleep(1)
    t_del = now_ms()
    st, _ = ctl.delete("/api/v1/projects/disk")
    assert st == 200
    u = all_usage(ctl, "disk", t0)
    storage = [e for e in u["intervals"] if e["kind"] == "storage"]
    assert len(storage) == 1, storage
    s = storage[0]
    assert s["start_ms"] == opened[0]["start_ms"] and t_del <= s["end_ms"] <= now_ms()
    assert s["bytes"] == size and s["key"] == f"{cid}:{s['start_ms']}:storage"
    assert abs(s["byte_seconds"] - size * s["seconds"]) <= 1e-9 * s["byte_seconds"]
    assert abs(u["totals"]["storage_byte_seconds"] - s["byte_seconds"]) <= 1e-6 * s["byte_seconds"]
    assert u["open"] == []
    assert [e["kind"] for e in u["intervals"]].count("compute") == 1


# --- bad queries ------------------------------------------------------------

@pytest.mark.parametrize("query,status,code", [
    ("from=yesterday", 400, "invalid_time"),
    ("to=2024-13-01T00:00:00Z", 400, "invalid_time"),
    ("from=2024-02-30T00:00:00Z", 400, "invalid_time"),
    ("from=2024-11-22T10:00:00", 400, "invalid_time"),        # no offset
    ("from=", 400, "invalid_time"),
    ("from=1732290000000", 400, "invalid_time"),
    ("from=2024-11-02T00:00:00Z&to=2024-11-01T00:00:00Z", 400, "invalid_range"),
    ("from=2020-01-01T00:00:00Z&to=2024-01-01T00:00:00Z", 400, "range_too_large"),
    ("detail=perhaps", 400, "invalid_parameter"),
])
def test_bad_usage_queries(controller, query, status, code):
    controller.create_project("known")
    st, doc = controller.get(f"/api/v1/projects/known/usage?{query}")
    assert (st, doc["code"]) == (status, code), doc
    assert doc["error"]


def test_unknown_projects_and_empty_ranges(controller):
    st, doc = controller.get("/api/v1/projects/nope/usage")
    assert st == 404 and doc["code"] == "unknown_project" and doc["error"]
    st, doc = controller.get("/api/v1/projects/Not_Valid/usage")
    assert st == 400 and doc["code"] == "invalid_project_id"
    st, doc = controller.get("/api/v1/projects/nope/usage", token="wrong")
    assert st == 401
    controller.create_project("fresh")
    # from == to: an empty range, not an error
    u = usage(controller, "fresh", "2024-11-01T00:00:00Z", "2024-11-01T00:00:00Z")
    assert u["totals"]["events"] == 0 and u["intervals"] == []
    u = usage(controller, "fresh", detail="0")
    assert "intervals" not in u and u["totals"]["compute_seconds"] == 0
    assert [o["kind"] for o in u["open"]] == ["compute"]
    # default range: the last 30 days
    assert u["to_ms"] - u["from_ms"] == 30 * 86400 * 1000


# --- data transfer through the proxy ----------------------------------------

class Relay:
    """A TCP relay in front of nginx that counts the bytes of each session
    both ways: exactly what nginx's client leg sees."""

    def __init__(self, upstream_port):
        self.up = upstream_port
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.port = self.srv.getsockname()[1]
        self.sessions = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.up))
            s = {"to_server": 0, "to_client": 0, "first_client_packet": None,
                 "done": threading.Event()}
            with self.lock:
                self.sessions.append(s)
            a = threading.Thread(target=self._pump, args=(c, u, s, "to_server"))
            b = threading.Thread(target=self._pump, args=(u, c, s, "to_client"))
            a.start()
            b.start()
            threading.Thread(target=self._finish, args=(a, b, c, u, s), daemon=True).start()

    @staticmethod
    def _pump(src, dst, s, field):
        while True:
            try:
                d = src.recv(65536)
            except OSError:
                d = b""
            if not d:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            if field == "to_server" and s["first_client_packet"] is None and len(d) >= 3:
                # the client's HandshakeResponse: 3-byte length + seq + payload
                s["first_client_packet"] = 4 + int.from_bytes(d[:3], "little")
            s[field] += len(d)
            dst.sendall(d)

    @staticmethod
    def _finish(a, b, c, u, s):
        a.join()
        b.join()
        c.close()
        u.close()
        s["done"].set()

    def close(self):
        self.srv.close()


def billing_socket(procs):
    """A path for the controller's transfer socket, in a directory the
    nginx workers (nobody) and the forgers below can reach."""
    import tempfile
    d = tempfile.mkdtemp(prefix="smdb-bill-", dir="/tmp")
    os.chmod(d, 0o755)
    procs.cleanup_dirs.append(d)
    return os.path.join(d, "billing.sock")


def send_as(path, dgrams, uid=None, gid=None):
    """Sends datagrams to the unix socket from a child process running as
    uid/gid (None: as we are).  Returns the errno names of failed sends."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            if gid is not None:
                os.setgroups([])
                os.setgid(gid)
            if uid is not None:
                os.setuid(uid)
            errs = []
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                for d in dgrams:
                    try:
                        s.sendto(d.encode() if isinstance(d, str) else d, path)
                    except OSError as e:
                        errs.append(errno_name(e.errno))
            os.write(w, json.dumps(errs).encode())
        except BaseException:     # noqa: BLE001 - the child must never return
            code = 1
        os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    _, status = os.waitpid(pid, 0)
    assert status == 0, "sender child failed"
    return json.loads(out)


def errno_name(n):
    import errno
    return errno.errorcode.get(n, str(n))


def transfer_line(project, pid, conn, end_ms, session_ms, b_in, b_out, compute="-"):
    return (f"<190>Nov 22 16:25:01 smdb: smdb1 {project} {compute} {pid} {conn} "
            f"{end_ms // 1000}.{end_ms % 1000:03d} {session_ms // 1000}.{session_ms % 1000:03d} "
            f"{b_in} {b_out}")


def line_counts(ctl):
    m = metrics(ctl)
    return {r: m[f'smdb_billing_transfer_lines_total{{result="{r}"}}']
            for r in ("recorded", "duplicate", "malformed", "unrouted", "stale",
                      "unauthenticated")}


def wait_lines(ctl, before, n, timeout=10):
    """Until n more lines have been handled (any result); the differences."""
    end = time.time() + timeout
    while True:
        now = line_counts(ctl)
        d = {k: now[k] - before[k] for k in now}
        if sum(d.values()) >= n:
            return d
        assert time.time() < end, (d, ctl.log_tail())
        time.sleep(0.05)


def transfer_totals(ctl, project, since):
    t = all_usage(ctl, project, since)["totals"]
    return t["bytes_in"], t["bytes_out"]


def test_transfer_bytes_through_the_proxy(controller_factory, procs, run_dir, pg):
    """nginx's records, through the authenticated socket, bill exactly the
    bytes the client sent and received; forged, absurd and replayed
    records bill nothing."""
    from nginx_fixture import MODULE_SO, billing_log, start_nginx
    if not os.path.exists(MODULE_SO):
        pytest.skip("ngx_stream_wake_module not built")
    sock = billing_socket(procs)
    # the nginx workers run as nobody (the master is root)
    ctl = start_ctl(controller_factory, pg, syslog_listen=f"unix:{sock}",
                    syslog_allow_uids="nobody")
    st = os.stat(sock)
    assert oct(st.st_mode & 0o777) == "0o660" and st.st_gid == 65534, oct(st.st_mode)
    ngx = start_nginx(procs, run_dir, ctl, cache_ttl="1s", stream_extra=billing_log(sock))
    t_begin = now_ms()
    docs = {p: ctl.create_project(p) for p in ("xfer", "quiet")}
    relay = Relay(ngx.port)
    try:
        doc = docs["xfer"]
        conn = mysql(relay.port, doc["admin_user"], doc["admin_password"], "xfer")
        cur = conn.cursor()
        cur.execute("SELECT REPEAT('x', 1000000)")                 # ~1 MB down
        assert len(cur.fetchone()[0]) == 1000000
        cur.execute("SELECT LENGTH(%s)", ("y" * 300000,))           # ~300 kB up
        assert cur.fetchone()[0] == 300000
        conn.close()
        relay.sessions[0]["done"].wait(10)
        sess = relay.sessions[0]
        end = time.time() + 10
        while transfer_totals(ctl, "xfer", t_begin) == (0, 0):
            assert time.time() < end, "no transfer record\n" + ctl.log_tail()
            time.sleep(0.1)
        b_in, b_out = transfer_totals(ctl, "xfer", t_begin)
        # exactly what nginx counted ...
        line = [a for a in ngx.wait_access(1) if a.get("project") == "xfer"][0]
        assert line["bytes"] == f"{b_in}/{b_out}"
        # ... which is every byte the client received and every byte it sent
        # (the module adds the HandshakeResponse it read in the preread
        # phase to $bytes_received, which nginx's stream core would not)
        assert b_out == sess["to_client"] and b_out > 1000000
        assert b_in == sess["to_server"]
        assert b_in > 300000
        print(f"client sent {sess['to_server']} B, nginx counted {b_in} B "
              f"(HandshakeResponse {sess['first_client_packet']} B)")
        # the other project was never charged
        assert transfer_totals(ctl, "quiet", t_begin) == (0, 0)

        # a second session, on the other project
        q = docs["quiet"]
        conn = mysql(relay.port, q["admin_user"], q["admin_password"], "quiet")
        conn.cursor().execute("SELECT 1")
        conn.close()
        relay.sessions[1]["done"].wait(10)
        s2 = relay.sessions[1]
        end = time.time() + 10
        while transfer_totals(ctl, "quiet", t_begin) == (0, 0):
            assert time.time() < end
            time.sleep(0.1)
        q_in, q_out = transfer_totals(ctl, "quiet", t_begin)
        assert q_out == s2["to_client"]
        assert q_in == s2["to_server"]
        assert transfer_totals(ctl, "xfer", t_begin) == (b_in, b_out)
    finally:
        relay.close()

    # nginx's own record of the first session, rebuilt from what it billed
    wait_exported(ctl, pg)
    genuine = [r for r in ledger(pg, "xfer") if r["kind"] == "transfer"]
    assert len(genuine) == 1
    g = genuine[0]
    pid, conn_no = g["key"].split(":")[1].split(".")[1:3]
    replay = transfer_line("xfer", pid, conn_no, g["end_ms"], g["end_ms"] - g["start_ms"],
                           g["bytes_in"], g["bytes_out"], g["compute_id"] or "-")
    now = now_ms()
    forged = transfer_line("xfer", 4242, 1, now, 1000, 10**9, 10**9)
    before = line_counts(ctl)

    # a local process that is not nginx: not in the socket's group, it
    # cannot even send; in the group but another uid, the kernel's
    # credentials give it away
    assert send_as(sock, [forged], uid=12345, gid=12345) == ["EACCES"]
    assert send_as(sock, [forged, forged.replace("xfer", "quiet")], uid=12345, gid=65534) == []
    d = wait_lines(ctl, before, 2)
    assert d["unauthenticated"] == 2 and d["recorded"] == 0, d

    # an allowed sender (root) with absurd values, garbage, a stale record,
    # the genuine record replayed, and the same session altered
    before = line_counts(ctl)
    bad = [transfer_line("xfer", 4242, 2, now, 1000, -1, 0),
           transfer_line("xfer", 4242, 3, now, 1000, 2**40 + 1, 0),
           transfer_line("xfer", 4242, 4, now, 1000, 0, 2**63),
           transfer_line("xfer", 4242, 5, now, 1000, 10**20, 0),
           transfer_line("xfer", 4242, 6, now, 1000, "1e9", 0),
           transfer_line("xfer", 0, 7, now, 1000, 1, 1),
           "<190>Nov 22 16:25:01 smdb: smdb1 quiet garbage",
           "\x00\x01binary"]
    stale = [transfer_line("xfer", 4242, 8, now - 2 * 3600_000, 1000, 5, 5)]
    again = [replay, replay.replace(f" {g['bytes_in']} ", " 999999999 ")]
    assert send_as(sock, bad + stale + again) == []
    d = wait_lines(ctl, before, len(bad) + len(stale) + len(again))
    assert (d["malformed"], d["stale"], d["duplicate"], d["recorded"]) == \
        (len(bad), 1, 2, 0), d
    assert transfer_totals(ctl, "xfer", t_begin) == (b_in, b_out)
    assert transfer_totals(ctl, "quiet", t_begin) == (q_in, q_out)

    # a genuine new record from an allowed sender bills once, even sent twice
    before = line_counts(ctl)
    fresh = transfer_line("quiet", 4242, 99, now_ms(), 1000, 1000, 2000)
    assert send_as(sock, [fresh, fresh]) == []
    d = wait_lines(ctl, before, 2)
    assert (d["recorded"], d["duplicate"]) == (1, 1), d
    assert transfer_totals(ctl, "quiet", t_begin) == (q_in + 1000, q_out + 2000)

    # and the ledger has every transfer once, per project, the API the same sums
    wait_exported(ctl, pg)
    for p in ("xfer", "quiet"):
        rows = [r for r in ledger(pg, p) if r["kind"] == "transfer"]
        assert (sum(r["bytes_in"] for r in rows), sum(r["bytes_out"] for r in rows)) == \
            transfer_totals(ctl, p, t_begin)


def test_udp_listener_is_opt_in(controller_factory):
    """host:port carries no sender identity: refused unless declared trusted."""
    ctl = controller_factory(syslog_listen="127.0.0.1:18514")
    with pytest.raises(RuntimeError):
        ctl.start()
    assert "syslog_udp_trusted" in ctl.log_tail()


# --- bounded history ------------------------------------------------------

HOUR = 3600_000


def preload_events(redis, project, base_hour_ms):
    """Compute, storage and transfer events of one project over three hours
    (some crossing an hour), written the way the controller writes them."""
    import subprocess
    evs = []
    cid = f"{project}-0a0a0a"
    for i in range(12):                               # 12 x 20 min of compute at 2 cu
        s = base_hour_ms + i * 900_000 + 7
        e = s + 1_200_000 if i % 3 == 0 else s + 600_000
        evs.append({"key": f"{cid}:{s}:compute", "kind": "compute", "project": project,
                    "compute_id": cid, "start_ms": s, "end_ms": e, "seconds": (e - s) / 1000,
                    "cu": 2, "cu_seconds": 2 * (e - s) / 1000})
    s, e = base_hour_ms + 1234, base_hour_ms + 2 * HOUR + 999
    evs.append({"key": f"{cid}:{s}:storage", "kind": "storage", "project": project,
                "compute_id": cid, "start_ms": s, "end_ms": e, "seconds": (e - s) / 1000,
                "bytes": 123456789, "byte_seconds": 123456789 * (e - s) / 1000})
    for i in range(30):
        e = base_hour_ms + i * 333_333
        evs.append({"key": f"{project}:{e}.77.{i}:transfer", "kind": "transfer",
                    "project": project, "compute_id": None, "start_ms": e - 10, "end_ms": e,
                    "seconds": 0.01, "bytes_in": 1000 + i, "bytes_out": 5000 + i})
    cmds = []
    for ev in evs:
        j = json.dumps(ev, separators=(",", ":"))
        score = ev["end_ms"] if ev["kind"] == "transfer" else ev["start_ms"]
        cmds += [resp("ZADD", f"smdb:usage:{project}", score, j),
                 resp("HSET", "smdb:export:pending", ev["key"], j),
                 resp("ZADD", "smdb:export:queue", ev["end_ms"], ev["key"])]
    r = subprocess.run(redis.cli_argv("--pipe"), input=b"".join(cmds),
                       capture_output=True, timeout=60)
    assert r.returncode == 0 and b"errors: 0" in r.stdout, r.stdout
    return evs


def test_history_is_retired_into_hourly_buckets(controller_factory):
    """Without a ledger, events older than usage_retention_s leave Redis'
    per-event records; the usage API returns the same totals for every
    range whose ends are whole hours or outside the activity, and says so
    when a range cuts an aggregated hour."""
    base = (now_ms() // HOUR - 30 * 24) * HOUR        # 30 days ago, on the hour
    ctl = start_ctl(controller_factory, usage_retention_s=400 * 86400)
    evs = preload_events(ctl.redis, "hist", base)
    ranges = [(base - HOUR, base + 4 * HOUR), (base, base + HOUR),
              (base + HOUR, base + 2 * HOUR), (base + HOUR, base + 3 * HOUR),
              (base - 86400_000, now_ms() + 60_000)]
    before = [usage(ctl, "hist", rfc3339(a), rfc3339(b), detail="0") for a, b in ranges]
    assert before[0]["totals"]["events"] == len(evs) and before[0]["exact"]
    assert before[0]["totals"]["bytes_in"] == sum(1000 + i for i in range(30))
    ctl.stop()

    ctl.opts["usage_retention_s"] = "86400"
    ctl.start()
    end = time.time() + 30
    while redis_events(ctl, "hist"):
        assert time.time() < end, ctl.log_tail()
        time.sleep(0.1)
    assert int(ctl.redis.cli("HLEN", "smdb:export:pending")) == 0
    assert int(ctl.redis.cli("HLEN", "smdb:usage-hours:hist")) == 3
    assert metrics(ctl)["smdb_billing_events_expired_total"] == len(evs)
    for (a, b), old in zip(ranges, before):
        new = usage(ctl, "hist", rfc3339(a), rfc3339(b), detail="0")
        assert new["exact"] is True
        for k in ("events", "bytes_in", "bytes_out"):
            assert new["totals"][k] == old["totals"][k], (a, b, k, new, old)
        for k in ("compute_seconds", "cu_seconds", "storage_byte_seconds"):
            assert abs(new["totals"][k] - old["totals"][k]) <= \
                1e-9 * max(1.0, old["totals"][k]), (a, b, k, new, old)
    # a range that cuts an aggregated hour is pro-rated, and marked
    cut = usage(ctl, "hist", rfc3339(base + HOUR // 2), rfc3339(base + 4 * HOUR))
    assert cut["exact"] is False
    assert 0 < cut["totals"]["compute_seconds"] < before[0]["totals"]["compute_seconds"]
    # a project known only by its history is still queryable
    assert usage(ctl, "hist", detail="0")["totals"]["events"] == len(evs)
