"""wake_activity as the compute's sensor and actuator: the server signals it
reads through its local SQL session at every report (threads_running,
busy_sessions, open_trx, buffer pool, cpu_ms, ...), and the targets it
applies when the controller answers a report with
{"target":{"buffer_pool_bytes":N,"max_connections":M}}.

A real mariadbd loads the plugin; reports go to a receiver in this process
(mariadb_fixture.ReportReceiver) that can answer with a body."""
import json
import threading
import time

import pymysql
import pytest

from mariadb_fixture import (CONNECT_QUERIES, SERVER_KEYS, ReportReceiver,  # noqa: F401
                             compute_factory, counters_of)

MiB = 1024 * 1024


class TargetReceiver(ReportReceiver):
    """A ReportReceiver whose answer may carry a body: `answer` (a dict, sent
    as JSON with 200) or None (204, the default)."""

    def __init__(self):
        super().__init__()
        self.answer = None

    def _handler(self):
        base = super()._handler()
        receiver = self

        class Handler(base):
            def send_response(self, code, message=None):
                self._answer = receiver.answer
                super().send_response(200 if self._answer is not None else code, message)

            def send_header(self, key, value):
                if key == "Content-Length" and getattr(self, "_answer", None) is not None:
                    body = json.dumps(self._answer).encode()
                    super().send_header("Content-Type", "application/json")
                    super().send_header(key, str(len(body)))
                    self._body = body
                    return
                super().send_header(key, value)

            def end_headers(self):
                super().end_headers()
                body = getattr(self, "_body", None)
                if body:
                    self.wfile.write(body)
                    self._body = None

        return Handler


@pytest.fixture
def receiver():
    rx = TargetReceiver().up()
    yield rx
    rx.close()


def with_signals(d):
    return SERVER_KEYS <= set(d)


def next_report(receiver, pred=lambda d: True, timeout=10):
    """The first report sent from now on that satisfies pred."""
    rep = receiver.wait_for(lambda d: with_signals(d) and pred(d), timeout=timeout,
                            start=receiver.count())
    assert rep is not None, receiver.last() and receiver.last().doc
    return rep.doc


def background(db, user, password, sql):
    """Run sql on a new client session in a thread; returns (thread, conn)."""
    conn = db.client(user, password)
    t = threading.Thread(target=lambda: conn.cursor().execute(sql), daemon=True)
    t.start()
    return t, conn


def test_signals_present_and_plausible(compute_factory, receiver):
    db = compute_factory()
    doc = next_report(receiver)
    assert all(isinstance(doc[k], int) and doc[k] >= 0 for k in SERVER_KEYS), doc
    assert doc["bp_bytes"] == 32 * MiB  # the fixture's --innodb-buffer-pool-size
    assert doc["max_connections"] == 500
    assert doc["threads_running"] == 0  # nothing but our own session runs
    assert doc["busy_sessions"] == 0
    assert doc["open_trx"] == 0
    assert doc["events"] == 0
    assert doc["bp_pages_total"] > 0
    assert doc["bp_pages_data"] + doc["bp_pages_free"] <= doc["bp_pages_total"]
    # (11.8 counts some page reads that were no read request: no order between them)
    assert doc["bp_read_requests"] > 0 and doc["bp_reads"] > 0
    assert 0 < doc["cpu_ms"] < 600000
    st = db.status()
    assert st["wake_activity_server_signals"] == 1
    assert st["wake_activity_targets_applied"] == 0
    assert 0 < st["wake_activity_server_read_us"] < 2000000
    # the values are the server's own
    rows = dict(db.sql("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_total'"))
    assert int(rows["Innodb_buffer_pool_pages_total"]) == doc["bp_pages_total"]

    # shutdown while the session is open: clean, and no SQL failure on the way
    receiver.wait_for(lambda d: d["seq"] >= doc["seq"] + 2, timeout=5)
    db.stop()
    assert db.proc.returncode == 0
    log = db.log_tail(100000)
    assert "Shutdown complete" in log
    assert "local SQL session" not in log, log


def test_busy_sessions_and_threads_running(compute_factory, receiver):
    db = compute_factory()
    db.create_user("app", "pw")
    t, conn = background(db, "app", "pw", "SELECT SLEEP(3)")
    doc = next_report(receiver, lambda d: d["busy_sessions"] >= 1, timeout=3)
    assert doc["threads_running"] >= 1
    t.join(10)
    assert not t.is_alive()
    # still connected, but idle (Sleep): not busy any more
    doc = next_report(receiver)
    assert doc["busy_sessions"] == 0
    assert doc["threads_running"] == 0
    assert doc["connections"] == 1
    conn.close()

    # the controller's admin user (wake_activity_admin_user, root here) is
    # not a busy session either
    root = db.root()
    t = threading.Thread(target=lambda: root.cursor().execute("SELECT SLEEP(2)"), daemon=True)
    t.start()
    time.sleep(0.3)
    doc = next_report(receiver)
    assert doc["busy_sessions"] == 0
    t.join(10)
    root.close()


