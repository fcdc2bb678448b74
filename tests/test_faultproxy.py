"""Self-test of tests/faultproxy.py against a tiny upstream that answers like Elasticsearch's `_bulk`.

This checks the proxy itself; the tests that use it run against the real Elasticsearch.
"""

from __future__ import annotations

import asyncio
import gzip
import http.client
import json
import logging
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web

from .faultproxy import Fault, FaultProxy

FILTER_PATH = "errors,items.*.status,items.*.error.type,items.*.error.reason"
ES_HEADERS = {"X-Elastic-Product": "Elasticsearch", "Content-Type": "application/json"}


class Upstream:
    """An aiohttp app on its own loop and thread: `_bulk` answers like Elasticsearch, `/echo` says what it got."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context
        self.seen: list[dict[str, Any]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.url = ""

    def start(self) -> Upstream:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(5)
        return self

    def stop(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    async def _start(self) -> None:
        app = web.Application(client_max_size=1 << 26)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None, auto_decompress=False, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(
            {"method": request.method, "path": request.raw_path, "headers": dict(request.headers), "body": body}
        )
        if request.path == "/_bulk":
            return self._bulk(request, body)
        if request.path == "/echo":
            return web.json_response(
                {
                    "method": request.method,
                    "path": request.raw_path,
                    "headers": dict(request.headers),
                    "size": len(body),
                },
                headers={"X-Elastic-Product": "Elasticsearch", "X-Multi": "a"},
            )
        if request.path == "/drop":  # close without answering
            assert request.transport is not None
            request.transport.close()
            return _Dropped()
        if request.path == "/":
            return web.json_response(
                {"version": {"number": "8.19.0", "build_flavor": "default"}, "tagline": "You Know, for Search"},
                headers={"X-Elastic-Product": "Elasticsearch"},
            )
        return web.Response(status=404, body=b'{"error":"nope","status":404}', headers=ES_HEADERS)

    def _bulk(self, request: web.Request, body: bytes) -> web.Response:
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        actions = [json.loads(line) for line in body.splitlines()[::2] if line.strip()]
        filtered = "filter_path" in parse_qs(urlsplit(request.raw_path).query)
        items = []
        for n, action in enumerate(actions):
            ((op, meta),) = action.items()
            if filtered:
                items.append({op: {"status": 201}})
            else:
                items.append(
                    {
                        op: {
                            "_index": meta.get("_index", "i"),
                            "_id": meta.get("_id", str(n)),
                            "_version": 1,
                            "result": "created",
                            "_shards": {"total": 1, "successful": 1, "failed": 0},
                            "_seq_no": n,
                            "_primary_term": 1,
                            "status": 201,
                        }
                    }
                )
        doc: dict[str, Any] = (
            {"errors": False, "items": items} if filtered else {"errors": False, "took": 3, "items": items}
        )
        raw = json.dumps(doc).encode()
        headers = dict(ES_HEADERS)
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            raw = gzip.compress(raw)
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=raw, headers=headers)


class _Dropped(web.StreamResponse):
    async def prepare(self, request: web.BaseRequest) -> None:
        raise ConnectionResetError("dropped")


@pytest.fixture(autouse=True)
def no_server_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Cuts are deliberate: aiohttp must not log them as errors."""
    yield
    errors = [r for r in caplog.records if r.name.startswith("aiohttp") and r.levelno >= logging.WARNING]
    assert not errors, [r.getMessage() for r in errors]


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    u = Upstream().start()
    yield u
    u.stop()


@pytest.fixture
def proxy(upstream: Upstream) -> Iterator[FaultProxy]:
    with FaultProxy(upstream.url, upstream_timeout=5) as p:
        yield p


def bulk_body(n: int = 4, start: int = 0) -> bytes:
    lines = []
    for i in range(start, start + n):
        lines.append(json.dumps({"create": {"_index": "logs", "_id": f"d{i}"}}))
        lines.append(json.dumps({"message": f"line {i}"}))
    return ("\n".join(lines) + "\n").encode()


