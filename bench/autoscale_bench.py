"""Autoscaler benchmark (docs/autoscaling.md, make bench).

In one run, through nginx with the module, with small units (250 millicpus,
16 MiB of pool) so that 1..4 CU is a real difference on a 2-core box:
 (1) sysbench oltp_read_only throughput pinned at 1 CU vs pinned at 4 CU;
 (2) time from the start of that load to the first step up and to 4 CU on a
     project of 1..4 CU;
 (3) the autoscaler's decisions over a load ramp (BENCH_RAMP_S, default 300 s):
     1, 2, 4, 8, 4, 1 clients, then idle; the size and the CPU used sampled
     every half second, plotted to build/bench/autoscale.svg.
"""
import os
import re
import subprocess
import sys
import threading
import time

from common import Platform

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from conftest import BUILD  # noqa: E402
from nginx_fixture import start_nginx  # noqa: E402

RAMP_S = int(os.environ.get("BENCH_RAMP_S", "300"))
SB_TIME = int(os.environ.get("BENCH_SYSBENCH_TIME", "15"))
SYSBENCH = "/usr/bin/sysbench"
UNITS = dict(cu_millicpus=250, cu_buffer_pool_mb=16, cu_memory_mb=256, cu_max_connections=20,
             report_interval_s=1)
RULES = dict(autoscale_up_cooldown_s=3, autoscale_down_cooldown_s=5, autoscale_down_after_s=10)
RAMP = [1, 2, 4, 8, 4, 1, 0]   # clients per segment; 0: idle


def sb(port, project, doc, threads, seconds):
    return [SYSBENCH, "oltp_read_only", "--mysql-host=127.0.0.1", f"--mysql-port={port}",
            f"--mysql-user={doc['admin_user']}", f"--mysql-password={doc['admin_password']}",
            f"--mysql-db={project}", "--db-driver=mysql", "--tables=1", "--table-size=5000",
            f"--threads={threads}", f"--time={seconds}", "--report-interval=0"]


def run(argv, what):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"sysbench {what}: {r.stdout}{r.stderr}")
    m = re.search(r"transactions:\s+\d+\s+\(([\d.]+) per sec", r.stdout)
    return float(m.group(1)) if m else 0.0


class Sampler(threading.Thread):
    """The compute's size and CPU utilisation every half second."""

    def __init__(self, ctl, project):
        super().__init__(daemon=True)
        self.ctl, self.project = ctl, project
        self.t0 = time.time()
        self.samples = []        # (t, cu, cpu utilisation or None, clients)
        self.clients = 0
        self.stopping = False

    def run(self):
        while not self.stopping:
            try:
                c = self.ctl.compute(self.project)
                cpu = (c.get("autoscale") or {}).get("cpu_utilization")
                self.samples.append((time.time() - self.t0, c["cu"], cpu, self.clients))
            except Exception:   # a busy box: skip a sample
                pass
            time.sleep(0.5)


