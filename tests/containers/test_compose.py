"""docker-compose.yml for real: the README's two commands, `scripts/compose.sh
up` and `scripts/compose.sh down`, against podman's Docker Engine API (the
`engine` fixture's socket as DOCKER_HOST), with docker-compose 1.29.

`up` builds the images from the repository's Dockerfiles on the local Debian
base (SMDB_LOCAL_IMAGES=1: Redis and PostgreSQL too, docker-compose.local.yml)
tagged with the run's TAG; the compute image is the session's (compute_image,
SMDB_COMPUTE_IMAGE: its base is rebuilt every session, so a compose build of
it would only pile up build stages).  It starts Redis, PostgreSQL, the controller (docker
backend), nginx with the module and the one-shot demo, which prints the
mariadb command.  The test runs that very command (TLS verified against the
CA the secrets script made), watches the controller wake the demo's compute
container, suspends it through the API and wakes it again with a plain-text
client, checks that the transfer records reached billing, and then `down`
must leave nothing of the project: no container (the computes the controller
made included), volume or network.

Every name is the run's: compose project and docker_prefix PREFIX, network
PREFIX-net on a /24 nobody uses, host ports from free_port().  Teardown
removes all of it even when the test failed, and the images built with TAG.
"""
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import urllib.parse
import urllib.request

import pytest

from conftest import PREFIX, TAG, ROOT, free_port, wait_for

COMPOSE = os.path.join(ROOT, "scripts", "compose.sh")
# built by compose with the run's TAG (the compute image is the session's
# compute_image fixture, removed with the session)
IMAGES = ["smdb-controller", "smdb-nginx", "smdb-redis", "smdb-postgres"]


def free_subnet(engine):
    """Three octets of a /24 that no network of the engine overlaps."""
    _, nets = engine.api("GET", "/networks")
    used = set()
    for n in nets or []:
        for c in (n.get("IPAM") or {}).get("Config") or []:
            parts = (c.get("Subnet") or "").split(".")
            if len(parts) == 4:
                used.add(tuple(parts[:2]))
                used.add(tuple(parts[:3]))
    for _ in range(200):
        a, b = random.randint(200, 250), random.randint(0, 255)
        if ("10", str(a)) not in used:
            return f"10.{a}.{b}"
    raise RuntimeError("no free subnet")


class Compose:
    def __init__(self, engine, base_images, compute_image, run_dir):
        self.engine = engine
        self.dir = os.path.join(run_dir, "compose")
        self.port = free_port()
        self.api_port = free_port()
        while self.api_port == self.port:
            self.api_port = free_port()
        self.env = dict(os.environ)
        self.env.update({
            "DOCKER_HOST": "unix://" + engine.socket,
            "COMPOSE_PROJECT_NAME": PREFIX,
            "SMDB_LOCAL_IMAGES": "1",
            "SMDB_DEBIAN": base_images["debian"],
            "SMDB_COMPUTE_IMAGE": compute_image,
            "SMDB_TAG": TAG,
            "SMDB_PORT": str(self.port),
            "SMDB_API_PORT": str(self.api_port),
            "SMDB_DOCKER_PREFIX": PREFIX,
            "SMDB_NETWORK": PREFIX + "-net",
            "SMDB_SUBNET_PREFIX": free_subnet(engine),
            "SMDB_COMPOSE_DIR": self.dir,
        })

    def run(self, *args, timeout=600, check=True):
        r = subprocess.run([COMPOSE, *args], env=self.env, capture_output=True, text=True,
                           timeout=timeout, cwd=ROOT)
        if check and r.returncode != 0:
            logs = self.run("logs", "--no-color", "--tail=60", check=False, timeout=60)
            raise AssertionError(f"compose.sh {' '.join(args)}: rc {r.returncode}\n"
                                 f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}\n--- logs\n"
                                 f"{logs.stdout[-6000:]}")
        return r

    def api(self, method, path, body=None):
        with open(os.path.join(self.dir, "api_token")) as f:
            token = f.readline().strip()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}{path}", method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def objects(self):
        """What the engine still holds of this project (compose's label) and
        of its controller (the backend's label): {kind: [names]}."""
        left = {}
        for label in ("com.docker.compose.project=" + PREFIX, "smdb.prefix=" + PREFIX):
            f = urllib.parse.quote(json.dumps({"label": [label]}))
            _, cs = self.engine.api("GET", f"/containers/json?all=true&filters={f}")
            _, vs = self.engine.api("GET", f"/volumes?filters={f}")
            _, ns = self.engine.api("GET", f"/networks?filters={f}")
            left.setdefault("containers", []).extend(c["Names"][0] for c in cs or [])
            left.setdefault("volumes", []).extend(v["Name"] for v in (vs or {}).get("Volumes") or [])
            left.setdefault("networks", []).extend(n["Name"] for n in ns or [])
        # the computes' network by name (compose labels it; be sure)
        st, _ = self.engine.api("GET", f"/networks/{PREFIX}-net", check=False)
        if st == 200:
            left["networks"].append(PREFIX + "-net")
        return {k: sorted(set(v)) for k, v in left.items() if v}

    def force_cleanup(self):
        """Whatever `down` left (it failed, or the test did before it)."""
        self.run("down", check=False, timeout=300)
        left = self.objects()
        for c in left.get("containers", []):
            self.engine.api("DELETE", f"/containers/{c.lstrip('/')}?force=true&v=true", check=False)
        for v in left.get("volumes", []):
            self.engine.api("DELETE", f"/volumes/{v}?force=true", check=False)
        for n in left.get("networks", []):
            self.engine.api("DELETE", f"/networks/{n}", check=False)
        for image in IMAGES:
            self.engine.api("DELETE", f"/images/{image}:{TAG}?force=true", check=False)


