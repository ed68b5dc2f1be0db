"""End-to-end tests of ngx_stream_wake_module: real nginx, real controller,
real Redis, real mariadbd computes, real clients (mariadb CLI, PyMySQL,
libmariadb)."""
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import pymysql
import pytest

from conftest import mysql, wait_for
from nginx_fixture import (nginx_version, parse_err, raw_connect, read_packet,
                           start_nginx)

MARIADB = "/usr/bin/mariadb"
PROXY_ID_BASE = 0x80000000


# helpers

def make_project(controller, name, ed25519=False):
    """A project whose compute has a database named like the project (what
    database routing selects; the controller creates it), a table, and
    optionally an ed25519 account."""
    doc = controller.create_project(name)
    c = mysql(doc["compute"]["port"], doc["admin_user"], doc["admin_password"])
    cur = c.cursor()
    cur.execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")
    cur.execute(f"CREATE TABLE `{name}`.t (id INT PRIMARY KEY, v VARCHAR(20))")
    cur.execute(f"INSERT INTO `{name}`.t VALUES (1, 'one'), (2, 'two')")
    if ed25519:
        # computes pre-load auth_ed25519: tenants cannot INSTALL SONAME
        cur.execute("CREATE USER 'edu'@'%' IDENTIFIED VIA ed25519 "
                    "USING PASSWORD('ed-secret')")
        cur.execute(f"GRANT ALL ON `{name}`.* TO 'edu'@'%'")
    c.close()
    return doc


def suspend(controller, doc, mode):
    st, comp = controller.post(f"/api/v1/compute/{doc['compute_id']}/suspend",
                               {"mode": mode})
    assert st == 200, comp
    assert comp["state"] == "suspended", comp


def metric(controller, name):
    st, text = controller.get("/metrics")
    assert st == 200, text
    m = re.search(r"^%s (\d+)" % re.escape(name), text, re.M)
    return int(m.group(1))


def starts(controller):
    return metric(controller, "smdb_compute_starts_total")


def no_tls(extra=()):
    """The mariadb CLI asks for TLS by default since MariaDB 11.4 (Debian 13
    ships 11.8) and refuses a server that does not offer it; a proxy without
    wake_ssl is reached with --skip-ssl, which 10.11's CLI accepts too."""
    return [] if any(a.startswith("--ssl") for a in extra) else ["--skip-ssl"]


def cli(port, user, password, database=None, sql="SELECT 1", extra=(),
        timeout=60):
    argv = [MARIADB, "-h127.0.0.1", f"-P{port}", f"-u{user}",
            f"-p{password}", "--batch", "--skip-column-names",
            *no_tls(extra), *extra]
    if database:
        argv.append(database)
    argv += ["-e", sql]
    return subprocess.run(argv, capture_output=True, text=True,
                          timeout=timeout)


def query(conn, sql):
    cur = conn.cursor()
    cur.execute(sql)
    return cur.fetchall()


def last_access(ngx, n):
    return ngx.wait_access(n)[n - 1]


def assert_clean(ngx, workers):
    assert ngx.alive()
    assert ngx.alerts() == []
    assert ngx.worker_pids() == workers, "a worker died"


@pytest.fixture
def ngx(procs, run_dir, controller):
    return start_nginx(procs, run_dir, controller)


# cold start, cache, thaw

