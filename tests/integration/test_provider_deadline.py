"""The provider call is bounded by wall time, connect to last byte: a provider that drips its
answer byte by byte (each read in time) no longer holds the worker until Lambda kills it."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from photo_restore.errors import ProviderUnavailable
from photo_restore.result_download import deadline_transport
from photo_restore.siliconflow import SiliconFlowClient
from photo_restore_tools.local.siliconflow_standin import Behaviour, SiliconFlowStandIn
from tests.helpers.provider import provider_request

# One byte every half second: within the 2 s read timeout every time, so only the wall-time
# deadline (connect 1 s + read 2 s) ends it. The answer is ~400 bytes: over 3 minutes of drip.
DRIP = Behaviour.drip(0.5)
DEADLINE = 3.0
DRIP_WOULD_LAST = 180.0


def client_for(standin: SiliconFlowStandIn, *, max_retries: int) -> SiliconFlowClient:
    return SiliconFlowClient(
        base_url=standin.base_url,
        api_key="sk-test",
        connect_timeout=1,
        read_timeout=2,
        max_retries=max_retries,
        sleep=lambda seconds: None,
    )


def test_a_dripped_answer_ends_at_the_call_deadline_as_a_counted_timeout(
    standin: SiliconFlowStandIn,
) -> None:
    standin.enqueue(DRIP)
    started = time.monotonic()
    with client_for(standin, max_retries=0) as client, pytest.raises(ProviderUnavailable) as raised:
        client.edit_image(provider_request())
    elapsed = time.monotonic() - started

    assert "ReadTimeout" in raised.value.message
    assert raised.value.provider_calls == 1  # the request was sent: it may have been billed
    assert len(standin.requests) == 1
    # Bounded: far below what the drip would last (no claim on how close to the deadline).
    assert elapsed < DRIP_WOULD_LAST / 3


def test_every_try_is_bounded_and_counted(standin: SiliconFlowStandIn) -> None:
    standin.enqueue(DRIP, DRIP)
    started = time.monotonic()
    with client_for(standin, max_retries=1) as client, pytest.raises(ProviderUnavailable) as raised:
        client.edit_image(provider_request())

    assert raised.value.provider_calls == 2
    assert len(standin.requests) == 2
    assert time.monotonic() - started < DRIP_WOULD_LAST / 3


def test_a_request_never_sent_is_not_counted() -> None:
    with SiliconFlowStandIn() as gone:
        base_url = gone.base_url
    client = SiliconFlowClient(
        base_url=base_url, api_key="sk-test", connect_timeout=1, read_timeout=1, max_retries=1,
        sleep=lambda seconds: None,
    )  # fmt: skip
    with client, pytest.raises(ProviderUnavailable, match="ConnectError") as raised:
        client.edit_image(provider_request())
    assert raised.value.provider_calls == 0


def test_a_timely_answer_is_unaffected_by_the_deadline(standin: SiliconFlowStandIn) -> None:
    with client_for(standin, max_retries=0) as client:
        response = client.edit_image(provider_request())
    assert response.image_url and response.calls == 1


def test_a_name_that_never_resolves_ends_at_the_deadline_uncounted() -> None:
    """getaddrinfo has no timeout: the deadline transport resolves within the call's deadline."""
    released = threading.Event()

    def hung_dns(host: str) -> list[str]:
        released.wait(DRIP_WOULD_LAST)
        return ["127.0.0.1"]

    client = SiliconFlowClient(
        base_url="http://provider.example:9/v1", api_key="sk-test", connect_timeout=1,
        read_timeout=2, max_retries=0,
        http_client=httpx.Client(transport=deadline_transport(resolve=hung_dns)),
    )  # fmt: skip
    started = time.monotonic()
    try:
        with pytest.raises(ProviderUnavailable, match="resolv") as raised:
            client.edit_image(provider_request())
    finally:
        released.set()
    assert raised.value.provider_calls == 0  # nothing was sent
    assert time.monotonic() - started < DRIP_WOULD_LAST / 3


def test_a_name_is_connected_to_at_the_address_it_resolves_to(
    standin: SiliconFlowStandIn,
) -> None:
    resolved: list[str] = []

    def dns(host: str) -> list[str]:
        resolved.append(host)
        return ["127.0.0.1"]

    client = SiliconFlowClient(
        base_url=f"http://provider.example:{standin.port}/v1", api_key="sk-test",
        connect_timeout=1, read_timeout=5, max_retries=0,
        http_client=httpx.Client(transport=deadline_transport(resolve=dns)),
    )  # fmt: skip
    assert client.edit_image(provider_request()).image_url
    assert resolved == ["provider.example"]
