"""Reading API request bodies: whatever the parser cannot read is the client's error (400)."""

from __future__ import annotations

import json
from typing import Any

from photo_restore.errors import UnreadableBody


def parse_json_body(text: str) -> Any:
    """`json.loads`, with every way it can fail on a client's bytes mapped to UnreadableBody:
    invalid JSON, integers past Python's 4,300-digit limit (a ValueError), nesting past the
    recursion limit."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UnreadableBody(f"the body is not valid JSON: {error}") from None
    except RecursionError:
        raise UnreadableBody("the body is not readable JSON: nested too deeply") from None
    except ValueError as error:
        raise UnreadableBody(f"the body is not readable JSON: {error}") from None
