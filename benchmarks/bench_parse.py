"""Parse throughput: the Cython parser, its pure-Python twin and a naive Python loop.

Generates N model-training log lines in Python's logging layout (mostly INFO metric
lines, some WARNING/ERROR, now and then a multi-line traceback) in memory, then times,
best of --repeat runs, each contender turning them into an Elasticsearch ``_bulk`` body:

* cython:  ``_fastparse._cparser.Parser`` fed --chunk-byte chunks, then flushed
* python:  ``_fastparse._pyparser.Parser`` the same way
* naive:   split lines, a regex for the logging layout, a dict per line,
           ``orjson.dumps`` of the action and the document

With ``--format python`` the parsers run the ``python`` format (fields, @timestamp from
the line); ``--format hdfs`` runs the LogHub HDFS template over the HDFS sample repeated
to N lines; ``--format loghub`` the LogHub mix: each of the 16 datasets with its template
from ``formats.tsv``, N/16 lines each (needs ../shared/corpora/loghub; the naive loop
uses the regex LogPAI's own code makes of each template).

With ``--multiline auto`` (or ``none``, the default) the parsers group tracebacks. Error
classes, terminal-noise stripping and the per-event arrays are always on; metrics are on
(``auto``) unless ``--metrics none``.

    python benchmarks/bench_parse.py [-n 1000000] [--format plain|python|hdfs|loghub] [--chunk 262144]
                                     [--multiline none|auto] [--metrics auto|none] [--repeat 3] [--json]
                                     [--cpu]

``--cpu`` times each run by the thread's CPU time (``time.thread_time``) instead of the
wall clock: on a machine shared with other work, a run that was descheduled part of the
time still counts only what it computed, so before/after ratios hold under load.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import re
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _fastparse import _pyparser


def _load_cparser() -> Any:
    try:
        from _fastparse import _cparser
    except ImportError:  # not built
        return None
    return _cparser


_cparser = _load_cparser()

KW = dict(input_id="trainer", path="/var/log/models/trainer/train.log", host_name="gpu-node-01",
          id_prefix="7f3a9c", index_pattern="shipper-logs-trainer-%Y.%m.%d")

TRACEBACK = """Traceback (most recent call last):
  File "/opt/train/train.py", line 412, in <module>
    main()
  File "/opt/train/train.py", line 388, in main
    loss = step(model, batch)
  File "/opt/train/loop.py", line 97, in step
    out = model(batch["input_ids"].cuda(non_blocking=True))
torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.15 GiB total capacity)"""


def generate(n: int, seed: int = 1) -> bytes:
    """About ``n`` lines (a traceback counts as its lines) of a training run's log."""
    rnd = random.Random(seed)
    out: list[str] = []
    t = 1795591801.0  # 2026-11-25 07:30:01 UTC
    step = 0
    epoch = 0
    while len(out) < n:
        t += rnd.random() * 0.05
        ms = int(t * 1000) % 1000
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + f",{ms:03d}"
        r = rnd.random()
        if r < 0.0005:
            out.append(f"{stamp} - trainer - ERROR - step {step} failed")
            out.extend(TRACEBACK.split("\n"))
            continue
        step += 1
        if step % 5000 == 0:
            epoch += 1
        if r < 0.02:
            out.append(f"{stamp} - trainer - ERROR - NaN detected in loss at step={step}, "
                       f"skipping batch (rank={rnd.randrange(8)})")
        elif r < 0.08:
            out.append(f"{stamp} - trainer.optim - WARNING - grad_norm={rnd.uniform(10, 90):.2f} "
                       f"exceeds clip=10.0 at step={step}")
        elif r < 0.12:
            out.append(f"{stamp} - checkpoint - INFO - saved checkpoint to "
                       f"/ckpt/run-42/step_{step:07d}.pt ({rnd.uniform(1, 9):.1f} GiB)")
        elif r < 0.15:
            out.append(f"{stamp} - data - INFO - shard {rnd.randrange(1024):04d} loaded: "
                       f"{rnd.randrange(10**5, 10**6)} samples, \"tokens\"={rnd.randrange(10**8)}")
        else:
            out.append(f"{stamp} - trainer - INFO - epoch={epoch} step={step} "
                       f"loss={rnd.uniform(0.1, 3):.4f} acc={rnd.uniform(0.5, 0.99):.2f} "
                       f"lr={rnd.choice(['3e-4', '2.5e-4', '1e-4'])} "
                       f"tok/s={rnd.randrange(20000, 90000)}")
    return ("\n".join(out[:n]) + "\n").encode()


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