@pytest.fixture
def compose(engine, base_images, compute_image, run_dir):
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (make deps)")
    # the controller runs as an unprivileged user in its container and
    # reaches the engine through the socket's group (podman makes it 0600)
    os.chmod(engine.socket, 0o660)
    c = Compose(engine, base_images, compute_image, run_dir)
    yield c
    c.force_cleanup()


def mariadb(argv, sql):
    r = subprocess.run([*argv, "-N", "-B", "-e", sql], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (argv, r.stderr)
    return r.stdout.strip()


def test_compose_up_connect_wake_down(compose):
    c = compose
    up = c.run("up", timeout=1800)

    # the demo printed exactly one command; it is what a user types
    cmds = [l.strip() for l in up.stdout.splitlines() if l.strip().startswith("mariadb ")]
    assert len(cmds) == 1, (up.stdout, up.stderr[-3000:])
    argv = shlex.split(cmds[0])
    m = re.fullmatch(r"mariadb -h 127\.0\.0\.1 -P (\d+) --ssl-ca=(\S+) --ssl-verify-server-cert "
                     r"-u admin -p'([A-Za-z0-9]+)' demo", cmds[0])
    assert m, cmds[0]
    assert int(m.group(1)) == c.port and m.group(2) == os.path.join(c.dir, "ca.pem")
    password = m.group(3)

    # the demo's compute: a container the controller made, suspended (stopped)
    st, project = c.api("GET", "/api/v1/projects/demo")
    assert st == 200, project
    cid = project["compute_id"]
    name = f"{PREFIX}-{cid}"

    def state():
        st, doc = c.api("GET", f"/api/v1/compute/{cid}")
        assert st == 200, doc
        return doc["state"]

    wait_for(lambda: state() == "suspended", timeout=30, what="the demo compute suspended")
    ctr = c.engine.inspect(name)
    assert ctr is not None and not ctr["State"]["Running"], ctr and ctr["State"]
    assert ctr["Config"]["Labels"].get("smdb.prefix") == PREFIX

    # the printed command wakes it: TLS through nginx, verified against the CA
    assert mariadb(argv, "SELECT 40 + 2") == "42"
    assert state() == "running"
    ctr = c.engine.inspect(name)
    assert ctr["State"]["Running"]
    assert PREFIX + "-net" in ctr["NetworkSettings"]["Networks"]
    # the client's leg is TLS (nginx ends it; the compute leg is plain)
    assert re.search(r"SSL:\s+Cipher in use is \S+", mariadb(argv, "status")), "no TLS"

    # data, then a stop through the API, then a plain-text client wakes it
    plain = ["mariadb", "-h", "127.0.0.1", "-P", str(c.port), "--skip-ssl",
             "-u", "admin", "-p" + password, "demo"]
    mariadb(plain, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)); "
                   "INSERT INTO t VALUES (1, 'kept')")
    # with the drain (the default): a container's address changes at every
    # start, so nginx must not hold the old one in its cache at the next wake
    st, doc = c.api("POST", f"/api/v1/compute/{cid}/suspend", {"mode": "stop"})
    assert st == 200, doc
    wait_for(lambda: state() == "suspended", timeout=60, what="the compute stopped")
    assert not c.engine.inspect(name)["State"]["Running"]
    assert mariadb(plain, "SELECT v FROM t WHERE id = 1") == "kept"
    assert c.engine.inspect(name)["State"]["Running"]

    # nginx's transfer records reached the controller over the shared socket
    def billed():
        st, u = c.api("GET", "/api/v1/projects/demo/usage")
        return st == 200 and u["totals"]["bytes_in"] > 0 and u["totals"]["bytes_out"] > 0
    wait_for(billed, timeout=30, what="transfer bytes billed")

    # down: nothing of the project is left, computes included
    assert c.objects(), "the project's objects should exist before down"
    c.run("down", timeout=600)
    assert c.objects() == {}
    assert c.engine.inspect(name) is None
