"""Unauthenticated clients create no lasting state: floods of handshakes for
unknown projects and with wrong passwords, through real nginx with the wake
module, a real controller, Redis, PostgreSQL and mariadbd computes.

Each flood client speaks the MySQL handshake by hand (raw sockets: faster
than full clients, and every byte is checked): it must get an ERR packet.
Afterwards Redis holds the same key names as before (only the running
project's own metering keys may come and go), the ledger has no rows for the
unknown projects, the nginx workers are the same processes, and a valid
client still gets in.  A wake is not activity: a wrong-password flood does
not advance the compute's last activity, nor keep it from suspending.
"""
import hashlib
import os
import random
import string
import subprocess
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import mysql
from nginx_fixture import billing_log, parse_err, raw_connect, read_packet, start_nginx

PREFIX = "smdb:"
FLOOD = 1000
THREADS = 20
APP_USER, APP_PW = "app", "app-secret-pw"

# PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH | CONNECT_WITH_DB |
# PLUGIN_AUTH_LENENC_CLIENT_DATA ... (what libmariadb sends, without attrs)
CAPS = 0x00afa28c


# --- a hand-made MySQL client -------------------------------------------

def native_token(password, scramble):
    """mysql_native_password: SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw)))."""
    h1 = hashlib.sha1(password.encode()).digest()
    h2 = hashlib.sha1(h1).digest()
    h3 = hashlib.sha1(scramble + h2).digest()
    return bytes(a ^ b for a, b in zip(h1, h3))


def packet(seq, body):
    return len(body).to_bytes(3, "little") + bytes([seq]) + body


def handshake_response(user, db):
    body = struct.pack("<IIB", CAPS, 1 << 24, 45) + b"\0" * 19 + \
        struct.pack("<I", 0x1d)
    body += user.encode() + b"\0" + b"\0"           # lenenc: no auth data
    body += db.encode() + b"\0" + b"mysql_native_password\0"
    return packet(1, body)


def try_login(port, user, password, db):
    """Greeting, response, auth switch if asked: the final packet's
    (errno or 0 for OK, message).  Raises on a protocol surprise."""
    s = raw_connect(port, timeout=30)
    try:
        seq, g = read_packet(s)
        assert seq == 0 and g[:1] == b"\x0a", g[:16]
        s.sendall(handshake_response(user, db))
        while True:
            seq, p = read_packet(s)
            assert p, "closed without an ERR"
            if p[:1] == b"\xfe":                    # AuthSwitchRequest
                name_end = p.index(b"\0", 1)
                plugin = p[1:name_end]
                assert plugin == b"mysql_native_password", plugin
                scramble = p[name_end + 1:].rstrip(b"\0")
                s.sendall(packet(seq + 1, native_token(password, scramble)))
                continue
            if p[:1] == b"\xff":
                code, _, msg = parse_err(p)
                return code, msg
            if p[:1] == b"\x00":
                return 0, "OK"
            raise AssertionError(f"unexpected packet {p[:16]!r}")
    finally:
        s.close()


def flood(port, logins, threads=THREADS):
    """Every login of the list, `threads` at a time: [(errno, msg)]."""
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda a: try_login(port, *a), logins))


def random_project():
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=10))


# --- state snapshots ----------------------------------------------------

def redis_keys(redis):
    keys = set(redis.cli("--scan").split())
    assert keys, "no keys: the scan did not work"
    return keys


def dbsize(redis):
    return int(redis.cli("DBSIZE"))


def metering_keys(project):
    """Keys a running project's metering writes on its own schedule."""
    return {f"{PREFIX}usage:{project}", f"{PREFIX}export:pending",
            f"{PREFIX}export:queue"}


def assert_same_keys(before, after, project):
    changed = before ^ after
    assert changed <= metering_keys(project), sorted(changed)


# --- setup --------------------------------------------------------------

def make_project(controller, name, **opts):
    """A project with a database of its name and a password account `app`
    (created over the compute's admin port, whose sessions are not
    activity)."""
    doc = controller.create_project(name, **opts)
    c = mysql(doc["compute"]["port"], doc["admin_user"], doc["admin_password"])
    cur = c.cursor()
    cur.execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")
    cur.execute(f"CREATE USER '{APP_USER}'@'%' IDENTIFIED BY '{APP_PW}'")
    cur.execute(f"GRANT ALL ON `{name}`.* TO '{APP_USER}'@'%'")
    c.close()
    return doc


def assert_served(ngx, workers, project):
    assert ngx.alive()
    assert ngx.worker_pids() == workers, "a worker died"
    assert ngx.alerts() == []
    c = mysql(ngx.port, APP_USER, APP_PW, project)
    cur = c.cursor()
    cur.execute("SELECT DATABASE()")
    assert cur.fetchall() == ((project,),)
    c.close()