def request(
    proxy: FaultProxy,
    method: str = "POST",
    path: str = "/_bulk",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> tuple[http.client.HTTPResponse, bytes]:
    """One request; raises what http.client raises on a cut connection."""
    if conn is None:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    hdrs = {"Content-Type": "application/x-ndjson", **(headers or {})}
    conn.request(
        method, path, body=body if body is not None else (bulk_body() if method == "POST" else None), headers=hdrs
    )
    resp = conn.getresponse()
    return resp, resp.read()


def test_forwards_everything_untouched(proxy: FaultProxy, upstream: Upstream) -> None:
    body = gzip.compress(bulk_body(3))
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    resp, data = request(
        proxy,
        path=f"/_bulk?filter_path={FILTER_PATH}&refresh=false",
        body=body,
        conn=conn,
        headers={
            "Content-Encoding": "gzip",
            "Accept-Encoding": "gzip",
            "Authorization": "ApiKey abc",
            "Connection": "keep-alive, X-Private",
            "X-Private": "hop",
            "X-Opaque-Id": "t1",
        },
    )
    assert resp.status == 200
    assert resp.getheader("X-Elastic-Product") == "Elasticsearch"
    assert resp.getheader("Content-Encoding") == "gzip"
    assert int(resp.getheader("Content-Length")) == len(data)
    assert json.loads(gzip.decompress(data)) == {"errors": False, "items": [{"create": {"status": 201}}] * 3}
    got = upstream.seen[-1]
    assert got["body"] == body, "the gzip body reaches the upstream byte for byte"
    assert got["path"] == f"/_bulk?filter_path={FILTER_PATH}&refresh=false"
    assert got["headers"]["Authorization"] == "ApiKey abc"
    assert got["headers"]["X-Opaque-Id"] == "t1"
    assert got["headers"]["Host"] == urlsplit(upstream.url).netloc
    assert "X-Private" not in got["headers"]
    assert "User-Agent" not in got["headers"], "nothing added by the proxy's own client"

    # keep-alive: the same connection serves the next request
    assert not resp.will_close and conn.sock is not None
    sock = conn.sock
    resp, data = request(proxy, "GET", "/echo?x=%2Fa%20b", conn=conn)
    assert conn.sock is sock
    assert json.loads(data)["path"] == "/echo?x=%2Fa%20b", "the path is forwarded as encoded"
    conn.close()

    first, second = proxy.requests
    assert (first.method, first.path, first.status, first.fault, first.upstream_status) == (
        "POST",
        f"/_bulk?filter_path={FILTER_PATH}&refresh=false",
        200,
        None,
        200,
    )
    assert first.body_size == len(body) and first.body is None
    assert first.headers["authorization"] == "ApiKey abc"
    assert first.done and first.time <= time.time()
    assert second.path == "/echo?x=%2Fa%20b"


def test_head_and_errors_pass_through(proxy: FaultProxy) -> None:
    resp, data = request(proxy, "GET", "/missing")
    assert resp.status == 404 and json.loads(data)["status"] == 404
    resp, data = request(proxy, "HEAD", "/echo")
    assert resp.status == 200 and data == b""
    assert int(resp.getheader("Content-Length")) > 0, "HEAD keeps the upstream's Content-Length"


@pytest.mark.parametrize("status", [429, 503, 401, 403, 413])
def test_status(proxy: FaultProxy, upstream: Upstream, status: int) -> None:
    proxy.add(Fault("status", status=status))
    resp, data = request(proxy)
    assert resp.status == status
    assert resp.getheader("X-Elastic-Product") == "Elasticsearch"
    doc = json.loads(data)
    assert doc["status"] == status
    assert doc["error"]["type"] and doc["error"]["reason"] and doc["error"]["root_cause"][0]["type"]
    assert upstream.seen == [], "not forwarded"
    resp, _ = request(proxy)
    assert resp.status == 200, "count=1: the next one goes through"
    assert [(r.status, r.fault) for r in proxy.requests] == [(status, "status"), (200, None)]


def test_status_overrides(proxy: FaultProxy) -> None:
    proxy.add(Fault("status", status=400, error_type="x_exception", reason="why", headers={"X-Extra": "1"}))
    proxy.add(Fault("status", status=502, body=b"<html>bad gateway</html>"))
    resp, data = request(proxy)
    assert json.loads(data)["error"]["type"] == "x_exception" and resp.getheader("X-Extra") == "1"
    resp, data = request(proxy)
    assert (resp.status, data) == (502, b"<html>bad gateway</html>")


def test_schedule_order_count_after_path_method(proxy: FaultProxy, upstream: Upstream) -> None:
    a = Fault("status", status=429, count=2, after=1)
    b = Fault("status", status=503, count=None)
    proxy.add(a)
    proxy.add(b)
    proxy.add(Fault("status", status=401, path="^/echo", method="PUT"))
    statuses = [request(proxy)[0].status for _ in range(5)]
    # first request: `a` lets it through (after=1), so `b` (forever) applies; then `a` twice, then `b` again
    assert statuses == [503, 429, 429, 503, 503]
    assert (a.applied, a.skipped, b.applied) == (2, 1, 3)
    assert request(proxy, "GET", "/echo")[0].status == 200, "path and method must both match"
    assert request(proxy, "PUT", "/echo", body=b"{}")[0].status == 401
    proxy.clear()
    assert request(proxy)[0].status == 200
    proxy.add(a)  # counters start again
    assert (a.applied, a.skipped) == (0, 0)
    assert [request(proxy)[0].status for _ in range(4)] == [200, 429, 429, 200]
    assert len(upstream.seen) == 4


def test_fault_validation() -> None:
    with pytest.raises(ValueError):
        Fault("bogus")
    with pytest.raises(ValueError):
        Fault("status")
    assert Fault("item_status").status == 429


def test_delay(proxy: FaultProxy, upstream: Upstream) -> None:
    proxy.add(Fault("delay", seconds=0.3))
    t = time.monotonic()
    resp, _ = request(proxy)
    assert resp.status == 200 and time.monotonic() - t >= 0.3
    assert len(upstream.seen) == 1 and proxy.requests[0].fault == "delay"


def test_delay_outlives_the_client_and_still_forwards(proxy: FaultProxy, upstream: Upstream) -> None:
    proxy.add(Fault("delay", seconds=0.4))
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=0.1)
    with pytest.raises(TimeoutError):
        request(proxy, conn=conn)
    conn.close()
    proxy.wait_requests(1, timeout=3)
    assert len(upstream.seen) == 1, "the client gave up, the work was still done"
    assert proxy.requests[0].error


