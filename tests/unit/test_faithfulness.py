"""The faithfulness check: alignment, structure, faces and a verdict that never crashes."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageOps

from photo_restore.attempts import (
    FAITHFULNESS,
    FAITHFULNESS_CALLS,
    Attempt,
    ProviderAnswer,
    replaces_selection,
)
from photo_restore.errors import ProviderContentRefused
from photo_restore.faithfulness import faces as faces_module
from photo_restore.faithfulness.alignment import align, phase_correlation
from photo_restore.faithfulness.check import FaithfulnessCheck
from photo_restore.faithfulness.faces import FaceModels, FaceModelsUnavailable, face_models
from photo_restore.faithfulness.policy import Candidate, FaithfulnessGate, Kept
from photo_restore.faithfulness.verdicts import Faithfulness, Verdict
from photo_restore.result_image import RestoredImage
from photo_restore.settings import Settings
from photo_restore_tools import faithfulness_samples as samples


def jpeg(image: Image.Image) -> bytes:
    return samples.jpeg(image)


@pytest.fixture(scope="module")
def check() -> FaithfulnessCheck:
    return FaithfulnessCheck()


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return samples.photo("astronaut")


def test_an_identical_result_is_faithful_with_its_face_matched(
    check: FaithfulnessCheck, astronaut: Image.Image
) -> None:
    result = check.check(jpeg(astronaut), jpeg(astronaut))
    assert result.verdict is Verdict.FAITHFUL
    assert result.faces_before == result.faces_after == result.faces_matched == 1
    assert result.max_face_distance is not None and result.max_face_distance < 0.05
    assert result.structure_similarity is not None and result.structure_similarity > 0.99
    assert result.alignment is not None and result.alignment.scale == pytest.approx(1, abs=0.005)


def test_a_zoomed_and_shifted_result_is_aligned_and_faithful(
    check: FaithfulnessCheck, astronaut: Image.Image
) -> None:
    after = samples.zoomed(astronaut, 1.03, -0.015, 0.01)
    result = check.check(jpeg(astronaut), jpeg(after))
    assert result.verdict is Verdict.FAITHFUL, result.reason
    assert result.alignment is not None
    assert result.alignment.scale == pytest.approx(1.03, abs=0.006)
    assert result.alignment.dx == pytest.approx(-0.015, abs=0.006)
    assert result.alignment.dy == pytest.approx(0.01, abs=0.006)


def test_phase_correlation_finds_a_pure_offset() -> None:
    rng = np.random.default_rng(3)
    image = rng.random((64, 80)).astype(np.float32)
    moved = np.roll(image, (5, -7), axis=(0, 1))
    _, (dx, dy) = phase_correlation(image, moved)
    assert (round(dx), round(dy)) == (-7, 5)


def test_a_result_whose_face_was_replaced_is_drifted(
    check: FaithfulnessCheck, astronaut: Image.Image
) -> None:
    swapped = samples.replace_face(astronaut, samples.photo("grace_hopper"))
    result = check.check(jpeg(astronaut), jpeg(swapped))
    assert result.verdict is Verdict.DRIFTED
    assert result.faces_matched == 0
    assert "faces changed or gone" in result.reason


def test_another_picture_is_drifted(check: FaithfulnessCheck, astronaut: Image.Image) -> None:
    result = check.check(jpeg(astronaut), jpeg(samples.photo("grace_hopper")))
    assert result.verdict is Verdict.DRIFTED


def test_a_photo_without_faces_is_judged_on_structure_alone(check: FaithfulnessCheck) -> None:
    coffee, chelsea = samples.photo("coffee"), samples.photo("chelsea")
    same = check.check(jpeg(samples.sepia(coffee)), jpeg(coffee))
    assert same.verdict is Verdict.FAITHFUL
    assert same.faces_before == same.faces_compared == 0
    assert "structure alone" in same.reason
    other = check.check(jpeg(coffee), jpeg(samples.different(coffee, chelsea)))
    assert other.verdict is Verdict.DRIFTED
    assert "another picture" in other.reason


def test_a_grayscale_before_and_a_colourised_result_are_the_same_person(
    check: FaithfulnessCheck, astronaut: Image.Image
) -> None:
    grey = io.BytesIO()
    ImageOps.grayscale(astronaut).save(grey, format="PNG")  # one channel, another format
    assert check.check(grey.getvalue(), jpeg(astronaut)).verdict is Verdict.FAITHFUL


def test_the_compared_faces_are_capped_and_the_result_says_so(astronaut: Image.Image) -> None:
    capped = FaithfulnessCheck(max_faces=2)
    group = samples.photo("group")
    result = capped.check(jpeg(group), jpeg(group))
    assert result.verdict is Verdict.FAITHFUL
    assert result.faces_before == 3
    assert result.faces_compared == 2
    assert "compared the 2 largest of 3 faces" in result.reason


@pytest.mark.parametrize(
    "size", [(8, 8), (3000, 12), (12, 900)], ids=["tiny", "a strip", "a column"]
)
def test_images_too_small_to_compare_are_unchecked_with_a_reason(
    check: FaithfulnessCheck, size: tuple[int, int]
) -> None:
    image = Image.new("RGB", size, (90, 80, 70))
    result = check.check(jpeg(image), jpeg(image))
    assert result.verdict is Verdict.UNCHECKED
    assert "too small" in result.reason


def test_odd_sizes_and_aspects_are_checked(check: FaithfulnessCheck) -> None:
    wide = ImageOps.fit(samples.photo("rocket"), (1021, 317))
    result = check.check(jpeg(wide), jpeg(wide.resize((1024, 320))))
    assert result.verdict is Verdict.FAITHFUL, result.reason


def test_bytes_that_are_not_an_image_are_unchecked_never_raised(check: FaithfulnessCheck) -> None:
    result = check.check(b"not an image", b"nor this")
    assert result.verdict is Verdict.UNCHECKED
    assert result.reason.startswith("the check failed: UnidentifiedImageError")


def test_without_face_models_the_same_picture_is_unchecked_and_another_is_drifted(
    astronaut: Image.Image,
) -> None:
    def missing() -> FaceModels:
        raise FaceModelsUnavailable("dlib is not installed")

    check = FaithfulnessCheck(models=missing)
    same = check.check(jpeg(astronaut), jpeg(astronaut))
    assert same.verdict is Verdict.UNCHECKED
    assert "dlib is not installed" in same.reason
    assert same.structure_similarity is not None
    other = check.check(jpeg(astronaut), jpeg(samples.photo("coffee")))
    assert other.verdict is Verdict.DRIFTED


def test_checked_ms_comes_from_the_injected_clock(astronaut: Image.Image) -> None:
    ticks = iter([10.0, 10.25])
    result = FaithfulnessCheck(clock=lambda: next(ticks)).check(b"x", b"y")
    assert result.checked_ms == 250


def test_the_face_models_load_once_per_container() -> None:
    assert face_models() is face_models()


@pytest.fixture
def models_dir_unset(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(faces_module.MODELS_DIR_VARIABLE, raising=False)
    yield


def test_the_model_files_are_found_without_importing_their_package(
    models_dir_unset: None,
) -> None:
    directory = faces_module.models_dir()
    assert (directory / faces_module.EMBEDDING_FILE).is_file()
    assert (directory / faces_module.LANDMARKS_FILE).is_file()


def test_a_models_dir_without_the_files_is_reported(tmp_path: Path) -> None:
    with pytest.raises(FaceModelsUnavailable, match="is missing"):
        FaceModels(tmp_path)


def test_the_result_is_recorded_as_json(check: FaithfulnessCheck, astronaut: Image.Image) -> None:
    params = check.check(jpeg(astronaut), jpeg(astronaut)).as_params()
    assert set(params) == {
        "verdict", "faces_before", "faces_after", "faces_compared", "faces_matched",
        "max_face_distance", "structure_similarity", "alignment", "reason", "checked_ms",
    }  # fmt: skip
    assert params["verdict"] == "faithful"
    assert set(params["alignment"]) == {"scale", "dx", "dy"}


def test_alignment_refuses_images_too_narrow_to_align() -> None:
    narrow = Image.new("RGB", (4000, 20))
    with pytest.raises(ValueError, match="too narrow"):
        align(narrow, narrow)


def test_the_labelled_subset_gets_its_verdicts(check: FaithfulnessCheck) -> None:
    wrong = [
        (sample.name, result.verdict.value, result.reason)
        for sample in samples.small_evaluation_set()
        if (result := check.check(sample.before, sample.after)).verdict.value != sample.expected
    ]
    assert wrong == []


# --- The policy and the selection rule --------------------------------------------------------


def answer(url: str, trace_id: str) -> ProviderAnswer:
    """The provider's answer as the worker records it (seed 7, 1 s of inference)."""
    received = datetime(2026, 12, 1, tzinfo=UTC)
    return ProviderAnswer(url, received, received + timedelta(hours=1), 7, 1.0, trace_id)


