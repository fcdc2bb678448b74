"""What one agent run costs the event loop, counted: loop turns, callbacks run (by what they
are), tasks made, registry writes, bulk requests, segments submitted.

    python benchmarks/loop_census.py [--root TREE] [-n 2000000] [--top 25] [--extra 'parse_threads: 1']

`run --once` of the training corpus to the discarding endpoint (bench_e2e.Bench, the
config of agent_ab.py), in a child that counts by wrapping asyncio's `_run_once`,
`Handle._run` and `create_task`, the registry's `_atomic_write`, the sink's `deliver` and
the pipeline's `submit` before the agent starts. Counts do not move with the machine's
load (the timings of the run they come from do: the number of requests cut by
`flush_interval` a little).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from agent_ab import agent_config  # noqa: E402
from bench_e2e import Bench, compile_tree  # noqa: E402

CHILD = r'''
import collections, json, sys
import asyncio, asyncio.base_events as be, asyncio.events as ev
counts, by = collections.Counter(), collections.Counter()
run_once, handle_run, create_task = be.BaseEventLoop._run_once, ev.Handle._run, be.BaseEventLoop.create_task

def _run_once(self):
    counts["loop turns"] += 1
    return run_once(self)

def _handle_run(self):
    counts["callbacks run"] += 1
    cb = self._callback
    owner = getattr(cb, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        by["task step: " + getattr(coro, "__qualname__", "?")] += 1
    else:
        by[getattr(cb, "__qualname__", type(cb).__name__)] += 1
    return handle_run(self)

def _create_task(self, coro, **kw):
    counts["tasks made"] += 1
    return create_task(self, coro, **kw)

be.BaseEventLoop._run_once, ev.Handle._run, be.BaseEventLoop.create_task = _run_once, _handle_run, _create_task
import shipper.registry as registry
atomic_write = registry._atomic_write

def _atomic_write(path, data):
    counts["registry writes"] += 1
    return atomic_write(path, data)

registry._atomic_write = _atomic_write
from shipper.sinks import elasticsearch as es
deliver = es.ElasticsearchSink.deliver

async def _deliver(self, parts, attempt=0):
    counts["bulk requests (logs)"] += 1
    return await deliver(self, parts, attempt)

es.ElasticsearchSink.deliver = _deliver
import shipper.pipeline as pipeline
submit = pipeline.Pipeline.submit

async def _submit(self, *a, **k):
    counts["segments submitted"] += 1
    return await submit(self, *a, **k)

pipeline.Pipeline.submit = _submit
sys.argv = ["shipper", "run", "-c", sys.argv[1], "--once"]
from shipper.__main__ import entry
try:
    entry()
except SystemExit:
    pass
finally:
    print(json.dumps({"counts": counts, "by": by.most_common()}), file=sys.stderr)
'''


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, default=HERE.parent, help="the tree whose agent runs")
    ap.add_argument("-n", type=int, default=2_000_000)
    ap.add_argument("--top", type=int, default=25, help="callbacks listed by what they are")
    ap.add_argument("--extra", default="", help="more config lines (YAML, ';' between them)")
    a = ap.parse_args()
    root = a.root.resolve()
    compile_tree(root)
    with Bench("training", a.n, prefix="shipper-census-") as b:
        cfg = agent_config(b.work, "census", b.log, b.url, "python", True, a.extra.replace(";", "\n"))
        p = subprocess.run(
            [sys.executable, "-c", CHILD, str(cfg)], cwd=root, capture_output=True, text=True,
            env={**os.environ, "PYTHONPATH": str(root)},
        )
        out = json.loads(p.stderr.strip().splitlines()[-1])
        with urllib.request.urlopen(b.url + "/_stats/discard") as r:
            endpoint = json.load(r)
    print(f"{root}: {b.lines:,} lines; the endpoint got {endpoint['requests']} requests (the anomaly watch's too), "
          f"{endpoint['docs']:,} documents, {endpoint['bytes']:,} bytes")
    for k, v in out["counts"].items():
        print(f"  {k:24s} {v:>8,}")
    for name, v in out["by"][: a.top]:
        print(f"    {v:>7,}  {name}")


if __name__ == "__main__":
    main()
