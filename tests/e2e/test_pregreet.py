"""wake_preconnect's pre-greeting, against real nginx, controller and mariadbd:
the guessed compute (the one this client address was routed to a moment ago)
is connected first, and the client is greeted with that compute's scramble
and thread id.  Raw-socket clients check each case:

- a hit logs in without an AuthSwitchRequest (the compute's OK is the first
  packet after the response), and CONNECTION_ID() is the greeting's id;
- a wrong password on a hit: the compute's ERR 1045, also without a switch;
- a miss (another project): auth data signed on the guess's scramble never
  reaches the other compute, which asks again with an AuthSwitchRequest;
- another plugin named by the client: the auth switch as without the guess;
  an ed25519 account through the mariadb CLI (the compute switches itself);
- a TLS client leg: the compute's OK, renumbered after the SSLRequest;
- a guess that does not greet (frozen): the proxy greets at once, the
  session goes the usual way.
"""
import os
import struct
import subprocess
import time

import pytest

from conftest import mysql, wait_for
from nginx_fixture import parse_err, raw_connect, read_packet, start_nginx
from test_connect import Tls, auth_switch, select
from test_proxy import cli, make_project as make_ed_project, suspend
from test_unauth import APP_PW, APP_USER, CAPS, make_project, native_token, packet


def pre_log(run_dir):
    try:
        with open(os.path.join(run_dir, "pre.log")) as f:
            return [line.split() for line in f.read().splitlines()]
    except OSError:
        return []


def start(procs, run_dir, controller, **kw):
    return start_nginx(procs, run_dir, controller, cache_ttl="30s", preconnect=True,
                       stream_extra="    log_format pre '$wake_preconnect $wake_project "
                                    "$wake_connection_id $wake_thread_id';\n"
                                    f"    access_log {run_dir}/pre.log pre;\n",
                       workers=1, **kw)         # one worker: one table of guesses


def last_session(run_dir, n):
    """The access log's line of the n-th session (the probe is line 0)."""
    lines = wait_for(lambda: len(pre_log(run_dir)) > n and pre_log(run_dir),
                     timeout=10, what=f"session {n} logged")
    return lines[n]


def greeting(s):
    """(connection id, 20-byte scramble, plugin) of an Initial Handshake."""
    seq, g = read_packet(s)
    assert seq == 0 and g[:1] == b"\x0a", g[:16]
    p = g.index(b"\0", 1) + 1
    conn_id = struct.unpack("<I", g[p:p + 4])[0]
    scramble = g[p + 4:p + 12]
    p += 13                                     # id, scramble 8, filler
    p += 2 + 1 + 2 + 2 + 1 + 6 + 4              # caps, charset, status, caps,
    scramble += g[p:p + 12]                     # auth length, filler, ext caps
    plugin = g[p + 13:].rstrip(b"\0")
    return conn_id, scramble, plugin


def response(user, db, auth, plugin=b"mysql_native_password", seq=1, caps=CAPS):
    body = struct.pack("<IIB", caps, 1 << 24, 45) + b"\0" * 19 + \
        struct.pack("<I", 0x1d)
    body += user.encode() + b"\0" + bytes([len(auth)]) + auth   # lenenc
    body += db.encode() + b"\0" + plugin + b"\0"
    return packet(seq, body)


def connection_id(send, recv):
    return int(select(send, recv, "SELECT CONNECTION_ID()"))


@pytest.fixture
def pre(controller, procs, run_dir):
    ngx = start(procs, run_dir, controller)
    docs = {p: make_project(controller, p) for p in ("greet-a", "greet-b")}
    c = mysql(ngx.port, APP_USER, APP_PW, "greet-a")   # no guess yet: learns
    c.close()
    last_session(run_dir, 1)
    return ngx, docs


def test_hit_logs_in_without_auth_switch(pre, run_dir):
    ngx, docs = pre
    s = raw_connect(ngx.port, timeout=20)
    conn_id, scramble, plugin = greeting(s)
    assert plugin == b"mysql_native_password"
    assert conn_id < 0x80000000                 # the compute's thread id
    s.sendall(response(APP_USER, "greet-a", native_token(APP_PW, scramble)))
    seq, p = read_packet(s)
    assert p[:1] == b"\x00", p[:60]             # OK: no AuthSwitchRequest
    assert seq == 2
    recv = lambda: read_packet(s)               # noqa: E731
    assert connection_id(s.sendall, recv) == conn_id
    s.close()
    assert last_session(run_dir, 2) == ["hit", "greet-a", str(conn_id), str(conn_id)]

    # a wrong password: the compute's own ERR, at once
    s = raw_connect(ngx.port, timeout=20)
    _, scramble, _ = greeting(s)
    s.sendall(response(APP_USER, "greet-a", native_token("wrong", scramble)))
    seq, p = read_packet(s)
    code, _, msg = parse_err(p)
    assert code == 1045 and "using password: YES" in msg, msg
    assert seq == 2
    s.close()

    # and the next hit works as the first one did
    s = raw_connect(ngx.port, timeout=20)
    _, scramble, _ = greeting(s)
    s.sendall(response(APP_USER, "greet-a", native_token(APP_PW, scramble)))
    assert read_packet(s)[1][:1] == b"\x00"
    s.close()
    assert ngx.alerts() == []


