"""The shortcuts the engine takes for speed give the answers of the full reading.

The pre-filter runs once per text and read-backs look its stretches up again, line
edges are found with bounded searches, and digit groups skip the token walk. Each
test pins an edge where a shortcut could drift from the reading it replaces.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perpetua.redaction import CARD_MARKER, SECURITY_CODE_MARKER, SpanKind, redact_text
from perpetua.redaction.cards import luhn_valid
from perpetua.redaction.engine import _normalise, digit_bound, stretches
from perpetua.redaction.lexicon import DIGIT_BOUND, NUMBER_WORDS, SOUND_ALIKES, TOKEN
from perpetua.redaction.spoken import Piece, _chunks, _Reader, read_pieces


def _token_walk(low: str) -> list[list[Piece]]:
    segments: list[list[Piece]] = []
    for chunk in _chunks(low, 0, len(low)):
        segments.extend(_Reader(chunk).read())
    return segments


def _token_bound(low: str) -> int:
    bound = 0
    for match in TOKEN.finditer(low):
        if match.lastgroup == "number" and match.group().isdigit():
            bound += len(match.group())
        elif match.lastgroup == "word":
            bound += DIGIT_BOUND.get(match.group(), 0)
    return bound


_GROUPS = st.lists(st.text("0123456789", min_size=1, max_size=5), min_size=1)
_SEPARATORS = st.sampled_from([" ", "-", " - ", "(", ") ", '"', "\t", "  "])


@settings(max_examples=200, deadline=None)
@given(groups=_GROUPS, separators=st.lists(_SEPARATORS, min_size=8, max_size=8))
def test_digit_groups_read_without_the_token_walk_give_the_same_pieces(
    groups: list[str], separators: list[str]
) -> None:
    text = groups[0]
    for index, group in enumerate(groups[1:]):
        text += separators[index % len(separators)] + group
    assert read_pieces(text, 0, len(text)) == _token_walk(text)


_WORDS = st.sampled_from(
    [
        "four",
        "two",
        "forty",
        "hundred",
        "double",
        "to",
        "uh",
        "and",
        "$25",
        "10:30",
        "12/26",
        "98.6",
        "4242",
        "x12",
        "'42",
        "visa",
        ",",
        ".",
        "-",
        "(",
        "?",
        "é",
    ]
)


@settings(max_examples=300, deadline=None)
@given(words=st.lists(_WORDS, min_size=1, max_size=12))
def test_digit_bound_counts_digits_exactly_as_the_precise_tokens_do(
    words: list[str],
) -> None:
    low = " ".join(words).encode("ascii", "replace").decode("ascii")
    assert digit_bound(low, 0, len(low)) == _token_bound(low)


def test_card_split_at_the_furthest_line_edges_the_prefilter_allows_is_redacted() -> (
    None
):
    # The first half ends 12 characters before its line ends; the second half starts
    # 32 characters into its line, the widest edges that still group the two.
    first = "Caller: my card is 4242 4242 " + "x" * 11
    second = "Caller: " + "y" * 23 + " 4242 4242 ok"
    result = redact_text(f"{first}\nAgent: mm-hm\n{second}")
    assert result.text.count(CARD_MARKER) == 2
    assert "4242" not in result.text


def test_read_back_on_the_first_and_last_line_of_the_text_is_redacted() -> None:
    text = (
        "Agent: ending 1111, right?\n"
        "Caller: the Visa is 4111 1111 1111 1111\n"
        "Agent: so 4111 1111 1111 1111"
    )
    result = redact_text(text)
    assert "1111" not in result.text
    assert all(span.kind is SpanKind.CARD_NUMBER for span in result.spans)


def test_read_back_three_lines_after_the_card_is_redacted_and_four_are_not() -> None:
    card = "Caller: the Visa is 4111 1111 1111 1111\n"
    near = card + "Agent: ok\nCaller: ok\nAgent: ending 1111?"
    far = card + "Agent: ok\nCaller: ok\nAgent: ok\nAgent: ending 1111?"
    assert redact_text(near).text.endswith(f"ending {CARD_MARKER}?")
    assert redact_text(far).text.endswith("ending 1111?")


def test_card_at_the_end_of_one_long_line_of_short_numbers_is_redacted() -> None:
    # Free text arrives without line breaks: the line-edge searches, bounded to a few
    # characters, must still see the card at the very end of the text.
    filler = "visit 12 at 3 and 45 " * 2_000
    result = redact_text(filler + "pay with 4242 4242 4242 4242")
    assert result.text == filler + f"pay with {CARD_MARKER}"


def test_written_card_with_brackets_tabs_and_quotes_between_groups_is_redacted() -> (
    None
):
    text = 'Caller: it\'s (4242)\t4242 "4242" 4242.'
    assert redact_text(text).text == f"Caller: it's ({CARD_MARKER}."


@settings(max_examples=500, deadline=None)
@given(digits=st.text("0123456789", max_size=25))
def test_luhn_check_agrees_with_its_definition(digits: str) -> None:
    # Double every second digit from the right, take 9 off a doubled digit above 9,
    # and the total must be a multiple of ten.
    total = 0
    for place, char in enumerate(reversed(digits)):
        value = int(char) * (2 if place % 2 else 1)
        total += value - 9 if value > 9 else value
    assert luhn_valid(digits) == (total % 10 == 0)


@pytest.mark.parametrize("word", sorted(NUMBER_WORDS - SOUND_ALIKES.keys()))
def test_prefilter_finds_every_number_word_that_ends_a_line(word: str) -> None:
    _, norm = _normalise(f"Caller: it's {word}\nAgent: ok")
    assert stretches(norm) == [(13, 13 + len(word))]


def test_card_split_across_turns_around_a_date_kept_with_it_is_redacted() -> None:
    # The date is grouped with the card's halves by the pre-filter but gives no
    # digits; the halves still join across it.
    text = "Caller: the card is 4242 4242\nCaller: since 12/26/2025\nCaller: 4242 4242"
    result = redact_text(text)
    assert "4242" not in result.text
    assert "12/26/2025" in result.text


def test_split_card_opening_deep_in_a_long_line_is_redacted() -> None:
    # The first half starts far from the start of its line, so its line and label
    # are found by a search that is not bounded to the line edge.
    first = "Caller: okay so I have it right here and the card number is 4242 4242"
    result = redact_text(f"{first}\nAgent: mm-hm\nCaller: 4242 4242.")
    assert result.text.count(CARD_MARKER) == 2
    assert "4242" not in result.text


def test_cards_of_two_callers_split_across_interleaved_turns_are_redacted() -> None:
    # Each speaker's numbers are joined on their own; the other speaker's halves in
    # between neither join them nor cut them apart.
    text = (
        "Caller: mine is 4242 4242\n"
        "Guest: mine is 5555 5555\n"
        "Caller: 4242 4242\n"
        "Guest: 5555 4444"
    )
    result = redact_text(text)
    assert result.text.count(CARD_MARKER) == 4
    assert not any(group in result.text for group in ("4242", "5555", "4444"))


def test_card_after_stray_digits_is_found_in_a_window_that_skips_them() -> None:
    # 21 digits in all: only the window that leaves out the leading "12" is a card.
    card = "4" + "0" * 17
    card += str(next(d for d in range(10) if luhn_valid(card + str(d))))
    assert len(card) == 19
    groups = " ".join(card[i : i + 4] for i in range(0, 19, 4))
    result = redact_text(f"Caller: the visa is 12 {groups}")
    assert result.text == f"Caller: the visa is 12 {CARD_MARKER}"


def test_security_code_is_redacted_up_to_its_reach_after_the_question() -> None:
    # The code must start within 200 characters of the start of "security code".
    def answer(distance: int) -> str:
        question = "Agent: and the security code?"
        reply = "\nCaller: 737"
        before = len(question) - question.index("security") + len(reply) - 3
        return question + " " * (distance - before) + reply

    near, far = answer(200), answer(201)
    assert near.index("737") - near.index("security") == 200
    assert redact_text(near).text.endswith(SECURITY_CODE_MARKER)
    assert redact_text(far).text.endswith("737")
