"""Drain-safe automatic suspend through the real proxy (issue: plugin and
drain-safe suspend).  Real nginx + module, controller, redis, mariadbd with
the activity plugin."""
import os
import random
import re
import threading
import time

import pymysql
import pytest

from conftest import PLUGIN_SO, mysql
from nginx_fixture import MODULE_SO, start_nginx

pytestmark = pytest.mark.skipif(not (os.path.exists(PLUGIN_SO) and os.path.exists(MODULE_SO)),
                                reason="plugin or module not built")


def suspends_in_log(controller):
    return re.findall(r"compute \S+: suspending -> suspended", controller.log_tail(10**7))


def test_idle_open_session_is_never_suspended(controller_factory, procs, run_dir):
    ctl = controller_factory(drain_wait_ms=1500, report_interval_s=1).start()
    ngx = start_nginx(procs, run_dir, ctl, cache_ttl="1s")
    doc = ctl.create_project("hold", idle_timeout_s=2, freeze_after_s=1)
    conn = mysql(ngx.port, doc["admin_user"], doc["admin_password"], "hold",
                 read_timeout=10)
    # three times the idle timeout, with a quiet open session: frozen with
    # it open (test_idle_freeze.py), never stopped under it
    end = time.time() + 6
    while time.time() < end:
        assert ctl.compute("hold").get("mode") != "stopped"
        time.sleep(0.1)
    conn.cursor().execute("SELECT 1")
    conn.close()
    # after the last disconnect: frozen after 1 s, stopped after 2 s (+ drain)
    end = time.time() + 20
    while time.time() < end:
        c = ctl.compute("hold")
        if c["state"] == "suspended" and c.get("mode") == "stopped":
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"not stopped after the idle timeout: {c}")
    # and the next client is served
    conn = mysql(ngx.port, doc["admin_user"], doc["admin_password"], "hold")
    conn.cursor().execute("SELECT 1")
    conn.close()


def test_hammering_clients_never_lose_a_session(controller_factory, procs, run_dir):
    """Clients connect, hold a session a while, disconnect and pause, while
    the scheduler suspends the compute whenever it can with a tiny idle
    timeout.  No client may get an error or a dropped session."""
    ctl = controller_factory(drain_wait_ms=1200, report_interval_s=1,
                             scheduler_interval_ms=100).start()
    ngx = start_nginx(procs, run_dir, ctl, cache_ttl="1s")
    doc = ctl.create_project("hammer", idle_timeout_s=2, freeze_after_s=1)
    user, pw = doc["admin_user"], doc["admin_password"]
    errors, sessions = [], [0]
    stop_at = time.time() + 25
    lock = threading.Lock()

    def client(seed):
        rnd = random.Random(seed)
        while time.time() < stop_at:
            try:
                c = pymysql.connect(host="127.0.0.1", port=ngx.port, user=user, password=pw,
                                    database="hammer", connect_timeout=30, read_timeout=30)
                cur = c.cursor()
                cur.execute("SELECT CONNECTION_ID()")
                time.sleep(rnd.uniform(0, 0.8))     # an idle open session
                cur.execute("SELECT 1")             # the session must still be there
                assert cur.fetchone()[0] == 1
                c.close()
                with lock:
                    sessions[0] += 1
            except Exception as e:   # noqa: BLE001 - every failure is a finding
                with lock:
                    errors.append(repr(e))
            time.sleep(rnd.choice([0, 0.1, 0.5, 2.5, 4.0]))  # sometimes long enough to idle out

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [], errors[:5]
    assert sessions[0] > 20
    # the scheduler did suspend in between (otherwise the test shows nothing)
    assert len(suspends_in_log(ctl)) >= 1, ctl.log_tail()
    assert not ngx.alerts()
