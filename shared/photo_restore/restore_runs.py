"""The worker's use case: take one restore message to a stored restoration and a settled photo."""

from __future__ import annotations

import base64
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import Engine, Row
from sqlalchemy.exc import SQLAlchemyError

from photo_restore import repository as repo
from photo_restore.errors import (
    AttemptNotVisible,
    DependencyUnavailable,
    FailureKind,
    ProviderRateLimited,
    RestoreError,
    error_record,
)
from photo_restore.preprocess import ImagePreprocessResult
from photo_restore.queue import RestoreMessage, RestoreQueue
from photo_restore.result_image import as_jpeg
from photo_restore.settings import Settings
from photo_restore.siliconflow import SiliconFlowRequest, SiliconFlowResponse
from photo_restore.storage import (
    ObjectStorage,
    discard_restoration_of_failed_attempt,
    preprocessed_key,
    restored_key,
)

logger = logging.getLogger(__name__)


class ImageEditor(Protocol):
    def edit_image(self, request: SiliconFlowRequest) -> SiliconFlowResponse: ...


class RunOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # permanent failure recorded on the attempt; message done
    SKIPPED = "skipped"  # duplicate, late or superseded message; nothing changed
    DEFERRED = "deferred"  # rate limited: re-sent with a delay, this delivery done


