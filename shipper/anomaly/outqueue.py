"""A bounded queue drained by one background task: what the document writer and each
webhook share, so that neither can make a caller wait.

``put`` never blocks: when the queue is full its oldest entry is dropped (and counted),
since for alerts and dashboards the newest state matters most. ``flush`` waits, with a
deadline, until the task has emptied the queue (at shutdown); ``stop`` cancels it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class OutQueue(Generic[T]):
    """Subclasses implement ``_drain`` (take entries with ``_queue.popleft()``)."""

    def __init__(self, max_queue: int, name: str) -> None:
        self.max_queue = max_queue
        self.name = name
        self.dropped = 0
        self._queue: deque[T] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    def put(self, entry: T) -> None:
        """Queue ``entry``; the oldest goes when the queue is full. Never waits."""
        if len(self._queue) >= self.max_queue:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(entry)
        self._idle.clear()
        self._wake.set()

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._drain()

    async def _drain(self) -> None:
        """Deliver (some of) what is queued; called while the queue is not empty."""
        raise NotImplementedError

    async def flush(self, timeout: float) -> bool:
        """Wait until the queue is empty, at most ``timeout`` seconds; False if it is not."""
        if self._task is None:
            return not self._queue
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
