"""Twilio recording fetches that need a person, in words an owner can act on.

The fetch queue (`fetch.py`) gives up on some recordings (Twilio no longer has
it, it could not be made safe, attempts ran out), stops on rejected credentials,
and may wait a long time for a call Twilio never reports. Each of those leaves a
recording at Twilio, or a copy there, that only the practice can deal with. This
module turns a fetch's state into a short label and a sentence saying what
happened and what the practice can do; the console and the API show the same
words. It says nothing about the call beyond its id: no number, no patient.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

# Owners and managers look after the practice's telephony; the database refuses
# everyone else too (phi_api.twilio_fetches_for_review).
REVIEW_ROLES = ("owner", "manager")

# A pending fetch normally ends within minutes; one still waiting after this long
# is shown, since its call's status callback may never come.
WAITING = dt.timedelta(hours=1)

_AT_TWILIO = "The recording is still in your Twilio account."
_SETTINGS = (
    "An owner can save them in Calls → Retention settings; fetching starts again "
    "once they are saved."
)


@dataclass(frozen=True)
class FetchForReview:
    id: uuid.UUID
    call_id: uuid.UUID
    recording_sid: str
    status: str
    attempts: int
    last_error: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    # Whether Perpetua recorded the call (its page exists), and whether the
    # recording itself is stored here.
    call_recorded: bool
    recording_stored: bool

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> FetchForReview:
        return cls(
            row["id"],
            row["call_id"],
            row["recording_sid"],
            row["status"],
            row["attempts"],
            row["last_error"],
            row["created_at"],
            row["updated_at"],
            row["call_recorded"],
            row["recording_stored"],
        )

    @property
    def summary(self) -> str:
        return explain(self)[0]

    @property
    def explanation(self) -> str:
        return explain(self)[1]


def explain(fetch: FetchForReview) -> tuple[str, str]:
    """A short label and a sentence: what happened, and what the practice can do."""
    status, error = fetch.status, fetch.last_error
    tries = f"{fetch.attempts} attempt{'' if fetch.attempts == 1 else 's'}"
    if status == "refused" and error == "recording_not_silenceable":
        return (
            "Not stored: a card number could not be silenced",
            "Perpetua downloaded this recording but did not keep it: the call's "
            "transcript mentions a card number, and without word timings Perpetua "
            "cannot tell which seconds of the audio to silence. "
            f"{_AT_TWILIO} It may hold a spoken card number: listen to it in "
            "Twilio's console and delete it there.",
        )
    if status == "refused":
        return (
            "Not stored: not readable audio",
            "Perpetua downloaded this recording but did not keep it: what Twilio "
            f"sent is not WAV, MP3 or OGG audio. {_AT_TWILIO} Check it in Twilio's "
            "console and delete it there once you no longer need it.",
        )
    if status == "gone":
        return (
            "Not stored: Twilio no longer has it",
            "Twilio answered that this recording does not exist, usually because it "
            "was deleted at Twilio before Perpetua fetched it. There is nothing "
            "left to fetch; nothing to do unless you expected to keep it.",
        )
    if status == "failed" and fetch.recording_stored:
        return (
            "Stored, but a copy stays at Twilio",
            "The recording is stored in Perpetua, but deleting it at Twilio failed "
            f"after {tries} and Perpetua stopped trying. Delete it in Twilio's "
            "console (search for its recording SID).",
        )
    if status == "failed" and error == "call_not_recorded":
        return (
            "Not stored: Twilio never reported the call",
            "Perpetua fetches a recording only once Twilio has reported its call, "
            f"and gave up after {tries}. {_AT_TWILIO} Check that your Twilio "
            "number's status callback points at Perpetua (Calls → Retention "
            "settings shows the address).",
        )
    if status == "failed":
        return (
            "Not stored: download failed",
            f"Perpetua could not download this recording from Twilio after {tries} "
            f"and stopped trying (see the last error). {_AT_TWILIO} Check Twilio's "
            "status and your account there.",
        )
    if status == "credentials_rejected" and error == "twilio_not_configured":
        return (
            "Waiting for Twilio credentials",
            "No Twilio account SID and auth token are saved, so nothing can be "
            f"fetched. {_SETTINGS}",
        )
    if status == "credentials_rejected":
        return (
            "Waiting for Twilio credentials",
            "Twilio refused the account SID and auth token saved in Perpetua, so "
            f"recordings are not being fetched. {_SETTINGS}",
        )
    if status == "delete_pending":
        return (
            "Stored; deletion at Twilio being retried",
            "The recording is stored in Perpetua. Deleting the copy at Twilio has "
            "failed so far (see the last error) and is retried on its own, waiting "
            "longer each time. Nothing to do yet.",
        )
    if status == "pending" and not fetch.call_recorded:
        return (
            "Waiting for the call",
            "Perpetua fetches a recording only once Twilio has reported its call, "
            "and that report has not come for over an hour. It keeps checking on "
            "its own; if this stays, check that your Twilio number's status "
            "callback points at Perpetua (Calls → Retention settings shows the "
            "address).",
        )
    if status == "pending":
        return (
            "Still trying to download",
            "Downloading this recording has failed so far (see the last error); "
            "Perpetua retries on its own, waiting longer each time. Nothing to do "
            "yet.",
        )
    return (status, "")
