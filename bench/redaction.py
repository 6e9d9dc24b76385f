"""Throughput of the card-number redaction engine on front-office call transcripts.

Every transcript is redacted before it is stored, so the engine sits on the write
path of every call. This builds a few megabytes of synthetic calls in memory, redacts
them, and prints MB/s for two texts:

- *realistic*: calls of ordinary front-desk talk in which about a third of the
  turns carry a number (date of birth, phone number, appointment date and time,
  amount, member ID, claim or group number, ZIP code, dose, street number) and 15%
  of calls take a card payment, in one of its written or spoken forms;
- *number-heavy*: a stress text in which nearly every turn carries a number.

When the engine is compiled (see setup.py), each text is also redacted by the
pure-Python sources in the same run, pass for pass, and both figures are printed.

The assumption behind the realistic mix: a real front-desk call carries roughly five
to ten numbers over thirty to forty turns, and far fewer than 15% of calls take a
card. The realistic text is at least that dense, so its figure is not flattered. The
last line is machine-readable and measures the realistic text:
`redaction_mb_per_s: X`.
"""

from __future__ import annotations

import os
import random
import re
import statistics
import time
from collections.abc import Callable

from perpetua.redaction import Redaction, compiled, redact_text

_TARGET_BYTES = 4_000_000
# Best of five: the machine is shared, and the best pass is the least disturbed.
_ROUNDS = 5

