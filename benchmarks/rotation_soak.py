"""Rotation soak: a writer appends (--rate lines/s) and rotates by rename every 100 ms (like
RotatingFileHandler) for 60 s; every line written must be in Elasticsearch exactly once.
With --copytruncate it copies and truncates instead (logrotate copytruncate); then the
lines written between a copy and its truncation cannot be seen by any agent: they are
counted and reported, and everything else must arrive exactly once.

Uses its own Elasticsearch (scripts/es.py server `durable-soak`, port 9242).

    python benchmarks/rotation_soak.py [--seconds 60] [--every 0.1] [--copytruncate]
    python benchmarks/rotation_soak.py --copytruncate --full-speed [--every 2] [--burst 0.05]

--full-speed: the writer is a process of its own writing as fast as it can in bursts of
--burst seconds (one every --every seconds, so that the total stays within what this
machine's Elasticsearch indexes), and this process copies and truncates at a random moment
inside each burst, unsynchronized with the writer. Nobody then knows which lines fell
between a copy and its truncation, so they are counted from the files themselves: a line
in no copy and not in the final file was in the file only between a copy and its
truncation (the agent sees it only if it happened to read it then); a copy that ends inside a line (a read
racing a write) holds a fragment, shipped tagged `incomplete`. Every whole line in a file
must be in Elasticsearch exactly once.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "scripts"))

import es  # noqa: E402


def watching(pid: int, timeout: float = 60) -> None:
    """Wait until the agent watches (holds an inotify descriptor), then 1 s for its first
    scan: a file created and renamed away before any agent watches is out of every agent's
    reach, and a fixed 2 s was not always enough for a start on a loaded machine."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fds = Path(f"/proc/{pid}/fd")
        for fd in fds.iterdir() if fds.exists() else []:
            try:
                if "inotify" in os.readlink(fd):
                    time.sleep(1)
                    return
            except OSError:
                continue
        time.sleep(0.05)
    raise SystemExit("the agent never started watching")


def write(path: Path, seconds: float, every: float, copytruncate: bool, rate: float) -> tuple[list[str], set[str]]:
    """Lines written, and (copytruncate) the ones lost between a copy and its truncation."""
    written: list[str] = []
    lost: set[str] = set()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    t0 = last = time.monotonic()
    n = rotations = 0
    while time.monotonic() - t0 < seconds:
        batch = [f"line {n + i} of the soak, rotation {rotations}" for i in range(50)]
        n += len(batch)
        os.write(fd, ("\n".join(batch) + "\n").encode())
        written += batch
        ahead = n / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
        if time.monotonic() - last >= every:
            last = time.monotonic()
            rotations += 1
            rotated = path.with_name(f"{path.name}.{rotations}")
            if copytruncate:
                shutil.copyfile(path, rotated)
                extra = [f"line {n + i} between copy and truncate" for i in range(5)]
                n += len(extra)
                os.write(fd, ("\n".join(extra) + "\n").encode())  # what no agent can see
                written += extra
                lost |= set(extra)
                os.ftruncate(fd, 0)
            else:
                os.replace(path, rotated)
                os.close(fd)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.close(fd)
    return written, lost


