"""Idle memory: what each import adds to the agent's RSS (issue 8: idle RSS <= 64 MiB).

Two views, each in fresh interpreters (best of 3):
- in order: each module imported after the ones above it (its row is its increment then;
  an early module is charged for the standard library it shares with later ones);
- marginal: all the libraries but this one, against all of them (what leaving it out
  saves; ~0 for a library another one imports anyway, like aiohttp under elastic_transport).
Then the agent itself: `shipper run` idle on an empty directory (no Elasticsearch needed:
it waits), its VmRSS after start-up, and that plus numpy's marginal cost (the anomaly
detector will import numpy).

    python benchmarks/import_cost.py [--idle-only] [--root OTHER_TREE]
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the agent's imports (the `elasticsearch` package is no longer one: sinks/client.py)
MODULES = ["orjson", "yaml", "numpy", "prometheus_client", "watchdog.observers", "aiohttp", "aiohttp.web",
           "elastic_transport", "_fastparse", "shipper.app"]

CODE = """
import sys
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
out = [rss()]
for m in sys.argv[1:]:
    __import__(m)
    out.append(rss())
print(" ".join(map(str, out)))
"""


def rss_after(mods: list[str]) -> list[float]:
    runs = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", CODE, *mods], check=True, capture_output=True, text=True,
                             cwd=ROOT).stdout
        runs.append([float(x) for x in out.split()])
    return min(runs, key=lambda r: r[-1])


def agent_idle(extra: str = "http: {listen: null}\n", root: Path = ROOT) -> float:
    """VmRSS of a real agent 4 s after start, tailing an empty directory (``extra``: more
    config; the anomaly watch is on by default, so numpy is loaded unless it is off)."""
    with tempfile.TemporaryDirectory(prefix="shipper-idle-") as d, socket.socket() as s, socket.socket() as h:
        s.bind(("127.0.0.1", 0))
        h.bind(("127.0.0.1", 0))
        port, http_port = s.getsockname()[1], h.getsockname()[1]
        h.close()
        cfg = Path(d) / "c.yml"
        (Path(d) / "logs").mkdir()
        cfg.write_text(f"data_dir: {d}/data\ninputs: [{{id: idle, paths: ['{d}/logs/*.log']}}]\n"
                       f"output: {{elasticsearch: {{hosts: ['http://127.0.0.1:{port}'], template: false}}}}\n"
                       "log_level: error\n" + extra.replace("HTTP_PORT", str(http_port)))
        p = subprocess.Popen([sys.executable, "-m", "shipper", "run", "-c", str(cfg)], cwd=root,
                             stderr=subprocess.DEVNULL, env={**os.environ})
        try:
            time.sleep(4)
            for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
            return 0.0
        finally:
            p.kill()
            p.wait()


IDLE_CONFIGS = {
    "defaults (anomaly watch on, http.listen on)": "http: {listen: '127.0.0.1:HTTP_PORT'}\n",
    "http.listen: null": "http: {listen: null}\n",
    "http.listen: null, anomaly.enabled: false": "http: {listen: null}\nanomaly: {enabled: false}\n",
}


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--idle-only", action="store_true", help="only the real agent's idle RSS")
    ap.add_argument("--root", type=Path, default=ROOT, help="the tree to run the agent from (a before/after check)")
    a = ap.parse_args()
    if a.idle_only:
        for name, extra in IDLE_CONFIGS.items():
            print(f"agent idle, {name}: {agent_idle(extra, a.root):.1f} MiB (goal 64)")
        return
    ordered = rss_after(MODULES)
    full = ordered[-1]
    print(f"{'module':22} {'in order':>10} {'marginal':>10}")
    print(f"{'python':22} {ordered[0]:8.1f} MiB")
    libs = [m for m in MODULES if m != "shipper.app"]
    all_libs = rss_after(libs)[-1]
    marginal = {}
    for i, m in enumerate(MODULES):
        if m in libs:
            marginal[m] = all_libs - rss_after([x for x in libs if x != m])[-1]
        print(f"{m:22} {ordered[i + 1] - ordered[i]:+8.1f}   " + (f"{marginal[m]:+8.1f}" if m in marginal else ""))
    print(f"{'all':22} {full:8.1f} MiB")
    for name, extra in IDLE_CONFIGS.items():
        print(f"agent idle, {name}: {agent_idle(extra, a.root):.1f} MiB (goal 64)")


if __name__ == "__main__":
    main()