# --- the floods ---------------------------------------------------------

@pytest.mark.parametrize("transfer_log", [False, True], ids=["plain", "transfer-log"])
def test_unknown_projects_leave_no_state(controller_factory, pg, procs,
                                         run_dir, transfer_log):
    """1,000 handshakes naming projects that do not exist: ERR 1049 each,
    no Redis key, no project, no usage event, no ledger row; also with
    nginx sending every session's transfer line to the controller, as
    config/nginx.conf does (the unknown projects' lines included)."""
    opts, extra = {}, ""
    if transfer_log:
        sock = os.path.join(run_dir, "billing.sock")
        opts["syslog_listen"] = f"unix:{sock}"
        opts["syslog_allow_uids"] = "nobody"     # nginx's workers
        extra = billing_log(sock)
    ctl = controller_factory(pg_conninfo=pg.conninfo, meter_interval_s=1,
                             export_interval_ms=100, **opts).start()
    ngx = start_nginx(procs, run_dir, ctl, stream_extra=extra)
    make_project(ctl, "home")
    workers = ngx.worker_pids()
    assert len(workers) == 2

    # once each beforehand, so that global counters and histograms exist
    assert try_login(ngx.port, APP_USER, APP_PW, random_project())[0] == 1049
    assert_served(ngx, workers, "home")
    time.sleep(1.5)         # a metering tick: the project's own keys exist

    keys0, size0 = redis_keys(ctl.redis), dbsize(ctl.redis)
    projects0 = ctl.redis.cli("SMEMBERS", f"{PREFIX}projects").split()

    names = {random_project() for _ in range(FLOOD)}
    names.discard("home")
    results = flood(ngx.port, [(APP_USER, APP_PW, n) for n in names])

    codes = [code for code, _ in results]
    assert codes.count(1049) == len(names), \
        sorted(set(r for r in results if r[0] != 1049))[:5]
    assert all("Unknown database" in msg for _, msg in results)

    time.sleep(1.5)         # transfer lines, metering and export land
    keys1, size1 = redis_keys(ctl.redis), dbsize(ctl.redis)
    assert_same_keys(keys0, keys1, "home")
    assert size1 - size0 == len(keys1) - len(keys0)
    assert not [k for k in keys1 if any(n in k for n in names)]
    assert ctl.redis.cli("SMEMBERS", f"{PREFIX}projects").split() == projects0

    for n in random.sample(sorted(names), 5):
        st, _ = ctl.get(f"/api/v1/projects/{n}")
        assert st == 404
    ledger = {r[0] for r in pg.query(
        "SELECT DISTINCT project FROM usage_ledger")}
    assert ledger <= {"home"}, ledger & names

    assert_served(ngx, workers, "home")


def test_wrong_passwords_leave_no_state(controller, procs, run_dir):
    """1,000 handshakes with a wrong password for a running project: the
    compute's own ERR 1045 each, the same Redis keys, workers alive."""
    ngx = start_nginx(procs, run_dir, controller)
    make_project(controller, "target", idle_timeout_s=3600, freeze_after_s=0)
    workers = ngx.worker_pids()

    assert try_login(ngx.port, APP_USER, "wrong", "target")[0] == 1045
    assert_served(ngx, workers, "target")
    time.sleep(1.5)

    keys0 = redis_keys(controller.redis)
    state0 = controller.compute("target")

    logins = [(APP_USER, "wrong-%d" % i, "target") for i in range(FLOOD)]
    results = flood(ngx.port, logins)

    bad = [r for r in results if r[0] != 1045]
    assert bad == [], bad[:5]
    assert all(f"Access denied for user '{APP_USER}'" in m for _, m in results)

    keys1 = redis_keys(controller.redis)
    assert_same_keys(keys0, keys1, "target")
    state1 = controller.compute("target")
    assert state1["state"] == "running"
    assert state1["pid"] == state0["pid"]

    assert_served(ngx, workers, "target")


# --- a wake alone is not activity ---------------------------------------

IDLE_S = 6
SLACK_S = 5     # scheduler tick, plugin report, drain wait, a loaded host


def wait_suspended(controller, project, deadline):
    while time.time() < deadline:
        c = controller.compute(project)
        if c["state"] in ("suspending", "suspended"):
            return c
        time.sleep(0.2)
    return controller.compute(project)


