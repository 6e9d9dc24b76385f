"""What makes a digit string a payment card number: length, Luhn check, issuer.

A payment card number (PAN) is 13 to 19 digits whose last digit is the Luhn check
digit. The issuer prefix tells card networks apart from the other Luhn-checked
numbers a front office hears, such as NPIs (prefix 80840) and many member IDs.
"""

from __future__ import annotations

from typing import Final

MIN_LENGTH: Final = 13
MAX_LENGTH: Final = 19

# Doubling a digit in the Luhn scheme gives a number whose digit sum is again one
# digit: 0..9 -> 0, 2, 4, 6, 8, 1, 3, 5, 7, 9.
_DOUBLED: Final = str.maketrans("0123456789", "0246813579")


def luhn_valid(digits: str) -> bool:
    """True when the string of ASCII digits passes the Luhn (mod 10) check."""
    # Every second digit from the right is doubled; the sum of the digit values is
    # the sum of their ASCII codes less 48 each, added up in C.
    counted = digits[::-2] + digits[-2::-2].translate(_DOUBLED)
    return (sum(counted.encode("ascii")) - 48 * len(digits)) % 10 == 0


def is_card_shaped(digits: str) -> bool:
    """True when the length is that of a card number and the Luhn check passes."""
    return MIN_LENGTH <= len(digits) <= MAX_LENGTH and luhn_valid(digits)


def has_card_issuer_prefix(digits: str) -> bool:
    """True when the leading digits belong to a payment card network.

    Covers Mastercard and Mir (2), American Express, Diners Club and JCB (30, 34-39),
    Visa (4), Mastercard and Maestro (5), Discover, UnionPay, RuPay and Maestro (6).
    Prefixes 0, 1, 7, 8 and 9 (airline, fuel, health and national schemes) are cards
    only when the caller says so; see the engine's context rule.
    """
    first = digits[0]
    if first in "2456":
        return True
    return first == "3" and digits[1] not in "123"
