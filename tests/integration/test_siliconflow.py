"""SiliconFlowClient against the stand-in over loopback: error mapping, retries, timeouts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from pydantic import SecretStr

from photo_restore.errors import (
    FailureKind,
    InvalidProviderResult,
    ProviderAuthFailed,
    ProviderMisconfigured,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from photo_restore.settings import Settings
from photo_restore.siliconflow import SiliconFlowClient
from photo_restore_tools.local.siliconflow_standin import Behaviour, SiliconFlowStandIn
from tests.helpers.provider import provider_request

API_KEY = "sk-test-secret-key-123"


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(standin: SiliconFlowStandIn, sleeps: Sleeps) -> Iterator[SiliconFlowClient]:
    with SiliconFlowClient(
        base_url=standin.base_url,
        api_key=API_KEY,
        connect_timeout=2.0,
        read_timeout=5.0,
        max_retries=2,
        sleep=sleeps,
        backoff_base_seconds=0.5,
    ) as sf:
        yield sf


_request = provider_request


def test_success_parses_url_timings_seed_and_trace_id(
    client: SiliconFlowClient, standin: SiliconFlowStandIn
) -> None:
    response = client.edit_image(_request(seed=42))
    assert response.image_url.startswith(standin.root_url + "/results/")
    assert ".jpg?expires=" in response.image_url
    assert response.seed == 42
    assert response.inference_time is not None and response.inference_time >= 0
    assert response.trace_id and response.trace_id.startswith("ti_")


def test_request_body_fields(client: SiliconFlowClient, standin: SiliconFlowStandIn) -> None:
    """The strict stand-in refuses guidance_scale for Qwen-Image-Edit: these calls succeed."""
    client.edit_image(_request())
    client.edit_image(_request(seed=7, num_inference_steps=30, guidance_scale=2.5))
    first, second = standin.requests
    assert set(first) == {"model", "prompt", "image", "num_inference_steps", "cfg"}
    assert first["model"] == "Qwen/Qwen-Image-Edit"
    assert first["num_inference_steps"] == 20 and first["cfg"] == 4.0
    assert "image_size" not in first and "seed" not in first and "guidance_scale" not in first
    assert second["seed"] == 7 and second["num_inference_steps"] == 30
    assert second["cfg"] == 2.5


def test_bearer_key_sent_and_required_key_enforced(sleeps: Sleeps) -> None:
    with SiliconFlowStandIn(api_key=API_KEY) as strict:
        ok = SiliconFlowClient(
            base_url=strict.base_url,
            api_key=API_KEY + "\n",  # trailing newline from SSM is stripped
            connect_timeout=2,
            read_timeout=5,
            max_retries=0,
        )
        assert ok.edit_image(_request()).image_url
        bad = SiliconFlowClient(
            base_url=strict.base_url,
            api_key="wrong",
            connect_timeout=2,
            read_timeout=5,
            max_retries=0,
        )
        with pytest.raises(ProviderAuthFailed) as info:
            bad.edit_image(_request())
        assert info.value.trace_id
        ok.close()
        bad.close()


def test_a_key_provider_is_asked_on_every_request_so_rotation_needs_no_restart() -> None:
    current = {"key": "revoked-key"}
    with (
        SiliconFlowStandIn(api_key=API_KEY) as strict,
        SiliconFlowClient(
            base_url=strict.base_url,
            api_key=lambda: current["key"],
            connect_timeout=2,
            read_timeout=5,
            max_retries=0,
        ) as rotating,
    ):
        with pytest.raises(ProviderAuthFailed):
            rotating.edit_image(_request())
        current["key"] = API_KEY  # an operator rotated the parameter
        assert rotating.edit_image(_request()).image_url


def test_empty_api_key_fails_without_calling(standin: SiliconFlowStandIn) -> None:
    client = SiliconFlowClient(
        base_url=standin.base_url, api_key="", connect_timeout=1, read_timeout=1, max_retries=0
    )
    with pytest.raises(ProviderAuthFailed, match="no SiliconFlow API key"):
        client.edit_image(_request())
    assert standin.requests == []


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, ProviderRejected), (401, ProviderAuthFailed), (403, ProviderAuthFailed),
     (404, ProviderMisconfigured), (422, ProviderRejected)],
)  # fmt: skip
def test_client_errors_are_permanent_and_not_retried(
    client: SiliconFlowClient,
    standin: SiliconFlowStandIn,
    sleeps: Sleeps,
    status: int,
    error: type[Exception],
) -> None:
    standin.enqueue(Behaviour.error(status, message=f"bad thing {status}"))
    with pytest.raises(error) as info:
        client.edit_image(_request())
    assert f"bad thing {status}" in str(info.value)
    assert getattr(info.value, "kind") == FailureKind.PERMANENT  # noqa: B009
    assert getattr(info.value, "trace_id", "").startswith("ti_")
    assert len(standin.requests) == 1 and sleeps == []


def test_a_parameter_every_request_would_get_refused_is_a_misconfiguration(
    client: SiliconFlowClient,
) -> None:
    with pytest.raises(ProviderMisconfigured, match="num_inference_steps") as info:
        client.edit_image(_request(num_inference_steps=0))
    assert info.value.trace_id


def test_rate_limited_with_retry_after_seconds(
    client: SiliconFlowClient, standin: SiliconFlowStandIn, sleeps: Sleeps
) -> None:
    standin.enqueue(Behaviour.rate_limited(retry_after=2))
    with pytest.raises(ProviderRateLimited) as info:
        client.edit_image(_request())
    assert info.value.retry_after_seconds == 2.0
    assert info.value.kind == FailureKind.RATE_LIMITED
    assert info.value.trace_id
    assert len(standin.requests) == 1 and sleeps == []  # no in-client retry


def test_rate_limited_without_retry_after(
    client: SiliconFlowClient, standin: SiliconFlowStandIn
) -> None:
    standin.enqueue(Behaviour.rate_limited())
    with pytest.raises(ProviderRateLimited) as info:
        client.edit_image(_request())
    assert info.value.retry_after_seconds is None


def test_rate_limited_with_http_date(
    client: SiliconFlowClient, standin: SiliconFlowStandIn
) -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    standin.enqueue(Behaviour.rate_limited(retry_after=format_datetime(when, usegmt=True)))
    with pytest.raises(ProviderRateLimited) as info:
        client.edit_image(_request())
    assert info.value.retry_after_seconds is not None
    assert 25 <= info.value.retry_after_seconds <= 31


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_retried_then_unavailable(
    client: SiliconFlowClient, standin: SiliconFlowStandIn, sleeps: Sleeps, status: int
) -> None:
    standin.enqueue(*[Behaviour.error(status)] * 5)
    with pytest.raises(ProviderUnavailable) as info:
        client.edit_image(_request())
    assert info.value.kind == FailureKind.TRANSIENT
    assert info.value.trace_id
    assert len(standin.requests) == 3  # 1 + max_retries, no more
    assert len(sleeps) == 2
    # Full jitter: each delay is within [0, base * 2^attempt].
    assert 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[1] <= 1.0


def test_503_then_success(
    client: SiliconFlowClient, standin: SiliconFlowStandIn, sleeps: Sleeps
) -> None:
    standin.enqueue(Behaviour.error(503))
    response = client.edit_image(_request())
    assert response.image_url
    assert len(standin.requests) == 2 and len(sleeps) == 1


def test_zero_retries_means_one_attempt(standin: SiliconFlowStandIn, sleeps: Sleeps) -> None:
    standin.enqueue(Behaviour.error(500), Behaviour.error(500))
    client = SiliconFlowClient(
        base_url=standin.base_url,
        api_key=API_KEY,
        connect_timeout=1,
        read_timeout=2,
        max_retries=0,
        sleep=sleeps,
    )
    with pytest.raises(ProviderUnavailable):
        client.edit_image(_request())
    assert len(standin.requests) == 1 and sleeps == []


def test_read_timeout_retried_then_unavailable(standin: SiliconFlowStandIn, sleeps: Sleeps) -> None:
    # Held until the client gives up: no race between a hang's length and the timeout.
    standin.enqueue(Behaviour.held(), Behaviour.held())
    client = SiliconFlowClient(
        base_url=standin.base_url,
        api_key=API_KEY,
        connect_timeout=1,
        read_timeout=0.2,
        max_retries=1,
        sleep=sleeps,
    )
    with pytest.raises(ProviderUnavailable, match="ReadTimeout"):
        client.edit_image(_request())
    assert len(standin.requests) == 2 and len(sleeps) == 1
    assert standin.wait_for_abandoned(2)  # both tries were the client's own timeouts
    client.close()


def test_delay_within_timeout_succeeds(
    client: SiliconFlowClient, standin: SiliconFlowStandIn
) -> None:
    standin.enqueue(Behaviour.delay(0.2))
    response = client.edit_image(_request())
    assert response.inference_time is not None and response.inference_time >= 0.2


def test_connection_refused_is_unavailable(sleeps: Sleeps) -> None:
    with SiliconFlowStandIn() as gone:
        base_url = gone.base_url
    client = SiliconFlowClient(
        base_url=base_url,
        api_key=API_KEY,
        connect_timeout=0.5,
        read_timeout=0.5,
        max_retries=1,
        sleep=sleeps,
    )
    with pytest.raises(ProviderUnavailable, match="ConnectError"):
        client.edit_image(_request())
    assert len(sleeps) == 1


def test_malformed_body_is_invalid_result(
    client: SiliconFlowClient, standin: SiliconFlowStandIn
) -> None:
    standin.enqueue(Behaviour.malformed_body())
    with pytest.raises(InvalidProviderResult, match="non-JSON") as info:
        client.edit_image(_request())
    assert info.value.trace_id


def test_empty_images_is_invalid_result(
    client: SiliconFlowClient, standin: SiliconFlowStandIn
) -> None:
    standin.enqueue(Behaviour.empty_images())
    with pytest.raises(InvalidProviderResult, match="no image URL") as info:
        client.edit_image(_request())
    assert info.value.trace_id


def test_from_settings_uses_override_key() -> None:
    with SiliconFlowStandIn(api_key="from-ssm") as strict:
        settings = Settings(
            siliconflow_base_url=strict.base_url,
            siliconflow_api_key=SecretStr("from-env"),
            siliconflow_max_retries=0,
        )
        with pytest.raises(ProviderAuthFailed):
            SiliconFlowClient.from_settings(settings).edit_image(_request())
        client = SiliconFlowClient.from_settings(settings, api_key="from-ssm")
        assert client.edit_image(_request()).image_url
        assert "from-ssm" not in repr(client)
        client.close()


def test_api_key_unfit_for_a_header_fails_without_retrying(
    standin: SiliconFlowStandIn, sleeps: Sleeps
) -> None:
    client = SiliconFlowClient(
        base_url=standin.base_url,
        api_key="sk-abc\x00def",
        connect_timeout=1,
        read_timeout=1,
        max_retries=2,
        sleep=sleeps,
    )
    with pytest.raises(ProviderAuthFailed, match="header"):
        client.edit_image(_request())
    assert standin.requests == [] and sleeps == []
