"""Specifications of the card-number redaction engine, one behaviour per test."""

from __future__ import annotations

import json

import pytest

from perpetua.redaction import (
    CARD_MARKER,
    SECURITY_CODE_MARKER,
    CardNumberInText,
    SpanKind,
    Turn,
    Word,
    contains_card_number,
    ensure_no_card_number,
    redact_text,
    redact_turns,
    turns_from_json,
)


def _kinds(text: str) -> list[SpanKind]:
    return [span.kind for span in redact_text(text).spans]


def test_card_written_with_spaces_is_redacted() -> None:
    result = redact_text("Caller: my card is 4242 4242 4242 4242, thanks.")
    assert result.text == f"Caller: my card is {CARD_MARKER}, thanks."
    assert [s.kind for s in result.spans] == [SpanKind.CARD_NUMBER]


def test_card_written_with_dashes_or_solid_is_redacted() -> None:
    assert "5555" not in redact_text("it's 5555-5555-5555-4444").text
    assert "3782" not in redact_text("amex 378282246310005 please").text


def test_card_spoken_as_digit_words_with_oh_and_double_is_redacted() -> None:
    text = (
        "four oh one two, double eight double eight, eight eight eight eight,"
        " one eight eight one"
    )
    assert redact_text(text).text == CARD_MARKER


def test_card_spoken_as_two_digit_numbers_is_redacted() -> None:
    text = "Caller: " + ", ".join(["forty two forty two"] * 4)
    assert redact_text(text).text == f"Caller: {CARD_MARKER}"


def test_card_spoken_with_triple_and_nineteen_style_groups_is_redacted() -> None:
    text = "it's four one one one, triple one one, eleven eleven, eleven eleven"
    assert CARD_MARKER in redact_text(text).text


def test_card_split_across_caller_turns_is_redacted() -> None:
    text = (
        "Agent: What card would you like to use?\n"
        "Caller: it's four two four two, four two four two\n"
        "Agent: Mm-hm.\n"
        "Caller: four two four two\n"
        "Agent: Okay.\n"
        "Caller: and then 4242."
    )
    result = redact_text(text)
    assert "four two" not in result.text
    assert "4242" not in result.text
    assert "Agent: Mm-hm." in result.text
    assert len(result.spans) == 3


def test_agent_read_back_of_card_is_redacted() -> None:
    text = (
        "Caller: 4111 1111 1111 1111\n"
        "Agent: so that is 4111 1111 1111 1111, the card ending 1111?"
    )
    assert "1111" not in redact_text(text).text


def test_security_code_asked_for_by_agent_is_redacted() -> None:
    text = (
        "Caller: 4242 4242 4242 4242\n"
        "Agent: And the three digits on the back?\n"
        "Caller: seven three seven."
    )
    result = redact_text(text)
    assert result.text.endswith(f"Caller: {SECURITY_CODE_MARKER}.")
    assert SpanKind.SECURITY_CODE in [s.kind for s in result.spans]


def test_security_code_after_cvv_word_is_redacted() -> None:
    assert _kinds("the CVV is 123") == [SpanKind.SECURITY_CODE]
    assert _kinds("security code four oh four one") == [SpanKind.SECURITY_CODE]


def test_three_digits_without_card_context_are_left_alone() -> None:
    assert _kinds("Caller: room 204, and I'm 123 Main Street") == []


def test_npi_is_left_alone() -> None:
    assert _kinds("The referring NPI is 1234567893.") == []


def test_npi_with_80840_prefix_is_left_alone() -> None:
    # 80840 + NPI passes Luhn by design, but 8 is no card network's prefix.
    assert _kinds("provider 808401234567893 on the referral") == []


def test_luhn_valid_number_labelled_claim_number_is_left_alone() -> None:
    assert _kinds("Caller: my claim number is 4111 1111 1111 1111.") == []