def test_delay_after_forwarding(proxy: FaultProxy, upstream: Upstream) -> None:
    proxy.add(Fault("delay", seconds=0.3, when="after"))
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    conn.request("POST", "/_bulk", body=bulk_body(), headers={"Content-Type": "application/x-ndjson"})
    time.sleep(0.15)
    assert len(upstream.seen) == 1, "forwarded before the delay"
    assert conn.getresponse().status == 200
    conn.close()


@pytest.mark.parametrize("reset", [False, True])
def test_cut_before(proxy: FaultProxy, upstream: Upstream, reset: bool) -> None:
    proxy.add(Fault("cut_before", reset=reset))
    with pytest.raises(ConnectionResetError):  # http.client.RemoteDisconnected (FIN) is one too
        request(proxy)
    proxy.wait_requests(1, timeout=2)
    assert upstream.seen == []
    rec = proxy.requests[0]
    assert (rec.fault, rec.status, rec.upstream_status) == ("cut_before", None, None)
    assert request(proxy)[0].status == 200


@pytest.mark.parametrize("fraction", [0.0, 0.5])
def test_cut_after(proxy: FaultProxy, upstream: Upstream, fraction: float) -> None:
    proxy.add(Fault("cut_after", fraction=fraction))
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    conn.request("POST", "/_bulk", body=bulk_body(10), headers={"Content-Type": "application/x-ndjson"})
    resp = conn.getresponse()
    assert resp.status == 200, "status line and headers arrive"
    full = int(resp.getheader("Content-Length"))
    with pytest.raises(http.client.IncompleteRead) as e:
        resp.read()
    assert len(e.value.partial) == int(full * fraction)
    conn.close()
    assert len(upstream.seen) == 1, "Elasticsearch did the work"
    proxy.wait_requests(1, timeout=2)
    rec = proxy.requests[0]
    assert (rec.fault, rec.status, rec.upstream_status) == ("cut_after", 200, 200)


def test_cut_after_reset(proxy: FaultProxy, upstream: Upstream) -> None:
    proxy.add(Fault("cut_after", reset=True))
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        request(proxy)
    assert len(upstream.seen) == 1


@pytest.mark.parametrize("filtered", [True, False])
@pytest.mark.parametrize("gzipped", [False, True])
def test_item_status(proxy: FaultProxy, upstream: Upstream, filtered: bool, gzipped: bool) -> None:
    proxy.add(Fault("item_status", status=429, every=3))
    path = f"/_bulk?filter_path={FILTER_PATH}" if filtered else "/_bulk"
    resp, data = request(proxy, path=path, body=bulk_body(7), headers={"Accept-Encoding": "gzip"} if gzipped else {})
    assert int(resp.getheader("Content-Length")) == len(data)
    assert resp.getheader("X-Elastic-Product") == "Elasticsearch"
    if gzipped:
        assert resp.getheader("Content-Encoding") == "gzip"
        data = gzip.decompress(data)
    doc = json.loads(data)
    assert doc["errors"] is True
    statuses = [item["create"]["status"] for item in doc["items"]]
    assert statuses == [201, 201, 429, 201, 201, 429, 201]
    rejected = doc["items"][2]["create"]
    assert rejected["error"] == {"type": "es_rejected_execution_exception", "reason": "injected"}
    assert "result" not in rejected
    if not filtered:
        assert rejected["_id"] == "d2" and doc["items"][0]["create"]["result"] == "created"
    else:
        assert doc["items"][0] == {"create": {"status": 201}}
    assert len(upstream.seen) == 1, "Elasticsearch indexed them all"
    assert proxy.requests[0].note == "2 of 7 items rewritten"


