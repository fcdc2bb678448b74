"""The Elasticsearch output: `_bulk` with per-item outcomes and shipper's own retries.

The client (`client.py`: elastic_transport's AsyncTransport on aiohttp, the official
client's own transport) owns connections, the node pool, auth and TLS; retries are ours:
elastic-transport retries 429/502/503/504 three times at once with no backoff and then
gives up, while a log shipper must back off and never give up, and must resend only the
items that failed. Outcomes per item:
2xx and 409 (a replayed `create`) are delivered; 429, 5xx and rejected executions are
retried; other 4xx are document errors and go to the dead-letter queue.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import random
import time
import zlib
from typing import Any

import orjson
from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload
from elastic_transport import AiohttpHttpNode, HttpHeaders, NdjsonSerializer

from ..config import ElasticsearchConfig
from ..dlq import DeadLetterQueue, DeadLetterQueueFull
from ..metrics import Metrics
from ..pipeline import Part, Pipeline, Segment
from .client import (
    ApiError,
    AuthenticationException,
    AuthorizationException,
    Client,
    ConnectionError,
    TransportError,
    UnsupportedProductError,
    new_client,
)

log = logging.getLogger(__name__)

FILTER_PATH = "errors,items.*.status,items.*.error.type,items.*.error.reason"
RETRY_TYPES = frozenset(
    {
        "es_rejected_execution_exception",
        "circuit_breaking_exception",
        "unavailable_shards_exception",
        "cluster_block_exception",
    }
)

_NUMERIC_METRICS = {"metrics_as_double": {"path_match": "metrics.*", "mapping": {"type": "double"}}}
# window summaries hold metrics.<name>.{count,sum,min,max,mean}; the rule keeps the logs'
# rule's name so that it replaces that rule wherever both meet (dynamic templates merge
# by name: an index created with these mappings under an older shipper-metrics template)
_METRIC_STATS = {"metrics_as_double": {"path_match": "metrics.*.*", "mapping": {"type": "double"}}}
_QUALITY = {"quality_as_double": {"path_match": "quality.*", "mapping": {"type": "double"}}}
_STRINGS = {
    "strings_as_keyword": {"match_mapping_type": "string", "mapping": {"type": "keyword", "ignore_above": 1024}}
}
_COMMON = {
    "@timestamp": {"type": "date"},
    "tags": {"type": "keyword"},
    "host": {"properties": {"name": {"type": "keyword"}}},
    "event": {"properties": {"dataset": {"type": "keyword"}}},
    "labels": {"type": "object"},
}

# Composable templates for shipper's own index patterns only: the user's other indices
# are never touched. `metrics.*` is numeric wherever it appears so that a value that
# happens to look like an integer first does not fix the field to long.
TEMPLATES: dict[str, dict[str, Any]] = {
    "shipper-logs": {
        "index_patterns": ["shipper-logs-*"],
        "priority": 200,
        "template": {
            "mappings": {
                "dynamic_templates": [_NUMERIC_METRICS, _STRINGS],
                "properties": {
                    **_COMMON,
                    "message": {"type": "text"},
                    "log": {
                        "properties": {
                            "file": {"properties": {"path": {"type": "keyword"}}},
                            "offset": {"type": "long"},
                            "level": {"type": "keyword"},
                            "original_length": {"type": "long"},
                        }
                    },
                    "error": {
                        "properties": {
                            "type": {"type": "keyword"},
                            "class": {"type": "keyword"},
                            "message": {"type": "text"},
                            "stack_trace": {"type": "text"},
                        }
                    },
                },
            }
        },
        "_meta": {"managed_by": "shipper"},
    },
    "shipper-metrics": {
        "index_patterns": ["shipper-metrics-*"],
        "priority": 200,
        "template": {
            "mappings": {
                # window summaries: metrics.<name>.{count,sum,min,max,mean} and quality.<name>
                "dynamic_templates": [_METRIC_STATS, _QUALITY, _STRINGS],
                "properties": {
                    **_COMMON,
                    "window": {
                        "properties": {
                            "events": {"type": "long"},
                            "bytes": {"type": "long"},
                            "errors": {"type": "long"},
                        }
                    },
                    "quality": {"type": "object"},
                },
            }
        },
        "_meta": {"managed_by": "shipper"},
    },
    "shipper-anomalies": {
        "index_patterns": ["shipper-anomalies-*"],
        "priority": 200,
        "template": {
            "mappings": {
                "dynamic_templates": [_STRINGS],
                "properties": {
                    **_COMMON,
                    "message": {"type": "text"},
                    "anomaly": {
                        "properties": {
                            "signal": {"type": "keyword"},
                            "value": {"type": "double"},
                            "mean": {"type": "double"},
                            "stddev": {"type": "double"},
                            "direction": {"type": "keyword"},
                            "state": {"type": "keyword"},
                        }
                    },
                },
            }
        },
        "_meta": {"managed_by": "shipper"},
    },
}


class DataStreamTarget(RuntimeError):
    """An index name would create a data stream: refuse to start (exactly-once needs plain indices)."""


def data_stream_template(templates: list[dict[str, Any]], index: str) -> str | None:
    """The name of the composable template that would make `index` a data stream, if any.

    Elasticsearch applies the matching template of the highest priority; when that one has
    `data_stream`, writing to `index` creates a data stream whose rollover would put
    one `_id` in two backing indices, so a replayed `create` would double the event.
    """
    best: tuple[int, str, bool] | None = None
    for t in templates:
        body = t.get("index_template", {})
        if any(fnmatch.fnmatchcase(index, p) for p in body.get("index_patterns", [])):
            prio = int(body.get("priority") or 0)
            if best is None or prio > best[0]:
                best = (prio, t.get("name", "?"), "data_stream" in body)
    return best[1] if best and best[2] else None


async def check_targets(client: Client, indices: list[str]) -> None:
    """Refuse index names that would be data streams (where privileges allow asking)."""
    try:
        resp = await client.options(request_timeout=10).indices.get_index_template()
    except (AuthorizationException, AuthenticationException) as e:
        log.warning("cannot read index templates to check for data streams (%s); not checked", _reason(e))
        return
    except (ConnectionError, TransportError, ApiError):
        return  # unreachable: reported by setup; checked again at the next start
    for index in indices:
        name = data_stream_template(resp.body.get("index_templates", []), index)
        if name:
            raise DataStreamTarget(
                f"index {index!r} would be a data stream (index template {name!r} matches it with "
                "data_stream); rollover would break exactly-once. Use an index pattern no data-stream "
                "template matches, like shipper-logs-{input}-%Y.%m.%d"
            )


class GzipOffLoopNode(AiohttpHttpNode):
    """Compresses bodies in a worker thread: the client's own `http_compress` does it on
    the event loop, which stalls every reader and sender for the length of a 4 MiB body."""

    async def perform_request(  # type: ignore[override]
        self, method: str, target: str, body: bytes | BulkBody | None = None, headers: Any = None, **kw: Any
    ) -> Any:
        data: bytes | None = None
        if body:
            data = await asyncio.get_running_loop().run_in_executor(None, _gzip, body)
            headers = HttpHeaders(headers or {})
            headers["content-encoding"] = "gzip"
        return await super().perform_request(method, target, data, headers, **kw)


def _gzip(body: bytes | BulkBody) -> bytes:
    c = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: the gzip container, level 1: cheap
    if isinstance(body, BulkBody):
        return b"".join([*map(c.compress, body.chunks), c.flush()])
    return c.compress(body) + c.flush()


class BulkBody(Payload):
    """A `_bulk` request body as the chunk bodies it is made of, written one by one.

    Joining the chunks into one bytes object, as the client needs for a bytes body, costs
    a copy of every request, and aiohttp (on Python < 3.12.9) joins it again with the
    headers, and the transport keeps another copy of what the socket has not taken yet:
    three copies of up to 4 MiB per sender, a third of the agent's peak memory. Written
    chunk by chunk, aiohttp drains the socket between chunks and nothing is copied but
    the first chunk (with the headers) and a partly sent chunk's rest. The same object
    can be sent again on a retry (nothing is consumed).
    """

    def __init__(self, chunks: list[bytes | memoryview]) -> None:
        self.chunks = chunks
        super().__init__(chunks, content_type="application/x-ndjson")
        self._size = sum(len(c) for c in chunks)  # a Content-Length, not chunked encoding

    def __len__(self) -> int:
        return self._size or 0

    def __bytes__(self) -> bytes:
        return b"".join(self.chunks)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytes(self).decode(encoding, errors)

    async def as_bytes(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return bytes(self)

    async def write(self, writer: AbstractStreamWriter) -> None:
        await writer.write(b"")  # the headers on their own: see write_with_length
        for chunk in self.chunks:
            await writer.write(chunk)

    async def write_with_length(self, writer: AbstractStreamWriter, content_length: int | None) -> None:
        if content_length is None:
            await self.write(writer)
            return
        # aiohttp (3.10+) holds the headers back and sends them joined with the first
        # chunk written, which is a copy of that chunk (a whole parsed chunk's body, ~0.1 ms
        # per request); an empty first write sends them alone, one small send() instead
        await writer.write(b"")
        left = content_length
        for chunk in self.chunks:
            if left <= 0:
                break
            part = chunk if len(chunk) <= left else memoryview(chunk)[:left]
            await writer.write(part)
            left -= len(part)


class BulkBodySerializer(NdjsonSerializer):
    """Passes a ready `_bulk` body (bytes, or a BulkBody of chunks) through as it is.

    The stock NDJSON serializer copies a bytes body into a bytearray and that into new
    bytes: two copies of every 4 MiB request, as much CPU as parsing it took.
    """

    def dumps(self, data: Any) -> bytes:
        if isinstance(data, bytes | BulkBody):
            return data  # type: ignore[return-value]  # a BulkBody goes to aiohttp as a payload
        return super().dumps(data)


def make_client(cfg: ElasticsearchConfig) -> Client:
    tls: dict[str, Any] = {}
    if cfg.ca_file:
        tls["ca_certs"] = cfg.ca_file
    tls["verify_certs"] = cfg.verify
    if not cfg.verify:
        tls["ssl_show_warn"] = False
        tls["ssl_assert_hostname"] = False
    if cfg.cert_file:
        tls["client_cert"] = cfg.cert_file
        tls["client_key"] = cfg.key_file
    return new_client(
        cfg.hosts,
        request_timeout=cfg.request_timeout,
        node_class=GzipOffLoopNode if cfg.compression == "gzip" else AiohttpHttpNode,
        serializers={
            "application/x-ndjson": BulkBodySerializer(),
            "application/vnd.elasticsearch+x-ndjson": BulkBodySerializer(),  # the compatibility type
        },
        sniff=cfg.sniff,
        basic_auth=(cfg.username, cfg.password or "") if cfg.username else None,
        api_key=cfg.api_key,
        bearer_auth=cfg.bearer_token,
        tls=tls,
    )


class ElasticsearchSink:
    """Delivers bulk parts until every item is settled; reports its state for /ready."""

    def __init__(self, cfg: ElasticsearchConfig, pipeline: Pipeline, dlq: DeadLetterQueue, metrics: Metrics) -> None:
        self.cfg = cfg
        self.client = make_client(cfg)
        self.pipeline = pipeline
        self.dlq = dlq
        self.metrics = metrics
        self.state = "starting"
        self.last_error = ""
        self.dlq_error: str | None = None
        self._retries: set[asyncio.Task[None]] = set()

    async def setup(self) -> None:
        """Health and template: failures here are warnings; shipping retries on its own."""
        try:
            await self.client.options(request_timeout=10).cluster.health()
            self.state = "ok"
        except (AuthenticationException, AuthorizationException) as e:
            if isinstance(e, AuthenticationException):
                self._set("auth_failed", f"authentication failed: {_reason(e)}")
            else:
                log.warning("no permission to read cluster health (%s); continuing", _reason(e))
        except UnsupportedProductError as e:
            self._set("unreachable", f"the server at {self.cfg.hosts} is not Elasticsearch: {e}")
        except (ConnectionError, TransportError, ApiError) as e:
            self._set("unreachable", f"Elasticsearch not reachable yet: {_reason(e)}")
        if self.cfg.template and self.state == "ok":
            for name, body in TEMPLATES.items():
                try:
                    await self.client.indices.put_index_template(name=name, **body)
                except AuthorizationException as e:
                    log.warning("cannot install index template %s (%s); documents are still written", name, _reason(e))
                    break
                except (ConnectionError, TransportError, ApiError) as e:
                    log.warning("cannot install index template %s: %s", name, _reason(e))

    def _set(self, state: str, message: str) -> None:
        if state != self.state or message != self.last_error:
            log.error("%s", message) if state != "ok" else log.info("%s", message)
        self.state, self.last_error = state, message

    async def deliver(self, parts: list[Part], attempt: int = 0) -> None:
        """Send until the whole request got an answer; items to retry go on in the background.

        A failure of the whole request (Elasticsearch down, overloaded, a bad gateway) keeps
        this sender retrying, which is the backpressure: the in-flight budget fills and the
        readers wait. Items refused one by one (429 on a hot shard, a forbidden index) are
        retried by a task of their own, so they do not hold up the rest.
        """
        # Built once: a retry sends the same bytes. Building it per attempt kept one 4 MiB
        # copy per failed attempt alive until the cyclic GC freed the failure's traceback
        # (exception -> frame -> body), ~30 MiB more while Elasticsearch was down.
        body = _build(parts)
        while True:
            t0 = time.perf_counter()
            try:
                resp = await self.client.bulk(operations=body, filter_path=FILTER_PATH)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # every failure of the whole request: retry with backoff
                reason = self._request_failed(e)
                self.metrics.retries.labels(reason).inc()
                if reason == "too_large" and _items_in(parts) > 1:
                    for half in _halves(parts):  # smaller requests, one after the other
                        await self.deliver(half)
                    return
                attempt += 1
                await asyncio.sleep(self._backoff(attempt, reason))
                continue
            self.metrics.bulk_duration.observe(time.perf_counter() - t0)
            if self.state != "ok" and self.state != "index_forbidden":
                self._set("ok", "Elasticsearch output is delivering again")
            retry = await self._items(resp.body, parts)
            if retry:
                self.metrics.retries.labels("item").inc(_items_in(retry))
                task = asyncio.create_task(self._retry_later(retry, attempt + 1))
                self._retries.add(task)
                task.add_done_callback(self._retries.discard)
            elif self.state == "index_forbidden":
                self._set("ok", "Elasticsearch accepts writes to the index again")
            return

    async def _retry_later(self, parts: list[Part], attempt: int) -> None:
        await asyncio.sleep(self._backoff(attempt, "item"))
        await self.deliver(parts, attempt)

    def _request_failed(self, e: Exception) -> str:
        status = getattr(e, "status_code", None) or getattr(getattr(e, "meta", None), "status", None)
        if isinstance(e, AuthenticationException) or status == 401:
            self._set("auth_failed", f"Elasticsearch refused the credentials (401): {_reason(e)}; shipping paused")
            return "auth"
        if isinstance(e, AuthorizationException) or status == 403:
            self._set("auth_failed", f"Elasticsearch forbids _bulk for this user (403): {_reason(e)}; shipping paused")
            return "auth"
        if isinstance(e, UnsupportedProductError):
            self._set("unreachable", f"the server at {self.cfg.hosts} is not Elasticsearch: {e}")
            return "not_elasticsearch"
        if status == 413:
            return "too_large"
        if isinstance(e, ConnectionError):
            self._set("unreachable", f"cannot reach Elasticsearch: {_reason(e)}")
            return "connection"
        self._set("unreachable", f"bulk request failed: {_reason(e)}")
        return f"http_{status}" if status else type(e).__name__.lower()

    def _backoff(self, attempt: int, reason: str) -> float:
        base = self.cfg.backoff_max if reason == "auth" else self.cfg.backoff_initial * (2 ** min(attempt - 1, 30))
        cap = min(base, self.cfg.backoff_max)
        return cap / 2 + random.random() * cap / 2

    async def _items(self, resp: Any, parts: list[Part]) -> list[Part]:
        """Settle what is done; return the items to retry (the rest of the request is done)."""
        if not resp.get("errors"):  # the common case: settle whole parts, no per-item work
            await self.pipeline.settle_all(
                (seg, seg.batch.count if items is None else len(items)) for seg, items in parts
            )
            return []
        index = [(seg, i) for seg, its in parts for i in (range(seg.batch.count) if its is None else its)]
        retry: dict[int, tuple[Segment, list[int]]] = {}
        settled: dict[int, tuple[Segment, int]] = {}
        dead: list[dict[str, Any]] = []
        dead_items: list[tuple[Segment, int, str]] = []
        for (seg, i), item in zip(index, resp["items"], strict=True):
            (result,) = item.values()
            status = result.get("status", 0)
            if status < 300 or status == 409:  # 409 on create: a replay of what is indexed already
                _count(settled, seg)
                continue
            err = result.get("error") or {}
            etype = err.get("type", "") if isinstance(err, dict) else ""
            reason = err.get("reason", "") if isinstance(err, dict) else str(err)
            if status == 429 or status >= 500 or etype in RETRY_TYPES or status in (403, 404):
                retry.setdefault(id(seg), (seg, []))[1].append(i)
                if status in (403, 404):
                    self._set("index_forbidden", f"Elasticsearch refused writes to an index ({status}): {reason}")
                continue
            action, _, doc = bytes(seg.item(i)).partition(b"\n")
            meta = orjson.loads(action)["create"]
            dead.append(
                {
                    "index": meta["_index"],
                    "_id": meta["_id"],
                    "status": status,
                    "reason": {"type": etype, "reason": reason},
                    "document": doc.decode("utf-8", "replace").rstrip("\n"),
                }
            )
            dead_items.append((seg, i, etype or f"http_{status}"))
        if dead:
            try:
                self.dlq.write(dead)
            except (DeadLetterQueueFull, OSError) as e:
                self.dlq_error = str(e)
                log.error("%s", e)
                for seg, i, _ in dead_items:  # held, retried until the queue has room: never dropped
                    retry.setdefault(id(seg), (seg, []))[1].append(i)
            else:
                self.dlq_error = None
                log.warning(
                    "%d documents refused by Elasticsearch were written to %s (first: %s)",
                    len(dead),
                    self.dlq.path,
                    dead[0]["reason"],
                )
                for seg, _, why in dead_items:
                    self.metrics.dlq_events.labels(why).inc()
                    _count(settled, seg)
        await self.pipeline.settle_all(settled.values())
        return [(seg, idx) for seg, idx in retry.values()]

    async def close(self) -> None:
        for t in list(self._retries):
            t.cancel()
        await asyncio.gather(*self._retries, return_exceptions=True)
        await self.client.close()


def _count(acc: dict[int, tuple[Segment, int]], seg: Segment) -> None:
    prev = acc.get(id(seg))
    acc[id(seg)] = (seg, prev[1] + 1 if prev else 1)


def _build(parts: list[Part]) -> BulkBody:
    """One body for the request: whole chunk bodies, or the retried items' slices (not copied)."""
    chunks: list[bytes | memoryview] = []
    for seg, items in parts:
        if items is None:
            chunks.append(seg.batch.body)
        else:
            chunks.extend(seg.item(i) for i in items)
    return BulkBody(chunks)


def _items_in(parts: list[Part]) -> int:
    return sum(seg.batch.count if items is None else len(items) for seg, items in parts)


def _halves(parts: list[Part]) -> list[list[Part]]:
    """After a 413 (body too large): the same items in two requests of half the size."""
    flat = [(seg, i) for seg, items in parts for i in (range(seg.batch.count) if items is None else items)]
    mid = len(flat) // 2
    out: list[list[Part]] = []
    for half in (flat[:mid], flat[mid:]):
        grouped: dict[int, tuple[Segment, list[int]]] = {}
        for seg, i in half:
            grouped.setdefault(id(seg), (seg, []))[1].append(i)
        out.append([(seg, idx) for seg, idx in grouped.values()])
    return out


def _reason(e: Exception) -> str:
    if isinstance(e, ApiError):
        try:
            err = e.body["error"]
            return (
                f"{e.meta.status} {err.get('type')}: {err.get('reason')}"
                if isinstance(err, dict)
                else f"{e.meta.status} {err}"
            )
        except (TypeError, KeyError, AttributeError):
            return f"{getattr(e.meta, 'status', '?')} {e.message}"
    return str(e) or type(e).__name__
