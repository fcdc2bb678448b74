"""The dead-letter queue: documents Elasticsearch refused for good, with the reason.

Kept as NDJSON in `data_dir/dlq/` so a user can read it, fix the cause (a mapping, a
field) and re-send it; an event in the queue counts as delivered for the checkpoint,
so a poison document never blocks its file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import orjson


class DeadLetterQueue:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "dlq.ndjson"
        self._fd = -1

    def write(self, records: list[dict[str, Any]]) -> None:
        """Append and fsync before the events are settled: the queue is their only copy."""
        if self._fd < 0:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        data = b"".join(orjson.dumps({"@timestamp": now, **r}) + b"\n" for r in records)
        os.write(self._fd, data)
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