def test_item_status_every_item(proxy: FaultProxy) -> None:
    proxy.add(Fault("item_status", status=503))
    _, data = request(proxy, path=f"/_bulk?filter_path={FILTER_PATH}")
    assert {item["create"]["status"] for item in json.loads(data)["items"]} == {503}


def test_not_elasticsearch(proxy: FaultProxy, upstream: Upstream) -> None:
    proxy.add(Fault("not_elasticsearch", path=".*", count=None))
    for method, path in [("GET", "/"), ("POST", "/_bulk")]:
        resp, data = request(proxy, method, path)
        assert resp.status == 200 and json.loads(data)
        assert resp.getheader("X-Elastic-Product") is None
    assert upstream.seen == []


def test_upstream_dropping_is_not_retried(proxy: FaultProxy, upstream: Upstream) -> None:
    assert request(proxy, "GET", "/echo")[0].status == 200  # a pooled upstream connection
    with pytest.raises(ConnectionError):
        request(proxy, "PUT", "/drop", body=b"{}")
    assert [s["path"] for s in upstream.seen] == ["/echo", "/drop"], "one request in, one forwarded"
    proxy.wait_requests(2, timeout=2)
    assert "ServerDisconnected" in (proxy.requests[1].error or "")


def test_upstream_down_closes_the_connection() -> None:
    with FaultProxy("http://127.0.0.1:9", upstream_timeout=2) as proxy:  # discard port: nothing listens
        with pytest.raises(ConnectionError):
            request(proxy)
        proxy.wait_requests(1, timeout=2)
        assert proxy.requests[0].error and proxy.requests[0].status is None


def test_wait_requests(proxy: FaultProxy) -> None:
    proxy.add(Fault("delay", seconds=0.2))
    t = threading.Thread(target=lambda: [request(proxy) for _ in range(2)])
    t.start()
    proxy.wait_requests(2, timeout=3)
    t.join()
    proxy.wait_requests(2, timeout=0.1, path="^/_bulk")
    with pytest.raises(TimeoutError, match="2 of 3"):
        proxy.wait_requests(3, timeout=0.1)


def test_keep_bodies(upstream: Upstream) -> None:
    with FaultProxy(upstream.url, keep_bodies=True) as proxy:
        request(proxy, body=b"abc\n")
        assert proxy.requests[0].body == b"abc\n"


def test_stop_with_a_request_in_flight(upstream: Upstream) -> None:
    proxy = FaultProxy(upstream.url).start()
    proxy.add(Fault("delay", seconds=30))
    outcome: list[BaseException] = []

    def client() -> None:
        try:
            request(proxy)
        except (OSError, http.client.HTTPException) as e:
            outcome.append(e)

    t = threading.Thread(target=client, daemon=True)
    t.start()
    time.sleep(0.1)
    started = time.monotonic()
    proxy.stop()
    assert time.monotonic() - started < 5
    t.join(5)
    assert outcome and isinstance(outcome[0], ConnectionError), "the client sees the connection go"


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if not shutil.which("openssl"):
        pytest.skip("no openssl")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(d / "key.pem"),
            "-out",
            str(d / "cert.pem"),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ],
        check=True,
        capture_output=True,
    )
    return d / "cert.pem", d / "key.pem"


@pytest.mark.parametrize("how", ["ca", "no-verify", "default"])
def test_https_upstream(cert: tuple[Path, Path], how: str) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*cert)
    up = Upstream(ctx).start()
    try:
        kw: dict[str, Any] = {"ca": {"upstream_ca": str(cert[0])}, "no-verify": {"verify": False}, "default": {}}[how]
        with FaultProxy(up.url, upstream_timeout=3, **kw) as proxy:
            if how == "default":  # a self-signed certificate, not trusted: the connection is closed
                with pytest.raises(ConnectionError):
                    request(proxy)
                assert "SSL" in (proxy.requests[0].error or "") or "certificate" in (proxy.requests[0].error or "")
            else:
                assert request(proxy)[0].status == 200
                assert len(up.seen) == 1
    finally:
        up.stop()
