"""Faces and who they are: dlib's HOG detector, its 5-point landmarks and its ResNet embedding.

The model files come from the face-recognition-models package (the worker's faces layer ships
only the two used here); its 68-point model is licensed for non-commercial use and never
loaded. The models load once per container, on the first check.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
EMBEDDING_FILE = "dlib_face_recognition_resnet_model_v1.dat"
# Where the files are: FACE_MODELS_DIR, else the face_recognition_models package's folder
# (found without importing it: its __init__ needs setuptools' pkg_resources).
MODELS_DIR_VARIABLE = "FACE_MODELS_DIR"
# HOG finds faces from ~80 px: images whose longest side is below this are searched upsampled.
UPSAMPLE_BELOW_SIDE = 800
# Detections scoring lower are dropped: faces in the evaluation photos score above 1, while
# the astronaut's mission patch scores 0.13 (a false face whose embedding is unstable).
MIN_DETECTION_SCORE = 0.3

RGB = NDArray[np.uint8]


class FaceModelsUnavailable(RuntimeError):
    """dlib or its model files are missing: faces cannot be checked."""


@dataclass(frozen=True)
class Box:
    left: float
    top: float
    right: float
    bottom: float

    @property
    def area(self) -> float:
        return max(0.0, self.right - self.left) * max(0.0, self.bottom - self.top)

    def overlap(self, other: Box) -> float:
        """Intersection over union."""
        inner = Box(
            max(self.left, other.left),
            max(self.top, other.top),
            min(self.right, other.right),
            min(self.bottom, other.bottom),
        )
        union = self.area + other.area - inner.area
        return inner.area / union if union > 0 else 0.0


def models_dir() -> Path:
    configured = os.environ.get(MODELS_DIR_VARIABLE)
    if configured:
        return Path(configured)
    spec = importlib.util.find_spec("face_recognition_models")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "models"
        if (candidate / EMBEDDING_FILE).is_file():
            return candidate
    raise FaceModelsUnavailable("the face models are not installed (face_recognition_models)")


class FaceModels:
    """dlib's detector, landmarks and embedding, loaded together."""

    def __init__(self, directory: Path) -> None:
        try:
            import dlib
        except ImportError as error:
            raise FaceModelsUnavailable(f"dlib is not installed: {error}") from error
        for name in (LANDMARKS_FILE, EMBEDDING_FILE):
            if not (directory / name).is_file():
                raise FaceModelsUnavailable(f"{name} is missing from {directory}")
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(str(directory / LANDMARKS_FILE))
        self._embedding = dlib.face_recognition_model_v1(str(directory / EMBEDDING_FILE))

    def detect(self, image: RGB, *, upsample: bool = True) -> list[Box]:
        """Faces, largest first; a small image is searched upsampled (unless `upsample` is
        False: a crop around a face already found at this scale)."""
        upsampled = upsample and max(image.shape[:2]) < UPSAMPLE_BELOW_SIDE
        found, _scores, _kinds = self._detector.run(
            image, 1 if upsampled else 0, MIN_DETECTION_SCORE
        )
        boxes = [Box(r.left(), r.top(), r.right(), r.bottom()) for r in found]
        return sorted(boxes, key=lambda box: box.area, reverse=True)

    def embed(self, image: RGB, box: Box) -> NDArray[np.float64]:
        """The 128-d embedding of the face in `box` (landmarks found inside it)."""
        rectangle: Any = self._dlib.rectangle(
            round(box.left), round(box.top), round(box.right), round(box.bottom)
        )
        shape = self._landmarks(image, rectangle)
        return np.asarray(self._embedding.compute_face_descriptor(image, shape), dtype=np.float64)


@cache
def face_models() -> FaceModels:
    """The container's models, loaded on first use (~0.5 s); a failure is retried next time."""
    return FaceModels(models_dir())
