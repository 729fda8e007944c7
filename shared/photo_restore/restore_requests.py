"""Use cases behind the HTTP API: request a restore (idempotently, within a quota), follow it,
cancel it, pick the restoration to keep."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from photo_restore.attempts import IDEMPOTENCY_KEY, Attempt, AttemptState, Phase
from photo_restore.edit_request import EditRequest
from photo_restore.errors import (
    AlreadyProcessing,
    AnonymousNotAllowed,
    Canceled,
    DependencyUnavailable,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    InvalidRequest,
    NotProcessing,
    PhotoGone,
    PhotoNotFound,
    PhotoNotRestorable,
    QueueUnavailable,
    QuotaExceeded,
    RateExceeded,
    RestoreAttemptNotFound,
    RestoreError,
    RestoreNotSucceeded,
    Unauthenticated,
    error_record,
    public_error,
)
from photo_restore.events import NoEvents, RestoreAnnouncer
from photo_restore.photos import Photo
from photo_restore.queue import RestoreMessage, RestoreQueue
from photo_restore.repository import AttemptCursor, Repository, Transaction
from photo_restore.settings import Settings
from photo_restore.status import PhotoStatus
from photo_restore.storage import ObjectStorage, discard_images_of_unsuccessful_attempt
from photo_restore.views import (
    AttemptError,
    AttemptList,
    AttemptView,
    FaithfulnessView,
    ImageProvenance,
    ImageView,
    PhotoView,
    RestoreAccepted,
    SelectedRestore,
)

logger = logging.getLogger(__name__)

# How long an Idempotency-Key is remembered, and the quota's window.
IDEMPOTENCY_WINDOW = timedelta(hours=24)
QUOTA_WINDOW = timedelta(hours=24)
RATE_WINDOW = timedelta(minutes=1)
# Printable ASCII, 1-255 characters.
_IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,255}")
MAX_PAGE_SIZE = 100
# The estimate's median is read at most this often per container (one small query).
MEDIAN_MAX_AGE_SECONDS = 60.0
MEDIAN_SAMPLE = 50


@dataclass(frozen=True)
class Caller:
    """The authenticated user, from the JWT authorizer's claims."""

    user_id: str
    email: str | None
    # A Supabase anonymous session (sign-in without an account): every one is a new user.
    anonymous: bool = False

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Caller:
        """Supabase access-token claims (`sub`, `email`, `is_anonymous`); fails closed when
        `sub` is absent. API Gateway passes every claim as text, so `is_anonymous` arrives as
        "true"; any value but false is taken as anonymous."""
        user_id = claims.get("sub")
        if not isinstance(user_id, str) or not user_id:
            raise Unauthenticated("a valid bearer token is required")
        email = claims.get("email")
        flag = claims.get("is_anonymous", False)
        anonymous = flag not in (False, "false", "False", None, "")
        return cls(
            user_id=user_id,
            email=email if isinstance(email, str) and email else None,
            anonymous=anonymous,
        )


@dataclass(frozen=True)
class Acceptance:
    """The 202 answer, and whether it replays an earlier request's (same Idempotency-Key)."""

    body: RestoreAccepted
    replayed: bool = False


def checked_idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not _IDEMPOTENCY_KEY.fullmatch(value):
        raise InvalidRequest(
            "Idempotency-Key must be 1 to 255 printable ASCII characters",
            field="Idempotency-Key",
        )
    return value


