"""The check's result as the attempt records it, and the thresholds its verdict uses.

The thresholds come from benchmarks/bench_faithfulness.py (see the README's table): same-person
pairs with restoration-like changes stay under them, replaced faces and other pictures do not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# A face is the same person below this Euclidean distance of dlib's 128-d embeddings. dlib
# documents 0.6 for unrelated photos; a restoration of the same photo stays far below it.
FACE_DISTANCE_THRESHOLD = 0.5
# Below this structure similarity of the aligned luminance, the result is another picture.
STRUCTURE_THRESHOLD = 0.55
# Faces compared at most (the largest first): each costs two embeddings (~0.1 s each).
MAX_COMPARED_FACES = 3


class Verdict(StrEnum):
    FAITHFUL = "faithful"  # same picture, and every compared face is the same person
    DRIFTED = "drifted"  # another picture, or a face changed or gone
    UNCHECKED = "unchecked"  # the check could not run (its reason says why)


@dataclass(frozen=True)
class Alignment:
    """Where before's content is in the result: a point (x, y) of before, in fractions of its
    width and height, is at (scale * x + dx, scale * y + dy) in the result, in fractions of
    the result's width and height. Identity: scale 1, dx = dy = 0."""

    scale: float = 1.0
    dx: float = 0.0
    dy: float = 0.0

    def as_params(self) -> dict[str, float]:
        return {"scale": round(self.scale, 4), "dx": round(self.dx, 4), "dy": round(self.dy, 4)}


@dataclass(frozen=True)
class Faithfulness:
    verdict: Verdict
    reason: str
    checked_ms: float
    faces_before: int | None = None
    faces_after: int | None = None
    faces_compared: int | None = None
    faces_matched: int | None = None
    max_face_distance: float | None = None
    structure_similarity: float | None = None
    alignment: Alignment | None = None
    face_distances: list[float] = field(default_factory=list)

    @property
    def rank(self) -> tuple[int, float]:
        """Higher is more faithful: the verdict first, then the worst face distance."""
        order = {Verdict.FAITHFUL: 2, Verdict.UNCHECKED: 1, Verdict.DRIFTED: 0}
        return order[self.verdict], -(self.max_face_distance or 0.0)

    def as_params(self) -> dict[str, Any]:
        """The attempt's `params.faithfulness` (JSON)."""
        return {
            "verdict": self.verdict.value,
            "faces_before": self.faces_before,
            "faces_after": self.faces_after,
            "faces_compared": self.faces_compared,
            "faces_matched": self.faces_matched,
            "max_face_distance": _rounded(self.max_face_distance),
            "structure_similarity": _rounded(self.structure_similarity),
            "alignment": self.alignment.as_params() if self.alignment else None,
            "reason": self.reason,
            "checked_ms": round(self.checked_ms, 1),
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def unchecked(reason: str, checked_ms: float) -> Faithfulness:
    return Faithfulness(Verdict.UNCHECKED, reason, checked_ms)
