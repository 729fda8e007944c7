"""Benchmark photo_restore.preprocess against a naive Pillow pipeline: wall time and peak RSS,
each case measured in a fresh subprocess (tracemalloc cannot see Pillow's C allocations).

The memory goal (issue 8): at default settings every input preprocessing accepts peaks at or
under 512 MB, and a 100 MP baseline JPEG at or under 300 MB; what cannot fit the budget is
refused with image_too_large before it is decoded.

    .venv/bin/python benchmarks/bench_preprocess.py               # all cases
    .venv/bin/python benchmarks/bench_preprocess.py --cases 12mp-jpeg --repeat 5
    .venv/bin/python benchmarks/bench_preprocess.py \
        --write-sample shared/photo_restore/local/sample_photo.jpg
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from image_similarity import ssim_float  # beside this script

from photo_restore.settings import Settings

if TYPE_CHECKING:  # the parent process never imports Pillow: it must stay small
    import pyvips
    from PIL import Image

LAMBDA_MEMORY_MB = int(Settings.model_fields["aws_lambda_function_memory_size"].default)
ACCEPTED_PEAK_GOAL_MB = 512
BASELINE_100MP_GOAL_MB = 300
# The worker's defaults (photo_restore.settings), stated there only.
MAX_SIDE = int(Settings.model_fields["max_side"].default)
JPEG_QUALITY = int(Settings.model_fields["jpeg_quality"].default)

# name -> (width, height, format, mode); the 120 MP ones sit at max_input_pixels.
CASES: dict[str, tuple[int, int, str, str]] = {
    "12mp-jpeg": (4000, 3000, "JPEG", "RGB"),
    "12mp-heic": (4032, 3024, "HEIF", "RGB"),
    "24mp-png": (6000, 4000, "PNG", "RGB"),
    "100mp-jpeg": (12240, 8160, "JPEG", "RGB"),
    "120mp-jpeg": (12648, 9486, "JPEG", "RGB"),
    "120mp-progressive-jpeg": (12648, 9486, "JPEG-progressive", "RGB"),
    "100mp-rgba-png": (12240, 8160, "PNG", "RGBA"),
    "120mp-rgb-png": (12648, 9486, "PNG", "RGB"),
    "120mp-rgba-png": (12648, 9486, "PNG", "RGBA"),
    "120mp-rgba16-png": (12648, 9486, "PNG16", "RGBA"),
    "120mp-tiff": (12648, 9486, "TIFF", "RGB"),
}
PIPELINES = ("preprocess", "naive", "idle")


# --- test images -----------------------------------------------------------------------------


def old_photo(width: int, height: int, seed: int = 1, grain: bool = True) -> Image.Image:
    """A sepia "old damaged photo": a scene of simple shapes, grain, scratches, dust, vignette."""
    from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps

    rng = random.Random(seed)
    # Draw the scene small and scale it up: fast even at 100 MP, and soft like an old print.
    sw, sh = max(64, width // 4), max(48, height // 4)
    scene = Image.linear_gradient("L").rotate(180).resize((sw, sh)).point(lambda v: 70 + v * 0.5)
    draw = ImageDraw.Draw(scene)
    draw.polygon([(0, sh * 0.62), (sw, sh * 0.55), (sw, sh), (0, sh)], fill=95)  # ground
    hx, hy, hw = sw * 0.12, sh * 0.35, sw * 0.3
    draw.rectangle([hx, hy, hx + hw, sh * 0.7], fill=205)  # house
    draw.polygon([(hx - sw * 0.02, hy), (hx + hw / 2, sh * 0.18), (hx + hw + sw * 0.02, hy)], 60)
    draw.rectangle([hx + hw * 0.4, sh * 0.52, hx + hw * 0.6, sh * 0.7], fill=45)  # door
    draw.ellipse([sw * 0.72, sh * 0.12, sw * 0.95, sh * 0.5], fill=70)  # tree
    draw.rectangle([sw * 0.82, sh * 0.45, sw * 0.85, sh * 0.68], fill=50)
    for px in (0.5, 0.6):  # two people
        x = sw * px
        draw.ellipse([x - sw * 0.02, sh * 0.45, x + sw * 0.02, sh * 0.51], fill=185)
        draw.rectangle([x - sw * 0.03, sh * 0.51, x + sw * 0.03, sh * 0.75], fill=40)
    scene = scene.filter(ImageFilter.GaussianBlur(max(0.6, sw / 800)))
    vignette = ImageOps.invert(Image.radial_gradient("L")).resize((sw, sh))
    scene = ImageChops.multiply(scene, vignette.point(lambda v: 120 + v * 0.53))
    photo = scene.resize((width, height), Image.Resampling.BICUBIC)
    scene.close()

    if grain:
        noise = Image.effect_noise((width, height), 18)
        photo = ImageChops.add(photo, noise, scale=1.0, offset=-128)
        noise.close()
    draw = ImageDraw.Draw(photo)
    unit = max(1, min(width, height) // 600)
    for _ in range(12 + min(width, height) // 200):  # long vertical scratches
        x = rng.uniform(0, width)
        drift = rng.uniform(-0.05, 0.05) * height
        y0, y1 = rng.uniform(0, height * 0.4), rng.uniform(height * 0.6, height)
        draw.line([(x, y0), (x + drift, y1)], fill=rng.choice((235, 245, 30)), width=unit)
    for _ in range(150 + width * height // 40_000):  # dust and specks
        x, y, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.5, 3) * unit
        draw.ellipse([x - r, y - r, x + r, y + r], fill=rng.choice((250, 20)))
    # A faded, water-stained corner.
    stain = Image.new("L", (width, height), 0)
    ImageDraw.Draw(stain).ellipse([width * 0.7, -height * 0.2, width * 1.2, height * 0.35], 90)
    stain = stain.resize((max(1, width // 8), max(1, height // 8))).filter(
        ImageFilter.GaussianBlur(max(2, width // 200))
    )
    photo.paste(230, (0, 0), stain.resize((width, height)))
    sepia = ImageOps.colorize(photo, black=(38, 24, 12), white=(246, 232, 204), mid=(160, 122, 82))
    photo.close()
    return sepia


def generate(case: str, path: Path) -> None:
    from PIL import Image, ImageOps

    width, height, fmt, mode = CASES[case]
    image = old_photo(width, height, grain=mode != "RGBA")
    if mode == "RGBA":  # a transparent, torn-looking border
        image.putalpha(ImageOps.invert(Image.radial_gradient("L")).resize((width, height)))
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.from_pillow(image).save(path, quality=85)
    elif fmt == "PNG":
        image.save(path, "PNG", compress_level=1)
    elif fmt == "PNG16":
        _save_png16(image, path)
    elif fmt == "JPEG-progressive":
        image.save(path, "JPEG", quality=92, progressive=True)
    elif fmt == "TIFF":
        image.save(path, "TIFF")
    else:
        image.save(path, fmt, quality=92)


def _save_png16(image: Image.Image, path: Path) -> None:
    """A 16-bit RGBA PNG (Pillow writes none): each 8-bit value v as v * 257, rows unfiltered."""
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))
            + kind
            + payload
            + struct.pack(">I", zlib.crc32(kind + payload))
        )

    width, height = image.size
    deflate = zlib.compressobj(1)
    with path.open("wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n")
        out.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)))
        for top in range(0, height, 256):
            band = image.crop((0, top, width, min(height, top + 256)))
            raw8 = band.tobytes()
            raw16 = bytearray(len(raw8) * 2)
            raw16[0::2] = raw8  # high byte
            raw16[1::2] = raw8  # low byte: v * 257
            row = width * 8
            rows = b"".join(b"\x00" + raw16[i : i + row] for i in range(0, len(raw16), row))
            out.write(chunk(b"IDAT", deflate.compress(rows)))
        out.write(chunk(b"IDAT", deflate.flush()))
        out.write(chunk(b"IEND", b""))


def write_sample(path: Path) -> None:
    """The local demo's default input: small, a plain baseline JPEG, no EXIF at all."""
    image = old_photo(960, 720, seed=3)
    image.save(path, "JPEG", quality=80)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")


