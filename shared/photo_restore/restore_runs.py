"""The worker's use case: take one restore message to a stored restoration and a settled photo."""

from __future__ import annotations

import base64
import dataclasses
import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from photo_restore.attempts import (
    BEFORE_KEY,
    FINAL_STATES,
    FRAMED_BEFORE_KEY,
    PROVENANCE,
    PROVIDER_ANSWER,
    THUMBNAIL_KEY,
    Attempt,
    Phase,
    ProviderAnswer,
)
from photo_restore.edit_request import EditRequest
from photo_restore.errors import (
    AttemptNotVisible,
    DependencyUnavailable,
    FailureKind,
    ProviderMisconfigured,
    ProviderRateLimited,
    ProviderRejected,
    RestoreError,
    error_record,
)
from photo_restore.events import NoEvents, RestoreAnnouncer
from photo_restore.faithfulness.policy import OFF, FaithfulnessGate
from photo_restore.pacing import ProviderPacer
from photo_restore.photos import Photo
from photo_restore.preprocess import ImagePreprocessResult
from photo_restore.provenance import ManifestSigner, Provenance
from photo_restore.queue import Delivery, RestoreMessage, RestoreQueue, retry_delay_seconds
from photo_restore.repository import Repository
from photo_restore.result_image import RestoredImage, decode_result
from photo_restore.settings import SQS_MAX_DELAY_SECONDS, Settings
from photo_restore.siliconflow import SiliconFlowRequest, SiliconFlowResponse
from photo_restore.status import PhotoStatus
from photo_restore.storage import (
    ObjectStorage,
    before_key,
    discard_images_of_unsuccessful_attempt,
    framed_before_key,
    restored_key,
    thumbnail_key,
)

logger = logging.getLogger(__name__)


class ImageEditor(Protocol):
    def edit_image(self, request: SiliconFlowRequest) -> SiliconFlowResponse: ...


class RunOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # permanent failure recorded on the attempt; message done
    SKIPPED = "skipped"  # duplicate, late or superseded message; nothing changed
    DEFERRED = "deferred"  # rate limited: re-sent with a delay, this delivery done
    HELD = "held"  # a daily cap: re-sent until it resets, the photo kept processing
    PACED = "paced"  # its provider slot is later: re-sent to come back at it


@dataclass(frozen=True)
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
    reused_input: bool = False  # a deferred retry used the input an earlier delivery prepared
    # The attempt's provider calls in all, reported once when it settles (succeeded or failed):
    # summed, the ProviderCalls metric is what restorations cost in provider calls.
    provider_calls: int = 0
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PreparedInput:
    """The upright JPEG the model is given, stored at the attempt's before key."""

    key: str
    jpeg: bytes | None  # None when reused and the transport needs no bytes (a presigned URL)
    preprocessed: Mapping[str, Any]  # the params' "preprocessed" record
    preprocess_ms: float | None  # None when reused


class _SettledMeanwhile(Exception):
    """The attempt was settled (canceled, swept) while this delivery ran: stop here."""


