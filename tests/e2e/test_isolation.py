"""Tenant isolation: a tenant's admin, through the proxy, owns its databases
and nothing else -- not the host's files, not the server's code or settings,
not other tenants' computes (DESIGN.md §4, docs/tenancy.md).  Real nginx with
the module, real controller, Redis and mariadbd computes."""
import os
import socket
import stat
import subprocess
import time

import pymysql
import pytest

from conftest import mysql
from nginx_fixture import start_nginx

MARIADB = "/usr/bin/mariadb"


@pytest.fixture
def env(controller, procs, run_dir):
    ngx = start_nginx(procs, run_dir, controller)
    a = controller.create_project("tenant-a")
    b = controller.create_project("tenant-b")
    return controller, ngx, a, b


def admin(ngx, doc, db=None, **kw):
    return mysql(ngx.port, doc["admin_user"], doc["admin_password"],
                 db or doc["id"], **kw)


def q(conn, sql):
    cur = conn.cursor()
    cur.execute(sql)
    return cur.fetchall()


def refused(conn, sql):
    """The statement fails with a MariaDB error; returns its errno."""
    with pytest.raises(pymysql.err.MySQLError) as e:
        q(conn, sql)
    return e.value.args[0]


def compute_dir(controller, doc):
    return os.path.join(controller.data_dir, doc["compute_id"])


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