def test_stopped_running_frozen(controller, procs, run_dir):
    ngx = start_nginx(procs, run_dir, controller, cache_ttl="2s")
    doc = make_project(controller, "cold1")
    user, pw = doc["admin_user"], doc["admin_password"]
    suspend(controller, doc, "stop")
    before = starts(controller)

    # stopped: the connect starts the compute
    t = time.time()
    c = mysql(ngx.port, user, pw, "cold1")
    assert query(c, "SELECT v FROM t ORDER BY id") == (("one",), ("two",))
    c.close()
    assert time.time() - t < 20
    assert controller.compute("cold1")["state"] == "running"
    assert starts(controller) == before + 1
    line = last_access(ngx, 1)
    assert line["project"] == "cold1"
    assert line["cold"] == "started"
    assert line["upstream"] == f"127.0.0.1:{doc['compute']['port']}"
    assert int(line["wake_ms"]) >= 0

    # running: answered from the cache
    c = mysql(ngx.port, user, pw, "cold1")
    assert query(c, "SELECT COUNT(*) FROM t") == ((2,),)
    c.close()
    line = last_access(ngx, 2)
    assert line["cold"] == "warm"
    assert line["wake_ms"] == "0"

    # frozen: thawed (after the cache entry expired: a suspend by the API
    # does not wait for the proxy cache, the scheduler does)
    suspend(controller, doc, "freeze")
    time.sleep(2.3)
    c = mysql(ngx.port, user, pw, "cold1")
    assert query(c, "SELECT 1") == ((1,),)
    c.close()
    assert last_access(ngx, 3)["cold"] == "thawed"
    assert starts(controller) == before + 1
    assert ngx.alerts() == []


def test_stale_cache_connect_failure(controller, procs, run_dir):
    """A cached address whose compute was stopped behind the proxy's back:
    the client gets a clear ERR (not a bare EOF), the entry is dropped and
    the project is woken again, so the retry works."""
    ngx = start_nginx(procs, run_dir, controller, cache_ttl="60s")
    doc = make_project(controller, "stale1")
    user, pw = doc["admin_user"], doc["admin_password"]
    mysql(ngx.port, user, pw, "stale1").close()

    suspend(controller, doc, "stop")
    with pytest.raises(pymysql.err.OperationalError) as e:
        mysql(ngx.port, user, pw, "stale1")
    assert e.value.args[0] == 1105
    assert "unreachable" in e.value.args[1]

    end = time.time() + 20
    while True:
        try:
            c = mysql(ngx.port, user, pw, "stale1")
            break
        except pymysql.err.OperationalError:
            if time.time() > end:
                raise
            time.sleep(0.1)
    assert query(c, "SELECT COUNT(*) FROM t") == ((2,),)
    c.close()
    assert ngx.alerts() == []


def test_stale_cache_frozen_compute(controller, procs, run_dir):
    """A cached address of a frozen compute: the kernel accepts the TCP
    connection but the server does not greet.  After wake_greeting_timeout
    the module wakes the project again, the controller thaws it, and the
    waiting session goes on: the client only sees a delay."""
    ngx = start_nginx(procs, run_dir, controller, cache_ttl="60s",
                      greeting_timeout="1s")
    doc = make_project(controller, "stale2")
    user, pw = doc["admin_user"], doc["admin_password"]
    mysql(ngx.port, user, pw, "stale2").close()

    suspend(controller, doc, "freeze")
    t = time.time()
    c = mysql(ngx.port, user, pw, "stale2")
    assert query(c, "SELECT COUNT(*) FROM t") == ((2,),)
    c.close()
    assert 0.9 < time.time() - t < 10
    # the thawed server greets the waiting session while the controller
    # still checks that it is ready: "running" may follow a moment later
    wait_for(lambda: controller.compute("stale2")["state"] == "running", timeout=10,
             what="stale2 running")
    assert "did not greet, waking it again" in ngx.errors()
    assert ngx.alerts() == []


