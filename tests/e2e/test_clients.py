"""Every client the platform promises, through the proxy, with TLS (verified
against a CA, and refused with another CA) and without: the mariadb CLI
(Connector/C), PyMySQL, Node's mysql2 and mariadb connectors, Perl's
DBD::MariaDB.  Real nginx with the module, controller, Redis, mariadbd.  Run
on nginx 1.22 + MariaDB 10.11 (Debian 12) and, by `make test-trixie`, on
nginx 1.26 + MariaDB 11.8 (Debian 13)."""
import os
import subprocess

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


@pytest.fixture
def tls_pki(run_dir):
    ca_key, ca = make_ca(run_dir, "ca")
    _, other_ca = make_ca(run_dir, "other-ca")
    key, csr, cert = (os.path.join(run_dir, n) for n in ("srv.key", "srv.csr", "srv.pem"))
    ext = os.path.join(run_dir, "srv.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                    "-keyout", key, "-out", csr], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
                    "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", cert],
                   check=True, capture_output=True)
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
