"""SiliconFlowClient's parsing on scripted transports: tolerant success parse, error bodies,
Retry-After forms, and secrets kept out of reprs."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from photo_restore.errors import InvalidProviderResult, ProviderRejected
from photo_restore.siliconflow import SiliconFlowClient, parse_retry_after
from tests.helpers.provider import provider_request as _request

API_KEY = "sk-test-secret-key-123"


def test_parse_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("nan") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Thu, 01 Jan 2026 00:01:00 GMT", now=now) == 60.0
    assert parse_retry_after("Wed, 31 Dec 2025 23:00:00 GMT", now=now) == 0.0


def _mock_client(handler: httpx.MockTransport) -> SiliconFlowClient:
    return SiliconFlowClient(
        base_url="https://api.example/v1",
        api_key=API_KEY,
        connect_timeout=1,
        read_timeout=1,
        max_retries=0,
        http_client=httpx.Client(transport=handler),
    )


def test_tolerant_parse_of_missing_and_extra_fields() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url == "https://api.example/v1/images/generations"
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
        body = {"images": [{"url": "https://cdn.example/r.png", "x": 1}], "extra": {"a": 1}}
        return httpx.Response(200, json=body)

    response = _mock_client(httpx.MockTransport(answer)).edit_image(_request())
    assert response.image_url == "https://cdn.example/r.png"
    assert response.inference_time is None and response.seed is None and response.trace_id is None


@pytest.mark.parametrize(
    "payload",
    [[], {"images": None}, {"images": [{}]}, {"images": [{"url": ""}]}, {"images": ["u"]}],
)
def test_unusable_success_payloads(payload: object) -> None:
    transport = httpx.MockTransport(lambda _: httpx.Response(200, json=payload))
    with pytest.raises(InvalidProviderResult):
        _mock_client(transport).edit_image(_request())


def test_error_body_without_json_keeps_truncated_text() -> None:
    transport = httpx.MockTransport(
        lambda _: httpx.Response(
            400, text="x" * 2000, headers={"x-siliconcloud-trace-id": "ti_abc"}
        )
    )
    with pytest.raises(ProviderRejected) as info:
        _mock_client(transport).edit_image(_request())
    assert info.value.trace_id == "ti_abc"
    assert len(info.value.message) < 600


def test_error_body_message_without_code() -> None:
    transport = httpx.MockTransport(
        lambda _: httpx.Response(400, json={"message": "prompt too long", "data": None})
    )
    with pytest.raises(ProviderRejected, match="prompt too long"):
        _mock_client(transport).edit_image(_request())


def test_api_key_not_in_repr() -> None:
    client = SiliconFlowClient(
        base_url="https://api.example/v1",
        api_key=API_KEY,
        connect_timeout=1,
        read_timeout=1,
        max_retries=0,
    )
    assert API_KEY not in repr(client) and API_KEY not in str(client)
    assert "api.example" in repr(client)
    client.close()


def test_request_repr_shortens_data_uri() -> None:
    assert len(repr(_request())) < 300
