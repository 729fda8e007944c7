"""boto3 clients with explicit timeouts; boto3 itself honours AWS_ENDPOINT_URL (moto locally)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient


def _config() -> Config:
    # Short timeouts: a Lambda must fail fast and let SQS retry, not hang until its own timeout.
    # A local endpoint (moto) is an IP address, where only path-style bucket URLs work.
    addressing = "path" if os.environ.get("AWS_ENDPOINT_URL") else "virtual"
    return Config(
        connect_timeout=5,
        read_timeout=30,
        retries={"mode": "standard", "max_attempts": 3},
        s3={"addressing_style": addressing},  # type: ignore[arg-type]
        signature_version="s3v4",
    )


def s3_client() -> S3Client:
    return boto3.client("s3", config=_config())


def sqs_client() -> SQSClient:
    return boto3.client("sqs", config=_config())


def events_client() -> EventBridgeClient:
    return boto3.client("events", config=_config())


class _CreatedOnFirstUse:
    """Stands for a client until something calls it, then creates it once."""

    def __init__(self, create: Callable[[], object]) -> None:
        self._create = create
        self._client: object | None = None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            self._client = self._create()
        return getattr(self._client, name)


def on_first_use[Client](create: Callable[[], Client]) -> Client:
    """`create()`'s client, created when it is first used: creating one costs 50-100 ms of a
    cold start, which a request that never calls that service should not pay."""
    return cast(Client, _CreatedOnFirstUse(create))