# --- one measured run (in a fresh child process) -----------------------------------------------


def _fit(size: tuple[int, int]) -> tuple[int, int]:
    width, height = size
    scale = min(1.0, MAX_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def naive(data: bytes) -> tuple[bytes, tuple[int, int]]:
    """What one writes without thinking about memory: full decode, copies at full size."""
    import warnings

    from PIL import Image, ImageOps
    from pillow_heif import register_heif_opener

    register_heif_opener()
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    image: Image.Image = Image.open(io.BytesIO(data))
    image = ImageOps.exif_transpose(image)
    image = image.convert("RGB")
    image = image.resize(_fit(image.size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue(), image.size


def run(pipeline: str, path: Path, repeat: int) -> dict[str, Any]:
    from photo_restore.errors import RestoreError
    from photo_restore.preprocess import PreprocessLimits, preprocess_image

    limits = PreprocessLimits.from_settings(Settings())
    data = path.read_bytes()
    times, size, out_bytes, refused = [], (0, 0), 0, None
    for _ in range(repeat if pipeline != "idle" else 0):
        started = time.perf_counter()
        if pipeline == "preprocess":
            try:
                result = preprocess_image(data, limits)
            except RestoreError as error:
                refused = f"{error.code}: {error.message}"
                break
            size, out_bytes = result.new_dimensions, len(result.image_bytes)
            del result
        else:
            out, size = naive(data)
            out_bytes = len(out)
            del out
        times.append((time.perf_counter() - started) * 1000)
    return {
        "first_ms": times[0] if times else 0.0,
        "best_ms": min(times) if times else 0.0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "size": list(size),
        "out_bytes": out_bytes,
        "refused": refused,
    }


# --- against libvips' own thumbnail and the codec floor (issue 22) -------------------------
#
# Each figure is the median of interleaved rounds, every pipeline in a fresh process per round
# (one warm-up run, then the median of --repeat runs), so a change in the machine's load falls
# on every pipeline of a round alike; each ratio is the median of the rounds' own ratios.

# input -> (the generated case it is made of, the EXIF orientation spliced into it or None)
ANCHOR_INPUTS: dict[str, tuple[str, int | None]] = {
    **{f"12mp-jpeg-o{o}": ("12mp-jpeg", o) for o in range(1, 9)},
    "100mp-jpeg": ("100mp-jpeg", None),
    "12mp-heic": ("12mp-heic", None),
}
# The anchor each input is held to: libvips' thumbnail where libvips decodes the format;
# for HEIC (pyvips-binary has no HEVC decoder) pillow-heif's decode into libvips' resize and
# encode, measured on its own.
ANCHOR = {"JPEG": "thumbnail", "HEIF": "heif+libvips"}
ORIENTATION_GOAL = 1.1  # x the upright input
THUMBNAIL_GOAL = 1.0  # x the anchor
HEIF_PIPELINE_GOAL = 1.05
SSIM_LOSS_GOAL = 0.005


def with_orientation(jpeg: bytes, orientation: int) -> bytes:
    """The same JPEG (same coded pixels) with an EXIF block saying `orientation`, as a phone
    writes it: an APP1 segment right after SOI."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    payload = exif.tobytes()  # b"Exif\0\0" + the TIFF structure
    return jpeg[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


def _upright_target(data: bytes) -> tuple[int, int, int]:
    """(width, height) preprocessing submits, and the EXIF orientation, from the header."""
    from photo_restore import preprocess

    preprocess._allowed_formats()  # registers the HEIF opener
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        orientation = preprocess._orientation(image)
        width, height = image.size
    if orientation >= 5:
        width, height = height, width
    return (*preprocess._fit((width, height), MAX_SIDE), orientation)


def anchor_pipeline(name: str, data: bytes) -> Callable[[], object]:
    """One pipeline on one input, ready to run (imports and set-up done)."""
    width, height, _ = _upright_target(data)
    if name == "preprocess":
        from photo_restore.preprocess import PreprocessLimits, preprocess_image

        limits = PreprocessLimits.from_settings(Settings())
        return lambda: preprocess_image(data, limits)
    import pyvips

    pyvips.cache_set_max(0)

    def save(image: pyvips.Image) -> bytes:
        jpeg: bytes = image.jpegsave_buffer(Q=JPEG_QUALITY, subsample_mode="on", keep="none")
        return jpeg

    if name == "thumbnail":  # libvips' own: shrink-on-load, Lanczos 3, autorotate
        return lambda: save(pyvips.Image.thumbnail_buffer(data, width, height=height, size="force"))
    if name == "heif+libvips":  # the HEIC pipeline on its own, without preprocessing around it
        import pillow_heif

        def heif_libvips() -> bytes:
            heif = pillow_heif.open_heif(data, convert_hdr_to_8bit=True)
            image = pyvips.Image.new_from_memory(heif.data, *heif.size, len(heif.mode), "uchar")
            return save(image.resize(width / image.width, vscale=height / image.height))

        return heif_libvips
    raise ValueError(name)


def _pillow_floor(data: bytes, repeat: int) -> tuple[float, float]:
    """Pillow's decode of the input and its encode of an image of the target size, in ms."""
    from PIL import Image

    width, height, _ = _upright_target(data)

    def decode() -> Image.Image:
        image = Image.open(io.BytesIO(data))
        image.load()
        return image

    target = decode().crop((0, 0, width, height))
    target.load()

    def encode() -> None:
        target.save(io.BytesIO(), "JPEG", quality=JPEG_QUALITY)

    return _median_ms(decode, repeat), _median_ms(encode, repeat)


def _median_ms(work: Callable[[], object], repeat: int) -> float:
    return _median_wall_and_cpu_ms(work, repeat)[0]


def _median_wall_and_cpu_ms(work: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall time and CPU time (every thread's) of `repeat` runs after a warm-up."""
    import statistics

    def cpu_ms() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return (usage.ru_utime + usage.ru_stime) * 1000

    work()  # warm-up: lazy imports, first allocations
    walls, cpus = [], []
    for _ in range(repeat):
        started, cpu_started = time.perf_counter(), cpu_ms()
        work()
        walls.append((time.perf_counter() - started) * 1000)
        cpus.append(cpu_ms() - cpu_started)
    return statistics.median(walls), statistics.median(cpus)


def time_anchor(name: str, path: Path, repeat: int) -> dict[str, Any]:
    data = path.read_bytes()
    if name == "floor":
        decode_ms, encode_ms = _pillow_floor(data, repeat)
        ms, cpu = decode_ms + encode_ms, 0.0
    else:
        ms, cpu = _median_wall_and_cpu_ms(anchor_pipeline(name, data), repeat)
        decode_ms = encode_ms = 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "ms": ms,
        "cpu_ms": cpu,
        "decode_ms": decode_ms,
        "encode_ms": encode_ms,
        "peak_rss_mb": peak,
    }


def ssim_losses(path: Path, pipelines: list[str]) -> dict[str, float]:
    """Per pipeline: the SSIM that JPEG q`JPEG_QUALITY` of the reference itself keeps, minus
    the SSIM of the pipeline's output; both against a float Lanczos resize of the input's full
    resolution luminance, turned upright."""
    import numpy as np
    from PIL import Image

    from photo_restore import preprocess

    data = path.read_bytes()
    width, height, orientation = _upright_target(data)
    Image.MAX_IMAGE_PIXELS = None  # our own inputs: 100 MP is no decompression bomb
    with Image.open(io.BytesIO(data)) as source:
        if source.format == "JPEG":
            source.draft("L", source.size)  # libjpeg's own luma plane, at full resolution
        luma = source.convert("F")  # RGB -> Y (0.299, 0.587, 0.114) in float, as JPEG's
    if orientation in preprocess._TRANSPOSE:
        luma = luma.transpose(preprocess._TRANSPOSE[orientation])

    def reference_at(size: tuple[int, int]) -> Any:
        return np.asarray(luma.resize(size, Image.Resampling.LANCZOS))

    def luma_of(jpeg: bytes) -> Any:
        return np.asarray(Image.open(io.BytesIO(jpeg)).convert("F"))

    reference = reference_at((width, height))
    rounded = Image.fromarray(np.clip(np.rint(reference), 0, 255).astype(np.uint8))
    encoded = io.BytesIO()
    rounded.save(encoded, "JPEG", quality=JPEG_QUALITY)
    encode_ssim = ssim_float(luma_of(encoded.getvalue()), reference)
    losses = {}
    for name in pipelines:
        result = anchor_pipeline(name, data)()
        jpeg = result.image_bytes if hasattr(result, "image_bytes") else result
        assert isinstance(jpeg, bytes)
        out = luma_of(jpeg)
        ref = reference if out.shape == reference.shape else reference_at(out.shape[::-1])
        losses[name] = encode_ssim - ssim_float(out, ref)
    return losses


def _anchor_inputs(names: list[str], workdir: Path) -> dict[str, Path]:
    paths = {}
    for name in names:
        case, orientation = ANCHOR_INPUTS[name]
        source = workdir / f"{case}.{EXTENSIONS.get(CASES[case][2], CASES[case][2].lower())}"
        if not source.exists():
            _child("--generate", case, str(source))
        if orientation is None:
            paths[name] = source
            continue
        path = workdir / f"{name}.jpg"
        if not path.exists():
            path.write_bytes(with_orientation(source.read_bytes(), orientation))
        paths[name] = path
    return paths


def run_anchors(names: list[str], workdir: Path, rounds: int, repeat: int) -> bool:
    """Measure, print, and say whether every goal of issue 22 is met."""
    import statistics

    paths = _anchor_inputs(names, workdir)
    kinds = {name: "HEIF" if ANCHOR_INPUTS[name][0].endswith("heic") else "JPEG" for name in names}
    pipelines = {name: ["preprocess", ANCHOR[kinds[name]], "floor"] for name in names}
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for round_ in range(rounds):
        for name in names:
            # Rotate the order within each round: no pipeline always runs first.
            order = pipelines[name][round_ % 3 :] + pipelines[name][: round_ % 3]
            for pipeline in order:
                out = _child("--time", pipeline, str(paths[name]), "--repeat", str(repeat))
                runs.setdefault((name, pipeline), []).append(json.loads(out))
        print(f"round {round_ + 1}/{rounds} done, load {_load():.1f}", file=sys.stderr)
    losses = {
        name: json.loads(_child("--ssim", ",".join(pipelines[name][:2]), str(paths[name])))
        for name in names
    }

    def ms(name: str, pipeline: str, key: str = "ms") -> list[float]:
        return [r[key] for r in runs[(name, pipeline)]]

    def ratio(a: list[float], b: list[float]) -> float:
        return statistics.median(x / y for x, y in zip(a, b, strict=True))

    print(
        f"\nMedians of {rounds} interleaved rounds (fresh processes; each the median of {repeat}"
        f" runs after a warm-up); ratios: medians of the rounds' own ratios. Load now "
        f"{_load():.1f} on {os.cpu_count()} cores."
    )
    print(
        "floor: Pillow's decode of the input + its encode of the target size; CPU: every "
        "thread's, the figure a Lambda at 1 GB (~0.6 vCPU) waits for (against the upright input"
        f" in brackets); SSIM loss: what JPEG q{JPEG_QUALITY} of a float Lanczos reference keeps,"
        " minus what the output keeps.\n"
    )
    header = (
        f"{'input':<15} {'preprocess':>14} {'anchor':>22} {'vs anchor':>9} {'floor':>18}"
        f" {'vs floor':>8} {'vs upright':>10} {'CPU ms':>12} {'CPU vs anchor':>13}"
        f" {'SSIM loss':>15} {'peak MB':>8}"
    )
    print(header)
    print("-" * len(header))
    met = True
    upright = "12mp-jpeg-o1" if "12mp-jpeg-o1" in names else None
    for name in names:
        anchor = pipelines[name][1]
        ours, theirs, floor = ms(name, "preprocess"), ms(name, anchor), ms(name, "floor")
        vs_anchor, vs_floor = ratio(ours, theirs), ratio(ours, floor)
        floor_runs = runs[(name, "floor")]
        decode = statistics.median(r["decode_ms"] for r in floor_runs)
        encode = statistics.median(r["encode_ms"] for r in floor_runs)
        peak = max(r["peak_rss_mb"] for r in runs[(name, "preprocess")])
        loss, anchor_loss = losses[name]["preprocess"], losses[name][anchor]
        goal = HEIF_PIPELINE_GOAL if kinds[name] == "HEIF" else THUMBNAIL_GOAL
        ok = vs_anchor <= goal and loss <= SSIM_LOSS_GOAL
        vs_upright, cpu = "-", statistics.median(ms(name, "preprocess", "cpu_ms"))
        cpu_column = f"{cpu:.0f}"
        cpu_vs_anchor = ratio(ms(name, "preprocess", "cpu_ms"), ms(name, anchor, "cpu_ms"))
        if upright and name.startswith("12mp-jpeg-o") and name != upright:
            against = ratio(ours, ms(upright, "preprocess"))
            vs_upright = f"{against:.2f}x"
            cpu_against = ratio(
                ms(name, "preprocess", "cpu_ms"), ms(upright, "preprocess", "cpu_ms")
            )
            cpu_column = f"{cpu:.0f} ({cpu_against:.2f}x)"
            ok = ok and against <= ORIENTATION_GOAL
        if name == "100mp-jpeg":
            ok = ok and peak <= BASELINE_100MP_GOAL_MB
        met = met and ok
        print(
            f"{name:<15} {statistics.median(ours):>11.0f} ms"
            f" {anchor:>13} {statistics.median(theirs):>5.0f} ms {vs_anchor:>8.2f}x"
            f" {decode:>6.0f} + {encode:>3.0f} ms {vs_floor:>7.2f}x"
            f" {vs_upright:>10} {cpu_column:>12} {cpu_vs_anchor:>12.2f}x"
            f" {loss:>7.4f} ({anchor_loss:.4f}) {peak:>8.0f}  {'met' if ok else 'NOT MET'}"
        )
    print(
        f"\ngoals {'MET' if met else 'NOT MET'}: every orientation <= {ORIENTATION_GOAL}x the "
        f"upright input; <= {THUMBNAIL_GOAL}x thumbnail (HEIC: <= {HEIF_PIPELINE_GOAL}x its "
        f"pipeline on its own); SSIM loss <= {SSIM_LOSS_GOAL} (the anchor's in brackets); "
        f"100 MP <= {BASELINE_100MP_GOAL_MB} MB peak RSS"
    )
    return met


def _load() -> float:
    return os.getloadavg()[0]


# --- the parent: generate, measure, print ----------------------------------------------------


def _child(*args: str) -> str:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"child {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per case (best kept)")
    parser.add_argument("--keep", type=Path, help="reuse/keep generated inputs in this directory")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive pipeline")
    parser.add_argument("--write-sample", type=Path, metavar="PATH")
    parser.add_argument(
        "--anchors",
        nargs="?",
        const=",".join(ANCHOR_INPUTS),
        metavar="INPUTS",
        help="preprocessing against libvips' thumbnail and the codec floor, with its SSIM loss"
        f" (inputs: {', '.join(ANCHOR_INPUTS)})",
    )
    parser.add_argument("--rounds", type=int, default=5, help="--anchors: interleaved rounds")
    parser.add_argument("--time", nargs=2, metavar=("PIPELINE", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--ssim", nargs=2, metavar=("PIPELINES", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--generate", nargs=2, metavar=("CASE", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--run", nargs=2, metavar=("PIPELINE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.write_sample:
        write_sample(args.write_sample)
        return 0
    if args.generate:
        generate(args.generate[0], Path(args.generate[1]))
        return 0
    if args.run:
        print(json.dumps(run(args.run[0], Path(args.run[1]), args.repeat)))
        return 0
    if args.time:
        print(json.dumps(time_anchor(args.time[0], Path(args.time[1]), args.repeat)))
        return 0
    if args.ssim:
        print(json.dumps(ssim_losses(Path(args.ssim[1]), args.ssim[0].split(","))))
        return 0
    if args.anchors:
        inputs = [name for name in args.anchors.split(",") if name]
        unknown = set(inputs) - set(ANCHOR_INPUTS)
        if unknown:
            parser.error(f"unknown input(s): {', '.join(sorted(unknown))}")
        with tempfile.TemporaryDirectory() as scratch:
            workdir = args.keep or Path(scratch)
            workdir.mkdir(parents=True, exist_ok=True)
            return 0 if run_anchors(inputs, workdir, args.rounds, args.repeat) else 1

    cases = [c for c in args.cases.split(",") if c]
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"unknown case(s): {', '.join(sorted(unknown))}; known: {', '.join(CASES)}")
    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.keep or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        rows = [_measure(case, workdir, args.repeat, naive=not args.no_naive) for case in cases]
    _print_table(rows, args.repeat)
    return 0 if _goals_met(rows) else 1


EXTENSIONS = {"HEIF": "heic", "JPEG": "jpg", "JPEG-progressive": "jpg", "PNG16": "png"}


def _measure(case: str, workdir: Path, repeat: int, *, naive: bool) -> dict[str, Any]:
    width, height, fmt, mode = CASES[case]
    path = workdir / f"{case}.{EXTENSIONS.get(fmt, fmt.lower())}"
    if not path.exists():
        started = time.perf_counter()
        _child("--generate", case, str(path))
        print(f"generated {path.name} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    row: dict[str, Any] = {"case": case, "dims": (width, height), "mode": mode, "format": fmt}
    row["bytes"] = path.stat().st_size
    for pipeline in PIPELINES if naive else ("preprocess", "idle"):
        row[pipeline] = json.loads(_child("--run", pipeline, str(path), "--repeat", str(repeat)))
    return row


def _goal_mb(row: dict[str, Any]) -> int:
    return BASELINE_100MP_GOAL_MB if row["case"] == "100mp-jpeg" else ACCEPTED_PEAK_GOAL_MB


def _goals_met(rows: list[dict[str, Any]]) -> bool:
    return all(
        r["preprocess"]["refused"] or r["preprocess"]["peak_rss_mb"] <= _goal_mb(r) for r in rows
    )


def _print_table(rows: list[dict[str, Any]], repeat: int) -> None:
    budget = PreprocessBudget()
    print()
    print(
        f"Worker: {LAMBDA_MEMORY_MB} MB; preprocessing admits an input when its estimated decode "
        f"fits {budget.mb} MB ({budget.fraction:.0%}); goal: every accepted input peaks at or "
        f"under {ACCEPTED_PEAK_GOAL_MB} MB RSS (a 100 MP baseline JPEG: {BASELINE_100MP_GOAL_MB})."
    )
    print(f"Times: best of {repeat} runs (first run in brackets); RSS: peak of the whole process.")
    print("'idle' = Python + Pillow + the input bytes, before any decoding.\n")
    header = (
        f"{'case':<23} {'input':>16} {'pipeline':<10} {'time ms':>13} {'peak MB':>8}"
        f" {'vs naive (t, mem)':>18} {'output':>20}  goal"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        _print_case(row)
    accepted = [r for r in rows if not r["preprocess"]["refused"]]
    worst = max((r["preprocess"]["peak_rss_mb"] for r in accepted), default=0.0)
    refused = [r["case"] for r in rows if r["preprocess"]["refused"]]
    print(
        f"goals {'MET' if _goals_met(rows) else 'NOT MET'}: worst accepted peak {worst:.0f} MB "
        f"(goal {ACCEPTED_PEAK_GOAL_MB} MB); refused as too large: {', '.join(refused) or 'none'}"
    )


def _print_case(row: dict[str, Any]) -> None:
    width, height = row["dims"]
    pipelines = [p for p in PIPELINES if p in row]
    labels = [f"{width}x{height}", f"{row['mode']} {row['bytes'] / 2**20:.1f} MB", ""]
    naive_run = row.get("naive")
    for pipeline, label in zip(pipelines, labels, strict=False):
        r = row[pipeline]
        first = pipeline == "preprocess"
        time_col = f"{r['best_ms']:.0f} ({r['first_ms']:.0f})" if r["best_ms"] else "-"
        ratio = "-"
        if first and naive_run and r["best_ms"]:
            ratio = (
                f"{r['best_ms'] / naive_run['best_ms']:.2f}x,"
                f" {r['peak_rss_mb'] / naive_run['peak_rss_mb']:.2f}x"
            )
        output = f"{r['size'][0]}x{r['size'][1]} {r['out_bytes'] / 2**20:.1f} MB"
        output = output if r["best_ms"] else "-"
        verdict = "-"
        if first:
            goal = _goal_mb(row)
            verdict = (
                "refused" if r["refused"] else "met" if r["peak_rss_mb"] <= goal else "NOT MET"
            )
        print(
            f"{row['case'] if first else '':<23} {label:>16} {pipeline:<10} {time_col:>13}"
            f" {r['peak_rss_mb']:>8.0f} {ratio:>18} {output:>20}  {verdict}"
        )
        if first and r["refused"]:
            print(f"{'':<23} {'':>16} {'':<10} {r['refused']}")
    print()


class PreprocessBudget:
    def __init__(self) -> None:
        settings = Settings()
        self.fraction = settings.preprocess_memory_fraction
        self.mb = int(settings.aws_lambda_function_memory_size * self.fraction)


if __name__ == "__main__":
    sys.exit(main())
