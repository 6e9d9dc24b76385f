"""Value objects returned by the card-number redaction engine.

A span names where card data sat and what kind it was, never the value itself, so
spans can be printed, logged by count, or sent to an audio pipeline without carrying
the card number they point at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

CARD_MARKER = "[CARD REDACTED]"
SECURITY_CODE_MARKER = "[SECURITY CODE REDACTED]"


class SpanKind(StrEnum):
    CARD_NUMBER = "card_number"
    SECURITY_CODE = "security_code"

    @property
    def marker(self) -> str:
        """The text that replaces a span of this kind."""
        if self is SpanKind.CARD_NUMBER:
            return CARD_MARKER
        return SECURITY_CODE_MARKER


@dataclass(frozen=True, slots=True)
class Span:
    """Half-open character range [start, end) of the input that held card data."""

    start: int
    end: int
    kind: SpanKind

    def as_dict(self) -> dict[str, object]:
        return {"start": self.start, "end": self.end, "kind": self.kind.value}


@dataclass(frozen=True, slots=True)
class Redaction:
    """Redacted text plus the spans of the original text that were replaced."""

    text: str
    spans: tuple[Span, ...]

    @property
    def found(self) -> bool:
        return bool(self.spans)

    def as_dict(self) -> dict[str, object]:
        return {"text": self.text, "spans": [span.as_dict() for span in self.spans]}


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word with its time in the audio, in seconds."""

    text: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Turn:
    """One speaker turn; `words` is empty when the transcript has no timings."""

    speaker: str | None
    text: str
    words: tuple[Word, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class TurnSpan:
    """A span inside turn number `turn` (0-based), offsets into that turn's text."""

    turn: int
    start: int
    end: int
    kind: SpanKind

    def as_dict(self) -> dict[str, object]:
        return {
            "turn": self.turn,
            "start": self.start,
            "end": self.end,
            "kind": self.kind.value,
        }


@dataclass(frozen=True, slots=True)
class AudioSpan:
    """A stretch of audio, in seconds, that must be silenced before it is stored."""

    start: float
    end: float
    kind: SpanKind

    def as_dict(self) -> dict[str, object]:
        return {"start": self.start, "end": self.end, "kind": self.kind.value}


@dataclass(frozen=True, slots=True)
class TranscriptRedaction:
    """Redacted turns, the spans replaced in each, and the audio to silence."""

    turns: tuple[Turn, ...]
    spans: tuple[TurnSpan, ...]
    audio: tuple[AudioSpan, ...]

    @property
    def found(self) -> bool:
        return bool(self.spans)

    def as_dict(self) -> dict[str, object]:
        return {
            "turns": [
                {
                    "speaker": turn.speaker,
                    "text": turn.text,
                    "words": [
                        {"text": w.text, "start": w.start, "end": w.end}
                        for w in turn.words
                    ],
                }
                for turn in self.turns
            ],
            "spans": [span.as_dict() for span in self.spans],
            "audio": [span.as_dict() for span in self.audio],
        }
