"""The `shipper` command: run, check, parse, config-reference."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Sequence

from . import __version__
from .config import Config, ConfigError, load, reference
from .registry import RegistryError
from .tail.paths import PathMatcher


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="shipper", description="Ship model logs into Elasticsearch, exactly once.")
    ap.add_argument("--version", action="version", version=f"shipper {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="tail the configured files and ship them")
    run.add_argument("-c", "--config", required=True)
    run.add_argument("--once", action="store_true", help="ship what the files hold now, exit when all is acknowledged")
    chk = sub.add_parser("check", help="validate the config and list the files each input matches")
    chk.add_argument("-c", "--config", required=True)
    prs = sub.add_parser("parse", help="print the documents that lines would become")
    prs.add_argument("--format", default="plain", help="plain, json, logfmt, python, or a layout")
    prs.add_argument("--timezone", default=None, help="zone of times written without one (default: the host's)")
    prs.add_argument("--json-root", action="store_true")
    prs.add_argument("--multiline", default="auto", help="auto (tracebacks, stack traces), none")
    prs.add_argument("--input-id", default="cli")
    prs.add_argument("files", nargs="*")
    sub.add_parser("config-reference", help="print the reference of every config key")
    dlq = sub.add_parser("dlq", help="show or re-send the documents Elasticsearch refused")
    dlq.add_argument("action", choices=["list", "replay"])
    dlq.add_argument("-c", "--config", required=True)
    dlq.add_argument("--limit", type=int, default=20, help="documents to show with list")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "run":
            return _run(args.config, args.once)
        if args.cmd == "check":
            return _check(args.config)
        if args.cmd == "dlq":
            return _dlq(args.config, args.action, args.limit)
        if args.cmd == "parse":
            return _parse(args.format, args.input_id, args.files, args.timezone, args.json_root, args.multiline)
        sys.stdout.write(reference())
        return 0
    except ConfigError as e:
        print(f"shipper: config error: {e}", file=sys.stderr)
        return 2
    except RegistryError as e:
        print(f"shipper: {e}", file=sys.stderr)
        return 2


def _run(path: str, once: bool) -> int:
    cfg = load(path)
    logging.basicConfig(
        level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)  # one line per request otherwise
    from .app import Agent  # the heavy imports only when running

    async def go() -> int:
        agent = Agent(cfg, once=once)
        return await agent.run()

    return asyncio.run(go())


def _dlq(path: str, action: str, limit: int) -> int:
    from . import dlq_replay

    cfg = load(path)
    if action == "list":
        sys.stdout.write(dlq_replay.summary(cfg, limit))
        return 0
    try:
        delivered, failed = asyncio.run(dlq_replay.replay(cfg))
    except RuntimeError as e:
        print(f"shipper: {e}", file=sys.stderr)
        return 1
    print(f"replayed {delivered} document(s); {len(failed)} still refused and kept in the queue")
    for r in failed[:5]:
        print(f"  {r['index']} {r['_id']}: {r['status']} {r['reason']['type']}: {r['reason']['reason']}")
    return 0 if not failed else 1


def _check(path: str) -> int:
    cfg = load(path)
    print(f"config {path}: ok")
    print(f"data_dir: {cfg.data_dir}")
    print(f"output: elasticsearch {', '.join(cfg.elasticsearch.hosts)}")
    for inp in cfg.inputs:
        files = PathMatcher(inp.paths, inp.exclude).scan()
        print(f"input {inp.id} ({inp.format}) -> index {inp.index}: {len(files)} file(s)")
        for f, st in sorted(files.items()):
            print(f"  {f} ({st.st_size} bytes)")
    return asyncio.run(_check_output(cfg))


async def _check_output(cfg: Config) -> int:
    """Ask the cluster what it can tell before anything is sent (never fatal when unreachable)."""
    from .sinks.elasticsearch import DataStreamTarget, check_targets, make_client

    client = make_client(cfg.elasticsearch)
    try:
        try:
            await client.options(request_timeout=5).cluster.health()
        except Exception as e:
            print(f"elasticsearch: not checked ({type(e).__name__}: {str(e)[:200]})")
            return 0
        now = time.gmtime()
        try:
            await check_targets(client, [time.strftime(i.index, now) for i in cfg.inputs])
        except DataStreamTarget as e:
            print(f"shipper: {e}", file=sys.stderr)
            return 2
        print("elasticsearch: reachable; no target index would be a data stream")
        return 0
    finally:
        await client.close()


def _parse(fmt: str, input_id: str, files: list[str], timezone: str | None, json_root: bool, multiline: str) -> int:
    """The documents lines would become: the tool to try a format before deploying it."""
    from _fastparse import Parser

    from .config import _check_format, from_dict

    inp = from_dict(
        {"inputs": [{"id": input_id, "paths": ["-"], "format": fmt, "timezone": timezone, "json_root": json_root}]},
        env={},
    ).inputs[0]
    _check_format(inp, "--format")
    out = sys.stdout.buffer
    sources = files or ["-"]
    for src in sources:
        name = "<stdin>" if src == "-" else os.path.abspath(src)
        p = Parser(
            input_id=input_id,
            path=name,
            host_name=os.uname().nodename,
            id_prefix="parse",
            index_pattern=inp.index,
            start_offset=0,
            format=inp.format,
            timezone=inp.timezone,
            json_root=inp.json_root,
            multiline=inp.multiline,
        )
        f = sys.stdin.buffer if src == "-" else open(src, "rb")  # noqa: SIM115
        try:
            while chunk := f.read(1 << 16):
                _print_docs(p.feed(chunk, int(time.time() * 1000)).body, out)
            _print_docs(p.flush(int(time.time() * 1000)).body, out)
        finally:
            if f is not sys.stdin.buffer:
                f.close()
    out.flush()
    return 0


def _print_docs(body: bytes, out: object) -> None:
    lines = body.split(b"\n")
    for doc in lines[1::2]:
        out.write(doc + b"\n")  # type: ignore[attr-defined]
