"""Provider pacing on Postgres: every worker's calls share one schedule, so together they stay
under the images-per-minute limit, and later work waits in the queue, not in a Lambda."""

from __future__ import annotations

import itertools
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from photo_restore.pacing import HEADROOM, PaceDecision, ProviderPacer
from photo_restore.repository import ProviderSlot, SqlRepository
from tests.helpers.images import old_photo
from tests.helpers.pacing_workers import paced_processes
from tests.helpers.pipeline import Pipeline

pytestmark = pytest.mark.database  # runs direct and through PgBouncer (tests/conftest.py)


def test_concurrent_reservations_get_distinct_slots_one_interval_apart(
    repository: SqlRepository,
) -> None:
    key, interval, workers = f"model-{uuid.uuid4()}", timedelta(seconds=2), 16
    start = threading.Barrier(workers)

    def reserve(_: int) -> ProviderSlot:
        start.wait()
        with repository.transaction() as tx:
            return tx.reserve_provider_slot(key, interval)

    with ThreadPoolExecutor(workers) as pool:
        slots = sorted(s.starts_at for s in pool.map(reserve, range(workers)))
    assert [b - a for a, b in itertools.pairwise(slots)] == [interval] * (workers - 1)
    with repository.transaction() as tx:  # the next one continues the schedule
        assert tx.reserve_provider_slot(key, interval).starts_at == slots[-1] + interval


def test_worker_processes_share_one_schedule_in_the_database(
    database_url: str, repository: SqlRepository
) -> None:
    """Separate processes (Lambda containers) calling at once: their slots together, not
    only each process's own, are one interval apart. A schedule kept in a process's memory
    would give each process its own first slot at "now", side by side with the others'."""
    key, images_per_minute, processes, calls = f"model-{uuid.uuid4()}", 60, 3, 8
    per_process = paced_processes(
        database_url, key, images_per_minute=images_per_minute, processes=processes, calls=calls
    )

    assert [len(slots) for slots in per_process] == [calls] * processes
    interval = ProviderPacer(
        repository, key=key, images_per_minute=images_per_minute, max_wait_seconds=0
    ).interval
    together = sorted(itertools.chain.from_iterable(per_process))
    assert [b - a for a, b in itertools.pairwise(together)] == [interval] * (len(together) - 1)


def test_paced_workers_stay_under_the_providers_limit_without_a_429(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = 30  # images a minute: a slot every ~2 s
    pipeline.standin.images_per_minute = limit
    pipeline.reload_worker(siliconflow_images_per_minute=limit, pacing_max_wait_seconds=0.5)
    # Each decision the worker's pacer takes, and when it let the call go. Asserted: the
    # slots and the calls against them (a loaded machine only makes a call later), not the
    # gaps between the stand-in's arrivals (a slot used a little late is by design).
    decisions: list[tuple[PaceDecision, datetime]] = []
    pace = ProviderPacer.pace

    def recorded(pacer: ProviderPacer, reserved: datetime | None = None) -> PaceDecision:
        decision = pace(pacer, reserved)
        decisions.append((decision, datetime.now(UTC)))
        return decision

    monkeypatch.setattr(ProviderPacer, "pace", recorded)
    photos = [pipeline.add_photo(old_photo((320, 240))) for _ in range(3)]
    for photo in photos:
        pipeline.request_restore(photo)
    pipeline.drain(timeout=60)

    assert [pipeline.photo(p.id).status for p in photos] == ["ready"] * 3
    assert pipeline.standin.refused_for_rate == 0
    assert len(pipeline.standin.admitted_times) == 3
    calls = [(d.slot, at) for d, at in decisions if not d.in_queue]
    assert len(calls) == 3
    assert all(slot is not None and slot <= called_at for slot, called_at in calls)
    slots = sorted(slot for slot, _ in calls if slot is not None)
    interval = timedelta(seconds=60 / (limit * HEADROOM))
    assert all(b - a >= interval for a, b in itertools.pairwise(slots))
