"""Property tests: every card-shaped number, in any form we render, is redacted."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.redaction.render import STYLES, groups_of, luhn_complete, render

from perpetua.redaction import CARD_MARKER, SpanKind, redact_text

_PREFIXES = [
    "4",
    "51",
    "52",
    "53",
    "54",
    "55",
    "2221",
    "2720",
    "34",
    "37",
    "6011",
    "65",
    "62",
    "35",
    "36",
    "300",
]


@st.composite
def cards(draw: st.DrawFn) -> str:
    length = draw(st.integers(min_value=13, max_value=19))
    prefix = draw(st.sampled_from(_PREFIXES))
    body = draw(st.text("0123456789", min_size=length - 1, max_size=length - 1))
    return luhn_complete((prefix + body)[: length - 1])


@settings(max_examples=300, deadline=None)
@given(
    card=cards(),
    seed=st.integers(0, 2**32 - 1),
    style=st.sampled_from([*STYLES, "mixed", "dashes", "solid"]),
)
def test_any_card_in_any_rendered_form_is_redacted(
    card: str, seed: int, style: str
) -> None:
    said = render(card, random.Random(seed), style)
    result = redact_text(f"Caller: sure, it's {said}. Thanks!")
    assert result.text == f"Caller: sure, it's {CARD_MARKER}. Thanks!"


@settings(max_examples=150, deadline=None)
@given(card=cards(), seed=st.integers(0, 2**32 - 1), cut=st.integers(1, 4))
def test_any_card_split_between_two_caller_turns_is_redacted(
    card: str, seed: int, cut: int
) -> None:
    rnd = random.Random(seed)
    groups = groups_of(card)
    cut = min(cut, len(groups) - 1)
    first = render("".join(groups[:cut]), rnd, rnd.choice(STYLES))
    second = render("".join(groups[cut:]), rnd, rnd.choice(STYLES))
    text = f"Caller: it's {first}\nAgent: Mm-hm.\nCaller: {second}"
    result = redact_text(text)
    assert (
        result.text
        == f"Caller: it's {CARD_MARKER}\nAgent: Mm-hm.\nCaller: {CARD_MARKER}"
    )
    assert all(span.kind is SpanKind.CARD_NUMBER for span in result.spans)
