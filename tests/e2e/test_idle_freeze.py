"""Idle sessions and frozen computes (issue 13): a compute whose client
sessions are all quiet is frozen with them open, and the proxy thaws it on
the next byte, on the same session with its state intact.  Real nginx +
module, controller, redis and mariadbd with the activity plugin; freeze
times of 1 s so that each test takes seconds."""
import os
import re
import socket
import ssl
import subprocess
import threading
import time

import pymysql
import pytest

from conftest import PLUGIN_SO, mysql, wait_for
from nginx_fixture import MODULE_SO, start_nginx

pytestmark = pytest.mark.skipif(not (os.path.exists(PLUGIN_SO) and os.path.exists(MODULE_SO)),
                                reason="plugin or module not built")

# the drain waits out the proxy's cache TTL (1 s) before it freezes
CTL = dict(drain_wait_ms=1200, report_interval_s=1, scheduler_interval_ms=100)


def start_all(controller_factory, procs, run_dir, name, idle_timeout_s=120, **ngx):
    ctl = controller_factory(**CTL).start()
    proxy = start_nginx(procs, run_dir, ctl, cache_ttl="1s", **ngx)
    doc = ctl.create_project(name, idle_timeout_s=idle_timeout_s, freeze_after_s=1)
    return ctl, proxy, doc


def frozen(ctl, project):
    c = ctl.compute(project)
    return c if c["state"] == "suspended" and c.get("mode") == "frozen" else None


def wait_frozen(ctl, project, timeout=30):
    try:
        return wait_for(lambda: frozen(ctl, project), timeout, f"{project} frozen")
    except AssertionError:
        raise AssertionError(f"{project} not frozen: {ctl.compute(project)}\n{ctl.log_tail()}")


def metric(ctl, name):
    st, text = ctl.request("GET", "/metrics")
    assert st == 200, text
    m = re.search(rf"^{name} (\d+)", text, re.M)
    return int(m.group(1)) if m else 0


def thaws(ctl):
    return metric(ctl, "smdb_compute_thaws_total")


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def usage(ctl, project):
    now = time.time()
    st, doc = ctl.get(f"/api/v1/projects/{project}/usage?from={rfc3339(now - 3600)}"
                      f"&to={rfc3339(now + 3600)}")
    assert st == 200, doc
    return doc


def one(conn, q, args=None):
    cur = conn.cursor()
    cur.execute(q, args)
    return cur.fetchone()


class Cli:
    """The mariadb command-line client with queries written to its stdin: a
    session that stays open between queries, as a pool's would."""

    def __init__(self, port, doc, db):
        self.p = subprocess.Popen(
            ["mariadb", "--skip-ssl", "-h127.0.0.1", f"-P{port}", f"-u{doc['admin_user']}",
             f"-p{doc['admin_password']}", "--batch", "--skip-column-names", "--unbuffered",
             db], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, bufsize=1)

    def query(self, q, timeout=30):
        """q's output, one string (rows joined by newlines, "" for none)."""
        lines = []

        def read():
            for line in self.p.stdout:
                if line.rstrip("\n") == "--end--":
                    lines.append(None)
                    return
                lines.append(line.rstrip("\n"))

        t = threading.Thread(target=read)
        self.p.stdin.write(q.rstrip(";") + "; SELECT '--end--';\n")
        self.p.stdin.flush()
        t.start()
        t.join(timeout)
        assert lines and lines[-1] is None, f"no answer to {q!r}: {lines}"
        return "\n".join(lines[:-1])

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=10)


