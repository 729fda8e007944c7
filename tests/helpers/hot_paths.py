"""The hot paths of issue 17, each a call of the real use case on one photo, in the order one
restoration cycle runs them: the query-plan test EXPLAINs what each emits, and
benchmarks/bench_volume.py times each on a seeded and an empty database.

A cycle leaves the photo as it found it (restorable), so cycles repeat; each adds four
attempts to the photo (a success, a cancel, a dead message, a failure).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, event

from photo_restore.events import NoEvents, RestoreAnnouncer
from photo_restore.pacing import ProviderPacer
from photo_restore.queue import RestoreMessage, RestoreQueue
from photo_restore.repository import SqlRepository
from photo_restore.restore_giveup import RestoreGiveUp
from photo_restore.restore_requests import Caller, RestoreRequests, encode_cursor
from photo_restore.restore_runs import RestoreRun
from photo_restore.settings import Settings
from photo_restore.storage import ObjectStorage
from photo_restore.worker_wiring import build_restore_run

PAGE = 20
DEEP_PAGE_AFTER = 40  # the deep page starts after this many attempts (page 3)
PACING_KEY = "hot-paths-pacing"


@dataclass(frozen=True)
class Statement:
    sql: str  # as the driver got it (pg8000's paramstyle)
    parameters: Any
    seconds: float


@dataclass
class StatementLog:
    """What an engine sends to the database while `recording`, with each statement's time:
    SQLAlchemy's cursor events, so what is seen is what the real code emits."""

    engine: Engine
    statements: list[Statement] = field(default_factory=list)
    _started: list[float] = field(default_factory=list)

    @contextmanager
    def recording(self) -> Iterator[list[Statement]]:
        import time

        recorded: list[Statement] = []

        def before(conn: Any, cursor: Any, sql: str, parameters: Any, *args: Any) -> None:
            self._started.append(time.perf_counter())

        def after(conn: Any, cursor: Any, sql: str, parameters: Any, *args: Any) -> None:
            seconds = time.perf_counter() - self._started.pop()
            recorded.append(Statement(sql, parameters, seconds))

        event.listen(self.engine, "before_cursor_execute", before)
        event.listen(self.engine, "after_cursor_execute", after)
        try:
            yield recorded
        finally:
            event.remove(self.engine, "before_cursor_execute", before)
            event.remove(self.engine, "after_cursor_execute", after)
            self.statements.extend(recorded)


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[], object]
    measured: bool = True  # False: a preparation (a claim to cancel), not a hot path


