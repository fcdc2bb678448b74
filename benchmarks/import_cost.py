"""Idle memory: what each import adds to the agent's RSS (issue 8: idle RSS <= 64 MiB).

Each module is imported in a fresh interpreter after the ones before it, so a row is its
own increment. Run: python benchmarks/import_cost.py
"""

from __future__ import annotations

import subprocess
import sys

MODULES = ["orjson", "yaml", "numpy", "prometheus_client", "watchdog.observers", "aiohttp", "aiohttp.web",
           "elasticsearch", "_fastparse", "shipper.app"]

CODE = """
import sys
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
mods = sys.argv[1:]
base = rss()
print(f"{'python':22} {base:6.1f} MiB")
prev = base
for m in mods:
    __import__(m)
    now = rss()
    print(f"{m:22} {now - prev:+6.1f} MiB  (total {now:.1f})")
    prev = now
"""

if __name__ == "__main__":
    subprocess.run([sys.executable, "-c", CODE, *MODULES], check=True)
