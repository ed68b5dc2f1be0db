"""A real nginx with ngx_stream_wake_module, for the end-to-end tests.

    from nginx_fixture import start_nginx
    ngx = start_nginx(procs, run_dir, controller, cache_ttl="2s")
    mysql(ngx.port, user, password, database=project)

Keyword arguments become `wake_<name> <value>;` lines in the server block
(`route="database user"` -> `wake_route database user;`).  A few are not
wake directives: `proxy_protocol` (default True), `workers` (default 2),
`extra` (raw lines for the server block), `stream_extra` (raw lines for the
stream block), `servers_extra` (raw server blocks after the wake server,
"@PORT@" standing for its port).  `controller` is a conftest Controller, or an "host:port"
string (then pass `token=`) for a controller that may not be running.
"""
import os
import re
import signal
import socket
import subprocess
import time

from conftest import BUILD, Procs, free_port, pid_alive, wait_port

MODULE_SO = os.environ.get("WAKE_MODULE_SO",
                           os.path.join(BUILD, "ngx_stream_wake_module.so"))
STREAM_SO = "/usr/lib/nginx/modules/ngx_stream_module.so"
NGINX_BIN = "/usr/sbin/nginx"

LOG_FORMAT = ("$remote_addr project=$wake_project user=$wake_user "
              "upstream=$wake_upstream compute=$wake_compute "
              "cold=$wake_cold_start wake_ms=$wake_time "
              "id=$wake_connection_id thread=$wake_thread_id "
              "status=$status bytes=$bytes_received/$bytes_sent")

# the per-session transfer records for billing (docs/billing.md), sent to
# the controller's authenticated unix socket (syslog_listen = unix:PATH)
BILLING_LOG_FORMAT = ("log_format smdb_billing 'smdb1 $wake_project $wake_compute $pid "
                      "$connection $msec $session_time $bytes_received $bytes_sent';")


def billing_log(socket_path):
    """stream_extra lines that send the billing records to socket_path."""
    return (f"    {BILLING_LOG_FORMAT}\n"
            f"    access_log syslog:server=unix:{socket_path},tag=smdb,nohostname "
            "smdb_billing;\n")


NOT_WAKE = {"proxy_protocol", "workers", "extra", "stream_extra", "servers_extra",
            "token"}


class Nginx:
    def __init__(self, procs, run_dir, port, conf, proc):
        self.procs = procs
        self.run_dir = run_dir
        self.port = port
        self.conf = conf
        self.proc = proc
        self.error_log = os.path.join(run_dir, "nginx-error.log")
        self.access_log = os.path.join(run_dir, "nginx-access.log")
        self.skip = 0

    # logs

    def errors(self):
        try:
            with open(self.error_log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def access(self):
        """Access log lines as dicts (key=value fields), without the line of
        start_nginx's own readiness probe."""
        try:
            with open(self.access_log, errors="replace") as f:
                lines = f.read().splitlines()[self.skip:]
        except OSError:
            return []
        out = []
        for line in lines:
            d = dict(re.findall(r"(\w+)=(\S*)", line))
            d["line"] = line
            out.append(d)
        return out

    def wait_access(self, n, timeout=10.0):
        """Wait until the access log has at least n lines (logged at close)."""
        end = time.time() + timeout
        while time.time() < end:
            lines = self.access()
            if len(lines) >= n:
                return lines
            time.sleep(0.02)
        raise TimeoutError(f"access log has {len(self.access())} lines, not {n}")

    def alerts(self):
        """[alert], [crit] and [emerg] lines, and worker crashes."""
        bad = []
        for line in self.errors().splitlines():
            if re.search(r"\[(alert|crit|emerg)\]", line) or \
               "exited on signal" in line:
                bad.append(line)
        return bad

    def worker_pids(self):
        pids = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().split(")")[-1].split()
                if int(fields[1]) != self.proc.pid:
                    continue
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    if b"worker process" in f.read():
                        pids.append(int(d))
            except (OSError, ValueError, IndexError):
                continue
        return sorted(pids)

    # control

    def alive(self):
        return self.proc.poll() is None and pid_alive(self.proc.pid)

    def reload(self):
        os.kill(self.proc.pid, signal.SIGHUP)

    def stop(self):
        Procs.stop_pid(self.proc.pid)
        try:
            self.proc.wait(timeout=10)
        except Exception:
            pass


def _controller_address(controller, directives):
    if isinstance(controller, str):
        return controller, directives.pop("token", "")
    return f"127.0.0.1:{controller.port}", controller.wake_token


def render_conf(run_dir, port, controller_addr, token, directives):
    d = dict(directives)
    proxy_protocol = d.pop("proxy_protocol", True)
    # None: the kernel picks (computes in containers, reached over a bridge)
    bind = d.pop("proxy_bind", "127.0.0.2")
    workers = d.pop("workers", 2)
    extra = d.pop("extra", "")
    stream_extra = d.pop("stream_extra", "")
    # after the wake server, so that it stays the address's default server;
    # "@PORT@" is its port
    servers_extra = d.pop("servers_extra", "").replace("@PORT@", str(port))
    d.pop("token", None)

    wake_lines = []
    for k, v in d.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = "on" if v else "off"
        wake_lines.append(f"        wake_{k} {v};")
    wake = "\n".join(wake_lines)

    return f"""# generated by tests/e2e/nginx_fixture.py
load_module {STREAM_SO};
load_module {MODULE_SO};

worker_processes {workers};
error_log {run_dir}/nginx-error.log info;
pid {run_dir}/nginx.pid;
worker_rlimit_nofile 8192;

events {{
    worker_connections 4096;
}}

stream {{
    log_format wake '{LOG_FORMAT}';
    access_log {run_dir}/nginx-access.log wake;
{stream_extra}
    server {{
        listen 127.0.0.1:{port};

        wake on;
        wake_controller {controller_addr};
        wake_token {token};
{wake}

        proxy_pass $wake_upstream;
        proxy_protocol {"on" if proxy_protocol else "off"};
        # computes take PROXY headers from this source address only
        {f"proxy_bind {bind};" if bind else "# no proxy_bind"}
        proxy_connect_timeout 5s;
        proxy_timeout 1h;
{extra}
    }}
{servers_extra}
}}
"""


def nginx_version():
    """The nginx binary's version as a tuple, e.g. (1, 22, 1)."""
    out = subprocess.run([NGINX_BIN, "-v"], capture_output=True, text=True)
    m = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out.stderr + out.stdout)
    return tuple(int(x) for x in m.groups()) if m else (0, 0, 0)