def test_luhn_valid_number_asked_for_as_member_id_is_left_alone() -> None:
    text = "Agent: What is your member ID?\nCaller: 4242424242424242"
    assert _kinds(text) == []


def test_card_word_nearer_than_a_label_wins() -> None:
    assert _kinds("not the claim number, my visa: 4111 1111 1111 1111") == [
        SpanKind.CARD_NUMBER
    ]


def test_unusual_prefix_is_a_card_only_when_called_one() -> None:
    number = "7000000000000005"  # Luhn-valid, fuel-card style prefix
    assert _kinds(f"reference {number} on file") == []
    assert _kinds(f"my fleet card number is {number}") == [SpanKind.CARD_NUMBER]


def test_member_id_said_turns_earlier_does_not_hide_a_card() -> None:
    text = (
        "Caller: my member ID is 12345\n"
        "Agent: thanks. And what card would you like to use today?\n"
        "Caller: 4242 4242 4242 4242"
    )
    result = redact_text(text)
    assert result.text.endswith(f"Caller: {CARD_MARKER}")
    assert "12345" in result.text


@pytest.mark.parametrize(
    "earlier",
    [
        "Caller: my claim number is 4111 1111 1111 1111",
        "Caller: the group number is 0045217",
        "Caller: you can reach me at 415 555 0134",
    ],
)
def test_card_split_over_turns_after_another_number_is_redacted(earlier: str) -> None:
    text = (
        f"{earlier}\n"
        "Agent: got it. Anything else?\n"
        "Caller: four oh one two, eight eight eight eight\n"
        "Agent: Mm-hm.\n"
        "Caller: 8888 1881"
    )
    result = redact_text(text)
    assert "eight" not in result.text
    assert "1881" not in result.text
    assert result.text.startswith(earlier)


def test_member_id_then_phone_in_later_turns_are_left_alone() -> None:
    text = (
        "Caller: my member ID is 884213307\n"
        "Agent: thanks, anything else?\n"
        "Caller: 650 555 0199\n"
        "Agent: okay\n"
        "Caller: 94110"
    )
    assert _kinds(text) == []


@pytest.mark.parametrize(
    ("agent", "caller"),
    [
        ("Speaker 1", "Speaker 2"),
        ("Agent 1", "Caller 2"),
        ("SPEAKER_00", "SPEAKER_01"),
        ("Speaker one", "Speaker two"),
    ],
)
def test_card_split_over_turns_with_numbered_speaker_labels_is_redacted(
    agent: str, caller: str
) -> None:
    text = (
        f"{agent}: what card would you like to use?\n"
        f"{caller}: 4242 4242\n"
        f"{agent}: mm-hm\n"
        f"{caller}: forty two forty two, forty two forty two"
    )
    result = redact_text(text)
    assert result.text == (
        f"{agent}: what card would you like to use?\n"
        f"{caller}: {CARD_MARKER}\n"
        f"{agent}: mm-hm\n"
        f"{caller}: {CARD_MARKER}"
    )


def test_card_in_one_turn_with_numbered_speaker_label_is_redacted() -> None:
    text = "Speaker 1: what card?\nSpeaker 2: 5105 1051 0510 5100\nSpeaker 1: ok"
    assert redact_text(text).text == (
        f"Speaker 1: what card?\nSpeaker 2: {CARD_MARKER}\nSpeaker 1: ok"
    )


def test_claim_number_after_numbered_label_is_kept_and_later_card_found() -> None:
    text = (
        "Speaker 1: what's the claim number?\n"
        "Speaker 2: my claim number is 4111 1111 1111 1111\n"
        "Speaker 1: thanks\n"
        "Speaker 2: 5555 5555 5555 4444"
    )
    assert _kinds(text) == [SpanKind.CARD_NUMBER]
    assert "4111 1111 1111 1111" in redact_text(text).text


def test_non_luhn_claim_number_is_left_alone() -> None:
    assert _kinds("claim 20231104778812 and 99887766554433221100") == []


