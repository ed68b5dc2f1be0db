"""A real PostgreSQL server for the billing tests.

    from pg_fixture import start_postgres
    pg = start_postgres(procs, run_dir)
    controller_factory(pg_conninfo=pg.conninfo)
    pg.query("SELECT count(*) FROM usage_ledger")   # -> [["42"]]

initdb runs as the unprivileged `postgres` user (PostgreSQL refuses to run
as root), so the cluster lives in a short directory under /tmp that this
user can reach (pytest's run directories are under a 0700 root directory);
`run_dir/postgres` is a symlink to it and the server log is
`run_dir/postgres.log`.  The server is recorded by PID in conftest's Procs
and stopped at teardown; stop()/start() and pause()/resume() simulate an
outage and a hang.
"""
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

from conftest import Procs, free_port, pid_alive, wait_port

# The release's PostgreSQL: 15 on Debian 12, 17 on Debian 13.
PG_BIN = (sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                 key=lambda p: int(p.split("/")[-2]))
          or ["/usr/lib/postgresql/15/bin"])[-1]
PG_USER = "postgres"


def _as_pg():
    pw = pwd.getpwnam(PG_USER)
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"]


class Postgres:
    def __init__(self, procs, run_dir, dbname="smdb"):
        self.procs = procs
        self.run_dir = run_dir
        self.dbname = dbname
        self.port = free_port()
        # short: the unix socket path must fit in 107 bytes
        self.dir = tempfile.mkdtemp(prefix="smdb-pg-", dir="/tmp")
        procs.cleanup_dirs.append(self.dir)
        self.data = os.path.join(self.dir, "data")
        pw = pwd.getpwnam(PG_USER)
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o755)
        try:
            os.symlink(self.dir, os.path.join(run_dir, "postgres"))
        except OSError:
            pass
        self.proc = None
        self.conninfo = (f"host=127.0.0.1 port={self.port} dbname={dbname} user={PG_USER} "
                         "connect_timeout=3")

    def initdb(self):
        out = subprocess.run(_as_pg() + [f"{PG_BIN}/initdb", "-D", self.data, "-U", PG_USER,
                                         "-A", "trust", "-E", "UTF8", "--no-sync"],
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError("initdb failed:\n" + out.stdout + out.stderr)
        return self

    def start(self):
        self.proc = self.procs.start("postgres", _as_pg() + [
            f"{PG_BIN}/postgres", "-D", self.data, "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}",
            "-c", "fsync=off", "-c", "shared_buffers=32MB", "-c", "max_connections=50"])
        wait_port(self.port, timeout=30)
        end = time.time() + 30
        while True:
            r = self._psql("postgres", "SELECT 1", check=False)
            if r.returncode == 0:
                break
            if time.time() > end:
                raise RuntimeError("postgres not ready: " + r.stderr)
            time.sleep(0.05)
        return self

    def create_db(self):
        self._psql("postgres", f"CREATE DATABASE {self.dbname}")
        return self

    def _psql(self, db, sql, check=True):
        r = subprocess.run([f"{PG_BIN}/psql", "-h", "127.0.0.1", "-p", str(self.port),
                            "-U", PG_USER, "-d", db, "-X", "-q", "-At", "-F", "\t",
                            "-v", "ON_ERROR_STOP=1", "-c", sql],
                           capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError(f"psql failed: {sql}\n{r.stderr}")
        return r

    def query(self, sql):
        """Rows of a query, as lists of strings."""
        out = self._psql(self.dbname, sql).stdout
        return [line.split("\t") for line in out.splitlines() if line != ""]

    def execute_file(self, path):
        r = subprocess.run([f"{PG_BIN}/psql", "-h", "127.0.0.1", "-p", str(self.port),
                            "-U", PG_USER, "-d", self.dbname, "-X", "-q",
                            "-v", "ON_ERROR_STOP=1", "-f", path],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)

    def pids(self):
        """The postmaster and its children (all of them ours)."""
        out = [self.proc.pid]
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().split(")")[-1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == self.proc.pid:
                out.append(int(d))
        return out

    def stop(self):
        """Fast shutdown (SIGINT): clients are disconnected, nothing lost."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            Procs.stop_pid(self.proc.pid)
            self.proc.wait()

    def pause(self):
        """A hung server: every process stopped, connections stay open."""
        self._paused = self.pids()
        for pid in self._paused:
            os.kill(pid, signal.SIGSTOP)

    def resume(self):
        for pid in getattr(self, "_paused", []):
            if pid_alive(pid):
                os.kill(pid, signal.SIGCONT)
        self._paused = []


def start_postgres(procs, run_dir, dbname="smdb"):
    if not os.path.exists(f"{PG_BIN}/postgres") or shutil.which("setpriv") is None:
        raise RuntimeError(f"PostgreSQL server binaries ({PG_BIN}) or setpriv missing")
    return Postgres(procs, run_dir, dbname).initdb().start().create_db()
