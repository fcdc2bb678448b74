"""The agent's HTTP listener: /health (alive), /ready (can it deliver), /metrics.

Bound to 127.0.0.1 unless the user binds elsewhere: the metrics name files and
hosts, which is nobody's business off the machine by default.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from .metrics import CONTENT_TYPE, Metrics


class HttpServer:
    def __init__(self, listen: str, metrics: Metrics, readiness: Callable[[], dict[str, Any]]) -> None:
        host, _, port = listen.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.metrics = metrics
        self.readiness = readiness
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/ready", self._ready)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _health(self, _: web.Request) -> web.Response:
        return web.Response(body=b'{"status":"alive"}', content_type="application/json")

    async def _ready(self, _: web.Request) -> web.Response:
        state = self.readiness()
        ok = state.get("ready", False)
        return web.Response(body=orjson.dumps(state), status=200 if ok else 503, content_type="application/json")

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})
