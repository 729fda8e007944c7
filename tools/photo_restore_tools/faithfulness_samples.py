"""The faithfulness check's labelled evaluation set, built from public-domain photos that ship
in packages (scikit-image's astronaut, coffee, chelsea, camera and rocket; matplotlib's Grace
Hopper) and synthetic changes: restoration-like ones (must stay faithful), a face replaced by
another person's (blended in) and another picture (both must be drifted).

Used by benchmarks/bench_faithfulness.py, the tests and the SiliconFlow stand-in. Nothing is
committed: the photos are read from the installed packages (dev dependencies) when needed.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

# Like a preprocessed input: about 1 MP (the sample photos are 512-600 px, so upscaled).
SIDE = 1024
PEOPLE = ("astronaut", "grace_hopper")
WITHOUT_FACES = ("coffee", "chelsea", "rocket")

Expected = Literal["faithful", "drifted"]


@dataclass(frozen=True)
class Sample:
    name: str
    kind: str  # what changed: a restoration-like change, "face_replaced" or "other_picture"
    before: bytes  # JPEG
    after: bytes  # JPEG
    expected: Expected


@cache
def photo(name: str) -> Image.Image:
    """A public-domain photo, RGB, longest side SIDE."""
    if name == "grace_hopper":
        import matplotlib

        sample = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        with Image.open(sample) as opened:
            image = opened.convert("RGB")
    elif name == "group":
        return group_photo()
    else:
        import skimage.data

        image = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
    factor = SIDE / max(image.size)
    size = (round(image.width * factor), round(image.height * factor))
    return image.resize(size, Image.Resampling.LANCZOS)


@cache
def group_photo() -> Image.Image:
    """Three faces (two people) and a cup of coffee in a 2x2 grid, like an album page."""
    tile = SIDE // 2
    parts = [photo("astronaut"), photo("grace_hopper"), photo("coffee"), photo("astronaut")]
    canvas = Image.new("RGB", (SIDE, SIDE))
    for index, part in enumerate(parts):
        if index == 3:
            part = ImageOps.mirror(part)
        square = ImageOps.fit(part, (tile, tile), Image.Resampling.LANCZOS)
        canvas.paste(square, ((index % 2) * tile, (index // 2) * tile))
    return canvas


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=quality)
    return out.getvalue()


# --- Restoration-like changes ------------------------------------------------------------------


def sepia(image: Image.Image) -> Image.Image:
    grey = ImageOps.grayscale(image)
    return ImageOps.colorize(grey, black=(40, 26, 13), white=(255, 240, 205), mid=(170, 130, 90))


def noisy(image: Image.Image, sigma: float = 14, seed: int = 7) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float32)
    noise = np.random.default_rng(seed).normal(0, sigma, pixels.shape)
    return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))


def faded(image: Image.Image) -> Image.Image:
    washed = ImageEnhance.Contrast(image).enhance(0.45)
    return ImageEnhance.Brightness(washed).enhance(1.15)


def zoomed(image: Image.Image, scale: float, dx: float, dy: float) -> Image.Image:
    """Like Qwen-Image-Edit-2509: content zoomed by `scale` and shifted by (dx, dy) fractions
    of the frame, at a size near 1 MP with sides multiples of 32 (the provider's)."""
    width, height = image.size
    data = (1 / scale, 0, -dx * width / scale, 0, 1 / scale, -dy * height / scale)
    moved = image.transform(image.size, Image.Transform.AFFINE, data, Image.Resampling.BICUBIC)
    return moved.resize((round(width / 32) * 32, round(height / 32) * 32), Image.Resampling.BICUBIC)


def restored(image: Image.Image) -> Image.Image:
    """What the stand-in does: speckle out, contrast back, a little sharper."""
    cleaned = image.filter(ImageFilter.MedianFilter(3))
    stretched = ImageOps.autocontrast(cleaned, cutoff=1)
    return stretched.filter(ImageFilter.UnsharpMask(radius=2, percent=60, threshold=3))


# (before, after) from a clean photo: before is the damaged print, after its restoration.
CHANGES: dict[str, Callable[[Image.Image], tuple[Image.Image, Image.Image]]] = {
    "denoise": lambda p: (noisy(p), noisy(p).filter(ImageFilter.MedianFilter(5))),
    "sepia_to_colour": lambda p: (sepia(p), p),
    "grayscale_colourised": lambda p: (ImageOps.grayscale(p).convert("RGB"), p),
    "contrast": lambda p: (faded(p), ImageOps.autocontrast(faded(p), cutoff=1)),
    "sharpen": lambda p: (
        p.filter(ImageFilter.GaussianBlur(1.5)),
        p.filter(ImageFilter.GaussianBlur(1.5)).filter(ImageFilter.UnsharpMask(3, 150, 2)),
    ),
    "jpeg_q15": lambda p: (Image.open(io.BytesIO(jpeg(p, 15))).convert("RGB"), p),
    "zoom_1pc": lambda p: (p, zoomed(p, 1.01, -0.005, 0.008)),
    "zoom_2pc": lambda p: (p, zoomed(p, 1.02, 0.01, -0.012)),
    "zoom_3pc": lambda p: (p, zoomed(p, 1.03, -0.015, -0.01)),
    "restored_zoomed": lambda p: (
        noisy(faded(sepia(p))),
        zoomed(restored(noisy(faded(sepia(p)))), 1.025, -0.012, 0.006),
    ),
}


# --- Drift ------------------------------------------------------------------------------------


def face_boxes(image: Image.Image) -> list[tuple[int, int, int, int]]:
    """(left, top, right, bottom) of each face, largest first (dlib's detector)."""
    from photo_restore.faithfulness.faces import face_models

    found = face_models().detect(np.asarray(image.convert("RGB")))
    return [(round(b.left), round(b.top), round(b.right), round(b.bottom)) for b in found]


def replace_face(target: Image.Image, donor: Image.Image, which: int = 0) -> Image.Image:
    """`target` with its `which`-th largest face replaced by the donor's largest, colour-matched
    and blended in with a feathered oval (a generative edit's face swap, roughly)."""
    boxes = face_boxes(target)
    donor_box = face_boxes(donor)[0]
    left, top, right, bottom = _grown(boxes[which], 1.35, target.size)
    size = (right - left, bottom - top)
    face = donor.crop(_grown(donor_box, 1.35, donor.size)).resize(size, Image.Resampling.LANCZOS)
    region = target.crop((left, top, right, bottom))
    face = _colour_matched(face, region)
    mask = Image.new("L", size, 0)
    inset_x, inset_y = size[0] * 0.12, size[1] * 0.08
    ImageDraw.Draw(mask).ellipse((inset_x, inset_y, size[0] - inset_x, size[1] - inset_y), 255)
    mask = mask.filter(ImageFilter.GaussianBlur(max(2, size[0] // 14)))
    swapped = target.copy()
    swapped.paste(Image.composite(face, region, mask), (left, top))
    return swapped


def _grown(
    box: tuple[int, int, int, int], factor: float, size: tuple[int, int]
) -> tuple[int, int, int, int]:
    left, top, right, bottom = box
    cx, cy = (left + right) / 2, (top + bottom) / 2
    half_w, half_h = (right - left) * factor / 2, (bottom - top) * factor / 2
    return (
        max(0, round(cx - half_w)),
        max(0, round(cy - half_h)),
        min(size[0], round(cx + half_w)),
        min(size[1], round(cy + half_h)),
    )


def _colour_matched(face: Image.Image, region: Image.Image) -> Image.Image:
    """Each channel of `face` given the mean and spread of `region`'s."""
    source = np.asarray(face, dtype=np.float32)
    reference = np.asarray(region, dtype=np.float32)
    axes = (0, 1)
    scaled = (source - source.mean(axes)) / (source.std(axes) + 1e-6)
    matched = scaled * reference.std(axes) + reference.mean(axes)
    return Image.fromarray(np.clip(matched, 0, 255).astype(np.uint8))


def different(image: Image.Image, other: Image.Image) -> Image.Image:
    """`other` in `image`'s frame: a result that is another picture altogether."""
    return other.resize(image.size, Image.Resampling.LANCZOS)


# --- The set ----------------------------------------------------------------------------------


def faithful_samples(bases: tuple[str, ...] | None = None) -> Iterator[Sample]:
    for base in bases or ("astronaut", "grace_hopper", "group", "camera", *WITHOUT_FACES):
        clean = photo(base)
        for change, make in CHANGES.items():
            before, after = make(clean)
            yield Sample(f"{base}/{change}", change, jpeg(before), jpeg(after), "faithful")


# Face swaps: (target, donor, which face of the target, largest first). The group's faces:
# Grace Hopper, the astronaut, the astronaut mirrored.
SWAPS = (
    ("astronaut", "grace_hopper", 0),
    ("grace_hopper", "astronaut", 0),
    ("group", "astronaut", 0),
    ("group", "grace_hopper", 1),
    ("group", "grace_hopper", 2),
)
# Changes applied on top of a swap: drift must be caught through a restoration's changes too.
SWAP_CHANGES = ("none", "sepia_to_colour", "denoise", "jpeg_q15", "zoom_2pc", "restored_zoomed")
OTHER_PICTURES = (
    ("astronaut", "grace_hopper"),
    ("grace_hopper", "astronaut"),
    ("astronaut", "coffee"),
    ("group", "astronaut"),
    ("coffee", "chelsea"),
    ("chelsea", "rocket"),
    ("camera", "astronaut"),
    ("rocket", "coffee"),
)


def drifted_samples(
    swaps: tuple[tuple[str, str, int], ...] = SWAPS,
    changes: tuple[str, ...] = SWAP_CHANGES,
    others: tuple[tuple[str, str], ...] = OTHER_PICTURES,
) -> Iterator[Sample]:
    for target, donor, which in swaps:
        swapped = replace_face(photo(target), photo(donor), which)
        for change in changes:
            if change == "none":
                before, after = photo(target), swapped
            else:
                # The damaged print, and the swapped face "restored" the same way.
                before, _ = CHANGES[change](photo(target))
                _, after = CHANGES[change](swapped)
            name = f"{target}<-{donor}[{which}]/{change}"
            yield Sample(name, "face_replaced", jpeg(before), jpeg(after), "drifted")
    for base, other in others:
        before = photo(base)
        after = different(before, photo(other))
        yield Sample(f"{base}/other:{other}", "other_picture", jpeg(before), jpeg(after), "drifted")


def evaluation_set() -> list[Sample]:
    return [*faithful_samples(), *drifted_samples()]


def small_evaluation_set() -> list[Sample]:
    """A few of each kind, for the tests."""
    faithful = [
        Sample(f"{base}/{change}", change, jpeg(before), jpeg(after), "faithful")
        for base, change in (("astronaut", "zoom_3pc"), ("group", "restored_zoomed"))
        for before, after in [CHANGES[change](photo(base))]
    ]
    drifted = drifted_samples(
        swaps=(("group", "grace_hopper", 2),),
        changes=("restored_zoomed",),
        others=(("coffee", "chelsea"), ("group", "astronaut")),
    )
    return [*faithful, *drifted]
