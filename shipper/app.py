"""Wires the agent together and owns the event loop, the signals and the shutdown.

Shutdown order is what makes a restart lose and double nothing: stop reading, let
what is in flight be acknowledged (bounded by `shutdown_timeout`), write the
checkpoint, close. Whatever was not acknowledged by then is simply read again
next time, and its deterministic `_id`s turn any copy already indexed into a 409.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .config import Config
from .dlq import DeadLetterQueue
from .metrics import Metrics
from .pipeline import Pipeline
from .registry import Registry
from .sinks.elasticsearch import DataStreamTarget, ElasticsearchSink, check_targets
from .tail.input import InputTailer, OpenFiles
from .tail.parsing import ParsePool

if TYPE_CHECKING:
    from .anomaly import AnomalyWatch
    from .httpserver import HttpServer
    from .tail.notify import Notifier

log = logging.getLogger("shipper")


class Agent:
    def __init__(self, cfg: Config, *, once: bool = False) -> None:
        self.cfg = cfg
        self.once = once
        self.metrics = Metrics()
        self.registry = Registry(cfg.data_dir)
        es = cfg.elasticsearch
        self.pipeline = Pipeline(
            max_inflight_bytes=cfg.max_inflight_bytes,
            max_bytes=es.bulk_max_bytes,
            max_events=es.bulk_max_events,
            flush_interval=es.flush_interval,
            senders=es.max_inflight_requests,
            metrics=self.metrics,
        )
        self.dlq = DeadLetterQueue(cfg.data_dir / "dlq", cfg.dlq_max_bytes)
        self.sink = ElasticsearchSink(es, self.pipeline, self.dlq, self.metrics)
        first_start = not self.registry.files
        open_files = OpenFiles(cfg.max_open_files)
        self.parse_pool = ParsePool(cfg.parse_threads)
        self.inputs = [
            InputTailer(
                i,
                registry=self.registry,
                pipeline=self.pipeline,
                metrics=self.metrics,
                host_name=cfg.host_name,
                first_start=first_start,
                once=once,
                open_files=open_files,
                parse_pool=self.parse_pool,
            )
            for i in cfg.inputs
        ]
        for t in self.inputs:
            t.poll_interval = cfg.poll_interval
        self.metrics.open_files.set_function(lambda: sum(len(t.readers) for t in self.inputs))
        self.watch: AnomalyWatch | None = None
        if cfg.anomaly.enabled:  # numpy (15 MiB, ~80 ms to import) only with the watch on
            from .anomaly import build as build_anomaly_watch

            self.watch = build_anomaly_watch(
                cfg.anomaly,
                self.metrics,
                host_id=self.registry.host_id,
                host_name=cfg.host_name,
                client=self.sink.client,
                readers=lambda: [r for t in self.inputs for r in t.readers.values()],
                files=lambda: self.registry.files,
            )
            self.watch.restore(self.registry.loaded_extras.get("anomaly"))
            self.pipeline.observer = self.watch
            self.registry.extras["anomaly"] = self.watch.state  # saved in the same write as the offsets
        self.http: HttpServer | None = None
        if cfg.http_listen:  # aiohttp.web (1.8 MiB, ~15 ms to import) only for a listener
            from .httpserver import HttpServer

            self.http = HttpServer(cfg.http_listen, self.metrics, self.readiness)
        self.notifier: Notifier | None = None
        self.hints = HintCoalescer(self._wake, cfg.watch_coalesce)
        self._stop = asyncio.Event()
        self.exit_code = 0

    def readiness(self) -> dict[str, Any]:
        writable = self.registry.writable()
        state = self.sink.state
        return {
            "ready": state == "ok" and writable,
            "outputs": {"elasticsearch": state},
            "registry": "writable" if writable else f"error: {self.registry.last_error}",
            "error": self.sink.last_error if state != "ok" else None,
            "dlq": self.sink.dlq_error or "ok",
        }

    def request_stop(self, signame: str) -> None:
        if not self._stop.is_set():
            log.info("received %s: stopping (flushing in-flight events, then checkpoint)", signame)
        self._stop.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)
        if self.http:
            try:
                await self.http.start()
            except OSError as e:
                log.error("cannot listen on %s: %s", self.cfg.http_listen, e.strerror)
                return 1
        if not await self._unless_stopped(self.sink.setup()):
            return await self._stopped_before_start()
        now = time.gmtime()
        try:
            indices = [time.strftime(i.index, now) for i in self.cfg.inputs]
            if self.watch is not None and self.cfg.anomaly.documents:
                indices += [
                    time.strftime(self.cfg.anomaly.metrics_index, now),
                    time.strftime(self.cfg.anomaly.anomalies_index, now),
                ]
            if not await self._unless_stopped(check_targets(self.sink.client, indices)):
                return await self._stopped_before_start()
        except DataStreamTarget as e:
            log.error("%s", e)
            await self.sink.close()
            if self.http:
                await self.http.stop()
            self.registry.close()
            return 2
        self.pipeline.start(self.sink.deliver, self._durable)
        notifier = None
        if not self.once and self.cfg.watch_mode == "inotify":
            # watchdog (and ctypes: ~40 ms of CPU per start) only where it watches: not for --once
            from .tail.notify import Notifier

            notifier = self.notifier = Notifier(loop, self.hints.hint, self.cfg.max_watches, pin=self._pin)
            # started first: a watch scheduled on a stopped observer is added by its thread at
            # start, where the kernel's refusal (ENOSPC) is lost; on a running one it raises here
            notifier.start()
            for t in self.inputs:
                for root, recursive in t.matcher.watch_roots():
                    notifier.watch(root, recursive)
        checkpoints = asyncio.create_task(self._checkpoint_loop(), name="checkpoint")
        tails = [asyncio.create_task(t.run(), name=f"input:{t.cfg.id}") for t in self.inputs]
        ticks = None
        if self.watch is not None:
            self.watch.start()
            ticks = asyncio.create_task(self._anomaly_loop(self.watch), name="anomaly")
        log.info("shipping %d input(s) to %s", len(self.inputs), ", ".join(self.cfg.elasticsearch.hosts))
        try:
            if self.once:
                done = asyncio.ensure_future(asyncio.gather(*tails))
                stop = asyncio.create_task(self._stop.wait())
                waiters: list[asyncio.Future[Any]] = [done, stop]
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                if not self._stop.is_set():
                    # everything read: wait (without a deadline) until all of it is acknowledged,
                    # or a signal (the output may never answer: SIGTERM waited forever then)
                    empty = asyncio.ensure_future(self.pipeline.capacity.wait_empty())
                    await asyncio.wait([empty, stop], return_when=asyncio.FIRST_COMPLETED)
                    empty.cancel()
                stop.cancel()
            else:
                await self._stop.wait()
        finally:
            if ticks is not None:
                ticks.cancel()
            await self._shutdown(tails, checkpoints, notifier)
        return self.exit_code

    async def _unless_stopped(self, step: Awaitable[Any]) -> bool:
        """A start-up step raced against the stop signal: False, the step cancelled, when the
        signal came first. A node that accepts connections and never answers held SIGTERM
        for ~10 s a step (sink setup, the target check), and the inputs started after it."""
        task = asyncio.ensure_future(step)
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait([task, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if task.done():
            task.result()  # its errors (DataStreamTarget) as if awaited
            return True
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return False

    async def _stopped_before_start(self) -> int:
        """The stop signal came while starting: nothing was read, so nothing to drain or save."""
        self.parse_pool.close()
        await self._close_outputs()
        log.info("stopped before shipping anything")
        return self.exit_code

    def _wake(self, path: str, structural: bool) -> None:
        for t in self.inputs:
            t.hint(path, structural)
        if structural and self.notifier is not None:
            for t in self.inputs:  # a watched root may have just been created
                for root, recursive in t.matcher.watch_roots():
                    self.notifier.watch(root, recursive)

    def _pin(self, path: str, created: bool, moved_from: str) -> None:
        """Watchdog's thread: each input opens a new file it matches at once (InputTailer.pin)."""
        for t in self.inputs:
            t.pin(path, created, moved_from)

    async def _durable(self, version: int) -> None:
        """Before a request goes out, the read times of what it carries are on disk."""
        while True:
            try:
                await self.registry.ensure_saved(version)
                return
            except OSError as e:
                log.error("cannot write the registry: %s (holding sends until it can)", e)
                await asyncio.sleep(1)

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.registry_flush_interval)
            if self.registry.dirty:
                try:
                    await self.registry.ensure_saved(self.registry.mark())
                except OSError as e:
                    log.error("cannot write the registry: %s (will retry)", e)

    async def _anomaly_loop(self, watch: AnomalyWatch) -> None:
        """Close due windows a few times per window; a change is saved with the next checkpoint."""
        interval = min(self.cfg.anomaly.window / 4, 1.0)
        while True:
            await asyncio.sleep(interval)
            try:
                watch.tick()
            except Exception:  # the watch must never stop the agent; say so loudly
                log.exception("anomaly watch tick failed")
            if watch.changed:
                self.registry.dirty = True

    async def _shutdown(
        self, tails: list[asyncio.Task[None]], checkpoints: asyncio.Task[None], notifier: Notifier | None
    ) -> None:
        for t in self.inputs:
            t.stop()
        if notifier:
            notifier.stop()
        await self.pipeline.capacity.close()  # readers waiting for room end too
        await asyncio.gather(*tails, return_exceptions=True)
        for t in self.inputs:
            await asyncio.gather(*t.tasks, return_exceptions=True)
        self.parse_pool.close()  # every reader ended: no feed in flight
        # waiting is pointless while the output cannot deliver: what is unacknowledged is read again next time
        wait = self.cfg.shutdown_timeout if self.sink.state == "ok" and not self.sink.dlq_error else 0.0
        if not await self.pipeline.drain(wait):
            log.warning(
                "shutdown_timeout: %d bytes were not acknowledged; they will be sent again at the next start",
                self.pipeline.capacity.used,
            )
        await self.pipeline.stop()
        checkpoints.cancel()
        if self.watch is not None:
            try:
                self.watch.shutdown()  # due windows judged, open ones documented as they are
            except Exception:
                log.exception("anomaly watch shutdown failed")
            await self.watch.close(5.0 if self.sink.state == "ok" else 0.5)
        try:
            self.registry.save()
        except OSError as e:
            log.error("cannot write the final checkpoint: %s", e)
            self.exit_code = 1
        await self._close_outputs()
        log.info("stopped; checkpoint written to %s", self.registry.path)

    async def _close_outputs(self) -> None:
        await self.sink.close()
        self.dlq.close()
        if self.http:
            await self.http.stop()
        self.hints.close()
        self.registry.close()