def test_compute_hung(controller, procs, run_dir):
    """A compute that stays silent even after a new wake (stopped behind the
    controller's back): ERR 1105 instead of a hang until proxy_timeout."""
    ngx = start_nginx(procs, run_dir, controller, greeting_timeout="1s",
                      timeout="2s")
    doc = make_project(controller, "hung1")
    user, pw = doc["admin_user"], doc["admin_password"]
    pid = controller.compute("hung1")["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        t = time.time()
        with pytest.raises(pymysql.err.OperationalError) as e:
            mysql(ngx.port, user, pw, "hung1")
        assert 2.5 < time.time() - t < 10
        assert e.value.args[0] == 1105
        assert "no greeting" in e.value.args[1]
    finally:
        os.kill(pid, signal.SIGCONT)
    c = mysql(ngx.port, user, pw, "hung1")
    assert query(c, "SELECT 1") == ((1,),)
    c.close()
    assert ngx.alerts() == []


# cancellation

def test_kill_query_by_handshake_id(controller, ngx):
    doc = make_project(controller, "kill1")
    other = make_project(controller, "kill2")
    user, pw = doc["admin_user"], doc["admin_password"]

    victim = mysql(ngx.port, user, pw, "kill1")
    bystander = mysql(ngx.port, user, pw, "kill1")
    idle = mysql(ngx.port, user, pw, "kill1")
    vid = victim.server_thread_id[0]
    assert vid >= PROXY_ID_BASE
    real = query(victim, "SELECT CONNECTION_ID()")[0][0]
    assert real < PROXY_ID_BASE and real != vid

    results = {}

    def run(name, conn, sql):
        t = time.time()
        try:
            results[name] = (query(conn, sql), time.time() - t)
        except pymysql.err.MySQLError as e:
            results[name] = (e.args, time.time() - t)

    tv = threading.Thread(target=run, args=("victim", victim,
                                            "SELECT SLEEP(30)"))
    tb = threading.Thread(target=run, args=("bystander", bystander,
                                            "SELECT SLEEP(3)"))
    tv.start()
    tb.start()
    time.sleep(1.0)

    # The KILLs go through the mariadb CLI: with -e the KILL is its first
    # command, the only one the proxy inspects (PyMySQL >= 1.1 always sends
    # SET NAMES first).

    # the same id on another project's session kills nothing there
    r = cli(ngx.port, other["admin_user"], other["admin_password"], "kill2",
            f"KILL QUERY {vid}")
    assert r.returncode != 0 and "1094" in r.stderr, r.stderr  # Unknown thread

    # what the mariadb CLI sends on Ctrl-C: a new connection, KILL QUERY id
    r = cli(ngx.port, user, pw, "kill1", f"KILL QUERY {vid}")
    assert r.returncode == 0, r.stderr

    tv.join(15)
    tb.join(15)
    assert not tv.is_alive()
    rows, took = results["victim"]
    assert took < 10
    assert rows in (((1,),), (1317, "Query execution was interrupted"))

    # the bystander's sleep ran its full course, the idle session is fine
    rows, took = results["bystander"]
    assert rows == ((0,),) and took >= 2.9
    assert query(idle, "SELECT 7") == ((7,),)
    assert query(victim, "SELECT 8") == ((8,),)

    # only the first command is inspected
    late = mysql(ngx.port, user, pw, "kill1")
    query(late, "SELECT 1")
    with pytest.raises(pymysql.err.OperationalError) as e:
        query(late, f"KILL QUERY {idle.server_thread_id[0]}")
    assert e.value.args[0] == 1094
    assert query(idle, "SELECT 9") == ((9,),)
    for c in (victim, bystander, idle, late):
        c.close()
    assert ngx.alerts() == []


def test_mariadb_cli_ctrl_c(controller, ngx):
    """The real client's Ctrl-C: it opens a connection WITHOUT a database and
    sends KILL QUERY <id from the handshake>; database routing finds the
    project through the client's other session."""
    doc = make_project(controller, "ctrlc1")
    user, pw = doc["admin_user"], doc["admin_password"]
    p = subprocess.Popen([MARIADB, "-h127.0.0.1", f"-P{ngx.port}", f"-u{user}",
                          f"-p{pw}", *no_tls(), "ctrlc1",
                          "-e", "SELECT SLEEP(30)"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    admin = mysql(doc["compute"]["port"], user, pw)
    end = time.time() + 10
    while time.time() < end:
        rows = query(admin, "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
                            " WHERE INFO = 'SELECT SLEEP(30)'")
        if rows[0][0]:
            break
        time.sleep(0.05)
    t = time.time()
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=15)
    assert time.time() - t < 10
    assert "Query execution was interrupted" in out or "query killed" in out, out
    assert "cannot connect" not in out, out
    admin.close()
    assert ngx.alerts() == []


# authentication and clients

def test_native_ed25519_and_wrong_password(controller, ngx):
    doc = make_project(controller, "auth1", ed25519=True)
    user, pw = doc["admin_user"], doc["admin_password"]

    r = cli(ngx.port, user, pw, "auth1", "SELECT CURRENT_USER(), DATABASE()")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [f"{user}@%", "auth1"]

    r = cli(ngx.port, "edu", "ed-secret", "auth1",
            "SELECT CURRENT_USER(), COUNT(*) FROM t")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["edu@%", "2"]

    r = cli(ngx.port, "edu", "wrong", "auth1")
    assert r.returncode != 0
    assert "ERROR 1045 (28000)" in r.stderr and "Access denied" in r.stderr

    with pytest.raises(pymysql.err.OperationalError) as e:
        mysql(ngx.port, user, "wrong", "auth1")
    assert e.value.args[0] == 1045
    assert "Access denied for user" in e.value.args[1]
    assert ngx.alerts() == []


def test_compress(controller, ngx):
    doc = make_project(controller, "zip1")
    r = cli(ngx.port, doc["admin_user"], doc["admin_password"], "zip1",
            "SELECT LENGTH(REPEAT('x', 200000)); SELECT REPEAT('y', 100000);"
            "SELECT v FROM t ORDER BY id",
            extra=["--compress"])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[0] == "200000"
    assert lines[1] == "y" * 100000
    assert lines[2:4] == ["one", "two"]


def test_user_prefix_routing(controller, procs, run_dir):
    ngx = start_nginx(procs, run_dir, controller, route="database user")
    doc = make_project(controller, "pref1")
    user, pw = doc["admin_user"], doc["admin_password"]

    r = cli(ngx.port, f"pref1.{user}", pw, None,
            "SELECT CURRENT_USER(), IFNULL(DATABASE(), 'none')")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [f"{user}@%", "none"]

    c = mysql(ngx.port, f"pref1.{user}", pw, "pref1")
    assert query(c, "SELECT COUNT(*) FROM t") == ((2,),)
    c.close()
    line = ngx.wait_access(2)[-1]
    assert line["project"] == "pref1" and line["user"] == user


def test_user_prefix_only(controller, procs, run_dir):
    """With `wake_route user`, the database is just a database."""
    ngx = start_nginx(procs, run_dir, controller, route="user")
    doc = make_project(controller, "pref2")
    user, pw = doc["admin_user"], doc["admin_password"]
    c = mysql(ngx.port, f"pref2.{user}", pw, "mysql")
    assert query(c, "SELECT DATABASE()") == (("mysql",),)
    c.close()
    with pytest.raises(pymysql.err.OperationalError) as e:
        mysql(ngx.port, user, pw, "pref2")
    assert e.value.args[0] == 1046


def test_strip_database(controller, procs, run_dir):
    ngx = start_nginx(procs, run_dir, controller, strip_database=True)
    doc = controller.create_project("strip1")
    c = mysql(ngx.port, doc["admin_user"], doc["admin_password"], "strip1")
    assert query(c, "SELECT IFNULL(DATABASE(), 'none')") == (("none",),)
    c.close()


C_CLIENT = r"""
#include <stdio.h>
#include <stdlib.h>
#include <mysql.h>

int main(int argc, char **argv)
{
    MYSQL      *m = mysql_init(NULL);
    MYSQL_RES  *res;
    MYSQL_ROW   row;

    if (!mysql_real_connect(m, "127.0.0.1", argv[2], argv[3], argv[4],
                            atoi(argv[1]), NULL, 0)) {
        printf("ERR %u %s\n", mysql_errno(m), mysql_error(m));
        return 1;
    }
    if (mysql_query(m, "SELECT CONCAT(COUNT(*), ':', DATABASE()) FROM t")
        || (res = mysql_store_result(m)) == NULL
        || (row = mysql_fetch_row(res)) == NULL) {
        printf("ERR %u %s\n", mysql_errno(m), mysql_error(m));
        return 1;
    }
    printf("OK %s %lu\n", row[0], mysql_thread_id(m));
    mysql_free_result(res);
    mysql_close(m);
    return 0;
}
"""


def test_pymysql_and_c_client(controller, ngx, run_dir):
    doc = make_project(controller, "clients1")
    user, pw = doc["admin_user"], doc["admin_password"]

    c = mysql(ngx.port, user, pw, "clients1")
    assert query(c, "SELECT v FROM t WHERE id = 2") == (("two",),)
    assert c.server_thread_id[0] >= PROXY_ID_BASE
    assert c.get_server_info().startswith("5.5.5-10.11")
    c.close()

    src = os.path.join(run_dir, "cclient.c")
    exe = os.path.join(run_dir, "cclient")
    with open(src, "w") as f:
        f.write(C_CLIENT)
    flags = subprocess.run(["mariadb_config", "--cflags", "--libs"],
                           capture_output=True, text=True,
                           check=True).stdout.split()
    subprocess.run(["gcc", "-o", exe, src, *flags], check=True)
    r = subprocess.run([exe, str(ngx.port), user, pw, "clients1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    ok, value, tid = r.stdout.split()
    assert ok == "OK" and value == "2:clients1"
    assert int(tid) >= PROXY_ID_BASE


def test_proxy_protocol_client_address(controller, ngx):
    doc = make_project(controller, "pp1")
    c = mysql(ngx.port, doc["admin_user"], doc["admin_password"], "pp1")
    local_port = c._sock.getsockname()[1]
    host = query(c, "SELECT HOST FROM information_schema.PROCESSLIST "
                    "WHERE ID = CONNECTION_ID()")[0][0]
    c.close()
    # the compute sees the client's own address, not nginx's
    assert host == f"127.0.0.1:{local_port}"

    # and still accepts plain connections from 127.0.0.1 (the controller)
    c = mysql(doc["compute"]["port"], doc["admin_user"], doc["admin_password"])
    assert query(c, "SELECT 1") == ((1,),)
    c.close()


# TLS on the client leg

@pytest.fixture
def tls_cert(run_dir):
    cert = os.path.join(run_dir, "cert.pem")
    key = os.path.join(run_dir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=*.wake.test"],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture
def wake_test_names(monkeypatch):
    """*.wake.test resolves to 127.0.0.1 in this process (for SNI)."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kw):
        if isinstance(host, str) and host.endswith(".wake.test"):
            host = "127.0.0.1"
        return real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_tls_clients(controller, procs, run_dir, tls_cert, wake_test_names):
    cert, key = tls_cert
    ngx = start_nginx(procs, run_dir, controller, ssl=True,
                      route="sni database user",
                      extra=f"        ssl_certificate {cert};\n"
                            f"        ssl_certificate_key {key};\n"
                            "        ssl_protocols TLSv1.2 TLSv1.3;\n")
    doc = make_project(controller, "tls1", ed25519=True)
    user, pw = doc["admin_user"], doc["admin_password"]

    # the mariadb CLI over TLS: native, then ed25519 with compression
    r = cli(ngx.port, user, pw, "tls1", "status", extra=["--ssl"])
    assert r.returncode == 0, r.stderr
    assert re.search(r"SSL:\s+Cipher in use is \S+", r.stdout), r.stdout
    r = cli(ngx.port, "edu", "ed-secret", "tls1",
            "SELECT COUNT(*), LENGTH(REPEAT('x', 100000)) FROM t",
            extra=["--ssl", "--compress"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["2", "100000"]
    r = cli(ngx.port, "edu", "wrong", "tls1", extra=["--ssl"])
    assert "ERROR 1045 (28000)" in r.stderr

    # PyMySQL over TLS, routed by the server name alone (no database)
    c = pymysql.connect(host="tls1.wake.test", port=ngx.port, user=user,
                        password=pw, ssl={"tls": True}, ssl_verify_cert=False,
                        ssl_verify_identity=False, connect_timeout=30)
    assert c._sock.version().startswith("TLS")
    assert query(c, "SELECT COUNT(*) FROM tls1.t") == ((2,),)
    c.close()
    line = ngx.wait_access(4)[-1]
    assert line["project"] == "tls1"

    # KILL by handshake id over TLS
    victim = pymysql.connect(host="127.0.0.1", port=ngx.port, user=user,
                             password=pw, database="tls1", ssl={"tls": True},
                             ssl_verify_cert=False, ssl_verify_identity=False)
    done = {}

    def sleep30():
        try:
            done["r"] = query(victim, "SELECT SLEEP(30)")
        except pymysql.err.OperationalError as e:
            done["r"] = e.args

    t = threading.Thread(target=sleep30)
    t.start()
    time.sleep(1)
    # the mariadb CLI's KILL is its first command (PyMySQL's is not)
    r = cli(ngx.port, user, pw, "tls1",
            f"KILL QUERY {victim.server_thread_id[0]}")
    assert r.returncode == 0, r.stderr
    t.join(10)
    assert done.get("r") in (((1,),), (1317, "Query execution was interrupted"))
    victim.close()

    # plain clients keep working on the same port
    c = mysql(ngx.port, user, pw, "tls1")
    assert query(c, "SELECT 1") == ((1,),)
    c.close()
    assert ngx.alerts() == []


@pytest.mark.skipif(nginx_version() < (1, 25, 5),
                    reason="stream server_name exists since nginx 1.25.5")
def test_tls_server_name_selects_the_server(controller, procs, run_dir, tls_cert,
                                            wake_test_names):
    """nginx >= 1.25.5: the TLS server name picks among the servers on one
    address during the module's TLS handshake.  A name that selects a server
    without wake gets a clear ERR through TLS; other names stay with the wake
    server that greeted."""
    cert, key = tls_cert
    ssl = (f"        ssl_certificate {cert};\n"
           f"        ssl_certificate_key {key};\n")
    ngx = start_nginx(procs, run_dir, controller, ssl=True, route="sni database",
                      extra=ssl,
                      servers_extra="    server {\n"
                                    "        listen 127.0.0.1:@PORT@;\n"
                                    "        server_name plain.wake.test;\n"
                                    + ssl +
                                    "        proxy_pass 127.0.0.1:9;\n"
                                    "    }\n")
    doc = make_project(controller, "sni1")
    user, pw = doc["admin_user"], doc["admin_password"]

    def connect(host):
        return pymysql.connect(host=host, port=ngx.port, user=user, password=pw,
                               database="sni1", ssl={"tls": True},
                               ssl_verify_cert=False, ssl_verify_identity=False,
                               connect_timeout=30)

    with pytest.raises(pymysql.err.OperationalError) as e:
        connect("plain.wake.test")
    assert e.value.args[0] == 1043
    assert 'selects a server without "wake on"' in e.value.args[1]

    c = connect("sni1.wake.test")
    assert c._sock.version().startswith("TLS")
    assert query(c, "SELECT DATABASE()") == (("sni1",),)
    c.close()
    assert ngx.alerts() == []


def test_tls_not_offered_by_default(controller, ngx):
    s = raw_connect(ngx.port)
    seq, g = read_packet(s)
    s.close()
    version_end = g.index(b"\0", 1)
    caps_lo = int.from_bytes(g[version_end + 14:version_end + 16], "little")
    assert caps_lo & 0x0800 == 0        # CLIENT_SSL
    assert caps_lo & 0x0200             # CLIENT_PROTOCOL_41


# routing errors

def test_unknown_invalid_missing(controller, ngx):
    doc = make_project(controller, "err1")
    user, pw = doc["admin_user"], doc["admin_password"]

    r = cli(ngx.port, user, pw, "no-such-project")
    assert "ERROR 1049 (42000)" in r.stderr
    assert "Unknown database 'no-such-project'" in r.stderr

    r = cli(ngx.port, user, pw, "Bad_Name")
    assert "ERROR 1049 (42000)" in r.stderr
    assert "not a valid project id" in r.stderr

    r = cli(ngx.port, user, pw, "x" * 64)
    assert "ERROR 1049 (42000)" in r.stderr

    r = cli(ngx.port, user, pw, None)
    assert "ERROR 1046 (3D000)" in r.stderr

    # the unknown project is cached negatively, and still an ERR
    with pytest.raises(pymysql.err.OperationalError) as e:
        mysql(ngx.port, user, pw, "no-such-project")
    assert e.value.args[0] == 1049

    c = mysql(ngx.port, user, pw, "err1")
    assert query(c, "SELECT 1") == ((1,),)
    c.close()
    assert ngx.alerts() == []


# malformed input

def handshake_response(user=b"u", db=b"err2", caps=0x00bfa28c, seq=1):
    body = struct.pack("<IIB", caps, 1 << 24, 33) + b"\0" * 19 + \
        struct.pack("<I", 0x1d)
    body += user + b"\0" + b"\0" + db + b"\0"
    if caps & 0x80000:
        body += b"mysql_native_password\0"
    return len(body).to_bytes(3, "little") + bytes([seq]) + body


def expect_err_or_close(s, timeout=10):
    s.settimeout(timeout)
    seq, payload = read_packet(s)
    if payload:
        code, _, msg = parse_err(payload)
        seq2, rest = read_packet(s)
        assert rest == b"" and seq2 == -1, "not closed after ERR"
        return code, msg
    return None, None


def test_malformed_clients(controller, procs, run_dir):
    ngx = start_nginx(procs, run_dir, controller, handshake_timeout="1s")
    doc = make_project(controller, "err2")
    user, pw = doc["admin_user"], doc["admin_password"]
    mysql(ngx.port, user, pw, "err2").close()
    workers = ngx.worker_pids()
    assert len(workers) == 2

    def greeted():
        s = raw_connect(ngx.port)
        seq, g = read_packet(s)
        assert seq == 0 and g[0] == 10
        return s

    # garbage
    s = greeted()
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    code, msg = expect_err_or_close(s)
    assert code == 1153, msg        # "GET" is a 5 MB length
    s.close()

    s = greeted()
    s.sendall(b"\x05\x00\x00\x01hello")
    code, msg = expect_err_or_close(s)
    assert code == 1043, msg
    s.close()

    # binary garbage announcing a short packet
    s = greeted()
    s.sendall(os.urandom(3) + b"\x01" + os.urandom(200))
    code, _ = expect_err_or_close(s)
    assert code in (None, 1043, 1153)
    s.close()

    # truncated handshake, then the client hangs up
    s = greeted()
    s.sendall(handshake_response(user.encode())[:40])
    s.shutdown(socket.SHUT_WR)
    expect_err_or_close(s)
    s.close()

    # a packet announcing 16 MB
    s = greeted()
    s.sendall(b"\xff\xff\xff\x01" + b"\x8c\xa2\xbf\x00" + b"A" * 1000)
    code, msg = expect_err_or_close(s)
    assert code == 1153, msg
    s.close()

    # stalls mid-handshake: ERR at wake_handshake_timeout
    s = greeted()
    s.sendall(handshake_response(user.encode())[:20])
    t = time.time()
    code, msg = expect_err_or_close(s, timeout=10)
    assert code == 1043 and "timed out" in msg
    assert 0.5 < time.time() - t < 5
    s.close()

    # never sends a byte
    s = greeted()
    t = time.time()
    code, _ = expect_err_or_close(s, timeout=10)
    assert code == 1043 and time.time() - t < 5
    s.close()

    # connects and leaves at once
    for _ in range(20):
        raw_connect(ngx.port).close()

    # a client without CLIENT_PLUGIN_AUTH
    s = greeted()
    s.sendall(handshake_response(user.encode(), caps=0x00b7a28c))
    code, msg = expect_err_or_close(s)
    assert code == 1251 and "CLIENT_PLUGIN_AUTH" in msg
    s.close()

    # an SSLRequest (TLS is not offered)
    s = greeted()
    body = struct.pack("<IIB", 0x00bfaa8c, 1 << 24, 33) + b"\0" * 23
    s.sendall(len(body).to_bytes(3, "little") + b"\x01" + body)
    code, msg = expect_err_or_close(s)
    assert code == 1043 and "TLS" in msg
    s.close()

    # wrong sequence id
    s = greeted()
    s.sendall(handshake_response(user.encode(), seq=5))
    code, msg = expect_err_or_close(s)
    assert code == 1043
    s.close()

    # the next client is served, by the same workers
    c = mysql(ngx.port, user, pw, "err2")
    assert query(c, "SELECT 42") == ((42,),)
    c.close()
    assert_clean(ngx, workers)


# load and outages

def test_200_concurrent_cold_start(controller, ngx):
    doc = make_project(controller, "many1")
    user, pw = doc["admin_user"], doc["admin_password"]
    suspend(controller, doc, "stop")
    before = starts(controller)
    wakes = metric(controller, "smdb_wakes_total")

    n = 200
    barrier = threading.Barrier(n)
    results = [None] * n

    def client(i):
        try:
            barrier.wait(30)
            c = mysql(ngx.port, user, pw, "many1")
            results[i] = query(c, f"SELECT {i}")[0][0]
            c.close()
        except Exception as e:      # noqa: BLE001 - reported below
            results[i] = repr(e)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)

    failures = [r for i, r in enumerate(results) if r != i]
    assert failures == [], failures[:5]
    assert starts(controller) == before + 1
    # one wake in flight per project per worker: the others wait for it
    assert metric(controller, "smdb_wakes_total") - wakes <= len(ngx.worker_pids())
    lines = ngx.wait_access(n)
    colds = {l["cold"] for l in lines}
    assert "started" in colds and colds <= {"started", "running", "warm"}
    assert ngx.alerts() == []


def test_controller_down_and_back(controller, procs, run_dir):
    doc = make_project(controller, "down1")
    user, pw = doc["admin_user"], doc["admin_password"]
    ngx = start_nginx(procs, run_dir, controller, timeout="1s", retries=2,
                      backoff="100ms")
    controller.stop()

    t = time.time()
    with pytest.raises(pymysql.err.OperationalError) as e:
        mysql(ngx.port, user, pw, "down1")
    took = time.time() - t
    assert e.value.args[0] == 1105
    assert "controller unreachable" in e.value.args[1]
    assert took < 10

    r = cli(ngx.port, user, pw, "down1")
    assert "ERROR 1105" in r.stderr and "try again later" in r.stderr

    controller.start()
    c = mysql(ngx.port, user, pw, "down1")
    assert query(c, "SELECT COUNT(*) FROM t") == ((2,),)
    c.close()
    assert ngx.alerts() == []


def test_wrong_wake_token(controller, procs, run_dir):
    make_project(controller, "tok1")
    ngx = start_nginx(procs, run_dir, f"127.0.0.1:{controller.port}",
                      token="not-the-token")
    r = cli(ngx.port, "admin", "x", "tok1")
    assert "ERROR 1045 (28000)" in r.stderr
    assert "not authorized by the controller" in r.stderr
