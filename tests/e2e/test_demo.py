"""`make demo` works: the demo script starts the whole platform (redis,
PostgreSQL, controller, nginx + module), a `mariadb` client connects through
nginx and wakes the suspended demo project, and everything is stopped."""
import os
import shutil
import subprocess
import tempfile

from conftest import ROOT


def test_demo_check():
    # pytest's tmp dirs are root-only, as a checkout under /root may be:
    # the demo must cope (PostgreSQL runs as user postgres)
    base = tempfile.mkdtemp(prefix="smdb-demo-test-")
    os.chmod(base, 0o700)
    try:
        run_demo(os.path.join(base, "demo"))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def run_demo(demo_dir):
    env = dict(os.environ, SMDB_DEMO_DIR=demo_dir)
    out = subprocess.run([os.path.join(ROOT, "scripts", "demo.sh"), "--check"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "mariadb -h 127.0.0.1 -P" in out.stdout
    assert "SELECT 40 + 2 = 42" in out.stdout
    # nothing it started is left running
    left = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    if demo_dir.encode() in f.read():
                        left.append(d)
            except OSError:
                pass
    assert left == [], left
