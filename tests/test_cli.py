"""The command line as a user meets it: real processes, exit codes, messages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent


def shipper(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "shipper", *args], input=stdin, capture_output=True, cwd=ROOT, timeout=60
    )


def test_check_names_key_and_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text("inputs:\n  - id: t\n    paths: [x]\n    exlude: []\n")
    r = shipper("check", "-c", str(cfg))
    assert r.returncode == 2
    assert b"inputs[0].exlude: unknown key; did you mean 'exclude'?" in r.stderr


def test_check_lists_matched_files(tmp_path: Path) -> None:
    (tmp_path / "m" / "r").mkdir(parents=True)
    (tmp_path / "m" / "r" / "a.log").write_text("x\n")
    (tmp_path / "m" / "b.log.gz").write_text("x\n")
    cfg = tmp_path / "c.yml"
    cfg.write_text(f"inputs:\n  - id: t\n    paths: ['{tmp_path}/m/**/*.log*']\n    exclude: ['*.gz']\n")
    r = shipper("check", "-c", str(cfg))
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "input t (plain) -> index shipper-logs-t-%Y.%m.%d: 1 file(s)" in out
    assert f"{tmp_path}/m/r/a.log" in out and "b.log.gz" not in out


def test_run_refuses_a_second_agent_on_one_data_dir(tmp_path: Path) -> None:
    from shipper.registry import Registry

    held = Registry(tmp_path / "data")
    cfg = tmp_path / "c.yml"
    cfg.write_text(
        f"data_dir: {tmp_path}/data\ninputs:\n  - id: t\n    paths: ['{tmp_path}/*.log']\nhttp: {{listen: null}}\n"
    )
    r = shipper("run", "-c", str(cfg), "--once")
    held.close()
    assert r.returncode == 2
    assert b"another shipper" in r.stderr


def test_parse_prints_documents() -> None:
    r = shipper("parse", stdin=b'first line\r\nsecond "quoted"\n\nno newline')
    assert r.returncode == 0, r.stderr
    docs = [orjson.loads(line) for line in r.stdout.splitlines()]
    assert [d["message"] for d in docs] == ["first line", 'second "quoted"', "no newline"]
    assert [d["log"]["offset"] for d in docs] == [0, 12, 29]
    assert docs[-1]["tags"] == ["incomplete"]


def test_config_reference_runs() -> None:
    r = shipper("config-reference")
    assert r.returncode == 0 and b"output.elasticsearch.hosts" in r.stdout


def test_check_never_prints_secrets(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text(
        "inputs: [{id: t, paths: [x]}]\n"
        "output: {elasticsearch: {hosts: ['http://127.0.0.1:1'], username: u, password: '${PW}'}}\n"
    )
    r = subprocess.run(
        [sys.executable, "-m", "shipper", "check", "-c", str(cfg)],
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        env={**__import__("os").environ, "PW": "hunter2-secret"},
    )
    assert r.returncode == 0, r.stderr
    assert b"hunter2-secret" not in r.stdout + r.stderr


RUN_ONCE_MODULES = """
import sys
from shipper.cli import main
code = main(["run", "-c", sys.argv[1], "--once"])
print(" ".join(m for m in ("numpy", "watchdog", "aiohttp.web", "prometheus_client", "argparse") if m in sys.modules))
sys.exit(code)
"""


def test_a_plain_run_once_imports_only_what_it_needs(tmp_path: Path) -> None:
    """Start-up cost (issue 8): a `run --once` of a small file, anomaly watch on, no
    listener, judges fewer windows than min_history, so no numpy (~250 M instructions,
    ~12 MiB), no aiohttp.web (listener only), no watchdog (nothing to watch), no
    prometheus_client (a scrape only: ~48 M instructions), no argparse (the agent's own
    command line is read without it: ~15 M). With SHIPPER_NO_EXTENSIONS the
    counting's twins are numpy's, so the compiled build is the one this holds for."""
    if os.environ.get("SHIPPER_NO_EXTENSIONS", "") not in ("", "0"):
        pytest.skip("the twins of the compiled counting are numpy's (SHIPPER_NO_EXTENSIONS)")
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ep = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "discard_endpoint.py"), str(port)])
    try:  # the agent retries until the endpoint answers
        log = tmp_path / "train.log"
        line = b"2026-11-25 07:30:%02d,123 - trainer - INFO - step=%d loss=0.5\n"
        log.write_bytes(b"".join(line % (i // 2, i) for i in range(100)))
        cfg = tmp_path / "c.yml"
        cfg.write_text(
            f"data_dir: {tmp_path}/data\ninputs: [{{id: t, paths: ['{log}'], format: python}}]\n"
            f"output: {{elasticsearch: {{hosts: ['http://127.0.0.1:{port}'], template: false}}}}\n"
            "http: {listen: null}\nlog_level: error\n"
        )
        cmd = [sys.executable, "-c", RUN_ONCE_MODULES, str(cfg)]
        for _ in range(2):  # the second restores the watch's saved state (a cold detector: no numpy)
            r = subprocess.run(cmd, capture_output=True, cwd=ROOT, timeout=60)
            assert r.returncode == 0, r.stderr
            assert r.stdout.split() == [], r.stdout
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stats/discard") as resp:
            assert orjson.loads(resp.read())["docs"] >= 100  # the events, and the windows' documents
    finally:
        ep.terminate()
        ep.wait()


def test_the_plain_run_command_line_reads_as_argparse_reads_it() -> None:
    """`run -c FILE [--once]` is read without argparse (start-up cost, issue 8): for every
    command line of these words up to five long, what the shortcut takes is what argparse
    makes of it, and the rest is left to argparse."""
    import contextlib
    import io
    import itertools

    from shipper.cli import _plain_run, parser

    words = ["run", "-c", "--config", "--once", "a.yml", "-x", "", "--conf"]
    taken = 0
    for n in range(6):
        for argv in itertools.product(words, repeat=n):
            got = _plain_run(list(argv))
            if got is None:
                continue
            taken += 1
            with contextlib.redirect_stderr(io.StringIO()):
                args = parser().parse_args(list(argv))
            assert (args.cmd, args.config, args.once) == ("run", *got), argv
    files = [w for w in words if not w.startswith("-")]
    assert taken == 2 * len(files) * 3  # -c or --config FILE, with --once before, after or not at all
