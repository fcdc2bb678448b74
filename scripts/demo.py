"""The README's first command, after setup: sample model logs shipped into a local
Elasticsearch, and a summary of what landed and where to look.

Run through scripts/demo.sh, which makes the venv and starts the `demo` server.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "demo"


def generate(root: Path, seed: int = 7) -> tuple[int, int]:
    """Training and inference logs of two models, the way such jobs write them."""
    rng = random.Random(seed)
    n = tracebacks = 0
    t0 = time.time() - 3600
    for model, runs in (("resnet50", 2), ("bert-base", 1)):
        for r in range(runs):
            path = root / model / f"run-{r + 1}" / "train.log"
            path.parent.mkdir(parents=True, exist_ok=True)
            loss = 2.5
            with path.open("w") as f:
                for step in range(1, 2001):
                    ts = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t0 + step)) + f",{step % 1000:03d}"
                    loss = max(0.05, loss * 0.999 + rng.gauss(0, 0.01))
                    if step % 500 == 0 and model == "bert-base":
                        f.write(
                            f"{ts} - trainer - ERROR - step {step} failed\n"
                            "Traceback (most recent call last):\n"
                            '  File "train.py", line 88, in <module>\n'
                            "    out = model(batch)\n"
                            "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
                        )
                        n += 5
                        tracebacks += 1
                    level = "WARNING" if step % 97 == 0 else "INFO"
                    f.write(
                        f"{ts} - trainer - {level} - epoch={step // 500} step={step} loss={loss:.4f} "
                        f"acc={min(0.99, 1 - loss / 3):.3f} lr=3e-4 gpu_mem=11.2GiB\n"
                    )
                    n += 1
        inf = root / model / "serve" / "inference.log"
        inf.parent.mkdir(parents=True, exist_ok=True)
        with inf.open("w") as f:
            for i in range(1000):
                score = rng.random()
                rec = {
                    "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 + i)),
                    "level": "info",
                    "model": model,
                    "latency_ms": round(rng.lognormvariate(3, 0.4), 2),
                    "score": round(score, 4),
                    "prediction": int(score > 0.5),
                    "label": int(rng.random() > 0.5),
                }
                f.write(json.dumps(rec) + "\n")
                n += 1
    return n, tracebacks


def main() -> int:
    info = json.loads(subprocess.check_output([sys.executable, str(ROOT / "scripts" / "es.py"), "info", "demo"]))
    url = info["url"]
    logs = DEMO / "logs"
    if logs.exists():
        subprocess.run(["rm", "-rf", str(logs)], check=True)
    lines, tracebacks = generate(logs)
    events = lines - 4 * tracebacks  # each ERROR line and its 4-line traceback are one event
    cfg = DEMO / "shipper.yml"
    cfg.write_text(
        "# Written by scripts/demo.py: the sample model logs into the local demo Elasticsearch.\n"
        f"data_dir: {DEMO / 'data'}\n"
        "inputs:\n"
        "  - id: train             # training jobs: Python logging, tracebacks grouped (multiline: auto)\n"
        f'    paths: ["{logs}/**/train.log"]\n'
        "    format: python\n"
        "  - id: serve             # inference services: one JSON object per line\n"
        f'    paths: ["{logs}/**/inference.log"]\n'
        "    format: json\n"
        "output:\n"
        "  elasticsearch:\n"
        f'    hosts: ["{url}"]\n'
        "http:\n"
        '  listen: "127.0.0.1:9108"\n'
    )
    if (DEMO / "data").exists():
        subprocess.run(["rm", "-rf", str(DEMO / "data")], check=True)
    from elasticsearch import Elasticsearch

    es = Elasticsearch(url)
    # a fresh start: new data_dir, new host id, so the previous run's documents would stand beside these
    es.options(ignore_status=404).indices.delete(index="shipper-logs-*", expand_wildcards="all")
    print(f"generated {lines} lines of sample model logs under {logs}", flush=True)
    print(f"shipping them with: shipper run -c {cfg} --once", flush=True)
    t = time.monotonic()
    rc = subprocess.call([sys.executable, "-m", "shipper", "run", "-c", str(cfg), "--once"], cwd=ROOT)
    took = time.monotonic() - t
    if rc != 0:
        print(f"shipper exited with {rc}", file=sys.stderr)
        return rc
    es.indices.refresh(index="shipper-logs-*")
    total = es.count(index="shipper-logs-*")["count"]
    by_file = es.search(
        index="shipper-logs-*", size=0, aggs={"f": {"terms": {"field": "log.file.path", "size": 20}}}
    )["aggregations"]["f"]["buckets"]
    sample = es.search(index="shipper-logs-*", size=1, query={"match_phrase": {"message": "CUDA out of memory"}})
    print()
    print(f"landed: {total} documents in {took:.1f}s from {lines} lines written (each traceback is one event")
    print("        with the line before it, error.type set), indices shipper-logs-train-* and shipper-logs-serve-*")
    for b in by_file:
        print(f"  {b['doc_count']:6d}  {b['key']}")
    if sample["hits"]["hits"]:
        print("\na document:")
        print(json.dumps(sample["hits"]["hits"][0]["_source"], indent=2))
    print(f"""
where to look:
  curl -s '{url}/shipper-logs-train-*/_search?q=message:%22CUDA+out+of+memory%22&pretty'
  curl -s '{url}/_cat/indices/shipper-logs-*?v'
  .venv/bin/shipper run -c {cfg}        # keep tailing; metrics on http://127.0.0.1:9108/metrics
  python3 scripts/es.py stop demo        # stop the local Elasticsearch""")
    return 0 if total == events else 1


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
