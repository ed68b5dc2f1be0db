"""Session limits with queueing at the proxy, and wake rate limits
(docs/limits.md), through real nginx with the wake module, a real
controller, Redis and mariadbd computes.

  - a project at its session limit (size_cu x cu_max_connections): extra
    clients wait in the proxy and get in when others leave; past the wait,
    or past the queue's length, ERR 1040; the compute never restarts;
  - a handshake flood on a stopped project: one start, few controller calls,
    a responsive controller, and the failing addresses refused at once;
  - a project started and stopped past its wake burst: 429 from the
    controller, ERR 1040 through nginx, negatively cached.

Clients come from different loopback addresses (127.0.0.x binds), so that
each address has its own failure bucket.
"""
import asyncio
import socket
import struct
import threading
import time
import urllib.error
import urllib.request

import pymysql
import pytest

from conftest import mysql, wait_for
from nginx_fixture import parse_err, raw_connect, read_packet, start_nginx
# the hand-made MySQL client of test_unauth.py
from test_unauth import handshake_response, native_token, packet

APP_USER, APP_PW = "app", "app-secret-pw"


def make_project(controller, name, **opts):
    """A running project with a password account `app` on its database."""
    doc = controller.create_project(name, idle_timeout_s=3600, freeze_after_s=0, **opts)
    c = mysql(doc["compute"]["port"], doc["admin_user"], doc["admin_password"])
    cur = c.cursor()
    cur.execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")
    cur.execute(f"CREATE USER '{APP_USER}'@'%' IDENTIFIED BY '{APP_PW}'")
    cur.execute(f"GRANT ALL ON `{name}`.* TO '{APP_USER}'@'%'")
    c.close()
    return doc


def metric(controller, name):
    req = urllib.request.Request(controller.url + "/metrics",
                                 headers={"Authorization": "Bearer " + controller.token})
    with urllib.request.urlopen(req, timeout=30) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def suspend_stop(controller, cid):
    st, doc = controller.post(f"/api/v1/compute/{cid}/suspend", {"mode": "stop", "drain": False})
    assert st == 200, (st, doc)
    wait_for(lambda: controller.get(f"/api/v1/compute/{cid}")[1]["state"] == "suspended",
             timeout=30, what="suspended")


def wake_raw(controller, project):
    """GET /wake_compute: (status, headers, body)."""
    req = urllib.request.Request(
        f"{controller.url}/wake_compute?endpointish={project}",
        headers={"Authorization": "Bearer " + controller.wake_token})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def uptime(conn):
    cur = conn.cursor()
    cur.execute("SHOW GLOBAL STATUS LIKE 'Uptime'")
    return int(cur.fetchall()[0][1])


# --- 1. sessions at the project's limit wait in the proxy ------------------

def connect_timed(port, out, key):
    t0 = time.monotonic()
    try:
        c = mysql(port, APP_USER, APP_PW, "lim")
        out[key] = ("ok", time.monotonic() - t0, c)
    except pymysql.err.OperationalError as e:
        out[key] = (e.args[0], time.monotonic() - t0, str(e.args[1]))


def waiting(ngx, n):
    """Until n sessions have started to wait for a slot (error log)."""
    wait_for(lambda: ngx.errors().count("waiting for a slot") >= n, timeout=20,
             what=f"{n} waiting sessions")


def test_session_limit_queues(controller_factory, procs, run_dir):
    """cu_max_connections=3, a 2 s wait, 2 waiters at most: the 4th client
    waits and gets in when one leaves; with 3 in and 2 waiting, a 6th client
    is refused at once; the waiters get ERR 1040 after 2 s; a client that
    resets while waiting leaves no place taken; the compute is never
    restarted and its server keeps its uptime."""
    ctl = controller_factory(cu_max_connections=3).start()
    ngx = start_nginx(procs, run_dir, ctl, session_queue=2, session_queue_timeout="2s")
    make_project(ctl, "lim")
    c0 = ctl.compute("lim")

    held = [mysql(ngx.port, APP_USER, APP_PW, "lim") for _ in range(3)]
    up0 = uptime(held[0])

    # the 4th waits; it gets in when one of the three leaves
    out = {}
    t = threading.Thread(target=connect_timed, args=(ngx.port, out, 4))
    t.start()
    waiting(ngx, 1)
    time.sleep(0.3)
    assert 4 not in out, out.get(4)
    held.pop(0).close()
    t.join(timeout=30)
    status, waited, conn = out[4]
    assert status == "ok", out[4]
    assert waited > 0.3, waited
    held.append(conn)

    # a waiter that resets the connection gives its place back at once
    s = raw_connect(ngx.port)
    seq, g = read_packet(s)
    assert g[:1] == b"\x0a"
    s.sendall(handshake_response(APP_USER, "lim"))
    waiting(ngx, 2)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    wait_for(lambda: "client left while waiting for a session slot" in ngx.errors(),
             timeout=10, what="the reset waiter noticed")

    # full, then 2 waiters: the 3rd newcomer is refused at once, the two
    # waiters after the 2 s wait, with the project, its limit and the wait
    out = {}
    ts = [threading.Thread(target=connect_timed, args=(ngx.port, out, i)) for i in (1, 2)]
    for t in ts:
        t.start()
    waiting(ngx, 4)
    connect_timed(ngx.port, out, 3)
    code, waited, msg = out[3]
    assert code == 1040, out[3]
    assert waited < 1.5, waited
    assert "project 'lim' is at its limit of 3 sessions and 2 clients wait already" in msg, msg
    for t in ts:
        t.join(timeout=30)
    for i in (1, 2):
        code, waited, msg = out[i]
        assert code == 1040, out[i]
        assert 1.9 < waited < 6.0, waited
        assert "Too many connections: project 'lim' is at its limit of 3 sessions " \
               "(waited 2." in msg, msg
        assert "retry later" in msg

    # nothing leaked: once all leave, three get in at once again
    for c in held:
        c.close()
    time.sleep(0.3)
    t0 = time.monotonic()
    held = [mysql(ngx.port, APP_USER, APP_PW, "lim") for _ in range(3)]
    assert time.monotonic() - t0 < 2.0
    assert uptime(held[0]) >= up0, "the server was restarted"
    for c in held:
        c.close()

    c1 = ctl.compute("lim")
    assert (c1["id"], c1["pid"], c1["state"]) == (c0["id"], c0["pid"], "running")
    assert c1["state_since_ms"] == c0["state_since_ms"]
    assert ngx.alerts() == []


