"""The sample events in events/ (what `sam local invoke` and the built-artifact tests send), with
the ids written in them swapped for a test's own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parents[2] / "events"
# The ids written in the event files; each test swaps in fresh ones.
EVENT_PHOTO_ID = "3f1c2a9e-6b1d-4c1e-9a53-2f0e8d7b4c61"
EVENT_ATTEMPT_ID = "9b2e7c4a-1f3d-4e8b-8c6a-5d4f3e2a1b09"
EVENT_OWNER = "7d4e1b2a-3c5f-4a6e-9b8d-1c2e3f4a5b6c"


def event_text(name: str, replacements: dict[str, str]) -> str:
    text = (EVENTS / name).read_text()
    for old, new in replacements.items():
        assert old in text, f"{name} no longer contains {old}"
        text = text.replace(old, new)
    return text


def event(name: str, replacements: dict[str, str] | None = None) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(event_text(name, replacements or {}))
    return loaded


def event_file(tmp_path: Path, name: str, replacements: dict[str, str]) -> Path:
    path = tmp_path / name
    path.write_text(event_text(name, replacements))
    return path