def candidate(name: str) -> Candidate:
    restored = RestoredImage(name.encode(), 1, 1, "JPEG", b"", {})
    return restored, answer(f"https://x/{name}", f"trace-{name}")


def scripted(
    verdicts: dict[bytes, tuple[Verdict, float]],
) -> Callable[[bytes, bytes], Faithfulness]:
    """A check answering each result (by its bytes) with a verdict and a face distance."""

    def check(before: bytes, after: bytes) -> Faithfulness:
        assert before == b"before"
        verdict, distance = verdicts[after]
        return Faithfulness(verdict, verdict.value, 1.0, max_face_distance=distance)

    return check


def calling(*names: str) -> tuple[list[int], Callable[[int], Candidate]]:
    seeds: list[int] = []
    results = iter(names)

    def again(seed: int) -> Candidate:
        seeds.append(seed)
        return candidate(next(results))

    return seeds, again


def unpacked(kept: Kept) -> tuple[Candidate, dict[str, Any]]:
    assert kept.framed_before is None  # the scripted checks report no alignment
    return kept.candidate, kept.params


DRIFTED_1 = (Verdict.DRIFTED, 0.9)
DRIFTED_2 = (Verdict.DRIFTED, 0.7)
FAITHFUL = (Verdict.FAITHFUL, 0.2)


