"""The module's handshake read (ngx_stream_wake_recv_plain: a MSG_PEEK, then
one read of exactly the packet), against real nginx, controller and mariadbd,
with a hand-made client that controls how the bytes arrive:

- a HandshakeResponse that arrives in pieces (the header byte by byte, the
  payload in two parts) is put together and the session logs in;
- bytes the client sends right behind the response are not taken by the
  proxy: they reach the compute (here: an answer to the AuthSwitchRequest
  sent before it was asked for, which the compute judges);
- an SSLRequest and the TLS ClientHello in one segment: the proxy reads the
  SSLRequest only, OpenSSL gets the ClientHello, the session logs in
  through TLS.

And wake_preconnect (the compute's connect started at accept, to the compute
this client address was routed to): used when the guess is right, closed
when it is wrong or the client leaves, never in the logged upstream.
"""
import os
import ssl
import struct
import subprocess
import time

import pytest

from conftest import mysql, wait_for
from nginx_fixture import parse_err, raw_connect, read_packet, start_nginx
from test_unauth import (APP_PW, APP_USER, handshake_response, make_project,
                         native_token, packet)


@pytest.fixture
def proxied(controller, procs, run_dir):
    ngx = start_nginx(procs, run_dir, controller, cache_ttl="30s")
    make_project(controller, "conn1")
    return ngx


def greeted(port):
    s = raw_connect(port, timeout=20)
    seq, g = read_packet(s)
    assert seq == 0 and g[:1] == b"\x0a", g[:16]
    return s


def auth_switch(p):
    """The compute's scramble from an AuthSwitchRequest."""
    assert p[:1] == b"\xfe", p[:16]
    end = p.index(b"\0", 1)
    assert p[1:end] == b"mysql_native_password", p[:40]
    return p[end + 1:].rstrip(b"\0")


def select(send, recv, sql):
    """COM_QUERY; the first column of the first row (text protocol)."""
    send(packet(0, b"\x03" + sql.encode()))
    seq, p = recv()
    assert p and p[:1] not in (b"\xff", b"\x00"), p[:60]
    ncols = p[0]
    for _ in range(ncols):
        recv()                                  # column definitions
    seq, p = recv()
    if p[:1] == b"\xfe" and len(p) < 9:         # EOF after the columns
        seq, p = recv()
    n = p[0]
    return p[1:1 + n].decode()


def test_response_in_pieces(proxied):
    s = greeted(proxied.port)
    resp = handshake_response(APP_USER, "conn1")
    pieces = [resp[0:1], resp[1:2], resp[2:3], resp[3:4], resp[4:40], resp[40:]]
    for piece in pieces:
        s.sendall(piece)
        time.sleep(0.05)                        # each its own segment
    seq, p = read_packet(s)
    scramble = auth_switch(p)
    s.sendall(packet(seq + 1, native_token(APP_PW, scramble)))
    seq, p = read_packet(s)
    assert p[:1] == b"\x00", p
    recv = lambda: read_packet(s)               # noqa: E731
    assert select(s.sendall, recv, "SELECT 40 + 2") == "42"
    s.close()
    assert proxied.alerts() == []


def test_bytes_after_the_response_reach_the_compute(proxied):
    # the auth answer (seq 3) sent with the response, before the compute's
    # scramble is known, so it is wrong: the compute says 1045, which it
    # can only do if the proxy left the bytes for it
    s = greeted(proxied.port)
    s.sendall(handshake_response(APP_USER, "conn1") + packet(3, os.urandom(20)))
    seq, p = read_packet(s)
    auth_switch(p)
    assert seq == 2
    seq, p = read_packet(s)
    code, _, msg = parse_err(p)
    assert code == 1045 and "using password: YES" in msg, msg
    assert seq == 4
    s.close()

    # and the proxy serves the next client as usual
    s = greeted(proxied.port)
    s.sendall(handshake_response(APP_USER, "conn1"))
    seq, p = read_packet(s)
    s.sendall(packet(seq + 1, native_token(APP_PW, auth_switch(p))))
    assert read_packet(s)[1][:1] == b"\x00"
    s.close()


