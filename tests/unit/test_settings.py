"""Settings refuse combinations that would break the pipeline's timing."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from photo_restore.settings import Settings


def test_the_defaults_fit_the_provider_calls_inside_the_worker_timeout() -> None:
    settings = Settings()
    assert settings.worker_timeout_seconds == 300
    assert settings.visibility_timeout_seconds >= 6 * settings.worker_timeout_seconds


def test_a_worker_timeout_shorter_than_the_provider_calls_is_refused() -> None:
    with pytest.raises(ValidationError, match="WORKER_TIMEOUT_SECONDS=120"):
        Settings(worker_timeout_seconds=120)


def test_shorter_provider_timeouts_allow_a_shorter_worker() -> None:
    settings = Settings(
        worker_timeout_seconds=120,
        siliconflow_read_timeout_seconds=30,
        siliconflow_max_retries=1,
        result_download_timeout_seconds=20,
    )
    assert settings.worker_timeout_seconds == 120


def test_the_sweeper_waits_for_every_delivery_a_message_can_get() -> None:
    settings = Settings(visibility_timeout_seconds=1800, max_receive_count=3)
    assert settings.stuck_after_seconds == 1800 * 3 + settings.sweeper_margin_seconds
