"""`photo-restore preprocess`: the worker's preprocessing on local files, one line per file."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from photo_restore.errors import RestoreError
from photo_restore.preprocess import PreprocessLimits, preprocess_image
from photo_restore.settings import Settings


def preprocess_files(paths: Sequence[Path], out_dir: Path, settings: Settings, out: TextIO) -> int:
    """Write ``out_dir/<stem>.jpg`` per file, print one line each; 0 if all succeeded, else 1."""
    failed = 0
    for path in paths:
        started = time.perf_counter()
        try:
            data = path.read_bytes()
            result = preprocess_image(data, PreprocessLimits.from_settings(settings))
            out_dir.mkdir(parents=True, exist_ok=True)
            dest = out_dir / f"{path.stem}.jpg"
            dest.write_bytes(result.image_bytes)
        except RestoreError as exc:
            failed += 1
            print(f"{path}: {exc.code}: {exc.message}", file=out)
            continue
        except OSError as exc:
            failed += 1
            print(f"{path}: io_error: {exc.strerror or exc}", file=out)
            continue
        except Exception as exc:  # a bad file must never end the batch with a traceback
            failed += 1
            print(f"{path}: internal_error: {type(exc).__name__}: {exc}", file=out)
            continue
        ms = (time.perf_counter() - started) * 1000
        (ow, oh), (nw, nh) = result.original_dimensions, result.new_dimensions
        print(
            f"{path}: ok {result.original_format} {ow}x{oh} -> {nw}x{nh}"
            f" resized={result.resized} converted={result.format_converted}"
            f" {len(result.image_bytes)} bytes {ms:.0f} ms -> {dest}",
            file=out,
        )
    return 1 if failed else 0
