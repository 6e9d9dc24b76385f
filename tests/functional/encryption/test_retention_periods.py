"""When a retention period ends: `retention_months` months after the last day of
the month, across year boundaries."""

from __future__ import annotations

import datetime as dt

import pytest

from perpetua.blobs.store import _period_end


@pytest.mark.parametrize(
    ("period", "months", "ends"),
    [
        ("2026-01", 0, dt.datetime(2026, 2, 1, tzinfo=dt.UTC)),
        ("2026-12", 0, dt.datetime(2027, 1, 1, tzinfo=dt.UTC)),
        ("2026-11", 1, dt.datetime(2027, 1, 1, tzinfo=dt.UTC)),
        ("2026-01", 84, dt.datetime(2033, 2, 1, tzinfo=dt.UTC)),
    ],
)
def test_period_ends_after_its_last_day_plus_retention(period, months, ends):
    assert _period_end(period, months) == ends
