"""Ways a caller or a speech-to-text engine writes a card number, for the tests.

Shared by the corpus builder and the property tests, so that both exercise the same
spoken and written forms the redaction engine promises to find.
"""

from __future__ import annotations

import random

DIGIT_WORDS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
]
TEEN_WORDS = [
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
TENS_WORDS = [
    "_",
    "_",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "sixty",
    "seventy",
    "eighty",
    "ninety",
]


def luhn_complete(body: str) -> str:
    """Append the Luhn check digit to `body`."""
    total = 0
    for index, char in enumerate(reversed(body)):
        value = int(char)
        if index % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return body + str((10 - total % 10) % 10)


def random_card(rnd: random.Random, length: int | None = None) -> str:
    """A Luhn-valid number with a card network prefix."""
    length = length or rnd.choice([13, 15, 16, 16, 16, 17, 18, 19])
    prefix = rnd.choice(["4", "51", "55", "2221", "34", "37", "6011", "65", "35"])
    body = prefix + "".join(rnd.choice("0123456789") for _ in range(length - 1))
    return luhn_complete(body[: length - 1])


def groups_of(card: str) -> list[str]:
    if len(card) == 15:
        return [card[:4], card[4:10], card[10:]]
    return [card[i : i + 4] for i in range(0, len(card), 4)]


def digit_word(digit: str, rnd: random.Random) -> str:
    if digit == "0":
        return rnd.choice(["zero", "oh"])
    return DIGIT_WORDS[int(digit)]


def pair_words(pair: str, rnd: random.Random) -> str:
    """Two digits said as one number: "42" -> "forty two", "05" -> "oh five"."""
    if len(pair) == 1:
        return digit_word(pair, rnd)
    tens, unit = int(pair[0]), int(pair[1])
    if tens == 0:
        return f"{digit_word('0', rnd)} {digit_word(pair[1], rnd)}"
    if tens == 1:
        return TEEN_WORDS[unit]
    if unit == 0:
        # A pause after "forty" keeps the next digit from joining it.
        return TENS_WORDS[tens] + ","
    return f"{TENS_WORDS[tens]} {DIGIT_WORDS[unit]}"


def digits_words(group: str, rnd: random.Random, repeats: bool) -> str:
    words: list[str] = []
    index = 0
    while index < len(group):
        run = 1
        while index + run < len(group) and group[index + run] == group[index]:
            run += 1
        if repeats and run >= 2 and rnd.random() < 0.7:
            take = 3 if run >= 3 and rnd.random() < 0.5 else 2
            prefix = "triple" if take == 3 else "double"
            words.append(f"{prefix} {digit_word(group[index], rnd)}")
            index += take
            continue
        words.append(digit_word(group[index], rnd))
        index += 1
    return " ".join(words)


def render_group(group: str, style: str, rnd: random.Random) -> str:
    if style == "digits":
        return group
    if style == "words":
        return digits_words(group, rnd, repeats=False)
    if style == "repeats":
        return digits_words(group, rnd, repeats=True)
    if style == "pairs":
        return " ".join(
            pair_words(group[i : i + 2], rnd) for i in range(0, len(group), 2)
        )
    if style == "spaced":
        return " ".join(group)
    raise ValueError(style)


STYLES = ("digits", "words", "repeats", "pairs", "spaced")


def render(card: str, rnd: random.Random, style: str | None = None) -> str:
    """The card in one written or spoken form; style "mixed" varies per group."""
    style = style or rnd.choice([*STYLES, "mixed", "dashes", "solid"])
    groups = groups_of(card)
    if style == "solid":
        return card
    if style == "dashes":
        return "-".join(groups)
    if style == "digits":
        return " ".join(groups)
    joiner = rnd.choice([", ", " ", "... ", ", uh, "])
    parts = []
    for group in groups:
        group_style = rnd.choice(STYLES) if style == "mixed" else style
        parts.append(render_group(group, group_style, rnd))
    return joiner.join(parts).replace(",,", ",").rstrip(",")
