"""INSTALL SONAME / UNINSTALL SONAME at run time: the reporter thread comes
and goes with the plugin, nothing leaks, the server stays healthy."""
import time

from mariadb_fixture import CONNECT_QUERIES, MariaDB, compute_factory, receiver  # noqa: F401


def wait_threads(db, want, timeout=5.0):
    end = time.time() + timeout
    while True:
        n = db.thread_count()
        if n == want or time.time() > end:
            return n
        time.sleep(0.05)


def test_install_uninstall_repeatedly(compute_factory, receiver):
    # not loaded at start; its settings are in the options, as in my.cnf
    db = compute_factory(plugin=False, interval=1)
    admin = db.root()  # one session for all statements: no thread-cache noise
    cur = admin.cursor()
    time.sleep(0.5)
    baseline = db.thread_count()
    assert "wake_activity" not in db.thread_names()

    for i in range(5):
        n = receiver.count()
        cur.execute("INSTALL SONAME 'wake_activity'")
        assert db.thread_names().count("wake_activity") == 1
        assert db.thread_count() == baseline + 1
        rep = receiver.wait_for(lambda d: True, timeout=5, start=n)
        assert rep is not None, f"no report after INSTALL #{i + 1}"
        assert rep.doc["seq"] == 1  # a fresh plugin instance
        assert rep.doc["compute_id"] == db.compute_id
        # the receiver records a report before the plugin has read the answer
        sent, end = 0, time.time() + 3
        while sent < 1 and time.time() < end:
            cur.execute("SHOW GLOBAL STATUS LIKE 'wake_activity_reports_sent'")
            sent = int(cur.fetchone()[1])
        assert sent >= 1

        cur.execute("UNINSTALL SONAME 'wake_activity'")
        assert wait_threads(db, baseline) == baseline, f"thread leaked by cycle {i + 1}"
        assert "wake_activity" not in db.thread_names()
        cur.execute("SHOW GLOBAL STATUS LIKE 'wake_activity%'")
        assert cur.fetchall() == ()

    n = receiver.count()
    time.sleep(1.5)
    assert receiver.count() == n, "reports after UNINSTALL"
    cur.execute("SELECT 1")
    admin.close()
    db.stop()
    assert db.proc.returncode == 0
    log = db.log_tail(200000)
    assert "[ERROR]" not in log
    assert "got signal" not in log.lower()


def test_sessions_older_than_the_plugin(compute_factory, receiver):
    """A session opened before INSTALL is invisible to the plugin: its
    queries do not count and its disconnect does not push the count
    below zero (documented limitation; production loads at startup)."""
    db = compute_factory(plugin=False, report_url="")
    db.create_user("app", "pw")
    old = db.client("app", "pw")
    db.sql("INSTALL SONAME 'wake_activity'")
    with old.cursor() as cur:
        cur.execute("SELECT 1")
    new = db.client("app", "pw")
    old.close()
    time.sleep(0.3)
    st = db.status()
    assert st["wake_activity_connections"] == 1
    assert st["wake_activity_connects"] == 1
    assert st["wake_activity_disconnects"] == 0
    assert st["wake_activity_queries"] == CONNECT_QUERIES  # new's own, if any
    new.close()
    time.sleep(0.3)
    assert db.status()["wake_activity_connections"] == 0


def wait_gone(db, timeout=5.0):
    end = time.time() + timeout
    while "wake_activity" in db.thread_names() and time.time() < end:
        time.sleep(0.05)
    return "wake_activity" not in db.thread_names()


def test_uninstall_while_clients_run(compute_factory, receiver):
    """Sessions that ran statements while the plugin was loaded hold it:
    the server runs deinit only when the last of them releases it (at its
    next statement or when it ends).  Until then the old instance keeps
    running, and an INSTALL in that window would be a no-op; here every
    round waits for the release and the server stays healthy."""
    db = compute_factory(plugin=False, interval=1)
    db.create_user("app", "pw")
    clients = [db.client("app", "pw") for _ in range(4)]
    for _ in range(3):
        db.sql("INSTALL SONAME 'wake_activity'")
        for c in clients:
            with c.cursor() as cur:
                cur.execute("SELECT 1")
        db.sql("UNINSTALL SONAME 'wake_activity'")
        assert "wake_activity" in db.thread_names()  # still held by the clients
        for c in clients:
            with c.cursor() as cur:
                cur.execute("SELECT 1")
        assert wait_gone(db), "deinit did not run once every session let go"
    for c in clients:
        c.close()
    assert db.sql("SELECT 1") == ((1,),)
    assert wait_gone(db)
