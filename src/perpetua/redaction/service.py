"""The calls the rest of Perpetua makes before storing any text a caller produced.

`redact_text` serves the CLI and plain transcripts, `redact_turns` serves transcripts
with speakers and word timings (and says which audio to silence), and
`ensure_no_card_number` guards free-text fields. None of them logs, stores or returns
the digits they find.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence

from perpetua.redaction.engine import Hit, Layout, find_hits
from perpetua.redaction.errors import CardNumberInText
from perpetua.redaction.models import (
    AudioSpan,
    Redaction,
    Span,
    SpanKind,
    TranscriptRedaction,
    Turn,
    TurnSpan,
    Word,
)


class TranscriptFormatError(ValueError):
    """The JSON transcript does not have the shape `turns_from_json` reads."""


def _replace(text: str, hits: Iterable[Hit], offset: int = 0) -> str:
    parts: list[str] = []
    cursor = 0
    for hit in hits:
        start, end = hit.start - offset, hit.end - offset
        parts.append(text[cursor:start])
        parts.append(hit.kind.marker)
        cursor = end
    parts.append(text[cursor:])
    return "".join(parts)


def redact_text(text: str) -> Redaction:
    """Replace every card number and security code in `text` with a marker.

    Lines opening with a speaker label ("Caller: ...") are read as turns, so a card
    number the caller spreads over several turns is still found.
    """
    hits = find_hits(text)
    if not hits:
        return Redaction(text=text, spans=())
    spans = tuple(Span(hit.start, hit.end, hit.kind) for hit in hits)
    return Redaction(text=_replace(text, hits), spans=spans)


def contains_card_number(text: str) -> bool:
    """True when `text` holds a payment card number (security codes do not count)."""
    return any(hit.kind is SpanKind.CARD_NUMBER for hit in find_hits(text))


def ensure_no_card_number(text: str) -> None:
    """Raise `CardNumberInText` when a free-text field holds a card number."""
    spans = tuple(
        Span(hit.start, hit.end, hit.kind)
        for hit in find_hits(text)
        if hit.kind is SpanKind.CARD_NUMBER
    )
    if spans:
        raise CardNumberInText(spans)


def _locate_words(text: str, words: Sequence[Word]) -> list[tuple[int, int] | None]:
    # Timings arrive per word; find each word in the turn text in order so that a
    # character span can be turned into the seconds to silence.
    located: list[tuple[int, int] | None] = []
    cursor = 0
    for word in words:
        token = word.text.strip()
        found = text.find(token, cursor) if token else -1
        if found < 0:
            located.append(None)
            continue
        located.append((found, found + len(token)))
        cursor = found + len(token)
    return located


def _redact_words(
    turn: Turn, spans: list[TurnSpan]
) -> tuple[tuple[Word, ...], list[AudioSpan]]:
    located = _locate_words(turn.text, turn.words)
    audio: list[AudioSpan] = []
    markers: dict[int, Word] = {}
    dropped: set[int] = set()
    for span in spans:
        inside = [
            index
            for index, place in enumerate(located)
            if place is not None and place[0] < span.end and place[1] > span.start
        ]
        if not inside:
            continue
        start = min(turn.words[index].start for index in inside)
        end = max(turn.words[index].end for index in inside)
        audio.append(AudioSpan(start, end, span.kind))
        # One marker word stands for all the words of the span, with their timing.
        markers[inside[0]] = Word(span.kind.marker, start, end)
        dropped.update(inside[1:])

    words: list[Word] = []
    for index, word in enumerate(turn.words):
        if index in markers:
            words.append(markers[index])
        elif index not in dropped:
            words.append(word)
    return tuple(words), audio


def redact_turns(turns: Sequence[Turn]) -> TranscriptRedaction:
    """Redact a transcript given as speaker turns, with audio spans when timed."""
    texts = [turn.text for turn in turns]
    starts: list[int] = []
    cursor = 0
    for text in texts:
        starts.append(cursor)
        cursor += len(text) + 1
    joined = "\n".join(texts)
    speakers = [
        turn.speaker.strip().lower() if turn.speaker else None for turn in turns
    ]
    hits = find_hits(joined, Layout(joined, starts, speakers))

    per_turn: list[list[TurnSpan]] = [[] for _ in turns]
    for hit in hits:
        # Hits never cross a line, and every turn is at least one line.
        index = bisect_right(starts, hit.start) - 1
        base = starts[index]
        per_turn[index].append(
            TurnSpan(index, hit.start - base, hit.end - base, hit.kind)
        )

    redacted: list[Turn] = []
    audio: list[AudioSpan] = []
    for turn, spans in zip(turns, per_turn, strict=True):
        if not spans:
            redacted.append(turn)
            continue
        text = _replace(
            turn.text, (Hit(span.start, span.end, span.kind) for span in spans)
        )
        words, silenced = _redact_words(turn, spans)
        audio.extend(silenced)
        redacted.append(Turn(turn.speaker, text, words))

    return TranscriptRedaction(
        turns=tuple(redacted),
        spans=tuple(span for spans in per_turn for span in spans),
        audio=tuple(sorted(audio, key=lambda span: span.start)),
    )


def _word(raw: object) -> Word:
    if not isinstance(raw, Mapping):
        raise TranscriptFormatError("each word must be an object")
    text = raw.get("text", raw.get("word"))
    start, end = raw.get("start"), raw.get("end")
    if not isinstance(text, str):
        raise TranscriptFormatError("each word needs a text")
    if not isinstance(start, int | float) or not isinstance(end, int | float):
        raise TranscriptFormatError("each word needs numeric start and end seconds")
    return Word(text, float(start), float(end))


def turns_from_json(document: object) -> list[Turn]:
    """Read turns from an already-parsed JSON transcript.

    Accepts a list of turns or an object with a "turns" (or "segments") list; each
    turn has "speaker", "text" and optionally "words" with "text"/"word", "start"
    and "end" in seconds. A turn with words but no text gets its words joined.
    """
    if isinstance(document, Mapping):
        document = document.get("turns", document.get("segments"))
    if not isinstance(document, list):
        raise TranscriptFormatError("expected a list of turns")
    turns: list[Turn] = []
    for raw in document:
        if not isinstance(raw, Mapping):
            raise TranscriptFormatError("each turn must be an object")
        speaker = raw.get("speaker")
        if speaker is not None and not isinstance(speaker, str):
            raise TranscriptFormatError("a speaker must be a string")
        raw_words = raw.get("words") or []
        if not isinstance(raw_words, list):
            raise TranscriptFormatError("words must be a list")
        words = tuple(_word(item) for item in raw_words)
        text = raw.get("text")
        if text is None:
            text = " ".join(word.text.strip() for word in words)
        if not isinstance(text, str):
            raise TranscriptFormatError("a turn text must be a string")
        turns.append(Turn(speaker, text, words))
    return turns
