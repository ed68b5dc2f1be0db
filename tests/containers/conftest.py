"""Fixtures of the container tests: a real podman serving the Docker Engine
API on a socket of its own, the images built from the repository's
Dockerfiles, and everything the e2e fixtures offer (tests/e2e/conftest.py:
redis, controller, procs ...).

Nothing is pulled from a registry: the Debian base is built once per machine
(scripts/container-base.sh) and every image is built from it.  Every
container, volume and network a test makes carries the run's prefix and is
removed at teardown, even when the test failed; images built with the run's
tag are removed when the session ends (the base images and the build cache
stay, so the next run builds in seconds).
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
E2E = os.path.join(HERE, "..", "e2e")
sys.path.insert(0, E2E)
_spec = importlib.util.spec_from_file_location("smdb_e2e_conftest", os.path.join(E2E, "conftest.py"))
_e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_e2e)
globals().update({k: v for k, v in vars(_e2e).items() if not k.startswith("__")})

ROOT = _e2e.ROOT
CONF = os.path.join(HERE, "containers.conf")
RUN_ID = "%x" % (os.getpid() & 0xffffff)
PREFIX = "smdbt" + RUN_ID            # names and labels of this run's objects
TAG = "test-" + RUN_ID               # tag of this run's images


def podman_env():
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = CONF
    return env


def podman(*args, check=True, timeout=600, **kw):
    r = subprocess.run(["podman", *args], env=podman_env(), capture_output=True,
                       text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: {r.stderr[-3000:]}")
    return r


def have_podman():
    return shutil.which("podman") is not None and os.geteuid() == 0


class Engine:
    """`podman system service` on a unix socket: the Docker Engine API the
    controller's docker backend talks to.  Started and stopped by PID."""

    def __init__(self, procs, path):
        self.procs = procs
        self.socket = path
        self.proc = None

    def start(self):
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        self.proc = self.procs.start("podman-service", [
            "env", "CONTAINERS_CONF=" + CONF, "podman", "system", "service",
            "--time=0", "unix://" + self.socket])
        end = time.time() + 20
        while time.time() < end:
            if self.api("GET", "/_ping", check=False)[0] == 200:
                return self
            time.sleep(0.05)
        raise TimeoutError("podman service did not answer on " + self.socket)

    def stop(self):
        if self.proc:
            _e2e.Procs.stop_pid(self.proc.pid)
            self.proc = None

    def api(self, method, path, body=None, check=True, timeout=60):
        """One Engine API call through curl; (status, parsed body)."""
        argv = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", str(timeout),
                "--unix-socket", self.socket, "-X", method, "http://d/v1.41" + path]
        if body is not None:
            argv += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 5)
        out, _, code = r.stdout.rpartition("\n")
        status = int(code) if code.isdigit() else 0
        try:
            doc = json.loads(out) if out.strip() else None
        except ValueError:
            doc = out
        if check and not 200 <= status < 300:
            raise RuntimeError(f"{method} {path}: {status} {doc}")
        return status, doc

    def containers(self, prefix=PREFIX):
        f = urllib.parse.quote(json.dumps({"label": ["smdb.prefix=" + prefix]}))
        return self.api("GET", f"/containers/json?all=true&filters={f}")[1] or []

    def inspect(self, name):
        st, doc = self.api("GET", f"/containers/{name}/json", check=False)
        return doc if st == 200 else None


def cleanup_objects(prefix=PREFIX):
    """Every container, volume and network labelled with the run's prefix
    (the backend labels everything it creates with its docker_prefix)."""
    label = "label=smdb.prefix=" + prefix
    ids = podman("ps", "-aq", "--filter", label, check=False).stdout.split()
    if ids:
        podman("rm", "-f", "-t", "1", *ids, check=False)
    vols = podman("volume", "ls", "-q", "--filter", label, check=False).stdout.split()
    if vols:
        podman("volume", "rm", "-f", *vols, check=False)
    nets = podman("network", "ls", "-q", "--filter", label, check=False).stdout.split()
    if nets:
        podman("network", "rm", "-f", *nets, check=False)


def build_image(dockerfile, tag, context=ROOT, **args):
    # --layers=false: no intermediate images are left behind (the base
    # images are the cache; a build on them takes seconds)
    argv = ["build", "-q", "--layers=false", "-f", os.path.join(ROOT, dockerfile), "-t", tag]
    for k, v in args.items():
        argv += ["--build-arg", f"{k}={v}"]
    podman(*argv, context, timeout=1800)
    return tag


