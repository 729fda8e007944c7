"""SiliconFlow requests as the worker builds them, with the default settings' edit parameters."""

from __future__ import annotations

import base64
import dataclasses
import io
from collections.abc import Callable
from typing import Any

from PIL import Image

from photo_restore.edit_request import EditRequest
from photo_restore.settings import Settings
from photo_restore.siliconflow import SiliconFlowRequest


def data_uri(size: tuple[int, int] = (24, 16)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, (180, 140, 100)).save(buf, format="JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def provider_request(image: str | None = None, **edit: Any) -> SiliconFlowRequest:
    """The request for `image` (a small data URI by default), some edit fields overridden."""
    defaults = EditRequest.from_settings(Settings())
    return SiliconFlowRequest(edit=dataclasses.replace(defaults, **edit), image=image or data_uri())


def static_resolver(table: dict[str, list[str]]) -> Callable[[str], list[str]]:
    """DNS answers for result hosts, without DNS."""

    def resolve(host: str) -> list[str]:
        return table[host]

    return resolve
