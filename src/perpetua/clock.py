"""The one source of time for policies that depend on it: trials, session idle
timeouts, retention. Tests replace it with a controllable clock instead of sleeping."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


class Clock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


@dataclass
class FrozenClock(Clock):
    """A clock that moves only when told to."""

    # Starts at the real time: PostgreSQL's own now() must agree with it for the
    # rules the database checks itself (a trial's end, for one).
    current: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def now(self) -> dt.datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += dt.timedelta(**delta)
