"""The shortcuts the engine takes for speed give the answers of the full reading.

The pre-filter runs once per text and read-backs look its stretches up again, line
edges are found with bounded searches, and digit groups skip the token walk. Each
test pins an edge where a shortcut could drift from the reading it replaces.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from perpetua.redaction import CARD_MARKER, SpanKind, redact_text
from perpetua.redaction.engine import digit_bound
from perpetua.redaction.lexicon import DIGIT_BOUND, TOKEN
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