def as_uid(uid, fn):
    """Runs fn() in a child process with uid/gid `uid` and no groups;
    returns what it returned (a short string)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            res = fn()
        except BaseException as e:  # noqa: B902 - report anything
            res = "exc:" + type(e).__name__
        os.write(w, res.encode()[:200])
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    with os.fdopen(r) as f:
        return f.read()


def test_compute_runs_as_its_own_uid_with_a_clean_environment(env):
    controller, ngx, a, b = env
    ca, cb = controller.compute("tenant-a"), controller.compute("tenant-b")
    sa, sb = proc_status(ca["pid"]), proc_status(cb["pid"])
    uid_a, uid_b = int(sa["Uid"][0]), int(sb["Uid"][0])
    # real, effective, saved and fs uid all the compute's; never root, never
    # ours (the controller's), and another compute has another
    assert set(sa["Uid"]) == {str(uid_a)} and set(sa["Gid"]) == {str(uid_a)}
    assert uid_a not in (0, os.getuid()) and uid_b not in (0, os.getuid())
    assert uid_a != uid_b
    assert sa["Groups"] == []
    with open(f"/proc/{ca['pid']}/environ", "rb") as f:
        environ = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if e)
    assert set(environ) <= {b"PATH", b"LANG", b"TZ", b"NOTIFY_SOCKET"}, environ
    blob = b"".join(environ.values())
    assert controller.token.encode() not in blob
    assert controller.wake_token.encode() not in blob
    # its my.cnf: root-owned, readable by its group only, with its own report
    # token and none of the controller's secrets
    cnf = os.path.join(compute_dir(controller, a), "my.cnf")
    st = os.stat(cnf)
    assert st.st_uid == 0 and st.st_gid == uid_a
    assert stat.S_IMODE(st.st_mode) == 0o640
    text = open(cnf).read()
    assert "wake-activity-token" in text
    assert controller.token not in text and controller.wake_token not in text
    # the controller's config is not readable by computes
    assert stat.S_IMODE(os.stat(controller.conf).st_mode) & 0o077 == 0


def test_compute_cannot_touch_another_tenant_or_the_host(env):
    controller, ngx, a, b = env
    uid_a = int(proc_status(controller.compute("tenant-a")["pid"])["Uid"][0])
    dir_b = compute_dir(controller, b)
    plugin_dir = os.path.join(controller.data_dir, ".plugins")

    def try_open(path, mode="r"):
        def fn():
            try:
                with open(path, mode):
                    return "opened"
            except PermissionError:
                return "denied"
            except OSError as e:
                return "error:" + str(e.errno)
        return fn

    def try_list(path):
        def fn():
            try:
                os.listdir(path)
                return "listed"
            except PermissionError:
                return "denied"
        return fn

    # as compute A's uid: B's config, datadir and socket are out of reach
    assert as_uid(uid_a, try_open(os.path.join(dir_b, "my.cnf"))) == "denied"
    assert as_uid(uid_a, try_list(os.path.join(dir_b, "data"))) == "denied"
    assert as_uid(uid_a, try_list(os.path.join(controller.socket_dir, b["compute_id"]))) == "denied"
    assert as_uid(uid_a, try_list(controller.data_dir)) == "denied"
    # nor can it add code to the plugin directory or read the controller's config
    assert as_uid(uid_a, try_open(os.path.join(plugin_dir, "evil.so"), "w")) == "denied"
    assert as_uid(uid_a, try_open(controller.conf)) == "denied"
    # but its own files are its own
    own = os.path.join(compute_dir(controller, a), "data", "ibdata1")
    assert as_uid(uid_a, try_open(own)) == "opened"
    # the plugin directory holds only the allow-list and the activity plugin
    assert sorted(os.listdir(plugin_dir)) == ["auth_ed25519.so", "wake_activity.so"]


def test_tenant_admin_cannot_reach_the_host_or_the_server(env):
    controller, ngx, a, b = env
    c = admin(ngx, a)
    q(c, "CREATE TABLE t (line TEXT)")
    other_cnf = os.path.join(compute_dir(controller, b), "my.cnf")
    plugin_dir = os.path.join(controller.data_dir, ".plugins")
    # reading files: LOAD_FILE answers NULL without the FILE privilege
    for path in ("/etc/passwd", "/proc/self/environ", other_cnf, controller.conf,
                 os.path.join(compute_dir(controller, a), "my.cnf")):
        assert q(c, f"SELECT LOAD_FILE('{path}')") == ((None,),), path
    assert refused(c, "LOAD DATA INFILE '/etc/passwd' INTO TABLE t") in (1045, 1227)
    # writing files, including into the plugin directory
    assert refused(c, "SELECT 'x' INTO OUTFILE '/tmp/smdb-tenant-out'") in (1045, 1227)
    assert not os.path.exists("/tmp/smdb-tenant-out")
    assert refused(c, f"SELECT 'x' INTO DUMPFILE '{plugin_dir}/evil.so'") in (1045, 1227)
    assert not os.path.exists(os.path.join(plugin_dir, "evil.so"))
    # globals that name files or change the server; read-only ones stay so
    assert refused(c, "SET GLOBAL general_log_file = '/tmp/smdb-general.log'") == 1227
    assert refused(c, "SET GLOBAL general_log = 1") == 1227
    assert refused(c, "SET GLOBAL max_connections = 100000") == 1227
    assert refused(c, "SET GLOBAL secure_file_priv = ''") in (1227, 1238)
    # code: no plugin install or uninstall, no writes to what the server loads
    assert refused(c, "INSTALL SONAME 'ha_federatedx'") in (1227, 1142, 1126)
    assert refused(c, "UNINSTALL SONAME 'wake_activity'") in (1227, 1142)
    assert refused(c, "UNINSTALL PLUGIN wake_activity") in (1227, 1142)
    assert refused(c, "INSERT INTO mysql.plugin VALUES ('federated', 'ha_federatedx.so')") == 1142
    assert refused(c, "UPDATE mysql.global_priv SET Priv = '{}'") == 1142
    assert refused(c, "CREATE TABLE mysql.evil (i INT)") == 1142
    # no more privileges than it has, for itself or for others
    assert refused(c, "GRANT FILE ON *.* TO CURRENT_USER") in (1045, 1044)
    assert refused(c, "GRANT SUPER ON *.* TO CURRENT_USER") in (1045, 1044)
    q(c, "CREATE USER 'helper'@'%' IDENTIFIED BY 'pw-helper-1'")
    assert refused(c, "GRANT INSERT ON mysql.* TO 'helper'@'%'") == 1044
    # no pattern that covers `mysql` can be passed on (MariaDB has no partial
    # revokes: an account holding `%` could write mysql.global_priv)
    for pattern in ("%", "m%", "my_ql", "%sql", "_ysql"):
        assert refused(c, f"GRANT ALL ON `{pattern}`.* TO 'helper'@'%'") == 1044, pattern
    assert refused(c, "GRANT ALL ON *.* TO 'helper'@'%'") in (1045, 1044)
    # the global privileges it holds cannot be passed on either
    assert refused(c, "GRANT CREATE USER ON *.* TO 'helper'@'%'") in (1045, 1044)
    # and whatever the helper got, it writes nothing in mysql.*
    q(c, f"GRANT ALL ON `{a['id']}\\_%`.* TO 'helper'@'%'")
    q(c, f"GRANT SELECT ON `{a['id']}`.* TO 'helper'@'%'")
    h = mysql(ngx.port, "helper", "pw-helper-1", a["id"])
    assert refused(h, "UPDATE mysql.global_priv SET Priv = '{}'") == 1142
    h.close()
    # the server as a whole
    assert refused(c, "SHUTDOWN") == 1227
    # a table placed in another tenant's datadir
    # (refused, or -- symbolic-links off -- the option ignored with a warning)
    try:
        q(c, f"CREATE TABLE far (i INT) DATA DIRECTORY = '{compute_dir(controller, b)}/data'")
    except pymysql.err.MySQLError:
        pass
    assert not any(f.startswith("far") for f in os.listdir(os.path.join(compute_dir(controller, b), "data")))
    c.close()
    # the compute is still up, and the activity plugin still loaded
    c = admin(ngx, a)
    assert q(c, "SELECT PLUGIN_STATUS FROM information_schema.PLUGINS "
                "WHERE PLUGIN_NAME = 'wake_activity'") == (("ACTIVE",),)
    c.close()


def test_tenant_admin_owns_its_databases(env, run_dir):
    controller, ngx, a, b = env
    c = admin(ngx, a, local_infile=True)
    db = a["id"]
    appdb = f"`{db}_app`"
    # DDL and DML in its own database and in databases it creates
    q(c, "CREATE DATABASE anyname")
    q(c, "CREATE TABLE anyname.t (i INT)")
    q(c, "INSERT INTO anyname.t VALUES (1)")
    q(c, "DROP DATABASE anyname")
    q(c, f"CREATE DATABASE {appdb}")
    q(c, f"CREATE TABLE {appdb}.items (id INT PRIMARY KEY, name VARCHAR(20))")
    q(c, f"INSERT INTO {appdb}.items VALUES (1, 'one')")
    q(c, f"ALTER TABLE {appdb}.items ADD COLUMN qty INT DEFAULT 0")
    q(c, f"CREATE INDEX by_name ON {appdb}.items (name)")
    q(c, f"CREATE TABLE `{db}`.log (id INT AUTO_INCREMENT PRIMARY KEY, note TEXT)")
    q(c, f"CREATE VIEW `{db}`.v AS SELECT COUNT(*) AS n FROM {appdb}.items")
    q(c, f"CREATE TRIGGER `{db}`.tr AFTER INSERT ON `{db}`.log FOR EACH ROW SET @fired = 1")
    q(c, f"CREATE PROCEDURE `{db}`.addone(x INT) INSERT INTO {appdb}.items (id, name) VALUES (x, 'p')")
    q(c, f"CALL `{db}`.addone(2)")
    q(c, f"CREATE FUNCTION `{db}`.twice(x INT) RETURNS INT DETERMINISTIC RETURN 2 * x")
    assert q(c, f"SELECT `{db}`.twice(21)") == ((42,),)
    # events, and they run
    q(c, f"CREATE EVENT `{db}`.tick ON SCHEDULE EVERY 1 SECOND DO "
         f"INSERT INTO `{db}`.log (note) VALUES ('event')")
    end = time.time() + 10
    while time.time() < end and q(c, f"SELECT COUNT(*) FROM `{db}`.log")[0][0] == 0:
        time.sleep(0.2)
    assert q(c, f"SELECT COUNT(*) FROM `{db}`.log")[0][0] > 0
    q(c, f"DROP EVENT `{db}`.tick")
    # session settings
    q(c, "SET SESSION sql_mode = 'ANSI_QUOTES'")
    q(c, "SET SESSION wait_timeout = 120")
    assert q(c, "SELECT @@session.wait_timeout") == ((120,),)
    # LOAD DATA LOCAL: the client's own file
    csv = os.path.join(run_dir, "items.csv")
    with open(csv, "w") as f:
        f.write("10\tten\n11\televen\n")
    q(c, f"LOAD DATA LOCAL INFILE '{csv}' INTO TABLE {appdb}.items (id, name)")
    assert q(c, f"SELECT COUNT(*) FROM {appdb}.items")[0][0] == 4
    # users and grants on its databases; ed25519 without INSTALL SONAME
    q(c, "CREATE USER 'app'@'%' IDENTIFIED BY 'app-pw-1'")
    q(c, f"GRANT SELECT ON `{db}`.* TO 'app'@'%'")
    # in GRANT a database name is a pattern: its `_` is written escaped
    q(c, f"GRANT SELECT, INSERT ON `{db}\\_app`.* TO 'app'@'%'")
    q(c, "CREATE USER 'edu'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('ed-pw-1')")
    q(c, f"GRANT SELECT ON `{db}`.* TO 'edu'@'%'")
    app = mysql(ngx.port, "app", "app-pw-1", db)
    assert q(app, f"SELECT COUNT(*) FROM {appdb}.items")[0][0] == 4
    with pytest.raises(pymysql.err.MySQLError):
        q(app, f"DROP TABLE {appdb}.items")
    out = subprocess.run([MARIADB, "-h127.0.0.1", f"-P{ngx.port}", "--skip-ssl", "-uedu", "-ped-pw-1",
                          "--batch", "--skip-column-names", db, "-e", "SELECT CURRENT_USER()"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "edu@%", out.stderr
    # KILL: its own sessions, and those of the users it made
    victim = admin(ngx, a)
    vid = q(victim, "SELECT CONNECTION_ID()")[0][0]
    q(c, f"KILL {vid}")
    with pytest.raises(pymysql.err.MySQLError):
        q(victim, "SELECT 1")
    assert q(c, "SHOW PROCESSLIST")
    assert (f"{db}_app",) in q(c, "SHOW DATABASES")
    app.close()
    q(c, "DROP USER 'app'@'%'")
    q(c, f"DROP DATABASE {appdb}")
    c.close()


def test_proxy_protocol_only_from_the_proxy(env):
    controller, ngx, a, b = env
    port = controller.compute("tenant-a")["port"]
    header = b"PROXY TCP4 10.9.8.7 127.0.0.1 4444 3306\r\n"

    def first_bytes(source):
        s = socket.socket()
        s.settimeout(3)
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(header)
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        s.close()
        return data

    # any local process (127.0.0.1): a forged header is refused (ERR, close)
    got = first_bytes("127.0.0.1")
    assert b"Proxy header is not accepted" in got, got
    # the proxy's address (nginx binds 127.0.0.2): accepted, the server
    # greets and waits for the client's handshake (timeout, no ERR)
    got = first_bytes("127.0.0.2")
    assert len(got) > 5 and got[4] == 10 and b"not accepted" not in got, got
    assert len(got) == 4 + int.from_bytes(got[:3], "little"), got  # greeting only
    # and through nginx the compute sees the client's real address
    c = admin(ngx, a)
    host = q(c, "SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()")[0][0]
    assert host.startswith("127.0.0.1:"), host
    c.close()
