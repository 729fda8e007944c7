"""The restore queue: its message, a delivery of it, the retry backoff, and the one client."""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from photo_restore.errors import QueueUnavailable
from photo_restore.settings import SQS_MAX_DELAY_SECONDS

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger(__name__)


class RestoreMessage(BaseModel):
    """The body of a restore message: ids only, so a message never carries stale state."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    photo_id: uuid.UUID
    restore_attempt_id: uuid.UUID
    # How often a provider rate limit already deferred this work (bounded by settings).
    rate_limit_deferrals: int = Field(default=0, ge=0)
    # A daily cap holds the work until this time (re-sent every 15 minutes until then), since
    # `held_since` (bounded by settings).
    held_until: datetime | None = None
    held_since: datetime | None = None
    # The provider slot this work reserved (pacing): its next delivery calls then, no sooner.
    paced_slot: datetime | None = None


def parse_restore_message(body: str) -> RestoreMessage | None:
    """The message in an SQS body; None for anything else, which no retry can ever fix."""
    try:
        return RestoreMessage.model_validate_json(body)
    except ValidationError:
        return None


@dataclass(frozen=True)
class Delivery:
    """One receipt of a message from the restore queue (SQS attributes, not the body)."""

    receipt_handle: str
    receive_count: int  # ApproximateReceiveCount: 1 on the first delivery


def retry_delay_seconds(
    receive_count: int, delays: Sequence[int], rng: random.Random | None = None
) -> int:
    """The backoff after the `receive_count`-th delivery failed transiently: the schedule's
    value for it (the last one repeats), jittered to between half and all of it."""
    base = delays[min(max(receive_count, 1), len(delays)) - 1]
    return base // 2 + (rng or random).randint(0, base - base // 2)


class RestoreQueue:
    def __init__(self, sqs_client: SQSClient, queue_url: str) -> None:
        self._sqs = sqs_client
        self.queue_url = queue_url

    def send(self, message: RestoreMessage, *, delay_seconds: int = 0) -> str:
        try:
            response = self._sqs.send_message(
                QueueUrl=self.queue_url,
                MessageBody=message.model_dump_json(exclude_none=True),  # ids, and a hold if any
                DelaySeconds=max(0, min(delay_seconds, SQS_MAX_DELAY_SECONDS)),
            )
        except (ClientError, BotoCoreError) as error:
            raise QueueUnavailable(f"could not enqueue the restore: {error}") from error
        return response["MessageId"]

    def retry_after(self, delivery: Delivery, seconds: int) -> None:
        """Make a failed delivery visible again in `seconds` instead of the visibility timeout.
        Best effort: if SQS refuses, the message simply comes back later."""
        try:
            self._sqs.change_message_visibility(
                QueueUrl=self.queue_url,
                ReceiptHandle=delivery.receipt_handle,
                VisibilityTimeout=seconds,
            )
        except (ClientError, BotoCoreError):
            logger.warning("could not shorten the retry of a failed delivery", exc_info=True)
