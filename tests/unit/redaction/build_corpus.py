"""Builds corpus.jsonl: labelled transcript snippets for the redaction quality test.

Run `python -m tests.unit.redaction.build_corpus` from the repository root to
regenerate; it is seeded, so
the file only changes when this builder does. Each line holds the snippet text, the
character ranges of every card number (a card split across turns has several
ranges), the ranges of security codes, and a short note on what the snippet tests.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from tests.unit.redaction.render import (
    STYLES,
    groups_of,
    luhn_complete,
    random_card,
    render,
)

KNOWN_TEST_CARDS = [
    "4242424242424242",
    "4111111111111111",
    "4012888888881881",
    "4000056655665556",
    "5555555555554444",
    "5105105105105100",
    "2223003122003222",
    "378282246310005",
    "371449635398431",
    "6011111111111117",
    "6011000990139424",
    "3530111333300000",
    "30569309025904",
    "38520000023237",
    "6200000000000005",
    "4222222222222",
]

INTROS = [
    "Caller: Sure, my card number is {card}.",
    "Caller: It's a Visa, {card}, expiring twelve twenty six.",
    "Caller: Okay, the number on the front is {card}",
    "Caller: you can put it on my Mastercard, {card}",
    "Caller: {card}",
    "Caller: Let me get my wallet... okay, it's {card}.",
    "Caller: the long number is {card}, and it's under my husband's name.",
    "Caller: use the debit card please, {card}.",
    "Caller: yeah so it's {card} thanks",
    "Caller: I'd like to pay the balance with {card}.",
]
AGENT_ASKS = [
    "Agent: I can take a payment for that today. What card would you like to use?",
    "Agent: Sure, go ahead with the card number whenever you're ready.",
    "Agent: And how would you like to pay?",
    "Agent: Okay, I'm ready for the number.",
]
INTERJECTIONS = [
    "Agent: Mm-hm.",
    "Agent: Okay.",
    "Agent: Got it, go on.",
    "Agent: Yes?",
]
CODE_ASKS = [
    ("Agent: And the security code?", "Caller: {code}."),
    ("Agent: What's the CVV on the back?", "Caller: it's {code}"),
    ("Agent: And the three digits on the back of the card?", "Caller: um, {code}"),
    ("Agent: Last thing, the CVC please.", "Caller: {code}, I think."),
]
CODE_FORMS = [
    "737",
    "123",
    "seven three seven",
    "four oh four",
    "one twenty three",
    "9 8 1",
    "4 digit code is 4821",
    "eight six five two",
]


class Snippet:
    def __init__(self, note: str) -> None:
        self.text = ""
        self.cards: list[list[list[int]]] = []
        self.codes: list[list[int]] = []
        self.note = note

    def line(self, text: str) -> None:
        self.text += ("\n" if self.text else "") + text

    def line_with(self, template: str, value: str, kind: str) -> list[int]:
        before, after = template.split("{" + kind + "}")
        prefix = ("\n" if self.text else "") + before
        start = len(self.text) + len(prefix)
        self.text += prefix + value + after
        return [start, start + len(value)]

    def as_json(self) -> str:
        return json.dumps(
            {
                "text": self.text,
                "cards": self.cards,
                "codes": self.codes,
                "note": self.note,
            }
        )


def positives(rnd: random.Random) -> list[Snippet]:
    out: list[Snippet] = []
    cards = KNOWN_TEST_CARDS + [random_card(rnd) for _ in range(60)]
    styles = [
        "solid",
        "dashes",
        "digits",
        "words",
        "repeats",
        "pairs",
        "spaced",
        "mixed",
    ]
    for index, card in enumerate(cards):
        style = styles[index % len(styles)]
        snippet = Snippet(f"card said as {style}")
        if rnd.random() < 0.6:
            snippet.line(rnd.choice(AGENT_ASKS))
        span = snippet.line_with(rnd.choice(INTROS), render(card, rnd, style), "card")
        snippet.cards.append([span])
        if rnd.random() < 0.4:
            ask, answer = rnd.choice(CODE_ASKS)
            snippet.line(ask)
            code = rnd.choice(CODE_FORMS)
            value = code.replace("4 digit code is ", "")
            if value != code:
                answer = answer.replace("{code}", "the 4 digit code is {code}")
            snippet.codes.append(snippet.line_with(answer, value, "code"))
        out.append(snippet)

    # Split across the caller's turns, with the agent talking in between.
    for _ in range(45):
        card = rnd.choice(cards[:20]) if rnd.random() < 0.4 else random_card(rnd)
        # Callers pause between digit groups, so the turns break there.
        groups = groups_of(card)
        parts = rnd.choice([2, 2, 3])
        cuts = sorted(rnd.sample(range(1, len(groups)), k=min(parts, len(groups)) - 1))
        chunks = [
            render("".join(groups[a:b]), rnd, rnd.choice(STYLES))
            for a, b in zip([0, *cuts], [*cuts, len(groups)], strict=True)
        ]
        snippet = Snippet(f"card split over {len(chunks)} caller turns")
        snippet.line(rnd.choice(AGENT_ASKS))
        spans = []
        for number, chunk in enumerate(chunks):
            chunk = chunk.strip(", .")
            template = "Caller: it's {card}" if number == 0 else "Caller: {card}"
            if number and rnd.random() < 0.3:
                template = "Caller: and then {card}"
            spans.append(snippet.line_with(template, chunk, "card"))
            if number < len(chunks) - 1:
                snippet.line(rnd.choice(INTERJECTIONS))
        snippet.cards.append(spans)
        out.append(snippet)

    handwritten = [
        (
            "Caller: it's four thousand twelve, eight thousand eight hundred"
            " eighty eight, eighty eight eighty eight, eighteen eighty one",
            "4012888888881881",
        ),
        (
            "Caller: four two four two, sorry, four two four two four two four two"
            " four two four two four two four two",
            "4242424242424242",
        ),
        (
            "Caller: the Amex is three seven eight two, eight two two four six"
            " three, one oh oh oh five",
            "378282246310005",
        ),
        (
            "Caller: four one one one, triple one one, one one one one, double one"
            " double one",
            "4111111111111111",
        ),
        (
            "Caller: card is 4242 4242 4242 4242 and the code on the back is 737",
            "4242424242424242",
        ),
    ]
    for text, _card in handwritten:
        snippet = Snippet("handwritten spoken form")
        snippet.line(text)
        start = text.index(":") + 2
        if text.startswith("Caller: it's four thousand"):
            start = text.index("four")
        if "sorry" in text:
            start = text.index("four two four two four")
        if "Amex is" in text:
            start = text.index("three seven")
        if "card is" in text:
            start = text.index("4242")
            snippet.cards.append([[start, start + 19]])
            code = text.index("737")
            snippet.codes.append([code, code + 3])
        else:
            snippet.cards.append([[start, len(text)]])
        out.append(snippet)
    return out


def negatives(rnd: random.Random) -> list[Snippet]:
    texts: list[tuple[str, str]] = [
        ("Caller: my number is 415-555-0134.", "phone"),
        ("Caller: call me at +1 (415) 555-0134 after five.", "phone +1"),
        (
            "Caller: it's four one five, five five five, zero one three four.",
            "spoken phone",
        ),
        (
            "Caller: plus one four one five five five five zero one three four",
            "spoken phone +1",
        ),
        ("Caller: my cell is 4155550134 and my work is 6505550199.", "two phones"),
        ("Caller: my member ID is XJH123456789.", "alphanumeric member ID"),
        ("Caller: the ID on the card is W2847 39210 055.", "alphanumeric ID"),
        ("Caller: date of birth is 03/14/1985.", "date"),
        ("Caller: I was born March fourteenth, nineteen eighty five.", "spoken date"),
        ("Agent: we have Tuesday at 10:30 or 2:45.", "times"),
        ("Caller: I owe $1,234.56 and paid $250.00 last week.", "amounts"),
        ("Caller: the NPI on the referral is 1234567893.", "NPI"),
        ("Agent: Dr. Lee's NPI is 1245319599.", "NPI"),
        (
            "Caller: the referral lists 808401234567893 as the provider ID.",
            "NPI with 80840 prefix, Luhn-valid, 15 digits",
        ),
        ("Caller: claim number 20231104778812.", "claim number, not Luhn"),
        ("Caller: the claim is 99887766554433221100.", "20-digit claim"),
        (
            "Caller: my claim number is 4111 1111 1111 1111.",
            "Luhn-valid, labelled claim number",
        ),
        (
            "Agent: what's the claim number?\nCaller: 5555 5555 5555 4444",
            "Luhn-valid, claim asked by agent",
        ),
        ("Caller: my member ID is 4242424242424242.", "Luhn-valid member ID"),
        ("Caller: the tracking number is 4012888888881881.", "Luhn-valid tracking"),
        (
            "Caller: insurance card says subscriber 6011111111111117.",
            "Luhn-valid subscriber number",
        ),
        (
            "Caller: the prior authorization number is 3782 822463 10005.",
            "Luhn-valid authorization number",
        ),
        ("Caller: the card ending in 4242 please.", "last four only"),
        ("Caller: it expires twelve twenty six.", "expiry alone"),
        ("Caller: my zip is 94110.", "zip"),
        ("Caller: I live at 1600 Amphitheatre Parkway, apartment 12.", "address"),
        ("Caller: the group number is 0045217 and the plan is PPO 500.", "group"),
        ("Caller: my Medicare number is 1EG4-TE5-MK73.", "MBI"),
        ("Caller: it's been about two or three weeks, maybe four.", "number words"),
        ("Caller: I take one pill twice a day, twenty milligrams.", "dosage"),
        ("Caller: twenty twenty four was a hard year.", "year in words"),
        (
            "Caller: the fax is 650 555 0199 and the office is 650 555 0100.",
            "two phones in one line",
        ),
        ("Caller: room 204, building 3, floor 2.", "room numbers"),
        ("Caller: my order number is 1128 3345 9921 0077.", "order number"),
        ("Caller: reference 7781 2290 3341 5566 77", "reference number"),
        ("Caller: my Social is 078-05-1120.", "SSN"),
        (
            "Agent: your confirmation number is 4000 0566 5566 5556.",
            "Luhn-valid confirmation number",
        ),
        ("Caller: the rx number is 6200000000000005.", "Luhn-valid rx number"),
    ]
    out = []
    for text, note in texts:
        snippet = Snippet(f"hard negative: {note}")
        snippet.line(text)
        out.append(snippet)

    # Generated: non-Luhn long numbers, phones, dates and amounts in conversation.
    for _ in range(40):
        kind = rnd.choice(["claim", "phone", "dob", "amount", "member"])
        snippet = Snippet(f"generated negative: {kind}")
        snippet.line("Agent: Thanks for calling, how can I help?")
        if kind == "claim":
            while True:
                digits = "".join(rnd.choice("0123456789") for _ in range(16))
                if luhn_complete(digits[:-1]) != digits:
                    break
            snippet.line(f"Caller: I'm calling about claim {digits}.")
        elif kind == "phone":
            area = rnd.randrange(201, 989)
            number = f"{area} 555 {rnd.randrange(100, 9999):04d}"
            snippet.line(f"Caller: you can reach me at {number}.")
        elif kind == "dob":
            snippet.line(
                f"Caller: my birthday is {rnd.randrange(1, 13)}/{rnd.randrange(1, 29)}"
                f"/{rnd.randrange(1940, 2010)}."
            )
        elif kind == "amount":
            snippet.line(
                f"Caller: the bill says ${rnd.randrange(10, 9999):,}."
                f"{rnd.randrange(0, 99):02d}, is that right?"
            )
        else:
            letters = "".join(rnd.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(3))
            snippet.line(
                f"Caller: member ID {letters}{rnd.randrange(10**8, 10**9)}, group"
                f" {rnd.randrange(10**5, 10**6)}."
            )
        snippet.line("Agent: Got it, thank you.")
        out.append(snippet)
    return out


def _conversation(note: str, lines: list[str], values: list[str]) -> Snippet:
    """A snippet whose lines fill "{card}" with the card parts in order.

    All the parts are one card; a snippet with no "{card}" line is a negative.
    """
    snippet = Snippet(note)
    parts = iter(values)
    spans = []
    for line in lines:
        if "{card}" in line:
            spans.append(snippet.line_with(line, next(parts), "card"))
        else:
            snippet.line(line)
    if spans:
        snippet.cards.append(spans)
    return snippet


def earlier_numbers_and_numbered_speakers() -> list[Snippet]:
    """Cards after another number said earlier, and turns labelled "Speaker 2:".

    An identifier said a few turns before a card must not hide the card, and the
    digit of a speaker label must not join the number said after it.
    """
    pay = "Agent: thanks. And what card would you like to use today?"
    return [
        _conversation(
            "card in a later turn after a member ID",
            ["Caller: my member ID is 12345", pay, "Caller: {card}"],
            ["4242 4242 4242 4242"],
        ),
        _conversation(
            "card in a later turn after a claim number",
            [
                "Caller: the claim number is 20231104778812",
                "Agent: got it. How would you like to pay?",
                "Caller: {card}",
            ],
            ["5555-5555-5555-4444"],
        ),
        _conversation(
            "card in a later turn after a Luhn-valid claim number",
            [
                "Caller: my claim number is 4111 1111 1111 1111",
                "Agent: got it. Anything else?",
                "Caller: {card}",
            ],
            ["6011 0009 9013 9424"],
        ),
        _conversation(
            "card in a later turn after a phone number",
            [
                "Caller: you can reach me at 415 555 0134",
                "Agent: thanks, and the card?",
                "Caller: {card}",
            ],
            [
                "four oh one two, eight eight eight eight, eight eight eight eight,"
                " one eight eight one"
            ],
        ),
        _conversation(
            "card split over turns after a member ID",
            [
                "Caller: member ID 12345",
                "Agent: thanks, which card?",
                "Caller: {card}",
                "Agent: mm-hm",
                "Caller: {card}",
            ],
            ["four two four two, four two four two", "forty two forty two, 4242"],
        ),
        _conversation(
            "card split over three turns after a group number",
            [
                "Caller: group number 0045217",
                "Agent: Okay, I'm ready for the card number.",
                "Caller: {card}",
                "Agent: Mm-hm.",
                "Caller: {card}",
                "Agent: Yes?",
                "Caller: and then {card}",
            ],
            ["3782", "822463", "one double oh oh five"],
        ),
        _conversation(
            "card in one turn with numbered speaker labels",
            ["Speaker 1: what card would you like to use?", "Speaker 2: {card}"],
            ["5105 1051 0510 5100"],
        ),
        _conversation(
            "card split over turns with numbered speaker labels",
            [
                "Speaker 1: what card would you like to use?",
                "Speaker 2: {card}",
                "Speaker 1: mm-hm",
                "Speaker 2: {card}",
            ],
            ["4242 4242", "4242 4242"],
        ),
        _conversation(
            "card said mid-turn and split with numbered speaker labels",
            ["Speaker 2: my card is {card}", "Speaker 1: okay", "Speaker 2: {card}"],
            ["forty two forty two, forty two forty two", "forty two forty two 4242"],
        ),
        _conversation(
            "card split over turns with SPEAKER_0n labels",
            [
                "SPEAKER_01: go ahead with the card number",
                "SPEAKER_02: {card}",
                "SPEAKER_01: got it",
                "SPEAKER_02: {card}",
            ],
            ["2223 0031", "2200 3222"],
        ),
        _conversation(
            "card split over three turns with Agent 1 and Caller 2 labels",
            [
                "Agent 1: and how would you like to pay?",
                "Caller 2: {card}",
                "Agent 1: okay",
                "Caller 2: {card}",
                "Agent 1: yes?",
                "Caller 2: {card}",
            ],
            ["three five three oh", "one one one three", "3330 0000"],
        ),
        _conversation(
            "card split over turns with speaker labels in words",
            [
                "Speaker one: what card?",
                "Speaker two: {card}",
                "Speaker one: okay",
                "Speaker two: {card}",
            ],
            ["four one one one one one one one", "one one one one one one one one"],
        ),
        _conversation(
            "card split over numbered turns after a member ID",
            [
                "Speaker 2: my member ID is 12345",
                "Speaker 1: thanks. And the card number?",
                "Speaker 2: {card}",
                "Speaker 1: mm-hm",
                "Speaker 2: {card}",
            ],
            ["4012 8888", "8888 1881"],
        ),
        _conversation(
            "hard negative: member ID then phone in a later turn",
            [
                "Caller: my member ID is 12345",
                "Agent: thanks",
                "Caller: 415 555 0134",
            ],
            [],
        ),
        _conversation(
            "hard negative: long member ID, then phone and ZIP in later turns",
            [
                "Caller: my member ID is 884213307",
                "Agent: thanks, anything else?",
                "Caller: 650 555 0199",
                "Agent: okay",
                "Caller: 94110",
            ],
            [],
        ),
        _conversation(
            "hard negative: Luhn-valid claim number after a numbered label",
            ["Speaker 2: my claim number is 4111 1111 1111 1111", "Speaker 1: thanks"],
            [],
        ),
        _conversation(
            "hard negative: Luhn-valid claim asked for, numbered labels",
            [
                "Speaker 1: what's the claim number?",
                "Speaker 2: 5555 5555 5555 4444",
                "Speaker 1: thank you",
            ],
            [],
        ),
        _conversation(
            "hard negative: member ID and phone split over numbered turns",
            [
                "Speaker 2: my member ID is 12345",
                "Speaker 1: thanks",
                "Speaker 2: and my number is 415 555",
                "Speaker 1: mm-hm",
                "Speaker 2: 0134",
            ],
            [],
        ),
        _conversation(
            "hard negative: date and time with numbered labels",
            [
                "Speaker 1: what's your date of birth?",
                "Speaker 2: 03/14/1985",
                "Speaker 1: we have Tuesday at 10:30",
                "Speaker 2: 10:30 works",
            ],
            [],
        ),
    ]


def main() -> None:
    rnd = random.Random(2024)
    snippets = positives(rnd) + negatives(rnd) + earlier_numbers_and_numbered_speakers()
    path = Path(__file__).with_name("corpus.jsonl")
    path.write_text("\n".join(s.as_json() for s in snippets) + "\n", encoding="utf-8")
    print(f"wrote {len(snippets)} snippets to {path}")


if __name__ == "__main__":
    main()
