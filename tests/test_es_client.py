"""The output's own client (`shipper/sinks/client.py`, on elastic_transport) does what the
`elasticsearch` package's AsyncElasticsearch did for shipper: the same exception for each
fault (this test was test_faultproxy.py's record of the package's behaviour), the product check once per client and
only on 2xx, the compatibility headers, the auth headers, the query string as it was, and
the sniffed nodes."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import elastic_transport
import pytest
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig, SniffOptions

from shipper.config import from_dict
from shipper.sinks.client import Client, NotFoundError, sniff_nodes
from shipper.sinks.elasticsearch import make_client

from .faultproxy import Fault, FaultProxy
from .test_faultproxy import FILTER_PATH, Upstream

OPS = b'{"create":{"_index":"logs","_id":"1"}}\n{"m":1}\n{"create":{"_index":"logs","_id":"2"}}\n{"m":2}\n'


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    u = Upstream().start()
    yield u
    u.stop()


def client(url: str, tmp_path: Any, **es: Any) -> Client:
    cfg = from_dict(
        {
            "data_dir": str(tmp_path / "data"),
            "inputs": [{"id": "x", "paths": [str(tmp_path / "*.log")]}],
            "output": {"elasticsearch": {"hosts": [url], "request_timeout": "250ms", **es}},
        }
    )
    return make_client(cfg.elasticsearch)


@pytest.mark.parametrize("which", ["elasticsearch", "shipper"])
async def test_each_fault_gives_the_same_exception(upstream: Upstream, tmp_path: Any, which: str) -> None:
    """What each fault gives the client, without retries: the `elasticsearch` package's
    AsyncElasticsearch (the client shipper used before) and shipper's own."""
    if which == "elasticsearch":
        import elasticsearch as ex
    else:
        from shipper.sinks import client as ex  # type: ignore[no-redef]
    with FaultProxy(upstream.url, upstream_timeout=5) as proxy:
        if which == "elasticsearch":
            es: Any = ex.AsyncElasticsearch(proxy.url, max_retries=0, retry_on_status=(), request_timeout=0.25)
        else:
            es = client(proxy.url, tmp_path)
        try:

            async def bulk() -> Any:
                return await es.bulk(operations=OPS, filter_path=FILTER_PATH)

            # the first answer is not Elasticsearch: refused, and checked only until one had the header
            proxy.add(Fault("not_elasticsearch"))
            with pytest.raises(ex.UnsupportedProductError):
                await bulk()
            assert (await bulk())["errors"] is False
            proxy.add(Fault("not_elasticsearch"))
            assert (await bulk())["name"] == "not-elasticsearch"  # once verified, any answer is taken

            for status, kind in ((429, ex.ApiError), (503, ex.ApiError), (401, ex.AuthenticationException),
                                 (403, ex.AuthorizationException), (413, ex.ApiError)):  # fmt: skip
                proxy.add(Fault("status", status=status))
                with pytest.raises(kind) as e:
                    await bulk()
                assert e.value.meta.status == status

            # aiohttp itself resends an idempotent method (bulk is a PUT) once when the server
            # disconnects before answering: one cut before is invisible, two are not
            proxy.add(Fault("cut_before"))
            assert (await bulk())["errors"] is False
            assert [r.fault for r in proxy.requests[-2:]] == ["cut_before", None]
            proxy.add(Fault("cut_before", count=2))
            with pytest.raises(elastic_transport.ConnectionError):
                await bulk()
            proxy.add(Fault("cut_after"))
            with pytest.raises(elastic_transport.ConnectionError):
                await bulk()
            proxy.add(Fault("delay", seconds=0.4))
            with pytest.raises(elastic_transport.ConnectionTimeout):
                await bulk()

            proxy.add(Fault("item_status", every=2))
            resp = await bulk()
            assert resp["errors"] is True and [i["create"]["status"] for i in resp["items"]] == [201, 429]
        finally:
            await es.close()


