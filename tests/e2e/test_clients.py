"""Every client the platform promises, through the proxy, with TLS (verified
against a CA, and refused with another CA) and without: the mariadb CLI
(Connector/C), PyMySQL, Node's mysql2 and mariadb connectors, Perl's
DBD::MariaDB.  Real nginx with the module, controller, Redis, mariadbd.  Run
on nginx 1.22 + MariaDB 10.11 (Debian 12) and, by `make test-trixie`, on
nginx 1.26 + MariaDB 11.8 (Debian 13)."""
import os
import subprocess
import time

import pymysql
import pytest

from conftest import BUILD, mysql
from nginx_fixture import start_nginx

NODE_MODULES = os.path.join(BUILD, "npm", "node_modules")

NODE_SCRIPT = r"""
const [lib, port, user, pw, db, ca] = process.argv.slice(1)  // node -e SCRIPT args...;
const fs = require('fs');
const ssl = ca === 'plain' ? undefined : { ca: fs.readFileSync(ca), rejectUnauthorized: true };
async function main() {
  let rows;
  if (lib === 'mysql2') {
    const m = require('mysql2/promise');
    const c = await m.createConnection({ host: '127.0.0.1', port: +port, user, password: pw,
                                         database: db, ssl, connectTimeout: 30000 });
    [rows] = await c.query('SELECT v FROM t WHERE id = 1');
    await c.end();
  } else {
    const m = require('mariadb');
    const c = await m.createConnection({ host: '127.0.0.1', port: +port, user, password: pw,
                                         database: db, ssl: ssl || false, connectTimeout: 30000 });
    rows = await c.query('SELECT v FROM t WHERE id = 1');
    await c.end();
  }
  console.log('ROW ' + rows[0].v);
}
main().catch(e => { console.log('ERROR ' + (e.code || '') + ' ' + e.message); process.exit(3); });
"""

PERL_SCRIPT = r"""
use strict; use DBI;
my ($port, $user, $pw, $db, $ca) = @ARGV;
my $dsn = "DBI:MariaDB:database=$db;host=127.0.0.1;port=$port;mariadb_connect_timeout=30";
$dsn .= ";mariadb_ssl=1;mariadb_ssl_ca_file=$ca;mariadb_ssl_verify_server_cert=1" if $ca ne 'plain';
my $dbh = DBI->connect($dsn, $user, $pw, { RaiseError => 0, PrintError => 0 })
    or do { print "ERROR $DBI::errstr\n"; exit 3 };
my ($v) = $dbh->selectrow_array('SELECT v FROM t WHERE id = 1');
print "ROW $v\n";
$dbh->disconnect;
"""


def make_ca(d, name):
    key, pem = os.path.join(d, f"{name}.key"), os.path.join(d, f"{name}.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={name}", "-keyout", key, "-out", pem,
                    "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign"],
                   check=True, capture_output=True)
    return key, pem


def server_cert(d, prefix="srv"):
    """A CA and a certificate for 127.0.0.1 (IP SAN) signed by it:
    (ca.pem, cert.pem, key.pem)."""
    ca_key, ca = make_ca(d, f"{prefix}-ca")
    key, csr, cert, ext = (os.path.join(d, f"{prefix}.{n}") for n in ("key", "csr", "pem", "ext"))
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                    "-keyout", key, "-out", csr], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
                    "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", cert],
                   check=True, capture_output=True)
    return ca, cert, key


@pytest.fixture
def tls_pki(run_dir):
    ca, cert, key = server_cert(run_dir)
    _, other_ca = make_ca(run_dir, "other-ca")
    return {"ca": ca, "other_ca": other_ca, "cert": cert, "key": key}


@pytest.fixture
def proxy(controller, procs, run_dir, tls_pki):
    ngx = start_nginx(procs, run_dir, controller, ssl=True,
                      extra=f"        ssl_certificate {tls_pki['cert']};\n"
                            f"        ssl_certificate_key {tls_pki['key']};\n"
                            "        ssl_protocols TLSv1.2 TLSv1.3;\n")
    doc = controller.create_project("clients")
    c = mysql(ngx.port, doc["admin_user"], doc["admin_password"], "clients")
    cur = c.cursor()
    cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
    cur.execute("INSERT INTO t VALUES (1, 'hello')")
    c.close()
    return ngx, doc