class RestoreRun:
    """Runs restore messages; built once per container with its parts passed in."""

    def __init__(
        self,
        *,
        repository: Repository,
        storage: ObjectStorage,
        queue: RestoreQueue,
        editor: ImageEditor,
        preprocess: Callable[[bytes], ImagePreprocessResult],
        fetch_result: Callable[[str], bytes],
        settings: Settings,
        announcer: RestoreAnnouncer | None = None,
        pacer: ProviderPacer | None = None,
        faithfulness: FaithfulnessGate = OFF,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        manifest_signer: ManifestSigner | None = None,  # C2PA on: signs every stored image
    ) -> None:
        self._faithfulness = faithfulness
        self._clock = clock
        self._manifest_signer = manifest_signer
        self._announcer = announcer or RestoreAnnouncer(repository, NoEvents())
        self._pacer = pacer
        self._repository = repository
        self._storage = storage
        self._queue = queue
        self._editor = editor
        self._preprocess = preprocess
        self._fetch_result = fetch_result
        self._settings = settings

    def run(self, message: RestoreMessage, delivery: Delivery | None = None) -> RunReport:
        """Permanent failures settle the attempt; transient ones raise so SQS redelivers, after
        a backoff by receive count (set on `delivery`) rather than the visibility timeout."""
        try:
            return self._run(message)
        except Exception:
            if delivery is not None:
                delays = self._settings.transient_retry_delays_seconds
                self._queue.retry_after(
                    delivery, retry_delay_seconds(delivery.receive_count, delays)
                )
            raise

    def _run(self, message: RestoreMessage) -> RunReport:
        held = message.held_until is not None and message.held_until > self._clock()
        started = self._start(message, count_delivery=not held)
        if isinstance(started, RunReport):
            return started
        attempt, photo = started
        if held:
            return self._keep_holding(message, attempt)
        try:
            return self._restore(message, attempt, photo)
        except _SettledMeanwhile:
            return self._stop_settled(attempt)
        except RestoreError as error:
            if isinstance(error, ProviderRateLimited) and error.daily:
                return self._hold(message, attempt, error)
            if error.kind is FailureKind.RATE_LIMITED:
                return self._defer(message, attempt, error)
            if error.kind is FailureKind.PERMANENT:
                return self._fail(attempt, error)
            self._note_transient_error(attempt.id, error.code, error.message)
            raise
        except Exception as error:
            # A bug or an unclassified library error: retried like a transient one, and named
            # (without its details, which may quote SQL or hosts) for the DLQ handler.
            self._note_transient_error(attempt.id, "unexpected_error", type(error).__name__)
            raise

    def _start(
        self, message: RestoreMessage, *, count_delivery: bool = True
    ) -> tuple[Attempt, Photo] | RunReport:
        """The attempt and its photo when the attempt is in flight; a report for a stale one."""
        with self._repository.transaction() as tx:
            attempt = tx.attempt(message.restore_attempt_id)
            if attempt is None:
                # The API commits before it enqueues, so this is a replica lag or a
                # foreign message: retry, and let the DLQ handler log it if it persists.
                raise AttemptNotVisible(f"attempt {message.restore_attempt_id} not found")
            photo = tx.start_attempt(message.photo_id, attempt.id, count_delivery=count_delivery)
        if photo is not None:
            return attempt, photo
        if attempt.photo_id != message.photo_id:
            reason = "the attempt belongs to another photo"
        else:
            reason = f"the attempt is no longer in flight ({attempt.state})"
            self._finish_settled(attempt)
        logger.info("acknowledging a stale message: %s", reason)
        return self._report(RunOutcome.SKIPPED, attempt, details={"reason": reason})

    def _finish_settled(self, attempt: Attempt) -> None:
        """What a settled attempt's earlier delivery may have left undone: removing the images
        of a failed or canceled one, and its event (raises if the bus still refuses it)."""
        if attempt.state not in FINAL_STATES:
            return
        if attempt.restored_key is None:
            # A delivery may have stored images before it died, or before a cancel.
            discard_images_of_unsuccessful_attempt(self._storage, attempt)
        self._announcer.announce(attempt.id)

    def _restore(self, message: RestoreMessage, attempt: Attempt, photo: Photo) -> RunReport:
        """Input, provider call, download, store, commit. The provider's answer is committed
        the moment it arrives: a delivery after a failure further on resumes at the download."""
        settings = self._settings
        edit = EditRequest.recorded(attempt.params, settings)
        answer = self._usable_answer(attempt)
        if answer is not None:
            prepared = self._recorded_input(attempt)
            logger.info("resuming at the download of the answer of %s", answer.received_at)
        else:
            prepared = self._prepared_input(attempt, photo)
            if (paced := self._pace(message, attempt, prepared)) is not None:
                return paced
            self._enter(attempt, Phase.GENERATING, {"preprocessed": dict(prepared.preprocessed)})
            answer = self._call_provider(attempt, edit, prepared)
        try:
            self._enter(attempt, Phase.STORING)
            # 1. The result, downloaded and decoded (its URL lives one hour).
            restored = self._decoded(answer, edit)
            # 2. The most faithful result (FAITHFULNESS_POLICY=retry may ask again).
            kept = self._faithfulness.keep_most_faithful(
                lambda: prepared.jpeg or self._storage.read(prepared.key, max_bytes=2**31),
                (restored, answer),
                again=lambda seed: self._edit_again(attempt, edit, prepared, seed),
            )
            (restored, answer), faithfulness = kept.candidate, kept.params
            # 3. Stored at the attempt's own keys.
            key, thumb = restored_key(attempt), thumbnail_key(attempt)
            self._storage.write_jpeg(key, restored.jpeg)
            self._storage.write_jpeg(thumb, restored.thumbnail)
            if kept.framed_before is not None:  # the slider's before, framed like the result
                faithfulness[FRAMED_BEFORE_KEY] = framed_before_key(attempt)
                self._storage.write_jpeg(faithfulness[FRAMED_BEFORE_KEY], kept.framed_before)
        except RestoreError as error:
            error.trace_id = error.trace_id or answer.trace_id
            raise
        params = {
            **edit.attempt_params(),
            "inference_time_seconds": answer.inference_time_seconds,
            "seed": answer.seed,
            "preprocessed": dict(prepared.preprocessed),
            "provider_trace_id": answer.trace_id,
            # What came back, never assumed: Qwen-Image-Edit's output size is undocumented.
            "result_dimensions": [restored.width, restored.height],
            "result_bytes": len(restored.jpeg),
            BEFORE_KEY: prepared.key,
            THUMBNAIL_KEY: thumb,
            PROVENANCE: restored.provenance,
            **faithfulness,
        }
        # The images stay at their per-attempt keys if this commit fails: a retry overwrites
        # them, the DLQ handler deletes them if every retry fails. Nothing is orphaned.
        with self._repository.transaction() as tx:
            completed = tx.complete_attempt(
                photo_id=photo.id, attempt_id=attempt.id, s3_key=key, params=params
            )
            current = tx.attempt(attempt.id)
            erased = not completed and _deleted(tx.photo(photo.id))
        measured = {
            "trace_id": answer.trace_id,
            "inference_seconds": answer.inference_time_seconds,
            "preprocess_ms": prepared.preprocess_ms,
            "reused_input": prepared.preprocess_ms is None,
        }
        if not completed:
            # Settled meanwhile (a cancel, a concurrent duplicate, the sweeper): keep the images
            # only if they are the ones the attempt points to.
            if current is None or current.restored_key != key or erased:
                discard_images_of_unsuccessful_attempt(self._storage, attempt)
            state = current.state if current else "gone"
            logger.info("attempt %s was settled (%s) while this delivery ran", attempt.id, state)
            details = {"reason": f"attempt was settled ({state}) while this delivery ran"}
            return self._report(RunOutcome.SKIPPED, attempt, details=details, **measured)
        # After the commit: if the bus refuses, this raises and the redelivery publishes it.
        self._announcer.announce(attempt.id)
        calls = current.provider_calls if current else 0
        return self._report(
            RunOutcome.SUCCEEDED, attempt, s3_key=key, provider_calls=calls, **measured
        )

    def _usable_answer(self, attempt: Attempt) -> ProviderAnswer | None:
        """An earlier delivery's answer whose result URL outlives a whole download from now."""
        answer = attempt.provider_answer
        margin = timedelta(seconds=self._settings.result_url_margin_seconds)
        if answer is None or not answer.usable_at(self._clock(), margin):
            return None
        return answer

    def _call_provider(
        self, attempt: Attempt, edit: EditRequest, prepared: PreparedInput
    ) -> ProviderAnswer:
        """One provider exchange (its retries included); its answer and the calls it made are
        committed before anything else can fail."""
        request = SiliconFlowRequest(edit=edit, image=self._reachable_input(prepared))
        try:
            response = self._editor.edit_image(request)
        except RestoreError as error:
            self._count_calls(attempt.id, error.provider_calls)
            raise
        received = self._clock()
        answer = ProviderAnswer(
            result_url=response.image_url,
            received_at=received,
            expires_at=received + timedelta(seconds=self._settings.siliconflow_result_url_seconds),
            seed=response.seed,
            inference_time_seconds=response.inference_time,
            trace_id=response.trace_id,
            request=request.recorded_fields(),
        )
        # If this commit fails, the next delivery has no answer to resume from: it calls again.
        with self._repository.transaction() as tx:
            tx.record_provider_calls(
                attempt.id, response.calls, {PROVIDER_ANSWER: answer.to_params()}
            )
        return answer

    def _count_calls(self, attempt_id: uuid.UUID, calls: int) -> None:
        """Best effort: the calls of an exchange that raised (a timeout may have been billed)."""
        if not calls:
            return
        try:
            with self._repository.transaction() as tx:
                tx.record_provider_calls(attempt_id, calls)
        except DependencyUnavailable:
            logger.warning("could not count %d provider call(s)", calls, exc_info=True)

    def _recorded_input(self, attempt: Attempt) -> PreparedInput:
        """The input of the call whose answer is resumed: stored before that call was made."""
        recorded = attempt.params.get("preprocessed")
        return PreparedInput(
            before_key(attempt), None, recorded if isinstance(recorded, Mapping) else {}, None
        )

    def _decoded(self, answer: ProviderAnswer, edit: EditRequest) -> RestoredImage:
        """The answer's result, downloaded, decoded and marked as the model's edit."""
        return decode_result(
            self._fetch_result(answer.result_url),
            max_pixels=self._settings.result_max_pixels,
            jpeg_quality=self._settings.jpeg_quality,
            provenance=Provenance(edit.model, self._clock(), self._manifest_signer),
        )

    def _edit_again(
        self, attempt: Attempt, edit: EditRequest, prepared: PreparedInput, seed: int
    ) -> tuple[RestoredImage, ProviderAnswer]:
        """FAITHFULNESS_POLICY=retry: the same edit with another seed (another image paid for,
        counted and recorded like the first)."""
        answer = self._call_provider(attempt, dataclasses.replace(edit, seed=seed), prepared)
        return self._decoded(answer, edit), answer

    def _pace(
        self, message: RestoreMessage, attempt: Attempt, prepared: PreparedInput
    ) -> RunReport | None:
        """Wait for this work's provider slot here when it is near; else re-send the message
        to come back a little before it (keeping the slot and the prepared input). None: call
        the provider now."""
        if self._pacer is None:
            return None
        decision = self._pacer.pace(message.paced_slot)
        if not decision.in_queue or decision.slot is None:
            return None
        # Back well within the in-invocation wait: SQS delays are whole seconds, and the poll
        # and the delivery's first steps take some more (measured: ~0.5 s late with half).
        early = self._pacer.max_wait_seconds * 0.75
        delay = max(1, min(SQS_MAX_DELAY_SECONDS, math.ceil(decision.wait_seconds - early)))
        self._enter(attempt, Phase.QUEUED, {"preprocessed": dict(prepared.preprocessed)})
        # If this send fails, the QueueUnavailable raised makes SQS redeliver the original.
        self._queue.send(
            message.model_copy(update={"paced_slot": decision.slot}), delay_seconds=delay
        )
        details = {"slot": decision.slot.isoformat(), "delay_seconds": delay}
        return self._report(RunOutcome.PACED, attempt, details=details)

    def _enter(
        self, attempt: Attempt, phase: Phase, extra: Mapping[str, Any] | None = None
    ) -> None:
        with self._repository.transaction() as tx:
            entered = tx.set_phase(attempt.id, phase, extra)
        if not entered:
            raise _SettledMeanwhile

    def _stop_settled(self, attempt: Attempt) -> RunReport:
        """Canceled (or swept) before the provider call or the upload: nothing of it stays
        stored, unless a concurrent delivery of the same message succeeded with those keys."""
        with self._repository.transaction() as tx:
            current = tx.attempt(attempt.id)
            erased = _deleted(tx.photo(attempt.photo_id))
        if current is None or current.restored_key is None or erased:
            discard_images_of_unsuccessful_attempt(self._storage, attempt)
        state = current.state if current else "gone"
        logger.info(
            "attempt %s was settled (%s) while this delivery ran: stopped", attempt.id, state
        )
        details = {"reason": f"attempt was settled ({state}) while this delivery ran"}
        return self._report(RunOutcome.SKIPPED, attempt, details=details)

    def _prepared_input(self, attempt: Attempt, photo: Photo) -> PreparedInput:
        """The before image: the one an earlier delivery prepared (a deferred or retried
        attempt) when it is still stored, else the original preprocessed and stored now."""
        key = before_key(attempt)
        recorded = attempt.params.get("preprocessed")
        presigned = self._settings.effective_image_transport == "presigned_url"
        if isinstance(recorded, Mapping) and self._storage.exists(key):
            jpeg = None if presigned else self._storage.read(key, max_bytes=2**31)
            return PreparedInput(key, jpeg, recorded, None)
        settings = self._settings
        original = self._storage.read(photo.original_key, max_bytes=settings.max_original_bytes)
        started = time.perf_counter()
        prepared: ImagePreprocessResult = self._preprocess(original)
        preprocess_ms = (time.perf_counter() - started) * 1000
        self._storage.write_jpeg(key, prepared.image_bytes)
        return PreparedInput(key, prepared.image_bytes, prepared.params_json(), preprocess_ms)

    def _reachable_input(self, prepared: PreparedInput) -> str:
        """A presigned URL of the before image, or a data URI where S3 is unreachable."""
        if prepared.jpeg is not None and self._settings.effective_image_transport == "data_uri":
            return "data:image/jpeg;base64," + base64.b64encode(prepared.jpeg).decode("ascii")
        return self._storage.presigned_get_url(
            prepared.key, expires_seconds=self._settings.presigned_url_seconds
        )

    def _fail(self, attempt: Attempt, error: RestoreError) -> RunReport:
        refusal = error.refusal if isinstance(error, ProviderRejected) else None
        if refusal is not None:
            error = self._systemic_or_not(attempt, error, refusal)
        record = error_record(error.code, error.message, kind=error.kind.value)
        if error.trace_id:
            record["provider_trace_id"] = error.trace_id
        if refusal is not None:
            record["refusal"] = refusal
        with self._repository.transaction() as tx:
            failed = tx.fail_attempt(photo_id=attempt.photo_id, attempt_id=attempt.id, error=record)
            settled = tx.attempt(attempt.id) if failed else None
        if failed:
            # This or an earlier delivery may have stored images: the attempt is failed now,
            # so nothing can commit those keys any more.
            discard_images_of_unsuccessful_attempt(self._storage, attempt)
        logger.warning("restore failed permanently: %s: %s", error.code, error.message)
        outcome = RunOutcome.FAILED if failed else RunOutcome.SKIPPED
        if failed:
            self._announcer.announce(attempt.id)
        calls = settled.provider_calls if settled else 0
        return self._report(
            outcome, attempt, error_code=error.code, trace_id=error.trace_id, provider_calls=calls
        )

    def _systemic_or_not(self, attempt: Attempt, error: RestoreError, refusal: str) -> RestoreError:
        """A refusal of this photo, or, when the same words refused several other photos
        within the window, a systemic one: no photo's fault, and alarmed as a misconfiguration."""
        settings = self._settings
        window = timedelta(seconds=settings.systemic_refusal_window_seconds)
        with self._repository.transaction() as tx:
            others = tx.photos_refused_alike(
                refusal, since=self._clock() - window, other_than=attempt.photo_id
            )
        if others + 1 < settings.systemic_refusal_photos:
            return error
        logger.error("the same refusal hit %d photos within %s: systemic", others + 1, window)
        return ProviderMisconfigured(
            f"{error.message} (the same refusal hit {others + 1} photos within {window}: systemic)",
            trace_id=error.trace_id,
        )

    def _defer(self, message: RestoreMessage, attempt: Attempt, error: RestoreError) -> RunReport:
        """Re-send the message with a delay: changing its visibility would use up a receive."""
        if message.rate_limit_deferrals >= self._settings.max_rate_limit_deferrals:
            return self._fail(attempt, error)
        retry_after = error.retry_after_seconds if isinstance(error, ProviderRateLimited) else None
        delay = round(retry_after or self._settings.default_rate_limit_delay_seconds)
        # Its slot was used by the call just refused: the next try reserves a new one.
        deferred = message.model_copy(
            update={"rate_limit_deferrals": message.rate_limit_deferrals + 1, "paced_slot": None}
        )
        with self._repository.transaction() as tx:
            tx.set_phase(attempt.id, Phase.QUEUED)  # its before image waits for the next try
        # If this send fails, the QueueUnavailable raised makes SQS redeliver the original.
        self._queue.send(deferred, delay_seconds=max(1, delay))
        return self._report(
            RunOutcome.DEFERRED,
            attempt,
            error_code=error.code,
            trace_id=error.trace_id,
            details={"delay_seconds": delay},
        )

    def _hold(
        self, message: RestoreMessage, attempt: Attempt, error: ProviderRateLimited
    ) -> RunReport:
        """A daily cap: hold the work until the provider's day ends, never fail it for that.

        The message is re-sent every 15 minutes (SQS's longest delay) until then: a visibility
        hold would use up a receive each time, and the photo's clock restarts at every one.
        """
        now = self._clock()
        since = message.held_since or now
        until = next_daily_reset(now, self._settings.siliconflow_daily_reset_utc_hour)
        if until - since > timedelta(hours=self._settings.max_capacity_hold_hours):
            return self._fail(attempt, error)
        hold = {"until": until.isoformat(), "limit": error.limit, "since": since.isoformat()}
        with self._repository.transaction() as tx:
            tx.wait_for_capacity(attempt.id, hold)
        held = message.model_copy(
            update={"held_until": until, "held_since": since, "paced_slot": None}
        )
        self._queue.send(held, delay_seconds=self._hold_delay(until))
        logger.warning("daily %s cap reached: holding the restore until %s", error.limit, until)
        details = {"held_until": until.isoformat(), "limit": error.limit}
        return self._report(
            RunOutcome.HELD,
            attempt,
            error_code=error.code,
            trace_id=error.trace_id,
            details=details,
        )

    def _keep_holding(self, message: RestoreMessage, attempt: Attempt) -> RunReport:
        """A held message back before its time: its photo's clock restarted, send it on."""
        assert message.held_until is not None
        self._queue.send(message, delay_seconds=self._hold_delay(message.held_until))
        details = {"held_until": message.held_until.isoformat()}
        return self._report(RunOutcome.HELD, attempt, details=details)

    def _hold_delay(self, until: datetime) -> int:
        return max(
            1, min(SQS_MAX_DELAY_SECONDS, math.ceil((until - self._clock()).total_seconds()))
        )

    def _note_transient_error(self, attempt_id: uuid.UUID, code: str, text: str) -> None:
        """Best effort: keep the last transient error so the DLQ handler can say why it gave up."""
        try:
            with self._repository.transaction() as tx:
                tx.note_transient_error(attempt_id, error_record(code, text))
        except DependencyUnavailable:
            logger.warning("could not record the transient error", exc_info=True)

    @staticmethod
    def _report(outcome: RunOutcome, attempt: Attempt, **fields: Any) -> RunReport:
        return RunReport(outcome, attempt.photo_id, attempt.id, **fields)


def _deleted(photo: Photo | None) -> bool:
    """A photo deleted while a delivery ran keeps nothing it stored, even the images of a
    concurrent duplicate's success: the delete's own removal may have run before they landed."""
    return photo is None or photo.status is PhotoStatus.DELETED


def next_daily_reset(now: datetime, reset_utc_hour: int) -> datetime:
    """The next time a provider's day ends: `reset_utc_hour`:00 UTC, today or tomorrow."""
    today = now.astimezone(UTC).replace(hour=reset_utc_hour, minute=0, second=0, microsecond=0)
    return today if today > now else today + timedelta(days=1)
