"""Self-tests of the FAKE Kubernetes API server (tests/k8s/fake-apiserver):
the strictness the Kubernetes backend's tests count on (validation against
kubernetes-models' schemas, unknown fields, Status errors, resourceVersion
conflicts, auth), its watch and 410, faults and the audit, and pods realized
as podman containers of the compute image."""
import copy
import json
import time

import pytest

ADMIN_PW = "Fk8sAdminPassw0rd1234"


def secret(name="smdb-c1", **data):
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "labels": {"app": "smdb"}},
            "stringData": data or {"SMDB_ADMIN_PASSWORD": ADMIN_PW}}


def statefulset(name="c1", image="localhost/none:1", replicas=1, **spec):
    labels = {"app": "smdb-compute", "smdb.compute": name}
    s = {"apiVersion": "apps/v1", "kind": "StatefulSet",
         "metadata": {"name": name, "labels": {"app": "smdb-compute"}},
         "spec": {"replicas": replicas, "serviceName": "smdb-computes",
                  "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": dict(labels)},
                               "spec": {"terminationGracePeriodSeconds": 10,
                                        "securityContext": {"fsGroup": 4242},
                                        "containers": [{
                                            "name": "mariadb", "image": image,
                                            "env": [{"name": "SMDB_COMPUTE_ID", "value": name},
                                                    {"name": "SMDB_PORT", "value": "3306"},
                                                    {"name": "SMDB_ADMIN_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "smdb-" + name, "key": "SMDB_ADMIN_PASSWORD"}}}],
                                            "ports": [{"name": "mysql", "containerPort": 3306}],
                                            "readinessProbe": {"tcpSocket": {"port": "mysql"}, "periodSeconds": 1, "failureThreshold": 2},
                                            "resources": {"limits": {"memory": "512Mi", "cpu": "1"},
                                                          "requests": {"memory": "512Mi", "cpu": "1"}},
                                            "volumeMounts": [{"name": "data", "mountPath": "/var/lib/mysql"}]}]}},
                  "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                            "spec": {"accessModes": ["ReadWriteOnce"],
                                                     "resources": {"requests": {"storage": "1Gi"}}}}]}}
    s["spec"].update(spec)
    return s


def is_status(doc, code, reason=None):
    assert isinstance(doc, dict) and doc.get("kind") == "Status" and doc.get("apiVersion") == "v1", doc
    assert doc["status"] == "Failure" and doc["code"] == code, doc
    if reason:
        assert doc["reason"] == reason, doc
    return doc


# ------------------------------------------------------------------ basics

def test_says_it_is_fake_and_wants_a_token(fake_k8s):
    f = fake_k8s
    assert "THIS IS A FAKE" in f.log()
    st, doc, h = f.request("GET", f.ns_path("secrets"), token=None)
    assert st == 401 and h["x-fake-apiserver"] == "1"
    is_status(doc, 401, "Unauthorized")
    st, doc, _ = f.request("GET", f.ns_path("secrets"), token="wrong")
    assert st == 401
    st, doc, h = f.request("GET", f.ns_path("secrets"))
    assert st == 200 and doc["kind"] == "SecretList" and h["x-fake-apiserver"] == "1"
    assert f.get("/healthz", token=None)[0] == 200
    st, doc, _ = f.get("/version", token=None)
    assert doc["gitVersion"].endswith("-fake")
    # other namespaces are forbidden, unknown things are 404 Status
    st, doc, _ = f.get("/api/v1/namespaces/other/secrets")
    is_status(doc, 403, "Forbidden")
    st, doc, _ = f.get(f.ns_path("configmaps"))
    is_status(doc, 404, "NotFound")
    st, doc, _ = f.get("/nothing/here")
    is_status(doc, 404, "NotFound")
    st, doc, _ = f.request("POST", f.ns_path("pods"), {"apiVersion": "v1", "kind": "Pod"})
    is_status(doc, 405, "MethodNotAllowed")
    # discovery
    assert f.get("/api")[1]["versions"] == ["v1"]
    names = [g["name"] for g in f.get("/apis")[1]["groups"]]
    assert "apps" in names and "networking.k8s.io" in names
    res = [r["name"] for r in f.get("/apis/apps/v1")[1]["resources"]]
    assert "statefulsets/scale" in res


def test_https_verified_with_the_ca_file(fake_k8s):
    import ssl
    import http.client
    f = fake_k8s
    assert f.url.startswith("https://")
    c = http.client.HTTPSConnection("127.0.0.1", f.port, context=ssl.create_default_context(), timeout=5)
    with pytest.raises(ssl.SSLError):
        c.request("GET", "/healthz")
        c.getresponse()
    c.close()


