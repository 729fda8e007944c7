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


def test_the_sweeper_waits_for_the_longest_gap_between_two_deliveries() -> None:
    settings = Settings(visibility_timeout_seconds=1800, sweeper_margin_seconds=600)
    # A crashed delivery dominates: it comes back after the visibility timeout. With the
    # 30 s / 2 min / 8 min backoff three transient failures take minutes, not 1.5 hours.
    assert settings.stuck_after_seconds == 1800 + 600
    assert settings.stuck_after_seconds < 6000  # what three full visibility timeouts cost
    slow_backoff = Settings(
        visibility_timeout_seconds=1800, transient_retry_delays_seconds=[30, 3600]
    )
    assert slow_backoff.stuck_after_seconds == 300 + 3600 + 600


def test_retry_delays_must_fit_an_sqs_visibility_timeout() -> None:
    with pytest.raises(ValidationError, match="TRANSIENT_RETRY_DELAYS_SECONDS"):
        Settings(transient_retry_delays_seconds=[30, 50_000])
    assert Settings(transient_retry_delays_seconds=[5]).transient_retry_delays_seconds == [5]


def test_an_anonymous_sessions_quota_may_not_exceed_an_accounts() -> None:
    with pytest.raises(ValidationError, match="DAILY_RESTORES_PER_ANONYMOUS_SESSION"):
        Settings(daily_restores_per_user=3, daily_restores_per_anonymous_session=4)
    assert Settings(daily_restores_per_user=3, daily_restores_per_anonymous_session=3)
    assert Settings(daily_restores_per_user=0, daily_restores_per_anonymous_session=50)
    assert Settings().daily_restores_per_anonymous_session == 0  # refused by default
