"""wake_activity against a real mariadbd: counters, reports, admin sessions,
transitions, settings.  Reports go to a small HTTP receiver in this process
(ReportReceiver) that stands in for the controller's activity endpoint."""
import re
import struct
import time

import pymysql
import pytest
from pymysql import _auth
from pymysql.charset import charset_by_name
from pymysql.constants import CLIENT, COMMAND

from mariadb_fixture import (CONNECT_QUERIES, CONTRACT_KEYS, SERVER_KEYS, MariaDB,  # noqa: F401
                             compute_factory, counters_of, receiver)


def queries(conn, n, sql="SELECT 1"):
    with conn.cursor() as cur:
        for _ in range(n):
            cur.execute(sql)
            cur.fetchall()


def wait_status(db, pred, timeout=5.0):
    end = time.time() + timeout
    while True:
        st = db.status()
        if pred(st) or time.time() > end:
            return st
        time.sleep(0.05)


def test_reports_follow_the_contract(compute_factory, receiver):
    db = compute_factory()
    first = receiver.wait_for(lambda d: True, timeout=5)
    assert first is not None, "no report after start"
    assert first.path == f"/api/v1/compute/{db.compute_id}/activity"
    assert first.authorization == f"Bearer {db.token}"
    assert first.content_type == "application/json"
    doc = first.doc
    assert CONTRACT_KEYS <= set(doc) <= CONTRACT_KEYS | SERVER_KEYS
    assert all(isinstance(doc[k], int) for k in set(doc) - {"compute_id"})
    assert doc["compute_id"] == db.compute_id
    assert doc["seq"] == 1
    assert doc["connections"] == 0
    assert doc["uptime_s"] < 30
    now_ms = time.time() * 1000
    assert abs(doc["sent_at_ms"] - now_ms) < 10000
    assert 0 < doc["last_activity_ms"] <= doc["sent_at_ms"]

    # periodic: one report per interval (1 s), seq grows by one
    assert receiver.wait_for(lambda d: d["seq"] == 4, timeout=6) is not None
    reps = receiver.reports[:4]
    assert [r.doc["seq"] for r in reps] == [1, 2, 3, 4]
    gaps = [b.at - a.at for a, b in zip(reps[1:], reps[2:])]
    assert all(0.7 < g < 2.0 for g in gaps), gaps
    assert all(r.doc["uptime_s"] >= first.doc["uptime_s"] for r in reps)
    # the receiver records a report before the plugin has read the answer
    st = wait_status(db, lambda s: s["wake_activity_reports_sent"] >= 4)
    assert st["wake_activity_reports_sent"] >= 4
    assert st["wake_activity_reports_failed"] == 0
    assert st["wake_activity_last_report_status"] == 204


def test_counters_match_status_and_reports(compute_factory, receiver):
    db = compute_factory()
    db.create_user("app", "pw")
    clients = [db.client("app", "pw") for _ in range(6)]
    for i, c in enumerate(clients):
        queries(c, i + 1)  # 1+2+...+6 = 21
    for c in clients[:4]:
        c.close()
    want = {"connections": 2, "connects": 6, "failed_connects": 0, "disconnects": 4,
            "queries": 21 + 6 * CONNECT_QUERIES}
    st = wait_status(db, lambda s: s["wake_activity_disconnects"] == 4)
    assert {k: st["wake_activity_" + k] for k in want} == want

    rep = receiver.wait_for(lambda d: all(d[k] == v for k, v in want.items()), timeout=5)
    assert rep is not None, receiver.last().doc
    # nothing moved since: the report and the status variables agree exactly
    assert counters_of(rep.doc) == counters_of(db.status())
    assert rep.doc["last_activity_ms"] <= rep.doc["sent_at_ms"]

    for c in clients[4:]:
        c.close()
    want.update(connections=0, disconnects=6)
    rep = receiver.wait_for(lambda d: all(d[k] == v for k, v in want.items()), timeout=5)
    assert rep is not None, receiver.last().doc
    assert counters_of(rep.doc) == counters_of(db.status())


