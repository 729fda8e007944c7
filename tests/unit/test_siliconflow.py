"""SiliconFlowClient's parsing on scripted transports: tolerant success parse, error bodies,
Retry-After forms, and secrets kept out of reprs."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from photo_restore.errors import (
    InvalidProviderResult,
    ProviderRateLimited,
    ProviderRejected,
    RestoreError,
)
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
        lambda _: httpx.Response(400, json={"message": "image is too small", "data": None})
    )
    with pytest.raises(ProviderRejected, match="image is too small"):
        _mock_client(transport).edit_image(_request())


def _answer(status: int, body: object, headers: dict[str, str] | None = None) -> RestoreError:
    """What the client raises for one answer of the service."""
    content = body if isinstance(body, str) else json.dumps(body)
    transport = httpx.MockTransport(
        lambda _: httpx.Response(status, content=content.encode(), headers=headers or {})
    )
    with pytest.raises(RestoreError) as raised:
        _mock_client(transport).edit_image(_request())
    return raised.value


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        # The error-handling FAQ's own example.
        (400, {"code": 20012, "message": "Model does not exist. Please check it carefully.",
               "data": None}, "provider_misconfigured"),
        # The documented code decides, whatever the words.
        (400, {"code": 20012, "message": "模型不存在", "data": None}, "provider_misconfigured"),
        # 20015 is a catch-all: its free text names the field at fault, or nothing.
        (400, {"code": 20015, "message": "cfg must be between 0.1 and 20", "data": None},
         "provider_misconfigured"),
        (400, {"code": 20015, "message": "prompt is too long", "data": None},
         "provider_misconfigured"),
        (400, {"code": 20015, "message": "'num_inference_steps' must be <= 100", "data": None},
         "provider_misconfigured"),
        (400, {"code": 20015, "message": "image size must be at least 64 pixels", "data": None},
         "provider_rejected"),
        # Names the image (the photo) and says "model" in passing: this photo's refusal.
        (400, {"code": 20015, "message": "Image resolution is too large for this model",
               "data": None}, "provider_rejected"),
        # "negative_prompt" (not sent here) is not "prompt"; "seeds" is not "seed".
        (400, {"code": 20015, "message": "negative_prompt too long; seeds must vary",
               "data": None}, "provider_rejected"),
        # Content words decide nothing: an unrecognised refusal is this photo's.
        (400, {"code": 20015, "message": "The image contains sensitive content", "data": None},
         "provider_rejected"),
        (400, {"code": 20015, "message": "The parameter is invalid", "data": None},
         "provider_rejected"),
        (400, "Bad Request", "provider_rejected"),
        (404, "404 page not found", "provider_misconfigured"),
        (401, "Invalid token", "provider_auth_failed"),
        (403, {"code": 30001, "message": "Account balance is insufficient", "data": None},
         "provider_auth_failed"),
        (503, {"code": 50505, "message": "Model service overloaded. Please try again later.",
               "data": None}, "provider_unavailable"),
        # A capacity signal: deferred as a 429 is, never retried in the invocation.
        (503, {"code": 50603, "message": "System is really busy", "data": None},
         "provider_rate_limited"),
        (504, "upstream request timeout", "provider_unavailable"),
    ],
    ids=["model-unknown", "model-unknown-zh", "cfg-range", "prompt", "steps-quoted",
         "per-image", "image-for-this-model", "not-our-fields", "content-words", "catch-all",
         "400-text", "404-text", "401-text", "403", "503-50505", "503-50603", "504-text"],
)  # fmt: skip
def test_each_error_shape_the_service_sends_is_classified(
    status: int, body: object, code: str
) -> None:
    error = _answer(status, body)
    assert error.code == code
    message = body if isinstance(body, str) else body["message"]  # type: ignore[index]
    assert str(message) in error.message  # the provider's words stay for operators


@pytest.mark.parametrize(
    ("message", "limit", "daily"),
    [
        ("Request was rejected due to rate limiting. Details: IPM limit reached.", "IPM", False),
        ("Request was rejected due to rate limiting. Details: RPM limit reached.", "RPM", False),
        ("Request was rejected due to rate limiting. Details: IPD limit reached.", "IPD", True),
        ("Request was rejected due to rate limiting. Details: RPD limit reached.", "RPD", True),
        ("Request was rejected due to rate limiting. If you want more, please contact us", None,
         False),
    ],
)  # fmt: skip
def test_a_429_names_its_limit_and_whether_it_is_daily(
    message: str, limit: str | None, daily: bool
) -> None:
    """429 bodies carry no code and usually no Retry-After; the message names the limit."""
    error = _answer(429, {"message": message, "data": None})
    assert isinstance(error, ProviderRateLimited)
    assert (error.limit, error.daily, error.retry_after_seconds) == (limit, daily, None)


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


def test_a_refusal_of_the_photo_keeps_its_words_to_match_across_photos() -> None:
    error = _answer(400, {"code": 20015, "message": " The parameter is invalid ", "data": None})
    assert isinstance(error, ProviderRejected)
    assert error.refusal == "20015: The parameter is invalid"


def test_system_busy_is_deferred_without_a_retry_in_the_invocation() -> None:
    calls: list[httpx.Request] = []

    def busy(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        body = {"code": 50603, "message": "System is really busy", "data": None}
        return httpx.Response(503, json=body, headers={"retry-after": "20"})

    client = SiliconFlowClient(
        base_url="https://api.example/v1", api_key=API_KEY, connect_timeout=1, read_timeout=1,
        max_retries=2, http_client=httpx.Client(transport=httpx.MockTransport(busy)),
        sleep=lambda seconds: None,
    )  # fmt: skip
    with pytest.raises(ProviderRateLimited) as raised:
        client.edit_image(_request())
    assert raised.value.retry_after_seconds == 20 and not raised.value.daily
    assert len(calls) == 1 and raised.value.provider_calls == 1
