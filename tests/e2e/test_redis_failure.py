"""The controller against a failing Redis (real redis-server, controller,
mariadbd): Redis killed and restarted, Redis stalled, Redis refusing the
controller's password.  The controller stays up, no compute is left half-way
through a transition, no project is reported twice, no second is billed
twice."""
import json
import os
import random
import signal
import socket
import subprocess
import threading
import time

from conftest import pid_alive

TRANSITIONAL = ("creating", "resuming", "suspending", "deleting")


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def wait_healthy(ctl, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        assert ctl.proc.poll() is None, "controller died: " + ctl.log_tail()
        try:
            st, _ = ctl.get("/healthz", token=None, timeout=5)
            if st == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("controller not healthy again: " + ctl.log_tail())


def computes(ctl):
    """Every compute record, straight from Redis."""
    out = {}
    for cid in ctl.redis.cli("SMEMBERS", "smdb:computes").split():
        items = ctl.redis.cli("HGETALL", f"smdb:compute:{cid}").split("\n")
        out[cid] = dict(zip(items[0::2], items[1::2]))
    return out


def wait_settled(ctl, timeout=60):
    """Until no compute is in a transitional state; returns the records."""
    end = time.time() + timeout
    while True:
        recs = computes(ctl)
        stuck = {c: r.get("state") for c, r in recs.items() if r.get("state") in TRANSITIONAL}
        if not stuck:
            return recs
        if time.time() > end:
            raise AssertionError(f"computes stuck: {stuck}\n" + ctl.log_tail())
        time.sleep(0.2)


def check_consistent(ctl, recs):
    """running: its server is alive and serves; suspended/stopped: no server
    on its port; suspended/frozen: its process exists."""
    for cid, r in recs.items():
        # the process backend's instance is "<pid>:<start time>"
        port, pid = int(r["port"]), int((r.get("instance") or "0:").split(":")[0])
        if r["state"] == "running":
            assert pid > 0 and pid_alive(pid), (cid, r)
            assert port_open(port), (cid, r)
            assert r.get("meter_since_ms"), f"running but not metered: {cid} {r}"
        elif r["state"] == "suspended" and r.get("mode") == "stopped":
            assert not port_open(port), (cid, r)
            assert not r.get("meter_since_ms"), f"stopped but metered: {cid} {r}"
        elif r["state"] == "suspended":
            assert pid > 0 and pid_alive(pid), (cid, r)


def check_billing(ctl, projects, t0_ms):
    """Compute usage events: one per interval key, no two of a compute overlap,
    and no compute is billed more than the wall time it existed."""
    for p in projects:
        lines = ctl.redis.cli("ZRANGE", f"smdb:usage:{p}", "0", "-1").splitlines()
        now = int(time.time() * 1000)
        evs = [json.loads(l) for l in lines if l]
        evs = [e for e in evs if e["kind"] == "compute"]
        keys = [e["key"] for e in evs]
        assert len(keys) == len(set(keys)), f"{p}: an interval recorded twice: {evs}"
        by = {}
        for e in evs:
            by.setdefault(e["compute_id"], []).append(e)
        for cid, es in by.items():
            es.sort(key=lambda e: e["start_ms"])
            for a, b in zip(es, es[1:]):
                assert b["start_ms"] >= a["end_ms"], f"{cid}: overlapping usage {a} {b}"
            assert es[0]["start_ms"] >= t0_ms and es[-1]["end_ms"] <= now, es
            assert sum(e["end_ms"] - e["start_ms"] for e in es) <= now - t0_ms


def test_redis_kill9_and_restart_during_wakes_suspends_creates(controller_factory, redis):
    """Redis kill -9 and restarted (same port and AOF) five times while
    computes are woken, suspended and created: the controller stays up, every
    compute ends running with a live server or suspended, every create
    answered 201 or a clear error (never 409 for its own project), and no
    usage interval is recorded twice."""
    redis.appendfsync = "always"     # every answered write survives kill -9
    redis.cli("CONFIG", "SET", "appendfsync", "always")
    t0_ms = int(time.time() * 1000)
    ctl = controller_factory(redis_timeout_ms=500, wake_timeout_ms=8000,
                             meter_interval_s=1).start()
    owned = [f"own{i}" for i in range(3)]
    for p in owned:
        ctl.create_project(p)
    stop = threading.Event()
    calls, creates, errors = [], [], []

    def worker(project):
        cid = ctl.compute(project)["id"]
        while not stop.is_set():
            try:
                st, doc = ctl.wake(project, timeout=90)
                calls.append(("wake", st, doc))
                st, doc = ctl.post(f"/api/v1/compute/{cid}/suspend", {"mode": "stop"},
                                   timeout=90)
                calls.append(("suspend", st, doc))
            except OSError as e:
                errors.append(repr(e))

    def creator():
        i = 0
        while not stop.is_set():
            name = f"new{i}"
            i += 1
            try:
                st, doc = ctl.post("/api/v1/projects", {"id": name}, timeout=90)
                creates.append((name, st, doc))
            except OSError as e:
                errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(p,)) for p in owned]
    threads.append(threading.Thread(target=creator))
    for t in threads:
        t.start()
    try:
        rng = random.Random(7)
        for _ in range(5):
            time.sleep(rng.uniform(0.4, 1.2))
            redis.kill9()
            time.sleep(rng.uniform(0.1, 0.6))
            redis.start()
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    assert ctl.proc.poll() is None, "controller died: " + ctl.log_tail()
    assert not errors, errors          # every request got an HTTP answer
    wait_healthy(ctl)

    # a failure is Redis being away, said so; never a transition lost to a
    # replay ("busy", a wake timing out on a compute left `resuming`)
    allowed = {"wake": {"store_unavailable"},
               "suspend": {"store_unavailable", "already_suspended"}}
    for kind, st, doc in calls:
        assert st == 200 or doc.get("code") in allowed[kind], (kind, st, doc)
        assert st == 200 or doc.get("error"), (kind, st, doc)
    assert any(k == "wake" and st == 200 for k, st, _ in calls)
    assert creates
    for name, st, doc in creates:
        assert st in (201, 500, 503), (name, st, doc)   # never 409: each name is new
        if st == 201:
            assert doc["id"] == name and doc["admin_password"], doc
        else:
            assert doc.get("code") and doc.get("error"), (name, st, doc)

    recs = wait_settled(ctl)
    check_consistent(ctl, recs)
    states = {r["project"]: r["state"] for r in recs.values()}
    made = [n for n, st, _ in creates if st == 201]
    for name in made:
        assert states.get(name) in ("running", "suspended"), (name, states.get(name))
    # a failed create leaves nothing, or a compute marked failed
    for name, st, _ in creates:
        if st != 201:
            assert states.get(name) in (None, "failed"), (name, states.get(name))
    # the next wake of every project works and serves
    for p in owned + made:
        st, w = ctl.wake(p)
        assert st == 200, (p, w)
        assert port_open(w["port"]), (p, w)
    check_consistent(ctl, wait_settled(ctl))
    check_billing(ctl, owned + made, t0_ms)


