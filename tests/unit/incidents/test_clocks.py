"""The breach-notification clocks: deadlines from the discovery time, which
clocks apply for how many affected people, and their states over time."""

from __future__ import annotations

import datetime as dt

import pytest

from perpetua.incidents.clocks import (
    ClockFacts,
    annual_log_due,
    deadlines,
    describe_remaining,
    overdue,
)

UTC = dt.UTC
FOUND = dt.datetime(2026, 3, 10, 9, 30, tzinfo=UTC)


def by_clock(facts: ClockFacts) -> dict[str, object]:
    return {d.clock: d for d in deadlines(facts)}


def test_practice_notice_is_due_24_hours_after_discovery():
    notice = by_clock(ClockFacts(discovered_at=FOUND, affected_count=3))[
        "practice_notice"
    ]
    assert notice.due_at == dt.datetime(2026, 3, 11, 9, 30, tzinfo=UTC)
    assert notice.state(FOUND + dt.timedelta(hours=23, minutes=59)) == "running"
    assert notice.state(FOUND + dt.timedelta(hours=24)) == "running"
    assert notice.state(FOUND + dt.timedelta(hours=24, seconds=1)) == "overdue"


def test_individuals_and_hhs_are_due_60_days_after_discovery():
    clocks = by_clock(ClockFacts(discovered_at=FOUND, affected_count=500))
    assert clocks["individuals"].due_at == dt.datetime(2026, 5, 9, 9, 30, tzinfo=UTC)
    assert clocks["hhs"].due_at == clocks["individuals"].due_at
    assert clocks["hhs"].applies
    assert not clocks["hhs_annual_log"].applies


def test_fewer_than_500_go_to_the_annual_log_not_to_hhs_at_once():
    clocks = by_clock(ClockFacts(discovered_at=FOUND, affected_count=499))
    assert not clocks["hhs"].applies
    assert clocks["hhs_annual_log"].applies
    assert clocks["hhs_annual_log"].state(FOUND) == "running"


@pytest.mark.parametrize(
    ("discovered", "due"),
    [
        # 60 days after 31 December: 1 March, ending at midnight (UTC).
        (
            dt.datetime(2026, 1, 1, 0, 0, tzinfo=UTC),
            dt.datetime(2027, 3, 2, tzinfo=UTC),
        ),
        (
            dt.datetime(2026, 12, 31, 23, 59, tzinfo=UTC),
            dt.datetime(2027, 3, 2, tzinfo=UTC),
        ),
        # 2028 is a leap year: the 60th day is 29 February.
        (dt.datetime(2027, 6, 1, tzinfo=UTC), dt.datetime(2028, 3, 1, tzinfo=UTC)),
    ],
)
def test_annual_log_is_due_60_days_after_the_year_of_discovery(discovered, due):
    assert annual_log_due(discovered) == due


def test_annual_log_uses_the_utc_year_of_an_offset_time():
    new_years_eve_in_new_york = dt.datetime(
        2026, 12, 31, 20, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5))
    )
    assert annual_log_due(new_years_eve_in_new_york) == dt.datetime(
        2028, 3, 1, tzinfo=UTC
    )


def test_media_needs_more_than_500_residents_of_one_state():
    exactly = by_clock(ClockFacts(discovered_at=FOUND, affected_count=500))
    assert not exactly["media"].applies
    more = by_clock(ClockFacts(discovered_at=FOUND, affected_count=501))
    assert more["media"].applies
    spread = by_clock(
        ClockFacts(discovered_at=FOUND, affected_count=900, largest_state_count=450)
    )
    assert not spread["media"].applies
    assert spread["hhs"].applies


def test_low_probability_conclusion_stops_the_60_day_clocks_not_the_notice():
    facts = ClockFacts(
        discovered_at=FOUND, affected_count=800, conclusion="low_probability"
    )
    states = {
        d.clock: d.state(FOUND + dt.timedelta(days=400)) for d in deadlines(facts)
    }
    assert states == {
        "practice_notice": "overdue",
        "individuals": "not_required",
        "hhs": "not_required",
        "media": "not_required",
        "hhs_annual_log": "not_required",
    }


def test_done_clocks_are_met_or_late_never_overdue():
    facts = ClockFacts(
        discovered_at=FOUND,
        affected_count=2,
        practice_notified_at=FOUND + dt.timedelta(hours=3),
        individuals_notified_at=FOUND + dt.timedelta(days=61),
    )
    later = FOUND + dt.timedelta(days=90)
    clocks = by_clock(facts)
    assert clocks["practice_notice"].state(later) == "met"
    assert clocks["individuals"].state(later) == "late"
    assert [d.clock for d in overdue(facts, later)] == []


def test_overdue_lists_only_clocks_past_their_deadline():
    facts = ClockFacts(discovered_at=FOUND, affected_count=2)
    assert overdue(facts, FOUND + dt.timedelta(hours=1)) == []
    assert [d.clock for d in overdue(facts, FOUND + dt.timedelta(days=2))] == [
        "practice_notice"
    ]
    assert [d.clock for d in overdue(facts, FOUND + dt.timedelta(days=61))] == [
        "practice_notice",
        "individuals",
    ]


def test_naive_discovery_time_is_refused():
    with pytest.raises(ValueError, match="timezone"):
        deadlines(ClockFacts(discovered_at=dt.datetime(2026, 1, 1), affected_count=0))


def test_remaining_time_reads_naturally():
    assert describe_remaining(dt.timedelta(hours=5, minutes=12)) == "5 h 12 min left"
    assert describe_remaining(dt.timedelta(days=1, hours=2)) == "1 day 2 h left"
    assert describe_remaining(-dt.timedelta(days=3, hours=1)) == "3 days overdue"