def _nginx_env():
    """WAKE_NGINX_PRELOAD (e.g. libasan.so) runs nginx with a sanitizer
    build of the module (WAKE_MODULE_SO); reports go to ASAN_OPTIONS'
    log_path."""
    preload = os.environ.get("WAKE_NGINX_PRELOAD")
    if not preload:
        return None
    env = dict(os.environ)
    env["LD_PRELOAD"] = preload
    env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
    return env


def start_nginx(procs, run_dir, controller, **directives):
    """Start nginx in the foreground (master + workers) on a free port."""
    port = free_port()
    addr, token = _controller_address(controller, directives)
    conf = os.path.join(run_dir, "nginx.conf")
    # it holds the wake token: readable by root (nginx's master) only
    if os.path.exists(conf):
        os.chmod(conf, 0o600)
    with open(os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(render_conf(run_dir, port, addr, token, directives))

    env = _nginx_env()
    test = procs.start("nginx-t", [NGINX_BIN, "-t", "-p", run_dir, "-c", conf,
                                   "-g", "daemon off; master_process on;"],
                       env=env)
    if test.wait(timeout=30) != 0:
        with open(os.path.join(run_dir, "nginx-t.log")) as f:
            raise RuntimeError("nginx -t failed:\n" + f.read())

    proc = procs.start("nginx", [NGINX_BIN, "-p", run_dir, "-c", conf,
                                 "-g", "daemon off; master_process on;"],
                       env=env)
    try:
        wait_port(port, timeout=10)
    except TimeoutError:
        with open(os.path.join(run_dir, "nginx.log")) as f:
            raise RuntimeError("nginx did not start:\n" + f.read())
    ngx = Nginx(procs, run_dir, port, conf, proc)
    ngx.wait_access(1)          # the probe's session is logged: skip it
    ngx.skip = 1
    return ngx


def raw_connect(port, timeout=10.0):
    """A plain socket to nginx, for hand-made handshakes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_packet(s):
    """One MySQL packet: (seq, payload); b'' payload and seq -1 on EOF."""
    hdr = b""
    while len(hdr) < 4:
        d = s.recv(4 - len(hdr))
        if not d:
            return -1, b""
        hdr += d
    n = int.from_bytes(hdr[:3], "little")
    payload = b""
    while len(payload) < n:
        d = s.recv(n - len(payload))
        if not d:
            return -1, b""
        payload += d
    return hdr[3], payload


def parse_err(payload):
    """(errno, sqlstate, message) of an ERR payload."""
    assert payload[:1] == b"\xff", payload
    code = int.from_bytes(payload[1:3], "little")
    state = payload[4:9].decode()
    return code, state, payload[9:].decode(errors="replace")
