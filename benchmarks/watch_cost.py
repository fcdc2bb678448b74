"""What the anomaly watch costs per million lines, on the batches the agent really makes.

The training corpus of bench_e2e (past-dated, python format, multiline auto, metrics on)
is parsed in 256 KiB chunks as the reader does (not timed); then the watch is fed those
batches as the pipeline feeds it: ``observe`` at submit, ``settle`` in order when the
watermark passes, a ``tick`` every 40 batches (about one per second of a 1 M lines/s
agent), with documents made (a writer that only queues). Best of ``--repeat`` passes,
each on a fresh watch; CPU seconds (process time) per million lines, split into
counting (``counters.count``, compiled or ``--twin``), observe (the rest of it: error
samples), settle and tick.

    python benchmarks/watch_cost.py [-n 200000] [--repeat 5] [--twin] [--root TREE]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--twin", action="store_true", help="the numpy twin of the compiled fold")
    ap.add_argument("--root", type=Path, default=ROOT, help="the tree whose watch runs")
    ap.add_argument("--chunk", type=int, default=256, help="KiB per parsed chunk (the agent reads 128)")
    ap.add_argument("--profile", type=Path, help="cProfile stats of the watch passes (not the parse) here")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    logging.disable(logging.WARNING)  # the anomalies the corpus raises are not the point here
    sys.path.insert(0, str(HERE))
    from bench_e2e import corpus  # puts this tree first on sys.path: the tree measured goes before it

    sys.path.insert(0, str(a.root.resolve()))
    for name in [m for m in sys.modules if m == "_fastparse" or m.startswith(("_fastparse.", "shipper"))]:
        del sys.modules[name]  # bench_parse imported this tree's parser

    from _fastparse import Parser, counters
    from shipper.anomaly.documents import DocumentWriter
    from shipper.anomaly.watch import AnomalyWatch, WatchConfig
    from shipper.metrics import Metrics

    data = corpus("training", a.n)
    lines = data.count(b"\n")
    p = Parser(
        input_id="bench",
        path="/logs/train.log",
        host_name="bench",
        id_prefix="",
        id_key=b"k" * 71,
        index_pattern="shipper-logs-bench-%Y.%m.%d",
        format="python",
        multiline="auto",
        metrics="auto",
    )
    now_ms = int(time.time() * 1000)
    step = a.chunk * 1024
    batches = [p.feed(data[i : i + step], now_ms) for i in range(0, len(data), step)]
    batches.append(p.flush(now_ms))
    batches = [b for b in batches if b.count]
    del data

    class Owner:
        source = "bench"
        parser = p

    twin = a.twin
    real_count = counters.count

    def count(*args: Any, **kw: Any) -> Any:
        t0 = time.process_time()
        if "twin" in real_count.__code__.co_varnames:  # a tree from before the compiled fold has no twin=
            kw["twin"] = twin
        out = real_count(*args, **kw)
        timers["count"] += time.process_time() - t0
        return out

    counters.count = count  # type: ignore[assignment]
    best: dict[str, float] | None = None
    prof = None
    if a.profile is not None:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    for _ in range(a.repeat):
        timers = {"count": 0.0}
        # the real writer, never started: documents are made and queued, not sent
        watch = AnomalyWatch(WatchConfig(), Metrics(), host_id="h" * 32, host_name="bench", writer=DocumentWriter(None))
        owner = Owner()
        t0 = time.process_time()
        tokens = [watch.observe(b, owner, "bench") for b in batches]
        t1 = time.process_time()
        ticks = 0.0
        for i, tok in enumerate(tokens):
            if tok is not None:
                watch.settle(tok)
            if i % 40 == 39:
                s = time.process_time()
                watch.tick()
                ticks += time.process_time() - s
        t2 = time.process_time()
        s = time.process_time()
        watch.tick()
        watch.state()
        ticks += time.process_time() - s
        per_m = 1e6 / lines
        run = {
            "count": timers["count"] * per_m,
            "observe_rest": (t1 - t0 - timers["count"]) * per_m,
            "settle": (t2 - t1 - ticks) * per_m,
            "tick_and_state": ticks * per_m,
        }
        run["total"] = sum(run.values())
        if best is None or run["total"] < best["total"]:
            best = run
    if prof is not None:
        prof.disable()
        prof.dump_stats(str(a.profile))
    assert best is not None
    compiled = getattr(counters, "_fold_c", None) is not None and not twin
    out = {
        "lines": lines,
        "batches": len(batches),
        "fold": "compiled" if compiled else "twin",
        "cpu_s_per_m_lines": {k: round(v, 4) for k, v in best.items()},
    }
    if a.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{lines} lines, {len(batches)} batches, fold: {out['fold']}; CPU-s per M lines (best of {a.repeat}):")
        for k, v in best.items():
            print(f"  {k:15} {v:.4f}")


if __name__ == "__main__":
    main()
