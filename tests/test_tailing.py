"""Files that move under the agent: rename rotation, truncation, deletion, late directories.

Every line is unique, so "each written line is in Elasticsearch exactly once" is checked
on the messages themselves, whichever path a line was read under.
"""

from __future__ import annotations

import collections
import os
import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import wait_for
from .test_anomaly_agent import free_port, scrape

pytestmark = pytest.mark.integration


class Run:
    def __init__(
        self,
        es_plain: dict[str, Any],
        es: Any,
        agent_factory: Any,
        tmp_path: Path,
        listen: str | None = None,
        **inp: Any,
    ) -> None:
        self.id = f"tail-{secrets.token_hex(4)}"
        self.index = f"shipper-logs-{self.id}-*"
        self.es = es
        self.logs = tmp_path / "logs"
        self.logs.mkdir()
        self.written: list[str] = []
        self.agent = agent_factory(
            {
                "data_dir": str(tmp_path / "data"),
                "inputs": [{"id": self.id, "paths": [f"{self.logs}/**/*.log"], "scan_interval": "1s", **inp}],
                "output": {"elasticsearch": {"hosts": [es_plain["url"]]}},
                "http": {"listen": listen},
            }
        )

    def lines(self, tag: str, n: int) -> bytes:
        out = [f"{tag} {i} {secrets.token_hex(4)}" for i in range(n)]
        self.written += out
        return ("\n".join(out) + "\n").encode()

    def count(self) -> int:
        try:
            self.es.indices.refresh(index=self.index)
            return int(self.es.count(index=self.index)["count"])
        except Exception:
            return 0

    def messages(self) -> collections.Counter[str]:
        """Every document's message (scrolled: a search returns at most 10,000)."""
        self.es.indices.refresh(index=self.index)
        out: collections.Counter[str] = collections.Counter()
        resp = self.es.search(index=self.index, size=10000, scroll="1m", _source=["message"])
        while resp["hits"]["hits"]:
            out.update(h["_source"]["message"] for h in resp["hits"]["hits"])
            resp = self.es.scroll(scroll_id=resp["_scroll_id"], scroll="1m")
        self.es.clear_scroll(scroll_id=resp["_scroll_id"])
        return out

    def shipped(self, n: int, timeout: float = 90) -> None:
        wait_for(lambda: self.count() >= n, timeout, f"{n} documents")

    def assert_exactly_once(self) -> None:
        self.shipped(len(self.written))
        time.sleep(1.5)  # anything doubled would have arrived by now
        got = self.messages()
        doubled = [m for m, c in got.items() if c > 1]
        assert not doubled, f"{len(doubled)} doubled, e.g. {doubled[:3]}"
        assert set(got) == set(self.written), f"missing {sorted(set(self.written) - set(got))[:3]}"


def holds(r: Run, ino: int) -> bool:
    """Does the agent process hold a descriptor of inode `ino` (/proc/<pid>/fd)?"""
    assert r.agent.proc is not None
    for fd in Path(f"/proc/{r.agent.proc.pid}/fd").iterdir():
        try:
            if os.stat(fd).st_ino == ino:
                return True
        except OSError:
            continue
    return False


