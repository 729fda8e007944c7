"""The events a frontend (or its backend) can subscribe to: one per attempt when it ends, on an
EventBridge bus, always after the commit that ended it.

Delivery is at least once: a publish whose bookkeeping failed is published again, so consumers
deduplicate on `restore_attempt_id`. A failed publish never undoes the restoration: the worker
and the DLQ handler raise, so their message's next delivery publishes it; the API (cancel) and
the sweeper log it, and the sweeper's next run publishes whatever is still unannounced.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from photo_restore.attempts import FINAL_STATES, Attempt, AttemptState
from photo_restore.errors import DependencyUnavailable

if TYPE_CHECKING:
    from photo_restore.repository import Repository

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

# The sweeper republishes events unannounced for longer than this (their publisher may still
# be at work before that), of attempts created within the window.
REPUBLISH_AFTER = timedelta(minutes=5)
REPUBLISH_WINDOW = timedelta(days=2)

logger = logging.getLogger(__name__)

SOURCE = "photo-restore"
DETAIL_TYPES = {
    AttemptState.SUCCEEDED: "RestoreSucceeded",
    AttemptState.FAILED: "RestoreFailed",
    AttemptState.CANCELED: "RestoreCanceled",
}
# A photo's own life (photo_restore.lifecycle): consumers deduplicate on `photo_id`.
PHOTO_UPLOADED = "PhotoUploaded"
PHOTO_DELETED = "PhotoDeleted"


@dataclass(frozen=True)
class RestoreEvent:
    detail_type: str
    detail: dict[str, Any]

    @classmethod
    def ended(cls, attempt: Attempt, owner_id: str) -> RestoreEvent:
        """The event of a settled attempt: ids, outcome, error code, and its images' keys."""
        error = attempt.error
        return cls(
            detail_type=DETAIL_TYPES[attempt.state],
            detail={
                "photo_id": str(attempt.photo_id),
                "restore_attempt_id": str(attempt.id),
                "owner_id": owner_id,
                "outcome": attempt.state.value,
                "error_code": error.get("code") if error else None,
                # The faithfulness check's verdict of a succeeded attempt's result, when checked.
                "verdict": attempt.faithfulness_verdict,
                "result_keys": {
                    "restored": attempt.restored_key,
                    "thumbnail": attempt.thumbnail_key,
                    "before": attempt.before_key,
                },
            },
        )

    @classmethod
    def photo_uploaded(
        cls, photo_id: uuid.UUID, owner_id: str, upload_id: uuid.UUID
    ) -> RestoreEvent:
        """A direct upload became a photo (`uploaded`), after the commit that made it."""
        detail = {"photo_id": str(photo_id), "owner_id": owner_id, "upload_id": str(upload_id)}
        return cls(detail_type=PHOTO_UPLOADED, detail=detail)

    @classmethod
    def photo_deleted(cls, photo_id: uuid.UUID, owner_id: str, reason: str) -> RestoreEvent:
        """A photo is `deleted` and its objects removed; `reason`: user | erasure."""
        detail = {"photo_id": str(photo_id), "owner_id": owner_id, "reason": reason}
        return cls(detail_type=PHOTO_DELETED, detail=detail)


class EventPublishFailed(DependencyUnavailable):
    """The bus refused or could not be reached: the restoration stands, the event is retried
    where a later delivery exists."""

    code = "event_publish_failed"


class EventPublisher(Protocol):
    def publish(self, event: RestoreEvent) -> None: ...


class EventBridgePublisher:
    def __init__(self, client: EventBridgeClient, bus_name: str) -> None:
        self._client = client
        self.bus_name = bus_name

    def publish(self, event: RestoreEvent) -> None:
        try:
            answer = self._client.put_events(
                Entries=[
                    {
                        "Source": SOURCE,
                        "DetailType": event.detail_type,
                        "Detail": json.dumps(event.detail),
                        "EventBusName": self.bus_name,
                    }
                ]
            )
        except (ClientError, BotoCoreError) as error:
            raise EventPublishFailed(f"EventBridge put_events failed: {error}") from error
        if answer.get("FailedEntryCount"):
            entry = answer["Entries"][0]
            raise EventPublishFailed(f"EventBridge refused the event: {entry.get('ErrorCode')}")


class NoEvents:
    """No bus configured (EVENT_BUS_NAME empty): events are only logged."""

    def publish(self, event: RestoreEvent) -> None:
        logger.info("no event bus configured: %s not published", event.detail_type)


class RestoreAnnouncer:
    """Publishes a settled attempt's event and records that it was published."""

    def __init__(
        self,
        repository: Repository,
        publisher: EventPublisher,
        *,
        on_publish_failed: Callable[[], None] = lambda: None,
    ) -> None:
        self._repository = repository
        self._publisher = publisher
        self._on_publish_failed = on_publish_failed

    def announce(self, attempt_id: uuid.UUID) -> bool:
        """Publish unless already published; raises EventPublishFailed (retryable)."""
        with self._repository.transaction() as tx:
            attempt = tx.attempt(attempt_id)
            photo = tx.photo(attempt.photo_id) if attempt else None
        if attempt is None or photo is None or attempt.state not in FINAL_STATES:
            return False
        if attempt.event_published:
            return False
        try:
            self._publisher.publish(RestoreEvent.ended(attempt, photo.owner_id))
        except EventPublishFailed:
            self._on_publish_failed()
            logger.warning("could not publish the event of attempt %s", attempt_id, exc_info=True)
            raise
        with self._repository.transaction() as tx:
            tx.mark_event_published(attempt_id)
        return True

    def announce_or_log(self, attempt_id: uuid.UUID) -> bool:
        """For callers without a later delivery: the sweeper publishes it on its next run."""
        try:
            return self.announce(attempt_id)
        except DependencyUnavailable:
            logger.warning("event of attempt %s left for the sweeper", attempt_id, exc_info=True)
            return False

    def announce_unannounced(self) -> int:
        """Publish the events whose publish failed earlier; the sweeper calls it each run."""
        with self._repository.transaction() as tx:
            missing = tx.unannounced_attempts(
                finished_before=REPUBLISH_AFTER, window=REPUBLISH_WINDOW
            )
        return sum(self.announce_or_log(attempt.id) for attempt in missing)