@pytest.mark.parametrize("mutate,code,reason,needle", [
    # schema: required, types, enums, quantities, base64
    (lambda s: s["spec"].pop("selector"), 422, "Invalid", "spec.selector: Required value"),
    (lambda s: s["spec"]["template"]["spec"]["containers"][0].pop("name"), 422, "Invalid", "spec.template.spec.containers[0].name: Required value"),
    (lambda s: s["spec"].update(replicas="one"), 400, "BadRequest", ".spec.replicas of type integer"),
    (lambda s: s["spec"].update(replicas=2 ** 40), 400, "BadRequest", "int32"),
    (lambda s: s["spec"].update(podManagementPolicy="Sometimes"), 422, "Invalid", 'spec.podManagementPolicy: Unsupported value: "Sometimes"'),
    (lambda s: s["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"].update(memory="12XB"), 400, "BadRequest", "quantities must match"),
    (lambda s: s["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"].update(memory="1d"), 400, "BadRequest", "quantities must match"),
    # unknown fields, at any depth
    (lambda s: s["spec"].update(foo=1), 400, "BadRequest", ".spec.foo: field not declared in schema"),
    (lambda s: s["spec"]["template"]["spec"]["containers"][0].update(imagee="x"), 400, "BadRequest",
     'unknown field "spec.template.spec.containers[0].imagee"'),
    (lambda s: s["metadata"].update(lables={"a": "b"}), 400, "BadRequest", 'unknown field "metadata.lables"'),
    # envelope
    (lambda s: s.update(apiVersion="apps/v1beta1"), 400, "BadRequest", "does not match the expected API version"),
    (lambda s: s.update(kind="Deployment"), 400, "BadRequest", "does not match the expected kind"),
    (lambda s: s["metadata"].update(namespace="other"), 400, "BadRequest", "namespace of the provided object"),
    # semantics (422 like the API groups' validation)
    (lambda s: s["metadata"].update(name="Bad_Name"), 422, "Invalid", "metadata.name: Invalid value"),
    (lambda s: s["spec"]["template"]["metadata"]["labels"].update({"smdb.compute": "other"}), 422, "Invalid", "`selector` does not match template `labels`"),
    (lambda s: s["spec"].update(replicas=-1), 422, "Invalid", "spec.replicas: Invalid value: -1"),
    (lambda s: s["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0].update(name="nope"), 422, "Invalid", 'Not found: "nope"'),
    (lambda s: s["spec"]["template"]["spec"]["containers"][0].pop("image"), 422, "Invalid", "containers[0].image: Required value"),
    (lambda s: s["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"].update(memory="1Gi"), 422, "Invalid", "must be less than or equal to memory limit"),
    (lambda s: s["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "1BAD", "value": "x"}), 422, "Invalid", "environment variable name"),
    (lambda s: s["spec"]["template"]["spec"].update(restartPolicy="Never"), 422, "Invalid", 'Unsupported value: "Never"'),
    (lambda s: s["spec"]["volumeClaimTemplates"][0]["spec"].pop("accessModes"), 422, "Invalid", "at least 1 access mode is required"),
    (lambda s: s["spec"]["template"]["spec"]["containers"][0]["readinessProbe"].pop("tcpSocket"), 422, "Invalid", "must specify a handler type"),
])
def test_statefulset_validation(fake_k8s, mutate, code, reason, needle):
    body = statefulset()
    mutate(body)
    st, doc, _ = fake_k8s.request("POST", fake_k8s.sts_path(), body)
    assert st == code, doc
    is_status(doc, code, reason)
    assert needle in doc["message"], doc["message"]
    if code == 422:
        assert doc["details"]["causes"], doc


def test_other_kinds_validation(fake_k8s):
    f = fake_k8s
    bad = [
        ({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "not base64!"}}, 400, "illegal base64"),
        ({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"bad key": "eA=="}}, 422, "valid config key"),
        ({"apiVersion": "v1", "kind": "Secret", "metadata": {}, "data": {}}, 422, "metadata.name: Required value"),
        ({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "strinData": {}}, 400, 'unknown field "strinData"'),
        ({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "resourceVersion": "7"}}, 500, "resourceVersion should not be set"),
    ]
    for body, code, needle in bad:
        st, doc, _ = f.request("POST", f.ns_path("secrets"), body)
        assert st == code and needle in doc["message"], (body, st, doc)
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "1svc"}, "spec": {"ports": [{"port": 3306}]}}
    st, doc, _ = f.request("POST", f.ns_path("services"), svc)
    assert st == 422 and "DNS-1035" in doc["message"], doc
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}, "spec": {"type": "Weird", "ports": [{"port": 3306}]}}
    st, doc, _ = f.request("POST", f.ns_path("services"), svc)
    assert st == 422 and 'Unsupported value: "Weird"' in doc["message"], doc
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}, "spec": {"ports": [{"port": 70000}]}}
    st, doc, _ = f.request("POST", f.ns_path("services"), svc)
    assert st == 422 and "between 1 and 65535" in doc["message"], doc
    np = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "np"},
          "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]}}
    st, doc, _ = f.request("POST", f.ns_path("networkpolicies", group="networking.k8s.io/v1"), np)
    assert st == 422 and "valid CIDR" in doc["message"], doc
    np["spec"].pop("podSelector")
    st, doc, _ = f.request("POST", f.ns_path("networkpolicies", group="networking.k8s.io/v1"), np)
    assert st == 422 and "spec.podSelector: Required value" in doc["message"], doc
    st, doc, _ = f.request("POST", f.ns_path("secrets"), "{not json")
    assert st == 400
    st, doc, _ = f.request("POST", f.ns_path("secrets"), secret(), content_type="application/yaml")
    is_status(doc, 415, "UnsupportedMediaType")