_WORDS = [
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
_CARDS = ["4242424242424242", "5555555555554444", "378282246310005", "6011111111111117"]

# -- number-heavy stress text ---------------------------------------------------------

_NUMBER_HEAVY_TALK = [
    "Agent: Thank you for calling Riverside Family Medicine, this is Dana, how can I"
    " help you today?",
    "Caller: Hi, I'd like to book an appointment with Dr. Patel, please.",
    "Agent: Of course. Can I have your full name and date of birth?",
    "Caller: Sure, it's Maria Gonzalez, March 14th, 1985.",
    "Agent: Thank you, Maria. What is the reason for the visit?",
    "Caller: I've had a cough for about two weeks and a low fever on and off.",
    "Agent: I'm sorry to hear that. I have Tuesday the 12th at 10:30 am, or"
    " Thursday at two thirty in the afternoon.",
    "Caller: Thursday at two thirty works better for me.",
    "Agent: Great, you're booked for Thursday at 2:30 pm with Dr. Patel.",
    "Agent: Is the best number to reach you still 415-555-0134?",
    "Caller: Actually use my cell, four one five, five five five, zero one nine nine.",
    "Agent: Got it. Do you still have Blue Shield, member ID XJH123456789?",
    "Caller: Yes, same insurance. My group number is 0045217.",
    "Agent: Your copay will be $25.00 at the visit.",
    "Caller: Okay. I also got a bill for $1,234.56, claim number 20231104778812.",
    "Agent: Let me look that up for you. One moment please.",
    "Caller: No problem, take your time.",
    "Agent: That claim was reprocessed on November 4th; you should see a new"
    " statement in seven to ten days.",
    "Caller: Thanks. Can you send a refill for my lisinopril, ten milligrams?",
    "Agent: I'll send the request to Dr. Patel; the pharmacy is the one on 24th"
    " Street, right?",
    "Caller: Yes, the Walgreens on 24th and Mission.",
    "Agent: Please arrive fifteen minutes early and bring a photo ID.",
    "Caller: Will do. Is parking free?",
    "Agent: Yes, the first two hours are free in the garage on level 3.",
    "Caller: Perfect, thank you so much for your help.",
    "Agent: You're welcome, have a great day.",
]


def _spoken(card: str, rnd: random.Random) -> list[str]:
    """The card as the caller says it, over two turns."""
    groups = [card[i : i + 4] for i in range(0, len(card), 4)]
    style = rnd.randrange(3)
    if style == 0:
        said = " ".join(groups)
    elif style == 1:
        said = ", ".join(" ".join(_WORDS[int(d)] for d in group) for group in groups)
    else:
        said = "-".join(groups)
    cut = said.rfind(" ", 0, len(said) // 2)
    return [said[:cut], said[cut + 1 :]]


def _payment(rnd: random.Random) -> list[str]:
    first, second = _spoken(rnd.choice(_CARDS), rnd)
    return [
        "Agent: I can take the balance now. What card would you like to use?",
        f"Caller: It's a Visa, the number is {first}",
        "Agent: Mm-hm.",
        f"Caller: {second}.",
        "Agent: And the three digit security code on the back?",
        "Caller: seven three seven.",
    ]


def _number_heavy_call(rnd: random.Random) -> list[str]:
    lines = rnd.sample(_NUMBER_HEAVY_TALK, k=18)
    if rnd.random() < 0.15:
        lines += _payment(rnd)
    return lines


# -- realistic front-desk calls -------------------------------------------------------

_AGENT_TALK = [
    "Thank you for calling Riverside Family Medicine, this is Dana, how can I help?",
    "Sure, I can help you with that.",
    "Can I have your full name, please?",
    "And can you spell the last name for me?",
    "Thank you. What is the reason for the visit?",
    "I'm sorry to hear that. How long has this been going on?",
    "Is this for a new problem or a follow-up?",
    "Let me check what we have available with Dr. Patel.",
    "Let me look that up for you, one moment please.",
    "Thanks for holding.",
    "Okay, I see your chart here.",
    "Do you have any new allergies since your last visit?",
    "Are you still at the same address?",
    "Has your insurance changed since last time?",
    "I'll send a message to the nurse and she will call you back this afternoon.",
    "Please arrive a few minutes early and bring a photo ID and your insurance card.",
    "The office is on the second floor, just past the pharmacy.",
    "You'll get a text reminder the day before.",
    "Is there anything else I can help you with today?",
    "You're welcome, have a great day.",
    "Can you hold for just a second?",
    "I can take the balance now, or we can send you a statement.",
    "Dr. Patel would like to see you before renewing that prescription.",
    "I've noted that the cough is getting worse at night.",
]
_CALLER_TALK = [
    "Hi, I'd like to book an appointment with Dr. Patel, please.",
    "Hi, I'm calling about a bill I got in the mail.",
    "I need a refill on my blood pressure medication.",
    "I've had a cough and a low fever on and off, and it's not getting better.",
    "It's a follow-up, she wanted to see me again after the blood work.",
    "Yes, that's right.",
    "No, nothing new.",
    "Okay, that works for me.",
    "Sorry, can you repeat that?",
    "Um, let me think. Probably since last week sometime.",
    "Yeah, same address, nothing has changed.",
    "I switched jobs, so the insurance is different now.",
    "Is parking free there?",
    "Great, thank you so much for your help.",
    "No, that's everything. Thanks again.",
    "Could the nurse call me instead of sending a message through the portal?",
    "I think my daughter already called about this yesterday.",
    "Hold on, let me grab a pen.",
    "Mm-hm.",
    "Okay.",
]


def _digits(rnd: random.Random, count: int) -> str:
    return "".join(rnd.choice("0123456789") for _ in range(count))


def _said_digits(digits: str) -> str:
    return " ".join(_WORDS[int(d)] for d in digits)


def _phone(rnd: random.Random) -> str:
    area, exchange, line = _digits(rnd, 3), _digits(rnd, 3), _digits(rnd, 4)
    style = rnd.randrange(4)
    if style == 0:
        return f"{area}-{exchange}-{line}"
    if style == 1:
        return f"({area}) {exchange}-{line}"
    if style == 2:
        return f"{area} {exchange} {line}"
    return f"{_said_digits(area)}, {_said_digits(exchange)}, {_said_digits(line)}"


_MONTHS = ["January", "March", "May", "July", "September", "November"]
_TIMES = ["nine thirty", "ten fifteen", "two forty five", "three o'clock", "eleven"]


def _number_turn(rnd: random.Random) -> str:
    """One turn that carries a number, the way front-desk calls carry them."""
    kind = rnd.randrange(12)
    if kind == 0:
        return (
            f"Caller: It's {rnd.choice(_MONTHS)} {rnd.randint(1, 28)}th,"
            f" {rnd.randint(1940, 2015)}."
        )
    if kind == 1:
        month, day = rnd.randint(1, 12), rnd.randint(1, 28)
        return f"Caller: My date of birth is {month}/{day}/{rnd.randint(1940, 2015)}."
    if kind == 2:
        return f"Agent: Is the best number to reach you still {_phone(rnd)}?"
    if kind == 3:
        return f"Caller: You can call me back at {_phone(rnd)}."
    if kind == 4:
        return (
            f"Agent: I have {rnd.choice(_MONTHS)} {rnd.randint(1, 28)} at"
            f" {rnd.randint(8, 11)}:{rnd.choice(['00', '15', '30', '45'])}, or"
            f" Thursday at {rnd.choice(_TIMES)}."
        )
    if kind == 5:
        return f"Caller: Thursday at {rnd.choice(_TIMES)} works better."
    if kind == 6:
        return (
            f"Agent: Your balance is ${rnd.randint(10, 2000)}.{_digits(rnd, 2)},"
            f" and the copay is ${rnd.choice([20, 25, 40])}."
        )
    if kind == 7:
        return f"Caller: The member ID is XJH{_digits(rnd, 9)}."
    if kind == 8:
        return (
            f"Caller: The statement says claim number {_digits(rnd, 14)},"
            f" group {_digits(rnd, 7)}."
        )
    if kind == 9:
        number, zip_code = rnd.randint(10, 9999), _digits(rnd, 5)
        return f"Caller: It's {number} Mission Street, {zip_code}."
    if kind == 10:
        return f"Agent: That's the {rnd.choice([10, 20, 40])} milligram tablets, right?"
    return f"Agent: It should take about {rnd.choice(_WORDS[2:])} to ten days."


def _realistic_call(rnd: random.Random) -> list[str]:
    talk = [f"Agent: {line}" for line in rnd.sample(_AGENT_TALK, k=12)]
    talk += [f"Caller: {line}" for line in rnd.sample(_CALLER_TALK, k=12)]
    rnd.shuffle(talk)
    numbers = [_number_turn(rnd) for _ in range(rnd.randint(7, 10))]
    lines = talk
    for line in numbers:
        lines.insert(rnd.randrange(len(lines) + 1), line)
    if rnd.random() < 0.15:
        at = rnd.randrange(len(lines) + 1)
        lines[at:at] = _payment(rnd)
    return lines


# -- measuring ------------------------------------------------------------------------

_HAS_NUMBER = re.compile(
    r"[0-9]|\b(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|ten|eleven"
    r"|twelve|\w+teen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)\b",
    re.IGNORECASE,
)


def make_text(
    make_call: Callable[[random.Random], list[str]], target_bytes: int, seed: int = 7
) -> tuple[str, float]:
    """Calls up to `target_bytes`, and the share of turns that carry a number."""
    rnd = random.Random(seed)
    calls: list[str] = []
    size = turns = with_number = 0
    while size < target_bytes:
        lines = make_call(rnd)
        turns += len(lines)
        with_number += sum(1 for line in lines if _HAS_NUMBER.search(line))
        call = "\n".join(lines) + "\n\n"
        calls.append(call)
        size += len(call)
    return "".join(calls), with_number / turns


_DESCRIPTIONS = {
    "number-heavy": "stress text, front-desk calls in which nearly every turn carries"
    " a number",
    "realistic": "synthetic front-desk calls of ordinary talk, 7-10 of ~32 turns per"
    " call carry a number (birth date, phone, time, amount, member ID, claim, ZIP),"
    " 15% of calls take a card payment",
}


Redact = Callable[[str], Redaction]


def engines() -> dict[str, Redact]:
    """The engine the package runs, and its pure-Python sources when it is compiled.

    Machine speed here varies several-fold from day to day, so the two are timed in
    the same run, pass by pass, rather than against figures from another day.
    """
    if not compiled.is_compiled():
        return {"pure Python (not compiled)": redact_text}
    return {
        "pure Python": compiled.load_sources().redact_text,
        "compiled (mypyc)": redact_text,
    }


def measure(name: str, text: str, share: float, runs: dict[str, Redact]) -> float:
    """MB/s of the last engine in `runs`, after checking they all give one result."""
    megabytes = len(text.encode("utf-8")) / 1_000_000
    print(f"{name} text: {_DESCRIPTIONS[name]}")
    timings: dict[str, list[float]] = {label: [] for label in runs}
    results: dict[str, Redaction] = {}
    for _ in range(_ROUNDS):
        for label, redact in runs.items():
            started = time.perf_counter()
            results[label] = redact(text)
            timings[label].append(time.perf_counter() - started)
    first = next(iter(results.values()))
    if any(result != first for result in results.values()):
        raise SystemExit(f"{name}: the engines disagree on this text")
    print(
        f"{name}: {megabytes:.2f} MB, {share:.0%} of turns carry a number,"
        f" spans found: {len(first.spans)}"
    )
    rates: list[float] = []
    for label, seconds in timings.items():
        best = min(seconds)
        rates.append(megabytes / best)
        ratio = f", {rates[-1] / rates[0]:.2f}x" if len(rates) > 1 else ""
        print(
            f"  {label}: seconds per pass best {best:.3f}, median"
            f" {statistics.median(seconds):.3f}; {rates[-1]:.1f} MB/s{ratio}"
        )
    print(f"  {name} MB/s: {rates[-1]:.1f}")
    return rates[-1]


def main() -> None:
    runs = engines()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"load average before: {load}; engines: {', '.join(runs)}")
    heavy, heavy_share = make_text(_number_heavy_call, _TARGET_BYTES)
    measure("number-heavy", heavy, heavy_share, runs)
    realistic, share = make_text(_realistic_call, _TARGET_BYTES)
    rate = measure("realistic", realistic, share, runs)
    print(f"redaction_mb_per_s: {rate:.1f}")


if __name__ == "__main__":
    main()
