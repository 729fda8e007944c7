"""What the worker does with the check: FAITHFULNESS_POLICY's flag, retry or off, in one place.

Imports nothing heavy: the check (numpy, Pillow, dlib) is built on the first result it judges.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from photo_restore.attempts import FAITHFULNESS, FAITHFULNESS_CALLS
from photo_restore.errors import RestoreError

if TYPE_CHECKING:
    from photo_restore.attempts import ProviderAnswer
    from photo_restore.faithfulness.verdicts import Faithfulness
    from photo_restore.result_image import RestoredImage
    from photo_restore.settings import Settings

# A result as the worker holds it: the decoded image and the provider's answer it came from.
type Candidate = tuple[RestoredImage, ProviderAnswer]

logger = logging.getLogger(__name__)

Policy = Literal["flag", "retry", "off"]
MAX_SEED = 9_999_999_999  # SiliconFlow's documented seed range is 0..9999999999


class FaithfulnessGate:
    def __init__(
        self,
        policy: Policy = "flag",
        *,
        max_extra_calls: int = 0,
        check: Callable[[bytes, bytes], Faithfulness] | None = None,
        seeds: Callable[[], int] = lambda: random.randint(0, MAX_SEED),
        jpeg_quality: int = 90,
    ) -> None:
        self._jpeg_quality = jpeg_quality
        self.policy = policy
        self.max_extra_calls = max_extra_calls if policy == "retry" else 0
        self._given = check
        self._seeds = seeds

    @classmethod
    def from_settings(cls, settings: Settings) -> FaithfulnessGate:
        return cls(
            settings.faithfulness_policy,
            max_extra_calls=settings.faithfulness_extra_calls,
            jpeg_quality=settings.jpeg_quality,
        )

    @cached_property
    def _check(self) -> Callable[[bytes, bytes], Faithfulness]:
        if self._given is not None:
            return self._given
        from photo_restore.faithfulness.check import FaithfulnessCheck

        return FaithfulnessCheck().check

    def judge(self, before: Callable[[], bytes], after: bytes) -> Faithfulness | None:
        """The check of `after` against the before image (read only when checking); None off.
        Never raises: a before image that cannot be read leaves the result unchecked."""
        if self.policy == "off":
            return None
        try:
            before_jpeg = before()
        except Exception as error:  # the storage's errors: the restoration goes on unchecked
            logger.warning("the before image could not be read for the check", exc_info=True)
            from photo_restore.faithfulness.verdicts import unchecked

            return unchecked(f"the before image could not be read: {type(error).__name__}", 0)
        return self._check(before_jpeg, after)

    def keep_most_faithful(
        self,
        before: Callable[[], bytes],
        first: Candidate,
        again: Callable[[int], Candidate],
    ) -> Kept:
        """The first result, or with `retry` and a drifted verdict, the most faithful of it and
        up to max_extra_calls more asked for with new seeds (`again`); the params entries: its
        faithfulness, and every provider call when there was more than one; and the before
        image framed like it for a slider, when the model moved the frame. A failed extra call
        ends the retries, never the restoration."""
        cached: list[bytes] = []

        def before_once() -> bytes:
            if not cached:
                cached.append(before())
            return cached[0]

        judged = self.judge(before_once, first[0].jpeg)
        if judged is None:
            return Kept(first, {})
        best, best_judged, kept = first, judged, 0
        calls = [_call(first, judged)]
        while best_judged.verdict.value == "drifted" and len(calls) <= self.max_extra_calls:
            seed = self._seeds()
            try:
                candidate = again(seed)
            except Exception as error:  # refused, rate limited, unreadable: keep what we have
                code = error.code if isinstance(error, RestoreError) else type(error).__name__
                logger.warning("an extra call for a more faithful result failed: %s", code)
                calls.append({"requested_seed": seed, "error_code": code})
                break
            judged = self.judge(before_once, candidate[0].jpeg)
            assert judged is not None  # not off: judged above
            calls.append({"requested_seed": seed, **_call(candidate, judged)})
            if judged.rank > best_judged.rank:
                best, best_judged, kept = candidate, judged, len(calls) - 1
        params: dict[str, Any] = {FAITHFULNESS: best_judged.as_params()}
        if len(calls) > 1:
            params[FAITHFULNESS_CALLS] = [
                {**call, "kept": index == kept} for index, call in enumerate(calls)
            ]
        return Kept(best, params, self._framed(before_once, best[0], best_judged))

    def _framed(
        self, before: Callable[[], bytes], restored: RestoredImage, judged: Faithfulness
    ) -> bytes | None:
        """Before framed like the result, for a slider; None when no adjustment shows (or it
        could not be made: the slider then shows before as it was)."""
        from photo_restore.faithfulness import framing

        if judged.alignment is None or not framing.needs_framing(judged.alignment):
            return None
        try:
            size = (restored.width, restored.height)
            return framing.framed_before(
                before(), judged.alignment, size, jpeg_quality=self._jpeg_quality
            )
        except Exception:  # Pillow's many errors: the restoration goes on without it
            logger.warning("could not frame the before image like the result", exc_info=True)
            return None


@dataclass(frozen=True)
class Kept:
    candidate: Candidate
    params: dict[str, Any]  # the attempt's params entries
    framed_before: bytes | None = None  # JPEG at the result's size and framing


def _call(candidate: Candidate, judged: Faithfulness) -> dict[str, Any]:
    """One provider call as params.faithfulness_calls records it."""
    answer = candidate[1]
    return {
        "seed": answer.seed,
        "provider_trace_id": answer.trace_id,
        "inference_time_seconds": answer.inference_time_seconds,
        "verdict": judged.verdict.value,
        "max_face_distance": judged.as_params()["max_face_distance"],
    }


OFF = FaithfulnessGate("off")