LOGHUB = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "shared", "corpora", "loghub")
HDFS_FORMAT = "<Date> <Time> <Pid> <Level> <Component>: <Content>"
HDFS_RE = re.compile(rb"^(?P<Date>.*?)\s+(?P<Time>.*?)\s+(?P<Pid>.*?)\s+(?P<Level>.*?)\s+(?P<Component>.*?):\s+"
                     rb"(?P<Content>.*?)$", re.S)
FORMAT = {"plain": "plain", "python": "python", "hdfs": HDFS_FORMAT, "loghub": "loghub"}
EXTRA: dict[str, Any] = {}


def id_kwargs(ids: str) -> dict[str, Any]:
    """The parser's `_id` argument: the agent's v2 key (host id 32 hex, file key 16 hex, as
    ``shipper.registry`` makes them), or none (v1 ``prefix.offset`` ids)."""
    if ids == "v1":
        return {}
    from _fastparse._ids import id_key

    return {"id_key": id_key("5f0c" * 8, "00a1b2c3d4e5f607", 1)}
#: (format, naive regex, chunks) per part of the workload; one parser per part
WORKLOAD: list[tuple[str, Any, list[bytes]]] = []


def logpai_regex(fmt: str) -> re.Pattern[bytes]:
    """The regex LogPAI's benchmark code (``generate_logformat_regex``) makes of a template."""
    parts = re.split(r"(<[^<>]+>)", fmt)
    regex = ""
    for k, part in enumerate(parts):
        if k % 2 == 0:
            regex += re.sub(" +", "\\\\s+", part)
        else:
            regex += f"(?P<{part.strip('<>')}>.*?)"
    return re.compile(("^" + regex + "$").encode(), re.S)


