"""Finding card numbers and security codes in transcript text, fast and fail-closed.

The engine works in three passes so that megabytes of ordinary conversation cost
little:

1. A pre-filter scans a normalised copy of the text for stretches of digits and
   number words. Stretches too short to hold a card are kept only when they sit at
   the edge of a line (a card split across turns) or near a security-code word.
2. Each kept stretch is read precisely into pieces of digits (see `spoken`).
3. Pieces of one speaker are chained across turns, every run of consecutive pieces
   that is 13-19 digits, passes Luhn and looks like a card is marked, then short
   numbers asked for as a security code, and read-backs of a found card, are marked.

Whenever a rule is unsure, it redacts: a missed card number is stored PHI-adjacent
payment data, an extra marker costs a reader a few digits.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate, pairwise
from typing import Final

from perpetua.redaction.cards import (
    MAX_LENGTH,
    MIN_LENGTH,
    has_card_issuer_prefix,
    luhn_valid,
)
from perpetua.redaction.lexicon import (
    CONTEXT,
    DIGIT_BOUND,
    FILLERS,
    IDENTIFIER,
    LOWER,
    NORMALISE,
    NUMBER_OR_WORD,
    NUMBER_WORDS,
    PREFILTER,
    PREFILTER_LINE_START,
    SECURITY_STEMS,
    SPEAKER_LINE,
    SPEAKER_NUMBER,
    TOPIC_CHANGE,
)
from perpetua.redaction.models import SpanKind
from perpetua.redaction.spoken import Piece, read_pieces

# How far (in characters) the engine looks for the other half of a card split
# across turns, and for the question that made a short number a security code.
_JOIN_REACH: Final = 300
_SECURITY_REACH: Final = 200
# Words allowed after a number at the end of a turn ("..., okay?") and before one at
# the start of the next ("and then ...") for the two to be read as one number.
_MAX_TAIL_WORDS: Final = 3
_MAX_HEAD_WORDS: Final = 4
_MAX_LINES_BETWEEN: Final = 6
# Cheap character bounds used by the pre-filter before the word counts above.
_EDGE_TAIL: Final = 12
_EDGE_HEAD: Final = 32
# The longest speaker label whose digits are kept out of numbers ("Speaker 12: ").
_LABEL_REACH: Final = 40


@dataclass(frozen=True, slots=True)
class Hit:
    """A character range of the scanned text that holds card data."""

    start: int
    end: int
    kind: SpanKind


@dataclass(slots=True)
class _Segment:
    pieces: list[Piece]
    start: int
    end: int


class Layout:
    """Where lines begin and end, and who is speaking on each line.

    Plain text names speakers with line labels ("Caller: ..."); a list of turns
    names them explicitly, joined one turn per line.
    """

    def __init__(
        self,
        text: str,
        turn_starts: list[int] | None = None,
        turn_speakers: list[str | None] | None = None,
    ) -> None:
        self.text = text
        self._turn_starts = turn_starts
        self._turn_speakers = turn_speakers
        self._speakers: dict[int, str | None] = {}
        self._labels: dict[str, bool] = {}

    def line_start(self, pos: int) -> int:
        return self.text.rfind("\n", 0, pos) + 1

    def line_end(self, pos: int) -> int:
        end = self.text.find("\n", pos)
        return len(self.text) if end < 0 else end

    def label_end(self, line_start: int) -> int:
        """Where the words of a line begin, after any speaker label."""
        if self._turn_starts is not None:
            return line_start
        match = SPEAKER_LINE.match(self.text, line_start)
        return match.end() if match else line_start

    def outside_labels(self, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """The pre-filter stretches with the digits of numbered speaker labels cut off.

        In "Speaker 2: 4242 ..." the label's 2 would otherwise open the caller's
        number, and in a card split over that speaker's turns it lands between two
        halves of the card, which then fail the Luhn check together.
        """
        if self._turn_starts is not None:
            return spans
        text = self.text
        find = text.find
        rfind = text.rfind
        kept: list[tuple[int, int]] = []
        for start, end in spans:
            # A label's digits are followed by its colon, at most one character after
            # the stretch when nothing follows on the line; most stretches have none.
            # A time ("10:30") has a digit after its colon, a label a space.
            colon = find(":", start, end + 1)
            if colon < 0 or not text.startswith((" ", "\t", "\n"), colon + 1):
                kept.append((start, end))
                continue
            line = rfind("\n", max(0, start - _LABEL_REACH), start) + 1
            if line == 0 and start > _LABEL_REACH:
                kept.append((start, end))
                continue
            label = SPEAKER_NUMBER.match(text, line)
            if label is None or label.end() <= start or not self._is_speaker(label):
                kept.append((start, end))
                continue
            words = label.end()
            while words < end and text[words] in " \t":
                words += 1
            if words < end:
                kept.append((words, end))
        return kept

    def _is_speaker(self, label: re.Match[str]) -> bool:
        """Whether a numbered label names a speaker, whose number is then no digits.

        The label must open at least two lines, as a speaker's turns do, and its
        words must not be number, filler or context words: "it's 4: ..." or "Card
        41: ..." once at the start of a line may open a card, and keep their digits.
        A card said in one turn is found with or without the label's digit.
        """
        key = label[0].strip()
        found = self._labels.get(key)
        if found is None:
            name = label[1].lower()
            found = self._labels[key] = (
                self.text.count(key) >= 2
                and CONTEXT.search(name) is None
                and not any(w in NUMBER_WORDS or w in FILLERS for w in name.split())
            )
        return found

    def speaker(self, pos: int) -> str | None:
        if self._turn_starts is not None and self._turn_speakers is not None:
            turn = bisect_right(self._turn_starts, pos) - 1
            return self._turn_speakers[turn]

        line = self.line_start(pos)
        if line in self._speakers:
            return self._speakers[line]
        found: str | None = None
        probe = line
        # An unlabelled line continues the turn above it; stop looking after a while
        # so that one huge unlabelled document stays linear.
        for _ in range(50):
            match = SPEAKER_LINE.match(self.text, probe)
            if match:
                found = match.group(1).strip().lower()
                break
            if probe == 0:
                break
            probe = self.line_start(probe - 1)
        self._speakers[line] = found
        return found


def _normalise(text: str) -> tuple[str, str]:
    """The lower-cased copy and the pre-filter copy (with one leading space).

    Every non-ASCII code point becomes exactly one "?", so offsets carry over
    unchanged; the digits and number words the engine reads are all ASCII.
    """
    raw = text.encode("ascii", "replace")
    low = raw.translate(LOWER).decode("ascii")
    norm = b" " + raw.translate(NORMALISE)
    return low, norm.decode("ascii")


def _is_back_cue(norm: str, found: int) -> bool:
    """Whether "back" at `found` may be part of "on the back" or "back of the card".

    "Call me back" is said in most calls and would send every phone number after it
    to the precise reading. Only a word that is certainly neither "the" before nor
    "of" after rules the cue out; too little text to tell keeps it.
    """
    before = norm[max(0, found - 64) : found].split()
    if len(before) < 2 or before[-1] == "the":
        return True
    after = norm[found + 4 : found + 64].split()
    return len(after) < 2 or after[0] == "of"


def _security_cues(norm: str) -> list[int]:
    positions: list[int] = []
    for stem in SECURITY_STEMS:
        found = norm.find(stem)
        while found >= 0:
            if stem != "back" or _is_back_cue(norm, found):
                positions.append(found - 1)
            found = norm.find(stem, found + 1)
    positions.sort()
    return positions


def stretches(norm: str, start: int = 0, end: int = -1) -> list[tuple[int, int]]:
    """Pre-filter stretches of norm[start:end] as (start, end) offsets of the text.

    norm[i + 1] is text[i], and every match opens with the character before its
    first token, so the match start is the text offset of that token.
    """
    stop = len(norm) if end < 0 else end
    found = [(m.start(), m.end() - 1) for m in PREFILTER.finditer(norm, start, stop)]
    opening = [
        (m.start(), m.end() - 1)
        for m in PREFILTER_LINE_START.finditer(norm, start, stop)
    ]
    if not opening:
        return found

    # A stretch opening a line may hold later tokens that the space-led pattern
    # found again on their own; the longer, line-led stretch wins.
    merged: list[tuple[int, int]] = []
    for span in sorted(found + opening, key=lambda item: (item[0], -item[1])):
        if merged and span[0] < merged[-1][1]:
            continue
        merged.append(span)
    return merged


def digit_bound(low: str, start: int, end: int) -> int:
    """The most digits the precise reading can find in low[start:end].

    Read with the precise tokens, so that amounts, times and dates ("$25.00",
    "10:30", "12/26"), which end a number and give no digits, count for nothing.
    """
    # A number token with a sign or separator ("$25", "10:30") is not all digits
    # and, like any word that is no number word, counts for nothing.
    tokens = NUMBER_OR_WORD.findall(low, start, end)
    # Most stretches are digit groups alone ("415 555 0134"): one test covers them.
    digits = "".join(tokens)
    if digits.isdigit():
        return len(digits)
    words = DIGIT_BOUND
    return sum(
        len(token) if token.isdigit() else words.get(token, 0) for token in tokens
    )


def _regions(
    text: str,
    spans: list[tuple[int, int]],
    cues: list[int],
    bound: Callable[[int, int], int],
) -> list[tuple[int, int]]:
    """Stretches of the text that deserve the precise reading, in order.

    `spans` are the pre-filter stretches of the text and `bound(start, end)` gives
    the most digits a stretch can hold (see `digit_bound`).
    """
    keep: list[tuple[int, int]] = []
    # Short stretches matter only together: a number ending one line and numbers
    # opening the next lines of the same speaker label may be one card split across
    # turns. Such stretches at a line edge are grouped by label as (start, end,
    # ends a line); a group is kept only when its digits could add up to a card. A
    # stretch that could be a card on its own is kept anyway, so lone edges are
    # dropped.
    groups: dict[str, list[tuple[int, int, bool]]] = {}

    def flush(group: list[tuple[int, int, bool]]) -> None:
        # Every token stands for at most as many digits as it has characters, so
        # the length of the stretches rules out most groups before any reading.
        chars = 0
        for start, end, _ in group:
            chars += end - start
        if chars < MIN_LENGTH:
            return
        digits = 0
        for start, end, _ in group:
            digits += bound(start, end)
        if digits >= MIN_LENGTH:
            keep.extend((start, end) for start, end, _ in group)

    length = len(text)
    find = text.find
    rfind = text.rfind
    # Cues and stretches both come in order: walk the cues alongside, with one cue
    # past the end of the text so that the walk needs no bounds test.
    cue_list = [*cues, length + _SECURITY_REACH + 1]
    cue_index = 0
    cue = cue_list[0]

    # This loop runs for every date, time, amount and phone number of the text, so
    # each test is one C call, most expensive last, and no stretch is read here.
    for start, end in spans:
        kept = False
        if end - start >= MIN_LENGTH:
            digits = text[start:end]
            if digits.isdigit():
                # One solid group of digits is a whole number as written: a claim or
                # account number that fails the card test needs no precise reading.
                kept = len(digits) <= MAX_LENGTH and luhn_valid(digits)
            else:
                kept = bound(start, end) >= MIN_LENGTH
            if kept:
                keep.append((start, end))
        if not kept and cue < start:
            while cue < start - _SECURITY_REACH:
                cue_index += 1
                cue = cue_list[cue_index]
            if cue < start and bound(start, end) >= 3:
                keep.append((start, end))

        # Both searches are bounded, so a long line costs no more than a short one;
        # the newline found before the stretch also gives the start of its line.
        ends_line = (
            length - end <= _EDGE_TAIL or find("\n", end, end + _EDGE_TAIL + 1) >= 0
        )
        if start <= _EDGE_HEAD:
            opens_line = True
            newline = rfind("\n", 0, start)
        else:
            newline = rfind("\n", start - _EDGE_HEAD - 1, start)
            opens_line = newline >= 0
            if not opens_line:
                if not ends_line:
                    continue
                newline = rfind("\n", 0, start - _EDGE_HEAD - 1)
        colon = find(":", newline + 1, min(newline + 34, start))
        label = text[newline + 1 : colon] if colon >= 0 else ""
        group = groups.get(label)
        if group is None:
            groups[label] = [(start, end, ends_line)]
            continue
        last = group[-1]
        if opens_line and last[2] and start - last[1] <= _JOIN_REACH:
            group.append((start, end, ends_line))
            continue
        # A lone stretch at a line edge is no card: only groups are weighed.
        if len(group) > 1:
            flush(group)
        groups[label] = [(start, end, ends_line)]

    for group in groups.values():
        if len(group) > 1:
            flush(group)
    return sorted(set(keep))


def _segments(low: str, start: int, end: int) -> list[_Segment]:
    return [
        _Segment(pieces, pieces[0].start, pieces[-1].end)
        for pieces in read_pieces(low, start, end)
    ]


class _Scan:
    """One pass of the precise rules over the kept stretches of one text."""

    def __init__(self, text: str, layout: Layout) -> None:
        self.text = text
        self.layout = layout
        self.low, self.norm = _normalise(text)
        self.cues = _security_cues(self.norm)
        self.marks: dict[tuple[int, int], SpanKind] = {}
        self.cards: list[tuple[str, int, int]] = []
        self.segments: list[_Segment] = []
        # The pre-filter runs once per text; read-backs look the stretches up again
        # instead of scanning, and every stretch is bounded and read at most once.
        self.spans = layout.outside_labels(stretches(self.norm))
        self._bounds: dict[tuple[int, int], int] = {}
        self._read: dict[tuple[int, int], list[_Segment]] = {}

    def bound(self, start: int, end: int) -> int:
        key = (start, end)
        found = self._bounds.get(key)
        if found is None:
            found = self._bounds[key] = digit_bound(self.low, start, end)
        return found

    def read(self, start: int, end: int) -> tuple[list[_Segment], bool]:
        """The segments of one stretch, and whether it was read before."""
        key = (start, end)
        found = self._read.get(key)
        if found is not None:
            return found, True
        found = self._read[key] = _segments(self.low, start, end)
        return found, False

    def mark(self, pieces: list[Piece], kind: SpanKind) -> None:
        for piece in pieces:
            key = (piece.start, piece.end)
            if self.marks.get(key) is not SpanKind.CARD_NUMBER:
                self.marks[key] = kind

    def is_marked(self, piece: Piece) -> bool:
        return (piece.start, piece.end) in self.marks

    # -- turns ------------------------------------------------------------------

    def is_turn_end(self, segment: _Segment) -> bool:
        line_end = self.layout.line_end(segment.end)
        tail = self.norm[segment.end + 1 : line_end + 1]
        return len(tail.split()) <= _MAX_TAIL_WORDS and not IDENTIFIER.search(tail)

    def is_turn_start(self, segment: _Segment) -> bool:
        line = self.layout.line_start(segment.start)
        head = self.text[self.layout.label_end(line) : segment.start]
        return len(head.split()) <= _MAX_HEAD_WORDS

    def near(self, before: _Segment, after: _Segment, speaker: str | None) -> bool:
        """Whether `after` is few enough lines after `before` to continue it."""
        lines = self.text.count("\n", before.end, after.start)
        if lines == 0 or lines > _MAX_LINES_BETWEEN:
            return False
        return speaker is not None or lines == 1

    def turns_meet(self, before: _Segment, after: _Segment) -> bool:
        """Whether `before` ends a turn and `after`, near it, opens one on the topic."""
        if not self.is_turn_end(before) or not self.is_turn_start(after):
            return False
        # A question about another number in between ("and your member ID?", "and
        # the security code?") means the next digits answer it, not the card.
        return TOPIC_CHANGE.search(self.norm, before.end + 1, after.start + 1) is None

    def chains(self) -> list[list[_Segment]]:
        """Each speaker's numbers joined across turns, where a card could be.

        Whether a number continues the speaker's previous one depends on that pair
        alone. So the numbers are first cut into runs where they are too many lines
        apart, which costs one count; a run with fewer digits than a card holds no
        card in any part, and only the other runs are cut by the turn rules, which
        read the words around each number.
        """
        runs: list[list[_Segment]] = []
        # The run holding each speaker's latest number, which the next number of
        # that speaker may continue.
        latest: dict[str | None, list[_Segment]] = {}
        for segment in self.segments:
            speaker = self.layout.speaker(segment.start)
            run = latest.get(speaker)
            if run is not None and self.near(run[-1], segment, speaker):
                run.append(segment)
            else:
                run = [segment]
                runs.append(run)
            latest[speaker] = run

        chains: list[list[_Segment]] = []
        for run in runs:
            digits = sum(len(piece.digits) for seg in run for piece in seg.pieces)
            if digits < MIN_LENGTH:
                continue
            chain = [run[0]]
            chains.append(chain)
            for before, after in pairwise(run):
                if self.turns_meet(before, after):
                    chain.append(after)
                else:
                    chain = [after]
                    chains.append(chain)
        # Runs of several speakers interleave; rules run in the order of the text.
        chains.sort(key=lambda chain: chain[0].start)
        return chains

    # -- context ----------------------------------------------------------------

    def card_context(self, pos: int) -> tuple[bool, bool]:
        """(suppressed, said_to_be_a_card) for a number starting at `pos`.

        The nearest context word decides: "claim number 4111..." is a claim number,
        "the Visa, not the claim, is 4111..." is a card.
        """
        layout = self.layout
        line = layout.line_start(pos)
        near_start = max(line, pos - 80)
        head = self.text[layout.label_end(line) : pos]
        if line > 0 and len(head.split()) <= _MAX_HEAD_WORDS:
            # An answer at the start of a turn is labelled by the question before it.
            near_start = max(layout.line_start(line - 1), pos - 200)
        nearest: str | None = None
        for match in CONTEXT.finditer(self.norm, near_start + 1, pos + 1):
            if match.lastgroup != "other":
                nearest = match.lastgroup
        # Limitation: a real card read out in answer to "what is the claim number?"
        # is taken for the claim number; the label is trusted over the digits.
        if nearest == "identifier":
            return True, False
        said = nearest in ("payment", "security")
        if not said:
            for match in CONTEXT.finditer(self.norm, max(0, pos - 300) + 1, pos + 1):
                if match.lastgroup in ("payment", "security"):
                    said = True
                    break
        return False, said

    def window_context(
        self,
        chain: list[_Segment],
        part: int,
        contexts: dict[int, tuple[bool, bool]],
    ) -> tuple[bool, bool]:
        """(suppressed, said_to_be_a_card) for a card window opening in chain[part].

        A window opening in a later turn is a number that turn began; said alone,
        it would be judged by the words before it. So an identifier word before the
        chain's first part ("my member ID is 12345" ... "what card?" ... "4242
        ...") cannot suppress it on its own: it is left alone only when the words
        before its own part suppress it too, and a payment word before either part
        makes it a card.
        """
        found = contexts.get(part)
        if found is not None:
            return found
        found = self.card_context(chain[part].start)
        if part > 0:
            chain_suppressed, chain_said = self.window_context(chain, 0, contexts)
            found = (found[0] and chain_suppressed, found[1] or chain_said)
        contexts[part] = found
        return found

    def asked_for_security_code(self, pos: int) -> bool:
        layout = self.layout
        start = layout.line_start(pos)
        for _ in range(2):
            if start == 0:
                break
            start = layout.line_start(start - 1)
        start = max(start, pos - _SECURITY_REACH)
        nearest: str | None = None
        for match in CONTEXT.finditer(self.norm, start + 1, pos + 1):
            # Card words do not end the question: "the code on the back of the card".
            if match.lastgroup != "payment":
                nearest = match.lastgroup
        return nearest == "security"

    # -- rules ------------------------------------------------------------------

    def find_cards(self, chain: list[_Segment]) -> None:
        pieces = [piece for segment in chain for piece in segment.pieces]
        # ends[i] is how many digits pieces[0..i] hold; any run of pieces is then a
        # slice of all the digits, found without joining strings again.
        ends = list(accumulate(len(piece.digits) for piece in pieces))
        if ends[-1] < MIN_LENGTH:
            return
        joined = "".join(piece.digits for piece in pieces)
        # parts[k] is the index of the first piece of chain[k]; a window is judged by
        # the context of the part it opens in (see `window_context`).
        parts: list[int] | None = None
        contexts: dict[int, tuple[bool, bool]] = {}

        # Every window that is a card is marked, and overlapping windows merge: a
        # stray digit before a card costs one extra redacted digit, never a leak.
        last = -1
        begin = 0
        for first in range(len(pieces)):
            # The windows opening at `first` that are long enough for a card.
            index = max(first, bisect_left(ends, begin + MIN_LENGTH))
            while index < len(ends) and ends[index] - begin <= MAX_LENGTH:
                digits = joined[begin : ends[index]]
                if luhn_valid(digits):
                    # Context is read only for Luhn-valid windows: most long numbers
                    # in a front office (claims, member IDs) fail Luhn.
                    if parts is None:
                        parts = list(
                            accumulate((len(s.pieces) for s in chain[:-1]), initial=0)
                        )
                    part = bisect_right(parts, first) - 1
                    suppressed, said = self.window_context(chain, part, contexts)
                    if not suppressed and (said or has_card_issuer_prefix(digits)):
                        window = pieces[first : index + 1]
                        self.mark(window, SpanKind.CARD_NUMBER)
                        self.cards.append((digits, window[0].start, window[-1].end))
                        last = max(last, index)
                index += 1
            begin = ends[first]
        if last < 0:
            return

        # Three or four digits straight after a card, in the same breath, are taken
        # for its security code (or expiry): "4242 ... 4242 737".
        tail: list[Piece] = []
        count = 0
        line_end = self.layout.line_end(pieces[last].end)
        for piece in pieces[last + 1 :]:
            if piece.start > line_end or count >= 3:
                break
            tail.append(piece)
            count += len(piece.digits)
        if 3 <= count <= 4:
            self.mark(tail, SpanKind.SECURITY_CODE)

    def find_security_codes(self) -> None:
        """Marks short numbers given in answer to a question for the security code."""
        # Only numbers shortly after a security-code word can be one, so the
        # numbers are looked up from the words instead of testing every number.
        starts = [segment.start for segment in self.segments]
        candidates: set[int] = set()
        for cue in self.cues:
            first = bisect_right(starts, cue)
            last = bisect_right(starts, cue + _SECURITY_REACH)
            candidates.update(range(first, last))
        for index in sorted(candidates):
            segment = self.segments[index]
            if any(self.is_marked(piece) for piece in segment.pieces):
                continue
            count = sum(len(piece.digits) for piece in segment.pieces)
            if 3 <= count <= 4 and self.asked_for_security_code(segment.start):
                self.mark(segment.pieces, SpanKind.SECURITY_CODE)

    def find_read_backs(self) -> list[_Segment]:
        """Parts of a found card repeated nearby, such as an agent reading it back."""
        extra: list[_Segment] = []
        layout = self.layout
        for digits, start, end in self.cards:
            region_start = layout.line_start(start)
            for _ in range(2):
                if region_start > 0:
                    region_start = layout.line_start(region_start - 1)
            region_end = layout.line_end(end)
            for _ in range(3):
                if region_end < len(self.text):
                    region_end = layout.line_end(region_end + 1)
            # Stretches never cross a line, so those of the region are a run of the
            # text's stretches.
            index = bisect_left(self.spans, (region_start, -1))
            while index < len(self.spans) and self.spans[index][0] <= region_end:
                first, last = self.spans[index]
                index += 1
                # A read-back is four or more digits: shorter stretches need no look.
                if self.bound(first, last) < 4:
                    continue
                segments, seen = self.read(first, last)
                for segment in segments:
                    if not seen:
                        extra.append(segment)
                    self.mark_substrings(segment.pieces, digits)
        return extra

    def mark_substrings(self, pieces: list[Piece], card: str) -> None:
        first = 0
        while first < len(pieces):
            digits = ""
            best = -1
            for index in range(first, len(pieces)):
                if self.is_marked(pieces[index]):
                    break
                digits += pieces[index].digits
                if digits not in card:
                    break
                if len(digits) >= 4:
                    best = index
            if best >= 0:
                self.mark(pieces[first : best + 1], SpanKind.CARD_NUMBER)
                first = best + 1
            else:
                first += 1

    def hits(self, segments: list[_Segment]) -> list[Hit]:
        hits: list[Hit] = []
        for segment in segments:
            current: Hit | None = None
            for piece in segment.pieces:
                kind = self.marks.get((piece.start, piece.end))
                if kind is None:
                    current = None
                    continue
                if current is not None and current.kind is kind:
                    current = Hit(current.start, piece.end, kind)
                    hits[-1] = current
                else:
                    current = Hit(piece.start, piece.end, kind)
                    hits.append(current)
        return _merge(hits)

    def run(self) -> list[Hit]:
        for start, end in _regions(self.text, self.spans, self.cues, self.bound):
            self.segments.extend(self.read(start, end)[0])
        if not self.segments:
            return []

        for chain in self.chains():
            self.find_cards(chain)
        if self.cues:
            self.find_security_codes()
        extra = self.find_read_backs() if self.cards else []
        if not self.marks:
            return []
        return self.hits(self.segments + extra)


def _merge(hits: list[Hit]) -> list[Hit]:
    merged: list[Hit] = []
    for hit in sorted(hits, key=lambda h: (h.start, h.end)):
        if merged and hit.start < merged[-1].end:
            previous = merged[-1]
            kind = (
                SpanKind.CARD_NUMBER
                if SpanKind.CARD_NUMBER in (previous.kind, hit.kind)
                else previous.kind
            )
            merged[-1] = Hit(previous.start, max(previous.end, hit.end), kind)
        else:
            merged.append(hit)
    return merged


def find_hits(text: str, layout: Layout | None = None) -> list[Hit]:
    """Every range of `text` holding a card number or security code, in order."""
    if not text:
        return []
    return _Scan(text, layout or Layout(text)).run()
