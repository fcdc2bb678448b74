"""A reverse proxy that injects faults around a real Elasticsearch, for integration tests.

The agent (a separate process) is given the proxy's URL as its Elasticsearch host; the proxy
forwards every request to the real server untouched and, on a programmable schedule, misbehaves:

    with FaultProxy(es_url) as proxy:
        proxy.add(Fault("status", status=429, count=3))        # three _bulk requests answered 429
        proxy.add(Fault("cut_after", after=2))                  # ES does the work, the client never hears
        ...
        proxy.wait_requests(10, timeout=30)
        assert [r.fault for r in proxy.requests if r.fault]

Fault kinds (`Fault.kind`):

- ``status``: answer ``status`` without forwarding, with an Elasticsearch-shaped JSON error body
  and ``X-Elastic-Product: Elasticsearch`` (``error_type``/``reason``/``body``/``headers`` override).
- ``delay``: sleep ``seconds``, then forward (``when="after"``: forward first, sleep before answering).
  The request is forwarded even if the client gave up meanwhile.
- ``cut_before``: read the request, then close the client connection without forwarding.
- ``cut_after``: forward (Elasticsearch does the work), then send the status line, the headers
  (with the full Content-Length) and only ``fraction`` of the body, and close the connection.
- ``item_status``: forward, then rewrite a ``_bulk`` answer: every ``every``-th item gets ``status``
  (default 429) and an ``es_rejected_execution_exception`` error, ``errors`` becomes true.
- ``not_elasticsearch``: answer 200 with a JSON body and no ``X-Elastic-Product`` header.

``reset=True`` on the ``cut_*`` kinds closes with a TCP RST instead of a FIN.

Scheduling: faults are considered in the order they were added; a fault considers a request if
``path`` (a regex, searched in the path *with* its query string) and ``method`` (if set) match.
A fault first lets ``after`` such requests through (they fall through to the faults after it),
then applies to ``count`` of them (``None``: until cleared); the first fault that applies wins.
Counters live on the fault (``applied``, ``skipped``) and are reset by ``add``.

Bodies are passed through byte for byte in both directions (gzip included); only ``item_status``
decodes, rewrites and re-encodes an answer. If Elasticsearch cannot be reached (or does not
answer within ``upstream_timeout``), the client connection is closed, as if talking to a dead
server.

What the elasticsearch 8.x client (AsyncElasticsearch, aiohttp node, ``max_retries=0``) makes of
each fault on ``bulk()``, and shipper's own client on the same transport too
(tests/test_es_client.py):

- ``status``: ``AuthenticationException`` (401), ``AuthorizationException`` (403), plain ``ApiError``
  for 413, 429, 502, 503 (``e.meta.status`` tells them apart).
- ``cut_before``: aiohttp itself resends an idempotent request once when the server disconnects
  before answering, and the client's ``bulk`` is a ``PUT /_bulk``: a single cut is invisible
  (the proxy sees two requests), two in a row raise ``elastic_transport.ConnectionError``.
- ``cut_after`` (any ``fraction``, FIN or RST): ``elastic_transport.ConnectionError``, not retried.
- ``delay`` longer than ``request_timeout``: ``elastic_transport.ConnectionTimeout``.
- ``not_elasticsearch``: ``UnsupportedProductError``, but only until the client has seen one
  answer with the header: the check is made once per client, and only on 2xx answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import re
import socket
import ssl
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

__all__ = ["KINDS", "Fault", "FaultProxy", "RequestRecord"]

KINDS = frozenset({"status", "delay", "cut_before", "cut_after", "item_status", "not_elasticsearch"})

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Recomputed for the body actually sent on each side.
RECOMPUTED = frozenset({"content-length", "host"})

PRODUCT_HEADER = {"X-Elastic-Product": "Elasticsearch"}

ERROR_TYPES = {
    400: ("illegal_argument_exception", "injected bad request"),
    401: ("security_exception", "missing authentication credentials for REST request [injected]"),
    403: ("security_exception", "action [indices:data/write/bulk] is unauthorized [injected]"),
    404: ("index_not_found_exception", "no such index [injected]"),
    409: ("version_conflict_engine_exception", "injected version conflict"),
    413: ("content_too_long_exception", "request content is too large [injected]"),
    429: ("es_rejected_execution_exception", "rejected execution of coordinating operation [injected]"),
    500: ("exception", "injected internal error"),
    502: ("exception", "injected bad gateway"),
    503: ("unavailable_shards_exception", "primary shard is not active [injected]"),
    504: ("timeout_exception", "injected timeout"),
}


@dataclass
class Fault:
    """One entry of the schedule; see the module docstring for the kinds."""

    kind: str
    path: str = r"^/_bulk"
    count: int | None = 1
    after: int = 0
    method: str | None = None  # e.g. "POST"; None: any
    # status, item_status
    status: int | None = None
    # status: overrides of the answer (error_type, reason: item_status too)
    error_type: str | None = None
    reason: str | None = None
    body: bytes | None = None
    headers: dict[str, str] | None = None
    # delay
    seconds: float = 0.0
    when: str = "before"  # "before": sleep then forward; "after": forward, sleep, answer
    # item_status
    every: int = 1
    # cut_after: share of the body sent before the cut (0: headers only)
    fraction: float = 0.0
    # cut_before, cut_after: TCP RST instead of FIN
    reset: bool = False
    # state, reset by FaultProxy.add
    applied: int = field(default=0, init=False, compare=False)
    skipped: int = field(default=0, init=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {sorted(KINDS)}")
        if self.kind == "status" and self.status is None:
            raise ValueError("Fault('status') needs status=")
        if self.kind == "item_status" and self.status is None:
            self.status = 429
        if self.every < 1:
            raise ValueError("every must be >= 1")
        if not 0.0 <= self.fraction < 1.0:
            raise ValueError("fraction must be in [0, 1)")
        if self.when not in ("before", "after"):
            raise ValueError("when must be 'before' or 'after'")
        re.compile(self.path)

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.applied >= self.count

    def _matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return re.search(self.path, path) is not None


@dataclass
class RequestRecord:
    """A request the proxy saw. Appended on arrival (body read); the rest is filled in when done."""

    method: str
    path: str  # with the query string, as sent
    headers: dict[str, str]  # lower-case names
    body_size: int  # bytes as received (compressed if the client compressed)
    time: float  # time.time() on arrival
    fault: str | None = None  # kind of the fault applied, None if forwarded untouched
    status: int | None = None  # status line sent to the client; None if none was
    upstream_status: int | None = None  # what Elasticsearch answered; None if not forwarded
    error: str | None = None  # upstream failure, or the client gone before the answer
    note: str | None = None  # e.g. how many items item_status rewrote
    duration: float | None = None  # seconds; None while in flight
    body: bytes | None = None  # only with FaultProxy(keep_bodies=True)

    @property
    def done(self) -> bool:
        return self.duration is not None


class FaultProxy:
    """The proxy, on its own asyncio loop in a background thread; its API is synchronous."""

    def __init__(
        self,
        upstream: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        upstream_ca: str | None = None,
        verify: bool = True,
        upstream_timeout: float = 60.0,
        keep_bodies: bool = False,
        max_body: int = 1 << 30,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.host = host
        self.port = port
        self.upstream_ca = upstream_ca
        self.verify = verify
        self.upstream_timeout = upstream_timeout
        self.keep_bodies = keep_bodies
        self.max_body = max_body
        self.url = ""
        self.requests: list[RequestRecord] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- the synchronous API ------------------------------------------------------------

    def start(self) -> FaultProxy:
        if self._thread is not None:
            raise RuntimeError("already started")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name=f"faultproxy-{self.upstream}", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._astart(), loop).result(timeout=15)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            if loop.is_running():
                asyncio.run_coroutine_threadsafe(self._astop(), loop).result(timeout=15)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            if not thread.is_alive():
                loop.close()
            self._loop = self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add(self, fault: Fault) -> None:
        """Append `fault` to the schedule (its counters start again from zero)."""
        with self._lock:
            fault.applied = fault.skipped = 0
            self._faults.append(fault)

    def clear(self) -> None:
        """Empty the schedule; requests in flight keep the fault already chosen for them."""
        with self._lock:
            self._faults.clear()

    @property
    def faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def wait_requests(self, n: int, timeout: float, path: str | None = None) -> None:
        """Wait until `n` requests (whose path matches the regex `path`, if given) are done.

        Raises TimeoutError, with what was seen, after `timeout` seconds.
        """
        deadline = time.monotonic() + timeout

        def count() -> int:
            return sum(1 for r in self.requests if r.done and (path is None or re.search(path, r.path)))

        with self._cond:
            while (seen := count()) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{seen} of {n} requests done in {timeout}s"
                        f"{f' matching {path!r}' if path else ''} ({len(self.requests)} seen)"
                    )
                self._cond.wait(left)

    # -- the server -----------------------------------------------------------------------

    async def _astart(self) -> None:
        ssl_arg: ssl.SSLContext | bool = True
        if self.upstream.startswith("https:"):
            ssl_arg = ssl.create_default_context(cafile=self.upstream_ca) if self.verify else False
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl_arg, limit=0, force_close=False),
            timeout=aiohttp.ClientTimeout(total=self.upstream_timeout, connect=min(10.0, self.upstream_timeout)),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )
        # aiohttp resends an idempotent request (PUT /_bulk is one) once when a pooled connection
        # drops before the answer; the proxy must not: one request in, at most one forwarded.
        self._session._retry_connection = False
        app = web.Application(client_max_size=self.max_body)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # auto_decompress=False: gzip request bodies reach the handler (and Elasticsearch) untouched.
        self._runner = web.AppRunner(
            app, access_log=None, auto_decompress=False, shutdown_timeout=0.25, keepalive_timeout=30.0
        )
        await self._runner.setup()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        host = f"[{self.host}]" if family == socket.AF_INET6 else self.host
        self.url = f"http://{host}:{self.port}"

    async def _astop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _choose(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.exhausted or not fault._matches(method, path):
                    continue
                if fault.skipped < fault.after:
                    fault.skipped += 1
                    continue
                fault.applied += 1
                return fault
        return None

    def _finish(self, rec: RequestRecord, start: float) -> None:
        with self._cond:
            rec.duration = time.monotonic() - start
            self._cond.notify_all()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        start = time.monotonic()
        arrived = time.time()
        body = await request.read()
        headers: dict[str, str] = {}
        for k, v in request.headers.items():
            k = k.lower()
            headers[k] = f"{headers[k]}, {v}" if k in headers else v
        rec = RequestRecord(
            method=request.method,
            path=request.raw_path,
            headers=headers,
            body_size=len(body),
            time=arrived,
            body=body if self.keep_bodies else None,
        )
        with self._cond:
            self.requests.append(rec)
        fault = self._choose(request.method, request.raw_path)
        rec.fault = fault.kind if fault else None
        try:
            return await self._serve(request, body, fault, rec)
        finally:
            self._finish(rec, start)

    async def _serve(
        self, request: web.Request, body: bytes, fault: Fault | None, rec: RequestRecord
    ) -> web.StreamResponse:
        kind = fault.kind if fault else None
        if fault is not None and kind == "status":
            assert fault.status is not None
            rec.status = fault.status
            return _status_response(fault, fault.status)
        if kind == "not_elasticsearch":
            rec.status = 200
            return web.Response(
                status=200,
                body=b'{"name":"not-elasticsearch","tagline":"You Know, for Something Else"}',
                content_type="application/json",
            )
        if fault is not None and kind == "cut_before":
            _cut(request, fault.reset)
            return _Cut()
        if fault is not None and kind == "delay" and fault.when == "before":
            await asyncio.sleep(fault.seconds)

        up = await self._forward(request, body, rec)
        if up is None:
            _cut(request, reset=False)
            return _Cut()
        rec.upstream_status = up.status

        if fault is not None and kind == "delay" and fault.when == "after":
            await asyncio.sleep(fault.seconds)
        if fault is not None and kind == "item_status":
            up.body, rec.note = _rewrite_items(up.body, up.headers, fault)
        if fault is not None and kind == "cut_after":
            rec.status = up.status
            _send_partial(request, up, fault)
            return _Cut()

        if request.transport is None or request.transport.is_closing():
            rec.error = rec.error or "client gone before the answer"
            return _Cut()
        rec.status = up.status
        if request.method == "HEAD":
            head = web.StreamResponse(status=up.status, reason=up.reason, headers=up.headers)
            if up.content_length is not None:
                head.content_length = up.content_length
            await head.prepare(request)
            await head.write_eof()
            return head
        return web.Response(status=up.status, reason=up.reason, headers=up.headers, body=up.body)

    async def _forward(self, request: web.Request, body: bytes, rec: RequestRecord) -> _Upstream | None:
        assert self._session is not None
        drop = HOP_BY_HOP | RECOMPUTED | _connection_tokens(request.headers)
        out = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in drop)
        url = URL(self.upstream + request.raw_path, encoded=True)
        try:
            async with self._session.request(
                request.method,
                url,
                headers=out,
                data=body if body or request.body_exists else None,
                allow_redirects=False,
            ) as resp:
                data = await resp.read()
                drop_back = HOP_BY_HOP | RECOMPUTED | _connection_tokens(resp.headers)
                back = CIMultiDict((k, v) for k, v in resp.headers.items() if k.lower() not in drop_back)
                declared = resp.headers.get("Content-Length")
                return _Upstream(
                    resp.status,
                    resp.reason or "",
                    back,
                    data,
                    int(declared) if declared and declared.isdigit() else None,
                )
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            rec.error = f"upstream: {type(e).__name__}: {e}"
            return None


class _Cut(web.StreamResponse):
    """Returned once the connection is closed: aiohttp takes the ConnectionError for a client gone, quietly."""

    async def prepare(self, request: web.BaseRequest) -> None:
        raise ConnectionResetError("faultproxy: connection cut")


@dataclass
class _Upstream:
    status: int
    reason: str
    headers: CIMultiDict[str]  # to send back: minus hop-by-hop and Content-Length
    body: bytes
    content_length: int | None  # as upstream declared it (for HEAD)


def _connection_tokens(headers: Any) -> frozenset[str]:
    return frozenset(t.strip().lower() for v in headers.getall("Connection", []) for t in v.split(",") if t.strip())


def _status_response(fault: Fault, status: int) -> web.Response:
    if fault.body is not None:
        body = fault.body
    else:
        etype, reason = ERROR_TYPES.get(status, ("exception", f"injected status {status}"))
        etype = fault.error_type or etype
        reason = fault.reason or reason
        err = {"type": etype, "reason": reason}
        body = json.dumps({"error": {"root_cause": [err], **err}, "status": status}, separators=(",", ":")).encode()
    headers = {**PRODUCT_HEADER, "Content-Type": "application/json"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="security", charset="UTF-8", ApiKey'
    headers.update(fault.headers or {})
    return web.Response(status=status, body=body, headers=headers)


def _cut(request: web.Request, reset: bool) -> None:
    transport = request.transport
    if transport is None:
        return
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()


def _send_partial(request: web.Request, up: _Upstream, fault: Fault) -> None:
    """Status line, headers with the full Content-Length, `fraction` of the body, then the cut."""
    transport = request.transport
    if transport is None or transport.is_closing():
        return
    lines = [f"HTTP/1.1 {up.status} {up.reason or HTTPStatus(up.status).phrase}"]
    lines += [f"{k}: {v}" for k, v in up.headers.items()]
    lines.append(f"Content-Length: {len(up.body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    transport.write(head + up.body[: int(len(up.body) * fault.fraction)])
    if fault.reset:
        _cut(request, reset=True)  # may discard what is still queued: the client may see less
    else:
        transport.close()  # flushes what was written, then FIN


def _rewrite_items(body: bytes, headers: CIMultiDict[str], fault: Fault) -> tuple[bytes, str]:
    """Every `every`-th item of a `_bulk` answer gets `fault.status` and a rejection error."""
    encoding = headers.get("Content-Encoding", "").strip().lower()
    try:
        if encoding == "gzip":
            raw = gzip.decompress(body)
        elif encoding == "deflate":
            raw = zlib.decompress(body)
        elif encoding in ("", "identity"):
            raw = body
        else:
            return body, f"not rewritten: Content-Encoding {encoding}"
        doc = json.loads(raw)
    except (OSError, zlib.error, ValueError) as e:
        return body, f"not rewritten: {type(e).__name__}"
    items = doc.get("items") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        return body, "not rewritten: no items"
    rewritten = 0
    for i, item in enumerate(items, 1):
        if i % fault.every or not isinstance(item, dict) or not item:
            continue
        for result in item.values():
            if not isinstance(result, dict):
                continue
            for k in ("result", "_version", "_shards", "_seq_no", "_primary_term", "forced_refresh", "get"):
                result.pop(k, None)
            result["status"] = fault.status
            result["error"] = {
                "type": fault.error_type or "es_rejected_execution_exception",
                "reason": fault.reason or "injected",
            }
        rewritten += 1
    if rewritten:
        doc["errors"] = True
    raw = json.dumps(doc, separators=(",", ":")).encode()
    if encoding == "gzip":
        body = gzip.compress(raw)
    elif encoding == "deflate":
        body = zlib.compress(raw)
    else:
        body = raw
    return body, f"{rewritten} of {len(items)} items rewritten"
