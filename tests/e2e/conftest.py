"""Shared fixtures for the end-to-end tests.

Every test gets its own temporary run directory and its own loopback ports.
Every process a test starts is recorded by PID and stopped at teardown, even
when the test fails; computes that the controller started (they outlive the
controller on purpose) are found through their pid files under the run
directory and stopped too.
"""
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, "build")
CONTROLLER_BIN = os.path.join(BUILD, "smdb-controller")
CTL_BIN = os.path.join(BUILD, "smdbctl")
PLUGIN_SO = os.path.join(BUILD, "wake_activity.so")


def free_port():
    """A loopback port nobody listens on right now (random, away from
    ephemeral ports most servers pick, to avoid clashes with parallel runs)."""
    for _ in range(200):
        port = random.randint(20000, 30000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def free_port_range(n):
    """n consecutive free ports, for the controller's compute port pool."""
    for _ in range(100):
        base = random.randint(30000, 39000)
        ok = True
        for p in range(base, base + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base, base + n - 1
    raise RuntimeError("no free port range")


def wait_port(port, timeout=10.0, host="127.0.0.1"):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"port {port} not listening after {timeout}s")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class Procs:
    """Processes started by one test, stopped by PID at teardown."""

    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.procs = []
        self.cleanup_dirs = []

    def start(self, name, argv, env=None, **kw):
        log = open(os.path.join(self.run_dir, f"{name}.log"), "ab")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env=env,
                             start_new_session=True, **kw)
        log.close()
        self.procs.append((name, p))
        return p

    @staticmethod
    def thaw_cgroup(pid):
        """A process in a frozen cgroup v2 group handles no signal but
        SIGKILL: thaw its group first."""
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                for line in f:
                    if line.startswith("0::") and "/smdb/" in line:
                        root = "/sys/fs/cgroup/unified"
                        with open(root + line[3:].strip() + "/cgroup.freeze", "w") as g:
                            g.write("0")
        except OSError:
            pass

    @staticmethod
    def compute_cgroups(pid):
        """The smdb/<compute> cgroups (v2 freezer, v1 memory/cpu/cpuacct) of pid."""
        out = set()
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                for line in f:
                    _, ctls, path = line.rstrip("\n").split(":", 2)
                    if "/smdb/" not in path:
                        continue
                    if ctls == "":
                        out.add("/sys/fs/cgroup/unified" + path)
                    for c in ctls.split(","):
                        if c in ("memory", "cpu", "cpuacct"):
                            out.add(f"/sys/fs/cgroup/{c}" + path)
        except (OSError, ValueError):
            pass
        return out

    @staticmethod
    def stop_pid(pid, grace=5.0):
        if not pid_alive(pid):
            return
        Procs.thaw_cgroup(pid)
        try:
            os.kill(pid, signal.SIGCONT)  # a stopped process cannot exit
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        end = time.time() + grace
        while time.time() < end and pid_alive(pid):
            time.sleep(0.02)
        if pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def compute_pids(self):
        """mariadbd processes started under this run directory (their pid
        files), and any process whose command line names the run directory."""
        pids = set()
        for dirpath, _, files in os.walk(self.run_dir):
            for f in files:
                if f.endswith(".pid"):
                    try:
                        with open(os.path.join(dirpath, f)) as fh:
                            pids.add(int(fh.read().strip()))
                    except (OSError, ValueError):
                        pass
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/cmdline", "rb") as fh:
                    cmd = fh.read()
            except OSError:
                continue
            if self.run_dir.encode() in cmd:
                pids.add(int(d))
        pids.discard(os.getpid())
        return pids

    def stop_all(self):
        for name, p in reversed(self.procs):
            if p.poll() is None:
                self.stop_pid(p.pid)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        groups = set()
        for pid in self.compute_pids():
            groups |= self.compute_cgroups(pid)
            self.stop_pid(pid)
        for pid in self.compute_pids():
            self.stop_pid(pid, grace=1.0)
        # the computes' emptied groups (the controller removes them when it
        # stops a server itself; these servers were killed under it)
        for g in groups:
            try:
                os.rmdir(g)
            except OSError:
                pass
        for d in self.cleanup_dirs:
            shutil.rmtree(d, ignore_errors=True)