def svg(samples, path, ramp_s):
    w, h, left, bottom = 900, 360, 50, 40
    tmax = max(ramp_s, samples[-1][0] if samples else 1)
    x = lambda t: left + (w - left - 20) * t / tmax
    y_cu = lambda cu: h - bottom - (h - bottom - 20) * cu / 4.0
    y_cl = lambda n: h - bottom - (h - bottom - 20) * n / 8.0
    cu_pts, cl_pts, cpu_pts = [], [], []
    for t, cu, cpu, n in samples:
        cu_pts.append(f"{x(t):.1f},{y_cu(cu):.1f}")
        cl_pts.append(f"{x(t):.1f},{y_cl(n):.1f}")
        if cpu is not None:
            cpu_pts.append(f"{x(t):.1f},{y_cu(4 * min(cpu, 1.0)):.1f}")
    grid = "".join(f'<line x1="{left}" y1="{y_cu(k):.1f}" x2="{w - 20}" y2="{y_cu(k):.1f}" '
                   f'stroke="#ddd"/><text x="{left - 8}" y="{y_cu(k) + 4:.1f}" '
                   f'text-anchor="end" font-size="11">{k}</text>' for k in range(5))
    ticks = "".join(f'<text x="{x(t):.1f}" y="{h - bottom + 16}" text-anchor="middle" '
                    f'font-size="11">{int(t)}s</text>'
                    for t in range(0, int(tmax) + 1, max(1, int(tmax) // 10)))
    doc = f"""<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}">
<rect width="{w}" height="{h}" fill="white"/>
<text x="{left}" y="14" font-size="13">autoscaler over a load ramp: size (CU, left axis),
clients (0..8) and CPU used of allowed (0..100%)</text>
{grid}{ticks}
<polyline fill="none" stroke="#bbb" stroke-width="2" points="{' '.join(cl_pts)}"/>
<polyline fill="none" stroke="#e69f00" stroke-width="1" points="{' '.join(cpu_pts)}"/>
<polyline fill="none" stroke="#0072b2" stroke-width="3" points="{' '.join(cu_pts)}"/>
<text x="{w - 200}" y="34" font-size="11" fill="#0072b2">size (CU)</text>
<text x="{w - 200}" y="48" font-size="11" fill="#888">clients</text>
<text x="{w - 200}" y="62" font-size="11" fill="#e69f00">CPU used</text>
</svg>
"""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(doc)


def main():
    if not os.path.exists(SYSBENCH):
        print("  sysbench not installed (make deps): skipped")
        return
    p = Platform(**UNITS, **RULES)
    try:
        ctl = p.controller
        ngx = start_nginx(p.procs, p.run_dir, ctl, cache_ttl="2s")
        docs = {"bench-1cu": ctl.create_project("bench-1cu", min_cu=1, max_cu=1,
                                                idle_timeout_s=3600, freeze_after_s=0),
                "bench-4cu": ctl.create_project("bench-4cu", min_cu=4, max_cu=4,
                                                idle_timeout_s=3600, freeze_after_s=0),
                "bench-auto": ctl.create_project("bench-auto", min_cu=1, max_cu=4,
                                                 idle_timeout_s=3600, freeze_after_s=0)}
        for name, d in docs.items():
            subprocess.run(sb(ngx.port, name, d, 1, 1) + ["prepare"], check=True,
                           capture_output=True, timeout=300)
        # a compute starts at its project's min_cu
        assert ctl.compute("bench-4cu")["cu"] == 4

        # (1) the same load at 1 CU and at 4 CU
        one = run(sb(ngx.port, "bench-1cu", docs["bench-1cu"], 8, SB_TIME) + ["run"], "1 CU")
        four = run(sb(ngx.port, "bench-4cu", docs["bench-4cu"], 8, SB_TIME) + ["run"], "4 CU")
        print(f"(1) oltp_read_only, 8 clients through nginx, {SB_TIME} s "
              f"(1 CU = 250 millicpus, 16 MiB pool):")
        print(f"  pinned at 1 CU                                  {one:8.0f} tps")
        print(f"  pinned at 4 CU                                  {four:8.0f} tps "
              f"({four / one if one else 0:.2f}x)")

        # (2) time to scale up under that load
        t0 = time.time()
        box = {}
        th = threading.Thread(target=lambda: box.setdefault("tps", run(
            sb(ngx.port, "bench-auto", docs["bench-auto"], 8, SB_TIME) + ["run"], "auto")))
        th.start()
        first = top = None
        while th.is_alive():
            cu = ctl.compute("bench-auto")["cu"]
            if cu >= 2 and first is None:
                first = time.time() - t0
            if cu == 4 and top is None:
                top = time.time() - t0
            time.sleep(0.1)
        th.join()
        print(f"(2) 1..4 CU under the same load (up cool-down {RULES['autoscale_up_cooldown_s']} s):")
        print(f"  autoscaled                                      {box.get('tps', 0):8.0f} tps")
        print("  load start to the first step up                "
              + (f"{first:8.1f} s" if first is not None else "   never"))
        print("  load start to 4 CU                             "
              + (f"{top:8.1f} s" if top is not None else "   never"))

        # back to 1 CU before the ramp
        end = time.time() + 120
        while ctl.compute("bench-auto")["cu"] != 1 and time.time() < end:
            time.sleep(0.5)

        # (3) the ramp
        seg = max(5, RAMP_S // len(RAMP))
        log_from = len(open(os.path.join(p.run_dir, "controller.log")).read())
        sampler = Sampler(ctl, "bench-auto")
        sampler.start()
        for n in RAMP:
            sampler.clients = n
            if n:
                run(sb(ngx.port, "bench-auto", docs["bench-auto"], n, seg) + ["run"],
                    f"ramp {n}")
            else:
                time.sleep(seg)
        sampler.stopping = True
        sampler.join()
        with open(os.path.join(p.run_dir, "controller.log")) as f:
            lines = f.read()[log_from:].splitlines()
        decisions = [l for l in lines if "autoscale" in l and "bench-auto" in l]
        print(f"(3) load ramp {RAMP} clients, {seg} s each; decisions:")
        for l in decisions:
            m = re.search(r"autoscale (up|down) (\d+) -> (\d+) CU \(([^;]*); cpu ([^ ]+)", l)
            t = l.split(" ")[0]
            if m:
                print(f"  {t} {m.group(1):<4} {m.group(2)} -> {m.group(3)} CU  "
                      f"reasons={m.group(4):<12} cpu={m.group(5)}")
        sizes = [cu for _, cu, _, _ in sampler.samples]
        changes = sum(1 for a, b in zip(sizes, sizes[1:]) if a != b)
        print(f"  {len(decisions)} decisions, {changes} size changes seen, "
              f"max {max(sizes) if sizes else 0} CU, final {sizes[-1] if sizes else 0} CU")
        out = os.path.join(BUILD, "bench", "autoscale.svg")
        svg(sampler.samples, out, seg * len(RAMP))
        print(f"  plot: {out}")
        st, text = ctl.get("/metrics")
        for line in text.splitlines():
            if line.startswith("smdb_autoscale_decisions_total{") and not line.endswith(" 0"):
                print("  " + line)
    finally:
        p.stop()


if __name__ == "__main__":
    main()
