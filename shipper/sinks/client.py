"""The few Elasticsearch APIs shipper calls, on elastic_transport (the official client's own transport).

shipper calls four APIs: `_bulk`, cluster health, and getting and putting index templates.
Importing the `elasticsearch` package for them loads its sync and async clients with all
their API namespaces (97 modules, ~363 M instructions and ~9 MiB of RSS at every start,
the largest import after numpy). Connections, the node pool, sniffing, auth headers and
TLS stay with ``elastic_transport.AsyncTransport`` and its aiohttp node, as before; what
the `elasticsearch` package added on top of it is here: the compatibility headers
(``compatible-with=8``), the product check (``X-Elastic-Product``), the exception per
status, the `Warning` header and the default sniff callback. The exception classes keep
the client's names and attributes (``meta.status``, ``body``, ``message``).
"""

from __future__ import annotations

import functools
import logging
import platform
import urllib.parse
from collections.abc import Mapping
from typing import Any

import orjson
from elastic_transport import (
    AiohttpHttpNode,
    ApiResponse,
    ApiResponseMeta,
    AsyncTransport,
    HttpHeaders,
    NdjsonSerializer,
    NodeConfig,
    ObjectApiResponse,
    SerializationError,
    Serializer,
    SniffOptions,
    TextSerializer,
)
from elastic_transport import ApiError as _TransportApiError
from elastic_transport import ConnectionError as ConnectionError
from elastic_transport import ConnectionTimeout as ConnectionTimeout
from elastic_transport import TransportError as TransportError
from elastic_transport import __version__ as _transport_version
from elastic_transport.client_utils import basic_auth_to_header, url_to_node_config

from .. import __version__

log = logging.getLogger(__name__)

USER_AGENT = f"shipper/{__version__} (Python/{platform.python_version()}; elastic-transport/{_transport_version})"
JSON = "application/vnd.elasticsearch+json; compatible-with=8"
NDJSON = "application/vnd.elasticsearch+x-ndjson; compatible-with=8"


class ApiError(_TransportApiError):
    """An answer other than 2xx (as ``elasticsearch.ApiError``: ``meta.status``, ``body``)."""

    @property
    def status_code(self) -> int:
        return int(self.meta.status)

    def __str__(self) -> str:
        cause = ""
        if isinstance(self.body, dict) and "error" in self.body:
            err = self.body["error"]
            cause = repr(err.get("reason")) if isinstance(err, dict) else repr(err)
        return f"{type(self).__name__}({', '.join(filter(None, [str(self.meta.status), repr(self.message), cause]))})"


class UnsupportedProductError(ApiError):
    """The server answered 2xx without ``X-Elastic-Product: Elasticsearch``."""

    def __str__(self) -> str:
        return str(self.message)


class BadRequestError(ApiError):
    """400"""


class AuthenticationException(ApiError):
    """401"""


class AuthorizationException(ApiError):
    """403"""


class NotFoundError(ApiError):
    """404"""


class ConflictError(ApiError):
    """409"""


HTTP_EXCEPTIONS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: AuthenticationException,
    403: AuthorizationException,
    404: NotFoundError,
    409: ConflictError,
}

_BULK_OK = b'{"errors":false'


class ResponseSerializer(Serializer):
    """JSON with orjson; a bulk response without errors is not parsed: the sink needs only
    `errors` then.

    With the sink's filter_path, a response is `{"errors":false,"items":[{"create":
    {"status":201}}, ...]}`: parsed, 20,000 items are 40,000 dicts (~10 MiB per sender,
    the agent's peak while it catches up with a slow Elasticsearch, and ~5 ms of CPU per
    request). Any other body (an error, another API) is parsed whole.
    """

    mimetype = "application/json"

    def loads(self, data: bytes) -> Any:
        if data.startswith(_BULK_OK) and data[len(_BULK_OK) : len(_BULK_OK) + 1] in (b",", b"}"):
            return {"errors": False}
        if not data:
            return None
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as e:
            raise SerializationError(f"Unable to deserialize as JSON: {data[:200]!r}", errors=(e,)) from None

    def dumps(self, data: Any) -> bytes:
        if isinstance(data, bytes):
            return data
        if isinstance(data, str):
            return data.encode()
        return orjson.dumps(data)


