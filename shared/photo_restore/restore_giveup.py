"""Giving up on restore work: dead-lettered messages and photos whose message was lost."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from photo_restore.attempts import FINAL_STATES, Attempt, AttemptState
from photo_restore.errors import RestoreError, RetriesExhausted, StuckInProcessing, error_record
from photo_restore.events import NoEvents, RestoreAnnouncer
from photo_restore.queue import parse_restore_message
from photo_restore.repository import Repository
from photo_restore.settings import Settings
from photo_restore.storage import ObjectStorage, discard_images_of_unsuccessful_attempt

logger = logging.getLogger(__name__)


class GiveUpOutcome(StrEnum):
    REVERTED = "reverted"  # the photo is back to uploaded/ready, the error is on the attempt
    ALREADY_SETTLED = "already_settled"  # the attempt was settled before: no change
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
        repository: Repository,
        storage: ObjectStorage,
        settings: Settings,
        announcer: RestoreAnnouncer | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._announcer = announcer or RestoreAnnouncer(repository, NoEvents())
        self._repository = repository
        self._storage = storage
        self._settings = settings
        self._clock = clock

    def settle_dead_message(self, body: str) -> GiveUpReport:
        """Revert the photo if this message's attempt is still in flight; idempotent. Its event
        is published after; if the bus refuses, this raises and the redelivery publishes it."""
        message = parse_restore_message(body)
        if message is None:
            logger.error("dropping a dead message that is not a restore message: %.200s", body)
            return GiveUpReport(GiveUpOutcome.MALFORMED)
        with self._repository.transaction() as tx:
            attempt = tx.attempt(message.restore_attempt_id)
        if attempt is None or attempt.photo_id != message.photo_id:
            logger.error("dropping a dead message for an unknown attempt: %s", message)
            return GiveUpReport(GiveUpOutcome.UNKNOWN_ATTEMPT, message.photo_id)
        last = attempt.last_transient_error or {}
        reason = last.get("message", "no error was recorded")
        # The attempt counts the restore queue's deliveries itself: the DLQ's receive count
        # would add the DLQ handler's own receives to them.
        error = RetriesExhausted(
            f"gave up after {attempt.deliveries} deliveries; last error: {reason}"
        )
        report = self._give_up(attempt, error)
        self._announcer.announce(attempt.id)
        return report

    def sweep_stuck_photos(self) -> list[GiveUpReport]:
        """Settle photos idle in `processing` for longer than any message could keep them, and
        publish events whose publish failed before (a refused one waits for the next run)."""
        idle_before = self._clock() - timedelta(seconds=self._settings.stuck_after_seconds)
        error = StuckInProcessing(
            f"no progress for {self._settings.stuck_after_seconds} s: the message was lost"
        )
        with self._repository.transaction() as tx:
            stuck = tx.idle_processing_photo_ids(idle_before)
        reports = []
        for photo_id in stuck:
            with self._repository.transaction() as tx:
                attempt = tx.newest_attempt(photo_id)
            if attempt is not None:
                # The idle check is repeated in the revert: a delivery that started since the
                # query above restarted the clock, and keeps its photo.
                reports.append(self._give_up(attempt, error, idle_before=idle_before))
                self._announcer.announce_or_log(attempt.id)
                continue
            with self._repository.transaction() as tx:
                reverted = tx.revert_photo_without_attempt(photo_id, idle_before)
            if reverted:
                logger.warning("reverted photo %s: processing without any attempt", photo_id)
                reports.append(GiveUpReport(GiveUpOutcome.REVERTED, photo_id))
        self._announcer.announce_unannounced()
        return reports

    def _give_up(
        self, attempt: Attempt, error: RestoreError, *, idle_before: datetime | None = None
    ) -> GiveUpReport:
        state, reverted = attempt.state, False
        if state is AttemptState.PENDING:
            with self._repository.transaction() as tx:
                reverted = tx.fail_attempt(
                    photo_id=attempt.photo_id,
                    attempt_id=attempt.id,
                    error=error_record(error.code, error.message, kind=error.kind.value),
                    idle_before=idle_before,
                )
            if reverted:
                state = AttemptState.FAILED
        if state in FINAL_STATES and state is not AttemptState.SUCCEEDED:
            # Failed first, deleted second: a delivery racing us can no longer commit these
            # keys, and a retry of this give-up (already failed) still deletes them.
            discard_images_of_unsuccessful_attempt(self._storage, attempt)
        if not reverted:
            logger.info("attempt %s was already settled (%s)", attempt.id, state)
            return GiveUpReport(GiveUpOutcome.ALREADY_SETTLED, attempt.photo_id, attempt.id)
        logger.warning("gave up on attempt %s: %s", attempt.id, error.message)
        return GiveUpReport(GiveUpOutcome.REVERTED, attempt.photo_id, attempt.id)
