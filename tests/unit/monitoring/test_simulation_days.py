"""Choosing the day of an injected scenario: always a day inside the evaluated
window, of the kind asked for when the window has one, and never a hang when it
has none (a short window from a Monday holds no weekend)."""

from __future__ import annotations

import datetime as dt

import pytest

from perpetua.monitoring.simulation import Simulation


def _month(days: int, end: dt.datetime) -> Simulation:
    # The conninfo and vault are only used when the month is written.
    return Simulation("", None, days=days, warmup_days=1, end=end)  # type: ignore[arg-type]


# Thursday 3 December 2026: three days back start on Monday 30 November.
THURSDAY = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)
# Monday 7 December 2026: three days back start on Friday 4 December.
MONDAY = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)


@pytest.mark.parametrize("weekday", [True, False])
@pytest.mark.parametrize("end", [THURSDAY, MONDAY])
def test_a_day_is_found_whatever_the_window_holds(end, weekday):
    month = _month(3, end)
    inner = month.start + dt.timedelta(days=1)
    for _ in range(20):
        assert month.eval_day(weekday=weekday) == inner


def test_the_kind_asked_for_is_honoured_when_the_window_has_it():
    month = _month(30, THURSDAY)
    days = [month.eval_day(weekday=False) for _ in range(50)]
    assert all(day.weekday() >= 5 for day in days)
    assert all(month.start < day < month.end for day in days)
    assert {month.eval_day(weekday=True).weekday() for _ in range(50)} <= set(range(5))