def test_the_flag_policy_records_a_drifted_result_and_never_asks_again() -> None:
    gate = FaithfulnessGate("flag", check=scripted({b"first": DRIFTED_1}))
    seeds, again = calling()
    kept, params = unpacked(gate.keep_most_faithful(lambda: b"before", candidate("first"), again))
    assert kept == candidate("first") and seeds == []
    assert params[FAITHFULNESS]["verdict"] == "drifted"
    assert FAITHFULNESS_CALLS not in params


def test_retry_asks_again_with_a_new_seed_until_faithful_and_records_each_call() -> None:
    check = scripted({b"first": DRIFTED_1, b"second": FAITHFUL, b"third": FAITHFUL})
    gate = FaithfulnessGate("retry", max_extra_calls=2, check=check, seeds=lambda: 42)
    seeds, again = calling("second", "third")
    kept, params = unpacked(gate.keep_most_faithful(lambda: b"before", candidate("first"), again))
    assert kept == candidate("second")
    assert seeds == [42]  # faithful at the first extra call: no more paid for
    assert params[FAITHFULNESS]["verdict"] == "faithful"
    calls = params[FAITHFULNESS_CALLS]
    assert [(c["provider_trace_id"], c["verdict"], c["kept"]) for c in calls] == [
        ("trace-first", "drifted", False),
        ("trace-second", "faithful", True),
    ]
    assert calls[1]["requested_seed"] == 42


def test_retry_keeps_the_least_drifted_when_every_call_drifts() -> None:
    check = scripted({b"first": DRIFTED_1, b"second": DRIFTED_2, b"third": DRIFTED_1})
    gate = FaithfulnessGate("retry", max_extra_calls=2, check=check)
    seeds, again = calling("second", "third")
    kept, params = unpacked(gate.keep_most_faithful(lambda: b"before", candidate("first"), again))
    assert kept == candidate("second") and len(seeds) == 2
    assert [c["kept"] for c in params[FAITHFULNESS_CALLS]] == [False, True, False]


def test_a_failed_extra_call_keeps_the_first_result() -> None:
    gate = FaithfulnessGate("retry", max_extra_calls=2, check=scripted({b"first": DRIFTED_1}))

    def refused(seed: int) -> Candidate:
        raise ProviderContentRefused("refused")

    kept, params = unpacked(gate.keep_most_faithful(lambda: b"before", candidate("first"), refused))
    assert kept == candidate("first")
    calls = params[FAITHFULNESS_CALLS]
    assert calls[1]["error_code"] == ProviderContentRefused.code and len(calls) == 2


def test_retry_needs_a_worker_timeout_that_fits_the_extra_calls() -> None:
    with pytest.raises(ValueError, match="FAITHFULNESS_POLICY=retry: raise it"):
        Settings(faithfulness_policy="retry")
    settings = Settings(faithfulness_policy="retry", worker_timeout_seconds=600)
    assert settings.faithfulness_extra_calls == 1
    assert Settings(faithfulness_max_extra_calls=3).faithfulness_extra_calls == 0  # flag


