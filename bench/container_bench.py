"""Wake through nginx with the docker backend (podman's Engine API, compute
containers from images/compute) against the process backend, in one run
(issue 10).  Each sample: a client connects through nginx to a suspended
project and runs SELECT 1; the time until the answer.

  (a) process backend, stopped      (b) docker backend, stopped container
  (c) process backend, frozen       (d) docker backend, paused container

Needs root and podman (make deps); skipped with a message otherwise.
"""
import importlib.util
import os
import shutil
import sys
import time

from common import report

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
_spec = importlib.util.spec_from_file_location(
    "smdb_containers_conftest", os.path.join(ROOT, "tests", "containers", "conftest.py"))
ct = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ct)

from nginx_fixture import start_nginx  # noqa: E402

import pymysql  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "15"))


def through_nginx(port, user, pw, db):
    c = pymysql.connect(host="127.0.0.1", port=port, user=user, password=pw, database=db,
                        connect_timeout=60)
    try:
        cur = c.cursor()
        cur.execute("SELECT 1")
        assert cur.fetchone()[0] == 1
    finally:
        c.close()


def measure(ctl, ngx, name, mode, out):
    doc = ctl.project_doc
    cid = doc["compute_id"]
    st, body = ctl.post(f"/api/v1/compute/{cid}/suspend", {"mode": mode})
    assert st == 200, (st, body)
    t0 = time.monotonic()
    through_nginx(ngx.port, doc["admin_user"], doc["admin_password"], name)
    out.append((time.monotonic() - t0) * 1000)


def main():
    if shutil.which("podman") is None or os.geteuid() != 0:
        print("container bench: needs root and podman (make deps); skipped")
        return
    run_dir = __import__("tempfile").mkdtemp(prefix="smdb-bench-ct-")
    os.chmod(run_dir, 0o755)
    procs = ct.Procs(run_dir)
    image = None
    try:
        r = __import__("subprocess").run([os.path.join(ROOT, "scripts", "container-base.sh")],
                                         env=ct.podman_env(), capture_output=True, text=True)
        debian = r.stdout.strip().splitlines()[-1]
        mariadb = ct.cached_build("images/mariadb/Dockerfile", "localhost/smdb-mariadb:bookworm",
                                  context=os.path.join(ROOT, "images", "mariadb"), DEBIAN=debian)
        image = ct.build_image("images/compute/Dockerfile", "localhost/smdb-compute:" + ct.TAG,
                               BASE=mariadb)
        engine = ct.Engine(procs, os.path.join(run_dir, "engine.sock")).start()
        common = {"freeze_after_s": "0", "idle_timeout_s": "3600"}

        # process backend
        pdir = os.path.join(run_dir, "p")
        os.makedirs(pdir)
        os.chmod(pdir, 0o755)
        pctl = ct.Controller(procs, pdir, ct.Redis(procs, pdir).start(), **common).start()
        pngx = start_nginx(procs, pdir, pctl, cache_ttl="100ms")
        pctl.project_doc = pctl.create_project("benchp")

        # docker backend on its own network
        network = ct.PREFIX + "-bench"
        engine.api("POST", "/networks/create", {"Name": network, "Driver": "bridge",
                                                "Labels": {"smdb.prefix": ct.PREFIX}})
        gw = engine.api("GET", f"/networks/{network}")[1]["IPAM"]["Config"][0]["Gateway"]
        ddir = os.path.join(run_dir, "d")
        os.makedirs(ddir)
        os.chmod(ddir, 0o755)
        port = ct.free_port()
        dctl = ct.Controller(procs, ddir, ct.Redis(procs, ddir).start(), backend="docker",
                             docker_socket=engine.socket, docker_image=image,
                             docker_network=network, docker_prefix=ct.PREFIX,
                             listen=f"0.0.0.0:{port}", docker_report_url=f"http://{gw}:{port}",
                             docker_proxy_networks=f"{gw}/32", **common)
        dctl.port, dctl.url = port, f"http://127.0.0.1:{port}"
        dctl.start()
        dngx = start_nginx(procs, ddir, dctl, proxy_bind=None, cache_ttl="100ms")
        dctl.project_doc = dctl.create_project("benchd")

        a, b, c, d = [], [], [], []
        for _ in range(RUNS):
            measure(pctl, pngx, "benchp", "stop", a)
            measure(dctl, dngx, "benchd", "stop", b)
            measure(pctl, pngx, "benchp", "freeze", c)
            measure(dctl, dngx, "benchd", "freeze", d)
        print(f"wake through nginx + SELECT 1 ({RUNS} runs each, interleaved):")
        pa = report("(a) process backend, stopped", a)
        pb = report("(b) docker backend (podman), stopped", b)
        pc = report("(c) process backend, frozen (cgroup freezer)", c)
        pd = report("(d) docker backend (podman), paused", d)
        print(f"  ratio docker/process p50: stopped {pb / pa:.2f}x, frozen {pd / pc:.2f}x")
    finally:
        procs.stop_all()
        ct.cleanup_objects()
        if image:
            ct.podman("rmi", "-f", image, check=False)
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
