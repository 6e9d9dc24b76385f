"""Reads transcripts and takes the card numbers out of them before anything is
stored.

Two shapes are accepted: plain text with one speaker turn per line
("Caller: I'd like to book..."), and JSON turns with optional word-level timings
(the shape `perpetua.redaction.turns_from_json` reads). Either way the stored form
is the same JSON document of redacted turns, so the console and the API show one
format; the original text is dropped as soon as it has been redacted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from perpetua.calls.errors import TranscriptUnreadable
from perpetua.calls.media import MAX_TRANSCRIPT_BYTES
from perpetua.redaction import (
    AudioSpan,
    TranscriptFormatError,
    Turn,
    redact_turns,
    turns_from_json,
)

# "Speaker: words" at the start of a line; a label is short and has no digits, so
# "Card: 4111..." style lines still read as a labelled turn and "12:30" does not.
_LABEL = re.compile(r"^\s*([A-Za-z][A-Za-z .'_-]{0,39}):\s*(.*)$")
FORMAT_VERSION = 1


@dataclass(frozen=True)
class RedactedTranscript:
    """What is stored: redacted turns as JSON, and what the recording must lose."""

    document: bytes
    redactions: int
    audio: tuple[AudioSpan, ...]
    # False when a card number was found but not every one could be placed in
    # time (no word timings): the recording cannot then be made safe.
    audio_complete: bool


def parse_text(text: str) -> list[Turn]:
    """Turns from plain text: a labelled line opens a turn, others continue it."""
    turns: list[Turn] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        found = _LABEL.match(line)
        if found:
            turns.append(Turn(found.group(1).strip(), found.group(2).strip()))
        elif turns:
            last = turns[-1]
            turns[-1] = Turn(last.speaker, f"{last.text} {line.strip()}".strip())
        else:
            turns.append(Turn(None, line.strip()))
    return turns


def parse(data: bytes) -> list[Turn]:
    """Turns from an uploaded transcript, JSON or plain text, told by content."""
    if not data.strip():
        raise TranscriptUnreadable("the transcript is empty")
    if len(data) > MAX_TRANSCRIPT_BYTES:
        raise TranscriptUnreadable(
            f"a transcript may be at most {MAX_TRANSCRIPT_BYTES // 1024} KiB"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise TranscriptUnreadable("the transcript is not UTF-8 text") from None
    if text.lstrip()[:1] in ("{", "["):
        try:
            return turns_from_json(json.loads(text))
        except json.JSONDecodeError:
            raise TranscriptUnreadable("the transcript is not valid JSON") from None
        except TranscriptFormatError as exc:
            raise TranscriptUnreadable(str(exc)) from None
    return parse_text(text)


def redact(turns: list[Turn]) -> RedactedTranscript:
    """Replace card numbers and security codes by markers; say what to silence."""
    result = redact_turns(turns)
    body = {
        "format": FORMAT_VERSION,
        "redactions": len(result.spans),
        "turns": [
            {
                "speaker": turn.speaker,
                "text": turn.text,
                "words": [
                    {"text": w.text, "start": w.start, "end": w.end} for w in turn.words
                ],
            }
            for turn in result.turns
        ],
    }
    return RedactedTranscript(
        document=json.dumps(body, ensure_ascii=False).encode("utf-8"),
        redactions=len(result.spans),
        audio=result.audio,
        # Each span placed in time yields exactly one audio span.
        audio_complete=len(result.audio) >= len(result.spans),
    )


def load_document(data: bytes) -> list[dict[str, object]]:
    """The turns of a stored transcript document, for display."""
    body = json.loads(data.decode("utf-8"))
    turns = body.get("turns", []) if isinstance(body, dict) else []
    return [t for t in turns if isinstance(t, dict)]
