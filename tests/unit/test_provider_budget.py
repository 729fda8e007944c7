"""The worker-timeout check counts what the client enforces: each try's wall-time deadline
and the backoffs between tries, so it holds by construction."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from photo_restore.settings import Settings
from photo_restore.siliconflow import SiliconFlowClient


def test_the_client_from_settings_enforces_the_deadline_the_check_counts() -> None:
    settings = Settings(siliconflow_connect_timeout_seconds=4, siliconflow_read_timeout_seconds=50)
    with SiliconFlowClient.from_settings(settings, api_key="sk-test") as client:
        assert client.call_deadline_seconds == settings.siliconflow_call_deadline_seconds == 54


def test_the_exchange_counts_every_try_at_its_deadline_and_the_longest_backoffs() -> None:
    settings = Settings(
        siliconflow_connect_timeout_seconds=10,
        siliconflow_read_timeout_seconds=40,
        siliconflow_max_retries=3,
        worker_timeout_seconds=600,
    )
    # 4 tries x 50 s, and backoffs of at most 1, 2 and 4 s between them.
    assert settings.siliconflow_exchange_seconds == 4 * 50 + 1 + 2 + 4


def test_backoffs_that_would_outlive_the_worker_are_refused() -> None:
    # 6 tries x 40 s + download 30 s + pacing 2 s = 272 s fit in 300 s; with the backoffs
    # between the tries (1+2+4+8+16 s) they do not.
    with pytest.raises(ValidationError, match="backoff"):
        Settings(
            siliconflow_connect_timeout_seconds=5,
            siliconflow_read_timeout_seconds=35,
            siliconflow_max_retries=5,
            result_download_timeout_seconds=30,
        )


@pytest.mark.parametrize("margin", [10, 3600])
def test_the_resume_margin_covers_a_download_and_leaves_the_url_some_life(margin: int) -> None:
    with pytest.raises(ValidationError, match="RESULT_URL_MARGIN_SECONDS"):
        Settings(result_url_margin_seconds=margin, result_download_timeout_seconds=30)
