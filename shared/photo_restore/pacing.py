"""Pacing provider calls across every concurrent worker, so that together they stay under the
account's images-per-minute limit (SiliconFlow's IPM: per account and model) instead of
hammering it and re-sending refused work.

A shared token bucket in the database (`photo_restore_provider_pacing`, one row per model):
each call reserves the next free slot, spaced 60 / (IPM x headroom) seconds apart. A slot a
few seconds away is waited for in the invocation; a later one in the queue (the message is
re-sent with a delay and keeps its slot), so no worker sits idle while billing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from photo_restore.errors import DependencyUnavailable
from photo_restore.repository import Repository
from photo_restore.settings import Settings

logger = logging.getLogger(__name__)

# Slots are spaced for this share of the limit: the provider's own window and clock are not
# ours, and a call that lands a hair early is a 429.
HEADROOM = 0.97
# A held slot is used only this long after its time. Work that comes back later (its message
# waited for a free container) takes a fresh slot: its call would crowd a provider minute with
# the calls of the slots after it, beyond what HEADROOM leaves room for (60 / 0.97 - 60 s).
LATE_SLOT = timedelta(seconds=1.5)


@dataclass(frozen=True)
class PaceDecision:
    slot: datetime | None  # the reserved slot; None when pacing is off or unavailable
    wait_seconds: float  # until the slot, from now
    in_queue: bool  # too far to wait for in the invocation: re-send the message


GO_NOW = PaceDecision(slot=None, wait_seconds=0.0, in_queue=False)


class ProviderPacer:
    def __init__(
        self,
        repository: Repository,
        *,
        key: str,
        images_per_minute: int,
        max_wait_seconds: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if images_per_minute < 1:
            raise ValueError("images_per_minute must be at least 1")
        self._repository = repository
        self._key = key
        self.interval = timedelta(seconds=60 / (images_per_minute * HEADROOM))
        self.max_wait_seconds = max_wait_seconds
        self._sleep = sleep
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: Settings, repository: Repository) -> ProviderPacer | None:
        """None when SILICONFLOW_IMAGES_PER_MINUTE is 0 (no pacing: 429s are deferred)."""
        if not settings.siliconflow_images_per_minute:
            return None
        return cls(
            repository,
            key=settings.siliconflow_model,
            images_per_minute=settings.siliconflow_images_per_minute,
            max_wait_seconds=settings.pacing_max_wait_seconds,
        )

    def pace(self, reserved: datetime | None = None) -> PaceDecision:
        """Reserve a slot (or keep `reserved`, the one this work already holds, unless it is
        more than LATE_SLOT past); when it is near, wait for it here and return a decision to
        call now."""
        now = self._clock()
        if reserved is not None and now - reserved <= LATE_SLOT:
            wait = (reserved - now).total_seconds()
            decision = PaceDecision(reserved, max(0.0, wait), wait > self.max_wait_seconds)
        else:
            try:
                with self._repository.transaction() as tx:
                    slot = tx.reserve_provider_slot(self._key, self.interval)
            except DependencyUnavailable:
                # Unpaced is better than failed: a 429 is still deferred.
                logger.warning("provider pacing unavailable: calling unpaced", exc_info=True)
                return GO_NOW
            wait = slot.wait_seconds
            decision = PaceDecision(slot.starts_at, wait, wait > self.max_wait_seconds)
        if not decision.in_queue and decision.wait_seconds > 0:
            self._sleep(decision.wait_seconds)
        return decision
