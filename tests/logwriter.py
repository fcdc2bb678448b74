"""A separate process that writes model-training-like log lines the way applications do.

Lines go out in random-sized writes that often end mid-line (so the agent sees partial
lines), into files under nested directories, some created only after a delay (after the
agent has started). Run as a script: see `main`.
"""

from __future__ import annotations

import argparse
import os
import random
import time


def line(rng: random.Random, name: str, n: int) -> bytes:
    level = rng.choice(["INFO"] * 8 + ["WARNING", "ERROR"])
    return (
        f"2026-11-25 07:30:{n % 60:02d},{n % 1000:03d} - {name} - {level} - "
        f'step={n} loss={rng.random():.4f} acc={rng.random():.3f} "q" \\ ü\n'
    ).encode()


def write(root: str, files: list[str], lines: int, seed: int, pace: float) -> None:
    rng = random.Random(seed)
    fds = {}
    pending: dict[str, bytes] = {f: b"" for f in files}
    counters = dict.fromkeys(files, 0)
    for i in range(lines):
        name = files[i % len(files)]
        counters[name] += 1
        pending[name] += line(rng, name, counters[name])
        if len(pending[name]) > rng.randint(64, 8192) or i == lines - 1:
            data = pending[name]
            cut = rng.randint(0, len(data))  # leave the tail of a line for the next write
            if name not in fds:
                path = os.path.join(root, name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                fds[name] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.write(fds[name], data[:cut])
            pending[name] = data[cut:]
            if pace:
                time.sleep(pace)
    for name, data in pending.items():
        if data:
            if name not in fds:
                path = os.path.join(root, name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                fds[name] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.write(fds[name], data)
    for fd in fds.values():
        os.close(fd)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--files", nargs="+", required=True, help="relative paths, written round robin")
    ap.add_argument("--lines", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pace", type=float, default=0.0, help="sleep after each write")
    ap.add_argument("--start-delay", type=float, default=0.0)
    a = ap.parse_args()
    time.sleep(a.start_delay)
    write(a.root, a.files, a.lines, a.seed, a.pace)


if __name__ == "__main__":
    main()