def test_conflicts_not_found_and_no_op_updates(fake_k8s):
    f = fake_k8s
    created = f.must("POST", f.ns_path("secrets"), secret("s1"), expect=201)
    meta = created["metadata"]
    assert meta["uid"] and meta["creationTimestamp"] and meta["resourceVersion"].isdigit()
    assert created["data"] == {"SMDB_ADMIN_PASSWORD": __import__("base64").b64encode(ADMIN_PW.encode()).decode()}
    assert "stringData" not in created and created["type"] == "Opaque"
    st, doc, _ = f.request("POST", f.ns_path("secrets"), secret("s1"))
    is_status(doc, 409, "AlreadyExists")
    assert doc["details"] == {"name": "s1", "kind": "secrets"}
    upd = copy.deepcopy(created)
    upd["data"]["other"] = "eA=="
    new = f.must("PUT", f.ns_path("secrets", "s1"), upd, expect=200)
    assert int(new["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    # the old resourceVersion is stale now
    st, doc, _ = f.request("PUT", f.ns_path("secrets", "s1"), upd)
    is_status(doc, 409, "Conflict")
    assert "the object has been modified" in doc["message"]
    # the same object again: no new resourceVersion
    again = f.must("PUT", f.ns_path("secrets", "s1"), new, expect=200)
    assert again["metadata"]["resourceVersion"] == new["metadata"]["resourceVersion"]
    # immutable type
    t = copy.deepcopy(new)
    t["type"] = "kubernetes.io/basic-auth"
    st, doc, _ = f.request("PUT", f.ns_path("secrets", "s1"), t)
    assert st == 422 and "field is immutable" in doc["message"], doc
    st, doc, _ = f.request("PUT", f.ns_path("secrets", "nope"), dict(new, metadata={"name": "nope"}))
    is_status(doc, 404, "NotFound")
    st, doc, _ = f.request("PUT", f.ns_path("secrets", "s1"), dict(new, metadata={"name": "s2"}))
    assert st == 400 and "does not match the name on the URL" in doc["message"]
    st, doc, _ = f.get(f.ns_path("secrets", "nope"))
    is_status(doc, 404, "NotFound")
    assert doc["message"] == 'secrets "nope" not found'
    st, doc, _ = f.get(f.sts_path("nope"))
    assert doc["message"] == 'statefulsets.apps "nope" not found' and doc["details"]["group"] == "apps"
    # delete with a stale precondition, then for real
    st, doc, _ = f.request("DELETE", f.ns_path("secrets", "s1"), {"preconditions": {"resourceVersion": meta["resourceVersion"]}})
    is_status(doc, 409, "Conflict")
    st, doc, _ = f.request("DELETE", f.ns_path("secrets", "s1"))
    assert st == 200 and doc["status"] == "Success"
    st, doc, _ = f.request("DELETE", f.ns_path("secrets", "s1"))
    is_status(doc, 404, "NotFound")
    # label selectors on lists
    f.must("POST", f.ns_path("secrets"), secret("a1"))
    other = secret("b1")
    other["metadata"]["labels"] = {"app": "other"}
    f.must("POST", f.ns_path("secrets"), other)
    names = [i["metadata"]["name"] for i in f.get(f.ns_path("secrets") + "?labelSelector=app%3Dsmdb")[1]["items"]]
    assert names == ["a1"]
    names = [i["metadata"]["name"] for i in f.get(f.ns_path("secrets") + "?labelSelector=app%20in%20(smdb,other)")[1]["items"]]
    assert names == ["a1", "b1"]
    st, doc, _ = f.get(f.ns_path("secrets") + "?labelSelector=app%3D%3D%3D")
    assert st == 400


def test_statefulset_defaults_updates_patches_and_scale(fake_k8s):
    f = fake_k8s
    body = statefulset()
    c0 = body["spec"]["template"]["spec"]["containers"][0]
    c0["resources"] = {"limits": {"memory": "1024Mi", "cpu": "0.5"}}
    sts = f.must("POST", f.sts_path(), body, expect=201)
    assert sts["metadata"]["generation"] == 1
    spec = sts["spec"]
    assert spec["podManagementPolicy"] == "OrderedReady" and spec["revisionHistoryLimit"] == 10
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    c = spec["template"]["spec"]["containers"][0]
    # quantities in their canonical form, as the real server stores them
    assert c["resources"]["limits"] == {"memory": "1Gi", "cpu": "500m"}
    assert c["imagePullPolicy"] == "IfNotPresent" and c["terminationMessagePath"] == "/dev/termination-log"
    assert c["readinessProbe"]["timeoutSeconds"] == 1 and c["ports"][0]["protocol"] == "TCP"
    # merge patch of replicas: generation moves
    p = f.must("PATCH", f.sts_path("c1"), {"spec": {"replicas": 0}}, content_type="application/merge-patch+json")
    assert p["spec"]["replicas"] == 0 and p["metadata"]["generation"] == 2
    # strategic merge: env merged by name
    p = f.must("PATCH", f.sts_path("c1"), {"spec": {"template": {"spec": {"containers": [
        {"name": "mariadb", "env": [{"name": "SMDB_BUFFER_POOL", "value": "256M"}]}]}}}},
        content_type="application/strategic-merge-patch+json")
    env = [e["name"] for e in p["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert env == ["SMDB_COMPUTE_ID", "SMDB_PORT", "SMDB_ADMIN_PASSWORD", "SMDB_BUFFER_POOL"]
    # ... and $patch: delete
    p = f.must("PATCH", f.sts_path("c1"), {"spec": {"template": {"spec": {"containers": [
        {"name": "mariadb", "env": [{"name": "SMDB_BUFFER_POOL", "$patch": "delete"}]}]}}}},
        content_type="application/strategic-merge-patch+json")
    assert len(p["spec"]["template"]["spec"]["containers"][0]["env"]) == 3
    # a merge patch replaces lists whole: the container loses its fields, 422
    st, doc, _ = f.request("PATCH", f.sts_path("c1"), {"spec": {"template": {"spec": {"containers": [{"name": "mariadb"}]}}}},
                           content_type="application/merge-patch+json")
    assert st == 422 and "image: Required value" in doc["message"], doc
    # unknown fields through a patch
    st, doc, _ = f.request("PATCH", f.sts_path("c1"), {"spec": {"replica": 1}}, content_type="application/merge-patch+json")
    assert st == 400 and 'unknown field "spec.replica"' in doc["message"]
    # forbidden spec changes
    st, doc, _ = f.request("PATCH", f.sts_path("c1"), {"spec": {"serviceName": "other"}}, content_type="application/merge-patch+json")
    assert st == 422 and "updates to statefulset spec for fields other than" in doc["message"], doc
    st, doc, _ = f.request("PATCH", f.sts_path("c1"), {"spec": {"replicas": 1}}, content_type="application/apply-patch+yaml")
    assert st == 415
    # json patch
    p = f.must("PATCH", f.sts_path("c1"), [{"op": "replace", "path": "/spec/replicas", "value": 1}],
               content_type="application/json-patch+json")
    assert p["spec"]["replicas"] == 1
    # scale subresource
    sc = f.must("GET", f.sts_path("c1", "scale"))
    assert sc["kind"] == "Scale" and sc["apiVersion"] == "autoscaling/v1" and sc["spec"]["replicas"] == 1
    assert sc["status"]["selector"] == "app=smdb-compute,smdb.compute=c1"
    sc["spec"]["replicas"] = 0
    out = f.must("PUT", f.sts_path("c1", "scale"), sc)
    assert out["spec"]["replicas"] == 0
    st, doc, _ = f.request("PUT", f.sts_path("c1", "scale"), sc)   # stale resourceVersion
    is_status(doc, 409, "Conflict")
    st, doc, _ = f.request("PUT", f.sts_path("c1", "scale"), dict(sc, spec={"replicas": -2}, metadata={"name": "c1"}))
    assert st == 422
    st, doc, _ = f.request("PUT", f.sts_path("c1", "scale"), dict(sc, spec={"replica": 1}, metadata={"name": "c1"}))
    assert st == 400 and 'unknown field "spec.replica"' in doc["message"]
    out = f.must("PATCH", f.sts_path("c1", "scale"), {"spec": {"replicas": 1}}, content_type="application/merge-patch+json")
    assert out["spec"]["replicas"] == 1
    assert f.must("GET", f.sts_path("c1"))["spec"]["replicas"] == 1


def test_services_and_network_policies(fake_k8s):
    f = fake_k8s
    headless = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "smdb-computes", "labels": {"app": "smdb"}},
                "spec": {"clusterIP": "None", "selector": {"app": "smdb-compute"}, "publishNotReadyAddresses": True}}
    svc = f.must("POST", f.ns_path("services"), headless, expect=201)
    assert svc["spec"]["clusterIPs"] == ["None"] and svc["spec"]["type"] == "ClusterIP"
    normal = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"},
              "spec": {"selector": {"app": "x"}, "ports": [{"name": "mysql", "port": 3306, "targetPort": "mysql"}]}}
    svc = f.must("POST", f.ns_path("services"), normal, expect=201)
    ip = svc["spec"]["clusterIP"]
    assert ip.startswith("10.96.")
    # an update that leaves clusterIP out keeps it; changing it is refused
    upd = copy.deepcopy(normal)
    upd["metadata"]["resourceVersion"] = svc["metadata"]["resourceVersion"]
    upd["spec"]["ports"][0]["port"] = 3307
    out = f.must("PUT", f.ns_path("services", "api"), upd)
    assert out["spec"]["clusterIP"] == ip
    upd2 = copy.deepcopy(out)
    upd2["spec"]["clusterIP"] = "10.96.200.200"
    upd2["spec"]["clusterIPs"] = ["10.96.200.200"]
    st, doc, _ = f.request("PUT", f.ns_path("services", "api"), upd2)
    assert st == 422 and "field is immutable" in doc["message"], doc
    st, doc, _ = f.request("DELETE", f.ns_path("services", "api"))
    assert st == 200 and doc["kind"] == "Service"
    np = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "smdb-computes"},
          "spec": {"podSelector": {"matchLabels": {"app": "smdb-compute"}},
                   "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "smdb-proxy"}}}], "ports": [{"port": 3306}]}]}}
    path = f.ns_path("networkpolicies", group="networking.k8s.io/v1")
    out = f.must("POST", path, np, expect=201)
    assert out["spec"]["policyTypes"] == ["Ingress"] and out["spec"]["ingress"][0]["ports"][0]["protocol"] == "TCP"
    assert [i["metadata"]["name"] for i in f.get(path)[1]["items"]] == ["smdb-computes"]
    assert f.request("DELETE", path + "/smdb-computes")[0] == 200
    assert f.get(path + "/smdb-computes")[0] == 404


def rv_of_list(f, path):
    return f.get(path)[1]["metadata"]["resourceVersion"]


def test_watch_events_and_410(fake_k8s):
    f = fake_k8s
    pods = f.ns_path("pods")
    rv = rv_of_list(f, pods)
    f.must("POST", f.sts_path(), statefulset(), expect=201)
    events = f.watch(pods + f"?watch=1&labelSelector=smdb.compute%3Dc1&resourceVersion={rv}&allowWatchBookmarks=true", timeout=20)
    ev = next(events)
    assert ev["type"] == "ADDED" and ev["object"]["kind"] == "Pod" and ev["object"]["metadata"]["name"] == "c1-0"
    pod = ev["object"]
    assert pod["status"]["phase"] == "Pending"
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
    assert pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "c1-0"
    assert pod["spec"]["volumes"][0] == {"name": "data", "persistentVolumeClaim": {"claimName": "data-c1-0"}}
    pvc = f.must("GET", f.ns_path("persistentvolumeclaims", "data-c1-0"))
    assert pvc["status"]["phase"] == "Bound" and pvc["spec"]["resources"]["requests"]["storage"] == "1Gi"
    # a deleted pod is recreated by the controller, with a new uid
    f.must("DELETE", f.ns_path("pods", "c1-0"))
    ev = next(events)
    assert ev["type"] == "DELETED" and ev["object"]["metadata"]["uid"] == pod["metadata"]["uid"]
    ev = f.wait_event(events, lambda e: e["type"] == "ADDED", timeout=10)
    assert ev["object"]["metadata"]["uid"] != pod["metadata"]["uid"]
    last_rv = ev["object"]["metadata"]["resourceVersion"]
    # expiring the history ends open watches; resuming from an old version: 410
    out = f.expire_watch()
    assert out["closedWatches"] >= 1
    assert list(events) == [] or True
    evs = list(f.watch(pods + f"?watch=1&resourceVersion={last_rv}", timeout=10))
    assert len(evs) == 1 and evs[0]["type"] == "ERROR"
    is_status(evs[0]["object"], 410, "Expired")
    assert "too old resource version" in evs[0]["object"]["message"]
    # the other way kube-apiserver says it: HTTP 410 on the request
    f.expire_watch(as_http=True)
    from fake_apiserver import WatchHTTPError
    with pytest.raises(WatchHTTPError) as e:
        next(f.watch(pods + f"?watch=1&resourceVersion={last_rv}", timeout=10))
    assert e.value.status == 410
    # a watch without resourceVersion starts with the current objects
    w = f.watch(pods + "?watch=true&timeoutSeconds=1", timeout=10)
    evs = list(w)
    assert [e["type"] for e in evs] == ["ADDED"] and evs[0]["object"]["metadata"]["name"] == "c1-0"


def test_delete_propagation_and_pvcs(fake_k8s):
    f = fake_k8s
    pvcs = f.ns_path("persistentvolumeclaims")
    for policy, pod_stays in (("Orphan", True), ("Background", False), ("Foreground", False)):
        f.request("DELETE", f.ns_path("pods", "c1-0"), {"gracePeriodSeconds": 0})
        f.must("POST", f.sts_path(), statefulset(), expect=201)
        end = time.time() + 5
        while f.get(f.ns_path("pods", "c1-0"))[0] != 200 and time.time() < end:
            time.sleep(0.05)
        st, doc, _ = f.request("DELETE", f.sts_path("c1"), {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy})
        assert st == 200, doc
        end = time.time() + 5
        while time.time() < end and f.get(f.sts_path("c1"))[0] != 404:
            time.sleep(0.05)
        assert f.get(f.sts_path("c1"))[0] == 404
        time.sleep(0.8)   # the garbage collector's round
        st, pod, _ = f.get(f.ns_path("pods", "c1-0"))
        assert (st == 200) == pod_stays, (policy, st, pod)
        if pod_stays:
            assert "ownerReferences" not in pod["metadata"]
        # PVCs outlive their StatefulSet
        assert [p["metadata"]["name"] for p in f.get(pvcs)[1]["items"]] == ["data-c1-0"]
    st, doc, _ = f.request("DELETE", f.sts_path("c1"), {"propagationPolicy": "Sometimes"})
    assert st == 422
    st, doc, _ = f.request("DELETE", f.sts_path("c1"), {"propagationPolicy": "Orphan", "foo": 1})
    assert st == 400
    st, doc, _ = f.request("DELETE", pvcs + "/data-c1-0")
    assert st == 200
    end = time.time() + 5
    while time.time() < end and f.get(pvcs + "/data-c1-0")[0] != 404:
        time.sleep(0.05)
    assert f.get(pvcs + "/data-c1-0")[0] == 404


def test_faults_and_audit(fake_k8s):
    f = fake_k8s
    secrets = f.ns_path("secrets")
    f.fault("GET", r"/secrets(\?|$)", 500, count=2)
    assert f.get(secrets)[0] == 500
    st, doc, _ = f.get(secrets)
    is_status(doc, 500, "InternalError")
    assert f.get(secrets)[0] == 200
    f.fault("POST", "/secrets", 503, count=1, retryAfter=2)
    st, doc, h = f.request("POST", secrets, secret("x1"))
    assert st == 503 and h["retry-after"] == "2"
    f.fault("PUT", "/secrets/", 409, count=1)
    f.must("POST", secrets, secret("x1"), expect=201)
    cur = f.must("GET", secrets + "/x1")
    st, doc, _ = f.request("PUT", secrets + "/x1", cur)
    is_status(doc, 409, "Conflict")
    f.fault(".*", "/secrets/x1", action="reset", count=1)
    with pytest.raises((ConnectionError, OSError, __import__("http.client").client.HTTPException)):
        f.get(secrets + "/x1")
    assert f.get(secrets + "/x1")[0] == 200
    # control needs its own token
    assert f.request("POST", "/fake/faults", {"status": 500})[0] == 401
    assert f.get(secrets, token=None)[0] == 401
    f.must("POST", f.sts_path(), statefulset(), expect=201)
    f.must("PATCH", f.sts_path("c1"), {"spec": {"replicas": 0}}, content_type="application/merge-patch+json")
    f.must("GET", f.sts_path("c1", "scale"))
    list(f.watch(f.ns_path("pods") + "?watch=1&timeoutSeconds=0", timeout=5))
    calls = f.calls()
    verbs = {(c["verb"], c.get("apiGroup", ""), c.get("resource", ""), c.get("subresource", "")) for c in calls if c.get("user") == "fake-client"}
    for want in [("list", "", "secrets", ""), ("create", "", "secrets", ""), ("get", "", "secrets", ""),
                 ("update", "", "secrets", ""), ("create", "apps", "statefulsets", ""),
                 ("patch", "apps", "statefulsets", ""), ("get", "apps", "statefulsets", "scale"), ("watch", "", "pods", "")]:
        assert want in verbs, (want, verbs)
    assert any(c.get("fault") for c in calls) and any(c["code"] == 401 for c in calls)
    assert not any(c["path"].startswith("/fake/") for c in calls)
    created = [c for c in calls if c["verb"] == "create" and c["code"] == 201]
    assert {c["objectName"] for c in created} == {"x1", "c1"}
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "rules": [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "create", "update", "delete"]},
        {"apiGroups": ["apps"], "resources": ["statefulsets", "statefulsets/scale"], "verbs": ["get", "create", "patch"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["watch"]}]}
    assert f.rbac_violations(role) == []
    role["rules"][2]["verbs"] = ["list"]
    assert [c["verb"] + " " + c["resource"] for c in f.rbac_violations(role)] == ["watch pods"]


