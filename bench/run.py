"""make bench: every benchmark, one after the other, each comparing within
its own run (proxy vs direct, plugin on vs off, controller vs bare start)."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BENCHES = ["controller_bench.py", "proxy_bench.py", "plugin_bench.py", "billing_bench.py",
           "container_bench.py", "idle_bench.py", "autoscale_bench.py"]


def main():
    only = sys.argv[1:]
    failed = []
    for b in BENCHES:
        if only and b.split("_")[0] not in only:
            continue
        path = os.path.join(HERE, b)
        if not os.path.exists(path):
            continue
        print(f"\n=== {b}", flush=True)
        rc = subprocess.call([sys.executable, path], cwd=HERE)
        if rc != 0:
            failed.append(b)
    if failed:
        print("benchmarks that failed: " + ", ".join(failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
