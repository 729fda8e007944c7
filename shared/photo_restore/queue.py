"""The restore queue's message and the one client that sends it."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from photo_restore.errors import QueueUnavailable

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

# SQS caps DelaySeconds at 15 minutes.
MAX_DELAY_SECONDS = 900


class RestoreMessage(BaseModel):
    """The body of a restore message: ids only, so a message never carries stale state."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    photo_id: uuid.UUID
    restore_attempt_id: uuid.UUID
    # How often a provider rate limit already deferred this work (bounded by settings).
    rate_limit_deferrals: int = Field(default=0, ge=0)


def parse_restore_message(body: str) -> RestoreMessage | None:
    """The message in an SQS body; None for anything else, which no retry can ever fix."""
    try:
        return RestoreMessage.model_validate_json(body)
    except ValidationError:
        return None


class RestoreQueue:
    def __init__(self, sqs_client: SQSClient, queue_url: str) -> None:
        self._sqs = sqs_client
        self.queue_url = queue_url

    def send(self, message: RestoreMessage, *, delay_seconds: int = 0) -> str:
        try:
            response = self._sqs.send_message(
                QueueUrl=self.queue_url,
                MessageBody=message.model_dump_json(),
                DelaySeconds=max(0, min(delay_seconds, MAX_DELAY_SECONDS)),
            )
        except (ClientError, BotoCoreError) as error:
            raise QueueUnavailable(f"could not enqueue the restore: {error}") from error
        return response["MessageId"]
