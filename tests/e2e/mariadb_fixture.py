"""A bare mariadbd for plugin tests and benchmarks.

Everything lives under the test's run directory: datadir, socket, pid file
and a plugin_dir that holds symlinks to the system plugins plus our
wake_activity.so (what the controller generates for a compute, too).  The
process is started through conftest's Procs, so it is stopped by PID at
teardown even when the test fails.

Root logs in over the unix socket with unix_socket authentication (the
tests run as root); test users are created over that socket.
"""
import os
import subprocess
import time

import pymysql

from conftest import BUILD, free_port

SYSTEM_PLUGIN_DIR = "/usr/lib/mysql/plugin"

# Statements PyMySQL runs by itself right after it logged in, which the plugin
# counts like any other: since 1.1 it always sends SET NAMES (Debian 13 ships
# 1.1.1; Debian 12's 1.0.2 sends nothing).
CONNECT_QUERIES = 1 if tuple(pymysql.VERSION[:2]) >= (1, 1) else 0
PLUGIN_SO = os.path.join(os.environ.get("BUILD", BUILD), "wake_activity.so")


def make_plugin_dir(path, plugin_so=PLUGIN_SO):
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(SYSTEM_PLUGIN_DIR):
        link = os.path.join(path, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join(SYSTEM_PLUGIN_DIR, name), link)
    link = os.path.join(path, "wake_activity.so")
    if not os.path.lexists(link):
        os.symlink(plugin_so, link)
    return path


