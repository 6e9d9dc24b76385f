"""The compiled redaction engine finds exactly what its pure-Python sources find.

Installs compile the engine with mypyc (setup.py); the sources stay the definition
of its rules. These tests run both on the benchmark's texts, the labelled corpus and
random mixtures of them, as plain text and as speaker turns, and require the same
spans, so that compiling can never change what is redacted.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from types import ModuleType

import pytest
from bench.redaction import _number_heavy_call, _realistic_call, make_text

from perpetua.redaction import Turn, compiled, redact_text, redact_turns

CORPUS = Path(__file__).with_name("corpus.jsonl")
PURE_REQUESTED = os.environ.get("PERPETUA_REDACTION_PURE") == "1"


@pytest.fixture(scope="module")
def sources() -> ModuleType:
    if not compiled.is_compiled():
        pytest.skip("the engine runs from its sources; there is nothing to compare")
    return compiled.load_sources()


def _corpus() -> list[str]:
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    return [str(json.loads(line)["text"]) for line in lines if line.strip()]


def test_installed_engine_is_compiled_and_current() -> None:
    if PURE_REQUESTED:
        pytest.skip("PERPETUA_REDACTION_PURE=1 asks for the sources")
    stale = compiled.stale_modules()
    assert not stale, f"rebuild with `pip install -e .`: {stale} changed since"
    assert compiled.is_compiled(), "install with `pip install -e .` to compile"


def test_sources_copy_runs_from_python_files(sources: ModuleType) -> None:
    assert sources.find_hits.__module__ == "perpetua.redaction.engine"
    assert str(sources.__file__).endswith("service.py")
    assert type(sources.find_hits).__name__ == "function"


@pytest.mark.parametrize(
    "make_call", [_realistic_call, _number_heavy_call], ids=["realistic", "heavy"]
)
def test_same_spans_on_the_benchmark_texts(sources: ModuleType, make_call) -> None:
    text, _ = make_text(make_call, 4_000_000)
    expected = sources.redact_text(text)
    assert expected.spans, "the benchmark texts hold cards"
    assert redact_text(text) == expected


def test_same_spans_on_corpus_and_random_splices(sources: ModuleType) -> None:
    rnd = random.Random(20)
    snippets = _corpus()
    bench_lines = make_text(_realistic_call, 200_000)[0].splitlines()
    texts = list(snippets)
    for _ in range(2000):
        parts = rnd.sample(snippets, 2) + rnd.sample(bench_lines, 4)
        rnd.shuffle(parts)
        texts.append("\n".join(parts))
    for text in texts:
        assert redact_text(text) == sources.redact_text(text), text

        turns = [
            Turn(*line.split(": ", 1)) if ": " in line else Turn(None, line)
            for line in text.splitlines()
        ]
        assert redact_turns(turns) == sources.redact_turns(turns), text
