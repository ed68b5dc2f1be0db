"""The compute plugin reporting to the real controller (real redis,
controller, mariadbd with wake_activity.so)."""
import json
import os
import threading
import time
import urllib.request

import pytest

from conftest import PLUGIN_SO, mysql, report_token, wait_for

pytestmark = pytest.mark.skipif(not os.path.exists(PLUGIN_SO), reason="plugin not built")


def status(conn):
    cur = conn.cursor()
    cur.execute("SHOW GLOBAL STATUS LIKE 'Wake_activity_%'")
    return {k: v for k, v in cur.fetchall()}


def test_reports_reach_controller_and_match_status(controller):
    doc = controller.create_project("act", idle_timeout_s=3600, freeze_after_s=0)
    port, user, pw = doc["compute"]["port"], doc["admin_user"], doc["admin_password"]
    watcher = mysql(port, user, pw)
    # N clients connect, query, disconnect; one login fails
    for i in range(5):
        c = mysql(port, user, pw)
        for _ in range(i + 1):
            c.cursor().execute("SELECT 1")
        c.close()
    with pytest.raises(Exception):
        mysql(port, user, "wrong-password")
    # the 1->0 transitions report at once; wait until the controller has the
    # report matching the plugin's own status variables
    def matches():
        s = status(watcher)
        a = controller.compute("act").get("activity")
        if not a:
            return None
        fields = {"connections": "Wake_activity_connections",
                  "connects": "Wake_activity_connects",
                  "failed_connects": "Wake_activity_failed_connects",
                  "disconnects": "Wake_activity_disconnects"}
        # the watcher's own SHOW STATUS is a query: compare queries loosely
        ok = all(a[k] == int(s[v]) for k, v in fields.items())
        return (a, s) if ok and int(s["Wake_activity_queries"]) >= a["queries"] else None
    controller.post(f"/api/v1/compute/{doc['compute_id']}/resume")
    a, s = wait_for(matches, what="controller to hold the plugin's counters")
    assert a["connections"] == 1           # the watcher
    assert a["failed_connects"] == 1
    assert a["connects"] == 6              # watcher + 5 clients; not the failed one
    assert a["disconnects"] == 5
    assert a["queries"] >= 15
    watcher.close()
    # metrics carry per-compute figures
    st, text = controller.request("GET", "/metrics")
    assert f'smdb_compute_connections{{compute="{doc["compute_id"]}",project="act"}}' in text


def post_report(controller, cid, token, body):
    req = urllib.request.Request(
        f"{controller.url}/api/v1/compute/{cid}/activity",
        data=body if isinstance(body, bytes) else json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def good_report(controller, cid, seq):
    """A report from the same server start as the plugin's own reports
    (uptime measured from the start the controller stored), with a later seq."""
    now = int(time.time() * 1000)
    start = wait_for(lambda: int(controller.redis.cli("HGET", f"smdb:compute:{cid}",
                                                      "act_start_ms") or 0),
                     what="a first plugin report")
    return {"compute_id": cid, "seq": seq, "connections": 0, "connects": 1,
            "failed_connects": 0, "disconnects": 1, "queries": 1,
            "last_activity_ms": now, "sent_at_ms": now, "uptime_s": (now - start) // 1000}


def test_report_tokens_are_per_compute(controller):
    a = controller.create_project("tok-a", idle_timeout_s=3600, freeze_after_s=0)
    b = controller.create_project("tok-b", idle_timeout_s=3600, freeze_after_s=0)
    ta, tb = report_token(controller, a["compute_id"]), report_token(controller, b["compute_id"])
    assert ta != tb
    # the token is not stored in Redis, only its hash
    assert ta not in controller.redis.cli("HGETALL", f"smdb:compute:{a['compute_id']}")
    body = good_report(controller, b["compute_id"], 10**9)
    assert post_report(controller, b["compute_id"], ta, body) == 403     # A's token for B
    assert post_report(controller, b["compute_id"], "no-such-token", body) == 401
    assert post_report(controller, b["compute_id"], controller.token, body) == 401
    assert post_report(controller, b["compute_id"], tb, b"{bad json") == 400
    assert post_report(controller, b["compute_id"], tb, dict(body, queries="x")) == 400
    assert post_report(controller, b["compute_id"], tb, dict(body, compute_id=a["compute_id"])) == 400
    assert post_report(controller, "nope-000000", tb, body) == 404
    old = dict(body, sent_at_ms=int(time.time() * 1000) - 3_600_000)
    assert post_report(controller, b["compute_id"], tb, old) == 409
    # accepted: the answer carries the size's target (docs/autoscaling.md)
    assert post_report(controller, b["compute_id"], tb, body) == 200
    assert post_report(controller, b["compute_id"], tb, body) == 409     # same seq: stale
    st, text = controller.request("GET", "/metrics")
    for result in ("forbidden", "unauthorized", "malformed", "stale"):
        line = [l for l in text.splitlines()
                if l.startswith(f'smdb_activity_reports_total{{result="{result}"}}')][0]
        assert float(line.split()[-1]) >= 1, line


def test_controller_outage_reports_resume_and_queries_never_stall(controller):
    doc = controller.create_project("outage", idle_timeout_s=3600, freeze_after_s=0)
    port, user, pw = doc["compute"]["port"], doc["admin_user"], doc["admin_password"]
    conn = mysql(port, user, pw)
    controller.kill9()
    worst = 0.0
    t_end = time.time() + 4
    n = 0
    while time.time() < t_end:
        # connects and disconnects each poke the reporter, which finds no controller
        c = mysql(port, user, pw)
        t0 = time.monotonic()
        c.cursor().execute("SELECT 1")
        worst = max(worst, time.monotonic() - t0)
        c.close()
        n += 1
    assert worst < 0.05, f"a query took {worst * 1000:.1f} ms while the controller was down"
    s = status(conn)
    assert int(s["Wake_activity_reports_failed"]) > 0
    controller.start()
    want_connects = int(status(conn)["Wake_activity_connects"])
    wait_for(lambda: (controller.compute("outage").get("activity") or {}).get("connects", 0)
             >= want_connects, timeout=30, what="reports to resume")
    conn.close()
