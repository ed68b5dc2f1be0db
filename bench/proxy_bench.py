"""Proxy benchmark (issue: ngx_stream_wake_module, make bench).

In one run, on loopback, against one warm compute:
 (1) connect + auth + SELECT 1 (one libmariadb client, bench/connect_client.c,
     round-robin over the paths) directly to mariadbd, through nginx's plain
     proxy_pass, through haproxy in tcp mode and through the module; and the
     proxied round trip (SELECT 1 on an open session) on each path. Goal:
     module p50 <= plain nginx p50 + one proxied round trip, and < haproxy;
 (2) steady-state sysbench oltp_point_select on open connections through the
     module vs directly vs nginx's plain proxy_pass to the same compute;
 (3) end-to-end wake through nginx from stopped and from frozen;
 (4) connect + auth + SELECT 1 with TLS (certificate verified): through the
     module vs directly to a mariadbd with TLS, beside the plain-text figures
     (a MySQL client's TLS starts inside the protocol, so nginx's plain
     proxy_pass cannot terminate it: its figure is without TLS).
"""
import os
import re
import statistics
import struct
import subprocess
import sys
import time

import pymysql

from common import Platform, report

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from conftest import free_port, wait_port  # noqa: E402
from nginx_fixture import raw_connect, read_packet, start_nginx  # noqa: E402
import test_unauth as unauth  # noqa: E402
from mariadb_fixture import MariaDB  # noqa: E402
from test_clients import server_cert  # noqa: E402

CONNECTS = int(os.environ.get("BENCH_CONNECTS", "300"))
C_CONNECTS = int(os.environ.get("BENCH_C_CONNECTS", "1000"))
RTTS = int(os.environ.get("BENCH_RTTS", "2000"))
PHASED = int(os.environ.get("BENCH_PHASED", "300"))
ONLY_CONNECT = os.environ.get("BENCH_ONLY_CONNECT") == "1"     # (1) only
WAKES = int(os.environ.get("BENCH_WAKES", "30"))
SB_TIME = int(os.environ.get("BENCH_SYSBENCH_TIME", "6"))
SB_THREADS = int(os.environ.get("BENCH_SYSBENCH_THREADS", "4"))
SB_ROUNDS = int(os.environ.get("BENCH_SYSBENCH_ROUNDS", "3"))
CACHE_TTL_S = 1
HERE = os.path.dirname(os.path.abspath(__file__))
HAPROXY = "/usr/sbin/haproxy"


def build_client(run_dir):
    """bench/connect_client.c against the system's libmariadb."""
    exe = os.path.join(run_dir, "connect_client")
    flags = subprocess.run(["mariadb_config", "--cflags", "--libs"], capture_output=True,
                           text=True, check=True).stdout.split()
    subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", exe,
                    os.path.join(HERE, "connect_client.c")] + flags, check=True)
    return exe


def run_client(exe, mode, n, user, pw, db, ports):
    """{port: [ms, ...]} from one run of the C client, round-robin over ports."""
    out = subprocess.run([exe, mode, str(n), user, pw, db] + [str(x) for x in ports],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"connect_client {mode}: {out.stderr}")
    res = {x: [] for x in ports}
    for line in out.stdout.splitlines():
        port, ms = line.split()
        res[int(port)].append(float(ms))
    return res


def start_haproxy(procs, run_dir, backend_port):
    """haproxy in tcp mode in front of one compute, in the foreground."""
    port = free_port()
    cfg = os.path.join(run_dir, "haproxy.cfg")
    with open(cfg, "w") as f:
        f.write(f"""global
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend mysql
    bind 127.0.0.1:{port}
    default_backend compute
backend compute
    server c1 127.0.0.1:{backend_port}
""")
    procs.start("haproxy", [HAPROXY, "-db", "-f", cfg])
    wait_port(port, timeout=10)
    return port


