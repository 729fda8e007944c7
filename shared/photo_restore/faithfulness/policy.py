"""What the worker does with the check: FAITHFULNESS_POLICY's flag or off, in one place.

Imports nothing heavy: the check (numpy, Pillow, dlib) is built on the first result it judges.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from photo_restore.attempts import FAITHFULNESS

if TYPE_CHECKING:
    from photo_restore.faithfulness.check import FaithfulnessCheck
    from photo_restore.faithfulness.verdicts import Faithfulness
    from photo_restore.settings import Settings

logger = logging.getLogger(__name__)

Policy = Literal["flag", "off"]


class FaithfulnessGate:
    def __init__(
        self,
        policy: Policy = "flag",
        *,
        check: Callable[[bytes, bytes], Faithfulness] | None = None,
    ) -> None:
        self.policy = policy
        self._given = check

    @classmethod
    def from_settings(cls, settings: Settings) -> FaithfulnessGate:
        return cls(settings.faithfulness_policy)

    @cached_property
    def _check(self) -> Callable[[bytes, bytes], Faithfulness]:
        if self._given is not None:
            return self._given
        from photo_restore.faithfulness.check import FaithfulnessCheck

        checker: FaithfulnessCheck = FaithfulnessCheck()
        return checker.check

    def judge(self, before: Callable[[], bytes], after: bytes) -> Faithfulness | None:
        """The check of `after` against the before image (read only when checking); None off."""
        if self.policy == "off":
            return None
        return self._check(before(), after)

    def params(self, before: Callable[[], bytes], after: bytes) -> dict[str, Any]:
        """The attempt's params entry: {"faithfulness": {...}}, or nothing when off. Never
        raises: a before image that cannot be read leaves the result unchecked."""
        try:
            judged = self.judge(before, after)
        except Exception as error:  # the storage's errors: the restoration goes on unchecked
            logger.warning("the before image could not be read for the check", exc_info=True)
            from photo_restore.faithfulness.verdicts import unchecked

            judged = unchecked(f"the before image could not be read: {type(error).__name__}", 0)
        return {FAITHFULNESS: judged.as_params()} if judged else {}


OFF = FaithfulnessGate("off")
