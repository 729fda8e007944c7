"""Use cases behind the HTTP API: request a restore, follow it, pick the restoration to keep."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from photo_restore.attempts import Attempt
from photo_restore.edit_request import EditRequest
from photo_restore.errors import (
    AlreadyProcessing,
    DependencyUnavailable,
    PhotoNotFound,
    PhotoNotRestorable,
    QueueUnavailable,
    RestoreAttemptNotFound,
    RestoreError,
    RestoreNotSucceeded,
    Unauthenticated,
    error_record,
)
from photo_restore.photos import Photo
from photo_restore.queue import RestoreMessage, RestoreQueue
from photo_restore.repository import Repository, Transaction
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

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Caller:
        """Supabase access-token claims (`sub`, `email`); fails closed when `sub` is absent."""
        user_id = claims.get("sub")
        if not isinstance(user_id, str) or not user_id:
            raise Unauthenticated("a valid bearer token is required")
        email = claims.get("email")
        return cls(user_id=user_id, email=email if isinstance(email, str) and email else None)


class RestoreRequests:
    def __init__(
        self,
        repository: Repository,
        queue: RestoreQueue,
        storage: ObjectStorage,
        settings: Settings,
    ) -> None:
        self._repository = repository
        self._queue = queue
        self._storage = storage
        self._settings = settings

    def request_restore(
        self, caller: Caller, photo_id: uuid.UUID, *, seed: int | None = None
    ) -> RestoreAccepted:
        """Claim the photo, record the attempt, commit, and only then enqueue.

        Order and why: the claim and the attempt commit together first, so a message can never
        name an attempt that does not exist. If the enqueue then fails, the claim is undone
        here (conditionally, so nothing newer is touched) and the client gets a 503 to retry.
        If the process dies between commit and enqueue, the sweeper settles the photo once the
        longest pipeline time has passed. No DB connection is held during the SQS call.
        `seed` (operators re-running an attempt) asks the provider for that seed.
        """
        attempt_id = uuid.uuid4()
        edit = EditRequest.from_settings(self._settings, seed=seed)
        with self._repository.transaction() as tx:
            if tx.claim_photo(photo_id, caller.user_id) is None:
                raise self._why_unclaimable(tx, caller, photo_id)
            # The data model keeps restorations under a job whose id is the photo's id (new
            # photo-based restorations set job.id = photo.id), so "job id" means "photo id".
            tx.ensure_job(photo_id, caller.email)
            tx.insert_attempt(
                attempt_id=attempt_id,
                photo_id=photo_id,
                model=edit.model,
                params=edit.attempt_params(),
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

    def _why_unclaimable(
        self, tx: Transaction, caller: Caller, photo_id: uuid.UUID
    ) -> RestoreError:
        photo = tx.owned_photo(photo_id, caller.user_id)
        if photo is None:
            return PhotoNotFound("no such photo")
        if photo.status is PhotoStatus.PROCESSING:
            in_flight = tx.newest_attempt(photo_id)
            return AlreadyProcessing(
                "a restoration of this photo is already in progress",
                restore_attempt_id=str(in_flight.id) if in_flight else None,
            )
        return PhotoNotRestorable(f"a photo that is {photo.status} cannot be restored")

    def _undo_claim(self, photo_id: uuid.UUID, attempt_id: uuid.UUID, cause: Exception) -> None:
        try:
            with self._repository.transaction() as tx:
                tx.fail_attempt(
                    photo_id=photo_id,
                    attempt_id=attempt_id,
                    error=error_record(QueueUnavailable.code, str(cause)),
                )
        except DependencyUnavailable:
            # The sweeper settles the photo later; the client still gets its 503.
            logger.exception("could not undo the claim of photo %s", photo_id)

    def get_photo(self, caller: Caller, photo_id: uuid.UUID) -> PhotoView:
        with self._repository.transaction() as tx:
            photo = self._visible_photo(tx, caller, photo_id)
            latest = tx.newest_attempt(photo_id)
        restored_url = None
        if photo.status is PhotoStatus.READY and photo.processed_key:
            restored_url = self._presign(photo.processed_key)
        return PhotoView(
            photo_id=photo.id,
            status=photo.status,
            latest_attempt=self._attempt_view(latest) if latest else None,
            restored_image_url=restored_url,
        )

    def list_restores(self, caller: Caller, photo_id: uuid.UUID) -> AttemptList:
        with self._repository.transaction() as tx:
            self._visible_photo(tx, caller, photo_id)
            attempts = tx.attempts(photo_id)
        return AttemptList(photo_id=photo_id, restores=[self._attempt_view(a) for a in attempts])

    def select_restore(
        self, caller: Caller, photo_id: uuid.UUID, attempt_id: uuid.UUID
    ) -> SelectedRestore:
        with self._repository.transaction() as tx:
            self._visible_photo(tx, caller, photo_id)
            attempt = tx.attempt(attempt_id)
            if attempt is None or attempt.photo_id != photo_id:
                raise RestoreAttemptNotFound("no such restore attempt for this photo")
            if attempt.restored_key is None:
                raise RestoreNotSucceeded("only a succeeded restoration can be selected")
            tx.select_restore(photo_id=photo_id, attempt_id=attempt_id, s3_key=attempt.restored_key)
        return SelectedRestore(photo_id=photo_id, selected_restore_id=attempt_id)

    @staticmethod
    def _visible_photo(tx: Transaction, caller: Caller, photo_id: uuid.UUID) -> Photo:
        photo = tx.owned_photo(photo_id, caller.user_id)
        if photo is None or photo.status is PhotoStatus.DELETED:
            raise PhotoNotFound("no such photo")
        return photo

    def _attempt_view(self, attempt: Attempt) -> AttemptView:
        restored = attempt.restored_key
        return AttemptView(
            restore_attempt_id=attempt.id,
            outcome=attempt.state,
            model=attempt.model,
            created_at=attempt.created_at,
            error=dict(attempt.error) if attempt.error else None,
            image_url=self._presign(restored) if restored else None,
        )

    def _presign(self, key: str) -> str:
        return self._storage.presigned_get_url(
            key, expires_seconds=self._settings.presigned_url_seconds
        )
