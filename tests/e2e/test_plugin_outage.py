"""The controller goes away (connections refused, then a black hole that
accepts and never answers) and comes back: reports resume with the latest
counters, and client queries and connects never wait for the reporter."""
import threading
import time

from mariadb_fixture import compute_factory, counters_of, receiver  # noqa: F401

# A client thread that waited for the reporter would take about the black
# hole's 2 s request timeout (or the 1 s connect timeout); ordinary
# scheduling noise on a busy shared 2-vCPU box stays well below this.
STALL_S = 0.8


class Load:
    """Clients that keep the compute busy and time every call: one
    long-lived session running queries, and one that connects, queries and
    disconnects in a loop (every cycle is a 0<->1 transition)."""

    def __init__(self, db):
        self.db = db
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.samples = []  # (phase, seconds)
        self.phase = "before"
        self.errors = []
        self.threads = [threading.Thread(target=self._queries, daemon=True),
                        threading.Thread(target=self._connects, daemon=True)]

    def _record(self, t):
        with self.lock:
            self.samples.append((self.phase, t))

    def _queries(self):
        try:
            with self.db.client("app", "pw") as c, c.cursor() as cur:
                while not self.stop.is_set():
                    t = time.perf_counter()
                    cur.execute("SELECT 1")
                    cur.fetchall()
                    self._record(time.perf_counter() - t)
                    time.sleep(0.002)
        except Exception as e:  # surfaced by the test
            self.errors.append(e)

    def _connects(self):
        try:
            while not self.stop.is_set():
                t = time.perf_counter()
                with self.db.client("app", "pw") as c, c.cursor() as cur:
                    cur.execute("SELECT 1")
                self._record(time.perf_counter() - t)
                time.sleep(0.01)
        except Exception as e:
            self.errors.append(e)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(10)

    def worst(self, phase):
        with self.lock:
            vals = [t for p, t in self.samples if p == phase]
        return len(vals), max(vals) if vals else None


def test_reports_resume_and_clients_never_stall(compute_factory, receiver):
    db = compute_factory(interval=1)
    db.create_user("app", "pw")
    assert receiver.wait_for(lambda d: True, timeout=5) is not None

    with Load(db) as load:
        time.sleep(1.0)

        load.phase = "refused"
        receiver.down()
        time.sleep(3.0)

        load.phase = "black hole"
        receiver.up()
        receiver.mode = "hang"
        time.sleep(4.5)

        load.phase = "back"
        receiver.mode = "ok"
        back_at = time.time()
        n = receiver.count()
        rep = receiver.wait_for(lambda d: True, timeout=6, start=n)
        assert rep is not None, "reports did not resume"
        # at most: the hanging request's 2 s timeout plus one capped backoff
        assert rep.at - back_at < 4.5
        time.sleep(1.0)

    assert not load.errors, load.errors
    for phase in ("before", "refused", "black hole", "back"):
        count, worst = load.worst(phase)
        assert count > 20, f"too few samples while {phase}: {count}"
        assert worst < STALL_S, f"a client call took {worst:.3f}s while {phase}"

    st = db.status()
    assert st["wake_activity_reports_failed"] >= 2
    assert st["wake_activity_backoff_ms"] == 0  # healthy again
    assert st["wake_activity_last_report_status"] == 204
    # the latest state was kept through the outage: once quiet, the next
    # report carries exactly what the status variables say
    final = receiver.wait_for(
        lambda d: d["connections"] == 0 and d["queries"] == st["wake_activity_queries"],
        timeout=5, start=n)
    assert final is not None, receiver.last().doc
    assert counters_of(final.doc) == counters_of(db.status())
    # failed attempts used sequence numbers too; what arrives still grows
    seqs = [r.doc["seq"] for r in receiver.reports]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert "retrying with backoff" in db.log_tail(100000)


def test_shutdown_does_not_wait_for_a_hanging_controller(compute_factory, receiver):
    db = compute_factory(interval=1)
    assert receiver.wait_for(lambda d: True, timeout=5) is not None
    receiver.mode = "hang"
    time.sleep(1.5)  # a report is now stuck waiting for an answer
    t = time.time()
    db.stop()
    took = time.time() - t
    assert db.proc.returncode == 0
    assert took < 5.0, f"shutdown took {took:.1f}s"