def test_redis_stalled_longer_than_timeout_during_transitions(controller_factory, redis):
    """Redis stopped (SIGSTOP) for longer than the controller's Redis timeout
    while a wake or a suspend is under way, then continued: no compute stays
    `resuming` or `suspending`, and the next wake works."""
    ctl = controller_factory(redis_timeout_ms=400, wake_timeout_ms=6000).start()
    doc = ctl.create_project("stall")
    cid = doc["compute_id"]
    # a fixed delay, or (None) the moment the compute is seen in the middle
    # state, so that the stall hits the transition that ends it
    for delay in [0.0, 0.05, None, 0.15, None, 0.3]:
        for op in ("wake", "suspend"):
            comp = ctl.compute("stall")
            if op == "wake" and comp["state"] != "suspended":
                st, _ = ctl.post(f"/api/v1/compute/{cid}/suspend", {"mode": "stop", "drain": False})
                assert st == 200
            if op == "suspend" and comp["state"] != "running":
                st, w = ctl.wake("stall")
                assert st == 200, w
            out = {}

            def call():
                if op == "wake":
                    out["r"] = ctl.wake("stall", timeout=90)
                else:
                    out["r"] = ctl.post(f"/api/v1/compute/{cid}/suspend",
                                        {"mode": "stop", "drain": False}, timeout=90)
            t = threading.Thread(target=call)
            t.start()
            if delay is None:
                middle = "resuming" if op == "wake" else "suspending"
                end = time.time() + 10
                while redis.cli("HGET", f"smdb:compute:{cid}", "state") != middle:
                    assert time.time() < end, f"never saw {middle}"
            else:
                time.sleep(delay)
            os.kill(redis.proc.pid, signal.SIGSTOP)
            try:
                time.sleep(1.5)          # well past redis_timeout_ms
            finally:
                os.kill(redis.proc.pid, signal.SIGCONT)
            t.join(timeout=120)
            assert not t.is_alive()
            st, body = out["r"]
            # ridden out, or a read that gave up: never a lost transition
            assert st == 200 or body.get("code") == "store_unavailable", (op, delay, st, body)
            assert ctl.proc.poll() is None, "controller died: " + ctl.log_tail()
            recs = wait_settled(ctl, timeout=30)
            check_consistent(ctl, recs)
    st, w = ctl.wake("stall")
    assert st == 200 and port_open(w["port"]), w
    check_billing(ctl, ["stall"], 0)


