"""The provider call is bounded by wall time, connect to last byte: a provider that drips its
answer byte by byte (each read in time) no longer holds the worker until Lambda kills it."""

from __future__ import annotations

import time

import pytest

from photo_restore.errors import ProviderUnavailable
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
