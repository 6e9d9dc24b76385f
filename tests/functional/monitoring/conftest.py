"""Fixtures for the monitoring tests: the service role's pool on the test database
and a way to run a detection tick at a chosen time."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from perpetua.config import Settings
from perpetua.db.pool import Database
from perpetua.db.target import DatabaseTarget
from perpetua.records.vault import Vault

T = TypeVar("T")


@pytest.fixture
def with_db(target: DatabaseTarget) -> Callable[[Any], Any]:
    """Run an async `work(db)` against this test's database with its own pool."""

    def run(work: Callable[[Database], Awaitable[T]]) -> T:
        async def go() -> T:
            db = Database(target.conninfo("service"), min_size=1, max_size=2)
            await db.open()
            try:
                return await work(db)
            finally:
                await db.close()

        return asyncio.run(go())

    return run


@pytest.fixture
def vault(settings: Settings) -> Vault:
    return Vault.open(settings.data_dir)


def later(minutes: float = 1) -> dt.datetime:
    """A tick time just after the events a test made (they carry the real time)."""
    return dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)
