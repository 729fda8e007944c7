"""The faces layer (issue 18) on the `sam build` output: the worker's only, the two model files
the check loads and never the 68-point one, and the check running from it. Every function's size
with its layers: tests/build/test_sam_build.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from photo_restore_tools.template import load_template
from tests.helpers import built_artifact

pytestmark = pytest.mark.sam

FACE_MODULES = {"numpy", "dlib", "_dlib_pybind11"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def test_only_the_worker_has_the_faces_layer_built_by_its_makefile(
    template: dict[str, Any],
) -> None:
    layers = built_artifact.function_layers(template)
    assert [name for name, used in layers.items() if "WorkerLayer" in used] == ["WorkerFunction"]
    faces = template["Resources"]["WorkerLayer"]
    assert faces["Properties"]["ContentUri"] == "layers/worker/"
    assert faces["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "x86_64"}


def test_the_faces_layer_ships_the_two_models_the_check_loads_and_never_the_68_point_one(
    build_dir: Path,
) -> None:
    layer = build_dir / "WorkerLayer" / "python"
    models = layer / "face_recognition_models" / "models"
    assert sorted(p.name for p in models.iterdir()) == [
        "dlib_face_recognition_resnet_model_v1.dat",
        "shape_predictor_5_face_landmarks.dat",
    ]
    assert not list(build_dir.rglob("shape_predictor_68_face_landmarks.dat"))
    assert (layer / "dlib").is_dir() and (layer / "numpy").is_dir()


# Run in the worker's sandbox: the check on the layers alone, its models from the faces layer.
CHECK_PROBE = """
import io
from PIL import Image, ImageDraw
from photo_restore.faithfulness.check import FaithfulnessCheck
from photo_restore.faithfulness.faces import face_models, models_dir

image = Image.new("RGB", (640, 480), (200, 190, 170))
ImageDraw.Draw(image).rectangle((100, 80, 400, 300), fill=(40, 60, 90))
data = io.BytesIO()
image.save(data, "JPEG")
face_models()
result = FaithfulnessCheck().check(data.getvalue(), data.getvalue())
assert str(models_dir()).startswith(FACES), models_dir()
print(result.verdict.value, result.faces_before)
"""


def test_the_worker_runs_the_check_with_the_faces_layers_models(build_dir: Path) -> None:
    faces = str(build_dir / "WorkerLayer" / "python")
    code = f"FACES = {faces!r}\n{CHECK_PROBE}"
    result = built_artifact.run_in_function("WorkerFunction", code, build_dir=build_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["faithful", "0"]


@pytest.mark.parametrize("function", ["ApiFunction", "DlqFunction", "SweeperFunction"])
def test_functions_without_the_faces_layer_never_load_numpy_or_dlib(
    function: str, build_dir: Path
) -> None:
    code = "import app, sys\nprint(' '.join(sorted(sys.modules)))"
    result = built_artifact.run_in_function(function, code, build_dir=build_dir)
    assert result.returncode == 0, result.stderr
    assert not FACE_MODULES & set(result.stdout.split())
