"""Sniffing (`output.elasticsearch.sniff`) must not stop the output for good: the sniff
callback of sinks/client.py against the fault proxy in front of the real server.

elastic_transport keeps a failed sniff's task and re-raises its exception from every
later request (`_should_sniff` calls `.result()` on it; sniffing before requests is on
when sniffing is): a first sniff that found no node (Elasticsearch down when the agent
starts) raised SniffingError, and a sniff that timed out (0.5 s, a busy cluster) raised
ConnectionTimeout, from every `_bulk` afterwards, for as long as the agent ran. And the
sniff request went without the configured credentials (a secured cluster answered 401:
nothing found)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from elastic_transport import SniffOptions

from shipper.sinks.client import TransportError, new_client, sniff_nodes

from .faultproxy import Fault, FaultProxy


@pytest.fixture
def proxy(es_plain: dict[str, Any]) -> Iterator[FaultProxy]:
    with FaultProxy(es_plain["url"], upstream_timeout=10) as p:
        yield p


async def test_elasticsearch_down_at_the_first_sniff_does_not_stop_the_client(proxy: FaultProxy) -> None:
    proxy.add(Fault("cut_before", path=r"^/_nodes", count=None))  # no node answers the first sniff
    c = new_client([proxy.url], request_timeout=10, sniff=True)
    try:
        try:
            await c.cluster.health()  # may fail: nothing answered; must not stay failed
        except TransportError:
            pass
        proxy.clear()
        for _ in range(3):
            assert (await c.cluster.health()).meta.status == 200
    finally:
        await c.close()


async def test_a_sniff_that_times_out_is_not_raised_from_the_next_requests(proxy: FaultProxy) -> None:
    c = new_client([proxy.url], request_timeout=10, sniff=True)
    try:
        proxy.add(Fault("delay", path=r"^/_nodes", seconds=1.5, count=None))
        # a later sniff (0.5 s timeout), as the transport makes before requests every 10 s
        found = await sniff_nodes(c.transport, SniffOptions(is_initial_sniff=False, sniff_timeout=0.2))
        assert [(n.host, n.port) for n in found] == [
            (n.config.host, n.config.port) for n in c.transport.node_pool.all()
        ]
    finally:
        await c.close()


async def test_the_sniff_request_carries_the_credentials(proxy: FaultProxy) -> None:
    c = new_client([proxy.url], request_timeout=10, sniff=True, api_key="c2VjcmV0")
    try:
        await c.cluster.health()
        sniffs = [r for r in proxy.requests if r.path.startswith("/_nodes")]
        assert sniffs and all(r.headers.get("authorization") == "ApiKey c2VjcmV0" for r in sniffs)
    finally:
        await c.close()