def phased_session(port, user, pw, db):
    """One connect + auth + SELECT 1 by hand (raw socket, mysql_native_password),
    timed per phase: [connect -> greeting, response -> next packet (OK, or the
    module's AuthSwitchRequest), (the auth answer -> OK,) SELECT 1]."""
    marks = [time.perf_counter()]
    s = raw_connect(port)
    try:
        seq, g = read_packet(s)
        marks.append(time.perf_counter())
        i = g.index(b"\0", 1) + 1 + 4                     # after version, conn id
        scramble = g[i:i + 8] + g[i + 8 + 19:i + 8 + 19 + 12]
        body = struct.pack("<IIB", unauth.CAPS, 1 << 24, 45) + b"\0" * 19 + \
            struct.pack("<I", 0x1d) + user.encode() + b"\0"
        token = unauth.native_token(pw, scramble)
        body += bytes([len(token)]) + token + db.encode() + b"\0mysql_native_password\0"
        s.sendall(unauth.packet(1, body))
        seq, p = read_packet(s)
        marks.append(time.perf_counter())
        if p[:1] == b"\xfe":                               # AuthSwitchRequest
            end = p.index(b"\0", 1)
            s.sendall(unauth.packet(seq + 1, unauth.native_token(pw, p[end + 1:].rstrip(b"\0"))))
            seq, p = read_packet(s)
            marks.append(time.perf_counter())
        assert p[:1] == b"\x00", p
        s.sendall(unauth.packet(0, b"\x03SELECT 1"))
        eofs = 0
        while eofs < 2:                                     # columns EOF, rows EOF
            seq, p = read_packet(s)
            assert p and p[:1] != b"\xff", p
            eofs += p[:1] == b"\xfe" and len(p) < 9
        marks.append(time.perf_counter())
        s.sendall(unauth.packet(0, b"\x01"))                # COM_QUIT: no aborted-
    finally:                                                # connection warning
        s.close()
    return [(b - a) * 1000 for a, b in zip(marks, marks[1:])]


def pct(xs, q):
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def connect_select1(port, user, pw, db):
    t0 = time.monotonic()
    c = pymysql.connect(host="127.0.0.1", port=port, user=user, password=pw, database=db,
                        connect_timeout=30)
    cur = c.cursor()
    cur.execute("SELECT 1")
    cur.fetchone()
    c.close()
    return (time.monotonic() - t0) * 1000


def connect_select1_tls(port, user, pw, db, ca):
    t0 = time.monotonic()
    c = pymysql.connect(host="127.0.0.1", port=port, user=user, password=pw, database=db,
                        connect_timeout=30, ssl_ca=ca, ssl_verify_cert=True,
                        ssl_verify_identity=True)
    cur = c.cursor()
    cur.execute("SELECT 1")
    cur.fetchone()
    c.close()
    return (time.monotonic() - t0) * 1000


def sysbench(port, user, pw, db, cmd):
    args = ["sysbench", "oltp_point_select", f"--mysql-host=127.0.0.1", f"--mysql-port={port}",
            f"--mysql-user={user}", f"--mysql-password={pw}", f"--mysql-db={db}",
            "--tables=1", "--table-size=10000", "--db-driver=mysql", f"--threads={SB_THREADS}",
            f"--time={SB_TIME}", "--histogram=on", "--report-interval=0", cmd]
    out = subprocess.run(args, capture_output=True, text=True, timeout=SB_TIME * 4 + 60)
    if out.returncode != 0:
        raise RuntimeError(out.stdout + out.stderr)
    return out.stdout


def parse_sysbench(text):
    qps = float(re.search(r"queries:\s+\d+\s+\(([\d.]+) per sec", text).group(1))
    hist = [(float(v), int(n)) for v, n in
            re.findall(r"^\s+([\d.]+) \|\*+\s+(\d+)$", text, re.M)]
    total = sum(n for _, n in hist)

    def pct(q):
        acc = 0
        for v, n in hist:
            acc += n
            if acc >= q * total:
                return v
        return hist[-1][0]
    return qps, pct(0.5), pct(0.9), pct(0.99)