# ------------------------------------------------------------------ podman

def wait_pod(f, events, pred, what, timeout=150):
    try:
        return f.wait_event(events, lambda e: e["type"] != "ERROR" and pred(e), timeout=timeout)
    except (TimeoutError, OSError) as e:
        raise AssertionError(f"{what}: {e}\n{json.dumps(f.state(), indent=1)[-4000:]}\n{f.log()}")


def ready(e):
    return e["type"] in ("ADDED", "MODIFIED") and any(
        c["type"] == "Ready" and c["status"] == "True" for c in e["object"]["status"].get("conditions", []))


def cstatus(e):
    return (e["object"]["status"].get("containerStatuses") or [{}])[0]


def query(ip, sql, fetch=True):
    import pymysql
    end = time.time() + 30
    while True:
        try:
            conn = pymysql.connect(host=ip, port=3306, user="smdb_admin", password=ADMIN_PW, connect_timeout=3, autocommit=True)
            break
        except pymysql.err.OperationalError:
            if time.time() > end:
                raise
            time.sleep(0.3)
    try:
        with conn.cursor() as cur:
            for s in sql if isinstance(sql, list) else [sql]:
                cur.execute(s)
            return cur.fetchall() if fetch else None
    finally:
        conn.close()


def cgroup_memory(f, pod):
    r = f.podman("exec", f.container_name(pod), "sh", "-c",
                 "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max")
    return int(r.stdout.strip())


