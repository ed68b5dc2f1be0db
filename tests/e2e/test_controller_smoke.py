from conftest import mysql


def test_create_write_suspend_resume(controller):
    doc = controller.create_project("smoke1")
    assert doc["compute"]["state"] == "running"
    port = doc["compute"]["port"]
    c = mysql(port, doc["admin_user"], doc["admin_password"])
    cur = c.cursor()
    cur.execute("CREATE DATABASE app")
    cur.execute("CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20))")
    cur.execute("INSERT INTO app.t VALUES (1, 'one'), (2, 'two')")
    c.close()
    st, comp = controller.post(f"/api/v1/compute/{doc['compute_id']}/suspend", {"mode": "stop"})
    assert st == 200, comp
    assert comp["state"] == "suspended" and comp["mode"] == "stopped"
    st, w = controller.wake("smoke1")
    assert st == 200, w
    assert w["cold_start"] == "started"
    assert w["port"] == port
    c = mysql(port, doc["admin_user"], doc["admin_password"], "app")
    cur = c.cursor()
    cur.execute("SELECT v FROM t ORDER BY id")
    assert [r[0] for r in cur.fetchall()] == ["one", "two"]