def loghub_workload(n: int, size: int) -> list[tuple[str, Any, list[bytes]]]:
    """The 16 LogHub samples, each repeated to n/16 lines, with their templates."""
    out = []
    with open(os.path.join(LOGHUB, "formats.tsv")) as f:
        rows = [line.rstrip("\n").split("\t") for line in f.read().splitlines()[1:] if line.strip()]
    for name, fmt in rows:
        with open(os.path.join(LOGHUB, f"{name}_2k.log"), "rb") as f:
            sample = f.read().splitlines(keepends=True)
        data = b"".join(sample[i % len(sample)] for i in range(n // len(rows)))
        out.append((fmt, logpai_regex(fmt), chunks(data, size)))
    return out


def generate_hdfs(n: int) -> bytes:
    with open(os.path.join(LOGHUB, "HDFS_2k.log"), "rb") as f:
        sample = f.read().splitlines(keepends=True)
    return b"".join(sample[i % len(sample)] for i in range(n))


def run_parser(module: Any) -> Callable[[list[bytes], int], tuple[int, int]]:
    def go(_: list[bytes], ms: int) -> tuple[int, int]:
        events = size = 0
        for fmt, _rx, parts in WORKLOAD:
            p = module.Parser(**KW, **{**EXTRA, "format": fmt})
            for c in parts:
                b = p.feed(c, ms)
                events += b.count
                size += len(b.body)
            b = p.flush(ms)
            events += b.count
            size += len(b.body)
        return events, size
    return go


LOG_RE = re.compile(rb"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - (\S+) - ([A-Z]+) - (.*)", re.S)


def run_naive(_: list[bytes], ms: int) -> tuple[int, int]:
    """What one would write first: a line loop, a regex, a dict, orjson (per workload part)."""
    events = size = 0
    for _fmt, rx, parts in WORKLOAD:
        e, s = _naive_part(parts, ms, rx)
        events += e
        size += s
    return events, size


def _naive_part(parts: list[bytes], ms: int, rx: Any) -> tuple[int, int]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"
    index = time.strftime(KW["index_pattern"], time.gmtime(ms // 1000))
    path, host, dataset, prefix = KW["path"], KW["host_name"], KW["input_id"], KW["id_prefix"]
    offset = 0
    rest = b""
    events = size = 0
    for part in parts:
        lines = (rest + part).split(b"\n")
        rest = lines.pop()
        out = []
        for line in lines:
            raw_len = len(line) + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if line:
                doc: dict[str, Any] = {"@timestamp": stamp,
                                       "message": line.decode("utf-8", "replace"),
                                       "log": {"file": {"path": path}, "offset": offset},
                                       "host": {"name": host}, "event": {"dataset": dataset}}
                if rx is not LOG_RE:
                    m = rx.match(line)
                    if m:
                        fields = {k: (v or b"").strip().decode("utf-8", "replace") for k, v in m.groupdict().items()}
                        doc["message"] = fields.pop("Content")
                        if "Level" in fields:
                            doc["log"]["level"] = fields["Level"]
                        doc.update(fields)
                else:
                    m = LOG_RE.match(line)
                    if m:
                        doc["log"]["logger"] = m.group(2).decode()
                        doc["log"]["level"] = m.group(3).decode()
                out.append(orjson.dumps({"create": {"_index": index, "_id": f"{prefix}.{offset:x}"}}))
                out.append(orjson.dumps(doc))
                events += 1
            offset += raw_len
        body = b"\n".join(out) + b"\n" if out else b""
        size += len(body)
    return events, size


def measure(fn: Callable[[list[bytes], int], tuple[int, int]], parts: list[bytes],
            repeat: int, clock: Callable[[], float] = time.perf_counter) -> tuple[float, int, int]:
    best = float("inf")
    result = (0, 0)
    for _ in range(repeat):
        gc.collect()
        t = clock()
        result = fn(parts, 1795591801123)
        best = min(best, clock() - t)
    return best, *result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--lines", type=int, default=1_000_000)
    ap.add_argument("--chunk", type=int, default=256 * 1024, help="feed size in bytes")
    ap.add_argument("--repeat", type=int, default=3, help="runs per contender; the best counts")
    ap.add_argument("--only", action="append", choices=["cython", "python", "naive"])
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--format", choices=sorted(FORMAT), default="plain", help="the parsers' format")
    ap.add_argument("--multiline", choices=["none", "auto"], default="none", help="the parsers' grouping")
    ap.add_argument("--metrics", choices=["none", "auto"], default="auto", help="the parsers' metric extraction")
    ap.add_argument("--cpu", action="store_true", help="time by the thread's CPU time, not the wall clock")
    ap.add_argument("--ids", choices=["v1", "v2"], default="v2",
                    help="the parsers' `_id`s: v2 (the agent's: BLAKE2b per event, the default since "
                         "session 7) or v1 (prefix.offset, what figures before session 7 used); "
                         "the naive baseline keeps its prefix.offset ids either way")
    args = ap.parse_args(argv)

    EXTRA.clear()
    EXTRA.update(timezone="UTC", multiline=args.multiline, metrics=args.metrics, **id_kwargs(args.ids))
    WORKLOAD.clear()
    if args.format == "loghub":
        WORKLOAD.extend(loghub_workload(args.lines, args.chunk))
    else:
        data = generate_hdfs(args.lines) if args.format == "hdfs" else generate(args.lines)
        WORKLOAD.append((FORMAT[args.format], HDFS_RE if args.format == "hdfs" else LOG_RE,
                         chunks(data, args.chunk)))
    data_len = sum(len(c) for _, _, parts in WORKLOAD for c in parts)
    nlines = sum(c.count(b"\n") for _, _, parts in WORKLOAD for c in parts)
    parts: list[bytes] = []
    contenders: dict[str, Callable[[list[bytes], int], tuple[int, int]]] = {}
    if _cparser is not None:
        contenders["cython"] = run_parser(_cparser)
    else:
        print("note: _fastparse._cparser is not built (python setup.py build_ext --inplace)",
              file=sys.stderr)
    contenders["python"] = run_parser(_pyparser)
    contenders["naive"] = run_naive
    if args.only:
        contenders = {k: v for k, v in contenders.items() if k in args.only}

    results: dict[str, Any] = {}
    for name, fn in contenders.items():
        secs, events, body = measure(fn, parts, args.repeat, time.thread_time if args.cpu else time.perf_counter)
        results[name] = {"seconds": round(secs, 4), "lines_per_s": round(nlines / secs),
                         "mb_per_s": round(data_len / secs / 1e6, 1), "events": events,
                         "body_bytes": body}
    report = {"format": args.format, "multiline": args.multiline, "metrics": args.metrics, "lines": nlines,
              "clock": "cpu" if args.cpu else "wall",
              "input_bytes": data_len,
              "chunk": args.chunk,
              "repeat": args.repeat, "python": platform.python_version(),
              "machine": platform.machine(), "cpus": os.cpu_count(), "results": results}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"format {args.format}, multiline {args.multiline}, metrics {args.metrics}: {nlines:,} lines, "
          f"{data_len / 1e6:.1f} MB input, "
          f"{args.chunk // 1024} KiB feeds, "
          f"best of {args.repeat}" + (" (CPU time)" if args.cpu else ""))
    print(f"{'parser':<8} {'seconds':>8} {'lines/s':>12} {'MB/s':>8} {'events':>10} "
          f"{'body MB':>8} {'vs naive':>8}")
    base = results.get("naive", {}).get("seconds")
    for name, r in results.items():
        rel = f"{base / r['seconds']:.1f}x" if base else "-"
        print(f"{name:<8} {r['seconds']:>8.3f} {r['lines_per_s']:>12,} {r['mb_per_s']:>8.1f} "
              f"{r['events']:>10,} {r['body_bytes'] / 1e6:>8.1f} {rel:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