def pytest_configure(config):
    """Computes run as their own uids and must reach their datadirs under the
    run directories.  pytest's own base (/tmp/pytest-of-root) is reset to
    0700 by every pytest session that starts, so runs get a base of their
    own, which only this session touches (kept when a test failed)."""
    if not config.option.basetemp:
        base = tempfile.mkdtemp(prefix="smdb-e2e-", dir="/tmp")
        os.chmod(base, 0o711)
        config.option.basetemp = base
        config._smdb_basetemp = base


def pytest_sessionfinish(session, exitstatus):
    base = getattr(session.config, "_smdb_basetemp", None)
    if base and exitstatus == 0:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def run_dir(tmp_path):
    d = str(tmp_path)
    os.chmod(d, 0o755)
    # computes run as their own uids: they must be able to pass through
    # pytest's 0700 base directories to reach their datadirs (traverse only)
    p = os.path.dirname(d)
    while p not in ("/", "/tmp", ""):
        os.chmod(p, os.stat(p).st_mode | 0o111)
        p = os.path.dirname(p)
    return d


@pytest.fixture
def procs(run_dir):
    p = Procs(run_dir)
    yield p
    p.stop_all()


ACL_TEMPLATE = os.path.join(ROOT, "config", "redis-users.acl")


class Redis:
    """redis-server with the shipped ACL: `default` off, the controller's
    user limited to its keys and commands (config/redis-users.acl), plus an
    admin user for the tests' own redis-cli calls."""
    USER = "smdb"
    ADMIN = "smdb-test-admin"

    def __init__(self, procs, run_dir):
        self.procs = procs
        self.dir = os.path.join(run_dir, "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.proc = None
        self.password = os.urandom(16).hex()
        self.admin_password = os.urandom(16).hex()
        self.password_file = os.path.join(self.dir, "controller.password")
        self.aclfile = os.path.join(self.dir, "users.acl")
        # "always" for tests that kill -9 Redis and count on every answered write
        self.appendfsync = "everysec"
        self.write_password(self.password)
        with open(ACL_TEMPLATE) as f:
            acl = f.read()
        digest = hashlib.sha256(self.password.encode()).hexdigest()
        assert ">CHANGE-ME" in acl
        acl = acl.replace(">CHANGE-ME", "#" + digest)
        acl += f"user {self.ADMIN} on >{self.admin_password} ~* &* +@all\n"
        with open(self.aclfile, "w") as f:
            f.write(acl)

    def write_password(self, password):
        """The controller's password file (0600), read at every connect."""
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")

    def start(self):
        """Starts (or restarts: same port, same AOF directory) the server."""
        self.proc = self.procs.start("redis", [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", self.dir, "--appendonly", "yes", "--appendfsync", self.appendfsync,
            "--save", "", "--daemonize", "no", "--protected-mode", "yes",
            "--aclfile", self.aclfile])
        wait_port(self.port)
        return self

    def stop(self):
        Procs.stop_pid(self.proc.pid)

    def kill9(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def cli_argv(self, *args):
        return ["redis-cli", "-p", str(self.port), "--user", self.ADMIN,
                "--pass", self.admin_password, "--no-auth-warning", *args]

    def cli(self, *args):
        out = subprocess.run(self.cli_argv("--raw", *args),
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip()


@pytest.fixture
def redis(procs, run_dir):
    return Redis(procs, run_dir).start()


class Controller:
    """A real smdb-controller process with its own data directory."""

    def __init__(self, procs, run_dir, redis, **opts):
        self.procs = procs
        self.run_dir = run_dir
        self.redis = redis
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = "test-admin-token-" + os.urandom(6).hex()
        self.wake_token = "test-wake-token-" + os.urandom(6).hex()
        self.data_dir = os.path.join(run_dir, "computes")
        # unix socket paths are limited to 107 bytes: keep them short
        self.socket_dir = tempfile.mkdtemp(prefix="smdb-", dir="/tmp")
        procs.cleanup_dirs.append(self.socket_dir)
        lo, hi = free_port_range(40)
        self.opts = {
            "listen": f"127.0.0.1:{self.port}",
            "redis": f"127.0.0.1:{redis.port}",
            "redis_user": redis.USER,
            "redis_password_file": redis.password_file,
            "data_dir": self.data_dir,
            "api_token": self.token,
            "wake_token": self.wake_token,
            "compute_port_min": str(lo),
            "compute_port_max": str(hi),
            "scheduler_interval_ms": "200",
            # API suspends wait this long for proxies' cached addresses to expire
            "drain_wait_ms": "300",
            "socket_dir": self.socket_dir,
            "mycnf_template": os.path.join(ROOT, "config", "compute.cnf.in"),
        }
        if os.path.exists(PLUGIN_SO):
            self.opts["activity_plugin"] = PLUGIN_SO
        self.opts.update({k: str(v) for k, v in opts.items()})
        self.conf = os.path.join(run_dir, "controller.conf")
        self.proc = None

    def write_conf(self):
        # it holds the tokens: the controller refuses a file others can read
        if os.path.exists(self.conf):
            os.chmod(self.conf, 0o600)
        with open(os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            for k, v in self.opts.items():
                f.write(f"{k} = {v}\n")

    def start(self):
        self.write_conf()
        self.proc = self.procs.start("controller", [CONTROLLER_BIN, "--config", self.conf])
        end = time.time() + 15
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("controller exited: " + self.log_tail())
            try:
                st, _ = self.get("/healthz", token=None)
                if st == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.02)
        raise TimeoutError("controller not healthy: " + self.log_tail())

    def log_tail(self, n=4000):
        try:
            with open(os.path.join(self.run_dir, "controller.log")) as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def kill9(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        Procs.stop_pid(self.proc.pid)
        self.proc.wait()

    def request(self, method, path, body=None, token="default", headers=None, timeout=60):
        if token == "default":
            token = self.token
        data = None
        h = dict(headers or {})
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if token:
            h["Authorization"] = "Bearer " + token
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            raw = e.read()
            status = e.code
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = raw.decode(errors="replace")
        return status, doc

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body if body is not None else {}, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def create_project(self, name, **opts):
        body = {"id": name}
        body.update(opts)
        st, doc = self.post("/api/v1/projects", body)
        assert st == 201, (st, doc)
        return doc

    def wake(self, project, timeout=60):
        return self.get(f"/wake_compute?endpointish={project}", token=self.wake_token,
                        timeout=timeout)

    def compute(self, project):
        st, doc = self.get(f"/api/v1/projects/{project}")
        assert st == 200, (st, doc)
        st, c = self.get(f"/api/v1/compute/{doc['compute_id']}")
        assert st == 200, (st, c)
        return c


@pytest.fixture
def controller_factory(procs, run_dir, redis):
    def make(**opts):
        return Controller(procs, run_dir, redis, **opts)
    return make


@pytest.fixture
def controller(controller_factory):
    return controller_factory().start()


def mysql(port, user, password, database=None, host="127.0.0.1", **kw):
    import pymysql
    return pymysql.connect(host=host, port=port, user=user, password=password,
                           database=database, connect_timeout=30, autocommit=True, **kw)


def wait_for(pred, timeout=15, what="condition"):
    """Polls pred() until it returns something true; that value."""
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def report_token(controller, cid):
    """A compute's report token, from its my.cnf (as the plugin gets it)."""
    with open(os.path.join(controller.data_dir, cid, "my.cnf")) as f:
        for line in f:
            if line.startswith("loose-wake-activity-token"):
                return line.split("=", 1)[1].strip()
    raise AssertionError("no token in my.cnf")


@pytest.fixture
def pg(procs, run_dir):
    """A real PostgreSQL (the billing ledger)."""
    from pg_fixture import start_postgres
    p = start_postgres(procs, run_dir)
    yield p
    p.resume()
    p.stop()
