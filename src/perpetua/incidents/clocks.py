"""The breach-notification clocks of an incident, as pure arithmetic on its dates.

Every clock starts at discovery (45 CFR 164.404(a)(2): the first day the breach is
known, or would have been known with reasonable diligence):

- practice notice: Perpetua, the business associate, tells the practice within
  24 hours. This is Perpetua's promise in its BAA, stricter than the 60 days
  164.410 allows;
- individuals: within 60 days (164.404(b));
- HHS: within 60 days when 500 or more individuals are affected (164.408(b));
- media: within 60 days when more than 500 residents of one state are affected
  (164.406);
- HHS annual log: fewer than 500 individuals are logged and reported within 60
  days of the end of the calendar year in which the breach was discovered
  (164.408(c)).

Until a risk assessment concludes that there is a low probability that the PHI
was compromised, an impermissible use is presumed a breach (164.402), so the
60-day clocks run from discovery; that conclusion stops them. The practice notice
is owed for every incident. Times are UTC.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

ClockName = Literal["practice_notice", "individuals", "hhs", "media", "hhs_annual_log"]
ClockState = Literal["met", "late", "running", "overdue", "not_required"]
CLOCKS: tuple[ClockName, ...] = (
    "practice_notice",
    "individuals",
    "hhs",
    "media",
    "hhs_annual_log",
)
LABELS: dict[ClockName, str] = {
    "practice_notice": "Practice notified (24 hours, Perpetua's promise)",
    "individuals": "Individuals notified (60 days, 164.404)",
    "hhs": "HHS notified (60 days, 500 or more affected, 164.408(b))",
    "media": "Media notified (60 days, more than 500 in a state, 164.406)",
    "hhs_annual_log": "HHS annual log (60 days after year end, 164.408(c))",
}

PRACTICE_NOTICE = dt.timedelta(hours=24)
SIXTY_DAYS = dt.timedelta(days=60)
# 164.408(b) counts "500 or more"; 164.406 counts "more than 500" of one state.
HHS_THRESHOLD = 500
MEDIA_THRESHOLD = 500


@dataclass(frozen=True)
class ClockFacts:
    """What the clocks depend on; every datetime is timezone-aware."""

    discovered_at: dt.datetime
    affected_count: int
    # Residents of the most affected state, when the practice knows it; Perpetua
    # keeps no addresses, so otherwise every affected person is counted as one
    # state's (the cautious reading).
    largest_state_count: int | None = None
    conclusion: str | None = None
    practice_notified_at: dt.datetime | None = None
    individuals_notified_at: dt.datetime | None = None
    hhs_notified_at: dt.datetime | None = None
    media_notified_at: dt.datetime | None = None
    hhs_logged_at: dt.datetime | None = None


@dataclass(frozen=True)
class Deadline:
    clock: ClockName
    applies: bool
    due_at: dt.datetime
    done_at: dt.datetime | None

    @property
    def label(self) -> str:
        return LABELS[self.clock]

    def state(self, now: dt.datetime) -> ClockState:
        if not self.applies:
            return "not_required"
        if self.done_at is not None:
            return "met" if self.done_at <= self.due_at else "late"
        return "overdue" if now > self.due_at else "running"

    def remaining(self, now: dt.datetime) -> dt.timedelta:
        """Time left before the deadline (negative once it has passed)."""
        return self.due_at - now


def annual_log_due(discovered_at: dt.datetime) -> dt.datetime:
    """The end of the 60th day after the calendar year of discovery ends (1 March,
    or 29 February in a leap year, at 24:00 UTC)."""
    year_end = dt.datetime(
        discovered_at.astimezone(dt.UTC).year + 1, 1, 1, tzinfo=dt.UTC
    )
    return year_end + SIXTY_DAYS


def deadlines(facts: ClockFacts) -> list[Deadline]:
    """The five clocks of one incident, in the order they are shown."""
    if facts.discovered_at.tzinfo is None:
        raise ValueError("discovered_at must be timezone-aware")
    found = facts.discovered_at
    breach = facts.conclusion != "low_probability"
    in_one_state = (
        facts.largest_state_count
        if facts.largest_state_count is not None
        else facts.affected_count
    )
    large = facts.affected_count >= HHS_THRESHOLD
    return [
        Deadline(
            "practice_notice", True, found + PRACTICE_NOTICE, facts.practice_notified_at
        ),
        Deadline(
            "individuals", breach, found + SIXTY_DAYS, facts.individuals_notified_at
        ),
        Deadline("hhs", breach and large, found + SIXTY_DAYS, facts.hhs_notified_at),
        Deadline(
            "media",
            breach and in_one_state > MEDIA_THRESHOLD,
            found + SIXTY_DAYS,
            facts.media_notified_at,
        ),
        Deadline(
            "hhs_annual_log",
            breach and not large,
            annual_log_due(found),
            facts.hhs_logged_at,
        ),
    ]


def overdue(facts: ClockFacts, now: dt.datetime) -> list[Deadline]:
    return [d for d in deadlines(facts) if d.state(now) == "overdue"]


def describe_remaining(delta: dt.timedelta) -> str:
    """'5 h 12 min left' or '3 days overdue', for pages and emails."""
    late = delta < dt.timedelta(0)
    span = -delta if late else delta
    days, rest = divmod(int(span.total_seconds()), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days >= 2:
        text = f"{days} days"
    elif days == 1:
        text = f"1 day {hours} h"
    else:
        text = f"{hours} h {minutes} min"
    return f"{text} overdue" if late else f"{text} left"
