"""What marking a restoration costs (issue 21): time, bytes and pixels. A benchmark: it prints
figures and ratios, it asserts nothing.

The input is what the SiliconFlow stand-in answers for the sample photo (a ~1 MP JPEG at
quality 90, the size Qwen-Image-Edit returns). Per result, in one run with interleaved
repetitions (medians):

- floor: what the worker did before marking: a full decode, the RGB copy, the 512 px thumbnail
  encoded; the provider's JPEG was stored as sent;
- xmp: decode_result with the XMP marks (the provider's JPEG re-quantised with its own tables);
- c2pa: the same with Content Credentials signed by the local throwaway key.

Then the bytes each adds, and the loss of re-quantising (PSNR against the provider's decoded
pixels) beside what a plain re-encode at JPEG_QUALITY would have cost.

    .venv/bin/python benchmarks/bench_provenance.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent

from photo_restore.c2pa_signing import C2paSigner  # noqa: E402
from photo_restore.provenance import Provenance  # noqa: E402
from photo_restore.result_image import THUMBNAIL_SIDE, decode_result  # noqa: E402
from photo_restore_tools.local.c2pa_credentials import local_signing_pair  # noqa: E402
from photo_restore_tools.local.siliconflow_standin import restore_image  # noqa: E402

QUALITY = 90  # JPEG_QUALITY's default
SAMPLE = ROOT / "tools/photo_restore_tools/local/sample_photo.jpg"


def unmarked_floor(data: bytes) -> None:
    """The pre-marking path: decode every pixel, RGB, the thumbnail; the JPEG kept as sent."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        rgb = image.convert("RGB")
    small = rgb.copy()
    small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    small.save(io.BytesIO(), format="JPEG", quality=QUALITY)


def psnr(a: bytes, b: bytes) -> float:
    with Image.open(io.BytesIO(a)) as first, Image.open(io.BytesIO(b)) as second:
        x = np.asarray(first.convert("RGB"), dtype=np.float64)
        y = np.asarray(second.convert("RGB"), dtype=np.float64)
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    repeat = parser.parse_args().repeat

    result = restore_image(SAMPLE.read_bytes())
    with Image.open(io.BytesIO(result)) as image:
        size = image.size
    started = time.perf_counter()
    signer = C2paSigner(local_signing_pair().credentials)
    signer_start_ms = (time.perf_counter() - started) * 1000
    at = datetime.now(UTC)
    plain = Provenance(model="Qwen/Qwen-Image-Edit", created_at=at)
    signed = Provenance(model="Qwen/Qwen-Image-Edit", created_at=at, signer=signer)

    def marked(provenance: Provenance) -> Callable[[], None]:
        def run() -> None:
            decode_result(
                result, max_pixels=25_000_000, jpeg_quality=QUALITY, provenance=provenance
            )

        return run

    runs: dict[str, Callable[[], None]] = {
        "floor": lambda: unmarked_floor(result),
        "xmp": marked(plain),
        "c2pa": marked(signed),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):  # interleaved: a slow moment of the machine hits every path alike
        for name, run in runs.items():
            began = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - began) * 1000)
    median = {name: statistics.median(values) for name, values in times.items()}

    with_xmp = decode_result(result, max_pixels=25_000_000, jpeg_quality=QUALITY, provenance=plain)
    with_c2pa = decode_result(
        result, max_pixels=25_000_000, jpeg_quality=QUALITY, provenance=signed
    )

    print(f"result: {size[0]}x{size[1]} JPEG q{QUALITY}, {len(result):,} bytes; {repeat} runs")
    print(f"  floor (decode + thumbnail, unmarked): {median['floor']:7.1f} ms")
    print(
        f"  xmp marks:                            {median['xmp']:7.1f} ms"
        f"  = {median['xmp'] / median['floor']:.2f}x floor"
    )
    print(
        f"  xmp + c2pa signed:                    {median['c2pa']:7.1f} ms"
        f"  = {median['c2pa'] / median['floor']:.2f}x floor"
    )
    print(f"  c2pa signer start (probe signature, once per container): {signer_start_ms:.0f} ms")
    print("bytes, restoration / thumbnail:")
    print(
        f"  xmp:  {len(with_xmp.jpeg):,} ({len(with_xmp.jpeg) - len(result):+,} vs sent)"
        f" / {len(with_xmp.thumbnail):,}"
    )
    print(
        f"  c2pa: {len(with_c2pa.jpeg):,} ({len(with_c2pa.jpeg) - len(with_xmp.jpeg):+,} vs xmp)"
        f" / {len(with_c2pa.thumbnail):,} ({len(with_c2pa.thumbnail) - len(with_xmp.thumbnail):+,})"
    )
    print("loss against the provider's pixels (PSNR, higher is closer; inf = identical):")
    with Image.open(io.BytesIO(result)) as image:
        pixels = image.convert("RGB")
    for sent_quality in (QUALITY, 97):
        sent = io.BytesIO()
        pixels.save(sent, format="JPEG", quality=sent_quality)
        stored = decode_result(
            sent.getvalue(), max_pixels=25_000_000, jpeg_quality=QUALITY, provenance=plain
        )
        reencoded = io.BytesIO()
        with Image.open(io.BytesIO(sent.getvalue())) as image:
            image.convert("RGB").save(reencoded, format="JPEG", quality=QUALITY)
        kept_db = psnr(sent.getvalue(), stored.jpeg)
        reencoded_db = psnr(sent.getvalue(), reencoded.getvalue())
        print(
            f"  sent at q{sent_quality}: stored (its own tables) {kept_db:.1f} dB; "
            f"a re-encode at q{QUALITY} (not done) {reencoded_db:.1f} dB"
        )


if __name__ == "__main__":
    main()
