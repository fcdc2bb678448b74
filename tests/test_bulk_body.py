"""The `_bulk` body goes out as the chunk bodies it is made of (no joined copy): the server
gets the exact bytes with a Content-Length, the same object can be sent again (a retry),
and the gzip path compresses it to the same bytes."""

from __future__ import annotations

import gzip
from typing import Any

import aiohttp
from aiohttp import web

from shipper.sinks.elasticsearch import BulkBody, BulkBodySerializer, _gzip


async def _server() -> tuple[web.AppRunner, str, list[tuple[str | None, str | None, bytes]]]:
    got: list[tuple[str | None, str | None, bytes]] = []

    async def bulk(request: web.Request) -> web.Response:
        got.append((request.headers.get("Content-Length"), request.headers.get("Transfer-Encoding"),
                    await request.read()))
        return web.json_response({"errors": False, "items": []})

    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/_bulk", bulk)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/_bulk", got


async def test_chunks_arrive_whole_with_a_content_length_and_can_be_resent() -> None:
    big = b'{"create":{}}\n{"message":"x"}\n' * 100_000  # 3 MB: more than a socket takes at once
    slices: list[Any] = [memoryview(big)[:31], memoryview(big)[31 * 5 : 31 * 9]]
    body = BulkBody([b'{"create":{}}\n{"a":1}\n', big, *slices])
    want = b"".join(bytes(c) for c in body.chunks)
    assert len(body) == len(want) and bytes(body) == want
    runner, url, got = await _server()
    try:
        async with aiohttp.ClientSession() as s:
            for _ in range(2):  # the retry path sends the same object again
                async with s.post(url, data=body) as r:
                    assert r.status == 200
    finally:
        await runner.cleanup()
    assert got == [(str(len(want)), None, want)] * 2


def test_gzip_and_serializer_take_a_bulk_body() -> None:
    body = BulkBody([b"a\n", memoryview(b"bc\n")[1:], b"d\n"])
    assert gzip.decompress(_gzip(body)) == b"a\nc\nd\n"
    assert gzip.decompress(_gzip(b"a\nc\nd\n")) == b"a\nc\nd\n"
    assert BulkBodySerializer().dumps(body) is body
    assert body.decode() == "a\nc\nd\n"


def test_acknowledged_bulk_responses_are_not_parsed() -> None:
    """Only `errors` is needed when nothing failed; everything else is parsed as before."""
    from shipper.sinks.client import CompatResponseSerializer, ResponseSerializer

    ok = b'{"errors":false,"items":[' + b",".join([b'{"create":{"status":201}}'] * 1000) + b"]}"
    failed = b'{"errors":true,"items":[{"create":{"status":429,"error":{"type":"x","reason":"y"}}}]}'
    for ser in (ResponseSerializer(), CompatResponseSerializer()):
        assert ser.loads(ok) == {"errors": False}
        assert ser.loads(b'{"errors":false}') == {"errors": False}
        assert ser.loads(failed)["items"][0]["create"]["status"] == 429
        assert ser.loads(b'{"cluster_name":"x","status":"green"}') == {"cluster_name": "x", "status": "green"}