def burst_writer(path: str, seconds: float, every: float, burst: float, in_burst: Any, total: Any) -> None:
    """Child process: numbered lines at full speed for `burst` s every `every` s."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    n = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        start = time.monotonic()
        in_burst.set()
        while time.monotonic() - start < burst:
            os.write(fd, "".join([f"line {i} of the soak at full speed\n" for i in range(n, n + 50)]).encode())
            n += 50
        in_burst.clear()
        total.value = n
        time.sleep(max(0.0, every - (time.monotonic() - start)))
    os.close(fd)
    total.value = n


def full_speed(path: Path, seconds: float, every: float, burst: float) -> tuple[list[str], set[str], list[str]]:
    """Lines written, the ones in no file (unseeable), and fragments that copies end with."""
    import multiprocessing as mp
    import random

    ctx = mp.get_context("fork")
    in_burst, total = ctx.Event(), ctx.Value("q", 0)
    w = ctx.Process(target=burst_writer, args=(str(path), seconds, every, burst, in_burst, total))
    w.start()
    rng = random.Random(8)
    rotations = 0
    while w.is_alive():
        if not in_burst.wait(0.2):
            continue
        time.sleep(rng.uniform(0, burst * 0.8))
        rotations += 1
        shutil.copyfile(path, path.with_name(f"{path.name}.{rotations}"))
        os.truncate(path, 0)  # the writer's O_APPEND descriptor goes on at the new end
        while in_burst.is_set() and w.is_alive():
            time.sleep(0.005)
    w.join()
    written = [f"line {i} of the soak at full speed" for i in range(total.value)]
    seen: set[str] = set()
    fragments: list[str] = []
    for f in sorted(path.parent.glob(f"{path.name}*")):
        data = f.read_bytes().decode()
        whole, _, tail = data.rpartition("\n")
        seen.update(whole.split("\n") if whole else [])
        if tail:
            fragments.append(tail)
    return written, set(written) - seen, fragments


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--every", type=float, default=0.1)
    ap.add_argument("--copytruncate", action="store_true")
    ap.add_argument("--current-only", action="store_true",
                    help="rename mode: match app.log only, not its rotated names")
    ap.add_argument("--rate", type=float, default=10_000, help="lines per second written")
    ap.add_argument("--full-speed", action="store_true", help="copytruncate inside full-speed write bursts")
    ap.add_argument("--burst", type=float, default=0.02, help="seconds of each full-speed burst")
    ap.add_argument("--log-level", default="warning", help="the agent's (info shows each copy it reads)")
    ap.add_argument("--server", default="durable-soak", help="scripts/es.py server (one of its own per user)")
    ap.add_argument("--port", type=int, default=9242, help="its HTTP port")
    a = ap.parse_args()
    if a.full_speed:
        a.copytruncate = True
    srv = es.start(a.server, port=a.port)
    from elasticsearch import Elasticsearch

    client = Elasticsearch(srv["url"], request_timeout=120)
    work = Path(tempfile.mkdtemp(prefix="shipper-rot-"))
    logs = work / "logs"
    logs.mkdir()
    input_id = f"rot-{int(time.time())}"
    rotated = f", rotated_paths: ['{logs}/app.log.*']" if a.copytruncate else ""
    # Rename rotation is deployed with the rotated names matched too (as for Filebeat):
    # a file renamed before the agent first saw it is then still found, under its new name.
    # --current-only matches app.log alone: such a file is then out of every agent's reach.
    pattern = "*.log" if a.copytruncate or a.current_only else "app.log*"
    cfg = work / "shipper.yml"
    cfg.write_text(
        f"data_dir: {work / 'data'}\n"
        f"inputs: [{{id: {input_id}, paths: ['{logs}/{pattern}'], scan_interval: 1s{rotated}}}]\n"
        f"output: {{elasticsearch: {{hosts: ['{srv['url']}']}}}}\nhttp: {{listen: null}}\nlog_level: {a.log_level}\n"
    )
    log = open(work / "agent.log", "wb")  # noqa: SIM115 - the agent's stderr for its whole life
    agent = subprocess.Popen([sys.executable, "-m", "shipper", "run", "-c", str(cfg)], cwd=ROOT, stderr=log)
    watching(agent.pid)
    t0 = time.monotonic()
    fragments: list[str] = []
    if a.full_speed:
        written, lost, fragments = full_speed(logs / "app.log", a.seconds, a.every, a.burst)
    else:
        written, lost = write(logs / "app.log", a.seconds, a.every, a.copytruncate, a.rate)
    index = f"shipper-logs-{input_id}-*"
    expect = len(written) - len(lost)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        client.indices.refresh(index=index)
        if client.count(index=index)["count"] >= expect:
            break
        time.sleep(2)
    time.sleep(3)
    agent.send_signal(signal.SIGTERM)
    agent.wait(60)
    client.indices.refresh(index=index)
    got: collections.Counter[str] = collections.Counter()
    incomplete: list[str] = []
    resp = client.search(index=index, size=10000, scroll="2m", source_includes=["message", "tags"])
    while resp["hits"]["hits"]:
        for h in resp["hits"]["hits"]:
            if "incomplete" in h["_source"].get("tags", []):
                incomplete.append(h["_source"]["message"])
            else:
                got[h["_source"]["message"]] += 1
        resp = client.scroll(scroll_id=resp["_scroll_id"], scroll="2m")
    want = set(written) - lost
    result = {
        "mode": ("copytruncate at full speed" if a.full_speed else "copytruncate") if a.copytruncate else "rename",
        "paths": pattern,
        "seconds": a.seconds,
        "every_s": a.every,
        "lines_written": len(written),
        # in no file: written between a copy and its truncation (the agent may still have
        # read some of them live, before the truncation: those arrive, once)
        "in_no_file_between_copy_and_truncate": len(lost),
        "documents": sum(got.values()),
        "missing": len(want - set(got)),
        "duplicates": sum(c - 1 for c in got.values() if c > 1),
        "in_no_file_but_read_live_by_the_agent": len(lost & set(got)),
        "fragments_at_the_end_of_copies": len(fragments),
        "fragments_shipped_incomplete": len(set(fragments) & set(incomplete)),
        "unexpected_documents": len(set(got) - set(written)) + len(set(incomplete) - set(fragments)),
        "wall_s": round(time.monotonic() - t0, 1),
    }
    print(json.dumps(result, indent=2))
    if result["missing"] or result["duplicates"] or result["unexpected_documents"]:
        raise SystemExit(f"FAILED: not exactly once (files and the agent's log kept in {work}, "
                         f"documents in {index} on {srv['url']})")
    client.indices.delete(index=index)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
