"""What the `_id` scheme costs Elasticsearch: contract v1 (prefix + offset) vs a per-event hash.

Issue 5 asks for a per-event 128-bit BLAKE2b `_id`; contract v1 hashes once per file
generation and appends the hex offset, so ids share a prefix and grow. Lucene looks every
`_id` of a `create` up before indexing it, and random ids defeat the terms index's
locality, so the per-event hash may cost the server more. This measures it against the
real Elasticsearch: ~1M small documents bulk-created (`op_type: create`) into a fresh
index per scheme, same bodies otherwise, schemes alternated and each run twice; then a
replay of the same ids (every item a 409), as after a crash. Reported per run: the
server's CPU-seconds (utime+stime of the Elasticsearch process, all its threads, from
/proc) and documents/s. The indices are deleted afterwards.

    python benchmarks/id_scheme.py [-n 1000000] [--runs 2] [--es http://127.0.0.1:9201]
        [--pid-file /work/main/.cache/es/servers/plain/es.pid]
    python benchmarks/id_scheme.py --id-cost   # the agent's side: ns per id, C and Python

The server is shared: other clients' load lands in its CPU figures, hence alternation.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import sys
import threading
import time
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from _fastparse._ids import event_id  # noqa: E402
from shipper.registry import id_prefix  # noqa: E402

HOST_ID = "5f0c2a9e8b7d4c3a1e6f90b2d4c8a7e1"
FILE_KEY = "a1b2c3d4e5f60718"
BULK_DOCS = 5000
CONNECTIONS = 2
MESSAGES = [
    "epoch 3 step 1200 loss=0.4213 lr=0.00030 grad_norm=1.92",
    "Saving checkpoint to /ckpt/run-17/step-1200.pt",
    "eval accuracy=0.8731 f1=0.8612 samples=5000",
    "CUDA memory allocated 14.2 GiB reserved 15.9 GiB",
]
MAPPING = {
    "settings": {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "1s"},
    "mappings": {"dynamic": False, "properties": {
        "@timestamp": {"type": "date"}, "message": {"type": "text"},
        "log": {"properties": {"offset": {"type": "long"}}}}},
}


def v1_ids(n: int, line_len: int) -> list[str]:
    prefix = id_prefix(HOST_ID, FILE_KEY, 0)
    return [f"{prefix}.{i * line_len:x}" for i in range(n)]


def v2_ids(n: int, line_len: int) -> list[str]:
    return [event_id(HOST_ID, FILE_KEY, 0, i * line_len) for i in range(n)]


def bodies(ids: list[str], line_len: int, index: str) -> list[bytes]:
    """Bulk request bodies; identical for both schemes except the `_id`."""
    out = []
    t0 = 1764028800000
    for start in range(0, len(ids), BULK_DOCS):
        parts = []
        for i in range(start, min(start + BULK_DOCS, len(ids))):
            ms = t0 + i
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"
            parts.append(b'{"create":{"_index":"%s","_id":"%s"}}\n' % (index.encode(), ids[i].encode()))
            parts.append(b'{"@timestamp":"%s","message":"%s","log":{"offset":%d}}\n'
                         % (ts.encode(), MESSAGES[i % len(MESSAGES)].encode(), i * line_len))
        out.append(b"".join(parts))
    return out


def es_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ES:
    def __init__(self, url: str) -> None:
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 9200

    def request(self, method: str, path: str, body: bytes | None = None,
                conn: http.client.HTTPConnection | None = None) -> tuple[int, dict]:
        c = conn or http.client.HTTPConnection(self.host, self.port, timeout=300)
        headers = {"Content-Type": "application/x-ndjson" if path.endswith("_bulk") else "application/json"}
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        if conn is None:
            c.close()
        return r.status, json.loads(data) if data else {}


def bulk_all(es: ES, reqs: list[bytes]) -> dict[int, int]:
    """Send every request over CONNECTIONS keep-alive connections; item statuses counted."""
    work: queue.Queue[bytes | None] = queue.Queue()
    for r in reqs:
        work.put(r)
    counts: dict[int, int] = {}
    lock = threading.Lock()
    errors: list[str] = []

    def worker() -> None:
        conn = http.client.HTTPConnection(es.host, es.port, timeout=300)
        while True:
            try:
                body = work.get_nowait()
            except queue.Empty:
                break
            status, resp = es.request("POST", "/_bulk?filter_path=items.*.status", body, conn)
            if status != 200:
                errors.append(f"bulk HTTP {status}: {str(resp)[:200]}")
                break
            local: dict[int, int] = {}
            for item in resp["items"]:
                s = item["create"]["status"]
                local[s] = local.get(s, 0) + 1
            with lock:
                for k, v in local.items():
                    counts[k] = counts.get(k, 0) + v
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(errors[0])
    return counts


def settle(pid: int, quiet: float = 0.15, limit: float = 30.0) -> None:
    """Wait until the server is nearly idle (merges after a bulk run count to that run)."""
    end = time.monotonic() + limit
    prev = es_cpu(pid)
    while time.monotonic() < end:
        time.sleep(1.0)
        now = es_cpu(pid)
        if now - prev < quiet:
            return
        prev = now


def run(es: ES, pid: int, scheme: str, index: str, reqs: list[bytes], n: int) -> dict:
    es.request("DELETE", f"/{index}")
    status, resp = es.request("PUT", f"/{index}", json.dumps(MAPPING).encode())
    if status != 200:
        raise RuntimeError(f"create index {index}: {resp}")
    settle(pid)
    result: dict = {"scheme": scheme, "index": index}
    for phase in ("create", "replay"):
        c0, t0 = es_cpu(pid), time.monotonic()
        counts = bulk_all(es, reqs)
        wall = time.monotonic() - t0
        es.request("POST", f"/{index}/_refresh")
        settle(pid)
        cpu = es_cpu(pid) - c0
        want = 201 if phase == "create" else 409
        if counts.get(want, 0) != n:
            raise RuntimeError(f"{scheme} {phase}: statuses {counts}, expected {n} x {want}")
        result[phase] = {"docs_per_s": round(n / wall), "wall_s": round(wall, 2), "es_cpu_s": round(cpu, 2)}
    _, r = es.request("GET", f"/{index}/_stats/store,segments")
    prim = r["indices"][index]["primaries"]
    result["store_mib"] = round(prim["store"]["size_in_bytes"] / 2**20, 1)
    result["segments"] = prim["segments"]["count"]
    es.request("DELETE", f"/{index}")
    return result


def id_cost(n: int = 2_000_000) -> dict:
    """What one v2 id costs the agent: in C (blake2b.h through the test extension, no Python
    per id) and in the Python twin; best of 5."""
    import importlib

    from _fastparse._ids import event_id_from_key, id_key

    _idcheck = importlib.import_module("_fastparse._idcheck")  # built by setup.py with Cython

    key = id_key(HOST_ID, FILE_KEY, 0)
    c_ns = min(_idcheck.time_ids(key, n) for _ in range(5)) / n * 1e9
    m = n // 10
    py = []
    for _ in range(5):
        t = time.perf_counter()
        for i in range(m):
            event_id_from_key(key, i * 97)
        py.append(time.perf_counter() - t)
    return {"c_ns_per_id": round(c_ns, 1), "python_ns_per_id": round(min(py) / m * 1e9)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--es", default=os.environ.get("SHIPPER_TEST_ES_URL", "http://127.0.0.1:9201"))
    ap.add_argument("--pid-file", default="/work/main/.cache/es/servers/plain/es.pid")
    ap.add_argument("--id-cost", action="store_true", help="only time the id computation in the agent")
    args = ap.parse_args()
    if args.id_cost:
        print(json.dumps(id_cost()))
        return
    pid = int(Path(args.pid_file).read_text().split()[0])
    es = ES(args.es)
    line_len = 97
    tag = f"{os.getpid()}"
    t = time.perf_counter()
    ids = {"v1": v1_ids(args.n, line_len), "v2": v2_ids(args.n, line_len)}
    print(f"ids made in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    results = []
    try:
        warm = max(1, args.n // 10)  # the server's JIT and caches, untimed
        for scheme in ("v1", "v2"):
            index = f"durable-idbench-warm-{scheme}-{tag}"
            run(es, pid, scheme, index, bodies(ids[scheme][:warm], line_len, index), warm)
        for r in range(args.runs):
            order = ("v1", "v2") if r % 2 == 0 else ("v2", "v1")
            for scheme in order:
                index = f"durable-idbench-{scheme}-{r}-{tag}"
                reqs = bodies(ids[scheme], line_len, index)
                res = run(es, pid, scheme, index, reqs, args.n)
                res["run"] = r
                results.append(res)
                print(json.dumps(res), flush=True)
    finally:
        for scheme in ("v1", "v2"):
            es.request("DELETE", f"/durable-idbench-warm-{scheme}-{tag}")
            for r in range(args.runs):
                es.request("DELETE", f"/durable-idbench-{scheme}-{r}-{tag}")
    summary = {}
    for scheme in ("v1", "v2"):
        rs = [x for x in results if x["scheme"] == scheme]
        summary[scheme] = {ph: {"es_cpu_s": round(sum(x[ph]["es_cpu_s"] for x in rs) / len(rs), 2),
                                "docs_per_s": round(sum(x[ph]["docs_per_s"] for x in rs) / len(rs))}
                           for ph in ("create", "replay")}
    for ph in ("create", "replay"):
        summary[f"v2/v1 {ph} es_cpu"] = round(summary["v2"][ph]["es_cpu_s"] / summary["v1"][ph]["es_cpu_s"], 3)
    print(json.dumps({"summary": summary}))


if __name__ == "__main__":
    main()