def test_pooled_sessions_freeze_and_thaw_with_state(controller_factory, procs, run_dir):
    ctl, ngx, doc = start_all(controller_factory, procs, run_dir, "pool")
    py = mysql(ngx.port, doc["admin_user"], doc["admin_password"], "pool", read_timeout=30)
    cid = one(py, "SELECT CONNECTION_ID()")[0]
    cur = py.cursor()
    cur.execute("SET @v = 42")
    cur.execute("CREATE TEMPORARY TABLE tmp (a INT)")
    cur.execute("INSERT INTO tmp VALUES (1), (2), (3)")
    cur.execute("PREPARE st FROM 'SELECT ? + 1'")
    cli = Cli(ngx.port, doc, "pool")
    cli_id = cli.query("SELECT CONNECTION_ID()")
    cli.query("SET @w = 'kept'")
    cli.query("CREATE TEMPORARY TABLE tmp2 (b INT)")
    cli.query("INSERT INTO tmp2 VALUES (7)")
    cli.query("PREPARE st2 FROM 'SELECT ? * 2'")
    cli.query("SELECT 1")

    wait_frozen(ctl, "pool")
    thawed_before = thaws(ctl)
    # frozen is billed as no compute: no open compute interval, no seconds added
    u1 = usage(ctl, "pool")
    assert not [o for o in u1["open"] if o["kind"] == "compute"], u1
    time.sleep(2)
    assert frozen(ctl, "pool"), "the compute woke by itself"
    u2 = usage(ctl, "pool")
    assert u2["totals"]["compute_seconds"] == u1["totals"]["compute_seconds"], (u1, u2)

    # the next query on each session: same thread, same state
    t0 = time.monotonic()
    assert one(py, "SELECT CONNECTION_ID()")[0] == cid
    first_ms = (time.monotonic() - t0) * 1000
    assert one(py, "SELECT @v")[0] == 42
    assert one(py, "SELECT COUNT(*), SUM(a) FROM tmp") == (3, 6)
    cur.execute("EXECUTE st USING @v")
    assert cur.fetchone()[0] == 43
    assert cli.query("SELECT CONNECTION_ID()") == cli_id
    assert cli.query("SELECT @w") == "kept"
    assert cli.query("SELECT b FROM tmp2") == "7"
    cli.query("SET @x = 21")
    assert cli.query("EXECUTE st2 USING @x") == "42"
    assert ctl.compute("pool")["state"] == "running"
    assert thaws(ctl) == thawed_before + 1
    print(f"first query on the frozen session: {first_ms:.1f} ms")

    # and it freezes again once quiet
    wait_frozen(ctl, "pool")
    assert one(py, "SELECT @v")[0] == 42
    cli.close()
    py.close()
    assert not ngx.alerts()


def test_fifty_sessions_one_thaw(controller_factory, procs, run_dir):
    ctl, ngx, doc = start_all(controller_factory, procs, run_dir, "fifty")
    conns = [mysql(ngx.port, doc["admin_user"], doc["admin_password"], "fifty",
                   read_timeout=60) for _ in range(50)]
    ids = [one(c, "SELECT CONNECTION_ID()")[0] for c in conns]
    assert len(set(ids)) == 50
    wait_frozen(ctl, "fifty")
    before = thaws(ctl)
    wakes_before = metric(ctl, "smdb_wakes_total")
    go = threading.Barrier(50)
    got, errors = {}, []

    def run(i):
        try:
            go.wait(30)
            got[i] = one(conns[i], "SELECT CONNECTION_ID()")[0]
        except Exception as e:  # noqa: BLE001 - every failure is a finding
            errors.append(repr(e))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert errors == [], errors[:5]
    assert [got[i] for i in range(50)] == ids
    assert thaws(ctl) == before + 1
    # held sessions joined one wake per worker; later ones found the cache
    held = len(re.findall(r"its compute may be frozen",
                          open(os.path.join(run_dir, "nginx-error.log")).read()))
    assert held >= 1
    assert metric(ctl, "smdb_wakes_total") - wakes_before <= 2, "wakes not coalesced"
    for c in conns:
        c.close()
    assert not ngx.alerts()


def test_open_transaction_and_running_statement_keep_it_awake(controller_factory, procs,
                                                               run_dir):
    ctl, ngx, doc = start_all(controller_factory, procs, run_dir, "busy")
    a = mysql(ngx.port, doc["admin_user"], doc["admin_password"], "busy", read_timeout=30)
    cur = a.cursor()
    cur.execute("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB")
    cur.execute("BEGIN")
    cur.execute("INSERT INTO t VALUES (1)")
    # well past the freeze time (1 s) and a drain (1.2 s)
    end = time.time() + 5
    while time.time() < end:
        assert ctl.compute("busy")["state"] == "running", "frozen with a transaction open"
        time.sleep(0.1)
    cur.execute("COMMIT")
    wait_frozen(ctl, "busy")        # the control: without it, it does freeze

    b = mysql(ngx.port, doc["admin_user"], doc["admin_password"], "busy", read_timeout=30)
    out = []
    t = threading.Thread(target=lambda: out.append(one(b, "SELECT SLEEP(5)")))
    t.start()
    wait_for(lambda: ctl.compute("busy")["state"] == "running", 15, "running")
    while t.is_alive():
        assert ctl.compute("busy")["state"] in ("running", "resuming"), \
            "frozen with a statement running"
        time.sleep(0.1)
    t.join()
    assert out == [(0,)]
    wait_frozen(ctl, "busy")
    assert one(a, "SELECT COUNT(*) FROM t")[0] == 1
    a.close()
    b.close()


