"""The worker against fakes: the provider's answer committed on arrival, resumed while its URL
outlives the margin, paid again once it does not; every call counted and reported once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from photo_restore.errors import ProviderUnavailable
from photo_restore.restore_runs import RestoreRun, RunOutcome, RunReport
from tests.helpers.fakes import ok_response
from tests.unit.test_restore_runs import World


class FlakyDownload:
    """The first download fails (a CDN 5xx), later ones get the result; URLs asked are kept."""

    def __init__(self, result: bytes) -> None:
        self.result = result
        self.asked: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.asked.append(url)
        if len(self.asked) == 1:
            raise ProviderUnavailable("result download answered 503")
        return self.result


def run_with(world: World, fetch: Callable[[str], bytes]) -> RunReport:
    run = RestoreRun(
        repository=world.repository,
        storage=world.storage,
        queue=world.queue,
        editor=world.editor,
        preprocess=world.preprocess,
        fetch_result=fetch,
        settings=world.settings,
        announcer=world.announcer,
        clock=lambda: world.now,
    )
    return run.run(world.message)


def test_the_answer_is_committed_before_the_download_and_resumed_after_it_failed() -> None:
    world = World()
    world.editor.answers = [ok_response(image_url="https://cdn.example/once.png", seed=7)]
    download = FlakyDownload(world.result)
    with pytest.raises(ProviderUnavailable):
        run_with(world, download)
    recorded = world.repository.attempt(world.attempt_id)
    assert recorded.provider_calls == 1
    assert recorded.provider_answer is not None
    assert recorded.provider_answer.result_url == "https://cdn.example/once.png"
    assert recorded.provider_answer.seed == 7
    assert recorded.provider_answer.expires_at == world.now + timedelta(hours=1)

    world.now += timedelta(minutes=50)  # still valid 10 minutes on: more than the margin
    report = run_with(world, download)

    assert report.outcome is RunOutcome.SUCCEEDED
    assert report.provider_calls == 1
    assert len(world.editor.requests) == 1
    assert download.asked == ["https://cdn.example/once.png"] * 2
    assert world.repository.attempt(world.attempt_id).params["seed"] == 7


def test_an_answer_whose_url_ends_within_the_margin_is_paid_again() -> None:
    world = World()
    download = FlakyDownload(world.result)
    with pytest.raises(ProviderUnavailable):
        run_with(world, download)

    # 56 minutes on, the URL has 4 minutes left: less than the 5-minute margin.
    world.now += timedelta(minutes=56)
    report = run_with(world, download)

    assert len(world.editor.requests) == 2
    assert report.provider_calls == 2
    assert world.repository.attempt(world.attempt_id).provider_calls == 2


def test_calls_that_raised_are_counted_too() -> None:
    """A read timeout after the request was sent may have been billed: the client says so."""
    world = World()
    timed_out = ProviderUnavailable("SiliconFlow unreachable after 2 attempt(s): ReadTimeout")
    timed_out.provider_calls = 2
    world.editor.answers = [timed_out]
    with pytest.raises(ProviderUnavailable):
        world.run()
    assert world.repository.attempt(world.attempt_id).provider_calls == 2

    report = world.run()

    assert report.outcome is RunOutcome.SUCCEEDED
    assert report.provider_calls == 3
