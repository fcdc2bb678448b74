"""A local `_bulk` endpoint that counts and discards: measures the agent's own cost.

Answers like Elasticsearch would for a fully successful request under shipper's
`filter_path` (`{"errors":false}`), with the product header the client checks. Counts
the documents (newlines / 2) it was sent. Run as its own process so its CPU is not
the agent's:  python benchmarks/discard_endpoint.py PORT
"""

from __future__ import annotations

import sys

from aiohttp import web

HEADERS = {"X-Elastic-Product": "Elasticsearch", "Content-Type": "application/json"}
stats = {"requests": 0, "docs": 0, "bytes": 0}


async def bulk(request: web.Request) -> web.Response:
    body = await request.read()
    stats["requests"] += 1
    stats["bytes"] += len(body)
    stats["docs"] += body.count(b"\n") // 2
    return web.Response(body=b'{"errors":false}', headers=HEADERS)


async def health(_: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"green","number_of_nodes":1}', headers=HEADERS)


async def templates(_: web.Request) -> web.Response:
    return web.Response(body=b'{"index_templates":[]}', headers=HEADERS)


async def ack(_: web.Request) -> web.Response:
    return web.Response(body=b'{"acknowledged":true}', headers=HEADERS)


async def count(_: web.Request) -> web.Response:
    return web.json_response(stats, headers={"X-Elastic-Product": "Elasticsearch"})


def main() -> None:
    app = web.Application(client_max_size=1 << 30)
    app.router.add_post("/_bulk", bulk)
    app.router.add_put("/_bulk", bulk)
    app.router.add_get("/_cluster/health", health)
    app.router.add_get("/_index_template", templates)
    app.router.add_put("/_index_template/{name}", ack)
    app.router.add_get("/_stats/discard", count)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