class MariaDB:
    """One mariadbd.  `plugin` loads wake_activity at startup; `settings`
    are wake_activity_* options (without the prefix), passed with loose-
    like the compute's my.cnf does."""

    def __init__(self, procs, run_dir, name="mariadb", plugin=True, settings=None,
                 extra_args=()):
        if not os.path.exists(PLUGIN_SO):
            raise RuntimeError(f"{PLUGIN_SO} missing: run make -C mariadb_plugin all")
        self.procs = procs
        self.name = name
        self.dir = os.path.join(run_dir, name)
        self.datadir = os.path.join(self.dir, "data")
        self.plugin_dir = os.path.join(self.dir, "plugins")
        self.socket = os.path.join(self.dir, "mysqld.sock")
        self.pid_file = os.path.join(self.dir, "mysqld.pid")
        # a private tmpdir: internal temporary tables must not share /tmp with
        # whatever else runs (and cleans up) on this machine
        self.tmpdir = os.path.join(self.dir, "tmp")
        self.port = free_port()
        self.plugin = plugin
        self.settings = dict(settings or {})
        self.extra_args = list(extra_args)
        self.proc = None

    # -- lifecycle ---------------------------------------------------------

    def install(self):
        os.makedirs(self.dir, exist_ok=True)
        if os.path.isdir(os.path.join(self.datadir, "mysql")):
            return
        os.makedirs(self.tmpdir, exist_ok=True)
        out = subprocess.run(
            ["mariadb-install-db", "--no-defaults", "--auth-root-authentication-method=socket",
             f"--datadir={self.datadir}", "--user=root", "--skip-test-db",
             "--innodb-log-file-size=8M", f"--tmpdir={self.tmpdir}"],
            capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError("mariadb-install-db failed:\n" + out.stdout + out.stderr)

    def argv(self):
        args = [
            "mariadbd", "--no-defaults", "--user=root",
            f"--datadir={self.datadir}", f"--port={self.port}", f"--socket={self.socket}",
            f"--pid-file={self.pid_file}", f"--tmpdir={self.tmpdir}",
            "--bind-address=127.0.0.1", "--skip-log-bin",
            "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=8M",
            "--performance-schema=OFF", "--skip-name-resolve", "--max-connections=500",
            f"--plugin-dir={self.plugin_dir}",
        ]
        if self.plugin:
            args.append("--plugin-load-add=wake_activity.so")
        for k, v in self.settings.items():
            args.append(f"--loose-wake-activity-{k.replace('_', '-')}={v}")
        return args + self.extra_args

    def start(self, timeout=30):
        self.install()
        os.makedirs(self.tmpdir, exist_ok=True)
        make_plugin_dir(self.plugin_dir)
        self.proc = self.procs.start(self.name, self.argv())
        end = time.time() + timeout
        last = None
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mariadbd exited ({self.proc.returncode}):\n" + self.log_tail())
            try:
                self.root().close()
                return self
            except pymysql.err.OperationalError as e:
                last = e
                time.sleep(0.05)
        raise TimeoutError(f"mariadbd not ready: {last}\n" + self.log_tail())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.procs.stop_pid(self.proc.pid, grace=20)
            self.proc.wait(timeout=5)

    @property
    def pid(self):
        return self.proc.pid

    def log_tail(self, n=6000):
        try:
            with open(os.path.join(os.path.dirname(self.dir), f"{self.name}.log"),
                      errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    # -- clients -----------------------------------------------------------

    def root(self, **kw):
        """Admin session over the unix socket (unix_socket auth as root)."""
        return pymysql.connect(unix_socket=self.socket, user="root", autocommit=True,
                               connect_timeout=10, **kw)

    def client(self, user, password, **kw):
        """A client over TCP, as the proxy's sessions arrive."""
        return pymysql.connect(host="127.0.0.1", port=self.port, user=user, password=password,
                               autocommit=True, connect_timeout=10, **kw)

    def sql(self, query, args=None):
        with self.root() as c, c.cursor() as cur:
            cur.execute(query, args)
            return cur.fetchall()

    def create_user(self, user, password):
        self.sql(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (password,))
        self.sql(f"GRANT ALL ON *.* TO '{user}'@'%'")

    def status(self):
        """wake_activity status variables as {name: int}."""
        rows = self.sql("SHOW GLOBAL STATUS LIKE 'wake\\_activity\\_%'")
        return {k.lower(): int(v) for k, v in rows}

    def variables(self):
        rows = self.sql("SHOW GLOBAL VARIABLES LIKE 'wake\\_activity\\_%'")
        return {k.lower(): v for k, v in rows}

    def thread_count(self):
        return len(os.listdir(f"/proc/{self.pid}/task"))

    def thread_names(self):
        names = []
        for t in os.listdir(f"/proc/{self.pid}/task"):
            try:
                with open(f"/proc/{self.pid}/task/{t}/comm") as f:
                    names.append(f.read().strip())
            except OSError:
                pass
        return names


# -- where the plugin's reports go in these tests ---------------------------

import json  # noqa: E402
import threading  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402


class Report:
    def __init__(self, path, headers, body):
        self.at = time.time()
        self.path = path
        self.authorization = headers.get("Authorization")
        self.content_type = headers.get("Content-Type")
        self.raw = body
        self.doc = json.loads(body)


class ReportReceiver:
    """Stands in for the controller's activity endpoint.

    mode "ok": answer `status` (204) and record the report; "hang": accept
    and read the request, never answer (a black hole); down(): close the
    listening socket so connects are refused; up(): listen again on the
    same port."""

    def __init__(self, status=204):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.status = status
        self.mode = "ok"
        self.reports = []
        self.cond = threading.Condition()
        self.server = None
        self.thread = None

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver.mode == "hang":
                    end = time.time() + 30
                    while receiver.mode == "hang" and time.time() < end:
                        time.sleep(0.02)
                    self.close_connection = True
                    return
                with receiver.cond:
                    receiver.reports.append(Report(self.path, self.headers, body))
                    receiver.cond.notify_all()
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler

    def up(self):
        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def down(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def close(self):
        self.mode = "ok"
        self.down()

    def count(self):
        with self.cond:
            return len(self.reports)

    def wait_for(self, pred, timeout=10.0, start=0):
        """First report from index `start` on for which pred(doc) holds."""
        end = time.time() + timeout
        with self.cond:
            while True:
                for r in self.reports[start:]:
                    if pred(r.doc):
                        return r
                left = end - time.time()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def last(self):
        with self.cond:
            return self.reports[-1] if self.reports else None


# -- pytest fixtures for the plugin tests (import them into a test module) --

import pytest  # noqa: E402

CONTRACT_KEYS = {"compute_id", "seq", "connections", "connects", "failed_connects",
                 "disconnects", "queries", "last_activity_ms", "sent_at_ms", "uptime_s"}
# Optional: the server's own signals (docs/interfaces.md "Activity"), in
# every report once the plugin's local SQL session works; cpu_ms in all.
SERVER_KEYS = {"threads_running", "busy_sessions", "open_trx", "events", "bp_bytes",
               "bp_pages_total", "bp_pages_data", "bp_pages_free", "bp_read_requests",
               "bp_reads", "max_connections", "cpu_ms"}
COUNTER_KEYS = ("connections", "connects", "failed_connects", "disconnects", "queries",
                "last_activity_ms")


@pytest.fixture
def receiver():
    rx = ReportReceiver().up()
    yield rx
    rx.close()


@pytest.fixture
def compute_factory(procs, run_dir, receiver):
    """make(**settings) -> started MariaDB reporting to `receiver`.
    Defaults: a fresh compute id and token, interval 1 s."""
    def make(name="mariadb", plugin=True, extra_args=(), **settings):
        base = {"report_url": receiver.url,
                "compute_id": "p1-" + os.urandom(3).hex(),
                "token": "tok-" + os.urandom(12).hex(),
                "interval": 1}
        base.update(settings)
        base = {k: v for k, v in base.items() if v is not None}
        db = MariaDB(procs, run_dir, name=name, plugin=plugin, settings=base,
                     extra_args=extra_args)
        db.compute_id = base.get("compute_id")
        db.token = base.get("token")
        return db.start()
    return make


def counters_of(doc_or_status):
    """The counter fields of a report, or of status() output, as one dict."""
    d = doc_or_status
    if "wake_activity_connections" in d:
        return {k: d["wake_activity_" + k] for k in COUNTER_KEYS}
    return {k: d[k] for k in COUNTER_KEYS}
