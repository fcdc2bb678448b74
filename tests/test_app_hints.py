"""HintCoalescer: a file's change hints woken at most once per interval, nothing lost."""

from __future__ import annotations

import asyncio

from shipper.app import HintCoalescer


def _run(interval: float, script: list[tuple[float, str, bool]], settle: float = 0.3) -> list[tuple[float, str, bool]]:
    """Feed hints at the given offsets (s from start); returns (loop time - start, path, structural) passed on."""
    got: list[tuple[float, str, bool]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        hc = HintCoalescer(lambda p, s: got.append((loop.time() - t0, p, s)), interval)
        for at, path, structural in script:
            await asyncio.sleep(max(0.0, at - (loop.time() - t0)))
            hc.hint(path, structural)
        await asyncio.sleep(settle)
        hc.close()

    asyncio.run(main())
    return got


def test_first_hint_passes_at_once_and_a_burst_becomes_one() -> None:
    got = _run(0.1, [(0.0, "a", False)] + [(0.01 * i, "a", False) for i in range(1, 6)])
    assert [p for _, p, _ in got] == ["a", "a"]  # the first at once, the burst after it once
    assert got[0][0] < 0.05
    assert got[1][0] >= 0.099  # not before the interval since the first ended


def test_files_are_independent_and_structural_hints_are_never_held() -> None:
    got = _run(0.1, [(0.0, "a", False), (0.0, "b", False), (0.01, "a", True), (0.02, "a", False)])
    immediate = [(p, s) for t, p, s in got if t < 0.05]
    assert immediate == [("a", False), ("b", False), ("a", True)]
    assert [(p, s) for t, p, s in got if t >= 0.05] == [("a", False)]


def test_zero_interval_passes_every_hint() -> None:
    got = _run(0.0, [(0.0, "a", False)] * 3, settle=0.0)
    assert len(got) == 3


def test_a_quiet_file_passes_again_at_once() -> None:
    got = _run(0.05, [(0.0, "a", False), (0.2, "a", False)], settle=0.1)
    assert len(got) == 2 and 0.19 <= got[1][0] < 0.25


def test_close_cancels_what_is_held() -> None:
    got: list[str] = []

    async def main() -> None:
        hc = HintCoalescer(lambda p, s: got.append(p), 0.05)
        hc.hint("a", False)
        hc.hint("a", False)  # held
        hc.close()
        await asyncio.sleep(0.1)

    asyncio.run(main())
    assert got == ["a"]


def test_the_table_of_last_hints_stays_bounded() -> None:
    async def main() -> int:
        hc = HintCoalescer(lambda p, s: None, 1e-9)
        for i in range(20000):
            hc.hint(f"/f{i}", False)
        n = len(hc._last)
        hc.close()
        return n

    assert asyncio.run(main()) <= 8192