class CompatResponseSerializer(ResponseSerializer):
    mimetype = "application/vnd.elasticsearch+json"


class Client:
    """``bulk``, ``cluster.health``, ``indices.get_index_template`` / ``put_index_template``
    and ``options(request_timeout=...)``, as the `elasticsearch` client spells them, with
    no retries of its own (the sink's, with backoff)."""

    def __init__(self, transport: AsyncTransport, headers: HttpHeaders, request_timeout: float | None) -> None:
        self.transport = transport
        self._get = HttpHeaders({**headers, "accept": JSON})
        self._json = HttpHeaders({**self._get, "content-type": JSON})
        self._ndjson = HttpHeaders({**self._get, "content-type": NDJSON})
        self._timeout = request_timeout
        self._state = {"verified": False}  # shared with the options() views: the check is once per client
        self._warned: set[str] = set()
        self.cluster = _Cluster(self)
        self.indices = _Indices(self)

    def options(self, *, request_timeout: float | None) -> Client:
        view = object.__new__(Client)
        view.__dict__.update(self.__dict__)
        view._timeout = request_timeout
        view.cluster, view.indices = _Cluster(view), _Indices(view)
        return view

    async def bulk(self, *, operations: Any, filter_path: str | None = None) -> ApiResponse[Any]:
        return await self.perform_request(
            "PUT", "/_bulk", params={"filter_path": filter_path} if filter_path else None, body=operations, ndjson=True
        )

    async def perform_request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        ndjson: bool = False,
    ) -> ApiResponse[Any]:
        headers = self._get if body is None else self._ndjson if ndjson else self._json  # the transport copies them
        target = path
        if params:
            target += "?" + "&".join(f"{k}={urllib.parse.quote(str(v), ',*')}" for k, v in params.items())
        meta, resp = await self.transport.perform_request(
            method,
            target,
            headers=headers,
            body=body,
            request_timeout=self._timeout,
            max_retries=0,  # ours, with backoff (sinks/elasticsearch.py)
            retry_on_status=(),
            retry_on_timeout=False,
        )
        if not 200 <= meta.status < 300:
            message: Any = str(resp)
            if isinstance(resp, dict):
                err = resp.get("error", message)
                message = err["type"] if isinstance(err, dict) and "type" in err else err
            raise HTTP_EXCEPTIONS.get(meta.status, ApiError)(message=message, meta=meta, body=resp)
        if not self._state["verified"]:
            if meta.headers.get("x-elastic-product", "") != "Elasticsearch":
                raise UnsupportedProductError(
                    message="The client noticed that the server is not Elasticsearch "
                    "and we do not support this unknown product",
                    meta=meta,
                    body=resp,
                )
            self._state["verified"] = True
        if "warning" in meta.headers:
            self._warn(meta)
        if isinstance(resp, dict):
            return ObjectApiResponse(body=resp, meta=meta)
        return ApiResponse(body=resp, meta=meta)

    def _warn(self, meta: ApiResponseMeta) -> None:
        """Elasticsearch's deprecation warnings, logged once each (the client raised them as
        Python warnings)."""
        text = (meta.headers.get("warning") or "").strip()
        if text not in self._warned and len(self._warned) < 100:
            self._warned.add(text)
            log.warning("Elasticsearch warns: %s", text)

    async def close(self) -> None:
        await self.transport.close()


class _Cluster:
    def __init__(self, client: Client) -> None:
        self._c = client

    async def health(self) -> ApiResponse[Any]:
        return await self._c.perform_request("GET", "/_cluster/health")


class _Indices:
    def __init__(self, client: Client) -> None:
        self._c = client

    async def get_index_template(self) -> ApiResponse[Any]:
        return await self._c.perform_request("GET", "/_index_template")

    async def put_index_template(self, *, name: str, **body: Any) -> ApiResponse[Any]:
        return await self._c.perform_request("PUT", f"/_index_template/{urllib.parse.quote(name, ',*')}", body=body)


