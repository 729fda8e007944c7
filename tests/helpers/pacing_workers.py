"""Worker processes that pace provider calls, each with its own engine and ProviderPacer, as
separate Lambda containers do: what they share is the database, nothing in memory.

Run in processes of the 'spawn' start method (a fresh interpreter, no state inherited)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime

from photo_restore.db import create_db_engine
from photo_restore.pacing import ProviderPacer
from photo_restore.repository import SqlRepository

# Generous: starting a spawned interpreter on a loaded machine takes seconds, not a margin.
START_TIMEOUT_SECONDS = 120

_start: multiprocessing.synchronize.Barrier | None = None


def _keep_start_barrier(start: multiprocessing.synchronize.Barrier) -> None:
    global _start
    _start = start


def reserve_slots(
    database_url: str, key: str, images_per_minute: int, calls: int
) -> list[datetime]:
    """The slots this process's pacer gave its `calls` calls; it never really waits for one
    (the slots are what is under test, not the clock)."""
    engine = create_db_engine(database_url, ssl_mode="disable")
    try:
        pacer = ProviderPacer(
            SqlRepository(engine),
            key=key,
            images_per_minute=images_per_minute,
            max_wait_seconds=float("inf"),  # every slot is "waited for", with the sleep below
            sleep=lambda _seconds: None,
        )
        assert _start is not None, "run through paced_processes()"
        _start.wait(START_TIMEOUT_SECONDS)  # every process reserves at once: they contend
        slots = [pacer.pace().slot for _ in range(calls)]
    finally:
        engine.dispose()
    assert all(slot is not None for slot in slots), "pacing fell back to unpaced calls"
    return [slot for slot in slots if slot is not None]


def paced_processes(
    database_url: str, key: str, *, images_per_minute: int, processes: int, calls: int
) -> list[list[datetime]]:
    """Each process's reserved slots, the processes started together on one schedule `key`."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(processes)
    with ProcessPoolExecutor(
        processes, mp_context=context, initializer=_keep_start_barrier, initargs=(start,)
    ) as pool:
        futures = [
            pool.submit(reserve_slots, database_url, key, images_per_minute, calls)
            for _ in range(processes)
        ]
        return [future.result(timeout=START_TIMEOUT_SECONDS * 2) for future in futures]
