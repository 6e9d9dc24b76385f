"""The refusal raised when a free-text field holds a payment card number.

Free-text fields (reason for visit, notes) are stored as PHI and are outside the
payment scope, so a card number typed into one is refused rather than stored. The
message and attributes carry where the number sat, never its digits.
"""

from __future__ import annotations

from perpetua.errors import InvalidInput
from perpetua.redaction.models import Span


class CardNumberInText(InvalidInput):
    # The detail is fixed on purpose: echoing the field back would put the card number
    # into API responses, browser history and error trackers.
    code = "card_number_in_text"
    status = 422
    title = "Remove the payment card number from this text"

    def __init__(self, spans: tuple[Span, ...]) -> None:
        super().__init__()
        self.spans = spans
