"""Reading a run of digits and English number words as the digits a caller meant.

Callers and speech-to-text engines say the same card number many ways: "4242",
"four two four two", "forty two forty two", "double four", "oh" for zero. This module
turns one run of such tokens into pieces, each a digit string with the character
range it came from, so that the engine can test any consecutive pieces as a card.
"""

from __future__ import annotations

from dataclasses import dataclass

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

_ZERO_WORDS = frozenset({"zero", "oh", "o", "nought"})


@dataclass(frozen=True, slots=True)
class Piece:
    """Digits said as one unit ("42" for "forty two") and where they were said."""

    digits: str
    start: int
    end: int


@dataclass(slots=True)
class _Token:
    word: str  # lower-case word, or the digit string itself
    is_digits: bool
    start: int
    end: int
    # A comma, full stop or filler before this token: "forty, two" is 40 then 2.
    pause: bool
    joined_by_and: bool


def _chunks(low: str, start: int, end: int) -> list[list[_Token]]:
    """Number tokens of low[start:end], cut wherever a word or symbol ends a run."""
    chunks: list[list[_Token]] = [[]]
    pause = False
    joined_by_and = False
    for match in TOKEN.finditer(low, start, end):
        kind = match.lastgroup
        value = match.group()
        if kind == "mark":
            pause = True
            continue
        if kind == "word" and value in FILLERS:
            if value == "and":
                joined_by_and = True
            else:
                pause = True
            continue
        is_digits = kind == "number" and value.isdigit()
        if is_digits or (kind == "word" and value in NUMBER_WORDS):
            token = _Token(
                value, is_digits, match.start(), match.end(), pause, joined_by_and
            )
            chunks[-1].append(token)
        elif chunks[-1]:
            # An amount, a time, a real word or a symbol: the number has ended.
            chunks.append([])
        pause = False
        joined_by_and = False
    return [chunk for chunk in chunks if chunk]


def _is_single_digit(token: _Token) -> bool:
    if token.is_digits:
        return len(token.word) == 1
    return token.word in UNITS


def _digit_of(token: _Token) -> str:
    return token.word if token.is_digits else str(UNITS[token.word])


class _Reader:
    """Walks the tokens of one run once, left to right, emitting pieces."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.segments: list[list[Piece]] = [[]]

    def word(self, index: int) -> str | None:
        if index >= len(self.tokens) or self.tokens[index].is_digits:
            return None
        return self.tokens[index].word

    def emit(self, digits: str, first: int, last: int) -> None:
        piece = Piece(digits, self.tokens[first].start, self.tokens[last].end)
        self.segments[-1].append(piece)

    def split(self) -> None:
        if self.segments[-1]:
            self.segments.append([])

    def below_hundred(self, index: int) -> tuple[int, int] | None:
        word = self.word(index)
        if word in TENS:
            value = TENS[word]
            unit = self.word(index + 1)
            follower = index + 1 < len(self.tokens) and self.tokens[index + 1]
            # "forty two" is 42, but "forty, two" and "forty oh" are not.
            # Limitation: a caller who means 4-0-2 and says "forty two" without a
            # pause is read as 42; see docs/redaction.md.
            if (
                follower
                and not follower.pause
                and not follower.joined_by_and
                and unit in UNITS
                and unit not in _ZERO_WORDS
            ):
                return value + UNITS[unit], index + 2
            return value, index + 1
        if word in TEENS:
            return TEENS[word], index + 1
        if word in UNITS:
            return UNITS[word], index + 1
        return None

    def quiet(self, index: int) -> bool:
        return index < len(self.tokens) and not self.tokens[index].pause

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
        index = 0
        while index < len(tokens):
            token = tokens[index]
            if token.is_digits:
                self.emit(token.word, index, index)
                index += 1
                continue

            word = token.word
            if word in SOUND_ALIKES:
                # Only a digit when sandwiched between digits: "four two for two".
                sandwiched = (
                    0 < index < len(tokens) - 1
                    and _is_single_digit(tokens[index - 1])
                    and _is_single_digit(tokens[index + 1])
                    and not token.pause
                    and not tokens[index + 1].pause
                )
                if sandwiched:
                    self.emit(str(SOUND_ALIKES[word]), index, index)
                else:
                    self.split()
                index += 1
                continue

            if word in REPEATS:
                nxt = index + 1
                if nxt < len(tokens) and _is_single_digit(tokens[nxt]):
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
    segments: list[list[Piece]] = []
    for chunk in _chunks(low, start, end):
        segments.extend(_Reader(chunk).read())
    return segments
