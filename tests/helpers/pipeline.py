"""The whole pipeline in process: API, worker and DLQ handlers on Postgres, moto, stand-in."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from sqlalchemy import Engine

from photo_restore.attempts import Attempt
from photo_restore.photos import Photo
from photo_restore.repository import SqlRepository
from photo_restore.settings import Settings
from photo_restore_tools.local.event_source import SqsEventSource
from photo_restore_tools.local.photos import StoredPhoto
from photo_restore_tools.local.siliconflow_standin import SiliconFlowStandIn
from tests.helpers import records
from tests.helpers.handlers import call_api, call_api_with_headers, load_handler


def queue_is_empty(sqs: Any, queue_url: str) -> bool:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return all(int(v) == 0 for v in attributes.values())


def queue_size(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


@dataclass
class Pipeline:
    settings: Settings
    engine: Engine
    s3: Any
    sqs: Any
    standin: SiliconFlowStandIn
    api: ModuleType
    worker: ModuleType
    dlq: ModuleType

    def __post_init__(self) -> None:
        self.repository = SqlRepository(self.engine)
        self.worker_source = SqsEventSource(
            sqs=self.sqs,
            queue_url=self.settings.queue_url,
            handler=self.worker.lambda_handler,
            function_name="worker",
            wait_seconds=0,
        )
        self.dlq_source = SqsEventSource(
            sqs=self.sqs,
            queue_url=self.settings.dlq_url,
            handler=self.dlq.lambda_handler,
            function_name="dlq",
            wait_seconds=0,
        )

    def reload_worker(self, **overrides: Any) -> None:
        """A new worker container with some settings changed (the API and DLQ keep theirs)."""
        self.worker = load_handler("worker", self.settings.model_copy(update=overrides))
        self.__post_init__()

    def add_photo(self, original: bytes, **kwargs: Any) -> StoredPhoto:
        return records.insert_photo(
            self.engine, original=original, s3=self.s3, bucket=self.settings.bucket_name, **kwargs
        )

    def call_api(self, method: str, path: str, owner: str, **event: Any) -> tuple[int, Any]:
        claims = {"sub": owner, "email": "ada@example.com"}
        return call_api(self.api, method, path, claims=claims, **event)

    def call_api_with_headers(
        self, method: str, path: str, owner: str, **event: Any
    ) -> tuple[int, dict[str, str], Any]:
        claims = {"sub": owner, "email": "ada@example.com"}
        return call_api_with_headers(self.api, method, path, claims=claims, **event)

    def published_events(self, events_queue_url: str) -> list[dict[str, Any]]:
        """What a subscriber of the bus received so far (the rule's queue, drained)."""
        received: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(
            QueueUrl=events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages"):
            for message in batch:
                received.append(json.loads(message["Body"]))
                self.sqs.delete_message(
                    QueueUrl=events_queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        return received

    def request_restore(self, photo: StoredPhoto) -> uuid.UUID:
        status, body = self.call_api("POST", f"/photos/{photo.id}/restore", photo.owner_id)
        assert status == 202, body
        return uuid.UUID(body["restore_attempt_id"])

    def drain(
        self,
        source: SqsEventSource | None = None,
        timeout: float = 30,
        *,
        queue_url: str | None = None,
    ) -> None:
        """Poll like Lambda's event source mapping until the queue holds nothing at all."""
        source = source or self.worker_source
        if queue_url is None:
            queue_url = (
                self.settings.queue_url if source is self.worker_source else self.settings.dlq_url
            )
        deadline = time.monotonic() + timeout
        empty_checks = 0
        while time.monotonic() < deadline:
            if source.poll_once().received:
                empty_checks = 0
                continue
            # Twice in a row: moto counts each attribute at its own instant, so a delayed
            # message becoming visible in between can make one reading look empty.
            empty_checks = empty_checks + 1 if queue_is_empty(self.sqs, queue_url) else 0
            if empty_checks == 2:
                return
            time.sleep(0.1)
        raise AssertionError(f"{queue_url} did not drain in {timeout} s")

    def photo(self, photo_id: uuid.UUID) -> Photo:
        return records.photo(self.engine, photo_id)

    def attempt(self, attempt_id: uuid.UUID) -> Attempt:
        return records.attempt(self.engine, attempt_id)

    def restored_keys(self, photo_id: uuid.UUID) -> list[str]:
        """Everything stored for the photo's attempts (restorations, before images and
        thumbnails), sorted."""
        listing = self.s3.list_objects_v2(
            Bucket=self.settings.bucket_name, Prefix=f"restored/{photo_id}/"
        )
        return sorted(o["Key"] for o in listing.get("Contents", []))

    def keys_of(self, *attempts: Attempt) -> list[str]:
        """What succeeded attempts own: their restoration, before image and thumbnail."""
        owned = [(a.s3_key, a.before_key, a.thumbnail_key, a.framed_before_key) for a in attempts]
        return sorted(key for keys in owned for key in keys if key)
