"""Webhooks against real aiohttp receivers: delivered, retried a bounded number of times on
500, timed out on a receiver that hangs, and never blocking the caller."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from shipper.anomaly.notify import Notifier, WebhookConfig


class Receiver:
    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.got: list[dict[str, Any]] = []
        self.hits = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        if self.behaviour == "hang":
            await asyncio.sleep(3600)
        if self.behaviour == "500":
            return web.Response(status=500)
        self.got.append(await request.json())
        return web.Response(status=204)

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)  # do not wait for the hanging handler
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Callable[[str], Any]]:
    made: list[Receiver] = []

    async def make(behaviour: str) -> Receiver:
        r = await Receiver(behaviour).start()
        made.append(r)
        return r

    yield make
    for r in made:
        await r.stop()


def doc(i: int, state: str = "start") -> dict[str, Any]:
    return {"event": {"dataset": "svc"}, "anomaly": {"signal": "events", "state": state, "value": float(i)}}


async def test_documents_are_posted_in_order(receiver: Any) -> None:
    ok = await receiver("ok")
    n = Notifier([WebhookConfig(ok.url, timeout=2)])
    n.start()
    n.notify(doc(1))
    n.notify(doc(1, "clear"))
    await n.close(5)
    assert ok.got == [doc(1), doc(1, "clear")]


async def test_500_is_retried_a_bounded_number_of_times_then_dropped(receiver: Any) -> None:
    bad = await receiver("500")
    n = Notifier([WebhookConfig(bad.url, timeout=2, retries=2, backoff=0.01)])
    n.start()
    n.notify(doc(1))
    await n.close(5)
    assert bad.hits == 3 and n.failed == 1


async def test_a_hanging_receiver_times_out_and_does_not_hold_the_others(receiver: Any) -> None:
    hang, ok = await receiver("hang"), await receiver("ok")
    n = Notifier(
        [WebhookConfig(hang.url, timeout=0.3, retries=1, backoff=0.01), WebhookConfig(ok.url, timeout=2)], max_queue=3
    )
    n.start()
    t0 = time.perf_counter()
    for i in range(10):  # never waits, whatever the receivers do
        n.notify(doc(i))
    assert time.perf_counter() - t0 < 0.05
    for _ in range(100):
        if len(ok.got) >= 3 and hang.hits >= 2:
            break
        await asyncio.sleep(0.05)
    # the queue keeps the newest (max_queue 3): the first document went out before it filled
    assert [d["anomaly"]["value"] for d in ok.got][-3:] == [7.0, 8.0, 9.0]
    assert n.hooks[0].dropped >= 6
    await asyncio.sleep(0.5)
    assert n.hooks[0].failed >= 1  # timed out twice (first try and one retry), given up
    await n.close(0.2)
