"""Fixtures of the Kubernetes tests: everything tests/containers/conftest.py
offers (podman with the tests' CONTAINERS_CONF, the compute image, procs,
run_dir ...), loaded the way that file loads tests/e2e/conftest.py, and the
fake API server (fake_apiserver.py)."""
import importlib.util
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CONTAINERS = os.path.join(HERE, "..", "containers")
sys.path.insert(0, HERE)
_spec = importlib.util.spec_from_file_location("smdb_containers_conftest", os.path.join(CONTAINERS, "conftest.py"))
_containers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_containers)
globals().update({k: v for k, v in vars(_containers).items() if not k.startswith("__")})

import fake_apiserver  # noqa: E402


@pytest.fixture
def podman_network():
    """A bridge network of the run's own (labelled with its prefix)."""
    if not _containers.have_podman():
        pytest.skip("podman is not installed or not root (make deps)")
    name = f"{_containers.PREFIX}-k8s"
    _containers.podman("network", "rm", "-f", name, check=False)
    _containers.podman("network", "create", "--label", "smdb.prefix=" + _containers.PREFIX, name)
    yield name
    _containers.podman("network", "rm", "-f", name, check=False)


@pytest.fixture
def fake_k8s(procs, run_dir):
    """The fake API server without a kubelet: pods stay Pending."""
    f = fake_apiserver.FakeApiserver(procs, run_dir, kubelet="none").start()
    yield f
    f.stop()


@pytest.fixture
def fake_k8s_podman(procs, run_dir, podman_network):
    """The fake API server whose pods are podman containers."""
    f = fake_apiserver.FakeApiserver(procs, run_dir, kubelet="podman", network=podman_network,
                                     prefix=_containers.PREFIX).start()
    yield f
    f.stop()
