"""Use cases behind the HTTP API: request a restore, follow it, pick the restoration to keep."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Row
from sqlalchemy.exc import SQLAlchemyError

from photo_restore import repository as repo
from photo_restore.errors import (
    AlreadyProcessing,
    DependencyUnavailable,
    PhotoNotFound,
    PhotoNotRestorable,
    QueueUnavailable,
    RestoreAttemptNotFound,
    RestoreNotSucceeded,
    error_record,
)
from photo_restore.queue import RestoreMessage, RestoreQueue
from photo_restore.settings import Settings
from photo_restore.status import PhotoStatus
from photo_restore.storage import ObjectStorage
from photo_restore.views import (
    AttemptList,
    AttemptView,
    PhotoView,
    RestoreAccepted,
    SelectedRestore,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    """The authenticated user, from the JWT authorizer's claims."""

    user_id: str
    email: str | None


def initial_attempt_params(settings: Settings) -> dict[str, Any]:
    return {
        "provider": "siliconflow",
        "model": settings.siliconflow_model,
        "prompt": settings.restore_prompt,
        "num_inference_steps": settings.num_inference_steps,
        "guidance_scale": settings.guidance_scale,
    }


class RestoreRequests:
    def __init__(
        self, engine: Engine, queue: RestoreQueue, storage: ObjectStorage, settings: Settings
    ) -> None:
        self._engine = engine
        self._queue = queue
        self._storage = storage
        self._settings = settings

    def request_restore(self, caller: Caller, photo_id: uuid.UUID) -> RestoreAccepted:
        """Claim the photo, record the attempt, commit, and only then enqueue.

        Order and why: the claim and the attempt commit together first, so a message can never
        name an attempt that does not exist. If the enqueue then fails, the claim is undone
        here (conditionally, so nothing newer is touched) and the client gets a 503 to retry.
        If the process dies between commit and enqueue, the sweeper settles the photo once the
        longest pipeline time has passed. No DB connection is held during the SQS call.
        """
        attempt_id = uuid.uuid4()
        with self._transaction() as conn:
            claimed = repo.claim_photo_for_restore(conn, photo_id, caller.user_id)
            if claimed is None:
                self._raise_unclaimable(conn, caller, photo_id)
            repo.ensure_job(conn, photo_id, caller.email)
            repo.insert_attempt(
                conn,
                attempt_id=attempt_id,
                job_id=photo_id,
                model=self._settings.siliconflow_model,
                params=initial_attempt_params(self._settings),
            )

        message = RestoreMessage(photo_id=photo_id, restore_attempt_id=attempt_id)
        try:
            self._queue.send(message)
        except QueueUnavailable as error:
            self._undo_claim(photo_id, attempt_id, error)
            raise
        return RestoreAccepted(
            photo_id=photo_id, restore_attempt_id=attempt_id, status=PhotoStatus.PROCESSING
        )

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """One short transaction; a database failure becomes a 503 the client may retry."""
        try:
            with self._engine.begin() as conn:
                yield conn
        except SQLAlchemyError as error:
            raise DependencyUnavailable("the database is unavailable; try again") from error

    def _raise_unclaimable(self, conn: Connection, caller: Caller, photo_id: uuid.UUID) -> None:
        photo = repo.find_owned_photo(conn, photo_id, caller.user_id)
        if photo is None:
            raise PhotoNotFound("no such photo")
        if photo.status == PhotoStatus.PROCESSING:
            in_flight = repo.newest_attempt(conn, photo_id)
            raise AlreadyProcessing(
                "a restoration of this photo is already in progress",
                restore_attempt_id=str(in_flight.id) if in_flight else None,
            )
        raise PhotoNotRestorable(f"a photo that is {photo.status} cannot be restored")

    def _undo_claim(self, photo_id: uuid.UUID, attempt_id: uuid.UUID, cause: Exception) -> None:
        try:
            with self._engine.begin() as conn:
                repo.fail_attempt(
                    conn,
                    photo_id=photo_id,
                    attempt_id=attempt_id,
                    error=error_record(QueueUnavailable.code, str(cause)),
                )
        except SQLAlchemyError:
            # The sweeper settles the photo later; the client still gets its 503.
            logger.exception("could not undo the claim of photo %s", photo_id)

    def get_photo(self, caller: Caller, photo_id: uuid.UUID) -> PhotoView:
        with self._transaction() as conn:
            photo = self._owned_photo(conn, caller, photo_id)
            latest = repo.newest_attempt(conn, photo_id)
        restored_url = None
        if photo.status == PhotoStatus.READY and photo.processed_key:
            restored_url = self._presign(photo.processed_key)
        return PhotoView(
            photo_id=photo.id,
            status=photo.status,
            latest_attempt=self._attempt_view(latest) if latest else None,
            restored_image_url=restored_url,
        )

    def list_restores(self, caller: Caller, photo_id: uuid.UUID) -> AttemptList:
        with self._transaction() as conn:
            self._owned_photo(conn, caller, photo_id)
            attempts = repo.list_attempts(conn, photo_id)
        return AttemptList(photo_id=photo_id, restores=[self._attempt_view(a) for a in attempts])

    def select_restore(
        self, caller: Caller, photo_id: uuid.UUID, attempt_id: uuid.UUID
    ) -> SelectedRestore:
        with self._transaction() as conn:
            self._owned_photo(conn, caller, photo_id)
            attempt = repo.find_attempt(conn, attempt_id)
            if attempt is None or attempt.job_id != photo_id:
                raise RestoreAttemptNotFound("no such restore attempt for this photo")
            if (
                repo.attempt_outcome(attempt.s3_key, attempt.params)
                != repo.AttemptOutcome.SUCCEEDED
            ):
                raise RestoreNotSucceeded("only a succeeded restoration can be selected")
            repo.select_restore(
                conn, photo_id=photo_id, attempt_id=attempt_id, s3_key=attempt.s3_key
            )
        return SelectedRestore(photo_id=photo_id, selected_restore_id=attempt_id)

    def _owned_photo(self, conn: Connection, caller: Caller, photo_id: uuid.UUID) -> Row[Any]:
        photo = repo.find_owned_photo(conn, photo_id, caller.user_id)
        if photo is None or photo.status == PhotoStatus.DELETED:
            raise PhotoNotFound("no such photo")
        return photo

    def _attempt_view(self, attempt: Row[Any]) -> AttemptView:
        outcome = repo.attempt_outcome(attempt.s3_key, attempt.params)
        error = (
            (attempt.params or {}).get("error") if outcome is repo.AttemptOutcome.FAILED else None
        )
        return AttemptView(
            restore_attempt_id=attempt.id,
            outcome=outcome,
            model=attempt.model,
            created_at=attempt.created_at,
            error=error,
            image_url=self._presign(attempt.s3_key)
            if outcome is repo.AttemptOutcome.SUCCEEDED
            else None,
        )

    def _presign(self, key: str) -> str:
        return self._storage.presigned_get_url(
            key, expires_seconds=self._settings.presigned_url_seconds
        )
