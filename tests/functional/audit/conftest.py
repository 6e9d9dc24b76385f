"""Fixtures the audit log's database tests share."""

from __future__ import annotations

import pytest

from perpetua.audit import db_verify


@pytest.fixture
def small_chunks(monkeypatch):
    # A handful of events then spans many chunks, so every reader gets several.
    monkeypatch.setattr(db_verify, "_CHUNK", 4)
