"""Windows: event time closes them, wall time only for a caught-up source, gaps, late events."""

from __future__ import annotations

import orjson

from _fastparse import counters
from shipper.anomaly.windows import SourceWindows, Window
from tests.anomaly_batches import Event, FakeBatch

W = 1000
T0 = 1_700_000_000_000  # a window boundary


def add(sw: SourceWindows, *times: int) -> None:
    c = counters.count(FakeBatch([Event(time=t) for t in times]), W)
    assert c is not None
    list(sw.add(c))


def starts(ws: list[Window]) -> list[tuple[int, int]]:
    return [((w.start - T0) // W, w.events) for w in ws]


def test_event_time_closes_after_grace_and_late_events_within_grace_count() -> None:
    sw = SourceWindows(W, grace_ms=500, max_gap=60)
    add(sw, T0 + 10, T0 + 900, T0 + 1200)
    assert sw.due(0) == []  # wall time does not matter while not caught up
    add(sw, T0 + 1499)
    assert sw.due(0) == []  # window 0 ends at T0+1000; its grace runs to T0+1500
    add(sw, T0 + 1500, T0 + 400)  # the late event is within the grace period
    assert starts(sw.due(0)) == [(0, 3)]
    add(sw, T0 + 300)  # window 0 is closed: late, counted apart
    assert sw.late_events == 1
    add(sw, T0 + 3600)
    assert starts(sw.due(0)) == [(1, 3), (2, 0)]  # the empty window in between is closed too


def test_wall_clock_only_when_caught_up_and_from_that_moment() -> None:
    sw = SourceWindows(W, grace_ms=500, max_gap=60)
    add(sw, T0 + 100)  # an old event (a backfill)
    now = T0 + 3_600_000  # an hour later
    assert sw.due(now) == []  # behind: only event time moves windows
    sw.caught_up(now, True)
    # caught up now: the last event's window closes, the hour in between is not filled
    assert starts(sw.due(now + 600)) == [(0, 1)]
    later = sw.due(now + 3500)
    assert starts(later) == [(3600, 0), (3601, 0), (3602, 0)]  # silence from the moment it caught up
    sw.caught_up(now + 3600, False)
    assert sw.due(now + 10_000) == []


def test_backfill_gap_is_filled_up_to_max_gap() -> None:
    sw = SourceWindows(W, grace_ms=0, max_gap=3)
    add(sw, T0, T0 + 10_500, T0 + 20_000)
    got = starts(sw.due(0))
    assert got == [(0, 1), (1, 0), (2, 0), (3, 0), (10, 1), (11, 0), (12, 0), (13, 0)]


def test_state_round_trip() -> None:
    sw = SourceWindows(W, grace_ms=500, max_gap=60)
    add(sw, T0 + 1, T0 + 1001)
    sw.due(0)
    back = SourceWindows.from_dict(orjson.loads(orjson.dumps(sw.to_dict())), W, 500, 60)
    assert back.event_clock == sw.event_clock and back.next_start == sw.next_start
    assert {s: w.events for s, w in back.open.items()} == {s: w.events for s, w in sw.open.items()}


def test_a_time_far_in_the_future_does_not_close_every_window() -> None:
    sw = SourceWindows(W, grace_ms=500, max_gap=60)
    add(sw, T0 + 10)
    c = counters.count(FakeBatch([Event(time=T0 + 365 * 86_400_000)]), W)  # a year ahead
    assert c is not None
    list(sw.add(c, now_ms=T0 + 100))
    assert sw.event_clock is not None and sw.event_clock <= T0 + 100 + 120_000
    closed = starts(sw.due(0))
    assert closed[0] == (0, 1) and closed[-1][0] < 121  # at most the tolerance (2 minutes), not a year
    assert list(sw.open) == [T0 + 365 * 86_400_000]  # its own window waits, counted