def test_run_as_non_root_checked_like_the_kubelet(fake_k8s_podman, compute_image):
    f = fake_k8s_podman
    f.must("POST", f.ns_path("secrets"), secret("smdb-c2"), expect=201)
    body = statefulset("c2", compute_image)
    body["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] = True
    rv = rv_of_list(f, f.ns_path("pods"))
    f.must("POST", f.sts_path(), body, expect=201)
    events = f.watch(f.ns_path("pods") + f"?watch=1&resourceVersion={rv}", timeout=60)
    ev = wait_pod(f, events, lambda e: cstatus(e).get("state", {}).get("waiting", {}).get("reason") == "CreateContainerConfigError",
                  "CreateContainerConfigError")
    assert "non-numeric user (mysql)" in cstatus(ev)["state"]["waiting"]["message"]


def test_statefulset_runs_the_compute_image(fake_k8s_podman, compute_image):
    f = fake_k8s_podman
    pods = f.ns_path("pods")
    f.must("POST", f.ns_path("secrets"), secret("smdb-c1"), expect=201)
    f.must("POST", f.ns_path("services"), {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "smdb-computes"},
                                           "spec": {"clusterIP": "None", "selector": {"app": "smdb-compute"}}}, expect=201)
    rv = rv_of_list(f, pods)
    body = statefulset("c1", compute_image)
    # an exec probe (podman exec) gates the tcpSocket readiness probe
    body["spec"]["template"]["spec"]["containers"][0]["startupProbe"] = {
        "exec": {"command": ["sh", "-c", "test -S /run/smdb/mysqld.sock"]}, "periodSeconds": 1, "failureThreshold": 120}
    f.must("POST", f.sts_path(), body, expect=201)
    events = f.watch(pods + f"?watch=1&labelSelector=smdb.compute%3Dc1&resourceVersion={rv}", timeout=180)
    ev = wait_pod(f, events, ready, "pod Ready")
    pod = ev["object"]
    assert cstatus(ev)["started"] is True
    ip = pod["status"]["podIP"]
    assert pod["status"]["phase"] == "Running" and cstatus(ev)["restartCount"] == 0
    assert pod["status"]["qosClass"] == "Guaranteed"
    assert query(ip, "SELECT 1") == ((1,),)
    query(ip, ["CREATE DATABASE IF NOT EXISTS k8s", "CREATE TABLE k8s.t (v VARCHAR(20))", "INSERT INTO k8s.t VALUES ('kept')"], fetch=False)
    ctr = f.container_name("c1-0")
    insp = json.loads(f.podman("inspect", ctr, check=True).stdout)[0]
    assert insp["HostConfig"]["Memory"] == 512 * 1024 * 1024
    assert insp["Config"]["Labels"]["smdb.prefix"] == f.prefix
    assert any(m.get("Name") == f.volume_name("data-c1-0") and m["Destination"] == "/var/lib/mysql" for m in insp["Mounts"])
    assert "SMDB_ADMIN_PASSWORD=" + ADMIN_PW in insp["Config"]["Env"]

    # in-place resize: QoS may not change; both limits and requests may
    resize = f.ns_path("pods", "c1-0", "resize")
    st, doc, _ = f.request("PATCH", resize, {"spec": {"containers": [{"name": "mariadb", "resources": {"limits": {"memory": "768Mi"}}}]}},
                           content_type="application/strategic-merge-patch+json")
    assert st == 422 and "QOS Class may not change" in doc["message"], doc
    st, doc, _ = f.request("PATCH", resize, {"spec": {"containers": [{"name": "mariadb", "image": "other"}]}},
                           content_type="application/strategic-merge-patch+json")
    assert st == 422 and "only cpu and memory resources are mutable" in doc["message"], doc
    new = {"memory": "768Mi", "cpu": "1500m"}
    out = f.must("PATCH", resize, {"spec": {"containers": [{"name": "mariadb", "resources": {"limits": new, "requests": new}}]}},
                 content_type="application/strategic-merge-patch+json")
    assert out["spec"]["containers"][0]["resources"]["limits"] == new
    wait_pod(f, events, lambda e: (cstatus(e).get("resources") or {}).get("limits") == new, "resize applied", timeout=30)
    assert cgroup_memory(f, "c1-0") == 768 * 1024 * 1024

    # killed behind the kubelet's back: restarted, Ready again, same address
    f.podman("kill", ctr, check=True)
    ev = wait_pod(f, events, lambda e: cstatus(e).get("restartCount") == 1 and not cstatus(e)["ready"], "restart seen", timeout=30)
    assert cstatus(ev)["lastState"]["terminated"]["exitCode"] != 0
    ev = wait_pod(f, events, ready, "Ready after restart")
    assert ev["object"]["status"]["podIP"] == ip
    assert query(ip, "SELECT v FROM k8s.t") == (("kept",),)
    assert cgroup_memory(f, "c1-0") == 768 * 1024 * 1024

    # scale to 0: the pod goes, the claim and its volume stay
    sc = f.must("GET", f.sts_path("c1", "scale"))
    sc["spec"]["replicas"] = 0
    f.must("PUT", f.sts_path("c1", "scale"), sc)
    ev = wait_pod(f, events, lambda e: e["type"] == "MODIFIED" and e["object"]["metadata"].get("deletionTimestamp"), "Terminating", timeout=30)
    assert ev["object"]["metadata"]["deletionGracePeriodSeconds"] == 10
    wait_pod(f, events, lambda e: e["type"] == "DELETED", "pod deleted", timeout=60)
    assert f.podman("container", "exists", ctr).returncode != 0
    assert f.get(f.ns_path("persistentvolumeclaims", "data-c1-0"))[0] == 200
    assert f.podman("volume", "exists", f.volume_name("data-c1-0")).returncode == 0
    st = f.must("GET", f.sts_path("c1"))["status"]
    assert st["replicas"] == 0 and st["readyReplicas"] == 0

    # back to 1 (merge patch): the row is still there
    f.must("PATCH", f.sts_path("c1"), {"spec": {"replicas": 1}}, content_type="application/merge-patch+json")
    ev = wait_pod(f, events, ready, "Ready after scale up")
    assert query(ev["object"]["status"]["podIP"], "SELECT v FROM k8s.t") == (("kept",),)
    end = time.time() + 10
    while time.time() < end and f.must("GET", f.sts_path("c1"))["status"].get("readyReplicas") != 1:
        time.sleep(0.2)
    assert f.must("GET", f.sts_path("c1"))["status"]["readyReplicas"] == 1

    # a PVC in use is only marked; deleting the StatefulSet (Foreground)
    # takes the pod, then the claim goes with its volume
    st, pvc, _ = f.request("DELETE", f.ns_path("persistentvolumeclaims", "data-c1-0"))
    assert st == 200 and pvc["metadata"]["deletionTimestamp"] and "kubernetes.io/pvc-protection" in pvc["metadata"]["finalizers"]
    f.must("DELETE", f.sts_path("c1"), {"propagationPolicy": "Foreground"})
    wait_pod(f, events, lambda e: e["type"] == "DELETED", "pod deleted with its StatefulSet", timeout=60)
    end = time.time() + 30
    while time.time() < end and (f.get(f.ns_path("persistentvolumeclaims", "data-c1-0"))[0] != 404 or f.get(f.sts_path("c1"))[0] != 404):
        time.sleep(0.2)
    assert f.get(f.sts_path("c1"))[0] == 404
    assert f.get(f.ns_path("persistentvolumeclaims", "data-c1-0"))[0] == 404
    assert f.podman("volume", "exists", f.volume_name("data-c1-0")).returncode != 0

    verbs = {(c["verb"], c["resource"], c["subresource"]) for c in f.calls() if c.get("user") == "fake-client" and "resource" in c}
    assert {("update", "statefulsets", "scale"), ("patch", "pods", "resize"), ("watch", "pods", ""),
            ("delete", "statefulsets", ""), ("delete", "persistentvolumeclaims", "")} <= verbs