def run_client(kind, port, doc, ca):
    user, pw = doc["admin_user"], doc["admin_password"]
    if kind == "mariadb-cli":
        argv = ["mariadb", "-h127.0.0.1", f"-P{port}", f"-u{user}", f"-p{pw}", "--batch",
                "--skip-column-names", "clients", "-e", "SELECT v FROM t WHERE id = 1"]
        argv[1:1] = ["--skip-ssl"] if ca == "plain" else [f"--ssl-ca={ca}",
                                                           "--ssl-verify-server-cert"]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        return ("ROW " + r.stdout.strip()) if r.returncode == 0 else "ERROR " + r.stderr
    if kind == "pymysql":
        tls = {} if ca == "plain" else {"ssl_ca": ca, "ssl_verify_cert": True,
                                        "ssl_verify_identity": True}
        try:
            c = pymysql.connect(host="127.0.0.1", port=port, user=user, password=pw,
                                database="clients", connect_timeout=30, **tls)
        except pymysql.err.MySQLError as e:
            return f"ERROR {e}"
        try:
            if ca != "plain":
                assert c._sock.version().startswith("TLS")
            cur = c.cursor()
            cur.execute("SELECT v FROM t WHERE id = 1")
            return "ROW " + cur.fetchone()[0]
        finally:
            c.close()
    if kind in ("mysql2", "mariadb-node"):
        lib = "mysql2" if kind == "mysql2" else "mariadb"
        env = dict(os.environ, NODE_PATH=NODE_MODULES)
        r = subprocess.run(["node", "-e", NODE_SCRIPT, lib, str(port), user, pw, "clients", ca],
                           capture_output=True, text=True, timeout=60, env=env)
        return (r.stdout + r.stderr).strip()
    if kind == "dbd-mariadb":
        r = subprocess.run(["perl", "-e", PERL_SCRIPT, str(port), user, pw, "clients", ca],
                           capture_output=True, text=True, timeout=60)
        return (r.stdout + r.stderr).strip()
    raise AssertionError(kind)


CLIENTS = ["mariadb-cli", "pymysql", "mysql2", "mariadb-node", "dbd-mariadb"]


@pytest.mark.parametrize("kind", CLIENTS)
def test_client_through_the_proxy(proxy, tls_pki, kind):
    if kind in ("mysql2", "mariadb-node"):
        assert os.path.isdir(os.path.join(NODE_MODULES, "mysql2" if kind == "mysql2" else "mariadb")), \
            "Node connectors missing: make deps installs them into build/npm"
    ngx, doc = proxy
    # TLS, verified against the CA that signed the proxy's certificate
    assert run_client(kind, ngx.port, doc, tls_pki["ca"]) == "ROW hello"
    # the same client trusting another CA refuses the proxy: TLS was real
    out = run_client(kind, ngx.port, doc, tls_pki["other_ca"])
    assert out.startswith("ERROR"), out
    # plain text on the same port
    assert run_client(kind, ngx.port, doc, "plain") == "ROW hello"
    assert ngx.alerts() == []


def ssl_request():
    caps = 0x00000800 | 0x00000200 | 0x00080000 | 0x00008000   # SSL, 4.1, plugin auth, secure
    payload = caps.to_bytes(4, "little") + (16 << 20).to_bytes(4, "little") + b"\x2d" + b"\0" * 23
    return len(payload).to_bytes(3, "little") + b"\x01" + payload


def ends_cleanly(s, timeout=15):
    """The proxy closes the connection (EOF or reset) within timeout,
    answering nothing but perhaps a TLS alert or a MySQL ERR."""
    import socket as so
    s.settimeout(timeout)
    try:
        while s.recv(4096):
            pass
    except (ConnectionResetError, so.timeout) as e:
        if isinstance(e, so.timeout):
            return False
    return True


def test_broken_tls_clients_get_a_clean_close(proxy, tls_pki):
    """After an SSLRequest: garbage instead of a ClientHello, a ClientHello
    cut short, or nothing at all -- each gets a clean close, no worker dies,
    and a real TLS client is served afterwards."""
    from nginx_fixture import raw_connect, read_packet
    ngx, doc = proxy
    workers = ngx.worker_pids()

    def after_ssl_request(send, close_early=False):
        s = raw_connect(ngx.port)
        seq, greeting = read_packet(s)
        assert seq == 0 and greeting[0] == 10
        caps = int.from_bytes(greeting[greeting.index(b"\0", 1) + 1 + 4 + 9:][:2], "little")
        assert caps & 0x0800, "TLS offered"
        s.sendall(ssl_request())
        if send:
            s.sendall(send)
        if close_early:
            s.close()
            return True
        ok = ends_cleanly(s)
        s.close()
        return ok

    # garbage where the ClientHello belongs
    assert after_ssl_request(b"GET / HTTP/1.0\r\n\r\n" + os.urandom(300))
    # a TLS record header announcing a ClientHello that never comes whole
    assert after_ssl_request(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(40))
    # a client that gives up right after the SSLRequest
    assert after_ssl_request(b"", close_early=True)
    # a MySQL packet sent in plain text after asking for TLS
    assert after_ssl_request(bytes.fromhex("0a000002") + b"\x03SELECT 1")
    time.sleep(0.5)
    assert ngx.worker_pids() == workers
    assert ngx.alerts() == []
    assert run_client("pymysql", ngx.port, doc, tls_pki["ca"]) == "ROW hello"
