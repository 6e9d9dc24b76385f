"""Words and patterns that decide what counts as a spoken or written card number.

Everything the engine knows about English number words, filler words and context
words lives here, compiled once at import, so that the scanning code stays free of
literals and an auditor can review the vocabulary in one place.
"""

from __future__ import annotations

import re
from typing import Final

UNITS: Final[dict[str, int]] = {
    "zero": 0,
    "oh": 0,
    "o": 0,
    "nought": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
}
TEENS: Final[dict[str, int]] = {
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
TENS: Final[dict[str, int]] = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fourty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
SCALES: Final[dict[str, int]] = {"hundred": 100, "thousand": 1000}
REPEATS: Final[dict[str, int]] = {"double": 2, "triple": 3}

# Speech-to-text engines sometimes write a digit as a word that sounds the same. These
# count as digits only when a digit stands on both sides ("four two for two"), so the
# everyday words never glue unrelated numbers together.
SOUND_ALIKES: Final[dict[str, int]] = {"for": 4, "to": 2, "too": 2, "won": 1, "ate": 8}

# Hesitations and joiners that callers put between digit groups without ending the
# number: "four two four two, um, and then four two four two".
FILLERS: Final[frozenset[str]] = frozenset(
    {
        "uh",
        "uhh",
        "um",
        "umm",
        "uhm",
        "er",
        "erm",
        "ah",
        "hmm",
        "mm",
        "mhm",
        "and",
        "then",
        "so",
        "okay",
        "ok",
        "yeah",
        "yep",
        "yes",
        "right",
        "sorry",
        "next",
    }
)

NUMBER_WORDS: Final[frozenset[str]] = frozenset(
    [*UNITS, *TEENS, *TENS, *SCALES, *REPEATS, *SOUND_ALIKES]
)


def _alternation(words: frozenset[str] | dict[str, int]) -> str:
    # Longest first, so that "fourteen" is not read as "four" followed by "teen".
    return "|".join(sorted(words, key=lambda w: (-len(w), w)))


# Tokens of the precise reading, which runs on the lower-cased copy of the text (see
# LOWER): a number, possibly part of an amount ($25), a time (2:30), a date (12/26)
# or a decimal (98.6), which ends a run; a word; a pause mark that keeps "forty" and
# "two" apart; a line break or any other symbol, which ends a run. Spaces, dashes and
# brackets separate tokens without ending anything.
_NUMBER = r"\$?[0-9]+(?:[.,:/][0-9]+)*"
_WORD = r"[a-z0-9']+"
TOKEN: Final = re.compile(
    rf"(?P<number>{_NUMBER})"
    rf"|(?P<word>{_WORD})"
    r"|(?P<mark>[,.;?])"
    r"|(?P<stop>[^ \t\r\-()\"])"
)
# The number and word tokens alone. A mark or stop is one character that starts
# neither, so this splits numbers and words exactly where TOKEN does; it serves
# the digit count of a stretch, which needs only the token texts.
NUMBER_OR_WORD: Final = re.compile(f"{_NUMBER}|{_WORD}")

# Context words, nearest one before a number wins. Order matters inside each group:
# "insurance card" must be read as an identifier before "card" alone is read as
# payment.
_SECURITY = (
    r"security\s+code|cvv2?|cvc2?|cvn|cid|csc|card\s+verification"
    r"|verification\s+(?:code|number|value)"
    r"|(?:three|four|3|4)[\s-]digits?(?:\s+(?:code|number))?"
    r"(?:\s+on\s+the\s+(?:back|front))?"
    r"|(?:digits|code|number)\s+on\s+the\s+back|back\s+of\s+(?:the|your|my)\s+card"
)
_IDENTIFIER = (
    r"(?:insurance|id|member(?:ship)?|medicare|medicaid|health|benefits?|library"
    r"|loyalty|business|appointment|report|rewards)\s+card"
    r"|claims?|member|subscriber|policy|group|tracking|npi|order|confirmation"
    r"|reference|ref|invoice|authori[sz]ation|auth|mbi|mrn|chart|case|ticket"
    r"|routing|record|rx|prescription|pharmacy|lot|serial|tax|ein|dea|license"
    r"|licence|badge|employee|id"
)
# Other labelled numbers: they never suppress a card (they are too short to be
# one), but they end the reach of an earlier "security code" question.
_OTHER_LABEL = (
    r"phone|telephone|fax|cell|mobile|callback|call\s+back|extension|ext|zip"
    r"|postal|ssn|social|birth|dob|born|birthday|address|street|apartment|apt"
    r"|suite|room|floor|copay|balance|dollars?|cents|age|years?"
)
_PAYMENT = (
    r"card|credit|debit|visa|master\s?card|amex|american\s+express|discover"
    r"|payment|pay|paying|paid|charge|billing|expir\w*|exp|cardholder|jcb|maestro"
    r"|diners|unionpay"
)
# The context patterns run on the normalised text (see NORMALISE below): lower case,
# punctuation turned into spaces, which keeps them case-sensitive and fast.
CONTEXT: Final = re.compile(
    rf"\b(?:(?P<security>{_SECURITY})|(?P<identifier>{_IDENTIFIER})"
    rf"|(?P<payment>{_PAYMENT})|(?P<other>{_OTHER_LABEL}))\b"
)
IDENTIFIER: Final = re.compile(rf"\b(?:{_IDENTIFIER})\b")
# Words that, said between two parts of a number, show the parts answer different
# questions ("and the security code?", "and your member ID?").
TOPIC_CHANGE: Final = re.compile(rf"\b(?:{_SECURITY}|{_IDENTIFIER}|{_OTHER_LABEL})\b")

# A transcript line that opens a turn: "Caller: ...", "Agent 2: ...".
SPEAKER_LINE: Final = re.compile(
    r"^[ \t]*([A-Za-z][A-Za-z0-9 _.'-]{0,31}?)[ \t]*:(?=[ \t]|$)", re.MULTILINE
)
# A speaker label that ends in a number, as speech-to-text engines write them
# ("Speaker 2:", "Agent 1:", "SPEAKER_01:", "Speaker two:"): one to three words of
# letters, then one or two digits or a number word up to twelve. SPEAKER_LINE
# accepts any words before a colon, which in a note such as "Card 4111...: declined"
# includes a card, so only this narrower shape may have its number kept out of
# numbers. Group 1 is the name.
SPEAKER_NUMBER: Final = re.compile(
    r"[ \t]*([A-Za-z][A-Za-z'.]*(?:[ \t]+[A-Za-z][A-Za-z'.]*){0,2})[ \t_-]?"
    r"(?:[0-9]{1,2}|(?i:zero|one|two|three|four|five|six|seven|eight|nine|ten"
    r"|eleven|twelve))[ \t]*:(?=[ \t]|$)",
    re.MULTILINE,
)


def _trie(words: list[str]) -> str:
    # A prefix tree keeps the alternation cheap: the regex engine compares one first
    # letter per branch instead of trying every word at every position.
    heads: dict[str, list[str]] = {}
    for word in sorted(set(words)):
        heads.setdefault(word[0], []).append(word[1:])
    parts = []
    for head, tails in sorted(heads.items()):
        rest = [t for t in tails if t]
        if not rest:
            parts.append(re.escape(head))
            continue
        optional = "?" if len(rest) < len(tails) else ""
        parts.append(f"{re.escape(head)}(?:{_trie(rest)}){optional}")
    return "|".join(parts)


# The pre-filter works on a normalised copy of the text of the same length: lower
# case ASCII letters, digits and apostrophes kept, everything else a space. It finds
# every stretch that could hold a number (a superset of what the precise scan finds)
# at a speed the precise, case-insensitive patterns cannot reach on megabytes.
LOWER: Final = bytes((c | 0x20) if 0x41 <= c <= 0x5A else c for c in range(256))
NORMALISE: Final = bytes(
    (c | 0x20)
    if 0x41 <= c <= 0x5A
    else c
    if (0x61 <= c <= 0x7A or 0x30 <= c <= 0x39 or c in b"'\n")
    else 0x20
    for c in range(256)
)
_PRE_FILLERS = _trie([*FILLERS, *SOUND_ALIKES])
# One set test for the first character rules out most words before the word
# alternatives are tried one by one; a digit group opening with a set test, rather
# than a repeat, is likewise cheaper to reject.
_PRE_NUMBER_WORDS = [*UNITS, *TEENS, *TENS, *SCALES, *REPEATS]
_PRE_WORDS = _trie(_PRE_NUMBER_WORDS)
_PRE_FIRST = "".join(sorted({word[0] for word in _PRE_NUMBER_WORDS}))
_PRE_TOKEN = rf"(?=[0-9{_PRE_FIRST}])(?:[0-9][0-9]*|{_PRE_WORDS})(?![a-z0-9'])"
_PRE_GAP = rf" +(?:(?:{_PRE_FILLERS})(?![a-z0-9']) +)*"
# A lone number word ("two", "one") is by far the most common match in conversation
# and can be neither a card nor a security code on its own, so a stretch is two or
# more tokens, a group of three or more digits, or a lone token that ends a line (the
# last digits of a card spread over turns: "Caller: nine").
# The first token is matched once and the three cases are told apart after it,
# which keeps the scan several times faster than three separate alternatives.
_PRE_REST = rf"(?:(?:{_PRE_GAP}{_PRE_TOKEN})+|(?<=[0-9]{{3}})|(?= *(?:\n|$)))"
# The scan is split by the character before a stretch: a pattern that opens with one
# literal character lets the regex engine jump between candidates in a tight loop,
# where a character class makes it stop at every position. Stretches after a space
# are nearly all of them; the second pattern finds those opening an unlabelled line.
PREFILTER: Final = re.compile(rf" {_PRE_TOKEN}{_PRE_REST}")
PREFILTER_LINE_START: Final = re.compile(rf"\n{_PRE_TOKEN}{_PRE_REST}")

# Word stems whose presence makes short numbers worth a precise look as a possible
# security code. Found with plain substring search on the normalised text.
# "cid" and "csc" carry no leading space: a turn may open with them.
SECURITY_STEMS: Final[tuple[str, ...]] = (
    "secur",
    "cvv",
    "cvc",
    "cvn",
    "cid",
    "csc",
    "verif",
    "digit",
    "back",
)

# The most digits each word can stand for, to skip short stretches without reading
# them: "nineteen" is two digits, "hundred" adds at most two, "for" may be a 4.
DIGIT_BOUND: Final[dict[str, int]] = {
    **dict.fromkeys(SOUND_ALIKES, 1),
    **dict.fromkeys(UNITS, 1),
    **dict.fromkeys(TEENS, 2),
    **dict.fromkeys(TENS, 2),
    "hundred": 2,
    "thousand": 3,
    "double": 1,
    "triple": 2,
}