def test_miss_asks_again(pre, run_dir):
    ngx, docs = pre
    # greeted with greet-a's scramble, routed to greet-b: its token is
    # worthless there and must not be sent; greet-b asks with its own
    s = raw_connect(ngx.port, timeout=20)
    conn_id, scramble, _ = greeting(s)
    s.sendall(response(APP_USER, "greet-b", native_token(APP_PW, scramble)))
    seq, p = read_packet(s)
    other = auth_switch(p)
    assert seq == 2 and other != scramble
    s.sendall(packet(seq + 1, native_token(APP_PW, other)))
    seq, p = read_packet(s)
    assert p[:1] == b"\x00", p[:60]
    recv = lambda: read_packet(s)               # noqa: E731
    assert select(s.sendall, recv, "SELECT DATABASE()") == "greet-b"
    s.close()
    assert last_session(run_dir, 2)[:2] == ["miss", "greet-b"]

    # the guess is now greet-b: a hit there
    s = raw_connect(ngx.port, timeout=20)
    conn_id, scramble, _ = greeting(s)
    s.sendall(response(APP_USER, "greet-b", native_token(APP_PW, scramble)))
    assert read_packet(s)[1][:1] == b"\x00"
    assert connection_id(s.sendall, lambda: read_packet(s)) == conn_id
    s.close()
    assert ngx.alerts() == []


def test_other_plugin_falls_back(pre, run_dir):
    ngx, docs = pre
    # a client that names another plugin: its auth data is not forwarded,
    # the compute switches as it does without a guess
    s = raw_connect(ngx.port, timeout=20)
    _, scramble, _ = greeting(s)
    s.sendall(response(APP_USER, "greet-a", os.urandom(20), plugin=b"client_ed25519"))
    seq, p = read_packet(s)
    other = auth_switch(p)                      # app's plugin: native
    s.sendall(packet(seq + 1, native_token(APP_PW, other)))
    assert read_packet(s)[1][:1] == b"\x00"
    s.close()
    assert last_session(run_dir, 2)[0] == "hit"
    assert ngx.alerts() == []


def test_ed25519_account(controller, procs, run_dir):
    ngx = start(procs, run_dir, controller)
    make_ed_project(controller, "greet-ed", ed25519=True)
    for i in range(3):                          # no guess, then hits
        r = cli(ngx.port, "edu", "ed-secret", "greet-ed", "SELECT CURRENT_USER()")
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["edu@%"]
    r = cli(ngx.port, "edu", "wrong", "greet-ed")
    assert r.returncode != 0 and "ERROR 1045 (28000)" in r.stderr, r.stderr
    assert [l[0] for l in pre_log(run_dir)[1:5]] == ["-", "hit", "hit", "hit"]
    assert ngx.alerts() == []


def test_tls_client_leg(controller, procs, run_dir):
    cert, key = os.path.join(run_dir, "cert.pem"), os.path.join(run_dir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=greet.test"],
                   check=True, capture_output=True)
    ngx = start(procs, run_dir, controller, ssl=True,
                extra=f"        ssl_certificate {cert};\n"
                      f"        ssl_certificate_key {key};\n")
    make_project(controller, "greet-tls")
    c = mysql(ngx.port, APP_USER, APP_PW, "greet-tls")
    c.close()
    last_session(run_dir, 1)

    s = raw_connect(ngx.port, timeout=20)
    conn_id, scramble, _ = greeting(s)
    tls = Tls(s)
    caps = CAPS | 0x800                         # CLIENT_SSL
    s.sendall(packet(1, struct.pack("<IIB", caps, 1 << 24, 45) + b"\0" * 23))
    s.sendall(tls.client_hello())
    tls.handshake()
    tls.send(response(APP_USER, "greet-tls", native_token(APP_PW, scramble),
                      seq=2, caps=caps))
    seq, p = tls.packet()
    assert p[:1] == b"\x00", p[:60]             # no AuthSwitchRequest
    assert seq == 3                             # after the SSLRequest
    assert connection_id(tls.send, tls.packet) == conn_id
    s.close()
    assert last_session(run_dir, 2)[0] == "hit"
    assert ngx.alerts() == []


def test_frozen_guess_costs_the_bound(controller, procs, run_dir):
    # a compute that accepts and does not greet (frozen behind the cache):
    # the client is greeted by the proxy at once, not after the compute
    ngx = start(procs, run_dir, controller)
    doc = make_project(controller, "greet-frz")
    mysql(ngx.port, APP_USER, APP_PW, "greet-frz").close()
    last_session(run_dir, 1)
    suspend(controller, doc, "freeze")

    t = time.monotonic()
    s = raw_connect(ngx.port, timeout=30)
    conn_id, scramble, _ = greeting(s)
    waited = time.monotonic() - t
    assert waited < 0.5, waited                 # 3 ms, on a busy machine
    assert conn_id >= 0x80000000                # the proxy's own greeting
    # the guess is handed over as it is: the filter's greeting timer wakes
    # the project again, the thawed compute greets and asks for the auth
    s.sendall(response(APP_USER, "greet-frz", native_token(APP_PW, scramble)))
    seq, p = read_packet(s)
    s.sendall(packet(seq + 1, native_token(APP_PW, auth_switch(p))))
    assert read_packet(s)[1][:1] == b"\x00"
    s.close()
    assert last_session(run_dir, 2)[0] == "hit"
    assert ngx.alerts() == []