class Tls:
    """TLS over a plain socket through memory BIOs, so that the ClientHello
    can go out in the same segment as the SSLRequest."""

    def __init__(self, sock):
        self.sock = sock
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out)
        self.buf = b""

    def client_hello(self):
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return self.out.read()

    def _pull(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("closed during TLS")
        self.inc.write(data)

    def handshake(self):
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                pending = self.out.read()
                if pending:
                    self.sock.sendall(pending)
                self._pull()
        pending = self.out.read()
        if pending:
            self.sock.sendall(pending)

    def send(self, data):
        self.obj.write(data)
        self.sock.sendall(self.out.read())

    def _read(self, n):
        while len(self.buf) < n:
            try:
                self.buf += self.obj.read(65536)
            except ssl.SSLWantReadError:
                self._pull()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def packet(self):
        hdr = self._read(4)
        return hdr[3], self._read(int.from_bytes(hdr[:3], "little"))


def test_ssl_request_and_client_hello_in_one_segment(controller, procs, run_dir):
    cert, key = os.path.join(run_dir, "cert.pem"), os.path.join(run_dir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=conn.test"],
                   check=True, capture_output=True)
    ngx = start_nginx(procs, run_dir, controller, ssl=True,
                      extra=f"        ssl_certificate {cert};\n"
                            f"        ssl_certificate_key {key};\n")
    make_project(controller, "conn2")

    s = greeted(ngx.port)
    tls = Tls(s)
    caps = 0x00afaa8c                           # libmariadb's, with CLIENT_SSL
    ssl_request = packet(1, struct.pack("<IIB", caps, 1 << 24, 45) + b"\0" * 23)
    s.sendall(ssl_request + tls.client_hello())
    tls.handshake()
    resp = bytearray(handshake_response(APP_USER, "conn2"))
    resp[3] = 2                                 # after the SSLRequest
    resp[4:8] = struct.pack("<I", caps)
    tls.send(bytes(resp))
    seq, p = tls.packet()
    assert seq == 3
    tls.send(packet(seq + 1, native_token(APP_PW, auth_switch(p))))
    seq, p = tls.packet()
    assert p[:1] == b"\x00", p
    assert select(tls.send, tls.packet, "SELECT 6 * 7") == "42"
    s.close()
    assert ngx.alerts() == []


# wake_preconnect

def pre_log(run_dir):
    path = os.path.join(run_dir, "pre.log")
    try:
        with open(path) as f:
            return [line.split() for line in f.read().splitlines()]
    except OSError:
        return []


def login(port, project):
    c = mysql(port, APP_USER, APP_PW, project)
    cur = c.cursor()
    cur.execute("SELECT DATABASE()")
    assert cur.fetchall() == ((project,),)
    c.close()


def threads_connected(doc):
    c = mysql(doc["compute"]["port"], doc["admin_user"], doc["admin_password"])
    cur = c.cursor()
    cur.execute("SHOW GLOBAL STATUS LIKE 'Threads_connected'")
    n = int(cur.fetchall()[0][1])
    c.close()
    return n - 1                                # not this one


def test_preconnect(controller, procs, run_dir):
    ngx = start_nginx(procs, run_dir, controller, cache_ttl="30s", preconnect=True,
                      stream_extra="    log_format pre '$wake_preconnect $wake_project "
                                   "$wake_upstream $status';\n"
                                   f"    access_log {run_dir}/pre.log pre;\n",
                      workers=1)                # one worker: one table of guesses
    a = make_project(controller, "pre-a")
    b = make_project(controller, "pre-b")
    addr = {"pre-a": a["compute"]["address"], "pre-b": b["compute"]["address"]}
    skip = len(pre_log(run_dir))                 # start_nginx's probe

    def sessions(n):
        lines = wait_for(lambda: len(pre_log(run_dir)) >= skip + n and pre_log(run_dir),
                         timeout=10, what=f"{n} sessions logged")
        return [(l[0], l[1], l[2], l[3]) for l in lines[skip:]]

    login(ngx.port, "pre-a")                     # no guess yet
    login(ngx.port, "pre-a")                     # the guess: pre-a, right
    login(ngx.port, "pre-b")                     # the guess: pre-a, wrong
    login(ngx.port, "pre-b")                     # the guess: pre-b, right
    assert sessions(4) == [("-", "pre-a", addr["pre-a"], "200"),
                           ("hit", "pre-a", addr["pre-a"], "200"),
                           ("miss", "pre-b", addr["pre-b"], "200"),
                           ("hit", "pre-b", addr["pre-b"], "200")]

    # a wrong project name: the guess (pre-b) is closed, the client told
    with pytest.raises(Exception) as e:
        mysql(ngx.port, APP_USER, APP_PW, "pre-nope")
    assert "no such project" in str(e.value)
    assert sessions(5)[4][:2] == ("miss", "pre-nope")

    # clients that connect and leave: each guess ends with its session
    base = threads_connected(b)
    for _ in range(20):
        raw_connect(ngx.port).close()
    # counted by their log lines, not by the log's length at some moment: a
    # session is logged a little after its client closed, so a count taken
    # right after login() may miss login's own line (or some of these)
    assert sessions(25)[5:] == [("miss", "-", "-", "200")] * 20
    # (well before MariaDB's connect_timeout, 10 s, would close them)
    wait_for(lambda: threads_connected(b) <= base, timeout=5,
             what="the guesses of clients that left closed")
    login(ngx.port, "pre-b")
    assert sessions(26)[25] == ("hit", "pre-b", addr["pre-b"], "200")

    # a client that takes its time: the guess is closed after 5 s unused,
    # the session connects as usual when the client answers
    s = greeted(ngx.port)
    time.sleep(5.5)
    s.sendall(handshake_response(APP_USER, "pre-b"))
    seq, p = read_packet(s)
    s.sendall(packet(seq + 1, native_token(APP_PW, auth_switch(p))))
    assert read_packet(s)[1][:1] == b"\x00"
    s.close()
    assert sessions(27)[26] == ("miss", "pre-b", addr["pre-b"], "200")
    assert ngx.alerts() == []