def test_each_statement_counts(compute_factory):
    db = compute_factory(report_url="")
    db.create_user("app", "pw")
    c = db.client("app", "pw", client_flag=CLIENT.MULTI_STATEMENTS)
    with c.cursor() as cur:
        cur.execute("SELECT 1; SELECT 2; SELECT 3")
        while cur.nextset():
            pass
        cur.execute("SELECT 4")
        with pytest.raises(pymysql.err.ProgrammingError):
            cur.execute("SELEC broken")  # a failed statement is activity too
    c.ping(reconnect=False)  # COM_PING is a client command
    st = db.status()
    assert st["wake_activity_queries"] == 6 + CONNECT_QUERIES
    c.close()  # COM_QUIT is not
    st = wait_status(db, lambda s: s["wake_activity_connections"] == 0)
    assert st["wake_activity_queries"] == 6 + CONNECT_QUERIES


def test_failed_login_is_a_failed_connect(compute_factory, receiver):
    db = compute_factory()
    db.create_user("app", "pw")
    for user, pw in (("app", "wrong"), ("app", ""), ("nobody", "x")):
        with pytest.raises(pymysql.err.OperationalError) as e:
            db.client(user, pw)
        assert e.value.args[0] == 1045
    st = wait_status(db, lambda s: s["wake_activity_failed_connects"] == 3)
    assert st["wake_activity_failed_connects"] == 3
    assert st["wake_activity_connections"] == 0
    assert st["wake_activity_connects"] == 0
    assert st["wake_activity_disconnects"] == 0  # the failed sessions' ends
    rep = receiver.wait_for(lambda d: d["failed_connects"] == 3, timeout=5)
    assert rep is not None and rep.doc["connections"] == 0

    # a later good session is counted normally: nothing went negative
    c = db.client("app", "pw")
    st = db.status()
    assert (st["wake_activity_connections"], st["wake_activity_connects"]) == (1, 1)
    c.close()
    st = wait_status(db, lambda s: s["wake_activity_connections"] == 0)
    assert (st["wake_activity_connections"], st["wake_activity_disconnects"]) == (0, 1)


def test_admin_sessions_do_not_count(compute_factory, receiver):
    db = compute_factory(admin_user="root,ctl", interval=30)
    db.create_user("ctl", "ctlpw")
    db.create_user("app", "pw")
    assert receiver.wait_for(lambda d: True, timeout=5) is not None
    before = db.status()
    n_reports = receiver.count()

    for _ in range(10):
        with db.root() as r:
            queries(r, 3, "SHOW GLOBAL STATUS LIKE 'wake_activity%'")
        with db.client("ctl", "ctlpw") as c:
            queries(c, 3)
    with pytest.raises(pymysql.err.OperationalError):
        db.client("ctl", "wrong")  # a failing health check is not a client either
    time.sleep(1.0)
    after = db.status()
    assert counters_of(after) == counters_of(before)
    assert counters_of(after)["connections"] == 0
    assert receiver.count() == n_reports, "admin sessions triggered a report"

    # the same path does notice a client at once
    c = db.client("app", "pw")
    assert receiver.wait_for(lambda d: d["connections"] == 1, timeout=2,
                             start=n_reports) is not None
    c.close()


def test_immediate_report_on_transitions(compute_factory, receiver):
    db = compute_factory(interval=30)
    db.create_user("app", "pw")
    assert receiver.wait_for(lambda d: True, timeout=5) is not None
    time.sleep(0.3)
    start = receiver.count()

    t0 = time.time()
    c1 = db.client("app", "pw")
    up = receiver.wait_for(lambda d: d["connections"] == 1, timeout=5, start=start)
    assert up is not None
    assert up.at - t0 < 1.0, f"0->1 reported after {up.at - t0:.2f}s (interval 30s)"

    # 1 -> 2 and 2 -> 1 are not transitions worth an extra report
    n = receiver.count()
    c2 = db.client("app", "pw")
    c2.close()
    time.sleep(0.5)
    assert receiver.count() == n

    t1 = time.time()
    c1.close()
    down = receiver.wait_for(lambda d: d["connections"] == 0 and d["disconnects"] == 2,
                             timeout=5, start=n)
    assert down is not None
    assert down.at - t1 < 1.0, f"1->0 reported after {down.at - t1:.2f}s (interval 30s)"
    assert down.doc["seq"] > up.doc["seq"]


