"""Elasticsearch unreachable for a while as logs keep coming: the agent's memory stays bounded.

The agent ships to a port where nothing listens for --down seconds while --mib of
training logs are written; then a TCP forwarder to a real Elasticsearch (scripts/es.py,
server `outage-bench`) opens on that port. Prints the agent's RSS over time, its peak
while waiting and after, and checks that every line arrived exactly once.

    python benchmarks/outage_memory.py [--mib 1024] [--down 60] [--inflight 64MiB]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "scripts"))

import es  # noqa: E402
from bench_parse import generate  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def forward(port: int, upstream: int, stop: threading.Event) -> None:
    """A plain TCP forwarder on `port` to `upstream`, in its own thread and loop."""

    async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while data := await r.read(1 << 16):
                w.write(data)
                await w.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            w.close()

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection("127.0.0.1", upstream)
        await asyncio.gather(pipe(r, uw), pipe(ur, w))

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            while not stop.is_set():
                await asyncio.sleep(0.2)

    asyncio.run(main())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--down", type=float, default=60)
    ap.add_argument("--inflight", default="8MiB")
    a = ap.parse_args()

    srv = es.start("outage-bench", port=9241)
    from elasticsearch import Elasticsearch

    client = Elasticsearch(srv["url"], request_timeout=120)
    work = Path(tempfile.mkdtemp(prefix="shipper-outage-"))
    logs = work / "logs"
    logs.mkdir()
    port = free_port()
    input_id = f"outage-{int(time.time())}"
    cfg = work / "shipper.yml"
    cfg.write_text(
        # multiline none: one document per line, so that "indexed == lines" checks every line
        f"data_dir: {work / 'data'}\ninputs: [{{id: {input_id}, paths: ['{logs}/*.log'], multiline: none}}]\n"
        f"output: {{elasticsearch: {{hosts: ['http://127.0.0.1:{port}'], backoff_max: 2s, template: false}}}}\n"
        f"max_inflight_bytes: {a.inflight}\nhttp: {{listen: null}}\nlog_level: warning\n"
    )
    agent = subprocess.Popen([sys.executable, "-m", "shipper", "run", "-c", str(cfg)], cwd=ROOT,
                             stderr=open(work / "agent.log", "wb"))  # noqa: SIM115
    time.sleep(2)
    idle = rss_mib(agent.pid)
    chunk = generate(200_000)
    written, lines = 0, 0
    t0 = time.monotonic()
    samples: list[tuple[float, float]] = []
    with (logs / "train.log").open("ab") as f:
        while written < a.mib << 20:
            f.write(chunk)
            f.flush()
            written += len(chunk)
            lines += chunk.count(b"\n")
            samples.append((time.monotonic() - t0, rss_mib(agent.pid)))
    while time.monotonic() - t0 < a.down:
        samples.append((time.monotonic() - t0, rss_mib(agent.pid)))
        time.sleep(0.5)
    down_peak = max(r for _, r in samples)
    stop = threading.Event()
    threading.Thread(target=forward, args=(port, int(srv["url"].rsplit(":", 1)[1]), stop), daemon=True).start()
    index = f"shipper-logs-{input_id}-*"
    after: list[float] = []
    deadline = time.monotonic() + 3600
    n = 0
    while time.monotonic() < deadline:
        after.append(rss_mib(agent.pid))
        try:
            client.indices.refresh(index=index)
            n = client.count(index=index)["count"]
        except Exception:
            n = 0
        if n >= lines:
            break
        time.sleep(2)
    catch_up = time.monotonic() - t0 - a.down
    agent.terminate()
    agent.wait(60)
    result = {
        "written_mib": written / 2**20, "lines": lines, "indexed": n, "down_s": a.down,
        "max_inflight_bytes": a.inflight, "idle_rss_mib": round(idle, 1),
        "peak_rss_while_down_mib": round(down_peak, 1), "peak_rss_catching_up_mib": round(max(after), 1),
        "catch_up_s": round(catch_up, 1),
    }
    print(json.dumps(result, indent=2))
    client.indices.delete(index=index)
    stop.set()
    es.stop("outage-bench")
    shutil.rmtree(work, ignore_errors=True)
    if n != lines:
        raise SystemExit(f"indexed {n} of {lines}")


if __name__ == "__main__":
    main()
