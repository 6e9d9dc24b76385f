"""Card-number redaction: keeps payment card data out of stored transcripts and text.

Perpetua stores call transcripts and free-text fields as PHI; payment card numbers
and security codes must never reach that storage. This package finds them in any
form a caller or a speech-to-text engine writes them, replaces them with markers,
and says which stretches of audio to silence. It is pure: no I/O, no logging.
"""

# Decides between the compiled engine and its sources before anything imports it.
from perpetua.redaction import compiled as _compiled  # noqa: F401
from perpetua.redaction.errors import CardNumberInText
from perpetua.redaction.models import (
    CARD_MARKER,
    SECURITY_CODE_MARKER,
    AudioSpan,
    Redaction,
    Span,
    SpanKind,
    TranscriptRedaction,
    Turn,
    TurnSpan,
    Word,
)
from perpetua.redaction.service import (
    TranscriptFormatError,
    contains_card_number,
    ensure_no_card_number,
    redact_text,
    redact_turns,
    turns_from_json,
)

__all__ = [
    "CARD_MARKER",
    "SECURITY_CODE_MARKER",
    "AudioSpan",
    "CardNumberInText",
    "Redaction",
    "Span",
    "SpanKind",
    "TranscriptFormatError",
    "TranscriptRedaction",
    "Turn",
    "TurnSpan",
    "Word",
    "contains_card_number",
    "ensure_no_card_number",
    "redact_text",
    "redact_turns",
    "turns_from_json",
]