# --- 2. a handshake flood on a stopped project -----------------------------

async def read_pkt(reader):
    hdr = await reader.readexactly(4)
    n = int.from_bytes(hdr[:3], "little")
    return hdr[3], await reader.readexactly(n)


async def login(port, src, user, password, db):
    """A real handshake from address src: (errno or 0, message)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0))
    try:
        seq, p = await read_pkt(reader)
        if p[:1] == b"\x0a":
            writer.write(handshake_response(user, db))
            seq, p = await read_pkt(reader)
            if p[:1] == b"\xfe":
                end = p.index(b"\0", 1)
                scramble = p[end + 1:].rstrip(b"\0")
                writer.write(packet(seq + 1, native_token(password, scramble)))
                seq, p = await read_pkt(reader)
        if p[:1] == b"\x00":
            return 0, "OK"
        if p[:1] == b"\xff":
            code, _, msg = parse_err(p)
            return code, msg
        return -1, repr(p[:16])
    except (asyncio.IncompleteReadError, ConnectionError) as e:
        return -1, repr(e)
    finally:
        writer.close()


GOOD, WRONG, UNKNOWN = "127.0.0.11", "127.0.0.10", "127.0.0.12"
FLOOD_RATE, FLOOD_S, FLOOD_CONCURRENCY = 500, 3.0, 120


async def flood(port):
    """FLOOD_RATE handshakes a second for FLOOD_S: 6 in 10 right, 3 with a
    wrong password, 1 naming an unknown project, each kind from its own
    address.  [(src, errno, msg)] and the rate reached."""
    sem = asyncio.Semaphore(FLOOD_CONCURRENCY)
    results = []

    async def one(i):
        kind = i % 10
        if kind < 6:
            src, args = GOOD, (APP_USER, APP_PW, "sleepy")
        elif kind < 9:
            src, args = WRONG, (APP_USER, f"wrong-{i}", "sleepy")
        else:
            src, args = UNKNOWN, (APP_USER, APP_PW, f"nope-{i}")
        try:
            r = await asyncio.wait_for(login(port, src, *args), 60)
        except (asyncio.TimeoutError, OSError) as e:
            r = (-2, repr(e))
        finally:
            sem.release()
        results.append((src,) + r)

    tasks = []
    t0 = time.monotonic()
    n = int(FLOOD_RATE * FLOOD_S)
    for i in range(n):
        due = t0 + i / FLOOD_RATE
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await sem.acquire()
        tasks.append(asyncio.ensure_future(one(i)))
    sent_s = time.monotonic() - t0
    await asyncio.gather(*tasks)
    return results, n / sent_s


def test_flood_on_a_stopped_project(controller_factory, procs, run_dir):
    """500 handshakes/s for 3 s on a stopped project: exactly one start, a
    handful of wake requests, /healthz fast throughout; the wrong-password
    and unknown-project addresses are refused with 1040 once their buckets
    are empty, the good address never is."""
    ctl = controller_factory().start()
    ngx = start_nginx(procs, run_dir, ctl, client_limit="rate=5r/s burst=10",
                      cache_ttl="2s")
    doc = make_project(ctl, "sleepy")
    suspend_stop(ctl, doc["compute_id"])

    starts0 = metric(ctl, "smdb_compute_starts_total")
    thaws0 = metric(ctl, "smdb_compute_thaws_total")
    wakes0 = metric(ctl, "smdb_wakes_total")

    stop = threading.Event()
    health = []

    def poll_health():
        while not stop.is_set():
            t0 = time.monotonic()
            st, _ = ctl.get("/healthz", token=None, timeout=30)
            health.append((st, time.monotonic() - t0))
            time.sleep(0.1)

    hp = threading.Thread(target=poll_health)
    hp.start()
    try:
        results, rate = asyncio.run(flood(ngx.port))
    finally:
        stop.set()
        hp.join(timeout=60)

    by = {src: [(c, m) for s, c, m in results if s == src] for src in (GOOD, WRONG, UNKNOWN)}
    refused = {src: [m for c, m in rs if c == 1040 and "failed connection attempts" in m]
               for src, rs in by.items()}
    print(f"\nflood: {len(results)} handshakes at {rate:.0f}/s; "
          + ", ".join(f"{src}: {len(rs)} ({len(refused[src])} refused)"
                      for src, rs in by.items())
          + f"; healthz max {max(d for _, d in health) * 1000:.0f} ms; "
          f"wakes {metric(ctl, 'smdb_wakes_total') - wakes0:.0f}")

    assert rate > 150, f"the flood reached {rate:.0f} handshakes/s only"
    # one start, no restart loop
    assert metric(ctl, "smdb_compute_starts_total") - starts0 == 1
    assert metric(ctl, "smdb_compute_thaws_total") - thaws0 == 0
    assert ctl.compute("sleepy")["state"] == "running"
    # the controller saw a handful of wakes: the good address's, one per
    # worker and cache period, and the unknown projects' until refused
    wakes = metric(ctl, "smdb_wakes_total") - wakes0
    assert wakes <= 2 * (FLOOD_S / 2 + 3) + 10 + 5 * FLOOD_S + 20, wakes
    assert health and all(st == 200 for st, _ in health)
    assert max(d for _, d in health) < 1.0, health

    # the good address gets in every time, never refused
    assert [r for r in by[GOOD] if r[0] != 0] == [], by[GOOD][:5]
    # the failing addresses: their own errors until refused at once
    assert {c for c, m in by[WRONG]} <= {1045, 1040}, by[WRONG][:5]
    assert {c for c, m in by[UNKNOWN]} <= {1049, 1040}, by[UNKNOWN][:5]
    for src in (WRONG, UNKNOWN):
        assert len(refused[src]) > len(by[src]) / 4, (src, len(refused[src]), len(by[src]))
        assert all(f"from {src}; retry in" in m for m in refused[src])
    assert [m for c, m in by[UNKNOWN] if c == 1049][:1], "no unknown-project error at all"
    assert ngx.alerts() == []


# --- 3. a project started too often ----------------------------------------

def test_wake_rate_limit(controller_factory, procs, run_dir):
    """wake_burst=2: two starts of a stopped compute pass, the third wake
    gets 429 rate_limited with Retry-After and X-Wake-Retry-After-Ms; a
    client through nginx gets ERR 1040, and the next one too, without a
    controller call (negative cache); a running compute's wakes are not
    limited."""
    ctl = controller_factory(wake_rate_per_min=6, wake_burst=2).start()
    ngx = start_nginx(procs, run_dir, ctl)
    doc = make_project(ctl, "often")
    cid = doc["compute_id"]

    for _ in range(2):
        suspend_stop(ctl, cid)
        st, hdr, body = wake_raw(ctl, "often")
        assert st == 200, body
        assert hdr["X-Wake-Cold-Start"] == "started"
        assert hdr["X-Wake-Max-Sessions"] == ctl.opts["cu_max_connections"]   # 1 CU
    for _ in range(5):      # running: cheap, unlimited
        st, hdr, _ = wake_raw(ctl, "often")
        assert st == 200 and hdr["X-Wake-Cold-Start"] == "running"

    suspend_stop(ctl, cid)
    st, hdr, body = wake_raw(ctl, "often")
    assert st == 429, body
    assert hdr["X-Wake-Error"] == "rate_limited"
    ms = int(hdr["X-Wake-Retry-After-Ms"])
    assert 1000 < ms <= 10000, ms
    assert int(hdr["Retry-After"]) == (ms + 999) // 1000
    assert b'"code":"rate_limited"' in body
    assert ctl.compute("often")["state"] == "suspended"

    wakes0 = metric(ctl, "smdb_wakes_total")
    for _ in range(2):
        with pytest.raises(pymysql.err.OperationalError) as ei:
            mysql(ngx.port, APP_USER, APP_PW, "often")
        code, msg = ei.value.args
        assert code == 1040, msg
        assert "project 'often' is waking too often; retry in" in msg, msg
    assert metric(ctl, "smdb_wakes_total") - wakes0 == 1, "not negatively cached"
    assert metric(ctl, "smdb_wakes_rate_limited_total") >= 2
    assert ctl.compute("often")["state"] == "suspended"
    assert ngx.alerts() == []
