"""Shared helpers of the benchmarks: a platform started the way the
end-to-end tests start it (real redis-server, controller, mariadbd), and
percentile printing."""
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))

import conftest  # noqa: E402


def percentiles(xs):
    s = sorted(xs)
    pick = lambda q: s[min(len(s) - 1, int(round(q * (len(s) - 1))))]
    return pick(0.5), pick(0.9), pick(0.99)


def report(name, xs, unit="ms", digits=2):
    p50, p90, p99 = percentiles(xs)
    print(f"  {name:<48} n={len(xs):<5} p50={p50:8.{digits}f}{unit} p90={p90:8.{digits}f}{unit} "
          f"p99={p99:8.{digits}f}{unit}")
    return p50


class Platform:
    """redis + controller in a temporary directory; stop() kills by PID."""

    def __init__(self, **controller_opts):
        self.run_dir = tempfile.mkdtemp(prefix="smdb-bench-")
        os.chmod(self.run_dir, 0o755)
        self.procs = conftest.Procs(self.run_dir)
        self.redis = conftest.Redis(self.procs, self.run_dir).start()
        self.controller = conftest.Controller(self.procs, self.run_dir, self.redis,
                                              **controller_opts).start()

    def stop(self):
        self.procs.stop_all()
