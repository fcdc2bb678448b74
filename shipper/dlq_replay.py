"""`shipper dlq list|replay`: show the dead-letter queue, and re-send it once fixed.

Replay writes each document with the `_index`, `_id` and `create` it had, so a document
that meanwhile did get indexed answers 409 and is simply removed from the queue: a
replay can double nothing. What still fails stays in the queue with its new reason.
"""

from __future__ import annotations

import collections
from typing import Any

import orjson

from .config import Config
from .dlq import DeadLetterQueue
from .sinks.elasticsearch import _reason, make_client

BATCH = 1000


def summary(cfg: Config, limit: int) -> str:
    q = DeadLetterQueue(cfg.data_dir / "dlq", cfg.dlq_max_bytes)
    records, size = q.read()
    if not records:
        return f"dead-letter queue {q.path}: empty\n"
    by = collections.Counter((r["index"], r["reason"].get("type", ""), r["status"]) for r in records)
    lines = [f"dead-letter queue {q.path}: {len(records)} document(s), {size} bytes (max {cfg.dlq_max_bytes})"]
    lines += [f"  {n:6d}  {idx}  {status} {etype}" for (idx, etype, status), n in by.most_common()]
    lines.append("")
    for r in records[:limit]:
        doc = r["document"]
        lines.append(
            f"{r['@timestamp']} {r['index']} {r['_id']} {r['status']} {r['reason'].get('type')}: "
            f"{r['reason'].get('reason')}"
        )
        lines.append(f"    {doc if len(doc) <= 300 else doc[:300] + '...'}")
    if len(records) > limit:
        lines.append(f"... and {len(records) - limit} more (--limit)")
    return "\n".join(lines) + "\n"


async def replay(cfg: Config) -> tuple[int, list[dict[str, Any]]]:
    """Re-send every queued document; returns (delivered, still failing)."""
    q = DeadLetterQueue(cfg.data_dir / "dlq", cfg.dlq_max_bytes)
    records, upto = q.read()
    client = make_client(cfg.elasticsearch)
    delivered = 0
    failed: list[dict[str, Any]] = []
    try:
        for start in range(0, len(records), BATCH):
            chunk = records[start : start + BATCH]
            body = b"".join(
                orjson.dumps({"create": {"_index": r["index"], "_id": r["_id"]}})
                + b"\n"
                + r["document"].encode()
                + b"\n"
                for r in chunk
            )
            try:
                resp = await client.bulk(operations=body, filter_path="items.*.status,items.*.error")
            except Exception as e:
                raise RuntimeError(f"cannot replay: {_reason(e)}") from None
            for r, item in zip(chunk, resp.body["items"], strict=True):
                (res,) = item.values()
                if res["status"] < 300 or res["status"] == 409:
                    delivered += 1
                else:
                    err = res.get("error") or {}
                    failed.append(
                        {
                            **r,
                            "status": res["status"],
                            "reason": {"type": err.get("type", ""), "reason": err.get("reason", "")},
                        }
                    )
    finally:
        await client.close()
    q.remove_replayed(upto, failed)
    return delivered, failed