def test_controller_uses_acl_user_and_survives_wrong_password(controller_factory, redis):
    """The controller logs in as its ACL user, which may not run admin
    commands or touch other keys; with a wrong password it answers 503 and
    recovers once the password file is right again."""
    ctl = controller_factory().start()
    ctl.create_project("acl")
    # the default user is off; the controller's user is limited
    r = subprocess.run(["redis-cli", "-p", str(redis.port), "PING"], capture_output=True,
                       text=True, timeout=10)
    assert "NOAUTH" in r.stdout + r.stderr or "WRONGPASS" in r.stdout + r.stderr, r
    for cmd in (["CONFIG", "GET", "dir"], ["FLUSHALL"], ["SET", "other:x", "1"],
                ["HGET", "other:key", "f"], ["ACL", "LIST"], ["DEBUG", "SLEEP", "0"],
                ["SHUTDOWN"], ["MODULE", "LIST"], ["SCAN", "0"], ["KEYS", "*"]):
        out = redis.cli("ACL", "DRYRUN", redis.USER, *cmd)
        assert "no permissions" in out, (cmd, out)
    assert redis.cli("ACL", "DRYRUN", redis.USER, "HGET", "smdb:compute:x", "f") == "OK"
    as_ctl = ["redis-cli", "-p", str(redis.port), "--user", redis.USER, "--pass",
              redis.password, "--no-auth-warning"]
    for cmd in (["FLUSHALL"], ["SHUTDOWN", "NOSAVE"]):
        out = subprocess.run(as_ctl + cmd, capture_output=True, text=True, timeout=10)
        assert "NOPERM" in out.stdout + out.stderr, (cmd, out)
    assert redis.proc.poll() is None
    clients = redis.cli("CLIENT", "LIST")
    assert f"user={redis.USER}" in clients, clients

    # the password changes in Redis; the controller's file is now wrong
    new = os.urandom(16).hex()
    assert redis.cli("ACL", "SETUSER", redis.USER, "resetpass", ">" + new) == "OK"
    redis.cli("CLIENT", "KILL", "USER", redis.USER)
    st, doc = ctl.get("/healthz", token=None)
    assert st == 503 and doc["redis"] is False, doc
    st, doc = ctl.get("/api/v1/projects/acl")
    assert st == 503 and doc["code"] == "store_unavailable", doc
    st, doc = ctl.wake("acl")
    assert st == 503 and doc["code"] == "store_unavailable", doc
    st, doc = ctl.post("/api/v1/projects", {"id": "acl2"})
    assert st == 503 and doc["code"] == "store_unavailable", doc
    assert ctl.proc.poll() is None, ctl.log_tail()
    assert "authentication as smdb failed" in ctl.log_tail(20000)

    # the file is read at every connect: fixing it is enough
    redis.password = new
    redis.write_password(new)
    wait_healthy(ctl, timeout=10)
    st, w = ctl.wake("acl")
    assert st == 200, w
    assert redis.cli("EXISTS", "smdb:project:acl2") == "0"


def test_controller_started_with_wrong_password_waits(controller_factory, redis, procs):
    """A controller started with a wrong Redis password does not crash: it
    waits for Redis, and serves once its password file is right."""
    from conftest import CONTROLLER_BIN
    good = redis.password
    redis.write_password("not-the-password")
    ctl = controller_factory()
    ctl.write_conf()
    ctl.proc = procs.start("controller", [CONTROLLER_BIN, "--config", ctl.conf])
    time.sleep(2.5)
    assert ctl.proc.poll() is None, ctl.log_tail()
    assert "authentication as smdb failed" in ctl.log_tail(20000)
    redis.write_password(good)
    wait_healthy(ctl, timeout=15)
    assert ctl.create_project("late")["compute"]["state"] == "running"