def processlist_users(conn):
    cur = conn.cursor()
    cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s",
                ("admin",))
    return sorted(r[0] for r in cur.fetchall())


def test_session_closed_while_frozen_is_cleaned_up(controller_factory, procs, run_dir):
    ctl, ngx, doc = start_all(controller_factory, procs, run_dir, "close")
    keep, quits, drops = (mysql(ngx.port, doc["admin_user"], doc["admin_password"], "close",
                                read_timeout=30) for _ in range(3))
    keep_id = one(keep, "SELECT CONNECTION_ID()")[0]
    for c in (quits, drops):
        one(c, "SELECT 1")
    wait_frozen(ctl, "close")
    quits.close()                   # COM_QUIT: passes without waking it
    drops._sock.shutdown(socket.SHUT_RDWR)  # a bare close, no COM_QUIT
    drops._sock.close()
    time.sleep(1.5)
    assert frozen(ctl, "close"), "a closing session woke the compute"
    # another session's query thaws it; the closed ones end on the compute
    assert one(keep, "SELECT CONNECTION_ID()")[0] == keep_id
    try:
        wait_for(lambda: processlist_users(keep) == [keep_id], 10, "closed sessions gone")
    except AssertionError:
        raise AssertionError(f"sessions left: {processlist_users(keep)}, kept {keep_id}")

    def plugin_count():
        return int(one(keep, "SHOW GLOBAL STATUS LIKE 'Wake_activity_connections'")[1])
    wait_for(lambda: plugin_count() == 1, 10, "the plugin's count of sessions")
    keep.close()


def test_frozen_with_a_session_is_never_stopped(controller_factory, procs, run_dir):
    """At the idle timeout a frozen compute with sessions is thawed, looked
    at and frozen again; stopped once the last session is gone."""
    ctl, ngx, doc = start_all(controller_factory, procs, run_dir, "deep", idle_timeout_s=3)
    s = mysql(ngx.port, doc["admin_user"], doc["admin_password"], "deep", read_timeout=30)
    sid = one(s, "SELECT CONNECTION_ID()")[0]
    one(s, "SET @keep = 5")
    wait_frozen(ctl, "deep")
    wait_for(lambda: "frozen with client sessions open: not stopped" in ctl.log_tail(10**6),
             20, "the deeper tier looked and kept it")
    assert frozen(ctl, "deep")
    assert one(s, "SELECT CONNECTION_ID(), @keep") == (sid, 5)
    s.close()
    wait_for(lambda: ctl.compute("deep").get("mode") == "stopped", 30, "stopped")


def test_tls_session_and_wake_failure(controller_factory, procs, run_dir):
    """A TLS session (the default of MariaDB 11.4+ clients) is thawed the
    same way; when the wake fails the client gets a MySQL ERR and the
    session is closed, instead of a hang."""
    from test_clients import server_cert
    ca, cert, key = server_cert(run_dir)
    ctl, ngx, doc = start_all(controller_factory, procs, run_dir, "tls", ssl=True,
                              retries=0, timeout="1s",
                              extra=f"        ssl_certificate {cert};\n"
                                    f"        ssl_certificate_key {key};\n")
    tls = {"ssl_ca": ca, "ssl_verify_cert": True}
    a, b = (mysql(ngx.port, doc["admin_user"], doc["admin_password"], "tls",
                  read_timeout=30, ssl=tls) for _ in range(2))
    assert isinstance(a._sock, ssl.SSLSocket)      # TLS to the proxy, verified
    aid = one(a, "SELECT CONNECTION_ID()")[0]
    one(a, "SET @t = 'tls'")
    one(b, "SELECT 1")
    wait_frozen(ctl, "tls")
    assert one(a, "SELECT CONNECTION_ID(), @t") == (aid, "tls")

    wait_frozen(ctl, "tls")
    ctl.stop()                      # the wake cannot be answered now
    t0 = time.time()
    with pytest.raises(pymysql.err.OperationalError) as e:
        one(b, "SELECT 1")
    assert e.value.args[0] == 1105, e.value.args
    assert "not available after its idle freeze" in e.value.args[1]
    assert time.time() - t0 < 15
    # closed, not left hanging (read without writing: data sent into a TLS
    # shutdown would be the client's error, not the proxy's)
    b._sock.settimeout(10)
    try:
        assert b._sock.recv(1) == b""
    except ssl.SSLError:
        pass
    assert not ngx.alerts()
