"""The dead-letter queue: documents Elasticsearch refused for good, with the reason.

Kept as NDJSON in `data_dir/dlq/` so a user can read it, fix the cause (a mapping, a
field) and re-send it with `shipper dlq replay`; an event in the queue counts as
delivered for the checkpoint, so a poison document never blocks its file. The queue
is bounded: when it is full the refused events are held (retried) instead, so their
inputs stop advancing and nothing is dropped. The agent appends under a lock and
reopens the file for every write, so a replay may rewrite it while the agent runs.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson


class DeadLetterQueueFull(RuntimeError):
    pass


class DeadLetterQueue:
    def __init__(self, directory: Path, max_bytes: int = 1 << 30) -> None:
        self.directory = directory
        self.path = directory / "dlq.ndjson"
        self.max_bytes = max_bytes

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def write(self, records: list[dict[str, Any]]) -> None:
        """Append and fsync before the events are settled: the queue is their only copy."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        data = b"".join(orjson.dumps({"@timestamp": now, **r}) + b"\n" for r in records)
        with self.locked():
            if self.size() + len(data) > self.max_bytes:
                raise DeadLetterQueueFull(
                    f"dead-letter queue {self.path} is full ({self.size()} bytes, max_bytes {self.max_bytes}); "
                    "holding the refused events: replay or remove it to let their inputs advance"
                )
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)

    def read(self) -> tuple[list[dict[str, Any]], int]:
        """Every record now in the queue, and the byte length they were read from."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return [], 0
        end = data.rfind(b"\n") + 1
        return [orjson.loads(line) for line in data[:end].splitlines() if line.strip()], end

    def remove_replayed(self, upto: int, keep: list[dict[str, Any]]) -> None:
        """Replace the first `upto` bytes with `keep` (what still fails); later appends stay."""
        with self.locked():
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                data = b""
            rest = data[upto:]
            body = b"".join(orjson.dumps(r) + b"\n" for r in keep) + rest
            tmp = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, body)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)

    def close(self) -> None:
        """Nothing is held open between writes."""
