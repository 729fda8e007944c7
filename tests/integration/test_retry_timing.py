"""Transient failures come back in seconds, on moto with the production visibility timeout."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine

from photo_restore.settings import Settings
from photo_restore_tools.local.services import provision
from photo_restore_tools.local.siliconflow_standin import Behaviour, SiliconFlowStandIn
from tests.helpers.handlers import load_handler
from tests.helpers.images import old_photo
from tests.helpers.pipeline import Pipeline

PRODUCTION = Settings()


def test_a_transient_failure_is_retried_within_its_backoff_and_ends_ready_within_a_minute(
    pipeline_settings: Settings, engine: Engine, s3: Any, sqs: Any, standin: SiliconFlowStandIn
) -> None:
    queues = provision(
        name=f"retry-{time.monotonic_ns()}",
        visibility_timeout_seconds=PRODUCTION.visibility_timeout_seconds,  # 1800 s
        max_receive_count=PRODUCTION.max_receive_count,
    )
    settings = pipeline_settings.model_copy(
        update={
            "queue_url": queues.queue_url,
            "dlq_url": queues.dlq_url,
            "bucket_name": queues.bucket_name,
            "visibility_timeout_seconds": PRODUCTION.visibility_timeout_seconds,
            "transient_retry_delays_seconds": PRODUCTION.transient_retry_delays_seconds,
        }
    )
    pipeline = Pipeline(
        settings,
        engine,
        s3,
        sqs,
        standin,
        load_handler("api", settings),
        load_handler("worker", settings),
        load_handler("dlq", settings),
    )
    photo = pipeline.add_photo(old_photo())
    attempt_id = pipeline.request_restore(photo)
    standin.enqueue(Behaviour.error(503), Behaviour.error(503))  # the client's retry too

    assert pipeline.worker_source.poll_once().failed == 1
    failed_at = time.monotonic()
    first_backoff = PRODUCTION.transient_retry_delays_seconds[0]
    while not (stats := pipeline.worker_source.poll_once()).received:
        waited = time.monotonic() - failed_at
        assert waited < first_backoff + 5, f"not redelivered after {waited:.0f} s"
        time.sleep(0.5)
    redelivered_after = time.monotonic() - failed_at

    assert stats.succeeded == 1
    assert pipeline.photo(photo.id).status == "ready"
    assert time.monotonic() - failed_at < 60
    # Jittered within the first step, never the visibility timeout's 1800 s.
    assert first_backoff / 2 - 1 <= redelivered_after <= first_backoff + 5
    assert pipeline.attempt(attempt_id).deliveries == 2
