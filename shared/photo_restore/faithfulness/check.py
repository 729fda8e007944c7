"""The check itself: before (the image the model was given) against the result it returned.

Never raises: whatever goes wrong inside makes the verdict `unchecked`, with the reason.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from photo_restore.faithfulness.alignment import align
from photo_restore.faithfulness.faces import (
    Box,
    FaceModels,
    FaceModelsUnavailable,
    face_models,
)
from photo_restore.faithfulness.structure import structure_similarity
from photo_restore.faithfulness.verdicts import (
    FACE_DISTANCE_THRESHOLD,
    MAX_COMPARED_FACES,
    STRUCTURE_THRESHOLD,
    Alignment,
    Faithfulness,
    Verdict,
    unchecked,
)

logger = logging.getLogger(__name__)

# Faces are looked for with both images at this longest side (~1 MP): a face of 8% of the
# photo's side is still ~80 px, what the HOG detector needs; larger costs time for nothing.
FACE_SIDE = 1024
MIN_SIDE = 16
# A detection in the result this close to where before's face landed is that face.
SAME_BOX_OVERLAP = 0.3
# A face less than this much inside the result's frame was cropped away.
MIN_INSIDE = 0.5
READABLE_FORMATS = ("JPEG", "PNG", "WEBP")


@dataclass(frozen=True)
class _FaceFindings:
    before: int
    after: int
    total: int  # distinct faces found in either image
    distances: list[float]  # one per compared face (inf: cropped out of the result)


class FaithfulnessCheck:
    """Compares a result with its before image; the face models are loaded on first use."""

    def __init__(
        self,
        *,
        models: Callable[[], FaceModels] = face_models,
        max_faces: int = MAX_COMPARED_FACES,
        face_threshold: float = FACE_DISTANCE_THRESHOLD,
        structure_threshold: float = STRUCTURE_THRESHOLD,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._models = models
        self._max_faces = max_faces
        self._face_threshold = face_threshold
        self._structure_threshold = structure_threshold
        self._clock = clock

    def check(self, before: bytes, after: bytes) -> Faithfulness:
        started = self._clock()
        try:
            return self._check(before, after, started)
        except Exception as error:  # numpy, Pillow and dlib raise many types
            logger.warning("the faithfulness check failed", exc_info=True)
            text = f"the check failed: {type(error).__name__}: {error}"
            return unchecked(text[:300], self._elapsed_ms(started))

    def _check(self, before_data: bytes, after_data: bytes, started: float) -> Faithfulness:
        before, after = _open(before_data), _open(after_data)
        if min(before.size) < MIN_SIDE or min(after.size) < MIN_SIDE:
            return unchecked(
                f"too small to check ({before.width}x{before.height}, "
                f"{after.width}x{after.height})",
                self._elapsed_ms(started),
            )
        # Same pixel grid as before: the alignment is in fractions of each image's size.
        after = after.resize(before.size, Image.Resampling.BILINEAR)
        pair = align(before, after)
        structure = structure_similarity(pair)
        try:
            faces: _FaceFindings | str = self._faces(before, after, pair.alignment)
        except FaceModelsUnavailable as error:
            faces = str(error)
        return self._verdict(structure, pair.alignment, faces, started)

    def _faces(
        self, before: Image.Image, after: Image.Image, alignment: Alignment
    ) -> _FaceFindings:
        """Faces found in either image, each compared with where it is in the other: a damaged
        print hides faces from the detector that its restoration shows."""
        models = self._models()
        before_rgb, after_rgb = np.asarray(before), np.asarray(after)
        found_before, found_after = models.detect(before_rgb), models.detect(after_rgb)
        frame = Box(0, 0, *after.size)
        unpaired = list(found_after)
        pairs: list[tuple[Box, Box | None]] = []  # (in before, in after; None: cropped out)
        for face in found_before:
            landed = _landed(face, alignment, before.size)
            inside = _clipped(landed, after.size)
            if inside.area < MIN_INSIDE * landed.area:
                pairs.append((face, None))
                continue
            nearest = max(unpaired, key=inside.overlap, default=None)
            if nearest is not None and inside.overlap(nearest) >= SAME_BOX_OVERLAP:
                unpaired.remove(nearest)
                inside = nearest
            # Where the detector misses it, its landmarks are looked for where it landed.
            pairs.append((face, inside))
        for face in unpaired:
            returned = _clipped(_returned(face, alignment, before.size), before.size)
            if returned.area >= MIN_INSIDE * face.area and frame.area > 0:
                pairs.append((returned, face))
        pairs.sort(key=lambda pair: pair[0].area, reverse=True)
        distances: list[float] = []
        for in_before, in_after in pairs[: self._max_faces]:
            if in_after is None:
                distances.append(float("inf"))
            else:
                difference = models.embed(before_rgb, in_before) - models.embed(after_rgb, in_after)
                distances.append(float(np.linalg.norm(difference)))
            if distances[-1] > self._face_threshold:
                break  # drifted already: the remaining faces would not change the verdict
        return _FaceFindings(len(found_before), len(found_after), len(pairs), distances)

    def _verdict(
        self,
        structure: float,
        alignment: Alignment,
        faces: _FaceFindings | str,
        started: float,
    ) -> Faithfulness:
        found = faces if isinstance(faces, _FaceFindings) else None
        distances = found.distances if found else []
        worst = max(distances, default=None)
        matched = sum(d <= self._face_threshold for d in distances)
        if worst is not None and worst > self._face_threshold:
            verdict = Verdict.DRIFTED
            reason = (
                f"{len(distances) - matched} of {len(distances)} compared faces changed or "
                f"gone (face distance {_shown(worst)} > {self._face_threshold})"
            )
        elif structure < self._structure_threshold:
            verdict = Verdict.DRIFTED
            reason = (
                f"another picture (structure similarity {structure:.2f} < "
                f"{self._structure_threshold})"
            )
        elif found is None:
            verdict = Verdict.UNCHECKED
            reason = f"the same picture, faces not checked: {faces}"
        else:
            verdict = Verdict.FAITHFUL
            reason = _faithful_reason(found, structure)
        if found and found.total > self._max_faces:
            reason += f"; compared the {self._max_faces} largest of {found.total} faces"
        return Faithfulness(
            verdict=verdict,
            reason=reason,
            checked_ms=self._elapsed_ms(started),
            faces_before=found.before if found else None,
            faces_after=found.after if found else None,
            faces_compared=len(distances) if found else None,
            faces_matched=matched if found else None,
            max_face_distance=None if worst is None else min(worst, 9.99),
            structure_similarity=structure,
            alignment=alignment,
            face_distances=distances,
        )

    def _elapsed_ms(self, started: float) -> float:
        return (self._clock() - started) * 1000


def _faithful_reason(found: _FaceFindings, structure: float) -> str:
    if not found.distances:
        return f"no faces: judged on structure alone (similarity {structure:.2f})"
    return (
        f"the same picture (similarity {structure:.2f}) and the same "
        f"{'person' if len(found.distances) == 1 else 'people'} "
        f"(face distance up to {max(found.distances):.2f})"
    )


def _shown(distance: float) -> str:
    return "inf (cropped out)" if distance == float("inf") else f"{distance:.2f}"


def _open(data: bytes) -> Image.Image:
    """RGB, longest side at most FACE_SIDE; a JPEG is decoded at a reduced scale."""
    with Image.open(io.BytesIO(data), formats=READABLE_FORMATS) as opened:
        opened.draft("RGB", (FACE_SIDE, FACE_SIDE))
        image = opened.convert("RGB")
    if max(image.size) > FACE_SIDE:
        image.thumbnail((FACE_SIDE, FACE_SIDE), Image.Resampling.BILINEAR)
    return image


def _landed(face: Box, alignment: Alignment, size: tuple[int, int]) -> Box:
    """Where a face of before is in the result (both on before's pixel grid)."""
    width, height = size
    scale = alignment.scale
    return Box(
        face.left * scale + alignment.dx * width,
        face.top * scale + alignment.dy * height,
        face.right * scale + alignment.dx * width,
        face.bottom * scale + alignment.dy * height,
    )


def _returned(face: Box, alignment: Alignment, size: tuple[int, int]) -> Box:
    """Where a face of the result was in before: the inverse of _landed."""
    width, height = size
    scale = alignment.scale
    return Box(
        (face.left - alignment.dx * width) / scale,
        (face.top - alignment.dy * height) / scale,
        (face.right - alignment.dx * width) / scale,
        (face.bottom - alignment.dy * height) / scale,
    )


def _clipped(box: Box, size: tuple[int, int]) -> Box:
    width, height = size
    return Box(
        max(0.0, box.left), max(0.0, box.top), min(width, box.right), min(height, box.bottom)
    )