def cached_build(dockerfile, tag, context, **args):
    """A base image built once per machine: rebuilt only when its Dockerfile
    or build arguments change (their hash is a label of the image); the
    image it replaces is removed, so nothing piles up."""
    import hashlib
    with open(os.path.join(ROOT, dockerfile), "rb") as f:
        h = hashlib.sha256(f.read() + json.dumps(args, sort_keys=True).encode()).hexdigest()[:16]
    r = podman("image", "inspect", "--format", '{{index .Labels "smdb.build-hash"}}|{{.Id}}',
               tag, check=False)
    have, _, old_id = r.stdout.strip().partition("|")
    if r.returncode == 0 and have == h:
        return tag
    argv = ["build", "-q", "--layers=false", "--label", "smdb.build-hash=" + h,
            "-f", os.path.join(ROOT, dockerfile), "-t", tag]
    for k, v in args.items():
        argv += ["--build-arg", f"{k}={v}"]
    podman(*argv, context, timeout=1800)
    if r.returncode == 0 and old_id:
        podman("rmi", old_id, check=False)
    return tag


@pytest.fixture(scope="session")
def base_images():
    """The local Debian base and the MariaDB server image built on it (what
    users get from debian:bookworm and mariadb:10.11)."""
    if not have_podman():
        pytest.skip("podman is not installed or not root (make deps)")
    r = subprocess.run([os.path.join(ROOT, "scripts", "container-base.sh"), "bookworm"],
                       env=podman_env(), capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError("container-base.sh: " + r.stderr[-3000:])
    debian = r.stdout.strip().splitlines()[-1]
    mariadb = cached_build("images/mariadb/Dockerfile", "localhost/smdb-mariadb:bookworm",
                           context=os.path.join(ROOT, "images", "mariadb"), DEBIAN=debian)
    return {"debian": debian, "mariadb": mariadb}


_built = []


@pytest.fixture(scope="session")
def compute_image_11_8(base_images):
    """The compute image on MariaDB 11.8 (Debian 13's server: what users get
    from mariadb:11.8)."""
    r = subprocess.run([os.path.join(ROOT, "scripts", "container-base.sh"), "trixie"],
                       env=podman_env(), capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError("container-base.sh trixie: " + r.stderr[-3000:])
    mariadb = cached_build("images/mariadb/Dockerfile", "localhost/smdb-mariadb:trixie",
                           context=os.path.join(ROOT, "images", "mariadb"),
                           DEBIAN=r.stdout.strip().splitlines()[-1])
    tag = build_image("images/compute/Dockerfile", "localhost/smdb-compute:11.8-" + TAG,
                      BASE=mariadb)
    _built.append(tag)
    return tag


@pytest.fixture(scope="session")
def compute_image(base_images):
    tag = build_image("images/compute/Dockerfile", "localhost/smdb-compute:" + TAG,
                      BASE=base_images["mariadb"])
    _built.append(tag)
    return tag


def netavark_chains_cleanup():
    """netavark leaves its port-forwarding chains once its last network is
    gone; with no container of anyone's running they hold nothing."""
    if podman("ps", "-q", check=False).stdout.strip():
        return
    for table in ("nat", "filter"):
        r = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True)
        chains = [l.split()[1] for l in r.stdout.splitlines()
                  if l.startswith("-N NETAVARK")]
        for l in r.stdout.splitlines():
            parts = l.split()
            if l.startswith("-A ") and "-j" in parts and parts[parts.index("-j") + 1] in chains \
                    and not parts[1].startswith("NETAVARK"):
                subprocess.run(["iptables", "-t", table, "-D", *parts[1:]], capture_output=True)
        for c in chains:
            subprocess.run(["iptables", "-t", table, "-F", c], capture_output=True)
        for c in chains:
            subprocess.run(["iptables", "-t", table, "-X", c], capture_output=True)


def pytest_sessionfinish(session, exitstatus):
    _e2e.pytest_sessionfinish(session, exitstatus)
    if have_podman():
        cleanup_objects()
        for tag in _built:
            podman("rmi", "-f", tag, check=False)
        if shutil.which("iptables"):
            netavark_chains_cleanup()


@pytest.fixture
def engine(procs, run_dir):
    if not have_podman():
        pytest.skip("podman is not installed or not root (make deps)")
    e = Engine(procs, os.path.join(run_dir, "engine.sock")).start()
    yield e
    cleanup_objects()
    e.stop()