def change_user(conn, user, password):
    """COM_CHANGE_USER by hand (pymysql has no API for it)."""
    scramble = _auth.scramble_native_password(password.encode(), conn.salt) if password else b""
    data = user.encode() + b"\0" + bytes([len(scramble)]) + scramble + b"\0"
    data += struct.pack("<H", charset_by_name(conn.charset).id) + b"mysql_native_password\0"
    if conn.client_flag & CLIENT.CONNECT_ATTRS:
        data += b"\0"
    conn._execute_command(COMMAND.COM_CHANGE_USER, data)
    pkt = conn._read_packet()  # raises on an ERR packet
    while pkt.is_auth_switch_request():
        name, _, salt = pkt.get_all_data()[1:].partition(b"\0")
        assert name == b"mysql_native_password", name
        salt = salt.rstrip(b"\0")
        conn.write_packet(_auth.scramble_native_password(password.encode(), salt)
                          if password else b"")
        pkt = conn._read_packet()


def current_user(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        return cur.fetchone()[0]


def test_change_user_moves_the_session(compute_factory):
    db = compute_factory(report_url="")
    db.create_user("app", "pw")
    # over the unix socket so that root (unix_socket auth) can be the target
    c = pymysql.connect(unix_socket=db.socket, user="app", password="pw", autocommit=True)
    conns = lambda: db.status()["wake_activity_connections"]  # noqa: E731
    assert conns() == 1
    change_user(c, "root", "")
    assert current_user(c) == "root@localhost"
    assert conns() == 0, "a session that became the admin still counts"
    change_user(c, "app", "pw")
    assert current_user(c) == "app@%"
    assert conns() == 1
    with pytest.raises(pymysql.err.OperationalError):
        change_user(c, "app", "wrong")
    assert current_user(c) == "app@%"  # the server kept the old identity
    assert conns() == 1
    c.close()
    st = wait_status(db, lambda s: s["wake_activity_connections"] == 0)
    assert st["wake_activity_connections"] == 0
    assert st["wake_activity_connects"] - st["wake_activity_disconnects"] == 0


def test_token_is_never_shown(compute_factory, receiver):
    db = compute_factory(token="s3cret-token-value")
    assert receiver.wait_for(lambda d: True, timeout=5).authorization == \
        "Bearer s3cret-token-value"
    variables = db.variables()
    assert "wake_activity_token" not in variables
    assert set(variables) == {"wake_activity_report_url", "wake_activity_compute_id",
                              "wake_activity_admin_user", "wake_activity_interval"}
    rows = db.sql("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES")
    assert not any("s3cret" in (r[0] or "") for r in rows)
    with pytest.raises(pymysql.err.OperationalError):
        db.sql("SELECT @@global.wake_activity_token")
    assert db.status()["wake_activity_token_set"] == 1
    assert "s3cret" not in db.log_tail(100000)


def test_settings(compute_factory, receiver):
    db = compute_factory(interval=30)
    v = db.variables()
    assert v["wake_activity_interval"] == "30"
    assert v["wake_activity_admin_user"] == "root"
    assert v["wake_activity_compute_id"] == db.compute_id
    assert v["wake_activity_report_url"] == receiver.url
    for ro in ("report_url", "compute_id", "admin_user"):
        with pytest.raises(pymysql.err.OperationalError) as e:
            db.sql(f"SET GLOBAL wake_activity_{ro} = 'x'")
        assert e.value.args[0] == 1238  # read-only variable

    # the interval is dynamic and applies at once, not after the old 30 s
    assert receiver.wait_for(lambda d: True, timeout=5) is not None
    db.sql("SET GLOBAL wake_activity_interval = 1")
    n = receiver.count()
    assert receiver.wait_for(lambda d: True, timeout=2.5, start=n) is not None
    assert receiver.wait_for(lambda d: True, timeout=2.5, start=n + 1) is not None
    db.sql("SET GLOBAL wake_activity_interval = 0")  # clamped to the minimum
    assert db.variables()["wake_activity_interval"] == "1"


def test_without_report_url_it_only_counts(compute_factory, receiver):
    db = compute_factory(report_url="", compute_id=None, token=None)
    db.create_user("app", "pw")
    with db.client("app", "pw") as c:
        queries(c, 2)
    st = wait_status(db, lambda s: s["wake_activity_disconnects"] == 1)
    assert (st["wake_activity_connects"], st["wake_activity_queries"]) == (1, 2 + CONNECT_QUERIES)
    assert st["wake_activity_report_seq"] == 0
    assert receiver.count() == 0
    assert "wake_activity" in db.thread_names()  # idle, joined at shutdown
    assert "counting activity, not reporting it" in db.log_tail()


@pytest.mark.parametrize("bad", [
    {"compute_id": "Bad_Id"},
    {"report_url": "ftp://127.0.0.1/x"},
    {"token": "two words"},
])
def test_bad_settings_keep_the_plugin_out(procs, run_dir, receiver, bad):
    settings = {"report_url": receiver.url, "compute_id": "p1-abc", "token": "t"}
    settings.update(bad)
    db = MariaDB(procs, run_dir, settings=settings).start()
    rows = db.sql("SELECT PLUGIN_STATUS FROM information_schema.PLUGINS "
                  "WHERE PLUGIN_NAME = 'wake_activity'")
    assert rows == ()  # init refused, the server runs without it
    assert re.search(r"\[ERROR\] wake_activity: wake_activity_", db.log_tail())
    assert receiver.count() == 0


def test_rejected_reports_back_off_and_recover(compute_factory, receiver):
    receiver.status = 401
    db = compute_factory()
    st = wait_status(db, lambda s: s["wake_activity_reports_failed"] >= 3, timeout=10)
    assert st["wake_activity_reports_failed"] >= 3
    assert st["wake_activity_reports_sent"] == 0
    assert st["wake_activity_last_report_status"] == 401
    assert st["wake_activity_backoff_ms"] > 0
    log = db.log_tail(100000)
    assert log.count("HTTP 401") == 1, "a refused report must be logged once per outage"

    receiver.status = 204
    st = wait_status(db, lambda s: s["wake_activity_reports_sent"] >= 1, timeout=5)
    assert st["wake_activity_reports_sent"] >= 1
    st = wait_status(db, lambda s: s["wake_activity_backoff_ms"] == 0, timeout=3)
    assert st["wake_activity_backoff_ms"] == 0
    assert "reports accepted again" in db.log_tail(100000)


def test_force_plus_permanent_refuses_bad_settings(procs, run_dir, receiver):
    """With wake_activity=FORCE_PLUS_PERMANENT (recommended for computes) a
    misconfigured plugin stops the server from starting instead of leaving
    a compute the controller never hears from, and it cannot be unloaded."""
    good = MariaDB(procs, run_dir, name="good", settings={
        "report_url": receiver.url, "compute_id": "p1-abc", "token": "t"},
        extra_args=["--wake-activity=FORCE_PLUS_PERMANENT"]).start()
    with pytest.raises(pymysql.err.OperationalError) as e:
        good.sql("UNINSTALL SONAME 'wake_activity'")
    assert e.value.args[0] == 1702
    good.stop()

    bad = MariaDB(procs, run_dir, name="bad", settings={
        "report_url": receiver.url, "compute_id": "Not_Valid", "token": "t"},
        extra_args=["--wake-activity=FORCE_PLUS_PERMANENT"])
    with pytest.raises(RuntimeError, match="exited"):
        bad.start(timeout=20)
    assert "wake_activity_compute_id must match" in bad.log_tail()


def test_connection_churn_is_rate_limited(compute_factory, receiver):
    """A client that connects and disconnects in a loop makes every session
    a 0<->1 transition; the controller must get about one report a second,
    not one per session, and the last state soon after the loop ends."""
    db = compute_factory(interval=30)
    db.create_user("app", "pw")
    assert receiver.wait_for(lambda d: True, timeout=5) is not None
    time.sleep(0.3)
    start = receiver.count()
    sessions = 0
    end = time.time() + 4.0
    while time.time() < end:
        db.client("app", "pw").close()
        sessions += 1
    churn_reports = receiver.count() - start
    assert sessions > 100, sessions
    assert 2 <= churn_reports <= 12, (churn_reports, sessions)
    final = receiver.wait_for(
        lambda d: d["connects"] == sessions and d["connections"] == 0, timeout=3, start=start)
    assert final is not None, receiver.last().doc
    assert counters_of(final.doc) == counters_of(db.status())