def main():
    p = Platform(drain_wait_ms=(CACHE_TTL_S * 1000 + 500))
    try:
        ctl = p.controller
        doc = ctl.create_project("bench", idle_timeout_s=3600, freeze_after_s=0)
        cid, cport = doc["compute_id"], doc["compute"]["port"]
        user, pw = doc["admin_user"], doc["admin_password"]
        plain = free_port()
        # the module's own upstream settings (PROXY header, source address the
        # computes trust) without the module: what is left is the module's cost
        plain_pp = free_port()
        pre = free_port()
        ca, cert, key = server_cert(p.run_dir)
        # TLS offered as the shipped config does; plain clients ignore it
        ngx = start_nginx(p.procs, p.run_dir, ctl, cache_ttl=f"{CACHE_TTL_S}s", ssl=True,
                          extra=f"        ssl_certificate {cert};\n"
                                f"        ssl_certificate_key {key};\n"
                                "        ssl_protocols TLSv1.2 TLSv1.3;\n",
                          stream_extra=f"    server {{ listen 127.0.0.1:{plain}; "
                                       f"proxy_pass 127.0.0.1:{cport}; }}\n"
                                       f"    server {{ listen 127.0.0.1:{plain_pp}; "
                                       f"proxy_pass 127.0.0.1:{cport}; proxy_protocol on; "
                                       "proxy_bind 127.0.0.2; }",
                          # the same wake server with wake_preconnect on
                          servers_extra=f"""    server {{
        listen 127.0.0.1:{pre};
        wake on;
        wake_controller 127.0.0.1:{ctl.port};
        wake_token {ctl.wake_token};
        wake_cache_ttl {CACHE_TTL_S}s;
        wake_ssl on;
        wake_preconnect on;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        proxy_pass $wake_upstream;
        proxy_protocol on;
        proxy_bind 127.0.0.2;
        proxy_connect_timeout 5s;
        proxy_timeout 1h;
    }}
""")

        # (1) connect + auth + SELECT 1, one C client, round-robin over the paths
        hap = start_haproxy(p.procs, p.run_dir, cport)
        exe = build_client(p.run_dir)
        paths = [("direct to mariadbd", cport), ("plain nginx proxy_pass", plain),
                 ("plain nginx + PROXY protocol, proxy_bind", plain_pp),
                 ("haproxy (tcp mode)", hap), ("nginx + wake module", ngx.port),
                 ("nginx + wake module, wake_preconnect on", pre)]
        ports = [port for _, port in paths]
        run_client(exe, "connect", 50, user, pw, "bench", ports)         # warm-up
        conn = run_client(exe, "connect", C_CONNECTS, user, pw, "bench", ports)
        rtt = run_client(exe, "rtt", RTTS, user, pw, "bench", ports)
        print(f"(1) connect + auth + SELECT 1, warm compute, libmariadb ({C_CONNECTS} each, "
              "round-robin):")
        p50 = {port: report(name, conn[port], digits=3) for name, port in paths}
        print(f"    SELECT 1 on an open session ({RTTS} each, round-robin):")
        r50 = {port: report(name, rtt[port], digits=3) for name, port in paths}
        print("    ratios to plain nginx: " + ", ".join(
            f"{name} p50 {p50[port] / p50[plain]:.2f}x p99 "
            f"{pct(conn[port], 0.99) / pct(conn[plain], 0.99):.2f}x"
            for name, port in paths if port != plain))
        goal = p50[plain] + r50[plain]
        for name, port in (("module", ngx.port), ("module, wake_preconnect on", pre)):
            print(f"    {name} p50 {p50[port]:.3f} ms; goal <= plain nginx p50 + one proxied "
                  f"round trip = {p50[plain]:.3f} + {r50[plain]:.3f} = {goal:.3f} ms "
                  f"({'met' if p50[port] <= goal else 'NOT met'}); haproxy p50 "
                  f"{p50[hap]:.3f} ms ({'below' if p50[port] < p50[hap] else 'NOT below'}); "
                  f"/ direct p50 {p50[port] / p50[cport]:.2f}x (target <= 1.5x); - plain nginx "
                  f"with the same upstream settings {p50[port] - p50[plain_pp]:+.3f} ms")
        # where the time goes: the same, by hand, timed per phase
        phased = {port: [] for _, port in paths}
        for _ in range(PHASED):
            for _, port in paths:
                phased[port].append(phased_session(port, user, pw, "bench"))
        print(f"    by phase, median ms (raw-socket client, {PHASED} each, round-robin): "
              "connect->greeting, response->OK (module: ->AuthSwitchRequest, "
              "auth answer->OK), SELECT 1; total")
        for name, port in paths:
            cols = list(zip(*phased[port]))
            print(f"  {name:<48} " + "  ".join(f"{statistics.median(c):.3f}" for c in cols)
                  + f"   total {statistics.median(sum(x) for x in phased[port]):.3f}")

        if ONLY_CONNECT:
            assert not ngx.alerts(), ngx.alerts()
            return

        # (4) the same with TLS: the module vs a mariadbd with TLS of its own
        db = MariaDB(p.procs, p.run_dir, name="tls-direct", plugin=False,
                     extra_args=[f"--ssl-cert={cert}", f"--ssl-key={key}"]).start()
        r = db.root()
        rc = r.cursor()
        rc.execute("CREATE DATABASE bench")
        rc.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{pw}'")
        rc.execute(f"GRANT ALL ON bench.* TO '{user}'@'%'")
        r.close()
        tls_mod, tls_direct, plain_ngx, plain_mod = [], [], [], []
        for _ in range(20):
            connect_select1_tls(ngx.port, user, pw, "bench", ca)
            connect_select1_tls(db.port, user, pw, "bench", ca)
        for _ in range(CONNECTS):
            tls_mod.append(connect_select1_tls(ngx.port, user, pw, "bench", ca))
            tls_direct.append(connect_select1_tls(db.port, user, pw, "bench", ca))
            plain_ngx.append(connect_select1(plain, user, pw, "bench"))
            plain_mod.append(connect_select1(ngx.port, user, pw, "bench"))
        print(f"(4) connect + auth + SELECT 1 with TLS, verified, pymysql ({CONNECTS} each, "
              "interleaved):")
        t1 = report("TLS through nginx + wake module", tls_mod)
        t2 = report("TLS direct to mariadbd", tls_direct)
        t3 = report("plain nginx proxy_pass (no TLS)", plain_ngx)
        t4 = report("nginx + wake module (no TLS)", plain_mod)
        print(f"  module TLS / direct TLS p50 {t1 / t2:.2f}x; module TLS - direct TLS p50 "
              f"{t1 - t2:+.2f} ms; plain proxy_pass (no TLS) p50 {t3:.2f} ms, module "
              f"(no TLS) p50 {t4:.2f} ms")
        db.stop()

        # (2) sysbench point selects on open connections: rounds in rotating
        # order, so that no mode always runs first or last on the busy 2 vCPUs
        sysbench(cport, user, pw, "bench", "prepare")
        modes = [("direct", cport), ("wake module", ngx.port), ("plain proxy_pass", plain)]
        for name, port in modes:
            sysbench(port, user, pw, "bench", "run")          # warm-up round
        runs = {name: [] for name, _ in modes}
        for r in range(SB_ROUNDS):
            for name, port in modes[r % 3:] + modes[:r % 3]:
                runs[name].append(parse_sysbench(sysbench(port, user, pw, "bench", "run")))
        results = {name: sorted(v)[len(v) // 2] for name, v in runs.items()}   # median by q/s
        print(f"(2) sysbench oltp_point_select, {SB_THREADS} threads, {SB_ROUNDS} rounds x "
              f"{SB_TIME} s each, median round:")
        for name, (qps, p50, p90, p99) in results.items():
            print(f"  {name:<20} {qps:10.0f} q/s   p50={p50:.3f}ms p90={p90:.3f}ms p99={p99:.3f}ms"
                  f"   (rounds: {', '.join(f'{x[0]:.0f}' for x in runs[name])})")
        d = results["direct"][0]
        print(f"  module / direct = {results['wake module'][0] / d:.3f}x (target >= 0.95x); "
              f"plain proxy_pass / direct = {results['plain proxy_pass'][0] / d:.3f}x; "
              f"module / plain = {results['wake module'][0] / results['plain proxy_pass'][0]:.3f}x")

        # (3) wake through nginx
        stopped, frozen = [], []
        for _ in range(WAKES):
            for mode, out in (("stop", stopped), ("freeze", frozen)):
                st, _ = ctl.post(f"/api/v1/compute/{cid}/suspend", {"mode": mode})
                assert st == 200
                time.sleep(CACHE_TTL_S + 0.2)   # let the proxy's cached address expire
                out.append(connect_select1(ngx.port, user, pw, "bench"))
        print(f"(3) wake through nginx, connect + auth + SELECT 1 ({WAKES} each):")
        report("from stopped", stopped)
        report("from frozen", frozen)
        print("  targets: p50 <= 100 ms from stopped, <= 5 ms from frozen")
        assert not ngx.alerts(), ngx.alerts()
    finally:
        p.stop()


if __name__ == "__main__":
    main()
