"""Reading a run of digits and English number words as the digits a caller meant.

Callers and speech-to-text engines say the same card number many ways: "4242",
"four two four two", "forty two forty two", "double four", "oh" for zero. This module
turns one run of such tokens into pieces, each a digit string with the character
range it came from, so that the engine can test any consecutive pieces as a card.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

from perpetua.redaction.lexicon import (
    FILLERS,
    NUMBER_WORDS,
    REPEATS,
    SCALES,
    SOUND_ALIKES,
    TEENS,
    TENS,
    TOKEN,
    UNITS,
)

_ZERO_WORDS: Final = frozenset({"zero", "oh", "o", "nought"})
# Characters the tokens of the precise reading skip without ending a number.
_DIGIT_GROUPS: Final = re.compile(r"[0-9]+(?:[ \t\r\-()\"]+[0-9]+)*")
_DIGIT_RUN: Final = re.compile(r"[0-9]+")
_UNIT_DIGITS: Final = {word: str(value) for word, value in UNITS.items()}


class Piece(NamedTuple):
    """Digits said as one unit ("42" for "forty two") and where they were said."""

    digits: str
    start: int
    end: int


# One number token of a run, as a plain tuple because runs are read by the thousand:
# (word or digit string, is a digit string, start, end, pause before it, "and"
# before it). A pause is a comma, full stop or filler: "forty, two" is 40 then 2.
_Token = tuple[str, bool, int, int, bool, bool]
_WORD: Final = 0
_IS_DIGITS: Final = 1
_START: Final = 2
_END: Final = 3
_PAUSE: Final = 4
_AND: Final = 5


def _chunks(low: str, start: int, end: int) -> list[list[_Token]]:
    """Number tokens of low[start:end], cut wherever a word or symbol ends a run."""
    chunks: list[list[_Token]] = []
    current: list[_Token] = []
    pause = False
    joined_by_and = False
    for match in TOKEN.finditer(low, start, end):
        kind = match.lastgroup
        if kind == "mark":
            pause = True
            continue
        value = match[0]
        if kind == "word":
            if value in FILLERS:
                if value == "and":
                    joined_by_and = True
                else:
                    pause = True
                continue
            if value in NUMBER_WORDS:
                current.append(
                    (value, False, match.start(), match.end(), pause, joined_by_and)
                )
                pause = joined_by_and = False
                continue
        elif kind == "number" and value.isdigit():
            current.append(
                (value, True, match.start(), match.end(), pause, joined_by_and)
            )
            pause = joined_by_and = False
            continue
        # An amount, a time, a real word or a symbol: the number has ended.
        if current:
            chunks.append(current)
            current = []
        pause = joined_by_and = False
    if current:
        chunks.append(current)
    return chunks


def _is_single_digit(token: _Token) -> bool:
    if token[_IS_DIGITS]:
        return len(token[_WORD]) == 1
    return token[_WORD] in UNITS


def _digit_of(token: _Token) -> str:
    return token[_WORD] if token[_IS_DIGITS] else str(UNITS[token[_WORD]])


class _Reader:
    """Walks the tokens of one run once, left to right, emitting pieces."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.segments: list[list[Piece]] = [[]]

    def word(self, index: int) -> str | None:
        if index >= len(self.tokens) or self.tokens[index][_IS_DIGITS]:
            return None
        return self.tokens[index][_WORD]

    def emit(self, digits: str, first: int, last: int) -> None:
        piece = Piece(digits, self.tokens[first][_START], self.tokens[last][_END])
        self.segments[-1].append(piece)

    def split(self) -> None:
        if self.segments[-1]:
            self.segments.append([])

    def below_hundred(self, index: int) -> tuple[int, int] | None:
        word = self.word(index)
        if word in TENS:
            value = TENS[word]
            unit = self.word(index + 1)
            # "forty two" is 42, but "forty, two" and "forty oh" are not.
            # Limitation: a caller who means 4-0-2 and says "forty two" without a
            # pause is read as 42; see docs/redaction.md.
            if (
                unit in UNITS
                and unit not in _ZERO_WORDS
                and not self.tokens[index + 1][_PAUSE]
                and not self.tokens[index + 1][_AND]
            ):
                return value + UNITS[unit], index + 2
            return value, index + 1
        if word in TEENS:
            return TEENS[word], index + 1
        if word in UNITS:
            return UNITS[word], index + 1
        return None

    def quiet(self, index: int) -> bool:
        return index < len(self.tokens) and not self.tokens[index][_PAUSE]

    def hundreds(self, index: int) -> tuple[int, int] | None:
        first = self.below_hundred(index)
        if first is None:
            return None
        value, after = first
        if self.word(index) in _ZERO_WORDS:
            return value, after
        if self.word(after) == "hundred" and self.quiet(after):
            value *= 100
            after += 1
            if self.quiet(after):
                rest = self.below_hundred(after)
                if rest is not None:
                    value += rest[0]
                    after = rest[1]
        return value, after

    def compound(self, index: int) -> tuple[int, int] | None:
        first = self.hundreds(index)
        if first is None:
            return None
        value, after = first
        if self.word(after) == "thousand" and self.quiet(after) and value > 0:
            value *= 1000
            after += 1
            if self.quiet(after):
                rest = self.hundreds(after)
                if rest is not None:
                    value += rest[0]
                    after = rest[1]
        return value, after

    def read(self) -> list[list[Piece]]:
        tokens = self.tokens
        count = len(tokens)
        index = 0
        while index < count:
            word, is_digits, start, end, pause, _ = tokens[index]
            if is_digits:
                self.segments[-1].append(Piece(word, start, end))
                index += 1
                continue

            if word in UNITS and (
                index + 1 == count or tokens[index + 1][_WORD] not in SCALES
            ):
                # The common case, one digit said as a word, read without the
                # compound-number walk below (which would give the same digit).
                self.segments[-1].append(Piece(_UNIT_DIGITS[word], start, end))
                index += 1
                continue

            if word in SOUND_ALIKES:
                # Only a digit when sandwiched between digits: "four two for two".
                sandwiched = (
                    0 < index < count - 1
                    and _is_single_digit(tokens[index - 1])
                    and _is_single_digit(tokens[index + 1])
                    and not pause
                    and not tokens[index + 1][_PAUSE]
                )
                if sandwiched:
                    self.emit(str(SOUND_ALIKES[word]), index, index)
                else:
                    self.split()
                index += 1
                continue

            if word in REPEATS:
                nxt = index + 1
                if nxt < count and _is_single_digit(tokens[nxt]):
                    self.emit(_digit_of(tokens[nxt]) * REPEATS[word], index, nxt)
                    index += 2
                else:
                    index += 1
                continue

            if word in SCALES:
                # A scale word with no number before it ("hundred") carries no digits.
                index += 1
                continue

            parsed = self.compound(index)
            if parsed is None:
                self.split()
                index += 1
                continue
            value, after = parsed
            self.emit(str(value), index, after - 1)
            index = after
        return [segment for segment in self.segments if segment]


def read_pieces(low: str, start: int, end: int) -> list[list[Piece]]:
    """Pieces of the numbers in low[start:end], one list per uninterrupted number.

    `low` is the text with ASCII letters lower-cased and every other code point kept
    as one character, so offsets are those of the original text.
    """
    if _DIGIT_GROUPS.fullmatch(low, start, end):
        # Groups of digits with only spaces, dashes or brackets between them, the
        # commonest written number, are one run with one piece per group: the
        # token walk below would find exactly these.
        return [
            [
                Piece(match[0], match.start(), match.end())
                for match in _DIGIT_RUN.finditer(low, start, end)
            ]
        ]
    segments: list[list[Piece]] = []
    for chunk in _chunks(low, start, end):
        segments.extend(_Reader(chunk).read())
    return segments