@dataclass
class RunReport:
    """What happened, for the handler's logs and metrics."""

    outcome: RunOutcome
    photo_id: uuid.UUID
    restore_attempt_id: uuid.UUID
    error_code: str | None = None
    trace_id: str | None = None
    inference_seconds: float | None = None
    preprocess_ms: float | None = None
    s3_key: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class RestoreRun:
    """Runs restore messages; built once per container with its parts passed in."""

    def __init__(
        self,
        *,
        engine: Engine,
        storage: ObjectStorage,
        queue: RestoreQueue,
        editor: ImageEditor,
        preprocess: Callable[[bytes], ImagePreprocessResult],
        fetch_result: Callable[[str], bytes],
        settings: Settings,
    ) -> None:
        self._engine = engine
        self._storage = storage
        self._queue = queue
        self._editor = editor
        self._preprocess = preprocess
        self._fetch_result = fetch_result
        self._settings = settings

    def run(self, message: RestoreMessage) -> RunReport:
        """Permanent failures settle the attempt; transient ones raise so SQS redelivers."""
        report = RunReport(RunOutcome.SKIPPED, message.photo_id, message.restore_attempt_id)
        started = self._start(message, report)
        if started is None:
            return report
        attempt, photo = started
        try:
            return self._restore(message, attempt, photo, report)
        except RestoreError as error:
            report.error_code, report.trace_id = error.code, error.trace_id or report.trace_id
            if error.kind is FailureKind.RATE_LIMITED:
                return self._defer(message, attempt, error, report)
            if error.kind is FailureKind.PERMANENT:
                return self._fail(message, attempt, error, report)
            self._note_transient_error(message, error.code, error.message)
            raise
        except Exception as error:
            # A bug or an unclassified library error: retried like a transient one, and named
            # (without its details, which may quote SQL or hosts) for the DLQ handler.
            self._note_transient_error(message, "unexpected_error", type(error).__name__)
            raise

    def _start(
        self, message: RestoreMessage, report: RunReport
    ) -> tuple[Row[Any], Row[Any]] | None:
        """The attempt and its photo when the attempt is in flight; None for a stale message."""
        try:
            with self._engine.begin() as conn:
                attempt = repo.find_attempt(conn, message.restore_attempt_id)
                if attempt is None:
                    # The API commits before it enqueues, so this is a replica lag or a
                    # foreign message: retry, and let the DLQ handler log it if it persists.
                    raise AttemptNotVisible(f"attempt {message.restore_attempt_id} not found")
                photo = repo.mark_attempt_started(conn, message.photo_id, attempt.id)
        except SQLAlchemyError as error:
            raise DependencyUnavailable("the database is unavailable") from error
        if photo is None:
            outcome = repo.attempt_outcome(attempt.s3_key, attempt.params)
            if attempt.job_id != message.photo_id:
                report.details["reason"] = "the attempt belongs to another photo"
            else:
                report.details["reason"] = f"the attempt is no longer in flight ({outcome})"
                if outcome is repo.AttemptOutcome.FAILED:
                    # A delivery that failed it may have died before removing what it stored.
                    discard_restoration_of_failed_attempt(
                        self._storage, attempt.job_id, attempt.created_at
                    )
            logger.info("acknowledging a stale message: %s", report.details["reason"])
            return None
        return attempt, photo

    def _restore(
        self, message: RestoreMessage, attempt: Row[Any], photo: Row[Any], report: RunReport
    ) -> RunReport:
        settings = self._settings
        photo_id = message.photo_id
        original = self._storage.read(photo.original_key, max_bytes=settings.max_original_bytes)
        started = time.perf_counter()
        prepared = self._preprocess(original)
        report.preprocess_ms = (time.perf_counter() - started) * 1000

        request = SiliconFlowRequest(
            image=self._reachable_input(attempt.id, prepared.image_bytes),
            prompt=settings.restore_prompt,
            model=settings.siliconflow_model,
            num_inference_steps=settings.num_inference_steps,
            guidance_scale=settings.guidance_scale,
        )
        response = self._editor.edit_image(request)
        report.trace_id = response.trace_id
        report.inference_seconds = response.inference_time
        # The result URL lives one hour: fetch it now, before anything else can fail.
        restored = as_jpeg(self._fetch_result(response.image_url), quality=settings.jpeg_quality)

        key = restored_key(photo_id, attempt.created_at)
        self._storage.write_jpeg(key, restored)
        params = {
            "provider": "siliconflow",
            "prompt": request.prompt,
            "num_inference_steps": request.num_inference_steps,
            "guidance_scale": request.guidance_scale,
            "inference_time_seconds": response.inference_time,
            "seed": response.seed,
            "preprocessed": prepared.params_json(),
            "provider_trace_id": response.trace_id,
        }
        try:
            with self._engine.begin() as conn:
                completed = repo.complete_attempt(
                    conn, photo_id=photo_id, attempt_id=attempt.id, s3_key=key, params=params
                )
                if not completed:
                    current = repo.find_attempt(conn, attempt.id)
        except SQLAlchemyError as error:
            # The image stays at its per-attempt key: a retry overwrites it, the DLQ handler
            # deletes it if every retry fails. Nothing is orphaned either way.
            raise DependencyUnavailable("the database is unavailable") from error
        self._discard_temporary(attempt.id)
        if not completed:
            # Settled meanwhile (a concurrent duplicate, the sweeper): keep the image only if
            # it is the one the attempt points to.
            if current is None or current.s3_key != key:
                self._storage.delete(key)
            report.details["reason"] = "attempt was settled while this delivery ran"
            return report
        report.outcome, report.s3_key = RunOutcome.SUCCEEDED, key
        return report

    def _reachable_input(self, attempt_id: uuid.UUID, jpeg: bytes) -> str:
        """A presigned URL of the preprocessed image, or a data URI where S3 is unreachable."""
        if self._settings.image_transport == "data_uri":
            return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
        key = preprocessed_key(attempt_id)
        self._storage.write_jpeg(key, jpeg)
        return self._storage.presigned_get_url(
            key, expires_seconds=self._settings.presigned_url_seconds
        )

    def _discard_temporary(self, attempt_id: uuid.UUID) -> None:
        if self._settings.image_transport == "data_uri":
            return
        try:
            self._storage.delete(preprocessed_key(attempt_id))
        except DependencyUnavailable:
            logger.warning("temporary object left for the lifecycle rule", exc_info=True)

    def _fail(
        self, message: RestoreMessage, attempt: Row[Any], error: RestoreError, report: RunReport
    ) -> RunReport:
        record = error_record(error.code, error.message, kind=error.kind.value)
        if error.trace_id:
            record["provider_trace_id"] = error.trace_id
        try:
            with self._engine.begin() as conn:
                failed = repo.fail_attempt(
                    conn,
                    photo_id=message.photo_id,
                    attempt_id=message.restore_attempt_id,
                    error=record,
                )
        except SQLAlchemyError as db_error:
            raise DependencyUnavailable("the database is unavailable") from db_error
        if failed:
            # An earlier delivery may have stored the image before dying: the attempt is
            # failed now, so nothing can commit that key any more.
            discard_restoration_of_failed_attempt(self._storage, attempt.job_id, attempt.created_at)
        self._discard_temporary(message.restore_attempt_id)
        report.outcome = RunOutcome.FAILED if failed else RunOutcome.SKIPPED
        logger.warning("restore failed permanently: %s: %s", error.code, error.message)
        return report

    def _defer(
        self, message: RestoreMessage, attempt: Row[Any], error: RestoreError, report: RunReport
    ) -> RunReport:
        """Re-send the message with a delay: changing its visibility would use up a receive."""
        if message.rate_limit_deferrals >= self._settings.max_rate_limit_deferrals:
            return self._fail(message, attempt, error, report)
        retry_after = error.retry_after_seconds if isinstance(error, ProviderRateLimited) else None
        delay = round(retry_after or self._settings.default_rate_limit_delay_seconds)
        deferred = message.model_copy(
            update={"rate_limit_deferrals": message.rate_limit_deferrals + 1}
        )
        # If this send fails, the QueueUnavailable raised makes SQS redeliver the original.
        self._queue.send(deferred, delay_seconds=max(1, delay))
        report.outcome = RunOutcome.DEFERRED
        report.details["delay_seconds"] = delay
        return report

    def _note_transient_error(self, message: RestoreMessage, code: str, text: str) -> None:
        """Best effort: keep the last transient error so the DLQ handler can say why it gave up."""
        try:
            with self._engine.begin() as conn:
                repo.merge_attempt_params(
                    conn,
                    message.restore_attempt_id,
                    {repo.LAST_TRANSIENT_ERROR: error_record(code, text)},
                    where=[repo.is_pending()],
                )
        except SQLAlchemyError:
            logger.warning("could not record the transient error", exc_info=True)