def test_open_transactions(compute_factory, receiver):
    db = compute_factory()
    db.create_user("app", "pw")
    db.sql("CREATE DATABASE d")
    db.sql("CREATE TABLE d.t (id INT PRIMARY KEY) ENGINE=InnoDB")
    db.sql("INSERT INTO d.t VALUES (1)")
    c = db.client("app", "pw")
    with c.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("SELECT * FROM d.t WHERE id = 1 FOR UPDATE")
        cur.fetchall()
    doc = next_report(receiver, lambda d: d["open_trx"] >= 1, timeout=3)
    # the transaction is open, no statement runs
    assert doc["busy_sessions"] == 0
    c.commit()
    doc = next_report(receiver)
    assert doc["open_trx"] == 0
    c.close()


def test_enabled_events_count_only_with_the_scheduler(compute_factory, receiver):
    db = compute_factory()
    db.sql("CREATE DATABASE d")
    db.sql("CREATE EVENT d.e ON SCHEDULE EVERY 1 HOUR DO DO 1")
    db.sql("CREATE EVENT d.off ON SCHEDULE EVERY 1 HOUR DISABLE DO DO 1")
    assert next_report(receiver)["events"] == 0  # event_scheduler is OFF
    db.sql("SET GLOBAL event_scheduler = ON")
    doc = next_report(receiver)
    assert doc["events"] == 1
    db.sql("SET GLOBAL event_scheduler = OFF")


def test_own_sql_is_not_activity(compute_factory, receiver):
    db = compute_factory()
    first = next_report(receiver)
    # a few more reports, each with the plugin's own statements, and nothing
    # else happening: the counters do not move
    n = receiver.count()
    last = receiver.wait_for(lambda d: d["seq"] >= first["seq"] + 3, timeout=8, start=n)
    assert last is not None
    assert with_signals(last.doc)
    assert counters_of(last.doc) == counters_of(first)
    assert (last.doc["connections"], last.doc["connects"], last.doc["queries"]) == (0, 0, 0)
    assert last.doc["busy_sessions"] == 0


def test_cpu_ms_grows_under_load(compute_factory, receiver):
    db = compute_factory()
    db.create_user("app", "pw")
    before = next_report(receiver)["cpu_ms"]
    c = db.client("app", "pw")
    with c.cursor() as cur:
        cur.execute("SELECT BENCHMARK(20000000, SHA2('wake', 256))")
    after = next_report(receiver)["cpu_ms"]
    c.close()
    assert after - before >= 200, (before, after)


def test_target_is_applied(compute_factory, receiver):
    db = compute_factory(interval=30)
    # the first report waited for the server to be ready: it has the signals
    first = receiver.wait_for(lambda d: True, timeout=10)
    assert first is not None and with_signals(first.doc), first and first.doc
    db.create_user("app", "pw")
    receiver.answer = {"target": {"buffer_pool_bytes": 64 * MiB, "max_connections": 37}}
    # the next periodic report is 30 s away: a client's 0->1 is reported now
    c = db.client("app", "pw")
    t0 = time.time()
    end = t0 + 10
    while time.time() < end:
        (bp, mc), = db.sql("SELECT @@innodb_buffer_pool_size, @@max_connections")
        if (bp, mc) == (64 * MiB, 37):
            break
        time.sleep(0.1)
    assert (bp, mc) == (64 * MiB, 37), (bp, mc)
    # the next report comes soon (not after the 30 s interval) with the new values
    doc = next_report(receiver, lambda d: d["max_connections"] == 37, timeout=5)
    assert doc["bp_bytes"] == 64 * MiB
    assert time.time() - t0 < 5
    assert db.status()["wake_activity_targets_applied"] == 2

    # max_connections alone: only that changes (the 1->0 is reported now)
    receiver.answer = {"target": {"max_connections": 41}}
    c.close()
    doc = next_report(receiver, lambda d: d["max_connections"] == 41, timeout=5)
    assert doc["bp_bytes"] == 64 * MiB
    assert db.status()["wake_activity_targets_applied"] == 3


def test_target_clamped_and_bad_answers_ignored(compute_factory, receiver):
    db = compute_factory(extra_args=["--innodb-buffer-pool-size-max=96M"])
    next_report(receiver)
    receiver.answer = {"target": {"buffer_pool_bytes": 4096 * MiB}}
    doc = next_report(receiver, lambda d: d["bp_bytes"] != 32 * MiB, timeout=10)
    assert doc["bp_bytes"] == 96 * MiB
    # below the server's minimum: it takes its minimum, and the log says so
    receiver.answer = {"target": {"buffer_pool_bytes": 1 * MiB}}
    doc = next_report(receiver, lambda d: d["bp_bytes"] != 96 * MiB, timeout=10)
    assert 1 * MiB < doc["bp_bytes"] < 32 * MiB
    assert f"innodb_buffer_pool_size={doc['bp_bytes']} (asked {MiB}, was {96 * MiB})" \
        in db.log_tail(20000)
    # answers that are not a target: ignored, reports go on
    for bad in ({"target": {"max_connections": -5}}, {"target": {"max_connections": 1.5}},
                {"target": {"max_connections": "77"}}, ["x"],
                # longer than the 4 KiB the plugin keeps of an answer
                {"target": {"max_connections": 77}, "pad": "x" * 5000}):
        receiver.answer = bad
        doc = next_report(receiver)
        assert doc["max_connections"] == 500, bad
    receiver.answer = {"other": 1}
    doc = next_report(receiver)
    assert doc["max_connections"] == 500
    assert db.status()["wake_activity_reports_failed"] == 0
    log = db.log_tail(20000)
    assert log.count("that is not {\"target\"") == 1, log  # logged once per run
