"""The FAKE Kubernetes API server (tests/k8s/fake-apiserver, node.js) as a
test fixture: a generated bearer token and control token, a self-signed
certificate (openssl CLI) the client verifies as its CA file, an audit file,
a free port.  Started and stopped by PID through a Procs-like object
(tests/e2e/conftest.py).  stop() removes every podman object carrying its
prefix (label smdb.prefix=<prefix>).

    f = FakeApiserver(procs, run_dir, namespace="smdb", kubelet="podman",
                      network="net", prefix="smdbt1234").start()
    st, doc, headers = f.request("POST", f.ns_path("secrets"), body)
    for ev in f.watch(f.ns_path("pods") + "?watch=1&resourceVersion=N"): ...
    f.calls(); f.fault("GET", "/secrets", 500, count=2); f.expire_watch()
    f.rbac_violations(role)  # calls a Role manifest would not allow
"""
import http.client
import json
import os
import random
import shutil
import socket
import ssl
import subprocess
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
SERVER_JS = os.path.join(HERE, "fake-apiserver", "server.js")
NODE_PATH = os.path.join(ROOT, "build", "npm", "node_modules")
CONTAINERS_CONF = os.path.join(ROOT, "tests", "containers", "containers.conf")


def _free_port():
    for _ in range(200):
        port = random.randint(20000, 30000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def _stop_proc(proc, grace=5.0):
    """SIGTERM, then SIGKILL after grace seconds (by PID, reaped)."""
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, 15)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, 9)
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass


def have_kubernetes_models():
    return os.path.isdir(os.path.join(NODE_PATH, "kubernetes-models"))