async def sniff_nodes(
    transport: AsyncTransport, options: SniffOptions, headers: Mapping[str, str] | None = None
) -> list[NodeConfig]:
    """The nodes of the cluster with an HTTP address, master-only nodes left out (the
    client's default sniff callback), asked with `headers` (the client's, credentials
    included: a secured cluster answers 401 to a request without them).

    Never raises, and never answers with no node: elastic_transport keeps a failed sniff's
    task and raises its exception again from every later request (sniffing before
    requests is on when sniffing is), and a first sniff that found no node raises
    SniffingError. With Elasticsearch down at start, or one sniff timing out on a busy
    cluster, the output would fail every request for as long as the agent runs. When no
    node answers, the pool's own nodes are the answer (nothing changes; the next sniff
    tries again)."""
    for node in transport.node_pool.all():
        try:
            meta, info = await transport.perform_request(
                "GET",
                "/_nodes/_all/http",
                headers=headers or {"accept": JSON},
                request_timeout=None if options.is_initial_sniff else options.sniff_timeout,
            )
            if not 200 <= meta.status <= 299:
                log.warning("sniffing the cluster's nodes: %s answered %d", node, meta.status)
                continue
            nodes = []
            for n in (info.get("nodes") or {}).values():
                address = n.get("http", {}).get("publish_address")
                if not address or ":" not in address or n.get("roles", []) == ["master"]:
                    continue
                if "/" in address:  # host/ip:port when http.publish_host is set
                    host, _, ip_port = address.partition("/")
                    port = int(ip_port.rsplit(":", 1)[1])
                else:
                    host, port_text = address.rsplit(":", 1)
                    port = int(port_text)
                nodes.append(meta.node.replace(host=host, port=port))
        except Exception as e:  # TransportError (a timeout too), an answer not as expected
            log.warning("sniffing the cluster's nodes failed on %s: %s", node, e)
            continue
        if nodes:
            return nodes
    return [n.config for n in transport.node_pool.all()]


def new_client(
    hosts: list[str],
    *,
    request_timeout: float | None,
    node_class: type[AiohttpHttpNode] = AiohttpHttpNode,
    serializers: Mapping[str, Serializer] | None = None,
    sniff: bool = False,
    basic_auth: tuple[str, str] | None = None,
    api_key: str | None = None,
    bearer_auth: str | None = None,
    tls: Mapping[str, Any] | None = None,
) -> Client:
    """A client for ``hosts`` (URLs); ``tls`` holds NodeConfig's TLS options, applied to
    the https nodes."""
    nodes = []
    for url in hosts:
        node = url_to_node_config(url)
        headers = HttpHeaders(node.headers)
        headers.setdefault("user-agent", USER_AGENT)
        headers.freeze()
        nodes.append(node.replace(headers=headers, **((tls or {}) if node.scheme == "https" else {})))
    auth = [a for a in (basic_auth, api_key, bearer_auth) if a]
    if len(auth) > 1:
        raise ValueError("Can only set one of 'api_key', 'basic_auth', and 'bearer_auth'")
    headers = HttpHeaders()
    if basic_auth:
        headers["authorization"] = basic_auth_to_header(basic_auth)
    elif api_key:
        headers["authorization"] = f"ApiKey {api_key}"
    elif bearer_auth:
        headers["authorization"] = f"Bearer {bearer_auth}"
    serial: dict[str, Serializer] = {
        "application/json": ResponseSerializer(),
        "application/vnd.elasticsearch+json": CompatResponseSerializer(),
        "application/x-ndjson": NdjsonSerializer(),
        "text/*": TextSerializer(),
        **(serializers or {}),
    }
    kw: dict[str, Any] = {}
    if sniff:  # as the client did: at start, after a node failure, and at most every 10 s before requests
        kw.update(
            sniff_on_start=True,
            sniff_on_node_failure=True,
            sniff_before_requests=True,
            min_delay_between_sniffing=10,
            sniff_callback=functools.partial(sniff_nodes, headers=HttpHeaders({**headers, "accept": JSON})),
        )
    transport = AsyncTransport(
        nodes,
        node_class=node_class,
        serializers=serial,
        max_retries=0,
        retry_on_status=(),
        retry_on_timeout=False,
        meta_header=False,  # x-elastic-client-meta names the elasticsearch-py client; this is not it
        **kw,
    )
    return Client(transport, headers, request_timeout)