def encode_cursor(attempt: Attempt) -> str:
    """Where a page ended, and whose photo's pages it belongs to."""
    position = {
        "p": str(attempt.photo_id),
        "t": attempt.created_at.isoformat(),
        "id": str(attempt.id),
    }
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, photo_id: uuid.UUID) -> AttemptCursor:
    """The position of a cursor `encode_cursor` made for this photo's pages; a garbage cursor
    and one made for another photo are refused alike."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = json.loads(raw)
        if uuid.UUID(position["p"]) != photo_id:
            raise ValueError("another photo's cursor")
        created_at = datetime.fromisoformat(position["t"])
        if created_at.tzinfo is None:
            raise ValueError("naive time")
        return AttemptCursor(created_at, uuid.UUID(position["id"]))
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise InvalidRequest(
            "cursor is not one this API returned for this photo (pass next_cursor as it is)",
            field="cursor",
        ) from None


class RestoreRequests:
    def __init__(
        self,
        repository: Repository,
        queue: RestoreQueue,
        storage: ObjectStorage,
        settings: Settings,
        *,
        announcer: RestoreAnnouncer | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._repository = repository
        self._queue = queue
        self._storage = storage
        # Without a bus (unit tests, tools), events are only logged.
        self._announcer = announcer or RestoreAnnouncer(repository, NoEvents())
        self._settings = settings
        self._clock = clock
        self._median_lock = threading.Lock()
        self._median: tuple[float, float | None] | None = None  # (read at, seconds)

    # --- requesting ------------------------------------------------------------------------

    def request_restore(
        self,
        caller: Caller,
        photo_id: uuid.UUID,
        *,
        seed: int | None = None,
        idempotency_key: str | None = None,
    ) -> Acceptance:
        """Claim the photo, record the attempt, commit, and only then enqueue.

        Order and why: the claim and the attempt commit together first, so a message can never
        name an attempt that does not exist. If the enqueue then fails, the claim is undone
        here (conditionally, so nothing newer is touched) and the client gets a 503 to retry.
        If the process dies between commit and enqueue, the sweeper settles the photo once the
        longest pipeline time has passed. No DB connection is held during the SQS call.

        The quota and the Idempotency-Key are checked under a per-user transaction lock, so
        concurrent requests of one user see each other's commits: a key names one attempt, and
        a quota of N admits N. `seed` (operators re-running an attempt) asks for that seed.
        """
        key = checked_idempotency_key(idempotency_key)
        quota = self._quota_of(caller)
        per_minute = self._settings.restores_per_user_per_minute
        attempt_id = uuid.uuid4()
        edit = EditRequest.from_settings(self._settings, seed=seed)
        params = edit.attempt_params() | ({IDEMPOTENCY_KEY: key} if key else {})
        with self._repository.transaction() as tx:
            if key or quota or per_minute:
                tx.lock_owner(caller.user_id)
            if key and (replay := self._replay(tx, caller, photo_id, key)) is not None:
                return replay
            if tx.claim_photo(photo_id, caller.user_id) is None:
                raise self._why_unclaimable(tx, caller, photo_id)
            if quota:
                self._check_quota(tx, caller, quota)  # raising rolls the claim back
            if per_minute:
                self._check_rate(tx, caller, per_minute)
            # The data model keeps restorations under a job whose id is the photo's id (new
            # photo-based restorations set job.id = photo.id), so "job id" means "photo id".
            tx.ensure_job(photo_id, caller.email)
            tx.insert_attempt(
                attempt_id=attempt_id, photo_id=photo_id, model=edit.model, params=params
            )

        message = RestoreMessage(photo_id=photo_id, restore_attempt_id=attempt_id)
        try:
            self._queue.send(message)
        except QueueUnavailable as error:
            self._undo_claim(photo_id, attempt_id, error)
            raise
        if key:
            # Until this is recorded, a retry with the key is told to wait, not replayed: the
            # send might still fail and undo the claim.
            with self._repository.transaction() as tx:
                tx.mark_enqueued(attempt_id)
        return Acceptance(self._accepted(photo_id, attempt_id))

    @staticmethod
    def _accepted(photo_id: uuid.UUID, attempt_id: uuid.UUID) -> RestoreAccepted:
        return RestoreAccepted(
            photo_id=photo_id, restore_attempt_id=attempt_id, status=PhotoStatus.PROCESSING
        )

    def _replay(
        self, tx: Transaction, caller: Caller, photo_id: uuid.UUID, key: str
    ) -> Acceptance | None:
        """The first answer to this key, if it was accepted; None when the key is unused (or
        its request never got as far as the queue, so nothing was accepted)."""
        earlier = tx.keyed_attempt(caller.user_id, key, window=IDEMPOTENCY_WINDOW)
        if earlier is None:
            return None
        if earlier.photo_id != photo_id:
            raise IdempotencyKeyReused("this Idempotency-Key was used for another photo")
        # Enqueued is recorded after the send; a delivery proves it too (if recording failed).
        if not earlier.enqueued and earlier.deliveries == 0:
            if earlier.state is AttemptState.PENDING:
                raise IdempotencyInProgress("a request with this Idempotency-Key is in progress")
            return None
        return Acceptance(self._accepted(photo_id, earlier.id), replayed=True)

    def _quota_of(self, caller: Caller) -> int:
        """The caller's daily quota (0: unlimited); an anonymous session's is its own, and with
        none set anonymous sessions may not restore at all."""
        if not caller.anonymous:
            return self._settings.daily_restores_per_user
        quota = self._settings.daily_restores_per_anonymous_session
        if quota == 0:
            raise AnonymousNotAllowed("restoring needs an account: this is an anonymous session")
        return quota

    def _check_quota(self, tx: Transaction, caller: Caller, quota: int) -> None:
        usage = tx.quota_usage(caller.user_id, window=QUOTA_WINDOW)
        if usage.counted >= quota:
            raise QuotaExceeded(
                f"the limit of {quota} restorations in 24 hours is reached",
                retry_after_seconds=max(1, usage.seconds_until_oldest_leaves),
            )

    def _check_rate(self, tx: Transaction, caller: Caller, per_minute: int) -> None:
        usage = tx.quota_usage(caller.user_id, window=RATE_WINDOW)
        if usage.counted >= per_minute:
            raise RateExceeded(
                f"the limit of {per_minute} restorations a minute is reached",
                retry_after_seconds=max(1, usage.seconds_until_oldest_leaves),
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

    # --- canceling -------------------------------------------------------------------------

    def cancel_restore(self, caller: Caller, photo_id: uuid.UUID) -> PhotoView:
        """End the in-flight attempt as canceled and put the photo back as it was.

        A worker still running it finds it settled at its next step or commit and stops,
        removing what it stored; the provider call it already made is not refunded.
        """
        record = error_record(Canceled.code, "canceled by its user")
        with self._repository.transaction() as tx:
            self._visible_photo(tx, caller, photo_id)
            canceled = tx.cancel_in_flight(photo_id, caller.user_id, record)
            if canceled is None:
                raise NotProcessing("no restoration of this photo is in progress")
        try:
            # A delivery may have stored its before image already; nothing can commit it now.
            discard_images_of_unsuccessful_attempt(self._storage, canceled)
        except DependencyUnavailable:
            logger.warning("images of canceled attempt %s left for its worker", canceled.id)
        self._announcer.announce_or_log(canceled.id)
        return self.get_photo(caller, photo_id)

    # --- reading ---------------------------------------------------------------------------

    def get_photo(self, caller: Caller, photo_id: uuid.UUID) -> PhotoView:
        with self._repository.transaction() as tx:
            photo = self._visible_photo(tx, caller, photo_id)
            latest = tx.newest_attempt(photo_id)
            selected = self._selected_attempt(tx, photo_id)
        restored_url = None
        if photo.status is PhotoStatus.READY and photo.processed_key:
            restored_url = self._presign(photo.processed_key)
        before = after = None
        adjusted = None
        if selected is not None and selected.framed_before_key:
            # The model zoomed or shifted: the slider's before is framed like the restoration.
            before = self._image(selected.framed_before_key, selected.result_size)
            adjusted = "before"
        elif selected is not None:
            before = self._image(selected.before_key, selected.submitted_size)
        if selected is not None:
            after = self._image(selected.restored_key, selected.result_size, selected.provenance)
        elif photo.processed_key and photo.status is not PhotoStatus.DELETED:
            after = self._image(photo.processed_key, None)  # restored before this service
        latest_view = self._attempt_view(latest) if latest else None
        has_urls = any([restored_url, before, after, latest_view and latest_view.after])
        return PhotoView(
            photo_id=photo.id,
            status=photo.status,
            latest_attempt=latest_view,
            restored_image_url=restored_url,
            selected_restore_id=selected.id if selected else None,
            before=before,
            after=after,
            slider_adjusted=adjusted,
            urls_expire_at=self._urls_expire_at() if has_urls else None,
            estimated_seconds_remaining=self._estimate(latest) if latest else None,
        )

    def list_restores(
        self,
        caller: Caller,
        photo_id: uuid.UUID,
        *,
        limit: int = 20,
        cursor: str | None = None,
    ) -> AttemptList:
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidRequest(f"limit must be within 1..{MAX_PAGE_SIZE}", field="limit")
        after = decode_cursor(cursor, photo_id) if cursor else None
        with self._repository.transaction() as tx:
            self._visible_photo(tx, caller, photo_id)
            page = tx.attempts_page(photo_id, limit=limit + 1, after=after)
            selected_id = tx.selected_restore_id(photo_id)
        attempts, more = page[:limit], len(page) > limit
        views = [self._attempt_view(a) for a in attempts]
        return AttemptList(
            photo_id=photo_id,
            restores=views,
            selected_restore_id=selected_id,
            next_cursor=encode_cursor(attempts[-1]) if more else None,
            urls_expire_at=self._urls_expire_at() if any(v.after for v in views) else None,
        )

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
            tx.select_restore(attempt)
        return SelectedRestore(photo_id=photo_id, selected_restore_id=attempt_id)

    @staticmethod
    def _visible_photo(tx: Transaction, caller: Caller, photo_id: uuid.UUID) -> Photo:
        photo = tx.owned_photo(photo_id, caller.user_id)
        if photo is None:
            raise PhotoNotFound("no such photo")
        if photo.status is PhotoStatus.DELETED:
            raise PhotoGone("this photo was deleted")
        return photo

    @staticmethod
    def _selected_attempt(tx: Transaction, photo_id: uuid.UUID) -> Attempt | None:
        selected_id = tx.selected_restore_id(photo_id)
        selected = tx.attempt(selected_id) if selected_id else None
        if selected is None or selected.photo_id != photo_id or selected.restored_key is None:
            return None
        return selected

    def _attempt_view(self, attempt: Attempt) -> AttemptView:
        after = self._image(attempt.restored_key, attempt.result_size, attempt.provenance)
        thumbnail = attempt.thumbnail_key
        error = attempt.error
        return AttemptView(
            restore_attempt_id=attempt.id,
            outcome=attempt.state,
            phase=attempt.phase,
            model=attempt.model,
            created_at=attempt.created_at,
            started_at=attempt.started_at,
            finished_at=attempt.finished_at,
            error=AttemptError(**public_error(error)) if error else None,
            provider_calls=attempt.provider_calls,
            image_url=after.url if after else None,
            after=after,
            thumbnail_url=self._presign(thumbnail) if thumbnail else None,
            faithfulness=_faithfulness_view(attempt),
        )

    def _image(
        self,
        key: str | None,
        size: tuple[int, int] | None,
        provenance: Mapping[str, Any] | None = None,
    ) -> ImageView | None:
        if key is None:
            return None
        width, height = size if size else (None, None)
        marks = ImageProvenance.model_validate(provenance) if provenance else None
        return ImageView(url=self._presign(key), width=width, height=height, provenance=marks)

    def _presign(self, key: str) -> str:
        return self._storage.presigned_get_url(
            key, expires_seconds=self._settings.presigned_url_seconds
        )

    def _urls_expire_at(self) -> datetime:
        return self._clock() + timedelta(seconds=self._settings.presigned_url_seconds)

    # --- progress --------------------------------------------------------------------------

    def _estimate(self, attempt: Attempt) -> int | None:
        """Seconds until a running attempt is likely done: the median inference time of recent
        restorations, less what its generation has already taken; None when nothing is known
        (no recent restoration) or nothing runs."""
        phase = attempt.phase
        now = self._clock()
        if phase is Phase.WAITING_FOR_CAPACITY:
            until = attempt.held_until
            return max(0, math.ceil((until - now).total_seconds())) if until else None
        if phase not in (Phase.QUEUED, Phase.PREPROCESSING, Phase.GENERATING, Phase.STORING):
            return None
        if phase is Phase.STORING:
            return 0
        median = self._median_inference_seconds()
        if median is None:
            return None
        if phase is Phase.GENERATING:
            median -= (now - attempt.phase_started_at).total_seconds()
        return max(0, math.ceil(median))

    def _median_inference_seconds(self) -> float | None:
        with self._median_lock:
            if self._median and time.monotonic() - self._median[0] < MEDIAN_MAX_AGE_SECONDS:
                return self._median[1]
        try:
            with self._repository.transaction() as tx:
                median = tx.inference_seconds_median(sample=MEDIAN_SAMPLE)
        except DependencyUnavailable:
            return None  # an estimate is not worth failing a read for
        with self._median_lock:
            self._median = (time.monotonic(), median)
        return median


def _faithfulness_view(attempt: Attempt) -> FaithfulnessView | None:
    record = attempt.faithfulness
    if record is None or attempt.state is not AttemptState.SUCCEEDED:
        return None
    try:
        return FaithfulnessView.model_validate(record)
    except ValueError:  # a record of another shape is left out, never a 500
        return None