def test_wrong_password_flood_is_not_activity(controller_factory, procs,
                                              run_dir):
    """While wrong passwords hammer a running compute, its last activity
    stays put and it suspends on schedule, idle_timeout after it entered
    running; woken again by the flood, it suspends again after it."""
    ctl = controller_factory(report_interval_s=1).start()
    ngx = start_nginx(procs, run_dir, ctl)
    make_project(ctl, "idle", idle_timeout_s=IDLE_S, freeze_after_s=0)
    time.sleep(1.5)     # the plugin's reports are fresh: no probe guesses
    c0 = ctl.compute("idle")
    assert c0["state"] == "running"
    since = max(int(c0["last_activity_ms"]), int(c0["state_since_ms"]))

    stop = threading.Event()
    codes = []

    def hammer():
        i = 0
        while not stop.is_set():
            i += 1
            codes.append(try_login(ngx.port, APP_USER, f"bad{i}", "idle")[0])

    threads = [threading.Thread(target=hammer) for _ in range(10)]
    for t in threads:
        t.start()
    try:
        seen = []
        deadline = since / 1000 + IDLE_S + SLACK_S
        while time.time() < deadline:
            c = ctl.compute("idle")
            if c["state"] != "running":
                break
            seen.append((round(time.time() - since / 1000, 2),
                         int(c["last_activity_ms"])))
            time.sleep(0.25)
        assert len(codes) > 50, "the flood did not run"
        moved = [s for s in seen if s[1] != int(c0["last_activity_ms"])]
        assert moved == [], \
            "the wrong-password flood advanced last_activity_ms " \
            "(s after idle, ms): %s" % moved[:5]
        c = wait_suspended(ctl, "idle", deadline)
        assert c["state"] in ("suspending", "suspended"), \
            f"still {c['state']} {time.time() - since / 1000:.1f} s after " \
            f"it became idle (idle_timeout_s={IDLE_S}), under the flood"
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)

    # ERR 1045 from the compute, or 1105 for a client that met it stopping
    assert set(codes) <= {1045, 1105}, set(codes)
    assert codes.count(1045) > len(codes) // 2

    # the flood's last clients may have woken it: then it goes idle again
    c = ctl.compute("idle")
    if c["state"] in ("running", "resuming"):
        again = time.time() + IDLE_S + SLACK_S + 15
        c = wait_suspended(ctl, "idle", again)
    end = time.time() + SLACK_S
    while c["state"] == "suspending" and time.time() < end:
        time.sleep(0.2)
        c = ctl.compute("idle")
    assert c["state"] == "suspended", c
    assert ngx.alive() and ngx.alerts() == []


# --- a full zone --------------------------------------------------------

def test_full_zone_degrades_once_and_recovers(controller, procs, run_dir):
    """Sessions beyond what a tiny wake_cache_zone can map still work, the
    zone being full is logged once, their KILL ids are just not rewritten,
    and every map entry is freed when its session ends."""
    import pymysql

    # no wake cache: its entries coming and going would free pages, and the
    # zone would be full, then not, then full again (each stretch logged)
    ngx = start_nginx(procs, run_dir, controller, cache_ttl="0",
                      stream_extra="wake_cache_zone tiny:32k;")
    make_project(controller, "full")
    full_log = 'zone "tiny" is full'

    conns = []
    try:
        while full_log not in ngx.errors():
            assert len(conns) < 120, "a 32k zone mapped 120 sessions"
            conns.append(mysql(ngx.port, APP_USER, APP_PW, "full"))
            time.sleep(0.01)    # the greeting is mapped after the connect
        for _ in range(20):     # more sessions on a full zone
            conns.append(mysql(ngx.port, APP_USER, APP_PW, "full"))
        time.sleep(0.3)
        assert ngx.errors().count(full_log) == 1
        assert ngx.alerts() == []

        # an unmapped session works; a KILL of its id passes unchanged
        last = conns[-1]
        cur = last.cursor()
        cur.execute("SELECT 1")
        assert cur.fetchall() == ((1,),)
        killer = mysql(ngx.port, APP_USER, APP_PW, "full")
        with pytest.raises(pymysql.err.OperationalError) as e:
            killer.cursor().execute(f"KILL QUERY {last.server_thread_id[0]}")
        assert e.value.args[0] == 1094          # Unknown thread id
        killer.close()
    finally:
        for c in conns:
            c.close()

    # the ended sessions gave their entries back: KILL is rewritten again
    time.sleep(0.5)
    victim = mysql(ngx.port, APP_USER, APP_PW, "full")
    # (the mariadb CLI: its -e statement is its first command, while PyMySQL
    # >= 1.1 sends SET NAMES first, and only a first command is rewritten)
    r = subprocess.run(["mariadb", "-h127.0.0.1", f"-P{ngx.port}", f"-u{APP_USER}",
                        f"-p{APP_PW}", "--skip-ssl", "full", "-e",
                        f"KILL {victim.server_thread_id[0]}"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    with pytest.raises(pymysql.err.OperationalError):
        victim.cursor().execute("SELECT 1")
    assert 'zone "tiny" maps connection ids again' in ngx.errors()
    assert ngx.errors().count(full_log) == 1
    assert ngx.alive() and ngx.alerts() == []
