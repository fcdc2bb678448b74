"""The `shipper` command: run, check, parse, config-reference."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from . import __version__
from .config import Config, ConfigError, load, reference
from .registry import RegistryError
from .tail.paths import PathMatcher

if TYPE_CHECKING:
    import argparse


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    plain_run = _plain_run(args)
    if plain_run is not None:
        return _guarded(lambda: _run(*plain_run))
    return _main(args)


def _plain_run(args: list[str]) -> tuple[str, bool] | None:
    """``run -c FILE`` (or ``--config FILE``), ``--once`` after or before it: the agent's
    own command line, read without argparse: importing it (with gettext) and building the
    parsers of every command cost ~15 M instructions, 1.5% of a ``run --once`` of a small
    file. Only these exact shapes, with a FILE that does not
    start with ``-``; anything else (a typo, ``--config=FILE``, an abbreviation, ``-h``)
    goes to argparse, which reads it as it always did. (path, once) or None."""
    if len(args) < 3 or args[0] != "run":
        return None
    rest = args[1:]
    once = len(rest) == 3 and "--once" in (rest[0], rest[-1])
    if once:
        rest = rest[1:] if rest[0] == "--once" else rest[:-1]
    if len(rest) != 2 or rest[0] not in ("-c", "--config") or rest[1].startswith("-"):
        return None
    return rest[1], once


def _guarded(command: Callable[[], int]) -> int:
    """A command's config and registry errors as one line on stderr and exit code 2."""
    try:
        return command()
    except ConfigError as e:
        print(f"shipper: config error: {e}", file=sys.stderr)
        return 2
    except RegistryError as e:
        print(f"shipper: {e}", file=sys.stderr)
        return 2


def _main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    return _guarded(lambda: _command(args))


def parser() -> argparse.ArgumentParser:
    """The command line of every command."""
    import argparse  # not for a plain `run` (see _plain_run): with gettext, ~7 M instructions

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
    prs.add_argument("--progress", default="last", choices=["last", "all", "drop"],
                     help="a line redrawn with \\r: keep the last state, all of it, or drop it")
    prs.add_argument("--metrics", default="auto", choices=["auto", "none"], help="key=value metrics")
    prs.add_argument("--metric", action="append", default=[], metavar="NAME", help="one more metric name")
    prs.add_argument("--error-class", action="append", default=[], metavar="CLASS:KEYWORD",
                     help="one more error class keyword (a new class is checked first)")
    prs.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="a label on every event")
    prs.add_argument("--path-fields", default=None, metavar="GLOB",
                     help="a glob with {name} captures: a file's captures become its labels")
    prs.add_argument("--predictions", default=None, metavar="label=F[,prediction=F][,score=F][,positive=V]",
                     help="json: prediction fields (shown on stderr per batch)")
    prs.add_argument("files", nargs="*")
    sub.add_parser("config-reference", help="print the reference of every config key")
    dlq = sub.add_parser("dlq", help="show or re-send the documents Elasticsearch refused")
    dlq.add_argument("action", choices=["list", "replay"])
    dlq.add_argument("-c", "--config", required=True)
    dlq.add_argument("--limit", type=int, default=20, help="documents to show with list")
    return ap


def _command(args: argparse.Namespace) -> int:
    if args.cmd == "run":
        return _run(args.config, args.once)
    if args.cmd == "check":
        return _check(args.config)
    if args.cmd == "dlq":
        return _dlq(args.config, args.action, args.limit)
    if args.cmd == "parse":
        return _parse(args)
    sys.stdout.write(reference())
    return 0


def _run(path: str, once: bool) -> int:
    gc.disable()  # start-up: see __main__.py
    try:
        cfg = load(path)
        logging.basicConfig(
            level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
        )
        logging.getLogger("elastic_transport").setLevel(logging.WARNING)  # one line per request otherwise
        from .app import Agent  # the heavy imports only when running
    finally:
        # Frozen, the start-up's objects (all in the youngest generation while the
        # collector was off) are not walked by the first collections of the run, which
        # would move them generation by generation (~15-30 M instructions: 2-4% of a
        # `run --once` of a small file). The few cycles among them are kept: +0.2-0.4 MiB
        # idle RSS, measured (RESULTS.md).
        gc.freeze()
        gc.enable()

    async def go() -> int:
        agent = Agent(cfg, once=once)
        asyncio.get_running_loop().call_later(STARTUP_SETTLE, release_startup_memory)
        return await agent.run()

    return asyncio.run(go())


STARTUP_SETTLE = 2.0  # seconds after start: imports done, inputs scanned, first reads under way
# seconds between full collections of garbage cycles (a safety net: see release_startup_memory);
# SHIPPER_GC_EVERY=0 turns them off (benchmarks/steady_soak.py measures with and without)
COLLECT_EVERY = float(os.environ.get("SHIPPER_GC_EVERY", "30"))