def test_rename_rotation(es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path) -> None:
    r = Run(es_plain, es_client, agent_factory, tmp_path)
    r.agent.start()
    app = r.logs / "app.log"
    fd = os.open(app, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(fd, r.lines("start", 10))
    r.shipped(10)  # the agent has the file open (a file rotated away before it ever saw it is out of reach)
    for gen in range(5):  # RotatingFileHandler: rename, keep writing a little to the old fd, reopen
        os.write(fd, r.lines(f"gen{gen}-a", 300))
        time.sleep(0.3)
        os.replace(app, r.logs / f"app.log.{gen}")
        os.write(fd, r.lines(f"gen{gen}-b", 50))  # written after the rename, before the reopen
        os.close(fd)
        fd = os.open(app, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(fd, r.lines("last", 100))
    os.close(fd)
    r.assert_exactly_once()
    assert r.agent.stop() == 0


def test_truncation_starts_a_new_generation(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    port = free_port()
    r = Run(es_plain, es_client, agent_factory, tmp_path, listen=f"127.0.0.1:{port}")
    r.agent.start()
    app = r.logs / "app.log"
    app.write_bytes(r.lines("before", 500))
    r.shipped(500)
    with app.open("r+b") as f:
        f.truncate(0)
    time.sleep(0.5)
    with app.open("ab") as f:
        f.write(r.lines("after", 200))  # shorter than before: size < offset shows the truncation
    r.assert_exactly_once()
    assert "truncated" in r.agent.log()
    assert scrape(port)[("shipper_input_generations_total", (("input", r.id),))] == 1  # counted
    assert r.agent.stop() == 0


def test_a_last_line_without_newline_is_shipped_incomplete_when_its_file_closes_as_inactive(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    r = Run(es_plain, es_client, agent_factory, tmp_path, close_inactive="1s")
    r.agent.start()
    app = r.logs / "app.log"
    with app.open("ab") as f:
        f.write(r.lines("whole", 20) + b"half a line")
        f.flush()
        ino = os.fstat(f.fileno()).st_ino
        r.written.append("half a line")
        r.shipped(21)  # the half line too: closing holds nothing back
        wait_for(lambda: not holds(r, ino), 30, "the agent to close the inactive file")
        f.write(b"-and the rest\n" + r.lines("later", 10))  # read from there when reopened
        r.written.append("-and the rest")
    r.assert_exactly_once()
    hits = r.es.search(index=r.index, size=100, _source=["message", "tags"])["hits"]["hits"]
    tags = {h["_source"]["message"]: h["_source"].get("tags") for h in hits}
    assert tags["half a line"] == ["incomplete"]
    assert tags["-and the rest"] is None
    assert r.agent.stop() == 0


@pytest.mark.parametrize("gone", ["deleted", "renamed-away", "once"])
def test_a_last_line_without_newline_is_shipped_incomplete_when_its_file_goes(
    gone: str, es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    """Issue 5: the held last line is shipped as it is, tagged `incomplete`, when its file
    is deleted or rotated away (renamed to a name the globs do not match), once read to
    its end, or at the end of `--once`; never before (the writer could still complete it)."""
    r = Run(es_plain, es_client, agent_factory, tmp_path, close_removed="0s")
    app = r.logs / "app.log"
    app.write_bytes(r.lines("whole", 20) + b"the last, half a line")
    r.written.append("the last, half a line")
    if gone == "once":
        assert r.agent.start("--once").wait(120) == 0
    else:
        r.agent.start()
        r.shipped(20)
        time.sleep(1.5)  # a scan or two: the half line is held while the file is there
        assert r.count() == 20
        if gone == "deleted":
            app.unlink()
        else:
            app.rename(r.logs / "app.log.1")  # not matched by **/*.log
    r.assert_exactly_once()
    hits = r.es.search(index=r.index, size=100, _source=["message", "tags"])["hits"]["hits"]
    tags = {h["_source"]["message"]: h["_source"].get("tags") for h in hits}
    assert tags["the last, half a line"] == ["incomplete"]
    if gone != "once":
        assert r.agent.stop() == 0


def test_a_symlinked_path_is_one_file(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    r = Run(es_plain, es_client, agent_factory, tmp_path)
    real = r.logs / "real"
    real.mkdir()
    app = real / "app.log"
    app.write_bytes(r.lines("first", 100))
    (r.logs / "before.log").symlink_to(app)  # two matched names for one file at the first scan
    r.agent.start()
    r.shipped(100)
    (r.logs / "after.log").symlink_to(app)  # and a third, made while the agent runs
    time.sleep(1.5)
    with app.open("ab") as f:
        f.write(r.lines("then", 100))
    r.assert_exactly_once()
    assert r.agent.stop() == 0


def test_deleted_file_is_read_to_its_end(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    r = Run(es_plain, es_client, agent_factory, tmp_path, close_removed="1s")
    r.agent.start()
    app = r.logs / "app.log"
    with app.open("ab") as f:
        f.write(r.lines("first", 100))
        f.flush()
        r.shipped(100)
        ino = os.fstat(f.fileno()).st_ino
        f.write(r.lines("then", 2000) + b"no newline at the end")
        f.flush()
        app.unlink()  # the agent holds the file open: what was written is still read
        r.written.append("no newline at the end")
        r.assert_exactly_once()
        # ... and then closed (close_removed after it was idle at its end), freeing the
        # deleted file's space although the writer still holds it open
        wait_for(lambda: not holds(r, ino), 30, "the agent to close the deleted file")
    assert "no longer matched, read to its end" in r.agent.log()
    assert r.agent.stop() == 0


def test_restart_resumes_and_partial_line_completes(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    r = Run(es_plain, es_client, agent_factory, tmp_path)
    app = r.logs / "deep" / "er" / "app.log"
    app.parent.mkdir(parents=True)
    body = r.lines("one", 100)
    r.written.append("half written then completed")
    app.write_bytes(body + b"half written")
    r.agent.start()
    r.shipped(100)
    assert r.agent.stop() == 0
    with app.open("ab") as f:
        f.write(b" then completed\n")
    r.agent.start()
    r.assert_exactly_once()
    assert r.agent.stop() == 0


def test_traceback_is_one_event_and_an_open_one_expires(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    r = Run(es_plain, es_client, agent_factory, tmp_path, format="python", multiline={"timeout": "1s"})
    r.agent.start()
    tb = (
        "2026-11-25 07:30:01,123 - trainer - ERROR - step 12 failed\n"
        "Traceback (most recent call last):\n"
        '  File "train.py", line 88, in <module>\n'
        "    out = model(batch)\n"
        "          ^^^^^^^^^^^^\n"
        "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
    )
    with (r.logs / "train.log").open("a") as f:
        f.write("2026-11-25 07:30:00,000 - trainer - INFO - epoch=1 loss=0.5\n" + tb)
    # nothing follows the traceback: it may go on, so it is held, then shipped after 1 s
    wait_for(lambda: r.count() == 2, 30, "two events: the INFO line and the whole traceback")
    r.es.indices.refresh(index=r.index)
    hits = r.es.search(index=r.index, sort=[{"log.offset": "asc"}])["hits"]["hits"]
    doc = hits[1]["_source"]
    assert doc["message"] == "step 12 failed\n" + tb.split("\n", 1)[1].rstrip("\n")
    assert doc["error"]["type"] == "torch.cuda.OutOfMemoryError"
    assert doc["error"]["message"].startswith("CUDA out of memory")
    assert doc["log"]["level"] == "ERROR"
    assert r.agent.stop() == 0