class HotPaths:
    """The use cases as the functions build them, on `engine`, for `caller`'s photo."""

    def __init__(
        self, engine: Engine, settings: Settings, s3: Any, sqs: Any, caller: Caller, photo_id: Any
    ) -> None:
        self.repository = SqlRepository(engine)
        self.settings = settings
        self.caller = caller
        self.photo_id = photo_id
        self._storage = ObjectStorage(s3, settings.bucket_name)
        self._queue = RestoreQueue(sqs, settings.queue_url)
        self._announcer = RestoreAnnouncer(self.repository, NoEvents())
        self.requests = self.fresh_requests()
        self.run: RestoreRun = build_restore_run(
            settings,
            repository=self.repository,
            storage=self._storage,
            queue=self._queue,
            api_key="hot-paths-key",
            announcer=self._announcer,
        )
        self.giveup = RestoreGiveUp(
            repository=self.repository,
            storage=self._storage,
            settings=settings,
            announcer=self._announcer,
        )
        self.pacer = ProviderPacer(
            self.repository,
            key=PACING_KEY,
            images_per_minute=1_000_000,
            max_wait_seconds=0,
            sleep=lambda seconds: None,
        )

    def settling_sweep(self) -> Step:
        """A sweeper run an hour past the stuck limit, when every photo in `processing` (the
        in-flight ones of a seed included) is stuck: the sweep's settling statements too."""
        later = datetime.now(UTC) + timedelta(seconds=self.settings.stuck_after_seconds + 3600)
        giveup = RestoreGiveUp(
            repository=self.repository,
            storage=self._storage,
            settings=self.settings,
            announcer=self._announcer,
            clock=lambda: later,
        )
        return Step("sweeper run (settling stuck photos)", giveup.sweep_stuck_photos)

    def fresh_requests(self) -> RestoreRequests:
        """A new API container's use case: no median cached yet (the estimate reads it)."""
        return RestoreRequests(
            self.repository, self._queue, self._storage, self.settings, announcer=self._announcer
        )

    def cycle(self) -> list[Step]:
        """One restoration of the photo and every other hot path around it, in order."""
        state: dict[str, Any] = {}

        def claim(slot: str) -> Callable[[], object]:
            def claimed() -> object:
                key = f"hot-paths-{uuid.uuid4()}"
                accepted = self.requests.request_restore(
                    self.caller, self.photo_id, idempotency_key=key
                )
                state[slot] = accepted.body.restore_attempt_id
                state["key"] = key
                return accepted

            return claimed

        def replay() -> object:
            again = self.requests.request_restore(
                self.caller, self.photo_id, idempotency_key=state["key"]
            )
            assert again.replayed
            return again

        def message(slot: str) -> RestoreMessage:
            return RestoreMessage(photo_id=self.photo_id, restore_attempt_id=state[slot])

        def worker_failures() -> object:
            # The worker's transactions on its failure paths (a transient error, a daily cap's
            # hold, a permanent failure), which a run against a healthy provider never takes.
            attempt_id = state["failing"]
            with self.repository.transaction() as tx:
                tx.start_attempt(self.photo_id, attempt_id)
            with self.repository.transaction() as tx:
                tx.note_transient_error(attempt_id, {"code": "provider_unavailable"})
            with self.repository.transaction() as tx:
                tx.wait_for_capacity(attempt_id, {"until": "2099-01-01T00:00:00+00:00"})
            with self.repository.transaction() as tx:
                return tx.fail_attempt(
                    photo_id=self.photo_id,
                    attempt_id=attempt_id,
                    error={"code": "provider_rejected", "message": "hot paths"},
                )

        def find_deep_cursor() -> None:
            # The cursor after the photo's DEEP_PAGE_AFTER newest attempts (or all it has).
            with self.repository.transaction() as tx:
                attempts = tx.attempts_page(self.photo_id, limit=DEEP_PAGE_AFTER)
            state["cursor"] = encode_cursor(attempts[-1])

        return [
            Step("claim (quota, Idempotency-Key)", claim("restored")),
            Step("claim replayed (same Idempotency-Key)", replay),
            Step(
                "GET /photos/{id} (processing, new container)",
                lambda: self.fresh_requests().get_photo(self.caller, self.photo_id),
            ),
            Step("worker run (stand-in provider)", lambda: self.run.run(message("restored"))),
            Step(
                "GET /photos/{id}/restores (first page)",
                lambda: self.requests.list_restores(self.caller, self.photo_id, limit=PAGE),
            ),
            Step("find the deep page's cursor", find_deep_cursor, measured=False),
            Step(
                "GET /photos/{id}/restores (deep page)",
                lambda: self.requests.list_restores(
                    self.caller, self.photo_id, limit=PAGE, cursor=state["cursor"]
                ),
            ),
            Step(
                "select a restoration",
                lambda: self.requests.select_restore(self.caller, self.photo_id, state["restored"]),
            ),
            Step("claim to cancel", claim("canceled"), measured=False),
            Step("cancel", lambda: self.requests.cancel_restore(self.caller, self.photo_id)),
            Step("claim to dead-letter", claim("dead"), measured=False),
            Step(
                "DLQ handler",
                lambda: self.giveup.settle_dead_message(message("dead").model_dump_json()),
            ),
            Step("claim to fail", claim("failing"), measured=False),
            Step("worker failure transactions", worker_failures),
            Step("sweeper run", self.giveup.sweep_stuck_photos),
            Step("pacing reservation", self.pacer.pace),
        ]