class FakeApiserver:
    def __init__(self, procs, run_dir, namespace="smdb", kubelet="podman", network="podman",
                 prefix=None, tls=True, name="fake-apiserver"):
        if not have_kubernetes_models():
            raise RuntimeError(f"kubernetes-models is not in {NODE_PATH}: "
                               "npm install --prefix build/npm kubernetes-models@4 (scripts/install-deps.sh)")
        self.procs = procs
        self.name = name
        self.dir = os.path.join(run_dir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.namespace = namespace
        self.kubelet = kubelet
        self.network = network
        self.prefix = prefix or "fakek8s%x" % (os.getpid() & 0xffffff)
        self.tls = tls
        self.port = _free_port()
        self.token = "fake-k8s-" + os.urandom(12).hex()
        self.control_token = "fake-k8s-control-" + os.urandom(12).hex()
        self.token_file = self._write("token", self.token)
        self.control_token_file = self._write("control-token", self.control_token)
        self.audit_file = os.path.join(self.dir, "audit.jsonl")
        self.state_dir = os.path.join(self.dir, "state")
        self.cert = os.path.join(self.dir, "tls.crt")
        self.key = os.path.join(self.dir, "tls.key")
        self.ca_file = self.cert
        self.proc = None
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"

    def _write(self, name, text):
        path = os.path.join(self.dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        return path

    def make_cert(self):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", self.key, "-out", self.cert, "-days", "2",
                        "-subj", "/CN=fake-apiserver (a test fake, not Kubernetes)",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       check=True, capture_output=True, timeout=30)

    def argv(self):
        a = ["node", SERVER_JS, "--namespace", self.namespace, "--listen", f"127.0.0.1:{self.port}",
             "--token-file", self.token_file, "--control-token-file", self.control_token_file,
             "--audit", self.audit_file, "--kubelet", self.kubelet, "--podman-prefix", self.prefix,
             "--podman-network", self.network, "--state-dir", self.state_dir,
             "--containers-conf", CONTAINERS_CONF]
        a += ["--cert", self.cert, "--key", self.key] if self.tls else ["--insecure-http"]
        return a

    def start(self):
        os.makedirs(self.state_dir, exist_ok=True)
        if self.tls:
            self.make_cert()
        env = dict(os.environ, NODE_PATH=NODE_PATH, CONTAINERS_CONF=CONTAINERS_CONF)
        self.proc = self.procs.start(self.name, self.argv(), env=env)
        end = time.time() + 15
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("fake-apiserver exited: " + self.log())
            try:
                if self.request("GET", "/healthz", token=None)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError("fake-apiserver not answering: " + self.log())

    def log(self):
        try:
            with open(os.path.join(os.path.dirname(self.dir), f"{self.name}.log")) as f:
                return f.read()[-6000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc:
            _stop_proc(self.proc)
        self.proc = None
        if self.kubelet == "podman":
            self.cleanup_podman()

    def podman(self, *args, check=False, timeout=120):
        env = dict(os.environ, CONTAINERS_CONF=CONTAINERS_CONF)
        r = subprocess.run(["podman", *args], env=env, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)}: {r.stderr[-2000:]}")
        return r

    def cleanup_podman(self):
        """Every container and volume labelled with this fake's prefix."""
        label = "label=smdb.prefix=" + self.prefix
        ids = self.podman("ps", "-aq", "--filter", label).stdout.split()
        if ids:
            self.podman("rm", "-f", "-t", "1", *ids)
        vols = self.podman("volume", "ls", "-q", "--filter", label).stdout.split()
        if vols:
            self.podman("volume", "rm", "-f", *vols)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    # ------------------------------------------------------------ names
    def container_name(self, pod):
        return f"{self.prefix}-{self.namespace}-{pod}"

    def volume_name(self, pvc):
        return f"{self.prefix}-{self.namespace}-{pvc}"

    def ns_path(self, resource, name=None, sub=None, group=None):
        base = f"/apis/{group}/namespaces/{self.namespace}" if group else f"/api/v1/namespaces/{self.namespace}"
        p = f"{base}/{resource}"
        if name:
            p += "/" + name
        if sub:
            p += "/" + sub
        return p

    def sts_path(self, name=None, sub=None):
        return self.ns_path("statefulsets", name, sub, group="apps/v1")

    # ------------------------------------------------------------ HTTP
    def _conn(self, timeout):
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.ca_file)
            return http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=timeout)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, content_type="application/json", token="default",
                headers=None, timeout=30):
        """(status, parsed body, headers)."""
        if token == "default":
            token = self.token
        h = dict(headers or {})
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            if isinstance(data, str):
                data = data.encode()
            h["Content-Type"] = content_type
        if token:
            h["Authorization"] = "Bearer " + token
        c = self._conn(timeout)
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            raw = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
        finally:
            c.close()
        try:
            doc = json.loads(raw) if raw and hdrs.get("content-type", "").startswith("application/json") else raw.decode()
        except ValueError:
            doc = raw.decode(errors="replace")
        return r.status, doc, hdrs

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def must(self, method, path, body=None, expect=(200, 201), **kw):
        st, doc, _ = self.request(method, path, body, **kw)
        if st not in ((expect,) if isinstance(expect, int) else expect):
            raise AssertionError(f"{method} {path}: {st} {doc}")
        return doc

    def watch(self, path, timeout=60):
        """Yields the events of a watch (parsed JSON lines) until the server
        ends the stream; a socket timeout ends it too (TimeoutError)."""
        c = self._conn(timeout)
        c.request("GET", path, headers={"Authorization": "Bearer " + self.token})
        r = c.getresponse()
        if r.status != 200:
            raw = r.read()
            c.close()
            raise WatchHTTPError(r.status, json.loads(raw) if raw else None)
        try:
            while True:
                line = r.readline()
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)
        finally:
            c.close()

    def wait_event(self, events, pred, timeout=120):
        """The first event of an iterator from watch() that pred accepts."""
        end = time.time() + timeout
        for ev in events:
            if pred(ev):
                return ev
            if time.time() > end:
                break
        raise TimeoutError("no such watch event")

    # ------------------------------------------------------------ control
    def control(self, method, path, body=None):
        st, doc, _ = self.request(method, path, body, token=self.control_token)
        if st >= 300:
            raise RuntimeError(f"control {method} {path}: {st} {doc}")
        return doc

    def fault(self, method, path, status=500, count=1, **kw):
        """The next `count` requests whose method matches `method` and whose
        URL (path and query) matches the regex `path` get `status` (count -1:
        all of them).  kw: action ("status", "reset", "delay"), delayMs,
        reason, message, retryAfter."""
        body = {"method": method, "path": path, "status": status, "count": count}
        body.update(kw)
        return self.control("POST", "/fake/faults", body)

    def clear_faults(self):
        return self.control("DELETE", "/fake/faults")

    def expire_watch(self, close_watches=True, as_http=False):
        """Every resourceVersion known so far becomes too old: the next watch
        from one gets 410 (an ERROR event, or HTTP 410 with as_http)."""
        return self.control("POST", "/fake/watch/expire", {"closeWatches": close_watches, "as": "http" if as_http else "event"})

    def state(self):
        return self.control("GET", "/fake/state")

    # ------------------------------------------------------------ audit
    def calls(self):
        """The audit records: verb, apiGroup, resource, subresource,
        namespace, name (of the URL; objectName: the name a create got),
        code, method, path, query, user, fault."""
        out = []
        try:
            with open(self.audit_file) as f:
                for line in f:
                    if line.strip():
                        out.append(json.loads(line))
        except FileNotFoundError:
            pass
        return out

    def rbac_violations(self, role, calls=None):
        """Authenticated resource calls a Role (a parsed rbac.authorization.k8s.io/v1
        Role manifest) does not allow."""
        bad = []
        for c in calls if calls is not None else self.calls():
            if c.get("user") != "fake-client" or "resource" not in c or c.get("fault"):
                continue
            res = c["resource"] + ("/" + c["subresource"] if c.get("subresource") else "")
            ok = False
            for rule in role.get("rules", []):
                groups, resources, verbs = rule.get("apiGroups", []), rule.get("resources", []), rule.get("verbs", [])
                names = rule.get("resourceNames")
                if ("*" in groups or c["apiGroup"] in groups) and ("*" in resources or res in resources) \
                        and ("*" in verbs or c["verb"] in verbs) and (not names or (c.get("name") and c["name"] in names)):
                    ok = True
                    break
            if not ok:
                bad.append(c)
        return bad


class WatchHTTPError(Exception):
    def __init__(self, status, doc):
        super().__init__(f"watch: HTTP {status}: {doc}")
        self.status = status
        self.doc = doc
