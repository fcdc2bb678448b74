"""Webhook notifications: each anomaly document (start and clear) POSTed as JSON.

One bounded queue and one task per webhook, so a receiver that hangs or fails delays
only its own notifications: ``notify`` never waits (a full queue drops its oldest
entry, counted), every POST has a timeout, and a failed one is retried a bounded
number of times with backoff, then given up (logged). Log shipping never waits for any
of this.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from .outqueue import OutQueue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebhookConfig:
    """One webhook of ``anomaly.notify``."""

    url: str
    timeout: float = 5.0
    retries: int = 3  # attempts after the first
    backoff: float = 0.5  # first retry delay, doubling


class Webhook(OutQueue[bytes]):
    """Delivers to one URL from its own queue."""

    def __init__(self, cfg: WebhookConfig, max_queue: int) -> None:
        super().__init__(max_queue, f"webhook:{cfg.url}")
        self.cfg = cfg
        self._session: aiohttp.ClientSession | None = None
        self.sent = 0
        self.failed = 0

    def start(self) -> None:
        # an https receiver is verified against the system's CA store, with a context of
        # our own: aiohttp's default one has no CA in the agent (shipper/sinks/__init__.py)
        connector = aiohttp.TCPConnector(ssl=ssl.create_default_context()) if self.cfg.url.startswith("https") else None
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.cfg.timeout)
        )
        super().start()

    async def _drain(self) -> None:
        if await self._post(self._queue.popleft()):
            self.sent += 1
        else:
            self.failed += 1

    async def _post(self, body: bytes) -> bool:
        assert self._session is not None
        error = ""
        for attempt in range(self.cfg.retries + 1):
            if attempt:
                await asyncio.sleep(self.cfg.backoff * 2 ** (attempt - 1))
            try:
                async with self._session.post(
                    self.cfg.url, data=body, headers={"Content-Type": "application/json"}
                ) as resp:
                    await resp.read()
                    if resp.status < 300:
                        return True
                    error = f"HTTP {resp.status}"
                    if 400 <= resp.status < 500 and resp.status not in (408, 429):
                        break  # the receiver refuses this document: retrying will not change that
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
                error = str(e) or type(e).__name__
        log.warning("anomaly webhook %s failed after %d attempt(s): %s", self.cfg.url, attempt + 1, error)
        return False

    async def stop(self) -> None:
        await super().stop()
        if self._session is not None:
            await self._session.close()


class Notifier:
    """Fans anomaly documents out to every configured webhook."""

    def __init__(self, hooks: list[WebhookConfig], max_queue: int = 1000) -> None:
        self.hooks = [Webhook(h, max_queue) for h in hooks]

    def start(self) -> None:
        for h in self.hooks:
            h.start()

    def notify(self, doc: dict[str, Any]) -> None:
        """Queue ``doc`` for every webhook; returns at once."""
        if not self.hooks:
            return
        body = orjson.dumps(doc)
        for h in self.hooks:
            h.put(body)

    @property
    def dropped(self) -> int:
        return sum(h.dropped for h in self.hooks)

    @property
    def failed(self) -> int:
        return sum(h.failed for h in self.hooks)

    async def close(self, timeout: float = 2.0) -> None:
        """Give queued notifications ``timeout`` seconds in all, then stop."""
        if self.hooks:
            await asyncio.wait([asyncio.ensure_future(h.flush(timeout)) for h in self.hooks])
        for h in self.hooks:
            await h.stop()