def test_phone_numbers_dates_times_and_amounts_are_left_alone() -> None:
    text = (
        "Caller: call me at +1 (415) 555-0134 or four one five five five five zero"
        " one nine nine. I was born 03/14/1985, the visit is at 10:30 and I owe"
        " $1,234.56.\nCaller: member ID XJH123456789"
    )
    assert _kinds(text) == []


def test_last_four_digits_alone_are_left_alone() -> None:
    assert _kinds("use the card ending in 4242") == []


def test_expiry_date_is_left_alone() -> None:
    assert _kinds("my card expires 12/26") == []


def test_spans_are_offsets_into_the_input() -> None:
    text = "pay with 4242 4242 4242 4242 today"
    (span,) = redact_text(text).spans
    assert text[span.start : span.end] == "4242 4242 4242 4242"


def test_json_spans_never_carry_the_digits() -> None:
    text = "card 4242424242424242, cvv 123"
    dumped = json.dumps(redact_text(text).as_dict())
    assert "4242" not in dumped
    assert "123" not in dumped.replace('"start"', "")


def test_contains_card_number_flags_free_text() -> None:
    assert contains_card_number("Pt paid with card 4111 1111 1111 1111 today")
    assert not contains_card_number("Pt reports cough x2 weeks, temp 101.2")


def test_card_number_in_text_message_never_contains_the_digits() -> None:
    with pytest.raises(CardNumberInText) as raised:
        ensure_no_card_number("reason: pay with 4242-4242-4242-4242")
    assert "4242" not in str(raised.value)
    assert raised.value.code == "card_number_in_text"
    assert len(raised.value.spans) == 1


def test_security_code_alone_does_not_fail_a_free_text_field() -> None:
    ensure_no_card_number("the cvv is 123")


def test_word_timings_give_audio_spans_to_silence() -> None:
    words = [
        Word("it's", 0.0, 0.2),
        Word("four", 0.3, 0.5),
        Word("two", 0.5, 0.7),
    ]
    words += [
        Word(w, 0.8 + i * 0.2, 0.95 + i * 0.2)
        for i, w in enumerate(
            [
                "four",
                "two",
                "four",
                "two",
                "four",
                "two",
                "four",
                "two",
                "four",
                "two",
                "four",
                "two",
                "four",
                "two",
            ]
        )
    ]
    turns = [
        Turn("Agent", "What card?", (Word("What", 0.0, 0.1), Word("card?", 0.1, 0.2))),
        Turn("Caller", " ".join(w.text for w in words), tuple(words)),
    ]
    result = redact_turns(turns)
    assert result.turns[1].text == f"it's {CARD_MARKER}"
    assert [(a.start, a.end) for a in result.audio] == [(0.3, words[-1].end)]
    assert [w.text for w in result.turns[1].words] == ["it's", CARD_MARKER]
    assert result.turns[0] == turns[0]


def test_card_split_across_timed_turns_is_silenced_in_each_turn() -> None:
    document = {
        "turns": [
            {
                "speaker": "caller",
                "words": [
                    {"word": w, "start": i, "end": i + 0.5}
                    for i, w in enumerate(["4111", "1111"])
                ],
            },
            {"speaker": "agent", "words": [{"word": "okay", "start": 3, "end": 3.4}]},
            {
                "speaker": "caller",
                "words": [
                    {"word": w, "start": 4 + i, "end": 4.5 + i}
                    for i, w in enumerate(["1111", "1111"])
                ],
            },
        ]
    }
    result = redact_turns(turns_from_json(document))
    assert [t.text for t in result.turns] == [CARD_MARKER, "okay", CARD_MARKER]
    assert [(a.start, a.end) for a in result.audio] == [(0.0, 1.5), (4.0, 5.5)]


def test_text_without_numbers_is_returned_unchanged() -> None:
    text = "Caller: I'd like to book a visit with Dr. Patel next week."
    result = redact_text(text)
    assert result.text is text
    assert result.spans == ()
