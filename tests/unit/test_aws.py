"""boto3 clients created on first use: a request that never calls a service pays nothing for it."""

from __future__ import annotations

import pytest

from photo_restore import aws


class FakeClient:
    def send_message(self, **fields: str) -> str:
        return f"sent {fields['MessageBody']}"


def test_a_client_is_created_at_its_first_call_and_only_once() -> None:
    created: list[FakeClient] = []

    def create() -> FakeClient:
        created.append(FakeClient())
        return created[-1]

    client = aws.on_first_use(create)
    assert created == []
    assert client.send_message(MessageBody="one") == "sent one"
    assert client.send_message(MessageBody="two") == "sent two"
    assert len(created) == 1


def test_a_client_that_cannot_be_created_fails_at_its_use_and_is_tried_again() -> None:
    attempts: list[int] = []

    def create() -> FakeClient:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("no region")
        return FakeClient()

    client = aws.on_first_use(create)
    with pytest.raises(RuntimeError, match="no region"):
        client.send_message(MessageBody="x")
    assert client.send_message(MessageBody="y") == "sent y"
