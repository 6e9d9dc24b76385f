"""A small scheduler for periodic jobs inside `perpetua serve`.

A failing job is logged (its type, never its message) and tried again at its next
tick; it never stops the service or the other jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from perpetua.observability.logging import get_logger

log = get_logger("perpetua.jobs")


@dataclass(frozen=True)
class Job:
    name: str
    every_seconds: float
    run: Callable[[], Awaitable[object]]


class JobRunner:
    def __init__(self, jobs: list[Job]) -> None:
        self.jobs = jobs
        self._tasks: list[asyncio.Task[None]] = []

    async def _loop(self, job: Job) -> None:
        while True:
            try:
                result = await job.run()
                log.info("job_ran", job=job.name, result=str(result)[:80])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("job_failed", job=job.name, error_type=type(exc).__name__)
            await asyncio.sleep(job.every_seconds)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(job)) for job in self.jobs]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
