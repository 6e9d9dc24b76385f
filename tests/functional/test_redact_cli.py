"""`perpetua redact` end to end: text on stdin, redacted text or spans on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from perpetua.redaction import CARD_MARKER, SECURITY_CODE_MARKER

_TRANSCRIPT = (
    "Caller: my Visa is 4242 4242 4242 4242\n"
    "Agent: and the CVV?\n"
    "Caller: 737\n"
    "Caller: call me back at 415-555-0134 on the 12th at 10:30\n"
)


def _redact(*options: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "perpetua.cli.main", "redact", *options],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        check=False,
    )


def test_redact_replaces_card_and_security_code_and_keeps_the_rest() -> None:
    done = _redact(stdin=_TRANSCRIPT)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"Caller: my Visa is {CARD_MARKER}\n"
        "Agent: and the CVV?\n"
        f"Caller: {SECURITY_CODE_MARKER}\n"
        "Caller: call me back at 415-555-0134 on the 12th at 10:30\n"
    )


def test_redact_never_writes_the_card_digits_anywhere() -> None:
    done = _redact(stdin=_TRANSCRIPT)
    assert "4242" not in done.stdout
    assert "4242" not in done.stderr
    assert "737" not in done.stderr


def test_redact_json_lists_spans_with_offsets_into_the_input() -> None:
    done = _redact("--json", stdin=_TRANSCRIPT)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert [span["kind"] for span in body["spans"]] == [
        "card_number",
        "security_code",
    ]
    card, code = body["spans"]
    assert _TRANSCRIPT[card["start"] : card["end"]] == "4242 4242 4242 4242"
    assert _TRANSCRIPT[code["start"] : code["end"]] == "737"
    assert "4242" not in done.stdout


def test_redact_passes_text_without_card_data_through_unchanged() -> None:
    text = "Caller: I'd like to book a visit next Tuesday at two thirty.\n"
    done = _redact(stdin=text)
    assert done.returncode == 0, done.stderr
    assert done.stdout == text


def test_redact_keeps_non_ascii_text_and_offsets_in_characters() -> None:
    text = "Caller: café — my card is 4111-1111-1111-1111, gracias\n"
    done = _redact("--json", stdin=text)
    body = json.loads(done.stdout)
    (span,) = body["spans"]
    assert text[span["start"] : span["end"]] == "4111-1111-1111-1111"
    assert body["text"] == f"Caller: café — my card is {CARD_MARKER}, gracias\n"