async def test_requests_carry_the_compatibility_and_auth_headers(upstream: Upstream, tmp_path: Any) -> None:
    es = client(upstream.url, tmp_path, username="writer", password="s3cret")
    try:
        await es.bulk(operations=OPS, filter_path=FILTER_PATH)
        with pytest.raises(NotFoundError) as e:  # the fake server has no cluster health
            await es.options(request_timeout=5).cluster.health()
        assert e.value.meta.status == 404 and e.value.message == "nope"
        with pytest.raises(NotFoundError):
            await es.indices.put_index_template(name="shipper-logs", index_patterns=["x-*"], _meta={"a": 1})
    finally:
        await es.close()
    bulk, health, put = upstream.seen
    assert bulk["method"] == "PUT"
    assert bulk["path"] == "/_bulk?filter_path=" + FILTER_PATH  # commas and stars as they are
    assert bulk["headers"]["Content-Type"] == "application/vnd.elasticsearch+x-ndjson; compatible-with=8"
    assert bulk["headers"]["Accept"] == "application/vnd.elasticsearch+json; compatible-with=8"
    assert bulk["headers"]["Authorization"] == "Basic " + base64.b64encode(b"writer:s3cret").decode()
    assert bulk["headers"]["User-Agent"].startswith("shipper/")
    assert bulk["body"] == OPS
    assert health["method"] == "GET" and health["path"] == "/_cluster/health" and not health["body"]
    assert "Content-Type" not in health["headers"] and health["headers"]["Authorization"].startswith("Basic ")
    assert put["method"] == "PUT" and put["path"] == "/_index_template/shipper-logs"
    assert put["headers"]["Content-Type"] == "application/vnd.elasticsearch+json; compatible-with=8"
    assert json.loads(put["body"]) == {"index_patterns": ["x-*"], "_meta": {"a": 1}}


@pytest.mark.parametrize(
    ("es", "header"),
    [({"api_key": "aWQ6a2V5"}, "ApiKey aWQ6a2V5"), ({"bearer_token": "tok"}, "Bearer tok")],
)
async def test_api_key_and_bearer_token(upstream: Upstream, tmp_path: Any, es: dict[str, str], header: str) -> None:
    c = client(upstream.url, tmp_path, **es)
    try:
        await c.bulk(operations=OPS)
    finally:
        await c.close()
    assert upstream.seen[0]["headers"]["Authorization"] == header
    assert upstream.seen[0]["path"] == "/_bulk"


async def test_sniffing_finds_the_http_nodes_but_master_only_ones() -> None:
    nodes = {
        "a": {"roles": ["master", "data"], "http": {"publish_address": "10.0.0.1:9200"}},
        "b": {"roles": ["master"], "http": {"publish_address": "10.0.0.2:9200"}},
        "c": {"roles": ["data"], "http": {"publish_address": "es-c.local/10.0.0.3:9201"}},
        "d": {"roles": ["data"]},
    }
    seed = NodeConfig("https", "seed", 9200, headers={"authorization": "Basic x"}, ca_certs="/ca.pem")
    calls: list[tuple[str, str, Any]] = []

    async def perform_request(method: str, target: str, **kw: Any) -> tuple[ApiResponseMeta, Any]:
        calls.append((method, target, kw.get("request_timeout")))
        meta = ApiResponseMeta(status=200, http_version="1.1", headers=HttpHeaders(), duration=0.0, node=seed)
        return meta, {"nodes": nodes}

    transport = SimpleNamespace(node_pool=SimpleNamespace(all=lambda: [seed]), perform_request=perform_request)
    found = await sniff_nodes(transport, SniffOptions(is_initial_sniff=False, sniff_timeout=0.5))  # type: ignore[arg-type]
    assert [(n.host, n.port) for n in found] == [("10.0.0.1", 9200), ("es-c.local", 9201)]
    assert all(n.ca_certs == "/ca.pem" and n.headers["authorization"] == "Basic x" for n in found)
    assert calls == [("GET", "/_nodes/_all/http", 0.5)]


def test_tls_options_go_to_the_https_nodes_only(tmp_path: Any) -> None:
    """(The elasticsearch client refused a mix: NodeConfig rejects TLS options on http.)"""
    c = client("https://127.0.0.1:9443", tmp_path, hosts=["https://127.0.0.1:9443", "http://127.0.0.1:9200"],
               tls={"verify": False})  # fmt: skip
    nodes = sorted((n.config for n in c.transport.node_pool.all()), key=lambda n: n.scheme)
    http, https = nodes
    assert https.verify_certs is False and https.ssl_show_warn is False and https.ssl_assert_hostname is False
    assert http.scheme == "http" and http.ssl_assert_hostname is None and http.ssl_show_warn is True
    assert https.headers["user-agent"].startswith("shipper/")