class HintCoalescer:
    """Passes watchdog's hints on, a file's changes at most once per `interval` (on the loop).

    A writer appending every few ms makes inotify report every write, and each report woke
    the file's reader for a read, a parse and a submit of a few lines: per-chunk costs (the
    parser's setup, a checkpoint entry, counters, a segment) paid per write, several times
    the CPU per line of a backfill (RESULTS.md, issue 8). Held back, the writes of one
    interval are read as one chunk. The first change of a file quiet for `interval` is
    passed at once (a trickle waits for nothing); structural hints (files created, moved,
    deleted) are never held. Nothing is lost by holding: a hint only wakes a reader, which
    reads to the end of the file, and the reader's own poll covers the rest.
    """

    def __init__(self, wake: Callable[[str, bool], None], interval: float) -> None:
        self._wake = wake
        self.interval = interval
        self._last: dict[str, float] = {}  # path -> loop time its last hint was passed on
        self._held: dict[str, asyncio.TimerHandle] = {}
        self._prune_at = 4096

    def hint(self, path: str, structural: bool) -> None:
        if structural or self.interval <= 0:
            self._wake(path, structural)
            return
        if path in self._held:
            return  # passed on when its interval ends
        loop = asyncio.get_running_loop()
        now = loop.time()
        last = self._last.get(path)
        if last is None or now - last >= self.interval:
            self._pass(path, now)
        else:
            self._held[path] = loop.call_at(last + self.interval, self._release, path)

    def _release(self, path: str) -> None:
        del self._held[path]
        self._pass(path, asyncio.get_running_loop().time())

    def _pass(self, path: str, now: float) -> None:
        if len(self._last) >= self._prune_at:  # forget files quiet for an interval: they pass at once anyway
            self._last = {p: t for p, t in self._last.items() if now - t < self.interval}
            self._prune_at = max(4096, 2 * len(self._last))
        self._last[path] = now
        self._wake(path, False)

    def close(self) -> None:
        for handle in self._held.values():
            handle.cancel()
        self._held.clear()


def _dump_tasks() -> None:
    """SIGUSR1: log where every task waits (for an agent that seems stuck)."""
    import io

    for task in asyncio.all_tasks():
        buf = io.StringIO()
        coro: Any = task.get_coro()
        while coro is not None:  # the whole chain of awaits, not just the task's own frame
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
            if frame is not None:
                buf.write(f"  {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}\n")
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        log.warning("task %s waits at:\n%s", task.get_name(), buf.getvalue())
