"""Giving up on restore work: dead-lettered messages and photos whose message was lost."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Engine, Row

from photo_restore import repository as repo
from photo_restore.errors import RestoreError, RetriesExhausted, StuckInProcessing, error_record
from photo_restore.queue import parse_restore_message
from photo_restore.settings import Settings
from photo_restore.storage import ObjectStorage, discard_restoration_of_failed_attempt

logger = logging.getLogger(__name__)


class GiveUpOutcome(StrEnum):
    REVERTED = "reverted"  # the photo is back to uploaded/ready, the error is on the attempt
    ALREADY_SETTLED = "already_settled"  # the attempt succeeded or failed before: no change
    UNKNOWN_ATTEMPT = "unknown_attempt"  # no such attempt: logged and dropped
    MALFORMED = "malformed"  # not a restore message: logged and dropped


@dataclass(frozen=True)
class GiveUpReport:
    outcome: GiveUpOutcome
    photo_id: uuid.UUID | None = None
    restore_attempt_id: uuid.UUID | None = None


class RestoreGiveUp:
    def __init__(
        self,
        *,
        engine: Engine,
        storage: ObjectStorage,
        settings: Settings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._storage = storage
        self._settings = settings
        self._clock = clock

    def settle_dead_message(self, body: str, *, receive_count: int | None = None) -> GiveUpReport:
        """Revert the photo if this message's attempt is still in flight; idempotent."""
        message = parse_restore_message(body)
        if message is None:
            logger.error("dropping a dead message that is not a restore message: %.200s", body)
            return GiveUpReport(GiveUpOutcome.MALFORMED)
        with self._engine.connect() as conn:
            attempt = repo.find_attempt(conn, message.restore_attempt_id)
        if attempt is None or attempt.job_id != message.photo_id:
            logger.error("dropping a dead message for an unknown attempt: %s", message)
            return GiveUpReport(GiveUpOutcome.UNKNOWN_ATTEMPT, message.photo_id)
        last = (attempt.params or {}).get(repo.LAST_TRANSIENT_ERROR) or {}
        reason = last.get("message", "no error was recorded")
        error = RetriesExhausted(
            f"gave up after {receive_count or 'repeated'} deliveries; last error: {reason}"
        )
        return self._give_up(message.photo_id, attempt, error)

    def sweep_stuck_photos(self) -> list[GiveUpReport]:
        """Settle photos idle in `processing` for longer than any message could keep them."""
        cutoff = self._clock() - timedelta(seconds=self._settings.stuck_after_seconds)
        error = StuckInProcessing(
            f"no progress for {self._settings.stuck_after_seconds} s: the message was lost"
        )
        reports = []
        with self._engine.connect() as conn:
            stuck = repo.find_stuck_photo_ids(conn, cutoff)
        for photo_id in stuck:
            with self._engine.connect() as conn:
                attempt = repo.newest_attempt(conn, photo_id)
            if attempt is not None:
                # The idle check is repeated in the revert: a delivery that started since the
                # query above restarted the clock, and keeps its photo.
                idle = [repo.idle_since_before(cutoff)]
                reports.append(self._give_up(photo_id, attempt, error, where=idle))
                continue
            with self._engine.begin() as conn:
                if repo.revert_photo_without_attempt(conn, photo_id, cutoff):
                    logger.warning("reverted photo %s: processing without any attempt", photo_id)
                    reports.append(GiveUpReport(GiveUpOutcome.REVERTED, photo_id))
        return reports

    def _give_up(
        self,
        photo_id: uuid.UUID,
        attempt: Row[Any],
        error: RestoreError,
        where: Sequence[ColumnElement[bool]] = (),
    ) -> GiveUpReport:
        outcome = repo.attempt_outcome(attempt.s3_key, attempt.params)
        reverted = False
        if outcome is repo.AttemptOutcome.PENDING:
            with self._engine.begin() as conn:
                reverted = repo.fail_attempt(
                    conn,
                    photo_id=photo_id,
                    attempt_id=attempt.id,
                    error=error_record(error.code, error.message, kind=error.kind.value),
                    where=where,
                )
            if reverted:
                outcome = repo.AttemptOutcome.FAILED
        if outcome is repo.AttemptOutcome.FAILED:
            # Failed first, deleted second: a delivery racing us can no longer commit this key,
            # and a retry of this give-up (already failed) still deletes it.
            discard_restoration_of_failed_attempt(self._storage, photo_id, attempt.created_at)
        if not reverted:
            logger.info("attempt %s was already settled (%s)", attempt.id, outcome)
            return GiveUpReport(GiveUpOutcome.ALREADY_SETTLED, photo_id, attempt.id)
        logger.warning("gave up on attempt %s: %s", attempt.id, error.message)
        return GiveUpReport(GiveUpOutcome.REVERTED, photo_id, attempt.id)
