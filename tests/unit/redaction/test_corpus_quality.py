"""Recall and precision of card-number redaction over the labelled corpus.

Recall must be perfect: a single card number left in a stored transcript is a
breach. Precision may be slightly lower, because an extra marker only hides a few
digits of a phone or claim number from the reader.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from perpetua.redaction import SpanKind, redact_text

CORPUS = Path(__file__).with_name("corpus.jsonl")


def _load() -> list[dict[str, object]]:
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _covered(part: list[int], spans: list[tuple[int, int]]) -> bool:
    start, end = part
    return any(s <= start and end <= e for s, e in spans)


def _overlaps(span: tuple[int, int], parts: list[list[int]]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in parts)


def _score() -> tuple[int, int, int, int, list[str]]:
    found_cards = expected_cards = true_spans = predicted_spans = 0
    misses: list[str] = []
    for index, entry in enumerate(_load()):
        text = str(entry["text"])
        spans = redact_text(text).spans
        redacted = [(s.start, s.end) for s in spans]
        cards = [(s.start, s.end) for s in spans if s.kind is SpanKind.CARD_NUMBER]
        labelled = entry["cards"]
        assert isinstance(labelled, list)
        for card in labelled:
            expected_cards += 1
            if all(_covered(part, redacted) for part in card):
                found_cards += 1
            else:
                misses.append(f"missed card in snippet {index}: {entry['note']}")
        parts = [part for card in labelled for part in card]
        for span in cards:
            predicted_spans += 1
            if _overlaps(span, parts):
                true_spans += 1
            else:
                misses.append(f"extra card span in snippet {index}: {entry['note']}")
    return found_cards, expected_cards, true_spans, predicted_spans, misses


def test_corpus_has_at_least_200_labelled_snippets() -> None:
    entries = _load()
    assert len(entries) >= 200
    assert sum(1 for e in entries if e["cards"]) >= 100
    assert sum(1 for e in entries if not e["cards"]) >= 60


def test_card_recall_is_total_and_precision_at_least_98_percent(
    capsys: pytest.CaptureFixture[str],
) -> None:
    found, expected, true, predicted, misses = _score()
    recall = found / expected
    precision = true / predicted if predicted else 1.0
    with capsys.disabled():
        print(
            f"\nredaction corpus: recall {recall:.4f} ({found}/{expected}),"
            f" precision {precision:.4f} ({true}/{predicted})"
        )
    assert recall == 1.0, misses
    assert precision >= 0.98, misses


def test_security_codes_in_the_corpus_are_redacted() -> None:
    for entry in _load():
        text = str(entry["text"])
        spans = [(s.start, s.end) for s in redact_text(text).spans]
        codes = entry["codes"]
        assert isinstance(codes, list)
        for code in codes:
            assert _covered(code, spans), entry["note"]