def release_startup_memory() -> None:
    """Return the start-up's garbage, once, then collect cycles every ``COLLECT_EVERY``.

    Once: a full collection, ``gc.freeze`` (what is left lives for the whole run: later
    full collections need not walk it again), then glibc's ``malloc_trim(0)``, which hands
    free heap pages back (elsewhere only the collection). Measured: -0.6 to -1.1 MiB of
    idle RSS when the modules are compiled from source at start, nothing measurable with
    their .pyc files (benchmarks/RESULTS.md).

    Then periodically, as a safety net: a cycle that holds memory the collector does not
    count (a parser's C buffers, request bodies referenced from an exception's traceback
    on an error path) waits for a full collection, which a long-running agent reaches
    rarely (the thresholds count objects, not bytes). The one such cycle found, a closed
    reader and its watermark (+1.2 MiB a minute with a new file a minute), is broken at
    its cause (shipper/acks.py; with this collection off, steady_soak.py stays flat), but
    error paths are not soaked. After the freeze a full collection walks only what the
    run made since: about a millisecond every 30 s; the trim hands freed heap back."""
    gc.collect()
    gc.freeze()
    _trim()
    if COLLECT_EVERY > 0:
        asyncio.get_running_loop().call_later(COLLECT_EVERY, _collect_cycles)


def _collect_cycles() -> None:
    gc.collect()
    _trim()
    asyncio.get_running_loop().call_later(COLLECT_EVERY, _collect_cycles)


def _trim() -> None:
    import ctypes

    try:
        ctypes.CDLL(None).malloc_trim(0)  # the process's own symbols: glibc's, when it is glibc
    except (OSError, AttributeError):  # no malloc_trim (another libc)
        pass


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


def _pairs(items: list[str], sep: str, what: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        k, found, v = item.partition(sep)
        if not found or not k:
            raise ConfigError(what, f"expected {what.lstrip('-').upper()} as NAME{sep}VALUE, got {item!r}")
        out.append((k, v))
    return out


def _parse_options(args: argparse.Namespace) -> dict[str, Any]:
    """The parse command's options as an input's config keys (checked by the same schema)."""
    raw: dict[str, Any] = {
        "id": args.input_id, "paths": ["-"], "format": args.format, "timezone": args.timezone,
        "json_root": args.json_root, "multiline": args.multiline, "progress": args.progress,
        "metrics": {"names": args.metric} if args.metric and args.metrics == "auto" else args.metrics,
        "path_fields": args.path_fields,
    }
    if args.predictions:
        preds: dict[str, Any] = {}
        for k, v in _pairs(args.predictions.split(","), "=", "--predictions"):
            try:
                preds[k] = orjson.loads(v) if k == "positive" else v
            except orjson.JSONDecodeError:
                preds[k] = v
        raw["predictions"] = preds
    return raw


def _parse(args: argparse.Namespace) -> int:
    """The documents lines would become: the tool to try a format before deploying it."""
    from _fastparse import Parser

    from .config import _check_format, from_dict

    classes: dict[str, list[str]] = {}
    for name, kw in _pairs(args.error_class, ":", "--error-class"):
        classes.setdefault(name, []).append(kw)
    labels = dict(_pairs(args.label, "=", "--label"))
    cfg = {"inputs": [_parse_options(args)], **({"error_classes": classes} if classes else {})}
    inp = from_dict(cfg, env={}).inputs[0]
    _check_format(inp, "--format")
    out = sys.stdout.buffer
    sources = args.files or ["-"]
    for src in sources:
        name = "<stdin>" if src == "-" else os.path.abspath(src)
        file_labels = {**(inp.path_fields.labels(name) if inp.path_fields else {}), **labels}
        p = Parser(
            input_id=args.input_id,
            path=name,
            host_name=os.uname().nodename,
            id_prefix="parse",
            start_offset=0,
            labels=file_labels or None,
            **inp.parser_options(),
        )
        f = sys.stdin.buffer if src == "-" else open(src, "rb")  # noqa: SIM115
        try:
            while chunk := f.read(1 << 16):
                _print_batch(p.feed(chunk, int(time.time() * 1000)), out)
            _print_batch(p.flush(int(time.time() * 1000)), out)
        finally:
            if f is not sys.stdin.buffer:
                f.close()
    out.flush()
    return 0


def _print_batch(batch: Any, out: object) -> None:
    _print_docs(batch.body, out)
    for i in range(len(batch.p_item)):
        pred = batch.p_pred[i]
        sys.stderr.write(f"prediction item={batch.p_item[i]} label={batch.p_label[i]} "
                         f"prediction={'-' if pred < 0 else pred} score={batch.p_score[i]}\n")


def _print_docs(body: bytes, out: object) -> None:
    lines = body.split(b"\n")
    for doc in lines[1::2]:
        out.write(doc + b"\n")  # type: ignore[attr-defined]