def test_the_off_policy_never_reads_the_before_image() -> None:
    def unread() -> bytes:
        raise AssertionError("read")

    gate = FaithfulnessGate("off", check=scripted({}))
    first = candidate("first")
    assert gate.keep_most_faithful(unread, first, calling()[1]) == Kept(first, {})


def test_a_before_image_that_cannot_be_read_leaves_the_result_unchecked() -> None:
    def unreadable() -> bytes:
        raise OSError("S3 is down")

    gate = FaithfulnessGate("flag", check=scripted({}))
    _, params = unpacked(gate.keep_most_faithful(unreadable, candidate("first"), calling()[1]))
    assert params[FAITHFULNESS]["verdict"] == "unchecked"
    assert "could not be read: OSError" in params[FAITHFULNESS]["reason"]


def attempt_with(verdict: str | None) -> Attempt:
    params = {FAITHFULNESS: {"verdict": verdict}} if verdict else {}
    return Attempt(uuid.uuid4(), uuid.uuid4(), "restored/x.jpg", "m", params, datetime.now(UTC))


@pytest.mark.parametrize(
    ("new", "selected", "replaces"),
    [
        ("drifted", "faithful", False),
        ("drifted", "drifted", True),
        ("drifted", None, True),  # a restoration from before the check
        ("faithful", "faithful", True),
        ("unchecked", "faithful", True),
        (None, "faithful", True),
    ],
)
def test_a_drifted_result_never_displaces_a_faithful_selection(
    new: str | None, selected: str | None, replaces: bool
) -> None:
    params = {FAITHFULNESS: {"verdict": new}} if new else {}
    assert replaces_selection(params, lambda: attempt_with(selected)) is replaces


def test_without_a_selection_any_result_becomes_it() -> None:
    assert replaces_selection({FAITHFULNESS: {"verdict": "drifted"}}, lambda: None)


def test_the_slider_before_is_framed_like_a_zoomed_result(astronaut: Image.Image) -> None:
    after = samples.zoomed(astronaut, 1.03, -0.015, 0.01)
    gate = FaithfulnessGate("flag")
    restored = RestoredImage(jpeg(after), after.width, after.height, "JPEG", b"", {})
    response = answer("https://x/r", "t")
    kept = gate.keep_most_faithful(lambda: jpeg(astronaut), (restored, response), calling()[1])
    assert kept.framed_before is not None
    framed = Image.open(io.BytesIO(kept.framed_before))
    assert framed.size == after.size

    # Framed like the result: the two now differ far less than before and result did.
    def difference(a: Image.Image, b: Image.Image) -> float:
        small = (128, 128)
        grey = [np.asarray(i.convert("L").resize(small), dtype=np.float32) for i in (a, b)]
        return float(np.abs(grey[0] - grey[1]).mean())

    assert difference(framed, after) < 0.5 * difference(astronaut.resize(after.size), after)


def test_an_unmoved_result_gets_no_framed_before(astronaut: Image.Image) -> None:
    gate = FaithfulnessGate("flag")
    restored = RestoredImage(jpeg(astronaut), astronaut.width, astronaut.height, "JPEG", b"", {})
    response = answer("https://x/r", "t")
    kept = gate.keep_most_faithful(lambda: jpeg(astronaut), (restored, response), calling()[1])
    assert kept.framed_before is None


def test_a_face_filling_the_frame_is_compared(
    check: FaithfulnessCheck, astronaut: Image.Image
) -> None:
    left, top, right, bottom = samples.face_boxes(astronaut)[0]
    margin = (right - left) // 3
    close_up = astronaut.crop((left - margin, top - margin, right + margin, bottom + margin))
    close_up = close_up.resize((1024, 1024), Image.Resampling.LANCZOS)
    same = check.check(jpeg(close_up), jpeg(samples.restored(close_up)))
    assert (same.verdict, same.faces_matched) == (Verdict.FAITHFUL, 1)
    swapped = samples.different(close_up, samples.photo("grace_hopper"))
    assert check.check(jpeg(close_up), jpeg(swapped)).verdict is Verdict.DRIFTED


def test_a_face_too_small_to_detect_leaves_structure_alone(
    check: FaithfulnessCheck, astronaut: Image.Image
) -> None:
    crowd = Image.new("RGB", (2048, 2048), (120, 110, 100))
    crowd.paste(astronaut.resize((128, 128)), (900, 900))  # its face: ~30 px at 1024
    result = check.check(jpeg(crowd), jpeg(crowd))
    assert (result.verdict, result.faces_before) == (Verdict.FAITHFUL, 0)
    assert "structure alone" in result.reason
